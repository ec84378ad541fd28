/* gemm_avx2.c: the prefill / batched-decode GEMMs (T >= a per-type threshold) for AVX2 + FMA +
 * F16C (no VNNI): register tiles of 8 weight rows x JT activation rows. The counterpart of
 * gemm_avx512.c with 8-row panels: for each group of 4 elements, the 8 rows' 4 bytes side by
 * side (one ymm), so that vpmaddubsw with a broadcast of 4 activation bytes gives each row's 2
 * pair sums in int16 lanes 2r, 2r + 1; several groups are added in int16 (as many as the
 * weights' range keeps below saturation, G below), then one vpmaddwd by ones widens them to 8
 * int32 lanes, one per row. Per block the int32 sums become f32 with one FMA by the rows'
 * scales. Every output is one lane, accumulated over the blocks in one fixed order, so any
 * split of rows or activation rows gives the same bits. Layouts and accuracy:
 * docs/internals/cpu_backend.md. */
#include "backend/cpu/kernels_impl.h"
#include "core/core_impl.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#define SA_INLINE static inline __attribute__((always_inline))
#define PR 8 /* weight rows per panel: one int32 / f32 lane each */
#define JT 4 /* activation rows per register tile (3 ymm each: f32, int32, int16 accumulators) */
/* Bytes of one unpacked panel (stack; one slice of n_in at a time, so any n_in works). */
#define PANEL_MAX (32 * 1024)

#include "backend/cpu/arch/x86/gemm_unpack_x86.h"
#include "backend/cpu/arch/x86/unpack_q6_K_avx2.h"

/* ---- integer panels: weights as bytes u, w = D * u + M per block of BS ----
 * Panel block (one BS-element block of the 8 rows): u8 [BS/4][8 rows][4], then f32 D[8], then
 * f32 M[8]. Activation block (sa_block_q8a / sa_block_q8a16): f32 dx, then sum(q) (int32) or s
 * (f32, SA_ACT_Q8_1), int8 q[BS]. Q8_0 keeps the signed quants (w = D q, M = 0): vpmaddubsw
 * takes |q| and the activations with q's sign (vpsignb), since q + 128 (the AVX-512 GEMM's
 * form) times int8 pairs would saturate int16. */

/* The unpackers are gemm_unpack_x86.h's; this file's own: Q8_0 (signed quants) and bit5. */
SA_INLINE void un_q8_0(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q8_0 *b = (const void *)p;
    memcpy(u, b->qs, 32);
    D[0] = f16(b->d), M[0] = 0.0f;
}
/* 0x10 in byte i where bit i of the little-endian 32-bit qh is set (kernels_x86_body.h) */
SA_INLINE __m256i bit5(const uint8_t *qh) {
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, /* byte i/8 */
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL); /* 1 << (i % 8) */
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(ld32(qh)), pick);
    b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}


