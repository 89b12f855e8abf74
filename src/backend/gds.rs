//! `gds`: NVMe straight into GPU memory through NVIDIA's cuFile (GPUDirect Storage), and an
//! honest report of which path the bytes really took.
//!
//! Each worker thread has its own device context, stream and device buffer the size of its
//! range (as `bounce`), registered with `cuFileBufRegister` unless `--no-register` (as
//! `gdsio -b`), and its file's O_DIRECT descriptor registered with `cuFileHandleRegister`.
//! `--gds-api` picks how cuFile is called (see [`crate::cufile::io`]):
//! - `sync`: `cuFileRead`/`cuFileWrite` per request, one at a time per thread (parallelism by
//!   `--threads`); a request's latency is its call;
//! - `stream`: `--queue-depth` CUDA streams per thread, each registered with cuFile
//!   (`cuFileStreamRegister`, deregistered before it is destroyed), one
//!   `cuFileReadAsync`/`WriteAsync` in flight on each: a stream runs its operations one after
//!   another, so the queue depth is the requests in flight only with a stream per slot. A slot
//!   is refilled as soon as its operation completed (the oldest is waited for first); a
//!   request's latency runs from its submission to the synchronisation that saw it done;
//! - `batch`: one `cuFileBatchIOSetUp` of `--queue-depth` entries per thread; one window of
//!   up to that many entries is submitted, `cuFileBatchIOGetStatus` collects every one of its
//!   events, then the next window goes (one submission in flight per batch, as NVIDIA's
//!   samples do it; latency from the window's submission to the call that returned the event).
//!
//! In cuFile's compat mode, as known when the worker prepares (the verdict of the strict
//! probe and the driver properties: nvidia-fs not loaded and no P2PDMA, 5008 from the strict
//! probe, POSIX I/O mode, or `CUFILE_FORCE_COMPAT_MODE`), `stream` and `batch` keep one
//! operation in flight in the whole process, whatever `--queue-depth` and `--threads` say:
//! with libcufile 1.15.1 on an H200 (nvidia-fs not loaded) concurrent stream operations
//! misplaced data and a batch of more than one entry made no progress, while one at a time
//! was byte-exact (bench-results/2026-12-04-gpu-checks-h200-session8). The mode line and the
//! `gds-compat-one-in-flight` warning say so; `sync` is not limited (byte-exact from several
//! threads there).
//!
//! Every thread's worker shares its file's one cuFile registration with the others on the
//! same open file (the swap store's staging workers all use its one data file): cuFile
//! refuses a second registration of a descriptor (5028). A device buffer over cuFile's
//! pinning limits (max_device_pinned_mem_size, the GPU's BAR1) runs unregistered, with a
//! `gds-note` warning saying so, instead of failing with 5036/5016. A block size that is not
//! a multiple of 4 KiB gets a `gds-unaligned-block` warning: cuFile takes its unaligned path.
//! The cuFile driver is opened once per process and stays open (see `cufile::driver`).
//!
//! Short transfers are continued (sync: in the call's loop; stream/batch: the rest goes into
//! the next window) and 0 bytes is an error, never a loop. An API the loaded library lacks is
//! refused before the run ("needs cuFile >= x.y").
//!
//! Unaligned tails: a `--size` that is not a multiple of the O_DIRECT alignment leaves a
//! last request of a few bytes. cuFile's direct path cannot move it, and its compat mode would
//! (silently, through its own bounce buffers). gdswap does not rely on that: as `bounce` does,
//! the tail goes through the file's buffered descriptor and a synchronous copy through a small
//! pinned staging buffer, and the report's `unaligned-tail` warning says so.
//!
//! `fill` and `inspect` copy through the same staging buffer, so `--verify` checks what reached
//! the device; `--buffered` is refused (cuFile registers O_DIRECT descriptors only).
//!
//! Which path: see [`crate::cufile::path::decide`]. cuFile 1.15+'s statistics (level 3, turned on once per open driver by the
//! first worker) count per I/O whether it went through nvidia-fs, P2PDMA or POSIX, and overrule
//! the rest. Only level 3 has those per-path counters: the first worker to reach the measured
//! loops reads the counters of the warm-up loops (with `--warmup 0` they are read at release;
//! the verdict's reason says which). Collection stays on through the measured loops (its cost
//! on a real GPU is not measured yet): cuFileStatsStop while the driver is open crashed
//! libcufile 1.15.1's pool threads; it is turned on once per open driver, and each run takes
//! its counts against a baseline read when it starts (`stats::start`). The warm-up loops move
//! the same requests through the same handle and buffers, so they take the same path.
//! Before the run, a strict probe in a child process (the hidden
//! `gdswap cufile-probe --strict`, with a time limit: cuFile can hang on hosts without a GPU,
//! and a probe that hangs makes the run refuse to open the driver in-process at all)
//! disallows compat mode and registers the file; 5008 there means compat. When the strict
//! probe showed no direct path (its driver did not open, as libcufile 1.15.1 without nvidia-fs
//! does with compat mode disallowed; cuFile refused the file; or 5008 where cufile.json
//! disallows compat mode too), the plain probe (also a child) tries it with compat mode as
//! configured: a driver that does not open, a file cuFile refuses even then (libcufile 1.15.1
//! on a VM whose disk has no udev properties: 5027 for every file), or 5008 because cufile.json
//! disallows compat mode makes the backend unavailable at preflight, before any I/O, with a
//! reason naming the setting and the fix ([`driver_probe::unusable`], which `gdswap check`
//! uses too), so `compare` skips it by default. The workers add the driver properties they read
//! in-process. `--require-gpudirect` turns a compat verdict into an error before anything is
//! moved.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::cuda::device::{check_ordinal, Device};
use crate::cuda::device_buffer::DeviceBuffer;
use crate::cuda::driver;
use crate::cuda::pinned::PinnedBuffer;
use crate::cuda::stream::Stream;
use crate::cufile::handle::FileHandle;
use crate::cufile::io::{self as cfio, Batch, BufRegistration, Overlap, Piece, StreamQueue};
use crate::cufile::path::{self as gds_path, Strict};
use crate::cufile::probe as driver_probe;
use crate::cufile::stats::{self, PathCounts};
use crate::cufile::GdsVerdict;
use crate::cufile::{self, CuFileLib, Driver, DriverProperties};
use crate::error::{Error, Result, Setting};
use crate::io::buffer::{HugePages, PageBacking};
use crate::io::file::DataFile;
use crate::options::{GdsApi, GdsOptions, Op, RunOptions, Target};
use crate::request::Request;
use crate::size::Bytes;
use crate::stats::LatencyRecorder;
use crate::types::QueueClamp;
use gdswap_ffi::CUfileOpError;

