import ctypes, os, sys
cu = ctypes.CDLL("libcuda.so.1")
cf = ctypes.CDLL(sys.argv[1])
vp = ctypes.c_void_p
assert cu.cuInit(0) == 0
ctx = vp()
cu.cuDevicePrimaryCtxRetain.argtypes=[ctypes.POINTER(vp), ctypes.c_int]
assert cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), 0) == 0
cu.cuCtxSetCurrent.argtypes=[vp]
assert cu.cuCtxSetCurrent(ctx) == 0
class Err(ctypes.Structure): _fields_=[("err", ctypes.c_int), ("cu_err", ctypes.c_int)]
cf.cuFileDriverOpen.restype = Err
print("open", cf.cuFileDriverOpen().err)
class Descr(ctypes.Structure): _fields_=[("type", ctypes.c_int), ("pad", ctypes.c_int), ("fd", ctypes.c_long), ("ops", vp)]
cf.cuFileHandleRegister.restype = Err
cf.cuFileHandleRegister.argtypes=[ctypes.POINTER(vp), ctypes.POINTER(Descr)]
cf.cuFileHandleDeregister.argtypes=[vp]
d = "/tmp/flags-probe"; os.makedirs(d, exist_ok=True)
p = d + "/f.bin"
with open(p, "wb") as f: f.write(b"\0" * (1 << 20))
flags = {"DIRECT": os.O_DIRECT, "NONBLOCK": os.O_NONBLOCK, "CLOEXEC": os.O_CLOEXEC, "NOFOLLOW": os.O_NOFOLLOW}
import itertools
for acc_name, acc in (("RDONLY", os.O_RDONLY), ("RDWR", os.O_RDWR), ("WRONLY", os.O_WRONLY)):
    for n in range(0, 4):
        for combo in itertools.combinations(["NONBLOCK", "CLOEXEC", "NOFOLLOW"], n):
            fl = acc | os.O_DIRECT
            for c in combo: fl |= flags[c]
            fd = os.open(p, fl)
            h = vp(); de = Descr(1, 0, fd, None)
            r = cf.cuFileHandleRegister(ctypes.byref(h), ctypes.byref(de))
            print(acc_name, "DIRECT", "+".join(combo) or "-", "->", r.err, flush=True)
            if r.err == 0: cf.cuFileHandleDeregister(h)
            os.close(fd)
try:
    print(open("cufile.log").read()[-3000:])
except Exception as e:
    print("no cufile.log", e)
