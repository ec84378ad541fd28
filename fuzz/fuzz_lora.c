/* fuzz_lora.c: libFuzzer target for the LoRA adapter loader (src/model/lora_adapter.c): the
 * input, as a file, is loaded with sa_lora_load over a tiny llama model (1 layer, hidden 32,
 * written once as a Hugging Face directory) and read with sa_lora_file_info; an accepted
 * adapter is applied in one forward pass, so that any read outside its matrices shows up under
 * ASan. Build: make fuzz; run: build-fuzz/fuzz_lora [corpus]. */
#define _GNU_SOURCE
#include "fuzz_tiny_llama.h"
#include "sa/sa.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct sa_model *model;

static int make_model(void) { return fuzz_tiny_llama(1, &model); }

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
