//! `gdswap run`: one workload through one backend, printed and exported.

use std::path::{Path, PathBuf};

use clap::Args;

use super::sink::Sink;

use crate::backend::BackendId;
use crate::error::{Error, Setting};
use crate::harness;
use crate::options::{
    BounceMode, BufferMode, FixedBuffers, GdsApi, GdsOptions, GpuOptions, Op, RingOpcode,
    RingOptions, RingSetup, RingSubmit, RingWait, RunOptions, Target, Workload,
};
use crate::ranks::Coordinator;
use crate::report::{self, RunReport};
use crate::size::{parse_size, SIZE_RULE};

use super::args::{DataArgs, LoopArgs};
use super::Outcome;

fn after_run_help() -> String {
    format!(
        "{SIZE_RULE}.\n\
         Data: with neither --file nor --dir, files go to the default data directory \
         $GDSWAP_DATA_DIR, or ./gdswap-data when it is unset (one file per thread, gdswap.<tid>.dat, \
         created and filled with a verifiable pattern on first use).\n\
         --size is the total per loop, split between threads in whole blocks.\n\
         Exit status: 0 success; 1 the run failed or a value was refused (the one-line message \
         names the flag or path); 2 the command line could not be parsed."
    )
}

/// `--backend NAME`: one of [`BackendId::names`] (listed in the help, anything else refused by
/// clap), parsed into its [`BackendId`] here, once.
pub(crate) fn backend_parser() -> impl clap::builder::TypedValueParser<Value = BackendId> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(BackendId::names())
        .try_map(|name| name.parse::<BackendId>())
}

