/* model_impl.h: the inside of struct sa_model (bound weights per layer) and of struct
 * sa_ctx (KV cache and activation arena), shared by model_load.c, forward.c and
 * context.c. Not public. Invariants: docs/internals/model.md. */
#ifndef SA_MODEL_IMPL_H
#define SA_MODEL_IMPL_H

#include "backend/cpu/cpu_impl.h"
#include "model/ops_impl.h"
#include "formats/arch_impl.h"
#include "sa/context.h"
#include "sa/lora.h"
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

/* ---- LoRA adapters (lora_adapter.c, sa/lora.h) ---- */

/* The adapted matrices of a layer, in the order of the SA_LORA_* flags (sa/train.h). */
enum { SA_LORA_MOD_Q, SA_LORA_MOD_K, SA_LORA_MOD_V, SA_LORA_MOD_O, SA_LORA_MOD_GATE, SA_LORA_MOD_UP, SA_LORA_MOD_DOWN,
       SA_LORA_N_MOD };
/* The tensor of module `mod` (SA_TENSOR_ATTN_Q, ...). */
enum sa_tensor sa_lora_module_tensor(int mod);

/* One adapted matrix W (n_out, n_in): y += scale * B (A x). Q/K rows of B are in the
 * engine's (GGUF) order, as the file stores them. */
struct sa_lora_mat {
    const float *A; /* (r, n_in), NULL: this matrix is not adapted */
    const float *B; /* (n_out, r) */
    int32_t r;
    float scale;    /* alpha / r; 1 when alpha is 0 (llama.cpp) */
};

struct sa_lora {
    const struct sa_model *model;
    struct sa_lora_mat *mats; /* (n_layer, SA_LORA_N_MOD) */
    float *data;              /* every A and B, f32 */
    struct sa_lora_info info;
};

struct sa_fwd_ws;
struct sa_fwd_seq;
/* Adds each sequence's adapter product for matrix `mod` of layer il to its rows:
 * Y (T, n_out) += lora_scale * scale * B (A X) for the rows of the sequences whose context
 * has an adapter that adapts this matrix; X (T, n_in) is the product's input. Each row is
 * computed on its own by the same code, whatever T and the thread split (batch invariance). */
void sa_lora_apply(struct sa_fwd_ws *ws, const struct sa_fwd_seq *seqs, int32_t n_seqs, int il, int mod,
                   const float *X, int64_t n_in, float *Y, int64_t n_out);

/* The workspace of a forward pass: activations for up to n_rows rows (tokens of one or
 * several sequences) and the thread pool. A context has one (its own arena, n_batch rows);
 * a batch (sa_batch, batch.c) has one for the rows of many contexts. */
struct sa_fwd_ws {
    struct sa_threadpool *tp;
    int n_threads;
    int32_t n_rows;        /* capacity in rows */
    float *x;              /* (n_rows, n_embd) residual stream */
    float *xb;             /* (n_rows, n_embd) normed input of a block */
    float *xb2;            /* (n_rows, n_embd) output of a block before the residual add */
    float *q;              /* (n_rows, n_head*head_dim) */
    float *k, *v;          /* (n_rows, n_head_kv*head_dim): new K/V rows before kv_store */
    float *att;            /* (n_rows, n_head*head_dim) attention output */
    float *hb;             /* (n_rows, n_ff) gate, then the activated product */
    float *hb2;            /* (n_rows, n_ff) up */
    int32_t *tok;          /* (n_rows) token of each row */
    int32_t *pos;          /* (n_rows) position of each row in its sequence */
    float *att_scratch;    /* (n_threads, att_stride) attention scores */
    int64_t att_stride;    /* floats per share: >= the longest sequence (n_ctx) */
    float *logits;         /* (n_logit_rows, n_vocab) last rows' logits of a batch, or NULL */
    int32_t n_logit_rows;
    void *mm_scratch;      /* sa_matmul scratch for n_rows rows, mm_scratch_bytes */
    size_t mm_scratch_bytes;
};

