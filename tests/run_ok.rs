//! Successful runs of the real binary on real files: both backends, both directions,
//! sequential and random order, several threads over per-thread files and over one shared
//! file, registered buffers, buffered I/O, and the JSON/CSV exports, with what lands on disk
//! checked byte by byte.

#[macro_use]
mod common;

use std::path::Path;

use common::*;

const SIZE: u64 = 4 * MIB;
const BS: u64 = 256 * KIB;
const LOOPS: u32 = 2;

/// Writes a file with `--verify`, checks the report and the bytes on disk, then reads it back
/// with `--verify`; sequential and random, with different seeds.
fn write_then_read(backend: &str) {
    for (random, seed) in [(false, 11u64), (true, 12u64)] {
        let dir = scratch();
        let f = dir.path().join("data");
        let json = dir.path().join("r.json");
        let mut extra = argv![
            "--file",
            &f,
            "--seed",
            seed.to_string(),
            "--verify",
            "--json",
            &json
        ];
        if random {
            extra.push("--random".into());
        }
        for op in ["write", "read"] {
            let out = ok(with(run_argv(backend, op, SIZE, BS, LOOPS), extra.clone()));
            let r = read_report(&json);
            assert_sane(&r, SIZE, LOOPS, 1);
            assert_eq!(r.params.backend.name(), backend);
            assert_eq!(r.params.workload.op.to_string(), op);
            assert_eq!(r.params.random, random);
            assert_eq!(r.params.seed, seed);
            assert_eq!(r.params.workload.target.kind(), "file");
            assert_eq!(r.params.workload.target.path(), f);
            assert!(r.params.verify && r.summary.verified && r.params.direct);
            assert_eq!(r.summary.requests, SIZE / BS * u64::from(LOOPS));
            assert_eq!(r.threads[0].path, f);
            assert_eq!(r.threads[0].file_offset, 0);
            let mode = if backend == "host" {
                "io_uring"
            } else {
                "pread/pwrite"
            };
            assert!(
                r.backend_mode.contains(mode) && r.backend_mode.contains("O_DIRECT"),
                "{}",
                r.backend_mode
            );
            assert!(r.dio_align_bytes.is_power_of_two() && r.dio_align_bytes >= 512);
            assert_eq!(r.destination, "host");
            // The human summary goes to stdout when no export takes it.
            let first = out.stdout.lines().next().unwrap_or_default();
            assert!(
                first.starts_with(&format!("{backend} {op}: 1 thread, bs 256KiB"))
                    && first.contains("verified"),
                "{first}"
            );
            assert_eq!(file_len(&f), SIZE, "after {op}");
            assert_pattern(&f, 0, SIZE, seed);
        }
    }
}

#[test]
fn host_writes_and_reads_sequential_and_random() {
    require_host_backend!();
    write_then_read("host");
}

#[test]
fn posix_writes_and_reads_sequential_and_random() {
    write_then_read("posix");
}

#[test]
fn host_queue_depths_one_and_many() {
    require_host_backend!();
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, SIZE, 3);
    for qd in ["1", "32"] {
        let json = dir.path().join(format!("qd{qd}.json"));
        ok(with(
            run_argv("host", "read", SIZE, 64 * KIB, 1),
            argv![
                "--file",
                &f,
                "--seed",
                "3",
                "--verify",
                "--queue-depth",
                qd,
                "--json",
                &json
            ],
        ));
        let r = read_report(&json);
        assert_sane(&r, SIZE, 1, 1);
        assert_eq!(r.params.workload.queue_depth.to_string(), qd);
        assert!(
            r.backend_mode.ends_with(&format!("qd {qd}")),
            "{}",
            r.backend_mode
        );
    }
}

