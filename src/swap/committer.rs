//! The store's commit thread: makes written swap-outs durable and commits them into the
//! manifest, in batches, while the I/O threads go on with the next transfers.
//!
//! A swap-out is durable only after an fdatasync of the data file that *started* after its
//! bytes were written, followed by a manifest commit (temporary file, fsync, rename, fsync of
//! the directory) that names it. Those flushes take milliseconds whatever they carry. Done on
//! the I/O thread, each swap-out would hold its thread through them, and the next transfer
//! queued there would wait. Here an I/O thread hands its written swap-out over and takes its
//! next job; the commit thread takes every swap-out handed over so far as one batch: one
//! fdatasync (started after each of their writes had completed, so it covers them all) and
//! one manifest naming them all. A swap-out's ticket completes, and its claim on the tensor
//! is released, only when its batch has been committed (or has failed).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};

use super::jobs::{commit_written, unpanicked};
use super::manifest::Entry;
use super::state::{release_claim, Shared};

/// A swap-out whose bytes are written: what the commit thread needs to finish it.
pub(super) struct Written {
    pub(super) shared: Arc<Shared>,
    pub(super) entry: Entry,
    /// The claim on the tensor, released after the commit.
    pub(super) claim: u64,
    /// Where the ticket waits for the outcome (already wrapped with the tensor's name).
    pub(super) done: Box<dyn FnOnce(Result<()>) + Send>,
}

enum Message {
    Written(Written),
    /// Answered once everything handed over before it is committed.
    Flush(Sender<()>),
}

/// The commit thread and the way to it.
pub(super) struct Committer {
    tx: Option<Sender<Message>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(super) fn start() -> Result<Committer> {
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("gdswap-commit".into())
            .spawn(move || run(rx))
            .map_err(|e| Error::Thread {
                what: "cannot start the swap store's commit thread".into(),
                source: e,
            })?;
        Ok(Committer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A handle for the I/O jobs.
    pub(super) fn handle(&self) -> CommitHandle {
        CommitHandle(self.tx.clone())
    }

    /// Waits until every swap-out handed over so far has been committed (or has failed).
    pub(super) fn flush(&self) {
        let (tx, rx) = channel();
        if let Some(t) = &self.tx {
            if t.send(Message::Flush(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
    }
}

impl Drop for Committer {
    /// Commits what was handed over, then ends the thread (the I/O threads, which hold
    /// handles, have ended before: the store drops them first).
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The I/O jobs' way to the commit thread.
#[derive(Clone)]
pub(super) struct CommitHandle(Option<Sender<Message>>);

impl CommitHandle {
    /// Hands `w` over; if the commit thread is gone (it never ends before the I/O threads),
    /// `w` fails with an internal error instead of hanging its ticket.
    pub(super) fn hand_over(&self, w: Written) {
        let w = match &self.0 {
            Some(tx) => match tx.send(Message::Written(w)) {
                Ok(()) => return,
                Err(e) => match e.0 {
                    Message::Written(w) => w,
                    Message::Flush(_) => unreachable!("sent a Written"),
                },
            },
            None => w,
        };
        finish(
            w,
            Err(Error::Internal(
                "internal error: the swap store's commit thread has stopped (please report it)"
                    .into(),
            )),
        );
    }
}

fn finish(w: Written, outcome: Result<()>) {
    release_claim(&w.shared, &w.entry.name, w.claim);
    (w.done)(outcome);
}

fn run(rx: Receiver<Message>) {
    while let Ok(first) = rx.recv() {
        // Everything handed over by now is one batch; flushes are answered after it.
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next {
            match m {
                Message::Written(w) => batch.push(w),
                Message::Flush(tx) => flushes.push(tx),
            }
            next = rx.try_recv().ok();
        }
        commit_batch(batch);
        for f in flushes {
            let _ = f.send(());
        }
    }
}

/// One fdatasync and one manifest per store in the batch (a process may have several
/// stores; each has its own commit thread, so in practice one).
fn commit_batch(mut batch: Vec<Written>) {
    while !batch.is_empty() {
        let shared = Arc::clone(&batch[0].shared);
        let (mine, rest): (Vec<Written>, Vec<Written>) = batch
            .into_iter()
            .partition(|w| Arc::ptr_eq(&w.shared, &shared));
        batch = rest;
        let entries: Vec<Entry> = mine.iter().map(|w| w.entry.clone()).collect();
        let n = entries.len();
        let outcomes = unpanicked(|| commit_written(&shared, entries)).unwrap_or_else(|e| {
            let text = e.to_string();
            (0..n).map(|_| Err(Error::Internal(text.clone()))).collect()
        });
        let mut outcomes = outcomes.into_iter();
        for w in mine {
            let o = outcomes.next().unwrap_or_else(|| {
                Err(Error::Internal(
                    "internal error: a commit lost an outcome (please report it)".into(),
                ))
            });
            finish(w, o);
        }
    }
}

/// The same error again, for each swap-out of a batch that failed as a whole (an fdatasync
/// or manifest commit): errno and path kept where there are.
pub(super) fn again(e: &Error) -> Error {
    match e {
        Error::File {
            op, path, source, ..
        } => Error::file(
            *op,
            path.clone(),
            match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        ),
        other => Error::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
