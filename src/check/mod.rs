//! `gdswap check`: a node report in the spirit of `gdscheck -p`, for lab qualification.
//!
//! Why: a GDS benchmark result means little until one knows which libraries were there, what
//! the data path is mounted as, whether O_DIRECT works on it and which device and NUMA node it
//! sits on. This module collects those facts as values ([`NodeReport`], serialisable as JSON with
//! the schema tag [`SCHEMA`]) and ends with a verdict per backend; the CLI prints them and picks
//! the exit status. Nothing here needs CUDA: the GPU list asks the driver (through
//! [`crate::cuda`], which never panics) only when libcuda loads, and where a row needs the GPU
//! (GPU list, cuFile driver properties), it says why it was not examined. The cuFile driver is opened only in a child
//! process with a time limit ([`driver_probe`]), and by default only when libcuda is there:
//! without it the open fails (cuFile 1.14) or can hang (1.20), and it prints to stdout.

/// The cuFile driver probe lives with cuFile (`cufile::probe`); `check` runs it.
pub use crate::cufile::probe as driver_probe;
pub mod human;
pub mod path;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::backend::{self, Availability, BackendId};
use crate::cufile::loader::{self, LibcudaProbe};
use crate::cufile::path::{self as gds_verdict, Strict};
use crate::io::{sys, uring};
use crate::types::{GdsPath, GdsVerdict};

/// The JSON schema tag of a check report.
pub const SCHEMA: &str = "gdswap.check.v1";

/// Every backend a verdict is given for, in order.
pub const BACKENDS: [BackendId; 4] = BackendId::ALL;

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The data path (file or directory) the rows about filesystems are for.
    pub path: PathBuf,
    /// A libcufile to examine instead of the default search (else `GDSWAP_CUFILE_PATH`).
    pub cufile: Option<PathBuf>,
    /// How to open the cuFile driver; `None`: never (the row says so).
    pub driver_probe: Option<DriverProbeOptions>,
}

/// Opening the cuFile driver in a child process.
#[derive(Debug, Clone)]
pub struct DriverProbeOptions {
    /// The gdswap binary (it has the hidden `cufile-probe` subcommand).
    pub exe: PathBuf,
    /// Open it even without libcuda (to see how the library fails).
    pub force: bool,
    /// The child is killed after this long.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub schema: &'static str,
    pub gdswap_version: String,
    pub git_commit: String,
    pub hostname: String,
    pub kernel: String,
    pub libcuda: LibcudaRow,
    pub libcufile: CuFileRow,
    pub gpus: GpusRow,
    pub cufile_driver: DriverRow,
    pub cufile_json: CuFileJson,
    pub path: path::PathReport,
    pub io_uring: UringRow,
    pub memlock: MemlockRow,
    pub verdicts: Vec<Verdict>,
}

/// One failed attempt to load a library.
#[derive(Debug, Clone, Serialize)]
pub struct Tried {
    pub name: String,
    pub why: String,
}