/* 8 x 8 transpose of 32-bit elements: v[i] = row i in, v[j] = column j out. 24 shuffles. */
SA_INLINE void transpose8(__m256i v[8]) {
    __m256i t[8], u[8];
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    /* u[4k + c], 128-bit lane L: rows 4k..4k+3 of column 4L + c */
    _Pragma("GCC unroll 2") for (int k = 0; k < 2; k++) {
        u[4 * k] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
        v[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
        v[4 + c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
    }
}

/* Rows r0 .. r0 + nr - 1 (nr <= 8), stored blocks [b0, b0 + nb) into the panel: each row's
 * blocks unpacked (64 elements at a time: two 32-element blocks, or a quarter of a
 * super-block) into a row-major buffer, then transposed 8 x 8 in registers. Missing rows are
 * zeros (D = M = 0), so their lanes compute 0 and are not stored. */
#define SA_PACK_INT(T, QK, BS)                                                                     \
    static void pack_##T(const struct sa_gemm_args *a, int64_t r0, int nr, int64_t b0, int64_t nb, uint8_t *panel) { \
        enum { NSUB = (QK) / (BS), PBLK = (BS) * PR + 64, NB64 = (QK) >= 64 ? 1 : 64 / (QK), SPAN = (QK) * NB64 }; \
        size_t qbytes = a->w_row_bytes / (size_t)(a->n_in / (QK));                                 \
        _Alignas(32) uint8_t u[PR][SPAN];                                                          \
        if (nr < PR) {                                                                             \
            memset(panel, 0, (size_t)(nb * NSUB * PBLK));                                          \
            memset(u[nr], 0, (size_t)(PR - nr) * SPAN);                                            \
        }                                                                                          \
        for (int64_t b = 0; b < nb; b += NB64) {                                                   \
            int nbb = (int)SA_MIN((int64_t)NB64, nb - b);                                          \
            for (int r = 0; r < nr; r++) {                                                         \
                const uint8_t *w = a->W + (size_t)(r0 + r) * a->w_row_bytes + (size_t)(b0 + b) * qbytes; \
                for (int i = 0; i < nbb; i++) {                                                    \
                    float D[NSUB], M[NSUB];                                                        \
                    un_##T(w + (size_t)i * qbytes, u[r] + (QK) * i, D, M);                         \
                    for (int s = 0; s < NSUB; s++) {                                               \
                        uint8_t *pb = panel + (size_t)((b + i) * NSUB + s) * PBLK + (BS) * PR;     \
                        memcpy(pb + 4 * r, &D[s], 4);                                              \
                        memcpy(pb + 32 + 4 * r, &M[s], 4);                                         \
                    }                                                                              \
                }                                                                                  \
                if (nbb < NB64) memset(u[r] + (QK) * nbb, 0, (size_t)(QK) * (NB64 - nbb));         \
            }                                                                                      \
            for (int c = 0; c < SPAN / 32; c++) {                                                  \
                __m256i v[8];                                                                      \
                _Pragma("GCC unroll 8") for (int r = 0; r < PR; r++) v[r] = _mm256_load_si256((const __m256i *)(u[r] + 32 * c)); \
                transpose8(v);                                                                     \
                _Pragma("GCC unroll 8") for (int g = 0; g < 8; g++) { /* group of 4 elements e of the span */ \
                    int e = 8 * c + g, sb = e / ((BS) / 4), gg = e % ((BS) / 4);                   \
                    if (sb < nbb * NSUB)                                                           \
                        _mm256_store_si256((__m256i *)(panel + (size_t)(b * NSUB + sb) * PBLK + 32 * gg), v[g]); \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* y[j][0..7] (+)= the panel's nblk blocks against activation rows x + j * xs, j < J.
 * The integer block sum: per group of 4 elements and activation row, vpmaddubsw (panel bytes
 * x the row's 4 bytes broadcast) into int16 pair sums, G groups added in int16, then vpmaddwd
 * by ones into the int32 lanes. G is the most groups whose sum cannot saturate int16, from
 * the largest u and |x| <= 128: 2 G umax 128 <= 32767 (u <= 15: 8 groups, 31: 4, 7 and 3: 4 (the
 * whole 16-element block);
 * Q8_0, |q| <= 128 against |x| <= 127: 1 (SIGN)). Per block, one of (see sa_block_q8a):
 *  OFF != 0 (weights D (u + OFF), OFF a fixed integer: Q4_0 -8, Q5_0 -16, Q3_K -4):
 *    f += (sum(u x) + OFF sum(x)) * (D dx), the exact integer block sum of the signed weights;
 *  SIGN (Q8_0): f += sum(|q| sign(q) x) * (D dx);
 *  MK == 1 (Q4_1/Q5_1, SA_ACT_Q8_1): f += sum(u x) * (D dx); f += M * s;
 *  MK == 2 (Q2_K/Q4_K/Q5_K, SA_ACT_Q8KA*): the same with s = dx * sum(x).
 * The same f32 operations as tile_int of gemm_avx512.c. */
SA_INLINE void tile_int(const uint8_t *panel, int64_t nblk, int BS, int OFF, int MK, int SIGN, int G, const uint8_t *x,
                        size_t xs, int J, float *y, size_t ys, __m256i m, int accumulate) {
    const size_t pblk = (size_t)BS * PR + 64, ablk = 8 + (size_t)BS;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[JT];
    _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) f[j] = accumulate ? _mm256_maskload_ps(y + j * ys, m) : _mm256_setzero_ps();
    for (int64_t b = 0; b < nblk; b++, panel += pblk, x += ablk) {
        __m256i s[JT];
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) s[j] = OFF ? _mm256_set1_epi32(OFF * ld32(x + j * xs + 4)) : _mm256_setzero_si256();
        _Pragma("GCC unroll 8") for (int g0 = 0; g0 < BS / 4; g0 += G) {
            __m256i h[JT];
            _Pragma("GCC unroll 8") for (int g = g0; g < g0 + G; g++) {
                __m256i w = _mm256_load_si256((const __m256i *)(panel + 32 * g));
                __m256i wu = SIGN ? _mm256_sign_epi8(w, w) : w;
                _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) {
                    __m256i xb = _mm256_set1_epi32(ld32(x + j * xs + 8 + 4 * g));
                    if (SIGN) xb = _mm256_sign_epi8(xb, w);
                    __m256i p = _mm256_maddubs_epi16(wu, xb);
                    h[j] = g == g0 ? p : _mm256_add_epi16(h[j], p);
                }
            }
            _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(h[j], ones));
        }
        __m256 D = _mm256_load_ps((const float *)(const void *)(panel + BS * PR));
        __m256 M = _mm256_load_ps((const float *)(const void *)(panel + BS * PR + 32));
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) {
            const uint8_t *xj = x + j * xs;
            f[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[j]), _mm256_mul_ps(D, _mm256_set1_ps(ldf(xj))), f[j]);
            if (MK) f[j] = _mm256_fmadd_ps(M, _mm256_set1_ps(MK == 1 ? ldf(xj + 4) : ldf(xj) * (float)ld32(xj + 4)), f[j]);
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) _mm256_maskstore_ps(y + j * ys, m, f[j]);
}

#define SA_TILE_INT(name, BS, OFF, MK, SIGN, G)                                                    \
    static void name(const uint8_t *panel, int64_t nblk, const uint8_t *x, size_t xs, int J, float *y, size_t ys, \
                     __m256i m, int acc) {                                                         \
        switch (J) {                                                                               \
        case 1: tile_int(panel, nblk, BS, OFF, MK, SIGN, G, x, xs, 1, y, ys, m, acc); break;       \
        case 2: tile_int(panel, nblk, BS, OFF, MK, SIGN, G, x, xs, 2, y, ys, m, acc); break;       \
        case 3: tile_int(panel, nblk, BS, OFF, MK, SIGN, G, x, xs, 3, y, ys, m, acc); break;       \
        default: tile_int(panel, nblk, BS, OFF, MK, SIGN, G, x, xs, 4, y, ys, m, acc); break;      \
        }                                                                                          \
    }
SA_TILE_INT(tile_q8_0, 32, 0, 0, 1, 1)
SA_TILE_INT(tile_q4_0, 32, -8, 0, 0, 8)
SA_TILE_INT(tile_q5_0, 32, -16, 0, 0, 4)
SA_TILE_INT(tile_q4_1, 32, 0, 1, 0, 8)
SA_TILE_INT(tile_q5_1, 32, 0, 1, 0, 4)
SA_TILE_INT(tile_q4_K, 32, 0, 2, 0, 8)
SA_TILE_INT(tile_q5_K, 32, 0, 2, 0, 4)
SA_TILE_INT(tile_q2_K, 16, 0, 2, 0, 4)
SA_TILE_INT(tile_q3_K, 16, -4, 0, 0, 4)

typedef void (*pack_fn)(const struct sa_gemm_args *a, int64_t r0, int nr, int64_t b0, int64_t nb, uint8_t *panel);
typedef void (*tile_fn)(const uint8_t *panel, int64_t nblk, const uint8_t *x, size_t xs, int J, float *y, size_t ys,
                        __m256i m, int acc);

/* The driver shared by every panel type: per panel of 8 rows, per slice of n_in (`per_slice`
 * units of `unit` elements, `unit_bytes` of panel each; act_unit_bytes of activation row per
 * unit): pack, then run the tiles over t0..t1; slices after the first add to Y (exactly the
 * sum order of one long slice, since Y holds the f32 accumulator unchanged). */
static void gemm_drive(const struct sa_gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1, int64_t n_units,
                       size_t unit_bytes, size_t act_unit_bytes, pack_fn pack, tile_fn tile, int64_t tile_units_per_unit) {
    _Alignas(32) uint8_t panel[PANEL_MAX];
    int64_t per_slice = SA_MAX((int64_t)1, (int64_t)(PANEL_MAX / unit_bytes));
    for (int64_t p = r0; p < r1; p += PR) {
        int nr = (int)SA_MIN((int64_t)PR, r1 - p);
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        for (int64_t u0 = 0; u0 < n_units; u0 += per_slice) {
            int64_t nu = SA_MIN(per_slice, n_units - u0);
            pack(a, p, nr, u0, nu, panel);
            const uint8_t *xb = (const uint8_t *)a->xa + (size_t)u0 * act_unit_bytes;
            for (int64_t t = t0; t < t1; t += JT) {
                int J = (int)SA_MIN((int64_t)JT, t1 - t);
                tile(panel, nu * tile_units_per_unit, xb + (size_t)t * a->x_row_bytes, a->x_row_bytes, J,
                     a->Y + t * a->n_out + p, (size_t)a->n_out, m, u0 > 0);
            }
        }
    }
}

#define SA_GEMM_INT(T, QK, BS)                                                                     \
    SA_PACK_INT(T, QK, BS)                                                                         \
    static void gemm_##T(const struct sa_gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) { \
        gemm_drive(a, r0, r1, t0, t1, a->n_in / (QK), (size_t)((QK) / (BS)) * ((BS) * PR + 64),    \
                   (size_t)((QK) / (BS)) * (8 + (BS)), pack_##T, tile_##T, (QK) / (BS));           \
    }
SA_GEMM_INT(q8_0, 32, 32)
SA_GEMM_INT(q4_0, 32, 32)
SA_GEMM_INT(q4_1, 32, 32)
SA_GEMM_INT(q5_0, 32, 32)
SA_GEMM_INT(q5_1, 32, 32)
SA_GEMM_INT(q4_K, 256, 32)
SA_GEMM_INT(q5_K, 256, 32)
SA_GEMM_INT(q2_K, 256, 16)
SA_GEMM_INT(q3_K, 256, 16)

/* ---- Q6_K: the sub-block scales in the integer sums (one float step per super-block) ----
 * The panel form above (w = D u + M per 16-element block) needs a float step per 16 weights
 * and, with u <= 63, an int16 sum of only 2 groups: it measured 0.4-0.7x the dot kernel. This
 * one keeps the whole super-block in int32, as the dot kernel does, and swaps the operands'
 * roles: the panel holds the signed weights w = u - 32 (-32..31), and vpmaddubsw takes the
 * activation bytes made unsigned, x + 128 (x ^ 0x80, 1..255), against them (pairs <= 2 * 255
 * * 32 = 16320: no saturation). Per 16-element block k and row r, the two int16 lanes of row r
 * (elements 4g, 4g + 1 and 4g + 2, 4g + 3 of the 4 groups g) start from the panel's -128 *
 * (the sum of their w), so after the 4 groups they hold sum x w exactly (|.| <= 8 * 127 * 32
 * = 32512 fits int16; vpaddw wraps, so the partial sums may leave the range); one vpmaddwd by
 * the block's int8 scale sc_k (in both lanes) adds sc_k * sum x w into row r's int32 lane. So
 * the lane holds sum_k sc_k sum_{i in k} (u_i - 32) x_i, the exact integer of dot1_q6_K (|.| <=
 * 128 * 256 * 32 * 127 < 2^31), and per super-block f = fma(cvt(isum), d dx, f): kernels_ref.c's
 * order. Per block and activation row: 4 vpmaddubsw + 1 vpmaddwd (the dot kernel: 8 for the
 * same 128 products) and 5 adds; the x + 128 bytes are made once per super-block and
 * activation row of a tile (a 256-byte copy). Exact for x in -127..127: sa_quantize_row_q8k's range
 * for finite inputs (-128 can come only from NaN, whose output is NaN anyway).
 * Panel per super-block (Q6P bytes): s8 w [64 groups of 4][8 rows][4]; int16 [16 blocks][8
 * rows][sc, sc]; int16 [16 blocks][8 rows][2 lanes] -128 sum w; f32 d[8]. Activations:
 * SA_ACT_Q8KA16 (the q8_K quants in 16-element sa_block_q8a16, each with the super-block's d). */
enum { Q6P_W = 0, Q6P_SC = 2048, Q6P_C = 2560, Q6P_D = 3072, Q6P = 3104, Q6A = 16 * (int)sizeof(sa_block_q8a16) };

static void pack_q6_K(const struct sa_gemm_args *a, int64_t r0, int nr, int64_t b0, int64_t nb, uint8_t *panel) {
    _Alignas(32) uint8_t u[PR][256];
    if (nr < PR) memset(u[nr], 32, (size_t)(PR - nr) * 256); /* missing rows: w = 0 */
    const __m256i k32 = _mm256_set1_epi8(32), ones = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *pb = panel + (size_t)b * Q6P;
        float *D = (float *)(void *)(pb + Q6P_D);
        __m256i s[2][8]; /* [blocks 0-7, 8-15][row r]: the 8 blocks' (sc, sc) int16 pairs */
        for (int r = 0; r < PR; r++) {
            if (r >= nr) { /* missing rows: zero scales and d */
                s[0][r] = s[1][r] = _mm256_setzero_si256();
                D[r] = 0.0f;
                continue;
            }
            const sa_block_q6_K *w = (const void *)(a->W + (size_t)(r0 + r) * a->w_row_bytes + (size_t)(b0 + b) * sizeof(sa_block_q6_K));
            float Dj[16], Mj[16];
            un_q6_K((const uint8_t *)w, u[r], Dj, Mj);
            /* int16 sc_0..15 in 64-bit quarters (0-3, 8-11 | 4-7, 12-15), then each doubled */
            __m256i e = _mm256_permute4x64_epi64(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales)), 0xD8);
            s[0][r] = _mm256_unpacklo_epi16(e, e), s[1][r] = _mm256_unpackhi_epi16(e, e);
            D[r] = f16(w->d);
        }
        _Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) { /* [row][block] -> [block][row] */
            transpose8(s[i]);
            _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) _mm256_store_si256((__m256i *)(pb + Q6P_SC + 32 * (8 * i + k)), s[i][k]);
        }
        for (int c = 0; c < 8; c++) { /* 32 elements = 8 groups of 4 = blocks 2c, 2c + 1 */
            __m256i v[8];
            _Pragma("GCC unroll 8") for (int r = 0; r < PR; r++) v[r] = _mm256_load_si256((const __m256i *)(u[r] + 32 * c));
            transpose8(v);
            _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
                __m256i ws = _mm256_setzero_si256(); /* per lane: the sum of its w, int16 */
                _Pragma("GCC unroll 4") for (int g = 4 * h; g < 4 * h + 4; g++) {
                    __m256i w = _mm256_sub_epi8(v[g], k32);
                    _mm256_store_si256((__m256i *)(pb + Q6P_W + 32 * (8 * c + g)), w);
                    ws = _mm256_add_epi16(ws, _mm256_maddubs_epi16(ones, w));
                }
                /* -128 sum w (mod 2^16: 32768 wraps to -32768, the same residue) */
                _mm256_store_si256((__m256i *)(pb + Q6P_C + 32 * (2 * c + h)), _mm256_slli_epi16(_mm256_sub_epi16(_mm256_setzero_si256(), ws), 7));
            }
        }
    }
}

