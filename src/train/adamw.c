/* adamw.c: the AdamW optimizer as torch.optim.AdamW computes it (same operations in the
 * same f32 order, so a run matches PyTorch to rounding), global-norm gradient clipping,
 * HF-style learning-rate schedules, and the optimizer state's save/restore format
 * (docs/internals/training_ops.md). */
#include "train/ops_train_impl.h"
#include "core/core_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "adamw.c: the state format is written as the host's bytes: little-endian hosts only"
#endif

#define ADAMW_MAGIC "SAADAMW1"
#define ADAMW_VERSION 1u
#define ADAMW_HEADER 32 /* magic 8, version 4, reserved 4, n_params 8, step 8 */

struct sa_adamw_cfg sa_adamw_default_cfg(void) {
    return (struct sa_adamw_cfg){.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
}

enum sa_status sa_adamw_init(struct sa_adamw *opt, int64_t n_params) {
    memset(opt, 0, sizeof *opt);
    if (n_params <= 0 || (uint64_t)n_params > SIZE_MAX / sizeof(float))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "adamw: bad parameter count %lld", (long long)n_params);
    opt->m = calloc((size_t)n_params, sizeof(float));
    opt->v = calloc((size_t)n_params, sizeof(float));
    if (!opt->m || !opt->v) {
        sa_adamw_free(opt);
        return sa_error(SA_STATUS_NO_MEMORY, "adamw: out of memory for the moments of %lld parameters",
                        (long long)n_params);
    }
    opt->n_params = n_params;
    return SA_STATUS_OK;
}

void sa_adamw_free(struct sa_adamw *opt) {
    if (!opt) return;
    free(opt->m);
    free(opt->v);
    memset(opt, 0, sizeof *opt);
}

void sa_adamw_update(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                     float eps, float weight_decay, int64_t t) {
    /* torch 1.13 _single_tensor_adamw: the scalars are computed in double (Python floats)
     * and each tensor op rounds to f32 */
    const double lr_d = lr, b1 = beta1, b2 = beta2;
    const float decay = (float)(1.0 - lr_d * (double)weight_decay);
    const float one_m_b1 = (float)(1.0 - b1), one_m_b2 = (float)(1.0 - b2);
    const double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    const float neg_step = (float)(-(lr_d / bc1));
    const float bc2_sqrt = (float)sqrt(bc2);
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i] * decay;
        float mi = m[i] * beta1 + one_m_b1 * g[i];
        float vi = v[i] * beta2 + one_m_b2 * g[i] * g[i];
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi + neg_step * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

/* Calls fn(params[i], j0, j1, off) for the pieces of the tensors that fall in [lo, hi) of
 * their concatenation (off: where tensor i starts in it). */
typedef void (*piece_fn)(void *ctx, const struct sa_param_ref *pr, int64_t j0, int64_t j1, int64_t off);
static void for_pieces(const struct sa_param_ref *params, int n_tensors, int64_t lo, int64_t hi, piece_fn fn,
                       void *ctx) {
    int64_t off = 0;
    for (int i = 0; i < n_tensors && off < hi; i++) {
        int64_t n = params[i].n;
        int64_t j0 = SA_MAX(lo - off, 0), j1 = SA_MIN(hi - off, n);
        if (j1 > j0) fn(ctx, &params[i], j0, j1, off);
        off += n;
    }
}

struct adamw_task {
    struct sa_adamw *opt;
    const struct sa_adamw_cfg *cfg;
    float lr;
    const struct sa_param_ref *params;
    int n_tensors;
    int64_t total;
};

static void adamw_piece(void *ctx, const struct sa_param_ref *pr, int64_t j0, int64_t j1, int64_t off) {
    const struct adamw_task *t = ctx;
    sa_adamw_update(pr->data + j0, pr->grad + j0, t->opt->m + off + j0, t->opt->v + off + j0, j1 - j0, t->lr,
                    t->cfg->beta1, t->cfg->beta2, t->cfg->eps, pr->decay ? t->cfg->weight_decay : 0.0f, t->opt->step);
}

static void adamw_run(void *ctx, int ith, int nth) {
    struct adamw_task *t = ctx;
    int64_t lo, hi;
    sa_tr_share(t->total, 16, ith, nth, &lo, &hi);
    for_pieces(t->params, t->n_tensors, lo, hi, adamw_piece, t);
}

