/* rollout.c: correction records from an upstream's own answers (issue 13). The greedy draft
 * is cut into sentences by the pipeline; a prefix's value is the share of N completions
 * sampled from it (sa_pipeline_sample, the pipeline's own conventions) that reach the gold
 * answer; the first wrong sentence is found by binary search over prefix lengths (OmegaPRM,
 * Luo et al. 2024: value(lo) > 0, value(hi) = 0); K alternatives sampled in its place are
 * valued the same way and the best is kept. With SA_ROLLOUT_LOCATE_GOLD_PATH the first error
 * is the first sentence off the reference solution's gold path (gold_path.c) and only
 * alternatives on it are valued. docs/DATA_ROLLOUT.md. */
#define _POSIX_C_SOURCE 200809L
#include "sa/rollout.h"
#include "sa/math_answer.h"
#include "sa/pipeline.h"
#include "core/core_impl.h"
#include "core/rng_impl.h"
#include "data/gold_path_impl.h"
#include "pipeline/pipeline_impl.h" /* sa_join_strip: the pipeline's whitespace rules */

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sa_rollout_kind_name(enum sa_rollout_kind k) {
    return k == SA_ROLLOUT_COPY ? "copy" : k == SA_ROLLOUT_FIX ? "fix" : "unknown";
}

const char *sa_rollout_outcome_name(enum sa_rollout_outcome o) {
    static const char *const names[] = {"correct", "fixed", "no_alternative", "too_hard", "empty", "on_path"};
    return (unsigned)o < SA_ARRAY_LEN(names) ? names[o] : "unknown";
}

const char *sa_rollout_locate_name(enum sa_rollout_locate l) {
    return l == SA_ROLLOUT_LOCATE_VALUE ? "value" : l == SA_ROLLOUT_LOCATE_GOLD_PATH ? "gold-path" : "unknown";
}

struct sa_rollout_params sa_rollout_default_params(void) {
    return (struct sa_rollout_params){
        .n_rollouts = 4,
        .n_alternatives = 4,
        .temperature = 0.7f,
        .top_p = 1.0f,
        .max_tokens = 384,
        .min_alt_value = 0.5,
        .copy_records = true,
        .answer_records = true,
    };
}

static void record_free(struct sa_rollout_record *r) {
    free(r->prefix);
    free(r->last);
    free(r->answer);
    free(r->correction);
}

void sa_rollout_result_free(struct sa_rollout_result *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_records; i++) record_free(&r->records[i]);
    free(r->records);
    free(r->draft);
    memset(r, 0, sizeof *r);
}

uint64_t sa_rollout_seed(uint64_t seed, const char *id, enum sa_rollout_what what, uint32_t k, uint32_t i) {
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a of the id */
    for (const unsigned char *p = (const unsigned char *)(id ? id : ""); *p; p++) h = (h ^ *p) * 0x100000001B3ull;
    uint64_t x = sa_rng_mix64(seed);
    x = sa_rng_mix64(x ^ h);
    x = sa_rng_mix64(x ^ ((uint64_t)what << 32 | k));
    x = sa_rng_mix64(x ^ i);
    return x == UINT64_MAX ? 0 : x; /* UINT64_MAX means "no seed" to an upstream */
}

/* ---- one question ---- */

struct labeller {
    struct sa_pipeline *pl;
    const char *id, *question, *gold;
    const struct sa_rollout_params *p;
    const struct sa_rollout_params *orig_p; /* p, while n_verify swaps in its own */
    struct sa_rollout_result *res;
    char **text, **orig; /* (S): the draft's pieces */
    size_t n;
    char **prefix;       /* (S + 1): prefix[k] = text[0] + ... + text[k-1] */
    double *value;       /* (S + 1): < 0 not measured yet */
    const struct sa_gold_path *path; /* SA_ROLLOUT_LOCATE_GOLD_PATH; else NULL */
    struct sa_buf tmp;
};

static enum sa_status no_memory(void) {
    return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
}

static bool correct(const struct labeller *lb, const char *text) {
    return sa_math_is_correct(SA_MATH_GSM8K, text, lb->gold);
}

static bool cancelled(const struct labeller *lb) {
    return lb->p->cancel && lb->p->cancel(lb->p->user);
}

