/* safetensors_writer.c: writes safetensors checkpoints, one file or shards plus
 * model.safetensors.index.json (the layout of transformers' save_pretrained). Like the
 * reference writer, tensors are laid out by decreasing element size, then name, so that
 * every tensor is aligned to its element size, and the header is padded with spaces to a
 * multiple of 8 bytes. Every file goes to `path.tmp` first and is renamed when complete. */
#define _GNU_SOURCE
#include "sa/safetensors.h"

#include "core/core_impl.h"
#include "formats/safetensors_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct wt {
    char *name;
    enum sa_dtype type;
    uint32_t n_dims;
    int64_t shape[SA_ST_MAX_DIMS];
    uint64_t n_bytes;
    const void *data;
};

struct sa_st_writer {
    struct wt *t;
    int64_t n, cap;
    char **meta; /* key, value pairs */
    int n_meta;
};

static char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

enum sa_status sa_st_writer_init(struct sa_st_writer **out) {
    *out = calloc(1, sizeof **out);
    return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
}

void sa_st_writer_free(struct sa_st_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    for (int i = 0; i < 2 * w->n_meta; i++) free(w->meta[i]);
    free(w->meta);
    free(w);
}

static bool valid_text(const char *s) {
    size_t n = strlen(s);
    return sa_utf8_valid_prefix(s, n) == n;
}

enum sa_status sa_st_writer_set_metadata(struct sa_st_writer *w, const char *key, const char *value) {
    if (!key || !value || !key[0] || !valid_text(key) || !valid_text(value))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors metadata: key and value must be non-empty UTF-8 text");
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[2 * i], key)) {
            char *v = xstrdup(value);
            if (!v) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            free(w->meta[2 * i + 1]);
            w->meta[2 * i + 1] = v;
            return SA_STATUS_OK;
        }
    char **m = realloc(w->meta, (size_t)(w->n_meta + 1) * 2 * sizeof *m);
    if (!m) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    w->meta = m;
    m[2 * w->n_meta] = xstrdup(key);
    m[2 * w->n_meta + 1] = xstrdup(value);
    w->n_meta++;
    if (!m[2 * w->n_meta - 2] || !m[2 * w->n_meta - 1]) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    return SA_STATUS_OK;
}

enum sa_status sa_st_writer_add(struct sa_st_writer *w, const char *name, enum sa_dtype type, uint32_t n_dims,
                                const int64_t *shape, const void *data) {
    if (!name || !name[0] || !valid_text(name) || !strcmp(name, "__metadata__"))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors: invalid tensor name");
    const char *tn = sa_st_dtype_name(type);
    if (!tn) return sa_error(SA_STATUS_UNSUPPORTED, "safetensors: tensor '%s': type %s cannot be stored in safetensors", name,
                             sa_dtype_name(type) ? sa_dtype_name(type) : "?");
    if (n_dims > SA_ST_MAX_DIMS || (n_dims && !shape))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors: tensor '%s': bad dimensions", name);
    uint64_t n_elem = 1, n_bytes;
    for (uint32_t d = 0; d < n_dims; d++)
        if (shape[d] < 0 || !sa_mul_ok(n_elem, (uint64_t)shape[d], &n_elem))
            return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors: tensor '%s': bad shape", name);
    if (!sa_mul_ok(n_elem, sa_st_elem_size(type), &n_bytes))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors: tensor '%s': size overflows", name);
    if (n_bytes && !data) return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors: tensor '%s': NULL data", name);
    for (int64_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors: tensor '%s' added twice", name);
    if (w->n == w->cap) {
        int64_t cap = w->cap ? 2 * w->cap : 64;
        struct wt *p = realloc(w->t, (size_t)cap * sizeof *p);
        if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        w->t = p;
        w->cap = cap;
    }
    struct wt *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = xstrdup(name))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < n_dims; d++) t->shape[d] = shape[d];
    t->n_bytes = n_bytes;
    t->data = data;
    w->n++;
    return SA_STATUS_OK;
}

/* ---- JSON text ---- */

static enum sa_status json_str(struct sa_buf *b, const char *s) {
    enum sa_status st = sa_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p && !st; p++) {
        if (*p == '"' || *p == '\\') st = sa_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20) st = sa_buf_printf(b, "\\u%04x", *p);
        else st = sa_buf_append(b, p, 1);
    }
    return st ? st : sa_buf_puts(b, "\"");
}

