/* cpu_impl.h: the CPU backend's internal interface: a thread pool and the matrix products
 * that read weights in their stored (quantized) type. The model code (src/model/) calls
 * these; every fast path is checked against the plain-C reference (sa_matmul_ref). */
#ifndef SA_CPU_IMPL_H
#define SA_CPU_IMPL_H

#include "sa/dtype.h"
#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- thread pool ---- */
struct sa_threadpool;
/* n_threads <= 0: all cores. Workers spin briefly, then block (shared machines). */
SA_NODISCARD enum sa_status sa_threadpool_init(int n_threads, struct sa_threadpool **out);
void sa_threadpool_free(struct sa_threadpool *tp);
int sa_threadpool_n_threads(const struct sa_threadpool *tp);
/* Runs fn(ctx, ith, nth) for ith = 0..nth-1 (ith 0 on the calling thread) and returns when
 * all have finished. tp may be NULL: runs fn(ctx, 0, 1). One run at a time per pool (concurrent
 * callers are serialized); fn must not call sa_threadpool_run on the same pool.
 * A share may run on any thread: the caller runs the shares that no worker has started when
 * it finishes its own (a worker still waking, or descheduled by a busy process), so shares of
 * one run may also run one after another: fn must not wait for another share (no barrier
 * inside fn; split such work into two runs) nor rely on thread-local state per ith. */
typedef void (*sa_task_fn)(void *ctx, int ith, int nth);
void sa_threadpool_run(struct sa_threadpool *tp, sa_task_fn fn, void *ctx);

/* ---- matrix products ----
 * W: n_out rows of n_in elements each, stored in `wtype` (GGUF layout: ne[0] = n_in,
 * ne[1] = n_out; row r starts at r * row_bytes(n_in)). X: (T, n_in) f32, row-major.
 * Y: (T, n_out) f32 = X @ W^T. n_in must be a multiple of the type's block size.
 * `scratch` (>= sa_matmul_scratch_bytes) holds X quantized to 8 bits where the kernel
 * uses that (Q8_0/Q8_K activations); may be NULL when the size is 0.
 * `batch_invariant` (a per-call argument: no state is kept anywhere): false, products with
 * T below a per-type threshold (2 to 8) run the dot kernels and larger ones the prefill
 * GEMM, which adds in another order, so a token's outputs depend (by float rounding) on how
 * many tokens were computed with it; through the 8-bit activation quantization of the next
 * layers that grows to ~1 logit on SmolLM2-135M. true: every T runs the GEMM where the path
 * has one (for T = 1 about 1.3-2.5x slower than the dot kernels on avx512), so results are
 * bitwise the same however tokens are batched or chunked (ref and avx2 have no GEMM and
 * always are). The context passes its sa_ctx_params.batch_invariant. */
size_t sa_matmul_scratch_bytes(enum sa_dtype wtype, int64_t n_in, int64_t T);
bool sa_matmul_supported(enum sa_dtype wtype);
void sa_matmul(struct sa_threadpool *tp, enum sa_dtype wtype, const void *W, int64_t n_in, int64_t n_out,
               const float *X, int64_t T, float *Y, void *scratch, bool batch_invariant);
/* Plain-C reference: dequantizes rows of W and does f32 dot products (slow, exact-ish). */
void sa_matmul_ref(enum sa_dtype wtype, const void *W, int64_t n_in, int64_t n_out, const float *X, int64_t T, float *Y);

/* ---- kernel paths ----
 * sa_matmul uses the best path this CPU has, chosen once; $SALIGN_CPU=ref|avx2|avx512
 * forces one (a path the CPU lacks is refused with a warning). Each fast path computes the
 * same integer sums as `ref` (docs/internals/cpu_backend.md). */
enum sa_cpu_path { SA_CPU_PATH_REF = 0, SA_CPU_PATH_AVX2 = 1, SA_CPU_PATH_AVX512 = 2, SA_CPU_PATH_COUNT };
enum sa_cpu_path sa_cpu_path_active(void);
bool sa_cpu_path_available(enum sa_cpu_path p);
const char *sa_cpu_path_name(enum sa_cpu_path p); /* "ref", "avx2", "avx512" */
/* The kernel sa_matmul runs for wtype on `path` ("q4_0.avx2", "dequant.f32" for the
 * dequantizing fallback), or NULL when the type is not supported. Static string. */
const char *sa_matmul_kernel_name(enum sa_cpu_path path, enum sa_dtype wtype);
/* The same for a product with T activation rows: the prefill GEMM ("gemm_q4_K.avx512vnni")
 * where the path has one for wtype and T reaches its threshold (or batch_invariant is
 * true), else as sa_matmul_kernel_name. */
const char *sa_matmul_kernel_name_t(enum sa_cpu_path path, enum sa_dtype wtype, int64_t T, bool batch_invariant);
/* sa_matmul on a given path (which must be available): tests and benchmarks. */
void sa_matmul_path(enum sa_cpu_path path, struct sa_threadpool *tp, enum sa_dtype wtype, const void *W, int64_t n_in,
                    int64_t n_out, const float *X, int64_t T, float *Y, void *scratch, bool batch_invariant);

#endif
