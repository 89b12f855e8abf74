//! The points files, written as the sweep goes: each measured point appended to
//! `points.jsonl` and `points.csv` in one `write` and flushed to disk before the next starts
//! (never through a symbolic link), and both rewritten atomically when a resume drops a torn
//! line.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{POINTS_CSV, POINTS_JSONL};
use crate::error::{Error, FileOp, Result};
use crate::report::comparison::{self, Comparison};

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
