//! The threaded pre/main/post harness that drives every backend the same way.
//!
//! ```text
//! coordinator            worker 0..T-1
//!                        setup: write the pattern into data files that need it
//! ── barrier ──────────── (setup done)
//!                        pre: backend.prepare (buffers, rings, registrations); fill for writes
//! ── barrier ──────────── (pre done)
//! per loop (warm-up, then measured):
//! ── barrier ──────────── (ready)
//! drop caches, sample CPU, start clock
//! ── barrier ──────────── (go)            time worker.transfer(all requests)
//! ── barrier ──────────── (done)
//! stop clock, sample CPU
//! ── barrier ──────────── (synced)        post: fdatasync (writes), timed separately
//! ── barrier ──────────── (post done)     verify outside any timed region, release
//! ```
//! The coordinator (the calling thread) takes part in every barrier, so it does the per-loop
//! bookkeeping while all workers wait. If any party fails, it aborts the barrier: everyone
//! else stops at the next barrier, and the first real error is returned.
//!
//! Several processes (`mpirun`, `srun`: [`crate::ranks`]), or several runs of one process
//! (`--dir A --dir B`: [`crate::ranks::LocalGroup`]): the coordinator also meets the other
//! runs' coordinators, through a [`Coordinator`], after setup, after pre, between "ready" and
//! "go" of every loop (so every run's loop starts together), after the sync and after post;
//! a time-based run also takes rank 0's decision to go on before every loop
//! ([`Coordinator::agree`]). One process alone uses [`crate::ranks::Solo`], whose barriers
//! pass at once.
//!
//! This file holds the entry points ([`run`], [`run_with`]) and starts the threads; each
//! side's phases are in `worker` and `coordinator`, the barrier in `barrier`, the checks
//! against the pattern in `verify`, the run-wide `--fixed-buffers auto` decision in
//! `fixed_buffers`, and what a run measured in `measurements`.

mod barrier;
mod coordinator;
mod fixed_buffers;
mod measurements;
#[cfg(test)]
mod tests;
mod verify;
mod worker;

use crate::backend::{self, Backend};
use crate::datafiles::{self, PreparedFiles};
use crate::error::{Error, Result, Setting};
use crate::io::sys;
use crate::options::RunOptions;
use crate::ranks::{Coordinator, Solo};
use barrier::{AbortOnPanic, PhaseBarrier};
use coordinator::{coordinate, LoopControl};
use fixed_buffers::fixed_buffers_declined;
use verify::with_verify_hint;
use worker::{worker_thread, ThreadJob};

pub use measurements::{LoopMeasurement, Measurements, ThreadMeasurement, KEPT_FAILURES};
pub use verify::verify_read_hint;
pub use worker::bind_worker;

/// Runs `opts` through its backend, in this process alone.
pub fn run(opts: &RunOptions) -> Result<Measurements> {
    run_with(opts, &Solo)
}

/// Runs `opts` through its backend as one of the processes `coord` connects, meeting them at
/// every phase (their measurements are merged afterwards by [`crate::rank_merge::gather`]).
pub fn run_with(opts: &RunOptions, coord: &dyn Coordinator) -> Result<Measurements> {
    opts.validate()?;
    let backend = backend::open(opts.backend)?;
    backend.preflight(opts)?;
    if opts.drop_caches {
        sys::check_drop_caches().map_err(Error::DropCaches)?;
    }
    // Where the workers run: decided once, before any buffer exists.
    let placement = match &opts.numa_placement {
        Some(p) => p.clone(),
        None => crate::numa::resolve_for(opts.numa, opts)?,
    };
    let placed = RunOptions {
        numa_placement: Some(placement.clone()),
        ..opts.clone()
    };
    let opts = &placed;
    let prepared = datafiles::prepare(opts)?;
    let cleanup = prepared.clone_for_cleanup();
    let mut m = match execute(opts, backend.as_ref(), prepared, coord) {
        Ok(m) => m,
        Err(e) => {
            // Files this run created and wrote nothing into go again; the rest stay.
            cleanup.remove_unused();
            return Err(with_verify_hint(opts, e));
        }
    };
    m.gds_path = backend.gds_path();
    m.numa = Some(placement);
    // The path may only be known after the run (cuFile's statistics count each I/O).
    if let Some(p) = m.gds_path.as_ref().filter(|p| p.is_compat()) {
        if opts.gpu.gds.is_some_and(|g| g.require_gpudirect) {
            return Err(Error::invalid(
                Setting::RequireGpudirect,
                format!(
                    "the run went through cuFile's compat mode, not GPUDirect: {}",
                    p.reason
                ),
            ));
        }
    }
    Ok(m)
}

fn execute(
    opts: &RunOptions,
    backend: &dyn Backend,
    prepared: PreparedFiles,
    coord: &dyn Coordinator,
) -> Result<Measurements> {
    let barrier = PhaseBarrier::new(prepared.plans.len() + 1);
    let control = LoopControl::default();
    let declined = &fixed_buffers_declined(opts, backend, &prepared.plans);

    let (worker_results, coordinator_result) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(prepared.plans.len());
        let mut spawn_error = None;
        for ((plan, file), &needs) in prepared
            .plans
            .iter()
            .zip(&prepared.files)
            .zip(&prepared.needs_pattern)
        {
            let barrier = &barrier;
            let control = &control;
            let spawned = std::thread::Builder::new()
                .name(format!("gdswap-worker-{}", plan.tid))
                .spawn_scoped(scope, move || {
                    let _guard = AbortOnPanic(barrier);
                    let result = worker_thread(
                        opts,
                        backend,
                        ThreadJob {
                            plan,
                            file,
                            needs_pattern: needs,
                        },
                        declined,
                        barrier,
                        control,
                    );
                    if result.is_err() {
                        barrier.abort();
                    }
                    result
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Threads already started wait at the first barrier: release them.
                    barrier.abort();
                    spawn_error = Some(Error::Thread {
                        what: crate::error::msg![
                            Setting::Threads,
                            format!(
                                " {}: cannot start worker thread {}",
                                opts.workload.threads, plan.tid
                            )
                        ],
                        source: e,
                    });
                    break;
                }
            }
        }
        let coordinator = match spawn_error {
            Some(e) => Err(e),
            None => coordinate(opts, &prepared, &barrier, &control, coord),
        };
        if coordinator.is_err() {
            barrier.abort();
        }
        let workers: Vec<Result<ThreadMeasurement>> = handles
            .into_iter()
            .enumerate()
            .map(|(tid, h)| h.join().unwrap_or(Err(Error::WorkerPanicked(tid))))
            .collect();
        (workers, coordinator)
    });

    // Report the first real failure, not the "stopped because another failed" echoes.
    let mut threads = Vec::with_capacity(worker_results.len());
    for r in worker_results {
        match r {
            Ok(t) => threads.push(t),
            Err(Error::Aborted) => {}
            Err(e) => return Err(e),
        }
    }
    let loops = coordinator_result?;
    // The run's mode is thread 0's, or the first thread's whose buffers were not registered
    // after all (`--fixed-buffers auto`: the memlock budget is the user's, shared by every
    // thread and process, so threads may differ); its page backing is the worst any thread
    // got, so a thread that fell back is never hidden behind one that did not.
    let mode = threads
        .iter()
        .find(|t| t.mode.contains(crate::io::uring::NOT_REGISTERED))
        .or(threads.first())
        .map(|t| t.mode.clone())
        .unwrap_or_default();
    let pages = threads
        .iter()
        .filter_map(|t| t.pages)
        .min_by_key(|p| p.huge_bytes_ratio_permille());
    Ok(Measurements {
        backend: backend.name().to_string(),
        memory: backend.memory(),
        mode,
        pages,
        align: prepared.align,
        threads,
        loops,
        verified: opts.verify,
        gds_path: None,
        non_block_fs: prepared.non_block_fs,
        ranks: Vec::new(),
        numa: None,
    })
}
