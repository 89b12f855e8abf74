//! `gdswap._gdswap._GdsCore`: cuFile I/O on CUDA tensors for `gdswap.gds_handle`
//! (`gdswap/_gds.py`, which keeps DeepSpeed's conventions and sends CPU tensors to the aio
//! engine, as DeepSpeed's `gds_handle` sends them to its aio base).
//!
//! - The driver is opened when the core is made (DeepSpeed opens it in the handle's
//!   constructor), with the GPU's primary context entered (cuFile needs a current context);
//!   when GDS is unavailable the constructor raises with the reason, as the CLI says it.
//! - `pin(ptr, len)` registers a CUDA tensor's memory with `cuFileBufRegister`
//!   (`pin_device_tensor`); `unpin` deregisters it. An op on a tensor inside a pinned range
//!   passes the registered base and the tensor's offset in it to cuFile (what DeepSpeed's
//!   `_find_base_ptr` does); an op on memory that is not pinned goes to cuFile unregistered
//!   (DeepSpeed exits the process there).
//! - Ops run in order on one I/O thread (DeepSpeed's gds ops are not split: its base handle
//!   runs them with one part), `block_size` bytes per cuFileRead/cuFileWrite, short counts
//!   continued; the file is opened with O_DIRECT (cuFile needs it). A piece whose file offset
//!   or length is not a multiple of the file's O_DIRECT alignment, or whose device address is
//!   not 4 KiB aligned, goes through the page cache and a pinned bounce buffer instead (what
//!   cuFile does internally for such I/O; its direct path refuses it).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gdswap::cuda::device::Device;
use gdswap::cuda::device_buffer::ContextBuffer;
use gdswap::cuda::pinned::PinnedBuffer;
use gdswap::cuda::stream::Stream;
use gdswap::cufile::driver::Driver;
use gdswap::cufile::handle::FileHandle;
use gdswap::cufile::io::{transfer_sync, BufRegistration, Piece};
use gdswap::io::buffer::HugePages;
use gdswap::io::file::{Access, DataFile};
use gdswap::options::Op;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::exit::{self, AtExit};

/// Bytes of the pinned bounce buffer for pieces off the O_DIRECT alignment.
const BOUNCE: usize = 1 << 20;

/// The device address alignment cuFile's direct path needs (4 KiB; it bounces the rest).
const DEVICE_ALIGN: u64 = 4096;

/// A pinned (cuFileBufRegister'ed) range of a CUDA tensor.
struct Pinned {
    gpu: usize,
    base: u64,
    len: usize,
    // Declared before `memory`: deregistered (with the context entered) before the view goes.
    reg: Option<BufRegistration>,
    memory: Arc<ContextBuffer>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let entered = self.memory.device().enter();
        self.reg.take();
        drop(entered);
    }
}

struct Job {
    op: Op,
    file: Arc<DataFile>,
    gpu: usize,
    /// The device memory cuFile is given (the pinned range, or the tensor itself) and the
    /// tensor's offset in it.
    memory: Arc<ContextBuffer>,
    offset: usize,
    len: usize,
    file_offset: u64,
    done: Sender<Result<(), String>>,
}

struct Pending {
    rx: Receiver<Result<(), String>>,
    /// The tensor whose memory the op reads or writes: held until the op has ended.
    _keep: Py<PyAny>,
}

/// Waits for each op's outcome (blocking: call it without the GIL); the errors, in order.
fn errors_of(ops: &[Pending]) -> Vec<String> {
    ops.iter()
        .filter_map(|p| {
            p.rx.recv()
                .unwrap_or_else(|_| Err("internal error: the gds thread ended".into()))
                .err()
        })
        .collect()
}

#[pyclass(frozen, name = "_GdsCore", module = "gdswap._gdswap")]
pub struct GdsCore {
    /// Shared with the exit registry, which holds it weakly (`crate::exit`).
    core: Arc<Core>,
}

struct Core {
    /// None once shut down at exit.
    driver: Mutex<Option<Driver>>,
    pinned: Mutex<Vec<Pinned>>,
    worker: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    pending: Mutex<Vec<Pending>>,
    /// Set (with the GIL held) when the exit shutdown starts.
    shut: AtomicBool,
    /// The ops the exit shutdown waited for: how many, and their errors (for `wait`).
    done_at_exit: Mutex<(usize, Vec<String>)>,
    block_size: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    /// Refuses an op once the exit shutdown has started.
    fn check_open(&self) -> PyResult<()> {
        if self.shut.load(Ordering::SeqCst) {
            return Err(exit::shut_down());
        }
        Ok(())
    }
}

