/* eval_stats.h: the statistics of an evaluation: accuracy with a 95% Wilson interval and a
 * seeded percentile bootstrap (docs/EVAL.md). Implemented in src/eval/stats.c. */
#ifndef SA_EVAL_STATS_H
#define SA_EVAL_STATS_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif
