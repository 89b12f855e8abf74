//! Bad input: every refusal is one line, `gdswap: error: ...`, naming the flag or the path,
//! with exit status 1 (2 for what the argument parser refuses), and nothing written wrongly:
//! no data directory made for a refused option, no existing file changed.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::path::Path;

use common::*;

/// Runs `args` against a data directory that does not exist, expects `message`, and checks
/// the directory was not made: option checks come before any file is touched.
fn refused(args: Vec<OsString>, message: &str) {
    let dir = scratch();
    let d = dir.path().join("data");
    let msg = fail(with(args, argv!["--create-dir", "--dir", &d]));
    assert_eq!(msg, message);
    assert!(!d.exists(), "a refused run made its data directory");
}

/// The same for what clap refuses: exit status 2, the offending value and flag named.
fn usage_error(args: Vec<OsString>, needles: &[&str]) {
    let dir = scratch();
    let d = dir.path().join("data");
    let out = outcome(&mut gdswap(with(args, argv!["--create-dir", "--dir", &d])));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let first = out.stderr.lines().next().unwrap_or_default();
    for n in needles {
        assert!(first.contains(n), "'{n}' not in: {first}");
    }
    assert!(!d.exists());
}

fn args(size: &str, bs: &str) -> Vec<OsString> {
    argv![
        "run",
        "--op",
        "write",
        "--size",
        size,
        "--block-size",
        bs,
        "--loops",
        "1"
    ]
}

#[test]
fn threads_zero() {
    refused(
        with(args("1M", "64K"), argv!["--threads", "0"]),
        "--threads: 0 is out of range 1..=1024",
    );
}

#[test]
fn threads_100000() {
    refused(
        with(args("1M", "64K"), argv!["--threads", "100000"]),
        "--threads: 100000 is out of range 1..=1024",
    );
}

#[test]
fn more_threads_than_blocks() {
    refused(
        with(args("2M", "1M"), argv!["--threads", "4"]),
        "--threads: 4 threads cannot share --size 2MiB in blocks of 1MiB: each thread needs at least one block",
    );
}

#[test]
fn queue_depth_zero() {
    refused(
        with(args("1M", "64K"), argv!["--queue-depth", "0"]),
        "--queue-depth: 0 is out of range 1..=4096",
    );
}

#[test]
fn queue_depth_too_deep() {
    refused(
        with(args("1M", "64K"), argv!["--queue-depth", "5000"]),
        "--queue-depth: 5000 is out of range 1..=4096",
    );
}

#[test]
fn block_size_zero() {
    refused(
        args("1M", "0"),
        "--block-size: 0B is out of range 1B..=1GiB",
    );
}

#[test]
fn block_size_2g() {
    refused(
        args("4G", "2G"),
        "--block-size: 2GiB is out of range 1B..=1GiB",
    );
}

#[test]
fn block_size_larger_than_size() {
    refused(
        args("1M", "2M"),
        "--block-size: 2MiB is larger than --size 1MiB",
    );
}

#[test]
fn size_zero() {
    refused(args("0", "4K"), "--size: must be at least one byte");
}

/// --size 2^64 - 1 used to wrap when rounded up to pages (`next_multiple_of`), pass the
/// memory check and abort in an allocation (exit 134); now the bound is the largest file
/// Linux holds, and a size below it that cannot be held in memory is refused by the memory
/// check, both one line naming --size.
#[test]
fn size_2_pow_64_minus_1_run_and_compare() {
    let max = u64::MAX.to_string();
    let expected = "--size: 18446744073709551615 bytes is larger than the largest file Linux can hold (9223372036854775807 bytes, 2^63 - 1)";
    refused(args(&max, "1M"), expected);
    refused(
        argv![
            "compare",
            "--size",
            &max,
            "--block-size",
            "1M",
            "--rounds",
            "1"
        ],
        expected,
    );
    let dir = scratch();
    let err = fail(argv![
        "run",
        "--op",
        "write",
        "--size",
        (i64::MAX as u64).to_string(),
        "--block-size",
        "1M",
        "--file",
        dir.path().join("f")
    ]);
    assert!(
        err.starts_with("--size 9223372036854775807B: each thread holds its whole range in memory"),
        "{err}"
    );
}

#[test]
fn loops_zero() {
    let mut a = args("1M", "64K");
    let at = a.iter().position(|x| x == "--loops").unwrap();
    a[at + 1] = "0".into();
    refused(a, "--loops: 0 is out of range 1..=100000");
}

#[test]
fn fixed_buffers_with_buffered() {
    refused(
        with(args("1M", "64K"), argv!["--fixed-buffers", "--buffered"]),
        "--fixed-buffers: needs O_DIRECT; drop --buffered",
    );
}

