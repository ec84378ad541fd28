/* dequant.c: reference dequantization of every supported tensor type to f32.
 * ref: ggml-quants.c dequantize_row_* and gguf-py gguf/quants.py; the results are
 * bit-exact with both (checked by tests/py/test_gguf_ref.py). Blocks are read through byte
 * offsets (memcpy for the scales) since mapped tensor data need not be aligned.
 * Products and differences are separate statements so that no compiler fuses them into
 * an FMA, which would round differently from the references. */
#include "sa/dtype.h"

#include "core/core_impl.h"
#include "formats/dtype_impl.h"
#include "formats/quant_blocks_impl.h"

#include <stddef.h>
#include <string.h>

static inline float ld_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return sa_half_to_float(h);
}

static void dq_f32(const uint8_t *x, float *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof(float)); }

static void dq_f16(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = ld_half(x + 2 * i);
}

static void dq_bf16(const uint8_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, x + 2 * i, 2);
        y[i] = sa_bf16_bits_to_float(h);
    }
}

/* 32 elements: y[j] = d * (low nibble of qs[j] - 8), y[j + 16] = d * (high nibble - 8) */
static void dq_q4_0(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q4_0), y += SA_QK4_0) {
        const float d = ld_half(x + offsetof(sa_block_q4_0, d));
        const uint8_t *qs = x + offsetof(sa_block_q4_0, qs);
        for (int j = 0; j < SA_QK4_0 / 2; j++) {
            y[j] = (float)((qs[j] & 0x0F) - 8) * d;
            y[j + SA_QK4_0 / 2] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

static void dq_q4_1(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q4_1), y += SA_QK4_1) {
        const float d = ld_half(x + offsetof(sa_block_q4_1, d));
        const float m = ld_half(x + offsetof(sa_block_q4_1, m));
        const uint8_t *qs = x + offsetof(sa_block_q4_1, qs);
        for (int j = 0; j < SA_QK4_1 / 2; j++) {
            float v0 = (float)(qs[j] & 0x0F) * d;
            float v1 = (float)(qs[j] >> 4) * d;
            y[j] = v0 + m;
            y[j + SA_QK4_1 / 2] = v1 + m;
        }
    }
}

/* Q5: the fifth bit of element j is bit j of the little-endian u32 qh. */
static void dq_q5_0(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q5_0), y += SA_QK5_0) {
        const float d = ld_half(x + offsetof(sa_block_q5_0, d));
        uint32_t qh;
        memcpy(&qh, x + offsetof(sa_block_q5_0, qh), 4);
        const uint8_t *qs = x + offsetof(sa_block_q5_0, qs);
        for (int j = 0; j < SA_QK5_0 / 2; j++) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = (float)(((qs[j] & 0x0F) | h0) - 16) * d;
            y[j + SA_QK5_0 / 2] = (float)(((qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static void dq_q5_1(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q5_1), y += SA_QK5_1) {
        const float d = ld_half(x + offsetof(sa_block_q5_1, d));
        const float m = ld_half(x + offsetof(sa_block_q5_1, m));
        uint32_t qh;
        memcpy(&qh, x + offsetof(sa_block_q5_1, qh), 4);
        const uint8_t *qs = x + offsetof(sa_block_q5_1, qs);
        for (int j = 0; j < SA_QK5_1 / 2; j++) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            float v0 = (float)((qs[j] & 0x0F) | h0) * d;
            float v1 = (float)((qs[j] >> 4) | h1) * d;
            y[j] = v0 + m;
            y[j + SA_QK5_1 / 2] = v1 + m;
        }
    }
}

static void dq_q8_0(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q8_0), y += SA_QK8_0) {
        const float d = ld_half(x + offsetof(sa_block_q8_0, d));
        const int8_t *qs = (const int8_t *)(x + offsetof(sa_block_q8_0, qs));
        for (int j = 0; j < SA_QK8_0; j++) y[j] = (float)qs[j] * d;
    }
}

