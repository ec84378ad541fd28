/* train_model.c: the trainable model: f32 master weights in Hugging Face form for llama,
 * qwen2, qwen3 and gemma3 (from safetensors, or from a GGUF dequantized through sa_convert),
 * LoRA adapters, an activation arena sized once for (B, T), the forward that saves what the
 * backward needs, the backward, AdamW, and the state files of a checkpoint.
 * The layer follows transformers' modeling_{llama,qwen2,qwen3,gemma3}.py (4.51): pre-norm
 * blocks, q/k norm before RoPE (Qwen3, Gemma 3), post-norms and sqrt(C)-scaled embeddings
 * (Gemma 3), sliding-window layers (Gemma 3). docs/TRAINING.md has the activation layout. */
#define _GNU_SOURCE
#include "train/train_impl.h"

#include "core/core_impl.h"
#include "core/rng_impl.h"
#include "formats/arch_impl.h"
#include "sa/convert.h"
#include "sa/gguf.h"
#include "sa/safetensors.h"

#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t sa_tr_mix(uint64_t x) { return sa_rng_mix64(x); }

struct sa_train_model_params sa_train_model_default_params(void) {
    struct sa_train_model_params p;
    memset(&p, 0, sizeof p);
    p.lora_targets = SA_LORA_ALL;
    p.n_threads = 1;
    return p;
}

enum sa_status sa_train_precision_from_name(const char *name, enum sa_train_precision *out) {
    if (name && (!strcmp(name, "fp32") || !strcmp(name, "f32") || !strcmp(name, "float32"))) *out = SA_TRAIN_FP32;
    else if (name && (!strcmp(name, "bf16") || !strcmp(name, "bfloat16"))) *out = SA_TRAIN_BF16;
    else return sa_error(SA_STATUS_BAD_ARGUMENT, "unknown training precision '%s' (fp32, bf16)", name ? name : "(null)");
    return SA_STATUS_OK;
}

const char *sa_train_precision_name(enum sa_train_precision p) { return p == SA_TRAIN_BF16 ? "bf16" : "fp32"; }

struct sa_train_optim sa_train_optim_default(void) {
    struct sa_train_optim o = {0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};
    return o;
}

static enum sa_status bad_targets(const char *list) {
    return sa_error(SA_STATUS_BAD_ARGUMENT, "bad LoRA target list '%s' (comma-separated q, k, v, o, gate, up, down, all)",
                    list ? list : "(null)");
}

enum sa_status sa_lora_targets_parse(const char *list, uint32_t *out) {
    static const char *names[TR_N_LIN] = {"q", "k", "v", "o", "gate", "up", "down"};
    uint32_t f = 0;
    const char *s = list;
    if (!s || !*s) return bad_targets(list);
    while (*s) {
        size_t n = strcspn(s, ",");
        char w[32];
        if (n == 0 || n >= sizeof w) return bad_targets(list);
        memcpy(w, s, n);
        w[n] = 0;
        size_t wl = strlen(w);
        if (wl > 5 && !strcmp(w + wl - 5, "_proj")) w[wl - 5] = 0;
        int hit = -1;
        for (int i = 0; i < TR_N_LIN; i++)
            if (!strcmp(w, names[i])) hit = i;
        if (!strcmp(w, "all")) f |= SA_LORA_ALL;
        else if (hit < 0) return bad_targets(list);
        else f |= 1u << hit;
        s += n;
        if (*s == ',') s++;
    }
    *out = f;
    return SA_STATUS_OK;
}

/* ---- tensors ---- */

static enum sa_status add_tensor(struct sa_train_model *m, int32_t *cap, const char *name, int32_t n_dims,
                                 int64_t d0, int64_t d1, bool lora, int32_t *idx) {
    if (m->n_t == *cap) {
        int32_t nc = *cap ? *cap * 2 : 64;
        struct tr_tensor *t = realloc(m->t, (size_t)nc * sizeof *t);
        if (!t) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        m->t = t;
        *cap = nc;
    }
    struct tr_tensor *t = &m->t[m->n_t];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->shape[0] = d0;
    t->shape[1] = n_dims == 2 ? d1 : 1;
    t->n = d0 * t->shape[1];
    t->decay = n_dims == 2;
    t->lora = lora;
    *idx = m->n_t++;
    return SA_STATUS_OK;
}

/* The HF tensor behind each linear of a layer (enum tr_lin order). */
static const enum sa_tensor lin_tensor[TR_N_LIN] = {SA_TENSOR_ATTN_Q,   SA_TENSOR_ATTN_K,  SA_TENSOR_ATTN_V,
                                                    SA_TENSOR_ATTN_OUT, SA_TENSOR_FFN_GATE, SA_TENSOR_FFN_UP,
                                                    SA_TENSOR_FFN_DOWN};

/* The HF name of tensor t of layer l (or global) with suffix, from the architecture table. */
static const char *hf_name(const struct sa_model_config *c, enum sa_tensor t, int l, const char *suffix, char *buf,
                           size_t cap) {
    const bool known = sa_arch_tensor_name(c->arch, SA_NAMES_HF, t, l, suffix, buf, cap);
    SA_ASSERT(known); /* only tensors the architecture has are asked for: its flags decide which */
    return buf;
}

/* The tensor list of the architecture (base tensors, then adapters). The tensors, their
 * presence rules and local layers are those of sa_model_load (formats/arch_impl.h). */
static enum sa_status plan_tensors(struct sa_train_model *m, const struct sa_safetensors *st) {
    const struct sa_model_config *c = &m->cfg;
    int64_t C = c->n_embd, H = c->n_head, KV = c->n_head_kv, D = c->head_dim, F = c->n_ff, V = c->n_vocab;
    const bool post = sa_arch_has(c->arch, SA_ARCH_F_POST_NORMS);
    int32_t cap = 0;
    char nm[112];
    enum sa_status s;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    hf_name(c, SA_TENSOR_TOKEN_EMBD, -1, ".weight", nm, sizeof nm);
    if ((s = add_tensor(m, &cap, nm, 2, V, C, false, &m->embd))) return s;
    const int64_t lin_shape[TR_N_LIN][2] = {{H * D, C}, {KV * D, C}, {KV * D, C}, {C, H * D}, {F, C}, {F, C}, {C, F}};
    for (int l = 0; l < c->n_layer; l++) {
        struct tr_layer *ly = &m->layers[l];
        ly->q_norm = ly->k_norm = ly->post_attn_norm = ly->post_ffw_norm = -1;
#define NORM(field, t, len)                                                                    \
    do {                                                                                       \
        hf_name(c, (t), l, ".weight", nm, sizeof nm);                                         \
        if ((s = add_tensor(m, &cap, nm, 1, len, 1, false, &ly->field))) return s;            \
    } while (0)
        NORM(attn_norm, SA_TENSOR_ATTN_NORM, C);
        for (int j = 0; j < TR_N_LIN; j++) {
            struct tr_lin *ln = &ly->lin[j];
            ln->b = ln->A = ln->B = -1;
            ln->OC = lin_shape[j][0];
            ln->C = lin_shape[j][1];
            hf_name(c, lin_tensor[j], l, ".weight", nm, sizeof nm);
            if ((s = add_tensor(m, &cap, nm, 2, ln->OC, ln->C, false, &ln->W))) return s;
            /* q/k/v biases are required by qkv_bias (as sa_model_load); any bias the file
             * has is trained */
            hf_name(c, lin_tensor[j], l, ".bias", nm, sizeof nm);
            bool want_bias = (c->qkv_bias && j <= TR_LIN_V) || sa_safetensors_find(st, nm) != NULL;
            if (want_bias && (s = add_tensor(m, &cap, nm, 1, ln->OC, 1, false, &ln->b))) return s;
        }
        if (c->qk_norm) {
            NORM(q_norm, SA_TENSOR_ATTN_Q_NORM, D);
            NORM(k_norm, SA_TENSOR_ATTN_K_NORM, D);
        }
        if (post) NORM(post_attn_norm, SA_TENSOR_ATTN_POST_NORM, C);
        NORM(ffn_norm, SA_TENSOR_FFN_NORM, C);
        if (post) NORM(post_ffw_norm, SA_TENSOR_FFN_POST_NORM, C);
#undef NORM
        ly->sliding = sa_layer_is_local(c, l);
    }
    hf_name(c, SA_TENSOR_OUTPUT_NORM, -1, ".weight", nm, sizeof nm);
    if ((s = add_tensor(m, &cap, nm, 1, C, 1, false, &m->out_norm))) return s;
    if (c->tie_embeddings) m->lm_head = m->embd;
    else if ((s = add_tensor(m, &cap, hf_name(c, SA_TENSOR_OUTPUT, -1, ".weight", nm, sizeof nm), 2, V, C, false,
                             &m->lm_head)))
        return s;
    m->n_base = m->n_t;
    if (m->p.lora_rank > 0) {
        int64_t r = m->p.lora_rank;
        for (int l = 0; l < c->n_layer; l++)
            for (int j = 0; j < TR_N_LIN; j++) {
                if (!(m->p.lora_targets & (1u << j))) continue;
                struct tr_lin *ln = &m->layers[l].lin[j];
                hf_name(c, lin_tensor[j], l, ".lora_A.weight", nm, sizeof nm);
                if ((s = add_tensor(m, &cap, nm, 2, r, ln->C, true, &ln->A))) return s;
                hf_name(c, lin_tensor[j], l, ".lora_B.weight", nm, sizeof nm);
                if ((s = add_tensor(m, &cap, nm, 2, ln->OC, r, true, &ln->B))) return s;
            }
    }
    return SA_STATUS_OK;
}

