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
//!
//! This file runs the parts in order ([`qualify_with`]): what is read and checked before any
//! test runs (`prepare`), the check rows as lines (`node_checks`), each test's runs and
//! threshold lines (`run`), all of it kept in a [`Record`] (`record`).

pub mod fleet;
pub mod markdown;
pub mod ranked;
pub mod spec;

mod node_checks;
mod prepare;
mod record;
mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::{self, CheckOptions, DriverProbeOptions};
use crate::ranks::{Coordinator, Solo};
use prepare::{numa_placement, prepare};
use run::run_test;

pub use crate::report::soak::VerifyErrorRecord;
pub use node_checks::check_lines;
pub use record::{
    record_stem, record_stem_of, Figures, Line, Record, TargetRecord, TestRecord, SCHEMA,
};

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
