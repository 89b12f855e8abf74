//! The fleet view: many nodes' qualify records in one table (node, verdict, each test's
//! value), the nodes more than X% worse than the fleet median on a test flagged as outliers,
//! and a bar chart per test. Pure functions of the records' texts; the CLI finds and reads
//! the files.
//!
//! A test's value is its aggregate bandwidth (GB/s), or its IOPS when the spec gave the test
//! an IOPS threshold and no bandwidth one (a small-block test). Higher is better for both, so
//! an outlier is a node below the median by more than X%. A node with several records (it was
//! qualified again) counts once, by its newest record; the older ones are listed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Figures, Line, SCHEMA};
use crate::report::markdown::cell;
use crate::report::svg_bars::{self, Bar};
use crate::stats::median;

/// What the fleet view reads of a record (the rest of it is ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct FleetRecord {
    /// The schema tag; must be the qualify record's.
    pub schema: String,
    /// The node's name.
    pub node: String,
    /// `pass`, `fail` or `error`.
    pub verdict: String,
    /// Why the qualification could not run.
    #[serde(default)]
    pub error: Option<String>,
    /// When it started, UTC, ISO 8601 (the newest record of a node wins).
    #[serde(default)]
    pub started_at: String,
    /// The spec file it ran.
    #[serde(default)]
    pub spec_path: PathBuf,
    /// Its lines (the failed ones are listed per node).
    #[serde(default)]
    pub lines: Vec<Line>,
    /// Its tests.
    #[serde(default)]
    pub tests: Vec<FleetTest>,
    /// The file it was read from.
    #[serde(skip)]
    pub file: PathBuf,
}

/// A test of a record, as the fleet view needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct FleetTest {
    /// The test's name: its column.
    pub name: String,
    /// All targets together; absent when no target ran.
    #[serde(default)]
    pub aggregate: Option<Figures>,
}

/// Whether `text` is a qualify record (by its schema tag).
pub fn is_record(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|v| v["schema"].as_str() == Some(SCHEMA))
}

/// Reads one record; the error names the file.
pub fn load(path: &Path, text: &str) -> Result<FleetRecord, String> {
    let mut r: FleetRecord = serde_json::from_str(text).map_err(|e| {
        format!(
            "{}: not a qualify record gdswap can read: {e}",
            path.display()
        )
    })?;
    if r.schema != SCHEMA {
        return Err(format!(
            "{}: schema '{}', not a qualify record ({SCHEMA})",
            path.display(),
            r.schema
        ));
    }
    r.file = path.to_path_buf();
    Ok(r)
}

/// One test's column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The test's name.
    pub test: String,
    /// `GB/s` or `IOPS`.
    pub unit: &'static str,
    /// The median over the nodes that have a value.
    pub median: Option<f64>,
}

/// One node's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The node's name.
    pub node: String,
    /// `pass`, `fail` or `error`.
    pub verdict: String,
    /// Per column: the value, when the node has one.
    pub values: Vec<Option<f64>>,
    /// Lines that failed (or why it could not run).
    pub failed: Vec<String>,
    /// The record file the row was read from.
    pub file: PathBuf,
}

/// A node more than the threshold below the median on a test.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    /// The node's name.
    pub node: String,
    /// The test's name.
    pub test: String,
    /// The node's value, in `unit`.
    pub value: f64,
    /// The fleet's median on the test, in `unit`.
    pub median: f64,
    /// `GB/s` or `IOPS`.
    pub unit: &'static str,
    /// How far below the median, in percent.
    pub below_pct: f64,
}

/// The whole fleet view.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// A node this many percent below a test's median is an outlier.
    pub outlier_pct: f64,
    /// One column per test, in first-seen order.
    pub columns: Vec<Column>,
    /// One row per node (its newest record).
    pub rows: Vec<Row>,
    /// Every node below a median by more than `outlier_pct`.
    pub outliers: Vec<Outlier>,
    /// Older records of re-qualified nodes, left out.
    pub superseded: Vec<PathBuf>,
}

/// Whether the test's headline is IOPS (an IOPS threshold and no bandwidth one).
fn unit_of(records: &[FleetRecord], test: &str) -> &'static str {
    let metrics: Vec<&str> = records
        .iter()
        .flat_map(|r| &r.lines)
        .filter(|l| l.kind == "test" && l.name == test)
        .map(|l| l.metric.as_str())
        .collect();
    if metrics.contains(&"iops") && !metrics.contains(&"gbps") {
        "IOPS"
    } else {
        "GB/s"
    }
}

