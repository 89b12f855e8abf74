//! Host-side I/O primitives: page-aligned (huge-page backed) buffers, views of memory lent to
//! an io_uring engine by its owner, data files opened for O_DIRECT, and the few system calls
//! the harness needs (CPU usage, memory limits, page cache), and the guard that keeps forked
//! children from holding a swap store's lock.
//! Together with `backend::host` (io_uring) this is where the crate's `unsafe` lives.

pub mod buffer;
pub mod file;
pub mod fork_guard;
pub mod lent;
pub mod owned;
pub mod sys;
pub mod uring;
