//! NVIDIA cuFile (GPUDirect Storage) for gdswap: finding and loading the library, and turning
//! its results into gdswap errors.
//!
//! Three layers, so that every `unsafe` call into C sits in one small place:
//! - `gdswap-ffi` (the `ffi/` crate): the raw C declarations, nothing else;
//! - [`loader`]: `dlopen` of libcufile at run time, required and optional symbols;
//! - the safe layer: [`result`] (the one decoder of cuFile's return conventions),
//!   [`driver`] (the driver opened once, closed when its last user drops it), [`handle`]
//!   (registered files, deregistered on drop), [`io`] (registered device buffers and the
//!   sync, stream and batch transfers of the `gds` backend), [`stats`] (1.15+ counters of
//!   POSIX vs direct I/O) and [`props`]
//!   (the driver properties decoded, and the best path they allow).
//!
//! `unsafe` in gdswap lives here, in `io/` and in `ffi/`; each block says why it is sound.

pub mod driver;
pub mod handle;
pub mod io;
pub mod loader;
pub mod path;
pub mod probe;
pub mod props;
pub mod result;
pub mod stats;

pub use driver::Driver;
pub use loader::{load, CuFileLib, CuFileVersion, LoadError};
pub use path::{GdsPath, GdsVerdict};
pub use props::DriverProperties;
pub use result::{CuFileError, Failure};
