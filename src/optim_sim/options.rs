//! What `gdswap optim-sim` is asked to do: [`SimOptions`], the two schedules ([`Mode`]),
//! the parameter-count parser its flags use ([`parse_count`]), and the checks of the options
//! on their own ([`validate`]), made before anything is sized or created.

use std::path::PathBuf;

use crate::error::{Error, Result, Setting};
use crate::types::BackendId;

/// Parses a parameter count: digits with an optional decimal suffix K (10^3), M (10^6),
/// B or G (10^9), T (10^12), case-insensitive, fractions allowed (`1.5B`). Counts, not
/// bytes: `2B` is two billion parameters.
pub fn parse_count(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1e3,
                'M' => 1e6,
                'B' | 'G' => 1e9,
                'T' => 1e12,
                _ => return Err(format!("'{s}': unknown suffix '{c}' (use K, M, B/G or T)")),
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t, 1.0),
    };
    if let Ok(n) = num.parse::<u64>() {
        if mult == 1.0 && n > 0 {
            return Ok(n);
        }
    }
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a count (e.g. 2B, 500M, 1000000)"))?;
    let n = v * mult;
    if !(1.0..1.8e19).contains(&n) || n.fract() != 0.0 {
        return Err(format!("'{s}' is not a whole positive count"));
    }
    Ok(n as u64)
}

/// How the optimizer step waits for its swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each swap-in and write-back is waited for before the step goes on.
    Serial,
    /// The next `buffers - 1` sub-groups are read ahead and up to `buffers` write-backs kept
    /// in flight while a sub-group is updated.
    Pipelined,
}

impl Mode {
    /// `serial` or `pipelined`, as the flag and the report spell it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Serial => "serial",
            Mode::Pipelined => "pipelined",
        }
    }
}

/// What `gdswap optim-sim` simulates and how.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Directory the swap stores are created in (`--dir`).
    pub dir: PathBuf,
    /// Parameters of the model (each has 12 bytes of fp32 state: weight and two moments).
    pub params: u64,
    /// Parameters per sub-group: the unit swapped in, updated and written back.
    pub sub_group_size: u64,
    /// Measured optimizer steps.
    pub steps: u32,
    /// Steps run before the measured ones (the same Adam steps, untimed): the store's
    /// staging buffers are allocated and faulted in then, as in a training run's first step.
    pub warmup_steps: u32,
    /// Sub-groups in flight each way when pipelined (2..=4096).
    pub buffers: usize,
    /// The backend every swap goes through.
    pub backend: BackendId,
    /// The GPU a device backend (`bounce`, `gds`) stages on.
    pub gpu: usize,
    /// The swap store's I/O threads (1..=64).
    pub io_threads: usize,
    /// Check the swapped state against the in-memory steps.
    pub check: bool,
    /// Also read an fp16 gradient tensor (`gN.grad`) per sub-group each step, instead of
    /// generating the gradients.
    pub grads: bool,
    /// Leave each mode's store in `dir/<mode>` after the run (by default it is removed).
    pub keep: bool,
}

/// Checks the options before anything runs.
pub fn validate(opts: &SimOptions) -> Result<()> {
    if opts.params == 0 || opts.sub_group_size == 0 {
        return Err(Error::invalid(
            Setting::Params,
            "needs at least one parameter",
        ));
    }
    if opts.buffers > 4096 {
        return Err(Error::invalid(
            Setting::Buffers,
            format!("{} is out of range 2..=4096", opts.buffers),
        ));
    }
    if opts.buffers < 2 {
        return Err(Error::invalid(
            Setting::Buffers,
            "pipelining needs at least 2 sub-groups in flight",
        ));
    }
    if opts.steps == 0 {
        return Err(Error::invalid(Setting::Steps, "needs at least one step"));
    }
    if opts.warmup_steps.checked_add(opts.steps).is_none() {
        return Err(Error::invalid(
            Setting::WarmupSteps,
            crate::error::msg!["with ", Setting::Steps, ", more steps than a u32 counts"],
        ));
    }
    if opts.io_threads == 0 || opts.io_threads > 64 {
        return Err(Error::invalid(
            Setting::IoThreads,
            format!("{} is out of range 1..=64", opts.io_threads),
        ));
    }
    Ok(())
}
