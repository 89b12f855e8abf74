//! Raw C ABI of NVIDIA's cuFile library (GPUDirect Storage), written by hand.
//!
//! Why by hand: gdswap loads libcufile at run time (`libloading`, in `gdswap::cufile::loader`)
//! so that the binary runs, and says why GDS is unavailable, on machines without CUDA. There is
//! no `cufile.h` at build time to run bindgen on, and bindgen output would freeze one version's
//! enums as closed Rust enums. So this crate holds only what the C header says, nothing else:
//!
//! - `#[repr(C)]` structs and unions with the header's exact layouts (size and every field's
//!   offset are asserted at compile time below for x86-64/aarch64 Linux, and checked against the
//!   real `cufile.h` by gdswap's test `tests/cufile_layout.rs`, which compiles a C probe);
//! - every C enum as an integer newtype with associated constants. A library of another version
//!   returns values this file does not list (the error range grew from 5039 to 5050 between CUDA
//!   12.9 and 13), and a closed Rust enum holding such a value would be undefined behaviour.
//!   [`CUfileOpError::name`] returns `None` for codes it does not know; its `Display` prints them
//!   by number;
//! - `unsafe extern "C" fn` pointer types (`PFN_<symbol>`) for every function gdswap resolves.
//!
//! No linking, no logic, no allocation (`no_std`). The facts these declarations follow are
//! collected in the project's `shared/cufile-abi.md` (checked against cuFile 1.14, 1.15, 1.20).
#![cfg_attr(not(test), no_std)]
#![allow(non_camel_case_types, non_snake_case)]

use core::ffi::{c_char, c_int, c_long, c_uint, c_void};
use core::fmt;

// ---------------------------------------------------------------------------------------------
// Scalar and opaque types
// ---------------------------------------------------------------------------------------------

/// `off_t` (64-bit on LP64 Linux, and with `_FILE_OFFSET_BITS=64`).
pub type off_t = i64;
/// `ssize_t`.
pub type ssize_t = isize;
/// `CUfileHandle_t`: an opaque handle returned by `cuFileHandleRegister`.
pub type CUfileHandle_t = *mut c_void;
/// `CUfileBatchHandle_t`: an opaque handle returned by `cuFileBatchIOSetUp`.
pub type CUfileBatchHandle_t = *mut c_void;
/// `CUstream` from `cuda.h`: an opaque pointer to the driver's stream object.
pub type CUstream = *mut c_void;

/// `struct timespec` (the batch API's timeout), LP64 Linux layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct timespec {
    pub tv_sec: c_long,
    pub tv_nsec: c_long,
}

/// `CUresult` from `cuda.h` (a C enum): the CUDA driver error behind
/// [`CUfileOpError::CUDA_DRIVER_ERROR`]. Kept as a number; gdswap's CUDA layer names it.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUresult(pub i32);

impl CUresult {
    pub const SUCCESS: CUresult = CUresult(0);
}

// ---------------------------------------------------------------------------------------------
// CUfileOpError and CUfileError_t
// ---------------------------------------------------------------------------------------------

/// `CUFILEOP_BASE_ERR`: every cuFile error code is this plus a small number.
pub const CUFILEOP_BASE_ERR: u32 = 5000;

/// `enum CUfileOpError`. Open: libraries of other versions return codes not listed here.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUfileOpError(pub u32);

