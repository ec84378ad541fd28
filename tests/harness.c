/* harness.c: implementation of the test harness in harness.h. */
#define _GNU_SOURCE
#include "harness.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

long harness_resident_pages(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat st;
    long r = -1;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (size_t)st.st_size, np = (n + page - 1) / page;
        void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        unsigned char *vec = malloc(np);
        if (p != MAP_FAILED && vec && mincore(p, n, vec) == 0) {
            r = 0;
            for (size_t i = 0; i < np; i++) r += vec[i] & 1;
        }
        free(vec);
        if (p != MAP_FAILED) munmap(p, n);
    }
    close(fd);
    return r;
}

bool harness_on_tmpfs(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) == 0 && fs.f_type == 0x01021994; /* TMPFS_MAGIC */
}

int harness_check_failed;
static int n_passed, n_failed, n_skipped;
static const char *current;
static char skip_reason[256]; /* set by harness_skip in the current test, "" if none */

void harness_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "    %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    harness_check_failed++;
}

void harness_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
    va_end(ap);
    if (!skip_reason[0]) snprintf(skip_reason, sizeof skip_reason, "skipped");
}

void harness_run(const char *name, void (*fn)(void)) {
    current = name;
    harness_check_failed = 0;
    skip_reason[0] = 0;
    fn();
    if (harness_check_failed) {
        n_failed++;
        printf("FAIL %s\n", name);
    } else if (skip_reason[0]) {
        n_skipped++;
        printf("skip %s: %s\n", name, skip_reason);
    } else {
        n_passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

int harness_summary(void) {
    bool none = !n_passed && !n_failed && !n_skipped;
    if (none) printf("FAIL no test ran\n");
    printf("%d passed, %d failed, %d skipped\n", n_passed, n_failed, n_skipped);
    return n_failed || none ? 1 : 0;
}

const char *harness_shared_data(void) {
    const char *e = getenv("SA_SHARED_DATA");
    return e ? e : "../shared/data";
}

FILE *harness_open_shared(const char *file, int line, const char *rel) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", harness_shared_data(), rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        harness_fail(file, line, "the shared data is missing: cannot open %s. " HARNESS_SHARED_HINT, path);
    return f;
}

const char *harness_tmpdir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    const char *base = getenv("SA_TEST_TMP");
    if (!base) base = "tests/tmp";
    mkdir("tests/tmp", 0755);
    mkdir(base, 0755);
    snprintf(dir, sizeof dir, "%s/t%d", base, (int)getpid());
    mkdir(dir, 0755);
    return dir;
}
