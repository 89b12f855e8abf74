//! Failures as records: why a run or comparison failed ([`ErrorRecord`]), and the record
//! `run --json` writes for a run that failed ([`FailedRun`]).

use serde::{Deserialize, Serialize};

use crate::env::Environment;
use crate::options::RunOptions;

use super::{Params, SCHEMA};

/// Why a run or comparison failed, as recorded in its JSON (`--json` records failures too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// A stable class: `refused` (a value, file or limit gdswap will not run with),
    /// `unavailable`, `resources`, `io`, `verify`, `cuda`, `cufile`, `peer`, `interrupted`,
    /// `internal`, `ranks`.
    pub kind: String,
    /// The one-line message gdswap printed (the library's text, settings by name, unless
    /// the command line puts its own line, with flags, here).
    pub message: String,
}

impl ErrorRecord {
    /// The record of `e`: its [`crate::error::Error::kind`] and its message.
    pub fn of(e: &crate::error::Error) -> ErrorRecord {
        ErrorRecord {
            kind: e.kind().into(),
            message: e.to_string(),
        }
    }
}

/// A run that failed, as `run --json` records it: the `gdswap.run.v1` header fields
/// (`schema`, `finished_at`, `environment`, `params`) and `error` in place of the figures,
/// which a failed run does not have (no zeroes stand in for them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRun {
    /// [`SCHEMA`].
    pub schema: String,
    /// When the run ended, UTC, ISO 8601.
    pub finished_at: String,
    /// The machine, kernel and filesystem.
    pub environment: Environment,
    /// The options the run was made with.
    pub params: Params,
    /// Why it failed.
    pub error: ErrorRecord,
    /// The command line that ran, as typed (empty when a library caller made the record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command_line: Vec<String>,
}

impl FailedRun {
    /// The record of a run of `opts` that failed with `error`, ended at `finished_at`.
    pub fn new(
        opts: &RunOptions,
        error: &crate::error::Error,
        environment: Environment,
        finished_at: String,
    ) -> FailedRun {
        FailedRun {
            schema: SCHEMA.into(),
            finished_at,
            environment,
            params: Params::of(
                opts,
                opts.backend.memory() == crate::types::MemoryKind::Device,
            ),
            error: ErrorRecord::of(error),
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
