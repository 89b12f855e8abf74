//! `gdswap qualify`: a node against a spec ([`spec::Spec`]): the `check` rows it requires, then
//! each workload with its thresholds, one [`Line`] per row and threshold with the measured
//! value and PASS/FAIL, and a verdict. The result is always a [`Record`], failed or not: the
//! error, the command line, the spec, `check`'s report, the environment, timestamps, the
//! gdswap version and commit ([`Record::to_json`], [`markdown::record`]).
//!
//! The workloads reuse the harness as `gdswap run` does: each target of a test gets its own
//! run with the test's threads and size, and all targets of a test run at the same time;
//! figures are per target and aggregate (bytes of all targets over the slowest target's time;
//! latency percentiles the worst target's; CPU the process's, which all targets share).
//!
//! Exit status ([`Record::exit_status`]): 0 every line passed, 1 a line failed, 2 the
//! qualification could not run (no spec, a bad spec, a target that is not there, a workload
//! gdswap refuses): the record then says why in `error`.

pub mod fleet;
pub mod markdown;
pub mod ranked;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::check::{self, CheckOptions, DriverProbeOptions, NodeReport};
use crate::env::Environment;
use crate::options::{GpuOptions, RunOptions, Target, Workload};
use crate::ranks::{Coordinator, Solo};
use crate::report::RunReport;
use spec::{Memlock, Spec, TestSpec};

/// The JSON schema tag of a qualify record.
pub const SCHEMA: &str = "gdswap.qualify.v1";

