//! The store's I/O jobs, run on its I/O threads: a swap-out's write and manifest commit, a
//! swap-in's read and checksum check.

use crate::error::{Error, FileOp, Result};
use crate::options::Op;
use crate::size::Bytes;

use super::manifest::{self, Entry, MANIFEST};
use super::staging::Staging;
use super::state::swap_err;
use super::state::{lock, snapshot_of, Pending, Shared};
use super::ticket::ReadData;

/// Runs `f`, turning a panic (a bug) into an error, so that a job still releases its claim
/// and reports to its ticket; the staging it held was retired as it unwound.
pub(super) fn unpanicked<T>(f: impl FnOnce() -> T) -> std::result::Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| {
        Error::Internal(
            "internal error: a swap job panicked (please report it); the tensor's last committed version stands".into(),
        )
    })
}

/// The I/O thread's part of a swap-out: fill the staging (when the caller did not), write,
/// checksum; the entry to commit (the commit thread makes it durable and switches the
/// manifest: `committer`).
pub(super) fn write_job(
    sh: &Shared,
    mut entry: Entry,
    mut staging: Staging,
    pending: Pending,
) -> Result<Entry> {
    let (offset, padded) = (entry.offset, entry.padded_len);
    let pending_checksum = matches!(pending, Pending::Device(..) | Pending::Checksum);
    let filled = match pending {
        Pending::Bytes(src, _charge) => staging.fill_pieces(&mut |off, piece| {
            // The tensor's bytes, then zero padding.
            let start = off.min(src.len());
            let n = (src.len() - start).min(piece.len());
            piece[..n].copy_from_slice(&src[start..start + n]);
            piece[n..].fill(0);
        }),
        Pending::Device(span, fence, copied) => {
            let r = staging.copy_from_device(&span, fence.as_ref());
            let _ = copied.send(());
            r
        }
        Pending::Checksum => Ok(()),
    };
    // The checksum, when it is not known yet, is taken during the write (block by block as
    // requests complete, for host staging): the bytes written are the bytes checksummed.
    let transferred = filled.and_then(|()| match pending_checksum {
        true => {
            entry.crc32c = staging.transfer_checksummed(Op::Write, offset, entry.len as usize)?;
            Ok(())
        }
        false => staging.transfer(Op::Write, offset),
    });
    drop(staging);
    if let Err(e) = transferred {
        // Nothing refers to the new extent: it is free again.
        lock(&sh.state).extents.free(offset, padded);
        return Err(e);
    }
    Ok(entry)
}

/// Swap-outs whose bytes are written (each of them complete before this is called): one
/// fdatasync, which therefore covers them all, then one manifest naming them all. One
/// outcome per entry; a failed fdatasync frees their new extents (nothing refers to them), a
/// failed manifest commit keeps them reserved (the disk may hold either manifest).
pub(super) fn commit_written(sh: &Shared, batch: Vec<Entry>) -> Vec<Result<()>> {
    let n = batch.len();
    let each = |e: Error| -> Vec<Result<()>> {
        let mut out: Vec<Result<()>> = (1..n).map(|_| Err(again(&e))).collect();
        out.insert(0, Err(e));
        out
    };
    // After a failed fdatasync no later one proves anything (`Shared::sync_failed`): refused.
    let synced = match sh.sync_failed.get() {
        Some(first) => Err(after_failed_sync(sh, first)),
        None => sh.file.sync_data().map(|_| ()).inspect_err(|e| {
            let _ = sh.sync_failed.set(os_error_of(e));
        }),
    };
    if let Err(e) = synced {
        let mut s = lock(&sh.state);
        for entry in &batch {
            s.extents.free(entry.offset, entry.padded_len);
        }
        return each(e);
    }
    let padded: u64 = batch.iter().map(|e| e.padded_len).sum();
    let changes = batch
        .into_iter()
        .map(|e| (e.name.clone(), Some(e)))
        .collect();
    match commit_changes(sh, changes) {
        Ok(()) => {
            let mut s = lock(&sh.state);
            s.bytes_written = s.bytes_written.saturating_add(padded);
            (0..n).map(|_| Ok(())).collect()
        }
        Err(e) => each(e),
    }
}

