/* test_train_ops.c: the training ops (src/train/ops_train_impl.h): a finite-difference
 * gradient check of every op's backward against its forward, the OpenBLAS linear layer
 * against its plain-C reference, thread-count independence, masks and error paths, LoRA's
 * initialisation and merge. The comparison with PyTorch autograd is
 * tests/py/test_train_ops_ref.py.
 *
 * Gradient check: the loss is L = sum(out * R) for a fixed random R, accumulated in double
 * from the f32 outputs; the backward gets dout = R. Each checked input element is moved by
 * +-h (h = 1e-2, inputs of order 1) and dL/dx ~ (L+ - L-) / 2h. With f32 forwards the
 * difference carries rounding noise ~ 1e-7 * |L| / h and truncation ~ h^2 f''' / 6, so the
 * check is max_i |fd_i - an_i| <= tol * max(max_i |an_i|, 1): tol = 2e-4 (measured errors
 * are 4e-8 to 2.2e-5; a wrong formula gives errors of order 1e-1 to 1). */
#include "harness.h"
#include "core/core_impl.h"
#include "sa/status.h"
#include "core/rng_impl.h"
#include "train/ops_train_impl.h"

#include <stdint.h>
#include <stdlib.h>

#define GC_H 1e-2
#define GC_TOL 2e-4
#define GC_MAX_ELEMS 48 /* checked elements per input tensor (evenly spread) */

static struct sa_rng rng;

static float *rand_buf(int64_t n, float scale) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = (float)((2.0 * sa_rng_uniform(&rng) - 1.0) * scale);
    return p;
}
static float *zeros(int64_t n) { return calloc((size_t)n, sizeof(float)); }

/* A gradient-check case: fwd(ctx) recomputes `out` (n_out floats) from the inputs x[i]. */
struct gc_case {
    void *ctx;
    void (*fwd)(void *ctx);
    const float *out;
    int64_t n_out;
    const float *R; /* (n_out) */
    int n_in;
    float *x[6];
    const float *grad[6]; /* analytic gradients from the backward with dout = R */
    int64_t n[6];
    const char *name[6];
};

static double gc_loss(struct gc_case *c) {
    c->fwd(c->ctx);
    double L = 0.0;
    for (int64_t i = 0; i < c->n_out; i++) L += (double)c->out[i] * c->R[i];
    return L;
}

/* Returns the worst relative error over the inputs (and fails the test above GC_TOL). */
static double gradcheck(struct gc_case *c, const char *op) {
    double worst = 0.0;
    for (int k = 0; k < c->n_in; k++) {
        float *x = c->x[k];
        int64_t n = c->n[k], stride = n > GC_MAX_ELEMS ? n / GC_MAX_ELEMS : 1;
        double max_an = 1.0, max_err = 0.0;
        for (int64_t i = 0; i < n; i++) max_an = fmax(max_an, fabs(c->grad[k][i]));
        for (int64_t i = 0; i < n; i += stride) {
            float x0 = x[i];
            x[i] = (float)(x0 + GC_H);
            double lp = gc_loss(c);
            x[i] = (float)(x0 - GC_H);
            double lm = gc_loss(c);
            x[i] = x0;
            /* the real step is the f32 difference of the two perturbed values */
            double fd = (lp - lm) / ((double)(float)(x0 + GC_H) - (double)(float)(x0 - GC_H));
            max_err = fmax(max_err, fabs(fd - c->grad[k][i]));
        }
        double rel = max_err / max_an;
        worst = fmax(worst, rel);
        CHECK_MSG(rel <= GC_TOL, "%s: d/d%s: max error %.3g relative to max |grad| %.3g (tol %g)", op, c->name[k],
                  max_err, max_an, GC_TOL);
    }
    c->fwd(c->ctx);
    printf("    %-28s grad check: max rel error %.2e\n", op, worst);
    return worst;
}

static double max_rel_diff(const float *a, const float *b, int64_t n) {
    double md = 0.0, mb = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / mb;
}

/* ---- embedding ---- */

struct emb_ctx {
    float *out, *table;
    int32_t *tok;
    int64_t N, C, V;
};
static void emb_fwd(void *p) {
    struct emb_ctx *e = p;
    CHECK_OK(sa_tr_embedding_fwd(e->out, e->tok, e->table, e->N, e->C, e->V));
}

