//! Streams and events: the order and completion of asynchronous copies.
//!
//! Each worker has one non-blocking stream (it never synchronises with the legacy default
//! stream). An [`Event`] recorded after a copy completes when the stream reaches it: that is
//! how a pinned chunk is known to be free again. Timing events (recorded before and after a
//! copy) measure the time the copy engine spent, for the report's copy-time figure.

use cudarc::driver::sys;

use crate::error::Result;

use super::api::{self, api};
use super::check;

/// A non-blocking stream of the current context.
pub struct Stream {
    raw: sys::CUstream,
}

// SAFETY: a CUstream may be used from any thread where its context is current; gdswap creates,
// uses and destroys each stream on one worker thread (the Worker moves between threads only
// before it is used).
unsafe impl Send for Stream {}

impl Stream {
    /// Creates a stream in the context current on this thread.
    pub fn new() -> Result<Stream> {
        let mut raw: sys::CUstream = std::ptr::null_mut();
        // SAFETY: writes one stream handle; flags are CU_STREAM_NON_BLOCKING.
        check(
            unsafe {
                (api().cuStreamCreate)(&mut raw, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32)
            },
            || "cuStreamCreate".into(),
        )?;
        Ok(Stream { raw })
    }

    pub fn raw(&self) -> sys::CUstream {
        self.raw
    }

    /// Blocks until every operation queued on the stream has finished; the first
    /// asynchronous error of the stream, if any, is returned here.
    pub fn synchronize(&self, what: &str) -> Result<()> {
        // SAFETY: the stream is alive for the life of self.
        check(unsafe { (api().cuStreamSynchronize)(self.raw) }, || {
            format!("cuStreamSynchronize ({what})")
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: waits for queued work (so no copy outlives the memory its owner frees next),
        // then destroys the handle, which is never used again. Errors cannot be reported
        // from a destructor; a failed stream has no work left to run.
        unsafe {
            (api().cuStreamSynchronize)(self.raw);
            (api().cuStreamDestroy_v2)(self.raw);
        }
    }
}

/// An event of the current context.
pub struct Event {
    raw: sys::CUevent,
}

// SAFETY: as for Stream: one worker thread creates, uses and destroys it.
unsafe impl Send for Event {}

impl Event {
    /// Creates an event; `timing` events can measure the time between two of them.
    pub fn new(timing: bool) -> Result<Event> {
        let flags = if timing {
            sys::CUevent_flags::CU_EVENT_DEFAULT as u32
        } else {
            sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32
        };
        let mut raw: sys::CUevent = std::ptr::null_mut();
        // SAFETY: writes one event handle.
        check(unsafe { (api().cuEventCreate)(&mut raw, flags) }, || {
            "cuEventCreate".into()
        })?;
        Ok(Event { raw })
    }

    /// Records the event at the current end of `stream`.
    pub fn record(&self, stream: &Stream) -> Result<()> {
        // SAFETY: both handles are alive; recording only queues a marker.
        check(
            unsafe { (api().cuEventRecord)(self.raw, stream.raw()) },
            || "cuEventRecord".into(),
        )
    }

    /// Whether the stream has reached the event (true for an event never recorded). An
    /// asynchronous error of the work before it is returned as an error.
    pub fn is_done(&self, what: &str) -> Result<bool> {
        // SAFETY: the event is alive; cuEventQuery only reads its state.
        let rc = unsafe { (api().cuEventQuery)(self.raw) };
        if rc == api::CUDA_ERROR_NOT_READY {
            return Ok(false);
        }
        check(rc, || format!("cuEventQuery ({what})"))?;
        Ok(true)
    }

    /// Blocks until the stream has reached the event.
    pub fn synchronize(&self, what: &str) -> Result<()> {
        // SAFETY: the event is alive.
        check(unsafe { (api().cuEventSynchronize)(self.raw) }, || {
            format!("cuEventSynchronize ({what})")
        })
    }

    /// Milliseconds between `start` and `self`, both timing events that have completed.
    pub fn elapsed_ms_since(&self, start: &Event) -> Result<f32> {
        let mut ms = 0f32;
        // SAFETY: both events are alive; writes one float.
        check(
            unsafe { (api().cuEventElapsedTime)(&mut ms, start.raw, self.raw) },
            || "cuEventElapsedTime".into(),
        )?;
        Ok(ms)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: the handle is never used again; destroying a pending event is allowed (the
        // driver frees it once reached).
        unsafe { (api().cuEventDestroy_v2)(self.raw) };
    }
}
