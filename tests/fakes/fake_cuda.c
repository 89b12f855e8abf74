/*
 * A fake libcuda for gdswap's tests: the CUDA driver API subset gdswap calls (plus
 * cuGetErrorString), and the one NVIDIA's real libcufile needs to run its compat mode,
 * implemented over host memory, so the bounce backend, and the gds backend through the real
 * libcufile (tests/cufile_real_io.rs), run end to end on machines without a GPU. Built by the
 * tests themselves (tests/common/cuda.rs) with
 * `cc -shared -fPIC -O2 -pthread -Wl,-soname,libcuda.so.1`, never shipped.
 *
 * It is as strict as the real driver wherever we know the real driver's rule. Each rule, and
 * where it comes from ("docs" = the CUDA Driver API reference, docs.nvidia.com/cuda/
 * cuda-driver-api, the function's own page unless named; "guide" = the CUDA C++ Programming
 * Guide; "open modules" = NVIDIA's open GPU kernel modules, github.com/NVIDIA/open-gpu-kernel-
 * modules):
 *
 * Devices (docs, "Device Management")
 * - cuDeviceGet takes an ordinal in [0, cuDeviceGetCount): any other (negative, or past the
 *   count, FAKE_CUDA_DEVICES here) is CUDA_ERROR_INVALID_DEVICE (101), as the driver returns
 *   for "invalid device ordinal"; every per-device query checks its device the same way.
 *
 * Contexts (docs, "Context Management" and "Primary Context Management")
 * - The current context is per thread, a stack: cuCtxPushCurrent pushes, cuCtxPopCurrent pops
 *   (CUDA_ERROR_INVALID_CONTEXT on an empty stack), cuCtxSetCurrent replaces the top (pushes
 *   onto an empty stack; NULL pops), cuCtxGetCurrent returns the top or NULL.
 * - Every call that works in "the current context" (allocation, free, host registration,
 *   streams, events, copies, memsets, synchronisation) fails with CUDA_ERROR_INVALID_CONTEXT
 *   (201) on a thread with no current context, or whose current primary context has been
 *   released by every retainer (cuDevicePrimaryCtxRelease: "the context is automatically reset
 *   once the last reference to it is released"). Retained again after that, it is a new
 *   context: fake_cuda_context_id/fake_cuda_context_alive let the fake libcufile tell, which
 *   aborts when it is used after the context it opened in was destroyed.
 * - A stream or event belongs to the context it was created in; using it while another context
 *   is current is CUDA_ERROR_INVALID_HANDLE (400) (the driver's "invalid resource handle" for a
 *   stream of another device), except the event argument of cuStreamWaitEvent, which docs
 *   allow from another context. Destroyed handles are refused with CUDA_ERROR_INVALID_HANDLE.
 *
 * Memory
 * - cuMemAlloc: "The allocated memory is suitably aligned for any kind of variable": the
 *   documented guarantee is 256 bytes (guide, "Device Memory Accesses": cudaMalloc/cuMemAlloc
 *   addresses are at least 256-byte aligned), and this fake gives exactly that and no more:
 *   every address is 256 modulo 4096 (never 512-, 4 KiB-, 64 KiB- or 2 MiB-aligned), so code
 *   assuming more breaks here. Addresses are in a non-canonical range (0xdead...) mapped to
 *   host memory through a table, so a device pointer used as a host pointer faults and a host
 *   pointer passed as a device pointer is refused.
 * - cuMemHostRegister: flags are a combination of CU_MEMHOSTREGISTER_PORTABLE (1),
 *   DEVICEMAP (2), IOMEMORY (4) and READ_ONLY (8); anything else is CUDA_ERROR_INVALID_VALUE
 *   (docs). Overlapping an existing registration is CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
 *   unregistering a pointer that is not a registration's base is
 *   CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED (docs). The pages are NOT charged to RLIMIT_MEMLOCK:
 *   the NVIDIA driver pins them with get_user_pages/pin_user_pages without locked_vm
 *   accounting (open modules, os_lock_user_pages), so this fake does not mlock them either.
 * - cuPointerGetAttribute (docs; "Unified Addressing"): a pointer inside a live device
 *   allocation answers CU_POINTER_ATTRIBUTE_MEMORY_TYPE (CU_MEMORYTYPE_DEVICE, 2),
 *   IS_MANAGED (0), DEVICE_ORDINAL (the device whose context was current at cuMemAlloc),
 *   RANGE_START_ADDR and RANGE_SIZE (the allocation's base and size); one inside registered
 *   host memory answers MEMORY_TYPE (CU_MEMORYTYPE_HOST, 1) and IS_MANAGED (0); any other
 *   pointer (never allocated, freed, one past an allocation's end, a plain host pointer) is
 *   CUDA_ERROR_INVALID_VALUE ("If ptr was not allocated by, mapped by, or registered with a
 *   CUcontext which uses unified virtual addressing then CUDA_ERROR_INVALID_VALUE is
 *   returned"), and so is a NULL data pointer. Attributes this fake does not model are
 *   refused with CUDA_ERROR_INVALID_VALUE and said on stderr. Needs a current context.
 * - Async copies need host memory registered (pinned) and device ranges inside one live
 *   allocation (gdswap promises pinned chunks; an overrun is an illegal address on a GPU).
 *
 * Streams and events (docs, "Stream Management", "Event Management"; guide, "Default Stream"
 * and "Implicit Synchronization")
 * - cuStreamCreate flags: CU_STREAM_DEFAULT (0) or CU_STREAM_NON_BLOCKING (1); others are
 *   CUDA_ERROR_INVALID_VALUE. cuEventCreate flags: a combination of CU_EVENT_BLOCKING_SYNC (1),
 *   CU_EVENT_DISABLE_TIMING (2), CU_EVENT_INTERPROCESS (4, only together with
 *   DISABLE_TIMING); others are CUDA_ERROR_INVALID_VALUE. cuStreamWaitEvent flags: 0
 *   (CU_EVENT_WAIT_DEFAULT); cuInit flags: 0.
 * - A stream runs its operations one after another, in the order they were queued (one
 *   worker thread per stream here).
 * - The NULL stream and CU_STREAM_LEGACY (0x1) are the context's legacy default stream: an
 *   operation queued on it waits for all work queued before it on every blocking stream
 *   (created without CU_STREAM_NON_BLOCKING) of the context, and an operation queued on a
 *   blocking stream waits for the work queued before it on the legacy stream. Non-blocking
 *   streams never synchronise with it. (CU_STREAM_PER_THREAD is not modelled: refused.)
 * - cuStreamWaitEvent makes later work on the stream wait for the event's most recent record
 *   at the time of the call; an event never recorded is complete.
 * - Events complete when their stream reaches them, with timestamps for cuEventElapsedTime;
 *   an event that has been recorded but not reached is CUDA_ERROR_NOT_READY.
 * - Errors of asynchronous work are sticky per stream, reported by the next query or
 *   synchronize (as real asynchronous errors are).
 * - Waiting: the primary context's default scheduling (CU_CTX_SCHED_AUTO) spins while the
 *   process has no more active contexts than CPUs (docs, cuCtxCreate), so cuStreamSynchronize
 *   and cuEventSynchronize on an event without CU_EVENT_BLOCKING_SYNC busy-wait here, burning
 *   CPU as the real driver does; an event created with CU_EVENT_BLOCKING_SYNC blocks the
 *   thread ("the calling thread will block until the event has actually been completed").
 * - Copies and memsets are asynchronous and, when throttled (FAKE_CUDA_COPY_GBPS), move their
 *   bytes progressively, so work racing with one still running sees it half done.
 * - Copy engines (guide, "Asynchronous Concurrent Execution", asyncEngineCount): by default
 *   copies of different streams run at the same time, as with many engines. With
 *   FAKE_CUDA_COPY_ENGINES=1, host-to-device copies of all streams share one engine and run
 *   one at a time, and so do device-to-host copies (one engine per direction, asyncEngineCount
 *   2): a copy queued behind another stream's waits for the engine, and its stream's events
 *   around it span the wait, as on a real GPU.
 *
 * For NVIDIA's real libcufile (1.14.1, 1.15.1, 1.20; found by running it, cufile.log naming
 * each missing symbol or failing call): it resolves 65 driver functions when it loads
 * libcuda and refuses to initialise if any is missing ("unable to load, symbol cuMemcpyAsync",
 * "missing cuda symbols while dynamic loading"), so all of them exist here. Those its compat
 * mode calls keep the rules above (a current context, live handles of that context, pinned
 * host memory for async copies, pointers inside live allocations):
 * - cuDeviceGetAttribute: the attributes it reads (compute capability 9.0 and the rest of an
 *   H200's, PCI location as cuDeviceGetPCIBusId); any other is CUDA_ERROR_INVALID_VALUE.
 *   cuDeviceGetUuid_v2: a fixed UUID per device.
 * - cuCtxGetDevice, cuCtxGetStreamPriorityRange ([0, -5]), cuStreamCreateWithPriority.
 * - cuMemGetAddressRange_v2 (CUDA_ERROR_NOT_FOUND outside every allocation);
 *   cuPointerGetAttribute also answers CONTEXT (the allocation's primary context) and
 *   BUFFER_ID (unique for the process's life); cuPointerSetAttribute accepts SYNC_MEMOPS only.
 * - cuMemAllocHost_v2 / cuMemFreeHost: pinned host memory whose device pointer
 *   (cuMemHostGetDevicePointer_v2, flags 0) is its host pointer, as under unified addressing.
 * - cuLaunchHostFunc; cuStreamWaitValue32_v2 / cuStreamWriteValue32_v2 (stream memory
 *   operations on device or cuMemAllocHost memory; the worker polls for a wait).
 * - cuMemcpy, cuMemcpyAsync (direction from the pointers), cuMemsetD8_v2.
 * - The rest fail with CUDA_ERROR_NOT_SUPPORTED and say so on stderr (NOT_MODELLED below,
 *   with what libcufile does about each): cuCtxCreate (so libcufile skips its P2PDMA probe
 *   allocation), cuGetExportTable (so its CUDA runtime cannot start: the stream API's compat
 *   I/O, which launches a kernel, fails), the v1 stream memory operations, IPC, peer access,
 *   managed memory, dma-buf handles, cuMemHostAlloc, cuPointerGetAttributes.
 * libcufile also needs /proc/modules and udev properties of the block device, which the
 * tests give it through tests/fakes/fake_host.c.
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
 *   FAKE_CUDA_COPY_GBPS=G            copies and memsets run at G GB/s (default unlimited)
 *   FAKE_CUDA_COPY_ENGINES=1         one copy engine per direction, shared by all streams
 *                                    (default: copies of different streams run in parallel)
 * For benchmarks only:
 *   FAKE_CUDA_COPY_NO_DATA=1         copies take their time (FAKE_CUDA_COPY_GBPS) but move no
 *                                    bytes: the CPU and memory bandwidth a memcpy would take
 *                                    from the I/O path, and a GPU's DMA engine would not, are
 *                                    left out (device data is then wrong: no --verify)
 * Test hooks (no real driver has them): fake_cuda_device_host and fake_cuda_stream_host_fn
 * (for the fake libcufile), fake_cuda_live_allocations (leak checks).
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
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_NOT_READY = 600,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712,
    CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED = 713,
    CUDA_ERROR_NOT_SUPPORTED = 801,
};

/* Flags, as cuda.h defines them. */
#define CU_MEMHOSTREGISTER_ALL (0x01u | 0x02u | 0x04u | 0x08u)
#define CU_STREAM_NON_BLOCKING 0x1u
#define CU_EVENT_BLOCKING_SYNC 0x1u
#define CU_EVENT_DISABLE_TIMING 0x2u
#define CU_EVENT_INTERPROCESS 0x4u
#define CU_STREAM_LEGACY_HANDLE ((void *)0x1)
#define CU_STREAM_PER_THREAD_HANDLE ((void *)0x2)

