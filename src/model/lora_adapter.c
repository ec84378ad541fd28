/* lora_adapter.c: LoRA adapters at inference (sa/lora.h): loading and checking a GGUF LoRA
 * adapter in llama.cpp's format over a loaded model, and the adapter product added to a
 * forward pass's matrix products (forward.c). Format, as llama.cpp's convert_lora_to_gguf.py
 * writes it and llama-adapter.cpp reads it: general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha (f32), general.architecture = the base's; tensors
 * "<base tensor>.weight.lora_a" with ne [n_in, r] (torch A (r, n_in)) and ".lora_b" with
 * ne [r, n_out] (torch B (n_out, r)); scale = alpha / r (1 without alpha) times the user's
 * scale. Q/K rows of B are in llama.cpp's (GGUF) order, the engine's order for every base. */
#include "model/model_impl.h"

#include "core/core_impl.h"
#include "sa/gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sa_lora_params sa_lora_default_params(void) {
    struct sa_lora_params p = {.alpha = 0.0f};
    return p;
}

static const enum sa_tensor mod_tensor[SA_LORA_N_MOD] = {
    SA_TENSOR_ATTN_Q, SA_TENSOR_ATTN_K, SA_TENSOR_ATTN_V, SA_TENSOR_ATTN_OUT,
    SA_TENSOR_FFN_GATE, SA_TENSOR_FFN_UP, SA_TENSOR_FFN_DOWN,
};

enum sa_tensor sa_lora_module_tensor(int mod) {
    SA_ASSERT(mod >= 0 && mod < SA_LORA_N_MOD);
    return mod_tensor[mod];
}

static int tensor_mod(enum sa_tensor t) {
    for (int j = 0; j < SA_LORA_N_MOD; j++)
        if (mod_tensor[j] == t) return j;
    return -1;
}

/* One adapter tensor's name parsed: layer, module, which half (0: lora_a, 1: lora_b). */
struct lname {
    int il, mod, half;
};

/* Parses "<GGUF base tensor>.weight.lora_a|b" with the architecture table. false (and a
 * message) for any other name. */
static enum sa_status parse_name(enum sa_arch arch, const char *path, const char *name, struct lname *out) {
    size_t n = strlen(name);
    const char *sfx[2] = {".lora_a", ".lora_b"};
    int half = -1;
    for (int h = 0; h < 2; h++)
        if (n > 7 && !strcmp(name + n - 7, sfx[h])) half = h;
    char base[128];
    enum sa_tensor t;
    int il = -1;
    const char *suffix = NULL;
    if (half >= 0 && n - 7 < sizeof base) {
        memcpy(base, name, n - 7);
        base[n - 7] = 0;
        if (sa_arch_tensor_parse(arch, SA_NAMES_GGUF, base, &t, &il, &suffix) && !strcmp(suffix, ".weight") &&
            il >= 0 && tensor_mod(t) >= 0) {
            *out = (struct lname){il, tensor_mod(t), half};
            return SA_STATUS_OK;
        }
    }
    return sa_error(SA_STATUS_BAD_FILE,
                    "%s: tensor '%s' is not a LoRA matrix salign can apply (blk.N.<attn_q|attn_k|attn_v|attn_output|"
                    "ffn_gate|ffn_up|ffn_down>.weight.lora_a|lora_b)", path, name);
}

/* Checks the metadata and fills arch, name, alpha of *info. */
static enum sa_status read_meta(const struct sa_gguf *g, const char *path, struct sa_lora_info *info) {
    char *type = sa_gguf_get_string(g, "general.type");
    char *atype = sa_gguf_get_string(g, "adapter.type");
    char *arch = sa_gguf_get_string(g, "general.architecture");
    char *name = sa_gguf_get_string(g, "general.name");
    enum sa_status s = SA_STATUS_OK;
    if (!type || strcmp(type, "adapter"))
        s = sa_error(SA_STATUS_BAD_FILE, "%s: not an adapter (general.type is '%s', expected 'adapter'): load it as "
                                         "a model, or give a LoRA adapter GGUF", path, type ? type : "(none)");
    else if (!atype || strcmp(atype, "lora"))
        s = sa_error(SA_STATUS_BAD_FILE, "%s: adapter.type is '%s', expected 'lora'", path, atype ? atype : "(none)");
    else if (!arch || !*arch || strlen(arch) >= sizeof info->arch)
        s = sa_error(SA_STATUS_BAD_FILE, "%s: no general.architecture", path);
    if (!s) {
        snprintf(info->arch, sizeof info->arch, "%s", arch);
        snprintf(info->name, sizeof info->name, "%s", name ? name : "");
        info->alpha = 0.0f;
        if (sa_gguf_find_key(g, "adapter.lora.alpha") >= 0 && !sa_gguf_get_f32(g, "adapter.lora.alpha", &info->alpha))
            s = sa_error(SA_STATUS_BAD_FILE, "%s: adapter.lora.alpha is not a number", path);
        else if (!isfinite(info->alpha) || info->alpha < 0)
            s = sa_error(SA_STATUS_BAD_FILE, "%s: adapter.lora.alpha %g must be finite and >= 0", path,
                         (double)info->alpha);
    }
    free(type);
    free(atype);
    free(arch);
    free(name);
    return s;
}

