/* gguf_writer.c: writes GGUF v3 files (spec: ggml docs/gguf.md) the way gguf-py and
 * llama.cpp lay them out, so that both load them: header, key/values in insertion order,
 * tensor infos, padding to the alignment, then each tensor's data padded to the alignment
 * (offsets packed in order, as llama.cpp's loader requires). Values are serialized when set;
 * the file goes to <path>.tmp and is renamed into place only when complete. */
#define _GNU_SOURCE
#include "sa/gguf.h"

#include "core/core_impl.h"
#include "formats/gguf_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_MAX_NAME 63
#define GGUF_DEFAULT_ALIGNMENT 32

struct wkv {
    char *key;
    uint32_t type;
    uint8_t *raw; /* the serialized value (what follows the u32 type in the file) */
    uint64_t raw_size;
};

struct wtensor {
    char *name;
    enum sa_dtype type;
    uint32_t n_dims;
    int64_t ne[4];
    uint64_t n_bytes;
    const void *data; /* caller-owned */
};

struct sa_gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *tensors;
    size_t n_tensors, cap_tensors;
};

enum sa_status sa_gguf_writer_init(struct sa_gguf_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
}

void sa_gguf_writer_free(struct sa_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].raw);
    }
    free(w->kv);
    free(w);
}

static enum sa_status grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return SA_STATUS_OK;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, c * elem);
    if (!p) return sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
    *arr = p;
    *cap = c;
    return SA_STATUS_OK;
}

/* Sets key to (type, raw[size]), taking ownership of raw; replaces an existing value. */
static enum sa_status put_kv(struct sa_gguf_writer *w, const char *key, uint32_t type, uint8_t *raw, uint64_t size) {
    if (!w || !key || !key[0]) {
        free(raw);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: empty or NULL key");
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].raw);
            w->kv[i].type = type;
            w->kv[i].raw = raw;
            w->kv[i].raw_size = size;
            return SA_STATUS_OK;
        }
    }
    enum sa_status s = grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv);
    char *k = s ? NULL : strdup(key);
    if (s || !k) {
        free(raw);
        return s ? s : sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
    }
    w->kv[w->n_kv++] = (struct wkv){k, type, raw, size};
    return SA_STATUS_OK;
}

static enum sa_status put_copy(struct sa_gguf_writer *w, const char *key, uint32_t type, const void *v, uint64_t size) {
    uint8_t *raw = malloc(size ? size : 1);
    if (!raw) return sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
    if (size) memcpy(raw, v, size);
    return put_kv(w, key, type, raw, size);
}

enum sa_status sa_gguf_writer_set_scalar(struct sa_gguf_writer *w, const char *key, enum sa_gguf_type type, const void *v) {
    uint64_t size = sa_gguf_type_size((uint32_t)type);
    if (!size) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': %s is not a scalar type", key ? key : "",
                               sa_gguf_type_name((uint32_t)type));
    if (!v) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': NULL value", key ? key : "");
    if (type == SA_GGUF_TYPE_BOOL) {
        uint8_t b = *(const uint8_t *)v ? 1 : 0; /* read as a byte: any nonzero is true */
        return put_copy(w, key, type, &b, 1);
    }
    return put_copy(w, key, type, v, size);
}

enum sa_status sa_gguf_writer_set_u32(struct sa_gguf_writer *w, const char *key, uint32_t v) {
    return put_copy(w, key, SA_GGUF_TYPE_UINT32, &v, 4);
}
enum sa_status sa_gguf_writer_set_i32(struct sa_gguf_writer *w, const char *key, int32_t v) {
    return put_copy(w, key, SA_GGUF_TYPE_INT32, &v, 4);
}
enum sa_status sa_gguf_writer_set_u64(struct sa_gguf_writer *w, const char *key, uint64_t v) {
    return put_copy(w, key, SA_GGUF_TYPE_UINT64, &v, 8);
}
enum sa_status sa_gguf_writer_set_f32(struct sa_gguf_writer *w, const char *key, float v) {
    return put_copy(w, key, SA_GGUF_TYPE_FLOAT32, &v, 4);
}
enum sa_status sa_gguf_writer_set_bool(struct sa_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return put_copy(w, key, SA_GGUF_TYPE_BOOL, &b, 1);
}