#[derive(Args, Debug)]
#[command(after_help = after_run_help())]
pub struct RunArgs {
    /// Transfer path.
    #[arg(long, default_value = "host", value_parser = backend_parser())]
    backend: BackendId,
    /// Direction: read from the file into memory, or write memory to the file.
    #[arg(long, value_enum, default_value_t = Op::Read)]
    op: Op,
    #[command(flatten)]
    data: DataArgs,
    /// Bytes per request.
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    block_size: u64,
    /// Requests in flight per thread (host, bounce, and gds with --gds-api stream or batch;
    /// posix and gds sync move one request at a time).
    #[arg(long, default_value_t = 8)]
    queue_depth: u32,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[command(flatten)]
    looping: LoopArgs,
    /// Run the measured loops for this long instead of --loops (fio's time_based + runtime):
    /// 30s, 10m, 1h. With --verify every loop is verified (a soak); a progress line shows on
    /// a terminal.
    #[arg(long, value_name = "TIME", value_parser = parse_duration_arg, conflicts_with = "loops")]
    duration: Option<std::time::Duration>,
    /// With --verify: verify every measured loop and count wrong 4 KiB blocks, each logged
    /// with file, offset and what was found, stopping only past N of them (default: the
    /// first wrong block stops the run).
    #[arg(long, value_name = "N")]
    max_errors: Option<u64>,
    /// Check every byte: reads check what landed in memory, writes read the file back.
    #[arg(long)]
    verify: bool,
    /// Register buffers and files with io_uring (host, bounce): READ_FIXED/WRITE_FIXED skip the
    /// kernel's per-request page pinning (less CPU). auto (the default) registers the host
    /// backend's buffers when the kernel accepts (CAP_IPC_LOCK, or RLIMIT_MEMLOCK, which is
    /// charged per user) and says in the mode line when it could not; on (also plain --fixed-buffers) always, refusing what memlock cannot hold;
    /// off never.
    #[arg(long, value_enum, value_name = "WHEN", num_args = 0..=1, require_equals = false,
          default_value_t = FixedBuffers::Auto, default_missing_value = "on")]
    fixed_buffers: FixedBuffers,
    /// Advanced (host/bounce io_uring engine): io_uring_setup flags. auto = DEFER_TASKRUN +
    /// SINGLE_ISSUER where the kernel has them (6.1+), else COOP_TASKRUN (5.19+), else none;
    /// the others are refused when the kernel lacks them.
    #[arg(long, value_enum, default_value_t = RingSetup::default(), value_name = "SETUP")]
    ring_setup: RingSetup,
    /// Advanced: submit each request with its own io_uring_enter as it is queued (fio's way),
    /// or queue all the free slots allow and submit them in one batch.
    #[arg(long, value_enum, default_value_t = RingSubmit::default(), value_name = "WHEN")]
    ring_submit: RingSubmit,
    /// Advanced: completions to wait for when nothing more can be submitted: a count (capped
    /// at the requests in flight) or all.
    #[arg(long, default_value_t = RingWait::default(), value_name = "N|all")]
    ring_wait: RingWait,
    /// Advanced: register the file descriptors with io_uring (without registering buffers;
    /// --fixed-buffers registers both).
    #[arg(long)]
    register_files: bool,
    /// Advanced: IORING_OP_READ/WRITE, or READV/WRITEV with a one-element iovec.
    #[arg(long, value_enum, default_value_t = RingOpcode::default(), value_name = "OP")]
    ring_opcode: RingOpcode,
    /// Where transfers land: full = one buffer the size of the thread's range (a tensor; what
    /// --verify checks), ring = queue depth x block size buffers reused as requests complete
    /// (fio's and gdsio's footprint; host backend, no --verify: a ring write repeats the ring's bytes).
    #[arg(long, value_enum, default_value_t = BufferMode::Full)]
    buffer: BufferMode,
    /// Take --block-size, --queue-depth and --threads from a config file written by
    /// `gdswap sweep` (its best.json): the settings of the backend that runs (and its
    /// --bounce-buffers or --gds-api, when the sweep swept them).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["block_size", "queue_depth", "threads"])]
    config: Option<PathBuf>,
    /// CUDA device ordinal (GPU backends).
    #[arg(long, default_value_t = 0, value_name = "N")]
    gpu: usize,
    /// One GPU per --dir, in order (GPU backends): `--dir A --dir B --gpus 0,1` moves A's data
    /// to GPU 0 and B's to GPU 1 at the same time (DeepSpeed's folder_to_device_mapping,
    /// gdsio's per-job -d).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "N,N,...",
        conflicts_with = "gpu"
    )]
    gpus: Vec<usize>,
    /// NUMA placement of the worker threads and their buffers: auto = on a machine with
    /// several NUMA nodes, the node of the GPU (GPU backends) or of the drive; off = none;
    /// N = node N. Bound threads run on the node's CPUs (those this process may use) and
    /// allocate from its memory; the output shows the binding.
    #[arg(long, default_value = "auto", value_name = "auto|off|N")]
    numa: crate::numa::NumaChoice,
    /// Pinned chunks per thread, each one block (bounce backend; pinned memory per thread is
    /// K x block size, checked against RLIMIT_MEMLOCK). Default: twice the queue depth, so a
    /// whole queue of reads can complete at once and be copied while the next queue is read.
    #[arg(long, value_name = "K")]
    bounce_buffers: Option<usize>,
    /// bounce backend: overlap disk I/O with copies to the GPU through the ring of chunks, or
    /// (serial) read the whole range into a pinned staging buffer, then copy it.
    #[arg(long, value_enum, default_value_t = BounceMode::Pipelined)]
    bounce_mode: BounceMode,
    /// gds backend: how cuFile is called: sync (cuFileRead/Write per block, parallelism by
    /// threads), stream (cuFileReadAsync/WriteAsync on a CUDA stream, queue depth in flight)
    /// or batch (cuFileBatchIO, queue-depth entries per submit). Default: sync.
    #[arg(long, value_enum, value_name = "API")]
    gds_api: Option<GdsApi>,
    /// gds backend: do not register device buffers with cuFileBufRegister (as gdsio -b).
    #[arg(long)]
    no_register: bool,
    /// gds backend: fail when the file's I/O would go through cuFile's compat mode (POSIX
    /// through host memory) instead of GPUDirect.
    #[arg(long)]
    require_gpudirect: bool,
    /// Write the full result as JSON to FILE (- for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the result as one CSV row with a header to FILE (- for stdout).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

impl RunArgs {
    /// The `--json` and `--csv` destinations, for subcommands that flatten these options.
    pub fn export_paths(&self) -> (Option<&Path>, Option<&Path>) {
        (self.json.as_deref(), self.csv.as_deref())
    }

