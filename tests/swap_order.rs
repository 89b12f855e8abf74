//! Swaps of device tensors are ordered after the caller's GPU work (issue 10, item 4): a
//! kernel still writing a tensor when `swap_out` is called, or still reading it when
//! `swap_in` is called, finishes first. By default the swap waits for the legacy default
//! stream (and so every blocking stream) of the tensor's context; `*_after` takes a caller's
//! stream. The "kernel" is a slow memset or copy on the caller's stream of the fake libcuda
//! (copies at 50 MB/s here), queued behind a longer one so that it has not even started when
//! the swap is called.
//!
//! In-process, against the fake libcuda and the fake libcufile (for `gds`).

#[macro_use]
mod common;
mod cufile_fake;
mod cufile_wheel;

use std::sync::Once;

use common::cuda::RawCuda;
use gdswap::cuda::stream::ForeignStream;
use gdswap::swap::{
    DType, DeviceTensor, GpuWork, HostTensor, PinnedTensor, SwapOptions, SwapStore,
};

const LEN: usize = 256 << 10;
/// The caller's earlier, long work: 8 MiB at 50 MB/s, about 0.17 s.
const LONG: usize = 8 << 20;

fn fakes() -> Option<RawCuda> {
    static INIT: Once = Once::new();
    if common::cuda::system_has_libcuda() {
        eprintln!("skipped: a system libcuda would shadow the fake");
        return None;
    }
    INIT.call_once(|| {
        let cuda = common::cuda::fake_libcuda_dir().join("libcuda.so.1");
        std::env::set_var(gdswap::cuda::driver::LIBCUDA_ENV, cuda);
        std::env::set_var(
            gdswap::cufile::loader::PATH_ENV,
            &cufile_fake::fakes().cufile_full,
        );
        std::env::set_var("FAKE_CUFILE_QUIET", "1");
        std::env::set_var("FAKE_CUDA_COPY_GBPS", "0.05");
        gdswap::cuda::driver::load().expect("the fake libcuda loads");
    });
    Some(RawCuda::new())
}

fn store(dir: &std::path::Path, backend: &str) -> SwapStore {
    SwapStore::open(
        dir,
        SwapOptions {
            backend: backend.parse().unwrap(),
            staging_budget: 64 << 20,
            io_threads: 1,
            ..SwapOptions::default()
        },
    )
    .unwrap()
}

fn stored(store: &SwapStore, name: &str) -> Vec<u8> {
    let mut h = HostTensor::bytes(LEN);
    store.swap_in(name, &mut h).unwrap().wait().unwrap();
    h.as_bytes().to_vec()
}

/// The caller's thread, as a CUDA program's: GPU 0's primary context current, and a scratch
/// allocation for the long work.
struct Caller {
    cu: RawCuda,
    scratch: u64,
}

impl Caller {
    fn new(cu: RawCuda) -> Caller {
        assert_eq!(cu.set_current(cu.primary_context(0)), 0);
        let (rc, scratch) = cu.mem_alloc(LONG);
        assert_eq!(rc, 0);
        Caller { cu, scratch }
    }

    /// Queues the long work, then a memset of `len` bytes of `value` at `ptr`, on `stream`.
    fn late_memset(&self, ptr: u64, value: u8, stream: *mut std::ffi::c_void) {
        assert_eq!(self.cu.memset(self.scratch, 0, LONG, stream), 0);
        assert_eq!(self.cu.memset(ptr, value, LEN, stream), 0);
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.cu.stream_sync(std::ptr::null_mut());
        self.cu.mem_free(self.scratch);
    }
}

