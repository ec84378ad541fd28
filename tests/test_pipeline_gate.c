/* test_pipeline_gate.c: the gated revision (issue 13; sa_pipeline_params.edit_gate). Over
 * SmolLM2-135M as upstream and as an (untrained) aligner: the margin the pipeline reports
 * equals log p(y2) - log p(y1) computed independently (fresh contexts, plain greedy decoding
 * and a teacher-forced pass, summing log-softmax by hand), for a sentence and a whole-answer
 * revision, SUM and MEAN; a threshold of -inf gives the ungated answer byte for byte, +inf
 * gates every edit and gives the answer of a copying aligner; the trace carries margin and
 * gated and reads them back; params that cannot work are refused. */
#define _GNU_SOURCE
#include "harness.h"
#include "pipeline_fixtures.h"
#include "smollm_model.h"
#include "pipeline/pipeline_impl.h"
#include "sa/sa.h"
#include "sa/pipeline.h"
#include "sa/pipeline_trace.h"
#include "tokenizer/tokenizer_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct sa_model *g_model;

static int32_t argmax(const float *row, int32_t V) {
    int32_t b = 0;
    for (int32_t i = 1; i < V; i++)
        if (row[i] > row[b]) b = i;
    return b;
}

static struct sa_ctx *fresh_ctx(void) {
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = 2;
    cp.batch_invariant = true;
    struct sa_ctx *c = NULL;
    CHECK_OK(sa_ctx_init(g_model, &cp, &c));
    return c;
}

/* The independent computation of one revision: the aligner's prompt for `input` (no system
 * message), greedy decoding one token at a time from a fresh context (y2, its log-probability
 * with the end token, its text), and y1 teacher-forced in another fresh context, followed by
 * the end token y2 stopped on. */
struct indep {
    double lp2, lp1;
    int32_t n2, n1; /* tokens, end token included */
    char *y2;       /* stripped */
};

static struct indep independent(const char *input, const char *y1, int32_t max_tokens) {
    struct indep r = {0};
    const struct sa_tokenizer *tok = sa_model_tokenizer(g_model);
    const int32_t V = sa_model_n_vocab(g_model);
    struct sa_chat_msg msg = {"user", input};
    char *prompt = NULL;
    size_t plen = 0;
    CHECK_OK(sa_chat_render(SA_CHAT_FORMAT_CHATML, sa_model_chat_template(g_model), &msg, 1, true, NULL, &prompt,
                            &plen));
    int32_t *ids = NULL, *d = NULL;
    size_t n_ids = 0, n_d = 0;
    CHECK_OK(sa_local_tokenize_prompt(tok, prompt, plen, &ids, &n_ids));
    struct sa_tokenize_opts to = {.add_special = false, .parse_special = false};
    CHECK_OK(sa_tokenize(tok, y1, strlen(y1), to, &d, &n_d));
    /* y2: plain greedy decoding */
    struct sa_ctx *c = fresh_ctx();
    float *logits = malloc((size_t)V * sizeof(float));
    int32_t gen[512], n_gen = 0, end = -1;
    CHECK_OK(sa_ctx_decode(c, ids, (int32_t)n_ids, logits));
    for (; n_gen < max_tokens; n_gen++) {
        const int32_t y = argmax(logits, V);
        r.lp2 += log_softmax_at(logits, V, y);
        r.n2++;
        if (sa_tokenizer_is_eog(tok, y)) {
            end = y;
            break;
        }
        gen[n_gen] = y;
        CHECK_OK(sa_ctx_decode(c, &y, 1, logits));
    }
    char *text = NULL;
    size_t tl = 0;
    struct sa_detokenize_opts dopts = {.special = false, .strip_leading_space = false};
    CHECK_OK(sa_detokenize(tok, gen, (size_t)n_gen, dopts, &text, &tl));
    r.y2 = sa_join_strip(text, tl);
    free(text);
    if (end < 0) end = sa_tokenizer_eot(tok);
    /* y1: prompt + y1 in one pass, every row's logits */
    sa_ctx_free(c);
    c = fresh_ctx();
    const int32_t n_all = (int32_t)(n_ids + n_d);
    int32_t *all = malloc((size_t)n_all * sizeof(int32_t));
    memcpy(all, ids, n_ids * sizeof(int32_t));
    memcpy(all + n_ids, d, n_d * sizeof(int32_t));
    float *rows = malloc((size_t)n_all * (size_t)V * sizeof(float)); /* (n_all, V) */
    CHECK_OK(sa_ctx_decode_all(c, all, n_all, rows));
    for (size_t j = 0; j <= n_d; j++) {
        const int32_t y = j < n_d ? d[j] : end;
        if (y < 0) continue;
        r.lp1 += log_softmax_at(rows + (n_ids - 1 + j) * (size_t)V, V, y);
        r.n1++;
    }
    free(rows);
    free(all);
    free(logits);
    sa_ctx_free(c);
    free(d);
    free(ids);
    free(prompt);
    return r;
}

