//! Foreign device tensors (`gdswap::swap::ForeignDeviceTensor`: device memory the caller owns,
//! as a PyTorch or CuPy CUDA tensor is) in `bounce` and `gds` stores, against the fakes loaded
//! in this process (the fake libcuda of `tests/fakes/fake_cuda.c` with two devices, the fake
//! libcufile of `tests/cufile_fake/`). The caller's memory is a `DeviceTensor` of gdswap's,
//! viewed at an offset inside its allocation (as a caching allocator's tensor is): byte-exact
//! round trips at odd lengths, and the driver-checked refusals (host memory, pinned host
//! memory, another GPU, a range past the allocation's end, freed memory).

#[macro_use]
mod common;
mod cufile_fake;
mod cufile_wheel;

use std::sync::Once;

use gdswap::cuda::device_buffer::ContextBuffer;
use gdswap::swap::{
    DType, DeviceTensor, ForeignDeviceTensor, HostTensor, PinnedTensor, SwapOptions, SwapStore,
    Tensor,
};

fn fakes() -> bool {
    static INIT: Once = Once::new();
    if common::cuda::system_has_libcuda() {
        eprintln!("skipped: a system libcuda would shadow the fake");
        return false;
    }
    INIT.call_once(|| {
        let cuda = common::cuda::fake_libcuda_dir().join("libcuda.so.1");
        let cufile = &cufile_fake::fakes().cufile_full;
        std::env::set_var(gdswap::cuda::driver::LIBCUDA_ENV, cuda);
        std::env::set_var(gdswap::cufile::loader::PATH_ENV, cufile);
        std::env::set_var("FAKE_CUFILE_QUIET", "1");
        std::env::set_var("FAKE_CUDA_DEVICES", "2");
    });
    true
}

fn opts(backend: &str) -> SwapOptions {
    SwapOptions {
        backend: backend.parse().unwrap(),
        staging_budget: 64 << 20,
        io_threads: 2,
        ..SwapOptions::default()
    }
}

fn content(t: u64, len: usize) -> HostTensor {
    let mut x = (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut h = HostTensor::bytes(len);
    for b in h.as_bytes_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    h
}

/// A foreign view of `len` bytes at offset `skip` of `owner`'s device memory.
fn view(owner: &DeviceTensor, skip: usize, len: usize) -> gdswap::Result<ForeignDeviceTensor> {
    // SAFETY: inside `owner`'s allocation (or refused by the check), which outlives the view
    // and every swap of it in these tests.
    let memory = unsafe { ContextBuffer::foreign(owner.device_ptr() + skip as u64, len, 0)? };
    ForeignDeviceTensor::new(memory, DType::U8, &[len])
}

fn round_trips(backend: &str) {
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts(backend)).unwrap();
    for (i, &len) in [1usize, 511, 4097, (1 << 20) + 3].iter().enumerate() {
        let want = content(i as u64, len);
        // The tensor sits 3 bytes into a larger allocation, as tensors of a caching
        // allocator do.
        let mut padded = HostTensor::bytes(len + 10);
        padded.as_bytes_mut()[3..3 + len].copy_from_slice(want.as_bytes());
        let src = DeviceTensor::from_host(&padded, 0).unwrap();
        let t = view(&src, 3, len).unwrap();
        assert_eq!(t.len(), len);
        let name = format!("f{len}");
        store.swap_out(&name, &t).unwrap().wait().unwrap();
        assert_eq!(
            store.info(&name).unwrap().crc32c,
            crc32c::crc32c(want.as_bytes())
        );

        let dst = DeviceTensor::zeros(DType::U8, &[len + 10], 0).unwrap();
        let mut back = view(&dst, 5, len).unwrap();
        store.swap_in(&name, &mut back).unwrap().wait().unwrap();
        let got = dst.to_host().unwrap();
        assert!(
            got.as_bytes()[5..5 + len] == *want.as_bytes(),
            "{backend}: {len} bytes"
        );
        assert!(got.as_bytes()[..5]
            .iter()
            .chain(&got.as_bytes()[5 + len..])
            .all(|&b| b == 0));
        // Prefetched, and typed: the stored layout comes back.
        store.prefetch(&name).unwrap();
        let mut again = view(&dst, 5, len).unwrap();
        store.swap_in(&name, &mut again).unwrap().wait().unwrap();
        assert_eq!(again.dtype(), DType::U8);
    }
    // A foreign tensor into a gdswap device tensor and back the other way.
    let w = HostTensor::from_slice(DType::F32, &[1.5f32, -2.0, 3.25, 7.0]).unwrap();
    let d = DeviceTensor::from_host(&w, 0).unwrap();
    // SAFETY: `d` outlives the view and the swap.
    let memory = unsafe { ContextBuffer::foreign(d.device_ptr(), 16, 0).unwrap() };
    let f = ForeignDeviceTensor::new(memory, DType::F32, &[2, 2]).unwrap();
    store.swap_out("w", &f).unwrap().wait().unwrap();
    let e = store.info("w").unwrap();
    assert_eq!((e.dtype, e.shape.clone()), (DType::F32, vec![2, 2]));
    let mut h = HostTensor::zeros(DType::F32, &[2, 2]).unwrap();
    store.swap_in("w", &mut h).unwrap().wait().unwrap();
    assert_eq!(h.as_slice::<f32>().unwrap(), w.as_slice::<f32>().unwrap());
    store.close().unwrap();
}

