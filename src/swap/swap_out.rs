//! Swap-outs: [`SwapStore::swap_out`] (and `swap_out_after`, ordered after the caller's GPU
//! work) copies a tensor into staging; `swap_out_staged` writes a staged tensor's own buffer
//! (lent by `staged_zeros`), no copy. Both end in `submit_write`, which places the new
//! version in free space and queues its write on an I/O thread; the commit thread then makes
//! it durable and commits it (`committer.rs`).

use std::sync::mpsc::channel;
use std::sync::Arc;

#[cfg(doc)] // linked from `swap_out_staged`'s docs
use crate::error::Error;
use crate::error::Result;

use super::buffer::Tensor;
use super::checks::{check_host_order, check_lengths, within};
use super::committer::Written;
use super::device_tensor::{Fence, GpuWork};
use super::jobs::{unpanicked, write_job};
use super::manifest::{self, Entry, DATA_FILE};
use super::staged::{Refused, StagedTensor};
use super::staging::Staging;
use super::state::{lock, release_claim, swap_err, OpKind, Pending, Shared, Source};
use super::store::SwapStore;
use super::ticket::{Kind, Ticket};

impl SwapStore {
    fn padded(&self, name: &str, len: u64) -> Result<u64> {
        len.checked_next_multiple_of(self.shared.align)
            .map(|p| p.max(self.shared.align))
            .ok_or_else(|| swap_err(name, format!("{len} bytes overflow the padded length")))
    }

