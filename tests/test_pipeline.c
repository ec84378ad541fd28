/* test_pipeline.c: the Stream Aligner loop (src/pipeline/pipeline.c) with a scripted upstream
 * (struct sa_upstream_ops) and scripted aligners (aligner_fn): stop conditions, joining and
 * whitespace, each mode, max-rounds/length, cancel, upstream failures; then the local upstream
 * over a real small model (SmolLM2-135M): the KV cache kept on a copy and rolled back on a
 * rewrite gives the same answer as evaluating every prompt from scratch, a copying aligner
 * reproduces the upstream's own answer, and copy-speculation does not change the answer. */
#define _GNU_SOURCE
#include "harness.h"
#include "smollm_model.h"
#include "pipeline/pipeline_impl.h"
#include "sa/sa.h"
#include "sa/pipeline.h"
#include "sa/pipeline_trace.h"

#include <stdlib.h>
#include <string.h>

/* ---- a scripted upstream: start k streams units[k] + units[k+1] + ... in chunks of `chunk`
 * bytes (one token each); the last chunk carries finish STOP, as a server's last event does ---- */

struct fake_up {
    const char *const *units;
    int n_units;
    size_t chunk;
    int n_start, n_cancel;
    char *prompt;          /* the last prompt */
    char *text;            /* the generation in progress */
    size_t pos, len;
    int32_t max_tokens, n_tok;
    int fail_start_at;     /* start number (1-based) that fails; 0: none */
    int fail_next_at;      /* start number whose first next() fails; 0: none */
    char buf[256];
};

static enum sa_status fake_start(void *impl, const char *prompt, size_t len, const struct sa_upstream_gen_params *p) {
    struct fake_up *f = impl;
    f->n_start++;
    free(f->prompt);
    f->prompt = strndup(prompt, len);
    if (f->n_start == f->fail_start_at)
        return sa_error(SA_STATUS_NETWORK, "cannot connect (fake): is the upstream server running?");
    free(f->text);
    size_t total = 0;
    int k = f->n_start - 1;
    for (int i = k; i < f->n_units; i++) total += strlen(f->units[i]);
    f->text = calloc(1, total + 1);
    for (int i = k; i < f->n_units; i++) strcat(f->text, f->units[i]);
    f->len = total;
    f->pos = 0;
    f->max_tokens = p->max_tokens;
    f->n_tok = 0;
    return SA_STATUS_OK;
}

static enum sa_status fake_next(void *impl, struct sa_upstream_chunk *out) {
    struct fake_up *f = impl;
    if (f->n_start == f->fail_next_at) return sa_error(SA_STATUS_NETWORK, "the connection failed or was dropped (fake)");
    size_t n = f->len - f->pos < f->chunk ? f->len - f->pos : f->chunk;
    memcpy(f->buf, f->text + f->pos, n);
    f->buf[n] = 0;
    f->pos += n;
    f->n_tok++;
    out->text = f->buf;
    out->len = n;
    out->n_tokens = 1;
    out->finish = f->pos == f->len ? SA_UPSTREAM_FINISH_STOP
                  : f->n_tok >= f->max_tokens ? SA_UPSTREAM_FINISH_LENGTH
                                              : SA_UPSTREAM_FINISH_NONE;
    return SA_STATUS_OK;
}

static void fake_cancel(void *impl) {
    ((struct fake_up *)impl)->n_cancel++;
}

static void fake_free(void *impl) {
    struct fake_up *f = impl;
    free(f->prompt);
    free(f->text);
    f->prompt = f->text = NULL;
}

static const struct sa_upstream_ops fake_ops = {"fake", fake_start, fake_next, fake_cancel, fake_free};

/* ---- scripted aligners ---- */

struct fake_al {
    int n_calls;
    enum sa_pipeline_request_kind kinds[32];
    char *prefixes[32], *lasts[32];
    /* replies[i] for the i-th call (NULL or past the end: copy `last`) */
    const char *const *replies;
    int n_replies;
};

static enum sa_status fake_align(void *user, const struct sa_pipeline_request *req, char **out, int32_t *n_tokens) {
    struct fake_al *a = user;
    int i = a->n_calls++;
    if (i < 32) {
        a->kinds[i] = req->kind;
        a->prefixes[i] = strdup(req->prefix);
        a->lasts[i] = strdup(req->last);
    }
    const char *r = i < a->n_replies && a->replies[i] ? a->replies[i] : req->last;
    *out = strdup(r);
    *n_tokens = sa_join_count_words(r, strlen(r));
    return SA_STATUS_OK;
}

static void fake_al_free(struct fake_al *a) {
    for (int i = 0; i < a->n_calls && i < 32; i++) {
        free(a->prefixes[i]);
        free(a->lasts[i]);
    }
}

/* ---- running ---- */

struct events {
    int n;
    char *text[32];
    bool aligned[32], copied[32], done[32];
    double edit[32];
    int stop_after;   /* on_sentence returns false after this many; 0: never */
    int cancel_after; /* the cancel hook fires after this many polls; 0: never */
    int polls;
};

static bool on_sentence(void *user, const struct sa_pipeline_sentence *s) {
    struct events *e = user;
    if (e->n < 32) {
        e->text[e->n] = strndup(s->text, s->len);
        e->aligned[e->n] = s->aligned;
        e->copied[e->n] = s->copied;
        e->done[e->n] = s->upstream_done;
        e->edit[e->n] = s->edit_ratio;
    }
    e->n++;
    CHECK_EQ_INT(s->index, e->n);
    CHECK(strlen(s->answer) >= s->len && !strcmp(s->answer + strlen(s->answer) - s->len, s->text));
    return !(e->stop_after && e->n >= e->stop_after);
}

static bool cancel_hook(void *user) {
    struct events *e = user;
    e->polls++;
    return e->cancel_after && e->polls > e->cancel_after;
}

static void events_free(struct events *e) {
    for (int i = 0; i < e->n && i < 32; i++) free(e->text[i]);
}

struct setup {
    struct fake_up fu;
    struct fake_al fa;
    struct sa_upstream *up;
    struct sa_pipeline_params pp;
};

static void setup_init(struct setup *st, const char *const *units, int n_units, size_t chunk) {
    memset(st, 0, sizeof *st);
    st->fu.units = units;
    st->fu.n_units = n_units;
    st->fu.chunk = chunk;
    CHECK_OK(sa_upstream_init_ops(&fake_ops, &st->fu, &st->up));
    st->pp = sa_pipeline_default_params();
    st->pp.upstream = st->up;
    st->pp.upstream_format = SA_CHAT_FORMAT_CHATML;
    st->pp.aligner_fn = fake_align;
    st->pp.aligner_user = &st->fa;
    /* this double streams its script whatever the prompt says, so it cannot take a line break
     * back at the end of its prompt: the kept break is tested with test_keep_line_break's
     * double, which continues its prompt */
    st->pp.keep_line_break = false;
}

static enum sa_status setup_run(struct setup *st, const char *q, struct events *ev, struct sa_pipeline_result *r) {
    struct sa_pipeline *pl = NULL;
    enum sa_status s = sa_pipeline_init(&st->pp, &pl);
    CHECK_OK(s);
    if (s) {
        memset(r, 0, sizeof *r);
        return s;
    }
    struct sa_pipeline_callbacks cb = {on_sentence, cancel_hook, ev};
    s = sa_pipeline_run(pl, q, &cb, r);
    sa_pipeline_free(pl);
    return s;
}

static void setup_free(struct setup *st) {
    sa_upstream_free(st->up);
    fake_al_free(&st->fa);
}

static const char *const SKY[] = {"The sky is blue.", " It scatters light.", "\n\nShort waves scatter more!",
                                  " Done."};

static void test_stream_copy(void) {
    struct setup st;
    setup_init(&st, SKY, 4, 3);
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Why is the sky blue?", &ev, &r));
    CHECK_EQ_STR(r.answer, "The sky is blue. It scatters light.\n\nShort waves scatter more! Done.");
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_UPSTREAM_END);
    CHECK_EQ_INT(r.n_rounds, 4);
    CHECK_EQ_INT(r.n_copied, 4);
    CHECK_NEAR(r.copy_rate, 1.0, 1e-12);
    CHECK_EQ_INT(st.fu.n_start, 4);
    CHECK_EQ_INT(ev.n, 4);
    if (ev.n == 4) {
        CHECK_EQ_STR(ev.text[0], "The sky is blue.");
        CHECK_EQ_STR(ev.text[1], " It scatters light.");
        CHECK_EQ_STR(ev.text[2], "\n\nShort waves scatter more!");
        CHECK_EQ_STR(ev.text[3], " Done.");
        CHECK(!ev.done[0] && !ev.done[2] && ev.done[3]);
        CHECK(ev.aligned[0] && ev.copied[1] && ev.edit[1] == 0.0);
    }
    /* the aligner saw the prefix without trailing whitespace and y1 without its separator */
    CHECK_EQ_INT(st.fa.n_calls, 4);
    CHECK_EQ_STR(st.fa.prefixes[0], "");
    CHECK_EQ_STR(st.fa.prefixes[2], "The sky is blue. It scatters light.");
    CHECK_EQ_STR(st.fa.lasts[2], "Short waves scatter more!");
    CHECK_EQ_INT(st.fa.kinds[0], SA_PIPELINE_REQ_SENTENCE);
    /* the upstream's last prompt: the question as the user turn, p pre-filled */
    CHECK_EQ_STR(st.fu.prompt, "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n"
                               "The sky is blue. It scatters light.\n\nShort waves scatter more!");
    CHECK(r.first_sentence_ms > 0 && r.total_ms >= r.first_sentence_ms);
    CHECK_EQ_INT(r.n_tokens, 12); /* no tokenizer: words */
    CHECK_EQ_INT(r.n_sentences, 4);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);
}

