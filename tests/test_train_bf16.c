/* test_train_bf16.c: the bf16 GEMM of mixed-precision training (src/train/gemm_bf16*.c)
 * against its plain-C reference: RNE rounding, every transposition, odd shapes (M, N, K not
 * multiples of the 12 x 32 tile or of the KC/MC/NC blocks, odd K), alpha/beta, strides,
 * threads; and that the result is bf16 arithmetic, not f32. Also the bf16 linear layer and
 * attention with bf16 products. */
#include "harness.h"
#include "train/ops_train_impl.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>

static uint32_t rng_state = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xFFFFFF) / (float)(1 << 23) - 1.0f;
}
static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_round(void) {
    CHECK_EQ_INT(sa_tr_bf16_bits(1.0f), 0x3F80);
    CHECK_EQ_INT(sa_tr_bf16_bits(bits_f(0x3F808000u)), 0x3F80); /* tie, even below */
    CHECK_EQ_INT(sa_tr_bf16_bits(bits_f(0x3F818000u)), 0x3F82); /* tie, even above */
    CHECK_EQ_INT(sa_tr_bf16_bits(bits_f(0x3F808001u)), 0x3F81); /* above the tie */
    CHECK_EQ_INT(sa_tr_bf16_bits(bits_f(0xBF807FFFu)), 0xBF80); /* below the tie, negative */
    CHECK_EQ_INT(sa_tr_bf16_bits(bits_f(0x7F7FFFFFu)), 0x7F80); /* FLT_MAX rounds to inf (as torch) */
    CHECK_EQ_INT(sa_tr_bf16_bits(INFINITY), 0x7F80);
    CHECK_EQ_INT(sa_tr_bf16_bits(bits_f(0x00000001u)), 0x0000); /* denormals are rounded, not flushed */
    CHECK_EQ_INT(sa_tr_bf16_bits(bits_f(0x00018000u)), 0x0002);
    uint16_t n = sa_tr_bf16_bits(bits_f(0x7F800001u)); /* signalling NaN -> quiet NaN */
    CHECK((n & 0x7F80) == 0x7F80 && (n & 0x7F) != 0);
    CHECK(sa_tr_bf16_round(0.1f) == bits_f(0x3DCD0000u));
}

struct shape {
    int64_t M, N, K;
};

/* max over elements of |got - want| / (|alpha| sum_k |a b| + |beta c0| + tiny) */
static double rel_err(const float *got, const float *want, const float *A, const float *B, const float *C0, bool tA,
                      bool tB, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc, float alpha,
                      float beta) {
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                float a = tA ? A[k * lda + i] : A[i * lda + k], b = tB ? B[j * ldb + k] : B[k * ldb + j];
                s += fabs((double)a * b);
            }
            s = fabs(alpha) * s + (beta != 0 ? fabs((double)beta * C0[i * ldc + j]) : 0) + 1e-30;
            double e = fabs((double)got[i * ldc + j] - want[i * ldc + j]) / s;
            if (e > worst) worst = e;
        }
    return worst;
}

