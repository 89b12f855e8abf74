//! The verdicts: whether each backend can run here, and the path a `gds` transfer would take.

use serde::Serialize;

use super::{driver_probe, NodeReport, BACKENDS};
use crate::backend::{self, Availability, BackendId};
use crate::cufile::path::{self as gds_verdict, Strict};
use crate::error::{msg, Message, Setting};
use crate::types::{GdsPath, GdsVerdict};

/// Whether one backend can run here, and why (not).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The backend.
    pub backend: BackendId,
    /// Whether it can run here.
    pub available: bool,
    /// Why it can or cannot run (it may name settings).
    pub reason: crate::error::Message,
    /// For `gds`: the path a transfer on the checked file would take: `gpudirect (nvidia-fs)`,
    /// `gpudirect (p2pdma)`, `compat (posix via host bounce)`, `unknown`, or `none` (gds
    /// cannot run at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gds_path: Option<GdsPath>,
    /// Why that path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gds_path_reason: Option<String>,
}

/// A verdict per backend in [`BACKENDS`], from the backends this build has and the rows.
pub(super) fn verdicts(r: &NodeReport) -> Vec<Verdict> {
    let direct = if r.path.o_direct.works || r.path.kind == "missing" {
        None
    } else {
        Some(msg![
            format!(
                "O_DIRECT does not work on {}: {} (runs need ",
                r.path.path.display(),
                r.path.o_direct.detail
            ),
            Setting::Buffered,
            ", which measures the page cache)"
        ])
    };
    BACKENDS
        .iter()
        .map(|&name| {
            let b = backend::get(name);
            let verdict = |available: bool, reason: Message| Verdict {
                backend: name,
                available,
                reason,
                gds_path: None,
                gds_path_reason: None,
            };
            let mut v = match name {
                // gds from the check's own rows: they honour `--cufile`, and libcuda is
                // looked for before cuFile is touched.
                BackendId::Gds if !r.libcuda.found => verdict(
                    false,
                    "no CUDA driver: libcuda.so.1 not found (install the NVIDIA driver)".into(),
                ),
                BackendId::Gds if !r.libcufile.found => verdict(
                    false,
                    format!(
                        "libcufile not found: {}",
                        r.libcufile.error.as_deref().unwrap_or("")
                    )
                    .into(),
                ),
                BackendId::Gds => match (crate::cuda::driver::load(), refused_file(r)) {
                    (Err(why), _) => verdict(false, why.into()),
                    (Ok(_), Some(why)) => verdict(false, why.into()),
                    (Ok(_), None) => verdict(true, b.summary().into()),
                },
                _ => match b.probe() {
                    Availability::Available => verdict(true, b.summary().into()),
                    Availability::Unavailable(why) => verdict(false, why),
                },
            };
            if v.available {
                if let Some(d) = &direct {
                    v.available = false;
                    v.reason = d.clone();
                }
            }
            if name == BackendId::Gds {
                let g = gds_path(r);
                v.gds_path = Some(g.path);
                v.gds_path_reason = Some(g.reason);
            }
            v
        })
        .collect()
}

/// Why cuFile cannot be used on the checked path at all, from the plain probe (compat mode as
/// configured), in the words of [`driver_probe::unusable`] (which the `gds` backend's
/// preflight uses too): the driver does not open (5001 where nvidia-fs is not loaded and
/// cufile.json disallows compat mode), cuFile refuses the file whatever compat mode (5027 for
/// every file on a VM with libcufile 1.15.1, bench-results/2026-12-04-gpu-checks-h200), or
/// cufile.json disallows compat mode and the file is not on a GPUDirect path (5008). A `gds`
/// run there is refused at preflight, where the backend runs the same probe.
fn refused_file(r: &NodeReport) -> Option<String> {
    // Only cuFile's own verdict: a directory the probe could not write its scratch file in
    // (read-only, no permission) says nothing about cuFile.
    let plain = r.cufile_driver.plain.as_ref()?.outcome.as_ref()?;
    let config = driver_probe::CompatConfig {
        path: r.cufile_json.path.clone(),
        allow_compat_mode: r.cufile_json.allow_compat_mode,
    };
    driver_probe::unusable(
        plain,
        &format!("files on {}", r.path.path.display()),
        &config,
    )
}

/// The path a `gds` transfer on the checked file would take: `none` where gds cannot move data
/// at all (no CUDA driver, no libcufile, a driver that does not open), else cuFile's one verdict
/// ([`crate::cufile::path::decide_probe`], which the `gds` backend's runs use too) from the
/// probes' rows and the data path's filesystem.
fn gds_path(r: &NodeReport) -> GdsVerdict {
    if !r.libcuda.found {
        return GdsVerdict::new(GdsPath::None, "no CUDA driver");
    }
    if !r.libcufile.found {
        return GdsVerdict::new(GdsPath::None, "no libcufile");
    }
    let outcome =
        |c: &Option<driver_probe::ChildResult>| c.as_ref().and_then(|c| c.outcome.clone());
    let plain = outcome(&r.cufile_driver.plain);
    if let Some(why) = refused_file(r) {
        return GdsVerdict::new(GdsPath::None, why);
    }
    let strict = match &r.cufile_driver.strict {
        Some(c) => match &c.outcome {
            Some(o) => Strict::of(o),
            None => Strict::NotRun(format!(
                "strict probe: {}",
                c.failure.as_deref().unwrap_or("no outcome")
            )),
        },
        None => Strict::NotRun(match &r.cufile_driver.reason {
            Some(why) => format!("the driver was not examined: {why}"),
            None => "no strict probe ran".into(),
        }),
    };
    let filesystem =
        (r.path.gds_filesystem_ok == Some(false)).then_some(r.path.gds_filesystem_note.as_str());
    gds_verdict::decide_probe(
        plain.as_ref().and_then(|p| p.properties.as_ref()),
        &strict,
        gds_verdict::forced_compat(),
        filesystem,
    )
}

