/* ops_train_impl.h: the training engine's building blocks (issue 4): f32 operations with a
 * forward that saves what its backward needs and a backward that accumulates gradients, in
 * the manner of llm.c's train_gpt2.c; the AdamW optimizer with global-norm clipping and
 * learning-rate schedules; LoRA adapters. Invariants, layouts and tolerances:
 * docs/internals/training_ops.md.
 *
 * Conventions for every op below:
 * - Shapes are row-major; N is the number of token rows (B*T) where the op does not care
 *   about the split into sequences.
 * - Forward functions overwrite their outputs. Backward functions ACCUMULATE (+=) into every
 *   gradient buffer (the caller zeroes them once per step), so that a tensor used twice
 *   (the residual stream, tied embeddings) just receives both contributions.
 * - A gradient pointer for a parameter may be NULL: that gradient is not computed (frozen
 *   weights under LoRA). Input gradients (dinp) are never NULL.
 * - No op allocates memory; buffers are the caller's (an activation arena). `tp` (a thread
 *   pool, src/backend/cpu/cpu_impl.h) may be NULL everywhere: run on the calling thread.
 *   Results do not depend on the number of threads (each output element is always summed
 *   in the same order). */
#ifndef SA_OPS_TRAIN_IMPL_H
#define SA_OPS_TRAIN_IMPL_H

#include "backend/cpu/cpu_impl.h"
#include "formats/arch_impl.h" /* enum sa_rope_mode, sa_rope_inv_freq */
#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- threads for the BLAS products (OpenBLAS's own pool; a process-wide setting) ---- */
void sa_tr_blas_set_threads(int n_threads);
int sa_tr_blas_threads(void);

/* ---- threads for the element-wise ops ----
 * The _tp variants below split an op over tp's threads (tp may be NULL) and give the same
 * bits as the plain op for any number of threads: element-wise work is split into
 * contiguous ranges of rows or elements; a sum over rows (a norm weight's gradient, the
 * embedding's scatter-add) is split over its output columns, each column still summed over
 * the rows in order; the gradient norm sums fixed chunks (SA_TR_NORM_CHUNKS, independent
 * of the threads), then adds the partial sums in order. */
/* [*lo, *hi): share ith of nth of n items (ranges rounded to multiples of `align` items). */
void sa_tr_share(int64_t n, int64_t align, int ith, int nth, int64_t *lo, int64_t *hi);

/* ---- embedding ---- */
/* out[i, :] = table[tokens[i], :]. Fails (SA_STATUS_BAD_ARGUMENT, nothing written beyond the
 * bad row) if a token is outside [0, V). */
SA_NODISCARD enum sa_status sa_tr_embedding_fwd(float *out,          // (N, C)
                                                const int32_t *tokens, // (N)
                                                const float *table,    // (V, C)
                                                int64_t N, int64_t C, int64_t V);
/* dtable[tokens[i], :] += dout[i, :] (scatter-add; tokens already validated by the fwd). */
void sa_tr_embedding_bwd(float *dtable,        // (V, C)
                         const float *dout,    // (N, C)
                         const int32_t *tokens, // (N)
                         int64_t N, int64_t C);
void sa_tr_embedding_bwd_tp(struct sa_threadpool *tp, float *dtable, const float *dout, const int32_t *tokens, int64_t N,
                            int64_t C);

/* ---- RMSNorm ----
 * out = x * rstd * w',  rstd = 1 / sqrt(mean(x^2) + eps),  w' = w, or (1 + w) when
 * `w_plus_one` (Gemma). w may be NULL (w' = 1). Per-head q/k norm (Qwen3, Gemma 3) is this
 * op over N*n_head rows of head_dim. */
void sa_tr_rmsnorm_fwd(float *out,       // (N, C)
                       float *rstd,      // (N) saved for the backward
                       const float *inp, // (N, C)
                       const float *w,   // (C) or NULL
                       int64_t N, int64_t C, float eps, bool w_plus_one);
