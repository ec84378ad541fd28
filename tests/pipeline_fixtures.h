/* pipeline_fixtures.h: what the pipeline tests share: an aligner that copies, and the trace
 * line of an emitted sentence appended to a buffer (as `salign align --trace` writes it).
 * Header-only (static functions), for tests only. */
#ifndef SA_TESTS_PIPELINE_FIXTURES_H
#define SA_TESTS_PIPELINE_FIXTURES_H

#include "sa/pipeline.h"
#include "sa/pipeline_trace.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* An aligner_fn that returns the sentence (or answer) unchanged. */
static inline enum sa_status copy_aligner(void *user, const struct sa_pipeline_request *req, char **out,
                                          int32_t *n) {
    (void)user;
    *out = strdup(req->last);
    *n = 0;
    return *out ? SA_STATUS_OK : SA_STATUS_NO_MEMORY;
}

/* Appends the trace line of s (question id id_json) to *buf (*len bytes, NUL-terminated);
 * false when the line cannot be formatted or memory runs out. */
static inline bool trace_append(char **buf, size_t *len, const struct sa_pipeline_sentence *s, const char *id_json) {
    struct sa_trace_round tr = sa_trace_round_of_sentence(s, id_json, NULL);
    char *line = NULL, *grown = NULL;
    size_t n = 0;
    bool ok = sa_trace_round_format(&tr, &line, &n) == SA_STATUS_OK && (grown = realloc(*buf, *len + n + 1));
    if (ok) {
        memcpy(grown + *len, line, n + 1);
        *buf = grown;
        *len += n;
    }
    free(line);
    return ok;
}

#endif
