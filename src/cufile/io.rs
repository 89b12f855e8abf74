//! Transfers between a registered file and device memory through cuFile: the one place the
//! `gds` backend's I/O calls cross into C.
//!
//! Three ways, as `gdsio` has them:
//! - [`transfer_sync`]: `cuFileRead`/`cuFileWrite` of one piece, continued in a loop while the
//!   library returns short counts;
//! - [`stream_window`]: up to a queue depth of `cuFileReadAsync`/`WriteAsync` on a CUDA stream.
//!   Their size/offset/bytes-done arguments are pointers the library reads and writes when the
//!   stream runs the operation, so they live in a heap array owned here that is dropped only
//!   after the stream was synchronised (also when a submission fails half-way);
//! - [`Batch`]: `cuFileBatchIOSetUp` once, then per window `cuFileBatchIOSubmit` of up to its
//!   capacity and `cuFileBatchIOGetStatus` until every entry's event came back; each event's
//!   status and `ret` is checked. The entries array lives until then (or until a cancel).
//!
//! Every result goes through [`super::result`]; a piece of which fewer bytes were done is
//! reported back (stream, batch) or continued here (sync), never taken as complete.
//! Buffers are registered with [`BufRegistration`] (optional, as `gdsio -b` does it), which
//! keeps a driver user so the driver outlives it.

use std::ffi::c_void;
use std::io;
use std::path::Path;
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

