//! Data files: one path opened twice, with O_DIRECT for the timed I/O and without it for the
//! few bytes O_DIRECT cannot move (an unaligned tail) and for setup and read-back.
//!
//! Linux keeps the page cache coherent between the two descriptors: O_DIRECT writes invalidate
//! cached pages of their range, and an fdatasync on either descriptor flushes the inode.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, FileOp, Result};
use crate::io::owned::{self, kind_of, Create, Role, Spec};

/// Whether a file is opened to be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Opened read-only; the file must exist.
    Read,
    /// Opened read-write, created if missing.
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
    /// This open created the file (it did not exist before).
    created: bool,
}

impl DataFile {
    /// Opens `path`. With `direct`, the I/O descriptor has O_DIRECT. Writing opens read-write
    /// and creates the file if missing (mode 0644); reading needs the file to exist.
    ///
    /// Never through a symbolic link, and only a regular file; a file to be written must be
    /// owned by this user (the effective uid) and have one name. Refusals are
    /// [`Error::UnsafeFile`], naming the path and why.
    pub fn open(path: &Path, access: Access, direct: bool) -> Result<DataFile> {
        Self::open_as(path, access, direct, Role::Data)
    }

    /// [`DataFile::open`] for a file of `role`: the swap store opens its `data.bin` as
    /// [`Role::Store`] (this user's, one link, even to read).
    pub fn open_as(path: &Path, access: Access, direct: bool, role: Role) -> Result<DataFile> {
        let write = access == Access::Write;
        let spec = Spec {
            write,
            create: if write { Create::IfMissing } else { Create::No },
            extra: 0,
            role,
        };
        let (buffered, created) = owned::open(path, spec)?;
        let opened = if direct {
            owned::reopen(path, &buffered, write, libc::O_DIRECT, role).and_then(|f| {
                let align = dio_alignment(&f).map_err(|e| Error::file(FileOp::Stat, path, e))?;
                Ok((Some(f), align))
            })
        } else {
            Ok((None, 1))
        };
        let (direct, dio_align) = match opened {
            Ok(d) => d,
            Err(e) => {
                if created {
                    owned::remove_created(path, &buffered);
                }
                return Err(e);
            }
        };
        Ok(DataFile {
            path: path.to_path_buf(),
            direct,
            buffered,
            dio_align,
            created,
        })
    }

    /// Whether this open created the file.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Removes the file, if (and only if) this open created it and the path still names the
    /// same file: what a run does with the files it made when it fails before using them.
    pub fn remove_if_created(&self) {
        if self.created {
            owned::remove_created(&self.path, &self.buffered);
        }
    }

    /// Blocks allocated to the file (st_blocks x 512).
    pub fn allocated_bytes(&self) -> Result<u64> {
        self.buffered
            .metadata()
            .map(|m| m.blocks() * 512)
            .map_err(|e| Error::file(FileOp::Stat, &self.path, e))
    }

    /// The statfs type of the filesystem holding the file.
    pub fn fs_magic(&self) -> std::io::Result<i64> {
        crate::io::sys::fs_magic(self.buffered.as_raw_fd())
    }

    /// The path the file was opened under (errors name it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Offset and length alignment O_DIRECT needs on this file (1 when opened buffered).
    pub fn dio_align(&self) -> u64 {
        self.dio_align
    }

    /// Whether an O_DIRECT descriptor is open (timed I/O bypasses the page cache).
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

    /// Whether the file's current length is 0; errors as [`DataFile::len`].
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
        let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(Error::file(
                FileOp::Resize,
                &self.path,
                std::io::Error::from_raw_os_error(libc::EFBIG),
            ));
        };
        // SAFETY: fallocate only reads its integer arguments and acts on our own descriptor.
        let rc = unsafe { libc::fallocate(self.buffered.as_raw_fd(), mode, off, n) };
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

/// A name no other process can guess: `.{base}.{pid}.{random}.tmp`.
fn private_name(base: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!(".{base}.{}.{:016x}.tmp", std::process::id(), h.finish())
}

/// Creates a new file with a private name in `dir` (O_CREAT | O_EXCL | O_NOFOLLOW, so it is
/// never an existing file or a link), with `mode` less the umask. Returns it and its path.
fn create_private(dir: &Path, base: &str, mode: u32) -> std::io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..8 {
        let p = dir.join(private_name(base));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
        {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EEXIST)))
}

/// The directory a result file goes into, and its file name.
fn split_result_path(path: &Path) -> std::io::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "names no file"))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok((dir, name))
}

/// Checks, before any work, that a result file can be written to `path` as
/// [`write_atomic`] will: `path` is not a directory, and a private file can be created (and is
/// removed again) in its directory. Changes nothing that is there.
pub fn check_result_path(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    let (dir, name) = split_result_path(path)?;
    let (f, tmp) = create_private(&dir, &name, 0o644)?;
    drop(f);
    remove_created_path(&tmp);
    Ok(())
}

fn remove_created_path(p: &Path) {
    let _ = std::fs::remove_file(p);
}

