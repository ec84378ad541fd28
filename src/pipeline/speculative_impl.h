/* speculative_impl.h: copy-speculation for the aligner (Stream Aligner pipeline, issue 5).
 * The aligner mostly copies the upstream's sentence y1, so y1's tokens are a draft: one
 * batched forward pass over the draft verifies it, and the longest prefix that the
 * aligner's own decoding would produce is accepted at once. Greedy: output identical to
 * plain greedy decoding. Sampling: the speculative-sampling acceptance rule (Leviathan et
 * al. 2023, Chen et al. 2023) with a deterministic (one-hot) draft, so the output
 * distribution equals plain sampling from the sampler chain. Internal to src/pipeline. */
#ifndef SA_SPECULATIVE_IMPL_H
#define SA_SPECULATIVE_IMPL_H

#include "sa/context.h"
#include "sa/sampler.h"
#include "tokenizer/tokenizer_impl.h"

#include <stdbool.h>
#include <stdint.h>

struct sa_spec_params {
    int32_t max_tokens;          /* most tokens to generate (> 0) */
    bool use_draft;              /* false: plain decoding, one token per forward pass */
    struct sa_sampler *sampler;  /* NULL: greedy (argmax, ties to the lowest id) */
    int32_t max_draft;           /* most draft tokens verified per forward pass; 0: all */
};

struct sa_spec_stats {
    int32_t n_generated;     /* tokens produced (excluding the end-of-generation token) */
    int32_t n_draft;         /* draft tokens offered */
    int32_t n_accepted;      /* draft tokens accepted */
    int32_t n_forward;       /* forward passes (decode calls) */
    bool hit_eog;            /* stopped at an end-of-generation token */
};

/* Continues `ctx`, which already holds the prompt and whose last logits (sa_ctx_logits)
 * are those of the prompt's last token, generating until an end-of-generation token of
 * the model's tokenizer or max_tokens, using draft[0..n_draft) as the speculative draft.
 * Appends the generated ids (not the end-of-generation token) to `out`. On return the
 * context holds prompt + generated tokens (+ the EOG token if one was produced); draft
 * positions that were rejected are rolled back. */
SA_NODISCARD enum sa_status sa_spec_generate(struct sa_ctx *ctx, const int32_t *draft, int32_t n_draft,
                                             const struct sa_spec_params *p, struct sa_ivec *out,
                                             struct sa_spec_stats *stats);

#endif
