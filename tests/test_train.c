/* test_train.c: the training model and loop (src/train/train_*.c) on tiny random models
 * written here as safetensors + config.json: overfitting one batch (full fine-tuning and
 * LoRA, llama and gemma3), identical results with 1, 2 and 3 threads (fp32 and bf16), gradient accumulation,
 * state save/restore, export (LoRA merged) and reload, the data path (chat template, loss
 * mask, left truncation of the prefix, drops, epoch order, padding), the run's progress
 * reports and cancel hook (a cancelled run checkpoints and resumes exactly). The PyTorch
 * gradient checks and the resume-after-kill test are in tests/py/test_train_ref.py. */
#include "harness.h"
#include "sa/sa.h"
#include "sa/train.h"
#include "core/core_impl.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A random model directory: V 64 (or `vocab`, then with tied embeddings), C 32, 2 layers,
 * 4 heads, 2 kv heads, F 64. */
static void write_tiny_v(const char *dir, const char *arch, int vocab) {
    bool gemma = !strcmp(arch, "gemma3"), tied = gemma || vocab != 64;
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"%s\"], \"model_type\": \"%s\", \"vocab_size\": %d, \"hidden_size\": 32,"
             " \"intermediate_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
             " \"num_key_value_heads\": 2, \"head_dim\": 8, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6,"
             " \"rope_theta\": 10000.0, \"tie_word_embeddings\": %s %s}",
             gemma ? "Gemma3ForCausalLM" : "LlamaForCausalLM", gemma ? "gemma3_text" : "llama", vocab, tied ? "true" : "false",
             gemma ? ", \"sliding_window\": 4, \"sliding_window_pattern\": 2, \"query_pre_attn_scalar\": 8,"
                     " \"rope_local_base_freq\": 10000.0, \"hidden_activation\": \"gelu_pytorch_tanh\"" : "");
    CHECK_OK(sa_mkdir_p(dir, 0755));
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(sa_write_file_atomic(path, cfg, strlen(cfg)));
    struct sa_st_writer *w;
    CHECK_OK(sa_st_writer_init(&w));
    static float store[1700000];
    int64_t used = 0;
    uint64_t x = 12345;
    char names[64][96];
    int nn = 0;
#define ADD5(nm, d0, d1, nd, norm, scale)                                                                     \
    do {                                                                                                \
        int64_t shp[2] = {d0, d1}, n = (int64_t)(d0) * ((nd) == 2 ? (d1) : 1);                          \
        for (int64_t i = 0; i < n; i++) {                                                              \
            x = x * 6364136223846793005ull + 1442695040888963407ull;                                    \
            float u = (float)((x >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;                               \
            store[used + i] = (norm) ? (gemma ? 0.0f : 1.0f) + 0.2f * u : (scale) * u;                  \
        }                                                                                               \
        snprintf(names[nn], sizeof names[nn], "%s", nm);                                                \
        CHECK_OK(sa_st_writer_add(w, names[nn++], SA_DTYPE_F32, nd, shp, store + used));                 \
        used += n;                                                                                      \
    } while (0)
#define ADD(nm, d0, d1, nd, norm) ADD5(nm, d0, d1, nd, norm, 0.4f)
    char nm[96];
    ADD("model.embed_tokens.weight", vocab, 32, 2, false);
    for (int l = 0; l < 2; l++) {
        const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        int64_t sh[7][2] = {{32, 32}, {16, 32}, {16, 32}, {32, 32}, {64, 32}, {64, 32}, {32, 64}};
        for (int j = 0; j < 7; j++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, lin[j]);
            ADD(nm, sh[j][0], sh[j][1], 2, false);
        }
        const char *norms[6] = {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                                "post_feedforward_layernorm", "self_attn.q_norm", "self_attn.k_norm"};
        for (int j = 0; j < (gemma ? 6 : 2); j++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, norms[j]);
            ADD(nm, j >= 4 ? 8 : 32, 1, 1, true);
        }
    }
    ADD("model.norm.weight", 32, 1, 1, true);
    /* a large LM head: LoRA (head frozen) can then reach confident logits on random targets */
    if (!tied) ADD5("lm_head.weight", 64, 32, 2, false, 2.0f);
#undef ADD
#undef ADD5
    CHECK_OK(sa_st_writer_write_dir(w, dir, 0));
    sa_st_writer_free(w);
}
static void write_tiny(const char *dir, const char *arch) { write_tiny_v(dir, arch, 64); }

static void batch(int32_t *tok, int32_t *tgt, int64_t B, int64_t T, uint64_t seed) {
    uint64_t x = seed;
    for (int64_t i = 0; i < B * T; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((x >> 33) % 62) + 2;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) tgt[b * T + t] = t + 1 < T && t >= T / 3 ? tok[b * T + t + 1] : -100;
}

