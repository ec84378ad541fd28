/* test_steer.c: the residual-stream hooks (sa/steer.h, src/model/steer.c) and control-vector
 * files (src/formats/control_vector.c) on a tiny random llama: a zero vector gives bitwise the
 * plain logits (batched prefill and one-token decode); a steered and a plain context decoded in
 * one batch (sa_batch_decode) give bitwise what each gives alone, hidden states included, and a
 * steered context decoded one token at a time gives what it gives all at once (batch-invariant
 * kernels); the scale is linear in the vector; sa_ctx_init refuses a vector of another shape;
 * sa_ctx_copy_prefix refuses a copy between differently steered contexts; files round-trip and
 * hostile ones (every truncation, bad names, indices, types, shapes, values) are refused with a
 * status, never a crash (ASan: make asan). Against transformers and llama.cpp:
 * tests/py/test_steer.py. */
#include "harness.h"
#include "sa/sa.h"
#include "core/core_impl.h"
#include "formats/dtype_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V = 64, C = 32, L = 2, F = 64, NTOK = 10 };
static const int32_t TOKS[NTOK] = {3, 17, 42, 5, 9, 60, 33, 21, 8, 48};

/* A random llama directory: V 64, C 32, 2 layers, 4 heads of 8, 2 kv heads, F 64. */
static void write_tiny(const char *dir) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": %d,"
             " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": 4,"
             " \"num_key_value_heads\": 2, \"head_dim\": 8, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-6,"
             " \"rope_theta\": 10000.0, \"tie_word_embeddings\": true}",
             V, C, F, L);
    CHECK_OK(sa_mkdir_p(dir, 0755));
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(sa_write_file_atomic(path, cfg, strlen(cfg)));
    struct sa_st_writer *w;
    CHECK_OK(sa_st_writer_init(&w));
    static float store[40000];
    static char names[32][96];
    int64_t used = 0;
    int nn = 0;
    uint64_t x = 4242;
    const struct {
        const char *fmt;
        int64_t d0, d1;
        bool norm;
    } t[] = {{"self_attn.q_proj.weight", 32, 32, 0}, {"self_attn.k_proj.weight", 16, 32, 0},
             {"self_attn.v_proj.weight", 16, 32, 0}, {"self_attn.o_proj.weight", 32, 32, 0},
             {"mlp.gate_proj.weight", F, C, 0},      {"mlp.up_proj.weight", F, C, 0},
             {"mlp.down_proj.weight", C, F, 0},      {"input_layernorm.weight", C, 0, 1},
             {"post_attention_layernorm.weight", C, 0, 1}};
    for (int k = -1; k <= L; k++) {
        const int nt = k < 0 || k == L ? 1 : (int)(sizeof t / sizeof t[0]);
        for (int j = 0; j < nt; j++) {
            int64_t d0 = k < 0 ? V : k == L ? C : t[j].d0, d1 = k < 0 ? C : k == L ? 0 : t[j].d1;
            bool norm = k == L || (k >= 0 && t[j].norm);
            if (k < 0) snprintf(names[nn], sizeof names[nn], "model.embed_tokens.weight");
            else if (k == L) snprintf(names[nn], sizeof names[nn], "model.norm.weight");
            else snprintf(names[nn], sizeof names[nn], "model.layers.%d.%s", k, t[j].fmt);
            const int64_t n = d0 * (d1 ? d1 : 1), shp[2] = {d0, d1};
            for (int64_t i = 0; i < n; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                float u = (float)((x >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
                store[used + i] = norm ? 1.0f + 0.2f * u : 0.5f * u;
            }
            CHECK_OK(sa_st_writer_add(w, names[nn++], SA_DTYPE_F32, d1 ? 2 : 1, shp, store + used));
            used += n;
        }
    }
    CHECK_OK(sa_st_writer_write_dir(w, dir, 0));
    sa_st_writer_free(w);
}

static struct sa_model *model;

static struct sa_model *tiny(void) {
    if (model) return model;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny_steer", harness_tmpdir());
    write_tiny(dir);
    struct sa_model_params p = sa_model_default_params();
    p.load_tokenizer = false;
    p.use_mmap = false;
    p.n_threads = 2;
    CHECK_OK(sa_model_load(dir, &p, &model));
    return model;
}

/* hidden states collected by a callback: (L + 1, NTOK, C) */
struct hidden {
    float h[L + 1][NTOK][C];
    int n_calls;
};

static void on_hidden(void *user, int32_t layer, int32_t pos, const float *h, int32_t n_embd) {
    struct hidden *hs = user;
    hs->n_calls++;
    if (layer < 0 || layer > L || pos < 0 || pos >= NTOK || n_embd != C) {
        CHECK_MSG(0, "hidden state out of range: layer %d pos %d n_embd %d", layer, pos, n_embd);
        return;
    }
    memcpy(hs->h[layer][pos], h, sizeof hs->h[layer][pos]);
}

static struct sa_ctx_params params(const struct sa_cvec *cv, float scale, bool inv) {
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 32;
    cp.n_batch = 4; /* 10 tokens: passes of 4, 4, 2 */
    cp.n_threads = 2;
    cp.batch_invariant = inv;
    cp.cvec = cv;
    cp.cvec_scale = scale;
    return cp;
}

/* logits (NTOK, V) of TOKS: all at once or one token at a time; hidden states into hs (may be NULL) */
static void logits_of(const struct sa_ctx_params *cp, bool one_by_one, float *out, struct hidden *hs) {
    struct sa_ctx_params p = *cp;
    if (hs) p.hidden_cb = on_hidden, p.hidden_user = hs;
    struct sa_ctx *ctx = NULL;
    CHECK_OK(sa_ctx_init(tiny(), &p, &ctx));
    if (!ctx) return;
    if (one_by_one)
        for (int t = 0; t < NTOK; t++) CHECK_OK(sa_ctx_decode_all(ctx, TOKS + t, 1, out + t * V));
    else CHECK_OK(sa_ctx_decode_all(ctx, TOKS, NTOK, out));
    sa_ctx_free(ctx);
}

static struct sa_cvec *random_cvec(float amp, uint64_t seed) {
    struct sa_cvec *cv = NULL;
    CHECK_OK(sa_cvec_init(L, C, &cv));
    if (!cv) return NULL;
    for (int il = 0; il < L; il++) {
        float *r = sa_cvec_layer(cv, il);
        for (int e = 0; e < C; e++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            r[e] = amp * ((float)((seed >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f);
        }
    }
    return cv;
}

static void test_zero_vector_is_no_steering(void) {
    static float plain[NTOK * V], got[NTOK * V];
    struct sa_cvec *zero = NULL;
    CHECK_OK(sa_cvec_init(L, C, &zero));
    for (int inv = 0; inv < 2; inv++)
        for (int obo = 0; obo < 2; obo++) {
            struct sa_ctx_params p0 = params(NULL, 1, inv), pz = params(zero, 1, inv);
            logits_of(&p0, obo, plain, NULL);
            logits_of(&pz, obo, got, NULL);
            CHECK_MSG(!memcmp(plain, got, sizeof got), "zero vector, batch_invariant %d, one by one %d", inv, obo);
            /* a hidden-state callback alone changes nothing either */
            static struct hidden hs;
            logits_of(&p0, obo, got, &hs);
            CHECK(!memcmp(plain, got, sizeof got));
            CHECK_EQ_INT(hs.n_calls, (L + 1) * NTOK);
            hs.n_calls = 0;
        }
    sa_cvec_free(zero);
}

static void test_batch_and_decode_paths(void) {
    struct sa_cvec *cv = random_cvec(3.0f, 99);
    static float plain[NTOK * V], steered[NTOK * V], tmp[NTOK * V];
    static struct hidden hs_alone, hs_batch, hs_obo;
    struct sa_ctx_params pp = params(NULL, 1, true), ps = params(cv, 0.8f, true);
    logits_of(&pp, false, plain, NULL);
    logits_of(&ps, false, steered, &hs_alone);
    double moved = 0;
    for (int i = 0; i < NTOK * V; i++) moved = fmax(moved, fabs(steered[i] - plain[i]));
    CHECK_MSG(moved > 0.1, "the vector moved the logits by %g only", moved);
    /* one token at a time = all at once (batch-invariant kernels): the decode path steers too */
    logits_of(&ps, true, tmp, &hs_obo);
    CHECK(!memcmp(tmp, steered, sizeof tmp));
    CHECK(!memcmp(&hs_obo.h, &hs_alone.h, sizeof hs_obo.h));

    /* a steered and a plain context in one batch: each as alone */
    struct sa_batch_params bp = sa_batch_default_params();
    bp.n_threads = 2;
    bp.n_ctx = 32;
    bp.n_tokens = 6;
    bp.batch_invariant = true;
    struct sa_batch *b = NULL;
    CHECK_OK(sa_batch_init(tiny(), &bp, &b));
    struct sa_ctx *c1 = NULL, *c2 = NULL;
    CHECK_OK(sa_ctx_init(tiny(), &pp, &c1));
    ps.hidden_cb = on_hidden;
    ps.hidden_user = &hs_batch;
    CHECK_OK(sa_ctx_init(tiny(), &ps, &c2));
    static float o1[NTOK * V], o2[NTOK * V];
    struct sa_batch_seq seqs[2] = {{.ctx = c1, .tokens = TOKS, .n = NTOK, .logits_all = o1},
                                   {.ctx = c2, .tokens = TOKS, .n = NTOK, .logits_all = o2}};
    if (b && c1 && c2) {
        CHECK_OK(sa_batch_decode(b, seqs, 2));
        CHECK(!memcmp(o1, plain, sizeof o1));
        CHECK(!memcmp(o2, steered, sizeof o2));
        CHECK(!memcmp(&hs_batch.h, &hs_alone.h, sizeof hs_batch.h));
        /* the cached K/V rows of a steered context are another stream's */
        CHECK_EQ_INT(sa_ctx_copy_prefix(c1, c2, 4), SA_STATUS_BAD_ARGUMENT);
        CHECK(strstr(sa_last_error(), "control vectors") != NULL);
    }
    sa_ctx_free(c2);
    sa_ctx_free(c1);
    sa_batch_free(b);

    /* scale 0 is the plain model; changing a row between calls steers the next call */
    struct sa_ctx_params p0 = params(cv, 0.0f, true);
    logits_of(&p0, false, tmp, NULL);
    CHECK(!memcmp(tmp, plain, sizeof tmp));
    memset(sa_cvec_layer(cv, 0), 0, C * sizeof(float));
    memset(sa_cvec_layer(cv, 1), 0, C * sizeof(float));
    logits_of(&ps, false, tmp, NULL);
    CHECK(!memcmp(tmp, plain, sizeof tmp));
    sa_cvec_free(cv);
}

static void test_bad_params(void) {
    struct sa_ctx *ctx = NULL;
    struct sa_cvec *cv = NULL;
    CHECK_OK(sa_cvec_init(L, C + 1, &cv));
    struct sa_ctx_params p = params(cv, 1, false);
    CHECK_EQ_INT(sa_ctx_init(tiny(), &p, &ctx), SA_STATUS_BAD_ARGUMENT);
    CHECK(ctx == NULL && strstr(sa_last_error(), "another model"));
    sa_cvec_free(cv);
    CHECK_OK(sa_cvec_init(L + 1, C, &cv));
    p.cvec = cv;
    CHECK_EQ_INT(sa_ctx_init(tiny(), &p, &ctx), SA_STATUS_BAD_ARGUMENT);
    sa_cvec_free(cv);
    CHECK_OK(sa_cvec_init(L, C, &cv));
    p.cvec = cv;
    p.cvec_scale = NAN;
    CHECK_EQ_INT(sa_ctx_init(tiny(), &p, &ctx), SA_STATUS_BAD_ARGUMENT);
    sa_cvec_free(cv);
    CHECK_EQ_INT(sa_cvec_init(0, C, &cv), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_cvec_init(1, 0, &cv), SA_STATUS_BAD_ARGUMENT);
    CHECK(cv == NULL);
    sa_cvec_free(NULL);
}

/* A control-vector GGUF in memory: tensors named names[i], each of n[i] f32 values (type: F32
 * unless f16), general.architecture arch (NULL: none). Returns a malloc'd file (size *size). */
static uint8_t *make_file(const char *arch, const char *const *names, const int64_t *n, int nt, bool f16, float fill,
                          size_t *size) {
    static float data[8][C * 2];
    static uint16_t half[C * 2];
    struct sa_gguf_writer *w = NULL;
    CHECK_OK(sa_gguf_writer_init(&w));
    if (!w) return NULL;
    if (arch) CHECK_OK(sa_gguf_writer_set_str(w, "general.architecture", arch));
    CHECK_OK(sa_gguf_writer_set_str(w, "controlvector.model_hint", "llama"));
    CHECK_OK(sa_gguf_writer_set_i32(w, "controlvector.layer_count", nt));
    for (int i = 0; i < nt; i++) {
        for (int e = 0; e < C * 2; e++) data[i][e] = fill * (float)(e + i);
        int64_t ne[4] = {n[i], 1, 1, 1};
        if (f16) {
            for (int e = 0; e < C * 2; e++) half[e] = sa_float_to_half(data[i][e]);
            CHECK_OK(sa_gguf_writer_add_tensor(w, names[i], SA_DTYPE_F16, 1, ne, half));
        } else {
            CHECK_OK(sa_gguf_writer_add_tensor(w, names[i], SA_DTYPE_F32, n[i] == 2 * C ? 2 : 1,
                                               (int64_t[4]){n[i] == 2 * C ? C : n[i], 2, 1, 1}, data[i]));
        }
    }
    char path[512];
    snprintf(path, sizeof path, "%s/cv.gguf", harness_tmpdir());
    CHECK_OK(sa_gguf_writer_write(w, path));
    sa_gguf_writer_free(w);
    uint8_t *buf = NULL;
    CHECK_OK(sa_read_file(path, 1 << 20, (char **)&buf, size));
    return buf;
}

static enum sa_status load_mem(const uint8_t *buf, size_t size) {
    struct sa_cvec *cv = NULL;
    enum sa_status s = sa_cvec_load_memory(buf, size, &cv);
    if (s) CHECK(cv == NULL);
    sa_cvec_free(cv);
    return s;
}

static void test_files(void) {
    /* round trip: what sa_cvec_save writes loads back bit for bit, model hint included */
    struct sa_cvec *cv = random_cvec(2.0f, 5), *back = NULL;
    memset(sa_cvec_layer(cv, 0), 0, C * sizeof(float));
    CHECK_OK(sa_cvec_set_model_hint(cv, "llama"));
    char path[512];
    snprintf(path, sizeof path, "%s/rt.gguf", harness_tmpdir());
    CHECK_OK(sa_cvec_save(cv, path));
    CHECK_OK(sa_cvec_load(path, &back));
    if (back) {
        CHECK_EQ_INT(sa_cvec_n_layer(back), L);
        CHECK_EQ_INT(sa_cvec_n_embd(back), C);
        CHECK_EQ_STR(sa_cvec_model_hint(back), "llama");
        for (int il = 0; il < L; il++) CHECK(!memcmp(sa_cvec_layer(cv, il), sa_cvec_layer(back, il), C * sizeof(float)));
    }
    sa_cvec_free(back);
    /* every truncation of it is refused */
    uint8_t *buf = NULL;
    size_t size = 0;
    CHECK_OK(sa_read_file(path, 1 << 20, (char **)&buf, &size));
    for (size_t n = 0; buf && n < size; n++) CHECK_MSG(load_mem(buf, n) != SA_STATUS_OK, "prefix %zu accepted", n);
    free(buf);
    /* what cannot be saved */
    sa_cvec_layer(cv, 0)[3] = 1.0f;
    CHECK_EQ_INT(sa_cvec_save(cv, path), SA_STATUS_UNSUPPORTED);
    sa_cvec_layer(cv, 0)[3] = 0.0f;
    sa_cvec_layer(cv, 1)[3] = INFINITY;
    CHECK_EQ_INT(sa_cvec_save(cv, path), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_cvec_load("/nonexistent/cv.gguf", &back), SA_STATUS_NOT_FOUND);
    CHECK(sa_cvec_set_model_hint(cv, "0123456789012345678901234567890123456789012345678901234567890123456789") ==
          SA_STATUS_BAD_ARGUMENT);
    sa_cvec_free(cv);

    /* hostile files */
    const struct {
        const char *arch;
        const char *names[2];
        int64_t n[2];
        int nt;
        bool f16;
        float fill;
        const char *msg;
    } bad[] = {
        {"controlvector", {"direction.0"}, {C}, 1, false, 1, "direction.0"},
        {"controlvector", {"direction.x"}, {C}, 1, false, 1, "direction.x"},
        {"controlvector", {"direction.-1"}, {C}, 1, false, 1, "direction.-1"},
        {"controlvector", {"direction.01"}, {C}, 1, false, 1, "direction.01"},
        {"controlvector", {"direction.4096"}, {C}, 1, false, 1, "direction.4096"},
        {"controlvector", {"blk.1.attn_q.weight"}, {C}, 1, false, 1, "blk.1.attn_q.weight"},
        {"controlvector", {"direction.1", "direction.2"}, {C, C - 1}, 2, false, 1, "the first direction"},
        {"controlvector", {"direction.1"}, {2 * C}, 1, false, 1, "2 dimensions"},
        {"controlvector", {"direction.1"}, {C}, 1, true, 1, "expected f32"},
        {"controlvector", {"direction.1"}, {C}, 1, false, NAN, "NaN"},
        {"llama", {"direction.1"}, {C}, 1, false, 1, "not a control vector"},
        {"controlvector", {0}, {0}, 0, false, 1, "no direction tensors"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 0;
        uint8_t *f = make_file(bad[i].arch, bad[i].names, bad[i].n, bad[i].nt, bad[i].f16, bad[i].fill, &n);
        if (!f) continue;
        CHECK_MSG(load_mem(f, n) == SA_STATUS_BAD_FILE, "case %zu (%s) not refused as BAD_FILE", i, bad[i].msg);
        CHECK_MSG(strstr(sa_last_error(), bad[i].msg) != NULL, "case %zu: '%s' not in '%s'", i, bad[i].msg,
                  sa_last_error());
        free(f);
    }
    /* good: no general.architecture (accepted, as llama.cpp ignores it); rows without a tensor are 0 */
    const char *names[2] = {"direction.3", NULL};
    const int64_t ns[2] = {C, C};
    size_t n = 0;
    uint8_t *f = make_file(NULL, names, ns, 1, false, 1, &n);
    struct sa_cvec *g = NULL;
    if (f) CHECK_OK(sa_cvec_load_memory(f, n, &g));
    if (g) {
        CHECK_EQ_INT(sa_cvec_n_layer(g), 4);
        CHECK(sa_cvec_layer(g, 0)[5] == 0.0f && sa_cvec_layer(g, 3)[5] == 5.0f);
    }
    sa_cvec_free(g);
    free(f);
}

int main(void) {
    RUN(test_zero_vector_is_no_steering);
    RUN(test_batch_and_decode_paths);
    RUN(test_bad_params);
    RUN(test_files);
    sa_model_free(model);
    return harness_summary();
}
