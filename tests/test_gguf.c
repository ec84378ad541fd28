/* test_gguf.c: the GGUF reader and writer: a writer round trip with every metadata type,
 * arrays and tensors of several types; copy_kv; the two real models of the cache; and the
 * hostile-file corpus: 45 kinds of corruption patched into a small valid file, truncation
 * at every offset, and a few thousand random byte flips (never a crash: run under
 * `make asan` too). gguf-py and bit-exactness: tests/py/test_gguf_ref.py. */
#define _GNU_SOURCE
#include "harness.h"
#include "sa/dtype.h"
#include "sa/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Invariants of the test itself (not checks of the library): abort with file:line. */
#define REQUIRE(x)                                                                       \
    do {                                                                                 \
        if (!(x)) {                                                                      \
            fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #x);      \
            abort();                                                                     \
        }                                                                                \
    } while (0)
#define REQUIRE_OK(e) REQUIRE((e) == SA_STATUS_OK)

/* ---- a raw GGUF builder that records where each field lies ---- */

struct bytes {
    uint8_t *p;
    size_t n, cap;
};

static size_t put(struct bytes *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return b->n - n;
}
static size_t put_u32(struct bytes *b, uint32_t v) { return put(b, &v, 4); }
static size_t put_u64(struct bytes *b, uint64_t v) { return put(b, &v, 8); }
static size_t put_str(struct bytes *b, const char *s) {
    size_t o = put_u64(b, strlen(s));
    put(b, s, strlen(s));
    return o;
}
static void put_pad(struct bytes *b, size_t a) {
    static const uint8_t z[64];
    put(b, z, (a - b->n % a) % a);
}

enum { NT = 3 };
struct offs {
    size_t version, n_tensors, n_kv;
    size_t arch_key_len, arch_key, arch_type, arch_val_len;
    size_t align_type, align_val, bool_val;
    size_t arr_u32_etype, arr_u32_n, arr_str_etype, arr_str_n, arr_str_s0len;
    size_t dupb_key, f32_type;
    size_t t_name_len[NT], t_name[NT], t_ndims[NT], t_ne[NT][2], t_type[NT], t_offset[NT];
    size_t data_offset, data_end; /* data_end: end of the last tensor's bytes */
};

/* The small valid file: 8 keys (string, u32 alignment, bool, u32 array, string array, two
 * u8, f32) and 3 tensors: w.a F32 [8, 2], w.b Q8_0 [32, 2], w.c F16 [4]. */
static void build_small(struct bytes *b, struct offs *o, const char *name_a) {
    memset(b, 0, sizeof *b);
    put(b, "GGUF", 4);
    o->version = put_u32(b, 3);
    o->n_tensors = put_u64(b, NT);
    o->n_kv = put_u64(b, 8);
    o->arch_key_len = put_str(b, "general.architecture");
    o->arch_key = o->arch_key_len + 8;
    o->arch_type = put_u32(b, 8);
    o->arch_val_len = put_str(b, "llama");
    put_str(b, "general.alignment");
    o->align_type = put_u32(b, 4);
    o->align_val = put_u32(b, 32);
    put_str(b, "t.bool");
    put_u32(b, 7);
    o->bool_val = put(b, "\x01", 1);
    put_str(b, "t.arr_u32");
    put_u32(b, 9);
    o->arr_u32_etype = put_u32(b, 4);
    o->arr_u32_n = put_u64(b, 3);
    put_u32(b, 1), put_u32(b, 2), put_u32(b, 3);
    put_str(b, "t.arr_str");
    put_u32(b, 9);
    o->arr_str_etype = put_u32(b, 8);
    o->arr_str_n = put_u64(b, 2);
    o->arr_str_s0len = put_str(b, "ab");
    put_str(b, "cd");
    put_str(b, "t.dupa");
    put_u32(b, 0);
    put(b, "\x05", 1);
    o->dupb_key = put_str(b, "t.dupb") + 8;
    put_u32(b, 0);
    put(b, "\x06", 1);
    put_str(b, "t.f32");
    o->f32_type = put_u32(b, 6);
    float f = 1.5f;
    put(b, &f, 4);
    static const struct {
        const char *name;
        uint32_t type, n_dims;
        uint64_t ne[2], offset;
    } ts[NT] = {{"w.a", SA_DTYPE_F32, 2, {8, 2}, 0}, {"w.b", SA_DTYPE_Q8_0, 2, {32, 2}, 64}, {"w.c", SA_DTYPE_F16, 1, {4, 1}, 160}};
    for (int i = 0; i < NT; i++) {
        o->t_name_len[i] = put_str(b, i == 0 && name_a ? name_a : ts[i].name);
        o->t_name[i] = o->t_name_len[i] + 8;
        o->t_ndims[i] = put_u32(b, ts[i].n_dims);
        for (uint32_t d = 0; d < ts[i].n_dims; d++) o->t_ne[i][d] = put_u64(b, ts[i].ne[d]);
        o->t_type[i] = put_u32(b, ts[i].type);
        o->t_offset[i] = put_u64(b, ts[i].offset);
    }
    put_pad(b, 32);
    o->data_offset = b->n;
    float a[16], x[64];
    for (int i = 0; i < 16; i++) a[i] = (float)i * 0.5f;
    put(b, a, sizeof a);
    for (int i = 0; i < 64; i++) x[i] = sinf((float)i);
    uint8_t q8[68];
    REQUIRE_OK(sa_quantize(SA_DTYPE_Q8_0, x, q8, 64));
    put(b, q8, sizeof q8);
    put_pad(b, 32);
    uint16_t h[4] = {0x3c00, 0x4000, 0xc000, 0x0001};
    put(b, h, sizeof h);
    o->data_end = b->n;
    put_pad(b, 32);
}

static void p32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static void p64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, 8); }

/* Walks every accessor of an opened file (also what the fuzzer does). */
static uint64_t walk(const struct sa_gguf *g) {
    uint64_t sink = sa_gguf_version(g) + sa_gguf_alignment(g) + sa_gguf_data_offset(g);
    for (int64_t i = 0; i < sa_gguf_n_kv(g); i++) {
        const char *key = sa_gguf_key(g, i);
        REQUIRE(key && sa_gguf_find_key(g, key) == i);
        enum sa_gguf_type t = sa_gguf_kv_type(g, i);
        uint32_t u;
        int64_t v;
        float f;
        bool bo;
        sink += sa_gguf_get_u32(g, key, &u) + sa_gguf_get_i64(g, key, &v) + sa_gguf_get_f32(g, key, &f) +
                sa_gguf_get_bool(g, key, &bo);
        if (t == SA_GGUF_TYPE_STRING) {
            struct sa_gguf_str s = sa_gguf_get_str(g, i);
            if (s.len) sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
            char *c = sa_gguf_get_string(g, key);
            REQUIRE(c != NULL);
            free(c);
        } else if (t == SA_GGUF_TYPE_ARRAY) {
            enum sa_gguf_type et = sa_gguf_arr_type(g, i);
            uint64_t n = sa_gguf_arr_n(g, i);
            if (et == SA_GGUF_TYPE_STRING) {
                for (uint64_t j = 0; j < n; j++) {
                    struct sa_gguf_str s = sa_gguf_arr_str(g, i, j);
                    if (s.len) sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
                }
                REQUIRE(sa_gguf_arr_str(g, i, n).ptr == NULL);
            } else {
                const uint8_t *d = sa_gguf_arr_data(g, i);
                uint64_t bytes = 0;
                switch (et) {
                case SA_GGUF_TYPE_UINT8: case SA_GGUF_TYPE_INT8: case SA_GGUF_TYPE_BOOL: bytes = n; break;
                case SA_GGUF_TYPE_UINT16: case SA_GGUF_TYPE_INT16: bytes = 2 * n; break;
                case SA_GGUF_TYPE_UINT32: case SA_GGUF_TYPE_INT32: case SA_GGUF_TYPE_FLOAT32: bytes = 4 * n; break;
                default: bytes = 8 * n; break;
                }
                if (bytes) sink += d[0] + d[bytes - 1];
            }
        } else {
            REQUIRE(sa_gguf_arr_n(g, i) == 0 && sa_gguf_arr_data(g, i) == NULL);
        }
    }
    for (int64_t i = 0; i < sa_gguf_n_tensors(g); i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        REQUIRE(t && sa_gguf_find_tensor(g, t->name) == t);
        const uint8_t *d = t->data;
        sink += d[0] + d[t->n_bytes - 1];
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (n <= (1 << 16)) {
            float *y = malloc((size_t)n * sizeof *y);
            if (sa_dequantize(t->type, t->data, y, n) == SA_STATUS_OK) sink += y[n - 1] != 0;
            free(y);
        }
    }
    REQUIRE(sa_gguf_tensor(g, sa_gguf_n_tensors(g)) == NULL && sa_gguf_tensor(g, -1) == NULL);
    return sink;
}

/* Opens a private exact-size copy (so ASan sees any read past the end). */
static enum sa_status open_copy(const uint8_t *p, size_t n, struct sa_gguf **g) {
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, p, n);
    enum sa_status s = sa_gguf_open_memory(c, n, g);
    if (!s) walk(*g);
    sa_gguf_free(*g);
    *g = NULL;
    free(c);
    return s;
}

static void test_small_valid(void) {
    struct bytes b;
    struct offs o;
    build_small(&b, &o, NULL);
    struct sa_gguf *g = NULL;
    CHECK_OK(sa_gguf_open_memory(b.p, b.n, &g));
    if (!g) return;
    CHECK_EQ_INT(sa_gguf_version(g), 3);
    CHECK_EQ_INT(sa_gguf_alignment(g), 32);
    CHECK_EQ_INT(sa_gguf_data_offset(g), o.data_offset);
    CHECK_EQ_INT(sa_gguf_n_kv(g), 8);
    CHECK_EQ_INT(sa_gguf_n_tensors(g), 3);
    const struct sa_gguf_tensor *t = sa_gguf_find_tensor(g, "w.b");
    CHECK(t && t->type == SA_DTYPE_Q8_0 && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 2 && t->ne[2] == 1 &&
          t->n_bytes == 68 && t->offset == 64 && t->data == b.p + o.data_offset + 64);
    t = sa_gguf_find_tensor(g, "w.c");
    float y[4];
    CHECK(t && sa_dequantize(t->type, t->data, y, 4) == SA_STATUS_OK && y[0] == 1 && y[2] == -2);
    CHECK(sa_gguf_find_tensor(g, "w.d") == NULL && sa_gguf_find_tensor(g, NULL) == NULL);
    walk(g);
    sa_gguf_free(g);
    free(b.p);
}

/* ---- the corruption corpus ---- */

struct corruption {
    const char *name;
    int status; /* expected; 0: BAD_FILE or UNSUPPORTED */
    const char *words;
};