static void check_path(enum sa_tr_gemm_path path, struct sa_threadpool *tp, const char *name) {
    static const struct shape shapes[] = {{1, 1, 1},    {13, 33, 7},   {25, 65, 31},  {12, 32, 256}, {37, 70, 513},
                                          {250, 40, 3}, {3, 250, 300}, {245, 47, 258}, {5, 2100, 40}, {17, 1, 9}};
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}};
    int n_cases = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int t = 0; t < 4; t++)
            for (int a = 0; a < 3; a++) {
                bool tA = t & 1, tB = t & 2;
                int64_t M = shapes[si].M, N = shapes[si].N, K = shapes[si].K;
                int64_t lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 5, ldc = N + 2;
                int64_t na = (tA ? K : M) * lda, nb = (tB ? N : K) * ldb, nc = M * ldc;
                float *A = malloc(na * 4), *B = malloc(nb * 4), *C0 = malloc(nc * 4), *Cr = malloc(nc * 4),
                      *Cf = malloc(nc * 4);
                for (int64_t i = 0; i < na; i++) A[i] = frand();
                for (int64_t i = 0; i < nb; i++) B[i] = frand() * 3.0f;
                for (int64_t i = 0; i < nc; i++) C0[i] = frand();
                float alpha = ab[a][0], beta = ab[a][1];
                memcpy(Cr, C0, nc * 4);
                memcpy(Cf, C0, nc * 4);
                if (beta == 0.0f) /* C must not be read: NaN there must not leak */
                    for (int64_t i = 0; i < nc; i++) Cf[i] = NAN;
                sa_tr_gemm_bf16_path(SA_TR_GEMM_REF, NULL, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Cr, ldc);
                sa_tr_gemm_bf16_path(path, tp, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Cf, ldc);
                /* f32 sums of K exact products: K * 2^-24 relative to sum |a b| (plus the beta term) */
                double e = rel_err(Cf, Cr, A, B, C0, tA, tB, M, N, K, lda, ldb, ldc, alpha, beta);
                double tol = (double)(K + 2) * 6e-8;
                CHECK_MSG(e <= tol, "%s M=%lld N=%lld K=%lld tA=%d tB=%d alpha=%g beta=%g: rel err %g > %g", name,
                          (long long)M, (long long)N, (long long)K, tA, tB, alpha, beta, e, tol);
                /* the padding columns of C are untouched */
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = N; j < ldc; j++)
                        CHECK_MSG(Cf[i * ldc + j] == C0[i * ldc + j] || (beta == 0 && isnan(Cf[i * ldc + j])),
                                  "%s wrote outside C", name);
                n_cases++;
                free(A), free(B), free(C0), free(Cr), free(Cf);
            }
    CHECK(n_cases == 120);
}

static void test_gemm_generic(void) { check_path(SA_TR_GEMM_GENERIC, NULL, "generic"); }

static void test_gemm_avx512(void) {
    if (!sa_tr_gemm_bf16_fast_available()) {
        harness_skip("no AVX512-BF16 on this CPU: the portable path is used");
        return;
    }
    check_path(SA_TR_GEMM_AVX512BF16, NULL, "avx512bf16");
    struct sa_threadpool *tp = NULL;
    CHECK_OK(sa_threadpool_init(3, &tp));
    check_path(SA_TR_GEMM_AVX512BF16, tp, "avx512bf16 x3 threads");
    /* bit-identical for any thread count */
    int64_t M = 77, N = 301, K = 129;
    float *A = malloc(M * K * 4), *B = malloc(K * N * 4), *C1 = malloc(M * N * 4), *C2 = malloc(M * N * 4);
    for (int64_t i = 0; i < M * K; i++) A[i] = frand();
    for (int64_t i = 0; i < K * N; i++) B[i] = frand();
    for (int t = 0; t < 4; t++) {
        bool tA = t & 1, tB = t & 2;
        sa_tr_gemm_bf16_path(SA_TR_GEMM_AVX512BF16, NULL, tA, tB, M, N, K, 1.0f, A, tA ? M : K, B, tB ? K : N, 0.0f,
                             C1, N);
        sa_tr_gemm_bf16_path(SA_TR_GEMM_AVX512BF16, tp, tA, tB, M, N, K, 1.0f, A, tA ? M : K, B, tB ? K : N, 0.0f, C2,
                             N);
        CHECK(memcmp(C1, C2, M * N * 4) == 0);
    }
    free(A), free(B), free(C1), free(C2);
    sa_threadpool_free(tp);
}

