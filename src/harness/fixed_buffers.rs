//! `--fixed-buffers auto`, decided once for the whole run before any worker starts: whether
//! the memlock limit can hold every thread's registered buffers, so that all threads take the
//! same I/O path.

use crate::backend::Backend;
use crate::datafiles;
use crate::io::sys;
use crate::options::RunOptions;
use crate::plan::ThreadPlan;

/// `--fixed-buffers auto` for the host backend, settled once for the run: where the memlock
/// limit cannot hold every thread's buffers together (it is charged per user: threads share
/// it), no thread registers, and each says why; otherwise each thread registers and falls back
/// alone only if the kernel still refuses (other processes of the user may hold part of the
/// budget). Without this, one thread of a run might register and the next not: one run, two
/// I/O paths.
///
/// Per process: the ranks of an MPI run on one node share the user's limit too, and each
/// settles for its own threads.
pub(super) fn fixed_buffers_declined(
    opts: &RunOptions,
    backend: &dyn Backend,
    plans: &[ThreadPlan],
) -> Option<String> {
    let registers = opts.fixed_buffers == crate::options::FixedBuffers::Auto
        && backend.id() == crate::types::BackendId::Host
        && crate::io::uring::takes_fixed_buffers(opts.direct, opts.ring.opcode);
    if !registers {
        return None;
    }
    // As the buffers will be mapped (whole huge pages), as the `on` preflight counts them.
    let total = datafiles::buffers_bytes(opts, plans.iter().map(|p| p.len)).unwrap_or(u64::MAX);
    if sys::can_lock(total) {
        return None;
    }
    let whose = match plans.len() {
        1 => String::new(),
        n => format!(", {n} threads' buffers together"),
    };
    Some(crate::io::uring::memlock_short(
        sys::memlock_limit(),
        total,
        &whose,
    ))
}
