/* kernels_ref.c: plain-C dot products of a weight row in its stored type with an activation
 * row: f32 for F32/F16/BF16, 8-bit (sa_block_q8a / sa_block_q8_K) for the quantized types.
 * These define the integer algorithm that the SIMD kernels (arch/) must reproduce: the same
 * integer sums per block, combined with the same float factors (only the order of the float
 * additions differs). They are ggml's per-block sums (ref: ggml-cpu quants.c
 * ggml_vec_dot_*_generic): signed weights for the _0 types (the offset folded in through the
 * activation block's integer sum), d_w * d_x * sum + m * s for the _1 types, and the K-quants'
 * sub-block scales and mins in integers per super-block. Formats: quant_blocks_impl.h. */
#include "backend/cpu/kernels_impl.h"

static float dot1_f32(int64_t n, const void *w, const void *x) {
    const float *a = w, *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot1_f16(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += sa_cpu_f16_to_f32(a[i]) * b[i];
    return s;
}

static float dot1_bf16(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += sa_cpu_bf16_to_f32(a[i]) * b[i];
    return s;
}

/* ---- 32-element blocks x sa_block_q8a ---- */

static float dot1_q8_0(int64_t n, const void *w, const void *x) {
    const sa_block_q8_0 *bw = w;
    const sa_block_q8a *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int sumi = 0;
        for (int i = 0; i < 32; i++) sumi += bw[b].qs[i] * bx[b].qs[i];
        s += sa_cpu_f16_to_f32(bw[b].d) * bx[b].d * (float)sumi;
    }
    return s;
}

/* sum over a block of u[i] * x[i], u the unsigned 4-bit quants (element i < 16: low nibble
 * of qs[i], i >= 16: high nibble of qs[i - 16]) plus `hbit` times bit i of qh (5-bit types). */
static int sum_nibbles(const uint8_t *qs, uint32_t qh, int hbit, const int8_t *x) {
    int sumi = 0;
    for (int i = 0; i < 16; i++) {
        int lo = (qs[i] & 0xF) + (int)((qh >> i) & 1) * hbit;
        int hi = (qs[i] >> 4) + (int)((qh >> (i + 16)) & 1) * hbit;
        sumi += lo * x[i] + hi * x[i + 16];
    }
    return sumi;
}

static float dot1_q4_0(int64_t n, const void *w, const void *x) {
    const sa_block_q4_0 *bw = w;
    const sa_block_q8a *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        float d = sa_cpu_f16_to_f32(bw[b].d);
        int sumi = sum_nibbles(bw[b].qs, 0, 0, bx[b].qs) - 8 * bx[b].sum; /* w = d * (u - 8) */
        s += d * bx[b].d * (float)sumi;
    }
    return s;
}

static float dot1_q4_1(int64_t n, const void *w, const void *x) {
    const sa_block_q4_1 *bw = w;
    const sa_block_q8a *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        float d = sa_cpu_f16_to_f32(bw[b].d), m = sa_cpu_f16_to_f32(bw[b].m);
        int sumi = sum_nibbles(bw[b].qs, 0, 0, bx[b].qs);
        s += d * bx[b].d * (float)sumi + m * bx[b].s; /* w = d * u + m */
    }
    return s;
}

static float dot1_q5_0(int64_t n, const void *w, const void *x) {
    const sa_block_q5_0 *bw = w;
    const sa_block_q8a *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        float d = sa_cpu_f16_to_f32(bw[b].d);
        uint32_t qh;
        memcpy(&qh, bw[b].qh, 4);
        int sumi = sum_nibbles(bw[b].qs, qh, 16, bx[b].qs) - 16 * bx[b].sum; /* w = d * (u - 16) */
        s += d * bx[b].d * (float)sumi;
    }
    return s;
}

