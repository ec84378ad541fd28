/* test_verdict.c: judge verdict parsing (well-formed, repeated, conflicting, malformed),
 * the both-order aggregation table, and the win rate with its seeded bootstrap interval. */
#include "sa/verdict.h"

#include "harness.h"

#include <stdlib.h>

struct v_case {
    const char *text;
    enum sa_verdict want;
};

static const struct v_case v_cases[] = {
    {"[[A]]", SA_VERDICT_A},
    {"[[B]]", SA_VERDICT_B},
    {"[[C]]", SA_VERDICT_TIE},
    {"[[TIE]]", SA_VERDICT_TIE},
    {"[[EQUAL]]", SA_VERDICT_TIE},
    {"[[tie]]", SA_VERDICT_TIE},
    {"[[Equal]]", SA_VERDICT_TIE},
    {"[[a]]", SA_VERDICT_A},
    {"[[b]]", SA_VERDICT_B},
    {"Response A is more helpful and harmless.\nFinal verdict: [[A]]", SA_VERDICT_A},
    {"After comparing both... my final verdict is \"[[B]]\".", SA_VERDICT_B},
    {"[[A]] ... to conclude, [[A]]", SA_VERDICT_A},  /* repeated: agrees */
    {"Both are equally good. [[C]]\n", SA_VERDICT_TIE},
    {"[[C]] and again [[TIE]]", SA_VERDICT_TIE},     /* two spellings of a tie agree */
    {"Output [[A]] if A is better, [[B]] if B is better, [[C]] for a tie. [[A]]", SA_VERDICT_INVALID},
    {"[[A]] ... actually [[B]]", SA_VERDICT_INVALID},
    {"[[A]] or [[C]]", SA_VERDICT_INVALID},
    {"", SA_VERDICT_INVALID},
    {"A", SA_VERDICT_INVALID},
    {"[A]", SA_VERDICT_INVALID},
    {"[[ A ]]", SA_VERDICT_INVALID},
    {"[[D]]", SA_VERDICT_INVALID},
    {"[[AB]]", SA_VERDICT_INVALID},
    {"[[[A]]]", SA_VERDICT_INVALID},
    {"[[A]", SA_VERDICT_INVALID},
    {"[[A]]]", SA_VERDICT_INVALID},
    {"[[]]", SA_VERDICT_INVALID},
    {"[[", SA_VERDICT_INVALID},
    {"[[Response A]]", SA_VERDICT_INVALID},
    {"[[TIES]]", SA_VERDICT_INVALID},
    {"[[D]] then [[B]]", SA_VERDICT_B},              /* a malformed token is ignored */
    {"[[[A]]] then [[B]]", SA_VERDICT_B},
    {"verdict:[[B]].", SA_VERDICT_B},
};

static void test_parse(void) {
    for (size_t i = 0; i < sizeof v_cases / sizeof v_cases[0]; i++) {
        enum sa_verdict got = sa_eval_parse_verdict(v_cases[i].text);
        CHECK_MSG(got == v_cases[i].want, "case %zu \"%s\": got %s, want %s", i, v_cases[i].text, sa_verdict_str(got),
                  sa_verdict_str(v_cases[i].want));
    }
    CHECK(sa_eval_parse_verdict(NULL) == SA_VERDICT_INVALID);
    CHECK_EQ_STR(sa_verdict_str(SA_VERDICT_TIE), "tie");
}

static void test_pair_table(void) {
    const enum sa_verdict V[4] = {SA_VERDICT_INVALID, SA_VERDICT_A, SA_VERDICT_B, SA_VERDICT_TIE};
    /* rows: ab (ours as A), columns: ba (ours as B) */
    const enum sa_pair_outcome want[4][4] = {
        {SA_PAIR_INVALID, SA_PAIR_INVALID, SA_PAIR_INVALID, SA_PAIR_INVALID},
        {SA_PAIR_INVALID, SA_PAIR_EQUAL, SA_PAIR_WIN, SA_PAIR_EQUAL},   /* ab = A: favours ours */
        {SA_PAIR_INVALID, SA_PAIR_LOSS, SA_PAIR_EQUAL, SA_PAIR_EQUAL},  /* ab = B: favours theirs */
        {SA_PAIR_INVALID, SA_PAIR_EQUAL, SA_PAIR_EQUAL, SA_PAIR_EQUAL}, /* ab = tie */
    };
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            CHECK_MSG(sa_eval_pair_outcome(V[a], V[b]) == want[a][b], "ab=%s ba=%s", sa_verdict_str(V[a]),
                      sa_verdict_str(V[b]));
    CHECK(sa_eval_pair_outcome((enum sa_verdict)77, SA_VERDICT_A) == SA_PAIR_INVALID);
}

