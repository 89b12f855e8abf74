//! gdswap touches only its own files (issue 15, items 1, 5 and 6): no data file is opened
//! through a symbolic link, a FIFO or another user's file; check's scratch file has no
//! guessable name; a missing --dir is not created silently; result files are written
//! atomically; failed runs are recorded in --json and leave no empty files behind.
//!
//! Each test plants the trap, runs the real binary, and checks what it said, its exit status
//! and that nothing outside gdswap's own files changed. Tests that need root (chown, mount)
//! skip with a note otherwise.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const VICTIM: &[u8] = b"a file gdswap must never touch\n";

/// A victim file outside the data directory, and a data directory.
fn victim_and_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = scratch();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, VICTIM).unwrap();
    let d = dir.path().join("data");
    std::fs::create_dir(&d).unwrap();
    (dir, victim, d)
}

fn assert_victim_unchanged(victim: &Path) {
    assert_eq!(
        std::fs::read(victim).unwrap(),
        VICTIM,
        "{} was changed",
        victim.display()
    );
}

fn symlink_refusal(path: &Path) -> String {
    format!(
        "refusing {}: it is a symbolic link, and gdswap never opens a data file through a link (give the file itself, or remove the link)",
        path.display()
    )
}

/// Runs the command, killing it if it has not ended within `limit` (a blocked open): the test
/// then fails instead of hanging.
fn outcome_within(cmd: &mut Command, limit: Duration) -> Outcome {
    let command = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command} still ran after {limit:?} (blocked?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Outcome {
        command,
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn posix(op: &str) -> Vec<OsString> {
    let mut a = run_argv("posix", op, MIB, 64 * KIB, 1);
    a.push("--buffered".into());
    a
}

/// A symlink planted as a per-thread data file, pointing at a victim: a read (which would
/// first fill the file with the pattern) and a write are both refused, naming the link; the
/// victim and the link stay as they were.
#[test]
fn dir_data_file_that_is_a_symlink_is_refused() {
    for op in ["read", "write"] {
        let (_dir, victim, d) = victim_and_dir();
        let link = thread_file(&d, 0);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let msg = fail(with(posix(op), argv!["--dir", &d]));
        assert_eq!(msg, symlink_refusal(&link), "{op}");
        assert_victim_unchanged(&victim);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        // A dangling link (to a file that does not exist yet) is refused too, and nothing is
        // created at its target.
        let missing = d.join("created-through-the-link");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&missing, &link).unwrap();
        let msg = fail(with(posix(op), argv!["--dir", &d]));
        assert_eq!(msg, symlink_refusal(&link), "{op}");
        assert!(!missing.exists(), "{op} created the link's target");
    }
}

/// `--file LINK` for a write, and for a read: refused, the target unchanged.
#[test]
fn file_that_is_a_symlink_is_refused() {
    let (_dir, victim, d) = victim_and_dir();
    let link = d.join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    for op in ["write", "read"] {
        let msg = fail(with(posix(op), argv!["--file", &link]));
        assert_eq!(msg, symlink_refusal(&link), "{op}");
        assert_victim_unchanged(&victim);
    }
}

/// A data file owned by another user is not written (even by root), and neither is a file with
/// a second hard link (the other name could be anyone's file).
#[test]
fn foreign_and_hard_linked_files_are_not_written() {
    require_root!("foreign_and_hard_linked_files_are_not_written");
    let (_dir, victim, d) = victim_and_dir();
    let f = thread_file(&d, 0);
    std::fs::write(&f, VICTIM).unwrap();
    chown(&f, NOBODY, NOBODY);
    let msg = fail(with(posix("write"), argv!["--dir", &d]));
    assert_eq!(
        msg,
        format!(
            "refusing {}: it is owned by uid {NOBODY}, not by this user (uid 0); gdswap writes only files its user owns (give another --file/--dir, or remove the file)",
            f.display()
        )
    );
    assert_victim_unchanged(&f);
    // A read of the same directory would refill the foreign file with the pattern: refused too.
    let msg = fail(with(posix("read"), argv!["--dir", &d]));
    assert!(msg.contains("owned by uid 65534"), "{msg}");
    assert_victim_unchanged(&f);

    std::fs::remove_file(&f).unwrap();
    std::fs::hard_link(&victim, &f).unwrap();
    let msg = fail(with(posix("write"), argv!["--file", &f]));
    assert_eq!(
        msg,
        format!(
            "refusing {}: it has 2 hard links; gdswap writes only a file with one name (give another --file/--dir)",
            f.display()
        )
    );
    assert_victim_unchanged(&victim);
}

/// A FIFO as `--file` (read and write), as `--config`, or as a `report` input is refused at
/// once, naming it, instead of blocking forever in open or read.
#[test]
fn fifo_inputs_are_refused_at_once() {
    let dir = scratch();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let limit = Duration::from_secs(20);
    for op in ["read", "write"] {
        let msg = outcome_within(&mut gdswap(with(posix(op), argv!["--file", &fifo])), limit)
            .expect_error();
        assert_eq!(
            msg,
            format!(
                "refusing {}: it is a FIFO, not a regular file (gdswap reads and writes only regular files)",
                fifo.display()
            ),
            "{op}"
        );
    }
    let msg = outcome_within(
        &mut gdswap(argv![
            "run",
            "--backend",
            "posix",
            "--file",
            &fifo,
            "--size",
            "1M",
            "--config",
            &fifo
        ]),
        limit,
    )
    .expect_error();
    assert_eq!(
        msg,
        format!(
            "--config {}: cannot read it: it is a FIFO, not a regular file",
            fifo.display()
        )
    );
    let out = dir.path().join("report");
    let msg =
        outcome_within(&mut gdswap(argv!["report", &fifo, "--out", &out]), limit).expect_error();
    assert_eq!(
        msg,
        format!(
            "open failed: {}: it is a FIFO, not a regular file",
            fifo.display()
        )
    );
    assert!(!out.exists());
}

/// Plants, in the child just before exec, a symbolic link named as the old `check` scratch
/// file (`DIR/.gdswap-check.<pid>`, with the pid the child will keep through exec) pointing
/// at `target`. Built without allocating after the fork.
fn plant_check_scratch_link(cmd: &mut Command, dir: &Path, target: &Path) {
    let mut prefix = dir.as_os_str().as_encoded_bytes().to_vec();
    prefix.extend_from_slice(b"/.gdswap-check.");
    let target = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: the hook runs in the forked child before exec; it calls only getpid and symlink
    // (async-signal-safe) and writes into a stack buffer; the prefix and target were built
    // before the fork and are owned by the closure.
    unsafe {
        cmd.pre_exec(move || {
            let mut buf = [0u8; 4096];
            let n = prefix.len();
            if n + 24 > buf.len() {
                return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
            }
            buf[..n].copy_from_slice(&prefix);
            let mut pid = libc::getpid() as u64;
            let mut digits = [0u8; 20];
            let mut k = 0;
            loop {
                digits[k] = b'0' + (pid % 10) as u8;
                k += 1;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            for i in 0..k {
                buf[n + i] = digits[k - 1 - i];
            }
            buf[n + k] = 0;
            if libc::symlink(target.as_ptr(), buf.as_ptr() as *const libc::c_char) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `check --path DIR` on a directory where someone planted the predictable scratch name as a
/// link to a victim: the victim is not overwritten and the planted link is not deleted
/// (gdswap deletes only what it created); the O_DIRECT row still reports on the directory.
#[test]
fn check_scratch_file_cannot_be_planted() {
    let (dir, victim, d) = victim_and_dir();
    let json = dir.path().join("check.json");
    let mut cmd = gdswap(argv![
        "check",
        "--path",
        &d,
        "--backend",
        "posix",
        "--json",
        &json
    ]);
    plant_check_scratch_link(&mut cmd, &d, &victim);
    outcome(&mut cmd).expect_ok();
    assert_victim_unchanged(&victim);
    let names = dir_names(&d);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(".gdswap-check."), "{names:?}");
    assert!(std::fs::symlink_metadata(d.join(&names[0]))
        .unwrap()
        .file_type()
        .is_symlink());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["path"]["o_direct"]["works"], true, "{v}");
}

/// `check --path LINK` (a link to a file) and `check --path MISSING` are errors naming the
/// flag, exit 1; the victim is unchanged.
#[test]
fn check_path_must_exist_and_not_be_a_link_to_a_file() {
    let (_dir, victim, d) = victim_and_dir();
    let link = d.join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let msg = fail(argv!["check", "--path", &link, "--backend", "posix"]);
    assert_eq!(
        msg,
        format!(
            "--path: {}: is a symbolic link; gdswap never opens a data file through a link (give the file itself)",
            link.display()
        )
    );
    assert_victim_unchanged(&victim);
    let missing = d.join("nonexistent");
    let msg = fail(argv!["check", "--path", &missing, "--backend", "posix"]);
    assert_eq!(
        msg,
        format!(
            "--path: {}: cannot examine it: No such file or directory (os error 2)",
            missing.display()
        )
    );
    // A link to a directory is a directory: files are opened inside it.
    let dlink = d.join("dlink");
    std::os::unix::fs::symlink(&d, &dlink).unwrap();
    ok(argv!["check", "--path", &dlink, "--backend", "posix"]);
}

/// A `--dir` that does not exist is an error naming the flag, and nothing is created;
/// `--create-dir` allows it; the default data directory is created as before.
#[test]
fn missing_dir_needs_create_dir() {
    let dir = scratch();
    let d = dir.path().join("no").join("such");
    for op in ["write", "read"] {
        let msg = fail(with(posix(op), argv!["--dir", &d]));
        assert_eq!(
            msg,
            format!(
                "--dir: {} does not exist; create it, or pass --create-dir to let gdswap create it (a mistyped directory would measure another disk)",
                d.display()
            )
        );
        assert!(!dir.path().join("no").exists(), "{op} created a directory");
    }
    // compare refuses before its first contender runs (no "comparing ..." line, nothing run).
    let mut cmd = gdswap(argv![
        "compare",
        "--size",
        "1M",
        "--block-size",
        "256K",
        "--rounds",
        "1",
        "--loops",
        "1",
        "--warmup",
        "0",
        "--peers",
        "none",
        "--backends",
        "posix",
        "--dir",
        &d
    ]);
    let out = outcome(&mut cmd);
    assert!(
        !out.stderr.contains("comparing"),
        "compare ran first: {}",
        out.stderr
    );
    assert_eq!(
        out.expect_error(),
        format!(
            "--dir: {} does not exist; create it, or pass --create-dir to let gdswap create it (a mistyped directory would measure another disk)",
            d.display()
        )
    );
    assert!(
        !dir.path().join("no").exists(),
        "compare created a directory"
    );
    ok(with(posix("write"), argv!["--dir", &d, "--create-dir"]));
    assert_eq!(file_len(&thread_file(&d, 0)), MIB);

    // The default data directory ($GDSWAP_DATA_DIR) is created when missing.
    let default = dir.path().join("default-data");
    let mut cmd = gdswap(posix("write"));
    cmd.env("GDSWAP_DATA_DIR", &default);
    outcome(&mut cmd).expect_ok();
    assert_eq!(file_len(&thread_file(&default, 0)), MIB);

    // Set but empty: an error naming the variable, for run, sweep and check.
    for args in [
        posix("write"),
        argv!["sweep", "--out", dir.path().join("sw"), "--size", "1M"],
        argv!["check", "--backend", "posix"],
    ] {
        let mut cmd = gdswap(args);
        cmd.env("GDSWAP_DATA_DIR", "");
        assert_eq!(
            outcome(&mut cmd).expect_error(),
            "GDSWAP_DATA_DIR: is set but empty; set it to a directory, or unset it to use ./gdswap-data"
        );
    }
    assert!(!dir.path().join("sw").exists());
}

/// A refused run leaves no empty data file and no directory it made: here --block-size is
/// not a multiple of the O_DIRECT alignment, which is known only once the file is open.
#[test]
fn refused_runs_leave_nothing_they_created() {
    let dir = scratch();
    let d = dir.path().join("data");
    std::fs::create_dir(&d).unwrap();
    let args = |op: &str, target: Vec<OsString>| {
        with(
            argv![
                "run",
                "--backend",
                "posix",
                "--op",
                op,
                "--size",
                "1M",
                "--block-size",
                "1000"
            ],
            target,
        )
    };
    for op in ["write", "read"] {
        let msg = fail(args(op, argv!["--dir", &d]));
        assert!(
            msg.starts_with("--block-size: 1000B is not a multiple of "),
            "{msg}"
        );
        assert!(dir_names(&d).is_empty(), "{op} left {:?}", dir_names(&d));
        // A directory it was allowed to create is removed again.
        let fresh = dir.path().join("fresh").join("sub");
        fail(args(op, argv!["--dir", &fresh, "--create-dir"]));
        assert!(
            !dir.path().join("fresh").exists(),
            "{op} left its directory"
        );
    }
    let f = d.join("file");
    fail(args("write", argv!["--file", &f]));
    assert!(!f.exists(), "a refused write left {}", f.display());
    // An existing file is never removed, even when empty.
    std::fs::write(&f, b"").unwrap();
    fail(args("write", argv!["--file", &f]));
    assert!(f.exists());
}

/// `sweep --resume` with an --out that does not exist fails, naming the flag, and creates
/// nothing.
#[test]
fn sweep_resume_without_out_creates_nothing() {
    let dir = scratch();
    let out = dir.path().join("missing-out");
    let d = dir.path().join("data");
    std::fs::create_dir(&d).unwrap();
    let msg = fail(argv![
        "sweep",
        "--resume",
        "--out",
        &out,
        "--dir",
        &d,
        "--backends",
        "posix",
        "--size",
        "1M",
        "--block-size",
        "64K",
        "--queue-depth",
        "1",
        "--threads",
        "1"
    ]);
    assert_eq!(
        msg,
        format!(
            "--out: {} does not exist (or is not a directory), so there is no sweep to resume; run without --resume to start one",
            out.display()
        )
    );
    assert!(!out.exists());
}

/// A failed run is recorded by `--json` (run and compare): the schema's header fields and an
/// `error` with its kind and message, exit 1. Here a read --verify of a file written with
/// another seed, whose message also says how to get a good file again.
#[test]
fn failed_runs_are_recorded_in_json() {
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, MIB, 1);
    // Wrong bytes under an intact header: what a failed write leaves behind.
    flip_byte(&f, 5000);
    let json = dir.path().join("run.json");
    let msg = fail(with(
        posix("read"),
        argv!["--file", &f, "--seed", "1", "--verify", "--json", &json],
    ));
    assert_eq!(
        msg,
        format!(
            "verify failed: {} at offset 5000: expected byte 0x{:02x}, found 0x{:02x}; the block header there is intact, its contents are not; the file holds other data (another run's, or a failed write's): rewrite it with `gdswap run --op write` and the same --file/--dir, --size and --seed, or delete it",
            f.display(),
            read_range(&f, 5000, 1)[0] ^ 0xff,
            read_range(&f, 5000, 1)[0],
        )
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "gdswap.run.v1");
    assert_eq!(v["error"]["kind"], "verify");
    assert_eq!(v["error"]["message"], msg.as_str());
    assert_eq!(v["params"]["backend"], "posix");
    assert_eq!(v["params"]["seed"], 1);
    assert!(v["environment"]["hostname"].is_string());
    assert!(
        v.get("summary").is_none(),
        "no figures for a failed run: {v}"
    );
    // `gdswap report` says what the file is rather than failing obscurely.
    let msg = fail(argv!["report", &json, "--out", dir.path().join("rep")]);
    assert!(msg.contains("records a failed run"), "{msg}");

    let cjson = dir.path().join("compare.json");
    let out = outcome(&mut gdswap(argv![
        "compare",
        "--backends",
        "posix",
        "--peers",
        "none",
        "--rounds",
        "1",
        "--file",
        &f,
        "--size",
        "1M",
        "--block-size",
        "64K",
        "--seed",
        "1",
        "--verify",
        "--buffered",
        "--json",
        &cjson
    ]));
    assert_eq!(out.code, Some(1), "{out:?}");
    let last = out.stderr.lines().last().unwrap();
    let msg = last.strip_prefix(ERROR_PREFIX).unwrap();
    assert!(
        msg.starts_with("posix (round 1 of 1): verify failed: "),
        "{msg}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cjson).unwrap()).unwrap();
    assert_eq!(v["schema"], "gdswap.compare.v1");
    assert_eq!(v["error"]["kind"], "verify");
    assert_eq!(v["error"]["message"], msg);
    assert_eq!(v["params"]["size_bytes"], MIB);
}

/// A run on tmpfs (/dev/shm) warns that it does not measure a block device, in the text and
/// in the JSON's warnings.
#[test]
fn tmpfs_target_warns() {
    let shm = Path::new("/dev/shm");
    // SAFETY: statfs writes one struct for a valid NUL-terminated path.
    let is_tmpfs = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c"/dev/shm".as_ptr(), &mut st) == 0 && st.f_type == 0x0102_1994
    };
    if !is_tmpfs {
        eprintln!("note: skipping tmpfs_target_warns: /dev/shm is not a tmpfs here");
        return;
    }
    let d = tempfile::Builder::new()
        .prefix("gdswap-it-")
        .tempdir_in(shm)
        .unwrap();
    let json = d.path().join("r.json");
    let out = ok(with(
        posix("write"),
        argv!["--dir", d.path(), "--verify", "--json", &json],
    ));
    assert!(
        out.stderr.contains(
            "warning: the data is on tmpfs, not a local block device: these figures measure tmpfs, not a disk\n  hint: put --file/--dir on a filesystem on the NVMe device to be measured"
        ),
        "{}",
        out.stderr
    );
    let r = read_report(&json);
    assert!(r.warnings.iter().any(|w| w.code == "not-block-device"));
    // On the build's own filesystem (a disk): no such warning.
    let dir = scratch();
    let out = ok(with(posix("write"), argv!["--dir", dir.path(), "--verify"]));
    assert!(
        !out.stderr.contains("not a local block device"),
        "{}",
        out.stderr
    );
}

/// Unmounts when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path; umount2 only reads it.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A result file on a full filesystem: the write fails with ENOSPC, naming the file, exit 1,
/// and the earlier result is intact (not truncated to 0 bytes); no temporary file is left.
#[test]
fn result_file_on_a_full_filesystem_is_never_left_empty() {
    require_root!("result_file_on_a_full_filesystem_is_never_left_empty");
    let dir = scratch();
    let m = dir.path().join("small");
    std::fs::create_dir(&m).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&m)
        .status();
    if !st.is_ok_and(|s| s.success()) {
        eprintln!("note: skipping: cannot mount a tmpfs here");
        return;
    }
    let _mounted = Mounted(m.clone());
    let data = dir.path().join("data");
    make_data_file(&data, MIB, 1);
    let json = m.join("r.json");
    let run = || {
        with(
            posix("read"),
            argv!["--file", &data, "--seed", "1", "--json", &json],
        )
    };
    ok(run());
    let before = std::fs::read(&json).unwrap();
    assert!(!before.is_empty());
    // Fill the filesystem.
    let filler = m.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    // The run itself succeeds (its figures are printed); writing the result fails.
    let last_error = |out: Outcome| {
        assert_eq!(out.code, Some(1), "{out:?}");
        let line = out.stderr.lines().last().unwrap().to_string();
        line.strip_prefix(ERROR_PREFIX).unwrap().to_string()
    };
    let msg = last_error(outcome(&mut gdswap(run())));
    assert!(
        msg.starts_with(&format!(
            "write failed: {}: No space left on device",
            json.display()
        )),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&json).unwrap(),
        before,
        "the earlier result changed"
    );
    assert_eq!(dir_names(&m), ["filler", "r.json"]);
    // A result file that did not exist is not created empty either.
    let fresh = m.join("fresh.json");
    let msg = last_error(outcome(&mut gdswap(with(
        posix("read"),
        argv!["--file", &data, "--seed", "1", "--json", &fresh],
    ))));
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(!fresh.exists());
    assert_eq!(dir_names(&m), ["filler", "r.json"]);
    assert_eq!(std::fs::metadata(&json).unwrap().nlink(), 1);
}

/// A sweep writes best.json (and its other result files) atomically, by renaming a private
/// file into place: a symbolic link planted at best.json is replaced, its target untouched.
#[test]
fn sweep_best_json_replaces_a_planted_link() {
    let dir = scratch();
    let out = dir.path().join("sweep");
    std::fs::create_dir(&out).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, out.join("best.json")).unwrap();
    ok(argv![
        "sweep",
        "--backends",
        "posix",
        "--block-size",
        "64K",
        "--queue-depth",
        "1",
        "--threads",
        "1",
        "--size",
        "1M",
        "--rounds",
        "1",
        "--loops",
        "1",
        "--warmup",
        "0",
        "--create-dir",
        "--dir",
        dir.path().join("d"),
        "--out",
        &out
    ]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let best = out.join("best.json");
    assert!(std::fs::symlink_metadata(&best)
        .unwrap()
        .file_type()
        .is_file());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&best).unwrap()).unwrap();
    assert!(v.is_object(), "{v}");
}
