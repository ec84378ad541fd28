/* context.c: inference contexts: one arena sized at init for the KV cache and the
 * activations of n_batch tokens, decode in chunks of n_batch, rollback (truncate) and
 * prompt evaluation with reuse of the longest common prefix of the cache. */
#include "model/context_impl.h"
#include "model/model_impl.h"

#include "core/core_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sa_ctx_params sa_ctx_default_params(void) {
    struct sa_ctx_params p = {
        .n_ctx = 0, .n_batch = 0, .n_threads = 0, .abort_cb = NULL, .abort_user = NULL, .batch_invariant = false,
        .sched = NULL, .kv_type = SA_DTYPE_F32, .lora = NULL, .lora_scale = 1.0f,
        .cvec = NULL, .cvec_scale = 1.0f, .hidden_cb = NULL, .hidden_user = NULL, .hidden_last_only = false,
    };
    return p;
}

/* Carves an arena: each piece 64-byte aligned. With base NULL it only measures. */
void *sa_carve(struct sa_carve *cv, uint64_t n_elems, uint64_t elem_size) {
    uint64_t bytes, end;
    cv->off = (cv->off + 63) & ~(uint64_t)63;
    if (!sa_mul_ok(n_elems, elem_size, &bytes) || !sa_add_ok(cv->off, bytes, &end)) {
        cv->overflow = true;
        return NULL;
    }
    void *p = cv->base ? cv->base + cv->off : NULL;
    cv->off = end;
    return p;
}

/* ws->n_rows, n_threads, att_stride, n_logit_rows and mm_scratch_bytes are set by the caller */
void sa_fwd_ws_layout(const struct sa_model *model, struct sa_fwd_ws *ws, struct sa_carve *cv) {
    const struct sa_model_config *c = &model->cfg;
    const uint64_t B = (uint64_t)ws->n_rows, E = (uint64_t)c->n_embd;
    const uint64_t nq = (uint64_t)c->n_head * (uint64_t)c->head_dim, nkv = (uint64_t)c->n_head_kv * (uint64_t)c->head_dim;
    const uint64_t F = (uint64_t)c->n_ff;
    ws->x = sa_carve(cv, B * E, sizeof(float));
    ws->xb = sa_carve(cv, B * E, sizeof(float));
    ws->xb2 = sa_carve(cv, B * E, sizeof(float));
    ws->q = sa_carve(cv, B * nq, sizeof(float));
    ws->k = sa_carve(cv, B * nkv, sizeof(float));
    ws->v = sa_carve(cv, B * nkv, sizeof(float));
    ws->att = sa_carve(cv, B * nq, sizeof(float));
    ws->hb = sa_carve(cv, B * F, sizeof(float));
    ws->hb2 = sa_carve(cv, B * F, sizeof(float));
    ws->tok = sa_carve(cv, B, sizeof(int32_t));
    ws->pos = sa_carve(cv, B, sizeof(int32_t));
    ws->att_scratch = sa_carve(cv, (uint64_t)ws->n_threads * (uint64_t)ws->att_stride, sizeof(float));
    ws->logits = ws->n_logit_rows > 0 ? sa_carve(cv, (uint64_t)ws->n_logit_rows * (uint64_t)c->n_vocab, sizeof(float)) : NULL;
    ws->mm_scratch = sa_carve(cv, ws->mm_scratch_bytes, 1);
    if (ws->mm_scratch_bytes == 0) ws->mm_scratch = NULL;
}

static void layout(struct sa_ctx *ctx, struct sa_carve *cv) {
    const struct sa_model_config *c = &ctx->model->cfg;
    const uint64_t N = (uint64_t)ctx->n_ctx;
    const uint64_t nkv = (uint64_t)c->n_head_kv * (uint64_t)c->head_dim, L = (uint64_t)c->n_layer;
    ctx->tokens = sa_carve(cv, N, sizeof(int32_t));
    ctx->k_cache = sa_carve(cv, L * N * nkv, ctx->kv_esz);
    ctx->v_cache = sa_carve(cv, L * N * nkv, ctx->kv_esz);
    ctx->logits = sa_carve(cv, (uint64_t)c->n_vocab, sizeof(float));
    sa_fwd_ws_layout(ctx->model, &ctx->ws, cv);
}