/* Allocates the weight, adapter and gradient blocks and points the tensors into them. */
static enum sa_status alloc_blocks(struct sa_train_model *m) {
    bool lora = m->p.lora_rank > 0;
    for (int32_t i = 0; i < m->n_t; i++) {
        if (m->t[i].lora) m->n_adapters += m->t[i].n;
        else m->n_weights += m->t[i].n;
        if (m->t[i].lora || !lora) m->n_grads += m->t[i].n;
    }
    m->weights = malloc((size_t)m->n_weights * sizeof(float));
    m->adapters = m->n_adapters ? malloc((size_t)m->n_adapters * sizeof(float)) : NULL;
    m->grads = calloc((size_t)m->n_grads, sizeof(float));
    if (!m->weights || (m->n_adapters && !m->adapters) || !m->grads)
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory for %lld weights and %lld gradients",
                        (long long)(m->n_weights + m->n_adapters), (long long)m->n_grads);
    int64_t ow = 0, oa = 0, og = 0;
    for (int32_t i = 0; i < m->n_t; i++) {
        struct tr_tensor *t = &m->t[i];
        if (t->lora) t->data = m->adapters + oa, oa += t->n;
        else t->data = m->weights + ow, ow += t->n;
        if (t->lora || !lora) t->grad = m->grads + og, og += t->n;
    }
    return SA_STATUS_OK;
}

static enum sa_status load_weights(struct sa_train_model *m, const struct sa_safetensors *st) {
    for (int32_t i = 0; i < m->n_base; i++) {
        struct tr_tensor *t = &m->t[i];
        const struct sa_st_tensor *s = sa_safetensors_find(st, t->name);
        if (!s && !strncmp(t->name, "model.", 6)) {
            char alt[160];
            snprintf(alt, sizeof alt, "language_model.%s", t->name);
            s = sa_safetensors_find(st, alt);
        }
        if (!s) return sa_error(SA_STATUS_NOT_FOUND, "tensor '%s' is missing", t->name);
        int64_t n = 1;
        for (uint32_t d = 0; d < s->n_dims; d++) n *= s->shape[d];
        bool shape_ok = n == t->n && (int32_t)s->n_dims == t->n_dims && s->shape[0] == t->shape[0];
        if (!shape_ok)
            return sa_error(SA_STATUS_BAD_FILE, "tensor '%s': shape does not match config.json (%lld values, want %lld)",
                            t->name, (long long)n, (long long)t->n);
        if (s->type != SA_DTYPE_F32 && s->type != SA_DTYPE_F16 && s->type != SA_DTYPE_BF16)
            return sa_error(SA_STATUS_UNSUPPORTED, "tensor '%s': type %s (want f32, f16 or bf16)", t->name,
                            sa_dtype_name(s->type) ? sa_dtype_name(s->type) : "?");
        enum sa_status e = sa_dequantize(s->type, s->data, t->data, t->n);
        if (e) return e;
    }
    return SA_STATUS_OK;
}

/* ---- side files (config, tokenizer) kept for export ---- */

static enum sa_status keep_side_file(struct sa_train_model *m, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!sa_file_exists(path) || m->n_side >= (int)SA_ARRAY_LEN(m->side)) return SA_STATUS_OK;
    struct tr_side_file *f = &m->side[m->n_side];
    enum sa_status s = sa_read_file(path, 0, &f->data, &f->len);
    if (s) return s;
    snprintf(f->name, sizeof f->name, "%s", name);
    m->n_side++;
    return SA_STATUS_OK;
}

static const char *side_names[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                   "special_tokens_map.json", "tokenizer.model", "chat_template.jinja"};

