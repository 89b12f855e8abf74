//! `gdswap run --numa auto|off|N`: where the worker threads and their buffers go, decided
//! from fixture sysfs trees (GDSWAP_SYSFS_ROOT: one NUMA node, two, a GPU on each) and this
//! machine's own sysfs, shown in the human output and the JSON, and applied (a node whose
//! CPU does not exist fails the run, saying so).

#[macro_use]
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::cuda::with_fake_cuda;
use common::*;
use serde_json::Value;

/// The CPUs this process may run on, as the kernel lists them (`0-1`).
fn allowed_cpus() -> Vec<usize> {
    let list = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    gdswap::topology::parse_cpulist(&list).unwrap()
}

/// A fixture: NUMA nodes `nodes`, the fake's GPU 0 (0000:18:00.0) and GPU 1 (0000:29:00.0) on
/// `gpu_nodes`, the drive holding `data` on `drive_node`.
fn tree(root: &Path, data: &Path, nodes: &[(u32, &str)], gpu_nodes: [i64; 2], drive_node: i64) {
    for (n, cpus) in nodes {
        common::sysfs::node(root, *n, cpus);
    }
    let link = ("16.0 GT/s", 16, "16.0 GT/s", 16);
    common::sysfs::pci(root, "0000:18:00.0", gpu_nodes[0], link);
    common::sysfs::pci(root, "0000:29:00.0", gpu_nodes[1], link);
    common::sysfs::pci(root, "0000:5e:00.0", drive_node, link);
    let dev = std::fs::metadata(data).unwrap().dev();
    common::sysfs::drive(
        root,
        "0000:5e:00.0",
        "nvme0n1",
        libc::major(dev),
        libc::minor(dev),
    );
}

/// `gdswap run` (host backend unless `extra` says otherwise) on `dir` with JSON on stdout.
fn run(dir: &Path, sysfs: Option<&Path>, extra: Vec<std::ffi::OsString>) -> Outcome {
    let mut cmd = gdswap(with(
        with(
            run_argv("host", "write", MIB, 256 * KIB, 1),
            argv!["--dir", dir],
        ),
        extra,
    ));
    with_fake_cuda(&mut cmd).env("FAKE_CUDA_DEVICES", "2");
    if let Some(s) = sysfs {
        cmd.env("GDSWAP_SYSFS_ROOT", s);
    }
    outcome(&mut cmd)
}

fn numa_of(out: &Outcome) -> Value {
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    v["numa"].clone()
}

#[test]
fn one_node_auto_binds_nothing_and_says_so() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let d = scratch();
    let sysfs = d.path().join("sysfs");
    tree(&sysfs, d.path(), &[(0, "0-1")], [0, 0], 0);
    let out = run(d.path(), Some(&sysfs), argv![]).expect_ok();
    assert!(
        out.stdout
            .contains("\nnuma: not bound: one NUMA node, nothing to choose\n"),
        "{}",
        out.stdout
    );
    let out = run(d.path(), Some(&sysfs), argv!["--json", "-"]).expect_ok();
    assert_eq!(
        numa_of(&out),
        serde_json::json!({"node": null, "reason": "one NUMA node, nothing to choose"})
    );
    let out = run(
        d.path(),
        Some(&sysfs),
        argv!["--numa", "off", "--json", "-"],
    )
    .expect_ok();
    assert_eq!(numa_of(&out)["reason"], "NUMA placement off");
}

#[test]
fn two_nodes_auto_binds_to_the_drives_node_or_the_gpus() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let d = scratch();
    let sysfs = d.path().join("sysfs");
    let allowed = allowed_cpus();
    let last = *allowed.last().unwrap();
    // The drive and GPU 1 on node 0 (which this machine has, so memory can bind to it) with
    // only this process's last CPU; GPU 0 on node 1, whose CPU does not exist.
    tree(
        &sysfs,
        d.path(),
        &[(0, &last.to_string()), (1, "1000")],
        [1, 0],
        0,
    );
    let out = run(d.path(), Some(&sysfs), argv!["--json", "-"]).expect_ok();
    assert_eq!(
        numa_of(&out),
        serde_json::json!({"node": 0, "cpus": [last], "reason": "the drive's"})
    );
    let out = run(d.path(), Some(&sysfs), argv![]).expect_ok();
    let line = format!(
        "\nnuma: NUMA node 0 (the drive's): threads on CPUs {last}, memory bound to node 0\n"
    );
    assert!(out.stdout.contains(&line), "{}", out.stdout);

    // A GPU backend follows its GPU, not the drive.
    let bounce = |gpu: &str| {
        let mut cmd = gdswap(with(
            run_argv("bounce", "read", MIB, 256 * KIB, 1),
            argv!["--dir", d.path(), "--gpu", gpu, "--verify", "--json", "-"],
        ));
        with_fake_cuda(&mut cmd)
            .env("FAKE_CUDA_DEVICES", "2")
            .env("GDSWAP_SYSFS_ROOT", &sysfs);
        outcome(&mut cmd)
    };
    let out = bounce("1").expect_ok();
    assert_eq!(
        numa_of(&out),
        serde_json::json!({"node": 0, "cpus": [last], "reason": "GPU 1's"})
    );
    // GPU 0's node 1 lists only CPU 1000, which this process may not use: not bound, why.
    let out = bounce("0").expect_ok();
    let n = numa_of(&out);
    assert_eq!(n["node"], Value::Null, "{n}");
    assert!(
        n["reason"]
            .as_str()
            .unwrap()
            .starts_with("none of NUMA node 1's CPUs (1000) is one this process may run on"),
        "{n}"
    );

    // The binding is applied: --numa 1 asks for node 1, whose only CPU is not ours.
    let out = run(d.path(), Some(&sysfs), argv!["--numa", "1"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("--numa: none of NUMA node 1's CPUs (1000)"),
        "{}",
        out.stderr
    );
    let out = run(d.path(), Some(&sysfs), argv!["--numa", "7"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("--numa: node 7 is not one of this machine's NUMA nodes (0, 1)"),
        "{}",
        out.stderr
    );
    let out = run(d.path(), Some(&sysfs), argv!["--numa", "near"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("`near` is not auto, off or a NUMA node"),
        "{}",
        out.stderr
    );
}

/// This machine's own sysfs: `--numa N` binds to node N's CPUs, all that this process may
/// use (the unit test `numa::tests::binding_a_thread_on_this_machine_gives_the_nodes_cpulist`
/// checks a bound thread's affinity itself).
#[test]
fn an_explicit_node_of_this_machine() {
    if let Some(why) = host_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let root = Path::new("/sys");
    let Some(&first) = gdswap::topology::numa_nodes(root).first() else {
        eprintln!("skipped: sysfs lists no NUMA nodes");
        return;
    };
    let allowed = allowed_cpus();
    let want: Vec<usize> = gdswap::topology::node_cpus(root, first)
        .unwrap()
        .into_iter()
        .filter(|c| allowed.contains(c))
        .collect();
    let d = scratch();
    let out = run(
        d.path(),
        None,
        argv!["--numa", first.to_string(), "--json", "-"],
    )
    .expect_ok();
    assert_eq!(
        numa_of(&out),
        serde_json::json!({"node": first, "cpus": want, "reason": "asked for"})
    );
}
