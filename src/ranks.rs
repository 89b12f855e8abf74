//! Many processes (issue 16): one run as the ranks of a parallel job (`mpirun`, `srun`).
//!
//! The harness meets its peers through a [`Coordinator`]: a barrier where the threads meet at
//! theirs, a gather of every rank's measurements to rank 0, and an abort that ends every rank.
//! The harness knows only the trait; [`Solo`] (one process, every call a no-op) is what runs
//! without a launcher, and the MPI coordinator (`mpi` cargo feature, [`from_launcher`]) is
//! the one started under `mpirun`/`srun`. So the default build needs no MPI, and the harness
//! imports none.
//!
//! Merging the ranks' measurements on rank 0 is [`crate::rank_merge`]'s job (it works on the
//! harness's measurements, so it sits above the harness, which sits above this module).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::options::{RunOptions, Target};
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
    /// A barrier that also hands every process rank 0's `go_on` (a time-based run goes on
    /// or stops at the same loop everywhere, as rank 0's clock says).
    fn agree(&self, go_on: bool) -> Result<bool>;
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
    fn agree(&self, go_on: bool) -> Result<bool> {
        Ok(go_on)
    }
    fn gather(&self, bytes: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
        Ok(Some(vec![bytes]))
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Several runs in one process that meet as ranks do (`gdswap run --dir A --dir B`: one
/// harness run per directory, each on its own thread, every measured loop started together):
/// [`LocalGroup::member`] is each run's [`Coordinator`]. A run that fails calls
/// [`LocalGroup::cancel`], which releases every member waiting, or arriving later, with
/// [`Error::Aborted`](crate::error::Error::Aborted), so no run waits for a dead one.
pub struct LocalGroup {
    parties: usize,
    state: std::sync::Mutex<GroupState>,
    cv: std::sync::Condvar,
}

#[derive(Default)]
struct GroupState {
    arrived: usize,
    generation: u64,
    cancelled: bool,
    /// Rank 0's value at this generation's barrier, and the one the last completed barrier
    /// released.
    pending: Option<bool>,
    released: bool,
    gathered: Vec<Option<Vec<u8>>>,
}

/// One run of a [`LocalGroup`].
pub struct LocalMember<'a> {
    group: &'a LocalGroup,
    rank: usize,
}

impl LocalGroup {
    /// A group of `parties` runs (at least 1).
    pub fn new(parties: usize) -> LocalGroup {
        LocalGroup {
            parties: parties.max(1),
            state: std::sync::Mutex::new(GroupState {
                gathered: vec![None; parties.max(1)],
                ..GroupState::default()
            }),
            cv: std::sync::Condvar::new(),
        }
    }

    /// Run `rank`'s coordinator.
    pub fn member(&self, rank: usize) -> LocalMember<'_> {
        LocalMember { group: self, rank }
    }

    /// Ends the group's meetings: every member waiting, and every later call, fails with
    /// `Error::Aborted`.
    pub fn cancel(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.cancelled = true;
        self.cv.notify_all();
    }

    /// Waits for every member; rank 0's `value` (when given) is what every member gets back.
    fn meet(&self, rank: usize, value: Option<bool>) -> Result<bool> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.cancelled {
            return Err(crate::error::Error::Aborted);
        }
        if rank == 0 {
            s.pending = value;
        }
        s.arrived += 1;
        if s.arrived == self.parties {
            s.arrived = 0;
            s.generation += 1;
            s.released = s.pending.take().unwrap_or(false);
            self.cv.notify_all();
            return Ok(s.released);
        }
        let generation = s.generation;
        while s.generation == generation && !s.cancelled {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.generation == generation {
            return Err(crate::error::Error::Aborted);
        }
        // No later barrier can complete before this member arrives at it: `released` is
        // still this generation's.
        Ok(s.released)
    }
}

