/* matmul.c: Y = X @ W^T with W in its stored type: chooses the kernel path once (ref, avx2,
 * avx512; $SALIGN_CPU forces one), quantizes X to the type's 8-bit activations in scratch,
 * splits the rows of W into chunks that threads take from an atomic counter (a thread slowed
 * down by a neighbour process takes fewer), and runs the path's prefill GEMM (register
 * tiles, arch/x86/gemm_avx512.c, gemm_avx2.c) from a per-type T up (any T when the call asks
 * for batch invariance; T = 1 through the GEMM's row loop when it has one), else the dot
 * kernels with each weight row against up to 4 activation rows.
 * Types without a direct kernel are dequantized a piece of a row at a time into a stack
 * buffer.
 * sa_matmul_ref is the plain f32 reference. */
#define _GNU_SOURCE
#include "backend/cpu/kernels_impl.h"
#include "core/core_impl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct sa_cpu_kernels g_kernels[SA_CPU_PATH_COUNT];
static bool g_available[SA_CPU_PATH_COUNT];
static enum sa_cpu_path g_active;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static const char *const g_path_names[SA_CPU_PATH_COUNT] = {"ref", "avx2", "avx512"};

static void init_paths(void) {
    g_available[SA_CPU_PATH_REF] = true;
#if defined(__x86_64__)
    __builtin_cpu_init();
    g_available[SA_CPU_PATH_AVX2] = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    /* F16C has no __builtin_cpu_supports name in gcc 12; every AVX2 CPU has it (Haswell+, Zen) */
    g_available[SA_CPU_PATH_AVX512] = g_available[SA_CPU_PATH_AVX2] && __builtin_cpu_supports("avx512f") &&
                                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#endif
    sa_cpu_kernels_ref(&g_kernels[SA_CPU_PATH_REF]);
    g_kernels[SA_CPU_PATH_AVX2] = g_kernels[SA_CPU_PATH_REF];
    sa_cpu_kernels_avx2(&g_kernels[SA_CPU_PATH_AVX2]);
    sa_cpu_gemm_avx2(&g_kernels[SA_CPU_PATH_AVX2]);
    g_kernels[SA_CPU_PATH_AVX512] = g_kernels[SA_CPU_PATH_AVX2];
    sa_cpu_kernels_avx512(&g_kernels[SA_CPU_PATH_AVX512]);
#if defined(__x86_64__)
    sa_cpu_gemm_avx512(&g_kernels[SA_CPU_PATH_AVX512], __builtin_cpu_supports("avx512bf16"));
#endif

    g_active = SA_CPU_PATH_REF;
    for (int p = 0; p < SA_CPU_PATH_COUNT; p++)
        if (g_available[p]) g_active = (enum sa_cpu_path)p;
    const char *env = getenv("SALIGN_CPU");
    if (env && *env) {
        int want = -1;
        for (int p = 0; p < SA_CPU_PATH_COUNT; p++)
            if (!strcasecmp(env, g_path_names[p])) want = p;
        if (want < 0) sa_log(SA_LOG_WARN, "SALIGN_CPU=%s: unknown (ref, avx2 or avx512); using %s", env, g_path_names[g_active]);
        else if (!g_available[want])
            sa_log(SA_LOG_WARN, "SALIGN_CPU=%s: this CPU lacks it; using %s", env, g_path_names[g_active]);
        else g_active = (enum sa_cpu_path)want;
    }
}

/* The path's GEMM for a product with T rows, or NULL: the dot kernels. */
static sa_gemm_fn gemm_for(enum sa_cpu_path path, enum sa_dtype wtype, int64_t T, bool batch_invariant) {
    const struct sa_cpu_gemm *g = &g_kernels[path].gemm[wtype];
    return g->fn && (T >= g->min_T || batch_invariant) ? g->fn : NULL;
}

enum sa_cpu_path sa_cpu_path_active(void) {
    pthread_once(&g_once, init_paths);
    return g_active;
}

bool sa_cpu_path_available(enum sa_cpu_path p) {
    pthread_once(&g_once, init_paths);
    return (unsigned)p < SA_CPU_PATH_COUNT && g_available[p];
}

const char *sa_cpu_path_name(enum sa_cpu_path p) { return (unsigned)p < SA_CPU_PATH_COUNT ? g_path_names[p] : "?"; }

const char *sa_matmul_kernel_name(enum sa_cpu_path path, enum sa_dtype wtype) {
    pthread_once(&g_once, init_paths);
    if ((unsigned)path >= SA_CPU_PATH_COUNT || (unsigned)wtype >= SA_DTYPE_COUNT) return NULL;
    if (g_kernels[path].k[wtype].dot) return g_kernels[path].k[wtype].name;
    return sa_matmul_supported(wtype) ? "dequant.f32" : NULL;
}

