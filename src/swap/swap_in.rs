//! Swap-ins and prefetches: [`SwapStore::swap_in`] (and `swap_in_after`, ordered after the
//! caller's GPU work) reads a tensor into the caller's; `swap_in_staged` hands out the staging
//! buffer the read landed in, no copy; `prefetch` starts a read that a later swap-in takes
//! over. Each read is `start_read`'s job on an I/O thread, its checksum checked on the
//! checker thread (host staging); out of device staging, `deliver` then copies the bytes to
//! their destination on the same I/O thread.

use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;

use crate::error::{Error, Result};

use super::buffer::{DeviceSpan, Tensor};
use super::checks::{check_host_order, check_lengths, within};
use super::device_tensor::{Fence, GpuWork};
use super::jobs::{check_read, read_job, unpanicked, ReadStep};
use super::manifest::Entry;
#[cfg(doc)] // linked from `swap_in_staged`'s docs
use super::staged::StagedTensor;
use super::staged::StagedTicket;
use super::staging::Charge;
use super::state::{lock, release_claim, swap_err, OpKind, Shared, State};
use super::store::SwapStore;
use super::threads::Job;
use super::ticket::{Kind, ReadData, ReadOutcome, Ticket};

impl SwapStore {
    /// Like [`SwapStore::swap_in`], without the copy: the ticket gives the staging buffer the
    /// read landed in (a prefetch's, when there is one) as a [`StagedTensor`] with the stored
    /// dtype and shape.
    pub fn swap_in_staged(&self, name: &str) -> Result<StagedTicket> {
        self.check_staged(name)?;
        let (entry, rx, _) = self.read_or_prefetched(name, None)?;
        Ok(StagedTicket::new(
            name,
            rx,
            entry.dtype,
            entry.shape,
            entry.len as usize,
        ))
    }

    /// The read of `name`: its prefetch when there is one, else a new read; `want_len` is
    /// checked against the stored length first.
    fn read_or_prefetched(
        &self,
        name: &str,
        want_len: Option<usize>,
    ) -> Result<(Entry, Receiver<ReadOutcome>, usize)> {
        let mut s = lock(&self.shared.state);
        let check_len = |entry: &Entry| match want_len {
            Some(n) if n as u64 != entry.len => Err(swap_err(
                name,
                format!(
                    "the destination holds {n} bytes, the stored tensor {} ({} {:?})",
                    entry.len,
                    entry.dtype.name(),
                    entry.shape
                ),
            )),
            _ => Ok(()),
        };
        if let Some((pe, _, _)) = s.prefetched.get(name) {
            check_len(pe)?;
            return Ok(s.prefetched.remove(name).expect("just found"));
        }
        if let Some((k, _)) = s.busy.get(name) {
            return Err(swap_err(
                name,
                format!(
                    "a {} is in flight on this tensor; wait for its ticket before the swap-in",
                    k.name()
                ),
            ));
        }
        let entry = s
            .tensors
            .get(name)
            .cloned()
            .ok_or_else(|| missing(&s, name))?;
        check_len(&entry)?;
        let id = self.claim(&mut s, name, OpKind::SwapIn)?;
        drop(s);
        let (rx, thread) = self.start_read(name, id, &entry, OpKind::SwapIn)?;
        Ok((entry, rx, thread))
    }

