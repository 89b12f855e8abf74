//! `gdswap compare` on real small files: backends interleaved in rounds with ratios taken round
//! by round, the JSON/CSV/Markdown exports, fio as a peer when it is installed, gdsio's two rows
//! through a fake gdsio (a shell script that checks its arguments and prints gdsio's documented
//! result line; no test machine has a GPU or the GDS tools), a missing peer (fio hidden from
//! PATH) as a note rather than a failure, a failing peer dropped with its own error line, and
//! bad flags as one-line errors.

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

/// Writes an executable shell script `name` into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A fake gdsio: appends its arguments to `log`, and unless they are exactly `want` followed by
/// `-x 0 -I <io>` or `-x 2 -I <io>`, fails (exit 2) naming them; else prints one result line in
/// the format of NVIDIA's documentation (tests/data/README.md), GPUD at 2 GiB/s and CPU_GPU
/// at 1 GiB/s, 250 us average latency.
fn fake_gdsio(dir: &Path, log: &Path, want: &str, io: u8, threads: usize) -> std::path::PathBuf {
    let io_type = if io == 0 { "READ" } else { "WRITE" };
    let kib = SIZE / 1024;
    script(
        dir,
        "gdsio",
        &format!(
            r#"echo "$*" >> '{log}'
case "$*" in
  "{want} -x 0 -I {io}") xt=GPUD; gibps=2.000000 ;;
  "{want} -x 2 -I {io}") xt=CPU_GPU; gibps=1.000000 ;;
  *) echo "fake gdsio: unexpected arguments: $*" >&2; exit 2 ;;
esac
echo "IoType: {io_type} XferType: $xt Threads: {threads} DataSetSize: {kib}/{kib}(KiB) IOSize: {bs}(KiB) Throughput: $gibps GiB/sec, Avg_Latency: 250.000000 usecs ops: {ops} total_time 0.001953 secs"
"#,
            log = log.display(),
            bs = BS / 1024,
            ops = SIZE / BS,
        ),
    )
}

/// PATH with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
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
            "--create-dir",
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
    assert_eq!(c.params.workload.op.to_string(), "write");
    assert_eq!(c.contenders.len(), 1);
    assert!(c.ratios.is_empty());
    assert_pattern(&f, 0, SIZE, 0x5eed);
}

