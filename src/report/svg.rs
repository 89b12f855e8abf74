//! SVG plots, written by hand: bandwidth against block size (one line per queue depth) from a
//! sweep's points, and latency CDFs (one line per contender) from a comparison.
//!
//! Hand-written rather than a plotting crate: two kinds of line chart need ~200 lines, no
//! fonts, no native libraries, and give byte-for-byte reproducible files that diff well in a
//! repository. Pure functions of results, like every exporter; the caller writes the files.
//! Every chart has a title, axis labels with units, and a legend.

use std::fmt::Write as _;

use crate::size::Bytes;

use super::comparison::{Comparison, ContenderKind};
use super::RunReport;

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 58.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Escapes text for SVG.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's text for the line.
    pub label: String,
    /// (x, y) in data units, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (e.g. a peer tool, beside the solid backends).
    pub dashed: bool,
}

/// A horizontal axis on a log scale (the data are block sizes or latencies).
struct LogAxis {
    min: f64,
    max: f64,
    ticks: Vec<(f64, String)>,
}

impl LogAxis {
    fn px(&self, v: f64) -> f64 {
        let span = (self.max.ln() - self.min.ln()).max(f64::MIN_POSITIVE);
        let t = if self.max > self.min {
            (v.max(self.min).ln() - self.min.ln()) / span
        } else {
            0.5
        };
        LEFT + t * (W - LEFT - RIGHT)
    }
}

/// A "nice" step (1, 2 or 5 x 10^k) for about `n` intervals up to `max`.
pub(crate) fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn y_px(v: f64, ymax: f64) -> f64 {
    TOP + (1.0 - v / ymax) * (H - TOP - BOTTOM)
}

/// A line chart with a log x axis and a linear y axis from 0.
fn chart(
    title: &str,
    x: &LogAxis,
    x_label: &str,
    y_label: &str,
    ymax: f64,
    y_fmt: fn(f64) -> String,
    series: &[Series],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        esc(title)
    );
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    // Grid and y ticks.
    let step = nice_step(ymax, 5.0);
    let mut v = 0.0;
    while v <= ymax + step * 1e-9 {
        let y = y_px(v, ymax);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            esc(&y_fmt(v))
        );
        v += step;
    }
    for (t, label) in &x.ticks {
        let px = x.px(*t);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{y1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y1 + 16.0,
            esc(label)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        x1 - x0,
        y1 - y0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        H - 16.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        esc(y_label)
    );
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = ser
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x.px(px), y_px(py, ymax)))
            .collect();
        let dash = if ser.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"#,
            pts.join(" "),
            esc(&ser.label)
        );
        for p in &pts {
            let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, r#"<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>"#);
        }
        let ly = y0 + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x1 + 12.0,
            x1 + 36.0,
            x1 + 42.0,
            ly + 4.0,
            esc(&ser.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn gibps_label(v: f64) -> String {
    format!("{v:.1}")
}

fn fraction_label(v: f64) -> String {
    format!("{v:.1}")
}

/// Bandwidth (median GiB/s) against block size for one backend, direction and thread count,
/// one line per queue depth, from a sweep's points. `None` when the points hold nothing for it.
pub fn bandwidth_vs_block_size(
    points: &[Comparison],
    backend: &str,
    op: &str,
    threads: usize,
) -> Option<String> {
    let mut by_qd: std::collections::BTreeMap<u32, Vec<(f64, f64)>> = Default::default();
    for c in points {
        let p = &c.params;
        if p.workload.op.to_string() != op || p.workload.threads != threads {
            continue;
        }
        if let Some(k) = c.contenders.iter().find(|k| k.name == backend) {
            by_qd
                .entry(p.workload.queue_depth)
                .or_default()
                .push((p.workload.block_size as f64, k.bandwidth_gibps.median));
        }
    }
    if by_qd.is_empty() {
        return None;
    }
    let mut sizes: Vec<u64> = by_qd.values().flatten().map(|&(x, _)| x as u64).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let ymax = by_qd
        .values()
        .flatten()
        .map(|&(_, y)| y)
        .fold(0.0, f64::max)
        .max(0.1)
        * 1.1;
    let series: Vec<Series> = by_qd
        .into_iter()
        .map(|(qd, mut pts)| {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label: format!("queue depth {qd}"),
                points: pts,
                dashed: false,
            }
        })
        .collect();
    let axis = LogAxis {
        min: sizes[0] as f64 / 1.5,
        max: sizes[sizes.len() - 1] as f64 * 1.5,
        ticks: sizes
            .iter()
            .map(|&b| (b as f64, Bytes(b).to_string()))
            .collect(),
    };
    Some(chart(
        &format!(
            "{backend} {op}: bandwidth vs block size, {threads} thread{}",
            if threads == 1 { "" } else { "s" }
        ),
        &axis,
        "block size (bytes, log scale)",
        "bandwidth (GiB/s, median of rounds)",
        ymax,
        gibps_label,
        &series,
    ))
}

/// Formats microseconds as a tick label.
fn us_label(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{} ms", us / 1e3)
    } else {
        format!("{us} us")
    }
}

/// The latency CDF of every contender of a comparison (peers dashed). `None` when no contender
/// has a CDF (results from before CDFs were recorded).
pub fn latency_cdf(c: &Comparison) -> Option<String> {
    let series: Vec<Series> = c
        .contenders
        .iter()
        .filter(|k| !k.latency_cdf_us.is_empty())
        .map(|k| Series {
            label: match k.kind {
                ContenderKind::Peer => format!("{} (peer)", k.name),
                ContenderKind::Backend => k.name.clone(),
            },
            points: cdf_points(&k.latency_cdf_us),
            dashed: k.kind == ContenderKind::Peer,
        })
        .collect();
    let p = &c.params;
    cdf_chart(
        &format!(
            "latency CDF: {} bs {}, qd {}, {} thread{}",
            p.workload.op,
            Bytes(p.workload.block_size),
            p.workload.queue_depth,
            p.workload.threads,
            if p.workload.threads == 1 { "" } else { "s" }
        ),
        "fraction of requests (median of rounds)",
        &series,
    )
}

/// The latency CDF of each run report, one line per run. `None` when none has a CDF.
pub fn runs_latency_cdf(reports: &[RunReport]) -> Option<String> {
    let series: Vec<Series> = reports
        .iter()
        .filter(|r| !r.summary.latency_cdf_us.is_empty())
        .map(|r| {
            let p = &r.params;
            Series {
                label: format!(
                    "{} {} bs {} qd {} t {}",
                    p.backend,
                    p.workload.op,
                    Bytes(p.workload.block_size),
                    p.workload.queue_depth,
                    p.workload.threads
                ),
                points: cdf_points(&r.summary.latency_cdf_us),
                dashed: false,
            }
        })
        .collect();
    cdf_chart("latency CDF per run", "fraction of requests", &series)
}

fn cdf_points(cdf: &[[f64; 2]]) -> Vec<(f64, f64)> {
    cdf.iter().map(|p| (p[1].max(0.001), p[0])).collect()
}

/// A CDF chart: log latency axis with decade ticks (and 2, 5 within a short range).
fn cdf_chart(title: &str, y_label: &str, series: &[Series]) -> Option<String> {
    if series.is_empty() {
        return None;
    }
    let all = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let (lo, hi) = (lo / 1.3, hi.max(lo * 1.01) * 1.3);
    let steps: &[f64] = if hi / lo < 100.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in steps {
            let t = decade * m;
            if t >= lo && t <= hi {
                ticks.push((t, us_label(t)));
            }
        }
        decade *= 10.0;
    }
    Some(chart(
        title,
        &LogAxis {
            min: lo,
            max: hi,
            ticks,
        },
        "per-request latency (log scale)",
        y_label,
        1.0,
        fraction_label,
        series,
    ))
}