    /// Starts reading `name` into `dest`, which must have the tensor's byte length; on
    /// completion `dest` also takes the stored dtype and shape. Uses a prefetch of `name`
    /// when there is one. A device tensor is written once the work queued before the call on
    /// its context's legacy default stream (which may still read it) has completed
    /// ([`GpuWork::LegacyStream`]; see [`SwapStore::swap_in_after`]).
    pub fn swap_in<'a>(&self, name: &str, dest: &'a mut dyn Tensor) -> Result<Ticket<'a>> {
        self.swap_in_after(name, dest, GpuWork::default())
    }

    /// [`SwapStore::swap_in`] into a device tensor once the caller's GPU work named by
    /// `after` has completed (the write waits for it on the GPU). Once the ticket has
    /// completed, the bytes are in place for work on any stream. Host destinations take only
    /// the default.
    pub fn swap_in_after<'a>(
        &self,
        name: &str,
        dest: &'a mut dyn Tensor,
        after: GpuWork,
    ) -> Result<Ticket<'a>> {
        let sh = &self.shared;
        // Host bytes first, as in `swap_out`.
        let host_len = dest.host_bytes().map(<[u8]>::len);
        let device_dest = host_len.is_none().then(|| dest.device_memory()).flatten();
        let mut fence = None;
        match (host_len, &device_dest) {
            (Some(n), _) => {
                check_lengths(name, dest, n)?;
                check_host_order(name, after)?;
            }
            (None, Some(span)) => {
                check_lengths(name, dest, span.len)?;
                self.check_device(name, span.gpu())?;
                fence = Fence::capture(span, after).map_err(|e| within(OpKind::SwapIn, name, e))?;
            }
            (None, None) => {
                return Err(swap_err(
                    name,
                    "the destination exposes neither host bytes nor device memory",
                ))
            }
        }
        // A host destination of device staging gets its bytes through a host copy: booked
        // before anything is read.
        let charge = match (sh.staging.device_staging(), &device_dest) {
            (true, None) => Some(
                sh.staging
                    .charge(name, dest.byte_len() as u64, &self.threads)?,
            ),
            _ => None,
        };
        let (entry, rx, thread) = self.read_or_prefetched(name, Some(dest.byte_len()))?;
        let rx = if sh.staging.device_staging() {
            self.deliver(&entry, rx, thread, device_dest.map(|d| (d, fence)), charge)?
        } else {
            rx
        };
        Ok(Ticket::new(
            name,
            Kind::Read {
                rx,
                dest,
                dtype: entry.dtype,
                shape: entry.shape,
            },
        ))
    }

    /// Device staging: a job on the staging's own I/O thread (queued behind the read, so the
    /// read's outcome is there when it runs) copies the bytes into the device tensor `dest`
    /// (once the caller's GPU work up to its fence has completed), or, for a host
    /// destination, into host memory booked by `charge`.
    fn deliver(
        &self,
        entry: &Entry,
        read: Receiver<ReadOutcome>,
        thread: usize,
        dest: Option<(DeviceSpan, Option<Fence>)>,
        charge: Option<Charge>,
    ) -> Result<Receiver<ReadOutcome>> {
        let (tx, rx) = channel();
        let (name, n) = (entry.name.clone(), entry.len as usize);
        let job = Box::new(move || {
            let outcome = read.recv().unwrap_or_else(|_| Err(super::ticket::lost()));
            let delivered = outcome.and_then(|data| match (data, &dest) {
                (ReadData::OnDevice { mut staging }, Some((span, fence))) => staging
                    .copy_to_device(span, fence.as_ref())
                    .map(|()| ReadData::Delivered)
                    .map_err(|e| within(OpKind::SwapIn, &name, e)),
                (ReadData::OnDevice { mut staging }, None) => staging
                    .copy_out(n)
                    .map(|v| ReadData::Copied(v, charge))
                    .map_err(|e| within(OpKind::SwapIn, &name, e)),
                (other, _) => Ok(other),
            });
            let _ = tx.send(delivered);
        });
        self.threads.submit(thread, job)?;
        Ok(rx)
    }

    /// Starts reading `name` into a staging buffer, so that a later `swap_in` only copies.
    /// A swap-out or remove of `name` drops the prefetch.
    pub fn prefetch(&self, name: &str) -> Result<()> {
        let sh = &self.shared;
        let mut s = lock(&sh.state);
        if s.prefetched.contains_key(name) {
            return Ok(());
        }
        let entry = s
            .tensors
            .get(name)
            .cloned()
            .ok_or_else(|| missing(&s, name))?;
        let id = self.claim(&mut s, name, OpKind::Prefetch)?;
        drop(s);
        let (rx, thread) = self.start_read(name, id, &entry, OpKind::Prefetch)?;
        let mut s = lock(&sh.state);
        // The read may already have ended and released the tensor: if another operation has
        // claimed it since (a swap-out, whose new version this read does not hold), or a
        // newer version was committed, the prefetch is stale and is dropped.
        let claimed_by_other = s.busy.get(name).is_some_and(|&(_, other)| other != id);
        let same_version = s
            .tensors
            .get(name)
            .is_some_and(|e| e.generation == entry.generation && e.offset == entry.offset);
        if !claimed_by_other && same_version {
            s.prefetched.insert(name.to_string(), (entry, rx, thread));
        }
        Ok(())
    }

    fn start_read(
        &self,
        name: &str,
        id: u64,
        entry: &Entry,
        kind: OpKind,
    ) -> Result<(Receiver<ReadOutcome>, usize)> {
        let sh = &self.shared;
        let staging = match sh.staging.acquire(name, entry.padded_len, &self.threads) {
            Ok(s) => s,
            Err(e) => {
                release_claim(sh, name, id);
                return Err(e);
            }
        };
        let (tx, rx) = channel();
        let shared = Arc::clone(sh);
        let entry = entry.clone();
        let thread = staging.thread();
        let checker = self.checker.sender(0);
        let job = Box::new(move || {
            let finish = move |shared: &Shared, entry: &Entry, r: Result<ReadData>| {
                release_claim(shared, &entry.name, id);
                let _ = tx.send(r.map_err(|e| within(kind, &entry.name, e)));
            };
            match unpanicked(|| read_job(&shared, &entry, staging)).unwrap_or_else(Err) {
                Ok(ReadStep::Check(staging)) => {
                    let check: Job = Box::new(move || {
                        let r =
                            unpanicked(|| check_read(&shared, &entry, staging)).unwrap_or_else(Err);
                        finish(&shared, &entry, r);
                    });
                    // A checker that has stopped (the store is going away): check here.
                    if let Err(std::sync::mpsc::SendError(check)) = checker.send(check) {
                        check();
                    }
                }
                Ok(ReadStep::Done(data)) => finish(&shared, &entry, Ok(data)),
                Err(e) => finish(&shared, &entry, Err(e)),
            }
        });
        if let Err(e) = self.threads.submit(thread, job) {
            release_claim(sh, name, id);
            return Err(e);
        }
        Ok((rx, thread))
    }
}

/// The error for a name the store does not hold: quarantined, or unknown.
fn missing(s: &State, name: &str) -> Error {
    match s
        .quarantined
        .iter()
        .find(|q| q.name.as_deref() == Some(name))
    {
        Some(q) => swap_err(
            name,
            format!(
                "quarantined when the store was opened ({}): not readable; see SwapStore::quarantined",
                q.reason
            ),
        ),
        None => swap_err(name, "no such tensor in the store"),
    }
}
