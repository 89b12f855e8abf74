//! Foreign device tensors: GPU memory gdswap does not own (a PyTorch, CuPy or Numba CUDA
//! tensor's, any `CUdeviceptr` of the caller's), swapped by a `bounce` or `gds` store exactly
//! as a [`DeviceTensor`](super::DeviceTensor) is (device-to-device copies into and out of its
//! staging, ordered after the caller's GPU work as [`GpuWork`](super::GpuWork) says), without
//! gdswap allocating or freeing it.
//!
//! The memory comes from [`ContextBuffer::foreign`] (an `unsafe` call: the caller promises
//! the memory stays allocated while gdswap may use it: a swap-out copies the tensor before it
//! returns; a swap-in writes it until its ticket has completed, and dropping the ticket waits
//! for that), which checks the pointer with the driver (`cuPointerGetAttribute`): plain
//! device memory (not host, not managed memory), on the GPU named, and the whole byte range
//! inside one allocation (a tensor of a caching allocator lies inside a larger allocation;
//! that is fine).
//!
//! ```no_run
//! use gdswap::cuda::device_buffer::ContextBuffer;
//! use gdswap::backend::BackendId;
//! use gdswap::swap::{DType, ForeignDeviceTensor, SwapOptions, SwapStore};
//! # fn f(ptr: u64) -> gdswap::Result<()> {
//! let store = SwapStore::open("/tmp/swap", SwapOptions {
//!     backend: BackendId::Bounce,
//!     ..SwapOptions::default()
//! })?;
//! // SAFETY: `ptr` holds 4096 f32 on GPU 0, allocated until the swaps below have ended.
//! let memory = unsafe { ContextBuffer::foreign(ptr, 4096 * 4, 0)? };
//! let t = ForeignDeviceTensor::new(memory, DType::F32, &[4096])?;
//! store.swap_out("w", &t)?.wait()?;
//! let mut back = t; // any foreign tensor of the same dtype and shape
//! store.swap_in("w", &mut back)?.wait()?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use crate::backend::MemoryKind;
use crate::cuda::device_buffer::ContextBuffer;
use crate::error::{Error, Result};

use super::buffer::{byte_len, DType, DeviceSpan, Tensor};

/// A tensor in device memory the caller owns (see the module documentation).
pub struct ForeignDeviceTensor {
    dtype: DType,
    shape: Vec<usize>,
    len: usize,
    memory: Arc<ContextBuffer>,
}

impl ForeignDeviceTensor {
    /// A `dtype` tensor of `shape` (contiguous) in `memory`, the caller's device memory as
    /// [`ContextBuffer::foreign`] checked it (which is where the `unsafe` promise is made:
    /// the memory stays allocated while gdswap may use it); `memory` must hold exactly the
    /// tensor's bytes.
    pub fn new(
        memory: ContextBuffer,
        dtype: DType,
        shape: &[usize],
    ) -> Result<ForeignDeviceTensor> {
        let len = byte_len(dtype, shape)?;
        let have = memory.buffer().len();
        if have != len {
            return Err(Error::Tensor(format!(
                "a {} tensor of shape {shape:?} holds {len} bytes; the device memory given holds {have}",
                dtype.name()
            )));
        }
        Ok(ForeignDeviceTensor {
            dtype,
            shape: shape.to_vec(),
            len,
            memory: Arc::new(memory),
        })
    }

    /// Byte length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The GPU the memory is on.
    pub fn gpu(&self) -> usize {
        self.memory.device().ordinal()
    }

    /// The device address given to [`ForeignDeviceTensor::new`].
    pub fn device_ptr(&self) -> u64 {
        self.memory.buffer().device_ptr()
    }
}

impl Tensor for ForeignDeviceTensor {
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

impl std::fmt::Debug for ForeignDeviceTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::buffer::debug_tensor(
            f,
            "ForeignDeviceTensor",
            self,
            &format!(" at {:#x} on GPU {}", self.device_ptr(), self.gpu()),
        )
    }
}
