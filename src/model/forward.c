/* forward.c: the transformer forward pass of the llama/qwen2/qwen3/gemma3 family over T
 * tokens at once (batched prefill when T > 1, decode when T == 1). Per layer: norm, Q/K/V
 * products (K and V written straight into the KV cache rows), biases, q/k norms, RoPE,
 * causal GQA attention over the cache, output product, residual; then the gated MLP.
 * Gemma 3 adds embedding scaling, post-attention and post-FFN norms, GeGLU and
 * sliding-window layers. Decode (T = 1) runs Q/K/V and gate/up as one pool run each;
 * element-wise steps are fused per row (ops_impl.h). refs: llama.cpp src/models/llama.cpp,
 * qwen2.cpp, qwen3.cpp, gemma3.cpp; HF transformers modeling_llama.py, modeling_qwen2/3.py, modeling_gemma3.py.
 * All buffers come from the context's arena: nothing is allocated here. */
#include "model/model_impl.h"

#include "core/core_impl.h"
#include "sa/tokenizer.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* Y (T, w->n_out) = X (T, w->n_in) @ W^T; inv: batch-invariant kernels (sa_forward) */
static void matmul(struct sa_ctx *ctx, const struct sa_weight *w, const float *X, int64_t T, float *Y, bool inv) {
    sa_matmul(ctx->tp, w->type, w->data, w->n_in, w->n_out, X, T, Y, ctx->mm_scratch, inv);
}

/* Decode (T = 1) runs several products over the same or different inputs as ONE pool run:
 * their rows are cut into chunks that the shares take from an atomic counter, each chunk a
 * single-threaded sa_matmul over a slice of W's rows (for T = 1 a slice of Y). At decode a
 * layer's products are small (tens of microseconds), so the pool's per-run cost and the
 * imbalance at the end of each run are a large part of a step; Q/K/V and gate/up each
 * become one run. Every output row is computed by the same kernel call as in a whole-matrix
 * product (cpu_backend.md: results do not depend on the row split). */
#define MULTI_MAX 3
#define MULTI_SCRATCH 16384 /* bytes of quantized activations per share (on its stack) */

struct mm_job {
    const struct sa_weight *w;
    const float *x; /* (n_in) */
    float *y;       /* (n_out) */
};

struct mm_multi {
    struct mm_job job[MULTI_MAX];
    int n_job;
    bool batch_invariant;            /* the pass's kernel mode, for every share */
    int64_t chunk;                   /* rows per chunk */
    int64_t first_chunk[MULTI_MAX + 1]; /* chunk index where each job starts */
    atomic_llong next;
};

static void mm_multi_task(void *vctx, int ith, int nth) {
    (void)ith, (void)nth;
    struct mm_multi *m = vctx;
    uint8_t scratch[MULTI_SCRATCH] __attribute__((aligned(64)));
    for (;;) {
        const int64_t c = atomic_fetch_add_explicit(&m->next, 1, memory_order_relaxed);
        if (c >= m->first_chunk[m->n_job]) break;
        int p = 0;
        while (c >= m->first_chunk[p + 1]) p++;
        const struct mm_job *j = &m->job[p];
        const int64_t r0 = (c - m->first_chunk[p]) * m->chunk;
        const int64_t nr = j->w->n_out - r0 < m->chunk ? j->w->n_out - r0 : m->chunk;
        uint64_t rb = 0;
        SA_ASSERT(sa_dtype_row_bytes(j->w->type, (uint64_t)j->w->n_in, &rb));
        sa_matmul(NULL, j->w->type, (const uint8_t *)j->w->data + (uint64_t)r0 * rb, j->w->n_in, nr, j->x, 1, j->y + r0,
                  scratch, m->batch_invariant);
    }
}

/* The products of jobs[0..n) for one token: one pool run when the pool has several threads
 * and every job's scratch fits MULTI_SCRATCH, else one sa_matmul each. */
