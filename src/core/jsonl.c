/* jsonl.c: the one JSON Lines reader (include/sa/jsonl.h): line by line (or one JSON array of
 * objects), cJSON objects handed to a callback, every error naming the file and the line. The
 * rules are in the header; docs/EVAL.md ("Records") describes them for users. */
#define _GNU_SOURCE
#include "sa/jsonl.h"

#include "core/core_impl.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sa_jsonl_type_name(const struct cJSON *j) {
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Offset of the first "\u0000" escape in s[0..n), or n. A backslash outside a string makes
 * the JSON malformed (already rejected), so escapes can be consumed pair by pair from the
 * start: "\\u0000" (an escaped backslash, then "u0000") is no NUL. */
static size_t find_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 6 <= n && !memcmp(s + i + 2, "0000", 4)) return i;
        i++; /* the escaped character */
    }
    return n;
}

static bool utf8_ok(const char *s) {
    size_t n = strlen(s);
    return sa_utf8_valid_prefix(s, n) == n;
}

/* Checks every string and key under v (cJSON does not check UTF-8). `field` is the top-level
 * field v belongs to (NULL: v is the object itself). */
static enum sa_status check_utf8(const cJSON *v, const char *field, const char *where) {
    for (const cJSON *c = v->child; c; c = c->next) {
        const char *f = field;
        if (cJSON_IsObject(v) && c->string) {
            if (!utf8_ok(c->string))
                return sa_error(SA_STATUS_BAD_JSON, "%s: a field name is not valid UTF-8", where);
            if (!f) f = c->string;
        }
        if (cJSON_IsString(c) && c->valuestring && !utf8_ok(c->valuestring))
            return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" is not valid UTF-8", where, f ? f : "?");
        if (c->child) {
            enum sa_status st = check_utf8(c, f, where);
            if (st) return st;
        }
    }
    return SA_STATUS_OK;
}

/* The checks every object passes before the callback sees it. */
static enum sa_status check_object(const cJSON *o, const char *where) {
    if (!cJSON_IsObject(o))
        return sa_error(SA_STATUS_BAD_JSON, "%s: expected a JSON object, got %s", where, sa_jsonl_type_name(o));
    return check_utf8(o, NULL, where);
}

static enum sa_status nul_error(const char *where) {
    return sa_error(SA_STATUS_BAD_JSON,
                    "%s: a string holds \\u0000 (the NUL character); salign keeps text as C strings, where it "
                    "would cut the text: remove it from the input",
                    where);
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

static enum sa_status parse_array(const char *text, size_t len, size_t pos, const char *name, sa_jsonl_fn fn,
                                  void *user, size_t *n_items) {
    const char *end = NULL;
    cJSON *arr = cJSON_ParseWithLengthOpts(text + pos, len - pos, &end, false);
    size_t line, col;
    if (!arr) {
        size_t off = end && end >= text ? (size_t)(end - text) : pos;
        line_col(text, SA_MIN(off, len), &line, &col);
        return sa_error(SA_STATUS_BAD_JSON, "%s:%zu:%zu: malformed JSON", name, line, col);
    }
    /* nothing but spaces may follow the array */
    for (size_t i = (size_t)(end - text); i < len; i++)
        if (!(is_blank(text[i]) || text[i] == '\n' || text[i] == 0)) {
            line_col(text, i, &line, &col);
            cJSON_Delete(arr);
            return sa_error(SA_STATUS_BAD_JSON, "%s:%zu:%zu: text after the JSON array", name, line, col);
        }
    size_t nul = pos + find_nul_escape(text + pos, (size_t)(end - (text + pos)));
    if (nul < (size_t)(end - text)) {
        char where[1024];
        line_col(text, nul, &line, &col);
        snprintf(where, sizeof where, "%s:%zu:%zu", name, line, col);
        cJSON_Delete(arr);
        return nul_error(where);
    }
    enum sa_status st = SA_STATUS_OK;
    if (!cJSON_IsArray(arr)) st = sa_error(SA_STATUS_BAD_JSON, "%s: expected a JSON array", name);
    size_t idx = 0;
    for (const cJSON *e = st ? NULL : arr->child; e; e = e->next, idx++) {
        char where[1024];
        snprintf(where, sizeof where, "%s: element %zu", name, idx);
        if ((st = check_object(e, where))) break;
        struct sa_jsonl_item it = {.object = e, .line = 0, .index = idx, .where = where};
        *n_items = idx + 1;
        if ((st = fn(user, &it))) break;
    }
    cJSON_Delete(arr);
    return st;
}

static enum sa_status parse_lines(const char *text, size_t len, size_t pos, const char *name, sa_jsonl_fn fn,
                                  void *user, size_t *n_items) {
    size_t line_no = 0;
    enum sa_status st = SA_STATUS_OK;
    while (!st && pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t e = nl ? (size_t)(nl - text) : len;
        line_no++;
        size_t a = pos, b = e;
        pos = e + 1;
        while (a < b && is_blank(text[a])) a++;
        while (b > a && is_blank(text[b - 1])) b--;
        if (a == b) continue;
        char where[1024];
        snprintf(where, sizeof where, "%s:%zu", name, line_no);
        const char *jend = NULL;
        cJSON *o = cJSON_ParseWithLengthOpts(text + a, b - a, &jend, false);
        if (!o) {
            size_t col = jend && jend >= text + a ? (size_t)(jend - (text + a)) + 1 : 1;
            return sa_error(SA_STATUS_BAD_JSON, "%s: malformed JSON near column %zu", where, col);
        }
        if (jend && jend < text + b)
            st = sa_error(SA_STATUS_BAD_JSON, "%s: text after the JSON object (one object a line)", where);
        else if (find_nul_escape(text + a, b - a) < b - a) st = nul_error(where);
        else st = check_object(o, where);
        if (!st) {
            struct sa_jsonl_item it = {.object = o, .line = line_no, .index = *n_items, .where = where};
            (*n_items)++;
            st = fn(user, &it);
        }
        cJSON_Delete(o);
    }
    return st;
}

enum sa_status sa_jsonl_parse(const char *text, size_t len, const char *name, unsigned flags, sa_jsonl_fn fn,
                              void *user, size_t *n_items) {
    size_t n_local = 0, *n = n_items ? n_items : &n_local;
    *n = 0;
    if ((!text && len) || !fn) return sa_error(SA_STATUS_BAD_ARGUMENT, "jsonl: NULL text or callback");
    if (!name) name = "input";
    size_t pos = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) pos = 3;
    size_t first = pos;
    while (first < len && (is_blank(text[first]) || text[first] == '\n')) first++;
    enum sa_status st = (flags & SA_JSONL_ARRAY) && first < len && text[first] == '['
                            ? parse_array(text, len, pos, name, fn, user, n)
                            : parse_lines(text, len, pos, name, fn, user, n);
    if (!st && *n == 0 && (flags & SA_JSONL_NOT_EMPTY))
        st = sa_error(SA_STATUS_BAD_JSON, "%s: no JSON objects (the file is empty or holds only blank lines)", name);
    return st;
}

enum sa_status sa_jsonl_load(const char *path, unsigned flags, sa_jsonl_fn fn, void *user, size_t *n_items) {
    if (n_items) *n_items = 0;
    char *text = NULL;
    size_t len = 0;
    enum sa_status st = sa_read_file(path, 0, &text, &len);
    if (st) return st;
    st = sa_jsonl_parse(text, len, path, flags, fn, user, n_items);
    free(text);
    return st;
}