/* y[j][0..7] (+)= the panel's nsb super-blocks against activation rows x + j * xs, j < J. */
SA_INLINE void tile_q6_K_J(const uint8_t *panel, int64_t nsb, const uint8_t *x, size_t xs, int J, float *y, size_t ys,
                           __m256i m, int accumulate) {
    const __m256i k80 = _mm256_set1_epi8((char)0x80);
    __m256 f[JT];
    _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) f[j] = accumulate ? _mm256_maskload_ps(y + j * ys, m) : _mm256_setzero_ps();
    _Alignas(32) uint8_t xu[JT][256]; /* the super-block's activation bytes + 128, contiguous */
    for (int64_t b = 0; b < nsb; b++, panel += Q6P, x += Q6A) {
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) for (int k = 0; k < 16; k++)
            _mm_store_si128((__m128i *)(xu[j] + 16 * k), _mm_xor_si128(_mm_loadu_si128((const __m128i *)(x + j * xs + (size_t)k * sizeof(sa_block_q8a16) + 8)), _mm256_castsi256_si128(k80)));
        __m256i s[JT];
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) s[j] = _mm256_setzero_si256();
        for (int k = 0; k < 16; k++) { /* 16-element block k: 4 groups into one int16 sum */
            const __m256i c = _mm256_load_si256((const __m256i *)(panel + Q6P_C + 32 * k));
            __m256i h[JT];
            _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) h[j] = c;
            _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
                __m256i w = _mm256_load_si256((const __m256i *)(panel + Q6P_W + 32 * (4 * k + g)));
                _Pragma("GCC unroll 4") for (int j = 0; j < J; j++)
                    h[j] = _mm256_add_epi16(h[j], _mm256_maddubs_epi16(_mm256_set1_epi32(ld32(xu[j] + 16 * k + 4 * g)), w));
            }
            const __m256i sc = _mm256_load_si256((const __m256i *)(panel + Q6P_SC + 32 * k));
            _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(h[j], sc));
        }
        __m256 D = _mm256_load_ps((const float *)(const void *)(panel + Q6P_D));
        _Pragma("GCC unroll 4") for (int j = 0; j < J; j++)
            f[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[j]), _mm256_mul_ps(D, _mm256_set1_ps(ldf(x + j * xs))), f[j]);
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < J; j++) _mm256_maskstore_ps(y + j * ys, m, f[j]);
}
static void tile_q6_K(const uint8_t *panel, int64_t nsb, const uint8_t *x, size_t xs, int J, float *y, size_t ys, __m256i m,
                      int acc) {
    switch (J) {
    case 1: tile_q6_K_J(panel, nsb, x, xs, 1, y, ys, m, acc); break;
    case 2: tile_q6_K_J(panel, nsb, x, xs, 2, y, ys, m, acc); break;
    case 3: tile_q6_K_J(panel, nsb, x, xs, 3, y, ys, m, acc); break;
    default: tile_q6_K_J(panel, nsb, x, xs, 4, y, ys, m, acc); break;
    }
}
static void gemm_q6_K(const struct sa_gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    gemm_drive(a, r0, r1, t0, t1, a->n_in / 256, Q6P, Q6A, pack_q6_K, tile_q6_K, 1);
}

