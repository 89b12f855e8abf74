//! The rows about the data path: filesystem and mount options (and whether GDS can use them),
//! whether O_DIRECT works there, the block device under it, its logical block size and NUMA
//! node. All from the path itself, /proc/self/mountinfo and sysfs; no CUDA needed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::udev::{self, UdevEntry};
use crate::env::{self, Filesystem};
use crate::io::file::{Access, DataFile, ScratchFile};

/// What the check found about one path.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    /// The path as given (`filesystem.path` is its canonical form, or that of its nearest
    /// existing ancestor).
    pub path: PathBuf,
    /// `file`, `directory`, `missing` or `other`.
    pub kind: &'static str,
    /// The filesystem holding the path, and its mount.
    pub filesystem: Filesystem,
    /// Whether GDS can do direct I/O on this filesystem as mounted (`None`: depends on the
    /// vendor's GDS support, e.g. NFS over RDMA, Lustre, GPFS).
    pub gds_filesystem_ok: Option<bool>,
    /// Why, in a few words.
    pub gds_filesystem_note: String,
    /// Whether O_DIRECT works on the path.
    pub o_direct: ODirect,
    /// The block device under the filesystem, when there is one.
    pub block_device: Option<BlockDevice>,
    /// Why there is no block device row, when there is none.
    pub block_device_note: Option<String>,
    /// udev's database entry of the filesystem's block device (`None` without one): what
    /// libcufile needs to register files there ([`super::udev`]).
    pub udev: Option<UdevEntry>,
}

/// Whether O_DIRECT works on the path, and how it was tested.
#[derive(Debug, Clone, Serialize)]
pub struct ODirect {
    /// Whether O_DIRECT worked: the open, and the aligned test transfer where one was made.
    pub works: bool,
    /// The offset/length alignment O_DIRECT needs (statx STATX_DIOALIGN, else 4096).
    pub alignment: Option<u64>,
    /// How it was tested, or the error.
    pub detail: String,
}

/// The block device holding the filesystem (the whole disk for a partition).
#[derive(Debug, Clone, Serialize)]
pub struct BlockDevice {
    /// `major:minor` of the filesystem's device.
    pub major_minor: String,
    /// Kernel name of the disk (`nvme0n1`, `vda`).
    pub name: String,
    /// The partition's name when the filesystem is on one.
    pub partition: Option<String>,
    /// The device's `model` in sysfs.
    pub model: Option<String>,
    /// `queue/logical_block_size` in sysfs, bytes.
    pub logical_block_size: Option<u64>,
    /// The NUMA node of the device's PCI function; `None` when sysfs has none, -1 when the
    /// platform reports no affinity.
    pub numa_node: Option<i64>,
    /// `transport` for NVMe (`pcie`, `tcp`, `rdma`, `fc`), `virtio` for virtio disks.
    pub transport: Option<String>,
}

/// Examines `path` (never fails: what cannot be found is `None` or a note saying why).
pub fn examine(path: &Path) -> PathReport {
    let meta = std::fs::metadata(path);
    let kind = match &meta {
        Ok(m) if m.is_file() => "file",
        Ok(m) if m.is_dir() => "directory",
        Ok(_) => "other",
        Err(_) => "missing",
    };
    let filesystem = env::filesystem_of(path);
    let (gds_filesystem_ok, gds_filesystem_note) = gds_filesystem(&filesystem);
    let o_direct = match kind {
        "file" => o_direct_file(path),
        "directory" => o_direct_dir(path),
        "missing" => ODirect {
            works: false,
            alignment: None,
            detail: format!(
                "not tested: {} does not exist (a write run creates it)",
                path.display()
            ),
        },
        _ => ODirect {
            works: false,
            alignment: None,
            detail: "not tested: not a regular file or a directory".into(),
        },
    };
    // The device of the path, or of its nearest existing ancestor.
    let dev = path
        .ancestors()
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev());
    let (block_device, block_device_note) = match dev.map(block_device_of) {
        Some(Ok(b)) => (Some(b), None),
        Some(Err(note)) => (None, Some(note)),
        None => (
            None,
            Some("the path and its ancestors cannot be examined".into()),
        ),
    };
    let udev = block_device
        .as_ref()
        .map(|b| udev::entry_of(&udev::udev_root(), &b.major_minor));
    PathReport {
        path: path.to_path_buf(),
        kind,
        filesystem,
        gds_filesystem_ok,
        gds_filesystem_note,
        o_direct,
        block_device,
        block_device_note,
        udev,
    }
}

