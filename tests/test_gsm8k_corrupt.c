/* test_gsm8k_corrupt.c: GSM8K -> sentence records. Every rewrite record of the whole
 * training set (7,473 problems) is checked against its rule: the step changed; number and
 * operation rewrites are arithmetically self-consistent (annotation and visible result
 * agree with the expression) but give another result; off-by-one is the result +-1;
 * dropped is the next true step. Also: the rewrite ratio, determinism, stripping of the
 * calculator annotations, prefixes, eos, and the rules on hand-made steps. */
#define _GNU_SOURCE
#include "core/core_impl.h"
#include "sa/records.h"

#include "harness.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>

/* ---- a tiny evaluator for "<<expr=result>>" (the test's own) --------------------------- */

static const char *ep;
static double e_sum(void);
static double e_atom(void) {
    if (*ep == '-') {
        ep++;
        return -e_atom();
    }
    if (*ep == '(') {
        ep++;
        double v = e_sum();
        if (*ep == ')') ep++;
        return v;
    }
    char *end;
    double v = strtod(ep, &end);
    ep = end;
    return v;
}
static double e_prod(void) {
    double v = e_atom();
    while (*ep == '*' || *ep == '/') {
        char o = *ep++;
        double w = e_atom();
        v = o == '*' ? v * w : v / w;
    }
    return v;
}
static double e_sum(void) {
    double v = e_prod();
    while (*ep == '+' || *ep == '-') {
        char o = *ep++;
        double w = e_prod();
        v = o == '+' ? v + w : v - w;
    }
    return v;
}

struct ann {
    char expr[256];
    double value, result, visible; /* eval(expr), the stated result, the number after ">>" */
    bool has_visible;
};

/* The annotations of a step, in order. */
static int annotations(const char *s, struct ann *a, int max) {
    int n = 0;
    for (const char *p = strstr(s, "<<"); p && n < max; p = strstr(p + 2, "<<")) {
        const char *e = strstr(p, ">>"), *eq = strchr(p, '=');
        if (!e || !eq || eq > e) break;
        snprintf(a[n].expr, sizeof a[n].expr, "%.*s", (int)(eq - p - 2), p + 2);
        ep = a[n].expr;
        a[n].value = e_sum();
        char res[64];
        snprintf(res, sizeof res, "%.*s", (int)(e - eq - 1), eq + 1);
        a[n].result = strtod(res, NULL);
        char vis[64];
        size_t k = 0;
        for (const char *v = e + 2; (isdigit((unsigned char)*v) || *v == ',' || *v == '.') && k < 63; v++)
            if (*v != ',') vis[k++] = *v;
        while (k > 0 && vis[k - 1] == '.') k--;
        vis[k] = 0;
        a[n].has_visible = k > 0;
        a[n].visible = strtod(vis, NULL);
        n++;
    }
    return n;
}

static bool near(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(1.0, fabs(b)); }

/* The numbers of a text (commas removed), for the steps without annotations. */
static int numbers(const char *s, double *v, int max) {
    int n = 0;
    while (*s && n < max) {
        if (isdigit((unsigned char)*s) || (*s == '.' && isdigit((unsigned char)s[1]))) {
            char buf[64];
            size_t k = 0;
            while ((isdigit((unsigned char)*s) || *s == ',' || *s == '.') && k < 63) {
                if (*s != ',') buf[k++] = *s;
                s++;
            }
            while (k > 0 && buf[k - 1] == '.') k--;
            buf[k] = 0;
            v[n++] = strtod(buf, NULL);
        } else {
            s++;
        }
    }
    return n;
}

/* ---- the GSM8K training set -------------------------------------------------------------- */

static char *train_text;
static size_t train_len;

static bool load_train(void) {
    if (train_text) return true;
    FILE *f = OPEN_SHARED("gsm8k/train.jsonl");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    train_text = malloc((size_t)n + 1);
    train_len = fread(train_text, 1, (size_t)n, f);
    train_text[train_len] = 0;
    fclose(f);
    return train_len == (size_t)n;
}

