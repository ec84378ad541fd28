/* test_proxy.c: proxy-tuning (sa/proxy.h, src/sample/proxy.c; issue 15) on tiny random models
 * that share a small byte-level BPE vocabulary: the combined logits equal upstream + alpha *
 * (expert - anti) computed from the three models' own contexts (step by step, and after the
 * upstream rolls back); alpha 0 and expert == anti give the upstream's logits bit for bit; a
 * vocabulary that differs in size or in one token string is refused with a message naming both
 * models; an expert given as base + LoRA adapter (expert_lora) over the anti-expert's model
 * mixes as the formula says; the pipeline's UPSTREAM mode with proxy_expert/proxy_anti draws from the mix (upstream
 * A with expert B, anti A, alpha 1 answers as B alone; alpha 0 as A alone). The CLI:
 * tests/py/test_proxy_cli.py. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"
#include "sa/sa.h"
#include "core/core_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V = 302, C = 32, L = 2, F = 64 };

/* The tokenizer of test_tokenizer.c's tiny_json: 256 byte tokens, 6 merges, <|end|> (300,
 * end of generation) and <tag> (301). swap: "he" and "ll" trade ids (same strings, another
 * vocabulary). */
static char *tiny_tokenizer_json(bool swap) {
    static char buf[16384];
    size_t k = 0;
    k += (size_t)snprintf(buf + k, sizeof buf - k,
                          "{\"added_tokens\":[{\"id\":300,\"content\":\"<|end|>\",\"special\":true},"
                          "{\"id\":301,\"content\":\"<tag>\",\"special\":false}],"
                          "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
                          "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        unsigned cp = b; /* GPT-2 byte alphabet */
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
            unsigned n = 0;
            for (int i = 0; i < b; i++) n += !((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174);
            cp = 256 + n;
        }
        char u[8];
        if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", (char)cp);
        else if (cp < 0x80) snprintf(u, sizeof u, "%c", (char)cp);
        else snprintf(u, sizeof u, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
        k += (size_t)snprintf(buf + k, sizeof buf - k, "\"%s\":%d,", u, b);
    }
    k += (size_t)snprintf(buf + k, sizeof buf - k,
                          "\"he\":%d,\"ll\":%d,\"hell\":258,\"hello\":259,\"\xC4\xA0w\":260,\"\xC4\xA0wo\":261,"
                          "\"aa\":262,\"aaaa\":263},\"merges\":[\"h e\",\"l l\",\"he ll\",\"hell o\",\"\xC4\xA0 w\","
                          "\"\xC4\xA0w o\",\"a a\",\"aa aa\"]}}",
                          swap ? 257 : 256, swap ? 256 : 257);
    return buf;
}

/* A random llama model directory (n_vocab v, C 32, 2 layers) with the tiny tokenizer and a
 * chatml chat template; `seed` picks the weights. The tokens that are not printable ASCII get
 * a zero row in lm_head (see below). */
static void write_tiny(const char *dir, int v, uint64_t seed, bool swap) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": %d,"
             " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,"
             " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 8,"
             " \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000.0,"
             " \"tie_word_embeddings\": false}",
             v, C, F, L);
    CHECK_OK(sa_mkdir_p(dir, 0755));
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(sa_write_file_atomic(path, cfg, strlen(cfg)));
    const char *tj = tiny_tokenizer_json(swap);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    CHECK_OK(sa_write_file_atomic(path, tj, strlen(tj)));
    const char *tc = "{\"eos_token\": \"<|end|>\", \"chat_template\": \"{% for m in messages %}<|im_start|>{{ m.role }}"
                     "{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant"
                     "{% endif %}\"}";
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    CHECK_OK(sa_write_file_atomic(path, tc, strlen(tc)));
    struct sa_st_writer *w;
    CHECK_OK(sa_st_writer_init(&w));
    if (!w) return;
    static float store[60000];
    static char names[32][96];
    int64_t used = 0;
    int nn = 0;
    uint64_t x = seed;
#define ADD(nm, d0, d1, nd, norm)                                                                        \
    do {                                                                                                 \
        int64_t shp[2] = {d0, d1}, n = (int64_t)(d0) * ((nd) == 2 ? (d1) : 1);                          \
        for (int64_t i = 0; i < n; i++) {                                                                \
            x = x * 6364136223846793005ull + 1442695040888963407ull;                                     \
            float u = (float)((x >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;                                \
            store[used + i] = (norm) ? 1.0f + 0.2f * u : 0.8f * u;                                       \
        }                                                                                                \
        snprintf(names[nn], sizeof names[nn], "%s", nm);                                                 \
        CHECK_OK(sa_st_writer_add(w, names[nn++], SA_DTYPE_F32, nd, shp, store + used));                 \
        used += n;                                                                                       \
    } while (0)
    char nm[96];
    ADD("model.embed_tokens.weight", v, C, 2, false);
    for (int l = 0; l < L; l++) {
        const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        int64_t sh[7][2] = {{32, 32}, {16, 32}, {16, 32}, {32, 32}, {64, 32}, {64, 32}, {32, 64}};
        for (int j = 0; j < 7; j++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, lin[j]);
            ADD(nm, sh[j][0], sh[j][1], 2, false);
        }
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD(nm, C, 1, 1, true);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(nm, C, 1, 1, true);
    }
    ADD("model.norm.weight", C, 1, 1, true);
    ADD("lm_head.weight", v, C, 2, false);
    /* only printable ASCII can be written (a zero row: logit 0, below the best of the others),
     * so that the pipeline gets whole characters */
    for (int64_t t = 0; t < v; t++)
        if (!((t >= 32 && t <= 126) || (t >= 256 && t <= 263))) memset(store + used - (int64_t)v * C + t * C, 0, sizeof(float) * C);
#undef ADD
    CHECK_OK(sa_st_writer_write_dir(w, dir, 0));
    sa_st_writer_free(w);
}

/* the models: A upstream, B expert, C anti-expert, D = A's size with the swapped tokenizer,
 * E a vocabulary of 320 logits */
static struct sa_model *mA, *mB, *mC, *mD, *mE;

static struct sa_model *load(const char *name, int v, uint64_t seed, bool swap) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/proxy_%s", harness_tmpdir(), name);
    write_tiny(dir, v, seed, swap);
    struct sa_model *m = NULL;
    CHECK_OK(sa_model_load(dir, NULL, &m));
    return m;
}

