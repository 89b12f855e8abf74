//! The manifest: which tensors the store holds and where their bytes are, switched
//! atomically.
//!
//! Format: `manifest.json`, `{"format": "gdswap.swap.v1", "generation": N, "tensors": [...]}`
//! with one entry per tensor (name, dtype, shape, file, offset, byte length, padded length,
//! crc32c, generation). A commit writes `manifest.json.tmp`, fsyncs it, renames it over
//! `manifest.json` and fsyncs the directory: a reader (or a process restarting after a crash)
//! sees the old manifest or the new one, whole, never a mix.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, FileOp, Result};

use super::buffer::DType;

pub const FORMAT: &str = "gdswap.swap.v1";
pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_TMP: &str = "manifest.json.tmp";
/// The data file every tensor of a store lives in.
pub const DATA_FILE: &str = "data.bin";

/// One tensor's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Data file, relative to the store's directory.
    pub file: String,
    pub offset: u64,
    /// Bytes of the tensor.
    pub len: u64,
    /// Bytes it takes on disk: `len` rounded up to the O_DIRECT alignment (zero padding).
    pub padded_len: u64,
    /// CRC-32C (Castagnoli) of the `len` bytes.
    pub crc32c: u32,
    /// The store generation of the commit that wrote this version.
    pub generation: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Bumped by every commit.
    pub generation: u64,
    pub tensors: Vec<Entry>,
}

fn bad(path: &Path, message: String) -> Error {
    Error::BadFile {
        flag: "swap store",
        path: path.to_path_buf(),
        message,
    }
}

/// Reads `dir/manifest.json`; an empty manifest when there is none yet.
pub fn load(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Manifest {
                format: FORMAT.into(),
                ..Manifest::default()
            })
        }
        Err(e) => return Err(Error::file(FileOp::Read, &path, e)),
    };
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| bad(&path, format!("not a manifest: {e}")))?;
    if m.format != FORMAT {
        return Err(bad(
            &path,
            format!("format '{}', this gdswap reads '{FORMAT}'", m.format),
        ));
    }
    Ok(m)
}

/// Makes `m` the manifest of `dir`, durably and atomically (temp, fsync, rename, fsync dir).
pub fn commit(dir: &Path, m: &Manifest) -> Result<()> {
    let tmp: PathBuf = dir.join(MANIFEST_TMP);
    let path = dir.join(MANIFEST);
    let text = serde_json::to_vec_pretty(m).expect("a manifest always serialises");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::file(FileOp::Create, &tmp, e))?;
    f.write_all(&text)
        .map_err(|e| Error::io(FileOp::Write, &tmp, 0, text.len() as u64, e))?;
    f.sync_all()
        .map_err(|e| Error::file(FileOp::Sync, &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| Error::file(FileOp::Create, &path, e))?;
    sync_dir(dir)
}

/// fsync of a directory, so a rename (or a created file) in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::file(FileOp::Sync, dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_then_load_and_refuse_garbage() {
        let dir = crate::testutil::scratch_dir();
        assert!(load(dir.path()).unwrap().tensors.is_empty());
        let m = Manifest {
            format: FORMAT.into(),
            generation: 3,
            tensors: vec![Entry {
                name: "w".into(),
                dtype: DType::F32,
                shape: vec![2],
                file: DATA_FILE.into(),
                offset: 4096,
                len: 8,
                padded_len: 4096,
                crc32c: 7,
                generation: 3,
            }],
        };
        commit(dir.path(), &m).unwrap();
        assert!(!dir.path().join(MANIFEST_TMP).exists());
        assert_eq!(load(dir.path()).unwrap().tensors, m.tensors);
        std::fs::write(dir.path().join(MANIFEST), "{").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("manifest.json") && err.contains("not a manifest"),
            "{err}"
        );
    }
}
