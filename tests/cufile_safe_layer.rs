//! The safe cuFile layer (driver, file handles, parameter calls, result decoding) and
//! `gdswap check`'s driver probes, against a fake libcufile built from C against the real
//! `cufile.h` (see `cufile_fake/`): what a GPU machine would exercise, without a GPU.

#[macro_use]
mod common;
mod cufile_fake;
mod cufile_wheel;

use std::ffi::CString;
use std::sync::{Arc, Mutex, MutexGuard};

use common::*;
use gdswap::cufile::handle::FileHandle;
use gdswap::cufile::{self, CuFileLib, Driver, DriverProperties};
use gdswap::io::file::{Access, DataFile};
use gdswap_ffi::CUFileBoolConfigParameter;
use serde_json::Value;

/// The driver state is per process: tests that open it take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn fake_lib() -> Arc<CuFileLib> {
    Arc::new(cufile::load(Some(&cufile_fake::fakes().cufile)).unwrap_or_else(|e| panic!("{e}")))
}

/// Calls the fake's own knobs (fake_cufile_set, cuFileUseCount, fake_cufile_handles).
struct Knobs(libloading::Library);

impl Knobs {
    fn new() -> Knobs {
        // SAFETY: the fake is already loaded (RTLD_NODELETE) by fake_lib(); this only takes
        // another reference to it.
        let k = Knobs(unsafe { libloading::Library::new(&cufile_fake::fakes().cufile) }.unwrap());
        // In this process the library's chatter would only clutter the test output.
        k.set("FAKE_CUFILE_QUIET", 1);
        k
    }
    fn set(&self, name: &str, value: i64) {
        let name = CString::new(name).unwrap();
        // SAFETY: fake_cufile_set(const char*, long) -> int, declared so in fake_cufile.c.
        let rc = unsafe {
            let f = self
                .0
                .get::<unsafe extern "C" fn(*const std::ffi::c_char, std::ffi::c_long) -> i32>(
                    b"fake_cufile_set\0",
                )
                .unwrap();
            f(name.as_ptr(), value)
        };
        assert_eq!(rc, 0);
    }
    fn count(&self, symbol: &[u8]) -> i64 {
        // SAFETY: both counters are `long f(void)` in fake_cufile.c.
        unsafe {
            let f = self
                .0
                .get::<unsafe extern "C" fn() -> std::ffi::c_long>(symbol)
                .unwrap();
            f()
        }
    }
    fn opens(&self) -> i64 {
        self.count(b"cuFileUseCount\0")
    }
    fn handles(&self) -> i64 {
        self.count(b"fake_cufile_handles\0")
    }
}

#[test]
fn missing_and_partial_api_groups_are_absent_and_named() {
    let lib = fake_lib();
    let stream = lib.group("stream").unwrap();
    assert!(!stream.present);
    assert_eq!(
        stream.missing,
        [
            "cuFileWriteAsync",
            "cuFileStreamRegister",
            "cuFileStreamDeregister"
        ],
        "cuFileReadAsync alone does not make the group"
    );
    assert!(lib.stream.is_none() && lib.batch.is_none() && lib.stats.is_none());
    assert_eq!(lib.group("batch").unwrap().missing.len(), 5);
    let e = lib.require("stream").unwrap_err();
    assert!(
        e.contains("lacks the stream API (cuFileWriteAsync, "),
        "{e}"
    );
    assert!(e.ends_with("needs cuFile >= 1.7"), "{e}");
    assert!(lib
        .require("batch")
        .unwrap_err()
        .ends_with("needs cuFile >= 1.2"));
    assert!(lib.require("parameters").is_ok() && lib.require("version").is_ok());
    assert_eq!(lib.version().unwrap().unwrap().to_string(), "1.14");
}

