//! An io_uring engine for one worker thread: keeps up to `queue_depth` requests in flight
//! between one file and one buffer, refilling as completions arrive.
//!
//! Soundness rule (after tokio-rs/io-uring): building an entry is safe, pushing it is unsafe
//! because the kernel will use the buffer later. The engine owns both the ring and the buffer,
//! declares the ring first so it is dropped first, and never returns from [`UringEngine::run`]
//! with a request in flight, not even on error: it stops submitting and drains the ring. So a
//! buffer always outlives every operation on it.
//!
//! Every completion is checked: a negative result is an error naming the operation, path,
//! offset and length; a short result is resubmitted for the remainder; a zero result is the
//! end of the file (read) or a device that took nothing (write), also an error.

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::error::{Error, FileOp, Result};
use crate::io::buffer::{HostBuffer, PageBacking};
use crate::io::file::DataFile;
use crate::io::sys;
use crate::options::Op;
use crate::plan::Request;
use crate::size::Bytes;
use crate::stats::LatencyRecorder;

/// io_uring registers at most 1 GiB per buffer; bigger buffers are registered in segments.
const MAX_REGISTERED: u64 = 1 << 30;

/// Creates a ring with the cheapest completion mode the kernel offers: DEFER_TASKRUN (6.1+),
/// then COOP_TASKRUN (5.19+), then the default. Returns the ring and the mode's name.
pub fn new_ring(entries: u32) -> std::io::Result<(IoUring, &'static str)> {
    if let Ok(r) = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
    {
        return Ok((r, "defer-taskrun"));
    }
    if let Ok(r) = IoUring::builder().setup_coop_taskrun().build(entries) {
        return Ok((r, "coop-taskrun"));
    }
    IoUring::new(entries).map(|r| (r, "default"))
}

/// Why io_uring cannot be used here, or None when a ring can be made.
pub fn unavailable_reason() -> Option<String> {
    match IoUring::new(2) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "io_uring_setup failed ({e}): the kernel has io_uring disabled (sysctl kernel.io_uring_disabled) or a seccomp filter blocks it (common in containers); use --backend posix"
        )),
    }
}

/// Registration of the buffer (in segments of at most 1 GiB) and the file's descriptors.
struct Fixed {
    /// Bytes per registered segment; request `buf_offset / segment` is its buffer index.
    segment: u64,
}

/// Index of the O_DIRECT descriptor and of the buffered one (for tails) in the registered
/// file table.
const FIXED_IO_FD: u32 = 0;
const FIXED_TAIL_FD: u32 = 1;

/// One worker's ring, buffer and file.
pub struct UringEngine {
    // Dropped by hand in `Drop`: the ring first, then the buffer (unless leaked).
    ring: ManuallyDrop<IoUring>,
    buf: ManuallyDrop<HostBuffer>,
    /// Set when requests may still be in the kernel and could not be drained.
    leak_buffer: bool,
    /// Requests pushed and not yet completed. Kept in the engine (not in `run`) so that `Drop`
    /// can wait for them if `run` is left by a panic.
    in_flight: usize,
    file: Arc<DataFile>,
    queue_depth: u32,
    fixed: Option<Fixed>,
    ring_mode: &'static str,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    request: usize,
    done: usize,
    started: Option<Instant>,
}

impl UringEngine {
    /// Makes the ring and, with `fixed`, registers `buf` and the file's descriptors.
    pub fn new(
        buf: HostBuffer,
        file: Arc<DataFile>,
        queue_depth: u32,
        block_size: u64,
        fixed: bool,
    ) -> Result<UringEngine> {
        let (ring, ring_mode) =
            new_ring(queue_depth.next_power_of_two()).map_err(|e| Error::Unavailable {
                backend: "host".into(),
                reason: format!(
                    "io_uring_setup with {queue_depth} entries failed ({e}); use --backend posix"
                ),
            })?;
        let mut engine = UringEngine {
            ring: ManuallyDrop::new(ring),
            buf: ManuallyDrop::new(buf),
            leak_buffer: false,
            in_flight: 0,
            file,
            queue_depth,
            fixed: None,
            ring_mode,
        };
        if fixed {
            engine.register(block_size)?;
        }
        Ok(engine)
    }

