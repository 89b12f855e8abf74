//! Peer tools measured on the same workload as gdswap's backends, so a comparison can say
//! "as fast as fio" with fio's own numbers, not a reimplementation of them.
//!
//! `fio`: the io_uring engine with O_DIRECT on the same file(s), block size, queue depth and
//! byte ranges as gdswap's plan: threads become fio jobs, `numjobs` with `offset_increment`
//! when every thread has an equal range of one shared file (the usual case), else one job
//! section per thread with its own file, offset and size (per-thread files of `--dir`, or an
//! uneven last range), so fio moves exactly the bytes gdswap moves. Warm-up loops run as a
//! separate job group before the measured one (`stonewall`), figures come from the measured
//! group (`group_reporting`): bandwidth `bw_bytes`, latency percentiles of `lat_ns`
//! (submission to completion, as gdswap measures), CPU = (`usr_cpu` + `sys_cpu`) x
//! `job_runtime`. Buffers are 2 MiB huge pages (`--iomem=shmhuge`) when enough are reserved,
//! as gdswap's own buffers are, since buffer placement changes O_DIRECT speed by up to 2x.
//!
//! `gdsio` (NVIDIA's GDS benchmark, from the GDS tools) gives two rows: `gdsio-gpud`
//! (`-x 0`, GPUD: cuFile between the file and GPU memory, to set beside the `gds` backend) and
//! `gdsio-cpu-gpu` (`-x 2`, CPU_GPU: through host memory, beside `bounce`). Each runs the
//! workload's file (`-f`, its threads sharing it), GPU (`-d`), threads (`-w`), size (`-s`) and
//! block size (`-i`), sequential read (`-I 0`) or write (`-I 1`); once per warm-up loop (the
//! figures dropped) and once per measured loop, whose figures are combined: bandwidth = bytes /
//! the time gdsio's throughputs imply, latency = the ops-weighted mean of its averages. gdsio
//! reports no percentiles and no CPU time: those figures are absent, not 0. Workloads it cannot
//! run the same way (random, buffered, per-thread files of `--dir` with more than one thread,
//! sizes that are not whole blocks per thread) skip it with the reason. See [`gdsio_args`] for
//! where the flags and the output format are documented; no run on a real GPU has checked them.
//!
//! The command builders and the parsers are pure functions (fio's tested on a real fio 3.33
//! output, gdsio's on lines in the format NVIDIA's documentation shows); only [`run_fio`] and
//! [`run_gdsio`] start a process. A missing tool is a note for the caller, not an error.

mod fio;
mod gdsio;
mod tool;

pub use fio::{
    fio_args, fio_huge_pages_needed, fio_ranges, fio_use_huge_pages, locate_fio, parse_fio,
    run_fio, settle_fixed_buffers, FioFigures, FioMemory, FioRange,
};
pub use gdsio::{
    gdsio_args, gdsio_file, gdsio_round, gdsio_timeout, locate_gdsio, parse_gdsio, run_gdsio,
    GdsioFigures, GdsioXfer, GDSIO_DEFAULT, GDSIO_ENV, GDSIO_TIMEOUT_ENV, GDSIO_XFERS,
};
pub use tool::find_in_path;

/// The peer tools gdswap knows: `gdsio` stands for both of its rows, which can also be asked
/// for one at a time.
pub const PEERS: &[&str] = &["fio", "gdsio", "gdsio-gpud", "gdsio-cpu-gpu"];

/// The workload the tests of fio and gdsio share.
#[cfg(test)]
mod testutil {
    use crate::options::{RunOptions, Target, Workload};

    pub(super) fn opts(threads: usize, target: Target) -> RunOptions {
        RunOptions {
            workload: Workload {
                target,
                threads,
                size: 8 << 20,
                block_size: 1 << 20,
                queue_depth: 4,
                loops: 2,
                warmup: 1,
                ..RunOptions::default().workload
            },
            ..RunOptions::default()
        }
    }
}