#[test]
fn driver_opens_once_and_stays_open_for_the_process() {
    let _g = serial();
    let lib = fake_lib();
    let knobs = Knobs::new();
    Driver::close_if_unused().unwrap();
    assert_eq!(knobs.opens(), 0);
    let a = Driver::open(&lib).unwrap();
    let b = Driver::open(&lib).unwrap();
    let c = a.clone();
    assert_eq!(Driver::users(), 3);
    assert_eq!(knobs.opens(), 1, "cuFileDriverOpen once for all users");
    let props = DriverProperties::decode(&b.properties().unwrap());
    assert_eq!(props.nvidia_fs_version.as_deref(), Some("2.17"));
    assert_eq!(props.supported, ["nvme"]);
    assert!(props.allow_compat_mode);
    assert_eq!(props.best_path(), gdswap::cufile::GdsPath::NvidiaFs);
    drop(a);
    drop(b);
    assert_eq!(knobs.opens(), 1);
    assert!(!Driver::close_if_unused().unwrap(), "c still uses it");
    drop(c);
    assert_eq!(Driver::users(), 0);
    // kvikio's way: no close/reopen between runs; the next user joins the open driver.
    assert_eq!(knobs.opens(), 1, "the last user leaves the driver open");
    drop(Driver::open(&lib).unwrap());
    assert_eq!(knobs.opens(), 1, "and the next user does not open it again");
    assert!(Driver::close_if_unused().unwrap());
    assert_eq!(knobs.opens(), 0, "closed on request when unused");
}

#[test]
fn driver_open_failures_are_decoded_and_leave_no_user() {
    let _g = serial();
    let lib = fake_lib();
    let knobs = Knobs::new();
    Driver::close_if_unused().unwrap();
    knobs.set("FAKE_CUFILE_OPEN_ERR", 5011);
    knobs.set("FAKE_CUFILE_OPEN_CU_ERR", 100);
    let e = Driver::open(&lib).unwrap_err().to_string();
    assert_eq!(
        e,
        "cuFileDriverOpen failed: CU_FILE_CUDA_DRIVER_ERROR (5011): CUDA driver error 100 (CUDA_ERROR_NO_DEVICE)"
    );
    knobs.set("FAKE_CUFILE_OPEN_ERR", 5077);
    let e = Driver::open(&lib).unwrap_err().to_string();
    assert_eq!(e, "cuFileDriverOpen failed: unknown cuFile error 5077");
    assert_eq!(Driver::users(), 0);
    assert!(!Driver::is_open());
    knobs.set("FAKE_CUFILE_OPEN_ERR", 0);
    drop(Driver::open(&lib).unwrap());
    assert_eq!(knobs.opens(), 1);
    assert!(Driver::close_if_unused().unwrap());
    assert_eq!(knobs.opens(), 0);
}

