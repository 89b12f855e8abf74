//! Transfers between a registered file and device memory through cuFile: the one place the
//! `gds` backend's I/O calls cross into C.
//!
//! Three ways, as `gdsio` has them:
//! - [`transfer_sync`]: `cuFileRead`/`cuFileWrite` of one piece, continued in a loop while the
//!   library returns short counts;
//! - [`StreamQueue`]: `cuFileReadAsync`/`WriteAsync`, one operation per slot, each slot with
//!   its own CUDA stream registered with cuFile ([`CuFileStream`]): a stream runs its
//!   operations in order, so one stream for the whole queue would move them one after
//!   another. A slot is refilled as soon as its operation completed (the oldest is waited for
//!   first). The size/offset/bytes-done arguments are pointers the library reads and writes
//!   when the stream runs the operation, so each slot's live in a box that is rewritten or
//!   dropped only after the slot's stream was synchronised (also on every error path);
//! - [`Batch`]: `cuFileBatchIOSetUp` once, then per window one `cuFileBatchIOSubmit` of up
//!   to the batch's size and `cuFileBatchIOGetStatus` until every event of the window came
//!   back; each event's status and `ret` is checked. One submission is in flight per batch at
//!   a time, as NVIDIA's samples and kvikio's `BatchHandle` ("can only handle one submit at a
//!   time") use the API: submitting into slots freed while other entries were pending was
//!   never seen working on a real libcufile. The window's entries live until all of their
//!   events came back (or until a cancel).
//!
//! In cuFile's compat mode (POSIX I/O through host memory) [`Overlap::OneInProcess`] keeps
//! one stream or batch operation in flight in the whole process: with libcufile 1.15.1 on an
//! H200 with nvidia-fs not loaded, concurrent `cuFileWriteAsync` on different streams wrote
//! other requests' data (the block at file offset 0 held the last queued request's), and a
//! batch with more than one entry pending made no progress, while one operation at a time was
//! byte-exact (bench-results/2026-12-04-gpu-checks-h200-session8). The synchronous calls were
//! byte-exact from two threads at once and are not limited.
//!
//! Every result goes through [`super::result`]; a piece of which fewer bytes were done is
//! reported back (stream, batch) or continued here (sync), never taken as complete.
//! Buffers are registered with [`BufRegistration`] (optional, as `gdsio -b` does it), which
//! keeps a driver user so the driver outlives it.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gdswap_ffi::{
    timespec, CUfileBatchHandle_t, CUfileBatchMode, CUfileIOEvents_t, CUfileIOParamsBatch,
    CUfileIOParamsUnion, CUfileIOParams_t, CUfileOpcode, CUfileStatus,
};

use super::driver::Driver;
use super::handle::FileHandle;
use super::result::{decode, Call, Failure, Returned};
use crate::cuda::device_buffer::DeviceBuffer;
use crate::cuda::stream::Stream;
use crate::error::{Error, FileOp, Result};
use crate::options::Op;

/// Whether a [`StreamQueue`]'s or [`Batch`]'s operations may overlap others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Up to the queue depth in flight, beside any other queue's or batch's (a GPUDirect path).
    Free,
    /// One operation in flight in the whole process, across every queue and batch that says
    /// so (cuFile's compat mode: see the module's documentation for the evidence).
    OneInProcess,
}

/// Held while an [`Overlap::OneInProcess`] queue or batch has an operation in flight.
static ONE_IN_PROCESS: Mutex<()> = Mutex::new(());

fn one_in_process() -> MutexGuard<'static, ()> {
    // The guarded value is `()`: a panic while it was held leaves nothing inconsistent.
    ONE_IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner())
}

/// One piece of a transfer: where in the file, where in the device buffer, how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Byte offset in the file.
    pub file_offset: u64,
    /// Byte offset in the registered device buffer.
    pub buf_offset: usize,
    /// Bytes to move.
    pub len: usize,
}

