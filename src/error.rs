//! The library's error type.
//!
//! Every error says what was being done, to which path, and where: an I/O error carries the
//! operation, the file, the offset and the length (as glommio does), so a failed run points at
//! the request that failed. Limits that need an administrator (memlock, io_uring disabled) get
//! variants of their own with the fix in the message. Nothing below the CLI prints or exits.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::size::Bytes;

/// A transfer direction or file operation, for error messages and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    Read,
    Write,
    Open,
    Create,
    Resize,
    Sync,
    Stat,
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileOp::Read => "read",
            FileOp::Write => "write",
            FileOp::Open => "open",
            FileOp::Create => "create",
            FileOp::Resize => "resize",
            FileOp::Sync => "fdatasync",
            FileOp::Stat => "stat",
        })
    }
}

/// Where a verification found the first wrong byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    pub path: PathBuf,
    /// Offset in the file of the first byte that differs.
    pub offset: u64,
    pub expected: u8,
    pub found: u8,
    /// What the block header at that place says, decoded, when it could be.
    pub header_note: String,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {}: expected byte 0x{:02x}, found 0x{:02x}{}",
            self.path.display(),
            self.offset,
            self.expected,
            self.found,
            self.header_note
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed or came back short where that is an error.
    #[error("{op} failed: {} at offset {offset} (length {len}): {source}", path.display())]
    Io {
        op: FileOp,
        path: PathBuf,
        offset: u64,
        len: u64,
        #[source]
        source: io::Error,
    },
    /// A whole-file operation failed (open, create, fdatasync, ...).
    #[error("{op} failed: {}: {source}{hint}", path.display())]
    File {
        op: FileOp,
        path: PathBuf,
        hint: String,
        #[source]
        source: io::Error,
    },
    /// A flag has a value gdswap cannot run with. `flag` names it as typed on the command line.
    #[error("{flag}: {message}")]
    InvalidOption { flag: &'static str, message: String },
    /// The file exists but is shorter than the range the run reads.
    #[error("{}: file holds {} bytes but the run reads up to byte {needed}; lower --size or write the file first (gdswap run --op write --file ...)", path.display(), .actual)]
    FileTooSmall {
        path: PathBuf,
        actual: u64,
        needed: u64,
    },
    /// RLIMIT_MEMLOCK is below what locked or registered memory needs.
    #[error("memlock limit too low: {what} needs {} locked, RLIMIT_MEMLOCK is {}; raise it (ulimit -l unlimited, or memlock in /etc/security/limits.conf) or {hint}", Bytes(*needed), Bytes(*limit))]
    Memlock {
        what: String,
        needed: u64,
        limit: u64,
        hint: &'static str,
    },
    /// Not enough memory or disk for what was asked.
    #[error("{0}")]
    Resources(String),
    /// A backend cannot run on this machine; `reason` says why and how to fix it.
    #[error("backend '{backend}' unavailable: {reason}")]
    Unavailable { backend: String, reason: String },
    /// A CUDA driver call failed; `op` names the call and what it was for.
    #[error("{op} failed: {message}")]
    Cuda { op: String, message: String },
    /// Data read back differs from the pattern.
    #[error("verify failed: {0}")]
    Verify(Box<VerifyFailure>),
    /// Dropping the page cache was asked for and is not permitted.
    #[error("--drop-caches: cannot write /proc/sys/vm/drop_caches: {0} (needs root; run without --drop-caches, or as root)")]
    DropCaches(io::Error),
    /// Another worker failed first; this one stopped at a barrier.
    #[error("stopped because another worker failed")]
    Aborted,
    /// A cuFile call failed: the call, file, offset and the code's name and number.
    #[error(transparent)]
    CuFile(Box<crate::types::CuFileError>),
    /// A worker thread panicked: a bug in gdswap.
    #[error("worker thread {0} panicked (a bug in gdswap; please report it)")]
    WorkerPanicked(usize),
    /// An error inside one step of a larger job (a compare round, a sweep point), saying which.
    #[error("{context}: {source}")]
    Within {
        context: String,
        #[source]
        source: Box<Error>,
    },
    /// A peer tool (fio, gdsio) failed, or printed something gdswap cannot read.
    #[error("peer {tool}: {message}")]
    Peer { tool: String, message: String },
    /// Stopped on request (Ctrl-C) between two measurements.
    #[error("interrupted")]
    Interrupted,
    /// A swap store operation on one tensor failed or was refused; the message says why.
    #[error("tensor '{tensor}': {message}")]
    Swap { tensor: String, message: String },
    /// A path gdswap refuses to open as a data or result file: a symbolic link, not a regular
    /// file, or (to be written) a file this user does not own; `reason` says which.
    #[error("refusing {}: {reason}", path.display())]
    UnsafeFile { path: PathBuf, reason: String },
    /// A saved results or config file gdswap cannot use; the message names the flag that read it.
    #[error("{flag} {}: {message}", path.display())]
    BadFile {
        flag: &'static str,
        path: PathBuf,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(
        op: FileOp,
        path: impl Into<PathBuf>,
        offset: u64,
        len: u64,
        source: io::Error,
    ) -> Self {
        Error::Io {
            op,
            path: path.into(),
            offset,
            len,
            source,
        }
    }

    pub fn file(op: FileOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let hint = match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
                " (not writable or readable by this user: pick another --dir/--file)".to_string()
            }
            Some(libc::ENOENT) => " (no such file: check the path)".to_string(),
            Some(libc::ENOSPC) => " (no space left on the filesystem: free space or lower --size)".to_string(),
            Some(libc::EINVAL) if op == FileOp::Open => {
                " (this filesystem refuses O_DIRECT: use another path, or --buffered to measure the page cache)".to_string()
            }
            _ => String::new(),
        };
        Error::File {
            op,
            path: path.into(),
            hint,
            source,
        }
    }

    /// The error for a request that moved zero bytes: the end of the file on a read, a device
    /// that accepted nothing on a write.
    pub fn nothing_moved(
        op: impl Into<FileOp>,
        path: &std::path::Path,
        offset: u64,
        remaining: usize,
    ) -> Self {
        let op = op.into();
        let source = match op {
            FileOp::Read => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "end of file: the file is shorter than the range",
            ),
            _ => io::Error::new(io::ErrorKind::WriteZero, "wrote zero bytes"),
        };
        Error::io(op, path, offset, remaining as u64, source)
    }

    /// A stable class of the error, for records (`ErrorRecord::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } | Error::File { .. } => "io",
            Error::InvalidOption { .. }
            | Error::FileTooSmall { .. }
            | Error::Memlock { .. }
            | Error::DropCaches(_)
            | Error::BadFile { .. }
            | Error::UnsafeFile { .. } => "refused",
            Error::Resources(_) => "resources",
            Error::Unavailable { .. } => "unavailable",
            Error::Cuda { .. } => "cuda",
            Error::Verify(_) => "verify",
            Error::CuFile(_) => "cufile",
            Error::Peer { .. } => "peer",
            Error::Interrupted => "interrupted",
            Error::Swap { .. } => "swap",
            Error::Aborted | Error::WorkerPanicked(_) => "internal",
            Error::Within { source, .. } => source.kind(),
        }
    }

    pub fn invalid(flag: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidOption {
            flag,
            message: message.into(),
        }
    }
}
