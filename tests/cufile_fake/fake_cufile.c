/* A fake libcufile for gdswap's tests: the real ABI (compiled against NVIDIA's own cufile.h
 * from the wheel), no GPU. It implements driver open/close/properties with a use count, the
 * parameter API, handle registration (which checks O_DIRECT like the real one), buffer
 * registration, and real reads and writes of the file into the fake libcuda's device memory
 * (tests/fakes/fake_cuda.c: device addresses are translated with its exported
 * fake_cuda_device_host, found with dlopen("libcuda.so.1", RTLD_NOLOAD)).
 *
 * Two builds of this file:
 * - default: like an old or partial library, no batch or statistics API, and of the stream API
 *   only cuFileReadAsync (which fails): the loader must call those groups absent;
 * - -DFAKE_CUFILE_FULL: also the stream API (its I/O runs on the fake CUDA stream through
 *   fake_cuda_stream_host_fn, reading its pointer arguments when the stream gets there) and
 *   the batch API (entries run at submit; their events are handed out by GetStatus), with
 *   compat mode's limits as seen on a real GPU (below);
 * - -DFAKE_CUFILE_FULL -DFAKE_CUFILE_NO_PARAMS: as full, but like cuFile 1.13 without the
 *   parameter API (compat mode can then only be disallowed through CUFILE_ENV_PATH_JSON).
 * Compat mode can also be disallowed with CUFILE_ENV_PATH_JSON naming a file that holds
 * "allow_compat_mode": false (read at cuFileDriverOpen, as the real library does).
 *
 * Rules the real library enforces that the fake enforces too, each with where it comes from
 * (cufile.h = the header of the PyPI wheels nvidia-cufile(-cu12) 1.14-1.20; "API reference" =
 * NVIDIA's cuFile API reference guide; "binary" = strings and behaviour of libcufile.so.0):
 * - Every call but the parameter, version and use-count ones needs the driver open:
 *   CU_FILE_DRIVER_NOT_INITIALIZED (cufile.h return lists).
 * - cuFileDriverOpen needs a CUDA context current on the calling thread; without one it fails
 *   with CU_FILE_CUDA_DRIVER_ERROR and cu_err CUDA_ERROR_INVALID_CONTEXT (API reference,
 *   Usage: "APIs with GPU buffers should be called in a valid CUDA context"; seen by cudf).
 *   Checked when the libcuda.so.1 found is the fake one (tests/fakes/fake_cuda.c).
 * - Parameters are set only before the driver opens: CU_FILE_DRIVER_ALREADY_OPEN (cufile.h,
 *   cuFileSetParameter*).
 * - Compat mode disallowed (ALLOW_COMPAT_MODE parameter false, or "allow_compat_mode": false in
 *   the cufile.json named by CUFILE_ENV_PATH_JSON: the library reads that variable,
 *   ../shared/cufile-abi.md) with nvidia-fs not loaded (FAKE_CUFILE_NVFS_MAJOR/MINOR 0.0) and
 *   no P2P feature bit: cuFileDriverOpen fails with CU_FILE_DRIVER_NOT_INITIALIZED (5001)
 *   (libcufile 1.15.1 on an H200 without nvidia-fs, strict probe: bench-results/
 *   2026-12-04-gpu-checks-h200/run1-log.txt). With compat mode disallowed, a file off the
 *   GPUDirect path gets CU_FILE_IO_NOT_SUPPORTED (5008) from cuFileHandleRegister
 *   (cufile.h; ../shared/cufile-abi.md): FAKE_CUFILE_REGISTER_ERR.
 * - cuFileHandleRegister: type CU_FILE_HANDLE_TYPE_OPAQUE_FD with no fs_ops, else
 *   CU_FILE_INVALID_VALUE; the fd must be O_DIRECT, else CU_FILE_DIO_NOT_SET (cufile.h); an fd
 *   registered twice gets CU_FILE_HANDLE_ALREADY_REGISTERED (5028) until deregistered
 *   (cufile.h: "file handle/descriptor is already registered"; binary: "file is already
 *   registered under same fd"; API reference, Dynamic Interactions); I/O through a handle not
 *   registered is -CU_FILE_HANDLE_NOT_REGISTERED. An O_DIRECT fd whose status flags
 *   (F_GETFL) include O_NOFOLLOW or O_NONBLOCK gets CU_FILE_INVALID_FILE_OPEN_FLAG (5019),
 *   with or without compat mode (seen with libcufile 1.15.1 on an H200, cufile.log "fd opened
 *   with unsupported flags: 180225"; O_CLOEXEC is accepted: bench-results/
 *   2026-12-04-gpu-checks-h200).
 * - cuFileBufRegister: flags only CU_FILE_RDMA_REGISTER | CU_FILE_RDMA_RELAXED_ORDERING, else
 *   CU_FILE_INVALID_VALUE (cufile.h); a base registered twice gets
 *   CU_FILE_MEMORY_ALREADY_REGISTERED (cufile.h); the pointer must be device memory of the
 *   fake libcuda, else CU_FILE_CUDA_POINTER_INVALID; registered memory is pinned in whole 64 KiB
 *   GPU pages: past max_device_pinned_mem_size (FAKE_CUFILE_MAX_PINNED_KB, also what the
 *   properties report) CU_FILE_INVALID_MAPPING_SIZE (5016), past the GPU's BAR1 aperture
 *   (FAKE_CUFILE_BAR1_BYTES) CU_FILE_GPU_MEMORY_PINNING_FAILED (5036). Which of the two codes
 *   the real library returns for which limit is not documented: the fake's split is a choice,
 *   and gdswap treats both alike.
 * - I/O into a registered buffer must stay inside its registration:
 *   -CU_FILE_INVALID_MAPPING_RANGE; O_DIRECT alignment rules apply (EINVAL), as on the direct
 *   path.
 * - cuFileReadAsync/WriteAsync read their pointer arguments when the stream runs the
 *   operation (cufile.h), and a stream runs its operations in order (CUDA): the fake queues
 *   them on the fake CUDA stream.
 * - cuFileStreamRegister: flags only the four CU_FILE_STREAM_* bits, else
 *   CU_FILE_INVALID_VALUE (cufile.h: "supported FLAGS are ..."); destroying a stream still
 *   registered leaves cuFile's per-stream resources behind (cufile.h: cuFileStreamDeregister
 *   "deallocates resources used by previous cuFile asynchronous operations for the cuda
 *   stream"): the fake libcuda's cuStreamDestroy aborts on it.
 * - Batch: SetUp of 1..128 entries (max_batch_io_size), submit flags 0, mode CUFILE_BATCH and
 *   opcode READ/WRITE, else CU_FILE_INVALID_VALUE; more entries in flight than SetUp allowed:
 *   CU_FILE_BATCH_FULL (cufile.h). GetStatus needs min_nr <= *nr and returns between min_nr
 *   and *nr events within its timeout.
 * - Statistics: level 0-3 (cufile.h), Start needs a level, GetStatsL1/2/3 need at least that
 *   level; the structs are written in the layout of the version cuFileGetVersion reports:
 *   1.15's below 1190, the larger 1.19/1.20 one from 1190 (the wheels' headers).
 * - cuFileDriverOpen allocates cuFile's own resources in the CUDA context current then, and
 *   CUDA frees them when that primary context is destroyed by its last release: I/O or
 *   cuFileBufRegister after that aborts (CUDA driver API, cuDevicePrimaryCtxRelease and
 *   cuCtxDestroy; see need_open_context).
 * Seen on a real GPU (libcufile 1.15.1, H200 VM, nvidia-fs not loaded, so compat mode:
 * bench-results/2026-12-04-gpu-checks-h200-session8, run2/log.txt and run3-diagnostics.txt),
 * enforced where the fake's I/O is in compat mode (compat_io()):
 * - stream operations on different streams that overlap misplace data (the block at file
 *   offset 0 held the last queued request's): modelled as one staging buffer shared by the
 *   process (staged_io); one at a time is exact;
 * - a batch with more than one entry pending makes no progress: no events (cuFileBatchIOSubmit);
 * - synchronous reads and writes from two threads at once are exact (not limited).
 * Not enforced (unknown or not modelled): what cuFileStreamDeregister of a stream never
 * registered returns (the fake says CU_FILE_INVALID_VALUE); whether a batch on a GPUDirect
 * path accepts a submit while entries are pending (the fake does, up to its size, and counts
 * it: CU_FILE_BATCH_FULL suggests so, kvikio's BatchHandle documents one submit at a time, and
 * gdswap never does it); compat mode's bouncing of unaligned I/O (the fake always takes the
 * direct path's O_DIRECT rules).
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
 *   FAKE_CUFILE_REGISTER_FAIL  what cuFileHandleRegister returns whatever compat mode allows
 *                              (e.g. 5027: libcufile 1.15.1 on a VM whose block device has no
 *                              udev properties, cufile.log "unable to get volume attributes",
 *                              "failed to allocate file object", compat mode or not)
 *   FAKE_CUFILE_QUIET          1: no line on stdout from cuFileDriverOpen
 *   FAKE_CUFILE_BUF_REGISTER_ERR  what cuFileBufRegister returns (e.g. 5036)
 *   FAKE_CUFILE_IO_MAX         at most this many bytes per read/write/batch entry (short
 *                              transfers; keep it a multiple of 4096 for O_DIRECT)
 *   FAKE_CUFILE_IO_FAIL_AT     the N-th I/O (1-based, counted over sync calls, async ops and
 *                              batch entries, process-wide) fails with FAKE_CUFILE_IO_FAIL_RET:
 *                              -1 (default: -1 with errno EIO; an async op or batch entry gets
 *                              -EIO) or a negative value returned as it is (e.g. -5030)
 *   FAKE_CUFILE_BATCH_FAIL_STATUS the status of a failed batch entry (default 64, FAILED)
 *   FAKE_CUFILE_OPEN_HANG      1: cuFileDriverOpen never returns (as 1.20 was seen to spin)
 *   FAKE_CUFILE_STATS_POSIX    1: the statistics count every I/O as POSIX (compat), whatever
 *                              the probe and properties say
 *   FAKE_CUFILE_STATS_FAIL     1: cuFileGetStatsL3 fails with 5022 (CU_FILE_INVALID_VALUE), as
 *                              libcufile 1.15 does when it could not make its statistics
 *                              segment (one left under its pid: cufile::stats)
 *   FAKE_CUFILE_VERSION        what the full build's cuFileGetVersion says (default 1200); the
 *                              statistics are written in 1.15's layout below 1190
 *   FAKE_CUFILE_BAR1_BYTES     the GPU's BAR1 aperture: registrations past it fail (0: none)
 *   FAKE_CUFILE_MAX_PINNED_KB  max_device_pinned_mem_size (default 33554432, 32 GiB)
 *   FAKE_CUFILE_IO_DELAY_US    each read/write takes this long (a device's latency); batch
 *                              entries become ready between a quarter of it and all of it
 *   FAKE_CUFILE_BUF_REGISTER_DELAY_US  each cuFileBufRegister takes this long before it
 *                              pins (pinning is not instant in nvidia-fs)
 *   FAKE_CUFILE_TRACE          a file to which the process appends at exit the most I/Os seen
 *                              in flight on one file at once (max_in_flight) and in the whole
 *                              process (max_in_flight_all), how many batch submits came while
 *                              entries were pending, and the most entries a batch had pending
 *                              (max_batch_pending)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "cufile.h"

static long overrides_set[32];
static long overrides[32];
static const char *names[32] = {"FAKE_CUFILE_OPEN_ERR", "FAKE_CUFILE_OPEN_CU_ERR",
                                "FAKE_CUFILE_NVFS_MAJOR", "FAKE_CUFILE_NVFS_MINOR",
                                "FAKE_CUFILE_DSTATUS", "FAKE_CUFILE_FFLAGS",
                                "FAKE_CUFILE_REGISTER_ERR", "FAKE_CUFILE_QUIET",
                                "FAKE_CUFILE_BUF_REGISTER_ERR", "FAKE_CUFILE_IO_MAX",
                                "FAKE_CUFILE_IO_FAIL_AT", "FAKE_CUFILE_IO_FAIL_RET",
                                "FAKE_CUFILE_BATCH_FAIL_STATUS", "FAKE_CUFILE_OPEN_HANG",
                                "FAKE_CUFILE_STATS_POSIX", "FAKE_CUFILE_VERSION",
                                "FAKE_CUFILE_BAR1_BYTES", "FAKE_CUFILE_MAX_PINNED_KB",
                                "FAKE_CUFILE_IO_DELAY_US", "FAKE_CUFILE_BUF_REGISTER_DELAY_US",
                                "FAKE_CUFILE_REGISTER_FAIL", "FAKE_CUFILE_STATS_FAIL", NULL};
enum { K_BUF_REGISTER_ERR = 8, K_IO_MAX, K_IO_FAIL_AT, K_IO_FAIL_RET, K_BATCH_FAIL_STATUS, K_OPEN_HANG,
       K_STATS_POSIX, K_VERSION, K_BAR1, K_MAX_PINNED_KB, K_IO_DELAY_US,
       K_BUF_REGISTER_DELAY_US, K_REGISTER_FAIL, K_STATS_FAIL };

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

static void *cuda_sym(const char *name);
static long opens;
/* The CUDA context current at the first cuFileDriverOpen (fake_cuda_context_id), -1 unknown. */
static long open_ctx = -1;
static int compat_allowed = 1;
static long handles;

