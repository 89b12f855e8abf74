"""gds at interpreter exit (python/src/exit.rs): a Python program that leaves gds_handle and a
gds SwapStore open when it ends.

With NVIDIA's real libcufile 1.15.1 (the PyPI wheel, in compat mode, with the repository's
fake libcuda and fake host files, as tests/cufile_real_io.rs runs it) and cuFile's thread pool
on (execution.max_io_threads in cufile.json), a process that leaves the driver open to
libcufile's own exit handlers dies with SIGSEGV after its work (its worker threads race those
handlers; the CLI closes the driver before exit for that reason). gdswap shuts gds down in an
atexit handler: these children must exit with 0, and the swap-out they left unwaited must be
in the store. With the fake libcufile: what an atexit handler running after gdswap's sees
(every gds op refused with the clear error, the driver closed, the stores committed).
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import gdswap
from conftest import REPO, run_child

# The wheel cufile_real_io.rs runs (tests/cufile_wheel/mod.rs, CU13_115), and where `cargo
# test` caches it (CARGO_TARGET_TMPDIR/cufile-wheel/<requirement, non-alphanumerics as _>).
REAL_WHEEL = "nvidia-cufile==1.15.1.6"
CACHED = REPO / "target" / "tmp" / "cufile-wheel" / "nvidia_cufile__1.15.1.6"
FAKE_HOST = REPO / "tests" / "fakes" / "fake_host.c"
# What udev's blkid records for the filesystems GDS supports (tests/common/fake_host.rs).
GDS_FILESYSTEMS = {"ext4", "xfs", "btrfs"}

THREAD_POOL_JSON = """{ "execution": { "max_io_threads": 4, "max_io_queue_depth": 128,
  "parallel_io": true, "min_io_threshold_size_kb": 8192, "max_request_parallelism": 4 } }"""


def _real_libcufile(tmp):
    for lib in sorted(CACHED.glob("nvidia/*/lib/libcufile.so.0")):
        return lib
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "--quiet", "--dest", str(tmp), REAL_WHEEL],
        capture_output=True, text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"the cuFile wheel {REAL_WHEEL} cannot be had (pip download failed; "
                    f"`cargo test --test cufile_real_io` caches it in {CACHED}):\n{r.stderr}")
    zipfile.ZipFile(next(tmp.glob("*.whl"))).extractall(tmp / "unpacked")
    return next((tmp / "unpacked").glob("nvidia/*/lib/libcufile.so.0"))


def _fs_type(path):
    """The filesystem type of `path` from /proc/self/mountinfo, matched by device number."""
    dev = os.stat(path).st_dev
    want = f"{os.major(dev)}:{os.minor(dev)}"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[2] == want:
            return fields[fields.index("-") + 1]
    return None


def _host_files(data):
    """The fake host files for libcufile (tests/common/fake_host.rs: host_files), or why
    libcufile cannot register files under `data`."""
    st = os.stat(data)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    if major == 0 or not Path(f"/sys/dev/block/{major}:{minor}").exists():
        return None, (f"{data} is on device {major}:{minor}, not a block device in sysfs: "
                      "libcufile cannot register files there")
    fs = _fs_type(data)
    if fs not in GDS_FILESYSTEMS:
        return None, f"{data} is on a {fs} filesystem, not ext4, xfs or btrfs"
    modules = data / "proc-modules"
    modules.write_text("")
    db = data / "run-udev" / "data"
    db.mkdir(parents=True)
    (db / f"b{major}:{minor}").write_text(f"E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE={fs}\n")
    return {"FAKE_HOST_PROC_MODULES": str(modules),
            "FAKE_HOST_RUN_UDEV": str(data / "run-udev")}, None


@pytest.fixture(scope="session")
def fake_host_lib(tmp_path_factory):
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip("needs a C compiler for the fake host library")
    out = tmp_path_factory.mktemp("fakehost") / "libfakehost.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                    str(out), str(FAKE_HOST), "-ldl"], check=True)
    return out


@pytest.fixture
def real_cufile_env(tmp_path, fake_libcuda, fake_host_lib):
    """A scratch directory on a block device (under target/, as the Rust tests use) and the
    environment of a child whose gdswap runs the real libcufile 1.15.1 with its thread pool
    on, over the fake libcuda; skips, saying why, where that cannot run."""
    lib = _real_libcufile(tmp_path)
    try:
        ctypes.CDLL("libudev.so.1")
    except OSError:
        pytest.skip("libudev.so.1 cannot be loaded here, and libcufile's cuFileDriverOpen needs it")
    base = REPO / "target" / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="py-gds-exit-", dir=base))
    try:
        files, why = _host_files(data)
        if why:
            pytest.skip(why)
        (data / "cufile.json").write_text(THREAD_POOL_JSON)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("FAKE_CUDA", "FAKE_CUFILE", "FAKE_HOST", "CUFILE_"))}
        env.update(files)
        env.update({
            "GDSWAP_LIBCUDA": str(fake_libcuda),
            # libcufile loads libcuda.so.1 by name: the fake (the same file, loaded once).
            "LD_LIBRARY_PATH": str(fake_libcuda.parent),
            "LD_PRELOAD": str(fake_host_lib),
            "GDSWAP_CUFILE_PATH": str(lib),
            "CUFILE_ENV_PATH_JSON": str(data / "cufile.json"),
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
        })
        yield data, env
    finally:
        shutil.rmtree(data, ignore_errors=True)


# Writes and reads through gds_handle (pinned and unpinned device memory), and a swap-out and
# swap-in of a device tensor through a gds store; then ends with everything open: one read
# queued on the handle and one swap-out not waited for.
LEAVE_OPEN = r"""
import os, sys, numpy as np, gdswap
from fakegpu import FakeCuda, CudaArray
d, rnd = sys.argv[1], int(sys.argv[2])
cuda = FakeCuda()
u8 = lambda p, n: CudaArray(p, (n,), "|u1")
n = 4 << 20
rng = np.random.default_rng(rnd)
want = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
later = rng.integers(0, 256, n, dtype=np.uint8).tobytes()