static void test_embedding(void) {
    struct emb_ctx e = {.N = 9, .C = 6, .V = 5};
    int32_t tok[9] = {0, 3, 3, 1, 4, 3, 0, 2, 3}; /* repeats: the scatter-add must sum */
    e.tok = tok;
    e.table = rand_buf(e.V * e.C, 1.0f);
    e.out = zeros(e.N * e.C);
    float *R = rand_buf(e.N * e.C, 1.0f), *dtable = zeros(e.V * e.C);
    emb_fwd(&e);
    sa_tr_embedding_bwd(dtable, R, tok, e.N, e.C);
    struct gc_case c = {&e, emb_fwd, e.out, e.N * e.C, R, 1, {e.table}, {dtable}, {e.V * e.C}, {"table"}};
    gradcheck(&c, "embedding");
    tok[4] = 5;
    CHECK(sa_tr_embedding_fwd(e.out, tok, e.table, e.N, e.C, e.V) == SA_STATUS_BAD_ARGUMENT);
    tok[4] = -1;
    CHECK(sa_tr_embedding_fwd(e.out, tok, e.table, e.N, e.C, e.V) == SA_STATUS_BAD_ARGUMENT);
    free(e.table), free(e.out), free(R), free(dtable);
}

/* ---- rmsnorm ---- */

struct rms_ctx {
    float *out, *rstd, *inp, *w;
    int64_t N, C;
    bool plus_one;
};
static void rms_fwd(void *p) {
    struct rms_ctx *r = p;
    sa_tr_rmsnorm_fwd(r->out, r->rstd, r->inp, r->w, r->N, r->C, 1e-5f, r->plus_one);
}

static void test_rmsnorm(void) {
    for (int variant = 0; variant < 3; variant++) {
        struct rms_ctx r = {.N = 5, .C = 16, .plus_one = variant == 1};
        r.inp = rand_buf(r.N * r.C, 1.0f);
        r.w = variant == 2 ? NULL : rand_buf(r.C, 1.0f);
        r.out = zeros(r.N * r.C), r.rstd = zeros(r.N);
        float *R = rand_buf(r.N * r.C, 1.0f), *dinp = zeros(r.N * r.C), *dw = zeros(r.C);
        rms_fwd(&r);
        sa_tr_rmsnorm_bwd(dinp, r.w ? dw : NULL, R, r.inp, r.w, r.rstd, r.N, r.C, r.plus_one);
        struct gc_case c = {&r, rms_fwd, r.out, r.N * r.C, R, r.w ? 2 : 1, {r.inp, r.w}, {dinp, dw},
                            {r.N * r.C, r.C}, {"inp", "w"}};
        gradcheck(&c, variant == 0 ? "rmsnorm" : variant == 1 ? "rmsnorm (1+w)" : "rmsnorm (no weight)");
        free(r.inp), free(r.w), free(r.out), free(r.rstd), free(R), free(dinp), free(dw);
    }
}

/* ---- linear ---- */

struct lin_ctx {
    float *out, *inp, *W, *b;
    int64_t N, C, OC;
};
static void lin_fwd(void *p) {
    struct lin_ctx *l = p;
    sa_tr_linear_fwd(l->out, l->inp, l->W, l->b, l->N, l->C, l->OC);
}

static void test_linear(void) {
    struct lin_ctx l = {.N = 7, .C = 12, .OC = 10};
    l.inp = rand_buf(l.N * l.C, 1.0f), l.W = rand_buf(l.OC * l.C, 0.5f), l.b = rand_buf(l.OC, 1.0f);
    l.out = zeros(l.N * l.OC);
    float *R = rand_buf(l.N * l.OC, 1.0f), *dinp = zeros(l.N * l.C), *dW = zeros(l.OC * l.C), *db = zeros(l.OC);
    lin_fwd(&l);
    sa_tr_linear_bwd(dinp, dW, db, R, l.inp, l.W, l.N, l.C, l.OC);
    struct gc_case c = {&l, lin_fwd, l.out, l.N * l.OC, R, 3, {l.inp, l.W, l.b}, {dinp, dW, db},
                        {l.N * l.C, l.OC * l.C, l.OC}, {"inp", "W", "bias"}};
    gradcheck(&c, "linear");
    free(l.inp), free(l.W), free(l.b), free(l.out), free(R), free(dinp), free(dW), free(db);
}

