//! `sweep`: a grid of block sizes x queue depths x threads (x directions), each point measured
//! the way `compare` measures (every backend interleaved in rounds), then the best settings per
//! backend.
//!
//! Why points are appended as they are measured: a sweep is long, and a sweep that loses an
//! hour of measurements to a Ctrl-C or a crash is not used twice. Every finished point is one
//! line of JSON (a whole [`Comparison`]) appended to `points.jsonl`, and its rows to
//! `points.csv`, each written in one `write` and flushed to disk before the next point starts.
//! A stop request is honoured between runs; the point in progress is dropped, never half
//! written. `--resume` reads `points.jsonl` back, checks that the sweep asks for the same
//! workload (size, loops, rounds, target, ...), and measures only the points that are missing.
//!
//! The best configuration per backend, by [`Metric`]:
//! - `read` / `write`: the highest median GiB/s in that direction;
//! - `both`: the highest *harmonic mean* of median read and write GiB/s at the same settings,
//!   `2rw / (r + w)`. Moving the same bytes out and back in takes `B/r + B/w`, so this picks the
//!   settings that swap a tensor out and in again fastest. (DeepSpeed's sweep tooling adds read
//!   and write GB/s instead, which lets a large lead in one direction hide a weak other one.)
//!
//! Backend-specific knobs (`--bounce-buffers` for `bounce`, `--gds-api` for `gds`) are grid
//! dimensions of their own backend only: at each block size x queue depth x threads x direction,
//! the first value of each list runs with every contender (so the other backends are measured
//! once, not once per knob value), and each further value runs again with its backend alone. A
//! point's key (and its `params` in `points.jsonl`) records the knob values it ran with, and
//! only for the backends that ran (a `bounce`-only point has no `gds_api`); a knob that was not
//! swept, or a line written before these knobs existed, has none (the backend's default).
//!
//! Ties go to the point measured first, which in grid order is the cheaper one (smaller blocks,
//! lower queue depth, fewer threads). Peers are measured (for reference in the table) but get no
//! settings.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::compare::Contender;
use crate::compare::{self, Progress};
use crate::error::{Error, FileOp, FileRole, Message, Result, Setting};
use crate::options::{GdsApi, GdsOptions, Op, RunOptions, Workload};
use crate::report::comparison::{self, Comparison, ContenderKind};
use crate::size::Bytes;
use crate::tuning::{Config, Tuning, CONFIG_SCHEMA};
use crate::types::BackendId;

/// The points file in the output directory.
pub const POINTS_JSONL: &str = "points.jsonl";
/// The points' rows as CSV, in the output directory.
pub const POINTS_CSV: &str = "points.csv";
/// The best settings per backend, a config file (`gdswap run --config`), in the output directory.
pub const BEST_CONFIG: &str = "best.json";
/// DeepSpeed's `"aio"` block made from the best settings, in the output directory.
pub const AIO_JSON: &str = "aio.json";
/// The sweep's Markdown report, in the output directory.
pub const REPORT_MD: &str = "sweep.md";

/// What the best configuration is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// The highest median read GiB/s.
    Read,
    /// The highest median write GiB/s.
    Write,
    /// The highest harmonic mean of median read and write GiB/s at the same settings.
    Both,
}

impl Metric {
    /// The directions the grid measures for this metric.
    pub fn ops(self) -> Vec<Op> {
        match self {
            Metric::Read => vec![Op::Read],
            Metric::Write => vec![Op::Write],
            Metric::Both => vec![Op::Read, Op::Write],
        }
    }

    /// `read`, `write` or `both`, as the flag and the config spell it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Read => "read",
            Metric::Write => "write",
            Metric::Both => "both",
        }
    }
}

/// One point of the grid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PointKey {
    /// Bytes per request.
    pub block_size: u64,
    /// Requests in flight per thread.
    pub queue_depth: u32,
    /// Worker threads.
    pub threads: usize,
    /// `read` or `write`.
    pub op: String,
    /// `--bounce-buffers` at this point, when swept and `bounce` ran.
    pub bounce_buffers: Option<usize>,
    /// `--gds-api` at this point, when swept and `gds` ran.
    pub gds_api: Option<GdsApi>,
}

