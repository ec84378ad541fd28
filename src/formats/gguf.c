/* gguf.c: GGUF v2/v3 reader over a read-only mapping (spec: ggml docs/gguf.md).
 * Everything is validated on open, with overflow-checked arithmetic and every count
 * checked against the bytes left before anything is allocated, so the accessors below
 * never read outside the file. Layout: header (magic, version, n_tensors, n_kv), the
 * key/values, the tensor infos, padding to the alignment, then the tensor data. */
#include "sa/gguf.h"

#include "core/core_impl.h"
#include "formats/gguf_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 63  /* tensor names: GGML_MAX_NAME (64) with the NUL */
#define GGUF_MIN_KV_BYTES 14 /* key length (8) + 1-byte key + value type (4) + 1-byte value */
#define GGUF_MIN_TI_BYTES 33 /* name length (8) + 1-byte name + n_dims (4) + ne (8) + type (4) + offset (8) */

struct gguf_kv {
    char *key;          /* NUL-terminated copy */
    uint32_t type;      /* enum sa_gguf_type */
    uint32_t arr_type;  /* element type of an array */
    uint64_t arr_n;     /* elements of an array */
    uint64_t raw_off;   /* file offset of the value (just after its u32 type) */
    uint64_t raw_size;  /* bytes of the value; for an array: 12 + elements */
    uint64_t *str_off;  /* array of strings: file offset of each element's length */
};

/* Open-addressing hash of names -> index + 1 (0: empty slot). */
struct name_index {
    int64_t *slots;
    uint64_t mask;
};

struct sa_gguf {
    struct sa_file_map map; /* when opened from a path */
    const uint8_t *data;
    uint64_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    struct gguf_kv *kv;
    int64_t n_tensors;
    struct sa_gguf_tensor *tensors;
    struct name_index kv_index, tensor_index;
};

/* ---- metadata value types ---- */

static const struct {
    const char *name;
    uint64_t size;
} gguf_types[] = {
    [SA_GGUF_TYPE_UINT8] = {"uint8", 1},   [SA_GGUF_TYPE_INT8] = {"int8", 1},
    [SA_GGUF_TYPE_UINT16] = {"uint16", 2}, [SA_GGUF_TYPE_INT16] = {"int16", 2},
    [SA_GGUF_TYPE_UINT32] = {"uint32", 4}, [SA_GGUF_TYPE_INT32] = {"int32", 4},
    [SA_GGUF_TYPE_FLOAT32] = {"float32", 4}, [SA_GGUF_TYPE_BOOL] = {"bool", 1},
    [SA_GGUF_TYPE_STRING] = {"string", 0}, [SA_GGUF_TYPE_ARRAY] = {"array", 0},
    [SA_GGUF_TYPE_UINT64] = {"uint64", 8}, [SA_GGUF_TYPE_INT64] = {"int64", 8},
    [SA_GGUF_TYPE_FLOAT64] = {"float64", 8},
};

uint64_t sa_gguf_type_size(uint32_t type) { return type < SA_ARRAY_LEN(gguf_types) ? gguf_types[type].size : 0; }

const char *sa_gguf_type_name(uint32_t type) {
    return type < SA_ARRAY_LEN(gguf_types) ? gguf_types[type].name : "?";
}

/* GGML types that exist but that this library does not handle (for the message). */
static const char *ggml_other_type_name(uint32_t t) {
    switch (t) {
    case 4: return "q4_2 (removed from GGML)";
    case 5: return "q4_3 (removed from GGML)";
    case 16: return "iq2_xxs";
    case 17: return "iq2_xs";
    case 18: return "iq3_xxs";
    case 19: return "iq1_s";
    case 20: return "iq4_nl";
    case 21: return "iq3_s";
    case 22: return "iq2_s";
    case 23: return "iq4_xs";
    case 29: return "iq1_m";
    case 31: case 32: case 33: case 36: case 37: case 38: return "a repacked type (removed from GGML)";
    case 34: return "tq1_0";
    case 35: return "tq2_0";
    case 39: return "mxfp4";
    default: return "unknown";
    }
}

/* ---- name index ---- */

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static enum sa_status name_index_init(struct name_index *ix, int64_t n) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap *= 2; /* n <= file size / 14: no overflow */
    ix->slots = calloc(cap, sizeof *ix->slots);
    if (!ix->slots) return sa_error(SA_STATUS_NO_MEMORY, "gguf: out of memory (name index of %llu)", (unsigned long long)cap);
    ix->mask = cap - 1;
    return SA_STATUS_OK;
}

/* Index of `name` in names[], or -1; with `insert`, adds it as index `idx` when absent. */
static int64_t name_index_lookup(const struct name_index *ix, const char *name, const char *(*get)(const void *, int64_t),
                                 const void *names, bool insert, int64_t idx) {
    if (!ix->slots) return -1;
    for (uint64_t h = name_hash(name) & ix->mask;; h = (h + 1) & ix->mask) {
        int64_t s = ix->slots[h];
        if (!s) {
            if (insert) ix->slots[h] = idx + 1;
            return -1;
        }
        if (!strcmp(get(names, s - 1), name)) return s - 1;
    }
}

static const char *kv_name(const void *kv, int64_t i) { return ((const struct gguf_kv *)kv)[i].key; }
static const char *tensor_name(const void *t, int64_t i) { return ((const struct sa_gguf_tensor *)t)[i].name; }

/* ---- parsing ---- */

struct rd {
    const uint8_t *p;
    uint64_t size, pos;
    char ctx[96]; /* what is being read, for messages: "key 'x'", "tensor 'y'" */
};

/* Printable copy of a name from the file (at most 60 bytes) for messages. */
static void set_ctx(struct rd *r, const char *what, const uint8_t *name, uint64_t len) {
    char clean[64];
    size_t n = len > 60 ? 60 : (size_t)len, i;
    for (i = 0; i < n; i++) clean[i] = name[i] >= 0x20 && name[i] < 0x7f ? (char)name[i] : '?';
    clean[i] = 0;
    snprintf(r->ctx, sizeof r->ctx, "%s '%s%s'", what, clean, len > 60 ? "..." : "");
}

static enum sa_status truncated(const struct rd *r, const char *what, uint64_t need) {
    return sa_error(SA_STATUS_BAD_FILE,
                    "gguf: truncated file: %s: %s needs %llu bytes at offset %llu, only %llu left",
                    r->ctx, what, (unsigned long long)need, (unsigned long long)r->pos,
                    (unsigned long long)(r->size - r->pos));
}

static inline bool rd_has(const struct rd *r, uint64_t n) { return n <= r->size - r->pos; }

static enum sa_status rd_u32(struct rd *r, uint32_t *v, const char *what) {
    if (!rd_has(r, 4)) return truncated(r, what, 4);
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return SA_STATUS_OK;
}

static enum sa_status rd_u64(struct rd *r, uint64_t *v, const char *what) {
    if (!rd_has(r, 8)) return truncated(r, what, 8);
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return SA_STATUS_OK;
}

/* A gguf string: u64 length, bytes. *off gets the offset of the bytes. */
static enum sa_status rd_str(struct rd *r, uint64_t *off, uint64_t *len, const char *what) {
    enum sa_status s = rd_u64(r, len, what);
    if (s) return s;
    if (!rd_has(r, *len))
        return sa_error(SA_STATUS_BAD_FILE,
                        "gguf: %s: %s: string length %llu exceeds the %llu bytes left in the file (truncated or corrupt)",
                        r->ctx, what, (unsigned long long)*len, (unsigned long long)(r->size - r->pos));
    *off = r->pos;
    r->pos += *len;
    return SA_STATUS_OK;
}

static enum sa_status check_bools(const struct rd *r, const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1) return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: bool value %u is not 0 or 1", r->ctx, p[i]);
    return SA_STATUS_OK;
}

