/* test_batch.c: batched decoding (include/sa/batch.h) on real models: sequences decoded in
 * one batch (prompts of different lengths mixed with one-token steps, passes cut at n_tokens)
 * give bitwise the logits they give decoded alone in batch-invariant mode, and the same
 * greedy tokens (away from near-ties) in the default mode; a fork (sa_ctx_copy_prefix)
 * equals a fresh prefill; one bad or cancelled sequence does not stop the others; the
 * scheduler batches the decode calls of several threads without changing their results.
 * SmolLM2-135M Q4_1 (GQA 3) and, where it is cached, Qwen2.5-Coder-0.5B Q4_K_M (GQA 7). */
#include "harness.h"
#include "sa/sa.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct sa_model *g_model;
static int32_t g_vocab;

static const char *cache_path(const char *rel) {
    static char buf[4096];
    const char *dir = getenv("SALIGN_MODELS");
    if (dir && *dir) snprintf(buf, sizeof buf, "%s/%s", dir, rel);
    else snprintf(buf, sizeof buf, "%s/.cache/salign/%s", getenv("HOME") ? getenv("HOME") : ".", rel);
    return buf;
}

static struct sa_ctx *new_ctx(const struct sa_model *m, bool inv, struct sa_sched *sched) {
    struct sa_ctx_params p = sa_ctx_default_params();
    p.n_ctx = 128;
    p.n_batch = 32;
    p.n_threads = 2;
    p.batch_invariant = inv;
    p.sched = sched;
    struct sa_ctx *ctx = NULL;
    CHECK_OK(sa_ctx_init(m, &p, &ctx));
    return ctx;
}

