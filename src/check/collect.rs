//! Collecting the rows: libraries, GPUs, the cuFile driver (in child processes), cufile.json,
//! io_uring, memlock; then the verdicts.

use std::collections::BTreeMap;
use std::path::Path;

use super::verdict::verdicts;
use super::*;
use crate::cufile::loader::{self, LibcudaProbe};
use crate::io::{sys, uring};

/// Collects every row and the verdicts.
pub fn collect(opts: &CheckOptions) -> NodeReport {
    let env = crate::env::collect(&opts.path);
    let libcuda = LibcudaRow::from_probe(loader::probe_libcuda());
    let libcufile = cufile_row(opts.cufile.as_deref());
    // The reason of the rows that need libcuda, when it is not found.
    let no_gpu_reason = "no CUDA driver: libcuda.so.1 not found".to_string();
    let path = path::examine(&opts.path);
    let io_uring = uring_row();
    let mut report = NodeReport {
        schema: SCHEMA,
        gdswap_version: env.gdswap_version,
        git_commit: env.git_commit,
        hostname: env.hostname,
        kernel: env.kernel,
        gpus: gpus_row(&libcuda, &no_gpu_reason),
        cufile_driver: driver_row(opts, &libcufile, &libcuda, &no_gpu_reason),
        libcuda,
        libcufile,
        cufile_json: cufile_json(),
        cufile_stats_segments: StatsSegmentsRow::collect(),
        path,
        io_uring,
        memlock: MemlockRow {
            limit_bytes: Some(sys::memlock_limit()).filter(|l| *l != u64::MAX),
            cap_ipc_lock: sys::has_cap_ipc_lock(),
        },
        verdicts: Vec::new(),
        placement: None,
    };
    report.verdicts = verdicts(&report);
    let gpus: Vec<(usize, String)> = report
        .gpus
        .devices
        .iter()
        .filter_map(|g| g.pci_bus_id.clone().map(|id| (g.ordinal, id)))
        .collect();
    report.placement = Some(crate::topology::placement(
        &crate::topology::sysfs_root(),
        &gpus,
        &opts.path,
    ));
    report
}

fn tried(attempts: &[loader::Attempt]) -> Vec<Tried> {
    attempts
        .iter()
        .map(|a| Tried {
            name: Path::new(&a.candidate.name).display().to_string(),
            why: a.why.clone(),
        })
        .collect()
}

impl LibcudaRow {
    fn from_probe(p: LibcudaProbe) -> Self {
        LibcudaRow {
            found: p.file.is_some(),
            path: p.file,
            driver_cuda_version: p
                .driver_version
                .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
            tried: tried(&p.attempts),
        }
    }
}

fn gpus_row(libcuda: &LibcudaRow, no_gpu_reason: &str) -> GpusRow {
    let not = |reason: String| GpusRow {
        examined: false,
        reason: Some(reason),
        devices: Vec::new(),
    };
    if !libcuda.found {
        return not(no_gpu_reason.to_string());
    }
    match crate::cuda::device::list_devices() {
        Err(why) => not(why),
        Ok(list) => GpusRow {
            examined: true,
            reason: None,
            devices: list.into_iter().map(gpu_row).collect(),
        },
    }
}

fn gpu_row(d: crate::cuda::device::DeviceInfo) -> GpuRow {
    /// The value, or `None` with why noted under the field's name.
    fn field<T>(
        unavailable: &mut BTreeMap<&'static str, String>,
        name: &'static str,
        r: Result<T, String>,
    ) -> Option<T> {
        r.map_err(|why| unavailable.insert(name, why)).ok()
    }
    let mut u = BTreeMap::new();
    let name = field(&mut u, "name", d.name);
    let total_memory_bytes = field(&mut u, "total_memory_bytes", d.total_memory);
    let pci_bus_id = field(&mut u, "pci_bus_id", d.pci_bus_id);
    let numa = match &pci_bus_id {
        Some(id) => numa_node_of(id),
        None => Err("unknown: no PCI bus id".to_string()),
    };
    let numa_node = field(&mut u, "numa_node", numa);
    GpuRow {
        ordinal: d.ordinal,
        name,
        total_memory_bytes,
        pci_bus_id,
        numa_node,
        unavailable: u,
    }
}

/// The name sysfs gives a PCI device: the driver's bus id lowercased, with a 4-digit domain
/// (`0000:3B:00.0` and `00000000:3B:00.0` are `0000:3b:00.0`; `3B:00.0` gets domain 0000).
fn sysfs_pci_name(bus_id: &str) -> String {
    let id = bus_id.trim().to_ascii_lowercase();
    let parts: Vec<&str> = id.split(':').collect();
    match parts.as_slice() {
        [domain, bus, devfn] => match u32::from_str_radix(domain, 16) {
            Ok(d) => format!("{d:04x}:{bus}:{devfn}"),
            Err(_) => id.clone(),
        },
        [bus, devfn] => format!("0000:{bus}:{devfn}"),
        _ => id.clone(),
    }
}

fn numa_node_of(bus_id: &str) -> Result<i64, String> {
    let file = crate::topology::sysfs_root()
        .join("bus/pci/devices")
        .join(sysfs_pci_name(bus_id))
        .join("numa_node");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}: {:?}", file.display(), text.trim()))
}