#[test]
fn fractional_size_is_a_usage_error() {
    usage_error(
        args("1.5M", "64K"),
        &[
            "invalid value '1.5M' for '--size <SIZE>'",
            "is not a size",
            "fractions are not accepted",
        ],
    );
}

#[test]
fn unknown_size_suffix_is_a_usage_error() {
    usage_error(
        args("1M", "12Q"),
        &[
            "invalid value '12Q' for '--block-size <BLOCK_SIZE>'",
            "is not a size: unknown suffix",
        ],
    );
}

#[test]
fn unknown_backend_is_a_usage_error() {
    usage_error(
        with(args("1M", "64K"), argv!["--backend", "nvme"]),
        &["invalid value 'nvme' for '--backend <BACKEND>'"],
    );
}

#[test]
fn file_and_dir_together_is_a_usage_error() {
    usage_error(
        with(args("1M", "64K"), argv!["--file", "x"]),
        &["'--file <PATH>' cannot be used with '--dir <DIR>'"],
    );
}

#[test]
fn json_path_that_cannot_be_created() {
    let dir = scratch();
    let bad = dir.path().join("missing").join("r.json");
    refused(
        with(args("1M", "64K"), argv!["--json", &bad]),
        &format!(
            "--json: cannot write {}: No such file or directory (os error 2)",
            bad.display()
        ),
    );
}

#[test]
fn csv_path_that_cannot_be_created() {
    let dir = scratch();
    refused(
        with(args("1M", "64K"), argv!["--csv", dir.path()]),
        &format!(
            "--csv: cannot write {}: Is a directory (os error 21)",
            dir.path().display()
        ),
    );
}

#[test]
fn read_of_missing_file() {
    let dir = scratch();
    let f = dir.path().join("nope");
    let msg = fail(argv![
        "run",
        "--op",
        "read",
        "--file",
        &f,
        "--size",
        "1M",
        "--block-size",
        "64K"
    ]);
    assert_eq!(
        msg,
        format!(
            "open failed: {}: No such file or directory (os error 2) (no such file: check the path)",
            f.display()
        )
    );
    assert!(!f.exists(), "a read created its file");
}

#[test]
fn read_of_a_directory() {
    let dir = scratch();
    let msg = fail(argv![
        "run",
        "--op",
        "read",
        "--file",
        dir.path(),
        "--size",
        "1M",
        "--block-size",
        "64K"
    ]);
    assert_eq!(
        msg,
        format!(
            "open failed: {}: Is a directory (os error 21)",
            dir.path().display()
        )
    );
}

/// A file shorter than `--size` is refused before any I/O, and names both lengths.
#[test]
fn read_of_file_shorter_than_size() {
    for (threads, bs) in [("1", "64K"), ("2", "512K")] {
        let dir = scratch();
        let f = dir.path().join("short");
        make_data_file(&f, MIB, 3);
        let msg = fail(argv![
            "run",
            "--op",
            "read",
            "--file",
            &f,
            "--size",
            "2M",
            "--block-size",
            bs,
            "--threads",
            threads,
            "--seed",
            "3",
            "--verify"
        ]);
        assert_eq!(
            msg,
            format!(
                "{}: file holds 1048576 bytes but the run reads up to byte 2097152; lower --size or write the file first (gdswap run --op write --file ...)",
                f.display()
            )
        );
        assert_eq!(file_len(&f), MIB);
        assert_pattern(&f, 0, MIB, 3);
    }
}

fn assert_misaligned(msg: &str, path: &Path) {
    let tail = format!(
        ", the O_DIRECT alignment of {}; use a multiple of it, or --buffered",
        path.display()
    );
    assert!(
        msg.starts_with("--block-size: 1000B is not a multiple of ") && msg.ends_with(&tail),
        "{msg}"
    );
}

/// A block size O_DIRECT cannot do is refused naming the file and the alignment; an existing
/// file is left exactly as it was, for writes and reads.
#[test]
fn block_size_not_a_multiple_of_the_alignment() {
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, MIB, 6);
    let before = std::fs::read(&f).unwrap();
    for backend in ["host", "posix"] {
        for op in ["write", "read"] {
            let msg = fail(argv![
                "run",
                "--backend",
                backend,
                "--op",
                op,
                "--file",
                &f,
                "--size",
                "2M",
                "--block-size",
                "1000",
                "--seed",
                "7"
            ]);
            assert_misaligned(&msg, &f);
            assert_eq!(
                std::fs::read(&f).unwrap(),
                before,
                "{backend} {op} changed the file"
            );
        }
    }
}

