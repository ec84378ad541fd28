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
    };
    return p;
}

/* Carves the arena: each piece 64-byte aligned. With base NULL it only measures. */
struct carve {
    uint8_t *base;
    uint64_t off;
    bool overflow;
};
static void *carve(struct carve *cv, uint64_t n_elems, uint64_t elem_size) {
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

static void layout(struct sa_ctx *ctx, struct carve *cv) {
    const struct sa_model_config *c = &ctx->model->cfg;
    const uint64_t B = (uint64_t)ctx->n_batch, N = (uint64_t)ctx->n_ctx, E = (uint64_t)c->n_embd;
    const uint64_t nq = (uint64_t)c->n_head * (uint64_t)c->head_dim, nkv = (uint64_t)c->n_head_kv * (uint64_t)c->head_dim;
    const uint64_t L = (uint64_t)c->n_layer, F = (uint64_t)c->n_ff;
    ctx->tokens = carve(cv, N, sizeof(int32_t));
    ctx->k_cache = carve(cv, L * N * nkv, sizeof(float));
    ctx->v_cache = carve(cv, L * N * nkv, sizeof(float));
    ctx->x = carve(cv, B * E, sizeof(float));
    ctx->xb = carve(cv, B * E, sizeof(float));
    ctx->xb2 = carve(cv, B * E, sizeof(float));
    ctx->q = carve(cv, B * nq, sizeof(float));
    ctx->att = carve(cv, B * nq, sizeof(float));
    ctx->hb = carve(cv, B * F, sizeof(float));
    ctx->hb2 = carve(cv, B * F, sizeof(float));
    ctx->logits = carve(cv, (uint64_t)c->n_vocab, sizeof(float));
    ctx->att_scratch = carve(cv, (uint64_t)ctx->n_threads * N, sizeof(float));
    ctx->pos = carve(cv, B, sizeof(int32_t));
    ctx->mm_scratch = carve(cv, ctx->mm_scratch_bytes, 1);
}

static size_t scratch_for(const struct sa_weight *w, int64_t T, size_t cur) {
    size_t s = sa_matmul_scratch_bytes(w->type, w->n_in, T);
    return s > cur ? s : cur;
}

enum sa_status sa_ctx_init(const struct sa_model *model, const struct sa_ctx_params *params, struct sa_ctx **out) {
    *out = NULL;
    if (!model) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_init: model is NULL");
    struct sa_ctx_params p = params ? *params : sa_ctx_default_params();
    const struct sa_model_config *c = &model->cfg;
    if (p.n_ctx < 0 || p.n_batch < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_init: n_ctx (%d) and n_batch (%d) must be >= 0", p.n_ctx, p.n_batch);
    if (p.n_ctx == 0) p.n_ctx = c->n_ctx_train > 0 && c->n_ctx_train < 4096 ? c->n_ctx_train : 4096;
    if (p.n_batch == 0) p.n_batch = p.n_ctx < 256 ? p.n_ctx : 256;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    struct sa_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    ctx->model = model;
    ctx->params = p;
    ctx->n_ctx = p.n_ctx;
    ctx->n_batch = p.n_batch;
    enum sa_status s = sa_threadpool_init(p.n_threads, &ctx->tp);
    if (s) {
        free(ctx);
        return s;
    }
    ctx->n_threads = sa_threadpool_n_threads(ctx->tp);
    size_t sc = 0;
    sc = scratch_for(&model->tok_embd, 1, sc);
    sc = scratch_for(&model->output, ctx->n_batch, sc);
    for (int il = 0; il < c->n_layer; il++) {
        const struct sa_layer *ly = &model->layers[il];
        const struct sa_weight *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (size_t i = 0; i < SA_ARRAY_LEN(ws); i++) sc = scratch_for(ws[i], ctx->n_batch, sc);
    }
    ctx->mm_scratch_bytes = sc;
    struct carve cv = {0};
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
    struct carve cv2 = {.base = (uint8_t *)(((uintptr_t)ctx->arena + 63) & ~(uintptr_t)63)};
    layout(ctx, &cv2);
    if (sc == 0) ctx->mm_scratch = NULL;
    *out = ctx;
    return SA_STATUS_OK;
}

void sa_ctx_free(struct sa_ctx *ctx) {
    if (!ctx) return;
    free(ctx->arena);
    sa_threadpool_free(ctx->tp);
    free(ctx);
}

const struct sa_model *sa_ctx_model(const struct sa_ctx *ctx) { return ctx->model; }
int32_t sa_ctx_n_ctx(const struct sa_ctx *ctx) { return ctx->n_ctx; }
int32_t sa_ctx_len(const struct sa_ctx *ctx) { return ctx->len; }
const int32_t *sa_ctx_tokens(const struct sa_ctx *ctx) { return ctx->tokens; }
const float *sa_ctx_logits(const struct sa_ctx *ctx) { return ctx->have_logits ? ctx->logits : NULL; }

static enum sa_status decode(struct sa_ctx *ctx, const int32_t *tokens, int32_t n, float *logits_all, float *logits_out,
                             bool batch_invariant) {
    if (!ctx || !tokens || n <= 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_decode: no tokens");
    const int32_t V = ctx->model->cfg.n_vocab;
    if (n > ctx->n_ctx - ctx->len)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "context full: %d cached + %d new tokens exceed n_ctx %d (HINT: truncate or use a larger n_ctx)",
                        ctx->len, n, ctx->n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "token id %d at %d is out of range [0, %d)", tokens[i], i, V);
    const int32_t len0 = ctx->len;
    ctx->have_logits = false;
    for (int32_t i = 0; i < n; i += ctx->n_batch) {
        const int32_t T = SA_MIN(ctx->n_batch, n - i);
        const bool last = i + T == n;
        enum sa_status s = sa_forward(ctx, tokens + i, T, logits_all ? logits_all + (int64_t)i * V : NULL,
                                      last ? ctx->logits : NULL, batch_invariant);
        if (s) {
            ctx->len = len0;
            return s;
        }
        memcpy(ctx->tokens + ctx->len, tokens + i, (size_t)T * sizeof(int32_t));
        ctx->len += T;
    }
    if (!ctx->logits_checked) {
        /* once per context, not per token: weights holding NaN or Inf (a damaged or badly
         * converted file) make every logit NaN, which sampling would turn into token 0 or an
         * empty answer without a word (issue 16) */
        int32_t bad = 0;
        for (int32_t v = 0; v < V; v++) bad += !isfinite(ctx->logits[v]);
        if (bad) {
            ctx->len = len0;
            return sa_error(SA_STATUS_BAD_FILE,
                            "the model computes NaN or infinite logits (%d of %d) on its first decode: its weights "
                            "hold NaN or Inf (HINT: the file is damaged or was converted wrongly; download or convert it again)",
                            bad, V);
        }
        ctx->logits_checked = true;
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
