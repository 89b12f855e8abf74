//! The CUDA driver's rules, as the fake libcuda (`tests/fakes/fake_cuda.c`) enforces them, and
//! gdswap's CUDA layer obeying them: a current context per thread (a stack), 256-byte
//! allocation alignment and no more, flags checked, streams in order, the legacy default
//! stream's implicit synchronisation, waits that spin unless the event blocks; and gdswap's
//! 64 KiB-aligned device buffers, waits that do not spin, and device and pinned tensors that
//! leave the calling thread's current context as they found it, panics included.
//!
//! In-process, against the fake (GDSWAP_LIBCUDA, two devices, copies at 10 MB/s so that a
//! copy or memset of a few MiB is visibly slow).

#[macro_use]
mod common;

use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use common::cuda::RawCuda;
use gdswap::cuda::device::{current_context, Device};
use gdswap::cuda::device_buffer::{DeviceBuffer, DEVICE_ALIGN};
use gdswap::cuda::stream::Stream;
use gdswap::swap::{DType, DeviceTensor, HostTensor, PinnedTensor};

const MIB: usize = 1 << 20;

/// The fake, loaded in this process, and this binary's lock: one test at a time, so the
/// fake's timing and allocation counts are each test's own.
fn fake() -> Option<(RawCuda, MutexGuard<'static, ()>)> {
    static INIT: Once = Once::new();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    if common::cuda::system_has_libcuda() {
        eprintln!("skipped: a system libcuda would shadow the fake");
        return None;
    }
    INIT.call_once(|| {
        let cuda = common::cuda::fake_libcuda_dir().join("libcuda.so.1");
        std::env::set_var(gdswap::cuda::driver::LIBCUDA_ENV, cuda);
        std::env::set_var("FAKE_CUDA_DEVICES", "2");
        std::env::set_var("FAKE_CUDA_COPY_GBPS", "0.01");
        gdswap::cuda::driver::load().expect("the fake libcuda loads");
    });
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    Some((RawCuda::new(), guard))
}

/// Runs `f` on a fresh thread (no current context), returning its result.
fn on_fresh_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("the thread panicked")
}

const INVALID_VALUE: u32 = 1;
const INVALID_CONTEXT: u32 = 201;

#[test]
fn calls_need_a_current_context_which_is_a_per_thread_stack() {
    let Some((cu, _one)) = fake() else { return };
    let (c0, c1) = (cu.primary_context(0), cu.primary_context(1));
    on_fresh_thread(move || {
        let cu = RawCuda::new();
        assert_eq!(cu.current(), 0);
        assert_eq!(cu.mem_alloc(4096).0, INVALID_CONTEXT, "no current context");
        assert_eq!(cu.stream_create(0).0, INVALID_CONTEXT);
        assert_eq!(cu.pop().0, INVALID_CONTEXT, "pop of an empty stack");
        assert_eq!(cu.push(c0), 0);
        assert_eq!(cu.push(c1), 0);
        assert_eq!(cu.current(), c1);
        assert_eq!(cu.pop(), (0, c1));
        assert_eq!(cu.current(), c0);
        // Set replaces the top; NULL pops it.
        assert_eq!(cu.set_current(c1), 0);
        assert_eq!(cu.current(), c1);
        assert_eq!(cu.set_current(0), 0);
        assert_eq!(cu.current(), 0);
        // Set on an empty stack pushes.
        assert_eq!(cu.set_current(c0), 0);
        assert_eq!(cu.current(), c0);
        let (rc, p) = cu.mem_alloc(4096);
        assert_eq!(rc, 0);
        assert_eq!(cu.mem_free(p), 0);
    });
    // gdswap's own allocation on a thread without a context: the driver's error, named.
    let e = on_fresh_thread(|| DeviceBuffer::new(4096, 0).err().map(|e| e.to_string()));
    let e = e.expect("cuMemAlloc without a current context fails");
    assert!(e.contains("CUDA_ERROR_INVALID_CONTEXT (201)"), "{e}");
    // The error keeps the CUresult as a number, with the driver's name for it, for callers
    // that act on the code rather than the text.
    let code = on_fresh_thread(|| match DeviceBuffer::new(4096, 0) {
        Err(gdswap::Error::Cuda {
            code,
            name,
            description,
            ..
        }) => Some((code, name, description.is_some())),
        _ => None,
    });
    assert_eq!(
        code,
        Some((201, Some("CUDA_ERROR_INVALID_CONTEXT".to_string()), true))
    );
}

