/* gemm_bf16.c: the bf16 GEMM of mixed-precision training (ops_train_impl.h, issue 4):
 * dispatch, threads, the plain-C reference and the portable path, and the bf16 linear layer.
 *
 * All paths compute C = alpha op(A) op(B) + beta C from the bf16 roundings (RNE) of the f32
 * inputs with f32 (fast) or double (reference) accumulation:
 *   - AVX512-BF16 (gemm_bf16_avx512.c): packs into vdpbf16ps pairs, register-tiled kernel;
 *   - portable (any CPU): rounds blocks of op(A) and op(B) to bf16 values held in f32 and
 *     multiplies them with OpenBLAS sgemm (exact products, f32 sums: the same arithmetic up
 *     to the order of the sums);
 *   - reference: plain C loops, double sums.
 * Threads: the rectangle of C is split over tp's threads (column stripes of 32 when
 * N >= M, else row stripes of 12; 256 and 64 on the portable path, one single-threaded
 * OpenBLAS call each); each thread packs its own operands. */
#include "train/gemm_bf16_impl.h"
#include "train/ops_train_impl.h"
#include "core/core_impl.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

uint16_t sa_tr_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u | 0x00400000u) >> 16); /* NaN stays a quiet NaN */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float sa_tr_bf16_round(float x) {
    uint32_t u = (uint32_t)sa_tr_bf16_bits(x) << 16;
    float y;
    memcpy(&y, &u, 4);
    return y;
}

static inline float opA(const struct sa_tr_gemm *g, int64_t i, int64_t k) {
    return g->transA ? g->A[k * g->lda + i] : g->A[i * g->lda + k];
}
static inline float opB(const struct sa_tr_gemm *g, int64_t k, int64_t j) {
    return g->transB ? g->B[j * g->ldb + k] : g->B[k * g->ldb + j];
}

static void scale_c(const struct sa_tr_gemm *g) {
    for (int64_t i = 0; i < g->M; i++)
        for (int64_t j = 0; j < g->N; j++) {
            float *c = g->C + i * g->ldc + j;
            *c = g->beta == 0.0f ? 0.0f : g->beta * *c;
        }
}

static void ref_rect(const struct sa_tr_gemm *g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    for (int64_t i = m0; i < m1; i++)
        for (int64_t j = n0; j < n1; j++) {
            double acc = 0.0;
            for (int64_t k = 0; k < g->K; k++)
                acc += (double)sa_tr_bf16_round(opA(g, i, k)) * (double)sa_tr_bf16_round(opB(g, k, j));
            float *c = g->C + i * g->ldc + j;
            double prev = g->beta == 0.0f ? 0.0 : (double)g->beta * *c;
            *c = (float)((double)g->alpha * acc + prev);
        }
}
static void ref(const struct sa_tr_gemm *g) { ref_rect(g, 0, g->M, 0, g->N); }

/* Portable path over rows [m0, m1) x columns [n0, n1): blocks of op(A) (mb, kb) and op(B)
 * (kb, nb) rounded into f32 buffers, then sgemm. */
enum { GB_M = 512, GB_N = 2048, GB_K = 256 };
static bool generic_rect(const struct sa_tr_gemm *g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    float *a = malloc((size_t)GB_M * GB_K * sizeof(float)), *b = malloc((size_t)GB_K * GB_N * sizeof(float));
    if (!a || !b) {
        free(a);
        free(b);
        return false;
    }
    for (int64_t i0 = m0; i0 < m1; i0 += GB_M) {
        int64_t mb = SA_MIN(GB_M, m1 - i0);
        for (int64_t j0 = n0; j0 < n1; j0 += GB_N) {
            int64_t nb = SA_MIN(GB_N, n1 - j0);
            for (int64_t k0 = 0; k0 < g->K; k0 += GB_K) {
                int64_t kb = SA_MIN(GB_K, g->K - k0);
                for (int64_t i = 0; i < mb; i++) /* a (mb, kb) */
                    for (int64_t k = 0; k < kb; k++) a[i * kb + k] = sa_tr_bf16_round(opA(g, i0 + i, k0 + k));
                for (int64_t k = 0; k < kb; k++) /* b (kb, nb) */
                    for (int64_t j = 0; j < nb; j++) b[k * nb + j] = sa_tr_bf16_round(opB(g, k0 + k, j0 + j));
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)mb, (blasint)nb, (blasint)kb, g->alpha,
                            a, (blasint)kb, b, (blasint)nb, k0 == 0 ? g->beta : 1.0f, g->C + i0 * g->ldc + j0,
                            (blasint)g->ldc);
            }
        }
    }
    free(a);
    free(b);
    return true;
}