#[test]
fn swap_out_waits_for_the_callers_work_on_the_legacy_stream() {
    let Some(cu) = fakes() else { return };
    let caller = Caller::new(cu);
    for backend in ["bounce", "gds"] {
        let dir = common::scratch();
        let store = store(dir.path(), backend);
        let d = DeviceTensor::from_host(&HostTensor::bytes(LEN), 0).unwrap();
        // The caller's kernel writes the tensor after its long work; swap_out is called now.
        caller.late_memset(d.device_ptr(), 0x5a, std::ptr::null_mut());
        store.swap_out("t", &d).unwrap().wait().unwrap();
        // (The caller's work is done before anything is checked or freed, either way.)
        assert_eq!(caller.cu.stream_sync(std::ptr::null_mut()), 0);
        assert!(
            stored(&store, "t").iter().all(|&b| b == 0x5a),
            "{backend}: the swap-out copied the tensor before the caller's kernel wrote it"
        );
        store.close().unwrap();
    }
}

#[test]
fn swap_out_after_a_callers_non_blocking_stream() {
    let Some(cu) = fakes() else { return };
    let caller = Caller::new(cu);
    let (rc, nb) = caller.cu.stream_create(1);
    assert_eq!(rc, 0);
    for backend in ["bounce", "gds"] {
        let dir = common::scratch();
        let store = store(dir.path(), backend);
        let d = DeviceTensor::from_host(&HostTensor::bytes(LEN), 0).unwrap();
        caller.late_memset(d.device_ptr(), 0x3c, nb);
        // SAFETY: `nb` is a live stream of GPU 0's primary context, the tensor's.
        let s = unsafe { ForeignStream::from_raw(nb as usize) };
        store
            .swap_out_after("t", &d, GpuWork::Stream(s))
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(caller.cu.stream_sync(nb), 0);
        assert!(
            stored(&store, "t").iter().all(|&b| b == 0x3c),
            "{backend}: not ordered after the caller's stream"
        );
        store.close().unwrap();
    }
    assert_eq!(caller.cu.stream_sync(nb), 0);
}

#[test]
fn swap_in_waits_for_the_callers_reads_of_the_old_bytes() {
    let Some(cu) = fakes() else { return };
    let caller = Caller::new(cu);
    for backend in ["bounce", "gds"] {
        let dir = common::scratch();
        let store = store(dir.path(), backend);
        let new = HostTensor::from_slice(DType::U8, &[0x77u8; LEN]).unwrap();
        store.swap_out("y", &new).unwrap().wait().unwrap();
        let old = HostTensor::from_slice(DType::U8, &[0x11u8; LEN]).unwrap();
        let mut d = DeviceTensor::from_host(&old, 0).unwrap();
        // The caller's kernel reads the tensor (into pinned memory) after its long work;
        // swap_in, which overwrites the tensor, is called now.
        let mut seen = PinnedTensor::zeros(DType::U8, &[LEN], 0).unwrap();
        assert_eq!(
            caller
                .cu
                .memset(caller.scratch, 0, LONG, std::ptr::null_mut()),
            0
        );
        assert_eq!(
            caller
                .cu
                .download(seen.as_bytes_mut(), d.device_ptr(), std::ptr::null_mut()),
            0
        );
        store.swap_in("y", &mut d).unwrap().wait().unwrap();
        assert_eq!(caller.cu.stream_sync(std::ptr::null_mut()), 0);
        assert!(
            seen.as_bytes().iter().all(|&b| b == 0x11),
            "{backend}: the swap-in overwrote the tensor while the caller's kernel read it"
        );
        assert_eq!(d.to_host().unwrap().as_bytes(), new.as_bytes(), "{backend}");
        store.close().unwrap();
    }
}

#[test]
fn a_stream_to_order_after_is_refused_for_host_tensors() {
    let Some(cu) = fakes() else { return };
    let caller = Caller::new(cu);
    let dir = common::scratch();
    let store = store(dir.path(), "bounce");
    let h = HostTensor::bytes(100);
    let err = store
        .swap_out_after("h", &h, GpuWork::Stream(ForeignStream::LEGACY))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'h'") && err.contains("applies to device tensors only"),
        "{err}"
    );
    store
        .swap_out_after("h", &h, GpuWork::Nothing)
        .unwrap()
        .wait()
        .unwrap();
    drop(caller);
}
