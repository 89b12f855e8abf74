//! `compare`: the same workload through several contenders (gdswap backends, then peer tools),
//! interleaved in rounds, `A B C, A B C, ...`.
//!
//! Why interleaved rounds rather than `A A A, B B B`: the machine drifts during a benchmark (the
//! page cache fills, the device heats up or finishes background work, a neighbour starts a
//! build), and a block of runs per contender would hand all of that drift to whoever ran last.
//! Interleaving spreads it over everyone, and ratios taken round by round (round `r` of `B`
//! against round `r` of `A`, the first contender) cancel what a round shares; the result is
//! their median and range, see [`crate::report::comparison`].
//!
//! Each round of a backend is one complete `gdswap run` (setup, pre, warm-up, measured loops,
//! post) through [`crate::harness::run`], so a comparison measures exactly what `run` measures.
//! Each round of a peer is one run of the tool on the same files and byte ranges
//! ([`crate::peer`]). Contenders are resolved before anything runs: unknown names and
//! options a contender cannot take are errors naming the flag; backends that cannot run here
//! (by default) and peers that are not installed are skipped with the reason, never a failure.
//!
//! Nothing here prints: progress goes to a callback, results come back as a
//! [`Comparison`]. A stop flag (set by the CLI on Ctrl-C) is checked between runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{self, Availability};
use crate::error::{Error, Result};
use crate::harness;
use crate::options::{RunOptions, Target};
use crate::peer;
use crate::report::comparison::{
    CompareParams, Comparison, ContenderKind, Measured, RoundFigures, Skipped,
};
use crate::report::{self, RunReport, WarningRecord};
use crate::size::Bytes;
use crate::tuning::{Config, Tuning};

/// Most rounds a comparison takes (beyond this, a typo).
pub const MAX_ROUNDS: u32 = 1000;

/// A contender, resolved: a backend by name, or a peer tool found on this machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Contender {
    Backend(String),
    Fio(PathBuf),
}

impl Contender {
    pub fn name(&self) -> &str {
        match self {
            Contender::Backend(n) => n,
            Contender::Fio(_) => "fio",
        }
    }
}

/// Everything a comparison runs: the workload, the contenders in order (the first is the
/// reference of the ratios), the rounds, and what was left out and why.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// The workload; its `backend` is replaced by each backend contender's.
    pub base: RunOptions,
    pub contenders: Vec<Contender>,
    pub rounds: u32,
    pub skipped: Vec<Skipped>,
    /// Per-backend settings from a config file (`--config`); empty when every backend runs
    /// the base workload.
    pub tuning: BTreeMap<String, Tuning>,
}

impl CompareSpec {
    /// The run options of a backend contender: the workload, with its tuned settings if any.
    pub fn options_for(&self, backend: &str) -> RunOptions {
        let mut o = RunOptions {
            backend: backend.to_string(),
            ..self.base.clone()
        };
        if let Some(t) = self.tuning.get(backend) {
            t.apply(&mut o);
        }
        o
    }
}

/// Gives every backend of `spec` its own settings from `config` (read from `path` by
/// `--config`): each must have an entry. The reference (first) backend's settings become the
/// workload's, which peers run and the comparison records.
pub fn with_config(mut spec: CompareSpec, config: &Config, path: &Path) -> Result<CompareSpec> {
    for c in &spec.contenders {
        if let Contender::Backend(name) = c {
            let t = config.for_backend(name, path, "--config")?;
            spec.tuning.insert(name.clone(), t.clone());
        }
    }
    if let Some(Contender::Backend(first)) = spec.contenders.first() {
        spec.tuning[first.as_str()].apply(&mut spec.base);
    }
    for c in &spec.contenders {
        if let Contender::Backend(name) = c {
            spec.options_for(name)
                .validate()
                .map_err(|e| Error::Within {
                    context: format!("{name} with the settings of --config {}", path.display()),
                    source: Box::new(e),
                })?;
        }
    }
    Ok(spec)
}

