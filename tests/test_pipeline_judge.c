/* test_pipeline_judge.c: the edit judge (issue 13; sa_pipeline_params.edit_judge_model). Over
 * SmolLM2-135M as upstream, (untrained) aligner and judge: the judge margin of each edit equals
 * log p(y2) - log p(y1) computed independently (a fresh context, the solver's prompt and each
 * sentence decoded in one pass, log-softmax summed by hand over the tokens after the prompt);
 * a threshold of -inf judges every edit and gives the answer without a judge byte for byte;
 * +inf refuses every edit (refused_by "judge") and gives the answer of a copying aligner; the
 * trace carries judge_margin and refused_by "judge" and reads them back; params that cannot
 * work are refused. */
#define _GNU_SOURCE
#include "harness.h"
#include "pipeline_fixtures.h"
#include "smollm_model.h"
#include "pipeline/pipeline_impl.h"
#include "sa/pipeline.h"
#include "sa/pipeline_trace.h"
#include "sa/sa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct sa_model *g_model;

static const char *const Q = "Why is the sky blue?";

/* log p(sentence | prompt): prompt + sentence tokenized as one and decoded in one pass in a
 * fresh context; the sum over the tokens after those it shares with the prompt alone. */
static double logp_after(const char *prompt, const char *sentence) {
    const struct sa_tokenizer *tok = sa_model_tokenizer(g_model);
    const int32_t V = sa_model_n_vocab(g_model);
    char *all = NULL;
    CHECK(asprintf(&all, "%s%s", prompt, sentence) > 0);
    int32_t *p = NULL, *t = NULL;
    size_t np = 0, nt = 0;
    CHECK_OK(sa_local_tokenize_prompt(tok, prompt, strlen(prompt), &p, &np));
    CHECK_OK(sa_local_tokenize_prompt(tok, all, strlen(all), &t, &nt));
    size_t k = 0;
    while (k < np && k < nt && p[k] == t[k]) k++;
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = 2;
    cp.batch_invariant = true;
    struct sa_ctx *c = NULL;
    CHECK_OK(sa_ctx_init(g_model, &cp, &c));
    float *rows = malloc(nt * (size_t)V * sizeof(float)); /* (nt, V) */
    double lp = 0;
    if (c && rows && k > 0) {
        CHECK_OK(sa_ctx_decode_all(c, t, (int32_t)nt, rows));
        for (size_t i = k; i < nt; i++) lp += log_softmax_at(rows + (i - 1) * (size_t)V, V, t[i]);
    }
    sa_ctx_free(c);
    free(rows);
    free(t);
    free(p);
    free(all);
    return lp;
}

struct rec {
    int n, n_edit, n_judged, n_judge_refused, n_checked;
    bool bad_event;
    double worst; /* the largest |margin - independent margin| */
    bool verify;  /* compute each judged margin independently */
    bool judge_on;
    char *trace;
    size_t trace_len;
};

static bool on_sentence(void *user, const struct sa_pipeline_sentence *s) {
    struct rec *r = user;
    r->n++;
    const bool edited = s->aligned && !s->copied; /* the aligner changed y1 (kept or not) */
    r->n_edit += edited;
    r->n_judged += s->judged;
    const bool by_judge = s->refused && s->refused_by == SA_PIPELINE_EDIT_CHECK_JUDGE;
    r->n_judge_refused += by_judge;
    if (s->judged != (edited && r->judge_on) || (s->judged ? !isfinite(s->judge_margin) : !isnan(s->judge_margin)) ||
        (by_judge && (!s->proposed || !strcmp(s->proposed, s->original))))
        r->bad_event = true;
    if (r->verify && s->judged) {
        /* y2 as the aligner wrote it, the separator before it, the answer before this piece */
        const char *emitted = s->text + sa_join_lead(s->text, s->len);
        const char *y2 = by_judge ? s->proposed : emitted;
        const size_t lead = (size_t)(emitted - s->text), before = strlen(s->answer) - s->len;
        char *context = strndup(s->answer, before + lead);
        memcpy(context + before, s->text, lead);
        struct sa_chat_msg msg = {"user", Q};
        char *prompt = NULL;
        size_t plen = 0;
        CHECK_OK(sa_chat_render(SA_CHAT_FORMAT_CHATML, sa_model_chat_template(g_model), &msg, 1, true,
                                context[0] ? context : NULL, &prompt, &plen));
        if (prompt) {
            const double want = logp_after(prompt, y2) - logp_after(prompt, s->original);
            const double d = fabs(want - s->judge_margin);
            if (d > r->worst) r->worst = d;
            r->n_checked++;
        }
        free(prompt);
        free(context);
    }
    if (!trace_append(&r->trace, &r->trace_len, s, "3")) r->bad_event = true;
    return true;
}