/* CUFILE_ENV_PATH_JSON: "allow_compat_mode": false disallows compat mode. */
static void json_compat(void) {
    const char *path = getenv("CUFILE_ENV_PATH_JSON");
    if (!path || !*path) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    const char *k = strstr(text, "\"allow_compat_mode\"");
    if (!k) return;
    k = strchr(k, ':');
    if (!k) return;
    k++;
    while (*k == ' ' || *k == '\t' || *k == '\n') k++;
    if (strncmp(k, "false", 5) == 0) compat_allowed = 0;
    if (strncmp(k, "true", 4) == 0) compat_allowed = 1;
}

static CUfileError_t status(long err, long cu) {
    CUfileError_t e;
    e.err = (CUfileOpError)err;
    e.cu_err = (CUresult)cu;
    return e;
}

#if defined(FAKE_CUFILE_NO_PARAMS)
CUfileError_t cuFileGetVersion(int *v) { *v = 1130; return status(0, 0); }
#elif defined(FAKE_CUFILE_FULL)
/* 1.20, or FAKE_CUFILE_VERSION (e.g. 1150: statistics in 1.15's layout; 1140: too old for
 * the statistics symbols it has). */
CUfileError_t cuFileGetVersion(int *v) { *v = (int)knob(K_VERSION, 1200); return status(0, 0); }
#else
CUfileError_t cuFileGetVersion(int *v) { *v = 1140; return status(0, 0); }
#endif

