//! What a comparison runs, once resolved: the contenders (a backend, the `host-ring` row,
//! or a peer tool found here) and the [`CompareSpec`] that holds them in order with the
//! workload, the rounds and what was skipped. Kept apart from `resolve`, which builds it, and
//! from the rounds in `mod.rs`, which run it: the CLI and `sweep` read and edit these values
//! between the two.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::options::{BufferMode, RunOptions};
use crate::peer;
use crate::report::comparison::{ContenderKind, Skipped};
use crate::tuning::Tuning;
use crate::types::BackendId;

/// Most rounds a comparison takes (beyond this, a typo).
pub const MAX_ROUNDS: u32 = 1000;

/// The name of [`Contender::HostRing`]'s row.
pub const HOST_RING: &str = "host-ring";

/// A contender, resolved: a backend by name, or a peer tool found on this machine (gdsio:
/// one contender per transfer type, each run killed after `timeout`).
#[derive(Debug, Clone, PartialEq)]
pub enum Contender {
    /// A gdswap backend, run on the base workload (with its `--config` settings, if any).
    Backend(BackendId),
    /// The host backend with `--buffer ring`: queue depth x block size buffers reused, the
    /// footprint fio reads into. Added beside `host` when fio is a peer and the workload reads
    /// into tensor-sized buffers, so that a gap between `host` and `fio` that is only buffer
    /// placement (a large destination fills slower than a small, cache-warm ring) shows as such.
    HostRing,
    /// fio (the executable found), run on the same files and ranges.
    Fio(PathBuf),
    /// NVIDIA's gdsio, one transfer type.
    Gdsio {
        /// The gdsio executable.
        exe: PathBuf,
        /// Its transfer type (`-x`).
        xfer: peer::GdsioXfer,
        /// A run still going after this long is killed.
        timeout: Duration,
    },
}

impl Contender {
    /// The contender's row name: the backend's name, `host-ring`, `fio`, or gdsio's transfer
    /// type name.
    pub fn name(&self) -> &str {
        match self {
            Contender::Backend(b) => b.name(),
            Contender::HostRing => HOST_RING,
            Contender::Fio(_) => "fio",
            Contender::Gdsio { xfer, .. } => xfer.name(),
        }
    }

    /// A gdswap backend or a peer tool.
    pub fn kind(&self) -> ContenderKind {
        match self {
            Contender::Backend(_) | Contender::HostRing => ContenderKind::Backend,
            Contender::Fio(_) | Contender::Gdsio { .. } => ContenderKind::Peer,
        }
    }
}

/// Everything a comparison runs: the workload, the contenders in order (the first is the
/// reference of the ratios), the rounds, and what was left out and why.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// The workload; its `backend` is replaced by each backend contender's.
    pub base: RunOptions,
    /// The contenders, in the order each round runs them; the first is the ratios' reference.
    pub contenders: Vec<Contender>,
    /// Rounds: each contender runs once per round (at most [`MAX_ROUNDS`]).
    pub rounds: u32,
    /// Contenders left out (not available here, or unfit for the workload), with why.
    pub skipped: Vec<Skipped>,
    /// Per-backend settings from a config file (`--config`); empty when every backend runs
    /// the base workload.
    pub tuning: BTreeMap<String, Tuning>,
}

impl CompareSpec {
    /// The run options of a backend contender: the workload, with its tuned settings if any.
    pub fn options_for(&self, backend: BackendId) -> RunOptions {
        let mut o = RunOptions {
            backend,
            ..self.base.clone()
        };
        if let Some(t) = self.tuning.get(backend.name()) {
            t.apply(&mut o);
        }
        o
    }

    /// The run options of a gdswap contender (`None` for a peer tool).
    pub fn options_of(&self, c: &Contender) -> Option<RunOptions> {
        match c {
            Contender::Backend(b) => Some(self.options_for(*b)),
            Contender::HostRing => Some(RunOptions {
                buffer: BufferMode::Ring,
                ..self.options_for(BackendId::Host)
            }),
            Contender::Fio(_) | Contender::Gdsio { .. } => None,
        }
    }
}