/* One sample from `prefix`; counts it. */
static enum sa_status sample(struct labeller *lb, const char *prefix, bool whole, uint64_t seed,
                             struct sa_pipeline_sample_result *out) {
    if (cancelled(lb)) {
        memset(out, 0, sizeof *out);
        return sa_error(SA_STATUS_CANCELLED, "rollout: cancelled");
    }
    struct sa_pipeline_sample_params sp = sa_pipeline_sample_default_params();
    sp.whole = whole;
    sp.temperature = lb->p->temperature;
    sp.top_p = lb->p->top_p;
    sp.seed = seed;
    sp.max_tokens = lb->p->max_tokens;
    sp.cancel = lb->p->cancel;
    sp.cancel_user = lb->p->user;
    enum sa_status s = sa_pipeline_sample(lb->pl, lb->question, prefix, &sp, out);
    lb->res->n_generations++;
    lb->res->n_tokens += out->n_tokens;
    if (lb->p->on_generation) lb->p->on_generation(lb->p->user, lb->res->n_generations, lb->res->n_tokens);
    return s;
}

/* The share of N completions from `prefix` that reach the gold answer; *first_ok (may be
 * NULL) gets the text of the first one that does (malloc'd; NULL if none). */
static enum sa_status value_of(struct labeller *lb, const char *prefix, enum sa_rollout_what what, uint32_t k,
                               double *value, char **first_ok) {
    if (first_ok) *first_ok = NULL;
    int32_t ok = 0;
    enum sa_status s = SA_STATUS_OK;
    for (int32_t i = 0; i < lb->p->n_rollouts && !s; i++) {
        struct sa_pipeline_sample_result r;
        s = sample(lb, prefix, true, sa_rollout_seed(lb->p->seed, lb->id, what, k, (uint32_t)i), &r);
        if (!s) {
            sa_buf_clear(&lb->tmp);
            s = sa_buf_puts(&lb->tmp, prefix);
            if (!s) s = sa_buf_puts(&lb->tmp, r.text);
        }
        if (!s && correct(lb, lb->tmp.data)) {
            ok++;
            if (first_ok && !*first_ok && !(*first_ok = strdup(r.text))) s = no_memory();
        }
        sa_pipeline_sample_result_free(&r);
    }
    if (s && first_ok) {
        free(*first_ok);
        *first_ok = NULL;
    }
    *value = (double)ok / (double)lb->p->n_rollouts;
    return s;
}

/* value(k): the prefix of k draft sentences; value(S) is the draft's own correctness. */
static enum sa_status draft_value(struct labeller *lb, size_t k, double *v) {
    if (lb->value[k] < 0) {
        if (k == lb->n) {
            lb->value[k] = lb->res->draft_correct ? 1.0 : 0.0;
        } else {
            enum sa_status s = value_of(lb, lb->prefix[k], SA_ROLLOUT_SEED_VALUE, (uint32_t)k, &lb->value[k], NULL);
            if (s) return s;
        }
    }
    *v = lb->value[k];
    return SA_STATUS_OK;
}

static enum sa_status push(struct sa_rollout_result *res, const struct sa_rollout_record *rec) {
    struct sa_rollout_record *p = realloc(res->records, (res->n_records + 1) * sizeof *p);
    if (!p) return no_memory();
    res->records = p;
    res->records[res->n_records++] = *rec;
    return SA_STATUS_OK;
}

/* Sentence records: copies of sentences 1..m. */
static enum sa_status copy_records(struct labeller *lb, size_t m) {
    for (size_t i = 1; i <= m; i++) {
        struct sa_rollout_record rec = {.kind = SA_ROLLOUT_COPY, .round = (int32_t)i,
                                        .value_before = lb->value[i - 1], .value_after = lb->value[i],
                                        .alt_value = -1, .n_rollouts = lb->p->n_rollouts};
        rec.prefix = strdup(lb->prefix[i - 1]);
        rec.last = strdup(lb->orig[i - 1]);
        rec.correction = strdup(lb->orig[i - 1]);
        if (!rec.prefix || !rec.last || !rec.correction || push(lb->res, &rec)) {
            record_free(&rec);
            return no_memory();
        }
    }
    return SA_STATUS_OK;
}

