//! Many processes (issue 16): `gdswap run` as 3 ranks under Open MPI's `mpirun`, and what a
//! build without MPI says under a launcher.
//!
//! The MPI tests need a build with `--features mpi` and Open MPI's `mpirun` (`.ci/run` installs
//! it and runs `cargo test --features mpi --test mpi`); in a default build they print a note and
//! pass, so `cargo test --workspace` needs no MPI. The launcher test is the other way round: it
//! runs in the default build only (with MPI built in, the fake launcher variables would make
//! gdswap start MPI without a launcher).

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use gdswap::report::RunReport;

const RANKS: usize = 3;

macro_rules! require_mpi_build {
    () => {
        if !cfg!(feature = "mpi") {
            eprintln!(
                "note: skipping the MPI test: built without the mpi feature (run `cargo test --features mpi --test mpi` with Open MPI installed)"
            );
            return;
        }
    };
}

/// `mpirun -np 3 gdswap <args>`, as root too (CI runs as root), more ranks than cores allowed.
fn mpirun(args: Vec<std::ffi::OsString>) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(RANKS.to_string())
        .arg(BIN)
        .args(args)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env_remove("GDSWAP_DATA_DIR")
        // Containers often forbid the cross-process memory attach Open MPI's shared-memory
        // transport tries first; the ranks exchange only small messages.
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    cmd
}

/// Runs `cmd` for at most `limit`: past it, mpirun gets SIGTERM (it ends its ranks), then
/// SIGKILL, and the test fails, so a hung job fails the test instead of hanging it.
fn outcome_within(cmd: &mut Command, limit: Duration) -> (Outcome, Duration) {
    use std::process::Stdio;
    let dir = scratch();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let command = format!("{cmd:?}");
    let t0 = Instant::now();
    let mut child = cmd
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let pid = child.id() as libc::pid_t;
            send_signal(pid, libc::SIGTERM);
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command} still ran after {limit:?}: the ranks hung\nstderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = t0.elapsed();
    (
        Outcome {
            command,
            code: status.code(),
            stdout: std::fs::read_to_string(&out_path).unwrap(),
            stderr: std::fs::read_to_string(&err_path).unwrap(),
        },
        took,
    )
}

/// Sends `sig` to `pid` through the `kill` command (the tests keep clear of `unsafe`).
fn send_signal(pid: libc::pid_t, sig: libc::c_int) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

fn mpirun_ok(args: Vec<std::ffi::OsString>) -> Outcome {
    let (out, _) = outcome_within(&mut mpirun(args), Duration::from_secs(120));
    assert_eq!(
        out.code,
        Some(0),
        "expected success from {}\nstdout:\n{}\nstderr:\n{}",
        out.command,
        out.stdout,
        out.stderr
    );
    assert!(!out.stderr.contains(ERROR_PREFIX), "{}", out.stderr);
    out
}

