/* gemm_bf16_avx512.c: the AVX512-BF16 GEMM of mixed-precision training (gemm_bf16.c
 * dispatches here when the CPU has avx512_bf16). Goto/BLIS loop order over one rectangle of
 * C: column blocks of NC, reduction blocks of KC (op(B) packed once per (NC, KC) block), row
 * blocks of MC (op(A) packed), then MR x NR register tiles.
 *
 * Packing rounds each f32 to bf16 (round to nearest even, NaN kept quiet: as PyTorch's
 * f32 -> bf16 conversion; the same bits as sa_tr_bf16_bits) and stores PAIRS along the
 * reduction dimension, the operand layout of vdpbf16ps: one u32 = (bf16 of k = 2p in the low
 * half, bf16 of k = 2p + 1 in the high half; 0 past an odd K).
 *   packed A panel (MR rows):    u32 [kp][MR]   (kp = ceil(kc / 2); rows past M are 0)
 *   packed B panel (NR columns): u32 [kp][NR]   (columns past N are 0)
 * An operand whose rows run along the other dimension (B of dY W, A of dY^T X) gives 16 pairs
 * per two rows directly; one whose rows run along k (X and W of X W^T, dY of dY W) is converted
 * 16 rows x 32 values at a time and transposed in registers (16 x 16 u32). A pre-packed B
 * (sa_tr_gemm_bf16_avx512_pack: the LM head's weights, reused over row chunks) stores the
 * panels of every (KC block, NR panel) at fixed offsets instead.
 * Micro-kernel: MR = 12 rows x NR = 32 columns of f32 accumulators (24 zmm); per pair p, two
 * 64-byte loads of the B panel and one 32-bit broadcast of A per row, 24 vdpbf16ps. Each
 * vdpbf16ps adds two exact bf16 products to the f32 accumulator (products of bf16 values
 * are exact in f32); denormal inputs/outputs of vdpbf16ps are flushed to zero (the
 * instruction ignores MXCSR), which the plain-C paths do not do: a difference below 1e-38.
 * Sizes: KC = 256 (a B micro-panel of 128 pairs x 32 columns = 16 KiB stays in L1d), MC = 240
 * (an A block of 120 KiB in L2), NC = 2048 (the B block, 1 MiB, in L2/L3). */
#include "train/gemm_bf16_impl.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define SA_INLINE static inline __attribute__((always_inline))
#define MR SA_BF16_MR
#define NR SA_BF16_NR
#define KC 256
#define MC 240 /* multiple of MR */
#define NC 2048 /* multiple of NR */

/* bf16 bits (RNE) of 16 floats, in the low half of each 32-bit lane */
SA_INLINE __m512i rne16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
    return _mm512_srli_epi32(r, 16);
}

SA_INLINE __mmask16 mask_n(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* Pairs from two rows that run along the packed dimension: dst[c] = pair(r0[c], r1[c]) for
 * c < n (<= 16), 0 for c in [n, 16); r1 may be NULL (odd K: high half 0). */
SA_INLINE void pairs_rows16(uint32_t *dst, const float *r0, const float *r1, int64_t n) {
    __mmask16 m = mask_n(n);
    __m512i lo = rne16(_mm512_maskz_loadu_ps(m, r0));
    __m512i v = lo;
    if (r1) v = _mm512_or_si512(lo, _mm512_slli_epi32(rne16(_mm512_maskz_loadu_ps(m, r1)), 16));
    _mm512_storeu_si512(dst, _mm512_maskz_mov_epi32(m, v));
}

/* 16 x 16 transpose of 32-bit elements: r[j][p] -> r[p][j] */
SA_INLINE void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0xDD);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
    }
}

/* Pairs along k for up to 16 rows that run along k (row j at x + j * ld, nrows <= 16, kc
 * values each): dst[p * stride + j] = pair(x_j[2p], x_j[2p + 1]) for p < ceil(kc / 2) and
 * j < width (rows past nrows give 0). Per 32 values of k: 16 rows converted to 16 pairs
 * each, then one 16 x 16 transpose in registers. */
