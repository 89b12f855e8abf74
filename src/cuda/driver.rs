//! Finding and initialising the CUDA driver, without ever panicking.
//!
//! cudarc (with `dynamic-loading`) opens libcuda at its first driver call and panics if it
//! cannot. So before any driver call, [`load`] asks cudarc whether one of the library names
//! it tries can be opened (`is_culib_present`), and only then calls `cuInit` and counts the
//! devices. The outcome is computed once per process.
//!
//! Where libcuda is looked for: the dynamic loader's search path (`LD_LIBRARY_PATH`, the
//! ld.so cache, the system directories) under the names cudarc tries (`libcuda.so`,
//! `libcuda.so.1`, ...). `GDSWAP_LIBCUDA=/path/to/libcuda.so.1` loads a library from a path
//! first (globally), so cudarc's later lookup by name finds it by its soname (`libcuda.so.1`)
//! as long as no other `libcuda.so` is on the search path; when one is (cudarc tries that name
//! first), the two libraries' `cuInit` differ and gdswap refuses rather than silently use the
//! other one.

use std::sync::OnceLock;

use cudarc::driver::sys;

/// The environment variable naming a libcuda file to load before searching by name.
pub const LIBCUDA_ENV: &str = "GDSWAP_LIBCUDA";

/// Every driver entry point gdswap calls ([`super::api`] resolves them with `u32` results): a
/// library without one of them (a stub, a foreign fake, a driver too old) makes the GPU
/// backends unavailable, with the missing names, instead of failing later.
pub const REQUIRED_SYMBOLS: &[&str] = super::api::REQUIRED;

/// Driver functions only `gdswap check`'s GPU list calls: not in [`REQUIRED_SYMBOLS`] (a run
/// does not need them); `api()` holds them as `Option`s.
pub const OPTIONAL_SYMBOLS: &[&str] = super::api::OPTIONAL;

/// What the driver said when it was initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverInfo {
    /// CUDA devices visible to this process.
    pub devices: usize,
    /// The driver's CUDA version, as 1000 * major + 10 * minor.
    pub version: i32,
}

/// Loads libcuda, initialises it, and counts its devices; the reason why not otherwise (which
/// libraries were looked for, and how to point at them). Safe to call from any thread, any
/// number of times: the work is done once.
pub fn load() -> Result<DriverInfo, String> {
    static STATE: OnceLock<Result<DriverInfo, String>> = OnceLock::new();
    STATE.get_or_init(load_once).clone()
}