static struct sa_pipeline_params stream_params(void) {
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.upstream_model = g_model;
    pp.aligner_model = g_model;
    pp.batch_invariant = true;
    pp.n_ctx = 1024;
    pp.n_threads = 2;
    pp.max_rounds = 3;
    pp.max_length = 120;
    pp.max_sentence_tokens = 40;
    return pp;
}

/* judge: 0 none, 1 the judge at `thr`; copying: the copying aligner instead of the model */
static char *stream(int judge, float thr, bool copying, struct rec *rc) {
    struct sa_pipeline_params pp = stream_params();
    if (copying) {
        pp.aligner_model = NULL;
        pp.aligner_fn = copy_aligner;
    }
    if (judge) {
        pp.edit_judge_model = g_model;
        pp.edit_judge_threshold = thr;
    }
    struct sa_pipeline *pl = NULL;
    CHECK_OK(sa_pipeline_init(&pp, &pl));
    if (!pl) return NULL;
    struct sa_pipeline_callbacks cb = {.on_sentence = on_sentence, .user = rc};
    struct sa_pipeline_result r;
    rc->judge_on = judge != 0;
    CHECK_OK(sa_pipeline_run(pl, Q, &cb, &r));
    CHECK_EQ_INT(r.n_judged, rc->n_judged);
    CHECK_EQ_INT(r.n_judge_refused, rc->n_judge_refused);
    CHECK(r.n_refused >= r.n_judge_refused);
    CHECK(judge ? r.judge_ms >= 0 : r.judge_ms == 0);
    CHECK(!rc->bad_event);
    char *answer = r.answer;
    r.answer = NULL;
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    return answer;
}

struct read_back {
    int n, n_judge_margin, n_by_judge;
};

static enum sa_status on_round(void *user, const struct sa_trace_round *r, const char *where) {
    (void)where;
    struct read_back *b = user;
    b->n++;
    b->n_judge_margin += (r->has & SA_TRACE_JUDGE_MARGIN) != 0;
    b->n_by_judge += (r->has & SA_TRACE_REFUSED_BY) && r->refused_by == SA_PIPELINE_EDIT_CHECK_JUDGE;
    return SA_STATUS_OK;
}

