/* model_load.c: sa_model_load: opens a GGUF file or a Hugging Face safetensors directory,
 * reads the hyper-parameters, binds every weight by name (GGUF "blk.N.attn_q.weight" or
 * HF "model.layers.N.self_attn.q_proj.weight") with shape checks, and prepares what the
 * forward pass needs: f32 norm vectors and biases, RoPE frequency tables, and the RoPE
 * layout. HF llama Q/K rows are permuted as llama.cpp's convert_hf_to_gguf.py does, so that
 * both sources run the same "normal" (adjacent pairs) RoPE. */
#define _GNU_SOURCE
#include "model/model_impl.h"

#include "core/core_impl.h"
#include "formats/arch_impl.h"
#include "sa/gguf.h"
#include "sa/safetensors.h"
#include "sa/tokenizer.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct sa_model_params sa_model_default_params(void) {
    struct sa_model_params p = {.use_mmap = true, .n_threads = 0, .load_tokenizer = true};
    return p;
}

/* A tensor of either source, dims in GGML order (ne[0] fastest). */
struct tinfo {
    enum sa_dtype type;
    uint32_t n_dims;
    int64_t ne[4];
    const void *data;
    uint64_t n_bytes;
};

struct loader {
    struct sa_model *m;
    const char *hf_prefix; /* "" or "language_model." (multimodal Gemma 3 checkpoints) */
    bool hf;
    bool permute_qk;       /* HF llama: rows of Q and K reordered for normal RoPE */
    struct sa_threadpool *tp;
};

static void *owned_alloc(struct sa_model *m, size_t n) {
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? m->cap_owned * 2 : 64;
        void **p = realloc(m->owned, cap * sizeof *p);
        if (!p) return NULL;
        m->owned = p;
        m->cap_owned = cap;
    }
    void *b = sa_alloc_weights(n);
    if (b) m->owned[m->n_owned++] = b;
    return b;
}

static bool find_tensor(const struct loader *L, const char *name, struct tinfo *ti) {
    memset(ti, 0, sizeof *ti);
    if (L->m->gguf) {
        const struct sa_gguf_tensor *t = sa_gguf_find_tensor(L->m->gguf, name);
        if (!t) return false;
        ti->type = t->type;
        ti->n_dims = t->n_dims;
        for (int i = 0; i < 4; i++) ti->ne[i] = t->ne[i];
        ti->data = t->data;
        ti->n_bytes = t->n_bytes;
        return true;
    }
    const struct sa_st_tensor *t = sa_safetensors_find(L->m->st, name);
    if (!t || t->n_dims > 4) return false;
    ti->type = t->type;
    ti->n_dims = t->n_dims;
    for (int i = 0; i < 4; i++) ti->ne[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) ti->ne[i] = t->shape[t->n_dims - 1 - i];
    ti->data = t->data;
    ti->n_bytes = t->n_bytes;
    return true;
}

/* ---- threaded row conversion: dequantize (and permute) a matrix into f32 or copy rows ---- */
struct convert_task {
    enum sa_dtype type;
    const uint8_t *src;
    uint8_t *dst;
    int64_t n_rows, n_in;
    uint64_t src_row_bytes, dst_row_bytes;
    bool to_f32;
    int64_t perm_head_dim; /* > 0: dst row r takes src row perm(r) */
    enum sa_status status;
};

/* llama.cpp convert_hf_to_gguf.py LlamaModel.permute: per head of D rows, viewed as
 * (2, D/2) -> (D/2, 2): new row 2i + j is old row j * D/2 + i. */
static int64_t perm_row(int64_t r, int64_t D) {
    if (D <= 0) return r;
    const int64_t h = r / D, k = r % D, i = k / 2, j = k % 2;
    return h * D + j * (D / 2) + i;
}

static void convert_run(void *vctx, int ith, int nth) {
    struct convert_task *c = vctx;
    for (int64_t r = ith; r < c->n_rows; r += nth) {
        const uint8_t *s = c->src + (uint64_t)perm_row(r, c->perm_head_dim) * c->src_row_bytes;
        uint8_t *d = c->dst + (uint64_t)r * c->dst_row_bytes;
        if (c->to_f32) {
            if (sa_dequantize(c->type, s, (float *)d, c->n_in) != SA_STATUS_OK) c->status = SA_STATUS_UNSUPPORTED;
        } else {
            memcpy(d, s, c->src_row_bytes);
        }
    }
}