struct sa_ctx {
    const struct sa_model *model;
    struct sa_ctx_params params;
    int32_t n_ctx, n_batch, len;
    bool have_logits;
    bool logits_checked;   /* the first logits were checked for NaN/Inf (once per context) */
    struct sa_fwd_ws ws;   /* own workspace (unused by a context with a scheduler) */
    /* everything below points into one arena (`arena`, arena_bytes), as do ws's buffers */
    void *arena;
    size_t arena_bytes;
    int32_t *tokens;       /* (n_ctx) cached tokens */
    void *k_cache;         /* (n_layer, n_ctx, n_head_kv*head_dim) of params.kv_type (f32 or f16) */
    void *v_cache;         /* (n_layer, n_ctx, n_head_kv*head_dim) of params.kv_type */
    size_t kv_esz;         /* bytes per cache element: 4 (f32) or 2 (f16) */
    float *logits;         /* (n_vocab) of the last token */
};

/* One sequence's rows in a forward pass: T tokens appended to ctx at positions
 * ctx->len .. ctx->len+T-1 (K/V written into ctx's cache; ctx->len is not changed).
 * logits_all: NULL or (T, n_vocab); logits_last: NULL or (n_vocab) for the last row.
 * cancelled: out, ctx's abort callback fired during the pass (its results are garbage). */
struct sa_fwd_seq {
    struct sa_ctx *ctx;
    const int32_t *tokens;
    int32_t T;
    float *logits_all, *logits_last;
    bool cancelled;
};

/* Measures (base NULL) or carves a workspace of n_rows rows, attention scratch for n_threads
 * shares of att_stride floats and n_logit_rows logit rows, from an arena (context.c). */
struct sa_carve {
    uint8_t *base;
    uint64_t off;
    bool overflow;
};
void *sa_carve(struct sa_carve *cv, uint64_t n_elems, uint64_t elem_size);
void sa_fwd_ws_layout(const struct sa_model *model, struct sa_fwd_ws *ws, struct sa_carve *cv);
/* Matmul scratch bytes for products of up to n_rows rows over the model's weights. */
size_t sa_fwd_scratch_bytes(const struct sa_model *model, int32_t n_rows);

/* Runs the forward pass of the rows of seqs[0..n_seqs) (sum of T <= ws->n_rows; each
 * sequence's len + T <= its n_ctx and <= ws->att_stride): every weight product once over all
 * rows, attention per sequence over its own cache. A row's results depend only on its
 * sequence (bitwise, when batch_invariant; by float rounding otherwise: a lone row runs the
 * decode kernels). Returns SA_STATUS_CANCELLED (nothing usable) when n_seqs == 1 and its abort
 * callback fired; with several, a cancelled sequence is marked and the others go on. */
SA_NODISCARD enum sa_status sa_forward_batch(const struct sa_model *model, struct sa_fwd_ws *ws,
                                             struct sa_fwd_seq *seqs, int32_t n_seqs, bool batch_invariant);

/* ---- residual-stream hooks (steer.c, sa/steer.h) ---- */
/* True when a sequence's context has a control vector or a hidden-state callback: the pass
 * then splits each block's residual add from the next norm to reach the stream between them. */
bool sa_steer_active(const struct sa_fwd_seq *seqs, int32_t n_seqs);
/* x (rows of seqs, E): the residual stream after `layer` blocks (0: the embeddings). Adds each
 * sequence's control-vector row layer - 1 (times its scale) to its rows, then hands the rows
 * its hidden_cb wants to it. Cancelled sequences are skipped. */
void sa_steer_layer(const struct sa_fwd_ws *ws, const struct sa_fwd_seq *seqs, int32_t n_seqs, int32_t layer, float *x,
                    int64_t E);
/* The control vector of a context's params against its model: SA_STATUS_BAD_ARGUMENT. */
SA_NODISCARD enum sa_status sa_steer_check_params(const struct sa_model *model, const struct sa_ctx_params *p);

/* NaN/Inf check of a context's first logits (once per context): SA_STATUS_BAD_FILE. */
SA_NODISCARD enum sa_status sa_ctx_check_first_logits(struct sa_ctx *ctx, const float *logits);

#endif
