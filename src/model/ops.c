/* ops.c: plain-C element-wise operations and attention of the transformer (rmsnorm, RoPE
 * in its two layouts, softmax, SwiGLU/GeGLU, bias, soft-capping, causal GQA attention over
 * the KV cache). The references they follow: llama.cpp ggml-cpu ops.cpp (rms_norm, rope,
 * soft_max) and Hugging Face modeling_llama.py / modeling_gemma3.py. */
#include "model/ops_impl.h"

#include "core/core_impl.h"
#include "formats/dtype_impl.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

void sa_op_rmsnorm(float *y, const float *x, const float *w, int64_t n_rows, int64_t n, float eps) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double ss = 0.0; /* double accumulation, as ggml's ggml_float */
        for (int64_t i = 0; i < n; i++) ss += (double)xr[i] * xr[i];
        const float s = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        if (w) {
            for (int64_t i = 0; i < n; i++) yr[i] = xr[i] * s * w[i];
        } else {
            for (int64_t i = 0; i < n; i++) yr[i] = xr[i] * s;
        }
    }
}

void sa_op_rope(float *x, const int32_t *pos, int64_t T, int64_t n_head, int64_t head_dim, int64_t n_rot,
                const float *inv_freq, enum sa_rope_mode mode) {
    const int64_t half = n_rot / 2;
    for (int64_t t = 0; t < T; t++) {
        const double p = (double)pos[t];
        for (int64_t i = 0; i < half; i++) {
            const double a = p * (double)inv_freq[i];
            const float c = (float)cos(a), s = (float)sin(a);
            for (int64_t h = 0; h < n_head; h++) {
                float *xh = x + (t * n_head + h) * head_dim;
                /* the pair (i0, i1) rotates by angle a */
                const int64_t i0 = mode == SA_ROPE_NEOX ? i : 2 * i;
                const int64_t i1 = mode == SA_ROPE_NEOX ? i + half : 2 * i + 1;
                const float x0 = xh[i0], x1 = xh[i1];
                xh[i0] = x0 * c - x1 * s;
                xh[i1] = x0 * s + x1 * c;
            }
        }
    }
}

void sa_op_softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) { /* nothing to attend to: all zero (never happens causally) */
        memset(x, 0, (size_t)n * sizeof *x);
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const float e = expf(x[i] - mx);
        x[i] = e;
        sum += e;
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void sa_op_swiglu(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float v = g[i];
        y[i] = v / (1.0f + expf(-v)) * u[i];
    }
}

float sa_op_gelu_tanh(float x) {
    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): Hendrycks & Gimpel 2016, the
     * "gelu_pytorch_tanh" of Gemma's config */
    const float k = 0.7978845608028654f;
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

void sa_op_geglu(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = sa_op_gelu_tanh(g[i]) * u[i];
}

void sa_op_add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void sa_op_add_bias(float *x, const float *b, int64_t n_rows, int64_t n) {
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t i = 0; i < n; i++) x[r * n + i] += b[i];
}