static struct sa_batch *new_batch(const struct sa_model *m, int32_t n_tokens, bool inv) {
    struct sa_batch_params bp = sa_batch_default_params();
    bp.n_tokens = n_tokens;
    bp.n_ctx = 128;
    bp.n_threads = 2;
    bp.batch_invariant = inv;
    struct sa_batch *b = NULL;
    CHECK_OK(sa_batch_init(m, &bp, &b));
    return b;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

#define N_SEQ 3
#define N_STEP 6
static const int32_t PROMPT_LEN[N_SEQ] = {5, 12, 3};

static void prompt(int s, int32_t *out, int32_t V) {
    for (int32_t i = 0; i < PROMPT_LEN[s]; i++) out[i] = (int32_t)((1000 + 37 * s + 101 * i) % V);
}

/* Reference: each sequence alone (prompt, then N_STEP greedy tokens one at a time) in a
 * context of mode inv; logits (N_SEQ, N_STEP + 1, V) and tokens (N_SEQ, N_STEP). */
static void run_alone(const struct sa_model *m, bool inv, float *logits, int32_t *toks) {
    const int32_t V = sa_model_config(m)->n_vocab;
    for (int s = 0; s < N_SEQ; s++) {
        struct sa_ctx *ctx = new_ctx(m, inv, NULL);
        int32_t p[16];
        prompt(s, p, V);
        float *row = logits + (int64_t)s * (N_STEP + 1) * V;
        CHECK_OK(sa_ctx_decode(ctx, p, PROMPT_LEN[s], row));
        for (int t = 0; t < N_STEP; t++) {
            int32_t tok = argmax(row + (int64_t)t * V, V);
            toks[s * N_STEP + t] = tok;
            CHECK_OK(sa_ctx_decode(ctx, &tok, 1, row + (int64_t)(t + 1) * V));
        }
        sa_ctx_free(ctx);
    }
}

/* The same in one batch: all prompts in one call, then one token per sequence per call. */
static void run_batched(const struct sa_model *m, int32_t n_tokens, bool inv, float *logits, int32_t *toks) {
    const int32_t V = sa_model_config(m)->n_vocab;
    struct sa_batch *b = new_batch(m, n_tokens, inv);
    struct sa_ctx *ctx[N_SEQ];
    int32_t p[N_SEQ][16], next[N_SEQ];
    struct sa_batch_seq seqs[N_SEQ];
    for (int s = 0; s < N_SEQ; s++) {
        ctx[s] = new_ctx(m, false, NULL);
        prompt(s, p[s], V);
        seqs[s] = (struct sa_batch_seq){.ctx = ctx[s], .tokens = p[s], .n = PROMPT_LEN[s],
                                        .logits = logits + (int64_t)s * (N_STEP + 1) * V};
    }
    CHECK_OK(sa_batch_decode(b, seqs, N_SEQ));
    for (int t = 0; t < N_STEP; t++) {
        for (int s = 0; s < N_SEQ; s++) {
            float *row = logits + ((int64_t)s * (N_STEP + 1) + t) * V;
            next[s] = argmax(row, V);
            toks[s * N_STEP + t] = next[s];
            seqs[s] = (struct sa_batch_seq){.ctx = ctx[s], .tokens = &next[s], .n = 1, .logits = row + V};
        }
        CHECK_OK(sa_batch_decode(b, seqs, N_SEQ));
    }
    for (int s = 0; s < N_SEQ; s++) {
        CHECK_EQ_INT(sa_ctx_len(ctx[s]), PROMPT_LEN[s] + N_STEP);
        CHECK(!memcmp(sa_ctx_logits(ctx[s]), logits + ((int64_t)s * (N_STEP + 1) + N_STEP) * V, (size_t)V * sizeof(float)));
        sa_ctx_free(ctx[s]);
    }
    sa_batch_free(b);
}

static void check_invariant(const struct sa_model *m) {
    const int32_t V = sa_model_config(m)->n_vocab;
    const size_t n = (size_t)N_SEQ * (N_STEP + 1) * V;
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    int32_t tref[N_SEQ * N_STEP], tgot[N_SEQ * N_STEP];
    run_alone(m, true, ref, tref);
    /* n_tokens 64: every call in one pass; 4: the prompts cut across passes */
    const int32_t sizes[] = {64, 4};
    for (int k = 0; k < 2; k++) {
        run_batched(m, sizes[k], true, got, tgot);
        CHECK_MSG(!memcmp(ref, got, n * sizeof(float)), "n_tokens %d: batched logits differ from alone", sizes[k]);
        CHECK(!memcmp(tref, tgot, sizeof tref));
    }
    free(ref);
    free(got);
}

static void test_batched_equals_alone_invariant(void) { check_invariant(g_model); }

/* Default mode: a batch runs the batched kernels, a lone token the decode kernels: the same
 * greedy tokens wherever the alone run's top-2 margin is not a near-tie, logits close. */
static void test_batched_default_mode(void) {
    const int32_t V = g_vocab;
    const size_t n = (size_t)N_SEQ * (N_STEP + 1) * V;
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    int32_t tref[N_SEQ * N_STEP], tgot[N_SEQ * N_STEP];
    run_alone(g_model, false, ref, tref);
    run_batched(g_model, 64, false, got, tgot);
    for (int s = 0; s < N_SEQ; s++) {
        for (int t = 0; t < N_STEP; t++) {
            const float *r = ref + ((int64_t)s * (N_STEP + 1) + t) * V;
            int32_t a = argmax(r, V);
            float second = -INFINITY;
            for (int32_t v = 0; v < V; v++)
                if (v != a && r[v] > second) second = r[v];
            if (r[a] - second > 1.0f) CHECK_EQ_INT(tgot[s * N_STEP + t], tref[s * N_STEP + t]);
            if (tgot[s * N_STEP + t] != tref[s * N_STEP + t]) break; /* the texts diverged */
            double d = 0;
            const float *g = got + ((int64_t)s * (N_STEP + 1) + t) * V;
            for (int32_t v = 0; v < V; v++) d = fmax(d, fabs((double)r[v] - g[v]));
            CHECK_MSG(d < 2.0, "seq %d step %d: max |logit diff| %.3f", s, t, d);
        }
    }
    free(ref);
    free(got);
}

/* A fork holds the source's prefix and logits; continuing it equals a fresh prefill. */
static void test_fork_equals_fresh(void) {
    const int32_t V = g_vocab;
    int32_t toks[20];
    for (int i = 0; i < 20; i++) toks[i] = (int32_t)((500 + 53 * i) % V);
    struct sa_ctx *src = new_ctx(g_model, true, NULL), *dst = new_ctx(g_model, true, NULL);
    struct sa_ctx *fresh = new_ctx(g_model, true, NULL);
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    CHECK_OK(sa_ctx_decode(src, toks, 16, NULL));
    /* the whole prefix: logits come along */
    CHECK_OK(sa_ctx_copy_prefix(dst, src, 16));
    CHECK_EQ_INT(sa_ctx_len(dst), 16);
    CHECK(sa_ctx_logits(dst) && !memcmp(sa_ctx_logits(dst), sa_ctx_logits(src), (size_t)V * sizeof(float)));
    CHECK(!memcmp(sa_ctx_tokens(dst), toks, 16 * sizeof(int32_t)));
    CHECK_OK(sa_ctx_decode(dst, toks + 16, 4, a));
    CHECK_OK(sa_ctx_decode(fresh, toks, 20, b));
    CHECK(!memcmp(a, b, (size_t)V * sizeof(float)));
    /* a shorter prefix: no logits; the rest decoded equals the source's own */
    CHECK_OK(sa_ctx_copy_prefix(dst, src, 10));
    CHECK(sa_ctx_len(dst) == 10 && sa_ctx_logits(dst) == NULL);
    CHECK_OK(sa_ctx_decode(dst, toks + 10, 6, a));
    CHECK(!memcmp(a, sa_ctx_logits(src), (size_t)V * sizeof(float)));
    /* errors */
    CHECK(sa_ctx_copy_prefix(dst, src, 17) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_ctx_copy_prefix(dst, src, -1) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_ctx_copy_prefix(NULL, src, 1) == SA_STATUS_BAD_ARGUMENT);
    free(a);
    free(b);
    sa_ctx_free(src);
    sa_ctx_free(dst);
    sa_ctx_free(fresh);
}

static bool abort_always(void *user) {
    (void)user;
    return true;
}

/* A bad sequence (token out of range, context full) or a cancelled one gets its status and
 * keeps its context; the others are decoded as if alone. */
static void test_bad_sequence_isolated(void) {
    const int32_t V = g_vocab;
    struct sa_batch *b = new_batch(g_model, 64, true);
    struct sa_ctx *good = new_ctx(g_model, true, NULL), *bad = new_ctx(g_model, true, NULL);
    struct sa_ctx *ref = new_ctx(g_model, true, NULL);
    int32_t p[5] = {10, 20, 30, 40, 50}, badp[2] = {1, V + 7};
    float *l = malloc((size_t)V * sizeof(float)), *r = malloc((size_t)V * sizeof(float));
    CHECK_OK(sa_ctx_decode(bad, p, 3, NULL));
    struct sa_batch_seq seqs[2] = {{.ctx = bad, .tokens = badp, .n = 2}, {.ctx = good, .tokens = p, .n = 5, .logits = l}};
    CHECK(sa_batch_decode(b, seqs, 2) == SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "out of range") != NULL);
    CHECK(seqs[0].status == SA_STATUS_BAD_ARGUMENT && seqs[1].status == SA_STATUS_OK);
    CHECK_EQ_INT(sa_ctx_len(bad), 3);
    CHECK_OK(sa_ctx_decode(ref, p, 5, r));
    CHECK(!memcmp(l, r, (size_t)V * sizeof(float)));
    /* the same context twice, too many tokens for n_ctx, nothing */
    struct sa_batch_seq twice[2] = {{.ctx = good, .tokens = p, .n = 1}, {.ctx = good, .tokens = p, .n = 1}};
    CHECK(sa_batch_decode(b, twice, 2) == SA_STATUS_BAD_ARGUMENT);
    int32_t *many = calloc(200, sizeof(int32_t));
    struct sa_batch_seq full = {.ctx = good, .tokens = many, .n = 200};
    CHECK(sa_batch_decode(b, &full, 1) == SA_STATUS_BAD_ARGUMENT && sa_ctx_len(good) == 5);
    CHECK(sa_batch_decode(b, NULL, 0) == SA_STATUS_BAD_ARGUMENT);
    /* a cancelled sequence: its context unchanged, the other decoded */
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 1;
    cp.abort_cb = abort_always;
    struct sa_ctx *cancel = NULL;
    CHECK_OK(sa_ctx_init(g_model, &cp, &cancel));
    int32_t one = 60;
    struct sa_batch_seq two[2] = {{.ctx = cancel, .tokens = p, .n = 5}, {.ctx = good, .tokens = &one, .n = 1, .logits = l}};
    CHECK(sa_batch_decode(b, two, 2) == SA_STATUS_CANCELLED);
    CHECK(two[0].status == SA_STATUS_CANCELLED && two[1].status == SA_STATUS_OK);
    CHECK(sa_ctx_len(cancel) == 0 && sa_ctx_len(good) == 6);
    CHECK_OK(sa_ctx_decode(ref, &one, 1, r));
    CHECK(!memcmp(l, r, (size_t)V * sizeof(float)));
    free(many);
    free(l);
    free(r);
    sa_ctx_free(cancel);
    sa_ctx_free(good);
    sa_ctx_free(bad);
    sa_ctx_free(ref);
    sa_batch_free(b);
}

