//! cuFile's statistics (1.15+): the per-I/O proof of which path the bytes took.
//!
//! Level 3 has, per GPU, the number of reads and writes that went through nvidia-fs, PCI
//! P2PDMA or POSIX (compat mode); levels 1 and 2 have no per-path counters for plain reads
//! and writes, so the verdict needs level 3. The structs' layouts changed at 1.19 (level 1
//! grew by 112 bytes of readv/writev counters, shifting levels 2 and 3): 1.15-1.18 share
//! 1.15's layout (level 3: 5000 bytes), 1.19.x already has 1.20's (5112 bytes), as the PyPI
//! wheels' headers show (tests/cufile_layout.rs). The version from `cuFileGetVersion` picks
//! the layout, threshold 1190; the buffer handed to cuFile is always at least the largest
//! known layout, so a library newer (or older) than its version says cannot write past it. A
//! library that cannot say its version, or is older than 1.15, gets no statistics read.
//!
//! [`start`] turns level 3 on once per open driver (the driver stays open across runs, and so
//! do the counters) and returns the counts so far, which a run's own counts are taken from.
//! Nothing turns collection off while the driver is open (see below): the `gds` backend reads
//! the warm-up loops' counts before the measured ones and leaves collection on (see
//! `backend/gds.rs`); closing the driver ends it.
//!
//! Where the counters live: libcufile (1.15 and 1.20 seen with strace) keeps them in a System
//! V shared-memory segment keyed by the process id, created exclusively (`shmget(getpid(),
//! .., IPC_CREAT|IPC_EXCL)`) and removed at `cuFileDriverClose`. A process that died with
//! the driver open leaves its segment behind, and a later process given the same pid gets no
//! statistics: cufile.log says `failed to open shared memory segment for stats <pid> error :
//! 17` and every `cuFileGetStatsL3` fails (5022). [`segment_in_the_way`] names that segment,
//! so the verdict says why it has no statistics and how to clear the way; gdswap removes
//! nothing it did not create.

use gdswap_ffi::{CUfilePerGpuStats_t, CUfileStatsLevel3_v1_15, CUfileStatsLevel3_v1_20};

use super::driver::Driver;
use super::loader::CuFileVersion;
use super::result::Call;
use crate::error::{Error, Result};
use crate::io::sys;

/// The first version with the larger statistics layout (1.19.0).
pub const LARGE_LAYOUT_FROM: CuFileVersion = CuFileVersion {
    major: 1,
    minor: 19,
};

/// The buffer every `cuFileGetStatsL3` writes into: the largest known layout.
type Largest = CUfileStatsLevel3_v1_20;
const _: () = assert!(
    std::mem::size_of::<Largest>() >= std::mem::size_of::<CUfileStatsLevel3_v1_15>()
        && std::mem::align_of::<Largest>() >= std::mem::align_of::<CUfileStatsLevel3_v1_15>()
);

/// I/Os per path, reads and writes together, over all GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    /// I/Os done through POSIX (compat mode).
    pub posix: u64,
    /// I/Os done through nvidia-fs (GPUDirect).
    pub nvfs: u64,
    /// I/Os done through kernel PCI P2PDMA.
    pub p2p: u64,
}

impl PathCounts {
    /// All I/Os counted, whatever their path.
    pub fn total(&self) -> u64 {
        self.posix + self.nvfs + self.p2p
    }

    /// The I/Os counted since `base` was read (the counters only grow while collection is on).
    pub fn since(&self, base: &PathCounts) -> PathCounts {
        PathCounts {
            posix: self.posix.saturating_sub(base.posix),
            nvfs: self.nvfs.saturating_sub(base.nvfs),
            p2p: self.p2p.saturating_sub(base.p2p),
        }
    }

    fn add(&mut self, g: &CUfilePerGpuStats_t) {
        self.posix += g.n_posix_reads + g.n_posix_writes;
        self.nvfs += g.n_nvfs_reads + g.n_nvfs_writes;
        self.p2p += g.n_p2p_reads + g.n_p2p_writes;
    }
}

/// Whether a library of version `v` writes the large (1.19+) layout.
pub fn large_layout(v: CuFileVersion) -> bool {
    v >= LARGE_LAYOUT_FROM
}

/// Which level-3 layout a library of this version uses, or why none can be read.
fn layout(driver: &Driver) -> std::result::Result<bool, String> {
    let lib = driver.lib();
    lib.require("statistics")?;
    let v = match lib.version() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(format!("cuFile version unreadable: {e}")),
        None => return Err("cuFile does not say its version".into()),
    };
    let v1_15 = CuFileVersion {
        major: 1,
        minor: 15,
    };
    if v < v1_15 {
        return Err(format!(
            "cuFile {v} has statistics symbols but predates 1.15"
        ));
    }
    Ok(large_layout(v))
}

