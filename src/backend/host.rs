//! `host`: io_uring into host memory, O_DIRECT, queue depth in flight per thread.
//!
//! One ring per worker thread (no sharing, no locks), buffers huge-page backed by default,
//! optionally registered with the ring (`--fixed-buffers`: registered buffers and files, which
//! saves the kernel from pinning pages and looking up the file on every request).

use std::sync::Arc;

use crate::error::Result;
use crate::io::buffer::HostBuffer;
use crate::io::buffer::PageBacking;
use crate::io::uring::{self, ReusedBuffers, UringEngine};
use crate::options::BufferMode;
use crate::options::Op;
use crate::request::Request;
use crate::stats::LatencyRecorder;

use super::{host_memory, Availability, Backend, BackendId, Worker, WorkerSetup};

/// The `host` backend: io_uring with O_DIRECT into host memory, queue depth in flight per
/// thread.
pub struct HostBackend;

impl Backend for HostBackend {
    fn id(&self) -> BackendId {
        BackendId::Host
    }

    fn summary(&self) -> &'static str {
        "io_uring into host memory, queue depth in flight per thread"
    }

    fn probe(&self) -> Availability {
        match uring::unavailable_reason() {
            None => Availability::Available,
            Some(why) => Availability::Unavailable(why),
        }
    }

    fn prepare(&self, setup: &WorkerSetup) -> Result<Box<dyn Worker>> {
        let ring = match setup.buffer {
            BufferMode::Full => None,
            BufferMode::Ring => Some((setup.queue_depth as usize, setup.block_size as usize)),
        };
        let buf = match ring {
            None => host_memory::allocate(setup)?,
            // The block size is capped at 1 GiB and the queue depth at 4096 by validation.
            Some((slots, block)) => HostBuffer::new(slots * block, setup.huge_pages)?,
        };
        let fixed = match setup.fixed_buffers_declined {
            Some(_) => crate::options::FixedBuffers::Off,
            None => setup.fixed_buffers,
        };
        let mut engine = UringEngine::with_ring(
            buf,
            Arc::clone(&setup.file),
            setup.queue_depth,
            setup.block_size,
            fixed,
            setup.ring,
        )?;
        if let Some(why) = &setup.fixed_buffers_declined {
            engine.note_unregistered(why.clone());
        }
        Ok(Box::new(HostWorker { engine, ring }))
    }
}

struct HostWorker {
    engine: UringEngine,
    /// `--buffer ring`: (regions, bytes each) reused as requests complete.
    ring: Option<(usize, usize)>,
}

impl Worker for HostWorker {
    fn mode(&self) -> String {
        match self.ring {
            None => self.engine.mode(),
            Some((slots, block)) => format!(
                "{}, ring of {slots} reused {} buffers",
                self.engine.mode(),
                crate::size::Bytes(block as u64)
            ),
        }
    }

    fn buffer_pages(&self) -> Option<PageBacking> {
        Some(self.engine.buffer_pages())
    }

    fn host_buffer(&self) -> Option<&[u8]> {
        self.ring.is_none().then(|| self.engine.buffer())
    }

    fn host_buffer_mut(&mut self) -> Option<&mut [u8]> {
        match self.ring {
            None => Some(self.engine.buffer_mut()),
            Some(_) => None,
        }
    }

    fn fill(&mut self, f: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        f(self.engine.buffer_mut());
        Ok(())
    }

    fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        f(self.engine.buffer())
    }

    fn transfer(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<()> {
        match self.ring {
            None => self.engine.run(op, requests, latencies),
            Some((slots, block)) => self
                .engine
                .run_staged(
                    op,
                    requests,
                    latencies,
                    &mut ReusedBuffers::new(slots, block),
                )
                .map(drop),
        }
    }

    fn transfer_observed(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
        f: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        match self.ring {
            None => self.engine.run_observed(op, requests, latencies, f),
            // No buffer of the whole range to observe: the swap store never asks for this.
            Some(_) => Err(crate::error::Error::Internal(
                "internal error: an observed transfer through a ring of reused buffers (please report it)".into(),
            )),
        }
    }
}
