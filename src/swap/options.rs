//! How a swap store is opened: its options, apart from the store so that the store's shared
//! state (state.rs) can hold them without importing the store.

use crate::backend::BackendId;

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct SwapOptions {
    /// The backend every transfer goes through.
    pub backend: BackendId,
    /// The GPU a device backend stages on (`bounce`, `gds`); device tensors must be on it.
    pub gpu: usize,
    /// Bytes of staging memory (the backend's transfer buffers) the store may hold at once.
    pub staging_budget: u64,
    /// Check each swap-in's CRC-32C against the manifest.
    pub verify: bool,
    /// O_DIRECT on the data file (off only for filesystems without it, such as tmpfs).
    pub direct: bool,
    /// Threads running swaps concurrently. Default: the CPUs this process may use, at most
    /// 4 (each swap's checksums and copies take a CPU, and more I/O threads than CPUs compete
    /// with the caller's compute: in one pair of runs on a 2-CPU VM, 4 I/O threads made a
    /// pipelined optimizer step 1.35x its I/O bound and 2 threads 1.06x, see
    /// bench-results/2026-11-24-optim-sim-host).
    pub io_threads: usize,
    /// Bytes per I/O request.
    pub block_size: u64,
    /// Requests in flight per swap (backends with queues).
    pub queue_depth: u32,
    /// Start over: once the store's lock is held, remove an existing store's manifest and
    /// data file (only those, and only when they are regular files of this user) before
    /// opening it empty. Without it, a store is opened as it is, and a data file without a
    /// manifest is refused.
    pub discard_existing: bool,
}

impl Default for SwapOptions {
    fn default() -> Self {
        SwapOptions {
            backend: BackendId::Host,
            gpu: 0,
            staging_budget: 1 << 30,
            verify: true,
            direct: true,
            io_threads: default_io_threads(),
            block_size: 1 << 20,
            queue_depth: 8,
            discard_existing: false,
        }
    }
}

/// The CPUs this process may use (its affinity), at most 4.
pub fn default_io_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}