CUfileError_t cuFileDriverOpen(void) {
    long err = knob(0, 0);
    while (knob(K_OPEN_HANG, 0)) pause();
    /* The real library talks on stdout: so does the fake, to keep callers honest. */
    if (!knob(7, 0)) {
        printf("fake cufile: cuFileDriverOpen -> %ld\n", err);
        fflush(stdout);
    }
    if (err) return status(err, knob(1, 0));
    /* A CUDA context must be current on this thread: the real library loads libcuda itself
     * and its open fails without one (CU_FILE_CUDA_DRIVER_ERROR, CUDA_ERROR_INVALID_CONTEXT, as
     * cudf found). Checked when the libcuda found is the fake one (it can say). */
    void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
    int (*ctx_current)(void) = cuda ? (int (*)(void))dlsym(cuda, "fake_cuda_context_current") : NULL;
    if (opens == 0 && ctx_current && !ctx_current()) return status(CU_FILE_CUDA_DRIVER_ERROR, 201);
    if (opens == 0) {
        json_compat();
        long (*ctx_id)(void) = cuda ? (long (*)(void))dlsym(cuda, "fake_cuda_context_id") : NULL;
        open_ctx = ctx_id ? ctx_id() : -1;
    }
    /* Compat mode disallowed (parameter or cufile.json) and no nvidia-fs: the open fails with
     * CU_FILE_DRIVER_NOT_INITIALIZED (5001), "nvidia-fs driver is not loaded (set
     * allow_compat_mode to true in cufile.json to enable compat mode)" (libcufile 1.15.1 on an
     * H200 without nvidia-fs: bench-results/2026-12-04-gpu-checks-h200/run1-log.txt). With
     * 1.20's P2P feature bit the fake opens: whether kernel P2PDMA lets the real library open
     * without nvidia-fs is not observed. */
    if (opens == 0 && !compat_allowed && knob(2, 2) == 0 && knob(3, 17) == 0 &&
        !(knob(5, 0xe) & (1 << 4)))
        return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    opens++;
    return status(0, 0);
}

/* cuFile allocates its own resources (compat mode's host bounce buffers, its streams) in the
 * CUDA context current at cuFileDriverOpen, and the driver stays open; CUDA frees all of them
 * when that primary context is destroyed by its last cuDevicePrimaryCtxRelease (CUDA driver
 * API: cuDevicePrimaryCtxRelease, cuCtxDestroy). Using the driver after that is a use after
 * free inside the real library: the fake aborts, naming it. Checked with the fake libcuda. */
static void need_open_context(const char *call) {
    static int (*alive)(long);
    if (open_ctx < 0) return;
    if (!alive) {
        void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        alive = cuda ? (int (*)(long))dlsym(cuda, "fake_cuda_context_alive") : NULL;
        if (!alive) return;
    }
    if (!alive(open_ctx)) {
        fprintf(stderr, "fake cufile: %s after the CUDA context current at cuFileDriverOpen was destroyed (its last cuDevicePrimaryCtxRelease): cuFile's resources there are freed\n", call);
        abort();
    }
}