#[cfg(test)]
mod tests {
    use super::super::{collect, CheckOptions};
    use super::*;

    #[test]
    fn the_gds_path_is_cufiles_one_verdict_on_the_probes_rows() {
        use crate::cufile::probe::{ChildResult, ProbeOutcome, Registration};
        let dir = crate::testutil::scratch_dir();
        let mut r = collect(&CheckOptions {
            path: dir.path().to_path_buf(),
            cufile: Some(dir.path().join("no-libcufile.so")),
            driver_probe: None,
        });
        // As on a GPU node whose probes ran: nvidia-fs loaded, the file registered with compat
        // mode disallowed.
        r.libcuda.found = true;
        r.libcufile.found = true;
        r.path.gds_filesystem_ok = Some(true);
        let props = |posix_io_mode: bool| crate::cufile::DriverProperties {
            nvidia_fs_version: Some("2.17".into()),
            supported: vec!["nvme".into()],
            unknown_status_bits: vec![],
            allow_compat_mode: false,
            posix_io_mode,
            fallback_io_mode: false,
            use_poll_mode: false,
            poll_threshold_kb: 4,
            max_direct_io_kb: 16384,
            features: vec![],
            max_device_cache_kb: 0,
            per_buffer_cache_kb: 0,
            max_device_pinned_mem_kb: 0,
            max_batch_io_size: 128,
            max_batch_io_timeout_ms: 5,
        };
        let child = |posix_io_mode: bool, registered: bool| ChildResult {
            outcome: Some(ProbeOutcome {
                opened: true,
                error: None,
                properties: Some(props(posix_io_mode)),
                file_registration: registered.then(|| Registration {
                    file: dir.path().join("probe"),
                    ok: true,
                    not_supported: false,
                    cufile_refused: false,
                    detail: "registered".into(),
                }),
            }),
            failure: None,
            log_tail: vec![],
            timed_out: false,
        };
        r.cufile_driver.plain = Some(child(false, false));
        r.cufile_driver.strict = Some(child(false, true));
        assert_eq!(gds_path(&r).path, GdsPath::NvidiaFs);
        // cuFile's POSIX I/O mode (1.17+) makes every I/O POSIX, even with nvidia-fs loaded
        // and the file registered: compat, as a gds run says (check used to say nvidia-fs).
        r.cufile_driver.plain = Some(child(true, false));
        r.cufile_driver.strict = Some(child(true, true));
        let v = gds_path(&r);
        assert_eq!(v.path, GdsPath::Compat, "{v:?}");
        assert!(v.reason.contains("posix_io_mode"), "{v:?}");
        // No probe, and a filesystem GDS does not take: compat, with the filesystem's note.
        r.cufile_driver.plain = Some(child(false, false));
        r.cufile_driver.strict = None;
        r.path.gds_filesystem_ok = Some(false);
        r.path.gds_filesystem_note = "tmpfs: no GDS".into();
        let v = gds_path(&r);
        assert_eq!(v.path, GdsPath::Compat, "{v:?}");
        assert!(v.reason.starts_with("tmpfs: no GDS"), "{v:?}");
        // A file cuFile refuses even with compat mode allowed (5027 for every file on a VM
        // whose disk has no udev properties): gds cannot run on this path at all.
        assert_eq!(refused_file(&r), None);
        let mut plain = child(false, false);
        let refusal = |cufile_refused: bool, detail: &str| Registration {
            file: dir.path().join("probe"),
            ok: false,
            not_supported: false,
            cufile_refused,
            detail: detail.into(),
        };
        // A scratch file the probe could not create is not cuFile's refusal.
        plain.outcome.as_mut().unwrap().file_registration =
            Some(refusal(false, "create failed: Read-only file system"));
        r.cufile_driver.plain = Some(plain.clone());
        assert_eq!(refused_file(&r), None);
        plain.outcome.as_mut().unwrap().file_registration = Some(refusal(
            true,
            "cuFileHandleRegister failed: CU_FILE_HANDLE_NOT_REGISTERED (5027)",
        ));
        r.cufile_driver.plain = Some(plain);
        let v = gds_path(&r);
        assert_eq!(v.path, GdsPath::None, "{v:?}");
        assert!(v.reason.contains("cannot register files on") && v.reason.contains("(5027)"));
        assert_eq!(refused_file(&r).as_deref(), Some(v.reason.as_str()));
    }
}
