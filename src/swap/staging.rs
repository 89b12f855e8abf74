//! Staging buffers: the memory each swap moves through, prepared by the store's backend
//! (host memory for `host` and `posix`; device memory with a pinned bounce ring for
//! `bounce`, with a small pinned buffer for `gds`) and kept in a pool, so a steady stream of
//! swaps of the same sizes allocates nothing.
//!
//! The budget counts every staging byte of host memory that exists, idle in the pool or in
//! use: the buffer itself for host backends, the pinned memory for device backends (whose
//! device memory is counted apart, for reports), and, through [`Charge`]s, the host copies
//! of host tensors on their way through device staging. Asking for more than the budget
//! allows, after idle buffers have been given back, is an error right away: before any I/O,
//! never an out-of-memory later.

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::backend::{Backend, MemoryKind, Worker, WorkerSetup};
use crate::error::{Error, Result};
use crate::io::buffer::HugePages;
use crate::io::file::DataFile;
use crate::options::{GpuOptions, Op};
use crate::size::Bytes;
use crate::stats::LatencyRecorder;

use super::buffer::DeviceSpan;
use super::device_tensor::Fence;
use super::threads::IoThreads;

struct Slot {
    len: u64,
    /// Bytes per request (the backend's block: a bounce chunk).
    block: u64,
    /// Bytes counted against the budget: the host staging memory (the buffer itself for host
    /// backends; the pinned chunks for a device backend) and the device memory.
    cost: u64,
    device: u64,
    /// The I/O thread that prepared the worker, and the only one that may use it.
    thread: usize,
    worker: Box<dyn Worker>,
    latencies: LatencyRecorder,
}

#[derive(Default)]
struct Inner {
    idle: Vec<Slot>,
    /// Budgeted bytes of every staging buffer that exists.
    allocated: u64,
    peak: u64,
    /// Device memory of every staging buffer that exists (device backends).
    device: u64,
    device_peak: u64,
}

