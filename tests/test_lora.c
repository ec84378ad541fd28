/* test_lora.c: LoRA adapters at inference (sa/lora.h, src/model/lora_adapter.c) and their
 * export (sa_train_model_export_lora): a tiny random model (llama: Q/K rows permuted in GGUF;
 * qwen2: q/k/v biases) gets a LoRA trained a few steps; its adapter file loaded over the base
 * GGUF gives the logits of the merged export; a zero-B adapter and lora_scale 0 give the base
 * exactly; the same file over the base loaded from safetensors gives the same logits; adapted
 * and plain contexts over one model decode in one batch with the results of
 * decoding alone (bitwise, batch-invariant kernels); the adapter loads over a Q8_0 base; hostile
 * files (truncated, wrong architecture, shapes, names, ranks, NaN) are refused with a clear
 * status; the resolver of shipped adapters (models/NAME/manifest.json) checks the manifest and
 * the file's sha256. llama.cpp loading the same files: tests/py/test_lora_adapter.py. */
#include "harness.h"
#include "sa/sa.h"
#include "core/core_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V = 64, C = 32, L = 2, F = 64, NTOK = 12 };

/* A random model directory: V 64, C 32, 2 layers, 4 heads of 8, 2 kv heads, F 64. */
static void write_tiny(const char *dir, const char *arch) {
    bool qwen = !strcmp(arch, "qwen2");
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"%s\"], \"model_type\": \"%s\", \"vocab_size\": %d, \"hidden_size\": %d,"
             " \"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": 4,"
             " \"num_key_value_heads\": 2, \"head_dim\": 8, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6,"
             " \"rope_theta\": 10000.0, \"tie_word_embeddings\": false}",
             qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM", arch, V, C, F, L);
    CHECK_OK(sa_mkdir_p(dir, 0755));
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(sa_write_file_atomic(path, cfg, strlen(cfg)));
    struct sa_st_writer *w;
    CHECK_OK(sa_st_writer_init(&w));
    static float store[40000];
    static char names[64][96];
    int64_t used = 0;
    int nn = 0;
    uint64_t x = 777;
#define ADD(nm, d0, d1, nd, norm)                                                                        \
    do {                                                                                                 \
        int64_t shp[2] = {d0, d1}, n = (int64_t)(d0) * ((nd) == 2 ? (d1) : 1);                          \
        for (int64_t i = 0; i < n; i++) {                                                                \
            x = x * 6364136223846793005ull + 1442695040888963407ull;                                     \
            float u = (float)((x >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;                                \
            store[used + i] = (norm) ? 1.0f + 0.2f * u : 0.4f * u;                                       \
        }                                                                                                \
        snprintf(names[nn], sizeof names[nn], "%s", nm);                                                 \
        CHECK_OK(sa_st_writer_add(w, names[nn++], SA_DTYPE_F32, nd, shp, store + used));                 \
        used += n;                                                                                       \
    } while (0)
    char nm[96];
    ADD("model.embed_tokens.weight", V, C, 2, false);
    for (int l = 0; l < L; l++) {
        const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        int64_t sh[7][2] = {{32, 32}, {16, 32}, {16, 32}, {32, 32}, {64, 32}, {64, 32}, {32, 64}};
        for (int j = 0; j < 7; j++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, lin[j]);
            ADD(nm, sh[j][0], sh[j][1], 2, false);
            if (qwen && j < 3) {
                snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", l, lin[j]);
                ADD(nm, sh[j][0], 1, 1, false);
            }
        }
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD(nm, C, 1, 1, true);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(nm, C, 1, 1, true);
    }
    ADD("model.norm.weight", C, 1, 1, true);
    ADD("lm_head.weight", V, C, 2, false);
#undef ADD
    CHECK_OK(sa_st_writer_write_dir(w, dir, 0));
    sa_st_writer_free(w);
}

static const int32_t TOKS[NTOK] = {3, 17, 42, 5, 9, 60, 33, 21, 8, 48, 2, 11};

/* logits (NTOK, V) of TOKS through a context over m with adapter l (may be NULL) */
static void logits_of(const struct sa_model *m, const struct sa_lora *l, float scale, bool one_by_one, float *out) {
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.batch_invariant = true;
    cp.lora = l;
    cp.lora_scale = scale;
    struct sa_ctx *ctx = NULL;
    CHECK_OK(sa_ctx_init(m, &cp, &ctx));
    if (!ctx) return;
    if (one_by_one)
        for (int t = 0; t < NTOK; t++) CHECK_OK(sa_ctx_decode_all(ctx, TOKS + t, 1, out + t * V));
    else CHECK_OK(sa_ctx_decode_all(ctx, TOKS, NTOK, out));
    sa_ctx_free(ctx);
}

static double max_abs_diff(const float *a, const float *b, int64_t n, double *amax) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) > d) d = fabs(a[i] - b[i]);
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    if (amax) *amax = m;
    return d;
}