static void test_first_prompt_and_system(void) {
    struct setup st;
    setup_init(&st, SKY, 4, 20);
    st.pp.system = "Be brief.";
    st.pp.max_rounds = 1;
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Q?", &ev, &r));
    CHECK_EQ_STR(st.fu.prompt, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n"
                               "<|im_start|>assistant\n");
    CHECK_EQ_STR(r.answer, "The sky is blue.");
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_MAX_ROUNDS);
    CHECK_EQ_INT(st.fu.n_cancel, 1); /* cut at the boundary: the stream closed */
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);
}

static void test_rewrite_whitespace(void) {
    static const char *const units[] = {"Grass is red.", " Sky is green.", "\nThat is all."};
    static const char *const replies[] = {"Grass is green.\n", "  Sky is blue;\nmostly.  ", NULL};
    struct setup st;
    setup_init(&st, units, 3, 2);
    st.fa.replies = replies;
    st.fa.n_replies = 3;
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Colours?", &ev, &r));
    /* separators are the upstream's; the revision's outer whitespace goes, inner stays */
    CHECK_EQ_STR(r.answer, "Grass is green. Sky is blue;\nmostly.\nThat is all.");
    CHECK_EQ_INT(r.n_copied, 1);
    CHECK_EQ_INT(ev.n, 3);
    if (ev.n == 3) {
        CHECK(!ev.copied[0] && !ev.copied[1] && ev.copied[2]);
        CHECK(ev.edit[0] > 0.0 && ev.edit[0] < 0.5);
        CHECK_EQ_STR(ev.text[1], " Sky is blue;\nmostly.");
    }
    /* the next prompt carries the corrected prefix */
    CHECK(strstr(st.fu.prompt, "assistant\nGrass is green. Sky is blue;\nmostly.") != NULL);
    CHECK_EQ_STR(st.fa.prefixes[1], "Grass is green.");
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);
}

static void test_empty_revision_stops(void) {
    static const char *const replies[] = {NULL, " \n "};
    struct setup st;
    setup_init(&st, SKY, 4, 5);
    st.fa.replies = replies;
    st.fa.n_replies = 2;
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Q", &ev, &r));
    CHECK_EQ_STR(r.answer, "The sky is blue.");
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_ALIGNER_EMPTY);
    CHECK_EQ_INT(r.n_rounds, 2);
    CHECK_EQ_INT(r.n_sentences, 1);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);
}

static void test_max_rounds_and_length(void) {
    struct setup st;
    setup_init(&st, SKY, 4, 3);
    st.pp.max_rounds = 2;
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Q", &ev, &r));
    CHECK_EQ_STR(r.answer, "The sky is blue. It scatters light.");
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_MAX_ROUNDS);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);

    /* 5 words: the upstream's budget is 5 tokens (chunks of 3 bytes), so its first sentence is
     * cut to "The sky is blue" (4 words); then a budget of 1 token: " It" */
    setup_init(&st, SKY, 4, 3);
    st.pp.max_length = 5;
    struct events ev2 = {0};
    CHECK_OK(setup_run(&st, "Q", &ev2, &r));
    CHECK_EQ_STR(r.answer, "The sky is blue It");
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_MAX_LENGTH);
    CHECK_EQ_INT(st.fu.n_start, 2);
    sa_pipeline_result_free(&r);
    events_free(&ev2);
    setup_free(&st);
}

/* max_length is a hard cap on the answer in every mode (issue 12: --max-length 20 gave a
 * 62-token answer): the piece that would pass it is cut at the cap and the run ends with
 * stop max_length, whatever the model was asked for. No tokenizer here: words count. */
static void test_max_length_hard_cap(void) {
    static const char *const long_rev[] = {"The sky is very very blue because air scatters blue light.",
                                           " It is blue because air scatters short waves more than long ones."};
    struct sa_pipeline_result r;
    const enum sa_pipeline_mode modes[] = {SA_PIPELINE_STREAM, SA_PIPELINE_UPSTREAM, SA_PIPELINE_ALIGNER,
                                           SA_PIPELINE_CONTINUE};
    const char *const want[] = {"The sky is very very", "The sky is blue. It", "The sky is very very",
                                "The sky is blue. It"};
    for (size_t m = 0; m < 4; m++) {
        struct setup st;
        /* one token = 20 bytes: the upstream's token budget lets it write more words than fit */
        setup_init(&st, SKY, 4, 20);
        st.pp.mode = modes[m];
        st.pp.max_length = 5;
        st.pp.continue_rounds = 1;
        if (modes[m] == SA_PIPELINE_UPSTREAM) st.pp.aligner_fn = NULL;
        st.fa.replies = modes[m] == SA_PIPELINE_CONTINUE ? (const char *const[]){NULL, long_rev[1]} : long_rev;
        st.fa.n_replies = 2;
        struct events ev = {0};
        CHECK_OK(setup_run(&st, "Why is the sky blue?", &ev, &r));
        CHECK_EQ_STR(r.answer, want[m]);
        CHECK(r.n_tokens <= 5);
        CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_MAX_LENGTH);
        CHECK(ev.n >= 1 && ev.n <= 2);
        sa_pipeline_result_free(&r);
        events_free(&ev);
        setup_free(&st);
    }
}

static void test_cancel(void) {
    struct setup st;
    setup_init(&st, SKY, 4, 3);
    struct events ev = {.stop_after = 1};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Q", &ev, &r));
    CHECK_EQ_STR(r.answer, "The sky is blue.");
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_CANCELLED);
    CHECK_EQ_INT(st.fu.n_start, 1);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);

    /* the cancel hook: polled between chunks; the answer so far is kept */
    setup_init(&st, SKY, 4, 3);
    struct events ev2 = {.cancel_after = 10};
    CHECK(setup_run(&st, "Q", &ev2, &r) == SA_STATUS_CANCELLED);
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_CANCELLED);
    CHECK(r.answer != NULL);
    CHECK_EQ_STR(r.answer, "The sky is blue."); /* 6 chunks + lookahead, then round 2 was cut */
    CHECK_EQ_INT(st.fu.n_cancel, 2);
    sa_pipeline_result_free(&r);
    events_free(&ev2);
    setup_free(&st);
}

static void test_mode_upstream(void) {
    struct setup st;
    setup_init(&st, SKY, 4, 4);
    st.pp.mode = SA_PIPELINE_UPSTREAM;
    st.pp.aligner_fn = NULL;
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Q", &ev, &r));
    CHECK_EQ_STR(r.answer, "The sky is blue. It scatters light.\n\nShort waves scatter more! Done.");
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_UPSTREAM_END);
    CHECK_EQ_INT(st.fu.n_start, 1);
    CHECK_EQ_INT(r.n_rounds, 0);
    CHECK_EQ_INT(ev.n, 4);
    if (ev.n == 4) {
        CHECK_EQ_STR(ev.text[1], " It scatters light.");
        CHECK_EQ_STR(ev.text[2], "\n\nShort waves scatter more!");
        CHECK(!ev.aligned[0] && ev.done[3] && !ev.done[2]);
    }
    CHECK_EQ_INT(r.upstream_tokens, 17); /* 68 bytes in chunks of 4 */
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);
}

static void test_mode_aligner(void) {
    static const char *const replies[] = {"\nThe sky is blue: air scatters short waves more. Done.\n"};
    struct setup st;
    setup_init(&st, SKY, 4, 7);
    st.pp.mode = SA_PIPELINE_ALIGNER;
    st.fa.replies = replies;
    st.fa.n_replies = 1;
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Q", &ev, &r));
    CHECK_EQ_INT(st.fa.n_calls, 1);
    CHECK_EQ_INT(st.fa.kinds[0], SA_PIPELINE_REQ_ANSWER);
    CHECK_EQ_STR(st.fa.lasts[0], "The sky is blue. It scatters light.\n\nShort waves scatter more! Done.");
    CHECK_EQ_STR(r.upstream_answer, st.fa.lasts[0]);
    CHECK_EQ_STR(r.answer, "The sky is blue: air scatters short waves more. Done.");
    CHECK_EQ_INT(r.n_rounds, 1);
    CHECK_EQ_INT(r.n_copied, 0);
    CHECK_EQ_INT(ev.n, 1);
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_DONE);
    CHECK_EQ_INT(st.fu.n_start, 1);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);
}

/* The Aligner with no upstream (revise_answer, revise_sentence): the fake aligner's replies and
 * the edit checks; returns the pipeline (NULL when init failed, which CHECK_OK has counted). */
static struct sa_pipeline *aligner_only_init(struct setup *st, const char *const *replies, int n_replies,
                                             unsigned edit_check) {
    setup_init(st, SKY, 4, 7);
    st->pp.mode = SA_PIPELINE_ALIGNER;
    st->pp.upstream = NULL;
    st->pp.upstream_format = SA_CHAT_FORMAT_UNKNOWN; /* not needed without an upstream */
    st->pp.edit_check = edit_check;
    st->fa.replies = replies;
    st->fa.n_replies = n_replies;
    struct sa_pipeline *pl = NULL;
    CHECK_OK(sa_pipeline_init(&st->pp, &pl));
    return pl;
}

