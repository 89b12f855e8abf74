//! The [`UringEngine`]: what one worker's engine owns (ring, buffer, file) and in which order
//! it lets them go, how it is made (its ring; with `--fixed-buffers`, its buffer and
//! descriptors registered with the kernel, or under `auto` why not), and what it reports.
//! Its `Drop` is the last line of the soundness rule (module `io::uring`): it waits for any
//! request a panic left in flight, closes the ring, and only then frees the buffer. Moving
//! requests is module `run`'s.

use std::mem::ManuallyDrop;
use std::sync::Arc;

use io_uring::IoUring;

use crate::error::{Error, Result, Setting};
use crate::io::buffer::{HostBuffer, PageBacking};
use crate::io::file::DataFile;
use crate::io::sys;
use crate::size::Bytes;
use crate::types::ring_options::{FixedBuffers, RingOpcode, RingOptions};

use super::ring::make_ring;
use super::stager::IoBuffer;

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

/// Registration of the buffer (in segments of at most 1 GiB) and the file's descriptors.
pub(super) struct Fixed {
    /// Bytes per registered segment; request `buf_offset / segment` is its buffer index.
    pub(super) segment: u64,
}

/// Index of the O_DIRECT descriptor and of the buffered one (for tails) in the registered
/// file table.
pub(super) const FIXED_IO_FD: u32 = 0;
pub(super) const FIXED_TAIL_FD: u32 = 1;

/// One worker's ring, buffer and file.
pub struct UringEngine<B: IoBuffer = HostBuffer> {
    // Dropped by hand in `Drop`: the ring first, then the buffer (unless leaked).
    pub(super) ring: ManuallyDrop<IoUring>,
    pub(super) buf: ManuallyDrop<B>,
    /// Set when requests may still be in the kernel and could not be drained.
    pub(super) leak_buffer: bool,
    /// Requests pushed and not yet completed. Kept in the engine (not in `pump`) so that `Drop`
    /// can wait for them if a run is left by a panic.
    pub(super) in_flight: usize,
    pub(super) file: Arc<DataFile>,
    pub(super) queue_depth: u32,
    pub(super) fixed: Option<Fixed>,
    /// The file descriptors are registered (with `fixed`, or `--register-files` alone).
    pub(super) files_registered: bool,
    pub(super) opts: RingOptions,
    ring_flags: &'static str,
    ring_fallback: Option<String>,
    /// `--fixed-buffers auto` that could not register: why (the mode line says it).
    fixed_fallback: Option<String>,
    /// One iovec per slot for READV/WRITEV: the kernel reads it at submission, and it stays
    /// put (never reallocated) while the engine lives.
    pub(super) iovecs: Vec<SlotIovec>,
}

/// One slot's iovec (READV/WRITEV).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(super) struct SlotIovec(pub(super) libc::iovec);

// SAFETY: the pointer inside is only an address into the engine's own buffer, handed to the
// kernel; it is never dereferenced by Rust code, so moving it to another thread with the
// engine (which owns the buffer) is sound.
unsafe impl Send for SlotIovec {}

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
