/* bench_matmul.c: GFLOP/s of sa_matmul for the projection shapes of SmolLM2-135M and
 * Gemma3-270M per weight type, decode (T = 1) and prefill (T = 512), 1 and 2 threads, on the
 * path sa_matmul picks ($SALIGN_CPU=ref|avx2|avx512 forces one). Each number is the best of
 * as many repetitions as fit in ~0.1 s (weights stay in cache for the small shapes, as they
 * do not in a real forward pass: an upper bound for those).
 * usage: bench_matmul [--batch-invariant] [type ...]   (default: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0
 * q4_k q6_k); --batch-invariant: every T runs the prefill GEMM (sa_matmul's batch_invariant).
 *        bench_matmul --scan [type ...]   (default: q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k): the
 * active path's GEMM against its dot kernels at T = 1..8, 16, 32, 1 thread, on the shapes of
 * Qwen2.5-0.5B (the vocab shape cut to 16384 rows), interleaved (3 rounds, best of each), to
 * set the per-type GEMM thresholds (min_T). */
#define _GNU_SOURCE
#include "backend/cpu/cpu_impl.h"
#include "backend/cpu/kernels_impl.h"
#include "core/core_impl.h"
#include "formats/quant_blocks_impl.h"
#include "sa/dtype.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct shape {
    const char *model, *what;
    int64_t n_in, n_out;
};
static const struct shape shapes[] = {
    {"smollm2-135m", "q/o 576x576", 576, 576},    {"smollm2-135m", "k/v 576x192", 576, 192},
    {"smollm2-135m", "up 576x1536", 576, 1536},   {"smollm2-135m", "down 1536x576", 1536, 576},
    {"smollm2-135m", "vocab 576x49152", 576, 49152}, {"gemma3-270m", "q 640x1024", 640, 1024},
    {"gemma3-270m", "k/v 640x256", 640, 256},     {"gemma3-270m", "up 640x2048", 640, 2048},
    {"gemma3-270m", "down 2048x640", 2048, 640},  {"gemma3-270m", "vocab 640x262144", 640, 262144},
};

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Random weights: random bytes, then every f16 scale field set to a small finite value (the
 * kernels' speed does not depend on the values; NaN/Inf scales would only slow nothing). */
static void *make_weights(enum sa_dtype t, int64_t n_in, int64_t n_out) {
    uint64_t rb = 0;
    if (!sa_dtype_row_bytes(t, (uint64_t)n_in, &rb)) return NULL;
    size_t bytes = (size_t)rb * (size_t)n_out;
    uint8_t *w = malloc(bytes);
    if (!w) return NULL;
    if (t == SA_DTYPE_F32 || t == SA_DTYPE_F16 || t == SA_DTYPE_BF16) {
        float *row = malloc((size_t)n_in * sizeof(float));
        for (int64_t r = 0; r < n_out; r++) {
            for (int64_t i = 0; i < n_in; i++) row[i] = (float)(rnd() % 2001) * 1e-4f - 0.1f;
            if (sa_quantize(t, row, w + (size_t)r * rb, n_in) != SA_STATUS_OK) abort();
        }
        free(row);
        return w;
    }
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)rnd();
    size_t ts = sa_dtype_type_size(t), nb = bytes / ts;
    uint16_t h = sa_f32_to_f16(0.01f);
    size_t off[2] = {0, 0};
    int n_off = 1;
    switch (t) {
    case SA_DTYPE_Q4_1: case SA_DTYPE_Q5_1: case SA_DTYPE_Q4_K: case SA_DTYPE_Q5_K: n_off = 2, off[1] = 2; break;
    case SA_DTYPE_Q2_K: off[0] = offsetof(sa_block_q2_K, d), off[1] = offsetof(sa_block_q2_K, dmin), n_off = 2; break;
    case SA_DTYPE_Q3_K: off[0] = offsetof(sa_block_q3_K, d); break;
    case SA_DTYPE_Q6_K: off[0] = offsetof(sa_block_q6_K, d); break;
    default: break;
    }
    for (size_t b = 0; b < nb; b++)
        for (int k = 0; k < n_off; k++) memcpy(w + b * ts + off[k], &h, 2);
    return w;
}

