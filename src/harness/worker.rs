//! A worker thread's side of the barrier protocol: binding to its NUMA node, setup, pre, the
//! timed loops (warm-up, then measured), and post (sync, verification, release), each phase
//! ended at the barrier the coordinator also meets.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::barrier::PhaseBarrier;
use super::coordinator::LoopControl;
use super::measurements::ThreadMeasurement;
use super::verify::{verify, Soak};
use crate::backend::{Backend, PhaseTimes, WorkerSetup};
use crate::datafiles;
use crate::error::{Error, Result};
use crate::io::file::DataFile;
use crate::io::sys::{self, CpuTime};
use crate::options::{Op, RunOptions};
use crate::pattern;
use crate::plan::ThreadPlan;
use crate::stats::LatencyRecorder;

/// Binds the calling worker thread `tid` as `p` says: to the node's CPUs (sched_setaffinity),
/// then its later allocations to the node (set_mempolicy MPOL_BIND). Nothing when `p` names
/// no node.
pub fn bind_worker(p: &crate::types::numa::NumaPlacement, tid: usize) -> Result<()> {
    let Some(node) = p.node else {
        return Ok(());
    };
    sys::bind_thread_to_cpus(&p.cpus).map_err(|e| Error::Thread {
        what: format!("binding worker thread {tid} to CPUs {:?}", p.cpus).into(),
        source: e,
    })?;
    sys::bind_thread_memory(node).map_err(|e| Error::Thread {
        what: format!("binding worker thread {tid}'s memory to NUMA node {node}").into(),
        source: e,
    })
}

/// A byte value the pattern cannot produce everywhere: the destination is filled with it
/// before the last measured read loop, so `--verify` checks what that loop delivered rather
/// than what a warm-up loop left behind.
const POISON: u8 = 0xa5;

/// One worker thread's share of the run: its range, its file, and whether that file still
/// needs the pattern written.
pub(super) struct ThreadJob<'a> {
    pub(super) plan: &'a ThreadPlan,
    pub(super) file: &'a Arc<DataFile>,
    pub(super) needs_pattern: bool,
}

pub(super) fn worker_thread(
    opts: &RunOptions,
    backend: &dyn Backend,
    job: ThreadJob<'_>,
    declined: &Option<String>,
    barrier: &PhaseBarrier,
    control: &LoopControl,
) -> Result<ThreadMeasurement> {
    let ThreadJob {
        plan,
        file,
        needs_pattern,
    } = job;
    // NUMA placement first: the buffers prepared below are allocated and first touched on
    // the node.
    if let Some(p) = &opts.numa_placement {
        bind_worker(p, plan.tid)?;
    }
    // Setup.
    if needs_pattern {
        datafiles::write_pattern(&plan.path, plan.len, plan.seed)?;
    }
    barrier.wait()?;

    // Pre: everything the timed loop needs, allocated and registered.
    let setup = WorkerSetup {
        tid: plan.tid,
        op: opts.workload.op,
        file: Arc::clone(file),
        range_len: plan.len,
        block_size: opts.workload.block_size,
        queue_depth: opts.workload.queue_depth,
        fixed_buffers: opts.fixed_buffers,
        fixed_buffers_declined: declined.clone(),
        huge_pages: opts.huge_pages,
        gpu: opts.gpu,
        buffer: opts.buffer,
        ring: opts.ring,
    };
    let mut worker = backend.prepare(&setup)?;
    if opts.workload.op == Op::Write {
        worker.fill(&mut |buf| pattern::fill(buf, plan.file_offset, plan.seed))?;
    }
    barrier.wait()?;

    // Main: warm-up, then measured loops.
    let mut loop_times = Vec::with_capacity(opts.workload.loops as usize);
    let mut latencies = LatencyRecorder::new();
    let mut cpu = CpuTime::default();
    let mut phases: Option<PhaseTimes> = None;
    let mut copy_spans = Vec::new();
    let every_loop = opts.verify_every_loop();
    let mut soak = Soak::default();
    let mut i: u32 = 0;
    loop {
        barrier.wait()?; // next
        if !control.go_on.load(Ordering::Relaxed) {
            break;
        }
        let measured = i >= opts.workload.warmup;
        let last_counted = opts.duration.is_none() && i + 1 == opts.total_loops();
        if opts.verify && opts.workload.op == Op::Read && (last_counted || (every_loop && measured))
        {
            worker.fill(&mut |buf| buf.fill(POISON))?;
        }
        if measured && i == opts.workload.warmup && opts.workload.warmup > 0 {
            // Every worker finished the warm-up (the "done" barrier), none has started this loop.
            worker.begin_measured()?;
        }
        barrier.wait()?; // ready
        barrier.wait()?; // go
        let mut scratch = LatencyRecorder::new();
        let cpu0 = CpuTime::thread();
        let t0 = Instant::now();
        let outcome = worker.transfer(
            opts.workload.op,
            &plan.requests,
            if measured {
                &mut latencies
            } else {
                &mut scratch
            },
        );
        let elapsed = t0.elapsed();
        let spent = CpuTime::thread().since(cpu0);
        outcome?;
        if measured {
            loop_times.push(elapsed);
            cpu = cpu + spent;
            if let Some(p) = worker.phase_times() {
                phases = Some(phases.unwrap_or_default() + p);
            }
            copy_spans.extend_from_slice(worker.copy_spans());
        }
        barrier.wait()?; // done
        if every_loop && measured {
            soak.verify_loop(opts, plan, file, worker.as_mut(), control)?;
        }
        i = i.saturating_add(1);
    }

    // Post: durability (timed on its own), then verification (untimed), then release.
    let sync_time = if opts.workload.op == Op::Write {
        file.sync_data()?
    } else {
        Duration::ZERO
    };
    barrier.wait()?; // synced
    if opts.verify && !every_loop {
        verify(opts.workload.op, plan, file, worker.as_mut())?;
    }
    let (mode, pages) = (worker.mode(), worker.buffer_pages());
    worker.release()?;
    barrier.wait()?; // post done

    Ok(ThreadMeasurement {
        tid: plan.tid,
        path: plan.path.clone(),
        file_offset: plan.file_offset,
        bytes_per_loop: plan.len,
        requests_per_loop: plan.requests.len(),
        loop_times,
        latencies,
        cpu,
        sync_time,
        mode,
        pages,
        phases,
        copy_spans,
        verify_errors: soak.errors,
        verify_failures: soak.failures,
    })
}
