//! The fake libcuda (`tests/fakes/fake_cuda.c`): compiled by the tests themselves, once per
//! test process, into `CARGO_TARGET_TMPDIR/fake-cuda/libcuda.so.1`, and found by gdswap
//! through `LD_LIBRARY_PATH` the way a real driver install is (cudarc dlopens `libcuda.so.1`
//! among other names). Nothing test-only is built into the shipped binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variables the fake reads; cleared from every command before a test sets its own.
pub const FAKE_VARS: &[&str] = &[
    "FAKE_CUDA_NO_DEVICE",
    "FAKE_CUDA_DEVICES",
    "FAKE_CUDA_FAIL_CTX",
    "FAKE_CUDA_FAIL_ALLOC",
    "FAKE_CUDA_FAIL_COPY_AFTER_BYTES",
    "FAKE_CUDA_FLIP_DEVICE_BYTE",
    "FAKE_CUDA_COPY_GBPS",
    "FAKE_CUDA_COPY_NO_DATA",
];

/// The directory holding the fake `libcuda.so.1`, compiled on first use.
pub fn fake_libcuda_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_fake("fake-cuda", &[]))
}

/// The directory holding a fake `libcuda.so.1` without the optional device-information
/// functions (`cuDeviceTotalMem_v2`, `cuDeviceGetPCIBusId`), compiled on first use.
pub fn fake_libcuda_without_device_info_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_fake("fake-cuda-no-device-info", &["-DFAKE_CUDA_NO_DEVICE_INFO"]))
}