impl Coordinator for LocalMember<'_> {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.group.parties
    }
    fn local_rank(&self) -> usize {
        self.rank
    }
    fn host(&self) -> String {
        hostname()
    }
    fn barrier(&self) -> Result<()> {
        self.group.meet(self.rank, None).map(drop)
    }
    fn agree(&self, go_on: bool) -> Result<bool> {
        self.group.meet(self.rank, Some(go_on))
    }
    fn gather(&self, bytes: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
        {
            let mut s = self.group.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = s.gathered.get_mut(self.rank) {
                *slot = Some(bytes);
            }
        }
        self.barrier()?;
        if self.rank != 0 {
            return Ok(None);
        }
        let mut s = self.group.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Some(
            s.gathered
                .iter_mut()
                .map(|b| b.take().unwrap_or_default())
                .collect(),
        ))
    }
    fn abort(&self, code: i32) -> ! {
        self.group.cancel();
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
        Some(l) => Err(crate::error::Error::Ranks(missing_mpi_message(&l))),
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
        fn agree(&self, go_on: bool) -> Result<bool> {
            // A broadcast from rank 0 is also a meeting point: nobody goes past it before
            // rank 0 has decided.
            let mut v = u8::from(go_on);
            self.world.process_at_rank(0).broadcast_into(&mut v);
            Ok(v != 0)
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
            // An empty slice's pointer is dangling (1), which Open MPI takes for MPI_IN_PLACE
            // (an error on other ranks, "in place" on the root): an empty message is sent from
            // a real buffer instead.
            let none = [0u8; 1];
            let send = if bytes.is_empty() {
                &none[..0]
            } else {
                &bytes[..]
            };
            if self.world.rank() != 0 {
                root.gather_into(&len);
                root.gather_varcount_into(send);
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
            // At least one byte, so the receive buffer is a real one (see above).
            let mut buf = vec![0u8; (total as usize).max(1)];
            {
                let mut part = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
                root.gather_varcount_into_root(send, &mut part);
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
    /// When the loop's workers were released, ns since the Unix epoch.
    pub start_unix_ns: u64,
    /// When its last thread was done, ns since the Unix epoch (never before the start).
    pub end_unix_ns: u64,
}

impl LoopWindow {
    /// The window from `start` to `end` (a time before the epoch reads as 0; an end before the
    /// start as the start).
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

    /// The window's length.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_ns - self.start_unix_ns)
    }
}

/// One rank of a merged run, as the report needs it.
#[derive(Clone)]
pub struct RankMeasurement {
    /// The rank, 0-based.
    pub rank: usize,
    /// The hostname it ran on.
    pub host: String,
    /// Bytes the rank's threads move per loop.
    pub bytes_per_loop: u64,
    /// Each measured loop's window on the rank's wall clock.
    pub windows: Vec<LoopWindow>,
    /// The rank's request latencies, its threads merged.
    pub latencies: LatencyRecorder,
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

/// `opts` for this process's rank of a run of several: its own files (`--dir D`: `D/rank<N>`,
/// created as needed when D exists or --create-dir is given; `--file F`: `F.rank<N>`), and its
/// GPU (`--gpu` plus the rank's place on its node, modulo the GPUs the driver sees).
pub fn for_rank(mut opts: RunOptions, coord: &dyn Coordinator) -> RunOptions {
    if coord.size() <= 1 {
        return opts;
    }
    let rank = coord.rank();
    opts.workload.target = match opts.workload.target {
        Target::File(f) => Target::File(rank_path(&f, false, rank)),
        Target::Dir(d) if opts.create_dir || d.is_dir() => {
            opts.create_dir = true;
            Target::Dir(rank_path(&d, true, rank))
        }
        // A missing --dir without --create-dir: refused as it is, naming the flag.
        Target::Dir(d) => Target::Dir(d),
    };
    let gpu_backend =
        crate::backend::get(opts.backend).memory() != crate::backend::MemoryKind::Host;
    let devices = if gpu_backend {
        crate::cuda::driver::load().map(|d| d.devices).unwrap_or(0)
    } else {
        0
    };
    let device = opts.gpu.device.saturating_add(coord.local_rank());
    opts.gpu.device = if devices > 0 {
        device % devices
    } else {
        device
    };
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_group_hands_everyone_rank_0s_decision_and_a_cancel_frees_waiters() {
        let g = LocalGroup::new(3);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|rank| {
                    let m = g.member(rank);
                    s.spawn(move || {
                        let mut got = Vec::new();
                        for i in 0..200u32 {
                            // Everyone but rank 0 says the opposite of rank 0.
                            let mine = (i % 3 == 0) == (rank == 0);
                            got.push(m.agree(mine).unwrap());
                            m.barrier().unwrap();
                        }
                        let all = m.gather(vec![rank as u8]).unwrap();
                        (got, all)
                    })
                })
                .collect();
            for (rank, h) in handles.into_iter().enumerate() {
                let (got, all) = h.join().unwrap();
                let want: Vec<bool> = (0..200u32).map(|i| i % 3 == 0).collect();
                assert_eq!(got, want, "rank {rank}");
                assert_eq!(all, (rank == 0).then(|| vec![vec![0], vec![1], vec![2]]));
            }
        });
        let g = LocalGroup::new(2);
        std::thread::scope(|s| {
            let m = g.member(1);
            let h = s.spawn(move || m.barrier());
            std::thread::sleep(Duration::from_millis(20));
            g.cancel();
            assert!(matches!(
                h.join().unwrap(),
                Err(crate::error::Error::Aborted)
            ));
            assert!(matches!(
                g.member(0).barrier(),
                Err(crate::error::Error::Aborted)
            ));
        });
    }

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
}
