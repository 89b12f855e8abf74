//! The swap store: named tensors in one data file of a directory, a crash-safe manifest, and
//! swaps that run on the store's I/O threads through the backend chosen at open time.
//! This file is the API (open, swap out/in, prefetch, remove, destroy) and its checks; the
//! shared state is in `state.rs`, the jobs the I/O threads run in `jobs.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};

use crate::backend::{self, Backend};
use crate::error::{Error, FileOp, Result, Setting};
use crate::io::file::{Access, DataFile};
use crate::io::fork_guard::ForkGuard;
use crate::io::owned::{self, Create, Role};
use crate::size::Bytes;

use super::alloc::Extents;
use super::buffer::{DeviceSpan, Tensor};
use super::committer::{Committer, Written};
use super::device_tensor::{Fence, GpuWork};
use super::jobs::{check_read, commit_change, read_job, unpanicked, write_job, ReadStep};
use super::manifest::{
    self, Entry, Manifest, Quarantined, DATA_FILE, FORMAT, MANIFEST, MANIFEST_TMP,
};

/// The file a store flocks while open.
pub const LOCK_FILE: &str = "lock";
pub use super::options::{default_io_threads, SwapOptions};
use super::staged::{Refused, StagedTensor, StagedTicket};
use super::staging::{Charge, Staging, StagingPool};
use super::state::{
    lock, release_claim, snapshot_of, swap_err, OpKind, Pending, Shared, Source, State, Writing,
};
use super::threads::{IoThreads, Job};
use super::ticket::{Kind, ReadData, ReadOutcome, Ticket};

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
    shared: Arc<Shared>,
    // Dropping the store waits for every queued job (the I/O threads end before the commit
    // thread, which they hand written swap-outs to).
    threads: IoThreads,
    /// One thread that checks swap-ins' checksums (host staging), so the I/O threads go on
    /// to their next transfer meanwhile. Declared after `threads`: dropped once no I/O job
    /// can hand it more work.
    checker: IoThreads,
    committer: Committer,
    /// Keeps forked children from holding `_lock` (declared first: dropped before it closes).
    _lock_guard: ForkGuard,
    /// `dir/lock`, flocked while the store is open: one store per directory at a time.
    _lock: std::fs::File,
}

