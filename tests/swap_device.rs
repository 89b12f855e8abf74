//! Device tensors (`gdswap::swap::DeviceTensor`) and the `gds` backend in the swap store,
//! against the fakes loaded in this process: the fake libcuda (`tests/fakes/fake_cuda.c`,
//! through GDSWAP_LIBCUDA, with two devices) and the fake libcufile compiled against NVIDIA's
//! `cufile.h` (`tests/cufile_fake/`, through GDSWAP_CUFILE_PATH), which really moves the data
//! file's bytes into the fake device memory. Round trips at odd lengths through `bounce` and
//! `gds`, device and host destinations, prefetch, typed layouts, a planted corruption caught
//! on the way into a device tensor, a tensor dropped while its swap-out is in flight, and the
//! refusals (host backend, wrong GPU).

#[macro_use]
mod common;
mod cufile_fake;
mod cufile_wheel;

use std::sync::Once;

use gdswap::backend::MemoryKind;
use gdswap::swap::{DType, DeviceTensor, HostTensor, SwapOptions, SwapStore, Tensor, DATA_FILE};

/// Points this process at the fakes (once, before anything loads a driver); false when a
/// system libcuda would shadow the fake.
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
        staging_budget: 256 << 20,
        io_threads: 2,
        ..SwapOptions::default()
    }
}

/// Deterministic bytes for tensor `t` of length `len`.
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

const LENGTHS: [usize; 6] = [1, 511, 4095, 4096, 4097, (3 << 20) + 5];

fn device_round_trips(backend: &str) {
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts(backend)).unwrap();
    for (i, &len) in LENGTHS.iter().enumerate() {
        let want = content(i as u64, len);
        let name = format!("t{len}");
        let d = DeviceTensor::from_host(&want, 0).unwrap();
        assert_eq!(d.memory(), MemoryKind::Device);
        store.swap_out(&name, &d).unwrap().wait().unwrap();
        assert_eq!(store.info(&name).unwrap().len, len as u64);

        // Into a device tensor, straight from the read.
        let mut back = DeviceTensor::zeros(DType::U8, &[len], 0).unwrap();
        store.swap_in(&name, &mut back).unwrap().wait().unwrap();
        assert!(
            back.to_host().unwrap().as_bytes() == want.as_bytes(),
            "{backend}: device tensor of {len} bytes"
        );
        // Into host memory.
        let mut h = HostTensor::bytes(len);
        store.swap_in(&name, &mut h).unwrap().wait().unwrap();
        assert!(h.as_bytes() == want.as_bytes(), "{backend}: host, {len}");
        // Prefetched, then into a device tensor and (again prefetched) into host memory.
        store.prefetch(&name).unwrap();
        let mut back = DeviceTensor::zeros(DType::U8, &[len], 0).unwrap();
        store.swap_in(&name, &mut back).unwrap().wait().unwrap();
        assert!(back.to_host().unwrap().as_bytes() == want.as_bytes());
        store.prefetch(&name).unwrap();
        let mut h = HostTensor::bytes(len);
        store.swap_in(&name, &mut h).unwrap().wait().unwrap();
        assert!(
            h.as_bytes() == want.as_bytes(),
            "{backend}: prefetched host, {len}"
        );
    }
    // Host tensors through the same store, and a host tensor read into device memory.
    let h = content(99, 10_000);
    store.swap_out("host", &h).unwrap().wait().unwrap();
    let mut d = DeviceTensor::zeros(DType::U8, &[10_000], 0).unwrap();
    store.swap_in("host", &mut d).unwrap().wait().unwrap();
    assert!(d.to_host().unwrap().as_bytes() == h.as_bytes());
    // Dtype and shape come back from the manifest.
    let w = HostTensor::from_slice(DType::F32, &[1.5f32, -2.0, 3.25, 0.0, 7.0, 8.5]).unwrap();
    let mut dw = DeviceTensor::zeros(DType::F32, &[2, 3], 0).unwrap();
    dw.upload(w.as_bytes()).unwrap();
    store.swap_out("w", &dw).unwrap().wait().unwrap();
    let mut back = DeviceTensor::zeros(DType::U8, &[24], 0).unwrap();
    store.swap_in("w", &mut back).unwrap().wait().unwrap();
    assert_eq!((back.dtype(), back.shape()), (DType::F32, &[2usize, 3][..]));
    let host = back.to_host().unwrap();
    assert_eq!(
        host.as_slice::<f32>().unwrap(),
        w.as_slice::<f32>().unwrap()
    );
    assert!(back.view::<f32>().is_err(), "no host view of device memory");
    store.close().unwrap();
}

