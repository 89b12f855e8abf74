//! The plan of a run: which file and byte range each thread moves, cut into requests.
//!
//! `--size` is the total per loop. Threads get contiguous ranges, rounded to whole blocks
//! (the last thread takes the remainder), so `--threads 1` and `--threads 4` move the same
//! bytes. Each range is cut into `--block-size` requests. With O_DIRECT, a piece whose length
//! is not a multiple of the file's O_DIRECT alignment (only possible at the very end of a
//! non-aligned `--size`) becomes a separate *tail* request that goes through the buffered
//! descriptor, so the last bytes are moved exactly rather than refused or silently dropped.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, Setting};
use crate::options::{RunOptions, Target};
use crate::size::Bytes;

pub use crate::request::Request;

/// What one thread moves.
#[derive(Debug, Clone)]
pub struct ThreadPlan {
    /// The thread's index, 0-based.
    pub tid: usize,
    /// The data file this thread moves to or from (its own file when the target is a
    /// directory, the shared file otherwise).
    pub path: PathBuf,
    /// First byte of the thread's range in the file.
    pub file_offset: u64,
    /// Bytes in the range (its buffer holds exactly this, plus alignment padding).
    pub len: u64,
    /// Seed of the data pattern in this thread's file (see [`file_seed`]).
    pub seed: u64,
    /// The range cut into requests, in file order (a tail request last, if any).
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

/// Each thread's `(file offset, length)`: whole units of `lcm(block size, page)` (O_DIRECT) or
/// of the block size (buffered), spread as evenly as possible (the first threads take one unit
/// more when they do not divide evenly), with the sub-unit remainder on the last thread. Cheap:
/// no request lists, so it can be checked before anything big is allocated.
pub fn ranges(opts: &RunOptions, align: u64) -> Result<Vec<(u64, u64)>> {
    let threads = opts.workload.threads as u64;
    let unit = if align > 1 {
        lcm(opts.workload.block_size, PAGE)
    } else {
        opts.workload.block_size
    };
    let units = opts.workload.size / unit;
    let (base, extra) = (units / threads, units % threads);
    // Each length is at most --size (checked all the same: no size product may wrap).
    let lens: Vec<u64> = (0..threads)
        .map(|t| {
            let whole = (base + u64::from(t < extra)).checked_mul(unit)?;
            if t + 1 == threads {
                whole.checked_add(opts.workload.size % unit)
            } else {
                Some(whole)
            }
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            Error::invalid(
                Setting::Size,
                format!(
                    "{}: a thread's range overflows 64 bits",
                    Bytes(opts.workload.size)
                ),
            )
        })?;
    if lens.contains(&0) {
        return Err(Error::invalid(
            Setting::Threads,
            crate::error::msg![format!("{} threads cannot share ", opts.workload.threads), Setting::Size, format!(" {}: each thread's range is a whole number of {} (block size{}), except the last one's, so at most {} threads fit", Bytes(opts.workload.size), Bytes(unit), if align > 1 { " and 4 KiB page, for O_DIRECT" } else { "" }, units + u64::from(opts.workload.size % unit != 0))],
        ));
    }
    let mut next = 0u64;
    Ok(lens
        .into_iter()
        .map(|len| {
            let start = next;
            next += len;
            let offset = match opts.workload.target {
                Target::File(_) => start,
                Target::Dir(_) => 0,
            };
            (offset, len)
        })
        .collect())
}

/// The length of each thread's range as [`plan`] cuts them, for checks made before the files
/// are opened (the O_DIRECT alignment only matters as "on or off" here). Empty when the run
/// cannot be split, which [`plan`] then refuses with the reason.
pub fn range_lens(opts: &RunOptions) -> Vec<u64> {
    ranges(opts, if opts.direct { PAGE } else { 1 })
        .map(|r| r.into_iter().map(|(_, len)| len).collect())
        .unwrap_or_default()
}

/// The pattern seed of a thread's file: `--seed` for a shared `--file`; `--seed + tid` for
/// per-thread files, so that data landing in another thread's file cannot verify.
pub fn file_seed(opts: &RunOptions, tid: usize) -> u64 {
    match opts.workload.target {
        Target::File(_) => opts.seed,
        Target::Dir(_) => opts.seed.wrapping_add(tid as u64),
    }
}

/// Splits the run into per-thread plans. `align` is the O_DIRECT alignment (1 when buffered).
pub fn plan(opts: &RunOptions, align: u64) -> Result<Vec<ThreadPlan>> {
    let plans = ranges(opts, align)?
        .into_iter()
        .enumerate()
        .map(|(tid, (file_offset, len))| {
            let mut requests = cut(file_offset, len, opts.workload.block_size, align);
            if opts.random {
                let t = tid as u64;
                shuffle(
                    &mut requests,
                    opts.seed ^ t.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
            }
            ThreadPlan {
                tid,
                path: thread_path(&opts.workload.target, tid),
                file_offset,
                len,
                seed: file_seed(opts, tid),
                requests,
            }
        })
        .collect();
    Ok(plans)
}

/// Least common multiple; saturates (block sizes are at most 1 GiB and pages 4 KiB, so it
/// never does in practice, and a saturated unit only makes the split refuse).
fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    (a / x).saturating_mul(b)
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
    use crate::options::Workload;

    fn opts(size: u64, bs: u64, threads: usize, file: bool) -> RunOptions {
        RunOptions {
            workload: Workload {
                size,
                block_size: bs,
                threads,
                target: if file {
                    Target::File("f".into())
                } else {
                    Target::Dir("d".into())
                },
                ..RunOptions::default().workload
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
        // 10 blocks over 3 threads: 4, 3, 3 (the first thread takes the extra block).
        assert_eq!(
            plans.iter().map(|p| p.len >> 20).collect::<Vec<_>>(),
            [4, 3, 3]
        );
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
        // Buffered runs split in whole blocks only: 128 blocks as 43, 43, 42.
        let plans = plan(&opts(64 << 10, 512, 3, true), 1).unwrap();
        assert_eq!(plans[1].file_offset, 43 * 512);
        assert_eq!(plans[2].len, 42 * 512);
        // Too small to give each thread a page of its own.
        let e = plan(&opts(1124, 512, 2, true), 512)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("threads: 2 threads cannot share size 1124B"),
            "{e}"
        );
        assert_eq!(lcm(1536, 4096), 12288);
    }

    #[test]
    fn uneven_splits_spread_the_extra_blocks() {
        // 16 blocks of 64 MiB over 12 threads: four threads take two, eight take one; never
        // one thread with five (which would make the slowest thread's time meaningless).
        let lens: Vec<u64> = ranges(&opts(1 << 30, 64 << 20, 12, true), 4096)
            .unwrap()
            .iter()
            .map(|&(_, len)| len >> 20)
            .collect();
        assert_eq!(lens, [128, 128, 128, 128, 64, 64, 64, 64, 64, 64, 64, 64]);
        // The sub-block remainder goes to the last thread.
        let r = ranges(&opts((4 << 20) + 100, 1 << 20, 3, true), 4096).unwrap();
        assert_eq!(
            r,
            [(0, 2 << 20), (2 << 20, 1 << 20), (3 << 20, (1 << 20) + 100)]
        );
    }

    #[test]
    fn per_thread_files_get_their_own_seed() {
        let d = opts(8 << 20, 1 << 20, 3, false);
        let seeds: Vec<u64> = plan(&d, 4096).unwrap().iter().map(|p| p.seed).collect();
        assert_eq!(seeds, [d.seed, d.seed + 1, d.seed + 2]);
        let f = opts(8 << 20, 1 << 20, 3, true);
        assert!(plan(&f, 4096).unwrap().iter().all(|p| p.seed == f.seed));
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
