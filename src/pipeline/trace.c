/* trace.c: the pipeline trace format (include/sa/pipeline_trace.h): its writer (one line per
 * emitted sentence, as `salign align --trace` writes it) and its reader (every field checked
 * when present; JSONL rules from sa_jsonl_parse). */
#define _GNU_SOURCE
#include "sa/pipeline_trace.h"

#include "core/core_impl.h"
#include "sa/jsonl.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What can refuse an edit: the known checks and the edit judge (refused_by's values). */
#define REFUSERS (SA_PIPELINE_EDIT_CHECK_KNOWN | SA_PIPELINE_EDIT_CHECK_JUDGE)

/* True when b is one of them (an SA_PIPELINE_EDIT_CHECK_* bit). */
static bool is_one_check(unsigned b) {
    return b && !(b & (b - 1)) && (b & REFUSERS);
}

/* The known checks' names, "arith, format, cut", in buf (for messages). */
static const char *known_checks(char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    for (unsigned b = 1; b <= REFUSERS; b <<= 1)
        if (is_one_check(b) && len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "", sa_pipeline_edit_check_name(b));
    return buf;
}

/* ---- writing ---------------------------------------------------------------------------- */

struct sa_trace_round sa_trace_round_of_sentence(const struct sa_pipeline_sentence *s, const char *id_json,
                                                 const char *question) {
    const char *y2 = s->text;
    while (y2 && (*y2 == ' ' || *y2 == '\t' || *y2 == '\n' || *y2 == '\r' || *y2 == '\f' || *y2 == '\v')) y2++;
    struct sa_trace_round r = {
        .id_json = id_json,
        .question = question,
        .round = s->index,
        .answer_so_far = s->answer,
        .y1 = s->original,
        .y2 = y2,
        .text = s->text,
        .aligned = s->aligned,
        .copied = s->copied,
        .eos = s->upstream_done,
        .edit_ratio = s->edit_ratio,
        .upstream_tokens = s->upstream_tokens,
        .upstream_prefill = s->upstream_prefill,
        .upstream_ms = s->upstream_ms,
        .aligner_tokens = s->aligner_tokens,
        .aligner_draft = s->aligner_draft,
        .aligner_accepted = s->aligner_accepted,
        .aligner_prefill = s->aligner_prefill,
        .aligner_ms = s->aligner_ms,
        .t_ms = s->t_ms,
        .margin = s->margin,
        .gated = s->gated,
        .proposed = s->proposed,
        .refused = s->refused,
        .refused_by = s->refused_by,
        .repaired = s->n_repaired,
        .unrepaired = s->unrepaired,
        .judge_margin = s->judge_margin,
    };
    /* a NULL string is left out (as cJSON_AddStringToObject always did here) */
    const uint32_t strs = SA_TRACE_ANSWER_SO_FAR | SA_TRACE_Y1 | SA_TRACE_Y2 | SA_TRACE_TEXT;
    r.has = (SA_TRACE_ALL & ~(SA_TRACE_ID | SA_TRACE_QUESTION | strs)) | (id_json ? SA_TRACE_ID : 0) |
            (question ? SA_TRACE_QUESTION : 0) | (s->answer ? SA_TRACE_ANSWER_SO_FAR : 0) |
            (s->original ? SA_TRACE_Y1 : 0) | (y2 ? SA_TRACE_Y2 | SA_TRACE_TEXT : 0);
    if (s->scored && isfinite(s->margin)) r.has |= SA_TRACE_MARGIN | SA_TRACE_GATED;
    if (s->refused) r.has |= SA_TRACE_REFUSED | (s->refused_by ? SA_TRACE_REFUSED_BY : 0);
    if (((s->scored && s->gated) || s->refused) && s->proposed) r.has |= SA_TRACE_PROPOSED;
    if (s->n_repaired > 0 && s->unrepaired) r.has |= SA_TRACE_REPAIRED | SA_TRACE_UNREPAIRED;
    if (s->judged && isfinite(s->judge_margin)) r.has |= SA_TRACE_JUDGE_MARGIN;
    return r;
}