/// What to qualify, as the command line said it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The spec file (TOML).
    pub spec_path: PathBuf,
    /// The whole command line, recorded as typed.
    pub command_line: Vec<String>,
    /// The node's name in the record (default: the hostname).
    pub node: Option<String>,
    /// Every test runs for this long instead of its own `duration` or `loops`.
    pub duration: Option<Duration>,
    /// The gdswap binary, to open the cuFile driver in a child process (the `gpudirect`
    /// check); `None`: the driver is not opened.
    pub exe: Option<PathBuf>,
    /// The sysfs tree (`/sys`; tests: a fixture).
    pub sysfs: PathBuf,
}

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
    fn of(r: &RunReport) -> Figures {
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
    fn aggregate(all: &[Figures]) -> Option<Figures> {
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

pub use crate::report::soak::VerifyErrorRecord;

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

/// What a qualification reports while it runs.
pub enum Event<'a> {
    /// A line was decided.
    Line(&'a Line),
    /// A test's runs start; `duration`: a time-based one, this long.
    TestStarts {
        /// The test's name.
        name: &'a str,
        /// The time-based test's duration; `None`: a number of loops.
        duration: Option<Duration>,
    },
    /// The test's runs ended.
    TestEnds,
    /// Where a target's worker threads run (their NUMA node and CPUs).
    Binding {
        /// The test's name.
        test: &'a str,
        /// The target directory.
        target: &'a Path,
        /// Its NUMA node and CPUs, or why they were not bound.
        binding: &'a str,
    },
}

/// Runs the qualification; `progress` sees each line as it is decided.
pub fn qualify(inv: &Invocation, progress: &mut dyn FnMut(Event)) -> Record {
    qualify_with(inv, &Solo, progress)
}

/// Runs the qualification as one of the processes `coord` connects ([`ranked`]): every rank
/// runs the check rows and the tests in step, each on its own files (`<target>/rank<N>`) and
/// GPU, and its record is named `<node>-rank<N>`; rank 0's tests also carry the merged
/// figures of all ranks (`merged`) and their threshold lines. One process: [`qualify`].
pub fn qualify_with(
    inv: &Invocation,
    coord: &dyn Coordinator,
    progress: &mut dyn FnMut(Event),
) -> Record {
    let started_at = crate::report::now_utc();
    let mut record = Record {
        schema: SCHEMA,
        node: String::new(),
        verdict: "error",
        exit_status: 2,
        error: None,
        command_line: inv.command_line.clone(),
        started_at,
        finished_at: String::new(),
        gdswap_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: env!("GDSWAP_GIT_COMMIT").to_string(),
        spec_path: inv.spec_path.clone(),
        spec_text: None,
        spec: None,
        environment: crate::env::collect(Path::new(".")),
        check: None,
        lines: Vec::new(),
        tests: Vec::new(),
    };
    record.node = node_name(inv, &record.environment.hostname, coord);
    if let Err(e) = run_all(inv, &mut record, progress, coord) {
        record.error = Some(e);
    }
    record.finished_at = crate::report::now_utc();
    (record.verdict, record.exit_status) = match (&record.error, record.failed().count()) {
        (Some(_), _) => ("error", 2),
        (None, 0) => ("pass", 0),
        (None, _) => ("fail", 1),
    };
    record
}

/// The record's node: `--node` or the hostname; under several ranks with `-rank<N>`.
fn node_name(inv: &Invocation, hostname: &str, coord: &dyn Coordinator) -> String {
    let node = inv.node.clone().unwrap_or_else(|| hostname.to_string());
    if coord.size() > 1 {
        format!("{node}-rank{}", coord.rank())
    } else {
        node
    }
}

/// Everything up to the verdict; an `Err` is why it could not run (exit status 2).
fn run_all(
    inv: &Invocation,
    record: &mut Record,
    progress: &mut dyn FnMut(Event),
    coord: &dyn Coordinator,
) -> Result<(), String> {
    // Every rank reads and checks its spec and targets; if one cannot run, none does.
    let prepared = prepare(inv, record, coord);
    let (spec, mut plans) = ranked::settle(coord, prepared)?;
    let lockstep = ranked::Lockstep::new(coord);
    let lockstep = (coord.size() > 1).then_some(&lockstep);

    let data_path = spec
        .checks
        .path
        .clone()
        .or_else(|| spec.tests.first().and_then(|t| t.targets.first().cloned()))
        .unwrap_or_else(|| PathBuf::from("."));
    record.environment = crate::env::collect(&data_path);
    record.node = node_name(inv, &record.environment.hostname, coord);
    let report = check::collect(&CheckOptions {
        path: data_path.clone(),
        cufile: None,
        driver_probe: inv.exe.clone().map(|exe| DriverProbeOptions {
            exe,
            force: false,
            timeout: Duration::from_secs(20),
        }),
    });
    let mut targets: Vec<PathBuf> = spec.tests.iter().flat_map(|t| t.targets.clone()).collect();
    targets.dedup();
    for line in check_lines(&spec.checks, &report, &inv.sysfs, &targets) {
        progress(Event::Line(&line));
        record.lines.push(line);
    }
    record.check = Some(report);

    // The CPUs this process may run on (a launcher's or taskset's binding): every binding
    // stays within them, as `run`'s does.
    let allowed = crate::io::sys::thread_cpus()
        .map_err(|e| format!("cannot read this process's CPU affinity: {e}"));
    let placement = numa_placement(
        &spec,
        &mut plans,
        record.check.as_ref(),
        &inv.sysfs,
        allowed.as_deref().map_err(String::as_str),
    );
    for (t, opts) in spec.tests.iter().zip(&plans) {
        for (dir, (binding, _)) in t.targets.iter().zip(&placement[&t.name]) {
            progress(Event::Binding {
                test: &t.name,
                target: dir,
                binding,
            });
        }
        progress(Event::TestStarts {
            name: &t.name,
            duration: opts.first().and_then(|o| o.duration),
        });
        let (mut test, lines) = run_test(t, opts, lockstep);
        for (tr, (binding, cpus)) in test.targets.iter_mut().zip(&placement[&t.name]) {
            tr.binding.clone_from(binding);
            tr.bound_cpus.clone_from(cpus);
        }
        progress(Event::TestEnds);
        for line in lines {
            progress(Event::Line(&line));
            record.lines.push(line);
        }
        record.tests.push(test);
    }
    Ok(())
}

/// Reads the spec and checks every target and workload before anything runs: the spec and
/// each test's run options (this rank's own, under several ranks).
fn prepare(
    inv: &Invocation,
    record: &mut Record,
    coord: &dyn Coordinator,
) -> Result<(Spec, Vec<Vec<RunOptions>>), String> {
    let text = crate::io::file::read_regular(&inv.spec_path).map_err(|e| {
        let spec = crate::error::setting_name(crate::error::Setting::Spec);
        format!("{spec} {}: cannot read it: {e}", inv.spec_path.display())
    })?;
    record.spec_text = Some(text.clone());
    let spec = spec::parse(&inv.spec_path, &text).map_err(|e| e.0)?;
    record.spec = Some(spec.clone());

    // Every target and workload checked before anything runs.
    let mut plans = Vec::with_capacity(spec.tests.len());
    for t in &spec.tests {
        if coord.size() > 1 && t.targets.len() > 1 {
            return Err(format!(
                "test '{}': {} targets, but under a parallel launch each rank runs one target \
                 (MPI is called from one thread of a rank, and a test's targets run on their own \
                 threads): give each test one target; each rank uses its own subdirectory of it \
                 (<target>/rank<N>), so start one rank per drive or GPU",
                t.name,
                t.targets.len()
            ));
        }
        for dir in &t.targets {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "test '{}': target {} is not a directory",
                        t.name,
                        dir.display()
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "test '{}': target {} cannot be reached: {e}",
                        t.name,
                        dir.display()
                    ))
                }
            }
        }
        let opts: Vec<RunOptions> = run_options(t, inv.duration)
            .into_iter()
            .map(|o| crate::ranks::for_rank(o, coord))
            .collect();
        for o in &opts {
            // A rank's own directory, when it is there already, must be one.
            if let Target::Dir(d) = &o.workload.target {
                if coord.size() > 1 && d.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                    return Err(format!(
                        "test '{}': target {} is not a directory",
                        t.name,
                        d.display()
                    ));
                }
            }
            o.validate()
                .map_err(|e| format!("test '{}': {e}", t.name))?;
        }
        plans.push(opts);
    }
    Ok((spec, plans))
}

