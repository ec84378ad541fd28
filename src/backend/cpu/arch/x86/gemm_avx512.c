/* gemm_avx512.c: the prefill GEMMs (T >= a per-type threshold) for AVX512 (VNNI, BF16): register
 * tiles of 16 weight rows x 8 activation rows. A panel of 16 weight rows is unpacked once
 * (per slice of n_in) into an interleaved layout: for each group of 4 elements, the 16 rows'
 * 4 bytes side by side (64 bytes), so that one vpdpbusd with a broadcast of 4 activation
 * bytes gives 16 rows' partial sums in 16 int32 lanes: no horizontal sums, every output a
 * lane of its own. Per block the int32 sums become f32 with one FMA by the rows' scales.
 * ref: the register tiling of llamafile's tinyBLAS and ggml-cpu's repacked q4_0 8x8 kernels
 * (ideas only). Layouts and accuracy: docs/internals/cpu_backend.md. */
#include "backend/cpu/kernels_impl.h"
#include "core/core_impl.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512bf16")
#include <immintrin.h>

#define SA_INLINE static inline __attribute__((always_inline))
#define PR SA_GEMM_ROWS /* weight rows per panel: one zmm lane each */
#define JT 8            /* activation rows per register tile */
/* Bytes of one unpacked panel (stack; one slice of n_in at a time, so any n_in works): about
 * 2048 elements of 16 rows, in L1/L2 while the activation rows go by. */
#define PANEL_MAX (48 * 1024)

#include "backend/cpu/arch/x86/gemm_unpack_x86.h"

/* ---- integer panels: weights as unsigned bytes u, w = D * u + M per block of BS ----
 * Panel block (one BS-element block of the 16 rows): u8 [BS/4][16 rows][4], then f32 D[16],
 * then f32 M[16]. Activation block (sa_block_q8a / sa_block_q8a16): f32 dx, then sum(q)
 * (int32) or s (f32, SA_ACT_Q8_1), int8 q[BS]. Output: sum over blocks of (D dx) * (sum(u q) +
 * OFF sum(q)) for the types whose M is a fixed multiple OFF of D (exact integer offsets, as
 * ggml's signed sums), else (D dx) * sum(u q) + M sx (tile_int). */

/* The unpackers are gemm_unpack_x86.h's; this file's own: Q8_0 (q + 128) and bit5. */
SA_INLINE void un_q8_0(const uint8_t *p, uint8_t *u, float *D, float *M) {
    const sa_block_q8_0 *b = (const void *)p;
    /* u = q + 128 (q ^ 0x80), M = -128 D: vpdpbusd needs one unsigned operand */
    __m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
    _mm256_storeu_si256((__m256i *)u, _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80)));
    D[0] = f16(b->d), M[0] = -128.0f * D[0];
}
/* 0x10 in byte i where bit i of the little-endian 32-bit qh is set (AVX512BW mask move) */
SA_INLINE __m256i bit5(const uint8_t *qh) { return _mm256_maskz_set1_epi8((__mmask32)(uint32_t)ld32(qh), 0x10); }

/* 16 x 16 transpose of 32-bit elements: v[i] = row i in, v[j] = column j out (unpack
 * within 128-bit lanes, then a 4 x 4 transpose of the lanes). 64 shuffles. */
SA_INLINE void transpose16(__m512i v[16]) {
    __m512i t[16], u[16];
    _Pragma("GCC unroll 16") for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    /* u[4k + c], lane L: rows 4k..4k+3 of column 4L + c */
    _Pragma("GCC unroll 16") for (int k = 0; k < 4; k++) {
        u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    _Pragma("GCC unroll 16") for (int c = 0; c < 4; c++) {
        __m512i a0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44), a1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        __m512i a2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44), a3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        v[c] = _mm512_shuffle_i32x4(a0, a2, 0x88);
        v[4 + c] = _mm512_shuffle_i32x4(a0, a2, 0xDD);
        v[8 + c] = _mm512_shuffle_i32x4(a1, a3, 0x88);
        v[12 + c] = _mm512_shuffle_i32x4(a1, a3, 0xDD);
    }
}

/* Rows r0 .. r0 + nr - 1 (nr <= 16), stored blocks [b0, b0 + nb) into the panel: each row's
 * blocks unpacked (64 elements at a time: two 32-element blocks, or a quarter of a
 * super-block) into a row-major buffer, then transposed 16 x 16 in registers. Missing rows
 * are zeros (D = M = 0), so their lanes compute 0 and are not stored. */