/// Writes a result file atomically: the bytes go into a private new file in the same
/// directory (created exclusively, never through a link), which is fsynced and then renamed
/// over `path` (replacing a file or a symbolic link there, never writing through it), and the
/// directory is fsynced. On a failure before the rename the private file is removed and
/// `path` is as it was; a failing directory fsync after it is reported although `path`
/// already holds the complete new file. Never a truncated or empty result.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (dir, name) = split_result_path(path).map_err(|e| Error::file(FileOp::Create, path, e))?;
    let (mut f, tmp) =
        create_private(&dir, &name, 0o644).map_err(|e| Error::file(FileOp::Create, path, e))?;
    let written = {
        use std::io::Write;
        f.write_all(bytes).and_then(|_| f.sync_all())
    };
    drop(f);
    if let Err(e) = written {
        remove_created_path(&tmp);
        return Err(Error::file(FileOp::Write, path, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        remove_created_path(&tmp);
        return Err(Error::file(FileOp::Write, path, e));
    }
    // The rename is durable once the directory is; a filesystem that cannot sync a directory
    // (EINVAL) keeps it as it keeps any rename.
    let synced = File::open(&dir).and_then(|d| d.sync_all());
    match synced {
        Err(e) if e.raw_os_error() != Some(libc::EINVAL) => Err(Error::file(FileOp::Sync, &dir, e)),
        _ => Ok(()),
    }
}

/// Reads a whole input file (a config, a saved result) as text. Symbolic links are followed
/// (reading changes nothing), but the file must be a regular one: a FIFO, socket or device is
/// refused at once (it is opened without blocking and checked before any read).
pub fn read_regular(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let mode = f.metadata()?.mode();
    if mode & libc::S_IFMT == libc::S_IFDIR {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    if mode & libc::S_IFMT != libc::S_IFREG {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", kind_of(mode)),
        ));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// A scratch file for a probe (`gdswap check`'s O_DIRECT test), opened with O_DIRECT: an
/// unnamed O_TMPFILE where the filesystem has them, else a new file with a private name
/// (created exclusively, never through a link), removed when dropped. Nothing that was there
/// before is ever opened.
#[derive(Debug)]
pub struct ScratchFile {
    file: File,
    named: Option<PathBuf>,
    dio_align: u64,
}

impl ScratchFile {
    /// Creates a scratch file in `dir` opened with O_DIRECT; errors when `dir` refuses it.
    pub fn create_direct(dir: &Path) -> std::io::Result<ScratchFile> {
        let tmp = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_DIRECT)
            .open(dir);
        match tmp {
            Ok(file) => {
                let dio_align = dio_alignment(&file)?;
                return Ok(ScratchFile {
                    file,
                    named: None,
                    dio_align,
                });
            }
            // No O_TMPFILE here (EOPNOTSUPP; EISDIR on kernels without it): a named file.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EISDIR)
                ) => {}
            Err(e) => return Err(e),
        }
        let (plain, path) = create_private(dir, "gdswap-check", 0o600)?;
        let scratch = ScratchFile {
            file: plain,
            named: Some(path.clone()),
            dio_align: 1,
        };
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_NOFOLLOW)
            .open(&path)?;
        let (a, b) = (direct.metadata()?, scratch.file.metadata()?);
        if a.dev() != b.dev() || a.ino() != b.ino() {
            return Err(std::io::Error::other(
                "the scratch file was replaced while being opened",
            ));
        }
        let dio_align = dio_alignment(&direct)?;
        let mut scratch = scratch;
        // The plain descriptor is no longer needed; the name is still removed on drop.
        scratch.file = direct;
        scratch.dio_align = dio_align;
        Ok(scratch)
    }

    /// O_DIRECT offset and length alignment.
    pub fn dio_align(&self) -> u64 {
        self.dio_align
    }

    /// One `pread` at `offset`: bytes read, possibly fewer than `buf.len()`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    /// One `pwrite` at `offset`: bytes written, possibly fewer than `buf.len()`.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        self.file.write_at(buf, offset)
    }

    /// Whether the file has a name (no O_TMPFILE here).
    pub fn is_named(&self) -> bool {
        self.named.is_some()
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Some(p) = &self.named {
            owned::remove_created(p, &self.file);
        }
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
    fn write_atomic_replaces_a_link_never_writes_through_it() {
        let dir = crate::testutil::scratch_dir();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let out = dir.path().join("out.json");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        check_result_path(&out).unwrap();
        write_atomic(&out, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&out).unwrap().is_file());
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        // No private file is left behind.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["out.json", "victim"]);
        // A directory in the way is refused by the check, naming the path.
        let e = check_result_path(dir.path()).unwrap_err().to_string();
        assert!(e.contains("Is a directory"), "{e}");
    }

    #[test]
    fn scratch_file_has_no_guessable_name_and_leaves_nothing() {
        let dir = crate::testutil::scratch_dir();
        {
            let f = ScratchFile::create_direct(dir.path()).unwrap();
            assert!(f.dio_align() >= 1);
            let names = std::fs::read_dir(dir.path()).unwrap().count();
            assert_eq!(names, usize::from(f.is_named()));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn read_regular_refuses_a_fifo_at_once() {
        let dir = crate::testutil::scratch_dir();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path; mkfifo only reads it.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&p).unwrap_err().to_string();
        assert_eq!(e, "it is a FIFO, not a regular file");
        let e = DataFile::open(&p, Access::Read, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("refusing ") && e.contains("it is a FIFO"),
            "{e}"
        );
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