static enum sa_status answer_record(struct labeller *lb, enum sa_rollout_kind kind, int32_t round,
                                    const char *correction, double alt_value) {
    struct sa_rollout_record rec = {.kind = kind, .whole = true, .round = round, .value_before = -1,
                                    .value_after = -1, .alt_value = alt_value, .n_rollouts = lb->p->n_rollouts};
    rec.answer = strdup(lb->res->draft);
    rec.correction = sa_join_strip(correction, strlen(correction));
    if (!rec.answer || !rec.correction || push(lb->res, &rec)) {
        record_free(&rec);
        return no_memory();
    }
    return SA_STATUS_OK;
}

/* The K alternatives of sentence h (from the prefix of h - 1 sentences): the best-valued
 * one is kept when its value reaches min_alt_value. */
static enum sa_status fix_first_error(struct labeller *lb, size_t h) {
    struct sa_rollout_result *res = lb->res;
    const char *base = lb->prefix[h - 1];
    const int32_t K = lb->p->n_alternatives;
    char **seen = calloc((size_t)K, sizeof *seen); /* (K): the distinct alternatives' sentences */
    if (!seen) return no_memory();
    int32_t n_seen = 0, n_qualify = 0;
    char *best_text = NULL, *best_sentence = NULL, *best_done = NULL;
    double best = -1;
    enum sa_status s = SA_STATUS_OK;
    for (int32_t i = 0; i < K && !s; i++) {
        struct sa_pipeline_sample_result alt;
        s = sample(lb, base, false, sa_rollout_seed(lb->p->seed, lb->id, SA_ROLLOUT_SEED_ALT, (uint32_t)h, (uint32_t)i),
                   &alt);
        bool skip = s || !alt.sentence || !alt.sentence[0] || !strcmp(alt.sentence, lb->orig[h - 1]);
        for (int32_t j = 0; j < n_seen && !skip; j++) skip = !strcmp(seen[j], alt.sentence);
        if (skip) {
            sa_pipeline_sample_result_free(&alt);
            continue;
        }
        if (!(seen[n_seen] = strdup(alt.sentence))) s = no_memory();
        n_seen += !s;
        int32_t n_eq = 0; /* the gold path: only an alternative with equations, all on it */
        if (!s && lb->path && (sa_gold_path_off(lb->path, alt.sentence, &n_eq) > 0 || n_eq == 0)) {
            sa_pipeline_sample_result_free(&alt);
            continue;
        }
        n_qualify += !s;
        /* the value after the alternative; one that ends the answer is valued by itself */
        sa_buf_clear(&lb->tmp);
        if (!s) s = sa_buf_puts(&lb->tmp, base);
        if (!s) s = sa_buf_puts(&lb->tmp, alt.text);
        char *with_alt = s ? NULL : strdup(lb->tmp.data);
        if (!s && !with_alt) s = no_memory();
        double v = 0;
        char *ok_text = NULL;
        const bool first_only = !s && lb->p->n_rollouts == 0; /* gold path, N 0: the first qualifying one */
        if (first_only) {
            v = -1;
        } else if (!s && alt.done) {
            v = correct(lb, with_alt) ? 1.0 : 0.0;
            if (v > 0 && !(ok_text = strdup(""))) s = no_memory();
        } else if (!s) {
            s = value_of(lb, with_alt, SA_ROLLOUT_SEED_ALT_VALUE, (uint32_t)i, &v, &ok_text);
        }
        if (!s && (v > best || first_only)) { /* ties: the first */
            best = v;
            free(best_text);
            free(best_sentence);
            free(best_done);
            best_text = with_alt;
            best_sentence = alt.sentence;
            best_done = ok_text;
            alt.sentence = NULL;
            with_alt = ok_text = NULL;
        }
        free(with_alt);
        free(ok_text);
        sa_pipeline_sample_result_free(&alt);
        if (first_only) break;
    }
    res->n_alternatives = n_qualify;
    res->best_alt_value = best < 0 ? -1 : best;
    const bool unvalued = best_sentence && lb->p->n_rollouts == 0;
    const double after = lb->path ? -1 : lb->value[h]; /* the gold path measures no value */
    if (!s && (unvalued || (best >= lb->p->min_alt_value && best > 0))) {
        res->outcome = SA_ROLLOUT_FIXED;
        if (lb->p->n_verify > 0) { /* the label, checked with fresh completions */
            struct sa_rollout_params vp = *lb->p;
            vp.n_rollouts = lb->p->n_verify;
            lb->p = &vp;
            s = value_of(lb, lb->prefix[h], SA_ROLLOUT_SEED_VERIFY, (uint32_t)h, &res->verify_after, NULL);
            if (!s) s = value_of(lb, best_text, SA_ROLLOUT_SEED_VERIFY_ALT, (uint32_t)h, &res->verify_alt, NULL);
            lb->p = lb->orig_p;
        }
        struct sa_rollout_record rec = {.kind = SA_ROLLOUT_FIX, .round = (int32_t)h, .value_before = lb->value[h - 1],
                                        .value_after = after, .alt_value = res->best_alt_value,
                                        .n_rollouts = lb->p->n_rollouts};
        rec.prefix = strdup(base);
        rec.last = strdup(lb->orig[h - 1]);
        rec.correction = best_sentence;
        best_sentence = NULL;
        if (!rec.prefix || !rec.last || push(res, &rec)) {
            record_free(&rec);
            s = no_memory();
        }
        /* the corrected answer: prefix + alternative + a good completion (none sampled unvalued) */
        if (!s && lb->p->answer_records && !unvalued) {
            sa_buf_clear(&lb->tmp);
            s = sa_buf_puts(&lb->tmp, best_text);
            if (!s) s = sa_buf_puts(&lb->tmp, best_done ? best_done : "");
            if (!s) s = answer_record(lb, SA_ROLLOUT_FIX, (int32_t)h, lb->tmp.data, best);
        }
    } else if (!s) {
        res->outcome = SA_ROLLOUT_NO_ALTERNATIVE;
    }
    for (int32_t j = 0; j < n_seen; j++) free(seen[j]);
    free(seen);
    free(best_text);
    free(best_sentence);
    free(best_done);
    return s;
}

