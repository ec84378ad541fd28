/* train_loop.c: sa_train_run, the run behind `salign train`: records -> held-out split ->
 * token batches -> steps (gradient accumulation, global-norm clipping, AdamW, cosine schedule
 * with warmup) -> evaluation, checkpoints, CSV log, SVG loss curve -> export. It prints
 * nothing: progress goes to the caller's on_progress, which `salign train` draws.
 * Resume is exact: every random choice is a pure function of (seed, epoch) or (seed,
 * micro-batch), the data position is the step number, and the weights and AdamW moments are
 * restored bit for bit, so an interrupted and resumed run writes the same log.csv as an
 * uninterrupted one (same seed and threads). Checkpoint layout: docs/TRAINING.md. */
#define _GNU_SOURCE
#include "train/train_impl.h"

#include "core/core_impl.h"
#include "core/svg_impl.h"

#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>

struct sa_train_params sa_train_default_params(void) {
    struct sa_train_params p;
    memset(&p, 0, sizeof p);
    p.model = sa_train_model_default_params();
    p.optim = sa_train_optim_default();
    p.lr = 2e-5f;
    p.warmup_ratio = 0.03f;
    p.epochs = 3;
    p.batch = 4;
    p.grad_accum = 1;
    p.max_length = 512;
    p.eval_fraction = 0.05;
    p.log_every = 10;
    p.st_type = SA_DTYPE_F32;
    p.gguf_type = SA_DTYPE_F16;
    p.objective = SA_TRAIN_OBJ_SFT;
    p.dpo_beta = 0.1f;
    p.edit_weight = 1.0f;
    return p;
}

/* Loss history for the SVG (steps from 1; eval NaN where none). */
struct history {
    double *loss, *eval;
    int64_t n, cap;
};

static enum sa_status hist_set(struct history *h, int64_t step, double loss, double eval) {
    if (step >= h->cap) {
        int64_t cap = SA_MAX(step + 1, h->cap * 2 + 16);
        double *a = realloc(h->loss, (size_t)cap * sizeof *a);
        if (a) h->loss = a;
        double *b = a ? realloc(h->eval, (size_t)cap * sizeof *b) : NULL;
        if (b) h->eval = b;
        if (!a || !b) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        for (int64_t i = h->cap; i < cap; i++) h->loss[i] = h->eval[i] = NAN;
        h->cap = cap;
    }
    if (!isnan(loss)) h->loss[step] = loss;
    if (!isnan(eval)) h->eval[step] = eval;
    if (step + 1 > h->n) h->n = step + 1;
    return SA_STATUS_OK;
}

static void hist_free(struct history *h) {
    free(h->loss);
    free(h->eval);
}

/* An SVG line chart of the train loss (blue) and the eval loss (orange dots) over the steps. */
static enum sa_status write_svg(const char *path, const struct history *h) {
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < h->n; i++) {
        double v[2] = {h->loss[i], h->eval[i]};
        for (int k = 0; k < 2; k++)
            if (!isnan(v[k])) lo = fmin(lo, v[k]), hi = fmax(hi, v[k]);
    }
    if (!(hi > lo)) hi = lo + 1, lo = isfinite(lo) ? lo : 0;
    const double W = 640, H = 360;
    const struct sa_svg_frame f = {60, 20, W - 20, H - 40, 0, (double)SA_MAX(h->n - 1, 1), lo, hi};
    struct sa_svg g;
    sa_svg_init(&g);
    sa_svg_printf(&g,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                  "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n"
                  "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n"
                  "<text x=\"%.0f\" y=\"%.0f\">%.3f</text><text x=\"%.0f\" y=\"%.0f\">%.3f</text>\n"
                  "<text x=\"%.0f\" y=\"%.0f\">step</text><text x=\"%.0f\" y=\"%.0f\">%lld</text>\n"
                  "<text x=\"%.0f\" y=\"14\">loss: train (blue), held-out (orange)</text>\n",
                  W, H, f.x0, f.y1, f.x1, f.y1, f.x0, f.y0, f.x0, f.y1, 4.0, f.y0 + 4, hi, 4.0, f.y1, lo,
                  (f.x1 - f.x0) / 2 + f.x0, H - 8, f.x1 - 30, f.y1 + 16, (long long)(h->n - 1), f.x0 + 10);
    sa_svg_polyline(&g, &f, NULL, h->loss, (size_t)h->n, "fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"");
    sa_svg_markers(&g, &f, NULL, h->eval, (size_t)h->n, "#ff7f0e");
    return sa_svg_finish(&g, path);
}