#define EXPORT __attribute__((visibility("default")))
#define DEV_BASE 0xdead000000000000ULL
#define MAX_ALLOCS 4096
#define MAX_REGS 4096
#define MAX_DEVICES 16
#define MAX_CTX_STACK 32
/* Every device address is this far past a 2 MiB boundary: 256-aligned and no more. */
#define ALLOC_SKEW 256ULL

/* ---- configuration ---- */
static int initialized;
static int cfg_devices = 1;
static int cfg_fail_ctx, cfg_fail_alloc;
static double cfg_gbps; /* 0: unlimited */
static long long cfg_fail_after = -1;
static long long cfg_flip = -1;
static int cfg_engines; /* 1: copies of all streams share one engine per direction */
static int cfg_no_data; /* benchmarks only: copies take their time but move no bytes */
static long long copied_total; /* under mem_lock */

static long long env_ll(const char *name, long long dflt) {
    const char *v = getenv(name);
    return (v && *v) ? strtoll(v, NULL, 0) : dflt;
}

/* Misuse by the caller (a bug in gdswap) is also said on stderr, so a test sees why. */
static void complain(const char *what) { fprintf(stderr, "fake libcuda: %s\n", what); }

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct stream;

/* ---- contexts ---- */
struct ctx {
    int device;
    int refs;
    /* How many times the context was destroyed (released by its last retainer): a context
     * retained again after that is a new one, whose allocations are not the old one's. */
    long generation;
    struct stream *legacy; /* created on first use */
    struct stream *streams; /* every live stream created in it (not the legacy one) */
};
static struct ctx contexts[MAX_DEVICES];
/* ctx_lock guards contexts[] and every context's stream list; queueing work on any stream
 * takes it too, so the implicit synchronisation with the legacy stream is decided atomically. */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread struct ctx *ctx_stack[MAX_CTX_STACK];
static __thread int ctx_depth;

static struct ctx *current_ctx(void) { return ctx_depth ? ctx_stack[ctx_depth - 1] : NULL; }

static int is_context(const void *c) {
    const struct ctx *x = c;
    return x >= contexts && x < contexts + MAX_DEVICES;
}

#define NEED_INIT() do { if (!initialized) return CUDA_ERROR_NOT_INITIALIZED; } while (0)
#define NEED_CTX() do { \
        NEED_INIT(); \
        struct ctx *need_ctx_ = current_ctx(); \
        if (!need_ctx_ || need_ctx_->refs <= 0) return CUDA_ERROR_INVALID_CONTEXT; \
    } while (0)

/* ---- device memory and registered host memory ---- */
/* id: CU_POINTER_ATTRIBUTE_BUFFER_ID, unique over the process's life (never reused). */
struct alloc { CUdeviceptr base; size_t size; unsigned char *host; int device; unsigned long long id; };
static unsigned long long next_buffer_id = 1; /* under mem_lock */
static struct alloc allocs[MAX_ALLOCS];
/* Pinned host memory: cuMemHostRegister'ed (allocated == 0) or allocated by cuMemAllocHost
 * (allocated == 1: freed by cuMemFreeHost, not cuMemHostUnregister, and mapped for the
 * device at its own address, as under unified addressing). */
struct reg { unsigned char *p; size_t len; int allocated; };
static struct reg regs[MAX_REGS];

/* With mem_lock held: records pinned host memory (`allocated`: by cuMemAllocHost, else
 * registered); 0, or -1 when the table is full. */
static int reg_add_locked(unsigned char *p, size_t len, int allocated) {
    for (int i = 0; i < MAX_REGS; i++) {
        if (!regs[i].p) {
            regs[i].p = p;
            regs[i].len = len;
            regs[i].allocated = allocated;
            return 0;
        }
    }
    return -1;
}

/* With mem_lock held: forgets the record starting at `p` of that kind; its length, or 0 when
 * there is none. */
static size_t reg_remove_locked(const void *p, int allocated) {
    for (int i = 0; i < MAX_REGS; i++) {
        if (regs[i].p && regs[i].p == p && regs[i].allocated == allocated) {
            regs[i].p = NULL;
            return regs[i].len;
        }
    }
    return 0;
}
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
    unsigned flags;
    struct ctx *ctx;
    unsigned long recorded, reached; /* record count, and the last record a stream reached */
    double time;
    CUresult error;
    int refs; /* the handle (until destroyed) and every queued op naming it; under ev_lock */
    int live; /* the handle has not been destroyed */
    struct event *next_live;
};

enum op_kind { OP_COPY, OP_EVENT, OP_WAIT, OP_HOSTFN, OP_WAIT_VALUE, OP_WRITE_VALUE, OP_STOP };
struct op {
    enum op_kind kind;
    void (*fn)(void *); /* OP_HOSTFN */
    void *arg;
    unsigned char *dst;
    const unsigned char *src;
    size_t len;
    unsigned char *flip; /* byte to invert after the copy, or NULL */
    int engine; /* 0: host to device, 1: device to host, -1: on the device (DtoD, memset) */
    int memset_value; /* with src NULL: the byte the destination is set to */
    struct event *ev; /* OP_EVENT: the event recorded; OP_WAIT: the event waited for */
    unsigned long ev_seq;
    unsigned *word; /* OP_WAIT_VALUE, OP_WRITE_VALUE: the 32-bit word (host memory behind it) */
    unsigned value, cond; /* its operand, and OP_WAIT_VALUE's condition (CU_STREAM_WAIT_VALUE_*) */
    struct op *next;
};

struct stream {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct op *head, *tail;
    unsigned long queued, done;
    CUresult error; /* sticky */
    struct ctx *ctx;
    int nonblocking, legacy;
    struct stream *next; /* in its context's list */
};

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static struct event *live_events;

/* Drops one reference; frees the event with the last. Caller holds ev_lock. */
static void event_put_locked(struct event *e) {
    if (--e->refs == 0) free(e);
}

static void sleep_until(double t) {
    double left = t - now_s();
    if (left > 0) {
        struct timespec ts = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
}

/* FAKE_CUDA_COPY_ENGINES=1: one copy engine per direction, shared by every stream. */
static pthread_mutex_t engine_lock[2] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};