static void test_winrate(void) {
    /* 60 wins, 20 losses, 20 equal, 5 invalid: (60 - 20) / 100 * 100 = 40 */
    enum sa_pair_outcome o[105];
    size_t k = 0;
    for (int i = 0; i < 60; i++) o[k++] = SA_PAIR_WIN;
    for (int i = 0; i < 20; i++) o[k++] = SA_PAIR_LOSS;
    for (int i = 0; i < 20; i++) o[k++] = SA_PAIR_EQUAL;
    for (int i = 0; i < 5; i++) o[k++] = SA_PAIR_INVALID;
    struct sa_eval_winrate w, w2;
    CHECK_OK(sa_eval_winrate(o, k, 2000, 11, &w));
    CHECK_EQ_INT(w.n_win, 60);
    CHECK_EQ_INT(w.n_loss, 20);
    CHECK_EQ_INT(w.n_equal, 20);
    CHECK_EQ_INT(w.n_invalid, 5);
    CHECK_NEAR(w.rate, 40.0, 1e-12);
    /* scores +100 / -100 / 0: sd = sqrt(0.8 * 100^2 - 40^2) = 80; se = 8; 95%: 40 +- 15.7 */
    CHECK_NEAR(w.lo, 40 - 15.7, 2.5);
    CHECK_NEAR(w.hi, 40 + 15.7, 2.5);
    CHECK(w.lo < w.rate && w.rate < w.hi);
    CHECK_OK(sa_eval_winrate(o, k, 2000, 11, &w2));
    CHECK(w.lo == w2.lo && w.hi == w2.hi);
    /* the default of 1000 resamples */
    CHECK_OK(sa_eval_winrate(o, k, 0, 11, &w2));
    CHECK_NEAR(w2.rate, 40.0, 1e-12);
    /* all wins: 100 with a degenerate interval */
    for (size_t i = 0; i < 10; i++) o[i] = SA_PAIR_WIN;
    CHECK_OK(sa_eval_winrate(o, 10, 1000, 1, &w));
    CHECK(w.rate == 100 && w.lo == 100 && w.hi == 100);
    /* nothing valid */
    o[0] = SA_PAIR_INVALID;
    CHECK_OK(sa_eval_winrate(o, 1, 1000, 1, &w));
    CHECK(w.rate == 0 && w.n_invalid == 1 && w.lo == 0 && w.hi == 0);
    CHECK_OK(sa_eval_winrate(NULL, 0, 1000, 1, &w));
    CHECK(sa_eval_winrate(NULL, 3, 1000, 1, &w) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_eval_winrate(o, 1, 1, 1, &w) == SA_STATUS_BAD_ARGUMENT);
}

/* Judge texts through parse + aggregate, as the CLI does. */
static void test_end_to_end(void) {
    const char *ab[] = {"... [[A]]", "[[B]]", "[[C]]", "[[A]]", "no verdict"};
    const char *ba[] = {"... [[B]]", "[[A]]", "[[A]]", "[[A]]", "[[B]]"};
    const enum sa_pair_outcome want[] = {SA_PAIR_WIN, SA_PAIR_LOSS, SA_PAIR_EQUAL, SA_PAIR_EQUAL, SA_PAIR_INVALID};
    for (int i = 0; i < 5; i++)
        CHECK(sa_eval_pair_outcome(sa_eval_parse_verdict(ab[i]), sa_eval_parse_verdict(ba[i])) == want[i]);
}

int main(void) {
    printf("verdict cases: %zu\n", sizeof v_cases / sizeof v_cases[0]);
    RUN(test_parse);
    RUN(test_pair_table);
    RUN(test_winrate);
    RUN(test_end_to_end);
    return harness_summary();
}
