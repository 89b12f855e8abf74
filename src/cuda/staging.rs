//! The bounce pipeline's stagers: io_uring moves blocks between the file and a ring of K
//! pinned chunks, and these move the chunks between pinned memory and the device buffer,
//! asynchronously on the worker's stream, so disk I/O and copies overlap.
//!
//! Read ([`ReadStager`]): a free chunk is handed to the engine for the next request's read;
//! when the read completes, the chunk is copied to the request's place in the device buffer
//! (`cuMemcpyHtoDAsync`) between two timing events; the chunk is free again only once the
//! copy's end event has completed.
//!
//! Write ([`WriteStager`]): as many upcoming requests as there are free chunks are copied
//! from the device into chunks (`cuMemcpyDtoHAsync`); a request's write is submitted only
//! once its chunk's end event has completed without error, so a failed copy never reaches the
//! file; the chunk is free again when the write completes.
//!
//! Queue depth and K are independent: the engine keeps at most `--queue-depth` requests in
//! flight, and only K chunks exist, so at most min(qd, K) requests are in flight, and the
//! other chunks are being copied.
//!
//! Soundness: chunk memory belongs to the engine, which keeps it allocated until `finish`
//! returned Ok (see [`Stager`]). A chunk is given to io_uring or to one copy at a time, by
//! construction of the free list, and `finish` synchronises the stream, so no copy outlives
//! the transfer.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::io::uring::Stager;
use crate::request::Request;

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
    pub start_s: f64,
    pub end_s: f64,
}

impl CopySpan {
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

/// What a stager measured in one transfer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyTime {
    /// Sum of the copies' durations on the stream, from their timing events, in seconds.
    pub seconds: f64,
    pub copies: u64,
    /// Each copy's span on the run's [`CopyClock`].
    pub spans: Vec<CopySpan>,
}

/// Everything both stagers share.
struct Ring<'a> {
    device: &'a DeviceBuffer,
    stream: &'a Stream,
    events: &'a [ChunkEvents],
    clock: &'a CopyClock,
    chunk: usize,
    free: Vec<usize>,
    time: CopyTime,
    /// "to the device" or "from the device", for error messages.
    direction: &'static str,
}

impl<'a> Ring<'a> {
    fn new(
        device: &'a DeviceBuffer,
        stream: &'a Stream,
        events: &'a [ChunkEvents],
        clock: &'a CopyClock,
        chunk: usize,
        direction: &'static str,
    ) -> Self {
        Ring {
            direction,
            device,
            stream,
            events,
            clock,
            chunk,
            free: (0..events.len()).rev().collect(),
            time: CopyTime::default(),
        }
    }

    fn check_len(&self, r: &Request) -> Result<()> {
        if r.len > self.chunk {
            return Err(Error::Internal(format!(
                "internal error: a {}-byte request does not fit a {}-byte pinned chunk",
                r.len, self.chunk
            )));
        }
        Ok(())
    }

    /// Adds chunk `c`'s completed copy: its duration and its span on the clock.
    fn account(&mut self, c: usize) -> Result<()> {
        let e = &self.events[c];
        let span = self.clock.span(&e.start, &e.end)?;
        self.time.seconds += span.len_s();
        self.time.copies += 1;
        self.time.spans.push(span);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.stream
            .synchronize(&format!("the last copies {}", self.direction))
    }
}

/// Read side: file -> chunk (io_uring) -> device (async copy).
pub struct ReadStager<'a> {
    ring: Ring<'a>,
    /// Chunks whose copy to the device is queued, oldest first.
    copying: VecDeque<usize>,
}

impl<'a> ReadStager<'a> {
    /// `events.len()` chunks of `chunk` bytes; the engine's buffer must hold them all.
    pub fn new(
        device: &'a DeviceBuffer,
        stream: &'a Stream,
        events: &'a [ChunkEvents],
        clock: &'a CopyClock,
        chunk: usize,
    ) -> Self {
        ReadStager {
            ring: Ring::new(device, stream, events, clock, chunk, "to the device"),
            copying: VecDeque::with_capacity(events.len()),
        }
    }

    /// Frees the chunks whose copies have completed, oldest first.
    fn reap(&mut self) -> Result<()> {
        while let Some(&c) = self.copying.front() {
            if !self.ring.events[c].end.is_done("a copy to the device")? {
                break;
            }
            self.copying.pop_front();
            self.ring.account(c)?;
            self.ring.free.push(c);
        }
        Ok(())
    }

    /// What the transfer's copies took (complete once `finish` returned Ok).
    pub fn into_copy_time(self) -> CopyTime {
        self.ring.time
    }
}