/// Turns level-3 collection on the first time in this open driver (`cuFileSetStatsLevel(3)`,
/// `cuFileStatsReset`, `cuFileStatsStart`), and returns the counts so far: the baseline a run
/// takes its own counts from ([`PathCounts::since`]). Later runs (a `compare` or `sweep`
/// round after round, collection still on) call nothing but the read: nothing is reset or
/// restarted while collection runs, what the real libraries were never seen to accept.
pub fn start(driver: &Driver) -> Result<PathCounts> {
    layout(driver).map_err(Error::CuFileSetup)?;
    let api = driver.lib().stats.expect("checked by layout");
    driver.stats_on_once(|| {
        // SAFETY: plain integer argument; the driver is open (`driver` is a user).
        let status = unsafe { (api.set_level)(3) };
        Call::new("cuFileSetStatsLevel").check(status)?;
        // SAFETY: no arguments; the driver is open.
        let status = unsafe { (api.reset)() };
        Call::new("cuFileStatsReset").check(status)?;
        // SAFETY: no arguments; the driver is open.
        let status = unsafe { (api.start)() };
        Call::new("cuFileStatsStart").check(status)
    })?;
    read(driver)
}

/// A stale segment holding this process's statistics key (see the module doc), described
/// with the command that removes it; None when there is none. A live libcufile keeps its own
/// segment attached, so only a segment nobody has attached counts as stale.
pub fn segment_in_the_way() -> Option<String> {
    let pid = i64::from(std::process::id());
    let seg = sys::sysv_segments()
        .ok()?
        .into_iter()
        .find(|s| s.key == pid && s.attached == 0)?;
    Some(format!(
        "a System V shared-memory segment keyed {pid} (this process's id; libcufile keys its \
         statistics segment by process id) was left by an earlier process, so libcufile could \
         not make its own; `ipcrm -m {}` removes it (`gdswap check` lists others left behind)",
        seg.id
    ))
}

/// The segments that look like statistics libcufile left behind (see the module doc): keyed
/// by the process that created them, attached by nobody, that process no longer running.
/// Each takes cuFile's statistics from a later process that is given that pid. A creator
/// shown as 0 (outside this reader's PID namespace) proves nothing, and key 0 is
/// IPC_PRIVATE: neither is listed; nor is a segment whose creator's pid is in use (its
/// owner, or already a new process: not told apart here).
pub fn stale_segments() -> std::io::Result<Vec<sys::SysvSegment>> {
    Ok(sys::sysv_segments()?
        .into_iter()
        .filter(|s| {
            s.key > 0
                && s.creator != 0
                && s.key == i64::from(s.creator)
                && s.attached == 0
                && !std::path::Path::new(&format!("/proc/{}", s.creator)).exists()
        })
        .collect())
}

// No `stop`: collection stays on while the driver is open. cuFileStatsStop detaches the
// statistics' shared memory, and libcufile 1.15.1's pool threads (cufile.json
// max_io_threads) faulted writing it afterwards (a core dump, session 9); closing the driver
// ends collection with everything else.

/// The counters so far (the driver must still be open, level 3 on).
pub fn read(driver: &Driver) -> Result<PathCounts> {
    let large = layout(driver).map_err(Error::CuFileSetup)?;
    let api = driver.lib().stats.expect("checked by layout");
    let mut buf = Box::<Largest>::default();
    // SAFETY: `buf` is a zeroed struct of the largest known level-3 layout (checked against
    // the real 1.15-1.20 headers by tests/cufile_layout.rs), so no version's struct overruns
    // it; alive for the call; the driver is open.
    let status = unsafe { (api.get_l3)(&mut *buf as *mut Largest as *mut std::ffi::c_void) };
    Call::new("cuFileGetStatsL3").check(status)?;
    let mut counts = PathCounts::default();
    if large {
        let n = (buf.num_gpus as usize).min(buf.per_gpu_stats.len());
        buf.per_gpu_stats[..n].iter().for_each(|g| counts.add(g));
    } else {
        // SAFETY: the smaller 1.15 layout lies at the start of the buffer (size and alignment
        // asserted above); every field is an integer or an integer array, so any bytes are a
        // valid value.
        let s: CUfileStatsLevel3_v1_15 =
            unsafe { std::ptr::read(&*buf as *const Largest as *const CUfileStatsLevel3_v1_15) };
        let n = (s.num_gpus as usize).min(s.per_gpu_stats.len());
        s.per_gpu_stats[..n].iter().for_each(|g| counts.add(g));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_layout_starts_at_1_19() {
        let v = |major, minor| CuFileVersion { major, minor };
        assert!(!large_layout(v(1, 15)));
        assert!(!large_layout(v(1, 18)));
        assert!(large_layout(v(1, 19)));
        assert!(large_layout(v(1, 20)));
        assert!(large_layout(v(2, 0)));
    }
}