h = gdswap.gds_handle(block_size=1 << 20)
raw = cuda.alloc(2 * n + 4096)
base = (raw + 4095) // 4096 * 4096
assert h.pin_device_tensor(u8(base, 2 * n)) is True
cuda.write(base, want)
f = os.path.join(d, f"handle-{rnd}.bin")
assert h.async_pwrite(u8(base, n), f, 0) == 0
assert h.wait() == 1
assert open(f, "rb").read() == want, "file bytes"
assert h.async_pread(u8(base + n, n), f, 0) == 0
other = cuda.alloc(n)
assert h.sync_pread(u8(other, n), f, 0) == 2
assert cuda.read(base + n, n) == want and cuda.read(other, n) == want
assert h.async_pread(u8(other, n), f, 0) == 0    # left queued

s = gdswap.SwapStore(os.path.join(d, "store"), backend="gds", budget=64 << 20)
s.swap_out(f"t{rnd}", u8(base, n)).wait()
back = cuda.alloc(n)
s.swap_in(f"t{rnd}", u8(back, n)).wait()
assert cuda.read(back, n) == want
cuda.write(other, later)
left = s.swap_out(f"later{rnd}", u8(other, n))   # not waited for: committed at exit
# The real library did the work: mapped in this process, its driver open.
lib = os.environ["GDSWAP_CUFILE_PATH"]
assert lib in open("/proc/self/maps").read(), "libcufile is not loaded"
import ctypes
assert ctypes.CDLL(lib).cuFileUseCount() > 0
print("work done", flush=True)
"""


def test_gds_left_open_at_exit_with_the_thread_pool_on_exits_cleanly(real_cufile_env):
    data, env = real_cufile_env
    rounds = 4
    for rnd in range(rounds):
        env["CUFILE_LOGFILE_PATH"] = str(data / f"cufile-{rnd}.log")
        r = subprocess.run([sys.executable, "-c", LEAVE_OPEN, str(data), str(rnd)], env=env,
                           capture_output=True, text=True, timeout=300)
        log = Path(env["CUFILE_LOGFILE_PATH"])
        log = log.read_text(errors="replace") if log.exists() else "(no cufile.log)"
        assert "work done" in r.stdout, f"round {rnd}:\n{r.stdout}\n{r.stderr}\ncufile.log:\n{log}"
        # A signal is a negative return code (SIGSEGV: -11).
        assert r.returncode == 0, (f"round {rnd}: the process did not exit cleanly "
                                   f"({r.returncode}):\n{r.stderr}\ncufile.log:\n{log}")
        assert "gdswap: at interpreter exit" not in r.stderr, r.stderr
    # The swap-outs left unwaited were committed before the store closed at exit.
    rng = [np.random.default_rng(rnd) for rnd in range(rounds)]
    with gdswap.SwapStore(data / "store", backend="posix") as s:
        for rnd, g in enumerate(rng):
            g.integers(0, 256, 4 << 20, dtype=np.uint8)
            later = g.integers(0, 256, 4 << 20, dtype=np.uint8)
            got = np.empty(4 << 20, np.uint8)
            s.swap_in(f"later{rnd}", got).wait()
            assert np.array_equal(got, later), f"round {rnd}"


# An atexit handler registered before gdswap's (which is registered by the first gds object)
# runs after it: everything it tries on gds is refused with the clear error, the CPU path and
# the tickets still work, the driver is closed, and the store's swap-out left unwaited is in
# the store.
AFTER_SHUTDOWN = r"""
import atexit, ctypes, os, sys, time, numpy as np, gdswap
from fakegpu import FakeCuda, CudaArray
d = sys.argv[1]
cuda = FakeCuda()
fake = ctypes.CDLL(os.environ["GDSWAP_CUFILE_PATH"])
u8 = lambda p, n: CudaArray(p, (n,), "|u1")
n = 1 << 20
want = np.random.default_rng(5).integers(0, 256, n, dtype=np.uint8)