struct run {
    char dir[512], base[600], merged[700], adapter[700], zero[700], q8[600];
};

/* Trains a rank-4 LoRA on the tiny model `arch` a few steps and exports it. */
static void make_run(const char *arch, struct run *r) {
    snprintf(r->dir, sizeof r->dir, "%s/tiny_%s", harness_tmpdir(), arch);
    write_tiny(r->dir, arch);
    snprintf(r->base, sizeof r->base, "%s.f32.gguf", r->dir);
    snprintf(r->q8, sizeof r->q8, "%s.q8_0.gguf", r->dir);
    struct sa_convert_params cv = sa_convert_default_params();
    cv.type = SA_DTYPE_F32;
    cv.log = NULL;
    CHECK_OK(sa_convert(r->dir, r->base, &cv));
    cv.type = SA_DTYPE_Q8_0;
    CHECK_OK(sa_convert(r->dir, r->q8, &cv));

    struct sa_train_model_params mp = sa_train_model_default_params();
    mp.lora_rank = 4;
    mp.lora_alpha = 6; /* scale 1.5 */
    mp.seed = 11;
    struct sa_train_model *m = NULL;
    CHECK_OK(sa_train_model_load(r->dir, &mp, &m));
    if (!m) return;
    snprintf(r->zero, sizeof r->zero, "%s/zero-adapter.gguf", r->dir);
    CHECK_OK(sa_train_model_export_lora(m, r->zero, SA_DTYPE_F32)); /* B = 0 as initialised */
    enum { B = 2, T = 16 };
    int32_t tok[B * T], tgt[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = (i * 37 + 5) % (V - 2) + 2;
    for (int i = 0; i < B * T; i++) tgt[i] = (i % T) + 1 < T ? tok[i + 1] : -100;
    CHECK_OK(sa_train_model_reserve(m, B, T, NULL));
    struct sa_train_optim o = sa_train_optim_default();
    for (int s = 0; s < 4; s++) {
        float loss;
        sa_train_model_zero_grad(m);
        CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, true, (uint64_t)s, &loss));
        CHECK_OK(sa_train_model_adamw_step(m, &o, 2e-2f, NULL));
    }
    char out[600];
    snprintf(out, sizeof out, "%s/model", r->dir);
    struct sa_train_export_params ep = sa_train_export_default_params();
    ep.gguf_type = SA_DTYPE_F32;
    CHECK_OK(sa_train_model_export(m, out, &ep));
    snprintf(r->merged, sizeof r->merged, "%s/model-f32.gguf", out);
    snprintf(r->adapter, sizeof r->adapter, "%s/adapter.gguf", out);
    CHECK(sa_file_exists(r->merged) && sa_file_exists(r->adapter));
    sa_train_model_free(m);
}

static struct sa_model *load(const char *path) {
    struct sa_model_params p = sa_model_default_params();
    p.load_tokenizer = false;
    p.n_threads = 1;
    struct sa_model *m = NULL;
    CHECK_OK(sa_model_load(path, &p, &m));
    return m;
}

