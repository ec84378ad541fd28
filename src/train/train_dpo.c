/* train_dpo.c: what the run needs for DPO (Rafailov et al. 2023; issue 15) besides the
 * model's loss (sa_train_model_dpo_step, train_model.c): the objective's names, the frozen
 * reference's log-probabilities of every pair, computed once before the first step, and the
 * held-out DPO loss and reward accuracy. */
#include "train/train_impl.h"

#include "core/core_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const obj_names[] = {"sft", "dpo", "sft-upstream"};

enum sa_status sa_train_objective_from_name(const char *name, enum sa_train_objective *out) {
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, obj_names[i])) {
            *out = (enum sa_train_objective)i;
            return SA_STATUS_OK;
        }
    return sa_error(SA_STATUS_BAD_ARGUMENT, "unknown training objective \"%s\" (sft, dpo or sft-upstream)",
                    name ? name : "(null)");
}

const char *sa_train_objective_name(enum sa_train_objective o) {
    return (unsigned)o < 3 ? obj_names[o] : "?";
}

/* The longest sequence of d, minus one (the width of its batches). */
static int64_t widest(const struct tr_dataset *d) {
    int64_t T = 1;
    for (int64_t i = 0; i < d->n; i++) T = SA_MAX(T, SA_MAX(d->ex[i].n, d->ex[i].n2) - 1);
    return T;
}

static enum sa_status ref_of(const struct sa_train_params *p, struct sa_train_model *rm, struct tr_dataset *d,
                             int32_t pad, int32_t *tokens, int32_t *targets) {
    int64_t idx[4096];
    for (int64_t i = 0; i < d->n; i += p->batch) {
        if (p->cancel && p->cancel(p->cancel_user))
            return sa_error(SA_STATUS_CANCELLED, "training cancelled before the first step (DPO reference)");
        int32_t nb = (int32_t)SA_MIN((int64_t)p->batch, d->n - i);
        for (int32_t k = 0; k < nb; k++) idx[k] = i + k;
        int64_t T;
        sa_tr_pair_fill(d, idx, nb, pad, tokens, targets, &T);
        enum sa_status s = sa_train_model_seq_logp(rm, tokens, targets, 2 * nb, T, 0, d->ref + 2 * i);
        if (s) return s;
    }
    return SA_STATUS_OK;
}

enum sa_status sa_tr_dpo_reference(const struct sa_train_params *p, struct sa_train_model *m,
                                   struct tr_dataset *const *ds, int n_ds, int32_t pad) {
    if (p->batch > 4096) return sa_error(SA_STATUS_BAD_ARGUMENT, "DPO: batch %d is above 4096 pairs", p->batch);
    struct sa_train_model *rm = m;
    enum sa_status s = SA_STATUS_OK;
    if (p->dpo_ref) {
        struct sa_train_model_params mp = p->model;
        mp.lora_rank = 0;
        if ((s = sa_train_model_load(p->dpo_ref, &mp, &rm))) return sa_error_wrap(s, "DPO reference %s", p->dpo_ref);
        if (rm->cfg.n_vocab != m->cfg.n_vocab) {
            s = sa_error(SA_STATUS_BAD_ARGUMENT, "DPO reference %s: vocabulary of %d tokens, the base has %d", p->dpo_ref,
                         rm->cfg.n_vocab, m->cfg.n_vocab);
            sa_train_model_free(rm);
            return s;
        }
    }
    int64_t T = 1;
    for (int i = 0; i < n_ds; i++) T = SA_MAX(T, widest(ds[i]));
    int32_t *tokens = malloc((size_t)(2 * p->batch * T) * sizeof *tokens);
    int32_t *targets = malloc((size_t)(2 * p->batch * T) * sizeof *targets);
    if (!tokens || !targets) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (!s) s = sa_train_model_reserve(rm, 2 * p->batch, T, NULL);
    bool was_off = rm->adapters_off;
    sa_train_model_set_adapters(rm, false); /* the base without the adapters (LoRA); no-op otherwise */
    for (int i = 0; i < n_ds && !s; i++) s = ref_of(p, rm, ds[i], pad, tokens, targets);
    rm->adapters_off = was_off;
    free(tokens);
    free(targets);
    if (rm != m) sa_train_model_free(rm);
    return s;
}

enum sa_status sa_tr_dpo_evaluate(struct sa_train_model *m, const struct tr_dataset *d, int32_t batch, int32_t pad,
                                  float beta, int32_t *tokens, int32_t *targets, double *loss, double *accuracy) {
    *loss = *accuracy = NAN;
    if (batch > 4096) return sa_error(SA_STATUS_BAD_ARGUMENT, "DPO: batch %d is above 4096 pairs", batch);
    int64_t idx[4096], correct = 0;
    double sum = 0;
    enum sa_status s = SA_STATUS_OK;
    m->no_dropout = true;
    for (int64_t i = 0; i < d->n && !s; i += batch) {
        int32_t nb = (int32_t)SA_MIN((int64_t)batch, d->n - i);
        for (int32_t k = 0; k < nb; k++) idx[k] = i + k;
        int64_t T;
        sa_tr_pair_fill(d, idx, nb, pad, tokens, targets, &T);
        struct sa_train_dpo_stats st;
        s = sa_train_model_dpo_step(m, tokens, targets, 2 * nb, T, d->ref + 2 * i, beta, 1.0f, false, 0, &st);
        sum += st.loss;
        correct += st.n_correct;
    }
    m->no_dropout = false;
    if (!s && d->n) {
        *loss = sum / (double)d->n;
        *accuracy = (double)correct / (double)d->n;
    }
    return s;
}
