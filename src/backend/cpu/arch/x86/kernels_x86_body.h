/* kernels_x86_body.h: the x86 dot kernels, written once and compiled twice: by
 * kernels_avx2.c (AVX2 + FMA + F16C; u8 x s8 products with vpmaddubsw + vpmaddwd) and by
 * kernels_avx512.c (the same with AVX512-VNNI vpdpbusd on 256-bit vectors, which on this
 * Zen 4 runs as fast as 512-bit and needs no 16-bit intermediate). Included only by those two
 * files, after `#pragma GCC target(...)` and with SA_X86_VNNI (0/1) and SA_X86_SUFFIX set.
 * Every kernel reproduces the integer algorithm of kernels_ref.c exactly (no int16
 * saturation can occur: see the bounds at each product); only float summation order differs. */
#include "backend/cpu/kernels_impl.h"

#include <immintrin.h>

#define SA_INLINE static inline __attribute__((always_inline))

#include "backend/cpu/arch/x86/unpack_q45_K_avx2.h"
#include "backend/cpu/arch/x86/unpack_q6_K_avx2.h"

SA_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SA_INLINE float f16(uint16_t h) { return _cvtsh_ss(h); }

/* acc + the products u[i] * s[i] (u unsigned, s signed bytes) summed in groups of 4 into 8
 * int32 lanes. Without VNNI, vpmaddubsw first adds pairs into int16 with saturation: callers
 * keep |u * s| * 2 <= 32512 (u <= 128, |s| <= 127). */
SA_INLINE __m256i dot_us8(__m256i acc, __m256i u, __m256i s) {
#if SA_X86_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* The same with the sum of the low 16 bytes multiplied by sc_lo and of the high 16 by sc_hi
 * (int32 lanes 0..3 and 4..7); |sc| <= 128, and u <= 63 here so pairs stay <= 16002. */
SA_INLINE __m256i dot_us8_scaled(__m256i acc, __m256i u, __m256i s, int sc_lo, int sc_hi) {
#if SA_X86_VNNI
    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
    return _mm256_add_epi32(acc, _mm256_mullo_epi32(p, _mm256_setr_epi32(sc_lo, sc_lo, sc_lo, sc_lo, sc_hi, sc_hi, sc_hi, sc_hi)));
#else
    __m256i scale = _mm256_setr_m128i(_mm_set1_epi16((short)sc_lo), _mm_set1_epi16((short)sc_hi));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale));
#endif
}

/* 32 unsigned nibbles of a 32-element block: low nibbles of p[0..15] as bytes 0..15, high
 * nibbles as bytes 16..31 (the GGML order of Q4_0/Q4_1/Q5_0/Q5_1). */
SA_INLINE __m256i nibbles32(const uint8_t *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_setr_m128i(v, _mm_srli_epi16(v, 4)), _mm256_set1_epi8(0x0F));
}

/* 0x10 in byte i where bit i of the 32-bit little-endian qh is set (5-bit types' 5th bit). */
SA_INLINE __m256i bit5_32(const uint8_t *qh) {
    uint32_t v;
    memcpy(&v, qh, 4);
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, /* byte i/8 */
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL); /* 1 << (i % 8) */
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), pick);
    b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}

#define XROW(T, x, xs, j) ((const T *)((const char *)(x) + (size_t)(j) * (xs)))

/* Expands name##_n (an always-inline kernel with an nx parameter) into a dot function with
 * nx fixed per call, so the activation loop is unrolled and its accumulators stay in
 * registers (SA_DOT_WRAP_DOT), and the decode row loop (sa_dot_rows_fn) around its nx = 1
 * code (SA_DOT_ROWS); SA_DOT_WRAP: both. */
#define SA_DOT_WRAP(name) SA_DOT_WRAP_DOT(name) SA_DOT_ROWS(name)
#define SA_DOT_WRAP_DOT(name)                                                                      \
    static void name(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out) {     \
        switch (nx) {                                                                              \
        case 1: name##_n(n, w, x, xs, 1, out); break;                                              \
        case 2: name##_n(n, w, x, xs, 2, out); break;                                              \
        case 3: name##_n(n, w, x, xs, 3, out); break;                                              \
        default: name##_n(n, w, x, xs, 4, out); break;                                             \
        }                                                                                          \
    }
#define SA_DOT_ROWS(name)                                                                          \
    static void name##_rows(int64_t n, const void *w, size_t w_row_bytes, int64_t n_rows, const void *x, float *y) { \
        for (int64_t r = 0; r < n_rows; r++) name##_n(n, (const char *)w + (size_t)r * w_row_bytes, x, 0, 1, y + r); \
    }

/* ---- f32 activations: F32, F16, BF16 weights (FMA) ---- */

