/* batch.h: several sequences of one model in one forward pass (batched decoding), forking a
 * sequence from another's cached prefix, and a scheduler that gathers the decode calls of
 * several threads into batched passes.
 *
 * A sequence is a context (sa_ctx: its own KV cache, length, cached tokens and last logits).
 * A batch (sa_batch) is the workspace of batched passes over one model: activations for up to
 * n_tokens rows and a thread pool. sa_batch_decode appends tokens to several contexts in one
 * forward pass: every weight matrix is read once for the rows of all of them (decode tokens
 * and prompts of different lengths mixed, as llama.cpp's llama_batch allows); attention runs
 * per sequence over its own cache. Precedent: llama.cpp llama_batch / llama_decode with
 * sequence ids, llama_memory_seq_cp; vLLM's continuous batching. Why contexts and not sequence
 * ids in one context: docs/internals/batching.md.
 *
 * Exactness: with batch_invariant (here, or in the context's params) a sequence's logits are
 * bitwise those it gets decoded alone in a batch-invariant context, whatever else is in the
 * batch and however the rows are split into passes. Without it, a batch of several rows runs
 * the batched kernels and a lone one-token decode the decode kernels: results then differ
 * by float rounding only (greedy differs only at near-ties). */
#ifndef SA_BATCH_H
#define SA_BATCH_H

#include "sa/status.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_model;
struct sa_ctx;
struct sa_batch; /* opaque */
struct sa_sched; /* opaque */

/* ---- forking ---- */

/* Makes `dst` hold the first n tokens of `src` (0 <= n <= sa_ctx_len(src)) with their KV rows
 * copied, so that a sample continued from dst costs no prefill (N samples of one prompt: one
 * prefill, N copies). Both contexts must be over the same model, dst's n_ctx >= n. When
 * n == sa_ctx_len(src) and src has logits, dst gets them too (sa_ctx_logits), so a sampler
 * can draw dst's next token at once. dst's previous content is dropped. dst == src: a
 * truncation. Errors: SA_STATUS_BAD_ARGUMENT (NULL, different models, n out of range). */
SA_NODISCARD enum sa_status sa_ctx_copy_prefix(struct sa_ctx *dst, const struct sa_ctx *src, int32_t n);

/* ---- batched decoding ---- */

struct sa_batch_params {
    int32_t n_tokens;  /* most rows (tokens of all sequences) per forward pass; longer calls
                          are cut into several passes; 0: 256 */
    int32_t n_seq_max; /* most sequences per call; 0: 64 */
    int32_t n_ctx;     /* most tokens a sequence of this batch may hold (sizes the attention
                          scratch); 0: min(model's trained context, 4096) as sa_ctx_init */
    int n_threads;     /* compute threads; 0: all cores */
    bool batch_invariant; /* the batch-invariant kernels for every pass (sa_ctx_params) */
};
/* n_tokens 0, n_seq_max 0, n_ctx 0, n_threads 0, batch_invariant false. */
struct sa_batch_params sa_batch_default_params(void);

/* A workspace for batched passes over `model` (borrowed: it must outlive the batch). `params`
 * may be NULL. Free with sa_batch_free. A batch is not thread-safe: one call at a time. */
SA_NODISCARD enum sa_status sa_batch_init(const struct sa_model *model, const struct sa_batch_params *params,
                                          struct sa_batch **out);
/* NULL does nothing. */
void sa_batch_free(struct sa_batch *b);

/* One sequence's part of a batched decode. */
struct sa_batch_seq {
    struct sa_ctx *ctx;     /* the sequence: a context over the batch's model (at most once per call) */
    const int32_t *tokens;  /* appended at positions len .. len+n-1 of ctx */
    int32_t n;              /* >= 1 */
    float *logits_all;      /* NULL, or (n, n_vocab) caller-owned floats: every appended row */
    float *logits;          /* NULL, or (n_vocab) caller-owned floats: the last token's logits
                               (kept in the context as well: sa_ctx_logits) */
    enum sa_status status;  /* out: SA_STATUS_OK, or this sequence's error (its context is
                               then as before the call) */
};

/* Appends each sequence's tokens to its context in batched forward passes (up to n_tokens
 * rows each). Each sequence's context ends as sa_ctx_decode / sa_ctx_decode_all would leave
 * it (length, tokens, last logits); a sequence whose input is bad (token out of range, more
 * than its context or the batch's n_ctx holds, another model) or whose context's abort
 * callback fires gets its own status and leaves its context unchanged; the others go on.
 * The batch runs with batch_invariant when the batch's params or a sequence's context ask
 * for it. Returns SA_STATUS_OK when every sequence succeeded, else the first failing
 * sequence's status (check each seqs[i].status); SA_STATUS_BAD_ARGUMENT for a NULL, an
 * empty call, more than n_seq_max sequences or a context twice. */
SA_NODISCARD enum sa_status sa_batch_decode(struct sa_batch *b, struct sa_batch_seq *seqs, int32_t n_seqs);

/* ---- a scheduler: the decode calls of several threads, batched ---- */

struct sa_sched_params {
    int32_t n_tokens;     /* as sa_batch_params.n_tokens */
    int32_t n_ctx;        /* as sa_batch_params.n_ctx */
    int n_threads;        /* compute threads of the batched passes; 0: all cores */
    bool batch_invariant; /* as sa_batch_params.batch_invariant */
    int32_t max_wait_us;  /* a waiting call runs (with whatever else waits) after this long even
                             if some entered thread is not waiting yet; 0: 20000 */
};
/* n_tokens 0, n_ctx 0, n_threads 0, batch_invariant false, max_wait_us 0. */
struct sa_sched_params sa_sched_default_params(void);

/* A scheduler. Contexts made with sa_ctx_params.sched = this scheduler do not compute on
 * their own: each of their decode calls (sa_ctx_decode, _decode_all, _eval_prompt) waits
 * until every thread that has entered the scheduler (sa_sched_enter) is waiting in such a
 * call (or max_wait_us has passed), and then all waiting calls run together: one
 * sa_batch_decode per model (the scheduler keeps one batch per model, made on first use).
 * Each call returns its own status. Several threads, each with its own contexts, thus run
 * their sequential code (a pipeline per question) and are batched without changing it.
 * Free only when no context uses it any more. */
SA_NODISCARD enum sa_status sa_sched_init(const struct sa_sched_params *params, struct sa_sched **out);
void sa_sched_free(struct sa_sched *s);
/* The calling thread takes part: batches wait for its decode calls. Call sa_sched_leave
 * before it stops decoding for long (waiting on a network upstream, finishing). Counted:
 * enter/leave pairs from many threads. */
void sa_sched_enter(struct sa_sched *s);
void sa_sched_leave(struct sa_sched *s);

/* Counters since init: batched passes run, rows computed, and calls served. */
struct sa_sched_stats {
    int64_t n_passes, n_rows, n_calls;
};
void sa_sched_get_stats(const struct sa_sched *s, struct sa_sched_stats *out);

#ifdef __cplusplus
}
#endif
#endif
