/* math_answer.h: answers of math problems (GSM8K, MATH; issue 16 split it out of eval.h):
 * the gold answer of a GSM8K solution, the answer of a model's text, normalisation and
 * equivalence. The rules are in docs/EVAL.md. Implemented in src/eval/math_answer.c. */
#ifndef SA_MATH_ANSWER_H
#define SA_MATH_ANSWER_H

#include "sa/status.h"

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif
