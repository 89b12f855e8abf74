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

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{self, Backend, PhaseTimes, Worker, WorkerSetup};
use crate::cuda::copy::CopySpan;
use crate::datafiles::{self, PreparedFiles};
use crate::error::{Error, Message, Result, Setting, VerifyFailure};
use crate::io::buffer::PageBacking;
use crate::io::file::DataFile;
use crate::io::sys::{self, CpuTime};
use crate::options::{Op, RunOptions};
use crate::pattern;
use crate::plan::ThreadPlan;
use crate::ranks::{Coordinator, LoopWindow, RankMeasurement, Solo};
use crate::stats::LatencyRecorder;

/// What one worker thread measured.
pub struct ThreadMeasurement {
    /// The thread's index, 0-based.
    pub tid: usize,
    /// The data file the thread moved to or from.
    pub path: PathBuf,
    /// First byte of the thread's range in the file.
    pub file_offset: u64,
    /// Bytes moved per loop.
    pub bytes_per_loop: u64,
    /// Requests per loop (a tail request included).
    pub requests_per_loop: usize,
    /// Time inside `transfer`, one entry per measured loop.
    pub loop_times: Vec<Duration>,
    /// Every measured request's latency.
    pub latencies: LatencyRecorder,
    /// The thread's own CPU time inside measured transfers.
    pub cpu: CpuTime,
    /// Writes: the time of the `fdatasync` after the last loop (zero for reads).
    pub sync_time: Duration,
    /// How this thread's worker ran, and the page backing its buffers got.
    pub mode: String,
    /// The page backing of the worker's host buffers (`None`: no host buffer).
    pub pages: Option<PageBacking>,
    /// Where the measured transfers' time went (multi-stage backends), summed over loops.
    pub phases: Option<PhaseTimes>,
    /// The measured transfers' copy spans (bounce), on a clock shared by the run's threads.
    pub copy_spans: Vec<CopySpan>,
    /// Wrong 4 KiB blocks a soak's per-loop verification found in this thread's range, over
    /// all loops ([`RunOptions::verify_every_loop`]), and the first [`KEPT_FAILURES`] of them.
    pub verify_errors: u64,
    /// The first [`KEPT_FAILURES`] wrong blocks, in the order found.
    pub verify_failures: Vec<VerifyFailure>,
}

/// Verification failures each thread keeps (the count goes on).
pub const KEPT_FAILURES: usize = 100;

/// What the coordinator measured for one measured loop. (The loop's task time, the slowest
/// thread's time inside `transfer`, comes from the threads' `loop_times`.)
#[derive(Debug, Clone, Copy)]
pub struct LoopMeasurement {
    /// From releasing the workers to the last one finishing, barriers included.
    pub e2e_time: Duration,
    /// CPU time of the whole process during the loop.
    pub cpu: CpuTime,
    /// The loop on the wall clock, from release to the last thread done (the same interval as
    /// `e2e_time`), for laying processes' loops side by side.
    pub window: LoopWindow,
    /// Merged runs of several processes: the earliest start to the latest end of any rank's
    /// loop, which is the loop's task time (the aggregate bandwidth is all bytes over it).
    pub span: Option<Duration>,
}

/// Everything a run measured.
pub struct Measurements {
    /// The backend's name.
    pub backend: String,
    /// Where the backend's destination buffers lived.
    pub memory: crate::backend::MemoryKind,
    /// How the workers ran (thread 0's [`ThreadMeasurement::mode`]).
    pub mode: String,
    /// The worst page backing any thread's buffers got (least huge-page coverage).
    pub pages: Option<PageBacking>,
    /// The data files' O_DIRECT alignment in bytes (1: buffered).
    pub align: u64,
    /// Each thread's figures, in thread order.
    pub threads: Vec<ThreadMeasurement>,
    /// The coordinator's figures, one per measured loop.
    pub loops: Vec<LoopMeasurement>,
    /// Whether the data was checked against the pattern (`--verify`).
    pub verified: bool,
    /// gds: the path the bytes took ([`Backend::gds_path`]).
    pub gds_path: Option<crate::types::GdsVerdict>,
    /// The data's filesystem when it is not a local block device (tmpfs, overlay, network,
    /// FUSE), by its statfs type.
    pub non_block_fs: Option<&'static str>,
    /// A merged run of several processes: each rank's figures, in rank order (empty for one
    /// process).
    pub ranks: Vec<RankMeasurement>,
    /// Where the workers ran (NUMA node and CPUs), or why they were not bound.
    pub numa: Option<crate::types::numa::NumaPlacement>,
}

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