struct run {
    const struct sa_train_params *p;
    struct sa_train_model *m;
    struct tr_dataset train, eval;
    int64_t nb;            /* micro-batches per epoch */
    int64_t total, warmup; /* steps */
    int64_t *order;        /* (n_train) order of the cached epoch */
    int64_t order_epoch;
    int32_t *tokens, *targets; // (B, T_max) x2; DPO: (2B, T_max)
    float *weights;            // (B, T_max) --edit-weight: the loss weight per row; NULL without
    double *ref;               // (2B) DPO: the reference log-probabilities of a micro-batch's pairs
    bool dpo;
    double eval_acc_before;    /* DPO: held-out reward accuracy before step 1 */
    int32_t pad;
    FILE *csv;
    struct history hist;
    double eval_before; /* held-out loss before step 1 (NaN: none; read back from log.csv on resume) */
    int64_t ckpt_step;  /* step of the newest checkpoint on disk (-1: none) */
    char path[4096];
};

/* A progress report to the caller (none when quiet). Fields the event does not set stay 0,
 * the losses NaN. */
static struct sa_train_progress progress_init(const struct run *r, enum sa_train_event ev) {
    struct sa_train_progress pr;
    memset(&pr, 0, sizeof pr);
    pr.event = ev;
    pr.total_steps = r->total;
    pr.loss = pr.eval_loss = NAN;
    pr.reward_margin = pr.reward_accuracy = pr.eval_accuracy = NAN;
    return pr;
}

static void report(const struct run *r, const struct sa_train_progress *pr) {
    if (r->p->on_progress && !r->p->quiet) r->p->on_progress(r->p->progress_user, pr);
}

static bool cancelled(const struct run *r) { return r->p->cancel && r->p->cancel(r->p->cancel_user); }

/* `out`/name, in r->path (valid until the next call). */
static const char *at(struct run *r, const char *name) {
    snprintf(r->path, sizeof r->path, "%s/%s", r->p->out, name);
    return r->path;
}

static enum sa_status micro_batch(struct run *r, int64_t u, const int64_t **idx, int32_t *nb) {
    int64_t epoch = u / r->nb, b = u % r->nb;
    if (epoch != r->order_epoch) {
        enum sa_status s = sa_tr_epoch_order(&r->train, r->p->batch, r->p->model.seed, epoch, r->order);
        if (s) return s;
        r->order_epoch = epoch;
    }
    *idx = r->order + b * r->p->batch;
    *nb = (int32_t)SA_MIN((int64_t)r->p->batch, r->train.n - b * r->p->batch);
    return SA_STATUS_OK;
}

/* Mean loss over the held-out examples (in their file order, batches of B). With `cancellable`,
 * the cancel hook is polled before each batch (CANCELLED). */
static enum sa_status evaluate(struct run *r, bool cancellable, double *out, double *acc) {
    *acc = NAN;
    if (r->dpo) {
        if (cancellable && cancelled(r)) return sa_error(SA_STATUS_CANCELLED, "training cancelled before the first step");
        return sa_tr_dpo_evaluate(r->m, &r->eval, r->p->batch, r->pad, r->p->dpo_beta, r->tokens, r->targets, out, acc);
    }
    double sum = 0;
    int64_t n_tok = 0, B = r->p->batch;
    int64_t *idx = malloc((size_t)B * sizeof *idx);
    if (!idx) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    enum sa_status s = SA_STATUS_OK;
    for (int64_t i = 0; i < r->eval.n && !s; i += B) {
        if (cancellable && cancelled(r)) {
            s = sa_error(SA_STATUS_CANCELLED, "training cancelled before the first step");
            break;
        }
        int32_t nb = (int32_t)SA_MIN(B, r->eval.n - i);
        for (int32_t k = 0; k < nb; k++) idx[k] = i + k;
        int64_t T;
        int64_t nt = sa_tr_batch_fill(&r->eval, idx, nb, (int32_t)B, r->pad, r->tokens, r->targets, &T);
        float l;
        s = sa_train_model_step_batch(r->m, r->tokens, r->targets, nb, T, 1.0f, false, 0, &l);
        sum += l;
        n_tok += nt;
    }
    free(idx);
    *out = n_tok ? sum / (double)n_tok : NAN;
    return s;
}

/* ---- checkpoints: out/checkpoint/ckpt-NNNNNN/{params.bin, adamw.bin, state.json} and
 * out/checkpoint/latest naming the newest complete one ---- */

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4352];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p)
            unlink(p);
    closedir(d);
    rmdir(dir);
}