static float overfit(const char *arch, int rank, int steps, float lr, float *first) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny_%s", harness_tmpdir(), arch);
    write_tiny(dir, arch);
    struct sa_train_model_params mp = sa_train_model_default_params();
    mp.lora_rank = rank;
    mp.seed = 3;
    struct sa_train_model *m = NULL;
    CHECK_OK(sa_train_model_load(dir, &mp, &m));
    if (!m) return NAN;
    enum { B = 2, T = 24 };
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt, B, T, 99);
    CHECK_OK(sa_train_model_reserve(m, B, T, NULL));
    struct sa_train_optim o = sa_train_optim_default();
    o.beta2 = 0.99f;
    float loss = NAN;
    for (int s = 0; s < steps; s++) {
        sa_train_model_zero_grad(m);
        CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, true, (uint64_t)s, &loss));
        if (s == 0) *first = loss;
        CHECK_OK(sa_train_model_adamw_step(m, &o, lr, NULL));
    }
    CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, false, 0, &loss));
    sa_train_model_free(m);
    return loss;
}

/* Loss curve of `steps` AdamW steps on one batch (the loss before each step), precision prec. */
static void curve(const char *arch, int rank, enum sa_train_precision prec, int threads, int steps, float lr,
                  float *losses) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny_%s", harness_tmpdir(), arch);
    write_tiny(dir, arch);
    struct sa_train_model_params mp = sa_train_model_default_params();
    mp.lora_rank = rank;
    mp.seed = 3;
    mp.precision = prec;
    mp.n_threads = threads;
    struct sa_train_model *m = NULL;
    CHECK_OK(sa_train_model_load(dir, &mp, &m));
    if (!m) return;
    /* 168 rows with a target: more than one LM-head chunk (128 rows), so that bf16 uses the
     * pre-packed head weights */
    enum { B = 8, T = 32 };
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt, B, T, 7);
    CHECK_OK(sa_train_model_reserve(m, B, T, NULL));
    struct sa_train_optim o = sa_train_optim_default();
    o.beta2 = 0.99f;
    for (int s = 0; s < steps; s++) {
        sa_train_model_zero_grad(m);
        CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, true, (uint64_t)s, &losses[s]));
        CHECK_OK(sa_train_model_adamw_step(m, &o, lr, NULL));
    }
    sa_train_model_free(m);
}

/* Mixed precision (issue 4): bf16 products follow the fp32 loss curve. Tolerance: at every
 * step |loss_bf16 - loss_fp32| <= 0.03 + 3% of loss_fp32 (bf16's 2^-9 relative rounding of
 * the GEMM inputs moves a loss of ~4 by ~1e-3 per step; the trajectories drift apart
 * slowly as AdamW amplifies tiny gradient differences), and the bf16 loss falls below 40%
 * of its start. Also: bf16 with 2 threads gives the same bits as with 1. */
static void bf16_vs_fp32(const char *arch, int rank, float lr) {
    enum { S = 60 };
    float l32[S], l16[S], l16t[S];
    curve(arch, rank, SA_TRAIN_FP32, 1, S, lr, l32);
    curve(arch, rank, SA_TRAIN_BF16, 1, S, lr, l16);
    curve(arch, rank, SA_TRAIN_BF16, 2, S, lr, l16t);
    double worst = 0;
    for (int s = 0; s < S; s++) {
        double d = fabs((double)l16[s] - l32[s]);
        if (d > worst) worst = d;
        CHECK_MSG(d <= 0.03 + 0.03 * l32[s], "%s r%d step %d: bf16 loss %.4f vs fp32 %.4f", arch, rank, s, l16[s], l32[s]);
    }
    printf("    %s %s: fp32 %.4f -> %.4f, bf16 %.4f -> %.4f (%d steps), max |diff| %.4f\n", arch,
           rank ? "LoRA r8" : "full FT", l32[0], l32[S - 1], l16[0], l16[S - 1], S, worst);
    CHECK(l16[S - 1] < 0.4f * l16[0]);
    CHECK(memcmp(l16, l16t, sizeof l16) == 0);
    CHECK(worst > 0); /* the bf16 path ran */
}

static void test_bf16_follows_fp32(void) {
    bf16_vs_fp32("llama", 0, 3e-3f);
    bf16_vs_fp32("gemma3", 0, 3e-3f);
    bf16_vs_fp32("llama", 8, 1e-2f);
}

static void test_overfit_full_llama(void) {
    float first, last = overfit("llama", 0, 120, 1e-2f, &first);
    printf("    llama full FT: loss %.4f -> %.4f (120 steps)\n", first, last);
    CHECK(first > 3.0f && last < 0.05f);
}

/* lr 1e-2: at 3e-2 the loss oscillated (0.05 to 1.07 over steps 120-300) and where it ended
 * depended on the BLAS kernels' rounding (0.0004 with OpenBLAS's SkylakeX core, 0.43 with its
 * Prescott fallback); at 1e-2 every core reaches 0.0001. */
static void test_overfit_lora_llama(void) {
    float first, last = overfit("llama", 8, 300, 1e-2f, &first);
    printf("    llama LoRA r8: loss %.4f -> %.4f (300 steps)\n", first, last);
    CHECK(first > 3.0f && last < 0.1f);
}

