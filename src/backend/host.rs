//! `host`: io_uring into host memory, O_DIRECT, queue depth in flight per thread.
//!
//! One ring per worker thread (no sharing, no locks), buffers huge-page backed by default,
//! optionally registered with the ring (`--fixed-buffers`: registered buffers and files, which
//! saves the kernel from pinning pages and looking up the file on every request).

use std::sync::Arc;

use crate::error::Result;
use crate::io::buffer::PageBacking;
use crate::io::uring::{self, UringEngine};
use crate::options::Op;
use crate::plan::Request;
use crate::stats::LatencyRecorder;

use super::{host_memory, Availability, Backend, MemoryKind, Worker, WorkerSetup};

pub struct HostBackend;

impl Backend for HostBackend {
    fn name(&self) -> &'static str {
        "host"
    }

    fn summary(&self) -> &'static str {
        "io_uring into host memory, queue depth in flight per thread"
    }

    fn memory(&self) -> MemoryKind {
        MemoryKind::Host
    }

    fn probe(&self) -> Availability {
        match uring::unavailable_reason() {
            None => Availability::Available,
            Some(why) => Availability::Unavailable(why),
        }
    }

    fn prepare(&self, setup: &WorkerSetup) -> Result<Box<dyn Worker>> {
        let buf = host_memory::allocate(setup)?;
        let engine = UringEngine::new(
            buf,
            Arc::clone(&setup.file),
            setup.queue_depth,
            setup.block_size,
            setup.fixed_buffers,
        )?;
        Ok(Box::new(HostWorker { engine }))
    }
}

struct HostWorker {
    engine: UringEngine,
}

impl Worker for HostWorker {
    fn mode(&self) -> String {
        self.engine.mode()
    }

    fn buffer_pages(&self) -> Option<PageBacking> {
        Some(self.engine.buffer_pages())
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
        self.engine.run(op, requests, latencies)
    }
}
