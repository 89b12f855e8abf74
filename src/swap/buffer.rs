//! Host tensors: bytes with a dtype and a shape, viewable as typed slices through `bytemuck`.
//!
//! The bytes live in a `Vec<u64>`, so every view up to 8-byte elements (f64) is aligned
//! without `unsafe`; the byte length is kept apart and may be anything (1 byte, 4097 bytes).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Element type of a tensor. f16 and bf16 are viewed as `u16` (their bit patterns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    U8,
    F16,
    BF16,
    F32,
    F64,
    I32,
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
        write!(
            f,
            "HostTensor({} {:?}, {} bytes)",
            self.dtype.name(),
            self.shape,
            self.len
        )
    }
}

fn byte_len(dtype: DType, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Resources(format!("tensor shape {shape:?} overflows a byte count")))
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

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Byte length.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut bytemuck::cast_slice_mut(&mut self.words)[..len]
    }

    fn check_view<T>(&self) -> Result<()> {
        let size = std::mem::size_of::<T>();
        if size != self.dtype.size() || self.len % size != 0 {
            return Err(Error::Resources(format!(
                "a {} tensor of {} bytes cannot be viewed as {} ({} bytes each)",
                self.dtype.name(),
                self.len,
                std::any::type_name::<T>(),
                size
            )));
        }
        Ok(())
    }

    /// The elements as `T` (f32 for F32, u16 for F16 and BF16, ...): `T`'s size must be the
    /// dtype's.
    pub fn as_slice<T: bytemuck::Pod>(&self) -> Result<&[T]> {
        self.check_view::<T>()?;
        bytemuck::try_cast_slice(self.as_bytes())
            .map_err(|e| Error::Resources(format!("typed view of a tensor: {e}")))
    }

    pub fn as_mut_slice<T: bytemuck::Pod>(&mut self) -> Result<&mut [T]> {
        self.check_view::<T>()?;
        bytemuck::try_cast_slice_mut(self.as_bytes_mut())
            .map_err(|e| Error::Resources(format!("typed view of a tensor: {e}")))
    }

    /// Takes the dtype and shape a swap-in read from the manifest (same byte length).
    pub(crate) fn set_layout(&mut self, dtype: DType, shape: &[usize]) {
        debug_assert_eq!(byte_len(dtype, shape).ok(), Some(self.len));
        self.dtype = dtype;
        self.shape = shape.to_vec();
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