static void test_stream_judge(void) {
    if (!g_model) return;
    struct rec off = {0}, lo = {.verify = true}, hi = {.verify = true}, cp = {0};
    char *a_off = stream(0, 0, false, &off);
    char *a_lo = stream(1, -INFINITY, false, &lo);
    char *a_hi = stream(1, INFINITY, false, &hi);
    char *a_cp = stream(0, 0, true, &cp);
    CHECK(a_off && a_lo && a_hi && a_cp);
    CHECK_MSG(lo.n_edit > 0, "the untrained aligner was expected to edit a sentence");
    /* -inf: every edit judged, none refused: byte for byte the answer without a judge */
    CHECK_EQ_STR(a_lo, a_off);
    CHECK_EQ_INT(off.n_judged, 0);
    CHECK_EQ_INT(lo.n_judged, lo.n_edit);
    CHECK_EQ_INT(lo.n_judge_refused, 0);
    /* the margins, against the independent computation */
    CHECK(lo.n_checked == lo.n_judged && hi.n_checked == hi.n_judged);
    CHECK_MSG(lo.worst < 2e-3 && hi.worst < 2e-3, "judge margins differ from the independent ones by %g, %g",
              lo.worst, hi.worst);
    /* +inf: every edit refused by the judge: the copying aligner's answer */
    CHECK_EQ_STR(a_hi, a_cp);
    CHECK(hi.n_judge_refused > 0);
    CHECK_EQ_INT(hi.n_judge_refused, hi.n_edit);
    /* the trace: judge_margin on every judged line, refused_by "judge" read back; none without */
    struct read_back b_off = {0}, b_hi = {0};
    CHECK_OK(sa_trace_read(off.trace, off.trace_len, "off", on_round, &b_off, NULL));
    CHECK_OK(sa_trace_read(hi.trace, hi.trace_len, "hi", on_round, &b_hi, NULL));
    CHECK(b_off.n == off.n && b_off.n_judge_margin == 0 && b_off.n_by_judge == 0);
    CHECK(b_hi.n == hi.n && b_hi.n_judge_margin == hi.n_judged && b_hi.n_by_judge == hi.n_judge_refused);
    CHECK(hi.trace && strstr(hi.trace, "\"refused_by\":\"judge\"") && strstr(hi.trace, "\"judge_margin\":"));
    CHECK(off.trace && !strstr(off.trace, "judge"));
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
    struct sa_pipeline_sentence s = {.index = 2, .aligned = true, .original = "It is 5.", .text = " It is 5.",
                                     .len = 9, .answer = "A. It is 5.", .refused = true,
                                     .refused_by = SA_PIPELINE_EDIT_CHECK_JUDGE, .proposed = "It is 4.",
                                     .judged = true, .judge_margin = -2.25, .margin = NAN};
    CHECK_EQ_STR(sa_pipeline_edit_check_name(SA_PIPELINE_EDIT_CHECK_JUDGE), "judge");
    CHECK(!(SA_PIPELINE_EDIT_CHECK_KNOWN & SA_PIPELINE_EDIT_CHECK_JUDGE)); /* not a rule of edit_check */
    struct sa_trace_round w = sa_trace_round_of_sentence(&s, NULL, NULL);
    char *line = NULL;
    CHECK_OK(sa_trace_round_format(&w, &line, NULL));
    CHECK(line && strstr(line, "\"refused\":true,\"refused_by\":\"judge\",\"proposed\":\"It is 4.\"") &&
          strstr(line, "\"judge_margin\":-2.25}\n"));
    struct read_back b = {0};
    if (line) CHECK_OK(sa_trace_read(line, strlen(line), "t", on_round, &b, NULL));
    CHECK(b.n == 1 && b.n_judge_margin == 1 && b.n_by_judge == 1);
    free(line);
    s.judged = false; /* not judged: no judge_margin */
    s.judge_margin = NAN;
    s.refused = false;
    s.refused_by = 0;
    w = sa_trace_round_of_sentence(&s, NULL, NULL);
    CHECK_OK(sa_trace_round_format(&w, &line, NULL));
    CHECK(line && !strstr(line, "judge"));
    free(line);
    w.has |= SA_TRACE_JUDGE_MARGIN; /* marked present but not a number */
    CHECK_EQ_INT(sa_trace_round_format(&w, &line, NULL), SA_STATUS_BAD_ARGUMENT);
    static const char bad[] = "{\"round\":1,\"judge_margin\":\"x\"}\n";
    CHECK_EQ_INT(sa_trace_read(bad, strlen(bad), "b", on_round, &b, NULL), SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "\"judge_margin\"") != NULL);
    static const char bad2[] = "{\"round\":1,\"refused\":true,\"refused_by\":\"judges\"}\n";
    CHECK_EQ_INT(sa_trace_read(bad2, strlen(bad2), "b", on_round, &b, NULL), SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "judge") != NULL); /* the message lists the names, the judge's too */
}

static void test_params(void) {
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    CHECK(pp.edit_judge_model == NULL && pp.edit_judge_threshold == 0.0f);
    struct sa_pipeline *pl = NULL;
    pp.aligner_fn = copy_aligner;
    pp.mode = SA_PIPELINE_ALIGNER; /* the judge judges sentences */
    pp.edit_judge_model = g_model ? g_model : (const struct sa_model *)&pp;
    CHECK_EQ_INT(sa_pipeline_init(&pp, &pl), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "edit judge") != NULL);
    pp.mode = SA_PIPELINE_STREAM;
    pp.upstream_model = g_model;
    pp.edit_judge_threshold = NAN;
    if (g_model) {
        CHECK_EQ_INT(sa_pipeline_init(&pp, &pl), SA_STATUS_BAD_ARGUMENT);
        CHECK(strstr(sa_last_error(), "edit_judge_threshold") != NULL);
        pp.edit_judge_threshold = 0;
        pp.edit_judge_model = NULL;
        pp.edit_judge_lora = (const struct sa_lora *)&pp; /* an adapter without a judge */
        CHECK_EQ_INT(sa_pipeline_init(&pp, &pl), SA_STATUS_BAD_ARGUMENT);
        CHECK(strstr(sa_last_error(), "edit_judge_lora") != NULL);
    }
    CHECK(pl == NULL);
}

int main(void) {
    RUN(test_trace_fields);
    g_model = load_smollm();
    RUN(test_params);
    RUN(test_stream_judge);
    sa_model_free(g_model);
    return harness_summary();
}