/// In a fresh `--dir`, finding the alignment means opening (so creating) the first file; the
/// refusal removes that empty file and the directory the run created for it (issue 15: a
/// refused run leaves no empty data files).
#[test]
fn block_size_not_a_multiple_of_the_alignment_in_a_fresh_dir() {
    let dir = scratch();
    let d = dir.path().join("data");
    let msg = fail(argv![
        "run",
        "--op",
        "write",
        "--create-dir",
        "--dir",
        &d,
        "--size",
        "1M",
        "--block-size",
        "1000",
        "--threads",
        "2"
    ]);
    let f0 = thread_file(&d, 0);
    assert_misaligned(&msg, &f0);
    assert!(!d.exists(), "the refused run left {:?}", dir_names(&d));
}

/// A write onto a directory path fails naming it.
#[test]
fn write_onto_a_directory() {
    let dir = scratch();
    let msg = fail(argv![
        "run",
        "--op",
        "write",
        "--file",
        dir.path(),
        "--size",
        "1M",
        "--block-size",
        "64K"
    ]);
    assert_eq!(
        msg,
        format!(
            "create failed: {}: Is a directory (os error 21)",
            dir.path().display()
        )
    );
}

/// A run that fails records the failure in --json and leaves an earlier --csv as it was.
#[test]
fn a_failed_run_keeps_earlier_result_files() {
    let dir = scratch();
    let json = dir.path().join("r.json");
    let csv = dir.path().join("r.csv");
    std::fs::write(&json, "earlier json\n").unwrap();
    std::fs::write(&csv, "earlier csv\n").unwrap();
    let f = dir.path().join("nope");
    let msg = fail(argv![
        "run",
        "--op",
        "read",
        "--file",
        &f,
        "--size",
        "1M",
        "--block-size",
        "64K",
        "--json",
        &json,
        "--csv",
        &csv
    ]);
    assert!(msg.starts_with("open failed: "), "{msg}");
    // The JSON now records the failure (issue 15); the CSV, which has no place for one, keeps
    // the earlier result.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["error"]["message"], msg.as_str());
    // With what ran, where, when, and by which gdswap (issue 12).
    let command: Vec<&str> = v["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&command[1..4], ["run", "--op", "read"], "{v}");
    assert!(v["finished_at"].as_str().unwrap().ends_with('Z'), "{v}");
    for key in ["gdswap_version", "git_commit", "hostname", "kernel"] {
        assert!(
            !v["environment"][key].as_str().unwrap().is_empty(),
            "{key}: {v}"
        );
    }
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "earlier csv\n");
}

#[test]
fn json_and_csv_cannot_share_stdout() {
    refused(
        with(args("1M", "64K"), argv!["--json", "-", "--csv", "-"]),
        "--csv: --json and --csv cannot both write to stdout (-); send one of them to a file",
    );
}

#[test]
fn ring_knob_values_the_parser_refuses_name_the_flag() {
    usage_error(
        with(args("1M", "64K"), argv!["--ring-wait", "0"]),
        &["--ring-wait", "'0'"],
    );
    usage_error(
        with(args("1M", "64K"), argv!["--ring-wait", "some"]),
        &["--ring-wait", "'some'"],
    );
    usage_error(
        with(args("1M", "64K"), argv!["--ring-setup", "iopoll"]),
        &["--ring-setup", "'iopoll'"],
    );
    usage_error(
        with(args("1M", "64K"), argv!["--ring-submit", "later"]),
        &["--ring-submit", "'later'"],
    );
    usage_error(
        with(args("1M", "64K"), argv!["--ring-opcode", "write"]),
        &["--ring-opcode", "'write'"],
    );
}

#[test]
fn readv_with_fixed_buffers() {
    refused(
        with(
            args("1M", "64K"),
            argv!["--ring-opcode", "readv", "--fixed-buffers"],
        ),
        "--ring-opcode: readv: registered buffers are read with READ_FIXED; drop --fixed-buffers",
    );
}

#[test]
fn ring_knobs_on_a_backend_without_a_ring() {
    for (flag, value) in [
        ("--ring-setup", Some("coop")),
        ("--ring-submit", Some("each")),
        ("--ring-wait", Some("all")),
        ("--register-files", None),
        ("--ring-opcode", Some("readv")),
    ] {
        let mut more = argv!["--backend", "posix", flag];
        if let Some(v) = value {
            more.push(v.into());
        }
        refused(
            with(args("1M", "64K"), more),
            &format!(
                "{flag}: applies to the io_uring backends (host, bounce), not to the posix backend"
            ),
        );
    }
}
