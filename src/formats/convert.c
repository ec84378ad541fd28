/* convert.c: GGUF <-> Hugging Face safetensors conversion with re-encoding (sa/convert.h).
 * Every conversion is planned first (names, shapes, output types, row permutations), then
 * executed row by row (dequantize, adjust, quantize) into a scratch file mapping, so that
 * memory use stays at one row whatever the model size.
 * refs: llama.cpp convert_hf_to_gguf.py (tensor names, LlamaModel.permute of q/k rows,
 * Gemma3Model's +1 on norm weights) and gguf-py constants.py (metadata keys). */
#define _GNU_SOURCE
#include "sa/convert.h"

#include "core/core_impl.h"
#include "formats/arch_impl.h"
#include "formats/gguf_impl.h"
#include "formats/model_config_impl.h"
#include "formats/safetensors_impl.h"
#include "sa/gguf.h"
#include "sa/model_config.h"
#include "sa/safetensors.h"
#include "sa/tokenizer.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* llama.cpp's enum llama_ftype values for general.file_type */
#define FTYPE_ALL_F32 0
#define FTYPE_MOSTLY_F16 1
#define FTYPE_MOSTLY_Q8_0 7
#define FTYPE_MOSTLY_BF16 32

struct sa_convert_params sa_convert_default_params(void) {
    struct sa_convert_params p;
    memset(&p, 0, sizeof p);
    p.to = SA_CONVERT_GGUF;
    p.type = SA_DTYPE_F16;
    return p;
}

static void note(const struct sa_convert_params *p, const char *fmt, ...) SA_PRINTF(2, 3);
static void note(const struct sa_convert_params *p, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->log) p->log(p->log_user, msg);
    else sa_log(SA_LOG_INFO, "%s", msg);
}

/* ---- tensor names: GGUF (llama.cpp) <-> Hugging Face, from the architecture table ---- */

/* Maps `name` ("<base>.weight"/"<base>.bias") from one naming to the other; false if unknown. */
static bool map_name(enum sa_arch arch, const char *name, bool to_hf, char *out, size_t n) {
    enum sa_tensor t;
    int il;
    const char *suffix;
    return sa_arch_tensor_parse(arch, to_hf ? SA_NAMES_GGUF : SA_NAMES_HF, name, &t, &il, &suffix) &&
           sa_arch_tensor_name(arch, to_hf ? SA_NAMES_HF : SA_NAMES_GGUF, t, il, suffix, out, n);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* ---- plans ---- */

enum perm { PERM_NONE, PERM_TO_HF, PERM_TO_GGUF };

struct item {
    char name[256];          /* output name */
    const char *src_name;
    enum sa_dtype src_type, dst_type;
    const void *src;
    uint32_t n_dims;
    int64_t shape[SA_ST_MAX_DIMS]; /* PyTorch order: shape[n_dims-1] is the row length */
    enum perm perm;
    int32_t perm_heads;      /* heads of the Q/K permutation */
    float add;               /* added to every value (Gemma norms: +1 / -1) */
    bool copy;               /* output bytes are the input bytes */
    uint64_t dst_bytes, dst_off;
    const void *dst;         /* set when executed */
};

struct plan {
    struct item *items;
    int64_t n, cap;
};

static void plan_free(struct plan *pl) { free(pl->items); }

static enum sa_status plan_push(struct plan *pl, struct item **out) {
    if (pl->n == pl->cap) {
        int64_t cap = pl->cap ? pl->cap * 2 : 256;
        struct item *p = realloc(pl->items, (size_t)cap * sizeof *p);
        if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        pl->items = p;
        pl->cap = cap;
    }
    *out = &pl->items[pl->n++];
    memset(*out, 0, sizeof **out);
    return SA_STATUS_OK;
}

static bool is_float_type(enum sa_dtype t) {
    return t != SA_DTYPE_I8 && t != SA_DTYPE_I16 && t != SA_DTYPE_I32 && t != SA_DTYPE_I64;
}

static void row_geometry(const struct item *it, int64_t *row_len, int64_t *n_rows) {
    *row_len = it->n_dims ? it->shape[it->n_dims - 1] : 1;
    *n_rows = 1;
    for (uint32_t d = 0; d + 1 < it->n_dims; d++) *n_rows *= it->shape[d];
    if (it->perm != PERM_NONE && it->n_dims == 1) { /* a bias: permute single elements */
        *n_rows = *row_len;
        *row_len = 1;
    }
}

/* Chooses the output type of `it` for target `want` and GGUF or safetensors output. */
static enum sa_status choose_type(const struct sa_convert_params *p, struct item *it, bool gguf_out) {
    int64_t row_len, n_rows;
    row_geometry(it, &row_len, &n_rows);
    if (!is_float_type(it->src_type)) {
        it->dst_type = it->src_type; /* integer tensors are copied */
        if (it->perm != PERM_NONE || it->add != 0)
            return sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s': an integer tensor cannot be permuted or shifted", it->src_name);
        return SA_STATUS_OK;
    }
    enum sa_dtype t = p->type;
    if (gguf_out && it->n_dims <= 1) t = SA_DTYPE_F32; /* norms and biases stay F32, as in llama.cpp */
    if (t == SA_DTYPE_Q8_0 && row_len % 32) {
        note(p, "%s: rows of %lld values are not a multiple of 32: F16 instead of Q8_0", it->name, (long long)row_len);
        t = SA_DTYPE_F16;
    }
    it->dst_type = t;
    return SA_STATUS_OK;
}

/* Source row `r` of the output's row `r` under the Q/K permutation. ref: LlamaModel.permute:
 * HF rows (head, half, i) are stored by llama.cpp as (head, i, half). */
static int64_t src_row(const struct item *it, int64_t r) {
    if (it->perm == PERM_NONE) return r;
    int64_t hd = it->shape[0] / it->perm_heads, half = hd / 2;
    int64_t h = r / hd, rem = r % hd;
    if (it->perm == PERM_TO_HF) return h * hd + 2 * (rem % half) + rem / half;
    return h * hd + (rem % 2) * half + rem / 2;
}

static enum sa_status to_f32(enum sa_dtype t, const void *src, float *dst, int64_t n) {
    if (t == SA_DTYPE_F64) {
        const uint8_t *b = src;
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, b + 8 * i, 8);
            dst[i] = (float)d;
        }
        return SA_STATUS_OK;
    }
    return sa_dequantize(t, src, dst, n);
}