enum sa_status sa_gguf_writer_set_str(struct sa_gguf_writer *w, const char *key, const char *v) {
    if (!v) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': NULL string", key ? key : "");
    uint64_t len = strlen(v);
    uint8_t *raw = malloc(8 + len);
    if (!raw) return sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
    memcpy(raw, &len, 8);
    memcpy(raw + 8, v, len);
    return put_kv(w, key, SA_GGUF_TYPE_STRING, raw, 8 + len);
}

enum sa_status sa_gguf_writer_set_arr(struct sa_gguf_writer *w, const char *key, enum sa_gguf_type type, const void *data,
                                      uint64_t n) {
    uint64_t es = sa_gguf_type_size((uint32_t)type), bytes, total;
    if (!es)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': arrays of %s need set_arr_str or are not supported",
                        key ? key : "", sa_gguf_type_name((uint32_t)type));
    if (!sa_mul_ok(n, es, &bytes) || !sa_add_ok(bytes, 12, &total) || total > SIZE_MAX)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': array of %llu elements is too large", key ? key : "",
                        (unsigned long long)n);
    if (n && !data) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': NULL array data", key ? key : "");
    if (type == SA_GGUF_TYPE_BOOL) {
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': bool array element %llu is not 0 or 1",
                                key ? key : "", (unsigned long long)i);
    }
    uint8_t *raw = malloc((size_t)total);
    if (!raw) return sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
    uint32_t t = (uint32_t)type;
    memcpy(raw, &t, 4);
    memcpy(raw + 4, &n, 8);
    if (bytes) memcpy(raw + 12, data, (size_t)bytes);
    return put_kv(w, key, SA_GGUF_TYPE_ARRAY, raw, total);
}

enum sa_status sa_gguf_writer_set_arr_str(struct sa_gguf_writer *w, const char *key, const struct sa_gguf_str *strs,
                                          uint64_t n) {
    uint64_t total = 12;
    if (n && !strs) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': NULL string array", key ? key : "");
    for (uint64_t i = 0; i < n; i++) {
        if (strs[i].len && !strs[i].ptr)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': string %llu is NULL", key ? key : "",
                            (unsigned long long)i);
        if (!sa_add_ok(total, 8, &total) || !sa_add_ok(total, strs[i].len, &total) || total > SIZE_MAX)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: key '%s': string array too large", key ? key : "");
    }
    uint8_t *raw = malloc((size_t)total);
    if (!raw) return sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
    uint32_t t = SA_GGUF_TYPE_STRING;
    memcpy(raw, &t, 4);
    memcpy(raw + 4, &n, 8);
    uint8_t *p = raw + 12;
    for (uint64_t i = 0; i < n; i++) {
        memcpy(p, &strs[i].len, 8);
        if (strs[i].len) memcpy(p + 8, strs[i].ptr, (size_t)strs[i].len);
        p += 8 + strs[i].len;
    }
    return put_kv(w, key, SA_GGUF_TYPE_ARRAY, raw, total);
}

enum sa_status sa_gguf_writer_copy_kv(struct sa_gguf_writer *w, const struct sa_gguf *src) {
    if (!w || !src) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: NULL argument");
    for (int64_t i = 0; i < sa_gguf_n_kv(src); i++) {
        const char *key = sa_gguf_key(src, i);
        if (!strcmp(key, "general.alignment")) continue;
        const uint8_t *raw;
        uint64_t size;
        SA_ASSERT(sa_gguf_kv_raw(src, i, &raw, &size));
        enum sa_status s = put_copy(w, key, (uint32_t)sa_gguf_kv_type(src, i), raw, size);
        if (s) return s;
    }
    return SA_STATUS_OK;
}

enum sa_status sa_gguf_writer_add_tensor(struct sa_gguf_writer *w, const char *name, enum sa_dtype type, uint32_t n_dims,
                                         const int64_t ne[4], const void *data) {
    if (!w || !name || !ne || !data) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: NULL argument");
    size_t len = strlen(name);
    if (len == 0 || len > GGUF_MAX_NAME)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: tensor name '%s' must have 1 to %d bytes", name, GGUF_MAX_NAME);
    if (!sa_dtype_is_known((uint32_t)type))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: tensor '%s': unknown type %d", name, (int)type);
    if (n_dims < 1 || n_dims > 4)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: tensor '%s': %u dimensions (must be 1 to 4)", name, n_dims);
    struct wtensor t = {.type = type, .n_dims = n_dims, .data = data};
    uint64_t rows = 1;
    for (uint32_t d = 0; d < 4; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: tensor '%s': dimension %u is %lld (must be >= 1)", name, d,
                            (long long)t.ne[d]);
        if (d > 0 && !sa_mul_ok(rows, (uint64_t)t.ne[d], &rows))
            return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: tensor '%s': size overflows", name);
    }
    uint64_t row_bytes, n_elem;
    if (!sa_dtype_row_bytes(type, (uint64_t)t.ne[0], &row_bytes))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: tensor '%s': row of %lld is not a multiple of the %s block size %zu",
                        name, (long long)t.ne[0], sa_dtype_name(type), sa_dtype_block_size(type));
    if (!sa_mul_ok(row_bytes, rows, &t.n_bytes) || !sa_mul_ok((uint64_t)t.ne[0], rows, &n_elem) || n_elem > INT64_MAX)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: tensor '%s': size overflows", name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: duplicate tensor name '%s'", name);
    enum sa_status s = grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors);
    if (s) return s;
    if (!(t.name = strdup(name))) return sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
    w->tensors[w->n_tensors++] = t;
    return SA_STATUS_OK;
}

