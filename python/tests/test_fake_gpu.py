"""The device backends from Python, against the repository's fake libcuda
(tests/fakes/fake_cuda.c, compiled here with cc as the Rust tests do): host arrays swapped
through device staging on the `bounce` backend. Runs in a child process so that the fake is
the libcuda gdswap loads (it loads one per process)."""

import os
import subprocess
import sys

CHILD = r"""
import sys, numpy as np, gdswap
with gdswap.SwapStore(sys.argv[1], backend="bounce", budget=64 << 20, gpu=0) as s:
    a = np.arange(300_001, dtype=np.float32)
    s.swap_out("a", a).wait()
    b = np.zeros_like(a)
    s.swap_in("a", b).wait()
    assert np.array_equal(a, b), "bytes differ"
    print("bounce ok", s.info("a"))
"""


def test_bounce_store_with_fake_libcuda(tmp_path, fake_libcuda):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_CUDA")}
    env["GDSWAP_LIBCUDA"] = str(fake_libcuda)
    r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "s")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bounce ok" in r.stdout


def test_device_backend_without_libcuda_says_why(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_CUDA")}
    env["GDSWAP_LIBCUDA"] = str(tmp_path / "no-such-libcuda.so.1")
    code = ("import sys, gdswap\n"
            "try:\n    gdswap.SwapStore(sys.argv[1], backend='bounce')\n"
            "except gdswap.Error as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "backend 'bounce' unavailable" in r.stdout and "no-such-libcuda" in r.stdout