/// The merged report's figures add up: bytes are the ranks' bytes, every rank moved its
/// share, each rank's loops are where its figures say, and the merged latency histogram holds
/// every rank's requests.
fn check_merged(r: &RunReport, size: u64, loops: u32) {
    assert_eq!(r.ranks.len(), RANKS, "{r:?}");
    for (i, k) in r.ranks.iter().enumerate() {
        assert_eq!(k.rank, i);
        assert_eq!(k.bytes, size * loops as u64, "rank {i}");
        assert_eq!(k.loop_start_unix_ns.len(), loops as usize);
        assert!(k.bandwidth_gibps > 0.0);
    }
    let rank_bytes: u64 = r.ranks.iter().map(|k| k.bytes).sum();
    assert_eq!(r.summary.bytes, rank_bytes, "merged total = the ranks' sum");
    assert_eq!(r.summary.bytes, RANKS as u64 * size * loops as u64);
    let thread_bytes: u64 = r.threads.iter().map(|t| t.bytes).sum();
    assert_eq!(thread_bytes, rank_bytes);
    // Latencies: the merged histogram holds every request of every rank, its maximum is the
    // slowest rank's, and its median lies among the ranks' medians' range.
    let count: u64 = r.ranks.iter().map(|k| k.latency.count).sum();
    assert_eq!(r.summary.latency.count, count);
    let max = r.ranks.iter().map(|k| k.latency.max_us).fold(0.0, f64::max);
    assert_eq!(r.summary.latency.max_us, max);
    let p50s: Vec<f64> = r.ranks.iter().map(|k| k.latency.p50_us).collect();
    let lo = p50s.iter().copied().fold(f64::MAX, f64::min);
    let hi = p50s.iter().copied().fold(0.0, f64::max);
    assert!(
        (lo..=hi).contains(&r.summary.latency.p50_us),
        "merged p50 {} outside the ranks' {lo}..{hi}",
        r.summary.latency.p50_us
    );
    // The aggregate: all bytes over the earliest start to the latest end of each loop.
    let mut span_s = 0.0;
    for i in 0..loops as usize {
        let start = r
            .ranks
            .iter()
            .map(|k| k.loop_start_unix_ns[i])
            .min()
            .unwrap();
        let end = r.ranks.iter().map(|k| k.loop_end_unix_ns[i]).max().unwrap();
        span_s += (end - start) as f64 / 1e9;
    }
    let gibps = rank_bytes as f64 / (1u64 << 30) as f64 / span_s;
    assert!(
        (r.summary.bandwidth_gibps - gibps).abs() <= 1e-6 * gibps,
        "aggregate {} != bytes / span {gibps}",
        r.summary.bandwidth_gibps
    );
}

/// Every measured loop of every rank overlaps every other rank's same loop in time (one
/// node: one clock).
fn assert_loops_overlap(r: &RunReport) {
    for i in 0..r.ranks[0].loop_start_unix_ns.len() {
        let latest_start = r
            .ranks
            .iter()
            .map(|k| k.loop_start_unix_ns[i])
            .max()
            .unwrap();
        let earliest_end = r.ranks.iter().map(|k| k.loop_end_unix_ns[i]).min().unwrap();
        assert!(
            latest_start < earliest_end,
            "loop {i}: the ranks' loops do not overlap (latest start {latest_start} ns, earliest end {earliest_end} ns): {:?}",
            r.ranks
        );
    }
}