fn tried(attempts: &[loader::Attempt]) -> Vec<Tried> {
    attempts
        .iter()
        .map(|a| Tried {
            name: Path::new(&a.candidate.name).display().to_string(),
            why: a.why.clone(),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct LibcudaRow {
    pub found: bool,
    pub path: Option<PathBuf>,
    /// The newest CUDA version the driver supports (`12.4`), from `cuDriverGetVersion`.
    pub driver_cuda_version: Option<String>,
    pub tried: Vec<Tried>,
}

impl LibcudaRow {
    fn from_probe(p: LibcudaProbe) -> Self {
        LibcudaRow {
            found: p.file.is_some(),
            path: p.file,
            driver_cuda_version: p
                .driver_version
                .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
            tried: tried(&p.attempts),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CuFileRow {
    pub found: bool,
    pub path: Option<PathBuf>,
    /// From `cuFileGetVersion` (`1.14`), when the library has it.
    pub version: Option<String>,
    /// Optional API groups: present or not, and since which version.
    pub groups: Vec<GroupRow>,
    pub tried: Vec<Tried>,
    /// The loader's whole message when nothing loaded.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    pub name: &'static str,
    pub present: bool,
    pub since: &'static str,
    pub missing: Vec<&'static str>,
}

/// The CUDA devices the driver sees, or why they were not examined.
#[derive(Debug, Clone, Serialize)]
pub struct GpusRow {
    pub examined: bool,
    /// Why not examined (then `devices` is empty); `null` when examined.
    pub reason: Option<String>,
    pub devices: Vec<GpuRow>,
}

/// One CUDA device. A field the driver or sysfs could not give is `null`, and `unavailable`
/// says why, by field name.
#[derive(Debug, Clone, Serialize)]
pub struct GpuRow {
    pub ordinal: usize,
    pub name: Option<String>,
    pub total_memory_bytes: Option<u64>,
    /// As the driver writes it (`cuDeviceGetPCIBusId`), e.g. `0000:3B:00.0`.
    pub pci_bus_id: Option<String>,
    /// From `/sys/bus/pci/devices/<bus id>/numa_node`; -1: no affinity reported.
    pub numa_node: Option<i64>,
    pub unavailable: BTreeMap<&'static str, String>,
}

fn gpus_row(libcuda: &LibcudaRow, no_gpu_reason: &str) -> GpusRow {
    let not = |reason: String| GpusRow {
        examined: false,
        reason: Some(reason),
        devices: Vec::new(),
    };
    if !libcuda.found {
        return not(no_gpu_reason.to_string());
    }
    match crate::cuda::device::list_devices() {
        Err(why) => not(why),
        Ok(list) => GpusRow {
            examined: true,
            reason: None,
            devices: list.into_iter().map(gpu_row).collect(),
        },
    }
}

fn gpu_row(d: crate::cuda::device::DeviceInfo) -> GpuRow {
    /// The value, or `None` with why noted under the field's name.
    fn field<T>(
        unavailable: &mut BTreeMap<&'static str, String>,
        name: &'static str,
        r: Result<T, String>,
    ) -> Option<T> {
        r.map_err(|why| unavailable.insert(name, why)).ok()
    }
    let mut u = BTreeMap::new();
    let name = field(&mut u, "name", d.name);
    let total_memory_bytes = field(&mut u, "total_memory_bytes", d.total_memory);
    let pci_bus_id = field(&mut u, "pci_bus_id", d.pci_bus_id);
    let numa = match &pci_bus_id {
        Some(id) => numa_node_of(id),
        None => Err("unknown: no PCI bus id".to_string()),
    };
    let numa_node = field(&mut u, "numa_node", numa);
    GpuRow {
        ordinal: d.ordinal,
        name,
        total_memory_bytes,
        pci_bus_id,
        numa_node,
        unavailable: u,
    }
}

/// The name sysfs gives a PCI device: the driver's bus id lowercased, with a 4-digit domain
/// (`0000:3B:00.0` and `00000000:3B:00.0` are `0000:3b:00.0`; `3B:00.0` gets domain 0000).
fn sysfs_pci_name(bus_id: &str) -> String {
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

fn numa_node_of(bus_id: &str) -> Result<i64, String> {
    let file = Path::new("/sys/bus/pci/devices")
        .join(sysfs_pci_name(bus_id))
        .join("numa_node");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{}: {e}: {:?}", file.display(), text.trim()))
}

/// The cuFile driver, opened in child processes: plainly (properties), then strictly (compat
/// mode disallowed, the checked file registered).
#[derive(Debug, Clone, Serialize)]
pub struct DriverRow {
    pub examined: bool,
    /// Why it was not examined.
    pub reason: Option<String>,
    pub plain: Option<driver_probe::ChildResult>,
    pub strict: Option<driver_probe::ChildResult>,
}

/// The cufile.json cuFile would read.
#[derive(Debug, Clone, Serialize)]
pub struct CuFileJson {
    pub path: PathBuf,
    /// Named by `CUFILE_ENV_PATH_JSON` (else the default `/etc/cufile.json`).
    pub from_env: bool,
    pub exists: bool,
    /// `properties.allow_compat_mode` when the file sets it.
    pub allow_compat_mode: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UringRow {
    pub works: bool,
    /// `defer-taskrun`, `coop-taskrun` or `default`: the cheapest mode the kernel accepted.
    pub mode: Option<&'static str>,
    pub error: Option<String>,
    /// The opcodes gdswap uses or could use, and whether the kernel supports each.
    pub opcodes: Vec<OpcodeRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpcodeRow {
    pub name: &'static str,
    pub supported: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemlockRow {
    /// RLIMIT_MEMLOCK (soft) in bytes; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// CAP_IPC_LOCK in the effective set: the limit does not apply.
    pub cap_ipc_lock: bool,
}

/// Whether one backend can run here, and why (not).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub backend: BackendId,
    pub available: bool,
    pub reason: String,
    /// For `gds`: the path a transfer on the checked file would take: `gpudirect (nvidia-fs)`,
    /// `gpudirect (p2pdma)`, `compat (posix via host bounce)`, `unknown`, or `none` (gds
    /// cannot run at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gds_path: Option<GdsPath>,
    /// Why that path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gds_path_reason: Option<String>,
}

/// Collects every row and the verdicts.
pub fn collect(opts: &CheckOptions) -> NodeReport {
    let env = crate::env::collect(&opts.path);
    let libcuda = LibcudaRow::from_probe(loader::probe_libcuda());
    let libcufile = cufile_row(opts.cufile.as_deref());
    // The reason of the rows that need libcuda, when it is not found.
    let no_gpu_reason = "no CUDA driver: libcuda.so.1 not found".to_string();
    let path = path::examine(&opts.path);
    let io_uring = uring_row();
    let mut report = NodeReport {
        schema: SCHEMA,
        gdswap_version: env.gdswap_version,
        git_commit: env.git_commit,
        hostname: env.hostname,
        kernel: env.kernel,
        gpus: gpus_row(&libcuda, &no_gpu_reason),
        cufile_driver: driver_row(opts, &libcufile, &libcuda, &no_gpu_reason),
        libcuda,
        libcufile,
        cufile_json: cufile_json(),
        path,
        io_uring,
        memlock: MemlockRow {
            limit_bytes: Some(sys::memlock_limit()).filter(|l| *l != u64::MAX),
            cap_ipc_lock: sys::has_cap_ipc_lock(),
        },
        verdicts: Vec::new(),
    };
    report.verdicts = verdicts(&report);
    report
}

fn driver_row(
    opts: &CheckOptions,
    libcufile: &CuFileRow,
    libcuda: &LibcudaRow,
    no_gpu_reason: &str,
) -> DriverRow {
    let not = |reason: String| DriverRow {
        examined: false,
        reason: Some(reason),
        plain: None,
        strict: None,
    };
    let Some(probe) = &opts.driver_probe else {
        return not("not opened by this caller".into());
    };
    if !libcufile.found {
        return not("libcufile not found".into());
    }
    if !libcuda.found && !probe.force {
        return not(format!(
            "not opened: {no_gpu_reason} (--open-driver opens it anyway)"
        ));
    }
    let cufile = opts.cufile.as_deref();
    let plain = driver_probe::probe_in_child(&probe.exe, cufile, &opts.path, false, probe.timeout);
    // The strict probe needs the parameter API and a driver that opens at all.
    let has_params = libcufile
        .groups
        .iter()
        .any(|g| g.name == "parameters" && g.present);
    let strict = (has_params && plain.outcome.as_ref().is_some_and(|o| o.opened))
        .then(|| driver_probe::probe_in_child(&probe.exe, cufile, &opts.path, true, probe.timeout));
    DriverRow {
        examined: true,
        reason: None,
        plain: Some(plain),
        strict,
    }
}

fn cufile_row(explicit: Option<&Path>) -> CuFileRow {
    match loader::load(explicit) {
        Ok(lib) => CuFileRow {
            found: true,
            path: Some(PathBuf::from(lib.describe())),
            version: match lib.version() {
                Some(Ok(v)) => Some(v.to_string()),
                Some(Err(e)) => Some(format!("unreadable: {e}")),
                None => None,
            },
            groups: lib
                .groups()
                .iter()
                .map(|g| GroupRow {
                    name: g.name,
                    present: g.present,
                    since: g.since,
                    missing: g.missing.clone(),
                })
                .collect(),
            tried: Vec::new(),
            error: None,
        },
        Err(e) => CuFileRow {
            found: false,
            path: None,
            version: None,
            groups: Vec::new(),
            tried: tried(&e.attempts),
            error: Some(e.to_string()),
        },
    }
}

fn cufile_json() -> CuFileJson {
    let env = std::env::var_os("CUFILE_ENV_PATH_JSON").filter(|v| !v.is_empty());
    let from_env = env.is_some();
    let path = env
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/cufile.json"));
    let text = std::fs::read_to_string(&path).ok();
    CuFileJson {
        exists: text.is_some(),
        allow_compat_mode: text.as_deref().and_then(json_bool("allow_compat_mode")),
        path,
        from_env,
    }
}

/// The value of `"key": true|false` in a cufile.json, which has `//` comments and so is not
/// JSON: the first uncommented occurrence wins.
fn json_bool(key: &'static str) -> impl Fn(&str) -> Option<bool> {
    move |text: &str| {
        let quoted = format!("\"{key}\"");
        text.lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .find_map(|l| {
                let rest = l.split_once(quoted.as_str())?.1.trim_start();
                let value = rest.strip_prefix(':')?.trim_start();
                if value.starts_with("true") {
                    Some(true)
                } else if value.starts_with("false") {
                    Some(false)
                } else {
                    None
                }
            })
    }
}

fn uring_row() -> UringRow {
    use io_uring::opcode;
    match uring::new_ring(2) {
        Err(e) => UringRow {
            works: false,
            mode: None,
            error: Some(uring::unavailable_reason().unwrap_or_else(|| e.to_string())),
            opcodes: Vec::new(),
        },
        Ok((ring, mode)) => {
            let mut probe = io_uring::Probe::new();
            let probed = ring.submitter().register_probe(&mut probe);
            let ops: [(&'static str, u8); 9] = [
                ("READ", opcode::Read::CODE),
                ("WRITE", opcode::Write::CODE),
                ("READV", opcode::Readv::CODE),
                ("WRITEV", opcode::Writev::CODE),
                ("READ_FIXED", opcode::ReadFixed::CODE),
                ("WRITE_FIXED", opcode::WriteFixed::CODE),
                ("FSYNC", opcode::Fsync::CODE),
                ("OPENAT", opcode::OpenAt::CODE),
                ("URING_CMD", opcode::UringCmd16::CODE),
            ];
            UringRow {
                works: true,
                mode: Some(mode),
                error: probed
                    .as_ref()
                    .err()
                    .map(|e| format!("IORING_REGISTER_PROBE failed: {e}")),
                opcodes: if probed.is_ok() {
                    ops.iter()
                        .map(|(name, code)| OpcodeRow {
                            name,
                            supported: probe.is_supported(*code),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            }
        }
    }
}

/// A verdict per backend in [`BACKENDS`], from the backends this build has and the rows.
fn verdicts(r: &NodeReport) -> Vec<Verdict> {
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
            let b = backend::get(name);
            let verdict = |available: bool, reason: String| Verdict {
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
                    ),
                ),
                BackendId::Gds => match crate::cuda::driver::load() {
                    Ok(_) => verdict(true, b.summary().to_string()),
                    Err(why) => verdict(false, why),
                },
                _ => match b.probe() {
                    Availability::Available => verdict(true, b.summary().to_string()),
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
    if let Some(p) = plain.as_ref().filter(|p| !p.opened) {
        return GdsVerdict::new(
            GdsPath::None,
            format!(
                "the cuFile driver does not open: {}",
                p.error.as_deref().unwrap_or("")
            ),
        );
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

impl NodeReport {
    /// The verdict of `backend`, if it is one of [`BACKENDS`].
    pub fn verdict(&self, backend: BackendId) -> Option<&Verdict> {
        self.verdicts.iter().find(|v| v.backend == backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_names_pci_devices_lowercase_with_a_4_digit_domain() {
        assert_eq!(sysfs_pci_name("0000:3B:00.0"), "0000:3b:00.0");
        assert_eq!(sysfs_pci_name("00000000:3B:00.0"), "0000:3b:00.0");
        assert_eq!(sysfs_pci_name("0001:C1:00.0\n"), "0001:c1:00.0");
        assert_eq!(sysfs_pci_name("3B:00.0"), "0000:3b:00.0");
        assert_eq!(sysfs_pci_name("nonsense"), "nonsense");
    }

    #[test]
    fn cufile_json_values_ignore_comments() {
        let text = r#"{
            // "allow_compat_mode": false,
            "properties": {
                "use_poll_mode" : false,
                "allow_compat_mode" : true, // on by default
            }
        }"#;
        assert_eq!(json_bool("allow_compat_mode")(text), Some(true));
        assert_eq!(json_bool("use_poll_mode")(text), Some(false));
        assert_eq!(json_bool("max_direct_io_size_kb")(text), None);
    }

    #[test]
    fn report_on_a_scratch_directory() {
        let dir = crate::testutil::scratch_dir();
        let r = collect(&CheckOptions {
            path: dir.path().to_path_buf(),
            cufile: Some(dir.path().join("no-libcufile.so")),
            driver_probe: None,
        });
        assert!(!r.cufile_driver.examined);
        assert_eq!(r.schema, SCHEMA);
        assert!(!r.libcufile.found);
        assert_eq!(r.libcufile.tried.len(), 1);
        assert!(
            r.libcufile.tried[0].why.contains("No such file"),
            "{:?}",
            r.libcufile
        );
        let names: Vec<_> = r.verdicts.iter().map(|v| v.backend).collect();
        assert_eq!(names, BACKENDS);
        let gds = r.verdict(BackendId::Gds).unwrap();
        assert!(!gds.available);
        assert!(gds.gds_path.is_some());
        assert!(r.verdict(BackendId::Posix).unwrap().available == r.path.o_direct.works);
        if !r.libcuda.found {
            assert_eq!(gds.gds_path, Some(GdsPath::None));
            assert_eq!(gds.gds_path_reason.as_deref(), Some("no CUDA driver"));
            assert!(
                gds.reason.contains("libcuda.so.1 not found"),
                "{}",
                gds.reason
            );
        }
    }

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
    }
}
