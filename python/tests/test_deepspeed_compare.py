"""The same calls through DeepSpeed's aio_handle and gdswap's, where DeepSpeed is installed and
its async_io op builds and loads (it JIT-compiles with ninja, g++ and libaio-dev on first use;
about 5 minutes, then cached in TORCH_EXTENSIONS_DIR): identical files, identical return values
and wait() counts, identical locked-tensor results. Skipped, with the reason, without
DeepSpeed. CI does not install DeepSpeed (see python/ci.sh: GDSWAP_CI_DEEPSPEED=1 does)."""

import os
import warnings

import numpy as np
import pytest

import gdswap

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def ds_ops():
    try:
        import deepspeed
        from deepspeed.ops.op_builder import AsyncIOBuilder
    except Exception as e:  # ImportError, or DeepSpeed failing to import on this machine
        pytest.skip(f"DeepSpeed is not installed here ({type(e).__name__}: {e})")
    if not AsyncIOBuilder().is_compatible(verbose=False):
        pytest.skip("DeepSpeed's AsyncIOBuilder is not compatible here (libaio-dev missing?)")
    try:
        ops = AsyncIOBuilder().load(verbose=False)
    except Exception as e:
        pytest.skip(f"DeepSpeed's async_io op did not build or load: {e}")
    if getattr(ops, "__name__", "").startswith("gdswap"):
        pytest.skip("AsyncIOBuilder is patched to gdswap's module (gdswap.deepspeed.install())")
    return deepspeed.__version__, ops


def data(n, seed):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8))