    fn register(&mut self, block_size: u64) -> Result<()> {
        let segment = (MAX_REGISTERED / block_size) * block_size;
        let cap = self.buf.capacity() as u64;
        let base = self.buf.as_mut_ptr();
        let iovecs: Vec<libc::iovec> = (0..cap.div_ceil(segment))
            .map(|i| {
                let start = i * segment;
                libc::iovec {
                    // SAFETY: start < capacity, so the pointer stays inside the buffer.
                    iov_base: unsafe { base.add(start as usize) } as *mut libc::c_void,
                    iov_len: segment.min(cap - start) as usize,
                }
            })
            .collect();
        // SAFETY: every iovec lies inside self.buf, which self owns and frees only after the
        // ring is closed (see `Drop`), so the registration never outlives the memory.
        let rc = unsafe { self.ring.submitter().register_buffers(&iovecs) };
        if let Err(e) = rc {
            if e.raw_os_error() == Some(libc::ENOMEM) && !sys::has_cap_ipc_lock() {
                return Err(Error::Memlock {
                    what: format!("--fixed-buffers registration of {}", Bytes(cap)),
                    needed: cap,
                    limit: sys::memlock_limit(),
                    hint: "run without --fixed-buffers",
                });
            }
            return Err(Error::Resources(format!(
                "--fixed-buffers: io_uring buffer registration of {} failed: {e}",
                Bytes(cap)
            )));
        }
        self.ring
            .submitter()
            .register_files(&[self.file.io_fd(), self.file.buffered_fd()])
            .map_err(|e| {
                Error::Resources(format!(
                    "--fixed-buffers: io_uring file registration failed: {e}"
                ))
            })?;
        self.fixed = Some(Fixed { segment });
        Ok(())
    }

    /// How the engine runs, for reports.
    pub fn mode(&self) -> String {
        let io = if self.file.is_direct() {
            "O_DIRECT"
        } else {
            "buffered"
        };
        let reg = if self.fixed.is_some() {
            "fixed buffers+files"
        } else {
            "unregistered buffers"
        };
        format!(
            "io_uring {}, {io}, {reg}, qd {}",
            self.ring_mode, self.queue_depth
        )
    }

    pub fn buffer_pages(&self) -> PageBacking {
        self.buf.backing()
    }

    pub fn buffer(&self) -> &[u8] {
        self.buf.as_slice()
    }