/* ---- T = 1 with the GEMM's bits (batch-invariant decode) ----
 * The GEMM for one activation row does per output lane: f = fma(cvt(isum), D * dx, f), then
 * f = fma(M, sx, f) (MK), over the blocks in order, from f = 0. These row loops do the same f32
 * operations on 8 rows at a time (one lane each), but get the exact integer block sums the
 * dot kernels' way, without packing a panel: each row streamed on its own (as the dot
 * kernels do: 8 interleaved row streams defeat the hardware prefetchers, 2-3x slower on an
 * out-of-cache vocab matrix), 32 bytes of it against the block's 32 activation bytes into 8
 * int32 lanes, kept for a slice of ROWS_SLICE blocks; then per block one horizontal sum of the
 * 8 rows' vectors gives the 8 rows' exact sums in 8 lanes. The GEMM's bits at about the dot
 * kernels' speed. 32-element blocks only (sa_block_q8a activations). */
#define ROWS_SLICE 64 /* 32-element blocks per slice: 16 KiB of int32 vectors + 4 KiB of D, M */

/* lane r = the sum of the 8 int32 lanes of v[r] */
SA_INLINE __m256i hsum8x8(const __m256i *v) {
    __m256i a0 = _mm256_hadd_epi32(v[0], v[1]), a1 = _mm256_hadd_epi32(v[2], v[3]);
    __m256i a2 = _mm256_hadd_epi32(v[4], v[5]), a3 = _mm256_hadd_epi32(v[6], v[7]);
    __m256i b0 = _mm256_hadd_epi32(a0, a1), b1 = _mm256_hadd_epi32(a2, a3);
    return _mm256_add_epi32(_mm256_permute2x128_si256(b0, b1, 0x20), _mm256_permute2x128_si256(b0, b1, 0x31));
}

