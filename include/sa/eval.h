/* eval.h: the evaluation primitives of Stream Aligner (no model needed): math answer
 * extraction and equivalence (GSM8K, MATH), accuracy with a 95% Wilson interval, a seeded
 * bootstrap, judge verdict parsing with both-order aggregation and the win rate, and a
 * reader of the pipeline's per-round traces. The rules are in docs/EVAL.md. */
#ifndef SA_EVAL_H
#define SA_EVAL_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- math answers (src/eval/math_answer.c) ---------------------------------------- */

enum sa_math_dataset {
    SA_MATH_GSM8K = 0, /* answers are numbers */
    SA_MATH_MATH = 1,  /* answers are LaTeX (Hendrycks et al. 2021, MATH) */
};

/* Two numbers are equal when both are integers and equal, or when
 * |a - b| <= SA_MATH_REL_TOL * max(|a|, |b|) (or both are 0). */
#define SA_MATH_REL_TOL 1e-6

/* The gold answer of a GSM8K solution: the number after its last "#### " ("1,234" ->
 * "1234", "-3" -> "-3", "3.50" -> "3.5"). *out is malloc'd (caller frees). Errors:
 * SA_STATUS_NOT_FOUND (no "####" or no number after it), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_math_gsm8k_gold(const char *solution, char **out);

/* The answer of a model's text, as a string for sa_math_equiv. GSM8K: the first number
 * after the last "####" if any, else the last \boxed{} holding a number, else the last
 * number of the text (canonical form: "$1,234.50" -> "1234.5", "3.0" -> "3", "1/2" ->
 * "1/2" (kept), "50%" -> "50"). MATH: the content of the last \boxed{...} / \boxed X /
 * \fbox{...}, else what follows the last "answer is", else the last number. *out is
 * malloc'd. Errors: SA_STATUS_NOT_FOUND (no answer in the text), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_math_extract(enum sa_math_dataset ds, const char *text, char **out);

/* The content of the last \boxed{...} (balanced braces), "\boxed X" (up to '$' or the end
 * of the line) or \fbox{...} of text. SA_STATUS_NOT_FOUND if none (or unbalanced). */
SA_NODISCARD enum sa_status sa_math_last_boxed(const char *text, char **out);

/* The normalised form of an answer (see docs/EVAL.md: fractions, \left/\right, units,
 * degrees, percent, "x =", spaces, trailing '.', thousands commas, \sqrt2, \frac12).
 * *out is malloc'd. Errors: SA_STATUS_NO_MEMORY only. */
SA_NODISCARD enum sa_status sa_math_normalize(const char *answer, char **out);

/* The value of a normalised answer that is a plain number ("-1.5", ".5"), a fraction of
 * plain numbers ("\frac{1}{2}", "-\frac{3}{4}", "3/4"). false if it is something else. */
bool sa_math_number(const char *normalized, double *value);

/* Whether two answers (extracted, not yet normalised) are equivalent: equal numbers
 * (SA_MATH_REL_TOL), equal normalised strings, or tuples/intervals/sets with the same
 * brackets whose elements are pairwise equivalent. false on allocation failure. */
bool sa_math_equiv(const char *a, const char *b);

/* sa_math_extract(ds, model_text) then sa_math_equiv with `gold` (an extracted answer).
 * false if the text has no answer. */
bool sa_math_is_correct(enum sa_math_dataset ds, const char *model_text, const char *gold);

/* ---- statistics (src/eval/stats.c) ------------------------------------------------- */

struct sa_eval_accuracy {
    size_t n, n_correct;
    double acc;    /* n_correct / n in [0, 1]; 0 when n == 0 */
    double lo, hi; /* 95% Wilson score interval; [0, 1] when n == 0 */
};

/* Accuracy of correct[0..n) with its 95% Wilson interval (Wilson 1927). correct may be
 * NULL when n == 0. */
struct sa_eval_accuracy sa_eval_accuracy(const bool *correct, size_t n);

/* The Wilson score interval of k successes in n trials at normal quantile z
 * (1.959963984540054 for 95%). n == 0: [0, 1]. */
void sa_eval_wilson(size_t k, size_t n, double z, double *lo, double *hi);

/* Percentile bootstrap of the mean of x[0..n): n_boot resamples with replacement drawn by
 * the library's xoshiro256** seeded with `seed` (same seed, same interval on every
 * machine); *lo, *hi are the (1-level)/2 and (1+level)/2 quantiles (linear
 * interpolation) of the resampled means. Errors: SA_STATUS_BAD_ARGUMENT (n == 0,
 * n_boot < 2, level not in (0, 1), NULL), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_eval_bootstrap_mean(const double *x, size_t n, uint32_t n_boot, uint64_t seed,
                                                   double level, double *lo, double *hi);

/* ---- judge verdicts and win rate (src/eval/verdict.c) ------------------------------ */

