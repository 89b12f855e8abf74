//! `gdswap check` on this machine: the host rows against what the kernel says (mountinfo,
//! sysfs, getrlimit), the verdicts and exit status, the real libcufile from the wheel, and bad
//! input.

#[macro_use]
mod common;
mod cufile_wheel;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use serde_json::Value;

/// Runs `gdswap check` on a fresh scratch directory (returned: it is removed when dropped).
fn check_json(extra: Vec<std::ffi::OsString>) -> (tempfile::TempDir, Outcome, Value) {
    let dir = scratch();
    let json = dir.path().join("check.json");
    let mut args = argv!["check", "--path", dir.path(), "--json", &json];
    args.extend(extra);
    let out = outcome(&mut gdswap(args));
    let text =
        std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no JSON written ({e}): {out:?}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema"], "gdswap.check.v1");
    assert_eq!(v["path"]["path"], dir.path().to_str().unwrap());
    (dir, out, v)
}

fn verdict<'a>(v: &'a Value, backend: &str) -> &'a Value {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["backend"] == backend)
        .unwrap_or_else(|| panic!("no verdict for {backend}: {v}"))
}

#[test]
fn host_rows_match_the_kernel() {
    let (_dir, out, v) = check_json(argv!["--backend", "posix"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let p = &v["path"];
    assert_eq!(p["kind"], "directory");
    // The filesystem as gdswap's run reports see it.
    let dir = Path::new(p["path"].as_str().unwrap());
    let fs = gdswap::env::filesystem_of(dir);
    assert_eq!(p["filesystem"]["fs_type"], fs.fs_type.as_str());
    assert_eq!(p["filesystem"]["mount_point"], fs.mount_point.as_str());
    // The scratch directory is on the build's disk, where O_DIRECT works (the run tests rely on it).
    assert_eq!(p["o_direct"]["works"], true, "{p}");
    assert!(p["o_direct"]["alignment"].as_u64().unwrap() >= 1);
    // The block device, from the path's st_dev, independently of gdswap.
    let dev = std::fs::metadata(dir).unwrap().dev();
    let sys = format!("/sys/dev/block/{}:{}", libc::major(dev), libc::minor(dev));
    if Path::new(&sys).exists() {
        let b = &p["block_device"];
        assert_eq!(
            b["major_minor"],
            format!("{}:{}", libc::major(dev), libc::minor(dev))
        );
        let disk = if Path::new(&sys).join("partition").exists() {
            format!("{sys}/..")
        } else {
            sys.clone()
        };
        let lbs: u64 = std::fs::read_to_string(format!("{disk}/queue/logical_block_size"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(b["logical_block_size"], lbs, "{b}");
    } else {
        assert!(p["block_device"].is_null());
        assert!(p["block_device_note"]
            .as_str()
            .unwrap()
            .contains("no block device"));
    }
    // io_uring as the backends list sees it.
    assert_eq!(
        v["io_uring"]["works"],
        host_unavailable().is_none(),
        "{}",
        v["io_uring"]
    );
    if v["io_uring"]["works"] == true {
        let ops = v["io_uring"]["opcodes"].as_array().unwrap();
        assert!(ops
            .iter()
            .any(|o| o["name"] == "READ" && o["supported"] == true));
    }
    // RLIMIT_MEMLOCK as getrlimit says.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        // SAFETY: getrlimit writes one rlimit into the valid pointer.
        unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) },
        0
    );
    if lim.rlim_cur == libc::RLIM_INFINITY {
        assert!(v["memlock"]["limit_bytes"].is_null());
    } else {
        assert_eq!(v["memlock"]["limit_bytes"], lim.rlim_cur);
    }
    // Verdicts, in order; GPU backends are not in this build, and without libcuda say so.
    let names: Vec<_> = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["backend"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["host", "posix", "bounce", "gds"]);
    assert_eq!(verdict(&v, "posix")["available"], true);
    for gpu in ["bounce", "gds"] {
        assert_eq!(verdict(&v, gpu)["available"], false);
    }
    if v["libcuda"]["found"] == false {
        assert_eq!(v["libcuda"]["tried"][0]["name"], "libcuda.so.1");
        assert!(verdict(&v, "gds")["reason"]
            .as_str()
            .unwrap()
            .contains("libcuda.so.1 not found"));
        assert_eq!(verdict(&v, "gds")["gds_path"], "none");
        assert_eq!(verdict(&v, "gds")["gds_path_reason"], "no CUDA driver");
        assert_eq!(v["gpus"]["examined"], false);
        // The driver is not opened without libcuda unless asked to.
        assert_eq!(v["cufile_driver"]["examined"], false);
    }
    // The text: one labelled line each, and the verdicts.
    for label in [
        "libcuda",
        "libcufile",
        "path",
        "O_DIRECT",
        "io_uring",
        "memlock",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(label)),
            "no {label} line:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("\nposix    available: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\ngds      unavailable: "),
        "{}",
        out.stdout
    );
}

