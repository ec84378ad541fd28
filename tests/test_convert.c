/* test_convert.c: sa_convert on small synthetic checkpoints of every architecture:
 * safetensors (sharded) -> GGUF -> safetensors gives back the same tensors; GGUF names,
 * llama.cpp's Q/K row permutation (llama only), Gemma's 1 + w norms, Llama 3 rope_freqs,
 * copied tokenizer metadata, and the Q8_0 -> F16 fallback for rows not a multiple of 32. */
#define _GNU_SOURCE
#include "core/core_impl.h"
#include "harness.h"
#include "sa/convert.h"
#include "sa/gguf.h"
#include "sa/model_config.h"
#include "sa/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { H = 64, NH = 4, NKV = 2, HD = 16, FF = 48, V = 40, NL = 2 };

struct arch_case {
    const char *name, *json;
    enum sa_arch arch;
    bool tied, bias, qk_norm, gemma, llama3;
};

static const struct arch_case cases[] = {
    {"llama", "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":40,\"hidden_size\":64,"
              "\"intermediate_size\":48,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
              "\"max_position_embeddings\":1024,\"rope_theta\":500000.0,\"tie_word_embeddings\":false,"
              "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
              "\"original_max_position_embeddings\":8192}}",
     SA_ARCH_LLAMA, false, false, false, false, true},
    {"qwen2", "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":40,\"hidden_size\":64,"
              "\"intermediate_size\":48,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
              "\"max_position_embeddings\":1024,\"tie_word_embeddings\":true}",
     SA_ARCH_QWEN2, true, true, false, false, false},
    {"qwen3", "{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":\"qwen3\",\"vocab_size\":40,\"hidden_size\":64,"
              "\"intermediate_size\":48,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
              "\"head_dim\":16,\"max_position_embeddings\":1024,\"tie_word_embeddings\":true}",
     SA_ARCH_QWEN3, true, false, true, false, false},
    {"gemma3", "{\"architectures\":[\"Gemma3ForCausalLM\"],\"model_type\":\"gemma3_text\",\"vocab_size\":40,\"hidden_size\":64,"
               "\"intermediate_size\":48,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
               "\"head_dim\":16,\"max_position_embeddings\":1024,\"sliding_window\":8,\"query_pre_attn_scalar\":16}",
     SA_ARCH_GEMMA3, true, false, true, true, false},
};

/* a checkpoint in HF names: name, shape, values */
struct ten {
    char name[96];
    int n_dims;
    int64_t shape[2];
    float *data;
};
static struct ten tens[64];
static int n_tens;
static uint64_t rng = 1;

static void add(const char *name, int n_dims, int64_t d0, int64_t d1) {
    struct ten *t = &tens[n_tens++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->shape[0] = d0;
    t->shape[1] = d1;
    int64_t n = n_dims == 1 ? d0 : d0 * d1;
    t->data = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        t->data[i] = (float)((double)(rng >> 40) / (double)(1ull << 24) - 0.5);
    }
}

static void build(const struct arch_case *ac) {
    for (int i = 0; i < n_tens; i++) free(tens[i].data);
    n_tens = 0;
    add("model.embed_tokens.weight", 2, V, H);
    add("model.norm.weight", 1, H, 0);
    if (!ac->tied) add("lm_head.weight", 2, V, H);
    char n[96];
    for (int l = 0; l < NL; l++) {
#define L(part, nd, a, b) (snprintf(n, sizeof n, "model.layers.%d.%s", l, part), add(n, nd, a, b))
        L("self_attn.q_proj.weight", 2, NH * HD, H);
        L("self_attn.k_proj.weight", 2, NKV * HD, H);
        L("self_attn.v_proj.weight", 2, NKV * HD, H);
        L("self_attn.o_proj.weight", 2, H, NH * HD);
        if (ac->bias) {
            L("self_attn.q_proj.bias", 1, NH * HD, 0);
            L("self_attn.k_proj.bias", 1, NKV * HD, 0);
            L("self_attn.v_proj.bias", 1, NKV * HD, 0);
        }
        if (ac->qk_norm) {
            L("self_attn.q_norm.weight", 1, HD, 0);
            L("self_attn.k_norm.weight", 1, HD, 0);
        }
        L("mlp.gate_proj.weight", 2, FF, H);
        L("mlp.up_proj.weight", 2, FF, H);
        L("mlp.down_proj.weight", 2, H, FF);
        L("input_layernorm.weight", 1, H, 0);
        L("post_attention_layernorm.weight", 1, H, 0);
        if (ac->gemma) {
            L("pre_feedforward_layernorm.weight", 1, H, 0);
            L("post_feedforward_layernorm.weight", 1, H, 0);
        }
#undef L
    }
}

