//! Validated options of one run: what the harness executes, independent of the CLI.
//!
//! `RunOptions::validate` catches every value that cannot work before any file is touched, and
//! names the flag in the error. Checks that need the filesystem (O_DIRECT alignment, file
//! length, free space, memory) happen in the harness's setup, also before any data moves.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result, Setting};
use crate::size::Bytes;
pub use crate::types::ring_options::{
    FixedBuffers, RingOpcode, RingOptions, RingSetup, RingSubmit, RingWait,
};
pub use crate::types::BackendId;

/// Direction of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// File to memory.
    Read,
    /// Memory to file.
    Write,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Read => "read",
            Op::Write => "write",
        })
    }
}

/// Where each thread's transfers land in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BufferMode {
    /// One buffer the size of the thread's range, as a tensor is: every byte read stays in
    /// memory (and `--verify` checks all of it).
    #[default]
    Full,
    /// queue depth x block size buffers reused as requests complete, as fio and gdsio do: a
    /// pure device benchmark with a small memory footprint. No `--verify`: reads overwrite
    /// the data as it arrives, and writes repeat the ring's bytes, so the file does not hold
    /// the verify pattern afterwards.
    Ring,
}

/// Which pages to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HugePages {
    /// hugetlb pages when enough 2 MiB pages are reserved, else transparent huge pages.
    Auto,
    /// 2 MiB hugetlb pages only: an error when they cannot be mapped.
    Hugetlb,
    /// Transparent huge pages asked for (`MADV_HUGEPAGE`); the kernel may give fewer.
    Thp,
    /// Ordinary 4 KiB pages.
    Off,
}

impl From<Op> for crate::error::FileOp {
    fn from(op: Op) -> crate::error::FileOp {
        match op {
            Op::Read => crate::error::FileOp::Read,
            Op::Write => crate::error::FileOp::Write,
        }
    }
}

/// Where the data lives.
///
/// In records it is two keys, `"target_kind": "file"` or `"dir"` and `"target": PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "target_kind", content = "target", rename_all = "lowercase")]
pub enum Target {
    /// One file shared by all threads, each thread its own contiguous range. For reads it must
    /// exist; for writes it is created, and truncated to `--size`.
    File(PathBuf),
    /// A directory holding one file per thread, `gdswap.<tid>.dat`, created (for reads: filled
    /// with the pattern) as needed.
    Dir(PathBuf),
}

/// The workload settings a run, a comparison and their records share, defined once:
/// [`RunOptions`] embeds it, and the run record (`report::Params`) and the comparison record
/// (`report::comparison::CompareParams`) flatten it (`#[serde(flatten)]`), so their JSON keys
/// and their order are what they were before it was one struct: `op`, `target_kind`,
/// `target`, `size_bytes`, `block_size_bytes`, `queue_depth`, `threads`, `loops`, `warmup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Workload {
    /// Read or write.
    pub op: Op,
    /// Where the data lives (`target_kind` and `target` in records).
    #[serde(flatten)]
    pub target: Target,
    /// Total bytes moved per loop, over all threads.
    #[serde(rename = "size_bytes")]
    pub size: u64,
    /// Bytes per request.
    #[serde(rename = "block_size_bytes")]
    pub block_size: u64,
    /// Requests in flight per thread.
    pub queue_depth: u32,
    /// Worker threads.
    pub threads: usize,
    /// Measured loops per run (in a comparison, each round is one run per contender).
    pub loops: u32,
    /// Unmeasured loops before the measured ones.
    pub warmup: u32,
}

impl Target {
    /// The file or the directory.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Target::File(p) | Target::Dir(p) => p,
        }
    }

    /// `file` or `dir`, as records name the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::File(_) => "file",
            Target::Dir(_) => "dir",
        }
    }
}

/// The environment variable naming the default data directory.
pub const DATA_DIR_ENV: &str = "GDSWAP_DATA_DIR";

