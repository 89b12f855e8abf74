//! gdswap moves tensors between NVMe files and GPU or host memory, and measures how well each
//! way of doing it works: bandwidth, latency percentiles and CPU cost, through one harness
//! that drives every backend the same way so comparisons are fair.
//!
//! Layers, lower never importing higher:
//! - `cli` (the `cli` feature, on by default): parse, run, print, exit (the only place that
//!   prints);
//! - [`harness`], [`stats`], [`report`]: threads and barriers, timing, pure figures and exporters;
//! - [`backend`]: the [`backend::Backend`] trait and one module per backend;
//! - [`swap`]: the tensor swap store (named tensors, tickets, crash-safe manifest);
//! - [`check`]: the node report of `gdswap check` (libraries, data path, verdicts);
//! - [`cufile`]: NVIDIA cuFile (GPUDirect Storage) loaded at run time, its results decoded;
//! - [`io`], [`datafiles`], [`pattern`], [`plan`]: buffers, files, io_uring, the verifiable
//!   data pattern and how a run is cut into requests;
//! - the core, below everything: [`types`] (which backend, the GDS path, a failed cuFile
//!   call), [`error`], [`options`], [`size`], [`stats`], [`request`].
//!
//! See `docs/architecture.md` for the data flow and the rules.

// Every public item is documented: clippy's `-D warnings` and CI's `cargo doc` step (with
// `-D missing_docs`) fail on one that is not.
#![warn(missing_docs)]

pub mod backend;
pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod compare;
pub mod cuda;
pub mod cufile;
pub mod datafiles;
pub mod env;
pub mod error;
pub mod harness;
pub mod io;
pub mod numa;
pub mod optim_sim;
pub mod options;
pub mod pattern;
pub mod peer;
pub mod plan;
pub mod qualify;
pub mod rank_merge;
pub mod ranks;
pub mod rebuild;
pub mod report;
pub mod request;
pub mod size;
pub mod stats;
pub mod swap;
pub mod sweep;
pub mod topology;
pub mod tuning;
pub mod types;

pub use error::{Error, Result};

#[cfg(test)]
pub(crate) mod testutil {
    /// A temporary directory on the build's filesystem (not /tmp, which may be a tmpfs
    /// without O_DIRECT), removed when dropped.
    pub fn scratch_dir() -> tempfile::TempDir {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("unit-tmp");
        std::fs::create_dir_all(&base).expect("create target/unit-tmp");
        tempfile::tempdir_in(base).expect("create a scratch directory")
    }

    /// Requests moving `len` bytes between file offset 0 and buffer offset 0, `bs` at a time
    /// (the last one shorter where `bs` does not divide `len`), last first: an engine must take
    /// them in any order.
    pub fn requests(len: usize, bs: usize) -> Vec<crate::request::Request> {
        let mut v: Vec<crate::request::Request> = (0..len.div_ceil(bs))
            .map(|i| crate::request::Request {
                file_offset: (i * bs) as u64,
                buf_offset: i * bs,
                len: bs.min(len - i * bs),
                tail: false,
            })
            .collect();
        v.reverse();
        v
    }
}
