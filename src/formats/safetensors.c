/* safetensors.c: validating reader of Hugging Face safetensors checkpoints (one file, or the
 * shards named by model.safetensors.index.json), over read-only mappings.
 * ref: huggingface/safetensors README (format) and safetensors/src/tensor.rs (validation:
 * header size bound, offsets inside the byte buffer, sizes matching the shapes). */
#define _GNU_SOURCE
#include "sa/safetensors.h"

#include "core/core_impl.h"
#include "formats/safetensors_impl.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER (100u * 1000u * 1000u) /* the reference's MAX_HEADER_SIZE */
#define ST_MAX_INDEX (64u * 1024u * 1024u)   /* model.safetensors.index.json */
#define ST_MAX_SHARDS 4096
#define ST_MAX_META 4096

struct st_file {
    struct sa_file_map map; /* empty for open_memory */
    const uint8_t *data;
    size_t size;
};

struct st_name {
    const char *name;
    int64_t i;
};

struct sa_safetensors {
    struct st_file *files;
    int n_files;
    struct sa_st_tensor *tensors;
    int64_t n_tensors, cap_tensors;
    struct st_name *sorted; /* (name, index) sorted by name, for find */
    char **meta;     /* key, value, key, value, ... of the first file's __metadata__ */
    int n_meta;
};

/* ---- dtypes ---- */

static const struct {
    const char *name;
    enum sa_dtype type; /* SA_DTYPE_COUNT: a safetensors type we do not handle */
    size_t size;
} st_types[] = {
    {"F32", SA_DTYPE_F32, 4},   {"F16", SA_DTYPE_F16, 2},     {"BF16", SA_DTYPE_BF16, 2},
    {"F64", SA_DTYPE_F64, 8},   {"I8", SA_DTYPE_I8, 1},       {"I16", SA_DTYPE_I16, 2},
    {"I32", SA_DTYPE_I32, 4},   {"I64", SA_DTYPE_I64, 8},     {"U8", SA_DTYPE_COUNT, 1},
    {"BOOL", SA_DTYPE_COUNT, 1}, {"U16", SA_DTYPE_COUNT, 2},  {"U32", SA_DTYPE_COUNT, 4},
    {"U64", SA_DTYPE_COUNT, 8}, {"F8_E4M3", SA_DTYPE_COUNT, 1}, {"F8_E5M2", SA_DTYPE_COUNT, 1},
};

const char *sa_st_dtype_name(enum sa_dtype t) {
    for (size_t i = 0; i < SA_ARRAY_LEN(st_types); i++)
        if (st_types[i].type == t && t != SA_DTYPE_COUNT) return st_types[i].name;
    return NULL;
}

size_t sa_st_elem_size(enum sa_dtype t) {
    for (size_t i = 0; i < SA_ARRAY_LEN(st_types); i++)
        if (st_types[i].type == t && t != SA_DTYPE_COUNT) return st_types[i].size;
    return 0;
}

/* ---- small helpers ---- */

