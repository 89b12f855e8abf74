//! Setting up a run's data files before any thread starts: open them, learn the O_DIRECT
//! alignment, check lengths, space, memory and memlock, and decide which files need the
//! pattern written first. Every refusal here happens before a byte is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, FileOp, Result, Setting};
use crate::io::buffer::HugePages;
use crate::io::file::{Access, DataFile};
use crate::io::sys;
use crate::options::{Op, RunOptions, Target};
use crate::pattern;
use crate::plan::{self, ThreadPlan};
use crate::size::Bytes;

/// Files and plans of a run, ready for the workers.
pub struct PreparedFiles {
    /// Each thread's requests, thread order.
    pub plans: Vec<ThreadPlan>,
    /// One handle per thread (threads sharing `--file` each open it themselves).
    pub files: Vec<Arc<DataFile>>,
    /// Per thread: the file must be filled with the pattern before the run (managed read files
    /// that are missing, short, or hold other data).
    pub needs_pattern: Vec<bool>,
    /// O_DIRECT alignment in bytes (1 when buffered).
    pub align: u64,
    /// The data directory and the topmost directory this run created for it
    /// (`--create-dir`, or the default one), when it created any.
    pub created_dir: Option<(PathBuf, PathBuf)>,
    /// The filesystem holding the data, when it is not a local block device (tmpfs, overlay,
    /// a network or FUSE filesystem): the figures then do not measure a disk.
    pub non_block_fs: Option<&'static str>,
}

impl PreparedFiles {
    /// The last step before the timed loops, run once every worker has prepared (so a worker
    /// that cannot allocate or register its buffers fails before any file changes). For writes:
    /// set every file to its exact length (a write never leaves stale bytes past its end) and,
    /// with `--verify`, zero the ranges about to be written, so that the read-back can only
    /// pass on data this run wrote, never on what an earlier run left there.
    pub fn before_loops(&self, opts: &RunOptions) -> Result<()> {
        if opts.workload.op != Op::Write {
            return Ok(());
        }
        match &opts.workload.target {
            Target::File(_) => self.files[0].set_len(opts.workload.size)?,
            Target::Dir(_) => {
                for (p, f) in self.plans.iter().zip(&self.files) {
                    f.set_len(p.len)?;
                }
            }
        }
        if opts.verify {
            for (p, f) in self.plans.iter().zip(&self.files) {
                f.zero_range(p.file_offset, p.len)?;
            }
        }
        Ok(())
    }

    /// What [`Cleanup::remove_unused`] needs, kept while the run owns the rest.
    pub fn clone_for_cleanup(&self) -> Cleanup {
        Cleanup {
            files: self.files.clone(),
            created_dir: self.created_dir.clone(),
        }
    }
}

/// The files and directory a run opened, for removing what it created if it fails.
pub struct Cleanup {
    files: Vec<Arc<DataFile>>,
    created_dir: Option<(PathBuf, PathBuf)>,
}

impl Cleanup {
    /// After a failed run: removes the data files this run created and wrote nothing into,
    /// then the data directory if this run created it and it is empty. Nothing else is
    /// touched: files that existed before, or hold data, stay.
    pub fn remove_unused(&self) {
        for f in &self.files {
            if f.created() && f.allocated_bytes().is_ok_and(|b| b == 0) {
                f.remove_if_created();
            }
        }
        if let Some((dir, top)) = &self.created_dir {
            remove_created_dirs(dir, top);
        }
    }
}

/// Checks, creating nothing, that the `--dir` data directory exists or may be created: an
/// error naming the flag when it is not a directory, or is missing and may not be created.
/// Returns whether it is missing. `compare` and `sweep` call it before their first run.
pub fn check_data_dir(dir: &Path, create: bool) -> Result<bool> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(Error::invalid(
                Setting::Dir,
                format!("{} is not a directory", dir.display()),
            ))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::file(FileOp::Stat, dir, e))
        }
        Err(_) => {}
    }
    if !create {
        return Err(Error::invalid(
            Setting::Dir,
            crate::error::msg![
                format!("{} does not exist; create it, or pass ", dir.display()),
                Setting::CreateDir,
                " to let gdswap create it (a mistyped directory would measure another disk)"
            ],
        ));
    }
    Ok(true)
}

/// Makes the `--dir` data directory when it is missing and the run may create it; returns the
/// topmost directory created (to be removed again if the run is refused), or an error naming
/// the flag when it may not.
fn make_data_dir(dir: &Path, create: bool) -> Result<Option<PathBuf>> {
    if !check_data_dir(dir, create)? {
        return Ok(None);
    }
    let topmost = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err())
        .last()
        .map(Path::to_path_buf);
    std::fs::create_dir_all(dir).map_err(|e| Error::file(FileOp::Create, dir, e))?;
    Ok(topmost)
}

