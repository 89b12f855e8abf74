//! Timed asynchronous copies between pinned host memory and a device buffer: the safe
//! primitives the bounce backend composes into its pipeline (its read and write stagers live
//! with it, in `backend::bounce::staging`).
//!
//! - [`ChunkEvents`]: a chunk's pair of timing events, and serial mode's whole-range copies;
//! - [`CopyClock`] / [`CopySpan`] / [`union_s`]: copy spans of all threads on one clock;
//! - [`run_staged`]: an io_uring transfer on an engine whose buffer is pinned, with the
//!   backend's [`ChunkLogic`] deciding which chunk each request uses and when, and queueing
//!   copies through [`ChunkCopies`], the bounds-checked view of the engine's buffer during
//!   one engine call.
//!
//! Soundness: the raw pointer to the engine's buffer never leaves this module. The engine
//! keeps its buffer allocated until the stager's `finish` returned Ok; the adapter here
//! synchronises the stream in `finish` itself, before the chunk logic is asked anything, so
//! no copy outlives the transfer whatever the logic does; every copy's host range is checked
//! against the engine's buffer and its device range by [`DeviceBuffer`]. What the logic
//! decides (which chunk serves which request) can misplace data, never touch memory outside
//! the two buffers or after they are freed.

use std::marker::PhantomData;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::uring::{IoBuffer, Stager, UringEngine};
use crate::options::Op;
use crate::request::Request;
use crate::stats::LatencyRecorder;

use super::device_buffer::DeviceBuffer;
use super::pinned::PinnedBuffer;
use super::stream::{Event, Stream};

/// A chunk's pair of timing events: recorded before and after its copy.
pub struct ChunkEvents {
    start: Event,
    end: Event,
}

impl ChunkEvents {
    /// One pair per chunk, created in the context current on this thread.
    pub fn new(chunks: usize) -> Result<Vec<ChunkEvents>> {
        (0..chunks)
            .map(|_| {
                Ok(ChunkEvents {
                    start: Event::new(true)?,
                    end: Event::new(true)?,
                })
            })
            .collect()
    }

    /// Whether this pair's copy has ended (its end event completed); `what` names the copy
    /// in an error.
    pub fn copied(&self, what: &str) -> Result<bool> {
        self.end.is_done(what)
    }

    /// Blocks until this pair's copy has ended.
    pub fn wait_copied(&self, what: &str) -> Result<()> {
        self.end.synchronize(what)
    }

    /// This pair's completed copy as a span on `clock`.
    pub fn span(&self, clock: &CopyClock) -> Result<CopySpan> {
        clock.span(&self.start, &self.end)
    }

    /// Serial mode's copy to the device: `pinned[..len]` to device offset 0 between this
    /// pair's events, waited for; returns its span on `clock`.
    pub fn upload(
        &self,
        device: &DeviceBuffer,
        pinned: &PinnedBuffer,
        len: usize,
        stream: &Stream,
        clock: &CopyClock,
    ) -> Result<CopySpan> {
        let src = pinned.range(0, len)?;
        self.start.record(stream)?;
        // SAFETY: `src` is pinned memory borrowed for this whole call, and the stream is
        // synchronised below on every path once the copy may have been queued.
        let queued = unsafe { device.upload_async(0, src.as_ptr(), len, stream) };
        let recorded = queued.and_then(|()| self.end.record(stream));
        let synced = stream.synchronize("waiting for a copy to the device");
        recorded?;
        synced?;
        clock.span(&self.start, &self.end)
    }

    /// Serial mode's copy from the device: device offset 0 into `pinned[..len]`, as
    /// [`ChunkEvents::upload`].
    pub fn download(
        &self,
        device: &DeviceBuffer,
        pinned: &mut PinnedBuffer,
        len: usize,
        stream: &Stream,
        clock: &CopyClock,
    ) -> Result<CopySpan> {
        let dst = pinned.range_mut(0, len)?;
        self.start.record(stream)?;
        // SAFETY: `dst` is pinned memory borrowed mutably for this whole call, and the stream
        // is synchronised below on every path once the copy may have been queued.
        let queued = unsafe { device.download_async(0, dst.as_mut_ptr(), len, stream) };
        let recorded = queued.and_then(|()| self.end.record(stream));
        let synced = stream.synchronize("waiting for a copy from the device");
        recorded?;
        synced?;
        clock.span(&self.start, &self.end)
    }
}

