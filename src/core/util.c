/* util.c: byte buffer, files, mapping, directories, time, UTF-8. */
#define _GNU_SOURCE
#include "core_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- byte buffer ---- */

void sa_buf_init(struct sa_buf *b, size_t cap_max) {
    memset(b, 0, sizeof *b);
    b->cap_max = cap_max;
}

void sa_buf_free(struct sa_buf *b) {
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sa_buf_clear(struct sa_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = 0;
}

static enum sa_status buf_reserve(struct sa_buf *b, size_t extra) {
    uint64_t need;
    if (!sa_add_ok(b->len, extra, &need) || !sa_add_ok(need, 1, &need))
        return sa_error(SA_STATUS_NO_MEMORY, "buffer size overflow");
    if (b->cap_max && need > b->cap_max + 1)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "buffer limit of %zu bytes exceeded", b->cap_max);
    if (need <= b->cap) return SA_STATUS_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return SA_STATUS_OK;
}

enum sa_status sa_buf_append(struct sa_buf *b, const void *p, size_t n) {
    enum sa_status s = buf_reserve(b, n);
    if (s) return s;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return SA_STATUS_OK;
}

enum sa_status sa_buf_puts(struct sa_buf *b, const char *s) { return sa_buf_append(b, s, strlen(s)); }

enum sa_status sa_buf_printf(struct sa_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return sa_error(SA_STATUS_ERROR, "bad format string");
    }
    enum sa_status s = buf_reserve(b, (size_t)n);
    if (s) {
        va_end(ap2);
        return s;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return SA_STATUS_OK;
}

