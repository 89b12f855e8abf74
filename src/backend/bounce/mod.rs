//! `bounce`: io_uring O_DIRECT into pinned host memory, then asynchronous copies to the GPU
//! (and the reverse for writes): the way to reach GPU memory without GPUDirect Storage, and
//! the baseline GDS is measured against.
//!
//! Each worker thread has its own device context, stream, device buffer the size of its range
//! (as the host backend's buffer: the tensor), and io_uring engine. Two modes:
//! - `pipelined` (default): a ring of `--bounce-buffers K` pinned chunks of one block each.
//!   Reads land in free chunks; each completed chunk is copied to its place in the device
//!   buffer on the stream and reused once its event says the copy finished, so disk reads
//!   and copies overlap. Writes copy upcoming blocks from the device into free chunks and
//!   submit each write once its copy's event completed. See [`staging`] (the stagers, safe
//!   code) and `cuda::copy` (the timed asynchronous copies they queue).
//! - `serial`: the naive variant, to show what the pipeline buys. Its staging area is one
//!   pinned buffer the size of the thread's range: a read reads the whole range into it, then
//!   copies it to the device in one copy; a write copies the whole range out, then writes it.
//!   (Pinned memory: the range, not K blocks; with `--fixed-buffers`, the memlock check
//!   says so.)
//!
//! The report gets the time inside I/O (some request in flight), inside copies and the overlap
//! of the two. Each copy is timed by events on the thread's stream, read against one origin
//! event per run and device ([`CopyClock`]), so the copy spans of all threads are on one
//! clock: the run's copy time is their union, the time the copy engine was busy, not a sum
//! that counts a copy waiting for another thread's copy as copy time. `fill` and
//! `inspect` go through the device (copies through the pinned memory), so `--verify` checks
//! what reached the device buffer; a write's verify reads back what reached the file.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::cuda::copy::{self, ChunkEvents, CopyClock, CopySpan};
use crate::cuda::device::{check_ordinal, Device};
use crate::cuda::device_buffer::DeviceBuffer;
use crate::cuda::driver;
use crate::cuda::pinned::{check_memlock, PinnedBuffer};
use crate::cuda::stream::Stream;
use crate::error::{Error, Result, Setting};
use crate::io::buffer::{HugePages, PageBacking};
use crate::io::uring::{self, IoBuffer, UringEngine};
use crate::options::{BounceMode, FixedBuffers, Op, RunOptions};
use crate::request::Request;
use crate::size::Bytes;
use crate::stats::LatencyRecorder;

use super::{Availability, Backend, BackendId, PhaseTimes, Worker, WorkerSetup};

pub mod staging;

use staging::{ReadStager, WriteStager};

/// The `bounce` backend: io_uring into pinned host memory, then asynchronous copies to the GPU
/// (the reverse for writes).
pub struct BounceBackend;

/// The live copy clock of each device, shared by the workers of a run (all prepared before
/// any is dropped, so they find the same one); held weakly, so a clock goes away with the last
/// worker that uses it, before the primary context it belongs to can be reset.
static CLOCKS: Mutex<Vec<(usize, Weak<CopyClock>)>> = Mutex::new(Vec::new());

/// Device `ordinal`'s live clock, or a new one recorded on `stream` (of that device's
/// primary context, current on this thread).
fn shared_clock(ordinal: usize, stream: &Stream) -> Result<Arc<CopyClock>> {
    let mut clocks = CLOCKS.lock().unwrap_or_else(|e| e.into_inner());
    clocks.retain(|(_, w)| w.strong_count() > 0);
    if let Some(clock) = clocks
        .iter()
        .find(|(o, _)| *o == ordinal)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(clock);
    }
    let clock = Arc::new(CopyClock::new(stream)?);
    clocks.push((ordinal, Arc::downgrade(&clock)));
    Ok(clock)
}

/// Pinned bytes one thread registers: K blocks (pipelined) or its whole range (serial),
/// rounded up to the pages the buffer is mapped with (2 MiB unless huge pages are off), since
/// all of the mapping is registered (with CUDA, and with io_uring under --fixed-buffers).
fn pinned_len(
    mode: BounceMode,
    chunks: usize,
    block_size: u64,
    range_len: u64,
    pages: HugePages,
) -> u64 {
    let page = if pages == HugePages::Off {
        4096
    } else {
        2 << 20
    };
    let len = match mode {
        BounceMode::Pipelined => (chunks as u64).saturating_mul(block_size),
        BounceMode::Serial => range_len,
    };
    len.checked_next_multiple_of(page).unwrap_or(u64::MAX)
}

/// [`pinned_len`] of each thread of a run.
fn pinned_per_thread(opts: &RunOptions) -> Vec<u64> {
    crate::plan::range_lens(opts)
        .into_iter()
        .map(|range| {
            pinned_len(
                opts.gpu.bounce_mode,
                opts.gpu.bounce_buffers,
                opts.workload.block_size,
                range,
                opts.huge_pages,
            )
        })
        .collect()
}

impl Backend for BounceBackend {
    fn id(&self) -> BackendId {
        BackendId::Bounce
    }

    fn summary(&self) -> &'static str {
        "io_uring into pinned host chunks, async copies to GPU memory"
    }

    fn probe(&self) -> Availability {
        if let Some(why) = uring::unavailable_reason() {
            return Availability::Unavailable(why);
        }
        match driver::load() {
            Ok(_) => Availability::Available,
            Err(why) => Availability::Unavailable(why.into()),
        }
    }

    fn preflight(&self, opts: &RunOptions) -> Result<()> {
        let info = driver::load().map_err(|reason| Error::Unavailable {
            backend: self.name().into(),
            reason: reason.into(),
        })?;
        check_ordinal(opts.gpu.device, info.devices)?;
        // Pinning (cuMemHostRegister) is not charged to RLIMIT_MEMLOCK: the NVIDIA driver pins
        // without locked-memory accounting. io_uring's registration of the pinned memory as
        // fixed buffers is, so the limit applies with --fixed-buffers only.
        if !opts.fixed_buffers.required() {
            return Ok(());
        }
        let per_thread = pinned_per_thread(opts);
        let total: u64 = per_thread.iter().sum();
        let most = per_thread.iter().copied().max().unwrap_or(0);
        let threads = format!(
            "over {} thread{}",
            opts.workload.threads,
            if opts.workload.threads == 1 { "" } else { "s" }
        );
        let (what, hint) = match opts.gpu.bounce_mode {
            BounceMode::Pipelined => (
                crate::error::msg![Setting::FixedBuffers, " registration of ", Setting::BounceBuffers, format!(" {} x ", opts.gpu.bounce_buffers), Setting::BlockSize, format!(" {} pinned per thread ({} mapped), {threads}", Bytes(opts.workload.block_size), Bytes(most))],
                crate::error::msg!["run without ", Setting::FixedBuffers, ", or lower ", Setting::BounceBuffers, ", ", Setting::BlockSize, " or ", Setting::Threads],
            ),
            BounceMode::Serial => (
                crate::error::msg![Setting::FixedBuffers, " registration of ", Setting::BounceMode, format!(" serial's pinned staging (each thread's range, up to {} per thread, {threads})", Bytes(most))],
                crate::error::msg!["run without ", Setting::FixedBuffers, ", or lower ", Setting::Size, ", or use ", Setting::BounceMode, " pipelined"],
            ),
        };
        check_memlock(total, what, hint)
    }

    fn pinned_bytes(&self, setup: &WorkerSetup) -> u64 {
        pinned_len(
            setup.gpu.bounce_mode,
            setup.gpu.bounce_buffers,
            setup.block_size,
            setup.range_len,
            setup.huge_pages,
        )
    }

    /// The ring is `chunks` chunks of one request each: requests of about `range_len /
    /// chunks` (whole pages, at least one page, at most `block_size`) keep it near the range's
    /// size, so a small range does not pin `chunks` full blocks, while `chunks` requests can
    /// still be in flight.
    fn block_for_range(&self, range_len: u64, block_size: u64, chunks: u64) -> u64 {
        range_len
            .div_ceil(chunks.max(1))
            .next_multiple_of(4096)
            .clamp(4096, block_size.max(4096))
            .min(range_len)
    }

    fn prepare(&self, setup: &WorkerSetup) -> Result<Box<dyn Worker>> {
        let range_len = usize::try_from(setup.range_len).map_err(|_| {
            Error::OutOfMemory(
                format!("a {} range does not fit in memory", Bytes(setup.range_len)).into(),
            )
        })?;
        let chunk = setup.block_size as usize;
        let mode = setup.gpu.bounce_mode;
        // Declaration order here is the reverse of the drop order in BounceWorker.
        let device = Device::open(setup.gpu.device)?;
        let device_name = device.name()?;
        let pinned_len = match mode {
            BounceMode::Pipelined => setup.gpu.bounce_buffers * chunk,
            BounceMode::Serial => range_len,
        };
        let pinned = PinnedBuffer::new(pinned_len, setup.huge_pages)?;
        let engine = UringEngine::with_ring(
            pinned,
            Arc::clone(&setup.file),
            setup.queue_depth,
            setup.block_size,
            // Registered only on request: `auto` keeps CUDA-pinned chunks unregistered (their
            // registration with io_uring has not run on a GPU yet).
            match setup.fixed_buffers {
                FixedBuffers::On => FixedBuffers::On,
                FixedBuffers::Auto | FixedBuffers::Off => FixedBuffers::Off,
            },
            setup.ring,
        )?;
        let buffer = DeviceBuffer::new(range_len, setup.gpu.device)?;
        let events = match mode {
            BounceMode::Pipelined => ChunkEvents::new(setup.gpu.bounce_buffers)?,
            BounceMode::Serial => ChunkEvents::new(1)?,
        };
        let stream = Stream::new()?;
        let clock = shared_clock(setup.gpu.device, &stream)?;
        Ok(Box::new(BounceWorker {
            stream,
            events,
            clock,
            spans: Vec::new(),
            buffer,
            engine,
            device,
            device_name,
            mode,
            chunk,
            chunks: setup.gpu.bounce_buffers,
            range_len,
            last: None,
        }))
    }
}

