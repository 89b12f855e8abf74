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
//! "Cannot run here" is the backend's probe, then its preflight on the workload saying
//! unavailable (gds: cuFile refuses the data file even in compat mode), so a node where one
//! backend cannot move bytes still compares the others.
//!
//! Nothing here prints: progress goes to a callback, results come back as a
//! [`Comparison`]. A stop flag (set by the CLI on Ctrl-C) is checked between runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::backend::{self, Availability};
use crate::error::{Error, Message, Result, Setting};
use crate::harness;
use crate::options::{BufferMode, RunOptions, Target};
use crate::peer;
use crate::report::comparison::{
    CompareParams, Comparison, ContenderKind, Measured, RoundFigures, Skipped,
};
use crate::report::{self, RunReport, WarningRecord};
use crate::size::Bytes;
use crate::tuning::{Config, Tuning};
use crate::types::{BackendId, UnknownBackend};

/// Most rounds a comparison takes (beyond this, a typo).
pub const MAX_ROUNDS: u32 = 1000;

/// The name of [`Contender::HostRing`]'s row.
pub const HOST_RING: &str = "host-ring";

/// A contender, resolved: a backend by name, or a peer tool found on this machine (gdsio:
/// one contender per transfer type, each run killed after `timeout`).
#[derive(Debug, Clone, PartialEq)]
pub enum Contender {
    /// A gdswap backend, run on the base workload (with its `--config` settings, if any).
    Backend(BackendId),
    /// The host backend with `--buffer ring`: queue depth x block size buffers reused, the
    /// footprint fio reads into. Added beside `host` when fio is a peer and the workload reads
    /// into tensor-sized buffers, so that a gap between `host` and `fio` that is only buffer
    /// placement (a large destination fills slower than a small, cache-warm ring) shows as such.
    HostRing,
    /// fio (the executable found), run on the same files and ranges.
    Fio(PathBuf),
    /// NVIDIA's gdsio, one transfer type.
    Gdsio {
        /// The gdsio executable.
        exe: PathBuf,
        /// Its transfer type (`-x`).
        xfer: peer::GdsioXfer,
        /// A run still going after this long is killed.
        timeout: Duration,
    },
}

impl Contender {
    /// The contender's row name: the backend's name, `host-ring`, `fio`, or gdsio's transfer
    /// type name.
    pub fn name(&self) -> &str {
        match self {
            Contender::Backend(b) => b.name(),
            Contender::HostRing => HOST_RING,
            Contender::Fio(_) => "fio",
            Contender::Gdsio { xfer, .. } => xfer.name(),
        }
    }

    /// A gdswap backend or a peer tool.
    pub fn kind(&self) -> ContenderKind {
        match self {
            Contender::Backend(_) | Contender::HostRing => ContenderKind::Backend,
            Contender::Fio(_) | Contender::Gdsio { .. } => ContenderKind::Peer,
        }
    }
}

/// Moves the gdsio contenders that cannot run `spec`'s workload (as `--config` left it) to
/// the skipped ones, with the reason (once, under `gdsio`).
fn skip_unfit_gdsio(spec: &mut CompareSpec) -> Result<()> {
    if !spec
        .contenders
        .iter()
        .any(|c| matches!(c, Contender::Gdsio { .. }))
    {
        return Ok(());
    }
    match peer::gdsio_file(&spec.base) {
        Ok(_) => {
            let timeout = peer::gdsio_timeout(&spec.base)?;
            for c in &mut spec.contenders {
                if let Contender::Gdsio { timeout: t, .. } = c {
                    *t = timeout;
                }
            }
        }
        Err(reason) => {
            let dropped: Vec<String> = spec
                .contenders
                .iter()
                .filter(|c| matches!(c, Contender::Gdsio { .. }))
                .map(|c| c.name().to_string())
                .collect();
            spec.contenders
                .retain(|c| !matches!(c, Contender::Gdsio { .. }));
            spec.skipped.push(Skipped {
                name: if dropped.len() == peer::GDSIO_XFERS.len() {
                    "gdsio".into()
                } else {
                    dropped.join(",")
                },
                kind: ContenderKind::Peer,
                reason,
            });
        }
    }
    Ok(())
}

