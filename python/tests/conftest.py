import sys
import threading

import pytest


class Ticker:
    """A second Python thread counting while the main thread is in a call: with a long switch
    interval the main thread never hands over the GIL on its own, so the count moves during the
    call only if the call released the GIL."""

    def __init__(self):
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.count += 1

    def __enter__(self):
        self._old = sys.getswitchinterval()
        self._thread.start()
        while self.count == 0:  # running
            pass
        sys.setswitchinterval(0.5)
        return self

    def __exit__(self, *exc):
        sys.setswitchinterval(self._old)
        self._stop.set()
        self._thread.join()


@pytest.fixture
def ticker():
    return Ticker()


# ---- the repository's fake GPU libraries, compiled for the tests that need them ----
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKE_CUDA = REPO / "tests" / "fakes" / "fake_cuda.c"
FAKE_CUFILE = REPO / "tests" / "cufile_fake" / "fake_cufile.c"
# The cuFile wheel whose cufile.h the fake libcufile is compiled against, as the Rust tests
# do (tests/cufile_wheel/mod.rs); their download is reused when `cargo test` ran first.
CUFILE_WHEEL = "nvidia-cufile-cu12==1.14.1.1"
STUB_CUDA_H = """#pragma once
typedef enum cudaError_enum { CUDA_SUCCESS = 0 } CUresult;
typedef struct CUstream_st *CUstream;
"""


def _cc():
    cc = os.environ.get("CC", "cc")
    if not FAKE_CUDA.exists() or shutil.which(cc) is None:
        pytest.skip("needs the repository checkout and a C compiler")
    return cc


@pytest.fixture(scope="session")
def fake_libcuda(tmp_path_factory):
    cc = _cc()
    out = tmp_path_factory.mktemp("fakecuda") / "libcuda.so.1"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-pthread", "-fvisibility=hidden",
         "-Wl,-soname,libcuda.so.1", "-o", str(out), str(FAKE_CUDA)],
        check=True,
    )
    return out


def _cufile_include(tmp):
    cached = REPO / "target" / "tmp" / "cufile-wheel" / "nvidia_cufile_cu12__1.14.1.1"
    for h in sorted(cached.glob("**/include/cufile.h")):
        return h.parent
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "--quiet", "--dest", str(tmp), CUFILE_WHEEL],
        capture_output=True, text=True,
    )
    if r.returncode != 0:
        pytest.fail(f"the fake libcufile needs NVIDIA's cufile.h: pip download {CUFILE_WHEEL} "
                    f"failed (run `cargo test --test gds_fake` once, or allow PyPI):\n{r.stderr}")
    whl = next(tmp.glob("*.whl"))
    zipfile.ZipFile(whl).extractall(tmp / "unpacked")
    return next((tmp / "unpacked").glob("**/include/cufile.h")).parent


@pytest.fixture(scope="session")
def fake_libcufile(tmp_path_factory):
    """The fake libcufile with its stream and batch APIs (-DFAKE_CUFILE_FULL)."""
    cc = _cc()
    d = tmp_path_factory.mktemp("fakecufile")
    include = _cufile_include(d)
    (d / "stub").mkdir()
    (d / "stub" / "cuda.h").write_text(STUB_CUDA_H)
    out = d / "libcufile-fake-full.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-pthread", "-DFAKE_CUFILE_FULL",
         "-I", str(d / "stub"), "-I", str(include), "-o", str(out), str(FAKE_CUFILE), "-ldl"],
        check=True,
    )
    return out


@pytest.fixture
def fake_gpu_env(fake_libcuda, fake_libcufile):
    """The environment of a child process whose gdswap loads the fakes (two GPUs)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FAKE_CUDA", "FAKE_CUFILE", "CUFILE_"))}
    env["GDSWAP_LIBCUDA"] = str(fake_libcuda)
    env["GDSWAP_CUFILE_PATH"] = str(fake_libcufile)
    env["FAKE_CUFILE_QUIET"] = "1"
    env["FAKE_CUDA_DEVICES"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def run_child(code, env, *args, timeout=180):
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"child failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout
