/* test_sampler.c: the sampler chain: greedy, each filter on small hand-made distributions
 * (against the definitions), penalties, seeding, the fast top-k/top-p paths against a
 * full sort on a 262144-token vocabulary, and a chi-square test of the draws. */
#include "sa/sampler.h"

#include "harness.h"

#include <stdint.h>
#include <stdlib.h>

static struct sa_sampler_params neutral(void) {
    struct sa_sampler_params p = sa_sampler_default_params();
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    return p;
}

static struct sa_sampler *make(struct sa_sampler_params p, int32_t n_vocab) {
    struct sa_sampler *s = NULL;
    CHECK_OK(sa_sampler_init(&p, n_vocab, &s));
    return s;
}

/* logits = log(probs) */
static void log_of(const double *p, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = p[i] > 0 ? (float)log(p[i]) : -INFINITY;
}

static void test_greedy(void) {
    struct sa_sampler_params p = neutral();
    p.temp = 0;
    struct sa_sampler *s = make(p, 4);
    float l[] = {1, 3, 3, 2};
    int32_t id;
    CHECK_OK(sa_sampler_sample(s, l, 4, &id));
    CHECK_EQ_INT(id, 1); /* tie between 1 and 2: lowest id */
    const int32_t *ids;
    const float *pr;
    CHECK_EQ_INT(sa_sampler_probs(s, &ids, &pr), 1);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_NEAR(pr[0], 1.0, 0);
    CHECK_NEAR(sa_sampler_prob(s, 1), 1.0, 0);
    CHECK_NEAR(sa_sampler_prob(s, 2), 0.0, 0);
    /* random rows: equals a plain argmax scan, whatever the filters say */
    p.top_k = 5;
    p.top_p = 0.5f;
    p.min_p = 0.3f;
    struct sa_sampler *s2 = make(p, 1000);
    srand(7);
    float row[1000];
    for (int t = 0; t < 50; t++) {
        for (int i = 0; i < 1000; i++) row[i] = (float)(rand() % 200) / 10.0f; /* many ties */
        int best = 0;
        for (int i = 1; i < 1000; i++)
            if (row[i] > row[best]) best = i;
        CHECK_OK(sa_sampler_sample(s2, row, 1000, &id));
        CHECK_EQ_INT(id, best);
    }
    sa_sampler_free(s2);
    sa_sampler_free(s);
    /* a temperature so small that 1/T overflows is greedy, not NaN */
    p = neutral();
    p.temp = 1e-45f;
    s = make(p, 4);
    for (int t = 0; t < 20; t++) {
        CHECK_OK(sa_sampler_sample(s, l, 4, &id));
        CHECK_EQ_INT(id, 1);
    }
    sa_sampler_free(s);
}

/* Checks the distribution after the chain against expected probabilities (0 = filtered). */
static void expect_probs(struct sa_sampler *s, const double *want, int n, double tol) {
    const int32_t *ids;
    const float *pr;
    size_t k = sa_sampler_probs(s, &ids, &pr);
    int n_want = 0;
    for (int i = 0; i < n; i++) n_want += want[i] > 0;
    CHECK_EQ_INT(k, n_want);
    for (size_t j = 0; j < k; j++) {
        CHECK(ids[j] >= 0 && ids[j] < n);
        if (ids[j] >= 0 && ids[j] < n) CHECK_NEAR(pr[j], want[ids[j]], tol);
    }
    for (int i = 0; i < n; i++) CHECK_NEAR(sa_sampler_prob(s, i), want[i], tol);
}