#define SA_ROWS_GEMM(T, QK, OFF, MK, SIGN)                                                         \
    static void rows_##T(int64_t n, const void *w, size_t w_row_bytes, int64_t n_rows, const void *x, float *y) { \
        enum { NSUB = (QK) / 32, SLICE_B = ROWS_SLICE / NSUB };                                    \
        const int64_t nb = n / (QK);                                                               \
        const size_t qbytes = w_row_bytes / (size_t)nb;                                            \
        const uint8_t *xa = x;                                                                     \
        const __m256i ones = _mm256_set1_epi16(1);                                                 \
        _Alignas(32) __m256i vs[ROWS_SLICE][PR]; /* [block of the slice][row]: 8 partial sums */   \
        _Alignas(32) float D[ROWS_SLICE][PR], M[ROWS_SLICE][PR];                                   \
        for (int64_t r0 = 0; r0 < n_rows; r0 += PR) {                                              \
            int nr = (int)SA_MIN((int64_t)PR, n_rows - r0);                                        \
            __m256 f = _mm256_setzero_ps();                                                        \
            for (int64_t b0 = 0; b0 < nb; b0 += SLICE_B) {                                         \
                int nbs = (int)SA_MIN((int64_t)SLICE_B, nb - b0);                                  \
                for (int r = 0; r < PR; r++) {                                                     \
                    if (r >= nr) { /* missing rows: zero sums and scales */                        \
                        for (int k = 0; k < nbs * NSUB; k++) vs[k][r] = _mm256_setzero_si256(), D[k][r] = M[k][r] = 0.0f; \
                        continue;                                                                  \
                    }                                                                              \
                    const uint8_t *wb = (const uint8_t *)w + (size_t)(r0 + r) * w_row_bytes + (size_t)b0 * qbytes; \
                    for (int i = 0; i < nbs; i++) {                                                \
                        _Alignas(32) uint8_t u[QK];                                                \
                        float d1[NSUB], m1[NSUB];                                                  \
                        un_##T(wb + (size_t)i * qbytes, u, d1, m1);                                \
                        _Pragma("GCC unroll 8") for (int s = 0; s < NSUB; s++) {                   \
                            const uint8_t *xb = xa + (size_t)((b0 + i) * NSUB + s) * sizeof(sa_block_q8a); \
                            __m256i q = _mm256_loadu_si256((const __m256i *)(xb + 8));             \
                            __m256i wu = _mm256_load_si256((const __m256i *)(u + 32 * s));         \
                            __m256i p = SIGN ? _mm256_maddubs_epi16(_mm256_sign_epi8(wu, wu), _mm256_sign_epi8(q, wu)) \
                                             : _mm256_maddubs_epi16(wu, q);                        \
                            vs[i * NSUB + s][r] = _mm256_madd_epi16(p, ones);                      \
                            D[i * NSUB + s][r] = d1[s], M[i * NSUB + s][r] = m1[s];                \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                for (int k = 0; k < nbs * NSUB; k++) {                                             \
                    const uint8_t *xb = xa + (size_t)(b0 * NSUB + k) * sizeof(sa_block_q8a);      \
                    __m256i is = hsum8x8(vs[k]);                                                   \
                    if (OFF) is = _mm256_add_epi32(is, _mm256_set1_epi32((OFF) * ld32(xb + 4)));   \
                    float dx = ldf(xb);                                                            \
                    f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_mul_ps(_mm256_load_ps(D[k]), _mm256_set1_ps(dx)), f); \
                    if (MK) f = _mm256_fmadd_ps(_mm256_load_ps(M[k]), _mm256_set1_ps(MK == 1 ? ldf(xb + 4) : dx * (float)ld32(xb + 4)), f); \
                }                                                                                  \
            }                                                                                      \
            if (nr == PR) _mm256_storeu_ps(y + r0, f);                                             \
            else _mm256_maskstore_ps(y + r0, _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), f); \
        }                                                                                          \
    }
