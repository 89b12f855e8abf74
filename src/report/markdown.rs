//! Markdown export: tables ready to paste into a README or a lab report, beside JSON and CSV.
//!
//! Pure functions of results (run reports, comparisons), so the same text comes back from
//! `gdswap report` on saved JSON as from the run that measured it. Every cell is escaped (a `|`
//! in a CPU model or path would otherwise split the table), and every figure carries its unit in
//! the column header.

use std::fmt::Write as _;

use crate::env::Environment;
use crate::size::Bytes;

use super::comparison::Comparison;
use super::human::{cpu_or_dash, latency, latency_or_dash, workload_line};
use super::{RunReport, WarningRecord};

/// Escapes text for a table cell: pipes, and newlines (which would end the row).
pub fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn environment(out: &mut String, e: &Environment) {
    let fs = &e.filesystem;
    let _ = writeln!(out, "| Machine | |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(out, "| CPU | {} ({} CPUs) |", cell(&e.cpu_model), e.cpus);
    let _ = writeln!(
        out,
        "| Memory | {:.1} GiB |",
        e.memory_bytes as f64 / (1u64 << 30) as f64
    );
    let _ = writeln!(out, "| Kernel | {} |", cell(&e.kernel));
    let _ = writeln!(
        out,
        "| Data | `{}` on {} ({}, mounted at `{}`) |",
        cell(&fs.path.display().to_string()),
        cell(&fs.device),
        cell(&fs.fs_type),
        cell(&fs.mount_point)
    );
    let _ = writeln!(
        out,
        "| gdswap | {} (`{}`) |",
        cell(&e.gdswap_version),
        cell(&e.git_commit)
    );
}

fn warnings(out: &mut String, w: &[WarningRecord], prefix: &str) {
    for w in w {
        let _ = writeln!(
            out,
            "- **warning** {prefix}{}. *Hint:* {}.",
            w.message.to_string().trim_end_matches('.'),
            w.hint.to_string().trim_end_matches('.')
        );
    }
}

/// Run reports as one table (one row per run), their environment (from the first) and their
/// warnings.
pub fn runs(reports: &[RunReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## gdswap run results\n");
    let _ = writeln!(
        out,
        "| backend | op | threads | block size | queue depth | size | GiB/s | GB/s | IOPS | p50 latency | p99 latency | CPU-s/GiB | mode |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in reports {
        let p = &r.params;
        let s = &r.summary;
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {} | {} | {:.3} | {}; {} |",
            cell(p.backend.name()),
            if p.random { "random " } else { "" },
            cell(&p.workload.op.to_string()),
            p.workload.threads,
            Bytes(p.workload.block_size),
            p.workload.queue_depth,
            Bytes(p.workload.size),
            s.bandwidth_gibps,
            s.bandwidth_gbps,
            s.iops,
            latency(s.latency.p50_us),
            latency(s.latency.p99_us),
            s.cpu_s_per_gib,
            cell(&r.backend_mode),
            cell(&r.buffer_pages),
        );
    }
    for r in reports.iter().filter(|r| !r.ranks.is_empty()) {
        let _ = writeln!(
            out,
            "\n{} {} over {} ranks (the row above: every rank's bytes over the earliest start to the latest end of each loop; latencies from the merged histograms):\n",
            cell(r.params.backend.name()),
            cell(&r.params.workload.op.to_string()),
            r.ranks.len()
        );
        let _ = writeln!(
            out,
            "| rank | host | GiB/s | IOPS | p50 latency | p99 latency | below median | straggler |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---|");
        for k in &r.ranks {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.0} | {} | {} | {:.0}% | {} |",
                k.rank,
                cell(&k.host),
                k.bandwidth_gibps,
                k.iops,
                latency(k.latency.p50_us),
                latency(k.latency.p99_us),
                k.below_median_pct,
                if k.straggler { "yes" } else { "" }
            );
        }
    }
    if let Some(first) = reports.first() {
        let _ = writeln!(
            out,
            "\nBandwidth: bytes of the measured loops over the time inside transfers (GiB = 2^30 bytes, GB = 10^9); {} measured loop(s) after {} warm-up; finished {}.\n",
            first.params.workload.loops, first.params.workload.warmup, first.finished_at
        );
        environment(&mut out, &first.environment);
    }
    let mut first_warning = true;
    for r in reports {
        if !r.warnings.is_empty() && first_warning {
            out.push('\n');
            first_warning = false;
        }
        warnings(
            &mut out,
            &r.warnings,
            &format!("{} {}: ", r.params.backend, r.params.workload.op),
        );
    }
    out
}

