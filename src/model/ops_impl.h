/* ops_impl.h: the element-wise and attention operations of the transformer forward pass,
 * in plain C over f32 rows (the matrix products live in the CPU backend: sa_matmul).
 * Shapes are given as (rows, cols), row-major. Attention is threaded over (token, head)
 * pairs through sa_threadpool_run. */
#ifndef SA_OPS_IMPL_H
#define SA_OPS_IMPL_H

#include "backend/cpu/cpu_impl.h"

#include <stdbool.h>
#include <stdint.h>

/* y = x / sqrt(mean(x^2) + eps) * w, for each of n_rows rows of n floats. w: (n), or NULL
 * for no weight. y may equal x. */
void sa_op_rmsnorm(float *y, const float *x, const float *w, int64_t n_rows, int64_t n, float eps);

enum sa_rope_mode {
    SA_ROPE_NORMAL = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): llama.cpp's mode 0, used
                         * with the GGUF llama weights whose Q/K rows were permuted */
    SA_ROPE_NEOX = 2,   /* rotate halves (x[i], x[i + n_rot/2]): HF rotate_half */
};

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

/* Causal multi-head attention with grouped-query heads over a KV cache.
 *   q:   (T, n_head, head_dim) queries of the tokens at positions pos0 .. pos0+T-1
 *   k,v: (n_kv_rows, n_head_kv, head_dim) cache rows; rows 0 .. pos0+T-1 are filled
 *   out: (T, n_head, head_dim)
 * Query t sees cache rows j with j <= pos0+t and, when window > 0, pos0+t - j < window.
 * Scores are q.k * scale, soft-capped when softcap > 0. scratch: n_threads rows of
 * (pos0+T) floats (sa_threadpool_n_threads). */
struct sa_attn_args {
    const float *q, *k, *v;
    float *out;
    int64_t T, pos0, n_head, n_head_kv, head_dim;
    int64_t window;
    float scale, softcap;
    float *scratch;
    int64_t scratch_stride; /* floats per share in scratch (>= pos0 + T) */
    int64_t n_scratch;      /* rows of scratch: >= the pool's share count */
};
void sa_op_attention(struct sa_threadpool *tp, const struct sa_attn_args *a);

#endif
