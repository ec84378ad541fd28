/* records.h: the aligner's training records and their text formats.
 *   sentence-level (Stream Aligner): {"question", "prefix", "last", "correction",
 *                                     optional "solution", "eos", "source"}
 *   whole-answer (Aligner baseline): {"question", "answer", "correction", optional "source"}
 * read from and written to JSONL or a JSON array; a record's aligner input; a split by
 * question; and rule-based sentence records built from GSM8K solutions. docs/EVAL.md has
 * the field rules and the GSM8K corruption rules. */
#ifndef SA_RECORDS_H
#define SA_RECORDS_H

#include "sa/pipeline.h" /* sa_aligner_input: the format records are rendered in */
#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sa_record_kind {
    SA_RECORD_ANY = 0,      /* for readers: accept both kinds */
    SA_RECORD_SENTENCE = 1, /* question, prefix, last, correction */
    SA_RECORD_ANSWER = 2,   /* question, answer, correction */
};

/* One record. Strings are NUL-terminated UTF-8 owned by the record set; a field that the
 * kind does not use, or an absent optional field, is NULL. */
struct sa_record {
    enum sa_record_kind kind;
    char *question;
    char *prefix;     /* sentence: the answer so far ("" for the first sentence) */
    char *last;       /* sentence: the sentence to revise (y1) */
    char *correction; /* the revision (sentence) or the corrected answer */
    char *answer;     /* answer: the upstream answer */
    char *solution;   /* optional: the whole reference solution */
    char *source;     /* optional: where the record comes from ("gsm8k:12:3:operation") */
    int eos;          /* optional: 1 the sentence ends the answer, 0 it does not, -1 absent */
};

struct sa_records {
    struct sa_record *items; /* (n) */
    size_t n, cap;
};

void sa_records_init(struct sa_records *r);
/* Frees every record; leaves r empty and reusable. NULL does nothing. */
void sa_records_free(struct sa_records *r);
/* Appends a deep copy of rec. Errors: SA_STATUS_BAD_ARGUMENT (a field its kind requires
 * is NULL), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_records_push(struct sa_records *r, const struct sa_record *rec);

/* Parses records from a JSON array (the text starts with '[') or JSONL (one object a line,
 * blank lines skipped; the rules of sa_jsonl_parse, sa/jsonl.h: no text after an object,
 * valid UTF-8, no \u0000), appending to *out; empty text gives no records (OK). `name` (a
 * path, or NULL) starts the messages.
 * `expect`: the kind every record must have (SA_RECORD_ANY: each record's kind is
 * decided by its fields: "last" -> sentence, "answer" -> answer). Unknown fields are
 * ignored; optional fields may be null. Errors: SA_STATUS_BAD_JSON with a message naming
 * the line (JSONL) or element (array) and the field ("records.jsonl:3: field \"prefix\"
 * is a number, expected a string"); on error *out is left as it was before the call. */
SA_NODISCARD enum sa_status sa_records_parse(const char *text, size_t len, const char *name,
                                             enum sa_record_kind expect, struct sa_records *out);
/* sa_records_parse over a file's content; a file without any record (empty, or only blank
 * lines, or "[]") is an error (SA_STATUS_BAD_JSON "<path>: no records ..."): training or
 * checking nothing is a mistake, not "0/0". */
SA_NODISCARD enum sa_status sa_records_load(const char *path, enum sa_record_kind expect, struct sa_records *out);

enum sa_records_format {
    SA_RECORDS_JSONL = 0,      /* one object a line */
    SA_RECORDS_JSON_ARRAY = 1, /* one array, one object a line inside it */
};

/* Serialises r (keys in the order above; absent optional fields left out). *out is
 * malloc'd, NUL-terminated, *len bytes (len may be NULL). */
SA_NODISCARD enum sa_status sa_records_serialize(const struct sa_records *r, enum sa_records_format f, char **out,
                                                 size_t *len);
/* Writes r to path atomically (path.tmp then rename). */
SA_NODISCARD enum sa_status sa_records_save(const char *path, const struct sa_records *r, enum sa_records_format f);

