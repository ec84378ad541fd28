/* fuzz_gguf.c: libFuzzer target for the GGUF reader: opens the input with
 * sa_gguf_open_memory and, when it is accepted, walks every accessor (keys, typed getters,
 * strings, arrays, tensors, and dequantizes the small tensors), so that any read outside
 * the input shows up under ASan. Build: make fuzz; run: build-fuzz/fuzz_gguf [corpus]. */
#include "sa/dtype.h"
#include "sa/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

static void walk_kv(const struct sa_gguf *g, int64_t i) {
    const char *key = sa_gguf_key(g, i);
    if (!key || sa_gguf_find_key(g, key) != i) abort();
    uint32_t u;
    int64_t v;
    float f;
    bool b;
    sink += sa_gguf_get_u32(g, key, &u) + sa_gguf_get_i64(g, key, &v) + sa_gguf_get_f32(g, key, &f) +
            sa_gguf_get_bool(g, key, &b);
    enum sa_gguf_type t = sa_gguf_kv_type(g, i);
    if (t == SA_GGUF_TYPE_STRING) {
        struct sa_gguf_str s = sa_gguf_get_str(g, i);
        if (s.len) sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
        free(sa_gguf_get_string(g, key));
    } else if (t == SA_GGUF_TYPE_ARRAY) {
        uint64_t n = sa_gguf_arr_n(g, i);
        if (sa_gguf_arr_type(g, i) == SA_GGUF_TYPE_STRING) {
            for (uint64_t j = 0; j < n; j++) {
                struct sa_gguf_str s = sa_gguf_arr_str(g, i, j);
                if (s.len) sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
            }
        } else {
            const uint8_t *d = sa_gguf_arr_data(g, i);
            uint64_t es;
            switch (sa_gguf_arr_type(g, i)) {
            case SA_GGUF_TYPE_UINT8: case SA_GGUF_TYPE_INT8: case SA_GGUF_TYPE_BOOL: es = 1; break;
            case SA_GGUF_TYPE_UINT16: case SA_GGUF_TYPE_INT16: es = 2; break;
            case SA_GGUF_TYPE_UINT32: case SA_GGUF_TYPE_INT32: case SA_GGUF_TYPE_FLOAT32: es = 4; break;
            default: es = 8; break;
            }
            if (n) sink += d[0] + d[n * es - 1];
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct sa_gguf *g = NULL;
    if (sa_gguf_open_memory(data, size, &g) != SA_STATUS_OK) return 0;
    sink += sa_gguf_version(g) + sa_gguf_alignment(g) + sa_gguf_data_offset(g);
    for (int64_t i = 0; i < sa_gguf_n_kv(g); i++) walk_kv(g, i);
    for (int64_t i = 0; i < sa_gguf_n_tensors(g); i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        if (!t || sa_gguf_find_tensor(g, t->name) != t) abort();
        const uint8_t *d = t->data;
        sink += d[0] + d[t->n_bytes - 1];
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        if (n <= 4096) {
            float *y = malloc((size_t)n * sizeof *y);
            if (sa_dequantize(t->type, t->data, y, n) == SA_STATUS_OK) sink += y[n - 1] != 0;
            free(y);
        }
    }
    sa_gguf_free(g);
    return 0;
}
