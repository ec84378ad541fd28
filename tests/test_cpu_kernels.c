/* test_cpu_kernels.c: the CPU matrix products (src/backend/cpu) for every weight type and
 * every kernel path this CPU has (ref, avx2, avx512), T in {1,2,3,5,8,17,64}, 1-3 threads,
 * shapes that are not multiples of the tiles. Each result is compared with
 *  (a) sa_matmul_ref (f32 dequantization, double sums) within a bound derived from the 8-bit
 *      activation quantization: |x - d q| <= d/2 = amax_b/254 per element of block b, so
 *      |y - y_ref| <= sum_b (amax_b / 254) * sum_{i in b} |w_i|, plus float rounding;
 *  (b) the `ref` path (the same integer algorithm in plain C): only the order of the float
 *      additions differs, so within 1e-6 of N = 2 sum_b max_b|w| * sum_b |x| (>= every term);
 *  (c) itself with other thread counts: bitwise equal (each output is one kernel call).
 * The prefill GEMMs (T >= their min_T, 2 to 8, on paths that have them) are held to the same
 * bounds, except the BF16 GEMM, which rounds the activations to bf16 (relative error
 * <= 2^-8 per element): there |y - y_ref| <= 2^-8 sum_i |w_i x_i| is added to (a) and (b).
 * n_in up to 2816 covers several slices of the GEMM panels (Y accumulated across slices). */
#define _GNU_SOURCE
#include "harness.h"

#include "backend/cpu/cpu_impl.h"
#include "backend/cpu/kernels_impl.h"
#include "core/core_impl.h"
#include "formats/quant_blocks_impl.h"
#include "sa/dtype.h"

#include <stddef.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd_u32(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rnd_unit(void) { return (float)(rnd_u32() & 0xFFFFFF) / 8388608.0f - 1.0f; } /* [-1, 1) */

static const enum sa_dtype all_types[] = {
    SA_DTYPE_F32,  SA_DTYPE_F16,  SA_DTYPE_BF16, SA_DTYPE_Q8_0, SA_DTYPE_Q4_0, SA_DTYPE_Q4_1, SA_DTYPE_Q5_0, SA_DTYPE_Q5_1,
    SA_DTYPE_Q2_K, SA_DTYPE_Q3_K, SA_DTYPE_Q4_K, SA_DTYPE_Q5_K, SA_DTYPE_Q6_K, SA_DTYPE_Q8_1, SA_DTYPE_Q8_K,
};

static void put_f16(uint8_t *p, float v) {
    uint16_t h = sa_f32_to_f16(v);
    memcpy(p, &h, 2);
}

/* n_out rows of n_in random weights of type t: sa_quantize of random floats where it is
 * supported, else random bytes with sane f16 scales (every bit pattern of the quants and
 * of the K-quant sub-block scales is a valid block). */
static void *make_weights(enum sa_dtype t, int64_t n_in, int64_t n_out, size_t *row_bytes_out) {
    uint64_t rb = 0;
    CHECK(sa_dtype_row_bytes(t, (uint64_t)n_in, &rb));
    *row_bytes_out = (size_t)rb;
    uint8_t *w = malloc((size_t)rb * (size_t)n_out);
    float *tmp = malloc((size_t)n_in * sizeof(float));
    size_t bs = sa_dtype_block_size(t), ts = sa_dtype_type_size(t);
    for (int64_t r = 0; r < n_out; r++) {
        uint8_t *row = w + (size_t)r * rb;
        if (t == SA_DTYPE_F32 || t == SA_DTYPE_F16 || t == SA_DTYPE_BF16 || t == SA_DTYPE_Q8_0) {
            for (int64_t i = 0; i < n_in; i++) tmp[i] = 0.1f * rnd_unit();
            CHECK_OK(sa_quantize(t, tmp, row, n_in));
            continue;
        }
        for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rnd_u32();
        for (int64_t b = 0; b < n_in / (int64_t)bs; b++) {
            uint8_t *blk = row + (size_t)b * ts;
            float d = 0.002f + 0.01f * (rnd_unit() + 1.0f), m = 0.02f * rnd_unit();
            switch (t) {
            case SA_DTYPE_Q4_0: put_f16(blk + offsetof(sa_block_q4_0, d), d); break;
            case SA_DTYPE_Q5_0: put_f16(blk + offsetof(sa_block_q5_0, d), d); break;
            case SA_DTYPE_Q4_1: put_f16(blk + offsetof(sa_block_q4_1, d), d), put_f16(blk + offsetof(sa_block_q4_1, m), m); break;
            case SA_DTYPE_Q5_1: put_f16(blk + offsetof(sa_block_q5_1, d), d), put_f16(blk + offsetof(sa_block_q5_1, m), m); break;
            case SA_DTYPE_Q8_1: put_f16(blk + offsetof(sa_block_q8_1, d), d * 0.1f), put_f16(blk + offsetof(sa_block_q8_1, s), m); break;
            case SA_DTYPE_Q2_K: put_f16(blk + offsetof(sa_block_q2_K, d), d), put_f16(blk + offsetof(sa_block_q2_K, dmin), d * 0.5f); break;
            case SA_DTYPE_Q3_K: put_f16(blk + offsetof(sa_block_q3_K, d), d * 0.2f); break;
            case SA_DTYPE_Q4_K: put_f16(blk + offsetof(sa_block_q4_K, d), d * 0.1f), put_f16(blk + offsetof(sa_block_q4_K, dmin), d * 0.1f); break;
            case SA_DTYPE_Q5_K: put_f16(blk + offsetof(sa_block_q5_K, d), d * 0.05f), put_f16(blk + offsetof(sa_block_q5_K, dmin), d * 0.1f); break;
            case SA_DTYPE_Q6_K: put_f16(blk + offsetof(sa_block_q6_K, d), d * 0.05f); break;
            case SA_DTYPE_Q8_K: {
                float fd = d * 0.1f;
                memcpy(blk + offsetof(sa_block_q8_K, d), &fd, 4);
                break;
            }
            default: CHECK_MSG(0, "no generator for type %d", (int)t);
            }
        }
    }
    free(tmp);
    return w;
}

