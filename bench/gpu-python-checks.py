"""gpu-python-checks.py: the Python module's device paths on a real GPU (run by gpu-checks.sh).

CI runs the same paths only against the repository's fake libcuda and libcufile
(python/tests/test_cuda_tensors.py, test_gds_handle.py). Here, on a machine with a GPU:
  1. SwapStore round trips of device memory on `bounce` and `gds` (objects with
     `__cuda_array_interface__`, offsets inside larger allocations, odd lengths), byte-exact;
  2. gds_handle (DeepSpeed's GDS op): a pinned region and unpinned memory written together,
     the file's bytes checked, read back into device memory;
  3. where torch with CUDA is installed, the same with torch CUDA tensors.
Device memory is allocated and filled through the driver API with ctypes (no numpy needed).
Each check prints PASS or FAIL with its reason; the exit status is the number of failures.

usage: PYTHONPATH=<unpacked gdswap wheel> python3 bench/gpu-python-checks.py DIR [GPU]
"""

import ctypes
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python", "tests"))
from fakegpu import CudaArray  # noqa: E402  (a bare __cuda_array_interface__ object)

import gdswap  # noqa: E402

DIR = sys.argv[1]
GPU = int(sys.argv[2]) if len(sys.argv) > 2 else 0
FAILED = []


class Cuda:
    """Device memory through the driver API: the primary context pushed around each call."""

    def __init__(self, device):
        self.lib = L = ctypes.CDLL(os.environ.get("GDSWAP_LIBCUDA", "libcuda.so.1"))
        u64, vp = ctypes.c_ulonglong, ctypes.c_void_p
        L.cuMemAlloc_v2.argtypes = [ctypes.POINTER(u64), ctypes.c_size_t]
        L.cuMemFree_v2.argtypes = [u64]
        L.cuDevicePrimaryCtxRetain.argtypes = [ctypes.POINTER(vp), ctypes.c_int]
        L.cuCtxPushCurrent_v2.argtypes = [vp]
        L.cuCtxPopCurrent_v2.argtypes = [ctypes.POINTER(vp)]
        L.cuMemcpyHtoD_v2.argtypes = [u64, ctypes.c_char_p, ctypes.c_size_t]
        L.cuMemcpyDtoH_v2.argtypes = [ctypes.c_char_p, u64, ctypes.c_size_t]
        self._check(L.cuInit(0), "cuInit")
        self.ctx = vp()
        self._check(L.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), device), "retain")

    @staticmethod
    def _check(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what} failed: CUDA error {rc}")

    def _call(self, what, f, *args):
        self._check(self.lib.cuCtxPushCurrent_v2(self.ctx), "push")
        try:
            self._check(f(*args), what)
        finally:
            c = ctypes.c_void_p()
            self._check(self.lib.cuCtxPopCurrent_v2(ctypes.byref(c)), "pop")

    def alloc(self, n):
        p = ctypes.c_ulonglong()
        self._call("cuMemAlloc", self.lib.cuMemAlloc_v2, ctypes.byref(p), n)
        return p.value

    def free(self, p):
        self._call("cuMemFree", self.lib.cuMemFree_v2, p)

    def write(self, p, data):
        self._call("cuMemcpyHtoD", self.lib.cuMemcpyHtoD_v2, p, bytes(data), len(data))

    def read(self, p, n):
        buf = ctypes.create_string_buffer(n)
        self._call("cuMemcpyDtoH", self.lib.cuMemcpyDtoH_v2, buf, p, n)
        return buf.raw


def check(name, f):
    try:
        f()
        print(f"PASS {name}", flush=True)
    except Exception as e:  # noqa: BLE001  (every failure is reported, the others still run)
        FAILED.append(name)
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(file=sys.stdout)


def store_round_trip(cuda, backend):
    with gdswap.SwapStore(os.path.join(DIR, f"store-{backend}"), backend=backend,
                          budget=256 << 20, gpu=GPU) as s:
        for name, n, typestr, item in [("w", 3_000_001, "<f4", 4), ("b", 4097, "|u1", 1),
                                       ("q", 1025, "<i8", 8)]:
            want = os.urandom(n * item)
            src = cuda.alloc(len(want) + 1024)
            cuda.write(src + 256, want)  # 256 bytes in, as a caching allocator's tensors are
            s.swap_out(name, CudaArray(src + 256, (n,), typestr)).wait()
            dst = cuda.alloc(len(want) + 1024)
            cuda.write(dst, b"\xee" * (len(want) + 1024))
            s.swap_in(name, CudaArray(dst + 512, (n,), typestr, stream=1)).wait()
            got = cuda.read(dst, len(want) + 1024)
            assert got[512:512 + len(want)] == want, f"{name}: bytes differ"
            assert got[:512] == b"\xee" * 512 and got[512 + len(want):] == b"\xee" * 512, \
                f"{name}: written outside the tensor"
            cuda.free(src)
            cuda.free(dst)
        print(f"  {backend}: {s.info('w')}")


