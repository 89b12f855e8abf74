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
    /// Free extents inside `[0, end)`: offset -> length, never touching each other.
    free: BTreeMap<u64, u64>,
    /// Past the last extent in use or free: where the file grows.
    end: u64,
}

impl Extents {
    /// Rebuilds the free list from the extents the manifest uses. Overlapping extents mean a
    /// corrupt manifest and are refused.
    pub fn from_used(mut used: Vec<(u64, u64, String)>) -> Result<Extents> {
        used.sort_by_key(|u| u.0);
        let mut ex = Extents::default();
        let mut prev: Option<&(u64, u64, String)> = None;
        for u in &used {
            if let Some(p) = prev {
                if u.0 < p.0 + p.1 {
                    return Err(Error::Resources(format!(
                        "swap manifest: tensors '{}' and '{}' overlap in the data file (offset {})",
                        p.2, u.2, u.0
                    )));
                }
            }
            if u.0 > ex.end {
                ex.free.insert(ex.end, u.0 - ex.end);
            }
            ex.end = u.0 + u.1;
            prev = Some(u);
        }
        Ok(ex)
    }

    /// Where the file's used or free space ends.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes free below `end`.
    #[cfg(test)]
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }

    /// Takes `len` bytes: the smallest free extent that fits (lowest offset among equals),
    /// else at the end.
    pub fn alloc(&mut self, len: u64) -> u64 {
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
                    self.free.insert(off + len, l - len);
                }
                off
            }
            None => {
                let off = self.end;
                self.end += len;
                off
            }
        }
    }

    /// Gives `[off, off + len)` back, merging with its free neighbours; space at the end
    /// shrinks `end`.
    pub fn free(&mut self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let (mut start, mut l) = (off, len);
        if let Some((&po, &pl)) = self.free.range(..off).next_back() {
            if po + pl == off {
                self.free.remove(&po);
                start = po;
                l += pl;
            }
        }
        if let Some(&nl) = self.free.get(&(off + len)) {
            self.free.remove(&(off + len));
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
        let a = e.alloc(4096);
        let b = e.alloc(8192);
        let c = e.alloc(4096);
        let d = e.alloc(4096);
        assert_eq!((a, b, c, d, e.end()), (0, 4096, 12288, 16384, 20480));
        e.free(d, 4096);
        assert_eq!(e.end(), 16384);
        e.free(b, 8192);
        e.free(a, 4096);
        // Best fit: the 4 KiB hole at 0, not the first 8 KiB one.
        assert_eq!(e.alloc(4096), 0);
        assert_eq!(e.alloc(4096), 4096);
        e.free(4096, 4096);
        e.free(a, 4096);
        assert_eq!(e.free_bytes(), 12288);
        e.free(c, 4096);
        assert_eq!((e.end(), e.free_bytes()), (0, 0));
    }

    #[test]
    fn repeated_swaps_alternate_between_two_extents() {
        let mut e = Extents::default();
        let mut cur = e.alloc(8192);
        for _ in 0..100 {
            let new = e.alloc(8192);
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
}