sa_act_row_fn sa_cpu_act_row_of(enum sa_cpu_path path) {
    pthread_once(&g_once, init_paths);
    SA_ASSERT((unsigned)path < SA_CPU_PATH_COUNT);
    return g_kernels[path].act_row ? g_kernels[path].act_row : sa_cpu_act_row;
}

const struct sa_cpu_kernels *sa_cpu_kernels_of(enum sa_cpu_path path) {
    pthread_once(&g_once, init_paths);
    SA_ASSERT((unsigned)path < SA_CPU_PATH_COUNT);
    return &g_kernels[path];
}

/* Types sa_dequantize handles (dtype.h): everything known except the integer types and F64. */
bool sa_matmul_supported(enum sa_dtype wtype) {
    pthread_once(&g_once, init_paths);
    if ((unsigned)wtype >= SA_DTYPE_COUNT) return false;
    if (g_kernels[SA_CPU_PATH_REF].k[wtype].dot) return true;
    if (!sa_dtype_is_known((uint32_t)wtype)) return false;
    return !(wtype >= SA_DTYPE_I8 && wtype <= SA_DTYPE_F64);
}

static size_t row_bytes(enum sa_dtype t, int64_t n) {
    int64_t blk;
    size_t bytes;
    sa_cpu_type_layout(t, &blk, &bytes);
    if (blk > 0) {
        SA_ASSERT(n % blk == 0);
        return (size_t)(n / blk) * bytes;
    }
    uint64_t rb = 0;
    SA_ASSERT(sa_dtype_row_bytes(t, (uint64_t)n, &rb));
    return (size_t)rb;
}

const char *sa_matmul_kernel_name_t(enum sa_cpu_path path, enum sa_dtype wtype, int64_t T, bool batch_invariant) {
    pthread_once(&g_once, init_paths);
    if ((unsigned)path < SA_CPU_PATH_COUNT && (unsigned)wtype < SA_DTYPE_COUNT && gemm_for(path, wtype, T, batch_invariant))
        return g_kernels[path].gemm[wtype].name;
    return sa_matmul_kernel_name(path, wtype);
}

/* The larger of the dot kernels' and the GEMMs' activations, whatever the path: the caller
 * does not know which one runs. */
size_t sa_matmul_scratch_bytes(enum sa_dtype wtype, int64_t n_in, int64_t T) {
    enum sa_act_kind kind = sa_cpu_act_kind(wtype), gkind = sa_cpu_gemm_act_kind(wtype);
    size_t row = kind == SA_ACT_F32 ? 0 : sa_cpu_act_row_bytes(kind, n_in);
    if (gkind != SA_ACT_F32) row = SA_MAX(row, sa_cpu_act_row_bytes(gkind, n_in));
    return (size_t)T * row;
}

/* ---- the parallel product ---- */

/* Elements of W dequantized at a time by the fallback (a multiple of every block size). */
#define FALLBACK_PIECE 1024
/* Activation rows per pass for T > 1: their quantized rows stay in L2 while all the rows of
 * a chunk of W go by (as many as fit in ~256 KiB, a multiple of 4). */
#define ACT_BLOCK_BYTES (16 * 1024)

struct mm_ctx {
    enum sa_dtype wtype;
    enum sa_act_kind act;
    sa_dot_fn dot;       /* NULL: fallback */
    sa_dot_rows_fn rows; /* T = 1: the row loop inside the kernel (NULL: dot per row), or the
                          * GEMM's (sa_cpu_gemm.rows, with the GEMM's activation kind) */
    sa_dot_fn dot_f32;   /* the path's F32 kernel, for the fallback */
    sa_gemm_fn gemm;     /* non-NULL: prefill GEMM in tiles of SA_GEMM_ROWS rows x t_block */
    sa_act_row_fn act_row;
    const uint8_t *W;  /* (n_out, w_row_bytes) */
    size_t w_row_bytes;
    int64_t n_in, n_out, T;
    const float *X;   /* (T, n_in) */
    const void *xa;   /* (T, x_row_bytes): X in the activation kind (X itself for F32) */
    size_t x_row_bytes;
    float *Y;         /* (T, n_out) */
    void *scratch;
    int64_t rows_per_chunk, n_chunks, t_block;
    _Atomic int64_t next_chunk;
};

static void quantize_task(void *p, int ith, int nth) {
    struct mm_ctx *c = p;
    for (int64_t t = ith; t < c->T; t += nth)
        c->act_row(c->act, c->X + t * c->n_in, (char *)c->scratch + (size_t)t * c->x_row_bytes, c->n_in);
}

