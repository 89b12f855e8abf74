//! `gdswap sweep`: the grid, a progress bar (hidden when the output is not a terminal), Ctrl-C
//! handling, and the files it leaves in `--out`.
//!
//! Ctrl-C: the first one asks the sweep to stop after the run in progress (the unfinished point
//! is dropped; every finished point is already on disk) and gdswap says what was kept and how
//! to continue, exiting with status 130; a second Ctrl-C ends the process at once.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::compare::Progress;
use crate::error::{Error, Setting};
use crate::options::{GdsApi, RunOptions};
use crate::size::{parse_size, Bytes, SIZE_RULE};
use crate::sweep::{self, Metric, PointLog, SweepEvent, SweepSpec};

use super::args::{DataArgs, LoopArgs};
use super::Outcome;

fn after_sweep_help() -> String {
    format!(
        "Each point of the grid (block size x queue depth x threads, and read and/or write as --metric \
         needs) runs like `gdswap compare`: every backend interleaved in --rounds rounds.\n\
         Files in --out: points.jsonl (one JSON comparison per line, appended as each point is \
         measured), points.csv (the same, one row per contender), best.json (the best settings per \
         backend: read by `gdswap run --config` and `gdswap compare --config`), aio.json (a DeepSpeed \
         \"aio\" block from the gds backend's best settings where gds was measured, else the host \
         backend's), sweep.md (the table) and the SVG plots it links (bandwidth vs block size per backend, one line per queue depth; latency CDFs at the best settings).\n\
         --bounce-buffers and --gds-api are grid dimensions of their own backend only: the first \
         value of each runs with every backend, each further value with that backend alone.\n\
         --metric both ranks by the harmonic mean 2rw/(r+w) of read and write GiB/s (the settings \
         that move a tensor out and back in fastest).\n\
         Ctrl-C stops after the run in progress, keeping every measured point; --resume continues.\n\
         {SIZE_RULE}.\n\
         Exit status: 0 done, 1 failed (the message says why), 2 bad usage, 130 interrupted."
    )
}

#[derive(Args, Debug)]
#[command(
    mut_arg("size", |a| a.default_value("256M")),
    mut_arg("loops", |a| a.default_value("2").help("Measured loops per run")),
    after_help = after_sweep_help()
)]
pub struct SweepArgs {
    /// Block sizes to try.
    #[arg(long, value_delimiter = ',', value_parser = parse_size, value_name = "LIST", default_value = "128K,1M,8M")]
    block_size: Vec<u64>,
    /// Queue depths to try.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "1,8,32"
    )]
    queue_depth: Vec<u32>,
    /// Thread counts to try.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "1,2"
    )]
    threads: Vec<usize>,
    /// Bounce buffers per thread to try (the bounce backend only; default: its own).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    bounce_buffers: Vec<usize>,
    /// cuFile APIs to try (the gds backend only; default: sync).
    #[arg(long, value_delimiter = ',', value_enum, value_name = "LIST")]
    gds_api: Vec<GdsApi>,
    /// Backends, in order (default: every backend that can run here).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    backends: Option<Vec<String>>,
    /// Peer tools measured at every point, for reference: fio, gdsio (gdsio-gpud and
    /// gdsio-cpu-gpu), or none.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "none"
    )]
    peers: Vec<String>,
    /// What the best settings are chosen for (both: see below).
    #[arg(long, value_enum, default_value_t = Metric::Read)]
    metric: Metric,
    /// Rounds per point.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    looping: LoopArgs,
    /// Directory for the points, the best settings and the report.
    #[arg(long, value_name = "DIR", default_value = "gdswap-sweep")]
    out: PathBuf,
    /// Continue the sweep whose points are in --out, measuring only the missing points.
    #[arg(long)]
    resume: bool,
}

impl SweepArgs {
    fn spec(&self) -> Result<SweepSpec, Error> {
        let mut base = RunOptions::default();
        self.data.single_target("sweep")?;
        self.data.apply(&mut base)?;
        self.looping.apply(&mut base);
        Ok(SweepSpec {
            base,
            block_sizes: self.block_size.clone(),
            queue_depths: self.queue_depth.clone(),
            threads: self.threads.clone(),
            bounce_buffers: self.bounce_buffers.clone(),
            gds_apis: self.gds_api.clone(),
            backends: self.backends.clone(),
            peers: self.peers.clone(),
            rounds: self.rounds,
            metric: self.metric,
        })
    }
}

/// Every file of --out is written atomically: never left empty or cut short (a full disk,
/// a kill), never written through a symbolic link.
fn write_file(path: &std::path::Path, text: &str) -> Result<(), Error> {
    crate::io::file::write_atomic(path, text.as_bytes())
}

