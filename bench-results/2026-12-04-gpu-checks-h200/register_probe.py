import ctypes, os, sys
cu = ctypes.CDLL("libcuda.so.1"); cf = ctypes.CDLL(sys.argv[1]); d = sys.argv[2]
vp = ctypes.c_void_p
assert cu.cuInit(0) == 0
ctx = vp(); cu.cuDevicePrimaryCtxRetain.argtypes=[ctypes.POINTER(vp), ctypes.c_int]
assert cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), 0) == 0
cu.cuCtxSetCurrent.argtypes=[vp]; assert cu.cuCtxSetCurrent(ctx) == 0
class Err(ctypes.Structure): _fields_=[("err", ctypes.c_int), ("cu_err", ctypes.c_int)]
cf.cuFileDriverOpen.restype = Err
print("env", os.environ.get("CUFILE_FORCE_COMPAT_MODE"), "dir", d, "driver open", cf.cuFileDriverOpen().err)
class Descr(ctypes.Structure): _fields_=[("type", ctypes.c_int), ("pad", ctypes.c_int), ("fd", ctypes.c_long), ("ops", vp)]
cf.cuFileHandleRegister.restype = Err
cf.cuFileHandleRegister.argtypes=[ctypes.POINTER(vp), ctypes.POINTER(Descr)]
os.makedirs(d, exist_ok=True); p = d + "/f.bin"
with open(p, "wb") as f: f.write(b"\0" * (1 << 20))
try:
    fd = os.open(p, os.O_RDWR | os.O_DIRECT)
except OSError as e:
    print("O_DIRECT open:", e); sys.exit(1)
h = vp(); de = Descr(1, 0, fd, None)
r = cf.cuFileHandleRegister(ctypes.byref(h), ctypes.byref(de))
print("register ->", r.err, flush=True)
sys.exit(0 if r.err == 0 else 1)
