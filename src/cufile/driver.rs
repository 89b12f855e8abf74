//! The cuFile driver: opened once per process, closed when its last user drops it.
//!
//! Why a process-wide count: `cuFileDriverOpen`/`cuFileDriverClose` act on one driver state
//! per process, and closing it under a thread that still has registered files or buffers
//! breaks that thread's I/O. Each [`Driver`] value is one user; the first opens the driver, the
//! last one dropped closes it. The count and both calls are under one mutex, so an open racing
//! with the last drop can never be undone by that drop's close.

use std::sync::{Arc, Mutex, MutexGuard};

use gdswap_ffi::CUfileDrvProps_t;

use super::loader::CuFileLib;
use super::result::Call;
use crate::error::{Error, Result};

struct Shared {
    users: usize,
    lib: Option<Arc<CuFileLib>>,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared {
    users: 0,
    lib: None,
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
        if s.users > 0 {
            if let Some(open) = s.lib.as_ref().filter(|open| !Arc::ptr_eq(open, lib)) {
                return Err(Error::Resources(format!(
                    "cuFile is already open through {}; cannot also open {}",
                    open.describe(),
                    lib.describe()
                )));
            }
        } else {
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
        let mut s = shared();
        s.users -= 1;
        if s.users == 0 {
            // SAFETY: the last user is gone, so no registration made through this driver is
            // in use; the function takes no arguments. A failure to close cannot be acted on
            // in drop and leaves nothing unsafe behind, so its status is not examined.
            let _ = unsafe { (self.lib.required.driver_close)() };
            s.lib = None;
        }
    }
}