/* (T, n_in) activations in [-1, 1] with per-row scales over 4 decades and a few outliers,
 * so that blocks with very different amax occur. */
static float *make_x(int64_t T, int64_t n_in) {
    float *x = malloc((size_t)(T * n_in) * sizeof(float));
    for (int64_t t = 0; t < T; t++) {
        float scale = (float)(t % 4 == 0 ? 1.0 : t % 4 == 1 ? 0.01 : t % 4 == 2 ? 10.0 : 0.3);
        for (int64_t i = 0; i < n_in; i++) x[t * n_in + i] = scale * rnd_unit();
        for (int k = 0; k < 3; k++) x[t * n_in + (int64_t)(rnd_u32() % (uint32_t)n_in)] = 8.0f * scale * rnd_unit();
    }
    return x;
}

static int n_compared, n_bad;
/* per type: max of |y - y_ref| / tol_ref and of |y - y_refpath| / N (reported) */
static double worst_ref, worst_path;

/* One (type, shape, T) case on every available path and thread count. */
static void check_case(enum sa_dtype t, int64_t n_in, int64_t n_out, int64_t T, struct sa_threadpool **pools) {
    size_t rb;
    void *W = make_weights(t, n_in, n_out, &rb);
    float *X = make_x(T, n_in);
    size_t ny = (size_t)(T * n_out);
    float *Yref = malloc(ny * sizeof(float)), *Ypath0 = malloc(ny * sizeof(float)), *Yth0 = malloc(ny * sizeof(float));
    float *Y = malloc((ny + 16) * sizeof(float));
    double *qbound = calloc(ny, sizeof(double)), *N = calloc(ny, sizeof(double)), *bbound = calloc(ny, sizeof(double));
    sa_matmul_ref(t, W, n_in, n_out, X, T, Yref);

    /* the bounds: blocks of the activation kind (32 or 256; 32 for the f32 kinds, whose
     * quantization bound is 0) */
    enum sa_act_kind kind = sa_cpu_act_kind(t);
    int64_t blk = kind == SA_ACT_Q8K ? 256 : 32;
    size_t ts = sa_dtype_type_size(t);
    bool has_m = t == SA_DTYPE_Q4_1 || t == SA_DTYPE_Q5_1;
    float *wrow = malloc((size_t)n_in * sizeof(float));
    for (int64_t r = 0; r < n_out; r++) {
        CHECK_OK(sa_dequantize(t, (const uint8_t *)W + (size_t)r * rb, wrow, n_in));
        for (int64_t tt = 0; tt < T; tt++) {
            const float *x = X + tt * n_in;
            double qb = 0, nn = 0, wx = 0;
            for (int64_t i = 0; i < n_in; i++) wx += fabs((double)wrow[i] * x[i]);
            bbound[tt * n_out + r] = wx / 256.0;
            for (int64_t b = 0; b < n_in; b += blk) {
                double amax = 0, wabs = 0, wmax = 0, xabs = 0;
                for (int64_t i = b; i < SA_MIN(b + blk, n_in); i++) {
                    amax = fmax(amax, fabs(x[i]));
                    wabs += fabs(wrow[i]);
                    wmax = fmax(wmax, fabs(wrow[i]));
                    xabs += fabs(x[i]);
                }
                qb += amax / 254.0 * wabs;
                nn += 2.0 * wmax * xabs;
                if (kind == SA_ACT_Q8_0 || kind == SA_ACT_Q8_1) {
                    /* ggml's fp16 scales: d * q is exact to amax / 254, but the kernels use
                     * d16 = fp16(d), and the _1 types m * fp16(d sum(q)) for m * d sum(q) */
                    float d = (float)amax / 127.0f, d16 = sa_f16_to_f32(sa_f32_to_f16(d)), m = 0.0f;
                    if (has_m) {
                        uint16_t mh;
                        memcpy(&mh, (const uint8_t *)W + (size_t)r * rb + (size_t)(b / 32) * ts + 2, 2);
                        m = fabsf(sa_f16_to_f32(mh));
                    }
                    qb += fabs((double)d - d16) * 127.0 * (wabs + 32.0 * m) + m * (4064.0 * d / 2048.0 + 6e-8);
                }
            }
            qbound[tt * n_out + r] = kind == SA_ACT_F32 ? 0.0 : qb;
            N[tt * n_out + r] = nn;
        }
    }
    free(wrow);

    size_t sb = sa_matmul_scratch_bytes(t, n_in, T);
    uint8_t *scratch = malloc(sb + 64);
    for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
        if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
        const char *kname = sa_matmul_kernel_name_t((enum sa_cpu_path)p, t, T, false);
        bool bf16_act = sa_cpu_gemm_act_kind(t) == SA_ACT_BF16 && !strncmp(kname, "gemm_", 5);
        for (int th = 0; th < 3; th++) {
            memset(scratch, 0xA5, sb + 64);
            for (size_t i = 0; i < ny + 16; i++) Y[i] = -12345.0f;
            sa_matmul_path((enum sa_cpu_path)p, pools[th], t, W, n_in, n_out, X, T, Y, sb ? scratch : NULL, false);
            bool guard_ok = true;
            for (size_t i = 0; i < 64; i++) guard_ok &= scratch[sb + i] == 0xA5;
            for (size_t i = ny; i < ny + 16; i++) guard_ok &= Y[i] == -12345.0f;
            CHECK_MSG(guard_ok, "%s %s: wrote past Y or scratch", sa_dtype_name(t), sa_cpu_path_name((enum sa_cpu_path)p));
            int bad = 0;
            for (size_t i = 0; i < ny; i++) {
                double act_b = bf16_act ? bbound[i] : 0.0; /* bf16 activations: see the header */
                double e_ref = fabs((double)Y[i] - Yref[i]), tol_ref = qbound[i] * 1.0001 + act_b + 2e-5 * N[i] + 1e-30;
                bool ok = e_ref <= tol_ref;
                worst_ref = fmax(worst_ref, e_ref / tol_ref);
                if (p == SA_CPU_PATH_REF && th == 0) Ypath0[i] = Y[i];
                else if (th == 0) {
                    double e_path = fabs((double)Y[i] - Ypath0[i]);
                    ok &= e_path <= act_b + 1e-6 * N[i] + 1e-30;
                    worst_path = fmax(worst_path, e_path / (N[i] + 1e-30));
                }
                n_compared++;
                if (!ok && bad++ < 3) {
                    harness_fail(__FILE__, __LINE__, "%s %s n_in=%lld n_out=%lld T=%lld threads=%d: y[%zu]=%.9g ref=%.9g refpath=%.9g (tol %.3g, N %.3g)",
                                 sa_dtype_name(t), kname, (long long)n_in,
                                 (long long)n_out, (long long)T, th + 1, i, Y[i], Yref[i], Ypath0[i], tol_ref, N[i]);
                }
            }
            n_bad += bad;
            /* (c): same bits for any number of threads */
            if (th == 0) memcpy(Yth0, Y, ny * sizeof(float));
            else CHECK_MSG(!memcmp(Yth0, Y, ny * sizeof(float)), "%s %s T=%lld: %d threads differ from 1",
                           sa_dtype_name(t), sa_cpu_path_name((enum sa_cpu_path)p), (long long)T, th + 1);
        }
    }
    free(scratch);
    free(qbound), free(N), free(bbound), free(Y), free(Yth0), free(Ypath0), free(Yref), free(X), free(W);
}