pub fn run(args: &SweepArgs) -> Result<Outcome, Error> {
    let spec = args.spec()?;
    let mut resolved = spec.resolve_all()?;
    for (_, point) in &mut resolved {
        super::flags::skip_reasons_with_flags(point);
    }
    if args.resume && !args.out.is_dir() {
        // Nothing to continue: say so without creating anything.
        return Err(Error::invalid(
            Setting::Out,
            format!(
                "{} does not exist (or is not a directory), so there is no sweep to resume; run without --resume to start one",
                args.out.display()
            ),
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Error::invalid(
            Setting::Out,
            format!("cannot create {}: {e}", args.out.display()),
        )
    })?;
    let log = PointLog::new(&args.out);
    let jsonl = log.jsonl_path().to_path_buf();
    let existing = if args.resume {
        let loaded = sweep::load_points(&jsonl)?;
        sweep::check_resumable(&spec, &loaded.points, &jsonl)?;
        if loaded.dropped_lines > 0 {
            eprintln!(
                "note: {} unreadable line(s) in {} (cut short by an interruption) dropped; those points are measured again",
                loaded.dropped_lines,
                jsonl.display()
            );
        }
        log.rewrite(&loaded.points, loaded.dropped_lines > 0)?;
        loaded.points
    } else {
        if std::fs::metadata(&jsonl).is_ok_and(|m| m.len() > 0) {
            return Err(Error::invalid(
                Setting::Out,
                format!(
                    "{} already holds a sweep ({}); pass --resume to continue it, or choose another --out",
                    args.out.display(),
                    jsonl.display()
                ),
            ));
        }
        let _ = std::fs::remove_file(log.csv_path());
        Vec::new()
    };

    if let Some((_, first)) = resolved.first() {
        for s in &first.skipped {
            eprintln!(
                "note: skipping {} {}: {}",
                s.kind,
                s.name,
                super::short_reason(&s.reason.to_string())
            );
        }
    }
    let done: std::collections::HashSet<_> = existing.iter().map(sweep::key_of).collect();
    let todo = resolved.iter().filter(|(k, _)| !done.contains(k)).count();
    let runs_of = |s: &crate::compare::CompareSpec| s.contenders.len() as u64 * u64::from(s.rounds);
    let runs_per_point = resolved.first().map(|(_, s)| runs_of(s)).unwrap_or(0);
    let todo_runs: u64 = resolved
        .iter()
        .filter(|(k, _)| !done.contains(k))
        .map(|(_, s)| runs_of(s))
        .sum();
    if args.resume {
        eprintln!(
            "resuming: {} of {} points already measured in {}",
            resolved.len() - todo,
            resolved.len(),
            jsonl.display()
        );
    }
    eprintln!(
        "sweep: {} points ({} to measure), {} runs each, size {}",
        resolved.len(),
        todo,
        runs_per_point,
        Bytes(spec.base.workload.size)
    );

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The second signal ends the process at once; the first only asks the sweep to stop.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)))
            .map_err(Error::Signal)?;
    }
    let interactive = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(todo_runs),
        if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs, ETA {eta} {wide_msg}")
            .expect("static template"),
    );
    let total = resolved.len();
    let (points, end) = sweep::sweep(&resolved, existing, &log, &stop, &mut |ev| match ev {
        SweepEvent::Run { key, progress, .. } => {
            if let Progress::Measured { name, gibps, .. } = progress {
                bar.set_message(format!("{key}: {name} {gibps:.2} GiB/s"));
            }
            bar.inc(1);
        }
        SweepEvent::Point { index, key, result } => {
            let figures: Vec<String> = result
                .contenders
                .iter()
                .map(|k| format!("{} {:.2}", k.name, k.bandwidth_gibps.median))
                .collect();
            let line = format!(
                "point {}/{total} {key}: {} GiB/s",
                index + 1,
                figures.join(", ")
            );
            if interactive {
                bar.println(line);
            } else {
                eprintln!("{line}");
            }
        }
    })?;
    bar.finish_and_clear();

    if end.interrupted {
        eprintln!(
            "gdswap: interrupted: {} of {} points measured ({} by this run) and kept in {} and {}; continue with the same command plus --resume",
            end.already + end.measured,
            end.total,
            end.measured,
            jsonl.display(),
            log.csv_path().display()
        );
        return Ok(Outcome::Interrupted);
    }

    let best = sweep::best(&points, spec.metric);
    let best_path = args.out.join(sweep::BEST_CONFIG);
    write_file(&best_path, &best.to_json())?;
    let aio_path = args.out.join(sweep::AIO_JSON);
    let aio = best.aio_block();
    if let Some(aio) = &aio {
        let mut text = serde_json::to_string_pretty(aio).expect("JSON values serialize");
        text.push('\n');
        write_file(&aio_path, &text)?;
    }
    let md_path = args.out.join(sweep::REPORT_MD);
    let (md, plots) = crate::rebuild::sweep_outputs(&points, &best, spec.metric, "");
    write_file(&md_path, &md)?;
    for (name, text) in &plots {
        write_file(&args.out.join(name), text)?;
    }

    println!(
        "best settings by {} ({} points):",
        spec.metric.name(),
        points.len()
    );
    for (name, t) in &best.backends {
        println!(
            "{name:<8} bs {}, qd {}, {} thread{}{}: {:.2} GiB/s{}",
            Bytes(t.block_size),
            t.queue_depth,
            t.threads,
            if t.threads == 1 { "" } else { "s" },
            t.knobs(),
            t.score_gibps,
            if spec.metric == Metric::Both {
                format!(
                    " (harmonic mean of read {:.2} and write {:.2})",
                    t.read_gibps.unwrap_or(0.0),
                    t.write_gibps.unwrap_or(0.0)
                )
            } else {
                String::new()
            }
        );
    }
    println!(
        "wrote {} and {} (points), {} (config for run/compare --config), {} and {} plot(s){}",
        jsonl.display(),
        log.csv_path().display(),
        best_path.display(),
        md_path.display(),
        plots.len(),
        if aio.is_some() {
            format!(", {} (DeepSpeed aio block)", aio_path.display())
        } else {
            String::new()
        }
    );
    Ok(Outcome::Done)
}
