/* prompt_file.c: the format of the replaceable prompt files (the files in docs/prompts/): optional
 * '#' comment lines at the top, then "[system]" and "[user]" sections (each at most once;
 * text without any section marker is the user message), each trimmed of leading blank
 * lines and trailing whitespace; and the prompt template type built on it, shared by the judge
 * (src/eval) and the annotator (src/data). */
#define _GNU_SOURCE
#include "core_impl.h"
#include "prompt_impl.h"

#include <stdlib.h>
#include <string.h>

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* A copy of s[0..n) without leading blank lines and trailing whitespace. */
static char *trimmed_copy(const char *s, size_t n) {
    size_t a = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') a = i + 1;
        else if (!is_ws(s[i])) break;
    }
    while (n > a && is_ws(s[n - 1])) n--;
    return strndup(s + a, n - a);
}

static bool line_is(const char *s, size_t n, const char *word) {
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    return n == strlen(word) && !memcmp(s, word, n);
}

enum sa_status sa_prompt_file_parse(const char *text, size_t len, const char *name, char **system, char **user,
                                    bool *has_system) {
    *system = *user = NULL;
    *has_system = false;
    if (sa_utf8_valid_prefix(text, len) != len || memchr(text, 0, len))
        return sa_error(SA_STATUS_BAD_FILE, "%s: not valid UTF-8 text", name);
    size_t pos = 0;
    while (pos < len && text[pos] == '#') { /* the comment header */
        const char *nl = memchr(text + pos, '\n', len - pos);
        pos = nl ? (size_t)(nl - text) + 1 : len;
    }
    const size_t body = pos;
    size_t start[2] = {0, 0}, end[2] = {0, 0}; /* 0 system, 1 user: [start, end) */
    bool seen[2] = {false, false};
    int cur = -1;
    while (pos < len || (pos == len && cur >= 0)) {
        const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
        size_t e = nl ? (size_t)(nl - text) : len;
        int which = line_is(text + pos, e - pos, "[system]") ? 0 : line_is(text + pos, e - pos, "[user]") ? 1 : -1;
        if (which >= 0) {
            if (cur >= 0) end[cur] = pos;
            else
                for (size_t i = body; i < pos; i++)
                    if (!is_ws(text[i]))
                        return sa_error(SA_STATUS_BAD_FILE, "%s: text before the first [system]/[user] line", name);
            if (seen[which])
                return sa_error(SA_STATUS_BAD_FILE, "%s: a second [%s] section", name, which ? "user" : "system");
            seen[which] = true;
            cur = which;
            start[which] = nl ? e + 1 : len;
        }
        if (!nl) break;
        pos = e + 1;
    }
    if (cur >= 0) end[cur] = len;
    if (!seen[0] && !seen[1]) {
        seen[1] = true;
        start[1] = body;
        end[1] = len;
    }
    char *sys = seen[0] ? trimmed_copy(text + start[0], end[0] - start[0]) : strdup("");
    char *usr = seen[1] ? trimmed_copy(text + start[1], end[1] - start[1]) : strdup("");
    if (!sys || !usr) {
        free(sys);
        free(usr);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    if (seen[0] && !*sys) {
        free(sys);
        free(usr);
        return sa_error(SA_STATUS_BAD_FILE, "%s: the [system] section is empty", name);
    }
    if (!*usr) {
        free(sys);
        free(usr);
        return sa_error(SA_STATUS_BAD_FILE, "%s: no user message (a [user] section)", name);
    }
    *system = sys;
    *user = usr;
    *has_system = seen[0];
    return SA_STATUS_OK;
}

enum sa_status sa_prompt_file_parse_with(const char *text, size_t len, const char *name, const char *const *required,
                                         size_t n_required, char **system, char **user) {
    bool has_system;
    enum sa_status s = sa_prompt_file_parse(text, len, name, system, user, &has_system);
    for (size_t i = 0; i < n_required && !s; i++)
        if (!strstr(*user, required[i]))
            s = sa_error(SA_STATUS_BAD_FILE, "%s: the user message has no %s placeholder", name, required[i]);
    if (s) {
        free(*system);
        free(*user);
        *system = *user = NULL;
    }
    return s;
}

enum sa_status sa_prompt_fill(const char *tmpl, const char *const *names, const char *const *values, size_t n,
                              char **out) {
    *out = NULL;
    struct sa_buf b;
    sa_buf_init(&b, 0);
    enum sa_status s = sa_buf_append(&b, "", 0);
    for (const char *q = tmpl; !s && *q;) {
        size_t k = n;
        if (*q == '{')
            for (k = 0; k < n; k++)
                if (!strncmp(q, names[k], strlen(names[k]))) break;
        if (k < n) {
            s = sa_buf_puts(&b, values[k]);
            q += strlen(names[k]);
        } else {
            const char *next = strchr(q + 1, '{');
            size_t m = next ? (size_t)(next - q) : strlen(q);
            s = sa_buf_append(&b, q, m);
            q += m;
        }
    }
    if (s) {
        sa_buf_free(&b);
        return s;
    }
    *out = sa_buf_take(&b, NULL);
    return SA_STATUS_OK;
}

enum sa_status sa_prompt_template_parse(const char *text, size_t len, const char *name, const char *const *required,
                                        size_t n_required, struct sa_prompt_template *out) {
    memset(out, 0, sizeof *out);
    enum sa_status s = sa_prompt_file_parse_with(text, len, name, required, n_required, &out->system, &out->user);
    if (s) return s;
    out->needs_reference = strstr(out->user, "{reference}") != NULL;
    return SA_STATUS_OK;
}

enum sa_status sa_prompt_template_load(const char *path, const char *what, const char *const *required,
                                       size_t n_required, struct sa_prompt_template *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    enum sa_status s = sa_read_file(path, 1 << 20, &text, &len);
    if (s) return sa_error_wrap(s, "%s", what);
    s = sa_prompt_template_parse(text, len, path, required, n_required, out);
    free(text);
    return s;
}

void sa_prompt_template_free(struct sa_prompt_template *t) {
    if (!t) return;
    free(t->system);
    free(t->user);
    memset(t, 0, sizeof *t);
}