bool sa_tr_gemm_bf16_fast_available(void) {
#if defined(__x86_64__)
    static int cached = -1; /* -1: not checked yet (any thread may check: same answer) */
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        __builtin_cpu_init();
        c = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512bf16");
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return c == 1;
#else
    return false;
#endif
}

struct gemm_task {
    const struct sa_tr_gemm *g;
    enum sa_tr_gemm_path path;
    bool split_n;
    int64_t units, unit; /* stripes of `unit` columns (split_n) or rows */
};

static void gemm_share(void *ctx, int ith, int nth) {
    struct gemm_task *t = ctx;
    const struct sa_tr_gemm *g = t->g;
    int64_t u0 = t->units * ith / nth, u1 = t->units * (ith + 1) / nth;
    int64_t lim = t->split_n ? g->N : g->M;
    int64_t a = SA_MIN(u0 * t->unit, lim), b = SA_MIN(u1 * t->unit, lim);
    if (a >= b) return;
    int64_t m0 = t->split_n ? 0 : a, m1 = t->split_n ? g->M : b;
    int64_t n0 = t->split_n ? a : 0, n1 = t->split_n ? b : g->N;
    bool ok = true;
    if (t->path == SA_TR_GEMM_AVX512BF16) ok = sa_tr_gemm_bf16_avx512_rect(g, m0, m1, n0, n1);
    else /* one OpenBLAS call per unit, whatever the share: the same bits for any thread count */
        for (int64_t u = u0; u < u1 && ok; u++) {
            int64_t ua = SA_MIN(u * t->unit, lim), ub = SA_MIN((u + 1) * t->unit, lim);
            ok = t->split_n ? generic_rect(g, 0, g->M, ua, ub) : generic_rect(g, ua, ub, 0, g->N);
            if (!ok) { /* the reference for the rest of the share */
                m0 = t->split_n ? 0 : ua;
                n0 = t->split_n ? ua : 0;
            }
        }
    /* out of memory for the packing buffer (nothing written yet): the reference, which
     * allocates nothing (never with a pre-packed B: nothing to allocate then) */
    if (!ok) ref_rect(g, m0, m1, n0, n1);
}

void sa_tr_gemm_bf16_path(enum sa_tr_gemm_path path, struct sa_threadpool *tp, bool transA, bool transB, int64_t M,
                          int64_t N, int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                          float beta, float *C, int64_t ldc) {
    struct sa_tr_gemm g = {transA, transB, M, N, K, alpha, beta, A, lda, B, ldb, C, ldc, NULL};
    if (M <= 0 || N <= 0) return;
    if (path == SA_TR_GEMM_AUTO)
        path = sa_tr_gemm_bf16_fast_available() ? SA_TR_GEMM_AVX512BF16 : SA_TR_GEMM_GENERIC;
    if (path == SA_TR_GEMM_AVX512BF16 && !sa_tr_gemm_bf16_fast_available()) path = SA_TR_GEMM_GENERIC;
    if (path == SA_TR_GEMM_REF) {
        ref(&g);
        return;
    }
    if (K <= 0 || alpha == 0.0f) {
        scale_c(&g);
        return;
    }
    struct gemm_task t = {&g, path, N >= M, 0, 0};
    /* generic: stripes of 256 columns or 64 rows, each one single-threaded OpenBLAS call
     * (ops_train_impl.h: OpenBLAS's own threading changes the bits with the thread count) */
    t.unit = path == SA_TR_GEMM_GENERIC ? (t.split_n ? 256 : 64) : (t.split_n ? SA_BF16_NR : SA_BF16_MR);
    t.units = ((t.split_n ? N : M) + t.unit - 1) / t.unit;
    sa_threadpool_run(tp, gemm_share, &t);
}

