//! `gdswap check`'s NUMA and PCIe rows, from fixture sysfs trees (GDSWAP_SYSFS_ROOT) and the
//! fake libcuda's two GPUs (0000:18:00.0 and 0000:29:00.0): one NUMA node, two, and a GPU on
//! another socket than the drive.

#[macro_use]
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::cuda::with_fake_cuda;
use common::*;
use serde_json::Value;

/// A sysfs tree: NUMA nodes `nodes`, GPU 0 and 1 on `gpu_nodes`, the drive of `data` (its
/// device number) behind an NVMe controller on `drive_node`.
fn tree(root: &Path, data: &Path, nodes: &[(u32, &str)], gpu_nodes: [i64; 2], drive_node: i64) {
    for (n, cpus) in nodes {
        common::sysfs::node(root, *n, cpus);
    }
    common::sysfs::pci(
        root,
        "0000:18:00.0",
        gpu_nodes[0],
        ("16.0 GT/s", 16, "16.0 GT/s", 16),
    );
    common::sysfs::pci(
        root,
        "0000:29:00.0",
        gpu_nodes[1],
        ("16.0 GT/s", 8, "16.0 GT/s", 16),
    );
    common::sysfs::pci(
        root,
        "0000:5e:00.0",
        drive_node,
        ("16.0 GT/s", 4, "16.0 GT/s", 4),
    );
    let dev = std::fs::metadata(data).unwrap().dev();
    common::sysfs::drive(
        root,
        "0000:5e:00.0",
        "nvme0n1",
        libc::major(dev),
        libc::minor(dev),
    );
}

fn check(root: &Path, data: &Path) -> (Value, String) {
    let mut cmd = gdswap(argv![
        "check",
        "--path",
        data,
        "--cufile",
        "/nonexistent/libcufile.so.0",
        "--json",
        "-",
        "--backend",
        "posix"
    ]);
    with_fake_cuda(&mut cmd)
        .env("FAKE_CUDA_DEVICES", "2")
        .env("GDSWAP_SYSFS_ROOT", root);
    let out = outcome(&mut cmd);
    assert_eq!(out.code, Some(0), "{out:?}");
    (serde_json::from_str(&out.stdout).unwrap(), out.stderr)
}

#[test]
fn one_numa_node_everything_local() {
    let dir = scratch();
    let root = dir.path().join("sysfs");
    tree(&root, dir.path(), &[(0, "0-3")], [0, 0], 0);
    let (v, text) = check(&root, dir.path());
    let p = &v["placement"];
    assert_eq!(p["numa_nodes"], serde_json::json!([0]), "{p}");
    assert_eq!(p["drive"]["name"], "nvme0n1");
    assert_eq!(p["drive"]["pci"]["numa_node"], 0);
    assert!(p["cross_socket"].as_array().unwrap().is_empty(), "{p}");
    // The GPU list reads its NUMA node from the same tree.
    assert_eq!(v["gpus"]["devices"][1]["numa_node"], 0, "{}", v["gpus"]);
    assert!(text.contains("\nNUMA           1 node (0)\n"), "{text}");
    assert!(
        text.contains(
            "\n  GPU 0        0000:18:00.0: NUMA node 0, PCIe 16.0 GT/s x16 (max 16.0 GT/s x16)\n"
        ),
        "{text}"
    );
    // GPU 1's link trained at half its width.
    assert!(
        text.contains("\n  GPU 1        0000:29:00.0: NUMA node 0, PCIe 16.0 GT/s x8 (max 16.0 GT/s x16): below its maximum\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  drive        nvme0n1 (0000:5e:00.0: NUMA node 0, PCIe 16.0 GT/s x4 (max 16.0 GT/s x4))\n"),
        "{text}"
    );
    assert!(!text.contains("  note "), "{text}");
}

#[test]
fn two_numa_nodes_and_a_gpu_on_the_other_socket() {
    let dir = scratch();
    let root = dir.path().join("sysfs");
    tree(&root, dir.path(), &[(0, "0-1"), (1, "2-3")], [0, 1], 1);
    let (v, text) = check(&root, dir.path());
    let p = &v["placement"];
    assert_eq!(p["numa_nodes"], serde_json::json!([0, 1]), "{p}");
    let notes = p["cross_socket"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{p}");
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .starts_with("GPU 0 (NUMA node 0) and the drive of "),
        "{p}"
    );
    assert!(text.contains("\nNUMA           2 nodes (0, 1)\n"), "{text}");
    assert!(
        text.contains("\n  note         GPU 0 (NUMA node 0) and the drive of "),
        "{text}"
    );
    assert!(
        text.contains("(NUMA node 1) sit on different sockets"),
        "{text}"
    );
}
