//! Host tensors: bytes with a dtype and a shape, viewable as typed slices through `bytemuck`.
//!
//! The bytes live in a `Vec<u64>`, so every view up to 8-byte elements (f64) is aligned
//! without `unsafe`; the byte length is kept apart and may be anything (1 byte, 4097 bytes).

use serde::{Deserialize, Serialize};

use crate::backend::MemoryKind;
use crate::cuda::device::Device;
use crate::cuda::pinned::PinnedBuffer;
use crate::error::{Error, Result};
use crate::io::buffer::HugePages;
use crate::io::uring::IoBuffer;

/// Element type of a tensor. f16 and bf16 are viewed as `u16` (their bit patterns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// Unsigned bytes.
    U8,
    /// IEEE 754 half precision, viewed as `u16`.
    F16,
    /// bfloat16, viewed as `u16`.
    BF16,
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 double precision.
    F64,
    /// Signed 32-bit integers.
    I32,
    /// Signed 64-bit integers.
    I64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// The name the manifest and messages use (`f32`, `bf16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "u8",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::I64 => "i64",
        }
    }
}

/// Memory the store swaps: its dtype, shape and bytes, wherever they live. Implemented by
/// [`HostTensor`] (ordinary memory), [`PinnedTensor`] (page-locked, registered with CUDA) and
/// [`DeviceTensor`](super::DeviceTensor) (GPU memory).
pub trait Tensor {
    /// Element type.
    fn dtype(&self) -> DType;
    /// Dimensions, outermost first; their product times the dtype's size is the byte length.
    fn shape(&self) -> &[usize];
    /// Byte length.
    fn byte_len(&self) -> usize;
    /// The bytes, where the CPU can reach them; `None` for device tensors.
    fn host_bytes(&self) -> Option<&[u8]>;
    /// The bytes, writable, where the CPU can reach them; `None` for device tensors.
    fn host_bytes_mut(&mut self) -> Option<&mut [u8]>;
    /// Device tensors: their GPU memory, for the store's device-to-device copies.
    #[doc(hidden)]
    fn device_memory(&self) -> Option<DeviceSpan> {
        None
    }
    /// Where the memory lives.
    fn memory(&self) -> MemoryKind;
    /// Takes the dtype and shape a swap-in read from the manifest (same byte length).
    #[doc(hidden)]
    fn set_layout(&mut self, dtype: DType, shape: &[usize]);

    /// The elements as `T` (f32 for F32, u16 for F16 and BF16, ...); an error for a device
    /// tensor (copy it to the host first: [`DeviceTensor::to_host`](super::DeviceTensor::to_host)).
    fn view<T: bytemuck::Pod>(&self) -> Result<&[T]>
    where
        Self: Sized,
    {
        check_view::<T>(self.dtype(), self.byte_len())?;
        let bytes = self.host_bytes().ok_or_else(not_host)?;
        bytemuck::try_cast_slice(bytes)
            .map_err(|e| Error::Tensor(format!("typed view of a tensor: {e}")))
    }

    /// The elements as `T`, writable; the same rules as [`Tensor::view`].
    fn view_mut<T: bytemuck::Pod>(&mut self) -> Result<&mut [T]>
    where
        Self: Sized,
    {
        check_view::<T>(self.dtype(), self.byte_len())?;
        let bytes = self.host_bytes_mut().ok_or_else(not_host)?;
        bytemuck::try_cast_slice_mut(bytes)
            .map_err(|e| Error::Tensor(format!("typed view of a tensor: {e}")))
    }
}

fn not_host() -> Error {
    Error::Tensor(
        "a device tensor has no host view: copy it with DeviceTensor::to_host first".into(),
    )
}

/// A device tensor's GPU memory as the store sees it: its address, length and device, and a
/// share of the allocation, so memory a swap is copying to or from stays allocated until the
/// copy ends even if the tensor is dropped meanwhile. Only [`DeviceTensor`](super::DeviceTensor)
/// makes one.
#[derive(Clone)]
pub struct DeviceSpan {
    pub(crate) memory: std::sync::Arc<crate::cuda::device_buffer::ContextBuffer>,
    pub(crate) len: usize,
}

impl DeviceSpan {
    /// The GPU the memory is on.
    pub(crate) fn gpu(&self) -> usize {
        self.memory.device().ordinal()
    }
}

fn check_view<T>(dtype: DType, len: usize) -> Result<()> {
    let size = std::mem::size_of::<T>();
    if size != dtype.size() || len % size != 0 {
        return Err(Error::Tensor(format!(
            "a {} tensor of {} bytes cannot be viewed as {} ({} bytes each)",
            dtype.name(),
            len,
            std::any::type_name::<T>(),
            size
        )));
    }
    Ok(())
}

/// A tensor in page-locked host memory registered with CUDA (`cuMemHostRegister`), which a
/// GPU can copy from and to directly. Needs a CUDA driver; freed in its device's context.
pub struct PinnedTensor {
    dtype: DType,
    shape: Vec<usize>,
    len: usize,
    buf: Option<PinnedBuffer>,
    device: Device,
}