/// What the coordinator tells the workers before each loop: whether it runs (a time-based run
/// stops once its time is up), and the soak's count of wrong blocks over all threads.
#[derive(Default)]
struct LoopControl {
    go_on: AtomicBool,
    verify_errors: AtomicU64,
}

fn coordinate(
    opts: &RunOptions,
    prepared: &PreparedFiles,
    barrier: &PhaseBarrier,
    control: &LoopControl,
    coord: &dyn Coordinator,
) -> Result<Vec<LoopMeasurement>> {
    barrier.wait()?; // setup done
    coord.barrier()?; // every process's setup done
    barrier.wait()?; // pre done
    prepared.before_loops(opts)?;
    coord.barrier()?; // every process ready for the loops
    let mut loops = Vec::with_capacity(opts.workload.loops as usize);
    // A time-based run's measured loops end once this instant has passed.
    let mut deadline: Option<Instant> = None;
    let mut i: u32 = 0;
    loop {
        let go_on = match opts.duration {
            None => i < opts.total_loops(),
            // Rank 0's clock decides for every rank, so they all stop at the same loop and
            // every loop's barrier is met.
            Some(_) => coord
                .agree(i < opts.workload.warmup || deadline.map_or(true, |d| Instant::now() < d))?,
        };
        // Published before the barrier, whose mutex orders it before every worker's read.
        control.go_on.store(go_on, Ordering::Relaxed);
        barrier.wait()?; // next
        if !go_on {
            break;
        }
        let measured = i >= opts.workload.warmup;
        barrier.wait()?; // ready
        if measured && opts.drop_caches {
            sys::drop_caches().map_err(Error::DropCaches)?;
        }
        // Every process's workers wait at "go": the loops start together.
        coord.barrier()?;
        let cpu0 = CpuTime::process();
        let wall0 = std::time::SystemTime::now();
        let t0 = Instant::now();
        if measured && deadline.is_none() {
            deadline = opts.duration.map(|d| t0 + d);
        }
        barrier.wait()?; // go
        barrier.wait()?; // done
        let e2e_time = t0.elapsed();
        let wall1 = wall0 + e2e_time;
        let cpu = CpuTime::process().since(cpu0);
        if measured {
            loops.push(LoopMeasurement {
                e2e_time,
                cpu,
                window: LoopWindow::of(wall0, wall1),
                span: None,
            });
        }
        // A soak's workers verify this loop before the next "next"; u32::MAX loops end it.
        i = match i.checked_add(1) {
            Some(n) => n,
            None => {
                control.go_on.store(false, Ordering::Relaxed);
                barrier.wait()?; // next: stop
                break;
            }
        };
    }
    barrier.wait()?; // synced
    coord.barrier()?; // every process's data durable
    barrier.wait()?; // post done
    coord.barrier()?; // every process verified and released
    Ok(loops)
}

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

