/* kernels_impl.h: private to the CPU backend: the 8-bit activation blocks, the per-type dot
 * kernel tables that each instruction-set file fills (kernels_ref.c, arch/x86/), activation
 * quantization (quant_act.c) and an inline half-float conversion. See
 * docs/internals/cpu_backend.md for the invariants. */
#ifndef SA_CPU_KERNELS_IMPL_H
#define SA_CPU_KERNELS_IMPL_H

#include "backend/cpu/cpu_impl.h"
#include "formats/quant_blocks_impl.h"

#include <string.h>

/* Activations for the 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): ggml's q8_0 and
 * q8_1 as the x86 build of llama.cpp makes them (ref: ggml-cpu arch/x86 quants.c
 * quantize_row_q8_0 / quantize_row_q8_1), so that every per-block integer sum is ggml's:
 * amax = max |x|, q = round-half-even(x * (127 / amax)) (note: 127 / amax, not 1 / d),
 * saturated to int8 (NaN or infinite products give -128, as cvtps2dq + packs), d = fp16(amax /
 * 127). Stored widened to f32 (exactly the fp16 value) so that the kernels need no conversion.
 * The second field depends on the kind:
 *  SA_ACT_Q8_0 (Q4_0, Q5_0, Q8_0 weights): sum = sum(q), so that the weights' offsets (-8,
 *    -16, and the +128 of the GEMM's unsigned Q8_0) fold into the exact integer block sum,
 *    which ggml computes with signed products;
 *  SA_ACT_Q8_1 (Q4_1, Q5_1): s = fp16(amax / 127 * sum(q)) (the f32 d, not the rounded one),
 *    which ggml multiplies by the weight block's min m.
 * 40 bytes. */
typedef struct {
    float d;
    union {
        float s;     /* SA_ACT_Q8_1, and the SA_ACT_Q8KA32 kind below */
        int32_t sum; /* SA_ACT_Q8_0 */
    };
    int8_t qs[32];
} sa_block_q8a;

/* The prefill GEMM's 16-element blocks (Q2_K/Q3_K/Q6_K, whose sub-block scales cover 16
 * elements): the q8_K quants regrouped, d = the q8_K d, sum = sum(q). 24 bytes. */
typedef struct {
    float d;
    int32_t sum;
    int8_t qs[16];
} sa_block_q8a16;

/* What X is turned into for a weight type (fixed per type and kernel kind, the same on
 * every path that has that kernel kind). */
enum sa_act_kind {
    SA_ACT_F32,    /* X as is (F32, F16, BF16 and the dequantizing fallback) */
    SA_ACT_Q8_0,   /* sa_block_q8a per 32 elements, with sum */
    SA_ACT_Q8K,    /* sa_block_q8_K per 256 elements (K-quants), ggml's q8_K */
    /* prefill GEMM kinds (sa_gemm_fn): */
    SA_ACT_Q8KA32, /* sa_block_q8a per 32: X quantized as sa_block_q8_K (one d per 256, the
                    * same qs), stored as 8 blocks with d = d_K, sum = the sum of its 32 qs */
    SA_ACT_Q8KA16, /* sa_block_q8a16 per 16: the same with 16 blocks per 256 */
    SA_ACT_BF16,   /* bf16 (round to nearest even), rows padded with zeros to an even length */
    SA_ACT_Q8_1,   /* sa_block_q8a per 32 elements, with s */
};

/* out[j] = dot(weight row `w` of n elements, activation row j at (char *)x + j * x_stride)
 * for j < nx, 1 <= nx <= SA_DOT_MAX_X. One weight row is unpacked once for nx activation
 * rows (the 1 x 4 micro-kernel of prefill). x is in the type's activation kind. */
#define SA_DOT_MAX_X 4
typedef void (*sa_dot_fn)(int64_t n, const void *w, const void *x, size_t x_stride, int nx, float *out);
/* Decode (one activation row x): y[r] = dot(weight row r at (char *)w + r * w_row_bytes, x)
 * for r < n_rows, each bit-identical to the dot kernel with nx = 1 (the same inlined code,
 * with the row loop inside the kernel: no call per row of a few hundred bytes). */
typedef void (*sa_dot_rows_fn)(int64_t n, const void *w, size_t w_row_bytes, int64_t n_rows, const void *x, float *y);

/* Prefill GEMM (T >= its min_T, or any T in batch-invariant mode): Y[t][r] for rows r in [r0, r1) of W and activation
 * rows t in [t0, t1), r0 a multiple of SA_GEMM_ROWS. xa holds all T activation rows in the
 * type's GEMM kind (sa_cpu_gemm_act_kind), x_row_bytes apart. Each output is accumulated in
 * one fixed order that does not depend on r0, r1, t0, t1, so any split of the work gives the
 * same bits. */
#define SA_GEMM_ROWS 16
struct sa_gemm_args {
    const uint8_t *W; /* (n_out, w_row_bytes) */
    size_t w_row_bytes;
    int64_t n_in, n_out;
    const void *xa; /* (T, x_row_bytes) */
    size_t x_row_bytes;
    float *Y; /* (T, n_out) */
};
typedef void (*sa_gemm_fn)(const struct sa_gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1);