impl PinnedTensor {
    /// A zero-filled pinned tensor, registered in the primary context of GPU `gpu` (entered
    /// for the call: the thread's current context is left as it was).
    pub fn zeros(dtype: DType, shape: &[usize], gpu: usize) -> Result<PinnedTensor> {
        let len = byte_len(dtype, shape)?;
        let device = Device::retain(gpu)?;
        let buf = {
            let _entered = device.enter()?;
            PinnedBuffer::new(len.max(1), HugePages::Off)?
        };
        Ok(PinnedTensor {
            dtype,
            shape: shape.to_vec(),
            len,
            buf: Some(buf),
            device,
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
}

impl PinnedTensor {
    /// The tensor's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf.as_ref().expect("held until drop").as_slice()[..self.len]
    }

    /// The tensor's bytes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.buf.as_mut().expect("held until drop").as_mut_slice()[..len]
    }
}

impl Tensor for PinnedTensor {
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
        Some(self.as_bytes())
    }
    fn host_bytes_mut(&mut self) -> Option<&mut [u8]> {
        Some(self.as_bytes_mut())
    }
    fn memory(&self) -> MemoryKind {
        MemoryKind::PinnedHost
    }
    fn set_layout(&mut self, dtype: DType, shape: &[usize]) {
        self.dtype = dtype;
        self.shape = shape.to_vec();
    }
}

impl Drop for PinnedTensor {
    fn drop(&mut self) {
        // cuMemHostUnregister needs a current context: the registration's, entered for it (on
        // any thread, unwinding from a panic or not) and popped after.
        let entered = self.device.enter();
        self.buf.take();
        drop(entered);
    }
}

impl std::fmt::Debug for PinnedTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_tensor(f, "PinnedTensor", self, "")
    }
}

impl Tensor for HostTensor {
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
        Some(HostTensor::as_bytes(self))
    }
    fn host_bytes_mut(&mut self) -> Option<&mut [u8]> {
        Some(HostTensor::as_bytes_mut(self))
    }
    fn memory(&self) -> MemoryKind {
        MemoryKind::Host
    }
    fn set_layout(&mut self, dtype: DType, shape: &[usize]) {
        debug_assert_eq!(byte_len(dtype, shape).ok(), Some(self.len));
        self.dtype = dtype;
        self.shape = shape.to_vec();
    }
}

/// A tensor in ordinary host memory.
#[derive(Clone, PartialEq)]
pub struct HostTensor {
    dtype: DType,
    shape: Vec<usize>,
    len: usize,
    words: Vec<u64>,
}

impl std::fmt::Debug for HostTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_tensor(f, "HostTensor", self, "")
    }
}

/// How every tensor type prints itself: `HostTensor(f32 [2, 3], 24 bytes)`, with `place`
/// (where the memory is) after the length.
pub(crate) fn debug_tensor(
    f: &mut std::fmt::Formatter<'_>,
    kind: &str,
    t: &dyn Tensor,
    place: &str,
) -> std::fmt::Result {
    write!(
        f,
        "{kind}({} {:?}, {} bytes{place})",
        t.dtype().name(),
        t.shape(),
        t.byte_len()
    )
}

pub(crate) fn byte_len(dtype: DType, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Tensor(format!("tensor shape {shape:?} overflows a byte count")))
}

impl HostTensor {
    /// A zero-filled tensor of `dtype` and `shape`.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<HostTensor> {
        let len = byte_len(dtype, shape)?;
        Ok(HostTensor {
            dtype,
            shape: shape.to_vec(),
            len,
            words: vec![0; len.div_ceil(8)],
        })
    }

    /// A `u8` tensor of exactly `len` zero bytes (any length).
    pub fn bytes(len: usize) -> HostTensor {
        HostTensor {
            dtype: DType::U8,
            shape: vec![len],
            len,
            words: vec![0; len.div_ceil(8)],
        }
    }

    /// A tensor holding a copy of `values`, with shape `[values.len()]`.
    pub fn from_slice<T: bytemuck::Pod>(dtype: DType, values: &[T]) -> Result<HostTensor> {
        let mut t = HostTensor::zeros(dtype, &[values.len()])?;
        t.as_mut_slice::<T>()?.copy_from_slice(values);
        Ok(t)
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Byte length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tensor's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    /// The tensor's bytes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut bytemuck::cast_slice_mut(&mut self.words)[..len]
    }

    /// The elements as `T` (f32 for F32, u16 for F16 and BF16, ...): `T`'s size must be the
    /// dtype's.
    pub fn as_slice<T: bytemuck::Pod>(&self) -> Result<&[T]> {
        self.view()
    }

    /// The elements as `T`, writable (the same rules as `as_slice`).
    pub fn as_mut_slice<T: bytemuck::Pod>(&mut self) -> Result<&mut [T]> {
        self.view_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_views_and_odd_lengths() {
        let mut t = HostTensor::zeros(DType::F32, &[2, 3]).unwrap();
        assert_eq!(t.len(), 24);
        t.as_mut_slice::<f32>().unwrap()[5] = 1.5;
        assert_eq!(t.as_slice::<f32>().unwrap()[5], 1.5);
        assert!(t.as_slice::<u16>().is_err());
        let h = HostTensor::zeros(DType::BF16, &[3]).unwrap();
        assert_eq!(h.as_slice::<u16>().unwrap().len(), 3);
        let b = HostTensor::bytes(4097);
        assert_eq!(b.as_bytes().len(), 4097);
        assert!(HostTensor::zeros(DType::F64, &[usize::MAX, 2]).is_err());
    }
}
