//! Finding and loading NVIDIA's libcufile at run time.
//!
//! Why at run time: gdswap must build and run on machines without CUDA (CI, laptops) and say
//! there why GDS is unavailable, instead of failing to start for want of a shared library. So
//! nothing links against libcufile; [`load`] opens it with `dlopen` and resolves each function
//! by name into the pointer types of `gdswap-ffi`.
//!
//! Where it looks, in order:
//! 1. a path given by the caller (a command-line flag), else the environment variable
//!    `GDSWAP_CUFILE_PATH`. A named library is the only one tried: a typo must not silently
//!    load a different library, and a fake or newer build must win over the system's;
//! 2. otherwise `libcufile.so.0` (the SONAME: runtime-only installs have nothing else), then
//!    `libcufile.so` (a development install), through the dynamic linker's usual search.
//!
//! How: `RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE`. NODELETE because libcufile keeps thread-locals
//! and threads whose destructors would run into unmapped code if the library were ever
//! unloaded; the [`CuFileLib`] is meant to live as long as the process anyway.
//!
//! What: the functions every cuFile since 1.0 has are *required*; a library lacking any of them
//! is refused, naming what is missing. Version-dependent groups (stream API 1.7+, batch API
//! 1.2+, `cuFileGetVersion`, the parameter API 1.14+, statistics 1.15+) are optional: each is
//! present only when all its symbols are, and [`CuFileLib::groups`] reports which are, so a
//! caller can say "needs cuFile >= 1.7" instead of crashing on a null pointer.
//!
//! Loading never panics. A failure names every candidate tried and why each one failed.

use std::ffi::{c_void, CStr, OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use gdswap_ffi as ffi;
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

/// The environment variable naming the libcufile to load.
pub const PATH_ENV: &str = "GDSWAP_CUFILE_PATH";

/// The names tried, in order, when no path is given.
pub const DEFAULT_NAMES: [&str; 2] = ["libcufile.so.0", "libcufile.so"];

/// Where a candidate came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Given by the caller (a flag).
    Argument,
    /// From `GDSWAP_CUFILE_PATH`.
    Environment,
    /// One of [`DEFAULT_NAMES`], searched by the dynamic linker.
    DefaultName,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Argument => "given path",
            Origin::Environment => PATH_ENV,
            Origin::DefaultName => "default name",
        })
    }
}

/// One library name or path to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// A library name for the dynamic linker's search, or a path.
    pub name: OsString,
    /// Where the name came from.
    pub origin: Origin,
}

/// The candidates [`load`] tries: the explicit path alone, else the environment's alone, else
/// the default names. An empty explicit or environment value counts as not given.
pub fn candidates(explicit: Option<&Path>, env: Option<&OsStr>) -> Vec<Candidate> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return vec![Candidate {
            name: p.as_os_str().to_owned(),
            origin: Origin::Argument,
        }];
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        return vec![Candidate {
            name: p.to_owned(),
            origin: Origin::Environment,
        }];
    }
    DEFAULT_NAMES
        .iter()
        .map(|n| Candidate {
            name: OsString::from(n),
            origin: Origin::DefaultName,
        })
        .collect()
}

/// One failed candidate and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The candidate tried.
    pub candidate: Candidate,
    /// Why it was refused: `dlopen`'s error, or the required symbols it lacks.
    pub why: String,
}