/// `--threads 2 --dir`: one file per thread, each exactly its share, each starting at offset 0.
fn per_thread_files(backend: &str) {
    let dir = scratch();
    let d = dir.path().join("data");
    let json = dir.path().join("r.json");
    for op in ["write", "read"] {
        ok(with(
            run_argv(backend, op, SIZE, BS, LOOPS),
            argv![
                "--create-dir",
                "--dir",
                &d,
                "--threads",
                "2",
                "--seed",
                "5",
                "--verify",
                "--json",
                &json
            ],
        ));
        let r = read_report(&json);
        assert_sane(&r, SIZE, LOOPS, 2);
        assert_eq!(r.params.workload.target.kind(), "dir");
        assert_eq!(r.params.workload.target.path(), d);
        assert_eq!(dir_names(&d), ["gdswap.0.dat", "gdswap.1.dat"]);
        for (tid, t) in r.threads.iter().enumerate() {
            let p = thread_file(&d, tid);
            assert_eq!(t.path, p);
            assert_eq!(t.file_offset, 0);
            assert_eq!(t.bytes, SIZE / 2 * u64::from(LOOPS));
            assert_eq!(t.latency.count, SIZE / 2 / BS * u64::from(LOOPS));
            assert_eq!(file_len(&p), SIZE / 2, "{} after {op}", p.display());
            assert_pattern(&p, 0, SIZE / 2, 5 + tid as u64);
        }
    }
}

#[test]
fn host_threads_get_one_file_each_in_dir() {
    require_host_backend!();
    per_thread_files("host");
}

#[test]
fn posix_threads_get_one_file_each_in_dir() {
    per_thread_files("posix");
}