static enum sa_status from_f32(enum sa_dtype t, const float *src, void *dst, int64_t n) {
    if (t == SA_DTYPE_F64) {
        uint8_t *b = dst;
        for (int64_t i = 0; i < n; i++) {
            double d = src[i];
            memcpy(b + 8 * i, &d, 8);
        }
        return SA_STATUS_OK;
    }
    return sa_quantize(t, src, dst, n);
}

/* Output sizes, scratch offsets, and the checks the execution relies on. */
static enum sa_status plan_layout(struct plan *pl, uint64_t *scratch_bytes) {
    uint64_t off = 0;
    for (int64_t i = 0; i < pl->n; i++) {
        struct item *it = &pl->items[i];
        int64_t row_len, n_rows;
        row_geometry(it, &row_len, &n_rows);
        uint64_t rb, total;
        if (!sa_dtype_row_bytes(it->dst_type, (uint64_t)row_len, &rb) || !sa_mul_ok(rb, (uint64_t)n_rows, &total))
            return sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s': %lld values per row cannot be stored as %s", it->src_name,
                            (long long)row_len, sa_dtype_name(it->dst_type));
        uint64_t srb;
        if (!sa_dtype_row_bytes(it->src_type, (uint64_t)row_len, &srb))
            return sa_error(SA_STATUS_BAD_FILE, "tensor '%s': rows do not fit its type", it->src_name);
        if (it->perm != PERM_NONE) {
            int64_t rows = it->shape[0];
            if (it->perm_heads <= 0 || rows % (2 * it->perm_heads))
                return sa_error(SA_STATUS_BAD_FILE, "tensor '%s': %lld rows cannot be split into %d heads of pairs", it->src_name,
                                (long long)rows, it->perm_heads);
            if (sa_dtype_block_size(it->src_type) != 1 && it->n_dims == 1)
                return sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s': cannot permute a quantized bias", it->src_name);
        }
        it->dst_bytes = total;
        it->copy = it->dst_type == it->src_type && it->perm == PERM_NONE && it->add == 0;
        if (!it->copy) {
            it->dst_off = off;
            off += (total + 63) & ~(uint64_t)63;
        }
    }
    *scratch_bytes = off;
    return SA_STATUS_OK;
}

struct scratch {
    uint8_t *base;
    size_t size;
};

static enum sa_status scratch_open(struct scratch *sc, const char *out, uint64_t size) {
    memset(sc, 0, sizeof *sc);
    if (!size) return SA_STATUS_OK;
    size_t n = strlen(out);
    char *path = malloc(n + 16);
    if (!path) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    snprintf(path, n + 16, "%s.scratch", out);
    while (n > 1 && path[n - 1] == '/') { /* "dir/" -> "dir.scratch" */
        memmove(path + n - 1, path + n, strlen(path + n) + 1);
        n--;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    enum sa_status s = SA_STATUS_OK;
    if (fd < 0) s = sa_error(SA_STATUS_IO, "%s: cannot create: %s", path, strerror(errno));
    else {
        unlink(path); /* the file lives as long as the mapping */
        if (ftruncate(fd, (off_t)size) != 0) s = sa_error(SA_STATUS_IO, "%s: cannot size to %llu bytes: %s", path, (unsigned long long)size, strerror(errno));
        else {
            void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) s = sa_error(SA_STATUS_IO, "%s: mmap failed: %s", path, strerror(errno));
            else {
                sc->base = p;
                sc->size = size;
            }
        }
        close(fd);
    }
    free(path);
    return s;
}

static void scratch_close(struct scratch *sc) {
    if (sc->base) munmap(sc->base, sc->size);
    memset(sc, 0, sizeof *sc);
}