void sa_op_scale(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void sa_op_softcap(float *x, float cap, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

/* ---- attention ---- */

/* Element i of a K or V cache of type t (f16 widened exactly to f32). */
static inline float kv_elem(const void *p, enum sa_dtype t, int64_t i) {
    return t == SA_DTYPE_F16 ? sa_half_to_float(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Reference: one thread's share of the (token, head) pairs, each a direct loop. */
static void attention_ref_task(void *vctx, int ith, int nth) {
    const struct sa_attn_args *a = vctx;
    const int64_t D = a->head_dim, kv_stride = a->n_head_kv * D, group = a->n_head / a->n_head_kv;
    SA_ASSERT(ith < a->n_scratch && a->pos0 + a->T <= a->scratch_stride);
    float *sc = a->scratch + (int64_t)ith * a->scratch_stride; /* (pos0+T) scores */
    for (int64_t i = ith; i < a->T * a->n_head; i += nth) {
        const int64_t t = i / a->n_head, h = i % a->n_head, g = h / group;
        const int64_t p = a->pos0 + t;
        const int64_t lo = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
        const float *q = a->q + (t * a->n_head + h) * D;
        for (int64_t j = lo; j <= p; j++) {
            const int64_t k0 = j * kv_stride + g * D; /* row j, head g */
            float s = 0.0f;
            for (int64_t d = 0; d < D; d++) s += q[d] * kv_elem(a->k, a->kv_type, k0 + d);
            s *= a->scale;
            if (a->softcap > 0.0f) s = a->softcap * tanhf(s / a->softcap);
            sc[j - lo] = s;
        }
        sa_op_softmax(sc, p - lo + 1);
        float *o = a->out + (t * a->n_head + h) * D;
        memset(o, 0, (size_t)D * sizeof *o);
        for (int64_t j = lo; j <= p; j++) {
            const int64_t v0 = j * kv_stride + g * D;
            const float w = sc[j - lo];
            for (int64_t d = 0; d < D; d++) o[d] += w * kv_elem(a->v, a->kv_type, v0 + d);
        }
    }
}

void sa_op_attention_ref(struct sa_threadpool *tp, const struct sa_attn_args *a) {
    SA_ASSERT(a->kv_type == SA_DTYPE_F32 || a->kv_type == SA_DTYPE_F16);
    sa_threadpool_run(tp, attention_ref_task, (void *)a);
}

#if defined(__x86_64__)
#define SA_INLINE static inline __attribute__((always_inline))
#define SA_ATTN_MAX_D 256 /* the tiled kernel's transposed queries live on the stack */

/* AVX2 + FMA: 8 lanes, 16 registers */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#if defined(__clang__) /* clang ignores the GCC pragma (the fuzz build) */
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#endif
#define W 8
#define JR 4
#define RR 2
#define DHB 2 /* query heads per pass of the decode kernel */
#define FN(name) name##_avx2
#define VF __m256
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VLOADH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p))) /* W halves (F16C) */
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VDIV(a, b) _mm256_div_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMIN(a, b) _mm256_min_ps(a, b)
#define VROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VPOW2I(n) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define VCMP_LE(a, b) _mm256_cmp_ps(a, b, _CMP_LE_OQ)
#define VMAND(a, b) _mm256_and_ps(a, b)
#define VSELECT(m, a, b) _mm256_blendv_ps(b, a, m)
#define VHSUM(v) hsum_avx2(v)
SA_INLINE float hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
/* the sums of a, b, c, d (8 lanes each) as one vector of 4 */
SA_INLINE __m128 hsum4_avx2(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 x = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b)); /* per 128: a02 b02 a13 b13 */
    const __m256 y = _mm256_add_ps(_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
    const __m256 z = _mm256_add_ps(_mm256_shuffle_ps(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm256_shuffle_ps(x, y, _MM_SHUFFLE(3, 2, 3, 2))); /* per 128: a b c d */
    return _mm_add_ps(_mm256_castps256_ps128(z), _mm256_extractf128_ps(z, 1));
}
#include "model/ops_x86_body.h"
#undef W
#undef JR
#undef RR
#undef DHB
#undef FN
#undef VF
#undef VZERO
#undef VSET1
#undef VLOAD
#undef VLOADH
#undef VSTORE
#undef VFMA
#undef VMUL
#undef VADD
#undef VSUB
#undef VDIV
#undef VMAX
#undef VMIN
#undef VROUND
#undef VPOW2I
#undef VCMP_LE
#undef VMAND
#undef VSELECT
#undef VHSUM
#if defined(__clang__)
#pragma clang attribute pop
#endif
#pragma GCC pop_options

/* AVX-512: 16 lanes, 32 registers, mask registers */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512dq,avx512vl")
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512vl"))), apply_to = function)
#endif
#define W 16
#define JR 8
#define RR 4
#define DHB 4
#define FN(name) name##_avx512
#define VF __m512
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOADH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VDIV(a, b) _mm512_div_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMIN(a, b) _mm512_min_ps(a, b)
#define VROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VPOW2I(n) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define VCMP_LE(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ)
#define VMAND(a, b) ((__mmask16)((a) & (b)))
#define VSELECT(m, a, b) _mm512_mask_blend_ps(m, b, a)
#define VHSUM(v) _mm512_reduce_add_ps(v)
/* the sums of a, b, c, d (16 lanes each) as one vector of 4 */
SA_INLINE __m128 hsum4_avx512(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512 x = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b)); /* per 128: a02 b02 a13 b13 */
    const __m512 y = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    const __m512 z = _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 2, 3, 2))); /* per 128: a b c d */
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(z), _mm512_extractf32x8_ps(z, 1));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
#include "model/ops_x86_body.h"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#pragma GCC pop_options

