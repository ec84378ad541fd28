/* speculative_impl.h: copy-speculation for the aligner (Stream Aligner pipeline, issue 5).
 * The aligner mostly copies the upstream's sentence y1, so y1's tokens are a draft: one
 * batched forward pass over the draft verifies it, and the longest prefix that the
 * aligner's own decoding would produce is accepted at once, plus the model's next token.
 * After a mismatch the draft is re-aligned (the model's token looked up in the draft, as in
 * prompt-lookup decoding) so that a local edit costs a few passes, not the rest of y1.
 * Greedy: output identical to plain greedy decoding (bitwise: the call decodes with
 * batch-invariant kernels). Sampling: the speculative-sampling acceptance rule (Leviathan
 * et al. 2023, Chen et al. 2023) with a deterministic (one-hot) draft, so the output
 * distribution equals plain sampling from the sampler chain. docs/internals/speculation.md.
 * Internal to src/pipeline. */
#ifndef SA_SPECULATIVE_IMPL_H
#define SA_SPECULATIVE_IMPL_H

#include "sa/context.h"
#include "sa/sampler.h"
#include "tokenizer/tokenizer_impl.h"

#include <stdbool.h>
#include <stdint.h>

/* max_draft 0: at most this many draft tokens per forward pass (the verify buffer holds
 * one row of n_vocab logits per fed token). */
#define SA_SPEC_MAX_DRAFT_DEFAULT 64

struct sa_spec_params {
    int32_t max_tokens;          /* most tokens to generate (> 0), the end-of-generation token not counted */
    bool use_draft;              /* false: plain decoding, one token per forward pass */
    struct sa_sampler *sampler;  /* NULL: greedy (argmax, ties to the lowest id). Borrowed; the
                                  * call runs its chain on each position and calls
                                  * sa_sampler_accept for each generated token (not the EOG) */
    int32_t max_draft;           /* most draft tokens verified per forward pass; 0: SA_SPEC_MAX_DRAFT_DEFAULT */
    bool fast_kernels;           /* false (the default): every forward pass of this call runs the
                                  * batch-invariant kernels (sa_ctx_decode_with), so a token's
                                  * logits do not depend on how many tokens were computed with it
                                  * and use_draft changes the speed only. true: the context's own
                                  * mode (sa_ctx_params.batch_invariant; by default the fast kernels,
                                  * one-token decode ~1.5x faster on avx512); a speculated token can
                                  * then differ from plain decoding's at a near-tie. For timing
                                  * plain decoding, not for use with use_draft. */
    float *logp;                 /* NULL, or max_tokens + 1 floats the caller owns: logp[i] receives
                                  * the log-probability of the i-th generated token under the model
                                  * (log-softmax of its raw logits: temperature 1, whatever the
                                  * sampler does), then logp[n_generated] that of the end-of-generation
                                  * token when the call stopped on one (the gated revision, issue 13) */
};

/* max_tokens 256, use_draft true, greedy, max_draft 0, fast_kernels false, logp NULL. */
struct sa_spec_params sa_spec_default_params(void);

struct sa_spec_stats {
    int32_t n_generated;     /* tokens produced (excluding the end-of-generation token) */
    int32_t n_draft;         /* proposals the model's choice was compared with: draft tokens, and
                              * after a miss spans looked up in the prompt and output */
    int32_t n_accepted;      /* of those, the ones the model chose (acceptance = n_accepted / n_draft;
                              * the EOG counts when a proposal was the EOG) */
    int32_t n_forward;       /* forward passes (decode calls) made by this call */
    bool hit_eog;            /* stopped at an end-of-generation token */
    int32_t eog;             /* hit_eog: that token's id; else -1 */
};

/* Continues `ctx`, which already holds the prompt and whose last logits (sa_ctx_logits)
 * are those of the prompt's last token, generating until an end-of-generation token of
 * the model's tokenizer (also one inside the draft) or max_tokens, using
 * draft[0..n_draft) (may be NULL when n_draft is 0) as the speculative draft. Appends the
 * generated ids (not the end-of-generation token) to `out`; `stats` may be NULL.
 * On return the cache holds the prompt followed by the first n generated tokens, where
 * n_generated - 1 <= n <= n_generated (a token that was only sampled is not decoded: no
 * forward pass is spent on it) and never the end-of-generation token; rejected draft
 * positions are rolled back. sa_ctx_logits may be NULL afterwards (a rollback).
 * Errors: SA_STATUS_BAD_ARGUMENT (NULL, max_tokens <= 0, a draft id out of range, no
 * logits in ctx, or the context full: as sa_ctx_decode), SA_STATUS_CANCELLED (the
 * context's abort callback), SA_STATUS_NO_MEMORY; `out` then holds the tokens generated
 * before the error, with the cache as described. */
SA_NODISCARD enum sa_status sa_spec_generate(struct sa_ctx *ctx, const int32_t *draft, int32_t n_draft,
                                             const struct sa_spec_params *p, struct sa_ivec *out,
                                             struct sa_spec_stats *stats);

/* log softmax(row)[y] over row[0..V): the log-probability of y under the model's own
 * distribution (temperature 1). */
float sa_spec_log_prob(const float *row, int32_t V, int32_t y);

/* Teacher-forced scoring (the gated revision, issue 13): rolls ctx back to its first `keep`
 * tokens, then decodes `first` followed by toks[0..n) (batch-invariant kernels, as the
 * verification passes of sa_spec_generate, in chunks of SA_SPEC_MAX_DRAFT_DEFAULT rows) and
 * adds to *logp the log-probability of each toks[i] after what precedes it, and of `end`
 * after the last one when end >= 0. `first` is the token at position keep (the one whose
 * logits predict toks[0]). On return the cache holds keep + 1 + n tokens. Errors:
 * BAD_ARGUMENT (keep > len, or keep + 1 + n past n_ctx), CANCELLED, NO_MEMORY; *logp is then
 * unspecified. */
SA_NODISCARD enum sa_status sa_spec_score(struct sa_ctx *ctx, int32_t keep, int32_t first, const int32_t *toks,
                                          int32_t n, int32_t end, double *logp);

#endif
