/* context.h: an inference context over a model: one sequence with its KV cache, the
 * activation buffers (sized once at init, one arena: nothing is allocated while decoding)
 * and a thread pool. Append tokens (batched prefill or one at a time), read logits, roll
 * back (truncate), and re-evaluate a prompt reusing the longest cached prefix.
 * Precedent: llama.h llama_context / llama_decode / llama_memory_seq_rm. A context is not
 * thread-safe; use one per thread. Several contexts may share one model. */
#ifndef SA_CONTEXT_H
#define SA_CONTEXT_H

#include "sa/dtype.h"
#include "sa/status.h"
#include "sa/steer.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_model;
struct sa_ctx; /* opaque */
struct sa_sched;
struct sa_lora;

/* Called between layers of a forward pass; return true to stop it (the call then
 * returns SA_STATUS_CANCELLED and the tokens of that call are not added). */
typedef bool (*sa_abort_fn)(void *user);

struct sa_ctx_params {
    int32_t n_ctx;      /* tokens the KV cache holds; 0: min(model's trained context, 4096) */
    int32_t n_batch;    /* most tokens per forward pass (longer inputs go in chunks);
                         * 0: min(n_ctx, 256) */
    int n_threads;      /* compute threads; 0: all cores */
    sa_abort_fn abort_cb; /* may be NULL */
    void *abort_user;
    /* Bitwise batch invariance of this context's forward passes. false (the default): the
     * fastest kernels; a one-token decode runs other products and another attention kernel
     * than a batch of tokens, which add in another order, so a token's logits depend (by float
     * rounding, ~0.5-1 logit on SmolLM2-135M through the 8-bit activation quantization) on how
     * many tokens were computed with it, and a greedy near-tie can flip. true: every forward
     * pass runs the batched kernels (the prefill GEMM and the tiled attention, T = 1 too), so
     * a token's logits are the same bits whether it was decoded alone, in a batch or in other
     * chunks (n_batch), after the same cached tokens. Cost: one-token decoding, on avx512 about
     * 1.3-2.5x slower products (SmolLM2-135M Q4_1 ~36 instead of ~61 tok/s); on avx2 and ref
     * only the one-token attention kernel changes. Prefill costs the same. Each context
     * has its own setting: contexts with different settings may run at the same time on
     * different threads. docs/internals/cpu_backend.md. */
    bool batch_invariant;
    /* A scheduler (sa/batch.h) this context decodes through, or NULL (default): its decode
     * calls then wait to run batched with those of the scheduler's other threads. Borrowed:
     * it must outlive the context. */
    struct sa_sched *sched;
    /* Element type of the KV cache: SA_DTYPE_F32 (0, the default) or SA_DTYPE_F16 (half the
     * memory and half the bytes attention reads per token; K and V rows are rounded to
     * nearest-even f16 when stored, and attention computes in f32 on the widened values, as
     * llama.cpp's default f16 cache does). Other types: SA_STATUS_BAD_ARGUMENT. */
    enum sa_dtype kv_type;
    /* A LoRA adapter (sa/lora.h) loaded over this context's model, applied to every forward
     * pass of this context, or NULL (default): the plain model. Borrowed: it must outlive the
     * context. Contexts over one model may have different adapters (or none) and still decode
     * in one batch (sa_batch_decode, a scheduler). Another model's adapter:
     * SA_STATUS_BAD_ARGUMENT. */
    const struct sa_lora *lora;
    /* Multiplies the adapter's alpha / rank (llama.cpp's user scale): 1 (default) applies the
     * adapter as trained, 0 gives the plain model; any finite value. Ignored without lora. */
    float lora_scale;
    /* A control vector (sa/steer.h) added to this context's residual stream: cvec_scale times
     * its row il after block il, at every position of every forward pass, or NULL (default):
     * no steering. Its n_embd must be the model's and its n_layer at most the model's
     * (SA_STATUS_BAD_ARGUMENT otherwise); rows past its n_layer are not steered. Borrowed: it
     * must outlive the context. Works on every path (sa_ctx_decode, sa_batch_decode, a
     * scheduler): each sequence of a batch gets its own context's vector. */
    const struct sa_cvec *cvec;
    /* Multiplies the control vector (llama.cpp's --control-vector-scaled): 1 (default), any
     * finite value; 0 gives the plain model. Ignored without cvec. */
    float cvec_scale;
    /* Receives the hidden states of this context's forward passes (sa_hidden_fn: the residual
     * stream after each block, embeddings first), or NULL (default): none. hidden_user is passed
     * back. Every path, as cvec. */
    sa_hidden_fn hidden_cb;
    void *hidden_user;
    /* true: hidden_cb receives only the last token of each decode call (the one whose logits
     * the call returns); false (default): every token of the call, in order of position. */
    bool hidden_last_only;
};