/* The Aligner on an answer written before: no upstream at all. */
static void test_revise_given_answer(void) {
    static const char *const replies[] = {"  Fixed: 2 + 2 = 4.  ", "2 + 2 = 4."};
    struct setup st;
    struct sa_pipeline *pl = aligner_only_init(&st, replies, 2, SA_PIPELINE_EDIT_CHECK_NONE);
    struct events ev = {0};
    struct sa_pipeline_callbacks cb = {on_sentence, cancel_hook, &ev};
    struct sa_pipeline_result r;
    CHECK(sa_pipeline_run(pl, "Q", &cb, &r) == SA_STATUS_BAD_ARGUMENT); /* nothing to run */
    CHECK(strstr(sa_last_error(), "revise_answer") != NULL);
    sa_pipeline_result_free(&r);
    CHECK_OK(sa_pipeline_revise_answer(pl, "What is 2 + 2?", "\n 2 + 2 = 5.\n", &cb, &r));
    CHECK_EQ_INT(st.fa.n_calls, 1);
    CHECK_EQ_INT(st.fa.kinds[0], SA_PIPELINE_REQ_ANSWER);
    CHECK_EQ_STR(st.fa.lasts[0], "2 + 2 = 5."); /* stripped, as an upstream's answer is */
    CHECK_EQ_STR(r.upstream_answer, "2 + 2 = 5.");
    CHECK_EQ_STR(r.answer, "Fixed: 2 + 2 = 4.");
    CHECK_EQ_INT(r.n_rounds, 1);
    CHECK_EQ_INT(r.n_copied, 0);
    CHECK_EQ_INT(r.upstream_tokens, 0);
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_DONE);
    CHECK_EQ_INT(ev.n, 1);
    CHECK_EQ_INT(st.fu.n_start, 0);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    memset(&ev, 0, sizeof ev);
    /* a copy */
    CHECK_OK(sa_pipeline_revise_answer(pl, "What is 2 + 2?", "2 + 2 = 4.", &cb, &r));
    CHECK_EQ_INT(r.n_copied, 1);
    CHECK_EQ_STR(r.answer, "2 + 2 = 4.");
    sa_pipeline_result_free(&r);
    /* bad arguments */
    CHECK(sa_pipeline_revise_answer(pl, "Q", NULL, &cb, &r) == SA_STATUS_BAD_ARGUMENT);
    sa_pipeline_result_free(&r);
    CHECK(sa_pipeline_revise_answer(pl, "Q", "bad \xff utf-8", &cb, &r) == SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "answer") != NULL);
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    events_free(&ev);
    /* other modes need an upstream; revise_answer needs the aligner mode */
    st.pp.mode = SA_PIPELINE_STREAM;
    pl = NULL;
    CHECK(sa_pipeline_init(&st.pp, &pl) == SA_STATUS_BAD_ARGUMENT && !pl);
    CHECK(strstr(sa_last_error(), "needs an upstream") != NULL);
    st.pp.upstream = st.up;
    st.pp.upstream_format = SA_CHAT_FORMAT_CHATML;
    CHECK_OK(sa_pipeline_init(&st.pp, &pl));
    CHECK(sa_pipeline_revise_answer(pl, "Q", "A.", NULL, &r) == SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "not 'aligner'") != NULL);
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    setup_free(&st);
}

/* One revision outside the loop, as a STREAM round asks it. */
static void test_revise_one_sentence(void) {
    static const char *const replies[] = {" 2 + 2 = 4.\n", "", NULL};
    struct setup st;
    struct sa_pipeline *pl = aligner_only_init(&st, replies, 3, SA_PIPELINE_EDIT_CHECK_NONE);
    struct sa_pipeline_result r;
    CHECK_OK(sa_pipeline_revise_sentence(pl, "What is 2 + 2?", "First line.\n", " 2 + 2 = 5. ", &r));
    CHECK_EQ_INT(st.fa.kinds[0], SA_PIPELINE_REQ_SENTENCE);
    CHECK_EQ_STR(st.fa.prefixes[0], "First line.\n");
    CHECK_EQ_STR(st.fa.lasts[0], "2 + 2 = 5.");
    CHECK_EQ_STR(r.answer, "2 + 2 = 4.");
    CHECK(r.n_rounds == 1 && r.n_copied == 0 && r.stop == SA_PIPELINE_STOP_DONE);
    sa_pipeline_result_free(&r);
    CHECK_OK(sa_pipeline_revise_sentence(pl, "Q", "", "Keep me.", &r)); /* an empty revision */
    CHECK_EQ_STR(r.answer, "");
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_ALIGNER_EMPTY);
    sa_pipeline_result_free(&r);
    CHECK_OK(sa_pipeline_revise_sentence(pl, "Q", "", "Keep me.", &r)); /* NULL reply: a copy */
    CHECK_EQ_STR(r.answer, "Keep me.");
    CHECK_EQ_INT(r.n_copied, 1);
    sa_pipeline_result_free(&r);
    CHECK(sa_pipeline_revise_sentence(pl, "Q", NULL, "x", &r) == SA_STATUS_BAD_ARGUMENT);
    sa_pipeline_result_free(&r);
    CHECK(sa_pipeline_revise_sentence(pl, "Q", "\xc3", "x", &r) == SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "prefix") != NULL);
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    /* a pipeline without an aligner */
    st.pp.mode = SA_PIPELINE_UPSTREAM;
    st.pp.upstream = st.up;
    st.pp.upstream_format = SA_CHAT_FORMAT_CHATML;
    st.pp.aligner_fn = NULL;
    CHECK_OK(sa_pipeline_init(&st.pp, &pl));
    CHECK(sa_pipeline_revise_sentence(pl, "Q", "", "x", &r) == SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "no aligner") != NULL);
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    setup_free(&st);
}

/* The edit check (edit_check ARITH): an edit that writes a false equation is refused and y1
 * emitted (the event says refused, by which check, with the proposal; n_refused counts it; the
 * trace line carries "refused", "refused_by" and "proposed", and reads back); an edit that fixes
 * y1's arithmetic stands; NONE lets both through; revise_sentence applies it too. */
struct refused_seen {
    int n, n_refused;
    unsigned by[8];   /* refused_by of each refused sentence, in order */
    char *proposed;
    char *line;
};

static enum sa_status on_refused_back(void *user, const struct sa_trace_round *r, const char *where) {
    (void)where;
    *(unsigned *)user = (r->has & SA_TRACE_REFUSED) && r->refused && (r->has & SA_TRACE_REFUSED_BY) ? r->refused_by : 0;
    return SA_STATUS_OK;
}

static bool on_refused(void *user, const struct sa_pipeline_sentence *s) {
    struct refused_seen *rs = user;
    rs->n++;
    CHECK(s->refused == (s->refused_by != 0));
    if (s->refused) {
        if (rs->n_refused < 8) rs->by[rs->n_refused] = s->refused_by;
        rs->n_refused++;
        CHECK(!s->gated && !s->copied && s->edit_ratio == 0.0 && s->proposed != NULL);
        free(rs->proposed);
        rs->proposed = s->proposed ? strdup(s->proposed) : NULL;
        struct sa_trace_round tr = sa_trace_round_of_sentence(s, "7", NULL);
        free(rs->line);
        rs->line = NULL;
        CHECK_OK(sa_trace_round_format(&tr, &rs->line, NULL));
        /* "refused_by", the check's name, right after "refused"; read back as the bit */
        char want[64];
        snprintf(want, sizeof want, "\"refused\":true,\"refused_by\":\"%s\",\"proposed\":",
                 sa_pipeline_edit_check_name(s->refused_by));
        CHECK_MSG(rs->line && strstr(rs->line, want), "trace line lacks %s", want);
        unsigned back = 0;
        CHECK_OK(sa_trace_read(rs->line, rs->line ? strlen(rs->line) : 0, "t", on_refused_back, &back, NULL));
        CHECK_EQ_INT(back, s->refused_by);
    }
    return true;
}

/* The calculator (calculator on): a false result in what is emitted is rewritten, whether the
 * aligner copied y1, the edit check kept y1, or the revision stands; the event says how many
 * and what was there before, n_repaired counts them, the trace line carries "repaired" and
 * "unrepaired", and the aligner and the upstream go on from the repaired answer. Off: nothing
 * changes. The formatting rules (commas, \$, decimals, passes): tests/py/test_arith_check.py. */
struct repaired_seen {
    int n_repaired_events, copied_and_repaired;
    char *unrepaired, *line;
};

static bool on_repaired(void *user, const struct sa_pipeline_sentence *s) {
    struct repaired_seen *rs = user;
    CHECK((s->n_repaired > 0) == (s->unrepaired != NULL));
    if (s->n_repaired > 0) {
        rs->n_repaired_events++;
        rs->copied_and_repaired += s->copied;
        free(rs->unrepaired);
        rs->unrepaired = strdup(s->unrepaired);
        struct sa_trace_round tr = sa_trace_round_of_sentence(s, "3", NULL);
        free(rs->line);
        rs->line = NULL;
        CHECK_OK(sa_trace_round_format(&tr, &rs->line, NULL));
    }
    return true;
}

struct repaired_back {
    int32_t repaired;
    char *unrepaired;
};

static enum sa_status on_repaired_back(void *user, const struct sa_trace_round *r, const char *where) {
    (void)where;
    struct repaired_back *b = user;
    if ((r->has & SA_TRACE_REPAIRED) && (r->has & SA_TRACE_UNREPAIRED)) {
        b->repaired = r->repaired;
        b->unrepaired = strdup(r->unrepaired);
    }
    return SA_STATUS_OK;
}

