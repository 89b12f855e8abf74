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

use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::error::{Error, FileOp, Result, Setting};
use crate::io::buffer::{HostBuffer, PageBacking};
use crate::io::file::DataFile;
use crate::io::sys;
use crate::options::Op;
use crate::request::Request;
use crate::size::Bytes;
use crate::stats::LatencyRecorder;
use crate::types::ring_options::{FixedBuffers, RingOpcode, RingOptions, RingSetup, RingSubmit};

/// What [`UringEngine::mode`] puts before the reason `--fixed-buffers auto` could not register
/// the buffers (the harness looks for it among its threads' modes).
pub const NOT_REGISTERED: &str = "(not registered: ";

/// Whether an engine over a file opened this way takes registered buffers at all: O_DIRECT
/// and READ/WRITE opcodes (buffered I/O and READV take none). `--fixed-buffers auto` tries
/// only these.
pub fn takes_fixed_buffers(direct: bool, opcode: RingOpcode) -> bool {
    direct && opcode != RingOpcode::Readv
}

/// Why `--fixed-buffers auto` did not register `needed` bytes of buffers under a memlock
/// `limit` below them (`whose`: what the bytes are, when not one thread's buffers).
pub fn memlock_short(limit: u64, needed: u64, whose: &str) -> String {
    format!(
        "RLIMIT_MEMLOCK {} < {}{whose} (CAP_IPC_LOCK, as root has, or a higher limit registers them)",
        Bytes(limit),
        Bytes(needed)
    )
}

/// io_uring registers at most 1 GiB per buffer; bigger buffers are registered in segments.
const MAX_REGISTERED: u64 = 1 << 30;

/// Creates a ring with the cheapest completion mode the kernel offers: DEFER_TASKRUN (6.1+),
/// then COOP_TASKRUN (5.19+), then the default. Returns the ring and the mode's name.
pub fn new_ring(entries: u32) -> std::io::Result<(IoUring, &'static str)> {
    if let Ok(r) = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
    {
        return Ok((r, "defer-taskrun"));
    }
    if let Ok(r) = IoUring::builder().setup_coop_taskrun().build(entries) {
        return Ok((r, "coop-taskrun"));
    }
    IoUring::new(entries).map(|r| (r, "default"))
}

/// A ring made for a [`RingSetup`], and what was used: `flags` as reports print them, and
/// `fallback` when `auto` had to give up a flag the kernel refused.
pub struct MadeRing {
    /// The ring.
    pub ring: IoUring,
    /// The setup flags the ring was made with, e.g. `defer-taskrun` or `default`.
    pub flags: &'static str,
    /// Why `auto` gave up a flag the kernel refused; `None` when nothing was given up.
    pub fallback: Option<String>,
}

/// IORING_ENTER_GETEVENTS, from linux/io_uring.h (the io-uring crate keeps its copy private).
const IORING_ENTER_GETEVENTS: u32 = 1;

/// Milliseconds of idleness after which an SQPOLL thread sleeps (and needs a wake-up).
const SQPOLL_IDLE_MS: u32 = 1000;

/// Makes a ring of `entries` with `setup`'s flags and a completion queue of the same size
/// (fio's IORING_SETUP_CQSIZE). `auto` falls back from DEFER_TASKRUN to COOP_TASKRUN to none
/// and says so; an explicit choice the kernel refuses is an error naming `--ring-setup`.
pub fn make_ring(entries: u32, setup: RingSetup) -> Result<MadeRing> {
    fn build(
        entries: u32,
        setup: RingSetup,
        cqsize: bool,
    ) -> std::io::Result<(IoUring, &'static str)> {
        let mut b = IoUring::builder();
        if cqsize {
            b.setup_cqsize(entries);
        }
        let name = match setup {
            RingSetup::Auto | RingSetup::Defer => {
                b.setup_single_issuer().setup_defer_taskrun();
                "defer_taskrun+single_issuer"
            }
            RingSetup::Coop => {
                b.setup_coop_taskrun();
                "coop_taskrun"
            }
            RingSetup::None => "none",
            RingSetup::Sqpoll => {
                b.setup_sqpoll(SQPOLL_IDLE_MS);
                "sqpoll"
            }
        };
        b.build(entries).map(|r| (r, name))
    }
    // CQSIZE is 5.5+; where it is refused, the default completion queue (twice the
    // submission queue) works just as well.
    let try_build =
        |setup: RingSetup| build(entries, setup, true).or_else(|_| build(entries, setup, false));
    let refused = |setup: RingSetup, e: std::io::Error| setup_refused(setup, entries, e);
    match setup {
        RingSetup::Auto => {
            let defer = match try_build(RingSetup::Defer) {
                Ok((ring, flags)) => {
                    return Ok(MadeRing {
                        ring,
                        flags,
                        fallback: None,
                    })
                }
                Err(e) => e,
            };
            match try_build(RingSetup::Coop) {
                Ok((ring, flags)) => Ok(MadeRing {
                    ring,
                    flags,
                    fallback: Some(format!("defer_taskrun refused: {defer}")),
                }),
                Err(coop) => match try_build(RingSetup::None) {
                    Ok((ring, flags)) => Ok(MadeRing {
                        ring,
                        flags,
                        fallback: Some(format!(
                            "defer_taskrun refused: {defer}; coop_taskrun refused: {coop}"
                        )),
                    }),
                    Err(e) => Err(Error::Unavailable {
                        backend: "host".into(),
                        reason: crate::error::msg![
                            format!("io_uring_setup with {entries} entries failed ({e}); use "),
                            Setting::Backend,
                            " posix"
                        ],
                    }),
                },
            }
        }
        s => try_build(s)
            .map(|(ring, flags)| MadeRing {
                ring,
                flags,
                fallback: None,
            })
            .map_err(|e| refused(s, e)),
    }
}

