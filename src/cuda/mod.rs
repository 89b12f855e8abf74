//! The CUDA layer: the few driver-API objects the GPU backends need, as safe RAII types over
//! `cudarc`'s raw driver bindings (`cudarc::driver::sys`).
//!
//! Why the raw bindings rather than cudarc's safe `CudaContext`: gdswap must call *exactly* a
//! known, small set of driver functions. That keeps the fake libcuda the tests build
//! (`tests/fakes/fake_cuda.c`) small and honest, and it avoids what the safe layer does on its
//! own (stream-ordered pool allocations when the device reports pools, write-combined pinned
//! memory, event tracking). cudarc is built with `dynamic-loading`: libcuda is opened at the
//! first driver call, so the binary starts and its host backends work on machines without
//! the NVIDIA driver. cudarc panics when libcuda is absent, so [`driver::load`] checks for it
//! first and every other entry point goes through it.
//!
//! One file per idea:
//! - [`api`]: the driver functions gdswap calls, resolved from the loaded libcuda with `u32`
//!   results (cudarc's `CUresult` enum cannot hold a code it does not list);
//! - [`driver`]: finding libcuda, `cuInit`, device count (availability, with a reason);
//! - [`device`]: a device's primary context, made current on the calling thread, and the
//!   device list of `gdswap check` (optional driver functions looked up before each call);
//! - [`stream`]: streams and events (completion and timing);
//! - [`device_buffer`]: plain `cuMemAlloc` device memory and copies to and from it;
//! - [`pinned`]: page-locked host memory (anonymous huge-page mmap + `cuMemHostRegister`);
//! - [`copy`]: timed asynchronous copies between pinned memory and the device, on one clock
//!   per device, and the io_uring transfer whose chunk copies the bounce backend's stagers
//!   (`backend::bounce::staging`, safe code) decide.
//!
//! Every driver result is checked and becomes an [`Error::Cuda`] that names the call and
//! what it was for. `unsafe` is confined to this module (and `io`); each block says why it
//! is sound.

pub mod api;
pub mod copy;
pub mod device;
pub mod device_buffer;
pub mod driver;
pub mod pinned;
pub mod stream;

use crate::error::{Error, Result};

/// The driver's name and description of a result code, e.g.
/// `CUDA_ERROR_OUT_OF_MEMORY (2): out of memory`; a code the driver does not know is named
/// by its number.
pub fn describe(code: api::Code) -> String {
    match code_names(code) {
        (Some(name), Some(what)) => format!("{name} ({code}): {what}"),
        (Some(name), None) => format!("{name} ({code})"),
        _ => format!("CUDA error {code} (a code this driver does not describe)"),
    }
}

/// The driver's name (`CUDA_ERROR_OUT_OF_MEMORY`) and description (`out of memory`) of a
/// result code, each when the driver gives one.
pub fn code_names(code: api::Code) -> (Option<String>, Option<String>) {
    let text = |f: unsafe extern "C" fn(api::Code, *mut *const std::ffi::c_char) -> api::Code| {
        let mut p: *const std::ffi::c_char = std::ptr::null();
        // SAFETY: cuGetErrorName/String write a pointer to a static, NUL-terminated string (or
        // fail on an unknown code and leave ours NULL); the table exists, since every caller
        // got a code from a driver call.
        let rc = unsafe { f(code, &mut p) };
        (rc == api::CUDA_SUCCESS && !p.is_null()).then(|| {
            // SAFETY: non-NULL, points to a static C string owned by the driver.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        })
    };
    let a = api::api();
    (text(a.cuGetErrorName), text(a.cuGetErrorString))
}

/// Turns a driver result into `Ok(())` or an error naming `op`.
pub fn check<M: Into<crate::error::Message>>(
    code: api::Code,
    op: impl FnOnce() -> M,
) -> Result<()> {
    if code == api::CUDA_SUCCESS {
        Ok(())
    } else {
        let (name, description) = code_names(code);
        Err(Error::Cuda {
            op: op().into(),
            code,
            name,
            description,
        })
    }
}