/// The library names looked for on the dynamic loader's path, in order, each once.
pub fn search_names() -> Vec<String> {
    let mut names = cudarc::get_lib_name_candidates("cuda");
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Why [`load`] fails when no libcuda can be opened: every name looked for, and the fixes.
pub fn not_found_reason() -> String {
    format!(
        "libcuda (the NVIDIA driver's CUDA library) not found: looked for {} on the dynamic loader's path; install the NVIDIA driver, add the directory holding libcuda.so.1 to LD_LIBRARY_PATH, or set {LIBCUDA_ENV}=/path/to/libcuda.so.1",
        search_names().join(", ")
    )
}

/// The file a loaded symbol lives in (dladdr), for messages.
fn file_of(symbol: *const std::ffi::c_void) -> String {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads the loader's tables and writes one Dl_info; `dli_fname` then
    // points to a NUL-terminated string owned by the loader, valid while the library stays
    // loaded (gdswap never unloads libcuda).
    unsafe {
        if libc::dladdr(symbol, info.as_mut_ptr()) == 0 {
            return "an unknown file".into();
        }
        let info = info.assume_init();
        if info.dli_fname.is_null() {
            return "an unknown file".into();
        }
        std::ffi::CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned()
    }
}

fn load_once() -> Result<DriverInfo, String> {
    // cuInit of the library GDSWAP_LIBCUDA loaded, to check that cudarc uses that one.
    let mut wanted: Option<(String, *const std::ffi::c_void)> = None;
    if let Some(path) = std::env::var_os(LIBCUDA_ENV).filter(|p| !p.is_empty()) {
        // SAFETY: loading a shared library runs its initialisers; libcuda's (or a fake's) are
        // what any CUDA program runs. RTLD_GLOBAL makes its soname visible to the later
        // lookup by name. The handle is leaked on purpose: the library stays loaded for the
        // life of the process, as cudarc's own handle does.
        let lib = unsafe {
            libloading::os::unix::Library::open(
                Some(&path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
            )
        };
        match lib {
            Ok(lib) => {
                // SAFETY: only the symbol's address is read, never called through this type.
                let init = unsafe { lib.get::<*const std::ffi::c_void>(b"cuInit\0") }
                    .map(|s| *s)
                    .map_err(|e| {
                        let e = crate::io::sys::dl_message(&e);
                        format!(
                            "{LIBCUDA_ENV}={}: not a CUDA driver library ({e}); point {LIBCUDA_ENV} at the NVIDIA driver's libcuda.so.1, or unset it",
                            path.to_string_lossy()
                        )
                    })?;
                wanted = Some((path.to_string_lossy().into_owned(), init));
                std::mem::forget(lib);
            }
            Err(e) => {
                let e = crate::io::sys::dl_message(&e);
                return Err(format!(
                    "{LIBCUDA_ENV}={}: cannot load it ({e}); point {LIBCUDA_ENV} at the NVIDIA driver's libcuda.so.1, or unset it",
                    path.to_string_lossy()
                ));
            }
        }
    }
    // SAFETY: is_culib_present only tries to dlopen candidate names and closes what it opened.
    if !unsafe { sys::is_culib_present() } {
        return Err(not_found_reason());
    }
    if let Some((path, init)) = wanted {
        // SAFETY: a libcuda is present (checked above), so culib() loads instead of panicking;
        // only the symbol's address is read.
        let used = unsafe { sys::culib().get::<*const std::ffi::c_void>(b"cuInit\0") }
            .map(|s| *s)
            .map_err(|e| format!("the libcuda cudarc loaded has no cuInit ({e})"))?;
        if used != init {
            return Err(format!(
                "{LIBCUDA_ENV}={path} was loaded, but the CUDA library found by name first is {} (a libcuda.so on the loader's path): unset {LIBCUDA_ENV} and put the wanted library's directory first in LD_LIBRARY_PATH",
                file_of(used)
            ));
        }
    }
    // SAFETY: a libcuda is present (checked above), so culib() loads instead of panicking;
    // it is the library the CUDA driver API is looked up in.
    let api = match unsafe { super::api::init() } {
        Ok(api) => api,
        Err(missing) => {
            // SAFETY: as above; cuInit is looked up only to name the file in the message.
            let file = unsafe { sys::culib().get::<*const std::ffi::c_void>(b"cuInit\0") }
                .map(|s| file_of(*s))
                .unwrap_or_else(|_| "the libcuda found by name".into());
            return Err(format!(
                "{file} lacks CUDA driver functions gdswap needs: {}; it is not a usable NVIDIA driver library (update the driver, or point LD_LIBRARY_PATH/{LIBCUDA_ENV} at the right libcuda.so.1)",
                missing.join(", ")
            ));
        }
    };
    // SAFETY: cuInit takes flags 0 and touches no memory of ours.
    let rc = unsafe { (api.cuInit)(0) };
    if rc != super::api::CUDA_SUCCESS {
        return Err(format!(
            "cuInit failed: {} (is the NVIDIA kernel module loaded, and /dev/nvidia* accessible? check nvidia-smi)",
            super::describe(rc)
        ));
    }
    let mut count: std::ffi::c_int = 0;
    // SAFETY: the driver is initialised; cuDeviceGetCount writes one int.
    let rc = unsafe { (api.cuDeviceGetCount)(&mut count) };
    if rc != super::api::CUDA_SUCCESS {
        return Err(format!("cuDeviceGetCount failed: {}", super::describe(rc)));
    }
    if count <= 0 {
        return Err(
            "the CUDA driver sees no device (check nvidia-smi and CUDA_VISIBLE_DEVICES)".into(),
        );
    }
    let mut version: std::ffi::c_int = 0;
    // SAFETY: the driver is initialised; cuDriverGetVersion writes one int.
    let rc = unsafe { (api.cuDriverGetVersion)(&mut version) };
    if rc != super::api::CUDA_SUCCESS {
        return Err(format!(
            "cuDriverGetVersion failed: {}",
            super::describe(rc)
        ));
    }
    Ok(DriverInfo {
        devices: count as usize,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_symbols_are_not_required() {
        // A run must not need what only `gdswap check` asks for.
        for name in OPTIONAL_SYMBOLS {
            assert!(!REQUIRED_SYMBOLS.contains(name), "{name}");
        }
    }
}