static enum sa_status save_checkpoint(struct run *r, int64_t step, int64_t tokens_total) {
    char root[4096], dir[4224], prev[4224], name[32], *old = NULL;
    size_t len;
    snprintf(root, sizeof root, "%s/checkpoint", r->p->out);
    snprintf(name, sizeof name, "ckpt-%06lld", (long long)step);
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    enum sa_status s = sa_mkdir_p(dir, 0755);
    if (!s) s = sa_train_model_save_state(r->m, dir);
    if (s) return s;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddNumberToObject(j, "step", (double)step);
    cJSON_AddNumberToObject(j, "micro_batch", (double)(step * r->p->grad_accum));
    cJSON_AddNumberToObject(j, "epoch", (double)(step * r->p->grad_accum / r->nb));
    cJSON_AddNumberToObject(j, "batch_in_epoch", (double)(step * r->p->grad_accum % r->nb));
    cJSON_AddNumberToObject(j, "tokens", (double)tokens_total);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->p->model.seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddStringToObject(j, "rng", "stateless: shuffle = f(seed, epoch), LoRA dropout = f(seed, micro_batch)");
    cJSON_AddNumberToObject(j, "total_steps", (double)r->total);
    cJSON_AddNumberToObject(j, "batch", r->p->batch);
    cJSON_AddNumberToObject(j, "grad_accum", r->p->grad_accum);
    cJSON_AddNumberToObject(j, "n_train", (double)r->train.n);
    cJSON_AddNumberToObject(j, "lora_rank", r->p->model.lora_rank);
    cJSON_AddStringToObject(j, "precision", sa_train_precision_name(r->p->model.precision));
    cJSON_AddStringToObject(j, "objective", sa_train_objective_name(r->p->objective));
    if (r->dpo) cJSON_AddNumberToObject(j, "dpo_beta", r->p->dpo_beta);
    if (r->weights) cJSON_AddNumberToObject(j, "edit_weight", r->p->edit_weight);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    char sp[4300];
    snprintf(sp, sizeof sp, "%s/state.json", dir);
    s = sa_write_file_atomic(sp, text, strlen(text));
    free(text);
    if (s) return s;
    char lp[4200], line[48];
    snprintf(lp, sizeof lp, "%s/latest", root);
    if (sa_read_file(lp, 256, &old, &len)) old = NULL;
    int n = snprintf(line, sizeof line, "%s\n", name);
    if ((s = sa_write_file_atomic(lp, line, (size_t)n))) {
        free(old);
        return s;
    }
    if (old) {
        old[strcspn(old, "\n")] = 0;
        if (strcmp(old, name) && !strncmp(old, "ckpt-", 5) && !strchr(old, '/')) {
            snprintf(prev, sizeof prev, "%s/%s", root, old);
            remove_tree(prev);
        }
    }
    free(old);
    r->ckpt_step = step;
    return write_svg(at(r, "loss.svg"), &r->hist);
}

/* Reads the latest checkpoint: model state and the step; checks it belongs to this run. */
/* The directory of the checkpoint that `out`/checkpoint/latest names, into dir[n]. */
static enum sa_status latest_checkpoint(const char *out, char *dir, size_t n) {
    char lp[4200], *name = NULL;
    size_t len;
    snprintf(lp, sizeof lp, "%s/checkpoint/latest", out);
    enum sa_status s = sa_read_file(lp, 256, &name, &len);
    if (s) return sa_error(SA_STATUS_NOT_FOUND, "%s has no checkpoint (%s)", out, lp);
    name[strcspn(name, "\n")] = 0;
    snprintf(dir, n, "%s/checkpoint/%s", out, name);
    free(name);
    return SA_STATUS_OK;
}

