//! The backend trait: the one road every transfer takes.
//!
//! A [`Backend`] is chosen by name at run time. It says whether it can run here
//! ([`Backend::probe`]) and, per worker thread, prepares a [`Worker`] outside the timed region:
//! buffers in the memory the backend targets ([`MemoryKind`]), rings, streams, registrations.
//! The harness then times only [`Worker::transfer`], and uses [`Worker::fill`] /
//! [`Worker::inspect`] (untimed) to put the pattern into the destination before a write and
//! to check it after a read, wherever that memory lives (a device backend copies through the
//! host for these). Backends know nothing about reports or the CLI.
//!
//! Implementations: `host` (io_uring into host memory), `posix` (pread/pwrite),
//! `bounce` (io_uring into pinned host memory, then async copies to the GPU) and `gds`
//! (cuFile straight into GPU memory).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Message, Result};
use crate::io::buffer::{HugePages, PageBacking};
use crate::io::file::DataFile;
use crate::options::{GpuOptions, Op, RunOptions};
use crate::request::Request;
use crate::stats::LatencyRecorder;

pub mod bounce;
pub mod gds;
pub mod host;
mod host_memory;
pub mod posix;

pub use crate::types::{BackendId, MemoryKind};

/// Whether a backend can run on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Can run here: its libraries loaded and its checks passed.
    Available,
    /// Cannot run; the reason says why and how to fix it (it may name settings).
    Unavailable(Message),
}

/// What a worker needs to prepare itself.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    /// The worker thread's index, 0-based (it names the thread in errors and picks its range).
    pub tid: usize,
    /// Whether the worker reads or writes.
    pub op: Op,
    /// The open data file the worker transfers to or from (shared by the threads).
    pub file: Arc<DataFile>,
    /// Bytes in the thread's range: the destination buffer's length.
    pub range_len: u64,
    /// Bytes per request.
    pub block_size: u64,
    /// Requests in flight per thread (1 for backends that do one at a time).
    pub queue_depth: u32,
    /// Register the buffers and file with the io_uring ring (`--fixed-buffers`).
    pub fixed_buffers: crate::options::FixedBuffers,
    /// Why `--fixed-buffers auto` registers nothing in this whole run, settled once before
    /// any thread prepares (the memlock budget cannot hold every thread's buffers): each
    /// worker then runs unregistered and says why, rather than some threads registering and
    /// others not. `None`: each worker decides as `fixed_buffers` says.
    pub fixed_buffers_declined: Option<String>,
    /// Whether host buffers are backed by huge pages (`--huge-pages`).
    pub huge_pages: HugePages,
    /// Device, pinned chunks and staging mode (GPU backends).
    pub gpu: GpuOptions,
    /// Where transfers land (host backend: the whole range, or a ring of reused buffers).
    pub buffer: crate::options::BufferMode,
    /// How the io_uring engine drives its ring (host, bounce).
    pub ring: crate::options::RingOptions,
}

/// Where a transfer's time went, for backends with more than one stage (bounce: disk I/O
/// and copies to or from the device).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTimes {
    /// Time during which at least one I/O request was in flight.
    pub io: Duration,
    /// Time the copies took on the device's copy engine.
    pub copy: Duration,
    /// The whole transfer.
    pub total: Duration,
}

impl std::ops::Add for PhaseTimes {
    type Output = PhaseTimes;

    fn add(self, o: PhaseTimes) -> PhaseTimes {
        PhaseTimes {
            io: self.io + o.io,
            copy: self.copy + o.copy,
            total: self.total + o.total,
        }
    }
}

/// A transfer path, chosen by its [`BackendId`] ([`open`]).
pub trait Backend: Send + Sync {
    /// Which backend this is.
    fn id(&self) -> BackendId;
    /// The name used on the command line and in reports.
    fn name(&self) -> &'static str {
        self.id().name()
    }
    /// One line on what the backend does.
    fn summary(&self) -> &'static str;
    /// Where its destination buffers live.
    fn memory(&self) -> MemoryKind {
        self.id().memory()
    }
    /// Whether it can run here, and if not, why.
    fn probe(&self) -> Availability;
    /// Checks, before any file is touched, what only this backend knows to check in the
    /// options (a device that exists, a pinned-memory budget within RLIMIT_MEMLOCK).
    fn preflight(&self, _opts: &RunOptions) -> Result<()> {
        Ok(())
    }
    /// Allocates and registers everything one worker thread needs (untimed).
    fn prepare(&self, setup: &WorkerSetup) -> Result<Box<dyn Worker>>;
    /// Bytes of host memory a worker prepared with `setup` pins with the CUDA driver (page-
    /// locked for DMA: bounce's ring of chunks, gds's staging buffer), in the pages it is
    /// mapped with; 0 for backends that pin nothing. Budgets ask it (the swap store's staging)
    /// instead of knowing each backend's buffers.
    fn pinned_bytes(&self, _setup: &WorkerSetup) -> u64 {
        0
    }
    /// The request size to prepare a worker over `range_len` bytes with, for a caller that
    /// wants requests of up to `block_size` and keeps `chunks` in flight (the swap store's
    /// staging, whose buffers are sized per tensor). Default: `block_size`, at most the range.
    /// A backend whose pinned memory grows with the request size says how to keep it near
    /// the range's size.
    fn block_for_range(&self, range_len: u64, block_size: u64, _chunks: u64) -> u64 {
        block_size.min(range_len)
    }
    /// `gds`: the path the run's bytes took, once the run is done; `None` for the others.
    fn gds_path(&self) -> Option<crate::types::GdsVerdict> {
        None
    }
}

