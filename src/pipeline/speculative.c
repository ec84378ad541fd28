/* speculative.c: copy-speculation for the aligner: the upstream's sentence is the draft,
 * verified in batched forward passes; greedy decoding accepts the longest prefix the model
 * agrees with plus its next token, sampling uses the speculative-sampling rule for a
 * one-hot draft. After a mismatch the draft is re-aligned with a lookup of the model's
 * token (prompt-lookup decoding). Invariants and measurements:
 * docs/internals/speculation.md. */
#include "pipeline/speculative_impl.h"

#include "core/core_impl.h"
#include "model/context_impl.h"
#include "sa/model.h"
#include "sa/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Draft tokens fed per pass right after a mismatch (a probe of the re-aligned draft); the
 * budget doubles with each fully accepted pass up to max_draft. A failed probe of 8 costs
 * about 1.5 one-token passes on the CPU (docs/internals/speculation.md). */
#define SPEC_PROBE 8

struct sa_spec_params sa_spec_default_params(void) {
    struct sa_spec_params p = {
        .max_tokens = 256, .use_draft = true, .sampler = NULL, .max_draft = 0, .fast_kernels = false,
        .logp = NULL,
    };
    return p;
}

struct spec {
    struct sa_ctx *ctx;
    const struct sa_tokenizer *tok;
    struct sa_sampler *smp;
    int32_t V;
    const int32_t *draft;
    int32_t n_draft;
};

/* argmax of a row of logits, ties to the lowest id, NaN as -inf (the sampler's greedy rule) */
static int32_t argmax(const float *row, int32_t V) {
    int32_t best = 0;
    float bv = isnan(row[0]) ? -INFINITY : row[0];
    for (int32_t i = 1; i < V; i++)
        if (row[i] > bv) {
            bv = row[i];
            best = i;
        }
    return best;
}

float sa_spec_log_prob(const float *row, int32_t V, int32_t y) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < V; i++)
        if (row[i] > mx) mx = row[i];
    double sum = 0;
    for (int32_t i = 0; i < V; i++) sum += expf(row[i] - mx);
    return (float)((double)(row[y] - mx) - log(sum));
}

/* The token at a position whose logits are `row`, the draft proposing `prop` (-1: none).
 * Greedy: the argmax. Sampling: prop is accepted with probability p(prop) under the
 * sampler's chain; on rejection the token is drawn from p with prop removed and
 * renormalised (the residual max(p - q, 0) of a one-hot draft q), so y ~ p either way. */
static enum sa_status decide(struct spec *s, const float *row, int32_t prop, int32_t *y) {
    if (!s->smp) {
        *y = argmax(row, s->V);
        return SA_STATUS_OK;
    }
    if (prop < 0) return sa_sampler_sample(s->smp, row, s->V, y);
    enum sa_status st = sa_sampler_apply(s->smp, row, s->V);
    if (st) return st;
    const float px = sa_sampler_prob(s->smp, prop);
    /* p(prop) 1 or 0 (a greedy chain, a filtered-out token) needs no draw */
    if (px >= 1.0f || (px > 0.0f && sa_sampler_uniform(s->smp) < (double)px)) {
        *y = prop;
        return SA_STATUS_OK;
    }
    const int32_t *ids;
    const float *probs;
    size_t n = sa_sampler_probs(s->smp, &ids, &probs);
    double rest = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != prop && probs[i] > 0) rest += probs[i];
    if (!(rest > 0)) { /* all the mass on prop up to rounding, yet the draw rejected it */
        *y = prop;
        return SA_STATUS_OK;
    }
    const double r = sa_sampler_uniform(s->smp) * rest;
    double cum = 0;
    int32_t last = -1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == prop || !(probs[i] > 0)) continue;
        last = ids[i];
        cum += probs[i];
        if (r < cum) break;
    }
    *y = last; /* the last candidate also catches r at the top of the rounding gap */
    return SA_STATUS_OK;
}

/* Where the draft continues after the model chose y where the draft said draft[cursor]
 * (or ran out): the index just after an occurrence of y, preferring one whose preceding
 * draft token is the preceding generated token `prev` (a 2-gram), then the one nearest the
 * cursor, ahead before behind (a local insertion or deletion). -1 when y is not in the
 * draft. A wrong guess costs speed only (every fed token is verified): a probe pass of
 * SPEC_PROBE tokens instead of a one-token pass. ref: prompt-lookup decoding (Saxena 2023). */