impl std::fmt::Display for PointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bs {} qd {} threads {}",
            self.op,
            Bytes(self.block_size),
            self.queue_depth,
            self.threads
        )?;
        if let Some(k) = self.bounce_buffers {
            write!(f, " bounce-buffers {k}")?;
        }
        if let Some(api) = self.gds_api {
            write!(f, " gds-api {api}")?;
        }
        Ok(())
    }
}

/// The key of a measured point.
pub fn key_of(c: &Comparison) -> PointKey {
    PointKey {
        block_size: c.params.workload.block_size,
        queue_depth: c.params.workload.queue_depth,
        threads: c.params.workload.threads,
        op: c.params.workload.op.to_string(),
        bounce_buffers: c.params.bounce_buffers,
        gds_api: c.params.gds_api,
    }
}

/// The point where `backend` ran with the settings `t`, in direction `op`.
pub fn point_of<'a>(
    points: &'a [Comparison],
    backend: &str,
    t: &Tuning,
    op: &str,
) -> Option<&'a Comparison> {
    points.iter().find(|c| {
        let k = key_of(c);
        (k.block_size, k.queue_depth, k.threads) == (t.block_size, t.queue_depth, t.threads)
            && k.op == op
            && (t.bounce_buffers.is_none() || k.bounce_buffers == t.bounce_buffers)
            && (t.gds_api.is_none() || k.gds_api == t.gds_api)
            && c.contenders
                .iter()
                .any(|m| m.name == backend && m.kind == ContenderKind::Backend)
    })
}

/// Everything a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// The fixed part of the workload (target, size, loops, ...); the grid sets the rest.
    pub base: RunOptions,
    /// Block sizes to measure, bytes (`--block-size LIST`).
    pub block_sizes: Vec<u64>,
    /// Queue depths to measure (`--queue-depth LIST`).
    pub queue_depths: Vec<u32>,
    /// Thread counts to measure (`--threads LIST`).
    pub threads: Vec<usize>,
    /// `--bounce-buffers` values for the `bounce` backend (empty: not swept).
    pub bounce_buffers: Vec<usize>,
    /// `--gds-api` values for the `gds` backend (empty: not swept).
    pub gds_apis: Vec<GdsApi>,
    /// Backend names in order; `None`: every backend available here.
    pub backends: Option<Vec<String>>,
    /// Peer tool names (`none` alone for no peer), measured for reference.
    pub peers: Vec<String>,
    /// Rounds per point, as `compare --rounds`.
    pub rounds: u32,
    /// What the best settings are chosen for.
    pub metric: Metric,
}

impl SweepSpec {
    /// The grid in measuring order: block size, then queue depth, then threads, then direction,
    /// then the backend knobs (see the module docs).
    pub fn grid(&self) -> Vec<PointKey> {
        self.scoped_grid().into_iter().map(|(k, _)| k).collect()
    }

    /// The grid, each point with the one backend it is limited to (`None`: every contender).
    fn scoped_grid(&self) -> Vec<(PointKey, Option<BackendId>)> {
        let mut out = Vec::new();
        for &bs in &self.block_sizes {
            for &qd in &self.queue_depths {
                for &t in &self.threads {
                    for op in self.metric.ops() {
                        let all = PointKey {
                            block_size: bs,
                            queue_depth: qd,
                            threads: t,
                            op: op.to_string(),
                            bounce_buffers: self.bounce_buffers.first().copied(),
                            gds_api: self.gds_apis.first().copied(),
                        };
                        out.push((all.clone(), None));
                        for &k in self.bounce_buffers.iter().skip(1) {
                            let key = PointKey {
                                bounce_buffers: Some(k),
                                gds_api: None,
                                ..all.clone()
                            };
                            out.push((key, Some(BackendId::Bounce)));
                        }
                        for &api in self.gds_apis.iter().skip(1) {
                            let key = PointKey {
                                bounce_buffers: None,
                                gds_api: Some(api),
                                ..all.clone()
                            };
                            out.push((key, Some(BackendId::Gds)));
                        }
                    }
                }
            }
        }
        out
    }