#[test]
fn device_tensors_round_trip_through_bounce() {
    if fakes() {
        device_round_trips("bounce");
    }
}

#[test]
fn device_tensors_round_trip_through_gds() {
    if fakes() {
        device_round_trips("gds");
        let dir = common::scratch();
        let store = SwapStore::open(dir.path(), opts("gds")).unwrap();
        let h = content(5, 8192);
        store.swap_out("x", &h).unwrap().wait().unwrap();
        assert!(store.gds_path().is_some(), "a gds store reports its path");
        let other = common::scratch();
        let host = SwapStore::open(other.path(), opts("posix")).unwrap();
        assert!(host.gds_path().is_none());
    }
}

#[test]
fn a_corrupt_block_is_caught_on_the_way_into_a_device_tensor() {
    if !fakes() {
        return;
    }
    for backend in ["bounce", "gds"] {
        let dir = common::scratch();
        let want = content(7, 3 * 4096 + 17);
        let e = {
            let store = SwapStore::open(dir.path(), opts(backend)).unwrap();
            let d = DeviceTensor::from_host(&want, 0).unwrap();
            store.swap_out("victim", &d).unwrap().wait().unwrap();
            store.info("victim").unwrap()
        };
        // The checksum was taken of the device tensor's bytes.
        assert_eq!(e.crc32c, crc32c::crc32c(want.as_bytes()), "{backend}");
        common::flip_byte(&dir.path().join(DATA_FILE), e.offset + 8192 + 3);
        let store = SwapStore::open(dir.path(), opts(backend)).unwrap();
        let mut back = DeviceTensor::zeros(DType::U8, &[want.len()], 0).unwrap();
        let err = store
            .swap_in("victim", &mut back)
            .unwrap()
            .wait()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'victim'") && err.contains("checksum mismatch"),
            "{backend}: {err}"
        );
        // Untouched: the device tensor never received the corrupt bytes.
        assert!(back.to_host().unwrap().as_bytes().iter().all(|&b| b == 0));
    }
}

/// A swap-out stores the device tensor as it was when `swap_out` returned, even when its job
/// is queued behind another and the caller changes the tensor right away.
#[test]
fn a_device_swap_out_stores_the_tensor_as_it_was_when_swap_out_returned() {
    if !fakes() {
        return;
    }
    for backend in ["bounce", "gds"] {
        let dir = common::scratch();
        let store = SwapStore::open(
            dir.path(),
            SwapOptions {
                io_threads: 1,
                ..opts(backend)
            },
        )
        .unwrap();
        let a = content(2, 100_000);
        let mut d = DeviceTensor::from_host(&a, 0).unwrap();
        // A first version, so that the second finds its staging buffer idle in the pool and
        // needs the I/O thread only for its write job.
        store.swap_out("a", &d).unwrap().wait().unwrap();
        // One I/O thread, busy with a big write first.
        let big = content(1, 16 << 20);
        let first = store.swap_out("big", &big).unwrap();
        let ticket = store.swap_out("a", &d).unwrap();
        d.upload(content(3, 100_000).as_bytes()).unwrap();
        first.wait().unwrap();
        ticket.wait().unwrap();
        let mut h = HostTensor::bytes(100_000);
        store.swap_in("a", &mut h).unwrap().wait().unwrap();
        assert!(
            h.as_bytes() == a.as_bytes(),
            "{backend}: the version at swap_out"
        );
    }
}

