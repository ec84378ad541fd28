/* fuzz_tiny_llama.h: the tiny llama the model-level fuzz targets (fuzz_lora, fuzz_cvec) run
 * their inputs through: N_LAYER layers, hidden 32, 2 heads of 16 (1 KV head), vocabulary 8,
 * fixed weights, written once as a Hugging Face directory in /tmp and loaded without mmap (so
 * the directory can go). Header-only: each target is its own program. */
#ifndef SA_FUZZ_TINY_LLAMA_H
#define SA_FUZZ_TINY_LLAMA_H

#include "sa/sa.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int fuzz_tiny_llama(int n_layer, struct sa_model **out) {
    char dir[] = "/tmp/fuzz_tiny_llama_XXXXXX";
    if (!mkdtemp(dir)) return -1;
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 8,"
            " \"hidden_size\": 32, \"intermediate_size\": 32, \"num_hidden_layers\": %d,"
            " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 16,"
            " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-6, \"tie_word_embeddings\": true}",
            n_layer);
    fclose(f);
    static float w[1024]; /* every tensor's values: the first d0 x d1 of these */
    for (int i = 0; i < 1024; i++) w[i] = (float)((i * 37) % 17 - 8) / 64.0f;
    static const struct {
        const char *name; /* a layer's tensor when it starts with '.' */
        int64_t d0, d1;   /* d1 = 0: a vector */
    } t[] = {{"model.embed_tokens.weight", 8, 32},  {"model.norm.weight", 32, 0},
             {".self_attn.q_proj.weight", 32, 32},  {".self_attn.k_proj.weight", 16, 32},
             {".self_attn.v_proj.weight", 16, 32},  {".self_attn.o_proj.weight", 32, 32},
             {".mlp.gate_proj.weight", 32, 32},     {".mlp.up_proj.weight", 32, 32},
             {".mlp.down_proj.weight", 32, 32},     {".input_layernorm.weight", 32, 0},
             {".post_attention_layernorm.weight", 32, 0}};
    struct sa_st_writer *sw;
    if (sa_st_writer_init(&sw)) return -1;
    enum sa_status s = SA_STATUS_OK;
    for (int il = 0; il < n_layer || il == 0; il++)
        for (size_t i = 0; i < sizeof t / sizeof t[0] && !s; i++) {
            const int per_layer = t[i].name[0] == '.';
            if (per_layer ? il >= n_layer : il > 0) continue;
            char name[128];
            if (per_layer) snprintf(name, sizeof name, "model.layers.%d%s", il, t[i].name);
            else snprintf(name, sizeof name, "%s", t[i].name);
            int64_t shape[2] = {t[i].d0, t[i].d1};
            s = sa_st_writer_add(sw, name, SA_DTYPE_F32, t[i].d1 ? 2 : 1, shape, w);
        }
    if (!s) s = sa_st_writer_write_dir(sw, dir, 0);
    sa_st_writer_free(sw);
    struct sa_model_params mp = sa_model_default_params();
    mp.load_tokenizer = false;
    mp.use_mmap = false; /* the files can go */
    mp.n_threads = 1;
    if (!s) s = sa_model_load(dir, &mp, out);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path)) { /* nothing: a leftover temp dir */
    }
    return s ? -1 : 0;
}

#endif
