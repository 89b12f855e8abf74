//! `gdswap report RESULTS...`: saved JSON results back into `report.md` and SVG plots.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, FileOp, FileRole, Setting};
use crate::{qualify, rebuild};

use super::Outcome;

#[derive(Args, Debug)]
#[command(
    after_help = "RESULTS: files written by `gdswap run --json`, `gdswap compare --json`, or a sweep's \
                  points.jsonl, recognised by their content. Writes report.md (one section per file, in \
                  order) and the SVG plots it links into --out.\n\
                  Fleet view: give `gdswap qualify` records (files, a directory of them, or a quoted \
                  glob such as 'qualify/*.json'): one table of node, verdict and each test's value is \
                  printed, outliers (more than --outlier-pct below the fleet median) flagged, and \
                  fleet.md with a bar chart per test written into --out.\n\
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
    /// Fleet view: a node more than this many percent below the fleet median on a test is
    /// flagged as an outlier.
    #[arg(long, value_name = "PCT", default_value_t = 10.0, value_parser = outlier_pct)]
    outlier_pct: f64,
}

fn outlier_pct(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..100.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a percentage from 0 to below 100")),
    }
}

/// The result files named: files as given, directories as their `*.json` files (sorted), and
/// a quoted glob (`*` and `?` in the last component) as the files it matches.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for p in paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        if p.is_dir() {
            let mut found = json_files(p, |n| n.ends_with(".json"))?;
            if found.is_empty() {
                return Err(Error::BadFile {
                    role: FileRole::SavedResult,
                    path: p.clone(),
                    message: "is a directory with no .json file".into(),
                });
            }
            out.append(&mut found);
        } else if let Some(pattern) = name.filter(|n| n.contains(['*', '?']) && !p.exists()) {
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut found = json_files(&dir, |n| glob_match(&pattern, n))?;
            if found.is_empty() {
                return Err(Error::BadFile {
                    role: FileRole::SavedResult,
                    path: p.clone(),
                    message: "matches no file".into(),
                });
            }
            out.append(&mut found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn json_files(dir: &std::path::Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(FileOp::Open, dir, e))?;
    let mut found = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::file(FileOp::Open, dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if keep(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
            found.push(e.path());
        }
    }
    found.sort();
    Ok(found)
}

/// `*` any run of characters, `?` one character, everything else itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `gdswap report` over qualify records: the fleet table, fleet.md and a plot per test.
fn fleet(args: &ReportArgs, files: &[(PathBuf, String)]) -> Result<(), Error> {
    let mut records = Vec::with_capacity(files.len());
    for (path, text) in files {
        records.push(
            qualify::fleet::load(path, text).map_err(|message| Error::BadFile {
                role: FileRole::SavedResult,
                path: path.clone(),
                message: message.into(),
            })?,
        );
    }
    let f = qualify::fleet::fleet(records, args.outlier_pct);
    print!("{}", f.text());
    let plots = f.plots();
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Error::invalid(
            Setting::Out,
            format!("cannot create {}: {e}", args.out.display()),
        )
    })?;
    let write = |name: &str, text: &str| {
        crate::io::file::write_atomic(&args.out.join(name), text.as_bytes())
    };
    write("fleet.md", &f.markdown(&plots))?;
    for (name, svg) in &plots {
        write(name, svg)?;
    }
    println!(
        "wrote {} and {} plot{} into {}",
        args.out.join("fleet.md").display(),
        plots.len(),
        if plots.len() == 1 { "" } else { "s" },
        args.out.display()
    );
    Ok(())
}

pub fn run(args: &ReportArgs) -> Result<Outcome, Error> {
    let mut texts = Vec::new();
    for path in expand(&args.results)? {
        let text = crate::io::file::read_regular(&path)
            .map_err(|e| Error::file(FileOp::Open, &path, e))?;
        texts.push((path, text));
    }
    let qualify_records = texts
        .iter()
        .filter(|(_, t)| qualify::fleet::is_record(t))
        .count();
    if qualify_records == texts.len() {
        return fleet(args, &texts).map(|()| Outcome::Done);
    }
    if let Some((path, _)) = texts
        .iter()
        .find(|(_, t)| qualify_records > 0 && !qualify::fleet::is_record(t))
    {
        return Err(Error::BadFile {
            role: FileRole::SavedResult,
            path: path.clone(),
            message: "is not a qualify record, but others given are: report the records (a fleet) and other results separately".into(),
        });
    }
    let mut inputs = Vec::new();
    for (path, text) in &texts {
        inputs.push(rebuild::classify(path, text)?);
    }
    let (md, files) = rebuild::rebuild(&inputs);
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Error::invalid(
            Setting::Out,
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