/// Whether GPUDirect Storage can do direct I/O on this filesystem as mounted.
pub fn gds_filesystem(fs: &Filesystem) -> (Option<bool>, String) {
    let data_mode = fs
        .mount_options
        .split(',')
        .find_map(|o| o.strip_prefix("data="));
    match fs.fs_type.as_str() {
        "ext4" => match data_mode {
            None | Some("ordered") => (
                Some(true),
                format!(
                    "ext4 data=ordered{}: supported by GDS (local NVMe)",
                    if data_mode.is_none() {
                        " (the default; not listed)"
                    } else {
                        ""
                    }
                ),
            ),
            Some(m) => (
                Some(false),
                format!("ext4 data={m}: GDS needs data=ordered (remount with -o data=ordered); cuFile would use compat mode"),
            ),
        },
        "xfs" => (Some(true), "xfs: supported by GDS (local NVMe)".into()),
        "nfs" | "nfs4" | "lustre" | "gpfs" | "beegfs" | "wekafs" | "virtiofs" => (
            None,
            format!("{}: GDS needs the vendor's GDS support (RDMA, client version); the driver properties say whether it is there", fs.fs_type),
        ),
        "" => (None, "filesystem unknown".into()),
        other => (
            Some(false),
            format!("{other}: not a filesystem GDS supports; cuFile would use compat mode (POSIX via host memory)"),
        ),
    }
}

/// An aligned scratch block for O_DIRECT.
fn aligned(len: usize, align: usize, f: impl FnOnce(&mut [u8])) {
    let mut v = vec![0u8; len + align];
    let start = v.as_ptr().align_offset(align);
    f(&mut v[start..start + len]);
}

fn o_direct_file(path: &Path) -> ODirect {
    match DataFile::open(path, Access::Read, true) {
        Err(e) => ODirect {
            works: false,
            alignment: None,
            detail: e.to_string(),
        },
        Ok(f) => {
            let align = f.dio_align().max(512);
            let len = f.len().unwrap_or(0);
            if len < align {
                return ODirect {
                    works: true,
                    alignment: Some(f.dio_align()),
                    detail: format!(
                        "opened with O_DIRECT (file shorter than {align} B: no read tried)"
                    ),
                };
            }
            let mut res = Ok(0);
            aligned(align as usize, 4096, |b| res = f.read_at(b, 0, false));
            match res {
                Ok(n) if n as u64 == align => ODirect {
                    works: true,
                    alignment: Some(f.dio_align()),
                    detail: format!("read {align} B at offset 0 with O_DIRECT"),
                },
                Ok(n) => ODirect {
                    works: false,
                    alignment: Some(f.dio_align()),
                    detail: format!("an O_DIRECT read of {align} B returned {n}"),
                },
                Err(e) => ODirect {
                    works: false,
                    alignment: Some(f.dio_align()),
                    detail: format!("an O_DIRECT read of {align} B failed: {e}"),
                },
            }
        }
    }
}

/// Writes and reads back one block in a scratch file in `dir` with O_DIRECT: an unnamed
/// O_TMPFILE, or where the filesystem has none a new file with an unpredictable name created
/// exclusively (removed again). Nothing that was in `dir` is opened or changed.
fn o_direct_dir(dir: &Path) -> ODirect {
    let result = (|| -> Result<(u64, String), String> {
        let f = ScratchFile::create_direct(dir).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EINVAL) {
                " (this filesystem refuses O_DIRECT)"
            } else {
                ""
            };
            format!(
                "cannot create a scratch file in {}: {e}{hint}",
                dir.display()
            )
        })?;
        let align = f.dio_align().max(512) as usize;
        let block = align.max(4096);
        let mut outcome = Ok(());
        aligned(block, 4096, |w| {
            for (i, b) in w.iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            outcome = match f.write_at(w, 0) {
                Ok(n) if n == block => Ok(()),
                Ok(n) => Err(format!("an O_DIRECT write of {block} B wrote {n}")),
                Err(e) => Err(format!("an O_DIRECT write failed: {e}")),
            };
        });
        outcome?;
        let mut outcome = Ok(());
        aligned(block, 4096, |r| {
            outcome = match f.read_at(r, 0) {
                Ok(n) if n == block && r.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8) => {
                    Ok(())
                }
                Ok(n) => Err(format!(
                    "an O_DIRECT read back {n} B that differ from what was written"
                )),
                Err(e) => Err(format!("an O_DIRECT read failed: {e}")),
            };
        });
        outcome?;
        Ok((
            f.dio_align(),
            format!("wrote and read back {block} B with O_DIRECT in a scratch file"),
        ))
    })();
    match result {
        Ok((alignment, detail)) => ODirect {
            works: true,
            alignment: Some(alignment),
            detail,
        },
        Err(detail) => ODirect {
            works: false,
            alignment: None,
            detail,
        },
    }
}

