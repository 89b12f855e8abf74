//! The path a `gds` transfer's bytes take, as a closed set ([`GdsPath`]), and a verdict on it
//! with its evidence ([`GdsVerdict`]). `cufile::path` decides the verdict (for `gds` runs and
//! for `gdswap check` alike); reports, the swap store and the harness carry it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::options::GdsApi;

/// Which way a `gds` transfer's bytes go between the file and GPU memory. Serialised (and
/// displayed) as the strings reports have always carried: `gpudirect (nvidia-fs)`,
/// `gpudirect (p2pdma)`, `compat (posix via host bounce)`, `unknown`, `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GdsPath {
    /// GPUDirect through the nvidia-fs kernel module.
    #[serde(rename = "gpudirect (nvidia-fs)")]
    NvidiaFs,
    /// GPUDirect through the kernel's PCI P2PDMA (CUDA 12.8+, no nvidia-fs).
    #[serde(rename = "gpudirect (p2pdma)")]
    P2pdma,
    /// cuFile's compat mode: POSIX I/O through a host bounce buffer.
    #[serde(rename = "compat (posix via host bounce)")]
    Compat,
    /// No evidence either way.
    #[serde(rename = "unknown")]
    Unknown,
    /// No path at all: cuFile cannot move data here (no driver, no library, the driver does
    /// not open, or no direct path with compat mode off).
    #[serde(rename = "none")]
    None,
}

impl GdsPath {
    /// The string reports carry.
    pub fn as_str(self) -> &'static str {
        match self {
            GdsPath::NvidiaFs => "gpudirect (nvidia-fs)",
            GdsPath::P2pdma => "gpudirect (p2pdma)",
            GdsPath::Compat => "compat (posix via host bounce)",
            GdsPath::Unknown => "unknown",
            GdsPath::None => "none",
        }
    }

    /// A GPUDirect path (nvidia-fs or P2PDMA).
    pub fn is_direct(self) -> bool {
        matches!(self, GdsPath::NvidiaFs | GdsPath::P2pdma)
    }
}

impl fmt::Display for GdsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The path a `gds` run's bytes took, as far as gdswap could tell, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GdsVerdict {
    /// Which path the bytes took.
    pub path: GdsPath,
    /// The evidence: driver properties, the strict per-file probe, statistics, or why there
    /// was none.
    pub reason: String,
    /// What else the reader must know about the cuFile setup (e.g. buffers left unregistered
    /// because they were over cuFile's pinning limit); each becomes a `gds-note` warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Set when the run's stream or batch API kept one operation in flight in the process
    /// instead of the queue depth, because cuFile ran in compat mode; it becomes a
    /// `gds-compat-one-in-flight` warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_clamp: Option<QueueClamp>,
    /// Why cuFile's statistics (1.15+), which the library has, gave no per-I/O evidence:
    /// turning them on or reading them failed (the path then rests on the probe and driver
    /// properties alone); it becomes a `gds-no-statistics` warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics_failed: Option<String>,
}

/// A `gds` run's `stream` or `batch` API held to one operation in flight in the whole
/// process, because cuFile ran in compat mode (where libcufile 1.15.1 on an H200 misplaced
/// data with concurrent stream operations and stalled batches of more than one entry:
/// bench-results/2026-12-04-gpu-checks-h200-session8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueClamp {
    /// The API that was held to one operation in flight.
    pub api: GdsApi,
    /// The queue depth per thread that was asked for.
    pub asked: u32,
    /// Why compat mode was known when the workers prepared (the verdict's evidence then).
    pub reason: String,
}

impl GdsVerdict {
    /// A verdict without notes.
    pub fn new(path: GdsPath, reason: impl Into<String>) -> GdsVerdict {
        GdsVerdict {
            path,
            reason: reason.into(),
            notes: Vec::new(),
            queue_clamp: None,
            statistics_failed: None,
        }
    }

    /// Whether cuFile ran in compat mode (through its own POSIX path, not GPUDirect).
    pub fn is_compat(&self) -> bool {
        self.path == GdsPath::Compat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_serialize_to_the_strings_reports_carry() {
        for p in [
            GdsPath::NvidiaFs,
            GdsPath::P2pdma,
            GdsPath::Compat,
            GdsPath::Unknown,
            GdsPath::None,
        ] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<GdsPath>(&json).unwrap(), p);
            assert_eq!(p.to_string(), p.as_str());
        }
        let v = GdsVerdict::new(GdsPath::Compat, "why");
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"path":"compat (posix via host bounce)","reason":"why"}"#
        );
        assert!(v.is_compat());
        assert!(GdsPath::P2pdma.is_direct() && !GdsPath::Unknown.is_direct());
    }
}