/* ---- the scheduler: threads each decoding greedily through it ---- */

struct worker {
    struct sa_sched *sched;
    int s;
    int32_t toks[N_STEP];
    enum sa_status st;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    const int32_t V = g_vocab;
    struct sa_ctx *ctx = new_ctx(g_model, true, w->sched);
    int32_t p[16];
    prompt(w->s, p, V);
    sa_sched_enter(w->sched);
    w->st = sa_ctx_decode(ctx, p, PROMPT_LEN[w->s], NULL);
    for (int t = 0; t < N_STEP && !w->st; t++) {
        int32_t tok = argmax(sa_ctx_logits(ctx), V);
        w->toks[t] = tok;
        /* eval_prompt goes through the scheduler too */
        if (t == 2) {
            int32_t all[32];
            memcpy(all, sa_ctx_tokens(ctx), (size_t)sa_ctx_len(ctx) * sizeof(int32_t));
            all[sa_ctx_len(ctx)] = tok;
            w->st = sa_ctx_eval_prompt(ctx, all, sa_ctx_len(ctx) + 1, NULL, NULL);
        } else {
            w->st = sa_ctx_decode(ctx, &tok, 1, NULL);
        }
    }
    sa_sched_leave(w->sched);
    sa_ctx_free(ctx);
    return NULL;
}

