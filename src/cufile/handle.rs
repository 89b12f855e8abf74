//! A file registered with cuFile (`cuFileHandleRegister`), deregistered when dropped.
//!
//! The registration needs an O_DIRECT descriptor and keeps using it: the handle holds the
//! [`DataFile`] (and a driver user, so the driver stays open) for as long as it lives.
//! Registering is also the strict per-file probe of the GDS path: with compat mode disallowed,
//! `CU_FILE_IO_NOT_SUPPORTED` (5008) means this file's I/O would go through compat mode.

use std::sync::Arc;

use gdswap_ffi::{CUfileDescr_t, CUfileHandle_t};

use super::driver::Driver;
use super::result::Call;
use crate::error::{Error, FileOp, Result};
use crate::io::file::DataFile;

pub struct FileHandle {
    handle: CUfileHandle_t,
    file: Arc<DataFile>,
    driver: Driver,
}

// SAFETY: a cuFile handle is an opaque token the library accepts from any thread (GDS
// applications share one handle between I/O threads); the descriptor and driver user it holds
// are Send. The gds backend creates, uses and drops each handle on one worker thread.
unsafe impl Send for FileHandle {}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHandle")
            .field("path", &self.file.path())
            .finish_non_exhaustive()
    }
}

impl FileHandle {
    /// Registers `file`'s O_DIRECT descriptor.
    pub fn register(driver: &Driver, file: Arc<DataFile>) -> Result<FileHandle> {
        if !file.is_direct() {
            return Err(Error::file(
                FileOp::Open,
                file.path(),
                std::io::Error::other("cuFile needs the file opened with O_DIRECT"),
            ));
        }
        let mut descr = CUfileDescr_t::from_fd(file.io_fd());
        let mut handle: CUfileHandle_t = std::ptr::null_mut();
        // SAFETY: the driver is open (`driver` is a user); `descr` names an open descriptor
        // with a null fs_ops table, and both pointers are valid for the call; cuFile writes
        // one handle into `handle`.
        let status = unsafe { (driver.lib().required.handle_register)(&mut handle, &mut descr) };
        Call::new("cuFileHandleRegister")
            .on(file.path())
            .check(status)?;
        Ok(FileHandle {
            handle,
            file,
            driver: driver.clone(),
        })
    }

    pub fn raw(&self) -> CUfileHandle_t {
        self.handle
    }

    /// The driver user the registration holds.
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    pub fn file(&self) -> &Arc<DataFile> {
        &self.file
    }
}

impl Drop for FileHandle {
    fn drop(&mut self) {
        // SAFETY: `handle` came from a successful cuFileHandleRegister on this driver, which
        // is still open (self.driver), and is deregistered once, here; the descriptor it uses
        // is still open (self.file is dropped after this).
        unsafe { (self.driver.lib().required.handle_deregister)(self.handle) };
    }
}