static const struct corruption corruptions[] = {
    {"bad magic", SA_STATUS_BAD_FILE, "bad magic"},
    {"version 1", SA_STATUS_UNSUPPORTED, "version 1"},
    {"version 4", SA_STATUS_UNSUPPORTED, "version 4"},
    {"version 0", SA_STATUS_BAD_FILE, "version 0"},
    {"big-endian", SA_STATUS_UNSUPPORTED, "big-endian"},
    {"huge tensor count", SA_STATUS_BAD_FILE, "tensor count"},
    {"huge kv count", SA_STATUS_BAD_FILE, "kv count"},
    {"max kv count", SA_STATUS_BAD_FILE, "kv count"},
    {"key length 2^63", SA_STATUS_BAD_FILE, "string length"},
    {"key length 2^64-1", SA_STATUS_BAD_FILE, "string length"},
    {"string value length", SA_STATUS_BAD_FILE, "string length"},
    {"empty key", SA_STATUS_BAD_FILE, "empty"},
    {"NUL in key", SA_STATUS_BAD_FILE, "NUL"},
    {"value type 13", SA_STATUS_BAD_FILE, "value type 13"},
    {"value type 2^32-1", SA_STATUS_BAD_FILE, "value type"},
    {"bool 2", SA_STATUS_BAD_FILE, "bool"},
    {"array count overflow", SA_STATUS_BAD_FILE, "array count"},
    {"array count 2^64-1", SA_STATUS_BAD_FILE, "array count"},
    {"array count past end", SA_STATUS_BAD_FILE, "array count"},
    {"string array count", SA_STATUS_BAD_FILE, "array count"},
    {"array string length", SA_STATUS_BAD_FILE, "string length"},
    {"nested array", SA_STATUS_UNSUPPORTED, "nested"},
    {"array element type", SA_STATUS_BAD_FILE, "element value type"},
    {"duplicate key", SA_STATUS_BAD_FILE, "duplicate key 't.dupa'"},
    {"alignment 33", SA_STATUS_BAD_FILE, "power of 2"},
    {"alignment 0", SA_STATUS_BAD_FILE, "power of 2"},
    {"alignment type", SA_STATUS_BAD_FILE, "must be a uint32"},
    {"tensor type 100000", SA_STATUS_BAD_FILE, "bad tensor type"},
    {"tensor type iq2_xxs", SA_STATUS_UNSUPPORTED, "iq2_xxs"},
    {"n_dims 0", SA_STATUS_BAD_FILE, "0 dimensions"},
    {"n_dims 5", SA_STATUS_BAD_FILE, "5 dimensions"},
    {"ne 0", SA_STATUS_BAD_FILE, "must be >= 1"},
    {"ne -1", SA_STATUS_BAD_FILE, "must be >= 1"},
    {"ne product overflow", SA_STATUS_BAD_FILE, "overflows"},
    {"byte size overflow", SA_STATUS_BAD_FILE, "size overflows"},
    {"row not a block multiple", SA_STATUS_BAD_FILE, "block size"},
    {"misaligned offset", SA_STATUS_BAD_FILE, "misaligned"},
    {"data out of file", SA_STATUS_BAD_FILE, "outside the file"},
    {"offset wraps", SA_STATUS_BAD_FILE, "outside the file"},
    {"overlapping data", SA_STATUS_BAD_FILE, "overlap"},
    {"duplicate tensor", SA_STATUS_BAD_FILE, "duplicate tensor name: tensor 'w.a'"},
    {"empty tensor name", SA_STATUS_BAD_FILE, "empty"},
    {"NUL in tensor name", SA_STATUS_BAD_FILE, "NUL"},
    {"tensor name too long", SA_STATUS_BAD_FILE, "too long"},
    {"data cut", SA_STATUS_BAD_FILE, "outside the file"},
    {"tensor count + 1", 0, ""},
    {"kv count - 1", 0, ""},
};

/* Applies corruption i to a fresh copy of the small file. */
static void corrupt(int i, struct bytes *b, struct offs *o) {
    const char *name_a = !strcmp(corruptions[i].name, "tensor name too long")
                             ? "a_tensor_name_of_sixty_four_bytes_which_is_one_more_than_allowed"
                             : NULL;
    build_small(b, o, name_a);
    uint8_t *p = b->p;
    const char *n = corruptions[i].name;
#define IS(s) (!strcmp(n, s))
    if (IS("bad magic")) p[0] = 'X';
    else if (IS("version 1")) p32(p, o->version, 1);
    else if (IS("version 4")) p32(p, o->version, 4);
    else if (IS("version 0")) p32(p, o->version, 0);
    else if (IS("big-endian")) p32(p, o->version, 0x03000000);
    else if (IS("huge tensor count")) p64(p, o->n_tensors, 1ull << 60);
    else if (IS("huge kv count")) p64(p, o->n_kv, 1ull << 60);
    else if (IS("max kv count")) p64(p, o->n_kv, UINT64_MAX);
    else if (IS("key length 2^63")) p64(p, o->arch_key_len, 1ull << 63);
    else if (IS("key length 2^64-1")) p64(p, o->arch_key_len, UINT64_MAX);
    else if (IS("string value length")) p64(p, o->arch_val_len, UINT64_MAX - 3);
    else if (IS("empty key")) p64(p, o->arch_key_len, 0);
    else if (IS("NUL in key")) p[o->arch_key + 3] = 0;
    else if (IS("value type 13")) p32(p, o->arch_type, 13);
    else if (IS("value type 2^32-1")) p32(p, o->f32_type, UINT32_MAX);
    else if (IS("bool 2")) p[o->bool_val] = 2;
    else if (IS("array count overflow")) p64(p, o->arr_u32_n, 1ull << 62);
    else if (IS("array count 2^64-1")) p64(p, o->arr_u32_n, UINT64_MAX);
    else if (IS("array count past end")) p64(p, o->arr_u32_n, b->n / 4);
    else if (IS("string array count")) p64(p, o->arr_str_n, 1ull << 61);
    else if (IS("array string length")) p64(p, o->arr_str_s0len, 1ull << 40);
    else if (IS("nested array")) p32(p, o->arr_u32_etype, 9);
    else if (IS("array element type")) p32(p, o->arr_u32_etype, 77);
    else if (IS("duplicate key")) p[o->dupb_key + 5] = 'a';
    else if (IS("alignment 33")) p32(p, o->align_val, 33);
    else if (IS("alignment 0")) p32(p, o->align_val, 0);
    else if (IS("alignment type")) p32(p, o->align_type, 5);
    else if (IS("tensor type 100000")) p32(p, o->t_type[1], 100000);
    else if (IS("tensor type iq2_xxs")) p32(p, o->t_type[1], 16);
    else if (IS("n_dims 0")) p32(p, o->t_ndims[0], 0);
    else if (IS("n_dims 5")) p32(p, o->t_ndims[0], 5);
    else if (IS("ne 0")) p64(p, o->t_ne[0][0], 0);
    else if (IS("ne -1")) p64(p, o->t_ne[0][1], UINT64_MAX);
    else if (IS("ne product overflow")) p64(p, o->t_ne[0][0], 1ull << 40), p64(p, o->t_ne[0][1], 1ull << 40);
    else if (IS("byte size overflow")) p64(p, o->t_ne[0][0], 1ull << 62), p64(p, o->t_ne[0][1], 1);
    else if (IS("row not a block multiple")) p64(p, o->t_ne[1][0], 33);
    else if (IS("misaligned offset")) p64(p, o->t_offset[1], 65);
    else if (IS("data out of file")) p64(p, o->t_offset[2], 1ull << 40);
    else if (IS("offset wraps")) p64(p, o->t_offset[2], UINT64_MAX - 31);
    else if (IS("overlapping data")) p64(p, o->t_offset[2], 0);
    else if (IS("duplicate tensor")) p[o->t_name[1] + 2] = 'a';
    else if (IS("empty tensor name")) p64(p, o->t_name_len[1], 0);
    else if (IS("NUL in tensor name")) p[o->t_name[1] + 1] = 0;
    else if (IS("data cut")) b->n = o->data_end - 1;
    else if (IS("tensor name too long")) (void)0; /* built with the long name */
    else if (IS("tensor count + 1")) p64(p, o->n_tensors, NT + 1);
    else if (IS("kv count - 1")) p64(p, o->n_kv, 7);
    else {
        fprintf(stderr, "unknown corruption %s\n", n);
        abort();
    }
#undef IS
}