/* Q8_1 as Q8_0; the second half `s` (d * sum of qs) only serves dot products. */
static void dq_q8_1(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q8_1), y += SA_QK8_1) {
        const float d = ld_half(x + offsetof(sa_block_q8_1, d));
        const int8_t *qs = (const int8_t *)(x + offsetof(sa_block_q8_1, qs));
        for (int j = 0; j < SA_QK8_1; j++) y[j] = (float)qs[j] * d;
    }
}

/* Q2_K: 16 sub-blocks of 16; scales[s] = (min << 4) | scale (4 bits each). Element
 * 128*h + 32*k + l takes bits 2k..2k+1 of qs[32*h + l]; sub-block = element / 16. */
static void dq_q2_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q2_K)) {
        const float d = ld_half(x + offsetof(sa_block_q2_K, d));
        const float dmin = ld_half(x + offsetof(sa_block_q2_K, dmin));
        const uint8_t *sc = x + offsetof(sa_block_q2_K, scales);
        const uint8_t *q = x + offsetof(sa_block_q2_K, qs);
        int is = 0;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++, is++) {
                    const float dl = d * (float)(sc[is] & 0x0F);
                    const float ml = dmin * (float)(sc[is] >> 4);
                    const uint8_t *qq = q + 16 * half;
                    for (int l = 0; l < 16; l++) {
                        float v = dl * (float)((qq[l] >> shift) & 3);
                        *y++ = v - ml;
                    }
                }
            }
        }
    }
}

/* Q3_K: 16 sub-blocks with 6-bit signed scales (offset 32): low 4 bits from scales[s % 8]
 * (low nibble for s < 8, high nibble after), high 2 bits from scales[8 + s % 4] at bit
 * 2 * (s / 4). Quant = 2 low bits from qs (as Q2_K) minus 4 when the hmask bit is clear;
 * element 128*h + 32*k + l uses bit 4*h + k of hmask[l]. */
static void dq_q3_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q3_K)) {
        const float d_all = ld_half(x + offsetof(sa_block_q3_K, d));
        const uint8_t *sc = x + offsetof(sa_block_q3_K, scales);
        const uint8_t *hm = x + offsetof(sa_block_q3_K, hmask);
        const uint8_t *q = x + offsetof(sa_block_q3_K, qs);
        int8_t scales[16];
        for (int s = 0; s < 16; s++) {
            int lo = s < 8 ? sc[s] & 0x0F : sc[s - 8] >> 4;
            int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
            scales[s] = (int8_t)((lo | (hi << 4)) - 32);
        }
        int is = 0;
        uint8_t m = 1;
        for (int h = 0; h < 2; h++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
                for (int half = 0; half < 2; half++, is++) {
                    const float dl = d_all * (float)scales[is];
                    const uint8_t *qq = q + 16 * half, *hh = hm + 16 * half;
                    for (int l = 0; l < 16; l++) {
                        int v = ((qq[l] >> shift) & 3) - ((hh[l] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

/* Q4_K/Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and min packed in 12 bytes.
 * ref: get_scale_min_k4 (ggml-quants.c). */
static inline void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void dq_q4_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q4_K)) {
        const float d = ld_half(x + offsetof(sa_block_q4_K, d));
        const float dmin = ld_half(x + offsetof(sa_block_q4_K, dmin));
        const uint8_t *scales = x + offsetof(sa_block_q4_K, scales);
        const uint8_t *q = x + offsetof(sa_block_q4_K, qs);
        for (int j = 0; j < 8; j += 2, q += 32) {
            int sc, m;
            scale_min_k4(j, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(j + 1, scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                float v = d1 * (float)(q[l] & 0x0F);
                y[l] = v - m1;
            }
            for (int l = 0; l < 32; l++) {
                float v = d2 * (float)(q[l] >> 4);
                y[l + 32] = v - m2;
            }
            y += 64;
        }
    }
}

static void dq_q5_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q5_K)) {
        const float d = ld_half(x + offsetof(sa_block_q5_K, d));
        const float dmin = ld_half(x + offsetof(sa_block_q5_K, dmin));
        const uint8_t *scales = x + offsetof(sa_block_q5_K, scales);
        const uint8_t *ql = x + offsetof(sa_block_q5_K, qs);
        const uint8_t *qh = x + offsetof(sa_block_q5_K, qh);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 8; j += 2, ql += 32) {
            int sc, m;
            scale_min_k4(j, scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(j + 1, scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                float v = d1 * (float)((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0));
                y[l] = v - m1;
            }
            for (int l = 0; l < 32; l++) {
                float v = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0));
                y[l + 32] = v - m2;
            }
            y += 64;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales; 4 low bits in ql, 2 high bits in qh. */
static void dq_q6_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q6_K)) {
        const float d = ld_half(x + offsetof(sa_block_q6_K, d));
        const uint8_t *ql = x + offsetof(sa_block_q6_K, ql);
        const uint8_t *qh = x + offsetof(sa_block_q6_K, qh);
        const int8_t *sc = (const int8_t *)(x + offsetof(sa_block_q6_K, scales));
        for (int n = 0; n < SA_QK_K; n += 128, ql += 64, qh += 32, sc += 8, y += 128) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                const float d1 = d * (float)sc[is + 0], d2 = d * (float)sc[is + 2];
                const float d3 = d * (float)sc[is + 4], d4 = d * (float)sc[is + 6];
                y[l + 0] = d1 * (float)q1;
                y[l + 32] = d2 * (float)q2;
                y[l + 64] = d3 * (float)q3;
                y[l + 96] = d4 * (float)q4;
            }
        }
    }
}