use super::{Availability, Backend, BackendId, Worker, WorkerSetup};

/// Pinned staging per thread, for `fill`/`inspect` copies and unaligned tails.
const STAGING: usize = 1 << 20;

/// Bytes of pinned host memory one worker over a range of `range_len` bytes holds (its
/// staging buffer for tails, `fill` and `inspect`), in whole pages.
fn pinned_len(range_len: u64) -> u64 {
    (STAGING as u64)
        .min(range_len.max(4096))
        .next_multiple_of(4096)
}
/// How long the strict per-file probe may take, unless [`PROBE_TIMEOUT_ENV`] says otherwise.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Seconds the strict per-file probe may take.
pub const PROBE_TIMEOUT_ENV: &str = "GDSWAP_CUFILE_PROBE_TIMEOUT";

fn probe_timeout() -> Result<Duration> {
    let Some(v) = std::env::var_os(PROBE_TIMEOUT_ENV) else {
        return Ok(PROBE_TIMEOUT);
    };
    v.to_str()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Error::invalid(
                Setting::Env(PROBE_TIMEOUT_ENV),
                format!(
                    "'{}' is not a number of seconds in (0, 3600]",
                    v.to_string_lossy()
                ),
            )
        })
}

/// The process's libcufile, loaded once (one driver per process, one library for it); every
/// user of cuFile in the process (this backend, the Python package's `gds_handle`) takes it
/// from here, so they share one driver.
pub fn library() -> std::result::Result<Arc<CuFileLib>, String> {
    static LIB: OnceLock<std::result::Result<Arc<CuFileLib>, String>> = OnceLock::new();
    LIB.get_or_init(|| cufile::load(None).map(Arc::new).map_err(|e| e.to_string()))
        .clone()
}