static void test_corruptions(void) {
    int n = (int)(sizeof corruptions / sizeof corruptions[0]);
    for (int i = 0; i < n; i++) {
        struct bytes b;
        struct offs o;
        corrupt(i, &b, &o);
        struct sa_gguf *g = NULL;
        enum sa_status s = open_copy(b.p, b.n, &g);
        const struct corruption *c = &corruptions[i];
        if (getenv("SA_TEST_VERBOSE")) printf("    %-26s %d %s\n", c->name, (int)s, sa_last_error());
        bool status_ok = c->status ? (int)s == c->status : (s == SA_STATUS_BAD_FILE || s == SA_STATUS_UNSUPPORTED);
        CHECK_MSG(status_ok, "corruption '%s': status %d (%s), want %d", c->name, (int)s, sa_last_error(), c->status);
        CHECK_MSG(strstr(sa_last_error(), c->words) != NULL, "corruption '%s': message \"%s\" lacks \"%s\"", c->name,
                  sa_last_error(), c->words);
        free(b.p);
    }
    CHECK(n >= 45);
}

/* Every prefix of the file: an error up to the end of the last tensor's data, then ok. */
static void test_truncation(void) {
    struct bytes b;
    struct offs o;
    build_small(&b, &o, NULL);
    int bad = 0;
    for (size_t cut = 0; cut <= b.n; cut++) {
        struct sa_gguf *g = NULL;
        enum sa_status s = open_copy(b.p, cut, &g);
        const char *e = sa_last_error();
        if (cut < o.data_end) {
            bool ok = s == SA_STATUS_BAD_FILE &&
                      (strstr(e, "truncated") || strstr(e, "exceeds") || strstr(e, "outside the file"));
            if (!ok) {
                if (bad++ < 5) printf("    cut at %zu of %zu: status %d: %s\n", cut, b.n, (int)s, e);
            }
        } else {
            bad += s != SA_STATUS_OK;
        }
    }
    CHECK_EQ_INT(bad, 0);
    free(b.p);
}

static uint64_t rng = 0x853c49e6748fea9bull;
static uint64_t rnd64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Deterministic random mutations: each either fails with a message or opens and walks. */
static void test_random_flips(void) {
    struct bytes b;
    struct offs o;
    build_small(&b, &o, NULL);
    uint8_t *m = malloc(b.n);
    int n_ok = 0, n_err = 0, bad = 0;
    for (int it = 0; it < 4000; it++) {
        memcpy(m, b.p, b.n);
        size_t n = b.n;
        int k = 1 + (int)(rnd64() % 4);
        for (int j = 0; j < k; j++) {
            uint64_t r = rnd64();
            /* mostly in the header region, where the structure is */
            size_t at = (r & 3) ? (size_t)((r >> 8) % o.data_offset) : (size_t)((r >> 8) % b.n);
            switch ((r >> 4) % 4) {
            case 0: m[at] ^= (uint8_t)(1u << ((r >> 40) % 8)); break;
            case 1: m[at] = (uint8_t)(r >> 48); break;
            case 2: if (at + 8 <= n) p64(m, at, ((r >> 50) & 1) ? UINT64_MAX - (r >> 56) : (r >> 56)); break;
            default: m[at] = (uint8_t)((r >> 48) % 16); break;
            }
        }
        if (rnd64() % 8 == 0) n = (size_t)(rnd64() % (b.n + 1));
        struct sa_gguf *g = NULL;
        enum sa_status s = open_copy(m, n, &g);
        if (s == SA_STATUS_OK) n_ok++;
        else {
            n_err++;
            bad += (s != SA_STATUS_BAD_FILE && s != SA_STATUS_UNSUPPORTED) || !sa_last_error()[0];
        }
    }
    printf("    4000 mutations: %d opened (walked), %d rejected\n", n_ok, n_err);
    CHECK_EQ_INT(bad, 0);
    CHECK(n_ok > 0 && n_err > 0);
    free(m);
    free(b.p);
}

/* ---- writer ---- */

static char *tmp_path(const char *name) {
    char *p = malloc(1024);
    snprintf(p, 1024, "%s/%s", harness_tmpdir(), name);
    return p;
}

struct wdata {
    float f32[7 * 3];
    uint16_t f16[16];
    uint16_t bf16[2 * 3 * 4];
    uint8_t q8[2 * 2 * 34];
    uint8_t q4k[144];
    float f4d[2 * 3 * 4 * 5];
    int32_t i32[5];
};

static void fill_wdata(struct wdata *d) {
    float x[128];
    for (int i = 0; i < 21; i++) d->f32[i] = (float)i - 10.25f;
    for (int i = 0; i < 128; i++) x[i] = cosf((float)i * 0.3f) * 3;
    REQUIRE_OK(sa_quantize(SA_DTYPE_F16, x, d->f16, 16));
    REQUIRE_OK(sa_quantize(SA_DTYPE_BF16, x, d->bf16, 24));
    REQUIRE_OK(sa_quantize(SA_DTYPE_Q8_0, x, d->q8, 128));
    for (int i = 0; i < 144; i++) d->q4k[i] = (uint8_t)(i * 37 + 11);
    d->q4k[0] = 0x00, d->q4k[1] = 0x30, d->q4k[2] = 0x00, d->q4k[3] = 0x20; /* sane d, dmin */
    for (int i = 0; i < 120; i++) d->f4d[i] = (float)i;
    for (int i = 0; i < 5; i++) d->i32[i] = -i * 1000;
}