static void test_overfit_full_gemma3(void) {
    float first, last = overfit("gemma3", 0, 120, 1e-2f, &first);
    printf("    gemma3 full FT: loss %.4f -> %.4f (120 steps)\n", first, last);
    CHECK(first > 3.0f && last < 0.05f);
}

/* grads of the whole model as one vector */
static float *grads_of(struct sa_train_model *m, int64_t *n) {
    *n = 0;
    for (int32_t i = 0; i < sa_train_model_n_tensors(m); i++) {
        struct sa_train_tensor t;
        sa_train_model_tensor(m, i, &t);
        if (t.grad) *n += t.n;
    }
    float *g = malloc((size_t)*n * sizeof *g);
    int64_t k = 0;
    for (int32_t i = 0; i < sa_train_model_n_tensors(m); i++) {
        struct sa_train_tensor t;
        sa_train_model_tensor(m, i, &t);
        if (t.grad) memcpy(g + k, t.grad, (size_t)t.n * sizeof *g), k += t.n;
    }
    return g;
}

static void test_threads_and_accumulation(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny_llama_thr", harness_tmpdir());
    write_tiny(dir, "llama");
    struct sa_train_model *m = NULL;
    struct sa_train_model_params mp = sa_train_model_default_params();
    mp.lora_rank = 4; /* no dropout: its mask depends on the row index inside the micro-batch */
    CHECK_OK(sa_train_model_load(dir, &mp, &m));
    if (!m) return;
    enum { B = 4, T = 20 };
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt, B, T, 5);
    CHECK_OK(sa_train_model_reserve(m, B, T, NULL));
    float l1, l2;
    int64_t n;
    sa_train_model_zero_grad(m);
    CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, true, 7, &l1));
    float *g1 = grads_of(m, &n);
    CHECK_OK(sa_train_model_set_threads(m, 2));
    sa_train_model_zero_grad(m);
    CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, true, 7, &l2));
    float *g2 = grads_of(m, &n);
    CHECK(l1 == l2 && !memcmp(g1, g2, (size_t)n * sizeof *g1));
    /* two micro-batches of 2 with the shared denominator = one batch of 4 */
    int64_t cnt = 0;
    for (int i = 0; i < B * T; i++) cnt += tgt[i] >= 0;
    float a, b;
    sa_train_model_zero_grad(m);
    CHECK_OK(sa_train_model_step_batch(m, tok, tgt, 2, T, (float)cnt, true, 7, &a));
    CHECK_OK(sa_train_model_step_batch(m, tok + 2 * T, tgt + 2 * T, 2, T, (float)cnt, true, 7, &b));
    float *g3 = grads_of(m, &n);
    double err = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) err = fmax(err, fabs(g3[i] - g1[i])), mx = fmax(mx, fabs(g1[i]));
    CHECK_NEAR(a + b, l1, 1e-5);
    CHECK_MSG(err <= 1e-5 * mx, "accumulated gradient error %g of %g", err, mx);
    /* bad input */
    tok[3] = 64;
    CHECK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, true, 7, &a) == SA_STATUS_BAD_ARGUMENT);
    tok[3] = 2;
    CHECK(sa_train_model_step_batch(m, tok, tgt, B + 1, T, 0, true, 7, &a) == SA_STATUS_BAD_ARGUMENT);
    free(g1);
    free(g2);
    free(g3);
    sa_train_model_free(m);
}

/* The trainable values (or with grad, their gradients) as one vector. */
static float *trainable_of(struct sa_train_model *m, bool grad, int64_t *n) {
    float *g = grads_of(m, n);
    int64_t k = 0;
    for (int32_t i = 0; !grad && i < sa_train_model_n_tensors(m); i++) {
        struct sa_train_tensor t;
        sa_train_model_tensor(m, i, &t);
        if (t.grad) memcpy(g + k, t.data, (size_t)t.n * sizeof *g), k += t.n;
    }
    return g;
}

/* Two steps (forward, backward, clipping, AdamW) with the given threads: losses, gradient
 * norms, the gradients of the last step and the values after it. The batch (4 x 128) is
 * large enough that every threaded op (norms, RoPE, GLU, residuals, embedding scatter-add,
 * zeroing, the gradient norm and AdamW) splits its work. */
struct thr_run {
    float loss[2];
    double gnorm[2];
    float *grad, *val;
    int64_t n;
};
static void thr_steps(const char *arch, enum sa_train_precision prec, int threads, struct thr_run *r) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny_%s_thr3", harness_tmpdir(), arch);
    write_tiny(dir, arch);
    struct sa_train_model_params mp = sa_train_model_default_params();
    mp.precision = prec;
    mp.n_threads = threads;
    struct sa_train_model *m = NULL;
    memset(r, 0, sizeof *r);
    CHECK_OK(sa_train_model_load(dir, &mp, &m));
    if (!m) return;
    enum { B = 4, T = 128 };
    static int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt, B, T, 11);
    CHECK_OK(sa_train_model_reserve(m, B, T, NULL));
    struct sa_train_optim o = sa_train_optim_default();
    o.max_grad_norm = 0.5; /* clipping scales the gradients */
    o.weight_decay = 0.1f;
    for (int s = 0; s < 2; s++) {
        sa_train_model_zero_grad(m);
        CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, true, (uint64_t)s, &r->loss[s]));
        if (s == 1) r->grad = trainable_of(m, true, &r->n);
        CHECK_OK(sa_train_model_adamw_step(m, &o, 1e-2f, &r->gnorm[s]));
    }
    r->val = trainable_of(m, false, &r->n);
    sa_train_model_free(m);
}

