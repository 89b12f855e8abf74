//! `gdswap check`'s GPU list: against the fake libcuda (`tests/fakes/fake_cuda.c`) with two
//! devices, against a fake without the optional device-information functions, without
//! libcuda, and with a libcuda that sees no device.

#[macro_use]
mod common;

use std::process::Command;

use common::cuda::{
    fake_libcuda_without_device_info_dir, system_has_libcuda, with_fake_cuda, without_cuda,
};
use common::*;
use serde_json::Value;

/// Runs `gdswap check --json -` (posix only, no libcufile) with `setup` applied; the JSON and
/// the text (on stderr when the JSON goes to stdout).
fn check(setup: impl FnOnce(&mut Command) -> &mut Command) -> (Value, String) {
    let dir = scratch();
    let mut cmd = gdswap(argv![
        "check",
        "--path",
        dir.path(),
        "--cufile",
        "/nonexistent/libcufile.so.0",
        "--json",
        "-",
        "--backend",
        "posix"
    ]);
    let out = outcome(setup(&mut cmd));
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(v["schema"], "gdswap.check.v1");
    (v, out.stderr)
}

#[test]
fn two_fake_devices_are_listed_with_name_memory_and_bus_id() {
    let (v, text) = check(|c| with_fake_cuda(c).env("FAKE_CUDA_DEVICES", "2"));
    let g = &v["gpus"];
    assert_eq!(g["examined"], true, "{g}");
    assert!(g["reason"].is_null(), "{g}");
    let devices = g["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{g}");
    for (i, (d, bus)) in devices
        .iter()
        .zip(["0000:18:00.0", "0000:29:00.0"])
        .enumerate()
    {
        assert_eq!(d["ordinal"], i);
        assert_eq!(d["name"], format!("Fake CUDA device {i} (gdswap tests)"));
        assert_eq!(d["total_memory_bytes"], 80u64 << 30);
        assert_eq!(d["pci_bus_id"], bus);
        let unavailable = d["unavailable"].as_object().unwrap();
        for field in ["name", "total_memory_bytes", "pci_bus_id"] {
            assert!(!unavailable.contains_key(field), "{d}");
        }
        // The fake's bus ids are not in this machine's sysfs (unless one happens to be): the
        // NUMA node is then null with the file it looked for.
        if d["numa_node"].is_null() {
            let why = unavailable["numa_node"].as_str().unwrap();
            let sysfs = format!("/sys/bus/pci/devices/{}/numa_node", bus.to_lowercase());
            assert!(why.contains(&sysfs), "{why}");
        }
    }
    assert!(text.contains("\nGPUs           2 devices\n"), "{text}");
    assert!(
        text.contains(
            "\n  GPU 1        Fake CUDA device 1 (gdswap tests): 80.0 GiB, PCI 0000:29:00.0, NUMA node "
        ),
        "{text}"
    );
}

#[test]
fn a_libcuda_without_the_optional_functions_still_lists_devices() {
    let (v, text) = check(|c| {
        without_cuda(c)
            .env("LD_LIBRARY_PATH", fake_libcuda_without_device_info_dir())
            .env("FAKE_CUDA_DEVICES", "2")
    });
    let g = &v["gpus"];
    assert_eq!(g["examined"], true, "{g}");
    let devices = g["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{g}");
    for d in devices {
        assert!(d["name"].as_str().unwrap().starts_with("Fake CUDA device"));
        assert!(d["total_memory_bytes"].is_null(), "{d}");
        assert!(d["pci_bus_id"].is_null(), "{d}");
        assert!(d["numa_node"].is_null(), "{d}");
        let u = &d["unavailable"];
        assert_eq!(
            u["total_memory_bytes"],
            "this libcuda has no cuDeviceTotalMem_v2"
        );
        assert_eq!(u["pci_bus_id"], "this libcuda has no cuDeviceGetPCIBusId");
        assert_eq!(u["numa_node"], "unknown: no PCI bus id");
    }
    assert!(
        text.contains(
            "\n  GPU 0        Fake CUDA device 0 (gdswap tests): memory unknown (this libcuda has no cuDeviceTotalMem_v2), PCI bus id unknown (this libcuda has no cuDeviceGetPCIBusId), NUMA node unknown\n"
        ),
        "{text}"
    );
    // The run path does not need them: the driver loads for the bounce backend.
    let mut cmd = gdswap(argv!["backends"]);
    without_cuda(&mut cmd).env("LD_LIBRARY_PATH", fake_libcuda_without_device_info_dir());
    let out = outcome(&mut cmd);
    assert_eq!(out.code, Some(0), "{out:?}");
    let bounce = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("bounce"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(!bounce.contains("lacks CUDA driver functions"), "{bounce}");
    assert!(!bounce.contains("libcuda"), "{bounce}");
}

#[test]
fn without_libcuda_the_row_says_why() {
    if system_has_libcuda() {
        eprintln!("note: libcuda present: the no-libcuda row cannot be checked here");
        return;
    }
    let (v, text) = check(without_cuda);
    let g = &v["gpus"];
    assert_eq!(g["examined"], false, "{g}");
    assert_eq!(g["reason"], "no CUDA driver: libcuda.so.1 not found");
    assert_eq!(g["devices"].as_array().unwrap().len(), 0);
    assert!(
        text.contains("\nGPUs           not examined: no CUDA driver: libcuda.so.1 not found\n"),
        "{text}"
    );
}

#[test]
fn a_driver_that_fails_to_initialise_is_the_reason() {
    let (v, _) = check(|c| with_fake_cuda(c).env("FAKE_CUDA_NO_DEVICE", "1"));
    let g = &v["gpus"];
    assert_eq!(g["examined"], false, "{g}");
    assert!(
        g["reason"]
            .as_str()
            .unwrap()
            .starts_with("cuInit failed: CUDA_ERROR_NO_DEVICE (100)"),
        "{g}"
    );
}
