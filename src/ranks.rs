//! Many processes (issue 16): one run as the ranks of a parallel job (`mpirun`, `srun`).
//!
//! The harness meets its peers through a [`Coordinator`]: a barrier where the threads meet at
//! theirs, a gather of every rank's measurements to rank 0, and an abort that ends every rank.
//! The harness knows only the trait; [`Solo`] (one process, every call a no-op) is what runs
//! without a launcher, and the MPI coordinator (`mpi` cargo feature, [`from_launcher`]) is
//! the one started under `mpirun`/`srun`. So the default build needs no MPI, and the harness
//! imports none.
//!
//! Merging (rank 0, [`gather`]): every rank sends a [`RankRecord`] (its threads' bytes, loop
//! times, latency histograms, CPU, and each measured loop's start and end on the wall clock);
//! rank 0 builds one [`Measurements`] whose loops span from the earliest start to the latest end
//! of any rank (the aggregate bandwidth is all bytes over that span), whose threads are every
//! rank's (so latency percentiles come from the merged histograms, never averaged), with one
//! [`RankMeasurement`] per rank for the per-rank figures and the stragglers.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::backend::PhaseTimes;
use crate::error::{Error, Result};
use crate::harness::{LoopMeasurement, Measurements, ThreadMeasurement};
use crate::io::sys::CpuTime;
use crate::stats::LatencyRecorder;

/// How the processes of one run meet. Implementations are called from the harness's
/// coordinating thread only (the thread that called `harness::run_with`).
pub trait Coordinator {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// Processes in the run.
    fn size(&self) -> usize;
    /// This process's rank among the processes of its node (picks the GPU).
    fn local_rank(&self) -> usize;
    /// The node's name, for the per-rank figures.
    fn host(&self) -> String;
    /// Returns once every process has called it.
    fn barrier(&self) -> Result<()>;
    /// Every process passes its bytes; rank 0 gets them all, in rank order, the others `None`.
    fn gather(&self, bytes: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>>;
    /// Ends every process of the run with `code` (the caller has reported its error). Never
    /// returns.
    fn abort(&self, code: i32) -> !;
}

/// One process alone: every barrier passes at once, a gather returns the caller's bytes.
pub struct Solo;

impl Coordinator for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn host(&self) -> String {
        hostname()
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn gather(&self, bytes: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
        Ok(Some(vec![bytes]))
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A parallel launcher found in the environment: which variable said so, and how many
/// processes it started (when the variable says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// `NAME=value` of the variable that gave the launch away.
    pub evidence: String,
    /// Processes in the job, when known.
    pub ranks: Option<usize>,
}

impl Launcher {
    /// More than one process (or an unknown count with a rank above 0).
    pub fn is_parallel(&self) -> bool {
        self.ranks != Some(1)
    }
}

/// The launcher that started this process, read through `var` (the environment, or a test's
/// table): Open MPI's `mpirun` (`OMPI_COMM_WORLD_SIZE`), MPICH/Intel MPI's Hydra and Slurm's PMI
/// (`PMI_SIZE`, `MPI_LOCALNRANKS`), PMIx launchers (`PMIX_RANK`: Open MPI 5's `prterun`, `srun
/// --mpi=pmix`), and a Slurm job step (`SLURM_STEP_ID` with `SLURM_STEP_NUM_TASKS` or
/// `SLURM_NTASKS`; a batch script alone has no step, so it is not a launch). `None`: not
/// launched, or launched as a single process.
pub fn launcher_from(var: impl Fn(&str) -> Option<String>) -> Option<Launcher> {
    let count = |name: &str| {
        var(name).map(|v| Launcher {
            ranks: v.trim().parse::<usize>().ok(),
            evidence: format!("{name}={v}"),
        })
    };
    let found = count("OMPI_COMM_WORLD_SIZE")
        .or_else(|| count("PMI_SIZE"))
        .or_else(|| count("MPI_LOCALNRANKS"))
        .or_else(|| {
            let step = var("SLURM_STEP_ID")?;
            let l = count("SLURM_STEP_NUM_TASKS").or_else(|| count("SLURM_NTASKS"))?;
            Some(Launcher {
                evidence: format!("SLURM_STEP_ID={step}, {}", l.evidence),
                ..l
            })
        })
        .or_else(|| {
            // PMIx names no size: a rank above 0 proves several, rank 0 alone proves nothing.
            let l = count("PMIX_RANK")?;
            Some(Launcher {
                ranks: match l.ranks {
                    Some(0) => Some(1),
                    _ => None,
                },
                ..l
            })
        })?;
    found.is_parallel().then_some(found)
}

/// What a build without the `mpi` feature says when a launcher started several copies of it.
pub fn missing_mpi_message(l: &Launcher) -> String {
    let n = l
        .ranks
        .map(|n| format!("one of {n} processes"))
        .unwrap_or_else(|| "one of several processes".into());
    format!(
        "started as {n} of a parallel launch ({}), but this gdswap was built without MPI: the copies would run unsynchronised and each report alone. Build it with MPI (`cargo build --release --features mpi`, which needs an MPI library such as Debian's libopenmpi-dev, and libclang; see docs/multi-node.md), or run gdswap without mpirun/srun",
        l.evidence
    )
}

/// The coordinator for this process: under a parallel launcher, the MPI communicator (with
/// the `mpi` feature) or the refusal of a build without it; otherwise [`Solo`], and no MPI
/// call is made.
pub fn from_launcher() -> Result<Box<dyn Coordinator>> {
    match launcher_from(|n| std::env::var(n).ok()) {
        None => Ok(Box::new(Solo)),
        #[cfg(feature = "mpi")]
        Some(_) => Ok(Box::new(mpi_coord::MpiCoordinator::init()?)),
        #[cfg(not(feature = "mpi"))]
        Some(l) => Err(Error::Ranks(missing_mpi_message(&l))),
    }
}

#[cfg(feature = "mpi")]
mod mpi_coord {
    use mpi::datatype::PartitionMut;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::*;
    use mpi::Count;

