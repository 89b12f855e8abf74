//! The harness with a test double backend (`--verify` must catch a backend that stops moving
//! data after its first transfers), and the barrier's release and abort.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Worker, WorkerSetup};
use crate::io::buffer::PageBacking;
use crate::io::file::DataFile;
use crate::options::Op;
use crate::stats::LatencyRecorder;

use super::*;
use crate::backend::Availability;
use crate::io::buffer::HostBuffer;
use crate::options::{Target, Workload};

/// A backend that moves data only in its first `moving_calls` transfers and does nothing
/// afterwards: `--verify` must catch it.
struct Lazy {
    moving_calls: usize,
}

struct LazyWorker {
    buf: HostBuffer,
    file: Arc<DataFile>,
    calls: usize,
    moving_calls: usize,
}

impl Backend for Lazy {
    fn name(&self) -> &'static str {
        "first-loop-only"
    }
    fn id(&self) -> crate::backend::BackendId {
        crate::backend::BackendId::Host
    }
    fn summary(&self) -> &'static str {
        "test double"
    }
    fn probe(&self) -> Availability {
        Availability::Available
    }
    fn prepare(&self, setup: &WorkerSetup) -> Result<Box<dyn Worker>> {
        Ok(Box::new(LazyWorker {
            buf: HostBuffer::new(setup.range_len as usize, setup.huge_pages)?,
            file: Arc::clone(&setup.file),
            calls: 0,
            moving_calls: self.moving_calls,
        }))
    }
}

impl Worker for LazyWorker {
    fn mode(&self) -> String {
        "test".into()
    }
    fn buffer_pages(&self) -> Option<PageBacking> {
        None
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
        requests: &[crate::plan::Request],
        lat: &mut LatencyRecorder,
    ) -> Result<()> {
        self.calls += 1;
        if self.calls > self.moving_calls {
            return Ok(());
        }
        for r in requests {
            let range = r.buf_offset..r.buf_offset + r.len;
            match op {
                Op::Read => self
                    .file
                    .read_exact_at(&mut self.buf.as_mut_slice()[range], r.file_offset)?,
                Op::Write => self
                    .file
                    .write_all_at(&self.buf.as_slice()[range], r.file_offset)?,
            }
            lat.record(Duration::from_micros(1));
        }
        Ok(())
    }
}

fn lazy_run(op: Op, file: &std::path::Path, warmup: u32, moving_calls: usize) -> Result<()> {
    let opts = RunOptions {
        workload: Workload {
            op,
            target: Target::File(file.to_path_buf()),
            size: 1 << 20,
            block_size: 64 << 10,
            loops: 2,
            warmup,
            ..RunOptions::default().workload
        },
        verify: true,
        ..RunOptions::default()
    };
    execute(
        &opts,
        &Lazy { moving_calls },
        datafiles::prepare(&opts)?,
        &Solo,
    )
    .map(drop)
}

fn expect_verify_failure_at_zero(r: Result<()>) {
    match r {
        Err(Error::Verify(v)) => assert_eq!(v.offset, 0),
        Err(e) => panic!("expected a verify failure, got {e}"),
        Ok(()) => panic!("expected a verify failure, got success"),
    }
}

#[test]
fn verify_checks_this_runs_data_not_what_was_there() {
    let dir = crate::testutil::scratch_dir();
    let f = dir.path().join("data");
    let seed = RunOptions::default().seed;
    // The file already holds exactly what the run would write; a writer that writes
    // nothing must still fail verify, because the range is zeroed before the loops.
    crate::datafiles::write_pattern(&f, 1 << 20, seed).unwrap();
    expect_verify_failure_at_zero(lazy_run(Op::Write, &f, 0, 0));
    // A writer that writes every time passes (the control).
    crate::datafiles::write_pattern(&f, 1 << 20, seed).unwrap();
    lazy_run(Op::Write, &f, 1, usize::MAX).unwrap();
    // Reads: the warm-up loop fills the buffer, the measured loops move nothing; the buffer
    // is poisoned before the last measured loop, so verify fails at the first byte.
    expect_verify_failure_at_zero(lazy_run(Op::Read, &f, 1, 1));
    lazy_run(Op::Read, &f, 1, usize::MAX).unwrap();
}

#[test]
fn barrier_releases_all_parties_each_generation() {
    let b = PhaseBarrier::new(3);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..100 {
                    b.wait().unwrap();
                }
            });
        }
        for _ in 0..100 {
            b.wait().unwrap();
        }
    });
}

#[test]
fn abort_releases_waiters_with_an_error() {
    let b = PhaseBarrier::new(3);
    std::thread::scope(|s| {
        let h = s.spawn(|| b.wait());
        std::thread::sleep(Duration::from_millis(20));
        b.abort();
        assert!(matches!(h.join().unwrap(), Err(Error::Aborted)));
        assert!(matches!(b.wait(), Err(Error::Aborted)));
    });
}