static void test_top_k(void) {
    struct sa_sampler_params p = neutral();
    p.top_k = 3;
    struct sa_sampler *s = make(p, 6);
    double pr[6] = {0.05, 0.3, 0.1, 0.25, 0.2, 0.1};
    float l[6];
    log_of(pr, l, 6);
    CHECK_OK(sa_sampler_apply(s, l, 6));
    double z = 0.3 + 0.25 + 0.2;
    double want[6] = {0, 0.3 / z, 0, 0.25 / z, 0.2 / z, 0};
    expect_probs(s, want, 6, 1e-6);
    const int32_t *ids;
    sa_sampler_probs(s, &ids, NULL); /* sorted best first */
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 3);
    CHECK_EQ_INT(ids[2], 4);
    /* ties at the cut: the lower ids win */
    float t[5] = {1, 2, 2, 2, 0};
    p.top_k = 2;
    struct sa_sampler *s2 = make(p, 5);
    CHECK_OK(sa_sampler_apply(s2, t, 5));
    CHECK_EQ_INT(sa_sampler_probs(s2, &ids, NULL), 2);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 2);
    /* k >= n_vocab: off */
    p.top_k = 10;
    struct sa_sampler *s3 = make(p, 5);
    CHECK_OK(sa_sampler_apply(s3, t, 5));
    CHECK_EQ_INT(sa_sampler_probs(s3, NULL, NULL), 5);
    sa_sampler_free(s3);
    sa_sampler_free(s2);
    sa_sampler_free(s);
}

static void test_top_p(void) {
    double pr[5] = {0.15, 0.5, 0.05, 0.3, 0.0};
    float l[5];
    log_of(pr, l, 5);
    /* both paths: lazy heap (top_k off) and after a sorting top_k that keeps everything */
    for (int path = 0; path < 2; path++) {
        struct sa_sampler_params p = neutral();
        p.top_k = path ? 4 : 0;
        p.top_p = 0.75f; /* 0.5 < 0.75 <= 0.8: keep 2 (the crossing token is kept) */
        struct sa_sampler *s = make(p, 5);
        CHECK_OK(sa_sampler_apply(s, l, 5));
        double want[5] = {0, 0.5 / 0.8, 0, 0.3 / 0.8, 0};
        expect_probs(s, want, 5, 1e-6);
        const int32_t *ids;
        sa_sampler_probs(s, &ids, NULL);
        CHECK_EQ_INT(ids[0], 1);
        CHECK_EQ_INT(ids[1], 3);
        sa_sampler_free(s);

        p.top_p = 0.9f; /* 0.8 < 0.9 <= 0.95: keep 3 */
        s = make(p, 5);
        CHECK_OK(sa_sampler_apply(s, l, 5));
        double want3[5] = {0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95, 0};
        expect_probs(s, want3, 5, 1e-6);
        sa_sampler_free(s);

        p.top_p = 0.0f; /* keeps the top token */
        s = make(p, 5);
        CHECK_OK(sa_sampler_apply(s, l, 5));
        double want1[5] = {0, 1, 0, 0, 0};
        expect_probs(s, want1, 5, 1e-6);
        sa_sampler_free(s);
    }
}

static void test_min_p(void) {
    double pr[5] = {0.5, 0.3, 0.12, 0.05, 0.03};
    float l[5];
    log_of(pr, l, 5);
    struct sa_sampler_params p = neutral();
    p.min_p = 0.2f; /* p >= 0.1 */
    struct sa_sampler *s = make(p, 5);
    CHECK_OK(sa_sampler_apply(s, l, 5));
    double z = 0.92;
    double want[5] = {0.5 / z, 0.3 / z, 0.12 / z, 0, 0};
    expect_probs(s, want, 5, 1e-6);
    const int32_t *ids;
    sa_sampler_probs(s, &ids, NULL); /* no sorting filter ran: by id */
    CHECK_EQ_INT(ids[0], 0);
    CHECK_EQ_INT(ids[2], 2);
    sa_sampler_free(s);
}

