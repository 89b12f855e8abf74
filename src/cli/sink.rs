//! Where a command's results go (`--json`, `--csv`, ... as a path or `-`).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Setting};

/// An export destination, checked before the run so a bad path fails before any work, and
/// written only once the results exist, atomically (a private file in the same directory,
/// fsynced, renamed over the path): a failed run or a full disk never leaves a truncated or
/// empty result file, and a symbolic link at the path is replaced, never written through.
pub enum Sink {
    Stdout,
    File(PathBuf),
}

impl Sink {
    pub fn check(path: &Path, setting: Setting) -> Result<Sink, Error> {
        if path == Path::new("-") {
            return Ok(Sink::Stdout);
        }
        crate::io::file::check_result_path(path)
            .map(|_| Sink::File(path.to_path_buf()))
            .map_err(|e| Error::invalid(setting, format!("cannot write {}: {e}", path.display())))
    }

    pub fn write(self, text: &str) -> Result<(), Error> {
        match self {
            Sink::Stdout => {
                print!("{text}");
                std::io::stdout()
                    .flush()
                    .map_err(|e| Error::file(crate::error::FileOp::Write, "<stdout>", e))
            }
            Sink::File(path) => crate::io::file::write_atomic(&path, text.as_bytes()),
        }
    }
}
