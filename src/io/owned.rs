//! Opening files gdswap owns without being led elsewhere: no symlink is followed in the last
//! component (O_NOFOLLOW), a FIFO or device cannot block the open (O_NONBLOCK until the type
//! is checked), and what was opened must be a regular file owned by this user with a single
//! link (a hard link planted under gdswap's name would let a write land in someone else's
//! file). Used for the swap store's files (`data.bin`, `manifest.json`, its temporary file,
//! `lock`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, FileOp, Result};

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

/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Why `meta` is not a file gdswap may use as its own, if it is not.
pub fn not_own_file(meta: &std::fs::Metadata) -> Option<String> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Some("is a symbolic link".into());
    }
    if !ft.is_file() {
        return Some("is not a regular file".into());
    }
    if meta.uid() != euid() {
        return Some(format!(
            "is owned by uid {}, not by this user (uid {})",
            meta.uid(),
            euid()
        ));
    }
    if meta.nlink() > 1 {
        return Some(format!("has {} hard links", meta.nlink()));
    }
    None
}

fn refused(op: FileOp, path: &Path, why: String) -> Error {
    Error::BadFile {
        flag: "swap store",
        path: path.to_path_buf(),
        message: format!(
            "{why}: gdswap {op}s only regular files it owns, never through a link; remove it (it is not gdswap's)"
        ),
    }
}

/// Opens `path` read-only or read-write (`write`), with `extra` flags (O_DIRECT), never
/// following a symlink, and checks it is a regular file this user owns with one link. The
/// error names the path and why it was refused.
pub fn open(path: &Path, write: bool, create: Create, extra: i32) -> Result<File> {
    let mut o = OpenOptions::new();
    o.read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | extra);
    if write {
        o.write(true);
        match create {
            Create::No => {}
            Create::IfMissing => {
                o.create(true);
            }
            Create::New => {
                o.create_new(true);
            }
        }
        o.mode(0o644);
    }
    let op = if create == Create::No {
        FileOp::Open
    } else {
        FileOp::Create
    };
    let f = match o.open(path) {
        Ok(f) => f,
        // O_NOFOLLOW on a symlink: ELOOP.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refused(op, path, "is a symbolic link".into()))
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            return Err(refused(op, path, "already exists".into()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            // A FIFO without a reader, opened for writing non-blocking.
            return Err(refused(op, path, "is not a regular file".into()));
        }
        Err(e) => return Err(Error::file(op, path, e)),
    };
    let meta = f
        .metadata()
        .map_err(|e| Error::file(FileOp::Stat, path, e))?;
    if let Some(why) = not_own_file(&meta) {
        return Err(refused(op, path, why));
    }
    clear_nonblock(&f).map_err(|e| Error::file(op, path, e))?;
    Ok(f)
}

/// Whether two open files are the same inode.
pub fn same_file(a: &File, b: &File) -> io::Result<bool> {
    let (ma, mb) = (a.metadata()?, b.metadata()?);
    Ok(ma.dev() == mb.dev() && ma.ino() == mb.ino())
}

/// Whether `dir/name` exists, and an error naming it when it is not a file gdswap may own
/// (a regular file of this user with one link). Looks at the name itself (lstat).
pub fn check_own(dir: &Path, name: &str) -> Result<bool> {
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) => match not_own_file(&meta) {
            Some(why) => Err(Error::BadFile {
                flag: "swap store",
                path,
                message: format!("{why}: not removed (gdswap removes only files it owns)"),
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

    #[test]
    fn refuses_symlinks_fifos_and_hard_links_and_leaves_targets_alone() {
        let dir = crate::testutil::scratch_dir();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for create in [Create::No, Create::IfMissing, Create::New] {
            let err = open(&link, true, create, 0).unwrap_err().to_string();
            assert!(
                err.contains("link") && err.contains(&*link.to_string_lossy()),
                "{err}"
            );
        }
        let hard = dir.path().join("hard");
        std::fs::hard_link(&victim, &hard).unwrap();
        let err = open(&hard, true, Create::IfMissing, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 hard links"), "{err}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Neither open blocks; both are refused.
        let err = open(&fifo, false, Create::No, 0).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = open(&fifo, true, Create::IfMissing, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = remove_own(dir.path(), "link").unwrap_err().to_string();
        assert!(err.contains("not removed"), "{err}");
        assert!(link.symlink_metadata().is_ok());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A file of its own opens, and creating it anew is refused.
        let own = dir.path().join("own");
        open(&own, true, Create::IfMissing, 0).unwrap();
        assert!(open(&own, true, Create::New, 0).is_err());
        assert!(remove_own(dir.path(), "own").unwrap());
        assert!(!remove_own(dir.path(), "own").unwrap());
    }
}