#[test]
fn device_paths_without_verification_and_the_refusals() {
    if !fakes() {
        return;
    }
    for backend in ["bounce", "gds"] {
        let dir = common::scratch();
        let store = SwapStore::open(
            dir.path(),
            SwapOptions {
                verify: false,
                ..opts(backend)
            },
        )
        .unwrap();
        let want = content(4, 8193);
        store
            .swap_out("t", &DeviceTensor::from_host(&want, 0).unwrap())
            .unwrap()
            .wait()
            .unwrap();
        let mut d = DeviceTensor::zeros(DType::U8, &[8193], 0).unwrap();
        store.swap_in("t", &mut d).unwrap().wait().unwrap();
        assert!(
            d.to_host().unwrap().as_bytes() == want.as_bytes(),
            "{backend}"
        );
        store.prefetch("t").unwrap();
        let mut h = HostTensor::bytes(8193);
        store.swap_in("t", &mut h).unwrap().wait().unwrap();
        assert!(h.as_bytes() == want.as_bytes(), "{backend}");
        // A destination of the wrong length.
        let mut short = DeviceTensor::zeros(DType::U8, &[8192], 0).unwrap();
        let err = store.swap_in("t", &mut short).unwrap_err().to_string();
        assert!(
            err.contains("'t'") && err.contains("8192 bytes") && err.contains("8193"),
            "{err}"
        );
        // Staged tensors are host staging: refused here.
        let err = store
            .staged_zeros(DType::U8, &[10])
            .unwrap_err()
            .to_string();
        assert!(err.contains("staged tensors need a host backend"), "{err}");
        let err = store.swap_in_staged("t").unwrap_err().to_string();
        assert!(err.contains("staged tensors need a host backend"), "{err}");
        // Every staging buffer is idle now, and released on request.
        assert!(store.stats().staging_now > 0);
        store.release_idle_staging().unwrap();
        assert_eq!(store.stats().staging_now, 0, "{backend}");
        // A prefetch nobody took is freed with the store (on its own I/O thread).
        store.prefetch("t").unwrap();
        store.close().unwrap();
    }
}

#[test]
fn a_tensor_dropped_during_its_swap_out_is_still_stored_whole() {
    if !fakes() {
        return;
    }
    let dir = common::scratch();
    let store = SwapStore::open(dir.path(), opts("bounce")).unwrap();
    let want = content(11, (2 << 20) + 1);
    let d = DeviceTensor::from_host(&want, 0).unwrap();
    let ticket = store.swap_out("gone", &d).unwrap();
    drop(d); // the swap in flight keeps the allocation
    ticket.wait().unwrap();
    let mut h = HostTensor::bytes(want.len());
    store.swap_in("gone", &mut h).unwrap().wait().unwrap();
    assert!(h.as_bytes() == want.as_bytes());
}

#[test]
fn device_tensors_need_a_device_backend_on_their_gpu() {
    if !fakes() {
        return;
    }
    let d = DeviceTensor::from_host(&content(1, 100), 0).unwrap();
    let (a, b, c) = (common::scratch(), common::scratch(), common::scratch());
    let store = SwapStore::open(a.path(), opts("posix")).unwrap();
    let err = store.swap_out("d", &d).unwrap_err().to_string();
    assert!(
        err.contains("'d'")
            && err.contains("needs a store opened with a device backend (bounce or gds)"),
        "{err}"
    );
    store
        .swap_out("h", &content(1, 100))
        .unwrap()
        .wait()
        .unwrap();
    let mut dest = DeviceTensor::zeros(DType::U8, &[100], 0).unwrap();
    let err = store.swap_in("h", &mut dest).unwrap_err().to_string();
    assert!(err.contains("device backend"), "{err}");
    drop(store);

    let on1 = DeviceTensor::from_host(&content(2, 100), 1).unwrap();
    assert_eq!(on1.gpu(), 1);
    let store = SwapStore::open(b.path(), opts("bounce")).unwrap();
    let err = store.swap_out("d1", &on1).unwrap_err().to_string();
    assert!(
        err.contains("the tensor is on GPU 1 and the store stages on GPU 0"),
        "{err}"
    );
    // Nothing was claimed by the refusal: the tensor can be stored from GPU 0.
    store.swap_out("d1", &d).unwrap().wait().unwrap();
    // And a store staging on GPU 1 takes it.
    let store1 = SwapStore::open(
        c.path(),
        SwapOptions {
            gpu: 1,
            ..opts("gds")
        },
    )
    .unwrap();
    store1.swap_out("d1", &on1).unwrap().wait().unwrap();
    let mut back = DeviceTensor::zeros(DType::U8, &[100], 1).unwrap();
    store1.swap_in("d1", &mut back).unwrap().wait().unwrap();
    assert!(back.to_host().unwrap().as_bytes() == content(2, 100).as_bytes());
}
