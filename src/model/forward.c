/* forward.c: the transformer forward pass of the llama/qwen2/qwen3/gemma3 family over T
 * tokens at once (batched prefill when T > 1, decode when T == 1). Per layer: norm, Q/K/V
 * products (K and V written straight into the KV cache rows), biases, q/k norms, RoPE,
 * causal GQA attention over the cache, output product, residual; then the gated MLP.
 * Gemma 3 adds embedding scaling, post-attention and post-FFN norms, GeGLU and
 * sliding-window layers. refs: llama.cpp src/models/llama.cpp, qwen2.cpp, qwen3.cpp,
 * gemma3.cpp; HF transformers modeling_llama.py, modeling_qwen2/3.py, modeling_gemma3.py.
 * All buffers come from the context's arena: nothing is allocated here. */
#include "model/model_impl.h"

#include "core/core_impl.h"
#include "sa/tokenizer.h"

#include <math.h>
#include <string.h>

/* Y (T, w->n_out) = X (T, w->n_in) @ W^T */
static void matmul(struct sa_ctx *ctx, const struct sa_weight *w, const float *X, int64_t T, float *Y) {
    sa_matmul(ctx->tp, w->type, w->data, w->n_in, w->n_out, X, T, Y, ctx->mm_scratch);
}

static void final_logits(struct sa_ctx *ctx, const float *x, int64_t T, float *logits) {
    const struct sa_model *m = ctx->model;
    const struct sa_model_config *c = &m->cfg;
    /* xb: (T, n_embd) normed final hidden states */
    sa_op_rmsnorm(ctx->xb, x, m->output_norm, T, c->n_embd, c->rms_eps);
    matmul(ctx, &m->output, ctx->xb, T, logits); /* (T, n_vocab) */
    if (c->final_logit_softcap > 0.0f) sa_op_softcap(logits, c->final_logit_softcap, T * (int64_t)c->n_vocab);
}

enum sa_status sa_forward(struct sa_ctx *ctx, const int32_t *tokens, int32_t T, float *logits_rows,
                          float *logits_last) {
    const struct sa_model *m = ctx->model;
    const struct sa_model_config *c = &m->cfg;
    SA_ASSERT(T > 0 && T <= ctx->n_batch && ctx->len + T <= ctx->n_ctx);
    const int64_t E = c->n_embd, D = c->head_dim, H = c->n_head, Hkv = c->n_head_kv;
    const int64_t nq = H * D, nkv = Hkv * D, F = c->n_ff, pos0 = ctx->len;
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

    for (int il = 0; il < c->n_layer; il++) {
        if (ctx->params.abort_cb && ctx->params.abort_cb(ctx->params.abort_user))
            return sa_error(SA_STATUS_CANCELLED, "decode cancelled");
        const struct sa_layer *ly = &m->layers[il];
        float *kc = ctx->k_cache + (int64_t)il * ctx->n_ctx * nkv; /* (n_ctx, Hkv, D) */
        float *vc = ctx->v_cache + (int64_t)il * ctx->n_ctx * nkv; /* (n_ctx, Hkv, D) */
        float *k_new = kc + pos0 * nkv;                            /* (T, Hkv, D) */
        float *v_new = vc + pos0 * nkv;                            /* (T, Hkv, D) */

        /* ---- attention block ---- */
        sa_op_rmsnorm(xb, x, ly->attn_norm, T, E, eps);
        matmul(ctx, &ly->wq, xb, T, ctx->q); /* (T, H, D) */
        matmul(ctx, &ly->wk, xb, T, k_new);
        matmul(ctx, &ly->wv, xb, T, v_new);
        if (ly->bq) sa_op_add_bias(ctx->q, ly->bq, T, nq);
        if (ly->bk) sa_op_add_bias(k_new, ly->bk, T, nkv);
        if (ly->bv) sa_op_add_bias(v_new, ly->bv, T, nkv);
        if (ly->q_norm) sa_op_rmsnorm(ctx->q, ctx->q, ly->q_norm, T * H, D, eps); /* per head */
        if (ly->k_norm) sa_op_rmsnorm(k_new, k_new, ly->k_norm, T * Hkv, D, eps);
        const float *inv_freq = m->inv_freq[ly->rope_set];
        sa_op_rope(ctx->q, ctx->pos, T, H, D, m->n_rot, inv_freq, m->rope_mode);
        sa_op_rope(k_new, ctx->pos, T, Hkv, D, m->n_rot, inv_freq, m->rope_mode);

        struct sa_attn_args a = {
            .q = ctx->q, .k = kc, .v = vc, .out = ctx->att, .T = T, .pos0 = pos0, .n_head = H,
            .n_head_kv = Hkv, .head_dim = D, .window = ly->window, .scale = m->attn_scale,
            .softcap = c->attn_logit_softcap, .scratch = ctx->att_scratch, .scratch_stride = ctx->n_ctx,
            .n_scratch = ctx->n_threads,
        };
        sa_op_attention(ctx->tp, &a);              /* att: (T, H, D) */
        matmul(ctx, &ly->wo, ctx->att, T, xb2);    /* (T, E) */
        if (ly->post_attn_norm) sa_op_rmsnorm(xb2, xb2, ly->post_attn_norm, T, E, eps);
        sa_op_add(x, xb2, T * E);

        /* ---- MLP block: down(act(gate(x)) * up(x)) ---- */
        sa_op_rmsnorm(xb, x, ly->ffn_norm, T, E, eps);
        matmul(ctx, &ly->w_gate, xb, T, ctx->hb); /* (T, F) */
        matmul(ctx, &ly->w_up, xb, T, ctx->hb2);  /* (T, F) */
        if (c->gelu_mlp) sa_op_geglu(ctx->hb, ctx->hb, ctx->hb2, T * F);
        else sa_op_swiglu(ctx->hb, ctx->hb, ctx->hb2, T * F);
        matmul(ctx, &ly->w_down, ctx->hb, T, xb2); /* (T, E) */
        if (ly->post_ffn_norm) sa_op_rmsnorm(xb2, xb2, ly->post_ffn_norm, T, E, eps);
        sa_op_add(x, xb2, T * E);
    }

    if (logits_rows) {
        final_logits(ctx, x, T, logits_rows); /* (T, n_vocab) */
        if (logits_last)
            memcpy(logits_last, logits_rows + (int64_t)(T - 1) * c->n_vocab, (size_t)c->n_vocab * sizeof(float));
    } else if (logits_last) {
        final_logits(ctx, x + (int64_t)(T - 1) * E, 1, logits_last); /* (1, n_vocab) */
    }
    return SA_STATUS_OK;
}
