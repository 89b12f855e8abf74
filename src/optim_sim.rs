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

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, FileOp, Result, Setting};
use crate::swap::{DType, HostTensor, SwapOptions, SwapStore, Ticket, DATA_FILE, LOCK_FILE};
use crate::types::{BackendId, MemoryKind};

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

/// Adam's hyper-parameters (fixed; the values do not change what is measured).
const LR: f32 = 1e-3;
const B1: f32 = 0.9;
const B2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// The gradient of element `i` of sub-group `g` at step `t`: deterministic, in [-0.5, 0.5).
fn grad(g: u64, t: u32, i: usize) -> f32 {
    let mut x = (g << 40) ^ (u64::from(t) << 32) ^ i as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
}

/// The initial master weight of element `i` of sub-group `g`.
fn init_weight(g: u64, i: usize) -> f32 {
    grad(g, u32::MAX, i) * 0.1
}

/// One Adam step (t counts from 1) over one sub-group, in place, with generated gradients.
pub fn adam_step(g: u64, t: u32, w: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    adam(t, w, m, v, |i| grad(g, t, i))
}

/// One sub-group's Adam step at step `t`: with the fp16 gradient bits `grad` read in, or
/// with the generated gradients.
fn update_group(g: u64, t: u32, w: &mut [f32], m: &mut [f32], v: &mut [f32], grad: Option<&[u16]>) {
    match grad {
        Some(gr) => adam(t, w, m, v, |i| f16_to_f32(gr[i])),
        None => adam_step(g, t, w, m, v),
    }
}

/// The fp16 gradient (bits) of element `i` of sub-group `g`, as stored in `gN.grad`: a
/// normal number of magnitude in [2^-4, 2^-1).
pub fn grad_f16(g: u64, i: usize) -> u16 {
    let mut x = (g << 40) ^ 0x5eed ^ i as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let sign = ((x >> 63) as u16) << 15;
    let exp = 11 + (x >> 40) as u16 % 3; // 2^-4 .. 2^-2
    sign | (exp << 10) | (x as u16 & 0x3ff)
}

/// IEEE 754 half precision to single, exactly (every f16 is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    match exp {
        0 => {
            // Zero or subnormal: mant x 2^-24.
            let v = mant as f32 * f32::from_bits(0x3380_0000);
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mant << 13)),
        e => f32::from_bits(sign | ((e + 112) << 23) | (mant << 13)),
    }
}

/// One Adam step (t counts from 1) in place, with gradient `grad(i)` for element `i`.
pub fn adam(t: u32, w: &mut [f32], m: &mut [f32], v: &mut [f32], grad: impl Fn(usize) -> f32) {
    let bc1 = 1.0 - B1.powi(t as i32);
    let bc2 = 1.0 - B2.powi(t as i32);
    for i in 0..w.len() {
        let gr = grad(i);
        m[i] = B1 * m[i] + (1.0 - B1) * gr;
        v[i] = B2 * v[i] + (1.0 - B2) * gr * gr;
        let mh = m[i] / bc1;
        let vh = v[i] / bc2;
        w[i] -= LR * mh / (vh.sqrt() + EPS);
    }
}

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

struct Group {
    w: HostTensor,
    m: HostTensor,
    v: HostTensor,
}

fn names(g: u64) -> [String; 3] {
    [format!("g{g}.w"), format!("g{g}.m"), format!("g{g}.v")]
}

fn grad_name(g: u64) -> String {
    format!("g{g}.grad")
}

fn grads_of(g: u64, n: usize) -> Result<HostTensor> {
    let bits: Vec<u16> = (0..n).map(|i| grad_f16(g, i)).collect();
    HostTensor::from_slice(DType::F16, &bits)
}

/// The sub-groups: `count` of them, each `sub` parameters except the last (computed, not
/// listed: a huge `--params` must not allocate a list before the checks refuse it).
#[derive(Debug, Clone, Copy)]
struct Groups {
    params: u64,
    sub: u64,
    count: u64,
}

impl Groups {
    fn of(opts: &SimOptions) -> Groups {
        Groups {
            params: opts.params,
            sub: opts.sub_group_size,
            count: opts.params.div_ceil(opts.sub_group_size),
        }
    }

    /// Parameters of sub-group `g` (`g < count`, so `g * sub < params`).
    fn len(&self, g: u64) -> usize {
        self.sub.min(self.params - g * self.sub) as usize
    }

    /// The largest sub-group.
    fn max(&self) -> u64 {
        self.sub.min(self.params)
    }

    fn iter(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        (0..self.count).map(|g| (g, self.len(g)))
    }
}

