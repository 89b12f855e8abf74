//! `gdswap optim-sim`: prints the simulator's table (see `crate::optim_sim`).

use std::path::PathBuf;

use clap::Args;

use crate::backend::BackendId;
use crate::error::Result;
use crate::optim_sim::{
    parse_count, preflight, pure_compute, pure_io, run_mode, Mode, ModeReport, SimOptions,
};

use super::Outcome;

#[derive(Args, Debug)]
#[command(
    after_help = "Counts take decimal suffixes: K = 10^3, M = 10^6, B or G = 10^9, \
T = 10^12 (2B = two billion parameters; each has 12 bytes of state: fp32 weights and two \
fp32 moments). Each mode runs on a fresh store in DIR/<mode>, removed at the end unless \
--keep; the pure I/O baseline (the pipelined schedule without the update) in DIR/io-only. A \
store left there by an earlier run is replaced once this run holds its lock; a DIR/<mode> \
that is not a gdswap store is refused untouched. Memory and disk space are checked first."
)]
pub struct OptimSimArgs {
    /// Directory for the swap stores (on the NVMe file system to measure).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Parameters of the model (a count: 2B, 500M, 1000000).
    #[arg(long, value_parser = parse_count, default_value = "100M")]
    params: u64,
    /// Parameters per sub-group (a count).
    #[arg(long, value_parser = parse_count, default_value = "10M")]
    sub_group_size: u64,
    /// Optimizer steps to measure (the table shows the mean per step).
    #[arg(long, default_value_t = 3)]
    steps: u32,
    /// Steps run first, untimed (the store allocates and faults in its staging buffers then).
    #[arg(long, default_value_t = 1)]
    warmup_steps: u32,
    /// The mode to run, serial or pipelined (repeatable; without it, serial then pipelined).
    #[arg(long, value_enum)]
    mode: Vec<Mode>,
    /// Sub-groups in flight each way when pipelined (read ahead and written behind).
    #[arg(long, default_value_t = 3)]
    buffers: usize,
    /// Backend every swap goes through.
    #[arg(long, default_value = "host", value_parser = super::run::backend_parser())]
    backend: BackendId,
    /// The swap store's I/O threads (default: the CPUs this process may use, at most 4).
    #[arg(long, default_value_t = crate::swap::default_io_threads(), hide_default_value = true)]
    io_threads: usize,
    /// The GPU a device backend (bounce, gds) stages on.
    #[arg(long, default_value_t = 0)]
    gpu: usize,
    /// Skip the bit-for-bit check against the same steps done in memory.
    #[arg(long)]
    no_check: bool,
    /// Also read fp16 gradients (one tensor per sub-group, 2 bytes a parameter) each step,
    /// instead of generating them.
    #[arg(long)]
    grads: bool,
    /// Keep each mode's swap store in DIR/<mode> after the run (default: removed).
    #[arg(long)]
    keep: bool,
}

fn gbs(bytes_per_s: f64) -> String {
    format!("{:.2} GB/s", bytes_per_s / 1e9)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn run(args: &OptimSimArgs) -> Result<Outcome> {
    let opts = SimOptions {
        dir: args.dir.clone(),
        params: args.params,
        sub_group_size: args.sub_group_size,
        steps: args.steps,
        warmup_steps: args.warmup_steps,
        buffers: args.buffers,
        backend: args.backend,
        io_threads: args.io_threads,
        gpu: args.gpu,
        check: !args.no_check,
        grads: args.grads,
        keep: args.keep,
    };
    let modes = if args.mode.is_empty() {
        vec![Mode::Serial, Mode::Pipelined]
    } else {
        args.mode.clone()
    };
    // Stores on disk at once: one, or with --keep every mode's and the pure I/O baseline's.
    let stores = match args.keep {
        true => modes.len() as u64 + u64::from(modes.contains(&Mode::Pipelined)),
        false => 1,
    };
    let needs = preflight(&opts, stores)?;
    let created_dir = !opts.dir.exists();
    let result = run_modes(&opts, &modes, needs.state);
    if created_dir && !opts.keep {
        // The directory this run made, if nothing else is in it now.
        let _ = std::fs::remove_dir(&opts.dir);
    }
    result.map(|()| Outcome::Done)
}

fn run_modes(opts: &SimOptions, modes: &[Mode], state: u64) -> Result<()> {
    let groups = opts.params.div_ceil(opts.sub_group_size);
    println!(
        "optim-sim: {} parameters in {groups} sub-groups of up to {} (fp32 weights, Adam m and v: {} of state{}), {} steps measured after {} warm-up, backend {}, Adam on the host",
        opts.params,
        opts.sub_group_size,
        mb(state),
        if opts.grads { ", fp16 gradients read each step" } else { "" },
        opts.steps,
        opts.warmup_steps,
        opts.backend
    );
    let mut reports: Vec<ModeReport> = Vec::new();
    for &m in modes {
        reports.push(run_mode(opts, m)?);
    }
    println!(
        "{:<10} {:>11} {:>11} {:>11} {:>11} {:>14} {:>13} {:>12} {:>9}",
        "mode",
        "step time",
        "read",
        "write",
        "update",
        "waited on I/O",
        "peak staging",
        "peak device",
        "bit-exact"
    );
    for r in &reports {
        println!(
            "{:<10} {:>11} {:>11} {:>11} {:>11} {:>14} {:>13} {:>12} {:>9}",
            r.mode.name(),
            ms(r.step_time),
            gbs(r.read_bw()),
            gbs(r.write_bw()),
            ms(r.compute_time),
            ms(r.io_wait),
            mb(r.peak_staging),
            mb(r.peak_device),
            match r.bit_exact {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        );
    }
    if let Some(p) = reports.iter().find(|r| r.mode == Mode::Pipelined) {
        // Baselines for the same bytes: the pipelined schedule without the update, and the
        // update without I/O.
        let io = pure_io(opts)?;
        let compute = pure_compute(opts)?;
        let bound = io.max(compute);
        print!(
            "pure I/O {} (pipelined, no update), pure compute {} (Adam in memory): pipelined step is {:.2}x max(I/O, compute), overlap efficiency {:.0}%",
            ms(io),
            ms(compute),
            p.step_time.as_secs_f64() / bound.as_secs_f64(),
            100.0 * bound.as_secs_f64() / p.step_time.as_secs_f64(),
        );
        match reports.iter().find(|r| r.mode == Mode::Serial) {
            Some(s) => println!(
                "; {:.2}x faster than serial",
                s.step_time.as_secs_f64() / p.step_time.as_secs_f64()
            ),
            None => println!(),
        }
    }
    for r in &reports {
        if let Some(g) = &r.gds_path {
            println!("{} gds path: {} ({})", r.mode.name(), g.path, g.reason);
        }
    }
    match reports.first().map_or(0, |r| r.host_tensors) {
        0 => println!(
            "tensors: updated in place in the store's staging buffers (counted in peak staging)"
        ),
        n => println!("host memory for tensors: {} (one sub-group)", mb(n)),
    }
    if let Some(r) = reports.iter().find(|r| r.bit_exact == Some(false)) {
        return Err(crate::error::Error::Mismatch(format!(
            "{}: the swapped state differs from the in-memory steps: {}",
            r.mode.name(),
            r.mismatch.as_deref().unwrap_or("?")
        )));
    }
    Ok(())
}
