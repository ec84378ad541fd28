/* context_impl.h: library-internal calls on an inference context (include/sa/context.h)
 * that the public API does not offer: a decode whose kernel mode is chosen by the call.
 * Not public. */
#ifndef SA_CONTEXT_IMPL_H
#define SA_CONTEXT_IMPL_H

#include "sa/batch.h"
#include "sa/context.h"

#include <stdbool.h>
#include <stdint.h>

/* sa_ctx_decode and sa_ctx_decode_all in one call, with the batch-invariant kernels for this
 * call alone when batch_invariant is true (false: as the context's
 * sa_ctx_params.batch_invariant says; true never turns them off). logits_all: NULL, or
 * (n, n_vocab) floats, caller-owned; logits_out: NULL, or n_vocab floats for the last token.
 * Errors as sa_ctx_decode. Copy-speculation verifies its drafts this way
 * (src/pipeline/speculative.c), so that its logits are those of plain one-token decoding,
 * while the context's other calls (the prompt's prefill) keep the context's mode. */
SA_NODISCARD enum sa_status sa_ctx_decode_with(struct sa_ctx *ctx, const int32_t *tokens, int32_t n, float *logits_all,
                                               float *logits_out, bool batch_invariant);

struct sa_sched;
struct sa_batch;
struct sa_batch_seq;
/* sa_batch_decode with the batch-invariant kernels for this call when batch_invariant. */
SA_NODISCARD enum sa_status sa_batch_decode_mode(struct sa_batch *b, struct sa_batch_seq *seqs, int32_t n_seqs,
                                                 bool batch_invariant);
/* Bad input of a decode call (no tokens, a token out of range, more than the context holds),
 * with the message sa_ctx_decode gives; OK otherwise. */
SA_NODISCARD enum sa_status sa_ctx_check_append(const struct sa_ctx *ctx, const int32_t *tokens, int32_t n);
/* Appends tokens[0..n) to the cached tokens and the length, after their K/V rows were written. */
void sa_ctx_commit(struct sa_ctx *ctx, const int32_t *tokens, int32_t n);
/* A decode call of a context with a scheduler (sched.c): waits for its batch, as sa_batch.h
 * says; input already checked. On success the context holds the tokens and its logits. */
SA_NODISCARD enum sa_status sa_sched_submit(struct sa_sched *s, struct sa_ctx *ctx, const int32_t *tokens, int32_t n,
                                            float *logits_all, float *logits_out, bool batch_invariant);

#endif