static void test_temperature_and_order(void) {
    /* temperature reshapes after the filters: top_k 2 then T = 2 */
    float l[4] = {0.0f, 2.0f, 1.0f, -1.0f};
    struct sa_sampler_params p = neutral();
    p.top_k = 2;
    p.temp = 2.0f;
    struct sa_sampler *s = make(p, 4);
    CHECK_OK(sa_sampler_apply(s, l, 4));
    double a = exp(2.0 / 2), b = exp(1.0 / 2);
    double want[4] = {0, a / (a + b), b / (a + b), 0};
    expect_probs(s, want, 4, 1e-6);
    sa_sampler_free(s);
    /* the filters see temperature 1: top_p 0.6 on softmax(l) = {.087,.644,.237,.032} keeps
     * token 1 only at any temperature */
    p.top_k = 0;
    p.top_p = 0.6f;
    p.temp = 5.0f;
    s = make(p, 4);
    CHECK_OK(sa_sampler_apply(s, l, 4));
    double want1[4] = {0, 1, 0, 0};
    expect_probs(s, want1, 4, 1e-6);
    sa_sampler_free(s);
    /* no filters at T = 0.5: softmax(2 l) */
    p.top_p = 1.0f;
    p.temp = 0.5f;
    s = make(p, 4);
    CHECK_OK(sa_sampler_apply(s, l, 4));
    double z = 0, w[4];
    for (int i = 0; i < 4; i++) z += exp(2.0 * l[i]);
    for (int i = 0; i < 4; i++) w[i] = exp(2.0 * l[i]) / z;
    expect_probs(s, w, 4, 1e-6);
    sa_sampler_free(s);
}

static void test_penalties(void) {
    struct sa_sampler_params p = neutral();
    p.temp = 0; /* read the penalised logits through greedy choices and probabilities */
    p.repeat_penalty = 2.0f;
    p.penalty_last_n = 8;
    /* repeat: 2 -> 1 (divided), -2 -> -4 (multiplied) */
    float l[3] = {2.0f, -2.0f, 1.5f};
    struct sa_sampler *s = make(p, 3);
    int32_t id;
    CHECK_OK(sa_sampler_sample(s, l, 3, &id));
    CHECK_EQ_INT(id, 0);
    sa_sampler_accept(s, 0);
    CHECK_OK(sa_sampler_sample(s, l, 3, &id));
    CHECK_EQ_INT(id, 2); /* 0 fell to 1.0 < 1.5 */
    sa_sampler_reset(s);
    CHECK_OK(sa_sampler_sample(s, l, 3, &id));
    CHECK_EQ_INT(id, 0); /* history forgotten */
    sa_sampler_free(s);

    /* exact values through temperature 1 probabilities, no filters */
    p = neutral();
    p.repeat_penalty = 2.0f;
    p.freq_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.penalty_last_n = 3;
    s = make(p, 4);
    float m[4] = {2.0f, -2.0f, 1.0f, 0.5f};
    sa_sampler_accept(s, 3); /* falls out of the window of 3 */
    sa_sampler_accept(s, 1);
    sa_sampler_accept(s, 2);
    sa_sampler_accept(s, 2);
    sa_sampler_accept(s, -1);    /* ignored */
    sa_sampler_accept(s, 99);    /* out of vocabulary: ignored at sampling time */
    /* window now {2, 2, 99}: token 2 seen twice; 1 and 3 fell out */
    CHECK_OK(sa_sampler_apply(s, m, 4));
    double pen[4] = {2.0, -2.0, 1.0 / 2.0 - 2 * 0.5 - 0.25, 0.5};
    double z = 0, want[4];
    for (int i = 0; i < 4; i++) z += exp(pen[i]);
    for (int i = 0; i < 4; i++) want[i] = exp(pen[i]) / z;
    expect_probs(s, want, 4, 1e-6);
    sa_sampler_free(s);

    /* penalty_last_n = 0: off */
    p.penalty_last_n = 0;
    s = make(p, 4);
    sa_sampler_accept(s, 0);
    CHECK_OK(sa_sampler_apply(s, m, 4));
    z = 0;
    for (int i = 0; i < 4; i++) z += exp(m[i]);
    for (int i = 0; i < 4; i++) want[i] = exp(m[i]) / z;
    expect_probs(s, want, 4, 1e-6);
    sa_sampler_free(s);
}

