//! A comparison: one workload through several contenders (gdswap backends and peer tools such
//! as fio), measured in interleaved rounds. Pure data and pure figures.
//!
//! Why rounds: a machine drifts (page cache, thermal state, other tenants). Running
//! `A B C, A B C, ...` spreads that drift over every contender alike, and pairing round `r` of
//! `B` with round `r` of `A` gives ratios that cancel most of it; the median of those pairs, with
//! its range, is the honest figure. Why here and not in `compare`: exporters (JSON, CSV,
//! Markdown, text) must know nothing of backends or of how the rounds were measured, only of
//! this result; `crate::compare` measures, this module computes.

use serde::{Deserialize, Serialize};

use crate::env::Environment;
use crate::error::{msg, Setting};
use crate::stats::median;

use super::{WarningRecord, Workload};

/// The comparison's exporters live with their format (`json`, `csv`, `human`, `markdown`,
/// `svg`); these names keep them where callers found them.
pub use super::csv::comparison as to_csv;
pub use super::human::{comparison as human, cpu_or_dash, latency_or_dash, workload_line};
pub use super::json::{comparison as to_json, comparison_from_json as from_json};

/// Identifies the JSON layout of a comparison; bumped on any incompatible change.
pub const COMPARE_SCHEMA: &str = "gdswap.compare.v1";
/// A contender whose rounds spread wider than this fraction of their median gets a warning.
pub const SPREAD_LIMIT: f64 = 0.10;

/// A gdswap backend, or another tool measured on the same workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContenderKind {
    /// A gdswap backend (or `host-ring`).
    Backend,
    /// A peer tool: fio or gdsio.
    Peer,
}

impl std::fmt::Display for ContenderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContenderKind::Backend => "backend",
            ContenderKind::Peer => "peer",
        })
    }
}

/// What one contender measured in one round. A figure the contender does not report is absent
/// (`None`, left out of the JSON, `-` in tables, an empty CSV field), never 0: gdsio reports
/// only an average latency, and no CPU time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundFigures {
    /// 1-based round number.
    pub round: u32,
    /// The round's bandwidth, GiB/s.
    pub bandwidth_gibps: f64,
    /// Mean latency of a request (results saved before it was recorded have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_avg_us: Option<f64>,
    /// Median request latency, µs (gdsio: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_us: Option<f64>,
    /// 99th percentile request latency, µs (gdsio: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_us: Option<f64>,
    /// CPU seconds (user + system) per GiB moved (gdsio: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s_per_gib: Option<f64>,
    /// The round's latency CDF, `[quantile, us]` (see [`crate::stats::CDF_QUANTILES`]).
    #[serde(default)]
    pub latency_cdf_us: Vec<[f64; 2]>,
    /// How long the round's measured part ran, seconds: gdswap's loops end to end, fio's
    /// measured group, gdsio's measured runs (absent from results saved before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_s: Option<f64>,
}

/// One contender as measured: what the orchestration hands to [`Comparison::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The contender's row name.
    pub name: String,
    /// Backend or peer.
    pub kind: ContenderKind,
    /// How it ran (ring mode, buffers; for peers the tool, version and options).
    pub mode: String,
    /// Its figures, one per round it ran, in round order.
    pub rounds: Vec<RoundFigures>,
    /// Warnings its runs raised (e.g. `small-pages`), each code once, the message prefixed
    /// with the contender's name.
    pub run_warnings: Vec<WarningRecord>,
}

/// Median, minimum and maximum of a list of figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// The smallest figure.
    pub min: f64,
    /// The largest figure.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; all zeros when there are none.
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        Spread {
            median: median(values),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// (max - min) / median; 0 when the median is 0.
    pub fn relative(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / self.median
        } else {
            0.0
        }
    }
}

/// One contender's figures over all rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContenderResult {
    /// The contender's row name.
    pub name: String,
    /// Backend or peer.
    pub kind: ContenderKind,
    /// How it ran (ring mode, buffers; for peers the tool, version and options).
    pub mode: String,
    /// Its figures per round.
    pub rounds: Vec<RoundFigures>,
    /// Codes of the warnings its runs raised.
    pub notes: Vec<String>,
    /// GiB/s over rounds.
    pub bandwidth_gibps: Spread,
    /// Medians over the rounds that have the figure; absent when none has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_avg_us: Option<f64>,
    /// Median over rounds of the median latency, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_us: Option<f64>,
    /// Median over rounds of the 99th percentile latency, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_us: Option<f64>,
    /// Median over rounds of the CPU seconds per GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s_per_gib: Option<f64>,
    /// At each quantile, the median over rounds of the rounds' latencies.
    #[serde(default)]
    pub latency_cdf_us: Vec<[f64; 2]>,
}