static void round_trip(const char *arch) {
    struct run r;
    make_run(arch, &r);
    struct sa_model *base = load(r.base), *merged = load(r.merged), *q8 = load(r.q8);
    if (!base || !merged || !q8) goto done;
    struct sa_lora *l = NULL, *zero = NULL, *lq = NULL;
    CHECK_OK(sa_lora_load(base, r.adapter, NULL, &l));
    CHECK_OK(sa_lora_load(base, r.zero, NULL, &zero));
    CHECK_OK(sa_lora_load(q8, r.adapter, NULL, &lq));
    if (!l || !zero || !lq) goto free_lora;
    struct sa_lora_info info;
    sa_lora_get_info(l, &info);
    CHECK_EQ_STR(info.arch, arch);
    CHECK_EQ_INT(info.rank, 4);
    CHECK_EQ_INT(info.n_matrices, 7 * L);
    CHECK_EQ_INT(info.n_layers, L);
    CHECK_EQ_INT(info.modules, SA_LORA_ALL);
    CHECK_NEAR(info.alpha, 6.0, 0);
    CHECK_EQ_INT(info.n_params, L * 4 * ((32 + 32) * 2 + (32 + 16) * 2 + (32 + 64) * 3));
    struct sa_lora_info fi;
    CHECK_OK(sa_lora_file_info(r.adapter, &fi));
    CHECK(fi.rank == 4 && fi.n_matrices == 7 * L && fi.n_layers == L && !strcmp(fi.type, "f32"));

    static float plain[NTOK * V], adapted[NTOK * V], ref[NTOK * V], tmp[NTOK * V];
    logits_of(base, NULL, 1, false, plain);
    logits_of(base, l, 1, false, adapted);
    logits_of(merged, NULL, 1, false, ref);
    double amax, d = max_abs_diff(adapted, ref, NTOK * V, &amax);
    double moved = max_abs_diff(plain, ref, NTOK * V, NULL);
    CHECK_MSG(d <= 1e-4 * amax + 1e-5, "%s: base + adapter vs merged: max |diff| %g (max |logit| %g)", arch, d, amax);
    CHECK_MSG(moved > 0.05, "%s: the trained adapter hardly moves the logits (%g): the test checks nothing", arch, moved);
    /* a zero-B adapter, and scale 0, give the base exactly */
    logits_of(base, zero, 1, false, tmp);
    CHECK(!memcmp(tmp, plain, sizeof tmp));
    logits_of(base, l, 0, false, tmp);
    CHECK(!memcmp(tmp, plain, sizeof tmp));
    /* scale 2 moves twice as far (to first order) */
    logits_of(base, l, 2, false, tmp);
    CHECK(max_abs_diff(tmp, plain, NTOK * V, NULL) > 1.3 * max_abs_diff(adapted, plain, NTOK * V, NULL));
    /* the same file over the base loaded from its safetensors directory (Q/K permuted at load) */
    {
        struct sa_model *hf = load(r.dir);
        struct sa_lora *lh = NULL;
        if (hf) CHECK_OK(sa_lora_load(hf, r.adapter, NULL, &lh));
        if (lh) {
            logits_of(hf, lh, 1, false, tmp);
            double dh = max_abs_diff(tmp, adapted, NTOK * V, NULL);
            CHECK_MSG(dh <= 1e-5 * amax + 1e-6, "%s: safetensors base + adapter vs GGUF base + adapter: %g", arch, dh);
        }
        sa_lora_free(lh);
        sa_model_free(hf);
    }
    /* batch invariance: one token at a time = all at once (batch-invariant kernels) */
    logits_of(base, l, 1, true, tmp);
    CHECK(!memcmp(tmp, adapted, sizeof tmp));

    /* one batch, an adapted and a plain context over one model: each as alone */
    {
        struct sa_batch_params bp = sa_batch_default_params();
        bp.n_threads = 2;
        bp.n_ctx = 64;
        bp.batch_invariant = true;
        struct sa_batch *b = NULL;
        CHECK_OK(sa_batch_init(base, &bp, &b));
        struct sa_ctx_params cp = sa_ctx_default_params();
        cp.n_ctx = 64;
        cp.n_threads = 1;
        cp.batch_invariant = true;
        struct sa_ctx *c1 = NULL, *c2 = NULL;
        CHECK_OK(sa_ctx_init(base, &cp, &c1));
        cp.lora = l;
        CHECK_OK(sa_ctx_init(base, &cp, &c2));
        static float o1[NTOK * V], o2[NTOK * V];
        struct sa_batch_seq seqs[2] = {{.ctx = c1, .tokens = TOKS, .n = NTOK, .logits_all = o1},
                                       {.ctx = c2, .tokens = TOKS, .n = NTOK, .logits_all = o2}};
        if (b && c1 && c2) {
            CHECK_OK(sa_batch_decode(b, seqs, 2));
            CHECK(!memcmp(o1, plain, sizeof o1));
            CHECK(!memcmp(o2, adapted, sizeof o2));
            /* the KV rows of an adapted context are another model's: no copy into a plain one */
            CHECK_EQ_INT(sa_ctx_copy_prefix(c1, c2, 4), SA_STATUS_BAD_ARGUMENT);
        }
        /* an adapter loaded over another model */
        struct sa_ctx *bad = NULL;
        cp.lora = lq;
        CHECK_EQ_INT(sa_ctx_init(base, &cp, &bad), SA_STATUS_BAD_ARGUMENT);
        CHECK(bad == NULL && strstr(sa_last_error(), "another model"));
        sa_ctx_free(c2);
        sa_ctx_free(c1);
        sa_batch_free(b);
    }
    /* over a quantized base: the adapter moves the Q8_0 logits as it moves the f32 ones */
    {
        static float qp[NTOK * V], qa[NTOK * V];
        logits_of(q8, NULL, 1, false, qp);
        logits_of(q8, lq, 1, false, qa);
        double dq = 0, df = 0;
        for (int i = 0; i < NTOK * V; i++) {
            dq += fabs((qa[i] - qp[i]) - (adapted[i] - plain[i]));
            df += fabs(adapted[i] - plain[i]);
        }
        CHECK_MSG(dq < 0.1 * df, "%s: Q8_0 base: the adapter's effect differs by %g of %g", arch, dq, df);
    }
free_lora:
    sa_lora_free(lq);
    sa_lora_free(zero);
    sa_lora_free(l);
done:
    sa_model_free(q8);
    sa_model_free(merged);
    sa_model_free(base);
}

