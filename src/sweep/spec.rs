//! What a sweep asks: the fixed workload and the lists the grid is made of, the grid in
//! measuring order (the backend knobs scoped to their own backend), each point's run options,
//! and every point resolved as a comparison before anything runs.

use super::best::Metric;
use super::point::PointKey;
use crate::compare::{self, Contender};
use crate::error::{Error, Result, Setting};
use crate::options::{GdsApi, GdsOptions, Op, RunOptions, Workload};
use crate::types::BackendId;

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
    pub(super) fn scoped_grid(&self) -> Vec<(PointKey, Option<BackendId>)> {
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