struct draft_collect {
    const struct labeller *lb;
    struct sa_buf *pieces; /* texts and originals, each NUL-terminated, alternating */
    size_t n;
    enum sa_status s;
};

static bool on_draft_sentence(void *user, const struct sa_pipeline_sentence *ev) {
    struct draft_collect *dc = user;
    if (!dc->s) dc->s = sa_buf_append(dc->pieces, ev->text, ev->len + 1);
    if (!dc->s) dc->s = sa_buf_append(dc->pieces, ev->original, strlen(ev->original) + 1);
    dc->n++;
    return dc->s == SA_STATUS_OK;
}

static bool draft_cancel(void *user) {
    const struct draft_collect *dc = user;
    return cancelled(dc->lb);
}

/* Makes the draft with the pipeline (greedy by its params) or copies the given one. */
static enum sa_status load_draft(struct labeller *lb, const struct sa_rollout_draft *given) {
    struct sa_buf pieces;
    sa_buf_init(&pieces, 0);
    struct draft_collect dc = {.lb = lb, .pieces = &pieces};
    const char *const *text = given ? given->text : NULL, *const *orig = given ? given->original : NULL;
    size_t n = given ? given->n : 0;
    enum sa_status s = SA_STATUS_OK;
    char **ptrs = NULL;
    if (!given) {
        struct sa_pipeline_callbacks cb = {.on_sentence = on_draft_sentence, .cancel = draft_cancel, .user = &dc};
        struct sa_pipeline_result r;
        s = sa_pipeline_run(lb->pl, lb->question, &cb, &r);
        if (!s) s = dc.s;
        lb->res->n_generations++;
        lb->res->n_tokens += r.upstream_tokens;
        sa_pipeline_result_free(&r);
        n = dc.n;
        if (!s && n && !(ptrs = malloc(2 * n * sizeof *ptrs))) s = no_memory();
        char *p = pieces.data;
        for (size_t i = 0; !s && i < n; i++) {
            ptrs[2 * i] = p;
            p += strlen(p) + 1;
            ptrs[2 * i + 1] = p;
            p += strlen(p) + 1;
        }
    }
    lb->n = n;
    if (!s && (!(lb->text = calloc(n + 1, sizeof *lb->text)) || !(lb->orig = calloc(n + 1, sizeof *lb->orig)) ||
               !(lb->prefix = calloc(n + 1, sizeof *lb->prefix)) || !(lb->value = malloc((n + 1) * sizeof *lb->value))))
        s = no_memory();
    struct sa_buf acc;
    sa_buf_init(&acc, 0);
    if (!s) s = sa_buf_append(&acc, "", 0);
    for (size_t k = 0; !s && k <= n; k++) {
        lb->value[k] = -1;
        if (!(lb->prefix[k] = strdup(acc.data))) s = no_memory();
        if (s || k == n) break;
        const char *t = given ? text[k] : ptrs[2 * k], *o = given ? orig[k] : ptrs[2 * k + 1];
        if (!t || !o) s = sa_error(SA_STATUS_BAD_ARGUMENT, "rollout: draft piece %zu is NULL", k + 1);
        else if (!(lb->text[k] = strdup(t)) || !(lb->orig[k] = strdup(o))) s = no_memory();
        else s = sa_buf_puts(&acc, t);
    }
    if (!s && !(lb->res->draft = sa_join_strip(acc.data, acc.len))) s = no_memory();
    sa_buf_free(&acc);
    sa_buf_free(&pieces);
    free(ptrs);
    return s;
}

