"""Writes past the end of a file: gdswap.aio_handle extends the file to the write's end first
(ftruncate, python/src/aio.rs), so queued O_DIRECT writes of a new file do not each extend it
one request at a time. The file must come out byte for byte and size for size
as plain writes leave it (and as DeepSpeed's handle does: test_deepspeed_compare.py), and a
write that cannot get its space raises, naming the file."""

import os
import resource

import numpy as np
import pytest

import gdswap

torch = pytest.importorskip("torch")


def rand_bytes(n, seed):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8))


def plain(path, writes, start=None):
    """The file `writes` [(offset, tensor)] leave when done with os.pwrite, from `start`
    (bytes) or from no file."""
    if start is not None:
        with open(path, "wb") as f:
            f.write(start)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for off, t in writes:
            assert os.pwrite(fd, t.numpy().tobytes(), off) == t.numel()
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        return f.read()


def handle_writes(h, path, writes, start=None, one_wait=False):
    if start is not None:
        with open(path, "wb") as f:
            f.write(start)
    for off, t in writes:
        if one_wait:
            assert h.async_pwrite(t, path, off) == 0
        else:
            assert h.sync_pwrite(t, path, off) == 1
    if one_wait:
        assert h.wait() == len(writes)
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("parallel", [1, 2])
@pytest.mark.parametrize("offset,nbytes", [
    (1 << 20, 3 << 20),            # aligned: every request O_DIRECT
    (4096 + 100, (1 << 20) + 18),  # unaligned offset and tail: the page cache for those
    (0, 4096),
])
def test_pwrite_at_an_offset_into_a_new_file(tmp_path, parallel, offset, nbytes):
    t = rand_bytes(nbytes, offset)
    want = plain(str(tmp_path / "plain"), [(offset, t)])
    h = gdswap.aio_handle(block_size=128 << 10, queue_depth=8, intra_op_parallelism=parallel)
    got = handle_writes(h, str(tmp_path / "gdswap"), [(offset, t)])
    assert len(got) == offset + nbytes == len(want)
    assert got == want


def test_the_gap_before_the_offset_stays_a_hole(tmp_path):
    # Only the written range is allocated, not the bytes between the old end and the offset.
    f = str(tmp_path / "f")
    h = gdswap.aio_handle(block_size=1 << 20, queue_depth=8)
    assert h.sync_pwrite(rand_bytes(1 << 20, 1), f, 256 << 20) == 1
    st = os.stat(f)
    assert st.st_size == (256 << 20) + (1 << 20)
    assert st.st_blocks * 512 < 64 << 20, f"{st.st_blocks * 512} bytes allocated"


@pytest.mark.parametrize("one_wait", [False, True])
def test_writes_extending_an_existing_file(tmp_path, one_wait):
    start = rand_bytes(10_000, 9).numpy().tobytes()
    writes = [(8192, rand_bytes(1 << 20, 2)),         # over the old end
              (3 << 20, rand_bytes(4096, 3)),         # past it, leaving a gap
              (100, rand_bytes(50, 4)),               # inside: no change of size
              ((2 << 20) + 512, rand_bytes(8192, 5))]  # ends inside the new size
    want = plain(str(tmp_path / "plain"), writes, start)
    h = gdswap.aio_handle(block_size=64 << 10, queue_depth=16, intra_op_parallelism=2)
    got = handle_writes(h, str(tmp_path / "gdswap"), writes, start, one_wait)
    assert len(got) == len(want) == (3 << 20) + 4096
    assert got == want


def test_a_short_existing_file_extended(tmp_path):
    start = b"x" * 100
    t = rand_bytes(4 << 20, 6)
    want = plain(str(tmp_path / "plain"), [(0, t)], start)
    h = gdswap.aio_handle(block_size=1 << 20, queue_depth=4)
    got = handle_writes(h, str(tmp_path / "gdswap"), [(0, t)], start)
    assert len(got) == 4 << 20 and got == want
    # A shorter write afterwards leaves the size alone (no truncation).
    assert h.sync_pwrite(rand_bytes(4096, 7), str(tmp_path / "gdswap"), 0) == 1
    assert os.path.getsize(tmp_path / "gdswap") == 4 << 20


def test_no_room_to_extend_raises_naming_the_file(tmp_path):
    # RLIMIT_FSIZE makes ftruncate past it fail (EFBIG; Python ignores SIGXFSZ): an I/O error
    # raised by the write itself, not DeepSpeed's -1 for a file that cannot be opened.
    f = str(tmp_path / "capped")
    h = gdswap.aio_handle(block_size=1 << 20, queue_depth=4)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try:
        with pytest.raises(gdswap.Error, match=r"resize failed: .*capped: File too large"):
            h.async_pwrite(rand_bytes(4 << 20, 8), f)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert h.wait() == 0  # nothing was queued
    assert os.path.getsize(f) == 0