/// Defines the constants and the name table of [`CUfileOpError`] from one list, so the two
/// cannot drift apart.
macro_rules! op_errors {
    ($( $(#[$m:meta])* $name:ident = $code:expr, $cname:literal, $text:literal; )*) => {
        impl CUfileOpError {
            $( $(#[$m])* pub const $name: CUfileOpError = CUfileOpError($code); )*

            /// Every code this file knows: (code, C name, the header's description).
            pub const ALL: &'static [(CUfileOpError, &'static str, &'static str)] =
                &[$( (CUfileOpError($code), $cname, $text), )*];
        }
    };
}

op_errors! {
    SUCCESS = 0, "CU_FILE_SUCCESS", "cufile success";
    /// nvidia-fs is not loaded and compat mode is not allowed.
    DRIVER_NOT_INITIALIZED = 5001, "CU_FILE_DRIVER_NOT_INITIALIZED", "nvidia-fs driver is not loaded (set allow_compat_mode to true in cufile.json to enable compat mode)";
    DRIVER_INVALID_PROPS = 5002, "CU_FILE_DRIVER_INVALID_PROPS", "invalid property";
    DRIVER_UNSUPPORTED_LIMIT = 5003, "CU_FILE_DRIVER_UNSUPPORTED_LIMIT", "property range error";
    DRIVER_VERSION_MISMATCH = 5004, "CU_FILE_DRIVER_VERSION_MISMATCH", "nvidia-fs driver version mismatch";
    DRIVER_VERSION_READ_ERROR = 5005, "CU_FILE_DRIVER_VERSION_READ_ERROR", "nvidia-fs driver version read error";
    DRIVER_CLOSING = 5006, "CU_FILE_DRIVER_CLOSING", "driver shutdown in progress";
    PLATFORM_NOT_SUPPORTED = 5007, "CU_FILE_PLATFORM_NOT_SUPPORTED", "GPUDirect Storage not supported on current platform";
    /// The file is not on a GPUDirect path and compat mode is off: with compat allowed, this
    /// file's I/O would go through compat mode (POSIX via a host bounce buffer).
    IO_NOT_SUPPORTED = 5008, "CU_FILE_IO_NOT_SUPPORTED", "GPUDirect Storage not supported on current file";
    DEVICE_NOT_SUPPORTED = 5009, "CU_FILE_DEVICE_NOT_SUPPORTED", "GPUDirect Storage not supported on current GPU";
    NVFS_DRIVER_ERROR = 5010, "CU_FILE_NVFS_DRIVER_ERROR", "nvidia-fs driver ioctl error";
    /// A CUDA driver call failed: `CUfileError_t::cu_err` holds its `CUresult`.
    CUDA_DRIVER_ERROR = 5011, "CU_FILE_CUDA_DRIVER_ERROR", "CUDA Driver API error";
    CUDA_POINTER_INVALID = 5012, "CU_FILE_CUDA_POINTER_INVALID", "invalid device pointer";
    CUDA_MEMORY_TYPE_INVALID = 5013, "CU_FILE_CUDA_MEMORY_TYPE_INVALID", "invalid pointer memory type";
    CUDA_POINTER_RANGE_ERROR = 5014, "CU_FILE_CUDA_POINTER_RANGE_ERROR", "pointer range exceeds allocated address range";
    CUDA_CONTEXT_MISMATCH = 5015, "CU_FILE_CUDA_CONTEXT_MISMATCH", "cuda context mismatch";
    INVALID_MAPPING_SIZE = 5016, "CU_FILE_INVALID_MAPPING_SIZE", "access beyond maximum pinned size";
    INVALID_MAPPING_RANGE = 5017, "CU_FILE_INVALID_MAPPING_RANGE", "access beyond mapped size";
    INVALID_FILE_TYPE = 5018, "CU_FILE_INVALID_FILE_TYPE", "unsupported file type";
    INVALID_FILE_OPEN_FLAG = 5019, "CU_FILE_INVALID_FILE_OPEN_FLAG", "unsupported file open flags";
    DIO_NOT_SET = 5020, "CU_FILE_DIO_NOT_SET", "fd direct IO not set";
    INVALID_VALUE = 5022, "CU_FILE_INVALID_VALUE", "invalid arguments";
    MEMORY_ALREADY_REGISTERED = 5023, "CU_FILE_MEMORY_ALREADY_REGISTERED", "device pointer already registered";
    MEMORY_NOT_REGISTERED = 5024, "CU_FILE_MEMORY_NOT_REGISTERED", "device pointer lookup failure";
    PERMISSION_DENIED = 5025, "CU_FILE_PERMISSION_DENIED", "driver or file access error";
    DRIVER_ALREADY_OPEN = 5026, "CU_FILE_DRIVER_ALREADY_OPEN", "driver is already open";
    HANDLE_NOT_REGISTERED = 5027, "CU_FILE_HANDLE_NOT_REGISTERED", "file descriptor is not registered";
    HANDLE_ALREADY_REGISTERED = 5028, "CU_FILE_HANDLE_ALREADY_REGISTERED", "file descriptor is already registered";
    DEVICE_NOT_FOUND = 5029, "CU_FILE_DEVICE_NOT_FOUND", "GPU device not found";
    INTERNAL_ERROR = 5030, "CU_FILE_INTERNAL_ERROR", "internal error";
    GETNEWFD_FAILED = 5031, "CU_FILE_GETNEWFD_FAILED", "failed to obtain new file descriptor";
    NVFS_SETUP_ERROR = 5033, "CU_FILE_NVFS_SETUP_ERROR", "NVFS driver initialization error";
    IO_DISABLED = 5034, "CU_FILE_IO_DISABLED", "GPUDirect Storage disabled by config on current file";
    BATCH_SUBMIT_FAILED = 5035, "CU_FILE_BATCH_SUBMIT_FAILED", "failed to submit batch operation";
    GPU_MEMORY_PINNING_FAILED = 5036, "CU_FILE_GPU_MEMORY_PINNING_FAILED", "failed to allocate pinned GPU Memory";
    BATCH_FULL = 5037, "CU_FILE_BATCH_FULL", "queue full for batch operation";
    ASYNC_NOT_SUPPORTED = 5038, "CU_FILE_ASYNC_NOT_SUPPORTED", "cuFile stream operation not supported";
    /// 1.15+ (CUDA 13). In 1.14 headers 5039 is the end-of-range marker `CU_FILE_IO_MAX_ERROR`.
    INTERNAL_BATCH_SETUP_ERROR = 5039, "CU_FILE_INTERNAL_BATCH_SETUP_ERROR", "batch setup internal error - retry later";
    INTERNAL_BATCH_SUBMIT_ERROR = 5040, "CU_FILE_INTERNAL_BATCH_SUBMIT_ERROR", "batch submit internal error - retry later";
    INTERNAL_BATCH_GETSTATUS_ERROR = 5041, "CU_FILE_INTERNAL_BATCH_GETSTATUS_ERROR", "batch get status internal error - retry later";
    INTERNAL_BATCH_CANCEL_ERROR = 5042, "CU_FILE_INTERNAL_BATCH_CANCEL_ERROR", "batch cancel internal error - retry later";
    NOMEM_ERROR = 5043, "CU_FILE_NOMEM_ERROR", "cufile no memory error - retry later";
    IO_ERROR = 5044, "CU_FILE_IO_ERROR", "cufile io error";
    INTERNAL_BUF_REGISTER_ERROR = 5045, "CU_FILE_INTERNAL_BUF_REGISTER_ERROR", "cufile buf registration error";
    HASH_OPR_ERROR = 5046, "CU_FILE_HASH_OPR_ERROR", "cufile hash operation error";
    INVALID_CONTEXT_ERROR = 5047, "CU_FILE_INVALID_CONTEXT_ERROR", "cufile invalid context error";
    NVFS_INTERNAL_DRIVER_ERROR = 5048, "CU_FILE_NVFS_INTERNAL_DRIVER_ERROR", "nvfs internal driver error";
    BATCH_NOCOMPAT_ERROR = 5049, "CU_FILE_BATCH_NOCOMPAT_ERROR", "compat mode off error";
}

impl CUfileOpError {
    /// The C name (`CU_FILE_IO_NOT_SUPPORTED`), or `None` for a code this file does not know.
    pub fn name(self) -> Option<&'static str> {
        Self::ALL.iter().find(|e| e.0 == self).map(|e| e.1)
    }

    /// The header's description of the code, or `None` for a code this file does not know.
    pub fn description(self) -> Option<&'static str> {
        Self::ALL.iter().find(|e| e.0 == self).map(|e| e.2)
    }

    pub fn is_success(self) -> bool {
        self == Self::SUCCESS
    }
}

/// `CU_FILE_IO_NOT_SUPPORTED (5008)`, or `unknown cuFile error 5099` for codes not listed.
impl fmt::Display for CUfileOpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown cuFile error {}", self.0),
        }
    }
}

/// `CUfileError_t`, returned by value by most cuFile functions.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfileError_t {
    pub err: CUfileOpError,
    /// Meaningful when `err` is [`CUfileOpError::CUDA_DRIVER_ERROR`].
    pub cu_err: CUresult,
}

// ---------------------------------------------------------------------------------------------
// Driver properties
// ---------------------------------------------------------------------------------------------

