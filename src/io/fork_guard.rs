//! Descriptors a forked child must not keep holding: a swap store's lock.
//!
//! Why: a `flock` belongs to the open file description, which `fork` shares with the child. A
//! child that never touches the store (a PyTorch DataLoader worker, forked while a store is
//! open) would keep the store's lock held after the parent closed the store, and the parent
//! could not open that store again until every such child had exited.
//!
//! How: a `pthread_atfork` child handler points each guarded descriptor at `/dev/null`
//! (`dup3` with close-on-exec, a plain system call and so async-signal-safe, as a handler running in the child of a threaded process
//! must be). The child's lock reference is gone, the parent's stays; and if the child ever
//! drops its copy of the store, it closes a `/dev/null` descriptor with that number, never one
//! it reused for something else. Up to [`SLOTS`] descriptors are guarded at once; past that a
//! descriptor is not guarded (the lock then behaves as a plain flock across fork).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

/// How many descriptors can be guarded at once (one per open swap store).
pub const SLOTS: usize = 64;

static GUARDED: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
static DEV_NULL: AtomicI32 = AtomicI32::new(-1);
static INSTALL: Once = Once::new();

/// A descriptor guarded from forked children while this lives. Drop it before the descriptor
/// is closed (the store declares it before its lock file, so it is dropped first).
#[derive(Debug)]
pub struct ForkGuard {
    slot: Option<usize>,
}

impl ForkGuard {
    /// Guards `file`'s descriptor; `guarded()` says whether a slot was free.
    pub fn new(file: &impl AsRawFd) -> ForkGuard {
        INSTALL.call_once(install);
        if DEV_NULL.load(Ordering::SeqCst) < 0 {
            return ForkGuard { slot: None };
        }
        let fd = file.as_raw_fd();
        let slot = GUARDED.iter().position(|s| {
            s.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        ForkGuard { slot }
    }

    /// Whether the descriptor is guarded (false: no free slot, or no `/dev/null`).
    pub fn guarded(&self) -> bool {
        self.slot.is_some()
    }
}

impl Drop for ForkGuard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            GUARDED[i].store(-1, Ordering::SeqCst);
        }
    }
}

/// Opens `/dev/null` once (close-on-exec) and registers the child handler; without either,
/// nothing is guarded.
fn install() {
    // SAFETY: open reads a NUL-terminated path literal; the descriptor it returns is ours and
    // lives for the process.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return;
    }
    // SAFETY: registers a handler taking no arguments; it only loads atomics and calls dup3.
    if unsafe { libc::pthread_atfork(None, None, Some(in_child)) } != 0 {
        // SAFETY: closes the descriptor opened just above, used by nothing else.
        unsafe { libc::close(fd) };
        return;
    }
    DEV_NULL.store(fd, Ordering::SeqCst);
}

/// Runs in the child right after `fork`: only atomic loads and `dup3`.
extern "C" fn in_child() {
    let null: RawFd = DEV_NULL.load(Ordering::SeqCst);
    if null < 0 {
        return;
    }
    for s in &GUARDED {
        let fd = s.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: dup3 is a plain system call (async-signal-safe) and only replaces
            // descriptor `fd` of this (child) process with a copy of /dev/null, close-on-exec
            // as the lock's was; the parent's descriptor is untouched.
            unsafe { libc::dup3(null, fd, libc::O_CLOEXEC) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device and inode `fd` names in this process.
    fn id(fd: RawFd) -> (u64, u64) {
        let meta = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap();
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }

    /// Whether descriptor `fd` is `null` (device, inode) in a child forked now: the child
    /// answers through its exit status, calling only fstat (async-signal-safe) and _exit.
    fn null_in_child(fd: RawFd, null: (u64, u64)) -> bool {
        // SAFETY: the child calls only fstat and _exit before it ends.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "{}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: fstat writes one stat into the zeroed value; _exit ends the child.
            unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                let is_null = libc::fstat(fd, &mut st) == 0 && (st.st_dev, st.st_ino) == null;
                libc::_exit(if is_null { 0 } else { 1 });
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; writes its status into `status`.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child status {status}");
        libc::WEXITSTATUS(status) == 0
    }

    #[test]
    fn a_guarded_descriptor_is_dev_null_in_a_forked_child_and_untouched_here() {
        let dir = crate::testutil::scratch_dir();
        let f = std::fs::File::create(dir.path().join("lock")).unwrap();
        let g = ForkGuard::new(&f);
        assert!(g.guarded());
        let fd = f.as_raw_fd();
        let null = std::fs::metadata("/dev/null").unwrap();
        use std::os::unix::fs::MetadataExt;
        let null_id = (null.dev(), null.ino());
        assert!(
            null_in_child(fd, null_id),
            "the child still had the guarded file at fd {fd}"
        );
        // Here the descriptor is still the file.
        assert_ne!(id(fd), null_id);
        drop(g);
        // Unguarded, a child keeps the file.
        assert!(!null_in_child(fd, null_id));
    }
}
