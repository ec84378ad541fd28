/* verdict.h: a pairwise judge's verdicts: parsing "[[A]]"/"[[B]]"/"[[C]]", aggregation of
 * a pair judged in both orders, and the win rate with its bootstrap interval (docs/EVAL.md).
 * Implemented in src/eval/verdict.c. */
#ifndef SA_VERDICT_H
#define SA_VERDICT_H

#include "sa/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif
