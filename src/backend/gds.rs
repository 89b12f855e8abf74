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
//! - `batch`: one `cuFileBatchIOSetUp` of `--queue-depth` entries per thread; entries are
//!   submitted into every free slot, `cuFileBatchIOGetStatus` waits for at least one event,
//!   and the slots freed are refilled at once (latency from submission to the event).
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
//! Which path: see [`decide`]. cuFile 1.15+'s statistics (level 3, reset and turned on by the
//! first worker) count per I/O whether it went through nvidia-fs, P2PDMA or POSIX, and overrule
//! the rest. Only level 3 has those per-path counters, and its cost on a real GPU is not
//! measured yet, so the measured loops run without it: the first worker to reach the measured
//! loops reads the counters of the warm-up loops and stops collection (with `--warmup 0` they
//! stay on and are read at release; the verdict's reason says which). The warm-up loops move
//! the same requests through the same handle and buffers, so they take the same path.
//! Before the run, a strict probe in a child process (the hidden
//! `gdswap cufile-probe --strict`, with a time limit: cuFile can hang on hosts without a GPU,
//! and a probe that hangs makes the run refuse to open the driver in-process at all)
//! disallows compat mode and registers the file; 5008 there means compat. The workers add the
//! driver properties they read in-process. `--require-gpudirect` turns a compat verdict into
//! an error before anything is moved.

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
use crate::cufile::io::{self as cfio, Batch, BufRegistration, Piece, StreamQueue};
use crate::cufile::probe::{self as driver_probe, ProbeOutcome};
use crate::cufile::stats::{self, PathCounts};
use crate::cufile::GdsPath;
use crate::cufile::{self, CuFileLib, Driver, DriverProperties};
use crate::error::{Error, Result, Setting};
use crate::io::buffer::{HugePages, PageBacking};
use crate::io::file::DataFile;
use crate::options::{GdsApi, GdsOptions, Op, RunOptions, Target};
use crate::request::Request;
use crate::size::Bytes;
use crate::stats::LatencyRecorder;
use gdswap_ffi::CUfileOpError;

use super::{Availability, Backend, MemoryKind, Worker, WorkerSetup};

/// Pinned staging per thread, for `fill`/`inspect` copies and unaligned tails.
const STAGING: usize = 1 << 20;

