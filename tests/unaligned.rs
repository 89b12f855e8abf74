//! Sizes that are not a multiple of the block size or of the O_DIRECT alignment: the last
//! bytes go through the buffered descriptor as a tail request, so writes leave files of the
//! exact length and verified reads and writes pass.

#[macro_use]
mod common;

use common::*;

const SIZES: [u64; 3] = [MIB + 1, MIB + 4095, MIB + 4097];
const BLOCKS: [u64; 2] = [4 * KIB, 64 * KIB];

/// Write (over a longer stale file) then read each unaligned size at each block size, with
/// `--verify`, and check the length, the bytes and the request count.
fn unaligned_sizes(backend: &str, extra: Vec<std::ffi::OsString>) {
    let dir = scratch();
    let f = dir.path().join("data");
    let json = dir.path().join("r.json");
    for size in SIZES {
        for bs in BLOCKS {
            let seed = size ^ bs;
            fill_file(&f, 2 * MIB, 0x5a);
            for op in ["write", "read"] {
                ok(with(
                    run_argv(backend, op, size, bs, 1),
                    with(
                        argv![
                            "--file",
                            &f,
                            "--seed",
                            seed.to_string(),
                            "--verify",
                            "--json",
                            &json
                        ],
                        extra.clone(),
                    ),
                ));
                let r = read_report(&json);
                assert_sane(&r, size, 1, 1);
                assert_eq!(
                    r.summary.requests,
                    expected_requests(size, bs, r.dio_align_bytes),
                    "size {size}, bs {bs}, align {}",
                    r.dio_align_bytes
                );
                assert!(
                    r.warnings.iter().any(|w| w.code == "unaligned-tail"),
                    "size {size}: {:?}",
                    r.warnings
                );
                assert_eq!(file_len(&f), size, "{op} of size {size}, bs {bs}");
                assert_pattern(&f, 0, size, seed);
            }
        }
    }
}

#[test]
fn host_unaligned_sizes() {
    require_host_backend!();
    unaligned_sizes("host", vec![]);
}

#[test]
fn host_fixed_buffers_unaligned_sizes() {
    require_host_backend!();
    unaligned_sizes("host", argv!["--fixed-buffers"]);
}

#[test]
fn posix_unaligned_sizes() {
    unaligned_sizes("posix", vec![]);
}

#[test]
fn host_unaligned_sizes_in_random_order() {
    require_host_backend!();
    unaligned_sizes("host", argv!["--random"]);
}

/// With two threads the remainder, tail included, goes to the last thread: in a shared file
/// at the end of its range, in per-thread files at the end of the last thread's file.
fn unaligned_with_threads(backend: &str) {
    let dir = scratch();
    let size = 2 * MIB + 4097;
    let bs = 64 * KIB;
    let json = dir.path().join("r.json");

    let f = dir.path().join("shared");
    fill_file(&f, 4 * MIB, 0x33);
    for op in ["write", "read"] {
        ok(with(
            run_argv(backend, op, size, bs, 1),
            argv![
                "--file",
                &f,
                "--threads",
                "2",
                "--seed",
                "3",
                "--verify",
                "--json",
                &json
            ],
        ));
        let r = read_report(&json);
        assert_sane(&r, size, 1, 2);
        assert_eq!((r.threads[0].file_offset, r.threads[0].bytes), (0, MIB));
        assert_eq!(
            (r.threads[1].file_offset, r.threads[1].bytes),
            (MIB, MIB + 4097)
        );
        assert_eq!(file_len(&f), size);
        assert_pattern(&f, 0, size, 3);
    }

    let d = dir.path().join("dir");
    for op in ["write", "read"] {
        ok(with(
            run_argv(backend, op, size, bs, 1),
            argv![
                "--create-dir",
                "--dir",
                &d,
                "--threads",
                "2",
                "--seed",
                "4",
                "--verify"
            ],
        ));
        assert_eq!(file_len(&thread_file(&d, 0)), MIB);
        assert_eq!(file_len(&thread_file(&d, 1)), MIB + 4097);
        assert_pattern(&thread_file(&d, 0), 0, MIB, 4);
        assert_pattern(&thread_file(&d, 1), 0, MIB + 4097, 5);
    }
}

