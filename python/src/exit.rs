//! Shutting gds down at interpreter exit: every live `_GdsCore` and gds-backed `_Store` ends
//! its use of cuFile in an `atexit` handler, then the cuFile driver is closed.
//!
//! Why: the cuFile driver is process-wide and stays open until the process exits
//! (`gdswap::cufile::driver`). Left to libcufile's own exit handlers, libcufile 1.15.1 with
//! its thread pool on (`execution.max_io_threads` in cufile.json) lets its worker threads race
//! those handlers, and the process dies with SIGSEGV after its work (the CLI closes the driver
//! before it exits for the same reason; `tests/cufile_real_io.rs`). A Python program cannot be
//! relied on to drop its handles and stores first: objects still alive at interpreter exit
//! (module globals, cycles) are not reliably finalized, and never before libcufile's exit
//! handlers run. So the first gds object made registers [`shutdown_at_exit`] with `atexit`
//! (which runs after the non-daemon threads are joined, and before finalization; registered
//! then, it runs before the handlers of packages imported earlier, torch's among them), and
//! each gds object registers itself here as a weak reference (the registry keeps nothing
//! alive and holds no Python object, so no reference cycle). At exit each live object waits
//! for its operations in flight (a store commits its written swap-outs: nothing written is
//! lost), stops its threads and deregisters its buffers and files, dropping its driver users;
//! then the driver is closed if nothing else uses it.
//!
//! After that, an operation of such an object, and the making of a new one, raises
//! [`crate::GdsShutDown`] ("gdswap: gds was shut down at interpreter exit") instead of
//! touching cuFile (an atexit handler registered before gdswap's runs after it, and sees
//! that). The handler never raises: a failure is one line on stderr starting "gdswap: at
//! interpreter exit:", and the driver is closed all the same when its users are gone. It runs
//! once (`_gdswap._shutdown_gds_at_exit` again does nothing), and in a child forked from the
//! process that registered it (whose copies of the objects have no threads) it only refuses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use gdswap::cufile::driver::Driver;
use pyo3::prelude::*;

/// The message of every refusal after the shutdown.
pub const SHUT_DOWN: &str = "gdswap: gds was shut down at interpreter exit";

/// A gds object that can end its use of cuFile for good.
pub trait AtExit: Send + Sync {
    /// Waits for the operations in flight, stops the threads, and drops every cuFile
    /// registration and driver user it holds; later operations raise [`shut_down`]. Called
    /// with the GIL held; releases it while it waits. The error is one line.
    fn shut_down(&self, py: Python<'_>) -> Result<(), String>;
}

struct Registry {
    /// Set by the shutdown: nothing registers after it.
    shut: bool,
    live: Vec<Weak<dyn AtExit>>,
    /// The process that registered the atexit handler: a child forked from it (whose atexit
    /// handlers are the parent's) has none of the objects' threads, and leaves them alone.
    pid: u32,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    shut: false,
    live: Vec::new(),
    pid: 0,
});

/// Whether the atexit handler is registered (once per process).
static HOOKED: AtomicBool = AtomicBool::new(false);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// The error of an operation (or a constructor) after the shutdown.
pub fn shut_down() -> PyErr {
    crate::GdsShutDown::new_err(SHUT_DOWN)
}

/// Before a gds object opens anything: refuses with [`shut_down`] once gds was shut down, and
/// registers the atexit handler (once per process), so that a driver opened by a constructor
/// that then fails is closed at exit too.
pub fn prepare(py: Python<'_>) -> PyResult<()> {
    if registry().shut {
        return Err(shut_down());
    }
    if !HOOKED.load(Ordering::SeqCst) {
        let handler = wrap_pyfunction!(shutdown_at_exit, py)?;
        py.import("atexit")?.call_method1("register", (handler,))?;
        registry().pid = std::process::id();
        HOOKED.store(true, Ordering::SeqCst);
    }
    Ok(())
}

/// Puts `obj` on the list the exit handler shuts down. Fails with [`shut_down`] after the
/// shutdown (a constructor that raced it): the caller then drops `obj` and calls
/// [`close_after_refusal`].
pub fn register(obj: &Arc<dyn AtExit>) -> PyResult<()> {
    let mut r = registry();
    if r.shut {
        return Err(shut_down());
    }
    // Entries of objects gone since are dropped here, so the list stays as long as the
    // objects alive.
    r.live.retain(|w| w.strong_count() > 0);
    r.live.push(Arc::downgrade(obj));
    Ok(())
}

/// After a constructor that opened the driver was refused by [`register`] (it raced the
/// shutdown) and dropped what it made: the driver is closed again if unused.
pub fn close_after_refusal() {
    let _ = Driver::close_if_unused();
}

/// The atexit handler: shuts every live gds object down, then closes the cuFile driver.
/// Never raises; each failure is one line on stderr. Running it again does nothing.
#[pyfunction]
#[pyo3(name = "_shutdown_gds_at_exit")]
pub fn shutdown_at_exit(py: Python<'_>) {
    let live = {
        let mut r = registry();
        r.shut = true;
        let live = std::mem::take(&mut r.live);
        if r.pid != 0 && r.pid != std::process::id() {
            // A forked child: its copies of the objects have no threads to stop, and the
            // driver state is the parent's. Refused from now on, nothing touched.
            return;
        }
        live
    };
    for obj in live.iter().filter_map(Weak::upgrade) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.shut_down(py)));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("gdswap: at interpreter exit: {e}"),
            Err(_) => eprintln!("gdswap: at interpreter exit: shutting a gds object down panicked"),
        }
        // The last reference may be this one (the object died meanwhile): its drop joins
        // threads that have already ended.
        py.detach(move || drop(obj));
    }
    match Driver::close_if_unused() {
        Ok(_) if Driver::is_open() => eprintln!(
            "gdswap: at interpreter exit: the cuFile driver stays open: {} users remain (libcufile's exit handlers will close it)",
            Driver::users()
        ),
        Ok(_) => {}
        Err(e) => eprintln!("gdswap: at interpreter exit: closing the cuFile driver: {e}"),
    }
}
