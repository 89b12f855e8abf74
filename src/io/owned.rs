//! The one checked open for every file gdswap reads or writes in place: data files
//! (`io::file::DataFile`) and the swap store's own files (`data.bin`, `manifest.json`, its
//! temporary file, `lock`). No symlink is followed in the last component (O_NOFOLLOW), a FIFO
//! or device cannot block the open (O_NONBLOCK until the type is checked), and the opened
//! descriptor must be a regular file; one to be written (and every store file) must also be
//! owned by the effective uid and have one link (a hard link planted under gdswap's name would
//! let a write land in someone else's file). Refusals are [`Error::UnsafeFile`], one format:
//! `refusing PATH: what it is; the rule (what to do)`. Removal ([`remove_own`]) applies the
//! same checks to the name itself.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, FileOp, Message, Result, Setting};

/// How [`open`] treats a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// The file must exist.
    No,
    /// Created (mode 0644, before the umask) if missing; an existing one is opened as is,
    /// never truncated.
    IfMissing,
    /// Created; an existing file (or symlink) under the name is an error (O_EXCL).
    New,
}

/// Whose file is opened: decides whether a file only read must be this user's, and the advice
/// at the end of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A data file named by `--file`/`--dir`: owner and link count are checked when written.
    Data,
    /// A file of the swap store: always checked to be this user's, with one link.
    Store,
}

/// What to open: read-only or read-write (`write`), how a missing file is treated, and
/// `extra` open flags (O_DIRECT).
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Open read-write (else read-only).
    pub write: bool,
    /// How a missing file is treated.
    pub create: Create,
    /// Further `open` flags, or-ed in (e.g. `O_DIRECT`).
    pub extra: i32,
    /// Whose file it is (decides the ownership checks).
    pub role: Role,
}

/// Why a file was refused.
#[derive(Debug, Clone, Copy)]
enum Why {
    Symlink,
    /// Not a regular file; the `st_mode` (0 when unknown: an open that failed with ENXIO).
    Kind(u32),
    Foreign(u32),
    Links(u64),
    Exists,
    Replaced,
}

impl Why {
    /// What the file is, in words.
    fn what(self) -> String {
        match self {
            Why::Symlink => "it is a symbolic link".into(),
            Why::Kind(mode) => format!("it is {}, not a regular file", kind_of(mode)),
            Why::Foreign(uid) => format!(
                "it is owned by uid {uid}, not by this user (uid {})",
                euid()
            ),
            Why::Links(n) => format!("it has {n} hard links"),
            Why::Exists => "it already exists".into(),
            Why::Replaced => "it was replaced by another file while gdswap opened it".into(),
        }
    }

    /// The rule it breaks, and what to do, for an open.
    fn rule(self, role: Role) -> Message {
        use Role::{Data, Store};
        match (self, role) {
            (Why::Symlink, Data) => ", and gdswap never opens a data file through a link (give the file itself, or remove the link)".into(),
            (Why::Symlink, Store) => ", and gdswap never opens a swap store file through a link (remove the link; it is not gdswap's)".into(),
            (Why::Kind(_), _) => " (gdswap reads and writes only regular files)".into(),
            (Why::Foreign(_), Data) => crate::error::msg!["; gdswap writes only files its user owns (give another ", Setting::File, "/", Setting::Dir, ", or remove the file)"],
            (Why::Foreign(_), Store) => "; gdswap writes only files its user owns (give another store directory, or remove the file)".into(),
            (Why::Links(_), Data) => crate::error::msg!["; gdswap writes only a file with one name (give another ", Setting::File, "/", Setting::Dir, ")"],
            (Why::Links(_), Store) => "; gdswap writes only a file with one name (give another store directory, or remove this name)".into(),
            (Why::Exists, _) => "; gdswap creates this file anew and never opens one that is there (remove it)".into(),
            (Why::Replaced, _) => "".into(),
        }
    }

    fn refuse(self, path: &Path, role: Role) -> Error {
        Error::UnsafeFile {
            path: path.to_path_buf(),
            reason: {
                let mut m = Message::from(self.what());
                m.0.extend(self.rule(role).0);
                m
            },
        }
    }
}

/// What kind of file a `st_mode` is, in words.
pub fn kind_of(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFLNK => "a symbolic link",
        _ => "a special file",
    }
}

/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Why `meta` is not a file gdswap may open as `role` (written when `write`), if it is not.
/// A directory is not judged here: the caller reports it as the system does (EISDIR).
fn check(meta: &std::fs::Metadata, write: bool, role: Role) -> Option<Why> {
    let mode = meta.mode();
    if mode & libc::S_IFMT == libc::S_IFLNK {
        return Some(Why::Symlink);
    }
    if mode & libc::S_IFMT != libc::S_IFREG {
        return Some(Why::Kind(mode));
    }
    if write || role == Role::Store {
        if meta.uid() != euid() {
            return Some(Why::Foreign(meta.uid()));
        }
        if meta.nlink() > 1 {
            return Some(Why::Links(meta.nlink()));
        }
    }
    None
}

