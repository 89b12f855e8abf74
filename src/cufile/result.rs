//! Turning what cuFile returns into gdswap errors.
//!
//! cuFile has three return conventions, and a caller that checks one of them the wrong way
//! reports success for a failed transfer or a garbage byte count:
//! - `CUfileError_t` by value (most calls): `err` is a `CUfileOpError` (0 = success); when it is
//!   5011 (`CU_FILE_CUDA_DRIVER_ERROR`) the CUDA driver's `CUresult` is in `cu_err`;
//! - `ssize_t` (`cuFileRead`/`cuFileWrite`): bytes done (possibly fewer than asked: the caller
//!   loops), or -1 with `errno` set, or the negated `CUfileOpError` for other failures;
//! - `size_t ret` of a batch event (`CUfileIOEvents_t`): bytes done, or a negative error stored
//!   in an unsigned field, negated `CUfileOpError` or negated errno (there is no errno to read).
//!
//! [`decode`] is the one function that reads all three ([`Returned`]) and gives the bytes done
//! or a [`CuFileError`] carrying the call, the file, the offset and length, and the failure with
//! the code's C name and number (unknown codes by number: other library versions return codes
//! this build does not know). A negative value that is neither -1 nor in the cuFile range is not
//! documented; it is read as a negated errno (the kernel's convention) and said to be unexpected.

use std::io;
use std::path::Path;

use gdswap_ffi::{CUfileError_t, CUfileOpError, CUFILEOP_BASE_ERR};

use crate::error::{Error, Result};

/// What a cuFile call returned, in one of its conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// A `CUfileError_t` (success is 0 bytes done).
    Status(CUfileError_t),
    /// The `ssize_t` of `cuFileRead`/`cuFileWrite`, with `errno` as read right after the call
    /// (used only when the value is -1).
    Bytes {
        /// Bytes done, or -1 (see `errno`), or a negative `CUfileOpError`.
        ret: isize,
        /// `errno` right after the call.
        errno: i32,
    },
    /// The `ret` of a batch `CUfileIOEvents_t`.
    Event {
        /// Bytes done by the entry.
        ret: usize,
    },
}

pub use crate::types::cufile_error::{CuFileError, Failure};

/// The context of one call, for the error it may become.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The cuFile function's name, e.g. `cuFileRead`.
    pub call: &'static str,
    /// The file the call was about, if any.
    pub path: Option<&'a Path>,
    /// The file offset the call started at, if any.
    pub offset: Option<u64>,
    /// Bytes the call was asked to move, if any.
    pub len: Option<u64>,
}

impl<'a> Call<'a> {
    /// A call with no file (driver calls, registrations of memory).
    pub fn new(call: &'static str) -> Self {
        Call {
            call,
            path: None,
            offset: None,
            len: None,
        }
    }

    /// The file, offset and length a transfer was for.
    pub fn at(self, path: &'a Path, offset: u64, len: u64) -> Self {
        Call {
            path: Some(path),
            offset: Some(offset),
            len: Some(len),
            ..self
        }
    }

    /// A call about a file as a whole (handle registration).
    pub fn on(self, path: &'a Path) -> Self {
        Call {
            path: Some(path),
            ..self
        }
    }

    /// `Ok(())` when a `CUfileError_t` says success.
    pub fn check(self, status: CUfileError_t) -> Result<()> {
        decode(Returned::Status(status), self).map(|_| ())
    }

    /// Bytes done by `cuFileRead`/`cuFileWrite`; `errno` as read right after the call.
    pub fn bytes(self, ret: isize, errno: i32) -> Result<usize> {
        decode(Returned::Bytes { ret, errno }, self)
    }

    /// The error for `failure` in this call's context (for failures no return value holds,
    /// such as a batch entry's status).
    pub fn failed(self, failure: Failure) -> Error {
        self.error(failure)
    }

