/* sampler.c: the sampler chain (see sa/sampler.h): penalties -> top-k -> top-p -> min-p ->
 * temperature -> softmax -> draw, over candidate arrays sized once for the vocabulary.
 * Top-k is a bounded heap (O(V log k), no full sort); top-p without top-k heapifies the
 * candidates in O(V) and pops only as many as the nucleus needs; min-p is a linear filter.
 * Semantics follow llama.cpp's samplers (src/llama-sampling.cpp): the same penalty
 * formula, top-p keeps the token that crosses the threshold, min-p compares against the
 * most likely candidate, filters run at temperature 1. */
#include "sa/sampler.h"

#include "core/core_impl.h"
#include "core/rng_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sa_sampler {
    struct sa_sampler_params p;
    uint64_t seed;
    struct sa_rng rng;

    int32_t cap;       /* tokens the buffers below hold */
    int32_t *ids;      /* (cap) candidate token ids, first n_cand valid */
    float *vals;       /* (cap) candidate logits; probabilities after the chain */
    int32_t *tmp_i;    /* (cap) scratch for top-k */
    float *tmp_f;      /* (cap) scratch for top-k */
    int32_t *count;    /* (cap) penalty counts by id; all zero between calls */
    int32_t *pos;      /* (cap) position of id in the candidates when stamp[id] == gen */
    uint32_t *stamp;   /* (cap) */
    uint32_t gen;
    size_t n_cand;
    int32_t n_vocab;   /* of the last apply */
    bool identity;     /* candidate i is token i for all i < n_vocab */

    int32_t *hist;     /* (penalty_last_n) ring buffer of accepted tokens */
    int32_t hist_len, hist_head;
};

struct sa_sampler_params sa_sampler_default_params(void) {
    struct sa_sampler_params p = {
        .temp = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .freq_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = SA_SAMPLER_SEED_RANDOM,
    };
    return p;
}

static enum sa_status ensure_cap(struct sa_sampler *s, int32_t n) {
    if (n <= s->cap) return SA_STATUS_OK;
    size_t m = (size_t)n;
    int32_t *ids = realloc(s->ids, m * sizeof *ids);
    if (ids) s->ids = ids;
    float *vals = realloc(s->vals, m * sizeof *vals);
    if (vals) s->vals = vals;
    int32_t *tmp_i = realloc(s->tmp_i, m * sizeof *tmp_i);
    if (tmp_i) s->tmp_i = tmp_i;
    float *tmp_f = realloc(s->tmp_f, m * sizeof *tmp_f);
    if (tmp_f) s->tmp_f = tmp_f;
    int32_t *pos = realloc(s->pos, m * sizeof *pos);
    if (pos) s->pos = pos;
    int32_t *count = calloc(m, sizeof *count); /* zero: the invariant between calls */
    uint32_t *stamp = calloc(m, sizeof *stamp);
    if (!ids || !vals || !tmp_i || !tmp_f || !pos || !count || !stamp) {
        free(count);
        free(stamp);
        return sa_error(SA_STATUS_NO_MEMORY, "sampler: out of memory for %d tokens", n);
    }
    free(s->count);
    free(s->stamp);
    s->count = count;
    s->stamp = stamp;
    s->gen = 0;
    s->cap = n;
    return SA_STATUS_OK;
}

