/* test_safetensors.c: safetensors writer and reader: single file and shards, metadata,
 * alignment, and a corpus of broken and randomly corrupted files (clear errors, no crash). */
#define _GNU_SOURCE
#include "core/core_impl.h"
#include "harness.h"
#include "sa/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static float f32s[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
static uint16_t f16s[5] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000};
static uint16_t bf16s[4] = {0x3f80, 0x4000, 0xbf80, 0x0000};
static int8_t i8s[3] = {-128, 0, 127};
static int64_t i64s[4] = {1, -1, INT64_MAX, INT64_MIN};
static double f64s[1] = {3.141592653589793};

static struct sa_st_writer *sample_writer(void) {
    struct sa_st_writer *w = NULL;
    CHECK_OK(sa_st_writer_init(&w));
    if (!w) return NULL;
    int64_t s23[2] = {2, 3}, s5[1] = {5}, s22[2] = {2, 2}, s4[1] = {4}, s3[1] = {3}, s04[2] = {0, 4};
    CHECK_OK(sa_st_writer_add(w, "layer.weight", SA_DTYPE_F32, 2, s23, f32s));
    CHECK_OK(sa_st_writer_add(w, "half", SA_DTYPE_F16, 1, s5, f16s));
    CHECK_OK(sa_st_writer_add(w, "brain", SA_DTYPE_BF16, 1, s4, bf16s));
    CHECK_OK(sa_st_writer_add(w, "bytes", SA_DTYPE_I8, 1, s3, i8s));
    CHECK_OK(sa_st_writer_add(w, "longs", SA_DTYPE_I64, 2, s22, i64s));
    CHECK_OK(sa_st_writer_add(w, "scalar", SA_DTYPE_F64, 0, NULL, f64s));
    CHECK_OK(sa_st_writer_add(w, "empty", SA_DTYPE_F32, 2, s04, NULL));
    CHECK_OK(sa_st_writer_set_metadata(w, "format", "pt"));
    CHECK_OK(sa_st_writer_set_metadata(w, "note", "quote \" backslash \\ newline \n"));
    return w;
}

static void check_sample(const struct sa_safetensors *st) {
    CHECK_EQ_INT(sa_safetensors_n_tensors(st), 7);
    const struct sa_st_tensor *t = sa_safetensors_find(st, "layer.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_INT(t->type, SA_DTYPE_F32);
        CHECK_EQ_INT(t->n_dims, 2);
        CHECK_EQ_INT(t->shape[0], 2);
        CHECK_EQ_INT(t->shape[1], 3);
        CHECK_EQ_INT(t->n_bytes, 24);
        CHECK(!memcmp(t->data, f32s, 24));
        CHECK_EQ_INT((uintptr_t)t->data % 4, 0); /* aligned to the element size */
    }
    t = sa_safetensors_find(st, "half");
    CHECK(t && t->type == SA_DTYPE_F16 && t->n_bytes == 10 && !memcmp(t->data, f16s, 10));
    t = sa_safetensors_find(st, "brain");
    CHECK(t && t->type == SA_DTYPE_BF16 && !memcmp(t->data, bf16s, 8));
    t = sa_safetensors_find(st, "bytes");
    CHECK(t && t->type == SA_DTYPE_I8 && !memcmp(t->data, i8s, 3));
    t = sa_safetensors_find(st, "longs");
    CHECK(t && t->type == SA_DTYPE_I64 && !memcmp(t->data, i64s, 32));
    if (t) CHECK_EQ_INT((uintptr_t)t->data % 8, 0);
    t = sa_safetensors_find(st, "scalar");
    CHECK(t && t->type == SA_DTYPE_F64 && t->n_dims == 0 && t->n_bytes == 8 && !memcmp(t->data, f64s, 8));
    t = sa_safetensors_find(st, "empty");
    CHECK(t && t->n_bytes == 0 && t->shape[0] == 0 && t->shape[1] == 4);
    CHECK(sa_safetensors_find(st, "missing") == NULL);
    CHECK_EQ_STR(sa_safetensors_metadata(st, "format"), "pt");
    CHECK_EQ_STR(sa_safetensors_metadata(st, "note"), "quote \" backslash \\ newline \n");
    CHECK(sa_safetensors_metadata(st, "nope") == NULL);
}

static char *tpath(const char *name) {
    static char buf[4][600];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 600, "%s/%s", harness_tmpdir(), name);
    return p;
}