static void test_calculator(void) {
    static const char *const units[] = {"Each of 4 rounds has 17 skips.", " So 17 + 17 + 17 + 17 = 59 skips.",
                                        " He sells 3 x 5 = 14 cakes.", " Done."};
    static const char *const replies[] = {NULL, NULL, "He sells 3 x 5 = 16 cakes."};
    for (int mode = 0; mode < 3; mode++) { /* 0: off, 1: calculator, 2: calculator + edit check */
        struct setup st;
        setup_init(&st, units, 4, 5);
        st.fa.replies = replies;
        st.fa.n_replies = 3;
        st.pp.calculator = mode > 0;
        st.pp.edit_check = mode == 2 ? SA_PIPELINE_EDIT_CHECK_ARITH : SA_PIPELINE_EDIT_CHECK_NONE;
        struct sa_pipeline *pl = NULL;
        CHECK_OK(sa_pipeline_init(&st.pp, &pl));
        struct repaired_seen rs = {0};
        struct sa_pipeline_callbacks cb = {.on_sentence = on_repaired, .user = &rs};
        struct sa_pipeline_result r;
        CHECK_OK(sa_pipeline_run(pl, "Skips?", &cb, &r));
        if (!mode) {
            CHECK_EQ_STR(r.answer, "Each of 4 rounds has 17 skips. So 17 + 17 + 17 + 17 = 59 skips. He sells 3 x 5 = 16 cakes. Done.");
            CHECK(r.n_repaired == 0 && rs.n_repaired_events == 0);
        } else {
            CHECK_EQ_STR(r.answer, "Each of 4 rounds has 17 skips. So 17 + 17 + 17 + 17 = 68 skips. He sells 3 x 5 = 15 cakes. Done.");
            CHECK_EQ_INT(r.n_repaired, 2);
            CHECK(rs.n_repaired_events == 2 && rs.copied_and_repaired == 1);
            CHECK_EQ_INT(r.n_refused, mode == 2); /* "= 16" is a new false equation: y1 kept, then repaired */
            CHECK_EQ_STR(rs.unrepaired, mode == 2 ? "He sells 3 x 5 = 14 cakes." : "He sells 3 x 5 = 16 cakes.");
            CHECK(rs.line && strstr(rs.line, "\"repaired\":1") && strstr(rs.line, "\"y2\":\"He sells 3 x 5 = 15 cakes.\""));
            CHECK(st.fa.n_calls >= 3 && strstr(st.fa.prefixes[2], "= 68 skips.") != NULL); /* the aligner's prefix */
            CHECK(st.fu.prompt && strstr(st.fu.prompt, "3 x 5 = 15 cakes.") != NULL);  /* the upstream's */
            /* the trace line reads back */
            struct repaired_back back = {0};
            CHECK_OK(sa_trace_read(rs.line, strlen(rs.line), "t", on_repaired_back, &back, NULL));
            CHECK(back.repaired == 1 && back.unrepaired && !strcmp(back.unrepaired, rs.unrepaired));
            free(back.unrepaired);
        }
        sa_pipeline_result_free(&r);
        sa_pipeline_free(pl);
        free(rs.unrepaired);
        free(rs.line);
        setup_free(&st);
    }
}

/* One run of the loop over 3 scripted units and the aligner's replies, with the edit checks
 * `checks`, the refused sentences seen by on_refused. checked_free() ends it. */
struct checked {
    struct setup st;
    struct sa_pipeline *pl;
    struct refused_seen rs;
    struct sa_pipeline_result r;
};

static void checked_run(struct checked *c, const char *const units[3], const char *const replies[3], unsigned checks,
                        const char *question) {
    memset(c, 0, sizeof *c);
    setup_init(&c->st, units, 3, 4);
    c->st.fa.replies = replies;
    c->st.fa.n_replies = 3;
    c->st.pp.edit_check = checks;
    CHECK_OK(sa_pipeline_init(&c->st.pp, &c->pl));
    struct sa_pipeline_callbacks cb = {.on_sentence = on_refused, .user = &c->rs};
    CHECK_OK(sa_pipeline_run(c->pl, question, &cb, &c->r));
}

static void checked_free(struct checked *c) {
    sa_pipeline_free(c->pl);
    free(c->rs.proposed);
    free(c->rs.line);
    setup_free(&c->st);
}

/* --edit-check cut in the loop: a revision that only deletes is refused (y1 is emitted, counted
 * and traced), a real edit passes; without the check the cut stands */
static void test_edit_check_cut(void) {
    static const char *const units[] = {"We add the days.", " Over the week 1 + 2 = 3 hours in all.",
                                        " He sells 3 x 5 = 14 cakes."};
    static const char *const replies[] = {NULL, "1 + 2 = 3 hours", "He sells 3 x 5 = 15 cakes."};
    for (int check = 0; check <= 1; check++) {
        struct checked c;
        checked_run(&c, units, replies, check ? SA_PIPELINE_EDIT_CHECK_CUT : SA_PIPELINE_EDIT_CHECK_NONE, "Hours?");
        if (check) {
            CHECK_EQ_STR(c.r.answer, "We add the days. Over the week 1 + 2 = 3 hours in all. He sells 3 x 5 = 15 cakes.");
            CHECK(c.r.n_refused == 1 && c.rs.n_refused == 1);
            CHECK(c.rs.by[0] == SA_PIPELINE_EDIT_CHECK_CUT && c.r.refused_by == SA_PIPELINE_EDIT_CHECK_CUT);
            CHECK_EQ_STR(c.rs.proposed, "1 + 2 = 3 hours");
        } else {
            CHECK_EQ_STR(c.r.answer, "We add the days. 1 + 2 = 3 hours He sells 3 x 5 = 15 cakes.");
            CHECK(c.r.n_refused == 0 && c.rs.n_refused == 0 && c.r.refused_by == 0);
        }
        sa_pipeline_result_free(&c.r);
        checked_free(&c);
    }
}

static void test_edit_check_arith(void) {
    static const char *const units[] = {"Each of 4 rounds has 17 skips.", " So 17 + 17 + 17 + 17 = 68 skips.",
                                        " He sells 3 x 5 = 14 cakes."};
    static const char *const replies[] = {NULL, "So 17 + 17 + 17 + 17 = 59 skips.", "He sells 3 x 5 = 15 cakes."};
    for (int check = 0; check <= 1; check++) {
        struct checked c;
        checked_run(&c, units, replies, check ? SA_PIPELINE_EDIT_CHECK_ARITH : SA_PIPELINE_EDIT_CHECK_NONE, "Skips?");
        struct sa_pipeline_result r = c.r;
        if (check) {
            CHECK_EQ_STR(r.answer, "Each of 4 rounds has 17 skips. So 17 + 17 + 17 + 17 = 68 skips. He sells 3 x 5 = 15 cakes.");
            CHECK(r.n_refused == 1 && c.rs.n_refused == 1 && r.n_copied == 1 && r.n_gated == 0);
            CHECK(c.rs.by[0] == SA_PIPELINE_EDIT_CHECK_ARITH && r.refused_by == SA_PIPELINE_EDIT_CHECK_ARITH);
            CHECK_EQ_STR(c.rs.proposed, "So 17 + 17 + 17 + 17 = 59 skips.");
            CHECK(c.rs.line && strstr(c.rs.line, "\"refused\":true") &&
                  strstr(c.rs.line, "\"proposed\":\"So 17 + 17 + 17 + 17 = 59"));
        } else {
            CHECK_EQ_STR(r.answer, "Each of 4 rounds has 17 skips. So 17 + 17 + 17 + 17 = 59 skips. He sells 3 x 5 = 15 cakes.");
            CHECK(r.n_refused == 0 && c.rs.n_refused == 0);
        }
        sa_pipeline_result_free(&r);
        /* one sentence outside the loop (salign eval aligner) */
        fake_al_free(&c.st.fa);
        static const char *const one[] = {"So 2 + 2 = 5."};
        c.st.fa.replies = one;
        c.st.fa.n_replies = 1;
        c.st.fa.n_calls = 0;
        CHECK_OK(sa_pipeline_revise_sentence(c.pl, "Q", "", "So 2 + 2 = 4.", &r));
        CHECK_EQ_STR(r.answer, check ? "So 2 + 2 = 4." : "So 2 + 2 = 5.");
        CHECK_EQ_INT(r.n_refused, check);
        CHECK_EQ_INT(r.refused_by, check ? SA_PIPELINE_EDIT_CHECK_ARITH : 0);
        sa_pipeline_result_free(&r);
        checked_free(&c);
    }
    CHECK_EQ_STR(sa_pipeline_edit_check_name(SA_PIPELINE_EDIT_CHECK_ARITH), "arith");
    /* the format check: the aligner's input markers in a revision */
    CHECK(sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_FORMAT, "x = 1\n```", "x = 1\n``` | ##Your_Revision:"));
    CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_ARITH, "x = 1\n```", "x = 1\n``` | ##Your_Revision:"));
    CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_FORMAT, "So 2 + 2 = 4.", "So 2 + 2 = 5."));
    CHECK(sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_ALL, "So 2 + 2 = 4.", "So 2 + 2 = 5."));
    /* units inside the expression, every link of a chain, a variable across blocks (each fix
     * passes), and a piece of the input format */
    static const char *const pairs[][2] = {
        {"43 \\text{ brownies} \\times \\$3 \\text{ each} = \\$129", "43 \\text{ brownies} \\times \\$3 \\text{ each} = \\$137"},
        {"400 + 0.10 \\times 400 = 400 + 40 = 440", "400 + 0.10 \\times 400 = 400 + 40 = 800"},
        {"\\[ x = 3755 - 15 \\] \\[ x = 3740 \\]", "\\[ x = 3755 - 15 \\] \\[ x = 3640 \\]"}};
    for (int k = 0; k < 3; k++) {
        CHECK(sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_ARITH, pairs[k][0], pairs[k][1]));
        CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_ARITH, pairs[k][1], pairs[k][0]));
    }
    CHECK(sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_FORMAT, "He lost 2 games.", "He lost 2 games lost |"));
    CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_FORMAT, "| 1 | 2 |", "| 1 | 3 |"));
    /* the cut check: an edit that only deletes (the aligner's three cuts on GSM8K test, 286, 305,
     * 372, in short); opt-in, not part of ALL */
    static const char *const cuts[][2] = {
        {"Add the days over the week:\n\\[ 1 + 2 + 2 = 5 \\text{ hours} \\]", "\\[ 1 + 2 + 2 = 5 \\text{ hours} \\]"},
        {"\\[ 125 \\text{ cents} + 20 \\text{ cents} = 145 \\text{ cents} \\]", "125 cents"},
        {"So 80% of 20 is:\n\\[ 0.80 \\times 20 = 16 \\]", "\\[0.80\\times 20 = 16\\]"},
        {"He has 3 apples.", "He has 3."}};
    for (int k = 0; k < 4; k++) {
        CHECK(sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_CUT, cuts[k][0], cuts[k][1]));
        CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_ALL, cuts[k][0], cuts[k][1]));
        CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_CUT, cuts[k][1], cuts[k][0])); /* adds text */
    }
    CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_CUT, "So 2 + 2 = 5.", "So 2 + 2 = 4."));  /* a fix */
    /* the rule's price: a fix that only deletes is refused too */
    CHECK(sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_CUT, "So 2 + 2 = 45.", "So 2 + 2 = 4."));
    CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_CUT, "He has 3  apples.", "He has 3 apples.")); /* spaces */
    CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_CUT, "He has 3 apples.", "He has 3 pears."));
    /* an empty revision keeps its meaning in the loop (stop), and is no cut */
    CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_CUT, "He has 3 apples.", ""));
    CHECK(!sa_pipeline_edit_refused(SA_PIPELINE_EDIT_CHECK_CUT, "He has 3 apples.", " \n"));
    CHECK_EQ_STR(sa_pipeline_edit_check_name(SA_PIPELINE_EDIT_CHECK_CUT), "cut");
    struct sa_pipeline_params bad = sa_pipeline_default_params();
    bad.mode = SA_PIPELINE_ALIGNER;
    bad.aligner_fn = fake_align;
    bad.edit_check = (enum sa_pipeline_edit_check)8; /* no such check */
    struct sa_pipeline *pl = NULL;
    CHECK(sa_pipeline_init(&bad, &pl) == SA_STATUS_BAD_ARGUMENT && !pl);
}