/// With fio as a peer, host is also measured at fio's footprint (a ring of queue depth x block
/// size buffers), next to host, and each row's mode says whose footprint it has; `--verify`,
/// which needs tensor-sized buffers, leaves the ring row out with the reason.
#[test]
fn fio_as_a_peer_brings_host_at_fios_footprint() {
    require_host_backend!();
    if gdswap::peer::find_in_path("fio").is_none() {
        eprintln!("note: skipping the host-ring test: fio is not installed");
        return;
    }
    let dir = scratch();
    let f = dir.path().join("data.dat");
    make_data_file(&f, SIZE, 0x5eed);
    let json = dir.path().join("c.json");
    let base = || {
        with(
            compare_argv(2),
            argv![
                "--backends",
                "host",
                "--peers",
                "fio",
                "--file",
                &f,
                "--json",
                &json
            ],
        )
    };
    let out = ok(base());
    let c = read_comparison(&json);
    let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["host", "host-ring", "fio"], "{}", out.stderr);
    let ring = &c.contenders[1];
    assert_eq!(ring.kind, ContenderKind::Backend);
    assert!(
        ring.mode.contains("ring of 8 reused") && ring.mode.contains("fio's footprint"),
        "{}",
        ring.mode
    );
    assert!(
        c.contenders[0].mode.contains("tensor-sized"),
        "{}",
        c.contenders[0].mode
    );
    assert_eq!(c.ratios.len(), 2, "host-ring and fio against host");
    assert!(out.stdout.contains("host-ring backend"), "{}", out.stdout);
    // Its runs' warnings carry its own name (a tiny run always warns that it is short).
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("warning: host-ring: "), "{all}");

    // Without a peer there is no footprint to match, and no extra row.
    ok(with(
        compare_argv(1),
        argv![
            "--backends",
            "host",
            "--peers",
            "none",
            "--file",
            &f,
            "--json",
            &json
        ],
    ));
    let names: Vec<String> = read_comparison(&json)
        .contenders
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["host"]);

    // --verify reads back the whole range: the ring row is skipped, saying why.
    ok(with(base(), argv!["--verify"]));
    let c = read_comparison(&json);
    let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["host", "fio"]);
    let s = c
        .skipped
        .iter()
        .find(|s| s.name == "host-ring")
        .expect("host-ring skipped");
    assert!(
        s.reason.to_string().contains("fio's footprint"),
        "{}",
        s.reason
    );
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
        .all(|r| r.bandwidth_gibps > 0.0 && r.latency_p50_us.is_some_and(|v| v > 0.0)));
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
fn gdsio_joins_as_two_peer_rows_gpud_and_cpu_gpu() {
    // Two threads sharing one file on GPU 1, one warm-up and two measured runs per round.
    let dir = scratch();
    let f = dir.path().join("shared.dat");
    make_data_file(&f, SIZE, 0x5eed);
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("gdsio.log");
    let want = format!("-f {} -d 1 -w 2 -s 4096K -i 256K", f.display());
    let exe = fake_gdsio(&bin, &log, &want, 0, 2);
    let json = dir.path().join("c.json");
    let csv = dir.path().join("c.csv");
    let mut cmd = gdswap(argv![
        "compare",
        "--size",
        SIZE.to_string(),
        "--block-size",
        BS.to_string(),
        "--rounds",
        "2",
        "--loops",
        "2",
        "--warmup",
        "1",
        "--backends",
        "posix",
        "--peers",
        "gdsio",
        "--file",
        &f,
        "--threads",
        "2",
        "--gpu",
        "1",
        "--json",
        &json,
        "--csv",
        &csv
    ]);
    cmd.env("PATH", path_with(&bin)).env_remove("GDSWAP_GDSIO");
    let out = outcome(&mut cmd).expect_ok();
    assert!(
        out.stderr
            .contains("comparing posix, gdsio-gpud, gdsio-cpu-gpu over 2 rounds"),
        "{}",
        out.stderr
    );
    // Every run: 1 warm-up + 2 measured, per row, per round, in the interleaved order.
    let runs: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let gpud = format!("{want} -x 0 -I 0");
    let cpu_gpu = format!("{want} -x 2 -I 0");
    let one_round = [&gpud, &gpud, &gpud, &cpu_gpu, &cpu_gpu, &cpu_gpu];
    let expected: Vec<&String> = one_round.iter().chain(one_round.iter()).copied().collect();
    assert_eq!(runs.iter().collect::<Vec<_>>(), expected);

    let c = read_comparison(&json);
    let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["posix", "gdsio-gpud", "gdsio-cpu-gpu"]);
    for (k, gibps) in c.contenders[1..].iter().zip([2.0, 1.0]) {
        assert_eq!(k.kind, ContenderKind::Peer);
        assert_eq!(k.rounds.len(), 2);
        assert_eq!(k.bandwidth_gibps.median, gibps);
        // Only an average latency: the percentiles and CPU are absent, not 0.
        assert_eq!(k.latency_avg_us, Some(250.0));
        assert_eq!((k.latency_p50_us, k.latency_p99_us), (None, None));
        assert_eq!(k.cpu_s_per_gib, None);
        assert!(k.latency_cdf_us.is_empty());
        assert!(
            k.mode.contains(&format!("{} {want} -x ", exe.display())),
            "{}",
            k.mode
        );
    }
    assert!(c.contenders[1].mode.starts_with("gdsio -x 0 (GPUD: "));
    assert!(c.contenders[2].mode.starts_with("gdsio -x 2 (CPU_GPU: "));
    assert!(c.contenders[1]
        .mode
        .contains("1 warm-up + 2 measured run(s) per round"));
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(raw["contenders"][1].get("latency_p50_us").is_none());
    assert!(raw["contenders"][0]["latency_p50_us"].is_number());
    assert_eq!(c.ratios.len(), 2);
    assert_eq!(c.ratios[0].bandwidth_per_round.len(), 2);
    assert!(c.ratios[0].cpu_s_per_gib_per_round.is_empty());
    // The table: both rows, marked peers, `-` where gdsio reports nothing.
    let row = |name: &str| -> Vec<&str> {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row:\n{}", out.stdout))
            .split_whitespace()
            .collect()
    };
    assert_eq!(
        row("gdsio-gpud")[..9],
        [
            "gdsio-gpud",
            "peer",
            "2.00",
            "2.00-2.00",
            "250",
            "us",
            "-",
            "-",
            "-"
        ]
    );
    assert_eq!(row("gdsio-cpu-gpu")[..3], ["gdsio-cpu-gpu", "peer", "1.00"]);
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv_text
            .lines()
            .any(|l| l.contains(",gdsio-gpud,peer,read,262144,") && l.contains(",250,,,,")),
        "{csv_text}"
    );
    assert_pattern(&f, 0, SIZE, 0x5eed);
}