static const struct {
    const char *name;
    enum sa_dtype type;
    uint32_t n_dims;
    int64_t ne[4];
} wtensors[] = {
    {"t.f32", SA_DTYPE_F32, 2, {7, 3, 1, 1}},   {"t.f16", SA_DTYPE_F16, 1, {16, 1, 1, 1}},
    {"t.bf16", SA_DTYPE_BF16, 3, {2, 3, 4, 1}}, {"t.q8_0", SA_DTYPE_Q8_0, 2, {64, 2, 1, 1}},
    {"t.q4_k", SA_DTYPE_Q4_K, 1, {256, 9, 9, 9}}, {"t.4d", SA_DTYPE_F32, 4, {2, 3, 4, 5}},
    {"t.i32", SA_DTYPE_I32, 1, {5, 1, 1, 1}},
};

static const void *wtensor_data(const struct wdata *d, int i) {
    const void *p[] = {d->f32, d->f16, d->bf16, d->q8, d->q4k, d->f4d, d->i32};
    return p[i];
}

static void write_all_types(struct sa_gguf_writer *w, const struct wdata *d) {
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -(1ll << 40);
    double f64 = 3.141592653589793;
    bool bl = true;
    CHECK_OK(sa_gguf_writer_set_str(w, "general.architecture", "testarch"));
    CHECK_OK(sa_gguf_writer_set_scalar(w, "v.u8", SA_GGUF_TYPE_UINT8, &u8));
    CHECK_OK(sa_gguf_writer_set_scalar(w, "v.i8", SA_GGUF_TYPE_INT8, &i8));
    CHECK_OK(sa_gguf_writer_set_scalar(w, "v.u16", SA_GGUF_TYPE_UINT16, &u16));
    CHECK_OK(sa_gguf_writer_set_scalar(w, "v.i16", SA_GGUF_TYPE_INT16, &i16));
    CHECK_OK(sa_gguf_writer_set_u32(w, "v.u32", 4000000000u));
    CHECK_OK(sa_gguf_writer_set_i32(w, "v.i32", -2000000000));
    CHECK_OK(sa_gguf_writer_set_f32(w, "v.f32", 0.1f));
    CHECK_OK(sa_gguf_writer_set_bool(w, "v.bool", false));
    CHECK_OK(sa_gguf_writer_set_scalar(w, "v.bool2", SA_GGUF_TYPE_BOOL, &bl));
    CHECK_OK(sa_gguf_writer_set_u64(w, "v.u64", UINT64_MAX));
    CHECK_OK(sa_gguf_writer_set_scalar(w, "v.i64", SA_GGUF_TYPE_INT64, &i64));
    CHECK_OK(sa_gguf_writer_set_scalar(w, "v.f64", SA_GGUF_TYPE_FLOAT64, &f64));
    CHECK_OK(sa_gguf_writer_set_str(w, "v.str", "h\xc3\xa9llo"));
    CHECK_OK(sa_gguf_writer_set_str(w, "v.empty", ""));
    CHECK_OK(sa_gguf_writer_set_u32(w, "v.replaced", 1));
    CHECK_OK(sa_gguf_writer_set_str(w, "v.replaced", "now a string"));
    static const uint8_t a_u8[] = {1, 2, 255};
    static const int8_t a_i8[] = {-1, 2};
    static const uint16_t a_u16[] = {65535};
    static const int16_t a_i16[] = {-5, 5, 6};
    static const uint32_t a_u32[] = {7, 8, 9, 10};
    static const int32_t a_i32[] = {-7};
    static const float a_f32[] = {1.5f, -2.25f};
    static const uint8_t a_bool[] = {1, 0, 1};
    static const uint64_t a_u64[] = {1ull << 63};
    static const int64_t a_i64[] = {-3, 4};
    static const double a_f64[] = {1e300, -0.5};
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.u8", SA_GGUF_TYPE_UINT8, a_u8, 3));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.i8", SA_GGUF_TYPE_INT8, a_i8, 2));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.u16", SA_GGUF_TYPE_UINT16, a_u16, 1));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.i16", SA_GGUF_TYPE_INT16, a_i16, 3));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.u32", SA_GGUF_TYPE_UINT32, a_u32, 4));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.i32", SA_GGUF_TYPE_INT32, a_i32, 1));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.f32", SA_GGUF_TYPE_FLOAT32, a_f32, 2));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.bool", SA_GGUF_TYPE_BOOL, a_bool, 3));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.u64", SA_GGUF_TYPE_UINT64, a_u64, 1));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.i64", SA_GGUF_TYPE_INT64, a_i64, 2));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.f64", SA_GGUF_TYPE_FLOAT64, a_f64, 2));
    CHECK_OK(sa_gguf_writer_set_arr(w, "a.empty", SA_GGUF_TYPE_INT32, NULL, 0));
    struct sa_gguf_str strs[] = {{"a", 1}, {"", 0}, {"\xe2\x96\x81token", 8}, {"x\0y", 3}};
    CHECK_OK(sa_gguf_writer_set_arr_str(w, "a.str", strs, 4));
    for (int i = 0; i < (int)(sizeof wtensors / sizeof wtensors[0]); i++)
        CHECK_OK(sa_gguf_writer_add_tensor(w, wtensors[i].name, wtensors[i].type, wtensors[i].n_dims, wtensors[i].ne,
                                           wtensor_data(d, i)));
}