static enum sa_status load_hf_extras(struct sa_train_model *m, const char *dir) {
    enum sa_status s = SA_STATUS_OK;
    for (size_t i = 0; i < SA_ARRAY_LEN(side_names) && !s; i++) s = keep_side_file(m, dir, side_names[i]);
    if (s) return s;
    char tj[4096], tc[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    snprintf(tc, sizeof tc, "%s/tokenizer_config.json", dir);
    if (!m->base_gguf && sa_file_exists(tj) &&
        (s = sa_tokenizer_load_hf(tj, sa_file_exists(tc) ? tc : NULL, &m->tok)))
        return s; /* its messages name the file */
    for (int i = 0; i < m->n_side && !m->chat_template; i++) {
        if (!strcmp(m->side[i].name, "chat_template.jinja")) {
            m->chat_template = strdup(m->side[i].data);
        } else if (!strcmp(m->side[i].name, "tokenizer_config.json")) {
            cJSON *root = cJSON_ParseWithLength(m->side[i].data, m->side[i].len);
            const cJSON *ct = root ? cJSON_GetObjectItemCaseSensitive(root, "chat_template") : NULL;
            if (cJSON_IsString(ct)) m->chat_template = strdup(ct->valuestring);
            cJSON_Delete(root);
        }
    }
    return SA_STATUS_OK;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p) unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* ---- load ---- */

static enum sa_status load_dir(struct sa_train_model *m, const char *dir) {
    char path[4096], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    enum sa_status s = sa_read_file(path, 16u << 20, &text, &len);
    if (s) return sa_error_wrap(s, "%s (a model directory needs config.json and model.safetensors)", dir);
    s = sa_model_config_from_hf_json(text, len, &m->cfg);
    free(text);
    if (s) return sa_error_wrap(s, "%s", path);
    if ((s = sa_model_config_validate(&m->cfg))) return s;
    const struct sa_model_config *c = &m->cfg;
    if (!sa_arch_info(c->arch))
        return sa_error(SA_STATUS_UNSUPPORTED, "training: architecture '%s' is not supported (llama, qwen2, qwen3, gemma3)",
                        c->arch_name);
    if (c->final_logit_softcap > 0 || c->attn_logit_softcap > 0)
        return sa_error(SA_STATUS_UNSUPPORTED, "training: logit soft-capping is not supported");
    struct sa_safetensors *st;
    if ((s = sa_safetensors_open(dir, &st))) return s;
    s = plan_tensors(m, st);
    if (!s) s = alloc_blocks(m);
    if (!s) s = load_weights(m, st);
    sa_safetensors_free(st);
    if (!s) s = load_hf_extras(m, dir);
    return s;
}

static void quiet_log(void *user, const char *msg) { (void)user, (void)msg; }

/* A GGUF base: converted to an f32 safetensors directory in a temporary folder (sa_convert
 * undoes llama.cpp's Q/K permutation and Gemma's +1 on norms), loaded, then removed. */
static enum sa_status load_gguf(struct sa_train_model *m, const char *path) {
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/salign-train-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return sa_error(SA_STATUS_IO, "cannot create a temporary directory in %s", tmp ? tmp : "/tmp");
    struct sa_convert_params cp = sa_convert_default_params();
    cp.to = SA_CONVERT_SAFETENSORS;
    cp.type = SA_DTYPE_F32;
    cp.log = quiet_log;
    enum sa_status s = sa_convert(path, dir, &cp);
    if (!s) s = load_dir(m, dir);
    remove_dir(dir);
    if (s) return s;
    struct sa_gguf *g;
    if ((s = sa_gguf_open(path, &g))) return s;
    struct sa_model_config gc;
    if (!sa_model_config_from_gguf(g, &gc)) snprintf(m->cfg.name, sizeof m->cfg.name, "%s", gc.name);
    free(m->chat_template);
    m->chat_template = sa_gguf_get_string(g, "tokenizer.chat_template");
    if (sa_gguf_find_key(g, "tokenizer.ggml.model") >= 0) s = sa_tokenizer_load_gguf(g, &m->tok); /* else none */
    sa_gguf_free(g);
    return s;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The RoPE tables of the global and local layers: the rule of sa_model_load. */
static void init_rope(struct sa_train_model *m) {
    struct sa_rope_params p = sa_rope_params_of(&m->cfg, false);
    sa_rope_inv_freq(&p, m->inv_freq_global);
    p = sa_rope_params_of(&m->cfg, true);
    sa_rope_inv_freq(&p, m->inv_freq_local);
}

enum sa_status sa_train_model_load(const char *path, const struct sa_train_model_params *params,
                                   struct sa_train_model **out) {
    *out = NULL;
    if (!path || !*path) return sa_error(SA_STATUS_BAD_ARGUMENT, "training: empty model path");
    struct sa_train_model_params p = params ? *params : sa_train_model_default_params();
    if (p.lora_rank < 0 || p.lora_dropout < 0 || p.lora_dropout >= 1)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: LoRA rank must be >= 0 and dropout in [0, 1)");
    if (!p.lora_targets) p.lora_targets = SA_LORA_ALL;
    if (p.lora_alpha <= 0) p.lora_alpha = 2.0f * (float)p.lora_rank;
    if (p.n_threads <= 0) p.n_threads = 1;
    if (p.precision != SA_TRAIN_FP32 && p.precision != SA_TRAIN_BF16)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: unknown precision %d", (int)p.precision);
    if (!sa_file_exists(path)) return sa_error(SA_STATUS_NOT_FOUND, "%s: no such file or directory", path);
    struct sa_train_model *m = calloc(1, sizeof *m);
    if (!m) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    m->p = p;
    m->base_path = strdup(path);
    m->base_gguf = ends_with(path, ".gguf");
    enum sa_status s = m->base_path ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (!s) s = m->base_gguf ? load_gguf(m, path) : load_dir(m, path);
    if (!s) {
        const struct sa_model_config *c = &m->cfg;
        m->inv_freq_global = malloc((size_t)c->head_dim / 2 * sizeof(float));
        m->inv_freq_local = malloc((size_t)c->head_dim / 2 * sizeof(float));
        if (!m->inv_freq_global || !m->inv_freq_local) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        else init_rope(m);
        m->attn_scale = sa_attn_scale(c);
        m->embd_scale = (float)sqrt((double)c->n_embd);
        m->lora_scale = p.lora_rank > 0 ? p.lora_alpha / (float)p.lora_rank : 0;
    }
    /* adapters: A ~ kaiming-uniform, B = 0 (PEFT), each from its own seed */
    for (int l = 0; !s && l < m->cfg.n_layer; l++)
        for (int j = 0; j < TR_N_LIN; j++) {
            struct tr_lin *ln = &m->layers[l].lin[j];
            if (ln->A < 0) continue;
            sa_tr_lora_init(m->t[ln->A].data, m->t[ln->B].data, ln->C, ln->OC, p.lora_rank,
                            sa_tr_mix(p.seed ^ sa_tr_mix((uint64_t)(l * TR_N_LIN + j + 1))));
        }
    if (!s) s = sa_train_model_set_threads(m, p.n_threads);
    if (s) {
        sa_train_model_free(m);
        return s;
    }
    *out = m;
    return SA_STATUS_OK;
}

void sa_train_model_free(struct sa_train_model *m) {
    if (!m) return;
    sa_adamw_free(&m->opt);
    sa_threadpool_free(m->tp);
    free(m->arena);
    free(m->head_pk_fwd);
    free(m->head_pk_bwd);
    free(m->x);
    free(m->inv_freq_global);
    free(m->inv_freq_local);
    free(m->grads);
    free(m->adapters);
    free(m->weights);
    free(m->layers);
    free(m->t);
    for (int i = 0; i < m->n_side; i++) free(m->side[i].data);
    sa_tokenizer_free(m->tok);
    free(m->chat_template);
    free(m->base_path);
    free(m);
}

const struct sa_model_config *sa_train_model_config(const struct sa_train_model *m) { return &m->cfg; }

int64_t sa_train_model_n_params(const struct sa_train_model *m, bool trainable) {
    return trainable ? m->n_grads : m->n_weights + m->n_adapters;
}

enum sa_status sa_train_model_set_threads(struct sa_train_model *m, int n_threads) {
    if (n_threads <= 0) n_threads = 1;
    sa_tr_blas_set_threads(n_threads);
    if (m->tp && m->n_threads == n_threads) return SA_STATUS_OK;
    sa_threadpool_free(m->tp);
    m->tp = NULL;
    m->n_threads = n_threads;
    if (n_threads > 1) return sa_threadpool_init(n_threads, &m->tp);
    return SA_STATUS_OK;
}

int32_t sa_train_model_n_tensors(const struct sa_train_model *m) { return m->n_t; }

bool sa_train_model_tensor(const struct sa_train_model *m, int32_t i, struct sa_train_tensor *out) {
    if (i < 0 || i >= m->n_t) return false;
    const struct tr_tensor *t = &m->t[i];
    out->name = t->name;
    out->n_dims = t->n_dims;
    out->shape[0] = t->shape[0];
    out->shape[1] = t->shape[1];
    out->n = t->n;
    out->data = t->data;
    out->grad = t->grad;
    out->decay = t->decay;
    return true;
}

int32_t sa_train_model_find(const struct sa_train_model *m, const char *name) {
    for (int32_t i = 0; name && i < m->n_t; i++)
        if (!strcmp(m->t[i].name, name)) return i;
    return -1;
}

/* ---- the activation arena ---- */

struct carve {
    char *base;
    size_t off;
};
/* With base NULL only counts. 64-byte aligned pieces. */
static void *take(struct carve *c, size_t bytes) {
    size_t at = (c->off + 63) & ~(size_t)63;
    c->off = at + bytes;
    return c->base ? c->base + at : NULL;
}
#define TAKEF(c, n) ((float *)take(c, (size_t)(n) * sizeof(float)))

static void carve_arena(struct sa_train_model *m, struct carve *cv, int64_t B, int64_t T) {
    const struct sa_model_config *c = &m->cfg;
    int64_t N = B * T, C = c->n_embd, H = c->n_head, KV = c->n_head_kv, D = c->head_dim, F = c->n_ff;
    int64_t r = m->p.lora_rank;
    bool post = sa_arch_has(c->arch, SA_ARCH_F_POST_NORMS), drop = m->p.lora_dropout > 0;
    for (int l = 0; l <= c->n_layer; l++) {
        float *x = TAKEF(cv, N * C);
        if (m->x) m->x[l] = x;
    }
    for (int l = 0; l < c->n_layer; l++) {
        struct tr_layer *ly = &m->layers[l];
        ly->x_mid = TAKEF(cv, N * C);
        ly->rstd1 = TAKEF(cv, N);
        ly->xn1 = TAKEF(cv, N * C);
        if (c->qk_norm) {
            ly->q_pre = TAKEF(cv, N * H * D);
            ly->q_rstd = TAKEF(cv, N * H);
            ly->k_pre = TAKEF(cv, N * KV * D);
            ly->k_rstd = TAKEF(cv, N * KV);
        }
        ly->q = TAKEF(cv, N * H * D);
        ly->k = TAKEF(cv, N * KV * D);
        ly->v = TAKEF(cv, N * KV * D);
        ly->att = TAKEF(cv, N * H * D);
        ly->lse = TAKEF(cv, N * H);
        if (post) {
            ly->o_raw = TAKEF(cv, N * C);
            ly->o_rstd = TAKEF(cv, N);
            ly->d_raw = TAKEF(cv, N * C);
            ly->d_rstd = TAKEF(cv, N);
        }
        ly->rstd2 = TAKEF(cv, N);
        ly->xn2 = TAKEF(cv, N * C);
        ly->gate = TAKEF(cv, N * F);
        ly->up = TAKEF(cv, N * F);
        for (int j = 0; j < TR_N_LIN; j++) {
            ly->lora_h[j] = ly->lora_xd[j] = NULL;
            if (ly->lin[j].A < 0) continue;
            ly->lora_h[j] = TAKEF(cv, N * r);
            if (drop) ly->lora_xd[j] = TAKEF(cv, N * ly->lin[j].C);
        }
    }
    m->rstd_f = TAKEF(cv, N);
    m->xn_f = TAKEF(cv, N * C);
    m->pos = take(cv, (size_t)N * sizeof(int32_t));
    m->rows = take(cv, (size_t)N * sizeof(int32_t));
    m->tg = take(cv, (size_t)N * sizeof(int32_t));
    m->dres = TAKEF(cv, N * C);
    m->dxn = TAKEF(cv, N * C);
    m->dtmp = TAKEF(cv, N * C);
    m->tmp = TAKEF(cv, N * C);
    m->dq = TAKEF(cv, N * H * D);
    m->dq2 = TAKEF(cv, N * H * D);
    m->datt = TAKEF(cv, N * H * D);
    m->dk = TAKEF(cv, N * KV * D);
    m->dk2 = TAKEF(cv, N * KV * D);
    m->dv = TAKEF(cv, N * KV * D);
    m->act = TAKEF(cv, N * F);
    m->dgate = TAKEF(cv, N * F);
    m->dup = TAKEF(cv, N * F);
    m->dact = TAKEF(cv, N * F);
    m->attn_scratch = TAKEF(cv, sa_tr_attention_scratch_floats(T));
    int64_t cin = SA_MAX(SA_MAX(C, F), H * D);
    m->lora_dh = r ? TAKEF(cv, N * r) : NULL;
    m->lora_dxd = r && drop ? TAKEF(cv, N * cin) : NULL;
    m->chunk_rows = SA_MIN(N, 128);
    m->logits = TAKEF(cv, m->chunk_rows * (int64_t)c->n_vocab);
    m->losses = TAKEF(cv, m->chunk_rows);
    m->row_w = TAKEF(cv, N);
    m->row_loss = TAKEF(cv, N);
    m->xc = TAKEF(cv, m->chunk_rows * C);
    m->dxc = TAKEF(cv, m->chunk_rows * C);
}

enum sa_status sa_train_model_reserve(struct sa_train_model *m, int64_t B, int64_t T, size_t *bytes) {
    if (B <= 0 || T <= 0 || B * T > (1 << 24))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: batch %lld x %lld tokens is out of range", (long long)B, (long long)T);
    if (m->arena && B <= m->B_max && T <= m->T_max) {
        if (bytes) *bytes = m->arena_bytes;
        return SA_STATUS_OK;
    }
    B = SA_MAX(B, m->B_max);
    T = SA_MAX(T, m->T_max);
    free(m->arena);
    m->arena = NULL;
    if (!m->x && !(m->x = calloc((size_t)m->cfg.n_layer + 1, sizeof *m->x)))
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct carve cv = {NULL, 0};
    carve_arena(m, &cv, B, T);
    size_t n = cv.off + 64;
    m->arena = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!m->arena) {
        m->B_max = m->T_max = 0;
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory for %.1f MiB of activations (batch %lld x %lld)",
                        (double)n / (1 << 20), (long long)B, (long long)T);
    }
    memset(m->arena, 0, n);
    m->arena_bytes = n;
    m->B_max = B;
    m->T_max = T;
    cv.base = (char *)m->arena;
    cv.off = 0;
    carve_arena(m, &cv, B, T);
    if (bytes) *bytes = n;
    return SA_STATUS_OK;
}

