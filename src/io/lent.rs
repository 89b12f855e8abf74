//! Memory an io_uring engine does its I/O in without owning it: a view of bytes someone else
//! allocated and keeps, lent to an engine for a while (a Python tensor's memory, for each op
//! of `gdswap.aio_handle`; one `HostBuffer` lent to engine after engine, in
//! `examples/ring_per_op.rs`).
//!
//! An engine owns its buffer ([`IoBuffer`]), which is right when gdswap allocates it. When
//! the caller already holds the memory, lending it moves the bytes straight into or out of it
//! (no copy through a buffer of the engine's), and lets one engine, one ring, serve a
//! different memory with each operation ([`UringEngine::retarget`]).
//!
//! The engine's requests run asynchronously, in the kernel, so no Rust borrow can say how
//! long the bytes must stay; the lender promises it instead, once, in [`LentMemory::new`]'s
//! contract.
//!
//! [`UringEngine::retarget`]: crate::io::uring::UringEngine::retarget

use std::ptr::NonNull;

use crate::io::buffer::PageBacking;
use crate::io::uring::IoBuffer;

/// A view of `len` bytes that someone else owns, lent to an io_uring engine
/// ([`UringEngine`](crate::io::uring::UringEngine)) as its buffer. Dropping it frees nothing.
///
/// It reports its pages as [`PageBacking::Base4K`]: the view cannot know how the lender's
/// memory is backed.
pub struct LentMemory {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the view is a pointer to plain host memory; which thread the engine moves it to
// does not matter, and `new`'s contract keeps the bytes allocated and unshared meanwhile.
unsafe impl Send for LentMemory {}

impl LentMemory {
    /// Lends the `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is non-null and the `len` bytes at it are readable and writable host memory. They
    /// stay allocated (not freed, not resized) and are not otherwise accessed (read or written
    /// other than through this view) until the engine using the view has given it back:
    /// dropped after its runs drained, or returned the view from
    /// [`UringEngine::retarget`](crate::io::uring::UringEngine::retarget). After a failed run
    /// whose engine [`leaks_buffer`](crate::io::uring::UringEngine::leaks_buffer), requests
    /// may still write the bytes: they must then stay allocated for the process's life.
    pub unsafe fn new(ptr: *mut u8, len: usize) -> LentMemory {
        LentMemory {
            ptr: NonNull::new(ptr).expect("LentMemory::new: a null pointer (see its contract)"),
            len,
        }
    }

    /// A view of nothing: what an idle engine holds between lent memories, so that it never
    /// keeps memory its lender may free.
    pub fn empty() -> LentMemory {
        LentMemory {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }
}

impl IoBuffer for LentMemory {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn capacity(&self) -> usize {
        self.len
    }
    fn backing(&self) -> PageBacking {
        PageBacking::Base4K
    }
    fn as_slice(&self) -> &[u8] {
        // SAFETY: `new`'s contract: `len` readable bytes at a non-null `ptr`, allocated and
        // touched by no one else while the view exists (`empty`: no bytes at a dangling,
        // non-null, aligned pointer, which a slice of length 0 allows).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, the bytes writable too, borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::io::file::{Access, DataFile};
    use crate::io::uring::{unavailable_reason, UringEngine};
    use crate::options::Op;
    use crate::stats::LatencyRecorder;
    use crate::testutil::requests;

    #[test]
    fn an_engine_reads_into_and_writes_from_the_lent_bytes_and_no_others() {
        if let Some(why) = unavailable_reason() {
            eprintln!("note: skipping: {why}");
            return;
        }
        let dir = crate::testutil::scratch_dir();
        // Not whole pages, and the files are buffered: a Vec's memory has no page alignment.
        let (len, bs) = (3 * 4096 + 100, 4096);
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        let src_path = dir.path().join("src");
        std::fs::write(&src_path, &data).unwrap();
        let src = Arc::new(DataFile::open(&src_path, Access::Read, false).unwrap());
        let dst_path = dir.path().join("dst");
        let dst = Arc::new(DataFile::open(&dst_path, Access::Write, false).unwrap());
        dst.set_len(len as u64).unwrap();
        // The lent bytes lie inside a larger Vec, whose other bytes the engine must not touch.
        let pad = 64;
        let mut mem = vec![0xeeu8; pad + len + pad];
        let mut lat = LatencyRecorder::new();

        // SAFETY: `mem` outlives the engine and is touched only through the view until
        // `retarget` has given the view back.
        let view = unsafe { LentMemory::new(mem.as_mut_ptr().add(pad), len) };
        let mut engine = UringEngine::new(view, src, 4, bs as u64, false).unwrap();
        engine.run(Op::Read, &requests(len, bs), &mut lat).unwrap();
        let back = engine.retarget(LentMemory::empty(), Arc::clone(&dst));
        assert_eq!(back.unwrap().capacity(), len);
        assert!(
            mem[pad..pad + len] == data[..],
            "the read missed the lent bytes"
        );
        assert!(
            mem[..pad].iter().all(|&b| b == 0xee),
            "the read wrote before them"
        );
        assert!(
            mem[pad + len..].iter().all(|&b| b == 0xee),
            "the read wrote past them"
        );

        // Writes send the lent bytes as they are now.
        for b in &mut mem[pad..pad + len] {
            *b = b.wrapping_mul(3).wrapping_add(1);
        }
        // SAFETY: as above, until the engine is dropped.
        let view = unsafe { LentMemory::new(mem.as_mut_ptr().add(pad), len) };
        engine.retarget(view, dst).unwrap();
        engine.run(Op::Write, &requests(len, bs), &mut lat).unwrap();
        drop(engine);
        let written = std::fs::read(&dst_path).unwrap();
        assert!(
            written != data,
            "the write test needs bytes other than the read's"
        );
        assert!(
            written == mem[pad..pad + len],
            "the write did not send the lent bytes"
        );
    }

    #[test]
    fn an_empty_view_lends_no_bytes() {
        let mut view = LentMemory::empty();
        assert_eq!(view.capacity(), 0);
        assert!(view.as_slice().is_empty());
        assert!(view.as_mut_slice().is_empty());
    }
}
