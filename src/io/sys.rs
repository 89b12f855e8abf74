//! Process-level system facts and knobs: CPU time, memlock and memory limits, capabilities,
//! and dropping the page cache.

use std::io;
use std::time::Duration;

/// User and system CPU time consumed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// CPU time in user mode.
    pub user: Duration,
    /// CPU time in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTime {
    /// CPU time of the whole process (all threads, including io_uring's kernel workers,
    /// which run as threads of the process).
    pub fn process() -> CpuTime {
        rusage(libc::RUSAGE_SELF)
    }

    /// CPU time of the calling thread only.
    pub fn thread() -> CpuTime {
        rusage(libc::RUSAGE_THREAD)
    }

    /// CPU time consumed from `earlier` to `self` (each part saturating at zero).
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

impl std::ops::Add for CpuTime {
    type Output = CpuTime;

    fn add(self, other: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }
}

fn rusage(who: libc::c_int) -> CpuTime {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer we pass; RUSAGE_SELF and
    // RUSAGE_THREAD are valid `who` values on Linux, so it cannot fail.
    let ru = unsafe {
        libc::getrusage(who, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    CpuTime {
        user: tv(ru.ru_utime),
        system: tv(ru.ru_stime),
    }
}

/// The soft RLIMIT_MEMLOCK in bytes (`u64::MAX` when unlimited).
pub fn memlock_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the valid pointer we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        lim.rlim_cur
    }
}

/// Whether the process may lock memory beyond RLIMIT_MEMLOCK (CAP_IPC_LOCK in its effective
/// set), in which case io_uring buffer registration and cuMemHostRegister ignore the limit.
pub fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Whether the kernel lets this process lock `bytes` more (io_uring fixed buffers): with
/// CAP_IPC_LOCK always, else when RLIMIT_MEMLOCK holds them. (The limit is charged per user,
/// so what other threads and processes lock can still make a registration fail.)
pub fn can_lock(bytes: u64) -> bool {
    has_cap_ipc_lock() || memlock_limit() >= bytes
}

/// The bytes of memory the kernel thinks it can give without swapping (MemAvailable).
pub fn mem_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Whether the kernel gives transparent huge pages to memory that asks (`always` or
/// `madvise` in /sys/kernel/mm/transparent_hugepage/enabled).
pub fn thp_enabled() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .map(|s| s.contains("[always]") || s.contains("[madvise]"))
        .unwrap_or(false)
}

/// Hugetlb pages of the default huge page size that a new mapping can still get, and that
/// size in bytes.
pub fn free_hugetlb_pages() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    // Free pages include pages reserved by mappings that have not faulted them in yet.
    let free = field("HugePages_Free:").saturating_sub(field("HugePages_Rsvd:"));
    (free, field("Hugepagesize:") * 1024)
}

/// Writes back dirty pages and drops the page cache, dentries and inodes (`echo 3`), so the
/// next read comes from the device. Needs root.
pub fn drop_caches() -> io::Result<()> {
    // SAFETY: sync() has no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n")
}

/// Whether this process may drop the page cache: opens the control file for writing without
/// writing to it, so a lack of permission is found before the run starts.
pub fn check_drop_caches() -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .map(drop)
}