/* Decode items cut a long context into key ranges (so that a group is not too coarse a work
 * item: 3 KV heads on 2 threads), at least DEC_SPLIT_KEYS keys each, an even number of them
 * up to DEC_SPLIT_MAX. The count depends only on the shapes, never on the thread count, and
 * the ranges are merged in a fixed order, so the output is the same for 1, 2 or 3 threads.
 * The unnormalised partial rows (o, m, l per head and range) live on the caller's stack,
 * DEC_PART_FLOATS at most (fewer ranges when a model's heads need more). */
#define DEC_SPLIT_KEYS 256
#define DEC_SPLIT_MAX 8
#define DEC_PART_FLOATS 8192
#define DEC_MAX_GROUP 64 /* query heads per KV head the decode kernel takes (else: tiled) */

static int64_t decode_splits(int64_t n_keys, int64_t H, int64_t D) {
    int64_t ns = n_keys / DEC_SPLIT_KEYS;
    if (ns > DEC_SPLIT_MAX) ns = DEC_SPLIT_MAX;
    if (ns >= 2) ns &= ~(int64_t)1;
    while (ns > 1 && ns * H * (D + 2) > DEC_PART_FLOATS) ns -= 2;
    return ns < 1 ? 1 : ns;
}

/* One run of the fast attention: work items taken from an atomic counter (a share may run
 * on any thread, and a thread slowed by a neighbour takes fewer). Tiled items are ordered
 * by decreasing cost (the last token blocks see the most keys) so the causal triangle
 * balances. Decode items are (KV head, key range) pairs, all about the same size. */
struct attn_run {
    const struct sa_attn_args *a;
    bool avx512, decode;
    int64_t group, hpi, bq, n_hsub, n_tb, n_items;
    int64_t lo, n_keys, n_split; /* decode: keys lo .. lo+n_keys-1 in n_split ranges */
    float *part;                 /* decode with n_split > 1: (n_split) x [o (H, D), m (H), l (H)] */
    atomic_llong next;
};

static void attention_fast_task(void *vctx, int ith, int nth) {
    (void)nth;
    struct attn_run *r = vctx;
    const struct sa_attn_args *a = r->a;
    float qt[SA_ATTN_MAX_D * 32] __attribute__((aligned(64)));     /* (D, LANES) */
    float st[64 * 32] __attribute__((aligned(64)));                /* (BK, LANES) */
    float kvbuf[2 * 64 * SA_ATTN_MAX_D] __attribute__((aligned(64))); /* (2, BK, D): widened f16 rows */
    for (;;) {
        const int64_t i = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
        if (i >= r->n_items) break;
        if (r->decode) {
            const int64_t H = a->n_head, D = a->head_dim, g = i / r->n_split, sp = i % r->n_split, G = r->group;
            const int64_t j0 = r->lo + r->n_keys * sp / r->n_split, j1 = r->lo + r->n_keys * (sp + 1) / r->n_split;
            float ml[2 * DEC_MAX_GROUP];
            float *o = a->out + g * G * D, *m = ml, *l = ml + G;
            if (r->n_split > 1) {
                float *part = r->part + sp * H * (D + 2);
                o = part + g * G * D, m = part + H * D + g * G, l = part + H * D + H + g * G;
            }
            if (r->avx512) attn_decode_item_avx512(a, g, j0, j1, o, D, m, l);
            else attn_decode_item_avx2(a, g, j0, j1, o, D, m, l);
            if (r->n_split == 1)
                for (int64_t hh = 0; hh < G; hh++) {
                    const float inv = 1.0f / l[hh];
                    for (int64_t d = 0; d < D; d++) o[hh * D + d] *= inv;
                }
            continue;
        }
        const int64_t per_tb = a->n_head_kv * r->n_hsub;
        const int64_t tb = r->n_tb - 1 - i / per_tb, g = i % per_tb / r->n_hsub, hs = i % per_tb % r->n_hsub;
        const int64_t hb = g * r->group + hs * r->hpi;
        const int64_t nh = r->group - hs * r->hpi < r->hpi ? r->group - hs * r->hpi : r->hpi;
        const int64_t t0 = tb * r->bq, nt = a->T - t0 < r->bq ? a->T - t0 : r->bq;
        if (r->avx512) attn_item_avx512(a, g, hb, nh, t0, nt, qt, st, kvbuf);
        else attn_item_avx2(a, g, hb, nh, t0, nt, qt, st, kvbuf);
    }
}