/// The default data directory: `$GDSWAP_DATA_DIR`, else `./gdswap-data` (an empty value
/// counts as unset here; the command line refuses it, see [`data_dir_from_env`]).
pub fn default_data_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("gdswap-data"))
}

/// The default data directory as the command line takes it: `GDSWAP_DATA_DIR` set to the
/// empty string is an error naming the variable (most likely a script expanding an unset
/// variable; silently falling back to ./gdswap-data would write where nobody asked).
pub fn data_dir_from_env() -> Result<PathBuf> {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(v) if v.is_empty() => Err(Error::invalid(
            Setting::Env(DATA_DIR_ENV),
            "is set but empty; set it to a directory, or unset it to use ./gdswap-data",
        )),
        _ => Ok(default_data_dir()),
    }
}

/// How the `bounce` backend stages data between the file and the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceMode {
    /// Disk reads into a ring of pinned chunks overlap with copies to the device.
    Pipelined,
    /// The naive variant: the whole range through a pinned staging buffer, I/O then copies.
    Serial,
}

/// How the `gds` backend calls cuFile (`--gds-api`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum GdsApi {
    /// cuFileRead/cuFileWrite, one block at a time per thread (parallelism by threads).
    #[default]
    Sync,
    /// cuFileReadAsync/WriteAsync on the thread's CUDA stream, queue depth in flight.
    Stream,
    /// cuFileBatchIO: queue-depth entries per submit, every event checked.
    Batch,
}

impl std::fmt::Display for GdsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GdsApi::Sync => "sync",
            GdsApi::Stream => "stream",
            GdsApi::Batch => "batch",
        })
    }
}

/// Options of the `gds` backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GdsOptions {
    /// How cuFile is called (`--gds-api`).
    pub api: GdsApi,
    /// Register device buffers with cuFileBufRegister (`--no-register` turns it off).
    pub register: bool,
    /// `--require-gpudirect`: a run whose file would go through compat mode is an error.
    pub require_gpudirect: bool,
}

impl Default for GdsOptions {
    fn default() -> Self {
        GdsOptions {
            api: GdsApi::Sync,
            register: true,
            require_gpudirect: false,
        }
    }
}

/// GPU options (the `bounce` and `gds` backends; ignored by host backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GpuOptions {
    /// CUDA device ordinal (`--gpu`).
    pub device: usize,
    /// Pinned chunks per thread (`--bounce-buffers`), each one block. The CLI's default is
    /// twice the queue depth: a whole queue of reads may complete at once (completions come
    /// in batches), and the next queue must be readable while those chunks are copied.
    pub bounce_buffers: usize,
    /// Pipelined or serial staging (`--bounce-mode`).
    pub bounce_mode: BounceMode,
    /// The `gds` backend's options; absent for other backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gds: Option<GdsOptions>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            device: 0,
            bounce_buffers: 16,
            bounce_mode: BounceMode::Pipelined,
            gds: None,
        }
    }
}

