/* test_core.c: core helpers: status messages, the log callback, byte buffer, SHA-256, UTF-8,
 * files, the SVG writer. */
#define _GNU_SOURCE /* mincore */
#include "core/core_impl.h"
#include "core/svg_impl.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_status_messages(void) {
    CHECK_EQ_STR(sa_status_str(SA_STATUS_BAD_FILE), "bad file");
    enum sa_status s = sa_error(SA_STATUS_BAD_FILE, "%s: bad magic", "x.gguf");
    CHECK_EQ_INT(s, SA_STATUS_BAD_FILE);
    CHECK_EQ_STR(sa_last_error(), "x.gguf: bad magic");
    sa_error_wrap(s, "loading %s", "model");
    CHECK_EQ_STR(sa_last_error(), "loading model: x.gguf: bad magic");
}

/* ---- the log callback (sa_log_set) ---- */

struct log_seen {
    int n;
    enum sa_log_level level;
    char text[4096];
    void *user;
};
static struct log_seen g_seen;

static void log_keep(enum sa_log_level level, const char *text, void *user) {
    g_seen.n++;
    g_seen.level = level;
    snprintf(g_seen.text, sizeof g_seen.text, "%s", text);
    g_seen.user = user;
}

/* What sa_log writes to stderr (fd 2 redirected to a file for the call). */
static char *stderr_of_log(enum sa_log_level level, const char *msg) {
    char path[600];
    snprintf(path, sizeof path, "%s/stderr.txt", harness_tmpdir());
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0) return NULL;
    dup2(fd, 2);
    close(fd);
    sa_log(level, "%s", msg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = NULL;
    size_t len;
    if (sa_read_file(path, 0, &text, &len)) return NULL;
    return text;
}

static void test_log_callback(void) {
    int tag;
    /* the default: "salign: <level>: <text>" on stderr, as before the callback existed */
    char *e = stderr_of_log(SA_LOG_WARN, "tokenizer: 7 ignored");
    CHECK_EQ_STR(e, "salign: warning: tokenizer: 7 ignored\n");
    free(e);
    if (!getenv("SALIGN_LOG")) { /* the default threshold is warn */
        e = stderr_of_log(SA_LOG_DEBUG, "not shown");
        CHECK_EQ_STR(e, "");
        free(e);
    }
    /* a callback gets every message, every level, with its user data; nothing on stderr */
    sa_log_set(log_keep, &tag);
    memset(&g_seen, 0, sizeof g_seen);
    e = stderr_of_log(SA_LOG_WARN, "retrying in 2 s");
    CHECK_EQ_STR(e, "");
    free(e);
    CHECK_EQ_INT(g_seen.n, 1);
    CHECK_EQ_INT(g_seen.level, SA_LOG_WARN);
    CHECK_EQ_STR(g_seen.text, "retrying in 2 s");
    CHECK(g_seen.user == &tag);
    sa_log(SA_LOG_DEBUG, "x = %d", 42);
    CHECK_EQ_INT(g_seen.n, 2);
    CHECK_EQ_INT(g_seen.level, SA_LOG_DEBUG);
    CHECK_EQ_STR(g_seen.text, "x = 42");
    /* a message longer than the formatting buffer arrives whole */
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    sa_log(SA_LOG_ERROR, "%s|", big);
    CHECK_EQ_INT(strlen(g_seen.text), sizeof big);
    CHECK(g_seen.text[sizeof big - 1] == '|');
    /* NULL restores the default */
    sa_log_set(NULL, &tag);
    e = stderr_of_log(SA_LOG_ERROR, "back");
    CHECK_EQ_STR(e, "salign: error: back\n");
    free(e);
    CHECK_EQ_INT(g_seen.n, 3);
    CHECK_EQ_STR(sa_log_level_name(SA_LOG_INFO), "info");
    CHECK_EQ_STR(sa_log_level_name((enum sa_log_level)9), "unknown");
}

