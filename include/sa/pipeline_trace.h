/* pipeline_trace.h: the pipeline trace, one JSON line per emitted sentence (round) of each
 * question, as `salign align --trace` writes it: its one writer and its one reader
 * (src/pipeline/trace.c). `salign eval math --per-round` (sa_trace_*, src/eval/stats.c) and
 * `salign eval report` (src/eval/report.c) read it through sa_trace_read. Fields and their
 * meaning: docs/EVAL.md ("Traces"). */
#ifndef SA_PIPELINE_TRACE_H
#define SA_PIPELINE_TRACE_H

#include "sa/pipeline.h"
#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The fields of a trace line, bits of sa_trace_round.has; the writer writes them in this order,
 * but for "proposed" and "refused_by", which follow "refused". */
enum sa_trace_field {
    SA_TRACE_ID = 1u << 0,
    SA_TRACE_QUESTION = 1u << 1,
    SA_TRACE_ROUND = 1u << 2,
    SA_TRACE_ANSWER_SO_FAR = 1u << 3,
    SA_TRACE_Y1 = 1u << 4,
    SA_TRACE_Y2 = 1u << 5,
    SA_TRACE_TEXT = 1u << 6,
    SA_TRACE_ALIGNED = 1u << 7,
    SA_TRACE_COPIED = 1u << 8,
    SA_TRACE_EDIT_RATIO = 1u << 9,
    SA_TRACE_EOS = 1u << 10,
    SA_TRACE_UPSTREAM_TOKENS = 1u << 11,
    SA_TRACE_UPSTREAM_PREFILL = 1u << 12,
    SA_TRACE_UPSTREAM_MS = 1u << 13,
    SA_TRACE_ALIGNER_TOKENS = 1u << 14,
    SA_TRACE_ALIGNER_DRAFT = 1u << 15,
    SA_TRACE_ALIGNER_ACCEPTED = 1u << 16,
    SA_TRACE_ALIGNER_PREFILL = 1u << 17,
    SA_TRACE_ALIGNER_MS = 1u << 18,
    SA_TRACE_T_MS = 1u << 19,
    SA_TRACE_ALL = (1u << 20) - 1, /* the fields above: those of every line `salign align` writes */
    /* the gated revision's (sa_pipeline_params.edit_gate): written only for a scored revision */
    SA_TRACE_MARGIN = 1u << 20,
    SA_TRACE_GATED = 1u << 21,
    SA_TRACE_PROPOSED = 1u << 22, /* only when gated or refused */
    /* the edit check's (sa_pipeline_params.edit_check): written only when it refused an edit */
    SA_TRACE_REFUSED = 1u << 23,
    /* the calculator's (sa_pipeline_params.calculator): written only when it rewrote a result */
    SA_TRACE_REPAIRED = 1u << 24,
    SA_TRACE_UNREPAIRED = 1u << 25,
    /* the check that refused the edit (with SA_TRACE_REFUSED; written right after "refused") */
    SA_TRACE_REFUSED_BY = 1u << 26,
    /* the edit judge's (sa_pipeline_params.edit_judge_model): written only for a judged edit */
    SA_TRACE_JUDGE_MARGIN = 1u << 27,
};

/* One trace line. Strings are borrowed (NUL-terminated UTF-8): from the caller for the
 * writer, from the reader for the duration of the callback. A field is present when its bit
 * is in `has`; absent or null fields read as not present. */
struct sa_trace_round {
    uint32_t has;            /* SA_TRACE_* bits */
    const char *id_json;     /* the question's id as JSON text, copied as it is ("12", "\"q-3\"") */
    const char *id;          /* reader only: the id as text (a string's value, an integer in decimal);
                                the reader accepts a string or an integer >= 0 */
    const char *question;
    int32_t round;           /* >= 0: the sentence number (sa_pipeline_sentence.index) */
    const char *answer_so_far; /* the whole answer after this round */
    const char *y1;          /* the upstream's sentence */
    const char *y2;          /* the revision, without leading whitespace */
    const char *text;        /* what was appended: separator + revision */
    bool aligned, copied, eos;
    double edit_ratio;       /* in [0, 1] */
    int32_t upstream_tokens, upstream_prefill; /* >= 0 */
    double upstream_ms;      /* >= 0 */
    int32_t aligner_tokens, aligner_draft, aligner_accepted, aligner_prefill; /* >= 0 */
    double aligner_ms;       /* >= 0 */
    double t_ms;             /* >= 0: since the run started */
    double margin;           /* finite: the gate's margin (sa_pipeline_sentence.margin) */
    bool gated;              /* the revision was replaced by y1 (y2 is then y1) */
    const char *proposed;    /* gated or refused: the aligner's revision that was replaced */
    bool refused;            /* the edit check refused the revision (y2 is then y1) */
    unsigned refused_by;     /* the check that refused it: one SA_PIPELINE_EDIT_CHECK_* bit, written
                                and read as its name ("arith", "format", "cut", or "judge" for the
                                edit judge: sa_pipeline_edit_check_name) */
    int32_t repaired;        /* >= 0: results the calculator rewrote (y2 and text are after it) */
    const char *unrepaired;  /* repaired: the emitted sentence before the calculator */
    double judge_margin;     /* finite: the edit judge's margin (sa_pipeline_sentence.judge_margin) */
};

/* The line of a sentence the pipeline emitted (what `salign align --trace` writes): every
 * field of SA_TRACE_ALL, the id when id_json is not NULL, the question when it is not NULL,
 * margin and gated when the gate scored the revision, refused when the edit check refused it
 * (and refused_by when the sentence names the check), proposed when either replaced it,
 * repaired and unrepaired when the calculator rewrote it, judge_margin when the edit judge
 * scored it. The result borrows s's strings and
 * the arguments. */
struct sa_trace_round sa_trace_round_of_sentence(const struct sa_pipeline_sentence *s, const char *id_json,
                                                 const char *question);

/* The JSON line of r (its present fields in the writer's order, enum sa_trace_field, no spaces)
 * and a '\n'. *line malloc'd, NUL-terminated, *len bytes (len may be NULL). Errors:
 * BAD_ARGUMENT (id_json present but not JSON, a string field present but NULL, refused_by
 * present but not one known check), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_trace_round_format(const struct sa_trace_round *r, char **line, size_t *len);

/* Called for each line of a trace; `where` ("<name>:<line>") starts messages. Return
 * SA_STATUS_OK to go on; another status stops the read and is returned. */
typedef enum sa_status (*sa_trace_round_fn)(void *user, const struct sa_trace_round *r, const char *where);

/* Reads a trace (JSONL, read by sa_jsonl_parse: blank lines skipped, one object a line),
 * calling fn for each line. Fields may be absent (consumers check `has` for what they need),
 * but a present field must have its type and range (messages: "<name>:<line>: field
 * \"round\" must be an integer >= 0"; "refused_by" must name one edit check); unknown fields
 * are ignored; a line without a field reads as before it was added. *n_lines (may be NULL):
 * the lines read. Errors: SA_STATUS_BAD_JSON, NO_MEMORY, or what fn returned. */
SA_NODISCARD enum sa_status sa_trace_read(const char *text, size_t len, const char *name, sa_trace_round_fn fn,
                                          void *user, size_t *n_lines);

#ifdef __cplusplus
}
#endif
#endif