#define SA_PACK_INT(T, QK, BS)                                                                     \
    static void pack_##T(const struct sa_gemm_args *a, int64_t r0, int nr, int64_t b0, int64_t nb, uint8_t *panel) { \
        enum { NSUB = (QK) / (BS), PBLK = (BS) * 16 + 128, NB64 = (QK) >= 64 ? 1 : 64 / (QK), SPAN = (QK) * NB64 }; \
        size_t qbytes = a->w_row_bytes / (size_t)(a->n_in / (QK));                                 \
        _Alignas(64) uint8_t u[PR][SPAN];                                                          \
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
                        uint8_t *pb = panel + (size_t)((b + i) * NSUB + s) * PBLK + (BS) * 16;     \
                        memcpy(pb + 4 * r, &D[s], 4);                                              \
                        memcpy(pb + 64 + 4 * r, &M[s], 4);                                         \
                    }                                                                              \
                }                                                                                  \
                if (nbb < NB64) memset(u[r] + (QK) * nbb, 0, (size_t)(QK) * (NB64 - nbb));         \
            }                                                                                      \
            for (int c = 0; c < SPAN / 64; c++) {                                                  \
                __m512i v[16];                                                                     \
                _Pragma("GCC unroll 16") for (int r = 0; r < PR; r++) v[r] = _mm512_load_si512((const void *)(u[r] + 64 * c)); \
                transpose16(v);                                                                    \
                _Pragma("GCC unroll 16") for (int g = 0; g < 16; g++) { /* group of 4 elements e of the span */ \
                    int e = 16 * c + g, sb = e / ((BS) / 4), gg = e % ((BS) / 4);                  \
                    if (sb < nbb * NSUB)                                                           \
                        _mm512_store_si512((void *)(panel + (size_t)(b * NSUB + sb) * PBLK + 64 * gg), v[g]); \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* y[j][0..15] (+)= the panel's nblk blocks against activation rows x + j * xs, j < J.
 * Per block, one of (see sa_block_q8a):
 *  OFF != 0 (weights D (u + OFF), OFF a fixed integer: Q8_0 -128, Q4_0 -8, Q5_0 -16, Q3_K -4,
 *    Q6_K -32): f += (sum(u x) + OFF sum(x)) * (D dx), the exact integer block sum of the
 *    signed weights, as ggml;
 *  OFF == 0, min_s (Q4_1/Q5_1, SA_ACT_Q8_1): f += sum(u x) * (D dx); f += M * s;
 *  OFF == 0, !min_s (Q2_K/Q4_K/Q5_K, SA_ACT_Q8KA*): the same with s = dx * sum(x). */
SA_INLINE void tile_int(const uint8_t *panel, int64_t nblk, int BS, int OFF, int min_s, const uint8_t *x, size_t xs,
                        int J, float *y, size_t ys, __mmask16 m, int accumulate) {
    const size_t pblk = (size_t)BS * 16 + 128, ablk = 8 + (size_t)BS;
    __m512 f[JT];
    _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) f[j] = accumulate ? _mm512_maskz_loadu_ps(m, y + j * ys) : _mm512_setzero_ps();
    for (int64_t b = 0; b < nblk; b++, panel += pblk, x += ablk) {
        __m512i s[JT];
        _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) s[j] = OFF ? _mm512_set1_epi32(OFF * ld32(x + j * xs + 4)) : _mm512_setzero_si512();
        _Pragma("GCC unroll 8") for (int g = 0; g < BS / 4; g++) {
            __m512i w = _mm512_load_si512((const void *)(panel + 64 * g));
            _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) s[j] = _mm512_dpbusd_epi32(s[j], w, _mm512_set1_epi32(ld32(x + j * xs + 8 + 4 * g)));
        }
        __m512 D = _mm512_load_ps((const float *)(panel + BS * 16)), M = _mm512_load_ps((const float *)(panel + BS * 16 + 64));
        _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) {
            const uint8_t *xj = x + j * xs;
            f[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[j]), _mm512_mul_ps(D, _mm512_set1_ps(ldf(xj))), f[j]);
            if (!OFF) f[j] = _mm512_fmadd_ps(M, _mm512_set1_ps(min_s ? ldf(xj + 4) : ldf(xj) * (float)ld32(xj + 4)), f[j]);
        }
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) _mm512_mask_storeu_ps(y + j * ys, m, f[j]);
}

