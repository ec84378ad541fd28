/* records.c: the aligner's training records: reading (JSONL or a JSON array through
 * sa_jsonl_parse, every field checked, errors naming the line/element and the field),
 * writing, a record's aligner input (the templates are the pipeline's), and a split by
 * question. */
#define _GNU_SOURCE
#include "sa/records.h"

#include "sa/jsonl.h"
#include "sa/pipeline.h"

#include "core/core_impl.h"
#include "core/rng_impl.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sa_records_init(struct sa_records *r) { memset(r, 0, sizeof *r); }

static void record_free(struct sa_record *x) {
    free(x->question);
    free(x->prefix);
    free(x->last);
    free(x->correction);
    free(x->answer);
    free(x->solution);
    free(x->source);
}

void sa_records_free(struct sa_records *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) record_free(&r->items[i]);
    free(r->items);
    memset(r, 0, sizeof *r);
}

static bool dup_opt(const char *s, char **out) {
    *out = NULL;
    if (!s) return true;
    *out = strdup(s);
    return *out != NULL;
}

enum sa_status sa_records_push(struct sa_records *r, const struct sa_record *rec) {
    if (!r || !rec) return sa_error(SA_STATUS_BAD_ARGUMENT, "records: NULL argument");
    if (rec->kind == SA_RECORD_SENTENCE) {
        if (!rec->question || !rec->prefix || !rec->last || !rec->correction)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "records: a sentence record needs question, prefix, last and correction");
    } else if (rec->kind == SA_RECORD_ANSWER) {
        if (!rec->question || !rec->answer || !rec->correction)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "records: an answer record needs question, answer and correction");
    } else {
        return sa_error(SA_STATUS_BAD_ARGUMENT, "records: unknown record kind %d", (int)rec->kind);
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        struct sa_record *it = realloc(r->items, cap * sizeof *it);
        if (!it) return sa_error(SA_STATUS_NO_MEMORY, "records: out of memory");
        r->items = it;
        r->cap = cap;
    }
    struct sa_record c = {.kind = rec->kind, .eos = rec->eos < 0 ? -1 : rec->eos > 0};
    bool ok = dup_opt(rec->question, &c.question) && dup_opt(rec->correction, &c.correction) &&
              dup_opt(rec->solution, &c.solution) && dup_opt(rec->source, &c.source);
    if (rec->kind == SA_RECORD_SENTENCE) ok = ok && dup_opt(rec->prefix, &c.prefix) && dup_opt(rec->last, &c.last);
    else ok = ok && dup_opt(rec->answer, &c.answer);
    if (!ok) {
        record_free(&c);
        return sa_error(SA_STATUS_NO_MEMORY, "records: out of memory");
    }
    r->items[r->n++] = c;
    return SA_STATUS_OK;
}

/* ---- reading ---------------------------------------------------------------------------- */

/* A string field: required (missing -> error) or optional (missing/null -> NULL). */
static enum sa_status get_str(const cJSON *o, const char *field, bool required, const char *where, char **out) {
    *out = NULL;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!j || (!required && cJSON_IsNull(j))) {
        if (!required) return SA_STATUS_OK;
        return sa_error(SA_STATUS_BAD_JSON, "%s: missing field \"%s\"", where, field);
    }
    if (!cJSON_IsString(j) || !j->valuestring)
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" is %s, expected a string", where, field,
                        sa_jsonl_type_name(j));
    /* UTF-8 and \u0000 were checked by the reader (sa_jsonl_parse) */
    *out = strdup(j->valuestring);
    return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "%s: out of memory", where);
}

