//! Builds the test fakes with gcc: a fake `libcufile` compiled against NVIDIA's own `cufile.h`
//! (from the wheel, see `cufile_wheel/`), so the fake and gdswap's `ffi/` meet on the real
//! ABI, and a stand-in `libcuda.so.1` with only `cuDriverGetVersion` (what `gdswap check`
//! reads). Built into `CARGO_TARGET_TMPDIR/cufile-fakes/` on first use in each test process,
//! published by rename so concurrent test processes never load a half-written file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Fakes {
    /// The fake libcufile: no batch API, of the stream API only `cuFileReadAsync`.
    pub cufile: PathBuf,
    /// The same fake built with `-DFAKE_CUFILE_FULL`: stream and batch APIs too.
    pub cufile_full: PathBuf,
    /// The full fake without the parameter API (`-DFAKE_CUFILE_NO_PARAMS`), like cuFile 1.13.
    pub cufile_no_params: PathBuf,
    /// A directory holding the stand-in `libcuda.so.1` (for LD_LIBRARY_PATH).
    pub libcuda_dir: PathBuf,
}

const STUB_CUDA_H: &str = "#pragma once
typedef enum cudaError_enum { CUDA_SUCCESS = 0 } CUresult;
typedef struct CUstream_st *CUstream;
";

fn gcc(src: &Path, out: &Path, include: &[&Path]) {
    gcc_with(src, out, include, &[]);
}

fn gcc_with(src: &Path, out: &Path, include: &[&Path], defines: &[&str]) {
    let tmp = out.with_extension(format!("tmp.{}", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(["-shared", "-fPIC", "-O1", "-pthread", "-Wall", "-Werror"])
        .args(defines)
        .arg("-o")
        .arg(&tmp);
    for i in include {
        cmd.arg("-I").arg(i);
    }
    let o = cmd
        .arg(src)
        .arg("-ldl")
        .output()
        .expect("run gcc to build a test fake");
    assert!(
        o.status.success(),
        "building {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, out).expect("publish the fake");
}

pub fn fakes() -> &'static Fakes {
    static FAKES: OnceLock<Fakes> = OnceLock::new();
    FAKES.get_or_init(|| {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cufile_fake");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cufile-fakes");
        let stub = dir.join("stub");
        let libcuda_dir = dir.join("libcuda");
        std::fs::create_dir_all(&stub).unwrap();
        std::fs::create_dir_all(&libcuda_dir).unwrap();
        std::fs::write(stub.join("cuda.h"), STUB_CUDA_H).unwrap();
        let header_dir = super::cufile_wheel::wheel().include_dir();
        let cufile = dir.join("libcufile-fake.so");
        gcc(&here.join("fake_cufile.c"), &cufile, &[&stub, &header_dir]);
        let cufile_full = dir.join("libcufile-fake-full.so");
        gcc_with(
            &here.join("fake_cufile.c"),
            &cufile_full,
            &[&stub, &header_dir],
            &["-DFAKE_CUFILE_FULL"],
        );
        let cufile_no_params = dir.join("libcufile-fake-noparams.so");
        gcc_with(
            &here.join("fake_cufile.c"),
            &cufile_no_params,
            &[&stub, &header_dir],
            &["-DFAKE_CUFILE_FULL", "-DFAKE_CUFILE_NO_PARAMS"],
        );
        gcc(
            &here.join("fake_libcuda.c"),
            &libcuda_dir.join("libcuda.so.1"),
            &[],
        );
        Fakes {
            cufile,
            cufile_full,
            cufile_no_params,
            libcuda_dir,
        }
    })
}