#define SA_TILE_INT(name, BS, OFF, MIN_S)                                                          \
    static void name(const uint8_t *panel, int64_t nblk, const uint8_t *x, size_t xs, int J, float *y, size_t ys, \
                     __mmask16 m, int acc) {                                                       \
        switch (J) {                                                                               \
        case 1: tile_int(panel, nblk, BS, OFF, MIN_S, x, xs, 1, y, ys, m, acc); break;             \
        case 2: tile_int(panel, nblk, BS, OFF, MIN_S, x, xs, 2, y, ys, m, acc); break;             \
        case 3: tile_int(panel, nblk, BS, OFF, MIN_S, x, xs, 3, y, ys, m, acc); break;             \
        case 4: tile_int(panel, nblk, BS, OFF, MIN_S, x, xs, 4, y, ys, m, acc); break;             \
        case 5: tile_int(panel, nblk, BS, OFF, MIN_S, x, xs, 5, y, ys, m, acc); break;             \
        case 6: tile_int(panel, nblk, BS, OFF, MIN_S, x, xs, 6, y, ys, m, acc); break;             \
        case 7: tile_int(panel, nblk, BS, OFF, MIN_S, x, xs, 7, y, ys, m, acc); break;             \
        default: tile_int(panel, nblk, BS, OFF, MIN_S, x, xs, 8, y, ys, m, acc); break;            \
        }                                                                                          \
    }
SA_TILE_INT(tile_q8_0, 32, -128, 0)
SA_TILE_INT(tile_q4_0, 32, -8, 0)
SA_TILE_INT(tile_q5_0, 32, -16, 0)
SA_TILE_INT(tile_q4_1, 32, 0, 1)
SA_TILE_INT(tile_q5_1, 32, 0, 1)
SA_TILE_INT(tile_q4_K, 32, 0, 0)
SA_TILE_INT(tile_q5_K, 32, 0, 0)
SA_TILE_INT(tile_q2_K, 16, 0, 0)
SA_TILE_INT(tile_q3_K, 16, -4, 0)
SA_TILE_INT(tile_q6_K, 16, -32, 0)

typedef void (*pack_fn)(const struct sa_gemm_args *a, int64_t r0, int nr, int64_t b0, int64_t nb, uint8_t *panel);
typedef void (*tile_fn)(const uint8_t *panel, int64_t nblk, const uint8_t *x, size_t xs, int J, float *y, size_t ys,
                        __mmask16 m, int acc);

/* The driver shared by every panel type: per panel of 16 rows, per slice of n_in (`per_slice`
 * units of `unit` elements, `unit_bytes` of panel each; act_unit_bytes of activation row per
 * unit): pack, then run the tiles over t0..t1; slices after the first add to Y (exactly the
 * sum order of one long slice, since Y holds the f32 accumulator unchanged). */