SA_ROWS_GEMM(q8_0, 32, 0, 0, 1)
SA_ROWS_GEMM(q4_0, 32, -8, 0, 0)
SA_ROWS_GEMM(q4_1, 32, 0, 1, 0)
SA_ROWS_GEMM(q5_0, 32, -16, 0, 0)
SA_ROWS_GEMM(q5_1, 32, 0, 1, 0)
SA_ROWS_GEMM(q4_K, 256, 0, 2, 0)
SA_ROWS_GEMM(q5_K, 256, 0, 2, 0)

/* Q6_K, T = 1 with gemm_q6_K's bits: per super-block each row's exact integer sum the dot
 * kernel's way (kernels_x86_body.h dot_q6_K_n: u = 6 bits against 32 activation bytes,
 * vpmaddwd by the two sub-blocks' scales, the -32 offset from the block sums in scalar code)
 * into 8 int32 lanes, kept for a slice of super-blocks while the row streams on its own; then
 * per super-block one horizontal sum of the 8 rows' vectors and the GEMM's f32 step. The
 * activation row (SA_ACT_Q8KA16) is first copied, a slice at a time, into contiguous q8_K
 * quants and block sums, so that a 32-byte load covers 2 blocks; the slice's f32 sums wait in
 * y (the same f32 values: the GEMM does the same across its panel slices). */