fn within(what: OpKind, name: &str, e: Error) -> Error {
    Error::Within {
        context: format!("{} of tensor '{name}'", what.name()).into(),
        source: Box::new(e),
    }
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
        // with a quarantine, nothing below the file's end is written again.
        if !quarantined.is_empty() {
            extents.reserve_below(file_len);
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

    /// Drops the quarantined entries from the manifest (durably); returns how many. Their
    /// space is reused only by a later open of the store.
    pub fn forget_quarantined(&self) -> Result<usize> {
        let sh = &self.shared;
        let _commit = lock(&sh.commit);
        let (gone, snapshot) = {
            let mut s = lock(&sh.state);
            // A commit bumps the generation, as every commit does ("Bumped by every commit").
            s.generation = s.generation.checked_add(1).ok_or_else(|| Error::BadFile {
                role: crate::error::FileRole::SwapStore,
                path: sh.dir.join(MANIFEST),
                message: "its generation is the largest there is: no change can be committed"
                    .into(),
            })?;
            let gone = std::mem::take(&mut s.quarantined);
            (gone, snapshot_of(&s, s.generation))
        };
        match manifest::commit(&sh.dir, &snapshot) {
            Ok(()) => Ok(gone.len()),
            Err(e) => {
                lock(&sh.state).quarantined = gone;
                Err(e)
            }
        }
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

    /// Device tensors need device staging on the tensor's GPU.
    fn check_device(&self, name: &str, gpu: usize) -> Result<()> {
        let opts = &self.shared.opts;
        if !self.shared.staging.device_staging() {
            return Err(swap_err(
                name,
                format!(
                    "a device tensor needs a store opened with a device backend (bounce or gds); this one uses {}",
                    opts.backend
                ),
            ));
        }
        if gpu != opts.gpu {
            return Err(swap_err(
                name,
                format!(
                    "the tensor is on GPU {gpu} and the store stages on GPU {} (SwapOptions::gpu)",
                    opts.gpu
                ),
            ));
        }
        Ok(())
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

    fn padded(&self, name: &str, len: u64) -> Result<u64> {
        len.checked_next_multiple_of(self.shared.align)
            .map(|p| p.max(self.shared.align))
            .ok_or_else(|| swap_err(name, format!("{len} bytes overflow the padded length")))
    }

    /// Marks `name` busy with `kind`, or says what is in flight on it.
    fn claim(&self, s: &mut State, name: &str, kind: OpKind) -> Result<u64> {
        if let Some((k, _)) = s.busy.get(name) {
            return Err(swap_err(
                name,
                format!(
                    "a {} is in flight on this tensor; wait for its ticket before the {}",
                    k.name(),
                    kind.name()
                ),
            ));
        }
        s.next_op += 1;
        let id = s.next_op;
        s.busy.insert(name.to_string(), (kind, id));
        Ok(id)
    }

    /// Starts writing `tensor` as the new version of `name`. The version becomes the one a
    /// swap-in returns (and the one a crash leaves) only when the ticket completes with `Ok`;
    /// until then the previous version stays intact on disk. A device tensor is copied once
    /// the work queued before the call on its context's legacy default stream has completed
    /// ([`GpuWork::LegacyStream`]; see [`SwapStore::swap_out_after`]).
    pub fn swap_out(&self, name: &str, tensor: &dyn Tensor) -> Result<Ticket<'static>> {
        self.swap_out_after(name, tensor, GpuWork::default())
    }

    /// [`SwapStore::swap_out`] of a device tensor once the caller's GPU work named by `after`
    /// has completed (it is copied on the GPU after it: the call does not wait for that work
    /// on the CPU beyond waiting for the copy, as `swap_out` always does). Host tensors take
    /// only the default, `GpuWork::LegacyStream`, which orders nothing for them.
    pub fn swap_out_after(
        &self,
        name: &str,
        tensor: &dyn Tensor,
        after: GpuWork,
    ) -> Result<Ticket<'static>> {
        check_name(name)?;
        let sh = &self.shared;
        let len = tensor.byte_len() as u64;
        let source = match (tensor.host_bytes(), tensor.device_memory()) {
            (Some(b), _) => {
                check_lengths(name, tensor, b.len())?;
                check_host_order(name, after)?;
                Source::Host(b)
            }
            (None, Some(span)) => {
                check_lengths(name, tensor, span.len)?;
                self.check_device(name, span.gpu())?;
                let fence =
                    Fence::capture(&span, after).map_err(|e| within(OpKind::SwapOut, name, e))?;
                Source::Device(span, fence)
            }
            (None, None) => {
                return Err(swap_err(
                    name,
                    "the tensor exposes neither host bytes nor device memory",
                ))
            }
        };
        let padded = self.padded(name, len)?;
        let id = {
            let mut s = lock(&sh.state);
            let id = self.claim(&mut s, name, OpKind::SwapOut)?;
            s.prefetched.remove(name); // about to be stale
            id
        };
        let unclaim = |sh: &Shared| release_claim(sh, name, id);
        let mut staging = match sh.staging.acquire(name, padded, &self.threads) {
            Ok(s) => s,
            Err(e) => {
                unclaim(sh);
                return Err(e);
            }
        };
        let mut snapshot = None;
        // Host staging is filled here; a device backend's is filled on its I/O thread, from
        // a copy (the caller's host tensor is not borrowed past this call) or, for a device
        // tensor, straight from its memory (see `DeviceTensor`).
        let (crc, pending) = match source {
            Source::Host(src) => {
                if staging.host_reachable() {
                    if let Err(e) = staging.fill(&mut |b: &mut [u8]| {
                        b[..src.len()].copy_from_slice(src);
                        b[src.len()..].fill(0);
                    }) {
                        unclaim(sh);
                        return Err(within(OpKind::SwapOut, name, e));
                    }
                    // Only the copy on the caller's thread: the checksum of the copy is taken
                    // on the I/O thread as its blocks are written.
                    (0, Pending::Checksum)
                } else {
                    let crc = crc32c::crc32c(src);
                    let charge = match sh.staging.charge(name, len, &self.threads) {
                        Ok(c) => c,
                        Err(e) => {
                            unclaim(sh);
                            return Err(e);
                        }
                    };
                    (crc, Pending::Bytes(src.to_vec(), charge))
                }
            }
            // Checksummed on the I/O thread, from the copy in staging.
            Source::Device(span, fence) => {
                let (tx, rx) = channel();
                snapshot = Some(rx);
                (0, Pending::Device(span, fence, tx))
            }
        };
        let layout = (tensor.dtype(), tensor.shape().to_vec(), len);
        let ticket = self.submit_write(name, id, layout, crc, staging, pending)?;
        if let Some(copied) = snapshot {
            // Returns when the device copy is done or the job ended without one (its error is
            // the ticket's).
            let _ = copied.recv();
        }
        Ok(ticket)
    }

    /// The common end of a swap-out: claimed as `id`, the bytes in (or headed for)
    /// `staging`; places the new version in free space (the tensor's spare extent when it
    /// fits) and queues the write on the staging's I/O thread.
    fn submit_write(
        &self,
        name: &str,
        id: u64,
        (dtype, shape, len): (super::DType, Vec<usize>, u64),
        crc: u32,
        staging: Staging,
        pending: Pending,
    ) -> Result<Ticket<'static>> {
        let sh = &self.shared;
        let padded = staging.len();
        let offset = {
            let mut s = lock(&sh.state);
            match s.spares.remove(name) {
                // A spare below the floor held a version the manifest had at open, whose bytes
                // a quarantined entry may claim: never written again (`free` drops it).
                Some((off, l)) if l == padded && off >= s.extents.floor() => Ok(off),
                spare => {
                    if let Some((off, l)) = spare {
                        s.extents.free(off, l);
                    }
                    s.extents.alloc(padded)
                }
            }
        };
        let offset = match offset {
            Ok(o) => o,
            Err(e) => {
                release_claim(sh, name, id);
                return Err(within(OpKind::SwapOut, name, e));
            }
        };
        let entry = Entry {
            name: name.to_string(),
            dtype,
            shape,
            file: DATA_FILE.into(),
            offset,
            len,
            padded_len: padded,
            crc32c: crc,
            generation: 0,
        };
        let (tx, rx) = channel();
        let shared = Arc::clone(sh);
        let owned = name.to_string();
        let thread = staging.thread();
        let committer = self.committer.handle();
        // Counted as writing until it has handed over (or failed): the commit thread waits
        // for it before flushing a batch begun after this point.
        let seq = sh.writing.begin();
        let writing = Arc::clone(&sh.writing);
        let job = Box::new(move || {
            let (offset, padded) = (entry.offset, entry.padded_len);
            let written = unpanicked(|| write_job(&shared, entry, staging, pending))
                .unwrap_or_else(|e| {
                    // A bug: the new extent is free again (the manifest never took it).
                    lock(&shared.state).extents.free(offset, padded);
                    Err(e)
                });
            match written {
                // Durable and committed on the commit thread, which then releases the claim
                // and completes the ticket; this thread goes on with its next job.
                Ok(entry) => committer.hand_over(Written {
                    shared,
                    entry,
                    claim: id,
                    done: Box::new(move |r: Result<()>| {
                        let _ = tx.send(r.map_err(|e| within(OpKind::SwapOut, &owned, e)));
                    }),
                }),
                Err(e) => {
                    release_claim(&shared, &owned, id);
                    let _ = tx.send(Err(within(OpKind::SwapOut, &owned, e)));
                }
            }
            writing.end(seq);
        });
        if let Err(e) = self.threads.submit(thread, job) {
            // The job (and its staging) was dropped unrun: give back the extent.
            sh.writing.end(seq);
            lock(&sh.state).extents.free(offset, padded);
            release_claim(sh, name, id);
            return Err(e);
        }
        Ok(Ticket::new(name, Kind::Write(rx)))
    }

    /// A zero-filled [`StagedTensor`] of `dtype` and `shape`: one of the store's staging
    /// buffers (host backends), to fill and swap out with [`SwapStore::swap_out_staged`]
    /// without a copy. Counts against the staging budget while held.
    pub fn staged_zeros(&self, dtype: super::DType, shape: &[usize]) -> Result<StagedTensor> {
        let len = super::buffer::byte_len(dtype, shape)?;
        let what = format!("(new staged {} {shape:?})", dtype.name());
        self.check_staged(&what)?;
        let mut staging =
            self.shared
                .staging
                .acquire(&what, self.padded(&what, len as u64)?, &self.threads)?;
        staging
            .host_bytes_mut()
            .expect("host staging has host bytes")
            .fill(0);
        Ok(StagedTensor::new(staging, dtype, shape.to_vec(), len))
    }

    /// Host backends only: staged tensors live in host staging memory.
    fn check_staged(&self, name: &str) -> Result<()> {
        if self.shared.staging.device_staging() {
            return Err(swap_err(
                name,
                format!(
                    "staged tensors need a host backend (host, posix); this store uses {}: swap DeviceTensors instead",
                    self.shared.opts.backend
                ),
            ));
        }
        Ok(())
    }

    /// Like [`SwapStore::swap_out`], without the copy: writes `tensor`'s own buffer (its
    /// checksum computed on the I/O thread) and returns the buffer to the pool afterwards.
    /// A refusal (a bad name, a tensor of another store, an operation in flight on `name`)
    /// hands the tensor back inside the [`Refused`] error, so its contents are not lost; `?`
    /// turns that into a plain [`Error`].
    pub fn swap_out_staged(
        &self,
        name: &str,
        mut tensor: StagedTensor,
    ) -> std::result::Result<Ticket<'static>, Refused> {
        let refuse = |error, tensor| {
            Err(Refused {
                error,
                tensor: Some(Box::new(tensor)),
            })
        };
        if let Err(e) = check_name(name) {
            return refuse(e, tensor);
        }
        if !tensor.staging.belongs_to(&self.shared.staging) {
            let e = swap_err(
                name,
                "the staged tensor belongs to another store (swap it out there, or copy it)",
            );
            return refuse(e, tensor);
        }
        let id = {
            let mut s = lock(&self.shared.state);
            match self.claim(&mut s, name, OpKind::SwapOut) {
                Ok(id) => {
                    s.prefetched.remove(name);
                    id
                }
                Err(e) => return refuse(e, tensor),
            }
        };
        // The padding after the bytes may hold an earlier, longer tensor's tail.
        let len = tensor.len();
        tensor.staging.host_bytes_mut().expect("host staging")[len..].fill(0);
        let layout = (tensor.dtype(), tensor.shape().to_vec(), len as u64);
        // Past this point only a store whose I/O threads are gone can fail, and the job that
        // owns the buffer is dropped with it.
        self.submit_write(name, id, layout, 0, tensor.staging, Pending::Checksum)
            .map_err(Refused::lost)
    }

    /// Like [`SwapStore::swap_in`], without the copy: the ticket gives the staging buffer the
    /// read landed in (a prefetch's, when there is one) as a [`StagedTensor`] with the stored
    /// dtype and shape.
    pub fn swap_in_staged(&self, name: &str) -> Result<StagedTicket> {
        self.check_staged(name)?;
        let (entry, rx, _) = self.read_or_prefetched(name, None)?;
        Ok(StagedTicket::new(
            name,
            rx,
            entry.dtype,
            entry.shape,
            entry.len as usize,
        ))
    }

    /// The read of `name`: its prefetch when there is one, else a new read; `want_len` is
    /// checked against the stored length first.
    fn read_or_prefetched(
        &self,
        name: &str,
        want_len: Option<usize>,
    ) -> Result<(Entry, Receiver<ReadOutcome>, usize)> {
        let mut s = lock(&self.shared.state);
        let check_len = |entry: &Entry| match want_len {
            Some(n) if n as u64 != entry.len => Err(swap_err(
                name,
                format!(
                    "the destination holds {n} bytes, the stored tensor {} ({} {:?})",
                    entry.len,
                    entry.dtype.name(),
                    entry.shape
                ),
            )),
            _ => Ok(()),
        };
        if let Some((pe, _, _)) = s.prefetched.get(name) {
            check_len(pe)?;
            return Ok(s.prefetched.remove(name).expect("just found"));
        }
        if let Some((k, _)) = s.busy.get(name) {
            return Err(swap_err(
                name,
                format!(
                    "a {} is in flight on this tensor; wait for its ticket before the swap-in",
                    k.name()
                ),
            ));
        }
        let entry = s
            .tensors
            .get(name)
            .cloned()
            .ok_or_else(|| missing(&s, name))?;
        check_len(&entry)?;
        let id = self.claim(&mut s, name, OpKind::SwapIn)?;
        drop(s);
        let (rx, thread) = self.start_read(name, id, &entry, OpKind::SwapIn)?;
        Ok((entry, rx, thread))
    }

    /// Starts reading `name` into `dest`, which must have the tensor's byte length; on
    /// completion `dest` also takes the stored dtype and shape. Uses a prefetch of `name`
    /// when there is one. A device tensor is written once the work queued before the call on
    /// its context's legacy default stream (which may still read it) has completed
    /// ([`GpuWork::LegacyStream`]; see [`SwapStore::swap_in_after`]).
    pub fn swap_in<'a>(&self, name: &str, dest: &'a mut dyn Tensor) -> Result<Ticket<'a>> {
        self.swap_in_after(name, dest, GpuWork::default())
    }

    /// [`SwapStore::swap_in`] into a device tensor once the caller's GPU work named by
    /// `after` has completed (the write waits for it on the GPU). Once the ticket has
    /// completed, the bytes are in place for work on any stream. Host destinations take only
    /// the default.
    pub fn swap_in_after<'a>(
        &self,
        name: &str,
        dest: &'a mut dyn Tensor,
        after: GpuWork,
    ) -> Result<Ticket<'a>> {
        let sh = &self.shared;
        // Host bytes first, as in `swap_out`.
        let host_len = dest.host_bytes().map(<[u8]>::len);
        let device_dest = host_len.is_none().then(|| dest.device_memory()).flatten();
        let mut fence = None;
        match (host_len, &device_dest) {
            (Some(n), _) => {
                check_lengths(name, dest, n)?;
                check_host_order(name, after)?;
            }
            (None, Some(span)) => {
                check_lengths(name, dest, span.len)?;
                self.check_device(name, span.gpu())?;
                fence = Fence::capture(span, after).map_err(|e| within(OpKind::SwapIn, name, e))?;
            }
            (None, None) => {
                return Err(swap_err(
                    name,
                    "the destination exposes neither host bytes nor device memory",
                ))
            }
        }
        // A host destination of device staging gets its bytes through a host copy: booked
        // before anything is read.
        let charge = match (sh.staging.device_staging(), &device_dest) {
            (true, None) => Some(
                sh.staging
                    .charge(name, dest.byte_len() as u64, &self.threads)?,
            ),
            _ => None,
        };
        let (entry, rx, thread) = self.read_or_prefetched(name, Some(dest.byte_len()))?;
        let rx = if sh.staging.device_staging() {
            self.deliver(&entry, rx, thread, device_dest.map(|d| (d, fence)), charge)?
        } else {
            rx
        };
        Ok(Ticket::new(
            name,
            Kind::Read {
                rx,
                dest,
                dtype: entry.dtype,
                shape: entry.shape,
            },
        ))
    }

    /// Device staging: a job on the staging's own I/O thread (queued behind the read, so the
    /// read's outcome is there when it runs) copies the bytes into the device tensor `dest`
    /// (once the caller's GPU work up to its fence has completed), or, for a host
    /// destination, into host memory booked by `charge`.
    fn deliver(
        &self,
        entry: &Entry,
        read: Receiver<ReadOutcome>,
        thread: usize,
        dest: Option<(DeviceSpan, Option<Fence>)>,
        charge: Option<Charge>,
    ) -> Result<Receiver<ReadOutcome>> {
        let (tx, rx) = channel();
        let (name, n) = (entry.name.clone(), entry.len as usize);
        let job = Box::new(move || {
            let outcome = read.recv().unwrap_or_else(|_| Err(super::ticket::lost()));
            let delivered = outcome.and_then(|data| match (data, &dest) {
                (ReadData::OnDevice { mut staging }, Some((span, fence))) => staging
                    .copy_to_device(span, fence.as_ref())
                    .map(|()| ReadData::Delivered)
                    .map_err(|e| within(OpKind::SwapIn, &name, e)),
                (ReadData::OnDevice { mut staging }, None) => staging
                    .copy_out(n)
                    .map(|v| ReadData::Copied(v, charge))
                    .map_err(|e| within(OpKind::SwapIn, &name, e)),
                (other, _) => Ok(other),
            });
            let _ = tx.send(delivered);
        });
        self.threads.submit(thread, job)?;
        Ok(rx)
    }

    /// Starts reading `name` into a staging buffer, so that a later `swap_in` only copies.
    /// A swap-out or remove of `name` drops the prefetch.
    pub fn prefetch(&self, name: &str) -> Result<()> {
        let sh = &self.shared;
        let mut s = lock(&sh.state);
        if s.prefetched.contains_key(name) {
            return Ok(());
        }
        let entry = s
            .tensors
            .get(name)
            .cloned()
            .ok_or_else(|| missing(&s, name))?;
        let id = self.claim(&mut s, name, OpKind::Prefetch)?;
        drop(s);
        let (rx, thread) = self.start_read(name, id, &entry, OpKind::Prefetch)?;
        let mut s = lock(&sh.state);
        // The read may already have ended and released the tensor: if another operation has
        // claimed it since (a swap-out, whose new version this read does not hold), or a
        // newer version was committed, the prefetch is stale and is dropped.
        let claimed_by_other = s.busy.get(name).is_some_and(|&(_, other)| other != id);
        let same_version = s
            .tensors
            .get(name)
            .is_some_and(|e| e.generation == entry.generation && e.offset == entry.offset);
        if !claimed_by_other && same_version {
            s.prefetched.insert(name.to_string(), (entry, rx, thread));
        }
        Ok(())
    }

    fn start_read(
        &self,
        name: &str,
        id: u64,
        entry: &Entry,
        kind: OpKind,
    ) -> Result<(Receiver<ReadOutcome>, usize)> {
        let sh = &self.shared;
        let staging = match sh.staging.acquire(name, entry.padded_len, &self.threads) {
            Ok(s) => s,
            Err(e) => {
                release_claim(sh, name, id);
                return Err(e);
            }
        };
        let (tx, rx) = channel();
        let shared = Arc::clone(sh);
        let entry = entry.clone();
        let thread = staging.thread();
        let checker = self.checker.sender(0);
        let job = Box::new(move || {
            let finish = move |shared: &Shared, entry: &Entry, r: Result<ReadData>| {
                release_claim(shared, &entry.name, id);
                let _ = tx.send(r.map_err(|e| within(kind, &entry.name, e)));
            };
            match unpanicked(|| read_job(&shared, &entry, staging)).unwrap_or_else(Err) {
                Ok(ReadStep::Check(staging)) => {
                    let check: Job = Box::new(move || {
                        let r =
                            unpanicked(|| check_read(&shared, &entry, staging)).unwrap_or_else(Err);
                        finish(&shared, &entry, r);
                    });
                    // A checker that has stopped (the store is going away): check here.
                    if let Err(std::sync::mpsc::SendError(check)) = checker.send(check) {
                        check();
                    }
                }
                Ok(ReadStep::Done(data)) => finish(&shared, &entry, Ok(data)),
                Err(e) => finish(&shared, &entry, Err(e)),
            }
        });
        if let Err(e) = self.threads.submit(thread, job) {
            release_claim(sh, name, id);
            return Err(e);
        }
        Ok((rx, thread))
    }

    /// Removes `name` (durably, before returning); its space is reused.
    pub fn remove(&self, name: &str) -> Result<()> {
        let sh = &self.shared;
        let id = {
            let mut s = lock(&sh.state);
            let id = self.claim(&mut s, name, OpKind::Remove)?;
            if !s.tensors.contains_key(name) {
                s.busy.remove(name);
                return Err(swap_err(name, "no such tensor in the store"));
            }
            s.prefetched.remove(name);
            if let Some((off, l)) = s.spares.remove(name) {
                s.extents.free(off, l);
            }
            id
        };
        let r = commit_change(sh, name, None);
        release_claim(sh, name, id);
        r.map_err(|e| within(OpKind::Remove, name, e))
    }
}