static void gemm_drive(const struct sa_gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1, int64_t n_units,
                       size_t unit_bytes, size_t act_unit_bytes, pack_fn pack, tile_fn tile, int64_t tile_units_per_unit) {
    _Alignas(64) uint8_t panel[PANEL_MAX];
    int64_t per_slice = SA_MAX((int64_t)1, (int64_t)(PANEL_MAX / unit_bytes));
    for (int64_t p = r0; p < r1; p += PR) {
        int nr = (int)SA_MIN((int64_t)PR, r1 - p);
        __mmask16 m = (__mmask16)((1u << nr) - 1);
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
        gemm_drive(a, r0, r1, t0, t1, a->n_in / (QK), (size_t)((QK) / (BS)) * ((BS) * 16 + 128),   \
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
SA_GEMM_INT(q6_K, 256, 16)

/* ---- float panels ----
 * F32/F16: f32 [element][16 rows] (F16 converted exactly), FMA with broadcast f32 x.
 * BF16: [pair][16 rows][2 bf16] against bf16 activation pairs: vdpbf16ps (exact bf16
 * products, f32 sums; the activations were rounded to bf16, the accuracy cost). */

/* 16 rows x 16 columns of 32-bit values at p + r * stride (rows >= nr: zeros), transposed
 * into the panel at dst (64 bytes per column). */
SA_INLINE void transpose_store(__m512i v[16], uint8_t *dst) {
    transpose16(v);
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(dst + 64 * i), v[i]);
}

static void pack_f32(const struct sa_gemm_args *a, int64_t r0, int nr, int64_t k0, int64_t nk, uint8_t *panel) {
    float *pf = (float *)(void *)panel;
    if (nr < PR) memset(panel, 0, (size_t)nk * 64);
    int64_t k = 0;
    for (; k + 16 <= nk; k += 16) {
        __m512i v[16];
        _Pragma("GCC unroll 16") for (int r = 0; r < PR; r++) {
            const float *w = (const float *)(const void *)(a->W + (size_t)(r0 + r) * a->w_row_bytes) + k0 + k;
            v[r] = r < nr ? _mm512_loadu_si512((const void *)w) : _mm512_setzero_si512();
        }
        transpose_store(v, panel + (size_t)k * 64);
    }
    for (int r = 0; r < nr; r++) {
        const float *w = (const float *)(const void *)(a->W + (size_t)(r0 + r) * a->w_row_bytes) + k0;
        for (int64_t kk = k; kk < nk; kk++) pf[kk * PR + r] = w[kk];
    }
}

static void pack_f16(const struct sa_gemm_args *a, int64_t r0, int nr, int64_t k0, int64_t nk, uint8_t *panel) {
    float *pf = (float *)(void *)panel;
    if (nr < PR) memset(panel, 0, (size_t)nk * 64);
    int64_t k = 0;
    for (; k + 16 <= nk; k += 16) {
        __m512i v[16];
        _Pragma("GCC unroll 16") for (int r = 0; r < PR; r++) {
            const uint16_t *w = (const uint16_t *)(const void *)(a->W + (size_t)(r0 + r) * a->w_row_bytes) + k0 + k;
            v[r] = r < nr ? _mm512_castps_si512(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)w))) : _mm512_setzero_si512();
        }
        transpose_store(v, panel + (size_t)k * 64);
    }
    for (int r = 0; r < nr; r++) {
        const uint16_t *w = (const uint16_t *)(const void *)(a->W + (size_t)(r0 + r) * a->w_row_bytes) + k0;
        for (int64_t kk = k; kk < nk; kk++) pf[kk * PR + r] = f16(w[kk]);
    }
}

SA_INLINE void tile_f32(const uint8_t *panel, int64_t nk, const uint8_t *x, size_t xs, int J, float *y, size_t ys,
                        __mmask16 m, int accumulate) {
    __m512 f[JT];
    const float *pf = (const float *)(const void *)panel;
    _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) f[j] = accumulate ? _mm512_maskz_loadu_ps(m, y + j * ys) : _mm512_setzero_ps();
    for (int64_t k = 0; k < nk; k++) {
        __m512 w = _mm512_load_ps(pf + k * PR);
        _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) f[j] = _mm512_fmadd_ps(w, _mm512_set1_ps(ldf(x + j * xs + 4 * k)), f[j]);
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) _mm512_mask_storeu_ps(y + j * ys, m, f[j]);
}

static void pack_bf16(const struct sa_gemm_args *a, int64_t r0, int nr, int64_t g0, int64_t ng, uint8_t *panel) {
    uint32_t *pp = (uint32_t *)(void *)panel;
    if (nr < PR) memset(panel, 0, (size_t)ng * 64);
    int64_t full = a->n_in / 2, g = 0; /* pairs with both elements */
    for (; g + 16 <= ng && g0 + g + 16 <= full; g += 16) {
        __m512i v[16];
        _Pragma("GCC unroll 16") for (int r = 0; r < PR; r++) {
            const uint16_t *w = (const uint16_t *)(const void *)(a->W + (size_t)(r0 + r) * a->w_row_bytes) + 2 * (g0 + g);
            v[r] = r < nr ? _mm512_loadu_si512((const void *)w) : _mm512_setzero_si512();
        }
        transpose_store(v, panel + (size_t)g * 64);
    }
    for (int r = 0; r < nr; r++) {
        const uint16_t *w = (const uint16_t *)(const void *)(a->W + (size_t)(r0 + r) * a->w_row_bytes);
        for (int64_t gg = g0 + g; gg < g0 + ng; gg++) {
            uint32_t hi = gg < full ? w[2 * gg + 1] : 0; /* odd n_in: the last pair's second element is 0 */
            pp[(gg - g0) * PR + r] = (uint32_t)w[2 * gg] | hi << 16;
        }
    }
}