/// One piece of a transfer: where in the file, where in the device buffer, how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub file_offset: u64,
    pub buf_offset: usize,
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
        return Err(Error::Resources(format!(
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
    driver: Driver,
    done: bool,
}

impl BufRegistration {
    pub fn register(driver: &Driver, buf: &DeviceBuffer) -> Result<BufRegistration> {
        let ptr = buf.device_ptr();
        // SAFETY: the driver is open (`driver` is a user); `ptr..ptr+len` is one live device
        // allocation of the current context; flags 0.
        let status = unsafe {
            (driver.lib().required.buf_register)(ptr as *const c_void, buf.len().max(1), 0)
        };
        Call::new("cuFileBufRegister").check(status)?;
        Ok(BufRegistration {
            ptr,
            driver: driver.clone(),
            done: false,
        })
    }

    /// Deregisters now, reporting a failure.
    pub fn deregister(mut self) -> Result<()> {
        self.done = true;
        self.call()
    }

    fn call(&self) -> Result<()> {
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

/// Synchronises the stream when dropped, so the arguments it guards are never freed while a
/// queued operation may still use them.
struct SyncOnDrop<'a>(&'a Stream);

impl Drop for SyncOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.synchronize("waiting for queued cuFile operations");
    }
}

/// Queues `pieces` as `cuFileReadAsync`/`WriteAsync` on `stream`, waits for the stream, and
/// returns the bytes each one did (possibly fewer than asked: the caller continues them).
/// Needs the stream API (the caller checks `require("stream")`).
pub fn stream_window(
    fh: &FileHandle,
    buf: &DeviceBuffer,
    stream: &Stream,
    op: Op,
    pieces: &[Piece],
) -> Result<Vec<usize>> {
    let lib = fh.driver().lib();
    let api = lib
        .stream
        .ok_or_else(|| Error::Resources(lib.require("stream").unwrap_err()))?;
    let name = call_name(op, "cuFileReadAsync", "cuFileWriteAsync");
    let path = fh.file().path();
    for p in pieces {
        check_piece(buf, *p)?;
    }
    // Boxed slice: the addresses handed to cuFile never move.
    let mut args: Box<[AsyncArgs]> = pieces
        .iter()
        .map(|p| AsyncArgs {
            size: p.len,
            file_offset: p.file_offset as i64,
            buf_offset: p.buf_offset as i64,
            bytes_done: isize::MIN,
        })
        .collect();
    let base = buf.device_ptr() as *mut c_void;
    {
        // Declared after `args`, so dropped (the stream synchronised) before them, on every
        // path out of this block.
        let _sync = SyncOnDrop(stream);
        for (a, p) in args.iter_mut().zip(pieces) {
            // SAFETY: the handle is registered on an open driver; the device range is in
            // `buf` (checked), which outlives this function; every pointer argument points
            // into `args`, which is neither moved nor freed until `_sync` has synchronised
            // the stream (it is dropped first); the stream belongs to the current context.
            let status = unsafe {
                match op {
                    Op::Read => (api.read_async)(
                        fh.raw(),
                        base,
                        &mut a.size,
                        &mut a.file_offset,
                        &mut a.buf_offset,
                        &mut a.bytes_done,
                        stream.raw() as _,
                    ),
                    Op::Write => (api.write_async)(
                        fh.raw(),
                        base,
                        &mut a.size,
                        &mut a.file_offset,
                        &mut a.buf_offset,
                        &mut a.bytes_done,
                        stream.raw() as _,
                    ),
                }
            };
            Call::new(name)
                .at(path, p.file_offset, p.len as u64)
                .check(status)?;
        }
        stream.synchronize(&format!("{name} on {}", path.display()))?;
    }
    args.iter()
        .zip(pieces)
        .map(|(a, p)| {
            let call = Call::new(name).at(path, p.file_offset, p.len as u64);
            if a.bytes_done == isize::MIN {
                return Err(call.failed(Failure::Os(io::Error::other(
                    "the stream finished without the operation reporting its bytes",
                ))));
            }
            let n = call.bytes(a.bytes_done, 0)?;
            if n == 0 {
                return Err(no_progress(op, path, *p, name));
            }
            Ok(n.min(p.len))
        })
        .collect()
}

/// How long one window of batch entries may take before it is cancelled.
const BATCH_WINDOW_LIMIT: Duration = Duration::from_secs(120);

/// A batch I/O context (`cuFileBatchIOSetUp`) for up to `capacity` entries per submit,
/// destroyed on drop. Needs the batch API (the caller checks `require("batch")`).
pub struct Batch {
    handle: CUfileBatchHandle_t,
    capacity: usize,
    driver: Driver,
}

// SAFETY: the batch handle is an opaque token that cuFile accepts from any thread; one worker
// owns and uses it.
unsafe impl Send for Batch {}

impl Batch {
    pub fn new(driver: &Driver, capacity: u32) -> Result<Batch> {
        let lib = driver.lib();
        let api = lib
            .batch
            .ok_or_else(|| Error::Resources(lib.require("batch").unwrap_err()))?;
        let mut handle: CUfileBatchHandle_t = std::ptr::null_mut();
        // SAFETY: the driver is open; cuFile writes one handle.
        let status = unsafe { (api.set_up)(&mut handle, capacity) };
        Call::new("cuFileBatchIOSetUp").check(status)?;
        Ok(Batch {
            handle,
            capacity: capacity as usize,
            driver: driver.clone(),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Submits `pieces` (at most the capacity) and collects every entry's event; returns the
    /// bytes each did (possibly fewer than asked: the caller continues them). Every event is
    /// collected before the first failure is returned, so no entry is still in flight.
    pub fn run(
        &mut self,
        fh: &FileHandle,
        buf: &DeviceBuffer,
        op: Op,
        pieces: &[Piece],
    ) -> Result<Vec<usize>> {
        assert!(pieces.len() <= self.capacity, "batch window over capacity");
        let lib = self.driver.lib();
        let api = lib
            .batch
            .ok_or_else(|| Error::Resources(lib.require("batch").unwrap_err()))?;
        let path = fh.file().path();
        let name = call_name(op, "cuFileBatchIO read", "cuFileBatchIO write");
        for p in pieces {
            check_piece(buf, *p)?;
        }
        let base = buf.device_ptr() as *mut c_void;
        let mut params: Vec<CUfileIOParams_t> = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| CUfileIOParams_t {
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
                // The entry's index, to find its piece again.
                cookie: i as *mut c_void,
            })
            .collect();
        let n = pieces.len() as u32;
        // SAFETY: the handle is a live batch context; `params` holds `n` well-formed entries
        // whose device ranges lie in `buf` (checked) and stays alive until every event was
        // collected or the batch cancelled (below); flags 0.
        let status = unsafe { (api.submit)(self.handle, n, params.as_mut_ptr(), 0) };
        Call::new("cuFileBatchIOSubmit").on(path).check(status)?;

        let mut results: Vec<Option<Result<usize>>> = (0..pieces.len()).map(|_| None).collect();
        let mut events = vec![
            CUfileIOEvents_t {
                cookie: std::ptr::null_mut(),
                status: CUfileStatus::WAITING,
                ret: 0,
            };
            pieces.len()
        ];
        let mut left = pieces.len();
        let started = Instant::now();
        while left > 0 {
            let mut nr = left as u32;
            let mut timeout = timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            // SAFETY: `events` has room for `nr` (= left <= its length) events; the handle
            // is live; the timeout is a valid timespec for the call.
            let status = unsafe {
                (api.get_status)(self.handle, 1, &mut nr, events.as_mut_ptr(), &mut timeout)
            };
            let got = Call::new("cuFileBatchIOGetStatus").on(path).check(status);
            let timed_out = started.elapsed() > BATCH_WINDOW_LIMIT;
            if got.is_err() || timed_out || nr as usize > left {
                self.cancel();
                got?;
                return Err(Error::Resources(format!(
                    "cuFileBatchIOGetStatus on {}: {}; the batch was cancelled",
                    path.display(),
                    if timed_out {
                        format!(
                            "{left} entries still pending after {} s",
                            BATCH_WINDOW_LIMIT.as_secs()
                        )
                    } else {
                        format!("returned {nr} events for {left} pending entries")
                    }
                )));
            }
            for e in &events[..nr as usize] {
                let i = e.cookie as usize;
                let Some(slot) = results.get_mut(i).filter(|s| s.is_none()) else {
                    self.cancel();
                    return Err(Error::Resources(format!(
                        "cuFileBatchIOGetStatus on {}: an event with an unknown or repeated cookie {i}; the batch was cancelled",
                        path.display()
                    )));
                };
                let p = pieces[i];
                let call = Call::new(name).at(path, p.file_offset, p.len as u64);
                *slot = Some(event_result(call, e, op, path, p, name));
                left -= 1;
            }
        }
        drop(params);
        results
            .into_iter()
            .map(|r| r.expect("every entry has its event"))
            .collect()
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
