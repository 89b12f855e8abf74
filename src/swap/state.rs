//! The store's shared state: its tensors, claims, extents and prefetches behind one mutex,
//! and what a swap-out's job still has to do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::io::file::DataFile;

use super::alloc::Extents;
use super::buffer::DeviceSpan;
use super::device_tensor::Fence;
use super::manifest::{Entry, Manifest, Quarantined, FORMAT};
use super::options::SwapOptions;
use super::staging::{Charge, StagingPool};
use super::ticket::ReadOutcome;

/// Where a swap-out's bytes come from.
pub(super) enum Source<'t> {
    Host(&'t [u8]),
    Device(DeviceSpan, Option<Fence>),
}

/// What a swap-out's I/O thread still has to put into its staging buffer.
pub(super) enum Pending {
    /// A copy of host bytes, for device staging (filled on its thread), booked against the
    /// budget until the job ends.
    Bytes(Vec<u8>, Charge),
    /// A device tensor, copied device-to-device on the staging's thread (and checksummed)
    /// once the caller's GPU work up to the fence has completed; the job signals on the
    /// sender once the copy is done, and `swap_out` waits for that, so the stored version is
    /// the tensor as it was when `swap_out` returned.
    Device(DeviceSpan, Option<Fence>, std::sync::mpsc::Sender<()>),
    /// The staging holds the bytes (a staged tensor, or host staging that `swap_out` filled):
    /// only the checksum is left to compute, during the write.
    Checksum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpKind {
    SwapOut,
    SwapIn,
    Prefetch,
    Remove,
}

impl OpKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            OpKind::SwapOut => "swap-out",
            OpKind::SwapIn => "swap-in",
            OpKind::Prefetch => "prefetch",
            OpKind::Remove => "remove",
        }
    }
}

pub(super) struct State {
    pub(super) tensors: BTreeMap<String, Entry>,
    pub(super) generation: u64,
    pub(super) extents: Extents,
    /// Tensors with an operation in flight: its kind and id (only that id clears it).
    pub(super) busy: HashMap<String, (OpKind, u64)>,
    pub(super) next_op: u64,
    /// Each tensor's previous extent (no longer in the manifest), where its next version of
    /// the same padded size is written.
    pub(super) spares: HashMap<String, (u64, u64)>,
    /// Manifest entries refused at open (or at an earlier open): never read, written back
    /// with every commit, their bytes never overwritten.
    pub(super) quarantined: Vec<Quarantined>,
    /// Prefetches, finished or not, waiting for their swap-in, with the I/O thread that
    /// holds their staging.
    pub(super) prefetched: HashMap<String, (Entry, Receiver<ReadOutcome>, usize)>,
    pub(super) bytes_written: u64,
    pub(super) bytes_read: u64,
}

pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) file: Arc<DataFile>,
    pub(super) align: u64,
    pub(super) opts: SwapOptions,
    pub(super) state: Mutex<State>,
    /// Held while a manifest is written: commits go one at a time, each with every earlier
    /// commit in it.
    pub(super) commit: Mutex<()>,
    /// Swap-outs queued whose writes have not ended: the commit thread waits for those
    /// submitted before a batch began (see `committer`).
    pub(super) writing: Arc<Writing>,
    pub(super) staging: Arc<StagingPool>,
    /// What the first failed fdatasync of the data file said (its errno), if one has failed.
    /// The kernel reports a failed flush once: a later fdatasync can succeed although data
    /// written before the failure (to the device's cache, or in pages that failed write-back)
    /// was lost. So after one fails, no later fdatasync proves a swap-out durable, and the
    /// store commits nothing more until it is opened again from its last durable manifest
    /// (as PostgreSQL stops after a failed fsync): `jobs::commit_written`.
    pub(super) sync_failed: OnceLock<std::io::Error>,
}

/// Swap-outs submitted whose writes have not ended yet (handed over or failed), by sequence
/// number.
#[derive(Default)]
pub(super) struct Writing {
    inner: Mutex<(u64, BTreeSet<u64>)>,
}

impl Writing {
    /// A swap-out is about to be queued: its number, to `end` when its write has ended.
    pub(super) fn begin(&self) -> u64 {
        let mut g = lock(&self.inner);
        let seq = g.0;
        g.0 += 1;
        g.1.insert(seq);
        seq
    }

    /// The write of `seq` has ended: handed over (call it after `hand_over`), failed, or
    /// never queued.
    pub(super) fn end(&self, seq: u64) {
        lock(&self.inner).1.remove(&seq);
    }

    /// [`Writing::begin`], ended when the returned value is dropped: a swap-out's job holds
    /// it, so the write ends after the job has handed it over or failed, when the job is
    /// dropped unrun, and as a panic unwinds through it. The commit thread so never waits
    /// for a write that will not end.
    pub(super) fn begin_until_dropped(self: &Arc<Self>) -> WriteUnderWay {
        WriteUnderWay {
            seq: self.begin(),
            writing: Arc::clone(self),
        }
    }

    /// The number the next swap-out will get.
    pub(super) fn horizon(&self) -> u64 {
        lock(&self.inner).0
    }

    /// Whether a swap-out numbered below `horizon` is still writing.
    pub(super) fn writing_before(&self, horizon: u64) -> bool {
        lock(&self.inner).1.range(..horizon).next().is_some()
    }
}

/// A swap-out counted as writing until this is dropped (see [`Writing::begin_until_dropped`]).
pub(super) struct WriteUnderWay {
    writing: Arc<Writing>,
    seq: u64,
}

impl Drop for WriteUnderWay {
    fn drop(&mut self) {
        self.writing.end(self.seq);
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn release_claim(sh: &Shared, name: &str, id: u64) {
    let mut s = lock(&sh.state);
    if s.busy.get(name).is_some_and(|&(_, i)| i == id) {
        s.busy.remove(name);
    }
}

/// The manifest of state `s` at `generation`.
pub(super) fn snapshot_of(s: &State, generation: u64) -> Manifest {
    Manifest {
        format: FORMAT.into(),
        generation,
        tensors: s.tensors.values().cloned().collect(),
        quarantined: s.quarantined.clone(),
    }
}

/// An error of one tensor's swap.
pub(super) fn swap_err(
    name: &str,
    message: impl Into<crate::error::Message>,
) -> crate::error::Error {
    crate::error::Error::Swap {
        tensor: name.to_string(),
        message: message.into(),
    }
}