/// The error of a swap-out whose commit comes after a failed fdatasync of the data file.
fn after_failed_sync(sh: &Shared, first: &std::io::Error) -> Error {
    Error::File {
        op: FileOp::Sync,
        path: sh.file.path().to_path_buf(),
        hint: " (not committed: an earlier fdatasync of this file failed so; the kernel reports a failed flush only once, so data written before it may be lost although a later fdatasync succeeds: open the store again to go on from its last durable manifest)".into(),
        source: copy_io_error(first),
    }
}

/// Replaces (or with `None` removes) `name`'s record and commits the manifest; frees the old
/// extent only once the manifest that no longer refers to it is durable.
pub(super) fn commit_change(sh: &Shared, name: &str, new: Option<Entry>) -> Result<()> {
    commit_changes(sh, vec![(name.to_string(), new)])
}

/// [`commit_change`] of several tensors (distinct names) in one manifest: each change bumps
/// the generation by one, in order.
fn commit_changes(sh: &Shared, changes: Vec<(String, Option<Entry>)>) -> Result<()> {
    let _commit = lock(&sh.commit);
    let (olds, snapshot) = {
        let mut s = lock(&sh.state);
        let generation = s
            .generation
            .checked_add(changes.len() as u64)
            .ok_or_else(|| Error::BadFile {
                role: crate::error::FileRole::SwapStore,
                path: sh.dir.join(MANIFEST),
                message: format!(
                    "its generation is {}, the largest there is: the manifest is corrupt and no change can be committed; read the tensors out and start over (SwapOptions::discard_existing)",
                    s.generation
                )
                .into(),
            })?;
        let mut olds = Vec::with_capacity(changes.len());
        for (name, new) in &changes {
            s.generation += 1;
            olds.push(match new.clone() {
                Some(mut e) => {
                    e.generation = s.generation;
                    s.tensors.insert(name.clone(), e)
                }
                None => s.tensors.remove(name),
            });
        }
        debug_assert_eq!(s.generation, generation);
        (olds, snapshot_of(&s, generation))
    };
    match manifest::commit(&sh.dir, &snapshot) {
        Ok(()) => {
            let mut s = lock(&sh.state);
            for ((name, new), old) in changes.iter().zip(olds) {
                let Some(o) = old else { continue };
                if new.is_some() {
                    // Kept for the tensor's next version (see `alloc`).
                    if let Some((off, l)) = s.spares.insert(name.clone(), (o.offset, o.padded_len))
                    {
                        s.extents.free(off, l);
                    }
                } else {
                    s.extents.free(o.offset, o.padded_len);
                }
            }
            Ok(())
        }
        Err(e) => {
            // The disk may hold either manifest: keep both extents reserved (the new ones are
            // not freed), and go back to the old records in memory.
            let mut s = lock(&sh.state);
            for ((name, _), old) in changes.iter().zip(olds) {
                match old {
                    Some(o) => {
                        s.tensors.insert(name.clone(), o);
                    }
                    None => {
                        s.tensors.remove(name);
                    }
                }
            }
            Err(e)
        }
    }
}

/// What a swap-in's read leaves for its ticket: the bytes, or host staging whose checksum is
/// still to be checked (on the store's checker thread: `check_read`).
pub(super) enum ReadStep {
    Done(ReadData),
    Check(Staging),
}

/// The I/O thread's part of a swap-in. Host staging with checks on is only read here: its
/// CRC-32C is taken by `check_read` on the checker thread, while this I/O thread moves its
/// next tensor, so the checksum costs the I/O path nothing (taken block by block on the I/O
/// thread, it delayed the refill of the queue after every completion: swap-ins of 8 x 128 MiB
/// ran at 0.78-0.89 of `gdswap run`, without checks at 0.92-1.09). Device staging is read back
/// piece by piece through its pinned memory after the transfer, here.
pub(super) fn read_job(sh: &Shared, entry: &Entry, mut staging: Staging) -> Result<ReadStep> {
    let host_check = sh.opts.verify && staging.host_reachable();
    let crc = match sh.opts.verify && !host_check {
        true => Some(staging.transfer_checksummed(Op::Read, entry.offset, entry.len as usize)?),
        false => staging.transfer(Op::Read, entry.offset).map(|()| None)?,
    };
    {
        let mut s = lock(&sh.state);
        s.bytes_read = s.bytes_read.saturating_add(entry.padded_len);
    }
    if host_check {
        return Ok(ReadStep::Check(staging));
    }
    if let Some(crc) = crc {
        check_crc(sh, entry, crc)?;
    }
    Ok(ReadStep::Done(if staging.host_reachable() {
        ReadData::Staged(staging)
    } else {
        ReadData::OnDevice { staging }
    }))
}