static struct sa_threadpool *pools[3];

static void test_all_types_paths(void) {
    static const int64_t Ts[] = {1, 2, 3, 4, 5, 8, 17, 64};
    for (size_t k = 0; k < SA_ARRAY_LEN(all_types); k++) {
        enum sa_dtype t = all_types[k];
        CHECK_MSG(sa_matmul_supported(t), "%s not supported", sa_dtype_name(t));
        bool kq = sa_dtype_block_size(t) == 256;
        int64_t n_in_small = kq ? 768 : 608; /* 3 super-blocks / 19 blocks; not a multiple of 16 floats either */
        if (t == SA_DTYPE_F32 || t == SA_DTYPE_F16 || t == SA_DTYPE_BF16) n_in_small = 613; /* odd: scalar tails */
        for (size_t i = 0; i < SA_ARRAY_LEN(Ts); i++) check_case(t, n_in_small, 33, Ts[i], pools);
        /* a larger shape (n_out odd, several chunks per thread) */
        int64_t n_in_big = kq ? 1536 : 1568;
        check_case(t, n_in_big, 577, 1, pools);
        check_case(t, n_in_big, 577, 6, pools);
        /* n_in over one GEMM panel slice; 40 rows: a panel of 8 */
        check_case(t, 2816, 40, 9, pools);
        printf("    %-5s %-22s %-26s max |y-ref|/tol %.3f, max |y-refpath|/N %.2g\n", sa_dtype_name(t),
               sa_matmul_kernel_name(sa_cpu_path_active(), t), sa_matmul_kernel_name_t(sa_cpu_path_active(), t, 64, false),
               worst_ref, worst_path);
        worst_ref = worst_path = 0;
    }
    printf("    %d outputs compared, %d out of tolerance\n", n_compared, n_bad);
}

/* Degenerate inputs: zero activations (d = 0 blocks) and a single output row. */
static void test_edge_cases(void) {
    for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
        if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
        for (size_t k = 0; k < SA_ARRAY_LEN(all_types); k++) {
            enum sa_dtype t = all_types[k];
            size_t rb;
            int64_t n_in = (int64_t)sa_dtype_block_size(t) * 8 < 256 ? 256 : (int64_t)sa_dtype_block_size(t) * 2;
            void *W = make_weights(t, n_in, 1, &rb);
            float *X = calloc((size_t)(3 * n_in), sizeof(float)), Y[3] = {1, 1, 1};
            void *scratch = malloc(sa_matmul_scratch_bytes(t, n_in, 3) + 1);
            sa_matmul_path((enum sa_cpu_path)p, pools[1], t, W, n_in, 1, X, 3, Y, scratch, false);
            CHECK_MSG(Y[0] == 0.0f && Y[1] == 0.0f && Y[2] == 0.0f, "%s %s: zero x gives %g", sa_dtype_name(t),
                      sa_cpu_path_name((enum sa_cpu_path)p), Y[0]);
            sa_matmul_path((enum sa_cpu_path)p, pools[1], t, W, n_in, 0, X, 3, Y, scratch, false); /* no rows: no-op */
            free(scratch), free(X);
            /* the same through the prefill GEMMs (every min_T <= 16) */
            float Y17[17];
            for (int i = 0; i < 17; i++) Y17[i] = 1.0f;
            X = calloc((size_t)(17 * n_in), sizeof(float));
            scratch = malloc(sa_matmul_scratch_bytes(t, n_in, 17) + 1);
            sa_matmul_path((enum sa_cpu_path)p, pools[1], t, W, n_in, 1, X, 17, Y17, scratch, false);
            for (int i = 0; i < 17; i++)
                CHECK_MSG(Y17[i] == 0.0f, "%s %s T=17: zero x gives %g", sa_dtype_name(t), sa_cpu_path_name((enum sa_cpu_path)p), Y17[i]);
            free(scratch), free(X), free(W);
        }
    }
}

