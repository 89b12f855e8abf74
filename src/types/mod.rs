//! The core types every layer shares, importing nothing above the core: which backend
//! ([`BackendId`]), where its buffers live ([`MemoryKind`]), the path a `gds` run's bytes took
//! ([`GdsPath`], [`GdsVerdict`]) and a failed cuFile call ([`CuFileError`]). The other core
//! modules are `size`, `stats`, `error`, `options` (transfer direction, target, buffer and
//! page modes, run options), `pattern` and `request`.
//!
//! Each type is re-exported where users of the library found it before (`backend::MemoryKind`,
//! `report::GdsPath`, `cufile::CuFileError`, ...).

pub mod backend_id;
pub mod cufile_error;
pub mod gds_path;
pub mod numa;
pub mod ring_options;

pub use backend_id::{BackendId, MemoryKind, UnknownBackend};
pub use cufile_error::{CuFileError, Failure};
pub use gds_path::{GdsPath, GdsVerdict, QueueClamp};