/* ---- output ---- */

struct out {
    FILE *f;
    const char *path;
    uint64_t pos;
    int err; /* errno of the first failed write */
};

static void out_put(struct out *o, const void *p, uint64_t n) {
    if (o->err || !n) return;
    if (fwrite(p, 1, (size_t)n, o->f) != n) o->err = errno ? errno : EIO;
    o->pos += n;
}

static void out_pad(struct out *o, uint64_t alignment) {
    static const uint8_t zeros[256];
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad) {
        uint64_t k = pad < sizeof zeros ? pad : sizeof zeros;
        out_put(o, zeros, k);
        pad -= k;
    }
}

static uint64_t writer_alignment(const struct sa_gguf_writer *w, enum sa_status *s) {
    *s = SA_STATUS_OK;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment")) continue;
        uint32_t a = 0;
        if (w->kv[i].type == SA_GGUF_TYPE_UINT32) memcpy(&a, w->kv[i].raw, 4);
        if (w->kv[i].type != SA_GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1))) {
            *s = sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: general.alignment must be a uint32 power of 2");
            return 0;
        }
        return a;
    }
    return GGUF_DEFAULT_ALIGNMENT;
}

enum sa_status sa_gguf_writer_write(struct sa_gguf_writer *w, const char *path) {
    if (!w || !path) return sa_error(SA_STATUS_BAD_ARGUMENT, "gguf writer: NULL argument");
    enum sa_status s;
    uint64_t alignment = writer_alignment(w, &s);
    if (s) return s;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (!tmp) return sa_error(SA_STATUS_NO_MEMORY, "gguf writer: out of memory");
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    struct out o = {.f = fopen(tmp, "wb"), .path = tmp};
    if (!o.f) {
        s = sa_error(SA_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    uint32_t version = 3;
    uint64_t n_tensors = w->n_tensors, n_kv = w->n_kv;
    out_put(&o, "GGUF", 4);
    out_put(&o, &version, 4);
    out_put(&o, &n_tensors, 8);
    out_put(&o, &n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        const struct wkv *kv = &w->kv[i];
        uint64_t len = strlen(kv->key);
        out_put(&o, &len, 8);
        out_put(&o, kv->key, len);
        out_put(&o, &kv->type, 4);
        out_put(&o, kv->raw, kv->raw_size);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        uint64_t len = strlen(t->name), ne;
        uint32_t type = (uint32_t)t->type;
        out_put(&o, &len, 8);
        out_put(&o, t->name, len);
        out_put(&o, &t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) {
            ne = (uint64_t)t->ne[d];
            out_put(&o, &ne, 8);
        }
        out_put(&o, &type, 4);
        out_put(&o, &offset, 8);
        uint64_t padded = t->n_bytes + (alignment - t->n_bytes % alignment) % alignment;
        SA_ASSERT(sa_add_ok(offset, padded, &offset)); /* sizes come from memory the caller holds */
    }
    out_pad(&o, alignment);
    for (size_t i = 0; i < w->n_tensors; i++) {
        out_put(&o, w->tensors[i].data, w->tensors[i].n_bytes);
        out_pad(&o, alignment);
    }
    errno = 0;
    int err = o.err;
    if (!err && (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0)) err = errno ? errno : EIO;
    if (!err) sa_file_drop_cache(fileno(o.f)); /* read back from disk as large folios: core_impl.h */
    if (fclose(o.f) != 0 && !err) err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        s = sa_error(SA_STATUS_IO, "%s: cannot write: %s", path, strerror(err));
        unlink(tmp);
    }
    free(tmp);
    return s;
}