/// One thread's prepared context.
pub trait Worker: Send {
    /// How the worker runs, for the report (e.g. `io_uring, fixed buffers+files`).
    fn mode(&self) -> String;
    /// The page backing of the I/O memory the worker allocated, when it is host memory.
    fn buffer_pages(&self) -> Option<PageBacking>;
    /// Lets `f` write the destination buffer's bytes (untimed; used before writes).
    fn fill(&mut self, f: &mut dyn FnMut(&mut [u8])) -> Result<()>;
    /// Lets `f` read the destination buffer's bytes (untimed; used to verify reads).
    fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>;
    /// Like [`Worker::fill`], piece by piece in order: `f(offset, piece)` writes the bytes at
    /// `offset`. Device backends stage each piece through their pinned memory, so no host
    /// copy of the whole buffer is made; the default hands over the whole buffer at once.
    fn fill_pieces(&mut self, f: &mut dyn FnMut(usize, &mut [u8])) -> Result<()> {
        self.fill(&mut |b| f(0, b))
    }
    /// Like [`Worker::inspect`], piece by piece in order: `f(offset, piece)`.
    fn inspect_pieces(&mut self, f: &mut dyn FnMut(usize, &[u8]) -> Result<()>) -> Result<()> {
        self.inspect(&mut |b| f(0, b))
    }
    /// Releases what `prepare` acquired, reporting failures (a deregistration or free that
    /// fails is an error of the run, not something to ignore in `Drop`). Untimed.
    fn release(self: Box<Self>) -> Result<()> {
        Ok(())
    }
    /// Host backends whose destination is one buffer of the whole range: that buffer's
    /// bytes, borrowed (the swap store lends it out as a tensor, so swaps need no copy);
    /// `None` for others.
    fn host_buffer(&self) -> Option<&[u8]> {
        None
    }
    /// [`Worker::host_buffer`], mutably: the buffer the next write sends (`None` for others).
    fn host_buffer_mut(&mut self) -> Option<&mut [u8]> {
        None
    }
    /// Device backends: the worker's device buffer and the stream its copies go on (for
    /// device-to-device copies on the worker's thread, as the swap store makes them for
    /// device tensors); `None` for host backends.
    fn device_memory(
        &self,
    ) -> Option<(
        &crate::cuda::device_buffer::DeviceBuffer,
        &crate::cuda::stream::Stream,
    )> {
        None
    }
    /// Called once on every worker after the warm-up loops and before the first measured
    /// one (untimed; only when there was a warm-up loop). The `gds` backend reads cuFile's
    /// statistics of the warm-up loops here.
    fn begin_measured(&mut self) -> Result<()> {
        Ok(())
    }
    /// Where the last transfer's time went, for multi-stage backends.
    fn phase_times(&self) -> Option<PhaseTimes> {
        None
    }
    /// The last transfer's copies to or from the device (bounce), each a span on a clock
    /// shared by the run's workers, so that the report can take the union over threads.
    fn copy_spans(&self) -> &[crate::cuda::copy::CopySpan] {
        &[]
    }
    /// Moves every request between the file and the buffer: the timed part. Every request's
    /// result is checked; one latency per request is recorded in `latencies`.
    fn transfer(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<()>;
    /// Like [`Worker::transfer`] (requests at their own `buf_offset` of a host buffer),
    /// handing each request's bytes to `f(buf_offset, bytes)` once they have moved. The
    /// `host` backend calls `f` as each request completes, while the others are in flight;
    /// the default calls it for every request, in order, after the whole transfer.
    fn transfer_observed(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
        f: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.transfer(op, requests, latencies)?;
        self.inspect(&mut |b| {
            for r in requests {
                let bytes = b.get(r.buf_offset..r.buf_offset + r.len).ok_or_else(|| {
                    crate::error::Error::Internal(
                        "internal error: a request outside its buffer (please report it)".into(),
                    )
                })?;
                f(r.buf_offset, bytes)?;
            }
            Ok(())
        })
    }
}

/// The backend `id`, whether it can run here or not (a fresh instance: the `gds` backend
/// keeps the state of one run or store).
pub fn get(id: BackendId) -> Arc<dyn Backend> {
    match id {
        BackendId::Host => Arc::new(host::HostBackend),
        BackendId::Posix => Arc::new(posix::PosixBackend),
        BackendId::Bounce => Arc::new(bounce::BounceBackend),
        BackendId::Gds => Arc::new(gds::GdsBackend::default()),
    }
}

/// Every backend gdswap knows, available here or not, in [`BackendId::ALL`]'s order.
pub fn all() -> Vec<Arc<dyn Backend>> {
    BackendId::ALL.into_iter().map(get).collect()
}

/// The backend `id`, ready to prepare workers: [`Error::Unavailable`] with the reason when it
/// cannot run on this machine. The one place a run or a swap store gets its backend.
pub fn open(id: BackendId) -> Result<Arc<dyn Backend>> {
    let backend = get(id);
    match backend.probe() {
        Availability::Available => Ok(backend),
        Availability::Unavailable(reason) => Err(Error::Unavailable {
            backend: id.name().to_string(),
            reason,
        }),
    }
}

/// [`Worker::fill`] for a worker whose memory is reached only piece by piece (device memory
/// staged through pinned buffers): `f` writes a host copy of the whole `len` bytes, which
/// [`Worker::fill_pieces`] then hands over in order.
pub(crate) fn fill_through_pieces(
    worker: &mut dyn Worker,
    len: usize,
    f: &mut dyn FnMut(&mut [u8]),
) -> Result<()> {
    let mut host = vec![0u8; len];
    f(&mut host);
    worker.fill_pieces(&mut |off, piece| piece.copy_from_slice(&host[off..off + piece.len()]))
}

/// [`Worker::inspect`] for a worker whose memory is reached only piece by piece: the pieces
/// from [`Worker::inspect_pieces`] are gathered into a host copy of the whole `len` bytes,
/// which `f` reads.
pub(crate) fn inspect_through_pieces(
    worker: &mut dyn Worker,
    len: usize,
    f: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut host = vec![0u8; len];
    worker.inspect_pieces(&mut |off, piece| {
        host[off..off + piece.len()].copy_from_slice(piece);
        Ok(())
    })?;
    f(&host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_gets_its_backend() {
        let ids: Vec<BackendId> = all().iter().map(|b| b.id()).collect();
        assert_eq!(ids, BackendId::ALL);
        for id in BackendId::ALL {
            assert_eq!(get(id).id(), id);
            assert_eq!(get(id).name(), id.name());
            assert_eq!(get(id).memory(), id.memory());
        }
        assert_eq!(get(BackendId::Posix).probe(), Availability::Available);
        assert!(open(BackendId::Posix).is_ok());
    }

    #[test]
    fn open_refuses_a_backend_that_cannot_run_here_with_its_reason() {
        // Without libcuda (this machine, and the tests' default), the device backends are
        // unavailable; where they can run, this test has nothing to check.
        for id in [BackendId::Bounce, BackendId::Gds] {
            let Availability::Unavailable(why) = get(id).probe() else {
                continue;
            };
            match open(id) {
                Err(Error::Unavailable { backend, reason }) => {
                    assert_eq!(backend, id.name());
                    assert_eq!(reason, why);
                }
                other => panic!("{id}: {:?}", other.map(|b| b.id())),
            }
        }
    }
}
