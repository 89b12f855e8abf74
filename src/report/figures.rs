//! The run record's figures: over all measured loops ([`Summary`]), per loop
//! ([`LoopFigures`]), per thread ([`ThreadFigures`]), per rank of a run of several processes
//! ([`RankFigures`], stragglers flagged), and where the time went in a multi-stage backend
//! ([`PipelineFigures`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::stats::{median, Percentiles};

use super::GIB;

/// How far below the median rank's bandwidth a rank is flagged a straggler, in percent.
pub const STRAGGLER_PCT: f64 = 10.0;

/// One rank of a run of several processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankFigures {
    /// The rank (MPI or launcher), 0-based.
    pub rank: usize,
    /// The hostname the rank ran on.
    pub host: String,
    /// Bytes this rank moved in the measured loops.
    pub bytes: u64,
    /// Sum over loops of this rank's loop time (its release to its last thread done).
    pub time_s: f64,
    /// bytes / time, GiB/s.
    pub bandwidth_gibps: f64,
    /// requests / time.
    pub iops: f64,
    /// This rank's request latencies.
    pub latency: Percentiles,
    /// Each measured loop's start and end, ns since the Unix epoch (the ranks' wall clocks).
    pub loop_start_unix_ns: Vec<u64>,
    /// Each measured loop's end, as the starts.
    pub loop_end_unix_ns: Vec<u64>,
    /// Percent below the median rank's bandwidth (negative: above it).
    pub below_median_pct: f64,
    /// More than [`STRAGGLER_PCT`] below the median rank.
    pub straggler: bool,
}

impl RankFigures {
    /// The figures of every rank, stragglers flagged.
    pub fn of(ranks: &[crate::ranks::RankMeasurement]) -> Vec<RankFigures> {
        let mut out: Vec<RankFigures> = ranks
            .iter()
            .map(|r| {
                let time_s: f64 = r.windows.iter().map(|w| w.duration().as_secs_f64()).sum();
                let bytes = r.bytes_per_loop.saturating_mul(r.windows.len() as u64);
                RankFigures {
                    rank: r.rank,
                    host: r.host.clone(),
                    bytes,
                    time_s,
                    bandwidth_gibps: ratio(bytes as f64 / GIB, time_s),
                    iops: ratio(r.latencies.count() as f64, time_s),
                    latency: r.latencies.percentiles(),
                    loop_start_unix_ns: r.windows.iter().map(|w| w.start_unix_ns).collect(),
                    loop_end_unix_ns: r.windows.iter().map(|w| w.end_unix_ns).collect(),
                    below_median_pct: 0.0,
                    straggler: false,
                }
            })
            .collect();
        let med = median(&out.iter().map(|r| r.bandwidth_gibps).collect::<Vec<_>>());
        for r in &mut out {
            r.below_median_pct = 100.0 * ratio(med - r.bandwidth_gibps, med);
            r.straggler = r.below_median_pct > STRAGGLER_PCT;
        }
        out
    }
}

/// I/O, copies and their overlap over the measured loops: I/O and transfer time summed over
/// threads; copy time (bounce) the time the copy engine was busy, all threads together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFigures {
    /// Time during which some I/O request was in flight.
    pub io_time_s: f64,
    /// Time the copies to or from the device kept the copy engine busy: the union of every
    /// thread's copy spans (start event to end event, on one clock per run), so a copy that
    /// waited for another thread's copy is not counted twice. Without spans, the sum of the
    /// threads' copy durations.
    pub copy_time_s: f64,
    /// Time inside the transfers.
    pub transfer_time_s: f64,
    /// I/O and copy time that ran at the same time: per thread max(0, io + copy - transfer)
    /// with its own copy durations, summed, and at most `copy_time_s`.
    pub overlap_s: f64,
    /// `overlap_s` over the shorter of I/O and copy time: 1 = the shorter one fully hidden.
    pub overlap_fraction: f64,
}

impl PipelineFigures {
    /// From per-thread phase times (each summed over the measured loops).
    pub fn from_phases(phases: &[crate::backend::PhaseTimes]) -> Option<PipelineFigures> {
        if phases.is_empty() {
            return None;
        }
        let (mut io, mut copy, mut total, mut overlap) = (0.0, 0.0, 0.0, 0.0);
        for p in phases {
            let (i, c, t) = (
                p.io.as_secs_f64(),
                p.copy.as_secs_f64(),
                p.total.as_secs_f64(),
            );
            io += i;
            copy += c;
            total += t;
            overlap += (i + c - t).max(0.0).min(i.min(c));
        }
        Some(PipelineFigures {
            io_time_s: io,
            copy_time_s: copy,
            transfer_time_s: total,
            overlap_s: overlap,
            overlap_fraction: ratio(overlap, f64::min(io, copy)),
        })
    }

