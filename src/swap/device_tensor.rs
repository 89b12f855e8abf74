//! Device tensors: bytes in GPU memory with a dtype and a shape, swapped by a store whose
//! backend stages in device memory (`bounce`, `gds`) with device-to-device copies, so the
//! bytes never pass through host memory on their way to or from the staging buffer.
//!
//! The memory is one plain `cuMemAlloc` allocation, shared (reference-counted) with the
//! swaps in flight on it, so it stays allocated until they end even if the tensor is dropped
//! first.
//!
//! Ordering with the caller's GPU work: a swap of a device tensor does not touch it before
//! the GPU work the call names has completed ([`GpuWork`], given to
//! [`SwapStore::swap_out_after`](super::SwapStore::swap_out_after) and
//! [`SwapStore::swap_in_after`](super::SwapStore::swap_in_after)). By default
//! ([`GpuWork::LegacyStream`], what `swap_out` and `swap_in` use) that is all the work queued
//! before the call on the legacy default stream of the tensor's context, which includes all
//! work queued before on every *blocking* stream of that context (the runtime's NULL stream,
//! per-thread default streams, streams created without the non-blocking flag): an event is
//! recorded there at the call, and the store's copy waits for it on the GPU. Work on a
//! non-blocking stream (PyTorch's and CuPy's side streams, for instance) is not covered:
//! pass that stream ([`GpuWork::Stream`]), or synchronise it before the call and pass
//! [`GpuWork::Nothing`].
//!
//! A swap-out returns once the I/O thread has copied the tensor into the store's device
//! staging (after that GPU work; its job may also be queued behind others: `swap_out` waits
//! for that copy), so the version stored is the tensor as it was at that point, and the
//! tensor may be changed right after. A swap-in writes the tensor on the I/O thread before
//! its ticket completes (after that GPU work, which may still be reading the tensor's old
//! bytes): do not use the tensor until then (a forgotten ticket leaves that write unordered
//! with later use; the memory stays valid, as it is shared). Once the ticket has completed,
//! the bytes are in place for work on any stream.
//!
//! Typed access goes through the host: [`DeviceTensor::to_host`] and
//! [`DeviceTensor::from_host`] copy through a small pinned staging buffer, ordered after the
//! legacy default stream as swaps are by default, and complete when they return. Creating,
//! copying and dropping a device tensor enter its GPU's primary context on the calling thread
//! for the call only (pushed, then popped): the caller's current context, or none, is current
//! again afterwards, and a tensor dropped while its thread unwinds from a panic is freed in
//! its own context all the same.

use std::sync::Arc;

use crate::backend::MemoryKind;
use crate::cuda::device::Device;
use crate::cuda::device_buffer::ContextBuffer;
use crate::cuda::pinned::PinnedBuffer;
use crate::cuda::stream::{Event, ForeignStream, Stream};
use crate::error::{Error, Result};
use crate::io::buffer::HugePages;

use super::buffer::{byte_len, DType, DeviceSpan, HostTensor, Tensor};

/// Bytes of pinned memory `to_host` / `from_host` copy through at a time.
const COPY_CHUNK: usize = 4 << 20;

/// A tensor in GPU memory (a plain `cuMemAlloc` allocation in the device's primary context).
pub struct DeviceTensor {
    dtype: DType,
    shape: Vec<usize>,
    len: usize,
    memory: Arc<ContextBuffer>,
}

impl DeviceTensor {
    /// A zero-filled tensor of `dtype` and `shape` on GPU `gpu` (its primary context is made
    /// current on this thread).
    pub fn zeros(dtype: DType, shape: &[usize], gpu: usize) -> Result<DeviceTensor> {
        let len = byte_len(dtype, shape)?;
        let memory = Arc::new(ContextBuffer::new(len, Device::retain(gpu)?)?);
        {
            let _entered = memory.device().enter()?;
            let stream = Stream::new()?;
            memory.buffer().zero(0, len, &stream)?;
        }
        Ok(DeviceTensor {
            dtype,
            shape: shape.to_vec(),
            len,
            memory,
        })
    }

    /// A copy of host tensor `src` on GPU `gpu`.
    pub fn from_host(src: &HostTensor, gpu: usize) -> Result<DeviceTensor> {
        let mut t = DeviceTensor::zeros(src.dtype(), src.shape(), gpu)?;
        t.upload(src.as_bytes())?;
        Ok(t)
    }

    /// A copy of the tensor in host memory (same dtype and shape).
    pub fn to_host(&self) -> Result<HostTensor> {
        let mut h = HostTensor::zeros(self.dtype, &self.shape)?;
        self.download(h.as_bytes_mut())?;
        Ok(h)
    }