/// The alignment a store pads every tensor to, at least.
const PAD: u64 = 4096;

fn too_big(setting: Setting, what: &str) -> Error {
    Error::invalid(
        setting,
        crate::error::msg![
            format!("{what} does not fit in 64 bits; lower "),
            Setting::Params,
            " or ",
            Setting::SubGroupSize
        ],
    )
}

/// Bytes on disk of `n` elements of `elem` bytes, padded as the store pads them.
fn padded(n: u64, elem: u64) -> Option<u64> {
    n.checked_mul(elem)?
        .checked_next_multiple_of(PAD)
        .map(|p| p.max(PAD))
}

/// What one run needs, computed with checked arithmetic before anything starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Bytes of optimizer state (12 a parameter), unpadded.
    pub state: u64,
    /// The most a store's data file can grow to: every tensor padded, twice (a swap-out
    /// writes next to the version it replaces).
    pub disk_per_store: u64,
    /// The staging budget each store gets.
    pub staging_budget: u64,
    /// Host memory at the peak: staging in use plus the host tensors of one sub-group
    /// (the update's copy for device backends, the check's reference and read-back).
    pub memory: u64,
}

/// Sizes everything a run of `opts` needs (checked: an overflow is an error naming the flag).
pub fn needs(opts: &SimOptions) -> Result<Needs> {
    let groups = Groups::of(opts);
    let state = opts.params.checked_mul(12).ok_or_else(|| {
        too_big(
            Setting::Params,
            &format!("{} parameters x 12 bytes of state", opts.params),
        )
    })?;
    // Per sub-group of n: three fp32 tensors (and an fp16 gradient), each padded.
    let group_disk = |n: u64| -> Option<u64> {
        let mut b = padded(n, 4)?.checked_mul(3)?;
        if opts.grads {
            b = b.checked_add(padded(n, 2)?)?;
        }
        Some(b)
    };
    let full = opts.params / opts.sub_group_size;
    let rest = opts.params % opts.sub_group_size;
    let disk_per_store = group_disk(opts.sub_group_size)
        .and_then(|g| g.checked_mul(full))
        .and_then(|d| match rest {
            0 => Some(d),
            r => d.checked_add(group_disk(r)?),
        })
        .and_then(|d| d.checked_mul(2))
        .ok_or_else(|| too_big(Setting::Params, "the swap store's size"))?;
    let max = groups.max();
    let device_staging = opts.backend.memory() == MemoryKind::Device;
    // Three tensors, each padded, plus what a bounce ring or huge-page mapping may add.
    let slack: u64 = (64 << 10) + (2 << 20);
    let tensor = |elem: u64| max.checked_mul(elem).and_then(|b| b.checked_add(slack));
    let group_bytes = tensor(4)
        .and_then(|t| t.checked_mul(3))
        .and_then(|b| match opts.grads {
            true => b.checked_add(tensor(2)?),
            false => Some(b),
        })
        .ok_or_else(|| too_big(Setting::SubGroupSize, "one sub-group's staging"))?;
    // Reads ahead and writes behind, `buffers` sub-groups each way, plus one; device staging
    // also books the host copies of the host tensors it moves.
    let in_flight = (2 * opts.buffers as u64).saturating_add(1);
    let staging_budget = group_bytes
        .checked_mul(in_flight)
        .and_then(|b| b.checked_mul(if device_staging { 2 } else { 1 }))
        .ok_or_else(|| too_big(Setting::Buffers, "the staging budget"))?;
    // At most the budget is in use, and no more than all the sub-groups at once.
    let staging_used = staging_budget.min(
        group_bytes
            .saturating_mul(in_flight.min(groups.count))
            .saturating_mul(if device_staging { 2 } else { 1 }),
    );
    let host_group = max
        .checked_mul(if opts.grads { 14 } else { 12 })
        .ok_or_else(|| too_big(Setting::SubGroupSize, "one sub-group's state"))?;
    let memory = host_group
        .checked_mul(3)
        .and_then(|h| h.checked_add(staging_used))
        .ok_or_else(|| too_big(Setting::SubGroupSize, "the host memory"))?;
    Ok(Needs {
        state,
        disk_per_store,
        staging_budget,
        memory,
    })
}

/// A byte count for a message: decimal, three significant digits (`1.20 TB`, `734 MB`).
fn approx(b: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    match u {
        0 => format!("{b} B"),
        _ if v >= 100.0 => format!("{v:.0} {}", UNITS[u]),
        _ if v >= 10.0 => format!("{v:.1} {}", UNITS[u]),
        _ => format!("{v:.2} {}", UNITS[u]),
    }
}

