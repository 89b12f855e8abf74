//! The barrier every phase of the protocol ends at (see the diagram in [`super`]): reusable,
//! and abortable by any party, so one failure releases everyone instead of leaving them
//! waiting.

use std::sync::{Condvar, Mutex};

use crate::error::{Error, Result};

/// A reusable barrier that any party can abort, releasing everyone with [`Error::Aborted`].
pub(super) struct PhaseBarrier {
    parties: usize,
    state: Mutex<BarrierState>,
    cv: Condvar,
}

struct BarrierState {
    arrived: usize,
    generation: u64,
    aborted: bool,
}

impl PhaseBarrier {
    pub(super) fn new(parties: usize) -> Self {
        PhaseBarrier {
            parties,
            state: Mutex::new(BarrierState {
                arrived: 0,
                generation: 0,
                aborted: false,
            }),
            cv: Condvar::new(),
        }
    }

    pub(super) fn wait(&self) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.aborted {
            return Err(Error::Aborted);
        }
        s.arrived += 1;
        if s.arrived == self.parties {
            s.arrived = 0;
            s.generation += 1;
            self.cv.notify_all();
            return Ok(());
        }
        let generation = s.generation;
        while s.generation == generation && !s.aborted {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.generation == generation {
            Err(Error::Aborted)
        } else {
            Ok(())
        }
    }

    pub(super) fn abort(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.aborted = true;
        self.cv.notify_all();
    }
}

/// Aborts the barrier if the worker thread unwinds, so nobody waits forever for it.
pub(super) struct AbortOnPanic<'a>(pub(super) &'a PhaseBarrier);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort();
        }
    }
}
