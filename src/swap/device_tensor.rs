//! Device tensors: bytes in GPU memory with a dtype and a shape, swapped by a store whose
//! backend stages in device memory (`bounce`, `gds`) with device-to-device copies, so the
//! bytes never pass through host memory on their way to or from the staging buffer.
//!
//! The memory is one plain `cuMemAlloc` allocation, shared (reference-counted) with the
//! swaps in flight on it, so it stays allocated until they end even if the tensor is dropped
//! first.
//!
//! A swap-out returns once the I/O thread has copied the tensor into the store's device
//! staging (its job may be queued behind others: `swap_out` waits for that copy), so the
//! version stored is the tensor as it was when `swap_out` returned, and the tensor may be
//! changed right after. A swap-in writes the tensor on the I/O thread before its ticket
//! completes: do not use the tensor until then (a forgotten ticket leaves that write
//! unordered with later use; the memory stays valid, as it is shared).
//!
//! Typed access goes through the host: [`DeviceTensor::to_host`] and
//! [`DeviceTensor::from_host`] copy through a small pinned staging buffer. Creating, copying
//! and dropping a device tensor make its GPU's primary context current on the calling
//! thread (as CUDA's runtime does), without restoring an earlier one.

use std::sync::Arc;

use crate::backend::MemoryKind;
use crate::cuda::device::Device;
use crate::cuda::device_buffer::ContextBuffer;
use crate::cuda::pinned::PinnedBuffer;
use crate::cuda::stream::Stream;
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
        let memory = Arc::new(ContextBuffer::new(len, Device::open(gpu)?)?);
        let stream = Stream::new()?;
        memory.buffer().zero(0, len, &stream)?;
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

    /// Copies `src` (exactly the tensor's byte length) into the tensor.
    pub fn upload(&mut self, src: &[u8]) -> Result<()> {
        self.check_host_len(src.len())?;
        self.memory.device().make_current()?;
        let stream = Stream::new()?;
        let mut pinned = PinnedBuffer::new(COPY_CHUNK.min(self.len.max(1)), HugePages::Off)?;
        for (i, piece) in src.chunks(COPY_CHUNK).enumerate() {
            pinned.range_mut(0, piece.len())?.copy_from_slice(piece);
            self.memory
                .buffer()
                .upload(i * COPY_CHUNK, &pinned, 0, piece.len(), &stream)?;
        }
        Ok(())
    }

    /// Copies the tensor's bytes into `dst` (exactly its byte length).
    pub fn download(&self, dst: &mut [u8]) -> Result<()> {
        self.check_host_len(dst.len())?;
        self.memory.device().make_current()?;
        let stream = Stream::new()?;
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
        Err(Error::Resources(format!(
            "a copy of {n} bytes to or from a device tensor of {} bytes",
            self.len
        )))
    }

    /// Byte length.
    pub fn len(&self) -> usize {
        self.len
    }

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
