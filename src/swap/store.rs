//! The swap store: named tensors in one data file of a directory, a crash-safe manifest, and
//! swaps that run on the store's I/O threads through the backend chosen at open time.
//! This file is the store itself: its types, open (lock, discard, data file), close, destroy
//! and what it reports (list, info, stats, ...). Its operations on tensors are in files of
//! their own: swap-outs in `swap_out.rs`, swap-ins and prefetches in `swap_in.rs`, removals
//! in `remove.rs`, the checks they share in `checks.rs`; the shared state is in `state.rs`,
//! the jobs the I/O threads run in `jobs.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::backend::{self, Backend};
use crate::error::{Error, FileOp, Result, Setting};
use crate::io::file::{Access, DataFile};
use crate::io::fork_guard::ForkGuard;
use crate::io::owned::{self, Create, Role};
use crate::size::Bytes;

use super::alloc::Extents;
use super::committer::Committer;
use super::manifest::{
    self, Entry, Manifest, Quarantined, DATA_FILE, FORMAT, MANIFEST, MANIFEST_TMP,
};

/// The file a store flocks while open.
pub const LOCK_FILE: &str = "lock";
pub use super::options::{default_io_threads, SwapOptions};
use super::staging::StagingPool;
use super::state::{lock, Shared, State, Writing};
use super::threads::IoThreads;

/// Counters of a store since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapStats {
    /// Staging bytes that exist now, and the most that existed at once.
    pub staging_now: u64,
    /// The most staging bytes that existed at once.
    pub staging_peak: u64,
    /// The most device memory staging held at once (device backends; else 0).
    pub device_peak: u64,
    /// Bytes written to the data file by swap-outs (tensor bytes, padding included).
    pub bytes_written: u64,
    /// Bytes read from the data file by swap-ins and prefetches (padding included).
    pub bytes_read: u64,
}

/// A directory of swapped-out tensors. `Sync`: share it between threads (`&SwapStore` or
/// an `Arc`); operations on different tensors run concurrently, and a second operation on a
/// tensor with one in flight is refused with an error naming it.
pub struct SwapStore {
    pub(super) shared: Arc<Shared>,
    // Dropping the store waits for every queued job (the I/O threads end before the commit
    // thread, which they hand written swap-outs to).
    pub(super) threads: IoThreads,
    /// One thread that checks swap-ins' checksums (host staging), so the I/O threads go on
    /// to their next transfer meanwhile. Declared after `threads`: dropped once no I/O job
    /// can hand it more work.
    pub(super) checker: IoThreads,
    pub(super) committer: Committer,
    /// Keeps forked children from holding `_lock` (declared first: dropped before it closes).
    _lock_guard: ForkGuard,
    /// `dir/lock`, flocked while the store is open: one store per directory at a time.
    _lock: std::fs::File,
}

