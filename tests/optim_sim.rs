//! `gdswap optim-sim` on a small model: both modes, the table, and the bit-for-bit check.

#[macro_use]
mod common;
mod cufile_fake;
mod cufile_wheel;

use common::*;

#[test]
fn small_run_prints_both_modes_bit_exact() {
    let dir = scratch();
    let out = ok(argv![
        "optim-sim",
        "--dir",
        dir.path(),
        "--params",
        "300K",
        "--sub-group-size",
        "64K",
        "--steps",
        "2",
        "--backend",
        "posix",
        "--grads",
        "--keep",
    ]);
    let s = &out.stdout;
    assert!(s.contains("300000 parameters in 5 sub-groups"), "{s}");
    assert!(s.contains("fp16 gradients read each step"), "{s}");
    for mode in ["serial", "pipelined"] {
        let line = s
            .lines()
            .find(|l| l.starts_with(mode))
            .unwrap_or_else(|| panic!("no {mode} row:\n{s}"));
        assert!(line.trim_end().ends_with("yes"), "{line}");
        assert!(line.contains("GB/s") && line.contains("ms"), "{line}");
    }
    assert!(s.contains("overlap efficiency"), "{s}");
    // --keep: the stores stay.
    for mode in ["serial", "pipelined", "io-only"] {
        assert!(
            dir.path().join(mode).join("manifest.json").exists(),
            "{mode}"
        );
    }
}

#[test]
fn bad_counts_and_buffers_are_usage_errors() {
    let dir = scratch();
    let o = outcome(&mut gdswap(argv![
        "optim-sim",
        "--dir",
        dir.path(),
        "--params",
        "2X"
    ]));
    assert_eq!(o.code, Some(2), "{o:?}");
    assert!(o.stderr.contains("unknown suffix 'X'"), "{o:?}");
    let err = fail(argv![
        "optim-sim",
        "--dir",
        dir.path(),
        "--params",
        "10K",
        "--buffers",
        "1"
    ]);
    assert!(err.contains("--buffers"), "{err}");
}

/// `gdswap optim-sim` on a small model (`params` in sub-groups of 64K, 2 steps) through
/// `backend`, against the fake libcuda; `dir` holds the stores.
fn sim_on_fake_cuda(dir: &std::path::Path, params: &str, backend: &str) -> std::process::Command {
    let mut cmd = gdswap(argv![
        "optim-sim",
        "--dir",
        dir,
        "--params",
        params,
        "--sub-group-size",
        "64K",
        "--steps",
        "2",
        "--backend",
        backend,
        "--io-threads",
        "2",
    ]);
    common::cuda::with_fake_cuda(&mut cmd);
    cmd
}

/// The same store API through the bounce backend (device staging, pinned chunks), against
/// the fake libcuda: both modes bit-exact, device memory reported.
#[test]
fn bounce_backend_through_the_fake_libcuda() {
    let dir = scratch();
    let out = outcome(&mut sim_on_fake_cuda(dir.path(), "200K", "bounce")).expect_ok();
    let s = &out.stdout;
    assert!(s.contains("backend bounce"), "{s}");
    for mode in ["serial", "pipelined"] {
        let line = s
            .lines()
            .find(|l| l.starts_with(mode))
            .unwrap_or_else(|| panic!("no {mode} row:\n{s}"));
        assert!(line.trim_end().ends_with("yes"), "{line}");
        // Peak device memory: at least one sub-group's three tensors (0.77 MB).
        let cols: Vec<&str> = line.split_whitespace().collect();
        let device_mb: f64 = cols[cols.len() - 3].parse().unwrap();
        assert!(device_mb >= 0.7, "{line}");
    }
}

