/* test_speculative.c: copy-speculation for the aligner (src/pipeline/speculative.c) on
 * SmolLM2-135M-Instruct standing in for the aligner: the aligner template in the model's
 * chat template over sentence records built from GSM8K test problems, drafts = y1's tokens
 * (every other case with a token-level corruption so that the model leaves the draft).
 * Greedy: speculation gives exactly plain greedy decoding's tokens (decoded one at a time on
 * a subset, teacher-forced on all, after a bit-for-bit batch-invariance check), also with
 * the model's own output as the draft; the end-of-generation
 * token inside the draft, max_tokens, a full context and bad arguments; sampling: the
 * first tokens' distribution equals plain sampling (chi-square against the exact
 * distribution), and temperature -> 0 gives the greedy tokens.
 * SA_SPEC_BENCH=1 also times plain decoding with the engine's default kernels (the numbers
 * of docs/internals/speculation.md). */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "model/context_impl.h"
#include "pipeline/speculative_impl.h"
#include "core/core_impl.h"
#include "sa/records.h"
#include "sa/sa.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define N_CASES 4 /* under ASan a subset (10 cases took 355-466 s there on 2 cores); `make test` runs all 50 */
#else
#define N_CASES 50
#endif
#define MAX_GEN 24

static struct sa_model *g_model;
static const struct sa_tokenizer *g_tok;
static int32_t g_vocab;
static struct sa_ctx *g_ctx;

struct tcase {
    int32_t *prompt; /* (n_prompt) chat-rendered aligner input */
    size_t n_prompt;
    int32_t *draft;  /* (n_draft) y1's tokens, maybe corrupted */
    int32_t n_draft;
    struct sa_ivec plain; /* the greedy output (checked against plain decoding) */
    bool plain_eog;
};
static struct tcase g_cases[N_CASES];
static int g_n_cases;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *model_path(void) {
    static char buf[4096];
    const char *dir = getenv("SALIGN_MODELS");
    if (dir && *dir) snprintf(buf, sizeof buf, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
    else snprintf(buf, sizeof buf, "%s/.cache/salign/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
                  getenv("HOME") ? getenv("HOME") : ".");
    return buf;
}

/* Puts the context at "prompt decoded, logits of its last token", the same bits every time
 * for a case: the cached prefix shared with the prompt is kept (never recomputed, so that
 * its bits do not depend on what ran before), the rest of the first n - 1 tokens decoded in
 * one batch, and the last token alone. */
static bool reset_to_prompt(const struct tcase *c) {
    const int32_t n = (int32_t)c->n_prompt, len = sa_ctx_len(g_ctx);
    const int32_t *cached = sa_ctx_tokens(g_ctx);
    int32_t k = 0;
    while (k < len && k < n - 1 && cached[k] == c->prompt[k]) k++;
    if (sa_ctx_truncate(g_ctx, k)) return false;
    if (k < n - 1 && sa_ctx_decode(g_ctx, c->prompt + k, n - 1 - k, NULL)) return false;
    return sa_ctx_decode(g_ctx, c->prompt + n - 1, 1, NULL) == SA_STATUS_OK;
}

static double g_run_s; /* seconds the last run() spent in sa_spec_generate (the prompt not counted) */

static enum sa_status run(const struct tcase *c, const struct sa_spec_params *p, struct sa_ivec *out,
                          struct sa_spec_stats *st) {
    out->len = 0;
    if (!reset_to_prompt(c)) return SA_STATUS_BAD_ARGUMENT;
    const double t0 = now_s();
    enum sa_status s = sa_spec_generate(g_ctx, c->draft, c->n_draft, p, out, st);
    g_run_s = now_s() - t0;
    return s;
}

static bool ivec_eq(const struct sa_ivec *a, const struct sa_ivec *b) {
    return a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len * sizeof(int32_t)));
}

static int32_t *tokenize(const char *text, bool special, size_t *n) {
    int32_t *ids = NULL;
    struct sa_tokenize_opts o = {.add_special = false, .parse_special = special};
    if (sa_tokenize(g_tok, text, strlen(text), o, &ids, n)) return NULL;
    return ids;
}

/* A token-level edit of the draft, as the aligner's local corrections look from the
 * draft's side: a substitution, a deletion, an insertion, or a 3-token span replaced. */