#[test]
fn exit_status_follows_the_requested_backends() {
    let dir = scratch();
    // gds is unavailable without a GPU, so the default (all backends) fails too.
    for args in [argv!["--backend", "gds"], argv![]] {
        let mut a = argv!["check", "--path", dir.path()];
        a.extend(args);
        let out = outcome(&mut gdswap(a));
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(
            out.stderr.starts_with("gdswap: error: backend '"),
            "{}",
            out.stderr
        );
        assert!(out.stdout.contains("backend  verdict"));
    }
    let out = outcome(&mut gdswap(argv![
        "check",
        "--path",
        dir.path(),
        "--backend",
        "gds"
    ]));
    assert!(out
        .stderr
        .starts_with("gdswap: error: backend 'gds' unavailable: "));
    // JSON on stdout: the text goes to stderr, and stdout is JSON alone.
    let out = outcome(&mut gdswap(argv![
        "check",
        "--path",
        dir.path(),
        "--json",
        "-",
        "--backend",
        "posix"
    ]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["schema"], "gdswap.check.v1");
    assert!(out.stderr.contains("backend  verdict"));
}

#[test]
fn host_verdict_follows_io_uring() {
    let dir = scratch();
    let mut cmd = gdswap(argv!["check", "--path", dir.path(), "--backend", "host"]);
    deny_io_uring_setup(&mut cmd);
    let out = outcome(&mut cmd);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .starts_with("gdswap: error: backend 'host' unavailable: io_uring_setup failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("io_uring       does not work: "),
        "{}",
        out.stdout
    );
    // posix does not need io_uring.
    let mut cmd = gdswap(argv!["check", "--path", dir.path(), "--backend", "posix"]);
    deny_io_uring_setup(&mut cmd);
    assert_eq!(outcome(&mut cmd).code, Some(0));
}

#[test]
fn real_libcufile_by_flag_and_by_environment() {
    let lib = cufile_wheel::wheel().library();
    let (_dir, _, v) = check_json(argv!["--cufile", &lib, "--backend", "posix"]);
    let row = &v["libcufile"];
    assert_eq!(row["found"], true, "{row}");
    assert_eq!(row["version"], "1.14");
    assert_eq!(row["path"], lib.canonicalize().unwrap().to_str().unwrap());
    let groups = row["groups"].as_array().unwrap();
    let stats = groups.iter().find(|g| g["name"] == "statistics").unwrap();
    assert_eq!(stats["present"], false);
    assert_eq!(stats["since"], "1.15");
    assert!(groups
        .iter()
        .any(|g| g["name"] == "batch" && g["present"] == true));

    let dir = scratch();
    let json = dir.path().join("c.json");
    let out = outcome(
        gdswap(argv![
            "check",
            "--path",
            dir.path(),
            "--json",
            &json,
            "--backend",
            "posix"
        ])
        .env("GDSWAP_CUFILE_PATH", &lib),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("(version 1.14; "), "{}", out.stdout);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["libcufile"]["found"], true);
    // A wrong path is reported with why, and the GDS verdict names it when libcuda is there.
    let (_dir, _, v) = check_json(argv!["--cufile", "/nonexistent/libcufile.so.0"]);
    assert_eq!(v["libcufile"]["found"], false);
    assert_eq!(
        v["libcufile"]["tried"][0]["name"],
        "/nonexistent/libcufile.so.0"
    );
}