static enum sa_status parse_value(struct rd *r, struct gguf_kv *kv) {
    enum sa_status s;
    kv->raw_off = r->pos;
    if (kv->type == SA_GGUF_TYPE_STRING) {
        uint64_t off, len;
        if ((s = rd_str(r, &off, &len, "string value"))) return s;
    } else if (kv->type == SA_GGUF_TYPE_ARRAY) {
        if ((s = rd_u32(r, &kv->arr_type, "array element type"))) return s;
        if ((s = rd_u64(r, &kv->arr_n, "array count"))) return s;
        uint64_t et = kv->arr_type, n = kv->arr_n, left = r->size - r->pos;
        if (et == SA_GGUF_TYPE_ARRAY)
            return sa_error(SA_STATUS_UNSUPPORTED, "gguf: %s: nested arrays are not supported", r->ctx);
        if (et == SA_GGUF_TYPE_STRING) {
            if (n > left / 8)
                return sa_error(SA_STATUS_BAD_FILE,
                                "gguf: %s: array count %llu of strings exceeds the %llu bytes left (truncated or corrupt)",
                                r->ctx, (unsigned long long)n, (unsigned long long)left);
            kv->str_off = malloc((n ? n : 1) * sizeof *kv->str_off);
            if (!kv->str_off) return sa_error(SA_STATUS_NO_MEMORY, "gguf: %s: out of memory", r->ctx);
            for (uint64_t j = 0; j < n; j++) {
                uint64_t off, len;
                kv->str_off[j] = r->pos;
                if ((s = rd_str(r, &off, &len, "array string"))) return s;
            }
        } else {
            uint64_t es = sa_gguf_type_size((uint32_t)et), bytes;
            if (!es)
                return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: bad array element value type %llu", r->ctx,
                                (unsigned long long)et);
            if (!sa_mul_ok(n, es, &bytes) || bytes > left)
                return sa_error(SA_STATUS_BAD_FILE,
                                "gguf: %s: array count %llu of %s exceeds the %llu bytes left (truncated or corrupt)",
                                r->ctx, (unsigned long long)n, sa_gguf_type_name((uint32_t)et), (unsigned long long)left);
            if (et == SA_GGUF_TYPE_BOOL && (s = check_bools(r, r->p + r->pos, n))) return s;
            r->pos += bytes;
        }
    } else {
        uint64_t es = sa_gguf_type_size(kv->type);
        if (!es) return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: bad value type %u", r->ctx, kv->type);
        if (!rd_has(r, es)) return truncated(r, "value", es);
        if (kv->type == SA_GGUF_TYPE_BOOL && (s = check_bools(r, r->p + r->pos, 1))) return s;
        r->pos += es;
    }
    kv->raw_size = r->pos - kv->raw_off;
    return SA_STATUS_OK;
}

/* A name (key or tensor) into a NUL-terminated copy; no empty names, no NUL bytes. */
static enum sa_status rd_name(struct rd *r, const char *what, uint64_t max_len, char **out) {
    uint64_t off, len;
    enum sa_status s = rd_str(r, &off, &len, what);
    if (s) return s;
    if (len == 0) return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: empty name at offset %llu", r->ctx, (unsigned long long)off);
    set_ctx(r, what, r->p + off, len);
    if (max_len && len > max_len)
        return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: name too long (%llu bytes, at most %llu)", r->ctx,
                        (unsigned long long)len, (unsigned long long)max_len);
    if (memchr(r->p + off, 0, len)) return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: name contains a NUL byte", r->ctx);
    char *c = malloc(len + 1);
    if (!c) return sa_error(SA_STATUS_NO_MEMORY, "gguf: out of memory");
    memcpy(c, r->p + off, len);
    c[len] = 0;
    *out = c;
    return SA_STATUS_OK;
}

static enum sa_status parse_header(struct sa_gguf *g, struct rd *r, uint64_t *n_tensors, uint64_t *n_kv) {
    enum sa_status s;
    snprintf(r->ctx, sizeof r->ctx, "header");
    if (r->size < 4) return truncated(r, "magic", 4);
    if (memcmp(r->p, GGUF_MAGIC, 4))
        return sa_error(SA_STATUS_BAD_FILE, "gguf: bad magic %02x %02x %02x %02x (not a GGUF file)", r->p[0], r->p[1],
                        r->p[2], r->p[3]);
    r->pos = 4;
    if ((s = rd_u32(r, &g->version, "version"))) return s;
    uint32_t v = g->version, swapped = __builtin_bswap32(v);
    if (v == 1)
        return sa_error(SA_STATUS_UNSUPPORTED,
                        "gguf: version 1 is not supported (an old format; reconvert the model with a current llama.cpp)");
    if (v != 2 && v != 3) {
        if (swapped >= 1 && swapped <= 3)
            return sa_error(SA_STATUS_UNSUPPORTED, "gguf: big-endian GGUF (version %u) is not supported", swapped);
        if (v == 0) return sa_error(SA_STATUS_BAD_FILE, "gguf: bad version 0");
        return sa_error(SA_STATUS_UNSUPPORTED, "gguf: version %u is not supported (2 and 3 are)", v);
    }
    if ((s = rd_u64(r, n_tensors, "tensor count"))) return s;
    if ((s = rd_u64(r, n_kv, "kv count"))) return s;
    uint64_t left = r->size - r->pos;
    if (*n_kv > left / GGUF_MIN_KV_BYTES)
        return sa_error(SA_STATUS_BAD_FILE, "gguf: kv count %llu exceeds what the %llu bytes left can hold (corrupt)",
                        (unsigned long long)*n_kv, (unsigned long long)left);
    if (*n_tensors > left / GGUF_MIN_TI_BYTES)
        return sa_error(SA_STATUS_BAD_FILE, "gguf: tensor count %llu exceeds what the %llu bytes left can hold (corrupt)",
                        (unsigned long long)*n_tensors, (unsigned long long)left);
    return SA_STATUS_OK;
}