/* BLAS against the plain-C reference, on odd shapes, accumulating into non-zero grads. */
static void test_linear_blas_vs_ref(void) {
    const int64_t N = 37, C = 53, OC = 29;
    float *inp = rand_buf(N * C, 1.0f), *W = rand_buf(OC * C, 1.0f), *b = rand_buf(OC, 1.0f);
    float *dout = rand_buf(N * OC, 1.0f);
    float *o1 = zeros(N * OC), *o2 = zeros(N * OC);
    sa_tr_linear_fwd(o1, inp, W, b, N, C, OC);
    sa_tr_linear_fwd_ref(o2, inp, W, b, N, C, OC);
    double e = max_rel_diff(o1, o2, N * OC);
    CHECK_MSG(e < 1e-5, "linear fwd blas vs ref: %g", e);
    float *g1[3] = {rand_buf(N * C, 1.0f), rand_buf(OC * C, 1.0f), rand_buf(OC, 1.0f)};
    float *g2[3] = {malloc(N * C * 4), malloc(OC * C * 4), malloc(OC * 4)};
    memcpy(g2[0], g1[0], N * C * 4), memcpy(g2[1], g1[1], OC * C * 4), memcpy(g2[2], g1[2], OC * 4);
    sa_tr_linear_bwd(g1[0], g1[1], g1[2], dout, inp, W, N, C, OC);
    sa_tr_linear_bwd_ref(g2[0], g2[1], g2[2], dout, inp, W, N, C, OC);
    double e0 = max_rel_diff(g1[0], g2[0], N * C), e1 = max_rel_diff(g1[1], g2[1], OC * C),
           e2 = max_rel_diff(g1[2], g2[2], OC);
    CHECK_MSG(e0 < 1e-5 && e1 < 1e-5 && e2 < 1e-5, "linear bwd blas vs ref: dinp %g dW %g db %g", e0, e1, e2);
    printf("    linear blas vs ref: fwd %.1e, dinp %.1e, dW %.1e, db %.1e\n", e, e0, e1, e2);
    /* frozen W: dW NULL leaves dinp the same */
    float *d3 = zeros(N * C), *d4 = zeros(N * C);
    sa_tr_linear_bwd(d3, NULL, NULL, dout, inp, W, N, C, OC);
    sa_tr_linear_bwd_ref(d4, NULL, NULL, dout, inp, W, N, C, OC);
    CHECK(max_rel_diff(d3, d4, N * C) < 1e-5);
    free(inp), free(W), free(b), free(dout), free(o1), free(o2), free(d3), free(d4);
    for (int i = 0; i < 3; i++) free(g1[i]), free(g2[i]);
}

/* ---- rope ---- */

/* sa_rope_inv_freq (the rule inference and training share): plain, or llama3 when factor > 0. */
static void rope_freqs(float *inv, int64_t n_rot, double base, double factor, double low, double high, double orig) {
    struct sa_rope_params p = {.n_rot = n_rot, .base = base, .factor = factor, .low_freq_factor = low,
                               .high_freq_factor = high, .orig_ctx = orig,
                               .scaling = factor > 0 ? SA_ROPE_SCALING_LLAMA3 : SA_ROPE_SCALING_NONE};
    sa_rope_inv_freq(&p, inv);
}

struct rope_ctx {
    float *out, *inp, *inv_freq;
    int32_t *pos;
    int64_t N, NH, D, n_rot;
    enum sa_rope_mode mode;
};
static void rope_fwd(void *p) {
    struct rope_ctx *r = p;
    sa_tr_rope_fwd(r->out, r->inp, r->pos, r->inv_freq, r->N, r->NH, r->D, r->n_rot, r->mode);
}

static void test_rope(void) {
    for (int m = 0; m < 2; m++) {
        struct rope_ctx r = {.N = 5, .NH = 3, .D = 10, .n_rot = 8, .mode = m ? SA_ROPE_NEOX : SA_ROPE_NORMAL};
        int32_t pos[5] = {0, 1, 2, 7, 100};
        float inv[4];
        rope_freqs(inv, r.n_rot, 10000.0, 0, 0, 0, 0);
        r.pos = pos, r.inv_freq = inv;
        r.inp = rand_buf(r.N * r.NH * r.D, 1.0f), r.out = zeros(r.N * r.NH * r.D);
        int64_t n = r.N * r.NH * r.D;
        float *R = rand_buf(n, 1.0f), *dinp = zeros(n);
        rope_fwd(&r);
        sa_tr_rope_bwd(dinp, R, pos, inv, r.N, r.NH, r.D, r.n_rot, r.mode);
        struct gc_case c = {&r, rope_fwd, r.out, n, R, 1, {r.inp}, {dinp}, {n}, {"inp"}};
        gradcheck(&c, m ? "rope neox (partial)" : "rope interleaved (partial)");
        /* position 0 is the identity; in place equals out of place */
        for (int64_t i = 0; i < r.NH * r.D; i++) CHECK(r.out[i] == r.inp[i]);
        float *tmp = malloc(n * 4);
        memcpy(tmp, r.inp, n * 4);
        sa_tr_rope_fwd(tmp, tmp, pos, inv, r.N, r.NH, r.D, r.n_rot, r.mode);
        CHECK(memcmp(tmp, r.out, n * 4) == 0);
        free(tmp), free(r.inp), free(r.out), free(R), free(dinp);
    }
    /* llama3 scaling: high frequencies kept, low ones divided by the factor */
    float f0[32], f1[32];
    rope_freqs(f0, 64, 500000.0, 0, 0, 0, 0);
    rope_freqs(f1, 64, 500000.0, 8.0, 1.0, 4.0, 8192.0);
    CHECK(f0[0] == f1[0]);
    CHECK_NEAR(f1[31], f0[31] / 8.0, 1e-6 * f0[31]);
}

