/* smollm_model.h: what the tests over the real SmolLM2-135M-Instruct share: loading it from the
 * model cache (scripts/setup.sh pulls it) and the reference log-softmax the tests sum their
 * independent log-probabilities with. Header-only (static functions), for tests only. */
#ifndef SA_TESTS_SMOLLM_MODEL_H
#define SA_TESTS_SMOLLM_MODEL_H

#include "harness.h"
#include "sa/model.h"
#include "sa/status.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* SmolLM2-135M-Instruct (Q4_1) from $SALIGN_MODELS or ~/.cache/salign; NULL and a failed
 * check that says how to get it when it is missing. */
static inline struct sa_model *load_smollm(void) {
    const char *dir = getenv("SALIGN_MODELS");
    char path[1024];
    if (dir) snprintf(path, sizeof path, "%s/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
    else snprintf(path, sizeof path, "%s/.cache/salign/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
                  getenv("HOME") ? getenv("HOME") : ".");
    struct sa_model *m = NULL;
    CHECK_OK(sa_model_load(path, NULL, &m));
    CHECK_MSG(m != NULL, "missing %s: run scripts/setup.sh (salign pull smollm2-135m-instruct)", path);
    return m;
}

/* log softmax(row)[y] over V logits, in double (the plain reference). */
static inline double log_softmax_at(const float *row, int32_t V, int32_t y) {
    double mx = -INFINITY, sum = 0;
    for (int32_t i = 0; i < V; i++)
        if (row[i] > mx) mx = row[i];
    for (int32_t i = 0; i < V; i++) sum += exp(row[i] - mx);
    return row[y] - mx - log(sum);
}

#endif