static struct ten *find(const char *name) {
    for (int i = 0; i < n_tens; i++)
        if (!strcmp(tens[i].name, name)) return &tens[i];
    return NULL;
}

static char notes[4096];
static void capture(void *user, const char *msg) {
    (void)user;
    strncat(notes, msg, sizeof notes - strlen(notes) - 2);
    strcat(notes, "\n");
}

static const char *tok_gguf(void) {
    static char path[600];
    if (path[0]) return path;
    snprintf(path, sizeof path, "%s/tok.gguf", harness_tmpdir());
    struct sa_gguf_writer *w;
    CHECK_OK(sa_gguf_writer_init(&w));
    struct sa_gguf_str toks[3] = {{"<s>", 3}, {"a", 1}, {"b", 1}};
    CHECK_OK(sa_gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK_OK(sa_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    CHECK_OK(sa_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3));
    int32_t types[3] = {3, 1, 1};
    CHECK_OK(sa_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", SA_GGUF_TYPE_INT32, types, 3));
    CHECK_OK(sa_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0));
    CHECK_OK(sa_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true));
    CHECK_OK(sa_gguf_writer_set_str(w, "tokenizer.chat_template", "{{ messages }}"));
    CHECK_OK(sa_gguf_writer_write(w, path));
    sa_gguf_writer_free(w);
    return path;
}

/* HF row of GGUF row g of a permuted Q/K weight (llama.cpp LlamaModel.permute) */
static int64_t hf_row(int64_t g, int64_t heads, int64_t rows) {
    int64_t hd = rows / heads, h = g / hd, rem = g % hd;
    return h * hd + (rem % 2) * (hd / 2) + rem / 2;
}