void sa_tr_rmsnorm_bwd(float *dinp,       // (N, C) +=
                       float *dw,         // (C) += , or NULL
                       const float *dout, // (N, C)
                       const float *inp,  // (N, C)
                       const float *w,    // (C) or NULL
                       const float *rstd, // (N) from the forward
                       int64_t N, int64_t C, bool w_plus_one);
void sa_tr_rmsnorm_fwd_tp(struct sa_threadpool *tp, float *out, float *rstd, const float *inp, const float *w, int64_t N,
                          int64_t C, float eps, bool w_plus_one);
void sa_tr_rmsnorm_bwd_tp(struct sa_threadpool *tp, float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, const float *rstd, int64_t N, int64_t C, bool w_plus_one);

/* ---- linear: out = inp W^T + bias ----
 * W is stored like a PyTorch nn.Linear / GGUF tensor: OC rows of C. The fast versions use
 * OpenBLAS cblas_sgemm; the _ref versions are plain C loops (double accumulators) that the
 * tests compare against. */
void sa_tr_linear_fwd(float *out,        // (N, OC)
                      const float *inp,  // (N, C)
                      const float *W,    // (OC, C)
                      const float *bias, // (OC) or NULL
                      int64_t N, int64_t C, int64_t OC);
void sa_tr_linear_bwd(float *dinp,       // (N, C) +=
                      float *dW,         // (OC, C) += , or NULL
                      float *dbias,      // (OC) += , or NULL
                      const float *dout, // (N, OC)
                      const float *inp,  // (N, C)
                      const float *W,    // (OC, C)
                      int64_t N, int64_t C, int64_t OC);
void sa_tr_linear_fwd_ref(float *out, const float *inp, const float *W, const float *bias, int64_t N, int64_t C,
                          int64_t OC);
void sa_tr_linear_bwd_ref(float *dinp, float *dW, float *dbias, const float *dout, const float *inp, const float *W,
                          int64_t N, int64_t C, int64_t OC);

/* ---- bf16 GEMM for mixed-precision training (gemm_bf16.c, gemm_bf16_avx512.c) ----
 * C (M, N) = alpha op(A) op(B) + beta C (row-major; C not read when beta == 0), where every
 * element of op(A) (M, K) and op(B) (K, N) is first rounded from f32 to bf16 (round to
 * nearest even, NaN kept quiet: PyTorch's conversion) and the exact products are summed in
 * f32. op(A) = A (lda >= K) or, with transA, A^T of a stored (K, M) A (lda >= M); likewise
 * op(B) = B (K, N) or, with transB, B^T of a stored (N, K). Paths: AVX512-BF16 (vdpbf16ps,
 * register tiles of 12 x 32, threads of tp), a portable one (blocks rounded to bf16 values in
 * f32, then OpenBLAS sgemm), and the plain-C reference (double sums). AUTO picks AVX512-BF16
 * when the CPU has it. Results do not depend on the number of threads. */
enum sa_tr_gemm_path { SA_TR_GEMM_AUTO = 0, SA_TR_GEMM_REF, SA_TR_GEMM_GENERIC, SA_TR_GEMM_AVX512BF16 };
uint16_t sa_tr_bf16_bits(float x);  /* bf16 bits of x (RNE) */
float sa_tr_bf16_round(float x);    /* x rounded to the nearest bf16 value (RNE), as f32 */
bool sa_tr_gemm_bf16_fast_available(void); /* the CPU has AVX512-BF16 (and this is x86-64) */
void sa_tr_gemm_bf16(struct sa_threadpool *tp, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                     float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                     int64_t ldc);
/* The same with a given path (AVX512BF16 falls back to GENERIC on a CPU without it). */
void sa_tr_gemm_bf16_path(enum sa_tr_gemm_path path, struct sa_threadpool *tp, bool transA, bool transB, int64_t M,
                          int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                          float beta, float *C, int64_t ldc);
