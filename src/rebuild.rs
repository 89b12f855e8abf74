//! `gdswap report`: saved results turned back into the Markdown report and SVG plots, with
//! the same exporters that wrote them the first time, so a report can be regenerated (or
//! improved) from the JSON alone, long after the machine is gone.
//!
//! Three kinds of input are recognised by content, not by name: a run report (`gdswap run
//! --json`, one report or an array), a comparison (`gdswap compare --json`), and a sweep's
//! points (`points.jsonl`, one comparison per line). The sweep's Markdown and plots are made
//! here too, for `gdswap sweep` and `gdswap report` alike. Pure functions of texts: the CLI
//! reads and writes the files.

use std::path::Path;

use crate::error::{Error, Message, Result, Setting};
use crate::options::Op;
use crate::report::comparison::{self, Comparison};
use crate::report::{json, markdown, svg, RunReport};
use crate::sweep::{self, Metric};
use crate::tuning::Config;

/// One input file, recognised.
#[derive(Debug, Clone)]
pub enum Input {
    /// Run reports (`gdswap run --json`: one report or an array).
    Runs(Vec<RunReport>),
    /// A comparison (`gdswap compare --json`).
    Comparison(Box<Comparison>),
    /// A sweep's points (`points.jsonl`), one comparison per point.
    Points(Vec<Comparison>),
}

/// Recognises a results file by its content; errors name the file.
pub fn classify(path: &Path, text: &str) -> Result<Input> {
    let bad_message = |message: Message| Error::BadFile {
        role: crate::error::FileRole::SavedResult,
        path: path.to_path_buf(),
        message,
    };
    let bad = |message: String| bad_message(message.into());
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let schema = if v.is_array() {
            v[0]["schema"].as_str().unwrap_or("").to_string()
        } else {
            v["schema"].as_str().unwrap_or("").to_string()
        };
        if let Some(message) = v["error"]["message"].as_str() {
            return Err(bad(format!(
                "records a failed run ({message}); it has no figures to report"
            )));
        }
        return match schema.as_str() {
            comparison::COMPARE_SCHEMA => comparison::from_json(text)
                .map(|c| Input::Comparison(Box::new(c)))
                .map_err(|e| bad(format!("a comparison gdswap cannot read: {e}"))),
            crate::report::SCHEMA => json::from_json(text)
                .map(Input::Runs)
                .map_err(|e| bad(format!("a run report gdswap cannot read: {e}"))),
            crate::tuning::CONFIG_SCHEMA => Err(bad(
                "is a config file (settings), not results; give the sweep's points.jsonl".into(),
            )),
            other => Err(bad_message(crate::error::msg![
                format!(
                    "is not a gdswap result (schema '{other}'); give files written by run/compare "
                ),
                Setting::Json,
                " or a sweep's points.jsonl"
            ])),
        };
    }
    let mut points = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        points.push(comparison::from_json(line).map_err(|e| {
            bad(format!(
                "line {} is neither a comparison nor part of a JSON document: {e}",
                i + 1
            ))
        })?);
    }
    if points.is_empty() {
        return Err(bad("is empty".into()));
    }
    Ok(Input::Points(points))
}

/// The metric a set of points supports: `both` when reads and writes were measured.
pub fn metric_of(points: &[Comparison]) -> Metric {
    let has = |op: Op| points.iter().any(|c| c.params.workload.op == op);
    match (has(Op::Read), has(Op::Write)) {
        (true, true) => Metric::Both,
        (false, true) => Metric::Write,
        _ => Metric::Read,
    }
}

/// A sweep's Markdown (table, best settings, linked plots) and plots: bandwidth against block
/// size per backend, direction and thread count, and the latency CDF at each backend's best
/// settings. SVG file names get `prefix` in front.
pub fn sweep_outputs(
    points: &[Comparison],
    best: &Config,
    metric: Metric,
    prefix: &str,
) -> (String, Vec<(String, String)>) {
    let mut files: Vec<(String, String)> = svg::sweep_plots(points)
        .into_iter()
        .map(|(name, text)| (format!("{prefix}{name}"), text))
        .collect();
    for (backend, t) in &best.backends {
        for op in metric.ops() {
            if let Some(c) = sweep::point_of(points, backend, t, &op.to_string()) {
                if let Some(text) = svg::latency_cdf(c) {
                    files.push((format!("{prefix}latency-cdf-{backend}-best-{op}.svg"), text));
                }
            }
        }
    }
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let md = markdown::sweep(points, &best.best_settings()) + &markdown::plots(&names);
    (md, files)
}