CUfileError_t cuFileDriverClose_v2(void) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    opens--;
    if (opens == 0) open_ctx = -1;
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
    p->max_device_pinned_mem_size = (unsigned)knob(K_MAX_PINNED_KB, 33554432);
    p->max_batch_io_size = 128;
    p->max_batch_io_timeout_msecs = 5;
    return status(0, 0);
}

CUfileError_t cuFileDriverSetPollMode(bool poll, size_t kb) { (void)poll; (void)kb; return status(0, 0); }
CUfileError_t cuFileDriverSetMaxDirectIOSize(size_t kb) { (void)kb; return status(0, 0); }
CUfileError_t cuFileDriverSetMaxCacheSize(size_t kb) { (void)kb; return status(0, 0); }
CUfileError_t cuFileDriverSetMaxPinnedMemSize(size_t kb) { (void)kb; return status(0, 0); }

/* Registered descriptors: the real library refuses a second registration of an fd until it is
 * deregistered (CU_FILE_HANDLE_ALREADY_REGISTERED, 5028, "file is already registered under
 * same fd"), and I/O through a handle that is not registered (CU_FILE_HANDLE_NOT_REGISTERED). */
#define MAX_FDS 4096
static unsigned char fd_registered[MAX_FDS];
static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;

static int handle_fd(CUfileHandle_t fh) {
    long v = (long)fh - 1000;
    if (v < 0 || v >= MAX_FDS) return -1;
    pthread_mutex_lock(&fds_lock);
    int ok = fd_registered[v];
    pthread_mutex_unlock(&fds_lock);
    return ok ? (int)v : -1;
}

CUfileError_t cuFileHandleRegister(CUfileHandle_t *fh, CUfileDescr_t *d) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    if (!fh || !d) return status(CU_FILE_INVALID_VALUE, 0);
    if (d->type != CU_FILE_HANDLE_TYPE_OPAQUE_FD || d->fs_ops != NULL)
        return status(CU_FILE_INVALID_VALUE, 0);
    int fd = d->handle.fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fd >= MAX_FDS) return status(CU_FILE_INVALID_VALUE, 0);
    if (!(flags & O_DIRECT)) return status(CU_FILE_DIO_NOT_SET, 0);
    if (flags & (O_NOFOLLOW | O_NONBLOCK)) return status(CU_FILE_INVALID_FILE_OPEN_FLAG, 0);
    long any = knob(K_REGISTER_FAIL, 0);
    if (any) return status(any, 0);
    long err = knob(6, 0);
    if (!compat_allowed && err) return status(err, 0);
    pthread_mutex_lock(&fds_lock);
    if (fd_registered[fd]) {
        pthread_mutex_unlock(&fds_lock);
        return status(CU_FILE_HANDLE_ALREADY_REGISTERED, 0);
    }
    fd_registered[fd] = 1;
    handles++;
    pthread_mutex_unlock(&fds_lock);
    *fh = (CUfileHandle_t)(long)(fd + 1000);
    return status(0, 0);
}

void cuFileHandleDeregister(CUfileHandle_t fh) {
    long fd = (long)fh - 1000;
    if (fd < 0 || fd >= MAX_FDS) return;
    pthread_mutex_lock(&fds_lock);
    if (fd_registered[fd]) {
        fd_registered[fd] = 0;
        handles--;
    }
    pthread_mutex_unlock(&fds_lock);
}

/* ---- device memory of the fake libcuda ---- */
static void *cuda_sym(const char *name) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}

static unsigned char *device_host(const void *d, size_t len) {
    static void *(*fn)(unsigned long long, size_t);
    if (!fn) fn = (void *(*)(unsigned long long, size_t))cuda_sym("fake_cuda_device_host");
    return fn ? fn((unsigned long long)(uintptr_t)d, len) : NULL;
}

#define MAX_BUFS 1024
static struct { const unsigned char *p; size_t len; } bufs[MAX_BUFS];
static pthread_mutex_t bufs_lock = PTHREAD_MUTEX_INITIALIZER;
static long buf_regs;
long fake_cufile_buffers(void) { return buf_regs; }

/* Device memory pinned for registered buffers: each registration takes whole 64 KiB GPU pages
 * of BAR1 space (nvidia-fs pins GPU pages through the BAR1 aperture). */
static size_t pinned_bytes;
static size_t gpu_pages(size_t len) { return (len + 65535) / 65536 * 65536; }

CUfileError_t cuFileBufRegister(const void *p, size_t len, int flags) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    /* cufile.h: flags are CU_FILE_RDMA_REGISTER and CU_FILE_RDMA_RELAXED_ORDERING. */
    if (flags & ~(CU_FILE_RDMA_REGISTER | CU_FILE_RDMA_RELAXED_ORDERING))
        return status(CU_FILE_INVALID_VALUE, 0);
    if (!p || len == 0) return status(CU_FILE_INVALID_VALUE, 0);
    need_open_context("cuFileBufRegister");
    long err = knob(K_BUF_REGISTER_ERR, 0);
    if (err) return status(err, 0);
    /* The fake libcuda is loaded (the gds backend allocates there) unless a test calls this
     * in-process without it: then any pointer is accepted, as before. */
    if (cuda_sym("fake_cuda_device_host") && !device_host(p, len))
        return status(CU_FILE_CUDA_POINTER_INVALID, 0);
    /* Pinning takes time in nvidia-fs; a delay here widens any window a caller leaves between
     * checking what is pinned and registering (tests of concurrent workers use it). */
    long delay = knob(K_BUF_REGISTER_DELAY_US, 0);
    if (delay > 0) usleep((useconds_t)delay);
    pthread_mutex_lock(&bufs_lock);
    for (int i = 0; i < MAX_BUFS; i++) {
        if (bufs[i].p == p) { pthread_mutex_unlock(&bufs_lock); return status(CU_FILE_MEMORY_ALREADY_REGISTERED, 0); }
    }
    size_t want = pinned_bytes + gpu_pages(len);
    /* max_device_pinned_mem_size (KiB, in the properties) bounds what may be pinned. */
    size_t max_pinned = (size_t)knob(K_MAX_PINNED_KB, 33554432) * 1024;
    if (want > max_pinned) { pthread_mutex_unlock(&bufs_lock); return status(CU_FILE_INVALID_MAPPING_SIZE, 0); }
    /* The GPU's BAR1 aperture: pinning past it fails in nvidia-fs. */
    long bar1 = knob(K_BAR1, 0);
    if (bar1 > 0 && want > (size_t)bar1) { pthread_mutex_unlock(&bufs_lock); return status(CU_FILE_GPU_MEMORY_PINNING_FAILED, 0); }
    for (int i = 0; i < MAX_BUFS; i++) {
        if (!bufs[i].p) {
            bufs[i].p = p;
            bufs[i].len = len;
            buf_regs++;
            pinned_bytes = want;
            pthread_mutex_unlock(&bufs_lock);
            return status(0, 0);
        }
    }
    pthread_mutex_unlock(&bufs_lock);
    return status(CU_FILE_INTERNAL_ERROR, 0);
}