    /// The run options of one point.
    pub fn options_at(&self, k: &PointKey) -> RunOptions {
        RunOptions {
            workload: Workload {
                block_size: k.block_size,
                queue_depth: k.queue_depth,
                threads: k.threads,
                op: if k.op == "write" { Op::Write } else { Op::Read },
                ..self.base.workload.clone()
            },
            gpu: crate::options::GpuOptions {
                bounce_buffers: k.bounce_buffers.unwrap_or(self.base.gpu.bounce_buffers),
                gds: k
                    .gds_api
                    .map(|api| GdsOptions {
                        api,
                        ..self.base.gpu.gds.unwrap_or_default()
                    })
                    .or(self.base.gpu.gds),
                ..self.base.gpu
            },
            ..self.base.clone()
        }
    }

    /// Resolves every point before anything runs, so a bad value fails first, naming its flag.
    pub fn resolve_all(&self) -> Result<Vec<(PointKey, compare::CompareSpec)>> {
        let lists: [(Setting, bool); 3] = [
            (Setting::BlockSize, self.block_sizes.is_empty()),
            (Setting::QueueDepth, self.queue_depths.is_empty()),
            (Setting::Threads, self.threads.is_empty()),
        ];
        for (setting, empty) in lists {
            if empty {
                return Err(Error::invalid(setting, "the list is empty"));
            }
        }
        if self.bounce_buffers.contains(&0) {
            return Err(Error::invalid(Setting::BounceBuffers, "0 is out of range"));
        }
        let mut out = Vec::new();
        for (mut k, only) in self.scoped_grid() {
            let mut spec = compare::resolve(
                self.options_at(&k),
                self.backends.as_deref(),
                &self.peers,
                self.rounds,
            )?;
            if let Some(only) = only {
                spec.contenders.retain(|c| *c == Contender::Backend(only));
                if spec.contenders.is_empty() {
                    continue;
                }
            }
            let runs = |b: BackendId| spec.contenders.contains(&Contender::Backend(b));
            if !runs(BackendId::Bounce) {
                k.bounce_buffers = None;
            }
            if !runs(BackendId::Gds) {
                k.gds_api = None;
            }
            out.push((k, spec));
        }
        Ok(out)
    }
}

/// Points read back from a points file: the complete ones, and how many unreadable lines were
/// dropped (a line cut short by a crash mid-write; it is measured again).
pub struct Loaded {
    /// The complete points, in file order.
    pub points: Vec<Comparison>,
    /// Lines that could not be read (and are measured again).
    pub dropped_lines: usize,
}

/// Reads `points.jsonl`.
pub fn load_points(path: &Path) -> Result<Loaded> {
    let text = crate::io::file::read_regular(path).map_err(|e| Error::BadFile {
        role: FileRole::Setting(Setting::Resume),
        path: path.to_path_buf(),
        message: format!("cannot read it: {e}").into(),
    })?;
    let mut points = Vec::new();
    let mut dropped_lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match comparison::from_json(line) {
            Ok(c) => points.push(c),
            Err(_) => dropped_lines += 1,
        }
    }
    Ok(Loaded {
        points,
        dropped_lines,
    })
}