static void test_round_trip_llama(void) { round_trip("llama"); }
static void test_round_trip_qwen2(void) { round_trip("qwen2"); }

/* ---- hostile adapters ---- */

struct tdesc {
    const char *name;
    int64_t ne0, ne1;
    float fill;
};

/* Writes an adapter GGUF with the given metadata and tensors (values `fill`). */
static void write_adapter(const char *path, const char *arch, const char *gtype, const struct tdesc *t, int n) {
    struct sa_gguf_writer *w = NULL;
    CHECK_OK(sa_gguf_writer_init(&w));
    if (arch) CHECK_OK(sa_gguf_writer_set_str(w, "general.architecture", arch));
    if (gtype) CHECK_OK(sa_gguf_writer_set_str(w, "general.type", gtype));
    CHECK_OK(sa_gguf_writer_set_str(w, "adapter.type", "lora"));
    CHECK_OK(sa_gguf_writer_set_f32(w, "adapter.lora.alpha", 8.0f));
    static float data[16][4096];
    for (int i = 0; i < n; i++) {
        int64_t ne[4] = {t[i].ne0, t[i].ne1, 1, 1};
        for (int64_t e = 0; e < t[i].ne0 * t[i].ne1 && e < 4096; e++) data[i][e] = t[i].fill;
        CHECK_OK(sa_gguf_writer_add_tensor(w, t[i].name, SA_DTYPE_F32, 2, ne, data[i]));
    }
    CHECK_OK(sa_gguf_writer_write(w, path));
    sa_gguf_writer_free(w);
}

static enum sa_status try_load(const struct sa_model *m, const char *path) {
    struct sa_lora *l = (struct sa_lora *)1;
    enum sa_status s = sa_lora_load(m, path, NULL, &l);
    CHECK(s ? l == NULL : l != NULL);
    sa_lora_free(l);
    return s;
}

