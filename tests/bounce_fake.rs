//! The bounce backend end to end against the fake libcuda (`tests/fakes/fake_cuda.c`):
//! reads and writes with verification in both modes, random order, unaligned sizes, several
//! threads, registered buffers, a corruption planted in device memory, every injected fault
//! (each a one-line error, with nothing wrong left in files) and `--gpu` out of range.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::path::Path;

use common::cuda::{fake_libcuda_dir, with_fake_cuda};
use common::*;

/// Runs gdswap against the fake, with the given fake variables.
fn fake(args: Vec<OsString>, vars: &[(&str, String)]) -> Outcome {
    let mut cmd = gdswap(args);
    with_fake_cuda(&mut cmd);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    outcome(&mut cmd)
}

fn bounce(op: &str, size: u64, bs: u64) -> Vec<OsString> {
    run_argv("bounce", op, size, bs, 2)
}

/// Runs `args` (a bounce run) with `--json` and returns the report.
fn fake_report(args: Vec<OsString>, vars: &[(&str, String)]) -> gdswap::report::RunReport {
    let out = fake(with(args, argv!["--json", "-"]), vars).expect_ok();
    report_from_json(&out.stdout)
}

fn assert_bounce_report(r: &gdswap::report::RunReport, mode: &str, size: u64, threads: usize) {
    assert_sane(r, size, 2, threads);
    assert_eq!(r.params.backend, gdswap::backend::BackendId::Bounce);
    assert!(r.summary.verified);
    assert!(
        r.backend_mode.starts_with(&format!("bounce {mode}")),
        "{}",
        r.backend_mode
    );
    assert!(
        r.backend_mode
            .contains("device 0 (Fake CUDA device 0 (gdswap tests)); io_uring"),
        "{}",
        r.backend_mode
    );
    let p = r.pipeline.as_ref().expect("bounce reports its pipeline");
    assert!(p.io_time_s > 0.0 && p.copy_time_s > 0.0, "{p:?}");
    assert!(p.transfer_time_s >= p.io_time_s * 0.99, "{p:?}");
    assert!((0.0..=1.0).contains(&p.overlap_fraction), "{p:?}");
}

#[test]
fn pipelined_read_and_write_verify() {
    let d = scratch();
    let size = 4 * MIB;
    let r = fake_report(
        with(
            bounce("read", size, 256 * KIB),
            argv![
                "--create-dir",
                "--dir",
                d.path(),
                "--verify",
                "--bounce-buffers",
                "3",
                "--queue-depth",
                "2"
            ],
        ),
        &[],
    );
    assert_bounce_report(&r, "pipelined, 3 pinned chunks of 256KiB", size, 1);
    assert!(r.backend_mode.ends_with("qd 2"), "{}", r.backend_mode);
    let gpu = r.params.gpu.expect("GPU parameters in the report");
    assert_eq!((gpu.device, gpu.bounce_buffers), (0, 3));
    assert_eq!(gpu.bounce_mode, gdswap::options::BounceMode::Pipelined);

    let f = d.path().join("w.dat");
    let r = fake_report(
        with(
            bounce("write", size, 256 * KIB),
            argv![
                "--file",
                &f,
                "--verify",
                "--seed",
                "77",
                "--queue-depth",
                "16"
            ],
        ),
        &[],
    );
    // The default K is twice the queue depth.
    assert_bounce_report(&r, "pipelined, 32 pinned chunks of 256KiB", size, 1);
    assert_pattern(&f, 0, size, 77);
}

