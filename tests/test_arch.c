/* test_arch.c: the architecture table (src/formats/arch.c) and the promise it keeps: a config
 * means the same thing to inference (sa_model_load), training (sa_train_model_load) and
 * conversion (sa_convert). Tiny random models of every architecture, in several configs,
 * are written as HF directories with the names transformers uses, loaded both ways, and
 * what each side derived is compared: the tensors bound (counted in values), the norm
 * vectors, which layers are local and their window, the RoPE frequencies, the attention
 * scale; then the directory is converted to GGUF and loaded again. */
#include "harness.h"
#include "sa/sa.h"
#include "sa/convert.h"
#include "sa/train.h"
#include "core/core_impl.h"
#include "formats/arch_impl.h"
#include "model/model_impl.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the table ---- */

static void test_table(void) {
    CHECK_EQ_INT(sa_arch_count(), 4);
    for (int i = 0; i < sa_arch_count(); i++) {
        const struct sa_arch_info *ai = sa_arch_at(i);
        CHECK(sa_arch_info(ai->arch) == ai);
        enum sa_arch got = SA_ARCH_UNKNOWN;
        CHECK_OK(sa_arch_from_name(ai->name, &got));
        CHECK_EQ_INT(got, ai->arch);
        CHECK_EQ_STR(sa_arch_name(ai->arch), ai->name);
        /* HF weights always run NEOX RoPE; GGUF ones NORMAL exactly when llama.cpp permutes */
        CHECK_EQ_INT(sa_arch_rope_mode(ai->arch, SA_NAMES_HF), SA_ROPE_NEOX);
        CHECK(sa_arch_permute_qk(ai->arch) == (ai->rope_mode_gguf == SA_ROPE_NORMAL));
        /* the config defaults follow the flags */
        struct sa_model_config c;
        sa_model_config_defaults(&c, ai->arch);
        CHECK(c.qkv_bias == !!(ai->flags & SA_ARCH_F_QKV_BIAS));
        CHECK(c.qk_norm == !!(ai->flags & SA_ARCH_F_QK_NORM));
        CHECK(c.embd_scale == !!(ai->flags & SA_ARCH_F_EMBD_SCALE));
        CHECK(c.gelu_mlp == !!(ai->flags & SA_ARCH_F_GELU_MLP));
        CHECK(c.tie_embeddings == !!(ai->flags & SA_ARCH_F_TIED));
        CHECK(!c.norm_plus_one);
        /* every name maps GGUF <-> HF and back */
        for (int t = 0; t < SA_TENSOR_COUNT; t++) {
            char g[128], h[128], back[128];
            const int il = t < SA_TENSOR_FIRST_LAYER ? -1 : 3;
            bool has = sa_arch_has_tensor(ai->arch, (enum sa_tensor)t);
            CHECK(has == (ai->hf_names[t] != NULL));
            CHECK(sa_arch_tensor_name(ai->arch, SA_NAMES_GGUF, (enum sa_tensor)t, il, ".bias", g, sizeof g) == has);
            CHECK(sa_arch_tensor_name(ai->arch, SA_NAMES_HF, (enum sa_tensor)t, il, ".bias", h, sizeof h) == has);
            if (!has) continue;
            enum sa_tensor t2;
            int il2;
            const char *suffix;
            CHECK(sa_arch_tensor_parse(ai->arch, SA_NAMES_GGUF, g, &t2, &il2, &suffix));
            CHECK_EQ_INT(t2, t);
            CHECK_EQ_INT(il2, il);
            CHECK_EQ_STR(suffix, ".bias");
            CHECK(sa_arch_tensor_parse(ai->arch, SA_NAMES_HF, h, &t2, &il2, &suffix));
            CHECK_EQ_INT(t2, t);
            CHECK(sa_arch_tensor_name(ai->arch, SA_NAMES_GGUF, t2, il2, suffix, back, sizeof back));
            CHECK_EQ_STR(back, g);
        }
    }
    char b[128];
    /* the naming trap: HF post_attention_layernorm is Llama's pre-FFN norm, Gemma's post-attention norm */
    CHECK(sa_arch_tensor_name(SA_ARCH_LLAMA, SA_NAMES_HF, SA_TENSOR_FFN_NORM, 2, ".weight", b, sizeof b));
    CHECK_EQ_STR(b, "model.layers.2.post_attention_layernorm.weight");
    CHECK(sa_arch_tensor_name(SA_ARCH_GEMMA3, SA_NAMES_HF, SA_TENSOR_FFN_NORM, 2, ".weight", b, sizeof b));
    CHECK_EQ_STR(b, "model.layers.2.pre_feedforward_layernorm.weight");
    CHECK(sa_arch_tensor_name(SA_ARCH_GEMMA3, SA_NAMES_HF, SA_TENSOR_ATTN_POST_NORM, 2, ".weight", b, sizeof b));
    CHECK_EQ_STR(b, "model.layers.2.post_attention_layernorm.weight");
    CHECK(sa_arch_tensor_name(SA_ARCH_QWEN2, SA_NAMES_GGUF, SA_TENSOR_OUTPUT, -1, ".weight", b, sizeof b));
    CHECK_EQ_STR(b, "output.weight");
    CHECK(!sa_arch_tensor_name(SA_ARCH_LLAMA, SA_NAMES_GGUF, SA_TENSOR_FFN_POST_NORM, 0, ".weight", b, sizeof b));
    CHECK(!sa_arch_tensor_name(SA_ARCH_UNKNOWN, SA_NAMES_GGUF, SA_TENSOR_ATTN_Q, 0, ".weight", b, sizeof b));
    CHECK(!sa_arch_tensor_name(SA_ARCH_LLAMA, SA_NAMES_GGUF, SA_TENSOR_ATTN_Q, 0, ".weight", b, 8)); /* too small */
    enum sa_tensor t;
    int il;
    const char *sfx;
    CHECK(!sa_arch_tensor_parse(SA_ARCH_LLAMA, SA_NAMES_GGUF, "blk.x.attn_q.weight", &t, &il, &sfx));
    CHECK(!sa_arch_tensor_parse(SA_ARCH_LLAMA, SA_NAMES_GGUF, "blk.1.attn_q.scale", &t, &il, &sfx));
    CHECK(!sa_arch_tensor_parse(SA_ARCH_LLAMA, SA_NAMES_HF, "model.layers.1.pre_feedforward_layernorm.weight", &t, &il, &sfx));
    CHECK_EQ_INT(sa_arch_rope_mode(SA_ARCH_LLAMA, SA_NAMES_GGUF), SA_ROPE_NORMAL);
    CHECK_EQ_INT(sa_arch_rope_mode(SA_ARCH_QWEN3, SA_NAMES_GGUF), SA_ROPE_NEOX);
}

