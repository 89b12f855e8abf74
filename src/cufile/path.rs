//! The path a `gds` transfer's bytes take, decided once for everyone who asks: the `gds`
//! backend (for a run or a swap store, from its strict per-file probe, the driver properties
//! and cuFile's statistics) and `gdswap check` (from its probe rows and the data path's
//! filesystem). The verdict is a core value ([`GdsVerdict`], re-exported here and by
//! `report`); this module holds the evidence ([`Strict`]) and the rules ([`decide_probe`],
//! [`decide`]).

pub use crate::types::{GdsPath, GdsVerdict};

use super::probe::ProbeOutcome;
use super::props::DriverProperties;
use super::stats::PathCounts;

/// What the strict per-file probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strict {
    /// The file registered with compat mode disallowed: a direct path.
    Registered,
    /// `CU_FILE_IO_NOT_SUPPORTED` (5008) with compat disallowed: compat mode.
    NotSupported(String),
    /// No verdict, and why.
    NotRun(String),
}

/// The path a `gds` run's bytes took, from the driver properties and the strict probe.
/// Compat mode is said only on evidence (5008 under the strict probe, no nvidia-fs and no
/// P2PDMA in the properties, or compat forced); a direct path only when the strict probe
/// registered the file and the properties name the direct path; anything else is `unknown`.
/// `filesystem`: why the file's filesystem cannot take GPUDirect I/O, when the caller knows
/// (`check`'s path row); it makes the verdict compat only where no probe gave one.
pub fn decide_probe(
    props: Option<&DriverProperties>,
    strict: &Strict,
    forced_compat: bool,
    filesystem: Option<&str>,
) -> GdsVerdict {
    let path = GdsVerdict::new;
    if forced_compat {
        return path(
            GdsPath::Compat,
            "CUFILE_FORCE_COMPAT_MODE is set: cuFile does all I/O in compat mode".into(),
        );
    }
    if let Strict::NotSupported(d) = strict {
        return path(GdsPath::Compat, format!("strict probe: {d}"));
    }
    let best = props.map(DriverProperties::best_path);
    if props.is_some_and(|p| p.posix_io_mode) {
        return path(
            GdsPath::Compat,
            "driver properties: cuFile's POSIX I/O mode is on (posix_io_mode): every I/O is POSIX"
                .into(),
        );
    }
    if best == Some(GdsPath::Compat) {
        return path(
            GdsPath::Compat,
            "driver properties: nvidia-fs not loaded and no PCI P2PDMA".into(),
        );
    }
    match (strict, best) {
        (Strict::Registered, Some(b)) if b.is_direct() => {
            let driver = match props.and_then(|p| p.nvidia_fs_version.as_deref()) {
                Some(v) => format!("nvidia-fs {v}"),
                None => "kernel P2PDMA".into(),
            };
            let fallback = if props.is_some_and(|p| p.fallback_io_mode) {
                "; gds_fallback_io is on: a failing direct I/O is retried through POSIX, which only the statistics can show"
            } else {
                ""
            };
            path(
                b,
                format!("strict probe registered the file with compat mode disallowed; driver: {driver}{fallback}"),
            )
        }
        (Strict::Registered, _) => path(
            GdsPath::Unknown,
            "the strict probe registered the file, but the driver properties name no direct path"
                .into(),
        ),
        (Strict::NotRun(why), _) if filesystem.is_some() => path(
            GdsPath::Compat,
            format!(
                "{}; no per-file probe: {why}",
                filesystem.unwrap_or_default()
            ),
        ),
        (Strict::NotRun(why), Some(GdsPath::None)) => path(
            GdsPath::Unknown,
            format!("the driver offers no path (no nvidia-fs, no P2PDMA, compat mode off), and no per-file probe ran: {why}"),
        ),
        (Strict::NotRun(why), Some(b)) => path(
            GdsPath::Unknown,
            format!("the driver offers {b}, but no per-file probe confirmed it: {why}"),
        ),
        (Strict::NotRun(why), None) => path(
            GdsPath::Unknown,
            format!("no driver properties and no per-file probe: {why}"),
        ),
        (Strict::NotSupported(_), _) => unreachable!("handled above"),
    }
}