/// Every bandwidth plot a sweep's points support: one per backend, direction and thread count,
/// with a file name for each (`bandwidth-host-read-1t.svg`).
///
/// A backend knob a sweep swept (`bounce_buffers` for `bounce`, `gds_api` for `gds`) gets a plot
/// per value, named with a suffix (`-bb8`, `-batch`), so one line never mixes two values.
pub fn sweep_plots(points: &[Comparison]) -> Vec<(String, String)> {
    let knob = |name: &str, c: &Comparison| -> String {
        match name {
            "bounce" => c
                .params
                .bounce_buffers
                .map(|k| format!("-bb{k}"))
                .unwrap_or_default(),
            "gds" => c
                .params
                .gds_api
                .map(|a| format!("-{a}"))
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    let mut keys: Vec<(String, String, usize, String)> = Vec::new();
    for c in points {
        for k in &c.contenders {
            let key = (
                k.name.clone(),
                c.params.workload.op.to_string(),
                c.params.workload.threads,
                knob(&k.name, c),
            );
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys.sort();
    keys.into_iter()
        .filter_map(|(name, op, t, suffix)| {
            let these: Vec<Comparison> = points
                .iter()
                .filter(|c| knob(&name, c) == suffix)
                .cloned()
                .collect();
            bandwidth_vs_block_size(&these, &name, &op, t)
                .map(|svg| (format!("bandwidth-{name}-{op}-{t}t{suffix}.svg"), svg))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::comparison::tests::sample;

    fn points() -> Vec<Comparison> {
        let mut out = Vec::new();
        for (bs, qd, host) in [
            (1u64 << 20, 1u32, 1.0),
            (8 << 20, 1, 2.0),
            (1 << 20, 8, 3.0),
            (8 << 20, 8, 4.0),
        ] {
            let mut c = sample();
            c.params.workload.block_size = bs;
            c.params.workload.queue_depth = qd;
            c.contenders[0].bandwidth_gibps.median = host;
            out.push(c);
        }
        out
    }

    #[test]
    fn bandwidth_plot_has_a_line_per_queue_depth_titles_and_units() {
        let svg = bandwidth_vs_block_size(&points(), "host", "read", 1).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>\n"));
        assert!(
            svg.contains(">host read: bandwidth vs block size, 1 thread</text>"),
            "{svg}"
        );
        assert!(svg.contains(">block size (bytes, log scale)</text>"));
        assert!(svg.contains(">bandwidth (GiB/s, median of rounds)</text>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(
            svg.contains("<title>queue depth 1</title>")
                && svg.contains("<title>queue depth 8</title>")
        );
        assert!(svg.contains(">1MiB</text>") && svg.contains(">8MiB</text>"));
        // Points sit where the scales put them: 1 MiB at the left tick, 4.0 GiB/s below the
        // top (ymax = 4.4), the y axis starting at 0.
        let x_1m = LEFT + (1.5f64.ln()) / ((8.0f64 * 1.5 * 1.5).ln()) * (W - LEFT - RIGHT);
        let y_3 = y_px(3.0, 4.4);
        assert!(svg.contains(&format!("{x_1m:.1},{y_3:.1}")), "{svg}");
        assert!(svg.contains(">0.0</text>"));
        // Nothing for a backend or direction that was not measured.
        assert!(bandwidth_vs_block_size(&points(), "gds", "read", 1).is_none());
        assert!(bandwidth_vs_block_size(&points(), "host", "write", 1).is_none());
        let files: Vec<String> = sweep_plots(&points()).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            files,
            [
                "bandwidth-fio-read-1t.svg",
                "bandwidth-host-read-1t.svg",
                "bandwidth-posix-read-1t.svg"
            ]
        );
    }

    #[test]
    fn latency_cdf_has_a_line_per_contender_peers_dashed() {
        let c = sample();
        let svg = latency_cdf(&c).unwrap();
        assert!(
            svg.contains(">latency CDF: read bs 1MiB, qd 8, 1 thread</text>"),
            "{svg}"
        );
        assert!(svg.contains(">per-request latency (log scale)</text>"));
        assert!(svg.contains(">fraction of requests (median of rounds)</text>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("<title>fio (peer)</title>"));
        assert_eq!(
            svg.matches("stroke-dasharray").count(),
            2,
            "peer line and its legend"
        );
        assert!(svg.contains(">1 ms</text>"), "{svg}");
        // Less than two decades: 2 and 5 ticks too.
        assert!(
            svg.contains(">2 ms</text>") && svg.contains(">5 ms</text>"),
            "{svg}"
        );
        // Each line has one point per CDF quantile.
        let line = svg
            .lines()
            .find(|l| l.contains("<title>host</title>"))
            .unwrap();
        assert_eq!(line.matches(',').count(), 3);
        let mut old = c.clone();
        for k in &mut old.contenders {
            k.latency_cdf_us.clear();
        }
        assert!(latency_cdf(&old).is_none());
    }

    #[test]
    fn runs_cdf_has_a_line_per_run_with_a_cdf() {
        let r = crate::report::tests::sample();
        let mut old = r.clone();
        old.summary.latency_cdf_us.clear();
        let svg = runs_latency_cdf(&[r.clone(), old.clone(), r]).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(
            svg.contains("<title>host read bs 1MiB qd 8 t 2</title>"),
            "{svg}"
        );
        assert!(svg.contains(">latency CDF per run</text>"));
        assert!(runs_latency_cdf(&[old]).is_none());
    }

    #[test]
    fn text_is_escaped_and_steps_are_nice() {
        assert_eq!(esc("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
        assert_eq!(nice_step(4.4, 5.0), 1.0);
        assert_eq!(nice_step(1.0, 5.0), 0.2);
        assert_eq!(nice_step(33.0, 5.0), 10.0);
        assert_eq!(us_label(1000.0), "1 ms");
        assert_eq!(us_label(100.0), "100 us");
    }
}