static void corrupt(int32_t *d, int32_t *n, int kind) {
    if (*n < 6) return;
    const int32_t at = *n / 2, filler = sa_tokenizer_find(g_tok, "Ġbanana") >= 0 ? sa_tokenizer_find(g_tok, "Ġbanana") : 1000;
    switch (kind % 4) {
    case 0: d[at] = filler; break;
    case 1: memmove(d + at, d + at + 1, (size_t)(*n - at - 1) * sizeof(int32_t)), (*n)--; break;
    case 2: memmove(d + at + 1, d + at, (size_t)(*n - at) * sizeof(int32_t)), d[at] = filler, (*n)++; break;
    default: d[at - 1] = filler, d[at] = filler + 1, d[at + 1] = filler + 2; break;
    }
}

static void test_setup(void) {
    struct sa_model_params mp = sa_model_default_params();
    mp.n_threads = 2;
    CHECK_OK(sa_model_load(model_path(), &mp, &g_model));
    if (!g_model) return;
    g_tok = sa_model_tokenizer(g_model);
    g_vocab = sa_model_n_vocab(g_model);
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = 2;
    CHECK_OK(sa_ctx_init(g_model, &cp, &g_ctx));

    /* sentence records from the first GSM8K test problems, half of them rewrites */
    FILE *f = OPEN_SHARED("gsm8k/test.jsonl");
    if (!f) return;
    char *text = calloc(1, 1 << 16);
    size_t len = 0;
    for (int line = 0; line < 24 && fgets(text + len, (int)((1 << 16) - len), f); line++) len += strlen(text + len);
    fclose(f);
    struct sa_records recs;
    sa_records_init(&recs);
    struct sa_gsm8k_params gp = sa_gsm8k_default_params();
    gp.seed = 5;
    CHECK_OK(sa_gsm8k_to_records(text, len, "gsm8k/test.jsonl", &gp, &recs, NULL));
    free(text);
    CHECK_MSG(recs.n >= N_CASES, "only %zu records", recs.n);

    const char *tmpl = sa_model_chat_template(g_model);
    /* a system message and two worked examples (shared by every prompt: cached once) make
     * the 135M model behave like an aligner: copy a right sentence, fix a wrong one */
    const char *sys = "You revise the last sentence of an answer. Reply with the revised sentence only. "
                      "If it is already correct, repeat it exactly.";
    char *shot1 = NULL, *shot2 = NULL;
    CHECK_OK(sa_aligner_input("Tom has 3 apples and buys 5 more. How many apples does he have?", "",
                              "Tom has 3+5 = 8 apples.", &shot1));
    CHECK_OK(sa_aligner_input("A pen costs $2. How much do 4 pens cost?", "", "4 pens cost 4*2 = $6.", &shot2));
    for (size_t i = 0; shot1 && shot2 && i < recs.n && g_n_cases < N_CASES; i++) {
        const struct sa_record *r = &recs.items[i];
        char *input = NULL, *chat = NULL;
        CHECK_OK(sa_aligner_input(r->question, r->prefix, r->last, &input));
        struct sa_chat_msg msgs[6] = {{"system", sys},
                                      {"user", shot1},
                                      {"assistant", "Tom has 3+5 = 8 apples."},
                                      {"user", shot2},
                                      {"assistant", "4 pens cost 4*2 = $8."},
                                      {"user", input}};
        CHECK_OK(sa_chat_render(SA_CHAT_FORMAT_CHATML, tmpl, msgs, 6, true, NULL, &chat, NULL));
        struct tcase *c = &g_cases[g_n_cases];
        c->prompt = chat ? tokenize(chat, true, &c->n_prompt) : NULL;
        size_t nd = 0;
        int32_t *d = tokenize(r->last, false, &nd);
        free(input);
        free(chat);
        if (!c->prompt || !d) {
            CHECK(false);
            return;
        }
        c->draft = malloc((nd + 2) * sizeof(int32_t));
        memcpy(c->draft, d, nd * sizeof(int32_t));
        c->n_draft = (int32_t)nd;
        free(d);
        if (g_n_cases % 2) corrupt(c->draft, &c->n_draft, g_n_cases / 2);
        g_n_cases++;
    }
    free(shot1);
    free(shot2);
    sa_records_free(&recs);
    CHECK_EQ_INT(g_n_cases, N_CASES);
}

/* Bitwise batch invariance of the engine in the mode the call turns on (what makes the
 * teacher-forced check below equivalent to plain decoding): 8 tokens after a prompt in one
 * pass and one at a time give the same logits, bit for bit, in calls that ask for the
 * batch-invariant kernels (sa_ctx_decode_with) on a context whose own mode is the default. */