static bool g_invariant;

static double bench_one(struct sa_threadpool *tp, enum sa_dtype t, const void *W, int64_t n_in, int64_t n_out,
                        const float *X, int64_t T, float *Y, void *scratch) {
    double best = 1e9, start = sa_time_now();
    do {
        double t0 = sa_time_now();
        sa_matmul(tp, t, W, n_in, n_out, X, T, Y, scratch, g_invariant);
        best = SA_MIN(best, sa_time_now() - t0);
    } while (sa_time_now() - start < 0.1);
    return best;
}

/* --scan: GEMM vs dot kernels per T (see the header). The path's threshold is changed in its
 * kernel table for the measurement (this program's own copy, one thread) and restored. */
static int scan(int n_types, const char **names) {
    static const struct shape qshapes[] = {
        {"qwen2.5-0.5b", "q/o 896x896", 896, 896},    {"qwen2.5-0.5b", "k/v 896x128", 896, 128},
        {"qwen2.5-0.5b", "up 896x4864", 896, 4864},   {"qwen2.5-0.5b", "down 4864x896", 4864, 896},
        {"qwen2.5-0.5b", "vocab 896x16384", 896, 16384},
    };
    static const int64_t Ts[] = {1, 2, 3, 4, 5, 6, 8, 16, 32};
    enum sa_cpu_path path = sa_cpu_path_active();
    struct sa_cpu_gemm *tab = (struct sa_cpu_gemm *)sa_cpu_kernels_of(path)->gemm; /* g_kernels: not const */
    float *X = malloc((size_t)(32 * 4864) * sizeof(float)), *Y = malloc((size_t)(32 * 16384) * sizeof(float));
    void *scratch = malloc((size_t)32 * 4864 * 2);
    for (int64_t i = 0; i < 32 * 4864; i++) X[i] = (float)(rnd() % 2001) * 1e-3f - 1.0f;
    printf("path %s, 1 thread, GFLOP/s dot / gemm per T (machine shared: compare within a row)\n", sa_cpu_path_name(path));
    for (int k = 0; k < n_types; k++) {
        enum sa_dtype t;
        if (sa_dtype_from_name(names[k], &t) != SA_STATUS_OK || !sa_matmul_supported(t) || !tab[t].fn) {
            fprintf(stderr, "bench_matmul: %s: unknown type or no GEMM on this path\n", names[k]);
            continue;
        }
        int saved = tab[t].min_T;
        for (size_t s = 0; s < SA_ARRAY_LEN(qshapes); s++) {
            const struct shape *sh = &qshapes[s];
            if (sh->n_in % (int64_t)sa_dtype_block_size(t)) continue;
            void *W = make_weights(t, sh->n_in, sh->n_out);
            printf("%-5s %-16s", names[k], sh->what);
            for (size_t i = 0; i < SA_ARRAY_LEN(Ts); i++) {
                double best[2] = {1e9, 1e9};
                for (int round = 0; round < 6; round++) {
                    int g = round & 1;
                    tab[t].min_T = g ? 1 : 1 << 30;
                    double start = sa_time_now();
                    do {
                        double t0 = sa_time_now();
                        sa_matmul(NULL, t, W, sh->n_in, sh->n_out, X, Ts[i], Y, scratch, false);
                        best[g] = SA_MIN(best[g], sa_time_now() - t0);
                    } while (sa_time_now() - start < 0.03);
                }
                double flop = 2.0 * (double)sh->n_in * (double)sh->n_out * (double)Ts[i] * 1e-9;
                printf(" T%lld %.0f/%.0f", (long long)Ts[i], flop / best[0], flop / best[1]);
            }
            printf("\n");
            fflush(stdout);
            free(W);
        }
        tab[t].min_T = saved;
    }
    free(scratch), free(Y), free(X);
    return 0;
}