static void test_sched_threads(void) {
    const size_t n = (size_t)N_SEQ * (N_STEP + 1) * g_vocab;
    float *ref = malloc(n * sizeof(float));
    int32_t tref[N_SEQ * N_STEP];
    run_alone(g_model, true, ref, tref);
    struct sa_sched_params sp = sa_sched_default_params();
    sp.n_threads = 2;
    sp.n_ctx = 128;
    sp.batch_invariant = true;
    sp.max_wait_us = 2000000; /* batching must come from the all-waiting rule, not the timer */
    struct sa_sched *sched = NULL;
    CHECK_OK(sa_sched_init(&sp, &sched));
    struct worker w[N_SEQ];
    pthread_t th[N_SEQ];
    for (int s = 0; s < N_SEQ; s++) {
        w[s] = (struct worker){.sched = sched, .s = s};
        CHECK(pthread_create(&th[s], NULL, worker_main, &w[s]) == 0);
    }
    for (int s = 0; s < N_SEQ; s++) pthread_join(th[s], NULL);
    for (int s = 0; s < N_SEQ; s++) {
        CHECK_OK(w[s].st);
        CHECK_MSG(!memcmp(w[s].toks, tref + s * N_STEP, sizeof w[s].toks), "thread %d: tokens differ from alone", s);
    }
    struct sa_sched_stats st;
    sa_sched_get_stats(sched, &st);
    CHECK_EQ_INT(st.n_calls, N_SEQ * (N_STEP + 1));
    CHECK_MSG(st.n_passes < st.n_calls, "no batching: %lld passes for %lld calls", (long long)st.n_passes,
              (long long)st.n_calls);
    /* a thread that never entered runs at once (no wait for others) */
    struct sa_ctx *ctx = new_ctx(g_model, true, sched);
    int32_t p[3] = {1, 2, 3};
    CHECK_OK(sa_ctx_decode(ctx, p, 3, NULL));
    int32_t big = g_vocab + 1;
    CHECK(sa_ctx_decode(ctx, &big, 1, NULL) == SA_STATUS_BAD_ARGUMENT && sa_ctx_len(ctx) == 3);
    sa_ctx_free(ctx);
    sa_sched_free(sched);
    free(ref);
}

/* Qwen2.5-Coder-0.5B (GQA 7, Q4_K/Q6_K): bitwise batch = alone, in batch-invariant mode. */
static void test_qwen_invariant(void) {
    const char *path = cache_path("qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    FILE *f = fopen(path, "rb");
    if (!f) {
        harness_skip("%s not cached", path);
        return;
    }
    fclose(f);
    struct sa_model_params mp = sa_model_default_params();
    mp.n_threads = 2;
    struct sa_model *m = NULL;
    CHECK_OK(sa_model_load(path, &mp, &m));
    if (m) check_invariant(m);
    sa_model_free(m);
}

int main(void) {
    struct sa_model_params mp = sa_model_default_params();
    mp.n_threads = 2;
    if (sa_model_load(cache_path("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"), &mp, &g_model)) {
        fprintf(stderr, "cannot load SmolLM2: %s (run scripts/setup.sh)\n", sa_last_error());
        return 1;
    }
    g_vocab = sa_model_config(g_model)->n_vocab;
    RUN(test_batched_equals_alone_invariant);
    RUN(test_batched_default_mode);
    RUN(test_fork_equals_fresh);
    RUN(test_bad_sequence_isolated);
    RUN(test_sched_threads);
    RUN(test_qwen_invariant);
    sa_model_free(g_model);
    return harness_summary();
}