static enum sa_status plan_execute(struct plan *pl, struct scratch *sc, const struct sa_convert_params *p) {
    float *row = NULL;
    size_t row_cap = 0;
    enum sa_status s = SA_STATUS_OK;
    for (int64_t i = 0; i < pl->n && !s; i++) {
        struct item *it = &pl->items[i];
        if (it->copy) {
            it->dst = it->src;
            continue;
        }
        int64_t row_len, n_rows;
        row_geometry(it, &row_len, &n_rows);
        if ((size_t)row_len > row_cap) {
            free(row);
            row_cap = (size_t)row_len;
            if (!(row = malloc(row_cap * sizeof *row))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        }
        uint64_t srb, drb;
        sa_dtype_row_bytes(it->src_type, (uint64_t)row_len, &srb);
        sa_dtype_row_bytes(it->dst_type, (uint64_t)row_len, &drb);
        uint8_t *dst = sc->base + it->dst_off;
        for (int64_t r = 0; r < n_rows && !s; r++) {
            const uint8_t *srow = (const uint8_t *)it->src + (uint64_t)src_row(it, r) * srb;
            if ((s = to_f32(it->src_type, srow, row, row_len))) break;
            if (it->add != 0)
                for (int64_t k = 0; k < row_len; k++) row[k] += it->add;
            s = from_f32(it->dst_type, row, dst + (uint64_t)r * drb, row_len);
        }
        if (s) s = sa_error_wrap(s, "tensor '%s'", it->src_name);
        it->dst = dst;
    }
    free(row);
    if (!s) note(p, "converted %lld tensors", (long long)pl->n);
    return s;
}

/* ---- GGUF metadata ---- */

static uint32_t ftype_of(enum sa_dtype t) {
    switch (t) {
    case SA_DTYPE_F32: return FTYPE_ALL_F32;
    case SA_DTYPE_Q8_0: return FTYPE_MOSTLY_Q8_0;
    case SA_DTYPE_BF16: return FTYPE_MOSTLY_BF16;
    default: return FTYPE_MOSTLY_F16;
    }
}

/* Copies key/value i of `src` into the writer. */
static enum sa_status copy_one_kv(struct sa_gguf_writer *w, const struct sa_gguf *src, int64_t i) {
    const char *key = sa_gguf_key(src, i);
    enum sa_gguf_type t = sa_gguf_kv_type(src, i);
    if (t == SA_GGUF_TYPE_STRING) {
        char *v = sa_gguf_get_string(src, key);
        if (!v) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        enum sa_status s = sa_gguf_writer_set_str(w, key, v);
        free(v);
        return s;
    }
    if (t == SA_GGUF_TYPE_ARRAY) {
        enum sa_gguf_type at = sa_gguf_arr_type(src, i);
        uint64_t n = sa_gguf_arr_n(src, i);
        if (at == SA_GGUF_TYPE_STRING) {
            struct sa_gguf_str *v = malloc((size_t)(n + 1) * sizeof *v);
            if (!v) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            for (uint64_t j = 0; j < n; j++) v[j] = sa_gguf_arr_str(src, i, j);
            enum sa_status s = sa_gguf_writer_set_arr_str(w, key, v, n);
            free(v);
            return s;
        }
        if (at == SA_GGUF_TYPE_ARRAY) return SA_STATUS_OK; /* nested arrays: not used by tokenizers */
        return sa_gguf_writer_set_arr(w, key, at, sa_gguf_arr_data(src, i), n);
    }
    const uint8_t *raw;
    uint64_t size;
    if (!sa_gguf_kv_raw(src, i, &raw, &size)) return sa_error(SA_STATUS_BAD_FILE, "GGUF: key '%s' unreadable", key);
    if (t == SA_GGUF_TYPE_BOOL) {
        bool b = raw[0] != 0;
        return sa_gguf_writer_set_scalar(w, key, t, &b);
    }
    return sa_gguf_writer_set_scalar(w, key, t, raw);
}

static enum sa_status set_arch_kv(struct sa_gguf_writer *w, const struct sa_model_config *c, enum sa_dtype type) {
    const char *a = c->arch_name;
    char k[160];
    enum sa_status s = SA_STATUS_OK;
#define KU32(suffix, v) (snprintf(k, sizeof k, "%s.%s", a, suffix), sa_gguf_writer_set_u32(w, k, (uint32_t)(v)))
#define KF32(suffix, v) (snprintf(k, sizeof k, "%s.%s", a, suffix), sa_gguf_writer_set_f32(w, k, (float)(v)))
    if ((s = sa_gguf_writer_set_str(w, "general.architecture", a)) || (s = sa_gguf_writer_set_str(w, "general.type", "model")) ||
        (s = sa_gguf_writer_set_str(w, "general.name", c->name[0] ? c->name : a)) ||
        (s = sa_gguf_writer_set_u32(w, "general.file_type", ftype_of(type))) ||
        (s = sa_gguf_writer_set_u32(w, "general.quantization_version", 2)) || (s = KU32("vocab_size", c->n_vocab)) ||
        (s = KU32("context_length", c->n_ctx_train)) || (s = KU32("embedding_length", c->n_embd)) ||
        (s = KU32("block_count", c->n_layer)) || (s = KU32("feed_forward_length", c->n_ff)) ||
        (s = KU32("attention.head_count", c->n_head)) || (s = KU32("attention.head_count_kv", c->n_head_kv)) ||
        (s = KU32("attention.key_length", c->head_dim)) || (s = KU32("attention.value_length", c->head_dim)) ||
        (s = KU32("rope.dimension_count", c->head_dim)) || (s = KF32("rope.freq_base", c->rope_theta)) ||
        (s = KF32("attention.layer_norm_rms_epsilon", c->rms_eps)))
        return s;
    if (c->rope_scaling == SA_ROPE_SCALING_LINEAR) {
        snprintf(k, sizeof k, "%s.rope.scaling.type", a);
        if ((s = sa_gguf_writer_set_str(w, k, "linear")) || (s = KF32("rope.scaling.factor", c->rope_scale_factor))) return s;
    }
    if (sa_arch_has(c->arch, SA_ARCH_F_SLIDING) && c->sliding_window &&
        (s = KU32("attention.sliding_window", c->sliding_window)))
        return s;
    if (c->final_logit_softcap > 0 && (s = KF32("final_logit_softcapping", c->final_logit_softcap))) return s;
    if (c->attn_logit_softcap > 0 && (s = KF32("attn_logit_softcapping", c->attn_logit_softcap))) return s;
#undef KU32
#undef KF32
    return SA_STATUS_OK;
}

/* ---- JSON side files of a Hugging Face directory ---- */

static cJSON *num(double v) { return cJSON_CreateNumber(v); }
/* A float as the short decimal that reads back to it (1e-05, not 9.9999997e-06). */
static cJSON *fnum(float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)v);
    return cJSON_CreateNumber(strtod(buf, NULL));
}

