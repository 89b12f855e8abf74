//! Changes to the store that write no tensor: [`SwapStore::remove`] (one tensor, its space
//! reused) and [`SwapStore::forget_quarantined`] (the entries refused at open). Each is one
//! manifest commit, durable before it returns.

use crate::error::{Error, Result};

use super::checks::within;
use super::jobs::commit_change;
use super::manifest::{self, MANIFEST};
use super::state::{lock, release_claim, snapshot_of, swap_err, OpKind};
use super::store::SwapStore;

impl SwapStore {
    /// Drops the quarantined entries from the manifest (durably); returns how many. Their
    /// space is reused only by a later open of the store.
    pub fn forget_quarantined(&self) -> Result<usize> {
        let sh = &self.shared;
        let _commit = lock(&sh.commit);
        let (gone, snapshot) = {
            let mut s = lock(&sh.state);
            // A commit bumps the generation, as every commit does ("Bumped by every commit").
            s.generation = s.generation.checked_add(1).ok_or_else(|| Error::BadFile {
                role: crate::error::FileRole::SwapStore,
                path: sh.dir.join(MANIFEST),
                message: "its generation is the largest there is: no change can be committed"
                    .into(),
            })?;
            let gone = std::mem::take(&mut s.quarantined);
            (gone, snapshot_of(&s, s.generation))
        };
        match manifest::commit(&sh.dir, &snapshot) {
            Ok(()) => Ok(gone.len()),
            Err(e) => {
                lock(&sh.state).quarantined = gone;
                Err(e)
            }
        }
    }

    /// Removes `name` (durably, before returning); its space is reused.
    pub fn remove(&self, name: &str) -> Result<()> {
        let sh = &self.shared;
        let id = {
            let mut s = lock(&sh.state);
            let id = self.claim(&mut s, name, OpKind::Remove)?;
            if !s.tensors.contains_key(name) {
                s.busy.remove(name);
                return Err(swap_err(name, "no such tensor in the store"));
            }
            s.prefetched.remove(name);
            if let Some((off, l)) = s.spares.remove(name) {
                s.extents.free(off, l);
            }
            id
        };
        let r = commit_change(sh, name, None);
        release_claim(sh, name, id);
        r.map_err(|e| within(OpKind::Remove, name, e))
    }
}
