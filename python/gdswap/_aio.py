"""gdswap.aio_handle: DeepSpeed's `aio_handle` (deepspeed 0.19, csrc/aio/py_lib) on gdswap's
io_uring engine. Same constructor, methods, arguments and return values; see docs/python.md
for what differs."""

import ctypes
import functools
import os
import threading
import warnings

from . import _gdswap
from ._arrays import describe, is_torch

O_DIRECT_ALIGNMENT = 512  # DeepSpeed's get_alignment() unit


def _refuse(message):
    """DeepSpeed prints the reason and returns -1; gdswap warns with it and returns -1."""
    warnings.warn(f"gdswap aio_handle: {message}", RuntimeWarning, stacklevel=3)
    return -1


@functools.lru_cache(maxsize=None)
def _owner_type(nbytes):
    # A ctypes array type that can carry an attribute (the memory's owner), so that the torch
    # tensor made from it by frombuffer keeps that memory alive.
    return type(f"_LockedBytes{nbytes}", (ctypes.c_uint8 * nbytes,), {})


class aio_handle:
    def __init__(
        self,
        block_size=1024 * 1024,
        queue_depth=128,
        single_submit=False,
        overlap_events=False,
        intra_op_parallelism=1,
    ):
        self._core = _gdswap._AioCore(int(block_size), int(queue_depth), int(intra_op_parallelism))
        self._block_size = int(block_size)
        self._queue_depth = int(queue_depth)
        self._single_submit = bool(single_submit)
        self._overlap_events = bool(overlap_events)
        self._intra_op_parallelism = int(intra_op_parallelism)
        self._lock = threading.Lock()
        # Reads through a bounce tensor (a CUDA or non-contiguous destination): copied back
        # by wait(). Ops asking for validation: checked by wait().
        self._copy_back = []
        self._validate = []
        self._locked = {}  # data_ptr -> tensor, for free_cpu_locked_tensor / is_pinned

    # -- getters ---------------------------------------------------------------------------
    def get_block_size(self):
        return self._block_size

    def get_queue_depth(self):
        return self._queue_depth

    def get_single_submit(self):
        return self._single_submit

    def get_overlap_events(self):
        return self._overlap_events

    def get_intra_op_parallelism(self):
        return self._intra_op_parallelism

    def get_alignment(self):
        return self._intra_op_parallelism * O_DIRECT_ALIGNMENT

    # -- ops -------------------------------------------------------------------------------
    def _submit(self, op, buffer, filename, validate, file_offset):
        """Queues one op; None when queued, else DeepSpeed's -1 (with a warning)."""
        if isinstance(filename, int):
            return _refuse("file descriptors are not supported; pass the file name")
        filename = os.fspath(filename)
        file_offset = int(file_offset)
        if file_offset < 0:
            return _refuse(f"file_offset {file_offset} is negative")
        bounce = None
        if is_torch(buffer) and (buffer.device.type != "cpu" or not buffer.is_contiguous()):
            # As DeepSpeed does: a CPU bounce tensor, copied from before a write and into
            # the buffer after a read (in wait()).
            import torch

            bounce = torch.empty(buffer.shape, dtype=buffer.dtype)
            if op == "write":
                bounce.copy_(buffer)
        a = describe(
            buffer if bounce is None else bounce, f"{op} {filename}", writable=(op == "read"),
            need_dtype=False,
        )
        if a.nbytes % self._intra_op_parallelism:
            return _refuse(
                f"parallel {op} of {a.nbytes} bytes: not divisible by intra op parallelism "
                f"{self._intra_op_parallelism}"
            )
        if op == "read":
            try:
                size = os.stat(filename).st_size
            except OSError as e:
                return _refuse(f"fstat for read failed on {filename}: {e}")
            if file_offset + a.nbytes > size:
                return _refuse(
                    f"{filename}: file_offset + buffer nbytes > file bytes "
                    f"{file_offset + a.nbytes} > {size}"
                )
        try:
            self._core.submit(op, filename, a.obj, a.address, a.nbytes, file_offset)
        except _gdswap._OpFailed:
            # The file opened but the op cannot run (no space to extend it for a write): an
            # I/O error, raised as wait() raises one, not a refusal.
            raise
        except _gdswap.Error as e:
            return _refuse(str(e))
        if bounce is not None and op == "read":
            self._copy_back.append((buffer, bounce))
        if validate:
            self._validate.append((op, filename, a.obj, file_offset, a.nbytes))
        return None

    def _finish(self):
        """wait(): every queued op; the count of completed ops. Raises gdswap.Error if one
        failed (after all have ended)."""
        n, errors = self._wait_cores()
        copies, self._copy_back = self._copy_back, []
        checks, self._validate = self._validate, []
        for dst, src in copies:
            dst.copy_(src)
        for op, filename, obj, offset, nbytes in checks:
            _validate(op, filename, obj, offset, nbytes)
        if errors:
            raise _gdswap.Error(
                f"{len(errors)} of {n} aio ops failed; the first: {errors[0]}"
            )
        return n

    def _wait_cores(self):
        return self._core.wait()

    def wait(self):
        """Waits for every queued op; returns how many completed (0 with none queued)."""
        with self._lock:
            return self._finish()

    def _op(self, op, buffer, filename, validate, is_async, file_offset):
        with self._lock:
            r = self._submit(op, buffer, filename, validate, file_offset)
            if r is not None:
                return r
            if is_async:
                return 0
            return self._finish()

    def read(self, buffer, filename, validate, file_offset=0):
        """Synchronous read of the whole file into `buffer` (its size must be the file's);
        returns 0, as DeepSpeed's does."""
        try:
            size = os.stat(filename).st_size
        except OSError as e:
            return _refuse(f"fstat for read failed on {filename}: {e}")
        nbytes = describe(buffer, f"read {filename}", writable=True, need_dtype=False).nbytes \
            if not is_torch(buffer) else buffer.numel() * buffer.element_size()
        if nbytes != size:
            return _refuse(f"{filename}: buffer nbytes {nbytes} != file bytes {size}")
        with self._lock:
            r = self._submit_single("read", buffer, filename, validate, file_offset)
        return r

    def write(self, buffer, filename, validate, file_offset=0):
        """Synchronous write of `buffer` at `file_offset`; returns 0, as DeepSpeed's does."""
        with self._lock:
            return self._submit_single("write", buffer, filename, validate, file_offset)

    def _submit_single(self, op, buffer, filename, validate, file_offset):
        # read()/write() are not parallel in DeepSpeed and leave other queued ops alone: a
        # private handle with one thread does them.
        h = aio_handle(self._block_size, self._queue_depth, self._single_submit,
                       self._overlap_events, 1)
        r = h._submit(op, buffer, filename, validate, file_offset)
        if r is not None:
            return r
        h._finish()
        return 0

    def pread(self, buffer, filename, validate, is_async=False, file_offset=0, **kw):
        """Parallel read at `file_offset`; `async` (DeepSpeed's keyword, also accepted as
        is_async) returns 0 at once, else the count of completed ops (all queued ones)."""
        is_async = kw.pop("async", is_async)
        _no_more(kw)
        return self._op("read", buffer, filename, validate, is_async, file_offset)

    def pwrite(self, buffer, filename, validate, is_async=False, file_offset=0, **kw):
        is_async = kw.pop("async", is_async)
        _no_more(kw)
        return self._op("write", buffer, filename, validate, is_async, file_offset)

    def sync_pread(self, buffer, filename, file_offset=0):
        return self.pread(buffer, filename, False, False, file_offset)

    def sync_pwrite(self, buffer, filename, file_offset=0):
        return self.pwrite(buffer, filename, False, False, file_offset)

    def async_pread(self, buffer, filename, file_offset=0):
        return self.pread(buffer, filename, False, True, file_offset)

    def async_pwrite(self, buffer, filename, file_offset=0):
        return self.pwrite(buffer, filename, False, True, file_offset)

    # -- locked tensors --------------------------------------------------------------------
    def new_cpu_locked_tensor(self, num_elem, example_tensor):
        """A 1-D CPU tensor of `num_elem` elements of `example_tensor`'s dtype, in
        page-aligned memory locked with mlock (huge pages where the kernel has them)."""
        import torch

        dtype = example_tensor.dtype
        itemsize = torch.empty((), dtype=dtype).element_size()
        nbytes = int(num_elem) * itemsize
        if nbytes == 0:
            return torch.empty(0, dtype=dtype)
        mem = _gdswap._Locked(nbytes)
        owner = _owner_type(nbytes).from_address(mem.address)
        owner.locked = mem
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = torch.frombuffer(owner, dtype=dtype, count=int(num_elem))
        with self._lock:
            self._locked[t.data_ptr()] = mem
        return t

    def free_cpu_locked_tensor(self, tensor):
        """Forgets a tensor of new_cpu_locked_tensor: True if it was one. Its memory is
        unlocked and freed when the last tensor using it is gone (never under a live tensor)."""
        with self._lock:
            return self._locked.pop(tensor.data_ptr(), None) is not None

    def is_pinned(self, buffer):
        with self._lock:
            mine = buffer.data_ptr() in self._locked
        return mine or bool(buffer.is_pinned())

    def _pending(self):
        return self._core.pending()

    def __del__(self):
        core = getattr(self, "_core", None)
        if core is not None and self._pending():
            try:
                self._finish()
            except Exception:
                pass


