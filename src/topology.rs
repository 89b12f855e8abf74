//! Where devices sit: the NUMA node and PCIe link of GPUs and drives, read from sysfs.
//!
//! Every function takes the sysfs root (`/sys` on a real node; [`sysfs_root`] honours
//! `GDSWAP_SYSFS_ROOT` so tests point it at fixture trees: one NUMA node, two, a GPU and a
//! drive on different nodes). Nothing here needs a GPU: a GPU is named by its PCI bus id, as
//! the CUDA driver gives it. A value sysfs does not have is `None`, never a guess.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable that points gdswap at another sysfs tree (tests).
pub const SYSFS_ROOT_ENV: &str = "GDSWAP_SYSFS_ROOT";

/// `/sys`, or `$GDSWAP_SYSFS_ROOT` when set and not empty.
pub fn sysfs_root() -> PathBuf {
    std::env::var_os(SYSFS_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys"))
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The NUMA nodes of the machine (`devices/system/node/node<N>`), ascending; empty when
/// sysfs does not say (then the machine is treated as one node).
pub fn numa_nodes(root: &Path) -> Vec<u32> {
    let mut nodes: Vec<u32> = std::fs::read_dir(root.join("devices/system/node"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("node"))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    nodes.sort_unstable();
    nodes
}

/// The CPUs of NUMA node `node` (its `cpulist`, `0-3,8-11`), or `None`.
pub fn node_cpus(root: &Path, node: u32) -> Option<Vec<usize>> {
    let text = read_trim(&root.join(format!("devices/system/node/node{node}/cpulist")))?;
    parse_cpulist(&text)
}

/// `0-3,8,10-11` into its CPUs; `None` when malformed.
pub fn parse_cpulist(text: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// A PCIe link as sysfs reports it: current and maximum speed (`16.0 GT/s PCIe`) and width.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciLink {
    /// `current_link_speed`, e.g. `16.0 GT/s PCIe`.
    pub current_speed: String,
    /// `max_link_speed`.
    pub max_speed: String,
    /// `current_link_width`: lanes in use.
    pub current_width: u32,
    /// `max_link_width`: lanes the device supports.
    pub max_width: u32,
}

impl PciLink {
    /// The link runs at its maximum speed and width.
    pub fn at_max(&self) -> bool {
        speed_gts(&self.current_speed) >= speed_gts(&self.max_speed)
            && self.current_width >= self.max_width
    }
}

impl std::fmt::Display for PciLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} x{} (max {} x{})",
            short_speed(&self.current_speed),
            self.current_width,
            short_speed(&self.max_speed),
            self.max_width
        )
    }
}

/// `16.0 GT/s PCIe` -> `16.0 GT/s`.
fn short_speed(s: &str) -> &str {
    s.strip_suffix(" PCIe").unwrap_or(s)
}

/// The number in `16.0 GT/s PCIe`, 0 when there is none (`Unknown`).
fn speed_gts(s: &str) -> f64 {
    s.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

/// One PCI function: its sysfs name, NUMA node and link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    /// `0000:3b:00.0`.
    pub address: String,
    /// `None`: sysfs says -1 (no affinity) or has no such file.
    pub numa_node: Option<u32>,
    /// `None` when the function has no link files (not PCIe).
    pub link: Option<PciLink>,
}

/// The name sysfs gives a PCI device: the driver's bus id lowercased, with a 4-digit domain
/// (`0000:3B:00.0` and `00000000:3B:00.0` are `0000:3b:00.0`; `3B:00.0` gets domain 0000).
pub fn sysfs_pci_name(bus_id: &str) -> String {
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

/// The PCI device directory `dir` described.
fn pci_device_at(dir: &Path) -> PciDevice {
    let numa_node = read_trim(&dir.join("numa_node"))
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|n| u32::try_from(n).ok());
    let link = (|| {
        Some(PciLink {
            current_speed: read_trim(&dir.join("current_link_speed"))?,
            max_speed: read_trim(&dir.join("max_link_speed"))?,
            current_width: read_trim(&dir.join("current_link_width"))?.parse().ok()?,
            max_width: read_trim(&dir.join("max_link_width"))?.parse().ok()?,
        })
    })();
    PciDevice {
        address: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        numa_node,
        link,
    }
}

/// The PCI device with bus id `bus_id` (as CUDA gives it), from `bus/pci/devices`.
pub fn pci_device(root: &Path, bus_id: &str) -> Result<PciDevice, String> {
    let dir = root.join("bus/pci/devices").join(sysfs_pci_name(bus_id));
    if !dir.exists() {
        return Err(format!("{} does not exist", dir.display()));
    }
    Ok(pci_device_at(&dir))
}

/// The drive holding a path: its block device and the PCI function behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drive {
    /// `259:0`.
    pub major_minor: String,
    /// The block device's sysfs name (`nvme0n1`, or the partition's `nvme0n1p1`).
    pub name: String,
    /// The PCI function behind it (the NVMe controller); `None` for a drive that is not on
    /// PCI (virtio-mmio, a RAM disk) or a device-mapper/MD device.
    pub pci: Option<PciDevice>,
}