static void run_copy(struct stream *s, struct op *o) {
    pthread_mutex_t *engine = cfg_engines && o->engine >= 0 ? &engine_lock[o->engine] : NULL;
    if (engine) pthread_mutex_lock(engine);
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
    /* Throttled: the bytes move piece by piece at the configured rate, so anyone looking at
     * the destination meanwhile sees it half done, as with a real DMA or kernel. */
    size_t piece = cfg_gbps > 0 ? 16384 : (n ? n : 1);
    for (size_t off = 0; off < n; off += piece) {
        size_t k = n - off < piece ? n - off : piece;
        if (!cfg_no_data) {
            if (o->src) memmove(o->dst + off, o->src + off, k);
            else memset(o->dst + off, o->memset_value, k);
        }
        if (cfg_gbps > 0) sleep_until(t0 + (off + k) / (cfg_gbps * 1e9));
    }
    if (engine) pthread_mutex_unlock(engine);
    if (fail) {
        pthread_mutex_lock(&s->lock);
        s->error = CUDA_ERROR_ILLEGAL_ADDRESS;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (o->flip) *o->flip ^= 0xff;
}

/* cuStreamWaitValue32_v2's conditions (cuda.h CUstreamWaitValue_flags): the stream does not
 * go on until the word satisfies it; a GPU polls in hardware, this worker polls every 10 us. */
static int value_ready(unsigned v, unsigned value, unsigned cond) {
    switch (cond) {
    case 0: return (int)(v - value) >= 0; /* GEQ, with wrap-around */
    case 1: return v == value; /* EQ */
    case 2: return (v & value) != 0; /* AND */
    default: return ~(v | value) != 0; /* NOR */
    }
}

static void wait_value(struct op *o) {
    while (!value_ready(__atomic_load_n(o->word, __ATOMIC_SEQ_CST), o->value, o->cond)) {
        struct timespec ts = {0, 10000};
        nanosleep(&ts, NULL);
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
        if (o->kind == OP_WAIT_VALUE) wait_value(o);
        if (o->kind == OP_WRITE_VALUE && err == CUDA_SUCCESS) __atomic_store_n(o->word, o->value, __ATOMIC_SEQ_CST);
        if (o->kind == OP_WAIT) {
            pthread_mutex_lock(&ev_lock);
            while (o->ev->reached < o->ev_seq) pthread_cond_wait(&ev_cond, &ev_lock);
            event_put_locked(o->ev);
            pthread_mutex_unlock(&ev_lock);
        }
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
            event_put_locked(o->ev);
            pthread_mutex_unlock(&ev_lock);
        }
        free(o);
        pthread_mutex_lock(&s->lock);
        s->done++;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
}

/* Appends o to s. Caller holds ctx_lock (or owns s alone). */
static void push_op(struct stream *s, struct op *o) {
    pthread_mutex_lock(&s->lock);
    o->next = NULL;
    if (s->tail) s->tail->next = o; else s->head = o;
    s->tail = o;
    s->queued++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static int stream_busy(struct stream *s) {
    pthread_mutex_lock(&s->lock);
    int busy = s->done < s->queued;
    pthread_mutex_unlock(&s->lock);
    return busy;
}

/* Makes `waiter` wait for everything queued on `on` so far: an internal event recorded on
 * `on`, waited for on `waiter`. Caller holds ctx_lock. */
static CUresult order_after(struct stream *waiter, struct stream *on) {
    if (!stream_busy(on)) return CUDA_SUCCESS;
    struct event *e = calloc(1, sizeof *e);
    struct op *rec = calloc(1, sizeof *rec), *wait = calloc(1, sizeof *wait);
    if (!e || !rec || !wait) { free(e); free(rec); free(wait); return CUDA_ERROR_OUT_OF_MEMORY; }
    e->recorded = 1;
    e->refs = 2; /* the record op and the wait op */
    rec->kind = OP_EVENT;
    rec->ev = e;
    rec->ev_seq = 1;
    wait->kind = OP_WAIT;
    wait->ev = e;
    wait->ev_seq = 1;
    push_op(on, rec);
    push_op(waiter, wait);
    return CUDA_SUCCESS;
}

/* Queues o on s with the legacy default stream's implicit synchronisation. */
static CUresult enqueue(struct stream *s, struct op *o) {
    pthread_mutex_lock(&ctx_lock);
    CUresult r = CUDA_SUCCESS;
    if (s->legacy) {
        for (struct stream *b = s->ctx->streams; b && r == CUDA_SUCCESS; b = b->next)
            if (!b->nonblocking) r = order_after(s, b);
    } else if (!s->nonblocking && s->ctx->legacy) {
        r = order_after(s, s->ctx->legacy);
    }
    if (r == CUDA_SUCCESS) push_op(s, o);
    pthread_mutex_unlock(&ctx_lock);
    if (r != CUDA_SUCCESS) free(o);
    return r;
}

static struct stream *new_stream(struct ctx *c, int nonblocking, int legacy) {
    struct stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->ctx = c;
    s->nonblocking = nonblocking;
    s->legacy = legacy;
    if (pthread_create(&s->thread, NULL, stream_worker, s) != 0) { free(s); return NULL; }
    return s;
}

/* The stream a handle names for a call made in the current context: NULL and
 * CU_STREAM_LEGACY are the context's legacy stream. Sets *err when there is none. */
static struct stream *resolve_stream(void *h, CUresult *err) {
    struct ctx *c = current_ctx();
    if (h == CU_STREAM_PER_THREAD_HANDLE) {
        complain("CU_STREAM_PER_THREAD is not modelled by this fake");
        *err = CUDA_ERROR_INVALID_VALUE;
        return NULL;
    }
    pthread_mutex_lock(&ctx_lock);
    struct stream *found = NULL;
    if (h == NULL || h == CU_STREAM_LEGACY_HANDLE) {
        if (!c->legacy) c->legacy = new_stream(c, 0, 1);
        found = c->legacy;
        *err = found ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
    } else {
        *err = CUDA_ERROR_INVALID_HANDLE;
        for (int d = 0; d < MAX_DEVICES && !found; d++) {
            if (contexts[d].legacy == h) found = h;
            for (struct stream *s = contexts[d].streams; s && !found; s = s->next)
                if (s == h) found = s;
        }
        if (!found) complain("a stream handle that is not a live stream");
        else if (found->ctx != c) { complain("a stream of another context"); found = NULL; }
        else *err = CUDA_SUCCESS;
    }
    pthread_mutex_unlock(&ctx_lock);
    return found;
}

/* The live event a handle names. `any_ctx`: from any context (cuStreamWaitEvent). */
static struct event *resolve_event(void *h, int any_ctx, CUresult *err) {
    pthread_mutex_lock(&ev_lock);
    struct event *found = NULL;
    for (struct event *e = live_events; e; e = e->next_live)
        if (e == h) found = e;
    pthread_mutex_unlock(&ev_lock);
    *err = CUDA_ERROR_INVALID_HANDLE;
    if (!found) { complain("an event handle that is not a live event"); return NULL; }
    if (!any_ctx && found->ctx != current_ctx()) { complain("an event of another context"); return NULL; }
    *err = CUDA_SUCCESS;
    return found;
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
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED", "part or all of the requested memory range is already mapped"},
    {CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED", "pointer does not correspond to a registered memory region"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
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
    cfg_engines = (int)env_ll("FAKE_CUDA_COPY_ENGINES", 0);
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

/* Does not change any thread's current context (docs); a context released by its last
 * retainer is inactive (destroyed: a later retain makes a new one, generation + 1): calls made
 * with it current fail. */
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    NEED_INIT();
    if (d < 0 || d >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    pthread_mutex_lock(&ctx_lock);
    CUresult r = contexts[d].refs > 0 ? (contexts[d].refs--, CUDA_SUCCESS) : CUDA_ERROR_INVALID_CONTEXT;
    if (r == CUDA_SUCCESS && contexts[d].refs == 0) contexts[d].generation++;
    pthread_mutex_unlock(&ctx_lock);
    return r;
}

EXPORT CUresult cuCtxSetCurrent(void *c) {
    NEED_INIT();
    if (c && (!is_context(c) || ((struct ctx *)c)->refs <= 0)) return CUDA_ERROR_INVALID_CONTEXT;
    if (!c) {
        if (ctx_depth) ctx_depth--;
    } else if (ctx_depth) {
        ctx_stack[ctx_depth - 1] = c;
    } else {
        ctx_stack[ctx_depth++] = c;
    }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxGetCurrent(void **pctx) {
    NEED_INIT();
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    *pctx = current_ctx();
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPushCurrent_v2(void *c) {
    NEED_INIT();
    if (!c || !is_context(c) || ((struct ctx *)c)->refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth == MAX_CTX_STACK) { complain("context stack overflow"); return CUDA_ERROR_OUT_OF_MEMORY; }
    ctx_stack[ctx_depth++] = c;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuCtxPopCurrent_v2(void **pctx) {
    NEED_INIT();
    if (!ctx_depth) return CUDA_ERROR_INVALID_CONTEXT;
    struct ctx *c = ctx_stack[--ctx_depth];
    if (pctx) *pctx = c;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size) {
    NEED_CTX();
    if (!dptr || size == 0) return CUDA_ERROR_INVALID_VALUE;
    /* injected: 1 = out of memory, any other value is returned as the code */
    if (cfg_fail_alloc) return cfg_fail_alloc == 1 ? CUDA_ERROR_OUT_OF_MEMORY : cfg_fail_alloc;
    /* The host memory behind it keeps the device address's offset within a page, so a
     * buffer gdswap aligns on the device is aligned on the host too (the fake libcufile's
     * O_DIRECT I/O goes there, and needs the alignment real DMA would). */
    unsigned char *map = mmap(NULL, size + ALLOC_SKEW, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    unsigned char *host = map + ALLOC_SKEW;
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < MAX_ALLOCS; i++) {
        if (!allocs[i].host) {
            /* 256 bytes past a 2 MiB boundary (the documented alignment and not a byte more),
             * with a guard gap after, so an overrun is not another allocation. */
            allocs[i].base = next_dev + ALLOC_SKEW;
            allocs[i].size = size;
            allocs[i].host = host;
            allocs[i].device = current_ctx()->device;
            allocs[i].id = next_buffer_id++;
            next_dev += ((size + ALLOC_SKEW + (2u << 20) - 1) & ~((2ull << 20) - 1)) + (2u << 20);
            *dptr = allocs[i].base;
            pthread_mutex_unlock(&mem_lock);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&mem_lock);
    munmap(map, size + ALLOC_SKEW);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr d) {
    NEED_CTX();
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < MAX_ALLOCS; i++) {
        if (allocs[i].host && allocs[i].base == d) {
            munmap(allocs[i].host - ALLOC_SKEW, allocs[i].size + ALLOC_SKEW);
            allocs[i].host = NULL;
            pthread_mutex_unlock(&mem_lock);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&mem_lock);
    return CUDA_ERROR_INVALID_VALUE;
}

/* Pins without RLIMIT_MEMLOCK accounting, as the NVIDIA driver does (see the header). */
EXPORT CUresult cuMemHostRegister_v2(void *p, size_t size, unsigned flags) {
    NEED_CTX();
    if (!p || size == 0) return CUDA_ERROR_INVALID_VALUE;
    if (flags & ~CU_MEMHOSTREGISTER_ALL) { complain("cuMemHostRegister with unknown flags"); return CUDA_ERROR_INVALID_VALUE; }
    if ((uintptr_t)p >= DEV_BASE) { complain("cuMemHostRegister of a device address"); return CUDA_ERROR_INVALID_VALUE; }
    pthread_mutex_lock(&mem_lock);
    unsigned char *c = p;
    for (int i = 0; i < MAX_REGS; i++) {
        if (regs[i].p && c < regs[i].p + regs[i].len && regs[i].p < c + size) {
            pthread_mutex_unlock(&mem_lock);
            return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
        }
    }
    int full = reg_add_locked(c, size, 0);
    pthread_mutex_unlock(&mem_lock);
    return full ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

EXPORT CUresult cuMemHostUnregister(void *p) {
    NEED_CTX();
    pthread_mutex_lock(&mem_lock);
    size_t len = reg_remove_locked(p, 0);
    pthread_mutex_unlock(&mem_lock);
    return len ? CUDA_SUCCESS : CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

EXPORT CUresult cuStreamCreate(void **ps, unsigned flags) {
    NEED_CTX();
    if (!ps) return CUDA_ERROR_INVALID_VALUE;
    if (flags & ~CU_STREAM_NON_BLOCKING) { complain("cuStreamCreate with unknown flags"); return CUDA_ERROR_INVALID_VALUE; }
    struct ctx *c = current_ctx();
    struct stream *s = new_stream(c, (flags & CU_STREAM_NON_BLOCKING) != 0, 0);
    if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&ctx_lock);
    s->next = c->streams;
    c->streams = s;
    pthread_mutex_unlock(&ctx_lock);
    *ps = s;
    return CUDA_SUCCESS;
}

/* Spins (CU_CTX_SCHED_AUTO with one context: CU_CTX_SCHED_SPIN) until the work queued before
 * the call has run. */
EXPORT CUresult cuStreamSynchronize(void *p) {
    NEED_CTX();
    CUresult err;
    struct stream *s = resolve_stream(p, &err);
    if (!s) return err;
    pthread_mutex_lock(&s->lock);
    unsigned long target = s->queued;
    pthread_mutex_unlock(&s->lock);
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int done = s->done >= target;
        CUresult r = s->error;
        pthread_mutex_unlock(&s->lock);
        if (done) return r;
        cpu_relax();
    }
}

/* For the fake libcufile: whether a context is current on the calling thread (the real
 * cuFileDriverOpen fails with CUDA_ERROR_INVALID_CONTEXT without one, as cudf found). */
EXPORT int fake_cuda_context_current(void) {
    struct ctx *c = current_ctx();
    return c && c->refs > 0;
}

/* For the fake libcufile: the context current on the calling thread as an id (device and
 * generation; -1 for none), and whether the context of such an id still lives (retained, not
 * destroyed since): cuFile allocates its own resources in the context current when it opens
 * the driver, and CUDA frees every allocation of a primary context when its last retainer
 * releases it ("If there are no more references to the primary context it will be destroyed,
 * regardless of how many threads it is current to", cuDevicePrimaryCtxRelease; cuCtxDestroy:
 * "Destroys and cleans up all resources associated with the context"). */
EXPORT long fake_cuda_context_id(void) {
    struct ctx *c = current_ctx();
    if (!c || c->refs <= 0) return -1;
    pthread_mutex_lock(&ctx_lock);
    long id = c->generation * MAX_DEVICES + c->device;
    pthread_mutex_unlock(&ctx_lock);
    return id;
}
EXPORT int fake_cuda_context_alive(long id) {
    if (id < 0) return 0;
    int d = (int)(id % MAX_DEVICES);
    pthread_mutex_lock(&ctx_lock);
    int alive = contexts[d].refs > 0 && contexts[d].generation == id / MAX_DEVICES;
    pthread_mutex_unlock(&ctx_lock);
    return alive;
}

/* Set by the fake libcufile: whether it still has a stream registered (cuFileStreamRegister).
 * Destroying such a stream leaves cuFile's per-stream state dangling: the fake aborts. */
static int (*cufile_stream_guard)(void *);
EXPORT void fake_cuda_set_stream_guard(int (*guard)(void *)) { cufile_stream_guard = guard; }

EXPORT CUresult cuStreamDestroy_v2(void *p) {
    NEED_CTX();
    if (p == NULL || p == CU_STREAM_LEGACY_HANDLE) return CUDA_ERROR_INVALID_HANDLE;
    CUresult err;
    struct stream *s = resolve_stream(p, &err);
    if (!s) return err;
    if (cufile_stream_guard && cufile_stream_guard(p)) {
        complain("cuStreamDestroy of a stream still registered with cuFile (cuFileStreamDeregister it first)");
        abort();
    }
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&ctx_lock);
    for (struct stream **q = &s->ctx->streams; *q; q = &(*q)->next)
        if (*q == s) { *q = s->next; break; }
    o->kind = OP_STOP;
    push_op(s, o);
    pthread_mutex_unlock(&ctx_lock);
    /* The handle is gone now; its queued work still runs to the end (as the driver lets it). */
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
    return CUDA_SUCCESS;
}

static CUresult copy_async(unsigned char *host, CUdeviceptr d, size_t len, void *stream, int to_device) {
    NEED_CTX();
    CUresult err;
    struct stream *s = resolve_stream(stream, &err);
    if (!s) return err;
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
    o->engine = to_device ? 0 : 1;
    return enqueue(s, o);
}

EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *h, size_t len, void *stream) {
    return copy_async((unsigned char *)h, d, len, stream, 1);
}

EXPORT CUresult cuMemcpyDtoHAsync_v2(void *h, CUdeviceptr d, size_t len, void *stream) {
    return copy_async(h, d, len, stream, 0);
}

/* The synchronous copies (cuMemcpyHtoD_v2, cuMemcpyDtoH_v2: "synchronous" in the driver API's
 * memcpy behaviour notes) take pageable memory and return once the bytes have moved; as the
 * driver's, they are ordered on the legacy default stream. gdswap itself never calls them (its
 * copies are async on its own streams); bench/gpu-python-checks.py fills device memory with them. */
static CUresult copy_sync(unsigned char *host, CUdeviceptr d, size_t len, int to_device) {
    NEED_CTX();
    if (!host || len == 0) return CUDA_ERROR_INVALID_VALUE;
    if ((uintptr_t)host >= DEV_BASE) { complain("copy with a device address as its host side"); return CUDA_ERROR_INVALID_VALUE; }
    CUresult r = cuStreamSynchronize(NULL);
    if (r != CUDA_SUCCESS) return r;
    pthread_mutex_lock(&mem_lock);
    struct alloc *a = find_alloc(d, len);
    if (a) {
        unsigned char *dev = a->host + (d - a->base);
        if (to_device) memcpy(dev, host, len); else memcpy(host, dev, len);
    }
    pthread_mutex_unlock(&mem_lock);
    if (!a) { complain("copy outside any device allocation"); return CUDA_ERROR_INVALID_VALUE; }
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *h, size_t len) {
    return copy_sync((unsigned char *)h, d, len, 1);
}

EXPORT CUresult cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t len) {
    return copy_sync(h, d, len, 0);
}

/* Device-to-device copies and memsets run on the stream like the other copies (and count
 * against FAKE_CUDA_FAIL_COPY_AFTER_BYTES). */
EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t len, void *stream) {
    NEED_CTX();
    CUresult err;
    struct stream *s = resolve_stream(stream, &err);
    if (!s) return err;
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
    o->engine = -1;
    return enqueue(s, o);
}

EXPORT CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t len, void *stream) {
    NEED_CTX();
    CUresult err;
    struct stream *s = resolve_stream(stream, &err);
    if (!s) return err;
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
    o->engine = -1;
    return enqueue(s, o);
}

EXPORT CUresult cuEventCreate(void **pe, unsigned flags) {
    NEED_CTX();
    if (!pe) return CUDA_ERROR_INVALID_VALUE;
    unsigned known = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;
    if ((flags & ~known) || ((flags & CU_EVENT_INTERPROCESS) && !(flags & CU_EVENT_DISABLE_TIMING))) {
        complain("cuEventCreate with unknown or invalid flags");
        return CUDA_ERROR_INVALID_VALUE;
    }
    struct event *e = calloc(1, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    e->flags = flags;
    e->ctx = current_ctx();
    e->refs = 1;
    e->live = 1;
    pthread_mutex_lock(&ev_lock);
    e->next_live = live_events;
    live_events = e;
    pthread_mutex_unlock(&ev_lock);
    *pe = e;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuEventRecord(void *pe, void *ps) {
    NEED_CTX();
    CUresult err;
    struct event *e = resolve_event(pe, 0, &err);
    if (!e) return err;
    struct stream *s = resolve_stream(ps, &err);
    if (!s) return err;
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&ev_lock);
    o->ev_seq = ++e->recorded;
    e->refs++;
    pthread_mutex_unlock(&ev_lock);
    o->kind = OP_EVENT;
    o->ev = e;
    CUresult r = enqueue(s, o);
    if (r != CUDA_SUCCESS) {
        pthread_mutex_lock(&ev_lock);
        e->recorded--;
        event_put_locked(e);
        pthread_mutex_unlock(&ev_lock);
    }
    return r;
}

EXPORT CUresult cuStreamWaitEvent(void *ps, void *pe, unsigned flags) {
    NEED_CTX();
    if (flags != 0) { complain("cuStreamWaitEvent with unknown flags"); return CUDA_ERROR_INVALID_VALUE; }
    CUresult err;
    struct stream *s = resolve_stream(ps, &err);
    if (!s) return err;
    struct event *e = resolve_event(pe, 1, &err);
    if (!e) return err;
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&ev_lock);
    o->ev_seq = e->recorded; /* the most recent record at the time of this call */
    e->refs++;
    pthread_mutex_unlock(&ev_lock);
    o->kind = OP_WAIT;
    o->ev = e;
    CUresult r = enqueue(s, o);
    if (r != CUDA_SUCCESS) {
        pthread_mutex_lock(&ev_lock);
        event_put_locked(e);
        pthread_mutex_unlock(&ev_lock);
    }
    return r;
}

EXPORT CUresult cuEventQuery(void *pe) {
    NEED_CTX();
    CUresult r;
    struct event *e = resolve_event(pe, 0, &r);
    if (!e) return r;
    pthread_mutex_lock(&ev_lock);
    r = e->reached < e->recorded ? CUDA_ERROR_NOT_READY : e->error;
    pthread_mutex_unlock(&ev_lock);
    return r;
}

/* Blocks with CU_EVENT_BLOCKING_SYNC; spins otherwise (see the header). */
EXPORT CUresult cuEventSynchronize(void *pe) {
    NEED_CTX();
    CUresult r;
    struct event *e = resolve_event(pe, 0, &r);
    if (!e) return r;
    pthread_mutex_lock(&ev_lock);
    unsigned long target = e->recorded;
    if (e->flags & CU_EVENT_BLOCKING_SYNC) {
        while (e->reached < target) pthread_cond_wait(&ev_cond, &ev_lock);
    } else {
        while (e->reached < target) {
            pthread_mutex_unlock(&ev_lock);
            cpu_relax();
            pthread_mutex_lock(&ev_lock);
        }
    }
    r = e->error;
    pthread_mutex_unlock(&ev_lock);
    return r;
}

EXPORT CUresult cuEventElapsedTime(float *ms, void *start, void *end) {
    NEED_CTX();
    if (!ms) return CUDA_ERROR_INVALID_VALUE;
    CUresult r;
    struct event *a = resolve_event(start, 0, &r), *b = a ? resolve_event(end, 0, &r) : NULL;
    if (!a || !b) return r;
    pthread_mutex_lock(&ev_lock);
    r = CUDA_SUCCESS;
    if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING) r = CUDA_ERROR_INVALID_HANDLE;
    else if (a->reached < a->recorded || b->reached < b->recorded) r = CUDA_ERROR_NOT_READY;
    else if (!a->recorded || !b->recorded) r = CUDA_ERROR_INVALID_HANDLE;
    else *ms = (float)((b->time - a->time) * 1e3);
    pthread_mutex_unlock(&ev_lock);
    return r;
}

/* The handle is invalid at once; a recorded event not reached yet is freed once its stream
 * has passed it (docs). */
EXPORT CUresult cuEventDestroy_v2(void *pe) {
    NEED_CTX();
    CUresult r;
    struct event *e = resolve_event(pe, 0, &r);
    if (!e) return r;
    pthread_mutex_lock(&ev_lock);
    for (struct event **q = &live_events; *q; q = &(*q)->next_live)
        if (*q == e) { *q = e->next_live; break; }
    e->live = 0;
    event_put_locked(e);
    pthread_mutex_unlock(&ev_lock);
    return CUDA_SUCCESS;
}

/* ---- for NVIDIA's real libcufile (tests/cufile_real_library.rs) ---- */

/* cuDeviceGetAttribute: the attributes libcufile reads, with an H200's values (compute
 * capability 9.0) and the PCI location cuDeviceGetPCIBusId gives. Any other attribute is
 * refused with CUDA_ERROR_INVALID_VALUE and said on stderr, so a new one is seen. */
EXPORT CUresult cuDeviceGetAttribute(int *pi, int attrib, CUdevice d) {
    NEED_INIT();
    if (!pi) return CUDA_ERROR_INVALID_VALUE;
    if (d < 0 || d >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    switch (attrib) {
    case 20: *pi = 0; return CUDA_SUCCESS; /* COMPUTE_MODE: CU_COMPUTEMODE_DEFAULT */
    case 33: *pi = 0x18 + 0x11 * d; return CUDA_SUCCESS; /* PCI_BUS_ID, as cuDeviceGetPCIBusId */
    case 34: *pi = 0; return CUDA_SUCCESS; /* PCI_DEVICE_ID */
    case 50: *pi = 0; return CUDA_SUCCESS; /* PCI_DOMAIN_ID */
    case 75: *pi = 9; return CUDA_SUCCESS; /* COMPUTE_CAPABILITY_MAJOR */
    case 76: *pi = 0; return CUDA_SUCCESS; /* COMPUTE_CAPABILITY_MINOR */
    /* CAN_USE_STREAM_MEM_OPS_V1 (the deprecated v1 API): no; the v1 functions fail here (see
     * NOT_MODELLED below). The _v2 ones, which libcufile 1.15.1 calls, are modelled. */
    case 92: *pi = 0; return CUDA_SUCCESS;
    case 116: *pi = 1; return CUDA_SUCCESS; /* GPU_DIRECT_RDMA_SUPPORTED, as on an H200 */
    /* DMA_BUF_SUPPORTED: no (dma-buf export, cuMemGetHandleForAddressRange, is not modelled) */
    case 124: *pi = 0; return CUDA_SUCCESS;
    }
    fprintf(stderr, "fake libcuda: cuDeviceGetAttribute of attribute %d, not modelled\n", attrib);
    return CUDA_ERROR_INVALID_VALUE;
}

/* cuCtxGetDevice: the device of the calling thread's current context (docs); none current is
 * CUDA_ERROR_INVALID_CONTEXT. libcufile's cuFileBufRegister asks it. */
EXPORT CUresult cuCtxGetDevice(CUdevice *d) {
    NEED_CTX();
    if (!d) return CUDA_ERROR_INVALID_VALUE;
    *d = current_ctx()->device;
    return CUDA_SUCCESS;
}

/* cuMemGetAddressRange_v2: the base and size of the live allocation holding dptr (either
 * output may be NULL); a pointer in none is CUDA_ERROR_NOT_FOUND (docs). Needs a current
 * context. libcufile's cuFileBufRegister checks the buffer with it. */
EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr) {
    NEED_CTX();
    pthread_mutex_lock(&mem_lock);
    struct alloc found = {0};
    for (int i = 0; i < MAX_ALLOCS; i++) {
        struct alloc *a = &allocs[i];
        if (a->host && dptr >= a->base && dptr - a->base < a->size) { found = *a; break; }
    }
    pthread_mutex_unlock(&mem_lock);
    if (!found.host) return CUDA_ERROR_NOT_FOUND;
    if (pbase) *pbase = found.base;
    if (psize) *psize = found.size;
    return CUDA_SUCCESS;
}

/* Stream priorities (docs, cuCtxGetStreamPriorityRange and cuStreamCreateWithPriority): an
 * H100/H200 reports the range [0 (least), -5 (greatest)]; either output may be NULL. A
 * priority outside the range is clamped to it; this fake does not schedule by priority (its
 * streams run independently anyway), it only accepts the call as the driver does. */
#define STREAM_PRIORITY_LEAST 0
#define STREAM_PRIORITY_GREATEST (-5)
EXPORT CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest) {
    NEED_CTX();
    if (least) *least = STREAM_PRIORITY_LEAST;
    if (greatest) *greatest = STREAM_PRIORITY_GREATEST;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuStreamCreateWithPriority(void **ps, unsigned flags, int priority) {
    (void)priority; /* clamped to the range by the driver; not modelled beyond that */
    return cuStreamCreate(ps, flags);
}

/* cuMemAllocHost_v2 (docs): page-locked host memory, accessible to the device at the same
 * address under unified addressing ("The device pointer that may be used to access this host
 * memory from those contexts is always equal to the returned host pointer"). Here it is
 * pinned memory as cuMemHostRegister's is (async copies may use it). Needs a current
 * context. libcufile allocates its stream API's per-stream "door bell" words with it. */
EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t size) {
    NEED_CTX();
    if (!pp || size == 0) return CUDA_ERROR_INVALID_VALUE;
    unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&mem_lock);
    int full = reg_add_locked(m, size, 1);
    pthread_mutex_unlock(&mem_lock);
    if (full) {
        munmap(m, size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *pp = m;
    return CUDA_SUCCESS;
}

/* cuMemFreeHost: only the base of a cuMemAllocHost allocation (anything else, registered
 * memory included, is CUDA_ERROR_INVALID_VALUE). */
EXPORT CUresult cuMemFreeHost(void *p) {
    NEED_CTX();
    pthread_mutex_lock(&mem_lock);
    size_t len = reg_remove_locked(p, 1);
    pthread_mutex_unlock(&mem_lock);
    if (len) {
        munmap(p, len);
        return CUDA_SUCCESS;
    }
    complain("cuMemFreeHost of memory cuMemAllocHost did not return");
    return CUDA_ERROR_INVALID_VALUE;
}

/* cuMemHostGetDevicePointer_v2 (docs): Flags must be 0; for memory of cuMemAllocHost the
 * device pointer is the host pointer (unified addressing). Registered memory is refused: this
 * fake does not model CU_MEMHOSTREGISTER_DEVICEMAP mappings. */
EXPORT CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned flags) {
    NEED_CTX();
    if (!pdptr || !p || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    const unsigned char *c = p;
    int mapped = 0;
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < MAX_REGS; i++)
        if (regs[i].p && regs[i].allocated && c >= regs[i].p && c < regs[i].p + regs[i].len) mapped = 1;
    pthread_mutex_unlock(&mem_lock);
    if (!mapped) { complain("cuMemHostGetDevicePointer of memory not allocated by cuMemAllocHost"); return CUDA_ERROR_INVALID_VALUE; }
    *pdptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

/* cuLaunchHostFunc (docs): fn(userData) runs on a host thread once the work queued before it
 * on the stream has completed, and later work waits for it; the stream rules are those of
 * every stream call (current context, the stream's own context). */
EXPORT CUresult cuLaunchHostFunc(void *stream, void (*fn)(void *), void *user_data) {
    NEED_CTX();
    if (!fn) return CUDA_ERROR_INVALID_VALUE;
    CUresult err;
    struct stream *s = resolve_stream(stream, &err);
    if (!s) return err;
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    o->kind = OP_HOSTFN;
    o->fn = fn;
    o->arg = user_data;
    return enqueue(s, o);
}

/* cuPointerSetAttribute (docs): CU_POINTER_ATTRIBUTE_SYNC_MEMOPS (6) is the one attribute
 * that can be set, on device memory; every copy of this fake is already ordered as the
 * attribute asks, so it is only recorded as accepted. Anything else is
 * CUDA_ERROR_INVALID_VALUE. libcufile sets it on the buffers of batch I/O. */
EXPORT CUresult cuPointerSetAttribute(const void *value, int attribute, CUdeviceptr ptr) {
    NEED_CTX();
    if (!value || attribute != 6) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&mem_lock);
    int is_dev = 0;
    for (int i = 0; i < MAX_ALLOCS; i++)
        if (allocs[i].host && ptr >= allocs[i].base && ptr - allocs[i].base < allocs[i].size) is_dev = 1;
    pthread_mutex_unlock(&mem_lock);
    return is_dev ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* Stream memory operations (docs, "Stream Memory Operations"): the address is a device
 * pointer, in a device allocation or in cuMemAllocHost memory (whose device pointer is its
 * host pointer); a word outside both is CUDA_ERROR_INVALID_VALUE. libcufile's stream API
 * (cuFileReadAsync/WriteAsync in compat mode) makes the stream wait on a "door bell" word in
 * cuMemAllocHost memory that its POSIX threads write when the I/O is done. */
static unsigned *memop_word(CUdeviceptr addr) {
    if (addr & 3) return NULL;
    unsigned *w = NULL;
    pthread_mutex_lock(&mem_lock);
    struct alloc *a = find_alloc(addr, 4);
    if (a) w = (unsigned *)(a->host + (addr - a->base));
    for (int i = 0; i < MAX_REGS && !w; i++) {
        unsigned char *c = (unsigned char *)(uintptr_t)addr;
        if (regs[i].p && regs[i].allocated && c >= regs[i].p && c + 4 <= regs[i].p + regs[i].len) w = (unsigned *)c;
    }
    pthread_mutex_unlock(&mem_lock);
    if (!w) complain("a stream memory operation on an address that is not device memory");
    return w;
}

/* A stream memory operation (wait on or write a 32-bit word of device memory) queued on
 * `stream` behind its earlier work. */
static CUresult enqueue_value_op(void *stream, CUdeviceptr addr, enum op_kind kind, unsigned value, unsigned cond) {
    CUresult err;
    struct stream *s = resolve_stream(stream, &err);
    if (!s) return err;
    unsigned *w = memop_word(addr);
    if (!w) return CUDA_ERROR_INVALID_VALUE;
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    o->kind = kind;
    o->word = w;
    o->value = value;
    o->cond = cond;
    return enqueue(s, o);
}

#define CU_STREAM_WAIT_VALUE_FLUSH (1u << 30)
EXPORT CUresult cuStreamWaitValue32_v2(void *stream, CUdeviceptr addr, unsigned value, unsigned flags) {
    NEED_CTX();
    /* FLUSH needs CU_DEVICE_ATTRIBUTE_CAN_FLUSH_REMOTE_WRITES, which this fake does not report. */
    if (flags & CU_STREAM_WAIT_VALUE_FLUSH) return CUDA_ERROR_NOT_SUPPORTED;
    if (flags > 3) { complain("cuStreamWaitValue32 with unknown flags"); return CUDA_ERROR_INVALID_VALUE; }
    return enqueue_value_op(stream, addr, OP_WAIT_VALUE, value, flags);
}

/* Flags: CU_STREAM_WRITE_VALUE_DEFAULT (0) or NO_MEMORY_BARRIER (1); the write is ordered
 * after the stream's earlier work either way here. */
EXPORT CUresult cuStreamWriteValue32_v2(void *stream, CUdeviceptr addr, unsigned value, unsigned flags) {
    NEED_CTX();
    if (flags > 1) { complain("cuStreamWriteValue32 with unknown flags"); return CUDA_ERROR_INVALID_VALUE; }
    return enqueue_value_op(stream, addr, OP_WRITE_VALUE, value, 0);
}

/* cuMemcpy / cuMemcpyAsync (unified addressing: the direction comes from the pointers): each
 * side is a device allocation or host memory, with the rules of the explicit copies above
 * (async: host memory must be pinned); host-to-host is refused (not modelled). */
static CUresult copy_unified(CUdeviceptr dst, CUdeviceptr src, size_t len, void *stream, int async) {
    NEED_CTX();
    pthread_mutex_lock(&mem_lock);
    int dst_dev = find_alloc(dst, len) != NULL, src_dev = find_alloc(src, len) != NULL;
    pthread_mutex_unlock(&mem_lock);
    if (dst_dev && src_dev) {
        if (async) return cuMemcpyDtoDAsync_v2(dst, src, len, stream);
        CUresult r = cuMemcpyDtoDAsync_v2(dst, src, len, NULL);
        return r == CUDA_SUCCESS ? cuStreamSynchronize(NULL) : r;
    }
    if (dst_dev) {
        const void *h = (const void *)(uintptr_t)src;
        return async ? cuMemcpyHtoDAsync_v2(dst, h, len, stream) : cuMemcpyHtoD_v2(dst, h, len);
    }
    if (src_dev) {
        void *h = (void *)(uintptr_t)dst;
        return async ? cuMemcpyDtoHAsync_v2(h, src, len, stream) : cuMemcpyDtoH_v2(h, src, len);
    }
    complain("cuMemcpy between two host ranges (or outside any device allocation)");
    return CUDA_ERROR_INVALID_VALUE;
}

EXPORT CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t len) {
    return copy_unified(dst, src, len, NULL, 0);
}

EXPORT CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t len, void *stream) {
    return copy_unified(dst, src, len, stream, 1);
}