/* A pre-packed op(B) (K, N) for repeated products with the same B (the LM head's weights
 * over its row chunks): bytes needed (0 when the CPU lacks AVX512-BF16: then use
 * sa_tr_gemm_bf16), packing (op(B) = B, or B^T of a stored (N, K) with transB), and the
 * product C = alpha op(A) op(B) + beta C with the same results as sa_tr_gemm_bf16. */
size_t sa_tr_gemm_bf16_packed_bytes(int64_t K, int64_t N);
void sa_tr_gemm_bf16_pack(struct sa_threadpool *tp, bool transB, int64_t K, int64_t N, const float *B, int64_t ldb,
                          void *packed); /* packed: sa_tr_gemm_bf16_packed_bytes, 64-byte aligned */
void sa_tr_gemm_bf16_prepacked(struct sa_threadpool *tp, bool transA, int64_t M, int64_t N, int64_t K, float alpha,
                               const float *A, int64_t lda, const void *packed, float beta, float *C, int64_t ldc);
/* sa_tr_linear_fwd / _bwd with their products through sa_tr_gemm_bf16 (bias and its
 * gradient in f32). */
void sa_tr_linear_fwd_bf16(struct sa_threadpool *tp, float *out, const float *inp, const float *W, const float *bias,
                           int64_t N, int64_t C, int64_t OC);
void sa_tr_linear_bwd_bf16(struct sa_threadpool *tp, float *dinp, float *dW, float *dbias, const float *dout,
                           const float *inp, const float *W, int64_t N, int64_t C, int64_t OC);

/* ---- rotary position embedding ----
 * Rotates the first n_rot dims of every head by angle pos[i] * inv_freq[k] for pair k
 * (dims n_rot..head_dim-1 pass through). inv_freq (n_rot/2) is the caller's table: plain
 * base^(-2k/n_rot) or rescaled: sa_rope_inv_freq, the one rule inference uses too.
 * mode: enum sa_rope_mode of formats/arch_impl.h (NORMAL: pairs (x[2k], x[2k+1]); NEOX:
 * halves (x[k], x[k + n_rot/2]), HF rotate_half, what the HF-layout training weights use). */
/* out may equal inp (in place). */
void sa_tr_rope_fwd(float *out,             // (N, n_head, head_dim)
                    const float *inp,       // (N, n_head, head_dim)
                    const int32_t *pos,     // (N) position of each row
                    const float *inv_freq,  // (n_rot / 2)
                    int64_t N, int64_t n_head, int64_t head_dim, int64_t n_rot, enum sa_rope_mode mode);
/* The rotation is orthogonal: dinp += R(-angle) dout. */
void sa_tr_rope_bwd(float *dinp,            // (N, n_head, head_dim) +=
                    const float *dout,      // (N, n_head, head_dim)
                    const int32_t *pos, const float *inv_freq, int64_t N, int64_t n_head, int64_t head_dim,
                    int64_t n_rot, enum sa_rope_mode mode);
void sa_tr_rope_fwd_tp(struct sa_threadpool *tp, float *out, const float *inp, const int32_t *pos, const float *inv_freq,
                       int64_t N, int64_t n_head, int64_t head_dim, int64_t n_rot, enum sa_rope_mode mode);
void sa_tr_rope_bwd_tp(struct sa_threadpool *tp, float *dinp, const float *dout, const int32_t *pos,
                       const float *inv_freq, int64_t N, int64_t n_head, int64_t head_dim, int64_t n_rot,
                       enum sa_rope_mode mode);

/* ---- causal self-attention with grouped-query heads ----
 * Query head h reads key/value head h / (n_head / n_head_kv). Row t of sequence b sees key j
 * of the same sequence when j <= t, and t - j < window when window > 0 (sliding window:
 * Gemma 3 local layers), and seg[b, j] == seg[b, t] when seg is given (packed sequences:
 * segment ids). Scores are scale * q.k (scale = 1/sqrt(head_dim) or the model's value).
 * The forward keeps only the log-sum-exp of each score row; the backward recomputes the
 * probabilities from q, k and lse (FlashAttention's recomputation: ref: Dao et al. 2022,
 * "FlashAttention", sec. 3.1), so no (B, n_head, T, T) tensor is stored.
 * The products run per (sequence, head) through OpenBLAS (its threads), or, with bf16, the
 * bf16 GEMM (tp's threads); the softmax rows are split over tp's threads. Scratch: (T, T) score and gradient matrices of one head. */
