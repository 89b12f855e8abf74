//! `gdswap compare` on real small files: backends interleaved in rounds with ratios taken round
//! by round, the JSON/CSV/Markdown exports, fio as a peer when it is installed, a missing peer
//! (fio hidden from PATH) as a note rather than a failure, and bad flags as one-line errors.

#[macro_use]
mod common;

use std::path::Path;

use common::*;
use gdswap::report::comparison::{self, Comparison, ContenderKind};

const SIZE: u64 = 4 * MIB;
const BS: u64 = 256 * KIB;

fn compare_argv(rounds: u32) -> Vec<std::ffi::OsString> {
    argv![
        "compare",
        "--size",
        SIZE.to_string(),
        "--block-size",
        BS.to_string(),
        "--rounds",
        rounds.to_string(),
        "--loops",
        "1",
        "--warmup",
        "0"
    ]
}

fn read_comparison(path: &Path) -> Comparison {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let raw: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(raw["schema"], "gdswap.compare.v1");
    comparison::from_json(&text).unwrap_or_else(|e| panic!("not a comparison ({e}):\n{text}"))
}

#[test]
fn host_and_posix_in_rounds_with_pairwise_ratios_and_exports() {
    require_host_backend!();
    let dir = scratch();
    let (json, csv, md) = (
        dir.path().join("c.json"),
        dir.path().join("c.csv"),
        dir.path().join("c.md"),
    );
    let out = ok(with(
        compare_argv(3),
        argv![
            "--backends",
            "host,posix",
            "--peers",
            "none",
            "--dir",
            dir.path().join("d"),
            "--json",
            &json,
            "--csv",
            &csv,
            "--markdown",
            &md
        ],
    ));
    // Progress on stderr in the interleaved order: host, posix, host, posix, ...
    let order: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("round "))
        .collect();
    assert_eq!(order.len(), 6, "{}", out.stderr);
    for (i, l) in order.iter().enumerate() {
        let want = format!("{}/3 {}", i / 2 + 1, ["host", "posix"][i % 2]);
        assert!(l.starts_with(&want), "line {i}: {l}\n{}", out.stderr);
    }
    assert!(out
        .stdout
        .starts_with("compare read, bs 256KiB, qd 8, 1 thread, size 4MiB"));
    assert!(out.stdout.contains("1.00x (reference)"), "{}", out.stdout);

    let c = read_comparison(&json);
    let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["host", "posix"]);
    assert!(c
        .contenders
        .iter()
        .all(|k| k.kind == ContenderKind::Backend));
    assert_eq!(c.params.rounds, 3);
    for k in &c.contenders {
        assert_eq!(k.rounds.len(), 3);
        assert!(k.rounds.iter().all(|r| r.bandwidth_gibps > 0.0));
        assert!(k.bandwidth_gibps.min <= k.bandwidth_gibps.median);
        assert!(k.bandwidth_gibps.median <= k.bandwidth_gibps.max);
    }
    assert!(c.contenders[0].mode.contains("io_uring"));
    assert!(c.contenders[1].mode.contains("pread/pwrite"));
    // Ratios pair round r with round r.
    let r = &c.ratios[0];
    assert_eq!((r.name.as_str(), r.reference.as_str()), ("posix", "host"));
    for (i, ratio) in r.bandwidth_per_round.iter().enumerate() {
        let want =
            c.contenders[1].rounds[i].bandwidth_gibps / c.contenders[0].rounds[i].bandwidth_gibps;
        assert!((ratio - want).abs() < 1e-9);
    }
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), 3, "{csv_text}");
    assert!(csv_text
        .lines()
        .nth(2)
        .unwrap()
        .contains(",posix,backend,read,262144,"));
    let md_text = std::fs::read_to_string(&md).unwrap();
    assert!(md_text.contains("| host | "), "{md_text}");
    assert!(md_text.contains("| posix | "), "{md_text}");
    assert!(md_text.contains("| contender | round 1 | round 2 | round 3 |"));
}