    fn error(self, failure: Failure) -> Error {
        Error::CuFile(Box::new(CuFileError {
            call: self.call,
            path: self.path.map(Path::to_path_buf),
            offset: self.offset,
            len: self.len,
            failure,
        }))
    }
}

/// Decodes any of cuFile's return conventions: the bytes done (0 for a successful status), or
/// the error with `call`'s context.
pub fn decode(returned: Returned, call: Call<'_>) -> Result<usize> {
    let negative = match returned {
        Returned::Status(s) => {
            return match s.err {
                CUfileOpError::SUCCESS => Ok(0),
                CUfileOpError::CUDA_DRIVER_ERROR => Err(call.error(Failure::Cuda(Some(s.cu_err)))),
                e => Err(call.error(Failure::Op(e))),
            };
        }
        _ if non_negative(returned) => return Ok(bytes_of(returned)),
        Returned::Bytes { ret: -1, errno } => {
            return Err(call.error(if errno == 0 {
                Failure::NoErrno
            } else {
                Failure::Os(io::Error::from_raw_os_error(errno))
            }));
        }
        Returned::Bytes { ret, .. } => ret.unsigned_abs(),
        Returned::Event { ret } => (ret as isize).unsigned_abs(),
    };
    let failure = match u32::try_from(negative) {
        Ok(code) if code > CUFILEOP_BASE_ERR => match CUfileOpError(code) {
            CUfileOpError::CUDA_DRIVER_ERROR => Failure::Cuda(None),
            e => Failure::Op(e),
        },
        Ok(errno) if errno < CUFILEOP_BASE_ERR => {
            Failure::Os(io::Error::from_raw_os_error(errno as i32))
        }
        _ => Failure::Os(io::Error::other(format!(
            "unexpected return value -{negative}"
        ))),
    };
    Err(call.error(failure))
}

fn non_negative(r: Returned) -> bool {
    match r {
        Returned::Bytes { ret, .. } => ret >= 0,
        Returned::Event { ret } => (ret as isize) >= 0,
        Returned::Status(_) => false,
    }
}