struct sa_cpu_kernel {
    sa_dot_fn dot;       /* NULL: no direct kernel (dequantizing fallback) */
    const char *name;    /* e.g. "q4_0.q8a.avx2" (tests, bench) */
    sa_dot_rows_fn rows; /* NULL: `dot` row by row */
};
struct sa_cpu_gemm {
    sa_gemm_fn fn;    /* NULL: prefill runs `dot` on 1 x 4 tiles */
    const char *name; /* e.g. "gemm_q4_K.avx512vnni" */
    int min_T;        /* below it the dot kernels are faster (unpacking a panel is not amortized) */
    /* NULL, or T = 1 with fn's bits, row by row, without a panel (x in the GEMM's activation
     * kind): what a GEMM call with T = 1 runs (batch-invariant decode) */
    sa_dot_rows_fn rows;
};
/* Converts one activation row into `kind`, bit-identical to sa_cpu_act_row (tested). */
typedef void (*sa_act_row_fn)(enum sa_act_kind kind, const float *x, void *y, int64_t n);
struct sa_cpu_kernels {
    struct sa_cpu_kernel k[SA_DTYPE_COUNT]; /* indexed by enum sa_dtype */
    struct sa_cpu_gemm gemm[SA_DTYPE_COUNT];
    sa_act_row_fn act_row; /* NULL: sa_cpu_act_row (plain C) */
};

/* Each fills the entries it implements and leaves the others as they are, so a path's
 * table starts as a copy of the one below it (ref < avx2 < avx512). */
void sa_cpu_kernels_ref(struct sa_cpu_kernels *k);
void sa_cpu_kernels_avx2(struct sa_cpu_kernels *k);
void sa_cpu_kernels_avx512(struct sa_cpu_kernels *k);
/* The activation conversion of a path (matmul.c; tests compare it with sa_cpu_act_row). */
sa_act_row_fn sa_cpu_act_row_of(enum sa_cpu_path path);
/* A path's kernel table (tests). */
const struct sa_cpu_kernels *sa_cpu_kernels_of(enum sa_cpu_path path);
/* Adds the prefill GEMMs (arch/x86/gemm_avx512.c) and the AVX512 activation conversion to
 * the avx512 table; the BF16 GEMM only when has_bf16 (avx512_bf16: vdpbf16ps). */
void sa_cpu_gemm_avx512(struct sa_cpu_kernels *k, bool has_bf16);
/* Adds the AVX2 prefill GEMMs (arch/x86/gemm_avx2.c: 8-row panels, vpmaddubsw) to the avx2
 * table (so the avx512 table inherits them for the types it has no GEMM for). */
void sa_cpu_gemm_avx2(struct sa_cpu_kernels *k);

/* ---- activation quantization (quant_act.c) ---- */
enum sa_act_kind sa_cpu_act_kind(enum sa_dtype wtype);      /* of the dot kernels */
enum sa_act_kind sa_cpu_gemm_act_kind(enum sa_dtype wtype); /* of the prefill GEMMs */
/* Bytes of one activation row of n elements (n a multiple of the kind's block). */
size_t sa_cpu_act_row_bytes(enum sa_act_kind kind, int64_t n);
/* Converts one row of n elements of X into `kind` (not SA_ACT_F32). */
void sa_cpu_act_row(enum sa_act_kind kind, const float *x, void *y, int64_t n);
/* n % 32 == 0; with_s: the SA_ACT_Q8_1 form (s), else SA_ACT_Q8_0 (sum) */
void sa_quantize_row_q8a(const float *x, sa_block_q8a *y, int64_t n, bool with_s);
/* ggml's quantize_row_q8_K_ref, byte for byte: max = the first element of largest |x|,
 * iscale = -127 / max, q = min(127, nearest_int(iscale * x)), d = 1 / iscale (so d < 0 when
 * max > 0: d * q still approximates x), bsums = sums of 16. All-zero block: d = 0, qs = 0. */
void sa_quantize_row_q8k(const float *x, sa_block_q8_K *y, int64_t n); /* n % 256 == 0 */
/* The same quants as sa_quantize_row_q8k, in 32- or 16-element blocks (SA_ACT_Q8KA32/16). */
void sa_quantize_row_q8ka32(const float *x, sa_block_q8a *y, int64_t n);   /* n % 256 == 0 */
void sa_quantize_row_q8ka16(const float *x, sa_block_q8a16 *y, int64_t n); /* n % 256 == 0 */
void sa_convert_row_bf16(const float *x, uint16_t *y, int64_t n);         /* writes n + (n & 1) */

/* Elements per block and bytes per block of the weight types the kernels know (0, 0 for
 * others); independent of src/formats so that the backend can be tested on its own. */
void sa_cpu_type_layout(enum sa_dtype t, int64_t *block, size_t *bytes);

/* IEEE half to float (exact; subnormals, inf, NaN). The x86 files use F16C instead. */
static inline float sa_cpu_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu, bits;
    float f;
    if (em >= 0x7c00u) {
        bits = sign | 0x7f800000u | ((em & 0x3ffu) << 13);
    } else if (em >= 0x0400u) {
        bits = sign | ((em << 13) + ((uint32_t)(127 - 15) << 23));
    } else {
        f = (float)em * 5.9604644775390625e-8f; /* subnormal: em * 2^-24 */
        return sign ? -f : f;
    }
    memcpy(&f, &bits, 4);
    return f;
}

static inline float sa_cpu_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* The 6-bit scale and min j (0..7) of a Q4_K/Q5_K super-block (ref: ggml-quants.c
 * get_scale_min_k4): the first four in the low 6 bits of bytes 0..3 (scales) and 4..7
 * (mins); the last four split between the nibbles of bytes 8..11 and the top 2 bits of
 * bytes 0..7. */
static inline void sa_cpu_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* The 16 6-bit scales of a Q3_K super-block, minus 32 (ref: dequantize_row_q3_K): low
 * nibbles from bytes 0..7 (scales 0..7 low / 8..15 high nibble), top 2 bits from bytes 8..11. */
static inline void sa_cpu_q3k_scales(const uint8_t *s, int8_t out[16]) {
    for (int j = 0; j < 16; j++) {
        int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
        int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
        out[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

#endif