/* n_ctx 0, n_batch 0, n_threads 0, no abort callback, batch_invariant false, no scheduler,
 * kv_type SA_DTYPE_F32, no LoRA adapter, lora_scale 1, no control vector, cvec_scale 1, no
 * hidden-state callback, hidden_last_only false. */
struct sa_ctx_params sa_ctx_default_params(void);

/* Creates a context over `model` (borrowed: it must outlive the context). `params` may be
 * NULL (defaults). Allocates the KV cache (2 * n_layer * n_ctx * n_head_kv * head_dim
 * elements of kv_type) and the activation arena. Free with sa_ctx_free. */
SA_NODISCARD enum sa_status sa_ctx_init(const struct sa_model *model, const struct sa_ctx_params *params,
                                        struct sa_ctx **out);
/* NULL does nothing. */
void sa_ctx_free(struct sa_ctx *ctx);

const struct sa_model *sa_ctx_model(const struct sa_ctx *ctx);
int32_t sa_ctx_n_ctx(const struct sa_ctx *ctx);
/* Tokens currently in the cache (the positions 0..len-1 are filled). */
int32_t sa_ctx_len(const struct sa_ctx *ctx);
/* The cached tokens (len of them), owned by the context, valid until its next change. */
const int32_t *sa_ctx_tokens(const struct sa_ctx *ctx);

/* Appends tokens[0..n) at positions len..len+n-1 (batched: up to n_batch tokens per
 * forward pass) and computes the logits of the last one. logits_out: NULL, or n_vocab
 * floats the caller owns, receiving the last token's logits (also kept: sa_ctx_logits).
 * Errors: SA_STATUS_BAD_ARGUMENT (n <= 0, a token id out of range, len + n > n_ctx: the
 * message says so), SA_STATUS_CANCELLED, SA_STATUS_BAD_FILE (the first decode of a context
 * gave NaN or infinite logits: the model's weights hold NaN/Inf; checked once per context).
 * On error the context keeps its previous length. */
SA_NODISCARD enum sa_status sa_ctx_decode(struct sa_ctx *ctx, const int32_t *tokens, int32_t n, float *logits_out);
/* Same, with the logits of every appended position: logits_all is (n, n_vocab) floats,
 * caller-owned (row i belongs to tokens[i]). */
SA_NODISCARD enum sa_status sa_ctx_decode_all(struct sa_ctx *ctx, const int32_t *tokens, int32_t n,
                                              float *logits_all);
/* The logits (n_vocab floats) of the last token computed by decode/eval_prompt, owned by
 * the context, valid until its next decode; NULL before the first. */
const float *sa_ctx_logits(const struct sa_ctx *ctx);

/* Rolls back to the first n tokens (0 <= n <= len): later positions are forgotten. The
 * stored last logits are invalidated (sa_ctx_logits returns NULL) unless n == len. */
SA_NODISCARD enum sa_status sa_ctx_truncate(struct sa_ctx *ctx, int32_t n);
/* Makes the cache hold exactly tokens[0..n): keeps the longest common prefix with what is
 * cached (at most n - 1 tokens, so that the last token's logits are computed), drops the
 * rest and decodes only the new tokens. n_reused (may be NULL) receives the number of
 * tokens kept; logits_out as in sa_ctx_decode. */
SA_NODISCARD enum sa_status sa_ctx_eval_prompt(struct sa_ctx *ctx, const int32_t *tokens, int32_t n,
                                               float *logits_out, int32_t *n_reused);

#ifdef __cplusplus
}
#endif
#endif
