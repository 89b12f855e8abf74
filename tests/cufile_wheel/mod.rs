//! NVIDIA's real cuFile, for the tests that check gdswap against it: PyPI's `nvidia-cufile-cu12`
//! wheel (which holds `include/cufile.h` and `lib/libcufile.so.0`), downloaded by the test
//! build with pip, unpacked with Python's zipfile, and cached under the target directory
//! (`CARGO_TARGET_TMPDIR/cufile-wheel/<version>/`), so later runs use it without the network.
//! NVIDIA's files are never committed.
//!
//! If the wheel cannot be had (no pip, no network), the calling test fails with a message that
//! says so: these tests must never pass without having checked anything.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The wheel checked against, pinned so the result does not change under our feet. 1.14.1.1 is
/// cuFile 1.14 of CUDA 12.9, the newest of the `-cu12` line; `GDSWAP_CUFILE_WHEEL` overrides it
/// (a pip requirement such as `nvidia-cufile-cu12==1.9.1.3`).
pub const WHEEL_SPEC: &str = "nvidia-cufile-cu12==1.14.1.1";

/// The unpacked wheel.
#[derive(Debug)]
pub struct Wheel {
    /// The wheel's file name (it holds the version).
    pub file_name: String,
    /// `nvidia/cufile` inside the unpacked wheel.
    pub root: PathBuf,
}

impl Wheel {
    pub fn header(&self) -> PathBuf {
        self.root.join("include/cufile.h")
    }
    pub fn include_dir(&self) -> PathBuf {
        self.root.join("include")
    }
    pub fn library(&self) -> PathBuf {
        self.root.join("lib/libcufile.so.0")
    }
}

/// The wheel, downloaded and unpacked on first use in this process (and cached across runs).
/// Panics, naming what failed and how to fix it, when it cannot be had.
pub fn wheel() -> &'static Wheel {
    static WHEEL: OnceLock<Wheel> = OnceLock::new();
    WHEEL.get_or_init(|| fetch().unwrap_or_else(|e| panic!("{e}")))
}

fn spec() -> String {
    std::env::var("GDSWAP_CUFILE_WHEEL").unwrap_or_else(|_| WHEEL_SPEC.to_string())
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cufile-wheel")
}

fn fetch() -> Result<Wheel, String> {
    let spec = spec();
    // One directory per requirement, so a changed pin never reuses an old download.
    let key: String = spec
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let done = cache_dir().join(&key);
    if let Some(w) = unpacked(&done) {
        return Ok(w);
    }
    let work = cache_dir().join(format!("{key}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    let out = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--quiet", "--dest"])
        .arg(&work)
        .arg(&spec)
        .output()
        .map_err(|e| {
            format!(
                "cannot run `python3 -m pip` to download the cuFile wheel ({spec}): {e}. \
                 The layout and real-library tests need Python 3 with pip and access to PyPI."
            )
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&work);
        return Err(format!(
            "downloading the cuFile wheel failed: `python3 -m pip download {spec}` exited with \
             {}; these tests need PyPI (or a cached copy under {}).\nstdout: {}\nstderr: {}",
            out.status,
            cache_dir().display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let whl = std::fs::read_dir(&work)
        .map_err(|e| format!("read {}: {e}", work.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("pip downloaded no .whl into {}", work.display()))?;
    let unpack = work.join("unpacked");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
        ])
        .arg(&whl)
        .arg(&unpack)
        .output()
        .map_err(|e| format!("run python3 to unpack {}: {e}", whl.display()))?;
    if !out.status.success() {
        return Err(format!(
            "unpacking {} failed: {}",
            whl.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let name = whl.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(unpack.join("WHEEL_FILE_NAME"), &name)
        .map_err(|e| format!("write into {}: {e}", unpack.display()))?;
    // Publish atomically: another test process may be doing the same; either copy is good.
    if std::fs::rename(&unpack, &done).is_err() && unpacked(&done).is_none() {
        return Err(format!(
            "could not move the unpacked wheel to {}",
            done.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&work);
    unpacked(&done).ok_or_else(|| {
        format!(
            "the wheel {name} has no nvidia/cufile/include/cufile.h and lib/libcufile.so.0 \
             (unpacked in {})",
            done.display()
        )
    })
}

/// The wheel unpacked in `dir`, if it is complete.
fn unpacked(dir: &Path) -> Option<Wheel> {
    let file_name = std::fs::read_to_string(dir.join("WHEEL_FILE_NAME")).ok()?;
    let root = dir.join("nvidia/cufile");
    let w = Wheel { file_name, root };
    (w.header().is_file() && w.library().is_file()).then_some(w)
}