static float dot1_q5_1(int64_t n, const void *w, const void *x) {
    const sa_block_q5_1 *bw = w;
    const sa_block_q8a *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        float d = sa_cpu_f16_to_f32(bw[b].d), m = sa_cpu_f16_to_f32(bw[b].m);
        uint32_t qh;
        memcpy(&qh, bw[b].qh, 4);
        int sumi = sum_nibbles(bw[b].qs, qh, 16, bx[b].qs);
        s += d * bx[b].d * (float)sumi + m * bx[b].s;
    }
    return s;
}

/* ---- K-quants (256-element super-blocks) x sa_block_q8_K ---- */

static float dot1_q2_K(int64_t n, const void *w, const void *x) {
    const sa_block_q2_K *bw = w;
    const sa_block_q8_K *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *q = bw[b].qs;
        const int8_t *qx = bx[b].qs;
        int sumi = 0, summ = 0;
        /* element 128h + 32j + l: bits 2j..2j+1 of qs[32h + l]; sub-block of 16: 8h + 2j + l/16 */
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 2; k++) {
                    int sb = 8 * h + 2 * j + k, si = 0;
                    for (int l = 16 * k; l < 16 * k + 16; l++) si += ((q[32 * h + l] >> (2 * j)) & 3) * qx[128 * h + 32 * j + l];
                    sumi += (bw[b].scales[sb] & 0xF) * si;
                    summ += (bw[b].scales[sb] >> 4) * bx[b].bsums[sb];
                }
        s += bx[b].d * sa_cpu_f16_to_f32(bw[b].d) * (float)sumi - bx[b].d * sa_cpu_f16_to_f32(bw[b].dmin) * (float)summ;
    }
    return s;
}

static float dot1_q3_K(int64_t n, const void *w, const void *x) {
    const sa_block_q3_K *bw = w;
    const sa_block_q8_K *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *q = bw[b].qs, *hm = bw[b].hmask;
        const int8_t *qx = bx[b].qs;
        int8_t sc[16];
        sa_cpu_q3k_scales(bw[b].scales, sc);
        int sumi = 0;
        /* as Q2_K, minus 4 where bit (4h + j) of hmask[l] is clear */
        for (int h = 0; h < 2; h++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 2; k++) {
                    int sb = 8 * h + 2 * j + k, si = 0;
                    for (int l = 16 * k; l < 16 * k + 16; l++) {
                        int v = ((q[32 * h + l] >> (2 * j)) & 3) - ((hm[l] >> (4 * h + j)) & 1 ? 0 : 4);
                        si += v * qx[128 * h + 32 * j + l];
                    }
                    sumi += sc[sb] * si;
                }
        s += bx[b].d * sa_cpu_f16_to_f32(bw[b].d) * (float)sumi;
    }
    return s;
}

/* Q4_K and Q5_K: element 64c + l (l < 32): low nibble of qs[32c + l], sub-block 2c;
 * element 64c + 32 + l: high nibble, sub-block 2c + 1; Q5_K adds 16 * bit (2c or 2c + 1)
 * of qh[l]. w = d * sc * u - dmin * m. */
static float dot1_q45_K(int64_t n, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, uint16_t d16,
                        uint16_t dmin16, const sa_block_q8_K *bx) {
    const int8_t *qx = bx->qs;
    int sumi = 0, summ = 0;
    for (int c = 0; c < 4; c++) {
        uint8_t sc0, m0, sc1, m1;
        sa_cpu_scale_min_k4(2 * c, scales, &sc0, &m0);
        sa_cpu_scale_min_k4(2 * c + 1, scales, &sc1, &m1);
        int s0 = 0, s1 = 0;
        for (int l = 0; l < 32; l++) {
            int lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
            if (qh) {
                lo += ((qh[l] >> (2 * c)) & 1) << 4;
                hi += ((qh[l] >> (2 * c + 1)) & 1) << 4;
            }
            s0 += lo * qx[64 * c + l];
            s1 += hi * qx[64 * c + 32 + l];
        }
        sumi += sc0 * s0 + sc1 * s1;
        summ += m0 * (bx->bsums[4 * c] + bx->bsums[4 * c + 1]) + m1 * (bx->bsums[4 * c + 2] + bx->bsums[4 * c + 3]);
    }
    (void)n;
    return bx->d * sa_cpu_f16_to_f32(d16) * (float)sumi - bx->d * sa_cpu_f16_to_f32(dmin16) * (float)summ;
}

