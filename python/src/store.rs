//! `gdswap._gdswap._Store` and `_Ticket`: the swap store for the Python layer
//! (`gdswap/_store.py`), which checks arrays and passes their addresses.
//!
//! A store on the `gds` backend is closed at interpreter exit (`crate::exit`): its I/O
//! threads hold cuFile registrations and driver users, and the driver must be closed before
//! libcufile's own exit handlers run (with cuFile's thread pool on they race its worker
//! threads: SIGSEGV). The store's own close does it: every swap in flight ends, and every
//! swap-out written is committed to the manifest first, so nothing written is lost; the
//! tickets keep their outcomes. After that the store's operations raise `gdswap.Error`
//! ("gdswap: gds was shut down at interpreter exit"), as does opening a new gds store.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gdswap::swap::{DType, Entry, GpuWork, SwapOptions, SwapStore};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::exit::{self, AtExit};
use crate::ffi::{foreign_device, gpu_work, PendingRead, RawHost, WriteTicket};
use crate::to_py;

/// How long the exit shutdown waits for calls of other threads (daemon threads, still
/// running at exit) that hold the store, before leaving it to close when they end.
const EXIT_WAIT: Duration = Duration::from_secs(60);

const DTYPES: [DType; 7] = [
    DType::U8,
    DType::F16,
    DType::BF16,
    DType::F32,
    DType::F64,
    DType::I32,
    DType::I64,
];

pub fn parse_dtype(name: &str) -> PyResult<DType> {
    DTYPES
        .into_iter()
        .find(|d| d.name() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = DTYPES.iter().map(|d| d.name()).collect();
            PyValueError::new_err(format!(
                "dtype {name:?}: the swap store keeps {}",
                known.join(", ")
            ))
        })
}

/// A store, until closed.
#[pyclass(frozen, name = "_Store", module = "gdswap._gdswap")]
pub struct Store {
    /// Shared with the exit registry (gds stores), which holds it weakly.
    cell: Arc<Cell>,
    dir: PathBuf,
    backend: String,
    gpu: usize,
}

/// The open store, and whether the exit shutdown closed it.
struct Cell {
    inner: Mutex<Option<Arc<SwapStore>>>,
    shut: AtomicBool,
    dir: PathBuf,
}

impl AtExit for Cell {
    fn shut_down(&self, py: Python<'_>) -> Result<(), String> {
        // With the GIL held, as every call's taking of the store: none can start after this.
        let taken = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut store) = taken else {
            // Closed by its user: it says so as before.
            return Ok(());
        };
        self.shut.store(true, Ordering::SeqCst);
        let dir = self.dir.display().to_string();
        py.detach(move || {
            // A call of another thread holds the store until it returns (calls start swaps,
            // they do not wait for them): waited for, so that the close below runs here.
            let deadline = Instant::now() + EXIT_WAIT;
            loop {
                match Arc::try_unwrap(store) {
                    Ok(s) => {
                        return s
                            .close()
                            .map_err(|e| format!("closing the swap store at {dir}: {e}"))
                    }
                    Err(shared) if Instant::now() < deadline => {
                        store = shared;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_shared) => {
                        return Err(format!(
                            "the swap store at {dir} was still used by another thread after {} s: it closes when that call ends",
                            EXIT_WAIT.as_secs()
                        ))
                    }
                }
            }
        })
    }
}

type EntryTuple = (String, String, Vec<usize>, u64, u64);

fn entry_tuple(e: &Entry) -> EntryTuple {
    (
        e.name.clone(),
        e.dtype.name().to_string(),
        e.shape.clone(),
        e.len,
        e.generation,
    )
}

impl Store {
    fn get(&self) -> PyResult<Arc<SwapStore>> {
        let g = self.cell.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g.as_ref() {
            return Ok(Arc::clone(s));
        }
        if self.cell.shut.load(Ordering::SeqCst) {
            return Err(exit::shut_down());
        }
        Err(PyValueError::new_err(format!(
            "the swap store at {} is closed",
            self.dir.display()
        )))
    }
}

