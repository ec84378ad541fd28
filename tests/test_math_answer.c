/* test_math_answer.c: answer extraction and equivalence on a table of cases (GSM8K model
 * texts, MATH \boxed answers, normalisation pairs that must and must not match), the gold
 * answers of all 1,319 GSM8K test problems, and the accuracy / Wilson / bootstrap
 * statistics against values computed by hand. */
#define _GNU_SOURCE
#include "sa/eval_stats.h"
#include "sa/math_answer.h"
#include "sa/eval_rounds.h"

#include "harness.h"

#include <stdint.h>
#include <stdlib.h>

/* ---- extraction: text -> extracted answer (NULL: none) --------------------------------- */

struct ex_case {
    enum sa_math_dataset ds;
    const char *text, *want;
};

static const struct ex_case ex_cases[] = {
    /* GSM8K gold style */
    {SA_MATH_GSM8K, "She makes 9 * 2 = $18 every day.\n#### 18", "18"},
    {SA_MATH_GSM8K, "so 70,000.\n#### 70,000", "70000"},
    {SA_MATH_GSM8K, "#### -3", "-3"},
    {SA_MATH_GSM8K, "#### 1,450,000", "1450000"},
    {SA_MATH_GSM8K, "#### 3.50", "3.5"},
    {SA_MATH_GSM8K, "The total is 5.\n#### 12\nSome trailing 99", "12"},
    {SA_MATH_GSM8K, "#### 5\n#### 7", "7"},
    {SA_MATH_GSM8K, "####    42   ", "42"},
    {SA_MATH_GSM8K, "#### $1,234.50", "1234.5"},
    /* model answers: last number */
    {SA_MATH_GSM8K, "The answer is 18.", "18"},
    {SA_MATH_GSM8K, "The answer is $1,234.50.", "1234.5"},
    {SA_MATH_GSM8K, "So she has -3 apples left", "-3"},
    {SA_MATH_GSM8K, "x = 3.0", "3"},
    {SA_MATH_GSM8K, "The discount is 50%.", "50"},
    {SA_MATH_GSM8K, "He runs 540 meters", "540"},
    {SA_MATH_GSM8K, "It costs 18 dollars.", "18"},
    {SA_MATH_GSM8K, "She ate 1/2 of the pie", "1/2"},
    {SA_MATH_GSM8K, "10 - 3 = 7", "7"},
    {SA_MATH_GSM8K, "10-3", "3"},
    {SA_MATH_GSM8K, "the result is \xE2\x88\x92" "5", "-5"},
    {SA_MATH_GSM8K, "Total: 2,000 people", "2000"},
    {SA_MATH_GSM8K, "1,2,3 and 4", "4"},
    {SA_MATH_GSM8K, "a list: 12,5", "5"},
    {SA_MATH_GSM8K, "about .5 hours", "0.5"},
    {SA_MATH_GSM8K, "In 2nd place with 40 points.", "40"},
    {SA_MATH_GSM8K, "The answer is \\boxed{18}. (Check: 3 + 15)", "18"},
    {SA_MATH_GSM8K, "So \\boxed{\\$1,200} is the price", "1200"},
    {SA_MATH_GSM8K, "We get 5 + 7 = 12 so the answer is 12", "12"},
    {SA_MATH_GSM8K, "The answer is: 0.25", "0.25"},
    {SA_MATH_GSM8K, "-$5 is the change", "-5"},
    {SA_MATH_GSM8K, "He pays $2,125.", "2125"},
    {SA_MATH_GSM8K, "= 100.00", "100"},
    {SA_MATH_GSM8K, "Step 1: 16 - 3 - 4 = 9 eggs.\nStep 2: 9 * $2 = $18.\nTherefore, Janet makes $18 every day.", "18"},
    {SA_MATH_GSM8K, "**Answer: 42**", "42"},
    {SA_MATH_GSM8K, "The answer is 5 apples.\n\nI hope this helps!", "5"},
    {SA_MATH_GSM8K, "Total = 12 + 8 = 20\n#### 20", "20"},
    {SA_MATH_GSM8K, "It takes 3.5 hours.", "3.5"},
    {SA_MATH_GSM8K, "The population is 12,000,000 people.", "12000000"},
    {SA_MATH_GSM8K, "####18", "18"},
    {SA_MATH_GSM8K, "no numbers here", NULL},
    {SA_MATH_GSM8K, "", NULL},
    {SA_MATH_GSM8K, "#### none", NULL},
    /* MATH */
    {SA_MATH_MATH, "so the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"},
    {SA_MATH_MATH, "\\boxed{5} and later \\boxed{7}", "7"},
    {SA_MATH_MATH, "\\boxed{\\{1,2\\}}", "\\{1,2\\}"},
    {SA_MATH_MATH, "$\\boxed 5$", "5"},
    {SA_MATH_MATH, "\\fbox{x^2}", "x^2"},
    {SA_MATH_MATH, "\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"},
    {SA_MATH_MATH, "\\boxed{a{b}c}", "a{b}c"},
    {SA_MATH_MATH, "unbalanced \\boxed{5 and \\boxed{6}", "6"},
    {SA_MATH_MATH, "The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"},
    {SA_MATH_MATH, "The answer is 12. Done.", "12"},
    {SA_MATH_MATH, "we find x is 3 and y is 4", "4"},
    {SA_MATH_MATH, "\\boxed{(1, 2)}", "(1, 2)"},
    {SA_MATH_MATH, "Thus $x = \\boxed{-\\frac{3}{2}}$.", "-\\frac{3}{2}"},
    {SA_MATH_MATH, "the final answer is \\boxed{\\text{(C)}}", "\\text{(C)}"},
    {SA_MATH_MATH, "nothing", NULL},
    {SA_MATH_MATH, "\\boxed{unclosed", NULL},
};