static void matmul_decode_multi(struct sa_ctx *ctx, const struct mm_job *jobs, int n, bool inv) {
    SA_ASSERT(n <= MULTI_MAX);
    bool fused = ctx->n_threads > 1 && n > 1;
    int64_t rows = 0;
    for (int i = 0; i < n && fused; i++) {
        fused = sa_matmul_scratch_bytes(jobs[i].w->type, jobs[i].w->n_in, 1) <= MULTI_SCRATCH;
        rows += jobs[i].w->n_out;
    }
    if (!fused) {
        for (int i = 0; i < n; i++) matmul(ctx, jobs[i].w, jobs[i].x, 1, jobs[i].y, inv);
        return;
    }
    struct mm_multi m = {.n_job = n, .batch_invariant = inv};
    /* about 4 chunks per thread, a multiple of 16 rows (the GEMM's panel) */
    m.chunk = (rows / (4 * ctx->n_threads) + 15) / 16 * 16;
    if (m.chunk < 32) m.chunk = 32;
    for (int i = 0; i < n; i++) {
        m.job[i] = jobs[i];
        m.first_chunk[i + 1] = m.first_chunk[i] + (jobs[i].w->n_out + m.chunk - 1) / m.chunk;
    }
    atomic_init(&m.next, 0);
    sa_threadpool_run(ctx->tp, mm_multi_task, &m);
}

static void final_logits(struct sa_ctx *ctx, float *x, int64_t T, float *logits, bool inv) {
    const struct sa_model *m = ctx->model;
    const struct sa_model_config *c = &m->cfg;
    /* xb: (T, n_embd) normed final hidden states */
    sa_op_add_norm(ctx->tp, x, NULL, NULL, ctx->xb, m->output_norm, T, c->n_embd, c->rms_eps);
    matmul(ctx, &m->output, ctx->xb, T, logits, inv); /* (T, n_vocab) */
    if (c->final_logit_softcap > 0.0f) sa_op_softcap(logits, c->final_logit_softcap, T * (int64_t)c->n_vocab);
}

