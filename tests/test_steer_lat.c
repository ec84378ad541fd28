/* test_steer_lat.c: the maths of `salign steer` (src/steer/lat.c): the first principal component
 * (a planted direction found in both branches, Gram and covariance; centring; a zero matrix), the
 * LAT sign rule (+ = rewrite, flipped when the pairs are), held-out accuracies, and the
 * Levenshtein ratio on known values (ASCII, UTF-8, invalid bytes, empty). numpy checks the same
 * functions on random matrices in tests/py/test_steer_lat.py. */
#include "harness.h"
#include "sa/steer.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng = 12345;
static double urand(void) { /* xorshift64*, in [-1, 1) */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ULL) >> 11) / (double)(1ULL << 53) * 2 - 1;
}

/* rows x_i = a_i v + small noise, v a unit vector: PC1 is +-v */
static void planted(int32_t n, int32_t d, bool center) {
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)d), *v = malloc(sizeof(float) * (size_t)d),
          *dir = malloc(sizeof(float) * (size_t)d);
    double nv = 0;
    for (int32_t k = 0; k < d; k++) v[k] = (float)urand(), nv += (double)v[k] * v[k];
    for (int32_t k = 0; k < d; k++) v[k] = (float)(v[k] / sqrt(nv));
    for (int32_t i = 0; i < n; i++) {
        const double a = 3 * urand() + (center ? 0 : 1.5);
        for (int32_t k = 0; k < d; k++) x[(size_t)i * d + k] = (float)(a * v[k] + 0.01 * urand() + (center ? 5.0 : 0.0));
    }
    double ex = -1;
    CHECK(sa_steer_pc1(x, n, d, center, dir, &ex) == SA_STATUS_OK);
    CHECK_NEAR(fabs(sa_steer_dot(dir, v, d)), 1.0, 1e-3);
    CHECK_NEAR(sa_steer_dot(dir, dir, d), 1.0, 1e-5);
    CHECK_MSG(ex > 0.95 && ex <= 1.0, "explained %g", ex);
    free(x);
    free(v);
    free(dir);
}

static void test_pc1_planted(void) {
    planted(10, 40, false); /* n < d: the Gram matrix */
    planted(200, 8, false); /* n > d: the covariance */
    planted(30, 30, true);  /* an offset of 5 in every coordinate: centring removes it */
}

static void test_pc1_edge_cases(void) {
    float x[6] = {0}, dir[3];
    double ex = -1;
    CHECK(sa_steer_pc1(x, 2, 3, false, dir, &ex) == SA_STATUS_OK); /* all zero: e_0, share 0 */
    CHECK(dir[0] == 1 && dir[1] == 0 && dir[2] == 0 && ex == 0);
    const float one[3] = {0, 3, 4};
    CHECK(sa_steer_pc1(one, 1, 3, false, dir, &ex) == SA_STATUS_OK);
    CHECK_NEAR(fabs(dir[1]), 0.6, 1e-6);
    CHECK_NEAR(fabs(dir[2]), 0.8, 1e-6);
    CHECK_NEAR(ex, 1.0, 1e-9);
    CHECK(sa_steer_pc1(NULL, 1, 3, false, dir, &ex) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_steer_pc1(one, 0, 3, false, dir, &ex) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_steer_pc1(one, 1, 0, false, dir, &ex) == SA_STATUS_BAD_ARGUMENT);
}

/* pairs: rew_i = base_i + s_i * v, cop_i = base_i, s_i in [0.5, 1.5]; 10 pairs, 8 for training */
static void test_lat_sign_and_accuracy(void) {
    enum { N = 10, D = 16, TRAIN = 8 };
    float rew[N * D], cop[N * D], v[D], dir[D];
    for (int k = 0; k < D; k++) v[k] = k == 3 ? 1.0f : 0.0f;
    for (int i = 0; i < N; i++) {
        const double s = 1.0 + 0.5 * urand();
        for (int k = 0; k < D; k++) {
            cop[i * D + k] = (float)(0.05 * urand());
            rew[i * D + k] = cop[i * D + k] + (float)(s * v[k]);
        }
    }
    struct sa_steer_lat_stats st;
    CHECK(sa_steer_lat(rew, cop, N, TRAIN, D, dir, &st) == SA_STATUS_OK);
    CHECK_MSG(dir[3] > 0.99f, "+ means rewrite: dir[3] = %g", dir[3]);
    CHECK(st.gap > 0.4 && st.gap < 1.6);
    CHECK_EQ_INT(st.n_test, 2);
    CHECK_NEAR(st.acc_pair, 1.0, 0);
    CHECK_NEAR(st.acc_stim, 1.0, 0);
    CHECK(st.explained > 0.9);
    /* the pairs swapped (copy as "rewrite"): the direction flips with them */
    float dir2[D];
    struct sa_steer_lat_stats st2;
    CHECK(sa_steer_lat(cop, rew, N, TRAIN, D, dir2, &st2) == SA_STATUS_OK);
    CHECK_MSG(dir2[3] < -0.99f, "swapped: dir[3] = %g", dir2[3]);
    CHECK_NEAR(st2.gap, st.gap, 1e-9);
    /* no pair held out: no accuracies */
    CHECK(sa_steer_lat(rew, cop, N, N, D, dir, &st) == SA_STATUS_OK);
    CHECK(st.n_test == 0 && isnan(st.acc_pair) && isnan(st.acc_stim));
    CHECK(sa_steer_lat(rew, cop, N, 0, D, dir, &st) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_steer_lat(rew, cop, N, N + 1, D, dir, &st) == SA_STATUS_BAD_ARGUMENT);
}

static double ratio(const char *a, const char *b) {
    double r = -1;
    CHECK(sa_levenshtein_ratio(a, strlen(a), b, strlen(b), &r) == SA_STATUS_OK);
    return r;
}

static void test_levenshtein_ratio(void) {
    CHECK_NEAR(ratio("kitten", "sitting"), 8.0 / 13.0, 1e-12); /* Levenshtein.ratio: 0.6153846 */
    CHECK_NEAR(ratio("", ""), 1.0, 0);
    CHECK_NEAR(ratio("abc", ""), 0.0, 0);
    CHECK_NEAR(ratio("abc", "abc"), 1.0, 0);
    CHECK_NEAR(ratio("ab", "ba"), 0.5, 1e-12);                /* a substitution costs 2 */
    CHECK_NEAR(ratio("h\xc3\xa9llo", "hello"), 0.8, 1e-12);   /* code points, not bytes: 2 * 4 / 10 */
    CHECK_NEAR(ratio("\xe2\x82\xac" "5", "5"), 2.0 / 3.0, 1e-12);
    CHECK_NEAR(ratio("a\xff", "a"), 2.0 / 3.0, 1e-12);         /* an invalid byte: one unit */
    double r;
    CHECK(sa_levenshtein_ratio(NULL, 1, "a", 1, &r) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_levenshtein_ratio(NULL, 0, NULL, 0, &r) == SA_STATUS_OK && r == 1.0);
}

int main(void) {
    RUN(test_pc1_planted);
    RUN(test_pc1_edge_cases);
    RUN(test_lat_sign_and_accuracy);
    RUN(test_levenshtein_ratio);
    return harness_summary();
}