static enum sa_status record_from_json(const cJSON *o, const char *where, enum sa_record_kind expect,
                                       struct sa_record *rec) {
    memset(rec, 0, sizeof *rec);
    rec->eos = -1;
    enum sa_record_kind kind = expect;
    if (kind == SA_RECORD_ANY) {
        if (cJSON_GetObjectItemCaseSensitive(o, "last")) kind = SA_RECORD_SENTENCE;
        else if (cJSON_GetObjectItemCaseSensitive(o, "answer")) kind = SA_RECORD_ANSWER;
        else
            return sa_error(SA_STATUS_BAD_JSON,
                            "%s: missing field \"last\" (a sentence record has question, prefix, last, correction; "
                            "an answer record has question, answer, correction)",
                            where);
    }
    enum sa_status st;
    if ((st = get_str(o, "question", true, where, &rec->question))) goto fail;
    if (kind == SA_RECORD_SENTENCE) {
        if ((st = get_str(o, "prefix", true, where, &rec->prefix))) goto fail;
        if ((st = get_str(o, "last", true, where, &rec->last))) goto fail;
    } else {
        if ((st = get_str(o, "answer", true, where, &rec->answer))) goto fail;
    }
    if ((st = get_str(o, "correction", true, where, &rec->correction))) goto fail;
    if ((st = get_str(o, "solution", false, where, &rec->solution))) goto fail;
    if ((st = get_str(o, "source", false, where, &rec->source))) goto fail;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(o, "eos");
    if (eos && !cJSON_IsNull(eos)) {
        if (!cJSON_IsBool(eos)) {
            st = sa_error(SA_STATUS_BAD_JSON, "%s: field \"eos\" is %s, expected true or false", where,
                          sa_jsonl_type_name(eos));
            goto fail;
        }
        rec->eos = cJSON_IsTrue(eos) ? 1 : 0;
    }
    rec->kind = kind;
    return SA_STATUS_OK;
fail:
    record_free(rec);
    memset(rec, 0, sizeof *rec);
    return st;
}

/* Appends rec (taking its strings) to r. */
static enum sa_status take_record(struct sa_records *r, struct sa_record *rec) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        struct sa_record *it = realloc(r->items, cap * sizeof *it);
        if (!it) {
            record_free(rec);
            return sa_error(SA_STATUS_NO_MEMORY, "records: out of memory");
        }
        r->items = it;
        r->cap = cap;
    }
    r->items[r->n++] = *rec;
    return SA_STATUS_OK;
}

static void truncate_to(struct sa_records *r, size_t n) {
    for (size_t i = n; i < r->n; i++) record_free(&r->items[i]);
    r->n = n;
}

struct parse_ctx {
    enum sa_record_kind expect;
    struct sa_records *out;
};

static enum sa_status on_record(void *user, const struct sa_jsonl_item *it) {
    struct parse_ctx *c = user;
    struct sa_record rec;
    enum sa_status st = record_from_json(it->object, it->where, c->expect, &rec);
    return st ? st : take_record(c->out, &rec);
}

enum sa_status sa_records_parse(const char *text, size_t len, const char *name, enum sa_record_kind expect,
                                struct sa_records *out) {
    if (!out || (!text && len)) return sa_error(SA_STATUS_BAD_ARGUMENT, "records: NULL argument");
    size_t n0 = out->n;
    struct parse_ctx c = {expect, out};
    enum sa_status st = sa_jsonl_parse(text, len, name ? name : "records", SA_JSONL_ARRAY, on_record, &c, NULL);
    if (st) truncate_to(out, n0);
    return st;
}

enum sa_status sa_records_load(const char *path, enum sa_record_kind expect, struct sa_records *out) {
    char *text = NULL;
    size_t len = 0;
    enum sa_status st = sa_read_file(path, 0, &text, &len);
    if (st) return st;
    size_t n0 = out ? out->n : 0;
    st = sa_records_parse(text, len, path, expect, out);
    free(text);
    /* a file of no records is a mistake (a wrong path, a failed export), not an empty data set */
    if (!st && out->n == n0)
        st = sa_error(SA_STATUS_BAD_JSON, "%s: no records (the file is empty or holds only blank lines)", path);
    return st;
}

/* ---- writing ---------------------------------------------------------------------------- */

static bool add_str(cJSON *o, const char *k, const char *v) { return !v || cJSON_AddStringToObject(o, k, v); }

static enum sa_status record_json(const struct sa_record *x, struct sa_buf *b) {
    cJSON *o = cJSON_CreateObject();
    bool ok = o && add_str(o, "question", x->question);
    if (x->kind == SA_RECORD_SENTENCE) ok = ok && add_str(o, "prefix", x->prefix) && add_str(o, "last", x->last);
    else ok = ok && add_str(o, "answer", x->answer);
    ok = ok && add_str(o, "correction", x->correction) && add_str(o, "solution", x->solution);
    if (ok && x->eos >= 0) ok = cJSON_AddBoolToObject(o, "eos", x->eos > 0) != NULL;
    ok = ok && add_str(o, "source", x->source);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) return sa_error(SA_STATUS_NO_MEMORY, "records: out of memory");
    enum sa_status st = sa_buf_puts(b, s);
    free(s);
    return st;
}

