//! gdswap's cuFile loader and safe layer against NVIDIA's real `libcufile.so.0` (from the
//! `nvidia-cufile-cu12` wheel, see `cufile_wheel/`), on whatever machine runs the tests.
//!
//! What the real library does here, found by running it: it loads without libcuda (it opens
//! `libcuda.so.1` itself, lazily), `cuFileGetVersion` works without a driver or a GPU, and
//! `cuFileDriverOpen` on a machine without libcuda prints three lines to *stdout*, writes them
//! to `cufile.log` in the current directory (or to `CUFILE_LOGFILE_PATH`), and returns
//! `CU_FILE_NVFS_SETUP_ERROR` (5033) with `cu_err` 0; it does not crash, and a second open fails
//! the same way. cuFile 1.20 (CUDA 13) goes further on the same machine: it logs that libcuda
//! is missing, switches to compat mode, and then spins forever in `cuFileDriverOpen` when
//! `/proc/modules` cannot be read (as in this sandbox): it is never opened here. (With a
//! libcuda, 1.14 and 1.15 spin there too; `cufile_real_io.rs` gives them a `/proc/modules`.) Because of the
//! output, the log file and such hangs, the driver is opened in a child process (this test
//! binary run again for one ignored test) with its own directory and log path, under a time
//! limit; the parent checks how the child ended and what it said.

mod cufile_wheel;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gdswap::cufile::{self, CuFileVersion, Driver};

fn libcuda_present() -> bool {
    // SAFETY: test-only probe; loading the CUDA driver library runs its initialisers, which is
    // what any CUDA program does. It is dropped (dlclose) at once.
    unsafe { libloading::Library::new("libcuda.so.1") }.is_ok()
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|e| panic!("canonicalize {}: {e}", p.display()))
}

#[test]
fn real_library_loads_and_reports_its_symbol_groups_and_version() {
    let wheel = cufile_wheel::wheel();
    let lib = cufile::load(Some(&wheel.library())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        canonical(lib.file.as_deref().expect("dladdr names the mapped file")),
        canonical(&wheel.library())
    );
    // 1.14 has everything but the statistics API (1.15+).
    for g in ["use_count", "version", "stream", "batch", "parameters"] {
        let group = lib.group(g).unwrap();
        assert!(
            group.present,
            "{g} missing from {}: {group:?}",
            wheel.file_name
        );
        assert!(group.missing.is_empty());
        assert!(lib.require(g).is_ok());
    }
    assert!(lib.stream.is_some() && lib.batch.is_some() && lib.parameters.is_some());
    let stats = lib.group("statistics").unwrap();
    assert!(!stats.present);
    assert!(stats.missing.contains(&"cuFileStatsStart"), "{stats:?}");
    assert!(lib.stats.is_none());
    let e = lib.require("statistics").unwrap_err();
    assert!(e.contains("lacks the statistics API"), "{e}");
    assert!(e.ends_with("needs cuFile >= 1.15"), "{e}");

    let version = lib
        .version()
        .expect("1.14 has cuFileGetVersion")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        version,
        CuFileVersion {
            major: 1,
            minor: 14
        }
    );
    assert!(
        wheel.file_name.contains(&format!("-{version}.")),
        "{} vs {version}",
        wheel.file_name
    );
}

#[test]
fn cufile_1_15_and_1_20_have_every_group_statistics_included() {
    // Both are loaded into this process by path: each must resolve into its own file (they
    // share the SONAME libcufile.so.0).
    for (spec, minor) in [(cufile_wheel::CU13_115, 15), (cufile_wheel::CU13, 20)] {
        let wheel = cufile_wheel::get(spec);
        let lib = cufile::load(Some(&wheel.library())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            canonical(lib.file.as_deref().unwrap()),
            canonical(&wheel.library())
        );
        for g in lib.groups() {
            assert!(g.present, "{spec}: {g:?}");
        }
        assert_eq!(lib.groups().len(), 6);
        assert!(lib.stats.is_some());
        let version = lib.version().unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version, CuFileVersion { major: 1, minor });
    }
}

#[test]
fn a_wrongly_named_library_is_not_replaced_by_another() {
    // The loader's own list: a named path is the only candidate, and a wrong one is not
    // replaced silently by whatever the system has.
    let wheel = cufile_wheel::wheel();
    let wrong = wheel.library().with_file_name("libcufile.so.99");
    let e = cufile::load(Some(&wrong)).unwrap_err();
    assert_eq!(e.attempts.len(), 1);
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{} (given path): No such file", wrong.display())),
        "{msg}"
    );
}

/// Run by `driver_open_without_gpu_is_a_clear_error` in a child process; run alone, it opens
/// the driver of the wheel's library in this process (and prints what happened).
#[test]
#[ignore = "opens the real cuFile driver, which prints and writes a log: run in a child process by driver_open_without_gpu_is_a_clear_error"]
fn driver_open_child() {
    let path = std::env::var_os("GDSWAP_TEST_CUFILE_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| cufile_wheel::wheel().library());
    let lib = Arc::new(cufile::load(Some(&path)).unwrap_or_else(|e| panic!("{e}")));
    for attempt in 1..=2 {
        match Driver::open(&lib) {
            Ok(driver) => {
                let props = driver.properties();
                println!("RESULT {attempt}: open ok, properties {props:?}");
                assert_eq!(Driver::users(), 1);
                drop(driver);
            }
            Err(e) => println!("RESULT {attempt}: error: {e}"),
        }
        assert_eq!(Driver::users(), 0);
    }
}

#[test]
fn driver_open_without_gpu_is_a_clear_error() {
    let wheel = cufile_wheel::wheel();
    let dir = tempfile::Builder::new()
        .prefix("cufile-open-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let log = dir.path().join("cufile-test.log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "driver_open_child", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("GDSWAP_TEST_CUFILE_LIB", wheel.library())
        .env("CUFILE_LOGFILE_PATH", &log)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run this test binary again as the child");
    // The output is a few lines: it fits the pipes, so waiting before reading cannot block.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cuFileDriverOpen of {} hung for 60 s",
                wheel.library().display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!(
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // No crash, no abort: the child test ran to its end.
    assert!(out.status.success(), "{all}");
    assert!(stdout.contains("1 passed"), "{all}");
    let results: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("RESULT "))
        .collect();
    assert_eq!(results.len(), 2, "{all}");
    if libcuda_present() {
        // A CUDA machine: opening may work (or fail for a reason of that machine); either
        // way the outcome is a clear line, not a crash.
        eprintln!("libcuda present; cuFileDriverOpen said: {results:?}");
        return;
    }
    for r in &results {
        assert!(
            r.contains(": error: cuFileDriverOpen failed: CU_FILE_"),
            "not a clear decoded error: {r}\n{all}"
        );
    }
    if wheel.file_name.contains("-1.14.1.1-") {
        assert!(
            results[0].ends_with(
                "error: cuFileDriverOpen failed: CU_FILE_NVFS_SETUP_ERROR (5033): NVFS driver \
                 initialization error (cuFile could not initialise: no usable CUDA driver \
                 (libcuda.so.1) or GPU, or nvidia-fs setup failed; cufile.log says which)"
            ),
            "{all}"
        );
    }
    // The library logs where it was told to, and says why: libcuda is missing.
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("libcuda.so.1"),
        "log {}: {logged}",
        log.display()
    );
    assert!(!dir.path().join("cufile.log").exists());
}
