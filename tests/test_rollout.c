/* test_rollout.c: rollout labelling (sa/rollout.h) and sampling from a prefix
 * (sa_pipeline_sample) over a scripted upstream whose completions are decided by the prefix
 * they continue, so that every value is known exactly: a prefix holding a "bad" or "poor"
 * sentence never reaches the gold answer, a "meh" one reaches it on every other sample, the
 * others always do. */
#define _POSIX_C_SOURCE 200809L
#include "data/gold_path_impl.h"
#include "harness.h"
#include "smollm_model.h"
#include "sa/sa.h"

#include <stdlib.h>
#include <string.h>

/* ---- the scripted world ---- */

struct script {
    const char *const *draft; /* the greedy answer's sentences */
    int n_draft;
    const char *const *alts;  /* what a sample from the branch prefix starts with, in turn */
    int n_alts;
    int branch;               /* the prefix (draft sentences) where alternatives are drawn */
    bool hard;                /* every sampled completion is wrong */
};

struct fake {
    const struct script *sc;
    char *keys[256]; /* prefixes sampled from, and how often */
    int counts[256];
    int n_keys;
    char *text;
    size_t pos, len;
    int32_t max_tokens, n_tok;
    int n_greedy, n_sampled;
    uint64_t seeds[512];
    int n_seeds;
    char buf[16];
};

/* prefix of k draft sentences, joined by spaces (what the pipeline makes of them) */
static void draft_prefix(const struct script *sc, int k, char *out, size_t cap) {
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        if (i) strncat(out, " ", cap - strlen(out) - 1);
        strncat(out, sc->draft[i], cap - strlen(out) - 1);
    }
}

static int draft_index(const struct script *sc, const char *prefix) {
    char buf[2048];
    for (int k = 0; k <= sc->n_draft; k++) {
        draft_prefix(sc, k, buf, sizeof buf);
        if (!strcmp(buf, prefix)) return k;
    }
    return -1;
}

static int bump(struct fake *f, const char *key) {
    for (int i = 0; i < f->n_keys; i++)
        if (!strcmp(f->keys[i], key)) return f->counts[i]++;
    f->keys[f->n_keys] = strdup(key);
    f->counts[f->n_keys++] = 1;
    return 0;
}

static enum sa_status fake_start(void *impl, const char *prompt, size_t len, const struct sa_upstream_gen_params *p) {
    struct fake *f = impl;
    char *pr = strndup(prompt, len);
    const char *mark = "<|im_start|>assistant\n", *at = NULL;
    for (const char *q = strstr(pr, mark); q; q = strstr(q + 1, mark)) at = q;
    const char *prefix = at ? at + strlen(mark) : "";
    const struct script *sc = f->sc;
    char out[4096] = "";
    const char *sep = prefix[0] ? " " : "";
    int k = draft_index(sc, prefix);
    if (p->temperature <= 0) { /* greedy: the rest of the draft */
        f->n_greedy++;
        for (int i = k < 0 ? sc->n_draft : k; i < sc->n_draft; i++) {
            strcat(out, i || prefix[0] ? " " : "");
            strcat(out, sc->draft[i]);
        }
    } else {
        f->n_sampled++;
        if (f->n_seeds < 512) f->seeds[f->n_seeds++] = p->seed;
        int c = bump(f, prefix);
        const char *first = k == sc->branch ? sc->alts[c % sc->n_alts]
                            : k >= 0 && k < sc->n_draft ? sc->draft[k]
                                                        : "Then we go on.";
        char full[4096];
        snprintf(full, sizeof full, "%s%s%s", prefix, sep, first);
        bool ok = !sc->hard && !strstr(full, "bad") && !strstr(full, "poor") && (!strstr(full, "meh") || c % 2 == 0);
        snprintf(out, sizeof out, "%s%s The answer is %d.", sep, first, ok ? 7 : 5);
    }
    free(f->text);
    f->text = strdup(out);
    f->len = strlen(out);
    f->pos = 0;
    f->max_tokens = p->max_tokens;
    f->n_tok = 0;
    free(pr);
    return SA_STATUS_OK;
}

static enum sa_status fake_next(void *impl, struct sa_upstream_chunk *out) {
    struct fake *f = impl;
    size_t n = f->len - f->pos < 4 ? f->len - f->pos : 4;
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
    (void)impl;
}

static void fake_free(void *impl) {
    struct fake *f = impl;
    for (int i = 0; i < f->n_keys; i++) free(f->keys[i]);
    free(f->text);
    free(f);
}

static const struct sa_upstream_ops fake_ops = {"scripted", fake_start, fake_next, fake_cancel, fake_free};

struct world {
    struct fake *f; /* owned by up */
    struct sa_upstream *up;
    struct sa_pipeline *pl;
};

static void world_init(struct world *w, const struct script *sc) {
    w->f = calloc(1, sizeof *w->f);
    w->f->sc = sc;
    CHECK_OK(sa_upstream_init_ops(&fake_ops, w->f, &w->up));
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.mode = SA_PIPELINE_UPSTREAM;
    pp.upstream = w->up;
    pp.upstream_format = SA_CHAT_FORMAT_CHATML;
    CHECK_OK(sa_pipeline_init(&pp, &w->pl));
}

static void world_free(struct world *w) {
    sa_pipeline_free(w->pl);
    sa_upstream_free(w->up);
}

static const char *const DRAFT[] = {"Step one is fine.", "Step two is fine.", "Step three is fine.",
                                    "Step four is bad.", "Step five goes on.", "The answer is 5."};
static const char *const ALTS[] = {"Step four is bad.", "Step four is meh.", "Step four is good.",
                                   "Step four is poor."};
static const char *const Q = "What is three plus four?";

static struct sa_rollout_params params(void) {
    struct sa_rollout_params p = sa_rollout_default_params();
    p.seed = 42;
    return p;
}

static size_t count_kind(const struct sa_rollout_result *r, enum sa_rollout_kind k, bool whole) {
    size_t n = 0;
    for (size_t i = 0; i < r->n_records; i++) n += r->records[i].kind == k && r->records[i].whole == whole;
    return n;
}

/* ---- sampling from a prefix ---- */

static void test_prefix_sample(void) {
    struct script sc = {DRAFT, 6, ALTS, 4, 3, false};
    struct world w;
    world_init(&w, &sc);
    char p3[512];
    draft_prefix(&sc, 3, p3, sizeof p3);
    struct sa_pipeline_sample_params sp = sa_pipeline_sample_default_params();
    struct sa_pipeline_sample_result r;
    /* one sentence: the separator and the sentence, cut at its boundary */
    CHECK_OK(sa_pipeline_sample(w.pl, Q, p3, &sp, &r));
    CHECK_EQ_STR(r.text, " Step four is bad."); /* the first of the branch's turns */
    CHECK_EQ_STR(r.sentence, "Step four is bad.");
    CHECK(!r.done && !r.cut);
    CHECK(r.n_tokens > 0);
    sa_pipeline_sample_result_free(&r);
    /* the whole rest */
    sp.whole = true;
    CHECK_OK(sa_pipeline_sample(w.pl, Q, p3, &sp, &r));
    CHECK_EQ_STR(r.text, " Step four is meh. The answer is 5.");
    CHECK(r.sentence == NULL);
    CHECK(r.done && !r.cut);
    sa_pipeline_sample_result_free(&r);
    /* the last sentence ends the turn; greedy from a draft prefix follows the draft */
    char p5[512];
    draft_prefix(&sc, 5, p5, sizeof p5);
    sp.whole = false;
    sp.temperature = 0;
    CHECK_OK(sa_pipeline_sample(w.pl, Q, p5, &sp, &r));
    CHECK_EQ_STR(r.text, " The answer is 5.");
    CHECK(r.done);
    sa_pipeline_sample_result_free(&r);
    /* max_tokens cuts the rest */
    sp.whole = true;
    sp.max_tokens = 2;
    CHECK_OK(sa_pipeline_sample(w.pl, Q, "", &sp, &r));
    CHECK(r.cut && !r.done);
    CHECK_EQ_INT(r.n_tokens, 2);
    sa_pipeline_sample_result_free(&r);
    CHECK(sa_pipeline_sample(w.pl, Q, "\xff", &sp, &r) == SA_STATUS_BAD_ARGUMENT);
    CHECK(r.text == NULL);
    world_free(&w);
}

/* ---- labelling ---- */

static void test_first_error_and_fix(void) {
    struct script sc = {DRAFT, 6, ALTS, 4, 3, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "\"q1\"", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    CHECK_EQ_INT(r.n_sentences, 6);
    CHECK(!r.draft_correct);
    CHECK_EQ_INT(r.first_error, 4);
    CHECK_NEAR(r.value0, 1.0, 0);
    CHECK_EQ_INT(r.n_alternatives, 3); /* the draft's own sentence is dropped */
    CHECK_NEAR(r.best_alt_value, 1.0, 0);
    /* the draft, value(0), value(3) (0.25 > 0), value(4) (0), K alternatives, 3 valued:
       binary search values 3 prefixes where a scan from the start would value 5 */
    CHECK_EQ_INT(r.n_generations, 1 + 3 * 4 + 4 + 3 * 4);
    CHECK(r.n_tokens > 0);
    CHECK_EQ_INT(r.n_records, 5);
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_COPY, false), 3);
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_FIX, false), 1);
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_FIX, true), 1);
    if (r.n_records == 5) {
        for (int i = 0; i < 3; i++) {
            char pre[512];
            draft_prefix(&sc, i, pre, sizeof pre);
            CHECK_EQ_INT(r.records[i].round, i + 1);
            CHECK_EQ_STR(r.records[i].prefix, pre);
            CHECK_EQ_STR(r.records[i].last, DRAFT[i]);
            CHECK_EQ_STR(r.records[i].correction, DRAFT[i]);
        }
        CHECK_NEAR(r.records[0].value_before, 1.0, 0);
        CHECK_NEAR(r.records[2].value_after, 0.25, 1e-12);
        const struct sa_rollout_record *fx = &r.records[3];
        CHECK_EQ_INT(fx->round, 4);
        CHECK_EQ_STR(fx->prefix, "Step one is fine. Step two is fine. Step three is fine.");
        CHECK_EQ_STR(fx->last, "Step four is bad.");
        CHECK_EQ_STR(fx->correction, "Step four is good."); /* 1.0 beats meh's 0.5 and poor's 0 */
        CHECK_NEAR(fx->value_before, 0.25, 1e-12);
        CHECK_NEAR(fx->value_after, 0, 0);
        CHECK_NEAR(fx->alt_value, 1.0, 0);
        CHECK_EQ_INT(fx->n_rollouts, 4);
        const struct sa_rollout_record *wa = &r.records[4];
        CHECK(wa->whole);
        CHECK_EQ_STR(wa->answer, r.draft);
        CHECK_EQ_STR(wa->correction, "Step one is fine. Step two is fine. Step three is fine. Step four is good. "
                                     "Then we go on. The answer is 7.");
    }
    /* the records are records: sa_records_parse reads their JSON lines */
    struct sa_buf_like {
        char *s;
    } all = {calloc(1, 1)};
    for (size_t i = 0; i < r.n_records; i++) {
        char *line = NULL;
        CHECK_OK(sa_rollout_record_json("\"q1\"", Q, &r.records[i], &line));
        all.s = realloc(all.s, strlen(all.s) + strlen(line) + 1);
        strcat(all.s, line);
        free(line);
    }
    struct sa_records rs;
    sa_records_init(&rs);
    CHECK_OK(sa_records_parse(all.s, strlen(all.s), "rollout", SA_RECORD_ANY, &rs));
    CHECK_EQ_INT(rs.n, 5);
    if (rs.n == 5) {
        CHECK_EQ_INT(rs.items[3].kind, SA_RECORD_SENTENCE);
        CHECK_EQ_STR(rs.items[3].correction, "Step four is good.");
        CHECK_EQ_STR(rs.items[3].source, "rollout:4:fix");
        CHECK_EQ_INT(rs.items[4].kind, SA_RECORD_ANSWER);
    }
    CHECK(strstr(all.s, "\"kind\":\"fix\",\"round\":4,\"value_before\":0.25,\"value_after\":0,\"alt_value\":1,"
                        "\"n_rollouts\":4") != NULL);
    sa_records_free(&rs);
    free(all.s);
    sa_rollout_result_free(&r);
    world_free(&w);
}

/* The first error early: binary search goes left. */
static void test_first_error_early(void) {
    static const char *const d[] = {"Step one is fine.", "Step two is bad.", "Step three is fine.",
                                    "Step four is fine.", "Step five goes on.", "The answer is 5."};
    static const char *const alts[] = {"Step two is good."};
    struct script sc = {d, 6, alts, 1, 1, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    p.n_alternatives = 2;
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "7", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.first_error, 2);
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_COPY, false), 1);
    CHECK_EQ_INT(r.n_alternatives, 1); /* the same alternative twice is valued once */
    /* draft, value(0), value(3), value(1), value(2), 2 alternatives, 1 valued */
    CHECK_EQ_INT(r.n_generations, 1 + 4 * 4 + 2 + 4);
    sa_rollout_result_free(&r);
    world_free(&w);
}

static void test_ties_take_the_first(void) {
    static const char *const alts[] = {"Step four is bad.", "Step four is good.", "Step four is fine too."};
    struct script sc = {DRAFT, 6, alts, 3, 3, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "1", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    /* value(3) took turns 0..3; alternatives are turns 4..7: good, fine too, bad, good */
    CHECK_EQ_INT(r.n_alternatives, 2);
    for (size_t i = 0; i < r.n_records; i++)
        if (r.records[i].kind == SA_ROLLOUT_FIX && !r.records[i].whole)
            CHECK_EQ_STR(r.records[i].correction, "Step four is good.");
    sa_rollout_result_free(&r);
    world_free(&w);
}

static void test_no_alternative_good_enough(void) {
    static const char *const alts[] = {"Step four is bad.", "Step four is poor.", "Step four is meh."};
    struct script sc = {DRAFT, 6, alts, 3, 3, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    p.min_alt_value = 0.75;
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "1", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_NO_ALTERNATIVE);
    CHECK_EQ_INT(r.first_error, 4);
    CHECK_NEAR(r.best_alt_value, 0.5, 1e-12); /* meh */
    CHECK_EQ_INT(r.n_records, 3);             /* the copies before it, no fix, no whole answer */
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_COPY, false), 3);
    sa_rollout_result_free(&r);
    /* the same with the default threshold keeps meh */
    world_free(&w);
    world_init(&w, &sc);
    p.min_alt_value = 0.5;
    CHECK_OK(sa_rollout_label(w.pl, "1", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    sa_rollout_result_free(&r);
    world_free(&w);
}

static void test_too_hard(void) {
    struct script sc = {DRAFT, 6, ALTS, 4, 3, true};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "1", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_TOO_HARD);
    CHECK_NEAR(r.value0, 0, 0);
    CHECK_EQ_INT(r.first_error, 0);
    CHECK_EQ_INT(r.n_records, 0);
    CHECK_EQ_INT(r.n_generations, 1 + 4);
    sa_rollout_result_free(&r);
    world_free(&w);
}

static void test_correct_draft(void) {
    static const char *const d[] = {"Step one is fine.", "Step two is fine.", "The answer is 7."};
    struct script sc = {d, 3, ALTS, 4, 9, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "1", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_CORRECT);
    CHECK(r.draft_correct);
    CHECK_EQ_INT(r.n_generations, 1); /* no sampling */
    CHECK_EQ_INT(w.f->n_sampled, 0);
    CHECK_EQ_INT(r.n_records, 4);
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_COPY, false), 3);
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_COPY, true), 1);
    if (r.n_records == 4) {
        CHECK_EQ_STR(r.records[2].prefix, "Step one is fine. Step two is fine.");
        CHECK_EQ_STR(r.records[2].correction, "The answer is 7.");
        CHECK_EQ_STR(r.records[3].answer, "Step one is fine. Step two is fine. The answer is 7.");
        CHECK_EQ_STR(r.records[3].correction, r.records[3].answer);
    }
    sa_rollout_result_free(&r);
    /* copy records off */
    p.copy_records = false;
    p.answer_records = false;
    CHECK_OK(sa_rollout_label(w.pl, "1", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.n_records, 0);
    sa_rollout_result_free(&r);
    world_free(&w);
}

/* A draft given (as read from a trace) is not written again, and gives the same records. */
static void test_given_draft(void) {
    struct script sc = {DRAFT, 6, ALTS, 4, 3, false};
    const char *text[6], *orig[6];
    char buf[6][64];
    for (int i = 0; i < 6; i++) {
        snprintf(buf[i], sizeof buf[i], "%s%s", i ? " " : "", DRAFT[i]);
        text[i] = buf[i];
        orig[i] = DRAFT[i];
    }
    struct sa_rollout_draft d = {text, orig, 6};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "\"q1\"", Q, "7", &d, &p, &r));
    CHECK_EQ_INT(w.f->n_greedy, 0);
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    CHECK_EQ_INT(r.first_error, 4);
    CHECK_EQ_INT(r.n_generations, 3 * 4 + 4 + 3 * 4);
    CHECK_EQ_INT(r.n_records, 5);
    sa_rollout_result_free(&r);
    world_free(&w);
}

static char *all_json(const struct sa_rollout_result *r) {
    char *all = calloc(1, 1);
    for (size_t i = 0; i < r->n_records; i++) {
        char *line = NULL;
        CHECK_OK(sa_rollout_record_json("3", Q, &r->records[i], &line));
        all = realloc(all, strlen(all) + strlen(line) + 1);
        strcat(all, line);
        free(line);
    }
    return all;
}