/// No candidate could be loaded as cuFile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// Every candidate tried, in order, with why it failed.
    pub attempts: Vec<Attempt>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot load cuFile (libcufile): tried ")?;
        for (i, a) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "{} ({}): {}",
                Path::new(&a.candidate.name).display(),
                a.candidate.origin,
                a.why
            )?;
        }
        if self
            .attempts
            .iter()
            .all(|a| a.candidate.origin == Origin::DefaultName)
        {
            write!(
                f,
                ". Install the GPUDirect Storage runtime (libcufile, part of CUDA), or set {PATH_ENV} to the library's path"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// The functions every libcufile has (1.0 on): without them the library is refused.
#[derive(Debug, Clone, Copy)]
pub struct RequiredApi {
    /// `cuFileDriverOpen`: opens the driver (one user more).
    pub driver_open: ffi::PFN_cuFileDriverOpen,
    /// `cuFileDriverClose_v2`, or `cuFileDriverClose` on libraries that lack `_v2`.
    pub driver_close: ffi::PFN_cuFileDriverClose,
    /// `cuFileDriverGetProperties`: reads the driver properties.
    pub driver_get_properties: ffi::PFN_cuFileDriverGetProperties,
    /// `cuFileDriverSetPollMode`: turns poll mode on or off, with its size threshold.
    pub driver_set_poll_mode: ffi::PFN_cuFileDriverSetPollMode,
    /// `cuFileDriverSetMaxDirectIOSize`: sets the largest piece one request is split into.
    pub driver_set_max_direct_io_size: ffi::PFN_cuFileDriverSetMaxDirectIOSize,
    /// `cuFileDriverSetMaxCacheSize`: sets the per-GPU bounce-buffer cache size.
    pub driver_set_max_cache_size: ffi::PFN_cuFileDriverSetMaxCacheSize,
    /// `cuFileDriverSetMaxPinnedMemSize`: sets the most device memory registrations may pin.
    pub driver_set_max_pinned_mem_size: ffi::PFN_cuFileDriverSetMaxPinnedMemSize,
    /// `cuFileHandleRegister`: registers a file descriptor, giving the handle I/O takes.
    pub handle_register: ffi::PFN_cuFileHandleRegister,
    /// `cuFileHandleDeregister`: releases a file registration.
    pub handle_deregister: ffi::PFN_cuFileHandleDeregister,
    /// `cuFileBufRegister`: registers (pins) a device buffer for direct I/O.
    pub buf_register: ffi::PFN_cuFileBufRegister,
    /// `cuFileBufDeregister`: releases a buffer registration.
    pub buf_deregister: ffi::PFN_cuFileBufDeregister,
    /// `cuFileRead`: synchronous read into device memory.
    pub read: ffi::PFN_cuFileRead,
    /// `cuFileWrite`: synchronous write from device memory.
    pub write: ffi::PFN_cuFileWrite,
}

/// The stream API: `cuFileReadAsync`/`WriteAsync` on CUDA streams (1.7+, CUDA 12.2).
#[derive(Debug, Clone, Copy)]
pub struct StreamApi {
    /// `cuFileReadAsync`: read queued on a CUDA stream.
    pub read_async: ffi::PFN_cuFileReadAsync,
    /// `cuFileWriteAsync`: write queued on a CUDA stream.
    pub write_async: ffi::PFN_cuFileWriteAsync,
    /// `cuFileStreamRegister`: registers a CUDA stream with cuFile.
    pub stream_register: ffi::PFN_cuFileStreamRegister,
    /// `cuFileStreamDeregister`: releases a stream registration.
    pub stream_deregister: ffi::PFN_cuFileStreamDeregister,
}

/// The batch API (1.2+).
#[derive(Debug, Clone, Copy)]
pub struct BatchApi {
    /// `cuFileBatchIOSetUp`: creates a batch of a given number of entries.
    pub set_up: ffi::PFN_cuFileBatchIOSetUp,
    /// `cuFileBatchIOSubmit`: submits entries to a batch.
    pub submit: ffi::PFN_cuFileBatchIOSubmit,
    /// `cuFileBatchIOGetStatus`: waits for and collects completed entries.
    pub get_status: ffi::PFN_cuFileBatchIOGetStatus,
    /// `cuFileBatchIOCancel`: cancels a batch's entries in flight.
    pub cancel: ffi::PFN_cuFileBatchIOCancel,
    /// `cuFileBatchIODestroy`: frees a batch.
    pub destroy: ffi::PFN_cuFileBatchIODestroy,
}

/// The parameter API (1.14+, CUDA 12.9): settings that must be made before the driver opens.
#[derive(Debug, Clone, Copy)]
pub struct ParameterApi {
    /// `cuFileGetParameterSizeT`: reads a size parameter.
    pub get_size_t: ffi::PFN_cuFileGetParameterSizeT,
    /// `cuFileGetParameterBool`: reads a boolean parameter.
    pub get_bool: ffi::PFN_cuFileGetParameterBool,
    /// `cuFileGetParameterString`: reads a string parameter.
    pub get_string: ffi::PFN_cuFileGetParameterString,
    /// `cuFileSetParameterSizeT`: sets a size parameter (before the driver opens).
    pub set_size_t: ffi::PFN_cuFileSetParameterSizeT,
    /// `cuFileSetParameterBool`: sets a boolean parameter (before the driver opens).
    pub set_bool: ffi::PFN_cuFileSetParameterBool,
    /// `cuFileSetParameterString`: sets a string parameter (before the driver opens).
    pub set_string: ffi::PFN_cuFileSetParameterString,
}

/// The statistics API (1.15+, CUDA 13): per-GPU counters of POSIX vs direct I/O.
#[derive(Debug, Clone, Copy)]
pub struct StatsApi {
    /// `cuFileSetStatsLevel`: sets the statistics level (0 to 3).
    pub set_level: ffi::PFN_cuFileSetStatsLevel,
    /// `cuFileGetStatsLevel`: reads the statistics level.
    pub get_level: ffi::PFN_cuFileGetStatsLevel,
    /// `cuFileStatsStart`: starts collecting statistics.
    pub start: ffi::PFN_cuFileStatsStart,
    /// `cuFileStatsStop`: stops collecting statistics.
    pub stop: ffi::PFN_cuFileStatsStop,
    /// `cuFileStatsReset`: zeroes the counters.
    pub reset: ffi::PFN_cuFileStatsReset,
    /// `cuFileGetStatsL1`: reads the level-1 counters.
    pub get_l1: ffi::PFN_cuFileGetStatsL1,
    /// `cuFileGetStatsL2`: reads the level-2 counters (level 1 plus size histograms).
    pub get_l2: ffi::PFN_cuFileGetStatsL2,
    /// `cuFileGetStatsL3`: reads the level-3 counters (level 2 plus per-GPU counts).
    pub get_l3: ffi::PFN_cuFileGetStatsL3,
}

/// Whether one optional group of functions is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolGroup {
    /// `stream`, `batch`, `version`, `parameters`, `statistics`, `use_count`.
    pub name: &'static str,
    /// The cuFile version that introduced it, for "needs cuFile >= x.y" messages.
    pub since: &'static str,
    /// True when every symbol of the group resolved.
    pub present: bool,
    /// The group's symbols that did not resolve (all of them when the group is absent,
    /// some when a library has a partial group, which is then treated as absent).
    pub missing: Vec<&'static str>,
}

/// A loaded libcufile: the resolved function pointers, valid for the life of the process
/// (the library is loaded with RTLD_NODELETE and is also kept open here).
pub struct CuFileLib {
    /// The candidate that loaded (a name or a path, as tried).
    pub name: OsString,
    /// The file the dynamic linker actually mapped, when it could be told (`dladdr`).
    pub file: Option<PathBuf>,
    /// The functions every libcufile has.
    pub required: RequiredApi,
    /// `cuFileUseCount` (users of the open driver), where the library has it.
    pub use_count: Option<ffi::PFN_cuFileUseCount>,
    /// `cuFileGetVersion`, where the library has it (1.7+).
    pub get_version: Option<ffi::PFN_cuFileGetVersion>,
    /// The stream API, where every one of its symbols resolved.
    pub stream: Option<StreamApi>,
    /// The batch API, where every one of its symbols resolved.
    pub batch: Option<BatchApi>,
    /// The parameter API, where every one of its symbols resolved.
    pub parameters: Option<ParameterApi>,
    /// The statistics API, where every one of its symbols resolved.
    pub stats: Option<StatsApi>,
    groups: Vec<SymbolGroup>,
    _library: Library,
}

impl fmt::Debug for CuFileLib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CuFileLib")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// A cuFile version as `cuFileGetVersion` reports it (1000 * major + 10 * minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CuFileVersion {
    /// Major version (1 for every release so far).
    pub major: u32,
    /// Minor version, e.g. 14 for 1.14.
    pub minor: u32,
}

