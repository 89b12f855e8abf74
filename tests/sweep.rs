//! `gdswap sweep` on small real files: the best settings and the config round trip
//! (sweep -> best.json -> `run --config` runs with them), the DeepSpeed aio block's JSON types,
//! an interrupted sweep (SIGINT after a few points) that keeps what it measured, and
//! `--resume` measuring only the missing points.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use gdswap::report::comparison::{self, Comparison};

fn points(path: &Path) -> Vec<Comparison> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| comparison::from_json(l).unwrap_or_else(|e| panic!("bad point line ({e}): {l}")))
        .collect()
}

#[test]
fn sweep_config_round_trip_and_aio_block() {
    require_host_backend!();
    let dir = scratch();
    let out = dir.path().join("sweep");
    let o = ok(argv![
        "sweep",
        "--backends",
        "host,posix",
        "--block-size",
        "64K,256K",
        "--queue-depth",
        "1,4",
        "--threads",
        "1,2",
        "--size",
        "2M",
        "--rounds",
        "1",
        "--loops",
        "1",
        "--warmup",
        "0",
        "--create-dir",
        "--dir",
        dir.path().join("d"),
        "--out",
        &out
    ]);
    assert!(
        o.stdout.starts_with("best settings by read (8 points):"),
        "{}",
        o.stdout
    );
    let pts = points(&out.join("points.jsonl"));
    assert_eq!(pts.len(), 8);
    let csv = std::fs::read_to_string(out.join("points.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8 * 2, "{csv}");

    // best.json holds, per backend, the point with the highest median read GiB/s.
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best.json")).unwrap()).unwrap();
    assert_eq!(best["schema"], "gdswap.config.v1");
    assert_eq!(best["metric"], "read");
    for backend in ["host", "posix"] {
        let top = pts
            .iter()
            .map(|c| {
                let k = c.contenders.iter().find(|k| k.name == backend).unwrap();
                (k.bandwidth_gibps.median, &c.params)
            })
            .fold(
                None::<(f64, &gdswap::report::comparison::CompareParams)>,
                |acc, x| match acc {
                    Some(a) if a.0 >= x.0 => Some(a),
                    _ => Some(x),
                },
            )
            .unwrap();
        let b = &best["backends"][backend];
        assert_eq!(
            b["block_size"].as_u64(),
            Some(top.1.workload.block_size),
            "{backend}"
        );
        assert_eq!(
            b["queue_depth"].as_u64(),
            Some(u64::from(top.1.workload.queue_depth))
        );
        assert_eq!(b["threads"].as_u64(), Some(top.1.workload.threads as u64));
        assert_eq!(b["score_gibps"].as_f64(), Some(top.0));
    }

    // The aio block: the host backend's settings as JSON numbers and booleans.
    let aio: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("aio.json")).unwrap()).unwrap();
    let a = &aio["aio"];
    assert_eq!(a["block_size"], best["backends"]["host"]["block_size"]);
    assert_eq!(a["queue_depth"], best["backends"]["host"]["queue_depth"]);
    assert_eq!(
        a["intra_op_parallelism"],
        best["backends"]["host"]["threads"]
    );
    assert!(a["block_size"].is_u64() && a["queue_depth"].is_u64());
    assert!(a["intra_op_parallelism"].is_u64());
    assert_eq!(a["single_submit"], serde_json::Value::Bool(false));
    assert_eq!(a["overlap_events"], serde_json::Value::Bool(true));
    assert_eq!(a["use_gds"], serde_json::Value::Bool(false));
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("### Best settings (metric: read)"), "{md}");

    // run --config takes the settings of its backend.
    let json = dir.path().join("r.json");
    for backend in ["posix", "host"] {
        ok(argv![
            "run",
            "--backend",
            backend,
            "--config",
            out.join("best.json"),
            "--size",
            "2M",
            "--loops",
            "1",
            "--warmup",
            "0",
            "--create-dir",
            "--dir",
            dir.path().join("d"),
            "--json",
            &json
        ]);
        let r = read_report(&json);
        let b = &best["backends"][backend];
        assert_eq!(Some(r.params.workload.block_size), b["block_size"].as_u64());
        assert_eq!(
            Some(u64::from(r.params.workload.queue_depth)),
            b["queue_depth"].as_u64()
        );
        assert_eq!(
            Some(r.params.workload.threads as u64),
            b["threads"].as_u64()
        );
    }
    // compare --config: each backend with its own settings.
    let cj = dir.path().join("c.json");
    ok(argv![
        "compare",
        "--config",
        out.join("best.json"),
        "--peers",
        "none",
        "--size",
        "2M",
        "--rounds",
        "1",
        "--loops",
        "1",
        "--warmup",
        "0",
        "--create-dir",
        "--dir",
        dir.path().join("d"),
        "--json",
        &cj
    ]);
    let c = comparison::from_json(&std::fs::read_to_string(&cj).unwrap()).unwrap();
    for k in &c.contenders {
        let b = &best["backends"][k.name.as_str()];
        let want = format!(
            "tuned by --config: bs {}KiB, qd {},",
            b["block_size"].as_u64().unwrap() / 1024,
            b["queue_depth"]
        );
        assert!(k.mode.starts_with(&want), "{}: {}", k.name, k.mode);
    }
    // Flags the config sets cannot be given beside it; a backend it lacks is named.
    let e = outcome(&mut gdswap(argv![
        "run",
        "--config",
        out.join("best.json"),
        "--threads",
        "2"
    ]));
    assert_eq!(e.code, Some(2));
    let mut cfg = best.clone();
    cfg["backends"].as_object_mut().unwrap().remove("posix");
    let partial = dir.path().join("host-only.json");
    std::fs::write(&partial, cfg.to_string()).unwrap();
    let e = fail(argv![
        "run",
        "--backend",
        "posix",
        "--config",
        &partial,
        "--create-dir",
        "--dir",
        dir.path().join("d")
    ]);
    assert!(
        e.ends_with("holds no settings for backend 'posix' (it has: host)"),
        "{e}"
    );
}