#[test]
fn writes_are_compared_and_verified() {
    let dir = scratch();
    let json = dir.path().join("c.json");
    let f = dir.path().join("w.dat");
    ok(with(
        compare_argv(2),
        argv![
            "--op",
            "write",
            "--verify",
            "--backends",
            "posix",
            "--peers",
            "none",
            "--file",
            &f,
            "--json",
            &json
        ],
    ));
    let c = read_comparison(&json);
    assert_eq!(c.params.op, "write");
    assert_eq!(c.contenders.len(), 1);
    assert!(c.ratios.is_empty());
    assert_pattern(&f, 0, SIZE, 0x5eed);
}

#[test]
fn fio_joins_as_a_peer_when_installed() {
    if gdswap::peer::find_in_path("fio").is_none() {
        eprintln!("note: skipping the fio peer test: fio is not installed");
        return;
    }
    // Two threads on one shared file: fio runs numjobs 2 with offset_increment.
    let dir = scratch();
    let f = dir.path().join("shared.dat");
    make_data_file(&f, SIZE, 0x5eed);
    let json = dir.path().join("c.json");
    let out = ok(with(
        compare_argv(2),
        argv![
            "--backends",
            "posix",
            "--peers",
            "fio",
            "--file",
            &f,
            "--threads",
            "2",
            "--json",
            &json
        ],
    ));
    let c = read_comparison(&json);
    let fio = &c.contenders[1];
    assert_eq!(fio.name, "fio");
    assert_eq!(fio.kind, ContenderKind::Peer);
    assert_eq!(fio.rounds.len(), 2);
    assert!(fio
        .rounds
        .iter()
        .all(|r| r.bandwidth_gibps > 0.0 && r.latency_p50_us > 0.0));
    assert!(
        fio.mode.starts_with("fio-") && fio.mode.contains("numjobs 2 with offset_increment 2MiB"),
        "{}",
        fio.mode
    );
    assert_eq!(c.ratios[0].bandwidth_per_round.len(), 2);
    assert!(out.stdout.contains("fio      peer"), "{}", out.stdout);
    // fio only read: the file still holds the pattern.
    assert_pattern(&f, 0, SIZE, 0x5eed);
}

#[test]
fn a_missing_peer_is_a_note_not_a_failure() {
    let dir = scratch();
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let json = dir.path().join("c.json");
    let mut cmd = gdswap(with(
        compare_argv(1),
        argv![
            "--backends",
            "posix",
            "--peers",
            "fio,gdsio",
            "--dir",
            dir.path().join("d"),
            "--json",
            &json
        ],
    ));
    cmd.env("PATH", &empty);
    let out = outcome(&mut cmd).expect_ok();
    assert!(
        out.stderr
            .contains("note: skipping peer fio: not installed (not found in PATH)"),
        "{}",
        out.stderr
    );
    assert!(out
        .stderr
        .contains("note: skipping peer gdsio: not installed"));
    assert!(
        out.stdout.contains("skipped peer fio: not installed"),
        "{}",
        out.stdout
    );
    let c = read_comparison(&json);
    assert_eq!(c.contenders.len(), 1);
    let skipped: Vec<&str> = c.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped, ["fio", "gdsio"]);
    assert!(c.skipped.iter().all(|s| s.kind == ContenderKind::Peer));
}

