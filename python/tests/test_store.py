import numpy as np
import pytest

import gdswap

torch_or_skip = pytest.importorskip  # torch tests skip themselves where torch is missing


@pytest.fixture
def store(tmp_path):
    with gdswap.SwapStore(tmp_path / "swap", budget=256 << 20, io_threads=2) as s:
        yield s


@pytest.mark.parametrize(
    "dtype,shape",
    [
        (np.uint8, (4097,)),
        (np.float16, (3,)),
        (np.float32, (7, 143)),
        (np.float64, (1, 5, 9)),
        (np.int32, (1,)),
        (np.int64, (513, 2)),
    ],
)
def test_numpy_round_trip(store, dtype, shape):
    rng = np.random.default_rng(7)
    a = (rng.random(shape) * 1000).astype(dtype)
    t = store.swap_out("t", a)
    t.wait()
    assert t.done()
    b = np.zeros_like(a)
    store.swap_in("t", b).wait()
    assert np.array_equal(a, b)
    e = store.info("t")
    assert (e.dtype, e.shape, e.nbytes) == (
        {np.uint8: "u8", np.float16: "f16", np.float32: "f32", np.float64: "f64",
         np.int32: "i32", np.int64: "i64"}[dtype],
        list(shape),
        a.nbytes,
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "int64", "uint8"])
def test_torch_round_trip(store, dtype):
    torch = torch_or_skip("torch")
    dt = getattr(torch, dtype)
    a = (torch.rand(3, 333) * 100).to(dt)
    store.swap_out("w", a).wait()
    a_copy = a.clone()
    a.zero_()  # the stored version is the tensor as it was at swap_out
    b = torch.zeros(3, 333, dtype=dt)
    store.swap_in("w", b).wait()
    assert torch.equal(b, a_copy)
    assert store.info("w").dtype == {"float32": "f32", "bfloat16": "bf16", "float16": "f16",
                                     "int64": "i64", "uint8": "u8"}[dtype]


def test_torch_and_numpy_share_a_store(store):
    torch = torch_or_skip("torch")
    a = np.arange(10, dtype=np.float32)
    store.swap_out("x", a).wait()
    b = torch.zeros(10, dtype=torch.float32)
    store.swap_in("x", b).wait()
    assert b.tolist() == a.tolist()


def test_many_swaps_then_waits_list_prefetch_remove(store):
    arrays = {f"layer{i}": np.full(1000 + i, i, dtype=np.int32) for i in range(12)}
    tickets = [store.swap_out(n, a) for n, a in arrays.items()]
    for t in tickets:
        t.wait()
    assert sorted(e.name for e in store.list()) == sorted(arrays)
    store.prefetch("layer3")
    out = np.zeros(1003, dtype=np.int32)
    store.swap_in("layer3", out).wait()
    assert (out == 3).all()
    store.remove("layer3")
    assert "layer3" not in store and "layer4" in store
    with pytest.raises(KeyError, match="layer3"):
        store.info("layer3")


def test_dropped_swap_in_ticket_still_lands_the_bytes(store):
    a = np.arange(100_000, dtype=np.float64)
    store.swap_out("a", a).wait()
    b = np.zeros_like(a)
    store.swap_in("a", b)  # ticket dropped at once: it waits, then copies into b
    assert np.array_equal(a, b)


def test_reopen_keeps_tensors(tmp_path):
    a = np.arange(77, dtype=np.int64)
    with gdswap.SwapStore(tmp_path / "s") as s:
        s.swap_out("a", a).wait()
    with gdswap.SwapStore(tmp_path / "s") as s:
        b = np.zeros_like(a)
        s.swap_in("a", b).wait()
        assert np.array_equal(a, b)
        assert s.info("a").generation >= 1