static uint64_t n_elems(const struct tinfo *ti) {
    return (uint64_t)ti->ne[0] * (uint64_t)ti->ne[1] * (uint64_t)ti->ne[2] * (uint64_t)ti->ne[3];
}

/* Binds matrix `name` of shape (n_out, n_in). perm_head_dim > 0 permutes its rows
 * (HF llama Q/K). Weights of a type sa_matmul lacks become f32 copies. */
static enum sa_status bind_matrix(struct loader *L, const char *name, int64_t n_in, int64_t n_out,
                                  int64_t perm_head_dim, struct sa_weight *w) {
    struct tinfo ti;
    if (!find_tensor(L, name, &ti)) return sa_error(SA_STATUS_NOT_FOUND, "tensor '%s' is missing", name);
    if (ti.ne[0] != n_in || ti.ne[1] != n_out || ti.ne[2] != 1 || ti.ne[3] != 1)
        return sa_error(SA_STATUS_BAD_FILE, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld] (GGML order)",
                        name, (long long)ti.ne[0], (long long)ti.ne[1], (long long)ti.ne[2], (long long)ti.ne[3],
                        (long long)n_in, (long long)n_out);
    uint64_t rb = 0, total = 0;
    if (!sa_dtype_row_bytes(ti.type, (uint64_t)n_in, &rb) || !sa_mul_ok(rb, (uint64_t)n_out, &total) || total > ti.n_bytes)
        return sa_error(SA_STATUS_BAD_FILE, "tensor '%s': type %s does not fit its shape", name,
                        sa_dtype_name(ti.type) ? sa_dtype_name(ti.type) : "?");
    L->m->n_params += (uint64_t)n_in * (uint64_t)n_out;
    const bool supported = sa_matmul_supported(ti.type);
    if (supported && perm_head_dim <= 0) {
        *w = (struct sa_weight){.type = ti.type, .data = ti.data, .n_in = n_in, .n_out = n_out};
        L->m->n_bytes += total;
        return SA_STATUS_OK;
    }
    if (perm_head_dim > 0 && n_out % perm_head_dim)
        return sa_error(SA_STATUS_BAD_FILE, "tensor '%s': %lld rows are not whole heads of %lld", name,
                        (long long)n_out, (long long)perm_head_dim);
    struct convert_task c = {.type = ti.type, .src = ti.data, .n_rows = n_out, .n_in = n_in, .src_row_bytes = rb,
                             .to_f32 = !supported, .perm_head_dim = perm_head_dim, .status = SA_STATUS_OK};
    c.dst_row_bytes = c.to_f32 ? (uint64_t)n_in * sizeof(float) : rb;
    uint64_t bytes;
    if (!sa_mul_ok(c.dst_row_bytes, (uint64_t)n_out, &bytes) || bytes > SIZE_MAX)
        return sa_error(SA_STATUS_NO_MEMORY, "tensor '%s' is too large", name);
    c.dst = owned_alloc(L->m, (size_t)bytes);
    if (!c.dst) return sa_error(SA_STATUS_NO_MEMORY, "out of memory converting tensor '%s'", name);
    sa_threadpool_run(L->tp, convert_run, &c);
    if (c.status != SA_STATUS_OK)
        return sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s': type %s cannot be converted to f32", name,
                        sa_dtype_name(ti.type) ? sa_dtype_name(ti.type) : "?");
    *w = (struct sa_weight){.type = c.to_f32 ? SA_DTYPE_F32 : ti.type, .data = c.dst, .n_in = n_in, .n_out = n_out};
    L->m->n_bytes += bytes;
    return SA_STATUS_OK;
}

/* Binds a vector (norm weight or bias) of n elements as an owned f32 copy; plus_one adds
 * 1 to every element (HF Gemma norms compute x * (1 + w); GGUF stores w + 1 already).
 * A missing optional vector leaves *out NULL. */