/* ---- attention ---- */

struct attn_ctx {
    struct sa_tr_attn a;
    struct sa_threadpool *tp;
    float *out, *lse, *q, *k, *v;
};
static void attn_fwd(void *p) {
    struct attn_ctx *c = p;
    sa_tr_attention_fwd(c->tp, &c->a, c->out, c->lse, c->q, c->k, c->v);
}

static void test_attention(void) {
    struct sa_threadpool *tp2;
    CHECK_OK(sa_threadpool_init(2, &tp2));
    int32_t seg[2 * 9] = {0, 0, 0, 1, 1, 1, 1, 2, 2, 5, 5, 5, 5, 5, 7, 7, 7, 7};
    const struct {
        const char *name;
        int64_t NH, NKV, window;
        bool seg;
    } cases[] = {
        {"attention mha", 2, 2, 0, false},
        {"attention gqa 4/2", 4, 2, 0, false},
        {"attention gqa window 3", 4, 1, 3, false},
        {"attention gqa segments", 4, 2, 0, true},
        {"attention window+segments", 2, 1, 4, true},
    };
    for (size_t ci = 0; ci < SA_ARRAY_LEN(cases); ci++) {
        struct attn_ctx c = {.a = {.B = 2, .T = 9, .n_head = cases[ci].NH, .n_head_kv = cases[ci].NKV, .head_dim = 6,
                                   .window = cases[ci].window, .scale = 0.4f, .seg = cases[ci].seg ? seg : NULL}};
        float *scratch = zeros((int64_t)sa_tr_attention_scratch_floats(c.a.T));
        c.a.scratch = scratch;
        const int64_t nq = c.a.B * c.a.T * c.a.n_head * c.a.head_dim, nk = c.a.B * c.a.T * c.a.n_head_kv * c.a.head_dim;
        c.q = rand_buf(nq, 1.0f), c.k = rand_buf(nk, 1.0f), c.v = rand_buf(nk, 1.0f);
        c.out = zeros(nq), c.lse = zeros(c.a.B * c.a.n_head * c.a.T);
        float *R = rand_buf(nq, 1.0f), *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk);
        attn_fwd(&c);
        sa_tr_attention_bwd(NULL, &c.a, dq, dk, dv, R, c.out, c.lse, c.q, c.k, c.v);
        struct gc_case g = {&c, attn_fwd, c.out, nq, R, 3, {c.q, c.k, c.v}, {dq, dk, dv}, {nq, nk, nk}, {"q", "k", "v"}};
        gradcheck(&g, cases[ci].name);
        /* two threads: bit-identical */
        float *out2 = zeros(nq), *lse2 = zeros(c.a.B * c.a.n_head * c.a.T);
        float *dq2 = zeros(nq), *dk2 = zeros(nk), *dv2 = zeros(nk);
        sa_tr_attention_fwd(tp2, &c.a, out2, lse2, c.q, c.k, c.v);
        sa_tr_attention_bwd(tp2, &c.a, dq2, dk2, dv2, R, out2, lse2, c.q, c.k, c.v);
        CHECK(memcmp(out2, c.out, nq * 4) == 0 && memcmp(dq2, dq, nq * 4) == 0 && memcmp(dk2, dk, nk * 4) == 0 &&
              memcmp(dv2, dv, nk * 4) == 0);
        /* row 0 sees only itself: out = v of row 0 */
        for (int64_t d = 0; d < c.a.head_dim; d++) CHECK_NEAR(c.out[d], c.v[d], 1e-6);
        free(c.q), free(c.k), free(c.v), free(c.out), free(c.lse), free(R), free(dq), free(dk), free(dv);
        free(out2), free(lse2), free(dq2), free(dk2), free(dv2), free(scratch);
    }
    sa_threadpool_free(tp2);
}

/* ---- glu, residual ---- */

struct glu_ctx {
    float *out, *g, *u;
    int64_t n;
    enum sa_tr_glu kind;
};
static void glu_fwd(void *p) {
    struct glu_ctx *c = p;
    sa_tr_glu_fwd(c->out, c->g, c->u, c->n, c->kind);
}

struct res_ctx {
    float *out, *a, *b;
    int64_t n;
};
static void res_fwd(void *p) {
    struct res_ctx *c = p;
    sa_tr_residual_fwd(c->out, c->a, c->b, c->n);
}

