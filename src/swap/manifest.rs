//! The manifest: which tensors the store holds and where their bytes are, switched
//! atomically.
//!
//! Format: `manifest.json`, `{"format": "gdswap.swap.v1", "generation": N, "tensors": [...]}`
//! with one entry per tensor (name, dtype, shape, file, offset, byte length, padded length,
//! crc32c, generation). A commit writes `manifest.json.tmp`, fsyncs it, renames it over
//! `manifest.json` and fsyncs the directory: a reader (or a process restarting after a crash)
//! sees the old manifest or the new one, whole, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, FileOp, Result};
use crate::io::owned::{self, Create};

use super::buffer::DType;

/// The manifest's format tag (`"format"`), checked when a store opens.
pub const FORMAT: &str = "gdswap.swap.v1";
/// The manifest in a store's directory.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's next version before its atomic rename.
pub const MANIFEST_TMP: &str = "manifest.json.tmp";
/// The data file every tensor of a store lives in.
pub const DATA_FILE: &str = "data.bin";

/// One tensor's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The tensor's name, as given to `swap_out`.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Data file, relative to the store's directory.
    pub file: String,
    /// Byte offset of the tensor in the data file (a multiple of the alignment).
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

/// A manifest entry the store refused when it opened (see `check_entries`): listed with
/// the reason, never read, and written back unchanged by every later commit, so that nothing
/// the manifest held is forgotten. Its bytes in the data file are never overwritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The entry's name, when it had a readable one.
    #[serde(default)]
    pub name: Option<String>,
    /// Why it was refused.
    pub reason: String,
    /// The entry as the manifest held it.
    pub entry: serde_json::Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Bumped by every commit.
    pub generation: u64,
    pub tensors: Vec<Entry>,
    /// Entries refused at an earlier open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<Quarantined>,
}

/// The manifest as read: the tensors still unchecked, entries that are not even records
/// already quarantined.
#[derive(Debug, Default)]
pub struct Loaded {
    pub generation: u64,
    pub tensors: Vec<Entry>,
    pub quarantined: Vec<Quarantined>,
}

#[derive(Deserialize)]
struct Raw {
    format: String,
    generation: u64,
    tensors: Vec<serde_json::Value>,
    #[serde(default)]
    quarantined: Vec<Quarantined>,
}