SA_INLINE __m256 load8_f32(const void *w, int64_t i) { return _mm256_loadu_ps((const float *)w + i); }
SA_INLINE __m256 load8_f16(const void *w, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
}
SA_INLINE __m256 load8_bf16(const void *w, int64_t i) {
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
SA_INLINE float load1_f32(const void *w, int64_t i) { return ((const float *)w)[i]; }
SA_INLINE float load1_f16(const void *w, int64_t i) { return f16(((const uint16_t *)w)[i]); }
SA_INLINE float load1_bf16(const void *w, int64_t i) { return sa_cpu_bf16_to_f32(((const uint16_t *)w)[i]); }

#define SA_DOT_FLOAT(T)                                                                            \
    SA_INLINE void dot_##T##_n(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out) { \
        __m256 a0[SA_DOT_MAX_X], a1[SA_DOT_MAX_X];                                                 \
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) a0[j] = a1[j] = _mm256_setzero_ps(); \
        int64_t i = 0;                                                                             \
        for (; i + 16 <= n; i += 16) {                                                             \
            __m256 w0 = load8_##T(w, i), w1 = load8_##T(w, i + 8);                                 \
            _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                                 \
                const float *xj = XROW(float, x, xs, j);                                           \
                a0[j] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xj + i), a0[j]);                       \
                a1[j] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xj + i + 8), a1[j]);                   \
            }                                                                                      \
        }                                                                                          \
        for (; i + 8 <= n; i += 8) {                                                               \
            __m256 w0 = load8_##T(w, i);                                                           \
            _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) a0[j] =                           \
                _mm256_fmadd_ps(w0, _mm256_loadu_ps(XROW(float, x, xs, j) + i), a0[j]);           \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                                     \
            float s = hsum_ps(_mm256_add_ps(a0[j], a1[j]));                                        \
            for (int64_t k = i; k < n; k++) s += load1_##T(w, k) * XROW(float, x, xs, j)[k];       \
            out[j] = s;                                                                            \
        }                                                                                          \
    }                                                                                              \
    SA_DOT_WRAP(dot_##T)
SA_DOT_FLOAT(f32)
SA_DOT_FLOAT(f16)
SA_DOT_FLOAT(bf16)

/* ---- 32-element blocks x sa_block_q8a ---- */

/* Q8_0: signed x signed through the sign trick: |w| (<= 128) times x with w's sign. */
SA_INLINE void dot_q8_0_n(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out) {
    const sa_block_q8_0 *bw = w;
    __m256 acc[SA_DOT_MAX_X];
    _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)bw[b].qs);
        __m256i u = _mm256_sign_epi8(q, q);
        float d = f16(bw[b].d);
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {
            const sa_block_q8a *bx = XROW(sa_block_q8a, x, xs, j) + b;
            __m256i s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)bx->qs), q);
            __m256i p = dot_us8(_mm256_setzero_si256(), u, s);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * bx->d), _mm256_cvtepi32_ps(p), acc[j]);
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) out[j] = hsum_ps(acc[j]);
}
SA_DOT_WRAP(dot_q8_0)

/* Q4_0/Q4_1/Q5_0/Q5_1. _0 types: the signed weights u + OFF (OFF = -8, -16) times x through
 * the sign trick, times d * dx (exact: two halves), the same int32 lanes and float operations
 * as ggml's vec_dot_q4_0_q8_0 (so T = 1 results are ggml's bits); _1 types: unsigned quants u
 * (<= 31) times x, d * dx * sum(u x) + m * s (see sa_block_q8a), as ggml's q4_1_q8_1. */