static enum sa_gsm8k_rule rule_of(const struct sa_record *r) {
    const char *c = strrchr(r->source, ':');
    for (int k = 0; k < SA_GSM8K_N_RULES; k++)
        if (c && !strcmp(c + 1, sa_gsm8k_rule_str((enum sa_gsm8k_rule)k))) return (enum sa_gsm8k_rule)k;
    return SA_GSM8K_N_RULES;
}

static void test_every_rewrite(void) {
    if (!load_train()) return;
    struct sa_gsm8k_params p = sa_gsm8k_default_params();
    p.keep_calc = true;
    p.seed = 2024;
    struct sa_records r;
    sa_records_init(&r);
    struct sa_gsm8k_stats st;
    CHECK_OK(sa_gsm8k_to_records(train_text, train_len, "train", &p, &r, &st));
    CHECK_EQ_INT(st.n_problems, 7473);
    CHECK_EQ_INT(st.n_steps, r.n);
    size_t bad[SA_GSM8K_N_RULES] = {0}, seen[SA_GSM8K_N_RULES] = {0};
    for (size_t i = 0; i < r.n; i++) {
        const struct sa_record *x = &r.items[i];
        enum sa_gsm8k_rule rule = rule_of(x);
        if (rule == SA_GSM8K_N_RULES) {
            CHECK_MSG(false, "record %zu: bad source \"%s\"", i, x->source);
            continue;
        }
        seen[rule]++;
        bool ok = true;
        if (rule == SA_GSM8K_COPY) {
            ok = !strcmp(x->last, x->correction);
        } else if (rule == SA_GSM8K_DROPPED) {
            /* the next record of the same problem has the skipped-to step as its correction */
            ok = strcmp(x->last, x->correction) && i + 1 < r.n && !strcmp(r.items[i + 1].correction, x->last) &&
                 !strcmp(r.items[i + 1].question, x->question);
        } else {
            ok = strcmp(x->last, x->correction) != 0;
            struct ann a[16], b[16];
            int na = annotations(x->last, a, 16), nb = annotations(x->correction, b, 16);
            if (na != nb) ok = false;
            int changed = 0;
            for (int k = 0; ok && k < na; k++) {
                bool same = !strcmp(a[k].expr, b[k].expr) && near(a[k].result, b[k].result);
                if (same) continue;
                changed++;
                ok = a[k].has_visible && near(a[k].visible, a[k].result) && !near(a[k].result, b[k].result);
                if (rule == SA_GSM8K_OFF_BY_ONE)
                    ok = ok && !strcmp(a[k].expr, b[k].expr) && near(fabs(a[k].result - b[k].result), 1);
                else
                    ok = ok && strcmp(a[k].expr, b[k].expr) && near(a[k].value, a[k].result); /* self-consistent */
            }
            if (na > 0) {
                ok = ok && changed == 1;
                /* the visible text changed with the annotation: the stripped steps differ in the
                 * same numbers as the annotations (for number: the operand and the result) */
                char *sl = sa_gsm8k_strip_calc(x->last), *sc = sa_gsm8k_strip_calc(x->correction);
                ok = ok && strcmp(sl, sc);
                if (rule == SA_GSM8K_NUMBER) {
                    double u[64], v[64];
                    int nu = numbers(sl, u, 64), nv = numbers(sc, v, 64), diff = 0;
                    if (nu != nv) ok = false;
                    for (int k = 0; ok && k < nu; k++) diff += !near(u[k], v[k]);
                    ok = ok && diff == 2;
                }
                free(sl);
                free(sc);
            } else {
                /* no calculation: one number of the text changed (off by one: by exactly 1) */
                double u[64], v[64];
                int nu = numbers(x->last, u, 64), nv = numbers(x->correction, v, 64), diff = 0;
                ok = ok && nu == nv && rule != SA_GSM8K_OPERATION;
                for (int k = 0; ok && k < nu; k++)
                    if (!near(u[k], v[k])) {
                        diff++;
                        if (rule == SA_GSM8K_OFF_BY_ONE) ok = near(fabs(u[k] - v[k]), 1);
                    }
                ok = ok && diff == 1;
            }
        }
        if (!ok) {
            if (bad[rule]++ < 5)
                CHECK_MSG(false, "record %zu (%s):\n  last: %s\n  corr: %s", i, x->source, x->last, x->correction);
        }
    }
    for (int k = 0; k < SA_GSM8K_N_RULES; k++) {
        CHECK_MSG(bad[k] == 0, "%s: %zu bad records of %zu", sa_gsm8k_rule_str((enum sa_gsm8k_rule)k), bad[k], seen[k]);
        CHECK_MSG(seen[k] > 1000, "%s: only %zu records", sa_gsm8k_rule_str((enum sa_gsm8k_rule)k), seen[k]);
        CHECK_EQ_INT(seen[k], st.n_by_rule[k]);
    }
    printf("records %zu: copy %zu number %zu operation %zu off_by_one %zu dropped %zu (fallback %zu)\n", r.n, seen[0],
           seen[1], seen[2], seen[3], seen[4], st.n_fallback);
    /* structure: prefixes, eos, the answer step */
    size_t first = 0;
    for (size_t i = 0; i < r.n; i++) {
        const struct sa_record *x = &r.items[i];
        bool new_q = i == 0 || strcmp(x->question, r.items[i - 1].question) ||
                     !strcmp(x->prefix, ""); /* same question text twice in GSM8K: prefix resets */
        if (new_q) {
            first = i;
            CHECK_EQ_STR(x->prefix, "");
        } else {
            /* prefix = previous prefix + "\n" + previous correction */
            const struct sa_record *y = &r.items[i - 1];
            char *want = NULL;
            CHECK(asprintf(&want, "%s%s%s", y->prefix, *y->prefix ? "\n" : "", y->correction) > 0);
            if (strcmp(want, x->prefix)) {
                CHECK_MSG(false, "record %zu: prefix is not the previous steps", i);
                free(want);
                break;
            }
            free(want);
        }
        bool last_of_q = i + 1 == r.n || !strcmp(r.items[i + 1].prefix, "");
        CHECK(x->eos == (last_of_q ? 1 : 0));
        if (last_of_q) CHECK(!strncmp(x->correction, "The answer is ", 14));
        (void)first;
    }
    sa_records_free(&r);
}

