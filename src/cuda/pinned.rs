//! Page-locked ("pinned") host memory that the GPU can DMA from and to, that io_uring can do
//! O_DIRECT into (and register), and that the CPU reads at full speed.
//!
//! Made as an anonymous, 2 MiB-aligned mapping with `MADV_HUGEPAGE` or hugetlb pages (the
//! [`HostBuffer`] of `io::buffer`, so chunks sit in huge pages where the machine allows, which
//! makes O_DIRECT up to 2x faster here) and then registered with `cuMemHostRegister`
//! (PORTABLE: usable from every context). Not `cuMemHostAlloc`/cudarc's `alloc_pinned`:
//! that memory is write-combined (very slow for the CPU to read, and `--verify` reads it) and
//! is a driver mapping that io_uring buffer registration refuses on some kernels.
//!
//! RLIMIT_MEMLOCK: `cuMemHostRegister` does not count against it (the NVIDIA driver pins the
//! pages without locked-memory accounting), so pinning alone needs no memlock check. Only
//! what io_uring registers is charged (`--fixed-buffers`, which registers the pinned chunks
//! as fixed buffers): that budget is explicit (`--bounce-buffers K` x block size per thread)
//! and is checked up front ([`check_memlock`]) with the fix in the message.

use cudarc::driver::sys;

use crate::error::{Error, Result, Setting};
use crate::io::buffer::{HostBuffer, HugePages, PageBacking};
use crate::io::sys as iosys;
use crate::io::uring::IoBuffer;
use crate::size::Bytes;

use super::api::api;
use super::check;

/// Refuses, before anything is allocated, a budget of memory gdswap has the kernel charge to
/// RLIMIT_MEMLOCK (io_uring fixed buffers) above the limit (unless the process has
/// CAP_IPC_LOCK, which lifts the limit).
pub fn check_memlock(
    needed: u64,
    what: impl Into<crate::error::Message>,
    hint: impl Into<crate::error::Message>,
) -> Result<()> {
    if iosys::can_lock(needed) {
        return Ok(());
    }
    Err(Error::Memlock {
        what: what.into(),
        needed,
        limit: iosys::memlock_limit(),
        hint: hint.into(),
    })
}

/// A page-locked host buffer, unregistered and unmapped on drop.
pub struct PinnedBuffer {
    buf: HostBuffer,
}

impl PinnedBuffer {
    /// Allocates `len` bytes per `pages` and registers all of them with the driver (the
    /// context must be current on this thread).
    pub fn new(len: usize, pages: HugePages) -> Result<PinnedBuffer> {
        let mut buf = HostBuffer::new(len, pages)?;
        let cap = buf.capacity();
        // SAFETY: [ptr, ptr+cap) is a live anonymous mapping owned by `buf`, which the
        // PinnedBuffer owns and unregisters before unmapping (see Drop).
        let rc = unsafe {
            (api().cuMemHostRegister_v2)(
                buf.as_mut_ptr() as *mut std::ffi::c_void,
                cap,
                sys::CU_MEMHOSTREGISTER_PORTABLE,
            )
        };
        check(rc, || {
            crate::error::msg![
                format!(
                    "cuMemHostRegister of {} of pinned host memory (lower ",
                    Bytes(cap as u64)
                ),
                Setting::BounceBuffers,
                " or ",
                Setting::BlockSize,
                ")"
            ]
        })?;
        Ok(PinnedBuffer { buf })
    }

    /// Bytes `[offset, offset + len)`, checked.
    pub fn range(&self, offset: usize, len: usize) -> Result<&[u8]> {
        let cap = self.buf.capacity();
        if !matches!(offset.checked_add(len), Some(end) if end <= cap) {
            return Err(range_error(offset, len, cap));
        }
        let all = self.buf.as_slice();
        if offset + len <= all.len() {
            return Ok(&all[offset..offset + len]);
        }
        // The padding past `len()` up to the capacity is part of the mapping too.
        // SAFETY: [offset, offset+len) lies inside the mapping (checked above), which is
        // initialised (zero-filled, touched) and borrowed immutably through &self.
        Ok(unsafe { std::slice::from_raw_parts(self.buf.as_ptr().add(offset), len) })
    }

    /// Bytes `[offset, offset + len)`, checked, writable.
    pub fn range_mut(&mut self, offset: usize, len: usize) -> Result<&mut [u8]> {
        let cap = self.buf.capacity();
        if !matches!(offset.checked_add(len), Some(end) if end <= cap) {
            return Err(range_error(offset, len, cap));
        }
        // SAFETY: as in `range`, borrowed mutably through &mut self.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().add(offset), len) })
    }
}

impl IoBuffer for PinnedBuffer {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf.as_mut_ptr()
    }
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }
    fn backing(&self) -> PageBacking {
        self.buf.backing()
    }
    fn as_slice(&self) -> &[u8] {
        self.buf.as_slice()
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        self.buf.as_mut_slice()
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        // SAFETY: unregisters the range registered in `new`, before `buf` unmaps it. Its
        // owners (the io_uring engine, the bounce worker) drop it only when no I/O and no copy
        // can still use it.
        unsafe { (api().cuMemHostUnregister)(self.buf.as_mut_ptr() as *mut std::ffi::c_void) };
    }
}

/// The error for a pinned range that does not fit its buffer (a bug in gdswap).
fn range_error(offset: usize, len: usize, capacity: usize) -> Error {
    Error::Internal(format!(
        "internal error: pinned range [{offset}, +{len}) outside a {capacity}-byte buffer"
    ))
}
