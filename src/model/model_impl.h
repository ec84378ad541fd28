/* model_impl.h: the inside of struct sa_model (bound weights per layer) and of struct
 * sa_ctx (KV cache and activation arena), shared by model_load.c, forward.c and
 * context.c. Not public. Invariants: docs/internals/model.md. */
#ifndef SA_MODEL_IMPL_H
#define SA_MODEL_IMPL_H

#include "backend/cpu/cpu_impl.h"
#include "model/ops_impl.h"
#include "sa/context.h"
#include "sa/model.h"

#include <stdint.h>

/* A matrix in its stored type: n_out rows of n_in elements (GGUF ne[0] = n_in). */
struct sa_weight {
    enum sa_dtype type;
    const void *data; /* into the file mapping or the model's owned memory */
    int64_t n_in, n_out;
};

struct sa_layer {
    const float *attn_norm;      /* (n_embd) */
    struct sa_weight wq;         /* (n_head*head_dim, n_embd) */
    struct sa_weight wk, wv;     /* (n_head_kv*head_dim, n_embd) */
    struct sa_weight wo;         /* (n_embd, n_head*head_dim) */
    const float *bq;             /* (n_head*head_dim) or NULL (qwen2) */
    const float *bk, *bv;        /* (n_head_kv*head_dim) or NULL */
    const float *q_norm, *k_norm; /* (head_dim) or NULL (qwen3, gemma3) */
    const float *post_attn_norm; /* (n_embd) or NULL (gemma3) */
    const float *ffn_norm;       /* (n_embd) */
    struct sa_weight w_gate, w_up; /* (n_ff, n_embd) */
    struct sa_weight w_down;     /* (n_embd, n_ff) */
    const float *post_ffn_norm;  /* (n_embd) or NULL (gemma3) */
    int32_t window;              /* sliding window in tokens, 0: full attention */
    int32_t rope_set;            /* 0: global inv_freq, 1: local (gemma3 sliding layers) */
};

struct sa_model {
    struct sa_model_config cfg;
    struct sa_gguf *gguf;          /* open while use_mmap (weights point into it) */
    struct sa_safetensors *st;
    struct sa_tokenizer *tok;      /* may be NULL (safetensors without tokenizer.json) */
    char *chat_template;           /* may be NULL */
    struct sa_weight tok_embd;     /* (n_vocab, n_embd) */
    struct sa_weight output;       /* (n_vocab, n_embd): tok_embd when tied */
    const float *output_norm;      /* (n_embd) */
    struct sa_layer *layers;       /* (n_layer) */
    enum sa_rope_mode rope_mode;
    int32_t n_rot;                 /* rotated dims per head (head_dim) */
    float *inv_freq[2];            /* (n_rot/2) each: [0] global, [1] local layers */
    float attn_scale;              /* 1/sqrt(head_dim) or 1/sqrt(query_pre_attn_scalar) */
    void **owned;                  /* blocks the model owns (converted weights), freed at end */
    size_t n_owned, cap_owned;
    uint64_t n_bytes, n_params;
};

struct sa_ctx {
    const struct sa_model *model;
    struct sa_ctx_params params;
    struct sa_threadpool *tp;
    int32_t n_ctx, n_batch, len;
    bool have_logits;
    bool logits_checked;   /* the first logits were checked for NaN/Inf (once per context) */
    /* everything below points into one arena (`arena`, arena_bytes) */
    void *arena;
    size_t arena_bytes;
    int32_t *tokens;       /* (n_ctx) cached tokens */
    float *k_cache;        /* (n_layer, n_ctx, n_head_kv*head_dim) */
    float *v_cache;        /* (n_layer, n_ctx, n_head_kv*head_dim) */
    float *x;              /* (n_batch, n_embd) residual stream */
    float *xb;             /* (n_batch, n_embd) normed input of a block */
    float *xb2;            /* (n_batch, n_embd) output of a block before the residual add */
    float *q;              /* (n_batch, n_head*head_dim) */
    float *att;            /* (n_batch, n_head*head_dim) attention output */
    float *hb;             /* (n_batch, n_ff) gate, then the activated product */
    float *hb2;            /* (n_batch, n_ff) up */
    float *logits;         /* (n_vocab) of the last token */
    float *att_scratch;    /* (n_threads, n_ctx) attention scores */
    int32_t *pos;          /* (n_batch) positions of the tokens of a forward pass */
    void *mm_scratch;      /* sa_matmul scratch, mm_scratch_bytes */
    size_t mm_scratch_bytes;
    int n_threads;
};

/* Runs the forward pass for tokens[0..T) (T <= n_batch) at positions len..len+T-1,
 * writing K/V into the cache. logits_rows: NULL, or (T, n_vocab) for every row;
 * logits_last: NULL, or (n_vocab) for row T-1. batch_invariant: the kernels' mode for this
 * pass (sa_ctx_params.batch_invariant). Does not change ctx->len. */
SA_NODISCARD enum sa_status sa_forward(struct sa_ctx *ctx, const int32_t *tokens, int32_t T, float *logits_rows,
                                       float *logits_last, bool batch_invariant);

#endif