impl Piece {
    /// What is left after `done` bytes.
    pub fn rest(self, done: usize) -> Piece {
        Piece {
            file_offset: self.file_offset + done as u64,
            buf_offset: self.buf_offset + done,
            len: self.len - done,
        }
    }
}

fn call_name(op: Op, sync: &'static str, write: &'static str) -> &'static str {
    match op {
        Op::Read => sync,
        Op::Write => write,
    }
}

fn check_piece(buf: &DeviceBuffer, p: Piece) -> Result<()> {
    if !p
        .buf_offset
        .checked_add(p.len)
        .is_some_and(|e| e <= buf.len())
    {
        return Err(Error::Internal(format!(
            "internal error: device range [{}, +{}) outside a {}-byte buffer",
            p.buf_offset,
            p.len,
            buf.len()
        )));
    }
    Ok(())
}

/// A piece that made no progress: end of file (a read) or a device that takes nothing.
fn no_progress(op: Op, path: &Path, p: Piece, call: &str) -> Error {
    Error::io(
        FileOp::from(op),
        path,
        p.file_offset,
        p.len as u64,
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{call} transferred 0 bytes (end of file?)"),
        ),
    )
}

/// A device buffer registered with `cuFileBufRegister`, deregistered on drop (or by
/// [`BufRegistration::deregister`], which reports a failure). It does not borrow the
/// [`DeviceBuffer`]: its owner must drop it before the buffer (declaration order).
pub struct BufRegistration {
    ptr: u64,
    /// The device memory the registration pins, in whole 64 KiB GPU pages.
    pinned: u64,
    driver: Driver,
    done: bool,
}

/// Device memory registered through [`BufRegistration`] in this process now (whole 64 KiB GPU
/// pages: what nvidia-fs pins through the BAR1 aperture).
static REGISTERED: AtomicU64 = AtomicU64::new(0);

/// Device memory this process has registered with cuFile now, in whole 64 KiB GPU pages.
pub fn registered_bytes() -> u64 {
    REGISTERED.load(Ordering::SeqCst)
}

/// `len` in whole 64 KiB GPU pages.
pub fn gpu_pages(len: u64) -> u64 {
    len.div_ceil(64 * 1024).saturating_mul(64 * 1024)
}

impl BufRegistration {
    /// Registers `buf` with `cuFileBufRegister` (deregistered on drop); errors carry cuFile's
    /// status.
    pub fn register(driver: &Driver, buf: &DeviceBuffer) -> Result<BufRegistration> {
        let ptr = buf.device_ptr();
        // SAFETY: the driver is open (`driver` is a user); `ptr..ptr+len` is one live device
        // allocation of the current context; flags 0.
        let status = unsafe {
            (driver.lib().required.buf_register)(ptr as *const c_void, buf.len().max(1), 0)
        };
        Call::new("cuFileBufRegister").check(status)?;
        let pinned = gpu_pages(buf.len().max(1) as u64);
        REGISTERED.fetch_add(pinned, Ordering::SeqCst);
        Ok(BufRegistration {
            ptr,
            pinned,
            driver: driver.clone(),
            done: false,
        })
    }

    /// Deregisters now, reporting a failure.
    pub fn deregister(mut self) -> Result<()> {
        self.done = true;
        self.call()
    }

    /// Called exactly once per registration (`done` guards the drop).
    fn call(&self) -> Result<()> {
        REGISTERED.fetch_sub(self.pinned, Ordering::SeqCst);
        // SAFETY: `ptr` was registered by this value, on this open driver, and is deregistered
        // once (`done` guards the drop); the allocation is still alive (see the type's doc).
        let status =
            unsafe { (self.driver.lib().required.buf_deregister)(self.ptr as *const c_void) };
        Call::new("cuFileBufDeregister").check(status)
    }
}

impl Drop for BufRegistration {
    fn drop(&mut self) {
        if !self.done {
            // A failure here cannot be reported; `deregister` is the reporting path.
            let _ = self.call();
        }
    }
}