#[test]
fn gdsio_writes_one_row_named_by_gdswap_gdsio() {
    let dir = scratch();
    let f = dir.path().join("w.dat");
    let log = dir.path().join("gdsio.log");
    let want = format!("-f {} -d 0 -w 1 -s 4096K -i 256K", f.display());
    let exe = fake_gdsio(dir.path(), &log, &want, 1, 1);
    let json = dir.path().join("c.json");
    let mut cmd = gdswap(with(
        compare_argv(1),
        argv![
            "--op",
            "write",
            "--backends",
            "posix",
            "--peers",
            "gdsio-cpu-gpu",
            "--file",
            &f,
            "--json",
            &json
        ],
    ));
    // Not in PATH: found through the variable alone.
    cmd.env("GDSWAP_GDSIO", &exe);
    outcome(&mut cmd).expect_ok();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("{want} -x 2 -I 1\n")
    );
    let c = read_comparison(&json);
    let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["posix", "gdsio-cpu-gpu"]);
    assert!(
        c.contenders[1].mode.contains("-I 1 (write)"),
        "{}",
        c.contenders[1].mode
    );
}

#[test]
fn a_failing_gdsio_is_dropped_with_its_own_error_line() {
    let dir = scratch();
    let f = dir.path().join("r.dat");
    make_data_file(&f, SIZE, 0x5eed);
    let json = dir.path().join("c.json");
    let result_line = format!(
        "IoType: READ XferType: GPUD Threads: 1 DataSetSize: 4096/4096(KiB) IOSize: 256(KiB) Throughput: 2.0 GiB/sec, Avg_Latency: 250.0 usecs ops: {} total_time 0.001953 secs",
        SIZE / BS
    );
    // Each fake, and the reason both rows must be dropped for (the fakes' error lines are made
    // up: what a real gdsio prints without a usable GPU was not seen here).
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "exits-1",
            "echo 'fake gdsio: cuFile driver initialization failed' >&2\nexit 1\n".into(),
            "peer gdsio: exited with exit status: 1: fake gdsio: cuFile driver initialization failed",
        ),
        (
            "error-then-result",
            format!("echo 'Error: IO failed stopping traffic'\necho '{result_line}'\n"),
            "peer gdsio: reported an error: Error: IO failed stopping traffic",
        ),
        (
            "no-result",
            "echo 'gdsio version: fake'\n".into(),
            "peer gdsio: printed no result line (IoType: ... Throughput: ...); it printed: gdsio version: fake",
        ),
        (
            "hangs",
            "sleep 30\n".into(),
            "peer gdsio: did not finish within 1 s and was killed",
        ),
    ];
    for (name, body, why) in &cases {
        let exe = script(dir.path(), name, body);
        let mut cmd = gdswap(with(
            compare_argv(2),
            argv![
                "--backends",
                "posix",
                "--peers",
                "gdsio",
                "--file",
                &f,
                "--json",
                &json
            ],
        ));
        cmd.env("GDSWAP_GDSIO", &exe)
            .env("GDSWAP_GDSIO_TIMEOUT", "1");
        let started = std::time::Instant::now();
        let out = outcome(&mut cmd).expect_ok();
        assert!(started.elapsed().as_secs() < 20, "{name}: took too long");
        for row in ["gdsio-gpud", "gdsio-cpu-gpu"] {
            let want = format!(
                "warning: peer {row} dropped from the comparison: failed in round 1: {why}"
            );
            assert!(
                out.stderr.contains(&want),
                "{name}: no '{want}' in:\n{}",
                out.stderr
            );
        }
        let c = read_comparison(&json);
        let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["posix"], "{name}");
        assert_eq!(
            c.contenders[0].rounds.len(),
            2,
            "{name}: posix kept its rounds"
        );
        let skipped: Vec<&str> = c.skipped.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(skipped, ["gdsio-gpud", "gdsio-cpu-gpu"], "{name}");
    }
    // A variable naming no program is a note; a bad time limit, an error before any run.
    let mut cmd = gdswap(with(
        compare_argv(1),
        argv!["--backends", "posix", "--peers", "gdsio", "--file", &f],
    ));
    let missing = dir.path().join("no-such-gdsio");
    cmd.env("GDSWAP_GDSIO", &missing);
    let out = outcome(&mut cmd).expect_ok();
    assert!(
        out.stderr.contains(&format!(
            "note: skipping peer gdsio: GDSWAP_GDSIO names {}, which is not an executable file",
            missing.display()
        )),
        "{}",
        out.stderr
    );
    let exe = dir.path().join("exits-1");
    let mut cmd = gdswap(with(
        compare_argv(1),
        argv!["--backends", "posix", "--peers", "gdsio", "--file", &f],
    ));
    cmd.env("GDSWAP_GDSIO", &exe)
        .env("GDSWAP_GDSIO_TIMEOUT", "soon");
    assert_eq!(
        outcome(&mut cmd).expect_error(),
        "GDSWAP_GDSIO_TIMEOUT: 'soon' is not a whole number of seconds above 0"
    );
}

