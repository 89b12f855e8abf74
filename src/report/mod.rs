//! Results as data: [`RunReport`] is built once from a run's measurements, and every exporter
//! (human text, JSON, CSV, Markdown) is a pure function of it. Reports deserialize too, so saved
//! JSON results can be re-exported and compared later. [`comparison`] holds the result of
//! `gdswap compare` (several contenders, interleaved rounds); its exporters live with their
//! format, beside the run's: [`json`], [`csv`], [`human`], [`markdown`], [`svg`].

pub mod comparison;
pub mod csv;
pub mod human;
pub mod json;
pub mod markdown;
pub mod soak;
pub mod svg;
pub mod svg_bars;
pub mod warning;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::env::Environment;
use crate::harness::Measurements;
use crate::options::{BufferMode, HugePages, RunOptions};
use crate::stats::{median, LatencyRecorder, Percentiles};

pub use warning::{Warning, WarningRecord};

/// Identifies the JSON layout; bumped on any incompatible change.
pub const SCHEMA: &str = "gdswap.run.v1";
const GIB: f64 = (1u64 << 30) as f64;

/// One run, fully described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// [`SCHEMA`].
    pub schema: String,
    /// When the run ended, UTC, ISO 8601.
    pub finished_at: String,
    /// The machine, kernel and filesystem the run was measured on.
    pub environment: Environment,
    /// The options the run was made with.
    pub params: Params,
    /// How the backend ran (ring mode, registration, ...).
    pub backend_mode: String,
    /// Where the destination buffers lived: `host`, `pinned_host` or `device`.
    #[serde(default)]
    pub destination: String,
    /// Page backing of the I/O buffers, as obtained.
    pub buffer_pages: String,
    /// Whether the worst thread's buffers are huge-page backed (hugetlb, or THP over at least
    /// 90% of the bytes).
    pub huge_pages_obtained: bool,
    /// The data files' O_DIRECT alignment in bytes (1: buffered).
    pub dio_align_bytes: u64,
    /// Figures over all measured loops.
    pub summary: Summary,
    /// Figures per measured loop, in order.
    pub loops: Vec<LoopFigures>,
    /// Figures per thread, over all measured loops.
    pub threads: Vec<ThreadFigures>,
    /// What may make the figures misleading (small pages, a short run, ...).
    pub warnings: Vec<WarningRecord>,
    /// Where the time went in multi-stage backends (bounce); absent for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineFigures>,
    /// gds: which path the bytes took (GPUDirect or compat mode), and why gdswap says so;
    /// absent for the other backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gds_path: Option<GdsVerdict>,
    /// A time-based run or soak: its duration and what verifying every loop found; absent
    /// for a plain run of `--loops`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<soak::Soak>,
    /// A run of several processes (`mpirun`, `srun`): each rank's figures, in rank order;
    /// absent for one process. The summary is then the merged one: all ranks' bytes over the
    /// earliest start to the latest end of each loop, latencies from the merged histograms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranks: Vec<RankFigures>,
    /// Where the worker threads and their buffers were placed (`--numa`): the NUMA node and
    /// CPUs, or why nothing was bound; absent from records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa: Option<crate::types::numa::NumaPlacement>,
}

/// How far below the median rank's bandwidth a rank is flagged a straggler, in percent.
pub const STRAGGLER_PCT: f64 = 10.0;

/// One rank of a run of several processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankFigures {
    /// The rank (MPI or launcher), 0-based.
    pub rank: usize,
    /// The hostname the rank ran on.
    pub host: String,
    /// Bytes this rank moved in the measured loops.
    pub bytes: u64,
    /// Sum over loops of this rank's loop time (its release to its last thread done).
    pub time_s: f64,
    /// bytes / time, GiB/s.
    pub bandwidth_gibps: f64,
    /// requests / time.
    pub iops: f64,
    /// This rank's request latencies.
    pub latency: Percentiles,
    /// Each measured loop's start and end, ns since the Unix epoch (the ranks' wall clocks).
    pub loop_start_unix_ns: Vec<u64>,
    /// Each measured loop's end, as the starts.
    pub loop_end_unix_ns: Vec<u64>,
    /// Percent below the median rank's bandwidth (negative: above it).
    pub below_median_pct: f64,
    /// More than [`STRAGGLER_PCT`] below the median rank.
    pub straggler: bool,
}