/* cuMemsetD8_v2: synchronous, ordered on the legacy default stream as the synchronous copies. */
EXPORT CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t len) {
    CUresult r = cuMemsetD8Async(dst, value, len, NULL);
    return r == CUDA_SUCCESS ? cuStreamSynchronize(NULL) : r;
}

/* Driver functions libcufile resolves when it loads libcuda (all of them, or it refuses to
 * initialise: "missing cuda symbols while dynamic loading") but that this fake does not
 * model. Each fails with CUDA_ERROR_NOT_SUPPORTED, the driver's code for an operation the
 * platform does not support, and says so on stderr. What libcufile 1.14-1.20 does with that,
 * seen in cufile.log with the tests' real-library runs:
 * - cuCtxCreate_v2: libcufile creates a context per GPU to allocate a buffer for its PCI
 *   P2PDMA probe; it logs "cuCtxCreate failed for GPU: 0" and goes on without P2PDMA (a real
 *   driver would create the context: this fake has primary contexts only).
 * - cuGetExportTable: the driver's private interface for the CUDA runtime that libcufile
 *   links statically; the runtime cannot start, so libcufile cannot launch its own kernel
 *   (cuFileGpuCopy, CUDA error 719) and the stream API (cuFileReadAsync/WriteAsync) fails in
 *   compat mode. The sync and batch APIs do not need it.
 * - cuStreamWaitValue32, cuStreamWriteValue32: the deprecated v1 stream memory operations
 *   (CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_MEM_OPS_V1 is 0 here, so they are not offered);
 *   libcufile 1.15.1 calls the _v2 functions above.
 * - the rest (IPC, peer access, managed memory, dma-buf handles, cuMemHostAlloc,
 *   cuPointerGetAttributes) were not called in those runs. */