impl CuFileVersion {
    /// Decodes `cuFileGetVersion`'s integer (1140 -> 1.14); `None` for a negative value.
    pub fn from_raw(raw: i32) -> Option<CuFileVersion> {
        let raw = u32::try_from(raw).ok()?;
        Some(CuFileVersion {
            major: raw / 1000,
            minor: (raw % 1000) / 10,
        })
    }
}

impl fmt::Display for CuFileVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Loads cuFile from `explicit`, else from `GDSWAP_CUFILE_PATH`, else by its default names.
pub fn load(explicit: Option<&Path>) -> Result<CuFileLib, LoadError> {
    let env = std::env::var_os(PATH_ENV);
    load_from(&candidates(explicit, env.as_deref()))
}

/// Tries each candidate in order; the first that loads and has every required symbol wins.
pub fn load_from(candidates: &[Candidate]) -> Result<CuFileLib, LoadError> {
    let mut attempts = Vec::new();
    for c in candidates {
        match try_load(c) {
            Ok(lib) => return Ok(lib),
            Err(why) => attempts.push(Attempt {
                candidate: c.clone(),
                why,
            }),
        }
    }
    Err(LoadError { attempts })
}

fn try_load(c: &Candidate) -> Result<CuFileLib, String> {
    // A path with a slash is opened as that file (no search); say plainly when it is missing,
    // which dlerror words less clearly.
    let is_path = c.name.as_bytes().contains(&b'/');
    if is_path {
        let p = Path::new(&c.name);
        if let Err(e) = std::fs::metadata(p) {
            return Err(format!("{e}"));
        }
    }
    // SAFETY: dlopen runs the library's initialisers. Loading the cuFile library the user
    // installed or named is what this function is for; RTLD_LOCAL keeps its symbols out of the
    // global namespace and RTLD_NODELETE keeps it mapped for any thread-local destructors.
    let library =
        unsafe { Library::open(Some(&c.name), RTLD_NOW | RTLD_LOCAL | libc::RTLD_NODELETE) }
            .map_err(|e| format!("dlopen failed: {}", crate::io::sys::dl_message(&e)))?;
    resolve(c.name.clone(), library)
}