/// Opens `path` as `spec` says, never following a symlink, and checks the opened descriptor
/// (see the module documentation). Returns the file and whether this call created it (exact:
/// creation is tried with O_EXCL first). A directory is `Error::File` with EISDIR; a missing
/// file (with [`Create::No`]) `Error::File` with ENOENT; every refusal names the path and why.
pub fn open(path: &Path, spec: Spec) -> Result<(File, bool)> {
    let op = if spec.create == Create::No {
        FileOp::Open
    } else {
        FileOp::Create
    };
    let fail = |e: io::Error| match e.raw_os_error() {
        // O_NOFOLLOW on a symlink.
        Some(libc::ELOOP) => Why::Symlink.refuse(path, spec.role),
        Some(libc::EEXIST) => Why::Exists.refuse(path, spec.role),
        // A FIFO without a reader opened write-only, or a socket.
        Some(libc::ENXIO) => Why::Kind(0).refuse(path, spec.role),
        _ => Error::file(op, path, e),
    };
    let try_open = |create_new: bool| {
        let mut o = OpenOptions::new();
        o.read(true)
            .write(spec.write)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | spec.extra);
        if spec.write && create_new {
            o.create_new(true).mode(0o644);
        }
        o.open(path)
    };
    let (file, created) = match (spec.write, spec.create) {
        (true, Create::New) => (try_open(true).map_err(fail)?, true),
        (true, Create::IfMissing) => match try_open(true) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                (try_open(false).map_err(fail)?, false)
            }
            Err(e) => return Err(fail(e)),
        },
        _ => (try_open(false).map_err(fail)?, false),
    };
    // Whatever refuses the file from here on, a file this call created goes again.
    let undo = |e: Error| {
        if created {
            remove_created(path, &file);
        }
        e
    };
    let meta = file
        .metadata()
        .map_err(|e| undo(Error::file(FileOp::Stat, path, e)))?;
    if meta.is_dir() {
        return Err(Error::file(
            op,
            path,
            io::Error::from_raw_os_error(libc::EISDIR),
        ));
    }
    if let Some(why) = check(&meta, spec.write, spec.role) {
        return Err(undo(why.refuse(path, spec.role)));
    }
    clear_nonblock(&file).map_err(|e| undo(Error::file(op, path, e)))?;
    Ok((file, created))
}

/// [`open`] for a file of the swap store, without O_DIRECT.
pub fn open_store(path: &Path, write: bool, create: Create) -> Result<File> {
    let spec = Spec {
        write,
        create,
        extra: 0,
        role: Role::Store,
    };
    open(path, spec).map(|(f, _)| f)
}

/// Opens the file `first` has open a second time, with `extra` flags (O_DIRECT): through
/// `/proc/thread-self/fd/N` of `first`, so it is the inode already opened and checked,
/// whatever the path names now, and the new descriptor carries no O_NOFOLLOW (nor
/// O_NONBLOCK).
///
/// Why not the path with O_NOFOLLOW again: real libcufile refuses to register a descriptor
/// whose status flags include O_NOFOLLOW or O_NONBLOCK (`cuFileHandleRegister` returns
/// `CU_FILE_INVALID_FILE_OPEN_FLAG`, 5019: seen with libcufile 1.15.1 on an H200,
/// bench-results/2026-12-04-gpu-checks-h200), and O_NOFOLLOW stays in a descriptor's flags.
/// Where `/proc` is not mounted, the path is opened with O_NOFOLLOW and checked to be the
/// same inode as `first` (gds then fails with 5019 and says why).
pub fn reopen(path: &Path, first: &File, write: bool, extra: i32, role: Role) -> Result<File> {
    use std::os::fd::AsRawFd;
    // thread-self: this thread's descriptor table (/proc/self names the main thread's, gone
    // if it has exited).
    let by_proc = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_CLOEXEC | extra)
        .open(format!("/proc/thread-self/fd/{}", first.as_raw_fd()));
    let f = match by_proc {
        Ok(f) => f,
        // No /proc (or not this thread's): the path, as checked as the first open.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            let spec = Spec {
                write,
                create: Create::No,
                extra,
                role,
            };
            open(path, spec)?.0
        }
        Err(e) => return Err(Error::file(FileOp::Open, path, e)),
    };
    if !same_file(&f, first).map_err(|e| Error::file(FileOp::Stat, path, e))? {
        return Err(Why::Replaced.refuse(path, role));
    }
    Ok(f)
}

