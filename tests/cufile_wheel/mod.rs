//! NVIDIA's real cuFile, for the tests that check gdswap against it: PyPI's `nvidia-cufile-cu12`
//! wheel (cuFile 1.14 of CUDA 12.9) and `nvidia-cufile` (1.15 to 1.20, CUDA 13), which hold
//! `include/cufile.h` and `lib/libcufile.so.0`, downloaded by the test build with pip, unpacked
//! with Python's zipfile, and cached under the target directory
//! (`CARGO_TARGET_TMPDIR/cufile-wheel/<requirement>/`), so later runs need no network.
//! NVIDIA's files are never committed.
//!
//! If the wheel cannot be had (no pip, no network), the calling test fails with a message that
//! says so: these tests must never pass without having checked anything. The one exception,
//! `try_get`, is for the real-library I/O test (`cufile_real_io.rs`), which prints why it
//! skips; the ABI and loader tests, which need the same wheels, still fail there.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The wheels checked against, pinned so results do not change under our feet: 1.14.1.1 is
/// cuFile 1.14 of CUDA 12.9, the newest of the `-cu12` line (the one most GPU machines run);
/// 1.20.0.107 is cuFile 1.20 of CUDA 13, whose header has the newer constants and error codes.
pub const CU12: &str = "nvidia-cufile-cu12==1.14.1.1";
pub const CU13: &str = "nvidia-cufile==1.20.0.107";
/// cuFile 1.15 (CUDA 13.0): the first with the statistics API, whose layout 1.19 changed.
pub const CU13_115: &str = "nvidia-cufile==1.15.1.6";
/// cuFile 1.16-1.18: 1.15's statistics layout, new constants (VIRTIOFS and P2P in 1.16, the
/// POSIX and fallback I/O mode control bits in 1.17). About 1.3 MB each.
pub const CU13_116: &str = "nvidia-cufile==1.16.0.49";
pub const CU13_117: &str = "nvidia-cufile==1.17.0.44";
pub const CU13_118: &str = "nvidia-cufile==1.18.0.66";
/// cuFile 1.19: the first with the larger (1.20) statistics layout.
pub const CU13_119: &str = "nvidia-cufile==1.19.0.109";

/// The unpacked wheel.
#[derive(Debug)]
pub struct Wheel {
    /// The wheel's file name (it holds the version).
    pub file_name: String,
    /// The directory holding `include/` and `lib/` inside the unpacked wheel (`nvidia/cufile`
    /// for CUDA 12, `nvidia/cu13` for CUDA 13).
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
    /// (major, minor) from the wheel's file name: `nvidia_cufile_cu12-1.14.1.1-...` -> (1, 14).
    pub fn version(&self) -> (u32, u32) {
        let v = self.file_name.split('-').nth(1).unwrap_or_default();
        let mut n = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        (n.next().unwrap_or(0), n.next().unwrap_or(0))
    }
}

/// The CUDA 12 wheel (cuFile 1.14), downloaded and unpacked on first use (and cached across
/// runs). Panics, naming what failed and how to fix it, when it cannot be had.
pub fn wheel() -> &'static Wheel {
    get(CU12)
}

/// The wheel of pip requirement `spec`, as [`wheel`] does.
pub fn get(spec: &'static str) -> &'static Wheel {
    try_get(spec).unwrap_or_else(|e| panic!("{e}"))
}

/// The wheel of pip requirement `spec`, or why it cannot be had (for a test that skips, saying
/// so, rather than fails where PyPI cannot be reached).
pub fn try_get(spec: &'static str) -> Result<&'static Wheel, String> {
    static WHEELS: Mutex<Vec<(&'static str, &'static Wheel)>> = Mutex::new(Vec::new());
    let mut wheels = WHEELS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, w)) = wheels.iter().find(|(s, _)| *s == spec) {
        return Ok(w);
    }
    let w: &'static Wheel = Box::leak(Box::new(fetch(spec)?));
    wheels.push((spec, w));
    Ok(w)
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cufile-wheel")
}

fn fetch(spec: &str) -> Result<Wheel, String> {
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
        .arg(spec)
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
            "the wheel {name} has no nvidia/*/include/cufile.h and lib/libcufile.so.0 \
             (unpacked in {})",
            done.display()
        )
    })
}

/// The wheel unpacked in `dir`, if it is complete.
fn unpacked(dir: &Path) -> Option<Wheel> {
    let file_name = std::fs::read_to_string(dir.join("WHEEL_FILE_NAME")).ok()?;
    std::fs::read_dir(dir.join("nvidia"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| Wheel {
            file_name: file_name.clone(),
            root: e.path(),
        })
        .find(|w| w.header().is_file() && w.library().is_file())
}
