/* ops_impl.h: the element-wise and attention operations of the transformer forward pass,
 * in plain C over f32 rows (the matrix products live in the CPU backend: sa_matmul).
 * Shapes are given as (rows, cols), row-major. */
#ifndef SA_OPS_IMPL_H
#define SA_OPS_IMPL_H

#include "backend/cpu/cpu_impl.h"
#include "formats/arch_impl.h" /* enum sa_rope_mode */

#include <stdbool.h>
#include <stdint.h>

/* y = x / sqrt(mean(x^2) + eps) * w, for each of n_rows rows of n floats. w: (n), or NULL
 * for no weight. y may equal x. */
void sa_op_rmsnorm(float *y, const float *x, const float *w, int64_t n_rows, int64_t n, float eps);

/* Rotary position embedding in place. x: (T, n_head, head_dim); pos: (T) positions;
 * inv_freq: (n_rot/2) angular frequencies (radians per position) for the rotated pairs;
 * dimensions n_rot..head_dim-1 are left as they are. */
void sa_op_rope(float *x, const int32_t *pos, int64_t T, int64_t n_head, int64_t head_dim, int64_t n_rot,
                const float *inv_freq, enum sa_rope_mode mode);

/* In-place softmax of n floats (max-subtracted; -INFINITY entries give 0). */
void sa_op_softmax(float *x, int64_t n);

/* y[i] = silu(g[i]) * u[i]   (SwiGLU);   n floats; y may equal g. */
void sa_op_swiglu(float *y, const float *g, const float *u, int64_t n);
/* y[i] = gelu_tanh(g[i]) * u[i]   (GeGLU, the tanh approximation of GELU). */
void sa_op_geglu(float *y, const float *g, const float *u, int64_t n);
float sa_op_gelu_tanh(float x);
/* y += x, n floats. */
void sa_op_add(float *y, const float *x, int64_t n);
/* x[r, :] += b for each of n_rows rows of n floats. */
void sa_op_add_bias(float *x, const float *b, int64_t n_rows, int64_t n);
/* x *= s, n floats. */
void sa_op_scale(float *x, float s, int64_t n);
/* x = cap * tanh(x / cap), n floats (logit soft-capping). */
void sa_op_softcap(float *x, float cap, int64_t n);

/* ---- fused ops of the forward pass: threaded over rows (tokens) when there are enough
 * elements to pay for a pool run, else on the caller; SIMD where the CPU path has it. A row's
 * result depends only on the row (not on T or the thread count). tp may be NULL. ---- */

/* For each of T rows of n floats: when r is not NULL, r = rmsnorm(r) * post_w in place (when
 * post_w is not NULL) and x += r; then, when y is not NULL, y = rmsnorm(x) * w. */
void sa_op_add_norm(struct sa_threadpool *tp, float *x, float *r, const float *post_w, float *y, const float *w,
                    int64_t T, int64_t n, float eps);
/* y = act(g) * u over T rows of n (act: GELU-tanh when gelu, else SiLU); y may equal g. */
void sa_op_glu(struct sa_threadpool *tp, float *y, const float *g, const float *u, int64_t T, int64_t n, bool gelu);

/* The steps between the Q/K/V products and attention, per token: biases (when not NULL),
 * per-head RMSNorm of Q and K (q_norm/k_norm: (head_dim) or NULL), RoPE of Q and K. */
struct sa_qk_args {
    float *q;        /* (T, n_head, head_dim) */
    float *k, *v;    /* (T, n_head_kv, head_dim) */
    const float *bq; /* (n_head*head_dim) or NULL */
    const float *bk, *bv; /* (n_head_kv*head_dim) or NULL */
    const float *q_norm, *k_norm;
    const int32_t *pos; /* (T) */
    int64_t T, n_head, n_head_kv, head_dim, n_rot;
    const float *inv_freq; /* (n_rot/2) */
    enum sa_rope_mode mode;
    float eps;
};
void sa_op_qk_prep(struct sa_threadpool *tp, const struct sa_qk_args *a);

/* Causal multi-head attention with grouped-query heads over a KV cache.
 *   q:   (T, n_head, head_dim) queries of the tokens at positions pos0 .. pos0+T-1
 *   k,v: (n_kv_rows, n_head_kv, head_dim) cache rows of kv_type (f32 or f16); rows
 *        0 .. pos0+T-1 are filled
 *   out: (T, n_head, head_dim)
 * Query t sees cache rows j with j <= pos0+t and, when window > 0, pos0+t - j < window.
 * Scores are q.k * scale, soft-capped when softcap > 0; all arithmetic is f32 (f16 rows are
 * widened exactly). scratch: n_threads rows of (pos0+T) floats (sa_threadpool_n_threads),
 * used by the reference only; the fast kernels keep their state on the stack. */
struct sa_attn_args {
    const float *q;
    const void *k, *v;     /* (n_kv_rows, n_head_kv, head_dim) of kv_type */
    enum sa_dtype kv_type; /* SA_DTYPE_F32 (0: the default) or SA_DTYPE_F16 */
    float *out;
    int64_t T, pos0, n_head, n_head_kv, head_dim;
    int64_t window;
    float scale, softcap;
    float *scratch;
    int64_t scratch_stride; /* floats per share in scratch (>= pos0 + T) */
    int64_t n_scratch;      /* rows of scratch: >= the pool's share count */
    bool batch_invariant;   /* true: the tiled kernel for every T (the context's
                               sa_ctx_params.batch_invariant, or a call that asks for it) */
};
/* The fastest kernel this CPU has (sa_cpu_path_active: $SALIGN_CPU=ref selects the
 * reference): tiled online-softmax attention (AVX2/AVX-512) threaded over (KV head, query
 * block) items; for T == 1 a decode kernel, one pass over the K and V rows of a KV head for
 * all the query heads of its group, threaded over (KV head, key range) items (long contexts
 * are cut into 2..8 key ranges, a number that depends on the shapes only, never on the
 * thread count, merged in a fixed order: the result is the same for any thread count),
 * except when a->batch_invariant is true, where every T runs the tiled kernel so that a
 * query's output does not depend on how tokens are batched. The fast kernels are tested
 * against sa_op_attention_ref with explicit tolerances (tests/test_model.c). */
void sa_op_attention(struct sa_threadpool *tp, const struct sa_attn_args *a);
/* Plain C, threaded over (token, head) pairs: the reference. */
void sa_op_attention_ref(struct sa_threadpool *tp, const struct sa_attn_args *a);
enum sa_attn_kernel {
    SA_ATTN_AUTO = 0, /* as sa_op_attention (a->batch_invariant decides for T == 1) */
    SA_ATTN_TILED,    /* the tiled kernel for every T */
    SA_ATTN_DECODE,   /* the decode kernel (T must be 1) */
};
/* sa_op_attention on a given CPU path (tests, benchmarks); a path without a kernel for this
 * head_dim (not a multiple of its vector width, or > 256) runs the reference. */
void sa_op_attention_path(struct sa_threadpool *tp, const struct sa_attn_args *a, enum sa_cpu_path path,
                          enum sa_attn_kernel kernel);

#endif
