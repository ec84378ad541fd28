/* stats.c: accuracy with a Wilson score interval (Wilson 1927; the interval of choice for
 * a proportion, sane at 0% and 100% where the normal approximation is not), a seeded
 * percentile bootstrap of a mean (Efron & Tibshirani 1993), and the per-round answers of a
 * pipeline trace (docs/EVAL.md "Traces"; the lines are read by sa_trace_read). */
#define _GNU_SOURCE
#include "sa/eval.h"
#include "sa/pipeline_trace.h"

#include "core/core_impl.h"
#include "core/rng_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sa_eval_wilson(size_t k, size_t n, double z, double *lo, double *hi) {
    if (n == 0) {
        *lo = 0;
        *hi = 1;
        return;
    }
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double denom = 1 + z2 / nn;
    double center = (p + z2 / (2 * nn)) / denom;
    double half = z / denom * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    *lo = SA_MAX(0.0, center - half);
    *hi = SA_MIN(1.0, center + half);
}

struct sa_eval_accuracy sa_eval_accuracy(const bool *correct, size_t n) {
    struct sa_eval_accuracy a = {.n = n};
    for (size_t i = 0; i < n; i++) a.n_correct += correct[i] ? 1 : 0;
    a.acc = n ? (double)a.n_correct / (double)n : 0.0;
    sa_eval_wilson(a.n_correct, n, 1.959963984540054, &a.lo, &a.hi);
    return a;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted v[0..n) with linear interpolation between order statistics. */
static double quantile(const double *v, size_t n, double q) {
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    if (i + 1 >= n) return v[n - 1];
    double f = pos - (double)i;
    return v[i] + f * (v[i + 1] - v[i]);
}

enum sa_status sa_eval_bootstrap_mean(const double *x, size_t n, uint32_t n_boot, uint64_t seed, double level,
                                      double *lo, double *hi) {
    if (!x || !lo || !hi || n == 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "bootstrap: no data");
    if (n_boot < 2) return sa_error(SA_STATUS_BAD_ARGUMENT, "bootstrap: need at least 2 resamples, got %u", n_boot);
    if (!(level > 0 && level < 1)) return sa_error(SA_STATUS_BAD_ARGUMENT, "bootstrap: level %g not in (0, 1)", level);
    double *means = malloc((size_t)n_boot * sizeof *means);
    if (!means) return sa_error(SA_STATUS_NO_MEMORY, "bootstrap: out of memory");
    struct sa_rng rng;
    sa_rng_seed(&rng, seed);
    for (uint32_t b = 0; b < n_boot; b++) {
        double s = 0;
        for (size_t i = 0; i < n; i++) {
            /* uniform index: the high bits of a 64-bit draw scaled (bias < n / 2^64) */
            size_t j = (size_t)(((unsigned __int128)sa_rng_next(&rng) * n) >> 64);
            s += x[j];
        }
        means[b] = s / (double)n;
    }
    qsort(means, n_boot, sizeof *means, cmp_double);
    *lo = quantile(means, n_boot, (1 - level) / 2);
    *hi = quantile(means, n_boot, (1 + level) / 2);
    free(means);
    return SA_STATUS_OK;
}

/* ---- traces ----------------------------------------------------------------------------- */

struct trace_round {
    int32_t round;
    char *answer;
};

struct trace_q {
    char *id, *question, *key;
    struct trace_round *rounds; /* (n_rounds), sorted by round once loaded */
    size_t n_rounds, cap;
};

struct sa_trace {
    struct trace_q *q; /* (n) */
    size_t n, cap;
    size_t *slots; /* open-addressing hash of keys: index + 1, 0 empty; (n_slots) */
    size_t n_slots;
    int32_t min_round, max_round;
    bool any;
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool rehash(struct sa_trace *t, size_t n_slots) {
    size_t *s = calloc(n_slots, sizeof *s);
    if (!s) return false;
    for (size_t i = 0; i < t->n; i++) {
        size_t h = (size_t)(hash_str(t->q[i].key) & (n_slots - 1));
        while (s[h]) h = (h + 1) & (n_slots - 1);
        s[h] = i + 1;
    }
    free(t->slots);
    t->slots = s;
    t->n_slots = n_slots;
    return true;
}

/* The question with `key`, added when new; NULL when out of memory. */
static struct trace_q *trace_find(struct sa_trace *t, const char *key, bool *is_new) {
    *is_new = false;
    if (t->n_slots) {
        size_t h = (size_t)(hash_str(key) & (t->n_slots - 1));
        while (t->slots[h]) {
            struct trace_q *q = &t->q[t->slots[h] - 1];
            if (!strcmp(q->key, key)) return q;
            h = (h + 1) & (t->n_slots - 1);
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        struct trace_q *q = realloc(t->q, cap * sizeof *q);
        if (!q) return NULL;
        t->q = q;
        t->cap = cap;
    }
    struct trace_q *q = &t->q[t->n];
    memset(q, 0, sizeof *q);
    q->key = strdup(key);
    if (!q->key) return NULL;
    t->n++;
    if (2 * t->n > t->n_slots) { /* grow: the rehash places the new key too */
        if (!rehash(t, t->n_slots ? 2 * t->n_slots : 256)) {
            t->n--;
            free(q->key);
            return NULL;
        }
    } else {
        size_t h = (size_t)(hash_str(key) & (t->n_slots - 1));
        while (t->slots[h]) h = (h + 1) & (t->n_slots - 1);
        t->slots[h] = t->n;
    }
    *is_new = true;
    return q;
}

void sa_trace_free(struct sa_trace *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        struct trace_q *q = &t->q[i];
        for (size_t r = 0; r < q->n_rounds; r++) free(q->rounds[r].answer);
        free(q->rounds);
        free(q->id);
        free(q->question);
        free(q->key);
    }
    free(t->q);
    free(t->slots);
    free(t);
}

static int cmp_round(const void *a, const void *b) {
    int32_t x = ((const struct trace_round *)a)->round, y = ((const struct trace_round *)b)->round;
    return (x > y) - (x < y);
}

/* One trace line (read by sa_trace_read, src/pipeline/trace.c): the fields the per-round
 * accuracy needs. */
static enum sa_status trace_line(void *user, const struct sa_trace_round *r, const char *where) {
    struct sa_trace *t = user;
    const char *id = (r->has & SA_TRACE_ID) ? r->id : NULL;
    const char *question = (r->has & SA_TRACE_QUESTION) ? r->question : NULL;
    if (!id && !question) return sa_error(SA_STATUS_BAD_JSON, "%s: missing field \"id\" (or \"question\")", where);
    if (!(r->has & SA_TRACE_ROUND)) return sa_error(SA_STATUS_BAD_JSON, "%s: missing field \"round\"", where);
    if (!(r->has & SA_TRACE_ANSWER_SO_FAR))
        return sa_error(SA_STATUS_BAD_JSON, "%s: missing field \"answer_so_far\"", where);
    int32_t round = r->round;
    size_t kl = strlen(id ? id : question) + 3;
    char *key = malloc(kl);
    if (!key) goto oom;
    snprintf(key, kl, "%c:%s", id ? 'i' : 'q', id ? id : question);
    bool is_new;
    struct trace_q *q = trace_find(t, key, &is_new);
    free(key);
    if (!q) goto oom;
    if (is_new) {
        if (id && !(q->id = strdup(id))) goto oom;
        if (question && !(q->question = strdup(question))) goto oom;
    } else if (question && !q->question && !(q->question = strdup(question))) {
        goto oom;
    }
    for (size_t i = 0; i < q->n_rounds; i++)
        if (q->rounds[i].round == round)
            return sa_error(SA_STATUS_BAD_JSON, "%s: round %d of question \"%s\" appears twice", where, (int)round,
                            id ? id : "(by question)");
    if (q->n_rounds == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 8;
        struct trace_round *rr = realloc(q->rounds, cap * sizeof *rr);
        if (!rr) goto oom;
        q->rounds = rr;
        q->cap = cap;
    }
    char *ans = strdup(r->answer_so_far);
    if (!ans) goto oom;
    q->rounds[q->n_rounds++] = (struct trace_round){round, ans};
    if (!t->any || round < t->min_round) t->min_round = round;
    if (!t->any || round > t->max_round) t->max_round = round;
    t->any = true;
    return SA_STATUS_OK;
oom:
    return sa_error(SA_STATUS_NO_MEMORY, "%s: out of memory", where);
}

enum sa_status sa_trace_parse(const char *text, size_t len, const char *name, struct sa_trace **out) {
    *out = NULL;
    if (!text && len) return sa_error(SA_STATUS_BAD_ARGUMENT, "trace: no text");
    if (!name) name = "trace";
    struct sa_trace *t = calloc(1, sizeof *t);
    if (!t) return sa_error(SA_STATUS_NO_MEMORY, "trace: out of memory");
    enum sa_status st = sa_trace_read(text, len, name, trace_line, t, NULL);
    if (st) {
        sa_trace_free(t);
        return st;
    }
    for (size_t i = 0; i < t->n; i++) qsort(t->q[i].rounds, t->q[i].n_rounds, sizeof *t->q[i].rounds, cmp_round);
    *out = t;
    return SA_STATUS_OK;
}

enum sa_status sa_trace_load(const char *path, struct sa_trace **out) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    enum sa_status st = sa_read_file(path, 0, &text, &len);
    if (st) return st;
    st = sa_trace_parse(text, len, path, out);
    free(text);
    if (!st && (*out)->n == 0) { /* a file with no line is a mistake, not "0/0" */
        sa_trace_free(*out);
        *out = NULL;
        st = sa_error(SA_STATUS_BAD_JSON, "%s: no trace lines (the file is empty or holds only blank lines)", path);
    }
    return st;
}

size_t sa_trace_n_questions(const struct sa_trace *t) { return t ? t->n : 0; }
const char *sa_trace_id(const struct sa_trace *t, size_t i) { return t && i < t->n ? t->q[i].id : NULL; }
const char *sa_trace_question(const struct sa_trace *t, size_t i) {
    return t && i < t->n ? t->q[i].question : NULL;
}
int32_t sa_trace_min_round(const struct sa_trace *t) { return t ? t->min_round : 0; }
int32_t sa_trace_max_round(const struct sa_trace *t) { return t ? t->max_round : 0; }

const char *sa_trace_answer(const struct sa_trace *t, size_t i, int32_t round) {
    if (!t || i >= t->n) return NULL;
    const struct trace_q *q = &t->q[i];
    const char *a = NULL;
    for (size_t r = 0; r < q->n_rounds && q->rounds[r].round <= round; r++) a = q->rounds[r].answer;
    return a;
}