enum sa_status sa_sampler_init(const struct sa_sampler_params *params, int32_t n_vocab, struct sa_sampler **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_sampler_init: out is NULL");
    *out = NULL;
    if (!params) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_sampler_init: params is NULL");
    const struct sa_sampler_params *p = params;
    if (!isfinite(p->temp) || !isfinite(p->top_p) || !isfinite(p->min_p) || !isfinite(p->repeat_penalty) ||
        !isfinite(p->freq_penalty) || !isfinite(p->presence_penalty))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sampler: a parameter is NaN or infinite");
    if (p->repeat_penalty <= 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sampler: repeat_penalty %g must be > 0 (1: off)",
                        (double)p->repeat_penalty);
    if (p->penalty_last_n < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sampler: penalty_last_n %d must be >= 0 (0: off)", p->penalty_last_n);
    if (n_vocab < 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "sampler: n_vocab %d < 0", n_vocab);
    struct sa_sampler *s = calloc(1, sizeof *s);
    if (!s) return sa_error(SA_STATUS_NO_MEMORY, "sampler: out of memory");
    s->p = *p;
    s->seed = p->seed == SA_SAMPLER_SEED_RANDOM ? sa_rng_entropy_seed() : p->seed;
    sa_rng_seed(&s->rng, s->seed);
    if (p->penalty_last_n > 0) {
        s->hist = malloc((size_t)p->penalty_last_n * sizeof *s->hist);
        if (!s->hist) {
            free(s);
            return sa_error(SA_STATUS_NO_MEMORY, "sampler: out of memory");
        }
    }
    enum sa_status st = ensure_cap(s, n_vocab);
    if (st != SA_STATUS_OK) {
        sa_sampler_free(s);
        return st;
    }
    *out = s;
    return SA_STATUS_OK;
}

void sa_sampler_free(struct sa_sampler *s) {
    if (!s) return;
    free(s->hist);
    free(s->stamp);
    free(s->count);
    free(s->pos);
    free(s->tmp_f);
    free(s->tmp_i);
    free(s->vals);
    free(s->ids);
    free(s);
}

void sa_sampler_accept(struct sa_sampler *s, int32_t id) {
    if (!s || id < 0 || s->p.penalty_last_n <= 0) return;
    int32_t n = s->p.penalty_last_n;
    s->hist[s->hist_head] = id;
    s->hist_head = (s->hist_head + 1) % n;
    if (s->hist_len < n) s->hist_len++;
}

void sa_sampler_reset(struct sa_sampler *s) {
    if (!s) return;
    s->hist_len = s->hist_head = 0;
    s->n_cand = 0;
    s->n_vocab = 0;
    sa_rng_seed(&s->rng, s->seed);
}

uint64_t sa_sampler_seed(const struct sa_sampler *s) { return s ? s->seed : 0; }

double sa_sampler_uniform(struct sa_sampler *s) {
    SA_ASSERT(s);
    return sa_rng_uniform(&s->rng);
}

/* ---- the chain ---- */

/* Candidate order: higher value first, then lower id (a total order: deterministic). */
static inline bool better(float va, int32_t ia, float vb, int32_t ib) { return va > vb || (va == vb && ia < ib); }

/* Penalties (llama.cpp llama_sampler_penalties): for each token seen c > 0 times in the
 * last penalty_last_n: logit /= rp (logit > 0) or *= rp (logit <= 0), then
 * logit -= c * freq + presence. Runs while candidate i is token i. */
static void apply_penalties(struct sa_sampler *s, int32_t n_vocab) {
    const struct sa_sampler_params *p = &s->p;
    if (s->hist_len == 0 || (p->repeat_penalty == 1.0f && p->freq_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    for (int32_t i = 0; i < s->hist_len; i++) {
        int32_t t = s->hist[i];
        if (t < n_vocab) s->count[t]++;
    }
    for (int32_t i = 0; i < s->hist_len; i++) {
        int32_t t = s->hist[i];
        if (t >= n_vocab || s->count[t] == 0) continue;
        float v = s->vals[t];
        if (v > 0) v /= p->repeat_penalty;
        else v *= p->repeat_penalty;
        v -= (float)s->count[t] * p->freq_penalty + p->presence_penalty;
        s->vals[t] = v;
        s->count[t] = 0; /* done, and back to the all-zero invariant */
    }
}

/* Min-heap on (tmp_f, tmp_i) by `better` (the worst candidate at the root). */
static void minheap_down(float *hv, int32_t *hi, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(hv[w], hi[w], hv[l], hi[l])) w = l;
        if (r < n && better(hv[w], hi[w], hv[r], hi[r])) w = r;
        if (w == i) return;
        float tv = hv[i];
        hv[i] = hv[w];
        hv[w] = tv;
        int32_t ti = hi[i];
        hi[i] = hi[w];
        hi[w] = ti;
        i = w;
    }
}

/* Keeps the k best candidates, sorted best first: a bounded heap, O(n log k). */
static void top_k(struct sa_sampler *s, size_t k) {
    float *hv = s->tmp_f;
    int32_t *hi = s->tmp_i;
    for (size_t i = 0; i < k; i++) {
        hv[i] = s->vals[i];
        hi[i] = s->ids[i];
    }
    for (size_t i = k / 2; i-- > 0;) minheap_down(hv, hi, k, i);
    for (size_t i = k; i < s->n_cand; i++) {
        if (!better(s->vals[i], s->ids[i], hv[0], hi[0])) continue;
        hv[0] = s->vals[i];
        hi[0] = s->ids[i];
        minheap_down(hv, hi, k, 0);
    }
    /* heap sort: pop the worst to the back, leaving best first */
    for (size_t n = k; n > 1; n--) {
        float tv = hv[0];
        hv[0] = hv[n - 1];
        hv[n - 1] = tv;
        int32_t ti = hi[0];
        hi[0] = hi[n - 1];
        hi[n - 1] = ti;
        minheap_down(hv, hi, n - 1, 0);
    }
    memcpy(s->vals, hv, k * sizeof *hv);
    memcpy(s->ids, hi, k * sizeof *hi);
    s->n_cand = k;
}

/* Max-heap on the candidate arrays themselves (for the lazy sort of top-p). */
static void maxheap_down(float *v, int32_t *id, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, b = i;
        if (l < n && better(v[l], id[l], v[b], id[b])) b = l;
        if (r < n && better(v[r], id[r], v[b], id[b])) b = r;
        if (b == i) return;
        float tv = v[i];
        v[i] = v[b];
        v[b] = tv;
        int32_t ti = id[i];
        id[i] = id[b];
        id[b] = ti;
        i = b;
    }
}

