/* test_adamw.c: the AdamW optimizer (src/train/adamw.c): the update against a double
 * precision transcription of the algorithm, per-tensor weight decay, state save/restore
 * (bit-identical continuation, rejected bad files), global-norm clipping and the learning
 * rate schedules. The comparison with torch.optim.AdamW is tests/py/test_train_ops_ref.py. */
#include "core/core_impl.h"
#include "harness.h"
#include "core/rng_impl.h"
#include "train/ops_train_impl.h"

#include <stdlib.h>

static struct sa_rng rng;

static void fill(float *p, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) p[i] = (float)((2.0 * sa_rng_uniform(&rng) - 1.0) * scale);
}

/* AdamW in double (Loshchilov & Hutter 2019, Algorithm 2 as torch writes it). */
static void adamw_double(double *p, const double *g, double *m, double *v, int n, double lr, double b1, double b2,
                         double eps, double wd, int t) {
    for (int i = 0; i < n; i++) {
        p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
        p[i] -= lr * mh / (sqrt(vh) + eps);
    }
}

static void test_update_matches_double(void) {
    enum { N = 64, STEPS = 20 };
    float p[N], g[N];
    double pd[N], gd[N], md[N] = {0}, vd[N] = {0};
    struct sa_adamw opt;
    CHECK_OK(sa_adamw_init(&opt, N));
    struct sa_adamw_cfg cfg = sa_adamw_default_cfg();
    CHECK(cfg.beta1 == 0.9f && cfg.beta2 == 0.999f && cfg.eps == 1e-8f && cfg.weight_decay == 0.01f);
    cfg.weight_decay = 0.1f;
    fill(p, N, 1.0f);
    for (int i = 0; i < N; i++) pd[i] = p[i];
    double max_rel = 0;
    for (int t = 1; t <= STEPS; t++) {
        fill(g, N, 0.5f);
        for (int i = 0; i < N; i++) gd[i] = g[i];
        struct sa_param_ref pr = {p, g, N, true};
        CHECK_OK(sa_adamw_step(&opt, &cfg, 1e-2f, &pr, 1));
        adamw_double(pd, gd, md, vd, N, (double)1e-2f, (double)0.9f, (double)0.999f, (double)1e-8f, (double)0.1f, t);
        for (int i = 0; i < N; i++) max_rel = fmax(max_rel, fabs(p[i] - pd[i]) / fmax(fabs(pd[i]), 1e-3));
    }
    CHECK(opt.step == STEPS);
    CHECK_MSG(max_rel < 1e-5, "adamw vs double: %g", max_rel);
    printf("    adamw vs double over %d steps: max rel error %.2e\n", STEPS, max_rel);
    sa_adamw_free(&opt);
    sa_adamw_free(&opt); /* twice: nothing */
    sa_adamw_free(NULL);
}

static void test_first_step_and_decay(void) {
    /* step 1: mhat = g, vhat = g^2, so p -= lr * g / (|g| + eps) ~ lr * sign(g) */
    float p[4] = {1, 1, 1, 1}, g[4] = {0.5f, -2.0f, 1e-3f, 0.0f}, q[4] = {1, 1, 1, 1};
    struct sa_adamw opt;
    CHECK_OK(sa_adamw_init(&opt, 8));
    struct sa_adamw_cfg cfg = sa_adamw_default_cfg();
    struct sa_param_ref prs[2] = {{p, g, 4, true}, {q, g, 4, false}};
    CHECK_OK(sa_adamw_step(&opt, &cfg, 0.1f, prs, 2));
    double decay = 1 - 0.1 * 0.01;
    CHECK_NEAR(p[0], decay - 0.1, 1e-6);
    CHECK_NEAR(p[1], decay + 0.1, 1e-6);
    CHECK_NEAR(p[3], decay, 1e-7); /* zero gradient: only the decay */
    CHECK_NEAR(q[0], 1 - 0.1, 1e-6); /* the undecayed tensor */
    CHECK(q[3] == 1.0f);
    /* the tensors must cover the state exactly */
    struct sa_param_ref one = {p, g, 4, true};
    CHECK(sa_adamw_step(&opt, &cfg, 0.1f, &one, 1) == SA_STATUS_BAD_ARGUMENT);
    CHECK(opt.step == 1);
    sa_adamw_free(&opt);
    CHECK(sa_adamw_init(&opt, 0) == SA_STATUS_BAD_ARGUMENT);
}

