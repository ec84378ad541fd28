/* forward.c: the transformer forward pass of the llama/qwen2/qwen3/gemma3 family over T rows
 * at once: the tokens of one sequence (batched prefill when T > 1, decode when T == 1) or of
 * several (batched decoding: each weight matrix read once for all rows). Per layer: norm,
 * Q/K/V products, biases, q/k norms, RoPE, K/V rows stored into each sequence's cache, causal
 * GQA attention per sequence over its cache, output product, residual; then the gated MLP.
 * Gemma 3 adds embedding scaling, post-attention and post-FFN norms, GeGLU and
 * sliding-window layers. A sequence whose context has a LoRA adapter gets scale * B (A x) added
 * to each adapted product (lora_adapter.c); one whose context has a control vector or a
 * hidden-state callback gets its stream steered and read after each block (steer.c). Decode (T = 1) runs Q/K/V and gate/up as one pool run each;
 * element-wise steps are fused per row (ops_impl.h). refs: llama.cpp src/models/llama.cpp,
 * qwen2.cpp, qwen3.cpp, gemma3.cpp; HF transformers modeling_llama.py, modeling_qwen2/3.py, modeling_gemma3.py.
 * All buffers come from the workspace (a context's or a batch's arena): nothing is allocated here. */
#include "model/model_impl.h"