/// Resolves the contenders. `backends`: names in order, or `None` for every backend available
/// here (the unavailable ones are skipped with their reason). `peers`: tool names (`none`
/// alone for no peer); a missing tool is skipped with a note.
pub fn resolve(
    base: RunOptions,
    backends: Option<&[String]>,
    peers: &[String],
    rounds: u32,
) -> Result<CompareSpec> {
    if rounds == 0 || rounds > MAX_ROUNDS {
        return Err(Error::invalid(
            "--rounds",
            format!("{rounds} is out of range 1..={MAX_ROUNDS}"),
        ));
    }
    let mut contenders = Vec::new();
    let mut skipped = Vec::new();
    let mut unfit: Option<Error> = None;
    match backends {
        None => {
            // By default, a backend that cannot run here, or cannot take this workload (say
            // --fixed-buffers on posix), is skipped with the reason; a named one is an error.
            for b in backend::all() {
                let fit = RunOptions {
                    backend: b.name().to_string(),
                    ..base.clone()
                }
                .validate();
                match (b.probe(), fit) {
                    (Availability::Available, Ok(())) => {
                        contenders.push(Contender::Backend(b.name().to_string()))
                    }
                    (Availability::Unavailable(reason), _) => skipped.push(Skipped {
                        name: b.name().to_string(),
                        kind: ContenderKind::Backend,
                        reason,
                    }),
                    (_, Err(e)) => {
                        skipped.push(Skipped {
                            name: b.name().to_string(),
                            kind: ContenderKind::Backend,
                            reason: e.to_string(),
                        });
                        unfit.get_or_insert(e);
                    }
                }
            }
            // No backend takes the workload: the workload is wrong, say so as such.
            if contenders.is_empty() {
                if let Some(e) = unfit {
                    return Err(e);
                }
            }
        }
        Some(names) => {
            for n in names {
                let b = backend::by_name(n).ok_or_else(|| {
                    Error::invalid(
                        "--backends",
                        format!(
                            "unknown backend '{n}'; known: {}",
                            backend::names().join(", ")
                        ),
                    )
                })?;
                if contenders.contains(&Contender::Backend(n.clone())) {
                    return Err(Error::invalid(
                        "--backends",
                        format!("'{n}' is listed twice"),
                    ));
                }
                if let Availability::Unavailable(reason) = b.probe() {
                    return Err(Error::invalid(
                        "--backends",
                        format!("backend '{n}' cannot run here: {reason}"),
                    ));
                }
                contenders.push(Contender::Backend(n.clone()));
            }
        }
    }
    if contenders.is_empty() {
        let why: Vec<String> = skipped
            .iter()
            .map(|s| format!("{}: {}", s.name, s.reason))
            .collect();
        return Err(Error::invalid(
            "--backends",
            format!("no backend can run here ({})", why.join("; ")),
        ));
    }
    // Every backend must accept the workload before anything runs.
    for c in &contenders {
        let opts = RunOptions {
            backend: c.name().to_string(),
            ..base.clone()
        };
        opts.validate().map_err(|e| Error::Within {
            context: c.name().to_string(),
            source: Box::new(e),
        })?;
    }
    let none = peers.len() == 1 && peers[0] == "none";
    let mut seen = Vec::new();
    for p in peers.iter().filter(|_| !none) {
        if seen.contains(p) {
            return Err(Error::invalid("--peers", format!("'{p}' is listed twice")));
        }
        seen.push(p.clone());
        match p.as_str() {
            "fio" => match peer::locate_fio() {
                Ok(exe) => contenders.push(Contender::Fio(exe)),
                Err(reason) => skipped.push(Skipped {
                    name: "fio".into(),
                    kind: ContenderKind::Peer,
                    reason,
                }),
            },
            "gdsio" => skipped.push(Skipped {
                name: "gdsio".into(),
                kind: ContenderKind::Peer,
                reason: peer::gdsio_note(),
            }),
            other => {
                return Err(Error::invalid(
                    "--peers",
                    format!(
                        "unknown peer '{other}'; known: {}, or none",
                        peer::PEERS.join(", ")
                    ),
                ))
            }
        }
    }
    Ok(CompareSpec {
        base,
        contenders,
        rounds,
        skipped,
        tuning: BTreeMap::new(),
    })
}

/// What the comparison is doing, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A run is about to start.
    Starting {
        round: u32,
        rounds: u32,
        name: String,
    },
    /// A run finished.
    Measured {
        round: u32,
        rounds: u32,
        name: String,
        gibps: f64,
    },
}