/// An explicit `--ring-setup` the kernel refused: one line naming the flag, the choice and
/// what it needs.
fn setup_refused(setup: RingSetup, entries: u32, e: std::io::Error) -> Error {
    let needs = match setup {
        RingSetup::Defer | RingSetup::Auto => "DEFER_TASKRUN needs Linux 6.1+",
        RingSetup::Coop => "COOP_TASKRUN needs Linux 5.19+",
        RingSetup::Sqpoll => "SQPOLL may need privileges or be blocked here",
        RingSetup::None => "io_uring may be disabled here",
    };
    Error::invalid(
        Setting::RingSetup,
        format!("{setup}: the kernel refused io_uring_setup with {entries} entries ({e}); {needs}"),
    )
}

/// Why io_uring cannot be used here, or None when a ring can be made.
pub fn unavailable_reason() -> Option<crate::error::Message> {
    match IoUring::new(2) {
        Ok(_) => None,
        Err(e) => Some(crate::error::msg![format!("io_uring_setup failed ({e}): the kernel has io_uring disabled (sysctl kernel.io_uring_disabled) or a seccomp filter blocks it (common in containers); use "), crate::error::Setting::Backend, " posix"]),
    }
}

/// Registration of the buffer (in segments of at most 1 GiB) and the file's descriptors.
struct Fixed {
    /// Bytes per registered segment; request `buf_offset / segment` is its buffer index.
    segment: u64,
}

/// Index of the O_DIRECT descriptor and of the buffered one (for tails) in the registered
/// file table.
const FIXED_IO_FD: u32 = 0;
const FIXED_TAIL_FD: u32 = 1;

/// Memory an engine does its I/O in: a [`HostBuffer`], a wrapper that owns one (pinned
/// memory registered with CUDA, for instance), or a view of memory someone else owns
/// ([`LentMemory`](crate::io::lent::LentMemory)). The engine owns it and frees (or gives it
/// back) only when no request can still use it.
pub trait IoBuffer: Send {
    /// The first byte; valid for `capacity()` bytes for as long as the value lives.
    fn as_mut_ptr(&mut self) -> *mut u8;
    /// Bytes usable for I/O (the length rounded up to whole pages).
    fn capacity(&self) -> usize;
    /// Which pages back the buffer (reports print it).
    fn backing(&self) -> PageBacking;
    /// The buffer's bytes (its length, not its capacity).
    fn as_slice(&self) -> &[u8];
    /// The buffer's bytes, mutably.
    fn as_mut_slice(&mut self) -> &mut [u8];
}

impl IoBuffer for HostBuffer {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        HostBuffer::as_mut_ptr(self)
    }
    fn capacity(&self) -> usize {
        HostBuffer::capacity(self)
    }
    fn backing(&self) -> PageBacking {
        HostBuffer::backing(self)
    }
    fn as_slice(&self) -> &[u8] {
        HostBuffer::as_slice(self)
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        HostBuffer::as_mut_slice(self)
    }
}

/// Decides where in the engine's buffer each request does its I/O, and what happens around
/// it (see [`UringEngine::run_staged`]). The bounce backend's stagers copy between a ring of
/// pinned chunks and the GPU here.
///
/// What the engine promises a stager: `base` is the engine's buffer, valid for its capacity,
/// and stays allocated until `finish` has returned `Ok` (if `finish` fails, the engine leaks
/// the buffer rather than free memory that asynchronous work may still use); requests are
/// acquired in order; the range given out by `acquire` is used by no request of the engine
/// until that request's `complete` (or, after an error, until `finish`).
pub trait Stager {
    /// Buffer offset at which request `index` may do its I/O now, or None when no room is
    /// ready yet (the engine then waits for completions, or calls [`Stager::wait`]).
    ///
    /// # Safety
    /// `base` must be the engine's buffer, with the guarantees listed on the trait.
    unsafe fn acquire(
        &mut self,
        index: usize,
        request: &Request,
        base: *mut u8,
    ) -> Result<Option<usize>>;
    /// Request `index` moved all its bytes at `buf_offset`.
    ///
    /// # Safety
    /// As for `acquire`.
    unsafe fn complete(
        &mut self,
        index: usize,
        request: &Request,
        buf_offset: usize,
        base: *mut u8,
    ) -> Result<()>;
    /// `acquire` said None: block until the stager's own pending work (a copy) makes room,
    /// and return true; return false at once when it has nothing pending (room then comes
    /// back only with I/O completions).
    fn wait(&mut self) -> Result<bool>;
    /// Called once before `run_staged` returns, on success and after errors alike: returns
    /// only when the stager's own work on the buffer has ended.
    fn finish(&mut self) -> Result<()>;
    /// True when `acquire` never waits on `complete` (every request has its own range): the
    /// engine then refills the queue and submits before it calls `complete`, so that work
    /// done there (a checksum) overlaps full-queue I/O instead of delaying the refill.
    fn independent_ranges(&self) -> bool {
        false
    }
}

/// fio-style placement: `slots` regions of `block` bytes, reused as requests complete. A region
/// is handed out again only after the request in it completed (the engine never has more than
/// queue depth requests in flight, and there are that many regions).
pub struct ReusedBuffers {
    free: Vec<usize>,
}

impl ReusedBuffers {
    /// `slots` free regions at byte offsets `0, block, 2*block, ...` of the buffer.
    pub fn new(slots: usize, block: usize) -> ReusedBuffers {
        ReusedBuffers {
            free: (0..slots).rev().map(|i| i * block).collect(),
        }
    }
}