static float dot1_q4_K(int64_t n, const void *w, const void *x) {
    const sa_block_q4_K *bw = w;
    const sa_block_q8_K *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 256; b++) s += dot1_q45_K(n, bw[b].scales, bw[b].qs, NULL, bw[b].d, bw[b].dmin, &bx[b]);
    return s;
}

static float dot1_q5_K(int64_t n, const void *w, const void *x) {
    const sa_block_q5_K *bw = w;
    const sa_block_q8_K *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 256; b++)
        s += dot1_q45_K(n, bw[b].scales, bw[b].qs, bw[b].qh, bw[b].d, bw[b].dmin, &bx[b]);
    return s;
}

/* Q6_K: per half h (128 elements; ql += 64, qh += 32, scales += 8), l < 32:
 * element l: low nibble of ql[l], qh bits 0-1; l + 32: low of ql[l + 32], bits 2-3;
 * l + 64: high of ql[l], bits 4-5; l + 96: high of ql[l + 32], bits 6-7. u - 32, 16 scales
 * of 16 elements in element order. */
static float dot1_q6_K(int64_t n, const void *w, const void *x) {
    const sa_block_q6_K *bw = w;
    const sa_block_q8_K *bx = x;
    float s = 0.0f;
    for (int64_t b = 0; b < n / 256; b++) {
        const int8_t *qx = bx[b].qs;
        int sumi = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = bw[b].ql + 64 * h, *qh = bw[b].qh + 32 * h;
            for (int g = 0; g < 4; g++) {  /* 32-element group g of the half */
                for (int k = 0; k < 2; k++) { /* its two sub-blocks of 16 */
                    int sb = 8 * h + 2 * g + k, si = 0;
                    for (int l = 16 * k; l < 16 * k + 16; l++) {
                        int lo = (g & 1) ? ql[l + 32] : ql[l];
                        lo = (g & 2) ? lo >> 4 : lo & 0xF;
                        int u = lo | (((qh[l] >> (2 * g)) & 3) << 4);
                        si += u * qx[128 * h + 32 * g + l];
                    }
                    sumi += bw[b].scales[sb] * (si - 32 * bx[b].bsums[sb]);
                }
            }
        }
        s += bx[b].d * sa_cpu_f16_to_f32(bw[b].d) * (float)sumi;
    }
    return s;
}

#define REF_KERNEL(t)                                                                            \
    static void dot_##t(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out) { \
        for (int j = 0; j < nx; j++) out[j] = dot1_##t(n, w, (const char *)x + (size_t)j * xs);  \
    }
REF_KERNEL(f32)
REF_KERNEL(f16)
REF_KERNEL(bf16)
REF_KERNEL(q8_0)
REF_KERNEL(q4_0)
REF_KERNEL(q4_1)
REF_KERNEL(q5_0)
REF_KERNEL(q5_1)
REF_KERNEL(q2_K)
REF_KERNEL(q3_K)
REF_KERNEL(q4_K)
REF_KERNEL(q5_K)
REF_KERNEL(q6_K)

void sa_cpu_kernels_ref(struct sa_cpu_kernels *k) {
#define SET(T, fn) k->k[SA_DTYPE_##T] = (struct sa_cpu_kernel){dot_##fn, #fn ".ref", NULL}
    SET(F32, f32);
    SET(F16, f16);
    SET(BF16, bf16);
    SET(Q8_0, q8_0);
    SET(Q4_0, q4_0);
    SET(Q4_1, q4_1);
    SET(Q5_0, q5_0);
    SET(Q5_1, q5_1);
    SET(Q2_K, q2_K);
    SET(Q3_K, q3_K);
    SET(Q4_K, q4_K);
    SET(Q5_K, q5_K);
    SET(Q6_K, q6_K);
#undef SET
}