static char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static bool json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static uint64_t rd_u64le(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static enum sa_status push_tensor(struct sa_safetensors *st, const struct sa_st_tensor *t) {
    if (st->n_tensors == st->cap_tensors) {
        int64_t cap = st->cap_tensors ? st->cap_tensors * 2 : 64;
        struct sa_st_tensor *p = realloc(st->tensors, (size_t)cap * sizeof *p);
        if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        st->tensors = p;
        st->cap_tensors = cap;
    }
    st->tensors[st->n_tensors++] = *t;
    return SA_STATUS_OK;
}

struct span {
    uint64_t begin, end;
    const char *name;
};

static int span_cmp(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parses one tensor entry `item` of a header. */
static enum sa_status parse_tensor(const cJSON *item, const uint8_t *data, uint64_t data_size,
                                   const char *label, struct sa_st_tensor *t, struct span *sp) {
    const char *name = item->string;
    if (!cJSON_IsObject(item)) return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' is not a JSON object", label, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': missing or non-string \"dtype\"", label, name);
    if (!cJSON_IsArray(shape)) return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': missing or non-array \"shape\"", label, name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", label, name);
    size_t ti = SA_ARRAY_LEN(st_types);
    for (size_t i = 0; i < SA_ARRAY_LEN(st_types); i++)
        if (!strcmp(dt->valuestring, st_types[i].name)) ti = i;
    if (ti == SA_ARRAY_LEN(st_types))
        return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': unknown dtype \"%.32s\"", label, name, dt->valuestring);
    if (st_types[ti].type == SA_DTYPE_COUNT)
        return sa_error(SA_STATUS_UNSUPPORTED,
                        "%s: tensor '%s' has dtype %s, which salign does not handle "
                        "(supported: F32, F16, BF16, F64, I8, I16, I32, I64)", label, name, st_types[ti].name);
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > SA_ST_MAX_DIMS)
        return sa_error(SA_STATUS_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (at most %d supported)", label, name,
                        n_dims, SA_ST_MAX_DIMS);
    memset(t, 0, sizeof *t);
    t->type = st_types[ti].type;
    t->n_dims = (uint32_t)n_dims;
    uint64_t n_elem = 1;
    int d = 0;
    for (const cJSON *e = shape->child; e; e = e->next, d++) {
        uint64_t v;
        if (!json_uint(e, &v)) return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': shape[%d] is not a non-negative integer", label, name, d);
        if (!sa_mul_ok(n_elem, v, &n_elem) || n_elem > (uint64_t)INT64_MAX)
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': element count overflows", label, name);
        t->shape[d] = (int64_t)v;
    }
    uint64_t begin, end, n_bytes;
    if (!json_uint(offs->child, &begin) || !json_uint(offs->child->next, &end))
        return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': data_offsets are not non-negative integers", label, name);
    if (begin > end) return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': data_offsets begin %llu > end %llu", label, name,
                                     (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': data [%llu, %llu) outside the %llu-byte data section (truncated file?)",
                        label, name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    if (!sa_mul_ok(n_elem, st_types[ti].size, &n_bytes))
        return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': byte size overflows", label, name);
    if (end - begin != n_bytes)
        return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': data_offsets span %llu bytes but shape x %s needs %llu", label,
                        name, (unsigned long long)(end - begin), st_types[ti].name, (unsigned long long)n_bytes);
    t->n_bytes = n_bytes;
    t->data = data + begin;
    sp->begin = begin;
    sp->end = end;
    sp->name = name;
    return SA_STATUS_OK;
}

/* Validates one file's bytes and appends its tensors; keeps __metadata__ when `keep_meta`. */
static enum sa_status parse_file(struct sa_safetensors *st, const uint8_t *buf, size_t size, const char *label,
                                 bool keep_meta) {
    if (size < 8) return sa_error(SA_STATUS_BAD_FILE, "%s: truncated (%zu bytes; a safetensors file starts with an 8-byte header size)", label, size);
    uint64_t n = rd_u64le(buf);
    /* the file's own size first: 8 bytes of garbage read as a length are mostly > 100 MB, and
     * "larger than the file" is what is wrong with them */
    if (n > size - 8)
        return sa_error(SA_STATUS_BAD_FILE, "%s: header size %llu larger than the file (%zu bytes): truncated or not safetensors",
                        label, (unsigned long long)n, size);
    if (n > ST_MAX_HEADER) return sa_error(SA_STATUS_BAD_FILE, "%s: header size %llu exceeds the 100 MB limit", label, (unsigned long long)n);
    if (n < 2 || buf[8] != '{') return sa_error(SA_STATUS_BAD_FILE, "%s: header is not a JSON object (not a safetensors file?)", label);
    const char *js = (const char *)buf + 8;
    if (memchr(js, 0, n) || sa_utf8_valid_prefix(js, n) != n)
        return sa_error(SA_STATUS_BAD_FILE, "%s: header is not valid UTF-8 text", label);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(js, n, &end, 0);
    if (!root) return sa_error(SA_STATUS_BAD_FILE, "%s: header JSON does not parse (near byte %lld)", label,
                               (long long)((cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : js) - js));
    for (const char *p = end; p && p < js + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return sa_error(SA_STATUS_BAD_FILE, "%s: garbage after the header JSON", label);
        }
    enum sa_status s = SA_STATUS_OK;
    const uint8_t *data = buf + 8 + n;
    uint64_t data_size = size - 8 - n;
    int n_items = cJSON_GetArraySize(root);
    struct span *spans = calloc((size_t)n_items + 1, sizeof *spans);
    int n_spans = 0;
    if (!spans) {
        cJSON_Delete(root);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    if (!cJSON_IsObject(root)) s = sa_error(SA_STATUS_BAD_FILE, "%s: header is not a JSON object", label);
    for (const cJSON *it = cJSON_IsObject(root) ? root->child : NULL; it && !s; it = it->next) {
        if (!it->string) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: header entry without a name", label);
            break;
        }
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                s = sa_error(SA_STATUS_BAD_FILE, "%s: __metadata__ is not an object", label);
                break;
            }
            for (const cJSON *m = it->child; m && !s; m = m->next) {
                if (!cJSON_IsString(m)) s = sa_error(SA_STATUS_BAD_FILE, "%s: __metadata__ value of '%s' is not a string", label, m->string);
                else if (keep_meta) {
                    if (st->n_meta >= ST_MAX_META) s = sa_error(SA_STATUS_BAD_FILE, "%s: more than %d __metadata__ entries", label, ST_MAX_META);
                    else {
                        char **mp = realloc(st->meta, (size_t)(st->n_meta + 1) * 2 * sizeof *mp);
                        if (!mp) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                        else {
                            st->meta = mp;
                            mp[2 * st->n_meta] = xstrdup(m->string);
                            mp[2 * st->n_meta + 1] = xstrdup(m->valuestring);
                            st->n_meta++;
                            if (!mp[2 * st->n_meta - 2] || !mp[2 * st->n_meta - 1]) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                        }
                    }
                }
            }
            continue;
        }
        struct sa_st_tensor t;
        s = parse_tensor(it, data, data_size, label, &t, &spans[n_spans]);
        if (s) break;
        t.name = xstrdup(it->string);
        if (!t.name) {
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            break;
        }
        spans[n_spans].name = t.name;
        n_spans++;
        if ((s = push_tensor(st, &t))) free((void *)t.name);
    }
    if (!s && n_spans > 1) {
        qsort(spans, (size_t)n_spans, sizeof *spans, span_cmp);
        uint64_t max_end = spans[0].end;
        const char *max_name = spans[0].name;
        for (int i = 1; i < n_spans && !s; i++) {
            if (spans[i].begin < max_end && spans[i].end > spans[i].begin)
                s = sa_error(SA_STATUS_BAD_FILE, "%s: tensors '%s' and '%s' overlap in the data section", label, max_name,
                             spans[i].name);
            if (spans[i].end > max_end) {
                max_end = spans[i].end;
                max_name = spans[i].name;
            }
        }
    }
    free(spans);
    cJSON_Delete(root);
    return s;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(((const struct st_name *)a)->name, ((const struct st_name *)b)->name);
}