/// The `nvfs` member of `CUfileDrvProps_t` (an anonymous struct in C).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfileDrvPropsNvfs {
    /// nvidia-fs version; 0.0 means nvidia-fs is not loaded.
    pub major_version: c_uint,
    pub minor_version: c_uint,
    pub poll_thresh_size: usize,
    pub max_direct_io_size: usize,
    /// Bit positions from [`CUfileDriverStatusFlags`].
    pub dstatusflags: c_uint,
    /// Bit positions from [`CUfileDriverControlFlags`].
    pub dcontrolflags: c_uint,
}

/// `CUfileDrvProps_t`, filled by `cuFileDriverGetProperties`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfileDrvProps_t {
    pub nvfs: CUfileDrvPropsNvfs,
    /// Bit positions from [`CUfileFeatureFlags`].
    pub fflags: c_uint,
    pub max_device_cache_size: c_uint,
    pub per_buffer_cache_size: c_uint,
    pub max_device_pinned_mem_size: c_uint,
    pub max_batch_io_size: c_uint,
    pub max_batch_io_timeout_msecs: c_uint,
}

/// `enum CUfileDriverStatusFlags`: bit *positions* in `nvfs.dstatusflags` (test `x & (1 << n)`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUfileDriverStatusFlags(pub u32);

impl CUfileDriverStatusFlags {
    pub const LUSTRE_SUPPORTED: Self = Self(0);
    pub const WEKAFS_SUPPORTED: Self = Self(1);
    pub const NFS_SUPPORTED: Self = Self(2);
    pub const GPFS_SUPPORTED: Self = Self(3);
    pub const NVME_SUPPORTED: Self = Self(4);
    pub const NVMEOF_SUPPORTED: Self = Self(5);
    pub const SCSI_SUPPORTED: Self = Self(6);
    pub const SCALEFLUX_CSD_SUPPORTED: Self = Self(7);
    pub const NVMESH_SUPPORTED: Self = Self(8);
    pub const BEEGFS_SUPPORTED: Self = Self(9);
    // 10 is reserved for YRCloudFile.
    /// Deprecated in 1.20 (P2PDMA support is a feature flag there: [`CUfileFeatureFlags::P2P_SUPPORTED`]).
    pub const NVME_P2P_SUPPORTED: Self = Self(11);
    pub const SCATEFS_SUPPORTED: Self = Self(12);
    /// 1.16+.
    pub const VIRTIOFS_SUPPORTED: Self = Self(13);
    /// 1.20+.
    pub const PANFS_SUPPORTED: Self = Self(14);
}

/// `enum CUfileDriverControlFlags`: bit positions in `nvfs.dcontrolflags`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUfileDriverControlFlags(pub u32);

impl CUfileDriverControlFlags {
    pub const USE_POLL_MODE: Self = Self(0);
    pub const ALLOW_COMPAT_MODE: Self = Self(1);
    /// 1.17+ (`CU_FILE_POSIX_IO_MODE`; 1.19+ also names it `CU_FILE_VANILLA_POSIX_IO_MODE`):
    /// every I/O goes through plain POSIX I/O (cufile.json `properties.posix_io_mode`), never
    /// through nvidia-fs or P2PDMA, whatever the properties say about them.
    pub const POSIX_IO_MODE: Self = Self(2);
    /// 1.17+ (`CU_FILE_FALLBACK_IO_MODE`): a GDS I/O that fails is retried through POSIX
    /// (cufile.json `properties.gds_fallback_io`).
    pub const FALLBACK_IO_MODE: Self = Self(4);
}

/// `enum CUfileFeatureFlags`: bit positions in `fflags`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUfileFeatureFlags(pub u32);

impl CUfileFeatureFlags {
    pub const DYN_ROUTING_SUPPORTED: Self = Self(0);
    pub const BATCH_IO_SUPPORTED: Self = Self(1);
    pub const STREAMS_SUPPORTED: Self = Self(2);
    pub const PARALLEL_IO_SUPPORTED: Self = Self(3);
    /// 1.16+: kernel PCI P2PDMA (a direct path without nvidia-fs).
    pub const P2P_SUPPORTED: Self = Self(4);
}

/// Whether bit position `bit` (one of the flag constants above) is set in `word`.
pub const fn has_bit(word: c_uint, bit: u32) -> bool {
    bit < 32 && word & (1 << bit) != 0
}

// ---------------------------------------------------------------------------------------------
// File handles
// ---------------------------------------------------------------------------------------------

/// `enum CUfileFileHandleType`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUfileFileHandleType(pub u32);

impl CUfileFileHandleType {
    /// A Linux file descriptor (the only type gdswap uses).
    pub const OPAQUE_FD: Self = Self(1);
    /// A Windows handle (unsupported).
    pub const OPAQUE_WIN32: Self = Self(2);
    pub const USERSPACE_FS: Self = Self(3);
}

/// `cufileRDMAInfo_t`, passed to the userspace-filesystem callbacks.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cufileRDMAInfo_t {
    pub version: c_int,
    pub desc_len: c_int,
    pub desc_str: *const c_char,
}

/// `CUfileFSOps_t`: callbacks of a userspace filesystem. gdswap passes a null table (discover
/// the filesystem with fstat); the type is here so `CUfileDescr_t::fs_ops` has its real type.
/// `sockaddr_t*` arguments are declared `*mut c_void` (their layout is never touched here).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CUfileFSOps_t {
    pub fs_type: Option<unsafe extern "C" fn(handle: *mut c_void) -> *const c_char>,
    pub getRDMADeviceList:
        Option<unsafe extern "C" fn(handle: *mut c_void, hostaddrs: *mut *mut c_void) -> c_int>,
    pub getRDMADevicePriority: Option<
        unsafe extern "C" fn(
            handle: *mut c_void,
            buf: *mut c_char,
            len: usize,
            offset: off_t,
            hostaddr: *mut c_void,
        ) -> c_int,
    >,
    pub read: Option<
        unsafe extern "C" fn(
            handle: *mut c_void,
            buf: *mut c_char,
            len: usize,
            offset: off_t,
            info: *mut cufileRDMAInfo_t,
        ) -> ssize_t,
    >,
    pub write: Option<
        unsafe extern "C" fn(
            handle: *mut c_void,
            buf: *const c_char,
            len: usize,
            offset: off_t,
            info: *mut cufileRDMAInfo_t,
        ) -> ssize_t,
    >,
}

/// The anonymous union `handle` of `CUfileDescr_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union CUfileDescrHandle {
    /// Linux.
    pub fd: c_int,
    /// Windows.
    pub handle: *mut c_void,
}

