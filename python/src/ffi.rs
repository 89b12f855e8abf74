//! The unsafe code of the Python package, all of it: memory addresses that come from Python
//! (a numpy array's or a torch tensor's data pointer, checked by the Python layer in
//! `gdswap/_arrays.py`: CPU, contiguous, `nbytes` long, and kept alive by the caller) turned
//! into tensors the swap store can read and write; and page-locked buffers for
//! `aio_handle.new_cpu_locked_tensor`. (`aio.rs` lends such memory to io_uring engines as the
//! library's `gdswap::io::lent::LentMemory`, whose contract is its own.)
//!
//! The contract of every constructor here is the same: the `len` bytes at `ptr` stay
//! allocated, and are not resized, for as long as the value (and, for reads, the ticket that
//! writes into it) lives. The private functions of `gdswap._gdswap` that take addresses are
//! called only by the Python layer, which holds a reference to the array or tensor for that
//! long.

use gdswap::cuda::device_buffer::ContextBuffer;
use gdswap::cuda::stream::ForeignStream;
use gdswap::io::buffer::{HostBuffer, HugePages};
use gdswap::swap::{DType, ForeignDeviceTensor, GpuWork, SwapStore, Tensor, Ticket};

/// Host memory owned by a Python object, seen as a swap-store tensor.
pub struct RawHost {
    ptr: *mut u8,
    len: usize,
    dtype: DType,
    shape: Vec<usize>,
}

// SAFETY: the memory is plain host memory (a numpy or torch CPU buffer); which thread touches
// it does not matter, and the Python layer keeps it alive while the value exists (module doc).
unsafe impl Send for RawHost {}

impl RawHost {
    /// # Safety
    /// The `len` bytes at `ptr` must stay allocated and unresized while the value lives, and
    /// nothing else may write them while the store reads or writes them.
    pub unsafe fn new(ptr: usize, len: usize, dtype: DType, shape: Vec<usize>) -> RawHost {
        RawHost {
            ptr: ptr as *mut u8,
            len,
            dtype,
            shape,
        }
    }
}

impl Tensor for RawHost {
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn byte_len(&self) -> usize {
        self.len
    }
    fn host_bytes(&self) -> Option<&[u8]> {
        if self.len == 0 {
            return Some(&[]);
        }
        // SAFETY: `new`'s contract: `len` bytes at `ptr`, allocated while `self` lives.
        Some(unsafe { std::slice::from_raw_parts(self.ptr, self.len) })
    }
    fn host_bytes_mut(&mut self) -> Option<&mut [u8]> {
        if self.len == 0 {
            return Some(&mut []);
        }
        // SAFETY: as in `host_bytes`; `&mut self` makes this the only view handed out.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) })
    }
    fn memory(&self) -> gdswap::backend::MemoryKind {
        gdswap::backend::MemoryKind::Host
    }
    fn set_layout(&mut self, dtype: DType, shape: &[usize]) {
        self.dtype = dtype;
        self.shape = shape.to_vec();
    }
}

/// Device memory of a CUDA tensor from Python (`__cuda_array_interface__` or a torch CUDA
/// tensor's `data_ptr()`), checked by the driver (see `ContextBuffer::foreign`): device
/// memory of GPU `gpu`, the whole range inside one allocation.
///
/// # Safety
/// The `len` bytes at `ptr` stay allocated until the tensor and every swap given it have
/// ended: the Python layer holds the CUDA tensor for the call (swap-out) or in the ticket
/// until the read has ended (swap-in).
pub unsafe fn foreign_device(
    ptr: usize,
    len: usize,
    dtype: DType,
    shape: Vec<usize>,
    gpu: usize,
) -> gdswap::Result<ForeignDeviceTensor> {
    // SAFETY: this function's contract.
    let memory = unsafe { ContextBuffer::foreign(ptr as u64, len, gpu)? };
    ForeignDeviceTensor::new(memory, dtype, &shape)
}

/// The GPU work a swap of a CUDA tensor from Python waits for, from the `stream` of its
/// `__cuda_array_interface__` (version 3): `None` (the key's value) needs no ordering; 1 is
/// the legacy default stream, 2 the per-thread default stream, any other value a `CUstream`
/// of the tensor's context; an interface without the key (versions 0 to 2) gets the legacy
/// default stream. 0 is not allowed by the protocol and is refused by the Python layer.
///
/// # Safety
/// A stream handle other than 1 and 2 must be a live `CUstream` of the tensor's GPU's primary
/// context until the swap call returns (the producer of the interface promises that).
pub unsafe fn gpu_work(stream: Option<Option<usize>>) -> GpuWork {
    match stream {
        None => GpuWork::LegacyStream,
        Some(None) => GpuWork::Nothing,
        Some(Some(1)) => GpuWork::LegacyStream,
        // SAFETY: this function's contract.
        Some(Some(s)) => GpuWork::Stream(unsafe { ForeignStream::from_raw(s) }),
    }
}

