//! The best settings per backend over the measured points, by [`Metric`] (read, write, or the
//! harmonic mean of both; see the module docs of `sweep`), as a config file `--config` takes.

use std::collections::BTreeMap;

use super::point::{key_of, PointKey};
use crate::options::Op;
use crate::report::comparison::{Comparison, ContenderKind};
use crate::tuning::{Config, Tuning, CONFIG_SCHEMA};
use crate::types::BackendId;

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