    /// Replaces the summed copy time with the union of all threads' copy spans (the time
    /// the copy engine was busy), when there are spans, and bounds the overlap by it.
    pub fn with_copy_spans(mut self, spans: &[crate::cuda::copy::CopySpan]) -> Self {
        if spans.is_empty() {
            return self;
        }
        self.copy_time_s = crate::cuda::copy::union_s(spans);
        self.overlap_s = self.overlap_s.min(self.copy_time_s);
        self.overlap_fraction = ratio(self.overlap_s, f64::min(self.io_time_s, self.copy_time_s));
        self
    }
}

/// Figures over all measured loops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Bytes moved in the measured loops, all threads.
    pub bytes: u64,
    /// Requests in the measured loops, all threads.
    pub requests: u64,
    /// Sum over loops of the slowest thread's time inside transfers.
    pub task_time_s: f64,
    /// Sum over loops of the wall time from release to the last thread done.
    pub e2e_time_s: f64,
    /// bytes / task time, in GB/s (1e9 bytes).
    pub bandwidth_gbps: f64,
    /// bytes / task time, in GiB/s (2^30 bytes).
    pub bandwidth_gibps: f64,
    /// bytes / end-to-end time, in GiB/s.
    pub e2e_bandwidth_gibps: f64,
    /// Median over loops of each loop's GiB/s, with the spread.
    pub loop_gibps_median: f64,
    /// The slowest loop's GiB/s.
    pub loop_gibps_min: f64,
    /// The fastest loop's GiB/s.
    pub loop_gibps_max: f64,
    /// requests / task time.
    pub iops: f64,
    /// Latencies of every measured request, all threads merged.
    pub latency: Percentiles,
    /// The latency CDF, `[quantile, us]` at [`crate::stats::CDF_QUANTILES`] (absent from
    /// reports written before it existed).
    #[serde(default)]
    pub latency_cdf_us: Vec<[f64; 2]>,
    /// Process user CPU time during the measured loops, seconds.
    pub cpu_user_s: f64,
    /// Process system CPU time during the measured loops, seconds.
    pub cpu_system_s: f64,
    /// (user + system) CPU seconds per GiB moved.
    pub cpu_s_per_gib: f64,
    /// Time of the final fdatasync (writes), not included in the bandwidth.
    pub sync_time_s: f64,
    /// Whether the data was checked against the pattern (and matched: a mismatch fails the run).
    pub verified: bool,
}

/// One measured loop's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopFigures {
    /// The loop's index among the measured loops, 0-based.
    pub index: usize,
    /// The slowest thread's time inside transfers (several ranks: their common span), s.
    pub task_time_s: f64,
    /// Wall time from release to the last thread done, barriers included, s.
    pub e2e_time_s: f64,
    /// The loop's bytes / task time, GiB/s.
    pub bandwidth_gibps: f64,
    /// Process CPU time (user + system) during the loop, s.
    pub cpu_s: f64,
    /// The loop on the wall clock (Unix ns), from release to the last thread done, to lay
    /// runs side by side; absent from records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<crate::ranks::LoopWindow>,
}

/// One worker thread's figures over all measured loops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadFigures {
    /// The thread's index, 0-based.
    pub tid: usize,
    /// The data file it moved to or from.
    pub path: PathBuf,
    /// First byte of its range in the file.
    pub file_offset: u64,
    /// Bytes it moved in the measured loops.
    pub bytes: u64,
    /// Its time inside transfers, summed over loops, s.
    pub task_time_s: f64,
    /// bytes / its task time, GiB/s.
    pub bandwidth_gibps: f64,
    /// Its requests / its task time.
    pub iops: f64,
    /// Its request latencies.
    pub latency: Percentiles,
    /// Its own user CPU time inside measured transfers, s.
    pub cpu_user_s: f64,
    /// Its own system CPU time inside measured transfers, s.
    pub cpu_system_s: f64,
    /// Its final fdatasync (writes; 0 for reads), s.
    pub sync_time_s: f64,
}