def test_errors_are_exceptions_with_clear_messages(store):
    a = np.arange(20, dtype=np.float32)
    store.swap_out("a", a).wait()
    with pytest.raises(ValueError, match="not C-contiguous"):
        store.swap_out("b", np.arange(20, dtype=np.float32)[::2])
    with pytest.raises(ValueError, match="not C-contiguous"):
        store.swap_out("b", np.arange(20, dtype=np.float32)[::-1])
    with pytest.raises(ValueError, match="not C-contiguous"):
        store.swap_out("b", np.zeros((4, 5), dtype=np.float32, order="F"))
    # contiguous, with a stride numpy may report for an axis of length 1
    col = np.arange(8, dtype=np.float32).reshape(8, 1)[:, :1]
    store.swap_out("col", col).wait()
    with pytest.raises(ValueError, match=r"stored as f32 \[20\], the destination is f32 \[19\]"):
        store.swap_in("a", np.zeros(19, dtype=np.float32))
    with pytest.raises(ValueError, match=r"stored as f32 \[20\], the destination is f64 \[20\]"):
        store.swap_in("a", np.zeros(20, dtype=np.float64))
    with pytest.raises(ValueError, match=r"stored as f32 \[20\], the destination is f32 \[4, 5\]"):
        store.swap_in("a", np.zeros((4, 5), dtype=np.float32))
    ro = np.zeros(20, dtype=np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        store.swap_in("a", ro)
    with pytest.raises(TypeError, match="not one the swap store keeps"):
        store.swap_out("b", np.zeros(3, dtype=bool))
    with pytest.raises(TypeError, match="expected a numpy array or a torch tensor"):
        store.swap_out("b", [1.0, 2.0])
    with pytest.raises(KeyError, match="no such tensor"):
        store.swap_in("missing", np.zeros(20, dtype=np.float32))
    with pytest.raises(gdswap.Error, match="tensor name must be"):
        store.swap_out("", a)


def test_torch_errors(store):
    torch = torch_or_skip("torch")
    with pytest.raises(ValueError, match="not contiguous"):
        store.swap_out("t", torch.zeros(4, 6).t())
    with pytest.raises(TypeError, match="torch.bool"):
        store.swap_out("t", torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="meta tensor"):
        store.swap_out("t", torch.zeros(4, device="meta"))


def test_second_operation_on_a_busy_tensor_is_refused(tmp_path):
    with gdswap.SwapStore(tmp_path / "s", budget=512 << 20) as s:
        a = np.ones(64 << 20, dtype=np.uint8)
        t = s.swap_out("big", a)
        with pytest.raises(gdswap.Error, match="in flight"):
            s.swap_out("big", a)
        t.wait()


def test_closed_store(tmp_path):
    s = gdswap.SwapStore(tmp_path / "s")
    s.swap_out("a", np.zeros(3, dtype=np.float32)).wait()
    s.close()
    assert s.closed
    s.close()  # twice is fine
    with pytest.raises(ValueError, match="is closed"):
        s.swap_out("a", np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="is closed"):
        s.list()
    with gdswap.SwapStore(tmp_path / "s") as s2:
        pass
    assert s2.closed


def test_store_errors_from_rust(tmp_path):
    with pytest.raises(gdswap.Error, match="backend"):
        gdswap.SwapStore(tmp_path / "s", backend="nonsense")
    (tmp_path / "file").write_text("x")
    with pytest.raises(gdswap.Error, match="file"):
        gdswap.SwapStore(tmp_path / "file")
    with gdswap.SwapStore(tmp_path / "small", budget=1 << 20) as s:
        with pytest.raises(gdswap.Error, match="budget"):
            s.swap_out("big", np.zeros(4 << 20, dtype=np.uint8))


def test_swap_in_releases_the_gil(tmp_path, ticker):
    with gdswap.SwapStore(tmp_path / "s", budget=1 << 30) as s:
        a = np.full(64 << 20, 7, dtype=np.uint8)
        s.swap_out("big", a).wait()
        b = np.zeros_like(a)
        with ticker:
            t = s.swap_in("big", b)
            before = ticker.count
            t.wait()
            during = ticker.count - before
        assert b[0] == 7 and b[-1] == 7
        assert during > 0, "another thread could not run while wait() blocked: GIL held"


def test_import_needs_no_cuda():
    # The package imports on this machine, which has no CUDA; the GPU backends say why.
    assert gdswap.__version__
    assert gdswap.io_uring_unavailable() is None or "io_uring" in gdswap.io_uring_unavailable()


def test_a_forked_child_does_not_keep_the_store_locked(tmp_path):
    # A DataLoader worker forked while a store is open must not keep its lock: the parent
    # closes the store and opens it again while the child lives.
    import os
    import signal
    import time

    d = tmp_path / "forked"
    s = gdswap.SwapStore(d)
    s.swap_out("a", np.arange(10, dtype=np.float32)).wait()
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    try:
        s.close()
        with gdswap.SwapStore(d) as again:
            b = np.zeros(10, dtype=np.float32)
            again.swap_in("a", b).wait()
            assert b.tolist() == list(range(10))
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