static enum sa_status write_json(const char *dir, const char *name, cJSON *j) {
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    enum sa_status s;
    if (!path) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    else {
        snprintf(path, n, "%s/%s", dir, name);
        size_t tl = strlen(text);
        char *t2 = realloc(text, tl + 2);
        if (t2) {
            text = t2;
            text[tl++] = '\n';
            text[tl] = 0;
        }
        s = sa_write_file_atomic(path, text, tl);
    }
    free(path);
    free(text);
    return s;
}

static const char *torch_dtype(enum sa_dtype t) {
    return t == SA_DTYPE_BF16 ? "bfloat16" : t == SA_DTYPE_F16 ? "float16" : "float32";
}

static int64_t gguf_id(const struct sa_gguf *g, const char *key) {
    int64_t v;
    return sa_gguf_get_i64(g, key, &v) ? v : -1;
}

static cJSON *hf_config_json(const struct sa_model_config *c, const struct sa_gguf *g, enum sa_dtype type) {
    cJSON *j = cJSON_CreateObject(), *archs = cJSON_CreateArray();
    const struct sa_arch_info *ai = sa_arch_info(c->arch); /* validated config: never NULL */
    cJSON_AddItemToArray(archs, cJSON_CreateString(ai->hf_class));
    cJSON_AddItemToObject(j, "architectures", archs);
    cJSON_AddStringToObject(j, "model_type", ai->hf_model_type);
    cJSON_AddItemToObject(j, "vocab_size", num(c->n_vocab));
    cJSON_AddItemToObject(j, "hidden_size", num(c->n_embd));
    cJSON_AddItemToObject(j, "intermediate_size", num(c->n_ff));
    cJSON_AddItemToObject(j, "num_hidden_layers", num(c->n_layer));
    cJSON_AddItemToObject(j, "num_attention_heads", num(c->n_head));
    cJSON_AddItemToObject(j, "num_key_value_heads", num(c->n_head_kv));
    cJSON_AddItemToObject(j, "head_dim", num(c->head_dim));
    cJSON_AddItemToObject(j, "max_position_embeddings", num(c->n_ctx_train));
    cJSON_AddItemToObject(j, "rms_norm_eps", fnum(c->rms_eps));
    cJSON_AddItemToObject(j, "rope_theta", fnum(c->rope_theta));
    if (c->rope_scaling == SA_ROPE_SCALING_NONE) cJSON_AddNullToObject(j, "rope_scaling");
    else {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "rope_type", c->rope_scaling == SA_ROPE_SCALING_LINEAR ? "linear" : "llama3");
        cJSON_AddItemToObject(r, "factor", fnum(c->rope_scale_factor));
        if (c->rope_scaling == SA_ROPE_SCALING_LLAMA3) {
            cJSON_AddItemToObject(r, "low_freq_factor", fnum(c->rope_low_freq_factor));
            cJSON_AddItemToObject(r, "high_freq_factor", fnum(c->rope_high_freq_factor));
            cJSON_AddItemToObject(r, "original_max_position_embeddings", num(c->rope_orig_ctx));
        }
        cJSON_AddItemToObject(j, "rope_scaling", r);
    }
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddBoolToObject(j, "attention_bias", (ai->flags & SA_ARCH_F_QKV_BIAS) ? true : c->qkv_bias);
    cJSON_AddItemToObject(j, "attention_dropout", num(0));
    cJSON_AddItemToObject(j, "initializer_range", num(0.02));
    cJSON_AddBoolToObject(j, "use_cache", true);
    cJSON_AddStringToObject(j, "torch_dtype", torch_dtype(type));
    if (c->arch == SA_ARCH_GEMMA3) {
        cJSON_AddStringToObject(j, "hidden_activation", "gelu_pytorch_tanh");
        cJSON_AddItemToObject(j, "query_pre_attn_scalar", fnum(c->query_pre_attn_scalar ? c->query_pre_attn_scalar : (float)c->head_dim));
        cJSON_AddItemToObject(j, "sliding_window", num(c->sliding_window));
        cJSON_AddItemToObject(j, "rope_local_base_freq", fnum(c->rope_theta_local ? c->rope_theta_local : c->rope_theta));
        cJSON_AddItemToObject(j, "sliding_window_pattern", num(c->sliding_window_pattern));
        /* the pattern as sa_layer_is_local reads it (0: no local layer), whatever the window */
        cJSON *lt = cJSON_CreateArray();
        for (int i = 0; i < c->n_layer; i++)
            cJSON_AddItemToArray(lt, cJSON_CreateString(c->sliding_window_pattern && (i + 1) % c->sliding_window_pattern
                                                             ? "sliding_attention" : "full_attention"));
        cJSON_AddItemToObject(j, "layer_types", lt);
        if (c->final_logit_softcap > 0) cJSON_AddItemToObject(j, "final_logit_softcapping", fnum(c->final_logit_softcap));
        else cJSON_AddNullToObject(j, "final_logit_softcapping");
        if (c->attn_logit_softcap > 0) cJSON_AddItemToObject(j, "attn_logit_softcapping", fnum(c->attn_logit_softcap));
        else cJSON_AddNullToObject(j, "attn_logit_softcapping");
    } else {
        cJSON_AddStringToObject(j, "hidden_act", "silu");
        cJSON_AddBoolToObject(j, "mlp_bias", false);
        if (c->arch == SA_ARCH_QWEN2) {
            cJSON_AddBoolToObject(j, "use_sliding_window", false);
            cJSON_AddItemToObject(j, "sliding_window", num(c->n_ctx_train));
            cJSON_AddItemToObject(j, "max_window_layers", num(c->n_layer));
        }
    }
    static const char *ids[][2] = {{"bos_token_id", "tokenizer.ggml.bos_token_id"},
                                   {"eos_token_id", "tokenizer.ggml.eos_token_id"},
                                   {"pad_token_id", "tokenizer.ggml.padding_token_id"}};
    for (size_t i = 0; i < SA_ARRAY_LEN(ids); i++) {
        int64_t v = g ? gguf_id(g, ids[i][1]) : -1;
        if (v >= 0) cJSON_AddItemToObject(j, ids[i][0], num((double)v));
    }
    return j;
}