static enum sa_status parse_kvs(struct sa_gguf *g, struct rd *r, uint64_t n_kv) {
    enum sa_status s;
    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    if (!g->kv) return sa_error(SA_STATUS_NO_MEMORY, "gguf: out of memory (%llu keys)", (unsigned long long)n_kv);
    if ((s = name_index_init(&g->kv_index, (int64_t)n_kv))) return s;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct gguf_kv *kv = &g->kv[i];
        snprintf(r->ctx, sizeof r->ctx, "key #%llu", (unsigned long long)i);
        if ((s = rd_name(r, "key", 0, &kv->key))) return s;
        g->n_kv = (int64_t)i + 1; /* owns kv->key from here on */
        if ((s = rd_u32(r, &kv->type, "value type"))) return s;
        if (kv->type >= SA_ARRAY_LEN(gguf_types))
            return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: bad value type %u", r->ctx, kv->type);
        if ((s = parse_value(r, kv))) return s;
        if (name_index_lookup(&g->kv_index, kv->key, kv_name, g->kv, true, (int64_t)i) >= 0)
            return sa_error(SA_STATUS_BAD_FILE, "gguf: duplicate %s", r->ctx);
    }
    int64_t ai = sa_gguf_find_key(g, "general.alignment");
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (ai >= 0) {
        const struct gguf_kv *kv = &g->kv[ai];
        if (kv->type != SA_GGUF_TYPE_UINT32)
            return sa_error(SA_STATUS_BAD_FILE, "gguf: general.alignment must be a uint32 (it is of type %s)",
                            sa_gguf_type_name(kv->type));
        uint32_t a;
        memcpy(&a, g->data + kv->raw_off, 4);
        if (a == 0 || (a & (a - 1)))
            return sa_error(SA_STATUS_BAD_FILE, "gguf: general.alignment %u is not a power of 2", a);
        g->alignment = a;
    }
    return SA_STATUS_OK;
}

static enum sa_status parse_tensor_info(struct rd *r, struct sa_gguf_tensor *t, uint64_t alignment) {
    enum sa_status s;
    uint32_t type;
    if ((s = rd_u32(r, &t->n_dims, "n_dims"))) return s;
    if (t->n_dims < 1 || t->n_dims > 4)
        return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: %u dimensions (must be 1 to 4)", r->ctx, t->n_dims);
    uint64_t n_elem = 1;
    for (uint32_t d = 0; d < 4; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims) {
            if ((s = rd_u64(r, &ne, "dimension"))) return s;
            if (ne == 0 || ne > (uint64_t)INT64_MAX)
                return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: dimension %u is %lld (must be >= 1)", r->ctx, d,
                                (long long)ne);
        }
        if (!sa_mul_ok(n_elem, ne, &n_elem) || n_elem > (uint64_t)INT64_MAX)
            return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: element count overflows", r->ctx);
        t->ne[d] = (int64_t)ne;
    }
    if ((s = rd_u32(r, &type, "tensor type"))) return s;
    if (!sa_dtype_is_known(type)) {
        if (type < SA_DTYPE_COUNT)
            return sa_error(SA_STATUS_UNSUPPORTED, "gguf: %s: tensor type %u (%s) is not supported", r->ctx, type,
                            ggml_other_type_name(type));
        return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: bad tensor type %u", r->ctx, type);
    }
    t->type = (enum sa_dtype)type;
    uint64_t row_bytes;
    if ((uint64_t)t->ne[0] % sa_dtype_block_size(t->type))
        return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: row of %lld elements is not a multiple of the %s block size %zu",
                        r->ctx, (long long)t->ne[0], sa_dtype_name(t->type), sa_dtype_block_size(t->type));
    if (!sa_dtype_row_bytes(t->type, (uint64_t)t->ne[0], &row_bytes) ||
        !sa_mul_ok(row_bytes, n_elem / (uint64_t)t->ne[0], &t->n_bytes))
        return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: data size overflows", r->ctx);
    if ((s = rd_u64(r, &t->offset, "data offset"))) return s;
    if (t->offset % alignment)
        return sa_error(SA_STATUS_BAD_FILE, "gguf: %s: data offset %llu is misaligned (alignment %llu)", r->ctx,
                        (unsigned long long)t->offset, (unsigned long long)alignment);
    return SA_STATUS_OK;
}

