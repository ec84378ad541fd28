/* data_build.h: `salign data build` (issue 6): sentence-level correction records from an
 * upstream and an annotator. The upstream answers each prompt sentence by sentence (the
 * pipeline, sa/pipeline.h, with the annotator as its aligner_fn, so the prefix follows the
 * corrected sentences exactly as at inference); the annotator (any engine behind struct
 * sa_judge, sa/judge.h) answers "CORRECTION: [[...]]" and "EOS: [[TRUE|FALSE]]" for each
 * sentence. Output is append-only JSONL with a checkpoint sidecar: an interrupted build
 * resumes without losing or duplicating records (the checkpoint rules: src/data/build.c).
 * The default annotator prompt and its placeholders: docs/prompts/annotator.txt. */
#ifndef SA_DATA_BUILD_H
#define SA_DATA_BUILD_H

#include "sa/pipeline.h"
#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_judge;

/* ---- the annotator prompt ---------------------------------------------------------- */

/* An annotator prompt file: '#' comment lines at the top, then "[system]" and "[user]"
 * sections (text without a section line is the user message). The user message must hold
 * {question}, {prefix} and {sentence}; {reference} (the reference solution) is optional.
 * Other text in braces is kept as is. */
struct sa_annot_prompt; /* opaque */

/* Errors: SA_STATUS_BAD_FILE (not UTF-8, a second section, an empty section, a missing
 * placeholder: the message names it), NO_MEMORY. `name` (a path or NULL) starts messages. */
SA_NODISCARD enum sa_status sa_annot_prompt_parse(const char *text, size_t len, const char *name,
                                                  struct sa_annot_prompt **out);
SA_NODISCARD enum sa_status sa_annot_prompt_load(const char *path, struct sa_annot_prompt **out);
void sa_annot_prompt_free(struct sa_annot_prompt *p);
/* The system message ("" when none); valid while p lives. */
const char *sa_annot_prompt_system(const struct sa_annot_prompt *p);
/* Whether the user message uses {reference}. */
bool sa_annot_prompt_needs_reference(const struct sa_annot_prompt *p);
/* What {reference} becomes for a prompt without a reference solution. */
#define SA_ANNOT_NO_REFERENCE "(no reference solution is given)"
/* The user message with the placeholders filled (reference NULL: SA_ANNOT_NO_REFERENCE; the values are
 * inserted as they are, never re-scanned). *out malloc'd. Errors: BAD_ARGUMENT (NULL), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_annot_prompt_render(const struct sa_annot_prompt *p, const char *question,
                                                   const char *prefix, const char *sentence, const char *reference,
                                                   char **out);

/* ---- the annotator's answer ------------------------------------------------------- */

/* Strict parse of an annotator answer. Valid when it holds "CORRECTION:" exactly once,
 * followed (after optional spaces/newlines) by "[[", the correction, and "]]" (the first
 * "]]" after it; the correction may span lines and must not contain "[[" nor be empty or
 * all-whitespace), and "EOS:" exactly once followed by "[[TRUE]]" or "[[FALSE]]" (any case,
 * spaces allowed inside the brackets). Text around them is ignored. On success *correction
 * (malloc'd, outer whitespace trimmed) and *eos (1 or 0). Returns SA_STATUS_OK,
 * SA_STATUS_BAD_FILE (malformed; *why, if not NULL, gets a static reason), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_annot_parse(const char *text, char **correction, int *eos, const char **why);

/* ---- the build -------------------------------------------------------------------- */

/* One prompt: the question and an optional reference solution (NULL: none). */
struct sa_data_prompt {
    char *question;
    char *reference;
};

/* Reads prompts from JSONL ({"question": "...", ...} one a line; blank lines skipped; read by
 * sa_jsonl_load, sa/jsonl.h; a file without any prompt is an error).
 * reference_field (NULL: none) names the string field holding the reference solution
 * ("answer" for GSM8K); a line without it is an error. GSM8K calculator annotations
 * "<<...>>" are stripped from references. *prompts (malloc'd, *n entries): free with
 * sa_data_prompts_free. Errors: IO, BAD_JSON naming the line and field, NO_MEMORY. */