static void check_all_types(const struct sa_gguf *g, const struct wdata *d, uint64_t alignment) {
    CHECK_EQ_INT(sa_gguf_version(g), 3);
    CHECK_EQ_INT(sa_gguf_alignment(g), alignment);
    CHECK_EQ_INT(sa_gguf_data_offset(g) % alignment, 0);
    CHECK_EQ_INT(sa_gguf_n_kv(g), 29 + (alignment != 32));
    CHECK_EQ_STR(sa_gguf_key(g, 0), "general.architecture");
    char *s = sa_gguf_get_string(g, "general.architecture");
    CHECK_EQ_STR(s, "testarch");
    free(s);
    uint32_t u;
    int64_t v;
    float f;
    bool bo;
    CHECK(sa_gguf_get_u32(g, "v.u8", &u) && u == 200);
    CHECK(sa_gguf_get_i64(g, "v.i8", &v) && v == -100);
    CHECK(!sa_gguf_get_u32(g, "v.i8", &u)); /* negative */
    CHECK(sa_gguf_get_u32(g, "v.u16", &u) && u == 60000);
    CHECK(sa_gguf_get_i64(g, "v.i16", &v) && v == -30000);
    CHECK(sa_gguf_get_u32(g, "v.u32", &u) && u == 4000000000u);
    CHECK(sa_gguf_get_i64(g, "v.i32", &v) && v == -2000000000);
    CHECK(sa_gguf_get_f32(g, "v.f32", &f) && f == 0.1f);
    CHECK(!sa_gguf_get_u32(g, "v.f32", &u));
    CHECK(sa_gguf_get_bool(g, "v.bool", &bo) && !bo);
    CHECK(sa_gguf_get_bool(g, "v.bool2", &bo) && bo);
    CHECK(!sa_gguf_get_u32(g, "v.bool", &u));
    CHECK(!sa_gguf_get_u32(g, "v.u64", &u) && !sa_gguf_get_i64(g, "v.u64", &v)); /* too large */
    CHECK(sa_gguf_get_i64(g, "v.i64", &v) && v == -(1ll << 40));
    CHECK(sa_gguf_get_f32(g, "v.f64", &f) && f == (float)3.141592653589793);
    CHECK(!sa_gguf_get_f32(g, "v.missing", &f) && !sa_gguf_get_bool(g, "v.u8", &bo));
    CHECK(sa_gguf_get_string(g, "v.u8") == NULL && sa_gguf_get_string(g, "nope") == NULL);
    s = sa_gguf_get_string(g, "v.str");
    CHECK_EQ_STR(s, "h\xc3\xa9llo");
    free(s);
    s = sa_gguf_get_string(g, "v.empty");
    CHECK_EQ_STR(s, "");
    free(s);
    int64_t i = sa_gguf_find_key(g, "v.replaced");
    CHECK(i == 15 && sa_gguf_kv_type(g, i) == SA_GGUF_TYPE_STRING);
    CHECK(sa_gguf_find_key(g, "nope") == -1 && sa_gguf_find_key(g, NULL) == -1);
    /* arrays */
    static const struct {
        const char *key;
        enum sa_gguf_type t;
        uint64_t n;
        size_t es;
    } arrs[] = {{"a.u8", SA_GGUF_TYPE_UINT8, 3, 1},   {"a.i8", SA_GGUF_TYPE_INT8, 2, 1},
                {"a.u16", SA_GGUF_TYPE_UINT16, 1, 2}, {"a.i16", SA_GGUF_TYPE_INT16, 3, 2},
                {"a.u32", SA_GGUF_TYPE_UINT32, 4, 4}, {"a.i32", SA_GGUF_TYPE_INT32, 1, 4},
                {"a.f32", SA_GGUF_TYPE_FLOAT32, 2, 4}, {"a.bool", SA_GGUF_TYPE_BOOL, 3, 1},
                {"a.u64", SA_GGUF_TYPE_UINT64, 1, 8}, {"a.i64", SA_GGUF_TYPE_INT64, 2, 8},
                {"a.f64", SA_GGUF_TYPE_FLOAT64, 2, 8}, {"a.empty", SA_GGUF_TYPE_INT32, 0, 4}};
    for (size_t k = 0; k < sizeof arrs / sizeof arrs[0]; k++) {
        i = sa_gguf_find_key(g, arrs[k].key);
        CHECK_MSG(i >= 0 && sa_gguf_kv_type(g, i) == SA_GGUF_TYPE_ARRAY && sa_gguf_arr_type(g, i) == arrs[k].t &&
                      sa_gguf_arr_n(g, i) == arrs[k].n && sa_gguf_arr_data(g, i) != NULL,
                  "array %s", arrs[k].key);
    }
    int16_t i16[3];
    memcpy(i16, sa_gguf_arr_data(g, sa_gguf_find_key(g, "a.i16")), 6);
    CHECK(i16[0] == -5 && i16[2] == 6);
    double f64[2];
    memcpy(f64, sa_gguf_arr_data(g, sa_gguf_find_key(g, "a.f64")), 16);
    CHECK(f64[0] == 1e300 && f64[1] == -0.5);
    uint64_t u64;
    memcpy(&u64, sa_gguf_arr_data(g, sa_gguf_find_key(g, "a.u64")), 8);
    CHECK(u64 == 1ull << 63);
    i = sa_gguf_find_key(g, "a.str");
    CHECK(sa_gguf_arr_type(g, i) == SA_GGUF_TYPE_STRING && sa_gguf_arr_n(g, i) == 4 && sa_gguf_arr_data(g, i) == NULL);
    struct sa_gguf_str st = sa_gguf_arr_str(g, i, 2);
    CHECK(st.len == 8 && !memcmp(st.ptr, "\xe2\x96\x81token", 8));
    st = sa_gguf_arr_str(g, i, 3);
    CHECK(st.len == 3 && !memcmp(st.ptr, "x\0y", 3));
    CHECK(sa_gguf_arr_str(g, i, 1).len == 0 && sa_gguf_arr_str(g, i, 4).ptr == NULL);
    CHECK(sa_gguf_arr_str(g, sa_gguf_find_key(g, "a.u8"), 0).ptr == NULL);
    CHECK(sa_gguf_get_str(g, i).ptr == NULL);
    /* tensors */
    int nt = (int)(sizeof wtensors / sizeof wtensors[0]);
    CHECK_EQ_INT(sa_gguf_n_tensors(g), nt);
    for (int k = 0; k < nt; k++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, k);
        CHECK_EQ_STR(t->name, wtensors[k].name);
        CHECK(t == sa_gguf_find_tensor(g, wtensors[k].name));
        CHECK(t->type == wtensors[k].type && t->n_dims == wtensors[k].n_dims);
        uint64_t n_bytes = 1;
        for (uint32_t dd = 0; dd < 4; dd++) {
            int64_t want = dd < wtensors[k].n_dims ? wtensors[k].ne[dd] : 1;
            CHECK_MSG(t->ne[dd] == want, "%s ne[%u] = %lld", t->name, dd, (long long)t->ne[dd]);
            if (dd) n_bytes *= (uint64_t)want;
        }
        uint64_t row;
        CHECK(sa_dtype_row_bytes(t->type, (uint64_t)t->ne[0], &row));
        CHECK_EQ_INT(t->n_bytes, row * n_bytes);
        CHECK_EQ_INT(t->offset % alignment, 0);
        CHECK_MSG(!memcmp(t->data, wtensor_data(d, k), t->n_bytes), "%s data", t->name);
    }
}