/* 1, 2 and 3 threads give the same bits in fp32 and bf16 (llama; gemma3 adds its q/k norms,
 * post-norms, GeGLU and the embedding scale). */
static void test_threads_bit_identical(void) {
    const char *archs[2] = {"llama", "gemma3"};
    for (int a = 0; a < 2; a++)
        for (int p = 0; p < 2; p++) {
            enum sa_train_precision prec = p ? SA_TRAIN_BF16 : SA_TRAIN_FP32;
            struct thr_run r1, rt;
            thr_steps(archs[a], prec, 1, &r1);
            CHECK(r1.gnorm[0] > 0.5 && r1.gnorm[1] > 0); /* the clipping ran */
            for (int th = 2; th <= 3; th++) {
                thr_steps(archs[a], prec, th, &rt);
                bool same = rt.n == r1.n && r1.grad && rt.grad && !memcmp(r1.loss, rt.loss, sizeof r1.loss) &&
                            !memcmp(r1.gnorm, rt.gnorm, sizeof r1.gnorm) &&
                            !memcmp(r1.grad, rt.grad, (size_t)r1.n * sizeof(float)) &&
                            !memcmp(r1.val, rt.val, (size_t)r1.n * sizeof(float));
                CHECK_MSG(same, "%s %s: %d threads differ from 1 (loss %.9g vs %.9g)", archs[a], p ? "bf16" : "fp32", th,
                          rt.loss[1], r1.loss[1]);
                free(rt.grad);
                free(rt.val);
            }
            free(r1.grad);
            free(r1.val);
        }
}

static void test_state_roundtrip_and_export(void) {
    char dir[512], ck[512], ex[512];
    snprintf(dir, sizeof dir, "%s/tiny_llama_st", harness_tmpdir());
    snprintf(ck, sizeof ck, "%s/ck", harness_tmpdir());
    snprintf(ex, sizeof ex, "%s/exported", harness_tmpdir());
    write_tiny(dir, "llama");
    struct sa_train_model_params mp = sa_train_model_default_params();
    mp.lora_rank = 4;
    struct sa_train_model *m = NULL, *m2 = NULL, *m3 = NULL;
    CHECK_OK(sa_train_model_load(dir, &mp, &m));
    CHECK_OK(sa_train_model_load(dir, &mp, &m2));
    if (!m || !m2) return;
    enum { B = 2, T = 16 };
    int32_t tok[B * T], tgt[B * T];
    batch(tok, tgt, B, T, 11);
    CHECK_OK(sa_train_model_reserve(m, B, T, NULL));
    CHECK_OK(sa_train_model_reserve(m2, B, T, NULL));
    struct sa_train_optim o = sa_train_optim_default();
    float la[5], lb[2];
    for (int s = 0; s < 5; s++) {
        if (s == 3) {
            CHECK_OK(sa_mkdir_p(ck, 0755));
            CHECK_OK(sa_train_model_save_state(m, ck));
        }
        sa_train_model_zero_grad(m);
        CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, true, (uint64_t)s, &la[s]));
        CHECK_OK(sa_train_model_adamw_step(m, &o, 1e-2f, NULL));
    }
    CHECK_OK(sa_train_model_load_state(m2, ck));
    for (int s = 3; s < 5; s++) {
        sa_train_model_zero_grad(m2);
        CHECK_OK(sa_train_model_step_batch(m2, tok, tgt, B, T, 0, true, (uint64_t)s, &lb[s - 3]));
        CHECK_OK(sa_train_model_adamw_step(m2, &o, 1e-2f, NULL));
    }
    CHECK(la[3] == lb[0] && la[4] == lb[1]);
    /* a full-FT model refuses the LoRA state */
    struct sa_train_model_params fp = sa_train_model_default_params();
    CHECK_OK(sa_train_model_load(dir, &fp, &m3));
    if (m3) CHECK(sa_train_model_load_state(m3, ck) == SA_STATUS_BAD_FILE);
    sa_train_model_free(m3);
    m3 = NULL;
    /* export merges the adapters: the reloaded model gives the same loss without them */
    struct sa_train_export_params ep = sa_train_export_default_params();
    ep.gguf_type = SA_DTYPE_F32;
    CHECK_OK(sa_train_model_export(m, ex, &ep));
    float ref, got;
    CHECK_OK(sa_train_model_step_batch(m, tok, tgt, B, T, 0, false, 0, &ref));
    CHECK_OK(sa_train_model_load(ex, &fp, &m3));
    if (m3) {
        CHECK_OK(sa_train_model_reserve(m3, B, T, NULL));
        CHECK_OK(sa_train_model_step_batch(m3, tok, tgt, B, T, 0, false, 0, &got));
        CHECK_NEAR(got, ref, 1e-5 * fabs(ref));
    }
    char gg[600];
    snprintf(gg, sizeof gg, "%s/model-f32.gguf", ex);
    struct sa_train_model *m4 = NULL;
    CHECK_OK(sa_train_model_load(gg, &fp, &m4)); /* the GGUF reads back (through sa_convert) */
    if (m4) {
        CHECK_OK(sa_train_model_reserve(m4, B, T, NULL));
        CHECK_OK(sa_train_model_step_batch(m4, tok, tgt, B, T, 0, false, 0, &got));
        CHECK_NEAR(got, ref, 1e-5 * fabs(ref));
    }
    sa_train_model_free(m4);
    sa_train_model_free(m3);
    sa_train_model_free(m2);
    sa_train_model_free(m);
}