/// `--fixed-buffers auto` for the host backend, settled once for the run: where the memlock
/// limit cannot hold every thread's buffers together (it is charged per user: threads share
/// it), no thread registers, and each says why; otherwise each thread registers and falls back
/// alone only if the kernel still refuses (other processes of the user may hold part of the
/// budget). Without this, one thread of a run might register and the next not: one run, two
/// I/O paths.
///
/// Per process: the ranks of an MPI run on one node share the user's limit too, and each
/// settles for its own threads.
fn fixed_buffers_declined(
    opts: &RunOptions,
    backend: &dyn Backend,
    plans: &[ThreadPlan],
) -> Option<String> {
    let registers = opts.fixed_buffers == crate::options::FixedBuffers::Auto
        && backend.id() == crate::types::BackendId::Host
        && crate::io::uring::takes_fixed_buffers(opts.direct, opts.ring.opcode);
    if !registers {
        return None;
    }
    // As the buffers will be mapped (whole huge pages), as the `on` preflight counts them.
    let total = datafiles::buffers_bytes(opts, plans.iter().map(|p| p.len)).unwrap_or(u64::MAX);
    if sys::can_lock(total) {
        return None;
    }
    let whose = match plans.len() {
        1 => String::new(),
        n => format!(", {n} threads' buffers together"),
    };
    Some(crate::io::uring::memlock_short(
        sys::memlock_limit(),
        total,
        &whose,
    ))
}

/// One worker thread's share of the run: its range, its file, and whether that file still
/// needs the pattern written.
struct ThreadJob<'a> {
    plan: &'a ThreadPlan,
    file: &'a Arc<DataFile>,
    needs_pattern: bool,
}

