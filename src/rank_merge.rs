//! Rank 0's merge of a parallel run (issue 16): every rank sends a [`RankRecord`] (its threads'
//! bytes, loop times, latency histograms, CPU, and each measured loop's start and end on the wall
//! clock); rank 0 builds one [`Measurements`] whose loops span from the earliest start to the
//! latest end of any rank (the aggregate bandwidth is all bytes over that span), whose threads
//! are every rank's (so latency percentiles come from the merged histograms, never averaged),
//! with one [`RankMeasurement`] per rank for the per-rank figures and the stragglers.
//!
//! Apart from [`crate::ranks`] (how the processes meet, which the harness uses) because it
//! works on the harness's [`Measurements`]: ranks <- harness <- rank_merge, no circle.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::PhaseTimes;
use crate::error::{Error, Result};
use crate::harness::{LoopMeasurement, Measurements, ThreadMeasurement};
use crate::io::sys::CpuTime;
use crate::ranks::{Coordinator, LoopWindow, RankMeasurement};
use crate::stats::LatencyRecorder;

/// What one rank sends to rank 0.
#[derive(Debug, Serialize, Deserialize)]
pub struct RankRecord {
    /// The sending rank, 0-based.
    pub rank: usize,
    /// The hostname it ran on.
    pub host: String,
    /// Its coordinator's figures, one per measured loop.
    pub loops: Vec<LoopRecord>,
    /// Its threads' figures.
    pub threads: Vec<ThreadRecord>,
}

/// One measured loop of a rank ([`LoopMeasurement`], in integer nanoseconds).
#[derive(Debug, Serialize, Deserialize)]
pub struct LoopRecord {
    /// The loop on the rank's wall clock.
    pub window: LoopWindow,
    /// From release to the last thread done, barriers included, ns.
    pub e2e_ns: u64,
    /// Process user CPU time during the loop, ns.
    pub cpu_user_ns: u64,
    /// Process system CPU time during the loop, ns.
    pub cpu_system_ns: u64,
}

/// One worker thread of a rank ([`ThreadMeasurement`], in integer nanoseconds).
#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadRecord {
    /// The thread's index in its rank, 0-based.
    pub tid: usize,
    /// The data file it moved to or from.
    pub path: PathBuf,
    /// First byte of its range in the file.
    pub file_offset: u64,
    /// Bytes it moves per loop.
    pub bytes_per_loop: u64,
    /// Requests per loop.
    pub requests_per_loop: usize,
    /// Its time inside `transfer`, one entry per measured loop, ns.
    pub loop_times_ns: Vec<u64>,
    /// The latency histogram, `(value, count)` per recorded bucket ([`LatencyRecorder::counts`]).
    pub latency: Vec<(u64, u64)>,
    /// Its own user CPU time inside measured transfers, ns.
    pub cpu_user_ns: u64,
    /// Its own system CPU time inside measured transfers, ns.
    pub cpu_system_ns: u64,
    /// Its final fdatasync (writes; 0 for reads), ns.
    pub sync_ns: u64,
    /// How its worker ran.
    pub mode: String,
    /// io, copy and total time of multi-stage backends, summed over loops.
    pub phases_ns: Option<[u64; 3]>,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RankRecord {
    /// The record of rank `rank` on `host` from its measurements (durations saturate at
    /// `u64::MAX` ns).
    pub fn of(rank: usize, host: String, m: &Measurements) -> RankRecord {
        RankRecord {
            rank,
            host,
            loops: m
                .loops
                .iter()
                .map(|l| LoopRecord {
                    window: l.window,
                    e2e_ns: ns(l.e2e_time),
                    cpu_user_ns: ns(l.cpu.user),
                    cpu_system_ns: ns(l.cpu.system),
                })
                .collect(),
            threads: m
                .threads
                .iter()
                .map(|t| ThreadRecord {
                    tid: t.tid,
                    path: t.path.clone(),
                    file_offset: t.file_offset,
                    bytes_per_loop: t.bytes_per_loop,
                    requests_per_loop: t.requests_per_loop,
                    loop_times_ns: t.loop_times.iter().map(|&d| ns(d)).collect(),
                    latency: t.latencies.counts(),
                    cpu_user_ns: ns(t.cpu.user),
                    cpu_system_ns: ns(t.cpu.system),
                    sync_ns: ns(t.sync_time),
                    mode: t.mode.clone(),
                    phases_ns: t.phases.map(|p| [ns(p.io), ns(p.copy), ns(p.total)]),
                })
                .collect(),
        }
    }
}

