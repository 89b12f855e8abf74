//! The qualify record: everything a qualification did ([`Record`]), written as JSON whether it
//! passed, failed or could not run, and what it is made of: one [`Line`] per check row and
//! threshold, each test's [`TestRecord`] with its targets' [`TargetRecord`]s and their
//! [`Figures`]. The types only, with what is derived from them alone (the verdict line, the
//! file names); the qualification that fills them in is the parent module's, and `fleet` and
//! `markdown` read them.

use std::path::PathBuf;

use serde::Serialize;

use super::spec::Spec;
use crate::check::NodeReport;
use crate::env::Environment;
use crate::report::soak::VerifyErrorRecord;
use crate::report::RunReport;

/// The JSON schema tag of a qualify record.
pub const SCHEMA: &str = "gdswap.qualify.v1";

/// One line of the output: a check row or one threshold of a test.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Line {
    /// `check` or `test`.
    pub kind: String,
    /// The check row (`io_uring`) or the test's name.
    pub name: String,
    /// What is measured: `gbps`, `gbps_per_target`, `iops`, `p99_us`, `p999_us`,
    /// `cpu_s_per_gib`, `verify_errors`, `run` (the run itself), or the check row.
    pub metric: String,
    /// The target of a per-target line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
    /// The measured number, when there is one.
    #[serde(default)]
    pub measured: Option<f64>,
    /// The measured value as shown (`3.21 GB/s`, `works (defer-taskrun)`).
    pub shown: String,
    /// The threshold as shown (`>= 3.00 GB/s`, `required`).
    pub threshold: String,
    /// Whether the measured value meets the threshold.
    pub pass: bool,
    /// Why it failed, when the value does not say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Line {
    /// What the line is about: the check row, or the test and its measure, with the target.
    pub fn label(&self) -> String {
        let mut s = if self.kind == "check" || self.metric.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.name, self.metric)
        };
        if let Some(t) = &self.target {
            s.push(' ');
            s.push_str(&t.display().to_string());
        }
        s
    }

    /// The line as printed: kind, label, measured, threshold, PASS/FAIL, and on a failure
    /// why (`shorten` may abbreviate it; the record keeps it whole).
    pub fn text(&self, shorten: &dyn Fn(&str) -> String) -> String {
        let mut s = format!(
            "{:<5}  {:<36} {:>18}  {:<18} {}",
            self.kind,
            self.label(),
            self.shown,
            self.threshold,
            if self.pass { "PASS" } else { "FAIL" }
        );
        if let (Some(r), false) = (&self.reason, self.pass) {
            s.push_str(": ");
            s.push_str(&shorten(r));
        }
        s
    }
}

/// A line of `kind`, `name` and `metric` that fails, with nothing shown and no threshold yet.
pub(super) fn line(kind: &str, name: &str, metric: &str) -> Line {
    Line {
        kind: kind.into(),
        name: name.into(),
        metric: metric.into(),
        target: None,
        measured: None,
        shown: String::new(),
        threshold: String::new(),
        pass: false,
        reason: None,
    }
}

/// Figures of one target or of all targets together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Figures {
    /// Bytes moved in the measured loops.
    pub bytes: u64,
    /// Requests in the measured loops.
    pub requests: u64,
    /// The slowest thread's time inside transfers, summed over loops.
    pub seconds: f64,
    /// bytes / seconds, GB/s (1e9 bytes).
    pub gbps: f64,
    /// requests / seconds.
    pub iops: f64,
    /// 99th percentile request latency, µs (all targets: the worst target's).
    pub p99_us: f64,
    /// 99.9th percentile request latency, µs (all targets: the worst target's).
    pub p999_us: f64,
    /// CPU seconds (user + system) per GiB moved.
    pub cpu_s_per_gib: f64,
    /// Process CPU seconds (user + system) during the measured loops.
    pub cpu_s: f64,
}

impl Figures {
    pub(super) fn of(r: &RunReport) -> Figures {
        let s = &r.summary;
        Figures {
            bytes: s.bytes,
            requests: s.requests,
            seconds: s.task_time_s,
            gbps: s.bandwidth_gbps,
            iops: s.iops,
            p99_us: s.latency.p99_us,
            p999_us: s.latency.p999_us,
            cpu_s_per_gib: s.cpu_s_per_gib,
            cpu_s: s.cpu_user_s + s.cpu_system_s,
        }
    }