static int32_t draft_lookup(const struct spec *s, int32_t cursor, int32_t prev, int32_t y) {
    int32_t best = -1;
    int64_t best_score = INT64_MAX;
    for (int32_t k = 0; k < s->n_draft; k++) {
        if (s->draft[k] != y || k == cursor) continue;
        const bool bigram = prev >= 0 && k > 0 && s->draft[k - 1] == prev;
        const int64_t dist = k > cursor ? 2 * (int64_t)(k - cursor) : 2 * (int64_t)(cursor - k) + 1;
        const int64_t score = (bigram ? 0 : (int64_t)1 << 40) + dist;
        if (score < best_score) {
            best_score = score;
            best = k;
        }
    }
    return best < 0 ? -1 : best + 1;
}

/* The history h[0..n) is the cache's tokens followed by y (not in the cache yet). Finds
 * the latest earlier occurrence of its last `key` tokens (1 or 2) and copies up to `max`
 * tokens that followed it into alt; returns how many (0: none). The aligner's prompt holds
 * the question, the answer so far and y1, which the model quotes, and a model that repeats
 * itself repeats its own output. ref: prompt-lookup decoding (Saxena 2023). */
static int32_t history_lookup(const int32_t *cached, int32_t n_cached, int32_t y, int key, int32_t *alt, int32_t max) {
    const int32_t n = n_cached + 1;
#define H(i) ((i) < n_cached ? cached[i] : y)
    if (n < key + 1) return 0;
    const int32_t a = key == 2 ? H(n - 2) : -1, b = H(n - 1);
    for (int32_t j = n - 2; j >= key - 1; j--) {
        if (H(j) != b || (key == 2 && H(j - 1) != a)) continue;
        int32_t k = 0;
        while (k < max && j + 1 + k < n) {
            alt[k] = H(j + 1 + k);
            k++;
        }
        return k;
    }
    return 0;
#undef H
}

/* The proposals for the next positions: the draft from an index, or a copied span. */
struct stream {
    const int32_t *tok; /* (n) */
    int32_t n, i;       /* tokens; the next proposal is tok[i] while i < n */
    bool is_draft;
};

#define SPEC_HISTORY_SPAN 16 /* tokens proposed after a history hit */
#define SPEC_FREE_ROWS 4     /* a pass this long costs about a one-token pass (speculation.md) */

