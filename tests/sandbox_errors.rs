//! Failures that need the environment bent: another user (uid 65534), resource limits, a
//! tiny filesystem, a seccomp filter. Each gives one clear error line and a non-zero exit,
//! and leaves no file changed that the run had no business changing. Tests that need root
//! to set things up skip with a note when not run as root.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const PERMISSION_HINT: &str = "(not writable or readable by this user: pick another --dir/--file)";

/// A scratch directory (0755, root's) holding a `data` subdirectory that nobody owns.
fn nobody_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = scratch_world_readable();
    let d = dir.path().join("data");
    std::fs::create_dir(&d).unwrap();
    chown(&d, NOBODY, NOBODY);
    (dir, d)
}

/// A pattern file owned by nobody, as a nobody run would have left it.
fn nobody_file(path: &Path, size: u64, seed: u64) {
    make_data_file(path, size, seed);
    chown(path, NOBODY, NOBODY);
}

#[test]
fn unreadable_file() {
    require_root!("unreadable_file");
    let dir = scratch_world_readable();
    let f = dir.path().join("secret");
    make_data_file(&f, MIB, 1);
    chmod(&f, 0o600);
    for backend in ["host", "posix"] {
        let mut cmd = gdswap(argv![
            "run",
            "--backend",
            backend,
            "--op",
            "read",
            "--file",
            &f,
            "--size",
            "1M",
            "--block-size",
            "64K",
            "--seed",
            "1",
            "--verify"
        ]);
        let msg = outcome(as_nobody(&mut cmd)).expect_error();
        assert_eq!(
            msg,
            format!(
                "open failed: {}: Permission denied (os error 13) {PERMISSION_HINT}",
                f.display()
            )
        );
    }
    assert_pattern(&f, 0, MIB, 1);
}

/// Writing into a directory the user may not write: the per-thread file cannot be created,
/// and a subdirectory cannot be made.
#[test]
fn directory_not_writable() {
    require_root!("directory_not_writable");
    let dir = scratch_world_readable();
    let d = dir.path().join("rootonly");
    std::fs::create_dir(&d).unwrap();
    chmod(&d, 0o755);
    let mut cmd = gdswap(argv![
        "run",
        "--op",
        "write",
        "--create-dir",
        "--dir",
        &d,
        "--size",
        "1M",
        "--block-size",
        "64K"
    ]);
    let msg = outcome(as_nobody(&mut cmd)).expect_error();
    assert_eq!(
        msg,
        format!(
            "create failed: {}: Permission denied (os error 13) {PERMISSION_HINT}",
            thread_file(&d, 0).display()
        )
    );
    assert!(dir_names(&d).is_empty());

    let sub = d.join("sub");
    let mut cmd = gdswap(argv![
        "run",
        "--op",
        "read",
        "--create-dir",
        "--dir",
        &sub,
        "--size",
        "1M",
        "--block-size",
        "64K"
    ]);
    let msg = outcome(as_nobody(&mut cmd)).expect_error();
    assert_eq!(
        msg,
        format!(
            "create failed: {}: Permission denied (os error 13) {PERMISSION_HINT}",
            sub.display()
        )
    );
    assert!(dir_names(&d).is_empty());
}

/// Unmounts when dropped, even when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: `c` is a valid NUL-terminated path; umount2 only reads it.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Mounts an 8 MiB tmpfs on a fresh directory, or says why not.
fn small_tmpfs(dir: &Path) -> Option<(PathBuf, Mounted)> {
    let m = dir.join("small");
    std::fs::create_dir(&m).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&m)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let guard = Mounted(m.clone());
            Some((m, guard))
        }
        Ok(o) => {
            eprintln!(
                "note: skipping no-space test: mount failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("note: skipping no-space test: cannot run mount: {e}");
            None
        }
    }
}

