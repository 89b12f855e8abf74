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
//!
//! This file holds the output files' names and the measuring loop ([`sweep`]); a point's key
//! is in `point`, what a sweep asks and its grid in `spec`, the points files in `point_log`,
//! reading them back for `--resume` in `resume`, and the best-settings pick in `best`.

mod best;
mod point;
mod point_log;
mod resume;
mod spec;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicBool;

use crate::compare::{self, Progress};
use crate::error::{Error, Result};
use crate::report::comparison::Comparison;

pub use best::{best, Metric};
pub use point::{key_of, point_of, PointKey};
pub use point_log::PointLog;
pub use resume::{check_resumable, load_points, Loaded};
pub use spec::SweepSpec;

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