#define NOT_MODELLED(name, params) \
    EXPORT CUresult name params { \
        NEED_INIT(); \
        complain(#name " is not modelled by this fake: CUDA_ERROR_NOT_SUPPORTED"); \
        return CUDA_ERROR_NOT_SUPPORTED; \
    }
/* Their parameters are there for the signature (what the driver's callers pass), unused. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
NOT_MODELLED(cuCtxCreate_v2, (void **pctx, unsigned flags, CUdevice d))
NOT_MODELLED(cuCtxDestroy_v2, (void *c))
NOT_MODELLED(cuCtxEnablePeerAccess, (void *peer, unsigned flags))
NOT_MODELLED(cuDeviceCanAccessPeer, (int *can, CUdevice d, CUdevice peer))
NOT_MODELLED(cuGetExportTable, (const void **table, const void *id))
NOT_MODELLED(cuIpcCloseMemHandle, (CUdeviceptr d))
NOT_MODELLED(cuIpcGetEventHandle, (void *handle, void *event))
NOT_MODELLED(cuIpcGetMemHandle, (void *handle, CUdeviceptr d))
NOT_MODELLED(cuIpcOpenEventHandle, (void **event, const void *handle))
NOT_MODELLED(cuIpcOpenMemHandle_v2, (CUdeviceptr *d, const void *handle, unsigned flags))
NOT_MODELLED(cuMemAllocManaged, (CUdeviceptr *d, size_t size, unsigned flags))
NOT_MODELLED(cuMemGetHandleForAddressRange, (void *handle, CUdeviceptr d, size_t size, int type, unsigned long long flags))
NOT_MODELLED(cuMemHostAlloc, (void **pp, size_t size, unsigned flags))
NOT_MODELLED(cuMemcpyPeer, (CUdeviceptr dst, void *dst_ctx, CUdeviceptr src, void *src_ctx, size_t len))
NOT_MODELLED(cuMemcpyPeerAsync, (CUdeviceptr dst, void *dst_ctx, CUdeviceptr src, void *src_ctx, size_t len, void *stream))
NOT_MODELLED(cuPointerGetAttributes, (unsigned n, int *attributes, void **data, CUdeviceptr ptr))
NOT_MODELLED(cuStreamWaitValue32, (void *stream, CUdeviceptr addr, unsigned value, unsigned flags))
NOT_MODELLED(cuStreamWriteValue32, (void *stream, CUdeviceptr addr, unsigned value, unsigned flags))
#pragma GCC diagnostic pop

/* cuDeviceGetUuid_v2: a fixed UUID per device ("GPU-" + these bytes in nvidia-smi). */
EXPORT CUresult cuDeviceGetUuid_v2(unsigned char *uuid, CUdevice d) {
    NEED_INIT();
    if (!uuid) return CUDA_ERROR_INVALID_VALUE;
    if (d < 0 || d >= cfg_devices) return CUDA_ERROR_INVALID_DEVICE;
    static const unsigned char base[16] = {0x9d, 0xa1, 0x5e, 0x00, 0x67, 0xd5, 0x4a, 0x11,
                                           0x8f, 0x3b, 0x6a, 0x70, 0x5c, 0x2e, 0x10, 0x00};
    memcpy(uuid, base, 16);
    uuid[15] = (unsigned char)d;
    return CUDA_SUCCESS;
}

/* ---- test hooks: no real driver has them ---- */

EXPORT CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr ptr) {
    NEED_CTX();
    if (!data) return CUDA_ERROR_INVALID_VALUE;
    enum { CONTEXT = 1, MEMORY_TYPE = 2, BUFFER_ID = 7, IS_MANAGED = 8, DEVICE_ORDINAL = 9, RANGE_START_ADDR = 11, RANGE_SIZE = 12 };
    pthread_mutex_lock(&mem_lock);
    struct alloc found = {0};
    int is_dev = 0;
    for (int i = 0; i < MAX_ALLOCS; i++) {
        struct alloc *a = &allocs[i];
        if (a->host && ptr >= a->base && ptr - a->base < a->size) { found = *a; is_dev = 1; break; }
    }
    int is_host = !is_dev && ptr < DEV_BASE && ptr && is_registered((const void *)(uintptr_t)ptr, 1);
    pthread_mutex_unlock(&mem_lock);
    if (!is_dev && !is_host) return CUDA_ERROR_INVALID_VALUE;
    switch (attribute) {
    case MEMORY_TYPE: *(unsigned *)data = is_dev ? 2 : 1; return CUDA_SUCCESS;
    case IS_MANAGED: *(unsigned *)data = 0; return CUDA_SUCCESS;
    /* The context the allocation was made in: a device's primary context, the only kind of
     * context this fake creates. */
    case CONTEXT: if (!is_dev) break; *(void **)data = &contexts[found.device]; return CUDA_SUCCESS;
    /* "A process-wide unique ID for an allocated memory region" (docs): libcufile keys its
     * buffer registrations by it. */
    case BUFFER_ID: if (!is_dev) break; *(unsigned long long *)data = found.id; return CUDA_SUCCESS;
    case DEVICE_ORDINAL: if (!is_dev) break; *(int *)data = found.device; return CUDA_SUCCESS;
    case RANGE_START_ADDR: if (!is_dev) break; *(CUdeviceptr *)data = found.base; return CUDA_SUCCESS;
    case RANGE_SIZE: if (!is_dev) break; *(size_t *)data = found.size; return CUDA_SUCCESS;
    }
    fprintf(stderr, "fake libcuda: cuPointerGetAttribute of attribute %d (for %s memory), not modelled\n",
            attribute, is_dev ? "device" : "registered host");
    return CUDA_ERROR_INVALID_VALUE;
}