struct span {
    uint64_t begin, end;
    int64_t idx;
};

static int span_cmp(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static enum sa_status parse_tensors(struct sa_gguf *g, struct rd *r, uint64_t n_tensors) {
    enum sa_status s;
    uint64_t left = r->size - r->pos;
    if (n_tensors > left / GGUF_MIN_TI_BYTES)
        return sa_error(SA_STATUS_BAD_FILE, "gguf: tensor count %llu exceeds what the %llu bytes left can hold (corrupt)",
                        (unsigned long long)n_tensors, (unsigned long long)left);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->tensors) return sa_error(SA_STATUS_NO_MEMORY, "gguf: out of memory (%llu tensors)", (unsigned long long)n_tensors);
    if ((s = name_index_init(&g->tensor_index, (int64_t)n_tensors))) return s;
    for (uint64_t i = 0; i < n_tensors; i++) {
        struct sa_gguf_tensor *t = &g->tensors[i];
        char *name = NULL;
        snprintf(r->ctx, sizeof r->ctx, "tensor #%llu", (unsigned long long)i);
        if ((s = rd_name(r, "tensor", GGUF_MAX_NAME, &name))) return s;
        t->name = name;
        g->n_tensors = (int64_t)i + 1; /* owns the name from here on */
        if ((s = parse_tensor_info(r, t, g->alignment))) return s;
        if (name_index_lookup(&g->tensor_index, t->name, tensor_name, g->tensors, true, (int64_t)i) >= 0)
            return sa_error(SA_STATUS_BAD_FILE, "gguf: duplicate tensor name: %s", r->ctx);
    }
    /* the data section starts at the next multiple of the alignment */
    uint64_t a = g->alignment, end;
    if (!sa_add_ok(r->pos, a - 1, &end)) return sa_error(SA_STATUS_BAD_FILE, "gguf: data offset overflows");
    g->data_offset = end & ~(a - 1);
    if (n_tensors == 0) return SA_STATUS_OK;
    if (g->data_offset > g->size)
        return sa_error(SA_STATUS_BAD_FILE, "gguf: data section at offset %llu is outside the file of %llu bytes (truncated)",
                        (unsigned long long)g->data_offset, (unsigned long long)g->size);
    uint64_t data_size = g->size - g->data_offset;
    struct span *spans = malloc(n_tensors * sizeof *spans);
    if (!spans) return sa_error(SA_STATUS_NO_MEMORY, "gguf: out of memory");
    for (uint64_t i = 0; i < n_tensors; i++) {
        struct sa_gguf_tensor *t = &g->tensors[i];
        uint64_t e;
        if (!sa_add_ok(t->offset, t->n_bytes, &e) || e > data_size) {
            snprintf(r->ctx, sizeof r->ctx, "tensor '%.60s'", t->name);
            s = sa_error(SA_STATUS_BAD_FILE,
                         "gguf: %s: data [%llu, +%llu) is outside the file (data section of %llu bytes; truncated?)",
                         r->ctx, (unsigned long long)t->offset, (unsigned long long)t->n_bytes,
                         (unsigned long long)data_size);
            free(spans);
            return s;
        }
        t->data = g->data + g->data_offset + t->offset;
        spans[i] = (struct span){t->offset, e, (int64_t)i};
    }
    qsort(spans, n_tensors, sizeof *spans, span_cmp);
    for (uint64_t i = 1; i < n_tensors; i++) {
        if (spans[i].begin < spans[i - 1].end) {
            s = sa_error(SA_STATUS_BAD_FILE, "gguf: the data of tensors '%.60s' and '%.60s' overlap",
                         g->tensors[spans[i - 1].idx].name, g->tensors[spans[i].idx].name);
            free(spans);
            return s;
        }
    }
    free(spans);
    return SA_STATUS_OK;
}

