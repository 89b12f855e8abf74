"""CUDA tensors in SwapStore (objects with `__cuda_array_interface__`; torch CUDA tensors take
the same native path through `data_ptr()`), on the `bounce` and `gds` backends, against the
repository's fake libcuda and libcufile (compiled by conftest.py), in child processes so that
the fakes are the libraries gdswap loads. The device memory is allocated by the test through
the driver API (tests/fakegpu.py), not by gdswap: round trips byte-exact, and the refusals
(non-contiguous, another GPU, smaller than it says, a host pointer, a host store)."""

import pytest

from conftest import run_child

ROUND_TRIP = r"""
import sys, numpy as np, gdswap
from fakegpu import FakeCuda, CudaArray
backend, path = sys.argv[1], sys.argv[2]
cuda = FakeCuda()
rng = np.random.default_rng(7)
with gdswap.SwapStore(path, backend=backend, budget=64 << 20, gpu=0) as s:
    for name, n, typestr, np_dtype in [("w", 300_001, "<f4", np.float32),
                                       ("b", 4097, "|u1", np.uint8),
                                       ("h", 7, "<f2", np.float16),
                                       ("q", 1025, "<i8", np.int64)]:
        want = rng.integers(0, 256, n * np.dtype(np_dtype).itemsize, dtype=np.uint8)
        # 256 bytes into a larger allocation, as a caching allocator's tensors are.
        src = cuda.alloc(want.nbytes + 1024)
        cuda.write(src + 256, want.tobytes())
        s.swap_out(name, CudaArray(src + 256, (n,), typestr)).wait()
        e = s.info(name)
        assert (e.dtype, e.shape, e.nbytes) == (gdswap._arrays._NUMPY[typestr[1:]], [n], want.nbytes), e
        dst = cuda.alloc(want.nbytes + 1024)
        cuda.write(dst, b"\xee" * (want.nbytes + 1024))
        s.swap_in(name, CudaArray(dst + 512, (n,), typestr, stream=1)).wait()
        got = cuda.read(dst, want.nbytes + 1024)
        assert got[512:512 + want.nbytes] == want.tobytes(), (backend, name, "bytes differ")
        assert got[:512] == b"\xee" * 512 and got[512 + want.nbytes:] == b"\xee" * 512, "outside written"
        # Into host memory, and a host array into device memory, through the same store.
        host = np.zeros(n, np_dtype)
        s.swap_in(name, host).wait()
        assert host.tobytes() == want.tobytes()
        # stream None: nothing to wait for; a prefetched read.
        s.prefetch(name)
        dst2 = cuda.alloc(want.nbytes)
        t = s.swap_in(name, CudaArray(dst2, (n,), typestr, stream=None))
        t.wait()
        assert cuda.read(dst2, want.nbytes) == want.tobytes()
        for p in (src, dst, dst2):
            cuda.free(p)
    a = np.arange(1000, dtype=np.float64)
    s.swap_out("from_host", a).wait()
    d = cuda.alloc(a.nbytes)
    s.swap_in("from_host", CudaArray(d, (1000,), "<f8")).wait()
    assert cuda.read(d, a.nbytes) == a.tobytes()
    # An empty tensor (a null pointer, as frameworks give one).
    s.swap_out("empty", CudaArray(0, (0,), "<f4")).wait()
    s.swap_in("empty", CudaArray(0, (0,), "<f4")).wait()
print(backend, "cuda ok")
"""


@pytest.mark.parametrize("backend", ["bounce", "gds"])
def test_cuda_arrays_round_trip(tmp_path, fake_gpu_env, backend):
    out = run_child(ROUND_TRIP, fake_gpu_env, backend, tmp_path / "s")
    assert f"{backend} cuda ok" in out


REFUSALS = r"""
import sys, numpy as np, gdswap
from fakegpu import FakeCuda, CudaArray
cuda = FakeCuda()

def refused(exc, words, f):
    try:
        f()
    except exc as e:
        assert all(w in str(e) for w in words), f"{e!r} lacks {words}"
        print("refused:", type(e).__name__, e)
        return
    raise AssertionError(f"not refused: {words}")

with gdswap.SwapStore(sys.argv[1] + "/b", backend="bounce", budget=64 << 20, gpu=0) as s:
    p = cuda.alloc(4096)
    s.swap_out("x", CudaArray(p, (1024,), "<f4")).wait()
    # Not contiguous: every other element.
    refused(ValueError, ["not C-contiguous"],
            lambda: s.swap_out("y", CudaArray(p, (512,), "<f4", strides=(8,))))
    # Memory of GPU 1 given to a store staging on GPU 0.
    p1 = cuda.alloc(4096, device=1)
    refused(ValueError, ["memory of GPU 1, not of GPU 0"],
            lambda: s.swap_out("y", CudaArray(p1, (1024,), "<f4")))
    refused(ValueError, ["memory of GPU 1, not of GPU 0"],
            lambda: s.swap_in("x", CudaArray(p1, (1024,), "<f4")))
    # Smaller than it says: 4096 bytes described as 1 MiB.
    refused(ValueError, ["does not fit in its allocation"],
            lambda: s.swap_out("y", CudaArray(p, (1 << 18,), "<f4")))
    # A host pointer presented as device memory.
    h = np.zeros(1024, np.float32)
    refused(ValueError, ["not memory CUDA knows"],
            lambda: s.swap_out("y", CudaArray(h.ctypes.data, (1024,), "<f4")))
    # Freed device memory.
    gone = cuda.alloc(4096)
    cuda.free(gone)
    refused(ValueError, ["not memory CUDA knows"],
            lambda: s.swap_in("x", CudaArray(gone, (1024,), "<f4")))
    # The stored dtype and shape are checked, as for host arrays.
    refused(ValueError, ["stored as f32 [1024]", "f64 [512]"],
            lambda: s.swap_in("x", CudaArray(p, (512,), "<f8")))
    # A read-only destination; stream 0 (the protocol disallows it).
    refused(ValueError, ["read-only"], lambda: s.swap_in("x", CudaArray(p, (1024,), "<f4", readonly=True)))
    refused(ValueError, ["stream 0"], lambda: s.swap_out("y", CudaArray(p, (1024,), "<f4", stream=0)))
    refused(TypeError, ["dtype"], lambda: s.swap_out("y", CudaArray(p, (1024,), "<c8")))
    # Nothing refused was stored.
    assert [e.name for e in s.list()] == ["x"], s.list()
with gdswap.SwapStore(sys.argv[1] + "/h", backend="host") as s:
    refused(ValueError, ["needs a store with backend 'bounce' or 'gds'"],
            lambda: s.swap_out("y", CudaArray(p, (1024,), "<f4")))
print("refusals ok")
"""


def test_cuda_array_refusals(tmp_path, fake_gpu_env):
    out = run_child(REFUSALS, fake_gpu_env, tmp_path)
    assert "refusals ok" in out