/* The kernels must be the ones advertised: every path this CPU has runs a direct kernel for
 * the types the models use (no silent dequantizing fallback). */
static void test_kernel_selection(void) {
    static const enum sa_dtype direct[] = {SA_DTYPE_F32, SA_DTYPE_F16, SA_DTYPE_BF16, SA_DTYPE_Q8_0, SA_DTYPE_Q4_0,
                                           SA_DTYPE_Q4_1, SA_DTYPE_Q5_0, SA_DTYPE_Q4_K, SA_DTYPE_Q6_K};
    for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
        if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
        for (size_t k = 0; k < SA_ARRAY_LEN(direct); k++) {
            const char *name = sa_matmul_kernel_name((enum sa_cpu_path)p, direct[k]);
            CHECK_MSG(name && strcmp(name, "dequant.f32"), "%s on %s: %s", sa_dtype_name(direct[k]),
                      sa_cpu_path_name((enum sa_cpu_path)p), name ? name : "(null)");
            if (p != SA_CPU_PATH_REF) CHECK_MSG(name && !strstr(name, ".ref"), "%s: %s", sa_cpu_path_name((enum sa_cpu_path)p), name);
            /* avx512 runs prefill (T >= 4) through the register-tiled GEMMs; T < 4 through dot;
             * avx2 has GEMMs for the integer quant types (gemm_avx2.c), Q6_K included */
            const char *gname = sa_matmul_kernel_name_t((enum sa_cpu_path)p, direct[k], 64, false);
            bool float_type = direct[k] == SA_DTYPE_F32 || direct[k] == SA_DTYPE_F16 || direct[k] == SA_DTYPE_BF16;
            bool want_gemm = (p == SA_CPU_PATH_AVX512 && (direct[k] != SA_DTYPE_BF16 || __builtin_cpu_supports("avx512bf16"))) ||
                             (p == SA_CPU_PATH_AVX2 && !float_type);
            CHECK_MSG(gname && (strncmp(gname, "gemm_", 5) == 0) == want_gemm, "%s on %s, T=64: %s", sa_dtype_name(direct[k]),
                      sa_cpu_path_name((enum sa_cpu_path)p), gname ? gname : "(null)");
            CHECK_EQ_STR(sa_matmul_kernel_name_t((enum sa_cpu_path)p, direct[k], 1, false), name);
            gname = sa_matmul_kernel_name_t((enum sa_cpu_path)p, direct[k], 1, true);
            CHECK_MSG(gname && (strncmp(gname, "gemm_", 5) == 0) == want_gemm, "%s on %s, T=1, batch-invariant: %s",
                      sa_dtype_name(direct[k]), sa_cpu_path_name((enum sa_cpu_path)p), gname ? gname : "(null)");
        }
    }
    CHECK(!sa_matmul_supported(SA_DTYPE_I32));
    CHECK(!sa_matmul_supported((enum sa_dtype)39));
    CHECK(sa_cpu_path_available(SA_CPU_PATH_REF));
    CHECK(sa_cpu_path_available(sa_cpu_path_active()));
    printf("    active path: %s; avx2 %s, avx512 %s\n", sa_cpu_path_name(sa_cpu_path_active()),
           sa_cpu_path_available(SA_CPU_PATH_AVX2) ? "yes" : "no", sa_cpu_path_available(SA_CPU_PATH_AVX512) ? "yes" : "no");
}

/* Activation quantization, ggml's rules (kernels_impl.h): q8_0 / q8_1: q = round-half-even(x *
 * (127 / amax)), d = fp16(amax / 127), sum = sum(q), s = fp16(amax / 127 * sum); q8_K: the
 * first element of largest |x| sets the sign (q = -127 there, d < 0 when it is positive),
 * |x - d q| <= |d| / 2, bsums. (tests/py/test_act_quant_ref.py compares the bytes with ggml's.) */
