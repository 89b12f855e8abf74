//! A point of the grid and its key: the settings it ran with (block size, queue depth,
//! threads, direction, the backend knobs), read from a measured [`Comparison`] by `key_of`.
//! The key is what resuming, the best-settings pick and the rebuilt report match points by,
//! so it lives apart from any one of them.

use crate::options::GdsApi;
use crate::report::comparison::{Comparison, ContenderKind};
use crate::size::Bytes;
use crate::tuning::Tuning;

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
