//! `gdswap qualify` as the ranks of a parallel job (`mpirun`, `srun`; issue 16): every rank runs
//! the spec's check rows and tests in lockstep, on its own files and GPU, and rank 0 writes
//! every rank's record and the job's merged verdict.
//!
//! No rank may leave the others waiting at a barrier, and rank 0 must live to write its record,
//! so a failure is not an `MPI_Abort` here: every meeting of a test's run ([`Lockstep`]) also
//! carries whether a rank failed. A rank whose run fails on its own (a bad file, a verify
//! error) goes to the meeting the others wait at ([`Lockstep::finish`]) and says so; every
//! rank leaves that meeting with an error, and all of them stand at the same point again.
//! Before the tests, [`settle`] does the same with a message: a rank that cannot run (its
//! target is not a directory) stops every rank, and rank 0 gets that rank's error.

use std::cell::Cell;

use crate::error::{Error, Result};
use crate::ranks::Coordinator;

/// What a rank's run says when another rank's run failed.
pub const STOPPED: &str = "stopped because another rank's run failed";

/// Every rank passes its `mine`; all learn whether every rank's is true (a barrier: nobody
/// leaves before everyone arrived).
pub fn all(coord: &dyn Coordinator, mine: bool) -> Result<bool> {
    let got = coord.gather(vec![u8::from(mine)])?;
    let every = got.map_or(true, |a| a.iter().all(|b| b.first() == Some(&1)));
    coord.agree(every)
}

/// Every rank passes its result; every rank goes on only if all succeeded. Rank 0's error is
/// the first failing rank's (`rank N of M on HOST: why`); another rank's, its own error, or
/// that another rank could not run.
pub fn settle<T>(
    coord: &dyn Coordinator,
    mine: std::result::Result<T, String>,
) -> std::result::Result<T, String> {
    if coord.size() <= 1 {
        return mine;
    }
    let what = match &mine {
        Ok(_) => Vec::new(),
        Err(e) => format!(
            "rank {} of {} on {}: {e}",
            coord.rank(),
            coord.size(),
            coord.host()
        )
        .into_bytes(),
    };
    let first = match coord.gather(what) {
        Ok(got) => got.and_then(|all| {
            all.into_iter()
                .find(|m| !m.is_empty())
                .map(|m| String::from_utf8_lossy(&m).into_owned())
        }),
        Err(e) => Some(e.to_string()),
    };
    let ok = coord
        .agree(first.is_none())
        .map_err(|e| format!("meeting the other ranks: {e}"))?;
    match (mine, first) {
        (Err(e), _) if coord.rank() != 0 => Err(e),
        (_, Some(f)) => Err(f),
        (Ok(v), None) if ok => Ok(v),
        (Err(e), None) => Err(e),
        (Ok(_), None) => Err(
            "stopped because another rank could not run (rank 0's record says which and why)"
                .into(),
        ),
    }
}

/// The coordinator of one rank's harness run in a parallel qualify: each meeting is a
/// gather of every rank's "I failed" and rank 0's verdict broadcast, so a rank that failed
/// between meetings releases the others at their next one ([`Lockstep::finish`]).
pub struct Lockstep<'a> {
    inner: &'a dyn Coordinator,
    /// A meeting said a rank failed: no more meetings in this run.
    broken: Cell<bool>,
}

impl<'a> Lockstep<'a> {
    /// A lockstep coordinator over `inner`, no rank failed yet.
    pub fn new(inner: &'a dyn Coordinator) -> Lockstep<'a> {
        Lockstep {
            inner,
            broken: Cell::new(false),
        }
    }

    /// The communicator underneath (to gather the figures once every rank is through).
    pub fn inner(&self) -> &'a dyn Coordinator {
        self.inner
    }

    fn meet(&self, failed: bool, go_on: bool) -> Result<bool> {
        if self.broken.get() {
            return Err(Error::Ranks(STOPPED.into()));
        }
        if !all(self.inner, !failed)? {
            self.broken.set(true);
            return Err(Error::Ranks(STOPPED.into()));
        }
        self.inner.agree(go_on)
    }

    /// After this rank's run: every rank's run ended well (`true`) or one failed. A rank whose
    /// run failed on its own meets the others where they wait (the meeting it did not reach,
    /// or this one when they are through), so every rank ends the run at the same meeting.
    /// Then the next run may start.
    pub fn finish(&self, failed: bool) -> Result<bool> {
        let ended = if self.broken.get() {
            false
        } else {
            match self.meet(failed, false) {
                Ok(_) => true,
                Err(_) if self.broken.get() => false,
                Err(e) => return Err(e),
            }
        };
        self.broken.set(false);
        Ok(ended)
    }
}