impl AtExit for Core {
    fn shut_down(&self, py: Python<'_>) -> Result<(), String> {
        // All taken with the GIL held: a `submit` sends its job and records it under the
        // GIL, so none is between the two now, and none can send after this.
        self.shut.store(true, Ordering::SeqCst);
        let worker = lock(&self.worker).take();
        let thread = lock(&self.thread).take();
        let pending = std::mem::take(&mut *lock(&self.pending));
        let pinned = std::mem::take(&mut *lock(&self.pinned));
        let driver = lock(&self.driver).take();
        let (pending, errors, problems) = py.detach(move || {
            let errors = errors_of(&pending);
            let mut problems = Vec::new();
            // No job left: the thread ends once its channel is closed.
            drop(worker);
            if let Some(h) = thread {
                if h.join().is_err() {
                    problems.push("the gds I/O thread panicked".to_string());
                }
            }
            for mut p in pinned {
                let r = match (p.memory.device().enter(), p.reg.take()) {
                    (Ok(_entered), Some(reg)) => reg.deregister(),
                    (Err(e), _) => Err(e),
                    (Ok(_), None) => Ok(()),
                };
                if let Err(e) = r {
                    problems.push(format!("unpinning {:#x}: {e}", p.base));
                }
            }
            drop(driver);
            (pending, errors, problems)
        });
        {
            let mut done = lock(&self.done_at_exit);
            done.0 += pending.len();
            done.1.extend(errors);
        }
        // The tensors the ops used are released here, with the GIL held.
        drop(pending);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("gds_handle: {}", problems.join("; ")))
        }
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Read => "read",
        Op::Write => "write",
    }
}

fn py_err(e: gdswap::Error) -> PyErr {
    crate::to_py(e)
}

/// The I/O thread: each job with its GPU's primary context current.
fn worker(rx: Receiver<Job>, driver: Driver, block: usize) {
    let mut devices: HashMap<usize, Device> = HashMap::new();
    while let Ok(job) = rx.recv() {
        let r = run_job(&job, &driver, block, &mut devices).map_err(|e| e.to_string());
        let _ = job.done.send(r);
    }
}

fn run_job(
    job: &Job,
    driver: &Driver,
    block: usize,
    devices: &mut HashMap<usize, Device>,
) -> gdswap::Result<()> {
    let device = match devices.entry(job.gpu) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => v.insert(Device::retain(job.gpu)?),
    };
    device.make_current()?;
    let fh = FileHandle::register(driver, Arc::clone(&job.file))?;
    let buf = job.memory.buffer();
    let align = job.file.dio_align().max(1);
    let mut bounce: Option<(PinnedBuffer, Stream)> = None;
    let mut done = 0usize;
    while done < job.len {
        let n = block.min(job.len - done);
        let piece = Piece {
            file_offset: job.file_offset + done as u64,
            buf_offset: job.offset + done,
            len: n,
        };
        let address = buf.device_ptr() + piece.buf_offset as u64;
        if piece.file_offset % align == 0 && n as u64 % align == 0 && address % DEVICE_ALIGN == 0 {
            transfer_sync(&fh, buf, job.op, piece)?;
        } else {
            if bounce.is_none() {
                bounce = Some((PinnedBuffer::new(BOUNCE, HugePages::Off)?, Stream::new()?));
            }
            let (pinned, stream) = bounce.as_mut().expect("just made");
            let mut moved = 0;
            while moved < n {
                let m = BOUNCE.min(n - moved);
                let at = piece.file_offset + moved as u64;
                match job.op {
                    Op::Read => {
                        job.file.read_exact_at(pinned.range_mut(0, m)?, at)?;
                        buf.upload(piece.buf_offset + moved, pinned, 0, m, stream)?;
                    }
                    Op::Write => {
                        buf.download(piece.buf_offset + moved, pinned, 0, m, stream)?;
                        job.file.write_all_at(pinned.range(0, m)?, at)?;
                    }
                }
                moved += m;
            }
        }
        done += n;
    }
    Ok(())
}