SA_INLINE void tile_bf16(const uint8_t *panel, int64_t ng, const uint8_t *x, size_t xs, int J, float *y, size_t ys,
                         __mmask16 m, int accumulate) {
    __m512 f[JT];
    _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) f[j] = accumulate ? _mm512_maskz_loadu_ps(m, y + j * ys) : _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        __m512bh w = (__m512bh)_mm512_load_si512((const void *)(panel + 64 * g));
        _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) f[j] = _mm512_dpbf16_ps(f[j], w, (__m512bh)_mm512_set1_epi32(ld32(x + j * xs + 4 * g)));
    }
    _Pragma("GCC unroll 8") for (int j = 0; j < J; j++) _mm512_mask_storeu_ps(y + j * ys, m, f[j]);
}

#define SA_TILE_FLOAT(name)                                                                        \
    static void name##_any(const uint8_t *panel, int64_t n, const uint8_t *x, size_t xs, int J, float *y, size_t ys, \
                           __mmask16 m, int acc) {                                                 \
        switch (J) {                                                                               \
        case 1: name(panel, n, x, xs, 1, y, ys, m, acc); break;                                    \
        case 2: name(panel, n, x, xs, 2, y, ys, m, acc); break;                                    \
        case 3: name(panel, n, x, xs, 3, y, ys, m, acc); break;                                    \
        case 4: name(panel, n, x, xs, 4, y, ys, m, acc); break;                                    \
        case 5: name(panel, n, x, xs, 5, y, ys, m, acc); break;                                    \
        case 6: name(panel, n, x, xs, 6, y, ys, m, acc); break;                                    \
        case 7: name(panel, n, x, xs, 7, y, ys, m, acc); break;                                    \
        default: name(panel, n, x, xs, 8, y, ys, m, acc); break;                                   \
        }                                                                                          \
    }
SA_TILE_FLOAT(tile_f32)
SA_TILE_FLOAT(tile_bf16)

static void gemm_f32(const struct sa_gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    gemm_drive(a, r0, r1, t0, t1, a->n_in, 64, 4, pack_f32, tile_f32_any, 1);
}
static void gemm_f16(const struct sa_gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    gemm_drive(a, r0, r1, t0, t1, a->n_in, 64, 4, pack_f16, tile_f32_any, 1);
}
static void gemm_bf16(const struct sa_gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    gemm_drive(a, r0, r1, t0, t1, (a->n_in + 1) / 2, 64, 4, pack_bf16, tile_bf16_any, 1);
}

/* ---- activation conversion: the bytes of quant_act.c (same IEEE operations, no FMA
 * contraction: -std=c11 implies -ffp-contract=off), 16 elements at a time ---- */

/* max(m, |x|) per lane, NaN in x ignored (max_ps returns its second operand on NaN) */
SA_INLINE __m512 max_abs16(__m512 m, __m512 x) {
    return _mm512_max_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff))), m);
}
SA_INLINE float round_f16(float v) { return _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT)); }

/* ggml's q8_0 / q8_1 (quant_act.c sa_quantize_row_q8a): cvtps2dq (round to nearest even,
 * NaN and overflow to INT32_MIN) then vpmovsdb (saturating), as ggml's cvtps_epi32 + packs */
static void act_q8a(const float *x, sa_block_q8a *y, int64_t n, bool with_s) {
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(max_abs16(max_abs16(_mm512_setzero_ps(), x0), x1));
        float d = amax / 127.0f;
        __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
        __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x0, id)));
        __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(x1, id)));
        _mm_storeu_si128((__m128i *)y[b].qs, q0);
        _mm_storeu_si128((__m128i *)(y[b].qs + 16), q1);
        int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_cvtepi8_epi32(q0), _mm512_cvtepi8_epi32(q1)));
        y[b].d = round_f16(d);
        if (with_s) y[b].s = round_f16(d * (float)sum);
        else y[b].sum = sum;
    }
}

/* One super-block of 256 as sa_quantize_row_q8k (ggml's q8_K); qs and bsums out, d returned. */
static float act_q8k_block(const float *x, int8_t *qs, int16_t *bsums) {
    __m512 m = _mm512_setzero_ps();
    for (int g = 0; g < 16; g++) m = max_abs16(m, _mm512_loadu_ps(x + 16 * g));
    float amax = _mm512_reduce_max_ps(m);
    if (amax == 0.0f) {
        memset(qs, 0, 256);
        memset(bsums, 0, 32);
        return 0.0f;
    }
    float max = amax; /* the first element of largest |x|, with its sign */
    for (int g = 0; g < 16; g++) {
        __mmask16 k = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * g)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
        if (k) {
            max = x[16 * g + __builtin_ctz(k)];
            break;
        }
    }
    float iscale = -127.0f / max;
    __m512 is = _mm512_set1_ps(iscale);
    for (int g = 0; g < 16; g++) {
        /* nearest_int: the low mantissa bits of x * iscale + 1.5 * 2^23, then min(127, q) */
        __m512 f = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), is), _mm512_set1_ps(12582912.0f));
        __m512i i = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(f), _mm512_set1_epi32(0x007fffff)),
                                     _mm512_set1_epi32(0x00400000));
        __m128i q = _mm512_cvtepi32_epi8(_mm512_min_epi32(i, _mm512_set1_epi32(127))); /* truncating, as C's int8 store */
        _mm_storeu_si128((__m128i *)(qs + 16 * g), q);
        bsums[g] = (int16_t)_mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(q));
    }
    return 1.0f / iscale;
}

