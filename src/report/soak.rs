//! A time-based run (`--duration`) or soak (`--max-errors`): how long it ran, and what the
//! verification of every measured loop found, each wrong block with its file and offset.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::harness::Measurements;
use crate::options::RunOptions;

/// A wrong 4 KiB block found by verification: where, and what was there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyErrorRecord {
    /// The data file holding the block.
    pub path: PathBuf,
    /// File offset of the block's first wrong byte.
    pub offset: u64,
    /// What was expected and found there, and what the block header there says.
    pub found: String,
}

impl VerifyErrorRecord {
    /// The record of one verification failure.
    pub fn of(v: &crate::error::VerifyFailure) -> VerifyErrorRecord {
        VerifyErrorRecord {
            path: v.path.clone(),
            offset: v.offset,
            found: format!(
                "expected byte 0x{:02x}, found 0x{:02x}{}",
                v.expected, v.found, v.header_note
            ),
        }
    }
}

/// The figures of a time-based run or soak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Soak {
    /// `--duration` in seconds; absent for a run of `--loops`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Measured loops run.
    pub loops: usize,
    /// Every measured loop was verified (`--verify` with `--duration` or `--max-errors`).
    pub verified_every_loop: bool,
    /// `--max-errors`: the soak stops once more wrong blocks than this were found; absent when
    /// not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u64>,
    /// Wrong 4 KiB blocks found, all loops and threads.
    pub verify_errors: u64,
    /// The first of them (up to [`crate::harness::KEPT_FAILURES`] per thread), in thread order.
    pub errors: Vec<VerifyErrorRecord>,
}

impl Soak {
    /// `None` for a plain run of `--loops` without `--max-errors`.
    pub fn of(opts: &RunOptions, m: &Measurements) -> Option<Soak> {
        if opts.duration.is_none() && opts.max_errors.is_none() {
            return None;
        }
        Some(Soak {
            duration_s: opts.duration.map(|d| d.as_secs_f64()),
            loops: m.loops.len(),
            verified_every_loop: opts.verify_every_loop(),
            max_errors: opts.max_errors,
            verify_errors: m.threads.iter().map(|t| t.verify_errors).sum(),
            errors: m
                .threads
                .iter()
                .flat_map(|t| &t.verify_failures)
                .map(VerifyErrorRecord::of)
                .collect(),
        })
    }
}