/// A read of a fresh `--dir` creates the per-thread files and fills them with the pattern
/// first; a second read reuses them as they are.
#[test]
fn read_of_fresh_dir_creates_pattern_files() {
    let dir = scratch();
    let d = dir.path().join("fresh");
    let args = with(
        run_argv("posix", "read", SIZE, BS, 1),
        argv![
            "--create-dir",
            "--dir",
            &d,
            "--threads",
            "2",
            "--random",
            "--seed",
            "77",
            "--verify"
        ],
    );
    ok(args.clone());
    assert_eq!(dir_names(&d), ["gdswap.0.dat", "gdswap.1.dat"]);
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before: Vec<_> = (0..2).map(|t| mtime(&thread_file(&d, t))).collect();
    for t in 0..2 {
        assert_eq!(file_len(&thread_file(&d, t)), SIZE / 2);
        assert_pattern(&thread_file(&d, t), 0, SIZE / 2, 77 + t as u64);
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(args);
    let after: Vec<_> = (0..2).map(|t| mtime(&thread_file(&d, t))).collect();
    assert_eq!(before, after, "files holding the pattern are not rewritten");
}

/// `--threads 2 --file`: contiguous, disjoint ranges of one file, the last thread taking the
/// remainder (5 MiB in 1 MiB blocks: 2 MiB and 3 MiB).
fn shared_file(backend: &str) {
    let dir = scratch();
    let f = dir.path().join("shared");
    let json = dir.path().join("r.json");
    let size = 5 * MIB;
    for (op, random) in [
        ("write", false),
        ("read", false),
        ("write", true),
        ("read", true),
    ] {
        let mut extra = argv![
            "--file",
            &f,
            "--threads",
            "2",
            "--seed",
            "9",
            "--verify",
            "--json",
            &json
        ];
        if random {
            extra.push("--random".into());
        }
        ok(with(run_argv(backend, op, size, MIB, 1), extra));
        let r = read_report(&json);
        assert_sane(&r, size, 1, 2);
        let t = &r.threads;
        assert_eq!((t[0].file_offset, t[0].bytes), (0, 3 * MIB));
        assert_eq!((t[1].file_offset, t[1].bytes), (3 * MIB, 2 * MIB));
        assert!(t.iter().all(|t| t.path == f));
        assert_eq!(dir_names(dir.path()), ["r.json", "shared"]);
        assert_eq!(file_len(&f), size);
        assert_pattern(&f, 0, size, 9);
    }
    // The layout does not depend on the thread count: one thread reads it all back.
    ok(with(
        run_argv(backend, "read", size, 512 * KIB, 1),
        argv!["--file", &f, "--seed", "9", "--verify"],
    ));
}

#[test]
fn host_threads_share_one_file_in_disjoint_ranges() {
    require_host_backend!();
    shared_file("host");
}

#[test]
fn posix_threads_share_one_file_in_disjoint_ranges() {
    shared_file("posix");
}

#[test]
fn host_fixed_buffers_write_and_read() {
    require_host_backend!();
    let dir = scratch();
    let d = dir.path().join("data");
    let json = dir.path().join("r.json");
    for op in ["write", "read"] {
        ok(with(
            run_argv("host", op, SIZE, BS, LOOPS),
            argv![
                "--create-dir",
                "--dir",
                &d,
                "--threads",
                "2",
                "--fixed-buffers",
                "--verify",
                "--seed",
                "21",
                "--json",
                &json
            ],
        ));
        let r = read_report(&json);
        assert_sane(&r, SIZE, LOOPS, 2);
        assert_eq!(r.params.fixed_buffers, gdswap::options::FixedBuffers::On);
        assert!(
            r.backend_mode.contains("fixed buffers+files"),
            "{}",
            r.backend_mode
        );
        for t in 0..2 {
            assert_eq!(file_len(&thread_file(&d, t)), SIZE / 2);
            assert_pattern(&thread_file(&d, t), 0, SIZE / 2, 21 + t as u64);
        }
    }
}

/// The host backend registers its buffers by default (`--fixed-buffers auto`) where the kernel
/// lets it (root, or an RLIMIT_MEMLOCK that holds them; a refusal is tested unprivileged in
/// sandbox_errors), `off` never does, and `on` is also spelled `--fixed-buffers=on`.
#[test]
fn host_registers_its_buffers_by_default_and_off_does_not() {
    require_host_backend!();
    let dir = scratch();
    let f = dir.path().join("data");
    let json = dir.path().join("r.json");
    let lockable = {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into `lim`, which lives across the call.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
        assert_eq!(rc, 0);
        // The kernel does not charge a process with CAP_IPC_LOCK (root's, outside a container
        // that drops it).
        gdswap::io::sys::has_cap_ipc_lock() || lim.rlim_cur >= SIZE
    };
    for (extra, registered) in [
        (argv![], lockable),
        (argv!["--fixed-buffers", "off"], false),
        (argv!["--fixed-buffers=on"], true),
    ] {
        for op in ["write", "read"] {
            if extra.is_empty() && !lockable {
                // Nothing to register here; the fallback is sandbox_errors' test.
                continue;
            }
            ok(with(
                run_argv("host", op, SIZE, BS, LOOPS),
                with(
                    argv!["--file", &f, "--json", &json, "--verify"],
                    extra.clone(),
                ),
            ));
            let r = read_report(&json);
            assert_sane(&r, SIZE, LOOPS, 1);
            assert_eq!(
                r.backend_mode.contains("fixed buffers+files"),
                registered,
                "{extra:?} {op}: {}",
                r.backend_mode
            );
            assert!(
                !r.backend_mode.contains("not registered"),
                "{}",
                r.backend_mode
            );
        }
    }
}

/// `--buffered` goes through the page cache: no alignment rule, so even a 1000-byte block
/// size works, and the report says what was measured.
fn buffered(backend: &str) {
    let dir = scratch();
    let f = dir.path().join("data");
    let json = dir.path().join("r.json");
    for (size, bs) in [(SIZE, BS), (100_000, 1000)] {
        for op in ["write", "read"] {
            ok(with(
                run_argv(backend, op, size, bs, 1),
                argv![
                    "--file",
                    &f,
                    "--buffered",
                    "--verify",
                    "--seed",
                    "4",
                    "--json",
                    &json
                ],
            ));
            let r = read_report(&json);
            assert_sane(&r, size, 1, 1);
            assert!(!r.params.direct);
            assert_eq!(r.dio_align_bytes, 1);
            assert_eq!(r.summary.requests, size.div_ceil(bs));
            assert!(r.backend_mode.contains("buffered"), "{}", r.backend_mode);
            assert!(r.warnings.iter().any(|w| w.code == "buffered-io"));
            assert_eq!(file_len(&f), size);
            assert_pattern(&f, 0, size, 4);
        }
    }
}

#[test]
fn host_buffered_write_and_read() {
    require_host_backend!();
    buffered("host");
}

#[test]
fn posix_buffered_write_and_read() {
    buffered("posix");
}

/// A write truncates whatever was longer before: nothing stale remains past `--size`, in a
/// shared file or in per-thread files; a later verified read agrees.
fn write_leaves_exact_length(backend: &str) {
    let dir = scratch();
    let f = dir.path().join("data");
    fill_file(&f, 3 * SIZE, 0xab);
    ok(with(
        run_argv(backend, "write", SIZE, BS, 1),
        argv!["--file", &f, "--verify", "--seed", "31"],
    ));
    assert_eq!(file_len(&f), SIZE);
    assert_pattern(&f, 0, SIZE, 31);
    ok(with(
        run_argv(backend, "read", SIZE, BS, 1),
        argv!["--file", &f, "--verify", "--seed", "31"],
    ));

    let d = dir.path().join("dir");
    std::fs::create_dir(&d).unwrap();
    for t in 0..2 {
        fill_file(&thread_file(&d, t), 3 * SIZE, 0xcd);
    }
    ok(with(
        run_argv(backend, "write", SIZE, BS, 1),
        argv![
            "--create-dir",
            "--dir",
            &d,
            "--threads",
            "2",
            "--verify",
            "--seed",
            "32"
        ],
    ));
    for t in 0..2 {
        assert_eq!(file_len(&thread_file(&d, t)), SIZE / 2);
        assert_pattern(&thread_file(&d, t), 0, SIZE / 2, 32 + t as u64);
    }
    ok(with(
        run_argv(backend, "read", SIZE, BS, 1),
        argv![
            "--create-dir",
            "--dir",
            &d,
            "--threads",
            "2",
            "--verify",
            "--seed",
            "32"
        ],
    ));
}

#[test]
fn host_write_leaves_exact_length() {
    require_host_backend!();
    write_leaves_exact_length("host");
}

#[test]
fn posix_write_leaves_exact_length() {
    write_leaves_exact_length("posix");
}

#[test]
fn json_and_csv_exports_to_files_agree() {
    let dir = scratch();
    let d = dir.path().join("data");
    let json = dir.path().join("r.json");
    let csv_path = dir.path().join("r.csv");
    let out = ok(with(
        run_argv("posix", "write", SIZE, BS, LOOPS),
        argv![
            "--create-dir",
            "--dir",
            &d,
            "--threads",
            "2",
            "--verify",
            "--json",
            &json,
            "--csv",
            &csv_path
        ],
    ));
    assert!(
        out.stdout.starts_with("posix write: 2 threads"),
        "{}",
        out.stdout
    );
    let r = read_report(&json);
    assert_sane(&r, SIZE, LOOPS, 2);

    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(text.lines().count(), 2, "header and one row:\n{text}");
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let headers = rd.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(headers.len(), rows[0].len());
    let col = |name: &str| -> String {
        let i = headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no CSV column {name}: {headers:?}"));
        rows[0][i].to_string()
    };
    assert_eq!(col("schema"), "gdswap.run.v1");
    assert_eq!(col("backend"), "posix");
    assert_eq!(col("op"), "write");
    assert_eq!(col("threads"), "2");
    assert_eq!(col("size_bytes"), SIZE.to_string());
    assert_eq!(col("bytes"), (SIZE * u64::from(LOOPS)).to_string());
    assert_eq!(col("verified"), "true");
    assert_eq!(col("finished_at"), r.finished_at);
    // Equal up to the last bit or so: serde_json (without its float_roundtrip feature) may
    // parse a float one ulp off the value that was printed.
    let num = |name: &str| col(name).parse::<f64>().unwrap();
    let same = |a: f64, b: f64| (a - b).abs() <= a.abs().max(b.abs()) * 1e-12;
    for (name, v) in [
        ("bandwidth_gibps", r.summary.bandwidth_gibps),
        ("lat_p99_us", r.summary.latency.p99_us),
        ("iops", r.summary.iops),
        ("task_time_s", r.summary.task_time_s),
    ] {
        assert!(same(num(name), v), "{name}: CSV {} vs JSON {v}", num(name));
    }
    assert!(num("bandwidth_gibps") > 0.0);
}

#[test]
fn json_to_stdout_leaves_stdout_pure_json() {
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, SIZE, 8);
    let out = ok(with(
        run_argv("posix", "read", SIZE, BS, LOOPS),
        argv!["--file", &f, "--seed", "8", "--verify", "--json", "-"],
    ));
    let r = report_from_json(&out.stdout);
    assert_sane(&r, SIZE, LOOPS, 1);
    assert_eq!(r.params.workload.op.to_string(), "read");
    // The human summary moved to stderr.
    assert!(
        out.stderr.starts_with("posix read: 1 thread"),
        "{}",
        out.stderr
    );
}

