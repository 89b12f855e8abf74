//! Device memory: one plain `cuMemAlloc` allocation per worker, the size of its range.
//!
//! Aligned to [`DEVICE_ALIGN`] (64 KiB) by gdswap itself: `cuMemAlloc` guarantees only 256
//! bytes, while GPUDirect Storage wants 4 KiB-aligned buffers (cuFile takes its unaligned,
//! bounced path otherwise) and maps GPU memory for registration in 64 KiB GPU pages. An
//! allocation the driver returns unaligned is freed and made again 64 KiB - 256 bytes
//! larger, and the buffer starts at the first 64 KiB boundary inside it.
//!
//! Plain allocations, not stream-ordered pool memory (`cuMemAllocAsync`, which cudarc's safe
//! layer picks when the device reports pools) and not managed memory: what gdswap measures is
//! a copy into ordinary device memory, and GPUDirect Storage registration (the gds backend)
//! is only known to accept plain allocations.
//!
//! Copies are methods of the buffer so the device side is always bounds-checked here. The
//! host side of an asynchronous copy must stay valid, and unchanged for a host-to-device copy,
//! until the stream reaches the copy: the callers in [`super::copy`] guarantee that with
//! events and stream synchronisation, which is why the asynchronous copies are `unsafe`. The synchronous helpers borrow
//! their host memory for the whole copy and are safe.

use cudarc::driver::sys;

use crate::error::{Error, Result, Setting};
use crate::io::uring::IoBuffer;
use crate::size::Bytes;

use super::api::api;
use super::check;
use super::pinned::PinnedBuffer;
use super::stream::Stream;

/// The alignment of every [`DeviceBuffer`]'s first byte: a 64 KiB GPU page.
pub const DEVICE_ALIGN: u64 = 64 << 10;

/// What `cuMemAlloc` promises (the CUDA programming guide: at least 256-byte aligned).
const DRIVER_ALIGN: u64 = 256;

/// `len` bytes of device memory, starting at a multiple of [`DEVICE_ALIGN`].
pub struct DeviceBuffer {
    /// The allocation, as `cuMemAlloc` returned it (what `cuMemFree` takes).
    raw: sys::CUdeviceptr,
    /// The buffer's first byte: `raw` rounded up to `DEVICE_ALIGN`.
    ptr: sys::CUdeviceptr,
    len: usize,
    /// False for memory gdswap does not own ([`ContextBuffer::foreign`]): never freed here.
    owned: bool,
}

// SAFETY: a device address is plain data; the allocation is freed once, on drop, in its own
// context (a worker's buffer on the worker's thread; a ContextBuffer's after making its
// context current, on whichever thread drops it).
unsafe impl Send for DeviceBuffer {}

impl DeviceBuffer {
    /// Allocates `len` bytes (at least one), 64 KiB-aligned, in the context current on this
    /// thread.
    pub fn new(len: usize, device: usize) -> Result<DeviceBuffer> {
        let want = len.max(1);
        let raw = alloc(want, len, device)?;
        if raw % DEVICE_ALIGN == 0 {
            return Ok(DeviceBuffer {
                raw,
                ptr: raw,
                len,
                owned: true,
            });
        }
        // SAFETY: frees the allocation just made, never used.
        unsafe { (api().cuMemFree_v2)(raw) };
        let padded = want
            .checked_add((DEVICE_ALIGN - DRIVER_ALIGN) as usize)
            .ok_or_else(|| {
                Error::OutOfMemory(format!("a {len}-byte device buffer is too large").into())
            })?;
        let raw = alloc(padded, len, device)?;
        let ptr = raw.next_multiple_of(DEVICE_ALIGN);
        if ptr - raw > (padded - want) as u64 {
            // SAFETY: frees the allocation just made, never used.
            unsafe { (api().cuMemFree_v2)(raw) };
            return Err(Error::DriverContract(format!(
                "cuMemAlloc returned {raw:#x} on device {device}, not 256-byte aligned as the CUDA documentation promises"
            )));
        }
        Ok(DeviceBuffer {
            raw,
            ptr,
            len,
            owned: true,
        })
    }