/// A 16 MiB write onto an 8 MiB filesystem is refused up front, before the file grows; an
/// earlier file there keeps its length and contents. (`--buffered`: tmpfs takes O_DIRECT only
/// on recent kernels, and the space check does not depend on it.)
#[test]
fn no_space() {
    require_root!("no_space");
    let dir = scratch();
    let Some((m, _mounted)) = small_tmpfs(dir.path()) else {
        return;
    };
    let write = |size: &str, seed: &str| {
        argv![
            "run",
            "--backend",
            "posix",
            "--op",
            "write",
            "--create-dir",
            "--dir",
            &m,
            "--size",
            size,
            "--block-size",
            "64K",
            "--buffered",
            "--loops",
            "1",
            "--warmup",
            "0",
            "--seed",
            seed,
            "--verify"
        ]
    };
    // Fresh: nothing of the file may be written.
    let msg = fail(write("16M", "1"));
    let (head, tail) = msg
        .split_once(" free, ")
        .unwrap_or_else(|| panic!("unexpected: {msg}"));
    assert!(
        head.starts_with(&format!("no space: {} has ", m.display())),
        "{msg}"
    );
    assert_eq!(tail, "the run must write 16MiB; lower --size or free space");
    let f = thread_file(&m, 0);
    assert!(
        !f.exists() || file_len(&f) == 0,
        "the refused write grew {}",
        f.display()
    );

    // Over an earlier 1 MiB file: 15 MiB more are needed, and the file is left alone.
    ok(write("1M", "2"));
    let before = std::fs::read(&f).unwrap();
    let msg = fail(write("16M", "3"));
    assert!(
        msg.starts_with(&format!("no space: {} has ", m.display()))
            && msg.ends_with(" free, the run must write 15MiB; lower --size or free space"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&f).unwrap(), before);
    assert_pattern(&f, 0, MIB, 2);
}

/// RLIMIT_FSIZE of 3 MiB with SIGXFSZ ignored, in the child.
fn fsize_limited(args: Vec<std::ffi::OsString>) -> Command {
    let mut cmd = gdswap(args);
    with_rlimit(&mut cmd, libc::RLIMIT_FSIZE, 3 * MIB);
    ignore_sigxfsz(&mut cmd);
    cmd
}

/// Fresh per-thread files of 4 MiB each under a 3 MiB file size limit: gdswap sets each file
/// to its exact length before writing, so the first file's resize is what fails, naming the
/// file, before any data moves; the files it created hold nothing and are removed again.
#[test]
fn file_size_limit_refuses_fresh_files_before_writing() {
    for backend in ["host", "posix"] {
        if backend == "host" && host_unavailable().is_some() {
            continue;
        }
        let dir = scratch();
        let d = dir.path().join("data");
        let mut cmd = fsize_limited(with(
            run_argv(backend, "write", 8 * MIB, MIB, 1),
            argv!["--create-dir", "--dir", &d, "--threads", "2", "--verify"],
        ));
        let msg = outcome(&mut cmd).expect_error();
        assert_eq!(
            msg,
            format!(
                "resize failed: {}: File too large (os error 27)",
                thread_file(&d, 0).display()
            )
        );
        // Nothing was written, so the files (and the directory) this run created are gone.
        assert!(!d.exists(), "{backend}: left {:?}", dir_names(&d));
    }
}

/// Files that already have their lengths (4 MiB and 3 MiB from a 7 MiB two-thread write with
/// seed 1: per-thread files get seeds 1 and 2) rewritten with seed 2 (seeds 2 and 3) under a
/// 3 MiB file size limit, without --verify (so nothing is zeroed first): thread 1's whole file
/// fits and is written; thread 0's write at 3 MiB fails mid-way, and the error names that file
/// and offset. What is on disk afterwards is exactly that: file 1 all seed 3, file 0 seed 2 up
/// to 3 MiB and its old seed-1 bytes after.
#[test]
fn file_size_limit_fails_a_write_mid_way() {
    for backend in ["host", "posix"] {
        if backend == "host" && host_unavailable().is_some() {
            continue;
        }
        let dir = scratch();
        let d = dir.path().join("data");
        let seeded = |seed: &str, verify: bool| {
            let mut extra = argv![
                "--create-dir",
                "--dir",
                &d,
                "--threads",
                "2",
                "--seed",
                seed
            ];
            if verify {
                extra.push("--verify".into());
            }
            with(run_argv(backend, "write", 7 * MIB, MIB, 1), extra)
        };
        ok(seeded("1", true));
        let (f0, f1) = (thread_file(&d, 0), thread_file(&d, 1));
        assert_eq!((file_len(&f0), file_len(&f1)), (4 * MIB, 3 * MIB));

        let msg = outcome(&mut fsize_limited(seeded("2", false))).expect_error();
        assert_eq!(
            msg,
            format!(
                "write failed: {} at offset {}: File too large (os error 27)",
                f0.display(),
                format_args!("{} (length {})", 3 * MIB, MIB)
            ),
            "{backend}"
        );
        assert_eq!(
            (file_len(&f0), file_len(&f1)),
            (4 * MIB, 3 * MIB),
            "{backend}"
        );
        assert_pattern(&f0, 0, 3 * MIB, 2);
        assert_pattern(&f0, 3 * MIB, MIB, 1);
        assert_pattern(&f1, 0, 3 * MIB, 3);
        // And gdswap itself agrees: file 1 reads back whole with its seed.
        ok(with(
            run_argv(backend, "read", 3 * MIB, MIB, 1),
            argv!["--file", &f1, "--seed", "3", "--verify"],
        ));
    }
}

/// `--fixed-buffers` as an unprivileged user whose RLIMIT_MEMLOCK (64 KiB) cannot hold the
/// buffers: refused up front, naming the limit, with an existing file left exactly as it was
/// (not truncated to the new --size, not extended).
#[test]
fn memlock_too_low_for_fixed_buffers() {
    require_root!("memlock_too_low_for_fixed_buffers");
    require_host_backend!();
    let (_dir, d) = nobody_dir();
    let f = d.join("data");
    nobody_file(&f, 4 * MIB, 5);
    for (op, size, threads, total) in [
        ("write", "1M", "1", "2MiB over 1 threads"),
        ("write", "8M", "2", "8MiB over 2 threads"),
        ("read", "2M", "1", "2MiB over 1 threads"),
    ] {
        let mut cmd = gdswap(argv![
            "run",
            "--backend",
            "host",
            "--op",
            op,
            "--file",
            &f,
            "--size",
            size,
            "--block-size",
            "64K",
            "--threads",
            threads,
            "--fixed-buffers",
            "--seed",
            "6"
        ]);
        as_nobody(&mut cmd);
        with_rlimit(&mut cmd, libc::RLIMIT_MEMLOCK, 64 * KIB);
        let msg = outcome(&mut cmd).expect_error();
        let needed = total.split_once(' ').unwrap().0;
        assert_eq!(
            msg,
            format!(
                "memlock limit too low: --fixed-buffers registration of {total} needs {needed} locked, RLIMIT_MEMLOCK is 64KiB; raise it (ulimit -l unlimited, or memlock in /etc/security/limits.conf) or run without --fixed-buffers"
            ),
            "{op} {size}"
        );
        assert_eq!(file_len(&f), 4 * MIB, "{op} {size} changed the file length");
        assert_pattern(&f, 0, 4 * MIB, 5);
    }
}

/// The default, `--fixed-buffers auto`, as the same unprivileged user: the kernel refuses the
/// registration, so the run goes on with unregistered buffers, verified, and says why.
#[test]
fn memlock_too_low_for_the_default_runs_unregistered() {
    require_root!("memlock_too_low_for_the_default_runs_unregistered");
    require_host_backend!();
    let (_dir, d) = nobody_dir();
    let f = d.join("data");
    nobody_file(&f, 4 * MIB, 5);
    for op in ["write", "read"] {
        let mut cmd = gdswap(argv![
            "run",
            "--backend",
            "host",
            "--op",
            op,
            "--file",
            &f,
            "--size",
            "2M",
            "--block-size",
            "64K",
            "--seed",
            "5",
            "--verify"
        ]);
        as_nobody(&mut cmd);
        with_rlimit(&mut cmd, libc::RLIMIT_MEMLOCK, 64 * KIB);
        let out = outcome(&mut cmd).expect_ok();
        assert!(
            out.stdout.contains(
                "unregistered buffers (not registered: RLIMIT_MEMLOCK 64KiB < 2MiB (CAP_IPC_LOCK, as root has, or a higher limit registers them))"
            ),
            "{op}: {}",
            out.stdout
        );
        // A write of --size 2M leaves a file of exactly that length (run's rule), verified.
        assert_eq!(file_len(&f), 2 * MIB, "{op}");
    }
}

#[test]
fn memlock_for_one_thread_but_not_two_registers_no_thread() {
    // Two threads of 256 KiB buffers (--size 512K, 4 KiB pages) under a 384 KiB memlock
    // limit: one thread's buffers would fit, both together do not. `auto` is settled once for
    // the run: no thread registers (before, thread 0 registered and thread 1 fell back: one
    // run, two I/O paths), and the mode says why for the whole run.
    require_root!("memlock_for_one_thread_but_not_two_registers_no_thread");
    require_host_backend!();
    let (_dir, d) = nobody_dir();
    let f = d.join("data");
    nobody_file(&f, 4 * MIB, 9);
    let json = d.join("r.json");
    let mut cmd = gdswap(argv![
        "run",
        "--backend",
        "host",
        "--op",
        "read",
        "--file",
        &f,
        "--size",
        "512K",
        "--threads",
        "2",
        "--block-size",
        "64K",
        "--queue-depth",
        "4",
        "--huge-pages",
        "off",
        "--seed",
        "9",
        "--verify",
        "--json",
        &json
    ]);
    as_nobody(&mut cmd);
    with_rlimit(&mut cmd, libc::RLIMIT_MEMLOCK, 384 * KIB);
    let out = outcome(&mut cmd).expect_ok();
    let why = "unregistered buffers (not registered: RLIMIT_MEMLOCK 384KiB < 512KiB, 2 threads' \
               buffers together (CAP_IPC_LOCK, as root has, or a higher limit registers them))";
    assert!(out.stdout.contains(why), "{}", out.stdout);
    assert_eq!(read_report(&json).threads.len(), 2);
    // With huge pages (the default), each thread's 1 MiB buffer is mapped, and charged, as a
    // whole 2 MiB page: four threads need 8 MiB, more than a 6 MiB limit, though their 4 MiB
    // of data would fit (counted unrounded, thread 3 alone fell back).
    let mut cmd = gdswap(argv![
        "run",
        "--backend",
        "host",
        "--op",
        "read",
        "--file",
        &f,
        "--size",
        "4M",
        "--threads",
        "4",
        "--block-size",
        "64K",
        "--seed",
        "9",
        "--verify"
    ]);
    as_nobody(&mut cmd);
    with_rlimit(&mut cmd, libc::RLIMIT_MEMLOCK, 6 * MIB);
    let out = outcome(&mut cmd).expect_ok();
    let why = "unregistered buffers (not registered: RLIMIT_MEMLOCK 6MiB < 8MiB, 4 threads' \
               buffers together (CAP_IPC_LOCK, as root has, or a higher limit registers them))";
    assert!(out.stdout.contains(why), "{}", out.stdout);
}

