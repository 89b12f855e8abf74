//! `gdswap check`: a node report in the spirit of `gdscheck -p`, for lab qualification.
//!
//! Why: a GDS benchmark result means little until one knows which libraries were there, what
//! the data path is mounted as, whether O_DIRECT works on it and which device and NUMA node it
//! sits on. This module collects those facts as values ([`NodeReport`], serialisable as JSON with
//! the schema tag [`SCHEMA`]) and ends with a verdict per backend; the CLI prints them and picks
//! the exit status. Nothing here needs CUDA: the GPU list asks the driver (through
//! [`crate::cuda`], which never panics) only when libcuda loads, and where a row needs the GPU
//! (GPU list, cuFile driver properties), it says why it was not examined. The cuFile driver is opened only in a child
//! process with a time limit ([`driver_probe`]), and by default only when libcuda is there:
//! without it the open fails (cuFile 1.14) or can hang (1.20), and it prints to stdout.
//!
//! `rows.rs`: the rows, as values; `collect.rs`: examining the node into them; `verdict.rs`: the
//! verdict per backend drawn from them; `path.rs`: the data path's rows; `udev.rs`: udev's
//! entry for its block device (why cuFile refuses files with 5027); `human.rs`: the text.

/// The cuFile driver probe lives with cuFile (`cufile::probe`); `check` runs it.
pub use crate::cufile::probe as driver_probe;
mod collect;
pub mod human;
pub mod path;
mod rows;
pub mod udev;
mod verdict;

pub use collect::collect;
pub use rows::{
    CuFileJson, CuFileRow, DriverRow, GpuRow, GpusRow, GroupRow, LibcudaRow, MemlockRow, OpcodeRow,
    StatsSegmentsRow, Tried, UringRow,
};
pub use verdict::Verdict;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::types::BackendId;

/// The JSON schema tag of a check report.
pub const SCHEMA: &str = "gdswap.check.v1";

/// Every backend a verdict is given for, in order.
pub const BACKENDS: [BackendId; 4] = BackendId::ALL;

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The data path (file or directory) the rows about filesystems are for.
    pub path: PathBuf,
    /// A libcufile to examine instead of the default search (else `GDSWAP_CUFILE_PATH`).
    pub cufile: Option<PathBuf>,
    /// How to open the cuFile driver; `None`: never (the row says so).
    pub driver_probe: Option<DriverProbeOptions>,
}

/// Opening the cuFile driver in a child process.
#[derive(Debug, Clone)]
pub struct DriverProbeOptions {
    /// The gdswap binary (it has the hidden `cufile-probe` subcommand).
    pub exe: PathBuf,
    /// Open it even without libcuda (to see how the library fails).
    pub force: bool,
    /// The child is killed after this long.
    pub timeout: Duration,
}

/// Everything `gdswap check` found about this node, row by row, and the verdicts drawn.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The gdswap crate version that checked.
    pub gdswap_version: String,
    /// The git commit gdswap was built from.
    pub git_commit: String,
    /// The node's hostname.
    pub hostname: String,
    /// The kernel release.
    pub kernel: String,
    /// The CUDA driver library.
    pub libcuda: LibcudaRow,
    /// The cuFile library.
    pub libcufile: CuFileRow,
    /// The CUDA devices.
    pub gpus: GpusRow,
    /// The cuFile driver, opened in child processes.
    pub cufile_driver: DriverRow,
    /// The cufile.json cuFile would read.
    pub cufile_json: CuFileJson,
    /// cuFile statistics segments left behind by processes that ended with cuFile open.
    pub cufile_stats_segments: StatsSegmentsRow,
    /// The data path: filesystem, O_DIRECT, block device.
    pub path: path::PathReport,
    /// io_uring support.
    pub io_uring: UringRow,
    /// The memlock limit.
    pub memlock: MemlockRow,
    /// One verdict per backend of [`BACKENDS`], in that order.
    pub verdicts: Vec<Verdict>,
    /// NUMA nodes and PCIe links of the GPUs and the data path's drive, from sysfs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::topology::Placement>,
}

impl NodeReport {
    /// The verdict of `backend`, if it is one of [`BACKENDS`].
    pub fn verdict(&self, backend: BackendId) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.backend == backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_on_a_scratch_directory() {
        let dir = crate::testutil::scratch_dir();
        let r = collect(&CheckOptions {
            path: dir.path().to_path_buf(),
            cufile: Some(dir.path().join("no-libcufile.so")),
            driver_probe: None,
        });
        assert!(!r.cufile_driver.examined);
        assert_eq!(r.schema, SCHEMA);
        assert!(!r.libcufile.found);
        assert_eq!(r.libcufile.tried.len(), 1);
        assert!(
            r.libcufile.tried[0].why.contains("No such file"),
            "{:?}",
            r.libcufile
        );
        let names: Vec<_> = r.verdicts.iter().map(|v| v.backend).collect();
        assert_eq!(names, BACKENDS);
        let gds = r.verdict(BackendId::Gds).unwrap();
        assert!(!gds.available);
        assert!(gds.gds_path.is_some());
        assert!(r.verdict(BackendId::Posix).unwrap().available == r.path.o_direct.works);
        if !r.libcuda.found {
            assert_eq!(gds.gds_path, Some(crate::types::GdsPath::None));
            assert_eq!(gds.gds_path_reason.as_deref(), Some("no CUDA driver"));
            assert!(
                gds.reason.to_string().contains("libcuda.so.1 not found"),
                "{}",
                gds.reason
            );
        }
    }
}