/// NUMA placement of every target's worker threads: the NUMA node of its GPU (GPU backends)
/// or of its drive, and that node's CPUs, from sysfs, within `allowed` (the CPUs this process
/// may run on, [`crate::numa::node_cpus_allowed`]: a launcher's or taskset's binding is kept,
/// as `run` keeps it); `plans` get their `numa_placement`. Per test, per target: (what the
/// binding is, the CPUs). A binding the affinity narrowed says so; a node none of whose CPUs
/// is allowed is not bound, and says why.
#[allow(clippy::type_complexity)]
fn numa_placement(
    spec: &Spec,
    plans: &mut [Vec<RunOptions>],
    check: Option<&NodeReport>,
    sysfs: &Path,
    allowed: std::result::Result<&[usize], &str>,
) -> std::collections::BTreeMap<String, Vec<(String, Option<Vec<usize>>)>> {
    let mut out = std::collections::BTreeMap::new();
    for (t, opts) in spec.tests.iter().zip(plans.iter_mut()) {
        let gpu_backend = t.backend.memory() == crate::types::MemoryKind::Device;
        let mut per_target = Vec::new();
        for (dir, o) in t.targets.iter().zip(opts.iter_mut()) {
            let node = if gpu_backend {
                let ordinal = o.gpu.device;
                check
                    .and_then(|c| c.gpus.devices.iter().find(|g| g.ordinal == ordinal))
                    .and_then(|g| g.numa_node)
                    .and_then(|n| u32::try_from(n).ok())
                    .map(|n| (n, format!("GPU {ordinal}'s")))
                    .ok_or_else(|| format!("sysfs gives no NUMA node for GPU {ordinal}"))
            } else {
                crate::topology::drive_of(sysfs, dir)
                    .ok()
                    .and_then(|d| d.pci.and_then(|p| p.numa_node))
                    .map(|n| (n, "the drive's".to_string()))
                    .ok_or_else(|| "sysfs gives no NUMA node for the drive".to_string())
            };
            let entry = match (node, allowed) {
                (Err(why), _) => (format!("not bound: {why}"), None),
                (Ok(_), Err(why)) => (format!("not bound: {why}"), None),
                (Ok((n, whose)), Ok(allowed)) => {
                    match crate::numa::node_cpus_allowed(sysfs, n, allowed) {
                        Ok(c) => {
                            o.numa_placement = Some(crate::numa::NumaPlacement {
                                node: Some(n),
                                cpus: c.cpus.clone(),
                                reason: whose.clone(),
                            });
                            let within = if c.narrowed() {
                                format!(
                                    " (node {n}'s CPUs {} within this process's affinity {})",
                                    crate::numa::cpu_ranges(&c.listed),
                                    crate::numa::cpu_ranges(allowed)
                                )
                            } else {
                                String::new()
                            };
                            (
                                format!("NUMA node {n} ({whose}), CPUs {:?}{within}", c.cpus),
                                Some(c.cpus),
                            )
                        }
                        Err(why) => (format!("not bound: {why} ({whose})"), None),
                    }
                }
            };
            per_target.push(entry);
        }
        out.insert(t.name.clone(), per_target);
    }
    out
}