int main(int argc, char **argv) {
    static const char *defaults[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q4_k", "q6_k"};
    if (argc > 1 && !strcmp(argv[1], "--scan")) {
        static const char *scan_defaults[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"};
        return argc > 2 ? scan(argc - 2, (const char **)argv + 2) : scan((int)SA_ARRAY_LEN(scan_defaults), scan_defaults);
    }
    if (argc > 1 && !strcmp(argv[1], "--batch-invariant")) {
        g_invariant = true;
        argc--, argv++;
    }
    int n_types = argc > 1 ? argc - 1 : (int)SA_ARRAY_LEN(defaults);
    const char **names = argc > 1 ? (const char **)argv + 1 : defaults;
    struct sa_threadpool *pools[2] = {NULL, NULL};
    if (sa_threadpool_init(2, &pools[1]) != SA_STATUS_OK) {
        fprintf(stderr, "bench_matmul: %s\n", sa_last_error());
        return 1;
    }
    const int64_t T_max = 512;
    int64_t n_in_max = 2048;
    float *X = malloc((size_t)(T_max * n_in_max) * sizeof(float));
    float *Y = malloc((size_t)(262144 + T_max * 2048) * sizeof(float));
    void *scratch = malloc((size_t)T_max * (size_t)n_in_max * 2); /* >= any activation kind */
    for (int64_t i = 0; i < T_max * n_in_max; i++) X[i] = (float)(rnd() % 2001) * 1e-3f - 1.0f;
    printf("path %s (machine shared with other jobs: indicative numbers)\n", sa_cpu_path_name(sa_cpu_path_active()));
    printf("%-13s %-17s %-5s %-22s %-25s %9s %9s %9s %9s\n", "model", "shape (in x out)", "type", "kernel T=1",
           "kernel T=512", "T=1 1th", "T=1 2th", "T=512 1th", "T=512 2th");
    for (int k = 0; k < n_types; k++) {
        enum sa_dtype t;
        if (sa_dtype_from_name(names[k], &t) != SA_STATUS_OK || !sa_matmul_supported(t)) {
            fprintf(stderr, "bench_matmul: unknown or unsupported type %s\n", names[k]);
            continue;
        }
        for (size_t s = 0; s < SA_ARRAY_LEN(shapes); s++) {
            const struct shape *sh = &shapes[s];
            bool vocab = sh->n_out > 10000;
            if (vocab && sa_dtype_block_size(t) == 1) continue; /* 0.3-0.7 GB of f16/f32: not what models ship */
            if (sh->n_in % (int64_t)sa_dtype_block_size(t)) continue;
            void *W = make_weights(t, sh->n_in, sh->n_out);
            if (!W) {
                fprintf(stderr, "bench_matmul: out of memory\n");
                return 1;
            }
            printf("%-13s %-17s %-5s %-22s %-25s", sh->model, sh->what, names[k],
                   sa_matmul_kernel_name_t(sa_cpu_path_active(), t, 1, g_invariant),
                   sa_matmul_kernel_name_t(sa_cpu_path_active(), t, T_max, g_invariant));
            for (int ti = 0; ti < 2; ti++) {
                int64_t T = ti == 0 ? 1 : T_max;
                for (int th = 0; th < 2; th++) {
                    if (vocab && T > 1) { /* logits are only needed for the last position */
                        printf(" %9s", "-");
                        continue;
                    }
                    double sec = bench_one(pools[th], t, W, sh->n_in, sh->n_out, X, T, Y, scratch);
                    printf(" %9.1f", 2.0 * (double)sh->n_in * (double)sh->n_out * (double)T / sec * 1e-9);
                }
            }
            printf("   GFLOP/s\n");
            fflush(stdout);
            free(W);
        }
    }
    free(scratch), free(Y), free(X);
    sa_threadpool_free(pools[1]);
    return 0;
}
