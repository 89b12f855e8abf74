//! Argument groups shared by `run`, `compare` and `sweep` (flattened into each, so a flag is
//! declared once and means the same everywhere). A command that needs another default says so
//! with `mut_arg` on its own struct (`sweep`: a smaller `--size`, fewer `--loops`).
//! Flattened groups are shown in `--help` where the command declares them.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Setting};
use crate::io::buffer::HugePages;
use crate::options::{data_dir_from_env, RunOptions, Target};
use crate::size::parse_size;

/// The data set: where it is, how large.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// One file shared by all threads, each its own contiguous range (reads: must exist).
    #[arg(long, conflicts_with = "dir", value_name = "PATH")]
    file: Option<PathBuf>,
    /// A directory with one file per thread, gdswap.<tid>.dat, created as needed. The
    /// directory must exist (see --create-dir). With neither --file nor --dir: the default
    /// data directory, $GDSWAP_DATA_DIR, else ./gdswap-data. `run` takes several (--dir A
    /// --dir B, one per drive): each runs the whole workload at the same time, figures per
    /// directory and for all together.
    #[arg(long, value_name = "DIR", action = clap::ArgAction::Append)]
    dir: Vec<PathBuf>,
    /// Create --dir when it does not exist (without it, a missing --dir is an error: a
    /// mistyped path would measure another disk). The default data directory is always
    /// created as needed.
    #[arg(long)]
    create_dir: bool,
    /// Total bytes per loop, all threads together.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    size: u64,
}

impl DataArgs {
    /// Sets the target, whether its directory may be created, and the size in `o`; with
    /// neither `--file` nor `--dir`, the default data directory (an error only for an unusable
    /// `GDSWAP_DATA_DIR`).
    pub fn apply(&self, o: &mut RunOptions) -> Result<(), Error> {
        (o.workload.target, o.create_dir) = match (&self.file, self.dir.first()) {
            (Some(f), _) => (Target::File(f.clone()), false),
            (None, Some(d)) => (Target::Dir(d.clone()), self.create_dir),
            (None, None) => (Target::Dir(data_dir_from_env()?), true),
        };
        o.workload.size = self.size;
        Ok(())
    }

    /// The directories after the first `--dir` (several targets at once).
    pub fn extra_dirs(&self) -> &[PathBuf] {
        self.dir.get(1..).unwrap_or(&[])
    }

    /// Refuses a second `--dir` where a command measures one target.
    pub fn single_target(&self, command: &str) -> Result<(), Error> {
        if self.extra_dirs().is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(
                Setting::Dir,
                format!("given more than once: {command} measures one target (run and qualify take several)"),
            ))
        }
    }
}

/// How each run goes over the data: how often, in which order, through which memory.
#[derive(Args, Debug)]
pub struct LoopArgs {
    /// Measured loops.
    #[arg(long, default_value_t = 3)]
    loops: u32,
    /// Unmeasured loops before the measured ones.
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Shuffle the block order (seeded by --seed; the same seed gives the same order).
    #[arg(long)]
    random: bool,
    /// Seed of the data pattern and of --random.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Go through the page cache instead of O_DIRECT (measures memory, not the device).
    #[arg(long)]
    buffered: bool,
    /// Drop the page cache before each measured loop (needs root).
    #[arg(long)]
    drop_caches: bool,
    /// Page backing of I/O buffers: auto = hugetlb if reserved, else THP, else 4 KiB pages.
    #[arg(long, value_enum, default_value_t = HugePages::Auto)]
    huge_pages: HugePages,
}

impl LoopArgs {
    /// Sets these settings in `o`.
    pub fn apply(&self, o: &mut RunOptions) {
        o.workload.loops = self.loops;
        o.workload.warmup = self.warmup;
        o.random = self.random;
        o.seed = self.seed;
        o.direct = !self.buffered;
        o.drop_caches = self.drop_caches;
        o.huge_pages = self.huge_pages;
    }
}