/* Tensors of one file, ordered by decreasing element size, then name (the reference's
 * order, which keeps every tensor aligned to its element size). */
static int order_cmp(const void *a, const void *b) {
    const struct wt *x = *(const struct wt *const *)a, *y = *(const struct wt *const *)b;
    size_t ex = sa_st_elem_size(x->type), ey = sa_st_elem_size(y->type);
    if (ex != ey) return ex > ey ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Header (with the 8-byte size prefix) for tensors idx[0..n) in the order given. */
static enum sa_status build_header(const struct sa_st_writer *w, const struct wt **idx, int64_t n, struct sa_buf *b) {
    uint64_t zero = 0;
    enum sa_status s = sa_buf_append(b, &zero, 8);
    if (!s) s = sa_buf_puts(b, "{");
    bool first = true;
    if (w->n_meta && !s) {
        s = sa_buf_puts(b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta && !s; i++) {
            if (i) s = sa_buf_puts(b, ",");
            if (!s) s = json_str(b, w->meta[2 * i]);
            if (!s) s = sa_buf_puts(b, ":");
            if (!s) s = json_str(b, w->meta[2 * i + 1]);
        }
        if (!s) s = sa_buf_puts(b, "}");
        first = false;
    }
    uint64_t off = 0;
    for (int64_t k = 0; k < n && !s; k++) {
        const struct wt *t = idx[k];
        if (!first) s = sa_buf_puts(b, ",");
        first = false;
        if (!s) s = json_str(b, t->name);
        if (!s) s = sa_buf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", sa_st_dtype_name(t->type));
        for (uint32_t d = 0; d < t->n_dims && !s; d++) s = sa_buf_printf(b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        if (!s) s = sa_buf_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + t->n_bytes));
        off += t->n_bytes;
    }
    if (!s) s = sa_buf_puts(b, "}");
    while (!s && (b->len - 8) % 8) s = sa_buf_puts(b, " ");
    if (s) return s;
    uint64_t hn = b->len - 8;
    for (int i = 0; i < 8; i++) ((uint8_t *)b->data)[i] = (uint8_t)(hn >> (8 * i));
    return SA_STATUS_OK;
}

static enum sa_status write_all(int fd, const void *data, uint64_t n, const char *path) {
    const char *p = data;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return sa_error(SA_STATUS_IO, "%s: write failed: %s", path, strerror(errno));
        }
        p += k;
        n -= (uint64_t)k;
    }
    return SA_STATUS_OK;
}

