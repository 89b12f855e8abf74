//! `gdswap run --dir A --dir B ...`: the workload on every directory (drive) at once, one
//! harness run per directory, each on its own thread, meeting the others as the ranks of an
//! MPI run do ([`LocalGroup`]): after setup, after pre, before every loop (so every
//! directory's measured loop starts together), after the sync and after post. Figures per
//! directory, and for all together: all bytes over, per loop, the earliest start to the latest
//! end of any directory's loop (as the merge of ranks), the worst latency. With `--gpus
//! 0,1,...` (GPU backends), directory i moves its data to GPU i.

use std::path::PathBuf;

use super::sink::Sink;
use super::Outcome;
use crate::error::{Error, Setting};
use crate::harness;
use crate::options::{RunOptions, Target};
use crate::ranks::LocalGroup;
use crate::report::{self, RunReport};

pub fn run(
    first: &RunOptions,
    extra: &[PathBuf],
    gpus: &[usize],
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
    for (o, &gpu) in all.iter_mut().zip(gpus) {
        o.gpu.device = gpu;
    }
    let label = |r: &RunReport| match &r.params.gpu {
        Some(g) if !gpus.is_empty() => {
            format!(
                "{} (GPU {})",
                r.params.workload.target.path().display(),
                g.device
            )
        }
        _ => r.params.workload.target.path().display().to_string(),
    };
    let dir_of = |o: &RunOptions| match &o.workload.target {
        Target::Dir(p) | Target::File(p) => p.clone(),
    };
    let group = LocalGroup::new(all.len());
    let results: Vec<Result<(RunReport, Vec<crate::ranks::LoopWindow>), Error>> =
        std::thread::scope(|s| {
            let handles: Vec<_> = all
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let group = &group;
                    s.spawn(move || {
                        let _guard = CancelOnPanic(group);
                        let r = harness::run_with(o, &group.member(i));
                        if r.is_err() {
                            // The other directories stop at their next meeting instead of
                            // waiting for this one.
                            group.cancel();
                        }
                        r.map(|m| {
                            let windows = m.loops.iter().map(|l| l.window).collect();
                            let r = RunReport::new(
                                o,
                                &m,
                                crate::env::collect(&dir_of(o)),
                                report::now_utc(),
                            );
                            (r, windows)
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Internal(
                            "a target's run thread panicked (a bug in gdswap; please report it)"
                                .into(),
                        ))
                    })
                })
                .collect()
        });
    // The first real failure, not the "stopped because another failed" echoes.
    let first_failure = all
        .iter()
        .zip(&results)
        .position(|(_, r)| matches!(r, Err(e) if !matches!(e, Error::Aborted)))
        .or_else(|| results.iter().position(|r| r.is_err()));
    let mut reports = Vec::with_capacity(results.len());
    let mut windows = Vec::with_capacity(results.len());
    for (i, (o, r)) in all.iter().zip(results).enumerate() {
        match r {
            Ok((r, w)) => {
                reports.push(r);
                windows.push(w);
            }
            Err(_) if Some(i) != first_failure => {}
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
            label(r),
            report::human::summary_line(r)
        ));
    }
    let bytes: u64 = reports.iter().map(|r| r.summary.bytes).sum();
    let requests: u64 = reports.iter().map(|r| r.summary.requests).sum();
    // Each loop's span, from the earliest start to the latest end of any directory's loop
    // (the loops started together), summed over loops.
    let loops = windows.iter().map(Vec::len).min().unwrap_or(0);
    let span: f64 = (0..loops)
        .map(|i| {
            let start = windows
                .iter()
                .map(|w| w[i].start_unix_ns)
                .min()
                .unwrap_or(0);
            let end = windows.iter().map(|w| w[i].end_unix_ns).max().unwrap_or(0);
            end.saturating_sub(start) as f64 / 1e9
        })
        .sum();
    let worst_p99 = reports
        .iter()
        .map(|r| r.summary.latency.p99_us)
        .fold(0.0, f64::max);
    let per_s = |n: f64| if span > 0.0 { n / span } else { 0.0 };
    text.push_str(&format!(
        "all {} targets: {:.2} GiB/s ({:.2} GB/s), {:.0} IOPS (all bytes over each loop's earliest start to latest end, loops started together: {:.3} s), worst p99 {:.2} ms\n",
        reports.len(),
        per_s(bytes as f64) / (1u64 << 30) as f64,
        per_s(bytes as f64) / 1e9,
        per_s(requests as f64),
        span,
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

/// Cancels the group if a directory's run thread unwinds, so no other waits for it forever.
struct CancelOnPanic<'a>(&'a LocalGroup);

impl Drop for CancelOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.cancel();
        }
    }
}