/// cuFile refuses a second registration of a descriptor (5028, "file is already registered
/// under same fd"); the fake does too, and gdswap shares one registration per open file.
#[test]
fn one_registration_per_open_file_shared_by_its_users() {
    let _g = serial();
    let lib = fake_lib();
    let knobs = Knobs::new();
    let dir = scratch();
    let path = dir.path().join("t.bin");
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    let driver = Driver::open(&lib).unwrap();
    let file = Arc::new(DataFile::open(&path, Access::Read, true).unwrap());
    // The rule itself, straight through the library: the second registration is refused.
    let mut descr = gdswap_ffi::CUfileDescr_t::from_fd(file.io_fd());
    let mut first: gdswap_ffi::CUfileHandle_t = std::ptr::null_mut();
    let mut second: gdswap_ffi::CUfileHandle_t = std::ptr::null_mut();
    // SAFETY: the driver is open; `descr` names an open O_DIRECT descriptor; both handles are
    // written by the calls and deregistered below.
    unsafe {
        assert_eq!(
            (lib.required.handle_register)(&mut first, &mut descr).err.0,
            0
        );
        assert_eq!(
            (lib.required.handle_register)(&mut second, &mut descr).err,
            gdswap_ffi::CUfileOpError::HANDLE_ALREADY_REGISTERED
        );
        (lib.required.handle_deregister)(first);
    }
    assert_eq!(knobs.handles(), 0);
    // gdswap: one registration, shared; the last user deregisters it.
    let a = FileHandle::register(&driver, Arc::clone(&file)).unwrap();
    let b = FileHandle::register(&driver, Arc::clone(&file)).unwrap();
    let c = b.clone();
    assert_eq!(a.raw(), b.raw());
    assert_eq!(a.users(), 3);
    assert_eq!(knobs.handles(), 1, "registered once");
    drop(a);
    drop(b);
    assert_eq!(knobs.handles(), 1);
    drop(c);
    assert_eq!(knobs.handles(), 0, "deregistered by the last user");
    // Registered again after that (the descriptor is free again).
    let d = FileHandle::register(&driver, Arc::clone(&file)).unwrap();
    assert_eq!(knobs.handles(), 1);
    // Users on many threads at once: still one registration.
    let handles: Vec<FileHandle> = std::thread::scope(|s| {
        let t: Vec<_> = (0..8)
            .map(|_| s.spawn(|| FileHandle::register(&driver, Arc::clone(&file)).unwrap()))
            .collect();
        t.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(knobs.handles(), 1);
    drop(handles);
    drop(d);
    assert_eq!(knobs.handles(), 0);
    drop(driver);
}

#[test]
fn file_handles_need_o_direct_and_strict_mode_reports_5008() {
    let _g = serial();
    let lib = fake_lib();
    let knobs = Knobs::new();
    let dir = scratch();
    let path = dir.path().join("t.bin");
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    {
        let driver = Driver::open(&lib).unwrap();
        let direct = Arc::new(DataFile::open(&path, Access::Read, true).unwrap());
        let h = FileHandle::register(&driver, Arc::clone(&direct)).unwrap();
        assert!(!h.raw().is_null());
        assert_eq!(knobs.handles(), 1);
        // The handle keeps a driver user after its last other user is gone.
        drop(driver);
        assert_eq!(Driver::users(), 1);
        drop(h);
        assert_eq!(knobs.handles(), 0);
        assert_eq!(Driver::users(), 0);
    }
    let driver = Driver::open(&lib).unwrap();
    let buffered = Arc::new(DataFile::open(&path, Access::Read, false).unwrap());
    let e = FileHandle::register(&driver, buffered)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cuFile needs the file opened with O_DIRECT"),
        "{e}"
    );
    // Parameters can only be set before the driver opens: the fake says 5026, decoded.
    let e = lib
        .set_parameter_bool(
            CUFileBoolConfigParameter::PROPERTIES_ALLOW_COMPAT_MODE,
            false,
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "cuFileSetParameterBool failed: CU_FILE_DRIVER_ALREADY_OPEN (5026): driver is already open"
    );
    drop(driver);
    assert!(Driver::close_if_unused().unwrap());
    // Strict: compat disallowed before opening, and the file is not on a GPUDirect path.
    knobs.set("FAKE_CUFILE_REGISTER_ERR", 5008);
    lib.set_parameter_bool(
        CUFileBoolConfigParameter::PROPERTIES_ALLOW_COMPAT_MODE,
        false,
    )
    .unwrap();
    let driver = Driver::open(&lib).unwrap();
    let direct = Arc::new(DataFile::open(&path, Access::Read, true).unwrap());
    let e = FileHandle::register(&driver, direct)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cuFileHandleRegister failed: {}: CU_FILE_IO_NOT_SUPPORTED (5008)",
            path.display()
        )),
        "{e}"
    );
    assert_eq!(knobs.handles(), 0);
    drop(driver);
    assert!(Driver::close_if_unused().unwrap());
    lib.set_parameter_bool(
        CUFileBoolConfigParameter::PROPERTIES_ALLOW_COMPAT_MODE,
        true,
    )
    .unwrap();
    knobs.set("FAKE_CUFILE_REGISTER_ERR", 0);
}

/// `gdswap check` with the stand-in libcuda on LD_LIBRARY_PATH and the fake libcufile.
fn check_with_fakes(env: &[(&str, &str)]) -> (Outcome, Value) {
    let f = cufile_fake::fakes();
    let dir = scratch();
    std::fs::write(dir.path().join("t.bin"), vec![0u8; 8192]).unwrap();
    let json = dir.path().join("check.json");
    let mut cmd = gdswap(argv![
        "check",
        "--path",
        dir.path().join("t.bin"),
        "--cufile",
        &f.cufile,
        "--json",
        &json,
        "--backend",
        "posix"
    ]);
    cmd.env("LD_LIBRARY_PATH", &f.libcuda_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = outcome(&mut cmd);
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no JSON ({e}): {out:?}")),
    )
    .unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    (out, v)
}

fn gds(v: &Value) -> &Value {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["backend"] == "gds")
        .unwrap()
}