/* ---- data: a tiny model with SmolLM2's tokenizer and chat template ---- */

/* Writes the GGUF of a tiny model of `vocab` ids with SmolLM2's tokenizer into `gg`; false
 * without SmolLM2. */
static bool tiny_tok_gguf(int vocab, char *gg, size_t n) {
    char base[600], dir[512];
    const char *models = getenv("SALIGN_MODELS");
    char home[400];
    snprintf(home, sizeof home, "%s/.cache/salign", getenv("HOME") ? getenv("HOME") : ".");
    snprintf(base, sizeof base, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", models ? models : home);
    CHECK_MSG(sa_file_exists(base), "missing model %s (run scripts/setup.sh)", base);
    if (!sa_file_exists(base)) return false;
    snprintf(dir, sizeof dir, "%s/tiny_tok_%d", harness_tmpdir(), vocab);
    write_tiny_v(dir, "llama", vocab);
    /* vocabulary of 64 ids is too small for SmolLM2's tokenizer: the data path needs only
     * the tokenizer, so the GGUF pairs it with a model whose embedding is checked lazily */
    snprintf(gg, n, "%s/tiny_tok_%d.gguf", harness_tmpdir(), vocab);
    struct sa_convert_params cp = sa_convert_default_params();
    cp.type = SA_DTYPE_F32;
    cp.tokenizer_gguf = base;
    enum sa_status s = sa_convert(dir, gg, &cp);
    CHECK_OK(s);
    return s == SA_STATUS_OK;
}

static struct sa_train_model *tiny_with_tokenizer(void) {
    char gg[600];
    if (!tiny_tok_gguf(64, gg, sizeof gg)) return NULL;
    struct sa_train_model *m = NULL;
    CHECK_OK(sa_train_model_load(gg, NULL, &m));
    return m;
}

static void test_data(void) {
    struct sa_train_model *m = tiny_with_tokenizer();
    if (!m) return;
    CHECK(m->tok != NULL && m->chat_template != NULL);
    struct sa_records r;
    sa_records_init(&r);
    char prefix[4096] = "";
    for (int i = 1; i <= 30; i++) {
        char s[64];
        snprintf(s, sizeof s, "%sStep %d gives %d apples.", i > 1 ? "\n" : "", i, i * 7);
        strcat(prefix, s);
    }
    struct sa_record a = {SA_RECORD_SENTENCE, "How many apples?", "", "So 3 + 4 = 8.", "So 3 + 4 = 7.", NULL, NULL, NULL, -1};
    struct sa_record b = a;
    b.prefix = prefix;
    char longq[6000];
    memset(longq, 0, sizeof longq);
    for (int i = 0; i < 300; i++) strcat(longq, "apples ");
    struct sa_record c = a;
    c.question = longq;
    CHECK_OK(sa_records_push(&r, &a));
    CHECK_OK(sa_records_push(&r, &b));
    CHECK_OK(sa_records_push(&r, &c));
    struct tr_dataset d;
    CHECK_OK(sa_tr_dataset_build(m, &r, NULL, false, 200, &d));
    CHECK_EQ_INT(d.n, 2);
    CHECK_EQ_INT(d.n_dropped, 1);
    CHECK_EQ_INT(d.n_truncated, 1);
    if (d.n == 2) {
        const struct tr_example *e = &d.ex[0], *t = &d.ex[1];
        CHECK_EQ_INT(e->ids[e->n - 1], sa_tokenizer_eot(m->tok));
        char *txt = NULL;
        struct sa_detokenize_opts o = {true, false};
        size_t tl;
        CHECK_OK(sa_detokenize(m->tok, e->ids + e->n_prompt, (size_t)(e->n - e->n_prompt), o, &txt, &tl));
        CHECK_EQ_STR(txt, "So 3 + 4 = 7.<|im_end|>");
        free(txt);
        CHECK_OK(sa_detokenize(m->tok, e->ids, (size_t)e->n_prompt, o, &txt, &tl));
        CHECK(txt && strstr(txt, "<|im_start|>user\n##Question: How many apples? | ##Answer_Prefix:  | "
                                 "##Answer_Last_Sentence: So 3 + 4 = 8. | ##Your_Revision: <|im_end|>\n"
                                 "<|im_start|>assistant\n") != NULL);
        free(txt);
        CHECK(t->truncated && t->n <= 200 && t->n > 150);
        CHECK_OK(sa_detokenize(m->tok, t->ids, (size_t)t->n_prompt, o, &txt, &tl));
        CHECK(txt && strstr(txt, "How many apples?") && strstr(txt, "Step 30 gives 210 apples.") &&
              !strstr(txt, "Step 1 gives") && strstr(txt, "##Answer_Prefix: Step "));
        free(txt);
        /* batch: right padding, targets only on the target part */
        int64_t idx[2] = {0, 1}, T;
        int32_t *tok = malloc(2 * 200 * sizeof *tok), *tgt = malloc(2 * 200 * sizeof *tgt);
        int64_t nt = sa_tr_batch_fill(&d, idx, 2, 2, 0, tok, tgt, &T);
        CHECK_EQ_INT(T, t->n - 1);
        CHECK_EQ_INT(nt, (e->n - e->n_prompt) + (t->n - t->n_prompt));
        CHECK_EQ_INT(tgt[e->n_prompt - 2], -100);
        CHECK_EQ_INT(tgt[e->n_prompt - 1], e->ids[e->n_prompt]);
        CHECK_EQ_INT(tgt[e->n - 2], sa_tokenizer_eot(m->tok));
        CHECK_EQ_INT(tgt[e->n - 1], -100);
        CHECK_EQ_INT(tok[e->n - 1], 0);
        /* the edit span of "So 3 + 4 = 8." -> "So 3 + 4 = 7.": the one token "7" */
        CHECK_EQ_INT(d.n_edits, 2);
        CHECK_EQ_INT(e->edit_hi - e->edit_lo, 1);
        CHECK_OK(sa_detokenize(m->tok, e->ids + e->n_prompt + e->edit_lo, (size_t)(e->edit_hi - e->edit_lo), o, &txt,
                               &tl));
        CHECK_EQ_STR(txt, "7");
        free(txt);
        /* weights: 0 off the targets, 3 on the edit, 1 elsewhere; their sum */
        float *w = malloc(2 * 200 * sizeof *w);
        double ws = sa_tr_batch_weights(&d, idx, 2, 2, T, 3.0f, w);
        CHECK(ws == (double)nt + 2 * 2);
        for (int64_t t2 = 0; t2 < T; t2++) {
            int32_t j = (int32_t)t2 + 1 - e->n_prompt;
            float want = tgt[t2] < 0 ? 0.0f : j == e->edit_lo ? 3.0f : 1.0f;
            CHECK_MSG(w[t2] == want, "weight of row %lld: %g, want %g", (long long)t2, (double)w[t2], (double)want);
        }
        free(w);
        free(tok);
        free(tgt);
    }
    sa_tr_dataset_free(&d);
    /* epoch order: a permutation, the same for the same (seed, epoch), another for the next epoch */
    struct tr_dataset big = {0};
    big.n = 37;
    big.ex = calloc(37, sizeof *big.ex);
    for (int i = 0; i < 37; i++) big.ex[i].n = 10 + (i * 7) % 13;
    int64_t o1[37], o2[37], o3[37];
    CHECK_OK(sa_tr_epoch_order(&big, 4, 1, 0, o1));
    CHECK_OK(sa_tr_epoch_order(&big, 4, 1, 0, o2));
    CHECK_OK(sa_tr_epoch_order(&big, 4, 1, 1, o3));
    CHECK(!memcmp(o1, o2, sizeof o1) && memcmp(o1, o3, sizeof o1));
    int seen[37] = {0};
    for (int i = 0; i < 37; i++) seen[o1[i]]++;
    for (int i = 0; i < 37; i++) CHECK_EQ_INT(seen[i], 1);
    free(big.ex);
    sa_records_free(&r);
    sa_train_model_free(m);
}

/* the edit span over token ids: prefix and suffix in common, deletions, copies */
static void test_edit_span(void) {
    struct {
        int32_t t[6], nt, o[6], no, lo, hi;
    } c[] = {
        {{1, 2, 3, 9}, 4, {1, 2, 3, 9}, 4, 0, 0},       /* a copy */
        {{1, 2, 7, 9}, 4, {1, 2, 3, 9}, 4, 2, 3},       /* one token replaced */
        {{1, 2, 7, 8, 9}, 5, {1, 2, 3, 9}, 4, 2, 4},    /* replaced by two */
        {{1, 2, 9}, 3, {1, 2, 3, 4, 9}, 5, 2, 3},       /* a deletion: the token after the cut */
        {{1, 2}, 2, {1, 2, 3}, 3, 1, 2},                /* the deletion at the end: the last token */
        {{1, 2, 2, 9}, 4, {1, 2, 9}, 3, 2, 3},          /* an insertion of a repeated token */
        {{5, 6}, 2, {1, 2, 3}, 3, 0, 2},                /* nothing in common */
        {{9}, 1, {1, 2, 9}, 3, 0, 1},                   /* all but the end dropped */
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        int32_t lo = -1, hi = -1;
        sa_tr_edit_span(c[i].t, c[i].nt, c[i].o, c[i].no, &lo, &hi);
        CHECK_MSG(lo == c[i].lo && hi == c[i].hi, "case %zu: [%d, %d), want [%d, %d)", i, lo, hi, c[i].lo, c[i].hi);
    }
}

static void test_lora_targets(void) {
    uint32_t f;
    CHECK(sa_lora_targets_parse("q,k,v,o,gate,up,down", &f) == SA_STATUS_OK && f == SA_LORA_ALL);
    CHECK(sa_lora_targets_parse("q_proj,v_proj", &f) == SA_STATUS_OK && f == (SA_LORA_Q | SA_LORA_V));
    CHECK_EQ_INT(sa_lora_targets_parse("q,,v", &f), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_lora_targets_parse("qq", &f), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "'qq'") != NULL);
    CHECK_EQ_INT(sa_lora_targets_parse("", &f), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(f, SA_LORA_Q | SA_LORA_V); /* unchanged on error */
    enum sa_train_precision pr = SA_TRAIN_FP32;
    CHECK(sa_train_precision_from_name("bfloat16", &pr) == SA_STATUS_OK && pr == SA_TRAIN_BF16);
    CHECK(sa_train_precision_from_name("f32", &pr) == SA_STATUS_OK && pr == SA_TRAIN_FP32);
    CHECK_EQ_INT(sa_train_precision_from_name("fp8", &pr), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_train_precision_from_name(NULL, &pr), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(pr, SA_TRAIN_FP32);
}

/* ---- the run (sa_train_run): progress reports, cancel, exact resume ---- */

struct run_watch {
    int n_start, n_eval, n_resumed, n_export, n_steps, n_ckpt, n_bad;
    int64_t last_step, last_tokens;
    int cancel_after;     /* cancel at the 2nd poll after this many STEP reports; -1: never */
    int polls_since_step; /* cancel polls since the last STEP report */
};

static void watch_progress(void *user, const struct sa_train_progress *pr) {
    struct run_watch *w = user;
    switch (pr->event) {
    case SA_TRAIN_EVENT_START:
        w->n_start++;
        if (!(pr->n_records == 16 && pr->n_train + pr->n_eval == 16 && pr->n_eval > 0 && pr->arch &&
              pr->n_trainable > 0 && pr->n_params >= pr->n_trainable && pr->activation_bytes > 0))
            w->n_bad++;
        break;
    case SA_TRAIN_EVENT_EVAL:
        w->n_eval++;
        if (!(pr->eval_loss > 0) || w->n_steps) w->n_bad++;
        break;
    case SA_TRAIN_EVENT_RESUMED: w->n_resumed++; break;
    case SA_TRAIN_EVENT_EXPORT: w->n_export++; break;
    case SA_TRAIN_EVENT_STEP:
        w->n_steps++;
        w->polls_since_step = 0;
        /* one report per step, in order; the fields of log.csv; log_step every 2 and the last */
        if (pr->step != w->last_step + 1 || !(pr->loss > 0) || !(pr->lr >= 0) || !(pr->grad_norm > 0) ||
            pr->tokens <= w->last_tokens || !(pr->tokens_per_s > 0) || !(pr->eta_s >= 0) ||
            pr->last != (pr->step == pr->total_steps) || pr->log_step != (pr->step % 2 == 0 || pr->last) ||
            pr->checkpoint != pr->last || isnan(pr->eval_loss) != !pr->last)
            w->n_bad++;
        w->n_ckpt += pr->checkpoint;
        w->last_step = pr->step;
        w->last_tokens = pr->tokens;
        break;
    }
}

static bool watch_cancel(void *user) {
    struct run_watch *w = user;
    w->polls_since_step++;
    return w->cancel_after >= 0 && w->n_steps >= w->cancel_after && w->polls_since_step >= 2;
}

static struct sa_train_params run_params(const char *gg, const char *data, const char *out, struct run_watch *w) {
    struct sa_train_params p = sa_train_default_params();
    p.base = gg;
    p.data = data;
    p.out = out;
    p.epochs = 2;
    p.batch = 2;
    p.grad_accum = 2; /* two cancel polls per step: a cancel can come between micro-batches */
    p.max_length = 160;
    p.eval_fraction = 0.25;
    p.log_every = 2;
    p.lr = 1e-3f;
    p.no_export = true;
    p.model.n_threads = 1;
    p.on_progress = watch_progress;
    p.progress_user = w;
    p.cancel = watch_cancel;
    p.cancel_user = w;
    return p;
}

static char *read_at(const char *dir, const char *name) {
    char path[700], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return sa_read_file(path, 0, &text, &len) ? NULL : text;
}

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, what)); p++) n++;
    return n;
}