impl Coordinator for Lockstep<'_> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn local_rank(&self) -> usize {
        self.inner.local_rank()
    }
    fn host(&self) -> String {
        self.inner.host()
    }
    fn barrier(&self) -> Result<()> {
        self.meet(false, false).map(drop)
    }
    fn agree(&self, go_on: bool) -> Result<bool> {
        self.meet(false, go_on)
    }
    fn gather(&self, bytes: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
        self.inner.gather(bytes)
    }
    fn abort(&self, code: i32) -> ! {
        self.inner.abort(code)
    }
}

/// Every rank passes its record (JSON and Markdown); rank 0 gets them all, in rank order.
pub fn gather_records(
    coord: &dyn Coordinator,
    json: &str,
    md: &str,
) -> Result<Option<Vec<(String, String)>>> {
    let mut bytes = Vec::with_capacity(json.len() + md.len() + 1);
    bytes.extend_from_slice(json.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(md.as_bytes());
    Ok(coord.gather(bytes)?.map(|all| {
        all.into_iter()
            .map(|b| {
                let text = String::from_utf8_lossy(&b).into_owned();
                match text.split_once('\0') {
                    Some((j, m)) => (j.to_string(), m.to_string()),
                    None => (text, String::new()),
                }
            })
            .collect()
    }))
}

/// Rank 0's exit status (0, 1, 2), handed to every rank, so the whole job exits with it.
pub fn share_status(coord: &dyn Coordinator, status: u8) -> Result<u8> {
    let low = coord.agree(status & 1 != 0)?;
    let high = coord.agree(status & 2 != 0)?;
    Ok(u8::from(low) | (u8::from(high) << 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranks::LocalGroup;

    /// Three ranks meet four times per run; rank 2 fails after the second meeting. Every rank
    /// ends the run at the same meeting (none waits for ever), learns that a rank failed, and
    /// the next run, on all three, passes all its meetings.
    #[test]
    fn a_rank_that_fails_between_meetings_releases_the_others_and_the_next_run_is_in_step() {
        let g = LocalGroup::new(3);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|rank| {
                    let m = g.member(rank);
                    s.spawn(move || {
                        let ls = Lockstep::new(&m);
                        let run = |fail_at: Option<usize>| -> Result<()> {
                            for i in 0..4 {
                                if fail_at == Some(i) {
                                    return Err(Error::Ranks("bad file".into()));
                                }
                                ls.barrier()?;
                            }
                            Ok(())
                        };
                        let first = run((rank == 2).then_some(2));
                        let first_ok = ls.finish(first.is_err()).unwrap();
                        let second = run(None);
                        let second_ok = ls.finish(second.is_err()).unwrap();
                        (first.err().map(|e| e.to_string()), first_ok, second_ok)
                    })
                })
                .collect();
            for (rank, h) in handles.into_iter().enumerate() {
                let (err, first_ok, second_ok) = h.join().unwrap();
                assert!(!first_ok, "rank {rank}");
                assert!(second_ok, "rank {rank}");
                let err = err.unwrap();
                if rank == 2 {
                    assert!(err.contains("bad file"), "{err}");
                } else {
                    assert!(err.contains(STOPPED), "{err}");
                }
            }
        });
    }

    #[test]
    fn settle_gives_rank_0_the_failing_ranks_error() {
        let g = LocalGroup::new(3);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|rank| {
                    let m = g.member(rank);
                    s.spawn(move || {
                        let mine = if rank == 2 {
                            Err("target d/rank2 is not a directory".to_string())
                        } else {
                            Ok(())
                        };
                        let r = settle(&m, mine);
                        let status = share_status(&m, if rank == 0 { 2 } else { 0 }).unwrap();
                        (r, status)
                    })
                })
                .collect();
            for (rank, h) in handles.into_iter().enumerate() {
                let (r, status) = h.join().unwrap();
                let e = r.unwrap_err();
                assert_eq!(status, 2);
                if rank == 0 {
                    assert!(
                        e.contains("rank 2 of 3") && e.contains("d/rank2 is not a directory"),
                        "rank {rank}: {e}"
                    );
                } else if rank == 2 {
                    assert_eq!(e, "target d/rank2 is not a directory");
                } else {
                    assert!(e.contains("another rank could not run"), "{e}");
                }
            }
        });
    }
}
