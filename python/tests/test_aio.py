"""gdswap.aio_handle against DeepSpeed 0.19's aio_handle semantics (csrc/aio/py_lib:
deepspeed_py_io_handle.cpp, py_ds_aio.cpp): return values, wait() counts, argument checks."""

import os
import sys
import types

import numpy as np
import pytest

import gdswap

torch = pytest.importorskip("torch")


def rand_bytes(n, seed=1):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8))


def test_constructor_defaults_and_getters():
    h = gdswap.aio_handle()
    assert h.get_block_size() == 1024 * 1024
    assert h.get_queue_depth() == 128
    assert h.get_single_submit() is False
    assert h.get_overlap_events() is False
    assert h.get_intra_op_parallelism() == 1
    assert h.get_alignment() == 512
    h = gdswap.aio_handle(block_size=65536, queue_depth=8, single_submit=True,
                          overlap_events=True, intra_op_parallelism=4)
    assert (h.get_block_size(), h.get_queue_depth(), h.get_single_submit(),
            h.get_overlap_events(), h.get_intra_op_parallelism(), h.get_alignment()) == (
        65536, 8, True, True, 4, 2048)
    # positional, as DeepSpeed's swappers call it
    assert gdswap.aio_handle(4096, 4, False, False, 2).get_intra_op_parallelism() == 2


@pytest.mark.parametrize("nbytes", [1, 4097, 3 * 1024 * 1024 + 5, 8 << 20])
def test_sync_round_trip_odd_sizes(tmp_path, nbytes):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle(block_size=1 << 20, queue_depth=8)
    src = rand_bytes(nbytes)
    assert h.sync_pwrite(src, f) == 1  # count of completed ops
    assert os.path.getsize(f) == nbytes
    dst = torch.zeros(nbytes, dtype=torch.uint8)
    assert h.sync_pread(dst, f) == 1
    assert torch.equal(src, dst)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int64])
def test_dtypes_and_locked_tensors(tmp_path, dtype):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle(block_size=65536, queue_depth=4, intra_op_parallelism=2)
    t = h.new_cpu_locked_tensor(100_002, torch.empty(0, dtype=dtype))
    assert t.dtype == dtype and t.numel() == 100_002 and t.data_ptr() % 4096 == 0
    assert h.is_pinned(t)
    t.copy_((torch.rand(100_002) * 100).to(dtype))
    assert h.sync_pwrite(t, f) == 1
    back = h.new_cpu_locked_tensor(100_002, t)
    assert h.sync_pread(back, f) == 1
    assert torch.equal(t, back)
    assert h.free_cpu_locked_tensor(back) is True
    assert h.free_cpu_locked_tensor(back) is False  # no longer one of the handle's
    assert h.free_cpu_locked_tensor(torch.zeros(3)) is False
    assert not h.is_pinned(torch.zeros(3))
    assert back.sum() == t.sum()  # memory stays valid while a tensor uses it


def test_file_offsets(tmp_path):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle(block_size=4096, queue_depth=4)
    a, b, c = rand_bytes(8192, 1), rand_bytes(5000, 2), rand_bytes(77, 3)
    assert h.sync_pwrite(a, f, 0) == 1
    assert h.sync_pwrite(b, f, file_offset=8192) == 1
    assert h.sync_pwrite(c, f, file_offset=100) == 1  # unaligned: over part of a
    expect = a.clone()
    expect[100:177] = c
    whole = torch.zeros(8192 + 5000, dtype=torch.uint8)
    assert h.sync_pread(whole, f) == 1
    assert torch.equal(whole[:8192], expect) and torch.equal(whole[8192:], b)
    part = torch.zeros(5000, dtype=torch.uint8)
    assert h.sync_pread(part, f, file_offset=8192) == 1
    assert torch.equal(part, b)
    odd = torch.zeros(77, dtype=torch.uint8)
    assert h.pread(odd, f, False, False, 100) == 1
    assert torch.equal(odd, c)


def test_many_async_ops_then_one_wait(tmp_path):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle(block_size=65536, queue_depth=16, intra_op_parallelism=2)
    chunks = [rand_bytes(100_000, i) for i in range(16)]
    for i, c in enumerate(chunks):
        assert h.async_pwrite(c, f, i * 100_000) == 0
    assert h.wait() == 16
    assert h.wait() == 0  # nothing pending
    outs = [torch.zeros(100_000, dtype=torch.uint8) for _ in chunks]
    for i, o in enumerate(outs):
        assert h.async_pread(o, f, i * 100_000) == 0
    # a synchronous op waits for everything queued and counts it
    extra = torch.zeros(10, dtype=torch.uint8)
    assert h.sync_pread(extra, f, 0) == 17
    for c, o in zip(chunks, outs):
        assert torch.equal(c, o)
    assert torch.equal(extra, chunks[0][:10])


def test_pread_pwrite_async_keyword(tmp_path):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle()
    t = rand_bytes(1000)
    assert h.pwrite(t, f, False, **{"async": True}) == 0
    assert h.wait() == 1
    o = torch.zeros(1000, dtype=torch.uint8)
    assert h.pread(o, f, False, **{"async": False}) == 1
    assert torch.equal(o, t)


def test_read_and_write_return_zero(tmp_path):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle()
    t = rand_bytes(12345)
    assert h.write(t, f, False) == 0
    o = torch.zeros(12345, dtype=torch.uint8)
    assert h.read(o, f, False) == 0
    assert torch.equal(o, t)
    assert h.write(t, f, True) == 0  # validate: the file is compared with the buffer
    with pytest.warns(RuntimeWarning, match="!= file bytes"):
        assert h.read(torch.zeros(10, dtype=torch.uint8), f, False) == -1


@pytest.mark.parametrize("nbytes", [1, 4096, 1 << 20, (3 << 20) + 17])
def test_module_aio_read_and_aio_write(tmp_path, nbytes):
    # DeepSpeed's module functions (py_ds_aio.cpp, deepspeed_py_aio.cpp): (buffer, filename,
    # block_size, queue_depth, single_submit, overlap_events, validate) -> 0; the whole buffer
    # written at offset 0, the whole file read.
    from gdswap import deepspeed as ds

    f = str(tmp_path / "f")
    t = rand_bytes(nbytes, seed=nbytes)
    assert ds.aio_write(t, f, 1 << 20, 8, False, True, True) == 0
    assert os.path.getsize(f) == nbytes
    o = torch.zeros(nbytes, dtype=torch.uint8)
    assert ds.aio_read(o, f, 128 << 10, 32, True, False, True) == 0
    assert torch.equal(o, t)
    # Not truncated: a shorter write leaves the rest of the file.
    assert gdswap.aio_write(np.ones(1, np.uint8), f, 4096, 1, False, False, False) == 0
    assert os.path.getsize(f) == nbytes
    with pytest.warns(RuntimeWarning, match="!= file bytes"):
        assert ds.aio_read(torch.zeros(nbytes + 1, dtype=torch.uint8), f, 1 << 20, 8, False,
                           False, False) == -1
    with pytest.warns(RuntimeWarning, match="fstat for read failed"):
        assert ds.aio_read(o, str(tmp_path / "missing"), 1 << 20, 8, False, False, False) == -1
    with pytest.warns(RuntimeWarning, match="does-not-exist"):
        assert ds.aio_write(t, str(tmp_path / "does-not-exist" / "f"), 1 << 20, 8, False,
                            False, False) == -1


def test_refusals_return_minus_one_with_a_warning(tmp_path):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle(intra_op_parallelism=4)
    assert h.sync_pwrite(rand_bytes(4096), f) == 1
    with pytest.warns(RuntimeWarning, match="file_offset \\+ buffer nbytes > file bytes"):
        assert h.sync_pread(torch.zeros(4096, dtype=torch.uint8), f, 1) == -1
    with pytest.warns(RuntimeWarning, match="not divisible by intra op parallelism 4"):
        assert h.sync_pwrite(rand_bytes(4097), f) == -1
    with pytest.warns(RuntimeWarning, match="fstat for read failed"):
        assert h.sync_pread(torch.zeros(8, dtype=torch.uint8), str(tmp_path / "missing")) == -1
    with pytest.warns(RuntimeWarning, match="does-not-exist"):
        assert h.sync_pwrite(rand_bytes(8), str(tmp_path / "does-not-exist" / "f")) == -1
    with pytest.warns(RuntimeWarning, match="file descriptors"):
        assert h.async_pwrite(rand_bytes(8), 3) == -1
    assert h.wait() == 0