/* Activations laid out for (B_max, T_max) are reused for a smaller (B, T): every buffer is
 * used as a packed (B*T, ...) prefix, so only the sizes shrink. */

void sa_train_model_zero_grad(struct sa_train_model *m) {
    memset(m->grads, 0, (size_t)m->n_grads * sizeof(float));
}

/* ---- forward and backward ---- */

static inline float *W_(const struct sa_train_model *m, int32_t i) { return i >= 0 ? m->t[i].data : NULL; }
static inline float *G_(const struct sa_train_model *m, int32_t i) { return i >= 0 ? m->t[i].grad : NULL; }

static struct sa_tr_lora lora_of(const struct sa_train_model *m, int l, int j, uint64_t seed) {
    const struct tr_lin *ln = &m->layers[l].lin[j];
    struct sa_tr_lora L = {ln->C, ln->OC, m->p.lora_rank, m->lora_scale, m->no_dropout ? 0.0f : m->p.lora_dropout,
                           sa_tr_mix(seed ^ sa_tr_mix(0x10000ull + (uint64_t)(l * TR_N_LIN + j))),
                           m->p.precision == SA_TRAIN_BF16, m->tp};
    return L;
}

static void lin_fwd(struct sa_train_model *m, int l, int j, float *out, const float *inp, int64_t N, uint64_t seed) {
    const struct tr_lin *ln = &m->layers[l].lin[j];
    if (ln->A >= 0 && !m->adapters_off) {
        struct sa_tr_lora L = lora_of(m, l, j, seed);
        sa_tr_lora_fwd(&L, out, m->layers[l].lora_xd[j], m->layers[l].lora_h[j], inp, W_(m, ln->W), W_(m, ln->b),
                       W_(m, ln->A), W_(m, ln->B), N);
    } else {
        if (m->p.precision == SA_TRAIN_BF16)
            sa_tr_linear_fwd_bf16(m->tp, out, inp, W_(m, ln->W), W_(m, ln->b), N, ln->C, ln->OC);
        else
            sa_tr_linear_fwd_tp(m->tp, out, inp, W_(m, ln->W), W_(m, ln->b), N, ln->C, ln->OC);
    }
}