#[test]
fn csv_to_stdout_is_a_header_and_one_row() {
    let dir = scratch();
    let f = dir.path().join("data");
    make_data_file(&f, SIZE, 8);
    let out = ok(with(
        run_argv("posix", "read", SIZE, BS, LOOPS),
        argv!["--file", &f, "--seed", "8", "--verify", "--csv", "-"],
    ));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[0].starts_with("schema,finished_at,backend,op,threads,block_size_bytes"));
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(&row[..5], ["gdswap.run.v1", row[1], "posix", "read", "1"]);
    assert!(
        out.stderr.starts_with("posix read: 1 thread"),
        "{}",
        out.stderr
    );
    let mut rd = csv::Reader::from_reader(out.stdout.as_bytes());
    let headers = rd.headers().unwrap().clone();
    let rec = rd.records().next().unwrap().unwrap();
    let i = headers.iter().position(|h| h == "bytes").unwrap();
    assert_eq!(rec[i], (SIZE * u64::from(LOOPS)).to_string());
}

#[test]
fn backends_lists_both() {
    let out = ok(argv!["backends"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].starts_with("host "));
    assert!(lines[1].starts_with("posix ") && lines[1].ends_with(" available"));
    // Available or not depending on the machine; tests/bounce_*.rs check both cases.
    assert!(lines[2].starts_with("bounce "), "{}", out.stdout);
    assert!(lines[3].starts_with("gds "), "{}", out.stdout);
}