static enum sa_status load_checkpoint(struct run *r, int64_t *step, int64_t *tokens) {
    char *text = NULL;
    size_t len;
    char dir[4400], sp[4500];
    enum sa_status s = latest_checkpoint(r->p->out, dir, sizeof dir);
    if (s) return sa_error(s, "--resume: %s", sa_last_error());
    snprintf(sp, sizeof sp, "%s/state.json", dir);
    if ((s = sa_read_file(sp, 1 << 20, &text, &len))) return s;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "step"), *tk = cJSON_GetObjectItemCaseSensitive(j, "tokens"),
                *sd = cJSON_GetObjectItemCaseSensitive(j, "seed"), *tot = cJSON_GetObjectItemCaseSensitive(j, "total_steps"),
                *bt = cJSON_GetObjectItemCaseSensitive(j, "batch"), *ga = cJSON_GetObjectItemCaseSensitive(j, "grad_accum"),
                *nt = cJSON_GetObjectItemCaseSensitive(j, "n_train");
    if (!cJSON_IsNumber(st) || !cJSON_IsNumber(tk) || !cJSON_IsString(sd) || !cJSON_IsNumber(tot) || !cJSON_IsNumber(bt) ||
        !cJSON_IsNumber(ga) || !cJSON_IsNumber(nt)) {
        cJSON_Delete(j);
        return sa_error(SA_STATUS_BAD_FILE, "%s: missing or ill-typed fields", sp);
    }
    bool same = strtoull(sd->valuestring, NULL, 10) == r->p->model.seed && (int64_t)tot->valuedouble == r->total &&
                (int)bt->valuedouble == r->p->batch && (int)ga->valuedouble == r->p->grad_accum &&
                (int64_t)nt->valuedouble == r->train.n;
    /* checkpoints from before mixed precision have no "precision": fp32 */
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "precision");
    enum sa_train_precision prec = SA_TRAIN_FP32;
    bool prec_ok = !pr || (cJSON_IsString(pr) && !sa_train_precision_from_name(pr->valuestring, &prec));
    /* checkpoints from before the objectives have none: sft */
    const cJSON *ob = cJSON_GetObjectItemCaseSensitive(j, "objective"), *bb = cJSON_GetObjectItemCaseSensitive(j, "dpo_beta");
    enum sa_train_objective obj = SA_TRAIN_OBJ_SFT;
    if (ob && (!cJSON_IsString(ob) || sa_train_objective_from_name(ob->valuestring, &obj))) same = false;
    if (obj != r->p->objective || (r->dpo && (!cJSON_IsNumber(bb) || (float)bb->valuedouble != r->p->dpo_beta)))
        same = false;
    /* checkpoints without "edit_weight" were trained with 1 */
    const cJSON *ew = cJSON_GetObjectItemCaseSensitive(j, "edit_weight");
    if ((ew && !cJSON_IsNumber(ew)) || (ew ? (float)ew->valuedouble : 1.0f) != r->p->edit_weight) same = false;
    *step = (int64_t)st->valuedouble;
    *tokens = (int64_t)tk->valuedouble;
    cJSON_Delete(j);
    if (!same)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "--resume: the checkpoint in %s was made with other options (seed, batch, grad-accum, epochs, "
                        "data, objective, beta or edit weight); resume with the same ones",
                        r->p->out);
    if (!prec_ok) return sa_error(SA_STATUS_BAD_FILE, "%s: bad \"precision\"", sp);
    if (prec != r->p->model.precision)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "--resume: the checkpoint in %s was trained with --precision %s; resume with the same "
                        "precision (not %s)",
                        r->p->out, sa_train_precision_name(prec), sa_train_precision_name(r->p->model.precision));
    return sa_train_model_load_state(r->m, dir);
}

/* --init-from: the trainable weights of another run (its directory: the checkpoint its
 * checkpoint/latest names; or a checkpoint directory; or a GGUF LoRA adapter file), the
 * optimizer left fresh. */
static enum sa_status load_init(struct run *r) {
    const char *from = r->p->init_from;
    char lp[4200], dir[4400], pp[4500];
    struct stat st;
    if (stat(from, &st) == 0 && S_ISREG(st.st_mode)) { /* a file: an adapter */
        enum sa_status s = sa_train_model_import_lora(r->m, from);
        return s ? sa_error_wrap(s, "--init-from") : SA_STATUS_OK;
    }
    snprintf(lp, sizeof lp, "%s/checkpoint/latest", from);
    if (!sa_file_exists(lp)) snprintf(dir, sizeof dir, "%s", from);
    else if (latest_checkpoint(from, dir, sizeof dir)) return sa_error_wrap(SA_STATUS_NOT_FOUND, "--init-from");
    snprintf(pp, sizeof pp, "%s/params.bin", dir);
    if (!sa_file_exists(pp))
        return sa_error(SA_STATUS_NOT_FOUND,
                        "--init-from: %s is neither a training run (no checkpoint/latest) nor a checkpoint (no params.bin)",
                        from);
    enum sa_status s = sa_train_model_load_params(r->m, dir);
    if (s) return sa_error_wrap(s, "--init-from %s", from);
    return SA_STATUS_OK;
}

/* Keeps the CSV rows up to `step` (the rows of steps after the checkpoint are redone) and
 * refills the history from them. */