static void test_single_file(void) {
    struct sa_st_writer *w = sample_writer();
    const char *path = tpath("one.safetensors");
    CHECK_OK(sa_st_writer_write_file(w, path));
    sa_st_writer_free(w);
    CHECK(!sa_file_exists(tpath("one.safetensors.tmp")));
    if (!harness_on_tmpfs(path)) CHECK_EQ_INT(harness_resident_pages(path), 0); /* dropped: read back as large folios */
    struct sa_safetensors *st = NULL;
    CHECK_OK(sa_safetensors_open(path, &st));
    if (st) check_sample(st);
    sa_safetensors_free(st);
    /* the header length is a multiple of 8 and padded with spaces */
    char *data;
    size_t len;
    CHECK_OK(sa_read_file(path, 0, &data, &len));
    uint64_t n = 0;
    memcpy(&n, data, 8);
    CHECK_EQ_INT(n % 8, 0);
    CHECK(n + 8 <= len);
    CHECK(data[8] == '{');
    /* the same bytes through open_memory */
    CHECK_OK(sa_safetensors_open_memory(data, len, &st));
    if (st) check_sample(st);
    sa_safetensors_free(st);
    free(data);
    /* writer argument checks */
    CHECK_OK(sa_st_writer_init(&w));
    int64_t s1[1] = {1};
    CHECK_OK(sa_st_writer_add(w, "a", SA_DTYPE_F32, 1, s1, f32s));
    CHECK_EQ_INT(sa_st_writer_add(w, "a", SA_DTYPE_F32, 1, s1, f32s), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_st_writer_add(w, "q", SA_DTYPE_Q8_0, 1, s1, f32s), SA_STATUS_UNSUPPORTED);
    CHECK_EQ_INT(sa_st_writer_add(w, "__metadata__", SA_DTYPE_F32, 1, s1, f32s), SA_STATUS_BAD_ARGUMENT);
    int64_t neg[1] = {-1};
    CHECK_EQ_INT(sa_st_writer_add(w, "neg", SA_DTYPE_F32, 1, neg, f32s), SA_STATUS_BAD_ARGUMENT);
    sa_st_writer_free(w);
    sa_st_writer_free(NULL);
    sa_safetensors_free(NULL);
}

static void test_sharded(void) {
    struct sa_st_writer *w = sample_writer();
    char dir[600];
    snprintf(dir, sizeof dir, "%s/sharded", harness_tmpdir());
    CHECK_OK(sa_st_writer_write_dir(w, dir, 16)); /* forces several shards */
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(sa_file_exists(p));
    snprintf(p, sizeof p, "%s/model-00001-of-00005.safetensors", dir);
    CHECK_MSG(sa_file_exists(p), "expected 5 shards (%s)", p);
    struct sa_safetensors *st = NULL;
    CHECK_OK(sa_safetensors_open(dir, &st)); /* the directory */
    if (st) check_sample(st);
    sa_safetensors_free(st);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK_OK(sa_safetensors_open(p, &st)); /* the index itself */
    if (st) check_sample(st);
    sa_safetensors_free(st);
    char *idx;
    size_t len;
    CHECK_OK(sa_read_file(p, 0, &idx, &len));
    CHECK(strstr(idx, "\"total_size\": 85") != NULL); /* 24+10+8+3+32+8+0 bytes */
    free(idx);
    /* rewriting as one file replaces the index */
    CHECK_OK(sa_st_writer_write_dir(w, dir, 0));
    CHECK(!sa_file_exists(p));
    CHECK_OK(sa_safetensors_open(dir, &st));
    if (st) check_sample(st);
    sa_safetensors_free(st);
    sa_st_writer_free(w);
    snprintf(p, sizeof p, "%s/nothing", harness_tmpdir());
    CHECK_OK(sa_mkdir_p(p, 0755));
    CHECK_EQ_INT(sa_safetensors_open(p, &st), SA_STATUS_NOT_FOUND);
    CHECK(st == NULL);
}

/* ---- broken files ---- */

/* A file from a header text and `data_len` bytes of data. */
static uint8_t *make_file(const char *header, size_t data_len, size_t *size) {
    size_t n = strlen(header);
    uint8_t *b = calloc(1, 8 + n + data_len + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    for (size_t i = 0; i < data_len; i++) b[8 + n + i] = (uint8_t)i;
    *size = 8 + n + data_len;
    return b;
}

static enum sa_status open_bytes(const uint8_t *b, size_t n) {
    /* an exact-size copy, so that AddressSanitizer catches any read past the end */
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, b, n);
    struct sa_safetensors *st = NULL;
    enum sa_status s = sa_safetensors_open_memory(copy, n, &st);
    if (!s) {
        unsigned sum = 0;
        for (int64_t i = 0; i < sa_safetensors_n_tensors(st); i++) {
            const struct sa_st_tensor *t = sa_safetensors_tensor(st, i);
            for (uint64_t k = 0; k < t->n_bytes; k++) sum += ((const uint8_t *)t->data)[k];
        }
        (void)sum;
    } else {
        CHECK(st == NULL);
    }
    sa_safetensors_free(st);
    free(copy);
    return s;
}