/// Resolves `name` to a function pointer of type `T`, or `None` when absent (or null).
///
/// # Safety
/// `T` must be the function pointer type that matches the C declaration of `name`.
unsafe fn symbol<T: Copy>(library: &Library, name: &str) -> Option<T> {
    const { assert!(std::mem::size_of::<T>() == std::mem::size_of::<*mut c_void>()) };
    // SAFETY: reading a symbol's address as a raw pointer asserts nothing about its type.
    let raw: *mut c_void = match unsafe { library.get::<*mut c_void>(name) } {
        Ok(s) => *s,
        Err(_) => return None,
    };
    if raw.is_null() {
        return None;
    }
    // SAFETY: `raw` is a non-null address of the function `name`, and the caller guarantees `T`
    // is a function pointer type (same size as a data pointer, checked above) matching it.
    Some(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&raw) })
}

/// Resolves one symbol to its `gdswap-ffi` pointer type: `sym!(lib, "cuFileRead", PFN_cuFileRead)`.
macro_rules! sym {
    ($lib:expr, $name:literal, $pfn:ident) => {
        // SAFETY: ffi::$pfn is the hand-written declaration of the C function $name
        // (checked against the real cufile.h by tests/cufile_layout.rs).
        unsafe { symbol::<ffi::$pfn>($lib, $name) }
    };
}

/// Builds `$ty` when every field resolved (`Some`), recording the symbol of each one that did
/// not in `$missing`.
macro_rules! all_or_none {
    ($missing:ident, $ty:ident { $($field:ident: $value:expr => $name:expr),+ $(,)? }) => {{
        $( let $field = $value;
           if $field.is_none() { $missing.push($name); } )+
        (|| Some($ty { $($field: $field?),+ }))()
    }};
}