/// Refuses to resume a points file measured with another fixed workload, naming the flag.
pub fn check_resumable(spec: &SweepSpec, points: &[Comparison], path: &Path) -> Result<()> {
    let probe = compare::params_of(&compare::CompareSpec {
        base: spec.base.clone(),
        contenders: Vec::new(),
        rounds: spec.rounds,
        skipped: Vec::new(),
        tuning: Default::default(),
    });
    for c in points {
        let p = &c.params;
        let differs: Option<(Message, String, String)> = if p.workload.size != probe.workload.size {
            Some((
                Setting::Size.into(),
                Bytes(p.workload.size).to_string(),
                Bytes(probe.workload.size).to_string(),
            ))
        } else if p.workload.loops != probe.workload.loops {
            Some((
                Setting::Loops.into(),
                p.workload.loops.to_string(),
                probe.workload.loops.to_string(),
            ))
        } else if p.workload.warmup != probe.workload.warmup {
            Some((
                Setting::Warmup.into(),
                p.workload.warmup.to_string(),
                probe.workload.warmup.to_string(),
            ))
        } else if p.rounds != probe.rounds {
            Some((
                Setting::Rounds.into(),
                p.rounds.to_string(),
                probe.rounds.to_string(),
            ))
        } else if p.workload.target != probe.workload.target {
            Some((
                crate::error::msg![Setting::File, "/", Setting::Dir],
                p.workload.target.path().display().to_string(),
                probe.workload.target.path().display().to_string(),
            ))
        } else if p.random != probe.random {
            Some((
                Setting::Random.into(),
                p.random.to_string(),
                probe.random.to_string(),
            ))
        } else if p.direct != probe.direct {
            Some((
                Setting::Buffered.into(),
                (!p.direct).to_string(),
                (!probe.direct).to_string(),
            ))
        } else if p.fixed_buffers != probe.fixed_buffers {
            // Points measured with unregistered buffers (a points file from before `auto`, read
            // as off) are not mixed with registered ones in the best-settings pick.
            Some((
                Setting::FixedBuffers.into(),
                p.fixed_buffers.to_string(),
                probe.fixed_buffers.to_string(),
            ))
        } else {
            None
        };
        if let Some((setting, was, now)) = differs {
            let mut message = crate::error::msg!["was measured with "];
            message.0.extend(setting.0);
            message.push(format!(
                " {was}, this sweep asks {now}; resume with the same options, or start a new sweep with another "
            ));
            message.push(Setting::Out);
            return Err(Error::BadFile {
                role: FileRole::Setting(Setting::Resume),
                path: path.to_path_buf(),
                message,
            });
        }
    }
    Ok(())
}

/// Appends measured points to `points.jsonl` and `points.csv`, durably, one point at a time.
pub struct PointLog {
    jsonl: PathBuf,
    csv: PathBuf,
}

impl PointLog {
    /// A log of the points files in output directory `dir` (nothing is opened yet).
    pub fn new(dir: &Path) -> PointLog {
        PointLog {
            jsonl: dir.join(POINTS_JSONL),
            csv: dir.join(POINTS_CSV),
        }
    }

    /// The path of `points.jsonl`.
    pub fn jsonl_path(&self) -> &Path {
        &self.jsonl
    }

    /// The path of `points.csv`.
    pub fn csv_path(&self) -> &Path {
        &self.csv
    }

    fn append(path: &Path, text: &str) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a symbolic link planted in --out.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| Error::file(FileOp::Open, path, e))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| Error::file(FileOp::Write, path, e))
    }

    /// Rewrites the files with exactly `points`, each through a temporary file renamed into
    /// place: the JSON lines only when `jsonl_too` (a torn line was dropped), the CSV always (it
    /// may lack the rows of a point whose JSON line was written just before an interruption).
    pub fn rewrite(&self, points: &[Comparison], jsonl_too: bool) -> Result<()> {
        let replace = |path: &Path, text: &str| -> Result<()> {
            crate::io::file::write_atomic(path, text.as_bytes())
        };
        if jsonl_too {
            let mut text = String::new();
            for c in points {
                text.push_str(&serde_json::to_string(c).expect("comparisons are serializable"));
                text.push('\n');
            }
            replace(&self.jsonl, &text)?;
        }
        let mut csv = String::new();
        for (i, c) in points.iter().enumerate() {
            let t = comparison::to_csv(c);
            csv.push_str(if i == 0 {
                &t
            } else {
                t.split_once('\n').map(|(_, r)| r).unwrap_or("")
            });
        }
        replace(&self.csv, &csv)
    }

    /// Appends one point: a JSON line, and its CSV rows (with the header when the file is new).
    pub fn append_point(&self, c: &Comparison) -> Result<()> {
        let mut line = serde_json::to_string(c).expect("comparisons are serializable");
        line.push('\n');
        Self::append(&self.jsonl, &line)?;
        let csv = comparison::to_csv(c);
        let has_header = std::fs::metadata(&self.csv)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let rows = if has_header {
            csv.split_once('\n').map(|(_, r)| r).unwrap_or("")
        } else {
            &csv
        };
        Self::append(&self.csv, rows)
    }
}