static void test_ratio_determinism_strip(void) {
    if (!load_train()) return;
    struct sa_gsm8k_params p = sa_gsm8k_default_params();
    const double ratios[] = {0.5, 0.2, 0.0, 1.0};
    for (int k = 0; k < 4; k++) {
        p.rewrite_ratio = ratios[k];
        struct sa_records r;
        sa_records_init(&r);
        struct sa_gsm8k_stats st;
        CHECK_OK(sa_gsm8k_to_records(train_text, train_len, "train", &p, &r, &st));
        size_t rw = r.n - st.n_by_rule[SA_GSM8K_COPY];
        double frac = (double)rw / (double)r.n;
        printf("ratio %.1f: %.4f rewrites (%zu fallback)\n", ratios[k], frac, st.n_fallback);
        if (ratios[k] == 1.0) CHECK(frac > 0.97);
        else CHECK_NEAR(frac, ratios[k], 0.01);
        if (ratios[k] == 0.0) CHECK(rw == 0);
        sa_records_free(&r);
    }
    /* determinism: same seed, same bytes; another seed, other records */
    p = sa_gsm8k_default_params();
    p.seed = 9;
    char *s[3] = {0};
    for (int k = 0; k < 3; k++) {
        struct sa_records r;
        sa_records_init(&r);
        if (k == 2) p.seed = 10;
        CHECK_OK(sa_gsm8k_to_records(train_text, train_len, "train", &p, &r, NULL));
        CHECK_OK(sa_records_serialize(&r, SA_RECORDS_JSONL, &s[k], NULL));
        sa_records_free(&r);
    }
    CHECK(s[0] && s[1] && !strcmp(s[0], s[1]));
    CHECK(s[0] && s[2] && strcmp(s[0], s[2]));
    CHECK(s[0] && !strstr(s[0], "<<") && !strstr(s[0], ">>")); /* stripped by default */
    /* keep-calc: the same records, annotations kept; stripping them gives the default's */
    p.seed = 9;
    p.keep_calc = true;
    struct sa_records rk, rd;
    sa_records_init(&rk);
    sa_records_init(&rd);
    CHECK_OK(sa_gsm8k_to_records(train_text, train_len, "train", &p, &rk, NULL));
    CHECK_OK(sa_records_parse(s[0], strlen(s[0]), "s0", SA_RECORD_SENTENCE, &rd));
    CHECK_EQ_INT(rk.n, rd.n);
    size_t mism = 0;
    for (size_t i = 0; i < rk.n && i < rd.n; i++) {
        char *a = sa_gsm8k_strip_calc(rk.items[i].last), *b = sa_gsm8k_strip_calc(rk.items[i].prefix);
        mism += strcmp(a, rd.items[i].last) || strcmp(b, rd.items[i].prefix) || strcmp(rk.items[i].source, rd.items[i].source);
        free(a);
        free(b);
    }
    CHECK_EQ_INT(mism, 0);
    for (int k = 0; k < 3; k++) free(s[k]);
    sa_records_free(&rk);
    sa_records_free(&rd);
    /* --no-answer-step and --solution */
    p = sa_gsm8k_default_params();
    p.answer_step = false;
    p.with_solution = true;
    const char *one = "{\"question\": \"Q?\", \"answer\": \"A has 2*3=<<2*3=6>>6.\\nB has 6+1=<<6+1=7>>7.\\n#### 7\"}\n";
    struct sa_records r1;
    sa_records_init(&r1);
    CHECK_OK(sa_gsm8k_to_records(one, strlen(one), "one", &p, &r1, NULL));
    CHECK_EQ_INT(r1.n, 2);
    if (r1.n == 2) {
        CHECK_EQ_STR(r1.items[1].correction, "B has 6+1=7.");
        CHECK_EQ_STR(r1.items[1].prefix, "A has 2*3=6.");
        CHECK_EQ_STR(r1.items[0].solution, "A has 2*3=6.\nB has 6+1=7.");
        CHECK(r1.items[1].eos == 1 && r1.items[0].eos == 0);
    }
    sa_records_free(&r1);
}