fn driver_row(
    opts: &CheckOptions,
    libcufile: &CuFileRow,
    libcuda: &LibcudaRow,
    no_gpu_reason: &str,
) -> DriverRow {
    let not = |reason: crate::error::Message| DriverRow {
        examined: false,
        reason: Some(reason),
        plain: None,
        strict: None,
    };
    let Some(probe) = &opts.driver_probe else {
        return not("not opened by this caller".into());
    };
    if !libcufile.found {
        return not("libcufile not found".into());
    }
    if !libcuda.found && !probe.force {
        return not(crate::error::msg![
            format!("not opened: {no_gpu_reason} ("),
            crate::error::Setting::OpenDriver,
            " opens it anyway)"
        ]);
    }
    let cufile = opts.cufile.as_deref();
    let plain = driver_probe::probe_in_child(&probe.exe, cufile, &opts.path, false, probe.timeout);
    // The strict probe needs the parameter API and a driver that opens at all.
    let has_params = libcufile
        .groups
        .iter()
        .any(|g| g.name == "parameters" && g.present);
    let strict = (has_params && plain.outcome.as_ref().is_some_and(|o| o.opened))
        .then(|| driver_probe::probe_in_child(&probe.exe, cufile, &opts.path, true, probe.timeout));
    DriverRow {
        examined: true,
        reason: None,
        plain: Some(plain),
        strict,
    }
}

fn cufile_row(explicit: Option<&Path>) -> CuFileRow {
    match loader::load(explicit) {
        Ok(lib) => CuFileRow {
            found: true,
            path: Some(PathBuf::from(lib.describe())),
            version: match lib.version() {
                Some(Ok(v)) => Some(v.to_string()),
                Some(Err(e)) => Some(format!("unreadable: {e}")),
                None => None,
            },
            groups: lib
                .groups()
                .iter()
                .map(|g| GroupRow {
                    name: g.name,
                    present: g.present,
                    since: g.since,
                    missing: g.missing.clone(),
                })
                .collect(),
            tried: Vec::new(),
            error: None,
        },
        Err(e) => CuFileRow {
            found: false,
            path: None,
            version: None,
            groups: Vec::new(),
            tried: tried(&e.attempts),
            error: Some(e.to_string()),
        },
    }
}

fn cufile_json() -> CuFileJson {
    let env = std::env::var_os("CUFILE_ENV_PATH_JSON").filter(|v| !v.is_empty());
    let from_env = env.is_some();
    let path = env
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/cufile.json"));
    let text = std::fs::read_to_string(&path).ok();
    CuFileJson {
        exists: text.is_some(),
        allow_compat_mode: text
            .as_deref()
            .and_then(|t| driver_probe::json_bool(t, "allow_compat_mode")),
        path,
        from_env,
    }
}

fn uring_row() -> UringRow {
    use io_uring::opcode;
    match uring::new_ring(2) {
        Err(e) => UringRow {
            works: false,
            mode: None,
            error: Some(uring::unavailable_reason().unwrap_or_else(|| e.to_string().into())),
            opcodes: Vec::new(),
        },
        Ok((ring, mode)) => {
            let mut probe = io_uring::Probe::new();
            let probed = ring.submitter().register_probe(&mut probe);
            let ops: [(&'static str, u8); 9] = [
                ("READ", opcode::Read::CODE),
                ("WRITE", opcode::Write::CODE),
                ("READV", opcode::Readv::CODE),
                ("WRITEV", opcode::Writev::CODE),
                ("READ_FIXED", opcode::ReadFixed::CODE),
                ("WRITE_FIXED", opcode::WriteFixed::CODE),
                ("FSYNC", opcode::Fsync::CODE),
                ("OPENAT", opcode::OpenAt::CODE),
                ("URING_CMD", opcode::UringCmd16::CODE),
            ];
            UringRow {
                works: true,
                mode: Some(mode),
                error: probed
                    .as_ref()
                    .err()
                    .map(|e| format!("IORING_REGISTER_PROBE failed: {e}").into()),
                opcodes: if probed.is_ok() {
                    ops.iter()
                        .map(|(name, code)| OpcodeRow {
                            name,
                            supported: probe.is_supported(*code),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_names_pci_devices_lowercase_with_a_4_digit_domain() {
        assert_eq!(sysfs_pci_name("0000:3B:00.0"), "0000:3b:00.0");
        assert_eq!(sysfs_pci_name("00000000:3B:00.0"), "0000:3b:00.0");
        assert_eq!(sysfs_pci_name("0001:C1:00.0\n"), "0001:c1:00.0");
        assert_eq!(sysfs_pci_name("3B:00.0"), "0000:3b:00.0");
        assert_eq!(sysfs_pci_name("nonsense"), "nonsense");
    }

    #[test]
    fn cufile_json_values_ignore_comments() {
        let text = r#"{
            // "allow_compat_mode": false,
            "properties": {
                "use_poll_mode" : false,
                "allow_compat_mode" : true, // on by default
            }
        }"#;
        let b = driver_probe::json_bool;
        assert_eq!(b(text, "allow_compat_mode"), Some(true));
        assert_eq!(b(text, "use_poll_mode"), Some(false));
        assert_eq!(b(text, "max_direct_io_size_kb"), None);
        // Block comments too.
        let text = "{ /* \"allow_compat_mode\": true, */ \"allow_compat_mode\": false }";
        assert_eq!(b(text, "allow_compat_mode"), Some(false));
    }
}