static struct sa_pipeline *gate_pipeline(enum sa_pipeline_mode mode, float thr, enum sa_pipeline_edit_score sc,
                                         bool gate) {
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.mode = mode;
    pp.aligner_model = g_model;
    if (mode != SA_PIPELINE_ALIGNER) pp.upstream_model = g_model;
    pp.batch_invariant = true;
    pp.n_ctx = 1024;
    pp.n_threads = 2;
    pp.edit_gate = gate;
    pp.edit_threshold = thr;
    pp.edit_score = sc;
    struct sa_pipeline *pl = NULL;
    CHECK_OK(sa_pipeline_init(&pp, &pl));
    return pl;
}

static const char *const Q = "Tom has 3 apples and buys 4 more. How many apples does he have?";

/* One revision (a sentence, then a whole answer), SUM and MEAN, against the computation above. */
static void test_margin_independent(void) {
    if (!g_model) return;
    for (int k = 0; k < 2; k++) {
        const bool sentence = k == 0;
        const char *prefix = "Tom has 3 + 4 = 7 apples.", *y1 = sentence ? "The answer is 8." : "3 + 4 = 8. The answer is 8.";
        char *input = NULL;
        CHECK_OK(sentence ? sa_aligner_input(Q, prefix, y1, &input) : sa_aligner_baseline_input(Q, y1, &input));
        struct indep ind = independent(input, y1, 2 * 16 + (sentence ? 32 : 64));
        CHECK_MSG(ind.y2 && strcmp(ind.y2, y1) != 0, "the aligner was expected to edit \"%s\" (got \"%s\")", y1,
                  ind.y2 ? ind.y2 : "(null)");
        for (int m = 0; m < 2; m++) {
            const enum sa_pipeline_edit_score sc = m ? SA_PIPELINE_EDIT_SCORE_MEAN : SA_PIPELINE_EDIT_SCORE_SUM;
            struct sa_pipeline *pl = gate_pipeline(SA_PIPELINE_ALIGNER, -INFINITY, sc, true);
            if (!pl) continue;
            struct sa_pipeline_result r;
            CHECK_OK(sentence ? sa_pipeline_revise_sentence(pl, Q, prefix, y1, &r)
                              : sa_pipeline_revise_answer(pl, Q, y1, NULL, &r));
            CHECK_EQ_STR(r.answer, ind.y2); /* -inf: the revision is kept */
            CHECK_EQ_INT(r.n_scored, 1);
            CHECK_EQ_INT(r.n_gated, 0);
            CHECK_NEAR(r.logp_revision, ind.lp2, 1e-3);
            CHECK_NEAR(r.logp_draft, ind.lp1, 1e-3);
            const double want = m ? ind.lp2 / ind.n2 - ind.lp1 / ind.n1 : ind.lp2 - ind.lp1;
            CHECK_NEAR(r.margin, want, 1e-3);
            /* SUM: a threshold just above the margin gates the edit: y1 comes back */
            sa_pipeline_result_free(&r);
            sa_pipeline_free(pl);
            if (m) continue;
            pl = gate_pipeline(SA_PIPELINE_ALIGNER, (float)(want + 0.01), sc, true);
            if (!pl) continue;
            CHECK_OK(sentence ? sa_pipeline_revise_sentence(pl, Q, prefix, y1, &r)
                              : sa_pipeline_revise_answer(pl, Q, y1, NULL, &r));
            CHECK_EQ_STR(r.answer, y1);
            CHECK_EQ_INT(r.n_gated, 1);
            CHECK_EQ_INT(r.n_copied, 0);
            sa_pipeline_result_free(&r);
            sa_pipeline_free(pl);
        }
        free(ind.y2);
        free(input);
    }
}

