//! A failed cuFile call as a value: the call, the file, the offset and length, and the failure
//! with its numeric code (a `CUfileOpError`, the CUDA driver's `CUresult` behind 5011, or an
//! errno). A core type, so that [`crate::Error`] can hold it without naming the cuFile layer;
//! `cufile::result` fills it in (its one decoder of cuFile's return conventions) and
//! re-exports it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use gdswap_ffi::{CUfileOpError, CUresult};

/// Why a cuFile call failed.
#[derive(Debug)]
pub enum Failure {
    /// A `CUfileOpError` code (known or not) other than 5011.
    Op(CUfileOpError),
    /// `CU_FILE_CUDA_DRIVER_ERROR` (5011) and the CUDA driver's result (`None` when it came as a
    /// negative return value, which has no room for it).
    Cuda(Option<CUresult>),
    /// -1 with errno, or a negated errno.
    Os(io::Error),
    /// -1 with errno 0: the library said it failed without saying why.
    NoErrno,
}

impl Failure {
    /// The `CUfileOpError` behind the failure, if it was one (5011 included).
    pub fn op_error(&self) -> Option<CUfileOpError> {
        match self {
            Failure::Op(e) => Some(*e),
            Failure::Cuda(_) => Some(CUfileOpError::CUDA_DRIVER_ERROR),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Op(e) => {
                write!(f, "{e}")?;
                if let Some(d) = e.description() {
                    write!(f, ": {d}")?;
                }
                if let Some(h) = hint(*e) {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            Failure::Cuda(None) => write!(
                f,
                "{}: CUDA driver error (its code was not reported)",
                CUfileOpError::CUDA_DRIVER_ERROR
            ),
            Failure::Cuda(Some(r)) => {
                write!(
                    f,
                    "{}: CUDA driver error {}",
                    CUfileOpError::CUDA_DRIVER_ERROR,
                    r.0
                )?;
                if let Some(name) = cu_result_name(*r) {
                    write!(f, " ({name})")?;
                }
                Ok(())
            }
            Failure::Os(e) => write!(f, "{e}"),
            Failure::NoErrno => f.write_str("returned -1 without setting errno"),
        }
    }
}

/// What to do about the codes users meet most, in a few words.
fn hint(e: CUfileOpError) -> Option<&'static str> {
    Some(match e {
        CUfileOpError::DRIVER_NOT_INITIALIZED => {
            "nvidia-fs is not loaded and compat mode is off: load nvidia_fs or allow compat mode in cufile.json"
        }
        CUfileOpError::IO_NOT_SUPPORTED => {
            "this file is not on a GPUDirect path (filesystem, mount options or PCIe topology); with compat mode allowed its I/O would go through host memory"
        }
        CUfileOpError::NVFS_SETUP_ERROR => {
            "cuFile could not initialise: no usable CUDA driver (libcuda.so.1) or GPU, or nvidia-fs setup failed; cufile.log says which"
        }
        CUfileOpError::PLATFORM_NOT_SUPPORTED | CUfileOpError::DEVICE_NOT_SUPPORTED => {
            "this platform or GPU cannot do GPUDirect Storage"
        }
        CUfileOpError::DIO_NOT_SET => "the file must be opened with O_DIRECT",
        CUfileOpError::INVALID_FILE_OPEN_FLAG => {
            "cuFile takes O_DIRECT descriptors without O_NOFOLLOW or O_NONBLOCK in their flags"
        }
        CUfileOpError::CUDA_POINTER_INVALID | CUfileOpError::CUDA_MEMORY_TYPE_INVALID => {
            "the buffer is not CUDA device memory of the current context"
        }
        CUfileOpError::PERMISSION_DENIED => "no permission for the driver or the file",
        _ => return None,
    })
}

/// Names of the CUDA driver results cuFile passes on most often; others print by number.
fn cu_result_name(r: CUresult) -> Option<&'static str> {
    Some(match r.0 {
        0 => "CUDA_SUCCESS",
        1 => "CUDA_ERROR_INVALID_VALUE",
        2 => "CUDA_ERROR_OUT_OF_MEMORY",
        3 => "CUDA_ERROR_NOT_INITIALIZED",
        4 => "CUDA_ERROR_DEINITIALIZED",
        35 => "CUDA_ERROR_INSUFFICIENT_DRIVER",
        100 => "CUDA_ERROR_NO_DEVICE",
        101 => "CUDA_ERROR_INVALID_DEVICE",
        201 => "CUDA_ERROR_INVALID_CONTEXT",
        400 => "CUDA_ERROR_INVALID_HANDLE",
        700 => "CUDA_ERROR_ILLEGAL_ADDRESS",
        999 => "CUDA_ERROR_UNKNOWN",
        _ => return None,
    })
}

