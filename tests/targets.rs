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
