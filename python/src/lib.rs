//! `gdswap._gdswap`: the native half of the `gdswap` Python package (the other half, which
//! checks numpy arrays and torch tensors and keeps DeepSpeed's conventions, is `gdswap/*.py`).
//! Every blocking call releases the GIL; errors of the Rust library become `gdswap.Error`
//! carrying its message.

mod aio;
mod exit;
mod ffi;
mod gds;
mod store;

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

create_exception!(
    _gdswap,
    GdswapError,
    PyRuntimeError,
    "An error of gdswap's Rust library (I/O, store, backend); the message names the operation, path and offset."
);

create_exception!(
    _gdswap,
    GdsShutDown,
    GdswapError,
    "gds (the cuFile driver, gds_handle's and gds stores' use of it) was shut down at interpreter exit: the op was refused."
);

create_exception!(
    _gdswap,
    OpFailed,
    GdswapError,
    "An op failed after its file was opened (no space for a write): `aio_handle` raises it where DeepSpeed's refusals return -1."
);

pub(crate) fn to_py(e: gdswap::Error) -> PyErr {
    GdswapError::new_err(e.to_string())
}

/// Why io_uring cannot be used here, or None.
#[pyfunction]
fn io_uring_unavailable() -> Option<String> {
    gdswap::io::uring::unavailable_reason().map(|m| m.to_string())
}

#[pymodule]
fn _gdswap(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<GdswapError>())?;
    m.add("_OpFailed", m.py().get_type::<OpFailed>())?;
    m.add("_GdsShutDown", m.py().get_type::<GdsShutDown>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Whether this is a debug build (ci.sh builds one): benchmarks refuse to time it.
    m.add("_debug_build", cfg!(debug_assertions))?;
    m.add_class::<store::Store>()?;
    m.add_class::<store::PyTicket>()?;
    m.add_class::<aio::AioCore>()?;
    m.add_class::<aio::Locked>()?;
    m.add_class::<gds::GdsCore>()?;
    m.add_function(wrap_pyfunction!(io_uring_unavailable, m)?)?;
    m.add_function(wrap_pyfunction!(exit::shutdown_at_exit, m)?)?;
    Ok(())
}
