"""gdswap.gds_handle (DeepSpeed 0.19's gds_handle: csrc/gds/py_lib/py_ds_gds.cpp,
deepspeed_py_gds_handle.cpp, deepspeed_gds_op.cpp) against the repository's fake libcuda and
libcufile, in child processes: getters, pin/unpin (cuFileBufRegister), async ops on pinned and
unpinned device memory mixed with a CPU op and one wait() counting all three, file bytes
checked, reads back byte-exact, DeepSpeed's -1 refusals, and the reason when GDS is
unavailable. Device memory comes from the driver API (tests/fakegpu.py), shown through
`__cuda_array_interface__` objects."""

import os

from conftest import run_child

CHILD = r"""
import os, sys, warnings, numpy as np, gdswap
from fakegpu import FakeCuda, CudaArray
d = sys.argv[1]
cuda = FakeCuda()
rng = np.random.default_rng(3)
u8 = lambda p, n: CudaArray(p, (n,), "|u1")

h = gdswap.gds_handle(block_size=1 << 20, queue_depth=8, single_submit=False,
                      overlap_events=True, intra_op_parallelism=2)
assert (h.get_block_size(), h.get_queue_depth(), h.get_single_submit(), h.get_overlap_events(),
        h.get_intra_op_parallelism(), h.get_alignment()) == (1 << 20, 8, False, True, 2, 512)
n, odd = (3 << 20) + 4096, 12345
want = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
want2 = rng.integers(0, 256, odd, dtype=np.uint8).tobytes()
want3 = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()

# A pinned region holding two tensors (4 KiB aligned, as torch's allocations are 512-aligned
# and DeepSpeed's pinned swap buffers are big); unpinned memory at the fake's 256-byte alignment.
raw = cuda.alloc(2 * n + 3 * 4096)
base = (raw + 4095) // 4096 * 4096
region = u8(base, 2 * n + 4096)
assert h.pin_device_tensor(region) is True
cuda.write(base + 4096, want)
other = cuda.alloc(odd)
cuda.write(other, want2)
f = os.path.join(d, "t.bin")
assert h.async_pwrite(u8(base + 4096, n), f, 0) == 0            # inside the pinned region
assert h.async_pwrite(u8(other, odd), f, n) == 0                 # unpinned, odd length
assert h.async_pwrite(np.frombuffer(want3, np.uint8).copy(), f, n + odd) == 0   # a CPU op
assert h.wait() == 3
assert h.wait() == 0
assert open(f, "rb").read() == want + want2 + want3, "file bytes"

# Reads: synchronous ones count every op queued before them.
assert h.async_pread(u8(base + 4096 + n, n), f, 0) == 0
dst2 = cuda.alloc(odd)
assert h.sync_pread(u8(dst2, odd), f, n) == 2
assert cuda.read(base + 4096 + n, n) == want and cuda.read(dst2, odd) == want2
assert h.pread(u8(dst2, odd), f, False, False, n) == 1
assert h.pread(u8(dst2, odd), f, False, True, n) == 0 and h.wait() == 1
assert h.pwrite(u8(other, odd), f, False, **{"async": True}) == 0 and h.wait() == 1
assert open(f, "rb").read(odd) == want2

# read()/write(): synchronous, 0; read() needs the file's size.
g = os.path.join(d, "whole.bin")
assert h.write(u8(other, odd), g, False) == 0
whole = cuda.alloc(odd)
assert h.read(u8(whole, odd), g, False) == 0 and cuda.read(whole, odd) == want2
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    assert h.read(u8(whole, odd - 1), g, False) == -1
    assert h.async_pread(u8(dst2, odd), f, len(want + want2 + want3)) == -1   # past the end
    assert h.async_pread(u8(dst2, odd), os.path.join(d, "missing"), 0) == -1
    assert len(w) == 3 and all(issubclass(x.category, RuntimeWarning) for x in w), w
assert h.wait() == 0

# Refusals by the driver check: another GPU's memory, a host pointer.
p1 = cuda.alloc(4096, device=1)
for bad, words in [(u8(p1, 4096), "memory of GPU 1, not of GPU 0"),
                   (u8(np.zeros(4096, np.uint8).ctypes.data, 4096), "not memory CUDA knows")]:
    for call in (lambda: h.pin_device_tensor(bad), lambda: h.async_pwrite(bad, f, 0)):
        try:
            call()
            raise AssertionError("accepted")
        except ValueError as e:
            assert words in str(e), e
try:
    h.pin_device_tensor(np.zeros(8, np.uint8))
    raise AssertionError("accepted")
except ValueError as e:
    assert "CPU tensor" in str(e), e
assert h.unpin_device_tensor(region) is True
assert h.free_pinned_device_tensor(region) is True     # not pinned any more: still True
print("gds_handle ok")
"""


def test_gds_handle_through_the_fakes(tmp_path, fake_gpu_env):
    out = run_child(CHILD, fake_gpu_env, tmp_path)
    assert "gds_handle ok" in out


UNAVAILABLE = r"""
import gdswap
try:
    gdswap.gds_handle()
    raise AssertionError("constructed")
except gdswap.Error as e:
    print("raised:", e)
"""


def test_gds_handle_says_why_it_is_unavailable(tmp_path, fake_gpu_env):
    env = dict(fake_gpu_env, GDSWAP_CUFILE_PATH=str(tmp_path / "no-libcufile.so.0"))
    out = run_child(UNAVAILABLE, env)
    assert "backend 'gds' unavailable" in out and "no-libcufile.so.0" in out, out
    env = {k: v for k, v in fake_gpu_env.items() if k != "GDSWAP_LIBCUDA"}
    env["GDSWAP_LIBCUDA"] = str(tmp_path / "no-libcuda.so.1")
    out = run_child(UNAVAILABLE, env)
    assert "backend 'gds' unavailable" in out and "no-libcuda.so.1" in out, out