/// The Markdown report of all inputs and the SVG files it links.
pub fn rebuild(inputs: &[Input]) -> (String, Vec<(String, String)>) {
    let mut md = String::from("# gdswap report\n\n");
    let mut files = Vec::new();
    let many = inputs.len() > 1;
    for (i, input) in inputs.iter().enumerate() {
        let prefix = if many {
            format!("{}-", i + 1)
        } else {
            String::new()
        };
        match input {
            Input::Runs(r) => {
                md.push_str(&markdown::runs(r));
                if let Some(text) = svg::runs_latency_cdf(r) {
                    let name = format!("{prefix}latency-cdf-runs.svg");
                    md.push_str(&markdown::plots(std::slice::from_ref(&name)));
                    files.push((name, text));
                }
            }
            Input::Comparison(c) => {
                md.push_str(&markdown::comparison(c));
                if let Some(text) = svg::latency_cdf(c) {
                    let name = format!("{prefix}latency-cdf.svg");
                    md.push_str(&markdown::plots(std::slice::from_ref(&name)));
                    files.push((name, text));
                }
            }
            Input::Points(p) => {
                let metric = metric_of(p);
                let best = sweep::best(p, metric);
                let (text, svgs) = sweep_outputs(p, &best, metric, &prefix);
                md.push_str(&text);
                files.extend(svgs);
            }
        }
        md.push('\n');
    }
    (md, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::comparison::tests::sample;

    #[test]
    fn inputs_are_recognised_by_content() {
        let p = Path::new("x.json");
        let c = sample();
        assert!(matches!(
            classify(p, &comparison::to_json(&c)).unwrap(),
            Input::Comparison(_)
        ));
        let r = crate::report::tests::sample();
        let one = json::to_json(std::slice::from_ref(&r));
        let two = json::to_json(&[r.clone(), r]);
        assert!(matches!(classify(p, &one).unwrap(), Input::Runs(v) if v.len() == 1));
        assert!(matches!(classify(p, &two).unwrap(), Input::Runs(v) if v.len() == 2));
        let line = serde_json::to_string(&c).unwrap();
        let jsonl = format!("{line}\n{line}\n");
        assert!(matches!(classify(p, &jsonl).unwrap(), Input::Points(v) if v.len() == 2));
        let e = classify(p, "{\"schema\": \"gdswap.config.v1\"}").unwrap_err();
        assert!(e.to_string().contains("is a config file"), "{e}");
        let e = classify(p, "{\"a\": 1}").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("saved result x.json: is not a gdswap result"),
            "{e}"
        );
        let e = classify(p, &format!("{line}\nnot json\n")).unwrap_err();
        assert!(e.to_string().contains("line 2 is neither"), "{e}");
        assert!(classify(p, "\n").is_err());
    }

    #[test]
    fn rebuild_writes_sections_and_plots_for_each_input() {
        let c = sample();
        let mut write = c.clone();
        write.params.workload.op = Op::Write;
        let points = vec![c.clone(), write];
        assert_eq!(metric_of(&points), Metric::Both);
        assert_eq!(metric_of(&points[..1]), Metric::Read);
        let (md, files) = rebuild(&[
            Input::Comparison(Box::new(c)),
            Input::Points(points),
            Input::Runs(vec![crate::report::tests::sample()]),
        ]);
        assert!(md.starts_with("# gdswap report\n\n## gdswap compare: read"));
        assert!(md.contains("## gdswap sweep:"));
        assert!(md.contains("## gdswap run results"));
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "1-latency-cdf.svg",
                "2-bandwidth-fio-read-1t.svg",
                "2-bandwidth-fio-write-1t.svg",
                "2-bandwidth-host-read-1t.svg",
                "2-bandwidth-host-write-1t.svg",
                "2-bandwidth-posix-read-1t.svg",
                "2-bandwidth-posix-write-1t.svg",
                "2-latency-cdf-host-best-read.svg",
                "2-latency-cdf-host-best-write.svg",
                "2-latency-cdf-posix-best-read.svg",
                "2-latency-cdf-posix-best-write.svg",
                "3-latency-cdf-runs.svg",
            ]
        );
        for n in &names {
            assert!(md.contains(&format!("![{n}]({n})")), "{n} not linked");
        }
        assert!(files.iter().all(|(_, t)| t.starts_with("<svg")));
    }
}
