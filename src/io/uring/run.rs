//! How an engine moves requests: each becomes a submission entry (building it is safe,
//! pushing it is not), up to `queue_depth` stay in flight and are refilled as completions
//! arrive, and every completion is checked (errors name the operation, path, offset and
//! length; short transfers are resubmitted for the rest). A run never returns with a request
//! in flight: on an error it stops submitting and drains the ring.

use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types};

use crate::error::{Error, FileOp, Result};
use crate::options::Op;
use crate::request::Request;
use crate::stats::LatencyRecorder;
use crate::types::ring_options::{RingOpcode, RingSetup, RingSubmit};

use super::engine::{SlotIovec, UringEngine, FIXED_IO_FD, FIXED_TAIL_FD};
use super::stager::{InPlace, IoBuffer, Observed, Stager};

/// IORING_ENTER_GETEVENTS, from linux/io_uring.h (the io-uring crate keeps its copy private).
const IORING_ENTER_GETEVENTS: u32 = 1;

#[derive(Clone, Copy, Default)]
struct Slot {
    request: usize,
    /// Where the request's bytes start in the buffer.
    buf_offset: usize,
    done: usize,
    started: Option<Instant>,
}

impl<B: IoBuffer> UringEngine<B> {
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
            (None, op) => {
                let vectored = self.opts.opcode == RingOpcode::Readv;
                if vectored {
                    self.iovecs[slot] = SlotIovec(libc::iovec {
                        iov_base: ptr as *mut libc::c_void,
                        iov_len: len,
                    });
                }
                let iov = &self.iovecs[slot].0 as *const libc::iovec;
                macro_rules! build {
                    ($fd:expr) => {
                        match (op, vectored) {
                            (Op::Read, false) => {
                                opcode::Read::new($fd, ptr, len32).offset(offset).build()
                            }
                            (Op::Write, false) => {
                                opcode::Write::new($fd, ptr, len32).offset(offset).build()
                            }
                            (Op::Read, true) => {
                                opcode::Readv::new($fd, iov, 1).offset(offset).build()
                            }
                            (Op::Write, true) => {
                                opcode::Writev::new($fd, iov, 1).offset(offset).build()
                            }
                        }
                    };
                }
                if self.files_registered {
                    build!(types::Fixed(if tail { FIXED_TAIL_FD } else { FIXED_IO_FD }))
                } else {
                    build!(types::Fd(if tail {
                        self.file.buffered_fd()
                    } else {
                        self.file.io_fd()
                    }))
                }
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
        // operation: a run drains every in-flight request before it returns (or, if the
        // kernel refuses to let it, marks the buffer to be leaked), and `Drop` waits for any
        // request still counted in flight before it frees the buffer. A READV/WRITEV entry
        // points at its slot's iovec in `self.iovecs`, which is never reallocated and not
        // rewritten until that slot's request completed. At most queue_depth entries are in
        // flight and the ring has at least that many slots, so the queue cannot be full.
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
        self.run_staged(op, requests, latencies, &mut InPlace)
            .map(drop)
    }

    /// Like [`UringEngine::run`] (every request at its own `buf_offset`), calling
    /// `f(buf_offset, bytes)` for each request once it has completed, in completion order,
    /// while the rest stay in flight. An error from `f` ends the run with it.
    pub fn run_observed(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
        f: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.run_staged(op, requests, latencies, &mut Observed { f })
            .map(drop)
    }

    /// Like [`UringEngine::run`], with `stager` choosing where in the buffer each request
    /// does its I/O and acting on each completion. Returns the time during which at least one
    /// request was in flight. Never returns with a request in flight, and calls
    /// `stager.finish()` before returning, on errors too.
    pub fn run_staged(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
        stager: &mut dyn Stager,
    ) -> Result<Duration> {
        let mut busy = IoBusy::default();
        let outcome = self.pump(op, requests, latencies, stager, &mut busy);
        let finished = stager.finish();
        if finished.is_err() {
            // The stager could not confirm that its asynchronous work on the buffer ended.
            self.leak_buffer = true;
        }
        outcome?;
        finished?;
        Ok(busy.total)
    }