impl RankFigures {
    /// The figures of every rank, stragglers flagged.
    pub fn of(ranks: &[crate::ranks::RankMeasurement]) -> Vec<RankFigures> {
        let mut out: Vec<RankFigures> = ranks
            .iter()
            .map(|r| {
                let time_s: f64 = r.windows.iter().map(|w| w.duration().as_secs_f64()).sum();
                let bytes = r.bytes_per_loop.saturating_mul(r.windows.len() as u64);
                RankFigures {
                    rank: r.rank,
                    host: r.host.clone(),
                    bytes,
                    time_s,
                    bandwidth_gibps: ratio(bytes as f64 / GIB, time_s),
                    iops: ratio(r.latencies.count() as f64, time_s),
                    latency: r.latencies.percentiles(),
                    loop_start_unix_ns: r.windows.iter().map(|w| w.start_unix_ns).collect(),
                    loop_end_unix_ns: r.windows.iter().map(|w| w.end_unix_ns).collect(),
                    below_median_pct: 0.0,
                    straggler: false,
                }
            })
            .collect();
        let med = median(&out.iter().map(|r| r.bandwidth_gibps).collect::<Vec<_>>());
        for r in &mut out {
            r.below_median_pct = 100.0 * ratio(med - r.bandwidth_gibps, med);
            r.straggler = r.below_median_pct > STRAGGLER_PCT;
        }
        out
    }
}

/// The path a `gds` run's bytes took: defined with cuFile, re-exported here for reports.
pub use crate::types::{GdsPath, GdsVerdict};

/// I/O, copies and their overlap over the measured loops: I/O and transfer time summed over
/// threads; copy time (bounce) the time the copy engine was busy, all threads together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFigures {
    /// Time during which some I/O request was in flight.
    pub io_time_s: f64,
    /// Time the copies to or from the device kept the copy engine busy: the union of every
    /// thread's copy spans (start event to end event, on one clock per run), so a copy that
    /// waited for another thread's copy is not counted twice. Without spans, the sum of the
    /// threads' copy durations.
    pub copy_time_s: f64,
    /// Time inside the transfers.
    pub transfer_time_s: f64,
    /// I/O and copy time that ran at the same time: per thread max(0, io + copy - transfer)
    /// with its own copy durations, summed, and at most `copy_time_s`.
    pub overlap_s: f64,
    /// `overlap_s` over the shorter of I/O and copy time: 1 = the shorter one fully hidden.
    pub overlap_fraction: f64,
}

impl PipelineFigures {
    /// From per-thread phase times (each summed over the measured loops).
    pub fn from_phases(phases: &[crate::backend::PhaseTimes]) -> Option<PipelineFigures> {
        if phases.is_empty() {
            return None;
        }
        let (mut io, mut copy, mut total, mut overlap) = (0.0, 0.0, 0.0, 0.0);
        for p in phases {
            let (i, c, t) = (
                p.io.as_secs_f64(),
                p.copy.as_secs_f64(),
                p.total.as_secs_f64(),
            );
            io += i;
            copy += c;
            total += t;
            overlap += (i + c - t).max(0.0).min(i.min(c));
        }
        Some(PipelineFigures {
            io_time_s: io,
            copy_time_s: copy,
            transfer_time_s: total,
            overlap_s: overlap,
            overlap_fraction: ratio(overlap, f64::min(io, copy)),
        })
    }

    /// Replaces the summed copy time with the union of all threads' copy spans (the time
    /// the copy engine was busy), when there are spans, and bounds the overlap by it.
    pub fn with_copy_spans(mut self, spans: &[crate::cuda::copy::CopySpan]) -> Self {
        if spans.is_empty() {
            return self;
        }
        self.copy_time_s = crate::cuda::copy::union_s(spans);
        self.overlap_s = self.overlap_s.min(self.copy_time_s);
        self.overlap_fraction = ratio(self.overlap_s, f64::min(self.io_time_s, self.copy_time_s));
        self
    }
}

/// The workload a record describes, shared by the run record ([`Params`]) and the comparison
/// record ([`comparison::CompareParams`]): the run options' own [`crate::options::Workload`],
/// flattened into each.
pub use crate::options::Workload;

