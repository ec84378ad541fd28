/* ops_bwd.c: backward passes of the training ops (ops_train_impl.h). Each accumulates (+=)
 * into its gradient buffers; parameter gradients may be NULL (frozen). The linear layer's
 * three products go through OpenBLAS, with a plain-C reference next to them. */
#include "train/ops_train_impl.h"
#include "core/core_impl.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Share ith of the columns: every row i in order (each element sums its rows as the
 * one-thread loop does). */
struct emb_bwd_task {
    float *dtable;
    const float *dout;
    const int32_t *tokens;
    int64_t N, C;
};

static void emb_bwd_run(void *ctx, int ith, int nth) {
    const struct emb_bwd_task *t = ctx;
    const int64_t C = t->C;
    int64_t c0, c1;
    sa_tr_share(C, 16, ith, nth, &c0, &c1);
    for (int64_t i = 0; i < t->N; i++) {
        float *row = t->dtable + (int64_t)t->tokens[i] * C;
        const float *g = t->dout + i * C;
        for (int64_t c = c0; c < c1; c++) row[c] += g[c];
    }
}

void sa_tr_embedding_bwd_tp(struct sa_threadpool *tp, float *dtable, const float *dout, const int32_t *tokens, int64_t N,
                            int64_t C) {
    struct emb_bwd_task t = {dtable, dout, tokens, N, C};
    sa_threadpool_run(N * C >= 8192 && C >= 32 ? tp : NULL, emb_bwd_run, &t);
}

void sa_tr_embedding_bwd(float *dtable, const float *dout, const int32_t *tokens, int64_t N, int64_t C) {
    sa_tr_embedding_bwd_tp(NULL, dtable, dout, tokens, N, C);
}

/* y_c = x_c r w'_c with r = (mean(x^2) + eps)^(-1/2):
 *   dx_c = r w'_c dy_c - (r^3 / C) x_c sum_j w'_j dy_j x_j,   dw_c += dy_c x_c r
 * Share ith: dx of its rows, and dw of its columns summed over all the rows in order (the
 * two parts are independent: dinp is neither dout nor inp). */
struct rms_bwd_task {
    float *dinp, *dw;
    const float *dout, *inp, *w, *rstd;
    int64_t N, C;
    bool w_plus_one;
};

static void rms_bwd_run(void *ctx, int ith, int nth) {
    const struct rms_bwd_task *t = ctx;
    const int64_t C = t->C;
    const float *w = t->w;
    int64_t lo, hi;
    sa_tr_share(t->N, 1, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const float *x = t->inp + i * C, *dy = t->dout + i * C;
        float *dx = t->dinp + i * C;
        float r = t->rstd[i];
        double dot = 0.0;
        for (int64_t c = 0; c < C; c++) {
            float wc = w ? (t->w_plus_one ? 1.0f + w[c] : w[c]) : 1.0f;
            dot += (double)(wc * dy[c]) * x[c];
        }
        float k = (float)(dot * r * r * r / (double)C);
        for (int64_t c = 0; c < C; c++) {
            float wc = w ? (t->w_plus_one ? 1.0f + w[c] : w[c]) : 1.0f;
            dx[c] += r * wc * dy[c] - k * x[c];
        }
    }
    if (!t->dw) return;
    int64_t c0, c1;
    sa_tr_share(C, 16, ith, nth, &c0, &c1);
    for (int64_t i = 0; i < t->N; i++) {
        const float *x = t->inp + i * C, *dy = t->dout + i * C;
        float r = t->rstd[i];
        for (int64_t c = c0; c < c1; c++) t->dw[c] += dy[c] * x[c] * r;
    }
}

void sa_tr_rmsnorm_bwd_tp(struct sa_threadpool *tp, float *dinp, float *dw, const float *dout, const float *inp,
                          const float *w, const float *rstd, int64_t N, int64_t C, bool w_plus_one) {
    struct rms_bwd_task t = {dinp, dw, dout, inp, w, rstd, N, C, w_plus_one};
    sa_threadpool_run(N * C >= 4096 ? tp : NULL, rms_bwd_run, &t);
}

void sa_tr_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *rstd,
                       int64_t N, int64_t C, bool w_plus_one) {
    sa_tr_rmsnorm_bwd_tp(NULL, dinp, dw, dout, inp, w, rstd, N, C, w_plus_one);
}

