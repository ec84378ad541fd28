/* proxy.c: proxy-tuning (Liu et al. 2024; include/sa/proxy.h): the vocabulary check, the two
 * side contexts (expert, anti-expert) that follow the upstream context's tokens, and the
 * per-step mix upstream + alpha * (expert - anti). docs/PROXY.md. */
#include "sa/proxy.h"
#include "core/core_impl.h"
#include "sa/model.h"
#include "sa/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { SIDE_EXPERT = 0, SIDE_ANTI = 1 };

struct sa_proxy {
    const struct sa_model *upstream;
    struct sa_ctx *side[2]; /* expert, anti-expert: each follows the upstream's tokens */
    float alpha;
    int32_t n_vocab;
    float *logits;          /* (n_vocab) the last combined row */
};

static const char *const side_names[2] = {"expert", "anti-expert"};

struct sa_proxy_params sa_proxy_default_params(void) {
    return (struct sa_proxy_params){.alpha = 1.0f, .ctx = sa_ctx_default_params()};
}

enum sa_status sa_proxy_check_vocab(const struct sa_model *a, const char *name_a, const struct sa_model *b,
                                    const char *name_b) {
    if (!name_a) name_a = "a";
    if (!name_b) name_b = "b";
    if (!a || !b) return sa_error(SA_STATUS_BAD_ARGUMENT, "proxy-tuning: NULL model");
#define HINT "proxy-tuning adds the models' logits token by token, so they must share one vocabulary " \
             "(e.g. Qwen2.5 0.5B and 1.5B do; SmolLM2 and Qwen2.5 do not)"
    const int32_t va = sa_model_n_vocab(a), vb = sa_model_n_vocab(b);
    if (va != vb)
        return sa_error(SA_STATUS_UNSUPPORTED, "proxy-tuning: %s and %s do not share a vocabulary: %d vs %d logits; " HINT,
                        name_a, name_b, (int)va, (int)vb);
    const struct sa_tokenizer *ta = sa_model_tokenizer(a), *tb = sa_model_tokenizer(b);
    if (!ta && !tb) return SA_STATUS_OK; /* sizes are all there is to compare */
    if (!ta || !tb)
        return sa_error(SA_STATUS_UNSUPPORTED,
                        "proxy-tuning: cannot check that %s and %s share a vocabulary: %s has no tokenizer",
                        name_a, name_b, ta ? name_b : name_a);
    const int32_t na = sa_tokenizer_n_vocab(ta), nb = sa_tokenizer_n_vocab(tb);
    if (na != nb)
        return sa_error(SA_STATUS_UNSUPPORTED, "proxy-tuning: %s and %s do not share a vocabulary: %d vs %d tokens; " HINT,
                        name_a, name_b, (int)na, (int)nb);
    for (int32_t id = 0; id < na; id++) {
        const char *sa = sa_tokenizer_vocab_str(ta, id), *sb = sa_tokenizer_vocab_str(tb, id);
        if (!sa || !sb || strcmp(sa, sb))
            return sa_error(SA_STATUS_UNSUPPORTED,
                            "proxy-tuning: %s and %s do not share a vocabulary: token %d is \"%.40s\" in one and "
                            "\"%.40s\" in the other; " HINT,
                            name_a, name_b, (int)id, sa ? sa : "", sb ? sb : "");
    }
#undef HINT
    return SA_STATUS_OK;
}

