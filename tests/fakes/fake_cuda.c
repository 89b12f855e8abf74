/*
 * A fake libcuda for gdswap's tests: exactly the CUDA driver API subset gdswap calls (plus
 * cuGetErrorString), implemented over host memory, so the bounce backend runs end to end on
 * machines without a GPU. Built by the tests themselves (tests/common/cuda.rs) with
 * `cc -shared -fPIC -O2 -pthread -Wl,-soname,libcuda.so.1`, never shipped.
 *
 * Faithful where a bug in gdswap would otherwise hide:
 * - device addresses are not host addresses: allocations get addresses in a non-canonical
 *   range (0xdead...), mapped through a table to host memory, so a device pointer used as a
 *   host pointer faults, and a host pointer passed as a device pointer is refused;
 * - async copies must use host memory registered with cuMemHostRegister (gdswap promises
 *   pinned chunks), inside an allocation, with the context current on the calling thread;
 * - copies are asynchronous: one worker thread per stream runs them in order, at a bandwidth
 *   set by FAKE_CUDA_COPY_GBPS (GB/s, default unlimited), and events complete when the
 *   stream's worker reaches them, with timestamps for cuEventElapsedTime;
 * - errors are sticky per stream, reported by the next query/synchronize, like real
 *   asynchronous errors.
 *
 * Fault injection (read at cuInit):
 *   FAKE_CUDA_NO_DEVICE=1            cuInit fails with CUDA_ERROR_NO_DEVICE
 *   FAKE_CUDA_DEVICES=N              number of devices (default 1)
 * Built with -DFAKE_CUDA_NO_DEVICE_INFO: no cuDeviceTotalMem_v2 nor cuDeviceGetPCIBusId.
 *   FAKE_CUDA_FAIL_CTX=1             cuDevicePrimaryCtxRetain fails (context creation)
 *   FAKE_CUDA_FAIL_ALLOC=1           cuMemAlloc fails with CUDA_ERROR_OUT_OF_MEMORY (another
 *                                    value: fails with that code, e.g. one no driver knows)
 *   FAKE_CUDA_FAIL_COPY_AFTER_BYTES=N  the copy that would take the process past N copied
 *                                    bytes copies only up to N, then fails its stream with
 *                                    CUDA_ERROR_ILLEGAL_ADDRESS
 *   FAKE_CUDA_FLIP_DEVICE_BYTE=N     after every host-to-device copy that covers byte N of an
 *                                    allocation, that byte is inverted (planted corruption)
 * For benchmarks only:
 *   FAKE_CUDA_COPY_NO_DATA=1         copies take their time (FAKE_CUDA_COPY_GBPS) but move no
 *                                    bytes: the CPU and memory bandwidth a memcpy would take
 *                                    from the I/O path, and a GPU's DMA engine would not, are
 *                                    left out (device data is then wrong: no --verify)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_NO_DEVICE = 100,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_READY = 600,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712,
    CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED = 713,
};

#define EXPORT __attribute__((visibility("default")))
#define DEV_BASE 0xdead000000000000ULL
#define MAX_ALLOCS 4096
#define MAX_REGS 4096
#define MAX_DEVICES 16

/* ---- configuration ---- */
static int initialized;
static int cfg_devices = 1;
static int cfg_fail_ctx, cfg_fail_alloc;
static double cfg_gbps; /* 0: unlimited */
static long long cfg_fail_after = -1;
static long long cfg_flip = -1;
static int cfg_no_data; /* benchmarks only: copies take their time but move no bytes */
static long long copied_total; /* under mem_lock */

static long long env_ll(const char *name, long long dflt) {
    const char *v = getenv(name);
    return (v && *v) ? strtoll(v, NULL, 0) : dflt;
}

/* Misuse by the caller (a bug in gdswap) is also said on stderr, so a test sees why. */
static void complain(const char *what) { fprintf(stderr, "fake libcuda: %s\n", what); }

/* ---- contexts ---- */
struct ctx { int device; int refs; };
static struct ctx contexts[MAX_DEVICES];
static __thread struct ctx *current;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