static void test_extract(void) {
    for (size_t i = 0; i < sizeof ex_cases / sizeof ex_cases[0]; i++) {
        const struct ex_case *c = &ex_cases[i];
        char *got = NULL;
        enum sa_status st = sa_math_extract(c->ds, c->text, &got);
        if (!c->want) {
            CHECK_MSG(st == SA_STATUS_NOT_FOUND, "case %zu \"%s\": expected no answer, got \"%s\"", i, c->text,
                      got ? got : "");
        } else {
            CHECK_MSG(st == SA_STATUS_OK && got && !strcmp(got, c->want), "case %zu \"%s\": got \"%s\", want \"%s\"",
                      i, c->text, got ? got : "(none)", c->want);
        }
        free(got);
    }
}

/* ---- equivalence: pairs that must (or must not) match ----------------------------------- */

struct eq_case {
    const char *a, *b;
    bool equal;
};

static const struct eq_case eq_cases[] = {
    {"3", "3.0", true},
    {"3", "3.00", true},
    {"0.5", "\\frac12", true},
    {"0.5", "\\frac{1}{2}", true},
    {"\\dfrac{1}{2}", "\\frac{1}{2}", true},
    {"\\tfrac{3}{4}", "0.75", true},
    {"1/2", "\\frac{1}{2}", true},
    {"-\\frac{1}{2}", "-0.5", true},
    {"\\frac{-1}{2}", "-0.5", true},
    {"\\sqrt2", "\\sqrt{2}", true},
    {"2\\sqrt3", "2\\sqrt{3}", true},
    {"\\frac1{2}", "\\frac{1}{2}", true},
    {"\\frac{1}2", "\\frac{1}{2}", true},
    {"\\frac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}", true},
    {"\\left( 1, 2 \\right)", "(1,2)", true},
    {"\\left[0, 1\\right)", "[0,1)", true},
    {"90^\\circ", "90", true},
    {"90^{\\circ}", "90", true},
    {"50\\%", "50", true},
    {"50%", "50", true},
    {"5\\text{ cm}", "5", true},
    {"5 \\text{ cm}^2", "5", true},
    {"10\\mbox{ inches}", "10", true},
    {"12 \\text{dollars}", "12", true},
    {"\\text{Monday}", "Monday", true},
    {"\\textbf{(B)}", "(B)", true},
    {"x = 5", "5", true},
    {"y=\\frac{1}{3}", "\\frac13", true},
    {"k = -2", "-2", true},
    {"\\theta = 30", "30", true},
    {"5.", "5", true},
    {"  7  ", "7", true},
    {"1,000", "1000", true},
    {"1{,}000", "1000", true},
    {"1\\,000", "1000", true},
    {"\\$12", "12", true},
    {"$12$", "12", true},
    {"\\boxed{12}", "12", true},
    {".5", "0.5", true},
    {"-.5", "-0.5", true},
    {"+3", "3", true},
    {"5 cm", "5", true},
    {"10 dollars", "10", true},
    {"x^{2}+1", "x^2+1", true},
    {"a_{1}", "a_1", true},
    {"\\displaystyle\\frac{1}{2}", "0.5", true},
    {"1\\!000", "1000", true},
    {"(1, \\frac12)", "(1,0.5)", true},
    {"[2, 3]", "[2,3]", true},
    {"\\{1, 2, 3\\}", "\\{1,2,3\\}", true},
    {"(3, -\\frac{1}{2})", "(3,-0.5)", true},
    {"\\left\\{ 1, 2 \\right\\}", "\\{1,2\\}", true},
    {"0.3333333", "1/3", true},
    {"\\pi", "\\pi", true},
    {"2\\pi", "2 \\pi", true},
    {"x \\in [1, 2]", "x\\in[1,2]", true},
    {"\\frac{a}{b}", "\\frac ab", true},
    {"1000000", "1,000,000", true},
    {"3.14159", "3.14159", true},
    {"-0", "0", true},
    /* must differ */
    {"3", "4", false},
    {"0.5", "\\frac13", false},
    {"1450000", "1450001", false},
    {"(1, 2)", "(2, 1)", false},
    {"(1, 2)", "[1, 2]", false},
    {"(1,2)", "(1,2,3)", false},
    {"x = 5", "6", false},
    {"\\sqrt{2}", "\\sqrt{3}", false},
    {"\\frac{1}{2}", "\\frac{2}{1}", false},
    {"33.33", "33.333", false},
    {"-3", "3", false},
    {"5\\text{ cm}", "6", false},
    {"x^2", "x^3", false},
    {"1/0", "1/0.5", false},
    {"50%", "0.5", false},
    {"\\infty", "-\\infty", false},
    {"2", "", false},
    {"x<=3", "3", false},
    {"\\text{A}", "\\text{B}", false},
    {"12", "1,2", false},
};