#define ROWS_Q6_SLICE 32 /* super-blocks: 8 KiB of quants, 8 KiB of int32 vectors */
static void rows_q6_K(int64_t n, const void *w, size_t w_row_bytes, int64_t n_rows, const void *x, float *y) {
    const int64_t nsb = n / 256;
    const sa_block_q8a16 *xa = x;
    _Alignas(32) int8_t xq[ROWS_Q6_SLICE][256];
    int32_t xs[ROWS_Q6_SLICE][16];
    float xd[ROWS_Q6_SLICE];
    _Alignas(32) __m256i vs[ROWS_Q6_SLICE][PR];
    _Alignas(32) float D[ROWS_Q6_SLICE][PR];
    for (int64_t s0 = 0; s0 < nsb; s0 += ROWS_Q6_SLICE) {
        int ns = (int)SA_MIN((int64_t)ROWS_Q6_SLICE, nsb - s0);
        for (int b = 0; b < ns; b++) {
            const sa_block_q8a16 *xb = xa + (s0 + b) * 16;
            for (int k = 0; k < 16; k++) memcpy(xq[b] + 16 * k, xb[k].qs, 16), xs[b][k] = xb[k].sum;
            xd[b] = xb[0].d;
        }
        for (int64_t r0 = 0; r0 < n_rows; r0 += PR) {
            int nr = (int)SA_MIN((int64_t)PR, n_rows - r0);
            __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            for (int r = 0; r < PR; r++) {
                if (r >= nr) { /* missing rows: zero sums and d */
                    for (int b = 0; b < ns; b++) vs[b][r] = _mm256_setzero_si256(), D[b][r] = 0.0f;
                    continue;
                }
                const sa_block_q6_K *bw = (const sa_block_q6_K *)(const void *)((const uint8_t *)w + (size_t)(r0 + r) * w_row_bytes) + s0;
                for (int b = 0; b < ns; b++) {
                    const int8_t *sc = bw[b].scales;
                    __m256i sumi = _mm256_setzero_si256();
                    for (int h = 0; h < 2; h++) {
                        __m256i u[4];
                        unpack_q6_K_half(bw[b].ql + 64 * h, bw[b].qh + 32 * h, u);
                        _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
                            __m256i scale = _mm256_setr_m128i(_mm_set1_epi16(sc[8 * h + 2 * g]), _mm_set1_epi16(sc[8 * h + 2 * g + 1]));
                            __m256i q = _mm256_load_si256((const __m256i *)(xq[b] + 128 * h + 32 * g));
                            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(u[g], q), scale));
                        }
                    }
                    int off = 0;
                    for (int k = 0; k < 16; k++) off += sc[k] * xs[b][k];
                    vs[b][r] = _mm256_add_epi32(sumi, _mm256_setr_epi32(-32 * off, 0, 0, 0, 0, 0, 0, 0));
                    D[b][r] = f16(bw[b].d);
                }
            }
            __m256 f = s0 > 0 ? _mm256_maskload_ps(y + r0, m) : _mm256_setzero_ps();
            for (int b = 0; b < ns; b++)
                f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum8x8(vs[b])), _mm256_mul_ps(_mm256_load_ps(D[b]), _mm256_set1_ps(xd[b])), f);
            _mm256_maskstore_ps(y + r0, m, f);
        }
    }
}

