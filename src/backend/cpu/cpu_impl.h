/* cpu_impl.h: the CPU backend's internal interface: a thread pool and the matrix products
 * that read weights in their stored (quantized) type. The model code (src/model/) calls
 * these; every fast path is checked against the plain-C reference (sa_matmul_ref). */
#ifndef SA_CPU_IMPL_H
#define SA_CPU_IMPL_H

#include "sa/dtype.h"
#include "sa/status.h"

#include <stddef.h>
#include <stdint.h>

/* ---- thread pool ---- */
struct sa_threadpool;
/* n_threads <= 0: all cores. Workers spin briefly, then block (shared machines). */
SA_NODISCARD enum sa_status sa_threadpool_init(int n_threads, struct sa_threadpool **out);
void sa_threadpool_free(struct sa_threadpool *tp);
int sa_threadpool_n_threads(const struct sa_threadpool *tp);
/* Runs fn(ctx, ith, nth) for ith = 0..nth-1 (ith 0 on the calling thread) and returns when
 * all have finished. tp may be NULL: runs fn(ctx, 0, 1). */
typedef void (*sa_task_fn)(void *ctx, int ith, int nth);
void sa_threadpool_run(struct sa_threadpool *tp, sa_task_fn fn, void *ctx);

/* ---- matrix products ----
 * W: n_out rows of n_in elements each, stored in `wtype` (GGUF layout: ne[0] = n_in,
 * ne[1] = n_out; row r starts at r * row_bytes(n_in)). X: (T, n_in) f32, row-major.
 * Y: (T, n_out) f32 = X @ W^T. n_in must be a multiple of the type's block size.
 * `scratch` (>= sa_matmul_scratch_bytes) holds X quantized to 8 bits where the kernel
 * uses that (Q8_0/Q8_K activations); may be NULL when the size is 0. */
size_t sa_matmul_scratch_bytes(enum sa_dtype wtype, int64_t n_in, int64_t T);
bool sa_matmul_supported(enum sa_dtype wtype);
void sa_matmul(struct sa_threadpool *tp, enum sa_dtype wtype, const void *W, int64_t n_in, int64_t n_out,
               const float *X, int64_t T, float *Y, void *scratch);
/* Plain-C reference: dequantizes rows of W and does f32 dot products (slow, exact-ish). */
void sa_matmul_ref(enum sa_dtype wtype, const void *W, int64_t n_in, int64_t n_out, const float *X, int64_t T, float *Y);

#endif