#[test]
fn three_ranks_write_then_read_with_one_merged_report() {
    require_mpi_build!();
    require_host_backend!();
    let dir = scratch();
    let size = 16 * MIB;
    let loops = 2;
    let run = |op: &str, json: &Path| {
        argv![
            "run",
            "--op",
            op,
            "--dir",
            dir.path(),
            "--size",
            size.to_string(),
            "--block-size",
            "256K",
            "--loops",
            loops.to_string(),
            "--warmup",
            "1",
            "--verify",
            "--json",
            json
        ]
    };

    // Writes: every rank its own files, one report (rank 0's), every figure merged.
    let wjson = dir.path().join("write.json");
    let out = mpirun_ok(run("write", &wjson));
    assert_eq!(
        out.stdout.matches("host write:").count(),
        1,
        "one report, from rank 0:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("3 ranks x 1 thread"), "{}", out.stdout);
    for rank in 0..RANKS {
        assert_pattern(
            &dir.path().join(format!("rank{rank}/gdswap.0.dat")),
            0,
            size,
            0x5eed,
        );
    }
    let w = read_report(&wjson);
    check_merged(&w, size, loops);
    // (Loops of 16 MiB take tens of ms: on a loaded machine, one rank's may be over before
    // another's is scheduled. The overlap is checked below, on loops eight times longer.)

    // Reads, with rank 2's file gone: rank 2 writes its pattern first (setup) while ranks 0
    // and 1 have nothing to set up; the barriers hold their measured loops back until rank 2
    // is ready, so the loops still overlap (without them, 0 and 1 would be done first).
    std::fs::remove_file(dir.path().join("rank2/gdswap.0.dat")).unwrap();
    let big = 8 * size;
    let rjson = dir.path().join("read.json");
    let mut args = run("read", &rjson);
    let at = args.iter().position(|a| a == "--size").unwrap() + 1;
    args[at] = big.to_string().into();
    // Ranks 0 and 1 need files of the new size too: written now, before the measured run.
    for rank in 0..2 {
        gdswap::datafiles::write_pattern(
            &dir.path().join(format!("rank{rank}/gdswap.0.dat")),
            big,
            0x5eed,
        )
        .unwrap();
    }
    mpirun_ok(args);
    let r = read_report(&rjson);
    check_merged(&r, big, loops);
    assert_loops_overlap(&r);
    assert!(r.summary.verified);
}

/// `--duration` under 3 ranks: rank 0's clock decides before every loop and broadcasts it, so
/// every rank stops at the same loop, and every loop of every rank overlaps the others'.
#[test]
fn three_ranks_run_for_a_duration_and_stop_at_the_same_loop() {
    require_mpi_build!();
    require_host_backend!();
    let dir = scratch();
    let json = dir.path().join("timed.json");
    let t0 = Instant::now();
    mpirun_ok(argv![
        "run",
        "--op",
        "write",
        "--dir",
        dir.path(),
        // Loops of 32 MiB (tens of ms): with 4 MiB (about 3 ms) a rank descheduled for one
        // time slice after the barrier on a loaded 2-core machine started after another had
        // finished, and the overlap check failed although the loops were released together.
        "--size",
        "32M",
        "--block-size",
        "256K",
        "--duration",
        "1s",
        "--json",
        &json
    ]);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    let r = report_from_json(&std::fs::read_to_string(&json).unwrap());
    assert_eq!(r.ranks.len(), RANKS, "{r:?}");
    let loops = r.ranks[0].loop_start_unix_ns.len();
    assert!(loops >= 1);
    for k in &r.ranks {
        assert_eq!(k.loop_start_unix_ns.len(), loops, "rank {}: {r:?}", k.rank);
        assert_eq!(k.bytes, 32 * MIB * loops as u64, "rank {}", k.rank);
    }
    assert_loops_overlap(&r);
}

/// A qualify spec with one host test on `target`, loose thresholds (`extra`: more keys).
fn qualify_spec(dir: &Path, target: &Path, extra: &str) -> std::path::PathBuf {
    let spec = dir.join("spec.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"mpi\"\n[[test]]\nname = \"t\"\nbackend = \"host\"\nop = \"read\"\nblock_size = \"256K\"\nloops = 2\nwarmup = 0\ntargets = [\"{}\"]\nsize = \"4M\"\n[test.thresholds]\nmin_gbps = 0.0001\nmin_gbps_per_target = 0.0001\nmax_p99 = \"60s\"\n{extra}",
            target.display()
        ),
    )
    .unwrap();
    spec
}