#[pymethods]
impl GdsCore {
    /// Opens cuFile (GPU `gpu`'s context entered): raises gdswap.Error with the reason when
    /// the gds backend is unavailable, or the driver does not open.
    #[new]
    fn new(py: Python<'_>, block_size: u64, gpu: usize) -> PyResult<GdsCore> {
        exit::prepare(py)?;
        if block_size == 0 || block_size > 1 << 30 {
            return Err(PyValueError::new_err(format!(
                "block_size {block_size}: must be 1 byte to 1 GiB"
            )));
        }
        let driver = py
            .detach(move || -> gdswap::Result<Driver> {
                gdswap::backend::open(gdswap::backend::BackendId::Gds)?;
                let lib = gdswap::backend::gds::library().map_err(|reason| {
                    gdswap::Error::Unavailable {
                        backend: "gds".into(),
                        reason: reason.into(),
                    }
                })?;
                let device = Device::retain(gpu)?;
                let _entered = device.enter()?;
                let driver = Driver::open(&lib)?;
                // cuFile's resources in this context must outlive the handle's own retains.
                driver.keep_context(gpu)?;
                Ok(driver)
            })
            .map_err(py_err)?;
        let (tx, rx) = channel();
        let d = driver.clone();
        let block = usize::try_from(block_size).unwrap_or(usize::MAX);
        let h = std::thread::Builder::new()
            .name("gdswap-gds".into())
            .spawn(move || worker(rx, d, block))
            .map_err(|e| crate::GdswapError::new_err(format!("starting the gds thread: {e}")))?;
        let core = Arc::new(Core {
            driver: Mutex::new(Some(driver)),
            pinned: Mutex::new(Vec::new()),
            worker: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(h)),
            pending: Mutex::new(Vec::new()),
            shut: AtomicBool::new(false),
            done_at_exit: Mutex::new((0, Vec::new())),
            block_size,
        });
        let shared: Arc<dyn AtExit> = core.clone();
        if let Err(e) = exit::register(&shared) {
            // Made while the exit shutdown ran: undone, and the driver closed again.
            drop(shared);
            py.detach(move || drop(core));
            exit::close_after_refusal();
            return Err(e);
        }
        Ok(GdsCore { core })
    }

    /// cuFileBufRegister of the `nbytes` of CUDA memory at `address` on GPU `gpu` (checked
    /// by the driver first). The Python layer holds the tensor until `unpin`.
    fn pin(&self, py: Python<'_>, address: usize, nbytes: usize, gpu: usize) -> PyResult<bool> {
        self.core.check_open()?;
        let driver = lock(&self.core.driver)
            .as_ref()
            .map(Driver::clone)
            .ok_or_else(exit::shut_down)?;
        let p = py.detach(move || -> Result<Pinned, PyErr> {
            // SAFETY: the Python layer holds the tensor while it is pinned (until unpin or
            // the handle's end, which drops this registration first).
            let memory = unsafe { ContextBuffer::foreign(address as u64, nbytes, gpu) }
                .map_err(|e| PyValueError::new_err(format!("pin_device_tensor: {e}")))?;
            let reg = {
                let _entered = memory.device().enter().map_err(py_err)?;
                BufRegistration::register(&driver, memory.buffer()).map_err(py_err)?
            };
            Ok(Pinned {
                gpu,
                base: address as u64,
                len: nbytes,
                reg: Some(reg),
                memory: Arc::new(memory),
            })
        })?;
        if self.core.shut.load(Ordering::SeqCst) {
            // The exit shutdown started while this registered: undone here, and the driver
            // (which the shutdown saw in use by this pin) closed once it is unused.
            py.detach(move || drop(p));
            exit::close_after_refusal();
            return Err(exit::shut_down());
        }
        lock(&self.core.pinned).push(p);
        Ok(true)
    }

    /// cuFileBufDeregister of the range pinned at `address`: whether there was one.
    fn unpin(&self, py: Python<'_>, address: usize) -> PyResult<bool> {
        self.core.check_open()?;
        let found = {
            let mut v = lock(&self.core.pinned);
            v.iter()
                .position(|p| p.base == address as u64)
                .map(|i| v.remove(i))
        };
        let Some(mut p) = found else { return Ok(false) };
        let reg = p.reg.take();
        let memory = Arc::clone(&p.memory);
        py.detach(move || -> gdswap::Result<()> {
            let _entered = memory.device().enter()?;
            match reg {
                Some(r) => r.deregister(),
                None => Ok(()),
            }
        })
        .map_err(py_err)?;
        Ok(true)
    }

    /// Pinned ranges now.
    fn pinned(&self) -> usize {
        lock(&self.core.pinned).len()
    }

    /// Queues one op on a CUDA tensor: `op` is "read" or "write"; the `nbytes` at `address`
    /// (on GPU `gpu`) belong to `keep`, held until `wait()`. The file is opened here with
    /// O_DIRECT (errors raise here).
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        op: &str,
        path: PathBuf,
        keep: Py<PyAny>,
        address: usize,
        nbytes: usize,
        gpu: usize,
        file_offset: u64,
    ) -> PyResult<()> {
        self.core.check_open()?;
        let op = match op {
            "read" => Op::Read,
            "write" => Op::Write,
            other => return Err(PyValueError::new_err(format!("op {other:?}"))),
        };
        file_offset.checked_add(nbytes as u64).ok_or_else(|| {
            PyValueError::new_err(format!(
                "file_offset {file_offset} + {nbytes} bytes overflows"
            ))
        })?;
        let ptr = address as u64;
        let end = ptr.checked_add(nbytes as u64).ok_or_else(|| {
            PyValueError::new_err(format!("address {address:#x} + {nbytes} bytes overflows"))
        })?;
        // Inside a pinned range: cuFile gets the registered base and the offset in it.
        let region = lock(&self.core.pinned)
            .iter()
            .find(|p| p.gpu == gpu && p.base <= ptr && end <= p.base + p.len as u64)
            .map(|p| (Arc::clone(&p.memory), (ptr - p.base) as usize));
        let access = match op {
            Op::Read => Access::Read,
            Op::Write => Access::Write,
        };
        let (file, region) = py.detach(move || -> PyResult<_> {
            let region = match region {
                Some(r) => r,
                None => {
                    // SAFETY: the Python layer holds the tensor (`keep`) until wait() has
                    // received this op's result.
                    let m = unsafe { ContextBuffer::foreign(ptr, nbytes, gpu) }.map_err(|e| {
                        PyValueError::new_err(format!("{} of a CUDA tensor: {e}", op_name(op)))
                    })?;
                    (Arc::new(m), 0)
                }
            };
            let file = DataFile::open(&path, access, true).map_err(py_err)?;
            Ok((file, region))
        })?;
        let (tx, rx) = channel();
        let job = Job {
            op,
            file: Arc::new(file),
            gpu,
            memory: region.0,
            offset: region.1,
            len: nbytes,
            file_offset,
            done: tx,
        };
        // The send and the record below happen under the GIL, as the exit shutdown's taking
        // of both: a job is either sent and recorded before it, or refused.
        let sent = lock(&self.core.worker)
            .as_ref()
            .map(|w| w.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            self.core.check_open()?;
            return Err(crate::GdswapError::new_err("the gds I/O thread has ended"));
        }
        lock(&self.core.pending).push(Pending { rx, _keep: keep });
        Ok(())
    }

    /// Ops queued and not yet waited for.
    fn pending(&self) -> usize {
        lock(&self.core.pending).len()
    }

    /// Waits (without the GIL) for every queued op; how many completed and the errors (with
    /// those of the ops the exit shutdown waited for).
    fn wait(&self, py: Python<'_>) -> (usize, Vec<String>) {
        let (at_exit, mut exit_errors) = std::mem::take(&mut *lock(&self.core.done_at_exit));
        let ops = std::mem::take(&mut *lock(&self.core.pending));
        let (ops, errors) = py.detach(move || {
            let errors = errors_of(&ops);
            (ops, errors)
        });
        let n = ops.len();
        drop(ops);
        exit_errors.extend(errors);
        (at_exit + n, exit_errors)
    }

    #[getter]
    fn block_size(&self) -> u64 {
        self.core.block_size
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Ops still queued use their tensors' memory: wait for them before the tensors go.
        for p in std::mem::take(self.pending.get_mut().unwrap_or_else(|e| e.into_inner())) {
            let _ = p.rx.recv();
        }
        self.worker
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = self
            .thread
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
        self.pinned
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
