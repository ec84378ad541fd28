/* report.h: the Markdown/SVG report of evaluation results (`salign eval report`,
 * docs/EVAL.md). Implemented in src/eval/report.c. */
#ifndef SA_REPORT_H
#define SA_REPORT_H

#include "sa/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_report_params {
    const char *title; /* first heading; NULL: "Stream Aligner evaluation" */
    int32_t max_round; /* rounds shown in the per-round plots; 0: all */
};
struct sa_report_params sa_report_default_params(void);

/* What a report was made of. */
struct sa_report_summary {
    size_t n_accuracy;  /* `eval math --json` results (with or without rounds) */
    size_t n_rounds;    /* of which with per-round accuracy */
    size_t n_winrate;   /* `eval judge --json` / `eval winrate --json` results */
    size_t n_traces;    /* pipeline traces (`salign align --trace`) */
    size_t n_skipped;   /* files of a directory that are none of these (listed in the report) */
    size_t n_plots;     /* SVG files written */
};

/* Writes a Markdown report to `out_md` and its SVG plots next to it (<stem>-<plot>.svg):
 * accuracy with 95% intervals, accuracy by round, win rates with 95% intervals, the
 * edit-ratio distribution and the latency by round, each from the inputs that have it.
 * inputs[0..n): result files, or directories whose *.json and *.jsonl files are read
 * (sorted by name). The kind of each file is recognised from its content (docs/EVAL.md);
 * a named file that is none of them is an error, a directory's is skipped. Errors:
 * BAD_ARGUMENT (no inputs), IO, BAD_JSON (naming the file and line), BAD_FILE (nothing to
 * report), NO_MEMORY. summary may be NULL. */
SA_NODISCARD enum sa_status sa_eval_report(const char *const *inputs, size_t n, const char *out_md,
                                           const struct sa_report_params *params, struct sa_report_summary *summary);

#ifdef __cplusplus
}
#endif
#endif
