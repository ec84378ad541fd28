/* jsonl.h: the one reader of JSON Lines in salign (src/core/jsonl.c): every JSONL input
 * (records, GSM8K problems, pipeline traces, answers and gold files of `salign eval`) goes
 * through it, so that they all follow one rule:
 *   - one JSON object a line; lines end at '\n'; spaces, tabs and '\r' around it are ignored;
 *     blank lines are skipped; a UTF-8 byte order mark at the start is skipped;
 *   - text after the object on its line is an error ("one object a line");
 *   - every string (keys too) must be valid UTF-8 and must not hold \u0000: the library
 *     keeps strings NUL-terminated, so a NUL would silently cut the text there;
 *   - with SA_JSONL_ARRAY, a text whose first non-blank character is '[' is read as one JSON
 *     array of objects instead (records: "JSONL or a JSON array").
 * Every error message starts with "<name>:<line>:" (or "<name>: element <i>:" inside an
 * array) and says what is wrong. The values are cJSON objects (cJSON.h). */
#ifndef SA_JSONL_H
#define SA_JSONL_H

#include "sa/status.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

enum sa_jsonl_flags {
    SA_JSONL_ARRAY = 1u << 0,     /* accept one JSON array of objects (text starting with '[') */
    SA_JSONL_NOT_EMPTY = 1u << 1, /* no object at all (an empty file, only blank lines, "[]") is an
                                     error: SA_STATUS_BAD_JSON "<name>: no JSON objects ..." */
};

/* One object read. Everything is borrowed and valid during the callback only. */
struct sa_jsonl_item {
    const struct cJSON *object; /* a JSON object */
    size_t line;                /* 1-based line of the object; 0 inside a JSON array */
    size_t index;               /* 0-based: objects before this one */
    const char *where;          /* "<name>:<line>" or "<name>: element <index>": starts messages */
};

/* Called for each object in order. Return SA_STATUS_OK to go on; any other status stops the
 * read and is returned by sa_jsonl_parse as it is (set the message with sa_error, naming
 * item->where). */
typedef enum sa_status (*sa_jsonl_fn)(void *user, const struct sa_jsonl_item *item);

/* Reads text[0..len) (need not be NUL-terminated), calling fn for each object. `name` (a
 * path, or NULL: "input") starts the messages; flags: enum sa_jsonl_flags or'ed. *n_items
 * (may be NULL) gets the number of objects handed to fn. Errors: SA_STATUS_BAD_JSON
 * (malformed JSON, text after the object, a value that is not an object, invalid UTF-8,
 * \u0000, no object with SA_JSONL_NOT_EMPTY), BAD_ARGUMENT (NULL text with len > 0, NULL fn),
 * NO_MEMORY, or what fn returned. */
SA_NODISCARD enum sa_status sa_jsonl_parse(const char *text, size_t len, const char *name, unsigned flags,
                                           sa_jsonl_fn fn, void *user, size_t *n_items);
/* sa_jsonl_parse over a whole file (`path` names the messages). Errors: also SA_STATUS_IO. */
SA_NODISCARD enum sa_status sa_jsonl_load(const char *path, unsigned flags, sa_jsonl_fn fn, void *user,
                                          size_t *n_items);

/* "a string", "a number", "an object", "null", ...: the JSON type of v, for messages. */
const char *sa_jsonl_type_name(const struct cJSON *v);

#ifdef __cplusplus
}
#endif
#endif