static void test_equiv(void) {
    for (size_t i = 0; i < sizeof eq_cases / sizeof eq_cases[0]; i++) {
        const struct eq_case *c = &eq_cases[i];
        bool got = sa_math_equiv(c->a, c->b);
        CHECK_MSG(got == c->equal, "case %zu: \"%s\" vs \"%s\": got %s", i, c->a, c->b, got ? "equal" : "different");
        CHECK_MSG(sa_math_equiv(c->b, c->a) == got, "case %zu: not symmetric", i);
    }
}

struct norm_case {
    const char *in, *want;
};

static const struct norm_case norm_cases[] = {
    {"\\left( 1, 2 \\right)", "(1,2)"},
    {"\\dfrac{1}{2}", "\\frac{1}{2}"},
    {"\\frac12", "\\frac{1}{2}"},
    {"\\sqrt2", "\\sqrt{2}"},
    {"\\sqrt[3]{2}", "\\sqrt[3]{2}"},
    {"90^\\circ", "90"},
    {"5\\text{ cm}", "5"},
    {"x = 5", "5"},
    {"3.0", "3"},
    {"1,234", "1234"},
    {"5.", "5"},
    {"\\leftarrow", "\\leftarrow"},
    {"\\text{(A)}", "(A)"},
    {"", ""},
    {"\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"},
};