def script(h, d, locked):
    """One schedule of calls; every return value, wait() count and read-back in order."""
    out = []
    f = os.path.join(d, "f.bin")
    n = 1 << 20
    bufs = [locked(h, n, s) for s in range(3)]
    out.append(("getters", h.get_block_size(), h.get_queue_depth(), h.get_single_submit(),
                h.get_overlap_events(), h.get_intra_op_parallelism(), h.get_alignment()))
    out.append(("async_pwrite", h.async_pwrite(bufs[0], f, 0), h.async_pwrite(bufs[1], f, n)))
    out.append(("wait", h.wait()))
    out.append(("sync_pwrite", h.sync_pwrite(bufs[2], f, 2 * n)))
    out.append(("pwrite async", h.pwrite(bufs[0], f, False, True, 3 * n), h.wait()))
    back = [locked(h, n, 100 + s) for s in range(3)]
    out.append(("async_pread", [h.async_pread(back[i], f, i * n) for i in range(3)], h.wait()))
    out.append(("read back", [torch.equal(back[i], bufs[i]) for i in range(3)]))
    out.append(("sync_pread", h.sync_pread(back[0], f, 3 * n), torch.equal(back[0], bufs[0])))
    out.append(("pread sync", h.pread(back[1], f, False, False, n)))
    # (No wait() with nothing queued: DeepSpeed's asserts _num_pending_ops > 0, aborting the
    # process in its JIT build; gdswap's returns 0.)
    g = os.path.join(d, "g.bin")
    out.append(("write", h.write(bufs[1], g, False)))
    whole = locked(h, n, 7)
    out.append(("read", h.read(whole, g, False), torch.equal(whole, bufs[1])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # (No read past the end: DeepSpeed prints the reason, then asserts, which aborts the
        # process in its JIT build; gdswap's returns -1, as DeepSpeed's does where asserts are
        # compiled out.)
        out.append(("missing", h.sync_pread(back[2], os.path.join(d, "missing"))))
    return out, open(f, "rb").read(), open(g, "rb").read()


def locked_from(seed_base):
    def locked(h, n, seed):
        t = h.new_cpu_locked_tensor(n, torch.empty(0, dtype=torch.uint8))
        t.copy_(data(n, seed_base + seed))
        return t
    return locked


@pytest.mark.parametrize("block_size,queue_depth,parallel", [(1 << 20, 8, 1), (128 << 10, 32, 2),
                                                             (4096, 4, 4)])
def test_same_calls_same_results(tmp_path, ds_ops, capfd, block_size, queue_depth, parallel):
    version, ops = ds_ops
    results = {}
    for name, make in [("deepspeed", ops.aio_handle), ("gdswap", gdswap.aio_handle)]:
        d = tmp_path / name
        d.mkdir()
        h = make(block_size, queue_depth, False, False, parallel)
        results[name] = script(h, str(d), locked_from(0))
    capfd.readouterr()  # DeepSpeed prints timings and refusals on stdout
    (ds, ds_f, ds_g), (gs, gs_f, gs_g) = results["deepspeed"], results["gdswap"]
    assert gs == ds, f"deepspeed {version}: return values differ"
    assert gs_f == ds_f and gs_g == ds_g, f"deepspeed {version}: files differ"


def test_module_functions_and_locked_tensors(tmp_path, ds_ops):
    version, ops = ds_ops
    t = data((2 << 20) + 4096, 5)
    outs = {}
    for name, mod in [("deepspeed", ops), ("gdswap", gdswap.deepspeed)]:
        f = str(tmp_path / f"{name}.bin")
        h = mod.aio_handle()
        buf = h.new_cpu_locked_tensor(t.numel(), torch.empty(0, dtype=torch.uint8))
        buf.copy_(t)
        w = mod.aio_write(buf, f, 1 << 20, 8, False, False, False)
        back = h.new_cpu_locked_tensor(t.numel(), torch.empty(0, dtype=torch.uint8))
        r = mod.aio_read(back, f, 1 << 20, 8, False, False, False)
        f32 = h.new_cpu_locked_tensor(1000, torch.empty(0, dtype=torch.float32))
        outs[name] = (w, r, torch.equal(back, t), open(f, "rb").read() == t.numpy().tobytes(),
                      f32.dtype, tuple(f32.shape), h.is_pinned(buf),
                      h.free_cpu_locked_tensor(buf), h.free_cpu_locked_tensor(back))
    assert outs["gdswap"] == outs["deepspeed"], f"deepspeed {version}: {outs}"


import gdswap.deepspeed  # noqa: E402  (the module AsyncIOBuilder().load() returns after install)


def test_writes_past_the_end_leave_the_same_files(tmp_path, ds_ops, capfd):
    # gdswap's handle allocates the range past the old end before writing (fallocate): the
    # files must still be byte for byte and size for size DeepSpeed's. Aligned, as DeepSpeed's
    # O_DIRECT-only path needs.
    version, ops = ds_ops
    cases = [("new file at an offset", None, [(1 << 20, 2 << 20)]),
             ("existing file extended", 8192, [(4096, 1 << 20), (3 << 20, 4096)]),
             ("short file extended", 100, [(0, 1 << 20)])]
    files = {}
    for name, make in [("deepspeed", ops.aio_handle), ("gdswap", gdswap.aio_handle)]:
        d = tmp_path / name
        d.mkdir()
        h = make(128 << 10, 8, False, True, 1)
        for i, (case, start, writes) in enumerate(cases):
            f = str(d / f"{i}.bin")
            if start is not None:
                with open(f, "wb") as w:
                    w.write(data(start, 50 + i).numpy().tobytes())
            for j, (off, n) in enumerate(writes):
                buf = h.new_cpu_locked_tensor(n, torch.empty(0, dtype=torch.uint8))
                buf.copy_(data(n, 60 + 10 * i + j))
                assert h.async_pwrite(buf, f, off) == 0, (name, case)
                assert h.wait() == 1, (name, case)
            with open(f, "rb") as r:
                files[name, case] = r.read()
    capfd.readouterr()
    for case, _, writes in cases:
        ds, gs = files["deepspeed", case], files["gdswap", case]
        assert len(gs) == len(ds) == max(o + n for o, n in writes), (version, case)
        assert gs == ds, f"deepspeed {version}: {case}: files differ"