/* Sorts the name index and rejects duplicate names (in one header or across shards). */
static enum sa_status build_index(struct sa_safetensors *st, const char *label) {
    st->sorted = malloc((size_t)(st->n_tensors + 1) * sizeof *st->sorted);
    if (!st->sorted) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    for (int64_t i = 0; i < st->n_tensors; i++) st->sorted[i] = (struct st_name){st->tensors[i].name, i};
    qsort(st->sorted, (size_t)st->n_tensors, sizeof *st->sorted, name_cmp);
    for (int64_t i = 1; i < st->n_tensors; i++)
        if (!strcmp(st->sorted[i].name, st->sorted[i - 1].name))
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' appears twice", label, st->sorted[i].name);
    return SA_STATUS_OK;
}

void sa_safetensors_free(struct sa_safetensors *st) {
    if (!st) return;
    for (int64_t i = 0; i < st->n_tensors; i++) free((void *)st->tensors[i].name);
    free(st->tensors);
    free(st->sorted);
    for (int i = 0; i < 2 * st->n_meta; i++) free(st->meta[i]);
    free(st->meta);
    for (int i = 0; i < st->n_files; i++) sa_file_map_close(&st->files[i].map);
    free(st->files);
    free(st);
}

static enum sa_status st_new(int n_files, struct sa_safetensors **out) {
    struct sa_safetensors *st = calloc(1, sizeof *st);
    if (st) st->files = calloc((size_t)n_files, sizeof *st->files);
    if (!st || !st->files) {
        free(st);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    *out = st;
    return SA_STATUS_OK;
}

enum sa_status sa_safetensors_open_memory(const void *data, size_t size, struct sa_safetensors **out) {
    *out = NULL;
    if (!data && size) return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors: NULL buffer");
    struct sa_safetensors *st;
    enum sa_status s = st_new(1, &st);
    if (s) return s;
    st->n_files = 1;
    st->files[0].data = data;
    st->files[0].size = size;
    if ((s = parse_file(st, data, size, "safetensors", true)) || (s = build_index(st, "safetensors"))) {
        sa_safetensors_free(st);
        return s;
    }
    *out = st;
    return SA_STATUS_OK;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Maps and parses shard `i` of `st` from `path`. */
static enum sa_status open_one(struct sa_safetensors *st, int i, const char *path) {
    enum sa_status s = sa_file_map_open(path, &st->files[i].map);
    if (s) return s;
    st->files[i].data = st->files[i].map.data;
    st->files[i].size = st->files[i].map.size;
    st->n_files = i + 1;
    return parse_file(st, st->files[i].data, st->files[i].size, path, i == 0);
}

/* A shard name from an index: a plain file name in the index's directory. */
static bool safe_shard_name(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\') && strlen(s) < 1024;
}

static enum sa_status open_index(const char *index_path, struct sa_safetensors **out) {
    char *text = NULL;
    size_t len = 0;
    enum sa_status s = sa_read_file(index_path, ST_MAX_INDEX, &text, &len);
    if (s) return s;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return sa_error(SA_STATUS_BAD_FILE, "%s: not valid JSON", index_path);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        cJSON_Delete(root);
        return sa_error(SA_STATUS_BAD_FILE, "%s: missing or empty \"weight_map\" object", index_path);
    }
    /* the distinct shard names, in order of first appearance */
    const char **shards = NULL;
    int n_shards = 0;
    char *dir = xstrdup(index_path);
    if (!dir) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    else {
        char *slash = strrchr(dir, '/');
        if (slash) slash[1] = 0;
        else strcpy(dir, ".");
    }
    for (const cJSON *e = wm->child; e && !s; e = e->next) {
        if (!cJSON_IsString(e) || !safe_shard_name(e->valuestring)) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: weight_map entry '%s' is not a plain file name", index_path, e->string);
            break;
        }
        int k = 0;
        while (k < n_shards && strcmp(shards[k], e->valuestring)) k++;
        if (k < n_shards) continue;
        if (n_shards >= ST_MAX_SHARDS) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: more than %d shards", index_path, ST_MAX_SHARDS);
            break;
        }
        const char **p = realloc(shards, (size_t)(n_shards + 1) * sizeof *p);
        if (!p) {
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            break;
        }
        shards = p;
        shards[n_shards++] = e->valuestring;
    }
    struct sa_safetensors *st = NULL;
    if (!s) s = st_new(n_shards, &st);
    for (int i = 0; i < n_shards && !s; i++) {
        char *p = path_join(dir, shards[i]);
        if (!p) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        else s = open_one(st, i, p);
        free(p);
    }
    if (!s) s = build_index(st, index_path);
    /* every weight_map entry must be in the shard it names */
    for (const cJSON *e = wm->child; e && !s; e = e->next) {
        const struct sa_st_tensor *t = sa_safetensors_find(st, e->string);
        if (!t) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' of the weight_map is in no shard", index_path, e->string);
            break;
        }
        int k = 0;
        while (k < n_shards && strcmp(shards[k], e->valuestring)) k++;
        const uint8_t *lo = st->files[k].data, *hi = lo + st->files[k].size;
        if ((const uint8_t *)t->data < lo || (const uint8_t *)t->data > hi)
            s = sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' is not in shard %s", index_path, e->string, shards[k]);
    }
    free(shards);
    free(dir);
    cJSON_Delete(root);
    if (s) {
        sa_safetensors_free(st);
        return s;
    }
    *out = st;
    return SA_STATUS_OK;
}

