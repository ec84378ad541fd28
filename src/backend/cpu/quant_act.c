/* quant_act.c: quantization of activation rows (f32) to 8 bits for the integer dot products,
 * the same quants and scales as llama.cpp's CPU backend on x86: sa_block_q8a (ggml's q8_0 /
 * q8_1, 32 elements, for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights) and sa_block_q8_K (ggml's q8_K,
 * 256 elements, for the K-quants), their 32/16-element forms for the prefill GEMMs, bf16 rows
 * (BF16 GEMM), plus the per-type layout table of the backend. Plain C; the avx512 path has a
 * SIMD copy (arch/x86/gemm_avx512.c) that gives the same bytes (tested), and
 * tests/py/test_act_quant_ref.py checks both against ggml's own functions. */
#include "backend/cpu/kernels_impl.h"
#include "core/core_impl.h"
#include "formats/dtype_impl.h"

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

enum sa_act_kind sa_cpu_gemm_act_kind(enum sa_dtype wtype) {
    switch (wtype) {
    case SA_DTYPE_Q4_K:
    case SA_DTYPE_Q5_K: return SA_ACT_Q8KA32;
    case SA_DTYPE_Q2_K:
    case SA_DTYPE_Q3_K:
    case SA_DTYPE_Q6_K: return SA_ACT_Q8KA16;
    case SA_DTYPE_BF16: return SA_ACT_BF16;
    default: return sa_cpu_act_kind(wtype);
    }
}

enum sa_act_kind sa_cpu_act_kind(enum sa_dtype wtype) {
    switch (wtype) {
    case SA_DTYPE_Q4_0:
    case SA_DTYPE_Q5_0:
    case SA_DTYPE_Q8_0: return SA_ACT_Q8_0; /* ggml: vec_dot_type q8_0 */
    case SA_DTYPE_Q4_1:
    case SA_DTYPE_Q5_1: return SA_ACT_Q8_1; /* q8_1 */
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
    case SA_ACT_Q8_0:
    case SA_ACT_Q8_1: return (size_t)(n / 32) * sizeof(sa_block_q8a);
    case SA_ACT_Q8K: return (size_t)(n / 256) * sizeof(sa_block_q8_K);
    case SA_ACT_Q8KA32: return (size_t)(n / 32) * sizeof(sa_block_q8a);
    case SA_ACT_Q8KA16: return (size_t)(n / 16) * sizeof(sa_block_q8a16);
    case SA_ACT_BF16: return (size_t)(n + (n & 1)) * sizeof(uint16_t);
    default: return (size_t)n * sizeof(float);
    }
}

void sa_cpu_act_row(enum sa_act_kind kind, const float *x, void *y, int64_t n) {
    switch (kind) {
    case SA_ACT_Q8_0: sa_quantize_row_q8a(x, y, n, false); break;
    case SA_ACT_Q8_1: sa_quantize_row_q8a(x, y, n, true); break;
    case SA_ACT_Q8K: sa_quantize_row_q8k(x, y, n); break;
    case SA_ACT_Q8KA32: sa_quantize_row_q8ka32(x, y, n); break;
    case SA_ACT_Q8KA16: sa_quantize_row_q8ka16(x, y, n); break;
    case SA_ACT_BF16: sa_convert_row_bf16(x, y, n); break;
    default: SA_ASSERT(0 && "no conversion to f32"); break;
    }
}

/* round(v) to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the rounded
 * integer in the low mantissa bits (ref: ggml nearest_int). Branch-free, vectorizes. Outside
 * that range (NaN included) the result is some value in [-2^22, 2^22) (as ggml's). */
static inline int round_i(float v) {
    float f = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &f, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* max(a, |v|) ignoring NaN as fmaxf does, but inline (fmaxf is a libm call at -O2, and
 * this form vectorizes to maxps) */
static inline float max_abs(float a, float v) {
    v = fabsf(v);
    return v > a ? v : a;
}

/* What vcvtps2dq (round to nearest even) and the saturating packs to int8 make of v:
 * NaN and |v| >= 2^31 give INT32_MIN, hence -128. */
static inline int cvt_sat_i8(float v) {
    if (!(fabsf(v) < 2147483648.0f)) return -128;
    v = v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v;
    return round_i(v);
}

void sa_quantize_row_q8a(const float *x, sa_block_q8a *y, int64_t n, bool with_s) {
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = max_abs(amax, x[i]);
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            int q = cvt_sat_i8(x[i] * id);
            y[b].qs[i] = (int8_t)q;
            sum += q;
        }
        y[b].d = sa_half_to_float(sa_float_to_half(d));
        if (with_s) y[b].s = sa_half_to_float(sa_float_to_half(d * (float)sum));
        else y[b].sum = sum;
    }
}

void sa_quantize_row_q8k(const float *x, sa_block_q8_K *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, x += 256) {
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < 256; i++) {
            float ax = fabsf(x[i]);
            if (ax > amax) amax = ax, max = x[i];
        }
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        float iscale = -127.0f / max;
        for (int i = 0; i < 256; i++) {
            int q = round_i(iscale * x[i]);
            y[b].qs[i] = (int8_t)(uint8_t)(q > 127 ? 127 : q); /* ggml: MIN(127, v) into int8 */
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += y[b].qs[16 * g + i];
            y[b].bsums[g] = (int16_t)s;
        }
        y[b].d = 1.0f / iscale;
    }
}

/* The K-quant GEMMs take the bytes of sa_quantize_row_q8k regrouped into blocks of 32 or 16
 * with the super-block's d and their own sum(qs), so that one kernel serves every block type. */
static void quantize_row_q8k_split(const float *x, void *y, int64_t n, int bs) {
    sa_block_q8_K k;
    size_t blk_bytes = bs == 32 ? sizeof(sa_block_q8a) : sizeof(sa_block_q8a16);
    uint8_t *out = y;
    for (int64_t b = 0; b < n / 256; b++) {
        sa_quantize_row_q8k(x + 256 * b, &k, 256);
        for (int j = 0; j < 256 / bs; j++, out += blk_bytes) {
            int32_t sum = k.bsums[j * bs / 16] + (bs == 32 ? k.bsums[2 * j + 1] : 0);
            memcpy(out, &k.d, 4);
            memcpy(out + 4, &sum, 4);
            memcpy(out + 8, k.qs + bs * j, (size_t)bs);
        }
    }
}

void sa_quantize_row_q8ka32(const float *x, sa_block_q8a *y, int64_t n) { quantize_row_q8k_split(x, y, n, 32); }
void sa_quantize_row_q8ka16(const float *x, sa_block_q8a16 *y, int64_t n) { quantize_row_q8k_split(x, y, n, 16); }

/* Round to nearest even (what vcvtneps2bf16 does); NaN stays NaN (made quiet). */
void sa_convert_row_bf16(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) y[i] = (uint16_t)((u >> 16) | 0x40);
        else y[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
    }
    if (n & 1) y[n] = 0;
}
