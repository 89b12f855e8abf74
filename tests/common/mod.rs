//! Shared helpers for the integration tests: run the real `gdswap` binary on real files in
//! scratch directories under the build's target directory (ext4 with O_DIRECT; never /tmp,
//! which may be a tmpfs), and check what it printed, exported and left on disk.
//!
//! Each test binary uses its own subset of these helpers.
#![allow(dead_code, unused_macros)]

pub mod cuda;
pub mod fake_host;
pub mod sysfs;

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use gdswap::report::RunReport;

pub const BIN: &str = env!("CARGO_BIN_EXE_gdswap");
pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
/// The uid and gid of `nobody`, used to run the binary without privileges.
pub const NOBODY: u32 = 65534;
/// The prefix of every error gdswap reports itself.
pub const ERROR_PREFIX: &str = "gdswap: error: ";
/// Bytes per pattern granule (each starts with a 32-byte header).
pub const GRANULE: u64 = 4096;

/// Builds a command line from strings, paths and owned strings alike:
/// `argv!["run", "--file", &path, "--size", n.to_string()]`.
macro_rules! argv {
    ($($a:expr),* $(,)?) => {
        vec![$(::std::ffi::OsString::from($a)),*]
    };
}

/// A fresh scratch directory under `CARGO_TARGET_TMPDIR`, removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("create CARGO_TARGET_TMPDIR");
    tempfile::Builder::new()
        .prefix("gdswap-it-")
        .tempdir_in(base)
        .expect("create a scratch directory")
}

/// A scratch directory that other users may enter (0755) but not write into.
pub fn scratch_world_readable() -> tempfile::TempDir {
    let d = scratch();
    chmod(d.path(), 0o755);
    d
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {uid}:{gid} {}: {e}", path.display()));
}

pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Returns from the calling test with a printed note when it does not run as root.
macro_rules! require_root {
    ($what:expr) => {
        if !$crate::common::is_root() {
            eprintln!("note: skipping {}: needs root", $what);
            return;
        }
    };
}

/// Returns from the calling test with a printed note when the host (io_uring) backend cannot
/// run here (a container whose seccomp profile blocks io_uring, for instance).
macro_rules! require_host_backend {
    () => {
        if let Some(why) = $crate::common::host_unavailable() {
            eprintln!("note: skipping host-backend test: {why}");
            return;
        }
    };
}

/// Why `gdswap backends` says the host backend cannot run, or None when it can.
pub fn host_unavailable() -> Option<String> {
    let out = outcome(&mut gdswap(argv!["backends"])).expect_ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("host "))
        .unwrap_or_else(|| panic!("`gdswap backends` lists no host backend:\n{}", out.stdout))
        .to_string();
    if line.trim_end().ends_with(" available") {
        None
    } else {
        Some(line)
    }
}

/// A `gdswap` command with the given arguments, run from the scratch base directory (so a
/// test that forgot --dir would not litter the source tree) and without GDSWAP_DATA_DIR.
pub fn gdswap(args: Vec<OsString>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env_remove("GDSWAP_DATA_DIR");
    cmd
}

/// Runs the command as `nobody` (uid and gid 65534, no supplementary groups, no capabilities).
pub fn as_nobody(cmd: &mut Command) -> &mut Command {
    cmd.uid(NOBODY).gid(NOBODY)
}

/// Sets a resource limit (soft and hard) in the child just before it executes gdswap.
pub fn with_rlimit(cmd: &mut Command, resource: libc::__rlimit_resource_t, value: u64) {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: the hook runs in the forked child before exec and only calls setrlimit, which is
    // async-signal-safe, on a value built before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(resource, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Restricts the child to the CPUs `cpus` (sched_setaffinity just before it executes gdswap),
/// as `taskset -c` or a launcher's `--bind-to` would: the affinity the process inherits.
pub fn with_cpu_affinity(cmd: &mut Command, cpus: &[usize]) {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        assert!(c < libc::CPU_SETSIZE as usize, "CPU {c} past CPU_SETSIZE");
        // SAFETY: c < CPU_SETSIZE (asserted), so CPU_SET stays inside the set.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: the hook runs in the forked child before exec and only calls sched_setaffinity,
    // a plain system call, on a set built before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes SIGXFSZ ignored in the child, so exceeding RLIMIT_FSIZE fails the write with EFBIG
/// instead of killing the process (an ignored disposition survives exec).
pub fn ignore_sigxfsz(cmd: &mut Command) {
    // SAFETY: the hook runs in the forked child before exec and only calls signal(), which is
    // async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// Installs, in the child just before exec, a seccomp filter that makes `io_uring_setup` fail
/// with EPERM (as Docker's default profile does) and allows everything else. A system call
/// made with another architecture's convention kills the process, so the syscall number
/// check cannot be bypassed.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn deny_io_uring_setup(cmd: &mut Command) {
    fn stmt(code: u32, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }
    fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt,
            jf,
            k,
        }
    }
    // struct seccomp_data { int nr; __u32 arch; ... }
    const NR_OFFSET: u32 = 0;
    const ARCH_OFFSET: u32 = 4;
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARCH_OFFSET),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            AUDIT_ARCH_NATIVE,
            1,
            0,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_io_uring_setup as u32,
            0,
            1,
        ),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA),
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: the hook runs in the forked child before exec. It only calls prctl, which is
    // async-signal-safe, and allocates nothing: the filter was built before the fork and is
    // owned by the closure, so the pointer in `prog` is valid while prctl copies the program
    // into the kernel.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as libc::c_ushort,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// What a finished gdswap process did.
