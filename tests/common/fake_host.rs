//! The fake host files (`tests/fakes/fake_host.c`) for the tests that run NVIDIA's real
//! libcufile: an LD_PRELOAD library, compiled here, that gives libcufile a `/proc/modules` and
//! udevd's database (`/run/udev/data/b<major>:<minor>`) of the test's making, so it runs the
//! same on machines without either (a kernel without modules, a container or VM without
//! udevd). Why libcufile needs them is in the C file's header.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The compiled `libfakehost.so`, built once per test process.
pub fn library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/fake_host.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-host");
        std::fs::create_dir_all(&dir).expect("create the fake-host directory");
        let tmp = dir.join(format!("libfakehost.so.{}", std::process::id()));
        let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror"])
            .arg("-o")
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl")
            .output()
            .expect("run the C compiler (cc) to build the fake host library");
        assert!(
            out.status.success(),
            "building the fake host library failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lib = dir.join("libfakehost.so");
        std::fs::rename(&tmp, &lib).expect("move the fake host library in place");
        lib
    })
}

/// What the fake host files say, made in `dir`: an empty module list, and udev properties
/// for the block device holding `data` (what udevd's blkid rule records for a filesystem).
pub struct HostFiles {
    pub modules: PathBuf,
    pub udev: PathBuf,
}

/// The block device (major, minor) holding `path`, or why there is none: a filesystem not on
/// a block device of its own (tmpfs, overlayfs: libcufile finds no udev device for it and
/// refuses the file whatever udev says) or one sysfs does not list.
pub fn block_device(path: &Path) -> Result<(u32, u32), String> {
    let dev = std::fs::metadata(path)
        .map_err(|e| format!("stat {}: {e}", path.display()))?
        .dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if major == 0 || !sys.exists() {
        return Err(format!(
            "{} is on device {major}:{minor}, which is not a block device in sysfs ({} absent): \
             libcufile cannot register files there",
            path.display(),
            sys.display()
        ));
    }
    Ok((major, minor))
}

/// The filesystem type udev's blkid would record for `path`, for the types GDS supports.
pub fn fs_type(path: &Path) -> Result<&'static str, String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in a path");
    // SAFETY: struct statfs is plain integers, for which all-zero bytes are a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs writes one struct statfs into `st`; `c` is a valid C string.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(format!(
            "statfs {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    match st.f_type {
        0xEF53 => Ok("ext4"),
        0x5846_5342 => Ok("xfs"),
        0x9123_683E => Ok("btrfs"),
        t => Err(format!(
            "{} is on a filesystem of type {t:#x}, not ext4, xfs or btrfs",
            path.display()
        )),
    }
}

/// Writes the fake host files into `dir` for files under `data`; with `udev_properties`
/// false, udev's database is there but says nothing about the device (as on a host where
/// udevd never ran).
pub fn host_files(dir: &Path, data: &Path, udev_properties: bool) -> Result<HostFiles, String> {
    let (major, minor) = block_device(data)?;
    let fs = fs_type(data)?;
    let modules = dir.join("proc-modules");
    std::fs::write(&modules, "").map_err(|e| format!("write {}: {e}", modules.display()))?;
    let udev = dir.join("run-udev");
    let db = udev.join("data");
    std::fs::create_dir_all(&db).map_err(|e| format!("create {}: {e}", db.display()))?;
    if udev_properties {
        let entry = db.join(format!("b{major}:{minor}"));
        std::fs::write(
            &entry,
            format!("E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE={fs}\n"),
        )
        .map_err(|e| format!("write {}: {e}", entry.display()))?;
    }
    Ok(HostFiles { modules, udev })
}

/// Points `cmd` at the fake host files.
pub fn with_host_files<'a>(cmd: &'a mut Command, files: &HostFiles) -> &'a mut Command {
    cmd.env("LD_PRELOAD", library())
        .env("FAKE_HOST_PROC_MODULES", &files.modules)
        .env("FAKE_HOST_RUN_UDEV", &files.udev)
}
