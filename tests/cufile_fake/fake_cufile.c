/* A fake libcufile for gdswap's tests: the real ABI (compiled against NVIDIA's own cufile.h
 * from the wheel), no GPU. It implements what `gdswap check` and the safe layer call: driver
 * open/close/properties with a use count, the parameter API, handle registration (which checks
 * O_DIRECT like the real one), and buffer registration bookkeeping. Reads and writes are not
 * faked here (the gds backend's fake is separate work): they fail with CU_FILE_INTERNAL_ERROR.
 * Like an old or partial library, it has no batch or statistics API, and of the stream API only
 * cuFileReadAsync: the loader must call that group absent and name what is missing.
 *
 * Behaviour is set per process by environment variables (read at each call), or in-process by
 * fake_cufile_set(name, value), which wins over the environment:
 *   FAKE_CUFILE_OPEN_ERR       CUfileOpError cuFileDriverOpen returns (default 0)
 *   FAKE_CUFILE_OPEN_CU_ERR    its cu_err (with 5011)
 *   FAKE_CUFILE_NVFS_MAJOR/MINOR  nvidia-fs version in the properties (default 2.17; 0.0 = none)
 *   FAKE_CUFILE_DSTATUS        dstatusflags (default 1<<4, NVMe)
 *   FAKE_CUFILE_FFLAGS         fflags (default 0b1110)
 *   FAKE_CUFILE_REGISTER_ERR   what cuFileHandleRegister returns when compat mode is disallowed
 *                              (e.g. 5008: the file is not on a GPUDirect path)
 *   FAKE_CUFILE_QUIET          1: no line on stdout from cuFileDriverOpen
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cufile.h"

static long overrides_set[16];
static long overrides[16];
static const char *names[16] = {"FAKE_CUFILE_OPEN_ERR", "FAKE_CUFILE_OPEN_CU_ERR",
                                "FAKE_CUFILE_NVFS_MAJOR", "FAKE_CUFILE_NVFS_MINOR",
                                "FAKE_CUFILE_DSTATUS", "FAKE_CUFILE_FFLAGS",
                                "FAKE_CUFILE_REGISTER_ERR", "FAKE_CUFILE_QUIET", NULL};

static long knob(int i, long dflt) {
    if (overrides_set[i]) return overrides[i];
    const char *v = getenv(names[i]);
    return v && *v ? strtol(v, NULL, 0) : dflt;
}

int fake_cufile_set(const char *name, long value) {
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], name) == 0) {
            overrides[i] = value;
            overrides_set[i] = 1;
            return 0;
        }
    }
    return -1;
}

static long opens;
static int compat_allowed = 1;
static long handles;

static CUfileError_t status(long err, long cu) {
    CUfileError_t e;
    e.err = (CUfileOpError)err;
    e.cu_err = (CUresult)cu;
    return e;
}

CUfileError_t cuFileGetVersion(int *v) { *v = 1140; return status(0, 0); }

CUfileError_t cuFileDriverOpen(void) {
    long err = knob(0, 0);
    /* The real library talks on stdout: so does the fake, to keep callers honest. */
    if (!knob(7, 0)) {
        printf("fake cufile: cuFileDriverOpen -> %ld\n", err);
        fflush(stdout);
    }
    if (err) return status(err, knob(1, 0));
    opens++;
    return status(0, 0);
}

CUfileError_t cuFileDriverClose_v2(void) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    opens--;
    return status(0, 0);
}

long cuFileUseCount(void) { return opens; }
long fake_cufile_handles(void) { return handles; }

CUfileError_t cuFileDriverGetProperties(CUfileDrvProps_t *p) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    memset(p, 0, sizeof *p);
    p->nvfs.major_version = (unsigned)knob(2, 2);
    p->nvfs.minor_version = (unsigned)knob(3, 17);
    p->nvfs.poll_thresh_size = 4;
    p->nvfs.max_direct_io_size = 16384;
    p->nvfs.dstatusflags = (unsigned)knob(4, 1 << CU_FILE_NVME_SUPPORTED);
    p->nvfs.dcontrolflags = compat_allowed ? 1u << CU_FILE_ALLOW_COMPAT_MODE : 0;
    p->fflags = (unsigned)knob(5, 0xe);
    p->max_device_cache_size = 131072;
    p->per_buffer_cache_size = 1024;
    p->max_device_pinned_mem_size = 33554432;
    p->max_batch_io_size = 128;
    p->max_batch_io_timeout_msecs = 5;
    return status(0, 0);
}