/// `--drop-caches` as a user who may not drop caches: refused before the run starts, so a
/// write leaves the existing file alone and a read of a fresh --dir creates nothing.
#[test]
fn drop_caches_not_permitted() {
    require_root!("drop_caches_not_permitted");
    let (_dir, d) = nobody_dir();
    let f = d.join("data");
    nobody_file(&f, 2 * MIB, 7);
    let check = |args: Vec<std::ffi::OsString>| {
        let mut cmd = gdswap(args);
        let msg = outcome(as_nobody(&mut cmd)).expect_error();
        assert!(
            msg.starts_with("--drop-caches: cannot write /proc/sys/vm/drop_caches: ")
                && msg.ends_with(" (needs root; run without --drop-caches, or as root)"),
            "{msg}"
        );
    };
    for backend in ["host", "posix"] {
        check(with(
            run_argv(backend, "write", MIB, 64 * KIB, 1),
            argv!["--file", &f, "--drop-caches", "--seed", "8"],
        ));
        assert_eq!(
            file_len(&f),
            2 * MIB,
            "{backend} write changed the file length"
        );
        assert_pattern(&f, 0, 2 * MIB, 7);
        let fresh = d.join(format!("fresh-{backend}"));
        check(with(
            run_argv(backend, "read", MIB, 64 * KIB, 1),
            argv!["--create-dir", "--dir", &fresh, "--drop-caches"],
        ));
        assert!(!fresh.exists(), "a refused read made {}", fresh.display());
    }
}

/// As root, `--drop-caches` works (where /proc/sys is writable): the refusal above is about
/// permission, not a broken flag.
#[test]
fn drop_caches_as_root() {
    require_root!("drop_caches_as_root");
    if std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_err()
    {
        eprintln!("note: skipping drop_caches_as_root: /proc/sys/vm/drop_caches is not writable");
        return;
    }
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, MIB, 4);
    let json = dir.path().join("r.json");
    ok(with(
        run_argv("posix", "read", MIB, 64 * KIB, 1),
        argv![
            "--file",
            &f,
            "--drop-caches",
            "--seed",
            "4",
            "--verify",
            "--json",
            &json
        ],
    ));
    assert!(read_report(&json).params.drop_caches);
}

/// Under a seccomp filter that fails io_uring_setup with EPERM (as container runtimes do),
/// the host backend is reported unavailable with the way out, before any file is touched; the
/// posix backend still works; `gdswap backends` says so.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn io_uring_blocked_by_seccomp() {
    let dir = scratch();
    let d = dir.path().join("data");
    let run = |backend: &str| {
        let mut cmd = gdswap(with(
            run_argv(backend, "write", 2 * MIB, 256 * KIB, 1),
            argv!["--create-dir", "--dir", &d, "--verify", "--seed", "3"],
        ));
        deny_io_uring_setup(&mut cmd);
        outcome(&mut cmd)
    };

    let msg = run("host").expect_error();
    assert_eq!(
        msg,
        "backend 'host' unavailable: io_uring_setup failed (Operation not permitted (os error 1)): the kernel has io_uring disabled (sysctl kernel.io_uring_disabled) or a seccomp filter blocks it (common in containers); use --backend posix"
    );
    assert!(!d.exists(), "the refused run made its data directory");

    run("posix").expect_ok();
    assert_eq!(file_len(&thread_file(&d, 0)), 2 * MIB);
    assert_pattern(&thread_file(&d, 0), 0, 2 * MIB, 3);

    let mut cmd = gdswap(argv!["backends"]);
    deny_io_uring_setup(&mut cmd);
    let out = outcome(&mut cmd).expect_ok();
    let host = out.stdout.lines().find(|l| l.starts_with("host ")).unwrap();
    let posix = out
        .stdout
        .lines()
        .find(|l| l.starts_with("posix "))
        .unwrap();
    assert!(
        host.contains("unavailable: io_uring_setup failed (Operation not permitted (os error 1))")
            && host.ends_with("use --backend posix"),
        "{host}"
    );
    assert!(posix.ends_with(" available"), "{posix}");
}