/* The aligner input of a record by its kind: sa_aligner_input (sentence) or
 * sa_aligner_baseline_input (answer), the pipeline's formats (sa/pipeline.h). */
SA_NODISCARD enum sa_status sa_record_input(const struct sa_record *rec, char **out);

/* Splits by question: the distinct questions are shuffled with `seed` and the first
 * round(dev_fraction * n_questions) go to dev; is_dev[i] (r->n entries, caller-owned) says
 * where record i goes. Records with the same question always land on the same side.
 * Errors: SA_STATUS_BAD_ARGUMENT (fraction not in [0, 1], NULL), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_records_split(const struct sa_records *r, double dev_fraction, uint64_t seed,
                                             bool *is_dev);

/* ---- GSM8K -> sentence records (src/data/gsm8k_corrupt.c) -------------------------- */

enum sa_gsm8k_rule {
    SA_GSM8K_COPY = 0,       /* last = the true step, correction = the same step */
    SA_GSM8K_NUMBER = 1,     /* an operand of the step's calculation changed, result recomputed;
                                or, in a step without a calculation, a number of the text */
    SA_GSM8K_OPERATION = 2,  /* an operator swapped (+ <-> -, * <-> /), result recomputed */
    SA_GSM8K_OFF_BY_ONE = 3, /* the result of the calculation (or the final answer) +-1 */
    SA_GSM8K_DROPPED = 4,    /* last = the NEXT step, correction = the skipped step */
    SA_GSM8K_N_RULES = 5,
};
/* "copy", "number", "operation", "off_by_one", "dropped". */
const char *sa_gsm8k_rule_str(enum sa_gsm8k_rule r);

struct sa_gsm8k_params {
    uint64_t seed;        /* the corruption stream; the same seed gives the same records */
    double rewrite_ratio; /* fraction of steps that become rewrite records, in [0, 1]; default 0.5 */
    bool keep_calc;       /* keep the <<a*b=c>> calculator annotations; default false (stripped) */
    bool answer_step;     /* the "#### N" line becomes the last step "The answer is N."; default true */
    bool with_solution;   /* fill "solution" with the whole (stripped) reference solution; default false */
    bool whole_answer;    /* one whole-answer record per problem (the Aligner baseline's data) instead of
                             one sentence record per step: "answer" is the solution with every step
                             that a sentence record would corrupt shown corrupted (a dropped step left
                             out), "correction" the true solution; the same seed draws the same
                             corruptions as the sentence records; default false */
};
struct sa_gsm8k_params sa_gsm8k_default_params(void);

struct sa_gsm8k_stats {
    size_t n_problems, n_steps;
    size_t n_by_rule[SA_GSM8K_N_RULES]; /* records per rule (copy included) */
    size_t n_fallback;                  /* steps drawn for a rewrite that no rule applied to */
    size_t n_answers;                   /* whole-answer records (whole_answer) */
};

/* Builds one sentence record per step of each GSM8K problem of `jsonl` ({"question",
 * "answer"} lines as in openai/grade-school-math), appending to *out. `name` for
 * messages. stats may be NULL. Errors: SA_STATUS_BAD_JSON (a line that is not a GSM8K
 * problem: names line and field), SA_STATUS_BAD_ARGUMENT (ratio), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_gsm8k_to_records(const char *jsonl, size_t len, const char *name,
                                                const struct sa_gsm8k_params *p, struct sa_records *out,
                                                struct sa_gsm8k_stats *stats);

/* Applies `rule` (NUMBER, OPERATION or OFF_BY_ONE) to one step (calculator annotations
 * kept, as in the data), drawing its choices from `seed`. *out (malloc'd) keeps the
 * annotations, rewritten consistently with the visible text. Returns SA_STATUS_NOT_FOUND
 * when the rule does not apply to the step (no usable calculation or number, or every
 * draw gave an unchanged or unclean result). */
SA_NODISCARD enum sa_status sa_gsm8k_corrupt_step(const char *step, enum sa_gsm8k_rule rule, uint64_t seed,
                                                  char **out);
/* A copy of s without its "<<...>>" annotations (malloc'd; NULL when out of memory). */
char *sa_gsm8k_strip_calc(const char *s);

#ifdef __cplusplus
}
#endif
#endif