enum sa_status sa_trace_round_format(const struct sa_trace_round *r, char **line, size_t *len) {
    *line = NULL;
    if (len) *len = 0;
    if (!r) return sa_error(SA_STATUS_BAD_ARGUMENT, "trace: NULL round");
    const struct {
        uint32_t bit;
        const char *key, *value;
    } strs[] = {{SA_TRACE_QUESTION, "question", r->question},
                {SA_TRACE_ANSWER_SO_FAR, "answer_so_far", r->answer_so_far},
                {SA_TRACE_Y1, "y1", r->y1},
                {SA_TRACE_Y2, "y2", r->y2},
                {SA_TRACE_TEXT, "text", r->text},
                {SA_TRACE_PROPOSED, "proposed", r->proposed},
                {SA_TRACE_UNREPAIRED, "unrepaired", r->unrepaired}};
    for (size_t i = 0; i < SA_ARRAY_LEN(strs); i++)
        if ((r->has & strs[i].bit) && !strs[i].value)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "trace: field \"%s\" is marked present but NULL", strs[i].key);
    cJSON *j = cJSON_CreateObject();
    bool ok = j != NULL;
    if (ok && (r->has & SA_TRACE_ID)) {
        cJSON *id = r->id_json ? cJSON_Parse(r->id_json) : NULL;
        if (!id) {
            cJSON_Delete(j);
            return sa_error(SA_STATUS_BAD_ARGUMENT, "trace: the id is not JSON text");
        }
        cJSON_AddItemToObject(j, "id", id);
    }
    /* the order of enum sa_trace_field */
#define STR(bit, key, v) ok = ok && (!(r->has & (bit)) || cJSON_AddStringToObject(j, key, v))
#define NUM(bit, key, v) ok = ok && (!(r->has & (bit)) || cJSON_AddNumberToObject(j, key, v))
#define BOOL(bit, key, v) ok = ok && (!(r->has & (bit)) || cJSON_AddBoolToObject(j, key, v))
    STR(SA_TRACE_QUESTION, "question", r->question);
    NUM(SA_TRACE_ROUND, "round", r->round);
    STR(SA_TRACE_ANSWER_SO_FAR, "answer_so_far", r->answer_so_far);
    STR(SA_TRACE_Y1, "y1", r->y1);
    STR(SA_TRACE_Y2, "y2", r->y2);     /* the revision */
    STR(SA_TRACE_TEXT, "text", r->text); /* what was appended: separator + revision */
    BOOL(SA_TRACE_ALIGNED, "aligned", r->aligned);
    BOOL(SA_TRACE_COPIED, "copied", r->copied);
    NUM(SA_TRACE_EDIT_RATIO, "edit_ratio", r->edit_ratio);
    BOOL(SA_TRACE_EOS, "eos", r->eos);
    NUM(SA_TRACE_UPSTREAM_TOKENS, "upstream_tokens", r->upstream_tokens);
    NUM(SA_TRACE_UPSTREAM_PREFILL, "upstream_prefill", r->upstream_prefill);
    NUM(SA_TRACE_UPSTREAM_MS, "upstream_ms", r->upstream_ms);
    NUM(SA_TRACE_ALIGNER_TOKENS, "aligner_tokens", r->aligner_tokens);
    NUM(SA_TRACE_ALIGNER_DRAFT, "aligner_draft", r->aligner_draft);
    NUM(SA_TRACE_ALIGNER_ACCEPTED, "aligner_accepted", r->aligner_accepted);
    NUM(SA_TRACE_ALIGNER_PREFILL, "aligner_prefill", r->aligner_prefill);
    NUM(SA_TRACE_ALIGNER_MS, "aligner_ms", r->aligner_ms);
    NUM(SA_TRACE_T_MS, "t_ms", r->t_ms);
    if ((r->has & SA_TRACE_REFUSED_BY) && !is_one_check(r->refused_by)) {
        cJSON_Delete(j);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "trace: field \"refused_by\" is not one edit check (0x%x)",
                        r->refused_by);
    }
    if (((r->has & SA_TRACE_MARGIN) && !isfinite(r->margin)) ||
        ((r->has & SA_TRACE_JUDGE_MARGIN) && !isfinite(r->judge_margin))) {
        cJSON_Delete(j);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "trace: field \"%s\" is not a finite number",
                        (r->has & SA_TRACE_MARGIN) && !isfinite(r->margin) ? "margin" : "judge_margin");
    }
    NUM(SA_TRACE_MARGIN, "margin", r->margin);
    BOOL(SA_TRACE_GATED, "gated", r->gated);
    BOOL(SA_TRACE_REFUSED, "refused", r->refused);
    STR(SA_TRACE_REFUSED_BY, "refused_by", sa_pipeline_edit_check_name(r->refused_by));
    STR(SA_TRACE_PROPOSED, "proposed", r->proposed);
    NUM(SA_TRACE_REPAIRED, "repaired", r->repaired);
    STR(SA_TRACE_UNREPAIRED, "unrepaired", r->unrepaired);
    NUM(SA_TRACE_JUDGE_MARGIN, "judge_margin", r->judge_margin);
