//! The core types every layer shares, importing nothing above the core: which backend
//! ([`BackendId`]), where its buffers live ([`MemoryKind`]) and a failed cuFile call
//! ([`CuFileError`]). The other core
//! modules are `size`, `stats`, `error`, `options` (transfer direction, target, buffer and
//! page modes, run options), `pattern` and `request`.
//!
//! Each type is re-exported where users of the library found it before (`backend::MemoryKind`,
//! `cufile::CuFileError`, ...).

pub mod backend_id;
pub mod cufile_error;

pub use backend_id::{BackendId, MemoryKind, UnknownBackend};
pub use cufile_error::{CuFileError, Failure};