static enum sa_status bind_vector(struct loader *L, const char *name, int64_t n, bool required, bool plus_one,
                                  int64_t perm_head_dim, const float **out) {
    *out = NULL;
    struct tinfo ti;
    if (!find_tensor(L, name, &ti)) {
        if (required) return sa_error(SA_STATUS_NOT_FOUND, "tensor '%s' is missing", name);
        return SA_STATUS_OK;
    }
    if (n_elems(&ti) != (uint64_t)n || ti.ne[0] != n)
        return sa_error(SA_STATUS_BAD_FILE, "tensor '%s' has %llu elements, expected %lld", name,
                        (unsigned long long)n_elems(&ti), (long long)n);
    uint64_t rb = 0;
    if (!sa_dtype_row_bytes(ti.type, (uint64_t)n, &rb) || rb > ti.n_bytes)
        return sa_error(SA_STATUS_BAD_FILE, "tensor '%s': type does not fit its shape", name);
    float *tmp = owned_alloc(L->m, (size_t)n * sizeof(float) * 2);
    if (!tmp) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    float *v = tmp + n;
    if (sa_dequantize(ti.type, ti.data, tmp, n) != SA_STATUS_OK)
        return sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s': type %s cannot be read as f32", name,
                        sa_dtype_name(ti.type) ? sa_dtype_name(ti.type) : "?");
    for (int64_t i = 0; i < n; i++) v[i] = tmp[perm_row(i, perm_head_dim)] + (plus_one ? 1.0f : 0.0f);
    L->m->n_params += (uint64_t)n;
    L->m->n_bytes += rb;
    *out = v;
    return SA_STATUS_OK;
}

/* ---- names and layers, from the architecture table (formats/arch_impl.h) ---- */

/* The name of tensor t (layer il, or any for a global one) with suffix in the file's naming. */
static const char *tensor_name(const struct loader *L, enum sa_tensor t, int il, const char *suffix, char *buf,
                               size_t cap) {
    const size_t pl = L->hf ? strlen(L->hf_prefix) : 0;
    SA_ASSERT(pl < cap);
    memcpy(buf, L->hf_prefix, pl);
    /* only tensors the architecture has are asked for: its flags decide which */
    const bool known = sa_arch_tensor_name(L->m->cfg.arch, L->hf ? SA_NAMES_HF : SA_NAMES_GGUF, t, il, suffix, buf + pl,
                                           cap - pl);
    SA_ASSERT(known);
    return buf;
}

static enum sa_status bind_layer(struct loader *L, int il) {
    struct sa_model *m = L->m;
    const struct sa_model_config *c = &m->cfg;
    struct sa_layer *ly = &m->layers[il];
    const int64_t E = c->n_embd, D = c->head_dim, nq = (int64_t)c->n_head * D, nkv = (int64_t)c->n_head_kv * D;
    const bool p1 = L->hf && c->norm_plus_one;
    const int64_t perm = L->permute_qk ? D : 0;
    char nm[256];
    enum sa_status s;
#define W(t) tensor_name(L, (t), il, ".weight", nm, sizeof nm)
#define B(t) tensor_name(L, (t), il, ".bias", nm, sizeof nm)
    if ((s = bind_vector(L, W(SA_TENSOR_ATTN_NORM), E, true, p1, 0, &ly->attn_norm))) return s;
    if ((s = bind_matrix(L, W(SA_TENSOR_ATTN_Q), E, nq, perm, &ly->wq))) return s;
    if ((s = bind_matrix(L, W(SA_TENSOR_ATTN_K), E, nkv, perm, &ly->wk))) return s;
    if ((s = bind_matrix(L, W(SA_TENSOR_ATTN_V), E, nkv, 0, &ly->wv))) return s;
    if ((s = bind_matrix(L, W(SA_TENSOR_ATTN_OUT), nq, E, 0, &ly->wo))) return s;
    /* biases: required for qwen2 (and attention_bias), optional elsewhere */
    const bool need_bias = c->qkv_bias;
    if ((s = bind_vector(L, B(SA_TENSOR_ATTN_Q), nq, need_bias, false, perm, &ly->bq))) return s;
    if ((s = bind_vector(L, B(SA_TENSOR_ATTN_K), nkv, need_bias, false, perm, &ly->bk))) return s;
    if ((s = bind_vector(L, B(SA_TENSOR_ATTN_V), nkv, need_bias, false, 0, &ly->bv))) return s;
    if (c->qk_norm) {
        if ((s = bind_vector(L, W(SA_TENSOR_ATTN_Q_NORM), D, true, p1, 0, &ly->q_norm))) return s;
        if ((s = bind_vector(L, W(SA_TENSOR_ATTN_K_NORM), D, true, p1, 0, &ly->k_norm))) return s;
    }
    const bool post = sa_arch_has(c->arch, SA_ARCH_F_POST_NORMS);
    if (post && (s = bind_vector(L, W(SA_TENSOR_ATTN_POST_NORM), E, true, p1, 0, &ly->post_attn_norm))) return s;
    if ((s = bind_vector(L, W(SA_TENSOR_FFN_NORM), E, true, p1, 0, &ly->ffn_norm))) return s;
    if ((s = bind_matrix(L, W(SA_TENSOR_FFN_GATE), E, c->n_ff, 0, &ly->w_gate))) return s;
    if ((s = bind_matrix(L, W(SA_TENSOR_FFN_UP), E, c->n_ff, 0, &ly->w_up))) return s;
    if ((s = bind_matrix(L, W(SA_TENSOR_FFN_DOWN), c->n_ff, E, 0, &ly->w_down))) return s;
    if (post && (s = bind_vector(L, W(SA_TENSOR_FFN_POST_NORM), E, true, p1, 0, &ly->post_ffn_norm))) return s;
#undef W
#undef B
    /* local (sliding-window) layers: their window and the local RoPE table */
    ly->window = sa_layer_window(c, il);
    ly->rope_set = sa_layer_is_local(c, il) ? 1 : 0;
    return SA_STATUS_OK;
}

