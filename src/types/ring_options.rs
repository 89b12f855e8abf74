//! How the io_uring engine drives its ring: the knobs `run` exposes for ablations
//! (`--ring-setup`, `--ring-submit`, `--ring-wait`, `--register-files`, `--ring-opcode`),
//! resolved once into these typed values. See docs/usage.md and docs/benchmarks.md.

use serde::{Deserialize, Serialize};

/// io_uring_setup flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RingSetup {
    /// The cheapest completion mode the kernel offers: DEFER_TASKRUN + SINGLE_ISSUER (6.1+),
    /// else COOP_TASKRUN (5.19+), else none; the report says which one was used.
    #[default]
    Auto,
    /// No setup flags (completions posted by task work that interrupts the thread).
    None,
    /// IORING_SETUP_COOP_TASKRUN (5.19+).
    Coop,
    /// IORING_SETUP_DEFER_TASKRUN + SINGLE_ISSUER (6.1+): completions posted only when the
    /// thread enters the kernel to wait for them.
    Defer,
    /// IORING_SETUP_SQPOLL: a kernel thread polls the submission queue (costs a CPU).
    Sqpoll,
}

/// When queued requests are handed to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RingSubmit {
    /// One io_uring_enter for every request as it is queued (fio's default,
    /// iodepth_batch_submit=1): the device sees each request as soon as a slot frees.
    Each,
    /// Queue every request a free slot allows, then one io_uring_enter for all of them.
    #[default]
    Batch,
}

/// How many completions the engine waits for when it has nothing to submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RingWait {
    /// At least this many (capped at the requests in flight).
    Count(u32),
    /// Every request in flight.
    All,
}

impl Default for RingWait {
    fn default() -> Self {
        RingWait::Count(1)
    }
}

impl RingWait {
    /// Completions to wait for with `in_flight` requests in flight (at least one).
    pub fn want(self, in_flight: usize) -> usize {
        match self {
            RingWait::Count(n) => (n as usize).clamp(1, in_flight.max(1)),
            RingWait::All => in_flight.max(1),
        }
    }
}

impl std::fmt::Display for RingSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RingSetup::Auto => "auto",
            RingSetup::None => "none",
            RingSetup::Coop => "coop",
            RingSetup::Defer => "defer",
            RingSetup::Sqpoll => "sqpoll",
        })
    }
}

impl std::fmt::Display for RingSubmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RingSubmit::Each => "each",
            RingSubmit::Batch => "batch",
        })
    }
}

impl std::fmt::Display for RingOpcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RingOpcode::Read => "read",
            RingOpcode::Readv => "readv",
        })
    }
}

impl std::fmt::Display for RingWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingWait::Count(n) => write!(f, "{n}"),
            RingWait::All => f.write_str("all"),
        }
    }
}

impl std::str::FromStr for RingWait {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(RingWait::All);
        }
        match s.parse::<u32>() {
            Ok(n) if (1..=4096).contains(&n) => Ok(RingWait::Count(n)),
            _ => Err(format!(
                "'{s}' is not a count of completions: a whole number 1..=4096, or all"
            )),
        }
    }
}

/// Which read/write opcode carries a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RingOpcode {
    /// IORING_OP_READ / WRITE (5.6+), or READ_FIXED / WRITE_FIXED with fixed buffers.
    #[default]
    Read,
    /// IORING_OP_READV / WRITEV with a one-element iovec (fio's `nonvectored=0`).
    Readv,
}

/// Whether the io_uring engine registers its buffers (and file) with the ring
/// (`--fixed-buffers`): READ_FIXED/WRITE_FIXED on registered memory skip the per-request page
/// pinning the kernel does for unregistered O_DIRECT buffers, which cut gdswap's CPU-s/GiB by
/// a fifth to a third in every ablation run (bench-results/2026-12-04-ring-ablation-quiet-*,
/// 2026-12-04-fixed-buffers-ab-session9), bandwidth unchanged within the noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FixedBuffers {
    /// Registered when the host backend's engine can (O_DIRECT, READ opcodes, and the kernel
    /// accepts the registration: RLIMIT_MEMLOCK or CAP_IPC_LOCK); otherwise unregistered, and
    /// the engine's mode line says why. The `bounce` backend keeps its pinned chunks
    /// unregistered (registering CUDA-pinned memory with io_uring has not run on a GPU yet).
    #[default]
    Auto,
    /// Always registered; a registration the kernel refuses is an error (memlock named).
    On,
    /// Never registered.
    Off,
}

impl FixedBuffers {
    /// Whether buffers must be registered (an error when they cannot be).
    pub fn required(self) -> bool {
        self == FixedBuffers::On
    }
}

impl std::fmt::Display for FixedBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FixedBuffers::Auto => "auto",
            FixedBuffers::On => "on",
            FixedBuffers::Off => "off",
        })
    }
}

/// Reads `"auto"`, `"on"`, `"off"`, and the booleans of reports written before `auto` existed
/// (`true`: on, `false`: off).
impl<'de> Deserialize<'de> for FixedBuffers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(FixedBuffers::On),
            Raw::Bool(false) => Ok(FixedBuffers::Off),
            Raw::Name(n) => match n.as_str() {
                "auto" => Ok(FixedBuffers::Auto),
                "on" => Ok(FixedBuffers::On),
                "off" => Ok(FixedBuffers::Off),
                other => Err(serde::de::Error::custom(format!(
                    "fixed_buffers: '{other}' is not auto, on or off"
                ))),
            },
        }
    }
}

/// Everything about how one engine drives its ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RingOptions {
    /// How the ring is set up (task-run flags).
    pub setup: RingSetup,
    /// How requests are submitted.
    pub submit: RingSubmit,
    /// How completions are waited for.
    pub wait: RingWait,
    /// Register the file descriptors (without registering buffers; `fixed_buffers` registers
    /// both).
    pub register_files: bool,
    /// Which read/write opcodes the engine uses.
    pub opcode: RingOpcode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_buffers_reads_names_and_old_booleans() {
        for (json, want) in [
            ("\"auto\"", FixedBuffers::Auto),
            ("\"on\"", FixedBuffers::On),
            ("\"off\"", FixedBuffers::Off),
            ("true", FixedBuffers::On),
            ("false", FixedBuffers::Off),
        ] {
            assert_eq!(serde_json::from_str::<FixedBuffers>(json).unwrap(), want);
        }
        assert!(serde_json::from_str::<FixedBuffers>("\"yes\"").is_err());
        assert_eq!(
            serde_json::to_string(&FixedBuffers::Auto).unwrap(),
            "\"auto\""
        );
    }

    #[test]
    fn wait_parses_counts_and_all_and_refuses_the_rest() {
        assert_eq!("1".parse::<RingWait>(), Ok(RingWait::Count(1)));
        assert_eq!("8".parse::<RingWait>(), Ok(RingWait::Count(8)));
        assert_eq!("all".parse::<RingWait>(), Ok(RingWait::All));
        for bad in ["0", "-1", "x", "", "4097"] {
            assert!(bad.parse::<RingWait>().is_err(), "{bad}");
        }
        assert_eq!(RingWait::Count(4).want(2), 2);
        assert_eq!(RingWait::Count(4).want(8), 4);
        assert_eq!(RingWait::All.want(8), 8);
        assert_eq!(RingWait::All.want(0), 1);
    }
}