char *sa_buf_take(struct sa_buf *b, size_t *len) {
    if (!b->data && buf_reserve(b, 0)) return NULL;
    if (!b->len) b->data[0] = 0;
    char *p = b->data;
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- files ---- */

enum sa_status sa_read_file(const char *path, size_t max_size, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sa_error(SA_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    struct sa_buf b;
    sa_buf_init(&b, max_size);
    char chunk[65536];
    size_t n;
    enum sa_status s = SA_STATUS_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if ((s = sa_buf_append(&b, chunk, n))) break;
    }
    if (!s && ferror(f)) s = sa_error(SA_STATUS_IO, "%s: read error", path);
    fclose(f);
    if (s) {
        sa_buf_free(&b);
        return s == SA_STATUS_BAD_ARGUMENT ? sa_error(SA_STATUS_BAD_FILE, "%s: larger than %zu bytes", path, max_size) : s;
    }
    *out = sa_buf_take(&b, len);
    return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
}

/* Opens a file that must be regular (model weights: mapped or read whole). O_NONBLOCK: a
 * FIFO without a writer would otherwise block open() forever (issue 16); fstat then refuses
 * anything but a regular file, saying what it is. On a regular file O_NONBLOCK changes
 * nothing. */
static enum sa_status open_regular(const char *path, int *fd_out, struct stat *st) {
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return sa_error(SA_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return sa_error(SA_STATUS_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        const char *what = S_ISFIFO(st->st_mode)                           ? "a FIFO"
                           : S_ISDIR(st->st_mode)                          ? "a directory"
                           : S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ? "a device"
                           : S_ISSOCK(st->st_mode)                         ? "a socket"
                                                                           : "not a plain file";
        close(fd);
        return sa_error(SA_STATUS_IO, "%s: not a regular file (%s); give the path of the model file itself", path, what);
    }
    *fd_out = fd;
    return SA_STATUS_OK;
}

/* the transparent huge page of x86-64 (PMD size): alignment of weight memory and mappings */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

void *sa_alloc_weights(size_t n) {
    const size_t huge = HUGE_PAGE_BYTES;
    if (n < huge) return malloc(n ? n : 1);
    if (n > SIZE_MAX - huge) return NULL;
    size_t rounded = (n + huge - 1) / huge * huge; /* aligned_alloc: a multiple of the alignment */
    void *p = aligned_alloc(huge, rounded);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, rounded, MADV_HUGEPAGE); /* advice only: a kernel without THP ignores it */
#endif
    return p;
}

enum sa_status sa_read_file_weights(const char *path, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd;
    struct stat st;
    enum sa_status s = open_regular(path, &fd, &st);
    if (s) return s;
    if (st.st_size < 0 || (uint64_t)st.st_size >= SIZE_MAX) {
        close(fd);
        return sa_error(SA_STATUS_IO, "%s: size %lld does not fit in memory", path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = sa_alloc_weights(size + 1);
    if (!buf) {
        close(fd);
        return sa_error(SA_STATUS_NO_MEMORY, "%s: out of memory reading %zu bytes (use the file mapping)", path, size);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, SA_MIN(size - got, (size_t)1 << 30));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(buf);
            return e ? sa_error(SA_STATUS_IO, "%s: read error: %s", path, strerror(e))
                     : sa_error(SA_STATUS_IO, "%s: the file shrank while being read", path);
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = 0;
    *out = buf;
    *len = size;
    return SA_STATUS_OK;
}

enum sa_status sa_write_file_atomic(const char *path, const void *data, size_t len) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 8);
    if (!tmp) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        enum sa_status s = sa_error(SA_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            enum sa_status s = sa_error(SA_STATUS_IO, "%s: write failed: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return s;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        enum sa_status s = sa_error(SA_STATUS_IO, "%s: cannot finish writing: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return SA_STATUS_OK;
}

void sa_file_drop_cache(int fd) {
#ifdef POSIX_FADV_DONTNEED
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
#else
    (void)fd;
#endif
}

/* Maps `size` bytes of `fd` read-only at a 2 MiB-aligned address, advised for transparent huge
 * pages: where the file system keeps large folios in the page cache (ext4, xfs on recent
 * kernels), pages that a fault reads in then come as 2 MiB folios mapped by one TLB entry
 * each, and streaming the weights (decode) walks 512x fewer page-table entries. Pages that
 * some earlier reader brought in as small folios stay small. Falls back to a plain mapping. */
static void *map_file_aligned(int fd, size_t size) {
    const size_t huge = HUGE_PAGE_BYTES;
    if (size < huge) return mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    uint8_t *res = mmap(NULL, size + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) return mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    uint8_t *at = (uint8_t *)(((uintptr_t)res + huge - 1) & ~(uintptr_t)(huge - 1));
    void *p = mmap(at, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        munmap(res, size + huge);
        return mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE), mapped = (size + page - 1) / page * page;
    if (at > res) munmap(res, (size_t)(at - res));
    if (at + mapped < res + size + huge) munmap(at + mapped, (size_t)(res + size + huge - (at + mapped)));
#ifdef MADV_HUGEPAGE
    madvise(at, size, MADV_HUGEPAGE); /* advice only: a kernel without it keeps small pages */
#endif
    return at;
}

enum sa_status sa_file_map_open(const char *path, struct sa_file_map *m) {
    memset(m, 0, sizeof *m);
    int fd;
    struct stat st;
    enum sa_status s = open_regular(path, &fd, &st);
    if (s) return s;
    m->size = (size_t)st.st_size;
    if (m->size) {
        void *p = map_file_aligned(fd, m->size);
        if (p == MAP_FAILED) {
            close(fd);
            return sa_error(SA_STATUS_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    return SA_STATUS_OK;
}

void sa_file_map_close(struct sa_file_map *m) {
    if (m && m->data) munmap((void *)m->data, m->size);
    if (m) memset(m, 0, sizeof *m);
}

enum sa_status sa_mkdir_p(const char *path, int mode) {
    size_t n = strlen(path);
    char *p = malloc(n + 1);
    if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] == '/' || p[i] == 0) {
            char c = p[i];
            p[i] = 0;
            if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
                enum sa_status s = sa_error(SA_STATUS_IO, "%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return s;
            }
            p[i] = c;
        }
    }
    free(p);
    return SA_STATUS_OK;
}

bool sa_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

double sa_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- UTF-8 ---- */

int sa_utf8_seq_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

size_t sa_utf8_valid_prefix(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        int l = sa_utf8_seq_len(c);
        if (!l || i + (size_t)l > n) return i;
        if (l >= 2) {
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80) return i;
            if (c == 0xE0 && c1 < 0xA0) return i;           /* overlong */
            if (c == 0xED && c1 > 0x9F) return i;           /* surrogates */
            if (c == 0xF0 && c1 < 0x90) return i;           /* overlong */
            if (c == 0xF4 && c1 > 0x8F) return i;           /* > U+10FFFF */
            for (int k = 2; k < l; k++)
                if ((s[i + (size_t)k] & 0xC0) != 0x80) return i;
        }
        i += (size_t)l;
    }
    return n;
}