/// `CUfileDescr_t`, the argument of `cuFileHandleRegister`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CUfileDescr_t {
    /// `type` in C.
    pub type_: CUfileFileHandleType,
    pub handle: CUfileDescrHandle,
    /// Null: the filesystem is discovered with fstat.
    pub fs_ops: *const CUfileFSOps_t,
}

impl CUfileDescr_t {
    /// A descriptor for a Linux file descriptor (which should be open with O_DIRECT).
    pub const fn from_fd(fd: c_int) -> Self {
        CUfileDescr_t {
            type_: CUfileFileHandleType::OPAQUE_FD,
            handle: CUfileDescrHandle { fd },
            fs_ops: core::ptr::null(),
        }
    }
}

/// `cuFileBufRegister` flags (a plain `int` in C).
pub const CU_FILE_RDMA_REGISTER: c_int = 1;
pub const CU_FILE_RDMA_RELAXED_ORDERING: c_int = 1 << 1;

/// `cuFileStreamRegister` flags: the buffer offset is fixed at submission time.
pub const CU_FILE_STREAM_FIXED_BUF_OFFSET: c_uint = 1;
/// The file offset is fixed at submission time.
pub const CU_FILE_STREAM_FIXED_FILE_OFFSET: c_uint = 2;
/// The size is fixed at submission time.
pub const CU_FILE_STREAM_FIXED_FILE_SIZE: c_uint = 4;
/// Size, file offset and buffer offset are 4 KiB aligned.
pub const CU_FILE_STREAM_PAGE_ALIGNED_INPUTS: c_uint = 8;

// ---------------------------------------------------------------------------------------------
// Batch API
// ---------------------------------------------------------------------------------------------

/// `enum CUfileOpcode`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUfileOpcode(pub u32);

impl CUfileOpcode {
    pub const READ: Self = Self(0);
    pub const WRITE: Self = Self(1);
}

/// `enum CUFILEStatus_enum` (`CUfileStatus_t`): the state of one batch entry (one bit each).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUfileStatus(pub u32);

impl CUfileStatus {
    /// Required value before submission.
    pub const WAITING: Self = Self(0x01);
    /// Enqueued.
    pub const PENDING: Self = Self(0x02);
    /// Ill-formed or could not be enqueued.
    pub const INVALID: Self = Self(0x04);
    pub const CANCELED: Self = Self(0x08);
    pub const COMPLETE: Self = Self(0x10);
    pub const TIMEOUT: Self = Self(0x20);
    pub const FAILED: Self = Self(0x40);

    /// The C name without prefix (`COMPLETE`), or `None` for a value this file does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::WAITING => "WAITING",
            Self::PENDING => "PENDING",
            Self::INVALID => "INVALID",
            Self::CANCELED => "CANCELED",
            Self::COMPLETE => "COMPLETE",
            Self::TIMEOUT => "TIMEOUT",
            Self::FAILED => "FAILED",
            _ => return None,
        })
    }
}

/// `enum cufileBatchMode` (`CUfileBatchMode_t`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUfileBatchMode(pub u32);

impl CUfileBatchMode {
    pub const BATCH: Self = Self(1);
}

/// The `batch` member of `CUfileIOParams_t::u` (an anonymous struct in C).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CUfileIOParamsBatch {
    /// Device (or host) memory.
    pub devPtr_base: *mut c_void,
    pub file_offset: off_t,
    pub devPtr_offset: off_t,
    pub size: usize,
}

/// The union `u` of `CUfileIOParams_t` (one member in every version so far).
#[repr(C)]
#[derive(Clone, Copy)]
pub union CUfileIOParamsUnion {
    pub batch: CUfileIOParamsBatch,
}

/// `CUfileIOParams_t`: one entry of `cuFileBatchIOSubmit`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CUfileIOParams_t {
    /// Must be [`CUfileBatchMode::BATCH`].
    pub mode: CUfileBatchMode,
    pub u: CUfileIOParamsUnion,
    pub fh: CUfileHandle_t,
    pub opcode: CUfileOpcode,
    pub cookie: *mut c_void,
}

/// `CUfileIOEvents_t`: one completion from `cuFileBatchIOGetStatus`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CUfileIOEvents_t {
    pub cookie: *mut c_void,
    pub status: CUfileStatus,
    /// Bytes done, or a negative error stored in a `size_t`: read it as `ret as isize`.
    pub ret: usize,
}

// ---------------------------------------------------------------------------------------------
// Parameter API (1.14+, CUDA 12.9)
// ---------------------------------------------------------------------------------------------

/// `enum CUFileSizeTConfigParameter_t`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUFileSizeTConfigParameter(pub u32);

impl CUFileSizeTConfigParameter {
    pub const PROFILE_STATS: Self = Self(0);
    pub const EXECUTION_MAX_IO_QUEUE_DEPTH: Self = Self(1);
    pub const EXECUTION_MAX_IO_THREADS: Self = Self(2);
    pub const EXECUTION_MIN_IO_THRESHOLD_SIZE_KB: Self = Self(3);
    pub const EXECUTION_MAX_REQUEST_PARALLELISM: Self = Self(4);
    pub const PROPERTIES_MAX_DIRECT_IO_SIZE_KB: Self = Self(5);
    pub const PROPERTIES_MAX_DEVICE_CACHE_SIZE_KB: Self = Self(6);
    pub const PROPERTIES_PER_BUFFER_CACHE_SIZE_KB: Self = Self(7);
    pub const PROPERTIES_MAX_DEVICE_PINNED_MEM_SIZE_KB: Self = Self(8);
    pub const PROPERTIES_IO_BATCHSIZE: Self = Self(9);
    pub const POLLTHRESHOLD_SIZE_KB: Self = Self(10);
    pub const PROPERTIES_BATCH_IO_TIMEOUT_MS: Self = Self(11);
}

/// `enum CUFileBoolConfigParameter_t`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUFileBoolConfigParameter(pub u32);

impl CUFileBoolConfigParameter {
    pub const PROPERTIES_USE_POLL_MODE: Self = Self(0);
    /// Set to false before the driver is opened for a strict per-file GPUDirect probe.
    pub const PROPERTIES_ALLOW_COMPAT_MODE: Self = Self(1);
    pub const FORCE_COMPAT_MODE: Self = Self(2);
    pub const FS_MISC_API_CHECK_AGGRESSIVE: Self = Self(3);
    pub const EXECUTION_PARALLEL_IO: Self = Self(4);
    pub const PROFILE_NVTX: Self = Self(5);
    pub const PROPERTIES_ALLOW_SYSTEM_MEMORY: Self = Self(6);
    pub const USE_PCIP2PDMA: Self = Self(7);
    pub const PREFER_IO_URING: Self = Self(8);
    pub const FORCE_ODIRECT_MODE: Self = Self(9);
    pub const SKIP_TOPOLOGY_DETECTION: Self = Self(10);
    pub const STREAM_MEMOPS_BYPASS: Self = Self(11);
    /// 1.19+.
    pub const PROPERTIES_POSIX_IO_MODE: Self = Self(12);
    /// 1.19+.
    pub const GDS_FALLBACK_IO: Self = Self(13);
}