static enum sa_status csv_truncate(struct run *r, int64_t step) {
    char *text = NULL;
    size_t len;
    const char *path = at(r, "log.csv");
    enum sa_status s = sa_read_file(path, 0, &text, &len);
    if (s) return s;
    struct sa_buf b;
    sa_buf_init(&b, 0);
    char *save = NULL;
    bool header = true;
    for (char *line = strtok_r(text, "\n", &save); line && !s; line = strtok_r(NULL, "\n", &save)) {
        if (!header) {
            long long st = strtoll(line, NULL, 10);
            if (st > step) break;
            char *f[12] = {0};
            int nf = 0;
            char *copy = strdup(line), *p = copy, *q;
            while (copy && nf < 12 && (q = strsep(&p, ","))) f[nf++] = q;
            double loss = nf > 2 && *f[2] ? strtod(f[2], NULL) : NAN, ev = nf > 6 && *f[6] ? strtod(f[6], NULL) : NAN;
            s = hist_set(&r->hist, st, loss, ev);
            if (st == 0 && !isnan(ev)) r->eval_before = ev; /* the run's held-out loss before step 1 */
            if (st == 0 && nf > 11 && *f[11]) r->eval_acc_before = strtod(f[11], NULL);
            free(copy);
        }
        header = false;
        if (!s) s = sa_buf_puts(&b, line);
        if (!s) s = sa_buf_puts(&b, "\n");
    }
    if (!s) s = sa_write_file_atomic(path, b.data ? b.data : "", b.len);
    sa_buf_free(&b);
    free(text);
    return s;
}

/* The cancel hook fired before step `step` + 1 finished (its partial gradients are dropped;
 * the weights and moments are those of step `step`): a checkpoint of step `step` unless it
 * exists or no step ran in this process, then CANCELLED. */
static enum sa_status cancel_run(struct run *r, int64_t step, int64_t tokens_total, int64_t done,
                                 struct sa_train_result *res) {
    res->stopped_early = true;
    if (done > 0 && r->ckpt_step != step) {
        enum sa_status s = save_checkpoint(r, step, tokens_total);
        if (s) return s;
    }
    if (r->ckpt_step >= 0)
        return sa_error(SA_STATUS_CANCELLED,
                        "training cancelled after step %lld of %lld; the checkpoint of step %lld in %s resumes it "
                        "(--resume)",
                        (long long)step, (long long)r->total, (long long)r->ckpt_step, r->p->out);
    return sa_error(SA_STATUS_CANCELLED, "training cancelled before the first step; no checkpoint was written");
}