static size_t scratch_for(const struct sa_weight *w, int64_t T, size_t cur) {
    size_t s = sa_matmul_scratch_bytes(w->type, w->n_in, T);
    return s > cur ? s : cur;
}

size_t sa_fwd_scratch_bytes(const struct sa_model *model, int32_t n_rows) {
    size_t sc = 0;
    sc = scratch_for(&model->tok_embd, 1, sc);
    sc = scratch_for(&model->output, n_rows, sc);
    for (int il = 0; il < model->cfg.n_layer; il++) {
        const struct sa_layer *ly = &model->layers[il];
        const struct sa_weight *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (size_t i = 0; i < SA_ARRAY_LEN(ws); i++) sc = scratch_for(ws[i], n_rows, sc);
    }
    return sc;
}

enum sa_status sa_ctx_init(const struct sa_model *model, const struct sa_ctx_params *params, struct sa_ctx **out) {
    *out = NULL;
    if (!model) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_init: model is NULL");
    struct sa_ctx_params p = params ? *params : sa_ctx_default_params();
    const struct sa_model_config *c = &model->cfg;
    if (p.n_ctx < 0 || p.n_batch < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_init: n_ctx (%d) and n_batch (%d) must be >= 0", p.n_ctx, p.n_batch);
    if (p.kv_type != SA_DTYPE_F32 && p.kv_type != SA_DTYPE_F16)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_init: kv_type %s: the KV cache is f32 or f16",
                        sa_dtype_name(p.kv_type) ? sa_dtype_name(p.kv_type) : "?");
    if (p.lora && p.lora->model != model)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_init: the LoRA adapter was loaded over another model");
    if (p.lora && !isfinite(p.lora_scale))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_init: lora_scale must be finite");
    enum sa_status sc = sa_steer_check_params(model, &p);
    if (sc) return sc;
    if (p.n_ctx == 0) p.n_ctx = c->n_ctx_train > 0 && c->n_ctx_train < 4096 ? c->n_ctx_train : 4096;
    if (p.n_batch == 0) p.n_batch = p.n_ctx < 256 ? p.n_ctx : 256;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    struct sa_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    ctx->model = model;
    ctx->params = p;
    ctx->n_ctx = p.n_ctx;
    ctx->n_batch = p.n_batch;
    ctx->kv_esz = p.kv_type == SA_DTYPE_F16 ? 2 : 4;
    /* a context with a scheduler computes in the scheduler's batches: its own workspace
     * is one row and one thread (never used) */
    if (p.sched) ctx->n_batch = 1;
    enum sa_status s = sa_threadpool_init(p.sched ? 1 : p.n_threads, &ctx->ws.tp);
    if (s) {
        free(ctx);
        return s;
    }
    ctx->ws.n_threads = sa_threadpool_n_threads(ctx->ws.tp);
    ctx->ws.n_rows = ctx->n_batch;
    ctx->ws.att_stride = ctx->n_ctx;
    ctx->ws.mm_scratch_bytes = sa_fwd_scratch_bytes(model, ctx->n_batch);
    struct sa_carve cv = {0};
    layout(ctx, &cv);
    if (cv.overflow || cv.off > SIZE_MAX - 64) {
        sa_ctx_free(ctx);
        return sa_error(SA_STATUS_NO_MEMORY, "sa_ctx_init: n_ctx %d is too large", p.n_ctx);
    }
    ctx->arena_bytes = (size_t)cv.off + 64;
    /* calloc: large blocks come from mmap and are zero pages until touched */
    ctx->arena = calloc(1, ctx->arena_bytes);
    if (!ctx->arena) {
        size_t mib = ctx->arena_bytes >> 20;
        sa_ctx_free(ctx);
        return sa_error(SA_STATUS_NO_MEMORY, "sa_ctx_init: cannot allocate %zu MiB for n_ctx %d (HINT: use a smaller n_ctx)",
                        mib, p.n_ctx);
    }
    struct sa_carve cv2 = {.base = (uint8_t *)(((uintptr_t)ctx->arena + 63) & ~(uintptr_t)63)};
    layout(ctx, &cv2);
    *out = ctx;
    return SA_STATUS_OK;
}