/* out (H, D) = the key ranges' partial rows merged: o = sum_s e^{m_s - M} o_s / sum_s e^{m_s - M} l_s */
static void decode_merge(const struct sa_attn_args *a, const float *part, int64_t ns) {
    const int64_t H = a->n_head, D = a->head_dim, P = H * (D + 2);
    for (int64_t h = 0; h < H; h++) {
        float M = -FLT_MAX, L = 0.0f, w[DEC_SPLIT_MAX];
        for (int64_t s = 0; s < ns; s++) M = part[s * P + H * D + h] > M ? part[s * P + H * D + h] : M;
        for (int64_t s = 0; s < ns; s++) {
            w[s] = expf(part[s * P + H * D + h] - M);
            L += w[s] * part[s * P + H * D + H + h];
        }
        const float inv = 1.0f / L;
        float *o = a->out + h * D;
        for (int64_t d = 0; d < D; d++) {
            float acc = 0.0f;
            for (int64_t s = 0; s < ns; s++) acc += w[s] * part[s * P + h * D + d];
            o[d] = acc * inv;
        }
    }
}
#endif

/* Below this many multiply-adds (T * n_head * keys * head_dim) one thread does the whole
 * attention: handing it to the pool costs more than it saves (decode of short contexts). */
#define ATTN_MIN_THREADED_WORK (1 << 18)

void sa_op_attention_path(struct sa_threadpool *tp, const struct sa_attn_args *a, enum sa_cpu_path path,
                          enum sa_attn_kernel kernel) {
    SA_ASSERT(a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0 && a->T > 0);
    SA_ASSERT(a->kv_type == SA_DTYPE_F32 || a->kv_type == SA_DTYPE_F16);
#if defined(__x86_64__)
    const int64_t D = a->head_dim;
    const bool avx512 = path == SA_CPU_PATH_AVX512 && D % 16 == 0;
    const bool avx2 = path >= SA_CPU_PATH_AVX2 && D % 8 == 0;
    if ((avx512 || avx2) && D <= SA_ATTN_MAX_D) {
        struct attn_run r = {.a = a, .avx512 = avx512, .group = a->n_head / a->n_head_kv};
        const int64_t lanes = avx512 ? 32 : 16;
        float part[DEC_PART_FLOATS];
        if (kernel == SA_ATTN_AUTO)
            kernel = a->T == 1 && !a->batch_invariant && r.group <= DEC_MAX_GROUP ? SA_ATTN_DECODE : SA_ATTN_TILED;
        if (kernel == SA_ATTN_DECODE) {
            SA_ASSERT(a->T == 1 && r.group <= DEC_MAX_GROUP);
            r.decode = true;
            r.lo = a->window > 0 && a->pos0 - a->window + 1 > 0 ? a->pos0 - a->window + 1 : 0;
            r.n_keys = a->pos0 + 1 - r.lo;
            r.n_split = decode_splits(r.n_keys, a->n_head, D);
            r.part = part;
            r.n_items = a->n_head_kv * r.n_split;
        } else {
            r.hpi = r.group < lanes ? r.group : lanes;
            r.n_hsub = (r.group + r.hpi - 1) / r.hpi;
            r.bq = lanes / r.hpi;
            r.n_tb = (a->T + r.bq - 1) / r.bq;
            r.n_items = r.n_tb * a->n_head_kv * r.n_hsub;
        }
        atomic_init(&r.next, 0);
        const int64_t keys = a->window > 0 && a->window < a->pos0 + a->T ? a->window : a->pos0 + (a->T + 1) / 2;
        if (a->T * a->n_head * keys * D < ATTN_MIN_THREADED_WORK) attention_fast_task(&r, 0, 1);
        else sa_threadpool_run(tp, attention_fast_task, &r);
        if (r.decode && r.n_split > 1) decode_merge(a, part, r.n_split);
        return;
    }
#else
    (void)path;
    (void)kernel;
#endif
    sa_op_attention_ref(tp, a);
}