/* tokenizer.json and tokenizer_config.json (chat template, special tokens) from the GGUF's
 * tokenizer. One it cannot read or write is reported and left out: the weights are valid. */
static enum sa_status write_hf_tokenizer(const char *dir, const struct sa_gguf *g, const struct sa_convert_params *p) {
    if (sa_gguf_find_key(g, "tokenizer.ggml.model") < 0) {
        note(p, "warning: the GGUF has no tokenizer: no tokenizer.json written");
        return SA_STATUS_OK;
    }
    struct sa_tokenizer *t;
    enum sa_status s = sa_tokenizer_load_gguf(g, &t);
    if (!s) {
        char *tmpl = sa_gguf_get_string(g, "tokenizer.chat_template");
        s = sa_tokenizer_save_hf(t, dir, tmpl);
        free(tmpl);
        sa_tokenizer_free(t);
    }
    if (s == SA_STATUS_UNSUPPORTED || s == SA_STATUS_BAD_FILE) {
        note(p, "warning: no tokenizer.json written: %s", sa_last_error());
        return SA_STATUS_OK;
    }
    return s;
}

static enum sa_status write_hf_side_files(const char *dir, const struct sa_model_config *c, const struct sa_gguf *g,
                                          enum sa_dtype type, const struct sa_convert_params *p) {
    enum sa_status s = write_json(dir, "config.json", hf_config_json(c, g, type));
    if (s) return s;
    cJSON *gen = cJSON_CreateObject();
    static const char *ids[][2] = {{"bos_token_id", "tokenizer.ggml.bos_token_id"},
                                   {"eos_token_id", "tokenizer.ggml.eos_token_id"},
                                   {"pad_token_id", "tokenizer.ggml.padding_token_id"}};
    for (size_t i = 0; i < SA_ARRAY_LEN(ids); i++) {
        int64_t v = gguf_id(g, ids[i][1]);
        if (v >= 0) cJSON_AddItemToObject(gen, ids[i][0], num((double)v));
    }
    cJSON_AddBoolToObject(gen, "_from_model_config", true);
    if ((s = write_json(dir, "generation_config.json", gen))) return s;
    return write_hf_tokenizer(dir, g, p);
}