struct sa_tr_attn {
    int64_t B, T, n_head, n_head_kv, head_dim;
    int64_t window;     /* 0: no window */
    float scale;
    const int32_t *seg; /* (B, T) segment ids, or NULL: one segment per sequence */
    float *scratch;     /* (sa_tr_attention_scratch_floats(T)) floats, overwritten */
    bool bf16;          /* products through sa_tr_gemm_bf16 on tp's threads (mixed precision);
                           softmax, lse and dS stay f32 */
};
size_t sa_tr_attention_scratch_floats(int64_t T); /* 2 * T * T */
void sa_tr_attention_fwd(struct sa_threadpool *tp, const struct sa_tr_attn *a,
                         float *out,     // (B, T, n_head, head_dim)
                         float *lse,     // (B, n_head, T) saved for the backward
                         const float *q, // (B, T, n_head, head_dim)
                         const float *k, // (B, T, n_head_kv, head_dim)
                         const float *v); // (B, T, n_head_kv, head_dim)
void sa_tr_attention_bwd(struct sa_threadpool *tp, const struct sa_tr_attn *a,
                         float *dq,         // (B, T, n_head, head_dim) +=
                         float *dk,         // (B, T, n_head_kv, head_dim) +=
                         float *dv,         // (B, T, n_head_kv, head_dim) +=
                         const float *dout, // (B, T, n_head, head_dim)
                         const float *out,  // (B, T, n_head, head_dim) from the forward
                         const float *lse,  // (B, n_head, T) from the forward
                         const float *q, const float *k, const float *v);

/* ---- gated activations: out = act(gate) * up ---- */
enum sa_tr_glu { SA_TR_GLU_SWIGLU = 0 /* silu */, SA_TR_GLU_GEGLU = 1 /* gelu, tanh approximation */ };
void sa_tr_glu_fwd(float *out,        // (n)
                   const float *gate, // (n)
                   const float *up,   // (n)
                   int64_t n, enum sa_tr_glu kind);
void sa_tr_glu_bwd(float *dgate, // (n) +=
                   float *dup,   // (n) +=
                   const float *dout, const float *gate, const float *up, int64_t n, enum sa_tr_glu kind);

/* ---- residual: out = a + b;  backward: da += dout, db += dout ---- */
void sa_tr_residual_fwd(float *out, const float *a, const float *b, int64_t n);
void sa_tr_residual_bwd(float *da, float *db, const float *dout, int64_t n);
void sa_tr_glu_fwd_tp(struct sa_threadpool *tp, float *out, const float *gate, const float *up, int64_t n,
                      enum sa_tr_glu kind);
void sa_tr_glu_bwd_tp(struct sa_threadpool *tp, float *dgate, float *dup, const float *dout, const float *gate,
                      const float *up, int64_t n, enum sa_tr_glu kind);
void sa_tr_residual_fwd_tp(struct sa_threadpool *tp, float *out, const float *a, const float *b, int64_t n);
/* x[i] *= s (s == 0: x = 0, the memset; s == 1: nothing) */
void sa_tr_scale_tp(struct sa_threadpool *tp, float *x, int64_t n, float s);

/* ---- softmax cross-entropy over the vocabulary, fused with its backward ----
 * Row i has loss_i = logsumexp(logits[i]) - logits[i, targets[i]], weight w_i = weights[i]
 * (1 when weights is NULL), and no loss when targets[i] < 0 (e.g. -100: prompt tokens).
 * Returns sum_i w_i loss_i / denom, where denom = sum of the weights of the rows with a
 * target when `denom` <= 0 (the mean over unmasked tokens), or the caller's value (the
 * count over all micro-batches of a step when the rows are processed in chunks).
 * When `grad`, logits is overwritten IN PLACE by dloss/dlogits = w_i/denom * (softmax - onehot)
 * (masked rows become 0), so no (N, V) probability tensor is ever kept; the caller may also
 * run the LM head and this op over chunks of rows. losses (N) receives loss_i (0 when
 * masked). Fails (SA_STATUS_BAD_ARGUMENT, nothing written) if a target is >= V or the
 * weights of the unmasked rows sum to 0 with denom <= 0 (then *mean_loss = 0). */