def _no_more(kw):
    if kw:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(kw))}")


def _validate(op, filename, obj, offset, nbytes):
    """DeepSpeed's validate: compare the buffer with the file read back with read()."""
    with open(filename, "rb") as f:
        f.seek(offset)
        disk = f.read(nbytes)
    mem = ctypes.string_at(describe(obj, "validate", writable=False, need_dtype=False).address, nbytes) \
        if nbytes else b""
    if disk != mem:
        raise _gdswap.Error(
            f"validate: {op} of {nbytes} bytes at offset {offset} of {filename}: the file "
            "differs from the buffer"
        )


def aio_read(buffer, filename, block_size, queue_depth, single_submit, overlap_events, validate):
    """DeepSpeed's module function: reads the whole file `filename` into `buffer` (its size
    must be the file's) with a handle of these settings and one thread; 0, or -1 (with a
    warning) where DeepSpeed's returns -1 (a file that cannot be stat'ed or opened) and where
    its assert would fail (a buffer of another size)."""
    h = aio_handle(block_size, queue_depth, single_submit, overlap_events, 1)
    return h.read(buffer, filename, validate)


def aio_write(buffer, filename, block_size, queue_depth, single_submit, overlap_events, validate):
    """DeepSpeed's module function: writes `buffer` at the start of `filename` (created if
    missing, not truncated) with a handle of these settings and one thread; 0, or -1 (with a
    warning) when the file cannot be opened."""
    h = aio_handle(block_size, queue_depth, single_submit, overlap_events, 1)
    return h.write(buffer, filename, validate)