/// Everything a comparison runs: the workload, the contenders in order (the first is the
/// reference of the ratios), the rounds, and what was left out and why.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// The workload; its `backend` is replaced by each backend contender's.
    pub base: RunOptions,
    /// The contenders, in the order each round runs them; the first is the ratios' reference.
    pub contenders: Vec<Contender>,
    /// Rounds: each contender runs once per round (at most [`MAX_ROUNDS`]).
    pub rounds: u32,
    /// Contenders left out (not available here, or unfit for the workload), with why.
    pub skipped: Vec<Skipped>,
    /// Per-backend settings from a config file (`--config`); empty when every backend runs
    /// the base workload.
    pub tuning: BTreeMap<String, Tuning>,
}

impl CompareSpec {
    /// The run options of a backend contender: the workload, with its tuned settings if any.
    pub fn options_for(&self, backend: BackendId) -> RunOptions {
        let mut o = RunOptions {
            backend,
            ..self.base.clone()
        };
        if let Some(t) = self.tuning.get(backend.name()) {
            t.apply(&mut o);
        }
        o
    }

    /// The run options of a gdswap contender (`None` for a peer tool).
    pub fn options_of(&self, c: &Contender) -> Option<RunOptions> {
        match c {
            Contender::Backend(b) => Some(self.options_for(*b)),
            Contender::HostRing => Some(RunOptions {
                buffer: BufferMode::Ring,
                ..self.options_for(BackendId::Host)
            }),
            Contender::Fio(_) | Contender::Gdsio { .. } => None,
        }
    }
}

/// Adds the `host-ring` row right after `host` when fio is a peer and the workload reads
/// into tensor-sized buffers (see [`Contender::HostRing`]); with `verify`, which needs the
/// tensor-sized buffers, it is listed as skipped with the reason instead.
fn add_host_ring(base: &RunOptions, contenders: &mut Vec<Contender>, skipped: &mut Vec<Skipped>) {
    let fio = contenders.iter().any(|c| matches!(c, Contender::Fio(_)));
    let host = contenders
        .iter()
        .position(|c| *c == Contender::Backend(BackendId::Host));
    let (true, Some(at), BufferMode::Full) = (fio, host, base.buffer) else {
        return;
    };
    let ring = RunOptions {
        backend: BackendId::Host,
        buffer: BufferMode::Ring,
        ..base.clone()
    };
    match ring.validate() {
        Ok(()) => contenders.insert(at + 1, Contender::HostRing),
        Err(e) => skipped.push(Skipped {
            name: HOST_RING.into(),
            kind: ContenderKind::Backend,
            reason: format!("host at fio's footprint cannot take this workload: {e}").into(),
        }),
    }
}