/// The nearest existing directory at or above `dir` (where its files will land).
fn existing_ancestor(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.is_dir())
        .unwrap_or(Path::new("."))
}

/// Checks, before anything runs, that host memory and the filesystem of `--dir` can hold
/// `stores` stores of this run at once (existing gdswap stores the run replaces count as
/// free). A refusal is one line naming the flag.
pub fn preflight(opts: &SimOptions, stores: u64) -> Result<Needs> {
    validate(opts)?;
    let n = needs(opts)?;
    for m in ["serial", "pipelined", "io-only"] {
        check_store_dir(&opts.dir.join(m))?;
    }
    if let Some(avail) = crate::io::sys::mem_available() {
        if n.memory > avail / 10 * 9 {
            return Err(Error::invalid(
                Setting::SubGroupSize,
                crate::error::msg![format!("optim-sim needs about {} of host memory (staging for {} sub-groups of up to {} parameters in flight, and one sub-group's host tensors), {} is available; lower ", approx(n.memory), 2 * opts.buffers + 1, Groups::of(opts).max(), approx(avail)), Setting::SubGroupSize, " or ", Setting::Buffers],
            ));
        }
    }
    let disk = n
        .disk_per_store
        .checked_mul(stores)
        .ok_or_else(|| too_big(Setting::Params, "the swap stores' size"))?;
    let at = existing_ancestor(&opts.dir);
    let free = crate::io::sys::free_space(at).map_err(|e| Error::file(FileOp::Stat, at, e))?;
    // Stores of an earlier run in DIR/<mode> are replaced: their space counts as free.
    let reclaimable: u64 = ["serial", "pipelined", "io-only"]
        .iter()
        .filter_map(|m| std::fs::symlink_metadata(opts.dir.join(m).join(DATA_FILE)).ok())
        .filter(|m| m.is_file())
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512))
        .fold(0u64, u64::saturating_add);
    if disk > free.saturating_add(reclaimable) {
        return Err(Error::invalid(
            Setting::Params,
            crate::error::msg![format!("{} parameters need up to {} on disk ({} of optimizer state, padded, twice: a swap-out writes beside the version it replaces{}), but ", opts.params, approx(disk), approx(n.state), if stores > 1 { format!(", for {stores} stores kept") } else { String::new() }), Setting::Dir, format!(" {} has {} free; lower ", opts.dir.display(), approx(free)), Setting::Params, " or free space"],
        ));
    }
    Ok(n)
}

/// What is in a mode's store directory before the run.
fn check_store_dir(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::file(FileOp::Open, dir, e)),
    };
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::file(FileOp::Open, dir, e))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let store_names = [
        LOCK_FILE,
        crate::swap::MANIFEST,
        "manifest.json.tmp",
        DATA_FILE,
    ];
    let foreign: Vec<&String> = names
        .iter()
        .filter(|n| !store_names.contains(&n.as_str()))
        .collect();
    // Every store has its lock file from the moment it is first opened.
    if names.is_empty() || (foreign.is_empty() && names.iter().any(|n| n == LOCK_FILE)) {
        return Ok(());
    }
    let shown: Vec<&str> = match foreign.is_empty() {
        true => names.iter().collect::<Vec<_>>(),
        false => foreign,
    }
    .into_iter()
    .take(3)
    .map(String::as_str)
    .collect();
    Err(Error::invalid(
        Setting::Dir,
        crate::error::msg![format!("{} exists and is not a gdswap swap store (it holds {}): optim-sim replaces only its own stores; remove it or pick another ", dir.display(), shown.join(", ")), Setting::Dir],
    ))
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