static void draws(uint64_t seed, int32_t *out, int n) {
    struct sa_sampler_params p = neutral();
    p.seed = seed;
    struct sa_sampler *s = make(p, 16);
    float l[16];
    for (int i = 0; i < 16; i++) l[i] = (float)(i % 5) * 0.3f;
    for (int i = 0; i < n; i++) CHECK_OK(sa_sampler_sample(s, l, 16, &out[i]));
    sa_sampler_reset(s); /* replays the same stream */
    for (int i = 0; i < n; i++) {
        int32_t id;
        CHECK_OK(sa_sampler_sample(s, l, 16, &id));
        CHECK_EQ_INT(id, out[i]);
    }
    sa_sampler_free(s);
}

static void test_seed(void) {
    int32_t a[200], b[200], c[200];
    draws(42, a, 200);
    draws(42, b, 200);
    draws(43, c, 200);
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(memcmp(a, c, sizeof a));
    /* a fixed stream on every machine: xoshiro256** seeded by splitmix64(0), whose state
     * starts 0xe220a8397b1dcdaf...; values from an independent Python transcription */
    struct sa_sampler_params p = neutral();
    p.seed = 0;
    struct sa_sampler *s = make(p, 1);
    double u0 = sa_sampler_uniform(s), u1 = sa_sampler_uniform(s);
    CHECK(u0 == (double)(0x99ec5f36cb75f2b4ull >> 11) * 0x1.0p-53);
    CHECK(u1 == (double)(0xbf6e1f784956452aull >> 11) * 0x1.0p-53);
    sa_sampler_free(s);
    /* a random seed is reported */
    p.seed = SA_SAMPLER_SEED_RANDOM;
    s = make(p, 1);
    CHECK(sa_sampler_seed(s) != SA_SAMPLER_SEED_RANDOM);
    sa_sampler_free(s);
}

