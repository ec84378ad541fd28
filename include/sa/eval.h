/* eval.h: the evaluation of Stream Aligner, one header per topic (issue 16 split it):
 * math answer extraction and equivalence (sa/math_answer.h), accuracy and bootstrap
 * statistics (sa/eval_stats.h), judge verdicts and the win rate (sa/verdict.h), the
 * pipeline's per-round traces (sa/eval_rounds.h), the pairwise judge (sa/judge.h) and the
 * Markdown/SVG report (sa/report.h). Kept as an umbrella so that code including it still
 * builds; new code includes the topic it uses. The rules are in docs/EVAL.md. */
#ifndef SA_EVAL_H
#define SA_EVAL_H

#include "sa/eval_stats.h"
#include "sa/judge.h"
#include "sa/math_answer.h"
#include "sa/report.h"
#include "sa/eval_rounds.h"
#include "sa/verdict.h"

#endif
