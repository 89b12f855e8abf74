//! cuFile's statistics (1.15+): the per-I/O proof of which path the bytes took.
//!
//! Level 3 has, per GPU, the number of reads and writes that went through nvidia-fs, PCI
//! P2PDMA or POSIX (compat mode). The `gds` backend turns collection on after opening the driver
//! and reads the counters when its workers are done, before the driver closes. The structs'
//! layouts changed between 1.15 and 1.20 (level 1 grew, shifting levels 2 and 3): the version
//! from `cuFileGetVersion` picks the type; a library that cannot say its version, or is older
//! than 1.15, gets no statistics read.

use gdswap_ffi::{CUfilePerGpuStats_t, CUfileStatsLevel3_v1_15, CUfileStatsLevel3_v1_20};

use super::driver::Driver;
use super::loader::CuFileVersion;
use super::result::Call;
use crate::error::{Error, Result};

/// I/Os per path, reads and writes together, over all GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    pub posix: u64,
    pub nvfs: u64,
    pub p2p: u64,
}

impl PathCounts {
    pub fn total(&self) -> u64 {
        self.posix + self.nvfs + self.p2p
    }

    fn add(&mut self, g: &CUfilePerGpuStats_t) {
        self.posix += g.n_posix_reads + g.n_posix_writes;
        self.nvfs += g.n_nvfs_reads + g.n_nvfs_writes;
        self.p2p += g.n_p2p_reads + g.n_p2p_writes;
    }
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
    let v1_20 = CuFileVersion {
        major: 1,
        minor: 20,
    };
    if v < v1_15 {
        return Err(format!(
            "cuFile {v} has statistics symbols but predates 1.15"
        ));
    }
    Ok(v >= v1_20)
}

/// Turns level-3 collection on (the driver must be open).
pub fn start(driver: &Driver) -> Result<()> {
    layout(driver).map_err(Error::Resources)?;
    let api = driver.lib().stats.expect("checked by layout");
    // SAFETY: plain integer argument; the driver is open (`driver` is a user).
    let status = unsafe { (api.set_level)(3) };
    Call::new("cuFileSetStatsLevel").check(status)?;
    // SAFETY: no arguments; the driver is open.
    let status = unsafe { (api.start)() };
    Call::new("cuFileStatsStart").check(status)
}

/// The counters so far (the driver must still be open).
pub fn read(driver: &Driver) -> Result<PathCounts> {
    let v1_20 = layout(driver).map_err(Error::Resources)?;
    let api = driver.lib().stats.expect("checked by layout");
    let mut counts = PathCounts::default();
    let get = |p: *mut std::ffi::c_void| {
        // SAFETY: `p` points to a zeroed level-3 struct of the layout this library's version
        // uses (checked against the real 1.15 and 1.20 headers by tests/cufile_layout.rs),
        // alive for the call; the driver is open.
        let status = unsafe { (api.get_l3)(p) };
        Call::new("cuFileGetStatsL3").check(status)
    };
    if v1_20 {
        let mut s = Box::<CUfileStatsLevel3_v1_20>::default();
        get(&mut *s as *mut _ as *mut std::ffi::c_void)?;
        let n = (s.num_gpus as usize).min(s.per_gpu_stats.len());
        s.per_gpu_stats[..n].iter().for_each(|g| counts.add(g));
    } else {
        let mut s = Box::<CUfileStatsLevel3_v1_15>::default();
        get(&mut *s as *mut _ as *mut std::ffi::c_void)?;
        let n = (s.num_gpus as usize).min(s.per_gpu_stats.len());
        s.per_gpu_stats[..n].iter().for_each(|g| counts.add(g));
    }
    Ok(counts)
}
