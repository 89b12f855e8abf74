//! `gdswap compare`: one workload through every backend (and peer tools), interleaved in
//! rounds, printed as one table and exported as JSON, CSV or Markdown.
//!
//! The workload options are `gdswap run`'s own (flattened, so both stay in step); `--backend`
//! is replaced by `--backends LIST`.

use crate::ranks::Coordinator;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use clap::Args;

use crate::compare::{self, Progress};
use crate::error::{Error, Setting};
use crate::options::Target;
use crate::report::comparison;
use crate::report::markdown;
use crate::size::SIZE_RULE;
use crate::tuning::Config;

use super::run::RunArgs;
use super::sink::Sink;
use super::Outcome;
use crate::types::BackendId;

/// Stands for "not given" in the hidden `--backend` of the flattened run options.
const NO_BACKEND: &str = "-";

/// The hidden `--backend`: refused when given. Not given, it is a placeholder that
/// `compare::resolve` replaces with each contender's backend.
fn refuse_backend(s: &str) -> Result<BackendId, String> {
    if s == NO_BACKEND {
        Ok(BackendId::default())
    } else {
        Err("gdswap compare takes --backends LIST (the backends to compare, in order)".into())
    }
}

fn after_compare_help() -> String {
    format!(
        "Every contender runs the same workload once per round, in order (A B C, A B C, ...); \
         the first is the reference of the ratios, taken round by round.\n\
         With no options: every backend available here, and fio and gdsio where installed, on the \
         default data directory ($GDSWAP_DATA_DIR, else ./gdswap-data; a 1GiB file, created once).\n\
         The workload options are those of `gdswap run`. {SIZE_RULE}.\n\
         Exit status: 0 success, 1 the comparison failed (the message says why), 2 bad usage."
    )
}

#[derive(Args, Debug)]
#[command(
    mut_arg("backend", |a| a.hide(true).default_value(NO_BACKEND).value_parser(refuse_backend)),
    mut_arg("json", |a| a.help("Write the comparison as JSON to FILE (- for stdout)")),
    mut_arg("csv", |a| a.help("Write the comparison as CSV, one row per contender, to FILE (- for stdout)")),
    after_help = after_compare_help()
)]
pub struct CompareArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Backends to compare, in order (the first is the reference). Default: every backend that
    /// can run here; the others are listed as skipped, with the reason.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    backends: Option<Vec<String>>,
    /// Peer tools measured on the same files and ranges: fio, gdsio (two rows: gdsio-gpud and
    /// gdsio-cpu-gpu, which can also be named alone), or none. A tool that is not installed,
    /// or cannot run the workload alike, is noted and skipped; one that fails is dropped.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "fio,gdsio"
    )]
    peers: Vec<String>,
    /// Rounds: each contender runs once per round.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Write the comparison as Markdown to FILE (- for stdout).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Write the latency CDF of every contender as an SVG plot to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

pub fn run(args: &CompareArgs, coord: &dyn Coordinator) -> Result<Outcome, Error> {
    args.run.single_target("compare")?;
    let base = super::run::for_rank(args.run.options()?, coord);
    super::run::refuse_parallel_soak(&base, coord)?;
    // Peer tools are not coordinated across the processes of a parallel run: left out.
    let ranked = coord.size() > 1;
    let peers = if ranked {
        vec!["none".to_string()]
    } else {
        args.peers.clone()
    };
    // Rank 0 speaks for the run; the other ranks say nothing but their errors.
    let quiet = coord.rank() != 0;
    let config = args
        .run
        .config_path()
        .map(|p| Config::load(p, Setting::Config).map(|c| (c, p)))
        .transpose()?;
    // With --config and no --backends: the backends the config has settings for.
    let backends = match (&args.backends, &config) {
        (Some(b), _) => Some(b.clone()),
        (None, Some((c, _))) => Some(c.backends.keys().cloned().collect()),
        (None, None) => None,
    };
    // A time-based comparison runs the peers by time too: fio's measured group time_based for
    // the duration, gdsio -T (see peer::fio_args and compare::compare_with).
    let mut spec = compare::resolve(base, backends.as_deref(), &peers, args.rounds)?;
    super::flags::skip_reasons_with_flags(&mut spec);
    if let Some((c, p)) = &config {
        spec = compare::with_config(spec, c, p)?;
    }
    let (json, csv) = args.run.export_paths();
    let json = json.map(|p| Sink::check(p, Setting::Json)).transpose()?;
    let csv = csv.map(|p| Sink::check(p, Setting::Csv)).transpose()?;
    let md = args
        .markdown
        .as_deref()
        .map(|p| Sink::check(p, Setting::Markdown))
        .transpose()?;
    let svg = args
        .svg
        .as_deref()
        .map(|p| Sink::check(p, Setting::Svg))
        .transpose()?;
    let stdout_taken = [&json, &csv, &md, &svg]
        .iter()
        .any(|s| matches!(s, Some(Sink::Stdout)));

    if ranked && !quiet {
        eprintln!(
            "note: {} processes (mpirun/srun): --size is per rank, each figure is every rank's bytes over the earliest start to the latest end of each loop; peer tools (fio, gdsio) left out, they are not coordinated across processes",
            coord.size()
        );
    }
    for s in spec.skipped.iter().filter(|_| !quiet) {
        eprintln!(
            "note: skipping {} {}: {}",
            s.kind,
            s.name,
            super::short_reason(&s.reason.to_string())
        );
    }
    let names: Vec<&str> = spec.contenders.iter().map(|c| c.name()).collect();
    if !quiet {
        eprintln!(
            "comparing {} over {} round{}",
            names.join(", "),
            spec.rounds,
            if spec.rounds == 1 { "" } else { "s" }
        );
    }
    let stop = AtomicBool::new(false);
    let w = names.iter().map(|n| n.len()).max().unwrap_or(0).max(6);
    let result = compare::compare_with(
        &spec,
        &stop,
        &mut |p| {
            if quiet {
                return;
            }
            if let Progress::Measured {
                round,
                rounds,
                name,
                gibps,
            } = p
            {
                eprintln!("  round {round}/{rounds} {name:<w$} {gibps:.2} GiB/s");
            }
        },
        coord,
    );
    let result = match result {
        Ok(_) if quiet => return Ok(Outcome::Done),
        Ok(r) => r,
        Err(e) => {
            // The failure is a result too: recorded with the error, then reported.
            if let Some(sink) = json {
                let data_path = match &spec.base.workload.target {
                    Target::File(p) | Target::Dir(p) => p.clone(),
                };
                let mut record = comparison::FailedComparison::new(
                    compare::params_of(&spec),
                    &e,
                    crate::env::collect(&data_path),
                    crate::report::now_utc(),
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

    for s in result.skipped.iter().skip(spec.skipped.len()) {
        eprintln!(
            "warning: {} {} dropped from the comparison: {}",
            s.kind, s.name, s.reason
        );
    }
    let text = comparison::human(&result);
    if stdout_taken {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    for w in &result.warnings {
        eprintln!("warning: {}\n  hint: {}", w.message, w.hint);
    }
    if let Some(sink) = json {
        sink.write(&comparison::to_json(&result))?;
    }
    if let Some(sink) = csv {
        sink.write(&comparison::to_csv(&result))?;
    }
    if let Some(sink) = md {
        sink.write(&markdown::comparison(&result))?;
    }
    if let Some(sink) = svg {
        match crate::report::svg::latency_cdf(&result) {
            Some(text) => sink.write(&text)?,
            None => eprintln!("note: no latency figures to plot; --svg not written"),
        }
    }
    Ok(Outcome::Done)
}