    /// All targets together: they ran at the same time, so bytes and requests add up over
    /// the slowest target's time; latency is the worst target's; the process CPU time each
    /// run measured includes the others', so the largest is the total.
    pub(super) fn aggregate(all: &[Figures]) -> Option<Figures> {
        if all.is_empty() {
            return None;
        }
        let bytes: u64 = all.iter().map(|f| f.bytes).sum();
        let requests: u64 = all.iter().map(|f| f.requests).sum();
        let seconds = all.iter().map(|f| f.seconds).fold(0.0, f64::max);
        let cpu_s = all.iter().map(|f| f.cpu_s).fold(0.0, f64::max);
        let per = |n: f64| if seconds > 0.0 { n / seconds } else { 0.0 };
        let gib = bytes as f64 / (1u64 << 30) as f64;
        Some(Figures {
            bytes,
            requests,
            seconds,
            gbps: per(bytes as f64) / 1e9,
            iops: per(requests as f64),
            p99_us: all.iter().map(|f| f.p99_us).fold(0.0, f64::max),
            p999_us: all.iter().map(|f| f.p999_us).fold(0.0, f64::max),
            cpu_s_per_gib: if gib > 0.0 { cpu_s / gib } else { 0.0 },
            cpu_s,
        })
    }
}

/// One target of a test: its figures or its error, and the whole run report.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRecord {
    /// The target directory.
    pub target: PathBuf,
    /// Where its worker threads ran: `NUMA node 1 (the drive's), CPUs [2, 3]`, or why they
    /// were not bound.
    pub binding: String,
    /// The CPUs its worker threads were bound to.
    pub bound_cpus: Option<Vec<usize>>,
    /// Its figures, when its run succeeded.
    pub figures: Option<Figures>,
    /// Why its run failed, when it did.
    pub error: Option<String>,
    /// Wrong blocks its verification found (the first ones kept).
    pub verify_errors: Vec<VerifyErrorRecord>,
    /// The run's full report (as `gdswap run --json` writes it).
    pub report: Option<RunReport>,
}

/// One test: its targets and aggregate figures.
#[derive(Debug, Clone, Serialize)]
pub struct TestRecord {
    /// The test's name.
    pub name: String,
    /// The backend's name.
    pub backend: String,
    /// `read` or `write`.
    pub op: String,
    /// Why this node cannot run the backend (the test's line failed).
    pub unavailable: Option<String>,
    /// One record per target, in spec order.
    pub targets: Vec<TargetRecord>,
    /// All targets together (bytes over the slowest target's time); absent when none ran.
    pub aggregate: Option<Figures>,
    /// Under several ranks, in rank 0's record: every rank's figures merged (all bytes over
    /// the earliest start to the latest end of each loop, latencies from the merged
    /// histograms), on which the test's aggregate thresholds are decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<Figures>,
}

/// Everything a qualification did, written whether it passed, failed or could not run.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The node's name (`--node`, else the hostname).
    pub node: String,
    /// `pass`, `fail` or `error` (could not run).
    pub verdict: &'static str,
    /// 0 every line passed, 1 a line failed, 2 the qualification could not run.
    pub exit_status: u8,
    /// Why it could not run.
    pub error: Option<String>,
    /// The command line, as typed.
    pub command_line: Vec<String>,
    /// When it started, UTC, ISO 8601.
    pub started_at: String,
    /// When it ended, UTC, ISO 8601.
    pub finished_at: String,
    /// The gdswap crate version.
    pub gdswap_version: String,
    /// The git commit gdswap was built from.
    pub git_commit: String,
    /// The spec file.
    pub spec_path: PathBuf,
    /// The spec file as read (absent when it could not be read).
    pub spec_text: Option<String>,
    /// The spec as understood (absent when it did not parse).
    pub spec: Option<Spec>,
    /// The machine, kernel and filesystem of the data path (`[checks] path`, else the first
    /// test's first target).
    pub environment: Environment,
    /// `gdswap check`'s report on the node (absent when the qualification stopped before).
    pub check: Option<NodeReport>,
    /// Every line decided, checks first, in order.
    pub lines: Vec<Line>,
    /// Every test run, in spec order.
    pub tests: Vec<TestRecord>,
}

impl Record {
    /// The record as pretty JSON with a final newline (a one-field error record if it cannot
    /// be serialised).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            format!("{{\"schema\":\"{SCHEMA}\",\"error\":\"serialising the record: {e}\"}}")
        });
        s.push('\n');
        s
    }

    /// The lines that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| !l.pass)
    }

    /// One line: the verdict and the count of lines.
    pub fn verdict_line(&self) -> String {
        match &self.error {
            Some(e) => format!("verdict: could not run: {e}"),
            None => {
                let failed = self.failed().count();
                if failed == 0 {
                    format!(
                        "verdict: PASS ({} of {} lines passed)",
                        self.lines.len(),
                        self.lines.len()
                    )
                } else {
                    format!(
                        "verdict: FAIL ({failed} of {} lines failed)",
                        self.lines.len()
                    )
                }
            }
        }
    }
}

/// What the record's file names start with: `qualify-<node>-<time>`, safe as a file name.
pub fn record_stem(r: &Record) -> String {
    record_stem_of(&r.node, &r.started_at)
}

/// [`record_stem`] of a record's `node` and `started_at`.
pub fn record_stem_of(node: &str, started_at: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "qualify-{}-{}",
        clean(node),
        clean(&started_at.replace([':', '-'], ""))
    )
}