/* Writes tensors idx[0..n) (sorted in place) to `path`.tmp; the caller renames it. */
static enum sa_status write_tmp(const struct sa_st_writer *w, const struct wt **idx, int64_t n, const char *tmp) {
    qsort(idx, (size_t)n, sizeof *idx, order_cmp);
    struct sa_buf hdr;
    sa_buf_init(&hdr, 0);
    enum sa_status s = build_header(w, idx, n, &hdr);
    if (s) {
        sa_buf_free(&hdr);
        return s;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        sa_buf_free(&hdr);
        return sa_error(SA_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    s = write_all(fd, hdr.data, hdr.len, tmp);
    sa_buf_free(&hdr);
    for (int64_t k = 0; k < n && !s; k++) s = write_all(fd, idx[k]->data, idx[k]->n_bytes, tmp);
    if (!s && fsync(fd) != 0) s = sa_error(SA_STATUS_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (!s) sa_file_drop_cache(fd); /* read back from disk as large folios: core_impl.h */
    if (close(fd) != 0 && !s) s = sa_error(SA_STATUS_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (s) unlink(tmp);
    return s;
}

static char *tmp_name(const char *path) {
    size_t n = strlen(path);
    char *t = malloc(n + 5);
    if (t) {
        memcpy(t, path, n);
        memcpy(t + n, ".tmp", 5);
    }
    return t;
}

enum sa_status sa_st_writer_write_file(struct sa_st_writer *w, const char *path) {
    const struct wt **idx = malloc((size_t)(w->n + 1) * sizeof *idx);
    char *tmp = tmp_name(path);
    enum sa_status s = SA_STATUS_OK;
    if (!idx || !tmp) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < w->n && !s; i++) idx[i] = &w->t[i];
    if (!s) s = write_tmp(w, idx, w->n, tmp);
    if (!s && rename(tmp, path) != 0) {
        s = sa_error(SA_STATUS_IO, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(idx);
    free(tmp);
    return s;
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) snprintf(p, a + b + 2, "%s/%s", dir, name);
    return p;
}

static int name_idx_cmp(const void *a, const void *b) {
    const struct wt *x = *(const struct wt *const *)a, *y = *(const struct wt *const *)b;
    return strcmp(x->name, y->name);
}

enum sa_status sa_st_writer_write_dir(struct sa_st_writer *w, const char *dir, uint64_t max_shard_bytes) {
    enum sa_status s = sa_mkdir_p(dir, 0755);
    if (s) return s;
    uint64_t total = 0;
    for (int64_t i = 0; i < w->n; i++) total += w->t[i].n_bytes;
    char *single = join(dir, "model.safetensors"), *index = join(dir, "model.safetensors.index.json");
    if (!single || !index) {
        free(single);
        free(index);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    if (!max_shard_bytes || total <= max_shard_bytes) {
        s = sa_st_writer_write_file(w, single);
        if (!s) unlink(index); /* a stale index would shadow the new file */
        free(single);
        free(index);
        return s;
    }
    /* greedy split in insertion order; a tensor larger than the limit gets a shard alone */
    int64_t *shard_of = calloc((size_t)w->n + 1, sizeof *shard_of);
    const struct wt **idx = malloc(((size_t)w->n + 1) * sizeof *idx);
    int64_t n_shards = 0;
    if (!shard_of || !idx) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    uint64_t cur = 0;
    for (int64_t i = 0; i < w->n && !s; i++) {
        if (i == 0 || (cur && cur + w->t[i].n_bytes > max_shard_bytes)) {
            n_shards++;
            cur = 0;
        }
        shard_of[i] = n_shards - 1;
        cur += w->t[i].n_bytes;
    }
    char fname[64];
    for (int64_t k = 0; k < n_shards && !s; k++) {
        int64_t n = 0;
        for (int64_t i = 0; i < w->n; i++)
            if (shard_of[i] == k) idx[n++] = &w->t[i];
        snprintf(fname, sizeof fname, "model-%05lld-of-%05lld.safetensors", (long long)k + 1, (long long)n_shards);
        char *p = join(dir, fname), *tmp = p ? tmp_name(p) : NULL;
        if (!tmp) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        else s = write_tmp(w, idx, n, tmp);
        free(p);
        free(tmp);
    }
    if (s) /* remove the shards written before the failure */
        for (int64_t k = 0; k < n_shards; k++) {
            snprintf(fname, sizeof fname, "model-%05lld-of-%05lld.safetensors", (long long)k + 1, (long long)n_shards);
            char *p = join(dir, fname), *tmp = p ? tmp_name(p) : NULL;
            if (tmp) unlink(tmp);
            free(p);
            free(tmp);
        }
    /* all shards are complete: move them into place, then the index */
    for (int64_t k = 0; k < n_shards && !s; k++) {
        snprintf(fname, sizeof fname, "model-%05lld-of-%05lld.safetensors", (long long)k + 1, (long long)n_shards);
        char *p = join(dir, fname), *tmp = p ? tmp_name(p) : NULL;
        if (!tmp) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        else if (rename(tmp, p) != 0) s = sa_error(SA_STATUS_IO, "%s: cannot rename into place: %s", p, strerror(errno));
        free(p);
        free(tmp);
    }
    struct sa_buf b;
    sa_buf_init(&b, 0);
    if (!s) s = sa_buf_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {\n", (unsigned long long)total);
    for (int64_t i = 0; i < w->n && !s; i++) idx[i] = &w->t[i];
    if (!s) qsort(idx, (size_t)w->n, sizeof *idx, name_idx_cmp);
    for (int64_t k = 0; k < w->n && !s; k++) {
        int64_t i = idx[k] - w->t;
        snprintf(fname, sizeof fname, "model-%05lld-of-%05lld.safetensors", (long long)shard_of[i] + 1, (long long)n_shards);
        s = sa_buf_puts(&b, "    ");
        if (!s) s = json_str(&b, w->t[i].name);
        if (!s) s = sa_buf_printf(&b, ": \"%s\"%s\n", fname, k + 1 < w->n ? "," : "");
    }
    if (!s) s = sa_buf_puts(&b, "  }\n}\n");
    if (!s) s = sa_write_file_atomic(index, b.data, b.len);
    if (!s) unlink(single); /* a stale single file would be confusing next to the shards */
    sa_buf_free(&b);
    free(shard_of);
    free(idx);
    free(single);
    free(index);
    return s;
}
