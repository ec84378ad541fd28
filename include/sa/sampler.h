/* sampler.h: the sampler chain that turns a row of logits into a token (llama.cpp's
 * sampler chain with common's default order):
 *   penalties -> top-k -> top-p -> min-p -> temperature -> softmax -> draw
 * The filters see the temperature-1 distribution (as in llama.cpp), so temperature only
 * reshapes what they kept. temp <= 0 is greedy: the argmax after penalties (ties: the
 * lowest id). Seeded with our own PRNG (xoshiro256**), so a seed gives the same tokens on
 * every machine. No allocation per call: buffers are sized at init (grown once if a
 * larger vocabulary shows up). Not thread-safe: one sampler per sequence. */
#ifndef SA_SAMPLER_H
#define SA_SAMPLER_H

#include "sa/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* sa_sampler_params.seed: draw a seed from the clock (read it back with sa_sampler_seed). */
#define SA_SAMPLER_SEED_RANDOM UINT64_MAX

struct sa_sampler_params {
    float temp;             /* temperature; <= 0 (or 1/temp overflowing): greedy (argmax, no draw) */
    int32_t top_k;          /* keep the k most likely tokens; <= 0: off */
    float top_p;            /* keep the smallest most-likely set with mass >= top_p; >= 1: off */
    float min_p;            /* keep tokens with p >= min_p * p_max; <= 0: off */
    float repeat_penalty;   /* logit / rp if > 0 else logit * rp, for tokens seen; 1: off */
    float freq_penalty;     /* logit -= count * freq_penalty; 0: off */
    float presence_penalty; /* logit -= presence_penalty if seen at all; 0: off */
    int32_t penalty_last_n; /* tokens of history the penalties look at; 0: penalties off */
    uint64_t seed;          /* PRNG seed; SA_SAMPLER_SEED_RANDOM: from the clock */
};

/* llama.cpp's common defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, penalties off
 * (repeat 1, freq 0, presence 0, last_n 64), seed SA_SAMPLER_SEED_RANDOM. */
struct sa_sampler_params sa_sampler_default_params(void);

struct sa_sampler; /* opaque */

/* Checks the params (finite, last_n >= 0) and allocates buffers for `n_vocab` tokens
 * (0: allocate on the first call). Free with sa_sampler_free. */
SA_NODISCARD enum sa_status sa_sampler_init(const struct sa_sampler_params *params, int32_t n_vocab,
                                            struct sa_sampler **out);
void sa_sampler_free(struct sa_sampler *s);

/* Runs the chain over logits[0..n_vocab) (not modified) and draws a token into *id.
 * NaN logits count as -inf. Errors: SA_STATUS_BAD_ARGUMENT (NULL, n_vocab <= 0, every
 * logit -inf/NaN), SA_STATUS_NO_MEMORY (growing the buffers). Does not call accept. */
SA_NODISCARD enum sa_status sa_sampler_sample(struct sa_sampler *s, const float *logits, int32_t n_vocab,
                                              int32_t *id);
/* The chain without the draw: fills the distribution that sa_sampler_probs returns.
 * sa_sampler_sample is sa_sampler_apply + a draw from it. */
SA_NODISCARD enum sa_status sa_sampler_apply(struct sa_sampler *s, const float *logits, int32_t n_vocab);
/* The distribution after the last apply/sample: *ids and *probs point to n candidates
 * (probabilities summing to 1; every token not listed has probability 0), owned by the
 * sampler and valid until its next apply/sample/reset/free. Order: by probability
 * descending when a top-k or top-p filter ran (ties by id), otherwise by id. Greedy: one
 * candidate with probability 1. Returns n (0 before the first call). For the
 * speculative-sampling acceptance rule, which needs p(token) under the chain. */
size_t sa_sampler_probs(const struct sa_sampler *s, const int32_t **ids, const float **probs);
/* p(id) in that distribution (0 if filtered out). O(1). */
float sa_sampler_prob(const struct sa_sampler *s, int32_t id);

/* Records a token as generated (or as part of the prompt) for the penalties' history. */
void sa_sampler_accept(struct sa_sampler *s, int32_t id);
/* Forgets the history and the last distribution and re-seeds the PRNG with the seed. */
void sa_sampler_reset(struct sa_sampler *s);
/* The seed in use (the drawn one for SA_SAMPLER_SEED_RANDOM). */
uint64_t sa_sampler_seed(const struct sa_sampler *s);
/* A uniform double in [0, 1) from the sampler's PRNG stream (for acceptance tests that
 * must stay reproducible under the same seed). */
double sa_sampler_uniform(struct sa_sampler *s);

#ifdef __cplusplus
}
#endif
#endif