fn simulate(store: &SwapStore, opts: &SimOptions, mode: Mode, update: bool) -> Result<ModeReport> {
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

fn new_group(n: usize) -> Result<Group> {
    Ok(Group {
        w: HostTensor::zeros(DType::F32, &[n])?,
        m: HostTensor::zeros(DType::F32, &[n])?,
        v: HostTensor::zeros(DType::F32, &[n])?,
    })
}

fn wait_writes_of(writes: &mut VecDeque<(u64, Ticket<'static>)>, g: u64) -> Result<()> {
    while writes.iter().any(|(j, _)| *j == g) {
        let (_, t) = writes.pop_front().expect("non-empty");
        t.wait()?;
    }
    Ok(())
}

/// Reads every sub-group back and compares it, bit for bit, with `steps` Adam steps done in
/// memory from the same initial state. The first difference, or None.
fn check(store: &SwapStore, sizes: &Groups, steps: u32, grads: bool) -> Result<Option<String>> {
    for (g64, n) in sizes.iter() {
        let mut r = new_group(n)?;
        for (i, w) in r.w.as_mut_slice::<f32>()?.iter_mut().enumerate() {
            *w = init_weight(g64, i);
        }
        let gr = grads_of(g64, n)?;
        let gr = gr.as_slice::<u16>()?;
        for t in 1..=steps {
            let (w, m, v) = (
                r.w.as_mut_slice::<f32>()?,
                r.m.as_mut_slice::<f32>()?,
                r.v.as_mut_slice::<f32>()?,
            );
            if grads {
                adam(t, w, m, v, |i| f16_to_f32(gr[i]));
            } else {
                adam_step(g64, t, w, m, v);
            }
        }
        let mut s = new_group(n)?;
        let [nw, nm, nv] = names(g64);
        store.swap_in(&nw, &mut s.w)?.wait()?;
        store.swap_in(&nm, &mut s.m)?.wait()?;
        store.swap_in(&nv, &mut s.v)?.wait()?;
        for (name, a, b) in [(&nw, &s.w, &r.w), (&nm, &s.m, &r.m), (&nv, &s.v, &r.v)] {
            let (a, b) = (a.as_slice::<u32>()?, b.as_slice::<u32>()?);
            if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
                return Ok(Some(format!(
                    "{name}[{i}]: swapped {} != in memory {}",
                    f32::from_bits(a[i]),
                    f32::from_bits(b[i])
                )));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_decimal_suffixes() {
        assert_eq!(parse_count("2B"), Ok(2_000_000_000));
        assert_eq!(parse_count("1.5m"), Ok(1_500_000));
        assert_eq!(parse_count("300K"), Ok(300_000));
        assert_eq!(parse_count("12345"), Ok(12345));
        assert_eq!(parse_count("1G"), Ok(1_000_000_000));
        assert!(parse_count("2X").is_err());
        assert!(parse_count("0").is_err());
        assert!(parse_count("1.0000001K").is_err());
        assert!(parse_count("abc").is_err());
    }

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
        for i in 0..1000 {
            let v = f16_to_f32(grad_f16(3, i)).abs();
            assert!((0.0625..0.5).contains(&v), "{v}");
        }
    }

    #[test]
    fn adam_moves_weights_against_the_gradient() {
        let (mut w, mut m, mut v) = (vec![0.0f32; 64], vec![0.0f32; 64], vec![0.0f32; 64]);
        adam_step(0, 1, &mut w, &mut m, &mut v);
        for (i, w) in w.iter().enumerate() {
            let g = grad(0, 1, i);
            // First step: w = -lr * sign(g) (up to eps).
            assert!((w + LR * g.signum()).abs() < 1e-5, "{i}: {w} {g}");
        }
    }

    #[test]
    fn swapped_state_equals_in_memory_in_both_modes() {
        let dir = crate::testutil::scratch_dir();
        let opts = SimOptions {
            dir: dir.path().to_path_buf(),
            params: 50_001,
            sub_group_size: 8_000,
            steps: 3,
            warmup_steps: 1,
            buffers: 3,
            backend: BackendId::Posix,
            io_threads: 2,
            gpu: 0,
            check: true,
            grads: false,
            keep: false,
        };
        for mode in [Mode::Serial, Mode::Pipelined] {
            let r = run_mode(&opts, mode).unwrap();
            assert_eq!(r.bit_exact, Some(true), "{mode:?}: {:?}", r.mismatch);
            // 7 sub-groups of 3 tensors, each read and written once per step: the store's own
            // counters (taken before the check reads everything back) saw exactly that many,
            // over the warm-up and measured steps, plus the initial state's swap-outs.
            assert_eq!(r.read_bytes, r.write_bytes);
            assert!(r.read_bytes >= 50_001 * 12);
            let steps = u64::from(opts.warmup_steps + opts.steps);
            assert_eq!(r.store_bytes_read, steps * r.read_bytes, "{mode:?}");
            assert_eq!(
                r.store_bytes_written,
                (steps + 1) * r.write_bytes,
                "{mode:?}"
            );
            assert!(r.peak_staging > 0);
        }
        // With fp16 gradients read in: one more tensor of 2 bytes a parameter read per step.
        let with_grads = SimOptions {
            grads: true,
            ..opts.clone()
        };
        let r = run_mode(&with_grads, Mode::Pipelined).unwrap();
        assert_eq!(r.bit_exact, Some(true), "{:?}", r.mismatch);
        assert!(r.read_bytes >= r.write_bytes + 50_001 * 2);
        assert!(pure_io(&opts).unwrap() > Duration::ZERO);
        assert!(pure_compute(&opts).unwrap() > Duration::ZERO);
    }
}
