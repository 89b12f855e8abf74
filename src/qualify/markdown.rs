//! A qualify record as Markdown, written beside its JSON: the verdict, every line, each
//! target's figures, the error when it could not run, the node and the spec. Pure.

use std::fmt::Write as _;

use super::Record;
use crate::report::markdown::cell;

/// The whole report of one record.
pub fn record(r: &Record) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Qualification of {}\n", cell(&r.node));
    let verdict = match r.verdict {
        "pass" => "**PASS**",
        "fail" => "**FAIL**",
        _ => "**could not run**",
    };
    let _ = writeln!(out, "Verdict: {verdict} (exit status {})\n", r.exit_status);
    if let Some(e) = &r.error {
        let _ = writeln!(out, "Error: {}\n", cell(e));
    }
    let _ = writeln!(
        out,
        "Spec `{}`{}; started {}, finished {}; gdswap {} ({}).\n",
        cell(&r.spec_path.display().to_string()),
        r.spec
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .map(|n| format!(" ({})", cell(n)))
            .unwrap_or_default(),
        r.started_at,
        r.finished_at,
        r.gdswap_version,
        r.git_commit
    );
    let _ = writeln!(out, "Command: `{}`\n", cell(&r.command_line.join(" ")));
    if !r.lines.is_empty() {
        let _ = writeln!(out, "| Kind | Line | Measured | Threshold | Result |");
        let _ = writeln!(out, "|---|---|---:|---|---|");
        for l in &r.lines {
            let result = match (&l.reason, l.pass) {
                (_, true) => "PASS".to_string(),
                (Some(why), false) => format!("**FAIL**: {why}"),
                (None, false) => "**FAIL**".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                l.kind,
                cell(&l.label()),
                cell(&l.shown),
                cell(&l.threshold),
                cell(&result)
            );
        }
        out.push('\n');
    }
    for t in &r.tests {
        let _ = writeln!(
            out,
            "## Test {} ({} {})\n",
            cell(&t.name),
            cell(&t.backend),
            t.op
        );
        if let Some(why) = &t.unavailable {
            let _ = writeln!(
                out,
                "Not run: this node cannot run the backend: {}\n",
                cell(why)
            );
            continue;
        }
        for tr in &t.targets {
            let _ = writeln!(
                out,
                "- `{}`: {}",
                cell(&tr.target.display().to_string()),
                cell(&tr.binding)
            );
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "| Target | GB/s | IOPS | p99 (us) | p99.9 (us) | CPU-s/GiB | Error |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
        let rows = t
            .targets
            .iter()
            .map(|tr| {
                (
                    tr.target.display().to_string(),
                    tr.figures,
                    tr.error.clone(),
                )
            })
            .chain(
                t.aggregate
                    .filter(|_| t.targets.len() > 1)
                    .map(|a| ("all targets".to_string(), Some(a), None)),
            );
        for (name, f, err) in rows {
            match f {
                Some(f) => {
                    let _ = writeln!(
                        out,
                        "| {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.3} | |",
                        cell(&name),
                        f.gbps,
                        f.iops,
                        f.p99_us,
                        f.p999_us,
                        f.cpu_s_per_gib
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "| {} | - | - | - | - | - | {} |",
                        cell(&name),
                        cell(err.as_deref().unwrap_or(""))
                    );
                }
            }
        }
        out.push('\n');
        let errors: Vec<_> = t.targets.iter().flat_map(|tr| &tr.verify_errors).collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "Verify errors ({}):\n", errors.len());
            for v in errors {
                let _ = writeln!(
                    out,
                    "- `{}` offset {}: {}",
                    cell(&v.path.display().to_string()),
                    v.offset,
                    cell(&v.found)
                );
            }
            out.push('\n');
        }
    }
    let e = &r.environment;
    let _ = writeln!(out, "## Node\n");
    let _ = writeln!(
        out,
        "{}, kernel {}, {} ({} CPUs), {:.1} GiB memory.\n",
        cell(&e.hostname),
        cell(&e.kernel),
        cell(&e.cpu_model),
        e.cpus,
        e.memory_bytes as f64 / (1u64 << 30) as f64
    );
    if let Some(text) = &r.spec_text {
        let _ = writeln!(out, "## Spec\n\n```toml\n{}\n```", text.trim_end());
    }
    out
}
