//! Opening the cuFile driver for `gdswap check`, in a child process with a time limit.
//!
//! Why a child: `cuFileDriverOpen` prints to stdout, writes `cufile.log` into the current
//! directory, and has been seen to spin forever (cuFile 1.14-1.20 without `/proc/modules`); a
//! library fault would also take the whole check down. So the check runs its own binary again
//! (the hidden `gdswap cufile-probe` subcommand) in a scratch directory with
//! `CUFILE_LOGFILE_PATH` pointing there, reads one marked JSON line from its stdout, and kills it
//! when it runs past the limit.
//!
//! Two probes: the plain one opens the driver, reads its properties and registers the checked
//! file with compat mode as configured (where that fails, gds cannot be used at all:
//! [`unusable`] says why, for `check` and the gds backend's preflight alike); the strict one
//! first disallows compat mode (parameter API, cuFile 1.14+), then registers the checked file:
//! `CU_FILE_IO_NOT_SUPPORTED` (5008) there means this file's I/O would go through compat mode,
//! when the configuration allows compat mode ([`CompatConfig`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cufile::handle::FileHandle;
use crate::cufile::{self, Driver, DriverProperties};
use crate::io::file::{Access, DataFile};

/// The prefix of the child's one line of JSON.
pub const MARKER: &str = "GDSWAP-CUFILE-PROBE ";

/// What one probe found (serialised by the child, read by the parent).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Whether `cuFileDriverOpen` succeeded.
    pub opened: bool,
    /// The first error, decoded (names the call and the code).
    pub error: Option<String>,
    /// The driver properties, when the driver opened and the call succeeded.
    pub properties: Option<DriverProperties>,
    /// Whether the file registered (the strict probe: with compat mode disallowed), and as
    /// what.
    pub file_registration: Option<Registration>,
}

/// The strict probe's registration of one file with compat mode disallowed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registration {
    /// The file registered.
    pub file: PathBuf,
    /// Whether `cuFileHandleRegister` succeeded: the file is on a GPUDirect path.
    pub ok: bool,
    /// `CU_FILE_IO_NOT_SUPPORTED` (5008): the file is not on a GPUDirect path.
    pub not_supported: bool,
    /// `cuFileHandleRegister` itself refused the file (false when the file could not even be
    /// opened or created for the probe: that says nothing about cuFile).
    #[serde(default)]
    pub cufile_refused: bool,
    /// The outcome in words: the path, or the error decoded.
    pub detail: String,
}

impl ProbeOutcome {
    /// The file's registration when the driver opened and `cuFileHandleRegister` itself refused
    /// the file (not a probe file that could not be created). From the plain probe (compat
    /// mode as configured): a file gds cannot use at all.
    pub fn cufile_refusal(&self) -> Option<&Registration> {
        self.file_registration
            .as_ref()
            .filter(|r| self.opened && !r.ok && r.cufile_refused)
    }
}

fn failed(error: String) -> ProbeOutcome {
    ProbeOutcome {
        opened: false,
        error: Some(error),
        properties: None,
        file_registration: None,
    }
}