/// `enum CUFileStringConfigParameter_t`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CUFileStringConfigParameter(pub u32);

impl CUFileStringConfigParameter {
    pub const LOGGING_LEVEL: Self = Self(0);
    pub const ENV_LOGFILE_PATH: Self = Self(1);
    pub const LOG_DIR: Self = Self(2);
}

// ---------------------------------------------------------------------------------------------
// Statistics structs (1.15+). Their layout changed in 1.19 (the `_v1_20` types are 1.19's too) (vector I/O counters were appended to
// level 1, which shifts levels 2 and 3): pick the version's types by `cuFileGetVersion`. Both
// are checked against the real 1.15 and 1.20 headers.
// ---------------------------------------------------------------------------------------------

/// `CUfileOpCounter_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfileOpCounter_t {
    /// Successful operations.
    pub ok: u64,
    /// Failed operations.
    pub err: u64,
}

/// `CUfileStatsLevel1_t` of cuFile 1.15 (CUDA 13.0).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfileStatsLevel1_v1_15 {
    /// Read operations
    pub read_ops: CUfileOpCounter_t,
    /// Write operations
    pub write_ops: CUfileOpCounter_t,
    /// Handle register operations
    pub hdl_register_ops: CUfileOpCounter_t,
    /// Handle deregister operations
    pub hdl_deregister_ops: CUfileOpCounter_t,
    /// Buffer register operations
    pub buf_register_ops: CUfileOpCounter_t,
    /// Buffer deregister operations
    pub buf_deregister_ops: CUfileOpCounter_t,
    /// Total bytes read
    pub read_bytes: u64,
    /// Total bytes written
    pub write_bytes: u64,
    /// Read bandwidth (bytes/sec)
    pub read_bw_bytes_per_sec: u64,
    /// Write bandwidth (bytes/sec)
    pub write_bw_bytes_per_sec: u64,
    /// Average read latency (microseconds)
    pub read_lat_avg_us: u64,
    /// Average write latency (microseconds)
    pub write_lat_avg_us: u64,
    /// Read operations per second
    pub read_ops_per_sec: u64,
    /// Write operations per second
    pub write_ops_per_sec: u64,
    /// Sum of read latencies
    pub read_lat_sum_us: u64,
    /// Sum of write latencies
    pub write_lat_sum_us: u64,
    /// Batch submit operations
    pub batch_submit_ops: CUfileOpCounter_t,
    /// Batch complete operations
    pub batch_complete_ops: CUfileOpCounter_t,
    /// Batch setup operations
    pub batch_setup_ops: CUfileOpCounter_t,
    /// Batch cancel operations
    pub batch_cancel_ops: CUfileOpCounter_t,
    /// Batch destroy operations
    pub batch_destroy_ops: CUfileOpCounter_t,
    /// Batch enqueue operations
    pub batch_enqueued_ops: CUfileOpCounter_t,
    /// POSIX batch enqueue operations
    pub batch_posix_enqueued_ops: CUfileOpCounter_t,
    /// Batch process operations
    pub batch_processed_ops: CUfileOpCounter_t,
    /// POSIX batch process operations
    pub batch_posix_processed_ops: CUfileOpCounter_t,
    /// NVFS batch submit operations
    pub batch_nvfs_submit_ops: CUfileOpCounter_t,
    /// P2P batch submit operations
    pub batch_p2p_submit_ops: CUfileOpCounter_t,
    /// AIO batch submit operations
    pub batch_aio_submit_ops: CUfileOpCounter_t,
    /// IO_URING batch submit operations
    pub batch_iouring_submit_ops: CUfileOpCounter_t,
    /// Mixed IO batch submit operations
    pub batch_mixed_io_submit_ops: CUfileOpCounter_t,
    /// Total batch submit operations
    pub batch_total_submit_ops: CUfileOpCounter_t,
    /// Total batch read bytes
    pub batch_read_bytes: u64,
    /// Total batch write bytes
    pub batch_write_bytes: u64,
    /// Batch read bandwidth
    pub batch_read_bw_bytes: u64,
    /// Batch write bandwidth
    pub batch_write_bw_bytes: u64,
    /// Avg batch submit latency
    pub batch_submit_lat_avg_us: u64,
    /// Avg batch completion latency
    pub batch_completion_lat_avg_us: u64,
    /// Batch submit operations per second
    pub batch_submit_ops_per_sec: u64,
    /// Batch complete operations per second
    pub batch_complete_ops_per_sec: u64,
    /// Sum of batch submit latencies
    pub batch_submit_lat_sum_us: u64,
    /// Sum of batch completion latencies
    pub batch_completion_lat_sum_us: u64,
    /// Last batch read bytes
    pub last_batch_read_bytes: u64,
    /// Last batch write bytes
    pub last_batch_write_bytes: u64,
}

/// `CUfileStatsLevel1_t` of cuFile 1.20: the 1.15 fields (all `u64`, so embedding them keeps
/// the flat C offsets), then the vector I/O counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfileStatsLevel1_v1_20 {
    pub base: CUfileStatsLevel1_v1_15,
    /// CuFileReadv operations
    pub readv_ops: CUfileOpCounter_t,
    /// CuFileWritev operations
    pub writev_ops: CUfileOpCounter_t,
    /// Total bytes read via cuFileReadv
    pub readv_bytes: u64,
    /// Total bytes written via cuFileWritev
    pub writev_bytes: u64,
    /// CuFileReadv bandwidth (bytes/sec)
    pub readv_bw_bytes_per_sec: u64,
    /// CuFileWritev bandwidth (bytes/sec)
    pub writev_bw_bytes_per_sec: u64,
    /// Average cuFileReadv latency (microseconds)
    pub readv_lat_avg_us: u64,
    /// Average cuFileWritev latency (microseconds)
    pub writev_lat_avg_us: u64,
    /// CuFileReadv operations per second
    pub readv_ops_per_sec: u64,
    /// CuFileWritev operations per second
    pub writev_ops_per_sec: u64,
    /// Sum of cuFileReadv latencies
    pub readv_lat_sum_us: u64,
    /// Sum of cuFileWritev latencies
    pub writev_lat_sum_us: u64,
}

