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
//! one manifest naming them all. Before it flushes a batch of less than `BATCH_BYTES`, it
//! waits for the swap-outs submitted before the batch began whose writes are still under way
//! (never for later ones, so a steady stream of swap-outs cannot hold a batch back for
//! ever): small swap-outs queued together share one flush instead of paying one each on a
//! disk whose every flush costs tens of milliseconds, while big ones are flushed as they
//! come, overlapping the flush with the next writes. A swap-out's ticket completes, and its
//! claim on the tensor is released, only when its batch has been committed (or has failed).
//! Each store has its own commit thread.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};

use super::jobs::{commit_written, unpanicked};
use super::manifest::Entry;
use super::state::{release_claim, Shared, Writing};

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
    /// Starts the thread; `writing` is the store's count of swap-outs still writing.
    pub(super) fn start(writing: Arc<Writing>) -> Result<Committer> {
        let (tx, rx) = channel();
        let thread = std::thread::Builder::new()
            .name("gdswap-commit".into())
            .spawn(move || run(rx, &writing))
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

fn run(rx: Receiver<Message>, writing: &Writing) {
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let enough = |got: &[Message]| {
            let bytes: u64 = got
                .iter()
                .map(|m| match m {
                    Message::Written(w) => w.entry.padded_len,
                    Message::Flush(_) => 0,
                })
                .sum();
            bytes >= BATCH_BYTES
        };
        for m in gather(&rx, first, writing, writing.horizon(), &enough) {
            match m {
                Message::Written(w) => batch.push(w),
                Message::Flush(tx) => flushes.push(tx),
            }
        }
        commit_batch(batch);
        // Answered after the batch: everything handed over before them is committed.
        for f in flushes {
            let _ = f.send(());
        }
    }
}

/// A batch holding this many bytes is flushed at once, without waiting for more swap-outs
/// still writing: past it, a flush's fixed cost (tens of milliseconds on some disks) is
/// small against the flush of the data itself, and flushing the first tensors while the
/// next ones are written overlaps the two; below it, waiting costs less than a flush each.
const BATCH_BYTES: u64 = 64 << 20;

/// `first` and everything else handed over by now, with the messages of the swap-outs
/// numbered below `horizon` (those submitted before the batch began) that are still
/// writing, until `enough` says the batch is big enough: they hand over before they end, so
/// once none is left, all their messages are in the channel. Later swap-outs are not waited
/// for.
fn gather<M>(
    rx: &Receiver<M>,
    first: M,
    writing: &Writing,
    horizon: u64,
    enough: &dyn Fn(&[M]) -> bool,
) -> Vec<M> {
    let mut got = vec![first];
    loop {
        got.extend(rx.try_iter());
        if enough(&got) || !writing.writing_before(horizon) {
            break;
        }
        // A write that fails ends without a message: look again every millisecond.
        match rx.recv_timeout(Duration::from_millis(1)) {
            Ok(m) => got.push(m),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    got.extend(rx.try_iter());
    got
}

/// One fdatasync and one manifest for the batch (every item is of this thread's store), then
/// each swap-out's outcome to its ticket.
fn commit_batch(batch: Vec<Written>) {
    let Some(first) = batch.first() else { return };
    let shared = Arc::clone(&first.shared);
    debug_assert!(batch.iter().all(|w| Arc::ptr_eq(&w.shared, &shared)));
    let entries: Vec<Entry> = batch.iter().map(|w| w.entry.clone()).collect();
    let n = entries.len();
    let outcomes = unpanicked(|| commit_written(&shared, entries)).unwrap_or_else(|e| {
        let text = e.to_string();
        (0..n).map(|_| Err(Error::Internal(text.clone()))).collect()
    });
    let mut outcomes = outcomes.into_iter();
    for w in batch {
        let o = outcomes.next().unwrap_or_else(|| {
            Err(Error::Internal(
                "internal error: a commit lost an outcome (please report it)".into(),
            ))
        });
        finish(w, o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A swap-out's write stops counting as under way when its job drops it: run to its end,
    /// dropped unrun, or unwound by a panic past its guard, so no batch waits for it forever.
    #[test]
    fn a_write_under_way_ends_when_its_job_ends_however_it_ends() {
        let writing = Arc::new(Writing::default());
        let ran = writing.begin_until_dropped();
        let unrun = writing.begin_until_dropped();
        let unwound = writing.begin_until_dropped();
        let horizon = writing.horizon();
        let job = move || {
            let _under_way = ran;
        };
        job();
        assert!(writing.writing_before(horizon));
        let never_run: Box<dyn FnOnce() + Send> = Box::new(move || drop(unrun));
        drop(never_run);
        assert!(writing.writing_before(horizon));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _under_way = unwound;
            panic!("a bug after the write");
        }));
        assert!(r.is_err());
        assert!(!writing.writing_before(horizon));
    }

    #[test]
    fn a_batch_waits_for_the_writes_submitted_before_it_and_no_later_ones() {
        let writing = Arc::new(Writing::default());
        let (tx, rx) = channel::<u64>();
        let early: Vec<u64> = (0..3).map(|_| writing.begin()).collect();
        let horizon = writing.horizon();
        let later = writing.begin(); // after the batch began: not waited for
        let t = {
            let writing = Arc::clone(&writing);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(early[1]).unwrap();
                writing.end(early[1]);
                std::thread::sleep(Duration::from_millis(20));
                writing.end(early[0]); // failed: ends without a message
                std::thread::sleep(Duration::from_millis(20));
                tx.send(early[2]).unwrap();
                writing.end(early[2]);
                tx
            })
        };
        let got = gather(&rx, 99, &writing, horizon, &|_| false);
        assert_eq!(got, vec![99, 1, 2]);
        let _tx = t.join().unwrap();
        assert!(
            writing.writing_before(later + 1),
            "the later write is still going"
        );
        assert!(!writing.writing_before(later));
        // A batch that is big enough goes at once, whatever is still writing.
        let (tx, rx) = channel::<u64>();
        tx.send(7).unwrap();
        let got = gather(&rx, 6, &writing, writing.horizon(), &|got| got.len() >= 2);
        assert_eq!(got, vec![6, 7]);
    }
}