def test_bounce_for_non_contiguous_tensors(tmp_path):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle()
    m = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # not contiguous
    assert h.sync_pwrite(m, f) == 1
    back = torch.zeros(3, 4).t()
    assert h.sync_pread(back, f) == 1
    assert torch.equal(back, m)


def test_numpy_buffers_work_too(tmp_path):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle()
    a = np.arange(1000, dtype=np.float64)
    assert h.sync_pwrite(a, f) == 1
    b = np.zeros_like(a)
    assert h.sync_pread(b, f) == 1
    assert np.array_equal(a, b)


def test_io_errors_raise_from_wait(tmp_path):
    # The worker is busy with a 64 MiB read while the second op's file is truncated behind
    # the size check: the engine finds the end of the file, and wait() raises, naming it,
    # after counting every op out (nothing is left pending).
    big, small = str(tmp_path / "big"), str(tmp_path / "small")
    h = gdswap.aio_handle()
    assert h.sync_pwrite(torch.zeros(64 << 20, dtype=torch.uint8), big) == 1
    assert h.sync_pwrite(rand_bytes(1 << 20), small) == 1
    assert h.async_pread(torch.zeros(64 << 20, dtype=torch.uint8), big) == 0
    assert h.async_pread(torch.zeros(1 << 20, dtype=torch.uint8), small) == 0
    os.truncate(small, 0)
    with pytest.raises(gdswap.Error, match=r"1 of 2 aio ops failed; the first: .*small"):
        h.wait()
    assert h.wait() == 0


def test_wait_releases_the_gil(tmp_path, ticker):
    f = str(tmp_path / "f")
    h = gdswap.aio_handle(block_size=1 << 20, queue_depth=8)
    big = torch.full((64 << 20,), 7, dtype=torch.uint8)
    assert h.sync_pwrite(big, f) == 1
    out = torch.zeros_like(big)
    with ticker:
        assert h.async_pread(out, f) == 0
        before = ticker.count
        assert h.wait() == 1
        during = ticker.count - before
    assert out[0] == 7 and out[-1] == 7
    assert during > 0, "another thread could not run while wait() blocked: GIL held"


def test_deepspeed_switch(monkeypatch):
    # DeepSpeed's module layout (deepspeed.ops.op_builder.AsyncIOBuilder), without DeepSpeed:
    # install() must make load() return gdswap's module, whose aio_handle is gdswap's.
    class AsyncIOBuilder:
        def load(self, verbose=True):
            raise AssertionError("would JIT-build DeepSpeed's libaio extension")

        def is_compatible(self, verbose=False):
            return False

    class GDSBuilder(AsyncIOBuilder):
        pass

    ops = types.ModuleType("deepspeed.ops")
    op_builder = types.ModuleType("deepspeed.ops.op_builder")
    op_builder.AsyncIOBuilder = AsyncIOBuilder
    op_builder.GDSBuilder = GDSBuilder
    ops.op_builder = op_builder
    ds = types.ModuleType("deepspeed")
    ds.ops = ops
    monkeypatch.setitem(sys.modules, "deepspeed", ds)
    monkeypatch.setitem(sys.modules, "deepspeed.ops", ops)
    monkeypatch.setitem(sys.modules, "deepspeed.ops.op_builder", op_builder)

    import gdswap.deepspeed

    gdswap.deepspeed.install()
    assert AsyncIOBuilder().is_compatible()
    mod = AsyncIOBuilder().load(verbose=False)
    h = mod.aio_handle(1 << 20, 32, False, False, 1)
    assert isinstance(h, gdswap.aio_handle)
    assert GDSBuilder().is_compatible()
    assert GDSBuilder().load().gds_handle is gdswap.gds_handle