#[test]
fn foreign_device_memory_round_trips_through_bounce() {
    if fakes() {
        round_trips("bounce");
    }
}

#[test]
fn foreign_device_memory_round_trips_through_gds() {
    if fakes() {
        round_trips("gds");
    }
}

#[test]
fn pointers_that_are_not_this_gpus_device_memory_are_refused() {
    if !fakes() {
        return;
    }
    let err = |r: gdswap::Result<ContextBuffer>| match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    // A plain host pointer.
    let h = HostTensor::bytes(4096);
    // SAFETY: refused before any use.
    let e = err(unsafe { ContextBuffer::foreign(h.as_bytes().as_ptr() as u64, 4096, 0) });
    assert!(e.contains("not memory CUDA knows"), "{e}");
    // Pinned (registered) host memory.
    let p = PinnedTensor::zeros(DType::U8, &[4096], 0).unwrap();
    // SAFETY: refused before any use.
    let e = err(unsafe { ContextBuffer::foreign(p.as_bytes().as_ptr() as u64, 4096, 0) });
    assert!(e.contains("is not device memory"), "{e}");
    // Memory of GPU 1, given as GPU 0's.
    let d1 = DeviceTensor::zeros(DType::U8, &[4096], 1).unwrap();
    // SAFETY: refused before any use.
    let e = err(unsafe { ContextBuffer::foreign(d1.device_ptr(), 4096, 0) });
    assert!(e.contains("memory of GPU 1, not of GPU 0"), "{e}");
    // A range past the allocation's end (a tensor claiming more bytes than it has). The
    // allocation is padded to 64 KiB alignment, so go well past it.
    let d = DeviceTensor::zeros(DType::U8, &[4096], 0).unwrap();
    // SAFETY: refused before any use.
    let e = err(unsafe { ContextBuffer::foreign(d.device_ptr(), 1 << 20, 0) });
    assert!(e.contains("does not fit in its allocation"), "{e}");
    // Freed memory.
    let gone = DeviceTensor::zeros(DType::U8, &[4096], 0).unwrap();
    let ptr = gone.device_ptr();
    drop(gone);
    // SAFETY: refused before any use.
    let e = err(unsafe { ContextBuffer::foreign(ptr, 4096, 0) });
    assert!(e.contains("not memory CUDA knows"), "{e}");
    // The byte count must be the tensor's.
    // SAFETY: inside `d`'s allocation.
    let m = unsafe { ContextBuffer::foreign(d.device_ptr(), 100, 0).unwrap() };
    let e = ForeignDeviceTensor::new(m, DType::F32, &[10])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("holds 40 bytes") && e.contains("holds 100"),
        "{e}"
    );
    // GPU 1's memory, rightly described, in a store staging on GPU 0; and a host store.
    // SAFETY: inside `d1`'s allocation, which outlives the refused swap.
    let m1 = unsafe { ContextBuffer::foreign(d1.device_ptr(), 4096, 1).unwrap() };
    let t1 = ForeignDeviceTensor::new(m1, DType::U8, &[4096]).unwrap();
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts("bounce")).unwrap();
    let e = store.swap_out("x", &t1).unwrap_err().to_string();
    assert!(e.contains("on GPU 1 and the store stages on GPU 0"), "{e}");
    let other = common::scratch();
    let host = SwapStore::open(other.path(), opts("host")).unwrap();
    let e = host.swap_out("x", &t1).unwrap_err().to_string();
    assert!(
        e.contains("needs a store opened with a device backend"),
        "{e}"
    );
    // Zero bytes: not checked, never copied.
    // SAFETY: zero bytes.
    let m0 = unsafe { ContextBuffer::foreign(0, 0, 0).unwrap() };
    let z = ForeignDeviceTensor::new(m0, DType::F32, &[0]).unwrap();
    store.swap_out("empty", &z).unwrap().wait().unwrap();
    let mut z2 = {
        // SAFETY: zero bytes.
        let m = unsafe { ContextBuffer::foreign(0, 0, 0).unwrap() };
        ForeignDeviceTensor::new(m, DType::F32, &[0]).unwrap()
    };
    store.swap_in("empty", &mut z2).unwrap().wait().unwrap();
}