fn bytes_of(r: Returned) -> usize {
    match r {
        Returned::Bytes { ret, .. } => ret as usize,
        Returned::Event { ret } => ret,
        Returned::Status(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gdswap_ffi::CUresult;

    fn status(err: u32, cu_err: i32) -> Returned {
        Returned::Status(CUfileError_t {
            err: CUfileOpError(err),
            cu_err: CUresult(cu_err),
        })
    }

    fn message(r: Result<usize>) -> String {
        r.unwrap_err().to_string()
    }

    fn read_at() -> Call<'static> {
        Call::new("cuFileRead").at(Path::new("/data/t.bin"), 4096, 1 << 20)
    }

    #[test]
    fn success_and_bytes_done() {
        assert_eq!(
            decode(status(0, 0), Call::new("cuFileDriverOpen")).unwrap(),
            0
        );
        assert_eq!(read_at().bytes(1 << 20, 0).unwrap(), 1 << 20);
        // Short counts are returned as they are: the caller continues the transfer.
        assert_eq!(read_at().bytes(512, 0).unwrap(), 512);
        assert_eq!(read_at().bytes(0, 0).unwrap(), 0);
        assert_eq!(
            decode(Returned::Event { ret: 4096 }, read_at()).unwrap(),
            4096
        );
    }

    #[test]
    fn status_with_op_error_names_code_and_number() {
        let m = message(decode(
            status(5008, 0),
            Call::new("cuFileHandleRegister").on(Path::new("/data/t.bin")),
        ));
        assert!(
            m.starts_with("cuFileHandleRegister failed: /data/t.bin: CU_FILE_IO_NOT_SUPPORTED (5008): GPUDirect Storage not supported on current file (this file is not on a GPUDirect path"),
            "{m}"
        );
        let m = message(decode(status(5033, 0), Call::new("cuFileDriverOpen")));
        assert!(
            m.starts_with("cuFileDriverOpen failed: CU_FILE_NVFS_SETUP_ERROR (5033)"),
            "{m}"
        );
    }

    #[test]
    fn status_5011_carries_the_cuda_result() {
        let e = decode(status(5011, 100), Call::new("cuFileBufRegister")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cuFileBufRegister failed: CU_FILE_CUDA_DRIVER_ERROR (5011): CUDA driver error 100 (CUDA_ERROR_NO_DEVICE)"
        );
        let Error::CuFile(inner) = &e else {
            panic!("not a cuFile error: {e:?}")
        };
        assert!(matches!(inner.failure, Failure::Cuda(Some(CUresult(100)))));
        assert_eq!(
            inner.failure.op_error(),
            Some(CUfileOpError::CUDA_DRIVER_ERROR)
        );
        let m = message(decode(status(5011, 12345), Call::new("cuFileBufRegister")));
        assert!(m.ends_with("CUDA driver error 12345"), "{m}");
    }

    #[test]
    fn unknown_codes_print_by_number() {
        let m = message(decode(status(5099, 0), Call::new("cuFileDriverOpen")));
        assert_eq!(m, "cuFileDriverOpen failed: unknown cuFile error 5099");
        let m = message(read_at().bytes(-5032, 0));
        assert_eq!(
            m,
            "cuFileRead failed: /data/t.bin at offset 4096 (length 1048576): unknown cuFile error 5032"
        );
    }

    #[test]
    fn minus_one_reads_errno() {
        let e = read_at().bytes(-1, libc::EIO).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "cuFileRead failed: /data/t.bin at offset 4096 (length 1048576): {}",
                io::Error::from_raw_os_error(libc::EIO)
            )
        );
        let Error::CuFile(inner) = &e else { panic!() };
        assert!(matches!(&inner.failure, Failure::Os(io) if io.raw_os_error() == Some(libc::EIO)));
        assert!(std::error::Error::source(inner.as_ref()).is_some());
        let m = message(read_at().bytes(-1, 0));
        assert!(m.ends_with("returned -1 without setting errno"), "{m}");
    }

    #[test]
    fn negative_op_errors_from_read_and_write() {
        let m = message(
            Call::new("cuFileWrite")
                .at(Path::new("/f"), 0, 8)
                .bytes(-5024, libc::EIO),
        );
        assert_eq!(
            m,
            "cuFileWrite failed: /f at offset 0 (length 8): CU_FILE_MEMORY_NOT_REGISTERED (5024): device pointer lookup failure"
        );
        // errno is not consulted for op errors (it may hold anything).
        assert!(!m.contains("Input/output"));
        let m = message(read_at().bytes(-5011, 0));
        assert!(
            m.ends_with(
                "CU_FILE_CUDA_DRIVER_ERROR (5011): CUDA driver error (its code was not reported)"
            ),
            "{m}"
        );
    }

    #[test]
    fn batch_event_negative_values() {
        let ev = |v: isize| Returned::Event { ret: v as usize };
        let m = message(decode(ev(-5008), read_at()));
        assert!(m.contains("CU_FILE_IO_NOT_SUPPORTED (5008)"), "{m}");
        let m = message(decode(ev(-(libc::EIO as isize)), read_at()));
        assert!(
            m.ends_with(&io::Error::from_raw_os_error(libc::EIO).to_string()),
            "{m}"
        );
    }

    #[test]
    fn undocumented_negatives_are_errno_or_unexpected() {
        let m = message(read_at().bytes(-(libc::ENOSPC as isize), 0));
        assert!(
            m.ends_with(&io::Error::from_raw_os_error(libc::ENOSPC).to_string()),
            "{m}"
        );
        // Exactly the base (5000) is no cuFile code, and huge values are no errno.
        let m = message(read_at().bytes(-5000, 0));
        assert!(m.ends_with("unexpected return value -5000"), "{m}");
        let m = message(read_at().bytes(isize::MIN, 0));
        assert!(m.contains("unexpected return value"), "{m}");
    }
}