#[test]
fn check_reports_a_gpudirect_file() {
    let (out, v) = check_with_fakes(&[]);
    assert_eq!(v["libcuda"]["found"], true, "{}", v["libcuda"]);
    assert_eq!(v["libcuda"]["driver_cuda_version"], "12.4");
    let d = &v["cufile_driver"];
    assert_eq!(d["examined"], true);
    let props = &d["plain"]["outcome"]["properties"];
    assert_eq!(props["nvidia_fs_version"], "2.17", "{d}");
    assert_eq!(
        props["features"],
        serde_json::json!(["batch_io", "streams", "parallel_io"])
    );
    let reg = &d["strict"]["outcome"]["file_registration"];
    assert_eq!(reg["ok"], true, "{d}");
    assert_eq!(gds(&v)["gds_path"], "gpudirect (nvidia-fs)", "{}", gds(&v));
    // The backend itself is not in this build.
    assert_eq!(gds(&v)["available"], false);
    assert!(
        out.stdout
            .contains("cuFile driver  opened: nvidia-fs 2.17; supports nvme"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("path: gpudirect (nvidia-fs) (strict probe registered the file with compat mode disallowed; driver: nvidia-fs 2.17)"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_reports_compat_when_the_strict_probe_gets_5008() {
    let (out, v) = check_with_fakes(&[("FAKE_CUFILE_REGISTER_ERR", "5008")]);
    let reg = &v["cufile_driver"]["strict"]["outcome"]["file_registration"];
    assert_eq!(reg["not_supported"], true, "{reg}");
    assert_eq!(gds(&v)["gds_path"], "compat (posix via host bounce)");
    assert!(gds(&v)["gds_path_reason"]
        .as_str()
        .unwrap()
        .contains("CU_FILE_IO_NOT_SUPPORTED (5008)"));
    assert!(
        out.stdout.contains("path: compat (posix via host bounce)"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_reports_none_when_cufile_cannot_register_the_file_at_all() {
    // libcufile 1.15.1 on a VM whose disk has no udev properties: 5027 for every file, with
    // compat mode allowed (bench-results/2026-12-04-gpu-checks-h200). check used to call gds
    // available there.
    let (out, v) = check_with_fakes(&[("FAKE_CUFILE_REGISTER_FAIL", "5027")]);
    let reg = &v["cufile_driver"]["plain"]["outcome"]["file_registration"];
    assert_eq!(reg["ok"], false, "{reg}");
    assert_eq!(gds(&v)["gds_path"], "none", "{}", gds(&v));
    let why = gds(&v)["gds_path_reason"].as_str().unwrap();
    assert!(
        why.starts_with("cuFile cannot register files on ")
            && why.contains("CU_FILE_HANDLE_NOT_REGISTERED (5027)"),
        "{why}"
    );
    assert!(
        out.stdout.contains("  register     ") && out.stdout.contains("(5027)"),
        "{}",
        out.stdout
    );
    // Without the fault the plain probe registers the file too.
    let (_, v) = check_with_fakes(&[]);
    let reg = &v["cufile_driver"]["plain"]["outcome"]["file_registration"];
    assert_eq!(reg["ok"], true, "{reg}");
}

#[test]
fn check_reports_p2pdma_without_nvidia_fs() {
    let (_, v) = check_with_fakes(&[
        ("FAKE_CUFILE_NVFS_MAJOR", "0"),
        ("FAKE_CUFILE_NVFS_MINOR", "0"),
        ("FAKE_CUFILE_FFLAGS", "0x10"),
    ]);
    let props = &v["cufile_driver"]["plain"]["outcome"]["properties"];
    assert!(props["nvidia_fs_version"].is_null(), "{props}");
    assert_eq!(gds(&v)["gds_path"], "gpudirect (p2pdma)");
}

#[test]
fn check_reports_a_driver_that_does_not_open() {
    let (out, v) = check_with_fakes(&[("FAKE_CUFILE_OPEN_ERR", "5001")]);
    let plain = &v["cufile_driver"]["plain"]["outcome"];
    assert_eq!(plain["opened"], false);
    assert!(v["cufile_driver"]["strict"].is_null());
    assert_eq!(gds(&v)["gds_path"], "none");
    assert!(gds(&v)["gds_path_reason"]
        .as_str()
        .unwrap()
        .contains("CU_FILE_DRIVER_NOT_INITIALIZED (5001)"));
    assert!(
        out.stdout
            .contains("cuFile driver  open failed: cuFileDriverOpen failed: CU_FILE_DRIVER_NOT_INITIALIZED (5001)"),
        "{}",
        out.stdout
    );
}
