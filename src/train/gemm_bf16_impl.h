/* gemm_bf16_impl.h: internals shared by gemm_bf16.c (dispatch, threads, plain-C paths) and
 * gemm_bf16_avx512.c (the AVX512-BF16 packing and micro-kernel). The public entry points
 * are in ops_train_impl.h (sa_tr_gemm_bf16*). */
#ifndef SA_GEMM_BF16_IMPL_H
#define SA_GEMM_BF16_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One product of the bf16 GEMM: C (M, N) = alpha op(A) op(B) + beta C, row-major.
 * op(A) (M, K): A[i*lda + k], or A[k*lda + i] when transA. op(B) (K, N): B[k*ldb + j], or
 * B[j*ldb + k] when transB. */
struct sa_tr_gemm {
    bool transA, transB;
    int64_t M, N, K;
    float alpha, beta;
    const float *A;
    int64_t lda;
    const float *B;
    int64_t ldb;
    float *C;
    int64_t ldc;
    const uint32_t *packed_b; /* op(B) pre-packed (sa_tr_gemm_bf16_avx512_pack), or NULL */
};

/* Register tile of the AVX512-BF16 kernel: MR rows x NR columns (2 zmm of 16 f32 each). */
#define SA_BF16_MR 12
#define SA_BF16_NR 32

/* The rectangle rows [m0, m1) x columns [n0, n1) of g with the AVX512-BF16 kernel (packs
 * A into a 120 KiB stack buffer and B, unless pre-packed, into a 1 MiB buffer it allocates;
 * false when that allocation fails: nothing written). With packed_b, n0
 * must be a multiple of NR. x86-64 only. */
/* Pre-packed op(B) (K, N): bytes, and packing of the NR-column panels [q0, q1). */
size_t sa_tr_gemm_bf16_avx512_packed_bytes(int64_t K, int64_t N);
void sa_tr_gemm_bf16_avx512_pack(const struct sa_tr_gemm *g, int64_t q0, int64_t q1, uint32_t *dst);
bool sa_tr_gemm_bf16_avx512_rect(const struct sa_tr_gemm *g, int64_t m0, int64_t m1, int64_t n0, int64_t n1);

#endif
