//! Checking the data against the pattern, outside any timed region: once after the loops
//! (`--verify`), or after every measured loop (a soak, counting wrong blocks up to
//! `--max-errors`); and the hint a failed verify of a read gets.

use std::sync::atomic::Ordering;

use super::coordinator::LoopControl;
use super::measurements::KEPT_FAILURES;
use crate::backend::Worker;
use crate::error::{Error, Message, Result, Setting, VerifyFailure};
use crate::io::file::DataFile;
use crate::options::{Op, RunOptions};
use crate::pattern;
use crate::plan::ThreadPlan;

/// A soak's verification of every measured loop: wrong 4 KiB blocks counted over all threads
/// and logged (file, offset, what was found), the run stopped once more than
/// `--max-errors` (default 0) were found.
#[derive(Default)]
pub(super) struct Soak {
    pub(super) errors: u64,
    pub(super) failures: Vec<VerifyFailure>,
}

impl Soak {
    pub(super) fn verify_loop(
        &mut self,
        opts: &RunOptions,
        plan: &ThreadPlan,
        file: &DataFile,
        worker: &mut dyn Worker,
        control: &LoopControl,
    ) -> Result<()> {
        let before = self.failures.len();
        let mut found = 0u64;
        let failures = &mut self.failures;
        match opts.workload.op {
            Op::Read => worker.inspect(&mut |buf| {
                found += pattern::verify_all(
                    buf,
                    plan.file_offset,
                    plan.seed,
                    &plan.path,
                    KEPT_FAILURES,
                    failures,
                );
                Ok(())
            })?,
            Op::Write => {
                // What this loop wrote, durable, read back past the page cache.
                file.sync_data()?;
                file.forget_cached_pages();
                const CHUNK: u64 = 8 << 20;
                let mut buf = vec![0u8; CHUNK.min(plan.len) as usize];
                let mut off = plan.file_offset;
                while off < plan.end() {
                    let n = CHUNK.min(plan.end() - off) as usize;
                    file.read_exact_at(&mut buf[..n], off)?;
                    found += pattern::verify_all(
                        &buf[..n],
                        off,
                        plan.seed,
                        &plan.path,
                        KEPT_FAILURES,
                        failures,
                    );
                    off += n as u64;
                }
            }
        }
        self.errors = self.errors.saturating_add(found);
        let total = control
            .verify_errors
            .fetch_add(found, Ordering::Relaxed)
            .saturating_add(found);
        let limit = opts.max_errors.unwrap_or(0);
        if total > limit {
            let mut first = self
                .failures
                .get(before)
                .or(self.failures.last())
                .cloned()
                .unwrap_or_else(|| VerifyFailure {
                    path: plan.path.clone(),
                    offset: plan.file_offset,
                    expected: 0,
                    found: 0,
                    header_note: Message::default(),
                });
            if opts.max_errors.is_some() {
                first
                    .header_note
                    .push(format!("; {total} wrong blocks found, more than "));
                first.header_note.push(Setting::MaxErrors);
                first.header_note.push(format!(" {limit}"));
            }
            return Err(Error::Verify(Box::new(first)));
        }
        Ok(())
    }
}

/// What a failed verify of a read adds when the header note has no advice of its own.
pub fn verify_read_hint() -> Message {
    crate::error::msg![
        "; the file holds other data (another run's, or a failed write's): rewrite it with `gdswap run ",
        Setting::Op,
        " write` and the same ",
        Setting::File,
        "/",
        Setting::Dir,
        ", ",
        Setting::Size,
        " and ",
        Setting::Seed,
        ", or delete it"
    ]
}

/// A failed verify of a read means the file holds other data than this run's pattern (what a
/// failed or interrupted write left, another run's): every later read would fail the same
/// way, so say how to get a good file again (unless the note already does: another seed).
pub(super) fn with_verify_hint(opts: &RunOptions, e: Error) -> Error {
    match e {
        Error::Verify(mut v)
            if opts.workload.op == Op::Read && !v.header_note.contains_text("rewrite") =>
        {
            v.header_note.0.extend(verify_read_hint().0);
            Error::Verify(v)
        }
        e => e,
    }
}

/// Reads: every byte that landed in the destination is the pattern of its file offset.
/// Writes: every byte of the range, read back from the file after fdatasync with its cached
/// pages dropped, is the pattern.
pub(super) fn verify(
    op: Op,
    plan: &ThreadPlan,
    file: &DataFile,
    worker: &mut dyn Worker,
) -> Result<()> {
    match op {
        Op::Read => worker.inspect(&mut |buf| {
            pattern::verify(buf, plan.file_offset, plan.seed, &plan.path).map_err(Error::Verify)
        }),
        Op::Write => {
            file.forget_cached_pages();
            const CHUNK: u64 = 8 << 20;
            let mut buf = vec![0u8; CHUNK.min(plan.len) as usize];
            let mut off = plan.file_offset;
            while off < plan.end() {
                let n = CHUNK.min(plan.end() - off) as usize;
                file.read_exact_at(&mut buf[..n], off)?;
                pattern::verify(&buf[..n], off, plan.seed, &plan.path).map_err(Error::Verify)?;
                off += n as u64;
            }
            Ok(())
        }
    }
}
