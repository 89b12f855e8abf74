//! The check report as text readable at a glance: one labelled line per fact, then a verdict
//! per backend. Pure: returns a string.

use std::fmt::Write;

use super::{NodeReport, Tried};
use crate::size::Bytes;

/// `libcuda.so.1: cannot open shared object file: No such file or directory; libcuda.so: same`:
/// dlerror's repetitions of the name and of the same reason dropped (the JSON has them whole).
fn tried_list(t: &[Tried]) -> String {
    let mut last = String::new();
    t.iter()
        .map(|t| {
            let why = t.why.strip_prefix("dlopen failed: ").unwrap_or(&t.why);
            let why = why
                .strip_prefix(t.name.as_str())
                .and_then(|w| w.strip_prefix(": "))
                .unwrap_or(why)
                .to_string();
            let shown = if why == last {
                "same".to_string()
            } else {
                why.clone()
            };
            last = why;
            format!("{}: {shown}", t.name)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn driver_lines(w: &mut String, d: &super::DriverRow) {
    if !d.examined {
        let _ = writeln!(
            w,
            "{:<15}{}",
            "cuFile driver",
            d.reason
                .as_ref()
                .map_or("not examined".into(), |r| r.to_string())
        );
        return;
    }
    for (label, probe, strict) in [
        ("cuFile driver", &d.plain, false),
        ("  strict probe", &d.strict, true),
    ] {
        let Some(c) = probe else { continue };
        let text = match (&c.outcome, &c.failure) {
            (Some(o), _) if !o.opened => {
                format!("open failed: {}", o.error.as_deref().unwrap_or("?"))
            }
            (Some(o), _) => match (&o.file_registration, &o.properties) {
                (Some(reg), _) if strict => format!("{}: {}", reg.file.display(), reg.detail),
                (_, Some(p)) => format!(
                    "opened: nvidia-fs {}; supports {}; compat mode {}; poll mode {}; features {}; max direct I/O {} KiB; batch up to {}",
                    p.nvidia_fs_version.as_deref().unwrap_or("not loaded"),
                    if p.supported.is_empty() { "nothing".to_string() } else { p.supported.join(", ") },
                    if p.allow_compat_mode { "allowed" } else { "off" },
                    if p.use_poll_mode { "on" } else { "off" },
                    if p.features.is_empty() { "none".to_string() } else { p.features.join(", ") },
                    p.max_direct_io_kb,
                    p.max_batch_io_size
                ),
                (_, None) => format!("opened; {}", o.error.as_deref().unwrap_or("no properties")),
            },
            (None, Some(f)) => f.clone(),
            (None, None) => "no outcome".into(),
        };
        let _ = writeln!(w, "{label:<15}{text}");
        // The plain probe's registration of the checked file (compat mode as configured).
        if let Some(reg) = c
            .outcome
            .as_ref()
            .and_then(|o| o.file_registration.as_ref())
            .filter(|_| !strict)
        {
            let _ = writeln!(
                w,
                "{:<15}{}: {}",
                "  register",
                reg.file.display(),
                reg.detail
            );
        }
        // cuFile's own words, without its timestamp and pid prefix.
        let mut shown: Vec<&str> = Vec::new();
        for l in &c.log_tail {
            let l = l.split_once("] ").map_or(l.as_str(), |(_, m)| m);
            if !shown.contains(&l) && shown.len() < 3 {
                shown.push(l);
            }
        }
        for l in shown {
            let _ = writeln!(w, "{:<15}cufile.log: {l}", "");
        }
    }
}

/// `GPUs  2 devices`, then one line per device: name, memory, PCI bus id, NUMA node, and why
/// for what is unknown.
fn gpu_lines(w: &mut String, g: &super::GpusRow) {
    if !g.examined {
        let reason = g.reason.as_deref().unwrap_or("");
        let _ = writeln!(w, "{:<15}not examined: {reason}", "GPUs");
        return;
    }
    let n = g.devices.len();
    let _ = writeln!(
        w,
        "{:<15}{n} device{}",
        "GPUs",
        if n == 1 { "" } else { "s" }
    );
    for d in &g.devices {
        let why = |field: &str| {
            d.unavailable
                .get(field)
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        };
        let name = d
            .name
            .clone()
            .unwrap_or_else(|| format!("name unknown{}", why("name")));
        let memory = match d.total_memory_bytes {
            Some(b) => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
            None => format!("memory unknown{}", why("total_memory_bytes")),
        };
        let pci = match &d.pci_bus_id {
            Some(id) => format!("PCI {id}"),
            None => format!("PCI bus id unknown{}", why("pci_bus_id")),
        };
        let numa = match d.numa_node {
            Some(-1) => "-1 (no affinity reported)".to_string(),
            Some(n) => n.to_string(),
            None if d.pci_bus_id.is_none() => "unknown".to_string(),
            None => format!("unknown{}", why("numa_node")),
        };
        let label = format!("  GPU {}", d.ordinal);
        let _ = writeln!(w, "{label:<15}{name}: {memory}, {pci}, NUMA node {numa}");
    }
}

/// The stale cuFile statistics segments, with the command that removes them.
fn stats_segments_line(w: &mut String, row: &super::StatsSegmentsRow) {
    let text = if let Some(e) = &row.error {
        format!("not examined: {e}")
    } else if row.stale.is_empty() {
        "none left behind".into()
    } else {
        let pids: Vec<String> = row.stale.iter().map(|s| s.key.to_string()).collect();
        let rm: Vec<String> = row.stale.iter().map(|s| format!("-m {}", s.id)).collect();
        format!(
            "{} left behind (pids {}; processes that ended with cuFile open): a process given \
             one of these pids runs without cuFile statistics; if no cuFile process of those \
             pids runs, `ipcrm {}` removes them",
            row.stale.len(),
            pids.join(", "),
            rm.join(" ")
        )
    };
    let _ = writeln!(w, "{:<15}{text}", "cufile stats");
}

/// The whole report.
pub fn render(r: &NodeReport) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "gdswap check on {} (kernel {}, gdswap {} {})",
        r.hostname, r.kernel, r.gdswap_version, r.git_commit
    );
    // Libraries.
    let cuda = match (&r.libcuda.path, &r.libcuda.driver_cuda_version) {
        (Some(p), Some(v)) => format!("{} (driver supports CUDA {v})", p.display()),
        (Some(p), None) => format!("{} (version unreadable)", p.display()),
        _ => format!("not found ({})", tried_list(&r.libcuda.tried)),
    };
    let _ = writeln!(w, "{:<15}{cuda}", "libcuda");
    let cufile = if r.libcufile.found {
        let groups: Vec<String> = r
            .libcufile
            .groups
            .iter()
            .map(|g| {
                if g.present {
                    g.name.to_string()
                } else {
                    format!("no {} (needs >= {})", g.name, g.since)
                }
            })
            .collect();
        format!(
            "{} (version {}; {})",
            r.libcufile
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            r.libcufile.version.as_deref().unwrap_or("unknown"),
            groups.join(", ")
        )
    } else {
        format!("not found ({})", tried_list(&r.libcufile.tried))
    };
    let _ = writeln!(w, "{:<15}{cufile}", "libcufile");
    gpu_lines(w, &r.gpus);
    driver_lines(w, &r.cufile_driver);
    let j = &r.cufile_json;
    let _ = writeln!(
        w,
        "{:<15}{}{}: {}",
        "cufile.json",
        j.path.display(),
        if j.from_env {
            " (CUFILE_ENV_PATH_JSON)"
        } else {
            ""
        },
        if !j.exists {
            "absent (cuFile's defaults apply: compat mode allowed)".to_string()
        } else {
            match j.allow_compat_mode {
                Some(true) => "allow_compat_mode true".into(),
                Some(false) => "allow_compat_mode false (no silent fallback)".into(),
                None => "present, allow_compat_mode not set (default true)".into(),
            }
        }
    );
    stats_segments_line(w, &r.cufile_stats_segments);

    // The data path.
    let p = &r.path;
    let fs = &p.filesystem;
    let _ = writeln!(
        w,
        "{:<15}{} ({}, {} on {} mounted at {}, options {})",
        "path",
        p.path.display(),
        p.kind,
        if fs.fs_type.is_empty() {
            "unknown filesystem"
        } else {
            &fs.fs_type
        },
        fs.mount_source,
        fs.mount_point,
        fs.mount_options
    );
    let _ = writeln!(w, "  {:<13}{}", "for GDS", p.gds_filesystem_note);
    let _ = writeln!(
        w,
        "  {:<13}{}{}",
        "O_DIRECT",
        if p.o_direct.works {
            "works: "
        } else {
            "does not work: "
        },
        p.o_direct.detail
    );
    if let Some(a) = p.o_direct.alignment {
        let _ = writeln!(w, "  {:<13}{a} B (offsets and lengths)", "DIO align");
    }
    match &p.block_device {
        Some(b) => {
            let _ = writeln!(
                w,
                "  {:<13}{}{} ({}{}), logical block {}, NUMA node {}",
                "device",
                b.name,
                b.partition
                    .as_ref()
                    .map(|p| format!(" partition {p}"))
                    .unwrap_or_default(),
                b.model.as_deref().unwrap_or("no model"),
                b.transport
                    .as_ref()
                    .map(|t| format!(", {t}"))
                    .unwrap_or_default(),
                b.logical_block_size
                    .map(|l| format!("{l} B"))
                    .unwrap_or_else(|| "unknown".into()),
                match b.numa_node {
                    Some(-1) => "-1 (no affinity reported)".to_string(),
                    Some(n) => n.to_string(),
                    None => "unknown".into(),
                }
            );
        }
        None => {
            let _ = writeln!(
                w,
                "  {:<13}{}",
                "device",
                p.block_device_note.as_deref().unwrap_or("unknown")
            );
        }
    }
    if let Some(u) = &p.udev {
        let _ = writeln!(w, "  {:<13}{}", "udev", u.describe());
    }

    // Host facilities.
    let u = &r.io_uring;
    if u.works {
        let ops: Vec<String> = u
            .opcodes
            .iter()
            .map(|o| format!("{}{}", o.name, if o.supported { "" } else { " (no)" }))
            .collect();
        let _ = writeln!(
            w,
            "{:<15}works ({}); opcodes: {}{}",
            "io_uring",
            u.mode.unwrap_or("?"),
            if ops.is_empty() {
                "not probed".into()
            } else {
                ops.join(" ")
            },
            u.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    } else {
        let _ = writeln!(
            w,
            "{:<15}does not work: {}",
            "io_uring",
            u.error.as_ref().map_or(String::new(), |e| e.to_string())
        );
    }
    let _ = writeln!(
        w,
        "{:<15}RLIMIT_MEMLOCK {}{}",
        "memlock",
        r.memlock
            .limit_bytes
            .map(|l| Bytes(l).to_string())
            .unwrap_or_else(|| "unlimited".into()),
        if r.memlock.cap_ipc_lock {
            " (CAP_IPC_LOCK: the limit does not apply)"
        } else {
            ""
        }
    );

    if let Some(p) = &r.placement {
        placement_lines(w, p);
    }

    // Verdicts.
    let _ = writeln!(w, "\nbackend  verdict");
    for v in &r.verdicts {
        let _ = writeln!(
            w,
            "{:<8} {}: {}{}",
            v.backend,
            if v.available {
                "available"
            } else {
                "unavailable"
            },
            v.reason,
            match (v.gds_path, &v.gds_path_reason) {
                // (Said once when the path's reason is the verdict's own.)
                (Some(p), Some(why)) if *why == v.reason.to_string() => format!("; path: {p}"),
                (Some(p), Some(why)) => format!("; path: {p} ({why})"),
                (Some(p), None) => format!("; path: {p}"),
                _ => String::new(),
            }
        );
    }
    s
}

/// NUMA nodes, each GPU's and the drive's node and PCIe link (current vs. max), and a note
/// per GPU on another socket than the drive.
fn placement_lines(w: &mut String, p: &crate::topology::Placement) {
    let nodes = if p.numa_nodes.is_empty() {
        "not reported by sysfs".to_string()
    } else {
        format!(
            "{} node{} ({})",
            p.numa_nodes.len(),
            if p.numa_nodes.len() == 1 { "" } else { "s" },
            p.numa_nodes
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let _ = writeln!(w, "{:<15}{nodes}", "NUMA");
    let describe = |d: &crate::topology::PciDevice| {
        let node = d.numa_node.map_or("NUMA node unknown".to_string(), |n| {
            format!("NUMA node {n}")
        });
        match &d.link {
            Some(l) if l.at_max() => format!("{}: {node}, PCIe {l}", d.address),
            Some(l) => format!("{}: {node}, PCIe {l}: below its maximum", d.address),
            None => format!("{}: {node}, no PCIe link in sysfs", d.address),
        }
    };
    for g in &p.gpus {
        let text = match (&g.device, &g.unknown) {
            (Some(d), _) => describe(d),
            (None, why) => format!("{}: {}", g.bus_id, why.as_deref().unwrap_or("unknown")),
        };
        let _ = writeln!(w, "  {:<13}{text}", format!("GPU {}", g.ordinal));
    }
    let drive = match (&p.drive, &p.drive_unknown) {
        (Some(d), _) => match &d.pci {
            Some(pci) => format!("{} ({})", d.name, describe(pci)),
            None => format!("{}: not behind a PCI function", d.name),
        },
        (None, why) => why.clone().unwrap_or_else(|| "unknown".into()),
    };
    let _ = writeln!(w, "  {:<13}{drive}", "drive");
    for note in &p.cross_socket {
        let _ = writeln!(w, "  {:<13}{note}", "note");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tried_lists_drop_repetitions() {
        let t = |name: &str, why: &str| Tried {
            name: name.into(),
            why: why.into(),
        };
        let list = [
            t("libcuda.so.1", "dlopen failed: libcuda.so.1: cannot open shared object file: No such file or directory"),
            t("libcuda.so", "dlopen failed: libcuda.so: cannot open shared object file: No such file or directory"),
            t("/x/lib.so", "No such file or directory (os error 2)"),
        ];
        assert_eq!(
            tried_list(&list),
            "libcuda.so.1: cannot open shared object file: No such file or directory; \
             libcuda.so: same; /x/lib.so: No such file or directory (os error 2)"
        );
    }
}