/// [`decide_probe`], overruled by cuFile's statistics (1.15+) when they counted any I/O: they
/// say per I/O which path it took. Any POSIX I/O makes the verdict compat.
pub fn decide(
    props: Option<&DriverProperties>,
    strict: &Strict,
    stats: Option<PathCounts>,
    forced_compat: bool,
) -> GdsVerdict {
    let base = decide_probe(props, strict, forced_compat, None);
    let Some(c) = stats.filter(|c| c.total() > 0 && !forced_compat) else {
        return base;
    };
    let (path, what) = if c.posix == 0 {
        (
            if c.p2p > c.nvfs {
                GdsPath::P2pdma
            } else {
                GdsPath::NvidiaFs
            },
            format!(
                "statistics: {} nvidia-fs and {} P2PDMA I/Os, none through POSIX",
                c.nvfs, c.p2p
            ),
        )
    } else if c.nvfs + c.p2p == 0 {
        (
            GdsPath::Compat,
            format!("statistics: all {} I/Os went through POSIX", c.posix),
        )
    } else {
        (
            GdsPath::Compat,
            format!(
                "statistics: {} of {} I/Os went through POSIX",
                c.posix,
                c.total()
            ),
        )
    };
    GdsVerdict::new(path, format!("{what}; {}", base.reason))
}

/// `CUFILE_FORCE_COMPAT_MODE` is set: cuFile does all I/O in compat mode.
pub fn forced_compat() -> bool {
    std::env::var("CUFILE_FORCE_COMPAT_MODE")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"))
}