fn bad(path: &Path, message: String) -> Error {
    Error::BadFile {
        role: crate::error::FileRole::SwapStore,
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The largest manifest read (a store of a million tensors takes about 300 MB).
const MAX_MANIFEST: u64 = 1 << 30;

/// Reads `dir/manifest.json` (never through a symlink); `None` when there is none. The
/// header must parse; a tensor entry that is not a record is quarantined, not fatal.
pub fn load(dir: &Path) -> Result<Option<Loaded>> {
    let path = dir.join(MANIFEST);
    let f = match owned::open_store(&path, false, Create::No) {
        Ok(f) => f,
        Err(Error::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(MAX_MANIFEST + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::file(FileOp::Read, &path, e))?;
    if text.len() as u64 > MAX_MANIFEST {
        return Err(bad(&path, format!("larger than {MAX_MANIFEST} bytes")));
    }
    parse(&path, &text).map(Some)
}

/// Parses a manifest's text (`path` for messages).
pub fn parse(path: &Path, text: &str) -> Result<Loaded> {
    let raw: Raw =
        serde_json::from_str(text).map_err(|e| bad(path, format!("not a manifest: {e}")))?;
    if raw.format != FORMAT {
        return Err(bad(
            path,
            format!("format '{}', this gdswap reads '{FORMAT}'", raw.format),
        ));
    }
    let mut loaded = Loaded {
        generation: raw.generation,
        quarantined: raw.quarantined,
        ..Loaded::default()
    };
    for v in raw.tensors {
        match serde_json::from_value::<Entry>(v.clone()) {
            Ok(e) => loaded.tensors.push(e),
            Err(err) => loaded.quarantined.push(Quarantined {
                name: v.get("name").and_then(|n| n.as_str()).map(str::to_string),
                reason: format!("not a tensor record: {err}"),
                entry: v,
            }),
        }
    }
    Ok(loaded)
}

/// Names are keys in a JSON manifest: any text, but not empty and not absurdly long.
pub fn name_problem(name: &str) -> Option<&'static str> {
    (name.is_empty() || name.len() > 4096 || name.chars().any(char::is_control))
        .then_some("a tensor name must be 1 to 4096 bytes without control characters")
}

/// Why `e` cannot be read from a data file of `file_len` bytes with alignment `align`, in a
/// manifest of generation `generation`; `None` when it can. All arithmetic is checked.
fn entry_problem(e: &Entry, generation: u64, align: u64, file_len: u64) -> Option<String> {
    if let Some(p) = name_problem(&e.name) {
        return Some(p.into());
    }
    if e.file != DATA_FILE {
        return Some(format!("its data file is '{}', not {DATA_FILE}", e.file));
    }
    if e.padded_len == 0 {
        return Some("padded length 0".into());
    }
    if e.offset % align != 0 || e.padded_len % align != 0 {
        return Some(format!(
            "offset {} or padded length {} is not a multiple of the alignment {align}",
            e.offset, e.padded_len
        ));
    }
    if e.len > e.padded_len {
        return Some(format!(
            "length {} exceeds its padded length {}",
            e.len, e.padded_len
        ));
    }
    match super::buffer::byte_len(e.dtype, &e.shape) {
        Ok(n) if n as u64 == e.len => {}
        _ => {
            return Some(format!(
                "dtype {} and shape {:?} do not make {} bytes",
                e.dtype.name(),
                e.shape,
                e.len
            ))
        }
    }
    match e.offset.checked_add(e.padded_len) {
        None => {
            return Some(format!(
                "offset {} + padded length {} overflows 64 bits",
                e.offset, e.padded_len
            ))
        }
        Some(end) if end > file_len => {
            return Some(format!(
                "extent [{}, {end}) ends past the data file ({file_len} bytes)",
                e.offset
            ))
        }
        Some(_) => {}
    }
    if e.generation > generation {
        return Some(format!(
            "generation {} is newer than the manifest's ({generation})",
            e.generation
        ));
    }
    None
}

fn quarantine(e: &Entry, reason: String) -> Quarantined {
    Quarantined {
        name: Some(e.name.clone()),
        reason,
        entry: serde_json::to_value(e).expect("an entry always serialises"),
    }
}

/// Splits a manifest's entries into those the store can read (by name) and those it
/// quarantines with the reason: an entry whose extent does not fit the data file (or
/// overflows), padded length 0, a misaligned extent, a length its dtype and shape do not
/// make, a generation newer than the manifest's, a name held by two entries (both), and
/// extents that overlap (every one involved: which one is right cannot be known).
pub fn check_entries(
    entries: Vec<Entry>,
    generation: u64,
    align: u64,
    file_len: u64,
) -> (BTreeMap<String, Entry>, Vec<Quarantined>) {
    let mut quarantined = Vec::new();
    let mut good = Vec::new();
    for e in entries {
        match entry_problem(&e, generation, align, file_len) {
            Some(why) => quarantined.push(quarantine(&e, why)),
            None => good.push(e),
        }
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in &good {
        *count.entry(e.name.as_str()).or_default() += 1;
    }
    let dups: Vec<String> = count
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(name, _)| name.to_string())
        .collect();
    let (dup, mut good): (Vec<Entry>, Vec<Entry>) =
        good.into_iter().partition(|e| dups.contains(&e.name));
    for e in dup {
        quarantined.push(quarantine(
            &e,
            "its name is held by more than one entry".into(),
        ));
    }
    // Overlaps: every entry starting below the furthest end so far overlaps the entry that
    // reached it (ends are checked above, so they cannot overflow).
    good.sort_by_key(|e| e.offset);
    let mut bad = vec![false; good.len()];
    let mut furthest: Option<(u64, usize)> = None;
    for i in 0..good.len() {
        let end = good[i].offset + good[i].padded_len;
        if let Some((f_end, f)) = furthest {
            if good[i].offset < f_end {
                bad[i] = true;
                bad[f] = true;
            }
            if end > f_end {
                furthest = Some((end, i));
            }
        } else {
            furthest = Some((end, i));
        }
    }
    let mut tensors = BTreeMap::new();
    for (i, e) in good.into_iter().enumerate() {
        if bad[i] {
            quarantined.push(quarantine(
                &e,
                "its extent overlaps another tensor's".into(),
            ));
        } else {
            tensors.insert(e.name.clone(), e);
        }
    }
    (tensors, quarantined)
}

/// Makes `m` the manifest of `dir`, durably and atomically (temp, fsync, rename, fsync dir).
/// The temporary file is created exclusively (O_EXCL, O_NOFOLLOW): a leftover of a failed
/// commit of this store is removed first; anything else under its name is refused.
pub fn commit(dir: &Path, m: &Manifest) -> Result<()> {
    let tmp: PathBuf = dir.join(MANIFEST_TMP);
    let path = dir.join(MANIFEST);
    let text = serde_json::to_vec_pretty(m).expect("a manifest always serialises");
    owned::remove_own(dir, MANIFEST_TMP)?;
    let mut f = owned::open_store(&tmp, true, Create::New)?;
    let written = f
        .write_all(&text)
        .map_err(|e| Error::io(FileOp::Write, &tmp, 0, text.len() as u64, e))
        .and_then(|()| f.sync_all().map_err(|e| Error::file(FileOp::Sync, &tmp, e)));
    drop(f);
    if let Err(e) = written {
        // The old manifest stands; the partial temporary file goes.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, &path) {
        // The old manifest stands; the temporary file goes.
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(FileOp::Create, &path, e));
    }
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

    fn entry(name: &str, offset: u64, padded_len: u64) -> Entry {
        Entry {
            name: name.into(),
            dtype: DType::F32,
            shape: vec![2],
            file: DATA_FILE.into(),
            offset,
            len: 8,
            padded_len,
            crc32c: 7,
            generation: 3,
        }
    }

    #[test]
    fn commit_then_load_and_refuse_garbage() {
        let dir = crate::testutil::scratch_dir();
        assert!(load(dir.path()).unwrap().is_none());
        let m = Manifest {
            format: FORMAT.into(),
            generation: 3,
            tensors: vec![entry("w", 4096, 4096)],
            quarantined: vec![],
        };
        commit(dir.path(), &m).unwrap();
        assert!(!dir.path().join(MANIFEST_TMP).exists());
        assert_eq!(load(dir.path()).unwrap().unwrap().tensors, m.tensors);
        // A leftover temporary file of a failed commit is replaced.
        std::fs::write(dir.path().join(MANIFEST_TMP), "partial").unwrap();
        commit(dir.path(), &m).unwrap();
        std::fs::write(dir.path().join(MANIFEST), "{").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("manifest.json") && err.contains("not a manifest"),
            "{err}"
        );
    }

    /// A symlink planted as the temporary manifest or the manifest: the commit and the load
    /// refuse it, naming the path, and its target is unchanged.
    #[test]
    fn symlinked_manifest_files_are_refused_and_targets_untouched() {
        let dir = crate::testutil::scratch_dir();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let m = Manifest {
            format: FORMAT.into(),
            ..Manifest::default()
        };
        std::os::unix::fs::symlink(&victim, dir.path().join(MANIFEST_TMP)).unwrap();
        let err = commit(dir.path(), &m).unwrap_err().to_string();
        assert!(
            err.contains(MANIFEST_TMP) && err.contains("symbolic link"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join(MANIFEST_TMP)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(MANIFEST)).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(MANIFEST) && err.contains("symbolic link"),
            "{err}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn entries_that_are_not_records_are_quarantined_not_fatal() {
        let text = r#"{"format": "gdswap.swap.v1", "generation": 4, "tensors": [
            {"name": "ok", "dtype": "f32", "shape": [2], "file": "data.bin", "offset": 0,
             "len": 8, "padded_len": 4096, "crc32c": 1, "generation": 1},
            {"name": "neg", "dtype": "f32", "shape": [2], "file": "data.bin", "offset": -1,
             "len": 8, "padded_len": 4096, "crc32c": 1, "generation": 1},
            17]}"#;
        let l = parse(Path::new("m"), text).unwrap();
        assert_eq!(l.tensors.len(), 1);
        assert_eq!(l.quarantined.len(), 2);
        assert_eq!(l.quarantined[0].name.as_deref(), Some("neg"));
        assert!(l.quarantined[0].reason.contains("not a tensor record"));
    }

    #[test]
    fn check_entries_quarantines_each_kind_of_bad_entry_and_keeps_the_rest() {
        let file_len = 64 << 10;
        let mut wrapping = entry("wraps", u64::MAX - 4095, 8192);
        wrapping.offset = (u64::MAX / 4096) * 4096; // aligned, end past 2^64
        let mut long = entry("long", 8192, 4096);
        long.len = 8192;
        let mut shape = entry("shape", 12288, 4096);
        shape.shape = vec![3];
        let mut future = entry("future", 16384, 4096);
        future.generation = 4;
        let mut other_file = entry("elsewhere", 20480, 4096);
        other_file.file = "../x".into();
        let entries = vec![
            entry("good", 0, 4096),
            wrapping,
            entry("zero", 4096, 0),
            long,
            shape,
            future,
            other_file,
            entry("misaligned", 24576 + 512, 4096),
            entry("past_end", file_len, 4096),
            entry("dup", 28672, 4096),
            entry("dup", 32768, 4096),
            entry("over_a", 36864, 12288),
            entry("over_b", 40960, 4096),
            entry("over_c", 40960 + 4096, 8192),
            entry("fine", 57344, 4096),
            entry("", 61440, 4096),
        ];
        let (good, q) = check_entries(entries, 3, 4096, file_len);
        assert_eq!(good.keys().collect::<Vec<_>>(), ["fine", "good"]);
        let reason = |n: &str| {
            q.iter()
                .filter(|x| x.name.as_deref() == Some(n))
                .map(|x| x.reason.clone())
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert!(reason("wraps").contains("overflows 64 bits"), "{q:?}");
        assert!(reason("zero").contains("padded length 0"));
        assert!(reason("long").contains("exceeds its padded length"));
        assert!(reason("shape").contains("do not make 8 bytes"));
        assert!(reason("future").contains("newer than the manifest"));
        assert!(reason("elsewhere").contains("'../x'"));
        assert!(reason("misaligned").contains("alignment"));
        assert!(reason("past_end").contains("ends past the data file"));
        assert!(reason("dup").contains("more than one entry"));
        for n in ["over_a", "over_b", "over_c"] {
            assert!(reason(n).contains("overlaps"), "{n}: {q:?}");
        }
        assert!(reason("").contains("tensor name"));
        assert_eq!(q.len(), 14);
    }
}