/// The run options of each target of `t`.
fn run_options(t: &TestSpec, duration: Option<Duration>) -> Vec<RunOptions> {
    t.targets
        .iter()
        .enumerate()
        .map(|(i, dir)| RunOptions {
            backend: t.backend,
            workload: Workload {
                op: t.op,
                target: Target::Dir(dir.clone()),
                size: t.size(),
                block_size: t.block_size.0,
                queue_depth: t.queue_depth,
                threads: t.threads,
                loops: t.loops,
                warmup: t.warmup,
            },
            random: t.random,
            verify: t.verifies(),
            gpu: GpuOptions {
                device: t.gpus.get(i).copied().unwrap_or(t.gpu),
                bounce_buffers: 2 * t.queue_depth as usize,
                gds: (t.backend == crate::types::BackendId::Gds).then(Default::default),
                ..GpuOptions::default()
            },
            create_dir: false,
            duration: duration.or(t.duration.map(|s| s.0)),
            // A threshold on verify errors makes a soak: every loop verified, wrong blocks
            // counted up to it (one more stops the run).
            max_errors: t.thresholds.max_verify_errors,
            // Qualify places the workers itself ([`numa_placement`]), binding where sysfs
            // names a node whatever the number of nodes.
            numa: crate::numa::NumaChoice::Off,
            ..RunOptions::default()
        })
        .collect()
}