static void test_glu_residual(void) {
    for (int kind = 0; kind < 2; kind++) {
        struct glu_ctx c = {.n = 40, .kind = kind};
        c.g = rand_buf(c.n, 3.0f), c.u = rand_buf(c.n, 1.0f), c.out = zeros(c.n);
        float *R = rand_buf(c.n, 1.0f), *dg = zeros(c.n), *du = zeros(c.n);
        glu_fwd(&c);
        sa_tr_glu_bwd(dg, du, R, c.g, c.u, c.n, c.kind);
        struct gc_case g = {&c, glu_fwd, c.out, c.n, R, 2, {c.g, c.u}, {dg, du}, {c.n, c.n}, {"gate", "up"}};
        gradcheck(&g, kind ? "geglu" : "swiglu");
        free(c.g), free(c.u), free(c.out), free(R), free(dg), free(du);
    }
    struct res_ctx r = {.n = 20};
    r.a = rand_buf(r.n, 1.0f), r.b = rand_buf(r.n, 1.0f), r.out = zeros(r.n);
    float *R = rand_buf(r.n, 1.0f), *da = zeros(r.n), *db = zeros(r.n);
    res_fwd(&r);
    sa_tr_residual_bwd(da, db, R, r.n);
    struct gc_case g = {&r, res_fwd, r.out, r.n, R, 2, {r.a, r.b}, {da, db}, {r.n, r.n}, {"a", "b"}};
    gradcheck(&g, "residual");
    free(r.a), free(r.b), free(r.out), free(R), free(da), free(db);
}

/* ---- cross-entropy ---- */

struct ce_ctx {
    float *logits, *work, *losses, *weights;
    int32_t *targets;
    int64_t N, V;
    float loss;
};
static void ce_fwd(void *p) {
    struct ce_ctx *c = p;
    memcpy(c->work, c->logits, (size_t)(c->N * c->V) * 4);
    CHECK_OK(sa_tr_cross_entropy(NULL, c->work, c->losses, c->targets, c->weights, c->N, c->V, 0, false, &c->loss));
}

static void test_cross_entropy(void) {
    struct ce_ctx c = {.N = 6, .V = 11};
    int32_t targets[6] = {3, -100, 0, 10, -1, 5};
    float weights[6] = {1.0f, 1.0f, 0.5f, 2.0f, 1.0f, 1.0f};
    c.targets = targets;
    c.logits = rand_buf(c.N * c.V, 3.0f), c.work = zeros(c.N * c.V), c.losses = zeros(c.N);
    float R = 1.0f;
    for (int w = 0; w < 2; w++) {
        c.weights = w ? weights : NULL;
        float *dlogits = malloc((size_t)(c.N * c.V) * 4), loss_g;
        memcpy(dlogits, c.logits, (size_t)(c.N * c.V) * 4);
        CHECK_OK(sa_tr_cross_entropy(NULL, dlogits, c.losses, targets, c.weights, c.N, c.V, 0, true, &loss_g));
        ce_fwd(&c);
        CHECK(loss_g == c.loss);
        /* masked rows: no loss, no gradient; others: gradient rows sum to 0 */
        for (int64_t j = 0; j < c.V; j++) CHECK(dlogits[1 * c.V + j] == 0.0f && dlogits[4 * c.V + j] == 0.0f);
        CHECK(c.losses[1] == 0.0f && c.losses[4] == 0.0f);
        double s = 0.0;
        for (int64_t j = 0; j < c.V; j++) s += dlogits[3 * c.V + j];
        CHECK_NEAR(s, 0.0, 1e-6);
        /* the mean is over unmasked rows (4 of them, or their weights 4.5) */
        double ref = 0.0, wsum = 0.0;
        for (int i = 0; i < 6; i++)
            if (targets[i] >= 0) ref += (w ? weights[i] : 1.0) * c.losses[i], wsum += w ? weights[i] : 1.0;
        CHECK_NEAR(c.loss, ref / wsum, 1e-6);
        struct gc_case g = {&c, ce_fwd, &c.loss, 1, &R, 1, {c.logits}, {dlogits}, {c.N * c.V}, {"logits"}};
        gradcheck(&g, w ? "cross-entropy (weighted)" : "cross-entropy (masked)");
        free(dlogits);
    }
    /* a caller-given denominator scales loss and gradient; threads give identical results */
    struct sa_threadpool *tp2;
    CHECK_OK(sa_threadpool_init(2, &tp2));
    float *d1 = malloc((size_t)(c.N * c.V) * 4), *d2 = malloc((size_t)(c.N * c.V) * 4), l1, l2;
    memcpy(d1, c.logits, (size_t)(c.N * c.V) * 4), memcpy(d2, c.logits, (size_t)(c.N * c.V) * 4);
    CHECK_OK(sa_tr_cross_entropy(NULL, d1, c.losses, targets, NULL, c.N, c.V, 8.0f, true, &l1));
    CHECK_OK(sa_tr_cross_entropy(tp2, d2, c.losses, targets, NULL, c.N, c.V, 8.0f, true, &l2));
    CHECK(l1 == l2 && memcmp(d1, d2, (size_t)(c.N * c.V) * 4) == 0);
    CHECK_OK(sa_tr_cross_entropy(NULL, c.work, c.losses, targets, NULL, c.N, c.V, 0, false, &l2));
    CHECK_NEAR(l1, l2 * 4.0 / 8.0, 1e-6);
    sa_threadpool_free(tp2);
    /* errors: target out of range, everything masked */
    targets[0] = 11;
    CHECK(sa_tr_cross_entropy(NULL, d1, c.losses, targets, NULL, c.N, c.V, 0, true, &l1) == SA_STATUS_BAD_ARGUMENT);
    int32_t none[6] = {-100, -100, -100, -100, -100, -100};
    CHECK(sa_tr_cross_entropy(NULL, d1, c.losses, none, NULL, c.N, c.V, 0, true, &l1) == SA_STATUS_BAD_ARGUMENT);
    CHECK(l1 == 0.0f);
    free(d1), free(d2), free(c.logits), free(c.work), free(c.losses);
}

