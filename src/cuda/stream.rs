//! Streams and events: the order and completion of asynchronous copies.
//!
//! Each worker has one non-blocking stream (it never synchronises with the legacy default
//! stream on its own; a swap of a caller's device tensor orders it explicitly, with
//! [`Stream::wait`]). An [`Event`] recorded after a copy completes when the stream reaches it:
//! that is how a pinned chunk is known to be free again. Timing events (recorded before and
//! after a copy) measure the time the copy engine spent, for the report's copy-time figure.
//!
//! Waiting never spins. With the primary context's default scheduling (CU_CTX_SCHED_AUTO:
//! spin while the process has no more active contexts than CPUs) `cuStreamSynchronize` and
//! `cuEventSynchronize` busy-wait, which would charge the whole copy time to gdswap's CPU
//! figure (CPU-s/GiB). The primary context's flags belong to the whole process (a caller's
//! framework shares them), so gdswap leaves them alone and instead waits only on events
//! created with `CU_EVENT_BLOCKING_SYNC`, whose synchronisation blocks the thread: every
//! [`Event`] has the flag, and [`Stream::synchronize`] records one and waits on it rather
//! than calling `cuStreamSynchronize`.

use cudarc::driver::sys;

use crate::error::Result;

use super::api::{self, api};
use super::check;

/// A non-blocking stream of the current context.
pub struct Stream {
    raw: sys::CUstream,
    /// Recorded at the stream's end and waited on by [`Stream::synchronize`].
    end: Event,
}

// SAFETY: a CUstream may be used from any thread where its context is current; gdswap creates,
// uses and destroys each stream on one worker thread (the Worker moves between threads only
// before it is used).
unsafe impl Send for Stream {}

impl Stream {
    /// Creates a stream in the context current on this thread.
    pub fn new() -> Result<Stream> {
        let end = Event::new(false)?;
        let mut raw: sys::CUstream = std::ptr::null_mut();
        check(
            // SAFETY: writes one stream handle; flags are CU_STREAM_NON_BLOCKING.
            unsafe {
                (api().cuStreamCreate)(&mut raw, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32)
            },
            || "cuStreamCreate",
        )?;
        Ok(Stream { raw, end })
    }

    /// The driver's stream handle, for calls that take one (copies, events, cuFile's async API).
    pub fn raw(&self) -> sys::CUstream {
        self.raw
    }

    /// Blocks (without spinning) until every operation queued on the stream has finished;
    /// the first asynchronous error of the stream, if any, is returned here.
    pub fn synchronize(&self, what: &str) -> Result<()> {
        self.end.record(self)?;
        self.end.synchronize(what)
    }

    /// Makes the work queued on this stream from now on wait, on the device, until `event`'s
    /// most recent record (at the time of this call) has completed. The event may be of
    /// another stream, of a caller's code.
    pub fn wait(&self, event: &Event) -> Result<()> {
        check(
            // SAFETY: both handles are alive; queues a dependency only.
            unsafe { (api().cuStreamWaitEvent)(self.raw, event.raw, 0) },
            || "cuStreamWaitEvent (ordering a copy after the caller's GPU work)",
        )
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Waits for queued work (so no copy outlives the memory its owner frees next). Errors
        // cannot be reported from a destructor; a failed stream has no work left to run.
        let _ = self.synchronize("destroying a stream");
        // SAFETY: destroys the handle, which is never used again (`end` is destroyed after it,
        // as a field; it has completed).
        unsafe { (api().cuStreamDestroy_v2)(self.raw) };
    }
}

/// A stream gdswap did not create: a caller's (its `CUstream` handle as an integer, e.g.
/// PyTorch's `torch.cuda.current_stream().cuda_stream`), or one of the driver's special
/// handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignStream(usize);

impl ForeignStream {
    /// The legacy default stream (`CU_STREAM_LEGACY`) of the context current at the call:
    /// work queued on it waits for all work queued before on every blocking stream of the
    /// context (the NULL stream of the runtime and of per-thread default streams included),
    /// but not for work on non-blocking streams.
    pub const LEGACY: ForeignStream = ForeignStream(api::CU_STREAM_LEGACY);

    /// A caller's stream.
    ///
    /// # Safety
    /// `handle` must be a live `CUstream` of the context it will be used in (for a swap: the
    /// primary context of the tensor's GPU), alive until the call taking it has returned, or
    /// one of the driver's special handles (`0`, `CU_STREAM_LEGACY`, `CU_STREAM_PER_THREAD`).
    pub unsafe fn from_raw(handle: usize) -> ForeignStream {
        ForeignStream(handle)
    }

    /// The raw handle.
    pub fn raw(self) -> usize {
        self.0
    }
}

/// An event of the current context, created with `CU_EVENT_BLOCKING_SYNC` (waiting for it
/// blocks the thread instead of spinning).
pub struct Event {
    raw: sys::CUevent,
}

// SAFETY: as for Stream: one worker thread creates, uses and destroys it.
unsafe impl Send for Event {}

impl Event {
    /// Creates an event; `timing` events can measure the time between two of them.
    pub fn new(timing: bool) -> Result<Event> {
        let blocking = sys::CUevent_flags::CU_EVENT_BLOCKING_SYNC as u32;
        let flags = if timing {
            blocking
        } else {
            blocking | sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32
        };
        let mut raw: sys::CUevent = std::ptr::null_mut();
        // SAFETY: writes one event handle.
        check(unsafe { (api().cuEventCreate)(&mut raw, flags) }, || {
            "cuEventCreate"
        })?;
        Ok(Event { raw })
    }

    /// Records the event at the current end of `stream`.
    pub fn record(&self, stream: &Stream) -> Result<()> {
        check(
            // SAFETY: both handles are alive; recording only queues a marker.
            unsafe { (api().cuEventRecord)(self.raw, stream.raw()) },
            || "cuEventRecord",
        )
    }

    /// Records the event at the current end of a stream gdswap did not create (a caller's,
    /// or the legacy default stream of the current context).
    pub fn record_foreign(&self, stream: ForeignStream, what: &str) -> Result<()> {
        check(
            // SAFETY: the event is alive; the stream handle is valid in the current context by
            // ForeignStream's contract; recording only queues a marker.
            unsafe { (api().cuEventRecord)(self.raw, stream.0 as sys::CUstream) },
            || format!("cuEventRecord ({what})"),
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
        check(
            // SAFETY: both events are alive; writes one float.
            unsafe { (api().cuEventElapsedTime)(&mut ms, start.raw, self.raw) },
            || "cuEventElapsedTime",
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
