//! The plan of a run: which file and byte range each thread moves, cut into requests.
//!
//! `--size` is the total per loop. Threads get contiguous ranges, rounded to whole blocks
//! (the last thread takes the remainder), so `--threads 1` and `--threads 4` move the same
//! bytes. Each range is cut into `--block-size` requests. With O_DIRECT, a piece whose length
//! is not a multiple of the file's O_DIRECT alignment (only possible at the very end of a
//! non-aligned `--size`) becomes a separate *tail* request that goes through the buffered
//! descriptor, so the last bytes are moved exactly rather than refused or silently dropped.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::options::{RunOptions, Target};
use crate::size::Bytes;

/// One request: `len` bytes between file offset `file_offset` and byte `buf_offset` of the
/// thread's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub file_offset: u64,
    pub buf_offset: usize,
    pub len: usize,
    /// Goes through the buffered descriptor because O_DIRECT cannot do its length.
    pub tail: bool,
}

/// What one thread moves.
#[derive(Debug, Clone)]
pub struct ThreadPlan {
    pub tid: usize,
    pub path: PathBuf,
    /// First byte of the thread's range in the file.
    pub file_offset: u64,
    /// Bytes in the range (its buffer holds exactly this, plus alignment padding).
    pub len: u64,
    pub requests: Vec<Request>,
}

impl ThreadPlan {
    /// File offset just past the range.
    pub fn end(&self) -> u64 {
        self.file_offset + self.len
    }
}

/// The file a thread uses for a target.
pub fn thread_path(target: &Target, tid: usize) -> PathBuf {
    match target {
        Target::File(p) => p.clone(),
        Target::Dir(d) => d.join(format!("gdswap.{tid}.dat")),
    }
}

/// The page size of the page cache. With O_DIRECT, thread ranges start on page boundaries: a
/// buffered tail write must never share a page with another thread's O_DIRECT write, which the
/// kernel cannot keep coherent (it fails fdatasync with EIO: "page cache invalidation failure").
const PAGE: u64 = 4096;