impl Strict {
    /// What a strict probe's outcome says.
    pub fn of(o: &ProbeOutcome) -> Strict {
        if !o.opened {
            return Strict::NotRun(format!(
                "the driver did not open: {}",
                o.error.as_deref().unwrap_or("no reason given")
            ));
        }
        let Some(r) = &o.file_registration else {
            return Strict::NotRun("the probe registered no file".into());
        };
        // With a cufile.json, the library must have honoured it.
        if o.properties.as_ref().is_some_and(|p| p.allow_compat_mode) {
            return Strict::NotRun("compat mode could not be disallowed for the probe".into());
        }
        if r.not_supported {
            Strict::NotSupported(r.detail.clone())
        } else if r.ok {
            Strict::Registered
        } else {
            Strict::NotRun(r.detail.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(nvfs: bool, p2p: bool, compat: bool) -> DriverProperties {
        DriverProperties {
            nvidia_fs_version: nvfs.then(|| "2.17".to_string()),
            supported: vec!["nvme".into()],
            unknown_status_bits: vec![],
            allow_compat_mode: compat,
            posix_io_mode: false,
            fallback_io_mode: false,
            use_poll_mode: false,
            poll_threshold_kb: 4,
            max_direct_io_kb: 16384,
            features: if p2p { vec!["p2pdma".into()] } else { vec![] },
            max_device_cache_kb: 0,
            per_buffer_cache_kb: 0,
            max_device_pinned_mem_kb: 0,
            max_batch_io_size: 128,
            max_batch_io_timeout_ms: 5,
        }
    }

    #[test]
    fn path_verdicts() {
        let nvfs = props(true, false, true);
        let d = decide_probe(Some(&nvfs), &Strict::Registered, false, None);
        assert_eq!(d.path, GdsPath::NvidiaFs);
        assert!(d.reason.contains("nvidia-fs 2.17"), "{}", d.reason);
        let p2p = props(false, true, true);
        assert_eq!(
            decide_probe(Some(&p2p), &Strict::Registered, false, None).path,
            GdsPath::P2pdma
        );
        // 5008 under the strict probe is compat, whatever the driver offers.
        let d = decide_probe(
            Some(&nvfs),
            &Strict::NotSupported("5008".into()),
            false,
            None,
        );
        assert!(d.is_compat() && d.reason.contains("5008"));
        // No nvidia-fs and no P2PDMA: compat, probe or not.
        let none = props(false, false, true);
        assert!(decide_probe(Some(&none), &Strict::NotRun("x".into()), false, None).is_compat());
        // A direct path offered but not confirmed for this file: unknown.
        let d = decide_probe(
            Some(&nvfs),
            &Strict::NotRun("timed out".into()),
            false,
            None,
        );
        assert_eq!(d.path, GdsPath::Unknown);
        assert!(d.reason.contains("timed out"));
        assert_eq!(
            decide_probe(None, &Strict::NotRun("x".into()), false, None).path,
            GdsPath::Unknown
        );
        assert_eq!(
            decide_probe(None, &Strict::Registered, false, None).path,
            GdsPath::Unknown
        );
        // Forced compat wins.
        assert!(decide_probe(Some(&nvfs), &Strict::Registered, true, None).is_compat());
        // cuFile's POSIX I/O mode (1.17+): compat, though nvidia-fs is loaded and the file
        // registered; the fallback mode is named in a direct verdict.
        let mut posix = props(true, false, true);
        posix.posix_io_mode = true;
        let d = decide_probe(Some(&posix), &Strict::Registered, false, None);
        assert!(d.is_compat() && d.reason.contains("posix_io_mode"), "{d:?}");
        let mut fallback = props(true, false, true);
        fallback.fallback_io_mode = true;
        let d = decide_probe(Some(&fallback), &Strict::Registered, false, None);
        assert_eq!(d.path, GdsPath::NvidiaFs);
        assert!(d.reason.contains("gds_fallback_io is on"), "{d:?}");
    }

    #[test]
    fn statistics_overrule_the_probe() {
        let nvfs = props(true, false, true);
        let c = |posix, nvfs, p2p| Some(PathCounts { posix, nvfs, p2p });
        // The probe said direct, the counters say every I/O went through POSIX.
        let d = decide(Some(&nvfs), &Strict::Registered, c(10, 0, 0), false);
        assert!(d.is_compat());
        assert!(
            d.reason
                .starts_with("statistics: all 10 I/Os went through POSIX; strict probe"),
            "{}",
            d.reason
        );
        let d = decide(Some(&nvfs), &Strict::Registered, c(1, 9, 0), false);
        assert!(
            d.is_compat() && d.reason.contains("1 of 10"),
            "{}",
            d.reason
        );
        // No probe, but every I/O direct.
        let d = decide(Some(&nvfs), &Strict::NotRun("x".into()), c(0, 8, 0), false);
        assert_eq!(d.path, GdsPath::NvidiaFs);
        let d = decide(None, &Strict::NotRun("x".into()), c(0, 0, 8), false);
        assert_eq!(d.path, GdsPath::P2pdma);
        // No counted I/O: the probe's verdict stands.
        let d = decide(Some(&nvfs), &Strict::Registered, c(0, 0, 0), false);
        assert_eq!(
            d,
            decide_probe(Some(&nvfs), &Strict::Registered, false, None)
        );
        assert!(decide(Some(&nvfs), &Strict::Registered, c(0, 5, 0), true).is_compat());
    }

    #[test]
    fn the_filesystem_decides_only_without_a_probe() {
        let nvfs = props(true, false, true);
        let fs = Some("tmpfs: not a filesystem GDS supports");
        let d = decide_probe(Some(&nvfs), &Strict::NotRun("no GPU".into()), false, fs);
        assert!(d.is_compat(), "{d:?}");
        assert!(
            d.reason
                .starts_with("tmpfs: not a filesystem GDS supports; "),
            "{d:?}"
        );
        // A probe's verdict stands over the filesystem's.
        let d = decide_probe(Some(&nvfs), &Strict::Registered, false, fs);
        assert_eq!(d.path, GdsPath::NvidiaFs);
    }

    #[test]
    fn a_strict_outcome_becomes_its_evidence() {
        let reg = |ok, not_supported| ProbeOutcome {
            opened: true,
            error: None,
            properties: Some(props(true, false, false)),
            file_registration: Some(super::super::probe::Registration {
                file: "/f".into(),
                ok,
                not_supported,
                cufile_refused: !ok,
                detail: "d".into(),
            }),
        };
        assert_eq!(Strict::of(&reg(true, false)), Strict::Registered);
        assert_eq!(
            Strict::of(&reg(false, true)),
            Strict::NotSupported("d".into())
        );
        assert_eq!(Strict::of(&reg(false, false)), Strict::NotRun("d".into()));
        // Compat mode still allowed under the probe: no verdict.
        let mut allowed = reg(true, false);
        allowed.properties = Some(props(true, false, true));
        assert!(matches!(Strict::of(&allowed), Strict::NotRun(_)));
        let closed = ProbeOutcome {
            opened: false,
            error: Some("5001".into()),
            properties: None,
            file_registration: None,
        };
        assert!(matches!(Strict::of(&closed), Strict::NotRun(w) if w.contains("5001")));
    }
}