/// What the sweep is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum SweepEvent<'a> {
    /// A run inside point `index` (0-based, in grid order) finished.
    Run {
        /// The point's index in grid order, 0-based.
        index: usize,
        /// The point's settings.
        key: &'a PointKey,
        /// The run's progress event.
        progress: &'a Progress,
    },
    /// Point `index` is measured and appended.
    Point {
        /// The point's index in grid order, 0-based.
        index: usize,
        /// The point's settings.
        key: &'a PointKey,
        /// The point's comparison, as appended.
        result: &'a Comparison,
    },
}

/// How a sweep ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepEnd {
    /// Points of the grid measured by this invocation.
    pub measured: usize,
    /// Points of the grid found already measured in the points file.
    pub already: usize,
    /// Points in the grid.
    pub total: usize,
    /// Stopped on request before the grid was complete.
    pub interrupted: bool,
}

/// Measures every point of `resolved` missing from `existing`, appending each to `log` as soon
/// as it is measured. Returns all points (existing first) and how the sweep ended.
pub fn sweep(
    resolved: &[(PointKey, compare::CompareSpec)],
    mut existing: Vec<Comparison>,
    log: &PointLog,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(SweepEvent),
) -> Result<(Vec<Comparison>, SweepEnd)> {
    let done: std::collections::HashSet<PointKey> = existing.iter().map(key_of).collect();
    let already = resolved.iter().filter(|(k, _)| done.contains(k)).count();
    let mut end = SweepEnd {
        measured: 0,
        already,
        total: resolved.len(),
        interrupted: false,
    };
    for (index, (key, spec)) in resolved.iter().enumerate() {
        if done.contains(key) {
            continue;
        }
        let result = compare::compare(spec, stop, &mut |p| {
            if matches!(p, Progress::Measured { .. }) {
                on_event(SweepEvent::Run {
                    index,
                    key,
                    progress: &p,
                });
            }
        });
        let result = match result {
            Ok(r) => r,
            // A stop request ends the sweep between runs; an error that a signal caused
            // mid-run counts as a stop too (the point is dropped either way).
            Err(_) if stop.load(std::sync::atomic::Ordering::SeqCst) => {
                end.interrupted = true;
                break;
            }
            Err(e) => {
                return Err(Error::Within {
                    context: format!("sweep point {key}").into(),
                    source: Box::new(e),
                })
            }
        };
        let mut result = result;
        result.params.bounce_buffers = key.bounce_buffers;
        result.params.gds_api = key.gds_api;
        log.append_point(&result)?;
        end.measured += 1;
        on_event(SweepEvent::Point {
            index,
            key,
            result: &result,
        });
        existing.push(result);
    }
    Ok((existing, end))
}

fn median_of(points: &[Comparison], backend: &str, key: &PointKey) -> Option<f64> {
    points
        .iter()
        .filter(|c| key_of(c) == *key)
        .flat_map(|c| c.contenders.iter())
        .find(|k| k.name == backend && k.kind == ContenderKind::Backend)
        .map(|k| k.bandwidth_gibps.median)
}