#define NEED_INIT() do { if (!initialized) return CUDA_ERROR_NOT_INITIALIZED; } while (0)
#define NEED_CTX() do { NEED_INIT(); if (!current || current->refs <= 0) return CUDA_ERROR_INVALID_CONTEXT; } while (0)

/* ---- device memory and registered host memory ---- */
struct alloc { CUdeviceptr base; size_t size; unsigned char *host; };
static struct alloc allocs[MAX_ALLOCS];
struct reg { unsigned char *p; size_t len; };
static struct reg regs[MAX_REGS];
static CUdeviceptr next_dev = DEV_BASE;
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;

/* The allocation holding [d, d+len), or NULL. Caller holds mem_lock. */
static struct alloc *find_alloc(CUdeviceptr d, size_t len) {
    for (int i = 0; i < MAX_ALLOCS; i++) {
        struct alloc *a = &allocs[i];
        if (a->host && d >= a->base && d - a->base <= a->size && len <= a->size - (d - a->base))
            return a;
    }
    return NULL;
}

static int is_registered(const void *p, size_t len) {
    const unsigned char *c = p;
    for (int i = 0; i < MAX_REGS; i++)
        if (regs[i].p && c >= regs[i].p && c + len <= regs[i].p + regs[i].len) return 1;
    return 0;
}

/* ---- events and streams ---- */
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

struct event {
    unsigned long recorded, reached; /* record count, and the last record the stream reached */
    double time;
    CUresult error;
};

enum op_kind { OP_COPY, OP_EVENT, OP_HOSTFN, OP_STOP };
struct op {
    enum op_kind kind;
    void (*fn)(void *); /* OP_HOSTFN */
    void *arg;
    unsigned char *dst;
    const unsigned char *src;
    size_t len;
    unsigned char *flip; /* byte to invert after the copy, or NULL */
    int memset_value; /* with src NULL: the byte the destination is set to */
    struct event *ev;
    unsigned long ev_seq;
    struct op *next;
};

struct stream {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct op *head, *tail;
    unsigned long queued, done;
    CUresult error; /* sticky */
};

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;

static void run_copy(struct stream *s, struct op *o) {
    double t0 = now_s();
    size_t n = o->len;
    int fail = 0;
    pthread_mutex_lock(&mem_lock);
    if (cfg_fail_after >= 0 && copied_total + (long long)n > cfg_fail_after) {
        n = copied_total < cfg_fail_after ? (size_t)(cfg_fail_after - copied_total) : 0;
        fail = 1;
    }
    copied_total += n;
    pthread_mutex_unlock(&mem_lock);
    if (!cfg_no_data) {
        if (o->src) memmove(o->dst, o->src, n);
        else memset(o->dst, o->memset_value, n);
    }
    if (fail) {
        pthread_mutex_lock(&s->lock);
        s->error = CUDA_ERROR_ILLEGAL_ADDRESS;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (o->flip) *o->flip ^= 0xff;
    if (cfg_gbps > 0) {
        double left = n / (cfg_gbps * 1e9) - (now_s() - t0);
        if (left > 0) {
            struct timespec ts = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        }
    }
}

static void *stream_worker(void *arg) {
    struct stream *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->head) pthread_cond_wait(&s->cond, &s->lock);
        struct op *o = s->head;
        s->head = o->next;
        if (!s->head) s->tail = NULL;
        CUresult err = s->error;
        pthread_mutex_unlock(&s->lock);

        if (o->kind == OP_STOP) { free(o); return NULL; }
        if (o->kind == OP_COPY && err == CUDA_SUCCESS) run_copy(s, o);
        if (o->kind == OP_HOSTFN && err == CUDA_SUCCESS) o->fn(o->arg);
        if (o->kind == OP_EVENT) {
            pthread_mutex_lock(&s->lock);
            err = s->error;
            pthread_mutex_unlock(&s->lock);
            pthread_mutex_lock(&ev_lock);
            if (o->ev_seq > o->ev->reached) {
                o->ev->reached = o->ev_seq;
                o->ev->time = now_s();
                o->ev->error = err;
            }
            pthread_cond_broadcast(&ev_cond);
            pthread_mutex_unlock(&ev_lock);
        }
        free(o);
        pthread_mutex_lock(&s->lock);
        s->done++;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
}