fn worker_thread(
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

/// A soak's verification of every measured loop: wrong 4 KiB blocks counted over all threads
/// and logged (file, offset, what was found), the run stopped once more than
/// `--max-errors` (default 0) were found.
#[derive(Default)]
struct Soak {
    errors: u64,
    failures: Vec<VerifyFailure>,
}

impl Soak {
    fn verify_loop(
        &mut self,
        opts: &RunOptions,
        plan: &ThreadPlan,
        file: &DataFile,
        worker: &mut dyn Worker,
        control: &LoopControl,
    ) -> Result<()> {
        let before = self.failures.len();
        let mut found = 0u64;
        let failures = &mut self.failures;
        match opts.workload.op {
            Op::Read => worker.inspect(&mut |buf| {
                found += pattern::verify_all(
                    buf,
                    plan.file_offset,
                    plan.seed,
                    &plan.path,
                    KEPT_FAILURES,
                    failures,
                );
                Ok(())
            })?,
            Op::Write => {
                // What this loop wrote, durable, read back past the page cache.
                file.sync_data()?;
                file.forget_cached_pages();
                const CHUNK: u64 = 8 << 20;
                let mut buf = vec![0u8; CHUNK.min(plan.len) as usize];
                let mut off = plan.file_offset;
                while off < plan.end() {
                    let n = CHUNK.min(plan.end() - off) as usize;
                    file.read_exact_at(&mut buf[..n], off)?;
                    found += pattern::verify_all(
                        &buf[..n],
                        off,
                        plan.seed,
                        &plan.path,
                        KEPT_FAILURES,
                        failures,
                    );
                    off += n as u64;
                }
            }
        }
        self.errors = self.errors.saturating_add(found);
        let total = control
            .verify_errors
            .fetch_add(found, Ordering::Relaxed)
            .saturating_add(found);
        let limit = opts.max_errors.unwrap_or(0);
        if total > limit {
            let mut first = self
                .failures
                .get(before)
                .or(self.failures.last())
                .cloned()
                .unwrap_or_else(|| VerifyFailure {
                    path: plan.path.clone(),
                    offset: plan.file_offset,
                    expected: 0,
                    found: 0,
                    header_note: Message::default(),
                });
            if opts.max_errors.is_some() {
                first
                    .header_note
                    .push(format!("; {total} wrong blocks found, more than "));
                first.header_note.push(Setting::MaxErrors);
                first.header_note.push(format!(" {limit}"));
            }
            return Err(Error::Verify(Box::new(first)));
        }
        Ok(())
    }
}

/// What a failed verify of a read adds when the header note has no advice of its own.
pub fn verify_read_hint() -> Message {
    crate::error::msg![
        "; the file holds other data (another run's, or a failed write's): rewrite it with `gdswap run ",
        Setting::Op,
        " write` and the same ",
        Setting::File,
        "/",
        Setting::Dir,
        ", ",
        Setting::Size,
        " and ",
        Setting::Seed,
        ", or delete it"
    ]
}

/// A failed verify of a read means the file holds other data than this run's pattern (what a
/// failed or interrupted write left, another run's): every later read would fail the same
/// way, so say how to get a good file again (unless the note already does: another seed).
fn with_verify_hint(opts: &RunOptions, e: Error) -> Error {
    match e {
        Error::Verify(mut v)
            if opts.workload.op == Op::Read && !v.header_note.contains_text("rewrite") =>
        {
            v.header_note.0.extend(verify_read_hint().0);
            Error::Verify(v)
        }
        e => e,
    }
}

/// Reads: every byte that landed in the destination is the pattern of its file offset.
/// Writes: every byte of the range, read back from the file after fdatasync with its cached
/// pages dropped, is the pattern.
fn verify(op: Op, plan: &ThreadPlan, file: &DataFile, worker: &mut dyn Worker) -> Result<()> {
    match op {
        Op::Read => worker.inspect(&mut |buf| {
            pattern::verify(buf, plan.file_offset, plan.seed, &plan.path).map_err(Error::Verify)
        }),
        Op::Write => {
            file.forget_cached_pages();
            const CHUNK: u64 = 8 << 20;
            let mut buf = vec![0u8; CHUNK.min(plan.len) as usize];
            let mut off = plan.file_offset;
            while off < plan.end() {
                let n = CHUNK.min(plan.end() - off) as usize;
                file.read_exact_at(&mut buf[..n], off)?;
                pattern::verify(&buf[..n], off, plan.seed, &plan.path).map_err(Error::Verify)?;
                off += n as u64;
            }
            Ok(())
        }
    }
}

/// A reusable barrier that any party can abort, releasing everyone with [`Error::Aborted`].
struct PhaseBarrier {
    parties: usize,
    state: Mutex<BarrierState>,
    cv: Condvar,
}

struct BarrierState {
    arrived: usize,
    generation: u64,
    aborted: bool,
}

impl PhaseBarrier {
    fn new(parties: usize) -> Self {
        PhaseBarrier {
            parties,
            state: Mutex::new(BarrierState {
                arrived: 0,
                generation: 0,
                aborted: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn wait(&self) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.aborted {
            return Err(Error::Aborted);
        }
        s.arrived += 1;
        if s.arrived == self.parties {
            s.arrived = 0;
            s.generation += 1;
            self.cv.notify_all();
            return Ok(());
        }
        let generation = s.generation;
        while s.generation == generation && !s.aborted {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.generation == generation {
            Err(Error::Aborted)
        } else {
            Ok(())
        }
    }

    fn abort(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.aborted = true;
        self.cv.notify_all();
    }
}

/// Aborts the barrier if the worker thread unwinds, so nobody waits forever for it.
struct AbortOnPanic<'a>(&'a PhaseBarrier);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Availability;
    use crate::io::buffer::HostBuffer;
    use crate::options::{Target, Workload};

    /// A backend that moves data only in its first `moving_calls` transfers and does nothing
    /// afterwards: `--verify` must catch it.
    struct Lazy {
        moving_calls: usize,
    }

    struct LazyWorker {
        buf: HostBuffer,
        file: Arc<DataFile>,
        calls: usize,
        moving_calls: usize,
    }

    impl Backend for Lazy {
        fn name(&self) -> &'static str {
            "first-loop-only"
        }
        fn id(&self) -> crate::backend::BackendId {
            crate::backend::BackendId::Host
        }
        fn summary(&self) -> &'static str {
            "test double"
        }
        fn probe(&self) -> Availability {
            Availability::Available
        }
        fn prepare(&self, setup: &WorkerSetup) -> Result<Box<dyn Worker>> {
            Ok(Box::new(LazyWorker {
                buf: HostBuffer::new(setup.range_len as usize, setup.huge_pages)?,
                file: Arc::clone(&setup.file),
                calls: 0,
                moving_calls: self.moving_calls,
            }))
        }
    }

    impl Worker for LazyWorker {
        fn mode(&self) -> String {
            "test".into()
        }
        fn buffer_pages(&self) -> Option<PageBacking> {
            None
        }
        fn fill(&mut self, f: &mut dyn FnMut(&mut [u8])) -> Result<()> {
            f(self.buf.as_mut_slice());
            Ok(())
        }
        fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
            f(self.buf.as_slice())
        }
        fn transfer(
            &mut self,
            op: Op,
            requests: &[crate::plan::Request],
            lat: &mut LatencyRecorder,
        ) -> Result<()> {
            self.calls += 1;
            if self.calls > self.moving_calls {
                return Ok(());
            }
            for r in requests {
                let range = r.buf_offset..r.buf_offset + r.len;
                match op {
                    Op::Read => self
                        .file
                        .read_exact_at(&mut self.buf.as_mut_slice()[range], r.file_offset)?,
                    Op::Write => self
                        .file
                        .write_all_at(&self.buf.as_slice()[range], r.file_offset)?,
                }
                lat.record(Duration::from_micros(1));
            }
            Ok(())
        }
    }

    fn lazy_run(op: Op, file: &std::path::Path, warmup: u32, moving_calls: usize) -> Result<()> {
        let opts = RunOptions {
            workload: Workload {
                op,
                target: Target::File(file.to_path_buf()),
                size: 1 << 20,
                block_size: 64 << 10,
                loops: 2,
                warmup,
                ..RunOptions::default().workload
            },
            verify: true,
            ..RunOptions::default()
        };
        execute(
            &opts,
            &Lazy { moving_calls },
            datafiles::prepare(&opts)?,
            &Solo,
        )
        .map(drop)
    }

    fn expect_verify_failure_at_zero(r: Result<()>) {
        match r {
            Err(Error::Verify(v)) => assert_eq!(v.offset, 0),
            Err(e) => panic!("expected a verify failure, got {e}"),
            Ok(()) => panic!("expected a verify failure, got success"),
        }
    }

    #[test]
    fn verify_checks_this_runs_data_not_what_was_there() {
        let dir = crate::testutil::scratch_dir();
        let f = dir.path().join("data");
        let seed = RunOptions::default().seed;
        // The file already holds exactly what the run would write; a writer that writes
        // nothing must still fail verify, because the range is zeroed before the loops.
        crate::datafiles::write_pattern(&f, 1 << 20, seed).unwrap();
        expect_verify_failure_at_zero(lazy_run(Op::Write, &f, 0, 0));
        // A writer that writes every time passes (the control).
        crate::datafiles::write_pattern(&f, 1 << 20, seed).unwrap();
        lazy_run(Op::Write, &f, 1, usize::MAX).unwrap();
        // Reads: the warm-up loop fills the buffer, the measured loops move nothing; the buffer
        // is poisoned before the last measured loop, so verify fails at the first byte.
        expect_verify_failure_at_zero(lazy_run(Op::Read, &f, 1, 1));
        lazy_run(Op::Read, &f, 1, usize::MAX).unwrap();
    }

    #[test]
    fn barrier_releases_all_parties_each_generation() {
        let b = PhaseBarrier::new(3);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..100 {
                        b.wait().unwrap();
                    }
                });
            }
            for _ in 0..100 {
                b.wait().unwrap();
            }
        });
    }

    #[test]
    fn abort_releases_waiters_with_an_error() {
        let b = PhaseBarrier::new(3);
        std::thread::scope(|s| {
            let h = s.spawn(|| b.wait());
            std::thread::sleep(Duration::from_millis(20));
            b.abort();
            assert!(matches!(h.join().unwrap(), Err(Error::Aborted)));
            assert!(matches!(b.wait(), Err(Error::Aborted)));
        });
    }
}