/// One thread's bounce context. Fields drop in declaration order: the stream first (it waits
/// for queued copies), then events and the clock, the device buffer, the engine (its ring,
/// then the pinned memory), and the context last.
struct BounceWorker {
    stream: Stream,
    /// One pair per pinned chunk (serial mode: one pair, for its one copy).
    events: Vec<ChunkEvents>,
    clock: Arc<CopyClock>,
    /// The last transfer's copy spans on `clock`.
    spans: Vec<CopySpan>,
    buffer: DeviceBuffer,
    engine: UringEngine<PinnedBuffer>,
    device: Device,
    device_name: String,
    mode: BounceMode,
    chunk: usize,
    chunks: usize,
    range_len: usize,
    last: Option<PhaseTimes>,
}

impl BounceWorker {
    fn transfer_serial(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<(Duration, Duration)> {
        let len = self.range_len;
        match op {
            Op::Read => {
                let t = Instant::now();
                self.engine.run(op, requests, latencies)?;
                let io = t.elapsed();
                let span = self.events[0].upload(
                    &self.buffer,
                    self.engine.io_buffer(),
                    len,
                    &self.stream,
                    &self.clock,
                )?;
                self.spans = vec![span];
                Ok((io, Duration::from_secs_f64(span.len_s())))
            }
            Op::Write => {
                let span = self.events[0].download(
                    &self.buffer,
                    self.engine.io_buffer_mut(),
                    len,
                    &self.stream,
                    &self.clock,
                )?;
                self.spans = vec![span];
                let t = Instant::now();
                self.engine.run(op, requests, latencies)?;
                Ok((t.elapsed(), Duration::from_secs_f64(span.len_s())))
            }
        }
    }
}

impl Worker for BounceWorker {
    fn mode(&self) -> String {
        let staging = match self.mode {
            BounceMode::Pipelined => format!(
                "bounce pipelined, {} pinned chunks of {}",
                self.chunks,
                Bytes(self.chunk as u64)
            ),
            BounceMode::Serial => format!(
                "bounce serial, pinned staging of {}",
                Bytes(self.range_len as u64)
            ),
        };
        format!(
            "{staging}, device {} ({}); {}",
            self.device.ordinal(),
            self.device_name,
            self.engine.mode()
        )
    }

    fn device_memory(&self) -> Option<(&DeviceBuffer, &Stream)> {
        Some((&self.buffer, &self.stream))
    }