/* For the fake libcufile (tests/cufile_fake/fake_cufile.c), which finds these with
 * dlopen("libcuda.so.1", RTLD_NOLOAD) + dlsym. The host memory behind device range
 * [d, d+len), or NULL when it is not inside one allocation (a host pointer, a freed or
 * overrun range). */
EXPORT void *fake_cuda_device_host(CUdeviceptr d, size_t len) {
    pthread_mutex_lock(&mem_lock);
    struct alloc *a = find_alloc(d, len);
    void *h = a ? a->host + (d - a->base) : NULL;
    pthread_mutex_unlock(&mem_lock);
    return h;
}

/* Queues fn(arg) on a stream, run in order with its copies by the stream's worker (what
 * cuLaunchHostFunc does): the fake's cuFileReadAsync/WriteAsync run their I/O this way, so
 * their arguments are read when the stream gets there, as the real ones are. NULL and
 * CU_STREAM_LEGACY name the legacy stream of the calling thread's current context. */
EXPORT CUresult fake_cuda_stream_host_fn(void *stream, void (*fn)(void *), void *arg) {
    if (!fn) return CUDA_ERROR_INVALID_HANDLE;
    struct stream *s = NULL;
    CUresult err = CUDA_ERROR_INVALID_HANDLE;
    if (stream == NULL || stream == CU_STREAM_LEGACY_HANDLE) {
        if (!current_ctx()) return CUDA_ERROR_INVALID_CONTEXT;
        s = resolve_stream(stream, &err);
    } else {
        pthread_mutex_lock(&ctx_lock);
        for (int d = 0; d < MAX_DEVICES && !s; d++)
            for (struct stream *x = contexts[d].streams; x && !s; x = x->next)
                if (x == stream) s = x;
        pthread_mutex_unlock(&ctx_lock);
        if (!s) complain("a host function queued on a stream that is not a live stream");
    }
    if (!s) return err;
    struct op *o = calloc(1, sizeof *o);
    if (!o) return CUDA_ERROR_OUT_OF_MEMORY;
    o->kind = OP_HOSTFN;
    o->fn = fn;
    o->arg = arg;
    return enqueue(s, o);
}

/* Device allocations not freed yet (a leak check for tests). */
EXPORT int fake_cuda_live_allocations(void) {
    int n = 0;
    pthread_mutex_lock(&mem_lock);
    for (int i = 0; i < MAX_ALLOCS; i++) n += allocs[i].host != NULL;
    pthread_mutex_unlock(&mem_lock);
    return n;
}