/// Bytes of pinned host memory one worker over a range of `range_len` bytes holds (its
/// staging buffer for tails, `fill` and `inspect`), in whole pages.
pub fn pinned_bytes(range_len: u64) -> u64 {
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

/// The process's libcufile, loaded once (one driver per process, one library for it).
fn library() -> std::result::Result<Arc<CuFileLib>, String> {
    static LIB: OnceLock<std::result::Result<Arc<CuFileLib>, String>> = OnceLock::new();
    LIB.get_or_init(|| cufile::load(None).map(Arc::new).map_err(|e| e.to_string()))
        .clone()
}

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
pub fn decide_probe(
    props: Option<&DriverProperties>,
    strict: &Strict,
    forced_compat: bool,
) -> GdsPath {
    let path = |p: &str, reason: String| GdsPath {
        path: p.into(),
        reason,
        notes: Vec::new(),
    };
    if forced_compat {
        return path(
            GdsPath::COMPAT,
            "CUFILE_FORCE_COMPAT_MODE is set: cuFile does all I/O in compat mode".into(),
        );
    }
    if let Strict::NotSupported(d) = strict {
        return path(GdsPath::COMPAT, format!("strict probe: {d}"));
    }
    let best = props.map(DriverProperties::best_path);
    if props.is_some_and(|p| p.posix_io_mode) {
        return path(
            GdsPath::COMPAT,
            "driver properties: cuFile's POSIX I/O mode is on (posix_io_mode): every I/O is POSIX"
                .into(),
        );
    }
    if best == Some(GdsPath::COMPAT) {
        return path(
            GdsPath::COMPAT,
            "driver properties: nvidia-fs not loaded and no PCI P2PDMA".into(),
        );
    }
    match (strict, best) {
        (Strict::Registered, Some(b)) if b.starts_with("gpudirect") => {
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
            GdsPath::UNKNOWN,
            "the strict probe registered the file, but the driver properties name no direct path"
                .into(),
        ),
        (Strict::NotRun(why), Some(b)) => path(
            GdsPath::UNKNOWN,
            format!("the driver offers {b}, but no per-file probe confirmed it: {why}"),
        ),
        (Strict::NotRun(why), None) => path(
            GdsPath::UNKNOWN,
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
) -> GdsPath {
    let base = decide_probe(props, strict, forced_compat);
    let Some(c) = stats.filter(|c| c.total() > 0 && !forced_compat) else {
        return base;
    };
    let (path, what) = if c.posix == 0 {
        (
            if c.p2p > c.nvfs {
                GdsPath::P2PDMA
            } else {
                GdsPath::NVIDIA_FS
            },
            format!(
                "statistics: {} nvidia-fs and {} P2PDMA I/Os, none through POSIX",
                c.nvfs, c.p2p
            ),
        )
    } else if c.nvfs + c.p2p == 0 {
        (
            GdsPath::COMPAT,
            format!("statistics: all {} I/Os went through POSIX", c.posix),
        )
    } else {
        (
            GdsPath::COMPAT,
            format!(
                "statistics: {} of {} I/Os went through POSIX",
                c.posix,
                c.total()
            ),
        )
    };
    GdsPath {
        path: path.into(),
        reason: format!("{what}; {}", base.reason),
        notes: Vec::new(),
    }
}

fn forced_compat() -> bool {
    std::env::var("CUFILE_FORCE_COMPAT_MODE")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"))
}

#[derive(Default)]
struct PathState {
    strict: Option<Strict>,
    /// Properties from the probe child, then from the first worker (in-process).
    props: Option<DriverProperties>,
    /// Whether statistics collection was turned on (1.15+), and the counts read at release.
    stats_started: bool,
    stats: Option<PathCounts>,
    /// The counts were read after the warm-up loops and collection stopped then.
    stats_frozen: bool,
    /// Notes for the report (buffers left unregistered, and why).
    notes: Vec<String>,
}

impl PathState {
    fn verdict(&self) -> GdsPath {
        let not_probed = Strict::NotRun("not probed".into());
        let mut v = decide(
            self.props.as_ref(),
            self.strict.as_ref().unwrap_or(&not_probed),
            self.stats,
            forced_compat(),
        );
        if v.reason.starts_with("statistics: ") {
            v.reason.push_str(if self.stats_frozen {
                "; statistics counted over the warm-up loops and were off during the measured ones"
            } else {
                "; statistics (level 3) counted every loop, the measured ones included"
            });
        }
        v.notes = self.notes.clone();
        v
    }
}

type SharedState = Arc<Mutex<PathState>>;

fn lock(s: &SharedState) -> std::sync::MutexGuard<'_, PathState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

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
        let target = probe_target(&opts.target);
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
            let log = match child.log_tail.last() {
                Some(l) => format!("; cufile.log ends: {l}"),
                None => String::new(),
            };
            return Err(unavailable(format!(
                "cuFileDriverOpen did not return within {} s in a probe process (killed), so it is not opened in this one; {PROBE_TIMEOUT_ENV} sets the limit{log}",
                timeout.as_secs_f64()
            )));
        }
        let Some(outcome) = child.outcome else {
            let why = child.failure.unwrap_or_else(|| "no outcome".into());
            return Ok((Strict::NotRun(format!("strict probe: {why}")), None));
        };
        let props = outcome.properties.clone();
        Ok((strict_of(&outcome), props))
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

fn strict_of(o: &ProbeOutcome) -> Strict {
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

fn unavailable(reason: String) -> Error {
    Error::Unavailable {
        backend: "gds".into(),
        reason: reason.into(),
    }
}

impl Backend for GdsBackend {
    fn name(&self) -> &'static str {
        "gds"
    }

    fn summary(&self) -> &'static str {
        "cuFile (GPUDirect Storage) straight into GPU memory"
    }

    fn memory(&self) -> MemoryKind {
        MemoryKind::Device
    }

    fn probe(&self) -> Availability {
        // libcuda first: cuFile must never be opened on a host without a CUDA driver.
        if let Err(why) = driver::load() {
            return Availability::Unavailable(why);
        }
        match library() {
            Ok(_) => Availability::Available,
            Err(why) => Availability::Unavailable(why),
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
        let queue = match gds.api {
            GdsApi::Stream => Some(StreamQueue::new(
                &driver,
                setup.queue_depth.max(1) as usize,
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
                Some(Batch::new(&driver, setup.queue_depth)?)
            }
            _ => None,
        };
        {
            let mut s = self.state();
            // In-process properties are those the run used: they win over the probe's.
            s.props = Some(props);
            // Statistics (1.15+), process-wide: turned on once, by the first worker. A library
            // without them just gives no per-I/O evidence.
            if !s.stats_started && lib.stats.is_some() {
                s.stats_started = stats::start(&driver).is_ok();
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
            range_len,
            state: Arc::clone(&self.state),
        }))
    }

    fn gds_path(&self) -> Option<GdsPath> {
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

    /// Stream or batch: up to the queue depth in flight, each slot refilled as its request
    /// completes; short pieces continued; one latency per request, from its submission to
    /// its completion.
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
            "cuFile {} api, {}, device {} ({}); {}",
            self.opts.api,
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
        let mut host = vec![0u8; self.range_len];
        f(&mut host);
        self.fill_pieces(&mut |off, piece| piece.copy_from_slice(&host[off..off + piece.len()]))
    }

    fn inspect(&mut self, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut host = vec![0u8; self.range_len];
        self.inspect_pieces(&mut |off, piece| {
            host[off..off + piece.len()].copy_from_slice(piece);
            Ok(())
        })?;
        f(&host)
    }

    fn fill_pieces(&mut self, f: &mut dyn FnMut(usize, &mut [u8])) -> Result<()> {
        self.buffer.fill_through(&mut self.staging, &self.stream, f)
    }

    fn inspect_pieces(&mut self, f: &mut dyn FnMut(usize, &[u8]) -> Result<()>) -> Result<()> {
        self.buffer
            .inspect_through(&mut self.staging, &self.stream, f)
    }

    fn begin_measured(&mut self) -> Result<()> {
        // The statistics of the warm-up loops are the evidence; the measured loops run
        // without them (the first worker here reads and stops them for the process).
        let mut s = lock(&self.state);
        if s.stats_started && !s.stats_frozen {
            s.stats_frozen = true;
            if let Ok(c) = stats::read(&self.driver) {
                s.stats = Some(c);
            }
            let _ = stats::stop(&self.driver);
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
                if let Ok(c) = stats::read(&me.driver) {
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
        let d = decide_probe(Some(&nvfs), &Strict::Registered, false);
        assert_eq!(d.path, GdsPath::NVIDIA_FS);
        assert!(d.reason.contains("nvidia-fs 2.17"), "{}", d.reason);
        let p2p = props(false, true, true);
        assert_eq!(
            decide_probe(Some(&p2p), &Strict::Registered, false).path,
            GdsPath::P2PDMA
        );
        // 5008 under the strict probe is compat, whatever the driver offers.
        let d = decide_probe(Some(&nvfs), &Strict::NotSupported("5008".into()), false);
        assert!(d.is_compat() && d.reason.contains("5008"));
        // No nvidia-fs and no P2PDMA: compat, probe or not.
        let none = props(false, false, true);
        assert!(decide_probe(Some(&none), &Strict::NotRun("x".into()), false).is_compat());
        // A direct path offered but not confirmed for this file: unknown.
        let d = decide_probe(Some(&nvfs), &Strict::NotRun("timed out".into()), false);
        assert_eq!(d.path, GdsPath::UNKNOWN);
        assert!(d.reason.contains("timed out"));
        assert_eq!(
            decide_probe(None, &Strict::NotRun("x".into()), false).path,
            GdsPath::UNKNOWN
        );
        assert_eq!(
            decide_probe(None, &Strict::Registered, false).path,
            GdsPath::UNKNOWN
        );
        // Forced compat wins.
        assert!(decide_probe(Some(&nvfs), &Strict::Registered, true).is_compat());
        // cuFile's POSIX I/O mode (1.17+): compat, though nvidia-fs is loaded and the file
        // registered; the fallback mode is named in a direct verdict.
        let mut posix = props(true, false, true);
        posix.posix_io_mode = true;
        let d = decide_probe(Some(&posix), &Strict::Registered, false);
        assert!(d.is_compat() && d.reason.contains("posix_io_mode"), "{d:?}");
        let mut fallback = props(true, false, true);
        fallback.fallback_io_mode = true;
        let d = decide_probe(Some(&fallback), &Strict::Registered, false);
        assert_eq!(d.path, GdsPath::NVIDIA_FS);
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
        assert_eq!(d.path, GdsPath::NVIDIA_FS);
        let d = decide(None, &Strict::NotRun("x".into()), c(0, 0, 8), false);
        assert_eq!(d.path, GdsPath::P2PDMA);
        // No counted I/O: the probe's verdict stands.
        let d = decide(Some(&nvfs), &Strict::Registered, c(0, 0, 0), false);
        assert_eq!(d, decide_probe(Some(&nvfs), &Strict::Registered, false));
        assert!(decide(Some(&nvfs), &Strict::Registered, c(0, 5, 0), true).is_compat());
    }

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
