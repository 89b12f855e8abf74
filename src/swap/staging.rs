//! Staging buffers: the memory each swap moves through, prepared by the store's backend
//! (host memory for `host` and `posix`; device memory with a pinned bounce ring for
//! `bounce`) and kept in a pool, so a steady stream of swaps of the same sizes allocates
//! nothing.
//!
//! The budget counts every staging byte that exists, idle in the pool or in use. Asking for
//! more than the budget allows, after idle buffers have been given back, is an error right
//! away: before any I/O, never an out-of-memory later.

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::backend::{Backend, Worker, WorkerSetup};
use crate::error::{Error, Result};
use crate::io::buffer::HugePages;
use crate::io::file::DataFile;
use crate::options::{GpuOptions, Op};
use crate::size::Bytes;
use crate::stats::LatencyRecorder;

use super::threads::IoThreads;

struct Slot {
    len: u64,
    /// The I/O thread that prepared the worker, and the only one that may use it.
    thread: usize,
    worker: Box<dyn Worker>,
    latencies: LatencyRecorder,
}

#[derive(Default)]
struct Inner {
    idle: Vec<Slot>,
    /// Bytes of every staging buffer that exists.
    allocated: u64,
    peak: u64,
}

/// The pool of staging buffers of one store.
pub struct StagingPool {
    backend: Arc<dyn Backend>,
    file: Arc<DataFile>,
    budget: u64,
    block_size: u64,
    queue_depth: u32,
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
    ) -> StagingPool {
        StagingPool {
            backend,
            file,
            budget,
            block_size,
            queue_depth,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The most staging bytes that existed at once.
    pub fn peak(&self) -> u64 {
        lock(&self.inner).peak
    }

    /// Staging bytes that exist now (idle or in use).
    pub fn allocated(&self) -> u64 {
        lock(&self.inner).allocated
    }

    /// A staging buffer of exactly `len` bytes for tensor `name`, from the pool or newly
    /// prepared by the backend on one of `threads`; an error naming the tensor when the
    /// budget does not allow it.
    pub fn acquire(self: &Arc<Self>, name: &str, len: u64, threads: &IoThreads) -> Result<Staging> {
        let mut evicted = Vec::new();
        {
            let mut g = lock(&self.inner);
            if let Some(i) = g.idle.iter().position(|s| s.len == len) {
                let slot = g.idle.swap_remove(i);
                return Ok(Staging {
                    slot: Some(slot),
                    pool: Arc::clone(self),
                    failed: false,
                });
            }
            while g.allocated + len > self.budget && !g.idle.is_empty() {
                let s = g.idle.remove(0);
                g.allocated -= s.len;
                evicted.push(s);
            }
            if g.allocated + len > self.budget {
                let in_use = g.allocated;
                drop(g);
                release_all(evicted)?;
                return Err(Error::Swap {
                    tensor: name.to_string(),
                    message: format!(
                        "needs {} of staging memory, and the store's budget is {} with {} in use by operations in flight; raise the staging budget, or wait for tickets before starting more",
                        Bytes(len),
                        Bytes(self.budget),
                        Bytes(in_use)
                    ),
                });
            }
            g.allocated += len;
            g.peak = g.peak.max(g.allocated);
        }
        let thread = threads.pick();
        let prepared = release_all(evicted).and_then(|()| {
            let (tx, rx) = channel();
            let pool = Arc::clone(self);
            threads.submit(
                thread,
                Box::new(move || {
                    let _ = tx.send(pool.prepare(len));
                }),
            )?;
            rx.recv().unwrap_or_else(|_| {
                Err(Error::Resources(
                    "internal error: a swap I/O thread stopped while preparing a buffer".into(),
                ))
            })
        });
        match prepared {
            Ok(worker) => Ok(Staging {
                slot: Some(Slot {
                    len,
                    thread,
                    worker,
                    latencies: LatencyRecorder::new(),
                }),
                pool: Arc::clone(self),
                failed: false,
            }),
            Err(e) => {
                lock(&self.inner).allocated -= len;
                Err(Error::Within {
                    context: format!("staging buffer for tensor '{name}'"),
                    source: Box::new(e),
                })
            }
        }
    }

    fn prepare(&self, len: u64) -> Result<Box<dyn Worker>> {
        self.backend.prepare(&WorkerSetup {
            tid: 0,
            op: Op::Write,
            file: Arc::clone(&self.file),
            range_len: len,
            block_size: self.block_size,
            queue_depth: self.queue_depth,
            fixed_buffers: false,
            huge_pages: if len >= 4 << 20 {
                HugePages::Thp
            } else {
                HugePages::Off
            },
            gpu: GpuOptions {
                bounce_buffers: (2 * self.queue_depth as usize).max(2),
                ..GpuOptions::default()
            },
        })
    }

    fn give_back(&self, slot: Slot) {
        lock(&self.inner).idle.push(slot);
    }

    fn forget(&self, slot: Slot) {
        lock(&self.inner).allocated -= slot.len;
        // Its release error has nowhere to go: the transfer's own error is already reported.
        let _ = slot.worker.release();
    }
}

fn release_all(slots: Vec<Slot>) -> Result<()> {
    for s in slots {
        s.worker.release()?;
    }
    Ok(())
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

    /// The I/O thread every transfer through it must run on.
    pub fn thread(&self) -> usize {
        self.slot.as_ref().map_or(0, |s| s.thread)
    }

    /// Its length (the tensor's padded length).
    fn len(&self) -> u64 {
        self.slot.as_ref().map_or(0, |s| s.len)
    }

    /// Lets `f` write the buffer's bytes.
    pub fn fill(&mut self, f: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        self.slot().worker.fill(f)
    }

    /// Lets `f` read the buffer's bytes.
    pub fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.slot().worker.inspect(f)
    }

    /// Moves the whole buffer to or from the data file at `offset`, through the backend, in
    /// requests of at most `block_size` (every one aligned: the buffer is a multiple of the
    /// O_DIRECT alignment).
    pub fn transfer(&mut self, op: Op, offset: u64, block_size: u64) -> Result<()> {
        let len = self.len();
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
        let slot = self.slot();
        let r = slot.worker.transfer(op, &requests, &mut slot.latencies);
        self.failed |= r.is_err();
        r
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            if self.failed {
                self.pool.forget(slot);
            } else {
                self.pool.give_back(slot);
            }
        }
    }
}
