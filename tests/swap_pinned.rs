//! Pinned host tensors (`gdswap::swap::PinnedTensor`) through the swap store, against the fake
//! libcuda (`tests/fakes/fake_cuda.c`), loaded in this process through GDSWAP_LIBCUDA: the only
//! test of this binary, so it sets the variable before anything loads a driver.

#[macro_use]
mod common;

use gdswap::swap::{DType, HostTensor, PinnedTensor, SwapOptions, SwapStore, Tensor};

#[test]
fn pinned_tensors_round_trip_and_mix_with_host_tensors() {
    if common::cuda::system_has_libcuda() {
        eprintln!("skipped: a system libcuda would shadow the fake");
        return;
    }
    let lib = common::cuda::fake_libcuda_dir().join("libcuda.so.1");
    std::env::set_var(gdswap::cuda::driver::LIBCUDA_ENV, &lib);
    let dir = common::scratch();
    let store = SwapStore::open(
        dir.path(),
        SwapOptions {
            backend: gdswap::backend::BackendId::Posix,
            ..SwapOptions::default()
        },
    )
    .unwrap();
    for len in [1usize, 511, 4097] {
        let mut p = PinnedTensor::zeros(DType::U8, &[len], 0).unwrap();
        for (i, b) in p.as_bytes_mut().iter_mut().enumerate() {
            *b = (i * 7 + len) as u8;
        }
        let name = format!("p{len}");
        store.swap_out(&name, &p).unwrap().wait().unwrap();
        let mut back = PinnedTensor::zeros(DType::U8, &[len], 0).unwrap();
        store.swap_in(&name, &mut back).unwrap().wait().unwrap();
        assert!(back.as_bytes() == p.as_bytes(), "length {len}");
        // The same bytes into ordinary memory.
        let mut h = HostTensor::bytes(len);
        store.swap_in(&name, &mut h).unwrap().wait().unwrap();
        assert!(h.as_bytes() == p.as_bytes());
    }
    // Typed views of pinned memory; dtype and shape come back from the manifest.
    let mut w = PinnedTensor::zeros(DType::BF16, &[3, 5], 0).unwrap();
    for (i, x) in w.view_mut::<u16>().unwrap().iter_mut().enumerate() {
        *x = 0x3f80 + i as u16;
    }
    store.swap_out("w", &w).unwrap().wait().unwrap();
    let mut back = PinnedTensor::zeros(DType::U8, &[30], 0).unwrap();
    store.swap_in("w", &mut back).unwrap().wait().unwrap();
    assert_eq!(
        (back.dtype(), back.shape()),
        (DType::BF16, &[3usize, 5][..])
    );
    assert_eq!(back.view::<u16>().unwrap(), w.view::<u16>().unwrap());
    assert!(back.view::<f32>().is_err());
}
