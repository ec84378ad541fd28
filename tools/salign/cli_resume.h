/* cli_resume.h: what the append-only, resumable commands share (salign align, data rollout,
 * data continue): a set of id keys, a file's complete lines, and dropping the lines of
 * unfinished work before a run resumes. */
#ifndef SA_CLI_RESUME_H
#define SA_CLI_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* A set of strings (ids as their JSON text); linear lookup: the sets are a run's questions. */
struct cli_keyset {
    char **k;
    size_t n, cap;
};
bool cli_keyset_has(const struct cli_keyset *s, const char *k);
/* Adds k, taking it (freed by cli_keyset_free; on failure the caller still owns it); -1: no memory. */
int cli_keyset_take(struct cli_keyset *s, char *k);
/* Adds a copy of k; -1: no memory. */
int cli_keyset_add(struct cli_keyset *s, const char *k);
void cli_keyset_free(struct cli_keyset *s);

/* The length of text[0..len) without a cut last line: one with no final '\n' (what a crash, a
 * kill -9 or a full disk leaves in a file written line by line), or a last line that is not a
 * JSON object. *why says which (NULL: nothing cut). */
size_t cli_complete_prefix(const char *text, size_t len, const char **why);

/* The field `key` of a JSON line ("id") as its JSON text (malloc'd), or NULL (no such field,
 * not JSON). */
char *cli_line_key(const char *line, size_t n, const char *key);

/* Rewrites the JSONL file `path` (if it exists) keeping its complete lines whose field `key`
 * ("id") is in `keep`; keep NULL: all complete lines, adding their keys to `ids` (may be NULL).
 * `cmd` starts the messages, which say on stderr what was dropped. Returns CLI_OK or CLI_FAIL. */
int cli_resume_tidy(const char *cmd, const char *path, const char *key, const struct cli_keyset *keep,
                    struct cli_keyset *ids);

/* Writes text to f and flushes it (a line is on disk before the next job starts); false, with
 * "salign CMD: cannot write PATH: ..." on stderr, when that fails. */
bool cli_append(const char *cmd, FILE *f, const char *text, const char *path);

#endif