#[test]
fn serial_read_and_write_verify() {
    let d = scratch();
    let size = 4 * MIB;
    let r = fake_report(
        with(
            bounce("read", size, 256 * KIB),
            argv![
                "--create-dir",
                "--dir",
                d.path(),
                "--verify",
                "--bounce-mode",
                "serial"
            ],
        ),
        &[],
    );
    assert_bounce_report(&r, "serial, pinned staging of 4MiB", size, 1);
    let f = d.path().join("w.dat");
    let r = fake_report(
        with(
            bounce("write", size, 256 * KIB),
            argv![
                "--file",
                &f,
                "--verify",
                "--seed",
                "5",
                "--bounce-mode",
                "serial"
            ],
        ),
        &[],
    );
    assert_bounce_report(&r, "serial, pinned staging of 4MiB", size, 1);
    assert_pattern(&f, 0, size, 5);
}

/// Random order, two threads sharing one file, a size that is no multiple of the block size
/// nor of the O_DIRECT alignment (each range's last block is short; the very end is a tail),
/// through both modes and with registered buffers.
#[test]
fn random_unaligned_threads_and_fixed_buffers() {
    let d = scratch();
    let f = d.path().join("shared.dat");
    let size = 3 * MIB + 12345;
    for (mode, extra) in [("pipelined", argv!["--fixed-buffers"]), ("serial", argv![])] {
        let args = with(
            bounce("write", size, 128 * KIB),
            argv![
                "--file",
                &f,
                "--threads",
                "2",
                "--random",
                "--seed",
                "9",
                "--verify",
                "--bounce-mode",
                mode,
                "--bounce-buffers",
                "2"
            ],
        );
        let r = fake_report(with(args, extra.clone()), &[]);
        assert_eq!(r.threads.len(), 2);
        // Two chunks under queue depth 8: the report says the chunks limit the queue.
        let few = r.warnings.iter().any(|w| w.code == "few-bounce-buffers");
        assert_eq!(few, mode == "pipelined", "{mode}: {:?}", r.warnings);
        assert!(r.params.random && r.summary.verified);
        assert_eq!(file_len(&f), size);
        assert_pattern(&f, 0, size, 9);
        let args = with(
            bounce("read", size, 128 * KIB),
            argv![
                "--file",
                &f,
                "--threads",
                "2",
                "--random",
                "--seed",
                "9",
                "--verify",
                "--bounce-mode",
                mode,
                "--bounce-buffers",
                "2"
            ],
        );
        let r = fake_report(with(args, extra), &[]);
        assert_eq!(r.summary.bytes, 2 * size);
        if mode == "pipelined" {
            assert!(
                r.backend_mode.contains("fixed buffers+files"),
                "{}",
                r.backend_mode
            );
        }
    }
}

/// Through the page cache (`--buffered`) and with three threads on their own files.
#[test]
fn buffered_and_per_thread_files() {
    let d = scratch();
    let size = 3 * MIB + 4096 + 3;
    for op in ["write", "read"] {
        let r = fake_report(
            with(
                bounce(op, size, 64 * KIB),
                argv![
                    "--create-dir",
                    "--dir",
                    d.path(),
                    "--threads",
                    "3",
                    "--buffered",
                    "--verify"
                ],
            ),
            &[],
        );
        assert_eq!(r.threads.len(), 3);
        assert!(!r.params.direct && r.summary.verified);
        assert!(r.backend_mode.contains("buffered"), "{}", r.backend_mode);
    }
    let lens: Vec<u64> = (0..3)
        .map(|t| file_len(&thread_file(d.path(), t)))
        .collect();
    assert_eq!(lens.iter().sum::<u64>(), size);
    for (t, len) in lens.iter().enumerate() {
        // Per-thread files carry seed --seed + tid.
        assert_pattern(&thread_file(d.path(), t), 0, *len, 0x5eed + t as u64);
    }
}