static enum sa_status run_steps(struct run *r, int64_t start, int64_t tokens_total, struct sa_train_result *res) {
    const struct sa_train_params *p = r->p;
    double t0 = sa_time_now();
    int64_t done = 0;
    enum sa_status s = SA_STATUS_OK;
    for (int64_t step = start; step < r->total && !s; step++) {
        sa_train_model_zero_grad(r->m);
        /* the denominator: target tokens (DPO: pairs) of all micro-batches of the step (the mean
         * over them) */
        double n_tgt = 0; /* --edit-weight: the sum of the weights */
        for (int g = 0; g < p->grad_accum && !s; g++) {
            const int64_t *idx;
            int32_t nb;
            int64_t T;
            if ((s = micro_batch(r, step * p->grad_accum + g, &idx, &nb))) break;
            if (r->dpo) n_tgt += nb;
            else {
                int64_t nt = sa_tr_batch_fill(&r->train, idx, nb, p->batch, r->pad, r->tokens, r->targets, &T);
                n_tgt += r->weights ? sa_tr_batch_weights(&r->train, idx, nb, p->batch, T, p->edit_weight, r->weights)
                                    : (double)nt;
            }
        }
        double loss = 0;
        struct sa_train_dpo_stats dst = {0};
        int64_t tokens_before = tokens_total, res_tokens_before = res->tokens;
        bool stop_now = false;
        for (int g = 0; g < p->grad_accum && !s; g++) {
            if (cancelled(r)) {
                stop_now = true;
                break;
            }
            int64_t u = step * p->grad_accum + g, T;
            const int64_t *idx;
            int32_t nb;
            if ((s = micro_batch(r, u, &idx, &nb))) break;
            uint64_t seed = sa_tr_mix(p->model.seed ^ sa_tr_mix((uint64_t)u));
            if (r->dpo) {
                sa_tr_pair_fill(&r->train, idx, nb, r->pad, r->tokens, r->targets, &T);
                for (int32_t k = 0; k < nb; k++) {
                    const struct tr_example *e = &r->train.ex[idx[k]];
                    tokens_total += e->n - 1 + e->n2 - 1, res->tokens += e->n - 1 + e->n2 - 1;
                    r->ref[2 * k] = r->train.ref[2 * idx[k]];
                    r->ref[2 * k + 1] = r->train.ref[2 * idx[k] + 1];
                }
                struct sa_train_dpo_stats st;
                s = sa_train_model_dpo_step(r->m, r->tokens, r->targets, 2 * nb, T, r->ref, p->dpo_beta,
                                            (float)SA_MAX(n_tgt, 1), true, seed, &st);
                loss += st.loss;
                dst.chosen_reward += st.chosen_reward;
                dst.rejected_reward += st.rejected_reward;
                dst.n_correct += st.n_correct;
                dst.n_pairs += st.n_pairs;
                continue;
            }
            sa_tr_batch_fill(&r->train, idx, nb, p->batch, r->pad, r->tokens, r->targets, &T);
            if (r->weights) sa_tr_batch_weights(&r->train, idx, nb, p->batch, T, p->edit_weight, r->weights);
            for (int32_t k = 0; k < nb; k++) tokens_total += r->train.ex[idx[k]].n - 1, res->tokens += r->train.ex[idx[k]].n - 1;
            float l;
            s = sa_train_model_step_batch_weighted(r->m, r->tokens, r->targets, r->weights, nb, T,
                                                   (float)(n_tgt > 0 ? n_tgt : 1), true, seed, &l);
            loss += l;
        }
        if (s) break;
        if (stop_now) {
            res->tokens = res_tokens_before;
            s = cancel_run(r, step, tokens_before, done, res);
            break;
        }
        float lr = (float)(p->lr * sa_lr_cosine(step, r->warmup, r->total));
        double gnorm;
        if ((s = sa_train_model_adamw_step(r->m, &p->optim, lr, &gnorm))) break;
        done++;
        res->steps = step + 1;
        if (done == 1) res->first_loss = loss;
        res->last_loss = loss;
        double ev = NAN, eacc = NAN;
        bool last = step + 1 == r->total;
        if (r->eval.n && ((p->eval_every && (step + 1) % p->eval_every == 0) || last)) {
            if ((s = evaluate(r, false, &ev, &eacc))) break;
            if (last) res->eval_loss_after = ev, res->eval_accuracy_after = eacc;
        }
        if ((s = hist_set(&r->hist, step + 1, loss, ev))) break;
        double epoch = (double)(step * p->grad_accum + p->grad_accum) / (double)r->nb;
        fprintf(r->csv, "%lld,%.4f,%.6f,%.6e,%.6f,%lld,", (long long)(step + 1), epoch, loss, (double)lr, gnorm,
                (long long)tokens_total);
        if (!isnan(ev)) fprintf(r->csv, "%.6f", ev);
        double np = (double)SA_MAX(dst.n_pairs, 1), margin = (dst.chosen_reward - dst.rejected_reward) / np,
               acc = (double)dst.n_correct / np;
        if (r->dpo) {
            fprintf(r->csv, ",%.6f,%.6f,%.6f,%.4f,", dst.chosen_reward / np, dst.rejected_reward / np, margin, acc);
            if (!isnan(eacc)) fprintf(r->csv, "%.4f", eacc);
        }
        fprintf(r->csv, "\n");
        fflush(r->csv);
        bool stop = p->stop_after_steps > 0 && done >= p->stop_after_steps && !last;
        bool ckpt = (p->save_every && (step + 1) % p->save_every == 0) || last || stop;
        if (ckpt && (s = save_checkpoint(r, step + 1, tokens_total))) break;
        double el = sa_time_now() - t0;
        struct sa_train_progress pr = progress_init(r, SA_TRAIN_EVENT_STEP);
        pr.step = step + 1;
        pr.epoch = epoch;
        pr.loss = loss;
        pr.lr = lr;
        pr.grad_norm = gnorm;
        pr.tokens = tokens_total;
        pr.tokens_per_s = el > 0 ? (double)res->tokens / el : 0;
        pr.eta_s = el / (double)done * (double)(r->total - step - 1);
        pr.eval_loss = ev;
        if (r->dpo) pr.reward_margin = margin, pr.reward_accuracy = acc, pr.eval_accuracy = eacc;
        pr.log_step = p->log_every > 0 && ((step + 1) % p->log_every == 0 || last);
        pr.last = last;
        pr.checkpoint = ckpt;
        report(r, &pr);
        if (stop) {
            res->stopped_early = true;
            break;
        }
    }
    res->seconds = sa_time_now() - t0;
    return s;
}