    /// Starts writing `tensor` as the new version of `name`. The version becomes the one a
    /// swap-in returns (and the one a crash leaves) only when the ticket completes with `Ok`;
    /// until then the previous version stays intact on disk. A device tensor is copied once
    /// the work queued before the call on its context's legacy default stream has completed
    /// ([`GpuWork::LegacyStream`]; see [`SwapStore::swap_out_after`]).
    pub fn swap_out(&self, name: &str, tensor: &dyn Tensor) -> Result<Ticket<'static>> {
        self.swap_out_after(name, tensor, GpuWork::default())
    }

    /// [`SwapStore::swap_out`] of a device tensor once the caller's GPU work named by `after`
    /// has completed (it is copied on the GPU after it: the call does not wait for that work
    /// on the CPU beyond waiting for the copy, as `swap_out` always does). Host tensors take
    /// only the default, `GpuWork::LegacyStream`, which orders nothing for them.
    pub fn swap_out_after(
        &self,
        name: &str,
        tensor: &dyn Tensor,
        after: GpuWork,
    ) -> Result<Ticket<'static>> {
        check_name(name)?;
        let sh = &self.shared;
        let len = tensor.byte_len() as u64;
        let source = match (tensor.host_bytes(), tensor.device_memory()) {
            (Some(b), _) => {
                check_lengths(name, tensor, b.len())?;
                check_host_order(name, after)?;
                Source::Host(b)
            }
            (None, Some(span)) => {
                check_lengths(name, tensor, span.len)?;
                self.check_device(name, span.gpu())?;
                let fence =
                    Fence::capture(&span, after).map_err(|e| within(OpKind::SwapOut, name, e))?;
                Source::Device(span, fence)
            }
            (None, None) => {
                return Err(swap_err(
                    name,
                    "the tensor exposes neither host bytes nor device memory",
                ))
            }
        };
        let padded = self.padded(name, len)?;
        let id = {
            let mut s = lock(&sh.state);
            let id = self.claim(&mut s, name, OpKind::SwapOut)?;
            s.prefetched.remove(name); // about to be stale
            id
        };
        let unclaim = |sh: &Shared| release_claim(sh, name, id);
        let mut staging = match sh.staging.acquire(name, padded, &self.threads) {
            Ok(s) => s,
            Err(e) => {
                unclaim(sh);
                return Err(e);
            }
        };
        let mut snapshot = None;
        // Host staging is filled here; a device backend's is filled on its I/O thread, from
        // a copy (the caller's host tensor is not borrowed past this call) or, for a device
        // tensor, straight from its memory (see `DeviceTensor`).
        let (crc, pending) = match source {
            Source::Host(src) => {
                if staging.host_reachable() {
                    if let Err(e) = staging.fill(&mut |b: &mut [u8]| {
                        b[..src.len()].copy_from_slice(src);
                        b[src.len()..].fill(0);
                    }) {
                        unclaim(sh);
                        return Err(within(OpKind::SwapOut, name, e));
                    }
                    // Only the copy on the caller's thread: the checksum of the copy is taken
                    // on the I/O thread as its blocks are written.
                    (0, Pending::Checksum)
                } else {
                    let crc = crc32c::crc32c(src);
                    let charge = match sh.staging.charge(name, len, &self.threads) {
                        Ok(c) => c,
                        Err(e) => {
                            unclaim(sh);
                            return Err(e);
                        }
                    };
                    (crc, Pending::Bytes(src.to_vec(), charge))
                }
            }
            // Checksummed on the I/O thread, from the copy in staging.
            Source::Device(span, fence) => {
                let (tx, rx) = channel();
                snapshot = Some(rx);
                (0, Pending::Device(span, fence, tx))
            }
        };
        let layout = (tensor.dtype(), tensor.shape().to_vec(), len);
        let ticket = self.submit_write(name, id, layout, crc, staging, pending)?;
        if let Some(copied) = snapshot {
            // Returns when the device copy is done or the job ended without one (its error is
            // the ticket's).
            let _ = copied.recv();
        }
        Ok(ticket)
    }

    /// The common end of a swap-out: claimed as `id`, the bytes in (or headed for)
    /// `staging`; places the new version in free space (the tensor's spare extent when it
    /// fits) and queues the write on the staging's I/O thread.
    fn submit_write(
        &self,
        name: &str,
        id: u64,
        (dtype, shape, len): (super::DType, Vec<usize>, u64),
        crc: u32,
        staging: Staging,
        pending: Pending,
    ) -> Result<Ticket<'static>> {
        let sh = &self.shared;
        let padded = staging.len();
        let offset = {
            let mut s = lock(&sh.state);
            match s.spares.remove(name) {
                // A spare below the floor held a version the manifest had at open, whose bytes
                // a quarantined entry may claim: never written again (`free` drops it).
                Some((off, l)) if l == padded && off >= s.extents.floor() => Ok(off),
                spare => {
                    if let Some((off, l)) = spare {
                        s.extents.free(off, l);
                    }
                    s.extents.alloc(padded)
                }
            }
        };
        let offset = match offset {
            Ok(o) => o,
            Err(e) => {
                release_claim(sh, name, id);
                return Err(within(OpKind::SwapOut, name, e));
            }
        };
        let entry = Entry {
            name: name.to_string(),
            dtype,
            shape,
            file: DATA_FILE.into(),
            offset,
            len,
            padded_len: padded,
            crc32c: crc,
            generation: 0,
        };
        let (tx, rx) = channel();
        let shared = Arc::clone(sh);
        let owned = name.to_string();
        let thread = staging.thread();
        let committer = self.committer.handle();
        // Counted as writing until it has handed over (or failed): the commit thread waits
        // for it before flushing a batch begun after this point.
        let under_way = sh.writing.begin_until_dropped();
        let job = Box::new(move || {
            // Ends the write when this job ends, however it ends (after the hand-over below).
            let _under_way = under_way;
            let (offset, padded) = (entry.offset, entry.padded_len);
            let written = unpanicked(|| write_job(&shared, entry, staging, pending))
                .unwrap_or_else(|e| {
                    // A bug: the new extent is free again (the manifest never took it).
                    lock(&shared.state).extents.free(offset, padded);
                    Err(e)
                });
            match written {
                // Durable and committed on the commit thread, which then releases the claim
                // and completes the ticket; this thread goes on with its next job.
                Ok(entry) => committer.hand_over(Written {
                    shared,
                    entry,
                    claim: id,
                    done: Box::new(move |r: Result<()>| {
                        let _ = tx.send(r.map_err(|e| within(OpKind::SwapOut, &owned, e)));
                    }),
                }),
                Err(e) => {
                    release_claim(&shared, &owned, id);
                    let _ = tx.send(Err(within(OpKind::SwapOut, &owned, e)));
                }
            }
        });
        if let Err(e) = self.threads.submit(thread, job) {
            // The job (and its staging and write under way) was dropped unrun: give back the
            // extent.
            lock(&sh.state).extents.free(offset, padded);
            release_claim(sh, name, id);
            return Err(e);
        }
        Ok(Ticket::new(name, Kind::Write(rx)))
    }

    /// A zero-filled [`StagedTensor`] of `dtype` and `shape`: one of the store's staging
    /// buffers (host backends), to fill and swap out with [`SwapStore::swap_out_staged`]
    /// without a copy. Counts against the staging budget while held.
    pub fn staged_zeros(&self, dtype: super::DType, shape: &[usize]) -> Result<StagedTensor> {
        let len = super::buffer::byte_len(dtype, shape)?;
        let what = format!("(new staged {} {shape:?})", dtype.name());
        self.check_staged(&what)?;
        let mut staging =
            self.shared
                .staging
                .acquire(&what, self.padded(&what, len as u64)?, &self.threads)?;
        staging
            .host_bytes_mut()
            .expect("host staging has host bytes")
            .fill(0);
        Ok(StagedTensor::new(staging, dtype, shape.to_vec(), len))
    }

    /// Like [`SwapStore::swap_out`], without the copy: writes `tensor`'s own buffer (its
    /// checksum computed on the I/O thread) and returns the buffer to the pool afterwards.
    /// A refusal (a bad name, a tensor of another store, an operation in flight on `name`)
    /// hands the tensor back inside the [`Refused`] error, so its contents are not lost; `?`
    /// turns that into a plain [`Error`].
    pub fn swap_out_staged(
        &self,
        name: &str,
        mut tensor: StagedTensor,
    ) -> std::result::Result<Ticket<'static>, Refused> {
        let refuse = |error, tensor| {
            Err(Refused {
                error,
                tensor: Some(Box::new(tensor)),
            })
        };
        if let Err(e) = check_name(name) {
            return refuse(e, tensor);
        }
        if !tensor.staging.belongs_to(&self.shared.staging) {
            let e = swap_err(
                name,
                "the staged tensor belongs to another store (swap it out there, or copy it)",
            );
            return refuse(e, tensor);
        }
        let id = {
            let mut s = lock(&self.shared.state);
            match self.claim(&mut s, name, OpKind::SwapOut) {
                Ok(id) => {
                    s.prefetched.remove(name);
                    id
                }
                Err(e) => return refuse(e, tensor),
            }
        };
        // The padding after the bytes may hold an earlier, longer tensor's tail.
        let len = tensor.len();
        tensor.staging.host_bytes_mut().expect("host staging")[len..].fill(0);
        let layout = (tensor.dtype(), tensor.shape().to_vec(), len as u64);
        // Past this point only a store whose I/O threads are gone can fail, and the job that
        // owns the buffer is dropped with it.
        self.submit_write(name, id, layout, 0, tensor.staging, Pending::Checksum)
            .map_err(Refused::lost)
    }
}

/// Names are keys in a JSON manifest: any text, but not empty and not absurdly long.
fn check_name(name: &str) -> Result<()> {
    match manifest::name_problem(name) {
        Some(p) => Err(swap_err(name, p)),
        None => Ok(()),
    }
}