CUfileError_t cuFileDriverSetPollMode(bool poll, size_t kb) { (void)poll; (void)kb; return status(0, 0); }
CUfileError_t cuFileDriverSetMaxDirectIOSize(size_t kb) { (void)kb; return status(0, 0); }
CUfileError_t cuFileDriverSetMaxCacheSize(size_t kb) { (void)kb; return status(0, 0); }
CUfileError_t cuFileDriverSetMaxPinnedMemSize(size_t kb) { (void)kb; return status(0, 0); }

CUfileError_t cuFileHandleRegister(CUfileHandle_t *fh, CUfileDescr_t *d) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    if (d->type != CU_FILE_HANDLE_TYPE_OPAQUE_FD || d->fs_ops != NULL)
        return status(CU_FILE_INVALID_VALUE, 0);
    int flags = fcntl(d->handle.fd, F_GETFL);
    if (flags < 0) return status(CU_FILE_INVALID_VALUE, 0);
    if (!(flags & O_DIRECT)) return status(CU_FILE_DIO_NOT_SET, 0);
    long err = knob(6, 0);
    if (!compat_allowed && err) return status(err, 0);
    handles++;
    *fh = (CUfileHandle_t)(long)(d->handle.fd + 1000);
    return status(0, 0);
}

void cuFileHandleDeregister(CUfileHandle_t fh) { (void)fh; handles--; }

CUfileError_t cuFileBufRegister(const void *p, size_t len, int flags) {
    (void)p; (void)len; (void)flags;
    return status(opens ? 0 : CU_FILE_DRIVER_NOT_INITIALIZED, 0);
}
CUfileError_t cuFileBufDeregister(const void *p) { (void)p; return status(0, 0); }

ssize_t cuFileRead(CUfileHandle_t fh, void *b, size_t n, off_t fo, off_t bo) {
    (void)fh; (void)b; (void)n; (void)fo; (void)bo;
    return -(ssize_t)CU_FILE_INTERNAL_ERROR;
}
ssize_t cuFileWrite(CUfileHandle_t fh, const void *b, size_t n, off_t fo, off_t bo) {
    (void)fh; (void)b; (void)n; (void)fo; (void)bo;
    return -(ssize_t)CU_FILE_INTERNAL_ERROR;
}

CUfileError_t cuFileGetParameterSizeT(CUFileSizeTConfigParameter_t p, size_t *v) { (void)p; *v = 0; return status(0, 0); }
CUfileError_t cuFileGetParameterBool(CUFileBoolConfigParameter_t p, bool *v) {
    *v = p == CUFILE_PARAM_PROPERTIES_ALLOW_COMPAT_MODE ? compat_allowed : false;
    return status(0, 0);
}
CUfileError_t cuFileGetParameterString(CUFileStringConfigParameter_t p, char *s, int len) { (void)p; if (len > 0) s[0] = 0; return status(0, 0); }
CUfileError_t cuFileSetParameterSizeT(CUFileSizeTConfigParameter_t p, size_t v) { (void)p; (void)v; return status(0, 0); }
CUfileError_t cuFileSetParameterBool(CUFileBoolConfigParameter_t p, bool v) {
    if (opens) return status(CU_FILE_DRIVER_ALREADY_OPEN, 0);
    if (p == CUFILE_PARAM_PROPERTIES_ALLOW_COMPAT_MODE) compat_allowed = v;
    return status(0, 0);
}
CUfileError_t cuFileSetParameterString(CUFileStringConfigParameter_t p, const char *s) { (void)p; (void)s; return status(0, 0); }

/* The one stream-API symbol (a partial group). */
CUfileError_t cuFileReadAsync(CUfileHandle_t fh, void *b, size_t *n, off_t *fo, off_t *bo,
                              ssize_t *done, CUstream s) {
    (void)fh; (void)b; (void)n; (void)fo; (void)bo; (void)done; (void)s;
    return status(CU_FILE_ASYNC_NOT_SUPPORTED, 0);
}