static void rows_direct(const struct mm_ctx *c, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    float out[SA_DOT_MAX_X];
    if (t1 - t0 == 1 && c->rows) { /* decode */
        c->rows(c->n_in, c->W + (size_t)r0 * c->w_row_bytes, c->w_row_bytes, r1 - r0,
                (const char *)c->xa + (size_t)t0 * c->x_row_bytes, c->Y + t0 * c->n_out + r0);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = c->W + (size_t)r * c->w_row_bytes;
        for (int64_t t = t0; t < t1; t += SA_DOT_MAX_X) {
            int nx = (int)SA_MIN((int64_t)SA_DOT_MAX_X, t1 - t);
            c->dot(c->n_in, w, (const char *)c->xa + (size_t)t * c->x_row_bytes, c->x_row_bytes, nx, out);
            for (int j = 0; j < nx; j++) c->Y[(t + j) * c->n_out + r] = out[j];
        }
    }
}

static void rows_fallback(const struct mm_ctx *c, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    float buf[FALLBACK_PIECE], out[SA_DOT_MAX_X];
    int64_t blk;
    size_t blk_bytes;
    sa_cpu_type_layout(c->wtype, &blk, &blk_bytes);
    size_t piece_bytes = row_bytes(c->wtype, FALLBACK_PIECE);
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t t = t0; t < t1; t++) c->Y[t * c->n_out + r] = 0.0f;
        const uint8_t *w = c->W + (size_t)r * c->w_row_bytes;
        for (int64_t i = 0, k = 0; i < c->n_in; i += FALLBACK_PIECE, k++) {
            int64_t len = SA_MIN((int64_t)FALLBACK_PIECE, c->n_in - i);
            enum sa_status st = sa_dequantize(c->wtype, w + (size_t)k * piece_bytes, buf, len);
            SA_ASSERT(st == SA_STATUS_OK); /* sa_matmul_supported() was checked by the caller */
            for (int64_t t = t0; t < t1; t += SA_DOT_MAX_X) {
                int nx = (int)SA_MIN((int64_t)SA_DOT_MAX_X, t1 - t);
                c->dot_f32(len, buf, c->X + t * c->n_in + i, (size_t)c->n_in * sizeof(float), nx, out);
                for (int j = 0; j < nx; j++) c->Y[(t + j) * c->n_out + r] += out[j];
            }
        }
    }
}

static void matmul_task(void *p, int ith, int nth) {
    struct mm_ctx *c = p;
    (void)ith, (void)nth;
    for (;;) {
        int64_t k = atomic_fetch_add_explicit(&c->next_chunk, 1, memory_order_relaxed);
        if (k >= c->n_chunks) break;
        if (c->gemm) { /* chunk k: panel k / n_tb of rows, block k % n_tb of activation rows */
            int64_t n_tb = (c->T + c->t_block - 1) / c->t_block, r0 = k / n_tb * c->rows_per_chunk;
            int64_t t0 = k % n_tb * c->t_block;
            struct sa_gemm_args a = {c->W, c->w_row_bytes, c->n_in, c->n_out, c->xa, c->x_row_bytes, c->Y};
            c->gemm(&a, r0, SA_MIN(r0 + c->rows_per_chunk, c->n_out), t0, SA_MIN(t0 + c->t_block, c->T));
            continue;
        }
        int64_t r0 = k * c->rows_per_chunk, r1 = SA_MIN(r0 + c->rows_per_chunk, c->n_out);
        for (int64_t t0 = 0; t0 < c->T; t0 += c->t_block) {
            int64_t t1 = SA_MIN(t0 + c->t_block, c->T);
            if (c->dot || (c->rows && c->T == 1)) rows_direct(c, r0, r1, t0, t1);
            else rows_fallback(c, r0, r1, t0, t1);
        }
    }
}

