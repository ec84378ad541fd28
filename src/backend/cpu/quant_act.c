/* quant_act.c: quantization of activation rows (f32) to 8 bits for the integer dot products:
 * sa_block_q8a (32 elements, for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights) and sa_block_q8_K (256
 * elements, for the K-quants), plus the per-type layout table of the backend. Plain C,
 * shared by every path, so that all paths see bit-identical activations. */
#include "backend/cpu/kernels_impl.h"

#include <math.h>

void sa_cpu_type_layout(enum sa_dtype t, int64_t *block, size_t *bytes) {
    int64_t b = 0;
    size_t s = 0;
    switch (t) {
    case SA_DTYPE_F32: b = 1, s = 4; break;
    case SA_DTYPE_F16: b = 1, s = 2; break;
    case SA_DTYPE_BF16: b = 1, s = 2; break;
    case SA_DTYPE_Q4_0: b = 32, s = sizeof(sa_block_q4_0); break;
    case SA_DTYPE_Q4_1: b = 32, s = sizeof(sa_block_q4_1); break;
    case SA_DTYPE_Q5_0: b = 32, s = sizeof(sa_block_q5_0); break;
    case SA_DTYPE_Q5_1: b = 32, s = sizeof(sa_block_q5_1); break;
    case SA_DTYPE_Q8_0: b = 32, s = sizeof(sa_block_q8_0); break;
    case SA_DTYPE_Q8_1: b = 32, s = sizeof(sa_block_q8_1); break;
    case SA_DTYPE_Q2_K: b = 256, s = sizeof(sa_block_q2_K); break;
    case SA_DTYPE_Q3_K: b = 256, s = sizeof(sa_block_q3_K); break;
    case SA_DTYPE_Q4_K: b = 256, s = sizeof(sa_block_q4_K); break;
    case SA_DTYPE_Q5_K: b = 256, s = sizeof(sa_block_q5_K); break;
    case SA_DTYPE_Q6_K: b = 256, s = sizeof(sa_block_q6_K); break;
    case SA_DTYPE_Q8_K: b = 256, s = sizeof(sa_block_q8_K); break;
    default: break;
    }
    *block = b;
    *bytes = s;
}

enum sa_act_kind sa_cpu_act_kind(enum sa_dtype wtype) {
    switch (wtype) {
    case SA_DTYPE_Q4_0:
    case SA_DTYPE_Q4_1:
    case SA_DTYPE_Q5_0:
    case SA_DTYPE_Q5_1:
    case SA_DTYPE_Q8_0: return SA_ACT_Q8A;
    case SA_DTYPE_Q2_K:
    case SA_DTYPE_Q3_K:
    case SA_DTYPE_Q4_K:
    case SA_DTYPE_Q5_K:
    case SA_DTYPE_Q6_K: return SA_ACT_Q8K;
    default: return SA_ACT_F32;
    }
}

size_t sa_cpu_act_row_bytes(enum sa_act_kind kind, int64_t n) {
    switch (kind) {
    case SA_ACT_Q8A: return (size_t)(n / 32) * sizeof(sa_block_q8a);
    case SA_ACT_Q8K: return (size_t)(n / 256) * sizeof(sa_block_q8_K);
    default: return (size_t)n * sizeof(float);
    }
}

/* round(v) to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the rounded
 * integer in the low mantissa bits (ref: ggml nearest_int). Branch-free, vectorizes. */
static inline int round_i(float v) {
    float f = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &f, 4);
    return (i & 0x007fffff) - 0x00400000;
}

void sa_quantize_row_q8a(const float *x, sa_block_q8a *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            int q = round_i(x[i] * id);
            q = q > 127 ? 127 : q < -127 ? -127 : q; /* x*id can round just past 127 */
            y[b].qs[i] = (int8_t)q;
            sum += q;
        }
        y[b].d = d;
        y[b].s = d * (float)sum;
    }
}

void sa_quantize_row_q8k(const float *x, sa_block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 256) {
        float amax = 0.0f;
        for (int i = 0; i < 256; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int i = 0; i < 256; i++) {
            int q = round_i(x[i] * id);
            y[b].qs[i] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += y[b].qs[16 * g + i];
            y[b].bsums[g] = (int16_t)s;
        }
        y[b].d = d;
    }
}