static void test_normalize(void) {
    for (size_t i = 0; i < sizeof norm_cases / sizeof norm_cases[0]; i++) {
        char *got = NULL;
        CHECK_OK(sa_math_normalize(norm_cases[i].in, &got));
        CHECK_MSG(got && !strcmp(got, norm_cases[i].want), "normalize(\"%s\") = \"%s\", want \"%s\"", norm_cases[i].in,
                  got ? got : "(null)", norm_cases[i].want);
        free(got);
    }
    double v;
    CHECK(sa_math_number("-\\frac{3}{4}", &v) && v == -0.75);
    CHECK(sa_math_number("3/4", &v) && v == 0.75);
    CHECK(!sa_math_number("\\frac{3}{0}", &v));
    CHECK(!sa_math_number("x", &v));
    CHECK(!sa_math_number("1/2/3", &v));
    CHECK(!sa_math_number(NULL, &v));
}

/* Hostile inputs: nothing may crash or read out of bounds (run under ASan in make asan). */
static void test_hostile(void) {
    static const char *inputs[] = {
        "\\boxed{", "\\boxed", "\\boxed ", "\\frac", "\\frac{", "\\frac{1}{", "\\sqrt", "\\sqrt{", "\\text{", "}}}}{{{{",
        "\\left", "x = = y", "=", "$$$$", "\\\\\\\\", "1,", ",,,,1", "-", "-.", ".", "1/", "/1", "####", "#### -",
        "\\boxed{\\boxed{\\boxed{1}}}", "((((((((((((1))))))))))))", "(,)", "[,,]", "\\{\\}", "\\text{}^2",
        "99999999999999999999999999999999999999999999999999999999999999999999999999999999",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char *o = NULL;
        for (int ds = 0; ds < 2; ds++) {
            if (sa_math_extract((enum sa_math_dataset)ds, inputs[i], &o) == SA_STATUS_OK) CHECK(o != NULL);
            free(o);
            o = NULL;
        }
        CHECK_OK(sa_math_normalize(inputs[i], &o));
        free(o);
        (void)sa_math_equiv(inputs[i], inputs[i]);
        (void)sa_math_equiv(inputs[i], "1");
    }
    char *big = malloc(200001);
    memset(big, '{', 100000);
    memset(big + 100000, '}', 100000);
    big[200000] = 0;
    char *o = NULL;
    CHECK_OK(sa_math_normalize(big, &o));
    free(o);
    free(big);
    CHECK(!sa_math_equiv(NULL, "1"));
    CHECK(!sa_math_is_correct(SA_MATH_GSM8K, NULL, "1"));
}

/* ---- all GSM8K test gold answers ---------------------------------------------------------- */

static void test_gsm8k_gold_all(void) {
    FILE *f = OPEN_SHARED("gsm8k/test.jsonl");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0, n = 0, ok = 0, self = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        /* the "answer" field, JSON-unescaped enough for "####" and digits: find the last "#### " */
        char *h = strstr(line, "\"answer\"");
        if (!h) continue;
        n++;
        /* turn the JSON "\n" escapes into newlines so the solution looks like the data */
        size_t w = 0;
        for (char *r = h; *r; r++) {
            if (r[0] == '\\' && r[1] == 'n') {
                h[w++] = '\n';
                r++;
            } else {
                h[w++] = *r;
            }
        }
        h[w] = 0;
        char *gold = NULL;
        if (sa_math_gsm8k_gold(h, &gold) == SA_STATUS_OK) {
            double v;
            if (sa_math_number(gold, &v)) ok++;
            /* the gold text is also what a model answer "#### N" extracts to, and equal to itself */
            char *pred = NULL;
            if (sa_math_extract(SA_MATH_GSM8K, h, &pred) == SA_STATUS_OK && sa_math_equiv(pred, gold)) self++;
            free(pred);
        }
        free(gold);
    }
    free(line);
    fclose(f);
    CHECK_EQ_INT(n, 1319);
    CHECK_EQ_INT(ok, 1319);
    CHECK_EQ_INT(self, 1319);
}

/* ---- statistics ----------------------------------------------------------------------------- */