static void test_seeds(void) {
    struct script sc = {DRAFT, 6, ALTS, 4, 3, false};
    struct sa_rollout_params p = params();
    uint64_t seeds[2][64];
    char *json[2];
    for (int run = 0; run < 2; run++) {
        struct world w;
        world_init(&w, &sc);
        struct sa_rollout_result r;
        CHECK_OK(sa_rollout_label(w.pl, "3", Q, "7", NULL, &p, &r));
        CHECK_EQ_INT(w.f->n_seeds, 28);
        memcpy(seeds[run], w.f->seeds, sizeof seeds[run]);
        json[run] = all_json(&r);
        sa_rollout_result_free(&r);
        world_free(&w);
    }
    CHECK(!memcmp(seeds[0], seeds[1], 28 * sizeof(uint64_t)));
    CHECK_EQ_STR(json[0], json[1]);
    /* each sample's seed is its (seed, id, what, k, i): value(0)'s first completion ... */
    CHECK(seeds[0][0] == sa_rollout_seed(42, "3", SA_ROLLOUT_SEED_VALUE, 0, 0));
    CHECK(seeds[0][4] == sa_rollout_seed(42, "3", SA_ROLLOUT_SEED_VALUE, 3, 0));
    CHECK(seeds[0][12] == sa_rollout_seed(42, "3", SA_ROLLOUT_SEED_ALT, 4, 0));
    /* ... all distinct, and another seed or id changes them */
    for (int i = 0; i < 28; i++)
        for (int j = 0; j < i; j++) CHECK(seeds[0][i] != seeds[0][j]);
    CHECK(sa_rollout_seed(43, "3", SA_ROLLOUT_SEED_VALUE, 0, 0) != seeds[0][0]);
    CHECK(sa_rollout_seed(42, "4", SA_ROLLOUT_SEED_VALUE, 0, 0) != seeds[0][0]);
    free(json[0]);
    free(json[1]);
}

static bool cancel_after(void *user) {
    int *n = user;
    return --*n < 0;
}