void sa_ctx_free(struct sa_ctx *ctx) {
    if (!ctx) return;
    free(ctx->arena);
    sa_threadpool_free(ctx->ws.tp);
    free(ctx);
}

const struct sa_model *sa_ctx_model(const struct sa_ctx *ctx) { return ctx->model; }
int32_t sa_ctx_n_ctx(const struct sa_ctx *ctx) { return ctx->n_ctx; }
int32_t sa_ctx_len(const struct sa_ctx *ctx) { return ctx->len; }
const int32_t *sa_ctx_tokens(const struct sa_ctx *ctx) { return ctx->tokens; }
const float *sa_ctx_logits(const struct sa_ctx *ctx) { return ctx->have_logits ? ctx->logits : NULL; }

enum sa_status sa_ctx_check_first_logits(struct sa_ctx *ctx, const float *logits) {
    if (ctx->logits_checked) return SA_STATUS_OK;
    /* once per context, not per token: weights holding NaN or Inf (a damaged or badly
     * converted file) make every logit NaN, which sampling would turn into token 0 or an
     * empty answer without a word (issue 16) */
    const int32_t V = ctx->model->cfg.n_vocab;
    int32_t bad = 0;
    for (int32_t v = 0; v < V; v++) bad += !isfinite(logits[v]);
    if (bad)
        return sa_error(SA_STATUS_BAD_FILE,
                        "the model computes NaN or infinite logits (%d of %d) on its first decode: its weights "
                        "hold NaN or Inf (HINT: the file is damaged or was converted wrongly; download or convert it again)",
                        bad, V);
    ctx->logits_checked = true;
    return SA_STATUS_OK;
}

enum sa_status sa_ctx_check_append(const struct sa_ctx *ctx, const int32_t *tokens, int32_t n) {
    if (!ctx || !tokens || n <= 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_decode: no tokens");
    const int32_t V = ctx->model->cfg.n_vocab;
    if (n > ctx->n_ctx - ctx->len)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "context full: %d cached + %d new tokens exceed n_ctx %d (HINT: truncate or use a larger n_ctx)",
                        ctx->len, n, ctx->n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "token id %d at %d is out of range [0, %d)", tokens[i], i, V);
    return SA_STATUS_OK;
}

void sa_ctx_commit(struct sa_ctx *ctx, const int32_t *tokens, int32_t n) {
    memcpy(ctx->tokens + ctx->len, tokens, (size_t)n * sizeof(int32_t));
    ctx->len += n;
}

static enum sa_status decode(struct sa_ctx *ctx, const int32_t *tokens, int32_t n, float *logits_all, float *logits_out,
                             bool batch_invariant) {
    enum sa_status s = sa_ctx_check_append(ctx, tokens, n);
    if (s) return s;
    if (ctx->params.sched) return sa_sched_submit(ctx->params.sched, ctx, tokens, n, logits_all, logits_out, batch_invariant);
    const int32_t V = ctx->model->cfg.n_vocab;
    const int32_t len0 = ctx->len;
    ctx->have_logits = false;
    for (int32_t i = 0; i < n; i += ctx->n_batch) {
        const int32_t T = SA_MIN(ctx->n_batch, n - i);
        const bool last = i + T == n;
        struct sa_fwd_seq sq = {
            .ctx = ctx, .tokens = tokens + i, .T = T, .logits_all = logits_all ? logits_all + (int64_t)i * V : NULL,
            .logits_last = last ? ctx->logits : NULL,
        };
        s = sa_forward_batch(ctx->model, &ctx->ws, &sq, 1, batch_invariant);
        if (s) {
            ctx->len = len0;
            return s;
        }
        sa_ctx_commit(ctx, tokens + i, T);
    }
    if ((s = sa_ctx_check_first_logits(ctx, ctx->logits))) {
        ctx->len = len0;
        return s;
    }
    ctx->have_logits = true;
    if (logits_out) memcpy(logits_out, ctx->logits, (size_t)V * sizeof(float));
    return SA_STATUS_OK;
}

enum sa_status sa_ctx_decode(struct sa_ctx *ctx, const int32_t *tokens, int32_t n, float *logits_out) {
    return decode(ctx, tokens, n, NULL, logits_out, ctx && ctx->params.batch_invariant);
}

