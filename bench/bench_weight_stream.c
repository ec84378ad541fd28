/* bench_weight_stream.c: how fast one decode-style product (T = 1, sa_matmul, BF16 rows of
 * N_IN) streams a model file's bytes, from (a) the read-only file mapping (what the engine
 * uses by default, and llama.cpp too), (b) a private copy in ordinary memory (`--no-mmap`,
 * SALIGN_NO_MMAP=1), (c) a private copy advised to use transparent huge pages; and, as the
 * ceiling of one core, plain loads of (c) with no arithmetic ("loads only"). The bytes are
 * read as BF16 weights whatever the file holds (speed does not depend on the values).
 * Prints GB/s, the best of REPS passes over the whole file, per source and thread count,
 * and how much of the file mapping the kernel maps with 2 MiB pages (FilePmdMapped): pages
 * that a write left in the page cache are 4 KiB folios, pages read from disk large ones.
 * --drop-cache first drops the file's pages from the page cache (sa_file_drop_cache), so the
 * mapping reads them back from disk.
 * usage: bench_weight_stream FILE [N_IN (576)] [REPS (5)] [--drop-cache]
 * docs/BENCHMARKS.md, "Decode of 16-bit models and the file mapping". */
#define _GNU_SOURCE
#include "backend/cpu/cpu_impl.h"
#include "core/core_impl.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static double gbps(struct sa_threadpool *tp, const void *W, int64_t n_in, int64_t n_out, const float *X, float *Y,
                   void *scratch, int reps) {
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = sa_time_now();
        sa_matmul(tp, SA_DTYPE_BF16, W, n_in, n_out, X, 1, Y, scratch, false);
        best = SA_MIN(best, sa_time_now() - t0);
    }
    return (double)n_in * 2 * (double)n_out / best * 1e-9;
}

/* The ceiling: the same bytes read with plain 64-byte loads (AVX-512; 32-byte with AVX2), no
 * arithmetic but an XOR per load in four independent chains, from the huge-page copy. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx512f"))) static uint64_t xor_stream512(const uint8_t *p, size_t n) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        a = _mm512_xor_si512(a, _mm512_loadu_si512(p + i));
        b = _mm512_xor_si512(b, _mm512_loadu_si512(p + i + 64));
        c = _mm512_xor_si512(c, _mm512_loadu_si512(p + i + 128));
        d = _mm512_xor_si512(d, _mm512_loadu_si512(p + i + 192));
    }
    return (uint64_t)_mm512_reduce_or_epi64(_mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d)));
}
__attribute__((target("avx2"))) static uint64_t xor_stream256(const uint8_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}
static double ceiling_gbps(const uint8_t *p, size_t n, int reps) {
    bool w512 = __builtin_cpu_supports("avx512f");
    if (!w512 && !__builtin_cpu_supports("avx2")) return 0.0;
    double best = 1e9;
    volatile uint64_t sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = sa_time_now();
        sink ^= w512 ? xor_stream512(p, n) : xor_stream256(p, n);
        best = SA_MIN(best, sa_time_now() - t0);
    }
    (void)sink;
    return (double)n / best * 1e-9;
}
#else
static double ceiling_gbps(const uint8_t *p, size_t n, int reps) { return (void)p, (void)n, (void)reps, 0.0; }
#endif

/* kB of this process's file mappings mapped with PMD (2 MiB) entries, -1 if unknown. */
static long file_pmd_mapped_kb(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "FilePmdMapped: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    bool drop = argc > 2 && !strcmp(argv[argc - 1], "--drop-cache");
    if (drop) argc--;
    if (argc < 2) {
        fprintf(stderr, "usage: bench_weight_stream FILE [N_IN (576)] [REPS (5)] [--drop-cache]\n");
        return 2;
    }
    if (drop) {
        int fd = open(argv[1], O_RDONLY);
        if (fd >= 0) sa_file_drop_cache(fd), close(fd);
    }
    int64_t n_in = argc > 2 ? atoll(argv[2]) : 576;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (n_in <= 0 || n_in % 2 || reps <= 0) {
        fprintf(stderr, "bench_weight_stream: N_IN must be even and positive, REPS positive\n");
        return 2;
    }
    struct sa_file_map fm;
    if (sa_file_map_open(argv[1], &fm) != SA_STATUS_OK) {
        fprintf(stderr, "bench_weight_stream: %s\n", sa_last_error());
        return 1;
    }
    int64_t n_out = (int64_t)(fm.size / (size_t)(n_in * 2));
    size_t bytes = (size_t)(n_out * n_in * 2);
    size_t huge = (size_t)2 << 20, rounded = (bytes + huge - 1) / huge * huge;
    uint8_t *copy = malloc(bytes), *copy_huge = aligned_alloc(huge, rounded);
    float *X = malloc((size_t)n_in * sizeof(float)), *Y = malloc((size_t)n_out * sizeof(float));
    void *scratch = malloc((size_t)n_in * 4);
    struct sa_threadpool *pools[2] = {NULL, NULL};
    if (n_out <= 0 || !copy || !copy_huge || !X || !Y || !scratch || sa_threadpool_init(2, &pools[1]) != SA_STATUS_OK) {
        fprintf(stderr, "bench_weight_stream: file too small or out of memory\n");
        return 1;
    }
    madvise(copy_huge, rounded, MADV_HUGEPAGE);
    memcpy(copy, fm.data, bytes);
    memcpy(copy_huge, fm.data, bytes);
    for (int64_t i = 0; i < n_in; i++) X[i] = 1.0f / (float)(i + 1);
    const void *src[3] = {fm.data, copy, copy_huge};
    const char *name[3] = {"file mapping", "private copy", "copy, huge pages"};
    printf("%s: %.1f MB as %lld x %lld BF16, path %s; GB/s, best of %d\n", argv[1], bytes / 1e6, (long long)n_out,
           (long long)n_in, sa_cpu_path_name(sa_cpu_path_active()), reps);
    printf("page cache %s; file mapping: %.1f MB of %.1f MB in 2 MiB pages\n",
           drop ? "dropped first (read from disk)" : "as it was", file_pmd_mapped_kb() / 1e3, fm.size / 1e6);
    printf("%-17s %9s %9s\n", "source", "1 thread", "2 threads");
    for (int round = 0; round < 2; round++) { /* twice, interleaved: a load change hits all */
        for (int s = 0; s < 3; s++)
            printf("%-17s %9.1f %9.1f\n", name[s], gbps(NULL, src[s], n_in, n_out, X, Y, scratch, reps),
                   gbps(pools[1], src[s], n_in, n_out, X, Y, scratch, reps));
        printf("%-17s %9.1f %9s\n", "loads only", ceiling_gbps(copy_huge, bytes, reps), "-");
    }
    sa_threadpool_free(pools[1]);
    free(scratch), free(Y), free(X), free(copy_huge), free(copy);
    sa_file_map_close(&fm);
    return 0;
}