/// Limits beyond which a value is a typo rather than a workload. The largest `--threads`.
pub const MAX_THREADS: usize = 1024;
/// The largest `--queue-depth`.
pub const MAX_QUEUE_DEPTH: u32 = 4096;
/// The largest `--block-size`: 1 GiB.
pub const MAX_BLOCK_SIZE: u64 = 1 << 30;
/// The largest `--loops`.
pub const MAX_LOOPS: u32 = 100_000;
/// The largest `--bounce-buffers`.
pub const MAX_BOUNCE_BUFFERS: usize = 4096;
/// The largest file Linux can hold (MAX_LFS_FILESIZE, 2^63 - 1 bytes: offsets are `off_t`).
/// Every size product of a run (ranges rounded up to pages or huge pages, their sums) fits
/// in 64 bits below it.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// Everything one run needs.
#[derive(Debug, Clone, Serialize)]
pub struct RunOptions {
    /// The backend that moves the data.
    pub backend: BackendId,
    /// What moves where: operation, target, sizes, queue depth, threads, loops.
    #[serde(flatten)]
    pub workload: Workload,
    /// Shuffle each thread's request order (`--random`, seeded by `seed`).
    pub random: bool,
    /// Seed of the data pattern and of the shuffled order (`--seed`).
    pub seed: u64,
    /// Check the data against the pattern after the run (`--verify`).
    pub verify: bool,
    /// O_DIRECT (the default); false measures the page cache on purpose.
    pub direct: bool,
    /// Drop the page cache before each measured loop (`--drop-caches`; needs root).
    pub drop_caches: bool,
    /// Register buffers and files with the io_uring ring (`--fixed-buffers`; reports before
    /// `auto` existed hold a boolean, read as on/off).
    #[serde(default)]
    pub fixed_buffers: FixedBuffers,
    /// Page backing of host buffers (`--huge-pages`).
    pub huge_pages: HugePages,
    /// Where transfers land: the whole range, or a ring of reused buffers.
    #[serde(default)]
    pub buffer: BufferMode,
    /// How the io_uring engine (host, bounce) drives its ring.
    #[serde(default)]
    pub ring: RingOptions,
    /// Device and staging options of the GPU backends.
    pub gpu: GpuOptions,
    /// A `Target::Dir` that does not exist may be created (`--create-dir`, and the default
    /// data directory: true in `Default`, whose target that is); otherwise a missing directory
    /// is an error.
    #[serde(skip)]
    pub create_dir: bool,
    /// A time-based run (`--duration`): measured loops repeat until this much time has
    /// passed since the first one began (at least one loop), instead of `loops` of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// A soak (`--max-errors N`, with `--verify`): every measured loop is verified, and wrong
    /// 4 KiB blocks are counted and logged instead of stopping the run at the first; the run
    /// stops once more than N were found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u64>,
    /// How the run picks its NUMA node (`--numa`, [`crate::numa`]); the harness decides the
    /// placement from it unless `numa_placement` is given.
    #[serde(skip)]
    pub numa: crate::types::numa::NumaChoice,
    /// A placement decided by the caller (qualify): with a node, every worker thread is bound
    /// to its CPUs and its memory to the node before it allocates its buffers, so their pages
    /// land there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_placement: Option<crate::types::numa::NumaPlacement>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            backend: BackendId::Host,
            workload: Workload {
                op: Op::Read,
                target: Target::Dir(default_data_dir()),
                size: 1 << 30,
                block_size: 1 << 20,
                queue_depth: 8,
                threads: 1,
                loops: 3,
                warmup: 1,
            },
            random: false,
            seed: 0x5eed,
            verify: false,
            direct: true,
            drop_caches: false,
            fixed_buffers: FixedBuffers::Auto,
            huge_pages: HugePages::Auto,
            buffer: BufferMode::Full,
            ring: RingOptions::default(),
            gpu: GpuOptions::default(),
            // The default target is the default data directory, which is created as needed;
            // set it to false with a `Target::Dir` that must already exist.
            create_dir: true,
            duration: None,
            max_errors: None,
            numa: crate::types::numa::NumaChoice::Auto,
            numa_placement: None,
        }
    }
}