    pub fn buffer_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut_slice()
    }

    /// The submission entry moving `len` bytes at file offset `offset` to or from buffer
    /// byte `buf_offset`. Building it is safe; pushing it is not.
    fn entry(
        &mut self,
        op: Op,
        tail: bool,
        offset: u64,
        buf_offset: usize,
        len: usize,
        slot: usize,
    ) -> squeue::Entry {
        assert!(
            buf_offset + len <= self.buf.capacity(),
            "request outside its buffer"
        );
        // SAFETY: checked just above that [buf_offset, buf_offset+len) is inside the buffer.
        let ptr = unsafe { self.buf.as_mut_ptr().add(buf_offset) };
        let len32 = u32::try_from(len).expect("block sizes are capped at 1 GiB");
        let entry = match (&self.fixed, op) {
            (Some(f), Op::Read) => {
                let idx =
                    u16::try_from(buf_offset as u64 / f.segment).expect("at most 65535 segments");
                let fd = types::Fixed(if tail { FIXED_TAIL_FD } else { FIXED_IO_FD });
                opcode::ReadFixed::new(fd, ptr, len32, idx)
                    .offset(offset)
                    .build()
            }
            (Some(f), Op::Write) => {
                let idx =
                    u16::try_from(buf_offset as u64 / f.segment).expect("at most 65535 segments");
                let fd = types::Fixed(if tail { FIXED_TAIL_FD } else { FIXED_IO_FD });
                opcode::WriteFixed::new(fd, ptr, len32, idx)
                    .offset(offset)
                    .build()
            }
            (None, Op::Read) => {
                let fd = types::Fd(if tail {
                    self.file.buffered_fd()
                } else {
                    self.file.io_fd()
                });
                opcode::Read::new(fd, ptr, len32).offset(offset).build()
            }
            (None, Op::Write) => {
                let fd = types::Fd(if tail {
                    self.file.buffered_fd()
                } else {
                    self.file.io_fd()
                });
                opcode::Write::new(fd, ptr, len32).offset(offset).build()
            }
        };
        // A tail write goes through the page cache, and usually shares a page with the
        // O_DIRECT write just before it. If both run at once, the direct write cannot
        // invalidate the page the buffered write dirtied: the kernel then flags the file with
        // EIO ("Page cache invalidation failure on direct I/O"), fdatasync fails, and stale
        // page contents may be written back over the direct write. IO_DRAIN runs the tail
        // alone: after every earlier request has completed, and before any later one starts.
        let entry = if tail && op == Op::Write {
            entry.flags(squeue::Flags::IO_DRAIN)
        } else {
            entry
        };
        entry.user_data(slot as u64)
    }

    fn push(&mut self, entry: &squeue::Entry) {
        // SAFETY: the entry points into self.buf (checked in `entry`), which outlives the
        // operation: `run` drains every in-flight request before it returns (or, if the
        // kernel refuses to let it, marks the buffer to be leaked), and `Drop` waits for any
        // request still counted in flight before it frees the buffer. At most queue_depth entries are in flight and the ring
        // has at least that many slots, so the queue cannot be full.
        let pushed = unsafe { self.ring.submission().push(entry) };
        pushed.expect("submission queue sized to the queue depth");
    }

    /// Moves every request, keeping up to queue_depth in flight; one latency per request.
    pub fn run(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<()> {
        let qd = self.queue_depth as usize;
        let mut slots = vec![Slot::default(); qd];
        let mut free: Vec<usize> = (0..qd).rev().collect();
        let mut next = 0usize;
        debug_assert_eq!(self.in_flight, 0, "a previous run drained its ring");
        let mut first_error: Option<Error> = None;
        let mut completions: Vec<(usize, i32)> = Vec::with_capacity(qd);
        loop {
            while first_error.is_none() && next < requests.len() && !free.is_empty() {
                let slot = free.pop().expect("checked non-empty");
                let r = requests[next];
                slots[slot] = Slot {
                    request: next,
                    done: 0,
                    started: Some(Instant::now()),
                };
                let e = self.entry(op, r.tail, r.file_offset, r.buf_offset, r.len, slot);
                self.push(&e);
                next += 1;
                self.in_flight += 1;
            }
            if self.in_flight == 0 {
                break;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                    ) => {}
                Err(e) => {
                    // The kernel refused io_uring_enter itself: requests it already holds may
                    // still be running and cannot be waited for here, so the buffer they point
                    // into is leaked rather than freed under them.
                    self.leak_buffer = true;
                    return Err(Error::Resources(format!(
                        "io_uring_enter failed with {} requests in flight on {}: {e}",
                        self.in_flight,
                        self.file.path().display()
                    )));
                }
            }
            completions.clear();
            completions.extend(
                self.ring
                    .completion()
                    .map(|c: cqueue::Entry| (c.user_data() as usize, c.result())),
            );
            for &(slot, res) in &completions {
                let s = slots[slot];
                let r = requests[s.request];
                let offset = r.file_offset + s.done as u64;
                let remaining = r.len - s.done;
                let failure = if res < 0 {
                    Some(Error::io(
                        FileOp::from(op),
                        self.file.path(),
                        offset,
                        remaining as u64,
                        std::io::Error::from_raw_os_error(-res),
                    ))
                } else if res == 0 {
                    Some(Error::nothing_moved(
                        op,
                        self.file.path(),
                        offset,
                        remaining,
                    ))
                } else {
                    None
                };
                if let Some(err) = failure {
                    first_error.get_or_insert(err);
                    self.in_flight -= 1;
                    free.push(slot);
                    continue;
                }
                let done = s.done + res as usize;
                if done >= r.len {
                    if let Some(t) = s.started {
                        latencies.record(t.elapsed());
                    }
                    self.in_flight -= 1;
                    free.push(slot);
                } else if first_error.is_some() {
                    self.in_flight -= 1;
                    free.push(slot);
                } else {
                    // Short transfer: resubmit the remainder in the same slot.
                    slots[slot].done = done;
                    let e = self.entry(
                        op,
                        r.tail,
                        r.file_offset + done as u64,
                        r.buf_offset + done,
                        r.len - done,
                        slot,
                    );
                    self.push(&e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for UringEngine {
    fn drop(&mut self) {
        // Closing a ring does not wait for its requests. `run` never returns with requests in
        // flight, but a panic inside it could: wait for them here, and if the kernel will not
        // let us, leak the buffer rather than free memory a request may still write.
        while self.in_flight > 0 && !self.leak_buffer {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => self.leak_buffer = true,
            }
            let reaped = self.ring.completion().count();
            self.in_flight = self.in_flight.saturating_sub(reaped);
        }
        // SAFETY: each field is dropped exactly once, here, and never used again. No request is
        // in flight any more (waited for above), or the buffer is leaked instead of freed.
        unsafe {
            ManuallyDrop::drop(&mut self.ring);
            if !self.leak_buffer {
                ManuallyDrop::drop(&mut self.buf);
            }
        }
    }
}