static void pairs_along16(uint32_t *dst, int64_t stride, int width, const float *x, int64_t ld, int nrows,
                          int64_t kc) {
    __mmask16 wm = mask_n(width);
    for (int64_t k = 0; k < kc; k += 32) {
        __mmask16 m0 = mask_n(kc - k), m1 = mask_n(kc - k - 16);
        __m512i r[16];
        for (int j = 0; j < 16; j++) {
            if (j >= nrows) {
                r[j] = _mm512_setzero_si512();
                continue;
            }
            const float *xj = x + j * ld + k;
            __m256i lo = _mm512_cvtepi32_epi16(rne16(_mm512_maskz_loadu_ps(m0, xj)));
            __m256i hi = _mm512_cvtepi32_epi16(rne16(_mm512_maskz_loadu_ps(m1, xj + 16)));
            r[j] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        }
        transpose16(r);
        int64_t np = (kc - k + 1) / 2;
        if (np > 16) np = 16;
        uint32_t *d = dst + (k / 2) * stride;
        for (int p = 0; p < np; p++) _mm512_mask_storeu_epi32(d + p * stride, wm, r[p]);
    }
}

/* op(A) rows [i0, i0 + mc), k [k0, k0 + kc) into MR-row panels (pa: ceil(mc/MR) * kp * MR). */
static void pack_A(const struct sa_tr_gemm *g, int64_t i0, int64_t mc, int64_t k0, int64_t kc, uint32_t *pa) {
    int64_t kp = (kc + 1) / 2;
    for (int64_t ir = 0; ir < mc; ir += MR) {
        uint32_t *d = pa + (ir / MR) * kp * MR;
        int64_t mr = mc - ir < MR ? mc - ir : MR;
        if (!g->transA) {
            pairs_along16(d, MR, MR, g->A + (i0 + ir) * g->lda + k0, g->lda, (int)mr, kc);
        } else {
            /* A (K, M): row k of A runs along i */
            for (int64_t p = 0; p < kp; p++) {
                int64_t k = k0 + 2 * p;
                const float *r0 = g->A + k * g->lda + i0 + ir;
                const float *r1 = 2 * p + 1 < kc ? r0 + g->lda : NULL;
                uint32_t t[16];
                pairs_rows16(t, r0, r1, mr);
                memcpy(d + p * MR, t, MR * sizeof(uint32_t));
            }
        }
    }
}

/* op(B) columns [j0, j0 + nc), k [k0, k0 + kc) into NR-column panels (pb: ceil(nc/NR) * kp * NR). */
static void pack_B(const struct sa_tr_gemm *g, int64_t j0, int64_t nc, int64_t k0, int64_t kc, uint32_t *pb) {
    int64_t kp = (kc + 1) / 2;
    for (int64_t jr = 0; jr < nc; jr += NR) {
        uint32_t *d = pb + (jr / NR) * kp * NR;
        int64_t nr = nc - jr < NR ? nc - jr : NR;
        if (g->transB) {
            /* B (N, K): row j of B runs along k */
            const float *b = g->B + (j0 + jr) * g->ldb + k0;
            pairs_along16(d, NR, 16, b, g->ldb, nr < 16 ? (int)nr : 16, kc);
            pairs_along16(d + 16, NR, 16, nr > 16 ? b + 16 * g->ldb : b, g->ldb, nr > 16 ? (int)(nr - 16) : 0, kc);
        } else {
            for (int64_t p = 0; p < kp; p++) {
                int64_t k = k0 + 2 * p;
                const float *r0 = g->B + k * g->ldb + j0 + jr;
                const float *r1 = 2 * p + 1 < kc ? r0 + g->ldb : NULL;
                pairs_rows16(d + p * NR, r0, r1, nr);
                pairs_rows16(d + p * NR + 16, r0 + 16, r1 ? r1 + 16 : NULL, nr - 16);
            }
        }
    }
}