#[test]
fn bad_input_is_one_line_naming_the_flag() {
    let msg = fail(argv!["check", "--json", "/nonexistent/dir/c.json"]);
    assert!(
        msg.starts_with("--json: cannot write /nonexistent/dir/c.json: "),
        "{msg}"
    );
    let out = outcome(&mut gdswap(argv!["check", "--backend", "nope"]));
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("'--backend <NAME>'"), "{}", out.stderr);
    // A path that does not exist is an error naming the flag (issue 15).
    let dir = scratch();
    let missing = dir.path().join("not/yet");
    let msg = fail(argv!["check", "--path", &missing, "--backend", "posix"]);
    assert!(
        msg.starts_with(&format!(
            "--path: {}: cannot examine it: ",
            missing.display()
        )),
        "{msg}"
    );
}

#[test]
fn driver_probe_without_a_gpu_fails_clearly_in_a_child() {
    if gdswap::cufile::loader::probe_libcuda().file.is_some() {
        eprintln!("note: libcuda present: the no-GPU outcome cannot be checked here");
        return;
    }
    // cuFile 1.14: a decoded 5033, and cuFile's log saying why.
    let lib = cufile_wheel::get(cufile_wheel::CU12).library();
    let (dir, out, v) = check_json(argv![
        "--cufile",
        &lib,
        "--open-driver",
        "--backend",
        "posix"
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let d = &v["cufile_driver"];
    assert_eq!(d["examined"], true, "{d}");
    let plain = &d["plain"]["outcome"];
    assert_eq!(plain["opened"], false, "{d}");
    assert!(plain["error"]
        .as_str()
        .unwrap()
        .starts_with("cuFileDriverOpen failed: CU_FILE_NVFS_SETUP_ERROR (5033)"));
    assert!(
        d["strict"].is_null(),
        "no strict probe when the driver does not open: {d}"
    );
    let log = d["plain"]["log_tail"].to_string();
    assert!(log.contains("cuFile initialization failed"), "{log}");
    assert!(
        out.stdout.contains(
            "cuFile driver  open failed: cuFileDriverOpen failed: CU_FILE_NVFS_SETUP_ERROR (5033)"
        ),
        "{}",
        out.stdout
    );
    // Nothing left behind: no cufile.log here or in the checked directory.
    assert!(!Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cufile.log")
        .exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only check.json"
    );

    // cuFile 1.20: fails or (where /proc/modules is missing) spins; either way the check ends
    // on time with a clear row.
    let lib = cufile_wheel::get(cufile_wheel::CU13).library();
    let started = std::time::Instant::now();
    let (_dir, out, v) = check_json(argv![
        "--cufile",
        &lib,
        "--open-driver",
        "--driver-timeout",
        "2",
        "--backend",
        "posix"
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let plain = &v["cufile_driver"]["plain"];
    match plain["outcome"].as_object() {
        Some(o) => assert_eq!(o["opened"], false, "{plain}"),
        None => assert!(
            plain["failure"]
                .as_str()
                .unwrap()
                .starts_with("cuFileDriverOpen did not return within 2 s"),
            "{plain}"
        ),
    }
}

#[test]
fn udev_row_says_whether_libcufile_can_register_files_on_the_device() {
    // udev's database as gdswap reads it (GDSWAP_UDEV_ROOT stands for /run/udev): without the
    // block device's ID_FS_USAGE and ID_FS_TYPE, real libcufile 1.15.1 refuses every file
    // there with 5027 (tests/cufile_real_io.rs); the row says so before any CUDA is involved.
    let dir = scratch();
    let dev = std::fs::metadata(dir.path()).unwrap().dev();
    let mm = format!("{}:{}", libc::major(dev), libc::minor(dev));
    if !Path::new(&format!("/sys/dev/block/{mm}")).exists() {
        eprintln!("SKIPPED: the scratch directory is not on a block device ({mm}): no udev row");
        return;
    }
    let udev = dir.path().join("run-udev");
    std::fs::create_dir_all(udev.join("data")).unwrap();
    let run = |name: &str| {
        let json = dir.path().join(format!("{name}.json"));
        let args = argv![
            "check",
            "--path",
            dir.path(),
            "--backend",
            "posix",
            "--json",
            &json
        ];
        let out = outcome(gdswap(args).env("GDSWAP_UDEV_ROOT", &udev));
        assert_eq!(out.code, Some(0), "{out:?}");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let row = out
            .stdout
            .lines()
            .find(|l| l.starts_with("  udev "))
            .unwrap_or_else(|| panic!("no udev row:\n{}", out.stdout))
            .to_string();
        (row, v["path"]["udev"].clone())
    };
    let entry = udev.join("data").join(format!("b{mm}"));
    let (row, json) = run("absent");
    assert!(
        row.contains(&format!(
            "{} is absent: no ID_FS_USAGE or ID_FS_TYPE;",
            entry.display()
        )),
        "{row}"
    );
    assert!(
        row.contains("refuses every file on this device with 5027"),
        "{row}"
    );
    assert_eq!(json["present"], false, "{json}");
    assert!(json["id_fs_usage"].is_null(), "{json}");

    std::fs::write(&entry, "E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=ext4\n").unwrap();
    let (row, json) = run("present");
    assert!(
        row.ends_with(
            "ID_FS_USAGE=filesystem, ID_FS_TYPE=ext4 (what libcufile needs to register files)"
        ),
        "{row}"
    );
    assert_eq!(json["present"], true, "{json}");
    assert_eq!(json["id_fs_type"], "ext4", "{json}");
}

#[test]
fn stale_cufile_statistics_segments_are_listed_with_their_removal() {
    // libcufile keys its statistics segment by process id (cufile::stats); one left by a
    // process that ended with cuFile open is keyed by its creator's pid and attached by
    // nobody. Made here in an IPC namespace of the test's own (`unshare --ipc`, root): a
    // child of python makes one under its own pid and exits; a live process makes another
    // under its own pid (not listed: its creator runs); python makes one keyed 7 (not its
    // pid: not listed); then `check` lists the stale one.
    if let Some(why) = own_sysv_segments_missing() {
        eprintln!("SKIPPED stale segments: {why}");
        return;
    }
    let dir = scratch();
    let json = dir.path().join("check.json");
    let live = "import ctypes,os,time; l=ctypes.CDLL(None)\n\
                if l.shmget(os.getpid(),4096,0o3644)<0: os._exit(1)\n\
                print(os.getpid()); open('ready','w').close(); time.sleep(20)";
    let make = "import ctypes,os,sys; l=ctypes.CDLL(None)\n\
                pid=os.fork()\n\
                if pid==0:\n    os._exit(0 if l.shmget(os.getpid(),31888,0o3644)>=0 else 1)\n\
                _,st=os.waitpid(pid,0)\n\
                if st!=0 or l.shmget(7,4096,0o3644)<0: sys.exit(1)\n\
                print(pid)";
    let script = format!(
        "python3 -c \"$LIVE\" >live.pid 2>/dev/null </dev/null & \
         while [ ! -e ready ]; do sleep 0.05; done; \
         python3 -c '{make}' && exec \"$0\" \"$@\""
    );
    let out = outcome(
        std::process::Command::new("unshare")
            .args(["--ipc", "--", "sh", "-c", &script, BIN, "check", "--path"])
            .arg(dir.path())
            .arg("--json")
            .arg(&json)
            .env("LIVE", live)
            .current_dir(dir.path()),
    );
    let stale_pid: i64 = out
        .stdout
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid printed: {out:?}"));
    let live_pid = std::fs::read_to_string(dir.path().join("live.pid")).unwrap();
    assert!(!live_pid.trim().is_empty(), "the live segment was not made");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("cufile stats"))
        .unwrap_or_else(|| panic!("no cufile stats row: {out:?}"));
    assert!(
        line.contains(&format!("1 left behind (pids {stale_pid}; ")) && line.contains("`ipcrm -m "),
        "{line}"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let stale = v["cufile_stats_segments"]["stale"].as_array().unwrap();
    assert_eq!(stale.len(), 1, "{v}");
    assert_eq!(stale[0]["key"], stale_pid);
    assert_eq!(stale[0]["creator"], stale_pid);
    assert_eq!(stale[0]["size"], 31888);
    assert_eq!(stale[0]["attached"], 0);
    // Outside such a namespace, the row is there too (whatever this machine holds).
    let (_d, _out, v) = check_json(vec![]);
    assert!(v["cufile_stats_segments"]["stale"].is_array(), "{v}");
    assert!(v["cufile_stats_segments"]["error"].is_null(), "{v}");
}