SA_NODISCARD enum sa_status sa_tr_cross_entropy(struct sa_threadpool *tp,
                                                float *logits,          // (N, V) in: logits; out: dlogits when grad
                                                float *losses,          // (N)
                                                const int32_t *targets, // (N)
                                                const float *weights,   // (N) or NULL
                                                int64_t N, int64_t V, float denom, bool grad, float *mean_loss);

/* ---- LoRA (ref: Hu et al. 2021, "LoRA"; initialisation as HF PEFT) ----
 * out = inp W^T + bias + scale * (drop(inp) A^T) B^T,   scale = alpha / r.
 * W (OC, C) and bias are frozen; A (r, C) and B (OC, r) train. drop() zeroes each element
 * with probability p and scales the rest by 1/(1-p); its mask is a pure function of
 * (seed, element index), so the backward regenerates it and any thread count gives the
 * same mask. */
struct sa_tr_lora {
    int64_t C, OC, r;
    float scale;    /* alpha / r */
    float dropout;  /* p in [0, 1); 0: no dropout */
    uint64_t seed;  /* dropout mask seed: change it every step (and per layer) */
    bool bf16;      /* the frozen W's products through sa_tr_gemm_bf16 (mixed precision); the
                       adapter's (rank r) stay f32 */
    struct sa_threadpool *tp; /* threads of those bf16 products; may be NULL */
};
/* A ~ U(-1/sqrt(C), 1/sqrt(C)) (kaiming_uniform_ with a = sqrt(5), fan_in = C), B = 0. */
void sa_tr_lora_init(float *A, float *B, int64_t C, int64_t OC, int64_t r, uint64_t seed);
void sa_tr_lora_fwd(const struct sa_tr_lora *l,
                    float *out,        // (N, OC)
                    float *xd,         // (N, C) saved drop(inp); NULL when dropout == 0 (then xd = inp)
                    float *h,          // (N, r) saved drop(inp) A^T
                    const float *inp,  // (N, C)
                    const float *W,    // (OC, C) frozen
                    const float *bias, // (OC) or NULL, frozen
                    const float *A,    // (r, C)
                    const float *B,    // (OC, r)
                    int64_t N);
void sa_tr_lora_bwd(const struct sa_tr_lora *l,
                    float *dinp,       // (N, C) += (through W and through the adapter)
                    float *dA,         // (r, C) +=
                    float *dB,         // (OC, r) +=
                    float *dh,         // (N, r) scratch, overwritten
                    float *dxd,        // (N, C) scratch when dropout > 0 (overwritten), else NULL
                    const float *dout, // (N, OC)
                    const float *inp,  // (N, C)
                    const float *xd,   // (N, C) from the forward, or NULL when dropout == 0
                    const float *h,    // (N, r) from the forward
                    const float *W, const float *A, const float *B, int64_t N);
/* W += scale * B A (then the adapter can be dropped: same outputs without dropout). */
void sa_tr_lora_merge(float *W, const float *A, const float *B, int64_t C, int64_t OC, int64_t r, float scale);
/* 1 if element `idx` survives dropout p under `seed`, else 0. */
int sa_tr_dropout_keep(uint64_t seed, uint64_t idx, float p);

/* ---- AdamW (decoupled weight decay: ref: Loshchilov & Hutter 2019; the update of
 * torch.optim.AdamW, amsgrad off) ---- */
struct sa_adamw_cfg {
    float lr;           /* peak learning rate (the schedule scales it) */
    float beta1, beta2; /* 0.9, 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* 0.01 (torch default); applied only to tensors marked `decay` */
};
struct sa_adamw_cfg sa_adamw_default_cfg(void);

