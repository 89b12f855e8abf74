"""What gdswap needs of an array: its address, byte length, dtype and shape, after checking
that it is a contiguous CPU numpy array or torch tensor of a dtype the swap store keeps."""

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
    __slots__ = ("obj", "address", "nbytes", "dtype", "shape")

    def __init__(self, obj, address, nbytes, dtype, shape):
        self.obj = obj
        self.address = address
        self.nbytes = nbytes
        self.dtype = dtype
        self.shape = shape


def is_torch(obj):
    return type(obj).__module__.startswith("torch") and hasattr(obj, "data_ptr")


def describe(obj, what, writable, need_dtype=True):
    """Checks `obj` and returns an Array; raises TypeError or ValueError naming `what`."""
    if is_torch(obj):
        dev = obj.device.type
        if dev != "cpu":
            raise ValueError(
                f"{what}: a {dev} tensor; gdswap's Python package moves CPU tensors only so far "
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
    strides = ai.get("strides")
    if strides is not None:
        expect, step = [], itemsize
        for d in reversed(shape):
            expect.append(step)
            step *= d
        # Axes of length 1 may have any stride; an empty array has no bytes to misplace.
        bad = any(d != 1 and st != ex for d, st, ex in zip(shape, strides, expect[::-1]))
        if bad and math.prod(shape) > 0:
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