/// A comparison: the workload, one row per contender (peers marked), the ratios to the first
/// contender, what was skipped and why, warnings, then every round.
pub fn comparison(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## gdswap compare: {}\n", workload_line(&c.params));
    let reference = c
        .contenders
        .first()
        .map(|k| k.name.clone())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| contender | GiB/s (median) | GiB/s (min-max) | avg latency | p50 latency | p99 latency | CPU-s/GiB | vs {} (median) | vs {} (min-max) |",
        cell(&reference),
        cell(&reference)
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, k) in c.contenders.iter().enumerate() {
        let (vs, range) = match i.checked_sub(1).and_then(|j| c.ratios.get(j)) {
            Some(r) => (
                format!("{:.2}x", r.bandwidth.median),
                format!("{:.2}-{:.2}x", r.bandwidth.min, r.bandwidth.max),
            ),
            None => ("1.00x".into(), "reference".into()),
        };
        let _ = writeln!(
            out,
            "| {}{} | {:.2} | {:.2}-{:.2} | {} | {} | {} | {} | {vs} | {range} |",
            cell(&k.name),
            match k.kind {
                super::comparison::ContenderKind::Peer => " (peer)",
                super::comparison::ContenderKind::Backend => "",
            },
            k.bandwidth_gibps.median,
            k.bandwidth_gibps.min,
            k.bandwidth_gibps.max,
            latency_or_dash(k.latency_avg_us),
            latency_or_dash(k.latency_p50_us),
            latency_or_dash(k.latency_p99_us),
            cpu_or_dash(k.cpu_s_per_gib),
        );
    }
    let _ = writeln!(
        out,
        "\nRatios pair round r of each contender with round r of {}; median and range over the rounds. Latencies and CPU-s/GiB are medians over rounds; `-`: the contender does not report that figure (gdsio gives only an average latency, and no CPU time). Finished {}.\n",
        cell(&reference),
        c.finished_at
    );
    for k in &c.contenders {
        let _ = writeln!(out, "- `{}`: {}", cell(&k.name), cell(&k.mode));
    }
    for s in &c.skipped {
        let _ = writeln!(
            out,
            "- skipped {} `{}`: {}",
            s.kind,
            cell(&s.name),
            cell(&s.reason.to_string())
        );
    }
    if !c.warnings.is_empty() {
        out.push('\n');
        warnings(&mut out, &c.warnings, "");
    }
    out.push('\n');
    environment(&mut out, &c.environment);
    let rounds = c
        .contenders
        .iter()
        .map(|k| k.rounds.len())
        .max()
        .unwrap_or(0);
    if rounds > 0 {
        let _ = writeln!(out, "\n### GiB/s per round\n");
        let _ = write!(out, "| contender |");
        for r in 1..=rounds {
            let _ = write!(out, " round {r} |");
        }
        let _ = write!(out, "\n|---|");
        for _ in 0..rounds {
            let _ = write!(out, "---:|");
        }
        out.push('\n');
        for k in &c.contenders {
            let _ = write!(out, "| {} |", cell(&k.name));
            for i in 0..rounds {
                match k.rounds.get(i) {
                    Some(r) => {
                        let _ = write!(out, " {:.2} |", r.bandwidth_gibps);
                    }
                    None => out.push_str(" - |"),
                }
            }
            out.push('\n');
        }
    }
    out
}

/// The best settings a sweep found, as the sweep table shows them: the metric they were chosen
/// for, and one row per backend (the tuning config seen from the report, which does not know
/// the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct BestSettings {
    /// `read`, `write` or `both`.
    pub metric: String,
    /// One row per backend that got settings.
    pub rows: Vec<BestRow>,
}

/// One backend's best settings and the figures that chose them.
#[derive(Debug, Clone, PartialEq)]
pub struct BestRow {
    /// The backend's name.
    pub backend: String,
    /// The backend-specific knobs, `bounce-buffers 8, gds-api batch`, or empty.
    pub knobs: String,
    /// The best block size, bytes.
    pub block_size: u64,
    /// The best queue depth.
    pub queue_depth: u32,
    /// The best thread count.
    pub threads: usize,
    /// Median read GiB/s at these settings (absent: reads not measured).
    pub read_gibps: Option<f64>,
    /// Median write GiB/s at these settings (absent: writes not measured).
    pub write_gibps: Option<f64>,
    /// The figure the metric ranked by, GiB/s.
    pub score_gibps: f64,
}