#[test]
fn gdsio_skips_workloads_it_cannot_run_alike() {
    let dir = scratch();
    let exe = script(dir.path(), "gdsio", "echo 'ran' >> ran.log\nexit 1\n");
    let run = |more: Vec<std::ffi::OsString>| {
        let mut cmd = gdswap(with(
            with(
                compare_argv(1),
                argv!["--backends", "posix", "--peers", "gdsio"],
            ),
            more,
        ));
        cmd.env("GDSWAP_GDSIO", &exe).current_dir(dir.path());
        outcome(&mut cmd).expect_ok().stderr
    };
    let f = dir.path().join("r.dat");
    make_data_file(&f, SIZE, 0x5eed);
    let e = run(argv!["--file", &f, "--random"]);
    assert!(
        e.contains("note: skipping peer gdsio: --random: gdswap runs gdsio for sequential reads and writes only"),
        "{e}"
    );
    let e = run(argv![
        "--create-dir",
        "--dir",
        dir.path().join("d"),
        "--threads",
        "2"
    ]);
    assert!(
        e.contains("note: skipping peer gdsio: --dir with 2 threads: "),
        "{e}"
    );
    assert!(!dir.path().join("ran.log").exists(), "a skipped gdsio ran");
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
            "--create-dir",
            "--dir",
            dir.path().join("d"),
            "--json",
            &json
        ],
    ));
    cmd.env("PATH", &empty).env_remove("GDSWAP_GDSIO");
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
        out.stdout
            .contains("skipped (the notes say why): peer fio, peer gdsio\n"),
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
    let base = || with(compare_argv(1), argv!["--create-dir", "--dir", &d]);
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
    let e = fail(argv![
        "compare",
        "--rounds",
        "0",
        "--create-dir",
        "--dir",
        &d
    ]);
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
            "--create-dir",
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
    assert!(c.skipped[0]
        .reason
        .to_string()
        .starts_with("failed in round 1: "));
}

#[test]
fn defaults_use_every_backend_the_default_data_dir_and_note_gdsio() {
    require_host_backend!();
    let dir = scratch();
    let data = dir.path().join("data");
    let json = dir.path().join("c.json");
    let run = || {
        let mut cmd = gdswap(with(compare_argv(1), argv!["--json", &json]));
        // Keeps a gdsio installed on the test machine out of the default peers.
        cmd.env("GDSWAP_DATA_DIR", &data)
            .env("GDSWAP_GDSIO", dir.path().join("no-gdsio"));
        outcome(&mut cmd).expect_ok()
    };
    let out = run();
    let c = read_comparison(&json);
    let names: Vec<&str> = c.contenders.iter().map(|k| k.name.as_str()).collect();
    let fio = gdswap::peer::find_in_path("fio").is_some();
    let want: &[&str] = if fio {
        &["host", "host-ring", "posix", "fio"]
    } else {
        &["host", "posix"]
    };
    assert_eq!(names, want, "{}", out.stderr);
    assert_eq!(c.params.workload.target.path(), data);
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

#[test]
fn a_failed_comparison_still_writes_its_json_record() {
    let dir = scratch();
    let json = dir.path().join("c.json");
    let missing = dir.path().join("missing.dat");
    let out = outcome(&mut gdswap(with(
        compare_argv(1),
        argv![
            "--backends",
            "posix",
            "--peers",
            "none",
            "--file",
            &missing,
            "--json",
            &json
        ],
    )));
    assert_eq!(out.code, Some(1), "{out:?}");
    let last = out.stderr.lines().last().unwrap();
    let msg = last.strip_prefix(ERROR_PREFIX).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["error"]["message"], msg, "{v}");
    assert_eq!(v["command_line"][1], "compare", "{v}");
    assert!(v["finished_at"].is_string(), "{v}");
    assert!(v["environment"]["git_commit"].is_string(), "{v}");
}

/// A backend that refuses the workload is skipped with the refusal as its reason, which names
/// the flag (the library's error names the setting; the command line turns it into the flag),
/// in the note and in the JSON alike.
#[test]
fn a_backend_skipped_for_a_flag_names_the_flag() {
    require_host_backend!();
    let dir = scratch();
    let data = dir.path().join("data");
    let json = dir.path().join("c.json");
    let out = outcome(&mut gdswap(with(
        compare_argv(1),
        argv![
            "--buffer",
            "ring",
            "--peers",
            "none",
            "--create-dir",
            "--dir",
            &data,
            "--json",
            &json
        ],
    )))
    .expect_ok();
    let want = "--buffer: ring: only the host backend reuses buffers (not posix)";
    assert!(
        out.stderr
            .contains(&format!("note: skipping backend posix: {want}")),
        "{}",
        out.stderr
    );
    let c = read_comparison(&json);
    let posix = c.skipped.iter().find(|s| s.name == "posix").unwrap();
    assert_eq!(posix.reason.to_string(), want);
}
