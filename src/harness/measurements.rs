//! What a run measured: each worker thread's figures ([`ThreadMeasurement`]), the
//! coordinator's per loop ([`LoopMeasurement`]), and the whole run's ([`Measurements`]), which
//! [`super::run`] returns and the report is built from.

use std::path::PathBuf;
use std::time::Duration;

#[cfg(doc)]
use crate::backend::Backend;
use crate::backend::PhaseTimes;
use crate::cuda::copy::CopySpan;
use crate::error::VerifyFailure;
use crate::io::buffer::PageBacking;
use crate::io::sys::CpuTime;
#[cfg(doc)]
use crate::options::RunOptions;
use crate::ranks::{LoopWindow, RankMeasurement};
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