    use super::Coordinator;
    use crate::error::{Error, Result};

    /// `MPI_COMM_WORLD`, with the node-local communicator for the local rank. MPI is
    /// finalised when it drops (the universe), at the end of `main`.
    pub struct MpiCoordinator {
        world: SimpleCommunicator,
        local_rank: usize,
        host: String,
        _universe: mpi::environment::Universe,
    }

    impl MpiCoordinator {
        pub fn init() -> Result<MpiCoordinator> {
            // Funneled: only the thread that initialised MPI (the harness's coordinator, the
            // main thread) calls it; workers never do.
            let (universe, _level) = mpi::initialize_with_threading(mpi::Threading::Funneled)
                .ok_or_else(|| {
                    Error::Ranks("MPI was initialised twice (a bug in gdswap)".into())
                })?;
            let world = universe.world();
            let local_rank = world.split_shared(world.rank()).rank();
            let host = mpi::environment::processor_name().unwrap_or_else(|_| super::hostname());
            Ok(MpiCoordinator {
                world,
                local_rank: usize::try_from(local_rank).unwrap_or(0),
                host,
                _universe: universe,
            })
        }
    }

    impl Coordinator for MpiCoordinator {
        fn rank(&self) -> usize {
            usize::try_from(self.world.rank()).unwrap_or(0)
        }
        fn size(&self) -> usize {
            usize::try_from(self.world.size()).unwrap_or(1)
        }
        fn local_rank(&self) -> usize {
            self.local_rank
        }
        fn host(&self) -> String {
            self.host.clone()
        }
        fn barrier(&self) -> Result<()> {
            // MPI's default error handler aborts the job on a failed collective.
            self.world.barrier();
            Ok(())
        }
        fn gather(&self, bytes: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
            let root = self.world.process_at_rank(0);
            let len = Count::try_from(bytes.len()).map_err(|_| {
                Error::Ranks(format!(
                    "rank {}: its measurements ({} bytes) exceed what one MPI message carries",
                    self.rank(),
                    bytes.len()
                ))
            })?;
            if self.world.rank() != 0 {
                root.gather_into(&len);
                root.gather_varcount_into(&bytes[..]);
                return Ok(None);
            }
            let mut counts: Vec<Count> = vec![0; self.size()];
            root.gather_into_root(&len, &mut counts[..]);
            let mut displs = Vec::with_capacity(counts.len());
            let mut total: Count = 0;
            for &c in &counts {
                displs.push(total);
                total = total.checked_add(c).ok_or_else(|| {
                    Error::Ranks("the ranks' measurements exceed one MPI message".into())
                })?;
            }
            let mut buf = vec![0u8; total as usize];
            {
                let mut part = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
                root.gather_varcount_into_root(&bytes[..], &mut part);
            }
            Ok(Some(
                counts
                    .iter()
                    .zip(&displs)
                    .map(|(&c, &d)| buf[d as usize..(d + c) as usize].to_vec())
                    .collect(),
            ))
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }
}

/// One measured loop of one rank, on the wall clock (nanoseconds since the Unix epoch), so
/// ranks' loops can be laid side by side (one node: one clock; several: as close as their
/// clocks are synchronised).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopWindow {
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
}

impl LoopWindow {
    pub fn of(start: SystemTime, end: SystemTime) -> LoopWindow {
        let ns = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        };
        LoopWindow {
            start_unix_ns: ns(start),
            end_unix_ns: ns(end).max(ns(start)),
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_ns - self.start_unix_ns)
    }
}

/// One rank of a merged run, as the report needs it.
#[derive(Clone)]
pub struct RankMeasurement {
    pub rank: usize,
    pub host: String,
    pub bytes_per_loop: u64,
    pub windows: Vec<LoopWindow>,
    pub latencies: LatencyRecorder,
}

/// What one rank sends to rank 0.
#[derive(Debug, Serialize, Deserialize)]
pub struct RankRecord {
    pub rank: usize,
    pub host: String,
    pub loops: Vec<LoopRecord>,
    pub threads: Vec<ThreadRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoopRecord {
    pub window: LoopWindow,
    pub e2e_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub tid: usize,
    pub path: PathBuf,
    pub file_offset: u64,
    pub bytes_per_loop: u64,
    pub requests_per_loop: usize,
    pub loop_times_ns: Vec<u64>,
    /// The latency histogram, `(value, count)` per recorded bucket ([`LatencyRecorder::counts`]).
    pub latency: Vec<(u64, u64)>,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub sync_ns: u64,
    pub mode: String,
    /// io, copy and total time of multi-stage backends, summed over loops.
    pub phases_ns: Option<[u64; 3]>,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RankRecord {
    pub fn of(rank: usize, host: String, m: &Measurements) -> RankRecord {
        RankRecord {
            rank,
            host,
            loops: m
                .loops
                .iter()
                .map(|l| LoopRecord {
                    window: l.window,
                    e2e_ns: ns(l.e2e_time),
                    cpu_user_ns: ns(l.cpu.user),
                    cpu_system_ns: ns(l.cpu.system),
                })
                .collect(),
            threads: m
                .threads
                .iter()
                .map(|t| ThreadRecord {
                    tid: t.tid,
                    path: t.path.clone(),
                    file_offset: t.file_offset,
                    bytes_per_loop: t.bytes_per_loop,
                    requests_per_loop: t.requests_per_loop,
                    loop_times_ns: t.loop_times.iter().map(|&d| ns(d)).collect(),
                    latency: t.latencies.counts(),
                    cpu_user_ns: ns(t.cpu.user),
                    cpu_system_ns: ns(t.cpu.system),
                    sync_ns: ns(t.sync_time),
                    mode: t.mode.clone(),
                    phases_ns: t.phases.map(|p| [ns(p.io), ns(p.copy), ns(p.total)]),
                })
                .collect(),
        }
    }
}

/// Rank 0: the merged measurements of every rank; the other ranks: their own, unmerged (they
/// report nothing, but keep the same course as rank 0). A single process gets its own
/// measurements back, unchanged. Every rank must call it.
pub fn gather(coord: &dyn Coordinator, m: Measurements) -> Result<Measurements> {
    if coord.size() == 1 {
        return Ok(m);
    }
    let record = RankRecord::of(coord.rank(), coord.host(), &m);
    let bytes = serde_json::to_vec(&record).map_err(|e| {
        Error::Ranks(format!(
            "cannot encode rank {}'s figures: {e}",
            coord.rank()
        ))
    })?;
    let Some(all) = coord.gather(bytes)? else {
        return Ok(m);
    };
    let mut records = Vec::with_capacity(all.len());
    for (rank, b) in all.iter().enumerate() {
        let r: RankRecord = serde_json::from_slice(b)
            .map_err(|e| Error::Ranks(format!("rank {rank}'s figures do not decode: {e}")))?;
        records.push(r);
    }
    merge(m, records)
}

/// Rank 0's measurements `base` (backend, mode, pages, alignment, path verdict) with the
/// figures of every rank in `records` (rank 0's included, in rank order).
pub fn merge(base: Measurements, records: Vec<RankRecord>) -> Result<Measurements> {
    let loops_n = base.loops.len();
    if let Some(r) = records.iter().find(|r| r.loops.len() != loops_n) {
        return Err(Error::Ranks(format!(
            "rank {} measured {} loops, rank 0 {loops_n}",
            r.rank,
            r.loops.len()
        )));
    }
    let mut loops = Vec::with_capacity(loops_n);
    for i in 0..loops_n {
        let start = records
            .iter()
            .map(|r| r.loops[i].window.start_unix_ns)
            .min()
            .unwrap_or(0);
        let end = records
            .iter()
            .map(|r| r.loops[i].window.end_unix_ns)
            .max()
            .unwrap_or(0)
            .max(start);
        let span = Duration::from_nanos(end - start);
        let (mut user, mut system) = (Duration::ZERO, Duration::ZERO);
        for r in &records {
            user += Duration::from_nanos(r.loops[i].cpu_user_ns);
            system += Duration::from_nanos(r.loops[i].cpu_system_ns);
        }
        loops.push(LoopMeasurement {
            e2e_time: span,
            cpu: CpuTime { user, system },
            window: LoopWindow {
                start_unix_ns: start,
                end_unix_ns: end,
            },
            span: Some(span),
        });
    }
    let per_rank_threads = records.iter().map(|r| r.threads.len()).max().unwrap_or(0);
    let mut threads = Vec::new();
    let mut ranks = Vec::with_capacity(records.len());
    for r in records {
        let mut rank_lat = LatencyRecorder::new();
        let mut rank_bytes = 0u64;
        for t in r.threads {
            let latencies = LatencyRecorder::from_counts(&t.latency);
            rank_lat.merge(&latencies);
            rank_bytes = rank_bytes
                .checked_add(t.bytes_per_loop)
                .ok_or_else(|| Error::Ranks(format!("rank {}: bytes per loop overflow", r.rank)))?;
            threads.push(ThreadMeasurement {
                tid: r
                    .rank
                    .checked_mul(per_rank_threads)
                    .and_then(|x| x.checked_add(t.tid))
                    .unwrap_or(usize::MAX),
                path: t.path,
                file_offset: t.file_offset,
                bytes_per_loop: t.bytes_per_loop,
                requests_per_loop: t.requests_per_loop,
                loop_times: t
                    .loop_times_ns
                    .iter()
                    .map(|&n| Duration::from_nanos(n))
                    .collect(),
                latencies,
                cpu: CpuTime {
                    user: Duration::from_nanos(t.cpu_user_ns),
                    system: Duration::from_nanos(t.cpu_system_ns),
                },
                sync_time: Duration::from_nanos(t.sync_ns),
                mode: t.mode,
                pages: None,
                phases: t.phases_ns.map(|[io, copy, total]| PhaseTimes {
                    io: Duration::from_nanos(io),
                    copy: Duration::from_nanos(copy),
                    total: Duration::from_nanos(total),
                }),
                // Copy spans are on each process's own clock: not merged.
                copy_spans: Vec::new(),
                // Only soaks count wrong blocks past the first, and a parallel run refuses
                // them (`harness::run_with`): each rank's wrong block is its error.
                verify_errors: 0,
                verify_failures: Vec::new(),
            });
        }
        ranks.push(RankMeasurement {
            rank: r.rank,
            host: r.host,
            bytes_per_loop: rank_bytes,
            windows: r.loops.iter().map(|l| l.window).collect(),
            latencies: rank_lat,
        });
    }
    Ok(Measurements {
        loops,
        threads,
        ranks,
        ..base
    })
}

/// `--file`/`--dir` for rank `rank` of a parallel run, so no two ranks share a file: a
/// directory gets a subdirectory per rank (`DIR/rank<N>`), a file a suffix (`FILE.rank<N>`).
pub fn rank_path(path: &std::path::Path, is_dir: bool, rank: usize) -> PathBuf {
    if is_dir {
        path.join(format!("rank{rank}"))
    } else {
        let mut s = path.as_os_str().to_os_string();
        s.push(format!(".rank{rank}"));
        PathBuf::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn launchers_are_recognised_by_their_variables() {
        assert_eq!(launcher_from(env(&[])), None);
        let l = launcher_from(env(&[("OMPI_COMM_WORLD_SIZE", "3")])).unwrap();
        assert_eq!(l.ranks, Some(3));
        assert_eq!(l.evidence, "OMPI_COMM_WORLD_SIZE=3");
        assert_eq!(launcher_from(env(&[("OMPI_COMM_WORLD_SIZE", "1")])), None);
        assert_eq!(
            launcher_from(env(&[("PMI_SIZE", "4")])).unwrap().ranks,
            Some(4)
        );
        assert_eq!(launcher_from(env(&[("PMI_SIZE", "1")])), None);
        // A batch script of a 4-task job is no launch; a step of it is.
        assert_eq!(launcher_from(env(&[("SLURM_NTASKS", "4")])), None);
        let step = launcher_from(env(&[("SLURM_NTASKS", "4"), ("SLURM_STEP_ID", "0")])).unwrap();
        assert_eq!(step.ranks, Some(4));
        let step = launcher_from(env(&[
            ("SLURM_NTASKS", "4"),
            ("SLURM_STEP_NUM_TASKS", "1"),
            ("SLURM_STEP_ID", "0"),
        ]));
        assert_eq!(step, None, "a one-task step in a bigger job");
        assert_eq!(launcher_from(env(&[("PMIX_RANK", "0")])), None);
        assert_eq!(
            launcher_from(env(&[("PMIX_RANK", "2")])).unwrap().ranks,
            None
        );
        let msg = missing_mpi_message(&launcher_from(env(&[("PMI_SIZE", "4")])).unwrap());
        assert!(msg.contains("one of 4 processes") && msg.contains("PMI_SIZE=4"));
        assert!(msg.contains("--features mpi"), "{msg}");
    }

    #[test]
    fn rank_paths_never_collide() {
        use std::path::Path;
        assert_eq!(rank_path(Path::new("/d"), true, 2), Path::new("/d/rank2"));
        assert_eq!(
            rank_path(Path::new("/d/f.dat"), false, 0),
            Path::new("/d/f.dat.rank0")
        );
    }

    fn record(rank: usize, start: u64, end: u64, lat_us: u64, n: u64) -> RankRecord {
        let mut l = LatencyRecorder::new();
        for _ in 0..n {
            l.record(Duration::from_micros(lat_us));
        }
        RankRecord {
            rank,
            host: format!("node{rank}"),
            loops: vec![LoopRecord {
                window: LoopWindow {
                    start_unix_ns: start,
                    end_unix_ns: end,
                },
                e2e_ns: end - start,
                cpu_user_ns: 1_000,
                cpu_system_ns: 2_000,
            }],
            threads: vec![ThreadRecord {
                tid: 0,
                path: format!("/d/rank{rank}/gdswap.0.dat").into(),
                file_offset: 0,
                bytes_per_loop: 1 << 20,
                requests_per_loop: n as usize,
                loop_times_ns: vec![end - start],
                latency: l.counts(),
                cpu_user_ns: 0,
                cpu_system_ns: 0,
                sync_ns: 0,
                mode: "test".into(),
                phases_ns: None,
            }],
        }
    }

    fn base() -> Measurements {
        Measurements {
            backend: "host".into(),
            memory: crate::backend::MemoryKind::Host,
            mode: "test".into(),
            pages: None,
            align: 4096,
            threads: Vec::new(),
            loops: vec![LoopMeasurement {
                e2e_time: Duration::ZERO,
                cpu: CpuTime::default(),
                window: LoopWindow {
                    start_unix_ns: 0,
                    end_unix_ns: 0,
                },
                span: None,
            }],
            verified: false,
            gds_path: None,
            non_block_fs: None,
            ranks: Vec::new(),
        }
    }

    #[test]
    fn merged_loops_span_earliest_start_to_latest_end_and_latencies_merge_as_histograms() {
        // Rank 0: 300 requests of 10 us; rank 1: 100 requests of 1000 us, later and longer.
        let m = merge(
            base(),
            vec![
                record(0, 1_000, 5_000, 10, 300),
                record(1, 2_000, 9_000, 1_000, 100),
            ],
        )
        .unwrap();
        assert_eq!(m.loops[0].span, Some(Duration::from_nanos(8_000)));
        assert_eq!(m.loops[0].cpu.user, Duration::from_nanos(2_000));
        assert_eq!(m.threads.len(), 2);
        assert_eq!(m.threads[1].tid, 1);
        assert_eq!(m.ranks.len(), 2);
        assert_eq!(m.ranks[1].host, "node1");
        let mut all = LatencyRecorder::new();
        for t in &m.threads {
            all.merge(&t.latencies);
        }
        let p = all.percentiles();
        assert_eq!(p.count, 400);
        // Merged: 3/4 of the requests took 10 us, so the median is 10 us (the mean of the
        // ranks' medians would be 505 us) and p90 is 1000 us.
        assert!((p.p50_us - 10.0).abs() < 0.1, "{p:?}");
        assert!((p.p90_us - 1000.0).abs() < 1.0, "{p:?}");
        // A rank that measured another number of loops is refused.
        let mut short = record(1, 0, 1, 1, 1);
        short.loops.clear();
        assert!(merge(base(), vec![record(0, 0, 1, 1, 1), short]).is_err());
    }
}