enum sa_status sa_safetensors_open(const char *path, struct sa_safetensors **out) {
    *out = NULL;
    if (!path) return sa_error(SA_STATUS_BAD_ARGUMENT, "safetensors: NULL path");
    enum sa_status s;
    if (is_dir(path)) {
        char *idx = path_join(path, "model.safetensors.index.json");
        char *one = path_join(path, "model.safetensors");
        if (!idx || !one) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        else if (sa_file_exists(idx)) s = open_index(idx, out);
        else if (sa_file_exists(one)) s = sa_safetensors_open(one, out);
        else s = sa_error(SA_STATUS_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json in this directory", path);
        free(idx);
        free(one);
        return s;
    }
    if (ends_with(path, ".json")) return open_index(path, out);
    struct sa_safetensors *st;
    if ((s = st_new(1, &st))) return s;
    if ((s = open_one(st, 0, path)) || (s = build_index(st, path))) {
        sa_safetensors_free(st);
        return s;
    }
    *out = st;
    return SA_STATUS_OK;
}

int64_t sa_safetensors_n_tensors(const struct sa_safetensors *st) { return st ? st->n_tensors : 0; }

const struct sa_st_tensor *sa_safetensors_tensor(const struct sa_safetensors *st, int64_t i) {
    if (!st || i < 0 || i >= st->n_tensors) return NULL;
    return &st->tensors[i];
}

const struct sa_st_tensor *sa_safetensors_find(const struct sa_safetensors *st, const char *name) {
    if (!st || !name || !st->sorted) return NULL;
    int64_t lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->sorted[mid].name, name);
        if (!c) return &st->tensors[st->sorted[mid].i];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *sa_safetensors_metadata(const struct sa_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}