/// `CUfileStatsLevel2_t` over the level-1 struct of a version.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfileStatsLevel2<L1> {
    pub basic: L1,
    /// Histogram of read sizes (KiB buckets).
    pub read_size_kb_hist: [u64; 32],
    /// Histogram of write sizes (KiB buckets).
    pub write_size_kb_hist: [u64; 32],
}

/// `CUFILE_GPU_UUID_LEN`.
pub const CUFILE_GPU_UUID_LEN: usize = 16;
/// The length of `CUfileStatsLevel3_t::per_gpu_stats` ("maxGpus" of cufile_stats.h).
pub const CUFILE_STATS_MAX_GPUS: usize = 16;

/// `CUfilePerGpuStats_t` (the same in 1.15 and 1.20): per GPU, POSIX vs nvidia-fs vs P2PDMA
/// reads and writes, the per-I/O proof of which path the bytes took.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfilePerGpuStats_t {
    /// GPU UUID.
    pub uuid: [c_char; CUFILE_GPU_UUID_LEN],
    /// Total bytes read
    pub read_bytes: u64,
    /// Read bandwidth in bytes per second
    pub read_bw_bytes_per_sec: u64,
    /// Read utilization percentage
    pub read_utilization: u64,
    /// Read operation duration
    pub read_duration_us: u64,
    /// Total number of reads
    pub n_total_reads: u64,
    /// Number of PCIe P2PDMA reads
    pub n_p2p_reads: u64,
    /// Number of nvidia-fs reads
    pub n_nvfs_reads: u64,
    /// Number of POSIX reads
    pub n_posix_reads: u64,
    /// Number of unaligned reads
    pub n_unaligned_reads: u64,
    /// Number of reads using dynamic routing
    pub n_dr_reads: u64,
    /// Number of sparse regions
    pub n_sparse_regions: u64,
    /// Number of inline regions
    pub n_inline_regions: u64,
    /// Number of read errors
    pub n_reads_err: u64,
    /// Total bytes written
    pub writes_bytes: u64,
    /// Write bandwidth in bytes per secind
    pub write_bw_bytes_per_sec: u64,
    /// Write utilization percentage
    pub write_utilization: u64,
    /// Write operation duration
    pub write_duration_us: u64,
    /// Total number of writes
    pub n_total_writes: u64,
    /// Number of PCIe P2PDMA writes
    pub n_p2p_writes: u64,
    /// Number of nvidia-fs writes
    pub n_nvfs_writes: u64,
    /// Number of POSIX writes
    pub n_posix_writes: u64,
    /// Number of unaligned writes
    pub n_unaligned_writes: u64,
    /// Number of writes using dynamic routing
    pub n_dr_writes: u64,
    /// Number of write errors
    pub n_writes_err: u64,
    /// Number of buffer registrations
    pub n_mmap: u64,
    /// Successful registrations
    pub n_mmap_ok: u64,
    /// Failed registrations
    pub n_mmap_err: u64,
    /// Number of buffer deregistrations
    pub n_mmap_free: u64,
    /// Total bytes registered
    pub reg_bytes: u64,
}

/// `CUfileStatsLevel3_t` over the level-1 struct of a version.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CUfileStatsLevel3<L1> {
    pub detailed: CUfileStatsLevel2<L1>,
    /// GPUs with statistics in `per_gpu_stats`.
    pub num_gpus: u32,
    pub per_gpu_stats: [CUfilePerGpuStats_t; CUFILE_STATS_MAX_GPUS],
}

pub type CUfileStatsLevel2_v1_15 = CUfileStatsLevel2<CUfileStatsLevel1_v1_15>;
pub type CUfileStatsLevel3_v1_15 = CUfileStatsLevel3<CUfileStatsLevel1_v1_15>;
pub type CUfileStatsLevel2_v1_20 = CUfileStatsLevel2<CUfileStatsLevel1_v1_20>;
pub type CUfileStatsLevel3_v1_20 = CUfileStatsLevel3<CUfileStatsLevel1_v1_20>;

// ---------------------------------------------------------------------------------------------
// Function pointer types, one per symbol gdswap resolves
// ---------------------------------------------------------------------------------------------

// Driver (every version).
pub type PFN_cuFileDriverOpen = unsafe extern "C" fn() -> CUfileError_t;
/// `cuFileDriverClose_v2`; the header maps `cuFileDriverClose` to it. Old libraries export
/// only `cuFileDriverClose`, with the same signature.
pub type PFN_cuFileDriverClose = unsafe extern "C" fn() -> CUfileError_t;
pub type PFN_cuFileUseCount = unsafe extern "C" fn() -> c_long;
pub type PFN_cuFileDriverGetProperties =
    unsafe extern "C" fn(props: *mut CUfileDrvProps_t) -> CUfileError_t;
pub type PFN_cuFileDriverSetPollMode =
    unsafe extern "C" fn(poll: bool, poll_threshold_size_kb: usize) -> CUfileError_t;
pub type PFN_cuFileDriverSetMaxDirectIOSize =
    unsafe extern "C" fn(max_direct_io_size_kb: usize) -> CUfileError_t;
pub type PFN_cuFileDriverSetMaxCacheSize =
    unsafe extern "C" fn(max_cache_size_kb: usize) -> CUfileError_t;
pub type PFN_cuFileDriverSetMaxPinnedMemSize =
    unsafe extern "C" fn(max_pinned_size_kb: usize) -> CUfileError_t;

// Handles, buffers, synchronous I/O (every version).
pub type PFN_cuFileHandleRegister =
    unsafe extern "C" fn(fh: *mut CUfileHandle_t, descr: *mut CUfileDescr_t) -> CUfileError_t;
pub type PFN_cuFileHandleDeregister = unsafe extern "C" fn(fh: CUfileHandle_t);
pub type PFN_cuFileBufRegister =
    unsafe extern "C" fn(buf_ptr_base: *const c_void, length: usize, flags: c_int) -> CUfileError_t;
pub type PFN_cuFileBufDeregister =
    unsafe extern "C" fn(buf_ptr_base: *const c_void) -> CUfileError_t;