/* Walks the tensors: names, pairing, 2-D shapes a [n_in, r], b [r, n_out] with the same r.
 * pairs: NULL, or (n_layer_max * SA_LORA_N_MOD * 2) tensor pointers filled per (layer, mod,
 * half); n_layer_max bounds the layer index (INT32_MAX without a model). */
static enum sa_status scan(const struct sa_gguf *g, const char *path, enum sa_arch arch, int32_t n_layer_max,
                           const struct sa_gguf_tensor **pairs, struct sa_lora_info *info) {
    const int64_t n = sa_gguf_n_tensors(g);
    if (n == 0) return sa_error(SA_STATUS_BAD_FILE, "%s: the adapter has no tensors", path);
    bool mixed = false;
    enum sa_dtype type0 = SA_DTYPE_COUNT;
    for (int64_t i = 0; i < n; i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        struct lname ln;
        enum sa_status s = parse_name(arch, path, t->name, &ln);
        if (s) return s;
        if (ln.il >= n_layer_max)
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s': layer %d, the model has %d", path, t->name, ln.il,
                            n_layer_max);
        if (t->n_dims != 2)
            return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' has %u dimensions, expected 2", path, t->name, t->n_dims);
        if (type0 == SA_DTYPE_COUNT) type0 = t->type;
        else if (t->type != type0) mixed = true;
        if (pairs) {
            const struct sa_gguf_tensor **slot = &pairs[((int64_t)ln.il * SA_LORA_N_MOD + ln.mod) * 2 + ln.half];
            if (*slot) return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' appears twice", path, t->name);
            *slot = t;
        }
    }
    /* pairing: every lora_a has its lora_b (found by name: the reader's table is by name) */
    for (int64_t i = 0; i < n; i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        size_t len = strlen(t->name);
        char other[160];
        snprintf(other, sizeof other, "%.*s%s", (int)(len - 1), t->name, t->name[len - 1] == 'a' ? "b" : "a");
        const struct sa_gguf_tensor *o = sa_gguf_find_tensor(g, other);
        if (!o) return sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' has no '%s'", path, t->name, other);
        if (t->name[len - 1] != 'a') continue;
        /* a: ne [n_in, r]; b: ne [r, n_out] */
        if (t->ne[1] != o->ne[0])
            return sa_error(SA_STATUS_BAD_FILE, "%s: '%s' has rank %lld but '%s' rank %lld (lora_a ne[1] must equal "
                                                "lora_b ne[0])", path, t->name, (long long)t->ne[1], other,
                            (long long)o->ne[0]);
        if (t->ne[1] < 1 || t->ne[1] > SA_LORA_MAX_RANK)
            return sa_error(SA_STATUS_BAD_FILE, "%s: '%s': rank %lld outside [1, %d]", path, t->name,
                            (long long)t->ne[1], SA_LORA_MAX_RANK);
        info->n_matrices++;
        if (t->ne[1] > info->rank) info->rank = (int32_t)t->ne[1];
        info->n_params += (uint64_t)(t->ne[0] * t->ne[1] + o->ne[0] * o->ne[1]);
        struct lname ln;
        SA_ASSERT(parse_name(arch, path, t->name, &ln) == SA_STATUS_OK);
        info->modules |= 1u << ln.mod;
    }
    snprintf(info->type, sizeof info->type, "%s", mixed ? "mixed" : sa_dtype_name(type0) ? sa_dtype_name(type0) : "?");
    return SA_STATUS_OK;
}

static enum sa_status open_adapter(const char *path, struct sa_gguf **g, struct sa_lora_info *info) {
    memset(info, 0, sizeof *info);
    if (!sa_file_exists(path)) return sa_error(SA_STATUS_NOT_FOUND, "%s: no such adapter file", path);
    enum sa_status s = sa_gguf_open(path, g);
    if (s) return sa_error_wrap(s, "LoRA adapter %s", path);
    if ((s = read_meta(*g, path, info))) {
        sa_gguf_free(*g);
        *g = NULL;
    }
    return s;
}

