//! The optimizer steps over a swap store: the initial state written out, then every step's
//! swap-in, update and write-back per sub-group, waited for each time (`serial`) or read
//! ahead and written behind (`pipelined`), timed into a [`ModeReport`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::adam::{init_weight, update_group};
use super::bit_exact::check;
use super::groups::{grad_name, grads_of, names, new_group, Groups};
use super::options::{Mode, SimOptions};
use super::report::ModeReport;
use crate::error::Result;
use crate::swap::{DType, HostTensor, SwapStore, Ticket};

pub(super) fn simulate(
    store: &SwapStore,
    opts: &SimOptions,
    mode: Mode,
    update: bool,
) -> Result<ModeReport> {
    let sizes = Groups::of(opts);
    let max = sizes.max();
    // Host backends update the state in the store's staging buffers (no copies); device
    // backends copy it through host tensors (`cur`, sized on first use).
    let staged = !store.stages_in_device_memory();
    let mut cur = new_group(0)?;
    let mut cur_grad = HostTensor::zeros(DType::F16, &[0])?;
    // Initial state.
    for (g, n) in sizes.iter() {
        let mut grp = new_group(n)?;
        for (i, w) in grp.w.as_mut_slice::<f32>()?.iter_mut().enumerate() {
            *w = init_weight(g, i);
        }
        let [nw, nm, nv] = names(g);
        store.swap_out(&nw, &grp.w)?.wait()?;
        store.swap_out(&nm, &grp.m)?.wait()?;
        store.swap_out(&nv, &grp.v)?.wait()?;
        if opts.grads {
            store.swap_out(&grad_name(g), &grads_of(g, n)?)?.wait()?;
        }
    }
    let mut compute = Duration::ZERO;
    let mut waited = Duration::ZERO;
    let mut start = Instant::now();
    let mut writes: VecDeque<(u64, Ticket<'static>)> = VecDeque::new();
    let groups = sizes.count;
    let total_steps = opts.warmup_steps + opts.steps;
    for step in 1..=total_steps {
        if step == opts.warmup_steps + 1 {
            // The measured steps start here (write-backs of the warm-up may still be in
            // flight, as they would be in a steady run).
            compute = Duration::ZERO;
            waited = Duration::ZERO;
            start = Instant::now();
        }
        for g in 0..groups {
            let n = sizes.len(g);
            if !staged && cur.w.len() != n * 4 {
                cur = new_group(n)?;
                cur_grad = HostTensor::zeros(DType::F16, &[n])?;
            }
            let t0 = Instant::now();
            if mode == Mode::Pipelined {
                // Read ahead: this sub-group and the next buffers - 1 (wrapping into the next
                // step), each once its own write-back is done.
                let ahead = (opts.buffers as u64 - 1).min(groups - 1);
                let last_step = step == total_steps;
                for k in 0..=ahead {
                    let j = g + k;
                    if j >= groups && last_step {
                        break;
                    }
                    let j = j % groups;
                    wait_writes_of(&mut writes, j)?;
                    for name in names(j) {
                        store.prefetch(&name)?;
                    }
                    if opts.grads {
                        store.prefetch(&grad_name(j))?;
                    }
                }
            }
            let [nw, nm, nv] = names(g);
            let write_time_start = if staged {
                // Host staging: update the staging buffers the reads landed in, and write
                // them back from there (no copies on this thread).
                let tw = store.swap_in_staged(&nw)?;
                let tm = store.swap_in_staged(&nm)?;
                let tv = store.swap_in_staged(&nv)?;
                let (mut w, mut m, mut v) = (tw.wait()?, tm.wait()?, tv.wait()?);
                let grad = match opts.grads {
                    true => Some(store.swap_in_staged(&grad_name(g))?.wait()?),
                    false => None,
                };
                let t1 = Instant::now();
                waited += t1 - t0;
                if update {
                    let grad = grad.as_ref().map(|t| t.as_slice::<u16>()).transpose()?;
                    update_group(
                        g,
                        step,
                        w.as_mut_slice::<f32>()?,
                        m.as_mut_slice::<f32>()?,
                        v.as_mut_slice::<f32>()?,
                        grad,
                    );
                }
                drop(grad);
                let t2 = Instant::now();
                compute += t2 - t1;
                writes.push_back((g, store.swap_out_staged(&nw, w)?));
                writes.push_back((g, store.swap_out_staged(&nm, m)?));
                writes.push_back((g, store.swap_out_staged(&nv, v)?));
                t2
            } else {
                let tw = store.swap_in(&nw, &mut cur.w)?;
                let tm = store.swap_in(&nm, &mut cur.m)?;
                let tv = store.swap_in(&nv, &mut cur.v)?;
                tw.wait()?;
                tm.wait()?;
                tv.wait()?;
                if opts.grads {
                    store.swap_in(&grad_name(g), &mut cur_grad)?.wait()?;
                }
                let t1 = Instant::now();
                waited += t1 - t0;
                if update {
                    let grad = match opts.grads {
                        true => Some(cur_grad.as_slice::<u16>()?),
                        false => None,
                    };
                    update_group(
                        g,
                        step,
                        cur.w.as_mut_slice::<f32>()?,
                        cur.m.as_mut_slice::<f32>()?,
                        cur.v.as_mut_slice::<f32>()?,
                        grad,
                    );
                }
                let t2 = Instant::now();
                compute += t2 - t1;
                writes.push_back((g, store.swap_out(&nw, &cur.w)?));
                writes.push_back((g, store.swap_out(&nm, &cur.m)?));
                writes.push_back((g, store.swap_out(&nv, &cur.v)?));
                t2
            };
            let limit = match mode {
                Mode::Serial => 0,
                Mode::Pipelined => 3 * opts.buffers,
            };
            while writes.len() > limit {
                let (_, t) = writes.pop_front().expect("non-empty");
                t.wait()?;
            }
            waited += write_time_start.elapsed();
        }
    }
    while let Some((_, t)) = writes.pop_front() {
        t.wait()?;
    }
    let total = start.elapsed();
    let after = store.stats();
    // Each step reads every tensor once and writes the state back once: counted from the
    // manifest (padded, as moved), not from the store's counters, which cannot tell a
    // warm-up step's write-back still in flight from a measured one.
    let padded = |name: &str| store.info(name).map_or(0, |e| e.padded_len);
    let write_bytes: u64 = (0..groups).flat_map(names).map(|n| padded(&n)).sum();
    let read_bytes = write_bytes
        + match opts.grads {
            true => (0..groups).map(|g| padded(&grad_name(g))).sum(),
            false => 0,
        };
    let steps = opts.steps;
    let mut report = ModeReport {
        mode,
        step_time: total / steps,
        compute_time: compute / steps,
        io_wait: waited / steps,
        read_bytes,
        write_bytes,
        peak_staging: after.staging_peak,
        peak_device: after.device_peak,
        store_bytes_read: after.bytes_read,
        store_bytes_written: after.bytes_written,
        host_tensors: if staged { 0 } else { 3 * 4 * max },
        bit_exact: None,
        mismatch: None,
        gds_path: None,
    };
    if store.gds_path().is_some() {
        // cuFile's statistics are read as staging buffers are released.
        store.release_idle_staging()?;
        report.gds_path = store.gds_path();
    }
    if opts.check {
        let mismatch = check(store, &sizes, total_steps, opts.grads)?;
        report.bit_exact = Some(mismatch.is_none());
        report.mismatch = mismatch;
    }
    Ok(report)
}

fn wait_writes_of(writes: &mut VecDeque<(u64, Ticket<'static>)>, g: u64) -> Result<()> {
    while writes.iter().any(|(j, _)| *j == g) {
        let (_, t) = writes.pop_front().expect("non-empty");
        t.wait()?;
    }
    Ok(())
}
