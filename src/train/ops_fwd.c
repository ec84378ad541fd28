/* ops_fwd.c: forward passes of the training ops (ops_train_impl.h): each writes its output
 * and the few values its backward needs (rmsnorm's rstd). Attention is in attention.c. Plain
 * C; the linear layer goes through OpenBLAS, with a plain-C reference next to it. The
 * fused cross-entropy (forward and backward in one pass) lives here too. */
#include "train/ops_train_impl.h"
#include "core/core_impl.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void sa_tr_blas_set_threads(int n_threads) { openblas_set_num_threads(n_threads > 0 ? n_threads : 1); }
int sa_tr_blas_threads(void) { return openblas_get_num_threads(); }

void sa_tr_share(int64_t n, int64_t align, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t units = (n + align - 1) / align; /* whole groups of `align` items */
    int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
    *lo = SA_MIN(n, u0 * align);
    *hi = SA_MIN(n, u1 * align);
}

/* ---- embedding ---- */

enum sa_status sa_tr_embedding_fwd(float *out, const int32_t *tokens, const float *table, int64_t N, int64_t C,
                                   int64_t V) {
    for (int64_t i = 0; i < N; i++) {
        int32_t tok = tokens[i];
        if (tok < 0 || tok >= V)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "embedding: token %d at row %lld is outside the vocabulary (0..%lld)",
                            (int)tok, (long long)i, (long long)V - 1);
        memcpy(out + i * C, table + (int64_t)tok * C, (size_t)C * sizeof(float));
    }
    return SA_STATUS_OK;
}

/* ---- RMSNorm ---- */

struct rms_fwd_task {
    float *out, *rstd;
    const float *inp, *w;
    int64_t N, C;
    float eps;
    bool w_plus_one;
};

static void rms_fwd_run(void *ctx, int ith, int nth) {
    const struct rms_fwd_task *t = ctx;
    const int64_t C = t->C;
    const float *w = t->w;
    int64_t lo, hi;
    sa_tr_share(t->N, 1, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const float *x = t->inp + i * C;
        float *y = t->out + i * C;
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / (double)C + (double)t->eps));
        t->rstd[i] = r;
        for (int64_t c = 0; c < C; c++) {
            float wc = w ? (t->w_plus_one ? 1.0f + w[c] : w[c]) : 1.0f;
            y[c] = x[c] * r * wc;
        }
    }
}

void sa_tr_rmsnorm_fwd_tp(struct sa_threadpool *tp, float *out, float *rstd, const float *inp, const float *w, int64_t N,
                          int64_t C, float eps, bool w_plus_one) {
    struct rms_fwd_task t = {out, rstd, inp, w, N, C, eps, w_plus_one};
    sa_threadpool_run(N * C >= 4096 ? tp : NULL, rms_fwd_run, &t);
}

void sa_tr_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int64_t N, int64_t C, float eps,
                       bool w_plus_one) {
    sa_tr_rmsnorm_fwd_tp(NULL, out, rstd, inp, w, N, C, eps, w_plus_one);
}

/* ---- linear ---- */

