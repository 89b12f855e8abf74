//! `gdswap run --dir A --dir B ...`: the workload on every directory (drive) at once, one
//! harness run per directory, all started together; figures per directory and for all
//! together (bytes of all over the slowest directory's time; the worst latency).

use std::path::PathBuf;

use super::sink::Sink;
use super::Outcome;
use crate::error::{Error, Setting};
use crate::harness;
use crate::options::{RunOptions, Target};
use crate::report::{self, RunReport};

pub fn run(
    first: &RunOptions,
    extra: &[PathBuf],
    json: Option<Sink>,
    csv: Option<Sink>,
    stdout_taken: bool,
) -> Result<Outcome, Error> {
    let mut all = vec![first.clone()];
    for d in extra {
        let mut o = first.clone();
        o.workload.target = Target::Dir(d.clone());
        o.validate()?;
        all.push(o);
    }
    let dir_of = |o: &RunOptions| match &o.workload.target {
        Target::Dir(p) | Target::File(p) => p.clone(),
    };
    let results: Vec<Result<RunReport, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = all
            .iter()
            .map(|o| {
                s.spawn(move || {
                    harness::run(o).map(|m| {
                        RunReport::new(o, &m, crate::env::collect(&dir_of(o)), report::now_utc())
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Internal(
                        "a target's run thread panicked (a bug in gdswap; please report it)".into(),
                    ))
                })
            })
            .collect()
    });
    let mut reports = Vec::with_capacity(results.len());
    for (o, r) in all.iter().zip(results) {
        match r {
            Ok(r) => reports.push(r),
            Err(e) => {
                let e = Error::Within {
                    context: crate::error::msg![Setting::Dir, format!(" {}", dir_of(o).display())],
                    source: Box::new(e),
                };
                if let Some(sink) = json {
                    let mut record = report::FailedRun::new(
                        o,
                        &e,
                        crate::env::collect(&dir_of(o)),
                        report::now_utc(),
                    );
                    record.command_line = std::env::args().collect();
                    // The record holds the line printed: with flags.
                    record.error.message = super::render(&e);
                    sink.write(&record.to_json())?;
                }
                return Err(e);
            }
        }
    }
    let mut text = String::new();
    for r in &reports {
        text.push_str(&format!(
            "{}: {}\n",
            r.params.workload.target.path().display(),
            report::human::summary_line(r)
        ));
    }
    let bytes: u64 = reports.iter().map(|r| r.summary.bytes).sum();
    let requests: u64 = reports.iter().map(|r| r.summary.requests).sum();
    let slowest = reports
        .iter()
        .map(|r| r.summary.task_time_s)
        .fold(0.0, f64::max);
    let worst_p99 = reports
        .iter()
        .map(|r| r.summary.latency.p99_us)
        .fold(0.0, f64::max);
    let per_s = |n: f64| if slowest > 0.0 { n / slowest } else { 0.0 };
    text.push_str(&format!(
        "all {} targets: {:.2} GiB/s ({:.2} GB/s), {:.0} IOPS (all bytes over the slowest target's time, {:.3} s), worst p99 {:.2} ms\n",
        reports.len(),
        per_s(bytes as f64) / (1u64 << 30) as f64,
        per_s(bytes as f64) / 1e9,
        per_s(requests as f64),
        slowest,
        worst_p99 / 1000.0
    ));
    if stdout_taken {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    for r in &reports {
        for w in &r.warnings {
            eprintln!(
                "warning: {}: {}\n  hint: {}",
                r.params.workload.target.path().display(),
                w.message,
                w.hint
            );
        }
    }
    if let Some(sink) = json {
        sink.write(&report::json::to_json(&reports))?;
    }
    if let Some(sink) = csv {
        sink.write(&report::csv::to_csv(&reports))?;
    }
    // A soak's wrong blocks, each listed; the run fails on them.
    let mut wrong = 0u64;
    for soak in reports.iter().filter_map(|r| r.soak.as_ref()) {
        for e in &soak.errors {
            eprintln!(
                "verify error: {} at offset {}: {}",
                e.path.display(),
                e.offset,
                e.found
            );
        }
        wrong = wrong.saturating_add(soak.verify_errors);
    }
    if wrong > 0 {
        return Err(Error::Mismatch(format!(
            "verify failed: {wrong} wrong 4 KiB blocks over {} targets (each listed above)",
            reports.len()
        )));
    }
    Ok(Outcome::Done)
}
