//! The environment a result was measured in, recorded with every result so numbers from
//! different machines, kernels or filesystems are never compared blindly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::sys;

/// Where and with what a run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The gdswap crate version that measured.
    pub gdswap_version: String,
    /// The git commit gdswap was built from, `-dirty` appended when the tree had changes;
    /// `unknown` outside a git checkout.
    pub git_commit: String,
    /// `/proc/sys/kernel/hostname` (empty when unreadable).
    pub hostname: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The first `model name` of /proc/cpuinfo, or `unknown`.
    pub cpu_model: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// `MemTotal` of /proc/meminfo, in bytes (0 when unreadable).
    pub memory_bytes: u64,
    /// The filesystem holding the data path.
    pub filesystem: Filesystem,
}

/// The filesystem holding the data, from /proc/self/mountinfo and sysfs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Filesystem {
    /// The data path, canonical where it (or an ancestor) exists.
    pub path: PathBuf,
    /// Filesystem type, e.g. `ext4`, `xfs` (empty: no mount found).
    pub fs_type: String,
    /// Where the filesystem is mounted.
    pub mount_point: String,
    /// What is mounted, e.g. `/dev/nvme0n1p1`.
    pub mount_source: String,
    /// The mount's per-mount and superblock options, comma-separated.
    pub mount_options: String,
    /// Block device model, or its name when sysfs has no model (virtio disks).
    pub device: String,
}

/// The environment now, with the filesystem holding `data_path`; facts that cannot be read
/// are left empty or `unknown`, never an error.
pub fn collect(data_path: &Path) -> Environment {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_bytes = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    Environment {
        gdswap_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: env!("GDSWAP_GIT_COMMIT").to_string(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        kernel: sys::kernel_release(),
        cpu_model,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_bytes,
        filesystem: filesystem_of(data_path),
    }
}

/// The mount holding `path` (the longest mount point that is a prefix of its canonical form).
pub fn filesystem_of(path: &Path) -> Filesystem {
    let canonical = existing_ancestor(path)
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| path.to_path_buf());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, Filesystem, String)> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        let mount_point = unescape(l[4]);
        if !canonical.starts_with(&mount_point) {
            continue;
        }
        let depth = mount_point.len();
        if best.as_ref().is_some_and(|(d, _, _)| *d > depth) {
            continue;
        }
        let fs = Filesystem {
            path: canonical.clone(),
            fs_type: r[0].to_string(),
            mount_point,
            mount_source: unescape(r[1]),
            mount_options: format!("{},{}", l[5], r[2]),
            device: String::new(),
        };
        best = Some((depth, fs, l[2].to_string()));
    }
    match best {
        Some((_, mut fs, dev)) => {
            fs.device = device_model(&dev).unwrap_or_else(|| fs.mount_source.clone());
            fs
        }
        None => Filesystem {
            path: canonical,
            ..Filesystem::default()
        },
    }
}

fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    abs.ancestors().find(|p| p.exists()).map(Path::to_path_buf)
}

/// Model of the block device `major:minor` (or of its parent disk, for a partition).
fn device_model(major_minor: &str) -> Option<String> {
    let base = PathBuf::from(format!("/sys/dev/block/{major_minor}"));
    let name = std::fs::read_to_string(base.join("uevent"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string))?;
    for candidate in [base.join("device/model"), base.join("../device/model")] {
        if let Ok(m) = std::fs::read_to_string(candidate) {
            let m = m.trim();
            if !m.is_empty() {
                return Some(format!("{m} ({name})"));
            }
        }
    }
    let virtio = std::fs::read_link(base.join("device"))
        .or_else(|_| std::fs::read_link(base.join("../device")));
    match virtio {
        Ok(l) if l.to_string_lossy().contains("virtio") => Some(format!("virtio disk ({name})")),
        _ => Some(name),
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_filesystem_is_found() {
        let fs = filesystem_of(Path::new("/"));
        assert_eq!(fs.mount_point, "/");
        assert!(!fs.fs_type.is_empty());
        let env = collect(Path::new("."));
        assert!(env.cpus >= 1 && env.memory_bytes > 0 && !env.kernel.is_empty());
        assert!(!env.filesystem.fs_type.is_empty());
    }

    #[test]
    fn missing_paths_resolve_to_their_existing_ancestor() {
        let fs = filesystem_of(Path::new("/tmp/definitely/not/here"));
        assert!(!fs.fs_type.is_empty());
    }
}