fn resolve(name: OsString, library: Library) -> Result<CuFileLib, String> {
    let lib = &library;
    let mut missing: Vec<&'static str> = Vec::new();
    let required = all_or_none!(missing, RequiredApi {
        driver_open: sym!(lib, "cuFileDriverOpen", PFN_cuFileDriverOpen) => "cuFileDriverOpen",
        // Old libraries export only the name without _v2 (same signature).
        driver_close: sym!(lib, "cuFileDriverClose_v2", PFN_cuFileDriverClose)
            .or_else(|| sym!(lib, "cuFileDriverClose", PFN_cuFileDriverClose))
            => "cuFileDriverClose_v2",
        driver_get_properties: sym!(lib, "cuFileDriverGetProperties", PFN_cuFileDriverGetProperties)
            => "cuFileDriverGetProperties",
        driver_set_poll_mode: sym!(lib, "cuFileDriverSetPollMode", PFN_cuFileDriverSetPollMode)
            => "cuFileDriverSetPollMode",
        driver_set_max_direct_io_size: sym!(lib, "cuFileDriverSetMaxDirectIOSize", PFN_cuFileDriverSetMaxDirectIOSize)
            => "cuFileDriverSetMaxDirectIOSize",
        driver_set_max_cache_size: sym!(lib, "cuFileDriverSetMaxCacheSize", PFN_cuFileDriverSetMaxCacheSize)
            => "cuFileDriverSetMaxCacheSize",
        driver_set_max_pinned_mem_size: sym!(lib, "cuFileDriverSetMaxPinnedMemSize", PFN_cuFileDriverSetMaxPinnedMemSize)
            => "cuFileDriverSetMaxPinnedMemSize",
        handle_register: sym!(lib, "cuFileHandleRegister", PFN_cuFileHandleRegister) => "cuFileHandleRegister",
        handle_deregister: sym!(lib, "cuFileHandleDeregister", PFN_cuFileHandleDeregister) => "cuFileHandleDeregister",
        buf_register: sym!(lib, "cuFileBufRegister", PFN_cuFileBufRegister) => "cuFileBufRegister",
        buf_deregister: sym!(lib, "cuFileBufDeregister", PFN_cuFileBufDeregister) => "cuFileBufDeregister",
        read: sym!(lib, "cuFileRead", PFN_cuFileRead) => "cuFileRead",
        write: sym!(lib, "cuFileWrite", PFN_cuFileWrite) => "cuFileWrite",
    });
    let Some(required) = required else {
        return Err(format!(
            "not a usable cuFile library: missing required symbols {}",
            missing.join(", ")
        ));
    };

    let mut groups = Vec::new();
    let mut optional = |name: &'static str, since: &'static str, missing: Vec<&'static str>| {
        groups.push(SymbolGroup {
            name,
            since,
            present: missing.is_empty(),
            missing,
        });
    };

    let mut m = Vec::new();
    let use_count = sym!(lib, "cuFileUseCount", PFN_cuFileUseCount);
    if use_count.is_none() {
        m.push("cuFileUseCount");
    }
    optional("use_count", "1.0", std::mem::take(&mut m));

    let get_version = sym!(lib, "cuFileGetVersion", PFN_cuFileGetVersion);
    if get_version.is_none() {
        m.push("cuFileGetVersion");
    }
    optional("version", "1.7", std::mem::take(&mut m));

    let stream = all_or_none!(m, StreamApi {
        read_async: sym!(lib, "cuFileReadAsync", PFN_cuFileReadAsync) => "cuFileReadAsync",
        write_async: sym!(lib, "cuFileWriteAsync", PFN_cuFileWriteAsync) => "cuFileWriteAsync",
        stream_register: sym!(lib, "cuFileStreamRegister", PFN_cuFileStreamRegister) => "cuFileStreamRegister",
        stream_deregister: sym!(lib, "cuFileStreamDeregister", PFN_cuFileStreamDeregister) => "cuFileStreamDeregister",
    });
    optional("stream", "1.7", std::mem::take(&mut m));

    let batch = all_or_none!(m, BatchApi {
        set_up: sym!(lib, "cuFileBatchIOSetUp", PFN_cuFileBatchIOSetUp) => "cuFileBatchIOSetUp",
        submit: sym!(lib, "cuFileBatchIOSubmit", PFN_cuFileBatchIOSubmit) => "cuFileBatchIOSubmit",
        get_status: sym!(lib, "cuFileBatchIOGetStatus", PFN_cuFileBatchIOGetStatus) => "cuFileBatchIOGetStatus",
        cancel: sym!(lib, "cuFileBatchIOCancel", PFN_cuFileBatchIOCancel) => "cuFileBatchIOCancel",
        destroy: sym!(lib, "cuFileBatchIODestroy", PFN_cuFileBatchIODestroy) => "cuFileBatchIODestroy",
    });
    optional("batch", "1.2", std::mem::take(&mut m));

    let parameters = all_or_none!(m, ParameterApi {
        get_size_t: sym!(lib, "cuFileGetParameterSizeT", PFN_cuFileGetParameterSizeT) => "cuFileGetParameterSizeT",
        get_bool: sym!(lib, "cuFileGetParameterBool", PFN_cuFileGetParameterBool) => "cuFileGetParameterBool",
        get_string: sym!(lib, "cuFileGetParameterString", PFN_cuFileGetParameterString) => "cuFileGetParameterString",
        set_size_t: sym!(lib, "cuFileSetParameterSizeT", PFN_cuFileSetParameterSizeT) => "cuFileSetParameterSizeT",
        set_bool: sym!(lib, "cuFileSetParameterBool", PFN_cuFileSetParameterBool) => "cuFileSetParameterBool",
        set_string: sym!(lib, "cuFileSetParameterString", PFN_cuFileSetParameterString) => "cuFileSetParameterString",
    });
    optional("parameters", "1.14", std::mem::take(&mut m));

    let stats = all_or_none!(m, StatsApi {
        set_level: sym!(lib, "cuFileSetStatsLevel", PFN_cuFileSetStatsLevel) => "cuFileSetStatsLevel",
        get_level: sym!(lib, "cuFileGetStatsLevel", PFN_cuFileGetStatsLevel) => "cuFileGetStatsLevel",
        start: sym!(lib, "cuFileStatsStart", PFN_cuFileStatsStart) => "cuFileStatsStart",
        stop: sym!(lib, "cuFileStatsStop", PFN_cuFileStatsStop) => "cuFileStatsStop",
        reset: sym!(lib, "cuFileStatsReset", PFN_cuFileStatsReset) => "cuFileStatsReset",
        get_l1: sym!(lib, "cuFileGetStatsL1", PFN_cuFileGetStatsL1) => "cuFileGetStatsL1",
        get_l2: sym!(lib, "cuFileGetStatsL2", PFN_cuFileGetStatsL2) => "cuFileGetStatsL2",
        get_l3: sym!(lib, "cuFileGetStatsL3", PFN_cuFileGetStatsL3) => "cuFileGetStatsL3",
    });
    optional("statistics", "1.15", std::mem::take(&mut m));

    let file = mapped_file(required.driver_open as *const c_void);
    Ok(CuFileLib {
        name,
        file,
        required,
        use_count,
        get_version,
        stream,
        batch,
        parameters,
        stats,
        groups,
        _library: library,
    })
}

