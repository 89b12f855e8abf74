//! The manifest's commit slots: `manifest.slots`, two fixed-size slots rewritten in place,
//! alternately, each a whole manifest under a CRC-32C, made durable by one fdatasync.
//!
//! Why: a commit through `manifest.json` (temporary file, fsync, rename, fsync of the
//! directory) costs two filesystem journal commits. Traced on the 2-vCPU VM (session 9),
//! with the I/O threads writing the next tensors meanwhile, those two fsyncs took about 20 ms
//! each, a third of the commit thread's time, and the commit thread was the swap-outs'
//! critical path. Rewriting a slot whose blocks were written (and made durable) when the file
//! was created changes no metadata: its fdatasync flushes the data alone (median 6-7 ms
//! against 84-118 ms for the rename commit under the same concurrent O_DIRECT writes).
//!
//! Crash safety: a commit writes the slot that does not hold the newest generation, so the
//! newest durable manifest is never overwritten; a write torn by a crash fails its CRC and
//! the slot is ignored. A reader takes the highest generation among `manifest.json` and the
//! valid slots ([`newest`]). A manifest that does not fit a slot goes through `manifest.json`
//! (always valid on its own, and then of the highest generation), after which the slots file
//! is made again, larger ([`SlotFile::create`]).
//!
//! Layout: slot `i` starts at `i * capacity`; its header is the magic `GDSWPMS1`, the
//! generation (u64 LE), the manifest's byte length (u64 LE) and the CRC-32C (u32 LE) of the
//! generation, the length and the manifest's bytes, then 4 zero bytes; the manifest's JSON
//! follows. The file is `2 * capacity` bytes; the capacity is a multiple of 4 KiB.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, FileOp, Result};
use crate::io::owned::{self, Create};

/// The slots file in a store's directory.
pub const SLOTS: &str = "manifest.slots";
const MAGIC: &[u8; 8] = b"GDSWPMS1";
const HEADER: u64 = 32;
/// The smallest slot (a manifest of a few hundred tensors fits).
const MIN_SLOT: u64 = 64 << 10;
/// The largest slot considered when reading (a manifest beyond it uses `manifest.json`).
const MAX_SLOT: u64 = 1 << 30;

/// A valid slot's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Which slot (0 or 1).
    pub index: usize,
    pub generation: u64,
    /// The manifest's JSON.
    pub text: Vec<u8>,
}

fn crc_of(generation: u64, text: &[u8]) -> u32 {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&generation.to_le_bytes());
    head[8..].copy_from_slice(&(text.len() as u64).to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&head), text)
}

/// The slot's bytes: header, then the manifest.
fn encode(generation: u64, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER as usize + text.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc_of(generation, text).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(text);
    out
}

/// The slot in `bytes` (one slot's worth), if its header and CRC hold.
fn decode(index: usize, bytes: &[u8]) -> Option<Slot> {
    let header = bytes.get(..HEADER as usize)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let generation = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let len = u64::from_le_bytes(header[16..24].try_into().ok()?);
    let crc = u32::from_le_bytes(header[24..28].try_into().ok()?);
    let end = HEADER.checked_add(len)?;
    let text = bytes.get(HEADER as usize..usize::try_from(end).ok()?)?;
    (crc_of(generation, text) == crc).then(|| Slot {
        index,
        generation,
        text: text.to_vec(),
    })
}

/// The open slots file of a store.
#[derive(Debug)]
pub struct SlotFile {
    path: PathBuf,
    file: File,
    capacity: u64,
    /// The slot holding the newest generation written or read (the next commit writes the
    /// other one).
    newest: Option<usize>,
}