static float max_val(const float *v, size_t n) {
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (v[i] > m) m = v[i];
    return m;
}

/* Top-p (nucleus): the shortest best-first prefix whose temperature-1 mass reaches p,
 * including the token that crosses it. Unsorted candidates are heapified (O(n)) and popped
 * only until the mass is reached; the result is sorted best first. */
static void top_p(struct sa_sampler *s, float p, bool *sorted) {
    size_t n = s->n_cand;
    float *v = s->vals;
    int32_t *id = s->ids;
    float m = *sorted ? v[0] : max_val(v, n);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += exp((double)v[i] - m);
    double target = (double)p * sum, cum = 0;
    if (*sorted) {
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            cum += exp((double)v[i] - m);
            if (cum >= target) {
                keep = i + 1;
                break;
            }
        }
        s->n_cand = keep;
        return;
    }
    for (size_t i = n / 2; i-- > 0;) maxheap_down(v, id, n, i);
    size_t end = n; /* heap is [0, end); popped best-first fill [end, n) from the back */
    while (end > 0) {
        float tv = v[0];
        int32_t ti = id[0];
        end--;
        v[0] = v[end];
        id[0] = id[end];
        v[end] = tv;
        id[end] = ti;
        maxheap_down(v, id, end, 0);
        cum += exp((double)tv - m);
        if (cum >= target) break;
    }
    size_t keep = n - end;
    /* [end, n) holds them best last; dst[i] = src[n-1-i] for i < keep. Swapping i with
     * n-1-i does it: a plain copy when the blocks are disjoint, the full reversal otherwise. */
    for (size_t i = 0; i < keep; i++) {
        size_t j = n - 1 - i;
        if (i >= j) break;
        float tv = v[i];
        v[i] = v[j];
        v[j] = tv;
        int32_t ti = id[i];
        id[i] = id[j];
        id[j] = ti;
    }
    s->n_cand = keep;
    *sorted = true;
}

/* Min-p: keeps candidates with p >= min_p * p_max, i.e. logit >= max + log(min_p). Stable. */
static void min_p(struct sa_sampler *s, float mp, bool sorted) {
    size_t n = s->n_cand, w = 0;
    float m = sorted ? s->vals[0] : max_val(s->vals, n);
    float thr = m + logf(mp);
    if (thr > m) thr = m; /* min_p > 1: keep the most likely */
    for (size_t i = 0; i < n; i++) {
        if (s->vals[i] >= thr) {
            s->vals[w] = s->vals[i];
            s->ids[w] = s->ids[i];
            w++;
        }
    }
    SA_ASSERT(w >= 1); /* the max passes */
    s->n_cand = w;
}

/* Records where each candidate is, for sa_sampler_prob. */
static void index_candidates(struct sa_sampler *s) {
    if (s->identity) return;
    if (++s->gen == 0) { /* wrapped: clear the stamps once every 2^32 calls */
        memset(s->stamp, 0, (size_t)s->cap * sizeof *s->stamp);
        s->gen = 1;
    }
    for (size_t i = 0; i < s->n_cand; i++) {
        s->stamp[s->ids[i]] = s->gen;
        s->pos[s->ids[i]] = (int32_t)i;
    }
}

