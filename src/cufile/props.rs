//! The cuFile driver properties (`cuFileDriverGetProperties`) decoded into named facts, and
//! the first, cheapest clue to which path GDS transfers will take.
//!
//! Why decode here: the raw struct is bit positions and bare integers; `gdswap check` and the
//! `gds` backend's path report both need the same reading of it, and it is pure logic that can be
//! tested without a GPU. Sizes are in cuFile's unit, KiB (as in cufile.json and the setters).

use gdswap_ffi::{
    has_bit, CUfileDriverControlFlags as Control, CUfileDriverStatusFlags as Status,
    CUfileDrvProps_t, CUfileFeatureFlags as Feature,
};
use serde::{Deserialize, Serialize};

use crate::types::GdsPath;

/// What the driver properties say, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverProperties {
    /// nvidia-fs version; `None` when nvidia-fs is not loaded (reported as 0.0).
    pub nvidia_fs_version: Option<String>,
    /// Storage the driver supports for direct I/O (`nvme`, `nfs`, ...), from `dstatusflags`.
    pub supported: Vec<String>,
    /// Bits of `dstatusflags` this build has no name for.
    pub unknown_status_bits: Vec<u32>,
    /// `allow_compat_mode`: where the direct path is refused, cuFile falls back to POSIX I/O
    /// through its own bounce buffers instead of failing.
    pub allow_compat_mode: bool,
    /// 1.17+ `posix_io_mode`: every I/O is plain POSIX I/O, never nvidia-fs or P2PDMA.
    #[serde(default)]
    pub posix_io_mode: bool,
    /// 1.17+ `gds_fallback_io`: a GDS I/O that fails is retried through POSIX.
    #[serde(default)]
    pub fallback_io_mode: bool,
    /// `use_poll_mode`: I/O up to `poll_threshold_kb` is completed by polling, not interrupts.
    pub use_poll_mode: bool,
    /// `poll_thresh_size`, KiB: the largest I/O completed by polling in poll mode.
    pub poll_threshold_kb: u64,
    /// `max_direct_io_size`, KiB: larger requests are split into pieces of this size.
    pub max_direct_io_kb: u64,
    /// Features of the library (`batch_io`, `streams`, `p2pdma`, ...), from `fflags`.
    pub features: Vec<String>,
    /// `max_device_cache_size`, KiB: the GPU bounce-buffer cache cuFile keeps per device.
    pub max_device_cache_kb: u32,
    /// `per_buffer_cache_size`, KiB: the size of each of those bounce buffers.
    pub per_buffer_cache_kb: u32,
    /// `max_device_pinned_mem_size`, KiB: the most device memory `cuFileBufRegister` pins per GPU.
    pub max_device_pinned_mem_kb: u32,
    /// `max_batch_io_size`: the most entries one `cuFileBatchIOSetUp` may ask for.
    pub max_batch_io_size: u32,
    /// `max_batch_io_timeout_msecs`: the longest a batch status wait may be given, ms.
    pub max_batch_io_timeout_ms: u32,
}

const STATUS_NAMES: [(Status, &str); 15] = [
    (Status::LUSTRE_SUPPORTED, "lustre"),
    (Status::WEKAFS_SUPPORTED, "wekafs"),
    (Status::NFS_SUPPORTED, "nfs"),
    (Status::GPFS_SUPPORTED, "gpfs"),
    (Status::NVME_SUPPORTED, "nvme"),
    (Status::NVMEOF_SUPPORTED, "nvmeof"),
    (Status::SCSI_SUPPORTED, "scsi"),
    (Status::SCALEFLUX_CSD_SUPPORTED, "scaleflux_csd"),
    (Status::NVMESH_SUPPORTED, "nvmesh"),
    (Status::BEEGFS_SUPPORTED, "beegfs"),
    (Status(10), "yrcloudfile"),
    (Status::NVME_P2P_SUPPORTED, "nvme_p2p"),
    (Status::SCATEFS_SUPPORTED, "scatefs"),
    (Status::VIRTIOFS_SUPPORTED, "virtiofs"),
    (Status::PANFS_SUPPORTED, "panfs"),
];

const FEATURE_NAMES: [(Feature, &str); 5] = [
    (Feature::DYN_ROUTING_SUPPORTED, "dynamic_routing"),
    (Feature::BATCH_IO_SUPPORTED, "batch_io"),
    (Feature::STREAMS_SUPPORTED, "streams"),
    (Feature::PARALLEL_IO_SUPPORTED, "parallel_io"),
    (Feature::P2P_SUPPORTED, "p2pdma"),
];