    /// Usable bytes from [`DeviceBuffer::device_ptr`] (the alignment padding not counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// The device address of the first byte, a multiple of [`DEVICE_ALIGN`] (for cuFile,
    /// which takes it as a `void*`).
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check_range(&self, offset: usize, len: usize) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "device copy [{offset}, +{len}) outside a {}-byte buffer",
            self.len
        );
    }

    /// Queues a copy of `len` bytes from host `src` to device offset `offset` on `stream`.
    ///
    /// # Safety
    /// `src..src+len` must be valid, page-locked host memory that stays allocated and
    /// unchanged until the stream has reached this copy (an event recorded after it
    /// completes, or the stream is synchronised).
    pub unsafe fn upload_async(
        &self,
        offset: usize,
        src: *const u8,
        len: usize,
        stream: &Stream,
    ) -> Result<()> {
        self.check_range(offset, len);
        check(
            // SAFETY: device range checked above; host range per this function's contract.
            unsafe {
                (api().cuMemcpyHtoDAsync_v2)(
                    self.ptr + offset as u64,
                    src as *const std::ffi::c_void,
                    len,
                    stream.raw(),
                )
            },
            || format!("cuMemcpyHtoDAsync of {len} bytes to device offset {offset}"),
        )
    }

    /// Queues a copy of `len` bytes from device offset `offset` to host `dst` on `stream`.
    ///
    /// # Safety
    /// `dst..dst+len` must be valid, page-locked host memory that stays allocated, and is
    /// neither read nor written by anyone else, until the stream has reached this copy.
    pub unsafe fn download_async(
        &self,
        offset: usize,
        dst: *mut u8,
        len: usize,
        stream: &Stream,
    ) -> Result<()> {
        self.check_range(offset, len);
        check(
            // SAFETY: device range checked above; host range per this function's contract.
            unsafe {
                (api().cuMemcpyDtoHAsync_v2)(
                    dst as *mut std::ffi::c_void,
                    self.ptr + offset as u64,
                    len,
                    stream.raw(),
                )
            },
            || format!("cuMemcpyDtoHAsync of {len} bytes from device offset {offset}"),
        )
    }

    /// Copies `len` bytes at `src_offset` of `src` (another allocation of the same context)
    /// to offset `offset` of this buffer, and waits.
    pub fn copy_from(
        &self,
        offset: usize,
        src: &DeviceBuffer,
        src_offset: usize,
        len: usize,
        stream: &Stream,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.check_range(offset, len);
        src.check_range(src_offset, len);
        check(
            // SAFETY: both ranges are inside live allocations (checked above) borrowed for the
            // whole call, and the stream is synchronised before returning, so the copy never
            // outlives them.
            unsafe {
                (api().cuMemcpyDtoDAsync_v2)(
                    self.ptr + offset as u64,
                    src.ptr + src_offset as u64,
                    len,
                    stream.raw(),
                )
            },
            || format!("cuMemcpyDtoDAsync of {len} bytes to device offset {offset}"),
        )?;
        stream.synchronize("waiting for a copy within the device")
    }

    /// Sets `len` bytes at `offset` to zero, and waits.
    pub fn zero(&self, offset: usize, len: usize, stream: &Stream) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.check_range(offset, len);
        check(
            // SAFETY: the range is inside this allocation (checked above), which outlives the
            // call; the stream is synchronised before returning.
            unsafe { (api().cuMemsetD8Async)(self.ptr + offset as u64, 0, len, stream.raw()) },
            || format!("cuMemsetD8Async of {len} bytes at device offset {offset}"),
        )?;
        stream.synchronize("waiting for a device memset")
    }

    /// Fills the whole buffer piece by piece through `pinned` (pieces of its length, in
    /// order): `f(offset, piece)` writes the bytes for `offset`, then they are copied up.
    pub fn fill_through(
        &self,
        pinned: &mut PinnedBuffer,
        stream: &Stream,
        f: &mut dyn FnMut(usize, &mut [u8]),
    ) -> Result<()> {
        let step = pinned.as_slice().len().max(1);
        let mut off = 0;
        while off < self.len {
            let n = step.min(self.len - off);
            f(off, pinned.range_mut(0, n)?);
            self.upload(off, pinned, 0, n, stream)?;
            off += n;
        }
        Ok(())
    }

    /// Reads the whole buffer piece by piece through `pinned`: `f(offset, piece)`.
    pub fn inspect_through(
        &self,
        pinned: &mut PinnedBuffer,
        stream: &Stream,
        f: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let step = pinned.as_slice().len().max(1);
        let mut off = 0;
        while off < self.len {
            let n = step.min(self.len - off);
            self.download(off, pinned, 0, n, stream)?;
            f(off, pinned.range(0, n)?)?;
            off += n;
        }
        Ok(())
    }

    /// Copies `len` bytes at `src_offset` of `pinned` to device offset `offset`, and waits.
    pub fn upload(
        &self,
        offset: usize,
        pinned: &PinnedBuffer,
        src_offset: usize,
        len: usize,
        stream: &Stream,
    ) -> Result<()> {
        let src = pinned.range(src_offset, len)?;
        // SAFETY: `src` is pinned memory borrowed for this whole call, and the call returns
        // only after the stream has finished the copy (or failed).
        unsafe { self.upload_async(offset, src.as_ptr(), len, stream)? };
        stream.synchronize("waiting for a copy to the device")
    }

    /// Copies `len` bytes at device offset `offset` into `pinned` at `dst_offset`, and waits.
    pub fn download(
        &self,
        offset: usize,
        pinned: &mut PinnedBuffer,
        dst_offset: usize,
        len: usize,
        stream: &Stream,
    ) -> Result<()> {
        let dst = pinned.range_mut(dst_offset, len)?;
        // SAFETY: `dst` is pinned memory borrowed mutably for this whole call, and the call
        // returns only after the stream has finished the copy (or failed).
        unsafe { self.download_async(offset, dst.as_mut_ptr(), len, stream)? };
        stream.synchronize("waiting for a copy from the device")
    }
}