    /// Submits what is queued and, with `want` > 0, waits for that many completions.
    /// Interruptions are retried by the caller's loop; any other failure of io_uring_enter
    /// leaks the buffer, since requests the kernel already holds cannot be waited for.
    ///
    /// Like fio, every enter of a ring that is not polled by SQPOLL carries GETEVENTS when it
    /// submits one request at a time (`--ring-submit each`): with DEFER_TASKRUN that posts the
    /// completions already in, so the next wait may find them without sleeping.
    fn enter(&mut self, want: usize) -> Result<()> {
        let rc = if self.opts.setup == RingSetup::Sqpoll {
            // The crate wakes the polling thread when it sleeps.
            if want == 0 {
                self.ring.submit()
            } else {
                self.ring.submit_and_wait(want)
            }
        } else {
            let to_submit = self.ring.submission().len() as u32;
            let getevents = want > 0 || self.opts.submit == RingSubmit::Each;
            let flags = if getevents { IORING_ENTER_GETEVENTS } else { 0 };
            if to_submit == 0 && !getevents {
                return Ok(());
            }
            // SAFETY: no argument pointer is passed (None), so the kernel reads no memory of
            // ours beyond the rings, which the IoUring owns.
            unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(to_submit, want as u32, flags, None)
            }
        };
        match rc {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => {
                self.leak_buffer = true;
                Err(Error::IoUring {
                    what: format!(
                        "io_uring_enter failed with {} requests in flight on {}",
                        self.in_flight,
                        self.file.path().display()
                    )
                    .into(),
                    source: e,
                })
            }
        }
    }

    fn pump(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
        stager: &mut dyn Stager,
        busy: &mut IoBusy,
    ) -> Result<()> {
        let qd = self.queue_depth as usize;
        let mut slots = vec![Slot::default(); qd];
        let mut free: Vec<usize> = (0..qd).rev().collect();
        let mut next = 0usize;
        debug_assert_eq!(self.in_flight, 0, "a previous run drained its ring");
        let mut first_error: Option<Error> = None;
        let mut completions: Vec<(usize, i32)> = Vec::with_capacity(qd);
        // Finished requests whose `complete` waits until the queue is refilled and submitted
        // (stagers with independent ranges only).
        let defer = stager.independent_ranges();
        let mut finished: Vec<(usize, usize)> = Vec::with_capacity(qd);
        let base = self.buf.as_mut_ptr();
        loop {
            let mut blocked = false;
            while first_error.is_none() && next < requests.len() && !free.is_empty() {
                let r = requests[next];
                // SAFETY: `base` is this engine's buffer, which stays allocated until the
                // stager's `finish` succeeded (see `run_staged` and `Drop`).
                let buf_offset = match unsafe { stager.acquire(next, &r, base) } {
                    Ok(Some(o)) => o,
                    Ok(None) => {
                        blocked = true;
                        break;
                    }
                    Err(e) => {
                        first_error = Some(e);
                        break;
                    }
                };
                let slot = free.pop().expect("checked non-empty");
                slots[slot] = Slot {
                    request: next,
                    buf_offset,
                    done: 0,
                    started: Some(Instant::now()),
                };
                let e = self.entry(op, r.tail, r.file_offset, buf_offset, r.len, slot);
                self.push(&e);
                next += 1;
                if self.in_flight == 0 {
                    busy.start();
                }
                self.in_flight += 1;
                if self.opts.submit == RingSubmit::Each {
                    self.enter(0)?;
                }
            }
            if blocked && first_error.is_none() {
                // The stager has no room ready. If its own work (a copy) will make some, wait
                // for that rather than for an I/O completion, so the queue refills as soon as
                // a chunk frees up; what was queued meanwhile goes to the kernel first.
                if self.in_flight > 0 {
                    self.enter(0)?;
                }
                match stager.wait() {
                    Ok(true) => continue,
                    Ok(false) if self.in_flight > 0 => {} // room comes back with completions
                    Ok(false) => {
                        first_error = Some(Error::Internal(
                            "internal error: a stager had no room and nothing to wait for (please report it)".into(),
                        ))
                    }
                    Err(e) => first_error = Some(e),
                }
            }
            if !finished.is_empty() {
                // The refill above goes to the kernel first; then the finished requests'
                // work runs while the queue is full.
                if self.in_flight > 0 {
                    self.enter(0)?;
                }
                for (index, buf_offset) in finished.drain(..) {
                    if first_error.is_none() {
                        // SAFETY: as for `acquire` above; the range of a finished request is
                        // used by no request in flight (independent ranges).
                        let done =
                            unsafe { stager.complete(index, &requests[index], buf_offset, base) };
                        if let Err(e) = done {
                            first_error = Some(e);
                        }
                    }
                }
            }
            if self.in_flight == 0 {
                break;
            }
            // Completions already posted are reaped without sleeping (what is still queued
            // goes to the kernel first); otherwise wait for as many as `--ring-wait` says.
            if self.ring.completion().is_empty() {
                let want = self.opts.wait.want(self.in_flight);
                self.enter(want)?;
            } else if !self.ring.submission().is_empty() {
                self.enter(0)?;
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
                    if defer {
                        finished.push((s.request, s.buf_offset));
                    } else if first_error.is_none() {
                        // SAFETY: as for `acquire` above.
                        let done = unsafe { stager.complete(s.request, &r, s.buf_offset, base) };
                        if let Err(e) = done {
                            first_error = Some(e);
                        }
                    }
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
                        s.buf_offset + done,
                        r.len - done,
                        slot,
                    );
                    self.push(&e);
                }
            }
            if self.in_flight == 0 {
                busy.stop();
            }
        }
        busy.stop();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Time during which at least one request was in flight.
#[derive(Default)]
struct IoBusy {
    since: Option<Instant>,
    total: Duration,
}

impl IoBusy {
    fn start(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    fn stop(&mut self) {
        if let Some(t) = self.since.take() {
            self.total += t.elapsed();
        }
    }
}