#include "core/core_impl.h"
#include "formats/dtype_impl.h"
#include "sa/tokenizer.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* Y (T, w->n_out) = X (T, w->n_in) @ W^T; inv: batch-invariant kernels (sa_forward_batch) */
static void matmul(struct sa_fwd_ws *ws, const struct sa_weight *w, const float *X, int64_t T, float *Y, bool inv) {
    sa_matmul(ws->tp, w->type, w->data, w->n_in, w->n_out, X, T, Y, ws->mm_scratch, inv);
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
static void matmul_decode_multi(struct sa_fwd_ws *ws, const struct mm_job *jobs, int n, bool inv) {
    SA_ASSERT(n <= MULTI_MAX);
    bool fused = ws->n_threads > 1 && n > 1;
    int64_t rows = 0;
    for (int i = 0; i < n && fused; i++) {
        fused = sa_matmul_scratch_bytes(jobs[i].w->type, jobs[i].w->n_in, 1) <= MULTI_SCRATCH;
        rows += jobs[i].w->n_out;
    }
    if (!fused) {
        for (int i = 0; i < n; i++) matmul(ws, jobs[i].w, jobs[i].x, 1, jobs[i].y, inv);
        return;
    }
    struct mm_multi m = {.n_job = n, .batch_invariant = inv};
    /* about 4 chunks per thread, a multiple of 16 rows (the GEMM's panel) */
    m.chunk = (rows / (4 * ws->n_threads) + 15) / 16 * 16;
    if (m.chunk < 32) m.chunk = 32;
    for (int i = 0; i < n; i++) {
        m.job[i] = jobs[i];
        m.first_chunk[i + 1] = m.first_chunk[i] + (jobs[i].w->n_out + m.chunk - 1) / m.chunk;
    }
    atomic_init(&m.next, 0);
    sa_threadpool_run(ws->tp, mm_multi_task, &m);
}

/* logits (T, n_vocab) of the rows x (T, n_embd); x is left as it is (xn: (T, n_embd) scratch) */
static void final_logits(const struct sa_model *m, struct sa_fwd_ws *ws, const float *x, float *xn, int64_t T,
                         float *logits, bool inv) {
    const struct sa_model_config *c = &m->cfg;
    sa_op_add_norm(ws->tp, (float *)x, NULL, NULL, xn, m->output_norm, T, c->n_embd, c->rms_eps);
    matmul(ws, &m->output, xn, T, logits, inv); /* (T, n_vocab) */
    if (c->final_logit_softcap > 0.0f) sa_op_softcap(logits, c->final_logit_softcap, T * (int64_t)c->n_vocab);
}

/* Attention of several sequences: one pool run over the sequences, each run on one thread
 * with that thread's scratch row (many short decode rows), or one after the other, each
 * threaded on its own (few sequences, or one long prompt). */
struct attn_multi {
    const struct sa_attn_args *args; /* (n) */
    int32_t n;
    atomic_int next;
};

static void attn_multi_task(void *vctx, int ith, int nth) {
    (void)nth;
    struct attn_multi *am = vctx;
    for (;;) {
        const int i = atomic_fetch_add_explicit(&am->next, 1, memory_order_relaxed);
        if (i >= am->n) break;
        struct sa_attn_args a = am->args[i];
        a.scratch += (int64_t)ith * a.scratch_stride;
        a.n_scratch = 1;
        sa_op_attention(NULL, &a);
    }
}

static void attention_seqs(struct sa_fwd_ws *ws, const struct sa_attn_args *args, int32_t n) {
    int64_t rows = 0;
    for (int32_t i = 0; i < n; i++) rows += args[i].T;
    if (n >= ws->n_threads && rows == n) { /* decode rows only */
        struct attn_multi am = {.args = args, .n = n};
        atomic_init(&am.next, 0);
        sa_threadpool_run(ws->tp, attn_multi_task, &am);
        return;
    }
    for (int32_t i = 0; i < n; i++) sa_op_attention(ws->tp, &args[i]);
}

/* Copies the new K/V rows of each sequence (ws->k, ws->v rows r0 .. r0+T-1) into its cache
 * at positions len .. len+T-1 of layer il, rounded to f16 (nearest even) for an f16 cache. */
static void kv_store(const struct sa_model *m, struct sa_fwd_ws *ws, struct sa_fwd_seq *seqs, int32_t n_seqs, int il) {
    const int64_t nkv = (int64_t)m->cfg.n_head_kv * m->cfg.head_dim;
    int64_t r0 = 0;
    for (int32_t i = 0; i < n_seqs; i++) {
        struct sa_ctx *ctx = seqs[i].ctx;
        const int64_t off = ((int64_t)il * ctx->n_ctx + ctx->len) * nkv, n = seqs[i].T * nkv;
        if (ctx->params.kv_type == SA_DTYPE_F16) {
            uint16_t *kc = (uint16_t *)ctx->k_cache + off, *vc = (uint16_t *)ctx->v_cache + off;
            const float *k = ws->k + r0 * nkv, *v = ws->v + r0 * nkv;
            for (int64_t e = 0; e < n; e++) kc[e] = sa_float_to_half(k[e]), vc[e] = sa_float_to_half(v[e]);
        } else {
            memcpy((float *)ctx->k_cache + off, ws->k + r0 * nkv, (size_t)n * sizeof(float));
            memcpy((float *)ctx->v_cache + off, ws->v + r0 * nkv, (size_t)n * sizeof(float));
        }
        r0 += seqs[i].T;
    }
}

#define MAX_SEQS_PER_PASS 256

enum sa_status sa_forward_batch(const struct sa_model *m, struct sa_fwd_ws *ws, struct sa_fwd_seq *seqs,
                                int32_t n_seqs, bool inv) {
    const struct sa_model_config *c = &m->cfg;
    const int64_t E = c->n_embd, D = c->head_dim, H = c->n_head, Hkv = c->n_head_kv;
    const int64_t nq = H * D, nkv = Hkv * D, F = c->n_ff;
    const float eps = c->rms_eps;
    float *x = ws->x, *xb = ws->xb, *xb2 = ws->xb2; /* (T, E) each */
    SA_ASSERT(n_seqs > 0 && n_seqs <= MAX_SEQS_PER_PASS);
    struct sa_attn_args attn[MAX_SEQS_PER_PASS];

    /* rows: the tokens of seqs[0], then seqs[1], ... */
    int64_t T = 0;
    for (int32_t i = 0; i < n_seqs; i++) {
        const struct sa_ctx *ctx = seqs[i].ctx;
        SA_ASSERT(seqs[i].T > 0 && ctx->len + seqs[i].T <= ctx->n_ctx && ctx->len + seqs[i].T <= ws->att_stride);
        seqs[i].cancelled = false;
        for (int32_t t = 0; t < seqs[i].T; t++) {
            ws->tok[T + t] = seqs[i].tokens[t];
            ws->pos[T + t] = ctx->len + t;
        }
        T += seqs[i].T;
    }
    SA_ASSERT(T <= ws->n_rows);

    /* token embeddings: rows of tok_embd in its stored type -> x (T, E) */
    uint64_t erb = 0;
    SA_ASSERT(sa_dtype_row_bytes(m->tok_embd.type, (uint64_t)E, &erb));
    for (int64_t t = 0; t < T; t++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (uint64_t)ws->tok[t] * erb;
        if (sa_dequantize(m->tok_embd.type, row, x + t * E, E) != SA_STATUS_OK)
            return sa_error(SA_STATUS_UNSUPPORTED, "token embeddings: type %s cannot be read",
                            sa_dtype_name(m->tok_embd.type) ? sa_dtype_name(m->tok_embd.type) : "?");
    }
    if (c->embd_scale) sa_op_scale(x, sqrtf((float)E), T * E); /* Gemma: x * sqrt(n_embd) */
    /* control vectors and hidden-state callbacks (steer.c) see the stream between blocks */
    const bool steer = sa_steer_active(seqs, n_seqs);
    if (steer) sa_steer_layer(ws, seqs, n_seqs, 0, x, E);

    /* The residual adds are fused with the norm that follows them: a block's output xb2 is
     * (post-normed,) added to x and x normed for the next block in one pass over the rows. */
    sa_op_add_norm(ws->tp, x, NULL, NULL, xb, m->layers[0].attn_norm, T, E, eps);
    for (int il = 0; il < c->n_layer; il++) {
        int32_t n_live = 0;
        for (int32_t i = 0; i < n_seqs; i++) {
            const struct sa_ctx_params *p = &seqs[i].ctx->params;
            if (!seqs[i].cancelled && p->abort_cb && p->abort_cb(p->abort_user)) seqs[i].cancelled = true;
            n_live += !seqs[i].cancelled;
        }
        if (n_live == 0) return sa_error(SA_STATUS_CANCELLED, "decode cancelled");
        const struct sa_layer *ly = &m->layers[il];

        /* ---- attention block (xb: normed x) ---- */
        if (T == 1) {
            const struct mm_job qkv[] = {{&ly->wq, xb, ws->q}, {&ly->wk, xb, ws->k}, {&ly->wv, xb, ws->v}};
            matmul_decode_multi(ws, qkv, 3, inv);
        } else {
            matmul(ws, &ly->wq, xb, T, ws->q, inv); /* (T, H, D) */
            matmul(ws, &ly->wk, xb, T, ws->k, inv); /* (T, Hkv, D) */
            matmul(ws, &ly->wv, xb, T, ws->v, inv); /* (T, Hkv, D) */
        }
        /* LoRA adapters of the sequences that have one: += scale * B (A xb), before the biases */
        sa_lora_apply(ws, seqs, n_seqs, il, SA_LORA_MOD_Q, xb, E, ws->q, nq);
        sa_lora_apply(ws, seqs, n_seqs, il, SA_LORA_MOD_K, xb, E, ws->k, nkv);
        sa_lora_apply(ws, seqs, n_seqs, il, SA_LORA_MOD_V, xb, E, ws->v, nkv);
        const struct sa_qk_args qk = {
            .q = ws->q, .k = ws->k, .v = ws->v, .bq = ly->bq, .bk = ly->bk, .bv = ly->bv, .q_norm = ly->q_norm,
            .k_norm = ly->k_norm, .pos = ws->pos, .T = T, .n_head = H, .n_head_kv = Hkv, .head_dim = D,
            .n_rot = m->n_rot, .inv_freq = m->inv_freq[ly->rope_set], .mode = m->rope_mode, .eps = eps,
        };
        sa_op_qk_prep(ws->tp, &qk);
        kv_store(m, ws, seqs, n_seqs, il);

        int64_t r0 = 0;
        for (int32_t i = 0; i < n_seqs; i++) {
            const struct sa_ctx *ctx = seqs[i].ctx;
            const int64_t layer_bytes = (int64_t)il * ctx->n_ctx * nkv * (int64_t)ctx->kv_esz;
            attn[i] = (struct sa_attn_args){
                .q = ws->q + r0 * nq, .k = (const uint8_t *)ctx->k_cache + layer_bytes,
                .v = (const uint8_t *)ctx->v_cache + layer_bytes, .kv_type = ctx->params.kv_type,
                .out = ws->att + r0 * nq, .T = seqs[i].T,
                .pos0 = ctx->len, .n_head = H, .n_head_kv = Hkv, .head_dim = D, .window = ly->window,
                .scale = m->attn_scale, .softcap = c->attn_logit_softcap, .scratch = ws->att_scratch,
                .scratch_stride = ws->att_stride, .n_scratch = ws->n_threads, .batch_invariant = inv,
            };
            r0 += seqs[i].T;
        }
        attention_seqs(ws, attn, n_seqs);          /* att: (T, H, D) */
        matmul(ws, &ly->wo, ws->att, T, xb2, inv); /* (T, E) */
        sa_lora_apply(ws, seqs, n_seqs, il, SA_LORA_MOD_O, ws->att, nq, xb2, E);
        /* xb2 = post_attn_norm(xb2); x += xb2; xb = ffn_norm(x) */
        sa_op_add_norm(ws->tp, x, xb2, ly->post_attn_norm, xb, ly->ffn_norm, T, E, eps);

        /* ---- MLP block: down(act(gate(xb)) * up(xb)) ---- */
        if (T == 1) {
            const struct mm_job gu[] = {{&ly->w_gate, xb, ws->hb}, {&ly->w_up, xb, ws->hb2}};
            matmul_decode_multi(ws, gu, 2, inv);
        } else {
            matmul(ws, &ly->w_gate, xb, T, ws->hb, inv); /* (T, F) */
            matmul(ws, &ly->w_up, xb, T, ws->hb2, inv);  /* (T, F) */
        }
        sa_lora_apply(ws, seqs, n_seqs, il, SA_LORA_MOD_GATE, xb, E, ws->hb, F);
        sa_lora_apply(ws, seqs, n_seqs, il, SA_LORA_MOD_UP, xb, E, ws->hb2, F);
        sa_op_glu(ws->tp, ws->hb, ws->hb, ws->hb2, T, F, c->gelu_mlp);
        matmul(ws, &ly->w_down, ws->hb, T, xb2, inv); /* (T, E) */
        sa_lora_apply(ws, seqs, n_seqs, il, SA_LORA_MOD_DOWN, ws->hb, F, xb2, E);
        /* xb2 = post_ffn_norm(xb2); x += xb2; xb = next layer's attn_norm(x) */
        const bool last = il + 1 == c->n_layer;
        if (steer) { /* the same per-row operations as the fused call, with the hook between */
            sa_op_add_norm(ws->tp, x, xb2, ly->post_ffn_norm, NULL, NULL, T, E, eps);
            sa_steer_layer(ws, seqs, n_seqs, il + 1, x, E);
            if (!last) sa_op_add_norm(ws->tp, x, NULL, NULL, xb, m->layers[il + 1].attn_norm, T, E, eps);
            continue;
        }
        sa_op_add_norm(ws->tp, x, xb2, ly->post_ffn_norm, last ? NULL : xb, last ? NULL : m->layers[il + 1].attn_norm,
                       T, E, eps);
    }
    if (n_seqs == 1 && seqs[0].cancelled) return sa_error(SA_STATUS_CANCELLED, "decode cancelled");

    /* logits: every row of the sequences that want them, straight into their buffers; the
     * last rows of the others gathered into xb2 (n_last, E) and computed in one product */
    const int64_t V = c->n_vocab;
    int64_t r0 = 0, n_last = 0;
    for (int32_t i = 0; i < n_seqs; i++) {
        struct sa_fwd_seq *sq = &seqs[i];
        if (sq->logits_all) {
            final_logits(m, ws, x + r0 * E, xb, sq->T, sq->logits_all, inv); /* (T_i, V) */
            if (sq->logits_last)
                memcpy(sq->logits_last, sq->logits_all + (int64_t)(sq->T - 1) * V, (size_t)V * sizeof(float));
        } else if (sq->logits_last) {
            if (n_seqs == 1) {
                final_logits(m, ws, x + (r0 + sq->T - 1) * E, xb, 1, sq->logits_last, inv); /* (1, V) */
            } else {
                memcpy(xb2 + n_last * E, x + (r0 + sq->T - 1) * E, (size_t)E * sizeof(float));
                n_last++;
            }
        }
        r0 += sq->T;
    }
    if (n_last > 0) {
        SA_ASSERT(ws->logits && n_last <= ws->n_logit_rows);
        final_logits(m, ws, xb2, xb, n_last, ws->logits, inv); /* (n_last, V) */
        int64_t k = 0;
        for (int32_t i = 0; i < n_seqs; i++)
            if (!seqs[i].logits_all && seqs[i].logits_last)
                memcpy(seqs[i].logits_last, ws->logits + k++ * V, (size_t)V * sizeof(float));
    }
    return SA_STATUS_OK;
}