/// The best settings per backend over `points`, by `metric` (see the module docs).
pub fn best(points: &[Comparison], metric: Metric) -> Config {
    let mut backends: BTreeMap<String, Tuning> = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    for c in points {
        for k in c
            .contenders
            .iter()
            .filter(|k| k.kind == ContenderKind::Backend)
        {
            if !names.contains(&k.name) {
                names.push(k.name.clone());
            }
        }
    }
    for name in names {
        let mut seen: Vec<PointKey> = Vec::new();
        for c in points {
            let k = key_of(c);
            let settings = PointKey {
                op: String::new(),
                ..k.clone()
            };
            if seen.contains(&settings) {
                continue;
            }
            seen.push(settings);
            let at = |op: &str| {
                median_of(
                    points,
                    &name,
                    &PointKey {
                        op: op.into(),
                        ..k.clone()
                    },
                )
            };
            let (r, w) = (at("read"), at("write"));
            let score = match metric {
                Metric::Read => r,
                Metric::Write => w,
                Metric::Both => match (r, w) {
                    (Some(r), Some(w)) if r + w > 0.0 => Some(2.0 * r * w / (r + w)),
                    _ => None,
                },
            };
            let Some(score) = score else { continue };
            let better = match backends.get(&name) {
                Some(b) => score > b.score_gibps,
                None => true,
            };
            if better {
                backends.insert(
                    name.clone(),
                    Tuning {
                        block_size: k.block_size,
                        queue_depth: k.queue_depth,
                        threads: k.threads,
                        read_gibps: r,
                        write_gibps: w,
                        score_gibps: score,
                        bounce_buffers: k
                            .bounce_buffers
                            .filter(|_| name == BackendId::Bounce.name()),
                        gds_api: k.gds_api.filter(|_| name == BackendId::Gds.name()),
                    },
                );
            }
        }
    }
    Config {
        schema: CONFIG_SCHEMA.into(),
        metric: metric.name().into(),
        backends,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::comparison::tests::sample as sample_comparison;

    fn point(op: &str, bs: u64, qd: u32, threads: usize, host: f64, posix: f64) -> Comparison {
        let mut c = sample_comparison();
        c.params.workload.op = if op == "write" { Op::Write } else { Op::Read };
        c.params.workload.block_size = bs;
        c.params.workload.queue_depth = qd;
        c.params.workload.threads = threads;
        c.contenders[0].bandwidth_gibps.median = host;
        c.contenders[1].bandwidth_gibps.median = posix;
        c
    }

    #[test]
    fn best_per_backend_by_read_write_and_harmonic_mean() {
        let m = 1 << 20;
        let pts = vec![
            point("read", m, 8, 1, 4.0, 1.0),
            point("write", m, 8, 1, 1.0, 1.0),
            point("read", 8 * m, 8, 1, 3.0, 1.5),
            point("write", 8 * m, 8, 1, 3.0, 1.5),
            point("read", m, 32, 2, 3.0, 1.5),
        ];
        let read = best(&pts, Metric::Read);
        assert_eq!(read.metric, "read");
        let h = &read.backends["host"];
        assert_eq!((h.block_size, h.queue_depth, h.threads), (m, 8, 1));
        assert_eq!(h.score_gibps, 4.0);
        // posix ties at 1.5 twice: the first measured wins.
        let p = &read.backends["posix"];
        assert_eq!((p.block_size, p.queue_depth, p.threads), (8 * m, 8, 1));
        // The fio peer gets no settings.
        assert!(!read.backends.contains_key("fio"));
        let write = best(&pts, Metric::Write);
        assert_eq!(write.backends["host"].block_size, 8 * m);
        // both: host 4 read + 1 write (sum 5, harmonic 1.6) loses to 3 + 3 (sum 6, harmonic 3).
        let both = best(&pts, Metric::Both);
        let h = &both.backends["host"];
        assert_eq!(h.block_size, 8 * m);
        assert!((h.score_gibps - 3.0).abs() < 1e-12);
        assert_eq!((h.read_gibps, h.write_gibps), (Some(3.0), Some(3.0)));
        // A point with only one direction cannot rank for both.
        let only_read = best(&pts[4..], Metric::Both);
        assert!(only_read.backends.is_empty());
    }

    #[test]
    fn knobs_multiply_only_their_backend_and_older_lines_load_without_them() {
        let m = 1 << 20;
        let mut spec = SweepSpec {
            base: RunOptions::default(),
            block_sizes: vec![m],
            queue_depths: vec![8],
            threads: vec![1],
            bounce_buffers: vec![4, 8],
            gds_apis: vec![GdsApi::Sync, GdsApi::Batch, GdsApi::Stream],
            backends: None,
            peers: vec![],
            rounds: 1,
            metric: Metric::Read,
        };
        let g: Vec<(String, Option<BackendId>)> = spec
            .scoped_grid()
            .into_iter()
            .map(|(k, only)| (k.to_string(), only))
            .collect();
        assert_eq!(
            g,
            [
                (
                    "read bs 1MiB qd 8 threads 1 bounce-buffers 4 gds-api sync".to_string(),
                    None
                ),
                (
                    "read bs 1MiB qd 8 threads 1 bounce-buffers 8".to_string(),
                    Some(BackendId::Bounce)
                ),
                (
                    "read bs 1MiB qd 8 threads 1 gds-api batch".to_string(),
                    Some(BackendId::Gds)
                ),
                (
                    "read bs 1MiB qd 8 threads 1 gds-api stream".to_string(),
                    Some(BackendId::Gds)
                ),
            ]
        );
        let o = spec.options_at(&spec.grid()[0]);
        assert_eq!(o.gpu.bounce_buffers, 4);
        assert_eq!(o.gpu.gds.unwrap().api, GdsApi::Sync);
        spec.bounce_buffers = vec![0];
        assert!(spec
            .resolve_all()
            .unwrap_err()
            .to_string()
            .starts_with("bounce_buffers"));

        // A line written before the knobs existed loads, with none.
        let old = serde_json::to_string(&sample_comparison()).unwrap();
        assert!(
            !old.contains("bounce_buffers") && !old.contains("gds_api"),
            "{old}"
        );
        let c = comparison::from_json(&old).unwrap();
        assert_eq!((c.params.bounce_buffers, c.params.gds_api), (None, None));

        // best: gds ran sync with host, then batch alone; batch wins and is recorded for gds
        // only; host keeps no knob.
        let mut a = point("read", m, 8, 1, 2.0, 1.0);
        a.contenders[1].name = "gds".into();
        a.params.gds_api = Some(GdsApi::Sync);
        let mut b = a.clone();
        b.contenders.remove(0);
        b.contenders[0].bandwidth_gibps.median = 3.0;
        b.params.gds_api = Some(GdsApi::Batch);
        let best = best(&[a.clone(), b], Metric::Read);
        assert_eq!(best.backends["gds"].gds_api, Some(GdsApi::Batch));
        assert_eq!(best.backends["gds"].score_gibps, 3.0);
        assert_eq!(best.backends["host"].gds_api, None);
        assert_eq!(best.aio_block().unwrap()["aio"]["use_gds"], true);
        let mut o = RunOptions::default();
        best.backends["gds"].apply(&mut o);
        assert_eq!(o.gpu.gds.unwrap().api, GdsApi::Batch);
        assert_eq!(
            point_of(&[a], "gds", &best.backends["host"], "read").map(key_of),
            Some(PointKey {
                block_size: m,
                queue_depth: 8,
                threads: 1,
                op: "read".into(),
                bounce_buffers: None,
                gds_api: Some(GdsApi::Sync)
            })
        );
    }

    #[test]
    fn harmonic_mean_prefers_balance_where_the_sum_would_not() {
        let m = 1 << 20;
        // Sum: 10 + 1 = 11 beats 5 + 5 = 10; harmonic: 1.8 loses to 5.
        let pts = vec![
            point("read", m, 1, 1, 10.0, 1.0),
            point("write", m, 1, 1, 1.0, 1.0),
            point("read", 2 * m, 1, 1, 5.0, 1.0),
            point("write", 2 * m, 1, 1, 5.0, 1.0),
        ];
        assert_eq!(best(&pts, Metric::Both).backends["host"].block_size, 2 * m);
    }

    #[test]
    fn the_log_appends_points_and_reads_them_back_dropping_a_torn_line() {
        let dir = crate::testutil::scratch_dir();
        let log = PointLog::new(dir.path());
        let m = 1 << 20;
        log.append_point(&point("read", m, 1, 1, 1.0, 1.0)).unwrap();
        log.append_point(&point("read", 2 * m, 1, 1, 2.0, 1.0))
            .unwrap();
        let loaded = load_points(log.jsonl_path()).unwrap();
        assert_eq!(loaded.points.len(), 2);
        assert_eq!(loaded.dropped_lines, 0);
        assert_eq!(key_of(&loaded.points[1]).block_size, 2 * m);
        // CSV: one header, then 3 rows per point.
        let csv = std::fs::read_to_string(log.csv_path()).unwrap();
        assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
        assert_eq!(csv.matches("schema,").count(), 1);
        // A line cut short (a crash mid-write) is dropped, the rest kept.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log.jsonl_path())
            .unwrap();
        f.write_all(b"{\"schema\":\"gdswap.compare.v1\",\"fini")
            .unwrap();
        let loaded = load_points(log.jsonl_path()).unwrap();
        assert_eq!((loaded.points.len(), loaded.dropped_lines), (2, 1));
    }

    #[test]
    fn resuming_refuses_another_workload_naming_the_flag() {
        let spec = SweepSpec {
            base: RunOptions {
                workload: Workload {
                    target: crate::options::Target::Dir("/data".into()),
                    size: 1 << 30,
                    loops: 3,
                    warmup: 1,
                    ..RunOptions::default().workload
                },
                ..RunOptions::default()
            },
            block_sizes: vec![1 << 20],
            queue_depths: vec![8],
            threads: vec![1],
            bounce_buffers: vec![],
            gds_apis: vec![],
            backends: None,
            peers: vec![],
            rounds: 3,
            metric: Metric::Read,
        };
        let p = Path::new("/x/points.jsonl");
        let same = sample_comparison();
        check_resumable(&spec, std::slice::from_ref(&same), p).unwrap();
        let mut other = same.clone();
        other.params.workload.size = 4 << 20;
        let e = check_resumable(&spec, &[other], p).unwrap_err().to_string();
        assert_eq!(
            e,
            "resume /x/points.jsonl: was measured with size 4MiB, this sweep asks 1GiB; resume with the same options, or start a new sweep with another out"
        );
        let mut other = same.clone();
        other.params.rounds = 5;
        let e = check_resumable(&spec, &[other], p).unwrap_err().to_string();
        assert!(e.contains("rounds 5, this sweep asks 3"), "{e}");
        // A points file written before --fixed-buffers was recorded (unregistered buffers, the
        // default then) is not resumed by a sweep that registers them.
        let mut old = serde_json::to_value(&same).unwrap();
        old["params"]
            .as_object_mut()
            .unwrap()
            .remove("fixed_buffers");
        let old: Comparison = serde_json::from_value(old).unwrap();
        let e = check_resumable(&spec, &[old], p).unwrap_err().to_string();
        assert!(e.contains("fixed_buffers off, this sweep asks auto"), "{e}");
        // Grid order: block size, queue depth, threads, direction.
        let spec = SweepSpec {
            block_sizes: vec![1, 2],
            queue_depths: vec![1],
            threads: vec![1, 2],
            metric: Metric::Both,
            ..spec
        };
        let g: Vec<String> = spec.grid().iter().map(|k| k.to_string()).collect();
        assert_eq!(
            g,
            [
                "read bs 1B qd 1 threads 1",
                "write bs 1B qd 1 threads 1",
                "read bs 1B qd 1 threads 2",
                "write bs 1B qd 1 threads 2",
                "read bs 2B qd 1 threads 1",
                "write bs 2B qd 1 threads 1",
                "read bs 2B qd 1 threads 2",
                "write bs 2B qd 1 threads 2"
            ]
        );
    }
}