/// `cuFileRead`/`cuFileWrite` of the whole piece: short counts are continued until it is
/// done; 0 bytes is an error (end of file), never a loop.
pub fn transfer_sync(fh: &FileHandle, buf: &DeviceBuffer, op: Op, piece: Piece) -> Result<()> {
    check_piece(buf, piece)?;
    let lib = fh.driver().lib();
    let path = fh.file().path();
    let name = call_name(op, "cuFileRead", "cuFileWrite");
    let mut done = 0usize;
    while done < piece.len {
        let p = piece.rest(done);
        let base = buf.device_ptr() as *mut c_void;
        // SAFETY: the handle is registered on an open driver; [base+buf_offset, +len) lies in
        // the device allocation (checked above) that `buf` keeps alive for this call; the
        // call is synchronous, so nothing outlives it.
        let ret = unsafe {
            match op {
                Op::Read => (lib.required.read)(
                    fh.raw(),
                    base,
                    p.len,
                    p.file_offset as i64,
                    p.buf_offset as i64,
                ),
                Op::Write => (lib.required.write)(
                    fh.raw(),
                    base,
                    p.len,
                    p.file_offset as i64,
                    p.buf_offset as i64,
                ),
            }
        };
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let n = Call::new(name)
            .at(path, p.file_offset, p.len as u64)
            .bytes(ret, errno)?;
        if n == 0 {
            return Err(no_progress(op, path, p, name));
        }
        done += n.min(p.len);
    }
    Ok(())
}

/// The arguments of one asynchronous operation, read and written by the library when the
/// stream runs it.
#[repr(C)]
struct AsyncArgs {
    size: usize,
    file_offset: i64,
    buf_offset: i64,
    bytes_done: isize,
}

/// The flags gdswap registers its streams with: every size and offset is set before the
/// operation is queued and never changed after (the values live in `AsyncArgs` until the
/// stream ran it). `CU_FILE_STREAM_PAGE_ALIGNED_INPUTS` is not claimed: the continuation of a
/// short transfer need not be 4 KiB aligned.
pub const STREAM_FLAGS: u32 = gdswap_ffi::CU_FILE_STREAM_FIXED_BUF_OFFSET
    | gdswap_ffi::CU_FILE_STREAM_FIXED_FILE_OFFSET
    | gdswap_ffi::CU_FILE_STREAM_FIXED_FILE_SIZE;

/// A CUDA stream registered with cuFile (`cuFileStreamRegister`, which cufile.h says reduces
/// each operation's setup and teardown). Dropping it waits for the stream, then
/// deregisters it (`cuFileStreamDeregister`), and only then destroys the stream: cuFile keeps
/// per-stream resources that must not outlive it.
pub struct CuFileStream {
    driver: Driver,
    stream: Stream,
}

impl CuFileStream {
    /// A new stream of the current context, registered. Needs the stream API.
    pub fn new(driver: &Driver) -> Result<CuFileStream> {
        let lib = driver.lib();
        let api = lib
            .stream
            .ok_or_else(|| Error::CuFileSetup(lib.require("stream").unwrap_err()))?;
        let stream = Stream::new()?;
        // SAFETY: the driver is open (`driver` is a user); the stream is alive and belongs to
        // the current context; the flags are cufile.h's CU_FILE_STREAM_* bits.
        let status = unsafe { (api.stream_register)(stream.raw() as _, STREAM_FLAGS) };
        Call::new("cuFileStreamRegister").check(status)?;
        Ok(CuFileStream {
            driver: driver.clone(),
            stream,
        })
    }

    /// The CUDA stream registered with cuFile.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }
}

impl Drop for CuFileStream {
    fn drop(&mut self) {
        let _ = self.stream.synchronize("before cuFileStreamDeregister");
        if let Some(api) = self.driver.lib().stream {
            // SAFETY: the stream was registered by this value on this open driver and has no
            // operation left (synchronised above); deregistered once, here, before `stream`
            // (a later field) is destroyed. A failure cannot be reported from drop.
            let _ = unsafe { (api.stream_deregister)(self.stream.raw() as _) };
        }
    }
}