def gds_handle(cuda):
    h = gdswap.gds_handle(block_size=1 << 20, queue_depth=8, single_submit=False,
                          overlap_events=True, intra_op_parallelism=2)
    n, odd = (64 << 20) + 4096, 12345
    want, want2 = os.urandom(n), os.urandom(odd)
    raw = cuda.alloc(2 * n + 3 * 65536)
    base = (raw + 65535) // 65536 * 65536
    u8 = lambda p, k: CudaArray(p, (k,), "|u1")  # noqa: E731
    assert h.pin_device_tensor(u8(base, 2 * n + 65536)) is True, "pin_device_tensor"
    cuda.write(base + 4096, want)
    other = cuda.alloc(odd)
    cuda.write(other, want2)
    f = os.path.join(DIR, "gds-handle.bin")
    assert h.async_pwrite(u8(base + 4096, n), f, 0) == 0
    assert h.async_pwrite(u8(other, odd), f, n) == 0
    assert h.wait() == 2
    with open(f, "rb") as fh:
        assert fh.read() == want + want2, "file bytes"
    assert h.async_pread(u8(base + 4096 + n, n), f, 0) == 0
    dst2 = cuda.alloc(odd)
    assert h.sync_pread(u8(dst2, odd), f, n) == 2
    assert cuda.read(base + 4096 + n, n) == want, "pinned read back"
    assert cuda.read(dst2, odd) == want2, "unpinned read back"
    assert h.unpin_device_tensor(u8(base, 2 * n + 65536)) is True, "unpin_device_tensor"
    for p in (raw, other, dst2):
        cuda.free(p)


def torch_checks():
    try:
        import torch
    except ImportError as e:
        print(f"SKIP torch: {e}")
        return
    if not torch.cuda.is_available():
        print("SKIP torch: torch.cuda.is_available() is False")
        return
    dev = torch.device("cuda", GPU)
    print(f"  torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(dev)}")

    def store(backend):
        with gdswap.SwapStore(os.path.join(DIR, f"torch-{backend}"), backend=backend,
                              budget=1 << 30, gpu=GPU) as s:
            for name, t in [("fp32", torch.randn(25_000_001, device=dev)),
                            ("bf16", torch.randn(3_000_003, device=dev).to(torch.bfloat16)),
                            ("m", torch.randn(1000, 1000, device=dev)[:, 1:1000].contiguous())]:
                s.swap_out(name, t).wait()
                back = torch.empty_like(t)
                s.swap_in(name, back).wait()
                torch.cuda.synchronize(dev)
                assert torch.equal(back, t), f"{backend} {name}: differs"

    def handle():
        h = gdswap.gds_handle(1 << 20, 32, False, True, 1)
        t = torch.randn(16 << 20, device=dev)
        back = torch.zeros_like(t)
        assert h.pin_device_tensor(t) is True
        f = os.path.join(DIR, "torch-gds.bin")
        assert h.async_pwrite(t, f, 0) == 0 and h.wait() == 1
        assert h.sync_pread(back, f, 0) == 1
        assert torch.equal(back, t), "gds_handle torch read back differs"
        h.unpin_device_tensor(t)

    for b in ("bounce", "gds"):
        check(f"torch-store-{b}", lambda b=b: store(b))
    check("torch-gds-handle", handle)


print(f"python {sys.version.split()[0]}, gdswap from {os.path.dirname(gdswap.__file__)}")
cuda = Cuda(GPU)
for b in ("bounce", "gds"):
    check(f"store-cuda-array-{b}", lambda b=b: store_round_trip(cuda, b))
check("gds-handle", lambda: gds_handle(cuda))
torch_checks()
print(f"gpu-python-checks: {len(FAILED)} failed {FAILED}")
sys.exit(len(FAILED))