static void run_case(const struct arch_case *ac) {
    build(ac);
    char dir[600], gg[700], back[700], q8[700], p[800];
    snprintf(dir, sizeof dir, "%s/%s-hf", harness_tmpdir(), ac->name);
    snprintf(gg, sizeof gg, "%s.f32.gguf", dir);
    snprintf(back, sizeof back, "%s-back", dir);
    snprintf(q8, sizeof q8, "%s.q8_0.gguf", dir);
    CHECK_OK(sa_mkdir_p(dir, 0755));
    snprintf(p, sizeof p, "%s/config.json", dir);
    CHECK_OK(sa_write_file_atomic(p, ac->json, strlen(ac->json)));
    struct sa_st_writer *w;
    CHECK_OK(sa_st_writer_init(&w));
    for (int i = 0; i < n_tens; i++) CHECK_OK(sa_st_writer_add(w, tens[i].name, SA_DTYPE_F32, (uint32_t)tens[i].n_dims, tens[i].shape, tens[i].data));
    CHECK_OK(sa_st_writer_write_dir(w, dir, 16384)); /* sharded input */
    sa_st_writer_free(w);

    /* safetensors -> GGUF f32 */
    struct sa_convert_params cp = sa_convert_default_params();
    cp.type = SA_DTYPE_F32;
    cp.tokenizer_gguf = tok_gguf();
    cp.log = capture;
    CHECK_OK(sa_convert(dir, gg, &cp));
    struct sa_gguf *g = NULL;
    CHECK_OK(sa_gguf_open(gg, &g));
    if (!g) return;
    struct sa_model_config c;
    CHECK_OK(sa_model_config_from_gguf(g, &c));
    CHECK_EQ_INT(c.arch, ac->arch);
    CHECK_EQ_INT(c.n_layer, NL);
    CHECK_EQ_INT(c.n_embd, H);
    CHECK_EQ_INT(c.n_head_kv, NKV);
    CHECK_EQ_INT(c.head_dim, HD);
    CHECK_EQ_INT(c.n_ff, FF);
    CHECK_EQ_INT(c.n_vocab, V);
    CHECK_EQ_INT(c.tie_embeddings, ac->tied);
    if (ac->llama3) {
        CHECK(sa_gguf_find_tensor(g, "rope_freqs.weight") != NULL);
        CHECK_EQ_INT(c.rope_scaling, SA_ROPE_SCALING_LLAMA3); /* recognized from rope_freqs */
        CHECK_NEAR(c.rope_scale_factor, 8, 1e-4);
    }
    if (ac->gemma) CHECK_EQ_INT(c.sliding_window, 8);
    char *tm = sa_gguf_get_string(g, "tokenizer.ggml.model");
    CHECK_EQ_STR(tm, "gpt2");
    free(tm);
    bool b = false;
    CHECK(sa_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) && b);
    int64_t k = sa_gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK(k >= 0 && sa_gguf_arr_n(g, k) == 3 && sa_gguf_arr_str(g, k, 2).len == 1);
    k = sa_gguf_find_key(g, "tokenizer.ggml.token_type");
    int32_t t0 = 0;
    if (k >= 0) memcpy(&t0, sa_gguf_arr_data(g, k), 4); /* GGUF arrays are not aligned */
    CHECK(k >= 0 && sa_gguf_arr_type(g, k) == SA_GGUF_TYPE_INT32 && t0 == 3);

    /* names, the permutation, Gemma's +1 */
    const struct sa_gguf_tensor *q = sa_gguf_find_tensor(g, "blk.1.attn_q.weight");
    const struct sa_gguf_tensor *kk = sa_gguf_find_tensor(g, "blk.1.attn_k.weight");
    struct ten *hq = find("model.layers.1.self_attn.q_proj.weight"), *hk = find("model.layers.1.self_attn.k_proj.weight");
    CHECK(q && kk && q->ne[0] == H && q->ne[1] == NH * HD);
    if (q && kk) {
        bool perm = ac->arch == SA_ARCH_LLAMA;
        int bad = 0;
        for (int64_t r = 0; r < NH * HD; r++)
            bad += memcmp((const float *)q->data + r * H, hq->data + (perm ? hf_row(r, NH, NH * HD) : r) * H, H * 4) != 0;
        for (int64_t r = 0; r < NKV * HD; r++)
            bad += memcmp((const float *)kk->data + r * H, hk->data + (perm ? hf_row(r, NKV, NKV * HD) : r) * H, H * 4) != 0;
        CHECK_EQ_INT(bad, 0);
    }
    const struct sa_gguf_tensor *nrm = sa_gguf_find_tensor(g, ac->gemma ? "blk.0.ffn_norm.weight" : "blk.0.ffn_norm.weight");
    struct ten *hn = find(ac->gemma ? "model.layers.0.pre_feedforward_layernorm.weight" : "model.layers.0.post_attention_layernorm.weight");
    CHECK(nrm && hn);
    if (nrm && hn) CHECK_NEAR(((const float *)nrm->data)[5], hn->data[5] + (ac->gemma ? 1 : 0), 1e-6);
    if (ac->gemma) CHECK(sa_gguf_find_tensor(g, "blk.1.post_ffw_norm.weight") && sa_gguf_find_tensor(g, "blk.1.post_attention_norm.weight"));
    if (ac->bias) CHECK(sa_gguf_find_tensor(g, "blk.0.attn_v.bias") != NULL);
    CHECK_EQ_INT(sa_gguf_find_tensor(g, "output.weight") != NULL, !ac->tied);
    sa_gguf_free(g);

    /* GGUF -> safetensors: the original tensors back */
    cp.to = SA_CONVERT_SAFETENSORS;
    cp.tokenizer_gguf = NULL;
    CHECK_OK(sa_convert(gg, back, &cp));
    struct sa_safetensors *st = NULL;
    CHECK_OK(sa_safetensors_open(back, &st));
    if (st) {
        CHECK_EQ_INT(sa_safetensors_n_tensors(st), n_tens);
        for (int i = 0; i < n_tens; i++) {
            const struct sa_st_tensor *t = sa_safetensors_find(st, tens[i].name);
            CHECK_MSG(t != NULL, "%s: %s missing", ac->name, tens[i].name);
            if (!t) continue;
            CHECK(t->type == SA_DTYPE_F32 && (int)t->n_dims == tens[i].n_dims && t->shape[0] == tens[i].shape[0]);
            double err = 0;
            for (uint64_t j = 0; j < t->n_bytes / 4; j++) err = fmax(err, fabs(((const float *)t->data)[j] - tens[i].data[j]));
            CHECK_MSG(err <= (ac->gemma ? 1e-6 : 0), "%s: %s differs by %g", ac->name, tens[i].name, err);
        }
        sa_safetensors_free(st);
    }
    snprintf(p, sizeof p, "%s/config.json", back);
    char *text;
    size_t len;
    CHECK_OK(sa_read_file(p, 0, &text, &len));
    struct sa_model_config c2;
    CHECK_OK(sa_model_config_from_hf_json(text, len, &c2));
    free(text);
    CHECK_EQ_INT(c2.arch, ac->arch);
    CHECK_EQ_INT(c2.head_dim, HD);
    CHECK_EQ_INT(c2.tie_embeddings, ac->tied);
    CHECK_EQ_INT(c2.rope_scaling, ac->llama3 ? SA_ROPE_SCALING_LLAMA3 : SA_ROPE_SCALING_NONE);

    /* GGUF -> GGUF Q8_0: 1-D stays F32, rows of 48 fall back to F16 */
    cp.to = SA_CONVERT_GGUF;
    cp.type = SA_DTYPE_Q8_0;
    notes[0] = 0;
    CHECK_OK(sa_convert(gg, q8, &cp));
    CHECK(strstr(notes, "blk.0.ffn_down.weight: rows of 48 values are not a multiple of 32: F16 instead of Q8_0") != NULL);
    CHECK_OK(sa_gguf_open(q8, &g));
    if (g) {
        const struct sa_gguf_tensor *t = sa_gguf_find_tensor(g, "blk.0.attn_q.weight");
        CHECK(t && t->type == SA_DTYPE_Q8_0);
        t = sa_gguf_find_tensor(g, "blk.0.ffn_down.weight");
        CHECK(t && t->type == SA_DTYPE_F16);
        t = sa_gguf_find_tensor(g, "output_norm.weight");
        CHECK(t && t->type == SA_DTYPE_F32);
        uint32_t ft = 0;
        CHECK(sa_gguf_get_u32(g, "general.file_type", &ft) && ft == 7);
        sa_gguf_free(g);
    }
}