/// Splits the run into per-thread plans. `align` is the O_DIRECT alignment (1 when buffered).
pub fn plan(opts: &RunOptions, align: u64) -> Result<Vec<ThreadPlan>> {
    let threads = opts.threads as u64;
    let bs = opts.block_size;
    let (share, unit) = share_of(opts, align > 1);
    if share * (threads - 1) >= opts.size {
        return Err(Error::invalid(
            "--threads",
            format!(
                "{} threads cannot share --size {}: with O_DIRECT each thread's range is a multiple of {} (block size and 4 KiB page), so at most {} threads fit",
                opts.threads,
                Bytes(opts.size),
                Bytes(unit),
                opts.size.div_ceil(unit)
            ),
        ));
    }
    let plans = (0..opts.threads)
        .map(|tid| {
            let t = tid as u64;
            let len = if t + 1 == threads {
                opts.size - share * t
            } else {
                share
            };
            let file_offset = match opts.target {
                Target::File(_) => share * t,
                Target::Dir(_) => 0,
            };
            let mut requests = cut(file_offset, len, bs, align);
            if opts.random {
                shuffle(
                    &mut requests,
                    opts.seed ^ (t.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                );
            }
            ThreadPlan {
                tid,
                path: thread_path(&opts.target, tid),
                file_offset,
                len,
                requests,
            }
        })
        .collect();
    Ok(plans)
}

/// Bytes of every thread's range but the last (which takes the remainder), and the unit they
/// are a multiple of: the block size, and with O_DIRECT also the 4 KiB page.
fn share_of(opts: &RunOptions, direct: bool) -> (u64, u64) {
    let bs = opts.block_size;
    let unit = if direct { lcm(bs, PAGE) } else { bs };
    ((opts.size / opts.threads as u64 / unit).max(1) * unit, unit)
}

/// The length of each thread's range, as [`plan`] cuts them (for checks made before the files
/// are opened; assumes a run that [`plan`] accepts).
pub fn range_lens(opts: &RunOptions) -> Vec<u64> {
    let (share, _) = share_of(opts, opts.direct);
    let t = opts.threads as u64;
    (0..t)
        .map(|i| {
            if i + 1 == t {
                opts.size.saturating_sub(share * (t - 1))
            } else {
                share
            }
        })
        .collect()
}

fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

fn cut(start: u64, len: u64, bs: u64, align: u64) -> Vec<Request> {
    let mut out = Vec::with_capacity(len.div_ceil(bs) as usize + 1);
    let mut pos = 0u64;
    while pos < len {
        let n = bs.min(len - pos);
        let aligned = n - n % align;
        if aligned > 0 {
            out.push(Request {
                file_offset: start + pos,
                buf_offset: pos as usize,
                len: aligned as usize,
                tail: false,
            });
        }
        if aligned < n {
            let p = pos + aligned;
            out.push(Request {
                file_offset: start + p,
                buf_offset: p as usize,
                len: (n - aligned) as usize,
                tail: true,
            });
        }
        pos += n;
    }
    out
}

/// Fisher-Yates with a splitmix64 stream: the same seed gives the same order everywhere.
fn shuffle(v: &mut [Request], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Bytes of file that must exist for a read of `plans` on `path`.
pub fn needed_len(plans: &[ThreadPlan], path: &Path) -> u64 {
    plans
        .iter()
        .filter(|p| p.path == path)
        .map(|p| p.end())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(size: u64, bs: u64, threads: usize, file: bool) -> RunOptions {
        RunOptions {
            size,
            block_size: bs,
            threads,
            target: if file {
                Target::File("f".into())
            } else {
                Target::Dir("d".into())
            },
            ..RunOptions::default()
        }
    }

    fn covers_exactly(p: &ThreadPlan) {
        let mut reqs = p.requests.clone();
        reqs.sort_by_key(|r| r.file_offset);
        let mut pos = p.file_offset;
        for r in &reqs {
            assert_eq!(r.file_offset, pos);
            assert_eq!(r.buf_offset as u64, pos - p.file_offset);
            pos += r.len as u64;
        }
        assert_eq!(pos, p.end());
    }

    #[test]
    fn shared_file_ranges_are_disjoint_and_complete() {
        let plans = plan(&opts(10 << 20, 1 << 20, 3, true), 4096).unwrap();
        assert_eq!(plans.iter().map(|p| p.len).sum::<u64>(), 10 << 20);
        assert_eq!(plans[0].file_offset, 0);
        assert_eq!(plans[1].file_offset, plans[0].end());
        assert_eq!(plans[2].file_offset, plans[1].end());
        assert_eq!(plans[2].len, 4 << 20);
        plans.iter().for_each(covers_exactly);
        assert_eq!(needed_len(&plans, Path::new("f")), 10 << 20);
    }

    #[test]
    fn range_lens_match_the_plan() {
        for (size, bs, threads, direct) in [
            (10 << 20, 1 << 20, 3, true),
            (64 << 10, 512, 3, true),
            (64 << 10, 512, 3, false),
            (5, 1, 2, false),
        ] {
            let o = RunOptions {
                direct,
                ..opts(size, bs, threads, true)
            };
            let align = if direct { 512 } else { 1 };
            let lens: Vec<u64> = plan(&o, align).unwrap().iter().map(|p| p.len).collect();
            assert_eq!(range_lens(&o), lens, "{size} {bs} {threads}");
        }
    }

    #[test]
    fn per_thread_files_start_at_zero() {
        let plans = plan(&opts(8 << 20, 1 << 20, 2, false), 4096).unwrap();
        assert!(plans.iter().all(|p| p.file_offset == 0 && p.len == 4 << 20));
        assert_eq!(plans[1].path, Path::new("d/gdswap.1.dat"));
    }

    #[test]
    fn unaligned_size_gets_an_exact_tail_request() {
        let size = (2 << 20) + 4097;
        let plans = plan(&opts(size, 1 << 20, 1, true), 4096).unwrap();
        let reqs = &plans[0].requests;
        covers_exactly(&plans[0]);
        assert_eq!(reqs.iter().filter(|r| r.tail).count(), 1);
        let tail = reqs.iter().find(|r| r.tail).unwrap();
        assert_eq!((tail.file_offset, tail.len), ((2 << 20) + 4096, 1));
        // Buffered runs need no tail.
        let plans = plan(&opts(size, 1 << 20, 1, true), 1).unwrap();
        assert!(plans[0].requests.iter().all(|r| !r.tail));
    }

    #[test]
    fn direct_thread_ranges_start_on_pages() {
        let plans = plan(&opts(64 << 10, 512, 3, true), 512).unwrap();
        assert!(plans.iter().all(|p| p.file_offset % 4096 == 0));
        plans.iter().for_each(covers_exactly);
        // Buffered runs split in whole blocks only.
        let plans = plan(&opts(64 << 10, 512, 3, true), 1).unwrap();
        assert_eq!(plans[1].file_offset, 21 * 1024);
        // Too small to give each thread a page of its own.
        let e = plan(&opts(1124, 512, 2, true), 512)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--threads: 2 threads cannot share --size 1124B"),
            "{e}"
        );
        assert_eq!(lcm(1536, 4096), 12288);
    }

    #[test]
    fn random_order_is_a_seeded_permutation() {
        let mut o = opts(64 << 20, 1 << 20, 1, true);
        o.random = true;
        let a = plan(&o, 4096).unwrap();
        let b = plan(&o, 4096).unwrap();
        assert_eq!(a[0].requests, b[0].requests);
        assert_ne!(
            a[0].requests,
            plan(&opts(64 << 20, 1 << 20, 1, true), 4096).unwrap()[0].requests
        );
        covers_exactly(&a[0]);
        o.seed += 1;
        assert_ne!(plan(&o, 4096).unwrap()[0].requests, a[0].requests);
    }
}