/* ---- the conversions ---- */

static void reverse_dims(int64_t *shape, uint32_t n_dims, const int64_t *from) {
    for (uint32_t d = 0; d < n_dims; d++) shape[d] = from[n_dims - 1 - d];
}

/* Gemma: llama.cpp stores the norm weights as 1 + w (HF computes x * (1 + w)). */
static bool norm_plus_one(enum sa_arch a, const char *gguf_name) {
    enum sa_tensor t;
    int il;
    const char *suffix;
    return sa_arch_has(a, SA_ARCH_F_NORM_PLUS_ONE) && sa_arch_tensor_parse(a, SA_NAMES_GGUF, gguf_name, &t, &il, &suffix) &&
           !strcmp(suffix, ".weight") && sa_tensor_is_norm(t);
}

/* llama.cpp's Q/K row permutation (q: n_head, k: n_head_kv heads) of architectures that
 * run NORMAL RoPE on GGUF weights (sa_arch_permute_qk). */
static void set_perm(struct item *it, const struct sa_model_config *c, const char *gguf_name, enum perm dir) {
    enum sa_tensor t;
    int il;
    const char *suffix;
    if (!sa_arch_permute_qk(c->arch) || !sa_arch_tensor_parse(c->arch, SA_NAMES_GGUF, gguf_name, &t, &il, &suffix)) return;
    if (t == SA_TENSOR_ATTN_Q) it->perm_heads = c->n_head;
    else if (t == SA_TENSOR_ATTN_K) it->perm_heads = c->n_head_kv;
    else return;
    it->perm = dir;
}

static enum sa_status write_gguf(struct plan *pl, const char *out, struct sa_gguf_writer *w) {
    enum sa_status s = SA_STATUS_OK;
    for (int64_t i = 0; i < pl->n && !s; i++) {
        struct item *it = &pl->items[i];
        int64_t ne[4] = {1, 1, 1, 1};
        if (it->n_dims > 4) return sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s': GGUF holds at most 4 dimensions", it->src_name);
        reverse_dims(ne, it->n_dims, it->shape);
        s = sa_gguf_writer_add_tensor(w, it->name, it->dst_type, it->n_dims ? it->n_dims : 1, ne, it->dst);
    }
    return s ? s : sa_gguf_writer_write(w, out);
}

static enum sa_status write_st(struct plan *pl, const char *out, const struct sa_convert_params *p) {
    struct sa_st_writer *w;
    enum sa_status s = sa_st_writer_init(&w);
    if (s) return s;
    s = sa_st_writer_set_metadata(w, "format", "pt");
    for (int64_t i = 0; i < pl->n && !s; i++) {
        struct item *it = &pl->items[i];
        s = sa_st_writer_add(w, it->name, it->dst_type, it->n_dims, it->shape, it->dst);
    }
    if (!s) s = sa_st_writer_write_dir(w, out, p->max_shard_bytes);
    sa_st_writer_free(w);
    return s;
}

static enum sa_status run_plan(struct plan *pl, const char *out, const struct sa_convert_params *p,
                               struct sa_gguf_writer *gw) {
    uint64_t bytes = 0;
    struct scratch sc;
    enum sa_status s = plan_layout(pl, &bytes);
    if (!s) s = scratch_open(&sc, out, bytes);
    if (s) return s;
    s = plan_execute(pl, &sc, p);
    if (!s) s = gw ? write_gguf(pl, out, gw) : write_st(pl, out, p);
    scratch_close(&sc);
    return s;
}

static enum sa_status gguf_item(struct plan *pl, const struct sa_gguf_tensor *t, struct item **out) {
    enum sa_status s = plan_push(pl, out);
    if (s) return s;
    struct item *it = *out;
    it->src_name = t->name;
    it->src_type = t->type;
    it->src = t->data;
    it->n_dims = t->n_dims;
    reverse_dims(it->shape, t->n_dims, t->ne);
    return SA_STATUS_OK;
}

static enum sa_status gguf_to_gguf(const struct sa_gguf *g, const char *out, const struct sa_convert_params *p) {
    struct plan pl = {0};
    struct sa_gguf_writer *w = NULL;
    enum sa_status s = sa_gguf_writer_init(&w);
    if (!s) s = sa_gguf_writer_copy_kv(w, g);
    if (!s) s = sa_gguf_writer_set_u32(w, "general.file_type", ftype_of(p->type));
    for (int64_t i = 0; i < sa_gguf_n_tensors(g) && !s; i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        struct item *it;
        if ((s = gguf_item(&pl, t, &it))) break;
        snprintf(it->name, sizeof it->name, "%s", t->name);
        s = choose_type(p, it, true);
    }
    if (!s) s = run_plan(&pl, out, p, w);
    sa_gguf_writer_free(w);
    plan_free(&pl);
    return s;
}

