//! The CUDA driver functions gdswap calls, as function pointers whose result is the raw
//! `u32` code.
//!
//! cudarc's bindings declare every function as returning `CUresult`, a Rust enum: a driver
//! that returns a code the enum does not list (a newer driver's error, a vendor's fake) would
//! be undefined behaviour as soon as the value exists. So gdswap resolves each function itself,
//! from the libcuda cudarc loaded (`sys::culib()`), with a `u32` result, once
//! [`super::driver::load`] has checked that the library is there and exports all of them;
//! [`super::check`] and [`super::describe`] turn any code, listed or not, into a message.
//! cudarc still provides the loading and the C types (`CUdevice`, `CUstream`, ...).

use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void};
use std::sync::OnceLock;

use cudarc::driver::sys::{CUcontext, CUdevice, CUdeviceptr, CUevent, CUstream};

/// A driver result code, as the C API returns it.
pub type Code = u32;
/// `CUDA_SUCCESS` (cuda.h): the call succeeded.
pub const CUDA_SUCCESS: Code = 0;
/// `CUDA_ERROR_NOT_READY` (cuda.h): an event or stream query found work still pending (not a
/// failure).
pub const CUDA_ERROR_NOT_READY: Code = 600;
/// `CUDA_ERROR_INVALID_VALUE` (cuda.h): an argument was out of range.
pub const CUDA_ERROR_INVALID_VALUE: Code = 1;

/// `CUpointer_attribute` values (cuda.h) gdswap asks `cuPointerGetAttribute` for.
/// `CU_POINTER_ATTRIBUTE_MEMORY_TYPE`: host, device, array or unified (`CUmemorytype`).
pub const CU_POINTER_ATTRIBUTE_MEMORY_TYPE: u32 = 2;
/// `CU_POINTER_ATTRIBUTE_IS_MANAGED`: whether the pointer is managed (unified) memory.
pub const CU_POINTER_ATTRIBUTE_IS_MANAGED: u32 = 8;
/// `CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL`: the ordinal of the device the memory belongs to.
pub const CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: u32 = 9;
/// `CU_POINTER_ATTRIBUTE_RANGE_START_ADDR`: the start of the allocation holding the pointer.
pub const CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: u32 = 11;
/// `CU_POINTER_ATTRIBUTE_RANGE_SIZE`: the size in bytes of the allocation holding the pointer.
pub const CU_POINTER_ATTRIBUTE_RANGE_SIZE: u32 = 12;
/// `CUmemorytype` (cuda.h): what `CU_POINTER_ATTRIBUTE_MEMORY_TYPE` returns for device memory.
pub const CU_MEMORYTYPE_DEVICE: u32 = 2;

/// The legacy default stream of the current context, as a stream handle (`CU_STREAM_LEGACY`
/// in cuda.h): work queued on it waits for all work queued before on the context's blocking
/// streams, and the other way round.
pub const CU_STREAM_LEGACY: usize = 0x1;

macro_rules! driver_api {
    (
        required { $($name:ident: fn($($arg:ty),*);)* }
        optional { $($oname:ident: fn($($oarg:ty),*);)* }
    ) => {
        /// Every driver function gdswap calls, resolved from the loaded libcuda.
        #[allow(non_snake_case)]
        pub struct Api {
            $(#[doc = concat!("`", stringify!($name), "`, resolved from libcuda.")]
            pub $name: unsafe extern "C" fn($($arg),*) -> Code,)*
            $(#[doc = concat!("`", stringify!($oname), "`, or `None` where this libcuda lacks it.")]
            pub $oname: Option<unsafe extern "C" fn($($oarg),*) -> Code>,)*
        }

        /// The functions every run needs: a libcuda without one of them is unusable.
        pub const REQUIRED: &[&str] = &[$(stringify!($name)),*];
        /// Functions only `gdswap check`'s GPU list calls, when the library has them.
        pub const OPTIONAL: &[&str] = &[$(stringify!($oname)),*];

        impl Api {
            /// Resolves every function; the names of the required ones missing.
            ///
            /// # Safety
            /// `lib` must be a CUDA driver library: each symbol is taken to have the C
            /// signature declared above (the CUDA driver API's), with `CUresult` as `u32`.
            #[allow(non_snake_case)]
            unsafe fn resolve(lib: &libloading::Library) -> Result<Api, Vec<&'static str>> {
                let mut missing = Vec::new();
                $(
                    // SAFETY: per this function's contract.
                    let $name = unsafe {
                        lib.get::<unsafe extern "C" fn($($arg),*) -> Code>(
                            concat!(stringify!($name), "\0").as_bytes(),
                        )
                    }
                    .map(|s| *s)
                    .map_err(|_| missing.push(stringify!($name)))
                    .ok();
                )*
                $(
                    // SAFETY: per this function's contract.
                    let $oname = unsafe {
                        lib.get::<unsafe extern "C" fn($($oarg),*) -> Code>(
                            concat!(stringify!($oname), "\0").as_bytes(),
                        )
                    }
                    .map(|s| *s)
                    .ok();
                )*
                if !missing.is_empty() {
                    return Err(missing);
                }
                Ok(Api {
                    $($name: $name.expect("checked above"),)*
                    $($oname,)*
                })
            }
        }
    };
}