fn line(kind: &str, name: &str, metric: &str) -> Line {
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

/// The check rows the spec requires, one line each (PCIe: one per device).
pub fn check_lines(
    c: &spec::Checks,
    r: &NodeReport,
    sysfs: &Path,
    targets: &[PathBuf],
) -> Vec<Line> {
    let mut out = Vec::new();
    let row = |metric: &str, pass: bool, shown: String, threshold: &str| Line {
        pass,
        shown,
        threshold: threshold.into(),
        ..line("check", metric, metric)
    };
    if c.io_uring {
        let u = &r.io_uring;
        out.push(row(
            "io_uring",
            u.works,
            match (&u.mode, &u.error) {
                (Some(m), _) if u.works => format!("works ({m})"),
                (_, Some(e)) => format!("fails: {e}"),
                _ => (if u.works { "works" } else { "fails" }).into(),
            },
            "works",
        ));
    }
    if c.o_direct {
        let o = &r.path.o_direct;
        let mut l = row(
            "o_direct",
            o.works,
            (if o.works { "works" } else { "fails" }).into(),
            "works",
        );
        l.reason = Some(format!("{}: {}", r.path.path.display(), o.detail));
        out.push(l);
    }
    if let Some(want) = c.memlock {
        let m = &r.memlock;
        let (pass, shown) = match (m.limit_bytes, m.cap_ipc_lock) {
            (_, true) => (true, "CAP_IPC_LOCK (no limit)".to_string()),
            (None, _) => (true, "unlimited".to_string()),
            (Some(l), _) => (
                matches!(want, Memlock::AtLeast(w) if l >= w),
                crate::size::Bytes(l).to_string(),
            ),
        };
        let threshold = match want {
            Memlock::Unlimited => "unlimited".to_string(),
            Memlock::AtLeast(w) => format!(">= {}", crate::size::Bytes(w)),
        };
        out.push(row("memlock", pass, shown, &threshold));
    }
    if c.nvidia_fs {
        let dir = sysfs.join("module/nvidia_fs");
        let loaded = dir.is_dir();
        let mut l = row(
            "nvidia_fs",
            loaded,
            (if loaded { "loaded" } else { "not loaded" }).into(),
            "loaded",
        );
        if !loaded {
            l.reason = Some(format!("no {} (modprobe nvidia-fs)", dir.display()));
        }
        out.push(l);
    }
    if c.gpudirect {
        let v = r.verdict(crate::types::BackendId::Gds);
        let path = v
            .and_then(|v| v.gds_path)
            .unwrap_or(crate::types::GdsPath::Unknown);
        let mut l = row(
            "gpudirect",
            path.is_direct(),
            path.as_str().into(),
            "gpudirect",
        );
        if !l.pass {
            l.reason = v.and_then(|v| v.gds_path_reason.clone());
        }
        out.push(l);
    }
    if c.pcie_link {
        out.extend(pcie_lines(r, sysfs, targets));
    }
    out
}

/// One line per GPU and per target drive: its PCIe link at its maximum speed and width.
fn pcie_lines(r: &NodeReport, sysfs: &Path, targets: &[PathBuf]) -> Vec<Line> {
    let mut out = Vec::new();
    let link_line = |what: String, dev: Result<crate::topology::PciDevice, String>| {
        let mut l = Line {
            target: Some(PathBuf::from(what)),
            threshold: "at max".into(),
            ..line("check", "pcie_link", "pcie_link")
        };
        match dev {
            Ok(d) => match &d.link {
                Some(link) => {
                    l.pass = link.at_max();
                    l.shown = link.to_string();
                    if !l.pass {
                        l.reason = Some(format!("{} runs below its maximum", d.address));
                    }
                }
                None => {
                    l.shown = "no link".into();
                    l.reason = Some(format!("{}: sysfs has no PCIe link files", d.address));
                }
            },
            Err(why) => {
                l.shown = "unknown".into();
                l.reason = Some(why);
            }
        }
        l
    };
    if r.gpus.examined {
        for g in &r.gpus.devices {
            let dev = match &g.pci_bus_id {
                Some(id) => crate::topology::pci_device(sysfs, id),
                None => Err("the driver gave no PCI bus id".into()),
            };
            out.push(link_line(format!("gpu{}", g.ordinal), dev));
        }
    } else {
        let mut l = line("check", "pcie_link", "pcie_link");
        l.target = Some(PathBuf::from("gpus"));
        l.shown = "not examined".into();
        l.threshold = "at max".into();
        l.reason = r.gpus.reason.clone();
        out.push(l);
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in targets {
        let dev = crate::topology::drive_of(sysfs, t).and_then(|d| {
            if !seen.insert(d.major_minor.clone()) {
                return Ok(None);
            }
            d.pci
                .map(Some)
                .ok_or_else(|| format!("{} ({}) is not behind a PCI function", d.name, t.display()))
        });
        match dev {
            Ok(None) => {}
            Ok(Some(d)) => out.push(link_line(t.display().to_string(), Ok(d))),
            Err(why) => out.push(link_line(t.display().to_string(), Err(why))),
        }
    }
    out
}

/// Where a run's files are (a target, or a rank's own directory of it).
fn target_path(o: &RunOptions) -> PathBuf {
    match &o.workload.target {
        Target::Dir(p) | Target::File(p) => p.clone(),
    }
}

/// Every target's run at the same time, each on its own thread.
fn run_threads(opts: &[RunOptions]) -> Vec<crate::Result<RunReport>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = opts
            .iter()
            .map(|o| {
                s.spawn(move || {
                    let path = match &o.workload.target {
                        Target::Dir(p) | Target::File(p) => p.clone(),
                    };
                    crate::harness::run(o).map(|m| {
                        RunReport::new(o, &m, crate::env::collect(&path), crate::report::now_utc())
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(crate::Error::Internal(
                        "a qualify run thread panicked (a bug in gdswap; please report it)".into(),
                    ))
                })
            })
            .collect()
    })
}

/// This rank's run of its one target, meeting the other ranks at every phase on this thread
/// (MPI is called from it only), then the merged figures of all ranks on rank 0 (`None`
/// elsewhere, or when a rank's run failed).
fn run_ranked(
    o: &RunOptions,
    ls: &ranked::Lockstep,
) -> (Vec<crate::Result<RunReport>>, Option<Figures>) {
    let path = target_path(o);
    let run = crate::harness::run_with(o, ls);
    let ended = ls.finish(run.is_err());
    let m = match (run, ended) {
        (Err(e), _) | (Ok(_), Err(e)) => return (vec![Err(e)], None),
        (Ok(_), Ok(false)) => {
            return (vec![Err(crate::Error::Ranks(ranked::STOPPED.into()))], None)
        }
        (Ok(m), Ok(true)) => m,
    };
    let env = crate::env::collect(&path);
    let mine = RunReport::new(o, &m, env.clone(), crate::report::now_utc());
    // Every rank's run ended well: every rank sends its figures (all in step again).
    match crate::rank_merge::gather(ls.inner(), m) {
        Ok(all) if ls.rank() == 0 => {
            let merged = RunReport::new(o, &all, env, crate::report::now_utc());
            (vec![Ok(mine)], Some(Figures::of(&merged)))
        }
        Ok(_) => (vec![Ok(mine)], None),
        Err(e) => (vec![Err(e)], None),
    }
}

/// Runs one test on all its targets at once, and decides its lines. Under several ranks
/// (`lockstep`), this rank's one target meets the other ranks' at every phase, and rank 0 also
/// decides the test's thresholds on all ranks' merged figures.
fn run_test(
    t: &TestSpec,
    opts: &[RunOptions],
    lockstep: Option<&ranked::Lockstep>,
) -> (TestRecord, Vec<Line>) {
    let mut test = TestRecord {
        name: t.name.clone(),
        backend: t.backend.name().to_string(),
        op: t.op.to_string(),
        unavailable: None,
        targets: Vec::new(),
        aggregate: None,
        merged: None,
    };
    let mut lines = Vec::new();
    let backend = crate::backend::get(t.backend);
    let probe = backend.probe();
    if let Some(ls) = lockstep {
        // Every rank runs the test, or none does (a rank alone would wait for the others).
        let here = !matches!(probe, crate::backend::Availability::Unavailable(_));
        let everywhere = ranked::all(ls.inner(), here);
        if here && !matches!(everywhere, Ok(true)) {
            let mut l = line("test", &t.name, "run");
            l.shown = "not run".into();
            l.threshold = "completes".into();
            l.reason = Some(match everywhere {
                Err(e) => format!("meeting the other ranks: {e}"),
                Ok(_) => format!(
                    "another rank cannot run the {} backend (its record says why)",
                    t.backend
                ),
            });
            lines.push(l);
            return (test, lines);
        }
    }
    if let crate::backend::Availability::Unavailable(why) = probe {
        let mut l = line("test", &t.name, "run");
        l.shown = "cannot run".into();
        l.threshold = format!("backend {}", t.backend);
        l.reason = Some(format!(
            "this node cannot run the {} backend: {why}",
            t.backend
        ));
        test.unavailable = Some(why.to_string());
        lines.push(l);
        return (test, lines);
    }
    let (results, merged) = match lockstep {
        Some(ls) => run_ranked(&opts[0], ls),
        None => (run_threads(opts), None),
    };
    test.merged = merged;
    let mut figures = Vec::new();
    let mut verify_errors = 0u64;
    let mut failed_runs = Vec::new();
    for (o, result) in opts.iter().zip(results) {
        let dir = target_path(o);
        let mut tr = TargetRecord {
            target: dir.clone(),
            binding: String::new(),
            bound_cpus: None,
            figures: None,
            error: None,
            verify_errors: Vec::new(),
            report: None,
        };
        match result {
            Ok(r) => {
                // A soak that found wrong blocks within its limit ran to its end.
                if let Some(soak) = &r.soak {
                    verify_errors += soak.verify_errors;
                    tr.verify_errors.clone_from(&soak.errors);
                }
                let f = Figures::of(&r);
                figures.push(f);
                tr.figures = Some(f);
                tr.report = Some(r);
            }
            Err(crate::Error::Verify(v)) => {
                // The run stopped at the block past its limit: at least one more than it.
                verify_errors += t
                    .thresholds
                    .max_verify_errors
                    .map_or(1, |m| m.saturating_add(1));
                tr.verify_errors.push(VerifyErrorRecord::of(&v));
                tr.error = Some(format!("verify failed: {v}"));
            }
            Err(e) => {
                failed_runs.push((dir.clone(), e.to_string()));
                tr.error = Some(e.to_string());
            }
        }
        test.targets.push(tr);
    }
    for (dir, why) in &failed_runs {
        let mut l = line("test", &t.name, "run");
        l.target = Some(dir.clone());
        l.shown = "failed".into();
        l.threshold = "completes".into();
        l.reason = Some(why.clone());
        lines.push(l);
    }
    let th = &t.thresholds;
    let complete = failed_runs.is_empty() && verify_errors == 0;
    test.aggregate = if complete {
        Figures::aggregate(&figures)
    } else {
        None
    };
    if let Some(min) = th.min_gbps_per_target {
        for tr in &test.targets {
            if let Some(f) = tr.figures {
                let mut l = line("test", &t.name, "gbps_per_target");
                l.target = Some(tr.target.clone());
                l.measured = Some(f.gbps);
                l.shown = format!("{:.2} GB/s", f.gbps);
                l.threshold = format!(">= {min:.2} GB/s");
                l.pass = f.gbps >= min;
                lines.push(l);
            }
        }
    }
    // Under several ranks the aggregate thresholds hold for all ranks together: rank 0
    // decides them on the merged figures; the other ranks' records have their own lines only.
    let (judged, whole) = match lockstep {
        None => (test.aggregate, None),
        Some(ls) => (
            test.merged,
            Some(PathBuf::from(format!("all {} ranks", ls.size()))),
        ),
    };
    if let Some(a) = judged {
        let mut at_least =
            |metric: &str, value: f64, min: Option<f64>, unit: &str, digits: usize| {
                if let Some(min) = min {
                    let mut l = line("test", &t.name, metric);
                    l.target.clone_from(&whole);
                    l.measured = Some(value);
                    l.shown = format!("{value:.digits$} {unit}");
                    l.threshold = format!(">= {min:.digits$} {unit}");
                    l.pass = value >= min;
                    lines.push(l);
                }
            };
        at_least("gbps", a.gbps, th.min_gbps, "GB/s", 2);
        at_least("iops", a.iops, th.min_iops, "IOPS", 0);
        let mut at_most =
            |metric: &str, value: f64, max: Option<f64>, unit: &str, digits: usize| {
                if let Some(max) = max {
                    let mut l = line("test", &t.name, metric);
                    l.target.clone_from(&whole);
                    l.measured = Some(value);
                    l.shown = format!("{value:.digits$} {unit}");
                    l.threshold = format!("<= {max:.digits$} {unit}");
                    l.pass = value <= max;
                    lines.push(l);
                }
            };
        let us = |s: Option<spec::Span>| s.map(|s| s.0.as_secs_f64() * 1e6);
        at_most("p99_us", a.p99_us, us(th.max_p99), "us", 0);
        at_most("p999_us", a.p999_us, us(th.max_p999), "us", 0);
        at_most(
            "cpu_s_per_gib",
            a.cpu_s_per_gib,
            th.max_cpu_s_per_gib,
            "CPU-s/GiB",
            3,
        );
    }
    if let Some(max) = th.max_verify_errors {
        let mut l = line("test", &t.name, "verify_errors");
        l.measured = Some(verify_errors as f64);
        l.shown = verify_errors.to_string();
        l.threshold = format!("<= {max}");
        // A failed run verified nothing: the line cannot pass then.
        l.pass = verify_errors <= max && failed_runs.is_empty();
        if let Some(first) = test.targets.iter().flat_map(|t| &t.verify_errors).next() {
            l.reason = Some(format!(
                "first at {} offset {}: {}",
                first.path.display(),
                first.offset,
                first.found
            ));
        }
        lines.push(l);
    } else if verify_errors > 0 {
        // Verification was asked for without a threshold: any wrong byte fails the test.
        let mut l = line("test", &t.name, "verify_errors");
        l.measured = Some(verify_errors as f64);
        l.shown = verify_errors.to_string();
        l.threshold = "0".into();
        l.reason = test
            .targets
            .iter()
            .flat_map(|t| &t.verify_errors)
            .next()
            .map(|v| {
                format!(
                    "first at {} offset {}: {}",
                    v.path.display(),
                    v.offset,
                    v.found
                )
            });
        lines.push(l);
    }
    if lines.is_empty() {
        // No threshold: the test passes by running.
        let mut l = line("test", &t.name, "run");
        l.pass = true;
        l.shown = test
            .aggregate
            .map_or("completed".into(), |a| format!("{:.2} GB/s", a.gbps));
        l.measured = test.aggregate.map(|a| a.gbps);
        l.threshold = "completes".into();
        lines.push(l);
    }
    (test, lines)
}