static enum sa_status gguf_parse(struct sa_gguf *g) {
    struct rd r = {.p = g->data, .size = g->size, .pos = 0};
    uint64_t n_tensors, n_kv;
    enum sa_status s;
    if ((s = parse_header(g, &r, &n_tensors, &n_kv))) return s;
    if ((s = parse_kvs(g, &r, n_kv))) return s;
    return parse_tensors(g, &r, n_tensors);
}

enum sa_status sa_gguf_open_memory(const void *data, size_t size, struct sa_gguf **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf: NULL out");
    *out = NULL;
    if (!data && size) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf: NULL data");
    struct sa_gguf *g = calloc(1, sizeof *g);
    if (!g) return sa_error(SA_STATUS_NO_MEMORY, "gguf: out of memory");
    g->data = data;
    g->size = size;
    enum sa_status s = gguf_parse(g);
    if (s) {
        sa_gguf_free(g);
        return s;
    }
    *out = g;
    return SA_STATUS_OK;
}

enum sa_status sa_gguf_open(const char *path, struct sa_gguf **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf: NULL out");
    *out = NULL;
    struct sa_file_map m;
    enum sa_status s = sa_file_map_open(path, &m);
    if (s) return s;
    struct sa_gguf *g = NULL;
    s = sa_gguf_open_memory(m.data, m.size, &g);
    if (s) {
        sa_file_map_close(&m);
        return sa_error_wrap(s, "%s", path);
    }
    g->map = m;
    *out = g;
    return SA_STATUS_OK;
}

void sa_gguf_free(struct sa_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->tensors);
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str_off);
    }
    free(g->kv);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    sa_file_map_close(&g->map);
    free(g);
}

uint32_t sa_gguf_version(const struct sa_gguf *g) { return g->version; }
uint64_t sa_gguf_alignment(const struct sa_gguf *g) { return g->alignment; }
uint64_t sa_gguf_data_offset(const struct sa_gguf *g) { return g->data_offset; }

/* ---- metadata ---- */

int64_t sa_gguf_n_kv(const struct sa_gguf *g) { return g->n_kv; }

int64_t sa_gguf_find_key(const struct sa_gguf *g, const char *key) {
    if (!g || !key) return -1;
    return name_index_lookup(&g->kv_index, key, kv_name, g->kv, false, 0);
}

static const struct gguf_kv *kv_at(const struct sa_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

const char *sa_gguf_key(const struct sa_gguf *g, int64_t i) {
    const struct gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}

enum sa_gguf_type sa_gguf_kv_type(const struct sa_gguf *g, int64_t i) {
    const struct gguf_kv *kv = kv_at(g, i);
    SA_ASSERT(kv);
    return (enum sa_gguf_type)kv->type;
}

enum sa_gguf_type sa_gguf_arr_type(const struct sa_gguf *g, int64_t i) {
    const struct gguf_kv *kv = kv_at(g, i);
    SA_ASSERT(kv);
    return (enum sa_gguf_type)(kv->type == SA_GGUF_TYPE_ARRAY ? kv->arr_type : kv->type);
}

uint64_t sa_gguf_arr_n(const struct sa_gguf *g, int64_t i) {
    const struct gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == SA_GGUF_TYPE_ARRAY ? kv->arr_n : 0;
}

const void *sa_gguf_arr_data(const struct sa_gguf *g, int64_t i) {
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != SA_GGUF_TYPE_ARRAY || kv->arr_type == SA_GGUF_TYPE_STRING) return NULL;
    return g->data + kv->raw_off + 12;
}

static struct sa_gguf_str str_at(const struct sa_gguf *g, uint64_t off) {
    struct sa_gguf_str s;
    memcpy(&s.len, g->data + off, 8);
    s.ptr = (const char *)g->data + off + 8;
    return s;
}

struct sa_gguf_str sa_gguf_arr_str(const struct sa_gguf *g, int64_t i, uint64_t j) {
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != SA_GGUF_TYPE_ARRAY || kv->arr_type != SA_GGUF_TYPE_STRING || j >= kv->arr_n)
        return (struct sa_gguf_str){NULL, 0};
    return str_at(g, kv->str_off[j]);
}