/* ---- LoRA ---- */

struct lora_ctx {
    struct sa_tr_lora l;
    float *out, *xd, *h, *inp, *W, *bias, *A, *B;
    int64_t N;
};
static void lora_fwd(void *p) {
    struct lora_ctx *c = p;
    sa_tr_lora_fwd(&c->l, c->out, c->xd, c->h, c->inp, c->W, c->bias, c->A, c->B, c->N);
}

static void test_lora(void) {
    for (int drop = 0; drop < 2; drop++) {
        struct lora_ctx c = {.l = {.C = 12, .OC = 9, .r = 4, .scale = 16.0f / 4, .dropout = drop ? 0.25f : 0.0f,
                                   .seed = 1234},
                             .N = 6};
        const int64_t N = c.N, C = c.l.C, OC = c.l.OC, r = c.l.r;
        c.inp = rand_buf(N * C, 1.0f), c.W = rand_buf(OC * C, 0.5f), c.bias = rand_buf(OC, 1.0f);
        c.A = rand_buf(r * C, 0.5f), c.B = rand_buf(OC * r, 0.5f); /* B != 0 to check dA */
        c.out = zeros(N * OC), c.h = zeros(N * r), c.xd = drop ? zeros(N * C) : NULL;
        float *R = rand_buf(N * OC, 1.0f), *dinp = zeros(N * C), *dA = zeros(r * C), *dB = zeros(OC * r);
        float *dh = zeros(N * r), *dxd = drop ? zeros(N * C) : NULL;
        lora_fwd(&c);
        sa_tr_lora_bwd(&c.l, dinp, dA, dB, dh, dxd, R, c.inp, c.xd, c.h, c.W, c.A, c.B, N);
        struct gc_case g = {&c, lora_fwd, c.out, N * OC, R, 3, {c.inp, c.A, c.B}, {dinp, dA, dB},
                            {N * C, r * C, OC * r}, {"inp", "A", "B"}};
        gradcheck(&g, drop ? "lora (dropout 0.25)" : "lora");
        if (drop) {
            int64_t kept = 0;
            for (int64_t i = 0; i < N * C; i++) {
                int k = sa_tr_dropout_keep(c.l.seed, (uint64_t)i, c.l.dropout);
                kept += k;
                CHECK(k ? c.xd[i] == c.inp[i] * (1.0f / 0.75f) : c.xd[i] == 0.0f);
            }
            CHECK(kept > N * C / 2 && kept < N * C);
        } else {
            /* merged W gives the same output */
            float *Wm = malloc((size_t)(OC * C) * 4), *o2 = zeros(N * OC);
            memcpy(Wm, c.W, (size_t)(OC * C) * 4);
            sa_tr_lora_merge(Wm, c.A, c.B, C, OC, r, c.l.scale);
            sa_tr_linear_fwd(o2, c.inp, Wm, c.bias, N, C, OC);
            double e = max_rel_diff(o2, c.out, N * OC);
            CHECK_MSG(e < 1e-5, "lora merge: %g", e);
            free(Wm), free(o2);
        }
        free(c.inp), free(c.W), free(c.bias), free(c.A), free(c.B), free(c.out), free(c.h), free(c.xd);
        free(R), free(dinp), free(dA), free(dB), free(dh), free(dxd);
    }
    /* init: A uniform within +-1/sqrt(C) with mean ~0 and variance bound^2/3; B zero */
    const int64_t C = 256, OC = 8, r = 16;
    float *A = malloc(r * C * 4), *B = rand_buf(OC * r, 1.0f);
    sa_tr_lora_init(A, B, C, OC, r, 7);
    double bound = 1.0 / 16.0, mean = 0, var = 0;
    for (int64_t i = 0; i < r * C; i++) {
        CHECK(fabs(A[i]) <= bound);
        mean += A[i], var += (double)A[i] * A[i];
    }
    mean /= r * C, var /= r * C;
    CHECK_NEAR(mean, 0.0, 0.05 * bound);
    CHECK_NEAR(var, bound * bound / 3, 0.05 * bound * bound / 3);
    for (int64_t i = 0; i < OC * r; i++) CHECK(B[i] == 0.0f);
    free(A), free(B);
}

