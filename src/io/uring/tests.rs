//! The engine with stagers, on a real ring (skipped where io_uring is unavailable): staged
//! reads through fewer chunks than the queue depth and more, a stager's error that must drain
//! the ring and still finish, observed runs, and retargeting an engine.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::{unavailable_reason, Stager, UringEngine};
use crate::error::{Error, Result};
use crate::io::buffer::{HostBuffer, HugePages};
use crate::io::file::{Access, DataFile};
use crate::options::Op;
use crate::request::Request;
use crate::stats::LatencyRecorder;
use crate::testutil::requests;
use crate::types::ring_options::{FixedBuffers, RingOptions};

/// A stager over a ring of `k` chunks whose "copies" to `dest` are deferred: a chunk is
/// copied and freed only in `acquire` (when no chunk is free) or in `wait`, as the bounce
/// stagers do with events; `fail_at` makes the completion of that request fail.
struct CpuRing {
    chunk: usize,
    free: Vec<usize>,
    pending: VecDeque<(usize, Request)>,
    dest: Vec<u8>,
    waits: usize,
    finished: bool,
    fail_at: Option<usize>,
}

impl CpuRing {
    fn new(k: usize, chunk: usize, len: usize) -> Self {
        CpuRing {
            chunk,
            free: (0..k).collect(),
            pending: VecDeque::new(),
            dest: vec![0; len],
            waits: 0,
            finished: false,
            fail_at: None,
        }
    }

    /// Completes the oldest deferred copy.
    fn copy_oldest(&mut self, base: *mut u8) -> bool {
        let Some((c, r)) = self.pending.pop_front() else {
            return false;
        };
        // SAFETY: test code: chunk c lies inside the engine's buffer at `base`.
        let src = unsafe { std::slice::from_raw_parts(base.add(c * self.chunk), r.len) };
        self.dest[r.buf_offset..r.buf_offset + r.len].copy_from_slice(src);
        self.free.push(c);
        true
    }
}