/// A swap-in in flight into a tensor whose memory Python owns ([`RawHost`] or a
/// [`ForeignDeviceTensor`]): the store's ticket borrows the destination for as long as the
/// read runs, so the destination is boxed here and freed only after the ticket (which,
/// dropped unfinished, waits for the read and copies into it).
pub struct PendingRead {
    ticket: Option<Ticket<'static>>,
    dest: *mut (dyn Tensor + Send),
}

// SAFETY: the ticket is not Send only because it holds `&mut dyn Tensor`; the tensor behind it
// is the one boxed here, which is Send. Receivers and the rest of the ticket are Send.
unsafe impl Send for PendingRead {}

impl PendingRead {
    /// # Safety
    /// As for [`RawHost::new`] and [`foreign_device`]: `dest`'s memory stays alive until the
    /// value is dropped.
    pub unsafe fn start(
        store: &SwapStore,
        name: &str,
        dest: Box<dyn Tensor + Send>,
        after: GpuWork,
    ) -> gdswap::Result<PendingRead> {
        let raw = Box::into_raw(dest);
        // SAFETY: `raw` is a live box, freed only in `Drop` after the ticket is gone (or below,
        // when no ticket was made), so the `'static` borrow never outlives it.
        let borrowed: &'static mut (dyn Tensor + Send) = unsafe { &mut *raw };
        match store.swap_in_after(name, borrowed, after) {
            Ok(ticket) => Ok(PendingRead {
                ticket: Some(ticket),
                dest: raw,
            }),
            Err(e) => {
                // SAFETY: no ticket holds the borrow: the box is ours again, freed once.
                drop(unsafe { Box::from_raw(raw) });
                Err(e)
            }
        }
    }

    /// True once the read has ended (its bytes are then in the destination).
    pub fn poll(&mut self) -> bool {
        self.ticket.as_mut().is_none_or(|t| t.poll())
    }

    /// Waits for the read; its outcome (the bytes are in the destination on `Ok`).
    pub fn wait(&mut self) -> gdswap::Result<()> {
        match self.ticket.take() {
            Some(t) => t.wait(),
            None => Ok(()),
        }
    }
}

impl Drop for PendingRead {
    fn drop(&mut self) {
        // The ticket first: dropped unfinished, it waits for the read and writes `dest`.
        self.ticket.take();
        // SAFETY: made by `Box::into_raw` in `start`, and the only borrow of it (the ticket)
        // is gone.
        drop(unsafe { Box::from_raw(self.dest) });
    }
}

/// Page-aligned host memory (huge pages where the kernel gives them), locked with `mlock`
/// while it lives, for `aio_handle.new_cpu_locked_tensor`.
pub struct LockedMemory {
    buf: HostBuffer,
    len: usize,
}

impl LockedMemory {
    pub fn new(len: usize) -> Result<LockedMemory, String> {
        let mut buf = HostBuffer::new(len.max(1), HugePages::Auto).map_err(|e| e.to_string())?;
        let ptr = buf.as_mut_ptr();
        let cap = buf.capacity();
        // SAFETY: mlock only changes how the kernel keeps the pages of this mapping, which
        // `buf` owns for `cap` bytes; it does not touch the bytes.
        let rc = unsafe { libc::mlock(ptr as *const libc::c_void, cap) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!(
                "new_cpu_locked_tensor: mlock of {cap} bytes failed: {e} (RLIMIT_MEMLOCK is {} bytes; raise it with ulimit -l, or use ordinary tensors, which gdswap reads and writes as well)",
                gdswap::io::sys::memlock_limit()
            ));
        }
        Ok(LockedMemory { buf, len })
    }

    pub fn address(&self) -> usize {
        self.buf.as_ptr() as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn backing(&self) -> String {
        self.buf.backing().to_string()
    }
}

impl Drop for LockedMemory {
    fn drop(&mut self) {
        // SAFETY: the range locked in `new`, still mapped (the buffer is unmapped after this).
        unsafe {
            libc::munlock(
                self.buf.as_ptr() as *const libc::c_void,
                self.buf.capacity(),
            );
        }
    }
}

/// A swap-out's ticket, movable to the thread that waits on it without the GIL.
pub struct WriteTicket(Ticket<'static>);

// SAFETY: `Ticket` is not Send only because a swap-in's ticket holds `&mut dyn Tensor`. A
// swap-out's ticket borrows nothing (its lifetime is 'static while the tensor it was made
// from is a local of the caller, and `SwapStore::swap_out` documents that the tensor is not
// borrowed past the call): it holds a channel receiver and the tensor's name, both Send.
unsafe impl Send for WriteTicket {}

impl From<Ticket<'static>> for WriteTicket {
    fn from(t: Ticket<'static>) -> WriteTicket {
        WriteTicket(t)
    }
}

impl WriteTicket {
    /// Starts a swap-out of `tensor` as `name`.
    pub fn start(
        store: &SwapStore,
        name: &str,
        tensor: &dyn Tensor,
    ) -> gdswap::Result<WriteTicket> {
        store.swap_out(name, tensor).map(WriteTicket)
    }

    pub fn poll(&mut self) -> bool {
        self.0.poll()
    }

    pub fn wait(self) -> gdswap::Result<()> {
        self.0.wait()
    }
}
