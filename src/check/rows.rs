//! The rows of a node report: what each examined, as values (serialised as the check's JSON).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::driver_probe;

/// One failed attempt to load a library.
#[derive(Debug, Clone, Serialize)]
pub struct Tried {
    /// The name or path tried.
    pub name: String,
    /// Why it did not load (`dlopen`'s error, or missing symbols).
    pub why: String,
}

/// The CUDA driver library: whether libcuda loaded, from where, and what it supports.
#[derive(Debug, Clone, Serialize)]
pub struct LibcudaRow {
    /// Whether a libcuda loaded.
    pub found: bool,
    /// The file the dynamic linker mapped, when it could be told.
    pub path: Option<PathBuf>,
    /// The newest CUDA version the driver supports (`12.4`), from `cuDriverGetVersion`.
    pub driver_cuda_version: Option<String>,
    /// The names tried that failed, in order.
    pub tried: Vec<Tried>,
}

/// The cuFile library: whether libcufile loaded, from where, its version and API groups.
#[derive(Debug, Clone, Serialize)]
pub struct CuFileRow {
    /// Whether a libcufile loaded.
    pub found: bool,
    /// The file the dynamic linker mapped (or the candidate's name when it cannot be told).
    pub path: Option<PathBuf>,
    /// From `cuFileGetVersion` (`1.14`), when the library has it.
    pub version: Option<String>,
    /// Optional API groups: present or not, and since which version.
    pub groups: Vec<GroupRow>,
    /// The candidates tried that failed, in order.
    pub tried: Vec<Tried>,
    /// The loader's whole message when nothing loaded.
    pub error: Option<String>,
}

/// One optional cuFile API group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    /// `stream`, `batch`, `version`, `parameters`, `statistics` or `use_count`.
    pub name: &'static str,
    /// Whether every symbol of the group resolved.
    pub present: bool,
    /// The cuFile version that introduced the group, e.g. `1.7`.
    pub since: &'static str,
    /// The group's symbols that did not resolve.
    pub missing: Vec<&'static str>,
}

/// The CUDA devices the driver sees, or why they were not examined.
#[derive(Debug, Clone, Serialize)]
pub struct GpusRow {
    /// Whether the driver was asked (it is only when libcuda loads).
    pub examined: bool,
    /// Why not examined (then `devices` is empty); `null` when examined.
    pub reason: Option<String>,
    /// Each device, by ordinal.
    pub devices: Vec<GpuRow>,
}

/// One CUDA device. A field the driver or sysfs could not give is `null`, and `unavailable`
/// says why, by field name.
#[derive(Debug, Clone, Serialize)]
pub struct GpuRow {
    /// The device's CUDA ordinal.
    pub ordinal: usize,
    /// `cuDeviceGetName`, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: Option<String>,
    /// `cuDeviceTotalMem`, in bytes.
    pub total_memory_bytes: Option<u64>,
    /// As the driver writes it (`cuDeviceGetPCIBusId`), e.g. `0000:3B:00.0`.
    pub pci_bus_id: Option<String>,
    /// From `/sys/bus/pci/devices/<bus id>/numa_node`; -1: no affinity reported.
    pub numa_node: Option<i64>,
    /// Why a field is `null`, keyed by the field's name.
    pub unavailable: BTreeMap<&'static str, String>,
}

/// The cuFile driver, opened in child processes: plainly (properties), then strictly (compat
/// mode disallowed, the checked file registered).
#[derive(Debug, Clone, Serialize)]
pub struct DriverRow {
    /// Whether the driver was opened at all.
    pub examined: bool,
    /// Why it was not examined (it may name settings).
    pub reason: Option<crate::error::Message>,
    /// The plain open: the driver properties, or how the child failed.
    pub plain: Option<driver_probe::ChildResult>,
    /// The strict open (compat mode disallowed, the checked file registered).
    pub strict: Option<driver_probe::ChildResult>,
}

/// The cufile.json cuFile would read.
#[derive(Debug, Clone, Serialize)]
pub struct CuFileJson {
    /// The file's path.
    pub path: PathBuf,
    /// Named by `CUFILE_ENV_PATH_JSON` (else the default `/etc/cufile.json`).
    pub from_env: bool,
    /// Whether the file exists.
    pub exists: bool,
    /// `properties.allow_compat_mode` when the file sets it.
    pub allow_compat_mode: Option<bool>,
}

/// io_uring: whether a ring can be made here, in which mode, and the opcodes it supports.
#[derive(Debug, Clone, Serialize)]
pub struct UringRow {
    /// Whether a ring could be made.
    pub works: bool,
    /// `defer-taskrun`, `coop-taskrun` or `default`: the cheapest mode the kernel accepted.
    pub mode: Option<&'static str>,
    /// Why io_uring cannot be used (it may name settings).
    pub error: Option<crate::error::Message>,
    /// The opcodes gdswap uses or could use, and whether the kernel supports each.
    pub opcodes: Vec<OpcodeRow>,
}

/// One io_uring opcode and whether the kernel supports it.
#[derive(Debug, Clone, Serialize)]
pub struct OpcodeRow {
    /// The opcode's name, e.g. `READ_FIXED`.
    pub name: &'static str,
    /// Whether the kernel's probe lists it as supported.
    pub supported: bool,
}

/// How much memory this process may pin (buffers registered with io_uring, pinned chunks).
#[derive(Debug, Clone, Serialize)]
pub struct MemlockRow {
    /// RLIMIT_MEMLOCK (soft) in bytes; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// CAP_IPC_LOCK in the effective set: the limit does not apply.
    pub cap_ipc_lock: bool,
}

/// System V segments that look like cuFile statistics left behind by processes that ended
/// with cuFile open (`cufile::stats::stale_segments`): libcufile keys its statistics segment
/// by process id and cannot make its own where one is left under its pid, so a later process
/// given that pid runs without statistics (the gds verdict then says so).
#[derive(Debug, Clone, Serialize)]
pub struct StatsSegmentsRow {
    /// The segments: keyed by the pid of the process that made them, attached by nobody.
    pub stale: Vec<crate::io::sys::SysvSegment>,
    /// Why the segments could not be listed (`/proc/sysvipc/shm` unreadable).
    pub error: Option<String>,
}

impl StatsSegmentsRow {
    /// The row for this node's IPC namespace.
    pub fn collect() -> StatsSegmentsRow {
        match crate::cufile::stats::stale_segments() {
            Ok(stale) => StatsSegmentsRow { stale, error: None },
            Err(e) => StatsSegmentsRow {
                stale: Vec::new(),
                error: Some(e.to_string()),
            },
        }
    }
}