pub(super) fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;
    use crate::report::{csv, human, json, markdown, warning, Warning};
    use crate::stats::LatencyRecorder;

    #[test]
    fn pipeline_overlap_is_bounded_by_the_shorter_stage() {
        use crate::backend::PhaseTimes;
        use std::time::Duration;
        let ms = Duration::from_millis;
        assert_eq!(PipelineFigures::from_phases(&[]), None);
        // Fully overlapped: I/O 100 ms, copies 40 ms, 100 ms in all.
        let p = PipelineFigures::from_phases(&[PhaseTimes {
            io: ms(100),
            copy: ms(40),
            total: ms(100),
        }])
        .unwrap();
        assert!((p.overlap_s - 0.04).abs() < 1e-9 && (p.overlap_fraction - 1.0).abs() < 1e-9);
        // Serial: 100 + 40 = 140 ms, nothing overlapped.
        let p = PipelineFigures::from_phases(&[PhaseTimes {
            io: ms(100),
            copy: ms(40),
            total: ms(145),
        }])
        .unwrap();
        assert_eq!((p.overlap_s, p.overlap_fraction), (0.0, 0.0));
        // Two threads, half overlapped each.
        let half = PhaseTimes {
            io: ms(100),
            copy: ms(40),
            total: ms(120),
        };
        let p = PipelineFigures::from_phases(&[half, half]).unwrap();
        assert!((p.io_time_s - 0.2).abs() < 1e-9 && (p.transfer_time_s - 0.24).abs() < 1e-9);
        assert!((p.overlap_fraction - 0.5).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn copy_time_is_the_union_of_all_threads_copy_spans() {
        use crate::backend::PhaseTimes;
        use crate::cuda::copy::{union_s, CopySpan};
        use std::time::Duration;
        let span = |a: f64, b: f64| CopySpan {
            start_s: a,
            end_s: b,
        };
        assert_eq!(union_s(&[]), 0.0);
        // Thread 1's copy [0.00, 0.08] waited 40 ms for thread 0's [0.00, 0.04]; then a gap,
        // then one more copy: the engine was busy 80 + 10 ms, not 40 + 80 + 10.
        let spans = [span(0.2, 0.21), span(0.0, 0.08), span(0.0, 0.04)];
        assert!((union_s(&spans) - 0.09).abs() < 1e-12);
        let ms = Duration::from_millis;
        let thread = PhaseTimes {
            io: ms(100),
            copy: ms(60),
            total: ms(120),
        };
        let p = PipelineFigures::from_phases(&[thread, thread]).unwrap();
        assert!((p.copy_time_s - 0.12).abs() < 1e-9 && (p.overlap_s - 0.08).abs() < 1e-9);
        let p = p.with_copy_spans(&spans);
        assert!((p.copy_time_s - 0.09).abs() < 1e-9, "{p:?}");
        // The overlap cannot exceed the copy engine's busy time.
        assert!((p.overlap_s - 0.08).abs() < 1e-9, "{p:?}");
        let p = PipelineFigures::from_phases(&[thread, thread])
            .unwrap()
            .with_copy_spans(&[span(0.0, 0.05)]);
        assert!((p.overlap_s - 0.05).abs() < 1e-9 && (p.overlap_fraction - 1.0).abs() < 1e-9);
        // No spans (another backend): the summed figures stand.
        let p = PipelineFigures::from_phases(&[thread]).unwrap();
        assert_eq!(p.clone().with_copy_spans(&[]), p);
    }

    #[test]
    fn ranks_below_the_median_by_more_than_the_limit_are_stragglers_in_every_output() {
        use crate::ranks::{LoopWindow, RankMeasurement};
        // Each rank moves 1 GiB in one loop, in 1 s, 1.2 s and 1.05 s.
        let rank = |rank: usize, ms: u64| RankMeasurement {
            rank,
            host: format!("node{rank}"),
            bytes_per_loop: 1 << 30,
            windows: vec![LoopWindow {
                start_unix_ns: 5_000,
                end_unix_ns: 5_000 + ms * 1_000_000,
            }],
            latencies: LatencyRecorder::new(),
        };
        let figures = RankFigures::of(&[rank(0, 1000), rank(1, 1200), rank(2, 1050)]);
        let slow: Vec<bool> = figures.iter().map(|k| k.straggler).collect();
        assert_eq!(slow, [false, true, false], "{figures:?}");
        // The median rank is rank 2 (1/1.05 GiB/s); rank 1 (1/1.2) is 12.5% below it.
        assert!(
            (figures[1].below_median_pct - 12.5).abs() < 1e-9,
            "{figures:?}"
        );
        assert_eq!(figures[2].below_median_pct, 0.0);
        assert!((figures[0].bandwidth_gibps - 1.0).abs() < 1e-9);
        let mut r = sample();
        r.ranks = figures;
        let w = warning::assess(&r, None);
        assert!(
            w.iter().any(|w| matches!(w, Warning::Stragglers { ranks } if ranks.contains("rank 1 on node1") && !ranks.contains("rank 2"))),
            "{w:?}"
        );
        let t = human::table(&r);
        assert!(
            t.contains("rank 1 ")
                && t.contains("stragglers (>10% below the median rank): rank 1 ("),
            "{t}"
        );
        assert!(
            !t.contains("thread 0"),
            "rank rows replace thread rows: {t}"
        );
        assert!(
            human::summary_line(&r).contains("3 ranks x 2 threads")
                && human::summary_line(&r).contains("per rank")
        );
        let c = csv::to_csv(std::slice::from_ref(&r));
        let (head, row) = c.split_once('\n').unwrap();
        assert!(head.ends_with(",ranks,rank_gibps,stragglers"), "{head}");
        assert!(
            row.trim_end().ends_with(",3,0:1.000 1:0.833 2:0.952,1"),
            "{row}"
        );
        let md = markdown::runs(std::slice::from_ref(&r));
        assert!(
            md.contains("| 1 | node1 | 0.83 |") && md.contains("| yes |"),
            "{md}"
        );
        // One process: no rank figures anywhere.
        let one = sample();
        assert!(!human::table(&one).contains("rank 0"));
        assert!(csv::to_csv(std::slice::from_ref(&one))
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(",1,,"));
        assert!(!json::to_json(std::slice::from_ref(&one)).contains("\"ranks\""));
    }
}