CUfileError_t cuFileBufDeregister(const void *p) {
    pthread_mutex_lock(&bufs_lock);
    for (int i = 0; i < MAX_BUFS; i++) {
        if (bufs[i].p && bufs[i].p == p) {
            bufs[i].p = NULL;
            buf_regs--;
            pinned_bytes -= gpu_pages(bufs[i].len);
            pthread_mutex_unlock(&bufs_lock);
            return status(0, 0);
        }
    }
    pthread_mutex_unlock(&bufs_lock);
    return status(CU_FILE_MEMORY_NOT_REGISTERED, 0);
}

/* A registered base must cover [base+off, +n): the real library refuses I/O past the
 * registration (CU_FILE_INVALID_MAPPING_RANGE). Unregistered bases are accepted (cuFile then
 * stages through its own buffers). */
static int outside_registration(const void *base, off_t off, size_t n) {
    int bad = 0;
    pthread_mutex_lock(&bufs_lock);
    for (int i = 0; i < MAX_BUFS; i++)
        if (bufs[i].p && bufs[i].p == base) bad = off < 0 || (size_t)off + n > bufs[i].len;
    pthread_mutex_unlock(&bufs_lock);
    return bad;
}

static long io_calls;

/* Statistics counters (the full build's 1.20 statistics API reports them): which path each
 * successful I/O took, as the fake's knobs describe the node: POSIX when the file is not on a
 * GDS path and compat is allowed (FAKE_CUFILE_REGISTER_ERR set), else nvidia-fs when it is
 * "loaded", else P2PDMA when fflags has bit 4, else POSIX. */
static int stats_on;
static unsigned long long st_reads[3], st_writes[3]; /* posix, nvfs, p2p */

/* Whether the fake's I/O goes through compat mode (POSIX through host memory), as the knobs
 * describe the node: CUFILE_FORCE_COMPAT_MODE set, the file not on a GDS path with compat
 * allowed (FAKE_CUFILE_REGISTER_ERR), or neither nvidia-fs nor P2PDMA (fflags bit 4). */
static int compat_io(void) {
    const char *forced = getenv("CUFILE_FORCE_COMPAT_MODE");
    if (forced && (strcmp(forced, "1") == 0 || strcasecmp(forced, "true") == 0)) return 1;
    if (compat_allowed && knob(6, 0)) return 1;
    return !(knob(2, 2) || knob(3, 17)) && !(knob(5, 0xe) & (1 << 4));
}

static void count_io(int write) {
    if (!stats_on) return;
    int path = 0;
    if (!knob(K_STATS_POSIX, 0) && !compat_io()) {
        if (knob(2, 2) || knob(3, 17)) path = 1;
        else path = 2;
    }
    __atomic_add_fetch(write ? &st_writes[path] : &st_reads[path], 1, __ATOMIC_SEQ_CST);
}

/* Operations in flight at once on one file, and the most seen (FAKE_CUFILE_TRACE reports it):
 * the proof that queue depth means requests in flight. */
static int in_flight[MAX_FDS];
static int max_in_flight;
/* The same over every file of the process. */
static int in_flight_all, max_in_flight_all;
static long batch_submits_while_pending;
static unsigned max_batch_pending;