#[derive(Default)]
struct PathState {
    strict: Option<Strict>,
    /// Properties from the probe child, then from the first worker (in-process).
    props: Option<DriverProperties>,
    /// Whether statistics collection was turned on (1.15+), and the counts read at release.
    stats_started: bool,
    /// The counts when this run turned collection on (or found it on): its own are the
    /// difference.
    stats_base: PathCounts,
    stats: Option<PathCounts>,
    /// The counts were read after the warm-up loops (collection stays on).
    stats_frozen: bool,
    /// Why the statistics of a library that has them gave no evidence (turning them on or
    /// reading them failed), for the verdict: never silently dropped.
    stats_error: Option<String>,
    /// Notes for the report (buffers left unregistered, and why).
    notes: Vec<String>,
    /// Stream or batch held to one operation in flight in the process (compat mode).
    clamp: Option<QueueClamp>,
}

impl PathState {
    /// This run's counts so far (against its baseline); None when the read fails, whose
    /// reason is kept unless counts read earlier are the evidence.
    fn read_stats(&mut self, driver: &Driver) -> Option<PathCounts> {
        match stats::read(driver) {
            Ok(c) => Some(c.since(&self.stats_base)),
            Err(e) => {
                if self.stats.is_none() {
                    self.stats_error = Some(stats_failure("reading them", &e));
                }
                None
            }
        }
    }

    fn verdict(&self) -> GdsVerdict {
        let not_probed = Strict::NotRun("not probed".into());
        let mut v = gds_path::decide(
            self.props.as_ref(),
            self.strict.as_ref().unwrap_or(&not_probed),
            self.stats,
            gds_path::forced_compat(),
        );
        if v.reason.starts_with("statistics: ") {
            v.reason.push_str(if self.stats_frozen {
                "; statistics counted over the warm-up loops (collection stayed on through the measured ones)"
            } else {
                "; statistics (level 3) counted every loop, the measured ones included"
            });
        } else if let Some(e) = &self.stats_error {
            v.reason
                .push_str(&format!("; cuFile statistics gave no evidence: {e}"));
            v.statistics_failed = Some(e.clone());
        } else if self.stats.is_some_and(|c| c.total() == 0) {
            v.reason
                .push_str("; cuFile statistics counted no I/O (collection was on)");
        }
        v.notes = self.notes.clone();
        v.queue_clamp = self.clamp.clone();
        v
    }
}

/// Why the statistics gave no evidence: the failed step, cuFile's error, and a stale segment
/// in libcufile's way where that is the cause.
fn stats_failure(step: &str, e: &Error) -> String {
    match stats::segment_in_the_way() {
        Some(why) => format!("{step} failed ({e}): {why}"),
        None => format!("{step} failed: {e}"),
    }
}

type SharedState = Arc<Mutex<PathState>>;

fn lock(s: &SharedState) -> std::sync::MutexGuard<'_, PathState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `gds` backend: cuFile from the file straight into GPU memory. It keeps what the run
/// learns about the path the bytes take (the strict probe, driver properties, cuFile's
/// statistics, notes) for [`Backend::gds_path`].
#[derive(Default)]
pub struct GdsBackend {
    state: SharedState,
}