    fn buffer_pages(&self) -> Option<PageBacking> {
        Some(self.engine.io_buffer().backing())
    }

    fn phase_times(&self) -> Option<PhaseTimes> {
        self.last
    }

    fn copy_spans(&self) -> &[CopySpan] {
        &self.spans
    }

    fn fill(&mut self, f: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        let len = self.range_len;
        crate::backend::fill_through_pieces(self, len, f)
    }

    fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let len = self.range_len;
        crate::backend::inspect_through_pieces(self, len, f)
    }

    fn fill_pieces(&mut self, f: &mut dyn FnMut(usize, &mut [u8])) -> Result<()> {
        self.buffer
            .fill_through(self.engine.io_buffer_mut(), &self.stream, f)
    }

    fn inspect_pieces(&mut self, f: &mut dyn FnMut(usize, &[u8]) -> Result<()>) -> Result<()> {
        self.buffer
            .inspect_through(self.engine.io_buffer_mut(), &self.stream, f)
    }

    fn transfer(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<()> {
        self.last = None;
        self.spans.clear();
        let t = Instant::now();
        let (io, copy) = match self.mode {
            BounceMode::Serial => self.transfer_serial(op, requests, latencies)?,
            BounceMode::Pipelined => match op {
                Op::Read => {
                    let mut stager = ReadStager::new(&self.events, &self.clock, self.chunk);
                    let io = copy::run_staged(
                        &mut self.engine,
                        &self.buffer,
                        &self.stream,
                        op,
                        requests,
                        latencies,
                        &mut stager,
                    )?;
                    let time = stager.into_copy_time();
                    self.spans = time.spans;
                    (io, Duration::from_secs_f64(time.seconds))
                }
                Op::Write => {
                    let mut stager =
                        WriteStager::new(&self.events, &self.clock, self.chunk, requests);
                    let io = copy::run_staged(
                        &mut self.engine,
                        &self.buffer,
                        &self.stream,
                        op,
                        requests,
                        latencies,
                        &mut stager,
                    )?;
                    let time = stager.into_copy_time();
                    self.spans = time.spans;
                    (io, Duration::from_secs_f64(time.seconds))
                }
            },
        };
        self.last = Some(PhaseTimes {
            io,
            copy,
            total: t.elapsed(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::file::DataFile;
    use crate::options::GpuOptions;

    #[test]
    fn small_ranges_get_a_ring_near_their_size_and_pinned_bytes_follow_it() {
        let b = BounceBackend;
        let m = 1u64 << 20;
        // 16 chunks of 1 MiB would pin 16 MiB for a 64 MiB range: full blocks.
        assert_eq!(b.block_for_range(64 * m, m, 16), m);
        // For 8 MiB, half-MiB chunks keep the ring at the range's size.
        assert_eq!(b.block_for_range(8 * m, m, 16), m / 2);
        // At least a page, at most the range.
        assert_eq!(b.block_for_range(100 * 1024, m, 16), 8192);
        assert_eq!(b.block_for_range(1000, m, 16), 1000);
        assert_eq!(b.block_for_range(64 * m, 512, 16), 4096);

        let dir = crate::testutil::scratch_dir();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = Arc::new(DataFile::open(&path, crate::io::file::Access::Read, false).unwrap());
        let setup = |range_len: u64, block_size: u64, pages: HugePages| WorkerSetup {
            tid: 0,
            op: Op::Read,
            file: Arc::clone(&file),
            range_len,
            block_size,
            queue_depth: 8,
            fixed_buffers: FixedBuffers::Off,
            fixed_buffers_declined: None,
            huge_pages: pages,
            gpu: GpuOptions {
                bounce_buffers: 16,
                ..GpuOptions::default()
            },
            buffer: crate::options::BufferMode::Full,
            ring: crate::options::RingOptions::default(),
        };
        // K chunks of one block, in the pages the ring is mapped with.
        assert_eq!(b.pinned_bytes(&setup(64 * m, m, HugePages::Thp)), 16 * m);
        assert_eq!(
            b.pinned_bytes(&setup(8 * m, 100 * 1024, HugePages::Thp)),
            2 * m
        );
        assert_eq!(
            b.pinned_bytes(&setup(8 * m, 100 * 1024, HugePages::Off)),
            1600 * 1024
        );
    }
}