/// A contender against the first one, round by round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioFigures {
    /// The contender, the numerator.
    pub name: String,
    /// The first contender, the denominator.
    pub reference: String,
    /// Bandwidth of `name` / bandwidth of `reference`, per round.
    pub bandwidth_per_round: Vec<f64>,
    /// The spread of the per-round bandwidth ratios.
    pub bandwidth: Spread,
    /// CPU-s/GiB of `name` / CPU-s/GiB of `reference`, per round (rounds where the reference
    /// used no measurable CPU, or either has no CPU figure, are left out).
    pub cpu_s_per_gib_per_round: Vec<f64>,
    /// The spread of the per-round CPU ratios.
    pub cpu_s_per_gib: Spread,
}

/// A contender that was asked for (or would be by default) and did not run, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The contender's name (`gdsio` for all its transfer types at once).
    pub name: String,
    /// Backend or peer.
    pub kind: ContenderKind,
    /// Why (it may name settings; written as text).
    pub reason: crate::error::Message,
}

/// The workload every contender ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareParams {
    /// Operation, target, sizes, queue depth, threads, loops.
    #[serde(flatten)]
    pub workload: Workload,
    /// Rounds run.
    pub rounds: u32,
    /// `--random`: shuffled request order.
    pub random: bool,
    /// O_DIRECT (false: `--buffered`).
    pub direct: bool,
    /// `--huge-pages`: the page backing asked for.
    pub huge_pages: crate::options::HugePages,
    /// `--fixed-buffers`. Records from before it was written were made with unregistered
    /// buffers, the default then, and read as `off` (so `sweep --resume` never mixes them with
    /// registered points).
    #[serde(default = "unregistered_before_auto")]
    pub fixed_buffers: crate::options::FixedBuffers,
    /// `gdswap sweep`'s `--bounce-buffers` value at this point, when the sweep set one and the
    /// `bounce` backend ran (absent: the backend's default; older lines have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_buffers: Option<usize>,
    /// `gdswap sweep`'s `--gds-api` value at this point, when the sweep set one and the `gds`
    /// backend ran (absent: the default, `sync`; older lines have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gds_api: Option<crate::options::GdsApi>,
}

/// What records written before `--fixed-buffers auto` ran with.
fn unregistered_before_auto() -> crate::options::FixedBuffers {
    crate::options::FixedBuffers::Off
}

/// A whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`COMPARE_SCHEMA`].
    pub schema: String,
    /// When the comparison ended, UTC, ISO 8601.
    pub finished_at: String,
    /// The machine, kernel and filesystem.
    pub environment: Environment,
    /// The workload every contender ran.
    pub params: CompareParams,
    /// Each contender that ran, in running order (the first is the reference).
    pub contenders: Vec<ContenderResult>,
    /// Every contender after the first against the first.
    pub ratios: Vec<RatioFigures>,
    /// Contenders that did not run, and why.
    pub skipped: Vec<Skipped>,
    /// What may make the figures misleading (wide spreads, the runs' own warnings).
    pub warnings: Vec<WarningRecord>,
}

/// A comparison that failed, as `compare --json` records it: the `gdswap.compare.v1` header
/// fields (`schema`, `finished_at`, `environment`, `params`) and `error` in place of the
/// contenders' figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedComparison {
    /// [`COMPARE_SCHEMA`].
    pub schema: String,
    /// When the comparison ended, UTC, ISO 8601.
    pub finished_at: String,
    /// The machine, kernel and filesystem.
    pub environment: Environment,
    /// The workload asked for.
    pub params: CompareParams,
    /// Why it failed.
    pub error: crate::report::ErrorRecord,
    /// The command line that ran, as typed (empty when a library caller made the record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command_line: Vec<String>,
}

impl FailedComparison {
    /// The record of a comparison of `params` that failed with `error`, ended at `finished_at`.
    pub fn new(
        params: CompareParams,
        error: &crate::error::Error,
        environment: Environment,
        finished_at: String,
    ) -> FailedComparison {
        FailedComparison {
            schema: COMPARE_SCHEMA.into(),
            finished_at,
            environment,
            params,
            error: crate::report::ErrorRecord::of(error),
            command_line: Vec::new(),
        }
    }