#[test]
fn bad_flags_are_one_line_errors_naming_the_flag() {
    let dir = scratch();
    let d = dir.path().join("d");
    let base = || with(compare_argv(1), argv!["--dir", &d]);
    let e = fail(with(base(), argv!["--backends", "nope"]));
    assert!(
        e.starts_with("--backends: unknown backend 'nope'; known: host, posix"),
        "{e}"
    );
    let e = fail(with(base(), argv!["--backends", "posix,posix"]));
    assert!(e.starts_with("--backends: 'posix' is listed twice"), "{e}");
    let e = fail(with(base(), argv!["--peers", "iozone"]));
    assert!(e.starts_with("--peers: unknown peer 'iozone'"), "{e}");
    let e = fail(with(
        base(),
        argv!["--markdown", dir.path().join("no/such/dir/c.md")],
    ));
    assert!(e.starts_with("--markdown: cannot write "), "{e}");
    let e = fail(with(
        base(),
        argv!["--svg", dir.path().join("no/such/dir/c.svg")],
    ));
    assert!(e.starts_with("--svg: cannot write "), "{e}");
    let e = fail(argv!["compare", "--rounds", "0", "--dir", &d]);
    assert!(e.starts_with("--rounds: 0 is out of range"), "{e}");
    let e = fail(with(
        base(),
        argv!["--backends", "posix", "--peers", "none", "--fixed-buffers"],
    ));
    assert!(e.starts_with("posix: --fixed-buffers:"), "{e}");
    // A read of a file that does not exist fails in round 1, naming the contender and the file,
    // after the progress lines (stderr), with one error line last and nothing on stdout.
    let missing = dir.path().join("missing");
    let out = outcome(&mut gdswap(with(
        compare_argv(1),
        argv!["--backends", "posix", "--peers", "none", "--file", &missing],
    )));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(
        out.stderr.matches(ERROR_PREFIX).count(),
        1,
        "{}",
        out.stderr
    );
    let last = out.stderr.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "{ERROR_PREFIX}posix (round 1 of 1): open failed: {}",
            missing.display()
        )),
        "{last}"
    );
    // `--backend` (singular) belongs to `gdswap run`: a usage error.
    let out = outcome(&mut gdswap(with(base(), argv!["--backend", "host"])));
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("takes --backends LIST"),
        "{}",
        out.stderr
    );
    assert!(
        !d.exists(),
        "a refused comparison created its data directory"
    );
}

#[test]
fn a_failing_peer_is_dropped_with_the_reason() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("fio");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'fio: engine io_uring not loadable' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let json = dir.path().join("c.json");
    let mut cmd = gdswap(with(
        compare_argv(2),
        argv![
            "--backends",
            "posix",
            "--peers",
            "fio",
            "--dir",
            dir.path().join("d"),
            "--json",
            &json
        ],
    ));
    cmd.env("PATH", &bin);
    let out = outcome(&mut cmd).expect_ok();
    assert!(
        out.stderr.contains(
            "warning: peer fio dropped from the comparison: failed in round 1: peer fio: exited with exit status: 1: fio: engine io_uring not loadable"
        ),
        "{}",
        out.stderr
    );
    let c = read_comparison(&json);
    let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["posix"]);
    assert_eq!(
        c.contenders[0].rounds.len(),
        2,
        "the backend kept all its rounds"
    );
    assert_eq!(c.skipped.len(), 1);
    assert!(c.skipped[0].reason.starts_with("failed in round 1: "));
}

#[test]
fn defaults_use_every_backend_the_default_data_dir_and_note_gdsio() {
    require_host_backend!();
    let dir = scratch();
    let data = dir.path().join("data");
    let json = dir.path().join("c.json");
    let run = || {
        let mut cmd = gdswap(with(compare_argv(1), argv!["--json", &json]));
        cmd.env("GDSWAP_DATA_DIR", &data);
        outcome(&mut cmd).expect_ok()
    };
    let out = run();
    let c = read_comparison(&json);
    let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
    let fio = gdswap::peer::find_in_path("fio").is_some();
    let want: &[&str] = if fio {
        &["host", "posix", "fio"]
    } else {
        &["host", "posix"]
    };
    assert_eq!(names, want, "{}", out.stderr);
    assert_eq!(c.params.target, data);
    assert!(
        c.skipped.iter().any(|s| s.name == "gdsio"),
        "{:?}",
        c.skipped
    );
    assert!(
        out.stderr.contains("note: skipping peer gdsio: "),
        "{}",
        out.stderr
    );
    // The data file is created once, then reused as it is.
    let file = data.join("gdswap.0.dat");
    assert_eq!(file_len(&file), SIZE);
    let created = std::fs::metadata(&file).unwrap().modified().unwrap();
    run();
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        created
    );
    assert_pattern(&file, 0, SIZE, 0x5eed);
}
