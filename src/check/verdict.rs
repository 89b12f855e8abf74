//! The verdicts: whether each backend can run here, and the path a `gds` transfer would take.

use serde::Serialize;

use super::{driver_probe, NodeReport, BACKENDS};
use crate::backend::{self, Availability};

/// Whether one backend can run here, and why (not).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub backend: &'static str,
    pub available: bool,
    pub reason: String,
    /// For `gds`: the path a transfer on the checked file would take: `gpudirect (nvidia-fs)`,
    /// `gpudirect (p2pdma)`, `compat (posix via host bounce)`, `unknown`, or `none` (gds
    /// cannot run at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gds_path: Option<&'static str>,
    /// Why that path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gds_path_reason: Option<String>,
}

/// A verdict per backend in [`BACKENDS`], from the backends this build has and the rows.
pub(super) fn verdicts(r: &NodeReport) -> Vec<Verdict> {
    let direct = if r.path.o_direct.works || r.path.kind == "missing" {
        None
    } else {
        Some(format!(
            "O_DIRECT does not work on {}: {} (runs need --buffered, which measures the page cache)",
            r.path.path.display(),
            r.path.o_direct.detail
        ))
    };
    BACKENDS
        .iter()
        .map(|&name| {
            let built = backend::by_name(name);
            let verdict = |available: bool, reason: String| Verdict {
                backend: name,
                available,
                reason,
                gds_path: None,
                gds_path_reason: None,
            };
            let mut v = match (name, &built) {
                // gds from the check's own rows: they honour `--cufile`, and libcuda is
                // looked for before cuFile is touched.
                ("gds", _) if !r.libcuda.found => verdict(
                    false,
                    "no CUDA driver: libcuda.so.1 not found (install the NVIDIA driver)".into(),
                ),
                ("gds", _) if !r.libcufile.found => verdict(
                    false,
                    format!(
                        "libcufile not found: {}",
                        r.libcufile.error.as_deref().unwrap_or("")
                    ),
                ),
                ("gds", Some(b)) => match crate::cuda::driver::load() {
                    Ok(_) => verdict(true, b.summary().to_string()),
                    Err(why) => verdict(false, why),
                },
                (_, Some(b)) => match b.probe() {
                    Availability::Available => verdict(true, b.summary().to_string()),
                    Availability::Unavailable(why) => verdict(false, why),
                },
                (_, None) if !r.libcuda.found => verdict(
                    false,
                    "no CUDA driver: libcuda.so.1 not found (install the NVIDIA driver)".into(),
                ),
                (_, None) => verdict(
                    false,
                    format!("the {name} backend is not in this build of gdswap"),
                ),
            };
            if v.available {
                if let Some(d) = &direct {
                    v.available = false;
                    v.reason = d.clone();
                }
            }
            if name == "gds" {
                let (path, why) = gds_path(r);
                v.gds_path = Some(path);
                v.gds_path_reason = Some(why);
            }
            v
        })
        .collect()
}

/// The path a `gds` transfer on the checked file would take, as far as the host rows tell.
fn gds_path(r: &NodeReport) -> (&'static str, String) {
    if !r.libcuda.found {
        return ("none", "no CUDA driver".into());
    }
    if !r.libcufile.found {
        return ("none", "no libcufile".into());
    }
    let outcome =
        |c: &Option<driver_probe::ChildResult>| c.as_ref().and_then(|c| c.outcome.clone());
    let plain = outcome(&r.cufile_driver.plain);
    let strict = outcome(&r.cufile_driver.strict);
    if let Some(p) = &plain {
        if !p.opened {
            return (
                "none",
                format!(
                    "the cuFile driver does not open: {}",
                    p.error.as_deref().unwrap_or("")
                ),
            );
        }
    }
    let best = plain
        .as_ref()
        .and_then(|p| p.properties.as_ref())
        .map(|p| p.best_path());
    if let Some(reg) = strict.as_ref().and_then(|s| s.file_registration.as_ref()) {
        if reg.not_supported {
            return (
                "compat (posix via host bounce)",
                format!("strict probe: {}", reg.detail),
            );
        }
        if reg.ok {
            let path = match best {
                Some(b) if b.starts_with("gpudirect") => b,
                _ => "gpudirect (nvidia-fs)",
            };
            return (path, format!("strict probe: {}", reg.detail));
        }
    }
    if r.path.gds_filesystem_ok == Some(false) {
        return (
            "compat (posix via host bounce)",
            r.path.gds_filesystem_note.clone(),
        );
    }
    match best {
        Some(b) if b.starts_with("gpudirect") => (
            "unknown",
            format!("the driver offers {b}, but no per-file probe confirmed it for this path"),
        ),
        Some(b) if b.starts_with("compat") => (
            "compat (posix via host bounce)",
            "no nvidia-fs and no P2PDMA: only compat mode is left".into(),
        ),
        _ => (
            "unknown",
            "needs the cuFile driver properties and a per-file probe on a GPU".into(),
        ),
    }
}