/// `cuMemAlloc` of `bytes`, in the current context; the error names the buffer's `len`.
fn alloc(bytes: usize, len: usize, device: usize) -> Result<sys::CUdeviceptr> {
    let mut raw: sys::CUdeviceptr = 0;
    // SAFETY: writes one device address.
    check(unsafe { (api().cuMemAlloc_v2)(&mut raw, bytes) }, || {
        crate::error::msg![
            format!(
                "cuMemAlloc of {} on device {device} (lower ",
                Bytes(len as u64)
            ),
            Setting::Size,
            " or ",
            Setting::Threads,
            ")"
        ]
    })?;
    Ok(raw)
}

/// A device allocation together with the context it was made in (retained), so that it can
/// be shared between threads and is freed in its own context by whichever thread drops the
/// last share: the memory of a swap store's device tensors. Its context is entered (pushed
/// and popped) around the allocation and the free, never left current.
pub struct ContextBuffer {
    /// Taken by `Drop::drop`, which frees it with the context entered.
    buffer: Option<DeviceBuffer>,
    device: super::device::Device,
}

// SAFETY: the value only hands out shared references: `&DeviceBuffer` (its methods are driver
// calls, which are thread safe, on a fixed address) and `&Device` (whose only method changing
// anything makes its context current on the calling thread, a per-thread setting); it is
// freed once, on drop, with its context made current first.
unsafe impl Sync for ContextBuffer {}

impl ContextBuffer {
    /// `len` bytes (at least one) on `device` (its context entered for the allocation).
    pub fn new(len: usize, device: super::device::Device) -> Result<ContextBuffer> {
        let buffer = {
            let _entered = device.enter()?;
            DeviceBuffer::new(len, device.ordinal())?
        };
        Ok(ContextBuffer {
            buffer: Some(buffer),
            device,
        })
    }

    /// `len` bytes of device memory at `ptr` on GPU `gpu` that gdswap does not own (a
    /// PyTorch or CuPy tensor's, say): checked with `cuPointerGetAttribute` (with its context
    /// entered) to be plain device memory, not managed, on `gpu`, with the whole range
    /// inside one allocation; never freed by gdswap. A zero-length range is not checked
    /// (frameworks give empty tensors a null pointer) and is never copied.
    ///
    /// # Safety
    /// The range must stay allocated, and not be freed or reused, until the value is
    /// dropped (the swap store holds it until the swaps using it have ended).
    pub unsafe fn foreign(ptr: u64, len: usize, gpu: usize) -> Result<ContextBuffer> {
        let device = super::device::Device::retain(gpu)?;
        if len > 0 {
            let _entered = device.enter()?;
            check_foreign(ptr, len, device.ordinal())?;
        }
        Ok(ContextBuffer {
            buffer: Some(DeviceBuffer {
                raw: ptr,
                ptr,
                len,
                owned: false,
            }),
            device,
        })
    }

    /// The device allocation (held until the last share is dropped).
    pub fn buffer(&self) -> &DeviceBuffer {
        self.buffer
            .as_ref()
            .expect("a context buffer holds its allocation until dropped")
    }

    /// The device whose context the allocation was made in.
    pub fn device(&self) -> &super::device::Device {
        &self.device
    }
}

impl Drop for ContextBuffer {
    fn drop(&mut self) {
        // cuMemFree needs a current context: the allocation's is entered (whatever the thread
        // had, or on a thread unwinding from a panic) and popped after. If entering fails, the
        // free is still tried; failing too, the memory stays with the context and goes when
        // its last retain is released.
        let entered = self.device.enter();
        self.buffer.take();
        drop(entered);
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        // SAFETY: frees the allocation this value owns, once. Its owner synchronises the
        // stream (drops it) first, so no queued copy still uses it.
        unsafe { (api().cuMemFree_v2)(self.raw) };
    }
}

/// One `cuPointerGetAttribute` answer of `T` (a `c_uint`, `c_int`, `CUdeviceptr` or
/// `size_t`, as the attribute's documentation says), in the current context.
fn pointer_attribute<T: Default>(ptr: u64, attribute: u32, what: &str) -> Result<T> {
    let mut value = T::default();
    let rc =
        // SAFETY: writes one value of the attribute's type, which the caller names as `T`.
        unsafe { (api().cuPointerGetAttribute)(&mut value as *mut T as *mut _, attribute, ptr) };
    if rc == super::api::CUDA_ERROR_INVALID_VALUE {
        return Err(Error::Tensor(format!(
            "device pointer {ptr:#x} is not memory CUDA knows (cuPointerGetAttribute: CUDA_ERROR_INVALID_VALUE): a host pointer, freed memory, or memory of another process"
        )));
    }
    check(rc, || {
        format!("cuPointerGetAttribute ({what} of device pointer {ptr:#x})")
    })?;
    Ok(value)
}

/// `[ptr, ptr + len)` is plain device memory on GPU `ordinal`, inside one allocation.
fn check_foreign(ptr: u64, len: usize, ordinal: usize) -> Result<()> {
    use super::api::*;
    let kind: u32 = pointer_attribute(ptr, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, "memory type")?;
    if kind != CU_MEMORYTYPE_DEVICE {
        return Err(Error::Tensor(format!(
            "pointer {ptr:#x} is not device memory (CUDA memory type {kind}; device memory is {CU_MEMORYTYPE_DEVICE}): pass a CUDA tensor, or a host tensor as such"
        )));
    }
    let managed: u32 = pointer_attribute(ptr, CU_POINTER_ATTRIBUTE_IS_MANAGED, "managed")?;
    if managed != 0 {
        return Err(Error::Tensor(format!(
            "device pointer {ptr:#x} is managed (unified) memory, which gdswap does not swap: use plain device memory"
        )));
    }
    let dev: i32 = pointer_attribute(ptr, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, "device")?;
    if usize::try_from(dev).ok() != Some(ordinal) {
        return Err(Error::Tensor(format!(
            "device pointer {ptr:#x} is memory of GPU {dev}, not of GPU {ordinal}"
        )));
    }
    let start: u64 = pointer_attribute(ptr, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, "range start")?;
    let size: usize = pointer_attribute(ptr, CU_POINTER_ATTRIBUTE_RANGE_SIZE, "range size")?;
    let inside = ptr
        .checked_sub(start)
        .and_then(|off| (off as u128).checked_add(len as u128))
        .is_some_and(|end| end <= size as u128);
    if !inside {
        return Err(Error::Tensor(format!(
            "device range [{ptr:#x}, +{len}) does not fit in its allocation [{start:#x}, +{size}): the tensor is smaller than its bytes say"
        )));
    }
    Ok(())
}