impl GdsBackend {
    fn state(&self) -> std::sync::MutexGuard<'_, PathState> {
        lock(&self.state)
    }

    /// The strict per-file probe, in a child process (never in-process: the real library may
    /// spin forever without a GPU, and it must not open the driver with compat off here).
    ///
    /// A probe that hangs is killed, and then the run is refused: cuFile would hang in this
    /// process too.
    fn probe_path(
        &self,
        opts: &RunOptions,
        lib: &CuFileLib,
    ) -> Result<(Strict, Option<DriverProperties>)> {
        let timeout = probe_timeout()?;
        let exe = match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => {
                return Ok((
                    Strict::NotRun(format!("cannot find the gdswap binary: {e}")),
                    None,
                ))
            }
        };
        // Only the gdswap binary has the hidden probe subcommand (not a test harness that
        // calls the library).
        if exe.file_stem() != Some(OsStr::new("gdswap")) {
            return Ok((
                Strict::NotRun("not running as the gdswap binary (no probe subcommand)".into()),
                None,
            ));
        }
        let target = probe_target(&opts.workload.target);
        let json_dir =
            std::env::temp_dir().join(format!("gdswap-gds-probe.{}", std::process::id()));
        let mut env: Vec<(&str, &OsStr)> = Vec::new();
        let json = json_dir.join("cufile.json");
        if lib.require("parameters").is_err() {
            // cuFile < 1.14: compat mode is disallowed through a cufile.json of our own: a
            // copy of the system's with only allow_compat_mode flipped, so every other
            // setting (use_pci_p2pdma, filesystem sections) is the one the run will have.
            // (1.14+ sets the parameter over the system's file instead.)
            let system = driver_probe::system_cufile_json();
            let text = match std::fs::read_to_string(&system) {
                Ok(t) => Some(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Ok((
                        Strict::NotRun(format!("cannot read {}: {e}", system.display())),
                        None,
                    ))
                }
            };
            let strict = match driver_probe::strict_cufile_json(text.as_deref()) {
                Ok(j) => j,
                Err(e) => return Ok((Strict::NotRun(format!("{}: {e}", system.display())), None)),
            };
            let written = std::fs::create_dir_all(&json_dir)
                .and_then(|_| std::fs::write(&json, strict + "\n"));
            if let Err(e) = written {
                return Ok((
                    Strict::NotRun(format!("cannot write {}: {e}", json.display())),
                    None,
                ));
            }
            env.push(("CUFILE_ENV_PATH_JSON", json.as_os_str()));
        }
        let child = driver_probe::probe_in_child_env(&exe, None, &target, true, timeout, &env);
        let _ = std::fs::remove_dir_all(&json_dir);
        if child.timed_out {
            return Err(hung(timeout, &child));
        }
        let Some(outcome) = child.outcome else {
            let why = child.failure.unwrap_or_else(|| "no outcome".into());
            return Ok((Strict::NotRun(format!("strict probe: {why}")), None));
        };
        // Where the strict probe showed no direct path, the plain probe (compat mode as
        // configured) says whether gds can use the file at all ([`refuse_unusable`]). With real
        // libcufile 1.15.1 and no udev properties for the disk, that is where the 5027 of every
        // registration shows (tests/cufile_real_io.rs).
        let config = driver_probe::CompatConfig::system();
        let mut props = outcome.properties.clone();
        if needs_plain_probe(&outcome, &config) {
            if let Some(plain) = refuse_unusable(&exe, &target, timeout, &config)? {
                // The strict probe's driver did not open (5001 without nvidia-fs): the
                // plain one's properties say which path there is.
                props = props.or(plain.properties);
            }
        }
        Ok((Strict::of(&outcome), props))
    }
}

/// Whether the strict probe's `outcome` leaves open whether gds can use the file at all, so
/// that the plain probe must run:
/// - the driver did not open with compat mode disallowed (libcufile 1.15.1 without nvidia-fs:
///   5001): whether it opens as configured, and takes the file, is unknown;
/// - cuFile refused the file with another code than 5008 (5027 on a VM, whatever compat);
/// - 5008 (not on a GPUDirect path: the compat verdict) where the configuration disallows
///   compat mode too: the run would get 5008 at its first registration. With compat mode
///   allowed (the default) 5008 starts no second probe: the run goes through compat mode.
fn needs_plain_probe(
    outcome: &driver_probe::ProbeOutcome,
    config: &driver_probe::CompatConfig,
) -> bool {
    !outcome.opened
        || outcome
            .cufile_refusal()
            .is_some_and(|r| !r.not_supported || config.disallows_compat())
}

/// The plain probe (compat mode as configured), in a child process like the strict one:
/// [`Error::Unavailable`] when cuFile cannot be used on `target` (the run's file, or a scratch
/// file in its directory) at all ([`driver_probe::unusable`]: the driver does not open, or
/// refuses the file even with compat mode as configured, or compat mode is disallowed by
/// cufile.json and the file is not on a GPUDirect path). Seen with libcufile 1.15.1 on a VM
/// (5027 for every file: it could not read the disk's volume attributes from udev); the run
/// would fail at its first cuFile call, and `compare` skips such a backend by default instead
/// of failing in round 1. A probe that reports nothing leaves the verdict to the run; one
/// that opened the driver returns its outcome.
fn refuse_unusable(
    exe: &Path,
    target: &Path,
    timeout: Duration,
    config: &driver_probe::CompatConfig,
) -> Result<Option<driver_probe::ProbeOutcome>> {
    let child = driver_probe::probe_in_child(exe, None, target, false, timeout);
    if child.timed_out {
        return Err(hung(timeout, &child));
    }
    let Some(outcome) = child.outcome.clone() else {
        return Ok(None);
    };
    let what = format!(
        "{}{}",
        if target.is_dir() { "a file in " } else { "" },
        target.display()
    );
    match driver_probe::unusable(&outcome, &what, config) {
        Some(why) => Err(unavailable(format!("{why}{}", log_end(&child)))),
        None => Ok(Some(outcome)),
    }
}