static void test_broken_corpus(void) {
    static const struct {
        const char *header;
        size_t data;
        int expect;
        const char *what; /* a word the message must contain */
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, SA_STATUS_OK, ""},
        {"[1,2]", 0, SA_STATUS_BAD_FILE, "JSON object"},
        {"hello world", 0, SA_STATUS_BAD_FILE, "JSON object"},
        {"{\"a\":", 0, SA_STATUS_BAD_FILE, "parse"},
        {"{}xx", 0, SA_STATUS_BAD_FILE, "garbage"},
        {"{\"a\":{\"dtype\":\"X9\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, SA_STATUS_BAD_FILE, "unknown dtype"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 8, SA_STATUS_UNSUPPORTED, "U8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, SA_STATUS_BAD_FILE, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, SA_STATUS_BAD_FILE, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, SA_STATUS_BAD_FILE, "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, SA_STATUS_BAD_FILE, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, SA_STATUS_BAD_FILE, "begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, SA_STATUS_BAD_FILE, "outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16, SA_STATUS_BAD_FILE, "needs 16"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, SA_STATUS_BAD_FILE, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, SA_STATUS_BAD_FILE, "overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, SA_STATUS_BAD_FILE, "twice"},
        {"{\"__metadata__\":[1]}", 0, SA_STATUS_BAD_FILE, "__metadata__"},
        {"{\"__metadata__\":{\"k\":1}}", 0, SA_STATUS_BAD_FILE, "not a string"},
        {"{\"a\":7}", 0, SA_STATUS_BAD_FILE, "not a JSON object"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SA_STATUS_BAD_FILE, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, SA_STATUS_BAD_FILE, "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, SA_STATUS_UNSUPPORTED, "dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 4, SA_STATUS_BAD_FILE, "data_offsets"},
        {"{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SA_STATUS_BAD_FILE, "UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        uint8_t *b = make_file(cases[i].header, cases[i].data, &n);
        enum sa_status s = open_bytes(b, n);
        CHECK_MSG((int)s == cases[i].expect, "case %zu: status %d, expected %d (%s)", i, s, cases[i].expect, sa_last_error());
        if (s) CHECK_MSG(strstr(sa_last_error(), cases[i].what), "case %zu: message \"%s\" lacks \"%s\"", i, sa_last_error(), cases[i].what);
        free(b);
    }
    /* size-level damage */
    uint8_t small[7] = {0};
    CHECK_EQ_INT(open_bytes(small, 7), SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "truncated"));
    CHECK_EQ_INT(open_bytes(small, 0), SA_STATUS_BAD_FILE);
    /* a 2^32 byte header in a 16-byte file: what is wrong is the file's size, not the limit
     * (issue 16: this was reported as "exceeds the 100 MB limit") */
    uint8_t big[16] = {0, 0, 0, 0, 1, 0, 0, 0, '{', '}'};
    CHECK_EQ_INT(open_bytes(big, 16), SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "header size 4294967296 larger than the file (16 bytes)"));
    CHECK(!strstr(sa_last_error(), "100 MB"));
    /* a header over the limit in a file that does hold it: the limit (calloc'd zero pages,
     * never touched: the length is checked before the header is read) */
    size_t huge_n = ((size_t)100 << 20) + 64;
    uint8_t *huge = calloc(1, huge_n);
    if (huge) {
        uint64_t hl = 100000001;
        for (int i = 0; i < 8; i++) huge[i] = (uint8_t)(hl >> (8 * i));
        struct sa_safetensors *hs = NULL;
        CHECK_EQ_INT(sa_safetensors_open_memory(huge, huge_n, &hs), SA_STATUS_BAD_FILE);
        CHECK(strstr(sa_last_error(), "100 MB") && hs == NULL);
        free(huge);
    }
    uint8_t longer[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK_EQ_INT(open_bytes(longer, 16), SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "larger than the file"));
    uint8_t nul[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' ', ' ', ' ', ' ', ' '};
    CHECK_EQ_INT(open_bytes(nul, 16), SA_STATUS_BAD_FILE);
    /* space padding after the JSON is fine (the reference pads to 8 bytes) */
    uint8_t pad[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    CHECK_OK(open_bytes(pad, 16));
    CHECK_EQ_INT(open_bytes(NULL, 0), SA_STATUS_BAD_FILE);
    /* a file on disk that is not safetensors */
    const char *p = tpath("junk.safetensors");
    CHECK_OK(sa_write_file_atomic(p, "GGUF\3\0\0\0", 8));
    struct sa_safetensors *st = NULL;
    CHECK_EQ_INT(sa_safetensors_open(p, &st), SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "junk.safetensors"));
}