static enum sa_status generate(struct spec *s, const struct sa_spec_params *p, struct sa_ivec *out,
                               struct sa_spec_stats *st) {
    struct sa_ctx *ctx = s->ctx;
    const int32_t V = s->V;
    const int32_t cap = !p->use_draft ? 0 : p->max_draft > 0 ? p->max_draft : SA_SPEC_MAX_DRAFT_DEFAULT;
    const int32_t longest = s->n_draft > SPEC_HISTORY_SPAN ? s->n_draft : SPEC_HISTORY_SPAN;
    const int32_t n_rows_max = (longest < cap ? longest : cap) + 1;
    float *rows = malloc((size_t)n_rows_max * (size_t)V * sizeof(float)); /* (n_rows_max, V) */
    int32_t *batch = malloc((size_t)n_rows_max * sizeof(int32_t));        /* (n_rows_max) */
    if (!rows || !batch) {
        free(rows);
        free(batch);
        return sa_error(SA_STATUS_NO_MEMORY, "speculation: out of memory for %d rows of logits", n_rows_max);
    }
    memcpy(rows, sa_ctx_logits(ctx), (size_t)V * sizeof(float));
    /* rows[i] are the logits of the cached token at position p0 + i, predicting p0 + i + 1;
     * batch[i + 1] is the token fed after it (i + 1 < n_rows) */
    int32_t p0 = sa_ctx_len(ctx) - 1, n_rows = 1;
    int32_t alt[SPEC_HISTORY_SPAN];
    struct stream sm = {.tok = s->draft, .n = p->use_draft ? s->n_draft : 0, .i = 0, .is_draft = true};
    int32_t cursor = 0;   /* the draft index the output is aligned with */
    int32_t budget = cap; /* proposals to feed in the next pass */
    int n_miss = 0;       /* consecutive positions where the proposal was not chosen */
    enum sa_status rc = SA_STATUS_OK;
    for (;;) {
        int32_t y = -1;
        bool done = false;
        for (int32_t i = 0; i < n_rows; i++) {
            const bool fed_next = i + 1 < n_rows;
            const int32_t prop = sm.i < sm.n ? sm.tok[sm.i] : -1;
            SA_ASSERT(!fed_next || batch[i + 1] == prop);
            if ((rc = decide(s, rows + (size_t)i * V, prop, &y))) goto end;
            const bool acc = prop >= 0 && y == prop;
            if (prop >= 0) {
                st->n_draft++;
                st->n_accepted += acc;
            }
            if (p->logp) p->logp[st->n_generated] = sa_spec_log_prob(rows + (size_t)i * V, V, y);
            if (sa_tokenizer_is_eog(s->tok, y)) { /* the EOG is not kept in the cache */
                st->hit_eog = true;
                st->eog = y;
                rc = sa_ctx_truncate(ctx, p0 + i + 1);
                done = true;
                break;
            }
            if ((rc = sa_ivec_push(out, y))) goto end;
            if (s->smp) sa_sampler_accept(s->smp, y);
            if (++st->n_generated >= p->max_tokens) {
                rc = sa_ctx_truncate(ctx, p0 + i + 1 + (acc && fed_next));
                done = true;
                break;
            }
            if (acc) {
                sm.i++;
                if (sm.is_draft) cursor = sm.i;
                n_miss = 0;
                if (fed_next) continue;
                if (n_rows > 1) budget = budget < cap / 2 ? 2 * budget : cap; /* the whole pass agreed */
            } else if (p->use_draft) {
                n_miss++;
                budget = cap < SPEC_PROBE ? cap : SPEC_PROBE;
            }
            /* y is not in the cache: forget the rows fed after position p0 + i */
            if ((rc = sa_ctx_truncate(ctx, p0 + i + 1))) goto end;
            /* re-align after a miss, or when a copied span ran out (when the draft ran out
             * the model most likely ends its turn: only the free guesses below) */
            if (p->use_draft && (!acc || (sm.i >= sm.n && !sm.is_draft))) {
                /* y in the draft; else, on the first miss, the guess that y replaced
                 * draft[cursor] (a substitution, the likeliest edit); else a span of the
                 * prompt or output that followed the last two tokens */
                const int32_t prev = out->len >= 2 ? out->data[out->len - 2] : -1;
                const int32_t hit = draft_lookup(s, cursor, prev, y);
                if (hit >= 0) {
                    sm = (struct stream){.tok = s->draft, .n = s->n_draft, .i = hit, .is_draft = true};
                    cursor = hit;
                } else if (!acc && n_miss == 1 && sm.is_draft && sm.i < sm.n) {
                    sm.i++;
                    cursor = sm.i;
                } else {
                    const int32_t n_alt =
                        history_lookup(sa_ctx_tokens(ctx), sa_ctx_len(ctx), y, 2, alt, SPEC_HISTORY_SPAN);
                    sm = (struct stream){.tok = alt, .n = n_alt, .i = 0, .is_draft = false};
                }
            }
            break;
        }
        if (rc || done) break;

        /* with nothing to propose, guess anyway: with the batch-invariant kernels a pass of
         * up to SPEC_FREE_ROWS tokens costs about what a one-token pass does (the weights are
         * read once either way): the draft where the output left it, else what followed y
         * the last time it occurred */
        if (p->use_draft && !p->fast_kernels && sm.i >= sm.n) {
            if (cursor < s->n_draft) {
                sm = (struct stream){.tok = s->draft, .n = s->n_draft, .i = cursor, .is_draft = true};
            } else {
                const int32_t n_alt = history_lookup(sa_ctx_tokens(ctx), sa_ctx_len(ctx), y, 1, alt, SPEC_FREE_ROWS - 1);
                sm = (struct stream){.tok = alt, .n = n_alt, .i = 0, .is_draft = false};
            }
            if (budget > SPEC_FREE_ROWS - 1) budget = SPEC_FREE_ROWS - 1;
        }
        /* feed y and the next proposals: at most as many as can still be generated and as
         * fit in the context (one more would be the decode error of plain decoding) */
        int32_t k = SA_MIN(sm.n - sm.i, budget);
        k = SA_MIN(k, p->max_tokens - st->n_generated - 1);
        k = SA_MIN(k, sa_ctx_n_ctx(ctx) - sa_ctx_len(ctx) - 1);
        if (k < 0) k = 0;
        batch[0] = y;
        if (k > 0) memcpy(batch + 1, sm.tok + sm.i, (size_t)k * sizeof(int32_t));
        p0 = sa_ctx_len(ctx);
        n_rows = k + 1;
        st->n_forward++;
        /* batch invariance for this call's passes only: see the header and the doc */
        if ((rc = sa_ctx_decode_with(ctx, batch, n_rows, rows, NULL, !p->fast_kernels))) break;
    }
end:
    free(rows);
    free(batch);
    return rc;
}