#[test]
fn host_unaligned_with_threads() {
    require_host_backend!();
    unaligned_with_threads("host");
}

#[test]
fn posix_unaligned_with_threads() {
    unaligned_with_threads("posix");
}

/// Sizes just over one alignment unit, at a block size of 512 bytes (the smallest O_DIRECT
/// alignment there is): each run ends in a tail of a few bytes.
#[test]
fn small_sizes_just_over_a_block() {
    for backend in ["host", "posix"] {
        if backend == "host" && host_unavailable().is_some() {
            continue;
        }
        let dir = scratch();
        let f = dir.path().join("data");
        let json = dir.path().join("r.json");
        fill_file(&f, 64 * KIB, 0xee);
        for size in [513u64, 1000, 4096 + 511] {
            for op in ["write", "read"] {
                let out = outcome(&mut gdswap(with(
                    run_argv(backend, op, size, 512, 1),
                    argv!["--file", &f, "--verify", "--seed", "1", "--json", &json],
                )));
                if out.code == Some(1) && out.stderr.contains("is not a multiple of") {
                    // This filesystem needs more than 512-byte alignment: nothing to test.
                    eprintln!("note: skipping 512-byte blocks: {}", out.stderr.trim());
                    return;
                }
                out.expect_ok();
                let r = read_report(&json);
                assert_sane(&r, size, 1, 1);
                assert_eq!(
                    r.summary.requests,
                    expected_requests(size, 512, r.dio_align_bytes)
                );
                assert_eq!(file_len(&f), size);
                assert_pattern(&f, 0, size, 1);
            }
        }
    }
}

/// A tail that shares a page with the O_DIRECT write before it (1 MiB + 4095 at 512-byte
/// alignment: 3584 direct bytes and a 511-byte buffered tail in the same 4 KiB page), written
/// over and over with requests in flight together. If the buffered tail ever runs alongside
/// the direct write of its page, the kernel cannot invalidate the page and fails fdatasync
/// with EIO ("Page cache invalidation failure on direct I/O").
#[test]
fn host_tail_sharing_a_page_with_direct_io_survives_many_loops() {
    require_host_backend!();
    let dir = scratch();
    let f = dir.path().join("data");
    let size = MIB + 4095;
    for (bs, extra) in [
        (4 * KIB, argv![]),
        (64 * KIB, argv!["--random"]),
        (64 * KIB, argv!["--fixed-buffers"]),
    ] {
        ok(with(
            run_argv("host", "write", size, bs, 10),
            with(
                argv![
                    "--file",
                    &f,
                    "--verify",
                    "--seed",
                    "2",
                    "--queue-depth",
                    "32"
                ],
                extra,
            ),
        ));
        assert_eq!(file_len(&f), size);
        assert_pattern(&f, 0, size, 2);
    }
}

/// A buffered tail write must never share a page with another thread's O_DIRECT write (the
/// kernel cannot keep them coherent and fails fdatasync with EIO). So with O_DIRECT, thread
/// ranges start on page boundaries: 1124 bytes cannot be split over two threads (refused, with
/// the --threads flag named), and 8292 bytes in 512-byte blocks over two threads runs many
/// loops cleanly, thread 1 writing [4096, 8192) directly and [8192, 8292) buffered.
#[test]
fn host_tail_never_shares_a_page_with_another_threads_direct_io() {
    require_host_backend!();
    let dir = scratch();
    let f = dir.path().join("data");
    let msg = fail(with(
        run_argv("host", "write", 1124, 512, 1),
        argv!["--file", &f, "--threads", "2"],
    ));
    assert!(
        msg.starts_with("--threads: 2 threads cannot share --size 1124B"),
        "{msg}"
    );
    for _ in 0..5 {
        ok(with(
            run_argv("host", "write", 8292, 512, 200),
            argv!["--file", &f, "--threads", "2", "--verify"],
        ));
    }
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 8292);
}