static void test_writer_round_trip(void) {
    struct wdata d;
    fill_wdata(&d);
    char *path = tmp_path("all.gguf"), *path2 = tmp_path("copy.gguf"), *path3 = tmp_path("align.gguf");
    struct sa_gguf_writer *w = NULL;
    CHECK_OK(sa_gguf_writer_init(&w));
    write_all_types(w, &d);
    CHECK_OK(sa_gguf_writer_write(w, path));
    sa_gguf_writer_free(w);
    if (!harness_on_tmpfs(path)) CHECK_EQ_INT(harness_resident_pages(path), 0); /* dropped: read back as large folios */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0); /* renamed into place */
    struct sa_gguf *g = NULL;
    CHECK_OK(sa_gguf_open(path, &g));
    if (!g) return;
    check_all_types(g, &d, 32);
    walk(g);

    /* copy_kv + the same tensors from the reader: a byte-identical file */
    CHECK_OK(sa_gguf_writer_init(&w));
    CHECK_OK(sa_gguf_writer_copy_kv(w, g));
    for (int64_t k = 0; k < sa_gguf_n_tensors(g); k++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, k);
        CHECK_OK(sa_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data));
    }
    CHECK_OK(sa_gguf_writer_write(w, path2));
    sa_gguf_writer_free(w);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    FILE *fa = fopen(path, "rb"), *fb = fopen(path2, "rb");
    if (fa && fb) {
        fseek(fa, 0, SEEK_END), fseek(fb, 0, SEEK_END);
        na = (size_t)ftell(fa), nb = (size_t)ftell(fb);
        rewind(fa), rewind(fb);
        a = malloc(na), b = malloc(nb);
        CHECK(fread(a, 1, na, fa) == na && fread(b, 1, nb, fb) == nb);
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    CHECK(na > 0 && na == nb && a && b && !memcmp(a, b, na));
    free(a);
    free(b);
    sa_gguf_free(g);

    /* general.alignment = 64 */
    CHECK_OK(sa_gguf_writer_init(&w));
    write_all_types(w, &d);
    CHECK_OK(sa_gguf_writer_set_u32(w, "general.alignment", 64));
    CHECK_OK(sa_gguf_writer_write(w, path3));
    sa_gguf_writer_free(w);
    CHECK_OK(sa_gguf_open(path3, &g));
    if (g) check_all_types(g, &d, 64);
    sa_gguf_free(g);
    unlink(path), unlink(path2), unlink(path3);
    free(path), free(path2), free(path3);
}

static void test_writer_errors(void) {
    struct sa_gguf_writer *w = NULL;
    float x[64] = {0};
    int64_t ne[4] = {32, 2, 1, 1}, ne_bad[4] = {33, 1, 1, 1}, ne_neg[4] = {32, -1, 1, 1};
    CHECK_OK(sa_gguf_writer_init(&w));
    CHECK_EQ_INT(sa_gguf_writer_set_u32(w, "", 1), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_gguf_writer_set_arr(w, "a", SA_GGUF_TYPE_STRING, x, 1), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_gguf_writer_set_arr(w, "a", SA_GGUF_TYPE_UINT64, x, UINT64_MAX / 4), SA_STATUS_BAD_ARGUMENT);
    uint8_t two = 2;
    CHECK_EQ_INT(sa_gguf_writer_set_arr(w, "a", SA_GGUF_TYPE_BOOL, &two, 1), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_gguf_writer_set_scalar(w, "a", SA_GGUF_TYPE_ARRAY, x), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_gguf_writer_add_tensor(w, "", SA_DTYPE_F32, 2, ne, x), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_gguf_writer_add_tensor(w, "a_tensor_name_of_sixty_four_bytes_which_is_one_more_than_allowed",
                                           SA_DTYPE_F32, 2, ne, x),
                 SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "63 bytes") != NULL);
    CHECK_EQ_INT(sa_gguf_writer_add_tensor(w, "t", SA_DTYPE_Q8_0, 1, ne_bad, x), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "block size") != NULL);
    CHECK_EQ_INT(sa_gguf_writer_add_tensor(w, "t", SA_DTYPE_F32, 2, ne_neg, x), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_gguf_writer_add_tensor(w, "t", SA_DTYPE_F32, 0, ne, x), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_gguf_writer_add_tensor(w, "t", SA_DTYPE_F32, 5, ne, x), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_gguf_writer_add_tensor(w, "t", (enum sa_dtype)16, 1, ne, x), SA_STATUS_BAD_ARGUMENT);
    CHECK_OK(sa_gguf_writer_add_tensor(w, "t", SA_DTYPE_F32, 2, ne, x));
    CHECK_EQ_INT(sa_gguf_writer_add_tensor(w, "t", SA_DTYPE_F32, 2, ne, x), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "duplicate") != NULL);
    CHECK_EQ_INT(sa_gguf_writer_write(w, "/nonexistent-dir/x.gguf"), SA_STATUS_IO);
    CHECK_OK(sa_gguf_writer_set_u32(w, "general.alignment", 48));
    char *path = tmp_path("bad.gguf");
    CHECK_EQ_INT(sa_gguf_writer_write(w, path), SA_STATUS_BAD_ARGUMENT);
    CHECK(access(path, F_OK) != 0);
    free(path);
    sa_gguf_writer_free(w);
    sa_gguf_writer_free(NULL);
    sa_gguf_free(NULL);
    struct sa_gguf *g = (struct sa_gguf *)1;
    CHECK_EQ_INT(sa_gguf_open("/nonexistent-dir/x.gguf", &g), SA_STATUS_IO);
    CHECK(g == NULL);
}