/* a pre-packed B gives the same bits as packing on the fly */
static void test_prepacked(void) {
    if (!sa_tr_gemm_bf16_packed_bytes(8, 8)) {
        harness_skip("no AVX512-BF16: no pre-packed path");
        return;
    }
    static const struct shape shapes[] = {{7, 2100, 300}, {130, 45, 777}, {1, 33, 1}, {40, 64, 513}};
    struct sa_threadpool *tp = NULL;
    CHECK_OK(sa_threadpool_init(2, &tp));
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int t = 0; t < 4; t++) {
            bool tA = t & 1, tB = t & 2;
            int64_t M = shapes[si].M, N = shapes[si].N, K = shapes[si].K;
            int64_t lda = tA ? M : K, ldb = tB ? K : N;
            float *A = malloc(M * K * 4), *B = malloc(K * N * 4), *C1 = malloc(M * N * 4), *C2 = malloc(M * N * 4);
            for (int64_t i = 0; i < M * K; i++) A[i] = frand();
            for (int64_t i = 0; i < K * N; i++) B[i] = frand();
            for (int64_t i = 0; i < M * N; i++) C1[i] = C2[i] = frand();
            size_t bytes = sa_tr_gemm_bf16_packed_bytes(K, N);
            void *pk = aligned_alloc(64, (bytes + 63) / 64 * 64);
            sa_tr_gemm_bf16_pack(tp, tB, K, N, B, ldb, pk);
            sa_tr_gemm_bf16(tp, tA, tB, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C1, N);
            sa_tr_gemm_bf16_prepacked(si % 2 ? tp : NULL, tA, M, N, K, 0.5f, A, lda, pk, 1.0f, C2, N);
            CHECK_MSG(memcmp(C1, C2, M * N * 4) == 0, "prepacked M=%lld N=%lld K=%lld tA=%d tB=%d", (long long)M,
                      (long long)N, (long long)K, tA, tB);
            free(A), free(B), free(C1), free(C2), free(pk);
        }
    sa_threadpool_free(tp);
}

/* The products are bf16's, not f32's: against the f32 GEMM the error is of the order of
 * bf16's 2^-9 relative rounding (a few 1e-4 of sum |a b| for random signs), far above what
 * an f32 kernel would give (~1e-7). */
static void test_is_bf16(void) {
    int64_t M = 40, N = 50, K = 64;
    float *A = malloc(M * K * 4), *B = malloc(K * N * 4), *Cb = malloc(M * N * 4), *Cf = malloc(M * N * 4);
    for (int64_t i = 0; i < M * K; i++) A[i] = frand();
    for (int64_t i = 0; i < K * N; i++) B[i] = frand();
    sa_tr_gemm_bf16(NULL, false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, Cb, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, (int)N, 0.0f, Cf,
                (int)N);
    double e = rel_err(Cb, Cf, A, B, NULL, false, false, M, N, K, K, N, N, 1.0f, 0.0f);
    printf("  bf16 GEMM vs f32 GEMM: max error / sum|ab| = %.3g\n", e);
    CHECK(e > 2e-5);
    CHECK(e < 4e-3);
    free(A), free(B), free(Cb), free(Cf);
}

/* the bf16 linear layer = the f32 reference on bf16-rounded inputs */
static void test_linear_bf16(void) {
    int64_t N = 29, C = 45, OC = 70;
    float *x = malloc(N * C * 4), *W = malloc(OC * C * 4), *b = malloc(OC * 4), *dy = malloc(N * OC * 4);
    float *xr = malloc(N * C * 4), *Wr = malloc(OC * C * 4), *dyr = malloc(N * OC * 4);
    float *y1 = malloc(N * OC * 4), *y2 = malloc(N * OC * 4);
    float *dx1 = calloc(N * C, 4), *dx2 = calloc(N * C, 4), *dW1 = calloc(OC * C, 4), *dW2 = calloc(OC * C, 4);
    float *db1 = calloc(OC, 4), *db2 = calloc(OC, 4);
    for (int64_t i = 0; i < N * C; i++) x[i] = frand(), xr[i] = sa_tr_bf16_round(x[i]);
    for (int64_t i = 0; i < OC * C; i++) W[i] = frand() * 0.2f, Wr[i] = sa_tr_bf16_round(W[i]);
    for (int64_t i = 0; i < N * OC; i++) dy[i] = frand(), dyr[i] = sa_tr_bf16_round(dy[i]);
    for (int64_t i = 0; i < OC; i++) b[i] = frand();
    sa_tr_linear_fwd_bf16(NULL, y1, x, W, b, N, C, OC);
    sa_tr_linear_fwd_ref(y2, xr, Wr, b, N, C, OC);
    for (int64_t i = 0; i < N * OC; i++) CHECK_NEAR(y1[i], y2[i], 2e-5);
    for (int64_t i = 0; i < N * C; i++) dx1[i] = dx2[i] = 0.5f; /* accumulates */
    sa_tr_linear_bwd_bf16(NULL, dx1, dW1, db1, dy, x, W, N, C, OC);
    /* dbias is summed from the f32 dy (not rounded) */
    float *dbr = calloc(OC, 4);
    sa_tr_linear_bwd_ref(dx2, dW2, dbr, dyr, xr, Wr, N, C, OC);
    for (int64_t i = 0; i < N; i++)
        for (int64_t o = 0; o < OC; o++) db2[o] += dy[i * OC + o];
    for (int64_t i = 0; i < N * C; i++) CHECK_NEAR(dx1[i] - 0.5f, dx2[i] - 0.5f, 2e-5);
    for (int64_t i = 0; i < OC * C; i++) CHECK_NEAR(dW1[i], dW2[i], 2e-5);
    for (int64_t i = 0; i < OC; i++) CHECK_NEAR(db1[i], db2[i], 1e-5);
    free(x), free(W), free(b), free(dy), free(xr), free(Wr), free(dyr), free(y1), free(y2);
    free(dx1), free(dx2), free(dW1), free(dW2), free(db1), free(db2), free(dbr);
}