/// With neither --file nor --dir, data goes to $GDSWAP_DATA_DIR, else ./gdswap-data.
#[test]
fn default_data_dir() {
    let dir = scratch();
    let from_env = dir.path().join("env-data");
    let args = run_argv("posix", "read", MIB, 64 * KIB, 1);
    let mut cmd = gdswap(with(args.clone(), argv!["--verify"]));
    cmd.env("GDSWAP_DATA_DIR", &from_env);
    outcome(&mut cmd).expect_ok();
    assert_eq!(dir_names(&from_env), ["gdswap.0.dat"]);
    assert_pattern(&thread_file(&from_env, 0), 0, MIB, 0x5eed);

    let mut cmd = gdswap(with(args, argv!["--verify"]));
    cmd.current_dir(dir.path());
    outcome(&mut cmd).expect_ok();
    let local = dir.path().join("gdswap-data");
    assert_eq!(dir_names(&local), ["gdswap.0.dat"]);
    assert_pattern(&thread_file(&local, 0), 0, MIB, 0x5eed);
}

/// `--buffer ring`: reads land in (and writes leave from) queue depth x block size buffers
/// reused as requests complete (fio's footprint), every request checked and counted; the mode and the params say so, and
/// the buffer is that small (the memory check lets a range far bigger than the ring through).
#[test]
fn host_ring_buffers_read_the_whole_range() {
    require_host_backend!();
    let dir = scratch();
    let f = dir.path().join("data");
    let json = dir.path().join("r.json");
    let size = 8 * MIB;
    ok(with(
        run_argv("host", "write", size, 256 * KIB, 1),
        argv!["--file", &f, "--verify"],
    ));
    ok(with(
        run_argv("host", "read", size, 256 * KIB, 2),
        argv![
            "--file",
            &f,
            "--buffer",
            "ring",
            "--queue-depth",
            "4",
            "--json",
            &json
        ],
    ));
    let r = read_report(&json);
    assert_sane(&r, size, 2, 1);
    assert_eq!(r.params.buffer, gdswap::options::BufferMode::Ring);
    assert!(
        r.backend_mode.contains("ring of 4 reused 256KiB buffers"),
        "{}",
        r.backend_mode
    );
    assert_eq!(r.summary.requests, 2 * size / (256 * KIB));
    // Writes from a ring too (fio's footprint for writes): every byte of the range written,
    // and the file then holds the ring's bytes repeated, which a verifying read reports.
    ok(with(
        run_argv("host", "write", size, 256 * KIB, 1),
        argv![
            "--file",
            &f,
            "--buffer",
            "ring",
            "--queue-depth",
            "4",
            "--json",
            &json
        ],
    ));
    let r = read_report(&json);
    assert_sane(&r, size, 1, 1);
    assert!(
        r.backend_mode.contains("ring of 4 reused 256KiB buffers"),
        "{}",
        r.backend_mode
    );
    assert_eq!(r.summary.requests, size / (256 * KIB));
    assert_eq!(std::fs::metadata(&f).unwrap().len(), size);
    let msg = fail(with(
        run_argv("host", "read", size, 256 * KIB, 1),
        argv!["--file", &f, "--verify"],
    ));
    assert!(msg.contains("offset"), "{msg}");
    // Refused where it cannot hold its promise.
    let msg = fail(with(
        run_argv("host", "read", size, 256 * KIB, 1),
        argv!["--file", &f, "--buffer", "ring", "--verify"],
    ));
    assert!(
        msg.starts_with("--buffer: ring: --verify needs --buffer full"),
        "{msg}"
    );
}