static void test_act_quant(void) {
    float x[512];
    for (int i = 0; i < 512; i++) x[i] = rnd_unit() * (i < 256 ? 3.0f : 0.001f);
    x[7] = 0.0f, x[300] = -5.0f, x[33] = 0.5f * (127.0f / 126.0f); /* x[33]: a tie candidate */
    for (int with_s = 0; with_s < 2; with_s++) {
        sa_block_q8a a[16];
        sa_quantize_row_q8a(x, a, 512, with_s);
        for (int b = 0; b < 16; b++) {
            float amax = 0.0f;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
            float d = amax / 127.0f, id = 127.0f / amax;
            int sum = 0;
            for (int i = 0; i < 32; i++) {
                CHECK_EQ_INT(a[b].qs[i], (int)nearbyintf(x[32 * b + i] * id));
                CHECK(fabsf(x[32 * b + i] - d * a[b].qs[i]) <= d * 0.5f * 1.0001f);
                sum += a[b].qs[i];
            }
            CHECK(a[b].d == sa_f16_to_f32(sa_f32_to_f16(d)));
            if (with_s) CHECK(a[b].s == sa_f16_to_f32(sa_f32_to_f16(d * (float)sum)));
            else CHECK_EQ_INT(a[b].sum, sum);
        }
    }
    sa_block_q8_K k[2];
    x[40] = 4.0f, x[41] = -4.0f; /* block 0: the first of equal |x| (+4) sets the sign */
    sa_quantize_row_q8k(x, k, 512);
    CHECK(k[0].d < 0.0f && k[0].qs[40] == -127 && k[0].qs[41] == 127);
    CHECK(k[1].d > 0.0f && k[1].qs[300 - 256] == -127); /* block 1: max = -5 */
    for (int b = 0; b < 2; b++)
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int i = 0; i < 16; i++) {
                s += k[b].qs[16 * g + i];
                CHECK(fabsf(x[256 * b + 16 * g + i] - k[b].d * k[b].qs[16 * g + i]) <= fabsf(k[b].d) * 0.5f * 1.0001f);
            }
            CHECK_EQ_INT(k[b].bsums[g], s);
        }
    float z[256] = {0};
    sa_block_q8a a[1];
    sa_quantize_row_q8a(z, a, 32, true);
    CHECK(a[0].d == 0.0f && a[0].s == 0.0f);
    sa_quantize_row_q8a(z, a, 32, false);
    CHECK(a[0].d == 0.0f && a[0].sum == 0);
    sa_quantize_row_q8k(z, k, 256);
    CHECK(k[0].d == 0.0f && k[0].qs[0] == 0 && k[0].bsums[15] == 0);
}

/* Batch invariance: the rows of one product with T = 13 equal bitwise those computed one
 * at a time and in chunks (1 + 5 + 7), on every path, in batch-invariant mode; in the default
 * mode the same holds for chunks that all reach the GEMM thresholds (8 + 9 vs 17: tiles of
 * 8 split differently), and on the paths without GEMMs for any chunks. */
static void test_batch_invariance(void) {
    static const enum sa_dtype types[] = {SA_DTYPE_F32, SA_DTYPE_F16, SA_DTYPE_BF16, SA_DTYPE_Q8_0, SA_DTYPE_Q4_0,
                                          SA_DTYPE_Q4_1, SA_DTYPE_Q5_0, SA_DTYPE_Q5_1, SA_DTYPE_Q2_K, SA_DTYPE_Q3_K,
                                          SA_DTYPE_Q4_K, SA_DTYPE_Q5_K, SA_DTYPE_Q6_K};
    const int64_t n_out = 37, T = 17;
    for (size_t k = 0; k < SA_ARRAY_LEN(types); k++) {
        enum sa_dtype t = types[k];
        int64_t n_in = sa_dtype_block_size(t) == 256 ? 512 : 320;
        size_t rb;
        void *W = make_weights(t, n_in, n_out, &rb);
        float *X = make_x(T, n_in), *Y = malloc((size_t)(T * n_out) * sizeof(float)), *Yc = malloc((size_t)(T * n_out) * sizeof(float));
        void *scratch = malloc(sa_matmul_scratch_bytes(t, n_in, T) + 1);
        for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
            if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
            for (int mode = 0; mode < 2; mode++) {
                const bool inv = mode == 1;
                bool any_chunks = inv || strncmp(sa_matmul_kernel_name_t((enum sa_cpu_path)p, t, T, false), "gemm_", 5);
                /* 13 rows at once vs 1 + 5 + 7 (any_chunks), and 17 at once vs 8 + 9 */
                static const int64_t small[] = {1, 5, 7}, big[] = {8, 9};
                for (int v = 0; v < 2; v++) {
                    const int64_t *parts = v == 0 ? small : big;
                    int n_parts = v == 0 ? 3 : 2;
                    int64_t total = v == 0 ? 13 : 17;
                    if (v == 0 && !any_chunks) continue;
                    sa_matmul_path((enum sa_cpu_path)p, pools[1], t, W, n_in, n_out, X, total, Y, scratch, inv);
                    for (int64_t i = 0, t0 = 0; i < n_parts; t0 += parts[i], i++)
                        sa_matmul_path((enum sa_cpu_path)p, pools[i % 3], t, W, n_in, n_out, X + t0 * n_in, parts[i],
                                       Yc + t0 * n_out, scratch, inv);
                    CHECK_MSG(!memcmp(Y, Yc, (size_t)(total * n_out) * sizeof(float)),
                              "%s %s, batch-invariant %d: %lld rows at once differ from chunks", sa_dtype_name(t),
                              sa_cpu_path_name((enum sa_cpu_path)p), mode, (long long)total);
                }
            }
        }
        free(scratch), free(Yc), free(Y), free(X), free(W);
    }
}

/* Every path's GEMM, called directly: any split of the rows (at multiples of SA_GEMM_ROWS) and
 * of the activation rows gives the bits of one call over everything, on 37 rows (not a multiple
 * of the 8- or 16-row panels), T = 11 and n_in = 3584 (over one panel slice on every path, not a
 * multiple of it); and sa_matmul in batch-invariant mode gives the same bits; a GEMM's T = 1 row
 * loop (sa_cpu_gemm.rows, batch-invariant decode) gives its bits for each activation row. */