/* C tile (mr <= MR, nr <= NR) = alpha * (a . b) + beta * C (C not read when beta == 0). */
static void kernel(int64_t kp, const uint32_t *a, const uint32_t *b, float *c, int64_t ldc, float alpha, float beta,
                   int64_t mr, int64_t nr) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b + p * NR);
        __m512bh b1 = (__m512bh)_mm512_load_si512(b + p * NR + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[p * MR + i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    __mmask16 m0 = mask_n(nr), m1 = mask_n(nr - 16);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        float *ci = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

/* Pre-packed op(B): per reduction block b (k0 = b KC) and NR-column panel q, the panel of
 * pack_B at offset (b * n_panels * KC/2 + q * kp) * NR u32 (kp: that block's pairs). */
static int64_t n_panels(int64_t N) { return (N + NR - 1) / NR; }
static int64_t pk_block(int64_t N, int64_t pc) { return (pc / KC) * n_panels(N) * (KC / 2) * NR; }

size_t sa_tr_gemm_bf16_avx512_packed_bytes(int64_t K, int64_t N) {
    /* every block but the last has KC / 2 pairs: ceil(K / 2) pairs in all (KC is even) */
    return (size_t)((K + 1) / 2) * (size_t)n_panels(N) * NR * sizeof(uint32_t);
}

void sa_tr_gemm_bf16_avx512_pack(const struct sa_tr_gemm *g, int64_t q0, int64_t q1, uint32_t *dst) {
    for (int64_t pc = 0; pc < g->K; pc += KC) {
        int64_t kc = g->K - pc < KC ? g->K - pc : KC, kp = (kc + 1) / 2;
        int64_t j0 = q0 * NR, j1 = q1 * NR < g->N ? q1 * NR : g->N;
        if (j1 > j0) pack_B(g, j0, j1 - j0, pc, kc, dst + pk_block(g->N, pc) + q0 * kp * NR);
    }
}

bool sa_tr_gemm_bf16_avx512_rect(const struct sa_tr_gemm *g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (m1 <= m0 || n1 <= n0) return true;
    /* the A block on the stack (120 KiB); the B block (1 MiB) allocated unless pre-packed */
    _Alignas(64) uint32_t pa[MC * (KC / 2)];
    uint32_t *pb = NULL;
    if (!g->packed_b && !(pb = aligned_alloc(64, (size_t)NC * (KC / 2) * sizeof(uint32_t)))) return false;
    for (int64_t jc = n0; jc < n1; jc += NC) {
        int64_t nc = n1 - jc < NC ? n1 - jc : NC;
        for (int64_t pc = 0; pc < g->K; pc += KC) {
            int64_t kc = g->K - pc < KC ? g->K - pc : KC, kp = (kc + 1) / 2;
            float beta = pc == 0 ? g->beta : 1.0f;
            const uint32_t *bb = pb;
            if (g->packed_b) bb = g->packed_b + pk_block(g->N, pc) + (jc / NR) * kp * NR; /* jc: a multiple of NR */
            else pack_B(g, jc, nc, pc, kc, pb);
            for (int64_t ic = m0; ic < m1; ic += MC) {
                int64_t mc = m1 - ic < MC ? m1 - ic : MC;
                pack_A(g, ic, mc, pc, kc, pa);
                for (int64_t jr = 0; jr < nc; jr += NR)
                    for (int64_t ir = 0; ir < mc; ir += MR)
                        kernel(kp, pa + (ir / MR) * kp * MR, bb + (jr / NR) * kp * NR,
                               g->C + (ic + ir) * g->ldc + jc + jr, g->ldc, g->alpha, beta, mc - ir < MR ? mc - ir : MR,
                               nc - jr < NR ? nc - jr : NR);
            }
        }
    }
    free(pb);
    return true;
}

#else
size_t sa_tr_gemm_bf16_avx512_packed_bytes(int64_t K, int64_t N) {
    (void)K, (void)N;
    return 0;
}
void sa_tr_gemm_bf16_avx512_pack(const struct sa_tr_gemm *g, int64_t q0, int64_t q1, uint32_t *dst) {
    (void)g, (void)q0, (void)q1, (void)dst;
}
bool sa_tr_gemm_bf16_avx512_rect(const struct sa_tr_gemm *g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    (void)g, (void)m0, (void)m1, (void)n0, (void)n1;
    return false;
}
#endif