    /// Refuses a second `--dir` where a command measures one target.
    pub fn single_target(&self, command: &str) -> Result<(), Error> {
        self.data.single_target(command)?;
        if self.gpus.len() > 1 {
            return Err(Error::invalid(
                Setting::Gpus,
                format!("{command} measures one target on one GPU; give one GPU"),
            ));
        }
        Ok(())
    }

    /// The GPU of each target (`--gpus`, one per `--dir`), checked against the backend and
    /// the number of directories; empty without `--gpus`.
    pub fn target_gpus(&self) -> Result<Vec<usize>, Error> {
        if self.gpus.is_empty() {
            return Ok(Vec::new());
        }
        if crate::backend::get(self.backend).memory() == crate::backend::MemoryKind::Host {
            return Err(Error::invalid(
                Setting::Gpus,
                format!(
                    "applies to the GPU backends (bounce, gds) only, not to --backend {}",
                    self.backend
                ),
            ));
        }
        let dirs = 1 + self.data.extra_dirs().len();
        if self.gpus.len() != dirs {
            return Err(Error::invalid(
                Setting::Gpus,
                format!(
                    "{} GPUs for {dirs} --dir: give one GPU per directory, in the same order",
                    self.gpus.len()
                ),
            ));
        }
        Ok(self.gpus.clone())
    }

    /// The `--config` file, for subcommands that flatten these options.
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// The run's options; an error only for an unusable `GDSWAP_DATA_DIR`.
    pub fn options(&self) -> Result<RunOptions, Error> {
        let mut o = RunOptions {
            backend: self.backend,
            workload: Workload {
                op: self.op,
                block_size: self.block_size,
                queue_depth: self.queue_depth,
                threads: self.threads,
                ..RunOptions::default().workload
            },
            verify: self.verify,
            fixed_buffers: self.fixed_buffers,
            buffer: self.buffer,
            ring: RingOptions {
                setup: self.ring_setup,
                submit: self.ring_submit,
                wait: self.ring_wait,
                register_files: self.register_files,
                opcode: self.ring_opcode,
            },
            gpu: GpuOptions {
                device: self.gpus.first().copied().unwrap_or(self.gpu),
                bounce_buffers: self.bounce_buffers.unwrap_or(2 * self.queue_depth as usize),
                bounce_mode: self.bounce_mode,
                gds: (self.backend == BackendId::Gds).then(|| GdsOptions {
                    api: self.gds_api.unwrap_or_default(),
                    register: !self.no_register,
                    require_gpudirect: self.require_gpudirect,
                }),
            },
            duration: self.duration,
            max_errors: self.max_errors,
            numa: self.numa,
            ..RunOptions::default()
        };
        self.data.apply(&mut o)?;
        self.looping.apply(&mut o);
        Ok(o)
    }

    /// Refuses gds-only flags given to another backend.
    pub fn check_backend_flags(&self) -> Result<(), Error> {
        if self.backend == BackendId::Gds {
            return Ok(());
        }
        let given = [
            (Setting::GdsApi, self.gds_api.is_some()),
            (Setting::NoRegister, self.no_register),
            (Setting::RequireGpudirect, self.require_gpudirect),
        ];
        match given.iter().find(|(_, set)| *set) {
            Some((setting, _)) => Err(Error::invalid(
                *setting,
                format!(
                    "applies to the gds backend only, not to --backend {}",
                    self.backend
                ),
            )),
            None => Ok(()),
        }
    }
}

/// `--duration`: a whole number with its unit; zero is refused here, naming the flag.
fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::qualify::spec::parse_duration(s)
}

pub(crate) use crate::ranks::for_rank;

/// A soak's count of wrong blocks is one process's (the merge on rank 0 does not carry them):
/// `--max-errors` is refused under several ranks.
pub(crate) fn refuse_parallel_soak(
    opts: &RunOptions,
    coord: &dyn Coordinator,
) -> Result<(), Error> {
    if coord.size() > 1 && opts.max_errors.is_some() {
        return Err(Error::invalid(
            Setting::MaxErrors,
            crate::error::msg![
                format!(
                    "a soak's error count cannot be split over the processes of a parallel run ({} ranks); run it as one process, or leave out ",
                    coord.size()
                ),
                Setting::MaxErrors,
                " (the first wrong block then fails the job)"
            ],
        ));
    }
    Ok(())
}