static enum sa_status prepare(struct run *r, struct sa_records *recs, struct sa_train_result *res) {
    const struct sa_train_params *p = r->p;
    enum sa_status s = sa_records_load(p->data, SA_RECORD_ANY, recs);
    if (s) return s;
    if (p->max_records > 0 && (size_t)p->max_records < recs->n) {
        struct sa_records keep;
        sa_records_init(&keep);
        for (size_t i = 0; i < (size_t)p->max_records && !s; i++) s = sa_records_push(&keep, &recs->items[i]);
        sa_records_free(recs);
        *recs = keep;
        if (s) return s;
    }
    res->n_records = (int64_t)recs->n;
    bool *is_dev = calloc(recs->n ? recs->n : 1, sizeof *is_dev);
    if (!is_dev) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (p->eval_fraction > 0) s = sa_records_split(recs, p->eval_fraction, p->model.seed, is_dev);
    if (!s) s = sa_train_model_load(p->base, &p->model, &r->m);
    if (!s) s = sa_tr_dataset_build_obj(r->m, recs, is_dev, false, p->max_length, p->objective, &r->train);
    if (!s && p->eval_fraction > 0)
        s = sa_tr_dataset_build_obj(r->m, recs, is_dev, true, p->max_length, p->objective, &r->eval);
    free(is_dev);
    if (s) return s;
    res->n_skipped = r->train.n_skipped + r->eval.n_skipped;
    res->n_edits = r->dpo ? 0 : r->train.n_edits + r->eval.n_edits;
    res->n_train = r->train.n;
    res->n_eval = r->eval.n;
    res->n_truncated = r->train.n_truncated + r->eval.n_truncated;
    res->n_dropped = r->train.n_dropped + r->eval.n_dropped;
    if (r->train.n == 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "%s: no training record left (all dropped%s or held out)", p->data,
                        r->dpo ? ", without a preference" : "");
    r->nb = (r->train.n + p->batch - 1) / p->batch;
    r->total = p->max_steps > 0 ? p->max_steps : SA_MAX((int64_t)p->epochs * r->nb / p->grad_accum, 1);
    r->warmup = sa_lr_warmup_steps(p->warmup_ratio, r->total);
    int64_t T = 1, rows = r->dpo ? 2 * (int64_t)p->batch : p->batch;
    for (int64_t i = 0; i < r->train.n; i++) T = SA_MAX(T, SA_MAX(r->train.ex[i].n, r->train.ex[i].n2) - 1);
    for (int64_t i = 0; i < r->eval.n; i++) T = SA_MAX(T, SA_MAX(r->eval.ex[i].n, r->eval.ex[i].n2) - 1);
    size_t bytes;
    if ((s = sa_train_model_reserve(r->m, rows, T, &bytes))) return s;
    r->order = malloc((size_t)r->train.n * sizeof *r->order);
    r->tokens = malloc((size_t)(rows * T) * sizeof *r->tokens);
    r->targets = malloc((size_t)(rows * T) * sizeof *r->targets);
    r->ref = malloc((size_t)rows * sizeof *r->ref);
    if (!r->order || !r->tokens || !r->targets || !r->ref) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (p->edit_weight != 1.0f && !(r->weights = malloc((size_t)(rows * T) * sizeof *r->weights)))
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    r->order_epoch = -1;
    int32_t pad = sa_tokenizer_pad(r->m->tok);
    r->pad = pad >= 0 ? pad : sa_tokenizer_eot(r->m->tok);
    struct sa_train_progress pr = progress_init(r, SA_TRAIN_EVENT_START);
    pr.n_records = res->n_records;
    pr.n_train = r->train.n;
    pr.n_eval = r->eval.n;
    pr.n_truncated = res->n_truncated;
    pr.n_dropped = res->n_dropped;
    pr.arch = r->m->cfg.arch_name;
    pr.n_params = sa_train_model_n_params(r->m, false);
    pr.n_trainable = sa_train_model_n_params(r->m, true);
    pr.warmup_steps = r->warmup;
    pr.activation_bytes = bytes;
    pr.n_skipped = res->n_skipped;
    pr.n_edits = res->n_edits;
    report(r, &pr);
    /* DPO: the reference's log-probabilities, from the frozen initial model: after START (the
     * cancel hook works from there on) and before any step or checkpoint is loaded */
    if (r->dpo) {
        struct tr_dataset *ds[2] = {&r->train, &r->eval};
        return sa_tr_dpo_reference(p, r->m, ds, r->eval.n ? 2 : 1, r->pad);
    }
    return SA_STATUS_OK;
}

