//! What one mode measured ([`ModeReport`]): step, compute and wait times, bytes moved, the
//! store's peaks and counters, and the bit-for-bit check's result.

use std::time::Duration;

use super::options::Mode;

/// What one mode measured.
#[derive(Debug, Clone)]
pub struct ModeReport {
    /// The mode measured.
    pub mode: Mode,
    /// Mean wall time of one optimizer step (all sub-groups).
    pub step_time: Duration,
    /// Mean time per step in Adam itself.
    pub compute_time: Duration,
    /// Mean time per step the update waited for swap-ins and write-backs.
    pub io_wait: Duration,
    /// Bytes swapped in per step (padded, as moved).
    pub read_bytes: u64,
    /// Bytes written back per step (padded, as moved).
    pub write_bytes: u64,
    /// Most staging memory (host; pinned for a device backend) the store held at once.
    pub peak_staging: u64,
    /// Most device memory the store's staging held at once (0 for host backends).
    pub peak_device: u64,
    /// Bytes the store read and wrote over the whole run (initial state, warm-up and
    /// measured steps, and the check), from its own counters.
    pub store_bytes_read: u64,
    /// Bytes the store wrote over the whole run, from its own counters.
    pub store_bytes_written: u64,
    /// Host tensors the simulator itself held (one sub-group's state).
    pub host_tensors: u64,
    /// Whether the swapped state equals the in-memory steps bit for bit (None: not checked).
    pub bit_exact: Option<bool>,
    /// The first mismatch found, if any.
    pub mismatch: Option<String>,
    /// `gds`: the path cuFile's I/O took (GPUDirect or compat mode, with the evidence).
    pub gds_path: Option<crate::types::GdsVerdict>,
}

impl ModeReport {
    /// Bytes read per second of step time.
    pub fn read_bw(&self) -> f64 {
        self.read_bytes as f64 / self.step_time.as_secs_f64()
    }
    /// Bytes written per second of step time.
    pub fn write_bw(&self) -> f64 {
        self.write_bytes as f64 / self.step_time.as_secs_f64()
    }
}