enum sa_status sa_adamw_step_tp(struct sa_threadpool *tp, struct sa_adamw *opt, const struct sa_adamw_cfg *cfg,
                                float lr, const struct sa_param_ref *params, int n_tensors) {
    int64_t total = 0;
    for (int i = 0; i < n_tensors; i++) total += params[i].n;
    if (total != opt->n_params)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "adamw: the tensors hold %lld parameters, the state %lld",
                        (long long)total, (long long)opt->n_params);
    opt->step++;
    /* element-wise: any split gives the same bits */
    struct adamw_task t = {opt, cfg, lr, params, n_tensors, total};
    sa_threadpool_run(total >= 16384 ? tp : NULL, adamw_run, &t);
    return SA_STATUS_OK;
}

enum sa_status sa_adamw_step(struct sa_adamw *opt, const struct sa_adamw_cfg *cfg, float lr,
                             const struct sa_param_ref *params, int n_tensors) {
    return sa_adamw_step_tp(NULL, opt, cfg, lr, params, n_tensors);
}

/* ---- state ---- */

size_t sa_adamw_state_bytes(const struct sa_adamw *opt) {
    return ADAMW_HEADER + 2 * (size_t)opt->n_params * sizeof(float);
}

void sa_adamw_state_write(const struct sa_adamw *opt, void *buf) {
    uint8_t *b = buf;
    uint32_t version = ADAMW_VERSION, reserved = 0;
    memcpy(b, ADAMW_MAGIC, 8);
    memcpy(b + 8, &version, 4);
    memcpy(b + 12, &reserved, 4);
    memcpy(b + 16, &opt->n_params, 8);
    memcpy(b + 24, &opt->step, 8);
    size_t nb = (size_t)opt->n_params * sizeof(float);
    memcpy(b + ADAMW_HEADER, opt->m, nb);
    memcpy(b + ADAMW_HEADER + nb, opt->v, nb);
}

enum sa_status sa_adamw_state_read(struct sa_adamw *opt, const void *buf, size_t len) {
    const uint8_t *b = buf;
    if (len < ADAMW_HEADER || memcmp(b, ADAMW_MAGIC, 8) != 0)
        return sa_error(SA_STATUS_BAD_FILE, "adamw state: bad magic (not an optimizer state file)");
    uint32_t version;
    int64_t n, step;
    memcpy(&version, b + 8, 4);
    memcpy(&n, b + 16, 8);
    memcpy(&step, b + 24, 8);
    if (version != ADAMW_VERSION)
        return sa_error(SA_STATUS_UNSUPPORTED, "adamw state: version %u (this build reads %u)", version, ADAMW_VERSION);
    if (n != opt->n_params)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "adamw state: %lld parameters, the optimizer has %lld (another model?)",
                        (long long)n, (long long)opt->n_params);
    if (step < 0) return sa_error(SA_STATUS_BAD_FILE, "adamw state: negative step count %lld", (long long)step);
    size_t nb = (size_t)n * sizeof(float);
    if (len != ADAMW_HEADER + 2 * nb)
        return sa_error(SA_STATUS_BAD_FILE, "adamw state: %zu bytes, expected %zu (truncated?)", len,
                        (size_t)ADAMW_HEADER + 2 * nb);
    memcpy(opt->m, b + ADAMW_HEADER, nb);
    memcpy(opt->v, b + ADAMW_HEADER + nb, nb);
    opt->step = step;
    return SA_STATUS_OK;
}

enum sa_status sa_adamw_save(const struct sa_adamw *opt, const char *path) {
    size_t len = sa_adamw_state_bytes(opt);
    void *buf = malloc(len);
    if (!buf) return sa_error(SA_STATUS_NO_MEMORY, "adamw state: out of memory (%zu bytes)", len);
    sa_adamw_state_write(opt, buf);
    enum sa_status st = sa_write_file_atomic(path, buf, len);
    free(buf);
    return st;
}

enum sa_status sa_adamw_load(struct sa_adamw *opt, const char *path) {
    char *data;
    size_t len;
    enum sa_status st = sa_read_file(path, 0, &data, &len);
    if (st != SA_STATUS_OK) return st;
    st = sa_adamw_state_read(opt, data, len);
    free(data);
    if (st != SA_STATUS_OK) return sa_error_wrap(st, "%s", path);
    return SA_STATUS_OK;
}

/* ---- clipping ---- */

struct norm_task {
    const struct sa_param_ref *params;
    int n_tensors;
    int64_t total;
    double part[SA_TR_NORM_CHUNKS]; /* sum of squares of each chunk */
    float coef;                     /* clipping: the scale */
};