enum sa_status sa_sampler_apply(struct sa_sampler *s, const float *logits, int32_t n_vocab) {
    if (!s || !logits) return sa_error(SA_STATUS_BAD_ARGUMENT, "sampler: NULL sampler or logits");
    if (n_vocab <= 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "sampler: n_vocab %d must be > 0", n_vocab);
    s->n_cand = 0;
    s->n_vocab = 0;
    enum sa_status st = ensure_cap(s, n_vocab);
    if (st != SA_STATUS_OK) return st;
    const struct sa_sampler_params *p = &s->p;
    size_t n = (size_t)n_vocab;
    for (size_t i = 0; i < n; i++) {
        float v = logits[i];
        s->vals[i] = isnan(v) ? -INFINITY : v;
        s->ids[i] = (int32_t)i;
    }
    s->n_cand = n;
    apply_penalties(s, n_vocab);

    /* greedy: the argmax, lowest id on ties (strict > while scanning up) */
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (s->vals[i] > s->vals[best]) best = i;
    if (s->vals[best] == -INFINITY) {
        s->n_cand = 0;
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sampler: every logit is -inf or NaN (after penalties)");
    }
    s->n_vocab = n_vocab;
    if (p->temp <= 0 || !isfinite(1.0f / p->temp)) { /* a denormal temp is greedy too */
        s->ids[0] = (int32_t)best;
        s->vals[0] = 1.0f;
        s->n_cand = 1;
        s->identity = false;
        index_candidates(s);
        return SA_STATUS_OK;
    }

    bool sorted = false;
    if (p->top_k > 0 && (size_t)p->top_k < s->n_cand) {
        top_k(s, (size_t)p->top_k);
        sorted = true;
    }
    if (p->top_p < 1.0f) top_p(s, p->top_p, &sorted);
    if (p->min_p > 0.0f) min_p(s, p->min_p, sorted);

    /* temperature, then softmax */
    size_t k = s->n_cand;
    float *v = s->vals;
    float m = sorted ? v[0] : max_val(v, k);
    float inv_t = 1.0f / p->temp;
    double sum = 0;
    for (size_t i = 0; i < k; i++) {
        float e = expf((v[i] - m) * inv_t);
        v[i] = e;
        sum += e;
    }
    float inv_sum = (float)(1.0 / sum);
    for (size_t i = 0; i < k; i++) v[i] *= inv_sum;
    s->identity = !sorted && k == n;
    index_candidates(s);
    return SA_STATUS_OK;
}

enum sa_status sa_sampler_sample(struct sa_sampler *s, const float *logits, int32_t n_vocab, int32_t *id) {
    if (!id) return sa_error(SA_STATUS_BAD_ARGUMENT, "sampler: id is NULL");
    *id = -1;
    enum sa_status st = sa_sampler_apply(s, logits, n_vocab);
    if (st != SA_STATUS_OK) return st;
    if (s->n_cand == 1) {
        *id = s->ids[0];
        return SA_STATUS_OK;
    }
    /* inverse CDF over the candidates; probabilities of 0 can never be drawn */
    double total = 0;
    for (size_t i = 0; i < s->n_cand; i++) total += s->vals[i];
    double r = sa_rng_uniform(&s->rng) * total, cum = 0;
    size_t pick = SIZE_MAX;
    for (size_t i = 0; i < s->n_cand; i++) {
        if (s->vals[i] <= 0) continue;
        pick = i; /* the last positive one absorbs rounding at the top end */
        cum += s->vals[i];
        if (r < cum) break;
    }
    SA_ASSERT(pick != SIZE_MAX); /* the max candidate has probability > 0 */
    *id = s->ids[pick];
    return SA_STATUS_OK;
}

size_t sa_sampler_probs(const struct sa_sampler *s, const int32_t **ids, const float **probs) {
    if (ids) *ids = s ? s->ids : NULL;
    if (probs) *probs = s ? s->vals : NULL;
    return s ? s->n_cand : 0;
}

float sa_sampler_prob(const struct sa_sampler *s, int32_t id) {
    if (!s || id < 0 || id >= s->n_vocab || s->n_cand == 0) return 0.0f;
    if (s->identity) return s->vals[id];
    if (s->stamp[id] != s->gen) return 0.0f;
    return s->vals[s->pos[id]];
}
