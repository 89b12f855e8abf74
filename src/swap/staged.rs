//! Staged tensors: a tensor that *is* one of the store's staging buffers, so swapping it
//! costs no copy at all.
//!
//! An ordinary swap copies: `swap_out` copies the caller's tensor into a staging buffer
//! (the memory O_DIRECT reads and writes, aligned and padded) and `swap_in` copies the
//! staging buffer into the caller's tensor, both on the caller's thread. ZeRO-Infinity avoids
//! that by computing in the swap buffers themselves; so does this: [`SwapStore::swap_in_staged`]
//! hands out the staging buffer the read landed in (a prefetched read included) as a
//! [`StagedTensor`], the caller updates it in place, and [`SwapStore::swap_out_staged`] takes
//! it back and writes it from there, the checksum computed on the I/O thread.
//!
//! ```
//! use gdswap::swap::{DType, SwapOptions, SwapStore};
//! # let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/doc-tmp");
//! # std::fs::create_dir_all(&base).unwrap();
//! # let tmp = tempfile::tempdir_in(base).unwrap();
//! let store = SwapStore::open(tmp.path(), SwapOptions::default())?;
//! let mut m = store.staged_zeros(DType::F32, &[1024])?;    // a staging buffer, zeroed
//! m.as_mut_slice::<f32>()?[0] = 0.5;
//! store.swap_out_staged("exp_avg", m)?.wait()?;            // written from that buffer
//!
//! store.prefetch("exp_avg")?;
//! let mut m = store.swap_in_staged("exp_avg")?.wait()?;    // the buffer the prefetch read into
//! for x in m.as_mut_slice::<f32>()? { *x *= 0.9; }         // update in place
//! store.swap_out_staged("exp_avg", m)?.wait()?;
//! # Ok::<(), gdswap::Error>(())
//! ```
//!
//! Staged tensors exist for host backends (`host`, `posix`), whose staging is host memory
//! (huge-page backed from 4 MiB). They count against the store's staging budget while held,
//! and dropping one returns its buffer to the store's pool.
//!
//! [`SwapStore::swap_in_staged`]: super::SwapStore::swap_in_staged
//! [`SwapStore::swap_out_staged`]: super::SwapStore::swap_out_staged

use std::sync::mpsc::{Receiver, TryRecvError};

use crate::backend::MemoryKind;
use crate::error::{Error, Result};

use super::buffer::{DType, Tensor};
use super::staging::Staging;
use super::ticket::{lost, ReadData, ReadOutcome};

/// A tensor held in one of the store's staging buffers (see the module docs).
pub struct StagedTensor {
    pub(crate) staging: Staging,
    dtype: DType,
    shape: Vec<usize>,
    len: usize,
}

impl StagedTensor {
    pub(crate) fn new(staging: Staging, dtype: DType, shape: Vec<usize>, len: usize) -> Self {
        debug_assert!(staging.len() >= len as u64);
        StagedTensor {
            staging,
            dtype,
            shape,
            len,
        }
    }

    /// Byte length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tensor's bytes (the staging buffer's, no copy).
    pub fn as_bytes(&self) -> &[u8] {
        &self.staging.host_bytes().expect("host staging")[..self.len]
    }

    /// The tensor's bytes, writable in place.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.staging.host_bytes_mut().expect("host staging")[..len]
    }

    /// The elements as `T` (f32 for F32, u16 for F16 and BF16, ...).
    pub fn as_slice<T: bytemuck::Pod>(&self) -> Result<&[T]> {
        self.view()
    }

    /// The elements as `T`, writable in place.
    pub fn as_mut_slice<T: bytemuck::Pod>(&mut self) -> Result<&mut [T]> {
        self.view_mut()
    }
}

impl Tensor for StagedTensor {
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
        MemoryKind::Host
    }
    fn set_layout(&mut self, dtype: DType, shape: &[usize]) {
        self.dtype = dtype;
        self.shape = shape.to_vec();
    }
}

impl std::fmt::Debug for StagedTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::buffer::debug_tensor(f, "StagedTensor", self, " in staging")
    }
}

/// Why [`SwapStore::swap_out_staged`](super::SwapStore::swap_out_staged) refused a staged
/// tensor, with the tensor handed back (its contents intact) when it still exists. `?`
/// converts it into the plain [`Error`].
pub struct Refused {
    /// Why the swap-out was refused.
    pub error: Error,
    /// The tensor, unless the store's I/O threads were gone and it went with the job.
    pub tensor: Option<Box<StagedTensor>>,
}

impl Refused {
    pub(crate) fn lost(error: Error) -> Refused {
        Refused {
            error,
            tensor: None,
        }
    }
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Error {
        r.error
    }
}

impl std::fmt::Debug for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Refused({:?}, tensor handed back: {})",
            self.error,
            self.tensor.is_some()
        )
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

/// A staged swap-in in flight: [`StagedTicket::wait`] gives the tensor.
#[must_use = "wait on the ticket for the tensor"]
pub struct StagedTicket {
    name: String,
    rx: Receiver<ReadOutcome>,
    dtype: DType,
    shape: Vec<usize>,
    len: usize,
    ready: Option<ReadOutcome>,
}

impl StagedTicket {
    pub(crate) fn new(
        name: &str,
        rx: Receiver<ReadOutcome>,
        dtype: DType,
        shape: Vec<usize>,
        len: usize,
    ) -> Self {
        StagedTicket {
            name: name.to_string(),
            rx,
            dtype,
            shape,
            len,
            ready: None,
        }
    }

    /// The tensor it reads.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the read has ended (then `wait` returns at once).
    pub fn poll(&mut self) -> bool {
        if self.ready.is_some() {
            return true;
        }
        match self.rx.try_recv() {
            Ok(r) => self.ready = Some(r),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => self.ready = Some(Err(lost())),
        }
        true
    }

    /// Blocks until the read ends; the tensor, checksum verified when the store verifies.
    pub fn wait(mut self) -> Result<StagedTensor> {
        let got = match self.ready.take() {
            Some(r) => r,
            None => self.rx.recv().unwrap_or_else(|_| Err(lost())),
        };
        match got? {
            ReadData::Staged(staging) => Ok(StagedTensor::new(
                staging,
                self.dtype,
                std::mem::take(&mut self.shape),
                self.len,
            )),
            _ => Err(lost()),
        }
    }
}

impl std::fmt::Debug for StagedTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StagedTicket({:?})", self.name)
    }
}