/// The checker thread's part of a swap-in into host staging: the CRC-32C of the bytes read,
/// against the manifest's.
/// The bytes are checked in pieces on several threads at once when there are many: the
/// swap-ins that end last (one per I/O thread) are each checked after their transfer, and
/// their checks are what the caller waits for once the disk is done.
pub(super) fn check_read(sh: &Shared, entry: &Entry, mut staging: Staging) -> Result<ReadData> {
    let len = entry.len as usize;
    let crc = match staging.host_bytes().and_then(|b| b.get(..len)) {
        Some(bytes) => crc32c_parallel(bytes),
        None => staging.checksum(len)?,
    };
    check_crc(sh, entry, crc)?;
    Ok(ReadData::Staged(staging))
}

/// CRC-32C of `bytes`: in one piece per CPU (pieces of at least `MIN_PIECE`), combined in
/// order; a piece whose thread cannot be started is done on this thread.
fn crc32c_parallel(bytes: &[u8]) -> u32 {
    crc32c_in_pieces(
        bytes,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    )
}

fn crc32c_in_pieces(bytes: &[u8], cpus: usize) -> u32 {
    const MIN_PIECE: usize = 16 << 20;
    let pieces = cpus.min(bytes.len() / MIN_PIECE).max(1);
    if pieces == 1 {
        return crc32c::crc32c(bytes);
    }
    let piece = bytes.len().div_ceil(pieces);
    let crcs: Vec<(u32, usize)> = std::thread::scope(|s| {
        let mut chunks = bytes.chunks(piece);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|c| {
                let started = std::thread::Builder::new()
                    .name("gdswap-swap-crc".into())
                    .spawn_scoped(s, move || crc32c::crc32c(c));
                (c, started)
            })
            .collect();
        let mut crcs = vec![(crc32c::crc32c(first), first.len())];
        for (c, started) in others {
            let crc = match started.map(|h| h.join()) {
                Ok(Ok(crc)) => crc,
                // Not started (or, impossibly, panicked): this thread does it.
                _ => crc32c::crc32c(c),
            };
            crcs.push((crc, c.len()));
        }
        crcs
    });
    crcs.into_iter()
        .fold(0, |acc, (crc, n)| crc32c::crc32c_combine(acc, crc, n))
}

fn check_crc(sh: &Shared, entry: &Entry, crc: u32) -> Result<()> {
    if crc == entry.crc32c {
        return Ok(());
    }
    Err(swap_err(
        &entry.name,
        format!(
            "checksum mismatch: the {} read from {} at offset {} have CRC-32C {crc:#010x}, the manifest (generation {}) says {:#010x}; the data on disk is corrupt",
            Bytes(entry.len),
            sh.dir.join(&entry.file).display(),
            entry.offset,
            entry.generation,
            entry.crc32c
        ),
    ))
}

/// The same error again, for each swap-out of a batch that failed as a whole (an fdatasync
/// or manifest commit): errno and path kept where there are.
pub(super) fn again(e: &Error) -> Error {
    match e {
        Error::File {
            op, path, source, ..
        } => Error::file(*op, path.clone(), copy_io_error(source)),
        // The temporary manifest's write (ENOSPC, EIO): its path and offset kept.
        Error::Io {
            op,
            path,
            offset,
            len,
            source,
        } => Error::io(*op, path.clone(), *offset, *len, copy_io_error(source)),
        // A generation at its limit: the manifest named.
        Error::BadFile {
            role,
            path,
            message,
        } => Error::BadFile {
            role: *role,
            path: path.clone(),
            message: message.clone(),
        },
        other => Error::Internal(other.to_string()),
    }
}

/// A copy of `source` (io::Error is not Clone): its errno where it has one, else its kind
/// and text.
fn copy_io_error(source: &std::io::Error) -> std::io::Error {
    match source.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(source.kind(), source.to_string()),
    }
}