/* chi-square of n draws against probabilities q over k categories */
static double chi_square(struct sa_sampler *s, const float *l, int k, const double *q, int n) {
    int counts[16] = {0};
    for (int i = 0; i < n; i++) {
        int32_t id;
        CHECK_OK(sa_sampler_sample(s, l, k, &id));
        if (id >= 0 && id < k) counts[id]++;
    }
    double chi = 0;
    for (int i = 0; i < k; i++) {
        if (q[i] == 0) {
            CHECK_EQ_INT(counts[i], 0); /* filtered tokens are never drawn */
            continue;
        }
        double e = n * q[i];
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

static void test_chi_square(void) {
    /* 8 categories, no filters: df 7; P(chi2_7 > 40) ~ 1e-6: a loose bound, fixed seed */
    double q[8] = {0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02};
    float l[8];
    log_of(q, l, 8);
    struct sa_sampler *s = make(neutral(), 8);
    double chi = chi_square(s, l, 8, q, 100000);
    CHECK_MSG(chi < 40, "chi-square %g over 7 degrees of freedom", chi);
    sa_sampler_free(s);
    /* through the chain: top_k 6, top_p 0.85 (keeps 0.3..0.1 = 0.85 -> 5), T = 0.7 */
    struct sa_sampler_params p = neutral();
    p.top_k = 6;
    p.top_p = 0.84f;
    p.temp = 0.7f;
    s = make(p, 8);
    double w[8] = {0}, z = 0;
    for (int i = 0; i < 5; i++) z += pow(q[i], 1 / 0.7);
    for (int i = 0; i < 5; i++) w[i] = pow(q[i], 1 / 0.7) / z;
    CHECK_OK(sa_sampler_apply(s, l, 8));
    expect_probs(s, w, 8, 1e-5);
    chi = chi_square(s, l, 8, w, 100000);
    CHECK_MSG(chi < 35, "chi-square %g over 4 degrees of freedom", chi); /* P ~ 4e-7 */
    sa_sampler_free(s);
}

static int cmp_desc(const void *a, const void *b) {
    const float *x = a, *y = b;
    return *x < *y ? 1 : *x > *y ? -1 : 0;
}

/* the fast paths on a Gemma-sized vocabulary against a plain sort */
static void test_large_vocab(void) {
    enum { V = 262144 };
    float *l = malloc(V * sizeof *l), *sorted = malloc(V * sizeof *sorted);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < V; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        l[i] = (float)((x >> 11) * 0x1.0p-53) * 12.0f; /* uniform in [0, 12): no ties in practice */
    }
    memcpy(sorted, l, V * sizeof *l);
    qsort(sorted, V, sizeof *sorted, cmp_desc);

    struct sa_sampler_params p = neutral();
    p.top_k = 40;
    struct sa_sampler *s = make(p, 0); /* buffers grow on the first call */
    const int32_t *ids;
    const float *pr;
    CHECK_OK(sa_sampler_apply(s, l, V));
    CHECK_EQ_INT(sa_sampler_probs(s, &ids, &pr), 40);
    for (int i = 0; i < 40; i++) CHECK(l[ids[i]] == sorted[i]);
    sa_sampler_free(s);

    /* top_p alone: the lazy heap must give the sorted prefix of the nucleus */
    p.top_k = 0;
    p.top_p = 0.5f;
    s = make(p, V);
    CHECK_OK(sa_sampler_apply(s, l, V));
    size_t k = sa_sampler_probs(s, &ids, &pr);
    double z = 0, cum = 0;
    for (int i = 0; i < V; i++) z += exp((double)sorted[i] - sorted[0]);
    size_t want = 0;
    for (int i = 0; i < V; i++) {
        cum += exp((double)sorted[i] - sorted[0]);
        if (cum >= 0.5 * z) {
            want = (size_t)i + 1;
            break;
        }
    }
    CHECK_MSG(k + 1 >= want && k <= want + 1, "nucleus %zu, reference %zu", k, want); /* summation order */
    for (size_t i = 0; i < k && i < want; i++) CHECK(l[ids[i]] == sorted[i]);
    double sum = 0;
    for (size_t i = 0; i < k; i++) sum += pr[i];
    CHECK_NEAR(sum, 1.0, 1e-4);
    sa_sampler_free(s);

    /* no filters at all: every token keeps p = softmax, found by id */
    p.top_p = 1.0f;
    s = make(p, V);
    CHECK_OK(sa_sampler_apply(s, l, V));
    CHECK_EQ_INT(sa_sampler_probs(s, NULL, NULL), V);
    CHECK_NEAR(sa_sampler_prob(s, 12345), exp((double)l[12345] - sorted[0]) / z, 1e-9);
    sa_sampler_free(s);
    free(sorted);
    free(l);
}

static void test_errors(void) {
    struct sa_sampler_params p = neutral();
    struct sa_sampler *s = NULL;
    p.penalty_last_n = -1;
    CHECK(sa_sampler_init(&p, 4, &s) == SA_STATUS_BAD_ARGUMENT && !s);
    p = neutral();
    p.temp = NAN;
    CHECK(sa_sampler_init(&p, 4, &s) == SA_STATUS_BAD_ARGUMENT && !s);
    p = neutral();
    p.repeat_penalty = 0;
    CHECK(sa_sampler_init(&p, 4, &s) == SA_STATUS_BAD_ARGUMENT && !s);
    s = make(neutral(), 4);
    float bad[4] = {-INFINITY, NAN, -INFINITY, NAN};
    int32_t id = 7;
    CHECK(sa_sampler_sample(s, bad, 4, &id) == SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(id, -1);
    CHECK(strstr(sa_last_error(), "-inf") != NULL);
    CHECK(sa_sampler_sample(s, bad, 0, &id) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_sampler_sample(s, NULL, 4, &id) == SA_STATUS_BAD_ARGUMENT);
    /* NaN counts as -inf: never drawn */
    float some[4] = {NAN, 0.0f, NAN, 0.0f};
    for (int i = 0; i < 100; i++) {
        CHECK_OK(sa_sampler_sample(s, some, 4, &id));
        CHECK(id == 1 || id == 3);
    }
    sa_sampler_free(s);
    sa_sampler_free(NULL);
}

int main(void) {
    RUN(test_greedy);
    RUN(test_top_k);
    RUN(test_top_p);
    RUN(test_min_p);
    RUN(test_temperature_and_order);
    RUN(test_penalties);
    RUN(test_seed);
    RUN(test_chi_square);
    RUN(test_large_vocab);
    RUN(test_errors);
    return harness_summary();
}
