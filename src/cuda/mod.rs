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
//! - [`driver`]: finding libcuda, `cuInit`, device count (availability, with a reason);
//! - [`device`]: a device's primary context, made current on the calling thread, and the
//!   device list of `gdswap check` (optional driver functions looked up before each call);
//! - [`stream`]: streams and events (completion and timing);
//! - [`device_buffer`]: plain `cuMemAlloc` device memory and copies to and from it;
//! - [`pinned`]: page-locked host memory (anonymous huge-page mmap + `cuMemHostRegister`);
//! - [`staging`]: the bounce pipeline's stagers, which move chunks between pinned memory and
//!   the device while io_uring fills or drains them.
//!
//! Every driver result is checked and becomes an [`Error::Cuda`] that names the call and
//! what it was for. `unsafe` is confined to this module (and `io`); each block says why it
//! is sound.

pub mod device;
pub mod device_buffer;
pub mod driver;
pub mod pinned;
pub mod staging;
pub mod stream;

use cudarc::driver::sys;

use crate::error::{Error, Result};

/// The driver's name and description of a result code, e.g.
/// `CUDA_ERROR_OUT_OF_MEMORY (2): out of memory`.
pub fn describe(code: sys::CUresult) -> String {
    let mut text: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: cuGetErrorString writes a pointer to a static, NUL-terminated string (or leaves
    // ours NULL on an unknown code); libcuda is loaded (every caller got here through a
    // driver call that needed it).
    let rc = unsafe { sys::cuGetErrorString(code, &mut text) };
    let what = if rc == sys::CUresult::CUDA_SUCCESS && !text.is_null() {
        // SAFETY: non-NULL, points to a static C string owned by the driver.
        unsafe { std::ffi::CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    } else {
        "no description".to_string()
    };
    format!("{code:?} ({}): {what}", code as u32)
}

/// Turns a driver result into `Ok(())` or an error naming `op`.
pub fn check(code: sys::CUresult, op: impl FnOnce() -> String) -> Result<()> {
    if code == sys::CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(Error::Cuda {
            op: op(),
            message: describe(code),
        })
    }
}