static void lin_bwd(struct sa_train_model *m, int l, int j, float *dinp, const float *dout, const float *inp, int64_t N,
                    uint64_t seed) {
    const struct tr_lin *ln = &m->layers[l].lin[j];
    if (ln->A >= 0) {
        struct sa_tr_lora L = lora_of(m, l, j, seed);
        sa_tr_lora_bwd(&L, dinp, G_(m, ln->A), G_(m, ln->B), m->lora_dh, L.dropout > 0 ? m->lora_dxd : NULL, dout, inp,
                       m->layers[l].lora_xd[j], m->layers[l].lora_h[j], W_(m, ln->W), W_(m, ln->A), W_(m, ln->B), N);
    } else {
        if (m->p.precision == SA_TRAIN_BF16)
            sa_tr_linear_bwd_bf16(m->tp, dinp, G_(m, ln->W), G_(m, ln->b), dout, inp, W_(m, ln->W), N, ln->C, ln->OC);
        else
            sa_tr_linear_bwd_tp(m->tp, dinp, G_(m, ln->W), G_(m, ln->b), dout, inp, W_(m, ln->W), N, ln->C, ln->OC);
    }
}

static void zero(const struct sa_train_model *m, float *p, int64_t n) { sa_tr_scale_tp(m->tp, p, n, 0.0f); }

static struct sa_tr_attn attn_of(const struct sa_train_model *m, int l, int64_t B, int64_t T) {
    const struct sa_model_config *c = &m->cfg;
    struct sa_tr_attn a = {B, T, c->n_head, c->n_head_kv, c->head_dim, m->layers[l].sliding ? c->sliding_window : 0,
                           m->attn_scale, NULL, m->attn_scratch, m->p.precision == SA_TRAIN_BF16};
    return a;
}

static void layer_fwd(struct sa_train_model *m, int l, int64_t B, int64_t T, uint64_t seed) {
    const struct sa_model_config *c = &m->cfg;
    struct tr_layer *ly = &m->layers[l];
    int64_t N = B * T, C = c->n_embd, H = c->n_head, KV = c->n_head_kv, D = c->head_dim, F = c->n_ff;
    bool p1 = c->norm_plus_one, post = sa_arch_has(c->arch, SA_ARCH_F_POST_NORMS);
    float eps = c->rms_eps, *x = m->x[l], *xo = m->x[l + 1];
    const float *invf = ly->sliding ? m->inv_freq_local : m->inv_freq_global;
    sa_tr_rmsnorm_fwd_tp(m->tp, ly->xn1, ly->rstd1, x, W_(m, ly->attn_norm), N, C, eps, p1);
    lin_fwd(m, l, TR_LIN_Q, c->qk_norm ? ly->q_pre : ly->q, ly->xn1, N, seed);
    lin_fwd(m, l, TR_LIN_K, c->qk_norm ? ly->k_pre : ly->k, ly->xn1, N, seed);
    lin_fwd(m, l, TR_LIN_V, ly->v, ly->xn1, N, seed);
    if (c->qk_norm) {
        sa_tr_rmsnorm_fwd_tp(m->tp, ly->q, ly->q_rstd, ly->q_pre, W_(m, ly->q_norm), N * H, D, eps, p1);
        sa_tr_rmsnorm_fwd_tp(m->tp, ly->k, ly->k_rstd, ly->k_pre, W_(m, ly->k_norm), N * KV, D, eps, p1);
    }
    sa_tr_rope_fwd_tp(m->tp, ly->q, ly->q, m->pos, invf, N, H, D, D, SA_ROPE_NEOX);
    sa_tr_rope_fwd_tp(m->tp, ly->k, ly->k, m->pos, invf, N, KV, D, D, SA_ROPE_NEOX);
    struct sa_tr_attn a = attn_of(m, l, B, T);
    sa_tr_attention_fwd(m->tp, &a, ly->att, ly->lse, ly->q, ly->k, ly->v);
    if (post) {
        lin_fwd(m, l, TR_LIN_O, ly->o_raw, ly->att, N, seed);
        sa_tr_rmsnorm_fwd_tp(m->tp, m->tmp, ly->o_rstd, ly->o_raw, W_(m, ly->post_attn_norm), N, C, eps, p1);
    } else {
        lin_fwd(m, l, TR_LIN_O, m->tmp, ly->att, N, seed);
    }
    sa_tr_residual_fwd_tp(m->tp, ly->x_mid, x, m->tmp, N * C);
    sa_tr_rmsnorm_fwd_tp(m->tp, ly->xn2, ly->rstd2, ly->x_mid, W_(m, ly->ffn_norm), N, C, eps, p1);
    lin_fwd(m, l, TR_LIN_GATE, ly->gate, ly->xn2, N, seed);
    lin_fwd(m, l, TR_LIN_UP, ly->up, ly->xn2, N, seed);
    sa_tr_glu_fwd_tp(m->tp, m->act, ly->gate, ly->up, N * F, c->gelu_mlp ? SA_TR_GLU_GEGLU : SA_TR_GLU_SWIGLU);
    if (post) {
        lin_fwd(m, l, TR_LIN_DOWN, ly->d_raw, m->act, N, seed);
        sa_tr_rmsnorm_fwd_tp(m->tp, m->tmp, ly->d_rstd, ly->d_raw, W_(m, ly->post_ffw_norm), N, C, eps, p1);
    } else {
        lin_fwd(m, l, TR_LIN_DOWN, m->tmp, m->act, N, seed);
    }
    sa_tr_residual_fwd_tp(m->tp, xo, ly->x_mid, m->tmp, N * C);
}