enum sa_status sa_train_run(const struct sa_train_params *params, struct sa_train_result *res) {
    struct sa_train_params p = *params;
    memset(res, 0, sizeof *res);
    res->eval_loss_before = res->eval_loss_after = NAN;
    if (!p.base || !p.data || !p.out) return sa_error(SA_STATUS_BAD_ARGUMENT, "training: base, data and out are required");
    if (p.batch <= 0 || p.grad_accum <= 0 || p.epochs < 0 || !(p.lr > 0) || p.warmup_ratio < 0 || p.warmup_ratio > 1 ||
        p.eval_fraction < 0 || p.eval_fraction >= 1 || p.max_steps < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: batch, grad-accum and lr must be positive, warmup ratio in [0, 1], "
                                                "eval fraction in [0, 1)");
    if ((unsigned)p.objective > SA_TRAIN_OBJ_SFT_UPSTREAM)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: unknown objective %d", (int)p.objective);
    if (p.objective == SA_TRAIN_OBJ_DPO && !(p.dpo_beta > 0 && isfinite(p.dpo_beta)))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: DPO's beta must be positive (%g)", (double)p.dpo_beta);
    if (!(p.edit_weight > 0 && isfinite(p.edit_weight)))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: the edit weight must be positive (%g)", (double)p.edit_weight);
    if (p.edit_weight != 1.0f && p.objective != SA_TRAIN_OBJ_SFT)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "training: the edit weight applies to the aligner's SFT only (objective %s)",
                        sa_train_objective_name(p.objective));
    res->eval_accuracy_before = res->eval_accuracy_after = NAN;
    struct run r;
    memset(&r, 0, sizeof r);
    r.p = &p;
    r.ckpt_step = -1;
    r.dpo = p.objective == SA_TRAIN_OBJ_DPO;
    r.eval_acc_before = NAN;
    struct sa_records recs;
    sa_records_init(&recs);
    enum sa_status s = sa_mkdir_p(p.out, 0755);
    char lp[4200];
    snprintf(lp, sizeof lp, "%s/checkpoint/latest", p.out);
    if (!s && !p.resume && sa_file_exists(lp))
        s = sa_error(SA_STATUS_BAD_ARGUMENT, "%s already holds a checkpoint: pass --resume to continue it, or another --out",
                     p.out);
    if (!s) s = prepare(&r, &recs, res);
    if (!s && !p.resume && p.init_from) s = load_init(&r);
    int64_t start = 0, tokens = 0;
    if (!s && p.resume) {
        s = load_checkpoint(&r, &start, &tokens);
        r.eval_before = NAN;
        if (!s) s = csv_truncate(&r, start);
        if (!s) {
            r.ckpt_step = start;
            res->eval_loss_before = r.eval_before;
            res->eval_accuracy_before = r.eval_acc_before;
            struct sa_train_progress pr = progress_init(&r, SA_TRAIN_EVENT_RESUMED);
            pr.step = start;
            report(&r, &pr);
        }
    }
    if (!s) {
        r.csv = fopen(at(&r, "log.csv"), p.resume ? "a" : "w");
        if (!r.csv) s = sa_error(SA_STATUS_IO, "cannot write %s", r.path);
        else if (!p.resume) {
            fprintf(r.csv, "step,epoch,loss,lr,grad_norm,tokens,eval_loss%s\n",
                    r.dpo ? ",reward_chosen,reward_rejected,reward_margin,reward_accuracy,eval_accuracy" : "");
            if (r.eval.n) {
                double ev, eacc;
                s = evaluate(&r, true, &ev, &eacc);
                if (!s) {
                    res->eval_loss_before = ev;
                    res->eval_accuracy_before = eacc;
                    s = hist_set(&r.hist, 0, NAN, ev);
                    fprintf(r.csv, "0,0,,,,0,%.6f", ev);
                    if (r.dpo) fprintf(r.csv, ",,,,,%.4f", eacc);
                    fprintf(r.csv, "\n");
                }
                if (!s) {
                    struct sa_train_progress pr = progress_init(&r, SA_TRAIN_EVENT_EVAL);
                    pr.eval_loss = ev;
                    pr.eval_accuracy = eacc;
                    report(&r, &pr);
                }
            }
            fflush(r.csv);
        }
    }
    if (!s) s = run_steps(&r, start, tokens, res);
    if (r.csv) fclose(r.csv);
    res->total_steps = r.total;
    if (!s && !res->stopped_early) s = write_svg(at(&r, "loss.svg"), &r.hist);
    if (!s && !res->stopped_early && !p.no_export) {
        struct sa_train_export_params ep = sa_train_export_default_params();
        ep.st_type = p.st_type;
        ep.gguf_type = p.gguf_type;
        ep.adapter_only = p.adapter_only;
        char md[4200];
        snprintf(md, sizeof md, "%s/model", p.out);
        struct sa_train_progress pr = progress_init(&r, SA_TRAIN_EVENT_EXPORT);
        pr.step = res->steps;
        pr.path = md;
        report(&r, &pr);
        s = sa_train_model_export(r.m, md, &ep);
    }
    struct rusage ru;
    if (!getrusage(RUSAGE_SELF, &ru)) res->peak_rss_kb = ru.ru_maxrss;
    hist_free(&r.hist);
    free(r.order);
    free(r.tokens);
    free(r.targets);
    free(r.ref);
    free(r.weights);
    sa_tr_dataset_free(&r.train);
    sa_tr_dataset_free(&r.eval);
    sa_train_model_free(r.m);
    sa_records_free(&recs);
    return s;
}