static void io_delay(void) {
    long us = knob(K_IO_DELAY_US, 0);
    if (us > 0) {
        struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
}

/* Compat mode's asynchronous (stream) operations, as observed with libcufile 1.15.1 on an H200
 * with nvidia-fs not loaded (bench-results/2026-12-04-gpu-checks-h200-session8: run2/log.txt
 * and run3-diagnostics.txt): with 2 or 8 cuFileWriteAsync queued on different streams, the
 * block written at file offset 0 held the data of the last request of the first wave; one at
 * a time was byte-exact. The model (the cause is a hypothesis): every such operation is staged
 * through one host buffer shared by the whole process, between a first phase (a write copies
 * its device range in, a read reads its file range in) and a second phase a while later (the
 * write writes the buffer to its file range, the read copies the buffer to its device range),
 * so an operation that overlaps others moves the data of whichever staged last. Operations
 * larger than the buffer are cut short (a short transfer). */
#define STAGE_BYTES (16u << 20)
#define STAGE_MIN_US 2000L
static pthread_mutex_t stage_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *stage;

static ssize_t staged_io(int fd, unsigned char *host, size_t n, off_t fo, int write) {
    pthread_mutex_lock(&stage_lock);
    if (!stage && posix_memalign((void **)&stage, 4096, STAGE_BYTES) != 0) stage = NULL;
    pthread_mutex_unlock(&stage_lock);
    if (!stage) { errno = ENOMEM; return -1; }
    if (n > STAGE_BYTES) n = STAGE_BYTES;
    ssize_t r = (ssize_t)n;
    pthread_mutex_lock(&stage_lock);
    if (write) memcpy(stage, host, n);
    else r = pread(fd, stage, n, fo);
    int saved = errno;
    pthread_mutex_unlock(&stage_lock);
    if (r < 0) { errno = saved; return r; }
    /* The host I/O's time, during which other streams' operations stage over the buffer. */
    long us = knob(K_IO_DELAY_US, 0);
    if (us < STAGE_MIN_US) us = STAGE_MIN_US;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    pthread_mutex_lock(&stage_lock);
    if (write) r = pwrite(fd, stage, n, fo);
    else memcpy(host, stage, (size_t)r);
    saved = errno;
    pthread_mutex_unlock(&stage_lock);
    errno = saved;
    return r;
}

/* One read or write: bytes done, -1 with errno, or -(CUfileOpError). Takes FAKE_CUFILE_IO_DELAY_US
 * (a device's latency; operations on different streams or threads overlap). `staged`: a
 * compat-mode stream operation, through the shared staging buffer above. */
static ssize_t do_io_delay(CUfileHandle_t fh, const void *base, size_t n, off_t fo, off_t bo, int write, int delay, int staged) {
    if (opens == 0) return -(ssize_t)CU_FILE_DRIVER_NOT_INITIALIZED;
    need_open_context(write ? "cuFileWrite" : "cuFileRead");
    long at = __atomic_add_fetch(&io_calls, 1, __ATOMIC_SEQ_CST);
    long fail_at = knob(K_IO_FAIL_AT, 0);
    if (fail_at && at == fail_at) {
        long r = knob(K_IO_FAIL_RET, -1);
        if (r == -1) errno = EIO;
        return r;
    }
    int fd = handle_fd(fh);
    if (fd < 0) return -(ssize_t)CU_FILE_HANDLE_NOT_REGISTERED;
    if (outside_registration(base, bo, n)) return -(ssize_t)CU_FILE_INVALID_MAPPING_RANGE;
    unsigned char *host = device_host((const unsigned char *)base + bo, n);
    if (!host) return -(ssize_t)CU_FILE_CUDA_POINTER_INVALID;
    long max = knob(K_IO_MAX, 0);
    if (max > 0 && n > (size_t)max) n = (size_t)max;
    int now = __atomic_add_fetch(&in_flight[fd], 1, __ATOMIC_SEQ_CST);
    int seen = __atomic_load_n(&max_in_flight, __ATOMIC_SEQ_CST);
    while (now > seen && !__atomic_compare_exchange_n(&max_in_flight, &seen, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    now = __atomic_add_fetch(&in_flight_all, 1, __ATOMIC_SEQ_CST);
    seen = __atomic_load_n(&max_in_flight_all, __ATOMIC_SEQ_CST);
    while (now > seen && !__atomic_compare_exchange_n(&max_in_flight_all, &seen, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    ssize_t r;
    if (staged) {
        r = staged_io(fd, host, n, fo, write);
    } else {
        if (delay) io_delay();
        /* O_DIRECT rules apply: unaligned offsets or lengths fail with EINVAL, as the real
         * library's direct path does (compat mode would bounce them; gdswap never relies on it). */
        r = write ? pwrite(fd, host, n, fo) : pread(fd, host, n, fo);
    }
    int saved = errno;
    __atomic_sub_fetch(&in_flight[fd], 1, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&in_flight_all, 1, __ATOMIC_SEQ_CST);
    if (r > 0) count_io(write);
    errno = saved;
    return r;
}

static ssize_t do_io(CUfileHandle_t fh, const void *base, size_t n, off_t fo, off_t bo, int write) {
    return do_io_delay(fh, base, n, fo, bo, write, 1, 0);
}

/* FAKE_CUFILE_TRACE=path: at exit, what the process did, one "name value" per line. */
__attribute__((destructor)) static void write_trace(void) {
    const char *path = getenv("FAKE_CUFILE_TRACE");
    if (!path || !*path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "max_in_flight %d\nmax_in_flight_all %d\nbatch_submits_while_pending %ld\nmax_batch_pending %u\n",
            max_in_flight, max_in_flight_all, batch_submits_while_pending, max_batch_pending);
    fclose(f);
}

ssize_t cuFileRead(CUfileHandle_t fh, void *b, size_t n, off_t fo, off_t bo) {
    return do_io(fh, b, n, fo, bo, 0);
}
ssize_t cuFileWrite(CUfileHandle_t fh, const void *b, size_t n, off_t fo, off_t bo) {
    return do_io(fh, b, n, fo, bo, 1);
}

#ifndef FAKE_CUFILE_NO_PARAMS
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
#endif

#ifndef FAKE_CUFILE_FULL
/* The one stream-API symbol (a partial group). */
CUfileError_t cuFileReadAsync(CUfileHandle_t fh, void *b, size_t *n, off_t *fo, off_t *bo,
                              ssize_t *done, CUstream s) {
    (void)fh; (void)b; (void)n; (void)fo; (void)bo; (void)done; (void)s;
    return status(CU_FILE_ASYNC_NOT_SUPPORTED, 0);
}
#else
/* ---- stream API: the I/O runs on the fake CUDA stream, in order with its copies ---- */
struct async_op {
    CUfileHandle_t fh;
    void *buf;
    size_t *size_p;
    off_t *fo_p, *bo_p;
    ssize_t *done_p;
    int write;
};

static void run_async(void *arg) {
    struct async_op *a = arg;
    /* The arguments are read now, when the stream gets here: they must still be valid. */
    ssize_t r = do_io_delay(a->fh, a->buf, *a->size_p, *a->fo_p, *a->bo_p, a->write, 1, compat_io());
    *a->done_p = r == -1 ? -(ssize_t)errno : r;
    free(a);
}

static CUfileError_t enqueue_io(CUfileHandle_t fh, void *b, size_t *n, off_t *fo, off_t *bo,
                                ssize_t *done, CUstream s, int write) {
    static int (*host_fn)(void *, void (*)(void *), void *);
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    if (!n || !fo || !bo || !done) return status(CU_FILE_INVALID_VALUE, 0);
    if (!host_fn) host_fn = (int (*)(void *, void (*)(void *), void *))cuda_sym("fake_cuda_stream_host_fn");
    if (!host_fn) return status(CU_FILE_CUDA_DRIVER_ERROR, 1);
    struct async_op *a = malloc(sizeof *a);
    if (!a) return status(CU_FILE_INTERNAL_ERROR, 0);
    *a = (struct async_op){fh, b, n, fo, bo, done, write};
    int rc = host_fn(s, run_async, a);
    if (rc) { free(a); return status(CU_FILE_CUDA_DRIVER_ERROR, rc); }
    return status(0, 0);
}

CUfileError_t cuFileReadAsync(CUfileHandle_t fh, void *b, size_t *n, off_t *fo, off_t *bo,
                              ssize_t *done, CUstream s) {
    return enqueue_io(fh, b, n, fo, bo, done, s, 0);
}
CUfileError_t cuFileWriteAsync(CUfileHandle_t fh, void *b, size_t *n, off_t *fo, off_t *bo,
                               ssize_t *done, CUstream s) {
    return enqueue_io(fh, b, n, fo, bo, done, s, 1);
}
/* Streams registered with cuFile. Destroying one while still registered is a use after free
 * inside the real library (it keeps per-stream resources, cufile.h: "deallocates resources
 * used by previous cuFile asynchronous operations for the cuda stream"): the fake libcuda's
 * cuStreamDestroy asks here (the guard is handed to it at the first registration) and aborts. */
#define MAX_STREAMS 1024
static void *streams[MAX_STREAMS];
static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;

static int stream_registered(void *s) {
    int found = 0;
    pthread_mutex_lock(&streams_lock);
    for (int i = 0; i < MAX_STREAMS && !found; i++) found = s && streams[i] == s;
    pthread_mutex_unlock(&streams_lock);
    return found;
}

CUfileError_t cuFileStreamRegister(CUstream s, unsigned flags) {
    static int guarded;
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    /* cufile.h: the CU_FILE_STREAM_* flags, bits 0-3; "CU_FILE_INVALID_VALUE if the stream is
     * invalid". */
    if (!s || (flags & ~0xfu)) return status(CU_FILE_INVALID_VALUE, 0);
    if (!guarded) {
        void (*set)(int (*)(void *)) = (void (*)(int (*)(void *)))cuda_sym("fake_cuda_set_stream_guard");
        if (set) set(stream_registered);
        guarded = 1;
    }
    pthread_mutex_lock(&streams_lock);
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (streams[i] == s) { pthread_mutex_unlock(&streams_lock); return status(CU_FILE_INVALID_VALUE, 0); }
    }
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (!streams[i]) { streams[i] = s; pthread_mutex_unlock(&streams_lock); return status(0, 0); }
    }
    pthread_mutex_unlock(&streams_lock);
    return status(CU_FILE_INTERNAL_ERROR, 0);
}

CUfileError_t cuFileStreamDeregister(CUstream s) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    pthread_mutex_lock(&streams_lock);
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (s && streams[i] == s) { streams[i] = NULL; pthread_mutex_unlock(&streams_lock); return status(0, 0); }
    }
    pthread_mutex_unlock(&streams_lock);
    return status(CU_FILE_INVALID_VALUE, 0);
}

/* ---- batch API: entries run at submit (their data moves then), their events become ready
 * between a quarter of FAKE_CUFILE_IO_DELAY_US and all of it later (entry i of a submission
 * after (i % 4 + 1) quarters: the device runs them in parallel, finishing in its own order)
 * and are handed out by GetStatus, which waits up to its timeout for min_nr ready
 * ones. A batch holds at most the entries of its SetUp in flight: a submit past that is
 * CU_FILE_BATCH_FULL; a submit while entries are still pending is allowed (counted for
 * FAKE_CUFILE_TRACE, as is the most entries a batch had pending).
 * In compat mode (compat_io()) a batch that would have more than one entry pending stalls: its
 * entries never run and GetStatus hands out no event for them, until a cancel. Observed with
 * libcufile 1.15.1 on an H200 with nvidia-fs not loaded (bench-results/
 * 2026-12-04-gpu-checks-h200-session8: run2/log.txt and run3-diagnostics.txt): one entry at a
 * time moved data (2.21 GiB/s), 2 or 8 entries made no progress in 8 and 45 s, the submitting
 * thread running and libcufile's pool threads idle. Why is not known. ---- */
struct batch {
    unsigned max, n;
    int stalled;
    double ready_at[128];
    CUfileIOEvents_t ev[];
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

CUfileError_t cuFileBatchIOSetUp(CUfileBatchHandle_t *h, unsigned nr) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    if (!h || nr == 0 || nr > 128) return status(CU_FILE_INVALID_VALUE, 0);
    struct batch *b = calloc(1, sizeof *b + nr * sizeof b->ev[0]);
    if (!b) return status(CU_FILE_INTERNAL_ERROR, 0);
    b->max = nr;
    *h = b;
    return status(0, 0);
}

CUfileError_t cuFileBatchIOSubmit(CUfileBatchHandle_t h, unsigned nr, CUfileIOParams_t *p, unsigned flags) {
    struct batch *b = h;
    if (!b || !p || flags != 0) return status(CU_FILE_INVALID_VALUE, 0);
    if (b->n + nr > b->max) return status(CU_FILE_BATCH_FULL, 0);
    for (unsigned i = 0; i < nr; i++) {
        if (p[i].mode != CUFILE_BATCH || (p[i].opcode != CUFILE_READ && p[i].opcode != CUFILE_WRITE))
            return status(CU_FILE_INVALID_VALUE, 0);
    }
    if (b->n > 0) batch_submits_while_pending++;
    if (b->n + nr > max_batch_pending) max_batch_pending = b->n + nr;
    if (compat_io() && b->n + nr > 1) b->stalled = 1;
    double t0 = now_s(), delay = knob(K_IO_DELAY_US, 0) / 1e6;
    for (unsigned i = 0; i < nr; i++) {
        if (b->stalled) {
            b->ready_at[b->n] = 1e300;
            CUfileIOEvents_t *e = &b->ev[b->n++];
            e->cookie = p[i].cookie;
            e->status = CUFILE_PENDING;
            e->ret = 0;
            continue;
        }
        ssize_t r = do_io_delay(p[i].fh, p[i].u.batch.devPtr_base, p[i].u.batch.size, p[i].u.batch.file_offset,
                                p[i].u.batch.devPtr_offset, p[i].opcode == CUFILE_WRITE, 0, 0);
        b->ready_at[b->n] = t0 + delay * (i % 4 + 1) / 4;
        CUfileIOEvents_t *e = &b->ev[b->n++];
        e->cookie = p[i].cookie;
        if (r < 0) {
            e->status = (CUfileStatus_t)knob(K_BATCH_FAIL_STATUS, CUFILE_FAILED);
            e->ret = (size_t)(r == -1 ? -(ssize_t)errno : r);
        } else {
            e->status = CUFILE_COMPLETE;
            e->ret = (size_t)r;
        }
    }
    return status(0, 0);
}

CUfileError_t cuFileBatchIOGetStatus(CUfileBatchHandle_t h, unsigned min_nr, unsigned *nr,
                                     CUfileIOEvents_t *ev, struct timespec *timeout) {
    struct batch *b = h;
    if (!b || !nr || !ev || min_nr > *nr) return status(CU_FILE_INVALID_VALUE, 0);
    double deadline = now_s() + (timeout ? timeout->tv_sec + timeout->tv_nsec / 1e9 : 1e9);
    for (;;) {
        unsigned ready = 0;
        double t = now_s();
        for (unsigned i = 0; i < b->n; i++) ready += b->ready_at[i] <= t;
        if (ready >= min_nr || ready >= b->n || t >= deadline) break;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    /* Hand out the ready events, oldest first, keeping the others in order. */
    unsigned k = 0, kept = 0;
    double t = now_s();
    for (unsigned i = 0; i < b->n; i++) {
        if (k < *nr && b->ready_at[i] <= t) {
            ev[k++] = b->ev[i];
        } else {
            b->ev[kept] = b->ev[i];
            b->ready_at[kept++] = b->ready_at[i];
        }
    }
    b->n = kept;
    *nr = k;
    return status(0, 0);
}

CUfileError_t cuFileBatchIOCancel(CUfileBatchHandle_t h) {
    struct batch *b = h;
    if (!b) return status(CU_FILE_INVALID_VALUE, 0);
    b->n = 0;
    b->stalled = 0;
    return status(0, 0);
}

void cuFileBatchIODestroy(CUfileBatchHandle_t h) { free(h); }

#ifndef FAKE_CUFILE_NO_PARAMS
/* ---- statistics API (1.15+), in cuFile 1.20's layouts (the 1.14 header compiled against has
 * no statistics types; gdswap's ffi layouts are checked against the real 1.20 header):
 * CUfileStatsLevel1_t 624 bytes, Level2 1136, Level3 5112 with num_gpus at 1136 and
 * per_gpu_stats at 1144; a CUfilePerGpuStats_t is a 16-byte uuid, then u64 counters of which
 * n_total_reads is the 5th, n_p2p/nvfs/posix_reads the 6th-8th, n_total_writes the 18th and
 * n_p2p/nvfs/posix_writes the 19th-21st. ---- */
static int stats_level;
CUfileError_t cuFileSetStatsLevel(int level) {
    if (level < 0 || level > 3) return status(CU_FILE_INVALID_VALUE, 0);
    stats_level = level;
    return status(0, 0);
}
CUfileError_t cuFileGetStatsLevel(int *level) {
    if (!level) return status(CU_FILE_INVALID_VALUE, 0);
    *level = stats_level;
    return status(0, 0);
}
CUfileError_t cuFileStatsStart(void) {
    if (opens == 0) return status(CU_FILE_DRIVER_NOT_INITIALIZED, 0);
    if (stats_level == 0) return status(CU_FILE_INVALID_VALUE, 0);
    stats_on = 1;
    return status(0, 0);
}
/* Real libcufile 1.15.1 with its thread pool on (cufile.json execution.max_io_threads) faulted
 * in one of its pool threads writing the statistics' shared memory that cuFileStatsStop was
 * detaching under it (a core dump of `gdswap compare --op read`, 2 of 8 processes, session 9;
 * docs/gpu-backends.md "Open questions"). The fake cannot tell whether a pool runs, so it
 * refuses the call while the driver is open: gdswap leaves the statistics on instead. */
CUfileError_t cuFileStatsStop(void) {
    if (opens > 0) {
        fprintf(stderr, "fake cufile: cuFileStatsStop while the driver is open: libcufile's pool threads may still write the statistics it detaches (a real crash)\n");
        abort();
    }
    stats_on = 0;
    return status(0, 0);
}
CUfileError_t cuFileStatsReset(void) {
    memset(st_reads, 0, sizeof st_reads);
    memset(st_writes, 0, sizeof st_writes);
    return status(0, 0);
}
CUfileError_t cuFileGetStatsL1(void *s) {
    if (!s || stats_level < 1) return status(CU_FILE_INVALID_VALUE, 0);
    memset(s, 0, 624);
    return status(0, 0);
}
CUfileError_t cuFileGetStatsL2(void *s) {
    if (!s || stats_level < 2) return status(CU_FILE_INVALID_VALUE, 0);
    memset(s, 0, 1136);
    return status(0, 0);
}
CUfileError_t cuFileGetStatsL3(void *s) {
    if (!s || stats_level < 3 || knob(K_STATS_FAIL, 0)) return status(CU_FILE_INVALID_VALUE, 0);
    /* 1.15-1.18's level 1 is 112 bytes shorter: level 3 is 5000 bytes, num_gpus at 1024; 1.19
     * already has 1.20's layout (the wheels' headers: 1.19.0.109 and 1.19.1.55). */
    size_t shift = knob(K_VERSION, 1200) < 1190 ? 112 : 0;
    unsigned char *b = s;
    memset(b, 0, 5112 - shift);
    unsigned one = 1;
    memcpy(b + 1136 - shift, &one, sizeof one);
    uint64_t g[29] = {0};
    g[4] = st_reads[0] + st_reads[1] + st_reads[2];
    g[5] = st_reads[2];
    g[6] = st_reads[1];
    g[7] = st_reads[0];
    g[17] = st_writes[0] + st_writes[1] + st_writes[2];
    g[18] = st_writes[2];
    g[19] = st_writes[1];
    g[20] = st_writes[0];
    memcpy(b + 1144 - shift + 16, g, sizeof g);
    return status(0, 0);
}
#endif
#endif
