//! Tickets: the handle of a swap in flight, to poll or wait on.

use std::sync::mpsc::{Receiver, TryRecvError};

use crate::error::{Error, Result};

use super::buffer::{DType, Tensor};
use super::staging::Staging;

/// What a read job sends back (checksum already verified when the store verifies).
pub(crate) type ReadOutcome = Result<ReadData>;

pub(crate) enum ReadData {
    /// Host staging holding the tensor's bytes (padded); the ticket copies them out.
    Staged(Staging),
    /// The tensor's bytes, copied out of device staging on its I/O thread (booked against
    /// the staging budget until the ticket has copied them).
    Copied(Vec<u8>, Option<super::staging::Charge>),
    /// Device staging holding the bytes: delivered by a job on the staging's I/O thread,
    /// never seen by a ticket.
    OnDevice { staging: Staging },
    /// Already copied into the caller's device tensor on the I/O thread.
    Delivered,
}

pub(crate) enum Kind<'a> {
    Write(Receiver<Result<()>>),
    Read {
        rx: Receiver<ReadOutcome>,
        dest: &'a mut dyn Tensor,
        dtype: DType,
        shape: Vec<usize>,
    },
    Done,
}

/// A swap-out or swap-in in flight. [`Ticket::wait`] blocks until it ends and returns its
/// result; [`Ticket::poll`] says without blocking whether it has ended. A swap-in's bytes land
/// in the caller's host tensor when the ticket completes (in `poll` or `wait`); a device
/// tensor is written on the store's I/O thread before the ticket completes. Dropping a ticket
/// that has not completed waits for it (its result is then lost: call `wait` to see errors).
/// A ticket leaked with `mem::forget` is memory-safe (the store's jobs own everything they
/// touch), but the staging its read holds stays booked against the budget for good.
#[must_use = "a ticket's result says whether the swap happened: wait on it"]
pub struct Ticket<'a> {
    name: String,
    kind: Kind<'a>,
    outcome: Option<Result<()>>,
}

/// The error of a job that ended without sending its result (a bug: jobs always send).
pub(crate) fn lost() -> Error {
    Error::Internal(
        "internal error: a swap I/O thread ended without a result (please report it)".into(),
    )
}

impl<'a> Ticket<'a> {
    pub(crate) fn new(name: &str, kind: Kind<'a>) -> Ticket<'a> {
        Ticket {
            name: name.to_string(),
            kind,
            outcome: None,
        }
    }

    /// The tensor it moves.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once the operation has ended (then `wait` returns at once).
    pub fn poll(&mut self) -> bool {
        if self.outcome.is_some() {
            return true;
        }
        let got = match &self.kind {
            Kind::Write(rx) => match rx.try_recv() {
                Ok(r) => Some(Received::Write(r)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Received::Write(Err(lost()))),
            },
            Kind::Read { rx, .. } => match rx.try_recv() {
                Ok(r) => Some(Received::Read(r)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Received::Read(Err(lost()))),
            },
            Kind::Done => return true,
        };
        match got {
            Some(r) => {
                self.complete(r);
                true
            }
            None => false,
        }
    }

    /// Blocks until the operation ends; its result.
    pub fn wait(mut self) -> Result<()> {
        self.block();
        self.outcome.take().unwrap_or_else(|| Err(lost()))
    }

    fn block(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        let got = match &self.kind {
            Kind::Write(rx) => Received::Write(rx.recv().unwrap_or_else(|_| Err(lost()))),
            Kind::Read { rx, .. } => Received::Read(rx.recv().unwrap_or_else(|_| Err(lost()))),
            Kind::Done => return,
        };
        self.complete(got);
    }

    fn complete(&mut self, got: Received) {
        let kind = std::mem::replace(&mut self.kind, Kind::Done);
        let outcome = match (got, kind) {
            (Received::Write(r), _) => r,
            (
                Received::Read(Ok(data)),
                Kind::Read {
                    dest, dtype, shape, ..
                },
            ) => {
                let copied = match (data, dest.host_bytes_mut()) {
                    (ReadData::Delivered, _) => Ok(()),
                    (ReadData::Staged(mut staging), Some(out)) => {
                        let n = out.len();
                        staging.inspect(&mut |b: &[u8]| {
                            out.copy_from_slice(&b[..n]);
                            Ok(())
                        })
                    }
                    (ReadData::Copied(v, _charge), Some(out)) => {
                        let n = out.len();
                        out.copy_from_slice(&v[..n]);
                        Ok(())
                    }
                    _ => Err(lost()),
                };
                if copied.is_ok() {
                    dest.set_layout(dtype, &shape);
                }
                copied
            }
            (Received::Read(Err(e)), _) => Err(e),
            (Received::Read(Ok(_)), _) => Err(lost()),
        };
        self.outcome = Some(outcome);
    }
}

impl std::fmt::Debug for Ticket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (&self.kind, &self.outcome) {
            (Kind::Write(_), _) => "swap-out in flight",
            (Kind::Read { .. }, _) => "swap-in in flight",
            (Kind::Done, Some(Ok(()))) => "done",
            (Kind::Done, Some(Err(_))) => "failed",
            (Kind::Done, None) => "result taken",
        };
        write!(f, "Ticket({:?}, {what})", self.name)
    }
}

enum Received {
    Write(Result<()>),
    Read(ReadOutcome),
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.block();
    }
}