static CUresult enqueue(struct stream *s, struct op *o) {
    pthread_mutex_lock(&s->lock);
    o->next = NULL;
    if (s->tail) s->tail->next = o; else s->head = o;
    s->tail = o;
    s->queued++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return CUDA_SUCCESS;
}

/* ---- the API ---- */
/* The codes the fake knows, with the real driver's names and descriptions; any other code
 * (FAKE_CUDA_FAIL_ALLOC=54321, say) is unknown to it, as a newer driver's code would be. */
static const struct { CUresult code; const char *name, *text; } codes[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED", "part or all of the requested memory range is already mapped"},
    {CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED", "pointer does not correspond to a registered memory region"},
};

static CUresult describe(CUresult e, const char **s, int name) {
    if (!s) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i].code == e) {
            *s = name ? codes[i].name : codes[i].text;
            return CUDA_SUCCESS;
        }
    *s = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuGetErrorString(CUresult e, const char **s) { return describe(e, s, 0); }
EXPORT CUresult cuGetErrorName(CUresult e, const char **s) { return describe(e, s, 1); }

EXPORT CUresult cuInit(unsigned flags) {
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    if (env_ll("FAKE_CUDA_NO_DEVICE", 0)) return CUDA_ERROR_NO_DEVICE;
    cfg_devices = (int)env_ll("FAKE_CUDA_DEVICES", 1);
    if (cfg_devices < 0 || cfg_devices > MAX_DEVICES) cfg_devices = 1;
    cfg_fail_ctx = (int)env_ll("FAKE_CUDA_FAIL_CTX", 0);
    cfg_fail_alloc = (int)env_ll("FAKE_CUDA_FAIL_ALLOC", 0);
    cfg_fail_after = env_ll("FAKE_CUDA_FAIL_COPY_AFTER_BYTES", -1);
    cfg_flip = env_ll("FAKE_CUDA_FLIP_DEVICE_BYTE", -1);
    cfg_no_data = (int)env_ll("FAKE_CUDA_COPY_NO_DATA", 0);
    const char *g = getenv("FAKE_CUDA_COPY_GBPS");
    cfg_gbps = g ? atof(g) : 0;
    initialized = 1;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDriverGetVersion(int *v) {
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    *v = 12080;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetCount(int *n) {
    NEED_INIT();
    if (!n) return CUDA_ERROR_INVALID_VALUE;
    *n = cfg_devices;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice *d, int ordinal) {
    NEED_INIT();
    if (!d) return CUDA_ERROR_INVALID_VALUE;
    if (ordinal < 0 || ordinal >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    *d = ordinal;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    NEED_INIT();
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (d < 0 || d >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    snprintf(name, (size_t)len, "Fake CUDA device %d (gdswap tests)", d);
    return CUDA_SUCCESS;
}

/* Optional (gdswap check's GPU list only); built without them when FAKE_CUDA_NO_DEVICE_INFO is
 * defined, to stand for a libcuda that lacks them. Device d: 80 GiB, PCI bus 0x18 + 0x11 * d. */
#ifndef FAKE_CUDA_NO_DEVICE_INFO
EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) {
    NEED_INIT();
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    if (d < 0 || d >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = (size_t)80 << 30;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d) {
    NEED_INIT();
    if (!id || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (d < 0 || d >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    snprintf(id, (size_t)len, "0000:%02X:00.0", 0x18 + 0x11 * d);
    return CUDA_SUCCESS;
}
#endif

EXPORT CUresult cuDevicePrimaryCtxRetain(void **pctx, CUdevice d) {
    NEED_INIT();
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    if (d < 0 || d >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    if (cfg_fail_ctx) return CUDA_ERROR_OUT_OF_MEMORY; /* injected: context creation fails */
    pthread_mutex_lock(&ctx_lock);
    contexts[d].device = d;
    contexts[d].refs++;
    pthread_mutex_unlock(&ctx_lock);
    *pctx = &contexts[d];
    return CUDA_SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    NEED_INIT();
    if (d < 0 || d >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&ctx_lock);
    CUresult r = contexts[d].refs > 0 ? (contexts[d].refs--, CUDA_SUCCESS) : CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_unlock(&ctx_lock);
    return r;
}

EXPORT CUresult cuCtxSetCurrent(void *c) {
    NEED_INIT();
    struct ctx *x = c;
    if (x && (x < contexts || x >= contexts + MAX_DEVICES || x->refs <= 0)) return CUDA_ERROR_INVALID_CONTEXT;
    current = x;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size) {
    NEED_CTX();
    if (!dptr || size == 0) return CUDA_ERROR_INVALID_VALUE;
    /* injected: 1 = out of memory, any other value is returned as the code */
    if (cfg_fail_alloc) return cfg_fail_alloc == 1 ? CUDA_ERROR_OUT_OF_MEMORY : cfg_fail_alloc;
    void *host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (host == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < MAX_ALLOCS; i++) {
        if (!allocs[i].host) {
            allocs[i].base = next_dev;
            allocs[i].size = size;
            allocs[i].host = host;
            /* 2 MiB-aligned, with a guard gap, so an overrun is not another allocation. */
            next_dev += ((size + (2u << 20) - 1) & ~((2ull << 20) - 1)) + (2u << 20);
            *dptr = allocs[i].base;
            pthread_mutex_unlock(&mem_lock);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&mem_lock);
    munmap(host, size);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr d) {
    NEED_CTX();
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < MAX_ALLOCS; i++) {
        if (allocs[i].host && allocs[i].base == d) {
            munmap(allocs[i].host, allocs[i].size);
            allocs[i].host = NULL;
            pthread_mutex_unlock(&mem_lock);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&mem_lock);
    return CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMemHostRegister_v2(void *p, size_t size, unsigned flags) {
    (void)flags;
    NEED_CTX();
    if (!p || size == 0) return CUDA_ERROR_INVALID_VALUE;
    if ((uintptr_t)p >= DEV_BASE) { complain("cuMemHostRegister of a device address"); return CUDA_ERROR_INVALID_VALUE; }
    pthread_mutex_lock(&mem_lock);
    unsigned char *c = p;
    for (int i = 0; i < MAX_REGS; i++) {
        if (regs[i].p && c < regs[i].p + regs[i].len && regs[i].p < c + size) {
            pthread_mutex_unlock(&mem_lock);
            return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
        }
    }
    if (mlock(p, size) != 0) { /* pinning is real: RLIMIT_MEMLOCK applies */
        pthread_mutex_unlock(&mem_lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < MAX_REGS; i++) {
        if (!regs[i].p) {
            regs[i].p = c;
            regs[i].len = size;
            pthread_mutex_unlock(&mem_lock);
            return CUDA_SUCCESS;
        }
    }
    munlock(p, size);
    pthread_mutex_unlock(&mem_lock);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

EXPORT CUresult cuMemHostUnregister(void *p) {
    NEED_CTX();
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < MAX_REGS; i++) {
        if (regs[i].p && regs[i].p == p) {
            munlock(regs[i].p, regs[i].len);
            regs[i].p = NULL;
            pthread_mutex_unlock(&mem_lock);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&mem_lock);
    return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

EXPORT CUresult cuStreamCreate(void **ps, unsigned flags) {
    (void)flags;
    NEED_CTX();
    if (!ps) return CUDA_ERROR_INVALID_VALUE;
    struct stream *s = calloc(1, sizeof *s);
    if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    if (pthread_create(&s->thread, NULL, stream_worker, s) != 0) { free(s); return CUDA_ERROR_OUT_OF_MEMORY; }
    *ps = s;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamSynchronize(void *p) {
    NEED_CTX();
    struct stream *s = p;
    if (!s) return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&s->lock);
    while (s->done < s->queued) pthread_cond_wait(&s->cond, &s->lock);
    CUresult r = s->error;
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* For the fake libcufile: whether a context is current on the calling thread (the real
 * cuFileDriverOpen fails with CUDA_ERROR_INVALID_CONTEXT without one, as cudf found). */
EXPORT int fake_cuda_context_current(void) { return current && current->refs > 0; }

/* Set by the fake libcufile: whether it still has a stream registered (cuFileStreamRegister).
 * Destroying such a stream leaves cuFile's per-stream state dangling: the fake aborts. */
static int (*cufile_stream_guard)(void *);
EXPORT void fake_cuda_set_stream_guard(int (*guard)(void *)) { cufile_stream_guard = guard; }

EXPORT CUresult cuStreamDestroy_v2(void *p) {
    NEED_CTX();
    struct stream *s = p;
    if (!s) return CUDA_ERROR_INVALID_HANDLE;
    if (cufile_stream_guard && cufile_stream_guard(s)) {
        complain("cuStreamDestroy of a stream still registered with cuFile (cuFileStreamDeregister it first)");
        abort();
    }
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    o->kind = OP_STOP;
    enqueue(s, o);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
    return CUDA_SUCCESS;
}

static CUresult copy_async(unsigned char *host, CUdeviceptr d, size_t len, void *stream, int to_device) {
    NEED_CTX();
    struct stream *s = stream;
    if (!s) return CUDA_ERROR_INVALID_HANDLE;
    if (!host || len == 0) return CUDA_ERROR_INVALID_VALUE;
    if ((uintptr_t)host >= DEV_BASE) { complain("async copy with a device address as its host side"); return CUDA_ERROR_INVALID_VALUE; }
    pthread_mutex_lock(&mem_lock);
    struct alloc *a = find_alloc(d, len);
    int pinned = is_registered(host, len);
    unsigned char *dev = a ? a->host + (d - a->base) : NULL;
    unsigned char *flip = NULL;
    if (a && to_device && cfg_flip >= 0) {
        unsigned long long off = d - a->base;
        if ((unsigned long long)cfg_flip >= off && (unsigned long long)cfg_flip < off + len && (size_t)cfg_flip < a->size)
            flip = a->host + cfg_flip;
    }
    pthread_mutex_unlock(&mem_lock);
    if (!a) { complain("async copy outside any device allocation"); return CUDA_ERROR_INVALID_VALUE; }
    if (!pinned) { complain("async copy with unregistered (pageable) host memory"); return CUDA_ERROR_INVALID_VALUE; }
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    o->kind = OP_COPY;
    o->dst = to_device ? dev : host;
    o->src = to_device ? host : dev;
    o->len = len;
    o->flip = flip;
    return enqueue(s, o);
}

EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t len, void *stream) {
    return copy_async((unsigned char *)h, d, len, stream, 1);
}

EXPORT CUresult cuMemcpyDtoHAsync_v2(void *h, CUdeviceptr d, size_t len, void *stream) {
    return copy_async(h, d, len, stream, 0);
}

/* Device-to-device copies and memsets run on the stream like the other copies (and count
 * against FAKE_CUDA_FAIL_COPY_AFTER_BYTES). */
EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t len, void *stream) {
    NEED_CTX();
    struct stream *s = stream;
    if (!s) return CUDA_ERROR_INVALID_HANDLE;
    if (len == 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mem_lock);
    struct alloc *d = find_alloc(dst, len), *a = find_alloc(src, len);
    unsigned char *dp = d ? d->host + (dst - d->base) : NULL;
    unsigned char *sp = a ? a->host + (src - a->base) : NULL;
    pthread_mutex_unlock(&mem_lock);
    if (!d || !a) { complain("device-to-device copy outside any device allocation"); return CUDA_ERROR_INVALID_VALUE; }
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    o->kind = OP_COPY;
    o->dst = dp;
    o->src = sp;
    o->len = len;
    return enqueue(s, o);
}

EXPORT CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t len, void *stream) {
    NEED_CTX();
    struct stream *s = stream;
    if (!s) return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&mem_lock);
    struct alloc *d = find_alloc(dst, len);
    unsigned char *dp = d ? d->host + (dst - d->base) : NULL;
    pthread_mutex_unlock(&mem_lock);
    if (!d) { complain("memset outside any device allocation"); return CUDA_ERROR_INVALID_VALUE; }
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    o->kind = OP_COPY;
    o->dst = dp;
    o->src = NULL;
    o->memset_value = value;
    o->len = len;
    return enqueue(s, o);
}

EXPORT CUresult cuEventCreate(void **pe, unsigned flags) {
    (void)flags;
    NEED_CTX();
    if (!pe) return CUDA_ERROR_INVALID_VALUE;
    struct event *e = calloc(1, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    *pe = e;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuEventRecord(void *pe, void *ps) {
    NEED_CTX();
    struct event *e = pe;
    struct stream *s = ps;
    if (!e || !s) return CUDA_ERROR_INVALID_HANDLE;
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&ev_lock);
    o->ev_seq = ++e->recorded;
    pthread_mutex_unlock(&ev_lock);
    o->kind = OP_EVENT;
    o->ev = e;
    return enqueue(s, o);
}

EXPORT CUresult cuEventQuery(void *pe) {
    NEED_CTX();
    struct event *e = pe;
    if (!e) return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&ev_lock);
    CUresult r = e->reached < e->recorded ? CUDA_ERROR_NOT_READY : e->error;
    pthread_mutex_unlock(&ev_lock);
    return r;
}

EXPORT CUresult cuEventSynchronize(void *pe) {
    NEED_CTX();
    struct event *e = pe;
    if (!e) return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&ev_lock);
    while (e->reached < e->recorded) pthread_cond_wait(&ev_cond, &ev_lock);
    CUresult r = e->error;
    pthread_mutex_unlock(&ev_lock);
    return r;
}

EXPORT CUresult cuEventElapsedTime(float *ms, void *start, void *end) {
    NEED_CTX();
    struct event *a = start, *b = end;
    if (!ms) return CUDA_ERROR_INVALID_VALUE;
    if (!a || !b) return CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&ev_lock);
    CUresult r = CUDA_SUCCESS;
    if (a->reached < a->recorded || b->reached < b->recorded) r = CUDA_ERROR_NOT_READY;
    else if (!a->recorded || !b->recorded) r = CUDA_ERROR_INVALID_HANDLE;
    else *ms = (float)((b->time - a->time) * 1e3);
    pthread_mutex_unlock(&ev_lock);
    return r;
}

EXPORT CUresult cuEventDestroy_v2(void *pe) {
    NEED_CTX();
    struct event *e = pe;
    if (!e) return CUDA_ERROR_INVALID_HANDLE;
    /* Wait until the stream has passed it, so its worker never touches freed memory. */
    pthread_mutex_lock(&ev_lock);
    while (e->reached < e->recorded) pthread_cond_wait(&ev_cond, &ev_lock);
    pthread_mutex_unlock(&ev_lock);
    free(e);
    return CUDA_SUCCESS;
}

/* ---- for the fake libcufile (tests/cufile_fake/fake_cufile.c), which finds these with
 * dlopen("libcuda.so.1", RTLD_NOLOAD) + dlsym: no real driver has them ---- */

/* The host memory behind device range [d, d+len), or NULL when it is not inside one
 * allocation (a host pointer, a freed or overrun range). */
EXPORT void *fake_cuda_device_host(CUdeviceptr d, size_t len) {
    pthread_mutex_lock(&mem_lock);
    struct alloc *a = find_alloc(d, len);
    void *h = a ? a->host + (d - a->base) : NULL;
    pthread_mutex_unlock(&mem_lock);
    return h;
}

/* Queues fn(arg) on a stream, run in order with its copies by the stream's worker (what
 * cuLaunchHostFunc does): the fake's cuFileReadAsync/WriteAsync run their I/O this way, so
 * their arguments are read when the stream gets there, as the real ones are. */
EXPORT CUresult fake_cuda_stream_host_fn(void *stream, void (*fn)(void *), void *arg) {
    struct stream *s = stream;
    if (!s || !fn) return CUDA_ERROR_INVALID_HANDLE;
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    o->kind = OP_HOSTFN;
    o->fn = fn;
    o->arg = arg;
    return enqueue(s, o);
}