/* Which check refused: sa_pipeline_edit_refused_by returns the one bit, the first of format,
 * cut, arith when several would, and sa_pipeline_edit_refused agrees with it for every set of
 * checks; in the loop each refused sentence names its check (event, trace line, result), and
 * so does the Aligner baseline's one rewrite. */
static void test_edit_check_refused_by(void) {
    const unsigned A = SA_PIPELINE_EDIT_CHECK_ARITH, F = SA_PIPELINE_EDIT_CHECK_FORMAT, C = SA_PIPELINE_EDIT_CHECK_CUT;
    static const struct {
        const char *y1, *y2;
        unsigned refusing; /* the checks that refuse it, each alone */
    } pairs[] = {
        {"So 2 + 2 = 4.", "So 2 + 2 = 5.", SA_PIPELINE_EDIT_CHECK_ARITH},
        {"He won 3 and lost 2 games.", "He won 3 and lost 2 games lost |", SA_PIPELINE_EDIT_CHECK_FORMAT},
        {"He has 3 apples.", "He has 3.", SA_PIPELINE_EDIT_CHECK_CUT},
        {"So 2 + 2 = 4.", "So 2 + 2 = 5. ##Your_Revision:", SA_PIPELINE_EDIT_CHECK_ARITH | SA_PIPELINE_EDIT_CHECK_FORMAT},
        {"So 2 + 2 = 4 and 10 + 5 = 15.", "So 2 + 2 = 45.", SA_PIPELINE_EDIT_CHECK_ARITH | SA_PIPELINE_EDIT_CHECK_CUT},
        {"So 2 + 2 = 4 and 10 + 5 = 15 |x", "So 2 + 2 = 45 |", SA_PIPELINE_EDIT_CHECK_KNOWN},
        {"So 2 + 2 = 5.", "So 2 + 2 = 4.", 0}, /* a fix */
    };
    static const unsigned order[] = {SA_PIPELINE_EDIT_CHECK_FORMAT, SA_PIPELINE_EDIT_CHECK_CUT,
                                     SA_PIPELINE_EDIT_CHECK_ARITH};
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
        for (unsigned checks = 0; checks <= SA_PIPELINE_EDIT_CHECK_KNOWN; checks++) {
            unsigned want = 0;
            for (int i = 0; i < 3 && !want; i++)
                if (checks & pairs[k].refusing & order[i]) want = order[i];
            const unsigned got = sa_pipeline_edit_refused_by(checks, pairs[k].y1, pairs[k].y2);
            CHECK_MSG(got == want, "pair %zu, checks %u: refused_by %u, want %u", k, checks, got, want);
            CHECK(sa_pipeline_edit_refused(checks, pairs[k].y1, pairs[k].y2) == (want != 0));
        }
    /* the order, spelled out for the pair all three refuse */
    CHECK_EQ_INT(sa_pipeline_edit_refused_by(A | F | C, pairs[5].y1, pairs[5].y2), F);
    CHECK_EQ_INT(sa_pipeline_edit_refused_by(A | C, pairs[5].y1, pairs[5].y2), C);
    CHECK_EQ_INT(sa_pipeline_edit_refused_by(A, pairs[5].y1, pairs[5].y2), A);
    CHECK_EQ_INT(sa_pipeline_edit_refused_by(A | F, pairs[3].y1, pairs[3].y2), F);
    CHECK_EQ_INT(sa_pipeline_edit_refused_by(A | C, pairs[4].y1, pairs[4].y2), C);
    CHECK_EQ_INT(sa_pipeline_edit_refused_by(A | F | C, NULL, "x"), 0);
    /* in the loop: a format, a cut and an arith refusal, each named */
    static const char *const units[] = {"He won 3 and lost 2 games.", " Over the week 1 + 2 = 3 hours in all.",
                                        " So 2 + 2 = 4."};
    static const char *const replies[] = {"He won 3 and lost 2 games lost |", "1 + 2 = 3 hours", "So 2 + 2 = 5."};
    struct checked c;
    checked_run(&c, units, replies, SA_PIPELINE_EDIT_CHECK_KNOWN, "Games?");
    CHECK_EQ_STR(c.r.answer, "He won 3 and lost 2 games. Over the week 1 + 2 = 3 hours in all. So 2 + 2 = 4.");
    CHECK(c.r.n_refused == 3 && c.rs.n_refused == 3);
    CHECK(c.rs.by[0] == F && c.rs.by[1] == C && c.rs.by[2] == A);
    CHECK_EQ_INT(c.r.refused_by, A); /* the last one */
    sa_pipeline_result_free(&c.r);
    checked_free(&c);
    /* the Aligner baseline: its one rewrite */
    static const char *const rewrite[] = {"So 2 + 2 = 5. ##Your_Revision:"};
    struct setup st;
    struct sa_pipeline *pl = aligner_only_init(&st, rewrite, 1, SA_PIPELINE_EDIT_CHECK_ALL);
    struct refused_seen rs = {0};
    struct sa_pipeline_callbacks cb = {.on_sentence = on_refused, .user = &rs};
    struct sa_pipeline_result r;
    CHECK_OK(sa_pipeline_revise_answer(pl, "What is 2 + 2?", "So 2 + 2 = 4.", &cb, &r));
    CHECK_EQ_STR(r.answer, "So 2 + 2 = 4.");
    CHECK(r.n_refused == 1 && r.refused_by == F && rs.n_refused == 1 && rs.by[0] == F);
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    free(rs.proposed);
    free(rs.line);
    setup_free(&st);
}

static void test_mode_continue(void) {
    static const char *const replies[] = {"The sky looks blue."};
    struct setup st;
    setup_init(&st, SKY, 4, 3);
    st.pp.mode = SA_PIPELINE_CONTINUE;
    st.pp.continue_rounds = 2;
    st.pp.continue_with = SA_PIPELINE_CONTINUE_UPSTREAM;
    st.fa.replies = replies;
    st.fa.n_replies = 1;
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Q", &ev, &r));
    CHECK_EQ_STR(r.answer, "The sky looks blue. It scatters light.\n\nShort waves scatter more! Done.");
    CHECK_EQ_INT(st.fa.n_calls, 2);
    CHECK_EQ_INT(r.n_rounds, 2);
    CHECK_EQ_INT(st.fu.n_start, 3);
    CHECK_EQ_INT(ev.n, 4);
    if (ev.n == 4) CHECK(ev.aligned[1] && !ev.aligned[2] && !ev.aligned[3]);
    CHECK_EQ_INT(r.stop, SA_PIPELINE_STOP_DONE);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);

    /* the aligner writes the rest */
    static const char *const replies2[] = {NULL, "\n\nRest one. Rest two."};
    setup_init(&st, SKY, 4, 3);
    st.pp.mode = SA_PIPELINE_CONTINUE;
    st.pp.continue_rounds = 1;
    st.fa.replies = replies2;
    st.fa.n_replies = 2;
    struct events ev2 = {0};
    CHECK_OK(setup_run(&st, "Q", &ev2, &r));
    CHECK_EQ_STR(r.answer, "The sky is blue.\n\nRest one. Rest two.");
    CHECK_EQ_INT(st.fa.n_calls, 2);
    CHECK_EQ_INT(st.fa.kinds[1], SA_PIPELINE_REQ_CONTINUE);
    CHECK_EQ_STR(st.fa.prefixes[1], "The sky is blue.");
    CHECK_EQ_INT(ev2.n, 3);
    if (ev2.n == 3) CHECK_EQ_STR(ev2.text[2], " Rest two.");
    sa_pipeline_result_free(&r);
    events_free(&ev2);
    setup_free(&st);
}