/// The file holding the code at `addr`, as the dynamic linker mapped it.
fn mapped_file(addr: *const c_void) -> Option<PathBuf> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads the linker's tables and writes `info`; `addr` is the address of
    // a function in a loaded library.
    let found = unsafe { libc::dladdr(addr, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: dladdr returned non-zero, so it filled `info`.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the linker, valid while the
    // library is loaded (forever, with RTLD_NODELETE); it is copied at once.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let file = PathBuf::from(OsStr::from_bytes(name.to_bytes()));
    Some(file.canonicalize().unwrap_or(file))
}

impl CuFileLib {
    /// The optional groups and whether each is present, in a fixed order.
    pub fn groups(&self) -> &[SymbolGroup] {
        &self.groups
    }

    /// The group called `name`, if there is one by that name.
    pub fn group(&self, name: &str) -> Option<&SymbolGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The library's version from `cuFileGetVersion`: `None` when the library predates that
    /// function, `Some(Err)` when the call failed.
    pub fn version(&self) -> Option<crate::Result<CuFileVersion>> {
        let get = self.get_version?;
        let mut raw: std::ffi::c_int = -1;
        // SAFETY: `get` is cuFileGetVersion, which writes one int through its pointer argument;
        // `raw` lives across the call. It needs neither the driver nor a GPU.
        let status = unsafe { get(&mut raw) };
        Some(
            super::result::Call::new("cuFileGetVersion")
                .check(status)
                .and_then(|()| {
                    CuFileVersion::from_raw(raw).ok_or_else(|| {
                        crate::Error::DriverContract(format!(
                            "cuFileGetVersion reported an impossible version {raw}"
                        ))
                    })
                }),
        )
    }

    /// `cuFileSetParameterBool` (1.14+; works only before the driver is opened).
    pub fn set_parameter_bool(
        &self,
        param: ffi::CUFileBoolConfigParameter,
        value: bool,
    ) -> crate::Result<()> {
        let api = self.parameters.ok_or_else(|| crate::Error::Unavailable {
            backend: "gds".into(),
            reason: self.require("parameters").err().unwrap_or_default().into(),
        })?;
        // SAFETY: cuFileSetParameterBool takes two values and returns a status; the pointer was
        // resolved from the loaded library, which stays mapped.
        let status = unsafe { (api.set_bool)(param, value) };
        super::result::Call::new("cuFileSetParameterBool").check(status)
    }

    /// "needs cuFile >= x.y" when the optional group `name` is absent.
    pub fn require(&self, name: &str) -> Result<(), String> {
        match self.group(name) {
            Some(g) if g.present => Ok(()),
            Some(g) => Err(format!(
                "the loaded cuFile ({}) lacks the {} API ({}): needs cuFile >= {}",
                self.describe(),
                g.name,
                g.missing.join(", "),
                g.since
            )),
            None => Err(format!("unknown cuFile API group '{name}'")),
        }
    }

    /// The loaded file, or the name it was loaded by.
    pub fn describe(&self) -> String {
        match &self.file {
            Some(f) => f.display().to_string(),
            None => Path::new(&self.name).display().to_string(),
        }
    }
}

/// The names tried for the CUDA driver library, which libcufile itself loads.
pub const LIBCUDA_NAMES: [&str; 2] = ["libcuda.so.1", "libcuda.so"];

/// What [`probe_libcuda`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibcudaProbe {
    /// The file the dynamic linker mapped, when found.
    pub file: Option<PathBuf>,
    /// `cuDriverGetVersion`: 1000 * major + 10 * minor of the newest CUDA the driver supports.
    pub driver_version: Option<i32>,
    /// Every name tried before the one that loaded (all of them when none did), and why.
    pub attempts: Vec<Attempt>,
}