/// What the kernel said in `e` (its errno), or, for an error that did not come from it, its
/// text.
fn os_error_of(e: &Error) -> std::io::Error {
    match e {
        Error::File { source, .. } | Error::Io { source, .. } => copy_io_error(source),
        other => std::io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parallel_checksum_is_the_checksum_of_the_whole() {
        // Sizes around the piece size, an odd length, and one below it (one piece).
        for len in [(40 << 20) + 12345, 32 << 20, 16 << 20, 1000] {
            let v: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            for cpus in [1, 2, 3] {
                let want = crc32c::crc32c(&v);
                assert_eq!(crc32c_in_pieces(&v, cpus), want, "{len} bytes, {cpus} CPUs");
            }
            assert_eq!(crc32c_parallel(&v), crc32c::crc32c(&v), "{len} bytes");
        }
    }

    /// The errors a batch's manifest commit fails with (the temporary manifest's write, a
    /// generation at its limit) are repeated for every swap-out of the batch as what they
    /// are: an I/O error with its path and offset, a refusal naming the manifest, not an
    /// internal error (the kind a failure record and a caller go by).
    #[test]
    fn a_batch_error_keeps_its_kind_for_every_swap_out() {
        let errors = [
            Error::io(
                crate::error::FileOp::Write,
                "/x/manifest.json.tmp",
                0,
                812,
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ),
            Error::BadFile {
                role: crate::error::FileRole::SwapStore,
                path: "/x/manifest.json".into(),
                message: "its generation is the largest there is".into(),
            },
        ];
        for e in errors {
            let a = again(&e);
            assert_eq!((a.kind(), a.to_string()), (e.kind(), e.to_string()));
        }
    }

    /// After one fdatasync of the data file failed, no swap-out is committed any more, even
    /// where a later fdatasync would succeed (the kernel reports a failed flush once): each
    /// is refused with the first failure's errno and the way out, its extent is free again,
    /// and the last committed versions stand and read back.
    #[test]
    fn nothing_is_committed_after_a_failed_fdatasync() {
        use crate::swap::{DType, HostTensor, SwapOptions, SwapStore};
        let dir = crate::testutil::scratch_dir();
        let store = SwapStore::open(dir.path(), SwapOptions::default()).unwrap();
        let v: Vec<f32> = (0..3000).map(|i| i as f32).collect();
        let a = HostTensor::from_slice(DType::F32, &v).unwrap();
        store.swap_out("a", &a).unwrap().wait().unwrap();
        let generation = store.generation();
        let failed = Error::file(
            FileOp::Sync,
            dir.path().join("data.bin"),
            std::io::Error::from_raw_os_error(libc::EIO),
        );
        let first = os_error_of(&failed);
        assert_eq!(first.raw_os_error(), Some(libc::EIO));
        store.shared.sync_failed.set(first).unwrap();
        let free_before = format!("{:?}", lock(&store.shared.state).extents);
        let w: Vec<f32> = v.iter().map(|x| x + 1.0).collect();
        let b = HostTensor::from_slice(DType::F32, &w).unwrap();
        for name in ["b", "a"] {
            let err = store
                .swap_out(name, &b)
                .unwrap()
                .wait()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("data.bin")
                    && err.contains("os error 5")
                    && err.contains("earlier fdatasync")
                    && err.contains("open the store again"),
                "{name}: {err}"
            );
        }
        assert_eq!(store.generation(), generation);
        let names: Vec<String> = store.list().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(
            format!("{:?}", lock(&store.shared.state).extents),
            free_before,
            "the refused swap-outs' extents are free again"
        );
        let mut back = HostTensor::zeros(DType::F32, &[3000]).unwrap();
        store.swap_in("a", &mut back).unwrap().wait().unwrap();
        assert_eq!(back.as_slice::<f32>().unwrap(), &v[..]);
    }

    #[test]
    fn a_batch_error_is_repeated_with_its_errno_and_path() {
        let e = Error::file(
            crate::error::FileOp::Sync,
            "/x/data.bin",
            std::io::Error::from_raw_os_error(libc::EIO),
        );
        assert_eq!(again(&e).to_string(), e.to_string());
    }
}
