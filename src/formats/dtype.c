/* dtype.c: the table of tensor element types (GGML numbering, block layouts from
 * quant_blocks_impl.h), scalar half/bfloat16 conversion, and quantization of f32 rows to
 * F32, F16, BF16 and Q8_0 (the types the converter writes). Dequantization: dequant.c. */
#include "sa/dtype.h"

#include "core/core_impl.h"
#include "formats/dtype_impl.h"
#include "formats/quant_blocks_impl.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

struct dtype_info {
    const char *name;  /* NULL: no such type */
    uint32_t block_size; /* elements per block */
    uint32_t type_size;  /* bytes per block */
};

static const struct dtype_info dtype_table[SA_DTYPE_COUNT] = {
    [SA_DTYPE_F32] = {"f32", 1, 4},
    [SA_DTYPE_F16] = {"f16", 1, 2},
    [SA_DTYPE_Q4_0] = {"q4_0", SA_QK4_0, sizeof(sa_block_q4_0)},
    [SA_DTYPE_Q4_1] = {"q4_1", SA_QK4_1, sizeof(sa_block_q4_1)},
    [SA_DTYPE_Q5_0] = {"q5_0", SA_QK5_0, sizeof(sa_block_q5_0)},
    [SA_DTYPE_Q5_1] = {"q5_1", SA_QK5_1, sizeof(sa_block_q5_1)},
    [SA_DTYPE_Q8_0] = {"q8_0", SA_QK8_0, sizeof(sa_block_q8_0)},
    [SA_DTYPE_Q8_1] = {"q8_1", SA_QK8_1, sizeof(sa_block_q8_1)},
    [SA_DTYPE_Q2_K] = {"q2_k", SA_QK_K, sizeof(sa_block_q2_K)},
    [SA_DTYPE_Q3_K] = {"q3_k", SA_QK_K, sizeof(sa_block_q3_K)},
    [SA_DTYPE_Q4_K] = {"q4_k", SA_QK_K, sizeof(sa_block_q4_K)},
    [SA_DTYPE_Q5_K] = {"q5_k", SA_QK_K, sizeof(sa_block_q5_K)},
    [SA_DTYPE_Q6_K] = {"q6_k", SA_QK_K, sizeof(sa_block_q6_K)},
    [SA_DTYPE_Q8_K] = {"q8_k", SA_QK_K, sizeof(sa_block_q8_K)},
    [SA_DTYPE_I8] = {"i8", 1, 1},
    [SA_DTYPE_I16] = {"i16", 1, 2},
    [SA_DTYPE_I32] = {"i32", 1, 4},
    [SA_DTYPE_I64] = {"i64", 1, 8},
    [SA_DTYPE_F64] = {"f64", 1, 8},
    [SA_DTYPE_BF16] = {"bf16", 1, 2},
};

static const struct dtype_info *dtype_get(uint32_t t) {
    return t < SA_DTYPE_COUNT && dtype_table[t].name ? &dtype_table[t] : NULL;
}

const char *sa_dtype_name(enum sa_dtype t) {
    const struct dtype_info *d = dtype_get((uint32_t)t);
    return d ? d->name : NULL;
}

enum sa_status sa_dtype_from_name(const char *name, enum sa_dtype *out) {
    if (!name) return sa_error(SA_STATUS_BAD_ARGUMENT, "tensor type: NULL name");
    for (uint32_t t = 0; t < SA_DTYPE_COUNT; t++) {
        const char *n = dtype_table[t].name;
        if (!n) continue;
        size_t i = 0;
        while (n[i] && name[i] && tolower((unsigned char)name[i]) == n[i]) i++;
        if (!n[i] && !name[i]) {
            if (out) *out = (enum sa_dtype)t;
            return SA_STATUS_OK;
        }
    }
    return sa_error(SA_STATUS_BAD_ARGUMENT, "unknown tensor type '%s'", name);
}

bool sa_dtype_is_known(uint32_t t) { return dtype_get(t) != NULL; }

size_t sa_dtype_block_size(enum sa_dtype t) {
    const struct dtype_info *d = dtype_get((uint32_t)t);
    return d ? d->block_size : 0;
}

size_t sa_dtype_type_size(enum sa_dtype t) {
    const struct dtype_info *d = dtype_get((uint32_t)t);
    return d ? d->type_size : 0;
}

bool sa_dtype_row_bytes(enum sa_dtype t, uint64_t n, uint64_t *bytes) {
    const struct dtype_info *d = dtype_get((uint32_t)t);
    if (!d || n % d->block_size) return false;
    uint64_t b;
    if (!sa_mul_ok(n / d->block_size, d->type_size, &b)) return false;
    if (bytes) *bytes = b;
    return true;
}

float sa_f16_to_f32(uint16_t h) { return sa_half_to_float(h); }
uint16_t sa_f32_to_f16(float f) { return sa_float_to_half(f); }
float sa_bf16_to_f32(uint16_t h) { return sa_bf16_bits_to_float(h); }
uint16_t sa_f32_to_bf16(float f) { return sa_float_to_bf16_bits(f); }

/* ref: quantize_row_q8_0_ref (ggml-quants.c): d = amax / 127, q = roundf(x / d) with ties
 * away from zero; gguf-py's Q8_0.quantize_blocks is bit-exact with it. */
static void quantize_q8_0(const float *x, uint8_t *dst, int64_t n_blocks) {
    for (int64_t i = 0; i < n_blocks; i++, x += SA_QK8_0, dst += sizeof(sa_block_q8_0)) {
        float amax = 0.0f;
        for (int j = 0; j < SA_QK8_0; j++) {
            float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = sa_float_to_half(d);
        memcpy(dst + offsetof(sa_block_q8_0, d), &dh, 2);
        int8_t *qs = (int8_t *)(dst + offsetof(sa_block_q8_0, qs));
        for (int j = 0; j < SA_QK8_0; j++) qs[j] = (int8_t)roundf(x[j] * id);
    }
}

enum sa_status sa_quantize(enum sa_dtype t, const float *src, void *dst, int64_t n) {
    size_t bs = sa_dtype_block_size(t);
    if (n < 0 || (bs && n % (int64_t)bs))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "quantize: %lld elements is not a multiple of the %s block size %zu",
                        (long long)n, sa_dtype_name(t) ? sa_dtype_name(t) : "?", bs);
    if (n && (!src || !dst)) return sa_error(SA_STATUS_BAD_ARGUMENT, "quantize: NULL buffer");
    uint16_t *h = dst;
    switch (t) {
    case SA_DTYPE_F32:
        if (n) memmove(dst, src, (size_t)n * sizeof(float));
        return SA_STATUS_OK;
    case SA_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) h[i] = sa_float_to_half(src[i]);
        return SA_STATUS_OK;
    case SA_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) h[i] = sa_float_to_bf16_bits(src[i]);
        return SA_STATUS_OK;
    case SA_DTYPE_Q8_0:
        quantize_q8_0(src, dst, n / SA_QK8_0);
        return SA_STATUS_OK;
    default:
        return sa_error(SA_STATUS_UNSUPPORTED, "quantize: type %s (%d) is not supported (F32, F16, BF16, Q8_0 are)",
                        sa_dtype_name(t) ? sa_dtype_name(t) : "unknown", (int)t);
    }
}