/// The parameters, as run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// The backend.
    pub backend: crate::types::BackendId,
    /// Operation, target, sizes, queue depth, threads, loops.
    #[serde(flatten)]
    pub workload: Workload,
    /// `--random`: shuffled request order.
    pub random: bool,
    /// `--seed`: of the data pattern and the shuffle.
    pub seed: u64,
    /// `--verify`: the data was checked against the pattern.
    pub verify: bool,
    /// O_DIRECT (false: `--buffered`, through the page cache).
    pub direct: bool,
    /// `--drop-caches`: the page cache was dropped before each measured loop.
    pub drop_caches: bool,
    /// `--fixed-buffers`: `auto`, `on` or `off` (reports from before `auto` hold a boolean:
    /// on/off). Whether the buffers were registered in the end is in the backend's mode line
    /// ("fixed buffers+files" or "unregistered buffers").
    #[serde(default)]
    pub fixed_buffers: crate::options::FixedBuffers,
    /// `--huge-pages`: the page backing asked for (what was obtained is `buffer_pages`).
    pub huge_pages: HugePages,
    /// `full` (the thread's whole range in memory) or `ring` (reused buffers); records from
    /// before `ring` existed have none and read as `full`.
    #[serde(default)]
    pub buffer: BufferMode,
    /// How the io_uring engine was asked to drive its ring (host, bounce); absent for the
    /// other backends and in records from before these knobs existed. What the kernel gave
    /// (`auto`'s choice) is in `backend_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<crate::options::RingOptions>,
    /// Device, pinned chunks and mode, for backends that use a GPU; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::options::GpuOptions>,
}

impl Params {
    /// The parameters of `opts`; `device`: the backend's buffers are in GPU memory (the GPU
    /// options are recorded).
    pub fn of(opts: &RunOptions, device: bool) -> Params {
        Params {
            backend: opts.backend,
            workload: opts.workload.clone(),
            random: opts.random,
            seed: opts.seed,
            verify: opts.verify,
            direct: opts.direct,
            drop_caches: opts.drop_caches,
            fixed_buffers: opts.fixed_buffers,
            huge_pages: opts.huge_pages,
            buffer: opts.buffer,
            ring: matches!(
                opts.backend,
                crate::types::BackendId::Host | crate::types::BackendId::Bounce
            )
            .then_some(opts.ring),
            gpu: device.then_some(opts.gpu),
        }
    }
}

/// Why a run or comparison failed, as recorded in its JSON (`--json` records failures too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// A stable class: `refused` (a value, file or limit gdswap will not run with),
    /// `unavailable`, `resources`, `io`, `verify`, `cuda`, `cufile`, `peer`, `interrupted`,
    /// `internal`, `ranks`.
    pub kind: String,
    /// The one-line message gdswap printed (the library's text, settings by name, unless
    /// the command line puts its own line, with flags, here).
    pub message: String,
}

impl ErrorRecord {
    /// The record of `e`: its [`crate::error::Error::kind`] and its message.
    pub fn of(e: &crate::error::Error) -> ErrorRecord {
        ErrorRecord {
            kind: e.kind().into(),
            message: e.to_string(),
        }
    }
}

/// A run that failed, as `run --json` records it: the `gdswap.run.v1` header fields
/// (`schema`, `finished_at`, `environment`, `params`) and `error` in place of the figures,
/// which a failed run does not have (no zeroes stand in for them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRun {
    /// [`SCHEMA`].
    pub schema: String,
    /// When the run ended, UTC, ISO 8601.
    pub finished_at: String,
    /// The machine, kernel and filesystem.
    pub environment: Environment,
    /// The options the run was made with.
    pub params: Params,
    /// Why it failed.
    pub error: ErrorRecord,
    /// The command line that ran, as typed (empty when a library caller made the record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command_line: Vec<String>,
}

impl FailedRun {
    /// The record of a run of `opts` that failed with `error`, ended at `finished_at`.
    pub fn new(
        opts: &RunOptions,
        error: &crate::error::Error,
        environment: Environment,
        finished_at: String,
    ) -> FailedRun {
        FailedRun {
            schema: SCHEMA.into(),
            finished_at,
            environment,
            params: Params::of(
                opts,
                opts.backend.memory() == crate::types::MemoryKind::Device,
            ),
            error: ErrorRecord::of(error),
            command_line: Vec::new(),
        }
    }

    /// The record as pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plain data serializes");
        s.push('\n');
        s
    }
}