/// The fleet view of `records`, outliers more than `outlier_pct` percent below the median.
pub fn fleet(records: Vec<FleetRecord>, outlier_pct: f64) -> Fleet {
    // The newest record per node.
    let mut newest: BTreeMap<String, FleetRecord> = BTreeMap::new();
    let mut superseded = Vec::new();
    for r in records {
        match newest.get(&r.node) {
            Some(old) if old.started_at >= r.started_at => superseded.push(r.file),
            _ => {
                if let Some(old) = newest.insert(r.node.clone(), r) {
                    superseded.push(old.file);
                }
            }
        }
    }
    let records: Vec<FleetRecord> = newest.into_values().collect();
    // Tests in the order the records list them, each once.
    let mut tests: Vec<String> = Vec::new();
    for t in records.iter().flat_map(|r| &r.tests) {
        if !tests.contains(&t.name) {
            tests.push(t.name.clone());
        }
    }
    let mut columns: Vec<Column> = tests
        .iter()
        .map(|t| Column {
            test: t.clone(),
            unit: unit_of(&records, t),
            median: None,
        })
        .collect();
    let rows: Vec<Row> = records
        .iter()
        .map(|r| Row {
            node: r.node.clone(),
            verdict: r.verdict.clone(),
            values: columns
                .iter()
                .map(|c| {
                    r.tests
                        .iter()
                        .find(|t| t.name == c.test)
                        .and_then(|t| t.aggregate)
                        .map(|a| if c.unit == "IOPS" { a.iops } else { a.gbps })
                })
                .collect(),
            failed: match &r.error {
                Some(e) => vec![format!("could not run: {e}")],
                None => r
                    .lines
                    .iter()
                    .filter(|l| !l.pass)
                    .map(Line::label)
                    .collect(),
            },
            file: r.file.clone(),
        })
        .collect();
    let mut outliers = Vec::new();
    for (i, c) in columns.iter_mut().enumerate() {
        let values: Vec<f64> = rows.iter().filter_map(|r| r.values[i]).collect();
        if values.is_empty() {
            continue;
        }
        let m = median(&values);
        c.median = Some(m);
        for r in &rows {
            if let Some(v) = r.values[i] {
                let below_pct = if m > 0.0 { (m - v) / m * 100.0 } else { 0.0 };
                if below_pct > outlier_pct {
                    outliers.push(Outlier {
                        node: r.node.clone(),
                        test: c.test.clone(),
                        value: v,
                        median: m,
                        unit: c.unit,
                        below_pct,
                    });
                }
            }
        }
    }
    Fleet {
        outlier_pct,
        columns,
        rows,
        outliers,
        superseded,
    }
}

fn value_text(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) if unit == "IOPS" => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

impl Fleet {
    fn is_outlier(&self, node: &str, test: &str) -> bool {
        self.outliers
            .iter()
            .any(|o| o.node == node && o.test == test)
    }

