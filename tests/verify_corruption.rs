//! `--verify` finds planted corruption: a file written by a run has one byte flipped with
//! plain file I/O, and a verified read must fail naming the file and that exact offset, with
//! the expected and found bytes, and leave the file as it was.

#[macro_use]
mod common;

use common::*;

const SEED: u64 = 0x1234;

/// What the pattern header found at a corrupted place says (see `pattern::describe_header`).
const BODY_NOTE: &str = "; the block header there is intact, its contents are not";
const NO_HEADER_NOTE: &str =
    "; the 4 KiB block there has no gdswap header (zeroes, or data not written by gdswap)";

/// Flips the byte at `offset` of a fresh `size`-byte pattern file, runs a verified read with
/// `extra` flags, and checks the one-line error, byte for byte.
fn planted(
    backend: &str,
    size: u64,
    bs: u64,
    offset: u64,
    note: &str,
    extra: Vec<std::ffi::OsString>,
) {
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, size, SEED);
    let original = flip_byte(&f, offset);
    let before = std::fs::read(&f).unwrap();
    let msg = fail(with(
        run_argv(backend, "read", size, bs, 1),
        with(
            argv!["--file", &f, "--seed", SEED.to_string(), "--verify"],
            extra,
        ),
    ));
    assert_eq!(
        msg,
        format!(
            "verify failed: {} at offset {offset}: expected byte 0x{original:02x}, found 0x{:02x}{note}{}",
            f.display(),
            original ^ 0xff,
            gdswap::harness::verify_read_hint().render(&gdswap::cli::flag)
        )
    );
    assert_eq!(
        std::fs::read(&f).unwrap(),
        before,
        "a read changed the file"
    );
}

#[test]
fn host_finds_a_flipped_byte_in_the_body() {
    require_host_backend!();
    planted("host", 4 * MIB, 256 * KIB, MIB + 12_345, BODY_NOTE, vec![]);
}

#[test]
fn posix_finds_a_flipped_byte_in_the_body() {
    planted("posix", 4 * MIB, 256 * KIB, MIB + 12_345, BODY_NOTE, vec![]);
}

#[test]
fn host_fixed_buffers_find_a_flipped_byte() {
    require_host_backend!();
    planted(
        "host",
        4 * MIB,
        256 * KIB,
        3 * MIB + 777,
        BODY_NOTE,
        argv!["--fixed-buffers"],
    );
}

#[test]
fn a_flipped_magic_byte_is_reported_as_a_missing_header() {
    planted(
        "posix",
        2 * MIB,
        64 * KIB,
        8 * GRANULE,
        NO_HEADER_NOTE,
        vec![],
    );
}

/// The last byte of a 1 MiB + 4097 file sits in the 1-byte tail that goes through the page
/// cache; a granule that short has no header to describe, so the message ends at the bytes.
#[test]
fn host_finds_a_flipped_byte_in_the_unaligned_tail() {
    require_host_backend!();
    let size = MIB + 4097;
    planted("host", size, 64 * KIB, size - 1, "", vec![]);
}

#[test]
fn posix_finds_a_flipped_byte_in_the_unaligned_tail() {
    let size = MIB + 4097;
    planted("posix", size, 64 * KIB, size - 1, "", vec![]);
}

/// A tail longer than the alignment: 1 MiB + 4095 at 4 KiB blocks ends in a block of 4095
/// bytes, split into an O_DIRECT part and a buffered tail; corrupt the tail's last byte.
#[test]
fn host_finds_a_flipped_byte_at_the_end_of_a_long_tail() {
    require_host_backend!();
    let size = MIB + 4095;
    planted("host", size, 4 * KIB, size - 1, BODY_NOTE, vec![]);
}

/// Offsets are file offsets, not buffer offsets: a corruption in the second thread's range
/// of a shared file, read in random order, is reported where it is in the file.
#[test]
fn offsets_are_file_offsets_with_threads_and_random_order() {
    for backend in ["host", "posix"] {
        if backend == "host" && host_unavailable().is_some() {
            continue;
        }
        planted(
            backend,
            6 * MIB,
            512 * KIB,
            5 * MIB + 4096 + 100,
            BODY_NOTE,
            argv!["--threads", "2", "--random"],
        );
    }
}

/// A managed `--dir` file with a corrupted body keeps its corruption (gdswap only rewrites
/// files whose length or end headers say they hold other data) and the verified read finds it.
#[test]
fn dir_read_reports_corruption_in_a_per_thread_file() {
    let dir = scratch();
    let d = dir.path().join("data");
    let args = with(
        run_argv("posix", "read", 4 * MIB, 256 * KIB, 1),
        argv![
            "--create-dir",
            "--dir",
            &d,
            "--threads",
            "2",
            "--seed",
            SEED.to_string(),
            "--verify"
        ],
    );
    ok(args.clone());
    let f = thread_file(&d, 1);
    let original = flip_byte(&f, 1_000_001);
    let msg = fail(args);
    assert_eq!(
        msg,
        format!(
            "verify failed: {} at offset 1000001: expected byte 0x{original:02x}, found 0x{:02x}{BODY_NOTE}{}",
            f.display(),
            original ^ 0xff,
            gdswap::harness::verify_read_hint().render(&gdswap::cli::flag)
        )
    );
}

/// Reading a file with another seed than it was written with fails at the seed field of the
/// first header, and the message names the seed the data was written with.
#[test]
fn a_wrong_seed_is_named() {
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, MIB, 7);
    let msg = fail(with(
        run_argv("posix", "read", MIB, 64 * KIB, 1),
        argv!["--file", &f, "--seed", "8", "--verify"],
    ));
    assert_eq!(
        msg,
        format!(
            "verify failed: {} at offset 16: expected byte 0x08, found 0x07; the block there was written with seed 7, not 8 (rerun with --seed 7, or rewrite the file)",
            f.display()
        )
    );
}

/// Without `--verify` nothing is checked: the same corrupted file reads fine. (So the
/// failures above come from verification, not from the read itself.)
#[test]
fn without_verify_corruption_goes_unnoticed() {
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, MIB, SEED);
    flip_byte(&f, 5000);
    ok(with(
        run_argv("posix", "read", MIB, 64 * KIB, 1),
        argv!["--file", &f, "--seed", SEED.to_string()],
    ));
}
