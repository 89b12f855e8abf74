"""Device memory of the fake libcuda (tests/fakes/fake_cuda.c) for the tests' child processes,
allocated with the driver API through ctypes as a framework's allocator would (gdswap does not
own it), and a minimal CUDA array: an object with nothing but `__cuda_array_interface__`
(version 3), as CuPy and Numba arrays present themselves. The bytes are written and read
through the fake's test hook `fake_cuda_device_host` (its device addresses are not host
addresses)."""

import ctypes
import os

_MISSING = object()


class FakeCuda:
    def __init__(self, path=None):
        self.lib = L = ctypes.CDLL(path or os.environ["GDSWAP_LIBCUDA"])
        L.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_size_t]
        L.cuMemFree_v2.argtypes = [ctypes.c_ulonglong]
        L.cuDevicePrimaryCtxRetain.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
        L.cuCtxPushCurrent_v2.argtypes = [ctypes.c_void_p]
        L.cuCtxPopCurrent_v2.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        L.fake_cuda_device_host.restype = ctypes.c_void_p
        L.fake_cuda_device_host.argtypes = [ctypes.c_ulonglong, ctypes.c_size_t]
        self._check(L.cuInit(0), "cuInit")
        self._ctx = {}

    @staticmethod
    def _check(rc, what):
        if rc != 0:
            raise RuntimeError(f"{what} failed: CUDA error {rc}")

    def _enter(self, device):
        if device not in self._ctx:
            c = ctypes.c_void_p()
            self._check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(c), device), "retain")
            self._ctx[device] = c
        self._check(self.lib.cuCtxPushCurrent_v2(self._ctx[device]), "push")

    def _leave(self):
        c = ctypes.c_void_p()
        self._check(self.lib.cuCtxPopCurrent_v2(ctypes.byref(c)), "pop")

    def alloc(self, nbytes, device=0):
        self._enter(device)
        try:
            p = ctypes.c_ulonglong()
            self._check(self.lib.cuMemAlloc_v2(ctypes.byref(p), nbytes), "cuMemAlloc")
            return p.value
        finally:
            self._leave()

    def free(self, ptr, device=0):
        self._enter(device)
        try:
            self._check(self.lib.cuMemFree_v2(ptr), "cuMemFree")
        finally:
            self._leave()

    def _host(self, ptr, n):
        h = self.lib.fake_cuda_device_host(ptr, n)
        if not h:
            raise ValueError(f"[{ptr:#x}, +{n}) is not inside one fake device allocation")
        return h

    def write(self, ptr, data):
        data = bytes(data)
        ctypes.memmove(self._host(ptr, len(data)), data, len(data))

    def read(self, ptr, n):
        return ctypes.string_at(self._host(ptr, n), n)


class CudaArray:
    """Only `__cuda_array_interface__`: pointer, shape, typestr, optional strides and stream."""

    def __init__(self, ptr, shape, typestr, strides=None, readonly=False, stream=_MISSING):
        cai = {"shape": tuple(shape), "typestr": typestr, "data": (ptr, readonly),
               "strides": strides, "version": 3}
        if stream is not _MISSING:
            cai["stream"] = stream
        self.__cuda_array_interface__ = cai
