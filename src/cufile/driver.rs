//! The cuFile driver: opened once per process and kept open (kvikio's way), with a count of
//! its users.
//!
//! Why a process-wide state: `cuFileDriverOpen`/`cuFileDriverClose` act on one driver state
//! per process, and closing it under a thread that still has registered files or buffers
//! breaks that thread's I/O. Each [`Driver`] value is one user; the first opens the driver.
//! The last one dropped does not close it: a `compare` or `sweep` runs many gds runs in one
//! process, and closing and reopening the driver between them costs a driver open each time
//! (seconds on some nodes), tears down cuFile's internal bounce buffers and statistics, and
//! is exactly the close/reopen cycle kvikio avoids by opening once per process.
//! [`Driver::close_if_unused`] closes it on request when nobody uses it: a caller that must
//! change parameters (cuFile accepts them only before the driver opens), and the CLI before it
//! exits and the Python module at interpreter exit (left to cuFile's own exit handlers,
//! libcufile 1.15.1 with its thread pool on crashes the process: its worker threads race them).
//! The count and both calls are under one mutex, so an open racing with a close can never be
//! undone by it.
//!
//! The CUDA contexts the driver runs in are kept as long as the driver ([`Driver::keep_context`]):
//! cuFile allocates its own resources (compat mode's host bounce buffers, its streams) in the
//! context current when it opens, and CUDA destroys a primary context, with every allocation
//! in it, when its last retainer releases it (cuDevicePrimaryCtxRelease: "If there are no more
//! references to the primary context it will be destroyed"). A `gds` run's workers release
//! theirs when the run ends; without this, the next run of a `compare` or `sweep` in the same
//! process would use a driver whose resources were freed (a process with the CUDA runtime, as
//! kvikio's users, keeps the primary context for its life: this does the same).

use std::sync::{Arc, Mutex, MutexGuard};

use gdswap_ffi::CUfileDrvProps_t;

use super::loader::CuFileLib;
use super::result::Call;
use crate::cuda::device::Device;
use crate::error::{Error, Result};

struct Shared {
    users: usize,
    lib: Option<Arc<CuFileLib>>,
    /// Primary contexts retained while the driver is open (one per device), released only
    /// after `cuFileDriverClose`.
    contexts: Vec<Device>,
    /// cuFile's statistics were turned on (level 3, started) while the driver is open: later
    /// runs only read them (never reset, restarted or stopped while it is open: `cufile::stats`).
    stats_on: bool,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared {
    users: 0,
    lib: None,
    contexts: Vec::new(),
    stats_on: false,
});

fn shared() -> MutexGuard<'static, Shared> {
    // A panic while holding the lock leaves the count as it was: still usable.
    SHARED.lock().unwrap_or_else(|p| p.into_inner())
}

/// One user of the open cuFile driver.
pub struct Driver {
    lib: Arc<CuFileLib>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("lib", &self.lib.describe())
            .finish()
    }
}

impl Driver {
    /// Opens the driver (or joins the users of the open one). Fails with the decoded
    /// `cuFileDriverOpen` error, e.g. 5033 on a machine without a CUDA driver.
    pub fn open(lib: &Arc<CuFileLib>) -> Result<Driver> {
        let mut s = shared();
        if let Some(open) = s.lib.clone().filter(|open| !Arc::ptr_eq(open, lib)) {
            if s.users > 0 {
                return Err(Error::CuFileSetup(format!(
                    "cuFile is already open through {}; cannot also open {}",
                    open.describe(),
                    lib.describe()
                )));
            }
            // Open through another library and unused: close it there first.
            close(&mut s)?;
        }
        if s.lib.is_none() {
            // SAFETY: cuFileDriverOpen takes no arguments; the pointer was resolved from the
            // loaded library, which stays mapped (RTLD_NODELETE, and `lib` keeps it open).
            let status = unsafe { (lib.required.driver_open)() };
            Call::new("cuFileDriverOpen").check(status)?;
            s.lib = Some(Arc::clone(lib));
        }
        s.users += 1;
        Ok(Driver {
            lib: Arc::clone(lib),
        })
    }

    /// Closes the driver if it is open and has no user; returns whether it closed it.
    pub fn close_if_unused() -> Result<bool> {
        let mut s = shared();
        if s.users > 0 || s.lib.is_none() {
            return Ok(false);
        }
        close(&mut s)?;
        Ok(true)
    }

    /// Whether the driver is open in this process (with or without users).
    pub fn is_open() -> bool {
        shared().lib.is_some()
    }

    /// Keeps device `ordinal`'s primary context alive (retained) for as long as the driver
    /// stays open, so the resources cuFile allocated in it are never freed under it (see the
    /// module's documentation). Call it with that context current, before registering
    /// anything on the device; once per device is enough (later calls do nothing).
    pub fn keep_context(&self, ordinal: usize) -> Result<()> {
        let mut s = shared();
        if s.contexts.iter().any(|d| d.ordinal() == ordinal) {
            return Ok(());
        }
        let device = Device::retain(ordinal)?;
        s.contexts.push(device);
        Ok(())
    }

    /// The library this driver runs on.
    pub fn lib(&self) -> &Arc<CuFileLib> {
        &self.lib
    }

    /// `cuFileDriverGetProperties`.
    pub fn properties(&self) -> Result<CUfileDrvProps_t> {
        let mut props = CUfileDrvProps_t::default();
        // SAFETY: the driver is open (self is a user); the function writes one
        // CUfileDrvProps_t, whose layout is checked against the real header.
        let status = unsafe { (self.lib.required.driver_get_properties)(&mut props) };
        Call::new("cuFileDriverGetProperties").check(status)?;
        Ok(props)
    }

    /// Runs `turn_on` unless cuFile's statistics are on already in this open driver, and
    /// marks them on when it succeeds (under the driver's lock, so two runs' workers cannot
    /// both turn them on).
    pub fn stats_on_once(&self, turn_on: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut s = shared();
        if !s.stats_on {
            turn_on()?;
            s.stats_on = true;
        }
        Ok(())
    }

    /// How many users the process-wide driver has now.
    pub fn users() -> usize {
        shared().users
    }
}

impl Clone for Driver {
    fn clone(&self) -> Driver {
        shared().users += 1;
        Driver {
            lib: Arc::clone(&self.lib),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The driver stays open for the process (see the module's doc).
        shared().users -= 1;
    }
}

/// `cuFileDriverClose` of the open driver, which has no user.
fn close(s: &mut Shared) -> Result<()> {
    let Some(lib) = s.lib.take() else {
        return Ok(());
    };
    // SAFETY: no user is left, so no registration made through this driver is in use; the
    // function takes no arguments, and `lib` keeps the library mapped for the call.
    let status = unsafe { (lib.required.driver_close)() };
    Call::new("cuFileDriverClose").check(status)?;
    // Closed: cuFile holds nothing in the contexts any more (after a failed close they stay),
    // and its statistics ended with it.
    s.contexts.clear();
    s.stats_on = false;
    Ok(())
}
