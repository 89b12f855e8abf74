//! A bar chart: one bar per label (a node of a fleet), a dashed reference line (the fleet
//! median), flagged bars in red. Hand-written like [`super::svg`], whose escaping and tick
//! steps it uses; pure.

use std::fmt::Write as _;

use super::svg::{esc, nice_step};

const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 110.0;
const BAR: f64 = 28.0;

/// One bar: its label, value, and whether it is flagged (drawn red).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The text under the bar.
    pub label: String,
    /// The bar's height, in the chart's unit.
    pub value: f64,
    /// Drawn red: the bar is singled out (in a fleet report, an outlier node).
    pub flagged: bool,
}

/// The chart; `reference`: a value drawn as a dashed line across, with its label. `None`
/// when there is no bar.
pub fn bars(
    title: &str,
    y_label: &str,
    bars: &[Bar],
    reference: Option<(f64, &str)>,
) -> Option<String> {
    if bars.is_empty() {
        return None;
    }
    let w = (LEFT + RIGHT + bars.len() as f64 * BAR * 1.6).max(480.0);
    let top_value = bars
        .iter()
        .map(|b| b.value)
        .chain(reference.map(|r| r.0))
        .fold(0.0, f64::max);
    let step = nice_step(top_value.max(f64::MIN_POSITIVE) * 1.1, 5.0);
    let ymax = (top_value * 1.1 / step).ceil().max(1.0) * step;
    let y_px = |v: f64| TOP + (1.0 - v / ymax) * (H - TOP - BOTTOM);
    let (x0, x1, y0, y1) = (LEFT, w - RIGHT, TOP, H - BOTTOM);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{H}" viewBox="0 0 {w} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        (x0 + x1) / 2.0,
        esc(title)
    );
    let mut v = 0.0;
    while v <= ymax + step * 1e-9 {
        let y = y_px(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            esc(&format_value(v))
        );
        v += step;
    }
    let slot = (x1 - x0) / bars.len() as f64;
    for (i, b) in bars.iter().enumerate() {
        let cx = x0 + slot * (i as f64 + 0.5);
        let y = y_px(b.value.max(0.0));
        let color = if b.flagged { "#d62728" } else { "#1f77b4" };
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{y:.1}" width="{BAR}" height="{:.1}" fill="{color}"><title>{}: {}</title></rect>"#,
            cx - BAR / 2.0,
            (y1 - y).max(0.0),
            esc(&b.label),
            format_value(b.value)
        );
        let _ = writeln!(
            s,
            r#"<text x="{cx:.1}" y="{:.1}" text-anchor="end" transform="rotate(-45 {cx:.1} {:.1})">{}</text>"#,
            y1 + 14.0,
            y1 + 14.0,
            esc(&b.label)
        );
    }
    if let Some((value, label)) = reference {
        let y = y_px(value);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#444" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x1 - 4.0,
            y - 5.0,
            esc(&format!("{label} {}", format_value(value)))
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        x1 - x0,
        y1 - y0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{}</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        esc(y_label)
    );
    s.push_str("</svg>\n");
    Some(s)
}

/// 12.3, 0.05, 812345: enough digits to read a bar, no more.
fn format_value(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagged_bars_are_red_and_the_reference_is_drawn() {
        let b = |label: &str, value, flagged| Bar {
            label: label.into(),
            value,
            flagged,
        };
        let svg = bars(
            "t <&>",
            "GB/s",
            &[b("a", 10.0, false), b("b", 5.0, true)],
            Some((9.5, "median")),
        )
        .unwrap();
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert_eq!(svg.matches("fill=\"#d62728\"").count(), 1);
        assert!(svg.contains("<title>b: 5.00</title>"));
        assert!(svg.contains("median 9.50"));
        assert!(bars("t", "y", &[], None).is_none());
    }
}