/// The kernel release string (`uname -r`).
pub fn kernel_release() -> String {
    let mut u = std::mem::MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uname fills the whole struct we pass; on success its fields are NUL-terminated.
    let ok = unsafe { libc::uname(u.as_mut_ptr()) } == 0;
    if !ok {
        return "unknown".into();
    }
    // SAFETY: uname succeeded, so the struct is initialised and `release` is NUL-terminated.
    let u = unsafe { u.assume_init() };
    // SAFETY: `release` is a NUL-terminated C string inside `u`, which outlives the borrow.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Takes an exclusive advisory lock (flock) on `file` without waiting: Ok(false) when another
/// open of the file holds it (in this process or another). The kernel drops the lock when the
/// file is closed, or when its process dies, even by SIGKILL.
pub fn try_lock_exclusive(file: &std::fs::File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads its integer arguments and acts on a descriptor `file` owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Sends SIGKILL to every process of process group `pgid` (a child spawned as the leader of
/// its own group), so its children die with it and release the pipes they inherited.
pub fn kill_process_group(pgid: u32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "process group id too large"))?;
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal process group 0 or 1",
        ));
    }
    // SAFETY: killpg only reads its two integer arguments; pgid > 1 names one process group,
    // never this process's own group by the 0 shorthand.
    if unsafe { libc::killpg(pgid, libc::SIGKILL) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Binds the calling thread to `cpus` (sched_setaffinity): its later first touches of memory
/// then land on their NUMA node. An empty list, a CPU past CPU_SETSIZE, or a set with no
/// online CPU is an error.
pub fn bind_thread_to_cpus(cpus: &[usize]) -> io::Result<()> {
    let max = libc::CPU_SETSIZE as usize;
    if cpus.is_empty() || cpus.iter().any(|&c| c >= max) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU list {cpus:?} is empty or past CPU {}", max - 1),
        ));
    }
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: c < CPU_SETSIZE, checked above, so CPU_SET stays inside the set.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; the size and pointer are those of `set`.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on.
pub fn thread_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: as above, all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size and pointer are those of `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: c < CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// `set_mempolicy` modes (linux/mempolicy.h).
pub const MPOL_DEFAULT: i32 = 0;
/// Allocate only on the nodes of the mask (`numactl --membind`).
pub const MPOL_BIND: i32 = 2;

/// NUMA nodes a node mask of ours can name (a multiple of the word size; Linux's
/// `CONFIG_NODES_SHIFT` is at most 10).
const MAX_NODES: usize = 1024;
const WORD_BITS: usize = libc::c_ulong::BITS as usize;

/// Binds the calling thread's later memory allocations to NUMA node `node` (set_mempolicy
/// with MPOL_BIND, as `numactl --membind`): pages its buffers first touch come from that
/// node. A node past `MAX_NODES` (1024) or not online is an error (EINVAL from the kernel).
pub fn bind_thread_memory(node: u32) -> io::Result<()> {
    let n = node as usize;
    if n >= MAX_NODES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NUMA node {node} is past node {}", MAX_NODES - 1),
        ));
    }
    let mut mask = [0 as libc::c_ulong; MAX_NODES / WORD_BITS];
    mask[n / WORD_BITS] |= 1 << (n % WORD_BITS);
    // SAFETY: set_mempolicy reads `maxnode - 1` bits from `mask`, which holds MAX_NODES bits
    // (the kernel's historical off-by-one: numactl passes its mask size + 1 the same way); it
    // changes only the calling thread's policy.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            MPOL_BIND,
            mask.as_ptr(),
            (MAX_NODES + 1) as libc::c_ulong,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's memory policy: its mode ([`MPOL_DEFAULT`], [`MPOL_BIND`], ...) and
/// the nodes of its mask (get_mempolicy).
pub fn thread_memory_policy() -> io::Result<(i32, Vec<u32>)> {
    let mut mode: libc::c_int = 0;
    let mut mask = [0 as libc::c_ulong; MAX_NODES / WORD_BITS];
    // SAFETY: get_mempolicy writes one int into `mode` and at most `maxnode - 1` bits into
    // `mask` (MAX_NODES bits long); a null address and flags 0 ask for the thread's policy.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            mask.as_mut_ptr(),
            (MAX_NODES + 1) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let nodes = (0..MAX_NODES)
        .filter(|&n| mask[n / WORD_BITS] & (1 << (n % WORD_BITS)) != 0)
        .map(|n| n as u32)
        .collect();
    Ok((mode, nodes))
}

/// Bytes free to an unprivileged writer on the filesystem holding `dir` (statvfs).
pub fn free_space(dir: &std::path::Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and statvfs writes one struct into `st`.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs succeeded and initialised the struct.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail * st.f_frsize)
}

/// The filesystem type (statfs `f_type`) of the file open on `fd`.
pub fn fs_magic(fd: std::os::fd::RawFd) -> io::Result<i64> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fstatfs writes one `statfs` struct into `st` for an open descriptor of ours.
    if unsafe { libc::fstatfs(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatfs succeeded and initialised the struct.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    Ok(st.f_type as i64)
}

/// The name of a filesystem that is not a local block device (memory, overlay, network or
/// FUSE), from its statfs magic (linux/magic.h, fs/smb, fs/fuse); None for the others.
pub fn non_block_fs_name(magic: i64) -> Option<&'static str> {
    Some(match magic {
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0x794c_7630 => "overlay",
        0x6969 => "nfs",
        0x517b => "smb",
        0xff53_4d42 => "cifs",
        0xfe53_4d42 => "smb2",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x00c3_6400 => "ceph",
        0x5346_414f => "afs",
        0x0bd0_0bd0 => "lustre",
        0x4750_4653 => "gpfs",
        _ => return None,
    })
}

/// A System V shared-memory segment, as `/proc/sysvipc/shm` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SysvSegment {
    /// The key it was created under.
    pub key: i64,
    /// Its id (what `ipcrm -m` takes).
    pub id: i64,
    /// Its size in bytes.
    pub size: u64,
    /// The process that created it.
    pub creator: u32,
    /// How many processes have it attached now.
    pub attached: u64,
}

/// Every System V shared-memory segment of this IPC namespace (`/proc/sysvipc/shm`, which
/// lists them all whatever their permissions). Read-only: nothing is created or removed.
pub fn sysv_segments() -> io::Result<Vec<SysvSegment>> {
    parse_sysvipc_shm(&std::fs::read_to_string("/proc/sysvipc/shm")?)
}

/// Parses `/proc/sysvipc/shm`: a header line naming the columns, then one line per segment.
fn parse_sysvipc_shm(text: &str) -> io::Result<Vec<SysvSegment>> {
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/sysvipc/shm: {why}"),
        )
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| bad(format!("no '{name}' column")))
    };
    let (key, id, size, cpid, nattch) = (
        column("key")?,
        column("shmid")?,
        column("size")?,
        column("cpid")?,
        column("nattch")?,
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            fn number<T: std::str::FromStr>(f: &[&str], i: usize) -> Option<T> {
                f.get(i)?.parse().ok()
            }
            let not_read = || bad(format!("a field missing or not a number in '{l}'"));
            Ok(SysvSegment {
                key: number(&f, key).ok_or_else(not_read)?,
                id: number(&f, id).ok_or_else(not_read)?,
                size: number(&f, size).ok_or_else(not_read)?,
                creator: number(&f, cpid).ok_or_else(not_read)?,
                attached: number(&f, nattch).ok_or_else(not_read)?,
            })
        })
        .collect()
}

/// The dynamic loader's own words (dlerror) for a failed dlopen: libloading 0.9 displays only
/// "dlopen failed" and keeps dlerror's text in the error's source. Used by the cuFile and CUDA
/// loaders alike.
pub fn dl_message(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(src) => src.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn sysvipc_shm_is_read_by_its_header() {
        // Kernel 6.18's layout: a segment made by another process than its key says, and one
        // of libcufile 1.15's (keyed by its creator's pid, attached).
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
     13699    1146898   644                  4096 13658     0      0     0     0     0     0          0          0 1796413799                     0                     0
     17438     294975   644                 31888 17438 17438      1     0     0     0     0 1796413799          0 1796413799                 32768                     0
";
        let s = parse_sysvipc_shm(text).unwrap();
        assert_eq!(
            s,
            [
                SysvSegment {
                    key: 13699,
                    id: 1146898,
                    size: 4096,
                    creator: 13658,
                    attached: 0
                },
                SysvSegment {
                    key: 17438,
                    id: 294975,
                    size: 31888,
                    creator: 17438,
                    attached: 1
                },
            ]
        );
        assert!(
            parse_sysvipc_shm("key shmid size cpid\n").is_err(),
            "no nattch column"
        );
        assert!(parse_sysvipc_shm("key shmid size cpid nattch\n1 2 x 4 0\n").is_err());
        assert_eq!(
            parse_sysvipc_shm("")
                .map_err(|e| e.to_string())
                .unwrap_err(),
            "/proc/sysvipc/shm: no 'key' column"
        );
        // Whatever this machine has, it parses (a kernel without System V IPC has no file).
        match sysv_segments() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_thread_bound_to_one_cpu_runs_only_there() {
        let all = thread_cpus().unwrap();
        let first = all[0];
        std::thread::spawn(move || {
            bind_thread_to_cpus(&[first]).unwrap();
            assert_eq!(thread_cpus().unwrap(), [first]);
        })
        .join()
        .unwrap();
        assert!(bind_thread_to_cpus(&[]).is_err());
        assert!(bind_thread_to_cpus(&[libc::CPU_SETSIZE as usize]).is_err());
        // The caller's own set is untouched.
        assert_eq!(thread_cpus().unwrap(), all);
    }

    use super::*;

    #[test]
    fn a_thread_bound_to_node_0_allocates_there() {
        std::thread::spawn(|| {
            assert_eq!(thread_memory_policy().unwrap().0, MPOL_DEFAULT);
            bind_thread_memory(0).unwrap();
            assert_eq!(thread_memory_policy().unwrap(), (MPOL_BIND, vec![0]));
            // A node no machine has (and one past the mask) is refused, the policy kept.
            assert!(bind_thread_memory(1000).is_err());
            assert!(bind_thread_memory(5000).is_err());
            assert_eq!(thread_memory_policy().unwrap(), (MPOL_BIND, vec![0]));
        })
        .join()
        .unwrap();
        // Other threads keep the default policy.
        assert_eq!(thread_memory_policy().unwrap().0, MPOL_DEFAULT);
    }

    #[test]
    fn cpu_time_moves_forward() {
        let a = CpuTime::process();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = CpuTime::process();
        assert!(b.since(a).user + b.since(a).system > Duration::ZERO);
        assert!(CpuTime::thread().user <= CpuTime::process().user + Duration::from_millis(20));
    }

    #[test]
    fn limits_are_readable() {
        assert!(memlock_limit() > 0);
        assert!(mem_available().unwrap() > 0);
        assert!(!kernel_release().is_empty());
    }

    #[test]
    fn filesystem_kinds() {
        assert_eq!(non_block_fs_name(0x0102_1994), Some("tmpfs"));
        assert_eq!(non_block_fs_name(0x794c_7630), Some("overlay"));
        assert_eq!(non_block_fs_name(0x6969), Some("nfs"));
        assert_eq!(non_block_fs_name(0x6573_5546), Some("fuse"));
        // ext4 and xfs are block filesystems.
        assert_eq!(non_block_fs_name(0xef53), None);
        assert_eq!(non_block_fs_name(0x5846_5342), None);
        let f = std::fs::File::open("/proc/self/status").unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(fs_magic(f.as_raw_fd()).unwrap(), 0x9fa0); // PROC_SUPER_MAGIC
    }
}