enum sa_status sa_proxy_init(const struct sa_model *upstream, const struct sa_model *expert,
                             const struct sa_model *anti, const struct sa_proxy_params *params,
                             struct sa_proxy **out) {
    if (out) *out = NULL;
    if (!upstream || !expert || !anti || !out)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_proxy_init: NULL model or out");
    struct sa_proxy_params p = params ? *params : sa_proxy_default_params();
    if (!isfinite(p.alpha)) return sa_error(SA_STATUS_BAD_ARGUMENT, "proxy-tuning: alpha must be finite");
    if (p.ctx.sched)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "proxy-tuning: the side contexts cannot decode through a scheduler");
    const char *nu = p.upstream_name ? p.upstream_name : "upstream";
    enum sa_status s = sa_proxy_check_vocab(upstream, nu, expert, p.expert_name ? p.expert_name : "expert");
    if (!s) s = sa_proxy_check_vocab(upstream, nu, anti, p.anti_name ? p.anti_name : "anti-expert");
    if (s) return s;
    struct sa_proxy *px = calloc(1, sizeof *px);
    if (!px) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    px->upstream = upstream;
    px->alpha = p.alpha;
    px->n_vocab = sa_model_n_vocab(upstream);
    if (!(px->logits = malloc(sizeof(float) * (size_t)px->n_vocab))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct sa_ctx_params cp = p.ctx;
    cp.lora = p.expert_lora;
    if (!s && (s = sa_ctx_init(expert, &cp, &px->side[SIDE_EXPERT]))) s = sa_error_wrap(s, "proxy-tuning: expert");
    cp.lora = NULL;
    if (!s && (s = sa_ctx_init(anti, &cp, &px->side[SIDE_ANTI]))) s = sa_error_wrap(s, "proxy-tuning: anti-expert");
    if (s) {
        sa_proxy_free(px);
        return s;
    }
    *out = px;
    return SA_STATUS_OK;
}

void sa_proxy_free(struct sa_proxy *px) {
    if (!px) return;
    sa_ctx_free(px->side[SIDE_ANTI]);
    sa_ctx_free(px->side[SIDE_EXPERT]);
    free(px->logits);
    free(px);
}

/* Makes `ctx` hold exactly tokens[0..n) with the last one's logits computed: nothing when it
 * does already, else the cached common prefix is kept and the rest decoded. */
static enum sa_status follow(struct sa_ctx *ctx, const int32_t *tokens, int32_t n) {
    if (sa_ctx_len(ctx) == n && sa_ctx_logits(ctx) && !memcmp(sa_ctx_tokens(ctx), tokens, sizeof(int32_t) * (size_t)n))
        return SA_STATUS_OK;
    return sa_ctx_eval_prompt(ctx, tokens, n, NULL, NULL);
}

enum sa_status sa_proxy_logits(struct sa_proxy *px, const struct sa_ctx *upstream, const float **logits) {
    if (logits) *logits = NULL;
    if (!px || !upstream || !logits) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_proxy_logits: NULL argument");
    if (sa_ctx_model(upstream) != px->upstream)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_proxy_logits: the context is not over the proxy's upstream model");
    const float *up = sa_ctx_logits(upstream);
    const int32_t n = sa_ctx_len(upstream);
    if (!up || n <= 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_proxy_logits: the upstream context has no logits (decode first)");
    const int32_t *tokens = sa_ctx_tokens(upstream);
    for (int k = 0; k < 2; k++) {
        enum sa_status s = follow(px->side[k], tokens, n);
        if (s) return sa_error_wrap(s, "proxy-tuning: %s", side_names[k]);
    }
    sa_proxy_mix(up, sa_ctx_logits(px->side[SIDE_EXPERT]), sa_ctx_logits(px->side[SIDE_ANTI]), px->n_vocab, px->alpha,
                 px->logits);
    *logits = px->logits;
    return SA_STATUS_OK;
}

void sa_proxy_reset(struct sa_proxy *px) {
    if (!px) return;
    for (int k = 0; k < 2; k++)
        if (sa_ctx_truncate(px->side[k], 0)) {} /* 0 <= len: cannot fail */
}

const struct sa_ctx *sa_proxy_ctx(const struct sa_proxy *px, int which) {
    return px && (which == SIDE_EXPERT || which == SIDE_ANTI) ? px->side[which] : NULL;
}

float sa_proxy_alpha(const struct sa_proxy *px) {
    return px ? px->alpha : 0.0f;
}

void sa_proxy_mix(const float *upstream, const float *expert, const float *anti, int32_t n, float alpha,
                  float *out) {
    if (alpha == 0.0f) {
        if (out != upstream) memmove(out, upstream, sizeof(float) * (size_t)(n > 0 ? n : 0));
        return;
    }
    for (int32_t i = 0; i < n; i++) {
        const float d = expert[i] - anti[i];
        /* d == 0 keeps the upstream's bits (a -0 logit stays -0) */
        out[i] = d == 0.0f ? upstream[i] : upstream[i] + alpha * d;
    }
}
