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
use crate::plan::Request;

use super::device_buffer::DeviceBuffer;
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
}

/// What a stager measured in one transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CopyTime {
    /// Sum of the copies' durations on the stream, from their timing events, in seconds.
    pub seconds: f64,
    pub copies: u64,
}

/// Everything both stagers share.
struct Ring<'a> {
    device: &'a DeviceBuffer,
    stream: &'a Stream,
    events: &'a [ChunkEvents],
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
        chunk: usize,
        direction: &'static str,
    ) -> Self {
        Ring {
            direction,
            device,
            stream,
            events,
            chunk,
            free: (0..events.len()).rev().collect(),
            time: CopyTime::default(),
        }
    }

    fn check_len(&self, r: &Request) -> Result<()> {
        if r.len > self.chunk {
            return Err(Error::Resources(format!(
                "internal error: a {}-byte request does not fit a {}-byte pinned chunk",
                r.len, self.chunk
            )));
        }
        Ok(())
    }

    /// Adds the duration of chunk `c`'s completed copy.
    fn account(&mut self, c: usize) -> Result<()> {
        let e = &self.events[c];
        let ms = e.end.elapsed_ms_since(&e.start)?;
        self.time.seconds += f64::from(ms) / 1e3;
        self.time.copies += 1;
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
        chunk: usize,
    ) -> Self {
        ReadStager {
            ring: Ring::new(device, stream, events, chunk, "to the device"),
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

    pub fn copy_time(&self) -> CopyTime {
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
        chunk: usize,
        requests: &'a [Request],
    ) -> Self {
        WriteStager {
            ring: Ring::new(device, stream, events, chunk, "from the device"),
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

    pub fn copy_time(&self) -> CopyTime {
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