#define SA_DOT_Q32(T, BT, HAS_QH, HAS_M, OFF)                                                      \
    SA_INLINE void dot_##T##_n(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out) { \
        const BT *bw = w;                                                                          \
        __m256 acc[SA_DOT_MAX_X];                                                                  \
        float corr[SA_DOT_MAX_X];                                                                  \
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) acc[j] = _mm256_setzero_ps(), corr[j] = 0.0f; \
        for (int64_t b = 0; b < n / 32; b++) {                                                     \
            __m256i u = nibbles32(bw[b].qs);                                                       \
            if (HAS_QH) u = _mm256_or_si256(u, bit5_32((const uint8_t *)&bw[b] + 2 * (1 + HAS_M))); \
            float d = f16(bw[b].d);                                                                \
            float m = HAS_M ? f16(*((const uint16_t *)&bw[b] + 1)) : 0.0f;                         \
            __m256i ws = _mm256_add_epi8(u, _mm256_set1_epi8((char)(OFF))); /* _0: signed weights */ \
            _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                                 \
                const sa_block_q8a *bx = XROW(sa_block_q8a, x, xs, j) + b;                         \
                __m256i q = _mm256_loadu_si256((const __m256i *)bx->qs);                           \
                __m256i p = HAS_M ? dot_us8(_mm256_setzero_si256(), u, q)                          \
                                  : dot_us8(_mm256_setzero_si256(), _mm256_sign_epi8(ws, ws), _mm256_sign_epi8(q, ws)); \
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d * bx->d), _mm256_cvtepi32_ps(p), acc[j]); \
                if (HAS_M) corr[j] += m * bx->s;                                                   \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) out[j] = hsum_ps(acc[j]) + corr[j];   \
    }                                                                                              \
    SA_DOT_WRAP_DOT(dot_##T)
SA_DOT_Q32(q4_0, sa_block_q4_0, 0, 0, -8)
SA_DOT_Q32(q4_1, sa_block_q4_1, 0, 1, 0)
SA_DOT_Q32(q5_0, sa_block_q5_0, 1, 0, -16)
SA_DOT_Q32(q5_1, sa_block_q5_1, 1, 1, 0)
SA_DOT_ROWS(dot_q4_1)
SA_DOT_ROWS(dot_q5_1)

/* Decode rows of Q4_0/Q5_0 without the sign trick: the unsigned quants u times x, started
 * from OFF times the activation's sums per int32 lane (4 consecutive elements), computed
 * once per call for all rows. The lanes are the same integers as sum (u + OFF) x in
 * dot_T_n, so the results are its bits (test_rows_kernels), with 4 instructions fewer per
 * block. Rows longer than SA_ROWS_MAX_BLOCKS blocks (16 KiB of lane sums on the stack) take
 * dot_T_n. */
#define SA_ROWS_MAX_BLOCKS 512
#define SA_ROWS_Q32_0(T, BT, HAS_QH, OFF)                                                          \
    static void dot_##T##_rows(int64_t n, const void *w, size_t w_row_bytes, int64_t n_rows, const void *x, float *y) { \
        const int64_t nb = n / 32;                                                                 \
        const sa_block_q8a *bx = x;                                                                \
        if (nb > SA_ROWS_MAX_BLOCKS) {                                                             \
            for (int64_t r = 0; r < n_rows; r++) dot_##T##_n(n, (const char *)w + (size_t)r * w_row_bytes, x, 0, 1, y + r); \
            return;                                                                                \
        }                                                                                          \
        __m256i off[SA_ROWS_MAX_BLOCKS];                                                           \
        for (int64_t b = 0; b < nb; b++) {                                                         \
            __m256i sum4 = dot_us8(_mm256_setzero_si256(), _mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *)bx[b].qs)); \
            off[b] = _mm256_mullo_epi32(sum4, _mm256_set1_epi32(OFF));                             \
        }                                                                                          \
        for (int64_t r = 0; r < n_rows; r++) {                                                     \
            const BT *bw = (const BT *)((const char *)w + (size_t)r * w_row_bytes);                \
            __m256 acc = _mm256_setzero_ps();                                                      \
            for (int64_t b = 0; b < nb; b++) {                                                     \
                __m256i u = nibbles32(bw[b].qs);                                                   \
                if (HAS_QH) u = _mm256_or_si256(u, bit5_32((const uint8_t *)&bw[b] + 2));          \
                __m256i p = dot_us8(off[b], u, _mm256_loadu_si256((const __m256i *)bx[b].qs));    \
                acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(bw[b].d) * bx[b].d), _mm256_cvtepi32_ps(p), acc); \
            }                                                                                      \
            y[r] = hsum_ps(acc);                                                                   \
        }                                                                                          \
    }
SA_ROWS_Q32_0(q4_0, sa_block_q4_0, 0, -8)
SA_ROWS_Q32_0(q5_0, sa_block_q5_0, 1, -16)

/* ---- K-quants x sa_block_q8_K ---- */

/* Q4_K / Q5_K: per 64 elements c, low nibbles (sub-block 2c) and high nibbles (2c + 1) of
 * 32 bytes, + 16 * qh bits (Q5_K); sub-block sums weighted by the 6-bit scales; the mins
 * against the activation's 16-element sums (bsums) in scalar code. */