/// Figures over all measured loops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Bytes moved in the measured loops, all threads.
    pub bytes: u64,
    /// Requests in the measured loops, all threads.
    pub requests: u64,
    /// Sum over loops of the slowest thread's time inside transfers.
    pub task_time_s: f64,
    /// Sum over loops of the wall time from release to the last thread done.
    pub e2e_time_s: f64,
    /// bytes / task time, in GB/s (1e9 bytes).
    pub bandwidth_gbps: f64,
    /// bytes / task time, in GiB/s (2^30 bytes).
    pub bandwidth_gibps: f64,
    /// bytes / end-to-end time, in GiB/s.
    pub e2e_bandwidth_gibps: f64,
    /// Median over loops of each loop's GiB/s, with the spread.
    pub loop_gibps_median: f64,
    /// The slowest loop's GiB/s.
    pub loop_gibps_min: f64,
    /// The fastest loop's GiB/s.
    pub loop_gibps_max: f64,
    /// requests / task time.
    pub iops: f64,
    /// Latencies of every measured request, all threads merged.
    pub latency: Percentiles,
    /// The latency CDF, `[quantile, us]` at [`crate::stats::CDF_QUANTILES`] (absent from
    /// reports written before it existed).
    #[serde(default)]
    pub latency_cdf_us: Vec<[f64; 2]>,
    /// Process user CPU time during the measured loops, seconds.
    pub cpu_user_s: f64,
    /// Process system CPU time during the measured loops, seconds.
    pub cpu_system_s: f64,
    /// (user + system) CPU seconds per GiB moved.
    pub cpu_s_per_gib: f64,
    /// Time of the final fdatasync (writes), not included in the bandwidth.
    pub sync_time_s: f64,
    /// Whether the data was checked against the pattern (and matched: a mismatch fails the run).
    pub verified: bool,
}

/// One measured loop's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopFigures {
    /// The loop's index among the measured loops, 0-based.
    pub index: usize,
    /// The slowest thread's time inside transfers (several ranks: their common span), s.
    pub task_time_s: f64,
    /// Wall time from release to the last thread done, barriers included, s.
    pub e2e_time_s: f64,
    /// The loop's bytes / task time, GiB/s.
    pub bandwidth_gibps: f64,
    /// Process CPU time (user + system) during the loop, s.
    pub cpu_s: f64,
    /// The loop on the wall clock (Unix ns), from release to the last thread done, to lay
    /// runs side by side; absent from records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::ranks::LoopWindow>,
}

/// One worker thread's figures over all measured loops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadFigures {
    /// The thread's index, 0-based.
    pub tid: usize,
    /// The data file it moved to or from.
    pub path: PathBuf,
    /// First byte of its range in the file.
    pub file_offset: u64,
    /// Bytes it moved in the measured loops.
    pub bytes: u64,
    /// Its time inside transfers, summed over loops, s.
    pub task_time_s: f64,
    /// bytes / its task time, GiB/s.
    pub bandwidth_gibps: f64,
    /// Its requests / its task time.
    pub iops: f64,
    /// Its request latencies.
    pub latency: Percentiles,
    /// Its own user CPU time inside measured transfers, s.
    pub cpu_user_s: f64,
    /// Its own system CPU time inside measured transfers, s.
    pub cpu_system_s: f64,
    /// Its final fdatasync (writes; 0 for reads), s.
    pub sync_time_s: f64,
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