impl SwapStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>, opts: SwapOptions) -> Result<SwapStore> {
        let dir = dir.as_ref().to_path_buf();
        let backend: Arc<dyn Backend> = backend::open(opts.backend)?;
        if opts.block_size == 0 || opts.queue_depth == 0 {
            let setting = if opts.block_size == 0 {
                Setting::BlockSize
            } else {
                Setting::QueueDepth
            };
            return Err(Error::invalid(setting, "must be positive"));
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::file(FileOp::Create, &dir, e))?;
        // Nothing in the directory is touched before the lock is held.
        let (lock_file, lock_guard) = take_lock(&dir)?;
        if opts.discard_existing {
            discard(&dir)?;
        }
        // A temporary manifest is a commit that did not finish: the old manifest stands.
        owned::remove_own(&dir, MANIFEST_TMP)?;
        let loaded = manifest::load(&dir)?;
        let file = Arc::new(open_data_file(&dir, opts.direct)?);
        manifest::sync_dir(&dir)?;
        let align = file.dio_align().max(4096);
        let file_len = file.len()?;
        let loaded = match loaded {
            Some(l) => l,
            None if file_len > 0 => {
                return Err(Error::BadFile {
                    role: crate::error::FileRole::SwapStore,
                    path: dir.join(MANIFEST),
                    message: format!(
                        "missing, next to a data file of {} ({}): without it the tensors cannot be found, and opening it as an empty store would overwrite them; to start over, open with SwapOptions::discard_existing",
                        Bytes(file_len),
                        dir.join(DATA_FILE).display()
                    )
                    .into(),
                })
            }
            None => {
                // A new store: its (empty) manifest is made durable before any swap-out, so a
                // data file without a manifest only ever means one that was lost.
                manifest::commit(
                    &dir,
                    &Manifest {
                        format: FORMAT.into(),
                        ..Manifest::default()
                    },
                )?;
                manifest::Loaded::default()
            }
        };
        // Every entry is checked (checked arithmetic throughout): one that cannot be read is
        // quarantined, the others stay readable. `open` never changes the data file.
        let (tensors, new_quarantine) =
            manifest::check_entries(loaded.tensors, loaded.generation, align, file_len);
        let mut quarantined = loaded.quarantined;
        quarantined.extend(new_quarantine);
        let mut extents = Extents::from_used(
            tensors
                .values()
                .map(|e| (e.offset, e.padded_len, e.name.clone()))
                .collect(),
        )?;
        // Space past the last tensor (written by swap-outs that never committed) is reused;
        // with a quarantine, nothing below the file's end is written again. The floor is
        // rounded up to the alignment: a file cut at an odd length would otherwise put every
        // new extent at an offset O_DIRECT refuses.
        if !quarantined.is_empty() {
            let floor = file_len.checked_next_multiple_of(align).ok_or_else(|| {
                Error::CorruptStore(format!(
                    "swap store: the length of {} ({file_len} bytes) overflows 64 bits when aligned",
                    dir.join(DATA_FILE).display()
                ))
            })?;
            extents.reserve_below(floor);
        }
        let staging = Arc::new(StagingPool::new(
            backend,
            Arc::clone(&file),
            opts.staging_budget,
            opts.block_size,
            opts.queue_depth,
            opts.gpu,
        ));
        let threads = IoThreads::new(opts.io_threads)?;
        let checker = IoThreads::named(1, "gdswap-swap-check")?;
        let writing = Arc::new(Writing::default());
        let committer = Committer::start(Arc::clone(&writing))?;
        Ok(SwapStore {
            shared: Arc::new(Shared {
                dir,
                file,
                align,
                state: Mutex::new(State {
                    tensors,
                    generation: loaded.generation,
                    extents,
                    quarantined,
                    busy: HashMap::new(),
                    spares: HashMap::new(),
                    next_op: 0,
                    prefetched: HashMap::new(),
                    bytes_written: 0,
                    bytes_read: 0,
                }),
                opts,
                commit: Mutex::new(()),
                writing,
                staging,
                sync_failed: std::sync::OnceLock::new(),
            }),
            threads,
            checker,
            committer,
            _lock_guard: lock_guard,
            _lock: lock_file,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The on-disk alignment every tensor is padded to.
    pub fn alignment(&self) -> u64 {
        self.shared.align
    }

    /// The tensors as of the last completed swap-out or remove, by name.
    pub fn list(&self) -> Vec<Entry> {
        lock(&self.shared.state).tensors.values().cloned().collect()
    }

    /// Manifest entries the store refused when it opened (or an earlier open did), with the
    /// reason: not listed by [`SwapStore::list`], not readable, and kept in the manifest
    /// (their bytes in the data file are never overwritten) until
    /// [`SwapStore::forget_quarantined`].
    pub fn quarantined(&self) -> Vec<Quarantined> {
        lock(&self.shared.state).quarantined.clone()
    }

    /// Closes the store and removes its files, under its lock: the manifest first (from then
    /// on the store is empty), then the data file and the lock file, and the directory when
    /// nothing else is in it. Only the store's own files are removed.
    pub fn destroy(self) -> Result<()> {
        self.shutdown(true)?;
        let dir = self.shared.dir.clone();
        owned::remove_own(&dir, MANIFEST)?;
        manifest::sync_dir(&dir)?;
        owned::remove_own(&dir, MANIFEST_TMP)?;
        owned::remove_own(&dir, DATA_FILE)?;
        owned::remove_own(&dir, LOCK_FILE)?;
        drop(self);
        match std::fs::remove_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::ENOTEMPTY)
                    || e.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            Err(e) => Err(Error::file(FileOp::Resize, &dir, e)),
        }
    }

    /// One tensor's record.
    pub fn info(&self, name: &str) -> Option<Entry> {
        lock(&self.shared.state).tensors.get(name).cloned()
    }

    /// The store's generation: bumped by every commit (swap-out, remove, forget_quarantined).
    pub fn generation(&self) -> u64 {
        lock(&self.shared.state).generation
    }

    /// The store's counters now.
    pub fn stats(&self) -> SwapStats {
        let s = lock(&self.shared.state);
        SwapStats {
            staging_now: self.shared.staging.allocated(),
            staging_peak: self.shared.staging.peak(),
            device_peak: self.shared.staging.device_peak(),
            bytes_written: s.bytes_written,
            bytes_read: s.bytes_read,
        }
    }