/// The pool of staging buffers of one store.
pub struct StagingPool {
    backend: Arc<dyn Backend>,
    file: Arc<DataFile>,
    budget: u64,
    block_size: u64,
    queue_depth: u32,
    /// The GPU device backends stage on.
    gpu: usize,
    inner: Mutex<Inner>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StagingPool {
    pub fn new(
        backend: Arc<dyn Backend>,
        file: Arc<DataFile>,
        budget: u64,
        block_size: u64,
        queue_depth: u32,
        gpu: usize,
    ) -> StagingPool {
        StagingPool {
            backend,
            file,
            budget,
            block_size,
            queue_depth,
            gpu,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Whether staging buffers live in device memory (`bounce`, `gds`).
    pub fn device_staging(&self) -> bool {
        self.backend.memory() == MemoryKind::Device
    }

    /// The most staging bytes that existed at once.
    pub fn peak(&self) -> u64 {
        lock(&self.inner).peak
    }

    /// Staging bytes that exist now (idle or in use).
    pub fn allocated(&self) -> u64 {
        lock(&self.inner).allocated
    }

    /// The most device memory staging buffers held at once (0 for host backends).
    pub fn device_peak(&self) -> u64 {
        lock(&self.inner).device_peak
    }

    fn bounce_chunks(&self) -> u64 {
        (2 * u64::from(self.queue_depth)).max(2)
    }

    /// Request size, host bytes counted against the budget, and device bytes, for a
    /// staging buffer of `len` bytes.
    fn shape(&self, len: u64) -> (u64, u64, u64) {
        let block = self
            .backend
            .block_for_range(len, self.block_size, self.bounce_chunks());
        if self.backend.memory() == MemoryKind::Device {
            // The buffer is in device memory; the host memory the worker holds is what it
            // pins (the backend says how much: bounce's ring of chunks, gds's small staging
            // buffer for tails, fill and inspect).
            (
                block,
                self.backend.pinned_bytes(&self.setup(len, block)),
                len,
            )
        } else {
            (block, len, 0)
        }
    }

    /// A staging buffer of exactly `len` bytes for tensor `name`, from the pool or newly
    /// prepared by the backend on one of `threads`; an error naming the tensor when the
    /// budget does not allow it.
    pub fn acquire(self: &Arc<Self>, name: &str, len: u64, threads: &IoThreads) -> Result<Staging> {
        let (block, cost, device) = self.shape(len);
        let evicted = {
            let mut g = lock(&self.inner);
            if let Some(i) = g.idle.iter().position(|s| s.len == len) {
                let slot = g.idle.swap_remove(i);
                return Ok(Staging {
                    slot: Some(slot),
                    pool: Arc::clone(self),
                    failed: false,
                });
            }
            self.reserve(g, name, cost, device, threads)?
        };
        let thread = threads.pick();
        let prepared = release_on_threads(evicted, threads).and_then(|()| {
            let (tx, rx) = channel();
            let pool = Arc::clone(self);
            threads.submit(
                thread,
                Box::new(move || {
                    let _ = tx.send(pool.prepare(len, block));
                }),
            )?;
            rx.recv().unwrap_or_else(|_| {
                Err(Error::Internal(
                    "internal error: a swap I/O thread stopped while preparing a buffer".into(),
                ))
            })
        });
        match prepared {
            Ok(worker) => Ok(Staging {
                slot: Some(Slot {
                    len,
                    block,
                    cost,
                    device,
                    thread,
                    worker,
                    latencies: LatencyRecorder::new(),
                }),
                pool: Arc::clone(self),
                failed: false,
            }),
            Err(e) => {
                let mut g = lock(&self.inner);
                g.allocated -= cost;
                g.device -= device;
                drop(g);
                Err(Error::Within {
                    context: format!("staging buffer for tensor '{name}'").into(),
                    source: Box::new(e),
                })
            }
        }
    }

    /// Books `cost` budgeted bytes (and `device` device bytes), giving back idle buffers
    /// first where the budget needs the room; the evicted buffers, to release on their
    /// threads. An error naming `name` when even that is not enough.
    fn reserve(
        &self,
        mut g: MutexGuard<'_, Inner>,
        name: &str,
        cost: u64,
        device: u64,
        threads: &IoThreads,
    ) -> Result<Vec<Slot>> {
        let mut evicted = Vec::new();
        // Checked: a request near 2^64 bytes must not wrap past the budget.
        let fits = |g: &Inner| {
            g.allocated
                .checked_add(cost)
                .is_some_and(|t| t <= self.budget)
        };
        while !fits(&g) && !g.idle.is_empty() {
            let s = g.idle.remove(0);
            g.allocated -= s.cost;
            g.device -= s.device;
            evicted.push(s);
        }
        if !fits(&g) {
            let in_use = g.allocated;
            drop(g);
            release_on_threads(evicted, threads)?;
            return Err(Error::Swap {
                tensor: name.to_string(),
                message: format!(
                    "needs {} of staging memory, and the store's budget is {} with {} in use by operations in flight; raise the staging budget, or wait for tickets before starting more",
                    Bytes(cost),
                    Bytes(self.budget),
                    Bytes(in_use)
                )
                .into(),
            });
        }
        g.allocated += cost;
        g.peak = g.peak.max(g.allocated);
        g.device += device;
        g.device_peak = g.device_peak.max(g.device);
        Ok(evicted)
    }

    /// Books `bytes` of host memory a swap through device staging holds besides its staging
    /// buffer (a host tensor's bytes on their way to or from the device), against the same
    /// budget, until the returned charge is dropped.
    pub fn charge(self: &Arc<Self>, name: &str, bytes: u64, threads: &IoThreads) -> Result<Charge> {
        let evicted = self.reserve(lock(&self.inner), name, bytes, 0, threads)?;
        // Built first, so that an error releasing the evicted buffers unbooks the bytes too.
        let charge = Charge {
            pool: Arc::clone(self),
            bytes,
        };
        release_on_threads(evicted, threads)?;
        Ok(charge)
    }

    fn prepare(&self, len: u64, block: u64) -> Result<Box<dyn Worker>> {
        self.backend.prepare(&self.setup(len, block))
    }

    /// The worker setup of a staging buffer of `len` bytes moved in requests of `block`.
    fn setup(&self, len: u64, block: u64) -> WorkerSetup {
        WorkerSetup {
            tid: 0,
            op: Op::Write,
            file: Arc::clone(&self.file),
            range_len: len,
            block_size: block,
            queue_depth: self.queue_depth,
            // Never registered: a store lives in processes that fork (a PyTorch DataLoader's
            // workers), and fork copies every page pinned by an io_uring registration into
            // the child at once (the kernel's copy of maybe-DMA-pinned pages), which for
            // gigabytes of staging would make each fork copy them all.
            fixed_buffers: crate::options::FixedBuffers::Off,
            fixed_buffers_declined: None,
            huge_pages: huge_pages(len),
            gpu: GpuOptions {
                device: self.gpu,
                bounce_buffers: self.bounce_chunks() as usize,
                ..GpuOptions::default()
            },
            buffer: crate::options::BufferMode::Full,
            ring: crate::options::RingOptions::default(),
        }
    }

    fn give_back(&self, slot: Slot) {
        lock(&self.inner).idle.push(slot);
    }

    fn forget(&self, slot: Slot) {
        let mut g = lock(&self.inner);
        g.allocated -= slot.cost;
        g.device -= slot.device;
        drop(g);
        // Its release error has nowhere to go: the transfer's own error is already reported.
        let _ = slot.worker.release();
    }
}

fn huge_pages(len: u64) -> HugePages {
    if len >= 4 << 20 {
        HugePages::Thp
    } else {
        HugePages::Off
    }
}

/// Releases workers, each on the I/O thread that prepared it (a device backend's memory is
/// freed in the CUDA context current there), waiting for each; the first error.
fn release_on_threads(slots: Vec<Slot>, threads: &IoThreads) -> Result<()> {
    let mut first = Ok(());
    for s in slots {
        let (tx, rx) = channel();
        let thread = s.thread;
        let sent = threads.submit(
            thread,
            Box::new(move || {
                let _ = tx.send(s.worker.release());
            }),
        );
        let r = sent.and_then(|()| {
            rx.recv().unwrap_or_else(|_| {
                Err(Error::Internal(
                    "internal error: a swap I/O thread stopped while releasing a buffer".into(),
                ))
            })
        });
        if first.is_ok() {
            first = r;
        }
    }
    first
}

impl StagingPool {
    /// Releases every idle staging buffer on its own thread; the first error. Used when the
    /// store closes, after every job has ended.
    pub fn release_idle(&self, threads: &IoThreads) -> Result<()> {
        let idle = {
            let mut g = lock(&self.inner);
            let idle = std::mem::take(&mut g.idle);
            for s in &idle {
                g.allocated -= s.cost;
                g.device -= s.device;
            }
            idle
        };
        release_on_threads(idle, threads)
    }
}

/// Host bytes booked against a pool's budget by [`StagingPool::charge`], given back on drop.
pub struct Charge {
    pool: Arc<StagingPool>,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        lock(&self.pool.inner).allocated -= self.bytes;
    }
}

/// One staging buffer in use; back to the pool when dropped, unless a transfer through it
/// failed (then it is released: its worker may be in any state).
pub struct Staging {
    slot: Option<Slot>,
    pool: Arc<StagingPool>,
    failed: bool,
}

impl Staging {
    fn slot(&mut self) -> &mut Slot {
        self.slot
            .as_mut()
            .expect("a staging buffer holds its slot until dropped")
    }

    /// Whether it is a buffer of `pool` (and so of that pool's store and data file).
    pub fn belongs_to(&self, pool: &Arc<StagingPool>) -> bool {
        Arc::ptr_eq(&self.pool, pool)
    }

    /// Host staging: the buffer's bytes (its padded length), borrowed.
    pub fn host_bytes(&self) -> Option<&[u8]> {
        self.slot.as_ref()?.worker.host_buffer()
    }

    pub fn host_bytes_mut(&mut self) -> Option<&mut [u8]> {
        self.slot.as_mut()?.worker.host_buffer_mut()
    }

    /// Whether `fill` and `inspect` may run on any thread. A device backend's buffer can
    /// only be reached from its I/O thread (where its CUDA context is current).
    pub fn host_reachable(&self) -> bool {
        !self.pool.device_staging()
    }

    /// The I/O thread every transfer through it must run on.
    pub fn thread(&self) -> usize {
        self.slot.as_ref().map_or(0, |s| s.thread)
    }

    /// Its length (the tensor's padded length).
    pub fn len(&self) -> u64 {
        self.slot.as_ref().map_or(0, |s| s.len)
    }

    /// Lets `f` write the buffer's bytes.
    pub fn fill(&mut self, f: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        let r = self.slot().worker.fill(f);
        self.failed |= r.is_err();
        r
    }

    /// Lets `f` read the buffer's bytes.
    pub fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let r = self.slot().worker.inspect(f);
        self.failed |= r.is_err();
        r
    }

    /// Lets `f` write the buffer piece by piece, `f(offset, piece)` (device staging: through
    /// its pinned memory, no host copy of the whole buffer).
    pub fn fill_pieces(&mut self, f: &mut dyn FnMut(usize, &mut [u8])) -> Result<()> {
        let r = self.slot().worker.fill_pieces(f);
        self.failed |= r.is_err();
        r
    }

    /// Lets `f` read the buffer piece by piece, `f(offset, piece)`.
    pub fn inspect_pieces(&mut self, f: &mut dyn FnMut(usize, &[u8]) -> Result<()>) -> Result<()> {
        let r = self.slot().worker.inspect_pieces(f);
        self.failed |= r.is_err();
        r
    }

    /// CRC-32C of the buffer's first `len` bytes, read piece by piece.
    pub fn checksum(&mut self, len: usize) -> Result<u32> {
        let mut crc = 0;
        self.inspect_pieces(&mut |off, piece| {
            if off < len {
                crc = crc32c::crc32c_append(crc, &piece[..piece.len().min(len - off)]);
            }
            Ok(())
        })?;
        Ok(crc)
    }

    /// A host copy of the buffer's first `len` bytes, read piece by piece.
    pub fn copy_out(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(len);
        self.inspect_pieces(&mut |off, piece| {
            if off < len {
                v.extend_from_slice(&piece[..piece.len().min(len - off)]);
            }
            Ok(())
        })?;
        Ok(v)
    }

    /// Device staging: copies device tensor `span` into the buffer's first bytes and zeroes
    /// the padding after them (on the I/O thread that owns the buffer, whose context is the
    /// tensor's), once the caller's GPU work up to `after` has completed.
    pub fn copy_from_device(&mut self, span: &DeviceSpan, after: Option<&Fence>) -> Result<()> {
        let len = self.len() as usize;
        let r = self.device().and_then(|(buf, stream)| {
            if let Some(f) = after {
                stream.wait(f.event())?;
            }
            buf.copy_from(0, span.memory.buffer(), 0, span.len, stream)?;
            buf.zero(span.len, len - span.len, stream)
        });
        self.failed |= r.is_err();
        r
    }

    /// Device staging: copies the buffer's first bytes into device tensor `span`, once the
    /// caller's GPU work up to `after` (which may still read the tensor) has completed.
    pub fn copy_to_device(&mut self, span: &DeviceSpan, after: Option<&Fence>) -> Result<()> {
        let r = self.device().and_then(|(buf, stream)| {
            if let Some(f) = after {
                stream.wait(f.event())?;
            }
            span.memory.buffer().copy_from(0, buf, 0, span.len, stream)
        });
        self.failed |= r.is_err();
        r
    }

    fn device(
        &mut self,
    ) -> Result<(
        &crate::cuda::device_buffer::DeviceBuffer,
        &crate::cuda::stream::Stream,
    )> {
        self.slot().worker.device_memory().ok_or_else(|| {
            Error::Internal(
                "internal error: a device copy through host staging (please report it)".into(),
            )
        })
    }

    /// Moves the whole buffer to or from the data file at `offset`, through the backend, in
    /// requests of at most `block_size` (every one aligned: the buffer is a multiple of the
    /// O_DIRECT alignment).
    pub fn transfer(&mut self, op: Op, offset: u64) -> Result<()> {
        let requests = self.requests(offset);
        let slot = self.slot();
        let r = slot.worker.transfer(op, &requests, &mut slot.latencies);
        self.failed |= r.is_err();
        r
    }

    /// The requests moving the whole buffer at file `offset`: `block` bytes each (the last
    /// one shorter), at their own place in the buffer.
    fn requests(&mut self, offset: u64) -> Vec<crate::plan::Request> {
        let len = self.len();
        let block_size = self.slot().block;
        let mut requests = Vec::with_capacity(len.div_ceil(block_size) as usize);
        let mut pos = 0u64;
        while pos < len {
            let n = block_size.min(len - pos);
            requests.push(crate::plan::Request {
                file_offset: offset + pos,
                buf_offset: pos as usize,
                len: n as usize,
                tail: false,
            });
            pos += n;
        }
        requests
    }

    /// [`Staging::transfer`], returning the CRC-32C of the buffer's first `len` bytes (after
    /// a read: the bytes read). Host staging takes it block by block as each request
    /// completes, while the others are still in flight (the buffer's bytes do not change
    /// under a write, and a read's block is final once its request completed), so the
    /// checksum overlaps the transfer; it still delays each refill of the queue a little,
    /// which is why host swap-ins check on the checker thread instead (`jobs::read_job`) and
    /// this serves swap-outs and device staging. Device staging transfers, then reads the
    /// buffer back piece by piece.
    pub fn transfer_checksummed(&mut self, op: Op, offset: u64, len: usize) -> Result<u32> {
        if !self.host_reachable() {
            return match op {
                // The checksum of what is about to be written, as before the I/O.
                Op::Write => {
                    let crc = self.checksum(len)?;
                    self.transfer(op, offset).map(|()| crc)
                }
                Op::Read => {
                    self.transfer(op, offset)?;
                    self.checksum(len)
                }
            };
        }
        let requests = self.requests(offset);
        // One CRC per request (they complete in any order), combined in file order after.
        let mut crcs: Vec<Option<u32>> = vec![None; requests.len()];
        let starts: Vec<usize> = requests.iter().map(|r| r.buf_offset).collect();
        let slot = self.slot();
        let r = slot.worker.transfer_observed(
            op,
            &requests,
            &mut slot.latencies,
            &mut |buf_offset, bytes| {
                let i = starts.binary_search(&buf_offset).map_err(|_| {
                    Error::Internal(
                        "internal error: a completion at no request's offset (please report it)"
                            .into(),
                    )
                })?;
                let n = len.saturating_sub(buf_offset).min(bytes.len());
                crcs[i] = Some(crc32c::crc32c(&bytes[..n]));
                Ok(())
            },
        );
        self.failed |= r.is_err();
        r?;
        let mut crc = 0u32;
        for (request, piece) in requests.iter().zip(crcs) {
            let n = len.saturating_sub(request.buf_offset).min(request.len);
            if n == 0 {
                break;
            }
            let piece = piece.ok_or_else(|| {
                Error::Internal(
                    "internal error: a request completed without its checksum (please report it)"
                        .into(),
                )
            })?;
            crc = crc32c::crc32c_combine(crc, piece, n);
        }
        Ok(crc)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            // Dropped by a job that panicked mid-transfer: its worker may be in any state.
            if self.failed || std::thread::panicking() {
                self.pool.forget(slot);
            } else {
                self.pool.give_back(slot);
            }
        }
    }
}
