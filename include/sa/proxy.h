/* proxy.h: proxy-tuning at decoding time (Liu et al. 2024, "Tuning Language Models by Proxy";
 * issue 15). At each step the next token is drawn from
 *     logits = upstream + alpha * (expert - anti)
 * where the expert is a small model tuned for the task and the anti-expert its untuned base:
 * the difference steers a large upstream without touching its weights. All three models read
 * the same token sequence, each in its own context (KV cache). The upstream's context is the
 * caller's (it decodes it as usual); a proxy holds the expert's and the anti-expert's contexts
 * and follows the upstream's tokens, decoding only what they lack. The models must share one
 * vocabulary (same size, same token strings): checked at init. Usage: docs/PROXY.md. A proxy is
 * not thread-safe: one per sequence. */
#ifndef SA_PROXY_H
#define SA_PROXY_H

#include "sa/context.h"
#include "sa/status.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_model;
struct sa_lora;
struct sa_proxy; /* opaque */

struct sa_proxy_params {
    float alpha; /* weight of (expert - anti); 1: the paper's; 0: the upstream's logits exactly;
                    any finite value (negative steers away from the expert) */
    /* Names of the models in error messages (a path, a model name); NULL: "upstream",
     * "expert", "anti-expert". Borrowed for the duration of sa_proxy_init. */
    const char *upstream_name, *expert_name, *anti_name;
    /* Params of the expert's and the anti-expert's contexts (n_ctx, n_batch, n_threads,
     * batch_invariant, kv_type, abort_cb). n_ctx should be the upstream context's: a side
     * context that is shorter fails when the sequence outgrows it. Its lora field is
     * ignored (see expert_lora); its sched must be NULL. */
    struct sa_ctx_params ctx;
    /* NULL, or a LoRA adapter over the expert model for the expert's context: the expert
     * is then base + adapter, and the anti-expert may be the same base model (the same
     * pointer), as in the paper's setting (an expert fine-tuned from the anti-expert).
     * Borrowed: it must outlive the proxy. */
    const struct sa_lora *expert_lora;
};

/* alpha 1, names NULL, ctx = sa_ctx_default_params(), no expert adapter. */
struct sa_proxy_params sa_proxy_default_params(void);

/* SA_STATUS_OK when `a` and `b` share a vocabulary: the same number of logits
 * (sa_model_n_vocab) and, when they have tokenizers, the same number of tokens and the same
 * token string at every id. Neither has a tokenizer: the sizes alone are compared. Otherwise
 * SA_STATUS_UNSUPPORTED with a message that names both models (name_a, name_b; NULL: "a",
 * "b") and the first difference. SA_STATUS_BAD_ARGUMENT: a NULL model. */
SA_NODISCARD enum sa_status sa_proxy_check_vocab(const struct sa_model *a, const char *name_a,
                                                 const struct sa_model *b, const char *name_b);

/* Creates a proxy over `upstream` (its logits are the caller's: only its vocabulary is read
 * here), `expert` and `anti` (all borrowed: they must outlive the proxy; any of them may be
 * the same model). Checks that expert and anti share the upstream's vocabulary
 * (sa_proxy_check_vocab), then makes the two side contexts. `params` may be NULL (defaults).
 * Errors: SA_STATUS_UNSUPPORTED (vocabularies differ: the message names both models),
 * BAD_ARGUMENT (NULL model or out, alpha not finite, ctx.sched set), NO_MEMORY, and the
 * contexts' errors. Free with sa_proxy_free. */
SA_NODISCARD enum sa_status sa_proxy_init(const struct sa_model *upstream, const struct sa_model *expert,
                                          const struct sa_model *anti, const struct sa_proxy_params *params,
                                          struct sa_proxy **out);
/* NULL does nothing. */
void sa_proxy_free(struct sa_proxy *px);

/* The combined logits for the upstream context's current state: brings the expert's and the
 * anti-expert's contexts to exactly the tokens `upstream` holds (sa_ctx_tokens; their cached
 * common prefix is kept, so a step decodes one token in each), then computes
 * upstream + alpha * (expert - anti) from the three last-token logit rows. *logits points to
 * n_vocab floats owned by the proxy, valid until its next call or free. Errors:
 * SA_STATUS_BAD_ARGUMENT (NULL argument, a context of another model than the proxy's upstream,
 * an upstream context without logits: decode first), and the side contexts' decode errors
 * (the message says which side). */
SA_NODISCARD enum sa_status sa_proxy_logits(struct sa_proxy *px, const struct sa_ctx *upstream, const float **logits);

/* Empties the side contexts (the next sa_proxy_logits evaluates the whole sequence again). */
void sa_proxy_reset(struct sa_proxy *px);

/* The side contexts (borrowed from the proxy; for tests and statistics): which 0 the
 * expert's, 1 the anti-expert's; NULL for another value. */
const struct sa_ctx *sa_proxy_ctx(const struct sa_proxy *px, int which);
float sa_proxy_alpha(const struct sa_proxy *px);

/* The formula on one row: out[i] = upstream[i] + alpha * (expert[i] - anti[i]) for i < n
 * (alpha 0: out = upstream exactly; expert == anti: out = upstream exactly). `out` may alias
 * `upstream`. */
void sa_proxy_mix(const float *upstream, const float *expert, const float *anti, int32_t n, float alpha,
                  float *out);

#ifdef __cplusplus
}
#endif
#endif