/* A remote server's last event can carry text and the finish reason at once: the first
 * sentence of it must not be taken as the end of the turn. */
static void test_finish_in_one_chunk(void) {
    struct setup st;
    setup_init(&st, SKY, 4, 1000);
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "Q", &ev, &r));
    CHECK_EQ_STR(r.answer, "The sky is blue. It scatters light.\n\nShort waves scatter more! Done.");
    CHECK_EQ_INT(r.n_rounds, 4);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);
}

static void test_joining_cjk_and_lines(void) {
    static const char *const cjk[] = {"天空是蓝色的。", "因为散射。"};
    struct setup st;
    setup_init(&st, cjk, 2, 2); /* chunks split UTF-8 characters */
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK_OK(setup_run(&st, "为什么?", &ev, &r));
    CHECK_EQ_STR(r.answer, "天空是蓝色的。因为散射。");
    CHECK_EQ_INT(r.n_rounds, 2);
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);

    /* a model continuing "...apples" writes the newline itself */
    static const char *const lines[] = {"She has 3 + 2 = 5 apples", "\nThen 5 * 2 = 10", "\nThe answer is 10"};
    setup_init(&st, lines, 3, 3);
    st.pp.unit = SA_SEGMENT_LINE;
    struct events ev2 = {0};
    CHECK_OK(setup_run(&st, "Apples?", &ev2, &r));
    CHECK_EQ_STR(r.answer, "She has 3 + 2 = 5 apples\nThen 5 * 2 = 10\nThe answer is 10");
    CHECK_EQ_INT(r.n_rounds, 3);
    if (ev2.n == 3) CHECK_EQ_STR(ev2.text[1], "\nThen 5 * 2 = 10");
    sa_pipeline_result_free(&r);
    events_free(&ev2);
    setup_free(&st);
}

static void test_upstream_failures(void) {
    struct setup st;
    setup_init(&st, SKY, 4, 3);
    st.fu.fail_start_at = 1;
    struct events ev = {0};
    struct sa_pipeline_result r;
    CHECK(setup_run(&st, "Q", &ev, &r) == SA_STATUS_NETWORK);
    CHECK(strstr(sa_last_error(), "is the upstream server running?") != NULL);
    CHECK_EQ_STR(r.answer, "");
    sa_pipeline_result_free(&r);
    events_free(&ev);
    setup_free(&st);

    setup_init(&st, SKY, 4, 3);
    st.fu.fail_next_at = 2;
    struct events ev2 = {0};
    CHECK(setup_run(&st, "Q", &ev2, &r) == SA_STATUS_NETWORK);
    CHECK_EQ_STR(r.answer, "The sky is blue.");
    CHECK_EQ_INT(ev2.n, 1);
    sa_pipeline_result_free(&r);
    events_free(&ev2);
    setup_free(&st);
}

static void test_init_errors(void) {
    struct sa_pipeline *pl = NULL;
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    CHECK(sa_pipeline_init(&pp, &pl) == SA_STATUS_BAD_ARGUMENT && !pl);
    CHECK(strstr(sa_last_error(), "upstream") != NULL);
    struct setup st;
    setup_init(&st, SKY, 4, 3);
    st.pp.aligner_fn = NULL;
    CHECK(sa_pipeline_init(&st.pp, &pl) == SA_STATUS_BAD_ARGUMENT && !pl);
    CHECK(strstr(sa_last_error(), "aligner") != NULL);
    st.pp.mode = SA_PIPELINE_UPSTREAM; /* needs no aligner */
    CHECK_OK(sa_pipeline_init(&st.pp, &pl));
    sa_pipeline_free(pl);
    pl = NULL;
    st.pp.upstream_format = SA_CHAT_FORMAT_UNKNOWN;
    CHECK(sa_pipeline_init(&st.pp, &pl) == SA_STATUS_UNSUPPORTED && !pl);
    st.pp.upstream_template = "{{ '<start_of_turn>' }}"; /* recognised from a template */
    CHECK_OK(sa_pipeline_init(&st.pp, &pl));
    sa_pipeline_free(pl);
    setup_free(&st);
    enum sa_pipeline_mode mode = SA_PIPELINE_STREAM;
    CHECK_OK(sa_pipeline_mode_from_name("continue", &mode));
    CHECK_EQ_INT(mode, SA_PIPELINE_CONTINUE);
    CHECK_EQ_INT(sa_pipeline_mode_from_name("nope", &mode), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "'nope'") != NULL);
    CHECK_EQ_INT(mode, SA_PIPELINE_CONTINUE);
    CHECK_EQ_STR(sa_pipeline_stop_name(SA_PIPELINE_STOP_MAX_LENGTH), "max_length");
}

static void test_join_helpers(void) {
    CHECK_NEAR(sa_join_edit_ratio("abc", 3, "abd", 3), 1.0 / 3, 1e-12);
    CHECK_NEAR(sa_join_edit_ratio("", 0, "", 0), 0.0, 0);
    CHECK_NEAR(sa_join_edit_ratio("", 0, "ab", 2), 1.0, 0);
    CHECK_NEAR(sa_join_edit_ratio("caf\xc3\xa9", 5, "cafe", 4), 0.25, 1e-12); /* characters, not bytes */
    CHECK_NEAR(sa_join_edit_ratio("kitten", 6, "sitting", 7), 3.0 / 7, 1e-12);
    char *s = sa_join_strip(" \n a b \t", 8);
    CHECK_EQ_STR(s, "a b");
    free(s);
    CHECK_EQ_INT(sa_join_count_words("  one two\nthree ", 16), 3);
    CHECK(sa_join_blank(" \r\n", 3) && !sa_join_blank(" x", 2));
    /* the line break kept after a sentence: up to the last newline of the whitespace run */
    CHECK_EQ_INT(sa_join_kept_break("\n\n", 2), 2);
    CHECK_EQ_INT(sa_join_kept_break(" \n\n  ", 5), 3);
    CHECK_EQ_INT(sa_join_kept_break("\r\n\tx\n", 5), 2);
    CHECK_EQ_INT(sa_join_kept_break("  ", 2), 0);
    CHECK_EQ_INT(sa_join_kept_break("", 0), 0);
}

/* ---- the line break kept at the end of a remote upstream's prompt ---- */

/* A remote-like upstream that cannot heal tokens: it continues its prompt's pre-filled answer
 * along its own `answer`, as a deterministic model would, in chunks of `chunk` bytes. Like
 * Qwen after a lone ":" token (which it only ever wrote as ":\n\n"), a prefix that ends in
 * ":" makes it go on on the same line: " " + the rest without its line break. */
struct model_up {
    const char *answer;
    char *drifted;         /* the answer it writes after a drift (its new trajectory) */
    size_t chunk;
    int n_start;
    char *prompts[8];
    char *text, buf[64];
    size_t pos, len;
};

static enum sa_status model_start(void *impl, const char *prompt, size_t len, const struct sa_upstream_gen_params *p) {
    struct model_up *f = impl;
    (void)p;
    if (f->n_start < 8) f->prompts[f->n_start] = strndup(prompt, len);
    f->n_start++;
    static const char head[] = "<|im_start|>assistant\n";
    const char *a = strstr(prompt, head);
    if (!a) return sa_error(SA_STATUS_BAD_ARGUMENT, "model double: no assistant turn");
    a += strlen(head);
    size_t n = len - (size_t)(a - prompt), al = strlen(f->answer);
    free(f->text);
    if (n <= al && !memcmp(a, f->answer, n)) {
        const char *rest = f->answer + n;
        if (n && a[n - 1] == ':') { /* drift: the line break is not written */
            rest += sa_join_lead(rest, strlen(rest));
            f->text = malloc(strlen(rest) + 2);
            free(f->drifted);
            f->drifted = malloc(n + strlen(rest) + 2);
            if (!f->text || !f->drifted) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            sprintf(f->text, " %s", rest);
            sprintf(f->drifted, "%.*s %s", (int)n, a, rest);
            f->answer = f->drifted;
        } else {
            f->text = strdup(rest);
        }
    } else {
        f->text = strdup(" Something else.");
    }
    if (!f->text) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    f->len = strlen(f->text);
    f->pos = 0;
    return SA_STATUS_OK;
}

static enum sa_status model_next(void *impl, struct sa_upstream_chunk *out) {
    struct model_up *f = impl;
    size_t n = f->len - f->pos < f->chunk ? f->len - f->pos : f->chunk;
    memcpy(f->buf, f->text + f->pos, n);
    f->buf[n] = 0;
    f->pos += n;
    *out = (struct sa_upstream_chunk){f->buf, n, 1, f->pos == f->len ? SA_UPSTREAM_FINISH_STOP : SA_UPSTREAM_FINISH_NONE};
    return SA_STATUS_OK;
}