/// Every ring knob reaches the engine (the JSON's backend_mode names what ran and params.ring
/// what was asked), and every combination moves the right bytes: each writes the file and
/// reads it back with --verify.
#[test]
fn host_ring_knobs_each_verified() {
    require_host_backend!();
    let dir = scratch();
    let f = dir.path().join("data");
    let json = dir.path().join("r.json");
    let mut combos: Vec<(&str, &str, &str, &str, bool, bool)> = Vec::new();
    // setup x defaults
    for setup in ["auto", "none", "coop", "defer", "sqpoll"] {
        combos.push((setup, "batch", "1", "read", false, false));
    }
    // submission x wait x opcode x registered files
    for submit in ["each", "batch"] {
        for wait in ["1", "3", "all"] {
            for (opcode, files) in [("read", false), ("readv", true), ("read", true)] {
                combos.push(("auto", submit, wait, opcode, files, false));
            }
        }
        combos.push(("auto", submit, "1", "read", false, true));
    }
    for (setup, submit, wait, opcode, files, fixed) in combos {
        for op in ["write", "read"] {
            let mut extra = argv![
                "--file",
                &f,
                "--queue-depth",
                "4",
                "--verify",
                "--seed",
                "5",
                "--ring-setup",
                setup,
                "--ring-submit",
                submit,
                "--ring-wait",
                wait,
                "--ring-opcode",
                opcode,
                "--json",
                &json
            ];
            if files {
                extra.push("--register-files".into());
            }
            // Without --fixed-buffers the default (auto) would register them too.
            extra.extend(argv!["--fixed-buffers", if fixed { "on" } else { "off" }]);
            let what = format!("{setup} {submit} {wait} {opcode} files {files} fixed {fixed} {op}");
            let out = gdswap(with(run_argv("host", op, SIZE, BS, 1), extra))
                .output()
                .unwrap();
            if setup == "sqpoll" && !out.status.success() {
                // SQPOLL may be refused (privileges, seccomp): then cleanly, naming the flag.
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.starts_with("gdswap: error: --ring-setup: sqpoll: "),
                    "{err}"
                );
                assert_eq!(err.lines().count(), 1, "{err}");
                continue;
            }
            assert!(out.status.success(), "{what}: {out:?}");
            let r = read_report(&json);
            assert_sane(&r, SIZE, 1, 1);
            assert!(r.summary.verified, "{what}");
            let ring = r.params.ring.expect("host runs record their ring options");
            assert_eq!(ring.submit.to_string(), submit, "{what}");
            assert_eq!(ring.wait.to_string(), wait, "{what}");
            assert_eq!(ring.register_files, files, "{what}");
            let flags = match setup {
                "none" => "none",
                "coop" => "coop_taskrun",
                "sqpoll" => "sqpoll",
                // auto's first choice on a 6.1+ kernel (the tests run on one).
                _ => "defer_taskrun+single_issuer",
            };
            let op_name = match (fixed, opcode) {
                (true, _) => "read_fixed/write_fixed",
                (false, "readv") => "readv/writev",
                _ => "read/write",
            };
            let expected =
                format!("ring: {flags}, submit {submit}, wait {wait}, opcodes {op_name}");
            assert!(
                r.backend_mode.contains(&expected),
                "{what}: {}",
                r.backend_mode
            );
            let registered = if fixed {
                "fixed buffers+files"
            } else if files {
                "registered files"
            } else {
                "unregistered buffers, qd"
            };
            assert!(
                r.backend_mode.contains(registered),
                "{what}: {}",
                r.backend_mode
            );
        }
    }
}

/// `gdswap run ... | head -1` where the reader is gone before gdswap prints: no panic message
/// (println! fails with EPIPE, as Rust ignores SIGPIPE), the status a shell gives a process
/// SIGPIPE ended (141), and nothing of the run left behind but the data file it wrote.
#[test]
fn output_into_a_closed_pipe_ends_quietly_with_141() {
    let d = scratch();
    let f = d.path().join("p.dat");
    let mut cmd = gdswap(argv![
        "run",
        "--backend",
        "posix",
        "--op",
        "write",
        "--file",
        &f,
        "--size",
        "4M",
        "--loops",
        "3"
    ]);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The read end goes before the run has printed anything (it prints when the loops end).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("p.dat")]);
}