/* ---- the loop ---- */

struct rec {
    int n, n_scored, n_gated, n_edit;
    int32_t aligner_prefill; /* prompt tokens the aligner evaluated (its cache kept the rest) */
    bool bad_event;
    char *trace; /* the trace lines, as `salign align --trace` writes them */
    size_t trace_len;
};

static bool on_sentence(void *user, const struct sa_pipeline_sentence *s) {
    struct rec *r = user;
    r->n++;
    r->n_scored += s->scored;
    r->n_gated += s->gated;
    r->n_edit += s->aligned && !s->copied;
    r->aligner_prefill += s->aligner_prefill;
    if (s->gated) { /* y1 was emitted; the aligner's edit is kept for the record */
        const size_t lo = strlen(s->original);
        if (!s->proposed || !strcmp(s->proposed, s->original) || s->len < lo ||
            strcmp(s->text + s->len - lo, s->original) || s->edit_ratio != 0 || !(s->margin < INFINITY))
            r->bad_event = true;
    }
    if (s->scored && s->copied && s->margin != 0) r->bad_event = true;
    if (!s->scored && !isnan(s->margin)) r->bad_event = true;
    if (!trace_append(&r->trace, &r->trace_len, s, "7")) r->bad_event = true;
    return true;
}

static char *stream(bool gate, float thr, bool copying, struct rec *rc) {
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.upstream_model = g_model;
    if (copying) pp.aligner_fn = copy_aligner;
    else pp.aligner_model = g_model;
    pp.batch_invariant = true;
    pp.n_ctx = 1024;
    pp.n_threads = 2;
    pp.max_rounds = 2;
    pp.max_length = 80;
    pp.max_sentence_tokens = 40;
    pp.edit_gate = gate;
    pp.edit_threshold = thr;
    struct sa_pipeline *pl = NULL;
    CHECK_OK(sa_pipeline_init(&pp, &pl));
    if (!pl) return NULL;
    struct sa_pipeline_callbacks cb = {.on_sentence = on_sentence, .user = rc};
    struct sa_pipeline_result r;
    char *answer = NULL;
    CHECK_OK(sa_pipeline_run(pl, "Why is the sky blue?", &cb, &r));
    CHECK_EQ_INT(r.n_scored, rc->n_scored);
    CHECK_EQ_INT(r.n_gated, rc->n_gated);
    CHECK(!rc->bad_event);
    answer = r.answer;
    r.answer = NULL;
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    return answer;
}

struct read_back {
    int n, n_margin, n_gated, n_proposed;
};

static enum sa_status on_round(void *user, const struct sa_trace_round *r, const char *where) {
    (void)where;
    struct read_back *b = user;
    b->n++;
    b->n_margin += (r->has & SA_TRACE_MARGIN) != 0;
    b->n_gated += (r->has & SA_TRACE_GATED) && r->gated;
    b->n_proposed += (r->has & SA_TRACE_PROPOSED) && r->proposed && r->proposed[0];
    return SA_STATUS_OK;
}

static void test_stream_thresholds(void) {
    if (!g_model) return;
    struct rec off = {0}, lo = {0}, hi = {0}, cp = {0};
    char *a_off = stream(false, 0, false, &off);
    char *a_lo = stream(true, -INFINITY, false, &lo);
    char *a_hi = stream(true, INFINITY, false, &hi);
    char *a_cp = stream(false, 0, true, &cp);
    CHECK(a_off && a_lo && a_hi && a_cp);
    CHECK_EQ_INT(off.n_scored, 0);
    CHECK_EQ_STR(a_lo, a_off); /* scored, none gated: byte for byte the ungated answer */
    /* scoring y1 rolls the aligner's cache back past the prompt only: the next round reuses as much */
    CHECK_EQ_INT(lo.aligner_prefill, off.aligner_prefill);
    CHECK_EQ_INT(lo.n_scored, lo.n);
    CHECK_EQ_INT(lo.n_gated, 0);
    CHECK_MSG(lo.n_edit > 0, "the untrained aligner was expected to edit a sentence");
    CHECK_EQ_STR(a_hi, a_cp); /* every edit gated: the copying aligner's answer */
    CHECK_EQ_INT(hi.n_gated, hi.n_edit);
    CHECK(hi.n_gated > 0);
    /* the trace: margin on every scored line (none without the gate), gated and proposed read back */
    struct read_back b_off = {0}, b_hi = {0};
    CHECK_OK(sa_trace_read(off.trace, off.trace_len, "off", on_round, &b_off, NULL));
    CHECK_OK(sa_trace_read(hi.trace, hi.trace_len, "hi", on_round, &b_hi, NULL));
    CHECK(b_off.n == off.n && b_off.n_margin == 0 && b_off.n_gated == 0);
    CHECK(b_hi.n == hi.n && b_hi.n_margin == hi.n_scored && b_hi.n_gated == hi.n_gated &&
          b_hi.n_proposed == hi.n_gated);
    CHECK(off.trace && !strstr(off.trace, "\"margin\"")); /* gate off: the lines of before */
    free(a_off);
    free(a_lo);
    free(a_hi);
    free(a_cp);
    free(off.trace);
    free(lo.trace);
    free(hi.trace);
    free(cp.trace);
}