fn read_trim(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The block device behind device number `dev`, from /sys/dev/block.
fn block_device_of(dev: u64) -> Result<BlockDevice, String> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let major_minor = format!("{major}:{minor}");
    let sys = PathBuf::from(format!("/sys/dev/block/{major_minor}"));
    let node = sys.canonicalize().map_err(|_| {
        format!("no block device ({major_minor} is not in /sys/dev/block: a virtual, network or stacked filesystem)")
    })?;
    let own_name = node
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A partition's directory sits inside its disk's and has a `partition` file.
    let (disk, partition) = if node.join("partition").exists() {
        let parent = node.parent().map(Path::to_path_buf).unwrap_or(node.clone());
        (parent, Some(own_name))
    } else {
        (node.clone(), None)
    };
    let name = disk
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let device = disk.join("device").canonicalize().ok();
    let model = device.as_ref().and_then(|d| read_trim(d.join("model")));
    let transport = device.as_ref().and_then(|d| {
        read_trim(d.join("transport")).or_else(|| {
            d.to_string_lossy()
                .contains("/virtio")
                .then(|| "virtio".to_string())
        })
    });
    // The NUMA node: the nearest ancestor of the device (the NVMe controller, its PCI
    // function) that has one.
    let numa_node = device.as_ref().and_then(|d| {
        d.ancestors()
            .take_while(|a| a.starts_with("/sys/devices"))
            .find_map(|a| read_trim(a.join("numa_node")))
            .and_then(|s| s.parse::<i64>().ok())
    });
    Ok(BlockDevice {
        major_minor,
        name,
        partition,
        model,
        logical_block_size: read_trim(disk.join("queue/logical_block_size"))
            .and_then(|s| s.parse().ok()),
        numa_node,
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(t: &str, opts: &str) -> Filesystem {
        Filesystem {
            fs_type: t.into(),
            mount_options: opts.into(),
            ..Filesystem::default()
        }
    }

    #[test]
    fn gds_filesystem_rules() {
        assert_eq!(
            gds_filesystem(&fs("ext4", "rw,relatime,rw,discard")).0,
            Some(true)
        );
        assert_eq!(gds_filesystem(&fs("ext4", "rw,data=ordered")).0, Some(true));
        let (ok, note) = gds_filesystem(&fs("ext4", "rw,data=writeback"));
        assert_eq!(ok, Some(false));
        assert!(note.contains("GDS needs data=ordered"), "{note}");
        assert_eq!(gds_filesystem(&fs("xfs", "rw")).0, Some(true));
        assert_eq!(gds_filesystem(&fs("nfs4", "rw")).0, None);
        let (ok, note) = gds_filesystem(&fs("tmpfs", "rw"));
        assert_eq!(ok, Some(false));
        assert!(note.contains("compat mode"), "{note}");
    }

    #[test]
    fn scratch_dir_rows() {
        let dir = crate::testutil::scratch_dir();
        let r = examine(dir.path());
        assert_eq!(r.kind, "directory");
        assert!(!r.filesystem.fs_type.is_empty());
        // The scratch file is gone again.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = examine(&dir.path().join("nope"));
        assert_eq!(missing.kind, "missing");
        assert!(!missing.o_direct.works);
        assert!(missing.o_direct.detail.contains("does not exist"));
    }
}