static void test_batch_invariance(void) {
    if (!g_ctx || g_n_cases < 8) return;
    const struct tcase *c = &g_cases[1];
    float *a = malloc((size_t)8 * g_vocab * sizeof(float)), *b = malloc((size_t)8 * g_vocab * sizeof(float));
    const int32_t n = c->n_draft < 8 ? c->n_draft : 8;
    CHECK(reset_to_prompt(c));
    CHECK_OK(sa_ctx_decode_with(g_ctx, c->draft, n, a, NULL, true));
    CHECK_OK(sa_ctx_truncate(g_ctx, (int32_t)c->n_prompt));
    for (int32_t i = 0; i < n; i++) CHECK_OK(sa_ctx_decode_with(g_ctx, c->draft + i, 1, NULL, b + (size_t)i * g_vocab, true));
    CHECK_MSG(!memcmp(a, b, (size_t)n * g_vocab * sizeof(float)), "batched and one-at-a-time logits differ");
    free(a);
    free(b);
}

/* Plain greedy decoding's verdict on a candidate output, teacher-forced: from the prompt's
 * logits, each token of `out` must be the argmax of the logits before it, and the argmax
 * after the last one the EOG token when the call stopped there. The logits of the whole
 * output come from one pass; with bitwise batch invariance (test_batch_invariance) they are
 * the bits that one-token-at-a-time plain decoding computes, so this is plain decoding's
 * output, exactly, at the cost of one pass. */
static bool plain_greedy_agrees(const struct tcase *c, const struct sa_ivec *out, bool eog, float *rows) {
    if (!reset_to_prompt(c)) return false;
    int32_t first = 0;
    const float *l0 = sa_ctx_logits(g_ctx);
    for (int32_t v = 1; v < g_vocab; v++)
        if (l0[v] > l0[first]) first = v;
    if (out->len == 0) return eog && sa_tokenizer_is_eog(g_tok, first);
    if (first != out->data[0]) return false;
    const enum sa_status s = sa_ctx_decode_with(g_ctx, out->data, (int32_t)out->len, rows, NULL, true);
    if (s) return false;
    for (size_t j = 0; j < out->len; j++) {
        const float *r = rows + j * (size_t)g_vocab;
        int32_t best = 0;
        for (int32_t v = 1; v < g_vocab; v++)
            if (r[v] > r[best]) best = v;
        if (j + 1 < out->len ? best != out->data[j + 1] : eog && !sa_tokenizer_is_eog(g_tok, best)) return false;
    }
    return eog || out->len == MAX_GEN; /* without the EOG only max_tokens stops plain decoding */
}

/* The main claim: on every case, speculation (greedy) gives plain greedy decoding's tokens
 * (teacher-forced on all cases; decoded one token at a time on every 10th, and on all with
 * SA_SPEC_BENCH=1), and the cache ends holding the prompt and the generated tokens. */