static enum sa_status gguf_to_st(const struct sa_gguf *g, const char *out, const struct sa_convert_params *p) {
    struct sa_model_config c;
    enum sa_status s = sa_model_config_from_gguf(g, &c);
    if (s) return s;
    struct plan pl = {0};
    for (int64_t i = 0; i < sa_gguf_n_tensors(g) && !s; i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        if (!strcmp(t->name, SA_GGUF_ROPE_FREQS)) {
            note(p, "%s: skipped (transformers computes RoPE factors from config.json)", t->name);
            continue;
        }
        struct item *it;
        if ((s = gguf_item(&pl, t, &it))) break;
        if (!map_name(c.arch, t->name, true, it->name, sizeof it->name)) {
            s = sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s' has no Hugging Face name for %s", t->name, c.arch_name);
            break;
        }
        set_perm(it, &c, t->name, PERM_TO_HF);
        if (norm_plus_one(c.arch, t->name)) it->add = -1.0f; /* llama.cpp stored 1 + w */
        s = choose_type(p, it, false);
    }
    if (!s) s = sa_mkdir_p(out, 0755);
    if (!s) s = run_plan(&pl, out, p, NULL);
    if (!s) s = write_hf_side_files(out, &c, g, p->type, p);
    plan_free(&pl);
    return s;
}

/* Directory of a safetensors input (itself, or the directory of a file in it). */
static char *input_dir(const char *in) {
    struct stat sb;
    size_t n = strlen(in);
    char *d = malloc(n + 2);
    if (!d) return NULL;
    memcpy(d, in, n + 1);
    if (stat(in, &sb) == 0 && S_ISDIR(sb.st_mode)) return d;
    char *slash = strrchr(d, '/');
    if (slash) *slash = 0;
    else strcpy(d, ".");
    return d;
}

static enum sa_status read_hf_config(const char *dir, struct sa_model_config *c) {
    size_t n = strlen(dir) + 16;
    char *path = malloc(n), *text = NULL;
    size_t len;
    if (!path) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    snprintf(path, n, "%s/config.json", dir);
    enum sa_status s = sa_read_file(path, 16u << 20, &text, &len); /* names the path */
    if (!s && (s = sa_model_config_from_hf_json(text, len, c))) s = sa_error_wrap(s, "%s", path);
    free(text);
    free(path);
    return s;
}

/* Copies a tokenizer GGUF's tokenizer.* keys into the writer. */
static enum sa_status copy_tokenizer(struct sa_gguf_writer *w, const struct sa_convert_params *p) {
    if (!p->tokenizer_gguf) {
        note(p, "warning: no tokenizer GGUF given: the output has no vocabulary, which llama.cpp needs");
        return SA_STATUS_OK;
    }
    struct sa_gguf *tg;
    enum sa_status s = sa_gguf_open(p->tokenizer_gguf, &tg);
    if (s) return s;
    int n = 0;
    for (int64_t i = 0; i < sa_gguf_n_kv(tg) && !s; i++)
        if (!strncmp(sa_gguf_key(tg, i), "tokenizer.", 10)) {
            s = copy_one_kv(w, tg, i);
            n++;
        }
    sa_gguf_free(tg);
    if (!s && !n) note(p, "warning: %s has no tokenizer.* metadata", p->tokenizer_gguf);
    return s;
}