/// Rank 0: the merged measurements of every rank; the other ranks: their own, unmerged (they
/// report nothing, but keep the same course as rank 0). A single process gets its own
/// measurements back, unchanged. Every rank must call it.
pub fn gather(coord: &dyn Coordinator, m: Measurements) -> Result<Measurements> {
    if coord.size() == 1 {
        return Ok(m);
    }
    let record = RankRecord::of(coord.rank(), coord.host(), &m);
    let bytes = serde_json::to_vec(&record).map_err(|e| {
        Error::Ranks(format!(
            "cannot encode rank {}'s figures: {e}",
            coord.rank()
        ))
    })?;
    let Some(all) = coord.gather(bytes)? else {
        return Ok(m);
    };
    let mut records = Vec::with_capacity(all.len());
    for (rank, b) in all.iter().enumerate() {
        let r: RankRecord = serde_json::from_slice(b)
            .map_err(|e| Error::Ranks(format!("rank {rank}'s figures do not decode: {e}")))?;
        records.push(r);
    }
    merge(m, records)
}

/// Rank 0's measurements `base` (backend, mode, pages, alignment, path verdict) with the
/// figures of every rank in `records` (rank 0's included, in rank order).
pub fn merge(base: Measurements, records: Vec<RankRecord>) -> Result<Measurements> {
    let loops_n = base.loops.len();
    if let Some(r) = records.iter().find(|r| r.loops.len() != loops_n) {
        return Err(Error::Ranks(format!(
            "rank {} measured {} loops, rank 0 {loops_n}",
            r.rank,
            r.loops.len()
        )));
    }
    let mut loops = Vec::with_capacity(loops_n);
    for i in 0..loops_n {
        let start = records
            .iter()
            .map(|r| r.loops[i].window.start_unix_ns)
            .min()
            .unwrap_or(0);
        let end = records
            .iter()
            .map(|r| r.loops[i].window.end_unix_ns)
            .max()
            .unwrap_or(0)
            .max(start);
        let span = Duration::from_nanos(end - start);
        let (mut user, mut system) = (Duration::ZERO, Duration::ZERO);
        for r in &records {
            user += Duration::from_nanos(r.loops[i].cpu_user_ns);
            system += Duration::from_nanos(r.loops[i].cpu_system_ns);
        }
        loops.push(LoopMeasurement {
            e2e_time: span,
            cpu: CpuTime { user, system },
            window: LoopWindow {
                start_unix_ns: start,
                end_unix_ns: end,
            },
            span: Some(span),
        });
    }
    let per_rank_threads = records.iter().map(|r| r.threads.len()).max().unwrap_or(0);
    let mut threads = Vec::new();
    let mut ranks = Vec::with_capacity(records.len());
    for r in records {
        let mut rank_lat = LatencyRecorder::new();
        let mut rank_bytes = 0u64;
        for t in r.threads {
            let latencies = LatencyRecorder::from_counts(&t.latency);
            rank_lat.merge(&latencies);
            rank_bytes = rank_bytes
                .checked_add(t.bytes_per_loop)
                .ok_or_else(|| Error::Ranks(format!("rank {}: bytes per loop overflow", r.rank)))?;
            threads.push(ThreadMeasurement {
                tid: r
                    .rank
                    .checked_mul(per_rank_threads)
                    .and_then(|x| x.checked_add(t.tid))
                    .unwrap_or(usize::MAX),
                path: t.path,
                file_offset: t.file_offset,
                bytes_per_loop: t.bytes_per_loop,
                requests_per_loop: t.requests_per_loop,
                loop_times: t
                    .loop_times_ns
                    .iter()
                    .map(|&n| Duration::from_nanos(n))
                    .collect(),
                latencies,
                cpu: CpuTime {
                    user: Duration::from_nanos(t.cpu_user_ns),
                    system: Duration::from_nanos(t.cpu_system_ns),
                },
                sync_time: Duration::from_nanos(t.sync_ns),
                mode: t.mode,
                pages: None,
                phases: t.phases_ns.map(|[io, copy, total]| PhaseTimes {
                    io: Duration::from_nanos(io),
                    copy: Duration::from_nanos(copy),
                    total: Duration::from_nanos(total),
                }),
                // Copy spans are on each process's own clock: not merged.
                copy_spans: Vec::new(),
                // Only soaks count wrong blocks past the first, and a parallel run refuses
                // them (`harness::run_with`): each rank's wrong block is its error.
                verify_errors: 0,
                verify_failures: Vec::new(),
            });
        }
        ranks.push(RankMeasurement {
            rank: r.rank,
            host: r.host,
            bytes_per_loop: rank_bytes,
            windows: r.loops.iter().map(|l| l.window).collect(),
            latencies: rank_lat,
        });
    }
    Ok(Measurements {
        loops,
        threads,
        ranks,
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(rank: usize, start: u64, end: u64, lat_us: u64, n: u64) -> RankRecord {
        let mut l = LatencyRecorder::new();
        for _ in 0..n {
            l.record(Duration::from_micros(lat_us));
        }
        RankRecord {
            rank,
            host: format!("node{rank}"),
            loops: vec![LoopRecord {
                window: LoopWindow {
                    start_unix_ns: start,
                    end_unix_ns: end,
                },
                e2e_ns: end - start,
                cpu_user_ns: 1_000,
                cpu_system_ns: 2_000,
            }],
            threads: vec![ThreadRecord {
                tid: 0,
                path: format!("/d/rank{rank}/gdswap.0.dat").into(),
                file_offset: 0,
                bytes_per_loop: 1 << 20,
                requests_per_loop: n as usize,
                loop_times_ns: vec![end - start],
                latency: l.counts(),
                cpu_user_ns: 0,
                cpu_system_ns: 0,
                sync_ns: 0,
                mode: "test".into(),
                phases_ns: None,
            }],
        }
    }

    fn base() -> Measurements {
        Measurements {
            backend: "host".into(),
            memory: crate::backend::MemoryKind::Host,
            mode: "test".into(),
            pages: None,
            align: 4096,
            threads: Vec::new(),
            loops: vec![LoopMeasurement {
                e2e_time: Duration::ZERO,
                cpu: CpuTime::default(),
                window: LoopWindow {
                    start_unix_ns: 0,
                    end_unix_ns: 0,
                },
                span: None,
            }],
            verified: false,
            gds_path: None,
            non_block_fs: None,
            ranks: Vec::new(),
            numa: None,
        }
    }

    #[test]
    fn merged_loops_span_earliest_start_to_latest_end_and_latencies_merge_as_histograms() {
        // Rank 0: 300 requests of 10 us; rank 1: 100 requests of 1000 us, later and longer.
        let m = merge(
            base(),
            vec![
                record(0, 1_000, 5_000, 10, 300),
                record(1, 2_000, 9_000, 1_000, 100),
            ],
        )
        .unwrap();
        assert_eq!(m.loops[0].span, Some(Duration::from_nanos(8_000)));
        assert_eq!(m.loops[0].cpu.user, Duration::from_nanos(2_000));
        assert_eq!(m.threads.len(), 2);
        assert_eq!(m.threads[1].tid, 1);
        assert_eq!(m.ranks.len(), 2);
        assert_eq!(m.ranks[1].host, "node1");
        let mut all = LatencyRecorder::new();
        for t in &m.threads {
            all.merge(&t.latencies);
        }
        let p = all.percentiles();
        assert_eq!(p.count, 400);
        // Merged: 3/4 of the requests took 10 us, so the median is 10 us (the mean of the
        // ranks' medians would be 505 us) and p90 is 1000 us.
        assert!((p.p50_us - 10.0).abs() < 0.1, "{p:?}");
        assert!((p.p90_us - 1000.0).abs() < 1.0, "{p:?}");
        // A rank that measured another number of loops is refused.
        let mut short = record(1, 0, 1, 1, 1);
        short.loops.clear();
        assert!(merge(base(), vec![record(0, 0, 1, 1, 1), short]).is_err());
    }
}
