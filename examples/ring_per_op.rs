//! Does a new io_uring per operation cost the aio handle its speed? (issue 13 investigation,
//! not a product example.) Writes or reads a 64 MiB file OPS times with 1 MiB requests at
//! queue depth 32 from one hugetlb/THP buffer, three ways, alternating: `reuse` (one engine,
//! lent the buffer for each op by `retarget`), `per-op` (a new engine per op, the file opened
//! once), `per-op+open` (the file opened and a new engine made per op, as `gdswap.aio_handle`
//! does). Prints the median op time of each.
//!
//! ```text
//! cargo run --release --example ring_per_op -- FILE [write|read] [OPS]
//! ```

use std::sync::Arc;
use std::time::Instant;

use gdswap::io::buffer::{HostBuffer, HugePages};
use gdswap::io::file::{Access, DataFile};
use gdswap::io::lent::LentMemory;
use gdswap::io::uring::UringEngine;
use gdswap::options::Op;
use gdswap::request::Request;
use gdswap::stats::LatencyRecorder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = std::path::PathBuf::from(args.first().ok_or("usage: FILE [write|read] [OPS]")?);
    let op = match args.get(1).map(String::as_str) {
        None | Some("write") => Op::Write,
        Some("read") => Op::Read,
        Some(o) => return Err(format!("op {o:?}").into()),
    };
    let ops: usize = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let (len, bs, qd) = (64usize << 20, 1usize << 20, 32u32);
    let reqs: Vec<Request> = (0..len / bs)
        .map(|i| Request {
            file_offset: (i * bs) as u64,
            buf_offset: i * bs,
            len: bs,
            tail: false,
        })
        .collect();
    let mut buf = HostBuffer::new(len, HugePages::Auto)?;
    buf.as_mut_slice().fill(7);
    println!("buffer: {}", buf.backing());
    let (ptr, cap) = (buf.as_mut_ptr(), buf.capacity());
    let access = if op == Op::Write {
        Access::Write
    } else {
        Access::Read
    };
    let file = Arc::new(DataFile::open(&path, access, true)?);
    if op == Op::Write {
        file.set_len(len as u64)?;
    } else if file.len()? < len as u64 {
        return Err(format!(
            "{}: reads need a file of 64 MiB (run a write first)",
            path.display()
        )
        .into());
    }
    let mut lat = LatencyRecorder::new();
    // `buf` is lent to one engine at a time and main does not touch it while lent: each
    // per-op engine is dropped at the end of its op, and the reused engine holds an empty
    // view between its ops (as the aio handle's workers do); all are dropped before `buf`.
    // SAFETY: `ptr` is `buf`'s first byte, valid for `cap` bytes, lent as just said.
    let lend = || unsafe { LentMemory::new(ptr, cap) };
    let mut reused = UringEngine::new(lend(), Arc::clone(&file), qd, bs as u64, false)?;
    reused.run(op, &reqs, &mut lat)?; // warm-up: allocates the blocks
    reused.retarget(LentMemory::empty(), Arc::clone(&file))?;
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..ops {
        for (k, t) in times.iter_mut().enumerate() {
            let t0 = Instant::now();
            match k {
                0 => {
                    reused.retarget(lend(), Arc::clone(&file))?;
                    reused.run(op, &reqs, &mut lat)?;
                    reused.retarget(LentMemory::empty(), Arc::clone(&file))?;
                }
                1 => UringEngine::new(lend(), Arc::clone(&file), qd, bs as u64, false)?
                    .run(op, &reqs, &mut lat)?,
                _ => {
                    let f = Arc::new(DataFile::open(&path, access, true)?);
                    UringEngine::new(lend(), f, qd, bs as u64, false)?.run(op, &reqs, &mut lat)?
                }
            }
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    drop(reused);
    for (name, t) in ["reuse", "per-op", "per-op+open"]
        .iter()
        .zip(times.iter_mut())
    {
        t.sort_by(f64::total_cmp);
        println!(
            "{name:12} median {:.2} ms ({:.2} GiB/s)",
            t[t.len() / 2],
            len as f64 / (t[t.len() / 2] / 1e3) / (1u64 << 30) as f64
        );
    }
    drop(buf);
    Ok(())
}