impl SlotFile {
    /// Opens `dir/manifest.slots` (never through a symlink; a regular file of this user)
    /// with its valid slots; `None` when there is none.
    pub fn open(dir: &Path) -> Result<Option<(SlotFile, Vec<Slot>)>> {
        let path = dir.join(SLOTS);
        let mut file = match owned::open_store(&path, true, Create::No) {
            Ok(f) => f,
            Err(Error::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let len = file
            .metadata()
            .map_err(|e| Error::file(FileOp::Read, &path, e))?
            .len();
        let capacity = len / 2;
        if len % 2 != 0 || capacity < MIN_SLOT || capacity > MAX_SLOT || capacity % 4096 != 0 {
            // Not a slots file made whole: its size is set once, when it is made, before any
            // slot is written, so this is one a crash interrupted while it was being made
            // (right after a commit through manifest.json, which holds the newest manifest).
            // Nothing in it counts; the next commit makes it again.
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(len as usize);
        (&mut file)
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::file(FileOp::Read, &path, e))?;
        let slots: Vec<Slot> = (0..2)
            .filter_map(|i| {
                decode(
                    i,
                    &bytes[i * capacity as usize..(i + 1) * capacity as usize],
                )
            })
            .collect();
        let newest = slots.iter().max_by_key(|s| s.generation).map(|s| s.index);
        Ok(Some((
            SlotFile {
                path,
                file,
                capacity,
                newest,
            },
            slots,
        )))
    }

    /// Makes `dir/manifest.slots` (exclusively: an existing one is removed first, if it is
    /// this store's own file) with slots that hold a manifest of `text_len` bytes twice over,
    /// every block written and durable, so that rewriting a slot changes no metadata.
    pub fn create(dir: &Path, text_len: usize) -> Result<SlotFile> {
        let path = dir.join(SLOTS);
        let want = (text_len as u64)
            .checked_mul(2)
            .and_then(|n| n.checked_add(HEADER))
            .and_then(|n| n.checked_next_multiple_of(4096))
            .ok_or_else(|| Error::Internal(format!("a manifest of {text_len} bytes")))?;
        let capacity = want.max(MIN_SLOT);
        if capacity > MAX_SLOT {
            return Err(Error::Internal(format!(
                "a manifest of {text_len} bytes is too large for {}",
                path.display()
            )));
        }
        owned::remove_own(dir, SLOTS)?;
        let file = owned::open_store(&path, true, Create::New)?;
        let zeros = vec![0u8; capacity as usize];
        let made = (0..2)
            .try_for_each(|i| file.write_all_at(&zeros, i * capacity))
            .map_err(|e| Error::io(FileOp::Write, &path, 0, 2 * capacity, e))
            .and_then(|()| {
                file.sync_all()
                    .map_err(|e| Error::file(FileOp::Sync, &path, e))
            })
            .and_then(|()| super::manifest::sync_dir(dir));
        if let Err(e) = made {
            owned::remove_created(&path, &file);
            return Err(e);
        }
        Ok(SlotFile {
            path,
            file,
            capacity,
            newest: None,
        })
    }

    /// Whether a manifest of `text_len` bytes fits a slot.
    pub fn fits(&self, text_len: usize) -> bool {
        HEADER
            .checked_add(text_len as u64)
            .is_some_and(|n| n <= self.capacity)
    }

    /// Writes the manifest `text` of `generation` into the slot that does not hold the
    /// newest one, and fdatasyncs it: durable when this returns Ok. On an error the slot may
    /// hold anything (a torn write fails its CRC); the other slot is untouched.
    pub fn write(&mut self, generation: u64, text: &[u8]) -> Result<()> {
        if !self.fits(text.len()) {
            return Err(Error::Internal(format!(
                "a manifest of {} bytes does not fit a slot of {}",
                text.len(),
                self.capacity
            )));
        }
        let index = match self.newest {
            Some(0) => 1,
            _ => 0,
        };
        let offset = index as u64 * self.capacity;
        let bytes = encode(generation, text);
        self.file
            .write_all_at(&bytes, offset)
            .map_err(|e| Error::io(FileOp::Write, &self.path, offset, bytes.len() as u64, e))?;
        self.file
            .sync_data()
            .map_err(|e| Error::file(FileOp::Sync, &self.path, e))?;
        self.newest = Some(index);
        Ok(())
    }
}

/// Which manifest text is the store's: the highest generation among `manifest.json`'s
/// (`json`: its generation) and the valid slots. `None`: `manifest.json` (or nothing).
pub fn newest(json: Option<u64>, slots: &[Slot]) -> Option<&Slot> {
    let best = slots.iter().max_by_key(|s| s.generation)?;
    match json {
        Some(g) if g >= best.generation => None,
        _ => Some(best),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_reads_back_and_any_damage_voids_it() {
        let text = br#"{"format":"gdswap.swap.v2","generation":7,"tensors":[]}"#;
        let mut bytes = encode(7, text);
        bytes.resize(4096, 0);
        assert_eq!(
            decode(1, &bytes),
            Some(Slot {
                index: 1,
                generation: 7,
                text: text.to_vec()
            })
        );
        for at in [0, 9, 17, 25, HEADER as usize + 3] {
            let mut torn = bytes.clone();
            torn[at] ^= 0x40;
            assert_eq!(decode(0, &torn), None, "byte {at} changed");
        }
        // A length past the slot, and an all-zero slot (a fresh file), are no slot.
        let mut long = bytes.clone();
        long[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode(0, &long), None);
        assert_eq!(decode(0, &[0u8; 4096]), None);
    }

    #[test]
    fn the_newest_generation_wins() {
        let slot = |index, generation| Slot {
            index,
            generation,
            text: vec![],
        };
        let slots = [slot(0, 5), slot(1, 6)];
        assert_eq!(newest(None, &slots).map(|s| s.index), Some(1));
        assert_eq!(newest(Some(4), &slots).map(|s| s.index), Some(1));
        assert_eq!(newest(Some(6), &slots), None, "a tie reads manifest.json");
        assert_eq!(newest(Some(9), &slots), None);
        assert_eq!(newest(Some(1), &[]), None);
    }

    #[test]
    fn commits_alternate_and_never_overwrite_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = SlotFile::create(dir.path(), 100).unwrap();
        assert_eq!(f.capacity, MIN_SLOT);
        assert!(f.fits(1000) && !f.fits(MIN_SLOT as usize));
        f.write(1, b"one").unwrap();
        f.write(2, b"two").unwrap();
        f.write(3, b"three").unwrap();
        let (again, slots) = SlotFile::open(dir.path()).unwrap().unwrap();
        let gens: Vec<(usize, u64, Vec<u8>)> = slots
            .iter()
            .map(|s| (s.index, s.generation, s.text.clone()))
            .collect();
        assert_eq!(
            gens,
            vec![(0, 3, b"three".to_vec()), (1, 2, b"two".to_vec())]
        );
        assert_eq!(again.newest, Some(0));
        // A slots file that is not two whole slots (one whose making a crash cut short) holds
        // nothing.
        std::fs::write(dir.path().join(SLOTS), [0u8; 100]).unwrap();
        assert!(SlotFile::open(dir.path()).unwrap().is_none());
        // Made again, larger, for a manifest that outgrew it.
        let big = SlotFile::create(dir.path(), 100_000).unwrap();
        assert!(big.fits(100_000) && big.capacity % 4096 == 0);
    }
}