static void test_greedy_equivalence(void) {
    if (!g_ctx || g_n_cases < 8) return;
    const bool bench = getenv("SA_SPEC_BENCH") && *getenv("SA_SPEC_BENCH") == '1';
    struct sa_spec_params p = sa_spec_default_params();
    p.max_tokens = MAX_GEN;
    struct sa_ivec out = {0};
    struct sa_spec_stats st, tot_spec = {0}, tot_plain = {0};
    float *rows = malloc((size_t)MAX_GEN * g_vocab * sizeof(float));
    double t_spec = 0, t_plain = 0, t_spec_sub = 0, t_fast = 0;
    int n_fast_diff = 0, n_same = 0, n_forced = 0, n_plain = 0, n_copy = 0, n_eog = 0;
    for (int i = 0; i < g_n_cases; i++) {
        struct tcase *c = &g_cases[i];
        p.use_draft = true;
        CHECK_OK(run(c, &p, &out, &st));
        const double dt = g_run_s;
        t_spec += dt;
        tot_spec.n_generated += st.n_generated, tot_spec.n_forward += st.n_forward;
        tot_spec.n_draft += st.n_draft, tot_spec.n_accepted += st.n_accepted;
        const int32_t len = sa_ctx_len(g_ctx), want = (int32_t)(c->n_prompt + out.len);
        CHECK_MSG(len == want || (!st.hit_eog && len == want - 1), "case %d: cache %d, prompt+generated %d", i, len, want);
        CHECK(!memcmp(sa_ctx_tokens(g_ctx) + c->n_prompt, out.data, (size_t)(len - (int32_t)c->n_prompt) * 4));
        CHECK(st.n_accepted <= st.n_draft && st.n_forward <= st.n_generated + 1 && st.n_generated == (int)out.len);
        n_eog += st.hit_eog;
        n_copy += out.len == (size_t)c->n_draft && !memcmp(out.data, c->draft, (size_t)c->n_draft * 4);
        c->plain.len = 0;
        for (size_t j = 0; j < out.len; j++) CHECK_OK(sa_ivec_push(&c->plain, out.data[j]));
        c->plain_eog = st.hit_eog;

        const bool forced = plain_greedy_agrees(c, &out, st.hit_eog, rows);
        CHECK_MSG(forced, "case %d: plain greedy decoding disagrees with the %zu speculated tokens", i, out.len);
        n_forced += forced;
        if (bench || i % 10 == 0) {
            struct sa_ivec plain = {0};
            struct sa_spec_stats sp;
            p.use_draft = false;
            CHECK_OK(run(c, &p, &plain, &sp));
            t_plain += g_run_s;
            t_spec_sub += dt;
            tot_plain.n_generated += sp.n_generated, tot_plain.n_forward += sp.n_forward;
            CHECK_EQ_INT(sp.n_draft, 0);
            const bool same = ivec_eq(&out, &plain) && st.hit_eog == sp.hit_eog;
            CHECK_MSG(same, "case %d: speculation gave %zu tokens, plain %zu (eog %d vs %d)", i, out.len, plain.len,
                      st.hit_eog, sp.hit_eog);
            n_plain++;
            n_same += same;
            if (bench) { /* the fastest plain decoding, interleaved so that the machine's load hits all alike */
                p.fast_kernels = true;
                CHECK_OK(run(c, &p, &plain, &sp));
                t_fast += g_run_s;
                n_fast_diff += !ivec_eq(&out, &plain);
                p.fast_kernels = false;
            }
            sa_ivec_free(&plain);
        }
        if (getenv("SA_SPEC_VERBOSE")) {
            char buf[64];
            printf("  case %2d: draft %2d, out %2zu%s, accepted %2d of %2d, passes %2d: ", i, c->n_draft, out.len,
                   st.hit_eog ? "+eog" : "", st.n_accepted, st.n_draft, st.n_forward);
            for (size_t j = 0; j < out.len; j++) {
                size_t nb = sa_token_to_piece(g_tok, out.data[j], false, buf, sizeof buf - 1);
                if (nb < sizeof buf) printf("%.*s", (int)nb, buf);
            }
            printf("\n");
        }
    }
    printf("  %d cases: plain greedy agrees (teacher-forced) on %d; decoded plainly %d, identical %d; the model "
           "copied its draft %d times, stopped at EOG %d times\n",
           g_n_cases, n_forced, n_plain, n_same, n_copy, n_eog);
    printf("  speculation: %d tokens in %d forward passes (%.2f s); proposals %d, accepted %d (%.0f%%)\n",
           tot_spec.n_generated, tot_spec.n_forward, t_spec, tot_spec.n_draft, tot_spec.n_accepted,
           100.0 * tot_spec.n_accepted / (tot_spec.n_draft ? tot_spec.n_draft : 1));
    printf("  on the %d plainly decoded cases: plain %d passes %.2f s, speculation %.2f s (x%.2f)\n", n_plain,
           tot_plain.n_forward, t_plain, t_spec_sub, t_plain / (t_spec_sub > 0 ? t_spec_sub : 1));
    CHECK(tot_spec.n_forward < tot_spec.n_generated);
    sa_ivec_free(&out);
    free(rows);

    /* an aligner that copies: drafts = the model's own output (a trained aligner's y2 equals
     * y1 in most rounds), every other one with a local edit; the same exactness */
    struct sa_spec_stats tot_copy = {0};
    double t_copy = 0, t_copy_fast = 0;
    int n_copy_cases = 0;
    p.use_draft = true;
    for (int i = 0; i < g_n_cases; i += bench ? 1 : 5) {
        struct tcase e = g_cases[i];
        e.draft = malloc((e.plain.len + 2) * sizeof(int32_t));
        if (e.plain.len) memcpy(e.draft, e.plain.data, e.plain.len * sizeof(int32_t));
        e.n_draft = (int32_t)e.plain.len;
        if ((i / (bench ? 1 : 5)) % 2) corrupt(e.draft, &e.n_draft, i);
        CHECK_OK(run(&e, &p, &out, &st));
        CHECK_MSG(ivec_eq(&out, &e.plain) && st.hit_eog == e.plain_eog, "case %d with its own output as the draft", i);
        t_copy += g_run_s;
        tot_copy.n_generated += st.n_generated, tot_copy.n_forward += st.n_forward;
        tot_copy.n_draft += st.n_draft, tot_copy.n_accepted += st.n_accepted;
        n_copy_cases++;
        if (bench) {
            p.use_draft = false;
            p.fast_kernels = true;
            CHECK_OK(run(&e, &p, &out, &st));
            t_copy_fast += g_run_s;
            p.use_draft = true;
            p.fast_kernels = false;
        }
        free(e.draft);
    }
    printf("  copying drafts (%d cases, half edited): %d tokens in %d passes (%.2f s); proposals %d, accepted %d (%.0f%%)\n",
           n_copy_cases, tot_copy.n_generated, tot_copy.n_forward, t_copy, tot_copy.n_draft, tot_copy.n_accepted,
           100.0 * tot_copy.n_accepted / (tot_copy.n_draft ? tot_copy.n_draft : 1));
    sa_ivec_free(&out);
    if (bench)
        printf("  bench, copying drafts: plain decoding with the default kernels %.2f s, speculation x%.2f\n", t_copy_fast,
               t_copy_fast / (t_copy > 0 ? t_copy : 1));
    if (bench)
        printf("  bench: plain decoding with the engine's default kernels %.2f s (speculation x%.2f on all %d cases); "
               "its outputs differ from the batch-invariant ones in %d cases\n",
               t_fast, t_fast / (t_spec > 0 ? t_spec : 1), g_n_cases, n_fast_diff);
}