static void test_errors(void) {
    struct script sc = {DRAFT, 6, ALTS, 4, 3, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    struct sa_rollout_result r;
    p.n_rollouts = 0;
    CHECK(sa_rollout_label(w.pl, "1", Q, "7", NULL, &p, &r) == SA_STATUS_BAD_ARGUMENT);
    p = params();
    CHECK(sa_rollout_label(w.pl, "1", Q, NULL, NULL, &p, &r) == SA_STATUS_BAD_ARGUMENT);
    int budget = 40;
    p.cancel = cancel_after;
    p.user = &budget;
    CHECK(sa_rollout_label(w.pl, "1", Q, "7", NULL, &p, &r) == SA_STATUS_CANCELLED);
    CHECK_EQ_INT(r.n_records, 0);
    CHECK(r.n_generations > 0);
    sa_rollout_result_free(&r);
    sa_rollout_result_free(NULL);
    CHECK_EQ_STR(sa_rollout_outcome_name(SA_ROLLOUT_TOO_HARD), "too_hard");
    CHECK_EQ_STR(sa_rollout_kind_name(SA_ROLLOUT_FIX), "fix");
    world_free(&w);
}


/* n_verify: the label checked with fresh completions */
static void test_verify(void) {
    struct script sc = {DRAFT, 6, ALTS, 4, 3, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = params();
    p.n_verify = 4;
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "\"q1\"", Q, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    CHECK_NEAR(r.verify_after, 0, 0); /* through "bad": never */
    CHECK_NEAR(r.verify_alt, 1, 0);   /* through "good": always */
    CHECK_EQ_INT(r.n_generations, 1 + 3 * 4 + 4 + 3 * 4 + 2 * 4);
    CHECK_EQ_INT(r.n_records, 5);
    for (size_t i = 0; i < r.n_records; i++) CHECK_EQ_INT(r.records[i].n_rollouts, 4);
    sa_rollout_result_free(&r);
    /* off: not measured */
    p.n_verify = 0;
    CHECK_OK(sa_rollout_label(w.pl, "\"q1\"", Q, "7", NULL, &p, &r));
    CHECK(r.verify_after < 0 && r.verify_alt < 0);
    sa_rollout_result_free(&r);
    world_free(&w);
}

/* ---- the gold path (--locate gold-path) ---- */

static void test_gold_path_parse(void) {
    struct sa_gold_path gp;
    const char *q = "Tom has 1,200 apples and 2.5 pears. He gives 48 away.";
    const char *sol = "He keeps half: 48/2 = <<48/2=24>>24 apples.\nThen 48+24 = <<48+24=72>>72.\n"
                      "He sells them for $<<72*0.5=36.25>>36.25 each.\n#### 72";
    CHECK_OK(sa_gold_path_init(q, sol, &gp));
    CHECK(sa_gold_path_has(&gp, 24));          /* <<48/2=24>> */
    CHECK(sa_gold_path_has(&gp, 72));          /* <<48+24=72>> and #### 72 */
    CHECK(sa_gold_path_has(&gp, 36.25));       /* a decimal */
    CHECK(sa_gold_path_has(&gp, 1200));        /* the question's 1,200: thousands commas */
    CHECK(sa_gold_path_has(&gp, 2.5));
    CHECK(sa_gold_path_has(&gp, 48));
    CHECK(sa_gold_path_has(&gp, 24.0000000001)); /* rounded to 6 decimals */
    CHECK(!sa_gold_path_has(&gp, 24.00001));  /* 6 decimals, not fewer */
    CHECK(sa_gold_path_has(&gp, 36.2500004));
    CHECK(!sa_gold_path_has(&gp, 2));          /* the left sides of <<...>> are not on it */
    CHECK(!sa_gold_path_has(&gp, 0.5));
    CHECK(!sa_gold_path_has(&gp, 1));          /* 1,200 is one number */
    CHECK(!sa_gold_path_has(&gp, 200));
    CHECK_EQ_INT(gp.n, 6); /* 1200 2.5 48 24 72 36.25, distinct */
    /* a sentence's equations: on the path, off it, none */
    int32_t n_eq = -1;
    CHECK_EQ_INT(sa_gold_path_off(&gp, "He keeps 48 / 2 = 24 apples.", &n_eq), 0);
    CHECK_EQ_INT(n_eq, 1);
    CHECK_EQ_INT(sa_gold_path_off(&gp, "He keeps 48 / 2 = 25 apples.", &n_eq), 1); /* a false result leaves the path */
    CHECK_EQ_INT(sa_gold_path_off(&gp, "Then 24 + 40 = 64.", &n_eq), 1);
    CHECK_EQ_INT(n_eq, 1);
    CHECK_EQ_INT(sa_gold_path_off(&gp, "He has 1,200 + 2.5 = 1,202.5 things.", &n_eq), 1);
    CHECK_EQ_INT(sa_gold_path_off(&gp, "He has many apples.", &n_eq), 0);
    CHECK_EQ_INT(n_eq, 0);
    sa_gold_path_free(&gp);
    /* no "####": the whole solution's numbers */
    CHECK_OK(sa_gold_path_init("", "It is 5 and 7.", &gp));
    CHECK(sa_gold_path_has(&gp, 5) && sa_gold_path_has(&gp, 7));
    sa_gold_path_free(&gp);
    CHECK(sa_gold_path_init(NULL, sol, &gp) == SA_STATUS_BAD_ARGUMENT);
    sa_gold_path_free(&gp);
}

/* The scripted world of the gold path: the gold answer is 7 (what a good completion ends with). */
static const char *const GQ = "Tom has 48 apples, gives half away, buys 48 more and eats 65. How many are left?";
static const char *const GSOL = "He keeps 48/2 = <<48/2=24>>24.\nThen 24+48 = <<24+48=72>>72.\n"
                                "He eats 65: 72-65 = <<72-65=7>>7.\n#### 7";
static const char *const GDRAFT[] = {"Tom has 48 apples.", "He keeps 48 / 2 = 24.", "Then 24 + 40 = 64.",
                                     "He eats 65, so 64 - 65 = -1.", "The answer is 5."};
/* off the path (with the best value: it would win a tie), no equation, on the path */
static const char *const GALTS[] = {"Then 24 + 50 = 74.", "Then he buys more.", "Then 24 + 48 = 72."};

static struct sa_rollout_params gold_params(void) {
    struct sa_rollout_params p = params();
    p.locate = SA_ROLLOUT_LOCATE_GOLD_PATH;
    p.gold_solution = GSOL;
    return p;
}

static void test_gold_path_fix(void) {
    struct script sc = {GDRAFT, 5, GALTS, 3, 2, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = gold_params();
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "\"g1\"", GQ, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    CHECK_EQ_INT(r.first_error, 3); /* 24 + 40 = 64: 64 is off the path */
    CHECK(r.value0 < 0);            /* no value(0), no binary search */
    CHECK_EQ_INT(r.n_alternatives, 1);
    CHECK_NEAR(r.best_alt_value, 1.0, 0);
    /* the draft, K = 4 alternatives (the 4th repeats the 1st), N = 4 for the one that qualifies */
    CHECK_EQ_INT(r.n_generations, 1 + 4 + 4);
    CHECK_EQ_INT(r.n_records, 4);
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_COPY, false), 2);
    if (r.n_records == 4) {
        CHECK(r.records[0].value_before < 0 && r.records[1].value_after < 0);
        const struct sa_rollout_record *fx = &r.records[2];
        CHECK_EQ_INT(fx->kind, SA_ROLLOUT_FIX);
        CHECK_EQ_INT(fx->round, 3);
        CHECK_EQ_STR(fx->last, "Then 24 + 40 = 64.");
        CHECK_EQ_STR(fx->correction, "Then 24 + 48 = 72."); /* not the off-path 74 */
        CHECK(fx->value_before < 0 && fx->value_after < 0);
        CHECK_NEAR(fx->alt_value, 1.0, 0);
        CHECK(r.records[3].whole);
        CHECK_EQ_STR(r.records[3].correction, "Tom has 48 apples. He keeps 48 / 2 = 24. Then 24 + 48 = 72. "
                                              "Then we go on. The answer is 7.");
    }
    sa_rollout_result_free(&r);
    /* --verify works on a kept fix */
    p.n_verify = 2;
    CHECK_OK(sa_rollout_label(w.pl, "\"g1\"", GQ, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    CHECK_NEAR(r.verify_alt, 1.0, 0);
    CHECK_EQ_INT(r.n_generations, 1 + 4 + 4 + 2 * 2);
    sa_rollout_result_free(&r);
    /* the default mode ignores the solution: binary search as before */
    p = params();
    p.gold_solution = GSOL;
    CHECK_OK(sa_rollout_label(w.pl, "\"g1\"", GQ, "7", NULL, &p, &r));
    CHECK(r.value0 >= 0);
    sa_rollout_result_free(&r);
    world_free(&w);
}

/* N = 0: the first qualifying alternative, unvalued; no completion is sampled. */
static void test_gold_path_no_rollouts(void) {
    struct script sc = {GDRAFT, 5, GALTS, 3, 2, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = gold_params();
    p.n_rollouts = 0;
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "\"g1\"", GQ, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_FIXED);
    CHECK_EQ_INT(r.first_error, 3);
    CHECK_EQ_INT(r.n_generations, 1 + 3); /* the draft, alternatives until the on-path one */
    CHECK_EQ_INT(w.f->n_sampled, 3);
    CHECK(r.best_alt_value < 0);
    CHECK_EQ_INT(r.n_records, 3); /* 2 copies and the fix; no whole-answer fix record */
    CHECK_EQ_INT(count_kind(&r, SA_ROLLOUT_FIX, true), 0);
    if (r.n_records == 3) {
        CHECK_EQ_STR(r.records[2].correction, "Then 24 + 48 = 72.");
        CHECK(r.records[2].alt_value < 0);
        char *line = NULL;
        CHECK_OK(sa_rollout_record_json("1", GQ, &r.records[2], &line));
        CHECK(line && !strstr(line, "alt_value") && !strstr(line, "value_before"));
        free(line);
    }
    sa_rollout_result_free(&r);
    /* N = 0 is refused in the default mode */
    p.locate = SA_ROLLOUT_LOCATE_VALUE;
    CHECK(sa_rollout_label(w.pl, "1", GQ, "7", NULL, &p, &r) == SA_STATUS_BAD_ARGUMENT);
    world_free(&w);
}

static void test_gold_path_no_alternative_and_on_path(void) {
    /* only off-path or equation-less alternatives: no alternative */
    static const char *const bad_alts[] = {"Then 24 + 50 = 74.", "Then he buys more."};
    struct script sc = {GDRAFT, 5, bad_alts, 2, 2, false};
    struct world w;
    world_init(&w, &sc);
    struct sa_rollout_params p = gold_params();
    struct sa_rollout_result r;
    CHECK_OK(sa_rollout_label(w.pl, "1", GQ, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_NO_ALTERNATIVE);
    CHECK_EQ_INT(r.first_error, 3);
    CHECK_EQ_INT(r.n_alternatives, 0);
    CHECK_EQ_INT(r.n_generations, 1 + 4); /* none valued */
    CHECK_EQ_INT(r.n_records, 2);
    sa_rollout_result_free(&r);
    world_free(&w);
    /* a wrong draft whose equations all stay on the path: on_path, no records, no sample */
    static const char *const on[] = {"Tom has 48 apples.", "He keeps 48 / 2 = 24.", "The answer is 5."};
    struct script sc2 = {on, 3, GALTS, 3, 2, false};
    world_init(&w, &sc2);
    CHECK_OK(sa_rollout_label(w.pl, "1", GQ, "7", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_ON_PATH);
    CHECK_EQ_STR(sa_rollout_outcome_name(r.outcome), "on_path");
    CHECK_EQ_INT(r.first_error, 0);
    CHECK_EQ_INT(r.n_records, 0);
    CHECK_EQ_INT(r.n_generations, 1);
    sa_rollout_result_free(&r);
    /* a right draft: copies, as in the default mode */
    CHECK_OK(sa_rollout_label(w.pl, "1", GQ, "5", NULL, &p, &r));
    CHECK_EQ_INT(r.outcome, SA_ROLLOUT_CORRECT);
    CHECK_EQ_INT(r.n_records, 4);
    sa_rollout_result_free(&r);
    /* gold path without the solution */
    p.gold_solution = NULL;
    CHECK(sa_rollout_label(w.pl, "1", GQ, "7", NULL, &p, &r) == SA_STATUS_BAD_ARGUMENT);
    p = gold_params();
    p.locate = (enum sa_rollout_locate)7;
    CHECK(sa_rollout_label(w.pl, "1", GQ, "7", NULL, &p, &r) == SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_STR(sa_rollout_locate_name(SA_ROLLOUT_LOCATE_GOLD_PATH), "gold-path");
    world_free(&w);
}

/* ---- a local upstream: N samples of one prefix cost one prefill ---- */

static void test_local_prefix_kv_reuse(void) {
    struct sa_model *m = load_smollm();
    if (!m) return;
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.mode = SA_PIPELINE_UPSTREAM;
    pp.upstream_model = m;
    pp.n_threads = 2;
    /* the same seed gives the same text only when a prefix extended from a kept cache is computed
     * as from scratch: without batch-invariant kernels the one-row products round differently from
     * the prefill's GEMM, and on the AVX-512 path a sample drawn near a tie went the other way */
    pp.batch_invariant = true;
    struct sa_pipeline *pl = NULL;
    CHECK_OK(sa_pipeline_init(&pp, &pl));
    const char *q = "Tom has 3 apples and buys 4 more. How many apples does he have?";
    const char *prefix = "Tom has 3 apples.";
    struct sa_pipeline_sample_params sp = sa_pipeline_sample_default_params();
    sp.whole = true;
    sp.max_tokens = 6;
    struct sa_pipeline_sample_result r[3];
    for (int i = 0; i < 3; i++) {
        sp.seed = (uint64_t)i + 1;
        CHECK_OK(sa_pipeline_sample(pl, q, prefix, &sp, &r[i]));
        CHECK(r[i].n_tokens >= 1 && r[i].n_tokens <= 6);
    }
    CHECK(r[0].n_prefill > 20);                       /* the question and the prefix */
    CHECK(r[1].n_prefill <= 2 && r[2].n_prefill <= 2); /* the healed token at most */
    /* the same seed gives the same text */
    struct sa_pipeline_sample_result again;
    sp.seed = 1;
    CHECK_OK(sa_pipeline_sample(pl, q, prefix, &sp, &again));
    CHECK_EQ_STR(again.text, r[0].text);
    sa_pipeline_sample_result_free(&again);
    for (int i = 0; i < 3; i++) sa_pipeline_sample_result_free(&r[i]);
    sa_pipeline_free(pl);
    sa_model_free(m);
}

int main(void) {
    RUN(test_prefix_sample);
    RUN(test_first_error_and_fix);
    RUN(test_first_error_early);
    RUN(test_ties_take_the_first);
    RUN(test_no_alternative_good_enough);
    RUN(test_too_hard);
    RUN(test_correct_draft);
    RUN(test_given_draft);
    RUN(test_seeds);
    RUN(test_errors);
    RUN(test_verify);
    RUN(test_gold_path_parse);
    RUN(test_gold_path_fix);
    RUN(test_gold_path_no_rollouts);
    RUN(test_gold_path_no_alternative_and_on_path);
    RUN(test_local_prefix_kv_reuse);
    return harness_summary();
}
