/* fuzz_lora.c: libFuzzer target for the LoRA adapter loader (src/model/lora_adapter.c): the
 * input, as a file, is loaded with sa_lora_load over a tiny llama model (1 layer, hidden 32,
 * written once as a Hugging Face directory) and read with sa_lora_file_info; an accepted
 * adapter is applied in one forward pass, so that any read outside its matrices shows up under
 * ASan. Build: make fuzz; run: build-fuzz/fuzz_lora [corpus]. */
#define _GNU_SOURCE
#include "sa/sa.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct sa_model *model;

static int make_model(void) {
    char dir[] = "/tmp/fuzz_lora_XXXXXX";
    if (!mkdtemp(dir)) return -1;
    const char *cfg = "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 8,"
                      " \"hidden_size\": 32, \"intermediate_size\": 32, \"num_hidden_layers\": 1,"
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
             {"model.norm.weight", 32, 0}};
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
    int fd = memfd_create("adapter", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct sa_lora_info info;
    if (sa_lora_file_info(path, &info) == SA_STATUS_OK && info.n_matrices <= 0) abort();
    struct sa_lora *l = NULL;
    if (sa_lora_load(model, path, NULL, &l) == SA_STATUS_OK) {
        struct sa_ctx_params cp = sa_ctx_default_params();
        cp.n_ctx = 8;
        cp.n_threads = 1;
        cp.lora = l;
        struct sa_ctx *ctx = NULL;
        const int32_t toks[3] = {1, 5, 7};
        if (sa_ctx_init(model, &cp, &ctx) == SA_STATUS_OK && sa_ctx_decode(ctx, toks, 3, NULL) == SA_STATUS_OK) {
            /* a finite adapter over finite weights: the logits are checked by the decode */
        }
        sa_ctx_free(ctx);
    } else if (l) {
        abort(); /* an error must leave *out NULL */
    }
    sa_lora_free(l);
    close(fd);
    return 0;
}