#[test]
fn an_interrupted_sweep_keeps_its_points_and_resume_measures_only_the_rest() {
    let dir = scratch();
    let out = dir.path().join("sweep");
    let jsonl = out.join("points.jsonl");
    let args = |extra: &[&str]| {
        let mut a = argv![
            "sweep",
            "--backends",
            "posix",
            "--block-size",
            "64K,128K,256K",
            "--queue-depth",
            "1,2,4",
            "--threads",
            "1,2",
            "--metric",
            "both",
            "--size",
            "8M",
            "--rounds",
            "2",
            "--loops",
            "1",
            "--warmup",
            "0",
            "--create-dir",
            "--dir",
            dir.path().join("d"),
            "--out",
            &out
        ];
        a.extend(extra.iter().map(std::ffi::OsString::from));
        a
    };
    const TOTAL: usize = 3 * 3 * 2 * 2;
    let child = gdswap(args(&[]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start gdswap sweep");
    let t0 = Instant::now();
    let lines = || {
        std::fs::read_to_string(&jsonl)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    while lines() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no points after 60 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill sends a signal to the child we started; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{stderr}");
    let kept = points(&jsonl);
    let n = kept.len();
    assert!((2..TOTAL).contains(&n), "{n} points kept\n{stderr}");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "gdswap: interrupted: {n} of {TOTAL} points measured ({n} by this run) and kept in "
        )),
        "{last}"
    );
    assert!(
        last.ends_with("continue with the same command plus --resume"),
        "{last}"
    );
    let before = std::fs::read_to_string(&jsonl).unwrap();

    // Without --resume the directory is refused; with other options the resume is refused.
    let e = fail(args(&[]));
    assert!(
        e.starts_with("--out: ") && e.contains("pass --resume"),
        "{e}"
    );
    let mut other = args(&["--resume"]);
    let size_at = other.iter().position(|a| a == "8M").unwrap();
    other[size_at] = "4M".into();
    let e = fail(other);
    assert!(
        e.contains("was measured with --size 8MiB, this sweep asks 4MiB"),
        "{e}"
    );

    let o = ok(args(&["--resume"]));
    assert!(
        o.stderr
            .contains(&format!("resuming: {n} of {TOTAL} points already measured")),
        "{}",
        o.stderr
    );
    assert_eq!(
        o.stderr.lines().filter(|l| l.starts_with("point ")).count(),
        TOTAL - n,
        "{}",
        o.stderr
    );
    let after = std::fs::read_to_string(&jsonl).unwrap();
    assert!(after.starts_with(&before), "resume rewrote measured points");
    let all = points(&jsonl);
    assert_eq!(all.len(), TOTAL);
    let mut keys: Vec<_> = all.iter().map(gdswap::sweep::key_of).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), TOTAL, "a point was measured twice");
    let csv = std::fs::read_to_string(out.join("points.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + TOTAL, "{csv}");
    assert!(o
        .stdout
        .starts_with(&format!("best settings by both ({TOTAL} points):")));
    assert!(o.stdout.contains("harmonic mean of read"), "{}", o.stdout);
}

#[test]
fn bad_sweeps_are_one_line_errors_naming_the_flag() {
    let dir = scratch();
    let d = dir.path().join("d");
    let out = dir.path().join("o");
    let base = |extra: Vec<std::ffi::OsString>| {
        with(
            argv![
                "sweep",
                "--backends",
                "posix",
                "--size",
                "4M",
                "--create-dir",
                "--dir",
                &d,
                "--out",
                &out
            ],
            extra,
        )
    };
    let e = fail(base(argv!["--block-size", "1M,8M"]));
    assert!(
        e.starts_with("posix: --block-size: 8MiB is larger than --size 4MiB"),
        "{e}"
    );
    let e = fail(base(argv!["--threads", "0", "--block-size", "1M"]));
    assert!(e.starts_with("posix: --threads: 0 is out of range"), "{e}");
    // No --out to resume: refused without creating it (issue 15).
    let e = fail(base(argv!["--resume", "--block-size", "1M"]));
    assert!(
        e.starts_with("--out: ") && e.contains("there is no sweep to resume"),
        "{e}"
    );
    assert!(!out.exists(), "--resume created --out");
    assert!(!d.exists(), "a refused sweep created its data directory");
    let o = outcome(&mut gdswap(base(argv!["--metric", "fastest"])));
    assert_eq!(o.code, Some(2));
}

/// `--bounce-buffers` is a grid dimension of the bounce backend only (against the fake
/// libcuda): the first value runs with every backend, the second with bounce alone; each point
/// records its value, best.json records the winner's, `run --config` runs with it, and
/// `--resume` measures only a newly added value.
#[test]
fn sweep_over_bounce_buffers_records_and_applies_the_knob() {
    require_host_backend!();
    let dir = scratch();
    let out = dir.path().join("sweep");
    let sweep_args = |bb: &str| {
        argv![
            "sweep",
            "--backends",
            "host,bounce",
            "--bounce-buffers",
            bb,
            "--block-size",
            "64K",
            "--queue-depth",
            "2",
            "--threads",
            "1",
            "--size",
            "1M",
            "--rounds",
            "1",
            "--loops",
            "1",
            "--warmup",
            "0",
            "--create-dir",
            "--dir",
            dir.path().join("d"),
            "--out",
            &out
        ]
    };
    let fake = |args| {
        let mut cmd = gdswap(args);
        common::cuda::with_fake_cuda(&mut cmd);
        outcome(&mut cmd)
    };
    fake(sweep_args("3,5")).expect_ok();
    let pts = points(&out.join("points.jsonl"));
    assert_eq!(pts.len(), 2);
    let names =
        |c: &Comparison| -> Vec<String> { c.contenders.iter().map(|k| k.name.clone()).collect() };
    assert_eq!(names(&pts[0]), ["host", "bounce"]);
    assert_eq!(pts[0].params.bounce_buffers, Some(3));
    assert_eq!(names(&pts[1]), ["bounce"]);
    assert_eq!(pts[1].params.bounce_buffers, Some(5));
    assert!(pts.iter().all(|c| c.params.gds_api.is_none()));
    // A bandwidth plot per bounce-buffers value; host's has no suffix.
    for plot in [
        "bandwidth-bounce-read-1t-bb3.svg",
        "bandwidth-bounce-read-1t-bb5.svg",
        "bandwidth-host-read-1t.svg",
    ] {
        assert!(out.join(plot).is_file(), "{plot}");
    }
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("| backend knobs |"), "{md}");
    assert!(md.contains("| bounce-buffers 5 |"), "{md}");
    assert!(md.contains("| bounce (bounce-buffers "), "{md}");

    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("best.json")).unwrap()).unwrap();
    let median = |c: &Comparison| {
        c.contenders
            .iter()
            .find(|k| k.name == "bounce")
            .unwrap()
            .bandwidth_gibps
            .median
    };
    let want = if median(&pts[1]) > median(&pts[0]) {
        5
    } else {
        3
    };
    assert_eq!(
        best["backends"]["bounce"]["bounce_buffers"].as_u64(),
        Some(want)
    );
    assert!(best["backends"]["host"].get("bounce_buffers").is_none());
    assert!(best["backends"]["bounce"].get("gds_api").is_none());

    // run --config runs bounce with the winning count.
    let json = dir.path().join("r.json");
    fake(argv![
        "run",
        "--backend",
        "bounce",
        "--config",
        out.join("best.json"),
        "--size",
        "1M",
        "--loops",
        "1",
        "--warmup",
        "0",
        "--create-dir",
        "--dir",
        dir.path().join("d"),
        "--json",
        &json
    ])
    .expect_ok();
    let r = read_report(&json);
    assert_eq!(r.params.backend, gdswap::backend::BackendId::Bounce);
    assert_eq!(
        r.params
            .gpu
            .expect("bounce reports its GPU options")
            .bounce_buffers as u64,
        want
    );

    // --resume with a third value measures only that one (bounce alone).
    let o = fake(with(sweep_args("3,5,7"), argv!["--resume"])).expect_ok();
    assert!(
        o.stderr
            .contains("resuming: 2 of 3 points already measured"),
        "{}",
        o.stderr
    );
    let pts = points(&out.join("points.jsonl"));
    assert_eq!(pts.len(), 3);
    assert_eq!(names(&pts[2]), ["bounce"]);
    assert_eq!(pts[2].params.bounce_buffers, Some(7));
}
