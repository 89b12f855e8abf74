//! A file registered with cuFile (`cuFileHandleRegister`): one registration per open
//! descriptor, shared by every user of it, deregistered when the last one goes.
//!
//! Why shared: cuFile refuses a second `cuFileHandleRegister` of a descriptor that is still
//! registered (`CU_FILE_HANDLE_ALREADY_REGISTERED`, 5028: "file is already registered under
//! same fd"), and a swap store's staging workers, or a run's threads on one `--file`, all use
//! the same [`DataFile`]. [`FileHandle::register`] therefore looks the descriptor up in a
//! process-wide table first: a live registration of the same file is shared (a clone of one
//! `Arc`); only the first user registers. The table, the users' count and both cuFile calls
//! are under one mutex, so the last user's deregistration can never race a new user's
//! registration of the same descriptor (which would then get 5028).
//!
//! The registration needs an O_DIRECT descriptor and keeps using it: it holds the
//! [`DataFile`] (and a driver user, so the driver stays open) for as long as it lives, so the
//! descriptor number cannot be reused by another file meanwhile.
//! Registering is also the strict per-file probe of the GDS path: with compat mode disallowed,
//! `CU_FILE_IO_NOT_SUPPORTED` (5008) means this file's I/O would go through compat mode.

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use gdswap_ffi::{CUfileDescr_t, CUfileHandle_t};

use super::driver::Driver;
use super::result::Call;
use crate::error::{Error, FileOp, Result};
use crate::io::file::DataFile;

/// One registration: the handle cuFile gave, the file whose descriptor it names, the driver
/// user that keeps the driver open under it.
struct Registered {
    handle: CUfileHandle_t,
    file: Arc<DataFile>,
    driver: Driver,
}

// SAFETY: a cuFile handle is an opaque token the library accepts from any thread (its API is
// thread-safe, and GDS applications share one handle between I/O threads); the descriptor and
// driver user it holds are Send and Sync.
unsafe impl Send for Registered {}
// SAFETY: as above: nothing in it is mutated after creation; cuFile calls on one handle from
// several threads are allowed ("All APIs are thread-safe", cuFile API reference, Usage).
unsafe impl Sync for Registered {}

/// The live registrations, by descriptor. Every creation and drop of a [`FileHandle`] happens
/// under this lock, so a strong count read under it is exact.
static TABLE: Mutex<Option<HashMap<RawFd, Weak<Registered>>>> = Mutex::new(None);

fn table() -> MutexGuard<'static, Option<HashMap<RawFd, Weak<Registered>>>> {
    // A panic while holding the lock leaves the table consistent (each step is one insert or
    // remove): still usable.
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A user of a registered file. Clones share the registration; the last one dropped
/// deregisters it.
pub struct FileHandle {
    inner: ManuallyDrop<Arc<Registered>>,
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHandle")
            .field("path", &self.inner.file.path())
            .finish_non_exhaustive()
    }
}

impl FileHandle {
    /// Registers `file`'s O_DIRECT descriptor, or joins the users of its live registration.
    pub fn register(driver: &Driver, file: Arc<DataFile>) -> Result<FileHandle> {
        if !file.is_direct() {
            return Err(Error::file(
                FileOp::Open,
                file.path(),
                std::io::Error::other("cuFile needs the file opened with O_DIRECT"),
            ));
        }
        let fd = file.io_fd();
        let mut guard = table();
        let map = guard.get_or_insert_with(HashMap::new);
        if let Some(live) = map.get(&fd).and_then(Weak::upgrade) {
            if !Arc::ptr_eq(&live.file, &file) {
                return Err(Error::file(
                    FileOp::Open,
                    file.path(),
                    std::io::Error::other(format!(
                        "descriptor {fd} is already registered with cuFile for {}",
                        live.file.path().display()
                    )),
                ));
            }
            if !Arc::ptr_eq(live.driver.lib(), driver.lib()) {
                return Err(Error::CuFileSetup(format!(
                    "{} is registered through {}, not {}",
                    file.path().display(),
                    live.driver.lib().describe(),
                    driver.lib().describe()
                )));
            }
            return Ok(FileHandle {
                inner: ManuallyDrop::new(live),
            });
        }
        let mut descr = CUfileDescr_t::from_fd(fd);
        let mut handle: CUfileHandle_t = std::ptr::null_mut();
        // SAFETY: the driver is open (`driver` is a user); `descr` names an open descriptor
        // (held open by `file`) with a null fs_ops table, and both pointers are valid for the
        // call; cuFile writes one handle into `handle`. No other registration of this
        // descriptor is live (the table, under its lock, says so).
        let status = unsafe { (driver.lib().required.handle_register)(&mut handle, &mut descr) };
        Call::new("cuFileHandleRegister")
            .on(file.path())
            .check(status)?;
        let inner = Arc::new(Registered {
            handle,
            file,
            driver: driver.clone(),
        });
        map.insert(fd, Arc::downgrade(&inner));
        Ok(FileHandle {
            inner: ManuallyDrop::new(inner),
        })
    }

    /// cuFile's handle of the registered descriptor, for the I/O calls.
    pub fn raw(&self) -> CUfileHandle_t {
        self.inner.handle
    }

    /// The driver user the registration holds.
    pub fn driver(&self) -> &Driver {
        &self.inner.driver
    }

    /// The data file whose O_DIRECT descriptor is registered.
    pub fn file(&self) -> &Arc<DataFile> {
        &self.inner.file
    }

    /// How many users share this registration now.
    pub fn users(&self) -> usize {
        let _t = table();
        Arc::strong_count(&self.inner)
    }
}

impl Clone for FileHandle {
    fn clone(&self) -> FileHandle {
        let _t = table();
        FileHandle {
            inner: ManuallyDrop::new(Arc::clone(&self.inner)),
        }
    }
}

impl Drop for FileHandle {
    fn drop(&mut self) {
        let mut guard = table();
        // SAFETY: `inner` is taken exactly once, here, and never used again.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        if Arc::strong_count(&inner) == 1 {
            let fd = inner.file.io_fd();
            if let Some(map) = guard.as_mut() {
                map.remove(&fd);
            }
            // SAFETY: `handle` came from a successful cuFileHandleRegister on this driver,
            // which is still open (inner.driver), and this is its last user, so it is
            // deregistered once, here, under the table's lock (no new registration of the
            // descriptor can start before it is done); the descriptor is still open
            // (inner.file is dropped after this).
            unsafe { (inner.driver.lib().required.handle_deregister)(inner.handle) };
        }
        // The Arc (the last one: the registration, its file and driver user) goes under the
        // lock too, so the count the next user reads is exact.
        drop(inner);
    }
}
