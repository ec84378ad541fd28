/* ops.c: plain-C element-wise operations and attention of the transformer (rmsnorm, RoPE
 * in its two layouts, softmax, SwiGLU/GeGLU, bias, soft-capping, causal GQA attention over
 * the KV cache). The references they follow: llama.cpp ggml-cpu ops.cpp (rms_norm, rope,
 * soft_max) and Hugging Face modeling_llama.py / modeling_gemma3.py. */
#include "model/ops_impl.h"

#include "core/core_impl.h"

#include <math.h>
#include <string.h>

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

/* One thread's share of the (token, head) pairs. */
static void attention_task(void *vctx, int ith, int nth) {
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
            const float *k = a->k + j * kv_stride + g * D;
            float s = 0.0f;
            for (int64_t d = 0; d < D; d++) s += q[d] * k[d];
            s *= a->scale;
            if (a->softcap > 0.0f) s = a->softcap * tanhf(s / a->softcap);
            sc[j - lo] = s;
        }
        sa_op_softmax(sc, p - lo + 1);
        float *o = a->out + (t * a->n_head + h) * D;
        memset(o, 0, (size_t)D * sizeof *o);
        for (int64_t j = lo; j <= p; j++) {
            const float *v = a->v + j * kv_stride + g * D;
            const float w = sc[j - lo];
            for (int64_t d = 0; d < D; d++) o[d] += w * v[d];
        }
    }
}

void sa_op_attention(struct sa_threadpool *tp, const struct sa_attn_args *a) {
    sa_threadpool_run(tp, attention_task, (void *)a);
}