static void test_gemm_splits(void) {
    const int64_t n_in = 3584, n_out = 37, T = 11;
    static const int64_t rsplit[] = {0, 16, 37}, tsplit[][4] = {{0, 11, -1, -1}, {0, 3, 4, 11}, {0, 1, 2, 11}};
    int n_checked = 0, n_rows_checked = 0;
    for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
        if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
        const struct sa_cpu_kernels *ks = sa_cpu_kernels_of((enum sa_cpu_path)p);
        for (size_t k = 0; k < SA_ARRAY_LEN(all_types); k++) {
            enum sa_dtype t = all_types[k];
            if (!ks->gemm[t].fn) continue;
            size_t rb;
            void *W = make_weights(t, n_in, n_out, &rb);
            float *X = make_x(T, n_in), *Y = malloc((size_t)(T * n_out) * sizeof(float)), *Ys = malloc((size_t)(T * n_out) * sizeof(float));
            enum sa_act_kind kind = sa_cpu_gemm_act_kind(t);
            size_t xrb = kind == SA_ACT_F32 ? (size_t)n_in * sizeof(float) : sa_cpu_act_row_bytes(kind, n_in);
            void *xa = X;
            if (kind != SA_ACT_F32) {
                xa = malloc(xrb * (size_t)T);
                for (int64_t i = 0; i < T; i++) sa_cpu_act_row_of((enum sa_cpu_path)p)(kind, X + i * n_in, (char *)xa + (size_t)i * xrb, n_in);
            }
            struct sa_gemm_args a = {W, rb, n_in, n_out, xa, xrb, Y};
            ks->gemm[t].fn(&a, 0, n_out, 0, T);
            for (size_t v = 0; v < SA_ARRAY_LEN(tsplit); v++) {
                a.Y = Ys;
                memset(Ys, 0xFF, (size_t)(T * n_out) * sizeof(float));
                for (int i = 0; i + 1 < 3; i++)
                    for (int j = 0; j + 1 < 4 && tsplit[v][j + 1] >= 0; j++)
                        ks->gemm[t].fn(&a, rsplit[i], rsplit[i + 1], tsplit[v][j], tsplit[v][j + 1]);
                CHECK_MSG(!memcmp(Y, Ys, (size_t)(T * n_out) * sizeof(float)), "%s: split %zu differs", ks->gemm[t].name, v);
            }
            if (ks->gemm[t].rows) { /* T = 1 without a panel: the GEMM's bits, row by row */
                float *y1 = malloc((size_t)n_out * sizeof(float));
                for (int64_t i = 0; i < T; i++) {
                    ks->gemm[t].rows(n_in, W, rb, n_out, (const char *)xa + (size_t)i * xrb, y1);
                    CHECK_MSG(!memcmp(Y + i * n_out, y1, (size_t)n_out * sizeof(float)), "%s: rows kernel differs (row %lld)",
                              ks->gemm[t].name, (long long)i);
                }
                n_rows_checked++;
                free(y1);
            }
            void *scratch = malloc(sa_matmul_scratch_bytes(t, n_in, T) + 1);
            sa_matmul_path((enum sa_cpu_path)p, pools[2], t, W, n_in, n_out, X, T, Ys, scratch, true);
            CHECK_MSG(!memcmp(Y, Ys, (size_t)(T * n_out) * sizeof(float)), "%s: sa_matmul differs from the direct call", ks->gemm[t].name);
            n_checked++;
            free(scratch);
            if (xa != X) free(xa);
            free(Ys), free(Y), free(X), free(W);
        }
    }
    printf("    %d GEMMs checked, %d with a T = 1 row loop\n", n_checked, n_rows_checked);
    /* the types of llama.cpp's Q4_K_M files (Q5_0, Q8_0, Q4_K, Q6_K) have both on avx2, so
     * that their batch-invariant decode runs without a panel (gemm_avx2.c) */
    if (sa_cpu_path_available(SA_CPU_PATH_AVX2)) {
        static const enum sa_dtype km[] = {SA_DTYPE_Q5_0, SA_DTYPE_Q8_0, SA_DTYPE_Q4_K, SA_DTYPE_Q6_K};
        const struct sa_cpu_kernels *ks = sa_cpu_kernels_of(SA_CPU_PATH_AVX2);
        for (size_t k = 0; k < SA_ARRAY_LEN(km); k++)
            CHECK_MSG(ks->gemm[km[k]].fn && ks->gemm[km[k]].rows, "%s: no avx2 GEMM with a row loop", sa_dtype_name(km[k]));
    }
    CHECK(n_checked > 0 || !sa_cpu_path_available(SA_CPU_PATH_AVX2)); /* the x86 paths have them */
}

/* The decode row loops (sa_dot_rows_fn) give, row by row, the bits of the dot kernel with
 * nx = 1, for every type and path that has them, on an odd number of rows; Q4_0/Q5_0 also
 * with rows of 513 blocks (their row loop's lane sums hold 512: the dot kernel takes over). */