/// The drive holding `path`, from its device number and `dev/block/<major>:<minor>`.
pub fn drive_of(root: &Path, path: &Path) -> Result<Drive, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dev = meta.dev();
    drive_by_number(root, libc::major(dev), libc::minor(dev))
}

/// The drive with device number `major:minor`.
pub fn drive_by_number(root: &Path, major: u32, minor: u32) -> Result<Drive, String> {
    let major_minor = format!("{major}:{minor}");
    let link = root.join("dev/block").join(&major_minor);
    let node = link.canonicalize().map_err(|_| {
        format!("no block device ({major_minor} is not in {}: a virtual, network or stacked filesystem)", link.parent().unwrap_or(root).display())
    })?;
    let name = node
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The nearest ancestor with a PCIe link or a NUMA node is the PCI function (the NVMe
    // controller); stop at the sysfs root.
    let devices = root
        .canonicalize()
        .unwrap_or_else(|_| root.to_path_buf())
        .join("devices");
    let pci = node
        .ancestors()
        .take_while(|a| a.starts_with(&devices) && *a != devices)
        .find(|a| a.join("current_link_speed").exists() || a.join("numa_node").exists())
        .map(pci_device_at);
    Ok(Drive {
        major_minor,
        name,
        pci,
    })
}

/// Where a node's GPUs and its data drive sit: NUMA nodes and PCIe links, and which GPU sits
/// on another socket than the drive (its transfers cross the inter-socket link).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The machine's NUMA nodes (empty: sysfs does not say; one node in effect).
    pub numa_nodes: Vec<u32>,
    /// Each GPU asked about, in the order given.
    pub gpus: Vec<GpuPlacement>,
    /// The drive holding the data path, or why it is not known.
    pub drive: Option<Drive>,
    /// Why `drive` is not known (`None` when it is).
    pub drive_unknown: Option<String>,
    /// One sentence per GPU on another NUMA node than the drive.
    pub cross_socket: Vec<String>,
}

/// One GPU's PCI function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuPlacement {
    /// The GPU's CUDA ordinal.
    pub ordinal: usize,
    /// Its PCI bus id as CUDA gives it, e.g. `0000:3B:00.0`.
    pub bus_id: String,
    /// Its PCI function in sysfs (NUMA node, link), when found.
    pub device: Option<PciDevice>,
    /// Why `device` is not known.
    pub unknown: Option<String>,
}

/// The placement of GPUs `gpus` (ordinal, PCI bus id as CUDA gives it) and of the drive
/// holding `path`, read from the sysfs tree at `root`.
pub fn placement(root: &Path, gpus: &[(usize, String)], path: &Path) -> Placement {
    let gpus: Vec<GpuPlacement> = gpus
        .iter()
        .map(|(ordinal, bus_id)| {
            let (device, unknown) = match pci_device(root, bus_id) {
                Ok(d) => (Some(d), None),
                Err(why) => (None, Some(why)),
            };
            GpuPlacement {
                ordinal: *ordinal,
                bus_id: bus_id.clone(),
                device,
                unknown,
            }
        })
        .collect();
    let (drive, drive_unknown) = match drive_of(root, path) {
        Ok(d) => (Some(d), None),
        Err(why) => (None, Some(why)),
    };
    let drive_node = drive
        .as_ref()
        .and_then(|d| d.pci.as_ref())
        .and_then(|p| p.numa_node);
    let cross_socket = gpus
        .iter()
        .filter_map(|g| {
            let (gpu_node, drive_node) = (g.device.as_ref()?.numa_node?, drive_node?);
            (gpu_node != drive_node).then(|| {
                format!(
                    "GPU {} (NUMA node {gpu_node}) and the drive of {} (NUMA node {drive_node}) sit on different sockets: their transfers cross the inter-socket link",
                    g.ordinal,
                    path.display()
                )
            })
        })
        .collect();
    Placement {
        numa_nodes: numa_nodes(root),
        gpus,
        drive,
        drive_unknown,
        cross_socket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulists_parse() {
        assert_eq!(
            parse_cpulist("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpulist("3-1"), None);
        assert_eq!(parse_cpulist("x"), None);
    }

    #[test]
    fn bus_ids_become_sysfs_names() {
        assert_eq!(sysfs_pci_name("00000000:3B:00.0"), "0000:3b:00.0");
        assert_eq!(sysfs_pci_name("3B:00.0"), "0000:3b:00.0");
    }

    #[test]
    fn links_below_max_are_seen() {
        let l = |c: &str, cw, m: &str, mw| PciLink {
            current_speed: c.into(),
            max_speed: m.into(),
            current_width: cw,
            max_width: mw,
        };
        assert!(l("16.0 GT/s PCIe", 16, "16.0 GT/s PCIe", 16).at_max());
        assert!(!l("8.0 GT/s PCIe", 16, "16.0 GT/s PCIe", 16).at_max());
        assert!(!l("16.0 GT/s PCIe", 8, "16.0 GT/s PCIe", 16).at_max());
        assert!(!l("Unknown", 16, "16.0 GT/s PCIe", 16).at_max());
        assert_eq!(
            l("8.0 GT/s PCIe", 4, "16.0 GT/s PCIe", 4).to_string(),
            "8.0 GT/s x4 (max 16.0 GT/s x4)"
        );
    }
}