void sa_op_attention(struct sa_threadpool *tp, const struct sa_attn_args *a) {
    sa_op_attention_path(tp, a, sa_cpu_path_active(), SA_ATTN_AUTO);
}

/* ---- fused, row-parallel ops of the forward pass ---- */

typedef void (*row_norm_fn)(float *y, const float *x, const float *w, int64_t n, float eps);
typedef void (*row_glu_fn)(float *y, const float *g, const float *u, int64_t n);

static void rmsnorm_row_ref(float *y, const float *x, const float *w, int64_t n, float eps) {
    sa_op_rmsnorm(y, x, w, 1, n, eps);
}

/* The row kernels depend only on the CPU path and the row length, never on T or the thread
 * split, so a row's result does not depend on how tokens are batched. */
static row_norm_fn pick_norm(int64_t n) {
#if defined(__x86_64__)
    const enum sa_cpu_path p = sa_cpu_path_active();
    if (p == SA_CPU_PATH_AVX512 && n % 16 == 0) return rmsnorm_row_avx512;
    if (p >= SA_CPU_PATH_AVX2 && n % 8 == 0) return rmsnorm_row_avx2;
#endif
    (void)n;
    return rmsnorm_row_ref;
}

static row_glu_fn pick_glu(int64_t n, bool gelu) {
#if defined(__x86_64__)
    const enum sa_cpu_path p = sa_cpu_path_active();
    if (p == SA_CPU_PATH_AVX512 && n % 16 == 0) return gelu ? geglu_row_avx512 : swiglu_row_avx512;
    if (p >= SA_CPU_PATH_AVX2 && n % 8 == 0) return gelu ? geglu_row_avx2 : swiglu_row_avx2;
#endif
    (void)n;
    return gelu ? sa_op_geglu : sa_op_swiglu;
}

/* Below this many elements a row op runs on the calling thread: a pool run costs a few
 * microseconds, more than a decode step's rows take. */
#define ROWS_MIN_THREADED_ELEMS 16384

static void run_rows(struct sa_threadpool *tp, sa_task_fn fn, void *args, int64_t n_rows, int64_t row_elems) {
    if (!tp || n_rows < 2 || n_rows * row_elems < ROWS_MIN_THREADED_ELEMS) fn(args, 0, 1);
    else sa_threadpool_run(tp, fn, args);
}

