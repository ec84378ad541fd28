/* gold_path_impl.h: the gold path of a GSM8K question (issue 13, `salign data rollout --locate
 * gold-path`): the values its reference solution passes through (each <<expr=v>>'s v, the final
 * answer after the last ####) and the numbers of the question, and whether a sentence's
 * equations stay on it. Mirrors bench/gsm8k_gold_path.py; docs/DATA_ROLLOUT.md. */
#ifndef SA_GOLD_PATH_IMPL_H
#define SA_GOLD_PATH_IMPL_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The path's values, each rounded to 6 decimals (as Python's round(v, 6)), sorted, distinct. */
struct sa_gold_path {
    double *v; /* (n) malloc'd */
    size_t n;
};

/* Builds the path of `question` and its reference `solution` (both NUL-terminated). A number is
 * \d[\d,]*(\.\d+)? with its commas dropped ("1,200.50" is 1200.5; no sign). Taken: the numbers
 * of the question, those after the '=' of each <<...=v>> of the solution (the last '=' inside),
 * and those after the solution's last "####" (the whole solution when it has none). *out is
 * always filled (free with sa_gold_path_free). Errors: BAD_ARGUMENT (NULL), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_gold_path_init(const char *question, const char *solution, struct sa_gold_path *out);
void sa_gold_path_free(struct sa_gold_path *gp);
/* True when v rounded to 6 decimals is on the path. */
bool sa_gold_path_has(const struct sa_gold_path *gp, double v);
/* The equations of the sentence s (sa_arith_equations: the `arith` check's finder) that are off
 * the path: their value (the true value of the left side) is not on it, or they write a false
 * result (the `arith` check's verdict: "48 / 2 = 16" leaves the path even though 24 is on it): the count; *n_eq (may be NULL) gets the
 * count of all of them. A sentence is off the path when this is > 0. */
int32_t sa_gold_path_off(const struct sa_gold_path *gp, const char *s, int32_t *n_eq);

#endif
