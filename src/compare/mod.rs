//! `compare`: the same workload through several contenders (gdswap backends, then peer tools),
//! interleaved in rounds, `A B C, A B C, ...`.
//!
//! Why interleaved rounds rather than `A A A, B B B`: the machine drifts during a benchmark (the
//! page cache fills, the device heats up or finishes background work, a neighbour starts a
//! build), and a block of runs per contender would hand all of that drift to whoever ran last.
//! Interleaving spreads it over everyone, and ratios taken round by round (round `r` of `B`
//! against round `r` of `A`, the first contender) cancel what a round shares; the result is
//! their median and range, see [`crate::report::comparison`].
//!
//! Each round of a backend is one complete `gdswap run` (setup, pre, warm-up, measured loops,
//! post) through [`crate::harness::run`], so a comparison measures exactly what `run` measures.
//! Each round of a peer is one run of the tool on the same files and byte ranges
//! ([`crate::peer`]). Contenders are resolved before anything runs: unknown names and
//! options a contender cannot take are errors naming the flag; backends that cannot run here
//! (by default) and peers that are not installed are skipped with the reason, never a failure.
//! "Cannot run here" is the backend's probe, then its preflight on the workload saying
//! unavailable (gds: cuFile refuses the data file even in compat mode), so a node where one
//! backend cannot move bytes still compares the others.
//!
//! Nothing here prints: progress goes to a callback, results come back as a
//! [`Comparison`]. A stop flag (set by the CLI on Ctrl-C) is checked between runs.
//!
//! This file holds the rounds ([`compare`], [`compare_with`]) and what they report; the
//! contenders and the resolved comparison are in `spec`, resolving names and `--config` into
//! one in `resolve`.

mod resolve;
mod spec;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{Error, Result, Setting};
use crate::harness;
use crate::options::Target;
use crate::peer;
use crate::report::comparison::{CompareParams, Comparison, Measured, RoundFigures, Skipped};
use crate::report::{self, RunReport, WarningRecord};
use crate::size::Bytes;

pub use resolve::{resolve, with_config};
pub use spec::{CompareSpec, Contender, HOST_RING, MAX_ROUNDS};

/// What the comparison is doing, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A run is about to start.
    Starting {
        /// The round, 1-based.
        round: u32,
        /// Rounds in all.
        rounds: u32,
        /// The contender's name.
        name: String,
    },
    /// A run finished.
    Measured {
        /// The round, 1-based.
        round: u32,
        /// Rounds in all.
        rounds: u32,
        /// The contender's name.
        name: String,
        /// The run's bandwidth, GiB/s.
        gibps: f64,
    },
}

/// The parameters a comparison records.
pub fn params_of(spec: &CompareSpec) -> CompareParams {
    let o = &spec.base;
    CompareParams {
        workload: o.workload.clone(),
        rounds: spec.rounds,
        random: o.random,
        direct: o.direct,
        huge_pages: o.huge_pages,
        fixed_buffers: o.fixed_buffers,
        bounce_buffers: None,
        gds_api: None,
    }
}