static struct sa_ctx_params ctx_params(void) {
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 1;
    cp.batch_invariant = true; /* a row's bits do not depend on how it was batched */
    return cp;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void test_mix(void) {
    float up[5] = {1.5f, -0.0f, 3.0f, -2.25f, 0.125f}, ex[5] = {0.5f, 2.0f, -1.0f, 7.0f, 0.0f},
          an[5] = {0.25f, 2.0f, 1.0f, -3.0f, 0.5f}, out[5];
    sa_proxy_mix(up, ex, an, 5, 0.0f, out);
    CHECK(!memcmp(out, up, sizeof up)); /* alpha 0: the upstream's bits, -0 included */
    sa_proxy_mix(up, ex, ex, 5, 2.5f, out);
    CHECK(!memcmp(out, up, sizeof up)); /* expert == anti */
    sa_proxy_mix(up, ex, an, 5, 0.5f, out);
    for (int i = 0; i < 5; i++) CHECK(out[i] == up[i] + 0.5f * (ex[i] - an[i]));
    float in[5];
    memcpy(in, up, sizeof up);
    sa_proxy_mix(in, ex, an, 5, -1.0f, in); /* in place */
    for (int i = 0; i < 5; i++) CHECK(in[i] == up[i] - (ex[i] - an[i]));
    struct sa_proxy_params p = sa_proxy_default_params();
    CHECK(p.alpha == 1.0f && !p.expert_lora && !p.upstream_name && p.ctx.n_ctx == 0);
    sa_proxy_free(NULL);
    sa_proxy_reset(NULL);
    CHECK(sa_proxy_ctx(NULL, 0) == NULL);
}

/* The combined row at every step equals the formula on three independent contexts, each fed
 * the same tokens the same way (prompt at once, then one token per step). */
static void test_logits_formula(void) {
    if (!mA || !mB || !mC) return;
    const float alpha = 0.75f;
    struct sa_proxy_params pp = sa_proxy_default_params();
    pp.alpha = alpha;
    pp.ctx = ctx_params();
    struct sa_proxy *px = NULL;
    struct sa_ctx *up = NULL, *ref[3] = {NULL, NULL, NULL};
    struct sa_ctx_params cp = ctx_params();
    CHECK_OK(sa_proxy_init(mA, mB, mC, &pp, &px));
    CHECK_OK(sa_ctx_init(mA, &cp, &up));
    const struct sa_model *ms[3] = {mA, mB, mC};
    for (int k = 0; k < 3; k++) CHECK_OK(sa_ctx_init(ms[k], &cp, &ref[k]));
    if (!px || !up || !ref[0] || !ref[1] || !ref[2]) goto done;
    CHECK(sa_proxy_alpha(px) == alpha);
    const float *mix = NULL;
    CHECK_EQ_INT(sa_proxy_logits(px, up, &mix), SA_STATUS_BAD_ARGUMENT); /* nothing decoded yet */
    CHECK_EQ_INT(sa_proxy_logits(px, ref[1], &mix), SA_STATUS_BAD_ARGUMENT); /* another model's context */
    int32_t prompt[4] = {259, 260, 111, 33}, seq[16];
    memcpy(seq, prompt, sizeof prompt);
    CHECK_OK(sa_ctx_decode(up, prompt, 4, NULL));
    for (int k = 0; k < 3; k++) CHECK_OK(sa_ctx_decode(ref[k], prompt, 4, NULL));
    int exact = 0, rows = 0;
    double worst = 0;
    bool differs = false;
    for (int step = 0; step < 8; step++) {
        CHECK_OK(sa_proxy_logits(px, up, &mix));
        if (!mix) break;
        const float *a = sa_ctx_logits(ref[0]), *b = sa_ctx_logits(ref[1]), *c = sa_ctx_logits(ref[2]);
        bool row_exact = true;
        for (int32_t i = 0; i < V; i++) {
            const float want = a[i] + alpha * (b[i] - c[i]);
            double d = fabs((double)mix[i] - (double)want);
            if (d > worst) worst = d;
            if (mix[i] != want) row_exact = false;
        }
        exact += row_exact;
        rows++;
        for (int k = 0; k < 2; k++) CHECK_EQ_INT(sa_ctx_len(sa_proxy_ctx(px, k)), 4 + step);
        const int32_t t = argmax(mix, V);
        if (t != argmax(sa_ctx_logits(up), V)) differs = true;
        seq[4 + step] = t;
        CHECK_OK(sa_ctx_decode(up, &t, 1, NULL));
        for (int k = 0; k < 3; k++) CHECK_OK(sa_ctx_decode(ref[k], &t, 1, NULL));
    }
    CHECK_MSG(worst <= 1e-6, "max |mix - formula| = %g", worst);
    CHECK_MSG(exact == rows, "%d of %d rows bitwise equal to the formula", exact, rows);
    CHECK_MSG(differs, "the expert never changed the upstream's argmax: the test models are too alike");
    /* the upstream rolls back: the sides follow it (their cached prefix kept) */
    CHECK_OK(sa_ctx_truncate(up, 6));
    CHECK_OK(sa_ctx_eval_prompt(up, seq, 6, NULL, NULL));
    CHECK_OK(sa_proxy_logits(px, up, &mix));
    for (int k = 0; k < 2; k++) CHECK_EQ_INT(sa_ctx_len(sa_proxy_ctx(px, k)), 6);
    float want[V];
    for (int k = 0; k < 3; k++) CHECK_OK(sa_ctx_eval_prompt(ref[k], seq, 6, NULL, NULL));
    sa_proxy_mix(sa_ctx_logits(ref[0]), sa_ctx_logits(ref[1]), sa_ctx_logits(ref[2]), V, alpha, want);
    CHECK(mix && !memcmp(mix, want, sizeof want));
    /* reset: evaluated again from scratch, same bits (batch-invariant kernels) */
    sa_proxy_reset(px);
    CHECK_EQ_INT(sa_ctx_len(sa_proxy_ctx(px, 0)), 0);
    CHECK_OK(sa_proxy_logits(px, up, &mix));
    CHECK(mix && !memcmp(mix, want, sizeof want));
done:
    for (int k = 2; k >= 0; k--) sa_ctx_free(ref[k]);
    sa_ctx_free(up);
    sa_proxy_free(px);
}

/* alpha 0, and expert == anti (any alpha), give the upstream's own logits bit for bit. */
static void test_identities(void) {
    if (!mA || !mB || !mC) return;
    struct { const struct sa_model *e, *a; float alpha; } cases[3] = {{mB, mC, 0.0f}, {mB, mB, 1.0f}, {mC, mC, -3.5f}};
    for (int c = 0; c < 3; c++) {
        struct sa_proxy_params pp = sa_proxy_default_params();
        pp.alpha = cases[c].alpha;
        pp.ctx = ctx_params();
        struct sa_proxy *px = NULL;
        struct sa_ctx *up = NULL;
        struct sa_ctx_params cp = ctx_params();
        CHECK_OK(sa_proxy_init(mA, cases[c].e, cases[c].a, &pp, &px));
        CHECK_OK(sa_ctx_init(mA, &cp, &up));
        if (px && up) {
            int32_t t = 259;
            CHECK_OK(sa_ctx_decode(up, &t, 1, NULL));
            for (int step = 0; step < 6; step++) {
                const float *mix = NULL;
                CHECK_OK(sa_proxy_logits(px, up, &mix));
                CHECK_MSG(mix && !memcmp(mix, sa_ctx_logits(up), sizeof(float) * V), "case %d step %d", c, step);
                t = argmax(sa_ctx_logits(up), V);
                CHECK_OK(sa_ctx_decode(up, &t, 1, NULL));
            }
        }
        sa_ctx_free(up);
        sa_proxy_free(px);
    }
}

/* params.expert_lora: the expert is base + adapter over the same model as the anti-expert (the
 * paper's setting: an expert fine-tuned from the anti-expert); the mix equals the formula on
 * plain, adapted and plain contexts. */
static void test_expert_lora(void) {
    if (!mA) return;
    char path[600];
    snprintf(path, sizeof path, "%s/proxy_lora.gguf", harness_tmpdir());
    struct sa_gguf_writer *w = NULL;
    CHECK_OK(sa_gguf_writer_init(&w));
    if (!w) return;
    CHECK_OK(sa_gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK_OK(sa_gguf_writer_set_str(w, "general.type", "adapter"));
    CHECK_OK(sa_gguf_writer_set_str(w, "adapter.type", "lora"));
    CHECK_OK(sa_gguf_writer_set_f32(w, "adapter.lora.alpha", 2.0f));
    static float la[64 * 2], lb[2 * 32];
    for (int i = 0; i < 64 * 2; i++) la[i] = 0.05f * (float)((i * 7) % 11) - 0.25f;
    for (int i = 0; i < 2 * 32; i++) lb[i] = 0.04f * (float)((i * 5) % 13) - 0.24f;
    const int64_t nea[4] = {64, 2, 1, 1}, neb[4] = {2, 32, 1, 1};
    CHECK_OK(sa_gguf_writer_add_tensor(w, "blk.0.ffn_down.weight.lora_a", SA_DTYPE_F32, 2, nea, la));
    CHECK_OK(sa_gguf_writer_add_tensor(w, "blk.0.ffn_down.weight.lora_b", SA_DTYPE_F32, 2, neb, lb));
    CHECK_OK(sa_gguf_writer_write(w, path));
    sa_gguf_writer_free(w);
    struct sa_lora *l = NULL;
    CHECK_OK(sa_lora_load(mA, path, NULL, &l));
    if (!l) return;
    const float alpha = 0.5f;
    struct sa_proxy_params pp = sa_proxy_default_params();
    pp.alpha = alpha;
    pp.ctx = ctx_params();
    pp.expert_lora = l;
    struct sa_proxy *px = NULL;
    struct sa_ctx *up = NULL, *ref[3] = {NULL, NULL, NULL};
    struct sa_ctx_params cp = ctx_params();
    CHECK_OK(sa_proxy_init(mA, mA, mA, &pp, &px));
    CHECK_OK(sa_ctx_init(mA, &cp, &up));
    for (int k = 0; k < 3; k++) {
        struct sa_ctx_params c = cp;
        c.lora = k == 1 ? l : NULL;
        CHECK_OK(sa_ctx_init(mA, &c, &ref[k]));
    }
    if (px && up && ref[0] && ref[1] && ref[2]) {
        int32_t t = 259;
        CHECK_OK(sa_ctx_decode(up, &t, 1, NULL));
        for (int k = 0; k < 3; k++) CHECK_OK(sa_ctx_decode(ref[k], &t, 1, NULL));
        bool changed = false;
        for (int step = 0; step < 5; step++) {
            const float *mix = NULL;
            float want[V];
            CHECK_OK(sa_proxy_logits(px, up, &mix));
            if (!mix) break;
            sa_proxy_mix(sa_ctx_logits(ref[0]), sa_ctx_logits(ref[1]), sa_ctx_logits(ref[2]), V, alpha, want);
            CHECK_MSG(!memcmp(mix, want, sizeof want), "step %d", step);
            if (memcmp(mix, sa_ctx_logits(up), sizeof want)) changed = true;
            t = argmax(mix, V);
            CHECK_OK(sa_ctx_decode(up, &t, 1, NULL));
            for (int k = 0; k < 3; k++) CHECK_OK(sa_ctx_decode(ref[k], &t, 1, NULL));
        }
        CHECK_MSG(changed, "the adapter changed no logit");
    }
    for (int k = 2; k >= 0; k--) sa_ctx_free(ref[k]);
    sa_ctx_free(up);
    sa_proxy_free(px);
    sa_lora_free(l);
}

static void test_vocab_mismatch(void) {
    if (!mA || !mC || !mD || !mE) return;
    CHECK_OK(sa_proxy_check_vocab(mA, "A", mC, "C"));
    CHECK_EQ_INT(sa_proxy_check_vocab(mA, "A", NULL, "C"), SA_STATUS_BAD_ARGUMENT);
    struct sa_proxy_params pp = sa_proxy_default_params();
    pp.upstream_name = "up-model";
    pp.expert_name = "ex-model";
    pp.anti_name = "anti-model";
    pp.ctx = ctx_params();
    struct sa_proxy *px = NULL;
    /* one token string differs */
    CHECK_EQ_INT(sa_proxy_init(mA, mD, mC, &pp, &px), SA_STATUS_UNSUPPORTED);
    CHECK(px == NULL);
    const char *e = sa_last_error();
    CHECK_MSG(strstr(e, "up-model") && strstr(e, "ex-model") && strstr(e, "vocabulary") && strstr(e, "token 256"),
              "%s", e);
    /* sizes differ (the anti-expert) */
    CHECK_EQ_INT(sa_proxy_init(mA, mC, mE, &pp, &px), SA_STATUS_UNSUPPORTED);
    e = sa_last_error();
    CHECK_MSG(strstr(e, "up-model") && strstr(e, "anti-model") && strstr(e, "302 vs 320"), "%s", e);
    /* bad arguments */
    pp.alpha = NAN;
    CHECK_EQ_INT(sa_proxy_init(mA, mC, mC, &pp, &px), SA_STATUS_BAD_ARGUMENT);
    pp.alpha = 1.0f;
    CHECK_EQ_INT(sa_proxy_init(mA, NULL, mC, &pp, &px), SA_STATUS_BAD_ARGUMENT);
    /* the pipeline refuses the mismatch at init */
    struct sa_pipeline_params p = sa_pipeline_default_params();
    p.mode = SA_PIPELINE_UPSTREAM;
    p.upstream_model = mA;
    p.proxy_expert = mD;
    p.proxy_anti = mC;
    p.n_ctx = 128;
    p.n_threads = 1;
    struct sa_pipeline *pl = NULL;
    CHECK_EQ_INT(sa_pipeline_init(&p, &pl), SA_STATUS_UNSUPPORTED);
    CHECK(pl == NULL);
    p.proxy_expert = NULL; /* half a proxy */
    CHECK_EQ_INT(sa_pipeline_init(&p, &pl), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "proxy") != NULL);
}

/* The answer of UPSTREAM mode (greedy) with the given proxy (expert NULL: none). */
static char *pipeline_answer(const struct sa_model *up, const struct sa_model *ex, const struct sa_model *an,
                             float alpha) {
    struct sa_pipeline_params p = sa_pipeline_default_params();
    p.mode = SA_PIPELINE_UPSTREAM;
    p.upstream_model = up;
    p.proxy_expert = ex;
    p.proxy_anti = an;
    p.proxy_alpha = alpha;
    p.n_ctx = 256;
    p.n_threads = 1;
    p.batch_invariant = true;
    p.max_length = 48;
    p.max_sentence_tokens = 16;
    struct sa_pipeline *pl = NULL;
    CHECK_OK(sa_pipeline_init(&p, &pl));
    if (!pl) return NULL;
    struct sa_pipeline_result r;
    CHECK_OK(sa_pipeline_run(pl, "hello world", NULL, &r));
    CHECK_MSG(r.upstream_tokens > 8, "upstream tokens %d", r.upstream_tokens);
    char *a = r.answer ? strdup(r.answer) : NULL;
    sa_pipeline_result_free(&r);
    sa_pipeline_free(pl);
    return a;
}

static void test_pipeline_upstream_mode(void) {
    if (!mA || !mB || !mC) return;
    CHECK(sa_pipeline_default_params().proxy_alpha == 1.0f);
    char *a = pipeline_answer(mA, NULL, NULL, 1.0f);
    char *b = pipeline_answer(mB, NULL, NULL, 1.0f);
    char *ab = pipeline_answer(mA, mB, mA, 1.0f); /* A + (B - A): B's argmax (up to rounding) */
    char *a0 = pipeline_answer(mA, mB, mC, 0.0f);
    char *abc = pipeline_answer(mA, mB, mC, 1.0f);
    if (a && b && ab && a0 && abc) {
        CHECK_MSG(strcmp(a, b) != 0, "the test models answer alike: %s", a);
        CHECK_MSG(!strcmp(ab, b), "A + (B - A) answered\n%s\nB answered\n%s", ab, b);
        CHECK_MSG(!strcmp(a0, a), "alpha 0 answered\n%s\nA answered\n%s", a0, a);
        CHECK_MSG(strcmp(abc, a) != 0, "the proxy changed nothing: %s", abc);
    }
    free(abc);
    free(a0);
    free(ab);
    free(b);
    free(a);
}

int main(void) {
    mA = load("A", V, 11, false);
    mB = load("B", V, 22, false);
    mC = load("C", V, 33, false);
    mD = load("D", V, 44, true);
    mE = load("E", 320, 55, false);
    RUN(test_mix);
    RUN(test_logits_formula);
    RUN(test_identities);
    RUN(test_expert_lora);
    RUN(test_vocab_mismatch);
    RUN(test_pipeline_upstream_mode);
    sa_model_free(mE);
    sa_model_free(mD);
    sa_model_free(mC);
    sa_model_free(mB);
    sa_model_free(mA);
    return harness_summary();
}