driver_api! {
    required {
        cuInit: fn(c_uint);
        cuDriverGetVersion: fn(*mut c_int);
        cuDeviceGetCount: fn(*mut c_int);
        cuDeviceGet: fn(*mut CUdevice, c_int);
        cuDeviceGetName: fn(*mut c_char, c_int, CUdevice);
        cuDevicePrimaryCtxRetain: fn(*mut CUcontext, CUdevice);
        cuDevicePrimaryCtxRelease_v2: fn(CUdevice);
        cuCtxSetCurrent: fn(CUcontext);
        cuCtxGetCurrent: fn(*mut CUcontext);
        cuCtxPushCurrent_v2: fn(CUcontext);
        cuCtxPopCurrent_v2: fn(*mut CUcontext);
        cuGetErrorString: fn(Code, *mut *const c_char);
        cuGetErrorName: fn(Code, *mut *const c_char);
        cuMemAlloc_v2: fn(*mut CUdeviceptr, usize);
        cuMemFree_v2: fn(CUdeviceptr);
        cuMemHostRegister_v2: fn(*mut c_void, usize, c_uint);
        cuMemHostUnregister: fn(*mut c_void);
        cuMemcpyHtoDAsync_v2: fn(CUdeviceptr, *const c_void, usize, CUstream);
        cuMemcpyDtoHAsync_v2: fn(*mut c_void, CUdeviceptr, usize, CUstream);
        cuMemcpyDtoDAsync_v2: fn(CUdeviceptr, CUdeviceptr, usize, CUstream);
        cuMemsetD8Async: fn(CUdeviceptr, c_uchar, usize, CUstream);
        cuStreamCreate: fn(*mut CUstream, c_uint);
        cuStreamDestroy_v2: fn(CUstream);
        cuStreamWaitEvent: fn(CUstream, CUevent, c_uint);
        cuEventCreate: fn(*mut CUevent, c_uint);
        cuEventDestroy_v2: fn(CUevent);
        cuEventRecord: fn(CUevent, CUstream);
        cuEventQuery: fn(CUevent);
        cuEventSynchronize: fn(CUevent);
        cuEventElapsedTime: fn(*mut f32, CUevent, CUevent);
        cuPointerGetAttribute: fn(*mut c_void, c_uint, CUdeviceptr);
    }
    optional {
        cuDeviceTotalMem_v2: fn(*mut usize, CUdevice);
        cuDeviceGetPCIBusId: fn(*mut c_char, c_int, CUdevice);
    }
}

static API: OnceLock<Api> = OnceLock::new();

/// Resolves the table from the library cudarc loaded; the missing required names otherwise.
///
/// # Safety
/// A libcuda must be present (`sys::is_culib_present()`), so that `sys::culib()` loads it
/// instead of panicking, and it must be a CUDA driver library (see [`Api::resolve`]).
pub(super) unsafe fn init() -> Result<&'static Api, Vec<&'static str>> {
    if let Some(api) = API.get() {
        return Ok(api);
    }
    // SAFETY: per this function's contract.
    let api = unsafe { Api::resolve(cudarc::driver::sys::culib()) }?;
    Ok(API.get_or_init(|| api))
}

/// The table. Every caller runs after [`super::driver::load`] succeeded (each path to a
/// driver call opens a [`super::device::Device`] or loads the driver first), which resolved it.
pub fn api() -> &'static Api {
    API.get()
        .expect("internal error: a CUDA driver call before the driver was loaded")
}
