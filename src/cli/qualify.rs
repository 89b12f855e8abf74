//! `gdswap qualify --spec FILE`: the node against a spec, one line per check and threshold,
//! a verdict, and a record (JSON and Markdown) written whatever happened.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::qualify::{self, ranked, Event, Invocation, Record};
use crate::ranks::Coordinator;

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

pub fn run(args: &QualifyArgs, coord: &dyn Coordinator) -> ExitCode {
    let inv = Invocation {
        spec_path: args.spec.clone(),
        command_line: std::env::args().collect(),
        node: args.node.clone(),
        duration: args.duration,
        exe: std::env::current_exe().ok(),
        sysfs: crate::topology::sysfs_root(),
    };
    // Under several ranks, rank 0 prints (its own lines, the merged ones, the job's verdict)
    // and writes every rank's record; the others print nothing.
    let speaks = coord.rank() == 0;
    let shorten = |r: &str| super::short_reason(r).into_owned();
    let mut ticker = None;
    let record = qualify::qualify_with(&inv, coord, &mut |event| match event {
        _ if !speaks => {}
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
    if coord.size() > 1 {
        return ranks(args, coord, &record);
    }
    if let Some(e) = &record.error {
        eprintln!("gdswap: error: {e}");
    }
    println!("{}", record.verdict_line());
    let stem = qualify::record_stem(&record);
    let written = write_record(
        &args.out,
        &stem,
        &record.to_json(),
        &qualify::markdown::record(&record),
    );
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

/// Writes `<out>/<stem>.json` and `.md` (creating `out`).
fn write_record(
    out: &Path,
    stem: &str,
    json: &str,
    md: &str,
) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(out)
        .map_err(|e| format!("--out {}: cannot create it: {e}", out.display()))?;
    let (json_path, md_path) = (
        out.join(format!("{stem}.json")),
        out.join(format!("{stem}.md")),
    );
    crate::io::file::write_atomic(&json_path, json.as_bytes())
        .and_then(|()| crate::io::file::write_atomic(&md_path, md.as_bytes()))
        .map_err(|e| format!("--out: writing the record: {e}"))?;
    Ok((json_path, md_path))
}

/// The end of a qualification as several ranks: rank 0 gets every rank's record, writes them
/// all, and prints the job's verdict (the worst of the ranks': could not run, a line failed,
/// passed); every rank exits with that status.
fn ranks(args: &QualifyArgs, coord: &dyn Coordinator, record: &Record) -> ExitCode {
    let all = ranked::gather_records(coord, &record.to_json(), &qualify::markdown::record(record));
    let mut status = record.exit_status;
    match all {
        Ok(Some(all)) => {
            if let Some(e) = &record.error {
                eprintln!("gdswap: error: {e}");
            }
            let (mut lines, mut failed_lines) = (0, 0);
            let mut failed = Vec::new();
            let mut written = Vec::new();
            for (rank, (json, md)) in all.iter().enumerate() {
                let path = PathBuf::from(format!("rank {rank}'s record"));
                match qualify::fleet::load(&path, json) {
                    Ok(r) => {
                        status = status.max(match r.verdict.as_str() {
                            "pass" => 0,
                            "fail" => 1,
                            _ => 2,
                        });
                        lines += r.lines.len();
                        failed_lines += r.lines.iter().filter(|l| !l.pass).count();
                        if rank > 0 {
                            if let Some(e) = r.error.as_ref().filter(|_| record.error.is_none()) {
                                failed.push(format!("rank {rank} could not run: {e}"));
                            }
                            failed.extend(r.lines.iter().filter(|l| !l.pass).map(|l| {
                                format!(
                                    "rank {rank}: {} FAIL{}",
                                    l.label(),
                                    l.reason
                                        .as_deref()
                                        .map(|why| format!(": {}", super::short_reason(why)))
                                        .unwrap_or_default()
                                )
                            }));
                        }
                        let stem = qualify::record_stem_of(&r.node, &r.started_at);
                        match write_record(&args.out, &stem, json, md) {
                            Ok((j, _)) => written.push(j),
                            Err(e) => {
                                eprintln!("gdswap: error: {e}");
                                status = 2;
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("gdswap: error: {e}");
                        status = 2;
                    }
                }
            }
            for f in &failed {
                println!("{f}");
            }
            match status {
                0 => println!(
                    "verdict ({} ranks): PASS ({lines} of {lines} lines passed)",
                    coord.size()
                ),
                1 => println!(
                    "verdict ({} ranks): FAIL ({failed_lines} of {lines} lines failed)",
                    coord.size()
                ),
                _ => println!(
                    "verdict ({} ranks): could not run: {}",
                    coord.size(),
                    record
                        .error
                        .as_deref()
                        .unwrap_or("a record could not be written")
                ),
            }
            if let (Some(first), Some(last)) = (written.first(), written.last()) {
                println!(
                    "records: {} ... {} ({} ranks)",
                    first.display(),
                    last.display(),
                    written.len()
                );
            }
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!(
                "gdswap: error: rank {} of {}: sending its record to rank 0: {e}",
                coord.rank(),
                coord.size()
            );
            status = 2;
        }
    }
    match ranked::share_status(coord, status) {
        Ok(s) => ExitCode::from(s),
        Err(_) => ExitCode::from(2),
    }
}
