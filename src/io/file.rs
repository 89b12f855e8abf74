//! Data files: one path opened twice, with O_DIRECT for the timed I/O and without it for the
//! few bytes O_DIRECT cannot move (an unaligned tail) and for setup and read-back.
//!
//! Linux keeps the page cache coherent between the two descriptors: O_DIRECT writes invalidate
//! cached pages of their range, and an fdatasync on either descriptor flushes the inode.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, FileOp, Result};

/// Whether a file is opened to be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The alignment assumed when the filesystem does not say (statx without STATX_DIOALIGN).
pub const DEFAULT_DIO_ALIGN: u64 = 4096;

/// A data file open for a run.
#[derive(Debug)]
pub struct DataFile {
    path: PathBuf,
    direct: Option<File>,
    buffered: File,
    dio_align: u64,
}

impl DataFile {
    /// Opens `path`. With `direct`, the I/O descriptor has O_DIRECT. Writing opens read-write
    /// and creates the file if missing (mode 0644); reading needs the file to exist.
    pub fn open(path: &Path, access: Access, direct: bool) -> Result<DataFile> {
        let options = |flags: i32| {
            let mut o = OpenOptions::new();
            o.read(true).custom_flags(flags);
            if access == Access::Write {
                o.write(true).create(true);
            }
            o
        };
        let op = if access == Access::Write {
            FileOp::Create
        } else {
            FileOp::Open
        };
        let buffered = options(0)
            .open(path)
            .map_err(|e| Error::file(op, path, e))?;
        if buffered.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Error::file(
                op,
                path,
                std::io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        let (direct, dio_align) = if direct {
            let f = options(libc::O_DIRECT)
                .open(path)
                .map_err(|e| Error::file(FileOp::Open, path, e))?;
            let align = dio_alignment(&f).map_err(|e| Error::file(FileOp::Stat, path, e))?;
            (Some(f), align)
        } else {
            (None, 1)
        };
        Ok(DataFile {
            path: path.to_path_buf(),
            direct,
            buffered,
            dio_align,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset and length alignment O_DIRECT needs on this file (1 when opened buffered).
    pub fn dio_align(&self) -> u64 {
        self.dio_align
    }

    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The descriptor for timed I/O: O_DIRECT unless the file was opened buffered.
    pub fn io_fd(&self) -> RawFd {
        self.direct.as_ref().unwrap_or(&self.buffered).as_raw_fd()
    }

    /// The descriptor without O_DIRECT, for unaligned tails.
    pub fn buffered_fd(&self) -> RawFd {
        self.buffered.as_raw_fd()
    }

    /// The file's current length.
    pub fn len(&self) -> Result<u64> {
        self.buffered
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::file(FileOp::Stat, &self.path, e))
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Sets the length exactly: no stale bytes remain past `len`.
    pub fn set_len(&self, len: u64) -> Result<()> {
        self.buffered
            .set_len(len)
            .map_err(|e| Error::file(FileOp::Resize, &self.path, e))
    }

    /// Turns `[offset, offset + len)` into zeroes without writing them: punches a hole (the
    /// file keeps its length), or, where the filesystem cannot, writes zeroes.
    pub fn zero_range(&self, offset: u64, len: u64) -> Result<()> {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate only reads its integer arguments and acts on our own descriptor.
        let rc =
            unsafe { libc::fallocate(self.buffered.as_raw_fd(), mode, offset as i64, len as i64) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(Error::file(FileOp::Resize, &self.path, e));
        }
        const CHUNK: u64 = 8 << 20;
        let zeroes = vec![0u8; CHUNK.min(len) as usize];
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done) as usize;
            self.write_all_at(&zeroes[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Makes written data durable (fdatasync) and returns how long it took.
    pub fn sync_data(&self) -> Result<Duration> {
        let t = Instant::now();
        self.buffered
            .sync_data()
            .map_err(|e| Error::file(FileOp::Sync, &self.path, e))?;
        Ok(t.elapsed())
    }

    /// Asks the kernel to forget cached pages of this file, so a read-back comes from the
    /// device rather than from memory (advisory; dirty pages must be synced first).
    pub fn forget_cached_pages(&self) {
        // SAFETY: posix_fadvise only reads its integer arguments; a failure is harmless.
        unsafe { libc::posix_fadvise(self.buffered.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }

    /// One pread for a request: through O_DIRECT unless `tail` (or the file is buffered).
    /// Returns the byte count, which may be short; the caller continues or fails.
    pub fn read_at(&self, buf: &mut [u8], offset: u64, tail: bool) -> std::io::Result<usize> {
        self.request_file(tail).read_at(buf, offset)
    }

    /// One pwrite for a request, like [`DataFile::read_at`].
    pub fn write_at(&self, buf: &[u8], offset: u64, tail: bool) -> std::io::Result<usize> {
        self.request_file(tail).write_at(buf, offset)
    }

    fn request_file(&self, tail: bool) -> &File {
        match (&self.direct, tail) {
            (Some(d), false) => d,
            _ => &self.buffered,
        }
    }

    /// Reads exactly `buf.len()` bytes at `offset` through the buffered descriptor.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.buffered.read_exact_at(buf, offset).map_err(|e| {
            let e = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                std::io::Error::new(e.kind(), "file ended early")
            } else {
                e
            };
            Error::io(FileOp::Read, &self.path, offset, buf.len() as u64, e)
        })
    }

    /// Writes all of `buf` at `offset` through the buffered descriptor.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.buffered
            .write_all_at(buf, offset)
            .map_err(|e| Error::io(FileOp::Write, &self.path, offset, buf.len() as u64, e))
    }
}

impl DataFile {
    /// A data file from descriptors the caller opened and checked itself (the swap store
    /// opens its `data.bin` through `io::owned`): `buffered`, and `direct` with O_DIRECT,
    /// both of the file at `path`.
    pub fn from_files(path: &Path, buffered: File, direct: Option<File>) -> Result<DataFile> {
        let dio_align = match &direct {
            Some(f) => dio_alignment(f).map_err(|e| Error::file(FileOp::Stat, path, e))?,
            None => 1,
        };
        Ok(DataFile {
            path: path.to_path_buf(),
            direct,
            buffered,
            dio_align,
        })
    }
}

/// O_DIRECT offset alignment from statx(STATX_DIOALIGN) (Linux 6.1+), else the default.
fn dio_alignment(f: &File) -> std::io::Result<u64> {
    let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: statx with AT_EMPTY_PATH and an empty C string stats the open descriptor and
    // writes one `statx` struct into the pointer we pass.
    let rc = unsafe {
        libc::statx(
            f.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            stx.as_mut_ptr(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOSYS) {
            Ok(DEFAULT_DIO_ALIGN)
        } else {
            Err(e)
        };
    }
    // SAFETY: statx succeeded and initialised the struct.
    let stx = unsafe { stx.assume_init() };
    if stx.stx_mask & libc::STATX_DIOALIGN != 0 && stx.stx_dio_offset_align != 0 {
        Ok(u64::from(
            stx.stx_dio_offset_align.max(stx.stx_dio_mem_align),
        ))
    } else {
        Ok(DEFAULT_DIO_ALIGN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_write_then_read_back() {
        let dir = crate::testutil::scratch_dir();
        let p = dir.path().join("f");
        let f = DataFile::open(&p, Access::Write, true).unwrap();
        assert!(f.is_direct());
        assert!(f.dio_align().is_power_of_two() && f.dio_align() >= 512);
        f.write_all_at(b"hello", 10).unwrap();
        f.set_len(15).unwrap();
        f.sync_data().unwrap();
        let r = DataFile::open(&p, Access::Read, false).unwrap();
        assert_eq!(r.len().unwrap(), 15);
        let mut b = [0u8; 5];
        r.read_exact_at(&mut b, 10).unwrap();
        assert_eq!(&b, b"hello");
        let err = r.read_exact_at(&mut b, 12).unwrap_err().to_string();
        assert!(
            err.contains("at offset 12") && err.contains("ended early"),
            "{err}"
        );
    }

    #[test]
    fn zero_range_clears_exactly_the_range() {
        let dir = crate::testutil::scratch_dir();
        let p = dir.path().join("z");
        let f = DataFile::open(&p, Access::Write, false).unwrap();
        f.write_all_at(&[7u8; 3 * 4096], 0).unwrap();
        f.zero_range(4096, 4096).unwrap();
        let mut b = vec![0u8; 3 * 4096];
        f.read_exact_at(&mut b, 0).unwrap();
        assert!(b[..4096].iter().all(|&x| x == 7));
        assert!(b[4096..8192].iter().all(|&x| x == 0));
        assert!(b[8192..].iter().all(|&x| x == 7));
        assert_eq!(f.len().unwrap(), 3 * 4096);
    }

    #[test]
    fn missing_file_names_path() {
        let err =
            DataFile::open(Path::new("/nonexistent/gdswap/x"), Access::Read, true).unwrap_err();
        let s = err.to_string();
        assert!(
            s.contains("/nonexistent/gdswap/x") && s.contains("open failed"),
            "{s}"
        );
    }
}
