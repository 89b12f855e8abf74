//! `gdswap._gdswap._AioCore`: the engine under `gdswap.aio_handle` (`gdswap/_aio.py`, which
//! keeps DeepSpeed's argument checks and return values). Each op is cut into
//! `intra_op_parallelism` equal parts, one per worker thread, as DeepSpeed does; a worker moves
//! its part with gdswap's io_uring engine (`block_size` requests, `queue_depth` in flight,
//! O_DIRECT where the file, address and length are aligned, the page cache for the rest).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gdswap::io::file::{Access, DataFile};
use gdswap::io::lent::LentMemory;
use gdswap::io::uring::UringEngine;
use gdswap::options::Op;
use gdswap::request::Request;
use gdswap::stats::LatencyRecorder;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::ffi::LockedMemory;

struct Job {
    op: Op,
    file: Arc<DataFile>,
    mem: LentMemory,
    requests: Vec<Request>,
    done: Sender<Result<(), String>>,
    leaked: Arc<AtomicBool>,
}

struct Pending {
    rx: Receiver<Result<(), String>>,
    parts: usize,
    /// The tensor whose memory the op reads or writes: held until every part has ended, and
    /// for the process's life if a part's requests may still be in the kernel (`leaked`).
    keep: Option<Py<PyAny>>,
    /// Set by a worker whose failed run could not drain its requests.
    leaked: Arc<AtomicBool>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.leaked.load(Ordering::SeqCst) {
            // The kernel may still write into the tensor's memory: never let Python free it.
            std::mem::forget(self.keep.take());
        }
    }
}