/// Why a CUDA tensor's swap did not start: the tensor (not device memory of the store's
/// GPU, smaller than it says: a ValueError) or the store (gdswap.Error).
enum Refusal {
    Tensor(String),
    Store(gdswap::Error),
}

impl Refusal {
    fn into_py(self) -> PyErr {
        match self {
            Refusal::Tensor(e) => PyValueError::new_err(e),
            Refusal::Store(e) => to_py(e),
        }
    }
}

impl Store {
    /// A CUDA tensor needs device staging (`bounce`, `gds`) on its GPU.
    fn check_cuda(&self, store: &SwapStore, call: &str, device: Option<usize>) -> PyResult<()> {
        if !store.stages_in_device_memory() {
            return Err(PyValueError::new_err(format!(
                "{call}: a CUDA tensor needs a store with backend 'bounce' or 'gds'; this one uses {:?} (copy the tensor with .cpu(), or open the store with a device backend)",
                self.backend
            )));
        }
        match device {
            Some(d) if d != self.gpu => Err(PyValueError::new_err(format!(
                "{call}: the tensor is on cuda:{d} and the store stages on GPU {} (open a store with gpu={d}, or move the tensor)",
                self.gpu
            ))),
            _ => Ok(()),
        }
    }
}

#[pymethods]
impl Store {
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, backend, budget, io_threads, gpu, verify, direct, discard_existing, block_size, queue_depth))]
    fn open(
        py: Python<'_>,
        path: PathBuf,
        backend: String,
        budget: u64,
        io_threads: Option<usize>,
        gpu: usize,
        verify: bool,
        direct: bool,
        discard_existing: bool,
        block_size: u64,
        queue_depth: u32,
    ) -> PyResult<Store> {
        let id: gdswap::backend::BackendId = backend
            .parse()
            .map_err(|e| crate::GdswapError::new_err(format!("backend: {e}")))?;
        let gds = id == gdswap::backend::BackendId::Gds;
        if gds {
            exit::prepare(py)?;
        }
        let mut opts = SwapOptions {
            backend: id,
            gpu,
            staging_budget: budget,
            verify,
            direct,
            discard_existing,
            block_size,
            queue_depth,
            ..SwapOptions::default()
        };
        if let Some(n) = io_threads {
            opts.io_threads = n;
        }
        let dir = path.clone();
        let store = py
            .detach(move || SwapStore::open(&path, opts))
            .map_err(to_py)?;
        let cell = Arc::new(Cell {
            inner: Mutex::new(Some(Arc::new(store))),
            shut: AtomicBool::new(false),
            dir: dir.clone(),
        });
        if gds {
            let shared: Arc<dyn AtExit> = cell.clone();
            if let Err(e) = exit::register(&shared) {
                // Opened while the exit shutdown ran: closed again, and the driver with it.
                drop(shared);
                py.detach(move || drop(cell));
                exit::close_after_refusal();
                return Err(e);
            }
        }
        Ok(Store {
            cell,
            dir,
            backend,
            gpu,
        })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.dir.clone()
    }

    #[getter]
    fn backend(&self) -> String {
        self.backend.clone()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.cell
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Starts writing `nbytes` at `address` (the Python layer's checked array) as `name`.
    /// Returns once the bytes are copied into staging; the ticket says when they are durable.
    fn swap_out(
        &self,
        py: Python<'_>,
        name: String,
        address: usize,
        nbytes: usize,
        dtype: &str,
        shape: Vec<usize>,
    ) -> PyResult<PyTicket> {
        let store = self.get()?;
        let dtype = parse_dtype(dtype)?;
        // SAFETY: the Python layer passes the address of a live, contiguous CPU array of
        // `nbytes` bytes that it holds for this call; swap_out copies the bytes before it
        // returns (the store borrows the tensor only for the call).
        let tensor = unsafe { RawHost::new(address, nbytes, dtype, shape) };
        let ticket = py
            .detach(move || WriteTicket::start(&store, &name, &tensor))
            .map_err(to_py)?;
        Ok(PyTicket::new(State::Write(ticket), None))
    }

    /// Starts reading `name` into the `nbytes` at `address`; `keep` (the array) is held by
    /// the ticket until the bytes are in.
    fn swap_in(
        &self,
        py: Python<'_>,
        name: String,
        keep: Py<PyAny>,
        address: usize,
        nbytes: usize,
    ) -> PyResult<PyTicket> {
        let store = self.get()?;
        let pending = py
            .detach(move || {
                // SAFETY: `keep` owns the memory at `address` (checked by the Python layer) and
                // the ticket below holds `keep` until the read, and its copy, have ended.
                let dest = unsafe { RawHost::new(address, nbytes, DType::U8, vec![nbytes]) };
                // SAFETY: as above: alive until the PendingRead is dropped, which the ticket
                // does before it releases `keep`.
                unsafe { PendingRead::start(&store, &name, Box::new(dest), GpuWork::default()) }
            })
            .map_err(to_py)?;
        Ok(PyTicket::new(State::Read(pending), Some(keep)))
    }

    /// Starts writing the `nbytes` of CUDA memory at `address` (the Python layer's checked
    /// CUDA tensor, on GPU `device` when it says) as `name`, after the GPU work `stream`
    /// names (`stream_given` false: the interface had no `stream`; see `ffi::gpu_work`). Returns once the bytes are copied into device staging.
    #[allow(clippy::too_many_arguments)]
    fn swap_out_device(
        &self,
        py: Python<'_>,
        name: String,
        address: usize,
        nbytes: usize,
        dtype: &str,
        shape: Vec<usize>,
        device: Option<usize>,
        stream_given: bool,
        stream: Option<usize>,
    ) -> PyResult<PyTicket> {
        let stream = stream_given.then_some(stream);
        let store = self.get()?;
        let dtype = parse_dtype(dtype)?;
        self.check_cuda(&store, &format!("swap_out('{name}')"), device)?;
        let gpu = self.gpu;
        let ticket = py
            .detach(move || {
                // SAFETY: the Python layer holds the CUDA tensor for this call, and swap_out
                // has copied its bytes into staging when it returns.
                let t = unsafe { foreign_device(address, nbytes, dtype, shape, gpu) }
                    .map_err(|e| Refusal::Tensor(format!("swap_out('{name}'): {e}")))?;
                // SAFETY: the stream comes from the tensor's __cuda_array_interface__, whose
                // producer keeps it alive (it is the stream the tensor's work runs on).
                let after = unsafe { gpu_work(stream) };
                store
                    .swap_out_after(&name, &t, after)
                    .map(WriteTicket::from)
                    .map_err(Refusal::Store)
            })
            .map_err(Refusal::into_py)?;
        Ok(PyTicket::new(State::Write(ticket), None))
    }

    /// Starts reading `name` into the `nbytes` of CUDA memory at `address`; `keep` (the CUDA
    /// tensor) is held by the ticket until the bytes are in.
    #[allow(clippy::too_many_arguments)]
    fn swap_in_device(
        &self,
        py: Python<'_>,
        name: String,
        keep: Py<PyAny>,
        address: usize,
        nbytes: usize,
        device: Option<usize>,
        stream_given: bool,
        stream: Option<usize>,
    ) -> PyResult<PyTicket> {
        let stream = stream_given.then_some(stream);
        let store = self.get()?;
        self.check_cuda(&store, &format!("swap_in('{name}')"), device)?;
        let gpu = self.gpu;
        let pending = py
            .detach(move || {
                // SAFETY: `keep` owns the memory (checked by the Python layer) and the ticket
                // holds it until the read, and the copy into it, have ended.
                let dest = unsafe { foreign_device(address, nbytes, DType::U8, vec![nbytes], gpu) }
                    .map_err(|e| Refusal::Tensor(format!("swap_in('{name}'): {e}")))?;
                // SAFETY: as in swap_out_device.
                let after = unsafe { gpu_work(stream) };
                // SAFETY: as above: alive until the PendingRead is dropped, which the ticket
                // does before it releases `keep`.
                unsafe { PendingRead::start(&store, &name, Box::new(dest), after) }
                    .map_err(Refusal::Store)
            })
            .map_err(Refusal::into_py)?;
        Ok(PyTicket::new(State::Read(pending), Some(keep)))
    }

    fn prefetch(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let store = self.get()?;
        py.detach(move || store.prefetch(&name)).map_err(to_py)
    }

    fn remove(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let store = self.get()?;
        py.detach(move || store.remove(&name)).map_err(to_py)
    }

    fn list(&self) -> PyResult<Vec<EntryTuple>> {
        let store = self.get()?;
        Ok(store.list().iter().map(entry_tuple).collect())
    }

    fn info(&self, name: &str) -> PyResult<EntryTuple> {
        let store = self.get()?;
        store.info(name).as_ref().map(entry_tuple).ok_or_else(|| {
            PyKeyError::new_err(format!(
                "{name:?}: no such tensor in the swap store at {}",
                self.dir.display()
            ))
        })
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.get()?.stats();
        let d = PyDict::new(py);
        d.set_item("staging_now", s.staging_now)?;
        d.set_item("staging_peak", s.staging_peak)?;
        d.set_item("device_peak", s.device_peak)?;
        d.set_item("bytes_written", s.bytes_written)?;
        d.set_item("bytes_read", s.bytes_read)?;
        Ok(d)
    }

    /// Waits for every operation in flight, frees the staging buffers and closes the store.
    /// Closing a closed store does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .cell
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(store) = taken else { return Ok(()) };
        py.detach(move || match Arc::try_unwrap(store) {
            Ok(s) => s.close(),
            // A call on another thread still holds it: it closes when that call ends.
            Err(_shared) => Ok(()),
        })
        .map_err(to_py)
    }
}