/// A byte of device memory inverted by the fake after the copy that filled it: a read's
/// verify (which copies the device buffer back) and a write's (which reads the file the
/// device data went to) both name its offset.
#[test]
fn corruption_planted_in_device_memory_is_caught() {
    let d = scratch();
    // The fake counts the byte from the start of the allocation, which it places 256 bytes
    // past a 64 KiB boundary (256-byte aligned, as cuMemAlloc promises, and no more);
    // gdswap's buffer starts at the next 64 KiB boundary, 65280 bytes in.
    let flip = [(
        "FAKE_CUDA_FLIP_DEVICE_BYTE",
        (300_000 + 65_536 - 256).to_string(),
    )];
    let msg = fake(
        with(
            bounce("read", 2 * MIB, 256 * KIB),
            argv!["--create-dir", "--dir", d.path(), "--verify"],
        ),
        &flip,
    )
    .expect_error();
    let path = thread_file(d.path(), 0);
    assert!(
        msg.starts_with(&format!(
            "verify failed: {} at offset 300000: expected byte 0x",
            path.display()
        )),
        "{msg}"
    );
    // The same run without the corruption passes: the data on disk was right all along.
    fake(
        with(
            bounce("read", 2 * MIB, 256 * KIB),
            argv!["--create-dir", "--dir", d.path(), "--verify"],
        ),
        &[],
    )
    .expect_ok();

    let f = d.path().join("w.dat");
    let msg = fake(
        with(
            bounce("write", 2 * MIB, 256 * KIB),
            argv!["--file", &f, "--verify"],
        ),
        &flip,
    )
    .expect_error();
    assert!(
        msg.starts_with(&format!(
            "verify failed: {} at offset 300000: expected byte 0x",
            f.display()
        )),
        "{msg}"
    );
}

/// Classifies every 4 KiB granule of `path`: the pattern of one of `seeds`, else a panic.
fn granules_hold_only(path: &Path, len: u64, seeds: &[u64]) -> Vec<u64> {
    let data = read_range(path, 0, len);
    let mut which = Vec::new();
    for (i, g) in data.chunks(GRANULE as usize).enumerate() {
        let off = i as u64 * GRANULE;
        let seed = seeds
            .iter()
            .find(|&&s| gdswap::pattern::verify(g, off, s, path).is_ok())
            .unwrap_or_else(|| {
                panic!(
                    "{} at {off}: neither the old nor the new data (seeds {seeds:?})",
                    path.display()
                )
            });
        which.push(*seed);
    }
    which
}