static void dq_q8_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += sizeof(sa_block_q8_K), y += SA_QK_K) {
        float d;
        memcpy(&d, x + offsetof(sa_block_q8_K, d), 4);
        const int8_t *qs = (const int8_t *)(x + offsetof(sa_block_q8_K, qs));
        for (int j = 0; j < SA_QK_K; j++) y[j] = (float)qs[j] * d;
    }
}

enum sa_status sa_dequantize(enum sa_dtype t, const void *src, float *dst, int64_t n) {
    const size_t bs = sa_dtype_block_size(t);
    const char *name = sa_dtype_name(t);
    if (!bs) return sa_error(SA_STATUS_UNSUPPORTED, "dequantize: unknown tensor type %d", (int)t);
    if (n < 0 || n % (int64_t)bs)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "dequantize: %lld elements is not a multiple of the %s block size %zu",
                        (long long)n, name, bs);
    if (n && (!src || !dst)) return sa_error(SA_STATUS_BAD_ARGUMENT, "dequantize: NULL buffer");
    const uint8_t *x = src;
    const int64_t nb = n / (int64_t)bs;
    switch (t) {
    case SA_DTYPE_F32: if (n) dq_f32(x, dst, n); break;
    case SA_DTYPE_F16: dq_f16(x, dst, n); break;
    case SA_DTYPE_BF16: dq_bf16(x, dst, n); break;
    case SA_DTYPE_Q4_0: dq_q4_0(x, dst, nb); break;
    case SA_DTYPE_Q4_1: dq_q4_1(x, dst, nb); break;
    case SA_DTYPE_Q5_0: dq_q5_0(x, dst, nb); break;
    case SA_DTYPE_Q5_1: dq_q5_1(x, dst, nb); break;
    case SA_DTYPE_Q8_0: dq_q8_0(x, dst, nb); break;
    case SA_DTYPE_Q8_1: dq_q8_1(x, dst, nb); break;
    case SA_DTYPE_Q2_K: dq_q2_k(x, dst, nb); break;
    case SA_DTYPE_Q3_K: dq_q3_k(x, dst, nb); break;
    case SA_DTYPE_Q4_K: dq_q4_k(x, dst, nb); break;
    case SA_DTYPE_Q5_K: dq_q5_k(x, dst, nb); break;
    case SA_DTYPE_Q6_K: dq_q6_k(x, dst, nb); break;
    case SA_DTYPE_Q8_K: dq_q8_k(x, dst, nb); break;
    default:
        return sa_error(SA_STATUS_UNSUPPORTED, "dequantize: type %s is not supported (integer and f64 tensors are not weights)",
                        name);
    }
    return SA_STATUS_OK;
}