/* max_draft, max_tokens exactly, the EOG token inside the draft. */
static void test_limits_and_eog(void) {
    if (!g_ctx || g_n_cases < 8) return;
    struct sa_ivec out = {0};
    struct sa_spec_stats st;
    struct sa_spec_params p = sa_spec_default_params();
    p.max_tokens = MAX_GEN;
    /* small passes: the same tokens */
    for (int i = 0; i < 3; i++) {
        p.max_draft = 1 + i;
        CHECK_OK(run(&g_cases[i], &p, &out, &st));
        CHECK_MSG(ivec_eq(&out, &g_cases[i].plain), "case %d, max_draft %d", i, p.max_draft);
    }
    p.max_draft = 0;
    /* max_tokens: a prefix of the plain output, exactly that long */
    const struct tcase *c = NULL;
    for (int i = 0; i < g_n_cases && !c; i++)
        if (g_cases[i].plain.len >= 8) c = &g_cases[i];
    CHECK(c != NULL);
    if (!c) return;
    const int32_t ms[] = {1, 2, 3, 5, 8};
    for (size_t k = 0; k < SA_ARRAY_LEN(ms); k++) {
        p.max_tokens = ms[k];
        CHECK_OK(run(c, &p, &out, &st));
        CHECK_EQ_INT(out.len, ms[k]);
        CHECK_EQ_INT(st.n_generated, ms[k]);
        CHECK(!st.hit_eog);
        CHECK(!memcmp(out.data, c->plain.data, out.len * 4));
        const int32_t len = sa_ctx_len(g_ctx) - (int32_t)c->n_prompt;
        CHECK(len == ms[k] || len == ms[k] - 1);
    }
    /* EOG in the draft: a case that stops at EOG; draft = its output + EOG + junk */
    const int32_t eot = sa_tokenizer_eot(g_tok) >= 0 ? sa_tokenizer_eot(g_tok) : sa_tokenizer_eos(g_tok);
    CHECK(sa_tokenizer_is_eog(g_tok, eot));
    c = NULL;
    for (int i = 0; i < g_n_cases && !c; i++)
        if (g_cases[i].plain_eog && g_cases[i].plain.len >= 3) c = &g_cases[i];
    CHECK(c != NULL);
    if (!c) return;
    struct tcase e = *c;
    e.n_draft = (int32_t)c->plain.len + 4;
    e.draft = malloc((size_t)e.n_draft * sizeof(int32_t));
    memcpy(e.draft, c->plain.data, c->plain.len * 4);
    e.draft[c->plain.len] = eot;
    for (int j = 1; j < 4; j++) e.draft[c->plain.len + j] = 300 + j;
    p.max_tokens = MAX_GEN;
    CHECK_OK(run(&e, &p, &out, &st));
    CHECK(ivec_eq(&out, &c->plain) && st.hit_eog);
    CHECK_EQ_INT(st.n_forward, 1);                          /* one pass verified all of it */
    CHECK_EQ_INT(st.n_accepted, (int)c->plain.len + 1);     /* the EOG included */
    CHECK_EQ_INT(sa_ctx_len(g_ctx), (int32_t)(c->n_prompt + out.len)); /* EOG and junk rolled back */
    /* max_tokens equal to the copy's length: stops there without the EOG */
    p.max_tokens = (int32_t)c->plain.len;
    CHECK_OK(run(&e, &p, &out, &st));
    CHECK(ivec_eq(&out, &c->plain) && !st.hit_eog);
    free(e.draft);
    sa_ivec_free(&out);
}