/// A probe child that ran past `timeout`: the driver is not opened in this process.
fn hung(timeout: Duration, child: &driver_probe::ChildResult) -> Error {
    unavailable(format!(
        "cuFileDriverOpen did not return within {} s in a probe process (killed), so it is not opened in this one; {PROBE_TIMEOUT_ENV} sets the limit{}",
        timeout.as_secs_f64(),
        log_end(child)
    ))
}

/// `; cufile.log ends: <its last line>` from a probe child, or nothing.
fn log_end(child: &driver_probe::ChildResult) -> String {
    match child.log_tail.last() {
        Some(l) => format!("; cufile.log ends: {l}"),
        None => String::new(),
    }
}

/// The file the probe registers: the file when it exists, else the directory it will be
/// created in (the probe registers a scratch file there).
fn probe_target(target: &Target) -> PathBuf {
    let p = match target {
        Target::File(f) if f.exists() => return f.clone(),
        Target::File(f) => f.parent().map(Path::to_path_buf).unwrap_or_default(),
        Target::Dir(d) => d.clone(),
    };
    let p = if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p
    };
    // The directory may not exist yet: the nearest ancestor that does is on the same
    // filesystem in all but exotic mount layouts.
    p.ancestors()
        .find(|a| a.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or(p)
}

fn unavailable(reason: String) -> Error {
    Error::Unavailable {
        backend: BackendId::Gds.name().into(),
        reason: reason.into(),
    }
}

impl Backend for GdsBackend {
    fn id(&self) -> BackendId {
        BackendId::Gds
    }