/// Runs the comparison: `rounds` rounds, each contender once per round, in order.
pub fn compare(
    spec: &CompareSpec,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Comparison> {
    compare_with(spec, stop, progress, &crate::ranks::Solo)
}

/// [`compare`] as one of the processes `coord` connects (mpirun, srun): every backend run
/// meets the other processes at its phases, and its figures are merged on rank 0 (the other
/// ranks' comparison holds their own figures, and is not to be reported). Every rank must be
/// given the same contenders, peers excluded (they are not coordinated).
pub fn compare_with(
    spec: &CompareSpec,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
    coord: &dyn crate::ranks::Coordinator,
) -> Result<Comparison> {
    let data_path = match &spec.base.workload.target {
        Target::File(p) | Target::Dir(p) => p.clone(),
    };
    // Collected again after each backend run: before the first one, a default data directory
    // may not exist yet, and the filesystem would be that of its parent.
    let mut env = crate::env::collect(&data_path);
    let mut measured: Vec<Measured> = spec
        .contenders
        .iter()
        .map(|c| Measured {
            name: c.name().to_string(),
            kind: c.kind(),
            mode: String::new(),
            rounds: Vec::new(),
            run_warnings: Vec::new(),
        })
        .collect();
    // A peer that fails is dropped (and listed as skipped, with why) rather than failing the
    // comparison: the backends' measurements are the point, the peer is a reference.
    let mut peer_failed: Vec<Option<String>> = vec![None; spec.contenders.len()];
    for round in 1..=spec.rounds {
        for (i, (c, m)) in spec.contenders.iter().zip(measured.iter_mut()).enumerate() {
            if stop.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            if peer_failed[i].is_some() {
                continue;
            }
            progress(Progress::Starting {
                round,
                rounds: spec.rounds,
                name: c.name().to_string(),
            });
            let within = |e: Error| Error::Within {
                context: format!("{} (round {round} of {})", c.name(), spec.rounds).into(),
                source: Box::new(e),
            };
            let figures = match c {
                Contender::Backend(_) | Contender::HostRing => {
                    let opts = spec.options_of(c).ok_or(Error::Internal(
                        "a backend contender has run options".into(),
                    ))?;
                    let name = opts.backend;
                    let meas = harness::run_with(&opts, coord)
                        .and_then(|m| crate::rank_merge::gather(coord, m))
                        .map_err(within)?;
                    env = crate::env::collect(&data_path);
                    let r = RunReport::new(&opts, &meas, env.clone(), report::now_utc());
                    if m.mode.is_empty() {
                        let tuned = match spec.tuning.get(name.name()) {
                            Some(t) => format!(
                                "tuned by {}: bs {}, qd {}, {} thread(s){}; ",
                                crate::error::setting_name(Setting::Config),
                                Bytes(t.block_size),
                                t.queue_depth,
                                t.threads,
                                t.knobs()
                            ),
                            None => String::new(),
                        };
                        m.mode = format!(
                            "{tuned}{}; {}{}",
                            r.backend_mode,
                            r.buffer_pages,
                            footprint(spec, c)
                        );
                    }
                    add_warnings(&mut m.run_warnings, c.name(), &r.warnings);
                    figures_of(round, &r)
                }
                Contender::Fio(exe) => {
                    let ranges = peer::fio_ranges(&spec.base).map_err(within)?;
                    let (free, page) = crate::io::sys::free_hugetlb_pages();
                    let memory = peer::FioMemory::matching(
                        &spec.base,
                        free,
                        page,
                        crate::io::sys::thp_enabled(),
                    );
                    let fio_opts = peer::settle_fixed_buffers(&spec.base, ranges.len());
                    let (args, mut mode) = peer::fio_args(&fio_opts, &ranges, memory);
                    let env = memory.env(std::env::var("GLIBC_TUNABLES").ok().as_deref());
                    if spec.base.drop_caches {
                        // gdswap drops the page cache before each measured loop; fio gets the
                        // same start before each run.
                        crate::io::sys::drop_caches().map_err(|e| within(Error::DropCaches(e)))?;
                        mode.push_str(", page cache dropped before the run");
                    }
                    let f = match peer::run_fio(exe, &args, &env, spec.base.workload.op) {
                        Ok(f) => f,
                        Err(e) => {
                            peer_failed[i] = Some(format!("failed in round {round}: {e}"));
                            continue;
                        }
                    };
                    if m.mode.is_empty() {
                        m.mode = format!("{} {mode}", f.version);
                    }
                    RoundFigures {
                        round,
                        bandwidth_gibps: f.bandwidth_gibps,
                        latency_avg_us: f.latency_avg_us,
                        latency_p50_us: Some(f.latency_p50_us),
                        latency_p99_us: Some(f.latency_p99_us),
                        cpu_s_per_gib: Some(f.cpu_s_per_gib),
                        latency_cdf_us: f.latency_cdf_us,
                        time_s: Some(f.runtime_s),
                    }
                }
                Contender::Gdsio { exe, xfer, timeout } => {
                    let o = &spec.base;
                    let file = peer::gdsio_file(o).map_err(|message| {
                        within(Error::Peer {
                            tool: "gdsio".into(),
                            message,
                        })
                    })?;
                    let (args, mode) = peer::gdsio_args(o, &file, *xfer);
                    // A time-based comparison: one measured run of that long (gdsio -T, whole
                    // seconds, at least 1), given that much more time to end.
                    let (measured_args, measured_runs, measured_timeout) = match o.duration {
                        Some(d) => {
                            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                            let mut a = args.clone();
                            a.extend(["-T".to_string(), secs.max(1).to_string()]);
                            (a, 1, *timeout + Duration::from_secs(secs.max(1)))
                        }
                        None => (args.clone(), o.workload.loops, *timeout),
                    };
                    // Warm-up runs first (their figures dropped), then one run per measured
                    // loop, each after a page-cache drop with --drop-caches, as gdswap's loops.
                    let mut runs = Vec::new();
                    let mut failed = None;
                    for run in 0..o.workload.warmup + measured_runs {
                        if stop.load(Ordering::SeqCst) {
                            return Err(Error::Interrupted);
                        }
                        let measured = run >= o.workload.warmup;
                        if measured && o.drop_caches {
                            crate::io::sys::drop_caches()
                                .map_err(|e| within(Error::DropCaches(e)))?;
                        }
                        let (args, timeout) = if measured {
                            (&measured_args, measured_timeout)
                        } else {
                            (&args, *timeout)
                        };
                        match peer::run_gdsio(
                            exe,
                            args,
                            o.workload.op,
                            *xfer,
                            o.workload.threads,
                            timeout,
                        ) {
                            Ok(f) if measured => runs.push(f),
                            Ok(_) => {}
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    let round_figures = match failed {
                        None => peer::gdsio_round(&runs),
                        Some(_) => None,
                    };
                    let Some((gibps, avg_us)) = round_figures else {
                        let why = failed.map(|e| e.to_string()).unwrap_or_else(|| {
                            "peer gdsio: no measured run gave figures".to_string()
                        });
                        peer_failed[i] = Some(format!("failed in round {round}: {why}"));
                        continue;
                    };
                    let time_s: f64 = runs.iter().map(|r| r.total_time_s).sum();
                    if m.mode.is_empty() {
                        m.mode = format!(
                            "{mode}{}; {} {}",
                            if o.drop_caches {
                                ", page cache dropped before each measured run"
                            } else {
                                ""
                            },
                            exe.display(),
                            measured_args.join(" ")
                        );
                    }
                    // gdsio reports only an average latency and no CPU time: those figures
                    // are absent, not 0.
                    RoundFigures {
                        round,
                        bandwidth_gibps: gibps,
                        latency_avg_us: Some(avg_us),
                        latency_p50_us: None,
                        latency_p99_us: None,
                        cpu_s_per_gib: None,
                        latency_cdf_us: Vec::new(),
                        time_s: Some(time_s),
                    }
                }
            };
            progress(Progress::Measured {
                round,
                rounds: spec.rounds,
                name: c.name().to_string(),
                gibps: figures.bandwidth_gibps,
            });
            m.rounds.push(figures);
        }
    }
    let mut skipped = spec.skipped.clone();
    let mut kept = Vec::new();
    for (m, failed) in measured.into_iter().zip(peer_failed) {
        match failed {
            Some(reason) => skipped.push(Skipped {
                name: m.name,
                kind: m.kind,
                reason: reason.into(),
            }),
            None => kept.push(m),
        }
    }
    Ok(Comparison::new(
        params_of(spec),
        env,
        report::now_utc(),
        kept,
        skipped,
    ))
}

/// Says, when the comparison has a `host-ring` row, whose footprint each gdswap row has, so
/// the reader compares fio with the row of the same footprint.
fn footprint(spec: &CompareSpec, c: &Contender) -> &'static str {
    if !spec.contenders.contains(&Contender::HostRing) {
        return "";
    }
    match c {
        Contender::HostRing => "; fio's footprint (compare fio with this row for the device)",
        _ => "; one tensor-sized buffer per thread (what a swap fills; a large destination can fill slower than fio's small ring)",
    }
}

fn figures_of(round: u32, r: &RunReport) -> RoundFigures {
    RoundFigures {
        round,
        bandwidth_gibps: r.summary.bandwidth_gibps,
        latency_avg_us: Some(r.summary.latency.mean_us),
        latency_p50_us: Some(r.summary.latency.p50_us),
        latency_p99_us: Some(r.summary.latency.p99_us),
        cpu_s_per_gib: Some(r.summary.cpu_s_per_gib),
        latency_cdf_us: r.summary.latency_cdf_us.clone(),
        time_s: Some(r.summary.e2e_time_s),
    }
}

/// Keeps the first warning of each code, naming the contender.
fn add_warnings(into: &mut Vec<WarningRecord>, name: &str, new: &[WarningRecord]) {
    for w in new {
        if !into.iter().any(|x| x.code == w.code) {
            into.push(WarningRecord {
                code: w.code.clone(),
                message: crate::error::msg![format!("{name}: ")].join(&w.message),
                hint: w.hint.clone(),
            });
        }
    }
}