/// The time origin of a run's copies: one timing event, recorded once in the device's
/// primary context, that every worker of the run on that device reads its copies' events
/// against (`cuEventElapsedTime` works between events of one context on different streams).
/// Copy spans of all threads are then on one clock, so the report can take their union: the
/// time the copy engine was busy, with no copy counted twice while another thread's copy held
/// the engine.
pub struct CopyClock {
    origin: Event,
}

// SAFETY: after `new` the origin event is never recorded again, only read by
// cuEventElapsedTime, which the driver allows from any thread where the event's context is
// current (every worker sharing a clock has made the same primary context current); the
// event is destroyed by whichever thread drops the last reference, with that context current.
unsafe impl Sync for CopyClock {}

impl CopyClock {
    /// Records the origin on `stream` (of the context current on this thread) and waits for it.
    pub fn new(stream: &Stream) -> Result<CopyClock> {
        let origin = Event::new(true)?;
        origin.record(stream)?;
        origin.synchronize("the copy clock's origin")?;
        Ok(CopyClock { origin })
    }

    /// The span of the copy between `start` and `end` (completed timing events), in seconds
    /// since the origin. Its length is read from the two events themselves, so it does not
    /// lose precision as the run gets longer (cuEventElapsedTime returns f32 milliseconds).
    pub fn span(&self, start: &Event, end: &Event) -> Result<CopySpan> {
        let at = f64::from(start.elapsed_ms_since(&self.origin)?) / 1e3;
        let len = f64::from(end.elapsed_ms_since(start)?).max(0.0) / 1e3;
        Ok(CopySpan {
            start_s: at,
            end_s: at + len,
        })
    }
}

/// One copy's span on a [`CopyClock`], from its start event to its end event: the time its
/// stream reached the copy until the copy finished, waiting for a busy copy engine included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CopySpan {
    /// Seconds from the clock's origin to the copy's start event.
    pub start_s: f64,
    /// Seconds from the clock's origin to the copy's end event.
    pub end_s: f64,
}

impl CopySpan {
    /// The span's length in seconds.
    pub fn len_s(&self) -> f64 {
        self.end_s - self.start_s
    }
}

/// Total length of the union of `spans` (any order; overlapping spans count once).
pub fn union_s(spans: &[CopySpan]) -> f64 {
    let mut sorted: Vec<CopySpan> = spans.to_vec();
    sorted.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for s in sorted {
        current = match current {
            Some((a, b)) if s.start_s <= b => Some((a, b.max(s.end_s))),
            Some((a, b)) => {
                total += b - a;
                Some((s.start_s, s.end_s))
            }
            None => Some((s.start_s, s.end_s)),
        };
    }
    if let Some((a, b)) = current {
        total += b - a;
    }
    total
}

/// The engine's pinned buffer during one call of [`ChunkLogic`]: asynchronous copies between
/// its bytes and the device buffer, on the transfer's stream, each between a chunk's timing
/// events. Host ranges are checked against the buffer's capacity, device ranges by
/// [`DeviceBuffer`]; the view lives only for the call.
pub struct ChunkCopies<'c> {
    base: *mut u8,
    capacity: usize,
    device: &'c DeviceBuffer,
    stream: &'c Stream,
    _call: PhantomData<&'c mut u8>,
}

impl ChunkCopies<'_> {
    fn check_host(&self, buf_offset: usize, len: usize) -> Result<()> {
        match buf_offset.checked_add(len) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(Error::Internal(format!(
                "internal error: a {len}-byte copy at offset {buf_offset} of a {}-byte pinned buffer",
                self.capacity
            ))),
        }
    }

    /// Queues the copy of `len` bytes at `buf_offset` of the engine's buffer to
    /// `device_offset` of the device buffer, between `events`' start and end.
    pub fn to_device(
        &mut self,
        buf_offset: usize,
        len: usize,
        device_offset: usize,
        events: &ChunkEvents,
    ) -> Result<()> {
        self.check_host(buf_offset, len)?;
        events.start.record(self.stream)?;
        // SAFETY: [buf_offset, +len) lies inside the engine's buffer (checked above), which
        // stays allocated until `CopyStager::finish` has synchronised the stream; the device
        // range is checked by `upload_async`.
        unsafe {
            self.device
                .upload_async(device_offset, self.base.add(buf_offset), len, self.stream)?
        };
        events.end.record(self.stream)
    }

    /// Queues the copy of `len` bytes at `device_offset` of the device buffer into
    /// `buf_offset` of the engine's buffer, between `events`' start and end.
    pub fn from_device(
        &mut self,
        device_offset: usize,
        buf_offset: usize,
        len: usize,
        events: &ChunkEvents,
    ) -> Result<()> {
        self.check_host(buf_offset, len)?;
        events.start.record(self.stream)?;
        // SAFETY: as in `to_device`.
        unsafe {
            self.device.download_async(
                device_offset,
                self.base.add(buf_offset),
                len,
                self.stream,
            )?
        };
        events.end.record(self.stream)
    }
}

/// The bounce backend's decisions during a staged transfer, in safe code: which part of the
/// engine's buffer each request uses and when, and which copies to queue (through
/// [`ChunkCopies`]). Called by the engine as [`Stager`]'s methods of the same names.
pub trait ChunkLogic {
    /// Buffer offset at which request `index` may do its I/O now, or None when no chunk is
    /// ready yet.
    fn acquire(
        &mut self,
        index: usize,
        request: &Request,
        copies: &mut ChunkCopies<'_>,
    ) -> Result<Option<usize>>;
    /// Request `index` moved all its bytes at `buf_offset`.
    fn complete(
        &mut self,
        index: usize,
        request: &Request,
        buf_offset: usize,
        copies: &mut ChunkCopies<'_>,
    ) -> Result<()>;
    /// Blocks until a queued copy makes room and returns true; false at once when none is
    /// queued.
    fn wait(&mut self) -> Result<bool>;
    /// Called once at the end, after the stream was synchronised (every copy has ended):
    /// account for the last copies.
    fn finish(&mut self) -> Result<()>;
}

/// io_uring's [`Stager`] over a [`ChunkLogic`]: the one place the engine's raw buffer pointer
/// meets a copy.
struct CopyStager<'a, L> {
    logic: &'a mut L,
    capacity: usize,
    device: &'a DeviceBuffer,
    stream: &'a Stream,
    /// "to the device" or "from the device", for error messages.
    direction: &'static str,
}

impl<'a, L: ChunkLogic> CopyStager<'a, L> {
    fn copies(&self, base: *mut u8) -> ChunkCopies<'a> {
        ChunkCopies {
            base,
            capacity: self.capacity,
            device: self.device,
            stream: self.stream,
            _call: PhantomData,
        }
    }
}

impl<L: ChunkLogic> Stager for CopyStager<'_, L> {
    unsafe fn acquire(
        &mut self,
        index: usize,
        request: &Request,
        base: *mut u8,
    ) -> Result<Option<usize>> {
        let mut copies = self.copies(base);
        self.logic.acquire(index, request, &mut copies)
    }

    unsafe fn complete(
        &mut self,
        index: usize,
        request: &Request,
        buf_offset: usize,
        base: *mut u8,
    ) -> Result<()> {
        let mut copies = self.copies(base);
        self.logic.complete(index, request, buf_offset, &mut copies)
    }

    fn wait(&mut self) -> Result<bool> {
        self.logic.wait()
    }

    fn finish(&mut self) -> Result<()> {
        self.stream
            .synchronize(&format!("the last copies {}", self.direction))?;
        self.logic.finish()
    }
}

/// Runs `requests` on `engine` (whose buffer is pinned memory) with `logic` placing each
/// request in the buffer and queueing copies between it and `device` on `stream` (reads: to
/// the device; writes: from it). Returns the time some request was in flight, as
/// [`UringEngine::run_staged`]; every copy has ended when it returns, on errors too (or the
/// engine leaks its buffer).
pub fn run_staged<L: ChunkLogic>(
    engine: &mut UringEngine<PinnedBuffer>,
    device: &DeviceBuffer,
    stream: &Stream,
    op: Op,
    requests: &[Request],
    latencies: &mut LatencyRecorder,
    logic: &mut L,
) -> Result<Duration> {
    let capacity = engine.io_buffer().capacity();
    let mut stager = CopyStager {
        logic,
        capacity,
        device,
        stream,
        direction: match op {
            Op::Read => "to the device",
            Op::Write => "from the device",
        },
    };
    engine.run_staged(op, requests, latencies, &mut stager)
}
