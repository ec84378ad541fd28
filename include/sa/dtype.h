/* dtype.h: tensor element types (the GGML numbering used by GGUF), their block layout,
 * and conversion of rows to and from f32. Quantized types store blocks of `block_size`
 * elements in `type_size` bytes; a row of n elements needs n % block_size == 0. */
#ifndef SA_DTYPE_H
#define SA_DTYPE_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Values are GGML's (ggml.h `enum ggml_type`), as stored in GGUF tensor infos. */
enum sa_dtype {
    SA_DTYPE_F32 = 0,
    SA_DTYPE_F16 = 1,
    SA_DTYPE_Q4_0 = 2,
    SA_DTYPE_Q4_1 = 3,
    SA_DTYPE_Q5_0 = 6,
    SA_DTYPE_Q5_1 = 7,
    SA_DTYPE_Q8_0 = 8,
    SA_DTYPE_Q8_1 = 9,
    SA_DTYPE_Q2_K = 10,
    SA_DTYPE_Q3_K = 11,
    SA_DTYPE_Q4_K = 12,
    SA_DTYPE_Q5_K = 13,
    SA_DTYPE_Q6_K = 14,
    SA_DTYPE_Q8_K = 15,
    SA_DTYPE_I8 = 24,
    SA_DTYPE_I16 = 25,
    SA_DTYPE_I32 = 26,
    SA_DTYPE_I64 = 27,
    SA_DTYPE_F64 = 28,
    SA_DTYPE_BF16 = 30,
    SA_DTYPE_COUNT = 40, /* upper bound for tables; not a type */
};

/* Lower-case name ("q4_k", "bf16"), or NULL for an unknown value. */
const char *sa_dtype_name(enum sa_dtype t);
/* The type named `name` ("f16", "Q8_0", case-insensitive) into *out (may be NULL: only
 * checks). Errors: SA_STATUS_BAD_ARGUMENT (NULL or unknown name; *out unchanged). */
SA_NODISCARD enum sa_status sa_dtype_from_name(const char *name, enum sa_dtype *out);
/* True for the values above that this library knows (layout and dequantization). */
bool sa_dtype_is_known(uint32_t t);
/* Elements per block (1 for plain types), bytes per block. 0 for unknown types. */
size_t sa_dtype_block_size(enum sa_dtype t);
size_t sa_dtype_type_size(enum sa_dtype t);
/* Bytes of a row of n elements; false if n is not a multiple of the block size or the
 * size overflows. */
bool sa_dtype_row_bytes(enum sa_dtype t, uint64_t n, uint64_t *bytes);

/* Dequantizes n elements (a multiple of the block size) from `src` into f32 `dst`.
 * Supports every type above except I8..I64/F64 (SA_STATUS_UNSUPPORTED). `src` need not be
 * aligned. Bit-exact with ggml's dequantize_row_* and gguf-py. */
SA_NODISCARD enum sa_status sa_dequantize(enum sa_dtype t, const void *src, float *dst, int64_t n);
/* Quantizes n f32 values into type t: F32, F16, BF16, Q8_0 (round to nearest even for
 * F16/BF16; Q8_0 as GGML's reference quantize_row_q8_0_ref). Others: UNSUPPORTED. */
SA_NODISCARD enum sa_status sa_quantize(enum sa_dtype t, const float *src, void *dst, int64_t n);

/* Scalar conversions (IEEE half and bfloat16, round to nearest even). */
float sa_f16_to_f32(uint16_t h);
uint16_t sa_f32_to_f16(float f);
float sa_bf16_to_f32(uint16_t h);
uint16_t sa_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
