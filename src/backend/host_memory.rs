//! The destination buffer of backends that move data to and from ordinary host memory.

use crate::error::{Error, Result};
use crate::io::buffer::HostBuffer;
use crate::size::Bytes;

use super::WorkerSetup;

/// Allocates a thread's destination: `range_len` bytes, page-aligned, huge-page backed per
/// the setup's policy.
pub fn allocate(setup: &WorkerSetup) -> Result<HostBuffer> {
    let len = usize::try_from(setup.range_len).map_err(|_| {
        Error::OutOfMemory(
            format!("a {} buffer does not fit in memory", Bytes(setup.range_len)).into(),
        )
    })?;
    HostBuffer::new(len, setup.huge_pages)
}
