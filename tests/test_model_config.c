/* test_model_config.c: model hyper-parameters from the cached GGUF models and from
 * config.json texts of each architecture (Llama 3 RoPE scaling, Gemma 3 layer types,
 * multimodal text_config), plus broken and ill-typed configs. */
#define _GNU_SOURCE
#include "core/core_impl.h"
#include "formats/model_config_impl.h"
#include "harness.h"
#include "sa/gguf.h"
#include "sa/model_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *model_path(const char *rel) {
    static char buf[2][1024];
    static int k;
    char *p = buf[k++ % 2];
    const char *dir = getenv("SALIGN_MODELS");
    if (dir) snprintf(p, 1024, "%s/%s", dir, rel);
    else snprintf(p, 1024, "%s/.cache/salign/%s", getenv("HOME") ? getenv("HOME") : ".", rel);
    return p;
}

static void test_gguf_smollm2(void) {
    struct sa_gguf *g = NULL;
    const char *p = model_path("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    CHECK_OK(sa_gguf_open(p, &g));
    if (!g) return;
    struct sa_model_config c;
    CHECK_OK(sa_model_config_from_gguf(g, &c));
    CHECK_EQ_INT(c.arch, SA_ARCH_LLAMA);
    CHECK_EQ_STR(c.arch_name, "llama");
    CHECK(strstr(c.name, "Smollm2") != NULL);
    CHECK_EQ_INT(c.n_layer, 30);
    CHECK_EQ_INT(c.n_embd, 576);
    CHECK_EQ_INT(c.n_head, 9);
    CHECK_EQ_INT(c.n_head_kv, 3);
    CHECK_EQ_INT(c.head_dim, 64);
    CHECK_EQ_INT(c.n_ff, 1536);
    CHECK_EQ_INT(c.n_vocab, 49152);
    CHECK_EQ_INT(c.n_ctx_train, 8192);
    CHECK_NEAR(c.rope_theta, 100000, 1e-3);
    CHECK_NEAR(c.rms_eps, 1e-5, 1e-9);
    CHECK_EQ_INT(c.rope_scaling, SA_ROPE_SCALING_NONE);
    CHECK(c.tie_embeddings);
    CHECK(!c.qkv_bias && !c.qk_norm && !c.embd_scale && !c.gelu_mlp && !c.norm_plus_one);
    CHECK_EQ_INT(c.sliding_window, 0);
    CHECK_OK(sa_model_config_validate(&c));
    sa_gguf_free(g);
}

static void test_gguf_gemma3(void) {
    struct sa_gguf *g = NULL;
    CHECK_OK(sa_gguf_open(model_path("gemma3-270m/gemma-3-270m-q4_k_m.gguf"), &g));
    if (!g) return;
    struct sa_model_config c;
    CHECK_OK(sa_model_config_from_gguf(g, &c));
    CHECK_EQ_INT(c.arch, SA_ARCH_GEMMA3);
    CHECK_EQ_INT(c.n_layer, 18);
    CHECK_EQ_INT(c.n_embd, 640);
    CHECK_EQ_INT(c.n_head, 4);
    CHECK_EQ_INT(c.n_head_kv, 1);
    CHECK_EQ_INT(c.head_dim, 256);
    CHECK_EQ_INT(c.n_ff, 2048);
    CHECK_EQ_INT(c.n_vocab, 262144); /* from tokenizer.ggml.tokens: no gemma3.vocab_size */
    CHECK_EQ_INT(c.n_ctx_train, 32768);
    CHECK_EQ_INT(c.sliding_window, 512);
    CHECK_EQ_INT(c.sliding_window_pattern, 6);
    CHECK_NEAR(c.rope_theta, 1e6, 1e-3);
    CHECK_NEAR(c.rope_theta_local, 10000, 1e-3);
    CHECK_NEAR(c.rms_eps, 1e-6, 1e-10);
    CHECK_NEAR(c.query_pre_attn_scalar, 256, 0);
    CHECK(c.tie_embeddings && c.qk_norm && c.embd_scale && c.gelu_mlp);
    CHECK(!c.norm_plus_one); /* GGUF norms already hold 1 + w */
    CHECK(!c.qkv_bias);
    CHECK_EQ_INT(c.final_logit_softcap, 0);
    sa_gguf_free(g);
}

static void test_gguf_synthetic(void) {
    /* a Qwen2 with linear RoPE scaling and an output tensor; an unknown architecture */
    struct sa_gguf_writer *w = NULL;
    CHECK_OK(sa_gguf_writer_init(&w));
    if (!w) return;
    CHECK_OK(sa_gguf_writer_set_str(w, "general.architecture", "qwen2"));
    CHECK_OK(sa_gguf_writer_set_u32(w, "qwen2.block_count", 2));
    CHECK_OK(sa_gguf_writer_set_u32(w, "qwen2.embedding_length", 64));
    CHECK_OK(sa_gguf_writer_set_u32(w, "qwen2.feed_forward_length", 128));
    CHECK_OK(sa_gguf_writer_set_u32(w, "qwen2.attention.head_count", 4));
    CHECK_OK(sa_gguf_writer_set_u32(w, "qwen2.attention.head_count_kv", 2));
    CHECK_OK(sa_gguf_writer_set_u32(w, "qwen2.context_length", 4096));
    CHECK_OK(sa_gguf_writer_set_u32(w, "qwen2.vocab_size", 100));
    CHECK_OK(sa_gguf_writer_set_str(w, "qwen2.rope.scaling.type", "linear"));
    CHECK_OK(sa_gguf_writer_set_f32(w, "qwen2.rope.scaling.factor", 4.0f));
    static float out[64 * 100];
    int64_t ne[4] = {64, 100, 1, 1};
    CHECK_OK(sa_gguf_writer_add_tensor(w, "output.weight", SA_DTYPE_F32, 2, ne, out));
    char path[600];
    snprintf(path, sizeof path, "%s/q.gguf", harness_tmpdir());
    CHECK_OK(sa_gguf_writer_write(w, path));
    struct sa_gguf *g = NULL;
    CHECK_OK(sa_gguf_open(path, &g));
    struct sa_model_config c;
    if (g) {
        CHECK_OK(sa_model_config_from_gguf(g, &c));
        CHECK_EQ_INT(c.arch, SA_ARCH_QWEN2);
        CHECK(c.qkv_bias && !c.tie_embeddings);
        CHECK_EQ_INT(c.head_dim, 16);
        CHECK_EQ_INT(c.rope_scaling, SA_ROPE_SCALING_LINEAR);
        CHECK_NEAR(c.rope_scale_factor, 4, 0);
        sa_gguf_free(g);
    }
    /* a broken value: head_count_kv that does not divide head_count */
    CHECK_OK(sa_gguf_writer_set_u32(w, "qwen2.attention.head_count_kv", 3));
    CHECK_OK(sa_gguf_writer_write(w, path));
    CHECK_OK(sa_gguf_open(path, &g));
    if (g) {
        CHECK(sa_model_config_from_gguf(g, &c) != SA_STATUS_OK);
        CHECK(strstr(sa_last_error(), "n_head_kv") != NULL);
        sa_gguf_free(g);
    }
    CHECK_OK(sa_gguf_writer_set_str(w, "general.architecture", "mamba"));
    CHECK_OK(sa_gguf_writer_write(w, path));
    CHECK_OK(sa_gguf_open(path, &g));
    if (g) {
        CHECK_EQ_INT(sa_model_config_from_gguf(g, &c), SA_STATUS_UNSUPPORTED);
        CHECK(strstr(sa_last_error(), "mamba") != NULL);
        sa_gguf_free(g);
    }
    sa_gguf_writer_free(w);
}

/* ---- config.json ---- */

static enum sa_status hf(const char *json, struct sa_model_config *c) {
    return sa_model_config_from_hf_json(json, strlen(json), c);
}

static const char *smollm2_json =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"attention_bias\": false, \"attention_dropout\": 0.0,"
    " \"bos_token_id\": 1, \"eos_token_id\": 2, \"hidden_act\": \"silu\", \"hidden_size\": 576,"
    " \"initializer_range\": 0.041666666666666664, \"intermediate_size\": 1536, \"is_llama_config\": true,"
    " \"max_position_embeddings\": 8192, \"model_type\": \"llama\", \"num_attention_heads\": 9,"
    " \"num_hidden_layers\": 30, \"num_key_value_heads\": 3, \"pad_token_id\": 2, \"pretraining_tp\": 1,"
    " \"rms_norm_eps\": 1e-05, \"rope_interleaved\": false, \"rope_scaling\": null, \"rope_theta\": 100000,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.42.3\","
    " \"use_cache\": true, \"vocab_size\": 49152}";

static void test_hf_llama(void) {
    struct sa_model_config c;
    CHECK_OK(hf(smollm2_json, &c));
    CHECK_EQ_INT(c.arch, SA_ARCH_LLAMA);
    CHECK_EQ_INT(c.n_layer, 30);
    CHECK_EQ_INT(c.n_embd, 576);
    CHECK_EQ_INT(c.n_head, 9);
    CHECK_EQ_INT(c.n_head_kv, 3);
    CHECK_EQ_INT(c.head_dim, 64);
    CHECK_EQ_INT(c.n_ff, 1536);
    CHECK_EQ_INT(c.n_vocab, 49152);
    CHECK_NEAR(c.rope_theta, 100000, 0);
    CHECK_NEAR(c.rms_eps, 1e-5, 1e-10);
    CHECK(c.tie_embeddings && !c.qkv_bias);
    CHECK_EQ_INT(c.rope_scaling, SA_ROPE_SCALING_NONE);

    /* Llama 3.2 1B: llama3 RoPE scaling, explicit head_dim */
    const char *l32 =
        "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":2048,"
        "\"intermediate_size\":8192,\"num_hidden_layers\":16,\"num_attention_heads\":32,\"num_key_value_heads\":8,"
        "\"head_dim\":64,\"max_position_embeddings\":131072,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,"
        "\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
        "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},\"tie_word_embeddings\":true,"
        "\"vocab_size\":128256}";
    CHECK_OK(hf(l32, &c));
    CHECK_EQ_INT(c.rope_scaling, SA_ROPE_SCALING_LLAMA3);
    CHECK_NEAR(c.rope_scale_factor, 32, 0);
    CHECK_NEAR(c.rope_low_freq_factor, 1, 0);
    CHECK_NEAR(c.rope_high_freq_factor, 4, 0);
    CHECK_EQ_INT(c.rope_orig_ctx, 8192);
    CHECK_EQ_INT(c.n_ctx_train, 131072);
    CHECK_NEAR(c.rope_theta, 500000, 0);
    /* the factors: 1 for short wavelengths, `factor` for long ones, smooth in between */
    float f[32];
    sa_llama3_rope_factors(&c, f);
    CHECK_NEAR(f[0], 1, 0);
    CHECK_NEAR(f[31], 32, 0);
    for (int i = 1; i < 32; i++) CHECK(f[i] >= f[i - 1]);

    /* linear scaling with the old "type" key */
    const char *lin =
        "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2,"
        "\"num_attention_heads\":4,\"vocab_size\":10,\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}";
    CHECK_OK(hf(lin, &c));
    CHECK_EQ_INT(c.rope_scaling, SA_ROPE_SCALING_LINEAR);
    CHECK_NEAR(c.rope_scale_factor, 2, 0);
    CHECK_EQ_INT(c.n_head_kv, 4); /* defaults to num_attention_heads */
    CHECK(!c.tie_embeddings);     /* LlamaConfig default */
}

static void test_hf_qwen(void) {
    const char *q2 =
        "{\"architectures\":[\"Qwen2ForCausalLM\"],\"attention_dropout\":0.0,\"bos_token_id\":151643,"
        "\"eos_token_id\":151645,\"hidden_act\":\"silu\",\"hidden_size\":896,\"initializer_range\":0.02,"
        "\"intermediate_size\":4864,\"max_position_embeddings\":32768,\"max_window_layers\":21,\"model_type\":\"qwen2\","
        "\"num_attention_heads\":14,\"num_hidden_layers\":24,\"num_key_value_heads\":2,\"rms_norm_eps\":1e-06,"
        "\"rope_theta\":1000000.0,\"sliding_window\":32768,\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\","
        "\"use_cache\":true,\"use_sliding_window\":false,\"vocab_size\":151936}";
    struct sa_model_config c;
    CHECK_OK(hf(q2, &c));
    CHECK_EQ_INT(c.arch, SA_ARCH_QWEN2);
    CHECK_EQ_INT(c.n_embd, 896);
    CHECK_EQ_INT(c.n_head, 14);
    CHECK_EQ_INT(c.n_head_kv, 2);
    CHECK_EQ_INT(c.head_dim, 64);
    CHECK_EQ_INT(c.n_vocab, 151936);
    CHECK(c.qkv_bias && c.tie_embeddings && !c.qk_norm);
    CHECK_EQ_INT(c.sliding_window, 0);
    CHECK_NEAR(c.rms_eps, 1e-6, 1e-12);

    const char *q3 =
        "{\"architectures\":[\"Qwen3ForCausalLM\"],\"attention_bias\":false,\"head_dim\":128,\"hidden_act\":\"silu\","
        "\"hidden_size\":1024,\"intermediate_size\":3072,\"max_position_embeddings\":40960,\"model_type\":\"qwen3\","
        "\"num_attention_heads\":16,\"num_hidden_layers\":28,\"num_key_value_heads\":8,\"rms_norm_eps\":1e-06,"
        "\"rope_scaling\":null,\"rope_theta\":1000000,\"tie_word_embeddings\":true,\"vocab_size\":151936}";
    CHECK_OK(hf(q3, &c));
    CHECK_EQ_INT(c.arch, SA_ARCH_QWEN3);
    CHECK_EQ_INT(c.head_dim, 128); /* not hidden/heads = 64 */
    CHECK(c.qk_norm && !c.qkv_bias);
    CHECK_EQ_INT(c.n_layer, 28);
}

static const char *gemma_270m_json =
    "{\"_sliding_window_pattern\": 6, \"architectures\": [\"Gemma3ForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"attn_logit_softcapping\": null, \"bos_token_id\": 2, \"eos_token_id\": 1,"
    " \"final_logit_softcapping\": null, \"head_dim\": 256, \"hidden_activation\": \"gelu_pytorch_tanh\","
    " \"hidden_size\": 640, \"initializer_range\": 0.02, \"intermediate_size\": 2048,"
    " \"layer_types\": [\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
    "\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\","
    "\"sliding_attention\",\"sliding_attention\",\"full_attention\",\"sliding_attention\",\"sliding_attention\","
    "\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"full_attention\"],"
    " \"max_position_embeddings\": 32768, \"model_type\": \"gemma3_text\", \"num_attention_heads\": 4,"
    " \"num_hidden_layers\": 18, \"num_key_value_heads\": 1, \"pad_token_id\": 0, \"query_pre_attn_scalar\": 256,"
    " \"rms_norm_eps\": 1e-06, \"rope_local_base_freq\": 10000.0, \"rope_scaling\": null, \"rope_theta\": 1000000.0,"
    " \"sliding_window\": 512, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.55.0.dev0\","
    " \"use_bidirectional_attention\": false, \"use_cache\": true, \"vocab_size\": 262144}";

static void test_hf_gemma3(void) {
    struct sa_model_config c;
    CHECK_OK(hf(gemma_270m_json, &c));
    CHECK_EQ_INT(c.arch, SA_ARCH_GEMMA3);
    CHECK_EQ_INT(c.n_layer, 18);
    CHECK_EQ_INT(c.n_embd, 640);
    CHECK_EQ_INT(c.head_dim, 256);
    CHECK_EQ_INT(c.n_head, 4);
    CHECK_EQ_INT(c.n_head_kv, 1);
    CHECK_EQ_INT(c.sliding_window, 512);
    CHECK_EQ_INT(c.sliding_window_pattern, 6);
    CHECK_NEAR(c.rope_theta_local, 10000, 0);
    CHECK_NEAR(c.rope_theta, 1e6, 0);
    CHECK_NEAR(c.query_pre_attn_scalar, 256, 0);
    CHECK(c.tie_embeddings && c.qk_norm && c.embd_scale && c.gelu_mlp && c.norm_plus_one);
    CHECK_EQ_INT(c.final_logit_softcap, 0);

    /* multimodal Gemma 3 4B: the text model lives in text_config; Gemma3TextConfig defaults fill the gaps */
    const char *mm =
        "{\"architectures\":[\"Gemma3ForConditionalGeneration\"],\"model_type\":\"gemma3\",\"boi_token_index\":255999,"
        "\"text_config\":{\"hidden_size\":2560,\"intermediate_size\":10240,\"model_type\":\"gemma3_text\","
        "\"num_hidden_layers\":34,\"rope_scaling\":{\"factor\":8.0,\"rope_type\":\"linear\"},\"sliding_window\":1024},"
        "\"vision_config\":{\"hidden_size\":1152}}";
    CHECK_OK(hf(mm, &c));
    CHECK_EQ_INT(c.arch, SA_ARCH_GEMMA3);
    CHECK_EQ_INT(c.n_embd, 2560);
    CHECK_EQ_INT(c.n_layer, 34);
    CHECK_EQ_INT(c.n_head, 8);        /* default */
    CHECK_EQ_INT(c.n_vocab, 262208);  /* default */
    CHECK_EQ_INT(c.sliding_window, 1024);
    CHECK_EQ_INT(c.rope_scaling, SA_ROPE_SCALING_LINEAR);
    CHECK_NEAR(c.rope_scale_factor, 8, 0);

    /* softcapping and transformers 5 rope_parameters per layer type */
    const char *v5 =
        "{\"model_type\":\"gemma3_text\",\"hidden_size\":640,\"intermediate_size\":2048,\"num_hidden_layers\":4,"
        "\"num_attention_heads\":4,\"num_key_value_heads\":1,\"vocab_size\":1000,\"final_logit_softcapping\":30.0,"
        "\"sliding_window_pattern\":2,\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"default\",\"rope_theta\":1000000.0},"
        "\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":20000.0}}}";
    CHECK_OK(hf(v5, &c));
    CHECK_NEAR(c.final_logit_softcap, 30, 0);
    CHECK_EQ_INT(c.sliding_window_pattern, 2);
    CHECK_NEAR(c.rope_theta_local, 20000, 0);
    CHECK_NEAR(c.rope_theta, 1e6, 0);
}

static void test_hf_broken(void) {
    static const struct {
        const char *json;
        int status;
        const char *what;
    } cases[] = {
        {"", SA_STATUS_BAD_JSON, "not valid JSON"},
        {"{\"model_type\":\"llama\",", SA_STATUS_BAD_JSON, "not valid JSON"},
        {"[1,2,3]", SA_STATUS_BAD_JSON, "not a JSON object"},
        {"{}", SA_STATUS_UNSUPPORTED, "(none)"},
        {"{\"model_type\":\"mistral\"}", SA_STATUS_UNSUPPORTED, "mistral"},
        {"{\"model_type\":7}", SA_STATUS_BAD_JSON, "model_type"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64}", SA_STATUS_BAD_JSON, "vocab_size"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":\"64\",\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4}", SA_STATUS_BAD_JSON, "hidden_size"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64.5,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4}", SA_STATUS_BAD_JSON, "hidden_size"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"rms_norm_eps\":\"x\"}", SA_STATUS_BAD_JSON, "rms_norm_eps"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"tie_word_embeddings\":1}", SA_STATUS_BAD_JSON, "tie_word_embeddings"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":3}", SA_STATUS_BAD_JSON, "n_head_kv"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":-2,\"num_attention_heads\":4}", SA_STATUS_BAD_JSON, "n_layer"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"max_position_embeddings\":1e30}", SA_STATUS_BAD_JSON,
         "max_position_embeddings"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}",
         SA_STATUS_UNSUPPORTED, "yarn"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}",
         SA_STATUS_BAD_JSON, "low_freq_factor"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"rope_scaling\":[1]}", SA_STATUS_BAD_JSON, "rope_scaling"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"rms_norm_eps\":0}", SA_STATUS_BAD_JSON, "rms_eps"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"hidden_act\":\"relu\"}", SA_STATUS_UNSUPPORTED, "hidden_act"},
        {"{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"head_dim\":7}", SA_STATUS_BAD_JSON, "head_dim"},
        {"{\"model_type\":\"gemma3\"}", SA_STATUS_BAD_JSON, "text_config"},
        {"{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":3,\"layer_types\":[\"full_attention\",\"x\",\"y\"]}",
         SA_STATUS_BAD_JSON, "layer_types[1]"},
        {"{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":2,\"layer_types\":[\"full_attention\"]}",
         SA_STATUS_BAD_JSON, "layer_types"},
        {"{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":3,\"layer_types\":[\"sliding_attention\",\"full_attention\",\"full_attention\"]}",
         SA_STATUS_UNSUPPORTED, "repeating"},
        {"{\"model_type\":\"gemma3_text\",\"sliding_window\":-1}", SA_STATUS_BAD_JSON, "sliding_window"},
        {"{\"model_type\":\"qwen2\",\"vocab_size\":10,\"hidden_size\":64,\"intermediate_size\":128,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"use_sliding_window\":true}", SA_STATUS_UNSUPPORTED, "sliding"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sa_model_config c;
        enum sa_status s = hf(cases[i].json, &c);
        CHECK_MSG((int)s == cases[i].status, "case %zu: status %d, expected %d (%s)", i, s, cases[i].status, sa_last_error());
        CHECK_MSG(strstr(sa_last_error(), cases[i].what), "case %zu: \"%s\" lacks \"%s\"", i, sa_last_error(), cases[i].what);
    }
    struct sa_model_config c;
    CHECK_EQ_INT(sa_model_config_from_hf_json(NULL, 0, &c), SA_STATUS_BAD_ARGUMENT);
    /* truncated prefixes of a valid config never crash */
    size_t n = strlen(gemma_270m_json);
    for (size_t k = 0; k < n; k += 7)
        if (sa_model_config_from_hf_json(gemma_270m_json, k, &c) == SA_STATUS_OK) CHECK_EQ_INT(k, n);
}