static enum sa_status check_params(const struct sa_rollout_params *p) {
    const bool gold_path = p->locate == SA_ROLLOUT_LOCATE_GOLD_PATH;
    if (p->locate != SA_ROLLOUT_LOCATE_VALUE && !gold_path)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "rollout: locate %d is not value or gold-path", (int)p->locate);
    if (gold_path && !p->gold_solution)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "rollout: locate gold-path needs gold_solution (the reference solution)");
    if (p->n_rollouts < 0 || (p->n_rollouts == 0 && !gold_path))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "rollout: n_rollouts must be > 0 (0 only with locate gold-path)");
    if (p->n_alternatives <= 0 || p->max_tokens <= 0 || p->n_verify < 0 || !(p->temperature > 0) ||
        !(p->top_p > 0 && p->top_p <= 1) || !(p->min_alt_value >= 0 && p->min_alt_value <= 1))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "rollout: n_alternatives and max_tokens must be > 0, n_verify >= 0, "
                                                "temperature > 0, top_p in (0, 1], min_alt_value in [0, 1]");
    return SA_STATUS_OK;
}

enum sa_status sa_rollout_label(struct sa_pipeline *pl, const char *id, const char *question, const char *gold,
                                const struct sa_rollout_draft *draft, const struct sa_rollout_params *params,
                                struct sa_rollout_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!pl || !id || !question || !gold || !params || !out)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_rollout_label: NULL argument");
    enum sa_status s = check_params(params);
    if (s) return s;
    out->first_error = 0;
    out->value0 = out->best_alt_value = out->verify_after = out->verify_alt = -1;
    const double t0 = sa_time_now();
    struct labeller lb = {.pl = pl, .id = id, .question = question, .gold = gold, .p = params, .orig_p = params,
                          .res = out};
    sa_buf_init(&lb.tmp, 0);
    struct sa_gold_path path = {0};
    if (params->locate == SA_ROLLOUT_LOCATE_GOLD_PATH) {
        s = sa_gold_path_init(question, params->gold_solution, &path);
        lb.path = &path;
    }
    if (!s) s = load_draft(&lb, draft);
    const size_t S = lb.n;
    out->n_sentences = (int32_t)S;
    if (!s) {
        out->draft_correct = correct(&lb, out->draft);
        if (S) lb.value[S] = out->draft_correct ? 1.0 : 0.0;
    }
    if (!s && S == 0) {
        out->outcome = SA_ROLLOUT_EMPTY;
    } else if (!s && out->draft_correct) {
        out->outcome = SA_ROLLOUT_CORRECT;
        if (params->copy_records) s = copy_records(&lb, S);
        if (!s && params->answer_records) s = answer_record(&lb, SA_ROLLOUT_COPY, 0, out->draft, -1);
    } else if (!s && lb.path) { /* the first sentence off the gold path; no value measured */
        size_t h = 0;
        for (size_t k = 0; k < S && !h; k++)
            if (sa_gold_path_off(lb.path, lb.orig[k], NULL) > 0) h = k + 1;
        out->first_error = (int32_t)h;
        if (!h) out->outcome = SA_ROLLOUT_ON_PATH;
        if (h && params->copy_records) s = copy_records(&lb, h - 1);
        if (h && !s) s = fix_first_error(&lb, h);
    } else if (!s) {
        double v0 = 0;
        s = draft_value(&lb, 0, &v0);
        out->value0 = v0;
        if (!s && v0 == 0) out->outcome = SA_ROLLOUT_TOO_HARD;
        else if (!s) {
            size_t lo = 0, hi = S; /* value(lo) > 0, value(hi) = 0 */
            while (!s && hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                double v = 0;
                s = draft_value(&lb, mid, &v);
                if (v > 0) lo = mid;
                else hi = mid;
            }
            out->first_error = (int32_t)hi;
            if (!s && params->copy_records) s = copy_records(&lb, hi - 1);
            if (!s) s = fix_first_error(&lb, hi);
        }
    }
    if (s) { /* no records after an error */
        for (size_t i = 0; i < out->n_records; i++) record_free(&out->records[i]);
        free(out->records);
        out->records = NULL;
        out->n_records = 0;
    }
    for (size_t k = 0; k <= S; k++) {
        if (lb.text && k < S) free(lb.text[k]);
        if (lb.orig && k < S) free(lb.orig[k]);
        if (lb.prefix) free(lb.prefix[k]);
    }
    free(lb.text);
    free(lb.orig);
    free(lb.prefix);
    free(lb.value);
    sa_buf_free(&lb.tmp);
    sa_gold_path_free(&path);
    out->seconds = sa_time_now() - t0;
    return s;
}

