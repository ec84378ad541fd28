/* control_vector.c: control vectors (sa/steer.h): the (n_layer, n_embd) object and its file in
 * llama.cpp's GGUF control-vector format, read through the one GGUF reader (gguf.c) and written
 * through its writer (gguf_writer.c). The format, as llama.cpp's cvector-generator and repeng
 * write it and common_control_vector_load_one reads it: general.architecture "controlvector",
 * controlvector.model_hint (string), controlvector.layer_count (int32), and 1-D F32 tensors
 * "direction.K", K >= 1, whose data land in llama.cpp's per-layer tensor K and are added after
 * block K (0-based). llama.cpp rejects K = 0 and sums repeated K. docs/STEER.md. */
#include "core/core_impl.h"
#include "sa/gguf.h"
#include "sa/steer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sa_cvec {
    int32_t n_layer, n_embd;
    float *data; /* (n_layer, n_embd) */
    char model_hint[64];
};

enum sa_status sa_cvec_init(int32_t n_layer, int32_t n_embd, struct sa_cvec **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_cvec_init: NULL out");
    *out = NULL;
    if (n_layer < 1 || n_layer > SA_CVEC_MAX_LAYER || n_embd < 1 || n_embd > SA_CVEC_MAX_EMBD)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_cvec_init: %d layers of %d floats: outside [1, %d] x [1, %d]",
                        n_layer, n_embd, SA_CVEC_MAX_LAYER, SA_CVEC_MAX_EMBD);
    struct sa_cvec *cv = calloc(1, sizeof *cv);
    if (cv) cv->data = calloc((size_t)n_layer * (size_t)n_embd, sizeof(float));
    if (!cv || !cv->data) {
        free(cv);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    cv->n_layer = n_layer;
    cv->n_embd = n_embd;
    *out = cv;
    return SA_STATUS_OK;
}

void sa_cvec_free(struct sa_cvec *cv) {
    if (!cv) return;
    free(cv->data);
    free(cv);
}

int32_t sa_cvec_n_layer(const struct sa_cvec *cv) { return cv->n_layer; }
int32_t sa_cvec_n_embd(const struct sa_cvec *cv) { return cv->n_embd; }

float *sa_cvec_layer(struct sa_cvec *cv, int32_t il) {
    return il >= 0 && il < cv->n_layer ? cv->data + (size_t)il * (size_t)cv->n_embd : NULL;
}

const float *sa_cvec_layer_const(const struct sa_cvec *cv, int32_t il) {
    return il >= 0 && il < cv->n_layer ? cv->data + (size_t)il * (size_t)cv->n_embd : NULL;
}

const char *sa_cvec_model_hint(const struct sa_cvec *cv) { return cv->model_hint; }

enum sa_status sa_cvec_set_model_hint(struct sa_cvec *cv, const char *hint) {
    if (!hint) hint = "";
    if (strlen(hint) >= sizeof cv->model_hint)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "control vector model hint '%.40s...' is longer than %zu bytes", hint,
                        sizeof cv->model_hint - 1);
    snprintf(cv->model_hint, sizeof cv->model_hint, "%s", hint);
    return SA_STATUS_OK;
}

/* "direction.K" -> K in [1, SA_CVEC_MAX_LAYER), or -1 for any other name (K with a sign,
 * leading zeros or other characters included: llama.cpp's std::stoi would take "+1" or "01",
 * but no writer makes them and one name per layer keeps the file unambiguous). */
static int32_t direction_index(const char *name) {
    static const char pfx[] = "direction.";
    if (strncmp(name, pfx, sizeof pfx - 1)) return -1;
    const char *d = name + sizeof pfx - 1;
    if (!*d || (*d == '0' && d[1])) return -1;
    int32_t k = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9') return -1;
        k = k * 10 + (*d - '0');
        if (k >= SA_CVEC_MAX_LAYER) return -1;
    }
    return k;
}