static void act_row_avx512(enum sa_act_kind kind, const float *x, void *y, int64_t n) {
    switch (kind) {
    case SA_ACT_Q8_0: act_q8a(x, y, n, false); return;
    case SA_ACT_Q8_1: act_q8a(x, y, n, true); return;
    case SA_ACT_Q8K:
        for (int64_t b = 0; b < n / 256; b++) {
            sa_block_q8_K *o = (sa_block_q8_K *)y + b;
            o->d = act_q8k_block(x + 256 * b, o->qs, o->bsums);
        }
        return;
    case SA_ACT_Q8KA32:
    case SA_ACT_Q8KA16: {
        int bs = kind == SA_ACT_Q8KA32 ? 32 : 16;
        size_t blk_bytes = 8 + (size_t)bs;
        uint8_t *out = y;
        for (int64_t b = 0; b < n / 256; b++) {
            int8_t qs[256];
            int16_t bsums[16];
            float d = act_q8k_block(x + 256 * b, qs, bsums);
            for (int j = 0; j < 256 / bs; j++, out += blk_bytes) {
                int32_t sum = bs == 32 ? bsums[2 * j] + bsums[2 * j + 1] : bsums[j];
                memcpy(out, &d, 4);
                memcpy(out + 4, &sum, 4);
                memcpy(out + 8, qs + bs * j, (size_t)bs);
            }
        }
        return;
    }
    case SA_ACT_BF16: { /* integer rounding to nearest even, as sa_convert_row_bf16 */
        uint16_t *o = y;
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            __m512i u = _mm512_loadu_si512((const void *)(x + i));
            __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                    _mm512_set1_epi32(0x7f800000));
            __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                              _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
            r = _mm512_mask_mov_epi32(_mm512_srli_epi32(r, 16), nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
            _mm256_storeu_si256((__m256i *)(o + i), _mm512_cvtepi32_epi16(r));
        }
        sa_convert_row_bf16(x + i, o + i, n - i); /* the tail, and the zero pad of odd n */
        return;
    }
    default: sa_cpu_act_row(kind, x, y, n); return;
    }
}

void sa_cpu_gemm_avx512(struct sa_cpu_kernels *k, bool has_bf16) {
    k->act_row = act_row_avx512;
    /* min_T: the T from which the GEMM beats the dot kernels (bench_matmul and a T = 1..4
     * scan on Zen 4; the panel unpacking costs about as much as a dot product of one row) */
#define SET(T, fn, isa, min_T) k->gemm[SA_DTYPE_##T] = (struct sa_cpu_gemm){fn, #fn "." isa, min_T, NULL}
    SET(F32, gemm_f32, "avx512", 8);
    SET(F16, gemm_f16, "avx512", 8);
    if (has_bf16) SET(BF16, gemm_bf16, "avx512bf16", 3);
    SET(Q8_0, gemm_q8_0, "avx512vnni", 4);
    SET(Q4_0, gemm_q4_0, "avx512vnni", 4);
    SET(Q4_1, gemm_q4_1, "avx512vnni", 4);
    SET(Q5_0, gemm_q5_0, "avx512vnni", 4);
    SET(Q5_1, gemm_q5_1, "avx512vnni", 4);
    SET(Q2_K, gemm_q2_K, "avx512vnni", 2);
    SET(Q3_K, gemm_q3_K, "avx512vnni", 2);
    SET(Q4_K, gemm_q4_K, "avx512vnni", 2);
    SET(Q5_K, gemm_q5_K, "avx512vnni", 2);
    SET(Q6_K, gemm_q6_K, "avx512vnni", 6);
#undef SET
}
#else
void sa_cpu_gemm_avx512(struct sa_cpu_kernels *k, bool has_bf16) { (void)k, (void)has_bf16; }
#endif
