//! Space in the store's data file: extents handed out best-fit from a free list, the file
//! growing only when no free extent is big enough.
//!
//! A swap-out always writes to a fresh extent and frees the tensor's previous one only after
//! the manifest that stops referring to it is durable, so the last good copy is never
//! overwritten. The store keeps that previous extent as the tensor's *spare* and writes the
//! next version of the same padded size there: repeated swaps of one tensor alternate between
//! two extents, so the file holds at most twice the live tensors (plus space freed by
//! removals and size changes, which the free list hands out again).

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Free and used space of the data file, in bytes (every extent a multiple of the alignment).
#[derive(Debug, Default)]
pub struct Extents {
    /// Free extents inside `[floor, end)`: offset -> length, never touching each other.
    free: BTreeMap<u64, u64>,
    /// Past the last extent in use or free: where the file grows.
    end: u64,
    /// Space below this offset is never handed out again (see [`Extents::reserve_below`]).
    floor: u64,
}

fn overflow(what: &str) -> Error {
    Error::CorruptStore(format!(
        "swap store: {what} overflows 64 bits (a corrupt manifest or a bug)"
    ))
}

impl Extents {
    /// Rebuilds the free list from the extents `(offset, length, name)` the manifest uses.
    /// Overlapping extents and extents whose end overflows mean a corrupt manifest and are
    /// refused (the store checks its entries before, see `manifest::check_entries`).
    pub fn from_used(mut used: Vec<(u64, u64, String)>) -> Result<Extents> {
        used.sort_by_key(|u| u.0);
        let mut ex = Extents::default();
        let mut prev: Option<&(u64, u64, String)> = None;
        for u in &used {
            let u_end =
                u.0.checked_add(u.1)
                    .ok_or_else(|| overflow(&format!("the extent of tensor '{}'", u.2)))?;
            if let Some(p) = prev {
                if u.0 < ex.end {
                    return Err(Error::CorruptStore(format!(
                        "swap manifest: tensors '{}' and '{}' overlap in the data file (offset {})",
                        p.2, u.2, u.0
                    )));
                }
            }
            if u.0 > ex.end {
                ex.free.insert(ex.end, u.0 - ex.end);
            }
            ex.end = u_end;
            prev = Some(u);
        }
        Ok(ex)
    }

    /// Where the file's used or free space ends.
    #[cfg(test)]
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Space below this offset is never handed out or reused (see `reserve_below`).
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Never hands out space below `floor` again, and grows the file only past it: the bytes
    /// of a quarantined manifest entry (whose extent cannot be trusted) stay as they are.
    /// Space freed below it is forgotten (the file is not compacted).
    pub fn reserve_below(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
        self.free.retain(|&o, _| o >= floor);
        self.end = self.end.max(floor);
    }

    /// Bytes free below `end`.
    #[cfg(test)]
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }

    /// Takes `len` bytes: the smallest free extent that fits (lowest offset among equals),
    /// else at the end; an error when the end would pass 2^64.
    pub fn alloc(&mut self, len: u64) -> Result<u64> {
        let hit = self
            .free
            .iter()
            .filter(|(_, &l)| l >= len)
            .min_by_key(|(&o, &l)| (l, o))
            .map(|(&o, &l)| (o, l));
        match hit {
            Some((off, l)) => {
                self.free.remove(&off);
                if l > len {
                    // off + l was checked when the extent was made.
                    self.free.insert(off + len, l - len);
                }
                Ok(off)
            }
            None => {
                let off = self.end;
                self.end = off
                    .checked_add(len)
                    .ok_or_else(|| overflow("the data file's length"))?;
                Ok(off)
            }
        }
    }

    /// Gives `[off, off + len)` back, merging with its free neighbours; space at the end
    /// shrinks `end` (the data file itself keeps its length). Space below the floor is
    /// not handed out again.
    pub fn free(&mut self, off: u64, len: u64) {
        if len == 0 || off < self.floor {
            return;
        }
        let Some(ext_end) = off.checked_add(len) else {
            return;
        };
        let (mut start, mut l) = (off, len);
        if let Some((&po, &pl)) = self.free.range(..off).next_back() {
            if po + pl == off {
                self.free.remove(&po);
                start = po;
                l += pl;
            }
        }
        if let Some(&nl) = self.free.get(&ext_end) {
            self.free.remove(&ext_end);
            l += nl;
        }
        if start + l == self.end {
            self.end = start;
        } else {
            self.free.insert(start, l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_merge_and_shrink() {
        let mut e = Extents::default();
        let a = e.alloc(4096).unwrap();
        let b = e.alloc(8192).unwrap();
        let c = e.alloc(4096).unwrap();
        let d = e.alloc(4096).unwrap();
        assert_eq!((a, b, c, d, e.end()), (0, 4096, 12288, 16384, 20480));
        e.free(d, 4096);
        assert_eq!(e.end(), 16384);
        e.free(b, 8192);
        e.free(a, 4096);
        // Best fit: the 4 KiB hole at 0, not the first 8 KiB one.
        assert_eq!(e.alloc(4096).unwrap(), 0);
        assert_eq!(e.alloc(4096).unwrap(), 4096);
        e.free(4096, 4096);
        e.free(a, 4096);
        assert_eq!(e.free_bytes(), 12288);
        e.free(c, 4096);
        assert_eq!((e.end(), e.free_bytes()), (0, 0));
    }

    #[test]
    fn repeated_swaps_alternate_between_two_extents() {
        let mut e = Extents::default();
        let mut cur = e.alloc(8192).unwrap();
        for _ in 0..100 {
            let new = e.alloc(8192).unwrap();
            e.free(cur, 8192);
            cur = new;
            assert!(e.end() <= 16384);
        }
    }

    #[test]
    fn rebuild_from_manifest_finds_gaps_and_overlaps() {
        let e = Extents::from_used(vec![(8192, 4096, "b".into()), (0, 4096, "a".into())]).unwrap();
        assert_eq!((e.end(), e.free_bytes()), (12288, 4096));
        let err =
            Extents::from_used(vec![(0, 8192, "a".into()), (4096, 4096, "b".into())]).unwrap_err();
        assert!(err.to_string().contains("'a' and 'b' overlap"), "{err}");
    }

    #[test]
    fn overflowing_extents_and_growth_are_errors_not_wraps() {
        // An extent ending past 2^64 (wraps to a small number in release builds).
        let err = Extents::from_used(vec![(u64::MAX - 4095, 8192, "big".into())]).unwrap_err();
        assert!(err.to_string().contains("'big'") && err.to_string().contains("overflows"));
        let mut e = Extents::from_used(vec![(0, u64::MAX - 4095, "a".into())]).unwrap();
        assert!(e.alloc(8192).unwrap_err().to_string().contains("overflows"));
        // The failed allocation changed nothing.
        assert_eq!(e.end(), u64::MAX - 4095);
    }

    #[test]
    fn space_below_the_floor_is_never_handed_out() {
        let mut e = Extents::from_used(vec![(8192, 4096, "b".into())]).unwrap();
        e.reserve_below(20480);
        assert_eq!(e.end(), 20480);
        assert_eq!(e.alloc(4096).unwrap(), 20480);
        e.free(8192, 4096);
        assert_eq!((e.free_bytes(), e.alloc(4096).unwrap()), (0, 24576));
    }
}