/// The records in `out`, by node name.
fn qualify_records(out: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (v["node"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// qualify as 3 ranks: every rank runs the test on its own directory, in step; rank 0 prints
/// one merged verdict, writes a record per rank (`<node>-rank<N>`) with the merged figures
/// and their threshold lines in rank 0's, and `gdswap report` over them lists 3 nodes.
#[test]
fn three_ranks_qualify_with_one_merged_verdict_and_a_record_per_rank() {
    require_mpi_build!();
    require_host_backend!();
    let dir = scratch();
    let target = dir.path().join("data");
    std::fs::create_dir(&target).unwrap();
    let spec = qualify_spec(dir.path(), &target, "");
    let out_dir = dir.path().join("out");
    let out = mpirun_ok(argv![
        "qualify", "--spec", &spec, "--out", &out_dir, "--node", "q"
    ]);
    assert_eq!(
        out.stdout.matches("verdict").count(),
        1,
        "one verdict, rank 0's:\n{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("verdict (3 ranks): PASS"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("test   t gbps all 3 ranks"),
        "{}",
        out.stdout
    );
    let records = qualify_records(&out_dir);
    let nodes: Vec<&str> = records.keys().map(String::as_str).collect();
    assert_eq!(nodes, ["q-rank0", "q-rank1", "q-rank2"]);
    let mut sum = 0;
    for (rank, r) in records.values().enumerate() {
        assert_eq!(r["verdict"], "pass", "{r}");
        let test = &r["tests"][0];
        let target_dir = test["targets"][0]["target"].as_str().unwrap();
        assert_eq!(
            Path::new(target_dir),
            target.join(format!("rank{rank}")),
            "each rank on its own directory"
        );
        let bytes = test["aggregate"]["bytes"].as_u64().unwrap();
        assert_eq!(bytes, 2 * 4 * MIB, "rank {rank}: its own figures");
        sum += bytes;
        // Only rank 0 holds the merged figures and decides the aggregate thresholds on them.
        let merged_lines = r["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["target"] == "all 3 ranks")
            .count();
        if rank == 0 {
            assert_eq!(test["merged"]["bytes"].as_u64(), Some(3 * 2 * 4 * MIB));
            assert_eq!(merged_lines, 2, "gbps and p99_us of all ranks: {r}");
        } else {
            assert!(test.get("merged").is_none(), "{r}");
            assert_eq!(merged_lines, 0, "{r}");
        }
    }
    assert_eq!(
        records["q-rank0"]["tests"][0]["merged"]["bytes"].as_u64(),
        Some(sum)
    );
    // Time-based: rank 0's clock decides every loop for all ranks, through the meetings.
    let out = mpirun_ok(argv![
        "qualify",
        "--spec",
        &spec,
        "--out",
        dir.path().join("timed"),
        "--duration",
        "1s"
    ]);
    assert!(
        out.stdout.contains("verdict (3 ranks): PASS"),
        "{}",
        out.stdout
    );
    let fleet_dir = dir.path().join("fleet");
    let report = outcome(&mut gdswap(argv!["report", &out_dir, "--out", &fleet_dir]))
        .expect_ok()
        .stdout;
    assert!(report.contains("3 nodes: 3 pass"), "{report}");
    for n in ["q-rank0", "q-rank1", "q-rank2"] {
        assert!(report.contains(n), "{report}");
    }
}

/// A target that is bad on rank 2 only (its directory is a file): the whole qualification
/// could not run (exit 2) within seconds, rank 0 prints rank 2's error and still writes its
/// record with it. Several targets per test are refused under ranks, with one line.
#[test]
fn a_bad_target_on_rank_2_stops_qualify_with_its_error_within_seconds() {
    require_mpi_build!();
    require_host_backend!();
    let dir = scratch();
    let target = dir.path().join("data");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("rank2"), b"not a directory").unwrap();
    let spec = qualify_spec(dir.path(), &target, "");
    let out_dir = dir.path().join("out");
    let (out, took) = outcome_within(
        &mut mpirun(argv![
            "qualify", "--spec", &spec, "--out", &out_dir, "--node", "q"
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(took < Duration::from_secs(30), "took {took:?}: {out:?}");
    let bad = target.join("rank2");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with(ERROR_PREFIX))
        .unwrap_or_else(|| panic!("no error line:\n{}", out.stderr));
    assert!(
        line.contains("rank 2 of 3")
            && line.contains(&format!("target {} is not a directory", bad.display())),
        "{line}"
    );
    assert_eq!(
        out.stderr.matches(ERROR_PREFIX).count(),
        1,
        "{}",
        out.stderr
    );
    let records = qualify_records(&out_dir);
    assert_eq!(records.len(), 3);
    let r0 = &records["q-rank0"];
    assert_eq!(r0["verdict"], "error");
    assert!(
        r0["error"].as_str().unwrap().contains("rank 2 of 3"),
        "{r0}"
    );
    assert!(!target.join("rank0").exists(), "nothing ran");

    let spec2 = dir.path().join("two.toml");
    std::fs::write(
        &spec2,
        std::fs::read_to_string(&spec).unwrap().replace(
            &format!("targets = [\"{}\"]", target.display()),
            &format!(
                "targets = [\"{}\", \"{}\"]",
                target.display(),
                dir.path().display()
            ),
        ),
    )
    .unwrap();
    let (out, _) = outcome_within(
        &mut mpirun(argv!["qualify", "--spec", &spec2, "--out", &out_dir]),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("2 targets, but under a parallel launch each rank runs one target"),
        "{}",
        out.stderr
    );
}

/// Rank 2's file goes bad between two qualifications: its verification fails mid-test while
/// ranks 0 and 1 wait at a barrier; they are released at once, the job fails (exit 1) with
/// rank 2's wrong block in its record, and nobody hangs.
#[test]
fn a_verify_failure_on_rank_2_fails_qualify_without_a_hang() {
    require_mpi_build!();
    require_host_backend!();
    let dir = scratch();
    let target = dir.path().join("data");
    std::fs::create_dir(&target).unwrap();
    let spec = qualify_spec(dir.path(), &target, "max_verify_errors = 0\n");
    let out_dir = dir.path().join("out");
    mpirun_ok(argv![
        "qualify", "--spec", &spec, "--out", &out_dir, "--node", "a"
    ]);
    let bad = target.join("rank2/gdswap.0.dat");
    flip_byte(&bad, 3 * MIB + 100);
    let (out, took) = outcome_within(
        &mut mpirun(argv![
            "qualify", "--spec", &spec, "--out", &out_dir, "--node", "b"
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(took < Duration::from_secs(30), "took {took:?}: {out:?}");
    assert!(
        out.stdout.contains("rank 2: t verify_errors FAIL"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("verdict (3 ranks): FAIL"),
        "{}",
        out.stdout
    );
    let records = qualify_records(&out_dir);
    let r2 = &records["b-rank2"];
    assert_eq!(r2["verdict"], "fail");
    assert!(r2.to_string().contains(&bad.display().to_string()), "{r2}");
    assert_eq!(records["b-rank0"]["verdict"], "fail", "stopped by rank 2");
}

#[test]
fn a_bad_file_on_rank_2_fails_the_whole_run_with_its_error_within_seconds() {
    require_mpi_build!();
    require_host_backend!();
    let dir = scratch();
    let size = 8 * MIB;
    let args = || {
        argv![
            "run",
            "--op",
            "read",
            "--dir",
            dir.path(),
            "--size",
            size.to_string(),
            "--block-size",
            "256K",
            "--loops",
            "2",
            "--verify"
        ]
    };
    mpirun_ok(args());
    // Rank 2's file now holds other data in one granule: its verify fails after the loops,
    // while ranks 0 and 1 already wait for it at the last barrier.
    let bad = dir.path().join("rank2/gdswap.0.dat");
    flip_byte(&bad, 5 * MIB + 100);
    let (out, took) = outcome_within(&mut mpirun(args()), Duration::from_secs(60));
    assert_ne!(out.code, Some(0), "{out:?}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with(ERROR_PREFIX))
        .unwrap_or_else(|| panic!("no error line:\n{}", out.stderr));
    assert!(
        line.contains("rank 2 of 3")
            && line.contains("verify failed")
            && line.contains(&bad.display().to_string()),
        "{line}"
    );
    assert_eq!(
        out.stderr.matches(ERROR_PREFIX).count(),
        1,
        "only rank 2 reports an error:\n{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("host read:"),
        "no report from a failed run:\n{}",
        out.stdout
    );
    assert!(
        took < Duration::from_secs(30),
        "the run took {took:?} to fail: ranks hung"
    );
}

#[test]
fn three_ranks_compare_backends_with_one_merged_table() {
    require_mpi_build!();
    require_host_backend!();
    let dir = scratch();
    let json = dir.path().join("compare.json");
    let out = mpirun_ok(argv![
        "compare",
        "--backends",
        "host,posix",
        "--dir",
        dir.path(),
        "--size",
        "8M",
        "--block-size",
        "256K",
        "--rounds",
        "1",
        "--loops",
        "1",
        "--json",
        &json
    ]);
    assert_eq!(
        out.stdout.matches("compare read").count(),
        1,
        "one table, from rank 0:\n{}",
        out.stdout
    );
    assert_eq!(
        out.stderr.matches("note: 3 processes").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("fio"),
        "peers are left out:\n{}",
        out.stdout
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v.to_string().contains("posix"), "{v}");
    for rank in 0..RANKS {
        assert!(dir
            .path()
            .join(format!("rank{rank}/gdswap.0.dat"))
            .is_file());
    }
}

/// The pid of the gdswap process that is rank `rank` of a job working in `dir`.
fn rank_pid(rank: usize, dir: &Path) -> Option<u32> {
    let want_env = format!("OMPI_COMM_WORLD_RANK={rank}");
    let want_dir = dir.display().to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (Ok(cmd), Ok(env)) = (
            std::fs::read(e.path().join("cmdline")),
            std::fs::read(e.path().join("environ")),
        ) else {
            continue;
        };
        let has = |blob: &[u8], s: &str| blob.split(|&b| b == 0).any(|p| p == s.as_bytes());
        if has(&cmd, BIN) && has(&cmd, &want_dir) && has(&env, &want_env) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_rank_killed_mid_run_ends_the_job_within_seconds() {
    require_mpi_build!();
    require_host_backend!();
    let dir = scratch();
    // Enough loops to still be running when rank 2 is killed.
    let mut cmd = mpirun(argv![
        "run",
        "--op",
        "write",
        "--dir",
        dir.path(),
        "--size",
        "8M",
        "--block-size",
        "256K",
        "--loops",
        "100000",
        "--warmup",
        "0"
    ]);
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let pid = loop {
        if let Some(pid) = rank_pid(2, dir.path()) {
            break pid;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "rank 2 never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let the ranks get into their loops, then kill rank 2 outright.
    std::thread::sleep(Duration::from_secs(2));
    send_signal(pid as libc::pid_t, libc::SIGKILL);
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(30) {
            send_signal(child.id() as libc::pid_t, libc::SIGTERM);
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!("the job still ran 30 s after rank 2 was killed: the other ranks hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "a job with a killed rank succeeded");
    for rank in 0..RANKS {
        assert_eq!(
            rank_pid(rank, dir.path()),
            None,
            "rank {rank} outlived the job"
        );
    }
}

#[test]
fn a_build_without_mpi_refuses_to_run_under_a_launcher() {
    if cfg!(feature = "mpi") {
        eprintln!("note: skipping the launcher test: this build has MPI (it would start MPI)");
        return;
    }
    let dir = scratch();
    for (var, value) in [
        ("OMPI_COMM_WORLD_SIZE", "3"),
        ("PMI_SIZE", "2"),
        ("PMIX_RANK", "1"),
        ("SLURM_STEP_ID", "0"),
    ] {
        let mut cmd = gdswap(argv!["run", "--dir", dir.path(), "--size", "1M"]);
        cmd.env(var, value);
        if var == "SLURM_STEP_ID" {
            cmd.env("SLURM_NTASKS", "4");
        }
        let msg = outcome(&mut cmd).expect_error();
        assert!(
            msg.contains(&format!("({var}="))
                && msg.contains("built without MPI")
                && msg.contains("--features mpi"),
            "{var}: {msg}"
        );
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing was run"
    );
    // compare too; and one process of a launch (np 1) runs as today.
    let mut cmd = gdswap(argv!["compare", "--dir", dir.path(), "--size", "1M"]);
    cmd.env("OMPI_COMM_WORLD_SIZE", "2");
    assert!(outcome(&mut cmd)
        .expect_error()
        .contains("built without MPI"));
    let mut cmd = gdswap(argv![
        "run",
        "--op",
        "write",
        "--dir",
        dir.path(),
        "--size",
        "1M",
        "--loops",
        "1"
    ]);
    cmd.env("OMPI_COMM_WORLD_SIZE", "1").env("PMIX_RANK", "0");
    if host_unavailable().is_none() {
        outcome(&mut cmd).expect_ok();
    }
}