/// The gds backend in the store (host tensors staged in device memory, cuFile I/O), against
/// the fake libcuda and the fake libcufile: both modes bit-exact.
#[test]
fn gds_backend_through_the_fakes() {
    let run = |vars: &[(&str, &str)]| {
        let dir = scratch();
        let mut cmd = sim_on_fake_cuda(dir.path(), "150K", "gds");
        cmd.env("GDSWAP_CUFILE_PATH", &cufile_fake::fakes().cufile_full)
            .env("FAKE_CUFILE_QUIET", "1");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let s = outcome(&mut cmd).expect_ok().stdout;
        assert!(s.contains("backend gds"), "{s}");
        for mode in ["serial", "pipelined"] {
            let line = s
                .lines()
                .find(|l| l.starts_with(mode))
                .unwrap_or_else(|| panic!("no {mode} row:\n{s}"));
            assert!(line.trim_end().ends_with("yes"), "{line}");
        }
        s
    };
    // cuFile 1.15+ statistics (the full fake reports 1.20) count every I/O as nvidia-fs...
    let s = run(&[]);
    assert!(
        s.contains("pipelined gds path: gpudirect (nvidia-fs)"),
        "{s}"
    );
    // ... or, when the fake counts them as POSIX I/O, compat mode.
    let s = run(&[("FAKE_CUFILE_STATS_POSIX", "1")]);
    assert!(
        s.contains("pipelined gds path: compat (posix via host bounce)"),
        "{s}"
    );
}

#[test]
fn io_threads_out_of_range_is_an_error() {
    let dir = scratch();
    let err = fail(argv![
        "optim-sim",
        "--dir",
        dir.path(),
        "--params",
        "10K",
        "--io-threads",
        "0"
    ]);
    assert!(
        err.contains("--io-threads") && err.contains("1..=64"),
        "{err}"
    );
}

/// A device copy that fails mid-run (the fake's sticky illegal-address error) ends the run
/// with one line naming the tensor and the CUDA call, not a hang or a panic.
#[test]
fn a_failing_device_copy_is_one_line_naming_the_tensor() {
    let dir = scratch();
    let mut cmd = sim_on_fake_cuda(dir.path(), "200K", "bounce");
    cmd.env("FAKE_CUDA_FAIL_COPY_AFTER_BYTES", "3000000");
    // (The header line on stdout comes before the run; the error is the one stderr line.)
    let out = outcome(&mut cmd);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("gdswap: error: ")
            && lines[0].contains("of tensor 'g")
            && lines[0].contains("CUDA_ERROR_ILLEGAL_ADDRESS (700)"),
        "{}",
        lines[0]
    );
}

// ---- what optim-sim deletes, and what it checks first ----

fn small_sim(dir: &std::path::Path, more: Vec<std::ffi::OsString>) -> std::process::Command {
    gdswap(with(
        argv![
            "optim-sim",
            "--dir",
            dir,
            "--params",
            "20K",
            "--sub-group-size",
            "8K",
            "--steps",
            "1",
            "--backend",
            "posix",
            "--io-threads",
            "2",
        ],
        more,
    ))
}

/// Without --keep the stores are removed at the end (and DIR itself, which the run made);
/// with --keep they stay, and the next run replaces them.
#[test]
fn stores_are_removed_at_the_end_unless_kept() {
    let base = scratch();
    let dir = base.path().join("sim");
    outcome(&mut small_sim(&dir, argv![])).expect_ok();
    assert!(!dir.exists(), "left behind: {:?}", common::dir_names(&dir));
    // An existing DIR is not removed, only the stores in it.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("mine.txt"), b"mine").unwrap();
    outcome(&mut small_sim(&dir, argv!["--mode", "serial"])).expect_ok();
    assert_eq!(common::dir_names(&dir), ["mine.txt"]);
    outcome(&mut small_sim(&dir, argv!["--keep"])).expect_ok();
    assert_eq!(
        common::dir_names(&dir),
        ["io-only", "mine.txt", "pipelined", "serial"]
    );
    for m in ["serial", "pipelined", "io-only"] {
        assert_eq!(
            common::dir_names(&dir.join(m)),
            ["data.bin", "lock", "manifest.json"]
        );
    }
    // A kept store is replaced by the next run, and removed at its end.
    outcome(&mut small_sim(&dir, argv![])).expect_ok();
    assert_eq!(common::dir_names(&dir), ["mine.txt"]);
}

