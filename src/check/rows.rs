//! The rows of a node report: what each examined, as values (serialised as the check's JSON).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::driver_probe;

/// One failed attempt to load a library.
#[derive(Debug, Clone, Serialize)]
pub struct Tried {
    pub name: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LibcudaRow {
    pub found: bool,
    pub path: Option<PathBuf>,
    /// The newest CUDA version the driver supports (`12.4`), from `cuDriverGetVersion`.
    pub driver_cuda_version: Option<String>,
    pub tried: Vec<Tried>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CuFileRow {
    pub found: bool,
    pub path: Option<PathBuf>,
    /// From `cuFileGetVersion` (`1.14`), when the library has it.
    pub version: Option<String>,
    /// Optional API groups: present or not, and since which version.
    pub groups: Vec<GroupRow>,
    pub tried: Vec<Tried>,
    /// The loader's whole message when nothing loaded.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    pub name: &'static str,
    pub present: bool,
    pub since: &'static str,
    pub missing: Vec<&'static str>,
}

/// The CUDA devices the driver sees, or why they were not examined.
#[derive(Debug, Clone, Serialize)]
pub struct GpusRow {
    pub examined: bool,
    /// Why not examined (then `devices` is empty); `null` when examined.
    pub reason: Option<String>,
    pub devices: Vec<GpuRow>,
}

/// One CUDA device. A field the driver or sysfs could not give is `null`, and `unavailable`
/// says why, by field name.
#[derive(Debug, Clone, Serialize)]
pub struct GpuRow {
    pub ordinal: usize,
    pub name: Option<String>,
    pub total_memory_bytes: Option<u64>,
    /// As the driver writes it (`cuDeviceGetPCIBusId`), e.g. `0000:3B:00.0`.
    pub pci_bus_id: Option<String>,
    /// From `/sys/bus/pci/devices/<bus id>/numa_node`; -1: no affinity reported.
    pub numa_node: Option<i64>,
    pub unavailable: BTreeMap<&'static str, String>,
}

/// The cuFile driver, opened in child processes: plainly (properties), then strictly (compat
/// mode disallowed, the checked file registered).
#[derive(Debug, Clone, Serialize)]
pub struct DriverRow {
    pub examined: bool,
    /// Why it was not examined (it may name settings).
    pub reason: Option<crate::error::Message>,
    pub plain: Option<driver_probe::ChildResult>,
    pub strict: Option<driver_probe::ChildResult>,
}

/// The cufile.json cuFile would read.
#[derive(Debug, Clone, Serialize)]
pub struct CuFileJson {
    pub path: PathBuf,
    /// Named by `CUFILE_ENV_PATH_JSON` (else the default `/etc/cufile.json`).
    pub from_env: bool,
    pub exists: bool,
    /// `properties.allow_compat_mode` when the file sets it.
    pub allow_compat_mode: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UringRow {
    pub works: bool,
    /// `defer-taskrun`, `coop-taskrun` or `default`: the cheapest mode the kernel accepted.
    pub mode: Option<&'static str>,
    /// Why io_uring cannot be used (it may name settings).
    pub error: Option<crate::error::Message>,
    /// The opcodes gdswap uses or could use, and whether the kernel supports each.
    pub opcodes: Vec<OpcodeRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpcodeRow {
    pub name: &'static str,
    pub supported: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemlockRow {
    /// RLIMIT_MEMLOCK (soft) in bytes; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// CAP_IPC_LOCK in the effective set: the limit does not apply.
    pub cap_ipc_lock: bool,
}
