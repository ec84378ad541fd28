/* attention.c: causal self-attention with grouped-query heads for training (forward and
 * backward; ops_train_impl.h). Per (sequence, query head) the score matrix S = scale Q K^T
 * and the products with V go through OpenBLAS sgemm, or the bf16 GEMM under mixed precision
 * (strided views of the (B, T, heads, D) buffers, no copies); the masked softmax rows run on
 * the thread pool. Only the log-sum-exp of each row is kept between forward and backward: the
 * backward recomputes the probabilities (FlashAttention's recomputation, ref: Dao et al. 2022, sec. 3.1). */
#include "train/ops_train_impl.h"
#include "core/core_impl.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* One product of the attention: OpenBLAS sgemm, or the bf16 GEMM (on tp's threads) when
 * a->bf16 (mixed precision: bf16 products, f32 sums, as autocast's bf16 matmuls). */
static void mm(const struct sa_tr_attn *a, struct sa_threadpool *tp, bool tA, bool tB, int64_t M, int64_t N,
               int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc) {
    if (a->bf16)
        sa_tr_gemm_bf16(tp, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        sa_tr_sgemm(tp, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

size_t sa_tr_attention_scratch_floats(int64_t T) { return 2 * (size_t)T * (size_t)T; }

/* The keys row t sees: j in [j0, t] with the same segment id. */
static inline int64_t first_key(const struct sa_tr_attn *a, int64_t t) {
    return a->window > 0 ? SA_MAX(0, t - a->window + 1) : 0;
}

struct attn_rows {
    const struct sa_tr_attn *a;
    const int32_t *seg;    // (T) this sequence's segment ids, or NULL
    float *S;              // (T, T) scores in; probabilities out
    float *dP;             // (T, T) bwd: dO V^T in; dS out
    float *lse_out;        // (T) fwd: this head's log-sum-exp
    const float *lse;      // (T) bwd: the same, from the forward
    const float *o, *dout; // bwd: rows of this head, stride ld
    int64_t ld;            // n_head * head_dim
};

/* Forward rows: S[t] -> softmax over the visible keys (0 elsewhere), lse[t]. */
static void rows_fwd(void *ctx, int ith, int nth) {
    const struct attn_rows *r = ctx;
    const int64_t T = r->a->T;
    for (int64_t t = ith; t < T; t += nth) {
        float *s = r->S + t * T;
        int64_t j0 = first_key(r->a, t);
        float m = -INFINITY;
        for (int64_t j = j0; j <= t; j++)
            if ((!r->seg || r->seg[j] == r->seg[t]) && s[j] > m) m = s[j];
        float sum = 0.0f;
        for (int64_t j = 0; j < T; j++) {
            bool vis = j >= j0 && j <= t && (!r->seg || r->seg[j] == r->seg[t]);
            s[j] = vis ? expf(s[j] - m) : 0.0f;
            sum += s[j];
        }
        /* sum >= 1: key t is always visible */
        float inv = 1.0f / sum;
        for (int64_t j = j0; j <= t; j++) s[j] *= inv;
        r->lse_out[t] = m + logf(sum);
    }
}

/* Backward rows: P[t] = exp(S[t] - lse[t]) on the visible keys, and
 * dS = P * (dP - dout.out) * scale (sum_j P_j dP_j = dout.out: FlashAttention-2's D). */
static void rows_bwd(void *ctx, int ith, int nth) {
    const struct attn_rows *r = ctx;
    const int64_t T = r->a->T, D = r->a->head_dim;
    const float scale = r->a->scale;
    for (int64_t t = ith; t < T; t += nth) {
        float *s = r->S + t * T, *dp = r->dP + t * T;
        const float *o = r->o + t * r->ld, *dout = r->dout + t * r->ld;
        float Dt = 0.0f;
        for (int64_t d = 0; d < D; d++) Dt += dout[d] * o[d];
        int64_t j0 = first_key(r->a, t);
        float lse = r->lse[t];
        for (int64_t j = 0; j < T; j++) {
            bool vis = j >= j0 && j <= t && (!r->seg || r->seg[j] == r->seg[t]);
            float p = vis ? expf(s[j] - lse) : 0.0f;
            s[j] = p;
            dp[j] = p * (dp[j] - Dt) * scale;
        }
    }
}

void sa_tr_attention_fwd(struct sa_threadpool *tp, const struct sa_tr_attn *a, float *out, float *lse, const float *q,
                         const float *k, const float *v) {
    SA_ASSERT(a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0 && a->scratch);
    const int64_t T = a->T, NH = a->n_head, NKV = a->n_head_kv, D = a->head_dim, rep = NH / NKV;
    const int64_t ldq = NH * D, ldk = NKV * D;
    float *S = a->scratch;
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < NH; h++) {
            const float *qh = q + b * T * ldq + h * D;                 // (T, D) stride ldq
            const float *kh = k + b * T * ldk + (h / rep) * D;         // (T, D) stride ldk
            const float *vh = v + b * T * ldk + (h / rep) * D;         // (T, D) stride ldk
            float *oh = out + b * T * ldq + h * D;                     // (T, D) stride ldq
            /* S (T, T) = scale * Q K^T */
            mm(a, tp, false, true, T, T, D, a->scale, qh, ldq, kh, ldk, 0.0f, S, T);
            struct attn_rows r = {a, a->seg ? a->seg + b * T : NULL, S, NULL, lse + (b * NH + h) * T, NULL, NULL, NULL, ldq};
            sa_threadpool_run(tp, rows_fwd, &r);
            /* O (T, D) = P V */
            mm(a, tp, false, false, T, D, T, 1.0f, S, T, vh, ldk, 0.0f, oh, ldq);
        }
}

void sa_tr_attention_bwd(struct sa_threadpool *tp, const struct sa_tr_attn *a, float *dq, float *dk, float *dv,
                         const float *dout, const float *out, const float *lse, const float *q, const float *k,
                         const float *v) {
    SA_ASSERT(a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0 && a->scratch);
    const int64_t T = a->T, NH = a->n_head, NKV = a->n_head_kv, D = a->head_dim, rep = NH / NKV;
    const int64_t ldq = NH * D, ldk = NKV * D;
    float *S = a->scratch, *dP = a->scratch + T * T;
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < NH; h++) {
            int64_t qo = b * T * ldq + h * D, ko = b * T * ldk + (h / rep) * D;
            /* S = scale * Q K^T (recomputed), dP = dO V^T */
            mm(a, tp, false, true, T, T, D, a->scale, q + qo, ldq, k + ko, ldk, 0.0f, S, T);
            mm(a, tp, false, true, T, T, D, 1.0f, dout + qo, ldq, v + ko, ldk, 0.0f, dP, T);
            struct attn_rows r = {a, a->seg ? a->seg + b * T : NULL, S, dP, NULL, lse + (b * NH + h) * T, out + qo,
                                  dout + qo, ldq};
            sa_threadpool_run(tp, rows_bwd, &r);
            /* dQ += dS K,  dK += dS^T Q,  dV += P^T dO */
            mm(a, tp, false, false, T, D, T, 1.0f, dP, T, k + ko, ldk, 1.0f, dq + qo, ldq);
            mm(a, tp, true, false, T, D, T, 1.0f, dP, T, q + qo, ldq, 1.0f, dk + ko, ldk);
            mm(a, tp, true, false, T, D, T, 1.0f, S, T, dout + qo, ldq, 1.0f, dv + ko, ldk);
        }
}
