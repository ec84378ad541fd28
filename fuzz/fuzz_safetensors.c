/* fuzz_safetensors.c: libFuzzer target for the safetensors reader (sa_safetensors_open_memory).
 * Every accepted file's tensors are read end to end so that AddressSanitizer sees any
 * pointer or size that escapes the buffer. */
#include "sa/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct sa_safetensors *st = NULL;
    if (sa_safetensors_open_memory(data, size, &st) != SA_STATUS_OK) return 0;
    volatile unsigned sum = 0;
    for (int64_t i = 0; i < sa_safetensors_n_tensors(st); i++) {
        const struct sa_st_tensor *t = sa_safetensors_tensor(st, i);
        for (uint64_t k = 0; k < t->n_bytes; k++) sum += ((const uint8_t *)t->data)[k];
        if (sa_safetensors_find(st, t->name) != t) abort();
    }
    (void)sa_safetensors_metadata(st, "format");
    (void)sum;
    sa_safetensors_free(st);
    return 0;
}