void sa_matmul_path(enum sa_cpu_path path, struct sa_threadpool *tp, enum sa_dtype wtype, const void *W, int64_t n_in,
                    int64_t n_out, const float *X, int64_t T, float *Y, void *scratch, bool batch_invariant) {
    pthread_once(&g_once, init_paths);
    SA_ASSERT((unsigned)path < SA_CPU_PATH_COUNT && g_available[path]);
    SA_ASSERT(sa_matmul_supported(wtype));
    SA_ASSERT(n_in > 0 && n_out >= 0 && T >= 0);
    if (n_out == 0 || T == 0) return;
    sa_gemm_fn gemm = gemm_for(path, wtype, T, batch_invariant);
    /* T = 1 through a GEMM (batch-invariant decode): its row loop when it has one (the same
     * bits without a panel), run as the dot kernels' decode */
    sa_dot_rows_fn gemm_rows = gemm && T == 1 ? g_kernels[path].gemm[wtype].rows : NULL;
    struct mm_ctx c = {
        .wtype = wtype,
        .act = gemm ? sa_cpu_gemm_act_kind(wtype) : sa_cpu_act_kind(wtype),
        .gemm = gemm_rows ? NULL : gemm,
        .act_row = g_kernels[path].act_row ? g_kernels[path].act_row : sa_cpu_act_row,
        .dot = g_kernels[path].k[wtype].dot,
        .rows = gemm_rows ? gemm_rows : g_kernels[path].k[wtype].rows,
        .dot_f32 = g_kernels[path].k[SA_DTYPE_F32].dot,
        .W = W,
        .w_row_bytes = row_bytes(wtype, n_in),
        .n_in = n_in,
        .n_out = n_out,
        .T = T,
        .X = X,
        .Y = Y,
        .scratch = scratch,
    };
    c.x_row_bytes = sa_cpu_act_row_bytes(c.act, n_in);
    if (c.act == SA_ACT_F32) {
        c.xa = X;
    } else {
        SA_ASSERT(scratch != NULL);
        c.xa = scratch;
        if (T == 1) quantize_task(&c, 0, 1); /* one row: not worth waking the workers */
        else sa_threadpool_run(tp, quantize_task, &c);
    }
    int nth = sa_threadpool_n_threads(tp);
    if (gemm) {
        /* chunks of one panel of SA_GEMM_ROWS rows x t_block activation rows; the panel is
         * unpacked once per chunk, so T is split only to give ~8 chunks per thread when there
         * are few panels, and not below 32 rows. The split does not change any result. */
        int64_t n_panels = (n_out + SA_GEMM_ROWS - 1) / SA_GEMM_ROWS, n_tb = 1;
        if (nth > 1) n_tb = SA_MAX((int64_t)1, SA_MIN((8 * nth + n_panels - 1) / n_panels, T / 32));
        c.rows_per_chunk = SA_GEMM_ROWS;
        c.t_block = ((T + n_tb - 1) / n_tb + 7) / 8 * 8;
        c.n_chunks = n_panels * ((T + c.t_block - 1) / c.t_block);
        atomic_init(&c.next_chunk, 0);
        if (c.n_chunks == 1) matmul_task(&c, 0, 1);
        else sa_threadpool_run(tp, matmul_task, &c);
        return;
    }
    /* ~8 chunks per thread: threads that fall behind (a busy neighbour) take fewer. For
     * T > 1 a chunk is at least 4 rows so the 4 x T tile loop has work per row range. */
    int64_t min_rows = T == 1 ? 16 : 4;
    c.rows_per_chunk = SA_MAX(min_rows, (n_out + 8 * nth - 1) / (8 * nth));
    c.n_chunks = (n_out + c.rows_per_chunk - 1) / c.rows_per_chunk;
    c.t_block = SA_MAX((int64_t)SA_DOT_MAX_X, (int64_t)(ACT_BLOCK_BYTES / c.x_row_bytes) / SA_DOT_MAX_X * SA_DOT_MAX_X);
    atomic_init(&c.next_chunk, 0);
    if (c.n_chunks == 1) matmul_task(&c, 0, 1);
    else sa_threadpool_run(tp, matmul_task, &c);
}

void sa_matmul(struct sa_threadpool *tp, enum sa_dtype wtype, const void *W, int64_t n_in, int64_t n_out, const float *X,
               int64_t T, float *Y, void *scratch, bool batch_invariant) {
    sa_matmul_path(sa_cpu_path_active(), tp, wtype, W, n_in, n_out, X, T, Y, scratch, batch_invariant);
}

/* ---- reference ---- */

void sa_matmul_ref(enum sa_dtype wtype, const void *W, int64_t n_in, int64_t n_out, const float *X, int64_t T, float *Y) {
    size_t rb = row_bytes(wtype, n_in);
    float *w = malloc((size_t)n_in * sizeof(float));
    SA_ASSERT(w != NULL);
    for (int64_t r = 0; r < n_out; r++) {
        enum sa_status st = sa_dequantize(wtype, (const uint8_t *)W + (size_t)r * rb, w, n_in);
        SA_ASSERT(st == SA_STATUS_OK);
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * n_in;
            double s = 0.0;
            for (int64_t i = 0; i < n_in; i++) s += (double)w[i] * x[i];
            Y[t * n_out + r] = (float)s;
        }
    }
    free(w);
}