// The tests keep `base` from the last call to copy in `wait`, which gets none.
thread_local! {
    static BASE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Stager for CpuRing {
    unsafe fn acquire(&mut self, _: usize, r: &Request, base: *mut u8) -> Result<Option<usize>> {
        assert!(r.len <= self.chunk);
        BASE.with(|b| b.set(base as usize));
        Ok(self.free.pop().map(|c| c * self.chunk))
    }

    unsafe fn complete(&mut self, i: usize, r: &Request, off: usize, base: *mut u8) -> Result<()> {
        BASE.with(|b| b.set(base as usize));
        if self.fail_at == Some(i) {
            return Err(Error::Internal(format!("injected failure at request {i}")));
        }
        self.pending.push_back((off / self.chunk, *r));
        Ok(())
    }

    fn wait(&mut self) -> Result<bool> {
        self.waits += 1;
        let base = BASE.with(|b| b.get()) as *mut u8;
        Ok(self.copy_oldest(base))
    }

    fn finish(&mut self) -> Result<()> {
        let base = BASE.with(|b| b.get()) as *mut u8;
        while self.copy_oldest(base) {}
        self.finished = true;
        Ok(())
    }
}

/// True (and says so) where this kernel cannot run io_uring: the test is skipped.
fn io_uring_missing() -> bool {
    match unavailable_reason() {
        Some(why) => {
            eprintln!("note: skipping: {why}");
            true
        }
        None => false,
    }
}

/// An engine over `f` with a `len`-byte buffer of 4 KiB pages, unregistered.
fn engine(len: usize, f: &Arc<DataFile>, qd: u32, bs: usize) -> UringEngine<HostBuffer> {
    let buf = HostBuffer::new(len, HugePages::Off).unwrap();
    UringEngine::new(buf, Arc::clone(f), qd, bs as u64, false).unwrap()
}

fn data_file(len: usize) -> (tempfile::TempDir, Arc<DataFile>, Vec<u8>) {
    let dir = crate::testutil::scratch_dir();
    let path = dir.path().join("f");
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let f = Arc::new(DataFile::open(&path, Access::Read, true).unwrap());
    (dir, f, data)
}

#[test]
fn a_retargeted_engine_moves_the_new_files_bytes_into_the_new_buffer() {
    if io_uring_missing() {
        return;
    }
    let (d1, f1, data1) = data_file(16 * 4096);
    let data2: Vec<u8> = (0..24 * 4096).map(|i| (i * 13 + 5) as u8).collect();
    let p2 = d1.path().join("g");
    std::fs::write(&p2, &data2).unwrap();
    let f2 = Arc::new(DataFile::open(&p2, Access::Read, true).unwrap());
    assert!(data1[..4096] != data2[..4096]);
    let bs = 8192;
    let mut lat = LatencyRecorder::new();
    let mut e = engine(data1.len(), &f1, 4, bs);
    e.run(Op::Read, &requests(data1.len(), bs), &mut lat)
        .unwrap();
    assert!(e.buffer() == &data1[..]);
    // Another (larger) buffer and another file: the old buffer comes back intact.
    let old = e
        .retarget(
            HostBuffer::new(data2.len(), HugePages::Off).unwrap(),
            Arc::clone(&f2),
        )
        .unwrap();
    assert!(old.as_slice() == &data1[..]);
    e.run(Op::Read, &requests(data2.len(), bs), &mut lat)
        .unwrap();
    assert!(e.buffer() == &data2[..]);
    // Writes go to the new file, from the new buffer.
    let mut out = e
        .retarget(
            HostBuffer::new(4096, HugePages::Off).unwrap(),
            Arc::clone(&f1),
        )
        .unwrap();
    assert!(out.as_slice() == &data2[..]);
    out.as_mut_slice()[..4096].fill(0xab);
    let p3 = d1.path().join("out");
    let f3 = Arc::new(DataFile::open(&p3, Access::Write, true).unwrap());
    f3.set_len(data2.len() as u64).unwrap();
    e.retarget(out, f3).unwrap();
    e.run(Op::Write, &requests(data2.len(), bs), &mut lat)
        .unwrap();
    let written = std::fs::read(&p3).unwrap();
    assert!(written[..4096].iter().all(|&b| b == 0xab));
    assert!(written[4096..] == data2[4096..]);
    // An engine with registered files keeps its file.
    let mut fixed = UringEngine::with_ring(
        HostBuffer::new(4096, HugePages::Off).unwrap(),
        Arc::clone(&f1),
        2,
        4096,
        FixedBuffers::Off,
        RingOptions {
            register_files: true,
            ..RingOptions::default()
        },
    )
    .unwrap();
    let Err(err) = fixed.retarget(HostBuffer::new(4096, HugePages::Off).unwrap(), f2) else {
        panic!("an engine with registered files was retargeted");
    };
    assert!(err.to_string().contains("registered"), "{err}");
}

#[test]
fn staged_reads_through_a_small_ring_land_in_place() {
    if io_uring_missing() {
        return;
    }
    let (_d, f, data) = data_file(64 * 4096);
    let bs = 16 * 1024;
    // Fewer chunks than the queue depth, and more: both must move every byte.
    for (k, qd) in [(2, 8), (12, 4)] {
        let mut engine = engine(k * bs, &f, qd, bs);
        let mut ring = CpuRing::new(k, bs, data.len());
        let reqs = requests(data.len(), bs);
        let mut lat = LatencyRecorder::new();
        let busy = engine
            .run_staged(Op::Read, &reqs, &mut lat, &mut ring)
            .unwrap();
        assert!(ring.finished && ring.dest == data, "k {k} qd {qd}");
        assert_eq!(lat.count(), reqs.len() as u64);
        assert!(busy > Duration::ZERO);
        if k < qd as usize {
            assert!(
                ring.waits > 0,
                "a 2-chunk ring must have waited on its copies"
            );
        }
    }
}

#[test]
fn a_stager_error_drains_the_ring_and_still_finishes() {
    if io_uring_missing() {
        return;
    }
    let (_d, f, data) = data_file(32 * 4096);
    let bs = 8 * 1024;
    let mut engine = engine(4 * bs, &f, 4, bs);
    let mut ring = CpuRing::new(4, bs, data.len());
    ring.fail_at = Some(5);
    let reqs = requests(data.len(), bs);
    let e = engine
        .run_staged(Op::Read, &reqs, &mut LatencyRecorder::new(), &mut ring)
        .unwrap_err();
    assert_eq!(e.to_string(), "injected failure at request 5");
    assert!(ring.finished, "finish runs after an error too");
    assert!(!engine.leak_buffer);
    // The engine is usable again afterwards.
    let mut ring = CpuRing::new(4, bs, data.len());
    engine
        .run_staged(Op::Read, &reqs, &mut LatencyRecorder::new(), &mut ring)
        .unwrap();
    assert_eq!(ring.dest, data);
}

#[test]
fn observed_runs_see_every_request_once_with_its_bytes() {
    if io_uring_missing() {
        return;
    }
    // The observer runs after the queue is refilled (independent ranges): every request
    // must still be observed exactly once, with the bytes read for it, also the last few
    // (observed after the ring has drained) and with fewer requests than the queue depth.
    let (_d, f, data) = data_file(48 * 4096);
    let bs = 8 * 1024;
    for qd in [1, 4, 64] {
        let mut engine = engine(data.len(), &f, qd, bs);
        let reqs = requests(data.len(), bs);
        let mut seen = vec![0u32; reqs.len()];
        let mut lat = LatencyRecorder::new();
        engine
            .run_observed(Op::Read, &reqs, &mut lat, &mut |off, bytes| {
                assert_eq!(bytes, &data[off..off + bytes.len()], "qd {qd} at {off}");
                seen[off / bs] += 1;
                Ok(())
            })
            .unwrap();
        assert!(seen.iter().all(|&n| n == 1), "qd {qd}: {seen:?}");
        assert_eq!(lat.count(), reqs.len() as u64);
    }
    // An observer's error ends the run with it, nothing left in flight; the engine works
    // again afterwards.
    let mut engine = engine(data.len(), &f, 4, bs);
    let reqs = requests(data.len(), bs);
    let mut calls = 0;
    let e = engine
        .run_observed(Op::Read, &reqs, &mut LatencyRecorder::new(), &mut |_, _| {
            calls += 1;
            if calls == 3 {
                return Err(Error::Internal("observer refused".into()));
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "observer refused");
    assert_eq!(calls, 3, "no request is observed after the error");
    assert!(!engine.leak_buffer && engine.in_flight == 0);
    let mut n = 0;
    engine
        .run_observed(Op::Read, &reqs, &mut LatencyRecorder::new(), &mut |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, reqs.len());
}