/// Whether two open files are the same inode.
pub fn same_file(a: &File, b: &File) -> io::Result<bool> {
    let (ma, mb) = (a.metadata()?, b.metadata()?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

/// Unlinks `path` if it still names the file open as `file` (same device and inode): a file
/// this process created, and nothing put in its place since. Best effort.
pub fn remove_created(path: &Path, file: &File) {
    let same = match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if same {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether `dir/name` exists, and an error naming it when it is not a file gdswap may own
/// (a regular file of this user with one link). Looks at the name itself (lstat).
pub fn check_own(dir: &Path, name: &str) -> Result<bool> {
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) => match check(&meta, true, Role::Store) {
            Some(why) => Err(Error::UnsafeFile {
                reason: format!(
                    "{}: not removed (gdswap removes only regular files its user owns, with one name)",
                    why.what()
                )
                .into(),
                path,
            }),
            None => Ok(true),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::file(FileOp::Stat, &path, e)),
    }
}

/// Removes `dir/name` if it is a file gdswap may own (see [`check_own`]); a missing name
/// is fine. Refuses, touching nothing, anything else under the name. `unlink` removes the
/// name, never a link's target.
pub fn remove_own(dir: &Path, name: &str) -> Result<bool> {
    if !check_own(dir, name)? {
        return Ok(false);
    }
    let path = dir.join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::file(FileOp::Resize, &path, e)),
    }
}

fn clear_nonblock(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl F_GETFL/F_SETFL on a descriptor we own; only integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(write: bool, create: Create) -> Spec {
        Spec {
            write,
            create,
            extra: 0,
            role: Role::Store,
        }
    }

    /// F_GETFL of a descriptor.
    fn status_flags(f: &File) -> i32 {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl F_GETFL on an open descriptor; only integer arguments.
        let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
        assert!(flags >= 0, "{}", io::Error::last_os_error());
        flags
    }

    #[test]
    fn a_reopened_descriptor_has_no_nofollow_or_nonblock_and_is_the_checked_inode() {
        // Real libcufile refuses to register a descriptor with O_NOFOLLOW or O_NONBLOCK in its
        // status flags (5019); the first open has both (O_NONBLOCK is cleared after it).
        let dir = crate::testutil::scratch_dir();
        let path = dir.path().join("data");
        let (first, created) = open(&path, spec(true, Create::IfMissing)).unwrap();
        assert!(created);
        assert_ne!(status_flags(&first) & libc::O_NOFOLLOW, 0);
        assert_eq!(status_flags(&first) & libc::O_NONBLOCK, 0);
        let again = reopen(&path, &first, true, 0, Role::Store).unwrap();
        let flags = status_flags(&again);
        assert_eq!(
            flags & (libc::O_NOFOLLOW | libc::O_NONBLOCK),
            0,
            "{flags:#o}"
        );
        assert_eq!(flags & libc::O_ACCMODE, libc::O_RDWR);
        assert!(same_file(&again, &first).unwrap());
        // The name replaced by a symlink since the first open: the reopen still gets the
        // inode that was checked, never the link's target.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let again = reopen(&path, &first, false, 0, Role::Store).unwrap();
        assert!(same_file(&again, &first).unwrap());
        assert_eq!(status_flags(&again) & libc::O_ACCMODE, libc::O_RDONLY);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn refuses_symlinks_fifos_and_hard_links_and_leaves_targets_alone() {
        let dir = crate::testutil::scratch_dir();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for create in [Create::No, Create::IfMissing, Create::New] {
            let err = open(&link, spec(true, create)).unwrap_err().to_string();
            assert!(
                err.contains("link") && err.contains(&*link.to_string_lossy()),
                "{err}"
            );
        }
        let hard = dir.path().join("hard");
        std::fs::hard_link(&victim, &hard).unwrap();
        let err = open(&hard, spec(true, Create::IfMissing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 hard links"), "{err}");
        // A store file is checked even when only read; a data file only when written.
        let err = open(&hard, spec(false, Create::No))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 hard links"), "{err}");
        let read_data = Spec {
            role: Role::Data,
            ..spec(false, Create::No)
        };
        assert!(open(&hard, read_data).is_ok());
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Neither open blocks; both are refused.
        let err = open(&fifo, spec(false, Create::No))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = open(&fifo, spec(true, Create::IfMissing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = remove_own(dir.path(), "link").unwrap_err().to_string();
        assert!(err.contains("not removed"), "{err}");
        assert!(link.symlink_metadata().is_ok());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A file of its own opens, and creating it anew is refused.
        let own = dir.path().join("own");
        assert!(open(&own, spec(true, Create::IfMissing)).unwrap().1);
        assert!(!open(&own, spec(true, Create::IfMissing)).unwrap().1);
        let err = open(&own, spec(true, Create::New)).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert!(remove_own(dir.path(), "own").unwrap());
        assert!(!remove_own(dir.path(), "own").unwrap());
    }
}