/* m->dres holds dL/dx[l+1] on entry and dL/dx[l] on return. */
static void layer_bwd(struct sa_train_model *m, int l, int64_t B, int64_t T, uint64_t seed) {
    const struct sa_model_config *c = &m->cfg;
    struct tr_layer *ly = &m->layers[l];
    int64_t N = B * T, C = c->n_embd, H = c->n_head, KV = c->n_head_kv, D = c->head_dim, F = c->n_ff;
    bool p1 = c->norm_plus_one, post = sa_arch_has(c->arch, SA_ARCH_F_POST_NORMS);
    const float *invf = ly->sliding ? m->inv_freq_local : m->inv_freq_global;
    enum sa_tr_glu glu = c->gelu_mlp ? SA_TR_GLU_GEGLU : SA_TR_GLU_SWIGLU;
    const float *dd = m->dres;
    /* MLP */
    if (post) {
        zero(m, m->dtmp, N * C);
        sa_tr_rmsnorm_bwd_tp(m->tp, m->dtmp, G_(m, ly->post_ffw_norm), m->dres, ly->d_raw, W_(m, ly->post_ffw_norm),
                             ly->d_rstd, N, C, p1);
        dd = m->dtmp;
    }
    sa_tr_glu_fwd_tp(m->tp, m->act, ly->gate, ly->up, N * F, glu); /* recomputed rather than stored */
    zero(m, m->dact, N * F);
    lin_bwd(m, l, TR_LIN_DOWN, m->dact, dd, m->act, N, seed);
    zero(m, m->dgate, N * F);
    zero(m, m->dup, N * F);
    sa_tr_glu_bwd_tp(m->tp, m->dgate, m->dup, m->dact, ly->gate, ly->up, N * F, glu);
    zero(m, m->dxn, N * C);
    lin_bwd(m, l, TR_LIN_GATE, m->dxn, m->dgate, ly->xn2, N, seed);
    lin_bwd(m, l, TR_LIN_UP, m->dxn, m->dup, ly->xn2, N, seed);
    sa_tr_rmsnorm_bwd_tp(m->tp, m->dres, G_(m, ly->ffn_norm), m->dxn, ly->x_mid, W_(m, ly->ffn_norm), ly->rstd2, N, C,
                         p1);
    /* attention */
    dd = m->dres;
    if (post) {
        zero(m, m->dtmp, N * C);
        sa_tr_rmsnorm_bwd_tp(m->tp, m->dtmp, G_(m, ly->post_attn_norm), m->dres, ly->o_raw, W_(m, ly->post_attn_norm),
                             ly->o_rstd, N, C, p1);
        dd = m->dtmp;
    }
    zero(m, m->datt, N * H * D);
    lin_bwd(m, l, TR_LIN_O, m->datt, dd, ly->att, N, seed);
    zero(m, m->dq, N * H * D);
    zero(m, m->dk, N * KV * D);
    zero(m, m->dv, N * KV * D);
    struct sa_tr_attn a = attn_of(m, l, B, T);
    sa_tr_attention_bwd(m->tp, &a, m->dq, m->dk, m->dv, m->datt, ly->att, ly->lse, ly->q, ly->k, ly->v);
    zero(m, m->dq2, N * H * D);
    zero(m, m->dk2, N * KV * D);
    sa_tr_rope_bwd_tp(m->tp, m->dq2, m->dq, m->pos, invf, N, H, D, D, SA_ROPE_NEOX);
    sa_tr_rope_bwd_tp(m->tp, m->dk2, m->dk, m->pos, invf, N, KV, D, D, SA_ROPE_NEOX);
    float *dqf = m->dq2, *dkf = m->dk2;
    if (c->qk_norm) {
        zero(m, m->dq, N * H * D);
        zero(m, m->dk, N * KV * D);
        sa_tr_rmsnorm_bwd_tp(m->tp, m->dq, G_(m, ly->q_norm), m->dq2, ly->q_pre, W_(m, ly->q_norm), ly->q_rstd, N * H,
                             D, p1);
        sa_tr_rmsnorm_bwd_tp(m->tp, m->dk, G_(m, ly->k_norm), m->dk2, ly->k_pre, W_(m, ly->k_norm), ly->k_rstd, N * KV,
                             D, p1);
        dqf = m->dq;
        dkf = m->dk;
    }
    zero(m, m->dxn, N * C);
    lin_bwd(m, l, TR_LIN_Q, m->dxn, dqf, ly->xn1, N, seed);
    lin_bwd(m, l, TR_LIN_K, m->dxn, dkf, ly->xn1, N, seed);
    lin_bwd(m, l, TR_LIN_V, m->dxn, m->dv, ly->xn1, N, seed);
    sa_tr_rmsnorm_bwd_tp(m->tp, m->dres, G_(m, ly->attn_norm), m->dxn, m->x[l], W_(m, ly->attn_norm), ly->rstd1, N, C,
                         p1);
}

/* LM head and loss over the rows with a target, in chunks; with grad, dL/dxn_f into m->dxn.
 * row_w (n_rows, may be NULL: 1) weighs each target row's cross-entropy; row_loss (n_rows,
 * may be NULL) receives each row's cross-entropy. */
static enum sa_status head_loss(struct sa_train_model *m, int64_t n_rows, float denom, bool grad, const float *row_w,
                                float *row_loss, float *loss) {
    const struct sa_model_config *c = &m->cfg;
    int64_t C = c->n_embd, V = c->n_vocab, R = m->chunk_rows;
    const float *Wout = W_(m, m->lm_head);
    float *dWout = G_(m, m->lm_head);
    bool bf16 = m->p.precision == SA_TRAIN_BF16;
    /* bf16 on AVX512-BF16: pack W once for all the chunks */
    bool pk = bf16 && n_rows > R && sa_tr_gemm_bf16_packed_bytes(C, V) > 0;
    if (pk) {
        size_t bf = sa_tr_gemm_bf16_packed_bytes(C, V), bb = sa_tr_gemm_bf16_packed_bytes(V, C);
        if (!m->head_pk_fwd || !m->head_pk_bwd || m->head_pk_bytes[0] < bf || m->head_pk_bytes[1] < bb) {
            free(m->head_pk_fwd);
            free(m->head_pk_bwd);
            m->head_pk_fwd = aligned_alloc(64, (bf + 63) / 64 * 64);
            m->head_pk_bwd = aligned_alloc(64, (bb + 63) / 64 * 64);
            m->head_pk_bytes[0] = m->head_pk_fwd ? bf : 0;
            m->head_pk_bytes[1] = m->head_pk_bwd ? bb : 0;
        }
        pk = m->head_pk_fwd && m->head_pk_bwd; /* out of memory: pack on the fly (same results) */
    }
    if (pk) {
        sa_tr_gemm_bf16_pack(m->tp, true, C, V, Wout, C, m->head_pk_fwd);
        if (grad) sa_tr_gemm_bf16_pack(m->tp, false, V, C, Wout, C, m->head_pk_bwd);
    }
    double total = 0;
    for (int64_t r0 = 0; r0 < n_rows; r0 += R) {
        int64_t nr = SA_MIN(R, n_rows - r0);
        for (int64_t i = 0; i < nr; i++) memcpy(m->xc + i * C, m->xn_f + (int64_t)m->rows[r0 + i] * C, C * sizeof(float));
        if (pk) sa_tr_gemm_bf16_prepacked(m->tp, false, nr, V, C, 1.0f, m->xc, C, m->head_pk_fwd, 0.0f, m->logits, V);
        else if (bf16) sa_tr_linear_fwd_bf16(m->tp, m->logits, m->xc, Wout, NULL, nr, C, V);
        else sa_tr_linear_fwd_tp(m->tp, m->logits, m->xc, Wout, NULL, nr, C, V);
        float part;
        enum sa_status s = sa_tr_cross_entropy(m->tp, m->logits, m->losses, m->tg + r0, row_w ? row_w + r0 : NULL, nr,
                                               V, denom, grad, &part);
        if (s) return s;
        total += part;
        if (row_loss) memcpy(row_loss + r0, m->losses, (size_t)nr * sizeof(float));
        if (!grad) continue;
        zero(m, m->dxc, nr * C);
        if (pk) {
            /* dxc (nr, C) += dlogits (nr, V) @ W (V, C);  dW (V, C) += dlogits^T @ xc */
            sa_tr_gemm_bf16_prepacked(m->tp, false, nr, C, V, 1.0f, m->logits, V, m->head_pk_bwd, 1.0f, m->dxc, C);
            if (dWout) sa_tr_gemm_bf16(m->tp, true, false, V, C, nr, 1.0f, m->logits, V, m->xc, C, 1.0f, dWout, C);
        } else if (bf16)
            sa_tr_linear_bwd_bf16(m->tp, m->dxc, dWout, NULL, m->logits, m->xc, Wout, nr, C, V);
        else sa_tr_linear_bwd_tp(m->tp, m->dxc, dWout, NULL, m->logits, m->xc, Wout, nr, C, V);
        for (int64_t i = 0; i < nr; i++) {
            float *d = m->dxn + (int64_t)m->rows[r0 + i] * C;
            const float *s2 = m->dxc + i * C;
            for (int64_t k = 0; k < C; k++) d[k] += s2[k];
        }
    }
    *loss = (float)total;
    return SA_STATUS_OK;
}

/* Checks (B, T) and the targets, lists the target rows (m->rows, m->tg, *n_rows) and runs the
 * forward up to the final norm (m->xn_f). */