/// Runs one probe in this process (the child's side).
pub fn probe_here(cufile: Option<&Path>, path: &Path, strict: bool) -> ProbeOutcome {
    let lib = match cufile::load(cufile) {
        Ok(l) => Arc::new(l),
        Err(e) => return failed(e.to_string()),
    };
    // Without the parameter API (cuFile < 1.14) a strict probe relies on the parent having
    // named a cufile.json that disallows compat mode (CUFILE_ENV_PATH_JSON); the properties
    // then say whether the library honoured it.
    let by_json = strict
        && lib.require("parameters").is_err()
        && std::env::var_os("CUFILE_ENV_PATH_JSON").is_some();
    if strict && !by_json {
        if let Err(e) = lib.set_parameter_bool(
            gdswap_ffi::CUFileBoolConfigParameter::PROPERTIES_ALLOW_COMPAT_MODE,
            false,
        ) {
            return failed(format!("cannot disallow compat mode: {e}"));
        }
    }
    // cuFileDriverOpen needs a current CUDA context (without one the real library fails with
    // CUDA_ERROR_INVALID_CONTEXT, as cudf found): the primary context of device 0, kept until
    // the driver user is gone (declared first, dropped last). Without a usable libcuda there
    // is none to make, and cuFile's open says what it makes of that.
    let _context = match crate::cuda::driver::load() {
        Ok(_) => match crate::cuda::device::Device::open(0) {
            Ok(d) => Some(d),
            Err(e) => {
                return failed(format!(
                    "cannot make a CUDA context current for cuFileDriverOpen: {e}"
                ))
            }
        },
        Err(_) => None,
    };
    let driver = match Driver::open(&lib) {
        Ok(d) => d,
        Err(e) => return failed(e.to_string()),
    };
    let (properties, mut error) = match driver.properties() {
        Ok(p) => (Some(DriverProperties::decode(&p)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    // Both probes register the file: the plain one with compat mode as configured (a file
    // cuFile cannot register even then is one gds cannot use at all: 5019 for its open flags,
    // 5027 where libcufile cannot read the volume's attributes), the strict one without it.
    let file_registration = Some(register(&driver, path, strict));
    if let Some(r) = file_registration
        .as_ref()
        .filter(|r| !r.ok && !r.not_supported)
    {
        error.get_or_insert_with(|| r.detail.clone());
    }
    ProbeOutcome {
        opened: true,
        error,
        properties,
        file_registration,
    }
}

/// Registers `path` (or a scratch file in it, when it is a directory) with cuFile; `strict`
/// says compat mode is disallowed (the words of the outcome).
fn register(driver: &Driver, path: &Path, strict: bool) -> Registration {
    let scratch = path
        .is_dir()
        .then(|| path.join(format!(".gdswap-check-cufile.{}", std::process::id())));
    let file = scratch.as_deref().unwrap_or(path).to_path_buf();
    let opened = match &scratch {
        Some(s) => DataFile::open(s, Access::Write, true),
        None => DataFile::open(path, Access::Read, true),
    };
    let r = match opened {
        Err(e) => Registration {
            file: file.clone(),
            ok: false,
            not_supported: false,
            cufile_refused: false,
            detail: e.to_string(),
        },
        Ok(f) => match FileHandle::register(driver, Arc::new(f)) {
            Ok(_handle) => Registration {
                file: file.clone(),
                ok: true,
                not_supported: false,
                cufile_refused: false,
                detail: if strict {
                    "registered with compat mode disallowed: a GPUDirect path".into()
                } else {
                    "registered (compat mode as cufile.json says)".into()
                },
            },
            Err(e) => Registration {
                file: file.clone(),
                ok: false,
                not_supported: matches!(&e, crate::Error::CuFile(c)
                    if c.failure.op_error() == Some(gdswap_ffi::CUfileOpError::IO_NOT_SUPPORTED)),
                cufile_refused: matches!(&e, crate::Error::CuFile(_)),
                detail: e.to_string(),
            },
        },
    };
    if let Some(s) = scratch {
        let _ = std::fs::remove_file(s);
    }
    r
}

/// What the parent got from one child.
#[derive(Debug, Clone, Serialize)]
pub struct ChildResult {
    /// The child's outcome, when it reported one.
    pub outcome: Option<ProbeOutcome>,
    /// Why there is no outcome (timeout, crash, no marker line).
    pub failure: Option<String>,
    /// The last lines cuFile logged (its `cufile.log`).
    pub log_tail: Vec<String>,
    /// The child ran past the time limit and was killed.
    #[serde(skip)]
    pub timed_out: bool,
}

/// Runs `exe cufile-probe` for `path` with a time limit (the parent's side).
pub fn probe_in_child(
    exe: &Path,
    cufile: Option<&Path>,
    path: &Path,
    strict: bool,
    timeout: Duration,
) -> ChildResult {
    probe_in_child_env(exe, cufile, path, strict, timeout, &[])
}

/// [`probe_in_child`] with extra environment variables for the child (the `gds` backend
/// names a cufile.json that disallows compat mode this way when the library has no parameter
/// API).
pub fn probe_in_child_env(
    exe: &Path,
    cufile: Option<&Path>,
    path: &Path,
    strict: bool,
    timeout: Duration,
    env: &[(&str, &std::ffi::OsStr)],
) -> ChildResult {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let dir = std::env::temp_dir().join(format!(
        "gdswap-cufile-probe.{}.{}",
        std::process::id(),
        if strict { "strict" } else { "plain" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return ChildResult {
            outcome: None,
            failure: Some(format!("cannot create {}: {e}", dir.display())),
            log_tail: Vec::new(),
            timed_out: false,
        };
    }
    let log = dir.join("cufile.log");
    let mut cmd = Command::new(exe);
    cmd.arg("cufile-probe").arg("--path").arg(absolute(path));
    if let Some(c) = cufile {
        cmd.arg("--cufile").arg(absolute(c));
    }
    if strict {
        cmd.arg("--strict");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.current_dir(&dir)
        .env("CUFILE_LOGFILE_PATH", &log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let result = match cmd.spawn() {
        Err(e) => ChildResult {
            outcome: None,
            failure: Some(format!("cannot run {}: {e}", exe.display())),
            log_tail: Vec::new(),
            timed_out: false,
        },
        Ok(mut child) => {
            let mut stdout = child.stdout.take();
            let reader = std::thread::spawn(move || {
                let mut s = String::new();
                if let Some(o) = stdout.as_mut() {
                    let _ = o.read_to_string(&mut s);
                }
                s
            });
            let deadline = Instant::now() + timeout;
            let mut timed_out = false;
            let status = loop {
                match child.try_wait() {
                    Ok(Some(st)) => break Ok(st),
                    Ok(None) if Instant::now() >= deadline => {
                        timed_out = true;
                        let _ = child.kill();
                        let _ = child.wait();
                        break Err(format!(
                            "cuFileDriverOpen did not return within {} s: the probe was killed",
                            timeout.as_secs_f64()
                        ));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => break Err(format!("waiting for the probe: {e}")),
                }
            };
            let out = reader.join().unwrap_or_default();
            let outcome = out
                .lines()
                .find_map(|l| l.strip_prefix(MARKER))
                .and_then(|j| serde_json::from_str::<ProbeOutcome>(j).ok());
            let failure = match (&outcome, status) {
                (Some(_), _) => None,
                (None, Err(e)) => Some(e),
                (None, Ok(st)) => Some(format!("the probe ended ({st}) without reporting")),
            };
            ChildResult {
                outcome,
                failure,
                log_tail: Vec::new(),
                timed_out,
            }
        }
    };
    let log_tail = std::fs::read_to_string(&log)
        .map(|t| {
            let lines: Vec<String> = t
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            lines[lines.len().saturating_sub(5)..].to_vec()
        })
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    ChildResult { log_tail, ..result }
}

/// The system's cuFile configuration: `CUFILE_ENV_PATH_JSON` when set, else `/etc/cufile.json`.
pub fn system_cufile_json() -> PathBuf {
    std::env::var_os("CUFILE_ENV_PATH_JSON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/cufile.json"))
}

/// The value of `"key": true|false` in a cufile.json (comments aside; the file need not be
/// strict JSON, as cuFile's own parser does not ask it to be): the first occurrence wins.
pub fn json_bool(text: &str, key: &str) -> Option<bool> {
    let quoted = format!("\"{key}\"");
    strip_json_comments(text).lines().find_map(|l| {
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

/// What the node's cuFile configuration says about compat mode: the cufile.json cuFile reads
/// ([`system_cufile_json`]) and its `properties.allow_compat_mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatConfig {
    /// The file cuFile reads.
    pub path: PathBuf,
    /// `allow_compat_mode` as the file sets it; `None` when the file is absent or unreadable
    /// or does not set it (cuFile's default then: allowed).
    pub allow_compat_mode: Option<bool>,
}

impl CompatConfig {
    /// The system's: [`system_cufile_json`], read now.
    pub fn system() -> CompatConfig {
        let path = system_cufile_json();
        let allow_compat_mode = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| json_bool(&t, "allow_compat_mode"));
        CompatConfig {
            path,
            allow_compat_mode,
        }
    }

    /// The configuration disallows compat mode: cuFile then has no fallback for a file or a
    /// node without a GPUDirect path.
    pub fn disallows_compat(&self) -> bool {
        self.allow_compat_mode == Some(false)
    }

    /// `<path> sets properties.allow_compat_mode to false`: the words every refusal it
    /// causes uses.
    fn setting(&self) -> String {
        format!(
            "{} sets properties.allow_compat_mode to false",
            self.path.display()
        )
    }
}

/// Why the `gds` backend cannot use `what` (the checked file, or "a file in DIR") at all, from
/// the plain probe's outcome (compat mode as configured): the driver does not open, or
/// cuFile's `cuFileHandleRegister` refuses the file. `None` when the file registered, or when
/// the probe could not tell (a scratch file it could not create says nothing about cuFile).
///
/// Where the configuration (`config`) disallows compat mode the reason says so and names the
/// fix: a node without nvidia-fs then fails
/// `cuFileDriverOpen` with 5001 (libcufile 1.15.1 on an H200 with compat mode disallowed:
/// bench-results/2026-12-04-gpu-checks-h200), and a file off the GPUDirect path gets 5008
/// from `cuFileHandleRegister`: in both cases a run would fail at its first cuFile call.
/// `gdswap check` and the backend's preflight both decide with this, so they say the same.
pub fn unusable(plain: &ProbeOutcome, what: &str, config: &CompatConfig) -> Option<String> {
    const THROUGH_HOST: &str =
        "to let cuFile move the bytes through host memory (compat mode, not GPUDirect)";
    if !plain.opened {
        let hint = if config.disallows_compat() {
            format!(
                "; {}: set it to true {THROUGH_HOST}, or load nvidia_fs",
                config.setting()
            )
        } else {
            String::new()
        };
        return Some(format!(
            "the cuFile driver does not open with compat mode as configured: {}{hint}",
            plain.error.as_deref().unwrap_or("no reason given")
        ));
    }
    let r = plain.cufile_refusal()?;
    if !r.not_supported {
        return Some(format!(
            "cuFile cannot register {what} even with compat mode as configured: {}",
            r.detail
        ));
    }
    // 5008 with compat mode as configured: the configuration disallows it.
    let (by, fix) = if config.disallows_compat() {
        (
            format!(" ({})", config.setting()),
            "set it to true".to_string(),
        )
    } else {
        (
            String::new(),
            format!(
                "allow it (properties.allow_compat_mode true in {})",
                config.path.display()
            ),
        )
    };
    Some(format!(
        "cuFile's compat mode is disallowed{by} and {what} is not on a GPUDirect path: {}; {fix} {THROUGH_HOST}, or put the data on a GPUDirect path (nvidia_fs loaded, a filesystem and mount GDS supports)",
        r.detail
    ))
}

/// `text` without its `//` and `/* */` comments (outside strings), as NVIDIA's cufile.json
/// has them and cuFile's own parser accepts them, so that it parses as JSON.
pub fn strip_json_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    if n == '\n' {
                        out.push('\n');
                    }
                    prev = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The strict probe's cufile.json: the system's configuration (`system`, its text; `None`
/// when there is none) with only `properties.allow_compat_mode` set to false, so every other
/// setting (`use_pci_p2pdma`, filesystem sections, limits) stays as the node has it. Comments
/// are dropped (the result is plain JSON). An error names what could not be read.
pub fn strict_cufile_json(system: Option<&str>) -> std::result::Result<String, String> {
    let mut root: serde_json::Value = match system {
        Some(text) => serde_json::from_str(&strip_json_comments(text))
            .map_err(|e| format!("not JSON (comments aside): {e}"))?,
        None => serde_json::json!({}),
    };
    let obj = root
        .as_object_mut()
        .ok_or("its top level is not an object")?;
    let props = obj
        .entry("properties")
        .or_insert_with(|| serde_json::json!({}));
    props
        .as_object_mut()
        .ok_or("its \"properties\" is not an object")?
        .insert("allow_compat_mode".into(), serde_json::Value::Bool(false));
    serde_json::to_string_pretty(&root).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain probe's outcomes gds cannot run with, in words naming the setting and fix.
    #[test]
    fn unusable_names_the_configuration_that_disallows_compat_mode() {
        let off = CompatConfig {
            path: "/etc/cufile.json".into(),
            allow_compat_mode: Some(false),
        };
        let default = CompatConfig {
            allow_compat_mode: None,
            ..off.clone()
        };
        let outcome = |opened: bool, reg: Option<(bool, bool, bool)>| ProbeOutcome {
            opened,
            error: (!opened).then(|| "cuFileDriverOpen failed: (5001)".into()),
            properties: None,
            file_registration: reg.map(|(ok, not_supported, cufile_refused)| Registration {
                file: "/d/f".into(),
                ok,
                not_supported,
                cufile_refused,
                detail: "cuFileHandleRegister failed: (500x)".into(),
            }),
        };
        // Registered, or a probe file that could not be made: nothing to say.
        assert_eq!(
            unusable(&outcome(true, Some((true, false, false))), "f", &off),
            None
        );
        assert_eq!(
            unusable(&outcome(true, Some((false, false, false))), "f", &off),
            None
        );
        assert_eq!(unusable(&outcome(true, None), "f", &off), None);
        let why = unusable(&outcome(false, None), "f", &off).unwrap();
        assert_eq!(why, "the cuFile driver does not open with compat mode as configured: cuFileDriverOpen failed: (5001); /etc/cufile.json sets properties.allow_compat_mode to false: set it to true to let cuFile move the bytes through host memory (compat mode, not GPUDirect), or load nvidia_fs");
        let why = unusable(&outcome(false, None), "f", &default).unwrap();
        assert_eq!(why, "the cuFile driver does not open with compat mode as configured: cuFileDriverOpen failed: (5001)");
        let not_supported = outcome(true, Some((false, true, true)));
        let why = unusable(&not_supported, "/d/f", &off).unwrap();
        assert!(why.starts_with("cuFile's compat mode is disallowed (/etc/cufile.json sets properties.allow_compat_mode to false) and /d/f is not on a GPUDirect path: cuFileHandleRegister failed: (500x); set it to true to let cuFile"), "{why}");
        // 5008 with compat mode as configured, the file not saying so (another source).
        let why = unusable(&not_supported, "/d/f", &default).unwrap();
        assert!(why.starts_with("cuFile's compat mode is disallowed and /d/f is not on a GPUDirect path: cuFileHandleRegister failed: (500x); allow it (properties.allow_compat_mode true in /etc/cufile.json) to let"), "{why}");
        let why = unusable(&outcome(true, Some((false, false, true))), "/d/f", &off).unwrap();
        assert_eq!(why, "cuFile cannot register /d/f even with compat mode as configured: cuFileHandleRegister failed: (500x)");
    }

    /// NVIDIA's cufile.json is JSON with `//` comments; only allow_compat_mode changes.
    #[test]
    fn strict_json_keeps_every_other_setting() {
        let system = r#"{
            // "logging": { "level": "ERROR" },
            "logging": { "dir": "/var/log // not a comment" },
            "properties": {
                /* a block
                   comment */
                "allow_compat_mode": true, // the default
                "use_pci_p2pdma": true,
                "max_device_pinned_mem_size_kb": 33554432
            },
            "fs": { "generic": { "posix_unaligned_writes": false } }
        }"#;
        let out: serde_json::Value =
            serde_json::from_str(&strict_cufile_json(Some(system)).unwrap()).unwrap();
        assert_eq!(out["properties"]["allow_compat_mode"], false);
        assert_eq!(out["properties"]["use_pci_p2pdma"], true);
        assert_eq!(out["properties"]["max_device_pinned_mem_size_kb"], 33554432);
        assert_eq!(out["logging"]["dir"], "/var/log // not a comment");
        assert_eq!(out["fs"]["generic"]["posix_unaligned_writes"], false);
        // No system file: just the one setting.
        let out: serde_json::Value =
            serde_json::from_str(&strict_cufile_json(None).unwrap()).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"properties": {"allow_compat_mode": false}})
        );
        assert!(strict_cufile_json(Some("[1]")).is_err());
        assert!(strict_cufile_json(Some("{ nope"))
            .unwrap_err()
            .starts_with("not JSON"));
    }
}