/* ---- no model ---- */

static void test_trace_fields(void) {
    struct sa_pipeline_sentence s = {.index = 1, .aligned = true, .original = "It is 5.", .text = " It is 5.",
                                     .len = 9, .answer = "It is 5.", .scored = true, .margin = -1.5,
                                     .gated = true, .proposed = "It is 4."};
    struct sa_trace_round w = sa_trace_round_of_sentence(&s, NULL, NULL);
    char *line = NULL;
    CHECK_OK(sa_trace_round_format(&w, &line, NULL));
    CHECK(line && strstr(line, ",\"t_ms\":0,\"margin\":-1.5,\"gated\":true,\"proposed\":\"It is 4.\"}\n") != NULL);
    struct read_back b = {0};
    CHECK_OK(sa_trace_read(line, strlen(line), "t", on_round, &b, NULL));
    CHECK(b.n == 1 && b.n_margin == 1 && b.n_gated == 1 && b.n_proposed == 1);
    free(line);
    s.scored = false; /* not scored: no gate fields */
    s.margin = NAN;
    w = sa_trace_round_of_sentence(&s, NULL, NULL);
    CHECK_OK(sa_trace_round_format(&w, &line, NULL));
    CHECK(line && !strstr(line, "margin") && !strstr(line, "gated") && !strstr(line, "proposed"));
    free(line);
    static const char bad[] = "{\"round\":1,\"margin\":\"x\"}\n";
    CHECK_EQ_INT(sa_trace_read(bad, strlen(bad), "b", on_round, &b, NULL), SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "\"margin\"") != NULL);
    static const char bad2[] = "{\"round\":1,\"gated\":1}\n";
    CHECK_EQ_INT(sa_trace_read(bad2, strlen(bad2), "b", on_round, &b, NULL), SA_STATUS_BAD_JSON);
}

static void test_params(void) {
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    CHECK(!pp.edit_gate && pp.edit_score == SA_PIPELINE_EDIT_SCORE_SUM);
    CHECK_EQ_STR(sa_pipeline_edit_score_name(SA_PIPELINE_EDIT_SCORE_MEAN), "mean");
    pp.mode = SA_PIPELINE_ALIGNER;
    pp.aligner_fn = copy_aligner;
    pp.edit_gate = true;
    struct sa_pipeline *pl = NULL;
    CHECK_EQ_INT(sa_pipeline_init(&pp, &pl), SA_STATUS_BAD_ARGUMENT); /* no log-probabilities */
    CHECK(strstr(sa_last_error(), "edit_gate") != NULL);
    pp.aligner_fn = NULL;
    pp.aligner_model = g_model;
    pp.edit_threshold = NAN;
    if (g_model) {
        CHECK_EQ_INT(sa_pipeline_init(&pp, &pl), SA_STATUS_BAD_ARGUMENT);
        pp.edit_threshold = 0;
        pp.edit_score = (enum sa_pipeline_edit_score)7;
        CHECK_EQ_INT(sa_pipeline_init(&pp, &pl), SA_STATUS_BAD_ARGUMENT);
    }
    CHECK(pl == NULL);
}

int main(void) {
    RUN(test_trace_fields);
    g_model = load_smollm();
    RUN(test_params);
    RUN(test_margin_independent);
    RUN(test_stream_thresholds);
    sa_model_free(g_model);
    return harness_summary();
}