/* RoPE frequencies of the global (local false) or local layers (sa_rope_inv_freq); the
 * global ones of a GGUF divide by its rope_freqs.weight factors when it has them, as
 * llama.cpp does for Llama 3.1. */
static enum sa_status make_inv_freq(struct loader *L, bool local, float **out) {
    struct sa_model *m = L->m;
    const int64_t half = m->n_rot / 2;
    float *f = owned_alloc(m, (size_t)half * sizeof(float));
    if (!f) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct sa_rope_params p = sa_rope_params_of(&m->cfg, local);
    p.n_rot = m->n_rot;
    if (!local && m->gguf) {
        struct tinfo ti;
        if (find_tensor(L, SA_GGUF_ROPE_FREQS, &ti)) {
            if (ti.type != SA_DTYPE_F32 || n_elems(&ti) != (uint64_t)half)
                return sa_error(SA_STATUS_BAD_FILE, "tensor '" SA_GGUF_ROPE_FREQS "': expected %lld f32 values", (long long)half);
            p.factors = ti.data;
        }
    }
    sa_rope_inv_freq(&p, f);
    *out = f;
    return SA_STATUS_OK;
}

/* ---- chat template of a HF directory ---- */
static char *hf_chat_template(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    char *json = NULL;
    size_t len = 0;
    char *out = NULL;
    if (sa_file_exists(path) && sa_read_file(path, 64u << 20, &json, &len) == SA_STATUS_OK) {
        cJSON *root = cJSON_ParseWithLength(json, len);
        const cJSON *ct = root ? cJSON_GetObjectItemCaseSensitive(root, "chat_template") : NULL;
        if (cJSON_IsString(ct)) {
            out = strdup(ct->valuestring);
        } else if (cJSON_IsArray(ct)) { /* [{name, template}, ...]: "default", else the first */
            const cJSON *e;
            cJSON_ArrayForEach(e, ct) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "template");
                if (!cJSON_IsString(t)) continue;
                if (!out || (cJSON_IsString(n) && !strcmp(n->valuestring, "default"))) {
                    free(out);
                    out = strdup(t->valuestring);
                }
            }
        }
        cJSON_Delete(root);
        free(json);
    }
    if (out) return out;
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (sa_file_exists(path) && sa_read_file(path, 64u << 20, &json, &len) == SA_STATUS_OK) return json;
    return NULL;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static enum sa_status open_source(struct loader *L, const char *path, const struct sa_model_params *p) {
    struct sa_model *m = L->m;
    enum sa_status s;
    if (!is_dir(path)) {
        if (p->use_mmap) {
            if ((s = sa_gguf_open(path, &m->gguf))) return s; /* its messages name the path */
        } else {
            char *buf = NULL;
            size_t len = 0;
            if ((s = sa_read_file_weights(path, &buf, &len))) return s;
            if (!owned_alloc(m, 0)) { /* reserve a slot, then swap the buffer in */
                free(buf);
                return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            }
            free(m->owned[m->n_owned - 1]);
            m->owned[m->n_owned - 1] = buf;
            if ((s = sa_gguf_open_memory(buf, len, &m->gguf))) return sa_error_wrap(s, "%s", path);
        }
        if ((s = sa_model_config_from_gguf(m->gguf, &m->cfg))) return sa_error_wrap(s, "%s", path);
        if (p->load_tokenizer && (s = sa_tokenizer_load_gguf(m->gguf, &m->tok))) return sa_error_wrap(s, "%s: tokenizer", path);
        m->chat_template = sa_gguf_get_string(m->gguf, "tokenizer.chat_template");
        return SA_STATUS_OK;
    }
    char cpath[4096], tpath[4096], tcpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", path);
    char *json = NULL;
    size_t len = 0;
    if (!sa_file_exists(cpath))
        return sa_error(SA_STATUS_NOT_FOUND, "%s: no config.json (a model directory needs config.json and *.safetensors)", path);
    if ((s = sa_read_file(cpath, 16u << 20, &json, &len))) return s;
    s = sa_model_config_from_hf_json(json, len, &m->cfg);
    free(json);
    if (s) return sa_error_wrap(s, "%s", cpath);
    if ((s = sa_safetensors_open(path, &m->st))) return s; /* its messages name the file */
    L->hf = true;
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", path);
    snprintf(tcpath, sizeof tcpath, "%s/tokenizer_config.json", path);
    if (p->load_tokenizer && sa_file_exists(tpath)) {
        if ((s = sa_tokenizer_load_hf(tpath, sa_file_exists(tcpath) ? tcpath : NULL, &m->tok)))
            return s; /* its messages name the file */
    }
    m->chat_template = hf_chat_template(path);
    return SA_STATUS_OK;
}