/* attention with bf16 products follows the f32 one within bf16 rounding, is the same for
 * 1 and 2 threads, and keeps its mask (row 0 sees only key 0: out = bf16(v[0])) */
static void test_attention_bf16(void) {
    struct sa_tr_attn a = {.B = 2, .T = 37, .n_head = 4, .n_head_kv = 2, .head_dim = 16, .window = 0, .scale = 0.25f};
    int64_t nq = a.B * a.T * a.n_head * a.head_dim, nk = a.B * a.T * a.n_head_kv * a.head_dim;
    int64_t nl = a.B * a.n_head * a.T;
    float *scratch = malloc(sa_tr_attention_scratch_floats(a.T) * 4);
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *R = malloc(nq * 4);
    for (int64_t i = 0; i < nq; i++) q[i] = frand(), R[i] = frand();
    for (int64_t i = 0; i < nk; i++) k[i] = frand(), v[i] = frand();
    float *o[3], *l[3], *dq[3], *dk[3], *dv[3];
    struct sa_threadpool *tp = NULL;
    CHECK_OK(sa_threadpool_init(2, &tp));
    for (int r = 0; r < 3; r++) { /* 0: f32, 1: bf16, 2: bf16 on 2 threads */
        a.scratch = scratch;
        a.bf16 = r > 0;
        o[r] = malloc(nq * 4), l[r] = malloc(nl * 4);
        dq[r] = calloc(nq, 4), dk[r] = calloc(nk, 4), dv[r] = calloc(nk, 4);
        sa_tr_attention_fwd(r == 2 ? tp : NULL, &a, o[r], l[r], q, k, v);
        sa_tr_attention_bwd(r == 2 ? tp : NULL, &a, dq[r], dk[r], dv[r], R, o[r], l[r], q, k, v);
    }
    double e_o = 0, e_g = 0;
    for (int64_t i = 0; i < nq; i++) e_o = fmax(e_o, fabs(o[1][i] - o[0][i]));
    for (int64_t i = 0; i < nq; i++) e_g = fmax(e_g, fabs(dq[1][i] - dq[0][i]));
    for (int64_t i = 0; i < nk; i++) e_g = fmax(e_g, fmax(fabs(dk[1][i] - dk[0][i]), fabs(dv[1][i] - dv[0][i])));
    printf("  attention bf16 vs f32: max |d out| %.3g, max |d grad| %.3g\n", e_o, e_g);
    CHECK(e_o > 1e-5 && e_o < 2e-2);
    CHECK(e_g > 1e-5 && e_g < 5e-2);
    CHECK(memcmp(o[1], o[2], nq * 4) == 0 && memcmp(dq[1], dq[2], nq * 4) == 0 && memcmp(dk[1], dk[2], nk * 4) == 0 &&
          memcmp(dv[1], dv[2], nk * 4) == 0);
    for (int64_t d = 0; d < a.head_dim; d++) CHECK(o[1][d] == sa_tr_bf16_round(v[d]));
    for (int r = 0; r < 3; r++) free(o[r]), free(l[r]), free(dq[r]), free(dk[r]), free(dv[r]);
    free(scratch), free(q), free(k), free(v), free(R);
    sa_threadpool_free(tp);
}

int main(void) {
    RUN(test_round);
    RUN(test_gemm_generic);
    RUN(test_gemm_avx512);
    RUN(test_prepacked);
    RUN(test_is_bf16);
    RUN(test_linear_bf16);
    RUN(test_attention_bf16);
    return harness_summary();
}