enum sa_status sa_ctx_decode_all(struct sa_ctx *ctx, const int32_t *tokens, int32_t n, float *logits_all) {
    if (!logits_all) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_decode_all: logits_all is NULL");
    return decode(ctx, tokens, n, logits_all, NULL, ctx && ctx->params.batch_invariant);
}

enum sa_status sa_ctx_decode_with(struct sa_ctx *ctx, const int32_t *tokens, int32_t n, float *logits_all,
                                  float *logits_out, bool batch_invariant) {
    return decode(ctx, tokens, n, logits_all, logits_out, batch_invariant || (ctx && ctx->params.batch_invariant));
}

enum sa_status sa_ctx_truncate(struct sa_ctx *ctx, int32_t n) {
    if (!ctx || n < 0 || n > ctx->len)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_truncate: %d is outside [0, %d]", n, ctx ? ctx->len : 0);
    if (n != ctx->len) ctx->have_logits = false;
    ctx->len = n; /* cache rows >= n are overwritten by the next decode */
    return SA_STATUS_OK;
}

enum sa_status sa_ctx_eval_prompt(struct sa_ctx *ctx, const int32_t *tokens, int32_t n, float *logits_out,
                                  int32_t *n_reused) {
    if (n_reused) *n_reused = 0;
    if (!ctx || !tokens || n <= 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_eval_prompt: no tokens");
    if (n > ctx->n_ctx)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "prompt of %d tokens exceeds n_ctx %d", n, ctx->n_ctx);
    int32_t k = 0;
    while (k < ctx->len && k < n - 1 && ctx->tokens[k] == tokens[k]) k++;
    enum sa_status s = sa_ctx_truncate(ctx, k);
    if (s) return s;
    if ((s = sa_ctx_decode(ctx, tokens + k, n - k, logits_out))) return s;
    if (n_reused) *n_reused = k;
    return SA_STATUS_OK;
}

enum sa_status sa_ctx_copy_prefix(struct sa_ctx *dst, const struct sa_ctx *src, int32_t n) {
    if (!dst || !src) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_copy_prefix: NULL context");
    if (dst->model != src->model)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_copy_prefix: the contexts are over different models");
    if (n < 0 || n > src->len || n > dst->n_ctx)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_copy_prefix: %d tokens: outside [0, %d] or more than n_ctx %d", n,
                        src->len, dst->n_ctx);
    if (dst == src) return sa_ctx_truncate(dst, n);
    if (dst->params.kv_type != src->params.kv_type)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_copy_prefix: the contexts' KV caches have different types");
    if (dst->params.lora != src->params.lora ||
        (src->params.lora && dst->params.lora_scale != src->params.lora_scale))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_copy_prefix: the contexts have different LoRA adapters "
                                                "(the cached K/V rows would be another model's)");
    if (dst->params.cvec != src->params.cvec || (src->params.cvec && dst->params.cvec_scale != src->params.cvec_scale))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_copy_prefix: the contexts have different control vectors "
                                                "(the cached K/V rows would be another stream's)");
    const struct sa_model_config *c = &src->model->cfg;
    const int64_t nkv = (int64_t)c->n_head_kv * c->head_dim, esz = (int64_t)src->kv_esz;
    for (int il = 0; il < c->n_layer; il++) {
        /* (n, Hkv, D) rows of each layer */
        memcpy((uint8_t *)dst->k_cache + (int64_t)il * dst->n_ctx * nkv * esz,
               (const uint8_t *)src->k_cache + (int64_t)il * src->n_ctx * nkv * esz, (size_t)(n * nkv * esz));
        memcpy((uint8_t *)dst->v_cache + (int64_t)il * dst->n_ctx * nkv * esz,
               (const uint8_t *)src->v_cache + (int64_t)il * src->n_ctx * nkv * esz, (size_t)(n * nkv * esz));
    }
    memcpy(dst->tokens, src->tokens, (size_t)n * sizeof(int32_t));
    dst->len = n;
    dst->have_logits = n == src->len && src->have_logits;
    if (dst->have_logits) memcpy(dst->logits, src->logits, (size_t)c->n_vocab * sizeof(float));
    dst->logits_checked = dst->logits_checked || src->logits_checked;
    return SA_STATUS_OK;
}