/// A second optim-sim on the same --dir while a store there is open (here held by this
/// test, with a tensor in it) fails without deleting anything.
#[test]
fn a_store_in_use_is_refused_not_deleted() {
    use gdswap::swap::{HostTensor, SwapOptions, SwapStore};
    let dir = scratch();
    let serial = dir.path().join("serial");
    let store = SwapStore::open(
        &serial,
        SwapOptions {
            backend: gdswap::backend::BackendId::Posix,
            ..SwapOptions::default()
        },
    )
    .unwrap();
    let t = HostTensor::from_slice(gdswap::swap::DType::F32, &[1.0f32, 2.0, 3.0]).unwrap();
    store.swap_out("live", &t).unwrap().wait().unwrap();
    // (The header on stdout comes first; the error is the one line on stderr.)
    let out = outcome(&mut small_sim(dir.path(), argv!["--mode", "serial"]));
    assert_eq!(out.code, Some(1), "{out:?}");
    let err = out.stderr.trim_end();
    assert!(
        !err.contains('\n') && err.contains("already open") && err.contains("serial"),
        "{err}"
    );
    let mut back = HostTensor::zeros(gdswap::swap::DType::F32, &[3]).unwrap();
    store.swap_in("live", &mut back).unwrap().wait().unwrap();
    assert_eq!(back.as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0]);
    drop(store);
    assert_eq!(
        common::dir_names(&serial),
        ["data.bin", "lock", "manifest.json"]
    );
}

/// A DIR/<mode> that is not a gdswap store is refused untouched, naming it.
#[test]
fn a_directory_that_is_not_a_store_is_refused_untouched() {
    let dir = scratch();
    let serial = dir.path().join("serial");
    std::fs::create_dir(&serial).unwrap();
    std::fs::write(serial.join("thesis.tex"), b"years of work").unwrap();
    std::fs::write(serial.join("data.bin"), b"not a store's").unwrap();
    let err = outcome(&mut small_sim(dir.path(), argv!["--mode", "serial"])).expect_error();
    assert!(
        err.contains("--dir")
            && err.contains(&*serial.to_string_lossy())
            && err.contains("not a gdswap swap store")
            && err.contains("thesis.tex"),
        "{err}"
    );
    assert_eq!(common::dir_names(&serial), ["data.bin", "thesis.tex"]);
    assert_eq!(
        std::fs::read(serial.join("thesis.tex")).unwrap(),
        b"years of work"
    );
}

/// Huge counts are one line naming the flag, exit 1, before anything is made: the state
/// size overflows 64 bits, or the disk (and memory) check refuses it up front (they used to
/// wrap and end in "memory allocation failed", exit 134).
#[test]
fn huge_counts_are_refused_up_front() {
    let base = scratch();
    let dir = base.path().join("sim");
    let err = fail(argv!["optim-sim", "--dir", &dir, "--params", "99999T"]);
    assert!(
        err.starts_with("--params: 99999000000000000 parameters need up to 2.40 EB on disk")
            && err.contains(&format!("--dir {} has", dir.display())),
        "{err}"
    );
    let err = fail(argv![
        "optim-sim",
        "--dir",
        &dir,
        "--params",
        "18446744073709551615"
    ]);
    assert!(
        err.starts_with("--params: ") && err.contains("does not fit in 64 bits"),
        "{err}"
    );
    let err = fail(argv![
        "optim-sim",
        "--dir",
        &dir,
        "--params",
        "5T",
        "--sub-group-size",
        "5T"
    ]);
    assert!(
        err.starts_with("--sub-group-size: optim-sim needs about") && err.contains("host memory"),
        "{err}"
    );
    assert!(!dir.exists());
}