impl Pending {
    /// Waits for every part; the first error.
    fn wait(&self) -> Result<(), String> {
        let mut first = Ok(());
        for _ in 0..self.parts {
            let r = self.rx.recv().unwrap_or_else(|_| {
                Err("internal error: an aio worker ended without a result".into())
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

#[pyclass(frozen, name = "_AioCore", module = "gdswap._gdswap")]
pub struct AioCore {
    workers: Mutex<Vec<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pending: Mutex<Vec<Pending>>,
    block_size: u64,
    queue_depth: u32,
}

fn worker(rx: Receiver<Job>, queue_depth: u32, block_size: u64) {
    // The engine records every request's latency; nothing reads them here. One recorder for
    // the thread's life: a new one per op would allocate and zero its ~220 KB of buckets each
    // time (tens of microseconds per op, more than the ring's setup).
    let mut latencies = LatencyRecorder::new();
    // One ring for the thread's life too: each op lends the engine its tensor's memory and
    // its file (`UringEngine::retarget`) instead of making a ring (2-3% of a 64 MiB write,
    // examples/ring_per_op.rs). Between ops the engine holds an empty view, never the last
    // op's memory (which Python may free after `wait()`), and the last op's file (open until
    // the next op or the handle's end). After a failed op the engine is dropped (its ring
    // drained) and the next op makes a new one.
    let mut engine: Option<UringEngine<LentMemory>> = None;
    while let Ok(job) = rx.recv() {
        let Job {
            op,
            file,
            mem,
            requests,
            done,
            leaked,
        } = job;
        let idle_file = Arc::clone(&file);
        let ready = match engine.take() {
            Some(mut e) => e.retarget(mem, file).map(|_empty| e),
            None => UringEngine::new(mem, file, queue_depth, block_size, false),
        };
        let r = ready.and_then(|mut e| {
            if let Err(err) = e.run(op, &requests, &mut latencies) {
                if e.leaks_buffer() {
                    // Requests may still be in the kernel: the op's tensor must outlive them
                    // (the pending op keeps it for good), and so must this engine's ring.
                    leaked.store(true, Ordering::SeqCst);
                    std::mem::forget(e);
                }
                return Err(err);
            }
            // The op's memory goes back now: only a drained engine is kept.
            if e.retarget(LentMemory::empty(), idle_file).is_ok() {
                engine = Some(e);
            }
            Ok(())
        });
        let _ = done.send(r.map_err(|e| e.to_string()));
    }
}

/// Before a write ending at `end` (`file_offset + nbytes`, checked by the caller): extends
/// the file to `end` (ftruncate) when that is past its current end, so the file is then
/// exactly as long as the write will leave it (as DeepSpeed's handle leaves it) and the
/// write's O_DIRECT requests all land inside the file: requests past the end would each
/// extend it, one at a time under the inode lock; inside, the filesystem allocates blocks as
/// they are written, as for `gdswap run`'s files (which it sizes the same way).
///
/// Why not fallocate, which this did first: ext4 places an fallocated range of up to 128 MiB
/// without normalising the allocation (`EXT4_GET_BLOCKS_NO_NORMALIZE`), so its blocks need not
/// start on any boundary larger than 4 KiB, while blocks allocated by 1 MiB O_DIRECT writes are
/// placed on aligned boundaries. Seen on the development VM: a 64 MiB file made by fallocate
/// started at a physical block 2 blocks past a 32 KiB boundary and took 1 MiB overwrites at
/// 4.0-4.3 GiB/s for as long as it lived, one written by `gdswap run` (2 MiB aligned) at
/// 4.6-5.1 GiB/s (docs/python.md). The first write of a new file was no faster with fallocate.
fn extend_to_end(file: &DataFile, end: u64) -> gdswap::Result<()> {
    // The length check and the extension under one process-wide lock: two ops on one file,
    // submitted from two threads, must not let the shorter extension land last and cut the
    // other's range off (ftruncate shrinks; fallocate did not).
    static EXTENDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = EXTENDING.lock().unwrap_or_else(|p| p.into_inner());
    if end <= file.len()? {
        return Ok(());
    }
    file.set_len(end)
}

/// `len` bytes at file offset `file_offset` from buffer byte 0 (address `address`), in
/// requests of `block` bytes; a request goes through O_DIRECT only if its file offset, address
/// and length are multiples of `align`.
fn requests(
    address: usize,
    len: usize,
    file_offset: u64,
    block: usize,
    align: u64,
) -> Vec<Request> {
    let mut out = Vec::with_capacity(len.div_ceil(block.max(1)));
    let mut done = 0usize;
    while done < len {
        let n = block.min(len - done);
        let fo = file_offset + done as u64;
        let aligned =
            fo % align == 0 && (address + done) as u64 % align == 0 && n as u64 % align == 0;
        out.push(Request {
            file_offset: fo,
            buf_offset: done,
            len: n,
            tail: !aligned,
        });
        done += n;
    }
    out
}

#[pymethods]
impl AioCore {
    #[new]
    fn new(block_size: u64, queue_depth: u32, threads: usize) -> PyResult<AioCore> {
        if block_size == 0 || block_size > 1 << 30 {
            return Err(PyValueError::new_err(format!(
                "block_size {block_size}: must be 1 byte to 1 GiB"
            )));
        }
        if queue_depth == 0 || queue_depth > 32768 {
            return Err(PyValueError::new_err(format!(
                "queue_depth {queue_depth}: must be 1 to 32768"
            )));
        }
        if threads == 0 {
            return Err(PyValueError::new_err(
                "intra_op_parallelism must be at least 1",
            ));
        }
        if let Some(why) = gdswap::io::uring::unavailable_reason() {
            return Err(crate::GdswapError::new_err(why.to_string()));
        }
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for i in 0..threads {
            let (tx, rx) = channel();
            let h = std::thread::Builder::new()
                .name(format!("gdswap-aio-{i}"))
                .spawn(move || worker(rx, queue_depth, block_size))
                .map_err(|e| {
                    crate::GdswapError::new_err(format!("starting aio worker thread {i}: {e}"))
                })?;
            workers.push(tx);
            handles.push(h);
        }
        Ok(AioCore {
            workers: Mutex::new(workers),
            threads: Mutex::new(handles),
            pending: Mutex::new(Vec::new()),
            block_size,
            queue_depth,
        })
    }

    /// Queues one op: `op` is "read" or "write"; the `nbytes` at `address` belong to `keep`,
    /// which is held until `wait()`. Opening the file happens here (errors are raised here).
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        op: &str,
        path: PathBuf,
        keep: Py<PyAny>,
        address: usize,
        nbytes: usize,
        file_offset: u64,
    ) -> PyResult<()> {
        let op = match op {
            "read" => Op::Read,
            "write" => Op::Write,
            other => return Err(PyValueError::new_err(format!("op {other:?}"))),
        };
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let n = workers.len();
        if nbytes % n != 0 {
            return Err(PyValueError::new_err(format!(
                "{nbytes} bytes are not divisible by intra_op_parallelism {n}"
            )));
        }
        if nbytes > 0 && address == 0 {
            return Err(PyValueError::new_err("null buffer address"));
        }
        let end = file_offset.checked_add(nbytes as u64).ok_or_else(|| {
            PyValueError::new_err(format!(
                "file_offset {file_offset} + {nbytes} bytes overflows"
            ))
        })?;
        let access = match op {
            Op::Read => Access::Read,
            Op::Write => Access::Write,
        };
        let p = path.clone();
        let file = py.detach(move || {
            let file = DataFile::open(&p, access, true)
                .or_else(|direct_err| {
                    // Filesystems without O_DIRECT (tmpfs): the page cache for everything.
                    DataFile::open(&p, access, false).map_err(|_| direct_err)
                })
                .map_err(crate::to_py)?;
            if op == Op::Write && nbytes > 0 {
                extend_to_end(&file, end).map_err(|e| crate::OpFailed::new_err(e.to_string()))?;
            }
            Ok::<_, PyErr>(file)
        })?;
        let file = Arc::new(file);
        let align = if file.is_direct() {
            file.dio_align().max(1)
        } else {
            1
        };
        let (tx, rx) = channel();
        let leaked = Arc::new(AtomicBool::new(false));
        let per = nbytes / n;
        let block = usize::try_from(self.block_size).unwrap_or(usize::MAX);
        let mut parts = 0;
        if per > 0 {
            for (i, w) in workers.iter().enumerate() {
                let start = i * per;
                let addr = address + start;
                let reqs = requests(addr, per, file_offset + start as u64, block, align);
                // SAFETY: the Python layer passes the address (non-null) of a live CPU tensor
                // of `nbytes` bytes, held as `keep` in the pending op until `wait()` (or drop)
                // has received every part's result, which each worker sends only after its
                // engine has given the view back (retargeted to an empty one, or dropped);
                // this part is the tensor's bytes [start, start+per), lent to no other part.
                // (Python code that touches the tensor before `wait()` races with the op, as
                // it does with DeepSpeed's handle.)
                let mem = unsafe { LentMemory::new(addr as *mut u8, per) };
                let job = Job {
                    op,
                    file: Arc::clone(&file),
                    mem,
                    requests: reqs,
                    done: tx.clone(),
                    leaked: Arc::clone(&leaked),
                };
                if w.send(job).is_err() {
                    let _ = tx.send(Err(format!("aio worker thread {i} has ended")));
                }
                parts += 1;
            }
        }
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Pending {
                rx,
                parts,
                keep: Some(keep),
                leaked,
            });
        Ok(())
    }

    /// Ops queued and not yet waited for.
    fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits (without the GIL) for every queued op; returns how many completed and the
    /// errors of those that failed.
    fn wait(&self, py: Python<'_>) -> (usize, Vec<String>) {
        let ops = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let (ops, errors) = py.detach(move || {
            let errors: Vec<String> = ops.iter().filter_map(|p| p.wait().err()).collect();
            (ops, errors)
        });
        let n = ops.len();
        drop(ops);
        (n, errors)
    }

    #[getter]
    fn block_size(&self) -> u64 {
        self.block_size
    }

    #[getter]
    fn queue_depth(&self) -> u32 {
        self.queue_depth
    }
}

impl Drop for AioCore {
    fn drop(&mut self) {
        // Ops still queued use their tensors' memory: wait for them before the tensors go.
        let ops = std::mem::take(self.pending.get_mut().unwrap_or_else(|p| p.into_inner()));
        for p in &ops {
            let _ = p.wait();
        }
        drop(ops);
        self.workers
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        for h in self
            .threads
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = h.join();
        }
    }
}

/// Page-locked memory for `new_cpu_locked_tensor`; unlocked and freed when the last tensor
/// viewing it is gone.
#[pyclass(frozen, name = "_Locked", module = "gdswap._gdswap")]
pub struct Locked {
    mem: LockedMemory,
}

#[pymethods]
impl Locked {
    #[new]
    fn new(py: Python<'_>, nbytes: usize) -> PyResult<Locked> {
        let mem = py
            .detach(move || LockedMemory::new(nbytes))
            .map_err(crate::GdswapError::new_err)?;
        Ok(Locked { mem })
    }

    #[getter]
    fn address(&self) -> usize {
        self.mem.address()
    }

    #[getter]
    fn nbytes(&self) -> usize {
        self.mem.len()
    }

    /// The pages backing it (huge pages or 4 KiB pages).
    #[getter]
    fn pages(&self) -> String {
        self.mem.backing()
    }
}