SA_INLINE void dot_q45_K_n(int64_t n, const void *w, size_t wbytes, int has_qh, const void *x, size_t xs, int nx,
                           float *out) {
    __m256 acc[SA_DOT_MAX_X];
    float corr[SA_DOT_MAX_X];
    _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) acc[j] = _mm256_setzero_ps(), corr[j] = 0.0f;
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = (const uint8_t *)w + (size_t)b * wbytes;
        /* common prefix of sa_block_q4_K and sa_block_q5_K: d, dmin, scales[12] */
        uint16_t d16, dmin16;
        memcpy(&d16, blk, 2);
        memcpy(&dmin16, blk + 2, 2);
        const uint8_t *scales = blk + 4;
        const uint8_t *qh = has_qh ? blk + 16 : NULL;
        const uint8_t *qs = blk + 16 + (has_qh ? 32 : 0);
        uint8_t sc[8], mn[8];
        for (int k = 0; k < 8; k++) sa_cpu_scale_min_k4(k, scales, &sc[k], &mn[k]);
        float d = f16(d16), dmin = f16(dmin16);
        __m256i hbits = has_qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
        __m256i sumi[SA_DOT_MAX_X];
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) sumi[j] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i lo, hi;
            unpack_q45_K_chunk(qs, hbits, has_qh, c, &lo, &hi);
            _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {
                const int8_t *qx = XROW(sa_block_q8_K, x, xs, j)[b].qs + 64 * c;
                sumi[j] = dot_us8_scaled(sumi[j], lo, _mm256_loadu_si256((const __m256i *)qx), sc[2 * c], sc[2 * c]);
                sumi[j] = dot_us8_scaled(sumi[j], hi, _mm256_loadu_si256((const __m256i *)(qx + 32)), sc[2 * c + 1],
                                         sc[2 * c + 1]);
            }
        }
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {
            const sa_block_q8_K *bx = XROW(sa_block_q8_K, x, xs, j) + b;
            int summ = 0;
            for (int k = 0; k < 8; k++) summ += mn[k] * (bx->bsums[2 * k] + bx->bsums[2 * k + 1]);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(bx->d * d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
            corr[j] -= bx->d * dmin * (float)summ;
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) out[j] = hsum_ps(acc[j]) + corr[j];
}
SA_INLINE void dot_q4_K_n(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out) {
    dot_q45_K_n(n, w, sizeof(sa_block_q4_K), 0, x, xs, nx, out);
}
SA_INLINE void dot_q5_K_n(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out) {
    dot_q45_K_n(n, w, sizeof(sa_block_q5_K), 1, x, xs, nx, out);
}
SA_DOT_WRAP(dot_q4_K)
SA_DOT_WRAP(dot_q5_K)

/* Q6_K: unsigned u = 4 low bits | 2 high bits << 4 (<= 63) per 32-element group g of each
 * half; sub-block scales are int8; the -32 offset is folded in through bsums (scalar). */
SA_INLINE void dot_q6_K_n(int64_t n, const void *w, const void *x, size_t xs, int nx, float *out) {
    const sa_block_q6_K *bw = w;
    __m256 acc[SA_DOT_MAX_X];
    _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 256; b++) {
        const int8_t *sc = bw[b].scales;
        __m256i sumi[SA_DOT_MAX_X];
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) sumi[j] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i u[4];
            unpack_q6_K_half(bw[b].ql + 64 * h, bw[b].qh + 32 * h, u);
            for (int g = 0; g < 4; g++) {
                int s0 = sc[8 * h + 2 * g], s1 = sc[8 * h + 2 * g + 1];
                _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {
                    const int8_t *qx = XROW(sa_block_q8_K, x, xs, j)[b].qs + 128 * h + 32 * g;
                    sumi[j] = dot_us8_scaled(sumi[j], u[g], _mm256_loadu_si256((const __m256i *)qx), s0, s1);
                }
            }
        }
        float d = f16(bw[b].d);
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {
            const sa_block_q8_K *bx = XROW(sa_block_q8_K, x, xs, j) + b;
            int off = 0;
            for (int k = 0; k < 16; k++) off += sc[k] * bx->bsums[k];
            /* the -32 offset, exact in int32, added to lane 0 */
            __m256i s = _mm256_add_epi32(sumi[j], _mm256_setr_epi32(-32 * off, 0, 0, 0, 0, 0, 0, 0));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(bx->d * d), _mm256_cvtepi32_ps(s), acc[j]);
        }
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) out[j] = hsum_ps(acc[j]);
}
SA_DOT_WRAP(dot_q6_K)

#define SA_X86_CAT2(a, b) a##b
#define SA_X86_CAT(a, b) SA_X86_CAT2(a, b)

void SA_X86_CAT(sa_cpu_kernels_, SA_X86_SUFFIX)(struct sa_cpu_kernels *k) {
#define SET(T, fn) k->k[SA_DTYPE_##T] = (struct sa_cpu_kernel){fn, #fn "." SA_X86_NAME, fn##_rows}
    SET(F32, dot_f32);
    SET(F16, dot_f16);
    SET(BF16, dot_bf16);
    SET(Q8_0, dot_q8_0);
    SET(Q4_0, dot_q4_0);
    SET(Q4_1, dot_q4_1);
    SET(Q5_0, dot_q5_0);
    SET(Q5_1, dot_q5_1);
    SET(Q4_K, dot_q4_K);
    SET(Q5_K, dot_q5_K);
    SET(Q6_K, dot_q6_K);
#undef SET
}
