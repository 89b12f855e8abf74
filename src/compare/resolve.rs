//! From names to a [`CompareSpec`], before anything runs: `resolve` checks the backend and
//! peer names, skips (with the reason) what cannot run here or take the workload, and adds the
//! `host-ring` row beside fio; `with_config` gives each backend its `--config` settings. Every
//! refusal happens here, so a comparison never fails on a bad name after its first round.

use std::collections::BTreeMap;
use std::path::Path;

use super::spec::{CompareSpec, Contender, HOST_RING, MAX_ROUNDS};
use crate::backend::{self, Availability};
use crate::error::{Error, Message, Result, Setting};
use crate::options::{BufferMode, RunOptions, Target};
use crate::peer;
use crate::report::comparison::{ContenderKind, Skipped};
use crate::tuning::Config;
use crate::types::{BackendId, UnknownBackend};

/// Moves the gdsio contenders that cannot run `spec`'s workload (as `--config` left it) to
/// the skipped ones, with the reason (once, under `gdsio`).
pub(super) fn skip_unfit_gdsio(spec: &mut CompareSpec) -> Result<()> {
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