void sa_tr_gemm_bf16(struct sa_threadpool *tp, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    sa_tr_gemm_bf16_path(SA_TR_GEMM_AUTO, tp, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- pre-packed op(B) ---- */

size_t sa_tr_gemm_bf16_packed_bytes(int64_t K, int64_t N) {
    if (!sa_tr_gemm_bf16_fast_available() || K <= 0 || N <= 0) return 0;
    return sa_tr_gemm_bf16_avx512_packed_bytes(K, N);
}

struct pack_task {
    const struct sa_tr_gemm *g;
    uint32_t *dst;
};
static void pack_share(void *ctx, int ith, int nth) {
    struct pack_task *t = ctx;
    int64_t np = (t->g->N + SA_BF16_NR - 1) / SA_BF16_NR;
    sa_tr_gemm_bf16_avx512_pack(t->g, np * ith / nth, np * (ith + 1) / nth, t->dst);
}

void sa_tr_gemm_bf16_pack(struct sa_threadpool *tp, bool transB, int64_t K, int64_t N, const float *B, int64_t ldb,
                          void *packed) {
    SA_ASSERT(sa_tr_gemm_bf16_packed_bytes(K, N) > 0);
    struct sa_tr_gemm g = {false, transB, 0, N, K, 1.0f, 0.0f, NULL, 0, B, ldb, NULL, 0, NULL};
    struct pack_task t = {&g, packed};
    sa_threadpool_run(tp, pack_share, &t);
}

void sa_tr_gemm_bf16_prepacked(struct sa_threadpool *tp, bool transA, int64_t M, int64_t N, int64_t K, float alpha,
                               const float *A, int64_t lda, const void *packed, float beta, float *C, int64_t ldc) {
    SA_ASSERT(sa_tr_gemm_bf16_packed_bytes(K, N) > 0);
    struct sa_tr_gemm g = {transA, false, M, N, K, alpha, beta, A, lda, NULL, 0, C, ldc, packed};
    if (M <= 0 || N <= 0) return;
    if (alpha == 0.0f) {
        scale_c(&g);
        return;
    }
    struct gemm_task t = {&g, SA_TR_GEMM_AVX512BF16, N >= M, 0, 0};
    t.unit = t.split_n ? SA_BF16_NR : SA_BF16_MR;
    t.units = ((t.split_n ? N : M) + t.unit - 1) / t.unit;
    sa_threadpool_run(tp, gemm_share, &t);
}

/* ---- the linear layer with bf16 products (fp32 bias, fp32 outputs and gradients) ---- */

/* The bias in f32 on tp's threads: the forward adds it to rows [lo, hi) of out; the backward
 * sums dout over every row, in order, for its columns (the one-thread loop's additions). */
struct bias_task {
    float *out;
    const float *bias;
    int64_t N, OC;
    bool bwd;
};

static void bias_run(void *ctx, int ith, int nth) {
    const struct bias_task *t = ctx;
    const int64_t OC = t->OC;
    int64_t lo, hi;
    if (!t->bwd) {
        sa_tr_share(t->N, 1, ith, nth, &lo, &hi);
        for (int64_t i = lo; i < hi; i++)
            for (int64_t o = 0; o < OC; o++) t->out[i * OC + o] += t->bias[o];
    } else {
        sa_tr_share(OC, 16, ith, nth, &lo, &hi);
        for (int64_t i = 0; i < t->N; i++)
            for (int64_t o = lo; o < hi; o++) t->out[o] += t->bias[i * OC + o];
    }
}

void sa_tr_linear_fwd_bf16(struct sa_threadpool *tp, float *out, const float *inp, const float *W, const float *bias,
                           int64_t N, int64_t C, int64_t OC) {
    /* out (N, OC) = inp (N, C) @ W^T (C, OC) */
    sa_tr_gemm_bf16(tp, false, true, N, OC, C, 1.0f, inp, C, W, C, 0.0f, out, OC);
    if (bias) {
        struct bias_task t = {out, bias, N, OC, false};
        sa_threadpool_run(N * OC >= 8192 ? tp : NULL, bias_run, &t);
    }
}

void sa_tr_linear_bwd_bf16(struct sa_threadpool *tp, float *dinp, float *dW, float *dbias, const float *dout,
                           const float *inp, const float *W, int64_t N, int64_t C, int64_t OC) {
    /* dinp (N, C) += dout (N, OC) @ W (OC, C) */
    sa_tr_gemm_bf16(tp, false, false, N, C, OC, 1.0f, dout, OC, W, C, 1.0f, dinp, C);
    /* dW (OC, C) += dout^T (OC, N) @ inp (N, C) */
    if (dW) sa_tr_gemm_bf16(tp, true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dW, C);
    /* dbias (OC) += sum over the rows of dout */
    if (dbias) {
        struct bias_task t = {dbias, dout, N, OC, true};
        sa_threadpool_run(N * OC >= 8192 && OC >= 32 ? tp : NULL, bias_run, &t);
    }
}