/// A failed cuFile call: which function, on which file, where, and why.
#[derive(Debug)]
pub struct CuFileError {
    /// The C function (`cuFileRead`).
    pub call: &'static str,
    /// The file, for calls on one.
    pub path: Option<PathBuf>,
    /// Byte offset in the file, for I/O calls.
    pub offset: Option<u64>,
    /// Bytes asked for, for I/O calls.
    pub len: Option<u64>,
    /// What the call returned, decoded (the code's name and number, or errno).
    pub failure: Failure,
}

impl fmt::Display for CuFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.call)?;
        if let Some(p) = &self.path {
            write!(f, ": {}", p.display())?;
        }
        if let Some(o) = self.offset {
            write!(f, " at offset {o}")?;
        }
        if let Some(l) = self.len {
            write!(f, " (length {l})")?;
        }
        write!(f, ": {}", self.failure)?;
        if self.call == "cuFileHandleRegister"
            && matches!(
                self.failure.op_error(),
                Some(CUfileOpError::HANDLE_NOT_REGISTERED | CUfileOpError::INTERNAL_ERROR)
            )
        {
            // 5027 seen with libcufile 1.15.1 on a VM, compat mode allowed or forced, on ext4
            // and tmpfs alike (bench-results/2026-12-04-gpu-checks-h200); 1.20 says 5027 and
            // 1.14.1 says 5030 for the same missing udev properties (tests/cufile_real_io.rs).
            // Gone once the disk had an entry in the udev database
            // (bench-results/2026-12-04-gpu-checks-h200-session8).
            f.write_str(REGISTER_5027)?;
        }
        Ok(())
    }
}

/// Why `cuFileHandleRegister` says 5027 (a code the header documents only for I/O on a handle
/// never registered; libcufile 1.14.1 says 5030, CU_FILE_INTERNAL_ERROR, for the same cause).
/// Established with real libcufile 1.15.1 (tests/cufile_real_io.rs, and
/// the same cufile.log lines on the H200 VM of bench-results/2026-12-04-gpu-checks-h200):
/// libcufile reads the file's block device from udev (through libudev.so.1, which it does
/// load there) and needs its ID_FS_USAGE and ID_FS_TYPE, which udevd's blkid rule records in
/// /run/udev/data; where udevd never ran they are missing ("udev property not found:
/// ID_FS_USAGE"), and a file on no block device of its own (tmpfs, overlayfs) has no udev
/// device at all ("error creating udev_device for block device"). With the properties there,
/// the same file registers and compat-mode I/O works. An unversioned libudev.so changes
/// nothing.
const REGISTER_5027: &str = " (cuFile could not set this file up, in compat mode too; \
its cufile.log says why: \"udev property not found: ID_FS_USAGE\" (or ID_FS_TYPE) or \"unable \
to get volume attributes\" means cuFile found no ID_FS_USAGE/ID_FS_TYPE for the file's block \
device in the udev database, /run/udev/data/b<major>:<minor>, which a VM or container without a \
udev daemon does not have (no /run/udev): on a host running udevd, `udevadm trigger \
--subsystem-match=block` as root records them; \"error creating udev_device for block device\" \
means the file is not on a block device (tmpfs, overlayfs); the bounce backend works there)";

impl std::error::Error for CuFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            Failure::Os(e) => Some(e),
            _ => None,
        }
    }
}