void sa_tr_linear_fwd(float *out, const float *inp, const float *W, const float *bias, int64_t N, int64_t C,
                      int64_t OC) {
    /* out (N, OC) = inp (N, C) @ W^T (C, OC) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)OC, (blasint)C, 1.0f, inp, (blasint)C,
                W, (blasint)C, 0.0f, out, (blasint)OC);
    if (bias)
        for (int64_t i = 0; i < N; i++)
            for (int64_t o = 0; o < OC; o++) out[i * OC + o] += bias[o];
}

void sa_tr_linear_fwd_ref(float *out, const float *inp, const float *W, const float *bias, int64_t N, int64_t C,
                          int64_t OC) {
    for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C;
        for (int64_t o = 0; o < OC; o++) {
            const float *wr = W + o * C;
            double acc = bias ? bias[o] : 0.0;
            for (int64_t c = 0; c < C; c++) acc += (double)x[c] * wr[c];
            out[i * OC + o] = (float)acc;
        }
    }
}

/* ---- RoPE ---- */

/* Rotates one head vector x (head_dim) by +angles (sign 1) or -angles (sign -1) into y
 * (accumulating when acc). */
static void rope_head(float *y, const float *x, float p, const float *inv_freq, int64_t head_dim, int64_t n_rot,
                      enum sa_rope_mode mode, float sign, bool acc) {
    int64_t half = n_rot / 2;
    for (int64_t k = 0; k < half; k++) {
        /* the angle in f32 as HF does (position * inv_freq, then cos/sin) */
        float ang = p * inv_freq[k];
        float c = cosf(ang), s = sign * sinf(ang);
        int64_t i0 = mode == SA_ROPE_NEOX ? k : 2 * k;
        int64_t i1 = mode == SA_ROPE_NEOX ? k + half : 2 * k + 1;
        float x0 = x[i0], x1 = x[i1];
        float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
        if (acc) {
            y[i0] += y0;
            y[i1] += y1;
        } else {
            y[i0] = y0;
            y[i1] = y1;
        }
    }
    for (int64_t d = n_rot; d < head_dim; d++) y[d] = acc ? y[d] + x[d] : x[d];
}

struct rope_task {
    float *out;
    const float *inp;
    const int32_t *pos;
    const float *inv_freq;
    int64_t N, n_head, head_dim, n_rot;
    enum sa_rope_mode mode;
    float sign;
    bool acc;
};

static void rope_run(void *ctx, int ith, int nth) {
    const struct rope_task *t = ctx;
    int64_t lo, hi;
    sa_tr_share(t->N, 1, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        for (int64_t h = 0; h < t->n_head; h++) {
            int64_t off = (i * t->n_head + h) * t->head_dim;
            rope_head(t->out + off, t->inp + off, (float)t->pos[i], t->inv_freq, t->head_dim, t->n_rot, t->mode, t->sign,
                      t->acc);
        }
}

void sa_tr_rope_fwd_tp(struct sa_threadpool *tp, float *out, const float *inp, const int32_t *pos, const float *inv_freq,
                       int64_t N, int64_t n_head, int64_t head_dim, int64_t n_rot, enum sa_rope_mode mode) {
    SA_ASSERT(n_rot % 2 == 0 && n_rot <= head_dim);
    struct rope_task t = {out, inp, pos, inv_freq, N, n_head, head_dim, n_rot, mode, 1.0f, false};
    sa_threadpool_run(N * n_head * head_dim >= 4096 ? tp : NULL, rope_run, &t);
}

void sa_tr_rope_bwd_tp(struct sa_threadpool *tp, float *dinp, const float *dout, const int32_t *pos,
                       const float *inv_freq, int64_t N, int64_t n_head, int64_t head_dim, int64_t n_rot,
                       enum sa_rope_mode mode) {
    SA_ASSERT(n_rot % 2 == 0 && n_rot <= head_dim);
    struct rope_task t = {dinp, dout, pos, inv_freq, N, n_head, head_dim, n_rot, mode, -1.0f, true};
    sa_threadpool_run(N * n_head * head_dim >= 4096 ? tp : NULL, rope_run, &t);
}

void sa_tr_rope_fwd(float *out, const float *inp, const int32_t *pos, const float *inv_freq, int64_t N, int64_t n_head,
                    int64_t head_dim, int64_t n_rot, enum sa_rope_mode mode) {
    sa_tr_rope_fwd_tp(NULL, out, inp, pos, inv_freq, N, n_head, head_dim, n_rot, mode);
}

void sa_tr_rope_bwd(float *dinp, const float *dout, const int32_t *pos, const float *inv_freq, int64_t N,
                    int64_t n_head, int64_t head_dim, int64_t n_rot, enum sa_rope_mode mode) {
    sa_tr_rope_bwd_tp(NULL, dinp, dout, pos, inv_freq, N, n_head, head_dim, n_rot, mode);
}

/* ---- gated activations ---- */

static inline float gelu_tanh(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

/* An element-wise op over n floats (ranges of whole cache lines per thread). */
struct ew_task {
    float *o0, *o1;
    const float *a, *b, *c;
    int64_t n;
    int kind;
    float s;
};
#define EW_MIN 8192 /* below this many elements: one thread */
#define EW_ALIGN 16

static void glu_fwd_range(const struct ew_task *t, int64_t lo, int64_t hi) {
    float *out = t->o0;
    const float *gate = t->a, *up = t->b;
    if (t->kind == SA_TR_GLU_SWIGLU) {
        for (int64_t i = lo; i < hi; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    } else {
        for (int64_t i = lo; i < hi; i++) out[i] = gelu_tanh(gate[i]) * up[i];
    }
}

static void glu_fwd_run(void *ctx, int ith, int nth) {
    const struct ew_task *t = ctx;
    int64_t lo, hi;
    sa_tr_share(t->n, EW_ALIGN, ith, nth, &lo, &hi);
    glu_fwd_range(t, lo, hi);
}

void sa_tr_glu_fwd_tp(struct sa_threadpool *tp, float *out, const float *gate, const float *up, int64_t n,
                      enum sa_tr_glu kind) {
    struct ew_task t = {out, NULL, gate, up, NULL, n, (int)kind, 0.0f};
    sa_threadpool_run(n >= EW_MIN ? tp : NULL, glu_fwd_run, &t);
}

void sa_tr_glu_fwd(float *out, const float *gate, const float *up, int64_t n, enum sa_tr_glu kind) {
    sa_tr_glu_fwd_tp(NULL, out, gate, up, n, kind);
}

static void residual_fwd_run(void *ctx, int ith, int nth) {
    const struct ew_task *t = ctx;
    int64_t lo, hi;
    sa_tr_share(t->n, EW_ALIGN, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) t->o0[i] = t->a[i] + t->b[i];
}

void sa_tr_residual_fwd_tp(struct sa_threadpool *tp, float *out, const float *a, const float *b, int64_t n) {
    struct ew_task t = {out, NULL, a, b, NULL, n, 0, 0.0f};
    sa_threadpool_run(n >= EW_MIN ? tp : NULL, residual_fwd_run, &t);
}

void sa_tr_residual_fwd(float *out, const float *a, const float *b, int64_t n) {
    sa_tr_residual_fwd_tp(NULL, out, a, b, n);
}

static void scale_run(void *ctx, int ith, int nth) {
    const struct ew_task *t = ctx;
    int64_t lo, hi;
    sa_tr_share(t->n, EW_ALIGN, ith, nth, &lo, &hi);
    if (hi <= lo) return;
    if (t->s == 0.0f) memset(t->o0 + lo, 0, (size_t)(hi - lo) * sizeof(float));
    else
        for (int64_t i = lo; i < hi; i++) t->o0[i] *= t->s;
}

void sa_tr_scale_tp(struct sa_threadpool *tp, float *x, int64_t n, float s) {
    if (s == 1.0f) return;
    struct ew_task t = {x, NULL, NULL, NULL, NULL, n, 0, s};
    sa_threadpool_run(n >= EW_MIN ? tp : NULL, scale_run, &t);
}

/* ---- cross-entropy ---- */

struct ce_task {
    float *logits, *losses;
    const int32_t *targets;
    const float *weights;
    int64_t N, V;
    float denom;
    bool grad;
};

static void ce_row(const struct ce_task *tk, int64_t i) {
    float *x = tk->logits + i * tk->V;
    const int64_t V = tk->V;
    int32_t y = tk->targets[i];
    if (y < 0) {
        tk->losses[i] = 0.0f;
        if (tk->grad) memset(x, 0, (size_t)V * sizeof(float));
        return;
    }
    float mx = -INFINITY;
    for (int64_t j = 0; j < V; j++) mx = x[j] > mx ? x[j] : mx;
    float xy = x[y];
    double sum = 0.0;
    if (tk->grad) {
        for (int64_t j = 0; j < V; j++) {
            x[j] = expf(x[j] - mx);
            sum += x[j];
        }
    } else {
        for (int64_t j = 0; j < V; j++) sum += expf(x[j] - mx);
    }
    float lse = mx + (float)log(sum);
    tk->losses[i] = lse - xy;
    if (tk->grad) {
        /* d/dx_j [w/denom * (lse - x_y)] = w/denom * (softmax_j - [j == y]) */
        float w = (tk->weights ? tk->weights[i] : 1.0f) / tk->denom;
        float c = (float)(1.0 / sum) * w;
        for (int64_t j = 0; j < V; j++) x[j] *= c;
        x[y] -= w;
    }
}

static void ce_run(void *ctx, int ith, int nth) {
    const struct ce_task *tk = ctx;
    int64_t per = (tk->N + nth - 1) / nth, lo = ith * per, hi = SA_MIN(tk->N, lo + per);
    for (int64_t i = lo; i < hi; i++) ce_row(tk, i);
}

enum sa_status sa_tr_cross_entropy(struct sa_threadpool *tp, float *logits, float *losses, const int32_t *targets,
                                   const float *weights, int64_t N, int64_t V, float denom, bool grad,
                                   float *mean_loss) {
    *mean_loss = 0.0f;
    double wsum = 0.0;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] >= V)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "cross-entropy: target %d at row %lld is outside the vocabulary (0..%lld)",
                            (int)targets[i], (long long)i, (long long)V - 1);
        if (targets[i] >= 0) wsum += weights ? weights[i] : 1.0;
    }
    if (denom <= 0) {
        if (wsum <= 0)
            return sa_error(SA_STATUS_BAD_ARGUMENT,
                            "cross-entropy: no row has a target with a positive weight (all masked): nothing to learn");
        denom = (float)wsum;
    }
    struct ce_task tk = {logits, losses, targets, weights, N, V, denom, grad};
    sa_threadpool_run(tp, ce_run, &tk);
    double total = 0.0;
    for (int64_t i = 0; i < N; i++)
        if (targets[i] >= 0) total += (double)(weights ? weights[i] : 1.0f) * losses[i];
    *mean_loss = (float)(total / denom);
    return SA_STATUS_OK;
}
