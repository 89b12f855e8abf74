//! `gdswap optim-sim`: the optimizer step of a model too big for the accelerator's memory,
//! with its state swapped through a [`SwapStore`].
//!
//! The parameters are split into sub-groups; each holds fp32 master weights and Adam's two
//! moments (three tensors `gN.w`, `gN.m`, `gN.v`). Per sub-group: swap in, a real Adam step
//! on the host for every backend (with `bounce` the state passes through device memory on
//! its way to and from the disk, but no kernel runs on the GPU), swap out. Gradients are
//! generated per step and element, or (`grads`) read in as an fp16 tensor `gN.grad` per
//! sub-group. `serial` waits for each swap; `pipelined` prefetches the next
//! `buffers - 1` sub-groups and keeps up to `buffers` write-backs in flight while updating.
//!
//! After the steps every sub-group is read back and compared bit for bit with the same steps
//! done in memory (sub-groups evolve independently, so the reference is rebuilt one
//! sub-group at a time and needs no more memory than one).
//!
//! This file holds the entry points ([`run_mode`], [`pure_io`], [`pure_compute`]); what is
//! asked is in `options`, the optimizer arithmetic in `adam`, the sub-groups and their
//! tensors in `groups`, what a run needs and the checks before it starts in `preflight`, the
//! serial and pipelined step schedule in `schedule`, the bit-for-bit check in `bit_exact`,
//! and what a mode measured in `report`.

mod adam;
mod bit_exact;
mod groups;
mod options;
mod preflight;
mod report;
mod schedule;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::swap::{SwapOptions, SwapStore};
use adam::init_weight;
use groups::{grads_of, new_group, Groups};
use preflight::check_store_dir;
use schedule::simulate;

pub use adam::{adam, adam_step, f16_to_f32, grad_f16};
pub use options::{parse_count, validate, Mode, SimOptions};
pub use preflight::{needs, preflight, Needs};
pub use report::ModeReport;

/// Runs the simulation in `mode` on a fresh store in `opts.dir/<mode>`, removed at the end
/// unless `opts.keep`. An earlier store there is replaced (only a gdswap store: anything else
/// in the directory is refused untouched), once this run holds its lock.
pub fn run_mode(opts: &SimOptions, mode: Mode) -> Result<ModeReport> {
    run_inner(opts, mode, true)
}

/// The pure I/O time of one step: the pipelined schedule with the Adam update left out (so
/// the same bytes move with the same overlap of reads and writes), on a store in
/// `opts.dir/io-only`. Returns the mean step time.
pub fn pure_io(opts: &SimOptions) -> Result<Duration> {
    let o = SimOptions {
        check: false,
        ..opts.clone()
    };
    Ok(run_inner(&o, Mode::Pipelined, false)?.step_time)
}

/// The pure compute time of one step: Adam over every sub-group in memory, no I/O.
pub fn pure_compute(opts: &SimOptions) -> Result<Duration> {
    validate(opts)?;
    let mut total = Duration::ZERO;
    needs(opts)?;
    for (g, n) in Groups::of(opts).iter() {
        let g = g as usize;
        let mut r = new_group(n)?;
        for (i, w) in r.w.as_mut_slice::<f32>()?.iter_mut().enumerate() {
            *w = init_weight(g as u64, i);
        }
        // Fault the moments' pages in first, as a swap-in would have.
        r.m.as_bytes_mut().fill(0);
        r.v.as_bytes_mut().fill(0);
        let gr = if opts.grads {
            Some(grads_of(g as u64, n)?)
        } else {
            None
        };
        let (w, m, v) = (
            r.w.as_mut_slice::<f32>()?,
            r.m.as_mut_slice::<f32>()?,
            r.v.as_mut_slice::<f32>()?,
        );
        let t = Instant::now();
        match &gr {
            Some(gr) => {
                let gr = gr.as_slice::<u16>()?;
                adam(1, w, m, v, |i| f16_to_f32(gr[i]));
            }
            None => adam_step(g as u64, 1, w, m, v),
        }
        total += t.elapsed();
    }
    Ok(total)
}

fn run_inner(opts: &SimOptions, mode: Mode, update: bool) -> Result<ModeReport> {
    validate(opts)?;
    let needs = needs(opts)?;
    let dir = opts.dir.join(if update { mode.name() } else { "io-only" });
    check_store_dir(&dir)?;
    // The lock is taken before anything is removed: a store another run holds open is
    // refused as it is; then only the store's own files are removed (manifest first).
    let store = SwapStore::open(
        &dir,
        SwapOptions {
            backend: opts.backend,
            gpu: opts.gpu,
            staging_budget: needs.staging_budget,
            io_threads: opts.io_threads,
            discard_existing: true,
            ..SwapOptions::default()
        },
    )?;
    let result = simulate(&store, opts, mode, update);
    if opts.keep {
        return result;
    }
    let removed = store.destroy();
    let report = result?;
    removed?;
    Ok(report)
}
