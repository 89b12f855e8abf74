//! `gdswap check`: the node report (libraries, data path, io_uring, memlock) and a verdict per
//! backend; the exit status says whether the requested backends can run.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::sink::Sink;
use super::Outcome;
use crate::check::{self, driver_probe, CheckOptions, DriverProbeOptions, BACKENDS};
use crate::error::{Error, Setting};
use crate::options::data_dir_from_env;
use crate::types::BackendId;

fn after_check_help() -> String {
    format!(
        "Without --path, the default data directory is checked ($GDSWAP_DATA_DIR, else \
         ./gdswap-data, or the current directory when that does not exist).\n\
         Exit status: 0 every requested backend (all of {} without --backend) can run here; \
         1 one cannot (the error names it and why) or the check failed; 2 bad usage.",
        BACKENDS.map(BackendId::name).join(", ")
    )
}

#[derive(Args, Debug)]
#[command(after_help = after_check_help())]
pub struct CheckArgs {
    /// The data file or directory whose filesystem, O_DIRECT support and device are checked.
    #[arg(long, value_name = "PATH")]
    path: Option<PathBuf>,
    /// Write the report as JSON to FILE (- for stdout; the text then goes to stderr).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// A backend that must be able to run for exit status 0 (repeatable; default: all).
    #[arg(long = "backend", value_name = "NAME",
          value_parser = super::run::backend_parser())]
    backends: Vec<BackendId>,
    /// The libcufile to examine (else $GDSWAP_CUFILE_PATH, else libcufile.so.0, libcufile.so).
    #[arg(long, value_name = "PATH")]
    cufile: Option<PathBuf>,
    /// Open the cuFile driver even without libcuda, to see how it fails (in a child process).
    #[arg(long)]
    open_driver: bool,
    /// Seconds a cuFile driver probe may take before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    driver_timeout: u64,
}

/// The hidden `gdswap cufile-probe`: what `check` runs in a child process to open the cuFile
/// driver. Prints one line, `GDSWAP-CUFILE-PROBE {json}`, whatever the library prints around it.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[arg(long)]
    path: PathBuf,
    #[arg(long)]
    cufile: Option<PathBuf>,
    /// Disallow compat mode before opening, then register the file.
    #[arg(long)]
    strict: bool,
}

pub fn cufile_probe(args: &ProbeArgs) -> Result<Outcome, Error> {
    let outcome = driver_probe::probe_here(args.cufile.as_deref(), &args.path, args.strict);
    let json = serde_json::to_string(&outcome).map_err(|e| Error::Serialize {
        what: "the probe outcome",
        source: e,
    })?;
    println!("\n{}{json}", driver_probe::MARKER);
    Ok(Outcome::Done)
}

/// `--path` must name an existing directory, or a regular file that is not a symbolic link
/// (what `run --file` accepts): anything else is an error, before any row is collected.
fn check_path_arg(p: &std::path::Path) -> Result<(), Error> {
    let refuse = |why: String| {
        Err(Error::invalid(
            Setting::Path,
            format!("{}: {why}", p.display()),
        ))
    };
    match std::fs::symlink_metadata(p) {
        Err(e) => refuse(format!("cannot examine it: {e}")),
        Ok(m) if m.is_dir() || m.is_file() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(p) {
            // A link to a directory is a directory to run: files are opened inside it.
            Ok(t) if t.is_dir() => Ok(()),
            _ => refuse(
                "is a symbolic link; gdswap never opens a data file through a link (give the file itself)"
                    .into(),
            ),
        },
        Ok(_) => refuse("is not a regular file or a directory".into()),
    }
}

pub fn run(args: &CheckArgs) -> Result<Outcome, Error> {
    let json = args
        .json
        .as_deref()
        .map(|p| Sink::check(p, Setting::Json))
        .transpose()?;
    let path = match &args.path {
        Some(p) => {
            check_path_arg(p)?;
            p.clone()
        }
        None => {
            let d = data_dir_from_env()?;
            if d.exists() {
                d
            } else {
                PathBuf::from(".")
            }
        }
    };
    let driver_probe = std::env::current_exe().ok().map(|exe| DriverProbeOptions {
        exe,
        force: args.open_driver,
        timeout: Duration::from_secs(args.driver_timeout),
    });
    let report = check::collect(&CheckOptions {
        path,
        cufile: args.cufile.clone(),
        driver_probe,
    });
    let text = check::human::render(&report);
    if matches!(json, Some(Sink::Stdout)) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(sink) = json {
        let mut out = serde_json::to_string_pretty(&report).map_err(|e| Error::Serialize {
            what: "the check report",
            source: e,
        })?;
        out.push('\n');
        sink.write(&out)?;
    }
    let requested: Vec<BackendId> = if args.backends.is_empty() {
        BACKENDS.to_vec()
    } else {
        args.backends.clone()
    };
    for name in requested {
        if let Some(v) = report.verdict(name).filter(|v| !v.available) {
            return Err(Error::Unavailable {
                backend: name.to_string(),
                reason: v.reason.clone(),
            });
        }
    }
    Ok(Outcome::Done)
}