    fn summary(&self) -> &'static str {
        "cuFile (GPUDirect Storage) straight into GPU memory"
    }

    fn probe(&self) -> Availability {
        // libcuda first: cuFile must never be opened on a host without a CUDA driver.
        if let Err(why) = driver::load() {
            return Availability::Unavailable(why.into());
        }
        match library() {
            Ok(_) => Availability::Available,
            Err(why) => Availability::Unavailable(why.into()),
        }
    }

    fn preflight(&self, opts: &RunOptions) -> Result<()> {
        let info = driver::load().map_err(unavailable)?;
        check_ordinal(opts.gpu.device, info.devices)?;
        let lib = library().map_err(unavailable)?;
        if !opts.direct {
            return Err(Error::invalid(
                Setting::Buffered,
                crate::error::msg![
                    "the gds backend needs O_DIRECT (cuFile registers O_DIRECT descriptors); drop ",
                    Setting::Buffered
                ],
            ));
        }
        let gds = opts.gpu.gds.unwrap_or_default();
        let group = match gds.api {
            GdsApi::Sync => None,
            GdsApi::Stream => Some("stream"),
            GdsApi::Batch => Some("batch"),
        };
        if let Some(g) = group {
            lib.require(g)
                .map_err(|m| Error::invalid(Setting::GdsApi, format!("{}: {m}", gds.api)))?;
        }
        // (The pinned staging buffer is registered with cuMemHostRegister, which RLIMIT_MEMLOCK
        // does not charge: no memlock check.)
        let (strict, props) = self.probe_path(opts, &lib)?;
        let verdict = {
            let mut s = self.state();
            *s = PathState {
                strict: Some(strict),
                props,
                ..PathState::default()
            };
            s.verdict()
        };
        if gds.require_gpudirect && verdict.is_compat() {
            return Err(Error::invalid(
                Setting::RequireGpudirect,
                format!(
                    "this run would go through cuFile's compat mode, not GPUDirect: {}",
                    verdict.reason
                ),
            ));
        }
        Ok(())
    }

    fn pinned_bytes(&self, setup: &WorkerSetup) -> u64 {
        pinned_len(setup.range_len)
    }

    fn prepare(&self, setup: &WorkerSetup) -> Result<Box<dyn Worker>> {
        let range_len = usize::try_from(setup.range_len).map_err(|_| {
            Error::OutOfMemory(
                format!("a {} range does not fit in memory", Bytes(setup.range_len)).into(),
            )
        })?;
        let gds = setup.gpu.gds.unwrap_or_default();
        let lib = library().map_err(unavailable)?;
        // Declaration order here is the reverse of the drop order in GdsWorker.
        let device = Device::open(setup.gpu.device)?;
        let device_name = device.name()?;
        let driver = Driver::open(&lib)?;
        // The context cuFile allocated in must outlive this run's workers (they release theirs
        // when the run ends; the driver stays open for the next run in this process).
        driver.keep_context(setup.gpu.device)?;
        let props = DriverProperties::decode(&driver.properties()?);
        let buffer = DeviceBuffer::new(range_len, setup.gpu.device)?;
        let staging = PinnedBuffer::new(STAGING.min(range_len.max(4096)), HugePages::Off)?;
        let stream = Stream::new()?;
        // One registration per open file, shared by every worker on it (cuFile refuses a
        // second registration of a descriptor: 5028).
        let handle = FileHandle::register(&driver, Arc::clone(&setup.file))?;
        let registration = if gds.register {
            register_or_note(&driver, &buffer, &props, &self.state)?
        } else {
            None
        };
        // Compat mode as known now (strict probe, the properties read in-process, forced):
        // stream and batch then keep one operation in flight in the process.
        let overlap = {
            let mut s = self.state();
            // In-process properties are those the run used: they win over the probe's.
            s.props = Some(props.clone());
            let v = s.verdict();
            if v.is_compat() && gds.api != GdsApi::Sync {
                s.clamp = Some(QueueClamp {
                    api: gds.api,
                    asked: setup.queue_depth,
                    reason: v.reason,
                });
                Overlap::OneInProcess
            } else {
                Overlap::Free
            }
        };
        let queue = match gds.api {
            GdsApi::Stream => Some(StreamQueue::new(
                &driver,
                setup.queue_depth.max(1) as usize,
                overlap,
            )?),
            _ => None,
        };
        let batch = match gds.api {
            GdsApi::Batch => {
                let most = props.max_batch_io_size;
                if most > 0 && setup.queue_depth > most {
                    return Err(Error::invalid(
                        Setting::QueueDepth,
                        crate::error::msg![
                            format!(
                                "{} is over cuFile's max_batch_io_size {most} for ",
                                setup.queue_depth
                            ),
                            Setting::GdsApi,
                            " batch"
                        ],
                    ));
                }
                Some(Batch::new(&driver, setup.queue_depth, overlap)?)
            }
            _ => None,
        };
        {
            let mut s = self.state();
            // Statistics (1.15+), process-wide: turned on once, by the first worker. A library
            // without them just gives no per-I/O evidence.
            if !s.stats_started && lib.stats.is_some() && s.stats_error.is_none() {
                match stats::start(&driver) {
                    Ok(base) => {
                        s.stats_started = true;
                        s.stats_base = base;
                    }
                    Err(e) => s.stats_error = Some(stats_failure("turning them on", &e)),
                }
            }
            if gds.require_gpudirect {
                let v = s.verdict();
                if v.is_compat() {
                    return Err(Error::invalid(
                        Setting::RequireGpudirect,
                        format!(
                            "this run would go through cuFile's compat mode, not GPUDirect: {}",
                            v.reason
                        ),
                    ));
                }
            }
        }
        Ok(Box::new(GdsWorker {
            batch,
            queue,
            registration,
            handle,
            stream,
            staging,
            buffer,
            driver,
            device,
            device_name,
            opts: gds,
            one_in_process: overlap == Overlap::OneInProcess,
            range_len,
            state: Arc::clone(&self.state),
        }))
    }

    fn gds_path(&self) -> Option<GdsVerdict> {
        Some(self.state().verdict())
    }
}

/// One thread's gds context. Fields drop in declaration order: the batch context, the
/// registered streams of `--gds-api stream` (each waits for its operation, then is
/// deregistered from cuFile before it is destroyed), the buffer registration (before the
/// buffer), the file handle, the stream (it waits for queued copies), staging and device
/// memory, the driver user, and the context last.
struct GdsWorker {
    batch: Option<Batch>,
    queue: Option<StreamQueue>,
    registration: Option<BufRegistration>,
    handle: FileHandle,
    stream: Stream,
    staging: PinnedBuffer,
    buffer: DeviceBuffer,
    driver: Driver,
    device: Device,
    device_name: String,
    opts: GdsOptions,
    /// Stream or batch held to one operation in flight in the process (compat mode).
    one_in_process: bool,
    range_len: usize,
    state: SharedState,
}