enum sa_verdict {
    SA_VERDICT_INVALID = 0, /* no verdict, or two different verdicts */
    SA_VERDICT_A = 1,       /* [[A]]: the first response is better */
    SA_VERDICT_B = 2,       /* [[B]]: the second response is better */
    SA_VERDICT_TIE = 3,     /* [[C]], [[TIE]] or [[EQUAL]] */
};

/* The verdict of a judge's text: every well-formed "[[X]]" (X one of A, B, C, TIE, EQUAL,
 * any case, nothing else inside the brackets, not inside "[[[...]]]") is read; the
 * verdict is theirs if they all agree, SA_VERDICT_INVALID if there is none or they
 * disagree. NULL: SA_VERDICT_INVALID. */
enum sa_verdict sa_eval_parse_verdict(const char *text);
/* "A", "B", "tie", "invalid". */
const char *sa_verdict_str(enum sa_verdict v);

enum sa_pair_outcome {
    SA_PAIR_INVALID = 0, /* a verdict of the pair is invalid: not counted */
    SA_PAIR_WIN = 1,     /* both orders favour ours */
    SA_PAIR_LOSS = 2,    /* both orders favour the other */
    SA_PAIR_EQUAL = 3,   /* anything else: a tie in either order, or the orders disagree */
};

/* Aggregates a pair judged in both orders: `ab` with ours shown as A, `ba` with ours
 * shown as B. Win if ab == A and ba == B; loss if ab == B and ba == A; invalid if either
 * is invalid; equal otherwise. */
enum sa_pair_outcome sa_eval_pair_outcome(enum sa_verdict ab, enum sa_verdict ba);

struct sa_eval_winrate {
    size_t n_win, n_loss, n_equal, n_invalid;
    double rate;   /* (W - L) / (W + L + E) x 100, in [-100, 100]; 0 when W + L + E == 0 */
    double lo, hi; /* bootstrap 95% interval of rate (pairs resampled); [0, 0] when empty */
};

/* Win rate of outcomes[0..n) (invalid ones are counted apart) with a percentile bootstrap
 * 95% interval over n_boot (>= 2; 0: 1000) resamples seeded by `seed`. Errors:
 * SA_STATUS_BAD_ARGUMENT (NULL with n > 0, n_boot == 1), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_eval_winrate(const enum sa_pair_outcome *outcomes, size_t n, uint32_t n_boot,
                                            uint64_t seed, struct sa_eval_winrate *out);

/* ---- pipeline traces (src/eval/stats.c) -------------------------------------------- */

/* A trace: JSONL, one line per round of the pipeline and question:
 *   {"id": 12 | "q12", "question": "...", "round": 3, "answer_so_far": "..."}
 * "id" (integer >= 0 or string) or "question" is required (both allowed), "round" is an
 * integer >= 0, "answer_so_far" a string: the whole answer after that round. Other
 * fields are ignored. A (key, round) pair may appear once. */
struct sa_trace; /* opaque */

/* Parses a trace text (`name` for messages). Errors: SA_STATUS_BAD_JSON naming the line
 * and field, SA_STATUS_NO_MEMORY. Free with sa_trace_free. */
SA_NODISCARD enum sa_status sa_trace_parse(const char *text, size_t len, const char *name, struct sa_trace **out);
SA_NODISCARD enum sa_status sa_trace_load(const char *path, struct sa_trace **out);
void sa_trace_free(struct sa_trace *t);

/* Number of questions (distinct keys), in order of first appearance. */
size_t sa_trace_n_questions(const struct sa_trace *t);
/* Question i's "id" as text (an integer id in decimal), or NULL if the lines had none. */
const char *sa_trace_id(const struct sa_trace *t, size_t i);
/* Question i's "question", or NULL if the lines had none. */
const char *sa_trace_question(const struct sa_trace *t, size_t i);
/* The smallest and largest round in the trace (0, 0 when empty). */
int32_t sa_trace_min_round(const struct sa_trace *t);
int32_t sa_trace_max_round(const struct sa_trace *t);
/* Question i's answer after round r: the answer_so_far of its line with the largest round
 * <= r (a question that stopped early keeps its final answer); NULL if it has none yet.
 * Owned by the trace. */
const char *sa_trace_answer(const struct sa_trace *t, size_t i, int32_t round);

#ifdef __cplusplus
}
#endif
#endif