/// Looks for the CUDA driver library (`libcuda.so.1`, then `libcuda.so`) and reads its
/// version, without initialising CUDA (`cuDriverGetVersion` needs no `cuInit`). Without it,
/// cuFile cannot open its driver: 1.14 fails with `CU_FILE_NVFS_SETUP_ERROR`, and 1.20 has been
/// seen to hang in `cuFileDriverOpen`, so callers check this first.
pub fn probe_libcuda() -> LibcudaProbe {
    type CuDriverGetVersion =
        unsafe extern "C" fn(version: *mut std::ffi::c_int) -> std::ffi::c_int;
    let mut attempts = Vec::new();
    for name in LIBCUDA_NAMES {
        // SAFETY: as for libcufile: loading the installed NVIDIA driver library runs its
        // initialisers, which every CUDA program does; it stays loaded (RTLD_NODELETE).
        let library =
            match unsafe { Library::open(Some(name), RTLD_NOW | RTLD_LOCAL | libc::RTLD_NODELETE) }
            {
                Ok(l) => l,
                Err(e) => {
                    attempts.push(Attempt {
                        candidate: Candidate {
                            name: name.into(),
                            origin: Origin::DefaultName,
                        },
                        why: format!("dlopen failed: {}", crate::io::sys::dl_message(&e)),
                    });
                    continue;
                }
            };
        // SAFETY: CuDriverGetVersion is the C declaration `CUresult cuDriverGetVersion(int*)`.
        let get = unsafe { symbol::<CuDriverGetVersion>(&library, "cuDriverGetVersion") };
        let mut file = None;
        let mut driver_version = None;
        if let Some(get) = get {
            file = mapped_file(get as *const c_void);
            let mut v: std::ffi::c_int = 0;
            // SAFETY: cuDriverGetVersion writes one int through the pointer and needs no
            // initialised CUDA; `v` lives across the call.
            if unsafe { get(&mut v) } == 0 {
                driver_version = Some(v);
            }
        }
        return LibcudaProbe {
            file: file.or_else(|| Some(PathBuf::from(name))),
            driver_version,
            attempts,
        };
    }
    LibcudaProbe {
        file: None,
        driver_version: None,
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_explicit_then_env_then_default_names() {
        let c = candidates(
            Some(Path::new("/x/libcufile.so.0")),
            Some(OsStr::new("/env")),
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].origin, Origin::Argument);
        assert_eq!(c[0].name, "/x/libcufile.so.0");

        let c = candidates(None, Some(OsStr::new("/env/lib.so")));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].origin, Origin::Environment);

        for (explicit, env) in [(None, None), (Some(Path::new("")), Some(OsStr::new("")))] {
            let c = candidates(explicit, env);
            let names: Vec<_> = c.iter().map(|c| c.name.to_str().unwrap()).collect();
            assert_eq!(names, ["libcufile.so.0", "libcufile.so"]);
            assert!(c.iter().all(|c| c.origin == Origin::DefaultName));
        }
    }

    #[test]
    fn libcuda_probe_names_what_it_tried() {
        let p = probe_libcuda();
        match &p.file {
            // A CUDA machine: the attempts before the one that loaded, if any.
            Some(f) => assert!(!f.as_os_str().is_empty()),
            None => {
                let names: Vec<_> = p
                    .attempts
                    .iter()
                    .map(|a| a.candidate.name.clone())
                    .collect();
                assert_eq!(names, LIBCUDA_NAMES);
                assert!(p
                    .attempts
                    .iter()
                    .all(|a| a.why.starts_with("dlopen failed: ")));
                assert_eq!(p.driver_version, None);
            }
        }
    }

    #[test]
    fn version_decoding() {
        assert_eq!(
            CuFileVersion::from_raw(1140),
            Some(CuFileVersion {
                major: 1,
                minor: 14
            })
        );
        assert_eq!(CuFileVersion::from_raw(1200).unwrap().to_string(), "1.20");
        assert_eq!(CuFileVersion::from_raw(1070).unwrap().to_string(), "1.7");
        assert_eq!(CuFileVersion::from_raw(-1), None);
    }

    #[test]
    fn not_found_names_every_candidate_and_why() {
        let dir = crate::testutil::scratch_dir();
        let text = dir.path().join("not-a-library.so");
        std::fs::write(&text, "hello").unwrap();
        let list = vec![
            Candidate {
                name: "libgdswap-no-such-cufile.so.0".into(),
                origin: Origin::DefaultName,
            },
            Candidate {
                name: dir.path().join("missing.so").into(),
                origin: Origin::Argument,
            },
            Candidate {
                name: text.clone().into(),
                origin: Origin::Environment,
            },
            // A real library that is not cuFile.
            Candidate {
                name: "libc.so.6".into(),
                origin: Origin::DefaultName,
            },
        ];
        let err = load_from(&list).unwrap_err();
        assert_eq!(err.attempts.len(), 4);
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot load cuFile (libcufile): tried "),
            "{msg}"
        );
        assert!(
            // dlerror's own words, not libloading's bare "dlopen failed".
            msg.contains("libgdswap-no-such-cufile.so.0 (default name): dlopen failed: libgdswap-no-such-cufile.so.0: cannot open shared object file"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "{} (given path): No such file or directory",
                dir.path().join("missing.so").display()
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "{} (GDSWAP_CUFILE_PATH): dlopen failed:",
                text.display()
            )),
            "{msg}"
        );
        assert!(
            msg.contains("libc.so.6 (default name): not a usable cuFile library: missing required symbols cuFileDriverOpen, cuFileDriverClose_v2,"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
        // A user-named path gets no advice to set the variable; default names do.
        assert!(!msg.contains("set GDSWAP_CUFILE_PATH"));
        let defaults = load_from(&list[..1]).unwrap_err().to_string();
        assert!(defaults.ends_with("or set GDSWAP_CUFILE_PATH to the library's path"));
    }
}
