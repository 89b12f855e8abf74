//! What a run needs (state, disk per store, staging budget, host memory), sized with checked
//! arithmetic, and the checks made before anything is created: memory, free space on
//! `--dir`, and that each mode's directory holds nothing but a gdswap store.

use std::path::Path;

use super::groups::Groups;
use super::options::{validate, SimOptions};
use crate::error::{Error, FileOp, Result, Setting};
use crate::swap::{DATA_FILE, LOCK_FILE};
use crate::types::MemoryKind;

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
pub(super) fn check_store_dir(dir: &Path) -> Result<()> {
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