static void test_llama(void) { run_case(&cases[0]); }
static void test_qwen2(void) { run_case(&cases[1]); }
static void test_qwen3(void) { run_case(&cases[2]); }
static void test_gemma3(void) { run_case(&cases[3]); }

static void test_errors(void) {
    struct sa_convert_params cp = sa_convert_default_params();
    char out[600];
    snprintf(out, sizeof out, "%s/none.gguf", harness_tmpdir());
    CHECK_EQ_INT(sa_convert("/nonexistent/model.gguf", out, &cp), SA_STATUS_NOT_FOUND);
    cp.type = SA_DTYPE_Q4_K;
    CHECK_EQ_INT(sa_convert(tok_gguf(), out, &cp), SA_STATUS_BAD_ARGUMENT);
    cp.type = SA_DTYPE_Q8_0;
    cp.to = SA_CONVERT_SAFETENSORS;
    CHECK_EQ_INT(sa_convert(tok_gguf(), out, &cp), SA_STATUS_BAD_ARGUMENT);
    /* a directory without config.json */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/noconfig", harness_tmpdir());
    CHECK_OK(sa_mkdir_p(dir, 0755));
    cp.type = SA_DTYPE_F16;
    CHECK(sa_convert(dir, out, &cp) != SA_STATUS_OK);
    CHECK(strstr(sa_last_error(), "config.json") != NULL);
    /* a GGUF of an architecture without HF names */
    cp.to = SA_CONVERT_SAFETENSORS;
    CHECK(sa_convert(tok_gguf(), out, &cp) != SA_STATUS_OK);
}

int main(void) {
    RUN(test_llama);
    RUN(test_qwen2);
    RUN(test_qwen3);
    RUN(test_gemma3);
    RUN(test_errors);
    for (int i = 0; i < n_tens; i++) free(tens[i].data);
    return harness_summary();
}
