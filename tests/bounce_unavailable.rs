//! The bounce backend on a machine without libcuda (this one, with no fake on the path):
//! listed as unavailable with the reason, refused with exit status 1 before any file is
//! touched, while the host backends keep working. Nothing here may panic.

#[macro_use]
mod common;

use common::cuda::{system_has_libcuda, without_cuda};
use common::*;

macro_rules! require_no_libcuda {
    () => {
        if system_has_libcuda() {
            eprintln!("note: skipping: this machine has a real libcuda");
            return;
        }
    };
}

fn run_no_cuda(args: Vec<std::ffi::OsString>) -> Outcome {
    let mut cmd = gdswap(args);
    without_cuda(&mut cmd);
    outcome(&mut cmd)
}

const REASON_START: &str =
    "libcuda (the NVIDIA driver's CUDA library) not found: looked for libcuda.so, ";
const REASON_END: &str = "libcuda.so.1 on the dynamic loader's path; install the NVIDIA driver, add the directory holding libcuda.so.1 to LD_LIBRARY_PATH, or set GDSWAP_LIBCUDA=/path/to/libcuda.so.1";

#[test]
fn backends_lists_bounce_unavailable_with_the_reason() {
    require_no_libcuda!();
    // Plain `backends`: the reason in one short clause, pointing at -v.
    let out = run_no_cuda(argv!["backends"]).expect_ok();
    for b in ["bounce ", "gds "] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(b))
            .unwrap_or_else(|| panic!("no {b}line:\n{}", out.stdout));
        assert!(
            line.ends_with("unavailable: libcuda (the NVIDIA driver's CUDA library) not found (`gdswap backends -v` says where gdswap looked and how to point it at one)"),
            "{line}"
        );
    }
    // -v: the reason in full, every name looked for.
    let out = run_no_cuda(argv!["backends", "-v"]).expect_ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("bounce "))
        .unwrap_or_else(|| panic!("no bounce line:\n{}", out.stdout));
    let (_, state) = line
        .split_once(" unavailable: ")
        .unwrap_or_else(|| panic!("bounce is not unavailable: {line}"));
    assert!(state.starts_with(REASON_START), "{line}");
    assert!(state.ends_with(REASON_END), "{line}");
    // Each name once.
    assert_eq!(state.matches("libcuda.so.12,").count(), 1, "{line}");
    // The host backends are still listed as available.
    for b in ["host ", "posix "] {
        let l = out.stdout.lines().find(|l| l.starts_with(b)).unwrap();
        assert!(l.trim_end().ends_with(" available"), "{l}");
    }
}

#[test]
fn run_bounce_without_libcuda_fails_before_touching_files() {
    require_no_libcuda!();
    let d = scratch();
    let data = d.path().join("data");
    let msg = run_no_cuda(with(
        run_argv("bounce", "read", MIB, 256 * KIB, 1),
        argv!["--create-dir", "--dir", &data],
    ))
    .expect_error();
    assert!(
        msg.starts_with(&format!("backend 'bounce' unavailable: {REASON_START}")),
        "{msg}"
    );
    assert!(msg.ends_with(REASON_END), "{msg}");
    assert!(!data.exists(), "a refused run created {}", data.display());
    // The host backend still runs, in the same environment, and its report has none of the
    // GPU backends' fields (the JSON schema is unchanged for it).
    let out = run_no_cuda(with(
        run_argv("host", "read", MIB, 256 * KIB, 1),
        argv!["--create-dir", "--dir", &data, "--verify", "--json", "-"],
    ))
    .expect_ok();
    assert!(out.stderr.starts_with("host read: "), "{}", out.stderr);
    let r = report_from_json(&out.stdout);
    assert!(r.summary.verified && r.pipeline.is_none() && r.params.gpu.is_none());
    assert!(
        !out.stdout.contains("\"pipeline\"") && !out.stdout.contains("\"gpu\""),
        "{}",
        out.stdout
    );
}

#[test]
fn gdswap_libcuda_naming_a_missing_file_is_refused() {
    let d = scratch();
    let missing = d.path().join("no-such-libcuda.so.1");
    let mut cmd = gdswap(with(
        run_argv("bounce", "read", MIB, 256 * KIB, 1),
        argv!["--create-dir", "--dir", d.path()],
    ));
    without_cuda(&mut cmd).env("GDSWAP_LIBCUDA", &missing);
    let msg = outcome(&mut cmd).expect_error();
    assert!(
        msg.starts_with(&format!(
            "backend 'bounce' unavailable: GDSWAP_LIBCUDA={}: cannot load it (",
            missing.display()
        )),
        "{msg}"
    );
    assert!(
        msg.ends_with("point GDSWAP_LIBCUDA at the NVIDIA driver's libcuda.so.1, or unset it"),
        "{msg}"
    );
}

#[test]
fn gdswap_libcuda_naming_a_library_without_cuda_is_refused() {
    let d = scratch();
    let src = d.path().join("empty.c");
    std::fs::write(&src, "int gdswap_not_cuda;\n").unwrap();
    let lib = d.path().join("libnotcuda.so");
    let st = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(st.success());
    let mut cmd = gdswap(argv!["backends"]);
    without_cuda(&mut cmd).env("GDSWAP_LIBCUDA", &lib);
    let out = outcome(&mut cmd).expect_ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("bounce "))
        .unwrap();
    let want = format!(
        "unavailable: GDSWAP_LIBCUDA={}: not a CUDA driver library (",
        lib.display()
    );
    assert!(line.contains(&want), "{line}");
    assert!(
        line.ends_with("point GDSWAP_LIBCUDA at the NVIDIA driver's libcuda.so.1, or unset it"),
        "{line}"
    );
}

/// A libcuda that has only some of the driver functions gdswap calls (a stub, or a driver too
/// old): cudarc would panic at the first missing one, so gdswap checks them all up front and
/// reports the backend unavailable with the missing names. Nothing panics.
#[test]
fn a_libcuda_missing_functions_is_unavailable_not_a_panic() {
    let dir = scratch();
    let src = dir.path().join("stub.c");
    std::fs::write(
        &src,
        "int cuInit(unsigned f) { (void)f; return 0; }\n\
         int cuDriverGetVersion(int *v) { *v = 12080; return 0; }\n",
    )
    .unwrap();
    let lib = dir.path().join("libcuda.so.1");
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed");
    std::fs::copy(&lib, dir.path().join("libcuda.so")).unwrap();
    let stubbed = |args| {
        let mut cmd = gdswap(args);
        without_cuda(&mut cmd).env("LD_LIBRARY_PATH", dir.path());
        outcome(&mut cmd)
    };
    let out = stubbed(argv!["backends"]).expect_ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("bounce "))
        .unwrap_or_else(|| panic!("no bounce line:\n{}", out.stdout));
    assert!(
        line.contains("unavailable: ")
            && line.contains(
                "lacks CUDA driver functions gdswap needs: cuDeviceGetCount, cuDeviceGet,"
            ),
        "{line}"
    );
    let d = dir.path().join("data");
    let msg = stubbed(argv![
        "run",
        "--backend",
        "bounce",
        "--size",
        "1M",
        "--create-dir",
        "--dir",
        &d
    ])
    .expect_error();
    assert!(
        msg.starts_with("backend 'bounce' unavailable: ")
            && msg.contains("lacks CUDA driver functions"),
        "{msg}"
    );
    assert!(!d.exists(), "a refused run made its data directory");
}