    /// The table as text: a row per node, a median row, then the outliers.
    pub fn text(&self) -> String {
        let mut headers: Vec<String> = vec!["node".into(), "verdict".into()];
        headers.extend(
            self.columns
                .iter()
                .map(|c| format!("{} ({})", c.test, c.unit)),
        );
        let mut table: Vec<Vec<String>> = vec![headers];
        for r in &self.rows {
            let mut row = vec![r.node.clone(), r.verdict.to_uppercase()];
            for (c, v) in self.columns.iter().zip(&r.values) {
                let mut t = value_text(*v, c.unit);
                if self.is_outlier(&r.node, &c.test) {
                    t.push_str(" LOW");
                }
                row.push(t);
            }
            table.push(row);
        }
        let mut median_row = vec!["fleet median".to_string(), String::new()];
        median_row.extend(self.columns.iter().map(|c| value_text(c.median, c.unit)));
        table.push(median_row);
        let widths: Vec<usize> = (0..table[0].len())
            .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in &table {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i < 2 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        let pass = self.rows.iter().filter(|r| r.verdict == "pass").count();
        let _ = writeln!(
            out,
            "{} node{}: {pass} pass, {} fail, {} could not run",
            self.rows.len(),
            if self.rows.len() == 1 { "" } else { "s" },
            self.rows.iter().filter(|r| r.verdict == "fail").count(),
            self.rows.iter().filter(|r| r.verdict == "error").count()
        );
        if self.outliers.is_empty() {
            let _ = writeln!(
                out,
                "no outlier (none more than {}% below the fleet median)",
                self.outlier_pct
            );
        }
        for o in &self.outliers {
            let _ = writeln!(
                out,
                "outlier: {} {}: {} {}, {:.0}% below the fleet median {} (more than {}%)",
                o.node,
                o.test,
                value_text(Some(o.value), o.unit),
                o.unit,
                o.below_pct,
                value_text(Some(o.median), o.unit),
                self.outlier_pct
            );
        }
        for r in self.rows.iter().filter(|r| !r.failed.is_empty()) {
            let _ = writeln!(out, "{} failed: {}", r.node, r.failed.join("; "));
        }
        for p in &self.superseded {
            let _ = writeln!(
                out,
                "superseded by a newer record of its node: {}",
                p.display()
            );
        }
        out
    }

    /// The same as Markdown, with the plots linked.
    pub fn markdown(&self, plots: &[(String, String)]) -> String {
        let mut out = String::from("# Fleet qualification\n\n");
        let mut header = String::from("| Node | Verdict |");
        let mut rule = String::from("|---|---|");
        for c in &self.columns {
            let _ = write!(header, " {} ({}) |", cell(&c.test), c.unit);
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for r in &self.rows {
            let verdict = match r.verdict.as_str() {
                "pass" => "PASS".to_string(),
                "fail" => "**FAIL**".to_string(),
                _ => "**could not run**".to_string(),
            };
            let _ = write!(out, "| {} | {verdict} |", cell(&r.node));
            for (c, v) in self.columns.iter().zip(&r.values) {
                let t = value_text(*v, c.unit);
                if self.is_outlier(&r.node, &c.test) {
                    let _ = write!(out, " **{t} (outlier)** |");
                } else {
                    let _ = write!(out, " {t} |");
                }
            }
            out.push('\n');
        }
        let _ = write!(out, "| fleet median | |");
        for c in &self.columns {
            let _ = write!(out, " {} |", value_text(c.median, c.unit));
        }
        out.push_str("\n\n");
        let _ = writeln!(
            out,
            "Outliers: nodes more than {}% below the fleet median on a test.\n",
            self.outlier_pct
        );
        for o in &self.outliers {
            let _ = writeln!(
                out,
                "- {} on {}: {} {}, {:.0}% below the median {}",
                cell(&o.node),
                cell(&o.test),
                value_text(Some(o.value), o.unit),
                o.unit,
                o.below_pct,
                value_text(Some(o.median), o.unit)
            );
        }
        let failing: Vec<&Row> = self.rows.iter().filter(|r| !r.failed.is_empty()).collect();
        if !failing.is_empty() {
            out.push_str("\n## Failed lines\n\n");
            for r in failing {
                let _ = writeln!(out, "- {}: {}", cell(&r.node), cell(&r.failed.join("; ")));
            }
        }
        if !plots.is_empty() {
            out.push_str("\n## Plots\n\n");
            for (name, _) in plots {
                let _ = writeln!(out, "![{name}]({name})\n");
            }
        }
        out
    }

    /// A bar chart per test (value per node, outliers red, the median dashed): (file name,
    /// SVG text).
    pub fn plots(&self) -> Vec<(String, String)> {
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let bars: Vec<Bar> = self
                    .rows
                    .iter()
                    .filter_map(|r| {
                        r.values[i].map(|value| Bar {
                            label: r.node.clone(),
                            value,
                            flagged: self.is_outlier(&r.node, &c.test),
                        })
                    })
                    .collect();
                let name: String = c
                    .test
                    .chars()
                    .map(|ch| {
                        if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                            ch
                        } else {
                            '_'
                        }
                    })
                    .collect();
                svg_bars::bars(
                    &format!("{} per node", c.test),
                    c.unit,
                    &bars,
                    c.median.map(|m| (m, "median")),
                )
                .map(|svg| (format!("fleet-{name}.svg"), svg))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(node: &str, started: &str, gbps: Option<f64>) -> FleetRecord {
        FleetRecord {
            schema: SCHEMA.into(),
            node: node.into(),
            verdict: if gbps.is_some() { "pass" } else { "error" }.into(),
            error: gbps.is_none().then(|| "no spec".into()),
            started_at: started.into(),
            spec_path: "s.toml".into(),
            lines: Vec::new(),
            tests: gbps
                .map(|g| {
                    vec![FleetTest {
                        name: "seq".into(),
                        aggregate: Some(Figures {
                            bytes: 1,
                            requests: 1,
                            seconds: 1.0,
                            gbps: g,
                            iops: 1.0,
                            p99_us: 1.0,
                            p999_us: 1.0,
                            cpu_s_per_gib: 0.1,
                            cpu_s: 0.1,
                        }),
                    }]
                })
                .unwrap_or_default(),
            file: format!("{node}-{started}.json").into(),
        }
    }

    #[test]
    fn a_node_far_below_the_median_is_an_outlier_and_newest_records_win() {
        let f = fleet(
            vec![
                record("a", "1", Some(10.0)),
                record("b", "1", Some(9.8)),
                record("c", "1", Some(7.0)),
                record("c", "2", Some(10.1)), // c re-qualified: its newer record counts
                record("d", "1", Some(8.0)),
                record("e", "1", None),
            ],
            15.0,
        );
        assert_eq!(f.rows.len(), 5);
        assert_eq!(f.superseded, [PathBuf::from("c-1.json")]);
        assert_eq!(f.columns[0].median, Some(9.9));
        // d is 19% below 9.9: flagged at 15%; b (1% below) is not.
        assert_eq!(f.outliers.len(), 1);
        assert_eq!(f.outliers[0].node, "d");
        let text = f.text();
        assert!(text.contains("8.00 LOW"), "{text}");
        assert!(
            text.contains(
                "outlier: d seq: 8.00 GB/s, 19% below the fleet median 9.90 (more than 15%)"
            ),
            "{text}"
        );
        assert!(text.contains("e failed: could not run: no spec"), "{text}");
        // At 25% nobody is an outlier.
        assert!(fleet(
            vec![record("a", "1", Some(10.0)), record("d", "1", Some(8.0))],
            25.0
        )
        .outliers
        .is_empty());
    }
}