static void test_run_progress_cancel_resume(void) {
    /* the whole vocabulary of the tokenizer (tied embeddings): the run trains on real text */
    char gg[600];
    if (!tiny_tok_gguf(49152, gg, sizeof gg)) return;
    char data[600], a[600], b[600], c[600];
    snprintf(data, sizeof data, "%s/run.jsonl", harness_tmpdir());
    struct sa_buf j;
    sa_buf_init(&j, 0);
    for (int i = 0; i < 16; i++)
        CHECK_OK(sa_buf_printf(&j, "{\"question\": \"How many apples in basket %d?\", \"prefix\": \"There are %d baskets.\", "
                                   "\"last\": \"So %d + 1 = %d.\", \"correction\": \"So %d + 1 = %d.\"}\n",
                               i, i + 2, i, i + 2, i, i + 1));
    CHECK_OK(sa_write_file_atomic(data, j.data, j.len));
    sa_buf_free(&j);
    snprintf(a, sizeof a, "%s/run_a", harness_tmpdir());
    snprintf(b, sizeof b, "%s/run_b", harness_tmpdir());
    snprintf(c, sizeof c, "%s/run_c", harness_tmpdir());

    /* A: uninterrupted; a report per step, nothing cancelled */
    struct run_watch wa = {.cancel_after = -1};
    struct sa_train_params p = run_params(gg, data, a, &wa);
    struct sa_train_result ra;
    CHECK_OK(sa_train_run(&p, &ra));
    CHECK(ra.total_steps == 6 && ra.steps == 6 && !ra.stopped_early);
    CHECK_EQ_INT(wa.n_start, 1);
    CHECK_EQ_INT(wa.n_eval, 1);
    CHECK_EQ_INT(wa.n_steps, 6);
    CHECK_EQ_INT(wa.n_ckpt, 1);
    CHECK_EQ_INT(wa.n_resumed + wa.n_export, 0);
    CHECK_EQ_INT(wa.n_bad, 0);
    char *svg = read_at(a, "loss.svg");
    const char *head = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"360\"";
    CHECK(svg && !strncmp(svg, head, strlen(head)));
    CHECK_EQ_INT(count_of(svg, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\""), 1);
    CHECK_EQ_INT(count_of(svg, "<circle "), 2); /* held-out loss before and after */
    CHECK(svg && strstr(svg, "</svg>\n") && !strstr(svg, "nan"));
    free(svg);

    /* B: cancelled between the two micro-batches of step 4: CANCELLED, a checkpoint of step 3,
     * and --resume finishes with the log of the uninterrupted run */
    struct run_watch wb = {.cancel_after = 3};
    p = run_params(gg, data, b, &wb);
    struct sa_train_result rb;
    CHECK_EQ_INT(sa_train_run(&p, &rb), SA_STATUS_CANCELLED);
    CHECK(strstr(sa_last_error(), "cancelled after step 3 of 6") != NULL);
    CHECK(rb.steps == 3 && rb.stopped_early);
    CHECK_EQ_INT(wb.n_steps, 3);
    CHECK_EQ_INT(wb.n_bad, 0);
    char *latest = read_at(b, "checkpoint/latest");
    CHECK_EQ_STR(latest, "ckpt-000003\n");
    free(latest);
    struct run_watch wq = {.cancel_after = -1};
    p = run_params(gg, data, b, &wq);
    p.resume = true;
    p.quiet = true; /* no reports */
    CHECK_OK(sa_train_run(&p, &rb));
    CHECK(rb.steps == 6 && !rb.stopped_early);
    CHECK_EQ_INT(wq.n_start + wq.n_eval + wq.n_steps + wq.n_resumed, 0);
    CHECK(wq.polls_since_step == 6); /* cancel is still polled: 3 steps x 2 micro-batches */
    char *log_a = read_at(a, "log.csv"), *log_b = read_at(b, "log.csv");
    CHECK(log_a && log_b && count_of(log_a, "\n") == 8);
    CHECK_EQ_STR(log_b, log_a);
    free(log_a);
    free(log_b);

    /* C: cancelled during the held-out loss before the first step: no checkpoint */
    struct run_watch wc = {.cancel_after = 0};
    p = run_params(gg, data, c, &wc);
    struct sa_train_result rc;
    CHECK_EQ_INT(sa_train_run(&p, &rc), SA_STATUS_CANCELLED);
    CHECK(strstr(sa_last_error(), "before the first step") != NULL);
    CHECK(rc.steps == 0 && wc.n_steps == 0 && wc.n_eval == 0);
    char *none = read_at(c, "checkpoint/latest");
    CHECK(none == NULL);
    free(none);
}

int main(void) {
    RUN(test_overfit_full_llama);
    RUN(test_overfit_lora_llama);
    RUN(test_overfit_full_gemma3);
    RUN(test_threads_and_accumulation);
    RUN(test_threads_bit_identical);
    RUN(test_state_roundtrip_and_export);
    RUN(test_data);
    RUN(test_edit_span);
    RUN(test_lora_targets);
    RUN(test_bf16_follows_fp32);
    RUN(test_run_progress_cancel_resume);
    return harness_summary();
}