/* Four running sums (j0 + 4i + r) break the add latency chain; the pieces are fixed by the
 * chunks and the tensors, so the order of the additions is too. */
static void sumsq_piece(void *ctx, const struct sa_param_ref *pr, int64_t j0, int64_t j1, int64_t off) {
    const float *g = pr->grad;
    double s[4] = {0, 0, 0, 0};
    int64_t j = j0;
    for (; j + 4 <= j1; j += 4)
        for (int r = 0; r < 4; r++) s[r] += (double)g[j + r] * g[j + r];
    for (; j < j1; j++) s[0] += (double)g[j] * g[j];
    *(double *)ctx += (s[0] + s[1]) + (s[2] + s[3]);
}

/* Chunk k of SA_TR_NORM_CHUNKS: [total k / K, total (k+1) / K), whatever the threads. */
static void norm_run(void *ctx, int ith, int nth) {
    struct norm_task *t = ctx;
    int64_t k0, k1;
    sa_tr_share(SA_TR_NORM_CHUNKS, 1, ith, nth, &k0, &k1);
    for (int64_t k = k0; k < k1; k++) {
        double ss = 0.0;
        for_pieces(t->params, t->n_tensors, t->total * k / SA_TR_NORM_CHUNKS, t->total * (k + 1) / SA_TR_NORM_CHUNKS,
                   sumsq_piece, &ss);
        t->part[k] = ss;
    }
}

static void scale_piece(void *ctx, const struct sa_param_ref *pr, int64_t j0, int64_t j1, int64_t off) {
    float c = *(const float *)ctx;
    for (int64_t j = j0; j < j1; j++) pr->grad[j] *= c;
}

static void clip_run(void *ctx, int ith, int nth) {
    struct norm_task *t = ctx;
    int64_t lo, hi;
    sa_tr_share(t->total, 16, ith, nth, &lo, &hi);
    for_pieces(t->params, t->n_tensors, lo, hi, scale_piece, &t->coef);
}

double sa_grad_global_norm_tp(struct sa_threadpool *tp, const struct sa_param_ref *params, int n_tensors) {
    struct norm_task t = {.params = params, .n_tensors = n_tensors};
    for (int i = 0; i < n_tensors; i++) t.total += params[i].n;
    sa_threadpool_run(t.total >= 16384 ? tp : NULL, norm_run, &t);
    double ss = 0.0;
    for (int k = 0; k < SA_TR_NORM_CHUNKS; k++) ss += t.part[k];
    return sqrt(ss);
}

double sa_grad_global_norm(const struct sa_param_ref *params, int n_tensors) {
    return sa_grad_global_norm_tp(NULL, params, n_tensors);
}

double sa_grad_clip_tp(struct sa_threadpool *tp, const struct sa_param_ref *params, int n_tensors, double max_norm) {
    double norm = sa_grad_global_norm_tp(tp, params, n_tensors);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        struct norm_task t = {.params = params, .n_tensors = n_tensors, .coef = (float)coef};
        for (int i = 0; i < n_tensors; i++) t.total += params[i].n;
        sa_threadpool_run(t.total >= 16384 ? tp : NULL, clip_run, &t);
    }
    return norm;
}

double sa_grad_clip(const struct sa_param_ref *params, int n_tensors, double max_norm) {
    return sa_grad_clip_tp(NULL, params, n_tensors, max_norm);
}

/* ---- schedules (HF transformers optimization.py) ---- */

double sa_lr_cosine(int64_t step, int64_t warmup, int64_t total) {
    if (step < warmup) return (double)step / (double)SA_MAX(1, warmup);
    double progress = (double)(step - warmup) / (double)SA_MAX(1, total - warmup);
    double f = 0.5 * (1.0 + cos(3.14159265358979323846 * progress)); /* num_cycles 0.5: cos(pi * 2 * 0.5 * progress) */
    return f > 0.0 ? f : 0.0;
}

double sa_lr_linear(int64_t step, int64_t warmup, int64_t total) {
    if (step < warmup) return (double)step / (double)SA_MAX(1, warmup);
    double f = (double)(total - step) / (double)SA_MAX(1, total - warmup);
    return f > 0.0 ? f : 0.0;
}

int64_t sa_lr_warmup_steps(double ratio, int64_t total) {
    if (ratio <= 0) return 0;
    return (int64_t)ceil(ratio * (double)total);
}