SA_NODISCARD enum sa_status sa_data_prompts_load(const char *path, const char *reference_field,
                                                 struct sa_data_prompt **prompts, size_t *n);
void sa_data_prompts_free(struct sa_data_prompt *prompts, size_t n);

struct sa_data_build_stats {
    size_t n_prompts;        /* prompts in the input */
    size_t n_skipped_done;   /* prompts already complete in the checkpoint (not redone) */
    size_t n_done;           /* prompts completed by this run */
    size_t n_records;        /* records written by this run */
    size_t n_sentences;      /* upstream sentences sent to the annotator by this run */
    size_t n_requests;       /* annotator generations */
    size_t n_retries;        /* of which retries after a malformed answer */
    size_t n_malformed;      /* malformed annotator answers (retried or not) */
    size_t n_skipped;        /* sentences whose answers stayed malformed: no record written */
    size_t n_dropped_bytes;  /* bytes of an unfinished prompt's records dropped at resume */
    size_t n_stop_eos, n_stop_upstream, n_stop_rounds, n_stop_other; /* why prompts ended */
    double elapsed_s;
};

struct sa_data_build_params {
    /* The pipeline (mode, upstream or upstream_model, upstream_format, max_rounds, lengths,
     * decoding, threads). The build sets mode STREAM and its own aligner_fn/aligner_user;
     * aligner_model must be NULL. The upstream is borrowed. */
    struct sa_pipeline_params pipeline;
    struct sa_judge *annotator;           /* borrowed: its first ask is greedy, retry k sampled
                                             with a new seed (sa_judge_init_upstream) */
    const struct sa_annot_prompt *prompt; /* borrowed */
    uint32_t retries;                     /* retries of a malformed answer; then the sentence is
                                             skipped (counted, never written) */
    const char *out_path;   /* records JSONL, appended; the checkpoint is out_path + ".ckpt" */
    size_t stop_after;      /* stop (status OK) after this many prompts completed by this run;
                               0: no limit (tests, batches) */
    bool (*cancel)(void *user); /* may be NULL: true stops with SA_STATUS_CANCELLED; the
                                   prompt in progress is redone at the next run */
    void *cancel_user;
    /* Called after each prompt is committed (may be NULL). */
    void (*on_progress)(void *user, const struct sa_data_build_stats *st);
    void *progress_user;
};
/* pipeline = sa_pipeline_default_params() (max_rounds 8), retries 2, the rest NULL/0. */
struct sa_data_build_params sa_data_build_default_params(void);

/* Runs the build over prompts[0..n). For each prompt not yet in the checkpoint: the pipeline
 * runs with the annotator as aligner; each sentence's annotation becomes one record
 * {question, prefix, last, correction, eos, source "build:<prompt index>:<round>"}; the
 * corrected sentence joins the prefix (a skipped sentence keeps the upstream's text). The
 * prompt ends when the annotator says EOS TRUE, the upstream ends, or max_rounds. Its records
 * are appended and fsync'd, then the prompt is added to the checkpoint (fsync'd): a crash at
 * any point loses at most the prompt in progress, whose partial bytes are cut at the next run.
 * The checkpoint holds a fingerprint of the prompts, the annotator id and the annotator prompt:
 * resuming with other ones fails (BAD_ARGUMENT). An output file without a checkpoint that is
 * not empty is refused (BAD_ARGUMENT). st may be NULL. Errors: BAD_ARGUMENT, IO, BAD_FILE (a
 * corrupt checkpoint), CANCELLED, and the pipeline's and annotator's errors. */
SA_NODISCARD enum sa_status sa_data_build_run(const struct sa_data_prompt *prompts, size_t n,
                                              const struct sa_data_build_params *p, struct sa_data_build_stats *st);

#ifdef __cplusplus
}
#endif
#endif