enum sa_status sa_spec_generate(struct sa_ctx *ctx, const int32_t *draft, int32_t n_draft,
                                const struct sa_spec_params *p, struct sa_ivec *out, struct sa_spec_stats *stats) {
    struct sa_spec_stats dummy;
    struct sa_spec_stats *st = stats ? stats : &dummy;
    memset(st, 0, sizeof *st);
    st->eog = -1;
    if (!ctx || !p || !out || n_draft < 0 || (n_draft > 0 && !draft))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_spec_generate: NULL context, params or output, or a bad draft");
    if (p->max_tokens <= 0 || p->max_draft < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_spec_generate: max_tokens (%d) must be > 0 and max_draft (%d) >= 0",
                        p->max_tokens, p->max_draft);
    if (!sa_ctx_logits(ctx))
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "sa_spec_generate: the context has no logits (HINT: decode the prompt first)");
    const struct sa_model *m = sa_ctx_model(ctx);
    struct spec s = {
        .ctx = ctx, .tok = sa_model_tokenizer(m), .smp = p->sampler, .V = sa_model_n_vocab(m),
        .draft = draft, .n_draft = n_draft,
    };
    for (int32_t i = 0; i < n_draft; i++)
        if (draft[i] < 0 || draft[i] >= s.V)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_spec_generate: draft token %d at %d is out of range [0, %d)",
                            draft[i], i, s.V);
    return generate(&s, p, out, st);
}

enum sa_status sa_spec_score(struct sa_ctx *ctx, int32_t keep, int32_t first, const int32_t *toks, int32_t n,
                             int32_t end, double *logp) {
    if (!ctx || !logp || n < 0 || (n > 0 && !toks))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_spec_score: NULL context or output, or bad tokens");
    if ((int64_t)keep + 1 + n > sa_ctx_n_ctx(ctx))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_spec_score: %d + 1 + %d tokens exceed n_ctx %d", keep, n,
                        sa_ctx_n_ctx(ctx));
    enum sa_status rc = sa_ctx_truncate(ctx, keep);
    if (rc) return rc;
    const int32_t V = sa_model_n_vocab(sa_ctx_model(ctx)), CH = SA_SPEC_MAX_DRAFT_DEFAULT;
    float *rows = malloc((size_t)CH * (size_t)V * sizeof(float)); /* (CH, V) */
    int32_t *batch = malloc((size_t)CH * sizeof(int32_t));        /* (CH) */
    if (!rows || !batch) {
        free(rows);
        free(batch);
        return sa_error(SA_STATUS_NO_MEMORY, "sa_spec_score: out of memory for %d rows of logits", CH);
    }
    /* the sequence fed is first, toks[0..n); row j predicts toks[j] (j < n) or end (j == n) */
    double sum = 0;
    for (int32_t j0 = 0; j0 <= n && !rc; j0 += CH) {
        const int32_t m = SA_MIN(CH, n + 1 - j0);
        for (int32_t j = 0; j < m; j++) batch[j] = j0 + j == 0 ? first : toks[j0 + j - 1];
        if ((rc = sa_ctx_decode_with(ctx, batch, m, rows, NULL, true))) break;
        for (int32_t j = 0; j < m; j++) {
            const int32_t y = j0 + j < n ? toks[j0 + j] : end;
            if (y >= 0) sum += sa_spec_log_prob(rows + (size_t)j * V, V, y);
        }
    }
    free(rows);
    free(batch);
    if (!rc) *logp += sum;
    return rc;
}