#[test]
fn allocations_are_256_byte_aligned_and_no_more_and_gdswap_aligns_to_64_kib() {
    let Some((cu, _one)) = fake() else { return };
    let ctx = cu.primary_context(0);
    on_fresh_thread(move || {
        let cu = RawCuda::new();
        assert_eq!(cu.set_current(ctx), 0);
        for len in [1, 4096, 65536, 2 * MIB, 3 * MIB + 7] {
            let (rc, p) = cu.mem_alloc(len);
            assert_eq!(rc, 0);
            assert_eq!(p % 256, 0, "{p:#x}");
            assert_ne!(
                p % 512,
                0,
                "the fake promises 256 bytes and no more: {p:#x}"
            );
            assert_eq!(cu.mem_free(p), 0);
        }
    });
    on_fresh_thread(|| {
        let _d = Device::open(0).unwrap();
        for len in [0, 1, 4096, 65536, 2 * MIB, 3 * MIB + 7] {
            let b = DeviceBuffer::new(len, 0).unwrap();
            assert_eq!(
                b.device_ptr() % DEVICE_ALIGN,
                0,
                "{len}: {:#x}",
                b.device_ptr()
            );
            assert_eq!(b.len(), len);
        }
    });
}

#[test]
fn unknown_flags_are_refused() {
    let Some((cu, _one)) = fake() else { return };
    let ctx = cu.primary_context(0);
    on_fresh_thread(move || {
        let cu = RawCuda::new();
        assert_eq!(cu.set_current(ctx), 0);
        assert_eq!(cu.stream_create(2).0, INVALID_VALUE);
        assert_eq!(cu.stream_create(1).0, 0);
        assert_eq!(cu.event_create(8).0, INVALID_VALUE);
        assert_eq!(
            cu.event_create(4).0,
            INVALID_VALUE,
            "interprocess needs disable-timing"
        );
        assert_eq!(cu.event_create(1 | 2 | 4).0, 0);
        let mut host = vec![0u8; 8192];
        assert_eq!(cu.host_register(&mut host, 0x10), INVALID_VALUE);
        assert_eq!(cu.host_register(&mut host, 1), 0);
        assert_eq!(cu.host_unregister(&mut host), 0);
    });
}

/// Streams run in order; the legacy default stream waits for blocking streams and they for
/// it; non-blocking streams wait for nobody unless told to.
#[test]
fn streams_run_in_order_and_only_blocking_streams_sync_with_the_legacy_stream() {
    let Some((cu, _one)) = fake() else { return };
    let ctx = cu.primary_context(0);
    on_fresh_thread(move || {
        let cu = RawCuda::new();
        assert_eq!(cu.set_current(ctx), 0);
        let (_, nb) = cu.stream_create(1);
        let (_, blocking) = cu.stream_create(0);
        let legacy = std::ptr::null_mut();
        let big = 4 * MIB; // 0.4 s at 10 MB/s
        let (_, x) = cu.mem_alloc(big);
        let tail = x + (big - 4096) as u64;
        let mut out = vec![0u8; 3 * 4096];
        assert_eq!(cu.host_register(&mut out, 0), 0);
        let (a, rest) = out.split_at_mut(4096);
        let (b, c) = rest.split_at_mut(4096);

        // In order on one stream: a slow memset, then a small one over its start, then a read.
        assert_eq!(cu.memset(x, 0x11, big, nb), 0);
        assert_eq!(cu.memset(x, 0x22, 4096, nb), 0);
        assert_eq!(cu.download(a, x, nb), 0);
        assert_eq!(cu.stream_sync(nb), 0);
        assert!(a.iter().all(|&v| v == 0x22), "the later memset ran last");

        // Slow work on the legacy stream: a non-blocking stream's read does not wait for it,
        // a blocking stream's does.
        assert_eq!(cu.memset(x, 0x33, big, legacy), 0);
        assert_eq!(cu.download(a, tail, nb), 0);
        assert_eq!(cu.download(b, tail, blocking), 0);
        assert_eq!(cu.stream_sync(nb), 0);
        assert_eq!(cu.stream_sync(blocking), 0);
        assert!(
            a.iter().all(|&v| v == 0x11),
            "non-blocking: before the memset reached it"
        );
        assert!(
            b.iter().all(|&v| v == 0x33),
            "blocking: after the legacy memset"
        );

        // And the other way: the legacy stream waits for a blocking stream's work.
        assert_eq!(cu.memset(x, 0x44, big, blocking), 0);
        assert_eq!(cu.download(c, tail, legacy), 0);
        assert_eq!(cu.stream_sync(legacy), 0);
        assert!(
            c.iter().all(|&v| v == 0x44),
            "legacy: after the blocking stream's memset"
        );
        assert_eq!(cu.stream_sync(blocking), 0);
        assert_eq!(cu.host_unregister(&mut out), 0);
        assert_eq!(cu.mem_free(x), 0);
    });
}

fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    assert_eq!(
        // SAFETY: writes one timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) },
        0
    );
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// gdswap's waits block instead of spinning (the fake spins in cuStreamSynchronize and in
/// cuEventSynchronize of an event without CU_EVENT_BLOCKING_SYNC, as the driver's default
/// scheduling does), so its CPU figures count work, not waiting.
#[test]
fn waiting_for_a_stream_does_not_spin() {
    let Some((_cu, _one)) = fake() else { return };
    let (wall, cpu) = on_fresh_thread(|| {
        let _d = Device::open(0).unwrap();
        let b = DeviceBuffer::new(2 * MIB, 0).unwrap();
        let s = Stream::new().unwrap();
        let (t, c) = (Instant::now(), thread_cpu());
        b.zero(0, 2 * MIB, &s).unwrap(); // a memset of 0.2 s, and a wait for it
        (t.elapsed(), thread_cpu() - c)
    });
    assert!(wall >= Duration::from_millis(190), "{wall:?}");
    assert!(
        cpu < wall / 5,
        "waiting for a 2 MiB memset took {cpu:?} of CPU in {wall:?}"
    );
}

/// Creating, copying and dropping device and pinned tensors leaves the caller's current
/// context as it was: none, or another GPU's.
#[test]
fn tensors_leave_the_callers_context_alone() {
    let Some((cu, _one)) = fake() else { return };
    let c1 = cu.primary_context(1);
    for caller in [0usize, c1] {
        on_fresh_thread(move || {
            let cu = RawCuda::new();
            assert_eq!(cu.set_current(caller), 0);
            let here = || current_context().unwrap();
            let host = HostTensor::from_slice(DType::U8, &[7u8; 5000]).unwrap();
            let mut d = DeviceTensor::from_host(&host, 0).unwrap();
            assert_eq!(here(), caller, "after DeviceTensor::from_host");
            d.upload(&[9u8; 5000]).unwrap();
            assert_eq!(d.to_host().unwrap().as_bytes(), &[9u8; 5000][..]);
            assert_eq!(here(), caller, "after upload and to_host");
            drop(d);
            assert_eq!(here(), caller, "after dropping a device tensor");
            let p = PinnedTensor::zeros(DType::U8, &[100], 0).unwrap();
            assert_eq!(here(), caller, "after PinnedTensor::zeros");
            drop(p);
            assert_eq!(here(), caller, "after dropping a pinned tensor");
        });
    }
}

/// A device tensor dropped while its thread unwinds from a panic is still freed, in its own
/// context, on a thread that never had one current.
#[test]
fn a_tensor_dropped_by_a_panicking_thread_is_freed() {
    let Some((cu, _one)) = fake() else { return };
    let before = cu.live_allocations();
    let r = std::thread::spawn(|| {
        let _d = DeviceTensor::zeros(DType::F32, &[1000], 0).unwrap();
        let _p = PinnedTensor::zeros(DType::U8, &[100], 0).unwrap();
        panic!("a user's bug");
    })
    .join();
    assert!(r.is_err());
    assert_eq!(cu.live_allocations(), before, "the allocation leaked");
}