void sa_tr_linear_bwd(float *dinp, float *dW, float *dbias, const float *dout, const float *inp, const float *W,
                      int64_t N, int64_t C, int64_t OC) {
    sa_tr_linear_bwd_tp(NULL, dinp, dW, dbias, dout, inp, W, N, C, OC);
}

void sa_tr_linear_bwd_tp(struct sa_threadpool *tp, float *dinp, float *dW, float *dbias, const float *dout,
                         const float *inp, const float *W, int64_t N, int64_t C, int64_t OC) {
    /* dinp (N, C) += dout (N, OC) @ W (OC, C) */
    sa_tr_sgemm(tp, false, false, N, C, OC, 1.0f, dout, OC, W, C, 1.0f, dinp, C);
    /* dW (OC, C) += dout^T (OC, N) @ inp (N, C) */
    if (dW) sa_tr_sgemm(tp, true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dW, C);
    if (dbias)
        for (int64_t i = 0; i < N; i++)
            for (int64_t o = 0; o < OC; o++) dbias[o] += dout[i * OC + o];
}

void sa_tr_linear_bwd_ref(float *dinp, float *dW, float *dbias, const float *dout, const float *inp, const float *W,
                          int64_t N, int64_t C, int64_t OC) {
    for (int64_t i = 0; i < N; i++)
        for (int64_t c = 0; c < C; c++) {
            double acc = 0.0;
            for (int64_t o = 0; o < OC; o++) acc += (double)dout[i * OC + o] * W[o * C + c];
            dinp[i * C + c] += (float)acc;
        }
    if (dW)
        for (int64_t o = 0; o < OC; o++)
            for (int64_t c = 0; c < C; c++) {
                double acc = 0.0;
                for (int64_t i = 0; i < N; i++) acc += (double)dout[i * OC + o] * inp[i * C + c];
                dW[o * C + c] += (float)acc;
            }
    if (dbias)
        for (int64_t o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int64_t i = 0; i < N; i++) acc += dout[i * OC + o];
            dbias[o] += (float)acc;
        }
}

/* ---- gated activations ---- */

struct glu_bwd_task {
    float *dgate, *dup;
    const float *dout, *gate, *up;
    int64_t n;
    enum sa_tr_glu kind;
};

static void glu_bwd_run(void *ctx, int ith, int nth) {
    const struct glu_bwd_task *t = ctx;
    float *dgate = t->dgate, *dup = t->dup;
    const float *dout = t->dout, *gate = t->gate, *up = t->up;
    int64_t lo, hi;
    sa_tr_share(t->n, 16, ith, nth, &lo, &hi);
    if (t->kind == SA_TR_GLU_SWIGLU) {
        /* silu(x) = x s(x);  silu'(x) = s(x) (1 + x (1 - s(x))) */
        for (int64_t i = lo; i < hi; i++) {
            float x = gate[i], s = 1.0f / (1.0f + expf(-x));
            dgate[i] += dout[i] * up[i] * s * (1.0f + x * (1.0f - s));
            dup[i] += dout[i] * x * s;
        }
    } else {
        /* gelu(x) = x/2 (1 + tanh(u)), u = k (x + 0.044715 x^3):
         * gelu'(x) = (1 + t)/2 + x/2 (1 - t^2) k (1 + 3 * 0.044715 x^2) */
        const float k = 0.7978845608028654f;
        for (int64_t i = lo; i < hi; i++) {
            float x = gate[i], th = tanhf(k * (x + 0.044715f * x * x * x));
            float g = 0.5f * x * (1.0f + th);
            float dg = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * x * x);
            dgate[i] += dout[i] * up[i] * dg;
            dup[i] += dout[i] * g;
        }
    }
}

void sa_tr_glu_bwd_tp(struct sa_threadpool *tp, float *dgate, float *dup, const float *dout, const float *gate,
                      const float *up, int64_t n, enum sa_tr_glu kind) {
    struct glu_bwd_task t = {dgate, dup, dout, gate, up, n, kind};
    sa_threadpool_run(n >= 8192 ? tp : NULL, glu_bwd_run, &t);
}

void sa_tr_glu_bwd(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t n,
                   enum sa_tr_glu kind) {
    sa_tr_glu_bwd_tp(NULL, dgate, dup, dout, gate, up, n, kind);
}

void sa_tr_residual_bwd(float *da, float *db, const float *dout, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}