pub fn run(args: &RunArgs, coord: &dyn Coordinator) -> Result<Outcome, Error> {
    args.check_backend_flags()?;
    let mut opts = args.options()?;
    if let Some(path) = &args.config {
        crate::tuning::Config::load(path, Setting::Config)?
            .for_backend(opts.backend.name(), path, Setting::Config)?
            .apply(&mut opts);
    }
    let opts = for_rank(opts, coord);
    opts.validate()?;
    refuse_parallel_soak(&opts, coord)?;
    if args.json.as_deref() == Some(Path::new("-")) && args.csv.as_deref() == Some(Path::new("-")) {
        return Err(Error::invalid(
            Setting::Csv,
            "--json and --csv cannot both write to stdout (-); send one of them to a file",
        ));
    }
    let json = args
        .json
        .as_deref()
        .map(|p| Sink::check(p, Setting::Json))
        .transpose()?;
    let csv = args
        .csv
        .as_deref()
        .map(|p| Sink::check(p, Setting::Csv))
        .transpose()?;
    let stdout_taken = matches!(json, Some(Sink::Stdout)) || matches!(csv, Some(Sink::Stdout));

    let data_path = match &opts.workload.target {
        Target::File(p) | Target::Dir(p) => p.clone(),
    };
    let gpus = args.target_gpus()?;
    if !args.data.extra_dirs().is_empty() {
        if coord.size() > 1 {
            return Err(Error::invalid(
                Setting::Dir,
                "several directories cannot be run by a parallel run of several processes; \
                 give one (each rank gets its own subdirectory)",
            ));
        }
        return super::targets::run(
            &opts,
            args.data.extra_dirs(),
            &gpus,
            json,
            csv,
            stdout_taken,
        );
    }
    let ticker = opts
        .duration
        .filter(|_| coord.rank() == 0)
        .and_then(|d| super::progress::start(&format!("run {}", opts.backend.name()), d));
    let measurements = match harness::run_with(&opts, coord)
        .and_then(|m| crate::rank_merge::gather(coord, m))
    {
        // Rank 0 reports the merged run; the other ranks nothing (their errors abort the run).
        Ok(m) if coord.rank() != 0 => {
            drop(m);
            return Ok(Outcome::Done);
        }
        Ok(m) => m,
        Err(e) => {
            // The failure is a result too: recorded with the error, then reported.
            if let Some(sink) = json {
                let mut record = report::FailedRun::new(
                    &opts,
                    &e,
                    crate::env::collect(&data_path),
                    report::now_utc(),
                );
                record.command_line = std::env::args().collect();
                // The record holds the line printed: with flags.
                record.error.message = super::render(&e);
                if let Err(w) = sink.write(&record.to_json()) {
                    return Err(Error::Within {
                        context: format!("{}; and recording it failed", super::render(&e)).into(),
                        source: Box::new(w),
                    });
                }
            }
            return Err(e);
        }
    };
    drop(ticker);
    let report = RunReport::new(
        &opts,
        &measurements,
        crate::env::collect(&data_path),
        report::now_utc(),
    );

    let text = format!(
        "{}\n{}",
        report::human::summary_line(&report),
        report::human::table(&report)
    );
    if stdout_taken {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    for w in &report.warnings {
        eprintln!("warning: {}\n  hint: {}", w.message, w.hint);
    }
    if let Some(sink) = json {
        sink.write(&report::json::to_json(std::slice::from_ref(&report)))?;
    }
    if let Some(sink) = csv {
        sink.write(&report::csv::to_csv(std::slice::from_ref(&report)))?;
    }
    soak_outcome(&report, &measurements)?;
    Ok(Outcome::Done)
}

/// A soak that found wrong blocks (no more than `--max-errors`) ran to its end and was
/// reported; each block is listed, and the run still fails.
fn soak_outcome(report: &RunReport, m: &harness::Measurements) -> Result<(), Error> {
    let Some(soak) = report.soak.as_ref().filter(|s| s.verify_errors > 0) else {
        return Ok(());
    };
    for e in &soak.errors {
        eprintln!(
            "verify error: {} at offset {}: {}",
            e.path.display(),
            e.offset,
            e.found
        );
    }
    if (soak.errors.len() as u64) < soak.verify_errors {
        eprintln!(
            "verify error: {} more not listed",
            soak.verify_errors - soak.errors.len() as u64
        );
    }
    let first = m
        .threads
        .iter()
        .flat_map(|t| &t.verify_failures)
        .next()
        .cloned();
    let context = format!(
        "{} wrong 4 KiB block{} in {} verified loop{} (--max-errors {})",
        soak.verify_errors,
        if soak.verify_errors == 1 { "" } else { "s" },
        soak.loops,
        if soak.loops == 1 { "" } else { "s" },
        soak.max_errors.unwrap_or(0)
    );
    Err(match first {
        Some(f) => Error::Within {
            context: context.into(),
            source: Box::new(Error::Verify(Box::new(f))),
        },
        None => Error::Mismatch(context),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rank 2 of 3, the second on its node.
    struct Rank2;

    impl Coordinator for Rank2 {
        fn rank(&self) -> usize {
            2
        }
        fn size(&self) -> usize {
            3
        }
        fn local_rank(&self) -> usize {
            1
        }
        fn host(&self) -> String {
            "node".into()
        }
        fn barrier(&self) -> crate::error::Result<()> {
            Ok(())
        }
        fn agree(&self, go_on: bool) -> crate::error::Result<bool> {
            Ok(go_on)
        }
        fn gather(&self, _: Vec<u8>) -> crate::error::Result<Option<Vec<Vec<u8>>>> {
            Ok(None)
        }
        fn abort(&self, _: i32) -> ! {
            panic!("abort")
        }
    }

    /// A soak under several processes would count wrong blocks on each rank alone: refused,
    /// naming the setting, before any file is touched. (A time-based run is not: rank 0's
    /// clock decides for all, `Coordinator::agree`.)
    #[test]
    fn a_parallel_run_refuses_a_soak() {
        let dir = crate::testutil::scratch_dir();
        let soak = RunOptions {
            workload: Workload {
                target: Target::Dir(dir.path().into()),
                ..RunOptions::default().workload
            },
            verify: true,
            max_errors: Some(3),
            ..RunOptions::default()
        };
        let e = refuse_parallel_soak(&soak, &Rank2).expect_err("refused");
        assert_eq!(e.setting(), Some(Setting::MaxErrors), "{e}");
        assert!(
            super::super::render(&e).contains("leave out --max-errors"),
            "{e}"
        );
        refuse_parallel_soak(&soak, &crate::ranks::Solo).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn each_rank_gets_its_own_files_and_gpu() {
        let dir = crate::testutil::scratch_dir();
        let opts = |target, create_dir| RunOptions {
            workload: Workload {
                target,
                ..RunOptions::default().workload
            },
            create_dir,
            ..RunOptions::default()
        };
        // A shared directory that exists: a subdirectory per rank, created as needed.
        let o = for_rank(opts(Target::Dir(dir.path().into()), false), &Rank2);
        assert_eq!(o.workload.target, Target::Dir(dir.path().join("rank2")));
        assert!(o.create_dir);
        // The rank's place on its node picks the GPU (host backend: no driver asked).
        assert_eq!(o.gpu.device, 1);
        // A missing directory without --create-dir stays as it is, to be refused by name.
        let missing = dir.path().join("missing");
        let o = for_rank(opts(Target::Dir(missing.clone()), false), &Rank2);
        assert_eq!(
            (o.workload.target, o.create_dir),
            (Target::Dir(missing), false)
        );
        // A file: a suffix per rank.
        let f = dir.path().join("data");
        let o = for_rank(opts(Target::File(f), false), &Rank2);
        assert_eq!(
            o.workload.target,
            Target::File(dir.path().join("data.rank2"))
        );
        // One process: unchanged.
        let o = for_rank(
            opts(Target::Dir(dir.path().into()), false),
            &crate::ranks::Solo,
        );
        assert_eq!(o.workload.target, Target::Dir(dir.path().into()));
        assert_eq!(o.gpu.device, 0);
    }
}
