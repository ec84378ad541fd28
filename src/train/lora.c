/* lora.c: LoRA adapters on a frozen linear layer (ops_train_impl.h): forward, backward
 * for A and B (and the input gradient through W and the adapter), PEFT's initialisation,
 * merging into W, and the counter-based dropout mask. */
#include "train/ops_train_impl.h"
#include "core/core_impl.h"
#include "core/rng_impl.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* splitmix64's finaliser over (seed, idx): a counter-based generator, so the mask of an
 * element does not depend on the order elements are visited in (threads, backward). */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int sa_tr_dropout_keep(uint64_t seed, uint64_t idx, float p) {
    uint64_t z = mix64(seed + 0x9E3779B97F4A7C15ull * (idx + 1));
    /* 24 random bits: a uniform in [0, 1) exactly representable in f32 */
    float u = (float)(z >> 40) * 0x1.0p-24f;
    return u >= p;
}

void sa_tr_lora_init(float *A, float *B, int64_t C, int64_t OC, int64_t r, uint64_t seed) {
    /* kaiming_uniform_(a = sqrt(5)): gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), bound =
     * gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in) (PEFT LoraLayer.reset_lora_parameters) */
    struct sa_rng rng;
    sa_rng_seed(&rng, seed);
    double bound = 1.0 / sqrt((double)C);
    for (int64_t i = 0; i < r * C; i++) A[i] = (float)((2.0 * sa_rng_uniform(&rng) - 1.0) * bound);
    memset(B, 0, (size_t)(OC * r) * sizeof(float));
}

void sa_tr_lora_fwd(const struct sa_tr_lora *l, float *out, float *xd, float *h, const float *inp, const float *W,
                    const float *bias, const float *A, const float *B, int64_t N) {
    const int64_t C = l->C, OC = l->OC, r = l->r;
    if (l->bf16) sa_tr_linear_fwd_bf16(l->tp, out, inp, W, bias, N, C, OC);
    else sa_tr_linear_fwd(out, inp, W, bias, N, C, OC);
    const float *src = inp;
    if (l->dropout > 0) {
        SA_ASSERT(xd && l->dropout < 1);
        float keep_scale = 1.0f / (1.0f - l->dropout);
        for (int64_t i = 0; i < N * C; i++)
            xd[i] = sa_tr_dropout_keep(l->seed, (uint64_t)i, l->dropout) ? inp[i] * keep_scale : 0.0f;
        src = xd;
    }
    /* h (N, r) = src (N, C) @ A^T (C, r) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)r, (blasint)C, 1.0f, src, (blasint)C, A,
                (blasint)C, 0.0f, h, (blasint)r);
    /* out (N, OC) += scale * h (N, r) @ B^T (r, OC) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)OC, (blasint)r, l->scale, h, (blasint)r,
                B, (blasint)r, 1.0f, out, (blasint)OC);
}

void sa_tr_lora_bwd(const struct sa_tr_lora *l, float *dinp, float *dA, float *dB, float *dh, float *dxd,
                    const float *dout, const float *inp, const float *xd, const float *h, const float *W,
                    const float *A, const float *B, int64_t N) {
    const int64_t C = l->C, OC = l->OC, r = l->r;
    /* through the frozen W: dinp += dout @ W */
    if (l->bf16) sa_tr_linear_bwd_bf16(l->tp, dinp, NULL, NULL, dout, inp, W, N, C, OC);
    else sa_tr_linear_bwd(dinp, NULL, NULL, dout, inp, W, N, C, OC);
    /* dh (N, r) = scale * dout (N, OC) @ B (OC, r) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)N, (blasint)r, (blasint)OC, l->scale, dout,
                (blasint)OC, B, (blasint)r, 0.0f, dh, (blasint)r);
    /* dB (OC, r) += scale * dout^T (OC, N) @ h (N, r) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)OC, (blasint)r, (blasint)N, l->scale, dout,
                (blasint)OC, h, (blasint)r, 1.0f, dB, (blasint)r);
    const float *src = l->dropout > 0 ? xd : inp;
    SA_ASSERT(src);
    /* dA (r, C) += dh^T (r, N) @ src (N, C) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)r, (blasint)C, (blasint)N, 1.0f, dh, (blasint)r,
                src, (blasint)C, 1.0f, dA, (blasint)C);
    if (l->dropout > 0) {
        SA_ASSERT(dxd);
        /* dxd (N, C) = dh @ A, then through the dropout mask */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)N, (blasint)C, (blasint)r, 1.0f, dh,
                    (blasint)r, A, (blasint)C, 0.0f, dxd, (blasint)C);
        float keep_scale = 1.0f / (1.0f - l->dropout);
        for (int64_t i = 0; i < N * C; i++)
            if (sa_tr_dropout_keep(l->seed, (uint64_t)i, l->dropout)) dinp[i] += dxd[i] * keep_scale;
    } else {
        /* dinp (N, C) += dh @ A */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)N, (blasint)C, (blasint)r, 1.0f, dh,
                    (blasint)r, A, (blasint)C, 1.0f, dinp, (blasint)C);
    }
}

void sa_tr_lora_merge(float *W, const float *A, const float *B, int64_t C, int64_t OC, int64_t r, float scale) {
    /* W (OC, C) += scale * B (OC, r) @ A (r, C) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)OC, (blasint)C, (blasint)r, scale, B, (blasint)r,
                A, (blasint)C, 1.0f, W, (blasint)C);
}