/* Threads log while the callback changes: every message reaches one of the callbacks. */
static atomic_int g_count_a, g_count_b;
static void log_count(enum sa_log_level level, const char *text, void *user) {
    (void)level;
    (void)text;
    atomic_fetch_add((atomic_int *)user, 1);
}
static void *log_many(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) sa_log(SA_LOG_DEBUG, "message %d", i);
    return NULL;
}
static void test_log_threads(void) {
    atomic_store(&g_count_a, 0);
    atomic_store(&g_count_b, 0);
    sa_log_set(log_count, &g_count_a);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, log_many, NULL) == 0);
    for (int i = 0; i < 200; i++) sa_log_set(log_count, i % 2 ? (void *)&g_count_a : (void *)&g_count_b);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    sa_log_set(NULL, NULL);
    CHECK_EQ_INT(atomic_load(&g_count_a) + atomic_load(&g_count_b), 4 * 2000);
}

static void test_buf(void) {
    struct sa_buf b;
    sa_buf_init(&b, 10);
    CHECK_OK(sa_buf_puts(&b, "hello"));
    CHECK_OK(sa_buf_printf(&b, "%d", 1234));
    CHECK_EQ_STR(b.data, "hello1234");
    CHECK(sa_buf_puts(&b, "toolong") != SA_STATUS_OK); /* cap_max enforced */
    CHECK_EQ_INT(b.len, 9);
    size_t n;
    char *p = sa_buf_take(&b, &n);
    CHECK_EQ_INT(n, 9);
    CHECK_EQ_STR(p, "hello1234");
    free(p);
    sa_buf_free(&b);
}

static void sha_hex(const char *msg, size_t n, char hex[65]) {
    struct sa_sha256 s;
    uint8_t d[32];
    sa_sha256_init(&s);
    sa_sha256_update(&s, msg, n);
    sa_sha256_final(&s, d);
    sa_sha256_hex(d, hex);
}