    /// The record as pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plain data serializes");
        s.push('\n');
        s
    }
}

/// Per quantile, the median over rounds (rounds whose CDF has other quantiles are left out).
fn median_cdf(rounds: &[RoundFigures]) -> Vec<[f64; 2]> {
    let Some(first) = rounds.iter().find(|r| !r.latency_cdf_us.is_empty()) else {
        return Vec::new();
    };
    let quantiles: Vec<f64> = first.latency_cdf_us.iter().map(|p| p[0]).collect();
    let same: Vec<&RoundFigures> = rounds
        .iter()
        .filter(|r| {
            r.latency_cdf_us
                .iter()
                .map(|p| p[0])
                .eq(quantiles.iter().copied())
        })
        .collect();
    quantiles
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let v: Vec<f64> = same.iter().map(|r| r.latency_cdf_us[i][1]).collect();
            [q, median(&v)]
        })
        .collect()
}

fn ratios_of(
    num: &[RoundFigures],
    den: &[RoundFigures],
    f: fn(&RoundFigures) -> Option<f64>,
) -> Vec<f64> {
    num.iter()
        .zip(den)
        .filter_map(|(n, d)| match (f(n), f(d)) {
            (Some(n), Some(d)) if d > 0.0 => Some(n / d),
            _ => None,
        })
        .collect()
}

/// The median of the rounds that have a figure; `None` when none has.
fn median_present(rounds: &[RoundFigures], f: fn(&RoundFigures) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rounds.iter().filter_map(f).collect();
    (!v.is_empty()).then(|| median(&v))
}