static void test_hostile(void) {
    char dir[512], base[600], p[700];
    snprintf(dir, sizeof dir, "%s/tiny_hostile", harness_tmpdir());
    write_tiny(dir, "llama");
    snprintf(base, sizeof base, "%s.gguf", dir);
    struct sa_convert_params cv = sa_convert_default_params();
    cv.type = SA_DTYPE_F32;
    CHECK_OK(sa_convert(dir, base, &cv));
    struct sa_model *m = load(base);
    if (!m) return;
    snprintf(p, sizeof p, "%s/a.gguf", dir);
    /* a good one first: q of layer 1, rank 2 */
    const struct tdesc good[2] = {{"blk.1.attn_q.weight.lora_a", 32, 2, 0.1f}, {"blk.1.attn_q.weight.lora_b", 2, 32, 0.1f}};
    write_adapter(p, "llama", "adapter", good, 2);
    CHECK_OK(try_load(m, p));
    /* truncated: every shorter prefix of the file is refused, none crashes */
    {
        char *buf = NULL;
        size_t len = 0;
        CHECK_OK(sa_read_file(p, 1 << 20, &buf, &len));
        char q[720];
        snprintf(q, sizeof q, "%s/trunc.gguf", dir);
        for (size_t cut = 0; buf && cut < len; cut += (cut < 200 ? 7 : 97)) {
            CHECK_OK(sa_write_file_atomic(q, buf, cut));
            enum sa_status s = try_load(m, q);
            CHECK_MSG(s == SA_STATUS_BAD_FILE, "truncated at %zu of %zu: status %d", cut, len, (int)s);
        }
        free(buf);
    }
    write_adapter(p, "qwen2", "adapter", good, 2);
    CHECK_EQ_INT(try_load(m, p), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "architecture 'qwen2'"));
    write_adapter(p, "llama", "model", good, 2);
    CHECK_EQ_INT(try_load(m, p), SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "not an adapter"));
    write_adapter(p, "llama", NULL, good, 2);
    CHECK_EQ_INT(try_load(m, p), SA_STATUS_BAD_FILE);
    /* the model itself is not an adapter */
    CHECK_EQ_INT(try_load(m, base), SA_STATUS_BAD_FILE);
    CHECK_EQ_INT(try_load(m, "/nonexistent/adapter.gguf"), SA_STATUS_NOT_FOUND);
    const struct {
        struct tdesc t[2];
        int n;
        const char *msg;
    } bad[] = {
        {{{"blk.1.attn_q.weight.lora_a", 16, 2, 0.1f}, {"blk.1.attn_q.weight.lora_b", 2, 32, 0.1f}}, 2, "another model"},
        {{{"blk.1.attn_k.weight.lora_a", 32, 2, 0.1f}, {"blk.1.attn_k.weight.lora_b", 2, 32, 0.1f}}, 2, "another model"},
        {{{"blk.1.attn_q.weight.lora_a", 32, 2, 0.1f}, {"blk.1.attn_q.weight.lora_b", 3, 32, 0.1f}}, 2, "rank"},
        {{{"blk.1.attn_q.weight.lora_a", 32, 2, 0.1f}}, 1, "has no"},
        {{{"blk.1.attn_norm.weight.lora_a", 32, 2, 0.1f}, {"blk.1.attn_norm.weight.lora_b", 2, 32, 0.1f}}, 2, "not a LoRA"},
        {{{"output.weight.lora_a", 32, 2, 0.1f}, {"output.weight.lora_b", 2, 64, 0.1f}}, 2, "not a LoRA"},
        {{{"blk.1.attn_q.weight", 32, 2, 0.1f}, {"blk.1.attn_q.weight.lora_b", 2, 32, 0.1f}}, 2, "not a LoRA"},
        {{{"blk.7.attn_q.weight.lora_a", 32, 2, 0.1f}, {"blk.7.attn_q.weight.lora_b", 2, 32, 0.1f}}, 2, "layer 7"},
        {{{"blk.1.attn_q.weight.lora_a", 32, 2, NAN}, {"blk.1.attn_q.weight.lora_b", 2, 32, 0.1f}}, 2, "NaN"},
        {{{"blk.1.attn_q.weight.lora_a", 32, 2, 0.1f}, {"blk.1.attn_q.weight.lora_b", 2, 32, INFINITY}}, 2, "NaN"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_adapter(p, "llama", "adapter", bad[i].t, bad[i].n);
        CHECK_MSG(try_load(m, p) == SA_STATUS_BAD_FILE && strstr(sa_last_error(), bad[i].msg),
                  "case %zu: want '%s': %s", i, bad[i].msg, sa_last_error());
    }
    struct sa_lora_info fi;
    CHECK_EQ_INT(sa_lora_file_info(base, &fi), SA_STATUS_BAD_FILE);
    sa_lora_free(NULL);
    sa_model_free(m);
}

/* ---- shipped adapters: models/NAME/manifest.json ---- */

static void write_text(const char *dir, const char *name, const char *text) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK_OK(sa_write_file_atomic(p, text, strlen(text)));
}

