/* fuzz_cvec.c: libFuzzer target for the control-vector reader (src/formats/control_vector.c):
 * the input is loaded with sa_cvec_load_memory; an accepted vector of the shape of a tiny llama
 * (2 layers, hidden 32, written once as a Hugging Face directory) steers one forward pass, and
 * any accepted vector is written back with sa_cvec_save and read again (the same rows), so
 * that a read outside its rows shows up under ASan. Build: make fuzz; run:
 * build-fuzz/fuzz_cvec [corpus]. */
#define _GNU_SOURCE
#include "sa/sa.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sa_model *model;

static int make_model(void) {
    char dir[] = "/tmp/fuzz_cvec_XXXXXX";
    if (!mkdtemp(dir)) return -1;
    const char *cfg = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 8,"
                      " \"hidden_size\": 32, \"intermediate_size\": 32, \"num_hidden_layers\": 2,"
                      " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 16,"
                      " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-6, \"tie_word_embeddings\": true}";
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(cfg, f);
    fclose(f);
    static float w[1024];
    for (int i = 0; i < 1024; i++) w[i] = (float)((i * 37) % 17 - 8) / 64.0f;
    static const struct {
        const char *name;
        int64_t d0, d1;
    } t[] = {{"model.embed_tokens.weight", 8, 32},         {"model.layers.0.self_attn.q_proj.weight", 32, 32},
             {"model.layers.0.self_attn.k_proj.weight", 16, 32}, {"model.layers.0.self_attn.v_proj.weight", 16, 32},
             {"model.layers.0.self_attn.o_proj.weight", 32, 32}, {"model.layers.0.mlp.gate_proj.weight", 32, 32},
             {"model.layers.0.mlp.up_proj.weight", 32, 32},      {"model.layers.0.mlp.down_proj.weight", 32, 32},
             {"model.layers.0.input_layernorm.weight", 32, 0},   {"model.layers.0.post_attention_layernorm.weight", 32, 0},
             {"model.norm.weight", 32, 0},
             {"model.layers.1.self_attn.q_proj.weight", 32, 32},
             {"model.layers.1.self_attn.k_proj.weight", 16, 32},
             {"model.layers.1.self_attn.v_proj.weight", 16, 32},
             {"model.layers.1.self_attn.o_proj.weight", 32, 32},
             {"model.layers.1.mlp.gate_proj.weight", 32, 32},
             {"model.layers.1.mlp.up_proj.weight", 32, 32},
             {"model.layers.1.mlp.down_proj.weight", 32, 32},
             {"model.layers.1.input_layernorm.weight", 32, 0},
             {"model.layers.1.post_attention_layernorm.weight", 32, 0}};
    struct sa_st_writer *sw;
    if (sa_st_writer_init(&sw)) return -1;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t shape[2] = {t[i].d0, t[i].d1};
        if (sa_st_writer_add(sw, t[i].name, SA_DTYPE_F32, t[i].d1 ? 2 : 1, shape, w)) return -1;
    }
    enum sa_status s = sa_st_writer_write_dir(sw, dir, 0);
    sa_st_writer_free(sw);
    struct sa_model_params mp = sa_model_default_params();
    mp.load_tokenizer = false;
    mp.use_mmap = false; /* the files can go */
    mp.n_threads = 1;
    if (!s) s = sa_model_load(dir, &mp, &model);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path)) { /* nothing: a leftover temp dir */
    }
    return s ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!model && make_model()) abort();
    struct sa_cvec *cv = NULL;
    if (sa_cvec_load_memory(data, size, &cv) != SA_STATUS_OK) {
        if (cv) abort(); /* an error must leave *out NULL */
        return 0;
    }
    const int32_t n_layer = sa_cvec_n_layer(cv), n_embd = sa_cvec_n_embd(cv);
    if (n_layer < 2 || n_embd < 1) abort();
    float sum = 0;
    for (int32_t il = 0; il < n_layer; il++)
        for (int32_t e = 0; e < n_embd; e++) sum += sa_cvec_layer(cv, il)[e];
    (void)sum;
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = 8;
    cp.n_threads = 1;
    cp.cvec = cv;
    struct sa_ctx *ctx = NULL;
    const int32_t toks[3] = {1, 5, 7};
    if (sa_ctx_init(model, &cp, &ctx) == SA_STATUS_OK) {
        enum sa_status s = sa_ctx_decode(ctx, toks, 3, NULL);
        (void)s; /* a finite vector may still overflow the stream to Inf: BAD_FILE, not a crash */
    }
    sa_ctx_free(ctx);
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_cvec_%d.gguf", (int)getpid());
    if (sa_cvec_save(cv, path) == SA_STATUS_OK) {
        struct sa_cvec *back = NULL;
        if (sa_cvec_load(path, &back) != SA_STATUS_OK || sa_cvec_n_layer(back) != n_layer) abort();
        for (int32_t il = 1; il < n_layer; il++)
            if (memcmp(sa_cvec_layer(cv, il), sa_cvec_layer(back, il), (size_t)n_embd * sizeof(float))) abort();
        sa_cvec_free(back);
        unlink(path);
    }
    sa_cvec_free(cv);
    return 0;
}