/* ---- hand-made steps ----------------------------------------------------------------------- */

static void test_rules_by_hand(void) {
    char *o = NULL;
    /* operation: 16-3-4=9 -> one '-' becomes '+', result recomputed, visible text follows */
    const char *step = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.";
    for (uint64_t seed = 0; seed < 20; seed++) {
        CHECK_OK(sa_gsm8k_corrupt_step(step, SA_GSM8K_OPERATION, seed, &o));
        CHECK(o && (!strcmp(o, "Janet sells 16 + 3 - 4 = <<16+3-4=15>>15 duck eggs a day.") ||
                    !strcmp(o, "Janet sells 16 - 3 + 4 = <<16-3+4=17>>17 duck eggs a day.")));
        free(o);
    }
    /* x and $ in the visible text, commas in the result */
    CHECK_OK(sa_gsm8k_corrupt_step("A pack costs $10 x 200 = $<<10*200=2000>>2,000.", SA_GSM8K_OPERATION, 1, &o));
    CHECK_EQ_STR(o, "A pack costs $10 / 200 = $<<10/200=0.05>>0.05.");
    free(o);
    CHECK_OK(sa_gsm8k_corrupt_step("So 9*60=<<9*60=540>>540 meters", SA_GSM8K_OFF_BY_ONE, 3, &o));
    CHECK(o && (!strcmp(o, "So 9*60=<<9*60=541>>541 meters") || !strcmp(o, "So 9*60=<<9*60=539>>539 meters")));
    free(o);
    CHECK_OK(sa_gsm8k_corrupt_step("The answer is 18.", SA_GSM8K_OFF_BY_ONE, 3, &o));
    CHECK(o && (!strcmp(o, "The answer is 19.") || !strcmp(o, "The answer is 17.")));
    free(o);
    CHECK_OK(sa_gsm8k_corrupt_step("The answer is 1,200.", SA_GSM8K_NUMBER, 3, &o));
    CHECK(o && strcmp(o, "The answer is 1,200.") && !strncmp(o, "The answer is ", 14));
    free(o);
    /* number: the operand changes in the annotation and the text, the result follows */
    CHECK_OK(sa_gsm8k_corrupt_step("He runs 9*60=<<9*60=540>>540 meters", SA_GSM8K_NUMBER, 5, &o));
    {
        int a, b, c, a2, b2, c2;
        CHECK(o && sscanf(o, "He runs %d*%d=<<%d*%d=%d>>%d meters", &a, &b, &a2, &b2, &c, &c2) == 6);
        CHECK(a == a2 && b == b2 && c == c2 && c == a * b && c != 540);
    }
    free(o);
    /* rules that do not apply */
    CHECK(sa_gsm8k_corrupt_step("No numbers at all.", SA_GSM8K_NUMBER, 1, &o) == SA_STATUS_NOT_FOUND && !o);
    CHECK(sa_gsm8k_corrupt_step("The answer is 7.", SA_GSM8K_OPERATION, 1, &o) == SA_STATUS_NOT_FOUND);
    CHECK(sa_gsm8k_corrupt_step("x = 4 + 3 so 7", SA_GSM8K_NUMBER, 1, &o) == SA_STATUS_NOT_FOUND); /* an unannotated equation */
    /* the expression is not visible ("2*6" shown as "6*2"): no operand/operator change */
    CHECK(sa_gsm8k_corrupt_step("he took 2*6 = <<6*2=12>>12 hats.", SA_GSM8K_NUMBER, 1, &o) == SA_STATUS_NOT_FOUND);
    CHECK_OK(sa_gsm8k_corrupt_step("he took 2*6 = <<6*2=12>>12 hats.", SA_GSM8K_OFF_BY_ONE, 1, &o));
    free(o);
    /* an inconsistent annotation is never touched */
    CHECK(sa_gsm8k_corrupt_step("so 3+4=<<3+4=8>>8", SA_GSM8K_OFF_BY_ONE, 1, &o) == SA_STATUS_NOT_FOUND);
    /* a result used again later in the step is not changed */
    CHECK(sa_gsm8k_corrupt_step("3*4=<<3*4=12>>12 and 12 more", SA_GSM8K_OFF_BY_ONE, 1, &o) == SA_STATUS_NOT_FOUND);
    CHECK(sa_gsm8k_corrupt_step("x", SA_GSM8K_DROPPED, 1, &o) == SA_STATUS_BAD_ARGUMENT);
    /* strip */
    char *s = sa_gsm8k_strip_calc("a <<1+1=2>>2 b <<unclosed");
    CHECK_EQ_STR(s, "a 2 b <<unclosed");
    free(s);
    /* malformed problems */
    struct sa_records r;
    sa_records_init(&r);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"question\": \"q\"}", "x.jsonl:1: field \"answer\" missing"},
        {"{\"answer\": \"#### 1\"}", "x.jsonl:1: field \"question\" missing"},
        {"\n{\"question\": \"q\", \"answer\": \"no gold\"}", "x.jsonl:2: field \"answer\" has no \"#### N\""},
        {"{\"question\": \"q\", \"answer\": \"#### \"}", "empty \"####\""},
        {"nope", "x.jsonl:1: malformed JSON"}, /* the one JSONL reader's message (sa_jsonl_parse) */
        {"{\"question\": \"q\", \"answer\": \"#### 1\"} x", "x.jsonl:1: text after the JSON object"},
        {"{\"question\": \"How many\\u0000 eggs?\", \"answer\": \"#### 1\"}", "x.jsonl:1: a string holds \\u0000"},
        {"{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": 1, \"answer\": \"#### 1\"}", "x.jsonl:2:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum sa_status st = sa_gsm8k_to_records(bad[i].text, strlen(bad[i].text), "x.jsonl", NULL, &r, NULL);
        CHECK_MSG(st == SA_STATUS_BAD_JSON, "bad problem %zu accepted", i);
        CHECK_MSG(strstr(sa_last_error(), bad[i].want) != NULL, "bad problem %zu: \"%s\"", i, sa_last_error());
        CHECK_EQ_INT(r.n, 0);
    }
    struct sa_gsm8k_params p = sa_gsm8k_default_params();
    p.rewrite_ratio = 2;
    CHECK(sa_gsm8k_to_records("", 0, "x", &p, &r, NULL) == SA_STATUS_BAD_ARGUMENT);
    sa_records_free(&r);
}

