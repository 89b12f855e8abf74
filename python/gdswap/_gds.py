"""gdswap.gds_handle: DeepSpeed's `gds_handle` (deepspeed 0.19, csrc/gds/py_lib) on gdswap's
cuFile layer (the `gds` backend's). Same constructor, methods, arguments and return values as
DeepSpeed's: CUDA tensors go through cuFile (pinned with cuFileBufRegister by
pin_device_tensor), CPU tensors through the aio engine, as DeepSpeed's handle sends them to
its aio base. At interpreter exit, queued ops are completed and cuFile is closed; gds ops after
that raise gdswap.Error (docs/python.md, "At interpreter exit"). See docs/python.md for what
differs."""

import os
import sys

from . import _gdswap
from ._aio import _refuse, aio_handle
from ._arrays import describe, is_torch


def _is_cuda(obj):
    if is_torch(obj):
        return bool(getattr(obj, "is_cuda", False))
    try:
        return obj.__cuda_array_interface__ is not None
    except AttributeError:
        return False


def _current_gpu():
    """torch's current CUDA device where torch is in use (not imported here: it is slow to
    import, and without it there are no torch CUDA tensors), else 0."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.current_device()
    return 0


class gds_handle(aio_handle):
    def __init__(
        self,
        block_size=1024 * 1024,
        queue_depth=128,
        single_submit=False,
        overlap_events=False,
        intra_op_parallelism=1,
    ):
        # cuFile first: where GDS is unavailable this raises gdswap.Error with the reason.
        self._gpu = _current_gpu()
        self._gds = _gdswap._GdsCore(int(block_size), self._gpu)
        # As DeepSpeed: the base handle (CPU tensors) runs with one part per op.
        super().__init__(block_size, queue_depth, single_submit, overlap_events, 1)
        self._gds_parallelism = int(intra_op_parallelism)
        self._pins = {}  # address -> the pinned tensor (held while pinned)

    def get_intra_op_parallelism(self):
        return self._gds_parallelism

    # -- device tensors --------------------------------------------------------------------
    def _device(self, tensor, what, writable):
        a = describe(tensor, what, writable=writable, need_dtype=False, allow_cuda=True)
        if not a.cuda:
            raise ValueError(f"{what}: a CPU tensor; gds_handle pins CUDA tensors")
        return a, (a.device if a.device is not None else self._gpu)

    def pin_device_tensor(self, tensor):
        """cuFileBufRegister of the tensor's memory; True. Ops on it (or on a tensor inside
        it) then use the registration."""
        a, gpu = self._device(tensor, "pin_device_tensor", writable=False)
        with self._lock:
            self._gds.pin(a.address, a.nbytes, gpu)
            self._pins[a.address] = tensor
        return True

    def unpin_device_tensor(self, tensor):
        """cuFileBufDeregister of a pinned tensor; True, as DeepSpeed's (whether or not it
        was pinned)."""
        a, _ = self._device(tensor, "unpin_device_tensor", writable=False)
        with self._lock:
            self._gds.unpin(a.address)
            self._pins.pop(a.address, None)
        return True

    def new_pinned_device_tensor(self, num_elem, example_tensor):
        """A 1-D CUDA tensor (the current device) of `num_elem` elements of the example's
        dtype, pinned."""
        import torch

        t = torch.empty(int(num_elem), dtype=example_tensor.dtype, device="cuda")
        self.pin_device_tensor(t)
        return t

    def free_pinned_device_tensor(self, tensor):
        """Unpins the tensor; True. Its memory goes with the last reference to it."""
        return self.unpin_device_tensor(tensor)

    # -- ops -------------------------------------------------------------------------------
    def _submit(self, op, buffer, filename, validate, file_offset):
        if not _is_cuda(buffer):
            return super()._submit(op, buffer, filename, validate, file_offset)
        if isinstance(filename, int):
            return _refuse("file descriptors are not supported; pass the file name")
        filename = os.fspath(filename)
        file_offset = int(file_offset)
        if file_offset < 0:
            return _refuse(f"file_offset {file_offset} is negative")
        target = buffer
        if is_torch(buffer) and not buffer.is_contiguous():
            # A contiguous CUDA copy (copied back by wait() after a read).
            target = buffer.contiguous()
        a, gpu = self._device(target, f"{op} {filename}", writable=(op == "read"))
        if validate and not is_torch(buffer):
            raise ValueError(f"{op} {filename}: validate=True needs a torch tensor "
                             "(to read the device bytes back)")
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
            self._gds.submit(op, filename, a.obj, a.address, a.nbytes, gpu, file_offset)
        except _gdswap._GdsShutDown:
            raise  # not a refused op: cuFile is closed for good (at interpreter exit)
        except _gdswap.Error as e:
            return _refuse(str(e))
        if target is not buffer and op == "read":
            self._copy_back.append((buffer, target))
        if validate:
            self._validate.append((op, filename, target.cpu(), file_offset, a.nbytes))
        return None

    def _submit_single(self, op, buffer, filename, validate, file_offset):
        if not _is_cuda(buffer):
            return super()._submit_single(op, buffer, filename, validate, file_offset)
        # read()/write() leave other queued ops alone: a private handle does them.
        h = gds_handle(self._block_size, self._queue_depth, self._single_submit,
                       self._overlap_events, 1)
        r = h._submit(op, buffer, filename, validate, file_offset)
        if r is not None:
            return r
        h._finish()
        return 0

    def read(self, buffer, filename, validate, file_offset=0):
        if not _is_cuda(buffer):
            return super().read(buffer, filename, validate, file_offset)
        try:
            size = os.stat(filename).st_size
        except OSError as e:
            return _refuse(f"fstat for read failed on {filename}: {e}")
        nbytes = describe(buffer, f"read {filename}", writable=True, need_dtype=False,
                          allow_cuda=True).nbytes
        if nbytes != size:
            return _refuse(f"{filename}: buffer nbytes {nbytes} != file bytes {size}")
        with self._lock:
            return self._submit_single("read", buffer, filename, validate, file_offset)

    def _wait_cores(self):
        n, errors = self._core.wait()
        m, more = self._gds.wait()
        return n + m, errors + more

    def _pending(self):
        return self._core.pending() + self._gds.pending()