/// The parameters a comparison records.
pub fn params_of(spec: &CompareSpec) -> CompareParams {
    let o = &spec.base;
    let (target_kind, target) = match &o.target {
        Target::File(p) => ("file", p.clone()),
        Target::Dir(p) => ("dir", p.clone()),
    };
    CompareParams {
        op: o.op.to_string(),
        target_kind: target_kind.into(),
        target,
        size_bytes: o.size,
        block_size_bytes: o.block_size,
        queue_depth: o.queue_depth,
        threads: o.threads,
        loops: o.loops,
        warmup: o.warmup,
        rounds: spec.rounds,
        random: o.random,
        direct: o.direct,
        huge_pages: format!("{:?}", o.huge_pages).to_lowercase(),
        bounce_buffers: None,
        gds_api: None,
    }
}

/// Runs the comparison: `rounds` rounds, each contender once per round, in order.
pub fn compare(
    spec: &CompareSpec,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Comparison> {
    let data_path = match &spec.base.target {
        Target::File(p) | Target::Dir(p) => p.clone(),
    };
    // Collected again after each backend run: before the first one, a default data directory
    // may not exist yet, and the filesystem would be that of its parent.
    let mut env = crate::env::collect(&data_path);
    let mut measured: Vec<Measured> = spec
        .contenders
        .iter()
        .map(|c| Measured {
            name: c.name().to_string(),
            kind: match c {
                Contender::Backend(_) => ContenderKind::Backend,
                Contender::Fio(_) => ContenderKind::Peer,
            },
            mode: String::new(),
            rounds: Vec::new(),
            run_warnings: Vec::new(),
        })
        .collect();
    // A peer that fails is dropped (and listed as skipped, with why) rather than failing the
    // comparison: the backends' measurements are the point, the peer is a reference.
    let mut peer_failed: Vec<Option<String>> = vec![None; spec.contenders.len()];
    for round in 1..=spec.rounds {
        for (i, (c, m)) in spec.contenders.iter().zip(measured.iter_mut()).enumerate() {
            if stop.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            if peer_failed[i].is_some() {
                continue;
            }
            progress(Progress::Starting {
                round,
                rounds: spec.rounds,
                name: c.name().to_string(),
            });
            let within = |e: Error| Error::Within {
                context: format!("{} (round {round} of {})", c.name(), spec.rounds),
                source: Box::new(e),
            };
            let figures = match c {
                Contender::Backend(name) => {
                    let opts = spec.options_for(name);
                    let meas = harness::run(&opts).map_err(within)?;
                    env = crate::env::collect(&data_path);
                    let r = RunReport::new(&opts, &meas, env.clone(), report::now_utc());
                    if m.mode.is_empty() {
                        let tuned = match spec.tuning.get(name) {
                            Some(t) => format!(
                                "tuned by --config: bs {}, qd {}, {} thread(s){}; ",
                                Bytes(t.block_size),
                                t.queue_depth,
                                t.threads,
                                t.knobs()
                            ),
                            None => String::new(),
                        };
                        m.mode = format!("{tuned}{}; {}", r.backend_mode, r.buffer_pages);
                    }
                    add_warnings(&mut m.run_warnings, name, &r.warnings);
                    figures_of(round, &r)
                }
                Contender::Fio(exe) => {
                    let ranges = peer::fio_ranges(&spec.base).map_err(within)?;
                    let (free, page) = crate::io::sys::free_hugetlb_pages();
                    let huge = peer::fio_use_huge_pages(&spec.base, free, page);
                    let (args, mut mode) = peer::fio_args(&spec.base, &ranges, huge);
                    if spec.base.drop_caches {
                        // gdswap drops the page cache before each measured loop; fio gets the
                        // same start before each run.
                        crate::io::sys::drop_caches().map_err(|e| within(Error::DropCaches(e)))?;
                        mode.push_str(", page cache dropped before the run");
                    }
                    let f = match peer::run_fio(exe, &args, spec.base.op) {
                        Ok(f) => f,
                        Err(e) => {
                            peer_failed[i] = Some(format!("failed in round {round}: {e}"));
                            continue;
                        }
                    };
                    if m.mode.is_empty() {
                        m.mode = format!("{} {mode}", f.version);
                    }
                    RoundFigures {
                        round,
                        bandwidth_gibps: f.bandwidth_gibps,
                        latency_p50_us: f.latency_p50_us,
                        latency_p99_us: f.latency_p99_us,
                        cpu_s_per_gib: f.cpu_s_per_gib,
                        latency_cdf_us: f.latency_cdf_us,
                    }
                }
            };
            progress(Progress::Measured {
                round,
                rounds: spec.rounds,
                name: c.name().to_string(),
                gibps: figures.bandwidth_gibps,
            });
            m.rounds.push(figures);
        }
    }
    let mut skipped = spec.skipped.clone();
    let mut kept = Vec::new();
    for (m, failed) in measured.into_iter().zip(peer_failed) {
        match failed {
            Some(reason) => skipped.push(Skipped {
                name: m.name,
                kind: m.kind,
                reason,
            }),
            None => kept.push(m),
        }
    }
    Ok(Comparison::new(
        params_of(spec),
        env,
        report::now_utc(),
        kept,
        skipped,
    ))
}

fn figures_of(round: u32, r: &RunReport) -> RoundFigures {
    RoundFigures {
        round,
        bandwidth_gibps: r.summary.bandwidth_gibps,
        latency_p50_us: r.summary.latency.p50_us,
        latency_p99_us: r.summary.latency.p99_us,
        cpu_s_per_gib: r.summary.cpu_s_per_gib,
        latency_cdf_us: r.summary.latency_cdf_us.clone(),
    }
}

/// Keeps the first warning of each code, naming the contender.
fn add_warnings(into: &mut Vec<WarningRecord>, name: &str, new: &[WarningRecord]) {
    for w in new {
        if !into.iter().any(|x| x.code == w.code) {
            into.push(WarningRecord {
                code: w.code.clone(),
                message: format!("{name}: {}", w.message),
                hint: w.hint.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn resolve_checks_names_and_orders_contenders() {
        let base = RunOptions::default();
        let spec = resolve(base.clone(), Some(&s(&["posix"])), &s(&["none"]), 3).unwrap();
        assert_eq!(spec.contenders, [Contender::Backend("posix".into())]);
        assert!(spec.skipped.is_empty());
        let flag = |r: Result<CompareSpec>| match r.unwrap_err() {
            Error::InvalidOption { flag, .. } => flag,
            e => panic!("{e}"),
        };
        assert_eq!(
            flag(resolve(base.clone(), Some(&s(&["nope"])), &[], 3)),
            "--backends"
        );
        assert_eq!(
            flag(resolve(base.clone(), Some(&s(&["posix", "posix"])), &[], 3)),
            "--backends"
        );
        assert_eq!(
            flag(resolve(base.clone(), None, &s(&["iozone"]), 3)),
            "--peers"
        );
        assert_eq!(
            flag(resolve(base.clone(), None, &s(&["fio", "fio"]), 3)),
            "--peers"
        );
        assert_eq!(flag(resolve(base.clone(), None, &[], 0)), "--rounds");
        // A workload no backend can take is an error about the workload.
        let no_threads = RunOptions {
            threads: 0,
            ..base.clone()
        };
        assert_eq!(flag(resolve(no_threads, None, &[], 1)), "--threads");
        // gdsio is never run by this build: always skipped, with the reason.
        let spec = resolve(base.clone(), Some(&s(&["posix"])), &s(&["gdsio"]), 1).unwrap();
        assert_eq!(spec.skipped[0].name, "gdsio");
        assert!(!spec.skipped[0].reason.is_empty());
        // A workload one contender cannot take is refused before anything runs, naming both.
        let fixed = RunOptions {
            fixed_buffers: true,
            ..base
        };
        let e = resolve(fixed.clone(), Some(&s(&["posix"])), &[], 1).unwrap_err();
        assert!(e.to_string().starts_with("posix: --fixed-buffers:"), "{e}");
        // By default such a backend is skipped with the reason instead.
        let spec = resolve(fixed, None, &s(&["none"]), 1).unwrap();
        assert!(!spec
            .contenders
            .contains(&Contender::Backend("posix".into())));
        let posix = spec.skipped.iter().find(|k| k.name == "posix").unwrap();
        assert!(
            posix.reason.starts_with("--fixed-buffers:"),
            "{}",
            posix.reason
        );
    }

    #[test]
    fn warnings_are_kept_once_per_code_with_the_name() {
        let w = |code: &str| WarningRecord {
            code: code.into(),
            message: format!("{code} happened"),
            hint: "h".into(),
        };
        let mut into = Vec::new();
        add_warnings(&mut into, "host", &[w("a"), w("b")]);
        add_warnings(&mut into, "host", &[w("a")]);
        assert_eq!(into.len(), 2);
        assert_eq!(into[0].message, "host: a happened");
    }
}
