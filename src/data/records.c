/* records.c: the aligner's training records: reading (JSONL or a JSON array, every field
 * checked, errors naming the line/element and the field), writing, the input templates of
 * Stream Aligner and of the Aligner baseline, and a split by question. */
#define _GNU_SOURCE
#include "sa/records.h"

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

static const char *json_type_name(const cJSON *j) {
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

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
                        json_type_name(j));
    size_t n = strlen(j->valuestring);
    if (sa_utf8_valid_prefix(j->valuestring, n) != n)
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" is not valid UTF-8", where, field);
    *out = strdup(j->valuestring);
    return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "%s: out of memory", where);
}

static enum sa_status record_from_json(const cJSON *o, const char *where, enum sa_record_kind expect,
                                       struct sa_record *rec) {
    memset(rec, 0, sizeof *rec);
    rec->eos = -1;
    if (!cJSON_IsObject(o)) return sa_error(SA_STATUS_BAD_JSON, "%s: expected a JSON object, got %s", where, json_type_name(o));
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
                          json_type_name(eos));
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

/* Line and column (1-based) of text[off]. */
static void line_col(const char *text, size_t off, size_t *line, size_t *col) {
    *line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < off; i++)
        if (text[i] == '\n') {
            (*line)++;
            ls = i + 1;
        }
    *col = off - ls + 1;
}

static void truncate_to(struct sa_records *r, size_t n) {
    for (size_t i = n; i < r->n; i++) record_free(&r->items[i]);
    r->n = n;
}

enum sa_status sa_records_parse(const char *text, size_t len, const char *name, enum sa_record_kind expect,
                                struct sa_records *out) {
    if (!out || (!text && len)) return sa_error(SA_STATUS_BAD_ARGUMENT, "records: NULL argument");
    if (!name) name = "records";
    size_t n0 = out->n, pos = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) pos = 3;
    size_t first = pos;
    while (first < len && (text[first] == ' ' || text[first] == '\t' || text[first] == '\r' || text[first] == '\n'))
        first++;
    enum sa_status st = SA_STATUS_OK;
    char where[512];
    if (first < len && text[first] == '[') {
        const char *end = NULL;
        cJSON *arr = cJSON_ParseWithLengthOpts(text + pos, len - pos, &end, false);
        if (!arr) {
            size_t off = end && end >= text ? (size_t)(end - text) : pos, line, col;
            line_col(text, SA_MIN(off, len), &line, &col);
            return sa_error(SA_STATUS_BAD_JSON, "%s:%zu:%zu: malformed JSON", name, line, col);
        }
        /* nothing but spaces may follow the array */
        for (size_t i = (size_t)(end - text); i < len; i++)
            if (!(text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n' || text[i] == 0)) {
                size_t line, col;
                line_col(text, i, &line, &col);
                cJSON_Delete(arr);
                return sa_error(SA_STATUS_BAD_JSON, "%s:%zu:%zu: text after the JSON array", name, line, col);
            }
        size_t idx = 0;
        for (const cJSON *e = arr->child; e; e = e->next, idx++) {
            snprintf(where, sizeof where, "%s: element %zu", name, idx);
            struct sa_record rec;
            if ((st = record_from_json(e, where, expect, &rec)) || (st = take_record(out, &rec))) break;
        }
        cJSON_Delete(arr);
    } else {
        size_t line_no = 0;
        while (pos < len) {
            size_t e = pos;
            while (e < len && text[e] != '\n') e++;
            line_no++;
            size_t a = pos, b = e;
            while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
            while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
            pos = e + 1;
            if (a == b) continue;
            const char *jend = NULL;
            cJSON *o = cJSON_ParseWithLengthOpts(text + a, b - a, &jend, false);
            if (!o) {
                size_t col = jend && jend >= text + a ? (size_t)(jend - (text + a)) + 1 : 1;
                st = sa_error(SA_STATUS_BAD_JSON, "%s:%zu: malformed JSON near column %zu", name, line_no, col);
                break;
            }
            if (jend && jend < text + b) {
                cJSON_Delete(o);
                st = sa_error(SA_STATUS_BAD_JSON, "%s:%zu: text after the JSON object (one object a line)", name,
                              line_no);
                break;
            }
            snprintf(where, sizeof where, "%s:%zu", name, line_no);
            struct sa_record rec;
            st = record_from_json(o, where, expect, &rec);
            cJSON_Delete(o);
            if (st || (st = take_record(out, &rec))) break;
        }
    }
    if (st) truncate_to(out, n0);
    return st;
}

enum sa_status sa_records_load(const char *path, enum sa_record_kind expect, struct sa_records *out) {
    char *text = NULL;
    size_t len = 0;
    enum sa_status st = sa_read_file(path, 0, &text, &len);
    if (st) return st;
    st = sa_records_parse(text, len, path, expect, out);
    free(text);
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

/* ---- input templates -------------------------------------------------------------------- */

enum sa_status sa_aligner_input(const char *question, const char *prefix, const char *last, char **out) {
    *out = NULL;
    if (!question || !prefix || !last) return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner input: NULL field");
    if (asprintf(out, "##Question: %s | ##Answer_Prefix: %s | ##Answer_Last_Sentence: %s | ##Your_Revision: ",
                 question, prefix, last) < 0) {
        *out = NULL;
        return sa_error(SA_STATUS_NO_MEMORY, "aligner input: out of memory");
    }
    return SA_STATUS_OK;
}

enum sa_status sa_aligner_baseline_input(const char *question, const char *answer, char **out) {
    *out = NULL;
    if (!question || !answer) return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner input: NULL field");
    if (asprintf(out, "##Question: %s\n##Answer: %s\n##Correction: ", question, answer) < 0) {
        *out = NULL;
        return sa_error(SA_STATUS_NO_MEMORY, "aligner input: out of memory");
    }
    return SA_STATUS_OK;
}

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
