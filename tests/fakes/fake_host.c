/*
 * fake_host: an LD_PRELOAD library for the tests that run NVIDIA's real libcufile
 * (tests/cufile_real_io.rs). It gives libcufile two host files that a GPU machine has and the
 * test machines may lack, by opening a file of the test's instead:
 *
 *   FAKE_HOST_PROC_MODULES=FILE  /proc/modules reads FILE. libcufile 1.15 to 1.20 read it to
 *                                look for nvidia-fs, and spin forever in cuFileDriverOpen where
 *                                it cannot be opened (seen here with strace: the last call is
 *                                openat("/proc/modules") = ENOENT, then 100% CPU; a kernel
 *                                without module support, as this sandbox's, has none). An
 *                                empty FILE says "no modules loaded": no nvidia-fs, so compat
 *                                mode.
 *   FAKE_HOST_RUN_UDEV=DIR       /run/udev/X reads DIR/X: udevd's database, where libcufile's
 *                                cuFileHandleRegister (through libudev.so.1) looks up the
 *                                properties of the file's block device, data/b<major>:<minor>
 *                                (ID_FS_USAGE, ID_FS_TYPE). Without them every registration
 *                                fails with 5027 (cufile.log "udev property not found:
 *                                ID_FS_USAGE vda", "unable to get volume attributes"), as in
 *                                containers and VMs where udevd never ran.
 *
 * Nothing else is touched: every other path, and these two when their variable is unset, open
 * as usual. It wraps the libc entry points libcufile, libstdc++ and libudev open files with
 * (open, open64, openat, openat64, fopen, fopen64); calls inside libc itself are not seen.
 * Built by the tests (tests/common/fake_host.rs) with
 * `cc -shared -fPIC -O2 -Wall -Wextra -o libfakehost.so fake_host.c -ldl`, never shipped.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* The path to open instead of p, in buf (or p itself). */
static const char *redirect(const char *p, char *buf, size_t len) {
    if (!p) return p;
    if (strcmp(p, "/proc/modules") == 0) {
        const char *f = getenv("FAKE_HOST_PROC_MODULES");
        if (f && *f) return f;
    }
    if (strncmp(p, "/run/udev/", 10) == 0) {
        const char *d = getenv("FAKE_HOST_RUN_UDEV");
        if (d && *d) {
            int n = snprintf(buf, len, "%s/%s", d, p + 10);
            if (n > 0 && (size_t)n < len) return buf;
        }
    }
    return p;
}

/* open and openat take a mode only with O_CREAT or O_TMPFILE. */
static int takes_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef FILE *(*fopen_fn)(const char *, const char *);

/* The next definition of `name` (libc's), looked up once. */
#define NEXT(name, type) \
    static type next_; \
    if (!next_) next_ = (type)dlsym(RTLD_NEXT, name); \
    if (!next_) return NULL_RESULT;

#define NULL_RESULT -1
EXPORT int open(const char *p, int flags, ...) {
    unsigned mode = 0;
    if (takes_mode(flags)) { va_list a; va_start(a, flags); mode = va_arg(a, unsigned); va_end(a); }
    NEXT("open", open_fn);
    char buf[4096];
    return next_(redirect(p, buf, sizeof buf), flags, mode);
}

EXPORT int open64(const char *p, int flags, ...) {
    unsigned mode = 0;
    if (takes_mode(flags)) { va_list a; va_start(a, flags); mode = va_arg(a, unsigned); va_end(a); }
    NEXT("open64", open_fn);
    char buf[4096];
    return next_(redirect(p, buf, sizeof buf), flags, mode);
}

EXPORT int openat(int dir, const char *p, int flags, ...) {
    unsigned mode = 0;
    if (takes_mode(flags)) { va_list a; va_start(a, flags); mode = va_arg(a, unsigned); va_end(a); }
    NEXT("openat", openat_fn);
    char buf[4096];
    return next_(dir, redirect(p, buf, sizeof buf), flags, mode);
}

EXPORT int openat64(int dir, const char *p, int flags, ...) {
    unsigned mode = 0;
    if (takes_mode(flags)) { va_list a; va_start(a, flags); mode = va_arg(a, unsigned); va_end(a); }
    NEXT("openat64", openat_fn);
    char buf[4096];
    return next_(dir, redirect(p, buf, sizeof buf), flags, mode);
}
#undef NULL_RESULT

#define NULL_RESULT NULL
EXPORT FILE *fopen(const char *p, const char *m) {
    NEXT("fopen", fopen_fn);
    char buf[4096];
    return next_(redirect(p, buf, sizeof buf), m);
}

EXPORT FILE *fopen64(const char *p, const char *m) {
    NEXT("fopen64", fopen_fn);
    char buf[4096];
    return next_(redirect(p, buf, sizeof buf), m);
}
#undef NULL_RESULT