/// Gives every backend of `spec` its own settings from `config` (read from `path` by
/// `--config`): each must have an entry. The reference (first) backend's settings become the
/// workload's, which peers run and the comparison records.
pub fn with_config(mut spec: CompareSpec, config: &Config, path: &Path) -> Result<CompareSpec> {
    for c in &spec.contenders {
        if let Contender::Backend(b) = c {
            let t = config.for_backend(b.name(), path, Setting::Config)?;
            spec.tuning.insert(b.name().to_string(), t.clone());
        }
    }
    if let Some(Contender::Backend(first)) = spec.contenders.first() {
        spec.tuning[first.name()].apply(&mut spec.base);
    }
    // Peers run the reference backend's settings, which gdsio may not be able to take.
    skip_unfit_gdsio(&mut spec)?;
    for c in &spec.contenders {
        if let Contender::Backend(name) = c {
            spec.options_for(*name)
                .validate()
                .map_err(|e| Error::Within {
                    context: crate::error::msg![
                        format!("{name} with the settings of "),
                        Setting::Config,
                        format!(" {}", path.display())
                    ],
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
            Setting::Rounds,
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
                    backend: b.id(),
                    ..base.clone()
                }
                .validate();
                let available = match (b.probe(), &fit) {
                    (Availability::Available, Ok(())) => usable(b.as_ref(), &base),
                    (a, _) => a,
                };
                match (available, fit) {
                    (Availability::Available, Ok(())) => {
                        contenders.push(Contender::Backend(b.id()))
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
                            reason: e.to_string().into(),
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
                let id: BackendId = n.parse().map_err(|e: UnknownBackend| {
                    Error::invalid(Setting::Backends, e.to_string())
                })?;
                if contenders.contains(&Contender::Backend(id)) {
                    return Err(Error::invalid(
                        Setting::Backends,
                        format!("'{n}' is listed twice"),
                    ));
                }
                if let Availability::Unavailable(reason) = backend::get(id).probe() {
                    return Err(Error::invalid(
                        Setting::Backends,
                        format!("backend '{n}' cannot run here: {reason}"),
                    ));
                }
                contenders.push(Contender::Backend(id));
            }
        }
    }
    if contenders.is_empty() {
        let why: Vec<String> = skipped
            .iter()
            .map(|s| format!("{}: {}", s.name, s.reason))
            .collect();
        return Err(Error::invalid(
            Setting::Backends,
            format!("no backend can run here ({})", why.join("; ")),
        ));
    }
    // Every backend must accept the workload before anything runs, and the data directory
    // must be there (or be allowed to be made), not found missing after the first contender.
    if let Target::Dir(dir) = &base.workload.target {
        crate::datafiles::check_data_dir(dir, base.create_dir)?;
    }
    for c in &contenders {
        let Contender::Backend(backend) = *c else {
            continue;
        };
        let opts = RunOptions {
            backend,
            ..base.clone()
        };
        opts.validate().map_err(|e| Error::Within {
            context: c.name().into(),
            source: Box::new(e),
        })?;
        // A named backend that cannot run this workload here is an error before any round.
        if backends.is_some() {
            if let Availability::Unavailable(reason) = usable(backend::get(backend).as_ref(), &base)
            {
                return Err(Error::invalid(
                    Setting::Backends,
                    format!("backend '{backend}' cannot run here: {reason}"),
                ));
            }
        }
    }
    let none = peers.len() == 1 && peers[0] == "none";
    let mut listed: Vec<&str> = Vec::new();
    let mut rows_seen: Vec<&str> = Vec::new();
    for p in peers.iter().filter(|_| !none) {
        if listed.contains(&p.as_str()) {
            return Err(Error::invalid(
                Setting::Peers,
                format!("'{p}' is listed twice"),
            ));
        }
        listed.push(p);
        // `gdsio` stands for both of its rows.
        let rows: Vec<&str> = match p.as_str() {
            "gdsio" => peer::GDSIO_XFERS.iter().map(|x| x.name()).collect(),
            other => vec![other],
        };
        if let Some(r) = rows.iter().find(|r| rows_seen.contains(r)) {
            return Err(Error::invalid(
                Setting::Peers,
                format!("'{r}' is listed twice (gdsio stands for gdsio-gpud and gdsio-cpu-gpu)"),
            ));
        }
        rows_seen.extend(rows);
        match p.as_str() {
            "fio" => match peer::locate_fio() {
                Ok(exe) => contenders.push(Contender::Fio(exe)),
                Err(reason) => skipped.push(Skipped {
                    name: "fio".into(),
                    kind: ContenderKind::Peer,
                    reason: reason.into(),
                }),
            },
            "gdsio" | "gdsio-gpud" | "gdsio-cpu-gpu" => {
                let xfers: Vec<peer::GdsioXfer> = match peer::GdsioXfer::by_name(p) {
                    Some(x) => vec![x],
                    None => peer::GDSIO_XFERS.to_vec(),
                };
                let fit = peer::locate_gdsio()
                    .map_err(Message::from)
                    .and_then(|exe| peer::gdsio_file(&base).map(|_| exe));
                match fit {
                    Ok(exe) => {
                        let timeout = peer::gdsio_timeout(&base)?;
                        for xfer in xfers {
                            contenders.push(Contender::Gdsio {
                                exe: exe.clone(),
                                xfer,
                                timeout,
                            });
                        }
                    }
                    Err(reason) => skipped.push(Skipped {
                        name: p.clone(),
                        kind: ContenderKind::Peer,
                        reason,
                    }),
                }
            }
            other => {
                return Err(Error::invalid(
                    Setting::Peers,
                    format!(
                        "unknown peer '{other}'; known: {}, or none",
                        peer::PEERS.join(", ")
                    ),
                ))
            }
        }
    }
    add_host_ring(&base, &mut contenders, &mut skipped);
    Ok(CompareSpec {
        base,
        contenders,
        rounds,
        skipped,
        tuning: BTreeMap::new(),
    })
}

/// Whether backend `b`, which its probe says can run here, can run `base`'s workload: its
/// preflight saying [`Error::Unavailable`] says not (gds: cuFile cannot register the data file
/// even with compat mode as configured, or its driver hangs). Only that verdict is taken here;
/// any other preflight error depends on the backend's own settings (`--config`), and each
/// round's run reports it with them.
fn usable(b: &dyn backend::Backend, base: &RunOptions) -> Availability {
    // A data directory not made yet is reported as such later (`check_data_dir`); no probe
    // child runs on a mistyped path meanwhile.
    if let Target::Dir(dir) = &base.workload.target {
        if !dir.is_dir() {
            return Availability::Available;
        }
    }
    let opts = RunOptions {
        backend: b.id(),
        ..base.clone()
    };
    match b.preflight(&opts) {
        Err(Error::Unavailable { reason, .. }) => Availability::Unavailable(reason),
        _ => Availability::Available,
    }
}

/// What the comparison is doing, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A run is about to start.
    Starting {
        /// The round, 1-based.
        round: u32,
        /// Rounds in all.
        rounds: u32,
        /// The contender's name.
        name: String,
    },
    /// A run finished.
    Measured {
        /// The round, 1-based.
        round: u32,
        /// Rounds in all.
        rounds: u32,
        /// The contender's name.
        name: String,
        /// The run's bandwidth, GiB/s.
        gibps: f64,
    },
}

/// The parameters a comparison records.
pub fn params_of(spec: &CompareSpec) -> CompareParams {
    let o = &spec.base;
    CompareParams {
        workload: o.workload.clone(),
        rounds: spec.rounds,
        random: o.random,
        direct: o.direct,
        huge_pages: o.huge_pages,
        fixed_buffers: o.fixed_buffers,
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
    compare_with(spec, stop, progress, &crate::ranks::Solo)
}

/// [`compare`] as one of the processes `coord` connects (mpirun, srun): every backend run
/// meets the other processes at its phases, and its figures are merged on rank 0 (the other
/// ranks' comparison holds their own figures, and is not to be reported). Every rank must be
/// given the same contenders, peers excluded (they are not coordinated).
pub fn compare_with(
    spec: &CompareSpec,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
    coord: &dyn crate::ranks::Coordinator,
) -> Result<Comparison> {
    let data_path = match &spec.base.workload.target {
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
            kind: c.kind(),
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
                context: format!("{} (round {round} of {})", c.name(), spec.rounds).into(),
                source: Box::new(e),
            };
            let figures = match c {
                Contender::Backend(_) | Contender::HostRing => {
                    let opts = spec.options_of(c).ok_or(Error::Internal(
                        "a backend contender has run options".into(),
                    ))?;
                    let name = opts.backend;
                    let meas = harness::run_with(&opts, coord)
                        .and_then(|m| crate::rank_merge::gather(coord, m))
                        .map_err(within)?;
                    env = crate::env::collect(&data_path);
                    let r = RunReport::new(&opts, &meas, env.clone(), report::now_utc());
                    if m.mode.is_empty() {
                        let tuned = match spec.tuning.get(name.name()) {
                            Some(t) => format!(
                                "tuned by {}: bs {}, qd {}, {} thread(s){}; ",
                                crate::error::setting_name(Setting::Config),
                                Bytes(t.block_size),
                                t.queue_depth,
                                t.threads,
                                t.knobs()
                            ),
                            None => String::new(),
                        };
                        m.mode = format!(
                            "{tuned}{}; {}{}",
                            r.backend_mode,
                            r.buffer_pages,
                            footprint(spec, c)
                        );
                    }
                    add_warnings(&mut m.run_warnings, c.name(), &r.warnings);
                    figures_of(round, &r)
                }
                Contender::Fio(exe) => {
                    let ranges = peer::fio_ranges(&spec.base).map_err(within)?;
                    let (free, page) = crate::io::sys::free_hugetlb_pages();
                    let memory = peer::FioMemory::matching(
                        &spec.base,
                        free,
                        page,
                        crate::io::sys::thp_enabled(),
                    );
                    let fio_opts = peer::settle_fixed_buffers(&spec.base, ranges.len());
                    let (args, mut mode) = peer::fio_args(&fio_opts, &ranges, memory);
                    let env = memory.env(std::env::var("GLIBC_TUNABLES").ok().as_deref());
                    if spec.base.drop_caches {
                        // gdswap drops the page cache before each measured loop; fio gets the
                        // same start before each run.
                        crate::io::sys::drop_caches().map_err(|e| within(Error::DropCaches(e)))?;
                        mode.push_str(", page cache dropped before the run");
                    }
                    let f = match peer::run_fio(exe, &args, &env, spec.base.workload.op) {
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
                        latency_avg_us: f.latency_avg_us,
                        latency_p50_us: Some(f.latency_p50_us),
                        latency_p99_us: Some(f.latency_p99_us),
                        cpu_s_per_gib: Some(f.cpu_s_per_gib),
                        latency_cdf_us: f.latency_cdf_us,
                        time_s: Some(f.runtime_s),
                    }
                }
                Contender::Gdsio { exe, xfer, timeout } => {
                    let o = &spec.base;
                    let file = peer::gdsio_file(o).map_err(|message| {
                        within(Error::Peer {
                            tool: "gdsio".into(),
                            message,
                        })
                    })?;
                    let (args, mode) = peer::gdsio_args(o, &file, *xfer);
                    // A time-based comparison: one measured run of that long (gdsio -T, whole
                    // seconds, at least 1), given that much more time to end.
                    let (measured_args, measured_runs, measured_timeout) = match o.duration {
                        Some(d) => {
                            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                            let mut a = args.clone();
                            a.extend(["-T".to_string(), secs.max(1).to_string()]);
                            (a, 1, *timeout + Duration::from_secs(secs.max(1)))
                        }
                        None => (args.clone(), o.workload.loops, *timeout),
                    };
                    // Warm-up runs first (their figures dropped), then one run per measured
                    // loop, each after a page-cache drop with --drop-caches, as gdswap's loops.
                    let mut runs = Vec::new();
                    let mut failed = None;
                    for run in 0..o.workload.warmup + measured_runs {
                        if stop.load(Ordering::SeqCst) {
                            return Err(Error::Interrupted);
                        }
                        let measured = run >= o.workload.warmup;
                        if measured && o.drop_caches {
                            crate::io::sys::drop_caches()
                                .map_err(|e| within(Error::DropCaches(e)))?;
                        }
                        let (args, timeout) = if measured {
                            (&measured_args, measured_timeout)
                        } else {
                            (&args, *timeout)
                        };
                        match peer::run_gdsio(
                            exe,
                            args,
                            o.workload.op,
                            *xfer,
                            o.workload.threads,
                            timeout,
                        ) {
                            Ok(f) if measured => runs.push(f),
                            Ok(_) => {}
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    let round_figures = match failed {
                        None => peer::gdsio_round(&runs),
                        Some(_) => None,
                    };
                    let Some((gibps, avg_us)) = round_figures else {
                        let why = failed.map(|e| e.to_string()).unwrap_or_else(|| {
                            "peer gdsio: no measured run gave figures".to_string()
                        });
                        peer_failed[i] = Some(format!("failed in round {round}: {why}"));
                        continue;
                    };
                    let time_s: f64 = runs.iter().map(|r| r.total_time_s).sum();
                    if m.mode.is_empty() {
                        m.mode = format!(
                            "{mode}{}; {} {}",
                            if o.drop_caches {
                                ", page cache dropped before each measured run"
                            } else {
                                ""
                            },
                            exe.display(),
                            measured_args.join(" ")
                        );
                    }
                    // gdsio reports only an average latency and no CPU time: those figures
                    // are absent, not 0.
                    RoundFigures {
                        round,
                        bandwidth_gibps: gibps,
                        latency_avg_us: Some(avg_us),
                        latency_p50_us: None,
                        latency_p99_us: None,
                        cpu_s_per_gib: None,
                        latency_cdf_us: Vec::new(),
                        time_s: Some(time_s),
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
                reason: reason.into(),
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

/// Says, when the comparison has a `host-ring` row, whose footprint each gdswap row has, so
/// the reader compares fio with the row of the same footprint.
fn footprint(spec: &CompareSpec, c: &Contender) -> &'static str {
    if !spec.contenders.contains(&Contender::HostRing) {
        return "";
    }
    match c {
        Contender::HostRing => "; fio's footprint (compare fio with this row for the device)",
        _ => "; one tensor-sized buffer per thread (what a swap fills; a large destination can fill slower than fio's small ring)",
    }
}

fn figures_of(round: u32, r: &RunReport) -> RoundFigures {
    RoundFigures {
        round,
        bandwidth_gibps: r.summary.bandwidth_gibps,
        latency_avg_us: Some(r.summary.latency.mean_us),
        latency_p50_us: Some(r.summary.latency.p50_us),
        latency_p99_us: Some(r.summary.latency.p99_us),
        cpu_s_per_gib: Some(r.summary.cpu_s_per_gib),
        latency_cdf_us: r.summary.latency_cdf_us.clone(),
        time_s: Some(r.summary.e2e_time_s),
    }
}

/// Keeps the first warning of each code, naming the contender.
fn add_warnings(into: &mut Vec<WarningRecord>, name: &str, new: &[WarningRecord]) {
    for w in new {
        if !into.iter().any(|x| x.code == w.code) {
            into.push(WarningRecord {
                code: w.code.clone(),
                message: crate::error::msg![format!("{name}: ")].join(&w.message),
                hint: w.hint.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Workload;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn resolve_checks_names_and_orders_contenders() {
        let base = RunOptions::default();
        let spec = resolve(base.clone(), Some(&s(&["posix"])), &s(&["none"]), 3).unwrap();
        assert_eq!(spec.contenders, [Contender::Backend(BackendId::Posix)]);
        assert!(spec.skipped.is_empty());
        let flag = |r: Result<CompareSpec>| match r.unwrap_err() {
            Error::InvalidOption { setting, .. } => setting,
            e => panic!("{e}"),
        };
        assert_eq!(
            flag(resolve(base.clone(), Some(&s(&["nope"])), &[], 3)),
            Setting::Backends
        );
        assert_eq!(
            flag(resolve(base.clone(), Some(&s(&["posix", "posix"])), &[], 3)),
            Setting::Backends
        );
        assert_eq!(
            flag(resolve(base.clone(), None, &s(&["iozone"]), 3)),
            Setting::Peers
        );
        assert_eq!(
            flag(resolve(base.clone(), None, &s(&["fio", "fio"]), 3)),
            Setting::Peers
        );
        assert_eq!(flag(resolve(base.clone(), None, &[], 0)), Setting::Rounds);
        // A workload no backend can take is an error about the workload.
        let no_threads = RunOptions {
            workload: Workload {
                threads: 0,
                ..base.workload.clone()
            },
            ..base.clone()
        };
        assert_eq!(flag(resolve(no_threads, None, &[], 1)), Setting::Threads);
        // gdsio stands for both of its rows: naming one of them again is listed twice.
        let e = resolve(
            base.clone(),
            Some(&s(&["posix"])),
            &s(&["gdsio", "gdsio-cpu-gpu"]),
            1,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "peers: 'gdsio-cpu-gpu' is listed twice (gdsio stands for gdsio-gpud and gdsio-cpu-gpu)"
        );
        // A random workload is not run by gdsio (or gdsio is not installed): skipped, with the
        // reason, under the name asked for.
        let random = RunOptions {
            random: true,
            ..base.clone()
        };
        let spec = resolve(random, Some(&s(&["posix"])), &s(&["gdsio-gpud"]), 1).unwrap();
        assert_eq!(spec.contenders, [Contender::Backend(BackendId::Posix)]);
        assert_eq!(spec.skipped[0].name, "gdsio-gpud");
        let why = &spec.skipped[0].reason;
        assert!(
            why.to_string().starts_with("random: ") || why.to_string().starts_with("not installed"),
            "{why}"
        );
        // A workload one contender cannot take is refused before anything runs, naming both.
        let fixed = RunOptions {
            fixed_buffers: crate::options::FixedBuffers::On,
            ..base
        };
        let e = resolve(fixed.clone(), Some(&s(&["posix"])), &[], 1).unwrap_err();
        assert!(e.to_string().starts_with("posix: fixed_buffers:"), "{e}");
        // By default such a backend is skipped with the reason instead.
        let spec = resolve(fixed, None, &s(&["none"]), 1).unwrap();
        assert!(!spec
            .contenders
            .contains(&Contender::Backend(BackendId::Posix)));
        let posix = spec.skipped.iter().find(|k| k.name == "posix").unwrap();
        assert!(
            posix.reason.to_string().starts_with("fixed_buffers:"),
            "{}",
            posix.reason
        );
    }

    #[test]
    fn gdsio_rows_that_the_configured_workload_does_not_fit_are_skipped() {
        // As --config can leave the workload: two threads over --dir's per-thread files.
        let gdsio = |xfer| Contender::Gdsio {
            exe: "/opt/gdsio".into(),
            xfer,
            timeout: Duration::from_secs(1),
        };
        let mut spec = CompareSpec {
            base: RunOptions {
                workload: Workload {
                    threads: 2,
                    target: Target::Dir("/d".into()),
                    ..RunOptions::default().workload
                },
                ..RunOptions::default()
            },
            contenders: vec![
                Contender::Backend(BackendId::Posix),
                gdsio(peer::GdsioXfer::Gpud),
                gdsio(peer::GdsioXfer::CpuGpu),
            ],
            rounds: 1,
            skipped: vec![],
            tuning: BTreeMap::new(),
        };
        skip_unfit_gdsio(&mut spec).unwrap();
        assert_eq!(spec.contenders, [Contender::Backend(BackendId::Posix)]);
        assert_eq!(spec.skipped.len(), 1);
        assert_eq!(spec.skipped[0].name, "gdsio");
        assert!(
            spec.skipped[0]
                .reason
                .to_string()
                .starts_with("dir with 2 threads: "),
            "{}",
            spec.skipped[0].reason
        );
        // A workload that fits keeps the rows, with the time limit of its size.
        spec.base.workload.threads = 1;
        spec.contenders.push(gdsio(peer::GdsioXfer::Gpud));
        skip_unfit_gdsio(&mut spec).unwrap();
        let want = peer::gdsio_timeout(&spec.base).unwrap();
        assert_eq!(spec.contenders[1].name(), "gdsio-gpud");
        assert!(matches!(spec.contenders[1], Contender::Gdsio { timeout, .. } if timeout == want));
    }

    #[test]
    fn warnings_are_kept_once_per_code_with_the_name() {
        let w = |code: &str| WarningRecord {
            code: code.into(),
            message: format!("{code} happened").into(),
            hint: "h".into(),
        };
        let mut into = Vec::new();
        add_warnings(&mut into, "host", &[w("a"), w("b")]);
        add_warnings(&mut into, "host", &[w("a")]);
        assert_eq!(into.len(), 2);
        assert_eq!(into[0].message.to_string(), "host: a happened");
    }
}