#[derive(Debug)]
pub struct Outcome {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn outcome(cmd: &mut Command) -> Outcome {
    let command = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    Outcome {
        command,
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

impl Outcome {
    /// Asserts exit status 0 and nothing on stderr that looks like an error.
    pub fn expect_ok(self) -> Outcome {
        assert_eq!(
            self.code,
            Some(0),
            "expected success from {}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains(ERROR_PREFIX),
            "a successful run printed an error:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts exit status 1 and exactly one line on stderr, `gdswap: error: ...`, with nothing
    /// on stdout; returns the message after the prefix.
    pub fn expect_error(self) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "expected exit status 1 from {}\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.stdout,
            self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "a failed run printed on stdout:\n{}",
            self.stdout
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one error line from {}, got:\n{}",
            self.command,
            self.stderr
        );
        lines[0]
            .strip_prefix(ERROR_PREFIX)
            .unwrap_or_else(|| panic!("error line lacks '{ERROR_PREFIX}': {}", lines[0]))
            .to_string()
    }
}

/// Runs `gdswap <args>` and asserts it succeeds.
pub fn ok(args: Vec<OsString>) -> Outcome {
    outcome(&mut gdswap(args)).expect_ok()
}

/// Runs `gdswap <args>` and asserts it fails with one error line; returns the message.
pub fn fail(args: Vec<OsString>) -> String {
    outcome(&mut gdswap(args)).expect_error()
}

/// Reads a JSON export written by `--json`; it must hold exactly one report.
pub fn report_from_json(text: &str) -> RunReport {
    let raw: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("export is not JSON ({e}):\n{text}"));
    assert_eq!(raw["schema"], "gdswap.run.v1", "{text}");
    let mut reports = gdswap::report::json::from_json(text)
        .unwrap_or_else(|e| panic!("export does not match the report schema ({e}):\n{text}"));
    assert_eq!(reports.len(), 1);
    reports.pop().expect("one report")
}

pub fn read_report(path: &Path) -> RunReport {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    report_from_json(&text)
}

/// The number of requests gdswap cuts `len` bytes into, at block size `bs` and O_DIRECT
/// alignment `align`: each block whose length is not a multiple of `align` becomes an aligned
/// part (if any) and a tail.
pub fn expected_requests(len: u64, bs: u64, align: u64) -> u64 {
    let mut n = 0;
    let mut pos = 0;
    while pos < len {
        let piece = bs.min(len - pos);
        n += u64::from(piece / align > 0) + u64::from(piece % align > 0);
        pos += piece;
    }
    n
}

/// Asserts the figures every successful report must hold: `bytes` = size × loops, a latency
/// count equal to the request count, positive bandwidth and times, and per-thread entries that
/// add up.
pub fn assert_sane(r: &RunReport, size: u64, loops: u32, threads: usize) {
    let s = &r.summary;
    assert_eq!(r.schema, "gdswap.run.v1");
    assert_eq!(r.params.workload.size, size);
    assert_eq!(r.params.workload.loops, loops);
    assert_eq!(r.params.workload.threads, threads);
    assert_eq!(s.bytes, size * u64::from(loops), "bytes = size * loops");
    assert_eq!(r.loops.len(), loops as usize, "one entry per measured loop");
    assert!(s.requests > 0);
    assert_eq!(s.latency.count, s.requests, "one latency per request");
    assert!(
        s.bandwidth_gibps > 0.0 && s.bandwidth_gibps.is_finite(),
        "{s:?}"
    );
    assert!(s.bandwidth_gbps > s.bandwidth_gibps, "GB/s > GiB/s: {s:?}");
    assert!(
        s.iops > 0.0 && s.task_time_s > 0.0 && s.e2e_time_s > 0.0,
        "{s:?}"
    );
    assert!(s.e2e_time_s >= s.task_time_s * 0.999, "{s:?}");
    assert!(
        s.latency.p50_us > 0.0 && s.latency.p50_us <= s.latency.max_us,
        "{s:?}"
    );
    assert!(s.loop_gibps_min <= s.loop_gibps_median && s.loop_gibps_median <= s.loop_gibps_max);
    for l in &r.loops {
        assert!(l.bandwidth_gibps > 0.0 && l.task_time_s > 0.0, "{l:?}");
    }
    assert_eq!(r.threads.len(), threads, "one entry per thread");
    for (i, t) in r.threads.iter().enumerate() {
        assert_eq!(t.tid, i);
        assert!(t.bandwidth_gibps > 0.0 && t.latency.count > 0, "{t:?}");
    }
    assert_eq!(r.threads.iter().map(|t| t.bytes).sum::<u64>(), s.bytes);
    assert_eq!(
        r.threads.iter().map(|t| t.latency.count).sum::<u64>(),
        s.latency.count
    );
}

/// Reads `len` bytes at `offset` of `path`.
pub fn read_range(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("{}: read {len} at {offset}: {e}", path.display()));
    buf
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len()
}

/// Asserts that bytes `[offset, offset + len)` of `path` hold the pattern gdswap writes with
/// `seed`. Checked twice: every byte against the library's pattern, and, independently of that
/// code, the header at the start of every granule (magic, its own offset, the seed).
pub fn assert_pattern(path: &Path, offset: u64, len: u64, seed: u64) {
    let data = read_range(path, offset, len);
    if let Err(f) = gdswap::pattern::verify(&data, offset, seed, path) {
        panic!(
            "{} does not hold the pattern of seed {seed}: {f}",
            path.display()
        );
    }
    let first = offset.next_multiple_of(GRANULE);
    let mut g = first;
    while g + 32 <= offset + len {
        let h = &data[(g - offset) as usize..][..32];
        assert_eq!(&h[..8], b"GDSWAP01", "{} at {g}: magic", path.display());
        assert_eq!(
            u64::from_le_bytes(h[8..16].try_into().unwrap()),
            g,
            "{} at {g}: header offset",
            path.display()
        );
        assert_eq!(
            u64::from_le_bytes(h[16..24].try_into().unwrap()),
            seed,
            "{} at {g}: header seed",
            path.display()
        );
        g += GRANULE;
    }
}

/// XORs the byte at `offset` of `path` with 0xff in place; returns the original byte.
pub fn flip_byte(path: &Path, offset: u64) -> u8 {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&[b[0] ^ 0xff]).unwrap();
    f.sync_all().unwrap();
    b[0]
}