static void write_text(const char *path, const char *text) { CHECK_OK(sa_write_file_atomic(path, text, strlen(text))); }

static void test_broken_index(void) {
    char dir[600], p[700];
    snprintf(dir, sizeof dir, "%s/badidx", harness_tmpdir());
    CHECK_OK(sa_mkdir_p(dir, 0755));
    size_t n;
    uint8_t *b = make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &n);
    snprintf(p, sizeof p, "%s/s1.safetensors", dir);
    CHECK_OK(sa_write_file_atomic(p, b, n));
    snprintf(p, sizeof p, "%s/s2.safetensors", dir);
    CHECK_OK(sa_write_file_atomic(p, b, n)); /* same tensor name in two shards */
    free(b);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    static const struct { const char *text, *what; } cases[] = {
        {"{\"weight_map\":", "JSON"},
        {"{\"metadata\":{}}", "weight_map"},
        {"{\"weight_map\":{\"a\":\"../s1.safetensors\"}}", "plain file name"},
        {"{\"weight_map\":{\"a\":\"/etc/passwd\"}}", "plain file name"},
        {"{\"weight_map\":{\"a\":3}}", "plain file name"},
        {"{\"weight_map\":{\"a\":\"missing.safetensors\"}}", "missing.safetensors"},
        {"{\"weight_map\":{\"b\":\"s1.safetensors\"}}", "in no shard"},
        {"{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}", "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(p, cases[i].text);
        struct sa_safetensors *st = NULL;
        enum sa_status s = sa_safetensors_open(dir, &st);
        CHECK_MSG(s != SA_STATUS_OK && st == NULL, "index case %zu opened", i);
        CHECK_MSG(strstr(sa_last_error(), cases[i].what), "index case %zu: \"%s\" lacks \"%s\"", i, sa_last_error(), cases[i].what);
        sa_safetensors_free(st);
    }
    write_text(p, "{\"weight_map\":{\"a\":\"s1.safetensors\"}}");
    struct sa_safetensors *st = NULL;
    CHECK_OK(sa_safetensors_open(dir, &st));
    CHECK_EQ_INT(sa_safetensors_n_tensors(st), 1);
    sa_safetensors_free(st);
}

/* Deterministic random damage to a valid file: flipped header/data bytes and truncation. */
static void test_random_flips(void) {
    struct sa_st_writer *w = sample_writer();
    const char *path = tpath("flip.safetensors");
    CHECK_OK(sa_st_writer_write_file(w, path));
    sa_st_writer_free(w);
    char *orig;
    size_t len;
    CHECK_OK(sa_read_file(path, 0, &orig, &len));
    uint8_t *b = malloc(len);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int n_ok = 0, n_err = 0, n_noerr_msg = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(b, orig, len);
        int flips = 1 + (int)(rng % 4);
        for (int k = 0; k < flips; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)((rng >> 33) % len);
            if (it % 3 == 0) pos %= 16; /* the size field and the start of the header */
            b[pos] ^= (uint8_t)(1u << ((rng >> 20) % 8));
            if (it % 5 == 0) b[pos] = "{}[]\":,0123456789-e. "[(rng >> 40) % 21];
        }
        size_t n = len;
        if (it % 7 == 0) n = (size_t)((rng >> 17) % (len + 1));
        enum sa_status s = open_bytes(b, n);
        if (s == SA_STATUS_OK) n_ok++;
        else {
            n_err++;
            if (!sa_last_error()[0]) n_noerr_msg++;
            CHECK_MSG(s == SA_STATUS_BAD_FILE || s == SA_STATUS_UNSUPPORTED, "iteration %d: status %d", it, s);
        }
    }
    CHECK(n_err > 1000);
    CHECK_EQ_INT(n_noerr_msg, 0);
    printf("    random damage: %d opened, %d rejected\n", n_ok, n_err);
    free(b);
    free(orig);
}

int main(void) {
    RUN(test_single_file);
    RUN(test_sharded);
    RUN(test_broken_corpus);
    RUN(test_broken_index);
    RUN(test_random_flips);
    return harness_summary();
}
