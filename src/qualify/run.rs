//! One test of the spec run and judged: all its targets' runs at the same time (or, under
//! several ranks, this rank's one target in lockstep with the others'), each target's figures
//! and the aggregate, and the test's lines against its thresholds.

use std::path::PathBuf;

use super::ranked;
use super::record::{line, Figures, Line, TargetRecord, TestRecord};
use super::spec::{self, TestSpec};
use crate::options::{RunOptions, Target};
use crate::ranks::Coordinator;
use crate::report::soak::VerifyErrorRecord;
use crate::report::RunReport;

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
pub(super) fn run_test(
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