/* ---- records as JSON lines ---- */

enum sa_status sa_rollout_record_json(const char *id_json, const char *question, const struct sa_rollout_record *rec,
                                      char **line) {
    if (line) *line = NULL;
    if (!id_json || !question || !rec || !line) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_rollout_record_json: NULL");
    cJSON *id = cJSON_Parse(id_json);
    if (!id) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_rollout_record_json: the id is not JSON: %s", id_json);
    cJSON *j = cJSON_CreateObject();
    bool ok = j != NULL;
    char source[64];
    snprintf(source, sizeof source, "rollout:%d:%s", (int)rec->round, sa_rollout_kind_name(rec->kind));
    ok = ok && cJSON_AddStringToObject(j, "question", question);
    if (rec->whole) {
        ok = ok && cJSON_AddStringToObject(j, "answer", rec->answer ? rec->answer : "");
    } else {
        ok = ok && cJSON_AddStringToObject(j, "prefix", rec->prefix ? rec->prefix : "");
        ok = ok && cJSON_AddStringToObject(j, "last", rec->last ? rec->last : "");
    }
    ok = ok && cJSON_AddStringToObject(j, "correction", rec->correction ? rec->correction : "");
    ok = ok && cJSON_AddStringToObject(j, "source", source);
    if (ok) cJSON_AddItemToObject(j, "id", id);
    else cJSON_Delete(id);
    ok = ok && cJSON_AddStringToObject(j, "kind", sa_rollout_kind_name(rec->kind));
    ok = ok && cJSON_AddNumberToObject(j, "round", rec->round);
    if (ok && rec->value_before >= 0) ok = cJSON_AddNumberToObject(j, "value_before", rec->value_before) != NULL;
    if (ok && rec->value_after >= 0) ok = cJSON_AddNumberToObject(j, "value_after", rec->value_after) != NULL;
    if (ok && rec->alt_value >= 0) ok = cJSON_AddNumberToObject(j, "alt_value", rec->alt_value) != NULL;
    ok = ok && cJSON_AddNumberToObject(j, "n_rollouts", rec->n_rollouts);
    char *s = ok ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) return no_memory();
    size_t n = strlen(s);
    char *l = realloc(s, n + 2);
    if (!l) {
        free(s);
        return no_memory();
    }
    l[n] = '\n';
    l[n + 1] = 0;
    *line = l;
    return SA_STATUS_OK;
}
