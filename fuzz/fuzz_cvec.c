/* fuzz_cvec.c: libFuzzer target for the control-vector reader (src/formats/control_vector.c):
 * the input is loaded with sa_cvec_load_memory; an accepted vector of the shape of a tiny llama
 * (2 layers, hidden 32, written once as a Hugging Face directory) steers one forward pass, and
 * any accepted vector is written back with sa_cvec_save and read again (the same rows), so
 * that a read outside its rows shows up under ASan. Build: make fuzz; run:
 * build-fuzz/fuzz_cvec [corpus]. */
#define _GNU_SOURCE
#include "fuzz_tiny_llama.h"
#include "sa/sa.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sa_model *model;

static int make_model(void) { return fuzz_tiny_llama(2, &model); }

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