static void test_rows_kernels(void) {
    int n_checked = 0;
    for (size_t k = 0; k < SA_ARRAY_LEN(all_types) + 2; k++) {
        enum sa_dtype t = k < SA_ARRAY_LEN(all_types) ? all_types[k] : k == SA_ARRAY_LEN(all_types) ? SA_DTYPE_Q4_0 : SA_DTYPE_Q5_0;
        int64_t n_in = sa_dtype_block_size(t) == 256 ? 512 : 320, n_out = 37;
        if (k >= SA_ARRAY_LEN(all_types)) n_in = 513 * 32;
        for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
            if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
            const struct sa_cpu_kernel *kern = &sa_cpu_kernels_of((enum sa_cpu_path)p)->k[t];
            if (!kern->rows) continue;
            CHECK(kern->dot != NULL);
            size_t rb;
            void *W = make_weights(t, n_in, n_out, &rb);
            float *X = make_x(1, n_in), Y[37], Yd[37];
            enum sa_act_kind kind = sa_cpu_act_kind(t);
            void *xa = X;
            if (kind != SA_ACT_F32) {
                xa = malloc(sa_cpu_act_row_bytes(kind, n_in));
                sa_cpu_act_row(kind, X, xa, n_in);
            }
            kern->rows(n_in, W, rb, n_out, xa, Y);
            for (int64_t r = 0; r < n_out; r++) kern->dot(n_in, (const char *)W + (size_t)r * rb, xa, 0, 1, &Yd[r]);
            CHECK_MSG(!memcmp(Y, Yd, sizeof Y), "%s: rows kernel differs from dot", kern->name);
            n_checked++;
            if (xa != X) free(xa);
            free(X), free(W);
        }
    }
    CHECK(n_checked > 0 || !sa_cpu_path_available(SA_CPU_PATH_AVX2)); /* the x86 paths have them */
}

/* Each path's activation conversion gives the bytes of the plain-C one (sa_cpu_act_row), on
 * rows with ties, zeros, outliers, NaN and infinities, for every kind. */
static void test_act_paths_identical(void) {
    static const enum sa_act_kind kinds[] = {SA_ACT_Q8_0, SA_ACT_Q8_1, SA_ACT_Q8K, SA_ACT_Q8KA32, SA_ACT_Q8KA16, SA_ACT_BF16};
    const int64_t n = 1024 + 256;
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = rnd_unit() * (i < 512 ? 2.0f : 1e-3f);
    for (int i = 0; i < 32; i++) x[64 + i] = 0.0f;                     /* an all-zero block */
    for (int i = 0; i < 32; i++) x[128 + i] = (float)(i - 16) * 0.5f;  /* ties at x/d = k + 1/2 */
    x[300] = 1e30f, x[301] = -3e-39f, x[302] = 1.5f;                   /* outlier, subnormal */
    x[700] = NAN, x[900] = INFINITY, x[1000] = -INFINITY;
    x[1100] = 1.00390625f; /* bf16 tie: 1 + 2^-8 rounds to even (1.0) */
    x[1101] = 1.01171875f; /* 1 + 3 * 2^-8: rounds up */
    for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
        if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
        sa_act_row_fn fn = sa_cpu_act_row_of((enum sa_cpu_path)p);
        for (size_t k = 0; k < SA_ARRAY_LEN(kinds); k++) {
            for (int64_t len = n; len >= n - 1; len--) { /* odd length: bf16 only */
                if (len != n && kinds[k] != SA_ACT_BF16) continue;
                size_t bytes = sa_cpu_act_row_bytes(kinds[k], len);
                uint8_t *a = malloc(bytes + 8), *b = malloc(bytes + 8);
                memset(a, 0x5A, bytes + 8), memset(b, 0x5A, bytes + 8);
                sa_cpu_act_row(kinds[k], x, a, len);
                fn(kinds[k], x, b, len);
                CHECK_MSG(!memcmp(a, b, bytes + 8), "path %s, kind %d, n %lld: activation bytes differ from plain C",
                          sa_cpu_path_name((enum sa_cpu_path)p), (int)kinds[k], (long long)len);
                free(a), free(b);
            }
        }
    }
    /* bf16: round to nearest even, NaN stays NaN, odd n padded with a zero */
    uint16_t h[4];
    float v[3] = {1.00390625f, 1.01171875f, NAN};
    sa_convert_row_bf16(v, h, 3);
    CHECK_EQ_INT(h[0], 0x3F80);
    CHECK_EQ_INT(h[1], 0x3F82);
    CHECK((h[2] & 0x7F80) == 0x7F80 && (h[2] & 0x7F) != 0);
    CHECK_EQ_INT(h[3], 0);
    free(x);
}

/* Q6_K's T = 1 row loop over more than one of its 32-super-block slices of the activation
 * row (n_in = 8448: the f32 sums wait in y between slices) gives the GEMM's bits. */
static void test_q6_K_rows_long(void) {
    const int64_t n_in = 33 * 256, n_out = 11, T = 2;
    int n_checked = 0;
    for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
        if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
        const struct sa_cpu_gemm *g = &sa_cpu_kernels_of((enum sa_cpu_path)p)->gemm[SA_DTYPE_Q6_K];
        if (!g->fn || !g->rows) continue;
        size_t rb;
        void *W = make_weights(SA_DTYPE_Q6_K, n_in, n_out, &rb);
        float *X = make_x(T, n_in), Y[2 * 11], y1[11];
        size_t xrb = sa_cpu_act_row_bytes(sa_cpu_gemm_act_kind(SA_DTYPE_Q6_K), n_in);
        uint8_t *xa = malloc(xrb * (size_t)T);
        for (int64_t i = 0; i < T; i++) sa_cpu_act_row_of((enum sa_cpu_path)p)(sa_cpu_gemm_act_kind(SA_DTYPE_Q6_K), X + i * n_in, xa + (size_t)i * xrb, n_in);
        struct sa_gemm_args a = {W, rb, n_in, n_out, xa, xrb, Y};
        g->fn(&a, 0, n_out, 0, T);
        for (int64_t i = 0; i < T; i++) {
            g->rows(n_in, W, rb, n_out, xa + (size_t)i * xrb, y1);
            CHECK_MSG(!memcmp(Y + i * n_out, y1, sizeof y1), "%s: rows kernel differs (row %lld)", g->name, (long long)i);
        }
        n_checked++;
        free(xa), free(X), free(W);
    }
    CHECK(n_checked > 0 || !sa_cpu_path_available(SA_CPU_PATH_AVX2));
}