def after():
    print("driver opens", fake.cuFileUseCount(), "file handles", fake.fake_cufile_handles(),
          "I/O threads", io_threads(0))
    print("queued read completed:", h.wait())
    tries = [
        ("async_pwrite", lambda: h.async_pwrite(u8(p, n), f, 0)),
        ("sync_pread", lambda: h.sync_pread(u8(p, n), f, 0)),
        ("pin", lambda: h.pin_device_tensor(u8(p, n))),
        ("unpin", lambda: h.unpin_device_tensor(u8(p, n))),
        ("new handle", lambda: gdswap.gds_handle()),
        ("swap_out", lambda: s.swap_out("x", u8(p, n))),
        ("swap_in", lambda: s.swap_in("a", u8(p, n))),
        ("list", lambda: s.list()),
        ("new gds store", lambda: gdswap.SwapStore(os.path.join(d, "other"), backend="gds")),
    ]
    for what, call in tries:
        try:
            call()
            print(what, "accepted")
        except gdswap.Error as e:
            print(what, "raised", type(e).__name__ + ":", e)
    print("cpu op", h.async_pwrite(want.copy(), os.path.join(d, "cpu.bin"), 0), h.wait())
    print("ticket", left.wait(), "closed", s.closed)
    s.close()
    with gdswap.SwapStore(os.path.join(d, "store"), backend="posix") as back:
        got = np.empty(n, np.uint8)
        back.swap_in("later", got).wait()
        print("later committed", np.array_equal(got, want))

# gds_handle I/O threads in /proc/self/task; with `want`, polled for up to 5 s until there
# are that many (a joined thread's entry goes a moment after the join returns).
def io_threads(want=None):
    for _ in range(500):
        n = 0
        for t in os.listdir("/proc/self/task"):
            try:
                n += open(f"/proc/self/task/{t}/comm").read().strip() == "gdswap-gds"
            except OSError:
                pass  # ended meanwhile
        if want is None or n == want:
            return n
        time.sleep(0.01)
    return n

atexit.register(after)
# The exit registry holds its objects weakly: a handle dropped before exit is gone (its I/O
# thread with it), not kept for the shutdown.
dropped = gdswap.gds_handle()
assert io_threads(1) == 1
del dropped
assert io_threads(0) == 0, "a dropped gds_handle's I/O thread still runs"
h = gdswap.gds_handle(block_size=1 << 18)
p = cuda.alloc(n)
f = os.path.join(d, "h.bin")
cuda.write(p, want.tobytes())
assert h.pin_device_tensor(u8(p, n)) is True
assert h.async_pwrite(u8(p, n), f, 0) == 0 and h.wait() == 1
assert h.write(u8(p, n), os.path.join(d, "w.bin"), False) == 0   # a private handle, gone now
assert h.async_pread(u8(p, n), f, 0) == 0                       # left queued
s = gdswap.SwapStore(os.path.join(d, "store"), backend="gds", budget=16 << 20)
s.swap_out("a", u8(p, n)).wait()
left = s.swap_out("later", u8(p, n))
print("exiting", flush=True)
"""


def test_gds_ops_after_the_exit_shutdown_raise_the_clear_error(tmp_path, fake_gpu_env):
    r = subprocess.run([sys.executable, "-c", AFTER_SHUTDOWN, str(tmp_path)], env=fake_gpu_env,
                       capture_output=True, text=True, timeout=180)
    out = r.stdout
    assert r.returncode == 0, f"{r.returncode}:\n{out}\n{r.stderr}"
    assert "gdswap: at interpreter exit" not in r.stderr, r.stderr
    lines = out.splitlines()
    assert lines[0] == "exiting", out
    assert "driver opens 0 file handles 0 I/O threads 0" in lines, out
    assert "queued read completed: 1" in lines, out
    refused = "raised GdsShutDown: gdswap: gds was shut down at interpreter exit"
    for what in ("async_pwrite", "sync_pread", "pin", "unpin", "new handle", "swap_out",
                 "swap_in", "list", "new gds store"):
        assert f"{what} {refused}" in lines, f"{what}:\n{out}"
    assert "cpu op 0 1" in lines, out
    assert "ticket None closed True" in lines, out
    assert "later committed True" in lines, out
