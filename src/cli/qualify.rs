//! `gdswap qualify --spec FILE`: the node against a spec, one line per check and threshold,
//! a verdict, and a record (JSON and Markdown) written whatever happened.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::qualify::{self, Event, Invocation};

fn after_qualify_help() -> String {
    format!(
        "The spec (TOML, or JSON by its .json extension) lists the `check` rows that must hold and \
         the workloads with their thresholds; docs/qualify-example.toml is a commented example.\n\
         Records: <--out>/qualify-<node>-<time>.json and .md, written whether the qualification \
         passed, failed or could not run; `gdswap report DIR` makes a fleet table of many.\n\
         {}.\n\
         Exit status: 0 every line passed; 1 a line failed; 2 the qualification could not run \
         (missing or bad spec, unknown backend, zero duration, unreachable target: one line says \
         why).",
        qualify::spec::DURATION_RULE
    )
}

#[derive(Args, Debug)]
#[command(after_help = after_qualify_help())]
pub struct QualifyArgs {
    /// The qualification spec (TOML or JSON).
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// Directory for the record (created if missing): a shared directory collects a fleet.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// The node's name in the record (default: the hostname).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Run every test for this long (30s, 10m, 1h) instead of its own duration or loops.
    #[arg(long, value_name = "TIME", value_parser = crate::qualify::spec::parse_duration)]
    duration: Option<std::time::Duration>,
}

pub fn run(args: &QualifyArgs) -> ExitCode {
    let inv = Invocation {
        spec_path: args.spec.clone(),
        command_line: std::env::args().collect(),
        node: args.node.clone(),
        duration: args.duration,
        exe: std::env::current_exe().ok(),
        sysfs: crate::topology::sysfs_root(),
    };
    let shorten = |r: &str| super::short_reason(r).into_owned();
    let mut ticker = None;
    let record = qualify::qualify(&inv, &mut |event| match event {
        Event::Line(line) => println!("{}", line.text(&shorten)),
        Event::TestStarts { name, duration } => {
            ticker = duration.and_then(|d| super::progress::start(&format!("test {name}"), d));
        }
        Event::TestEnds => ticker = None,
        Event::Binding {
            test,
            target,
            binding,
        } => println!("bind   {test} {}: {binding}", target.display()),
    });
    if let Some(e) = &record.error {
        eprintln!("gdswap: error: {e}");
    }
    println!("{}", record.verdict_line());
    let stem = qualify::record_stem(&record);
    let written = std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("--out {}: cannot create it: {e}", args.out.display()))
        .and_then(|()| {
            let json = args.out.join(format!("{stem}.json"));
            let md = args.out.join(format!("{stem}.md"));
            crate::io::file::write_atomic(&json, record.to_json().as_bytes())
                .and_then(|()| {
                    crate::io::file::write_atomic(
                        &md,
                        qualify::markdown::record(&record).as_bytes(),
                    )
                })
                .map(|()| (json, md))
                .map_err(|e| format!("--out: writing the record: {e}"))
        });
    match written {
        Ok((json, md)) => {
            println!("record: {} and {}", json.display(), md.display());
            ExitCode::from(record.exit_status)
        }
        Err(e) => {
            eprintln!("gdswap: error: {e}");
            ExitCode::from(2)
        }
    }
}
