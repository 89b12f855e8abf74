//! Where an engine does its I/O: [`IoBuffer`], the memory it owns (a [`HostBuffer`], or a
//! wrapper or view of memory someone else owns), and [`Stager`], which decides where in that
//! memory each request goes and acts on each completion. Also the placements the engine comes
//! with: [`ReusedBuffers`] (fio's), and the in-place ones behind `UringEngine::run` and
//! `UringEngine::run_observed`. The contract between engine and stager (what stays valid,
//! and until when) is on [`Stager`].

use crate::error::Result;
use crate::io::buffer::{HostBuffer, PageBacking};
use crate::request::Request;

/// Memory an engine does its I/O in: a [`HostBuffer`], a wrapper that owns one (pinned
/// memory registered with CUDA, for instance), or a view of memory someone else owns
/// ([`LentMemory`](crate::io::lent::LentMemory)). The engine owns it and frees (or gives it
/// back) only when no request can still use it.
pub trait IoBuffer: Send {
    /// The first byte; valid for `capacity()` bytes for as long as the value lives.
    fn as_mut_ptr(&mut self) -> *mut u8;
    /// Bytes usable for I/O (the length rounded up to whole pages).
    fn capacity(&self) -> usize;
    /// Which pages back the buffer (reports print it).
    fn backing(&self) -> PageBacking;
    /// The buffer's bytes (its length, not its capacity).
    fn as_slice(&self) -> &[u8];
    /// The buffer's bytes, mutably.
    fn as_mut_slice(&mut self) -> &mut [u8];
}

impl IoBuffer for HostBuffer {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        HostBuffer::as_mut_ptr(self)
    }
    fn capacity(&self) -> usize {
        HostBuffer::capacity(self)
    }
    fn backing(&self) -> PageBacking {
        HostBuffer::backing(self)
    }
    fn as_slice(&self) -> &[u8] {
        HostBuffer::as_slice(self)
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        HostBuffer::as_mut_slice(self)
    }
}

/// Decides where in the engine's buffer each request does its I/O, and what happens around
/// it (see [`UringEngine::run_staged`]). The bounce backend's stagers copy between a ring of
/// pinned chunks and the GPU here.
///
/// What the engine promises a stager: `base` is the engine's buffer, valid for its capacity,
/// and stays allocated until `finish` has returned `Ok` (if `finish` fails, the engine leaks
/// the buffer rather than free memory that asynchronous work may still use); requests are
/// acquired in order; the range given out by `acquire` is used by no request of the engine
/// until that request's `complete` (or, after an error, until `finish`).
///
/// [`UringEngine::run_staged`]: super::UringEngine::run_staged
pub trait Stager {
    /// Buffer offset at which request `index` may do its I/O now, or None when no room is
    /// ready yet (the engine then waits for completions, or calls [`Stager::wait`]).
    ///
    /// # Safety
    /// `base` must be the engine's buffer, with the guarantees listed on the trait.
    unsafe fn acquire(
        &mut self,
        index: usize,
        request: &Request,
        base: *mut u8,
    ) -> Result<Option<usize>>;
    /// Request `index` moved all its bytes at `buf_offset`.
    ///
    /// # Safety
    /// As for `acquire`.
    unsafe fn complete(
        &mut self,
        index: usize,
        request: &Request,
        buf_offset: usize,
        base: *mut u8,
    ) -> Result<()>;
    /// `acquire` said None: block until the stager's own pending work (a copy) makes room,
    /// and return true; return false at once when it has nothing pending (room then comes
    /// back only with I/O completions).
    fn wait(&mut self) -> Result<bool>;
    /// Called once before `run_staged` returns, on success and after errors alike: returns
    /// only when the stager's own work on the buffer has ended.
    fn finish(&mut self) -> Result<()>;
    /// True when `acquire` never waits on `complete` (every request has its own range): the
    /// engine then refills the queue and submits before it calls `complete`, so that work
    /// done there (a checksum) overlaps full-queue I/O instead of delaying the refill.
    fn independent_ranges(&self) -> bool {
        false
    }
}

/// fio-style placement: `slots` regions of `block` bytes, reused as requests complete. A region
/// is handed out again only after the request in it completed (the engine never has more than
/// queue depth requests in flight, and there are that many regions).
pub struct ReusedBuffers {
    free: Vec<usize>,
}

impl ReusedBuffers {
    /// `slots` free regions at byte offsets `0, block, 2*block, ...` of the buffer.
    pub fn new(slots: usize, block: usize) -> ReusedBuffers {
        ReusedBuffers {
            free: (0..slots).rev().map(|i| i * block).collect(),
        }
    }
}

impl Stager for ReusedBuffers {
    unsafe fn acquire(&mut self, _: usize, _: &Request, _: *mut u8) -> Result<Option<usize>> {
        Ok(self.free.pop())
    }
    unsafe fn complete(&mut self, _: usize, _: &Request, offset: usize, _: *mut u8) -> Result<()> {
        self.free.push(offset);
        Ok(())
    }
    fn wait(&mut self) -> Result<bool> {
        Ok(false)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The plain placement: every request at its own `buf_offset`, always ready.
pub(super) struct InPlace;

impl Stager for InPlace {
    unsafe fn acquire(&mut self, _: usize, request: &Request, _: *mut u8) -> Result<Option<usize>> {
        Ok(Some(request.buf_offset))
    }
    unsafe fn complete(&mut self, _: usize, _: &Request, _: usize, _: *mut u8) -> Result<()> {
        Ok(())
    }
    fn wait(&mut self) -> Result<bool> {
        Ok(false)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// In-place placement that hands each request's bytes to `f(buf_offset, bytes)` as soon as
/// the request has completed, while the others are still in flight (the swap store takes
/// its CRC-32C there, overlapped with the I/O instead of after it).
pub(super) struct Observed<'a> {
    pub(super) f: &'a mut dyn FnMut(usize, &[u8]) -> Result<()>,
}

impl Stager for Observed<'_> {
    unsafe fn acquire(&mut self, _: usize, request: &Request, _: *mut u8) -> Result<Option<usize>> {
        Ok(Some(request.buf_offset))
    }
    fn independent_ranges(&self) -> bool {
        true
    }
    unsafe fn complete(
        &mut self,
        _: usize,
        request: &Request,
        buf_offset: usize,
        base: *mut u8,
    ) -> Result<()> {
        // SAFETY: `base` is the engine's buffer, valid for its capacity (the Stager contract),
        // and `entry` checked that [buf_offset, buf_offset + len) lies inside it. The request
        // has completed, so the kernel no longer touches that range; the requests still in
        // flight use other, disjoint ranges (in place: each at its own buf_offset), and no
        // `&mut` to the buffer is live while the engine pumps. The slice ends with this call.
        let bytes = unsafe { std::slice::from_raw_parts(base.add(buf_offset), request.len) };
        (self.f)(buf_offset, bytes)
    }
    fn wait(&mut self) -> Result<bool> {
        Ok(false)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