/// Writes `len` bytes of `byte` to `path` (a stand-in for stale or foreign data).
pub fn fill_file(path: &Path, len: u64, byte: u8) {
    std::fs::write(path, vec![byte; len as usize])
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Lists the names in a directory, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The per-thread file gdswap uses in `--dir`.
pub fn thread_file(dir: &Path, tid: usize) -> PathBuf {
    dir.join(format!("gdswap.{tid}.dat"))
}

/// Writes a pattern file through gdswap itself: `--op write --verify` with the posix backend.
pub fn make_data_file(path: &Path, size: u64, seed: u64) {
    let bs = if size >= 64 * KIB { 64 * KIB } else { 4 * KIB };
    ok(argv![
        "run",
        "--backend",
        "posix",
        "--op",
        "write",
        "--file",
        path,
        "--size",
        size.to_string(),
        "--block-size",
        bs.to_string(),
        "--loops",
        "1",
        "--warmup",
        "0",
        "--seed",
        seed.to_string(),
        "--verify"
    ]);
    assert_eq!(file_len(path), size);
}

/// `gdswap run` with a backend, direction, size and block size, `--loops` measured loops
/// after one warm-up loop; extend it with the target and other flags.
pub fn run_argv(backend: &str, op: &str, size: u64, bs: u64, loops: u32) -> Vec<OsString> {
    argv![
        "run",
        "--backend",
        backend,
        "--op",
        op,
        "--size",
        size.to_string(),
        "--block-size",
        bs.to_string(),
        "--loops",
        loops.to_string(),
        "--warmup",
        "1"
    ]
}

/// Appends arguments to a command line.
pub fn with(mut args: Vec<OsString>, more: Vec<OsString>) -> Vec<OsString> {
    args.extend(more);
    args
}

/// Whether `unshare --ipc` runs a command here (util-linux, and CAP_SYS_ADMIN): a test can then
/// give gdswap System V IPC of its own (libcufile's statistics segments, `cufile::stats`).
pub fn own_ipc_namespace_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        Command::new("unshare")
            .args(["--ipc", "--", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Why a test cannot make System V segments of its own here, or None when it can: it needs
/// `unshare --ipc` (root), python3 with ctypes (which makes them) and System V IPC.
pub fn own_sysv_segments_missing() -> Option<&'static str> {
    let python = || {
        Command::new("python3")
            .args(["-c", "import ctypes"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !own_ipc_namespace_works() {
        Some("`unshare --ipc` does not run here (needs root)")
    } else if !Path::new("/proc/sysvipc/shm").exists() {
        Some("no System V IPC in this kernel")
    } else if !python() {
        Some("no python3 with ctypes to make the segments")
    } else {
        None
    }
}