enum sa_status sa_forward(struct sa_ctx *ctx, const int32_t *tokens, int32_t T, float *logits_rows,
                          float *logits_last, bool inv) {
    const struct sa_model *m = ctx->model;
    const struct sa_model_config *c = &m->cfg;
    SA_ASSERT(T > 0 && T <= ctx->n_batch && ctx->len + T <= ctx->n_ctx);
    const int64_t E = c->n_embd, D = c->head_dim, H = c->n_head, Hkv = c->n_head_kv;
    const int64_t nkv = Hkv * D, F = c->n_ff, pos0 = ctx->len;
    const float eps = c->rms_eps;
    float *x = ctx->x, *xb = ctx->xb, *xb2 = ctx->xb2; /* (T, E) each */

    for (int32_t t = 0; t < T; t++) ctx->pos[t] = (int32_t)(pos0 + t);

    /* token embeddings: rows of tok_embd in its stored type -> x (T, E) */
    uint64_t erb = 0;
    SA_ASSERT(sa_dtype_row_bytes(m->tok_embd.type, (uint64_t)E, &erb));
    for (int32_t t = 0; t < T; t++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (uint64_t)tokens[t] * erb;
        if (sa_dequantize(m->tok_embd.type, row, x + t * E, E) != SA_STATUS_OK)
            return sa_error(SA_STATUS_UNSUPPORTED, "token embeddings: type %s cannot be read",
                            sa_dtype_name(m->tok_embd.type) ? sa_dtype_name(m->tok_embd.type) : "?");
    }
    if (c->embd_scale) sa_op_scale(x, sqrtf((float)E), T * E); /* Gemma: x * sqrt(n_embd) */

    /* The residual adds are fused with the norm that follows them: a block's output xb2 is
     * (post-normed,) added to x and x normed for the next block in one pass over the rows. */
    sa_op_add_norm(ctx->tp, x, NULL, NULL, xb, m->layers[0].attn_norm, T, E, eps);
    for (int il = 0; il < c->n_layer; il++) {
        if (ctx->params.abort_cb && ctx->params.abort_cb(ctx->params.abort_user))
            return sa_error(SA_STATUS_CANCELLED, "decode cancelled");
        const struct sa_layer *ly = &m->layers[il];
        float *kc = ctx->k_cache + (int64_t)il * ctx->n_ctx * nkv; /* (n_ctx, Hkv, D) */
        float *vc = ctx->v_cache + (int64_t)il * ctx->n_ctx * nkv; /* (n_ctx, Hkv, D) */
        float *k_new = kc + pos0 * nkv;                            /* (T, Hkv, D) */
        float *v_new = vc + pos0 * nkv;                            /* (T, Hkv, D) */

        /* ---- attention block (xb: normed x) ---- */
        if (T == 1) {
            const struct mm_job qkv[] = {{&ly->wq, xb, ctx->q}, {&ly->wk, xb, k_new}, {&ly->wv, xb, v_new}};
            matmul_decode_multi(ctx, qkv, 3, inv);
        } else {
            matmul(ctx, &ly->wq, xb, T, ctx->q, inv); /* (T, H, D) */
            matmul(ctx, &ly->wk, xb, T, k_new, inv);
            matmul(ctx, &ly->wv, xb, T, v_new, inv);
        }
        const struct sa_qk_args qk = {
            .q = ctx->q, .k = k_new, .v = v_new, .bq = ly->bq, .bk = ly->bk, .bv = ly->bv, .q_norm = ly->q_norm,
            .k_norm = ly->k_norm, .pos = ctx->pos, .T = T, .n_head = H, .n_head_kv = Hkv, .head_dim = D,
            .n_rot = m->n_rot, .inv_freq = m->inv_freq[ly->rope_set], .mode = m->rope_mode, .eps = eps,
        };
        sa_op_qk_prep(ctx->tp, &qk);

        struct sa_attn_args a = {
            .q = ctx->q, .k = kc, .v = vc, .out = ctx->att, .T = T, .pos0 = pos0, .n_head = H,
            .n_head_kv = Hkv, .head_dim = D, .window = ly->window, .scale = m->attn_scale,
            .softcap = c->attn_logit_softcap, .scratch = ctx->att_scratch, .scratch_stride = ctx->n_ctx,
            .n_scratch = ctx->n_threads, .batch_invariant = inv,
        };
        sa_op_attention(ctx->tp, &a);              /* att: (T, H, D) */
        matmul(ctx, &ly->wo, ctx->att, T, xb2, inv); /* (T, E) */
        /* xb2 = post_attn_norm(xb2); x += xb2; xb = ffn_norm(x) */
        sa_op_add_norm(ctx->tp, x, xb2, ly->post_attn_norm, xb, ly->ffn_norm, T, E, eps);

        /* ---- MLP block: down(act(gate(xb)) * up(xb)) ---- */
        if (T == 1) {
            const struct mm_job gu[] = {{&ly->w_gate, xb, ctx->hb}, {&ly->w_up, xb, ctx->hb2}};
            matmul_decode_multi(ctx, gu, 2, inv);
        } else {
            matmul(ctx, &ly->w_gate, xb, T, ctx->hb, inv); /* (T, F) */
            matmul(ctx, &ly->w_up, xb, T, ctx->hb2, inv);  /* (T, F) */
        }
        sa_op_glu(ctx->tp, ctx->hb, ctx->hb, ctx->hb2, T, F, c->gelu_mlp);
        matmul(ctx, &ly->w_down, ctx->hb, T, xb2, inv); /* (T, E) */
        /* xb2 = post_ffn_norm(xb2); x += xb2; xb = next layer's attn_norm(x) */
        const bool last = il + 1 == c->n_layer;
        sa_op_add_norm(ctx->tp, x, xb2, ly->post_ffn_norm, last ? NULL : xb, last ? NULL : m->layers[il + 1].attn_norm,
                       T, E, eps);
    }

    if (logits_rows) {
        final_logits(ctx, x, T, logits_rows, inv); /* (T, n_vocab) */
        if (logits_last)
            memcpy(logits_last, logits_rows + (int64_t)(T - 1) * c->n_vocab, (size_t)c->n_vocab * sizeof(float));
    } else if (logits_last) {
        final_logits(ctx, x + (int64_t)(T - 1) * E, 1, logits_last, inv); /* (1, n_vocab) */
    }
    return SA_STATUS_OK;
}