    /// `gds` stores: the path cuFile's I/O took (GPUDirect or compat mode, with the
    /// evidence); `None` for other backends. cuFile's per-I/O statistics (1.15+) are read
    /// when a staging buffer is released, so call [`SwapStore::release_idle_staging`] first
    /// for a verdict that counts every I/O so far.
    pub fn gds_path(&self) -> Option<crate::types::GdsVerdict> {
        self.shared.staging.backend().gds_path()
    }

    /// Waits for every operation in flight, then frees the idle staging buffers now (each on
    /// its own I/O thread) instead of keeping them for later swaps: memory back between
    /// phases of a program. The first failure to free one.
    pub fn release_idle_staging(&self) -> Result<()> {
        self.shutdown(false)
    }

    /// Whether the store stages in device memory (`bounce`, `gds`: swap `DeviceTensor`s or
    /// host tensors) rather than host memory (`host`, `posix`: staged tensors too).
    pub fn stages_in_device_memory(&self) -> bool {
        self.shared.staging.device_staging()
    }

    /// Waits for every operation in flight, then frees the staging buffers (each on its own
    /// I/O thread), reporting a failure to free one. Dropping the store does the same and
    /// ignores such failures.
    pub fn close(self) -> Result<()> {
        self.shutdown(true)
    }

    /// Waits for every job, then frees the idle staging buffers on their own threads; with
    /// `drop_prefetches`, the prefetches nobody took first (their staging goes back to the
    /// pool, so a device backend's is freed on its own thread too, never on this one).
    fn shutdown(&self, drop_prefetches: bool) -> Result<()> {
        self.threads.barrier();
        // Checks handed over by the jobs that just ended.
        self.checker.barrier();
        self.committer.flush();
        if drop_prefetches {
            let unused = std::mem::take(&mut lock(&self.shared.state).prefetched);
            drop(unused);
        }
        self.shared.staging.release_idle(&self.threads)
    }

    /// Bytes of the data file.
    pub fn data_file_len(&self) -> Result<u64> {
        self.shared.file.len()
    }
}

impl Drop for SwapStore {
    fn drop(&mut self) {
        // Failures to free staging have nowhere to go here; `close` reports them.
        let _ = self.shutdown(true);
    }
}

/// Opens and flocks `dir/lock` (never through a symlink). The lock file must still be the
/// one at `dir/lock` once locked: a store being destroyed unlinks it while holding it.
fn take_lock(dir: &Path) -> Result<(std::fs::File, ForkGuard)> {
    let lock_path = dir.join(LOCK_FILE);
    let lock_file = owned::open_store(&lock_path, true, Create::IfMissing)?;
    // Guarded before it is locked: a fork from another thread from here on leaves the child
    // without the lock.
    let guard = ForkGuard::new(&lock_file);
    let busy = || Error::BadFile {
        role: crate::error::FileRole::SwapStore,
        path: dir.to_path_buf(),
        message: "already open (by this or another process): one store per directory at a time"
            .into(),
    };
    match crate::io::sys::try_lock_exclusive(&lock_file) {
        Ok(true) => {}
        Ok(false) => return Err(busy()),
        Err(e) => return Err(Error::file(FileOp::Open, &lock_path, e)),
    }
    let at_path = owned::open_store(&lock_path, false, Create::No);
    match at_path.map(|f| owned::same_file(&f, &lock_file)) {
        Ok(Ok(true)) => Ok((lock_file, guard)),
        _ => Err(busy()),
    }
}

/// `SwapOptions::discard_existing`: with the lock held, removes the manifest (the store is
/// empty from then on), then the data file. Checks both are the store's own files first.
fn discard(dir: &Path) -> Result<()> {
    for name in [MANIFEST, MANIFEST_TMP, DATA_FILE] {
        owned::check_own(dir, name)?;
    }
    owned::remove_own(dir, MANIFEST)?;
    manifest::sync_dir(dir)?;
    owned::remove_own(dir, MANIFEST_TMP)?;
    owned::remove_own(dir, DATA_FILE)?;
    manifest::sync_dir(dir)
}

/// `dir/data.bin`, opened (created if missing, never truncated) without following a
/// symlink, a regular file of this user; the O_DIRECT descriptor must be the same file.
fn open_data_file(dir: &Path, direct: bool) -> Result<DataFile> {
    DataFile::open_as(&dir.join(DATA_FILE), Access::Write, direct, Role::Store)
}