static void model_cancel(void *impl) {
    (void)impl;
}

static void model_free(void *impl) { /* the prompts stay for the test to check */
    struct model_up *f = impl;
    free(f->text);
    f->text = NULL;
}

static void model_prompts_free(struct model_up *f) {
    for (int i = 0; i < f->n_start && i < 8; i++) free(f->prompts[i]);
    free(f->drifted);
}

static const struct sa_upstream_ops model_ops = {"remote-like", model_start, model_next, model_cancel, model_free};

/* Runs a copying aligner over the model double; returns the answer (malloc'd). */
static char *keep_run(struct model_up *mu, bool keep, enum sa_pipeline_mode mode, struct fake_al *fa,
                      struct events *ev) {
    struct sa_upstream *up = NULL;
    CHECK_OK(sa_upstream_init_ops(&model_ops, mu, &up));
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.upstream = up;
    pp.upstream_format = SA_CHAT_FORMAT_CHATML;
    pp.aligner_fn = fake_align;
    pp.aligner_user = fa;
    pp.keep_line_break = keep;
    pp.mode = mode;
    pp.continue_with = SA_PIPELINE_CONTINUE_UPSTREAM; /* CONTINUE: 1 round, then the upstream */
    struct sa_pipeline *pl = NULL;
    char *answer = NULL;
    CHECK_OK(sa_pipeline_init(&pp, &pl));
    struct sa_pipeline_callbacks cb = {on_sentence, NULL, ev};
    struct sa_pipeline_result r;
    if (pl && !sa_pipeline_run(pl, "List the steps.", &cb, &r)) {
        answer = r.answer;
        r.answer = NULL;
        sa_pipeline_result_free(&r);
    }
    sa_pipeline_free(pl);
    sa_upstream_free(up);
    return answer;
}

static void test_keep_line_break(void) {
    static const char head[] = "<|im_start|>user\nList the steps.<|im_end|>\n<|im_start|>assistant\n";
    const char *want = "Steps:\n\n1. A.\n2. B.";
    for (size_t chunk = 1; chunk <= 4; chunk += 3) {
        struct model_up mu = {.answer = want, .chunk = chunk};
        struct fake_al fa = {0};
        struct events ev = {0};
        char *got = keep_run(&mu, true, SA_PIPELINE_STREAM, &fa, &ev);
        /* a copying aligner gives the upstream's own answer, byte for byte */
        CHECK_EQ_STR(got, want);
        CHECK_EQ_INT(mu.n_start, 3);
        if (mu.n_start == 3) {
            char p[256];
            CHECK_EQ_STR(mu.prompts[0], head);
            snprintf(p, sizeof p, "%sSteps:\n\n", head); /* ":\n\n" stays one token */
            CHECK_EQ_STR(mu.prompts[1], p);
            snprintf(p, sizeof p, "%sSteps:\n\n1. A.\n", head);
            CHECK_EQ_STR(mu.prompts[2], p);
        }
        /* the pieces and the aligner's prefix are as without the rule: the break is the next
         * piece's separator, and the prefix has no trailing whitespace */
        CHECK_EQ_INT(ev.n, 3);
        if (ev.n == 3) {
            CHECK_EQ_STR(ev.text[0], "Steps:");
            CHECK_EQ_STR(ev.text[1], "\n\n1. A.");
            CHECK_EQ_STR(ev.text[2], "\n2. B.");
        }
        CHECK_EQ_INT(fa.n_calls, 3);
        if (fa.n_calls == 3) {
            CHECK_EQ_STR(fa.prefixes[1], "Steps:");
            CHECK_EQ_STR(fa.lasts[1], "1. A.");
            CHECK_EQ_STR(fa.prefixes[2], "Steps:\n\n1. A.");
        }
        free(got);
        events_free(&ev);
        fake_al_free(&fa);
        model_prompts_free(&mu);
    }

    /* without the rule the prefix ends in ":" and the answer drifts */
    struct model_up mu = {.answer = want, .chunk = 3};
    struct fake_al fa = {0};
    struct events ev = {0};
    char *got = keep_run(&mu, false, SA_PIPELINE_STREAM, &fa, &ev);
    CHECK_EQ_STR(got, "Steps: 1. A.\n2. B.");
    free(got);
    events_free(&ev);
    fake_al_free(&fa);
    model_prompts_free(&mu);

    /* indentation after the last newline is the upstream's to write again (it merges with
     * what follows); a break of spaces only is not kept */
    struct model_up mi = {.answer = "Steps:  \n\n  - A.  - B.", .chunk = 2};
    struct fake_al fi = {0};
    struct events evi = {0};
    got = keep_run(&mi, true, SA_PIPELINE_STREAM, &fi, &evi);
    CHECK_EQ_STR(got, mi.answer);
    if (mi.n_start >= 2) {
        char p[256];
        snprintf(p, sizeof p, "%sSteps:  \n\n", head);
        CHECK_EQ_STR(mi.prompts[1], p);
    }
    free(got);
    events_free(&evi);
    fake_al_free(&fi);
    model_prompts_free(&mi);

    /* continue: one corrected round, then the upstream writes the rest after the kept break */
    struct model_up mc = {.answer = want, .chunk = 2};
    struct fake_al fc = {0};
    struct events evc = {0};
    got = keep_run(&mc, true, SA_PIPELINE_CONTINUE, &fc, &evc);
    CHECK_EQ_STR(got, want);
    CHECK_EQ_INT(mc.n_start, 2);
    if (mc.n_start == 2) {
        char p[256];
        snprintf(p, sizeof p, "%sSteps:\n\n", head);
        CHECK_EQ_STR(mc.prompts[1], p);
    }
    if (evc.n == 3) CHECK_EQ_STR(evc.text[1], "\n\n1. A.");
    free(got);
    events_free(&evc);
    fake_al_free(&fc);
    model_prompts_free(&mc);
}

/* ---- a real model: SmolLM2-135M-Instruct ---- */

struct real_run {
    char *answer;
    int32_t prefill_after_first; /* upstream prompt tokens evaluated in rounds 2.. */
    int32_t prefill_max_after_first;
    int n;
};

static bool on_real(void *user, const struct sa_pipeline_sentence *s) {
    struct real_run *rr = user;
    if (s->index > 1) {
        rr->prefill_after_first += s->upstream_prefill;
        if (s->upstream_prefill > rr->prefill_max_after_first) rr->prefill_max_after_first = s->upstream_prefill;
    }
    rr->n++;
    return true;
}

static struct real_run real_run(struct sa_model *m, enum sa_pipeline_mode mode, bool kv_reuse, struct fake_al *fa,
                                const struct sa_model *aligner, bool spec, int32_t max_rounds, int32_t max_length) {
    struct real_run rr = {0};
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.mode = mode;
    pp.upstream_model = m;
    pp.aligner_model = aligner;
    pp.batch_invariant = true; /* see main */
    if (!aligner && fa) {
        pp.aligner_fn = fake_align;
        pp.aligner_user = fa;
    }
    pp.kv_reuse = kv_reuse;
    pp.use_spec = spec;
    pp.max_rounds = max_rounds;
    pp.max_length = max_length;
    pp.n_ctx = 512;
    pp.n_threads = 2;
    struct sa_pipeline *pl = NULL;
    CHECK_OK(sa_pipeline_init(&pp, &pl));
    if (!pl) return rr;
    struct sa_pipeline_callbacks cb = {.on_sentence = on_real, .user = &rr};
    struct sa_pipeline_result r;
    CHECK_OK(sa_pipeline_run(pl, "Why is the sky blue?", &cb, &r));
    rr.answer = r.answer;
    r.answer = NULL;
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    return rr;
}

static struct sa_model *g_model;

static void test_load_model(void) {
    g_model = load_smollm();
}

static void test_local_kv_cache(void) {
    struct sa_model *m = g_model;
    if (!m) return;
    /* a copying aligner: the cache is kept as it is (no prompt token evaluated after round 1,
     * the lookahead token never entered it), and the answer is the upstream's own, cut after
     * 3 sentences */
    struct fake_al copy = {0};
    struct real_run kept = real_run(m, SA_PIPELINE_STREAM, true, &copy, NULL, true, 3, 200);
    CHECK_EQ_INT(kept.n, 3);
    /* token healing takes the prompt's last token back: only it is evaluated again */
    CHECK_EQ_INT(kept.prefill_max_after_first, 1);
    struct real_run alone = real_run(m, SA_PIPELINE_UPSTREAM, true, NULL, NULL, true, 0, 120);
    CHECK_MSG(kept.answer && alone.answer && !strncmp(alone.answer, kept.answer, strlen(kept.answer)),
              "stream with a copying aligner: \"%s\" is not a prefix of the upstream's answer \"%s\"",
              kept.answer ? kept.answer : "(null)", alone.answer ? alone.answer : "(null)");
    CHECK(kept.answer && strlen(kept.answer) > 60);
    fake_al_free(&copy);

    /* a rewriting aligner: rolled back and extended (on) equals evaluated from scratch (off) */
    static const char *const replies[] = {NULL, "Blue light is scattered the most by the air.", NULL};
    struct fake_al rw1 = {.replies = replies, .n_replies = 3}, rw2 = {.replies = replies, .n_replies = 3};
    struct real_run on = real_run(m, SA_PIPELINE_STREAM, true, &rw1, NULL, true, 3, 200);
    struct real_run off = real_run(m, SA_PIPELINE_STREAM, false, &rw2, NULL, true, 3, 200);
    CHECK_EQ_STR(on.answer, off.answer);
    CHECK(on.answer && strstr(on.answer, "Blue light is scattered the most by the air.") != NULL);
    CHECK_MSG(on.prefill_after_first < off.prefill_after_first / 3, "prefill with reuse %d, without %d",
              on.prefill_after_first, off.prefill_after_first);
    CHECK(on.prefill_after_first > 0); /* the rewrite was evaluated */
    free(kept.answer);
    free(alone.answer);
    free(on.answer);
    free(off.answer);
    fake_al_free(&rw1);
    fake_al_free(&rw2);
}

