//! `--resume`: reading `points.jsonl` back (a line torn by a crash is dropped, to be measured
//! again), and refusing a points file that was measured with another fixed workload, so that
//! points of different workloads are never mixed.

use std::path::Path;

use super::spec::SweepSpec;
use crate::compare;
use crate::error::{Error, FileRole, Message, Result, Setting};
use crate::report::comparison::{self, Comparison};
use crate::size::Bytes;

/// Points read back from a points file: the complete ones, and how many unreadable lines were
/// dropped (a line cut short by a crash mid-write; it is measured again).
pub struct Loaded {
    /// The complete points, in file order.
    pub points: Vec<Comparison>,
    /// Lines that could not be read (and are measured again).
    pub dropped_lines: usize,
}

/// Reads `points.jsonl`.
pub fn load_points(path: &Path) -> Result<Loaded> {
    let text = crate::io::file::read_regular(path).map_err(|e| Error::BadFile {
        role: FileRole::Setting(Setting::Resume),
        path: path.to_path_buf(),
        message: format!("cannot read it: {e}").into(),
    })?;
    let mut points = Vec::new();
    let mut dropped_lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match comparison::from_json(line) {
            Ok(c) => points.push(c),
            Err(_) => dropped_lines += 1,
        }
    }
    Ok(Loaded {
        points,
        dropped_lines,
    })
}

/// Refuses to resume a points file measured with another fixed workload, naming the flag.
pub fn check_resumable(spec: &SweepSpec, points: &[Comparison], path: &Path) -> Result<()> {
    let probe = compare::params_of(&compare::CompareSpec {
        base: spec.base.clone(),
        contenders: Vec::new(),
        rounds: spec.rounds,
        skipped: Vec::new(),
        tuning: Default::default(),
    });
    for c in points {
        let p = &c.params;
        let differs: Option<(Message, String, String)> = if p.workload.size != probe.workload.size {
            Some((
                Setting::Size.into(),
                Bytes(p.workload.size).to_string(),
                Bytes(probe.workload.size).to_string(),
            ))
        } else if p.workload.loops != probe.workload.loops {
            Some((
                Setting::Loops.into(),
                p.workload.loops.to_string(),
                probe.workload.loops.to_string(),
            ))
        } else if p.workload.warmup != probe.workload.warmup {
            Some((
                Setting::Warmup.into(),
                p.workload.warmup.to_string(),
                probe.workload.warmup.to_string(),
            ))
        } else if p.rounds != probe.rounds {
            Some((
                Setting::Rounds.into(),
                p.rounds.to_string(),
                probe.rounds.to_string(),
            ))
        } else if p.workload.target != probe.workload.target {
            Some((
                crate::error::msg![Setting::File, "/", Setting::Dir],
                p.workload.target.path().display().to_string(),
                probe.workload.target.path().display().to_string(),
            ))
        } else if p.random != probe.random {
            Some((
                Setting::Random.into(),
                p.random.to_string(),
                probe.random.to_string(),
            ))
        } else if p.direct != probe.direct {
            Some((
                Setting::Buffered.into(),
                (!p.direct).to_string(),
                (!probe.direct).to_string(),
            ))
        } else if p.fixed_buffers != probe.fixed_buffers {
            // Points measured with unregistered buffers (a points file from before `auto`, read
            // as off) are not mixed with registered ones in the best-settings pick.
            Some((
                Setting::FixedBuffers.into(),
                p.fixed_buffers.to_string(),
                probe.fixed_buffers.to_string(),
            ))
        } else {
            None
        };
        if let Some((setting, was, now)) = differs {
            let mut message = crate::error::msg!["was measured with "];
            message.0.extend(setting.0);
            message.push(format!(
                " {was}, this sweep asks {now}; resume with the same options, or start a new sweep with another "
            ));
            message.push(Setting::Out);
            return Err(Error::BadFile {
                role: FileRole::Setting(Setting::Resume),
                path: path.to_path_buf(),
                message,
            });
        }
    }
    Ok(())
}