/// Returns bytes read (possibly short), -1 with errno set, or -(CUfileOpError).
pub type PFN_cuFileRead = unsafe extern "C" fn(
    fh: CUfileHandle_t,
    buf_ptr_base: *mut c_void,
    size: usize,
    file_offset: off_t,
    buf_ptr_offset: off_t,
) -> ssize_t;
/// Returns bytes written (possibly short), -1 with errno set, or -(CUfileOpError).
pub type PFN_cuFileWrite = unsafe extern "C" fn(
    fh: CUfileHandle_t,
    buf_ptr_base: *const c_void,
    size: usize,
    file_offset: off_t,
    buf_ptr_offset: off_t,
) -> ssize_t;

// Batch API (1.2+).
pub type PFN_cuFileBatchIOSetUp =
    unsafe extern "C" fn(batch_idp: *mut CUfileBatchHandle_t, nr: c_uint) -> CUfileError_t;
pub type PFN_cuFileBatchIOSubmit = unsafe extern "C" fn(
    batch_idp: CUfileBatchHandle_t,
    nr: c_uint,
    iocbp: *mut CUfileIOParams_t,
    flags: c_uint,
) -> CUfileError_t;
pub type PFN_cuFileBatchIOGetStatus = unsafe extern "C" fn(
    batch_idp: CUfileBatchHandle_t,
    min_nr: c_uint,
    nr: *mut c_uint,
    iocbp: *mut CUfileIOEvents_t,
    timeout: *mut timespec,
) -> CUfileError_t;
pub type PFN_cuFileBatchIOCancel =
    unsafe extern "C" fn(batch_idp: CUfileBatchHandle_t) -> CUfileError_t;
pub type PFN_cuFileBatchIODestroy = unsafe extern "C" fn(batch_idp: CUfileBatchHandle_t);

// Stream API (1.7+, CUDA 12.2). Every pointer argument must stay valid until the stream has
// run the operation.
pub type PFN_cuFileReadAsync = unsafe extern "C" fn(
    fh: CUfileHandle_t,
    buf_ptr_base: *mut c_void,
    size_p: *mut usize,
    file_offset_p: *mut off_t,
    buf_ptr_offset_p: *mut off_t,
    bytes_read_p: *mut ssize_t,
    stream: CUstream,
) -> CUfileError_t;
pub type PFN_cuFileWriteAsync = unsafe extern "C" fn(
    fh: CUfileHandle_t,
    buf_ptr_base: *mut c_void,
    size_p: *mut usize,
    file_offset_p: *mut off_t,
    buf_ptr_offset_p: *mut off_t,
    bytes_written_p: *mut ssize_t,
    stream: CUstream,
) -> CUfileError_t;
pub type PFN_cuFileStreamRegister =
    unsafe extern "C" fn(stream: CUstream, flags: c_uint) -> CUfileError_t;
pub type PFN_cuFileStreamDeregister = unsafe extern "C" fn(stream: CUstream) -> CUfileError_t;

// Version (absent on old libraries): 1000 * major + 10 * minor.
pub type PFN_cuFileGetVersion = unsafe extern "C" fn(version: *mut c_int) -> CUfileError_t;

// Parameters (1.14+). Set calls work only before the driver is opened.
pub type PFN_cuFileGetParameterSizeT =
    unsafe extern "C" fn(param: CUFileSizeTConfigParameter, value: *mut usize) -> CUfileError_t;
pub type PFN_cuFileGetParameterBool =
    unsafe extern "C" fn(param: CUFileBoolConfigParameter, value: *mut bool) -> CUfileError_t;
pub type PFN_cuFileGetParameterString = unsafe extern "C" fn(
    param: CUFileStringConfigParameter,
    desc_str: *mut c_char,
    len: c_int,
) -> CUfileError_t;
pub type PFN_cuFileSetParameterSizeT =
    unsafe extern "C" fn(param: CUFileSizeTConfigParameter, value: usize) -> CUfileError_t;
pub type PFN_cuFileSetParameterBool =
    unsafe extern "C" fn(param: CUFileBoolConfigParameter, value: bool) -> CUfileError_t;
pub type PFN_cuFileSetParameterString = unsafe extern "C" fn(
    param: CUFileStringConfigParameter,
    desc_str: *const c_char,
) -> CUfileError_t;

// Statistics (1.15+, CUDA 13). The `CUfileStatsLevel{1,2,3}_t` layouts differ between 1.15
// and 1.20, so the getters take an untyped pointer here: a caller picks the layout by
// `cuFileGetVersion` (`CUfileStatsLevel3_v1_15` or `_v1_20`) and passes a pointer to it.
pub type PFN_cuFileSetStatsLevel = unsafe extern "C" fn(level: c_int) -> CUfileError_t;
pub type PFN_cuFileGetStatsLevel = unsafe extern "C" fn(level: *mut c_int) -> CUfileError_t;
pub type PFN_cuFileStatsStart = unsafe extern "C" fn() -> CUfileError_t;
pub type PFN_cuFileStatsStop = unsafe extern "C" fn() -> CUfileError_t;
pub type PFN_cuFileStatsReset = unsafe extern "C" fn() -> CUfileError_t;
pub type PFN_cuFileGetStatsL1 = unsafe extern "C" fn(stats: *mut c_void) -> CUfileError_t;
pub type PFN_cuFileGetStatsL2 = unsafe extern "C" fn(stats: *mut c_void) -> CUfileError_t;
pub type PFN_cuFileGetStatsL3 = unsafe extern "C" fn(stats: *mut c_void) -> CUfileError_t;