#[test]
fn injected_faults_give_one_line_errors_and_leave_files_right() {
    let d = scratch();
    let size = 2 * MIB;
    let bs = 256 * KIB;
    let f = d.path().join("old.dat");
    make_data_file(&f, size, 1);
    // Without --verify: a verified write first clears the range it will write (so its
    // read-back proves this run's data), and then a failed run would leave zeroes, not the
    // old data this test looks for.
    let write_new = || {
        with(
            bounce("write", size, bs),
            argv!["--file", &f, "--seed", "2"],
        )
    };
    let read = || {
        with(
            bounce("read", size, bs),
            argv!["--file", &f, "--seed", "1", "--verify"],
        )
    };

    // No device: cuInit fails, the backend is unavailable.
    let no_dev = [("FAKE_CUDA_NO_DEVICE", "1".to_string())];
    let msg = fake(write_new(), &no_dev).expect_error();
    assert_eq!(
        msg,
        "backend 'bounce' unavailable: cuInit failed: CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected (is the NVIDIA kernel module loaded, and /dev/nvidia* accessible? check nvidia-smi)"
    );
    let mut cmd = gdswap(argv!["backends"]);
    with_fake_cuda(&mut cmd).env("FAKE_CUDA_NO_DEVICE", "1");
    let out = outcome(&mut cmd).expect_ok();
    assert!(
        out.stdout
            .contains("unavailable: cuInit failed: CUDA_ERROR_NO_DEVICE (100)"),
        "{}",
        out.stdout
    );

    // The driver loads but sees no device.
    let msg = fake(write_new(), &[("FAKE_CUDA_DEVICES", "0".to_string())]).expect_error();
    assert_eq!(
        msg,
        "backend 'bounce' unavailable: the CUDA driver sees no device (check nvidia-smi and CUDA_VISIBLE_DEVICES)"
    );
    assert_pattern(&f, 0, size, 1);

    // Context creation fails.
    let msg = fake(write_new(), &[("FAKE_CUDA_FAIL_CTX", "1".to_string())]).expect_error();
    assert_eq!(
        msg,
        "cuDevicePrimaryCtxRetain (creating the context of device 0) failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory"
    );
    assert_pattern(&f, 0, size, 1);

    // Device allocation fails.
    let msg = fake(write_new(), &[("FAKE_CUDA_FAIL_ALLOC", "1".to_string())]).expect_error();
    assert_eq!(
        msg,
        "cuMemAlloc of 2MiB on device 0 (lower --size or --threads) failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory"
    );
    assert_pattern(&f, 0, size, 1);
    // A code no CUDA version defines (cudarc's CUresult enum does not list it: gdswap reads
    // driver results as plain integers, so this is an error message, not undefined
    // behaviour).
    let msg = fake(
        write_new(),
        &[("FAKE_CUDA_FAIL_ALLOC", "54321".to_string())],
    )
    .expect_error();
    assert_eq!(
        msg,
        "cuMemAlloc of 2MiB on device 0 (lower --size or --threads) failed: CUDA error 54321 (a code this driver does not describe)"
    );
    assert_pattern(&f, 0, size, 1);

    // A copy to the device fails halfway through the first read loop.
    let fail_at = |n: u64| [("FAKE_CUDA_FAIL_COPY_AFTER_BYTES", n.to_string())];
    // (Which call sees the asynchronous error first depends on timing: the query of a
    // chunk's event, a wait for one, or the final stream synchronisation.)
    const ILLEGAL: &str =
        "failed: CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory access was encountered";
    let msg = fake(read(), &fail_at(size / 2 + 1000)).expect_error();
    assert!(
        [
            "cuEventQuery (a copy to the device) ",
            "cuEventSynchronize (a copy to the device) ",
            "cuEventSynchronize (the last copies to the device) "
        ]
        .iter()
        .any(|call| msg == format!("{call}{ILLEGAL}")),
        "{msg}"
    );
    let msg = fake(
        with(read(), argv!["--bounce-mode", "serial"]),
        &fail_at(size / 2),
    )
    .expect_error();
    assert_eq!(
        msg,
        "cuEventSynchronize (waiting for a copy to the device) failed: CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory access was encountered"
    );
    assert_pattern(&f, 0, size, 1);

    // A copy from the device fails halfway through the first write loop (after the fill
    // copied `size` bytes in): blocks before it hold the new data, the rest the old, and
    // nothing else reached the file.
    for mode in ["pipelined", "serial"] {
        make_data_file(&f, size, 1);
        let msg = fake(
            with(write_new(), argv!["--bounce-mode", mode]),
            &fail_at(size + size / 2 + 1000),
        )
        .expect_error();
        let calls: &[&str] = if mode == "pipelined" {
            &[
                "cuEventQuery (a copy from the device) ",
                "cuEventSynchronize (a copy from the device) ",
                "cuEventSynchronize (the last copies from the device) ",
            ]
        } else {
            &["cuEventSynchronize (waiting for a copy from the device) "]
        };
        assert!(
            calls.iter().any(|call| msg == format!("{call}{ILLEGAL}")),
            "{mode}: {msg}"
        );
        let seeds = granules_hold_only(&f, size, &[1, 2]);
        assert!(seeds.contains(&1), "{mode}: every block was rewritten");
        if mode == "pipelined" {
            assert_eq!(seeds[0], 2, "the first blocks were written");
        } else {
            assert!(seeds.iter().all(|&s| s == 1), "serial writes nothing");
        }
    }
}