/* Whole-answer records show the same corruptions as the sentence records of the same seed:
 * the answer is the join of each step's `last` (a dropped step left out), the correction the
 * join of the true steps; problems with no rewritten step are copies. */
static void test_whole_answer(void) {
    if (!load_train()) return;
    size_t cut = 0, lines = 0; /* the first 300 problems */
    while (cut < train_len && lines < 300)
        if (train_text[cut++] == '\n') lines++;
    struct sa_gsm8k_params p = sa_gsm8k_default_params();
    p.seed = 77;
    struct sa_records sent, whole;
    sa_records_init(&sent);
    sa_records_init(&whole);
    struct sa_gsm8k_stats st_s, st_w;
    CHECK_OK(sa_gsm8k_to_records(train_text, cut, "train", &p, &sent, &st_s));
    p.whole_answer = true;
    CHECK_OK(sa_gsm8k_to_records(train_text, cut, "train", &p, &whole, &st_w));
    CHECK_EQ_INT(whole.n, 300);
    CHECK_EQ_INT(st_w.n_answers, 300);
    CHECK_EQ_INT(st_s.n_answers, 0);
    for (int k = 0; k < SA_GSM8K_N_RULES; k++) CHECK_EQ_INT(st_w.n_by_rule[k], st_s.n_by_rule[k]);
    size_t j = 0, n_copy = 0, n_mismatch = 0;
    for (size_t i = 0; i < whole.n && j < sent.n; i++) {
        const struct sa_record *w = &whole.items[i];
        CHECK(w->kind == SA_RECORD_ANSWER && w->eos == -1 && !w->prefix && !w->last);
        struct sa_buf shown, truth;
        sa_buf_init(&shown, 0);
        sa_buf_init(&truth, 0);
        bool any_bad = false;
        for (; j < sent.n && !strcmp(sent.items[j].question, w->question); j++) {
            const struct sa_record *x = &sent.items[j];
            enum sa_gsm8k_rule rule = rule_of(x);
            any_bad |= rule != SA_GSM8K_COPY;
            if (rule != SA_GSM8K_DROPPED)
                CHECK_OK(shown.len ? sa_buf_printf(&shown, "\n%s", x->last) : sa_buf_puts(&shown, x->last));
            CHECK_OK(truth.len ? sa_buf_printf(&truth, "\n%s", x->correction) : sa_buf_puts(&truth, x->correction));
        }
        n_mismatch += strcmp(w->answer, shown.data ? shown.data : "") != 0 ||
                      strcmp(w->correction, truth.data ? truth.data : "") != 0;
        n_copy += !any_bad;
        CHECK_EQ_INT(!strcmp(w->answer, w->correction), !any_bad);
        CHECK((strstr(w->source, ":answer:0_of_") != NULL) == !any_bad);
        sa_buf_free(&shown);
        sa_buf_free(&truth);
    }
    CHECK_EQ_INT(j, sent.n);
    CHECK_EQ_INT(n_mismatch, 0);
    printf("whole-answer: %zu of 300 problems without a rewritten step\n", n_copy);
    CHECK(n_copy > 0 && n_copy < 60);
    sa_records_free(&sent);
    sa_records_free(&whole);
}

int main(void) {
    RUN(test_rules_by_hand);
    RUN(test_every_rewrite);
    RUN(test_ratio_determinism_strip);
    RUN(test_whole_answer);
    free(train_text);
    return harness_summary();
}