struct sa_gguf_str sa_gguf_get_str(const struct sa_gguf *g, int64_t i) {
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != SA_GGUF_TYPE_STRING) return (struct sa_gguf_str){NULL, 0};
    return str_at(g, kv->raw_off);
}

bool sa_gguf_kv_raw(const struct sa_gguf *g, int64_t i, const uint8_t **raw, uint64_t *size) {
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv) return false;
    *raw = g->data + kv->raw_off;
    *size = kv->raw_size;
    return true;
}

/* An integer value widened: *neg for negative signed values, *mag the magnitude. */
static bool get_int(const struct sa_gguf *g, const char *key, bool *neg, uint64_t *mag) {
    const struct gguf_kv *kv = kv_at(g, sa_gguf_find_key(g, key));
    if (!kv) return false;
    const uint8_t *p = g->data + kv->raw_off;
    int64_t sv = 0;
    uint64_t uv = 0;
    bool is_signed = false;
    switch (kv->type) {
    case SA_GGUF_TYPE_UINT8: uv = p[0]; break;
    case SA_GGUF_TYPE_INT8: { int8_t v; memcpy(&v, p, 1); sv = v; is_signed = true; break; }
    case SA_GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); uv = v; break; }
    case SA_GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); sv = v; is_signed = true; break; }
    case SA_GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); uv = v; break; }
    case SA_GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); sv = v; is_signed = true; break; }
    case SA_GGUF_TYPE_UINT64: memcpy(&uv, p, 8); break;
    case SA_GGUF_TYPE_INT64: memcpy(&sv, p, 8); is_signed = true; break;
    default: return false;
    }
    if (is_signed) {
        *neg = sv < 0;
        *mag = sv < 0 ? (uint64_t)0 - (uint64_t)sv : (uint64_t)sv;
    } else {
        *neg = false;
        *mag = uv;
    }
    return true;
}

bool sa_gguf_get_u32(const struct sa_gguf *g, const char *key, uint32_t *out) {
    bool neg;
    uint64_t mag;
    if (!get_int(g, key, &neg, &mag) || neg || mag > UINT32_MAX) return false;
    *out = (uint32_t)mag;
    return true;
}

bool sa_gguf_get_i64(const struct sa_gguf *g, const char *key, int64_t *out) {
    bool neg;
    uint64_t mag;
    if (!get_int(g, key, &neg, &mag)) return false;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1) return false;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)mag;
    }
    return true;
}

bool sa_gguf_get_f32(const struct sa_gguf *g, const char *key, float *out) {
    const struct gguf_kv *kv = kv_at(g, sa_gguf_find_key(g, key));
    if (!kv) return false;
    if (kv->type == SA_GGUF_TYPE_FLOAT32) {
        memcpy(out, g->data + kv->raw_off, 4);
        return true;
    }
    if (kv->type == SA_GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, g->data + kv->raw_off, 8);
        *out = (float)d;
        return true;
    }
    return false;
}

bool sa_gguf_get_bool(const struct sa_gguf *g, const char *key, bool *out) {
    const struct gguf_kv *kv = kv_at(g, sa_gguf_find_key(g, key));
    if (!kv || kv->type != SA_GGUF_TYPE_BOOL) return false;
    *out = g->data[kv->raw_off] != 0;
    return true;
}

char *sa_gguf_get_string(const struct sa_gguf *g, const char *key) {
    struct sa_gguf_str s = sa_gguf_get_str(g, sa_gguf_find_key(g, key));
    if (!s.ptr || s.len >= SIZE_MAX) return NULL;
    char *c = malloc((size_t)s.len + 1);
    if (!c) return NULL;
    memcpy(c, s.ptr, (size_t)s.len);
    c[s.len] = 0;
    return c;
}

/* ---- tensors ---- */

int64_t sa_gguf_n_tensors(const struct sa_gguf *g) { return g->n_tensors; }

const struct sa_gguf_tensor *sa_gguf_tensor(const struct sa_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct sa_gguf_tensor *sa_gguf_find_tensor(const struct sa_gguf *g, const char *name) {
    if (!g || !name) return NULL;
    int64_t i = name_index_lookup(&g->tensor_index, name, tensor_name, g->tensors, false, 0);
    return i >= 0 ? &g->tensors[i] : NULL;
}