static void add_rows(float *restrict y, const float *restrict x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

struct add_norm_args {
    float *x, *r, *y;
    const float *post_w, *w;
    int64_t T, n;
    float eps;
    row_norm_fn norm;
};

static void add_norm_task(void *vctx, int ith, int nth) {
    const struct add_norm_args *a = vctx;
    for (int64_t t = a->T * ith / nth; t < a->T * (ith + 1) / nth; t++) {
        float *x = a->x + t * a->n;
        if (a->r) {
            float *r = a->r + t * a->n;
            if (a->post_w) a->norm(r, r, a->post_w, a->n, a->eps);
            add_rows(x, r, a->n);
        }
        if (a->y) a->norm(a->y + t * a->n, x, a->w, a->n, a->eps);
    }
}

void sa_op_add_norm(struct sa_threadpool *tp, float *x, float *r, const float *post_w, float *y, const float *w,
                    int64_t T, int64_t n, float eps) {
    struct add_norm_args a = {.x = x, .r = r, .y = y, .post_w = post_w, .w = w, .T = T, .n = n, .eps = eps,
                              .norm = pick_norm(n)};
    run_rows(tp, add_norm_task, &a, T, n);
}

struct glu_args {
    float *y;
    const float *g, *u;
    int64_t T, n;
    row_glu_fn fn;
};

static void glu_task(void *vctx, int ith, int nth) {
    const struct glu_args *a = vctx;
    for (int64_t t = a->T * ith / nth; t < a->T * (ith + 1) / nth; t++)
        a->fn(a->y + t * a->n, a->g + t * a->n, a->u + t * a->n, a->n);
}

void sa_op_glu(struct sa_threadpool *tp, float *y, const float *g, const float *u, int64_t T, int64_t n, bool gelu) {
    struct glu_args a = {.y = y, .g = g, .u = u, .T = T, .n = n, .fn = pick_glu(n, gelu)};
    run_rows(tp, glu_task, &a, T, n);
}

struct qk_prep_run {
    const struct sa_qk_args *a;
    row_norm_fn norm;
};

/* RoPE of one token's heads: the same operations as sa_op_rope, the angles computed once
 * for the Q and the K heads */
static void rope_token(float *q, int64_t H, float *k, int64_t Hkv, int64_t D, int64_t n_rot, const float *inv_freq,
                       enum sa_rope_mode mode, int32_t pos) {
    const int64_t half = n_rot / 2;
    for (int64_t i = 0; i < half; i++) {
        const double ang = (double)pos * (double)inv_freq[i];
        const float c = (float)cos(ang), s = (float)sin(ang);
        const int64_t i0 = mode == SA_ROPE_NEOX ? i : 2 * i;
        const int64_t i1 = mode == SA_ROPE_NEOX ? i + half : 2 * i + 1;
        for (int64_t h = 0; h < H + Hkv; h++) {
            float *xh = h < H ? q + h * D : k + (h - H) * D;
            const float x0 = xh[i0], x1 = xh[i1];
            xh[i0] = x0 * c - x1 * s;
            xh[i1] = x0 * s + x1 * c;
        }
    }
}

static void qk_prep_task(void *vctx, int ith, int nth) {
    const struct qk_prep_run *r = vctx;
    const struct sa_qk_args *a = r->a;
    const int64_t nq = a->n_head * a->head_dim, nkv = a->n_head_kv * a->head_dim;
    for (int64_t t = a->T * ith / nth; t < a->T * (ith + 1) / nth; t++) {
        float *q = a->q + t * nq, *k = a->k + t * nkv, *v = a->v + t * nkv;
        if (a->bq) add_rows(q, a->bq, nq);
        if (a->bk) add_rows(k, a->bk, nkv);
        if (a->bv) add_rows(v, a->bv, nkv);
        if (a->q_norm)
            for (int64_t h = 0; h < a->n_head; h++) r->norm(q + h * a->head_dim, q + h * a->head_dim, a->q_norm, a->head_dim, a->eps);
        if (a->k_norm)
            for (int64_t h = 0; h < a->n_head_kv; h++)
                r->norm(k + h * a->head_dim, k + h * a->head_dim, a->k_norm, a->head_dim, a->eps);
        rope_token(q, a->n_head, k, a->n_head_kv, a->head_dim, a->n_rot, a->inv_freq, a->mode, a->pos[t]);
    }
}

void sa_op_qk_prep(struct sa_threadpool *tp, const struct sa_qk_args *a) {
    struct qk_prep_run r = {.a = a, .norm = pick_norm(a->head_dim)};
    run_rows(tp, qk_prep_task, &r, a->T, (a->n_head + a->n_head_kv) * a->head_dim * 4);
}