impl DriverProperties {
    /// Decodes the raw struct: flags to names, sizes copied in cuFile's units.
    pub fn decode(p: &CUfileDrvProps_t) -> DriverProperties {
        let status = p.nvfs.dstatusflags;
        let known = |bit: u32| STATUS_NAMES.iter().any(|(s, _)| s.0 == bit);
        DriverProperties {
            nvidia_fs_version: (p.nvfs.major_version != 0 || p.nvfs.minor_version != 0)
                .then(|| format!("{}.{}", p.nvfs.major_version, p.nvfs.minor_version)),
            supported: STATUS_NAMES
                .iter()
                .filter(|(s, _)| has_bit(status, s.0))
                .map(|(_, n)| n.to_string())
                .collect(),
            unknown_status_bits: (0..32)
                .filter(|b| has_bit(status, *b) && !known(*b))
                .collect(),
            allow_compat_mode: has_bit(p.nvfs.dcontrolflags, Control::ALLOW_COMPAT_MODE.0),
            posix_io_mode: has_bit(p.nvfs.dcontrolflags, Control::POSIX_IO_MODE.0),
            fallback_io_mode: has_bit(p.nvfs.dcontrolflags, Control::FALLBACK_IO_MODE.0),
            use_poll_mode: has_bit(p.nvfs.dcontrolflags, Control::USE_POLL_MODE.0),
            poll_threshold_kb: p.nvfs.poll_thresh_size as u64,
            max_direct_io_kb: p.nvfs.max_direct_io_size as u64,
            features: FEATURE_NAMES
                .iter()
                .filter(|(f, _)| has_bit(p.fflags, f.0))
                .map(|(_, n)| n.to_string())
                .collect(),
            max_device_cache_kb: p.max_device_cache_size,
            per_buffer_cache_kb: p.per_buffer_cache_size,
            max_device_pinned_mem_kb: p.max_device_pinned_mem_size,
            max_batch_io_size: p.max_batch_io_size,
            max_batch_io_timeout_ms: p.max_batch_io_timeout_msecs,
        }
    }

    /// The direct path the driver can offer at best, before any per-file probe:
    /// compat (POSIX) when the POSIX I/O mode is on (1.17+: every I/O is POSIX, nvidia-fs
    /// loaded or not), `gpudirect (nvidia-fs)` when nvidia-fs is loaded, `gpudirect (p2pdma)`
    /// when only kernel PCI P2PDMA is (CUDA 12.8+), else compat mode (if allowed) or nothing.
    pub fn best_path(&self) -> GdsPath {
        if self.posix_io_mode {
            GdsPath::Compat
        } else if self.nvidia_fs_version.is_some() {
            GdsPath::NvidiaFs
        } else if self.features.iter().any(|f| f == "p2pdma")
            || self.supported.iter().any(|s| s == "nvme_p2p")
        {
            GdsPath::P2pdma
        } else if self.allow_compat_mode {
            GdsPath::Compat
        } else {
            GdsPath::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gdswap_ffi::CUfileDrvPropsNvfs;

    fn props(major: u32, minor: u32, status: u32, control: u32, fflags: u32) -> CUfileDrvProps_t {
        CUfileDrvProps_t {
            nvfs: CUfileDrvPropsNvfs {
                major_version: major,
                minor_version: minor,
                poll_thresh_size: 4,
                max_direct_io_size: 16384,
                dstatusflags: status,
                dcontrolflags: control,
            },
            fflags,
            max_device_cache_size: 131072,
            per_buffer_cache_size: 1024,
            max_device_pinned_mem_size: 33554432,
            max_batch_io_size: 128,
            max_batch_io_timeout_msecs: 5,
        }
    }

    #[test]
    fn nvidia_fs_loaded_with_nvme() {
        let d = DriverProperties::decode(&props(2, 17, 1 << 4 | 1 << 2, 1 << 1, 0b1110));
        assert_eq!(d.nvidia_fs_version.as_deref(), Some("2.17"));
        assert_eq!(d.supported, ["nfs", "nvme"]);
        assert!(d.allow_compat_mode && !d.use_poll_mode);
        assert_eq!(d.features, ["batch_io", "streams", "parallel_io"]);
        assert_eq!(d.max_direct_io_kb, 16384);
        assert_eq!(d.best_path(), GdsPath::NvidiaFs);
    }

    #[test]
    fn no_nvidia_fs_means_p2pdma_or_compat() {
        // 1.20 with kernel P2PDMA: fflags bit 4.
        let d = DriverProperties::decode(&props(0, 0, 0, 1 << 1, 1 << 4));
        assert_eq!(d.nvidia_fs_version, None);
        assert_eq!(d.best_path(), GdsPath::P2pdma);
        let d = DriverProperties::decode(&props(0, 0, 0, 1 << 1, 0));
        assert_eq!(d.best_path(), GdsPath::Compat);
        let d = DriverProperties::decode(&props(0, 0, 0, 1 << 0, 0));
        assert!(d.use_poll_mode && !d.allow_compat_mode);
        assert_eq!(d.best_path(), GdsPath::None);
    }

    /// cuFile 1.17+'s POSIX I/O mode (dcontrolflags bit 2) moves every byte with POSIX I/O:
    /// never reported as nvidia-fs, even with nvidia-fs loaded. The fallback mode (bit 4) is
    /// decoded too.
    #[test]
    fn posix_io_mode_is_compat_whatever_else_is_loaded() {
        let d = DriverProperties::decode(&props(2, 17, 1 << 4, 1 << 1 | 1 << 2, 1 << 4));
        assert!(d.posix_io_mode && !d.fallback_io_mode);
        assert_eq!(d.best_path(), GdsPath::Compat);
        let d = DriverProperties::decode(&props(2, 17, 1 << 4, 1 << 4, 0));
        assert!(!d.posix_io_mode && d.fallback_io_mode && !d.allow_compat_mode);
        assert_eq!(d.best_path(), GdsPath::NvidiaFs);
    }

    #[test]
    fn unknown_status_bits_are_kept() {
        let d = DriverProperties::decode(&props(2, 20, 1 << 4 | 1 << 20 | 1 << 31, 0, 0));
        assert_eq!(d.supported, ["nvme"]);
        assert_eq!(d.unknown_status_bits, [20, 31]);
    }
}
