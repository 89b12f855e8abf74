//! `gdswap run --dir A --dir B ...`: several targets at once. Each directory's data to its own
//! GPU (`--gpus`, against the fake libcuda, which refuses an ordinal past its device count as
//! the driver does), and every target's measured loops started together.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::path::Path;

use common::cuda::with_fake_cuda;
use common::*;
use serde_json::Value;

/// `gdswap run` over directories `a` and `b` with `extra`, against the fake libcuda with two
/// GPUs.
fn two_targets(backend: &str, a: &Path, b: &Path, extra: Vec<OsString>) -> Outcome {
    let mut cmd = gdswap(with(
        with(
            run_argv(backend, "read", 2 * MIB, 256 * KIB, 2),
            argv!["--dir", a, "--dir", b],
        ),
        extra,
    ));
    with_fake_cuda(&mut cmd).env("FAKE_CUDA_DEVICES", "2");
    outcome(&mut cmd)
}

fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = scratch();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    (d, a, b)
}

#[test]
fn each_directory_moves_its_data_to_its_own_gpu() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let (_d, a, b) = dirs();
    let out = two_targets(
        "bounce",
        &a,
        &b,
        argv!["--gpus", "1,0", "--verify", "--json", "-"],
    )
    .expect_ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let reports = v.as_array().expect("one report per target");
    assert_eq!(reports.len(), 2);
    for (r, (dir, gpu)) in reports.iter().zip([(&a, 1), (&b, 0)]) {
        assert_eq!(r["params"]["target"], dir.display().to_string(), "{r}");
        assert_eq!(r["params"]["gpu"]["device"], gpu, "{r}");
        let mode = r["backend_mode"].as_str().unwrap();
        assert!(
            mode.contains(&format!("device {gpu} (Fake CUDA device {gpu} ")),
            "{mode}"
        );
        assert!(r["summary"]["verified"].as_bool().unwrap(), "{r}");
    }
    for (dir, gpu) in [(&a, 1), (&b, 0)] {
        let line = format!("{} (GPU {gpu}): bounce read: ", dir.display());
        assert!(out.stderr.contains(&line), "{}", out.stderr);
    }
    assert!(out.stderr.contains("\nall 2 targets: "), "{}", out.stderr);
}

/// The fake is as strict as the driver on ordinals: cuDeviceGet refuses one past the count
/// (and a negative one) with CUDA_ERROR_INVALID_DEVICE (101).
#[test]
fn the_fake_refuses_a_device_ordinal_past_its_count() {
    let cuda = common::cuda::RawCuda::new();
    let (n, ok) = cuda.device_get(0);
    assert!(n >= 1);
    assert_eq!(ok, 0);
    assert_eq!(cuda.device_get(n - 1).1, 0);
    assert_eq!(cuda.device_get(n).1, 101);
    assert_eq!(cuda.device_get(-1).1, 101);
}

#[test]
fn a_gpu_the_driver_does_not_have_is_refused() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let (_d, a, b) = dirs();
    // The fake has GPUs 0 and 1 (cuDeviceGet refuses 2 with CUDA_ERROR_INVALID_DEVICE).
    let out = two_targets("bounce", &a, &b, argv!["--gpus", "0,2"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let err = out.stderr.lines().find(|l| l.starts_with(ERROR_PREFIX));
    let err = err.unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(err.contains(&format!("--dir {}", b.display())), "{err}");
    assert!(
        err.contains("device 2 does not exist: the CUDA driver sees 2 devices (0..=1)"),
        "{err}"
    );
    // Bad combinations: one line naming --gpus, before anything runs.
    for (backend, gpus, want) in [
        (
            "bounce",
            "0",
            "1 GPUs for 2 --dir: give one GPU per directory",
        ),
        ("bounce", "0,1,1", "3 GPUs for 2 --dir"),
        (
            "host",
            "0,1",
            "applies to the GPU backends (bounce, gds) only",
        ),
    ] {
        let out = two_targets(backend, &a, &b, argv!["--gpus", gpus]);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr.contains(&format!("--gpus: {want}")),
            "{}",
            out.stderr
        );
    }
    let out = two_targets("bounce", &a, &b, argv!["--gpus", "0,1", "--gpu", "1"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let mut cmd = gdswap(argv!["compare", "--dir", &a, "--gpus", "0,1"]);
    let out = outcome(with_fake_cuda(&mut cmd));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("--gpus: compare measures one target on one GPU"),
        "{}",
        out.stderr
    );
}

/// Every directory's measured loop i overlaps every other's loop i: they start together even
/// when one directory must first fill its files (setup) and the other's are ready, and a
/// time-based run stops every directory at the same loop.
#[test]
fn the_directories_loops_start_together() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let (_d, a, b) = dirs();
    // b's file is written beforehand; a's is created and filled by the run itself.
    ok(argv![
        "run",
        "--op",
        "write",
        "--dir",
        &b,
        "--size",
        "2M",
        "--block-size",
        "256K",
        "--loops",
        "1",
        "--warmup",
        "0"
    ]);
    let overlap = |extra: Vec<OsString>| {
        let _ = std::fs::remove_file(a.join("gdswap.0.dat"));
        let out = ok(with(
            argv![
                "run",
                "--dir",
                &a,
                "--dir",
                &b,
                "--size",
                "2M",
                "--block-size",
                "256K",
                "--json",
                "-"
            ],
            extra,
        ));
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        let loops: Vec<Vec<(u64, u64)>> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["loops"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| {
                        let w = &l["window"];
                        (
                            w["start_unix_ns"].as_u64().unwrap(),
                            w["end_unix_ns"].as_u64().unwrap(),
                        )
                    })
                    .collect()
            })
            .collect();
        assert_eq!(loops[0].len(), loops[1].len(), "{loops:?}");
        for (i, (&a, &b)) in loops[0].iter().zip(&loops[1]).enumerate() {
            assert!(
                a.0.max(b.0) < a.1.min(b.1),
                "loop {i} of the two directories does not overlap: {a:?} {b:?}"
            );
        }
        (loops[0].len(), out.stderr)
    };
    let (n, text) = overlap(argv!["--loops", "4"]);
    assert_eq!(n, 4);
    assert!(text.contains("loops started together"), "{text}");
    // Time-based: rank 0's clock stops both at the same loop.
    let (n, _) = overlap(argv!["--duration", "1s"]);
    assert!(n >= 1);
}

/// A directory whose run fails ends the others at their next meeting: the run fails with
/// that directory's error, not an echo, and nothing waits for the dead run.
#[test]
fn a_failing_directory_stops_the_others_with_its_error() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let (_d, a, b) = dirs();
    // b's file is gdswap's with one byte flipped: its verify fails after the first loop.
    ok(argv![
        "run",
        "--op",
        "write",
        "--dir",
        &b,
        "--size",
        "2M",
        "--block-size",
        "256K",
        "--loops",
        "1",
        "--warmup",
        "0"
    ]);
    let f = b.join("gdswap.0.dat");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[300_000] ^= 0xff;
    std::fs::write(&f, bytes).unwrap();
    let t0 = std::time::Instant::now();
    let mut cmd = gdswap(argv![
        "run",
        "--dir",
        &a,
        "--dir",
        &b,
        "--size",
        "2M",
        "--block-size",
        "256K",
        "--verify",
        "--duration",
        "30s"
    ]);
    let out = outcome(&mut cmd);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{out:?}");
    let err = out
        .stderr
        .lines()
        .find(|l| l.starts_with(ERROR_PREFIX))
        .unwrap();
    assert!(
        err.contains(&format!("--dir {}: verify failed", b.display())),
        "{err}"
    );
}
