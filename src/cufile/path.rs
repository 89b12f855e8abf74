//! The path a `gds` run's bytes took (GPUDirect through nvidia-fs or P2PDMA, or cuFile's
//! compat mode), as a value: the backend decides it from cuFile's statistics, properties and
//! probe, and reports, the swap store and the harness carry it. It lives with cuFile so that
//! those layers use it from below (`report::GdsPath` re-exports it).

use serde::{Deserialize, Serialize};

/// The path a `gds` run's bytes took, as far as gdswap could tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GdsPath {
    /// `gpudirect (nvidia-fs)`, `gpudirect (p2pdma)`, `compat (posix via host bounce)` or
    /// `unknown`.
    pub path: String,
    /// The evidence: driver properties, the strict per-file probe, or why there was none.
    pub reason: String,
    /// What else the reader must know about the cuFile setup (e.g. buffers left unregistered
    /// because they were over cuFile's pinning limit); each becomes a `gds-note` warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl GdsPath {
    pub const NVIDIA_FS: &'static str = "gpudirect (nvidia-fs)";
    pub const P2PDMA: &'static str = "gpudirect (p2pdma)";
    pub const COMPAT: &'static str = "compat (posix via host bounce)";
    pub const UNKNOWN: &'static str = "unknown";

    pub fn is_compat(&self) -> bool {
        self.path == Self::COMPAT
    }
}
