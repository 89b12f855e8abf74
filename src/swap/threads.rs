//! The store's I/O threads: each runs the jobs sent to it, one at a time and each to its end
//! (a swap-out's job ends once its bytes are written: the commit thread, `committer`, makes
//! them durable and commits the manifest while this thread takes its next transfer). The one
//! job that waits for another is a swap-in's delivery out of device staging, and it waits
//! only for the read queued before it on the same thread (jobs on a thread run in order),
//! which has ended by then: a fixed number of threads cannot deadlock.
//!
//! A job goes to a chosen thread, not to any: an io_uring made with SINGLE_ISSUER (as the
//! `host` backend makes them) may only be driven by the thread that created it, so each
//! staging buffer is prepared on one I/O thread and every transfer through it runs there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

pub type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct IoThreads {
    tx: Vec<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    next: AtomicUsize,
}

impl IoThreads {
    pub fn new(n: usize) -> Result<IoThreads> {
        IoThreads::named(n, "gdswap-swap")
    }

    /// `n` threads named `{prefix}-{i}`.
    pub fn named(n: usize, prefix: &str) -> Result<IoThreads> {
        let mut tx = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let (t, rx) = channel::<Job>();
            tx.push(t);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("{prefix}-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            // A job that panics (a bug) loses its result, which its ticket
                            // reports; the thread lives on for the other jobs bound to it.
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                    })
                    .map_err(|e| Error::Thread {
                        what: "cannot start a swap I/O thread".into(),
                        source: e,
                    })?,
            );
        }
        Ok(IoThreads {
            tx,
            threads,
            next: AtomicUsize::new(0),
        })
    }

    /// Waits until every job queued so far on every thread has ended.
    pub fn barrier(&self) {
        let rxs: Vec<_> = (0..self.tx.len())
            .filter_map(|t| {
                let (tx, rx) = channel::<()>();
                self.submit(
                    t,
                    Box::new(move || {
                        let _ = tx.send(());
                    }),
                )
                .ok()
                .map(|()| rx)
            })
            .collect();
        for rx in rxs {
            let _ = rx.recv();
        }
    }

    /// A thread for a new staging buffer, round robin.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.tx.len()
    }

    /// A sender of jobs to thread `thread`, for a job that queues the next step of its work
    /// there (the thread ends once the `IoThreads` and every such sender are gone).
    pub fn sender(&self, thread: usize) -> Sender<Job> {
        self.tx[thread].clone()
    }

    /// Queues `job` on thread `thread`.
    pub fn submit(&self, thread: usize, job: Job) -> Result<()> {
        self.tx[thread]
            .send(job)
            .map_err(|_| Error::Internal("the swap store's I/O threads have stopped".into()))
    }
}

impl Drop for IoThreads {
    /// Lets every queued job finish, then joins the threads.
    fn drop(&mut self) {
        self.tx.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