#undef STR
#undef NUM
#undef BOOL
    char *s = ok ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) return sa_error(SA_STATUS_NO_MEMORY, "trace: out of memory");
    size_t n = strlen(s);
    char *out = realloc(s, n + 2);
    if (!out) {
        free(s);
        return sa_error(SA_STATUS_NO_MEMORY, "trace: out of memory");
    }
    out[n] = '\n';
    out[n + 1] = 0;
    *line = out;
    if (len) *len = n + 1;
    return SA_STATUS_OK;
}

/* ---- reading ---------------------------------------------------------------------------- */

/* The present, non-null field `key` of o (NULL when absent or null). */
static const cJSON *field(const cJSON *o, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return j && !cJSON_IsNull(j) ? j : NULL;
}

static bool is_int(const cJSON *j, double max) {
    return cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble == floor(j->valuedouble) &&
           j->valuedouble <= max;
}

struct read_ctx {
    sa_trace_round_fn fn;
    void *user;
};

static enum sa_status on_object(void *user, const struct sa_jsonl_item *it) {
    const struct read_ctx *rc = user;
    const cJSON *o = it->object;
    const char *where = it->where;
    struct sa_trace_round r = {0};
    char idbuf[32];
    const cJSON *j;
    if ((j = field(o, "id"))) {
        if (cJSON_IsString(j)) r.id = j->valuestring;
        else if (is_int(j, 9e15)) {
            snprintf(idbuf, sizeof idbuf, "%.0f", j->valuedouble);
            r.id = idbuf;
        } else {
            return sa_error(SA_STATUS_BAD_JSON, "%s: field \"id\" must be a string or an integer >= 0", where);
        }
        r.has |= SA_TRACE_ID;
    }
    const struct {
        uint32_t bit;
        const char *key;
        const char **dst;
    } strs[] = {{SA_TRACE_QUESTION, "question", &r.question},
                {SA_TRACE_ANSWER_SO_FAR, "answer_so_far", &r.answer_so_far},
                {SA_TRACE_Y1, "y1", &r.y1},
                {SA_TRACE_Y2, "y2", &r.y2},
                {SA_TRACE_TEXT, "text", &r.text},
                {SA_TRACE_PROPOSED, "proposed", &r.proposed},
                {SA_TRACE_UNREPAIRED, "unrepaired", &r.unrepaired}};
    for (size_t i = 0; i < SA_ARRAY_LEN(strs); i++) {
        if (!(j = field(o, strs[i].key))) continue;
        if (!cJSON_IsString(j))
            return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" must be a string", where, strs[i].key);
        *strs[i].dst = j->valuestring;
        r.has |= strs[i].bit;
    }
    const struct {
        uint32_t bit;
        const char *key;
        bool *dst;
    } bools[] = {{SA_TRACE_ALIGNED, "aligned", &r.aligned},
                 {SA_TRACE_COPIED, "copied", &r.copied},
                 {SA_TRACE_EOS, "eos", &r.eos},
                 {SA_TRACE_GATED, "gated", &r.gated},
                 {SA_TRACE_REFUSED, "refused", &r.refused}};
    for (size_t i = 0; i < SA_ARRAY_LEN(bools); i++) {
        if (!(j = field(o, bools[i].key))) continue;
        if (!cJSON_IsBool(j))
            return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" must be true or false", where, bools[i].key);
        *bools[i].dst = cJSON_IsTrue(j);
        r.has |= bools[i].bit;
    }
    const struct {
        uint32_t bit;
        const char *key;
        int32_t *dst;
    } ints[] = {{SA_TRACE_ROUND, "round", &r.round},
                {SA_TRACE_UPSTREAM_TOKENS, "upstream_tokens", &r.upstream_tokens},
                {SA_TRACE_UPSTREAM_PREFILL, "upstream_prefill", &r.upstream_prefill},
                {SA_TRACE_ALIGNER_TOKENS, "aligner_tokens", &r.aligner_tokens},
                {SA_TRACE_ALIGNER_DRAFT, "aligner_draft", &r.aligner_draft},
                {SA_TRACE_ALIGNER_ACCEPTED, "aligner_accepted", &r.aligner_accepted},
                {SA_TRACE_ALIGNER_PREFILL, "aligner_prefill", &r.aligner_prefill},
                {SA_TRACE_REPAIRED, "repaired", &r.repaired}};
    for (size_t i = 0; i < SA_ARRAY_LEN(ints); i++) {
        if (!(j = field(o, ints[i].key))) continue;
        if (!is_int(j, 1e9))
            return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" must be an integer >= 0", where, ints[i].key);
        *ints[i].dst = (int32_t)j->valuedouble;
        r.has |= ints[i].bit;
    }
    const struct {
        uint32_t bit;
        const char *key;
        double *dst;
        double max;
    } nums[] = {{SA_TRACE_EDIT_RATIO, "edit_ratio", &r.edit_ratio, 1},
                {SA_TRACE_UPSTREAM_MS, "upstream_ms", &r.upstream_ms, INFINITY},
                {SA_TRACE_ALIGNER_MS, "aligner_ms", &r.aligner_ms, INFINITY},
                {SA_TRACE_T_MS, "t_ms", &r.t_ms, INFINITY}};
    for (size_t i = 0; i < SA_ARRAY_LEN(nums); i++) {
        if (!(j = field(o, nums[i].key))) continue;
        if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble < 0 || j->valuedouble > nums[i].max) {
            if (nums[i].max == 1)
                return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" must be a number in [0, 1]", where, nums[i].key);
            return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" must be a number >= 0", where, nums[i].key);
        }
        *nums[i].dst = j->valuedouble;
        r.has |= nums[i].bit;
    }
    const struct {
        uint32_t bit;
        const char *key;
        double *dst;
    } margins[] = {{SA_TRACE_MARGIN, "margin", &r.margin}, {SA_TRACE_JUDGE_MARGIN, "judge_margin", &r.judge_margin}};
    for (size_t i = 0; i < SA_ARRAY_LEN(margins); i++) { /* any finite number: a log-probability difference */
        if (!(j = field(o, margins[i].key))) continue;
        if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
            return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" must be a number", where, margins[i].key);
        *margins[i].dst = j->valuedouble;
        r.has |= margins[i].bit;
    }
    if ((j = field(o, "refused_by"))) { /* a check's name (sa_pipeline_edit_check_name) */
        char names[64];
        for (unsigned b = 1; b <= REFUSERS && !r.refused_by; b <<= 1)
            if (is_one_check(b) && cJSON_IsString(j) && !strcmp(j->valuestring, sa_pipeline_edit_check_name(b)))
                r.refused_by = b;
        if (!r.refused_by)
            return sa_error(SA_STATUS_BAD_JSON, "%s: field \"refused_by\" must name an edit check (%s)", where,
                            known_checks(names, sizeof names));
        r.has |= SA_TRACE_REFUSED_BY;
    }
    char *id_json = NULL;
    if ((r.has & SA_TRACE_ID) && !(id_json = cJSON_PrintUnformatted(field(o, "id"))))
        return sa_error(SA_STATUS_NO_MEMORY, "%s: out of memory", where);
    r.id_json = id_json;
    enum sa_status st = rc->fn(rc->user, &r, where);
    free(id_json);
    return st;
}

enum sa_status sa_trace_read(const char *text, size_t len, const char *name, sa_trace_round_fn fn, void *user,
                             size_t *n_lines) {
    if (n_lines) *n_lines = 0;
    if (!fn) return sa_error(SA_STATUS_BAD_ARGUMENT, "trace: NULL callback");
    struct read_ctx rc = {fn, user};
    return sa_jsonl_parse(text, len, name ? name : "trace", 0, on_object, &rc, n_lines);
}