// ---------------------------------------------------------------------------------------------
// Compile-time layout checks (the facts of cufile-abi.md; the test against the real header
// checks the same and more). Only for 64-bit Linux, the only platform cuFile exists on.
// ---------------------------------------------------------------------------------------------

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};

    assert!(size_of::<CUfileOpError>() == 4);
    assert!(size_of::<CUresult>() == 4);
    assert!(size_of::<CUfileStatus>() == 4);
    assert!(size_of::<CUfileOpcode>() == 4);
    assert!(size_of::<CUfileBatchMode>() == 4);
    assert!(size_of::<CUfileFileHandleType>() == 4);
    assert!(size_of::<CUFileBoolConfigParameter>() == 4);
    assert!(size_of::<CUFileSizeTConfigParameter>() == 4);
    assert!(size_of::<CUFileStringConfigParameter>() == 4);

    assert!(size_of::<CUfileError_t>() == 8 && align_of::<CUfileError_t>() == 4);
    assert!(offset_of!(CUfileError_t, err) == 0);
    assert!(offset_of!(CUfileError_t, cu_err) == 4);

    assert!(size_of::<CUfileDrvPropsNvfs>() == 32);
    assert!(offset_of!(CUfileDrvPropsNvfs, major_version) == 0);
    assert!(offset_of!(CUfileDrvPropsNvfs, minor_version) == 4);
    assert!(offset_of!(CUfileDrvPropsNvfs, poll_thresh_size) == 8);
    assert!(offset_of!(CUfileDrvPropsNvfs, max_direct_io_size) == 16);
    assert!(offset_of!(CUfileDrvPropsNvfs, dstatusflags) == 24);
    assert!(offset_of!(CUfileDrvPropsNvfs, dcontrolflags) == 28);
    assert!(size_of::<CUfileDrvProps_t>() == 56 && align_of::<CUfileDrvProps_t>() == 8);
    assert!(offset_of!(CUfileDrvProps_t, fflags) == 32);
    assert!(offset_of!(CUfileDrvProps_t, max_device_cache_size) == 36);
    assert!(offset_of!(CUfileDrvProps_t, per_buffer_cache_size) == 40);
    assert!(offset_of!(CUfileDrvProps_t, max_device_pinned_mem_size) == 44);
    assert!(offset_of!(CUfileDrvProps_t, max_batch_io_size) == 48);
    assert!(offset_of!(CUfileDrvProps_t, max_batch_io_timeout_msecs) == 52);

    assert!(size_of::<CUfileDescrHandle>() == 8);
    assert!(size_of::<CUfileDescr_t>() == 24 && align_of::<CUfileDescr_t>() == 8);
    assert!(offset_of!(CUfileDescr_t, type_) == 0);
    assert!(offset_of!(CUfileDescr_t, handle) == 8);
    assert!(offset_of!(CUfileDescr_t, fs_ops) == 16);
    assert!(size_of::<CUfileFSOps_t>() == 40);
    assert!(size_of::<cufileRDMAInfo_t>() == 16);

    assert!(size_of::<CUfileIOParamsBatch>() == 32);
    assert!(size_of::<CUfileIOParams_t>() == 64 && align_of::<CUfileIOParams_t>() == 8);
    assert!(offset_of!(CUfileIOParams_t, mode) == 0);
    assert!(offset_of!(CUfileIOParams_t, u) == 8);
    assert!(offset_of!(CUfileIOParamsBatch, file_offset) == 8);
    assert!(offset_of!(CUfileIOParamsBatch, devPtr_offset) == 16);
    assert!(offset_of!(CUfileIOParamsBatch, size) == 24);
    assert!(offset_of!(CUfileIOParams_t, fh) == 40);
    assert!(offset_of!(CUfileIOParams_t, opcode) == 48);
    assert!(offset_of!(CUfileIOParams_t, cookie) == 56);

    assert!(size_of::<CUfileIOEvents_t>() == 24 && align_of::<CUfileIOEvents_t>() == 8);
    assert!(offset_of!(CUfileIOEvents_t, cookie) == 0);
    assert!(offset_of!(CUfileIOEvents_t, status) == 8);
    assert!(offset_of!(CUfileIOEvents_t, ret) == 16);

    assert!(size_of::<timespec>() == 16);

    assert!(size_of::<CUfileOpCounter_t>() == 16);
    assert!(size_of::<CUfileStatsLevel1_v1_15>() == 512);
    assert!(size_of::<CUfileStatsLevel2_v1_15>() == 1024);
    assert!(size_of::<CUfilePerGpuStats_t>() == 248);
    assert!(size_of::<CUfileStatsLevel3_v1_15>() == 5000);
    assert!(size_of::<CUfileStatsLevel1_v1_20>() == 624);
    assert!(size_of::<CUfileStatsLevel2_v1_20>() == 1136);
    assert!(size_of::<CUfileStatsLevel3_v1_20>() == 5112);
    assert!(offset_of!(CUfileStatsLevel3_v1_20, num_gpus) == 1136);
    assert!(offset_of!(CUfileStatsLevel3_v1_20, per_gpu_stats) == 1144);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_error_table_is_sorted_and_unique() {
        let all = CUfileOpError::ALL;
        for w in all.windows(2) {
            assert!(w[0].0 .0 < w[1].0 .0, "{} then {}", w[0].1, w[1].1);
        }
        for (i, a) in all.iter().enumerate() {
            assert!(a.1.starts_with("CU_FILE_"), "{}", a.1);
            assert!(all[i + 1..].iter().all(|b| b.1 != a.1), "{} twice", a.1);
            assert!(a.0 == CUfileOpError::SUCCESS || a.0 .0 > CUFILEOP_BASE_ERR);
        }
    }

    #[test]
    fn op_error_names_known_and_numbers_unknown() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(
            CUfileOpError::IO_NOT_SUPPORTED.to_string(),
            "CU_FILE_IO_NOT_SUPPORTED (5008)"
        );
        assert_eq!(
            CUfileOpError(5011).name(),
            Some("CU_FILE_CUDA_DRIVER_ERROR")
        );
        // 5021 and 5032 are holes in every header; 5050 is past the 1.20 range.
        for unknown in [5021, 5032, 5050, 6000, 1] {
            assert_eq!(CUfileOpError(unknown).name(), None);
            assert_eq!(
                CUfileOpError(unknown).to_string(),
                std::format!("unknown cuFile error {unknown}")
            );
        }
    }

    #[test]
    fn flag_bits_and_status_names() {
        let word = (1 << CUfileDriverStatusFlags::NVME_SUPPORTED.0)
            | (1 << CUfileDriverStatusFlags::NFS_SUPPORTED.0);
        assert!(has_bit(word, CUfileDriverStatusFlags::NVME_SUPPORTED.0));
        assert!(has_bit(word, CUfileDriverStatusFlags::NFS_SUPPORTED.0));
        assert!(!has_bit(word, CUfileDriverStatusFlags::LUSTRE_SUPPORTED.0));
        assert!(!has_bit(u32::MAX, 32));
        assert_eq!(CUfileStatus::COMPLETE.name(), Some("COMPLETE"));
        assert_eq!(CUfileStatus(3).name(), None);
        let d = CUfileDescr_t::from_fd(7);
        assert_eq!(d.type_, CUfileFileHandleType::OPAQUE_FD);
        // SAFETY: from_fd wrote the `fd` member.
        assert_eq!(unsafe { d.handle.fd }, 7);
        assert!(d.fs_ops.is_null());
    }
}
