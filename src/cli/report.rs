//! `gdswap report RESULTS...`: saved JSON results back into `report.md` and SVG plots.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, FileOp};
use crate::rebuild;

use super::Outcome;

#[derive(Args, Debug)]
#[command(
    after_help = "RESULTS: files written by `gdswap run --json`, `gdswap compare --json`, or a sweep's \
                  points.jsonl, recognised by their content. Writes report.md (one section per file, in \
                  order) and the SVG plots it links into --out.\n\
                  Exit status: 0 success, 1 a file could not be read or written (the message names it), \
                  2 bad usage."
)]
pub struct ReportArgs {
    /// Saved results (JSON or JSON lines).
    #[arg(required = true, value_name = "RESULTS")]
    results: Vec<PathBuf>,
    /// Directory for report.md and the plots.
    #[arg(long, value_name = "DIR", default_value = "gdswap-report")]
    out: PathBuf,
}

pub fn run(args: &ReportArgs) -> Result<Outcome, Error> {
    let mut inputs = Vec::new();
    for path in &args.results {
        let text =
            crate::io::file::read_regular(path).map_err(|e| Error::file(FileOp::Open, path, e))?;
        inputs.push(rebuild::classify(path, &text)?);
    }
    let (md, files) = rebuild::rebuild(&inputs);
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Error::invalid(
            "--out",
            format!("cannot create {}: {e}", args.out.display()),
        )
    })?;
    let write = |name: &str, text: &str| {
        let p = args.out.join(name);
        crate::io::file::write_atomic(&p, text.as_bytes())
    };
    write("report.md", &md)?;
    for (name, text) in &files {
        write(name, text)?;
    }
    println!(
        "wrote {} and {} plot{} into {}",
        args.out.join("report.md").display(),
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        args.out.display()
    );
    Ok(Outcome::Done)
}