/// One slot of a [`StreamQueue`]: its own stream, and the arguments of the one operation it
/// may have queued.
struct Slot {
    /// Declared first: dropped (synchronised) before the arguments it may still read.
    stream: CuFileStream,
    args: Box<AsyncArgs>,
    /// The piece queued on this slot and when its first part was submitted.
    busy: Option<(Piece, Instant)>,
}

/// `--gds-api stream`: one registered stream per slot, so a queue depth of N means N
/// `cuFileReadAsync`/`WriteAsync` in flight (a CUDA stream runs its operations one after
/// another: one stream would move them serially). Slots are refilled as they complete.
pub struct StreamQueue {
    slots: Vec<Slot>,
    /// Busy slots, in the order their operations were queued.
    order: VecDeque<usize>,
    overlap: Overlap,
}

impl StreamQueue {
    /// `depth` registered streams of the current context; one with
    /// [`Overlap::OneInProcess`], whatever `depth` says.
    pub fn new(driver: &Driver, depth: usize, overlap: Overlap) -> Result<StreamQueue> {
        let depth = match overlap {
            Overlap::Free => depth.max(1),
            Overlap::OneInProcess => 1,
        };
        let slots = (0..depth)
            .map(|_| {
                Ok(Slot {
                    stream: CuFileStream::new(driver)?,
                    args: Box::new(AsyncArgs {
                        size: 0,
                        file_offset: 0,
                        buf_offset: 0,
                        bytes_done: isize::MIN,
                    }),
                    busy: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StreamQueue {
            slots,
            order: VecDeque::new(),
            overlap,
        })
    }

    /// Slots (streams), each with at most one operation in flight: the queue depth.
    pub fn depth(&self) -> usize {
        self.slots.len()
    }

    /// The first stream (for the copies of `fill`, `inspect` and tails).
    pub fn first(&self) -> &Stream {
        self.slots[0].stream.stream()
    }

    /// Moves every piece, keeping up to the depth in flight; `done(piece, started)` is called
    /// when a piece is complete (short transfers are continued on a free slot first). The
    /// oldest operation is waited for first, and each completion frees its slot for the next
    /// piece at once. On an error every slot is waited for before it is returned, so nothing
    /// is in flight afterwards.
    pub fn run(
        &mut self,
        fh: &FileHandle,
        buf: &DeviceBuffer,
        op: Op,
        pieces: &[Piece],
        done: &mut dyn FnMut(Piece, Instant),
    ) -> Result<()> {
        // Held while an operation is in flight, with `Overlap::OneInProcess` (the depth is 1
        // then: taken before each operation is queued, released after it was waited for, and
        // kept over the drain after an error).
        let mut one = None;
        let r = self.run_inner(fh, buf, op, pieces, done, &mut one);
        if r.is_err() {
            self.drain();
        }
        drop(one);
        r
    }

    fn drain(&mut self) {
        while let Some(i) = self.order.pop_front() {
            let _ = self.slots[i]
                .stream
                .stream()
                .synchronize("draining after an error");
            self.slots[i].busy = None;
        }
    }

    fn run_inner(
        &mut self,
        fh: &FileHandle,
        buf: &DeviceBuffer,
        op: Op,
        pieces: &[Piece],
        done: &mut dyn FnMut(Piece, Instant),
        one: &mut Option<MutexGuard<'static, ()>>,
    ) -> Result<()> {
        let lib = fh.driver().lib();
        let api = lib
            .stream
            .ok_or_else(|| Error::CuFileSetup(lib.require("stream").unwrap_err()))?;
        let name = call_name(op, "cuFileReadAsync", "cuFileWriteAsync");
        let path = fh.file().path();
        for p in pieces {
            check_piece(buf, *p)?;
        }
        let base = buf.device_ptr() as *mut c_void;
        // Continuations of short transfers, with when their piece was first submitted.
        let mut again: VecDeque<(Piece, Instant)> = VecDeque::new();
        let mut next = pieces.iter();
        loop {
            // Fill every free slot.
            while let Some(free) = self.slots.iter().position(|s| s.busy.is_none()) {
                let (p, started) = match again.pop_front() {
                    Some(x) => x,
                    None => match next.next() {
                        Some(p) => (*p, Instant::now()),
                        None => break,
                    },
                };
                if self.overlap == Overlap::OneInProcess && one.is_none() {
                    *one = Some(one_in_process());
                }
                let slot = &mut self.slots[free];
                *slot.args = AsyncArgs {
                    size: p.len,
                    file_offset: p.file_offset as i64,
                    buf_offset: p.buf_offset as i64,
                    bytes_done: isize::MIN,
                };
                let a: &mut AsyncArgs = &mut slot.args;
                let stream = slot.stream.stream().raw();
                // SAFETY: the handle is registered on an open driver; the device range is in
                // `buf` (checked), which outlives this call's operations (every slot is waited
                // for before `run` returns); every pointer argument points into this slot's
                // boxed arguments, which are neither moved nor rewritten nor freed until the
                // slot's stream has been synchronised (a slot is reused only after that, and
                // its stream is synchronised before the box is dropped); the stream belongs to
                // the current context and is registered with cuFile.
                let status = unsafe {
                    match op {
                        Op::Read => (api.read_async)(
                            fh.raw(),
                            base,
                            &mut a.size,
                            &mut a.file_offset,
                            &mut a.buf_offset,
                            &mut a.bytes_done,
                            stream as _,
                        ),
                        Op::Write => (api.write_async)(
                            fh.raw(),
                            base,
                            &mut a.size,
                            &mut a.file_offset,
                            &mut a.buf_offset,
                            &mut a.bytes_done,
                            stream as _,
                        ),
                    }
                };
                Call::new(name)
                    .at(path, p.file_offset, p.len as u64)
                    .check(status)?;
                slot.busy = Some((p, started));
                self.order.push_back(free);
            }
            // Wait for the oldest operation in flight.
            let Some(i) = self.order.pop_front() else {
                return Ok(());
            };
            let slot = &mut self.slots[i];
            let (p, started) = slot.busy.take().expect("an ordered slot is busy");
            slot.stream
                .stream()
                .synchronize(&format!("{name} on {}", path.display()))?;
            if self.order.is_empty() {
                *one = None;
            }
            let call = Call::new(name).at(path, p.file_offset, p.len as u64);
            if slot.args.bytes_done == isize::MIN {
                return Err(call.failed(Failure::Os(io::Error::other(
                    "the stream finished without the operation reporting its bytes",
                ))));
            }
            let n = call.bytes(slot.args.bytes_done, 0)?;
            if n == 0 {
                return Err(no_progress(op, path, p, name));
            }
            if n < p.len {
                again.push_back((p.rest(n), started));
            } else {
                done(p, started);
            }
        }
    }
}

/// How long a batch may go without any event coming back before it is cancelled.
const BATCH_STALL_LIMIT: Duration = Duration::from_secs(120);

/// A batch I/O context (`cuFileBatchIOSetUp`) for up to `capacity` entries in flight,
/// destroyed on drop. Needs the batch API (the caller checks `require("batch")`).
pub struct Batch {
    handle: CUfileBatchHandle_t,
    capacity: usize,
    overlap: Overlap,
    driver: Driver,
}

// SAFETY: the batch handle is an opaque token that cuFile accepts from any thread; one worker
// owns and uses it.
unsafe impl Send for Batch {}

impl Batch {
    /// Sets up a batch of `capacity` entries (`cuFileBatchIOSetUp`; one with
    /// [`Overlap::OneInProcess`], whatever `capacity` says); errors when this libcufile has no
    /// batch API or the call fails.
    pub fn new(driver: &Driver, capacity: u32, overlap: Overlap) -> Result<Batch> {
        let capacity = match overlap {
            Overlap::Free => capacity.max(1),
            Overlap::OneInProcess => 1,
        };
        let lib = driver.lib();
        let api = lib
            .batch
            .ok_or_else(|| Error::CuFileSetup(lib.require("batch").unwrap_err()))?;
        let mut handle: CUfileBatchHandle_t = std::ptr::null_mut();
        // SAFETY: the driver is open; cuFile writes one handle.
        let status = unsafe { (api.set_up)(&mut handle, capacity) };
        Call::new("cuFileBatchIOSetUp").check(status)?;
        Ok(Batch {
            handle,
            capacity: capacity as usize,
            overlap,
            driver: driver.clone(),
        })
    }

    /// Entries the batch was set up for: at most this many in flight.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Moves every piece through the batch, one window at a time: one `cuFileBatchIOSubmit`
    /// of up to the capacity's entries, then `cuFileBatchIOGetStatus` until every one of its
    /// events came back, and only then the next window (no submit while entries are pending).
    /// `done(piece, started)` is called when a piece is complete (the rest of a short one goes
    /// into the next window). Each event's status and `ret` is checked; on any failure the
    /// batch is cancelled (cuFile then no longer touches the entries) before the error is
    /// returned, so nothing is in flight afterwards.
    pub fn run(
        &mut self,
        fh: &FileHandle,
        buf: &DeviceBuffer,
        op: Op,
        pieces: &[Piece],
        done: &mut dyn FnMut(Piece, Instant),
    ) -> Result<()> {
        let lib = self.driver.lib();
        let api = lib
            .batch
            .ok_or_else(|| Error::CuFileSetup(lib.require("batch").unwrap_err()))?;
        let path = fh.file().path();
        let name = call_name(op, "cuFileBatchIO read", "cuFileBatchIO write");
        for p in pieces {
            check_piece(buf, *p)?;
        }
        let base = buf.device_ptr() as *mut c_void;
        let mut again: VecDeque<(Piece, Instant)> = VecDeque::new();
        let mut next = pieces.iter();
        let mut events = vec![
            CUfileIOEvents_t {
                cookie: std::ptr::null_mut(),
                status: CUfileStatus::WAITING,
                ret: 0,
            };
            self.capacity
        ];
        loop {
            // The window: entries by cookie (their index), with when their piece was first
            // submitted; `None` once its event came back.
            let mut window: Vec<Option<(Piece, Instant)>> = Vec::new();
            while window.len() < self.capacity {
                match again.pop_front() {
                    Some(x) => window.push(Some(x)),
                    None => match next.next() {
                        Some(p) => window.push(Some((*p, Instant::now()))),
                        None => break,
                    },
                }
            }
            if window.is_empty() {
                return Ok(());
            }
            let mut params: Vec<CUfileIOParams_t> = window
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let (p, _) = w.expect("a new window's entries are all pending");
                    CUfileIOParams_t {
                        mode: CUfileBatchMode::BATCH,
                        u: CUfileIOParamsUnion {
                            batch: CUfileIOParamsBatch {
                                devPtr_base: base,
                                file_offset: p.file_offset as i64,
                                devPtr_offset: p.buf_offset as i64,
                                size: p.len,
                            },
                        },
                        fh: fh.raw(),
                        opcode: match op {
                            Op::Read => CUfileOpcode::READ,
                            Op::Write => CUfileOpcode::WRITE,
                        },
                        cookie: i as *mut c_void,
                    }
                })
                .collect();
            // One window in flight in the whole process with `Overlap::OneInProcess` (a window
            // of one entry then): held until its event came back or the batch was cancelled.
            let _one = (self.overlap == Overlap::OneInProcess).then(one_in_process);
            let n = params.len() as u32;
            // SAFETY: the handle is a live batch context with nothing pending (every earlier
            // window's events came back, or it was cancelled); `params` holds `n` <= capacity
            // well-formed entries whose device ranges lie in `buf` (checked); the Vec is
            // neither moved nor freed until every one of its events came back or the batch
            // was cancelled (it lives to the end of this iteration, and every path out of the
            // loop below collects or cancels first); flags 0.
            let status = unsafe { (api.submit)(self.handle, n, params.as_mut_ptr(), 0) };
            if let Err(e) = Call::new("cuFileBatchIOSubmit").on(path).check(status) {
                self.cancel();
                return Err(e);
            }
            let mut last_progress = Instant::now();
            let mut pending = window.len();
            while pending > 0 {
                let mut nr = pending as u32;
                let mut timeout = timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                // SAFETY: `events` has room for `nr` (= pending <= capacity) events; the
                // handle is live; min_nr = nr; the timeout is a valid timespec for the call.
                let status = unsafe {
                    (api.get_status)(self.handle, nr, &mut nr, events.as_mut_ptr(), &mut timeout)
                };
                let got = Call::new("cuFileBatchIOGetStatus").on(path).check(status);
                if nr > 0 {
                    last_progress = Instant::now();
                }
                let stalled = last_progress.elapsed() > BATCH_STALL_LIMIT;
                if got.is_err() || stalled || nr as usize > pending {
                    self.cancel();
                    got?;
                    return Err(Error::DriverContract(format!(
                        "cuFileBatchIOGetStatus on {}: {}; the batch was cancelled",
                        path.display(),
                        if stalled {
                            format!(
                                "{pending} entries still pending after {} s without an event",
                                BATCH_STALL_LIMIT.as_secs()
                            )
                        } else {
                            format!("returned {nr} events for {pending} pending entries")
                        }
                    )));
                }
                for e in &events[..nr as usize] {
                    let i = e.cookie as usize;
                    let Some((p, started)) = window.get_mut(i).and_then(Option::take) else {
                        self.cancel();
                        return Err(Error::DriverContract(format!(
                            "cuFileBatchIOGetStatus on {}: an event with an unknown or repeated cookie {i}; the batch was cancelled",
                            path.display()
                        )));
                    };
                    pending -= 1;
                    let call = Call::new(name).at(path, p.file_offset, p.len as u64);
                    let n = match event_result(call, e, op, path, p, name) {
                        Ok(n) => n,
                        Err(err) => {
                            self.cancel();
                            return Err(err);
                        }
                    };
                    if n < p.len {
                        again.push_back((p.rest(n), started));
                    } else {
                        done(p, started);
                    }
                }
            }
        }
    }

    fn cancel(&self) {
        if let Some(api) = self.driver.lib().batch {
            // SAFETY: the handle is live; after a cancel cuFile no longer touches the
            // entries, so they may be freed.
            let _ = unsafe { (api.cancel)(self.handle) };
        }
    }
}

/// One batch event: COMPLETE with its bytes, or the failure its status and `ret` say.
fn event_result(
    call: Call<'_>,
    e: &CUfileIOEvents_t,
    op: Op,
    path: &Path,
    p: Piece,
    name: &str,
) -> Result<usize> {
    if e.status == CUfileStatus::COMPLETE {
        let n = decode(Returned::Event { ret: e.ret }, call)?;
        if n == 0 {
            return Err(no_progress(op, path, p, name));
        }
        return Ok(n.min(p.len));
    }
    // Any other status is a failure; a negative ret says why.
    decode(Returned::Event { ret: e.ret }, call)?;
    let status = match e.status.name() {
        Some(n) => format!("{n} ({})", e.status.0),
        None => format!("unknown status {}", e.status.0),
    };
    Err(call.failed(Failure::Os(io::Error::other(format!(
        "batch entry ended {status} (ret {})",
        e.ret as isize
    )))))
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(api) = self.driver.lib().batch {
            // SAFETY: the handle came from cuFileBatchIOSetUp on this open driver, and no entry
            // is in flight (`run` collects every event or cancels); destroyed once, here.
            unsafe { (api.destroy)(self.handle) };
        }
    }
}