static void test_real_aligner_speculation(void) {
    struct sa_model *m = g_model;
    if (!m) return;
    struct real_run spec = real_run(m, SA_PIPELINE_STREAM, true, NULL, m, true, 2, 120);
    struct real_run plain = real_run(m, SA_PIPELINE_STREAM, true, NULL, m, false, 2, 120);
    CHECK_EQ_STR(spec.answer, plain.answer);
    CHECK_EQ_INT(spec.n, 2);
    free(spec.answer);
    free(plain.answer);
}

/* ---- token healing, on a tokenizer with merged punctuation + newline tokens ---- */

static char *qwen_run(struct sa_model *m, enum sa_pipeline_mode mode, bool healing, bool keep, int32_t *prefill_max) {
    static const char *const q = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and "
                                 "bakes muffins for her friends every day with four. She sells the remainder at the "
                                 "farmers' market daily for $2 per fresh duck egg. How much in dollars does she make "
                                 "every day at the farmers' market?";
    struct fake_al copy = {0};
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.mode = mode;
    pp.upstream_model = m;
    pp.batch_invariant = true; /* see main */
    if (mode == SA_PIPELINE_STREAM) {
        pp.aligner_fn = fake_align;
        pp.aligner_user = &copy;
    }
    pp.token_healing = healing;
    pp.keep_line_break = keep;
    pp.max_rounds = 6;
    pp.max_length = 160;
    pp.n_ctx = 512;
    pp.n_threads = 2;
    struct sa_pipeline *pl = NULL;
    char *answer = NULL;
    CHECK_OK(sa_pipeline_init(&pp, &pl));
    struct real_run rr = {0};
    struct sa_pipeline_callbacks cb = {.on_sentence = on_real, .user = &rr};
    struct sa_pipeline_result r;
    if (pl && !sa_pipeline_run(pl, q, &cb, &r)) {
        answer = r.answer;
        r.answer = NULL;
        sa_pipeline_result_free(&r);
    }
    sa_pipeline_free(pl);
    fake_al_free(&copy);
    if (prefill_max) *prefill_max = rr.prefill_max_after_first;
    return answer;
}

/* Healing over a split token: the answer so far ends in a code block's closing fence, ")\n```",
 * which re-tokenizes to ")\n" "```"; alone, Qwen wrote ")\n" "``" "`\n" "```" "output". With
 * only tokens beginning with the taken-back "```" allowed, it wrote "````" (GSM8K test
 * answers with "`````output", docs/RESULTS.md); tokens that spell a start of it ("``") must be
 * allowed too, and the continuation is the model's own: "\n```output". */
static void check_heal_split_token(struct sa_model *m) {
    static const char answer[] =
        "To find the original price of the book, we need to calculate 25% of the original price of $19.50. Here are "
        "the steps:\n\n1. Calculate 25% of $19.50.\n2. Subtract the result from $19.50 to find the original "
        "price.\n\nLet's do this calculation using Python.\n```python\n# Original price of the book\noriginal_price = "
        "19.50\n\n# Discount percentage\ndiscount_percentage = 25 / 100\n\n# Calculate the discount "
        "amount\ndiscount_amount = original_price * discount_percentage\n\n# Calculate the original "
        "price\noriginal_price = original_price - discount_amount\nprint(original_price)\n```";
    static const char head[] =
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nKyle bought last year's best-selling book for $19.50. This is with a 25% discount from "
        "the original price. What was the original price of the book?<|im_end|>\n<|im_start|>assistant\n";
    char prompt[sizeof head + sizeof answer];
    snprintf(prompt, sizeof prompt, "%s%s", head, answer);
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 512;
    cp.n_threads = 2;
    cp.batch_invariant = true;
    struct sa_upstream *up = NULL;
    CHECK_OK(sa_local_upstream_init(m, NULL, &cp, true, &up, NULL));
    if (!up) return;
    char out[256] = "";
    size_t n_out = 0;
    struct sa_upstream_gen_params gp = sa_upstream_gen_default_params();
    gp.max_tokens = 5;
    gp.heal_bytes = strlen(answer);
    CHECK_OK(sa_upstream_start(up, prompt, strlen(prompt), &gp));
    for (;;) {
        struct sa_upstream_chunk c;
        if (sa_upstream_next(up, &c)) break;
        size_t k = c.len < sizeof out - 1 - n_out ? c.len : sizeof out - 1 - n_out;
        memcpy(out + n_out, c.text, k);
        n_out += k;
        if (c.finish) break;
    }
    out[n_out] = 0;
    /* the taken-back "```" is not repeated: the text goes on after it */
    CHECK_MSG(!strncmp(out, "\n```output", 10), "healed continuation \"%s\"", out);
    sa_upstream_free(up);
}

/* Qwen writes ":\n\n" as one token. Cut at "steps:", the prefix re-tokenizes to a lone ":",
 * after which the model does not write the line break it wrote alone. With healing, a copying
 * aligner gives the upstream's own answer, byte for byte; without, it drifts (the GSM8K
 * measurement of docs/RESULTS.md: 146 answers with code blocks instead of 16). */
static void test_token_healing_qwen(void) {
#if defined(__SANITIZE_ADDRESS__)
    /* a 0.5B model at -O1 under ASan takes minutes; `make test` runs it, and the same code
     * paths run under ASan with SmolLM2 in test_local_kv_cache and the speculation tests */
    harness_skip("Qwen2.5-Coder-0.5B under ASan: run by make test");
    return;
#endif
    const char *dir = getenv("SALIGN_MODELS"), *home = getenv("HOME");
    const char *file = "qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
    char path[1024];
    if (dir && *dir) snprintf(path, sizeof path, "%s/%s", dir, file);
    else snprintf(path, sizeof path, "%s/.cache/salign/%s", home ? home : ".", file);
    struct sa_model *m = NULL;
    CHECK_OK(sa_model_load(path, NULL, &m));
    CHECK_MSG(m != NULL, "missing %s: run scripts/setup.sh (salign pull qwen2.5-coder-0.5b-instruct)", path);
    if (!m) return;
    int32_t prefill = -1;
    char *alone = qwen_run(m, SA_PIPELINE_UPSTREAM, true, true, NULL);
    char *healed = qwen_run(m, SA_PIPELINE_STREAM, true, true, &prefill);
    char *raw = qwen_run(m, SA_PIPELINE_STREAM, false, false, NULL);
    /* the remote upstream's fix, on the local one without healing: the line break written
     * after a sentence is kept at the end of the prompt (":\n\n" stays one token) */
    char *kept = qwen_run(m, SA_PIPELINE_STREAM, false, true, NULL);
    CHECK(alone && healed && raw && kept);
    if (alone && healed && raw && kept) {
        CHECK(strstr(alone, ":\n\n") != NULL); /* the case this test is about occurs */
        CHECK(strlen(healed) > 100);
        CHECK_MSG(!strncmp(alone, healed, strlen(healed)), "healed stream \"%s\" is not a prefix of the upstream's \"%s\"",
                  healed, alone);
        CHECK_MSG(strncmp(alone, raw, strlen(raw)) != 0, "without healing the answer was expected to drift: \"%s\"", raw);
        CHECK(strlen(kept) > 100);
        CHECK_MSG(!strncmp(alone, kept, strlen(kept)), "kept-break stream \"%s\" is not a prefix of the upstream's \"%s\"",
                  kept, alone);
        CHECK_EQ_INT(prefill, 1);
    }
    free(alone);
    free(healed);
    free(raw);
    free(kept);
    check_heal_split_token(m);
    sa_model_free(m);
}

int main(void) {
    /* The pipelines over real models set batch_invariant: bitwise-reproducible logits
     * however tokens are batched, so that a prompt evaluated from scratch and one extended
     * from a kept cache give the same tokens. */
    RUN(test_stream_copy);
    RUN(test_first_prompt_and_system);
    RUN(test_rewrite_whitespace);
    RUN(test_empty_revision_stops);
    RUN(test_max_rounds_and_length);
    RUN(test_max_length_hard_cap);
    RUN(test_cancel);
    RUN(test_mode_upstream);
    RUN(test_mode_aligner);
    RUN(test_revise_given_answer);
    RUN(test_revise_one_sentence);
    RUN(test_edit_check_arith);
    RUN(test_edit_check_cut);
    RUN(test_edit_check_refused_by);
    RUN(test_calculator);
    RUN(test_mode_continue);
    RUN(test_finish_in_one_chunk);
    RUN(test_joining_cjk_and_lines);
    RUN(test_upstream_failures);
    RUN(test_init_errors);
    RUN(test_join_helpers);
    RUN(test_keep_line_break);
    RUN(test_load_model);
    RUN(test_local_kv_cache);
    RUN(test_real_aligner_speculation);
    RUN(test_token_healing_qwen);
    sa_model_free(g_model);
    return harness_summary();
}