impl RunOptions {
    /// Refuses values that cannot make a meaningful run, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if self.workload.threads == 0 || self.workload.threads > MAX_THREADS {
            return Err(Error::invalid(
                Setting::Threads,
                format!(
                    "{} is out of range 1..={MAX_THREADS}",
                    self.workload.threads
                ),
            ));
        }
        if self.workload.queue_depth == 0 || self.workload.queue_depth > MAX_QUEUE_DEPTH {
            return Err(Error::invalid(
                Setting::QueueDepth,
                format!(
                    "{} is out of range 1..={MAX_QUEUE_DEPTH}",
                    self.workload.queue_depth
                ),
            ));
        }
        if self.workload.block_size == 0 || self.workload.block_size > MAX_BLOCK_SIZE {
            return Err(Error::invalid(
                Setting::BlockSize,
                format!(
                    "{} is out of range 1B..={}",
                    Bytes(self.workload.block_size),
                    Bytes(MAX_BLOCK_SIZE)
                ),
            ));
        }
        if self.workload.size == 0 {
            return Err(Error::invalid(Setting::Size, "must be at least one byte"));
        }
        if self.workload.size > MAX_SIZE {
            return Err(Error::invalid(
                Setting::Size,
                format!(
                    "{} bytes is larger than the largest file Linux can hold ({MAX_SIZE} bytes, 2^63 - 1)",
                    self.workload.size
                ),
            ));
        }
        if self.workload.block_size > self.workload.size {
            return Err(Error::invalid(
                Setting::BlockSize,
                crate::error::msg![
                    format!("{} is larger than ", Bytes(self.workload.block_size)),
                    Setting::Size,
                    format!(" {}", Bytes(self.workload.size))
                ],
            ));
        }
        if self.workload.loops == 0 || self.workload.loops > MAX_LOOPS {
            return Err(Error::invalid(
                Setting::Loops,
                format!("{} is out of range 1..={MAX_LOOPS}", self.workload.loops),
            ));
        }
        if self.workload.warmup > MAX_LOOPS {
            return Err(Error::invalid(
                Setting::Warmup,
                format!("{} is out of range 0..={MAX_LOOPS}", self.workload.warmup),
            ));
        }
        if (self.workload.threads as u64) > self.workload.size / self.workload.block_size {
            return Err(Error::invalid(
                Setting::Threads,
                crate::error::msg![
                    format!("{} threads cannot share ", self.workload.threads),
                    Setting::Size,
                    format!(
                        " {} in blocks of {}: each thread needs at least one block",
                        Bytes(self.workload.size),
                        Bytes(self.workload.block_size)
                    )
                ],
            ));
        }
        if self.fixed_buffers.required() && !self.backend.takes_fixed_buffers() {
            let takers: Vec<&str> = BackendId::ALL
                .into_iter()
                .filter(|b| b.takes_fixed_buffers())
                .map(BackendId::name)
                .collect();
            return Err(Error::invalid(
                Setting::FixedBuffers,
                format!(
                    "the {} backend registers no buffers; it applies to: {}",
                    self.backend,
                    takers.join(", ")
                ),
            ));
        }
        let k = self.gpu.bounce_buffers;
        if k == 0 || k > MAX_BOUNCE_BUFFERS {
            return Err(Error::invalid(
                Setting::BounceBuffers,
                format!("{k} is out of range 1..={MAX_BOUNCE_BUFFERS}"),
            ));
        }
        if self.buffer == BufferMode::Ring {
            if self.backend != BackendId::Host {
                return Err(Error::invalid(
                    Setting::Buffer,
                    format!(
                        "ring: only the host backend reuses buffers (not {})",
                        self.backend
                    ),
                ));
            }
            if self.verify {
                return Err(Error::invalid(
                    Setting::Buffer,
                    crate::error::msg![
                        "ring: ",
                        Setting::Verify,
                        " needs ",
                        Setting::Buffer,
                        " full (ring buffers are overwritten as data arrives)"
                    ],
                ));
            }
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid(
                Setting::Duration,
                "must be more than zero (a run of no time measures nothing)",
            ));
        }
        if self.max_errors.is_some() && !self.verify {
            return Err(Error::invalid(
                Setting::MaxErrors,
                crate::error::msg!["counts verification errors: add ", Setting::Verify],
            ));
        }
        self.validate_ring()?;
        if self.fixed_buffers.required() && !self.direct {
            return Err(Error::invalid(
                Setting::FixedBuffers,
                crate::error::msg!["needs O_DIRECT; drop ", Setting::Buffered],
            ));
        }
        Ok(())
    }

    /// The ring knobs: only for the backends that drive an io_uring, and only in combinations
    /// that exist.
    fn validate_ring(&self) -> Result<()> {
        let r = &self.ring;
        let d = RingOptions::default();
        if !matches!(self.backend, BackendId::Host | BackendId::Bounce) {
            let given = [
                (Setting::RingSetup, r.setup != d.setup),
                (Setting::RingSubmit, r.submit != d.submit),
                (Setting::RingWait, r.wait != d.wait),
                (Setting::RegisterFiles, r.register_files != d.register_files),
                (Setting::RingOpcode, r.opcode != d.opcode),
            ];
            if let Some((setting, _)) = given.iter().find(|(_, set)| *set) {
                return Err(Error::invalid(
                    *setting,
                    format!(
                        "applies to the io_uring backends (host, bounce), not to the {} backend",
                        self.backend
                    ),
                ));
            }
        }
        if r.opcode == RingOpcode::Readv && self.fixed_buffers.required() {
            return Err(Error::invalid(
                Setting::RingOpcode,
                crate::error::msg![
                    "readv: registered buffers are read with READ_FIXED; drop ",
                    Setting::FixedBuffers
                ],
            ));
        }
        Ok(())
    }

    /// Number of loops executed in all: warm-up then measured (a time-based run: the
    /// warm-up and at least one measured loop).
    pub fn total_loops(&self) -> u32 {
        self.workload.warmup + self.workload.loops
    }

    /// Whether every measured loop is verified (a time-based run or a soak with `--verify`),
    /// rather than only the last.
    pub fn verify_every_loop(&self) -> bool {
        self.verify && (self.duration.is_some() || self.max_errors.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag_of(o: &RunOptions) -> Setting {
        match o.validate().unwrap_err() {
            Error::InvalidOption { setting, .. } => setting,
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        RunOptions::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_flag() {
        let d = RunOptions::default;
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    threads: 0,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::Threads
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    threads: 5000,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::Threads
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    queue_depth: 0,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::QueueDepth
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    queue_depth: 100_000,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::QueueDepth
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    block_size: 0,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::BlockSize
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    block_size: 2 << 30,
                    size: 4 << 30,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::BlockSize
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    block_size: 2 << 20,
                    size: 1 << 20,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::BlockSize
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    size: 0,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::Size
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    loops: 0,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::Loops
        );
        assert_eq!(
            flag_of(&RunOptions {
                workload: Workload {
                    threads: 8,
                    size: 4 << 20,
                    ..(d()).workload
                },
                ..d()
            }),
            Setting::Threads
        );
        assert_eq!(
            flag_of(&RunOptions {
                fixed_buffers: FixedBuffers::On,
                direct: false,
                ..d()
            }),
            Setting::FixedBuffers
        );
        let ring = || RunOptions {
            buffer: BufferMode::Ring,
            ..d()
        };
        ring().validate().unwrap();
        assert_eq!(
            flag_of(&RunOptions {
                backend: BackendId::Posix,
                ..ring()
            }),
            Setting::Buffer
        );
        RunOptions {
            workload: Workload {
                op: Op::Write,
                ..(ring()).workload
            },
            ..ring()
        }
        .validate()
        .unwrap();
        assert_eq!(
            flag_of(&RunOptions {
                verify: true,
                ..ring()
            }),
            Setting::Buffer
        );
        let posix_fixed = RunOptions {
            backend: BackendId::Posix,
            fixed_buffers: FixedBuffers::On,
            ..d()
        };
        assert_eq!(flag_of(&posix_fixed), Setting::FixedBuffers);
        // The default (auto) registers where it can and is never the reason for a refusal.
        for auto in [
            RunOptions {
                backend: BackendId::Posix,
                ..d()
            },
            RunOptions {
                direct: false,
                ..d()
            },
            RunOptions {
                ring: RingOptions {
                    opcode: RingOpcode::Readv,
                    ..RingOptions::default()
                },
                ..d()
            },
        ] {
            assert_eq!(auto.fixed_buffers, FixedBuffers::Auto);
            auto.validate().unwrap();
        }
        let no_chunks = RunOptions {
            gpu: GpuOptions {
                bounce_buffers: 0,
                ..GpuOptions::default()
            },
            ..d()
        };
        assert_eq!(flag_of(&no_chunks), Setting::BounceBuffers);
    }
}