/* A context that fills up: the same tokens and the same error as plain decoding. */
static void test_context_full(void) {
    if (!g_model || g_n_cases < 8) return;
    const struct tcase *c = NULL;
    for (int i = 0; i < g_n_cases && !c; i++)
        if (g_cases[i].plain.len >= 10) c = &g_cases[i];
    if (!c) return;
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = (int32_t)c->n_prompt + 6;
    cp.n_threads = 2;
    struct sa_ctx *ctx = NULL;
    CHECK_OK(sa_ctx_init(g_model, &cp, &ctx));
    if (!ctx) return;
    struct sa_spec_params p = sa_spec_default_params();
    p.max_tokens = MAX_GEN;
    struct sa_ivec a = {0}, b = {0};
    /* both runs start from the same bits: the prompt's last token decoded alone */
    CHECK_OK(sa_ctx_decode(ctx, c->prompt, (int32_t)c->n_prompt - 1, NULL));
    CHECK_OK(sa_ctx_decode(ctx, c->prompt + c->n_prompt - 1, 1, NULL));
    p.use_draft = false;
    CHECK_EQ_INT(sa_spec_generate(ctx, c->draft, c->n_draft, &p, &a, NULL), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "context full") != NULL);
    CHECK_OK(sa_ctx_truncate(ctx, (int32_t)c->n_prompt - 1));
    CHECK_OK(sa_ctx_decode(ctx, c->prompt + c->n_prompt - 1, 1, NULL));
    p.use_draft = true;
    CHECK_EQ_INT(sa_spec_generate(ctx, c->draft, c->n_draft, &p, &b, NULL), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(a.len, 7); /* 6 decoded into the free rows, the 7th sampled but with no room */
    CHECK(ivec_eq(&a, &b));
    sa_ivec_free(&a);
    sa_ivec_free(&b);
    sa_ctx_free(ctx);
}

static void test_bad_arguments(void) {
    if (!g_model || g_n_cases < 1) return;
    struct sa_spec_params p = sa_spec_default_params();
    struct sa_ivec out = {0};
    struct sa_ctx *fresh = NULL;
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    CHECK_OK(sa_ctx_init(g_model, &cp, &fresh));
    CHECK_EQ_INT(sa_spec_generate(fresh, NULL, 0, &p, &out, NULL), SA_STATUS_BAD_ARGUMENT); /* no logits */
    CHECK(strstr(sa_last_error(), "decode the prompt") != NULL);
    int32_t t = 1;
    CHECK_OK(sa_ctx_decode(fresh, &t, 1, NULL));
    CHECK_EQ_INT(sa_spec_generate(NULL, NULL, 0, &p, &out, NULL), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_spec_generate(fresh, NULL, 0, NULL, &out, NULL), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_spec_generate(fresh, NULL, 3, &p, &out, NULL), SA_STATUS_BAD_ARGUMENT);
    int32_t bad[2] = {5, g_vocab};
    CHECK_EQ_INT(sa_spec_generate(fresh, bad, 2, &p, &out, NULL), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "out of range") != NULL);
    p.max_tokens = 0;
    CHECK_EQ_INT(sa_spec_generate(fresh, NULL, 0, &p, &out, NULL), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(out.len, 0);
    CHECK_EQ_INT(sa_ctx_len(fresh), 1);
    sa_ctx_free(fresh);
}

/* A sampler with temperature 0 and one with temperature -> 0 give the greedy tokens. */
static void test_sampling_to_greedy(void) {
    if (!g_ctx || g_n_cases < 8) return;
    const float temps[] = {0.0f, 1e-4f};
    struct sa_ivec out = {0};
    struct sa_spec_stats st;
    for (size_t k = 0; k < SA_ARRAY_LEN(temps); k++) {
        struct sa_sampler_params sp = sa_sampler_default_params();
        sp.temp = temps[k];
        sp.seed = 7;
        struct sa_sampler *smp = NULL;
        CHECK_OK(sa_sampler_init(&sp, g_vocab, &smp));
        struct sa_spec_params p = sa_spec_default_params();
        p.max_tokens = MAX_GEN;
        p.sampler = smp;
        for (int i = 0; i < 5; i++) {
            const struct tcase *c = &g_cases[i * 7 % g_n_cases];
            CHECK_OK(run(c, &p, &out, &st));
            CHECK_MSG(ivec_eq(&out, &c->plain) && st.hit_eog == c->plain_eog, "temp %g, case %d", temps[k], i * 7 % g_n_cases);
        }
        sa_sampler_free(smp);
    }
    sa_ivec_free(&out);
}

/* Pearson's chi-square of counts against expected counts; bins with an expectation under
 * 5 are pooled. *df receives the degrees of freedom. */