static void test_accuracy_wilson(void) {
    bool c[10] = {1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    struct sa_eval_accuracy a = sa_eval_accuracy(c, 10);
    CHECK_EQ_INT(a.n, 10);
    CHECK_EQ_INT(a.n_correct, 7);
    CHECK_NEAR(a.acc, 0.7, 1e-12);
    /* Wilson 95% for 7/10: 0.396778 .. 0.892209 (closed form, z = 1.959964) */
    CHECK_NEAR(a.lo, 0.396778, 1e-5);
    CHECK_NEAR(a.hi, 0.892209, 1e-5);
    /* 0/20 and 20/20: one side at the bound, the other inside */
    bool z[20] = {0};
    a = sa_eval_accuracy(z, 20);
    CHECK_NEAR(a.lo, 0, 1e-12);
    CHECK_NEAR(a.hi, 0.161125, 1e-5);
    for (int i = 0; i < 20; i++) z[i] = 1;
    a = sa_eval_accuracy(z, 20);
    CHECK_NEAR(a.hi, 1, 1e-12);
    CHECK_NEAR(a.lo, 0.838875, 1e-5);
    a = sa_eval_accuracy(NULL, 0);
    CHECK(a.n == 0 && a.acc == 0 && a.lo == 0 && a.hi == 1);
    double lo, hi;
    sa_eval_wilson(500, 1000, 1.959963984540054, &lo, &hi);
    CHECK_NEAR(lo, 0.469070, 1e-5);
    CHECK_NEAR(hi, 0.530930, 1e-5);
}

static void test_bootstrap(void) {
    double x[200];
    for (int i = 0; i < 200; i++) x[i] = i % 2; /* mean 0.5, sd 0.5 */
    double lo, hi, lo2, hi2;
    CHECK_OK(sa_eval_bootstrap_mean(x, 200, 2000, 7, 0.95, &lo, &hi));
    CHECK_OK(sa_eval_bootstrap_mean(x, 200, 2000, 7, 0.95, &lo2, &hi2));
    CHECK(lo == lo2 && hi == hi2); /* seeded */
    /* normal approximation: 0.5 +- 1.96 * 0.5 / sqrt(200) = 0.5 +- 0.0693 */
    CHECK_NEAR(lo, 0.5 - 0.0693, 0.012);
    CHECK_NEAR(hi, 0.5 + 0.0693, 0.012);
    CHECK_OK(sa_eval_bootstrap_mean(x, 200, 2000, 8, 0.95, &lo2, &hi2));
    CHECK(lo != lo2 || hi != hi2);
    double one = 3;
    CHECK_OK(sa_eval_bootstrap_mean(&one, 1, 10, 1, 0.95, &lo, &hi));
    CHECK(lo == 3 && hi == 3);
    CHECK(sa_eval_bootstrap_mean(x, 0, 10, 1, 0.95, &lo, &hi) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_eval_bootstrap_mean(x, 10, 1, 1, 0.95, &lo, &hi) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_eval_bootstrap_mean(x, 10, 10, 1, 1.5, &lo, &hi) == SA_STATUS_BAD_ARGUMENT);
}

/* ---- traces ------------------------------------------------------------------------------- */

static void test_trace(void) {
    const char *t = "{\"id\": 0, \"round\": 0, \"answer_so_far\": \"\"}\n"
                    "{\"id\": 0, \"round\": 2, \"answer_so_far\": \"It is 5.\\n#### 5\"}\n"
                    "\n"
                    "{\"id\": 0, \"round\": 1, \"answer_so_far\": \"It is 4.\"}\n"
                    "{\"id\": \"q7\", \"round\": 1, \"answer_so_far\": \"x\", \"extra\": [1]}\n"
                    "{\"question\": \"Why?\", \"round\": 3, \"answer_so_far\": \"because 2\"}\n";
    struct sa_trace *tr = NULL;
    CHECK_OK(sa_trace_parse(t, strlen(t), "t.jsonl", &tr));
    if (!tr) return;
    CHECK_EQ_INT(sa_trace_n_questions(tr), 3);
    CHECK_EQ_INT(sa_trace_min_round(tr), 0);
    CHECK_EQ_INT(sa_trace_max_round(tr), 3);
    CHECK_EQ_STR(sa_trace_id(tr, 0), "0");
    CHECK_EQ_STR(sa_trace_id(tr, 1), "q7");
    CHECK(sa_trace_id(tr, 2) == NULL);
    CHECK_EQ_STR(sa_trace_question(tr, 2), "Why?");
    CHECK_EQ_STR(sa_trace_answer(tr, 0, 0), "");
    CHECK_EQ_STR(sa_trace_answer(tr, 0, 1), "It is 4.");
    CHECK_EQ_STR(sa_trace_answer(tr, 0, 2), "It is 5.\n#### 5");
    CHECK_EQ_STR(sa_trace_answer(tr, 0, 9), "It is 5.\n#### 5"); /* stopped early: carried */
    CHECK(sa_trace_answer(tr, 1, 0) == NULL);
    CHECK(sa_trace_answer(tr, 2, 2) == NULL);
    CHECK(sa_trace_answer(tr, 9, 2) == NULL);
    sa_trace_free(tr);

    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"id\": 0, \"round\": 0}", "t.jsonl:1: missing field \"answer_so_far\""},
        {"\n{\"id\": 0, \"answer_so_far\": \"\"}", "t.jsonl:2: missing field \"round\""},
        {"{\"round\": 0, \"answer_so_far\": \"\"}", "t.jsonl:1: missing field \"id\""},
        {"{\"id\": 0, \"round\": -1, \"answer_so_far\": \"\"}", "t.jsonl:1: field \"round\""},
        {"{\"id\": 0, \"round\": 1.5, \"answer_so_far\": \"\"}", "t.jsonl:1: field \"round\""},
        {"{\"id\": 0, \"round\": 1, \"answer_so_far\": 3}", "t.jsonl:1: field \"answer_so_far\""},
        {"{\"id\": [1], \"round\": 1, \"answer_so_far\": \"\"}", "t.jsonl:1: field \"id\""},
        {"{\"id\": 0, \"round\": 1, \"answer_so_far\": \"\"}\n{\"id\": 0, \"round\": 1, \"answer_so_far\": \"\"}",
         "t.jsonl:2: round 1"},
        {"{\"id\": 0, \"round\": 1, ", "t.jsonl:1: malformed JSON"},
        {"[1, 2]", "t.jsonl:1: expected a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tr = NULL;
        enum sa_status st = sa_trace_parse(bad[i].text, strlen(bad[i].text), "t.jsonl", &tr);
        CHECK_MSG(st == SA_STATUS_BAD_JSON && !tr, "bad trace %zu accepted", i);
        CHECK_MSG(strstr(sa_last_error(), bad[i].want) != NULL, "bad trace %zu: message \"%s\" lacks \"%s\"", i,
                  sa_last_error(), bad[i].want);
        sa_trace_free(tr);
    }
    /* many questions: the hash grows */
    char *big = malloc(5000 * 64);
    size_t w = 0;
    for (int i = 0; i < 5000; i++) w += (size_t)sprintf(big + w, "{\"id\": %d, \"round\": %d, \"answer_so_far\": \"%d\"}\n", i % 2500, i / 2500, i);
    CHECK_OK(sa_trace_parse(big, w, "big", &tr));
    CHECK_EQ_INT(sa_trace_n_questions(tr), 2500);
    CHECK_EQ_STR(sa_trace_answer(tr, 1234, 1), "3734");
    sa_trace_free(tr);
    free(big);
}

int main(void) {
    printf("extraction cases: %zu, equivalence cases: %zu, normalisation cases: %zu\n",
           sizeof ex_cases / sizeof ex_cases[0], sizeof eq_cases / sizeof eq_cases[0],
           sizeof norm_cases / sizeof norm_cases[0]);
    RUN(test_extract);
    RUN(test_equiv);
    RUN(test_normalize);
    RUN(test_hostile);
    RUN(test_gsm8k_gold_all);
    RUN(test_accuracy_wilson);
    RUN(test_bootstrap);
    RUN(test_trace);
    return harness_summary();
}