impl Stager for ReadStager<'_> {
    unsafe fn acquire(&mut self, _: usize, r: &Request, _: *mut u8) -> Result<Option<usize>> {
        self.ring.check_len(r)?;
        if self.ring.free.is_empty() {
            self.reap()?;
        }
        Ok(self.ring.free.pop().map(|c| c * self.ring.chunk))
    }

    unsafe fn complete(
        &mut self,
        _: usize,
        r: &Request,
        buf_offset: usize,
        base: *mut u8,
    ) -> Result<()> {
        let c = buf_offset / self.ring.chunk;
        let e = &self.ring.events[c];
        e.start.record(self.ring.stream)?;
        // SAFETY: chunk c ([buf_offset, +r.len) of the engine's pinned buffer at `base`) has
        // just been filled by its read and is handed to this copy alone: it returns to the
        // free list only after the end event recorded below has completed, and the engine
        // keeps the buffer allocated until `finish` has synchronised the stream.
        unsafe {
            self.ring.device.upload_async(
                r.buf_offset,
                base.add(buf_offset),
                r.len,
                self.ring.stream,
            )?
        };
        e.end.record(self.ring.stream)?;
        self.copying.push_back(c);
        Ok(())
    }

    fn wait(&mut self) -> Result<bool> {
        let Some(&c) = self.copying.front() else {
            return Ok(false);
        };
        self.ring.events[c]
            .end
            .synchronize("a copy to the device")?;
        self.reap()?;
        Ok(true)
    }

    fn finish(&mut self) -> Result<()> {
        self.ring.finish()?;
        self.reap()
    }
}

/// Write side: device -> chunk (async copy) -> file (io_uring).
pub struct WriteStager<'a> {
    ring: Ring<'a>,
    requests: &'a [Request],
    /// Requests whose copy into a chunk is queued, in request order: (request, chunk).
    staged: VecDeque<(usize, usize)>,
    /// The next request to copy out of the device.
    next_copy: usize,
}

impl<'a> WriteStager<'a> {
    pub fn new(
        device: &'a DeviceBuffer,
        stream: &'a Stream,
        events: &'a [ChunkEvents],
        clock: &'a CopyClock,
        chunk: usize,
        requests: &'a [Request],
    ) -> Self {
        WriteStager {
            ring: Ring::new(device, stream, events, clock, chunk, "from the device"),
            requests,
            staged: VecDeque::with_capacity(events.len()),
            next_copy: 0,
        }
    }

    /// Queues copies of the next requests into every free chunk.
    ///
    /// # Safety
    /// `base` is the engine's buffer (see [`Stager`]).
    unsafe fn stage(&mut self, base: *mut u8) -> Result<()> {
        while self.next_copy < self.requests.len() {
            let Some(c) = self.ring.free.pop() else { break };
            let r = self.requests[self.next_copy];
            self.ring.check_len(&r)?;
            let e = &self.ring.events[c];
            e.start.record(self.ring.stream)?;
            // SAFETY: chunk c is free: no write reads it (its last write completed) and no
            // copy writes it (its last copy's event completed before the write was
            // submitted). It is handed to the engine only after the end event recorded below
            // completed, and the engine keeps the buffer allocated until `finish`.
            unsafe {
                self.ring.device.download_async(
                    r.buf_offset,
                    base.add(c * self.ring.chunk),
                    r.len,
                    self.ring.stream,
                )?
            };
            e.end.record(self.ring.stream)?;
            self.staged.push_back((self.next_copy, c));
            self.next_copy += 1;
        }
        Ok(())
    }

    /// What the transfer's copies took (complete once `finish` returned Ok).
    pub fn into_copy_time(self) -> CopyTime {
        self.ring.time
    }
}

impl Stager for WriteStager<'_> {
    unsafe fn acquire(
        &mut self,
        index: usize,
        _: &Request,
        base: *mut u8,
    ) -> Result<Option<usize>> {
        // SAFETY: `base` comes from the engine, per this method's own contract.
        unsafe { self.stage(base)? };
        let Some(&(staged, c)) = self.staged.front() else {
            return Ok(None);
        };
        debug_assert_eq!(staged, index, "requests are acquired in order");
        if !self.ring.events[c].end.is_done("a copy from the device")? {
            return Ok(None);
        }
        self.staged.pop_front();
        self.ring.account(c)?;
        Ok(Some(c * self.ring.chunk))
    }

    unsafe fn complete(
        &mut self,
        _: usize,
        _: &Request,
        buf_offset: usize,
        base: *mut u8,
    ) -> Result<()> {
        self.ring.free.push(buf_offset / self.ring.chunk);
        // SAFETY: `base` comes from the engine, per this method's own contract.
        unsafe { self.stage(base) }
    }

    fn wait(&mut self) -> Result<bool> {
        let Some(&(_, c)) = self.staged.front() else {
            return Ok(false);
        };
        self.ring.events[c]
            .end
            .synchronize("a copy from the device")?;
        Ok(true)
    }

    fn finish(&mut self) -> Result<()> {
        self.ring.finish()
    }
}
