//! `posix`: pread/pwrite, one request at a time per thread.
//!
//! The baseline every peer tool has, and what cuFile's compat mode does underneath. Short
//! transfers are continued, EINTR retried, a zero-byte result is an error (the file ended or
//! the device took nothing), and every error names the path, offset and length.

use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, FileOp, Result};
use crate::io::buffer::{HostBuffer, PageBacking};
use crate::io::file::DataFile;
use crate::options::Op;
use crate::request::Request;
use crate::stats::LatencyRecorder;

use super::{host_memory, Availability, Backend, BackendId, Worker, WorkerSetup};

/// The `posix` backend: pread/pwrite into host memory, one request at a time per thread.
pub struct PosixBackend;

impl Backend for PosixBackend {
    fn id(&self) -> BackendId {
        BackendId::Posix
    }

    fn summary(&self) -> &'static str {
        "pread/pwrite into host memory, one request at a time per thread"
    }

    fn probe(&self) -> Availability {
        Availability::Available
    }

    fn prepare(&self, setup: &WorkerSetup) -> Result<Box<dyn Worker>> {
        Ok(Box::new(PosixWorker {
            buf: host_memory::allocate(setup)?,
            file: Arc::clone(&setup.file),
        }))
    }
}

struct PosixWorker {
    buf: HostBuffer,
    file: Arc<DataFile>,
}

impl Worker for PosixWorker {
    fn mode(&self) -> String {
        let io = if self.file.is_direct() {
            "O_DIRECT"
        } else {
            "buffered"
        };
        format!("pread/pwrite, {io}, one request at a time (qd 1)")
    }

    fn buffer_pages(&self) -> Option<PageBacking> {
        Some(self.buf.backing())
    }

    fn host_buffer(&self) -> Option<&[u8]> {
        Some(self.buf.as_slice())
    }

    fn host_buffer_mut(&mut self) -> Option<&mut [u8]> {
        Some(self.buf.as_mut_slice())
    }

    fn fill(&mut self, f: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        f(self.buf.as_mut_slice());
        Ok(())
    }

    fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        f(self.buf.as_slice())
    }

    fn transfer(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<()> {
        for r in requests {
            let started = Instant::now();
            let mut done = 0usize;
            while done < r.len {
                let range = r.buf_offset + done..r.buf_offset + r.len;
                let offset = r.file_offset + done as u64;
                let res = match op {
                    Op::Read => {
                        self.file
                            .read_at(&mut self.buf.as_mut_slice()[range], offset, r.tail)
                    }
                    Op::Write => self
                        .file
                        .write_at(&self.buf.as_slice()[range], offset, r.tail),
                };
                match res {
                    Ok(0) => {
                        return Err(Error::nothing_moved(
                            op,
                            self.file.path(),
                            offset,
                            r.len - done,
                        ))
                    }
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(Error::io(
                            FileOp::from(op),
                            self.file.path(),
                            offset,
                            (r.len - done) as u64,
                            e,
                        ))
                    }
                }
            }
            latencies.record(started.elapsed());
        }
        Ok(())
    }
}