static enum sa_status forward(struct sa_train_model *m, const int32_t *tokens, const int32_t *targets, int64_t B,
                              int64_t T, uint64_t dropout_seed, int64_t *n_rows_out) {
    const struct sa_model_config *c = &m->cfg;
    if (!m->arena || B <= 0 || T <= 0 || B > m->B_max || T > m->T_max || B * T > m->B_max * m->T_max)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: batch %lld x %lld exceeds the reserved %lld x %lld", (long long)B,
                        (long long)T, (long long)m->B_max, (long long)m->T_max);
    int64_t N = B * T, C = c->n_embd, n_rows = 0;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] >= c->n_vocab)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "training: target %d at row %lld is outside the vocabulary (%d)",
                            targets[i], (long long)i, c->n_vocab);
        if (targets[i] < 0) continue;
        m->rows[n_rows] = (int32_t)i;
        m->tg[n_rows++] = targets[i];
    }
    *n_rows_out = n_rows;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) m->pos[b * T + t] = (int32_t)t;
    enum sa_status s = sa_tr_embedding_fwd(m->x[0], tokens, W_(m, m->embd), N, C, c->n_vocab);
    if (s) return s;
    if (c->embd_scale) sa_tr_scale_tp(m->tp, m->x[0], N * C, m->embd_scale);
    for (int l = 0; l < c->n_layer; l++) layer_fwd(m, l, B, T, dropout_seed);
    sa_tr_rmsnorm_fwd_tp(m->tp, m->xn_f, m->rstd_f, m->x[c->n_layer], W_(m, m->out_norm), N, C, c->rms_eps,
                         c->norm_plus_one);
    return SA_STATUS_OK;
}

/* The backward from dL/dxn_f (m->dxn) to every gradient. */
static void backward(struct sa_train_model *m, const int32_t *tokens, int64_t B, int64_t T, uint64_t dropout_seed) {
    const struct sa_model_config *c = &m->cfg;
    int64_t N = B * T, C = c->n_embd;
    zero(m, m->dres, N * C);
    sa_tr_rmsnorm_bwd_tp(m->tp, m->dres, G_(m, m->out_norm), m->dxn, m->x[c->n_layer], W_(m, m->out_norm), m->rstd_f, N,
                         C, c->norm_plus_one);
    for (int l = c->n_layer - 1; l >= 0; l--) layer_bwd(m, l, B, T, dropout_seed);
    float *dE = G_(m, m->embd);
    if (dE) {
        if (c->embd_scale) sa_tr_scale_tp(m->tp, m->dres, N * C, m->embd_scale);
        sa_tr_embedding_bwd_tp(m->tp, dE, m->dres, tokens, N, C);
    }
}

static enum sa_status no_grad_without_adapters(const struct sa_train_model *m, bool grad) {
    if (grad && m->adapters_off && m->p.lora_rank > 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: no gradient with the LoRA adapters switched off");
    return SA_STATUS_OK;
}

enum sa_status sa_train_model_step_batch(struct sa_train_model *m, const int32_t *tokens, const int32_t *targets,
                                         int64_t B, int64_t T, float denom, bool grad, uint64_t dropout_seed,
                                         float *loss) {
    return sa_train_model_step_batch_weighted(m, tokens, targets, NULL, B, T, denom, grad, dropout_seed, loss);
}

enum sa_status sa_train_model_step_batch_weighted(struct sa_train_model *m, const int32_t *tokens,
                                                  const int32_t *targets, const float *weights, int64_t B, int64_t T,
                                                  float denom, bool grad, uint64_t dropout_seed, float *loss) {
    *loss = 0;
    int64_t n_rows;
    enum sa_status s = no_grad_without_adapters(m, grad);
    if (!s) s = forward(m, tokens, targets, B, T, dropout_seed, &n_rows);
    if (s) return s;
    double wsum = (double)n_rows;
    if (weights) {
        wsum = 0;
        for (int64_t i = 0; i < n_rows; i++) {
            float w = weights[m->rows[i]];
            if (!(w >= 0 && isfinite(w)))
                return sa_error(SA_STATUS_BAD_ARGUMENT, "training: weight %g at row %d is not a finite number >= 0",
                                (double)w, m->rows[i]);
            m->row_w[i] = w;
            wsum += w;
        }
    }
    if (wsum <= 0 && denom <= 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: the batch has no target token%s", weights ? " of weight > 0" : "");
    if (denom <= 0) denom = (float)wsum;
    if (grad) zero(m, m->dxn, B * T * m->cfg.n_embd);
    if ((s = head_loss(m, n_rows, denom, grad, weights ? m->row_w : NULL, NULL, loss))) return s;
    if (grad) backward(m, tokens, B, T, dropout_seed);
    return SA_STATUS_OK;
}

/* ---- DPO ---- */

void sa_train_model_set_adapters(struct sa_train_model *m, bool on) { m->adapters_off = !on; }

/* logp[b] = -(sum of the cross-entropies of sequence b's target rows), from m->row_loss. */
static void seq_sums(const struct sa_train_model *m, int64_t n_rows, int64_t B, int64_t T, double *logp) {
    for (int64_t b = 0; b < B; b++) logp[b] = 0;
    for (int64_t i = 0; i < n_rows; i++) logp[m->rows[i] / T] -= m->row_loss[i];
}

enum sa_status sa_train_model_seq_logp(struct sa_train_model *m, const int32_t *tokens, const int32_t *targets,
                                       int64_t B, int64_t T, uint64_t dropout_seed, double *logp) {
    int64_t n_rows;
    float loss;
    enum sa_status s = forward(m, tokens, targets, B, T, dropout_seed, &n_rows);
    if (!s && n_rows) s = head_loss(m, n_rows, 1.0f, false, NULL, m->row_loss, &loss);
    if (s) return s;
    seq_sums(m, n_rows, B, T, logp);
    return SA_STATUS_OK;
}

/* -log sigmoid(x), stable for any x */
static double neg_log_sigmoid(double x) { return x >= 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

enum sa_status sa_train_model_dpo_step(struct sa_train_model *m, const int32_t *tokens, const int32_t *targets,
                                       int64_t B, int64_t T, const double *ref_logp, float beta, float denom, bool grad,
                                       uint64_t dropout_seed, struct sa_train_dpo_stats *st) {
    if (st) memset(st, 0, sizeof *st);
    if (B <= 0 || B % 2) return sa_error(SA_STATUS_BAD_ARGUMENT, "DPO: %lld sequences is not a whole number of pairs", (long long)B);
    if (!(beta > 0)) return sa_error(SA_STATUS_BAD_ARGUMENT, "DPO: beta must be positive (%g)", (double)beta);
    int64_t P = B / 2, n_rows;
    enum sa_status s = no_grad_without_adapters(m, grad);
    if (!s) s = forward(m, tokens, targets, B, T, dropout_seed, &n_rows);
    if (s) return s;
    /* every response has a target row */
    bool *has = calloc((size_t)B, sizeof *has);
    double *logp = malloc((size_t)B * sizeof *logp), *dlogp = malloc((size_t)B * sizeof *dlogp);
    if (!has || !logp || !dlogp) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n_rows; i++) has[m->rows[i] / T] = true;
    for (int64_t b = 0; b < B; b++)
        if (!has[b]) {
            s = sa_error(SA_STATUS_BAD_ARGUMENT, "DPO: sequence %lld (the %s response of pair %lld) has no target token",
                         (long long)b, b % 2 ? "rejected" : "chosen", (long long)(b / 2));
            goto out;
        }
    float l0;
    if ((s = head_loss(m, n_rows, 1.0f, false, NULL, m->row_loss, &l0))) goto out;
    seq_sums(m, n_rows, B, T, logp);
    if (denom <= 0) denom = (float)P;
    double loss = 0, rc = 0, rr = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < P; i++) {
        double c = beta * (logp[2 * i] - ref_logp[2 * i]), r = beta * (logp[2 * i + 1] - ref_logp[2 * i + 1]);
        loss += neg_log_sigmoid(c - r);
        rc += c;
        rr += r;
        correct += c > r;
        /* dL_i/dlogp(chosen) = -beta sigmoid(-(c - r)); dL_i/dlogp(rejected) = +beta sigmoid(-(c - r)) */
        double g = beta * sigmoid(r - c) / denom;
        dlogp[2 * i] = -g;
        dlogp[2 * i + 1] = g;
    }
    if (st) {
        st->loss = loss / denom;
        st->chosen_reward = rc;
        st->rejected_reward = rr;
        st->n_correct = correct;
        st->n_pairs = P;
    }
    if (!grad) goto out;
    /* logp(b) = -sum of its rows' cross-entropies: the gradient is the cross-entropy's,
     * weighted per row by -dL/dlogp of its sequence */
    for (int64_t i = 0; i < n_rows; i++) m->row_w[i] = (float)-dlogp[m->rows[i] / T];
    zero(m, m->dxn, B * T * m->cfg.n_embd);
    float l1;
    if ((s = head_loss(m, n_rows, 1.0f, true, m->row_w, NULL, &l1))) goto out;
    backward(m, tokens, B, T, dropout_seed);
out:
    free(has);
    free(logp);
    free(dlogp);
    return s;
}

/* ---- optimizer ---- */

static int collect_params(const struct sa_train_model *m, struct sa_param_ref *refs) {
    int n = 0;
    for (int32_t i = 0; i < m->n_t; i++) {
        if (!m->t[i].grad) continue;
        refs[n].data = m->t[i].data;
        refs[n].grad = m->t[i].grad;
        refs[n].n = m->t[i].n;
        refs[n].decay = m->t[i].decay;
        n++;
    }
    return n;
}

enum sa_status sa_train_model_adamw_step(struct sa_train_model *m, const struct sa_train_optim *o, float lr,
                                         double *grad_norm) {
    enum sa_status s;
    if (!m->opt_ready) {
        if ((s = sa_adamw_init(&m->opt, m->n_grads))) return s;
        m->opt_ready = true;
    }
    struct sa_param_ref *refs = malloc((size_t)m->n_t * sizeof *refs);
    if (!refs) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    int n = collect_params(m, refs);
    double norm = o->max_grad_norm > 0 ? sa_grad_clip_tp(m->tp, refs, n, o->max_grad_norm)
                                       : sa_grad_global_norm_tp(m->tp, refs, n);
    if (grad_norm) *grad_norm = norm;
    struct sa_adamw_cfg cfg = {lr, o->beta1, o->beta2, o->eps, o->weight_decay};
    s = sa_adamw_step_tp(m->tp, &m->opt, &cfg, lr, refs, n);
    free(refs);
    return s;
}

/* ---- state files ----
 * params.bin: "SATRPAR1" | u32 version 1 | u32 n_tensors | i64 n_floats |
 *             n_tensors x (u32 name_len | name | i64 n) | f32 data of each tensor in order */

static enum sa_status state_paths(const char *dir, char *pp, char *ap, size_t n) {
    if (snprintf(pp, n, "%s/params.bin", dir) >= (int)n || snprintf(ap, n, "%s/adamw.bin", dir) >= (int)n)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "checkpoint path too long");
    return SA_STATUS_OK;
}