/* One parameter tensor: values, gradient and whether weight decay applies (HF Trainer
 * leaves biases and norm weights undecayed). */
struct sa_param_ref {
    float *data;       // (n)
    float *grad;       // (n) (mutable: clipping scales it)
    int64_t n;
    bool decay;
};

/* Moments for n_params floats (the sum of the n of the tensors passed to each step, in the
 * same order every time). */
struct sa_adamw {
    int64_t n_params;
    int64_t step; /* steps taken */
    float *m;     // (n_params) first moment
    float *v;     // (n_params) second moment
};
SA_NODISCARD enum sa_status sa_adamw_init(struct sa_adamw *opt, int64_t n_params);
void sa_adamw_free(struct sa_adamw *opt); /* NULL or zeroed: nothing */
/* One step with learning rate lr over the tensors (their n must add up to n_params). */
SA_NODISCARD enum sa_status sa_adamw_step(struct sa_adamw *opt, const struct sa_adamw_cfg *cfg, float lr,
                                          const struct sa_param_ref *params, int n_tensors);
/* The same with the parameters split over tp's threads (the same bits). */
SA_NODISCARD enum sa_status sa_adamw_step_tp(struct sa_threadpool *tp, struct sa_adamw *opt,
                                             const struct sa_adamw_cfg *cfg, float lr,
                                             const struct sa_param_ref *params, int n_tensors);
/* The element update, for one tensor's slice of the moments at step t (>= 1). */
void sa_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                     float eps, float weight_decay, int64_t t);

/* State serialization (little-endian; docs/internals/training_ops.md):
 *   "SAADAMW1" | u32 version=1 | u32 0 | i64 n_params | i64 step | f32 m[n] | f32 v[n]
 * Restoring gives bit-identical future steps. */
size_t sa_adamw_state_bytes(const struct sa_adamw *opt);
void sa_adamw_state_write(const struct sa_adamw *opt, void *buf); /* buf: sa_adamw_state_bytes */
/* opt must be initialised with the same n_params. */
SA_NODISCARD enum sa_status sa_adamw_state_read(struct sa_adamw *opt, const void *buf, size_t len);
SA_NODISCARD enum sa_status sa_adamw_save(const struct sa_adamw *opt, const char *path);
SA_NODISCARD enum sa_status sa_adamw_load(struct sa_adamw *opt, const char *path);

/* Global L2 norm of all gradients (accumulated in double), as clip_grad_norm_ computes it:
 * squares summed over SA_TR_NORM_CHUNKS fixed chunks of the concatenated gradients, the
 * partial sums then added in order (the same bits for any number of threads). */
#define SA_TR_NORM_CHUNKS 64
double sa_grad_global_norm(const struct sa_param_ref *params, int n_tensors);
double sa_grad_global_norm_tp(struct sa_threadpool *tp, const struct sa_param_ref *params, int n_tensors);
/* torch.nn.utils.clip_grad_norm_: if the norm exceeds max_norm, scales every gradient by
 * max_norm / (norm + 1e-6). Returns the norm before clipping. */
double sa_grad_clip(const struct sa_param_ref *params, int n_tensors, double max_norm);
double sa_grad_clip_tp(struct sa_threadpool *tp, const struct sa_param_ref *params, int n_tensors, double max_norm);

/* Learning-rate multipliers at `step` (0-based, the step about to be taken), as HF
 * transformers' schedules: linear warmup over warmup steps, then cosine to 0
 * (get_cosine_schedule_with_warmup, num_cycles 0.5) or linear to 0. */
double sa_lr_cosine(int64_t step, int64_t warmup, int64_t total);
double sa_lr_linear(int64_t step, int64_t warmup, int64_t total);
/* Warmup steps from a ratio: ceil(ratio * total) (HF TrainingArguments.get_warmup_steps). */
int64_t sa_lr_warmup_steps(double ratio, int64_t total);

#endif
