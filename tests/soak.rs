//! Time-based runs (`--duration`) and soaks (`--max-errors`): the run lasts its time, every
//! loop is verified, and corruption planted mid-soak is counted and logged with its file and
//! offset while the soak keeps going.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn json(path: &std::path::Path) -> Value {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    match v {
        Value::Array(mut a) => a.remove(0),
        v => v,
    }
}

#[test]
fn a_time_based_run_lasts_its_duration_not_its_loops() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = scratch();
    let out = dir.path().join("r.json");
    let t0 = Instant::now();
    ok(argv![
        "run",
        "--dir",
        dir.path(),
        "--size",
        "1M",
        "--block-size",
        "256K",
        "--warmup",
        "0",
        "--duration",
        "1500ms",
        "--json",
        &out
    ]);
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    let v = json(&out);
    assert_eq!(v["soak"]["duration_s"], 1.5, "{}", v["soak"]);
    let loops = v["loops"].as_array().unwrap().len();
    assert_eq!(v["soak"]["loops"], loops);
    assert_eq!(v["params"]["loops"], loops);
    // Loops went on until the time was up: their time (barriers included) is most of it.
    let spent: f64 = v["loops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["e2e_time_s"].as_f64().unwrap())
        .sum();
    assert!(spent > 0.75 && loops > 3, "{loops} loops in {spent} s");
    assert_eq!(v["soak"]["verified_every_loop"], false);
}

#[test]
fn zero_duration_and_max_errors_without_verify_are_refused() {
    let dir = scratch();
    let out = outcome(&mut gdswap(argv![
        "run",
        "--dir",
        dir.path(),
        "--duration",
        "0s"
    ]));
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("more than zero"), "{}", out.stderr);
    let msg = fail(argv![
        "run",
        "--dir",
        dir.path(),
        "--size",
        "1M",
        "--max-errors",
        "3"
    ]);
    assert_eq!(
        msg,
        "--max-errors: counts verification errors: add --verify"
    );
}

#[test]
fn corruption_planted_mid_soak_is_counted_with_its_offset_and_the_soak_goes_on() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = scratch();
    ok(argv![
        "run",
        "--op",
        "write",
        "--dir",
        dir.path(),
        "--size",
        "2M",
        "--block-size",
        "256K",
        "--loops",
        "1",
        "--warmup",
        "0"
    ]);
    let file = dir.path().join("gdswap.0.dat");
    let out = dir.path().join("soak.json");
    let mut cmd = gdswap(argv![
        "run",
        "--dir",
        dir.path(),
        "--size",
        "2M",
        "--block-size",
        "256K",
        "--warmup",
        "0",
        "--verify",
        "--duration",
        "5s",
        "--max-errors",
        "1000000",
        "--json",
        &out
    ]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Mid-soak: two wrong blocks (a byte in each), after some clean loops.
    std::thread::sleep(Duration::from_millis(1500));
    let (a, b) = (300_000u64, 1_500_000u64);
    flip_byte(&file, a);
    flip_byte(&file, b);
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(done.stderr).unwrap();
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    let v = json(&out);
    let soak = &v["soak"];
    let loops = soak["loops"].as_u64().unwrap();
    let errors = soak["verify_errors"].as_u64().unwrap();
    // Found in every loop after the flip (two blocks each time), not in the loops before it,
    // and the soak ran on to its end. The loop running while the bytes are flipped may have
    // read one block before its flip and the other after (seen under load: 39), so the total
    // is two per later loop plus 0, 1 or 2.
    assert!(errors >= 2, "{soak}");
    assert!(errors < 2 * loops, "every loop saw the corruption: {soak}");
    let logged: Vec<u64> = soak["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    // Each loop that saw both flips logs them in file order. The loop running during the
    // flips may have logged only one of them first (seen under load: [b, a, b, ...] and
    // [a, a, b, ...]), so the first whole pair starts at index 0 or 1.
    assert!(logged.iter().all(|&o| o == a || o == b), "{soak}");
    let start = logged
        .windows(2)
        .position(|w| w == [a, b])
        .unwrap_or_else(|| panic!("no loop logged both flips in file order: {soak}"));
    assert!(start <= 1, "{soak}");
    assert_eq!(soak["errors"][0]["path"], file.display().to_string());
    assert!(
        soak["errors"][0]["found"]
            .as_str()
            .unwrap()
            .contains("the block header there is intact, its contents are not"),
        "{soak}"
    );
    assert!(
        stderr.contains(&format!("verify error: {} at offset {a}: ", file.display())),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{ERROR_PREFIX}{errors} wrong 4 KiB blocks in {loops} verified loops (--max-errors 1000000): verify failed: ")),
        "{last}"
    );
}

#[test]
fn a_soak_stops_once_past_max_errors() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = scratch();
    ok(argv![
        "run",
        "--op",
        "write",
        "--dir",
        dir.path(),
        "--size",
        "1M",
        "--block-size",
        "256K",
        "--loops",
        "1",
        "--warmup",
        "0"
    ]);
    let file = dir.path().join("gdswap.0.dat");
    for off in [10_000u64, 20_000, 30_000] {
        flip_byte(&file, off);
    }
    let t0 = Instant::now();
    let msg = fail(argv![
        "run",
        "--dir",
        dir.path(),
        "--size",
        "1M",
        "--block-size",
        "256K",
        "--verify",
        "--duration",
        "1m",
        "--max-errors",
        "2"
    ]);
    // The first loop finds three wrong blocks: past 2, the run stops there, not after a minute.
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(
        msg.starts_with(&format!(
            "verify failed: {} at offset 10000: ",
            file.display()
        )) && msg.contains("; 3 wrong blocks found, more than --max-errors 2"),
        "{msg}"
    );
}