#[test]
fn gpu_ordinal_out_of_range_is_refused_before_touching_files() {
    let d = scratch();
    let data = d.path().join("data");
    let two = [("FAKE_CUDA_DEVICES", "2".to_string())];
    let msg = fake(
        with(
            bounce("read", MIB, 256 * KIB),
            argv!["--create-dir", "--dir", &data, "--gpu", "2"],
        ),
        &two,
    )
    .expect_error();
    assert_eq!(
        msg,
        "--gpu: device 2 does not exist: the CUDA driver sees 2 devices (0..=1); check nvidia-smi and CUDA_VISIBLE_DEVICES"
    );
    assert!(!data.exists());
    let out = fake(
        with(
            bounce("read", MIB, 256 * KIB),
            argv!["--create-dir", "--dir", &data, "--gpu", "1", "--verify"],
        ),
        &two,
    )
    .expect_ok();
    assert!(
        out.stdout
            .contains("device 1 (Fake CUDA device 1 (gdswap tests))"),
        "{}",
        out.stdout
    );
}

/// GDSWAP_LIBCUDA loads a libcuda from a path, without LD_LIBRARY_PATH.
#[test]
fn gdswap_libcuda_points_at_a_library() {
    let d = scratch();
    let mut cmd = gdswap(with(
        bounce("read", MIB, 256 * KIB),
        argv!["--create-dir", "--dir", d.path(), "--verify"],
    ));
    common::cuda::without_cuda(&mut cmd)
        .env("GDSWAP_LIBCUDA", fake_libcuda_dir().join("libcuda.so.1"));
    let out = outcome(&mut cmd).expect_ok();
    assert!(out.stdout.starts_with("bounce read: "), "{}", out.stdout);
}

/// GDSWAP_LIBCUDA cannot win over a `libcuda.so` that the loader finds by name first (cudarc
/// tries that name before `libcuda.so.1`): gdswap says so instead of silently using the other.
#[test]
fn gdswap_libcuda_shadowed_by_a_library_on_the_path_is_refused() {
    let d = scratch();
    let other = d.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(
        fake_libcuda_dir().join("libcuda.so.1"),
        other.join("libcuda.so"),
    )
    .unwrap();
    let wanted = fake_libcuda_dir().join("libcuda.so.1");
    let mut cmd = gdswap(with(
        bounce("read", MIB, 256 * KIB),
        argv!["--create-dir", "--dir", d.path()],
    ));
    common::cuda::without_cuda(&mut cmd)
        .env("GDSWAP_LIBCUDA", &wanted)
        .env("LD_LIBRARY_PATH", &other);
    let msg = outcome(&mut cmd).expect_error();
    assert_eq!(
        msg,
        format!(
            "backend 'bounce' unavailable: GDSWAP_LIBCUDA={} was loaded, but the CUDA library found by name first is {} (a libcuda.so on the loader's path): unset GDSWAP_LIBCUDA and put the wanted library's directory first in LD_LIBRARY_PATH",
            wanted.display(),
            other.join("libcuda.so").display()
        )
    );
}

#[test]
fn bad_bounce_flags_name_the_flag() {
    let d = scratch();
    let msg = fake(
        with(
            bounce("read", MIB, 256 * KIB),
            argv!["--create-dir", "--dir", d.path(), "--bounce-buffers", "0"],
        ),
        &[],
    )
    .expect_error();
    assert_eq!(msg, "--bounce-buffers: 0 is out of range 1..=4096");
}

