/* cli_resume.c: resuming append-only JSONL outputs (cli_resume.h). */
#define _GNU_SOURCE
#include "cli_resume.h"
#include "cli.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_keyset_has(const struct cli_keyset *s, const char *k) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->k[i], k)) return true;
    return false;
}

int cli_keyset_take(struct cli_keyset *s, char *k) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **p = realloc(s->k, cap * sizeof *p);
        if (!p) return -1;
        s->k = p;
        s->cap = cap;
    }
    s->k[s->n++] = k;
    return 0;
}

int cli_keyset_add(struct cli_keyset *s, const char *k) {
    char *c = strdup(k);
    if (!c || cli_keyset_take(s, c)) {
        free(c);
        return -1;
    }
    return 0;
}

void cli_keyset_free(struct cli_keyset *s) {
    for (size_t i = 0; i < s->n; i++) free(s->k[i]);
    free(s->k);
    *s = (struct cli_keyset){0};
}

size_t cli_complete_prefix(const char *text, size_t len, const char **why) {
    *why = NULL;
    if (!len) return 0;
    if (text[len - 1] != '\n') {
        const char *nl = memrchr(text, '\n', len);
        *why = "no final newline";
        return nl ? (size_t)(nl - text) + 1 : 0;
    }
    size_t e = len; /* the last non-blank line: [a, e) */
    for (;;) {
        const char *nl = e > 1 ? memrchr(text, '\n', e - 1) : NULL;
        size_t a = nl ? (size_t)(nl - text) + 1 : 0;
        if (strspn(text + a, " \t\r") < e - 1 - a) {
            const char *end = NULL;
            cJSON *j = cJSON_ParseWithLengthOpts(text + a, e - 1 - a, &end, false);
            bool ok = cJSON_IsObject(j) && end && (size_t)(end - text) + strspn(end, " \t\r") >= e - 1;
            cJSON_Delete(j);
            if (!ok) *why = "not a JSON object";
            return ok ? len : a;
        }
        if (!a) return len;
        e = a;
    }
}

char *cli_line_key(const char *line, size_t n, const char *key) {
    cJSON *j = cJSON_ParseWithLength(line, n);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, key);
    char *k = id ? cJSON_PrintUnformatted(id) : NULL;
    cJSON_Delete(j);
    return k;
}

int cli_resume_tidy(const char *cmd, const char *path, const char *key, const struct cli_keyset *keep,
                    struct cli_keyset *ids) {
    if (!path || !cli_file_exists(path)) return CLI_OK;
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(path, &text, &len)) return cli_fail(NULL);
    const char *why = NULL;
    size_t n = cli_complete_prefix(text, len, &why), w = 0, dropped = 0;
    if (n < len) fprintf(stderr, "salign %s: %s: the last line was cut (%s): dropped it\n", cmd, path, why);
    int rc = CLI_OK;
    for (size_t a = 0; a < n && rc == CLI_OK;) {
        const char *nl = memchr(text + a, '\n', n - a);
        size_t e = nl ? (size_t)(nl - text) + 1 : n;
        char *k = cli_line_key(text + a, e - a, key);
        bool blank = strspn(text + a, " \t\r\n") >= e - a;
        if (!blank && ids && k && cli_keyset_add(ids, k)) rc = cli_fail("out of memory");
        if (blank || (keep && (!k || !cli_keyset_has(keep, k)))) {
            dropped += !blank;
        } else {
            memmove(text + w, text + a, e - a);
            w += e - a;
        }
        free(k);
        a = e;
    }
    if (rc == CLI_OK && w != len) {
        if (dropped)
            fprintf(stderr, "salign %s: %s: dropped %zu line(s) of work not finished (redone)\n", cmd, path, dropped);
        char *tmp = NULL;
        FILE *f = NULL;
        if (asprintf(&tmp, "%s.tmp", path) < 0) tmp = NULL;
        if (!tmp || !(f = fopen(tmp, "w")) || fwrite(text, 1, w, f) != w || fclose(f) || rename(tmp, path)) {
            fprintf(stderr, "salign %s: cannot rewrite %s: %s\n", cmd, path, strerror(errno));
            rc = CLI_FAIL;
        }
        free(tmp);
    }
    free(text);
    return rc;
}

bool cli_append(const char *cmd, FILE *f, const char *text, const char *path) {
    if (fputs(text, f) < 0 || fflush(f)) {
        fprintf(stderr, "salign %s: cannot write %s: %s\n", cmd, path, strerror(errno));
        return false;
    }
    return true;
}
