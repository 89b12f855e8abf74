"""What gdswap needs of an array: its address, byte length, dtype and shape, after checking
that it is a contiguous numpy array or torch tensor of a dtype the swap store keeps, or a
contiguous CUDA array (a torch CUDA tensor, or any object with `__cuda_array_interface__`:
CuPy, Numba), whose device, and the stream its producer's work runs on, come along."""

import math

# numpy typestr (kind + item size) -> the store's dtype name
_NUMPY = {"u1": "u8", "f2": "f16", "f4": "f32", "f8": "f64", "i4": "i32", "i8": "i64"}
_TORCH = {
    "torch.uint8": "u8",
    "torch.float16": "f16",
    "torch.bfloat16": "bf16",
    "torch.float32": "f32",
    "torch.float64": "f64",
    "torch.int32": "i32",
    "torch.int64": "i64",
}
KNOWN = "uint8, float16, bfloat16 (torch), float32, float64, int32, int64"


class Array:
    """cuda: whether the memory is device memory; then device is the CUDA device index when
    the object says it (torch), and stream what the swap waits for: MISSING (no `stream` key:
    the legacy default stream), None (nothing) or a CUstream handle (1: legacy default)."""

    __slots__ = ("obj", "address", "nbytes", "dtype", "shape", "cuda", "device", "stream")

    def __init__(self, obj, address, nbytes, dtype, shape, cuda=False, device=None, stream=None):
        self.obj = obj
        self.address = address
        self.nbytes = nbytes
        self.dtype = dtype
        self.shape = shape
        self.cuda = cuda
        self.device = device
        self.stream = stream


MISSING = object()


def is_torch(obj):
    return type(obj).__module__.startswith("torch") and hasattr(obj, "data_ptr")


def _c_contiguous(shape, strides, itemsize):
    if strides is None:
        return True
    expect, step = [], itemsize
    for d in reversed(shape):
        expect.append(step)
        step *= d
    # Axes of length 1 may have any stride; an empty array has no bytes to misplace.
    bad = any(d != 1 and st != ex for d, st, ex in zip(shape, strides, expect[::-1]))
    return not bad or math.prod(shape) == 0


def _torch_cuda(obj, what, need_dtype):
    import torch

    if not obj.is_contiguous():
        raise ValueError(f"{what}: the CUDA tensor is not contiguous (call .contiguous() first)")
    dtype = _TORCH.get(str(obj.dtype))
    if dtype is None and need_dtype:
        raise TypeError(f"{what}: dtype {obj.dtype} is not one the swap store keeps ({KNOWN})")
    index = obj.device.index if obj.device.index is not None else torch.cuda.current_device()
    # The stream torch queues the tensor's work on now; its default stream is the legacy one.
    stream = torch.cuda.current_stream(obj.device).cuda_stream or 1
    nbytes = obj.numel() * obj.element_size()
    shape = [int(d) for d in obj.shape]
    return Array(obj, obj.data_ptr(), nbytes, dtype, shape, True, index, stream)


def _cuda_interface(obj, cai, what, writable, need_dtype):
    if cai.get("mask") is not None:
        raise ValueError(f"{what}: masked CUDA arrays are not supported")
    typestr = cai["typestr"]
    order, kind = typestr[0], typestr[1:]
    itemsize = int(kind[1:])
    shape = [int(d) for d in cai["shape"]]
    if not _c_contiguous(shape, cai.get("strides"), itemsize):
        raise ValueError(f"{what}: the CUDA array is not C-contiguous (make a contiguous copy first)")
    if order == ">":
        raise TypeError(f"{what}: big-endian arrays are not supported")
    dtype = _NUMPY.get(kind)
    if dtype is None and need_dtype:
        raise TypeError(f"{what}: dtype {typestr!r} is not one the swap store keeps ({KNOWN})")
    address, readonly = cai["data"]
    if writable and readonly:
        raise ValueError(f"{what}: the CUDA array is read-only")
    stream = cai.get("stream", MISSING) if cai.get("version", 0) >= 3 else MISSING
    if stream is not MISSING and stream is not None:
        if isinstance(stream, bool) or not isinstance(stream, int) or stream <= 0:
            raise ValueError(
                f"{what}: __cuda_array_interface__ stream {stream!r} is not a stream handle "
                "(version 3 allows None, 1, 2 or a CUstream; 0 is disallowed)"
            )
    nbytes = math.prod(shape) * itemsize
    return Array(obj, int(address or 0), nbytes, dtype, shape, True, None, stream)


def describe(obj, what, writable, need_dtype=True, allow_cuda=False):
    """Checks `obj` and returns an Array; raises TypeError or ValueError naming `what`.
    CUDA arrays are accepted with allow_cuda (else refused with a message)."""
    if is_torch(obj) and getattr(obj, "is_cuda", False):
        if not allow_cuda:
            raise ValueError(f"{what}: a CUDA tensor; copy it with .cpu() first")
        return _torch_cuda(obj, what, need_dtype)
    if not is_torch(obj):
        try:
            cai = obj.__cuda_array_interface__
        except AttributeError:
            cai = None
        if cai is not None:
            if not allow_cuda:
                raise ValueError(f"{what}: a CUDA array; copy it to host memory first")
            return _cuda_interface(obj, cai, what, writable, need_dtype)
    if is_torch(obj):
        dev = obj.device.type
        if dev != "cpu":
            raise ValueError(
                f"{what}: a {dev} tensor; gdswap moves CPU and CUDA tensors "
                "(copy it with .cpu() first)"
            )
        if not obj.is_contiguous():
            raise ValueError(f"{what}: the tensor is not contiguous (call .contiguous() first)")
        dtype = _TORCH.get(str(obj.dtype))
        if dtype is None and need_dtype:
            raise TypeError(f"{what}: dtype {obj.dtype} is not one the swap store keeps ({KNOWN})")
        nbytes = obj.numel() * obj.element_size()
        return Array(obj, obj.data_ptr(), nbytes, dtype, [int(d) for d in obj.shape])
    ai = getattr(obj, "__array_interface__", None)
    if ai is None:
        raise TypeError(f"{what}: expected a numpy array or a torch tensor, got {type(obj).__name__}")
    typestr = ai["typestr"]
    order, kind = typestr[0], typestr[1:]
    itemsize = int(kind[1:])
    shape = [int(d) for d in ai["shape"]]
    if not _c_contiguous(shape, ai.get("strides"), itemsize):
        raise ValueError(
            f"{what}: the array is not C-contiguous (use numpy.ascontiguousarray first)"
        )
    if order == ">":
        raise TypeError(f"{what}: big-endian arrays are not supported (use .astype('<{kind}'))")
    dtype = _NUMPY.get(kind)
    if dtype is None and need_dtype:
        raise TypeError(
            f"{what}: dtype {typestr!r} is not one the swap store keeps ({KNOWN})"
        )
    address, readonly = ai["data"]
    if writable and readonly:
        raise ValueError(f"{what}: the array is read-only")
    return Array(obj, int(address or 0), math.prod(shape) * itemsize, dtype, shape)
