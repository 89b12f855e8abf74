//! The bounce pipeline's stagers: io_uring moves blocks between the file and a ring of K
//! pinned chunks, and these move the chunks between pinned memory and the device buffer,
//! asynchronously on the worker's stream, so disk I/O and copies overlap. They are safe code:
//! the copies themselves are `cuda::copy`'s primitives ([`ChunkCopies`], [`ChunkEvents`]),
//! run by [`cuda::copy::run_staged`](crate::cuda::copy::run_staged).
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
//! Queue depth and K are independent: the engine keeps at most `queue_depth` requests in
//! flight, and only K chunks exist, so at most min(qd, K) requests are in flight, and the
//! other chunks are being copied. A chunk is given to io_uring or to one copy at a time, by
//! construction of the free list.

use std::collections::VecDeque;

use crate::cuda::copy::{ChunkCopies, ChunkEvents, ChunkLogic, CopyClock, CopySpan};
use crate::error::{Error, Result};
use crate::request::Request;

/// What a stager measured in one transfer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyTime {
    /// Sum of the copies' durations on the stream, from their timing events, in seconds.
    pub seconds: f64,
    /// How many copies were made.
    pub copies: u64,
    /// Each copy's span on the run's [`CopyClock`].
    pub spans: Vec<CopySpan>,
}

/// Everything both stagers share.
struct Ring<'a> {
    events: &'a [ChunkEvents],
    clock: &'a CopyClock,
    chunk: usize,
    free: Vec<usize>,
    time: CopyTime,
}

impl<'a> Ring<'a> {
    fn new(events: &'a [ChunkEvents], clock: &'a CopyClock, chunk: usize) -> Self {
        Ring {
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
        let span = self.events[c].span(self.clock)?;
        self.time.seconds += span.len_s();
        self.time.copies += 1;
        self.time.spans.push(span);
        Ok(())
    }
}

/// Read side: file -> chunk (io_uring) -> device (async copy).
pub struct ReadStager<'a> {
    ring: Ring<'a>,
    /// Chunks whose copy to the device is queued, oldest first.
    copying: VecDeque<usize>,
}

impl<'a> ReadStager<'a> {
    /// `events.len()` chunks of `chunk` bytes; the engine's buffer must hold them all (a
    /// chunk outside it is refused by [`ChunkCopies`]).
    pub fn new(events: &'a [ChunkEvents], clock: &'a CopyClock, chunk: usize) -> Self {
        ReadStager {
            ring: Ring::new(events, clock, chunk),
            copying: VecDeque::with_capacity(events.len()),
        }
    }

    /// Frees the chunks whose copies have completed, oldest first.
    fn reap(&mut self) -> Result<()> {
        while let Some(&c) = self.copying.front() {
            if !self.ring.events[c].copied("a copy to the device")? {
                break;
            }
            self.copying.pop_front();
            self.ring.account(c)?;
            self.ring.free.push(c);
        }
        Ok(())
    }

    /// What the transfer's copies took (complete once the transfer returned Ok).
    pub fn into_copy_time(self) -> CopyTime {
        self.ring.time
    }
}

impl ChunkLogic for ReadStager<'_> {
    fn acquire(&mut self, _: usize, r: &Request, _: &mut ChunkCopies<'_>) -> Result<Option<usize>> {
        self.ring.check_len(r)?;
        if self.ring.free.is_empty() {
            self.reap()?;
        }
        Ok(self.ring.free.pop().map(|c| c * self.ring.chunk))
    }

    fn complete(
        &mut self,
        _: usize,
        r: &Request,
        buf_offset: usize,
        copies: &mut ChunkCopies<'_>,
    ) -> Result<()> {
        // Chunk c has just been filled by its read and is handed to this copy alone: it
        // returns to the free list only after the copy's end event has completed.
        let c = buf_offset / self.ring.chunk;
        copies.to_device(buf_offset, r.len, r.buf_offset, &self.ring.events[c])?;
        self.copying.push_back(c);
        Ok(())
    }

    fn wait(&mut self) -> Result<bool> {
        let Some(&c) = self.copying.front() else {
            return Ok(false);
        };
        self.ring.events[c].wait_copied("a copy to the device")?;
        self.reap()?;
        Ok(true)
    }

    fn finish(&mut self) -> Result<()> {
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
    /// `events.len()` chunks of `chunk` bytes for the transfer of `requests`, in order.
    pub fn new(
        events: &'a [ChunkEvents],
        clock: &'a CopyClock,
        chunk: usize,
        requests: &'a [Request],
    ) -> Self {
        WriteStager {
            ring: Ring::new(events, clock, chunk),
            requests,
            staged: VecDeque::with_capacity(events.len()),
            next_copy: 0,
        }
    }

    /// Queues copies of the next requests into every free chunk. A free chunk is read by
    /// no write (its last write completed) and written by no copy (its last copy completed
    /// before the write was submitted); it is handed to the engine only after the copy
    /// queued here completed.
    fn stage(&mut self, copies: &mut ChunkCopies<'_>) -> Result<()> {
        while self.next_copy < self.requests.len() {
            let Some(c) = self.ring.free.pop() else { break };
            let r = self.requests[self.next_copy];
            self.ring.check_len(&r)?;
            copies.from_device(
                r.buf_offset,
                c * self.ring.chunk,
                r.len,
                &self.ring.events[c],
            )?;
            self.staged.push_back((self.next_copy, c));
            self.next_copy += 1;
        }
        Ok(())
    }

    /// What the transfer's copies took (complete once the transfer returned Ok).
    pub fn into_copy_time(self) -> CopyTime {
        self.ring.time
    }
}

impl ChunkLogic for WriteStager<'_> {
    fn acquire(
        &mut self,
        index: usize,
        _: &Request,
        copies: &mut ChunkCopies<'_>,
    ) -> Result<Option<usize>> {
        self.stage(copies)?;
        let Some(&(staged, c)) = self.staged.front() else {
            return Ok(None);
        };
        debug_assert_eq!(staged, index, "requests are acquired in order");
        if !self.ring.events[c].copied("a copy from the device")? {
            return Ok(None);
        }
        self.staged.pop_front();
        self.ring.account(c)?;
        Ok(Some(c * self.ring.chunk))
    }

    fn complete(
        &mut self,
        _: usize,
        _: &Request,
        buf_offset: usize,
        copies: &mut ChunkCopies<'_>,
    ) -> Result<()> {
        self.ring.free.push(buf_offset / self.ring.chunk);
        self.stage(copies)
    }

    fn wait(&mut self) -> Result<bool> {
        let Some(&(_, c)) = self.staged.front() else {
            return Ok(false);
        };
        self.ring.events[c].wait_copied("a copy from the device")?;
        Ok(true)
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
