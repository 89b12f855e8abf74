//! The checks the store's operations share before they start: one operation per tensor at a
//! time (`claim`), a tensor's memory against the length it reports, host or device memory
//! against the store's staging and the GPU work to order after, staged tensors against the
//! backend; and `within`, the operation and tensor an operation's error is wrapped in.

use crate::error::{Error, Result};

use super::buffer::Tensor;
use super::device_tensor::GpuWork;
use super::state::{swap_err, OpKind, State};
use super::store::SwapStore;

pub(super) fn within(what: OpKind, name: &str, e: Error) -> Error {
    Error::Within {
        context: format!("{} of tensor '{name}'", what.name()).into(),
        source: Box::new(e),
    }
}

impl SwapStore {
    /// Device tensors need device staging on the tensor's GPU.
    pub(super) fn check_device(&self, name: &str, gpu: usize) -> Result<()> {
        let opts = &self.shared.opts;
        if !self.shared.staging.device_staging() {
            return Err(swap_err(
                name,
                format!(
                    "a device tensor needs a store opened with a device backend (bounce or gds); this one uses {}",
                    opts.backend
                ),
            ));
        }
        if gpu != opts.gpu {
            return Err(swap_err(
                name,
                format!(
                    "the tensor is on GPU {gpu} and the store stages on GPU {} (SwapOptions::gpu)",
                    opts.gpu
                ),
            ));
        }
        Ok(())
    }

    /// Marks `name` busy with `kind`, or says what is in flight on it. A prefetch the store
    /// holds (no ticket to wait for) gives way to a swap-out or remove, which drop it: its
    /// read goes on, unused, and its end releases nothing (claims are released by id).
    pub(super) fn claim(&self, s: &mut State, name: &str, kind: OpKind) -> Result<u64> {
        if let Some(&(k, _)) = s.busy.get(name) {
            let gives_way = k == OpKind::Prefetch
                && matches!(kind, OpKind::SwapOut | OpKind::Remove)
                && s.prefetched.contains_key(name);
            if gives_way {
                s.prefetched.remove(name);
                s.busy.remove(name);
                return self.claim(s, name, kind);
            }
            return Err(swap_err(
                name,
                format!(
                    "a {} is in flight on this tensor; wait for its ticket before the {}",
                    k.name(),
                    kind.name()
                ),
            ));
        }
        s.next_op += 1;
        let id = s.next_op;
        s.busy.insert(name.to_string(), (kind, id));
        Ok(id)
    }

    /// Host backends only: staged tensors live in host staging memory.
    pub(super) fn check_staged(&self, name: &str) -> Result<()> {
        if self.shared.staging.device_staging() {
            return Err(swap_err(
                name,
                format!(
                    "staged tensors need a host backend (host, posix); this store uses {}: swap DeviceTensors instead",
                    self.shared.opts.backend
                ),
            ));
        }
        Ok(())
    }
}

/// Host tensors are read and written by the CPU: no GPU work to order them after, and a
/// caller naming a stream gets an error rather than a silent no-op.
pub(super) fn check_host_order(name: &str, after: GpuWork) -> Result<()> {
    match after {
        GpuWork::Stream(_) => Err(swap_err(
            name,
            "a GPU stream to order after applies to device tensors only; this is a host tensor (synchronise its GPU work before the call)",
        )),
        GpuWork::LegacyStream | GpuWork::Nothing => Ok(()),
    }
}

/// A `Tensor` implementation must give its bytes (or device memory) the length it reports.
pub(super) fn check_lengths(name: &str, t: &dyn Tensor, memory_len: usize) -> Result<()> {
    if memory_len == t.byte_len() {
        return Ok(());
    }
    Err(swap_err(
        name,
        format!(
            "the tensor says it holds {} bytes but its memory has {memory_len} (a Tensor implementation whose byte_len and memory disagree)",
            t.byte_len()
        ),
    ))
}