/* ---- layer rules ---- */

static void test_layer_rules(void) {
    struct sa_model_config c;
    sa_model_config_defaults(&c, SA_ARCH_GEMMA3);
    c.n_layer = 12;
    c.head_dim = 16;
    c.sliding_window = 512;
    for (int il = 0; il < 12; il++) /* pattern 6: layers 5 and 11 global */
        CHECK_EQ_INT(sa_layer_window(&c, il), il == 5 || il == 11 ? 0 : 512);
    c.sliding_window_pattern = 0; /* model_config.h: 0 is none, not 6 */
    for (int il = 0; il < 12; il++) CHECK(!sa_layer_is_local(&c, il));
    c.sliding_window_pattern = 2;
    c.sliding_window = 0;
    for (int il = 0; il < 12; il++) CHECK(!sa_layer_is_local(&c, il));
    sa_model_config_defaults(&c, SA_ARCH_LLAMA); /* no local layers whatever the keys say */
    c.sliding_window = 512;
    c.sliding_window_pattern = 2;
    CHECK(!sa_layer_is_local(&c, 0));
    c.head_dim = 64;
    c.query_pre_attn_scalar = 24; /* read by Gemma only */
    CHECK(sa_attn_scale(&c) == 0.125f);
    sa_model_config_defaults(&c, SA_ARCH_GEMMA3);
    c.head_dim = 16;
    c.query_pre_attn_scalar = 24;
    CHECK(sa_attn_scale(&c) == (float)pow(24.0, -0.5));
    c.query_pre_attn_scalar = 0;
    CHECK(sa_attn_scale(&c) == 0.25f);
}

/* ---- RoPE ---- */