enum State {
    Write(WriteTicket),
    Read(PendingRead),
    /// `wait()` on another thread has the ticket.
    Waiting,
    Done(Result<(), String>),
}

/// A swap in flight.
#[pyclass(frozen, name = "_Ticket", module = "gdswap._gdswap")]
pub struct PyTicket {
    // Declared (so dropped) before `keep`: a read still running is waited for, and copied
    // into the array, while the array is still held.
    state: Mutex<State>,
    keep: Mutex<Option<Py<PyAny>>>,
}

impl PyTicket {
    fn new(state: State, keep: Option<Py<PyAny>>) -> PyTicket {
        PyTicket {
            state: Mutex::new(state),
            keep: Mutex::new(keep),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finish(&self, r: gdswap::Result<()>) -> PyResult<()> {
        let stored = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
        *self.lock() = State::Done(stored);
        // The read has ended: the array need not be held any more.
        self.keep.lock().unwrap_or_else(|p| p.into_inner()).take();
        r.map_err(to_py)
    }
}

#[pymethods]
impl PyTicket {
    /// Blocks (without the GIL) until the swap has ended; raises its error.
    fn wait(&self, py: Python<'_>) -> PyResult<()> {
        let state = std::mem::replace(&mut *self.lock(), State::Waiting);
        match state {
            State::Write(t) => {
                let r = py.detach(move || t.wait());
                self.finish(r)
            }
            State::Read(mut p) => {
                let r = py.detach(move || {
                    let r = p.wait();
                    drop(p);
                    r
                });
                self.finish(r)
            }
            State::Done(r) => {
                *self.lock() = State::Done(r.clone());
                r.map_err(crate::GdswapError::new_err)
            }
            State::Waiting => {
                *self.lock() = State::Waiting;
                Err(PyValueError::new_err(
                    "another thread is already waiting on this ticket",
                ))
            }
        }
    }

    /// True once the swap has ended (then `wait()` returns at once); never blocks.
    fn done(&self) -> bool {
        let mut g = self.lock();
        match &mut *g {
            State::Write(t) => t.poll(),
            State::Read(p) => p.poll(),
            State::Waiting => false,
            State::Done(_) => true,
        }
    }
}