static double chi_square(const double *expect, const int *count, int n, int *df) {
    double chi = 0, pool_e = 0;
    int pool_c = 0, bins = 0;
    for (int i = 0; i < n; i++) {
        if (expect[i] < 5) {
            pool_e += expect[i], pool_c += count[i];
            continue;
        }
        chi += (count[i] - expect[i]) * (count[i] - expect[i]) / expect[i];
        bins++;
    }
    if (pool_e > 0) {
        chi += (pool_c - pool_e) * (pool_c - pool_e) / (pool_e > 1e-9 ? pool_e : 1e-9);
        bins++;
    }
    *df = bins - 1;
    return chi;
}
/* A loose bound: the 1 - 1e-6 quantile is below df + 7 sqrt(2 df) + 25 for df <= 100. */
static double chi_bound(int df) { return df + 7.0 * sqrt(2.0 * df) + 25.0; }

#define MAX_CAND 64
/* Sampling: the first token's distribution (3000 draws) and the joint distribution of the
 * first two (80 draws, each verifying [y1, draft[1]] in one batched pass) with
 * speculation match the exact distribution of plain sampling. */
static void test_sampling_distribution(void) {
    if (!g_ctx || g_n_cases < 8) return;
    const struct tcase *c = &g_cases[0];
    struct sa_sampler_params sp = sa_sampler_default_params(); /* temp 0.8, top-k 40, top-p 0.95, min-p 0.05 */
    sp.temp = 1.5f;
    sp.seed = 11;
    struct sa_sampler *smp = NULL;
    CHECK_OK(sa_sampler_init(&sp, g_vocab, &smp));
    if (!smp || !reset_to_prompt(c)) return;
    /* the exact p(y1) under the chain */
    CHECK_OK(sa_sampler_apply(smp, sa_ctx_logits(g_ctx), g_vocab));
    const int32_t *ids;
    const float *probs;
    size_t n1 = sa_sampler_probs(smp, &ids, &probs);
    CHECK(n1 >= 3 && n1 <= MAX_CAND);
    if (n1 < 3 || n1 > MAX_CAND) return;
    int32_t id1[MAX_CAND];
    double p1[MAX_CAND];
    for (size_t i = 0; i < n1; i++) id1[i] = ids[i], p1[i] = probs[i];
    /* the draft proposes the second likeliest token, so both branches of the rule run */
    size_t first = 0, second = 1;
    for (size_t i = 0; i < n1; i++)
        if (p1[i] > p1[first]) first = i;
    second = first == 0 ? 1 : 0;
    for (size_t i = 0; i < n1; i++)
        if (i != first && p1[i] > p1[second]) second = i;
    printf("  p(y1): %zu candidates, draft token p = %.3f, top p = %.3f\n", n1, p1[second], p1[first]);

    struct tcase d = *c;
    int32_t draft[2] = {id1[second], 0};
    d.draft = draft;
    d.n_draft = 2;
    /* draft[1]: the greedy token after draft[0]; the exact p(y2 | y1) for every y1
     * (invariant kernels: the bits the call computes) */
    static float logits_y1[MAX_CAND][49152];
    CHECK(g_vocab <= 49152);
    if (g_vocab > 49152) return;
    for (size_t i = 0; i < n1; i++) {
        CHECK_OK(sa_ctx_truncate(g_ctx, (int32_t)c->n_prompt));
        CHECK_OK(sa_ctx_decode_with(g_ctx, &id1[i], 1, NULL, logits_y1[i], true));
    }
    int32_t best = 0;
    for (int32_t v = 1; v < g_vocab; v++)
        if (logits_y1[second][v] > logits_y1[second][best]) best = v;
    draft[1] = best;

    /* first token: 3000 calls with max_tokens 1 (no forward pass: the prompt's logits) */
    struct sa_spec_params p = sa_spec_default_params();
    p.sampler = smp;
    p.max_tokens = 1;
    struct sa_ivec out = {0};
    struct sa_spec_stats st;
    int count[MAX_CAND + 1] = {0};
    double expect[MAX_CAND + 1] = {0};
    const int N1 = 3000;
    CHECK(reset_to_prompt(c));
    int n_acc = 0;
    for (int r = 0; r < N1; r++) {
        out.len = 0;
        CHECK_OK(sa_spec_generate(g_ctx, d.draft, d.n_draft, &p, &out, &st));
        n_acc += st.n_accepted;
        size_t j = 0;
        while (j < n1 && id1[j] != out.data[0]) j++;
        count[j]++; /* j == n1: a token outside the support (must not happen) */
    }
    for (size_t i = 0; i < n1; i++) expect[i] = N1 * p1[i];
    int df;
    double chi = chi_square(expect, count, (int)n1 + 1, &df);
    printf("  first token: chi2 %.1f (df %d, bound %.1f), draft accepted %d of %d\n", chi, df, chi_bound(df), n_acc, N1);
    CHECK_EQ_INT(count[n1], 0);
    CHECK_MSG(chi < chi_bound(df), "first-token distribution: chi2 %.1f, df %d", chi, df);
    CHECK(n_acc > 0 && n_acc < N1);
    /* the test can fail: the classic bug, resampling from p instead of the residual on a
     * rejection (P(x) = p(x) (2 - p(x)), P(z) = (1 - p(x)) p(z)), is caught */
    double wrong[MAX_CAND + 1];
    for (size_t i = 0; i < n1; i++) wrong[i] = expect[i] * (i == second ? 2 - p1[second] : 1 - p1[second]);
    wrong[n1] = 0;
    CHECK(chi_square(wrong, count, (int)n1 + 1, &df) > chi_bound(df));

    /* first two tokens: max_tokens 3 makes the call verify [y1, draft[1]] in one pass */
    p.max_tokens = 3;
    const int N2 = 80;
    enum { B_D1, B_OTHER1, B_Y2A, B_Y2B, B_REST, B_N }; /* bins over (y1, y2) */
    double e2[B_N] = {0};
    int c2[B_N] = {0};
    /* exact bins: y1 == draft[0] with y2 == draft[1] or not; y1 != draft[0] with y2 its
     * likeliest token or not; y1 outside the support */
    for (size_t i = 0; i < n1; i++) {
        CHECK_OK(sa_sampler_apply(smp, logits_y1[i], g_vocab));
        const int32_t *ids2;
        const float *pr2;
        size_t n2 = sa_sampler_probs(smp, &ids2, &pr2);
        double pd = 0, ptop = 0;
        for (size_t j = 0; j < n2; j++) {
            if (ids2[j] == draft[1]) pd = pr2[j];
            if (pr2[j] > ptop) ptop = pr2[j];
        }
        if (i == second) e2[B_D1] += p1[i] * pd, e2[B_OTHER1] += p1[i] * (1 - pd);
        else e2[B_Y2A] += p1[i] * ptop, e2[B_Y2B] += p1[i] * (1 - ptop);
    }
    for (int b = 0; b < B_N; b++) e2[b] *= N2;
    sa_sampler_reset(smp);
    n_acc = 0;
    for (int r = 0; r < N2; r++) {
        CHECK_OK(run(&d, &p, &out, &st));
        n_acc += st.n_accepted;
        if (out.len < 2) {
            c2[B_REST]++;
            continue;
        }
        size_t j = 0;
        while (j < n1 && id1[j] != out.data[0]) j++;
        if (j == n1) {
            c2[B_REST]++;
            continue;
        }
        /* y2 against its bin: the draft's token after draft[0], else the likeliest */
        float top = -INFINITY;
        int32_t top_id = -1;
        for (int32_t v = 0; v < g_vocab; v++)
            if (logits_y1[j][v] > top) top = logits_y1[j][v], top_id = v;
        if (j == second) c2[out.data[1] == draft[1] ? B_D1 : B_OTHER1]++;
        else c2[out.data[1] == top_id ? B_Y2A : B_Y2B]++;
    }
    chi = chi_square(e2, c2, B_N, &df);
    printf("  first two tokens: chi2 %.1f (df %d, bound %.1f); bins %d %d %d %d %d vs %.1f %.1f %.1f %.1f\n", chi, df,
           chi_bound(df), c2[0], c2[1], c2[2], c2[3], c2[4], e2[0], e2[1], e2[2], e2[3]);
    CHECK_EQ_INT(c2[B_REST], 0);
    CHECK_MSG(chi < chi_bound(df), "two-token distribution: chi2 %.1f, df %d", chi, df);
    sa_ivec_free(&out);
    sa_sampler_free(smp);
}

int main(void) {
    RUN(test_setup);
    RUN(test_batch_invariance);
    RUN(test_greedy_equivalence);
    RUN(test_limits_and_eog);
    RUN(test_context_full);
    RUN(test_bad_arguments);
    RUN(test_sampling_to_greedy);
    RUN(test_sampling_distribution);
    for (int i = 0; i < g_n_cases; i++) {
        free(g_cases[i].prompt);
        free(g_cases[i].draft);
        sa_ivec_free(&g_cases[i].plain);
    }
    sa_ctx_free(g_ctx);
    sa_model_free(g_model);
    return harness_summary();
}
