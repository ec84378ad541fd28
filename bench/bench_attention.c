/* bench_attention.c: microseconds per decode-attention call (T = 1, sa_op_attention's decode
 * kernel, or the tiled kernel with --tiled) for the head shapes of SmolLM2-135M and
 * Qwen2.5-0.5B at several context lengths, with an f32 or f16 KV cache, as the forward pass
 * calls it: one call per layer over n_layer separate caches, so that K/V come from memory
 * (not from the cache levels) as they do in a real decode step. Prints the time of one
 * token's attention (all layers) and the K/V bytes streamed per second.
 * usage: bench_attention [-t THREADS] [--kv f32|f16] [--tiled] [--reps N] [CTX ...]
 *        (default: 1 thread, f32, decode kernel, 5 reps, contexts 128 512 1024 2048 4096) */
#define _GNU_SOURCE
#include "backend/cpu/cpu_impl.h"
#include "core/core_impl.h"
#include "model/ops_impl.h"
#include "sa/dtype.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct shape {
    const char *model;
    int64_t H, Hkv, D, n_layer;
};
static const struct shape shapes[] = {
    {"smollm2-135m", 9, 3, 64, 30},
    {"qwen2.5-0.5b", 14, 2, 64, 24},
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int n_threads = 1, reps = 5;
    bool f16 = false, tiled = false;
    int64_t ctxs[16] = {128, 512, 1024, 2048, 4096};
    int n_ctx = 5, n_given = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kv") && i + 1 < argc) f16 = !strcmp(argv[++i], "f16");
        else if (!strcmp(argv[i], "--tiled")) tiled = true;
        else if (n_given < 16) ctxs[n_given++] = atoll(argv[i]);
    }
    if (n_given) n_ctx = n_given;
    struct sa_threadpool *tp = NULL;
    if (sa_threadpool_init(n_threads, &tp) != SA_STATUS_OK) return 1;
    const size_t esz = f16 ? 2 : 4;
    printf("# %s kernel, %s KV cache, %d thread(s), path %s, best of %d reps\n", tiled ? "tiled" : "decode",
           f16 ? "f16" : "f32", n_threads, sa_cpu_path_name(sa_cpu_path_active()), reps);
    printf("%-14s %6s %12s %12s %10s\n", "model", "ctx", "us/token", "us/layer", "GB/s K+V");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const struct shape sh = shapes[si];
        for (int ci = 0; ci < n_ctx; ci++) {
            const int64_t N = ctxs[ci], nkv = N * sh.Hkv * sh.D, L = sh.n_layer;
            uint8_t *k = malloc((size_t)(L * nkv) * esz), *v = malloc((size_t)(L * nkv) * esz);
            float *q = malloc((size_t)(sh.H * sh.D) * sizeof *q), *out = malloc((size_t)(sh.H * sh.D) * sizeof *out);
            float *scratch = malloc((size_t)(n_threads * N) * sizeof *scratch);
            if (!k || !v || !q || !out || !scratch) return 1;
            uint32_t st = 7;
            for (int64_t i = 0; i < L * nkv; i++) {
                st = st * 1664525u + 1013904223u;
                const float x = (float)((st >> 8) & 0xFFFF) / 32768.0f - 1.0f;
                if (f16) ((uint16_t *)k)[i] = sa_f32_to_f16(x), ((uint16_t *)v)[i] = sa_f32_to_f16(-x);
                else ((float *)k)[i] = x, ((float *)v)[i] = -x;
            }
            for (int64_t i = 0; i < sh.H * sh.D; i++) q[i] = sinf((float)i);
            double best = 1e30;
            for (int r = 0; r < reps; r++) {
                const double t0 = now_s();
                for (int64_t il = 0; il < L; il++) {
                    struct sa_attn_args a = {
                        .q = q, .k = k + (size_t)(il * nkv) * esz, .v = v + (size_t)(il * nkv) * esz,
                        .kv_type = f16 ? SA_DTYPE_F16 : SA_DTYPE_F32, .out = out, .T = 1, .pos0 = N - 1,
                        .n_head = sh.H, .n_head_kv = sh.Hkv, .head_dim = sh.D, .scale = 0.125f,
                        .scratch = scratch, .scratch_stride = N, .n_scratch = n_threads,
                    };
                    sa_op_attention_path(tp, &a, sa_cpu_path_active(), tiled ? SA_ATTN_TILED : SA_ATTN_AUTO);
                }
                const double dt = now_s() - t0;
                best = dt < best ? dt : best;
            }
            printf("%-14s %6lld %12.1f %12.2f %10.1f\n", sh.model, (long long)N, best * 1e6, best * 1e6 / (double)L,
                   2.0 * (double)(L * nkv) * (double)esz / best * 1e-9);
            free(k), free(v), free(q), free(out), free(scratch);
        }
    }
    sa_threadpool_free(tp);
    return 0;
}
