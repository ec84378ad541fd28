/* gemm_unpack_x86.h: what the x86 GEMMs (gemm_avx2.c, gemm_avx512.c) share: small loads and
 * the unpackers of one stored block of one weight row into bytes u[QK] (element order) and the
 * D, M of its blocks, reproducing the weights of kernels_ref.c exactly: w = D * u + M with the
 * same integers. Included by those two files only, after their `#pragma GCC target`,
 * <immintrin.h> and SA_INLINE; each defines its own bit5 (AVX-512BW mask move or AVX2 shuffle)
 * and its own un_q8_0 (their Q8_0 panels differ). */
#ifndef SA_GEMM_UNPACK_X86_H
#define SA_GEMM_UNPACK_X86_H

#include "backend/cpu/arch/x86/unpack_q45_K_avx2.h"

SA_INLINE float f16(uint16_t h) { return _cvtsh_ss(h); }
SA_INLINE int32_t ld32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
SA_INLINE float ldf(const void *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}
SA_INLINE __m256i nib32(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_setr_m128i(v, _mm_srli_epi16(v, 4)), _mm256_set1_epi8(0x0F));
}
/* 0x10 in byte i where bit i of the little-endian 32-bit qh is set (defined by the includer) */
SA_INLINE __m256i bit5(const uint8_t *qh);
SA_INLINE void un_q4_0(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q4_0 *b = (const void *)p;
    _mm256_storeu_si256((__m256i *)u, nib32(b->qs));
    D[0] = f16(b->d), M[0] = -8.0f * D[0];
}
SA_INLINE void un_q4_1(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q4_1 *b = (const void *)p;
    _mm256_storeu_si256((__m256i *)u, nib32(b->qs));
    D[0] = f16(b->d), M[0] = f16(b->m);
}
SA_INLINE void un_q5_0(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q5_0 *b = (const void *)p;
    _mm256_storeu_si256((__m256i *)u, _mm256_or_si256(nib32(b->qs), bit5(b->qh)));
    D[0] = f16(b->d), M[0] = -16.0f * D[0];
}
SA_INLINE void un_q5_1(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q5_1 *b = (const void *)p;
    _mm256_storeu_si256((__m256i *)u, _mm256_or_si256(nib32(b->qs), bit5(b->qh)));
    D[0] = f16(b->d), M[0] = f16(b->m);
}
/* Q4_K/Q5_K: blocks of 32, D = d * sc_j, M = -dmin * m_j (kernels_ref.c dot1_q45_K) */
SA_INLINE void un_q45_K(const uint8_t *p, int has_qh, uint8_t *u, float *D, float *M) {
    uint16_t d16, dmin16;
    memcpy(&d16, p, 2);
    memcpy(&dmin16, p + 2, 2);
    const uint8_t *scales = p + 4, *qh = p + 16, *qs = p + 16 + (has_qh ? 32 : 0);
    float d = f16(d16), dmin = f16(dmin16);
    __m256i hb = has_qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        __m256i lo, hi;
        unpack_q45_K_chunk(qs, hb, has_qh, c, &lo, &hi);
        _mm256_storeu_si256((__m256i *)(u + 64 * c), lo);
        _mm256_storeu_si256((__m256i *)(u + 64 * c + 32), hi);
    }
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        sa_cpu_scale_min_k4(j, scales, &sc, &mn);
        D[j] = d * (float)sc, M[j] = -dmin * (float)mn;
    }
}
/* Q3_K: blocks of 16, u = 2 low bits | hmask bit << 2 (0..7), w = D (u - 4) (dot1_q3_K) */
SA_INLINE void un_q3_K(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q3_K *b = (const void *)p;
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
                u[128 * h + 32 * j + l] =
                    (uint8_t)(((b->qs[32 * h + l] >> (2 * j)) & 3) | (((b->hmask[l] >> (4 * h + j)) & 1) << 2));
    int8_t sc[16];
    sa_cpu_q3k_scales(b->scales, sc);
    float d = f16(b->d);
    for (int j = 0; j < 16; j++) D[j] = d * (float)sc[j], M[j] = -4.0f * D[j];
}
/* Q2_K: blocks of 16, u = 2 bits, D = d * (sc & 15), M = -dmin * (sc >> 4) (dot1_q2_K) */
SA_INLINE void un_q2_K(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q2_K *b = (const void *)p;
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) u[128 * h + 32 * j + l] = (uint8_t)((b->qs[32 * h + l] >> (2 * j)) & 3);
    float d = f16(b->d), dmin = f16(b->dmin);
    for (int j = 0; j < 16; j++) D[j] = d * (float)(b->scales[j] & 0xF), M[j] = -dmin * (float)(b->scales[j] >> 4);
}
/* Q6_K: blocks of 16, u = 6 bits (0..63), D = d * sc, M = -32 D (dot1_q6_K) */
SA_INLINE void un_q6_K(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q6_K *b = (const void *)p;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qhp = b->qh + 32 * h;
        __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        __m256i qh = _mm256_loadu_si256((const __m256i *)qhp);
        uint8_t *o = u + 128 * h;
        _mm256_storeu_si256((__m256i *)o, _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m3)));
        _mm256_storeu_si256((__m256i *)(o + 32),
                            _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m3)));
        _mm256_storeu_si256((__m256i *)(o + 64),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m3)));
        _mm256_storeu_si256((__m256i *)(o + 96), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                                                  _mm256_and_si256(_mm256_srli_epi16(qh, 2), m3)));
    }
    float d = f16(b->d);
    for (int j = 0; j < 16; j++) D[j] = d * (float)b->scales[j], M[j] = -32.0f * D[j];
}
SA_INLINE void un_q4_K(const uint8_t *p, uint8_t *u, float *D, float *M) { un_q45_K(p, 0, u, D, M); }
SA_INLINE void un_q5_K(const uint8_t *p, uint8_t *u, float *D, float *M) { un_q45_K(p, 1, u, D, M); }

#endif