/* The _tp variants over 1, 2 and 3 threads: the same bits as the plain ops (sizes above
 * the thresholds below which they stay on one thread); the bf16 linear layer's bias terms
 * the same with and without the pool. */
static void test_ops_threads(void) {
    enum { N = 96, H = 4, D = 32, C = H * D, V = 40, F = 3 * C };
    float *x = rand_buf(N * C, 1.0f), *w = rand_buf(C, 1.0f), *dy = rand_buf(N * C, 1.0f);
    float *g = rand_buf(N * F, 2.0f), *u = rand_buf(N * F, 1.0f), *dg = rand_buf(N * F, 1.0f);
    float invf[D / 2];
    rope_freqs(invf, D, 10000.0, 0, 0, 0, 0);
    int32_t tok[N], pos[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 7) % V), pos[i] = i % 37;
    /* references: the plain ops */
    float *ry = zeros(N * C), *rr = zeros(N), *rdx = rand_buf(N * C, 1.0f), *rdw = rand_buf(C, 1.0f);
    float *ty = zeros(N * C), *tr = zeros(N), *tdx = malloc(N * C * sizeof(float)), *tdw = malloc(C * sizeof(float));
    memcpy(tdx, rdx, N * C * sizeof(float));
    memcpy(tdw, rdw, C * sizeof(float));
    float *rdx0 = malloc(N * C * sizeof(float)), *rdw0 = malloc(C * sizeof(float));
    memcpy(rdx0, rdx, N * C * sizeof(float));
    memcpy(rdw0, rdw, C * sizeof(float));
    sa_tr_rmsnorm_fwd(ry, rr, x, w, N, C, 1e-6f, true);
    sa_tr_rmsnorm_bwd(rdx, rdw, dy, x, w, rr, N, C, true);
    float *rq = zeros(N * C), *rdq = rand_buf(N * C, 1.0f), *rdq0 = malloc(N * C * sizeof(float));
    memcpy(rdq0, rdq, N * C * sizeof(float));
    sa_tr_rope_fwd(rq, x, pos, invf, N, H, D, D, SA_ROPE_NEOX);
    sa_tr_rope_bwd(rdq, dy, pos, invf, N, H, D, D, SA_ROPE_NEOX);
    float *ra[2], *rdg[2], *rdu[2];
    for (int k = 0; k < 2; k++) {
        ra[k] = zeros(N * F), rdg[k] = zeros(N * F), rdu[k] = zeros(N * F);
        sa_tr_glu_fwd(ra[k], g, u, N * F, k ? SA_TR_GLU_GEGLU : SA_TR_GLU_SWIGLU);
        sa_tr_glu_bwd(rdg[k], rdu[k], dg, g, u, N * F, k ? SA_TR_GLU_GEGLU : SA_TR_GLU_SWIGLU);
    }
    float *rres = zeros(N * C), *remb = zeros(V * C);
    sa_tr_residual_fwd(rres, x, dy, N * C);
    sa_tr_embedding_bwd(remb, dy, tok, N, C);
    struct sa_param_ref pr[3] = {{x, g, N * F / 2, true}, {w, u, 1000, false}, {dy, dg, N * C, true}};
    double rnorm = sa_grad_global_norm(pr, 3);
    for (int th = 1; th <= 3; th++) {
        struct sa_threadpool *tp = NULL;
        if (th > 1) CHECK_OK(sa_threadpool_init(th, &tp));
        memcpy(tdx, rdx0, N * C * sizeof(float));
        memcpy(tdw, rdw0, C * sizeof(float));
        sa_tr_rmsnorm_fwd_tp(tp, ty, tr, x, w, N, C, 1e-6f, true);
        sa_tr_rmsnorm_bwd_tp(tp, tdx, tdw, dy, x, w, tr, N, C, true);
        CHECK(!memcmp(ty, ry, N * C * sizeof(float)) && !memcmp(tr, rr, N * sizeof(float)));
        CHECK(!memcmp(tdx, rdx, N * C * sizeof(float)) && !memcmp(tdw, rdw, C * sizeof(float)));
        memcpy(tdx, rdq0, N * C * sizeof(float));
        sa_tr_rope_fwd_tp(tp, ty, x, pos, invf, N, H, D, D, SA_ROPE_NEOX);
        sa_tr_rope_bwd_tp(tp, tdx, dy, pos, invf, N, H, D, D, SA_ROPE_NEOX);
        CHECK(!memcmp(ty, rq, N * C * sizeof(float)) && !memcmp(tdx, rdq, N * C * sizeof(float)));
        for (int k = 0; k < 2; k++) {
            float *ta = zeros(N * F), *tg = zeros(N * F), *tu = zeros(N * F);
            sa_tr_glu_fwd_tp(tp, ta, g, u, N * F, k ? SA_TR_GLU_GEGLU : SA_TR_GLU_SWIGLU);
            sa_tr_glu_bwd_tp(tp, tg, tu, dg, g, u, N * F, k ? SA_TR_GLU_GEGLU : SA_TR_GLU_SWIGLU);
            CHECK(!memcmp(ta, ra[k], N * F * sizeof(float)) && !memcmp(tg, rdg[k], N * F * sizeof(float)) &&
                  !memcmp(tu, rdu[k], N * F * sizeof(float)));
            free(ta), free(tg), free(tu);
        }
        float *temb = zeros(V * C);
        sa_tr_residual_fwd_tp(tp, ty, x, dy, N * C);
        sa_tr_embedding_bwd_tp(tp, temb, dy, tok, N, C);
        CHECK(!memcmp(ty, rres, N * C * sizeof(float)) && !memcmp(temb, remb, V * C * sizeof(float)));
        free(temb);
        CHECK(sa_grad_global_norm_tp(tp, pr, 3) == rnorm);
        /* the bf16 linear layer's bias and bias gradient (f32, on the pool) */
        float *y1 = zeros(N * F), *y2 = zeros(N * F), *dx1 = zeros(N * C), *dx2 = zeros(N * C);
        float *db1 = zeros(F), *db2 = zeros(F), *W = rand_buf(F * C, 0.1f);
        sa_tr_linear_fwd_bf16(NULL, y1, x, W, u, N, C, F);
        sa_tr_linear_fwd_bf16(tp, y2, x, W, u, N, C, F);
        sa_tr_linear_bwd_bf16(NULL, dx1, NULL, db1, dg, x, W, N, C, F);
        sa_tr_linear_bwd_bf16(tp, dx2, NULL, db2, dg, x, W, N, C, F);
        CHECK(!memcmp(y1, y2, N * F * sizeof(float)) && !memcmp(dx1, dx2, N * C * sizeof(float)) &&
              !memcmp(db1, db2, F * sizeof(float)));
        free(y1), free(y2), free(dx1), free(dx2), free(db1), free(db2), free(W);
        sa_threadpool_free(tp);
    }
    /* clipping and AdamW: element-wise over the concatenation */
    float *gs[2], *ps[2];
    for (int t = 0; t < 2; t++) {
        struct sa_threadpool *tp = NULL;
        if (t) CHECK_OK(sa_threadpool_init(3, &tp));
        gs[t] = malloc(N * F * sizeof(float)), ps[t] = malloc(N * F * sizeof(float));
        memcpy(gs[t], g, N * F * sizeof(float));
        memcpy(ps[t], u, N * F * sizeof(float));
        struct sa_param_ref q[2] = {{ps[t], gs[t], 777, true}, {ps[t] + 777, gs[t] + 777, N * F - 777, false}};
        struct sa_adamw opt;
        CHECK_OK(sa_adamw_init(&opt, N * F));
        struct sa_adamw_cfg cfg = sa_adamw_default_cfg();
        for (int s = 0; s < 3; s++) {
            memcpy(gs[t], g, N * F * sizeof(float)); /* norm ~ 90: clipped every step */
            CHECK(sa_grad_clip_tp(tp, q, 2, 1.0) > 1.0);
            CHECK_OK(sa_adamw_step_tp(tp, &opt, &cfg, 1e-3f, q, 2));
        }
        sa_adamw_free(&opt);
        sa_threadpool_free(tp);
    }
    CHECK(!memcmp(gs[0], gs[1], N * F * sizeof(float)) && !memcmp(ps[0], ps[1], N * F * sizeof(float)));
    for (int t = 0; t < 2; t++) free(gs[t]), free(ps[t]);
    for (int k = 0; k < 2; k++) free(ra[k]), free(rdg[k]), free(rdu[k]);
    free(x), free(w), free(dy), free(g), free(u), free(dg), free(ry), free(rr), free(rdx), free(rdw), free(ty), free(tr);
    free(tdx), free(tdw), free(rdx0), free(rdw0), free(rq), free(rdq), free(rdq0), free(rres), free(remb);
}

int main(void) {
    sa_rng_seed(&rng, 42);
    RUN(test_embedding);
    RUN(test_rmsnorm);
    RUN(test_linear);
    RUN(test_linear_blas_vs_ref);
    RUN(test_rope);
    RUN(test_attention);
    RUN(test_glu_residual);
    RUN(test_cross_entropy);
    RUN(test_lora);
    RUN(test_ops_threads);
    return harness_summary();
}