/// A sweep: one row per point (GiB/s median and range per contender), then the best settings
/// per backend. `points` are comparisons at different settings of one fixed workload.
pub fn sweep(points: &[Comparison], best: &BestSettings) -> String {
    let mut out = String::new();
    let Some(first) = points.first() else {
        return "## gdswap sweep\n\nNo point measured.\n".into();
    };
    let p = &first.params;
    let _ = writeln!(
        out,
        "## gdswap sweep: size {}, {} loop(s) + {} warm-up per run, {} round(s) per point{}\n",
        Bytes(p.workload.size),
        p.workload.loops,
        p.workload.warmup,
        p.rounds,
        if p.random { ", random offsets" } else { "" }
    );
    let mut names: Vec<(String, super::comparison::ContenderKind)> = Vec::new();
    for c in points {
        for k in &c.contenders {
            if !names.iter().any(|(n, _)| *n == k.name) {
                names.push((k.name.clone(), k.kind));
            }
        }
    }
    // A column for the backend knobs, only when the sweep swept one.
    let knobs = points
        .iter()
        .any(|c| c.params.bounce_buffers.is_some() || c.params.gds_api.is_some());
    let _ = write!(out, "| op | block size | queue depth | threads |");
    if knobs {
        out.push_str(" backend knobs |");
    }
    for (n, kind) in &names {
        let peer = if *kind == super::comparison::ContenderKind::Peer {
            " (peer)"
        } else {
            ""
        };
        let _ = write!(out, " {}{peer} GiB/s (min-max) |", cell(n));
    }
    let _ = write!(out, "\n|---|---:|---:|---:|");
    if knobs {
        out.push_str("---|");
    }
    for _ in &names {
        out.push_str("---:|");
    }
    out.push('\n');
    for c in points {
        let q = &c.params;
        let _ = write!(
            out,
            "| {} | {} | {} | {} |",
            cell(&q.workload.op.to_string()),
            Bytes(q.workload.block_size),
            q.workload.queue_depth,
            q.workload.threads
        );
        if knobs {
            let mut k: Vec<String> = Vec::new();
            if let Some(b) = q.bounce_buffers {
                k.push(format!("bounce-buffers {b}"));
            }
            if let Some(a) = q.gds_api {
                k.push(format!("gds-api {a}"));
            }
            let text = if k.is_empty() {
                "-".into()
            } else {
                k.join(", ")
            };
            let _ = write!(out, " {} |", cell(&text));
        }
        for (n, _) in &names {
            match c.contenders.iter().find(|k| k.name == *n) {
                Some(k) => {
                    let b = &k.bandwidth_gibps;
                    let _ = write!(out, " {:.2} ({:.2}-{:.2}) |", b.median, b.min, b.max);
                }
                None => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\n### Best settings (metric: {})\n",
        cell(&best.metric)
    );
    if best.rows.is_empty() {
        let _ = writeln!(
            out,
            "No backend was measured in every direction the metric needs."
        );
    } else {
        let _ = writeln!(
            out,
            "| backend | block size | queue depth | threads | read GiB/s | write GiB/s | score GiB/s |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        let f = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        for t in &best.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2} |",
                cell(&if t.knobs.is_empty() {
                    t.backend.clone()
                } else {
                    format!("{} ({})", t.backend, t.knobs)
                }),
                Bytes(t.block_size),
                t.queue_depth,
                t.threads,
                f(t.read_gibps),
                f(t.write_gibps),
                t.score_gibps
            );
        }
        if best.metric == "both" {
            let _ = writeln!(
                out,
                "\nScore for `both`: the harmonic mean 2rw/(r+w) of median read and write GiB/s at the same settings (the settings that move a tensor out and back in fastest)."
            );
        }
    }
    out.push('\n');
    environment(&mut out, &first.environment);
    out
}

/// Markdown images for plot files that sit next to the Markdown file.
pub fn plots(files: &[String]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n### Plots\n\n");
    for f in files {
        let _ = writeln!(out, "![{}]({})\n", cell(f), f.replace(' ', "%20"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_table_of_a_fixed_report() {
        let mut r = crate::report::tests::sample();
        r.backend_mode = "io_uring | odd".into();
        r.warnings = vec![WarningRecord {
            code: "short-run".into(),
            message: "the measured loops took only 0.010 s in all".into(),
            hint: crate::error::msg!["raise ", crate::error::Setting::Size],
        }];
        let md = runs(std::slice::from_ref(&r));
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "## gdswap run results");
        assert_eq!(
            lines[4],
            "| host | read | 2 | 1MiB | 8 | 1GiB | 4.00 | 4.29 | 4096 | 1.80 ms | 3.10 ms | 0.050 | io_uring \\| odd; THP 2MiB pages |"
        );
        // Every table row has as many cells as the header.
        let cells = |l: &str| l.matches(" | ").count();
        assert_eq!(cells(lines[2]), cells(lines[4]));
        assert!(md.contains("| CPU | CPU, \"quoted\" (2 CPUs) |"), "{md}");
        assert!(md.contains("| Data | `/data` on virtio disk (vda) (ext4, mounted at `/`) |"));
        assert!(md.contains(
            "- **warning** host read: the measured loops took only 0.010 s in all. *Hint:* raise size."
        ));
        // Under the CLI's names (its scope), the hint names the flag.
        let _flags = crate::error::SettingNames::scope(|s| match s {
            crate::error::Setting::Size => "--size",
            s => s.name(),
        });
        assert!(runs(std::slice::from_ref(&r)).contains("*Hint:* raise --size."));
    }

    #[test]
    fn comparison_marks_peers_and_shows_ratios_and_rounds() {
        let c = crate::report::comparison::tests::sample();
        let md = comparison(&c);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "## gdswap compare: read, bs 1MiB, qd 8, 1 thread, size 1GiB, 3 loops + 1 warm-up per run, 3 rounds interleaved"
        );
        assert_eq!(
            lines[2],
            "| contender | GiB/s (median) | GiB/s (min-max) | avg latency | p50 latency | p99 latency | CPU-s/GiB | vs host (median) | vs host (min-max) |"
        );
        assert_eq!(
            lines[4],
            "| host | 4.00 | 3.90-4.10 | 1.10 ms | 1.00 ms | 2.00 ms | 0.080 | 1.00x | reference |"
        );
        assert_eq!(
            lines[5],
            "| posix | 1.10 | 1.00-1.20 | 1.10 ms | 1.00 ms | 2.00 ms | 0.022 | 0.28x | 0.24-0.31x |"
        );
        assert!(
            lines[6].starts_with("| fio (peer) | 4.00 | 3.00-4.10 |"),
            "{md}"
        );
        assert!(md.contains("- skipped peer `gdsio`: not installed"));
        assert!(md.contains("- **warning** fio: the first round (3.00 GiB/s)"));
        assert!(md.contains("| contender | round 1 | round 2 | round 3 |"));
        assert!(md.contains("| fio | 3.00 | 4.00 | 4.10 |"));
    }

    #[test]
    fn sweep_table_has_a_row_per_point_and_the_best_settings() {
        let mut a = crate::report::comparison::tests::sample();
        let mut b = a.clone();
        b.params.workload.block_size = 8 << 20;
        b.params.workload.queue_depth = 32;
        b.contenders.truncate(1);
        a.params.workload.threads = 2;
        let best = BestSettings {
            metric: "both".into(),
            rows: vec![BestRow {
                backend: "host".into(),
                knobs: String::new(),
                block_size: 1 << 20,
                queue_depth: 8,
                threads: 2,
                read_gibps: Some(4.0),
                write_gibps: Some(2.0),
                score_gibps: 8.0 / 3.0,
            }],
        };
        let md = sweep(&[a, b], &best);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "## gdswap sweep: size 1GiB, 3 loop(s) + 1 warm-up per run, 3 round(s) per point"
        );
        assert_eq!(
            lines[2],
            "| op | block size | queue depth | threads | host GiB/s (min-max) | posix GiB/s (min-max) | fio (peer) GiB/s (min-max) |"
        );
        assert_eq!(
            lines[4],
            "| read | 1MiB | 8 | 2 | 4.00 (3.90-4.10) | 1.10 (1.00-1.20) | 4.00 (3.00-4.10) |"
        );
        assert_eq!(
            lines[5],
            "| read | 8MiB | 32 | 1 | 4.00 (3.90-4.10) | - | - |"
        );
        assert!(
            md.contains("| host | 1MiB | 8 | 2 | 4.00 | 2.00 | 2.67 |"),
            "{md}"
        );
        assert!(md.contains("harmonic mean"), "{md}");
        assert!(sweep(&[], &best).contains("No point measured"));
    }

    #[test]
    fn plots_are_linked_images() {
        assert_eq!(plots(&[]), "");
        assert_eq!(
            plots(&["a.svg".into(), "b c.svg".into()]),
            "\n### Plots\n\n![a.svg](a.svg)\n\n![b c.svg](b%20c.svg)\n\n"
        );
    }

    #[test]
    fn cells_escape_pipes_and_newlines() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell("back\\slash"), "back\\\\slash");
    }
}
