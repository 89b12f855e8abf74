//! The command line: parse, run, print, exit. The only module that prints or picks an exit
//! status; everything it calls returns values.

//!
//! One file per subcommand: `run.rs` (`gdswap run`), `compare.rs` (`gdswap compare`),
//! `sweep.rs` (`gdswap sweep`), `report.rs` (`gdswap report`), `check.rs` (`gdswap check`),
//! `optim_sim.rs` (`gdswap optim-sim`);
//! `backends` is small enough to live here.

mod args;
mod check;
mod compare;
mod flags;
mod optim_sim;
mod progress;
mod qualify;
mod report;
mod run;
mod sink;
mod sweep;
mod targets;
mod values;

pub use flags::{flag, render};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::backend::{self, Availability};
use crate::error::Error;
use crate::ranks;

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("GDSWAP_GIT_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "gdswap",
    version = VERSION,
    about = "Move tensors between NVMe files and GPU/host memory, and measure how well each path does it",
    after_help = "Run `gdswap run --help` for the transfer benchmark's options."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Move data between files and memory through one backend, and report bandwidth, latency
    /// percentiles and CPU cost.
    Run(run::RunArgs),
    /// Run one workload through every backend and peer tool, interleaved in rounds, and compare
    /// them side by side.
    Compare(compare::CompareArgs),
    /// Measure a grid of block sizes, queue depths and threads like `compare`, and find the best
    /// settings per backend (written as a config file and a DeepSpeed "aio" block).
    Sweep(sweep::SweepArgs),
    /// Turn saved JSON results (run, compare, a sweep's points.jsonl) back into a Markdown
    /// report and SVG plots.
    Report(report::ReportArgs),
    /// List the backends and whether each can run on this machine.
    Backends(BackendsArgs),
    /// Report on this node for GPUDirect Storage: CUDA and cuFile libraries, the data path's
    /// filesystem, O_DIRECT, device and NUMA node, io_uring, memlock; a verdict per backend.
    Check(check::CheckArgs),
    /// Simulate a ZeRO-Infinity-style optimizer step with its state swapped to NVMe (serial
    /// and pipelined), and check the result bit for bit against the same steps in memory.
    OptimSim(optim_sim::OptimSimArgs),
    /// Qualify this node against a spec: required `check` rows and workloads with thresholds,
    /// one PASS/FAIL line each, a verdict, and a JSON + Markdown record (exit 0/1/2).
    Qualify(qualify::QualifyArgs),
    /// Internal: what `check` runs in a child process to open the cuFile driver.
    #[command(hide = true)]
    CufileProbe(check::ProbeArgs),
}