static void test_sha256_vectors(void) {
    char hex[65];
    sha_hex("", 0, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(m, strlen(m), hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', fed in uneven pieces */
    struct sa_sha256 s;
    uint8_t d[32];
    char a[777];
    memset(a, 'a', sizeof a);
    sa_sha256_init(&s);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof a ? left : sizeof a;
        sa_sha256_update(&s, a, k);
        left -= k;
    }
    sa_sha256_final(&s, d);
    sa_sha256_hex(d, hex);
    CHECK_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_utf8(void) {
    CHECK_EQ_INT(sa_utf8_valid_prefix("abc", 3), 3);
    CHECK_EQ_INT(sa_utf8_valid_prefix("\xc3\xa9x", 3), 3);
    CHECK_EQ_INT(sa_utf8_valid_prefix("a\xe4\xb8", 3), 1);          /* truncated */
    CHECK_EQ_INT(sa_utf8_valid_prefix("a\xc0\x80", 3), 1);          /* overlong */
    CHECK_EQ_INT(sa_utf8_valid_prefix("\xed\xa0\x80", 3), 0);       /* surrogate */
    CHECK_EQ_INT(sa_utf8_valid_prefix("\xf0\x9f\x98\x80!", 5), 5);  /* emoji */
}

static void test_files(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/f.txt", harness_tmpdir());
    CHECK_OK(sa_write_file_atomic(path, "data\n", 5));
    char *p;
    size_t n;
    CHECK_OK(sa_read_file(path, 0, &p, &n));
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_STR(p, "data\n");
    free(p);
    CHECK(sa_read_file(path, 3, &p, &n) == SA_STATUS_BAD_FILE);
    char hex[65];
    CHECK_OK(sa_sha256_file(path, hex));
    CHECK_EQ_STR(hex, "6667b2d1aab6a00caa5aee5af8ad9f1465e567abf1c209d15727d57b3e8f6e5f");
    struct sa_file_map m;
    CHECK_OK(sa_file_map_open(path, &m));
    CHECK_EQ_INT(m.size, 5);
    CHECK(memcmp(m.data, "data\n", 5) == 0);
    sa_file_map_close(&m);
    CHECK(sa_file_map_open("/nonexistent/x", &m) == SA_STATUS_IO);
    CHECK(strstr(sa_last_error(), "/nonexistent/x") != NULL);
}

/* The no-mmap load path: a whole file read into weight memory (2 MiB-aligned when large),
 * byte for byte, NUL-terminated; missing files and directories are errors, not crashes. */
static void test_read_file_weights(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/w.bin", harness_tmpdir());
    size_t n = (3u << 20) + 77; /* over 2 MiB and not a multiple of it */
    unsigned char *data = malloc(n);
    CHECK(data != NULL);
    for (size_t i = 0; i < n; i++) data[i] = (unsigned char)(i * 131 + (i >> 9));
    CHECK_OK(sa_write_file_atomic(path, data, n));
    char *p = NULL;
    size_t len = 0;
    CHECK_OK(sa_read_file_weights(path, &p, &len));
    CHECK_EQ_INT(len, n);
    CHECK(memcmp(p, data, n) == 0);
    CHECK_EQ_INT(p[n], 0);
    CHECK_EQ_INT((uintptr_t)p % (2u << 20), 0);
    free(p);
    void *small = sa_alloc_weights(0);
    CHECK(small != NULL);
    free(small);
    CHECK(sa_read_file_weights("/nonexistent/w.bin", &p, &len) == SA_STATUS_IO && p == NULL);
    CHECK(sa_read_file_weights(harness_tmpdir(), &p, &len) == SA_STATUS_IO && p == NULL);
    CHECK_OK(sa_write_file_atomic(path, "", 0));
    CHECK_OK(sa_read_file_weights(path, &p, &len));
    CHECK_EQ_INT(len, 0);
    free(p);
    free(data);
}

/* A FIFO given as a model file (issue 16): open() of a FIFO without a writer blocked
 * forever. Both ways of loading weights now refuse it at once, saying what it is. The alarm
 * kills this test program (a failure) should either block again. */
static void test_fifo_refused(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.fifo", harness_tmpdir());
    unlink(path);
    CHECK(mkfifo(path, 0600) == 0);
    alarm(30);
    struct sa_file_map m;
    CHECK_EQ_INT(sa_file_map_open(path, &m), SA_STATUS_IO);
    CHECK(strstr(sa_last_error(), "not a regular file (a FIFO)") && strstr(sa_last_error(), path));
    char *p = NULL;
    size_t len = 0;
    CHECK_EQ_INT(sa_read_file_weights(path, &p, &len), SA_STATUS_IO);
    CHECK(strstr(sa_last_error(), "a FIFO") && p == NULL);
    alarm(0);
    unlink(path);
}

/* Lines of /proc/self/maps (-1 if unreadable). */
static long count_mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    long n = 0;
    for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
    fclose(f);
    return n;
}

/* Large files are mapped at a 2 MiB-aligned address (so that large page-cache folios can be
 * mapped whole), byte for byte, with nothing left mapped after the last page. */
static void test_file_map_aligned(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/m.bin", harness_tmpdir());
    size_t n = (5u << 20) + 333, page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *data = malloc(n);
    CHECK(data != NULL);
    for (size_t i = 0; i < n; i++) data[i] = (unsigned char)(i * 7 + (i >> 11));
    CHECK_OK(sa_write_file_atomic(path, data, n));
    struct sa_file_map m;
    CHECK_OK(sa_file_map_open(path, &m));
    CHECK_EQ_INT(m.size, n);
    CHECK_EQ_INT((uintptr_t)m.data % (2u << 20), 0);
    CHECK(memcmp(m.data, data, n) == 0);
    unsigned char vec[1];
    const uint8_t *after = m.data + (n + page - 1) / page * page; /* the reservation's tail was given back */
    CHECK(mincore((void *)after, page, vec) != 0 && errno == ENOMEM);
    sa_file_map_close(&m);
    /* nothing of the 2 MiB reservation is left behind: the process's mappings do not grow */
    long before = count_mappings();
    for (int i = 0; i < 200; i++) {
        CHECK_OK(sa_file_map_open(path, &m));
        sa_file_map_close(&m);
    }
    CHECK_EQ_INT(count_mappings(), before);
    /* exactly 2 MiB: no partial page after the end */
    CHECK_OK(sa_write_file_atomic(path, data, 2u << 20));
    CHECK_OK(sa_file_map_open(path, &m));
    CHECK(m.size == (2u << 20) && (uintptr_t)m.data % (2u << 20) == 0 && memcmp(m.data, data, m.size) == 0);
    sa_file_map_close(&m);
    free(data);
}

/* sa_file_drop_cache: a written file's pages leave the page cache (not on tmpfs, where the
 * page cache is the file). */
static void test_file_drop_cache(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/d.bin", harness_tmpdir());
    size_t n = 1u << 20;
    char *data = calloc(1, n);
    CHECK(data != NULL);
    CHECK_OK(sa_write_file_atomic(path, data, n));
    free(data);
    if (harness_on_tmpfs(path)) {
        harness_skip("tmpfs: the page cache is the file, nothing to drop");
        return;
    }
    CHECK(harness_resident_pages(path) > 0); /* just written: cached */
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    sa_file_drop_cache(fd);
    close(fd);
    CHECK_EQ_INT(harness_resident_pages(path), 0);
}

/* ---- the SVG writer (core/svg.c) ---- */

static void test_svg(void) {
    struct sa_svg g;
    sa_svg_init(&g);
    sa_svg_printf(&g, "<svg w=\"%d\">\n", 120);
    const struct sa_svg_frame f = {10, 0, 110, 100, 0, 4, 0, 2};
    CHECK_NEAR(sa_svg_fx(&f, 1), 35, 1e-12);
    CHECK_NEAR(sa_svg_fy(&f, 1.5), 25, 1e-12);
    const double y[5] = {0, 1, NAN, 2, 0.5}, x[2] = {2, 4}, y2[2] = {1, 2};
    sa_svg_polyline(&g, &f, NULL, y, 5, "fill=\"none\" stroke=\"red\""); /* x = index, NaN left out */
    sa_svg_markers(&g, &f, NULL, y, 2, "blue");
    sa_svg_polyline(&g, &f, x, y2, 2, "class=\"s\"");
    sa_svg_text(&g, 5, 6.25, "middle", 11, NULL, "a<b & \"c\" \xc3\xa9\x01\xff'");
    sa_svg_text(&g, 1, 2, "end", 10, "font-weight=\"bold\"", "T");
    char path[600];
    snprintf(path, sizeof path, "%s/t.svg", harness_tmpdir());
    CHECK_OK(sa_svg_finish(&g, path));
    char *text = NULL;
    size_t len;
    CHECK_OK(sa_read_file(path, 0, &text, &len));
    CHECK_EQ_STR(text, "<svg w=\"120\">\n"
                       "<polyline fill=\"none\" stroke=\"red\" points=\"10.0,100.0 35.0,50.0 85.0,0.0 110.0,75.0 \"/>\n"
                       "<circle cx=\"10.0\" cy=\"100.0\" r=\"3\" fill=\"blue\"/>\n"
                       "<circle cx=\"35.0\" cy=\"50.0\" r=\"3\" fill=\"blue\"/>\n"
                       "<polyline class=\"s\" points=\"60.0,50.0 110.0,0.0 \"/>\n"
                       "<text x=\"5.0\" y=\"6.2\" text-anchor=\"middle\" font-size=\"11\">"
                       "a&lt;b &amp; &quot;c&quot; \xc3\xa9 ?&apos;</text>\n"
                       "<text x=\"1.0\" y=\"2.0\" text-anchor=\"end\" font-size=\"10\" font-weight=\"bold\">T</text>\n"
                       "</svg>\n");
    free(text);
    CHECK_NEAR(sa_svg_nice_step(10, 5), 2, 1e-12);
    CHECK_NEAR(sa_svg_nice_step(0.7, 5), 0.1, 1e-12);
    CHECK_NEAR(sa_svg_nice_step(0, 5), 1, 0);
    /* a write that fails reports it */
    sa_svg_init(&g);
    sa_svg_printf(&g, "<svg>");
    CHECK(sa_svg_finish(&g, "/nonexistent-dir/x.svg") != SA_STATUS_OK);
}

int main(void) {
    RUN(test_status_messages);
    RUN(test_log_callback);
    RUN(test_log_threads);
    RUN(test_buf);
    RUN(test_sha256_vectors);
    RUN(test_utf8);
    RUN(test_files);
    RUN(test_read_file_weights);
    RUN(test_fifo_refused);
    RUN(test_file_map_aligned);
    RUN(test_file_drop_cache);
    RUN(test_svg);
    return harness_summary();
}
