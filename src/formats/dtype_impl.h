/* dtype_impl.h: inline IEEE half and bfloat16 conversions for the inner loops of
 * dequantization and the CPU kernels (the public sa_f16_to_f32 & co. wrap these).
 * Round to nearest even; NaN stays NaN (quieted when narrowed). Not part of the API. */
#ifndef SA_DTYPE_IMPL_H
#define SA_DTYPE_IMPL_H

#include <stdint.h>
#include <string.h>

static inline float sa_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t sa_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Exact for every half value, subnormals and NaN payloads included. */
static inline float sa_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu; /* exponent and mantissa */
    if (em >= 0x7c00u) return sa_bits_to_f32(sign | 0x7f800000u | ((em & 0x3ffu) << 13)); /* inf, NaN */
    if (em >= 0x0400u) return sa_bits_to_f32(sign | ((em + ((127 - 15) << 10)) << 13));   /* normal */
    /* subnormal or zero: em * 2^-24, exact in f32 */
    return sa_bits_to_f32(sign | sa_f32_to_bits((float)em * 0x1p-24f));
}

/* Round to nearest even, overflow to inf (as numpy's astype(float16) and F16C). */
static inline uint16_t sa_float_to_half(float f) {
    uint32_t x = sa_f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 (and inf): inf */
    if (ax >= 0x38800000u) { /* >= 2^-14: a normal half; rebias the exponent, round the mantissa */
        uint32_t r = ax - 0x38000000u;
        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    if (ax < 0x33000000u) return sign; /* < 2^-25 (2^-25 itself ties to even 0) */
    /* subnormal half: round(|f| * 2^24) with ties to even */
    uint32_t e = ax >> 23, mant = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

static inline float sa_bf16_bits_to_float(uint16_t h) { return sa_bits_to_f32((uint32_t)h << 16); }

/* ref: ggml_compute_fp32_to_bf16 (ggml-impl.h): NaN forced quiet, round to nearest even. */
static inline uint16_t sa_float_to_bf16_bits(float f) {
    uint32_t x = sa_f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64u);
    return (uint16_t)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}

#endif