void sa_cpu_gemm_avx2(struct sa_cpu_kernels *k) {
    /* min_T: the T from which the GEMM beats the dot kernels (bench_matmul --scan on the
     * Qwen2.5-0.5B shapes, 1 thread; docs/internals/cpu_backend.md). Q2_K/Q3_K have no AVX2 dot
     * kernel (plain C), so the GEMM wins from T = 1. Q6_K's dot kernel already keeps its
     * scales in the integer sums (8 multiplies per 128 products against the GEMM's 5), so its
     * GEMM wins later (~1.1x at T = 8, ~1.5x at T = 32); Q8_0 (vpsignb per activation row, no
     * int16 sums) gains ~15% from T = 16 (even at T = 8; the tests keep every min_T <= 8). */
#define SET(T, t, min_T, rows) k->gemm[SA_DTYPE_##T] = (struct sa_cpu_gemm){gemm_##t, "gemm_" #t ".avx2", min_T, rows}
    SET(Q8_0, q8_0, 8, rows_q8_0);
    SET(Q4_0, q4_0, 4, rows_q4_0);
    SET(Q4_1, q4_1, 4, rows_q4_1);
    SET(Q5_0, q5_0, 4, rows_q5_0);
    SET(Q5_1, q5_1, 4, rows_q5_1);
    SET(Q2_K, q2_K, 1, NULL);
    SET(Q3_K, q3_K, 1, NULL);
    SET(Q4_K, q4_K, 4, rows_q4_K);
    SET(Q5_K, q5_K, 4, rows_q5_K);
    SET(Q6_K, q6_K, 6, rows_q6_K);
#undef SET
}
#else
void sa_cpu_gemm_avx2(struct sa_cpu_kernels *k) { (void)k; }
#endif