static void test_rope(void) {
    struct sa_model_config c;
    sa_model_config_defaults(&c, SA_ARCH_LLAMA);
    c.head_dim = 64;
    c.rope_theta = 500000.0f;
    float f0[32], f1[32], f2[32], fac[32];
    struct sa_rope_params p = sa_rope_params_of(&c, false);
    sa_rope_inv_freq(&p, f0);
    for (int i = 0; i < 32; i++) CHECK(f0[i] == (float)pow(500000.0, -(double)(2 * i) / 64.0));
    /* llama3: high frequencies kept, low ones divided by the factor, and the factor form
     * (llama.cpp's rope_freqs.weight) gives the same frequencies */
    c.rope_scaling = SA_ROPE_SCALING_LLAMA3;
    c.rope_scale_factor = 8;
    p = sa_rope_params_of(&c, false);
    sa_rope_inv_freq(&p, f1);
    CHECK(f1[0] == f0[0]);
    CHECK_NEAR(f1[31], f0[31] / 8.0, 1e-6 * f0[31]);
    sa_llama3_rope_factors(&c, fac);
    p.factors = fac;
    sa_rope_inv_freq(&p, f2);
    for (int i = 0; i < 32; i++) CHECK_NEAR(f2[i], f1[i], 1e-6 * f1[i]);
    /* local layers: their own base, never scaled */
    c.rope_theta_local = 10000.0f;
    p = sa_rope_params_of(&c, true);
    CHECK(p.base == 10000.0 && p.scaling == SA_ROPE_SCALING_NONE && !p.factors);
    /* linear */
    c.rope_scaling = SA_ROPE_SCALING_LINEAR;
    c.rope_scale_factor = 4;
    p = sa_rope_params_of(&c, false);
    sa_rope_inv_freq(&p, f1);
    for (int i = 0; i < 32; i++) CHECK(f1[i] == (float)(pow(500000.0, -(double)(2 * i) / 64.0) / 4.0));
}

/* ---- inference, training and conversion read a config the same way ---- */

enum { V = 48, C = 32, NH = 4, NKV = 2, D = 8, F = 48, NL = 4 };

/* An HF directory: config.json from `extra` (JSON members after the common ones) and random
 * weights under the names transformers uses. */
static void write_model(const char *dir, const char *arch, const char *extra, bool biases) {
    const bool gemma = !strcmp(arch, "gemma3"), qk = gemma || !strcmp(arch, "qwen3");
    const char *type = gemma ? "gemma3_text" : arch;
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"model_type\": \"%s\", \"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d,"
             " \"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d,"
             " \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6%s%s}",
             type, V, C, F, NL, NH, NKV, D, extra[0] ? ", " : "", extra);
    CHECK_OK(sa_mkdir_p(dir, 0755));
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(sa_write_file_atomic(path, cfg, strlen(cfg)));
    struct sa_model_config mc;
    CHECK_OK(sa_model_config_from_hf_json(cfg, strlen(cfg), &mc));
    struct sa_st_writer *w;
    CHECK_OK(sa_st_writer_init(&w));
    static float store[200000];
    static char names[256][96];
    int64_t used = 0;
    int nn = 0;
    uint64_t x = 99;