static void test_hub_adapter_resolve(void) {
    char models[600], dir[700], man[1400], hex[65];
    snprintf(models, sizeof models, "%s/models", harness_tmpdir());
    snprintf(dir, sizeof dir, "%s/tiny-aligner", models);
    CHECK_OK(sa_mkdir_p(dir, 0755));
    write_text(dir, "adapter.gguf", "not really a GGUF, but the resolver only checks the digest");
    char ap[800];
    snprintf(ap, sizeof ap, "%s/adapter.gguf", dir);
    CHECK_OK(sa_sha256_file(ap, hex));
    struct sa_hub_adapter ha;
    /* good: a known name as base, the upper-case digest accepted */
    char up[65];
    for (int i = 0; i < 65; i++) up[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
    snprintf(man, sizeof man, "{\"base\": \"qwen2.5-coder-0.5b-instruct\", \"adapter\": \"adapter.gguf\", "
             "\"sha256\": \"%s\", \"size\": 58, \"recipe\": \"recipe.sh\"}", up);
    write_text(dir, "manifest.json", man);
    CHECK_OK(sa_hub_adapter_resolve("tiny-aligner", models, &ha));
    CHECK_EQ_STR(ha.base, "qwen2.5-coder-0.5b-instruct");
    CHECK_EQ_STR(ha.adapter, ap);
    CHECK_EQ_STR(ha.sha256, hex);
    sa_hub_adapter_free(&ha);
    sa_hub_adapter_free(NULL);
    /* a base file in the folder is taken relative to it */
    write_text(dir, "base.gguf", "x");
    snprintf(man, sizeof man, "{\"base\": \"base.gguf\", \"adapter\": \"adapter.gguf\", \"sha256\": \"%s\"}", hex);
    write_text(dir, "manifest.json", man);
    CHECK_OK(sa_hub_adapter_resolve("tiny-aligner", models, &ha));
    CHECK(ha.base && strstr(ha.base, "/tiny-aligner/base.gguf"));
    sa_hub_adapter_free(&ha);
    /* not a shipped adapter: NOT_FOUND, so that the caller takes the name as a model */
    CHECK_EQ_INT(sa_hub_adapter_resolve("no-such", models, &ha), SA_STATUS_NOT_FOUND);
    CHECK_EQ_INT(sa_hub_adapter_resolve("../models/tiny-aligner", models, &ha), SA_STATUS_NOT_FOUND);
    CHECK_EQ_INT(sa_hub_adapter_resolve("/abs/path.gguf", models, &ha), SA_STATUS_NOT_FOUND);
    /* the file changed: refused */
    char bad[65];
    memcpy(bad, hex, 65);
    bad[0] = bad[0] == '0' ? '1' : '0';
    snprintf(man, sizeof man, "{\"base\": \"b\", \"adapter\": \"adapter.gguf\", \"sha256\": \"%s\"}", bad);
    write_text(dir, "manifest.json", man);
    CHECK_EQ_INT(sa_hub_adapter_resolve("tiny-aligner", models, &ha), SA_STATUS_CHECKSUM);
    CHECK(strstr(sa_last_error(), "sha256") && ha.base == NULL);
    snprintf(man, sizeof man, "{\"base\": \"b\", \"adapter\": \"adapter.gguf\", \"sha256\": \"%s\", \"size\": 3}", hex);
    write_text(dir, "manifest.json", man);
    CHECK_EQ_INT(sa_hub_adapter_resolve("tiny-aligner", models, &ha), SA_STATUS_CHECKSUM);
    /* bad manifests */
    const char *bad_json[] = {
        "{", "[]", "{\"adapter\": \"adapter.gguf\", \"sha256\": \"00\"}",
        ("{\"base\": \"b\", \"adapter\": \"../x.gguf\", \"sha256\": "
         "\"0000000000000000000000000000000000000000000000000000000000000000\"}"),
        "{\"base\": \"b\", \"adapter\": \"adapter.gguf\", \"sha256\": \"xyz\"}",
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        write_text(dir, "manifest.json", bad_json[i]);
        CHECK_MSG(sa_hub_adapter_resolve("tiny-aligner", models, &ha) == SA_STATUS_BAD_JSON, "manifest %zu: %s", i,
                  sa_last_error());
    }
    snprintf(man, sizeof man, "{\"base\": \"b\", \"adapter\": \"gone.gguf\", \"sha256\": \"%s\"}", hex);
    write_text(dir, "manifest.json", man);
    CHECK_EQ_INT(sa_hub_adapter_resolve("tiny-aligner", models, &ha), SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "gone.gguf is missing"));
}

int main(void) {
    RUN(test_round_trip_llama);
    RUN(test_round_trip_qwen2);
    RUN(test_hostile);
    RUN(test_hub_adapter_resolve);
    return harness_summary();
}