/// `compare --duration`: every backend and fio (fio's measured group time_based for the
/// duration) run for that long, each round's time recorded.
#[test]
fn compare_runs_each_backend_and_fio_for_the_duration() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = scratch();
    let t0 = Instant::now();
    let out = outcome(&mut gdswap(argv![
        "compare",
        "--backends",
        "host,posix",
        "--dir",
        dir.path(),
        "--size",
        "1M",
        "--block-size",
        "256K",
        "--rounds",
        "1",
        "--warmup",
        "0",
        "--peers",
        "fio",
        "--duration",
        "500ms",
        "--json",
        "-"
    ]))
    .expect_ok();
    let fio = gdswap::peer::find_in_path("fio").is_some();
    // Two or three contenders (four with host-ring beside fio), one round each, half a second
    // each.
    assert!(t0.elapsed() >= Duration::from_secs(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = v["contenders"].as_array().expect("contenders");
    let names: Vec<&str> = rows.iter().map(|c| c["name"].as_str().unwrap()).collect();
    // gdswap's rows: the time inside their loops (the barriers and verification between
    // loops are not in it), within the duration.
    for c in rows.iter().filter(|c| c["name"] != "fio") {
        let t = c["rounds"][0]["time_s"].as_f64().unwrap();
        assert!(t > 0.0 && t < 5.0, "{} ran {t} s: {c}", c["name"]);
    }
    if !fio {
        eprintln!("note: fio is not installed: its time-based row is not checked");
        return;
    }
    assert!(names.contains(&"fio"), "{names:?}");
    let f = rows.iter().find(|c| c["name"] == "fio").unwrap();
    // fio's measured group ran for the duration (its job_runtime), not one pass over 1 MiB.
    let t = f["rounds"][0]["time_s"].as_f64().unwrap();
    assert!((0.45..5.0).contains(&t), "fio ran {t} s: {f}");
    assert!(
        f["mode"]
            .as_str()
            .unwrap()
            .contains("measured time_based for 500ms"),
        "{f}"
    );
}

#[test]
fn two_directories_run_at_once_with_figures_per_directory_and_for_both() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = scratch();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let out_json = dir.path().join("r.json");
    let out = ok(argv![
        "run",
        "--dir",
        &a,
        "--dir",
        &b,
        "--size",
        "2M",
        "--block-size",
        "256K",
        "--threads",
        "2",
        "--loops",
        "2",
        "--verify",
        "--json",
        &out_json
    ]);
    for d in [&a, &b] {
        assert!(
            out.stdout
                .contains(&format!("{}: host read: 2 threads", d.display())),
            "{}",
            out.stdout
        );
        assert!(d.join("gdswap.1.dat").exists());
    }
    assert!(out.stdout.contains("\nall 2 targets: "), "{}", out.stdout);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
    let reports = v.as_array().unwrap();
    assert_eq!(reports.len(), 2);
    for (r, d) in reports.iter().zip([&a, &b]) {
        assert_eq!(r["params"]["target"], d.display().to_string());
        assert_eq!(r["summary"]["bytes"], 4u64 << 20);
    }
    // compare measures one target.
    let msg = fail(argv!["compare", "--dir", &a, "--dir", &b, "--size", "1M"]);
    assert!(
        msg.starts_with("--dir: given more than once: compare measures one target"),
        "{msg}"
    );
}