#define ADD(shape0, shape1, nd, fmt, ...)                                                     \
    do {                                                                                   \
        int64_t shp[2] = {shape0, shape1}, n = (int64_t)(shape0) * ((nd) == 2 ? (shape1) : 1); \
        for (int64_t i = 0; i < n; i++) {                                                  \
            x = x * 6364136223846793005ull + 1442695040888963407ull;                       \
            store[used + i] = (float)((x >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;          \
        }                                                                                  \
        snprintf(names[nn], sizeof names[nn], fmt, __VA_ARGS__);                           \
        CHECK_OK(sa_st_writer_add(w, names[nn++], SA_DTYPE_F32, nd, shp, store + used));   \
        used += n;                                                                         \
    } while (0)
    ADD(V, C, 2, "%s", "model.embed_tokens.weight");
    for (int l = 0; l < NL; l++) {
        ADD(NH * D, C, 2, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(NKV * D, C, 2, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(NKV * D, C, 2, "model.layers.%d.self_attn.v_proj.weight", l);
        ADD(C, NH * D, 2, "model.layers.%d.self_attn.o_proj.weight", l);
        if (biases) {
            ADD(NH * D, 1, 1, "model.layers.%d.self_attn.q_proj.bias", l);
            ADD(NKV * D, 1, 1, "model.layers.%d.self_attn.k_proj.bias", l);
            ADD(NKV * D, 1, 1, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        ADD(F, C, 2, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(F, C, 2, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(C, F, 2, "model.layers.%d.mlp.down_proj.weight", l);
        ADD(C, 1, 1, "model.layers.%d.input_layernorm.weight", l);
        ADD(C, 1, 1, "model.layers.%d.post_attention_layernorm.weight", l);
        if (gemma) {
            ADD(C, 1, 1, "model.layers.%d.pre_feedforward_layernorm.weight", l);
            ADD(C, 1, 1, "model.layers.%d.post_feedforward_layernorm.weight", l);
        }
        if (qk) {
            ADD(D, 1, 1, "model.layers.%d.self_attn.q_norm.weight", l);
            ADD(D, 1, 1, "model.layers.%d.self_attn.k_norm.weight", l);
        }
    }
    ADD(C, 1, 1, "%s", "model.norm.weight");
    if (!mc.tie_embeddings) ADD(V, C, 2, "%s", "lm_head.weight");
#undef ADD
    CHECK_OK(sa_st_writer_write_dir(w, dir, 0));
    sa_st_writer_free(w);
}

/* The training weight of HF tensor `name` as inference sees it (+1 for (1 + w) norms). */
static void check_vec(const struct sa_train_model *tm, int32_t idx, const float *inf, int64_t n, const char *what) {
    CHECK_MSG(idx >= 0 && inf, "%s: bound by %s only", what, idx >= 0 ? "training" : "inference");
    if (idx < 0 || !inf) return;
    const float add = tm->cfg.norm_plus_one ? 1.0f : 0.0f;
    CHECK_EQ_INT(tm->t[idx].n, n);
    for (int64_t i = 0; i < n; i++) CHECK_MSG(inf[i] == tm->t[idx].data[i] + add, "%s[%lld]", what, (long long)i);
}

/* What one model means to inference (im, from the HF directory or its GGUF) and training;
 * RoPE frequencies equal to the relative tolerance tol (0: bit for bit). */
static void compare(const char *what, const struct sa_model *im, const struct sa_train_model *tm, double tol) {
    const struct sa_model_config *c = &tm->cfg;
    CHECK_MSG(im->n_params == (uint64_t)sa_train_model_n_params(tm, false), "%s: inference binds %llu values, training %lld",
              what, (unsigned long long)im->n_params, (long long)sa_train_model_n_params(tm, false));
    CHECK_MSG(im->attn_scale == tm->attn_scale, "%s: attention scale %.9g vs %.9g", what, im->attn_scale, tm->attn_scale);
    CHECK_EQ_INT(im->n_rot, c->head_dim);
    CHECK(im->cfg.embd_scale == c->embd_scale && im->cfg.gelu_mlp == c->gelu_mlp && im->cfg.qk_norm == c->qk_norm);
    for (int l = 0; l < c->n_layer; l++) {
        const struct sa_layer *il = &im->layers[l];
        const struct tr_layer *tl = &tm->layers[l];
        CHECK_MSG(il->window == (tl->sliding ? c->sliding_window : 0), "%s: layer %d window %d, training %s", what, l,
                  il->window, tl->sliding ? "local" : "global");
        CHECK_MSG(il->rope_set == (tl->sliding ? 1 : 0), "%s: layer %d RoPE table", what, l);
        const float *fi = im->inv_freq[il->rope_set], *ft = tl->sliding ? tm->inv_freq_local : tm->inv_freq_global;
        for (int k = 0; k < c->head_dim / 2; k++)
            CHECK_MSG(fabs((double)fi[k] - ft[k]) <= tol * ft[k], "%s: layer %d inv_freq[%d] %.9g vs %.9g", what, l, k, fi[k],
                      ft[k]);
        char nm[64];
        snprintf(nm, sizeof nm, "%s: layer %d attn_norm", what, l);
        check_vec(tm, tl->attn_norm, il->attn_norm, C, nm);
        snprintf(nm, sizeof nm, "%s: layer %d ffn_norm", what, l);
        check_vec(tm, tl->ffn_norm, il->ffn_norm, C, nm);
        if (tl->post_attn_norm >= 0 || il->post_attn_norm) {
            snprintf(nm, sizeof nm, "%s: layer %d post_attn_norm", what, l);
            check_vec(tm, tl->post_attn_norm, il->post_attn_norm, C, nm);
            snprintf(nm, sizeof nm, "%s: layer %d post_ffn_norm", what, l);
            check_vec(tm, tl->post_ffw_norm, il->post_ffn_norm, C, nm);
        }
        if (tl->q_norm >= 0 || il->q_norm) {
            snprintf(nm, sizeof nm, "%s: layer %d q_norm", what, l);
            check_vec(tm, tl->q_norm, il->q_norm, D, nm);
            snprintf(nm, sizeof nm, "%s: layer %d k_norm", what, l);
            check_vec(tm, tl->k_norm, il->k_norm, D, nm);
        }
        CHECK_MSG((tl->lin[TR_LIN_V].b >= 0) == (il->bv != NULL), "%s: layer %d v bias", what, l);
    }
}

/* gguf: the relative tolerance of the RoPE frequencies after conversion to GGUF (llama.cpp
 * stores Llama 3 scaling as f32 factors), or -1 where the GGUF cannot carry the config: it has
 * no key for Gemma 3's sliding_window_pattern nor query_pre_attn_scalar (llama.cpp assumes 6
 * and head_dim), so those configs are compared on the HF directory only. */
static const struct {
    const char *arch, *extra;
    bool biases;
    double gguf;
} cases[] = {
    {"llama", "\"tie_word_embeddings\": false", false, 0},
    {"llama", "\"tie_word_embeddings\": true, \"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\","
              " \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}",
     false, 1e-6},
    {"llama", "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 3.0}", false, 0},
    {"llama", "\"attention_bias\": false", true, 0}, /* optional biases the file has */
    {"qwen2", "\"tie_word_embeddings\": true, \"rope_theta\": 1000000.0", true, 0},
    {"qwen3", "\"tie_word_embeddings\": false", false, 0},
    {"gemma3", "\"sliding_window\": 4, \"sliding_window_pattern\": 2, \"query_pre_attn_scalar\": 24,"
               " \"rope_local_base_freq\": 10000.0", false, -1},
    {"gemma3", "\"sliding_window\": 4, \"query_pre_attn_scalar\": 8", false, 0}, /* Gemma3TextConfig's pattern 6 */
    {"gemma3", "\"sliding_window\": 4, \"sliding_window_pattern\": 0", false, -1}, /* 0: no local layer (inference read 6) */
    {"gemma3", "\"sliding_window\": 0, \"sliding_window_pattern\": 2, \"query_pre_attn_scalar\": 8", false, 0},
    {"gemma3", "\"sliding_window\": 4, \"layer_types\": [\"sliding_attention\", \"sliding_attention\","
               " \"sliding_attention\", \"full_attention\"], \"query_pre_attn_scalar\": 96", false, -1},
};

static void quiet(void *user, const char *msg) { (void)user, (void)msg; }

static void test_inference_vs_training(void) {
    for (size_t i = 0; i < SA_ARRAY_LEN(cases); i++) {
        char dir[512], gguf[520], what[64];
        snprintf(dir, sizeof dir, "%s/arch_%zu", harness_tmpdir(), i);
        snprintf(gguf, sizeof gguf, "%s.gguf", dir);
        write_model(dir, cases[i].arch, cases[i].extra, cases[i].biases);
        struct sa_model_params mp = sa_model_default_params();
        mp.load_tokenizer = false;
        mp.n_threads = 1;
        struct sa_model *im = NULL, *ig = NULL;
        struct sa_train_model *tm = NULL;
        CHECK_OK(sa_model_load(dir, &mp, &im));
        CHECK_OK(sa_train_model_load(dir, NULL, &tm));
        if (im && tm) {
            snprintf(what, sizeof what, "case %zu (%s, HF)", i, cases[i].arch);
            compare(what, im, tm, 0);
            CHECK_EQ_INT(im->rope_mode, sa_arch_rope_mode(tm->cfg.arch, SA_NAMES_GGUF));
        }
        /* the same directory converted to GGUF (names, Q/K permutation, norms + 1) */
        struct sa_convert_params cp = sa_convert_default_params();
        cp.type = SA_DTYPE_F32;
        cp.log = quiet;
        if (cases[i].gguf >= 0) {
            CHECK_OK(sa_convert(dir, gguf, &cp));
            CHECK_OK(sa_model_load(gguf, &mp, &ig));
        }
        if (ig && tm) {
            snprintf(what, sizeof what, "case %zu (%s, GGUF)", i, cases[i].arch);
            compare(what, ig, tm, cases[i].gguf);
            CHECK_EQ_INT(ig->rope_mode, im ? (int)im->rope_mode : -1);
            /* the HF Q rows were permuted at load exactly as the converter stores them */
            if (im && im->layers[0].wq.type == SA_DTYPE_F32 && ig->layers[0].wq.type == SA_DTYPE_F32)
                CHECK(!memcmp(im->layers[0].wq.data, ig->layers[0].wq.data, (size_t)NH * D * C * sizeof(float)));
        }
        sa_model_free(im);
        sa_model_free(ig);
        sa_train_model_free(tm);
    }
}

int main(void) {
    RUN(test_table);
    RUN(test_layer_rules);
    RUN(test_rope);
    RUN(test_inference_vs_training);
    return harness_summary();
}