enum sa_status sa_lora_file_info(const char *path, struct sa_lora_info *out) {
    if (!path || !out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_lora_file_info: NULL argument");
    struct sa_gguf *g = NULL;
    enum sa_status s = open_adapter(path, &g, out);
    if (s) return s;
    enum sa_arch arch = SA_ARCH_UNKNOWN;
    if ((s = sa_arch_from_name(out->arch, &arch))) s = sa_error(SA_STATUS_UNSUPPORTED, "%s: %s", path, sa_last_error());
    if (!s) s = scan(g, path, arch, INT32_MAX, NULL, out);
    if (!s) {
        int64_t n = sa_gguf_n_tensors(g);
        int32_t top = -1;
        for (int64_t i = 0; i < n; i++) {
            struct lname ln;
            if (!parse_name(arch, path, sa_gguf_tensor(g, i)->name, &ln) && ln.il > top) top = ln.il;
        }
        /* layers with a matrix: count distinct indices */
        for (int32_t il = 0; il <= top; il++) {
            char nm[64];
            bool any = false;
            for (int j = 0; j < SA_LORA_N_MOD && !any; j++)
                any = sa_arch_tensor_name(arch, SA_NAMES_GGUF, mod_tensor[j], il, ".weight.lora_a", nm, sizeof nm) &&
                      sa_gguf_find_tensor(g, nm);
            out->n_layers += any;
        }
    }
    sa_gguf_free(g);
    return s;
}

/* n_in, n_out of module mod of layer il of the model */
static const struct sa_weight *model_weight(const struct sa_model *m, int il, int mod) {
    const struct sa_layer *ly = &m->layers[il];
    const struct sa_weight *w[SA_LORA_N_MOD] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
    return w[mod];
}

void sa_lora_free(struct sa_lora *l) {
    if (!l) return;
    free(l->data);
    free(l->mats);
    free(l);
}

enum sa_status sa_lora_load(const struct sa_model *model, const char *path, const struct sa_lora_params *params,
                            struct sa_lora **out) {
    if (out) *out = NULL;
    if (!model || !path || !out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_lora_load: NULL argument");
    struct sa_lora_params p = params ? *params : sa_lora_default_params();
    if (!isfinite(p.alpha) || p.alpha < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_lora_load: alpha %g must be finite and >= 0", (double)p.alpha);
    const struct sa_model_config *c = &model->cfg;
    struct sa_gguf *g = NULL;
    struct sa_lora_info info;
    enum sa_status s = open_adapter(path, &g, &info);
    if (s) return s;
    const struct sa_gguf_tensor **pairs = NULL;
    struct sa_lora *l = calloc(1, sizeof *l);
    if (!l) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (!s && strcmp(info.arch, c->arch_name))
        s = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: an adapter for architecture '%s', the model is '%s'", path, info.arch,
                     c->arch_name);
    const int64_t n_slots = (int64_t)c->n_layer * SA_LORA_N_MOD;
    if (!s && (!(pairs = calloc((size_t)n_slots * 2, sizeof *pairs)) || !(l->mats = calloc((size_t)n_slots, sizeof *l->mats))))
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (!s) s = scan(g, path, c->arch, c->n_layer, pairs, &info);
    /* shapes against the model: a [n_in, r], b [r, n_out] (llama-adapter.cpp's checks) */
    for (int64_t k = 0; k < n_slots && !s; k++) {
        const struct sa_gguf_tensor *a = pairs[2 * k], *b = pairs[2 * k + 1];
        if (!a) continue;
        const struct sa_weight *w = model_weight(model, (int)(k / SA_LORA_N_MOD), (int)(k % SA_LORA_N_MOD));
        if (a->ne[0] != w->n_in || b->ne[1] != w->n_out)
            s = sa_error(SA_STATUS_BAD_FILE, "%s: '%s' is [%lld, %lld] and '%s' [%lld, %lld]: the model's matrix is "
                                             "%lld inputs x %lld outputs (an adapter for another model?)", path, a->name,
                         (long long)a->ne[0], (long long)a->ne[1], b->name, (long long)b->ne[0], (long long)b->ne[1],
                         (long long)w->n_in, (long long)w->n_out);
    }
    if (!s && !(l->data = malloc((size_t)info.n_params * sizeof(float))))
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory (%llu adapter values)", (unsigned long long)info.n_params);
    if (!s && p.alpha > 0) info.alpha = p.alpha;
    float *dst = l ? l->data : NULL;
    int32_t layers_seen = -1;
    for (int64_t k = 0; k < n_slots && !s; k++) {
        const struct sa_gguf_tensor *ab[2] = {pairs[2 * k], pairs[2 * k + 1]};
        if (!ab[0]) continue;
        struct sa_lora_mat *mt = &l->mats[k];
        mt->r = (int32_t)ab[0]->ne[1];
        mt->scale = info.alpha > 0 ? info.alpha / (float)mt->r : 1.0f;
        for (int h = 0; h < 2 && !s; h++) {
            const int64_t ne = ab[h]->ne[0] * ab[h]->ne[1];
            if (sa_dequantize(ab[h]->type, ab[h]->data, dst, ne) != SA_STATUS_OK) {
                s = sa_error(SA_STATUS_UNSUPPORTED, "%s: tensor '%s': type %s cannot be read", path, ab[h]->name,
                             sa_dtype_name(ab[h]->type) ? sa_dtype_name(ab[h]->type) : "?");
                break;
            }
            for (int64_t e = 0; e < ne; e++)
                if (!isfinite(dst[e])) {
                    s = sa_error(SA_STATUS_BAD_FILE, "%s: tensor '%s' holds NaN or Inf (element %lld)", path,
                                 ab[h]->name, (long long)e);
                    break;
                }
            if (h == 0) mt->A = dst;
            else mt->B = dst;
            dst += ne;
        }
        if ((int32_t)(k / SA_LORA_N_MOD) != layers_seen) {
            layers_seen = (int32_t)(k / SA_LORA_N_MOD);
            info.n_layers++;
        }
    }
    free(pairs);
    sa_gguf_free(g);
    if (s) {
        sa_lora_free(l);
        return s;
    }
    l->model = model;
    l->info = info;
    *out = l;
    return SA_STATUS_OK;
}

const struct sa_model *sa_lora_model(const struct sa_lora *l) { return l ? l->model : NULL; }

void sa_lora_get_info(const struct sa_lora *l, struct sa_lora_info *out) {
    if (!out) return;
    if (!l) memset(out, 0, sizeof *out);
    else *out = l->info;
}

/* ---- the product in a forward pass ---- */

/* dot(a, b) over n: 8 partial sums in a fixed order (vectorizable, the same for every call) */
static float dot8(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++) acc[i & 7] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

struct apply_job {
    const struct sa_fwd_seq *seqs;
    int32_t n_seqs;
    int il, mod;
    const float *X; /* (T, n_in) */
    float *Y;       /* (T, n_out) */
    int64_t n_in, n_out;
};

/* y (n_out) += s * B (A x): h (r) = A x, then each output the dot of its row of B with h */
static void apply_row(const struct sa_lora_mat *mt, float s, const float *x, int64_t n_in, float *y, int64_t n_out) {
    float h[SA_LORA_MAX_RANK];
    for (int32_t k = 0; k < mt->r; k++) h[k] = dot8(mt->A + (int64_t)k * n_in, x, n_in);
    for (int64_t o = 0; o < n_out; o++) y[o] += s * dot8(mt->B + o * mt->r, h, mt->r);
}

static void apply_task(void *vctx, int ith, int nth) {
    const struct apply_job *j = vctx;
    int64_t r0 = 0;
    for (int32_t i = 0; i < j->n_seqs; i++) {
        const struct sa_fwd_seq *sq = &j->seqs[i];
        const struct sa_lora *l = sq->ctx->params.lora;
        const struct sa_lora_mat *mt = l ? &l->mats[(int64_t)j->il * SA_LORA_N_MOD + j->mod] : NULL;
        if (mt && mt->A && !sq->cancelled) {
            const float s = sq->ctx->params.lora_scale * mt->scale;
            for (int64_t t = 0; t < sq->T; t++)
                if ((r0 + t) % nth == ith) apply_row(mt, s, j->X + (r0 + t) * j->n_in, j->n_in, j->Y + (r0 + t) * j->n_out, j->n_out);
        }
        r0 += sq->T;
    }
}

void sa_lora_apply(struct sa_fwd_ws *ws, const struct sa_fwd_seq *seqs, int32_t n_seqs, int il, int mod,
                   const float *X, int64_t n_in, float *Y, int64_t n_out) {
    bool any = false;
    for (int32_t i = 0; i < n_seqs && !any; i++) {
        const struct sa_lora *l = seqs[i].ctx->params.lora;
        any = l && l->mats[(int64_t)il * SA_LORA_N_MOD + mod].A;
    }
    if (!any) return;
    struct apply_job j = {seqs, n_seqs, il, mod, X, Y, n_in, n_out};
    int64_t rows = 0;
    for (int32_t i = 0; i < n_seqs; i++) rows += seqs[i].T;
    /* one row (decode): on this thread, sparing 7 pool runs per layer; a row's bits are the
     * same either way (rows are never split) */
    if (rows == 1) apply_task(&j, 0, 1);
    else sa_threadpool_run(ws->tp, apply_task, &j);
}