impl Comparison {
    /// Computes every figure and warning from what was measured.
    pub fn new(
        params: CompareParams,
        environment: Environment,
        finished_at: String,
        measured: Vec<Measured>,
        skipped: Vec<Skipped>,
    ) -> Comparison {
        let run_warnings: Vec<WarningRecord> = measured
            .iter()
            .flat_map(|m| m.run_warnings.iter().cloned())
            .collect();
        let contenders: Vec<ContenderResult> = measured
            .into_iter()
            .map(|m| {
                let bw: Vec<f64> = m.rounds.iter().map(|r| r.bandwidth_gibps).collect();
                ContenderResult {
                    bandwidth_gibps: Spread::of(&bw),
                    latency_avg_us: median_present(&m.rounds, |r| r.latency_avg_us),
                    latency_p50_us: median_present(&m.rounds, |r| r.latency_p50_us),
                    latency_p99_us: median_present(&m.rounds, |r| r.latency_p99_us),
                    cpu_s_per_gib: median_present(&m.rounds, |r| r.cpu_s_per_gib),
                    latency_cdf_us: median_cdf(&m.rounds),
                    name: m.name,
                    kind: m.kind,
                    mode: m.mode,
                    rounds: m.rounds,
                    notes: m.run_warnings.iter().map(|w| w.code.clone()).collect(),
                }
            })
            .collect();
        let ratios = match contenders.split_first() {
            Some((first, rest)) => rest
                .iter()
                .map(|c| {
                    let bw = ratios_of(&c.rounds, &first.rounds, |r| Some(r.bandwidth_gibps));
                    let cpu = ratios_of(&c.rounds, &first.rounds, |r| r.cpu_s_per_gib);
                    RatioFigures {
                        name: c.name.clone(),
                        reference: first.name.clone(),
                        bandwidth: Spread::of(&bw),
                        bandwidth_per_round: bw,
                        cpu_s_per_gib: Spread::of(&cpu),
                        cpu_s_per_gib_per_round: cpu,
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let mut warnings: Vec<WarningRecord> =
            contenders.iter().flat_map(spread_warnings).collect();
        warnings.extend(run_warnings);
        Comparison {
            schema: COMPARE_SCHEMA.into(),
            finished_at,
            environment,
            params,
            contenders,
            ratios,
            skipped,
            warnings,
        }
    }
}

/// Spread warnings of one contender: rounds spread over [`SPREAD_LIMIT`] of their median, or a
/// first round that lies outside the range of the others and more than [`SPREAD_LIMIT`] from
/// their median (a cold cache or a device waking up; needs at least 3 rounds to tell).
pub fn spread_warnings(c: &ContenderResult) -> Vec<WarningRecord> {
    let mut out = Vec::new();
    let bw: Vec<f64> = c.rounds.iter().map(|r| r.bandwidth_gibps).collect();
    let s = Spread::of(&bw);
    if bw.len() > 1 && s.relative() > SPREAD_LIMIT {
        out.push(WarningRecord {
            code: "round-spread".into(),
            message: format!(
                "{}: rounds spread {:.2}-{:.2} GiB/s, {:.0}% of their median {:.2}",
                c.name,
                s.min,
                s.max,
                s.relative() * 100.0,
                s.median
            )
            .into(),
            hint: msg![
                "raise ",
                Setting::Rounds,
                ", use ",
                Setting::DropCaches,
                " (root), or a bigger ",
                Setting::Size,
                "; quiet the machine"
            ],
        });
    }
    if bw.len() >= 3 {
        let rest = Spread::of(&bw[1..]);
        let first = bw[0];
        let off = (first - rest.median).abs();
        if (first < rest.min || first > rest.max) && off > SPREAD_LIMIT * rest.median {
            out.push(WarningRecord {
                code: "first-round-outlier".into(),
                message: format!(
                    "{}: the first round ({:.2} GiB/s) is {:.0}% off the median of the others ({:.2})",
                    c.name,
                    first,
                    off / rest.median.max(f64::MIN_POSITIVE) * 100.0,
                    rest.median
                )
                .into(),
                hint: msg![
                    "raise ",
                    Setting::Warmup,
                    " so caches and the device settle before measuring, or add ",
                    Setting::Rounds,
                    "; use ",
                    Setting::DropCaches,
                    " (root) for cold reads"
                ],
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rounds(bw: &[f64]) -> Vec<RoundFigures> {
        bw.iter()
            .enumerate()
            .map(|(i, &b)| RoundFigures {
                round: i as u32 + 1,
                time_s: None,
                bandwidth_gibps: b,
                latency_avg_us: Some(1100.0 + i as f64),
                latency_p50_us: Some(1000.0 + i as f64),
                latency_p99_us: Some(2000.0 + i as f64),
                cpu_s_per_gib: Some(0.02 * b),
                latency_cdf_us: vec![
                    [0.0, 500.0 + i as f64],
                    [0.5, 1000.0 + i as f64],
                    [1.0, 3000.0 * (i + 1) as f64],
                ],
            })
            .collect()
    }

    /// A fixed comparison for exporter tests: host (reference), posix, and fio as a peer.
    pub(crate) fn sample() -> Comparison {
        let r = crate::report::tests::sample();
        let m = |name: &str, kind, bw: &[f64]| Measured {
            name: name.into(),
            kind,
            mode: format!("{name} mode"),
            rounds: rounds(bw),
            run_warnings: vec![],
        };
        Comparison::new(
            CompareParams {
                workload: Workload {
                    op: crate::options::Op::Read,
                    target: crate::options::Target::Dir("/data".into()),
                    size: 1 << 30,
                    block_size: 1 << 20,
                    queue_depth: 8,
                    threads: 1,
                    loops: 3,
                    warmup: 1,
                },
                rounds: 3,
                random: false,
                direct: true,
                fixed_buffers: crate::options::FixedBuffers::Auto,
                huge_pages: crate::options::HugePages::Auto,
                bounce_buffers: None,
                gds_api: None,
            },
            r.environment,
            "2026-11-24T12:00:00Z".into(),
            vec![
                m("host", ContenderKind::Backend, &[4.0, 4.1, 3.9]),
                m("posix", ContenderKind::Backend, &[1.1, 1.0, 1.2]),
                m("fio", ContenderKind::Peer, &[3.0, 4.0, 4.1]),
            ],
            vec![Skipped {
                name: "gdsio".into(),
                kind: ContenderKind::Peer,
                reason: "not installed".into(),
            }],
        )
    }

    #[test]
    fn ratios_pair_rounds_and_take_the_median() {
        let c = sample();
        assert_eq!(c.ratios.len(), 2);
        let posix = &c.ratios[0];
        assert_eq!(posix.name, "posix");
        assert_eq!(posix.reference, "host");
        let want = [1.1 / 4.0, 1.0 / 4.1, 1.2 / 3.9];
        for (a, b) in posix.bandwidth_per_round.iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!((posix.bandwidth.median - 1.1 / 4.0).abs() < 1e-12);
        assert!((posix.bandwidth.min - 1.0 / 4.1).abs() < 1e-12);
        assert!((posix.bandwidth.max - 1.2 / 3.9).abs() < 1e-12);
        // CPU-s/GiB is 0.02 x bandwidth in the sample, so its ratio equals the bandwidth's.
        assert!((posix.cpu_s_per_gib.median - posix.bandwidth.median).abs() < 1e-12);
        let host = &c.contenders[0];
        assert_eq!(
            host.bandwidth_gibps,
            Spread {
                median: 4.0,
                min: 3.9,
                max: 4.1
            }
        );
        assert_eq!(host.latency_p50_us, Some(1001.0));
        assert_eq!(host.latency_avg_us, Some(1101.0));
        // The CDF: per quantile, the median of the rounds.
        assert_eq!(
            host.latency_cdf_us,
            vec![[0.0, 501.0], [0.5, 1001.0], [1.0, 6000.0]]
        );
    }

    #[test]
    fn spread_and_first_round_warnings() {
        let c = sample();
        let codes: Vec<(&str, bool)> = c
            .warnings
            .iter()
            .map(|w| {
                (
                    w.code.as_str(),
                    w.message.to_string().starts_with("posix")
                        || w.message.to_string().starts_with("fio"),
                )
            })
            .collect();
        // host spreads 5%: quiet. posix spreads 18% (first round inside the others' range): round-spread. fio: 3.0 then 4.0, 4.1:
        // spread 27% and a first-round outlier.
        assert_eq!(
            codes,
            [
                ("round-spread", true),
                ("round-spread", true),
                ("first-round-outlier", true)
            ]
        );
        assert!(c.warnings[2]
            .message
            .to_string()
            .starts_with("fio: the first round (3.00 GiB/s)"));
        assert!(c.warnings.iter().all(|w| !w.hint.is_empty()));
        // A first round inside the others' range is no outlier, however far from the median.
        let k = ContenderResult {
            rounds: rounds(&[3.0, 2.0, 4.0]),
            ..c.contenders[0].clone()
        };
        assert!(spread_warnings(&k)
            .iter()
            .all(|w| w.code != "first-round-outlier"));
    }

    #[test]
    fn json_round_trips_and_csv_has_a_row_per_contender() {
        let c = sample();
        // Read back, messages are the text they were written as: the same JSON again.
        let back = from_json(&to_json(&c)).unwrap();
        assert_eq!(to_json(&back), to_json(&c));
        let text = to_csv(&c);
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let headers = rd.headers().unwrap().clone();
        let rows: Vec<_> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 3);
        let col = |row: usize, name: &str| {
            rows[row]
                .get(headers.iter().position(|h| h == name).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(col(0, "name"), "host");
        assert_eq!(col(0, "ratio_median"), "1");
        assert_eq!(col(2, "kind"), "peer");
        assert_eq!(col(2, "gibps_median"), "4");
        assert_eq!(col(1, "ratio_reference"), "host");
        assert_eq!(col(1, "ratio_median"), (1.1f64 / 4.0).to_string());
    }

    #[test]
    fn results_saved_before_latency_cdfs_still_read() {
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    m.remove("latency_cdf_us");
                    m.values_mut().for_each(strip);
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut c = serde_json::to_value(sample()).unwrap();
        strip(&mut c);
        let back = from_json(&c.to_string()).unwrap();
        assert!(back.contenders.iter().all(|k| k.latency_cdf_us.is_empty()));
        let mut r = serde_json::to_value(crate::report::tests::sample()).unwrap();
        strip(&mut r);
        let back = crate::report::json::from_json(&r.to_string()).unwrap();
        assert!(back[0].summary.latency_cdf_us.is_empty());
    }

    #[test]
    fn human_table_of_a_fixed_comparison() {
        let t = human(&sample());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "compare read, bs 1MiB, qd 8, 1 thread, size 1GiB, 3 loops + 1 warm-up per run, 3 rounds interleaved"
        );
        assert!(lines[1].contains("vs host: median (range)"), "{t}");
        assert_eq!(
            lines[2],
            "host     backend     4.00     3.90-4.10   1.10 ms   1.00 ms   2.00 ms     0.080  1.00x (reference)"
        );
        assert!(lines[3].starts_with("posix    backend     1.10"), "{t}");
        assert!(lines[3].ends_with("0.28x (0.24-0.31)"), "{t}");
        assert!(lines[4].starts_with("fio      peer        4.00"), "{t}");
        assert_eq!(
            lines.last(),
            Some(&"skipped (the notes say why): peer gdsio"),
            "{t}"
        );
        assert!(!t.contains("not installed"), "{t}");
    }

    #[test]
    fn figures_a_peer_does_not_report_are_absent_not_zero() {
        // host, then gdsio-gpud with only bandwidth and an average latency (as gdsio reports).
        let mut c = sample();
        let gdsio: Vec<RoundFigures> = rounds(&[2.0, 2.2, 1.8])
            .into_iter()
            .map(|r| RoundFigures {
                latency_p50_us: None,
                latency_p99_us: None,
                cpu_s_per_gib: None,
                latency_cdf_us: Vec::new(),
                ..r
            })
            .collect();
        let host = Measured {
            name: "host".into(),
            kind: ContenderKind::Backend,
            mode: "host mode".into(),
            rounds: rounds(&[4.0, 4.1, 3.9]),
            run_warnings: vec![],
        };
        let peer = Measured {
            name: "gdsio-gpud".into(),
            kind: ContenderKind::Peer,
            mode: "gdsio mode".into(),
            rounds: gdsio,
            run_warnings: vec![],
        };
        c = Comparison::new(
            c.params,
            c.environment,
            c.finished_at,
            vec![host, peer],
            vec![],
        );
        let k = &c.contenders[1];
        assert_eq!(k.latency_avg_us, Some(1101.0));
        assert_eq!((k.latency_p50_us, k.latency_p99_us), (None, None));
        assert_eq!(k.cpu_s_per_gib, None);
        // The bandwidth ratio is there; the CPU ratio has no round to pair.
        assert_eq!(c.ratios[0].bandwidth_per_round.len(), 3);
        assert!(c.ratios[0].cpu_s_per_gib_per_round.is_empty());
        // JSON: the fields are left out, and read back as absent.
        let json = to_json(&c);
        let raw: serde_json::Value = serde_json::from_str(&json).unwrap();
        let peer = &raw["contenders"][1];
        for key in ["latency_p50_us", "latency_p99_us", "cpu_s_per_gib"] {
            assert!(peer.get(key).is_none(), "{key} in {peer}");
            assert!(peer["rounds"][0].get(key).is_none(), "{key} in a round");
        }
        assert_eq!(peer["latency_avg_us"], 1101.0);
        assert_eq!(raw["contenders"][0]["latency_p50_us"], 1001.0);
        assert_eq!(to_json(&from_json(&json).unwrap()), json);
        // Table: `-`, with the name column wide enough; CSV: empty fields.
        let t = human(&c);
        let row = t.lines().find(|l| l.starts_with("gdsio-gpud")).unwrap();
        assert_eq!(
            row,
            "gdsio-gpud peer        2.00     1.80-2.20   1.10 ms         -         -         -  0.50x (0.46-0.54)"
        );
        assert!(
            t.lines().nth(2).unwrap().starts_with("host       backend"),
            "{t}"
        );
        let csv = to_csv(&c);
        let mut rd = csv::Reader::from_reader(csv.as_bytes());
        let headers = rd.headers().unwrap().clone();
        let rows: Vec<_> = rd.records().map(|r| r.unwrap()).collect();
        let col = |name: &str| &rows[1][headers.iter().position(|h| h == name).unwrap()];
        assert_eq!(col("lat_avg_us"), "1101");
        assert_eq!((col("lat_p50_us"), col("lat_p99_us")), ("", ""));
        assert_eq!(col("cpu_s_per_gib"), "");
        let md = crate::report::markdown::comparison(&c);
        assert!(
            md.contains("| gdsio-gpud (peer) | 2.00 | 1.80-2.20 | 1.10 ms | - | - | - | 0.50x |"),
            "{md}"
        );
    }

    #[test]
    fn results_saved_before_average_latencies_still_read() {
        let mut c = serde_json::to_value(sample()).unwrap();
        for k in c["contenders"].as_array_mut().unwrap() {
            k.as_object_mut().unwrap().remove("latency_avg_us");
            for r in k["rounds"].as_array_mut().unwrap() {
                r.as_object_mut().unwrap().remove("latency_avg_us");
            }
        }
        let back = from_json(&c.to_string()).unwrap();
        assert!(back.contenders.iter().all(|k| k.latency_avg_us.is_none()));
        assert_eq!(back.contenders[0].latency_p50_us, Some(1001.0));
        assert!(human(&back)
            .lines()
            .nth(2)
            .unwrap()
            .contains("4.00     3.90-4.10         -   1.00 ms"));
    }
}