enum sa_status sa_train_model_save_state(const struct sa_train_model *m, const char *dir) {
    char pp[4096], ap[4096];
    enum sa_status s = state_paths(dir, pp, ap, sizeof pp);
    if (s) return s;
    struct sa_buf b;
    sa_buf_init(&b, 0);
    uint32_t ver = 1, nt = 0;
    for (int32_t i = 0; i < m->n_t; i++) nt += m->t[i].grad != NULL;
    int64_t nf = m->n_grads;
    s = sa_buf_append(&b, "SATRPAR1", 8);
    if (!s) s = sa_buf_append(&b, &ver, 4);
    if (!s) s = sa_buf_append(&b, &nt, 4);
    if (!s) s = sa_buf_append(&b, &nf, 8);
    for (int32_t i = 0; i < m->n_t && !s; i++) {
        if (!m->t[i].grad) continue;
        uint32_t nl = (uint32_t)strlen(m->t[i].name);
        s = sa_buf_append(&b, &nl, 4);
        if (!s) s = sa_buf_append(&b, m->t[i].name, nl);
        if (!s) s = sa_buf_append(&b, &m->t[i].n, 8);
    }
    for (int32_t i = 0; i < m->n_t && !s; i++)
        if (m->t[i].grad) s = sa_buf_append(&b, m->t[i].data, (size_t)m->t[i].n * sizeof(float));
    if (!s) s = sa_write_file_atomic(pp, b.data, b.len);
    sa_buf_free(&b);
    if (!s && m->opt_ready) s = sa_adamw_save(&m->opt, ap);
    return s;
}

static enum sa_status load_state(struct sa_train_model *m, const char *dir, bool with_optimizer) {
    char pp[4096], ap[4096];
    enum sa_status s = state_paths(dir, pp, ap, sizeof pp);
    if (s) return s;
    struct sa_file_map f;
    if ((s = sa_file_map_open(pp, &f))) return s;
    const uint8_t *p = f.data, *end = f.data + f.size;
    uint32_t ver, nt, want_nt = 0;
    int64_t nf;
    for (int32_t i = 0; i < m->n_t; i++) want_nt += m->t[i].grad != NULL;
    if (f.size < 24 || memcmp(p, "SATRPAR1", 8)) {
        s = sa_error(SA_STATUS_BAD_FILE, "%s: not a training state file", pp);
        goto done;
    }
    memcpy(&ver, p + 8, 4);
    memcpy(&nt, p + 12, 4);
    memcpy(&nf, p + 16, 8);
    p += 24;
    if (ver != 1 || nt != want_nt || nf != m->n_grads) {
        s = sa_error(SA_STATUS_BAD_FILE, "%s: holds %u tensors / %lld values, this model trains %u / %lld (other options?)",
                     pp, nt, (long long)nf, want_nt, (long long)m->n_grads);
        goto done;
    }
    for (int32_t i = 0; i < m->n_t; i++) {
        if (!m->t[i].grad) continue;
        uint32_t nl;
        int64_t n;
        if (end - p < 4) goto trunc;
        memcpy(&nl, p, 4);
        p += 4;
        if ((uint64_t)(end - p) < (uint64_t)nl + 8) goto trunc;
        if (nl != strlen(m->t[i].name) || memcmp(p, m->t[i].name, nl)) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: tensor %d is not '%s'", pp, i, m->t[i].name);
            goto done;
        }
        memcpy(&n, p + nl, 8);
        p += nl + 8;
        if (n != m->t[i].n) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' has %lld values, want %lld", pp, m->t[i].name, (long long)n,
                         (long long)m->t[i].n);
            goto done;
        }
    }
    if ((uint64_t)(end - p) != (uint64_t)nf * sizeof(float)) goto trunc;
    for (int32_t i = 0; i < m->n_t; i++) {
        if (!m->t[i].grad) continue;
        memcpy(m->t[i].data, p, (size_t)m->t[i].n * sizeof(float));
        p += (size_t)m->t[i].n * sizeof(float);
    }
    if (with_optimizer && sa_file_exists(ap)) {
        if (!m->opt_ready) {
            if ((s = sa_adamw_init(&m->opt, m->n_grads))) goto done;
            m->opt_ready = true;
        }
        s = sa_adamw_load(&m->opt, ap);
    }
    goto done;
trunc:
    s = sa_error(SA_STATUS_BAD_FILE, "%s: truncated or wrong size", pp);
done:
    sa_file_map_close(&f);
    return s;
}

enum sa_status sa_train_model_load_state(struct sa_train_model *m, const char *dir) {
    return load_state(m, dir, true);
}

enum sa_status sa_train_model_load_params(struct sa_train_model *m, const char *dir) {
    return load_state(m, dir, false);
}