/* ---- the real models of the cache ---- */

static char *model_path(const char *rel) {
    const char *dir = getenv("SALIGN_MODELS");
    char *p = malloc(2048);
    if (dir) snprintf(p, 2048, "%s/%s", dir, rel);
    else snprintf(p, 2048, "%s/.cache/salign/%s", getenv("HOME") ? getenv("HOME") : "", rel);
    return p;
}

static void check_tensor(const struct sa_gguf *g, const char *name, enum sa_dtype type, int64_t ne0, int64_t ne1) {
    const struct sa_gguf_tensor *t = sa_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    if (!t) return;
    CHECK_MSG(t->type == type && t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->n_dims == (ne1 > 1 ? 2u : 1u),
              "%s: type %s ne [%lld, %lld]", name, sa_dtype_name(t->type), (long long)t->ne[0], (long long)t->ne[1]);
    /* the first row dequantizes to finite values */
    float *y = malloc((size_t)ne0 * sizeof *y);
    CHECK_OK(sa_dequantize(t->type, t->data, y, ne0));
    int bad = 0;
    for (int64_t i = 0; i < ne0; i++) bad += !isfinite(y[i]);
    CHECK_EQ_INT(bad, 0);
    free(y);
}

static void test_smollm2(void) {
    char *path = model_path("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    struct sa_gguf *g = NULL;
    CHECK_OK(sa_gguf_open(path, &g));
    free(path);
    if (!g) return;
    char *arch = sa_gguf_get_string(g, "general.architecture");
    CHECK_EQ_STR(arch, "llama");
    free(arch);
    CHECK_EQ_INT(sa_gguf_n_tensors(g), 272);
    CHECK_EQ_INT(sa_gguf_n_kv(g), 33);
    CHECK_EQ_INT(sa_gguf_data_offset(g), 1785664);
    uint32_t u;
    float f;
    bool b;
    CHECK(sa_gguf_get_u32(g, "llama.block_count", &u) && u == 30);
    CHECK(sa_gguf_get_u32(g, "llama.context_length", &u) && u == 8192);
    CHECK(sa_gguf_get_f32(g, "llama.rope.freq_base", &f) && f == 100000.0f);
    CHECK(sa_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) && !b);
    int64_t i = sa_gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK(i >= 0 && sa_gguf_arr_type(g, i) == SA_GGUF_TYPE_STRING && sa_gguf_arr_n(g, i) == 49152);
    struct sa_gguf_str s = sa_gguf_arr_str(g, i, 0);
    CHECK(s.len == 13 && !memcmp(s.ptr, "<|endoftext|>", 13));
    s = sa_gguf_arr_str(g, i, 49151);
    CHECK(s.len == 7 && !memcmp(s.ptr, "ectable", 7));
    i = sa_gguf_find_key(g, "tokenizer.ggml.merges");
    CHECK(i >= 0 && sa_gguf_arr_n(g, i) == 48900);
    i = sa_gguf_find_key(g, "tokenizer.ggml.token_type");
    CHECK(i >= 0 && sa_gguf_arr_type(g, i) == SA_GGUF_TYPE_INT32 && sa_gguf_arr_n(g, i) == 49152);
    CHECK(sa_gguf_find_key(g, "tokenizer.chat_template") >= 0);
    check_tensor(g, "token_embd.weight", SA_DTYPE_Q8_0, 576, 49152);
    check_tensor(g, "blk.0.ffn_down.weight", SA_DTYPE_Q4_1, 1536, 576);
    check_tensor(g, "blk.29.attn_v.weight", SA_DTYPE_Q4_1, 576, 192);
    check_tensor(g, "output_norm.weight", SA_DTYPE_F32, 576, 1);
    walk(g);
    sa_gguf_free(g);
}

static void test_gemma3(void) {
    char *path = model_path("gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    struct sa_gguf *g = NULL;
    CHECK_OK(sa_gguf_open(path, &g));
    free(path);
    if (!g) return;
    char *arch = sa_gguf_get_string(g, "general.architecture");
    CHECK_EQ_STR(arch, "gemma3");
    free(arch);
    CHECK_EQ_INT(sa_gguf_n_tensors(g), 236);
    CHECK_EQ_INT(sa_gguf_data_offset(g), 6525120);
    uint32_t u;
    CHECK(sa_gguf_get_u32(g, "gemma3.block_count", &u) && u == 18);
    CHECK(sa_gguf_get_u32(g, "gemma3.attention.key_length", &u) && u == 256);
    CHECK(sa_gguf_find_key(g, "tokenizer.chat_template") < 0);
    int64_t i = sa_gguf_find_key(g, "tokenizer.ggml.scores");
    CHECK(i >= 0 && sa_gguf_arr_type(g, i) == SA_GGUF_TYPE_FLOAT32 && sa_gguf_arr_n(g, i) == 262144);
    float sc[2];
    memcpy(sc, sa_gguf_arr_data(g, i), 8);
    CHECK(sc[0] == -1000.0f);
    i = sa_gguf_find_key(g, "tokenizer.ggml.tokens");
    struct sa_gguf_str s = sa_gguf_arr_str(g, i, 2);
    CHECK(s.len == 5 && !memcmp(s.ptr, "<bos>", 5));
    check_tensor(g, "token_embd.weight", SA_DTYPE_Q8_0, 640, 262144);
    check_tensor(g, "blk.0.attn_k.weight", SA_DTYPE_Q5_0, 640, 256);
    check_tensor(g, "blk.0.attn_output.weight", SA_DTYPE_Q4_K, 1024, 640);
    check_tensor(g, "blk.0.ffn_down.weight", SA_DTYPE_Q6_K, 2048, 640);
    check_tensor(g, "output_norm.weight", SA_DTYPE_F32, 640, 1);
    walk(g);
    sa_gguf_free(g);
}

int main(void) {
    RUN(test_small_valid);
    RUN(test_corruptions);
    RUN(test_truncation);
    RUN(test_random_flips);
    RUN(test_writer_round_trip);
    RUN(test_writer_errors);
    RUN(test_smollm2);
    RUN(test_gemma3);
    return harness_summary();
}