impl GdsWorker {
    fn file(&self) -> &Arc<DataFile> {
        self.handle.file()
    }

    /// An unaligned tail: through the buffered descriptor and the pinned staging buffer.
    fn tail(&mut self, op: Op, r: &Request) -> Result<()> {
        let file = Arc::clone(self.file());
        match op {
            Op::Read => {
                file.read_exact_at(self.staging.range_mut(0, r.len)?, r.file_offset)?;
                self.buffer
                    .upload(r.buf_offset, &self.staging, 0, r.len, &self.stream)
            }
            Op::Write => {
                self.buffer
                    .download(r.buf_offset, &mut self.staging, 0, r.len, &self.stream)?;
                file.write_all_at(self.staging.range(0, r.len)?, r.file_offset)
            }
        }
    }

    /// Stream or batch: up to the queue depth in flight (one in the process in compat mode;
    /// stream refills each slot as its request completes, batch goes window by window); short
    /// pieces continued; one latency per request, from its submission to the call that saw it
    /// complete.
    fn queued(
        &mut self,
        op: Op,
        requests: &[&Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<()> {
        let pieces: Vec<Piece> = requests
            .iter()
            .map(|r| Piece {
                file_offset: r.file_offset,
                buf_offset: r.buf_offset,
                len: r.len,
            })
            .collect();
        let mut done = |_: Piece, started: Instant| latencies.record(started.elapsed());
        match (&mut self.batch, &mut self.queue) {
            (Some(b), _) => b.run(&self.handle, &self.buffer, op, &pieces, &mut done),
            (None, Some(q)) => q.run(&self.handle, &self.buffer, op, &pieces, &mut done),
            (None, None) => Err(Error::Internal(
                "internal error: a gds worker without a stream queue or batch".into(),
            )),
        }
    }
}

/// `cuFileBufRegister` of a worker's device buffer, or `None` with a note when it is over
/// what cuFile can pin: over `max_device_pinned_mem_size` (checked first, from the driver
/// properties, counting what this process's workers registered already), or refused by
/// the library as over the pinning limit or the GPU's BAR1 aperture (5036
/// `CU_FILE_GPU_MEMORY_PINNING_FAILED`, 5016 `CU_FILE_INVALID_MAPPING_SIZE`). cuFile then
/// stages that buffer's I/O through its own (registered) bounce buffers: slower, but it
/// runs. Any other failure is an error.
fn register_or_note(
    driver: &Driver,
    buffer: &DeviceBuffer,
    props: &DriverProperties,
    state: &SharedState,
) -> Result<Option<BufRegistration>> {
    // The check and the registration are one step: workers register concurrently, and
    // without this two of them could both see room for one more buffer under the limit
    // (then the library, not gdswap, refuses the second, with a different note).
    static REGISTERING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = REGISTERING.lock().unwrap_or_else(|p| p.into_inner());
    let len = buffer.len() as u64;
    let limit = u64::from(props.max_device_pinned_mem_kb).saturating_mul(1024);
    let pinned = cfio::registered_bytes();
    let over_limit = limit > 0 && pinned.saturating_add(cfio::gpu_pages(len)) > limit;
    let refused = if over_limit {
        format!(
            "{} registered plus this {} buffer is over cuFile's max_device_pinned_mem_size ({} KiB)",
            Bytes(pinned),
            Bytes(len),
            props.max_device_pinned_mem_kb
        )
    } else {
        match BufRegistration::register(driver, buffer) {
            Ok(r) => return Ok(Some(r)),
            Err(Error::CuFile(e))
                if matches!(
                    e.failure.op_error(),
                    Some(CUfileOpError::GPU_MEMORY_PINNING_FAILED)
                        | Some(CUfileOpError::INVALID_MAPPING_SIZE)
                ) =>
            {
                format!(
                    "{e} (over the GPU's BAR1 aperture or cuFile's pinning limit, with {} already registered)",
                    Bytes(pinned)
                )
            }
            Err(e) => return Err(e),
        }
    };
    let note = format!(
        "a {} device buffer was left unregistered, so cuFile staged its I/O through its own bounce buffers: {refused}",
        Bytes(len)
    );
    let mut s = lock(state);
    if !s.notes.contains(&note) {
        s.notes.push(note);
    }
    Ok(None)
}

impl Worker for GdsWorker {
    fn mode(&self) -> String {
        format!(
            "cuFile {} api{}, {}, device {} ({}); {}",
            self.opts.api,
            if self.one_in_process {
                " (compat mode: 1 operation in flight in the process, not the queue depth)"
            } else {
                ""
            },
            if self.registration.is_some() {
                "registered buffers"
            } else {
                "unregistered buffers"
            },
            self.device.ordinal(),
            self.device_name,
            self.driver.lib().describe()
        )
    }

    fn device_memory(&self) -> Option<(&DeviceBuffer, &Stream)> {
        Some((&self.buffer, &self.stream))
    }

    fn buffer_pages(&self) -> Option<PageBacking> {
        None
    }

    fn fill(&mut self, f: &mut dyn FnMut(&mut [u8])) -> Result<()> {
        let len = self.range_len;
        crate::backend::fill_through_pieces(self, len, f)
    }

    fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let len = self.range_len;
        crate::backend::inspect_through_pieces(self, len, f)
    }

    fn fill_pieces(&mut self, f: &mut dyn FnMut(usize, &mut [u8])) -> Result<()> {
        self.buffer.fill_through(&mut self.staging, &self.stream, f)
    }

    fn inspect_pieces(&mut self, f: &mut dyn FnMut(usize, &[u8]) -> Result<()>) -> Result<()> {
        self.buffer
            .inspect_through(&mut self.staging, &self.stream, f)
    }

    fn begin_measured(&mut self) -> Result<()> {
        // The statistics of the warm-up loops are the evidence (the first worker here reads
        // them for the process). Collection stays on: cuFileStatsStop while the driver is
        // open detached the statistics' shared memory under libcufile 1.15.1's own pool
        // threads (cufile.json max_io_threads), which faulted writing it: `compare`'s crash
        // in a later round, a core dump in session 9 (docs/gpu-backends.md).
        let mut s = lock(&self.state);
        if s.stats_started && !s.stats_frozen {
            s.stats_frozen = true;
            if let Some(c) = s.read_stats(&self.driver) {
                s.stats = Some(c);
            }
        }
        Ok(())
    }

    fn release(self: Box<Self>) -> Result<()> {
        let mut me = *self;
        // The statistics are process-wide and cumulative, and go with the driver: each
        // worker reads them before its driver user goes, and the largest count is kept.
        {
            let mut s = lock(&me.state);
            if s.stats_started && !s.stats_frozen {
                if let Some(c) = s.read_stats(&me.driver) {
                    if s.stats.map_or(true, |old| c.total() >= old.total()) {
                        s.stats = Some(c);
                    }
                }
            }
        }
        drop(me.batch.take());
        drop(me.queue.take());
        if let Some(r) = me.registration.take() {
            r.deregister()?;
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        op: Op,
        requests: &[Request],
        latencies: &mut LatencyRecorder,
    ) -> Result<()> {
        let (tails, direct): (Vec<&Request>, Vec<&Request>) = requests.iter().partition(|r| r.tail);
        match self.opts.api {
            GdsApi::Sync => {
                for r in &direct {
                    let t = Instant::now();
                    cfio::transfer_sync(
                        &self.handle,
                        &self.buffer,
                        op,
                        Piece {
                            file_offset: r.file_offset,
                            buf_offset: r.buf_offset,
                            len: r.len,
                        },
                    )?;
                    latencies.record(t.elapsed());
                }
            }
            GdsApi::Stream | GdsApi::Batch => self.queued(op, &direct, latencies)?,
        }
        // Tails after every direct request: a buffered tail write must not race a direct
        // write of the same page.
        for r in tails {
            let t = Instant::now();
            self.tail(op, r)?;
            latencies.record(t.elapsed());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_target_is_the_file_or_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.bin");
        assert_eq!(probe_target(&Target::File(f.clone())), dir.path());
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(probe_target(&Target::File(f.clone())), f);
        let deep = dir.path().join("a/b/c");
        assert_eq!(probe_target(&Target::Dir(deep)), dir.path());
    }
}
