//! The core types every layer shares, importing nothing above the core: a failed cuFile call
//! ([`CuFileError`]). The other core modules are `size`, `stats`, `error`, `options`
//! (transfer direction, target, buffer and page modes, run options), `pattern` and `request`.
//!
//! Each type is re-exported where users of the library found it before
//! (`cufile::CuFileError`, ...).

pub mod cufile_error;

pub use cufile_error::{CuFileError, Failure};
