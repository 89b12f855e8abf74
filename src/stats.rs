//! Per-request latency histograms and the figures derived from them.
//!
//! Latencies are recorded in nanoseconds into an HDR histogram (3 significant digits, so a
//! percentile is within 0.1% of the true value) that grows as needed: recording is O(1) and
//! allocation-free in the timed loop, and per-thread histograms merge exactly.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Per-request latencies of one thread (or, merged, of a run).
#[derive(Clone)]
pub struct LatencyRecorder {
    hist: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// An empty recorder: 1 ns to 60 s at 3 significant digits, growing past that as needed.
    pub fn new() -> Self {
        let mut hist =
            Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds are valid");
        hist.auto(true);
        LatencyRecorder { hist }
    }

    /// Records one request's latency (clamped to at least 1 ns).
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(ns);
    }

    /// Adds `other`'s latencies to these (exact: same bucket layout).
    pub fn merge(&mut self, other: &LatencyRecorder) {
        self.hist
            .add(&other.hist)
            .expect("auto-resizing histograms always merge");
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The histogram as `(value, count)` per recorded bucket (the bucket's highest value, in
    /// ns): what another process needs to rebuild it exactly ([`LatencyRecorder::from_counts`]).
    pub fn counts(&self) -> Vec<(u64, u64)> {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// The histogram [`LatencyRecorder::counts`] described: every value lands in the bucket it
    /// came from, so merging rebuilt histograms is as exact as merging the originals.
    pub fn from_counts(counts: &[(u64, u64)]) -> Self {
        let mut r = Self::new();
        for &(value, n) in counts {
            r.hist.saturating_record_n(value.max(1), n);
        }
        r
    }

    /// The summary in microseconds; all zeros when nothing was recorded.
    pub fn percentiles(&self) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        if self.hist.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: self.hist.len(),
            mean_us: self.hist.mean() / 1000.0,
            p50_us: us(self.hist.value_at_quantile(0.50)),
            p90_us: us(self.hist.value_at_quantile(0.90)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            p999_us: us(self.hist.value_at_quantile(0.999)),
            max_us: us(self.hist.max()),
        }
    }
}

/// The quantiles of a latency CDF, as recorded in reports (min and max included) and plotted.
pub const CDF_QUANTILES: [f64; 17] = [
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0,
];

impl LatencyRecorder {
    /// `[quantile, latency in us]` at each of [`CDF_QUANTILES`]; empty when nothing was
    /// recorded.
    pub fn cdf_us(&self) -> Vec<[f64; 2]> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        CDF_QUANTILES
            .iter()
            .map(|&q| {
                let ns = match q {
                    0.0 => self.hist.min(),
                    1.0 => self.hist.max(),
                    _ => self.hist.value_at_quantile(q),
                };
                [q, ns as f64 / 1000.0]
            })
            .collect()
    }
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Requests recorded.
    pub count: u64,
    /// Mean latency.
    pub mean_us: f64,
    /// Median latency.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest request.
    pub max_us: f64,
}

/// Median of a list (the mean of the middle two for even lengths); 0 for an empty list.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut r = LatencyRecorder::new();
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us));
        }
        let p = r.percentiles();
        assert_eq!(p.count, 1000);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002 + 0.001;
        assert!(close(p.p50_us, 500.0), "{p:?}");
        assert!(close(p.p90_us, 900.0), "{p:?}");
        assert!(close(p.p99_us, 990.0), "{p:?}");
        assert!(close(p.p999_us, 999.0), "{p:?}");
        assert!(close(p.max_us, 1000.0), "{p:?}");
        assert!(close(p.mean_us, 500.5), "{p:?}");
    }

    #[test]
    fn merging_adds_counts_and_keeps_extremes() {
        let mut a = LatencyRecorder::new();
        let mut b = LatencyRecorder::new();
        a.record(Duration::from_micros(10));
        b.record(Duration::from_secs(2));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!((a.percentiles().max_us - 2e6).abs() < 2e6 * 0.001);
        assert_eq!(LatencyRecorder::new().percentiles(), Percentiles::default());
    }

    #[test]
    fn cdf_at_fixed_quantiles() {
        let mut r = LatencyRecorder::new();
        assert!(r.cdf_us().is_empty());
        for us in 1..=1000u64 {
            r.record(Duration::from_micros(us));
        }
        let cdf = r.cdf_us();
        assert_eq!(cdf.len(), CDF_QUANTILES.len());
        assert_eq!(cdf[0], [0.0, 1.0]);
        assert!((cdf[7][1] - 500.0).abs() <= 1.0, "{cdf:?}");
        assert!((cdf[16][1] - 1000.0).abs() <= 1.0, "{cdf:?}");
        assert!(cdf.windows(2).all(|w| w[0][1] <= w[1][1]));
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
