/* unpack_q6_K_avx2.h: the 6-bit values of one half (128 weights) of a Q6_K super-block, as the
 * avx2 dot kernel (kernels_x86_body.h) and the Q6_K GEMM's T = 1 row loop (gemm_avx2.c) read
 * them: u[g] holds group g's 32 unsigned values (4 low bits | 2 high bits << 4, <= 63), one
 * definition so that the row loop's integers are the dot kernel's. Included after the
 * includer's `#pragma GCC target`, <immintrin.h> and SA_INLINE. */
#ifndef SA_UNPACK_Q6_K_AVX2_H
#define SA_UNPACK_Q6_K_AVX2_H

/* ql: the half's 64 low-bit bytes, qh: its 32 high-bit bytes */
SA_INLINE void unpack_q6_K_half(const uint8_t *ql, const uint8_t *qh, __m256i u[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x30);
    __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    __m256i h = _mm256_loadu_si256((const __m256i *)qh);
    u[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m3));
    u[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m3));
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(h, m3));
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m3));
}

#endif
