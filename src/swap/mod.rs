//! A swap store: named tensors moved between memory and NVMe files through any backend,
//! asynchronously, without losing data.
//!
//! - [`SwapStore::open`] on a directory, with the backend, staging-memory budget and checksum
//!   verification chosen in [`SwapOptions`];
//! - [`SwapStore::swap_out`] / [`SwapStore::swap_in`] return a [`Ticket`] to poll or wait on;
//!   [`SwapStore::prefetch`], [`SwapStore::remove`], [`SwapStore::list`];
//! - tensors ([`Tensor`]: [`HostTensor`] in ordinary memory, [`PinnedTensor`] in page-locked
//!   memory registered with CUDA, both viewable as typed slices (f32, u16 for f16/bf16, ...),
//!   and [`DeviceTensor`] in GPU memory, swapped device-to-device through the staging of a
//!   `bounce` or `gds` store) have any byte length; on disk each is padded to the O_DIRECT
//!   alignment, and exactly its bytes come back; [`ForeignDeviceTensor`] is device memory the
//!   caller owns (a PyTorch or CuPy tensor's), swapped as a `DeviceTensor` is.
//! - a swap of a [`DeviceTensor`] waits, on the GPU, for the caller's work queued before the
//!   call on the legacy default stream of its context (every blocking stream), or on a stream
//!   the caller names ([`SwapStore::swap_out_after`], [`SwapStore::swap_in_after`],
//!   [`GpuWork`]).
//!
//! ```
//! use gdswap::swap::{DType, HostTensor, SwapOptions, SwapStore};
//! # let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/doc-tmp");
//! # std::fs::create_dir_all(&base).unwrap();
//! # let tmp = tempfile::tempdir_in(base).unwrap();
//! # let dir = tmp.path();
//! let store = SwapStore::open(dir, SwapOptions::default())?;
//! let w = HostTensor::from_slice(DType::F32, &[1.0f32, 2.0, 3.0])?;
//! store.swap_out("layer0.weight", &w)?.wait()?;       // durable when the ticket says Ok
//!
//! store.prefetch("layer0.weight")?;                   // start reading ahead
//! let mut back = HostTensor::zeros(DType::F32, &[3])?;
//! let mut ticket = store.swap_in("layer0.weight", &mut back)?;
//! while !ticket.poll() { /* do other work */ }
//! ticket.wait()?;                                     // CRC-32C checked
//! assert_eq!(back.as_slice::<f32>()?, &[1.0, 2.0, 3.0]);
//! assert_eq!(store.list()[0].name, "layer0.weight");
//! store.remove("layer0.weight")?;
//! # Ok::<(), gdswap::Error>(())
//! ```
//!
//! # Crash safety
//! A swap-out writes the new version to free space of the data file (never over the extent
//! the manifest points at), fdatasyncs it, and only then commits a new manifest (temporary
//! file, fsync, rename, fsync of the directory). The old extent is freed after that commit,
//! so a process killed at any point leaves the manifest pointing at complete, durable data:
//! every tensor reads back as its last completed swap-out. Swap-outs whose writes end while
//! another is being committed share the next fdatasync and manifest (group commit, on the
//! store's commit thread), so many small swap-outs do not pay three flushes each.
//!
//! # What `open` may change
//! Nothing in `data.bin`: it never shrinks it or writes it (space past the last tensor is
//! reused by later swap-outs). It creates the directory, `lock`, and for a new store an empty
//! `data.bin` and an empty manifest (made durable before any swap-out); it removes a leftover
//! `manifest.json.tmp`. Every store file is opened without following a symlink and must be
//! a regular file of this user with one link. A manifest entry that fails its checks is
//! quarantined ([`SwapStore::quarantined`]) and the others stay readable; a `data.bin`
//! without its manifest is refused. [`SwapOptions::discard_existing`] starts over: it removes
//! the manifest and then `data.bin`, under the lock.
//!
//! # Checksums
//! CRC-32C (Castagnoli): computed by the SSE4.2 `crc32` instruction on x86 and the CRC
//! extension on ARMv8 (the `crc32c` crate uses both), so it runs at memory speed, and it is
//! what storage itself uses for the same job (iSCSI, ext4 and btrfs metadata, NVMe
//! end-to-end protection). It catches every burst error up to 32 bits and torn or stale
//! blocks with probability 1 - 2^-32; swaps need error detection, not a hash for tables.

mod alloc;
mod buffer;
mod checks;
mod committer;
mod device_tensor;
mod foreign;
mod jobs;
mod manifest;
mod options;
mod remove;
mod staged;
mod staging;
mod state;
mod store;
mod swap_in;
mod swap_out;
mod threads;
mod ticket;

pub use buffer::{DType, DeviceSpan, HostTensor, PinnedTensor, Tensor};
pub use device_tensor::{DeviceTensor, GpuWork};
pub use foreign::ForeignDeviceTensor;
pub use manifest::{Entry, Quarantined, DATA_FILE, MANIFEST};
pub use staged::{Refused, StagedTensor, StagedTicket};
pub use store::{default_io_threads, SwapOptions, SwapStats, SwapStore, LOCK_FILE};
pub use ticket::Ticket;
