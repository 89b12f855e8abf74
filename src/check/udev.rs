//! What udev's database says about the data path's block device: the row that explains
//! cuFile's 5027.
//!
//! Why: libcufile's `cuFileHandleRegister` (1.15.1, compat mode included) looks the file's
//! block device up in udev, through libudev.so.1, and needs its ID_FS_USAGE and ID_FS_TYPE,
//! which udevd's blkid rule records in `/run/udev/data/b<major>:<minor>`. Where udevd never ran
//! (many VMs and containers, the H200 VM of bench-results/2026-12-04-gpu-checks-h200) they are
//! missing and every registration fails with 5027 (5030 from 1.14.1; cufile.log "udev
//! property not found: ID_FS_USAGE"); with them the same file registers
//! (tests/cufile_real_io.rs). Reading the entry needs no CUDA, so the check can say so even
//! where the cuFile driver is not opened.

use std::path::PathBuf;

use serde::Serialize;

/// Environment variable naming udev's runtime directory instead of `/run/udev` (for tests).
pub const UDEV_ROOT_ENV: &str = "GDSWAP_UDEV_ROOT";

/// The properties libcufile reads from udev's database entry of one block device.
#[derive(Debug, Clone, Serialize)]
pub struct UdevEntry {
    /// The entry read: `/run/udev/data/b<major>:<minor>`.
    pub entry: PathBuf,
    /// Whether the entry could be read (it is absent where udevd never saw the device).
    pub present: bool,
    /// Its ID_FS_USAGE (`filesystem` for a filesystem), when set.
    pub id_fs_usage: Option<String>,
    /// Its ID_FS_TYPE (`ext4`, `xfs`), when set.
    pub id_fs_type: Option<String>,
}

impl UdevEntry {
    /// Whether both properties libcufile needs are there.
    pub fn complete(&self) -> bool {
        self.id_fs_usage.is_some() && self.id_fs_type.is_some()
    }

    /// The row's text: the properties, or what their absence means for cuFile.
    pub fn describe(&self) -> String {
        if self.complete() {
            return format!(
                "{}: ID_FS_USAGE={}, ID_FS_TYPE={} (what libcufile needs to register files)",
                self.entry.display(),
                self.id_fs_usage.as_deref().unwrap_or_default(),
                self.id_fs_type.as_deref().unwrap_or_default()
            );
        }
        let missing: Vec<&str> = [
            ("ID_FS_USAGE", &self.id_fs_usage),
            ("ID_FS_TYPE", &self.id_fs_type),
        ]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
        format!(
            "{} {}: no {}; libcufile refuses every file on this device with 5027 \
             (CU_FILE_HANDLE_NOT_REGISTERED; 5030 from cuFile 1.14), compat mode too (udevd \
             not running? where it runs, `udevadm trigger --subsystem-match=block` as root \
             records them)",
            self.entry.display(),
            if self.present {
                "lacks them"
            } else {
                "is absent"
            },
            missing.join(" or ")
        )
    }
}

/// udev's runtime directory: `/run/udev`, or `$GDSWAP_UDEV_ROOT` when set and not empty.
pub fn udev_root() -> PathBuf {
    std::env::var_os(UDEV_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/udev"))
}

/// The database entry of block device `major_minor` (`254:0`) under `root`.
pub fn entry_of(root: &std::path::Path, major_minor: &str) -> UdevEntry {
    let entry = root.join("data").join(format!("b{major_minor}"));
    let text = std::fs::read_to_string(&entry).ok();
    // Lines are `E:KEY=VALUE` for properties (other prefixes: symlinks, tags, times).
    let property = |key: &str| {
        text.as_deref().and_then(|t| {
            t.lines()
                .filter_map(|l| l.strip_prefix("E:"))
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        })
    };
    UdevEntry {
        present: text.is_some(),
        id_fs_usage: property("ID_FS_USAGE"),
        id_fs_type: property("ID_FS_TYPE"),
        entry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_two_properties_and_says_what_is_missing() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("data")).unwrap();
        let absent = entry_of(d.path(), "254:0");
        assert!(!absent.present && !absent.complete());
        let text = absent.describe();
        assert!(
            text.contains("b254:0 is absent: no ID_FS_USAGE or ID_FS_TYPE;"),
            "{text}"
        );
        assert!(text.contains("5027"), "{text}");

        std::fs::write(
            d.path().join("data/b254:0"),
            "S:disk/by-path/x\nE:ID_FS_USAGE=filesystem\nE:ID_FS_USAGE_X=no\nI:123\n",
        )
        .unwrap();
        let half = entry_of(d.path(), "254:0");
        assert!(half.present && !half.complete());
        assert_eq!(half.id_fs_usage.as_deref(), Some("filesystem"));
        assert!(
            half.describe().contains("lacks them: no ID_FS_TYPE;"),
            "{}",
            half.describe()
        );

        std::fs::write(
            d.path().join("data/b254:0"),
            "E:ID_FS_TYPE=ext4\nE:ID_FS_USAGE=filesystem\n",
        )
        .unwrap();
        let full = entry_of(d.path(), "254:0");
        assert!(full.complete());
        assert!(full
            .describe()
            .ends_with("b254:0: ID_FS_USAGE=filesystem, ID_FS_TYPE=ext4 (what libcufile needs to register files)"));
    }
}