/* Q6_K at the edges of the integer ranges (gemm_avx2.c packs a whole 16-element block in
 * int16 and a super-block in int32): weights all -32 or all +31 (u = 0, 63), scales -128 or
 * +127, against activations that quantize to all -127 or all +127 (and alternating signs):
 * every path's GEMM, its T = 1 row loop and the dot kernels agree with the ref path within
 * float rounding (a wrapped int16 or int32 sum would be off by about 2^16 or 2^32 of them). */
static void test_q6_K_extremes(void) {
    const int64_t n_in = 512, n_out = 9, T = 7;
    size_t rb = 2 * sizeof(sa_block_q6_K);
    uint8_t *W = malloc(rb * (size_t)n_out);
    float *X = malloc((size_t)(T * n_in) * sizeof(float)), *Y = malloc((size_t)(T * n_out) * sizeof(float));
    float *Yref = malloc((size_t)(T * n_out) * sizeof(float));
    void *scratch = malloc(sa_matmul_scratch_bytes(SA_DTYPE_Q6_K, n_in, T));
    for (int64_t r = 0; r < n_out; r++)
        for (int b = 0; b < 2; b++) {
            sa_block_q6_K *blk = (sa_block_q6_K *)(void *)(W + (size_t)r * rb) + b;
            int u = r % 3 == 0 ? 0 : r % 3 == 1 ? 63 : (int)(r + b) % 64; /* all -32, all +31, mixed */
            memset(blk->ql, (u & 15) * 0x11, sizeof blk->ql);
            memset(blk->qh, (u >> 4) * 0x55, sizeof blk->qh);
            for (int k = 0; k < 16; k++) blk->scales[k] = (int8_t)(r & 1 ? -128 : 127);
            put_f16((uint8_t *)&blk->d, 1e-3f);
        }
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < n_in; i++)
            X[t * n_in + i] = t == 0 ? -1.0f : t == 1 ? 1.0f : t == 2 ? (i & 1 ? 1.0f : -1.0f) : (i & 2 ? 0.5f : -1.0f) * (float)(t - 2);
    sa_matmul_path(SA_CPU_PATH_REF, pools[0], SA_DTYPE_Q6_K, W, n_in, n_out, X, T, Yref, scratch, false);
    int n_gemm = 0;
    for (int p = 0; p < SA_CPU_PATH_COUNT; p++) {
        if (!sa_cpu_path_available((enum sa_cpu_path)p)) continue;
        for (int inv = 0; inv < 2; inv++)
            for (int64_t Tc = 1; Tc <= T; Tc += T - 1) { /* T = 1 (rows, dot) and T = 7 */
                sa_matmul_path((enum sa_cpu_path)p, pools[1], SA_DTYPE_Q6_K, W, n_in, n_out, X, Tc, Y, scratch, inv);
                n_gemm += !strncmp(sa_matmul_kernel_name_t((enum sa_cpu_path)p, SA_DTYPE_Q6_K, Tc, inv), "gemm_", 5);
                for (int64_t i = 0; i < Tc * n_out; i++)
                    CHECK_MSG(fabsf(Y[i] - Yref[i]) <= 1e-5f * fabsf(Yref[i]) + 1e-6f, "%s T=%lld inv %d: y[%lld] = %.9g, ref %.9g",
                              sa_cpu_path_name((enum sa_cpu_path)p), (long long)Tc, inv, (long long)i, Y[i], Yref[i]);
            }
    }
    CHECK(fabsf(Yref[0]) > 1e3f); /* the extremes were reached: 512 * 32 * 127 * 127 * d * dx */
    CHECK(n_gemm > 0 || !sa_cpu_path_available(SA_CPU_PATH_AVX2));
    free(scratch), free(Yref), free(Y), free(X), free(W);
}

/* $SALIGN_CPU=ref forces the reference path (read once, so in a fresh child process). */
static void test_env_override(void) {
    pid_t pid = fork();
    if (pid == 0) {
        setenv("SALIGN_CPU", "ref", 1);
        _exit(sa_cpu_path_active() == SA_CPU_PATH_REF ? 0 : 1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void) {
    RUN(test_env_override); /* first: before this process reads $SALIGN_CPU */
    for (int i = 0; i < 3; i++) CHECK_OK(sa_threadpool_init(i + 1, &pools[i]));
    RUN(test_kernel_selection);
    RUN(test_act_quant);
    RUN(test_act_paths_identical);
    RUN(test_edge_cases);
    RUN(test_batch_invariance);
    RUN(test_rows_kernels);
    RUN(test_gemm_splits);
    RUN(test_q6_K_extremes);
    RUN(test_q6_K_rows_long);
    RUN(test_all_types_paths);
    for (int i = 0; i < 3; i++) sa_threadpool_free(pools[i]);
    return harness_summary();
}