impl RunReport {
    /// Computes every figure from raw measurements.
    pub fn new(
        opts: &RunOptions,
        m: &Measurements,
        environment: Environment,
        finished_at: String,
    ) -> RunReport {
        let loops_n = m.loops.len() as u64;
        let bytes_per_loop: u64 = m.threads.iter().map(|t| t.bytes_per_loop).sum();
        let requests_per_loop: u64 = m.threads.iter().map(|t| t.requests_per_loop as u64).sum();
        let bytes = bytes_per_loop * loops_n;
        let requests = requests_per_loop * loops_n;

        let loops: Vec<LoopFigures> = m
            .loops
            .iter()
            .enumerate()
            .map(|(i, l)| {
                // One process: the slowest thread; several: the ranks' common span.
                let task = l.span.unwrap_or_else(|| {
                    m.threads
                        .iter()
                        .filter_map(|t| t.loop_times.get(i))
                        .max()
                        .copied()
                        .unwrap_or_default()
                });
                LoopFigures {
                    index: i,
                    task_time_s: task.as_secs_f64(),
                    e2e_time_s: l.e2e_time.as_secs_f64(),
                    bandwidth_gibps: ratio(bytes_per_loop as f64 / GIB, task.as_secs_f64()),
                    cpu_s: (l.cpu.user + l.cpu.system).as_secs_f64(),
                    window: Some(l.window),
                }
            })
            .collect();
        let task_time_s: f64 = loops.iter().map(|l| l.task_time_s).sum();
        let e2e_time_s: f64 = loops.iter().map(|l| l.e2e_time_s).sum();
        let cpu_user_s: f64 = m.loops.iter().map(|l| l.cpu.user.as_secs_f64()).sum();
        let cpu_system_s: f64 = m.loops.iter().map(|l| l.cpu.system.as_secs_f64()).sum();
        let per_loop: Vec<f64> = loops.iter().map(|l| l.bandwidth_gibps).collect();

        let mut all = LatencyRecorder::new();
        for t in &m.threads {
            all.merge(&t.latencies);
        }
        let threads = m
            .threads
            .iter()
            .map(|t| {
                let task: f64 = t.loop_times.iter().map(|d| d.as_secs_f64()).sum();
                let tb = t.bytes_per_loop * loops_n;
                ThreadFigures {
                    tid: t.tid,
                    path: t.path.clone(),
                    file_offset: t.file_offset,
                    bytes: tb,
                    task_time_s: task,
                    bandwidth_gibps: ratio(tb as f64 / GIB, task),
                    iops: ratio((t.requests_per_loop as u64 * loops_n) as f64, task),
                    latency: t.latencies.percentiles(),
                    cpu_user_s: t.cpu.user.as_secs_f64(),
                    cpu_system_s: t.cpu.system.as_secs_f64(),
                    sync_time_s: t.sync_time.as_secs_f64(),
                }
            })
            .collect();
        let sync_time_s = m
            .threads
            .iter()
            .map(|t| t.sync_time.as_secs_f64())
            .fold(0.0, f64::max);

        let summary = Summary {
            bytes,
            requests,
            task_time_s,
            e2e_time_s,
            bandwidth_gbps: ratio(bytes as f64 / 1e9, task_time_s),
            bandwidth_gibps: ratio(bytes as f64 / GIB, task_time_s),
            e2e_bandwidth_gibps: ratio(bytes as f64 / GIB, e2e_time_s),
            loop_gibps_median: median(&per_loop),
            loop_gibps_min: per_loop.iter().copied().reduce(f64::min).unwrap_or(0.0),
            loop_gibps_max: per_loop.iter().copied().fold(0.0, f64::max),
            iops: ratio(requests as f64, task_time_s),
            latency: all.percentiles(),
            latency_cdf_us: all.cdf_us(),
            cpu_user_s,
            cpu_system_s,
            cpu_s_per_gib: ratio(cpu_user_s + cpu_system_s, bytes as f64 / GIB),
            sync_time_s,
            verified: m.verified,
        };
        let mut params = Params::of(opts, m.memory == crate::backend::MemoryKind::Device);
        if opts.duration.is_some() {
            // A time-based run: the loops it ran, not the --loops it did not use.
            params.workload.loops = u32::try_from(m.loops.len()).unwrap_or(u32::MAX);
        }
        let mut report = RunReport {
            schema: SCHEMA.into(),
            finished_at,
            environment,
            params,
            backend_mode: m.mode.clone(),
            destination: serde_json::to_value(m.memory)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            buffer_pages: m
                .pages
                .map(|p| p.to_string())
                .unwrap_or_else(|| "n/a".into()),
            huge_pages_obtained: m.pages.is_some_and(|p| p.is_huge()),
            dio_align_bytes: m.align,
            summary,
            loops,
            threads,
            warnings: Vec::new(),
            pipeline: PipelineFigures::from_phases(
                &m.threads
                    .iter()
                    .filter_map(|t| t.phases)
                    .collect::<Vec<_>>(),
            )
            .map(|p| {
                p.with_copy_spans(
                    &m.threads
                        .iter()
                        .flat_map(|t| t.copy_spans.iter().copied())
                        .collect::<Vec<_>>(),
                )
            }),
            gds_path: m.gds_path.clone(),
            soak: soak::Soak::of(opts, m),
            ranks: RankFigures::of(&m.ranks),
            numa: m.numa.clone(),
        };
        let mut warnings = warning::assess(&report, m.pages);
        if let Some(fs) = m.non_block_fs {
            warnings.push(Warning::NotBlockDevice { fs: fs.into() });
        }
        report.warnings = warnings.iter().map(Warning::record).collect();
        report
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso8601_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Now, as [`iso8601_utc`].
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    iso8601_utc(secs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn pipeline_overlap_is_bounded_by_the_shorter_stage() {
        use crate::backend::PhaseTimes;
        use std::time::Duration;
        let ms = Duration::from_millis;
        assert_eq!(PipelineFigures::from_phases(&[]), None);
        // Fully overlapped: I/O 100 ms, copies 40 ms, 100 ms in all.
        let p = PipelineFigures::from_phases(&[PhaseTimes {
            io: ms(100),
            copy: ms(40),
            total: ms(100),
        }])
        .unwrap();
        assert!((p.overlap_s - 0.04).abs() < 1e-9 && (p.overlap_fraction - 1.0).abs() < 1e-9);
        // Serial: 100 + 40 = 140 ms, nothing overlapped.
        let p = PipelineFigures::from_phases(&[PhaseTimes {
            io: ms(100),
            copy: ms(40),
            total: ms(145),
        }])
        .unwrap();
        assert_eq!((p.overlap_s, p.overlap_fraction), (0.0, 0.0));
        // Two threads, half overlapped each.
        let half = PhaseTimes {
            io: ms(100),
            copy: ms(40),
            total: ms(120),
        };
        let p = PipelineFigures::from_phases(&[half, half]).unwrap();
        assert!((p.io_time_s - 0.2).abs() < 1e-9 && (p.transfer_time_s - 0.24).abs() < 1e-9);
        assert!((p.overlap_fraction - 0.5).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn copy_time_is_the_union_of_all_threads_copy_spans() {
        use crate::backend::PhaseTimes;
        use crate::cuda::copy::{union_s, CopySpan};
        use std::time::Duration;
        let span = |a: f64, b: f64| CopySpan {
            start_s: a,
            end_s: b,
        };
        assert_eq!(union_s(&[]), 0.0);
        // Thread 1's copy [0.00, 0.08] waited 40 ms for thread 0's [0.00, 0.04]; then a gap,
        // then one more copy: the engine was busy 80 + 10 ms, not 40 + 80 + 10.
        let spans = [span(0.2, 0.21), span(0.0, 0.08), span(0.0, 0.04)];
        assert!((union_s(&spans) - 0.09).abs() < 1e-12);
        let ms = Duration::from_millis;
        let thread = PhaseTimes {
            io: ms(100),
            copy: ms(60),
            total: ms(120),
        };
        let p = PipelineFigures::from_phases(&[thread, thread]).unwrap();
        assert!((p.copy_time_s - 0.12).abs() < 1e-9 && (p.overlap_s - 0.08).abs() < 1e-9);
        let p = p.with_copy_spans(&spans);
        assert!((p.copy_time_s - 0.09).abs() < 1e-9, "{p:?}");
        // The overlap cannot exceed the copy engine's busy time.
        assert!((p.overlap_s - 0.08).abs() < 1e-9, "{p:?}");
        let p = PipelineFigures::from_phases(&[thread, thread])
            .unwrap()
            .with_copy_spans(&[span(0.0, 0.05)]);
        assert!((p.overlap_s - 0.05).abs() < 1e-9 && (p.overlap_fraction - 1.0).abs() < 1e-9);
        // No spans (another backend): the summed figures stand.
        let p = PipelineFigures::from_phases(&[thread]).unwrap();
        assert_eq!(p.clone().with_copy_spans(&[]), p);
    }

    #[test]
    fn ranks_below_the_median_by_more_than_the_limit_are_stragglers_in_every_output() {
        use crate::ranks::{LoopWindow, RankMeasurement};
        // Each rank moves 1 GiB in one loop, in 1 s, 1.2 s and 1.05 s.
        let rank = |rank: usize, ms: u64| RankMeasurement {
            rank,
            host: format!("node{rank}"),
            bytes_per_loop: 1 << 30,
            windows: vec![LoopWindow {
                start_unix_ns: 5_000,
                end_unix_ns: 5_000 + ms * 1_000_000,
            }],
            latencies: LatencyRecorder::new(),
        };
        let figures = RankFigures::of(&[rank(0, 1000), rank(1, 1200), rank(2, 1050)]);
        let slow: Vec<bool> = figures.iter().map(|k| k.straggler).collect();
        assert_eq!(slow, [false, true, false], "{figures:?}");
        // The median rank is rank 2 (1/1.05 GiB/s); rank 1 (1/1.2) is 12.5% below it.
        assert!(
            (figures[1].below_median_pct - 12.5).abs() < 1e-9,
            "{figures:?}"
        );
        assert_eq!(figures[2].below_median_pct, 0.0);
        assert!((figures[0].bandwidth_gibps - 1.0).abs() < 1e-9);
        let mut r = sample();
        r.ranks = figures;
        let w = warning::assess(&r, None);
        assert!(
            w.iter().any(|w| matches!(w, Warning::Stragglers { ranks } if ranks.contains("rank 1 on node1") && !ranks.contains("rank 2"))),
            "{w:?}"
        );
        let t = human::table(&r);
        assert!(
            t.contains("rank 1 ")
                && t.contains("stragglers (>10% below the median rank): rank 1 ("),
            "{t}"
        );
        assert!(
            !t.contains("thread 0"),
            "rank rows replace thread rows: {t}"
        );
        assert!(
            human::summary_line(&r).contains("3 ranks x 2 threads")
                && human::summary_line(&r).contains("per rank")
        );
        let c = csv::to_csv(std::slice::from_ref(&r));
        let (head, row) = c.split_once('\n').unwrap();
        assert!(head.ends_with(",ranks,rank_gibps,stragglers"), "{head}");
        assert!(
            row.trim_end().ends_with(",3,0:1.000 1:0.833 2:0.952,1"),
            "{row}"
        );
        let md = markdown::runs(std::slice::from_ref(&r));
        assert!(
            md.contains("| 1 | node1 | 0.83 |") && md.contains("| yes |"),
            "{md}"
        );
        // One process: no rank figures anywhere.
        let one = sample();
        assert!(!human::table(&one).contains("rank 0"));
        assert!(csv::to_csv(std::slice::from_ref(&one))
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(",1,,"));
        assert!(!json::to_json(std::slice::from_ref(&one)).contains("\"ranks\""));
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    /// A fixed report for exporter tests.
    pub(crate) fn sample() -> RunReport {
        RunReport {
            schema: SCHEMA.into(),
            finished_at: "2026-11-24T12:00:00Z".into(),
            environment: Environment {
                gdswap_version: "0.1.0".into(),
                git_commit: "abc".into(),
                hostname: "h".into(),
                kernel: "6.1.0".into(),
                cpu_model: "CPU, \"quoted\"".into(),
                cpus: 2,
                memory_bytes: 1 << 34,
                filesystem: crate::env::Filesystem {
                    path: "/data".into(),
                    fs_type: "ext4".into(),
                    mount_point: "/".into(),
                    mount_source: "/dev/vda".into(),
                    mount_options: "rw".into(),
                    device: "virtio disk (vda)".into(),
                },
            },
            params: Params {
                backend: crate::types::BackendId::Host,
                workload: Workload {
                    op: crate::options::Op::Read,
                    target: crate::options::Target::Dir("/data".into()),
                    size: 1 << 30,
                    block_size: 1 << 20,
                    queue_depth: 8,
                    threads: 2,
                    loops: 2,
                    warmup: 1,
                },
                random: false,
                seed: 1,
                verify: true,
                direct: true,
                drop_caches: false,
                fixed_buffers: crate::options::FixedBuffers::Auto,
                huge_pages: HugePages::Auto,
                buffer: BufferMode::Full,
                ring: None,
                gpu: None,
            },
            backend_mode: "io_uring defer-taskrun, O_DIRECT".into(),
            destination: "host".into(),
            buffer_pages: "THP 2MiB pages".into(),
            huge_pages_obtained: true,
            dio_align_bytes: 512,
            summary: Summary {
                bytes: 2 << 30,
                requests: 2048,
                task_time_s: 0.5,
                e2e_time_s: 0.55,
                bandwidth_gbps: 4.294967296,
                bandwidth_gibps: 4.0,
                e2e_bandwidth_gibps: 3.6363636,
                loop_gibps_median: 4.0,
                loop_gibps_min: 3.9,
                loop_gibps_max: 4.1,
                iops: 4096.0,
                latency: Percentiles {
                    count: 2048,
                    mean_us: 1900.0,
                    p50_us: 1800.0,
                    p90_us: 2500.0,
                    p99_us: 3100.0,
                    p999_us: 4000.0,
                    max_us: 5000.0,
                },
                latency_cdf_us: vec![[0.0, 900.0], [0.5, 1800.0], [1.0, 5000.0]],
                cpu_user_s: 0.01,
                cpu_system_s: 0.09,
                cpu_s_per_gib: 0.05,
                sync_time_s: 0.0,
                verified: true,
            },
            loops: vec![
                LoopFigures {
                    index: 0,
                    task_time_s: 0.25,
                    e2e_time_s: 0.27,
                    bandwidth_gibps: 4.0,
                    cpu_s: 0.05,
                    window: None,
                },
                LoopFigures {
                    index: 1,
                    task_time_s: 0.25,
                    e2e_time_s: 0.28,
                    bandwidth_gibps: 4.0,
                    cpu_s: 0.05,
                    window: None,
                },
            ],
            threads: (0..2)
                .map(|tid| ThreadFigures {
                    tid,
                    path: format!("/data/gdswap.{tid}.dat").into(),
                    file_offset: 0,
                    bytes: 1 << 30,
                    task_time_s: 0.5,
                    bandwidth_gibps: 2.0,
                    iops: 2048.0,
                    latency: Percentiles::default(),
                    cpu_user_s: 0.0,
                    cpu_system_s: 0.04,
                    sync_time_s: 0.0,
                })
                .collect(),
            warnings: vec![],
            pipeline: None,
            gds_path: None,
            soak: None,
            ranks: Vec::new(),
            numa: None,
        }
    }

    /// The keys of a JSON object, in the order they are written.
    pub(crate) fn keys_in_order(json: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<(usize, String)> = obj
            .keys()
            .map(|k| (json.find(&format!("\"{k}\":")).unwrap(), k.clone()))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    #[test]
    fn run_and_compare_records_keep_their_json_keys_in_order() {
        let r = sample();
        assert_eq!(
            keys_in_order(&serde_json::to_string(&r.params).unwrap()),
            [
                "backend",
                "op",
                "target_kind",
                "target",
                "size_bytes",
                "block_size_bytes",
                "queue_depth",
                "threads",
                "loops",
                "warmup",
                "random",
                "seed",
                "verify",
                "direct",
                "drop_caches",
                "fixed_buffers",
                "huge_pages",
                "buffer",
            ]
        );
        let c = comparison::tests::sample();
        assert_eq!(
            keys_in_order(&serde_json::to_string(&c.params).unwrap()),
            [
                "op",
                "target_kind",
                "target",
                "size_bytes",
                "block_size_bytes",
                "queue_depth",
                "threads",
                "loops",
                "warmup",
                "rounds",
                "random",
                "direct",
                "huge_pages",
                "fixed_buffers",
            ]
        );
        // The typed fields are written as the strings they were.
        let json = serde_json::to_string(&r.params).unwrap();
        for kv in [
            r#""op":"read""#,
            r#""target_kind":"dir","target":"/data""#,
            r#""size_bytes":1073741824,"block_size_bytes":1048576"#,
            r#""huge_pages":"auto""#,
            r#""buffer":"full""#,
        ] {
            assert!(json.contains(kv), "{kv} in {json}");
        }
        // A record from before `buffer` existed reads as `full`.
        let old = json.replace(r#","buffer":"full""#, "");
        assert!(!old.contains(r#""buffer""#));
        let back: Params = serde_json::from_str(&old).unwrap();
        assert_eq!(back.buffer, BufferMode::Full);
        // And back: a saved record reads as it was written.
        let back: Params =
            serde_json::from_str(&serde_json::to_string(&r.params).unwrap()).unwrap();
        assert_eq!(back, r.params);
        let back: comparison::CompareParams =
            serde_json::from_str(&serde_json::to_string(&c.params).unwrap()).unwrap();
        assert_eq!(back, c.params);
    }
}