enum sa_status sa_records_serialize(const struct sa_records *r, enum sa_records_format f, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    struct sa_buf b;
    sa_buf_init(&b, 0);
    enum sa_status st = SA_STATUS_OK;
    bool arr = f == SA_RECORDS_JSON_ARRAY;
    if (arr) st = sa_buf_puts(&b, r->n ? "[\n" : "[");
    for (size_t i = 0; !st && i < r->n; i++) {
        st = record_json(&r->items[i], &b);
        if (!st) st = sa_buf_puts(&b, arr && i + 1 < r->n ? ",\n" : "\n");
    }
    if (!st && arr) st = sa_buf_puts(&b, "]\n");
    if (st) {
        sa_buf_free(&b);
        return sa_error(SA_STATUS_NO_MEMORY, "records: out of memory");
    }
    size_t n = b.len;
    *out = sa_buf_take(&b, len);
    if (!*out) {
        *out = calloc(1, 1);
        if (!*out) return sa_error(SA_STATUS_NO_MEMORY, "records: out of memory");
    }
    if (len) *len = n;
    return SA_STATUS_OK;
}

enum sa_status sa_records_save(const char *path, const struct sa_records *r, enum sa_records_format f) {
    char *s = NULL;
    size_t n = 0;
    enum sa_status st = sa_records_serialize(r, f, &s, &n);
    if (st) return st;
    st = sa_write_file_atomic(path, s, n);
    free(s);
    return st;
}

/* ---- input templates (the formats themselves are the pipeline's: src/pipeline/aligner_input.c) */

enum sa_status sa_record_input(const struct sa_record *rec, char **out) {
    *out = NULL;
    if (!rec) return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner input: NULL record");
    if (rec->kind == SA_RECORD_SENTENCE) return sa_aligner_input(rec->question, rec->prefix, rec->last, out);
    if (rec->kind == SA_RECORD_ANSWER) return sa_aligner_baseline_input(rec->question, rec->answer, out);
    return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner input: unknown record kind %d", (int)rec->kind);
}

/* ---- split by question ------------------------------------------------------------------ */

static const struct sa_records *g_sort_records; /* qsort has no context argument in C11 */

static int cmp_by_question(const void *a, const void *b) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(g_sort_records->items[i].question, g_sort_records->items[j].question);
    return c ? c : (i > j) - (i < j);
}

enum sa_status sa_records_split(const struct sa_records *r, double dev_fraction, uint64_t seed, bool *is_dev) {
    if (!r || (!is_dev && r->n)) return sa_error(SA_STATUS_BAD_ARGUMENT, "split: NULL argument");
    if (!(dev_fraction >= 0 && dev_fraction <= 1))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "split: dev fraction %g is not in [0, 1]", dev_fraction);
    if (r->n == 0) return SA_STATUS_OK;
    size_t *order = malloc(r->n * sizeof *order), *group = malloc(r->n * sizeof *group);
    if (!order || !group) {
        free(order);
        free(group);
        return sa_error(SA_STATUS_NO_MEMORY, "split: out of memory");
    }
    for (size_t i = 0; i < r->n; i++) order[i] = i;
    /* groups: the distinct questions in sorted order, so the split does not depend on the
     * order of the records */
    g_sort_records = r;
    qsort(order, r->n, sizeof *order, cmp_by_question);
    g_sort_records = NULL;
    size_t n_groups = 0;
    for (size_t k = 0; k < r->n; k++) {
        if (k > 0 && strcmp(r->items[order[k]].question, r->items[order[k - 1]].question)) n_groups++;
        group[order[k]] = n_groups;
    }
    n_groups++;
    /* a seeded shuffle of the groups (Fisher-Yates); the first n_dev go to dev */
    size_t *perm = malloc(n_groups * sizeof *perm);
    if (!perm) {
        free(order);
        free(group);
        return sa_error(SA_STATUS_NO_MEMORY, "split: out of memory");
    }
    for (size_t g = 0; g < n_groups; g++) perm[g] = g;
    struct sa_rng rng;
    sa_rng_seed(&rng, seed);
    for (size_t g = n_groups; g > 1; g--) {
        size_t j = (size_t)(((unsigned __int128)sa_rng_next(&rng) * g) >> 64);
        size_t t = perm[g - 1];
        perm[g - 1] = perm[j];
        perm[j] = t;
    }
    size_t n_dev = (size_t)llround(dev_fraction * (double)n_groups);
    /* rank of each group in the shuffle, reusing `order` (n_groups <= n) */
    for (size_t k = 0; k < n_groups; k++) order[perm[k]] = k;
    for (size_t i = 0; i < r->n; i++) is_dev[i] = order[group[i]] < n_dev;
    free(perm);
    free(order);
    free(group);
    return SA_STATUS_OK;
}