impl Stager for ReusedBuffers {
    unsafe fn acquire(&mut self, _: usize, _: &Request, _: *mut u8) -> Result<Option<usize>> {
        Ok(self.free.pop())
    }
    unsafe fn complete(&mut self, _: usize, _: &Request, offset: usize, _: *mut u8) -> Result<()> {
        self.free.push(offset);
        Ok(())
    }
    fn wait(&mut self) -> Result<bool> {
        Ok(false)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The plain placement: every request at its own `buf_offset`, always ready.
struct InPlace;

impl Stager for InPlace {
    unsafe fn acquire(&mut self, _: usize, request: &Request, _: *mut u8) -> Result<Option<usize>> {
        Ok(Some(request.buf_offset))
    }
    unsafe fn complete(&mut self, _: usize, _: &Request, _: usize, _: *mut u8) -> Result<()> {
        Ok(())
    }
    fn wait(&mut self) -> Result<bool> {
        Ok(false)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// In-place placement that hands each request's bytes to `f(buf_offset, bytes)` as soon as
/// the request has completed, while the others are still in flight (the swap store takes
/// its CRC-32C there, overlapped with the I/O instead of after it).
struct Observed<'a> {
    f: &'a mut dyn FnMut(usize, &[u8]) -> Result<()>,
}

impl Stager for Observed<'_> {
    unsafe fn acquire(&mut self, _: usize, request: &Request, _: *mut u8) -> Result<Option<usize>> {
        Ok(Some(request.buf_offset))
    }
    fn independent_ranges(&self) -> bool {
        true
    }
    unsafe fn complete(
        &mut self,
        _: usize,
        request: &Request,
        buf_offset: usize,
        base: *mut u8,
    ) -> Result<()> {
        // SAFETY: `base` is the engine's buffer, valid for its capacity (the Stager contract),
        // and `entry` checked that [buf_offset, buf_offset + len) lies inside it. The request
        // has completed, so the kernel no longer touches that range; the requests still in
        // flight use other, disjoint ranges (in place: each at its own buf_offset), and no
        // `&mut` to the buffer is live while the engine pumps. The slice ends with this call.
        let bytes = unsafe { std::slice::from_raw_parts(base.add(buf_offset), request.len) };
        (self.f)(buf_offset, bytes)
    }
    fn wait(&mut self) -> Result<bool> {
        Ok(false)
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One worker's ring, buffer and file.
pub struct UringEngine<B: IoBuffer = HostBuffer> {
    // Dropped by hand in `Drop`: the ring first, then the buffer (unless leaked).
    ring: ManuallyDrop<IoUring>,
    buf: ManuallyDrop<B>,
    /// Set when requests may still be in the kernel and could not be drained.
    leak_buffer: bool,
    /// Requests pushed and not yet completed. Kept in the engine (not in `pump`) so that `Drop`
    /// can wait for them if a run is left by a panic.
    in_flight: usize,
    file: Arc<DataFile>,
    queue_depth: u32,
    fixed: Option<Fixed>,
    /// The file descriptors are registered (with `fixed`, or `--register-files` alone).
    files_registered: bool,
    opts: RingOptions,
    ring_flags: &'static str,
    ring_fallback: Option<String>,
    /// `--fixed-buffers auto` that could not register: why (the mode line says it).
    fixed_fallback: Option<String>,
    /// One iovec per slot for READV/WRITEV: the kernel reads it at submission, and it stays
    /// put (never reallocated) while the engine lives.
    iovecs: Vec<SlotIovec>,
}

/// One slot's iovec (READV/WRITEV).
#[repr(transparent)]
#[derive(Clone, Copy)]
struct SlotIovec(libc::iovec);

// SAFETY: the pointer inside is only an address into the engine's own buffer, handed to the
// kernel; it is never dereferenced by Rust code, so moving it to another thread with the
// engine (which owns the buffer) is sound.
unsafe impl Send for SlotIovec {}

#[derive(Clone, Copy, Default)]
struct Slot {
    request: usize,
    /// Where the request's bytes start in the buffer.
    buf_offset: usize,
    done: usize,
    started: Option<Instant>,
}

impl<B: IoBuffer> UringEngine<B> {
    /// Makes the ring and, with `fixed`, registers `buf` and the file's descriptors.
    pub fn new(
        buf: B,
        file: Arc<DataFile>,
        queue_depth: u32,
        block_size: u64,
        fixed: bool,
    ) -> Result<UringEngine<B>> {
        let fixed = match fixed {
            true => FixedBuffers::On,
            false => FixedBuffers::Off,
        };
        Self::with_ring(
            buf,
            file,
            queue_depth,
            block_size,
            fixed,
            RingOptions::default(),
        )
    }

    /// Like [`UringEngine::new`], driving the ring as `opts` says, with buffers registered as
    /// `fixed` says: [`FixedBuffers::Auto`] registers them when the file is O_DIRECT, the
    /// opcodes are READ/WRITE and the kernel accepts the registration, and otherwise goes on
    /// unregistered, noting why in [`UringEngine::mode`].
    pub fn with_ring(
        buf: B,
        file: Arc<DataFile>,
        queue_depth: u32,
        block_size: u64,
        fixed: FixedBuffers,
        opts: RingOptions,
    ) -> Result<UringEngine<B>> {
        let made = make_ring(queue_depth.next_power_of_two(), opts.setup)?;
        let mut engine = UringEngine {
            ring: ManuallyDrop::new(made.ring),
            buf: ManuallyDrop::new(buf),
            leak_buffer: false,
            in_flight: 0,
            file,
            queue_depth,
            fixed: None,
            files_registered: false,
            opts,
            ring_flags: made.flags,
            ring_fallback: made.fallback,
            fixed_fallback: None,
            iovecs: vec![
                SlotIovec(libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                });
                queue_depth as usize
            ],
        };
        match fixed {
            FixedBuffers::On => engine.register(block_size)?,
            FixedBuffers::Auto => {
                // Buffered I/O and READV take no registered buffers: nothing to say there.
                let why_not = if !takes_fixed_buffers(engine.file.is_direct(), opts.opcode) {
                    None
                } else {
                    engine.register(block_size).err().map(|e| match e {
                        Error::Memlock { needed, limit, .. } if needed > limit => {
                            memlock_short(limit, needed, "")
                        }
                        Error::Memlock { needed, limit, .. } => format!(
                            "RLIMIT_MEMLOCK {} cannot hold another {} (it is charged per user: \
                             this run's other threads and the user's other processes share it)",
                            Bytes(limit),
                            Bytes(needed)
                        ),
                        Error::IoUring { source, .. } => source.to_string(),
                        other => other.to_string(),
                    })
                };
                engine.fixed_fallback = why_not;
            }
            FixedBuffers::Off => {}
        }
        if engine.fixed.is_none() && opts.register_files && !engine.files_registered {
            engine.register_files(Setting::RegisterFiles)?;
        }
        Ok(engine)
    }

    /// Records why this engine's buffers are not registered where the caller settled that
    /// for it (`--fixed-buffers auto` declined for a whole run): its mode says so as if it had
    /// tried itself.
    pub fn note_unregistered(&mut self, why: String) {
        if self.fixed.is_none() {
            self.fixed_fallback = Some(why);
        }
    }

    /// Whether a failed run left requests that may still be in the kernel (it could not drain
    /// them): the buffer's memory must then outlive the engine, which leaks it on drop rather
    /// than free it. For a [`crate::io::lent::LentMemory`] view, the lender must keep the
    /// memory for good.
    pub fn leaks_buffer(&self) -> bool {
        self.leak_buffer
    }

    /// Gives the engine another buffer and file for its next runs, keeping its ring, and
    /// returns the old buffer: for callers that move a different buffer or file with each
    /// operation (the Python aio handle's workers), which would otherwise make a ring for each
    /// (`examples/ring_per_op.rs`: 2-3% of a 64 MiB write). Refused, changing nothing, while
    /// requests may still be in flight (a run that could not drain), and for an engine with
    /// registered buffers or files (their registrations name the old ones).
    pub fn retarget(&mut self, buf: B, file: Arc<DataFile>) -> Result<B> {
        if self.in_flight != 0 || self.leak_buffer {
            return Err(Error::Internal(format!(
                "io_uring engine of {} not retargeted: {} requests may still be in flight",
                self.file.path().display(),
                self.in_flight
            )));
        }
        if self.fixed.is_some() || self.files_registered {
            return Err(Error::Internal(
                "an io_uring engine with registered buffers or files cannot be retargeted".into(),
            ));
        }
        self.file = file;
        Ok(std::mem::replace(&mut *self.buf, buf))
    }

    fn register_files(&mut self, setting: Setting) -> Result<()> {
        self.ring
            .submitter()
            .register_files(&[self.file.io_fd(), self.file.buffered_fd()])
            .map_err(|e| Error::IoUring {
                what: crate::error::msg![setting, ": io_uring file registration failed"],
                source: e,
            })?;
        self.files_registered = true;
        Ok(())
    }

    fn register(&mut self, block_size: u64) -> Result<()> {
        let segment = (MAX_REGISTERED / block_size) * block_size;
        let cap = self.buf.capacity() as u64;
        let base = self.buf.as_mut_ptr();
        let iovecs: Vec<libc::iovec> = (0..cap.div_ceil(segment))
            .map(|i| {
                let start = i * segment;
                libc::iovec {
                    // SAFETY: start < capacity, so the pointer stays inside the buffer.
                    iov_base: unsafe { base.add(start as usize) } as *mut libc::c_void,
                    iov_len: segment.min(cap - start) as usize,
                }
            })
            .collect();
        // SAFETY: every iovec lies inside self.buf, which self owns and frees only after the
        // ring is closed (see `Drop`), so the registration never outlives the memory.
        let rc = unsafe { self.ring.submitter().register_buffers(&iovecs) };
        if let Err(e) = rc {
            if e.raw_os_error() == Some(libc::ENOMEM) && !sys::has_cap_ipc_lock() {
                return Err(Error::Memlock {
                    what: crate::error::msg![
                        Setting::FixedBuffers,
                        format!(" registration of {}", Bytes(cap))
                    ],
                    needed: cap,
                    limit: sys::memlock_limit(),
                    hint: crate::error::msg!["run without ", Setting::FixedBuffers],
                });
            }
            return Err(Error::IoUring {
                what: crate::error::msg![
                    Setting::FixedBuffers,
                    format!(": io_uring buffer registration of {} failed", Bytes(cap))
                ],
                source: e,
            });
        }
        if let Err(e) = self.register_files(Setting::FixedBuffers) {
            // Not left half registered: the memory is unpinned again (an `auto` engine goes
            // on unregistered); if even that fails, the error says so (the memory then stays
            // pinned and charged until the ring closes).
            return Err(match self.ring.submitter().unregister_buffers() {
                Ok(()) => e,
                Err(u) => Error::IoUring {
                    what: crate::error::msg![
                        Setting::FixedBuffers,
                        format!(": {e}; and unregistering the buffers again failed")
                    ],
                    source: u,
                },
            });
        }
        self.fixed = Some(Fixed { segment });
        Ok(())
    }

    /// How the engine runs, for reports.
    pub fn mode(&self) -> String {
        let io = if self.file.is_direct() {
            "O_DIRECT"
        } else {
            "buffered"
        };
        let mut reg = String::from(if self.fixed.is_some() {
            "fixed buffers+files"
        } else if self.files_registered {
            "unregistered buffers, registered files"
        } else {
            "unregistered buffers"
        });
        if let Some(why) = &self.fixed_fallback {
            reg = format!("{reg} {NOT_REGISTERED}{why})");
        }
        format!(
            "io_uring {}, {io}, {reg}, qd {}",
            self.ring_setup(),
            self.queue_depth
        )
    }

    /// The ring setup actually used: `ring: defer_taskrun+single_issuer, submit each, wait 1,
    /// opcodes read/write` (plus what `auto` fell back from). One engine moves both directions,
    /// so the opcode family is named for both.
    pub fn ring_setup(&self) -> String {
        let o = &self.opts;
        let op = match (&self.fixed, o.opcode) {
            (Some(_), _) => "read_fixed/write_fixed",
            (None, RingOpcode::Read) => "read/write",
            (None, RingOpcode::Readv) => "readv/writev",
        };
        let mut s = format!(
            "ring: {}, submit {}, wait {}, opcodes {op}",
            self.ring_flags, o.submit, o.wait
        );
        if let Some(f) = &self.ring_fallback {
            s.push_str(&format!(" (auto fell back: {f})"));
        }
        s
    }

    /// Which pages back the engine's buffer.
    pub fn buffer_pages(&self) -> PageBacking {
        self.buf.backing()
    }

    /// The engine's buffer: what the last reads landed in.
    pub fn buffer(&self) -> &[u8] {
        self.buf.as_slice()
    }

    /// The engine's buffer, mutably: what the next writes send.
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut_slice()
    }

    /// The buffer itself (for backends whose buffer type knows more than its bytes).
    pub fn io_buffer(&self) -> &B {
        &self.buf
    }

    /// The buffer itself, mutably.
    pub fn io_buffer_mut(&mut self) -> &mut B {
        &mut self.buf
    }

    /// The submission entry moving `len` bytes at file offset `offset` to or from buffer
    /// byte `buf_offset`. Building it is safe; pushing it is not.
    fn entry(
        &mut self,
        op: Op,
        tail: bool,
        offset: u64,
        buf_offset: usize,
        len: usize,
        slot: usize,
    ) -> squeue::Entry {
        assert!(
            buf_offset + len <= self.buf.capacity(),
            "request outside its buffer"
        );
        // SAFETY: checked just above that [buf_offset, buf_offset+len) is inside the buffer.
        let ptr = unsafe { self.buf.as_mut_ptr().add(buf_offset) };
        let len32 = u32::try_from(len).expect("block sizes are capped at 1 GiB");
        let entry = match (&self.fixed, op) {
            (Some(f), Op::Read) => {
                let idx =
                    u16::try_from(buf_offset as u64 / f.segment).expect("at most 65535 segments");
                let fd = types::Fixed(if tail { FIXED_TAIL_FD } else { FIXED_IO_FD });
                opcode::ReadFixed::new(fd, ptr, len32, idx)
                    .offset(offset)
                    .build()
            }
            (Some(f), Op::Write) => {
                let idx =
                    u16::try_from(buf_offset as u64 / f.segment).expect("at most 65535 segments");
                let fd = types::Fixed(if tail { FIXED_TAIL_FD } else { FIXED_IO_FD });
                opcode::WriteFixed::new(fd, ptr, len32, idx)
                    .offset(offset)
                    .build()
            }
            (None, op) => {
                let vectored = self.opts.opcode == RingOpcode::Readv;
                if vectored {
                    self.iovecs[slot] = SlotIovec(libc::iovec {
                        iov_base: ptr as *mut libc::c_void,
                        iov_len: len,
                    });
                }
                let iov = &self.iovecs[slot].0 as *const libc::iovec;
                macro_rules! build {
                    ($fd:expr) => {
                        match (op, vectored) {
                            (Op::Read, false) => {
                                opcode::Read::new($fd, ptr, len32).offset(offset).build()
                            }
                            (Op::Write, false) => {
                                opcode::Write::new($fd, ptr, len32).offset(offset).build()
                            }
                            (Op::Read, true) => {
                                opcode::Readv::new($fd, iov, 1).offset(offset).build()
                            }
                            (Op::Write, true) => {
                                opcode::Writev::new($fd, iov, 1).offset(offset).build()
                            }
                        }
                    };
                }
                if self.files_registered {
                    build!(types::Fixed(if tail { FIXED_TAIL_FD } else { FIXED_IO_FD }))
                } else {
                    build!(types::Fd(if tail {
                        self.file.buffered_fd()
                    } else {
                        self.file.io_fd()
                    }))
                }
            }
        };
        // A tail write goes through the page cache, and usually shares a page with the
        // O_DIRECT write just before it. If both run at once, the direct write cannot
        // invalidate the page the buffered write dirtied: the kernel then flags the file with
        // EIO ("Page cache invalidation failure on direct I/O"), fdatasync fails, and stale
        // page contents may be written back over the direct write. IO_DRAIN runs the tail
        // alone: after every earlier request has completed, and before any later one starts.
        let entry = if tail && op == Op::Write {
            entry.flags(squeue::Flags::IO_DRAIN)
        } else {
            entry
        };
        entry.user_data(slot as u64)
    }

    fn push(&mut self, entry: &squeue::Entry) {
        // SAFETY: the entry points into self.buf (checked in `entry`), which outlives the
        // operation: a run drains every in-flight request before it returns (or, if the
        // kernel refuses to let it, marks the buffer to be leaked), and `Drop` waits for any
        // request still counted in flight before it frees the buffer. A READV/WRITEV entry
        // points at its slot's iovec in `self.iovecs`, which is never reallocated and not
        // rewritten until that slot's request completed. At most queue_depth entries are in
        // flight and the ring has at least that many slots, so the queue cannot be full.
        let pushed = unsafe { self.ring.submission().push(entry) };
        pushed.expect("submission queue sized to the queue depth");
    }

    /// Moves every request, keeping up to queue_depth in flight; one latency per request.
    pub fn run(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<()> {
        self.run_staged(op, requests, latencies, &mut InPlace)
            .map(drop)
    }

    /// Like [`UringEngine::run`] (every request at its own `buf_offset`), calling
    /// `f(buf_offset, bytes)` for each request once it has completed, in completion order,
    /// while the rest stay in flight. An error from `f` ends the run with it.
    pub fn run_observed(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
        f: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.run_staged(op, requests, latencies, &mut Observed { f })
            .map(drop)
    }

    /// Like [`UringEngine::run`], with `stager` choosing where in the buffer each request
    /// does its I/O and acting on each completion. Returns the time during which at least one
    /// request was in flight. Never returns with a request in flight, and calls
    /// `stager.finish()` before returning, on errors too.
    pub fn run_staged(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
        stager: &mut dyn Stager,
    ) -> Result<Duration> {
        let mut busy = IoBusy::default();
        let outcome = self.pump(op, requests, latencies, stager, &mut busy);
        let finished = stager.finish();
        if finished.is_err() {
            // The stager could not confirm that its asynchronous work on the buffer ended.
            self.leak_buffer = true;
        }
        outcome?;
        finished?;
        Ok(busy.total)
    }

    /// Submits what is queued and, with `want` > 0, waits for that many completions.
    /// Interruptions are retried by the caller's loop; any other failure of io_uring_enter
    /// leaks the buffer, since requests the kernel already holds cannot be waited for.
    ///
    /// Like fio, every enter of a ring that is not polled by SQPOLL carries GETEVENTS when it
    /// submits one request at a time (`--ring-submit each`): with DEFER_TASKRUN that posts the
    /// completions already in, so the next wait may find them without sleeping.
    fn enter(&mut self, want: usize) -> Result<()> {
        let rc = if self.opts.setup == RingSetup::Sqpoll {
            // The crate wakes the polling thread when it sleeps.
            if want == 0 {
                self.ring.submit()
            } else {
                self.ring.submit_and_wait(want)
            }
        } else {
            let to_submit = self.ring.submission().len() as u32;
            let getevents = want > 0 || self.opts.submit == RingSubmit::Each;
            let flags = if getevents { IORING_ENTER_GETEVENTS } else { 0 };
            if to_submit == 0 && !getevents {
                return Ok(());
            }
            // SAFETY: no argument pointer is passed (None), so the kernel reads no memory of
            // ours beyond the rings, which the IoUring owns.
            unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(to_submit, want as u32, flags, None)
            }
        };
        match rc {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => {
                self.leak_buffer = true;
                Err(Error::IoUring {
                    what: format!(
                        "io_uring_enter failed with {} requests in flight on {}",
                        self.in_flight,
                        self.file.path().display()
                    )
                    .into(),
                    source: e,
                })
            }
        }
    }

    fn pump(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
        stager: &mut dyn Stager,
        busy: &mut IoBusy,
    ) -> Result<()> {
        let qd = self.queue_depth as usize;
        let mut slots = vec![Slot::default(); qd];
        let mut free: Vec<usize> = (0..qd).rev().collect();
        let mut next = 0usize;
        debug_assert_eq!(self.in_flight, 0, "a previous run drained its ring");
        let mut first_error: Option<Error> = None;
        let mut completions: Vec<(usize, i32)> = Vec::with_capacity(qd);
        // Finished requests whose `complete` waits until the queue is refilled and submitted
        // (stagers with independent ranges only).
        let defer = stager.independent_ranges();
        let mut finished: Vec<(usize, usize)> = Vec::with_capacity(qd);
        let base = self.buf.as_mut_ptr();
        loop {
            let mut blocked = false;
            while first_error.is_none() && next < requests.len() && !free.is_empty() {
                let r = requests[next];
                // SAFETY: `base` is this engine's buffer, which stays allocated until the
                // stager's `finish` succeeded (see `run_staged` and `Drop`).
                let buf_offset = match unsafe { stager.acquire(next, &r, base) } {
                    Ok(Some(o)) => o,
                    Ok(None) => {
                        blocked = true;
                        break;
                    }
                    Err(e) => {
                        first_error = Some(e);
                        break;
                    }
                };
                let slot = free.pop().expect("checked non-empty");
                slots[slot] = Slot {
                    request: next,
                    buf_offset,
                    done: 0,
                    started: Some(Instant::now()),
                };
                let e = self.entry(op, r.tail, r.file_offset, buf_offset, r.len, slot);
                self.push(&e);
                next += 1;
                if self.in_flight == 0 {
                    busy.start();
                }
                self.in_flight += 1;
                if self.opts.submit == RingSubmit::Each {
                    self.enter(0)?;
                }
            }
            if blocked && first_error.is_none() {
                // The stager has no room ready. If its own work (a copy) will make some, wait
                // for that rather than for an I/O completion, so the queue refills as soon as
                // a chunk frees up; what was queued meanwhile goes to the kernel first.
                if self.in_flight > 0 {
                    self.enter(0)?;
                }
                match stager.wait() {
                    Ok(true) => continue,
                    Ok(false) if self.in_flight > 0 => {} // room comes back with completions
                    Ok(false) => {
                        first_error = Some(Error::Internal(
                            "internal error: a stager had no room and nothing to wait for (please report it)".into(),
                        ))
                    }
                    Err(e) => first_error = Some(e),
                }
            }
            if !finished.is_empty() {
                // The refill above goes to the kernel first; then the finished requests'
                // work runs while the queue is full.
                if self.in_flight > 0 {
                    self.enter(0)?;
                }
                for (index, buf_offset) in finished.drain(..) {
                    if first_error.is_none() {
                        // SAFETY: as for `acquire` above; the range of a finished request is
                        // used by no request in flight (independent ranges).
                        let done =
                            unsafe { stager.complete(index, &requests[index], buf_offset, base) };
                        if let Err(e) = done {
                            first_error = Some(e);
                        }
                    }
                }
            }
            if self.in_flight == 0 {
                break;
            }
            // Completions already posted are reaped without sleeping (what is still queued
            // goes to the kernel first); otherwise wait for as many as `--ring-wait` says.
            if self.ring.completion().is_empty() {
                let want = self.opts.wait.want(self.in_flight);
                self.enter(want)?;
            } else if !self.ring.submission().is_empty() {
                self.enter(0)?;
            }
            completions.clear();
            completions.extend(
                self.ring
                    .completion()
                    .map(|c: cqueue::Entry| (c.user_data() as usize, c.result())),
            );
            for &(slot, res) in &completions {
                let s = slots[slot];
                let r = requests[s.request];
                let offset = r.file_offset + s.done as u64;
                let remaining = r.len - s.done;
                let failure = if res < 0 {
                    Some(Error::io(
                        FileOp::from(op),
                        self.file.path(),
                        offset,
                        remaining as u64,
                        std::io::Error::from_raw_os_error(-res),
                    ))
                } else if res == 0 {
                    Some(Error::nothing_moved(
                        op,
                        self.file.path(),
                        offset,
                        remaining,
                    ))
                } else {
                    None
                };
                if let Some(err) = failure {
                    first_error.get_or_insert(err);
                    self.in_flight -= 1;
                    free.push(slot);
                    continue;
                }
                let done = s.done + res as usize;
                if done >= r.len {
                    if let Some(t) = s.started {
                        latencies.record(t.elapsed());
                    }
                    self.in_flight -= 1;
                    free.push(slot);
                    if defer {
                        finished.push((s.request, s.buf_offset));
                    } else if first_error.is_none() {
                        // SAFETY: as for `acquire` above.
                        let done = unsafe { stager.complete(s.request, &r, s.buf_offset, base) };
                        if let Err(e) = done {
                            first_error = Some(e);
                        }
                    }
                } else if first_error.is_some() {
                    self.in_flight -= 1;
                    free.push(slot);
                } else {
                    // Short transfer: resubmit the remainder in the same slot.
                    slots[slot].done = done;
                    let e = self.entry(
                        op,
                        r.tail,
                        r.file_offset + done as u64,
                        s.buf_offset + done,
                        r.len - done,
                        slot,
                    );
                    self.push(&e);
                }
            }
            if self.in_flight == 0 {
                busy.stop();
            }
        }
        busy.stop();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Time during which at least one request was in flight.
#[derive(Default)]
struct IoBusy {
    since: Option<Instant>,
    total: Duration,
}

impl IoBusy {
    fn start(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    fn stop(&mut self) {
        if let Some(t) = self.since.take() {
            self.total += t.elapsed();
        }
    }
}

impl<B: IoBuffer> Drop for UringEngine<B> {
    fn drop(&mut self) {
        // Closing a ring does not wait for its requests. A run never returns with requests in
        // flight, but a panic inside it could: wait for them here, and if the kernel will not
        // let us, leak the buffer rather than free memory a request may still write.
        while self.in_flight > 0 && !self.leak_buffer {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(_) => self.leak_buffer = true,
            }
            let reaped = self.ring.completion().count();
            self.in_flight = self.in_flight.saturating_sub(reaped);
        }
        // SAFETY: each field is dropped exactly once, here, and never used again. No request is
        // in flight any more (waited for above), or the buffer is leaked instead of freed.
        unsafe {
            ManuallyDrop::drop(&mut self.ring);
            if !self.leak_buffer {
                ManuallyDrop::drop(&mut self.buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::buffer::HugePages;
    use crate::io::file::Access;
    use crate::testutil::requests;
    use std::collections::VecDeque;

    /// A stager over a ring of `k` chunks whose "copies" to `dest` are deferred: a chunk is
    /// copied and freed only in `acquire` (when no chunk is free) or in `wait`, as the bounce
    /// stagers do with events; `fail_at` makes the completion of that request fail.
    struct CpuRing {
        chunk: usize,
        free: Vec<usize>,
        pending: VecDeque<(usize, Request)>,
        dest: Vec<u8>,
        waits: usize,
        finished: bool,
        fail_at: Option<usize>,
    }

    impl CpuRing {
        fn new(k: usize, chunk: usize, len: usize) -> Self {
            CpuRing {
                chunk,
                free: (0..k).collect(),
                pending: VecDeque::new(),
                dest: vec![0; len],
                waits: 0,
                finished: false,
                fail_at: None,
            }
        }

        /// Completes the oldest deferred copy.
        fn copy_oldest(&mut self, base: *mut u8) -> bool {
            let Some((c, r)) = self.pending.pop_front() else {
                return false;
            };
            // SAFETY: test code: chunk c lies inside the engine's buffer at `base`.
            let src = unsafe { std::slice::from_raw_parts(base.add(c * self.chunk), r.len) };
            self.dest[r.buf_offset..r.buf_offset + r.len].copy_from_slice(src);
            self.free.push(c);
            true
        }
    }

    // The tests keep `base` from the last call to copy in `wait`, which gets none.
    thread_local! {
        static BASE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    impl Stager for CpuRing {
        unsafe fn acquire(
            &mut self,
            _: usize,
            r: &Request,
            base: *mut u8,
        ) -> Result<Option<usize>> {
            assert!(r.len <= self.chunk);
            BASE.with(|b| b.set(base as usize));
            Ok(self.free.pop().map(|c| c * self.chunk))
        }

        unsafe fn complete(
            &mut self,
            i: usize,
            r: &Request,
            off: usize,
            base: *mut u8,
        ) -> Result<()> {
            BASE.with(|b| b.set(base as usize));
            if self.fail_at == Some(i) {
                return Err(Error::Internal(format!("injected failure at request {i}")));
            }
            self.pending.push_back((off / self.chunk, *r));
            Ok(())
        }

        fn wait(&mut self) -> Result<bool> {
            self.waits += 1;
            let base = BASE.with(|b| b.get()) as *mut u8;
            Ok(self.copy_oldest(base))
        }

        fn finish(&mut self) -> Result<()> {
            let base = BASE.with(|b| b.get()) as *mut u8;
            while self.copy_oldest(base) {}
            self.finished = true;
            Ok(())
        }
    }

    /// True (and says so) where this kernel cannot run io_uring: the test is skipped.
    fn io_uring_missing() -> bool {
        match unavailable_reason() {
            Some(why) => {
                eprintln!("note: skipping: {why}");
                true
            }
            None => false,
        }
    }

    /// An engine over `f` with a `len`-byte buffer of 4 KiB pages, unregistered.
    fn engine(len: usize, f: &Arc<DataFile>, qd: u32, bs: usize) -> UringEngine<HostBuffer> {
        let buf = HostBuffer::new(len, HugePages::Off).unwrap();
        UringEngine::new(buf, Arc::clone(f), qd, bs as u64, false).unwrap()
    }

    fn data_file(len: usize) -> (tempfile::TempDir, Arc<DataFile>, Vec<u8>) {
        let dir = crate::testutil::scratch_dir();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = Arc::new(DataFile::open(&path, Access::Read, true).unwrap());
        (dir, f, data)
    }

    #[test]
    fn a_refused_setup_names_the_setting_and_what_it_needs() {
        let e = setup_refused(
            RingSetup::Defer,
            8,
            std::io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(
            e.to_string().starts_with(
                "ring_setup: defer: the kernel refused io_uring_setup with 8 entries ("
            ),
            "{e}"
        );
        assert!(
            e.to_string().ends_with("); DEFER_TASKRUN needs Linux 6.1+"),
            "{e}"
        );
    }

    #[test]
    fn a_retargeted_engine_moves_the_new_files_bytes_into_the_new_buffer() {
        if io_uring_missing() {
            return;
        }
        let (d1, f1, data1) = data_file(16 * 4096);
        let data2: Vec<u8> = (0..24 * 4096).map(|i| (i * 13 + 5) as u8).collect();
        let p2 = d1.path().join("g");
        std::fs::write(&p2, &data2).unwrap();
        let f2 = Arc::new(DataFile::open(&p2, Access::Read, true).unwrap());
        assert!(data1[..4096] != data2[..4096]);
        let bs = 8192;
        let mut lat = LatencyRecorder::new();
        let mut e = engine(data1.len(), &f1, 4, bs);
        e.run(Op::Read, &requests(data1.len(), bs), &mut lat)
            .unwrap();
        assert!(e.buffer() == &data1[..]);
        // Another (larger) buffer and another file: the old buffer comes back intact.
        let old = e
            .retarget(
                HostBuffer::new(data2.len(), HugePages::Off).unwrap(),
                Arc::clone(&f2),
            )
            .unwrap();
        assert!(old.as_slice() == &data1[..]);
        e.run(Op::Read, &requests(data2.len(), bs), &mut lat)
            .unwrap();
        assert!(e.buffer() == &data2[..]);
        // Writes go to the new file, from the new buffer.
        let mut out = e
            .retarget(
                HostBuffer::new(4096, HugePages::Off).unwrap(),
                Arc::clone(&f1),
            )
            .unwrap();
        assert!(out.as_slice() == &data2[..]);
        out.as_mut_slice()[..4096].fill(0xab);
        let p3 = d1.path().join("out");
        let f3 = Arc::new(DataFile::open(&p3, Access::Write, true).unwrap());
        f3.set_len(data2.len() as u64).unwrap();
        e.retarget(out, f3).unwrap();
        e.run(Op::Write, &requests(data2.len(), bs), &mut lat)
            .unwrap();
        let written = std::fs::read(&p3).unwrap();
        assert!(written[..4096].iter().all(|&b| b == 0xab));
        assert!(written[4096..] == data2[4096..]);
        // An engine with registered files keeps its file.
        let mut fixed = UringEngine::with_ring(
            HostBuffer::new(4096, HugePages::Off).unwrap(),
            Arc::clone(&f1),
            2,
            4096,
            FixedBuffers::Off,
            RingOptions {
                register_files: true,
                ..RingOptions::default()
            },
        )
        .unwrap();
        let Err(err) = fixed.retarget(HostBuffer::new(4096, HugePages::Off).unwrap(), f2) else {
            panic!("an engine with registered files was retargeted");
        };
        assert!(err.to_string().contains("registered"), "{err}");
    }

    #[test]
    fn staged_reads_through_a_small_ring_land_in_place() {
        if io_uring_missing() {
            return;
        }
        let (_d, f, data) = data_file(64 * 4096);
        let bs = 16 * 1024;
        // Fewer chunks than the queue depth, and more: both must move every byte.
        for (k, qd) in [(2, 8), (12, 4)] {
            let mut engine = engine(k * bs, &f, qd, bs);
            let mut ring = CpuRing::new(k, bs, data.len());
            let reqs = requests(data.len(), bs);
            let mut lat = LatencyRecorder::new();
            let busy = engine
                .run_staged(Op::Read, &reqs, &mut lat, &mut ring)
                .unwrap();
            assert!(ring.finished && ring.dest == data, "k {k} qd {qd}");
            assert_eq!(lat.count(), reqs.len() as u64);
            assert!(busy > Duration::ZERO);
            if k < qd as usize {
                assert!(
                    ring.waits > 0,
                    "a 2-chunk ring must have waited on its copies"
                );
            }
        }
    }

    #[test]
    fn a_stager_error_drains_the_ring_and_still_finishes() {
        if io_uring_missing() {
            return;
        }
        let (_d, f, data) = data_file(32 * 4096);
        let bs = 8 * 1024;
        let mut engine = engine(4 * bs, &f, 4, bs);
        let mut ring = CpuRing::new(4, bs, data.len());
        ring.fail_at = Some(5);
        let reqs = requests(data.len(), bs);
        let e = engine
            .run_staged(Op::Read, &reqs, &mut LatencyRecorder::new(), &mut ring)
            .unwrap_err();
        assert_eq!(e.to_string(), "injected failure at request 5");
        assert!(ring.finished, "finish runs after an error too");
        assert!(!engine.leak_buffer);
        // The engine is usable again afterwards.
        let mut ring = CpuRing::new(4, bs, data.len());
        engine
            .run_staged(Op::Read, &reqs, &mut LatencyRecorder::new(), &mut ring)
            .unwrap();
        assert_eq!(ring.dest, data);
    }

    #[test]
    fn observed_runs_see_every_request_once_with_its_bytes() {
        if io_uring_missing() {
            return;
        }
        // The observer runs after the queue is refilled (independent ranges): every request
        // must still be observed exactly once, with the bytes read for it, also the last few
        // (observed after the ring has drained) and with fewer requests than the queue depth.
        let (_d, f, data) = data_file(48 * 4096);
        let bs = 8 * 1024;
        for qd in [1, 4, 64] {
            let mut engine = engine(data.len(), &f, qd, bs);
            let reqs = requests(data.len(), bs);
            let mut seen = vec![0u32; reqs.len()];
            let mut lat = LatencyRecorder::new();
            engine
                .run_observed(Op::Read, &reqs, &mut lat, &mut |off, bytes| {
                    assert_eq!(bytes, &data[off..off + bytes.len()], "qd {qd} at {off}");
                    seen[off / bs] += 1;
                    Ok(())
                })
                .unwrap();
            assert!(seen.iter().all(|&n| n == 1), "qd {qd}: {seen:?}");
            assert_eq!(lat.count(), reqs.len() as u64);
        }
        // An observer's error ends the run with it, nothing left in flight; the engine works
        // again afterwards.
        let mut engine = engine(data.len(), &f, 4, bs);
        let reqs = requests(data.len(), bs);
        let mut calls = 0;
        let e = engine
            .run_observed(Op::Read, &reqs, &mut LatencyRecorder::new(), &mut |_, _| {
                calls += 1;
                if calls == 3 {
                    return Err(Error::Internal("observer refused".into()));
                }
                Ok(())
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "observer refused");
        assert_eq!(calls, 3, "no request is observed after the error");
        assert!(!engine.leak_buffer && engine.in_flight == 0);
        let mut n = 0;
        engine
            .run_observed(Op::Read, &reqs, &mut LatencyRecorder::new(), &mut |_, _| {
                n += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(n, reqs.len());
    }
}
