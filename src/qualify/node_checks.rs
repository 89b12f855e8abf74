//! The `check` rows a spec requires, as qualify lines: each row of `gdswap check`'s report
//! ([`NodeReport`]) against the spec's `[checks]`, and the PCIe link of every GPU and target
//! drive, read from sysfs. Decided before any test runs, and apart from them: a node's
//! set-up, not its figures.

use std::path::{Path, PathBuf};

use super::record::{line, Line};
use super::spec::{self, Memlock};
use crate::check::NodeReport;

/// The check rows the spec requires, one line each (PCIe: one per device).
pub fn check_lines(
    c: &spec::Checks,
    r: &NodeReport,
    sysfs: &Path,
    targets: &[PathBuf],
) -> Vec<Line> {
    let mut out = Vec::new();
    let row = |metric: &str, pass: bool, shown: String, threshold: &str| Line {
        pass,
        shown,
        threshold: threshold.into(),
        ..line("check", metric, metric)
    };
    if c.io_uring {
        let u = &r.io_uring;
        out.push(row(
            "io_uring",
            u.works,
            match (&u.mode, &u.error) {
                (Some(m), _) if u.works => format!("works ({m})"),
                (_, Some(e)) => format!("fails: {e}"),
                _ => (if u.works { "works" } else { "fails" }).into(),
            },
            "works",
        ));
    }
    if c.o_direct {
        let o = &r.path.o_direct;
        let mut l = row(
            "o_direct",
            o.works,
            (if o.works { "works" } else { "fails" }).into(),
            "works",
        );
        l.reason = Some(format!("{}: {}", r.path.path.display(), o.detail));
        out.push(l);
    }
    if let Some(want) = c.memlock {
        let m = &r.memlock;
        let (pass, shown) = match (m.limit_bytes, m.cap_ipc_lock) {
            (_, true) => (true, "CAP_IPC_LOCK (no limit)".to_string()),
            (None, _) => (true, "unlimited".to_string()),
            (Some(l), _) => (
                matches!(want, Memlock::AtLeast(w) if l >= w),
                crate::size::Bytes(l).to_string(),
            ),
        };
        let threshold = match want {
            Memlock::Unlimited => "unlimited".to_string(),
            Memlock::AtLeast(w) => format!(">= {}", crate::size::Bytes(w)),
        };
        out.push(row("memlock", pass, shown, &threshold));
    }
    if c.nvidia_fs {
        let dir = sysfs.join("module/nvidia_fs");
        let loaded = dir.is_dir();
        let mut l = row(
            "nvidia_fs",
            loaded,
            (if loaded { "loaded" } else { "not loaded" }).into(),
            "loaded",
        );
        if !loaded {
            l.reason = Some(format!("no {} (modprobe nvidia-fs)", dir.display()));
        }
        out.push(l);
    }
    if c.gpudirect {
        let v = r.verdict(crate::types::BackendId::Gds);
        let path = v
            .and_then(|v| v.gds_path)
            .unwrap_or(crate::types::GdsPath::Unknown);
        let mut l = row(
            "gpudirect",
            path.is_direct(),
            path.as_str().into(),
            "gpudirect",
        );
        if !l.pass {
            l.reason = v.and_then(|v| v.gds_path_reason.clone());
        }
        out.push(l);
    }
    if c.pcie_link {
        out.extend(pcie_lines(r, sysfs, targets));
    }
    out
}

/// One line per GPU and per target drive: its PCIe link at its maximum speed and width.
fn pcie_lines(r: &NodeReport, sysfs: &Path, targets: &[PathBuf]) -> Vec<Line> {
    let mut out = Vec::new();
    let link_line = |what: String, dev: Result<crate::topology::PciDevice, String>| {
        let mut l = Line {
            target: Some(PathBuf::from(what)),
            threshold: "at max".into(),
            ..line("check", "pcie_link", "pcie_link")
        };
        match dev {
            Ok(d) => match &d.link {
                Some(link) => {
                    l.pass = link.at_max();
                    l.shown = link.to_string();
                    if !l.pass {
                        l.reason = Some(format!("{} runs below its maximum", d.address));
                    }
                }
                None => {
                    l.shown = "no link".into();
                    l.reason = Some(format!("{}: sysfs has no PCIe link files", d.address));
                }
            },
            Err(why) => {
                l.shown = "unknown".into();
                l.reason = Some(why);
            }
        }
        l
    };
    if r.gpus.examined {
        for g in &r.gpus.devices {
            let dev = match &g.pci_bus_id {
                Some(id) => crate::topology::pci_device(sysfs, id),
                None => Err("the driver gave no PCI bus id".into()),
            };
            out.push(link_line(format!("gpu{}", g.ordinal), dev));
        }
    } else {
        let mut l = line("check", "pcie_link", "pcie_link");
        l.target = Some(PathBuf::from("gpus"));
        l.shown = "not examined".into();
        l.threshold = "at max".into();
        l.reason = r.gpus.reason.clone();
        out.push(l);
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in targets {
        let dev = crate::topology::drive_of(sysfs, t).and_then(|d| {
            if !seen.insert(d.major_minor.clone()) {
                return Ok(None);
            }
            d.pci
                .map(Some)
                .ok_or_else(|| format!("{} ({}) is not behind a PCI function", d.name, t.display()))
        });
        match dev {
            Ok(None) => {}
            Ok(Some(d)) => out.push(link_line(t.display().to_string(), Ok(d))),
            Err(why) => out.push(link_line(t.display().to_string(), Err(why))),
        }
    }
    out
}
