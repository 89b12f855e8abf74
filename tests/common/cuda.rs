//! The fake libcuda (`tests/fakes/fake_cuda.c`): compiled by the tests themselves, once per
//! test process, into `CARGO_TARGET_TMPDIR/fake-cuda/libcuda.so.1`, and found by gdswap
//! through `LD_LIBRARY_PATH` the way a real driver install is (cudarc dlopens `libcuda.so.1`
//! among other names). Nothing test-only is built into the shipped binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variables the fake reads; cleared from every command before a test sets its own.
pub const FAKE_VARS: &[&str] = &[
    "FAKE_CUDA_NO_DEVICE",
    "FAKE_CUDA_DEVICES",
    "FAKE_CUDA_FAIL_CTX",
    "FAKE_CUDA_FAIL_ALLOC",
    "FAKE_CUDA_FAIL_COPY_AFTER_BYTES",
    "FAKE_CUDA_FLIP_DEVICE_BYTE",
    "FAKE_CUDA_COPY_GBPS",
    "FAKE_CUDA_COPY_NO_DATA",
];

/// The directory holding the fake `libcuda.so.1`, compiled on first use.
pub fn fake_libcuda_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_fake("fake-cuda", &[]))
}

/// The directory holding a fake `libcuda.so.1` without the optional device-information
/// functions (`cuDeviceTotalMem_v2`, `cuDeviceGetPCIBusId`), compiled on first use.
pub fn fake_libcuda_without_device_info_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_fake("fake-cuda-no-device-info", &["-DFAKE_CUDA_NO_DEVICE_INFO"]))
}

fn build_fake(subdir: &str, defines: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/fake_cuda.c");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(subdir);
    std::fs::create_dir_all(&dir).expect("create the fake-cuda directory");
    // Each test process compiles its own copy and renames it into place, so concurrent
    // test binaries never see a half-written library.
    let tmp = dir.join(format!("libcuda.so.1.{}", std::process::id()));
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O2", "-pthread", "-Wall", "-Wextra"])
        .args(["-fvisibility=hidden", "-Wl,-soname,libcuda.so.1"])
        .args(defines)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .output()
        .expect("run the C compiler (cc) to build the fake libcuda");
    assert!(
        out.status.success(),
        "building the fake libcuda failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, dir.join("libcuda.so.1")).expect("move the fake libcuda in place");
    dir
}

/// Points `cmd` at the fake libcuda, with no fault injected (tests add their own variables).
pub fn with_fake_cuda(cmd: &mut Command) -> &mut Command {
    without_cuda(cmd).env("LD_LIBRARY_PATH", fake_libcuda_dir())
}

/// Removes every way gdswap could find a libcuda other than the system's own.
pub fn without_cuda(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("GDSWAP_LIBCUDA")
        .env_remove("LD_LIBRARY_PATH");
    for v in FAKE_VARS {
        cmd.env_remove(v);
    }
    cmd
}

/// Whether this machine has a real libcuda on the loader's default path (then the
/// "unavailable" tests have nothing to show).
pub fn system_has_libcuda() -> bool {
    Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libcuda.so"))
        .unwrap_or(false)
}