fn build_fake(subdir: &str, defines: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/fake_cuda.c");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(subdir);
    std::fs::create_dir_all(&dir).expect("create the fake-cuda directory");
    // Each test process compiles its own copy and renames it into place, so concurrent
    // test binaries never see a half-written library.
    let tmp = dir.join(format!("libcuda.so.1.{}", std::process::id()));
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O2", "-pthread", "-Wall", "-Wextra"])
        .args(["-fvisibility=hidden", "-Wl,-soname,libcuda.so.1"])
        .args(defines)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .output()
        .expect("run the C compiler (cc) to build the fake libcuda");
    assert!(
        out.status.success(),
        "building the fake libcuda failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, dir.join("libcuda.so.1")).expect("move the fake libcuda in place");
    dir
}

/// Points `cmd` at the fake libcuda, with no fault injected (tests add their own variables).
pub fn with_fake_cuda(cmd: &mut Command) -> &mut Command {
    without_cuda(cmd).env("LD_LIBRARY_PATH", fake_libcuda_dir())
}

/// Removes every way gdswap could find a libcuda other than the system's own.
pub fn without_cuda(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("GDSWAP_LIBCUDA")
        .env_remove("LD_LIBRARY_PATH");
    for v in FAKE_VARS {
        cmd.env_remove(v);
    }
    cmd
}

/// Whether this machine has a real libcuda on the loader's default path (then the
/// "unavailable" tests have nothing to show).
pub fn system_has_libcuda() -> bool {
    Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libcuda.so"))
        .unwrap_or(false)
}

/// The driver calls a caller of gdswap makes with its own CUDA code (a framework's kernels
/// and copies), straight from the fake libcuda loaded in this process: what the tests use to
/// play the user around gdswap's device tensors. Raw results (`0` is success).
pub struct RawCuda {
    lib: libloading::Library,
}

type Ptr = *mut std::ffi::c_void;

impl RawCuda {
    /// The fake libcuda loaded in this process (by `GDSWAP_LIBCUDA`, before the first call).
    pub fn new() -> RawCuda {
        let path = fake_libcuda_dir().join("libcuda.so.1");
        // SAFETY: the fake libcuda; loading it again returns the handle already loaded.
        let lib = unsafe { libloading::Library::new(path) }.expect("load the fake libcuda");
        RawCuda { lib }
    }

    fn f<T: Copy>(&self, name: &str) -> T {
        // SAFETY: each caller names a symbol of the fake with the C signature `T`.
        unsafe { *self.lib.get::<T>(name.as_bytes()).expect(name) }
    }

    /// cuInit, then the device count and cuDeviceGet's result for `ordinal`.
    pub fn device_get(&self, ordinal: i32) -> (i32, u32) {
        let init: unsafe extern "C" fn(u32) -> u32 = self.f("cuInit");
        let count: unsafe extern "C" fn(*mut i32) -> u32 = self.f("cuDeviceGetCount");
        let get: unsafe extern "C" fn(*mut i32, i32) -> u32 = self.f("cuDeviceGet");
        let (mut n, mut d) = (0i32, -1i32);
        // SAFETY: cuInit takes flags 0; the others write one int each.
        unsafe {
            assert_eq!(init(0), 0);
            assert_eq!(count(&mut n), 0);
            (n, get(&mut d, ordinal))
        }
    }

    /// Retains GPU `gpu`'s primary context (never released: the process ends). Context
    /// handles are passed as integers (they cross threads).
    pub fn primary_context(&self, gpu: i32) -> usize {
        let mut ctx: Ptr = std::ptr::null_mut();
        let f: unsafe extern "C" fn(*mut Ptr, i32) -> u32 = self.f("cuDevicePrimaryCtxRetain");
        // SAFETY: writes one handle.
        assert_eq!(unsafe { f(&mut ctx, gpu) }, 0);
        ctx as usize
    }

    pub fn set_current(&self, ctx: usize) -> u32 {
        let f: unsafe extern "C" fn(Ptr) -> u32 = self.f("cuCtxSetCurrent");
        // SAFETY: a context handle of the fake, or NULL.
        unsafe { f(ctx as Ptr) }
    }

    pub fn push(&self, ctx: usize) -> u32 {
        let f: unsafe extern "C" fn(Ptr) -> u32 = self.f("cuCtxPushCurrent_v2");
        // SAFETY: as above.
        unsafe { f(ctx as Ptr) }
    }

    pub fn pop(&self) -> (u32, usize) {
        let mut ctx: Ptr = std::ptr::null_mut();
        let f: unsafe extern "C" fn(*mut Ptr) -> u32 = self.f("cuCtxPopCurrent_v2");
        // SAFETY: writes one handle.
        let rc = unsafe { f(&mut ctx) };
        (rc, ctx as usize)
    }

    pub fn current(&self) -> usize {
        let mut ctx: Ptr = std::ptr::null_mut();
        let f: unsafe extern "C" fn(*mut Ptr) -> u32 = self.f("cuCtxGetCurrent");
        // SAFETY: writes one handle.
        assert_eq!(unsafe { f(&mut ctx) }, 0);
        ctx as usize
    }

    pub fn mem_alloc(&self, len: usize) -> (u32, u64) {
        let mut p = 0u64;
        let f: unsafe extern "C" fn(*mut u64, usize) -> u32 = self.f("cuMemAlloc_v2");
        // SAFETY: writes one address.
        let rc = unsafe { f(&mut p, len) };
        (rc, p)
    }

    pub fn mem_free(&self, p: u64) -> u32 {
        let f: unsafe extern "C" fn(u64) -> u32 = self.f("cuMemFree_v2");
        // SAFETY: an address of the fake's.
        unsafe { f(p) }
    }

    /// `cuMemsetD8Async` of `len` bytes at device address `p` on `stream` (NULL: legacy).
    pub fn memset(&self, p: u64, value: u8, len: usize, stream: Ptr) -> u32 {
        let f: unsafe extern "C" fn(u64, u8, usize, Ptr) -> u32 = self.f("cuMemsetD8Async");
        // SAFETY: the fake checks the range against its allocations.
        unsafe { f(p, value, len, stream) }
    }

    /// `cuMemcpyDtoHAsync` into pinned (registered) host memory `dst`.
    pub fn download(&self, dst: &mut [u8], p: u64, stream: Ptr) -> u32 {
        let f: unsafe extern "C" fn(Ptr, u64, usize, Ptr) -> u32 = self.f("cuMemcpyDtoHAsync_v2");
        // SAFETY: `dst` stays borrowed until the caller synchronises (every test does before
        // using it; the fake checks the host range is registered).
        unsafe { f(dst.as_mut_ptr().cast(), p, dst.len(), stream) }
    }

    pub fn stream_create(&self, flags: u32) -> (u32, Ptr) {
        let mut s: Ptr = std::ptr::null_mut();
        let f: unsafe extern "C" fn(*mut Ptr, u32) -> u32 = self.f("cuStreamCreate");
        // SAFETY: writes one handle.
        let rc = unsafe { f(&mut s, flags) };
        (rc, s)
    }

    pub fn stream_sync(&self, s: Ptr) -> u32 {
        let f: unsafe extern "C" fn(Ptr) -> u32 = self.f("cuStreamSynchronize");
        // SAFETY: a stream of the fake, or NULL (legacy).
        unsafe { f(s) }
    }

    pub fn event_create(&self, flags: u32) -> (u32, Ptr) {
        let mut e: Ptr = std::ptr::null_mut();
        let f: unsafe extern "C" fn(*mut Ptr, u32) -> u32 = self.f("cuEventCreate");
        // SAFETY: writes one handle.
        let rc = unsafe { f(&mut e, flags) };
        (rc, e)
    }

    pub fn host_register(&self, p: &mut [u8], flags: u32) -> u32 {
        let f: unsafe extern "C" fn(Ptr, usize, u32) -> u32 = self.f("cuMemHostRegister_v2");
        // SAFETY: the fake only records the range.
        unsafe { f(p.as_mut_ptr().cast(), p.len(), flags) }
    }

    pub fn host_unregister(&self, p: &mut [u8]) -> u32 {
        let f: unsafe extern "C" fn(Ptr) -> u32 = self.f("cuMemHostUnregister");
        // SAFETY: as above.
        unsafe { f(p.as_mut_ptr().cast()) }
    }

    /// The fake's count of device allocations not freed yet.
    pub fn live_allocations(&self) -> i32 {
        let f: unsafe extern "C" fn() -> i32 = self.f("fake_cuda_live_allocations");
        // SAFETY: reads a counter.
        unsafe { f() }
    }
}