/* use_mmap == false for safetensors: copy the weights still pointing into the mapping. */
static enum sa_status copy_mapped(struct sa_model *m) {
    const struct sa_model_config *c = &m->cfg;
    struct sa_weight *ws[8];
    for (int il = -1; il < c->n_layer; il++) {
        int n = 0;
        if (il < 0) {
            ws[n++] = &m->tok_embd;
            if (m->output.data != m->tok_embd.data) ws[n++] = &m->output;
        } else {
            struct sa_layer *ly = &m->layers[il];
            struct sa_weight *l[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
            for (size_t i = 0; i < SA_ARRAY_LEN(l); i++) ws[n++] = l[i];
        }
        for (int i = 0; i < n; i++) {
            bool own = false;
            for (size_t j = 0; j < m->n_owned && !own; j++) own = m->owned[j] == ws[i]->data;
            if (own) continue;
            uint64_t rb = 0;
            if (!sa_dtype_row_bytes(ws[i]->type, (uint64_t)ws[i]->n_in, &rb)) return sa_error(SA_STATUS_ERROR, "bad weight");
            const void *old = ws[i]->data;
            void *b = owned_alloc(m, (size_t)(rb * (uint64_t)ws[i]->n_out));
            if (!b) return sa_error(SA_STATUS_NO_MEMORY, "out of memory copying weights (try use_mmap)");
            memcpy(b, old, (size_t)(rb * (uint64_t)ws[i]->n_out));
            ws[i]->data = b;
            if (il < 0 && i == 0 && m->output.data == old) m->output.data = b;
        }
    }
    sa_safetensors_free(m->st);
    m->st = NULL;
    return SA_STATUS_OK;
}

enum sa_status sa_model_load(const char *path, const struct sa_model_params *params, struct sa_model **out) {
    *out = NULL;
    if (!path || !*path) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_model_load: empty path");
    struct sa_model_params p = params ? *params : sa_model_default_params();
    struct sa_model *m = calloc(1, sizeof *m);
    if (!m) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct loader L = {.m = m, .hf_prefix = ""};
    enum sa_status s = open_source(&L, path, &p);
    if (s) goto fail;
    struct sa_model_config *c = &m->cfg;
    if ((s = sa_model_config_validate(c))) goto fail;
    if (!sa_arch_info(c->arch)) {
        s = sa_error(SA_STATUS_UNSUPPORTED, "%s: architecture '%s' is not supported (llama, qwen2, qwen3, gemma3)", path,
                     c->arch_name);
        goto fail;
    }
    if (c->head_dim <= 0 || c->head_dim % 2) {
        s = sa_error(SA_STATUS_BAD_FILE, "%s: head_dim %d must be even and positive", path, c->head_dim);
        goto fail;
    }
    if (m->tok && sa_tokenizer_n_vocab(m->tok) > c->n_vocab) {
        s = sa_error(SA_STATUS_BAD_FILE, "%s: tokenizer has %d tokens, the model only %d", path,
                     sa_tokenizer_n_vocab(m->tok), c->n_vocab);
        goto fail;
    }
    if ((s = sa_threadpool_init(p.n_threads, &L.tp))) goto fail;
    if (L.hf && !sa_safetensors_find(m->st, "model.embed_tokens.weight") &&
        sa_safetensors_find(m->st, "language_model.model.embed_tokens.weight"))
        L.hf_prefix = "language_model.";
    /* GGUF weights run the architecture's RoPE pairing; HF ones of an architecture that
     * llama.cpp permutes are permuted the same way at load, so both run the same mode */
    m->rope_mode = sa_arch_rope_mode(c->arch, SA_NAMES_GGUF);
    L.permute_qk = L.hf && sa_arch_permute_qk(c->arch);
    m->n_rot = c->head_dim;