/// Entry point of the `gdswap` binary.
pub fn main() -> ExitCode {
    // Output piped into a reader that stopped reading (`gdswap ... | head -1`): Rust ignores
    // SIGPIPE, so the next print fails with EPIPE and println! panics. That panic is caught
    // here, once the stack has unwound (every value dropped, scratch files removed), and ends
    // the process quietly with the status a shell gives a process SIGPIPE ended, 141, rather
    // than a panic message and 101.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !broken_pipe(info.payload()) {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(run_command) {
        Ok(code) => code,
        Err(p) if broken_pipe(p.as_ref()) => ExitCode::from(141),
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Whether a panic is print!/println! failing on a closed pipe (the message of std's
/// `print_to`: "failed printing to stdout: Broken pipe (os error 32)").
fn broken_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    msg.starts_with("failed printing to std") && msg.contains("Broken pipe")
}

fn run_command() -> ExitCode {
    // Library messages name settings; what this binary prints names the flags.
    let _names = crate::error::SettingNames::scope(flags::flag);
    let cli = Cli::parse();
    // The commands that measure meet the other processes of a parallel launch (mpirun, srun);
    // under one, a build without MPI refuses to run unsynchronised copies.
    let coord = match &cli.command {
        Command::Run(_)
        | Command::Compare(_)
        | Command::Sweep(_)
        | Command::OptimSim(_)
        | Command::Qualify(_) => match ranks::from_launcher() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("gdswap: error: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => Box::new(ranks::Solo),
    };
    let coord = coord.as_ref();
    let outcome = match cli.command {
        Command::Run(args) => run::run(&args, coord),
        Command::Compare(args) => compare::run(&args, coord),
        Command::Sweep(_) | Command::OptimSim(_) if coord.size() > 1 => Err(Error::Ranks(format!(
            "this command does not run as {} processes yet (only `run`, `compare` and `qualify` do): start it without mpirun/srun",
            coord.size()
        ))),
        Command::Sweep(args) => sweep::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Check(args) => check::run(&args),
        Command::OptimSim(args) => optim_sim::run(&args),
        Command::Qualify(args) => return qualify::run(&args, coord),
        Command::CufileProbe(args) => check::cufile_probe(&args),
        Command::Backends(args) => {
            backends(&args);
            Ok(Outcome::Done)
        }
    };
    // The cuFile driver stays open while a command runs (see cufile::driver); close it before
    // the process exits rather than leave it to cuFile's exit handlers, which race its own
    // worker threads (libcufile 1.15.1 with its thread pool on, execution.max_io_threads in
    // cufile.json: a segfault at exit in about half the runs; tests/cufile_real_io.rs).
    let _ = crate::cufile::Driver::close_if_unused();
    // The binary's edge: library errors become anyhow errors (context can be added on the
    // way up), printed with the flags the user typed.
    match outcome.map_err(anyhow::Error::from) {
        Ok(o) => o.exit_code(),
        Err(e) if coord.size() > 1 => {
            // One rank failed: say which and why, then end every rank (the others may be
            // waiting for this one at a barrier).
            eprintln!(
                "gdswap: error: rank {} of {} on {}: {e}",
                coord.rank(),
                coord.size(),
                coord.host()
            );
            let _ = std::io::Write::flush(&mut std::io::stderr());
            coord.abort(1)
        }
        Err(e) => {
            eprintln!("gdswap: error: {}", flags::report(&e));
            ExitCode::FAILURE
        }
    }
}

/// How a command that did not fail ended; [`main`] maps it to the exit status (a failure, an
/// `Err`, is 1). Commands return it rather than exiting, so they end by returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: exit status 0.
    Done,
    /// Stopped early by Ctrl-C or SIGTERM, what was finished kept: exit status 130 (128 +
    /// SIGINT, as shells report it).
    Interrupted,
}

impl Outcome {
    /// The process's exit status for this outcome.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::Interrupted => ExitCode::from(130),
        }
    }
}

#[derive(clap::Args, Debug)]
struct BackendsArgs {
    /// Give each reason in full (for a missing libcuda: every library name looked for).
    #[arg(short, long)]
    verbose: bool,
}

fn backends(args: &BackendsArgs) {
    for b in backend::all() {
        let state = match b.probe() {
            Availability::Available => "available".to_string(),
            Availability::Unavailable(why) if args.verbose => format!("unavailable: {why}"),
            Availability::Unavailable(why) => {
                format!("unavailable: {}", short_reason(&why.to_string()))
            }
        };
        println!("{:<8} {:<60} {state}", b.name(), b.summary());
    }
}

/// The short form of an unavailable backend's reason, for notes printed once per backend:
/// the CUDA driver's not-found reason lists every library name looked for (some 500
/// characters, the same for every GPU backend), so it becomes one clause pointing at
/// `gdswap backends -v`, which prints it in full. Other reasons are short already.
pub(crate) fn short_reason(reason: &str) -> std::borrow::Cow<'_, str> {
    let full = crate::cuda::driver::not_found_reason();
    if reason.contains(&full) {
        reason
            .replace(
                &full,
                "libcuda (the NVIDIA driver's CUDA library) not found (`gdswap backends -v` says where gdswap looked and how to point it at one)",
            )
            .into()
    } else {
        reason.into()
    }
}
