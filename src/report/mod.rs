//! Results as data: [`RunReport`] is built once from a run's measurements, and every exporter
//! (human text, JSON, CSV, Markdown) is a pure function of it. Reports deserialize too, so saved
//! JSON results can be re-exported and compared later. [`comparison`] holds the result of
//! `gdswap compare` (several contenders, interleaved rounds); its exporters live with their
//! format, beside the run's: [`json`], [`csv`], [`human`], [`markdown`], [`svg`].

pub mod comparison;
pub mod csv;
mod failed;
mod figures;
pub mod human;
pub mod json;
pub mod markdown;
mod params;
pub mod soak;
pub mod svg;
pub mod svg_bars;
mod time;
pub mod warning;

use serde::{Deserialize, Serialize};

use crate::env::Environment;
use crate::harness::Measurements;
use crate::options::RunOptions;
use crate::stats::{median, LatencyRecorder};

use figures::ratio;

pub use failed::{ErrorRecord, FailedRun};
pub use figures::{
    LoopFigures, PipelineFigures, RankFigures, Summary, ThreadFigures, STRAGGLER_PCT,
};
pub use params::Params;
pub use time::{iso8601_utc, now_utc};
pub use warning::{Warning, WarningRecord};

/// The path a `gds` run's bytes took: defined with cuFile, re-exported here for reports.
pub use crate::types::{GdsPath, GdsVerdict};

/// The workload a record describes, shared by the run record ([`Params`]) and the comparison
/// record ([`comparison::CompareParams`]): the run options' own [`crate::options::Workload`],
/// flattened into each.
pub use crate::options::Workload;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::options::{BufferMode, HugePages};
    use crate::stats::Percentiles;

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
}