    char nm[256];
    tensor_name(&L, SA_TENSOR_TOKEN_EMBD, -1, ".weight", nm, sizeof nm);
    if ((s = bind_matrix(&L, nm, c->n_embd, c->n_vocab, 0, &m->tok_embd))) goto fail;
    tensor_name(&L, SA_TENSOR_OUTPUT_NORM, -1, ".weight", nm, sizeof nm);
    if ((s = bind_vector(&L, nm, c->n_embd, true, L.hf && c->norm_plus_one, 0, &m->output_norm))) goto fail;
    tensor_name(&L, SA_TENSOR_OUTPUT, -1, ".weight", nm, sizeof nm);
    struct tinfo ti;
    if (find_tensor(&L, nm, &ti)) {
        if ((s = bind_matrix(&L, nm, c->n_embd, c->n_vocab, 0, &m->output))) goto fail;
    } else {
        m->output = m->tok_embd; /* tied (GGUF files omit output.weight then) */
    }
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    for (int il = 0; il < c->n_layer; il++)
        if ((s = bind_layer(&L, il))) goto fail;

    if ((s = make_inv_freq(&L, false, &m->inv_freq[0]))) goto fail;
    if ((s = make_inv_freq(&L, true, &m->inv_freq[1]))) goto fail;
    m->attn_scale = sa_attn_scale(c);
    if (!p.use_mmap && m->st && (s = copy_mapped(m))) goto fail;
    sa_threadpool_free(L.tp);
    *out = m;
    return SA_STATUS_OK;
fail:
    sa_threadpool_free(L.tp);
    sa_model_free(m);
    return s;
}

void sa_model_free(struct sa_model *m) {
    if (!m) return;
    free(m->layers);
    free(m->chat_template);
    sa_tokenizer_free(m->tok);
    sa_safetensors_free(m->st);
    sa_gguf_free(m->gguf);
    for (size_t i = m->n_owned; i-- > 0;) free(m->owned[i]);
    free(m->owned);
    free(m);
}

const struct sa_model_config *sa_model_config(const struct sa_model *m) { return &m->cfg; }
const struct sa_tokenizer *sa_model_tokenizer(const struct sa_model *m) { return m->tok; }
const char *sa_model_chat_template(const struct sa_model *m) { return m->chat_template; }
int32_t sa_model_n_vocab(const struct sa_model *m) { return m->cfg.n_vocab; }
int32_t sa_model_n_embd(const struct sa_model *m) { return m->cfg.n_embd; }
uint64_t sa_model_n_bytes(const struct sa_model *m) { return m->n_bytes; }
uint64_t sa_model_n_params(const struct sa_model *m) { return m->n_params; }