static void test_names(void) {
    enum sa_arch a = SA_ARCH_UNKNOWN;
    CHECK_OK(sa_arch_from_name("qwen3", &a));
    CHECK_EQ_INT(a, SA_ARCH_QWEN3);
    CHECK_EQ_INT(sa_arch_from_name("gpt2", &a), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "'gpt2'") != NULL);
    CHECK_EQ_INT(a, SA_ARCH_QWEN3);
    CHECK_EQ_INT(sa_arch_from_name("unknown", &a), SA_STATUS_BAD_ARGUMENT); /* the name of no architecture */
    CHECK_EQ_INT(sa_arch_from_name(NULL, &a), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_STR(sa_arch_name(SA_ARCH_GEMMA3), "gemma3");
    CHECK_EQ_STR(sa_arch_name((enum sa_arch)99), "unknown");
    struct sa_model_config c;
    sa_model_config_defaults(&c, SA_ARCH_GEMMA3);
    CHECK_NEAR(c.rope_theta_local, 10000, 0);
    CHECK_EQ_INT(c.sliding_window_pattern, 6);
    CHECK_EQ_INT(sa_model_config_validate(&c), SA_STATUS_BAD_FILE); /* sizes are still 0 */
    CHECK(strstr(sa_last_error(), "n_vocab") != NULL);
}

int main(void) {
    RUN(test_gguf_smollm2);
    RUN(test_gguf_gemma3);
    RUN(test_gguf_synthetic);
    RUN(test_hf_llama);
    RUN(test_hf_qwen);
    RUN(test_hf_gemma3);
    RUN(test_hf_broken);
    RUN(test_names);
    return harness_summary();
}