static enum sa_status from_gguf(const struct sa_gguf *g, const char *what, struct sa_cvec **out) {
    char *arch = sa_gguf_get_string(g, "general.architecture");
    const bool arch_ok = !arch || !strcmp(arch, "controlvector");
    enum sa_status s = SA_STATUS_OK;
    if (!arch_ok)
        s = sa_error(SA_STATUS_BAD_FILE, "%s: not a control vector (general.architecture is '%s', expected "
                                         "'controlvector')", what, arch);
    free(arch);
    if (s) return s;
    const int64_t n = sa_gguf_n_tensors(g);
    if (n == 0) return sa_error(SA_STATUS_BAD_FILE, "%s: no direction tensors", what);
    /* first pass: names, types, shapes, the largest index */
    int32_t max_k = 0;
    int64_t n_embd = -1;
    for (int64_t i = 0; i < n; i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        const int32_t k = direction_index(t->name);
        if (!strcmp(t->name, "direction.0"))
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor 'direction.0': llama.cpp's format never steers block 0 "
                                                "(indices start at 1)", what);
        if (k < 1)
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' is not 'direction.K' with K in [1, %d)", what, t->name,
                            SA_CVEC_MAX_LAYER);
        if (t->type != SA_DTYPE_F32)
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' is %s, expected f32", what, t->name,
                            sa_dtype_name(t->type) ? sa_dtype_name(t->type) : "?");
        if (t->n_dims != 1)
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' has %u dimensions, expected 1", what, t->name, t->n_dims);
        if (t->ne[0] < 1 || t->ne[0] > SA_CVEC_MAX_EMBD || t->n_bytes != (uint64_t)t->ne[0] * sizeof(float))
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' has %lld elements (%llu bytes): outside [1, %d]", what,
                            t->name, (long long)t->ne[0], (unsigned long long)t->n_bytes, SA_CVEC_MAX_EMBD);
        if (n_embd >= 0 && t->ne[0] != n_embd)
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' has %lld elements, the first direction %lld", what,
                            t->name, (long long)t->ne[0], (long long)n_embd);
        n_embd = t->ne[0];
        if (k > max_k) max_k = k;
    }
    int64_t lc = 0;
    if (sa_gguf_find_key(g, "controlvector.layer_count") >= 0 &&
        (!sa_gguf_get_i64(g, "controlvector.layer_count", &lc) || lc < 0))
        return sa_error(SA_STATUS_BAD_FILE, "%s: controlvector.layer_count is not an integer >= 0", what);
    struct sa_cvec *cv = NULL;
    if ((s = sa_cvec_init(max_k + 1, (int32_t)n_embd, &cv))) return s;
    char *hint = sa_gguf_get_string(g, "controlvector.model_hint");
    if (hint && strlen(hint) < sizeof cv->model_hint) snprintf(cv->model_hint, sizeof cv->model_hint, "%s", hint);
    free(hint);
    for (int64_t i = 0; i < n && !s; i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        float *row = sa_cvec_layer(cv, direction_index(t->name));
        for (int64_t e = 0; e < n_embd; e++) {
            float v;
            memcpy(&v, (const uint8_t *)t->data + e * 4, sizeof v); /* the data need not be aligned */
            if (!isfinite(v)) {
                s = sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' holds NaN or Inf at %lld", what, t->name, (long long)e);
                break;
            }
            row[e] += v;
        }
    }
    if (s) {
        sa_cvec_free(cv);
        return s;
    }
    *out = cv;
    return SA_STATUS_OK;
}

enum sa_status sa_cvec_load_memory(const void *data, size_t size, struct sa_cvec **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_cvec_load_memory: NULL out");
    *out = NULL;
    if (!data) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_cvec_load_memory: NULL data");
    struct sa_gguf *g = NULL;
    enum sa_status s = sa_gguf_open_memory(data, size, &g);
    if (s) return sa_error_wrap(s, "control vector");
    s = from_gguf(g, "control vector", out);
    sa_gguf_free(g);
    return s;
}

enum sa_status sa_cvec_load(const char *path, struct sa_cvec **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_cvec_load: NULL out");
    *out = NULL;
    if (!path) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_cvec_load: NULL path");
    if (!sa_file_exists(path)) return sa_error(SA_STATUS_NOT_FOUND, "%s: no such control vector file", path);
    struct sa_gguf *g = NULL;
    enum sa_status s = sa_gguf_open(path, &g);
    if (s) return sa_error_wrap(s, "control vector %s", path);
    s = from_gguf(g, path, out);
    sa_gguf_free(g);
    return s;
}

enum sa_status sa_cvec_save(const struct sa_cvec *cv, const char *path) {
    if (!cv || !path) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_cvec_save: NULL argument");
    if (cv->n_layer < 2)
        return sa_error(SA_STATUS_UNSUPPORTED, "%s: a control vector of one layer steers only block 0, which "
                                               "llama.cpp's format cannot hold", path);
    for (int64_t e = 0; e < (int64_t)cv->n_layer * cv->n_embd; e++)
        if (!isfinite(cv->data[e]))
            return sa_error(SA_STATUS_BAD_ARGUMENT, "%s: the control vector holds NaN or Inf (layer %lld)", path,
                            (long long)(e / cv->n_embd));
    for (int32_t e = 0; e < cv->n_embd; e++)
        if (cv->data[e] != 0.0f)
            return sa_error(SA_STATUS_UNSUPPORTED, "%s: row 0 of the control vector is not zero: llama.cpp's format "
                                                   "cannot steer block 0 (its indices start at 1)", path);
    struct sa_gguf_writer *w = NULL;
    enum sa_status s = sa_gguf_writer_init(&w);
    if (!s) s = sa_gguf_writer_set_str(w, "general.architecture", "controlvector");
    if (!s) s = sa_gguf_writer_set_str(w, "controlvector.model_hint", cv->model_hint);
    if (!s) s = sa_gguf_writer_set_i32(w, "controlvector.layer_count", cv->n_layer - 1);
    for (int32_t k = 1; k < cv->n_layer && !s; k++) {
        char name[32];
        snprintf(name, sizeof name, "direction.%d", k);
        const int64_t ne[4] = {cv->n_embd, 1, 1, 1};
        s = sa_gguf_writer_add_tensor(w, name, SA_DTYPE_F32, 1, ne, sa_cvec_layer_const(cv, k));
    }
    if (!s) s = sa_gguf_writer_write(w, path);
    sa_gguf_writer_free(w);
    return s;
}