/// Pinning (cuMemHostRegister) is not charged to RLIMIT_MEMLOCK (the NVIDIA driver pins
/// without locked-memory accounting, and the fake no longer mlocks), so an unprivileged user
/// with a tiny memlock limit runs bounce; only --fixed-buffers (io_uring's registration of
/// the pinned chunks, which the kernel charges) is checked against the limit, up front.
#[test]
fn memlock_limit_applies_to_fixed_buffers_only() {
    require_root!("memlock_limit_applies_to_fixed_buffers_only");
    let dir = scratch_world_readable();
    let d = dir.path().join("data");
    std::fs::create_dir(&d).unwrap();
    chown(&d, NOBODY, NOBODY);
    let f = d.join("f.dat");
    make_data_file(&f, 2 * MIB, 3);
    chown(&f, NOBODY, NOBODY);
    let run = |op: &str, extra: Vec<OsString>, limit: u64| {
        let mut cmd = gdswap(with(
            bounce(op, 2 * MIB, 256 * KIB),
            with(argv!["--file", &f, "--seed", "3", "--verify"], extra),
        ));
        with_fake_cuda(&mut cmd);
        as_nobody(&mut cmd);
        with_rlimit(&mut cmd, libc::RLIMIT_MEMLOCK, limit);
        // io_uring charges locked memory to the user (uid 65534), and the kernel returns a
        // closed ring's charge asynchronously (io_ring_exit_work, after the process exited):
        // the previous run's ring may still count for a moment. Only that ENOMEM is retried.
        for _ in 0..50 {
            let o = outcome(&mut cmd);
            if !o
                .stderr
                .contains("io_uring_setup failed (Cannot allocate memory")
            {
                return o;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        outcome(&mut cmd)
    };
    // 2 MiB and more pinned per thread, with a 64 KiB limit: reads and writes run.
    for op in ["read", "write"] {
        run(op, argv!["--bounce-buffers", "3"], 64 * KIB).expect_ok();
        run(
            op,
            argv!["--bounce-mode", "serial", "--threads", "2"],
            64 * KIB,
        )
        .expect_ok();
    }
    const RAISE: &str = "raise it (ulimit -l unlimited, or memlock in /etc/security/limits.conf)";
    let msg = run(
        "read",
        argv!["--bounce-buffers", "3", "--fixed-buffers"],
        64 * KIB,
    )
    .expect_error();
    assert_eq!(
        msg,
        format!("memlock limit too low: --fixed-buffers registration of --bounce-buffers 3 x --block-size 256KiB pinned per thread (2MiB mapped), over 1 thread needs 2MiB locked, RLIMIT_MEMLOCK is 64KiB; {RAISE} or run without --fixed-buffers, or lower --bounce-buffers, --block-size or --threads")
    );
    let msg = run(
        "read",
        argv![
            "--bounce-mode",
            "serial",
            "--threads",
            "2",
            "--huge-pages",
            "off",
            "--fixed-buffers"
        ],
        64 * KIB,
    )
    .expect_error();
    assert_eq!(
        msg,
        format!("memlock limit too low: --fixed-buffers registration of --bounce-mode serial's pinned staging (each thread's range, up to 1MiB per thread, over 2 threads) needs 2MiB locked, RLIMIT_MEMLOCK is 64KiB; {RAISE} or run without --fixed-buffers, or lower --size, or use --bounce-mode pipelined")
    );
    // Enough for the registration (plus 64 KiB: recent kernels also charge the ring's own
    // memory): the check passes and io_uring registers.
    run(
        "read",
        argv!["--bounce-buffers", "3", "--fixed-buffers"],
        2 * MIB + 64 * KIB,
    )
    .expect_ok();
    run(
        "read",
        argv![
            "--bounce-buffers",
            "3",
            "--huge-pages",
            "off",
            "--fixed-buffers"
        ],
        768 * KIB + 64 * KIB,
    )
    .expect_ok();
    assert_pattern(&f, 0, 2 * MIB, 3);
}

/// With copies slowed down, the pipeline hides disk I/O behind copies (some overlap), while
/// serial mode, by construction, overlaps nothing.
#[test]
fn pipelined_mode_overlaps_and_serial_does_not() {
    let d = scratch();
    let slow = [("FAKE_CUDA_COPY_GBPS", "1".to_string())];
    let args = |mode: &str| {
        with(
            bounce("read", 8 * MIB, MIB),
            argv![
                "--create-dir",
                "--dir",
                d.path(),
                "--bounce-mode",
                mode,
                "--queue-depth",
                "4"
            ],
        )
    };
    let serial = fake_report(args("serial"), &slow);
    let p = serial.pipeline.unwrap();
    assert_eq!(p.overlap_s, 0.0, "{p:?}");
    // 8 MiB at 1 GB/s: each loop's copies take at least 8.4 ms.
    assert!(p.copy_time_s >= 2.0 * 0.0083, "{p:?}");
    // Whether a pipelined run overlaps is timing: on a loaded 2-CPU machine the worker can
    // reap every read in one batch after all of them ended, before the first copy starts.
    // With 2 chunks for 8 requests later reads must wait for earlier copies, which makes
    // overlap the rule; a few attempts keep a busy CI from failing on a run that overlapped
    // nothing by chance (serial mode above overlaps nothing on every run).
    let mut seen = Vec::new();
    for _ in 0..3 {
        let piped = fake_report(
            with(args("pipelined"), argv!["--bounce-buffers", "2"]),
            &slow,
        );
        let p = piped.pipeline.unwrap();
        assert!(p.copy_time_s >= 2.0 * 0.0083, "{p:?}");
        if p.overlap_s > 0.0 && p.overlap_fraction > 0.0 {
            return;
        }
        seen.push(p);
    }
    panic!("pipelined mode never overlapped I/O with copies: {seen:?}");
}

/// With one copy engine per direction shared by all streams (FAKE_CUDA_COPY_ENGINES=1, as on
/// GPUs with one engine each way), two threads' copies queue behind each other, and each
/// thread's events span its waits. The copy time is the union of all threads' copy spans:
/// the time the engine was busy, i.e. the bytes over the engine's rate (plus handoffs), never
/// more than the loops' wall time. Summing the threads' own spans (the old figure) counted
/// the waits too: about twice the busy time.
#[test]
fn copy_time_is_the_shared_engines_busy_time() {
    let d = scratch();
    let (size, gbps) = (32 * MIB, 0.5);
    let vars = [
        ("FAKE_CUDA_COPY_GBPS", gbps.to_string()),
        ("FAKE_CUDA_COPY_ENGINES", "1".to_string()),
    ];
    for (op, mode) in [
        ("write", "pipelined"),
        ("read", "pipelined"),
        ("read", "serial"),
    ] {
        // The fake's copy thread can be descheduled on a loaded machine, which stretches the
        // engine's busy time as the events see it: up to 3 attempts. The old figure (a sum over
        // threads, about 2x) fails every one.
        let mut last = String::new();
        for _attempt in 0..3 {
            let r = fake_report(
                with(
                    bounce(op, size, 4 * MIB),
                    argv![
                        "--create-dir",
                        "--dir",
                        d.path(),
                        "--threads",
                        "2",
                        "--bounce-mode",
                        mode,
                        "--bounce-buffers",
                        "2",
                        "--queue-depth",
                        "2"
                    ],
                ),
                &vars,
            );
            let p = r.pipeline.as_ref().expect("bounce reports its pipeline");
            let loops = r.loops.len() as f64;
            assert_eq!(loops, 2.0);
            // 2 loops of 32 MiB through one engine at 0.5 GB/s: 134 ms of copying.
            let busy = loops * size as f64 / (gbps * 1e9);
            let wall: f64 = r.loops.iter().map(|l| l.e2e_time_s).sum();
            let what =
                format!("{op} {mode}: busy {busy:.4} s, loops' wall time {wall:.4} s, {p:?}");
            assert!(p.copy_time_s >= busy * 0.99, "{what}");
            assert!(
                p.overlap_s <= p.copy_time_s && p.overlap_fraction <= 1.0,
                "{what}"
            );
            if p.copy_time_s <= busy * 1.5 && p.copy_time_s <= wall {
                last.clear();
                break;
            }
            last = what;
        }
        assert!(last.is_empty(), "copy time over 1.5x the engine's busy time, or over the wall time, in 3 attempts: {last}");
    }
}