impl Drop for SwapStore {
    fn drop(&mut self) {
        // Failures to free staging have nowhere to go here; `close` reports them.
        let _ = self.shutdown(true);
    }
}

/// Host tensors are read and written by the CPU: no GPU work to order them after, and a
/// caller naming a stream gets an error rather than a silent no-op.
fn check_host_order(name: &str, after: GpuWork) -> Result<()> {
    match after {
        GpuWork::Stream(_) => Err(swap_err(
            name,
            "a GPU stream to order after applies to device tensors only; this is a host tensor (synchronise its GPU work before the call)",
        )),
        GpuWork::LegacyStream | GpuWork::Nothing => Ok(()),
    }
}

/// A `Tensor` implementation must give its bytes (or device memory) the length it reports.
fn check_lengths(name: &str, t: &dyn Tensor, memory_len: usize) -> Result<()> {
    if memory_len == t.byte_len() {
        return Ok(());
    }
    Err(swap_err(
        name,
        format!(
            "the tensor says it holds {} bytes but its memory has {memory_len} (a Tensor implementation whose byte_len and memory disagree)",
            t.byte_len()
        ),
    ))
}

/// Names are keys in a JSON manifest: any text, but not empty and not absurdly long.
fn check_name(name: &str) -> Result<()> {
    match manifest::name_problem(name) {
        Some(p) => Err(swap_err(name, p)),
        None => Ok(()),
    }
}

/// The error for a name the store does not hold: quarantined, or unknown.
fn missing(s: &State, name: &str) -> Error {
    match s
        .quarantined
        .iter()
        .find(|q| q.name.as_deref() == Some(name))
    {
        Some(q) => swap_err(
            name,
            format!(
                "quarantined when the store was opened ({}): not readable; see SwapStore::quarantined",
                q.reason
            ),
        ),
        None => swap_err(name, "no such tensor in the store"),
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