static void test_state_roundtrip(void) {
    enum { N = 100 };
    float p[N], g[5][N], p_saved[N];
    fill(p, N, 1.0f);
    for (int s = 0; s < 5; s++) fill(g[s], N, 1.0f);
    struct sa_adamw a, b;
    CHECK_OK(sa_adamw_init(&a, N));
    CHECK_OK(sa_adamw_init(&b, N));
    struct sa_adamw_cfg cfg = sa_adamw_default_cfg();
    for (int s = 0; s < 3; s++) {
        struct sa_param_ref pr = {p, g[s], N, true};
        CHECK_OK(sa_adamw_step(&a, &cfg, 1e-3f, &pr, 1));
    }
    char path[512];
    snprintf(path, sizeof path, "%s/adamw.state", harness_tmpdir());
    CHECK_OK(sa_adamw_save(&a, path));
    memcpy(p_saved, p, sizeof p);
    for (int s = 3; s < 5; s++) {
        struct sa_param_ref pr = {p, g[s], N, true};
        CHECK_OK(sa_adamw_step(&a, &cfg, 1e-3f, &pr, 1));
    }
    CHECK_OK(sa_adamw_load(&b, path));
    CHECK(b.step == 3);
    for (int s = 3; s < 5; s++) {
        struct sa_param_ref pr = {p_saved, g[s], N, true};
        CHECK_OK(sa_adamw_step(&b, &cfg, 1e-3f, &pr, 1));
    }
    CHECK(memcmp(p, p_saved, sizeof p) == 0);
    CHECK(memcmp(a.m, b.m, N * 4) == 0 && memcmp(a.v, b.v, N * 4) == 0 && a.step == b.step);

    /* layout: header then m then v */
    size_t len = sa_adamw_state_bytes(&a);
    CHECK_EQ_INT(len, 32 + 2 * N * 4);
    uint8_t *buf = malloc(len);
    sa_adamw_state_write(&a, buf);
    CHECK(memcmp(buf, "SAADAMW1", 8) == 0);
    int64_t n, step;
    memcpy(&n, buf + 16, 8), memcpy(&step, buf + 24, 8);
    CHECK(n == N && step == 5);
    CHECK(memcmp(buf + 32, a.m, N * 4) == 0 && memcmp(buf + 32 + N * 4, a.v, N * 4) == 0);
    /* bad states are refused and leave the optimizer as it was */
    CHECK(sa_adamw_state_read(&b, buf, len - 1) == SA_STATUS_BAD_FILE);
    buf[0] = 'X';
    CHECK(sa_adamw_state_read(&b, buf, len) == SA_STATUS_BAD_FILE);
    buf[0] = 'S';
    buf[8] = 2;
    CHECK(sa_adamw_state_read(&b, buf, len) == SA_STATUS_UNSUPPORTED);
    buf[8] = 1;
    struct sa_adamw c;
    CHECK_OK(sa_adamw_init(&c, N + 1));
    CHECK(sa_adamw_state_read(&c, buf, len) == SA_STATUS_BAD_ARGUMENT);
    CHECK(c.step == 0);
    CHECK_OK(sa_adamw_state_read(&b, buf, len));
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such.state", harness_tmpdir());
    CHECK(sa_adamw_load(&b, missing) != SA_STATUS_OK);
    free(buf);
    sa_adamw_free(&a), sa_adamw_free(&b), sa_adamw_free(&c);
}

static void test_clip(void) {
    float g1[3] = {3, 0, 0}, g2[2] = {0, 4}, p[5] = {0};
    struct sa_param_ref prs[2] = {{p, g1, 3, true}, {p + 3, g2, 2, false}};
    CHECK_NEAR(sa_grad_global_norm(prs, 2), 5.0, 1e-12);
    CHECK_NEAR(sa_grad_clip(prs, 2, 10.0), 5.0, 1e-12);
    CHECK(g1[0] == 3.0f && g2[1] == 4.0f); /* below the limit: untouched */
    CHECK_NEAR(sa_grad_clip(prs, 2, 1.0), 5.0, 1e-12);
    CHECK_NEAR(sa_grad_global_norm(prs, 2), 1.0, 1e-6);
    CHECK_NEAR(g1[0], 0.6, 1e-6);
    CHECK_NEAR(g2[1], 0.8, 1e-6);
}

static void test_schedules(void) {
    /* HF get_cosine_schedule_with_warmup(10, 110) */
    CHECK(sa_lr_cosine(0, 10, 110) == 0.0);
    CHECK_NEAR(sa_lr_cosine(5, 10, 110), 0.5, 1e-12);
    CHECK_NEAR(sa_lr_cosine(10, 10, 110), 1.0, 1e-12);
    CHECK_NEAR(sa_lr_cosine(60, 10, 110), 0.5, 1e-12);
    CHECK_NEAR(sa_lr_cosine(35, 10, 110), 0.5 * (1 + cos(3.14159265358979323846 * 0.25)), 1e-12);
    CHECK_NEAR(sa_lr_cosine(110, 10, 110), 0.0, 1e-12);
    CHECK(sa_lr_cosine(200, 10, 110) >= 0.0);
    CHECK_NEAR(sa_lr_cosine(0, 0, 100), 1.0, 1e-12);
    CHECK_NEAR(sa_lr_linear(60, 10, 110), 0.5, 1e-12);
    CHECK(sa_lr_linear(120, 10, 110) == 0.0);
    CHECK_EQ_INT(sa_lr_warmup_steps(0.03, 1000), 30);
    CHECK_EQ_INT(sa_lr_warmup_steps(0.1, 15), 2); /* ceil(1.5) */
    CHECK_EQ_INT(sa_lr_warmup_steps(0.0, 15), 0);
}

int main(void) {
    sa_rng_seed(&rng, 7);
    RUN(test_update_matches_double);
    RUN(test_first_step_and_decay);
    RUN(test_state_roundtrip);
    RUN(test_clip);
    RUN(test_schedules);
    return harness_summary();
}