static enum sa_status st_to_gguf(const struct sa_safetensors *st, const struct sa_model_config *c, const char *out,
                                 const struct sa_convert_params *p) {
    struct plan pl = {0};
    struct sa_gguf_writer *w = NULL;
    enum sa_status s = sa_gguf_writer_init(&w);
    if (!s) s = set_arch_kv(w, c, p->type);
    if (!s) s = copy_tokenizer(w, p);
    float *rope = NULL;
    for (int64_t i = 0; i < sa_safetensors_n_tensors(st) && !s; i++) {
        const struct sa_st_tensor *t = sa_safetensors_tensor(st, i);
        const char *name = t->name;
        if (!strncmp(name, "language_model.", 15)) name += 15; /* Gemma 3 multimodal checkpoints */
        if (ends_with(name, "rotary_emb.inv_freq") || !strncmp(t->name, "vision_tower.", 13) ||
            !strncmp(t->name, "multi_modal_projector.", 22)) {
            note(p, "%s: skipped", t->name);
            continue;
        }
        if (c->tie_embeddings && !strcmp(name, "lm_head.weight")) {
            note(p, "%s: skipped (tied to the token embedding)", t->name);
            continue;
        }
        struct item *it;
        if ((s = plan_push(&pl, &it))) break;
        if (!map_name(c->arch, name, false, it->name, sizeof it->name)) {
            s = sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s' has no GGUF name for %s", t->name, c->arch_name);
            break;
        }
        it->src_name = t->name;
        it->src_type = t->type;
        it->src = t->data;
        it->n_dims = t->n_dims;
        memcpy(it->shape, t->shape, sizeof it->shape);
        set_perm(it, c, it->name, PERM_TO_GGUF);
        if (norm_plus_one(c->arch, it->name)) it->add = 1.0f; /* llama.cpp's Gemma stores 1 + w */
        s = choose_type(p, it, true);
    }
    if (!s && c->rope_scaling == SA_ROPE_SCALING_LLAMA3) {
        /* llama.cpp applies Llama 3 scaling through a tensor of per-frequency factors */
        struct item *it;
        if (!(rope = malloc((size_t)c->head_dim / 2 * sizeof *rope))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        else if (!(s = plan_push(&pl, &it))) {
            sa_llama3_rope_factors(c, rope);
            snprintf(it->name, sizeof it->name, SA_GGUF_ROPE_FREQS);
            it->src_name = SA_GGUF_ROPE_FREQS;
            it->src_type = it->dst_type = SA_DTYPE_F32;
            it->src = rope;
            it->n_dims = 1;
            it->shape[0] = c->head_dim / 2;
        }
    }
    if (!s) s = run_plan(&pl, out, p, w);
    free(rope);
    sa_gguf_writer_free(w);
    plan_free(&pl);
    return s;
}

static enum sa_status copy_side_file(const char *from_dir, const char *to_dir, const char *name) {
    size_t n = strlen(from_dir) + strlen(to_dir) + strlen(name) + 2;
    char *a = malloc(n), *b = malloc(n), *text = NULL;
    size_t len;
    enum sa_status s = SA_STATUS_OK;
    if (!a || !b) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    else {
        snprintf(a, n, "%s/%s", from_dir, name);
        snprintf(b, n, "%s/%s", to_dir, name);
        if (sa_file_exists(a)) {
            s = sa_read_file(a, 0, &text, &len);
            if (!s) s = sa_write_file_atomic(b, text, len);
        }
    }
    free(text);
    free(a);
    free(b);
    return s;
}

static enum sa_status st_to_st(const struct sa_safetensors *st, const char *dir, const char *out,
                               const struct sa_convert_params *p) {
    struct plan pl = {0};
    enum sa_status s = SA_STATUS_OK;
    for (int64_t i = 0; i < sa_safetensors_n_tensors(st) && !s; i++) {
        const struct sa_st_tensor *t = sa_safetensors_tensor(st, i);
        struct item *it;
        if ((s = plan_push(&pl, &it))) break;
        snprintf(it->name, sizeof it->name, "%s", t->name);
        it->src_name = t->name;
        it->src_type = t->type;
        it->src = t->data;
        it->n_dims = t->n_dims;
        memcpy(it->shape, t->shape, sizeof it->shape);
        s = choose_type(p, it, false);
    }
    if (!s) s = sa_mkdir_p(out, 0755);
    if (!s) s = run_plan(&pl, out, p, NULL);
    static const char *side[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                 "special_tokens_map.json", "tokenizer.model"};
    for (size_t i = 0; i < SA_ARRAY_LEN(side) && !s; i++) s = copy_side_file(dir, out, side[i]);
    plan_free(&pl);
    return s;
}

static bool is_gguf_file(const char *path) {
    struct stat sb; /* not a regular file (a FIFO would block fopen): not GGUF; opening it says why */
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return false;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "GGUF", 4);
}

enum sa_status sa_convert(const char *in, const char *out, const struct sa_convert_params *params) {
    struct sa_convert_params p = params ? *params : sa_convert_default_params();
    if (!in || !out) return sa_error(SA_STATUS_BAD_ARGUMENT, "convert: NULL input or output path");
    if (p.type != SA_DTYPE_F32 && p.type != SA_DTYPE_F16 && p.type != SA_DTYPE_BF16 && p.type != SA_DTYPE_Q8_0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "convert: type %s is not an output type (f32, f16, bf16, q8_0)",
                        sa_dtype_name(p.type) ? sa_dtype_name(p.type) : "?");
    if (p.to == SA_CONVERT_SAFETENSORS && p.type == SA_DTYPE_Q8_0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "convert: safetensors output holds f32, f16 or bf16, not q8_0");
    if (p.to != SA_CONVERT_GGUF && p.to != SA_CONVERT_SAFETENSORS)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "convert: unknown output format %d", (int)p.to);
    if (!sa_file_exists(in)) return sa_error(SA_STATUS_NOT_FOUND, "%s: no such file or directory", in);
    enum sa_status s;
    if (is_gguf_file(in)) {
        struct sa_gguf *g;
        if ((s = sa_gguf_open(in, &g))) return s;
        s = p.to == SA_CONVERT_GGUF ? gguf_to_gguf(g, out, &p) : gguf_to_st(g, out, &p);
        sa_gguf_free(g);
        return s;
    }
    char *dir = input_dir(in);
    if (!dir) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct sa_model_config c;
    struct sa_safetensors *st = NULL;
    s = read_hf_config(dir, &c);
    if (!s) s = sa_safetensors_open(in, &st);
    if (!s) s = p.to == SA_CONVERT_GGUF ? st_to_gguf(st, &c, out, &p) : st_to_st(st, dir, out, &p);
    sa_safetensors_free(st);
    free(dir);
    return s;
}