/// Removes `dir` and the empty directories above it up to `topmost` (the directories a
/// refused run created); stops at the first that is not empty.
fn remove_created_dirs(dir: &Path, topmost: &Path) {
    for a in dir.ancestors() {
        if std::fs::remove_dir(a).is_err() || a == topmost {
            break;
        }
    }
}

/// Opens and checks the run's files. A refusal removes the files (and directories) this call
/// created, so a refused run leaves nothing behind.
pub fn prepare(opts: &RunOptions) -> Result<PreparedFiles> {
    let created_dir = match &opts.workload.target {
        Target::Dir(dir) => make_data_dir(dir, opts.create_dir)?,
        Target::File(_) => None,
    };
    let mut opened = Vec::new();
    let result = prepare_files(opts, &mut opened);
    match result {
        Ok(mut p) => {
            if let (Some(top), Target::Dir(dir)) = (created_dir, &opts.workload.target) {
                p.created_dir = Some((dir.clone(), top));
            }
            Ok(p)
        }
        Err(e) => {
            for f in &opened {
                f.remove_if_created();
            }
            if let (Some(top), Target::Dir(dir)) = (&created_dir, &opts.workload.target) {
                remove_created_dirs(dir, top);
            }
            Err(e)
        }
    }
}

fn prepare_files(opts: &RunOptions, opened: &mut Vec<Arc<DataFile>>) -> Result<PreparedFiles> {
    // Reads open read-only, except managed files that do not exist yet (created here, filled
    // with the pattern by their worker). Writes open read-write (read-back for --verify).
    let access_for = |path: &Path| match (&opts.workload.target, opts.workload.op) {
        (Target::Dir(_), Op::Read) if !path.exists() => Access::Write,
        (_, Op::Read) => Access::Read,
        (_, Op::Write) => Access::Write,
    };
    let first_path = plan::thread_path(&opts.workload.target, 0);
    let first = Arc::new(DataFile::open(
        &first_path,
        access_for(&first_path),
        opts.direct,
    )?);
    opened.push(Arc::clone(&first));
    let align = first.dio_align();
    if opts.workload.block_size % align != 0 {
        return Err(Error::invalid(
            Setting::BlockSize,
            crate::error::msg![format!("{} is not a multiple of {}, the O_DIRECT alignment of {}; use a multiple of it, or ", Bytes(opts.workload.block_size), Bytes(align), first_path.display()), Setting::Buffered],
        ));
    }
    // Before the request lists are built (their size follows --size) and before any file is
    // resized or filled: a refusal must leave existing files as they were.
    check_memory(opts, &plan::ranges(opts, align)?)?;
    let plans = plan::plan(opts, align)?;
    let mut files = vec![first];
    for p in &plans[1..] {
        let f = Arc::new(DataFile::open(&p.path, access_for(&p.path), opts.direct)?);
        opened.push(Arc::clone(&f));
        files.push(f);
    }
    let non_block_fs = files[0]
        .fs_magic()
        .ok()
        .and_then(crate::io::sys::non_block_fs_name);

    let mut needs_pattern = vec![false; plans.len()];
    match (&opts.workload.target, opts.workload.op) {
        (Target::File(path), Op::Read) => {
            let needed = plan::needed_len(&plans, path);
            let actual = files[0].len()?;
            if actual < needed {
                return Err(Error::FileTooSmall {
                    path: path.clone(),
                    actual,
                    needed,
                });
            }
        }
        (Target::Dir(dir), Op::Read) => {
            for (i, (p, f)) in plans.iter().zip(&files).enumerate() {
                needs_pattern[i] = !holds_pattern(f, p.len, p.seed)?;
            }
            let to_write: u64 = plans
                .iter()
                .zip(&needs_pattern)
                .filter(|(_, n)| **n)
                .map(|(p, _)| p.len)
                .sum();
            check_space(dir, to_write)?;
        }
        (target, Op::Write) => {
            let dir = match target {
                Target::Dir(d) => d.clone(),
                Target::File(f) => f
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            };
            let to_allocate = match target {
                Target::File(_) => opts
                    .workload
                    .size
                    .saturating_sub(allocated_bytes(&files[0])?),
                Target::Dir(_) => {
                    let mut sum = 0;
                    for (p, f) in plans.iter().zip(&files) {
                        sum += p.len.saturating_sub(allocated_bytes(f)?);
                    }
                    sum
                }
            };
            check_space(&dir, to_allocate)?;
        }
    }
    Ok(PreparedFiles {
        plans,
        files,
        needs_pattern,
        align,
        created_dir: None,
        non_block_fs,
    })
}