    /// Copies `src` (exactly the tensor's byte length) into the tensor, after the work queued
    /// so far on the legacy default stream (see the module's documentation).
    pub fn upload(&mut self, src: &[u8]) -> Result<()> {
        self.check_host_len(src.len())?;
        let _entered = self.memory.device().enter()?;
        let stream = ordered_stream()?;
        let mut pinned = PinnedBuffer::new(COPY_CHUNK.min(self.len.max(1)), HugePages::Off)?;
        for (i, piece) in src.chunks(COPY_CHUNK).enumerate() {
            pinned.range_mut(0, piece.len())?.copy_from_slice(piece);
            self.memory
                .buffer()
                .upload(i * COPY_CHUNK, &pinned, 0, piece.len(), &stream)?;
        }
        Ok(())
    }

    /// Copies the tensor's bytes into `dst` (exactly its byte length), after the work queued
    /// so far on the legacy default stream (see the module's documentation).
    pub fn download(&self, dst: &mut [u8]) -> Result<()> {
        self.check_host_len(dst.len())?;
        let _entered = self.memory.device().enter()?;
        let stream = ordered_stream()?;
        let mut pinned = PinnedBuffer::new(COPY_CHUNK.min(self.len.max(1)), HugePages::Off)?;
        for (i, piece) in dst.chunks_mut(COPY_CHUNK).enumerate() {
            let n = piece.len();
            self.memory
                .buffer()
                .download(i * COPY_CHUNK, &mut pinned, 0, n, &stream)?;
            piece.copy_from_slice(pinned.range(0, n)?);
        }
        Ok(())
    }

    fn check_host_len(&self, n: usize) -> Result<()> {
        if n == self.len {
            return Ok(());
        }
        Err(Error::Tensor(format!(
            "a copy of {n} bytes to or from a device tensor of {} bytes",
            self.len
        )))
    }

    /// Byte length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The GPU the tensor is on.
    pub fn gpu(&self) -> usize {
        self.memory.device().ordinal()
    }

    /// The device address of its first byte (`CUdeviceptr`), for kernels of your own. The
    /// allocation lives as long as the tensor (and any swap in flight on it).
    pub fn device_ptr(&self) -> u64 {
        self.memory.buffer().device_ptr()
    }
}

/// A stream of the current context whose work waits for the work queued so far on its
/// legacy default stream.
fn ordered_stream() -> Result<Stream> {
    let stream = Stream::new()?;
    let after = Event::new(false)?;
    after.record_foreign(ForeignStream::LEGACY, "after the legacy default stream")?;
    stream.wait(&after)?;
    Ok(stream)
}

impl Tensor for DeviceTensor {
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
        None
    }
    fn host_bytes_mut(&mut self) -> Option<&mut [u8]> {
        None
    }
    fn device_memory(&self) -> Option<DeviceSpan> {
        Some(DeviceSpan {
            memory: Arc::clone(&self.memory),
            len: self.len,
        })
    }
    fn memory(&self) -> MemoryKind {
        MemoryKind::Device
    }
    fn set_layout(&mut self, dtype: DType, shape: &[usize]) {
        debug_assert_eq!(byte_len(dtype, shape).ok(), Some(self.len));
        self.dtype = dtype;
        self.shape = shape.to_vec();
    }
}

impl std::fmt::Debug for DeviceTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::buffer::debug_tensor(f, "DeviceTensor", self, &format!(" on GPU {}", self.gpu()))
    }
}

/// The GPU work a swap of a device tensor waits for before it touches the tensor (see the
/// module's documentation). Host tensors are read or written by the CPU at the call and in
/// the job: order their GPU producers and consumers yourself; only the default is accepted
/// for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuWork {
    /// Everything queued before the call on the legacy default stream of the tensor's
    /// context, and so on every blocking stream of it (not on non-blocking streams).
    #[default]
    LegacyStream,
    /// Everything queued before the call on this stream of the tensor's context (the primary
    /// context of its GPU).
    Stream(ForeignStream),
    /// Nothing: the caller has already synchronised the work that writes or reads the tensor.
    Nothing,
}

/// The point in the caller's GPU work a swap waits for: an event recorded at the call, in
/// the tensor's context, and destroyed there (entered) by whichever thread drops it.
pub(crate) struct Fence {
    event: Option<Event>,
    memory: Arc<ContextBuffer>,
}

impl Fence {
    /// Records the fence for `after` on the calling thread (the tensor's context entered for
    /// the call); `None` for [`GpuWork::Nothing`].
    pub(crate) fn capture(span: &DeviceSpan, after: GpuWork) -> Result<Option<Fence>> {
        let stream = match after {
            GpuWork::Nothing => return Ok(None),
            GpuWork::LegacyStream => ForeignStream::LEGACY,
            GpuWork::Stream(s) => s,
        };
        let memory = Arc::clone(&span.memory);
        let event = {
            let _entered = memory.device().enter()?;
            let event = Event::new(false)?;
            event.record_foreign(stream, "the caller's GPU work before a swap")?;
            event
        };
        Ok(Some(Fence {
            event: Some(event),
            memory,
        }))
    }

    pub(crate) fn event(&self) -> &Event {
        self.event
            .as_ref()
            .expect("a fence holds its event until dropped")
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        // cuEventDestroy needs the event's context current: entered for it, popped after.
        let entered = self.memory.device().enter();
        self.event.take();
        drop(entered);
    }
}
