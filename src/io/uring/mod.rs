//! An io_uring engine for one worker thread: keeps up to `queue_depth` requests in flight
//! between one file and one buffer, refilling as completions arrive.
//!
//! Soundness rule (after tokio-rs/io-uring): building an entry is safe, pushing it is unsafe
//! because the kernel will use the buffer later. The engine owns both the ring and the buffer,
//! declares the ring first so it is dropped first, and never returns from [`UringEngine::run`]
//! with a request in flight, not even on error: it stops submitting and drains the ring. So a
//! buffer always outlives every operation on it.
//!
//! Every completion is checked: a negative result is an error naming the operation, path,
//! offset and length; a short result is resubmitted for the remainder; a zero result is the
//! end of the file (read) or a device that took nothing (write), also an error.
//!
//! The pieces, one file each: `ring` makes rings (the setup flags, what `auto` falls back
//! to, and why io_uring may be unavailable here); `stager` is the memory an engine does its
//! I/O in ([`IoBuffer`]) and where in it each request goes ([`Stager`]); `engine` is the
//! [`UringEngine`] itself: what it owns and in which order it lets it go, how it is made and
//! registered, what it reports; `run` moves requests through the ring and checks each
//! completion.

mod engine;
mod ring;
mod run;
mod stager;
#[cfg(test)]
mod tests;

pub use engine::{memlock_short, takes_fixed_buffers, UringEngine, NOT_REGISTERED};
pub use ring::{make_ring, new_ring, unavailable_reason, MadeRing};
pub use stager::{IoBuffer, ReusedBuffers, Stager};
