/* unpack_q45_K_avx2.h: the 4- or 5-bit values of one 64-weight chunk of a Q4_K / Q5_K
 * super-block, as the avx2 dot kernel (kernels_x86_body.h) and the GEMMs' panel unpacker
 * (gemm_unpack_x86.h `un_q45_K`) read them: *lo the chunk's first 32 values (sub-block 2c),
 * *hi its last 32 (sub-block 2c + 1), unsigned (<= 15, or <= 31 with the 5th bit), one
 * definition so that the GEMMs' integers are the dot kernel's. Included after the includer's
 * `#pragma GCC target`, <immintrin.h> and SA_INLINE. */
#ifndef SA_UNPACK_Q45_K_AVX2_H
#define SA_UNPACK_Q45_K_AVX2_H

/* qs: the super-block's 128 nibble bytes, hbits: its 32 qh bytes (Q5_K; ignored without
 * has_qh), c: the chunk, 0..3 */
SA_INLINE void unpack_q45_K_chunk(const uint8_t *qs, __m256i hbits, int has_qh, int c, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(0x10);
    __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
    __m256i l = _mm256_and_si256(q, m4), h4 = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    if (has_qh) {
        /* bit 2c of qh[l] -> 0x10 of lo; bit 2c + 1 -> 0x10 of hi */
        __m256i h = _mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c));
        l = _mm256_or_si256(l, _mm256_and_si256(_mm256_slli_epi16(h, 4), m16));
        h4 = _mm256_or_si256(h4, _mm256_and_si256(_mm256_slli_epi16(h, 3), m16));
    }
    *lo = l, *hi = h4;
}

#endif
