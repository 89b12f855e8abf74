//! How the command line names the library's closed sets (`--op read`, `--buffer ring`, ...):
//! `clap::ValueEnum` for each, here, so the library's types carry no clap (a library user
//! builds without it). The help texts are the ones `--help` prints for each value.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::optim_sim::Mode;
use crate::options::{BounceMode, BufferMode, GdsApi, HugePages, Op};
use crate::sweep::Metric;
use crate::types::ring_options::{FixedBuffers, RingOpcode, RingSetup, RingSubmit};

/// `impl ValueEnum for $ty`: each variant, its name on the command line and, optionally, the
/// help text `--help` shows for it.
macro_rules! value_enum {
    ($ty:ident { $($variant:ident => $name:literal $(: $help:literal)?),+ $(,)? }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($ty::$variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($ty::$variant => PossibleValue::new($name)$(.help($help))?),+
                })
            }
        }
    };
}

value_enum!(Op {
    Read => "read",
    Write => "write",
});

value_enum!(BufferMode {
    Full => "full": "One buffer the size of the thread's range, as a tensor is: every byte read stays in memory (and `--verify` checks all of it)",
    Ring => "ring": "queue depth x block size buffers reused as requests complete, as fio and gdsio do: a pure device benchmark with a small memory footprint. Reads only; no `--verify` (the data is overwritten as it arrives)",
});

value_enum!(HugePages {
    Auto => "auto",
    Hugetlb => "hugetlb",
    Thp => "thp",
    Off => "off",
});

value_enum!(BounceMode {
    Pipelined => "pipelined": "Disk reads into a ring of pinned chunks overlap with copies to the device",
    Serial => "serial": "The naive variant: the whole range through a pinned staging buffer, I/O then copies",
});

value_enum!(GdsApi {
    Sync => "sync": "cuFileRead/cuFileWrite, one block at a time per thread (parallelism by threads)",
    Stream => "stream": "cuFileReadAsync/WriteAsync on the thread's CUDA stream, queue depth in flight",
    Batch => "batch": "cuFileBatchIO: queue-depth entries per submit, every event checked",
});

value_enum!(RingSetup {
    Auto => "auto": "DEFER_TASKRUN+SINGLE_ISSUER where the kernel has it (6.1+), else COOP_TASKRUN (5.19+), else none",
    None => "none": "No setup flags",
    Coop => "coop": "IORING_SETUP_COOP_TASKRUN (5.19+)",
    Defer => "defer": "IORING_SETUP_DEFER_TASKRUN + SINGLE_ISSUER (6.1+)",
    Sqpoll => "sqpoll": "IORING_SETUP_SQPOLL: a kernel thread polls the submission queue (takes a CPU)",
});

value_enum!(RingSubmit {
    Each => "each": "One io_uring_enter per request as it is queued (fio's iodepth_batch_submit=1)",
    Batch => "batch": "Queue every request the free slots allow, then one io_uring_enter for all",
});

value_enum!(FixedBuffers {
    Auto => "auto": "Registered where the kernel allows (host backend, O_DIRECT, CAP_IPC_LOCK or enough RLIMIT_MEMLOCK, charged per user), otherwise not, and the mode line says why",
    On => "on": "Always registered; refused up front when RLIMIT_MEMLOCK cannot hold the buffers",
    Off => "off": "Never registered",
});

value_enum!(RingOpcode {
    Read => "read": "IORING_OP_READ/WRITE (READ_FIXED/WRITE_FIXED with --fixed-buffers)",
    Readv => "readv": "IORING_OP_READV/WRITEV with a one-element iovec",
});

value_enum!(Metric {
    Read => "read",
    Write => "write",
    Both => "both",
});

value_enum!(Mode {
    Serial => "serial",
    Pipelined => "pipelined",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line's names are the library's own (`Display`/`name()`), so what a user
    /// types is what reports and errors print.
    #[test]
    fn names_match_the_library() {
        for v in Op::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.to_string());
        }
        for v in GdsApi::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.to_string());
        }
        for v in Metric::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.name());
        }
        for v in Mode::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.name());
        }
        for v in RingSetup::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.to_string());
        }
        for v in RingSubmit::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.to_string());
        }
        for v in FixedBuffers::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.to_string());
            assert_eq!(serialized(v), v.to_string());
        }
        for v in RingOpcode::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), v.to_string());
        }
        fn serialized(v: &impl serde::Serialize) -> String {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        }
        for v in HugePages::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), serialized(v));
        }
        for v in BufferMode::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), serialized(v));
        }
        for v in BounceMode::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), serialized(v));
        }
    }
}
