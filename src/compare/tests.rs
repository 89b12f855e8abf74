//! Resolving names into contenders (errors naming the flag, skips with the reason), gdsio rows
//! the configured workload does not fit, and run warnings kept once per code.

use std::collections::BTreeMap;

use super::resolve::skip_unfit_gdsio;
use super::*;
use crate::options::{RunOptions, Target, Workload};
use crate::types::BackendId;

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