/// Cheap check that a managed file holds the pattern for `len` bytes with `seed`: its length
/// and the headers of its first and last granules. (`--verify` checks every byte.)
fn holds_pattern(f: &DataFile, len: u64, seed: u64) -> Result<bool> {
    // A file with holes (an interrupted write) reads back zeroes without touching the device,
    // which would inflate a read benchmark: it must be rewritten.
    if f.len()? < len || allocated_bytes(f)? < len {
        return Ok(false);
    }
    let granule = pattern::GRANULE as u64;
    let last = (len - 1) / granule * granule;
    for off in [0, last] {
        let n = (len - off).min(64) as usize;
        let mut head = [0u8; 64];
        f.read_exact_at(&mut head[..n], off)?;
        if n < 32 {
            // A granule shorter than its header: compare the bytes themselves.
            let mut want = [0u8; 64];
            pattern::fill(&mut want[..n], off, seed);
            if want[..n] != head[..n] {
                return Ok(false);
            }
        } else if pattern::header_seed(&head[..n], off) != Some(seed) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes the pattern for `[0, len)` into the managed file at `path` (through a handle of its
/// own, so the run's handle may be read-only), durably, and drops it from the page cache so
/// the timed reads come from the device.
pub fn write_pattern(path: &Path, len: u64, seed: u64) -> Result<()> {
    const CHUNK: u64 = 8 << 20;
    let f = DataFile::open(path, Access::Write, false)?;
    let mut buf = vec![0u8; CHUNK.min(len) as usize];
    let mut off = 0;
    while off < len {
        let n = CHUNK.min(len - off) as usize;
        pattern::fill(&mut buf[..n], off, seed);
        f.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    f.sync_data()?;
    f.forget_cached_pages();
    Ok(())
}

fn allocated_bytes(f: &DataFile) -> Result<u64> {
    f.allocated_bytes()
}

fn check_space(dir: &Path, needed: u64) -> Result<()> {
    if needed == 0 {
        return Ok(());
    }
    let free = crate::io::sys::free_space(dir).map_err(|e| Error::file(FileOp::Stat, dir, e))?;
    if free < needed {
        return Err(Error::NoSpace {
            dir: dir.to_path_buf(),
            free,
            needed,
        });
    }
    Ok(())
}

/// Bytes the host buffers of threads with ranges of `lens` take as they will be mapped (what
/// io_uring's registration charges to RLIMIT_MEMLOCK): each at least a page, rounded up to
/// 2 MiB when huge pages may back it (as `HostBuffer` maps them); `--buffer ring` holds queue
/// depth x block size per thread, whatever the range. None on overflow.
pub(crate) fn buffers_bytes(opts: &RunOptions, lens: impl Iterator<Item = u64>) -> Option<u64> {
    let granule = if opts.huge_pages == HugePages::Off {
        4096
    } else {
        2 << 20
    };
    // (queue depth <= 4096 and block size <= 1 GiB: no overflow.)
    let ring = u64::from(opts.workload.queue_depth) * opts.workload.block_size;
    lens.map(|len| match opts.buffer {
        crate::options::BufferMode::Full => len,
        crate::options::BufferMode::Ring => ring,
    })
    .try_fold(0u64, |sum, len| {
        len.max(1)
            .checked_next_multiple_of(granule)
            .and_then(|l| sum.checked_add(l))
    })
}

/// Host memory and (with `--fixed-buffers`) locked memory the buffers of `ranges` need, as
/// they will be mapped: each rounded up to 2 MiB when huge pages may back it.
fn check_memory(opts: &RunOptions, ranges: &[(u64, u64)]) -> Result<()> {
    let total = buffers_bytes(opts, ranges.iter().map(|&(_, len)| len)).ok_or_else(|| {
        Error::invalid(
            Setting::Size,
            crate::error::msg![
                format!(
                    "{}: the buffers' size overflows 64 bits; lower ",
                    Bytes(opts.workload.size)
                ),
                Setting::Size
            ],
        )
    })?;
    if let Some(avail) = sys::mem_available() {
        if total > avail / 10 * 9 {
            return Err(Error::OutOfMemory(crate::error::msg![Setting::Size, format!(" {}: each thread holds its whole range in memory, {} in all, but only {} is available; lower ", Bytes(opts.workload.size), Bytes(total), Bytes(avail)), Setting::Size]));
        }
    }
    // (The bounce backend registers only its pinned chunks; its preflight checks those. The
    // default, auto, registers where the limit allows and otherwise runs unregistered.)
    if opts.fixed_buffers.required()
        && opts.backend != crate::types::BackendId::Bounce
        && !sys::can_lock(total)
    {
        return Err(Error::Memlock {
            what: crate::error::msg![
                Setting::FixedBuffers,
                format!(
                    " registration of {} over {} threads",
                    Bytes(total),
                    opts.workload.threads
                )
            ],
            needed: total,
            limit: sys::memlock_limit(),
            hint: crate::error::msg!["run without ", Setting::FixedBuffers],
        });
    }
    Ok(())
}
