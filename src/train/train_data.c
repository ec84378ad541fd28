/* train_data.c: training records -> token ids with a loss mask. The prompt is the aligner
 * input (sa_record_input: the same text at inference) as the user turn of the base model's
 * chat template, ending with the assistant opening; the target is the correction followed
 * by the end-of-turn token. Long records lose whole sentences from the start of the prefix
 * (the question and the most recent sentences stay; the target is never cut). Batches:
 * seeded shuffle, length bucketing, right padding. */
#define _GNU_SOURCE
#include "train/train_impl.h"

#include "core/core_impl.h"
#include "core/rng_impl.h"

#include <stdlib.h>
#include <string.h>

enum sa_status sa_tr_prompt_text(enum sa_chat_format fmt, const char *tmpl, const struct sa_record *rec, char **out) {
    char *user = NULL;
    *out = NULL;
    enum sa_status s = sa_record_input(rec, &user);
    if (s) return s;
    struct sa_chat_msg msg = {"user", user};
    s = sa_chat_render(fmt, tmpl, &msg, 1, true, NULL, out, NULL);
    free(user);
    return s;
}

static enum sa_status encode(const struct sa_tokenizer *tok, const char *text, bool special, int32_t **ids, size_t *n) {
    struct sa_tokenize_opts o = {special, special};
    return sa_tokenize(tok, text, strlen(text), o, ids, n);
}

enum sa_status sa_tr_upstream_prompt_text(enum sa_chat_format fmt, const char *tmpl, const struct sa_record *rec,
                                          size_t cut, char **out) {
    *out = NULL;
    char *pre = NULL;
    if (rec->kind == SA_RECORD_SENTENCE && rec->prefix[cut]) {
        const char *p = rec->prefix + cut;
        size_t n = strlen(p);
        bool ws = p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t' || p[n - 1] == '\r';
        if (!(pre = malloc(n + 2))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        memcpy(pre, p, n);
        if (!ws) pre[n++] = '\n';
        pre[n] = 0;
    }
    struct sa_chat_msg msg = {"user", rec->question};
    enum sa_status s = sa_chat_render(fmt, tmpl, &msg, 1, true, pre, out, NULL);
    free(pre);
    return s;
}

/* Prompt tokens of rec with its prefix starting at byte `cut`: the aligner's prompt, or the
 * upstream's. */
static enum sa_status prompt_ids(const struct sa_train_model *m, enum sa_chat_format fmt, bool upstream,
                                 const struct sa_record *rec, size_t cut, int32_t **ids, size_t *n) {
    char *text;
    enum sa_status s;
    if (upstream) {
        s = sa_tr_upstream_prompt_text(fmt, m->chat_template, rec, cut, &text);
    } else {
        struct sa_record r = *rec;
        if (r.kind == SA_RECORD_SENTENCE) r.prefix = rec->prefix + cut;
        s = sa_tr_prompt_text(fmt, m->chat_template, &r, &text);
    }
    if (s) return s;
    /* the BOS a template writes is in the text; otherwise the tokenizer adds it if the model asks */
    struct sa_tokenize_opts o = {!sa_chat_format_bos_in_text(fmt), true};
    s = sa_tokenize(m->tok, text, strlen(text), o, ids, n);
    free(text);
    return s;
}

/* Byte offsets where the prefix may start after dropping sentences: after each newline, and
 * after ". ", "! ", "? " (sentence ends inside a line). Ascending; the last is the end. */
static size_t cut_points(const char *prefix, size_t **out) {
    size_t len = strlen(prefix), n = 0;
    size_t *c = malloc((len + 1) * sizeof *c);
    if (!c) return 0;
    for (size_t i = 0; i < len; i++) {
        bool nl = prefix[i] == '\n';
        bool end = (prefix[i] == '.' || prefix[i] == '!' || prefix[i] == '?') && prefix[i + 1] == ' ';
        if (nl) c[n++] = i + 1;
        else if (end) c[n++] = i + 2;
    }
    c[n++] = len;
    *out = c;
    return n;
}

/* A response's tokens: text, then the end-of-turn token when `eot`. *ids malloc'd. */
static enum sa_status response_ids(const struct sa_train_model *m, const char *text, bool eot, int32_t **ids,
                                   size_t *n) {
    int32_t *t = NULL;
    size_t nt = 0;
    enum sa_status s = encode(m->tok, text, false, &t, &nt);
    if (s) return s;
    int32_t *t2 = realloc(t, (nt + 1) * sizeof *t);
    if (!t2) {
        free(t);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    if (eot) t2[nt++] = sa_tokenizer_eot(m->tok);
    *ids = t2;
    *n = nt;
    return SA_STATUS_OK;
}

/* prompt + target into *ids (malloc'd). */
static enum sa_status join_ids(const int32_t *p, size_t np, const int32_t *t, size_t nt, int32_t **ids, int32_t *n) {
    *ids = malloc((np + nt) * sizeof **ids);
    if (!*ids) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    memcpy(*ids, p, np * sizeof *p);
    memcpy(*ids + np, t, nt * sizeof *t);
    *n = (int32_t)(np + nt);
    return SA_STATUS_OK;
}

/* One record as an example of objective `obj`: *dropped when it does not fit (or a response
 * has no token), *skipped when DPO finds no preference in it. */
static enum sa_status encode_record(const struct sa_train_model *m, enum sa_chat_format fmt,
                                    enum sa_train_objective obj, const struct sa_record *rec, int32_t max_len,
                                    struct tr_example *ex, bool *dropped, bool *skipped) {
    int32_t *p = NULL, *t = NULL, *t2 = NULL;
    size_t np = 0, nt = 0, nt2 = 0;
    *dropped = *skipped = false;
    memset(ex, 0, sizeof *ex);
    const bool upstream = obj != SA_TRAIN_OBJ_SFT, dpo = obj == SA_TRAIN_OBJ_DPO;
    const char *original = rec->kind == SA_RECORD_SENTENCE ? rec->last : rec->answer;
    if (dpo && !strcmp(rec->correction, original)) {
        *skipped = true;
        return SA_STATUS_OK;
    }
    /* the aligner's target always ends its turn; the upstream's when the text ends the answer */
    bool eot = !upstream || rec->kind == SA_RECORD_ANSWER || rec->eos == 1;
    enum sa_status s = response_ids(m, rec->correction, eot, &t, &nt);
    /* DPO: the rejected response; SFT: the original, for the edit span */
    if (!s && original && (dpo || obj == SA_TRAIN_OBJ_SFT)) s = response_ids(m, original, eot, &t2, &nt2);
    if (!s) s = prompt_ids(m, fmt, upstream, rec, 0, &p, &np);
    if (s) goto out;
    if (nt == 0 || (dpo && nt2 == 0)) { /* an empty response without end of turn: nothing to score */
        *dropped = true;
        goto out;
    }
    size_t need = dpo ? SA_MAX(nt, nt2) : nt;
    if ((int64_t)(np + need) > max_len) {
        size_t *cuts = NULL, nc = rec->kind == SA_RECORD_SENTENCE ? cut_points(rec->prefix, &cuts) : 0;
        bool fits = false;
        /* smallest cut that fits: the prompt shrinks as the cut moves right (binary search) */
        size_t lo = 0, hi = nc;
        while (lo < hi && !s) {
            size_t mid = (lo + hi) / 2, n2 = 0;
            int32_t *p2 = NULL;
            s = prompt_ids(m, fmt, upstream, rec, cuts[mid], &p2, &n2);
            if (!s && (int64_t)(n2 + need) <= max_len) {
                hi = mid;
                free(p);
                p = p2;
                np = n2;
                fits = true;
            } else {
                lo = mid + 1;
                free(p2);
            }
        }
        free(cuts);
        if (s) goto out;
        if (!fits) {
            *dropped = true;
            goto out;
        }
        ex->truncated = true;
    }
    ex->n_prompt = (int32_t)np;
    if (!dpo && t2) sa_tr_edit_span(t, (int32_t)nt, t2, (int32_t)nt2, &ex->edit_lo, &ex->edit_hi);
    s = join_ids(p, np, t, nt, &ex->ids, &ex->n);
    if (!s && dpo) s = join_ids(p, np, t2, nt2, &ex->ids2, &ex->n2);
out:
    free(p);
    free(t);
    free(t2);
    return s;
}

enum sa_status sa_tr_dataset_build(const struct sa_train_model *m, const struct sa_records *r, const bool *use,
                                   bool use_value, int32_t max_len, struct tr_dataset *out) {
    return sa_tr_dataset_build_obj(m, r, use, use_value, max_len, SA_TRAIN_OBJ_SFT, out);
}

enum sa_status sa_tr_dataset_build_obj(const struct sa_train_model *m, const struct sa_records *r, const bool *use,
                                       bool use_value, int32_t max_len, enum sa_train_objective obj,
                                       struct tr_dataset *out) {
    memset(out, 0, sizeof *out);
    if (!m->tok) return sa_error(SA_STATUS_UNSUPPORTED, "training: the base model has no tokenizer");
    if (sa_tokenizer_eot(m->tok) < 0) return sa_error(SA_STATUS_UNSUPPORTED, "training: the tokenizer has no end-of-turn token");
    enum sa_chat_format fmt = sa_chat_template_detect(m->chat_template, m->cfg.arch_name);
    if (fmt == SA_CHAT_FORMAT_UNKNOWN)
        return sa_error(SA_STATUS_UNSUPPORTED,
                        "training: no known chat template in the base model (ChatML, Gemma or Llama 3 expected)");
    if (max_len < 8) return sa_error(SA_STATUS_BAD_ARGUMENT, "training: max length %d is too small", max_len);
    out->ex = calloc(r->n ? r->n : 1, sizeof *out->ex);
    if (!out->ex) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < r->n; i++) {
        if (use && use[i] != use_value) continue;
        bool dropped, skipped;
        enum sa_status s = encode_record(m, fmt, obj, &r->items[i], max_len, &out->ex[out->n], &dropped, &skipped);
        if (s) {
            free(out->ex[out->n].ids); /* a partial pair */
            sa_tr_dataset_free(out);
            return sa_error_wrap(s, "record %zu", i + 1);
        }
        if (skipped) {
            out->n_skipped++;
            continue;
        }
        if (dropped) {
            out->n_dropped++;
            continue;
        }
        out->n_truncated += out->ex[out->n].truncated;
        out->n_edits += out->ex[out->n].edit_hi > out->ex[out->n].edit_lo;
        out->n++;
    }
    if (obj == SA_TRAIN_OBJ_DPO && !(out->ref = calloc((size_t)(2 * out->n + 1), sizeof *out->ref))) {
        sa_tr_dataset_free(out);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    return SA_STATUS_OK;
}

void sa_tr_dataset_free(struct tr_dataset *d) {
    if (!d) return;
    if (!d->ex) {
        free(d->ref);
        memset(d, 0, sizeof *d);
        return;
    }
    for (int64_t i = 0; i < d->n; i++) {
        free(d->ex[i].ids);
        free(d->ex[i].ids2);
    }
    free(d->ex);
    free(d->ref);
    memset(d, 0, sizeof *d);
}

static const struct tr_dataset *sort_ds;
static int by_len(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    int32_t li = sort_ds->ex[i].n, lj = sort_ds->ex[j].n;
    if (li != lj) return li < lj ? -1 : 1;
    return i < j ? -1 : i > j;
}

static void shuffle(int64_t *v, int64_t n, struct sa_rng *r) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(sa_rng_next(r) % (uint64_t)(i + 1));
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

enum sa_status sa_tr_epoch_order(const struct tr_dataset *d, int32_t B, uint64_t seed, int64_t epoch, int64_t *order) {
    int64_t n = d->n, nb = (n + B - 1) / B;
    struct sa_rng r;
    sa_rng_seed(&r, sa_tr_mix(seed ^ sa_tr_mix(0xE90Cull + (uint64_t)epoch)));
    for (int64_t i = 0; i < n; i++) order[i] = i;
    shuffle(order, n, &r);
    /* bucketing: sort windows of 50 batches by length (deterministic: ties by index) */
    int64_t win = 50 * (int64_t)B;
    sort_ds = d;
    for (int64_t w = 0; w < n; w += win) qsort(order + w, (size_t)SA_MIN(win, n - w), sizeof *order, by_len);
    sort_ds = NULL;
    /* shuffle the order of the batches (the last, possibly short, batch moves as well) */
    int64_t *perm = malloc((size_t)(nb ? nb : 1) * sizeof *perm), *tmp = malloc((size_t)(n ? n : 1) * sizeof *tmp);
    if (!perm || !tmp) {
        free(perm);
        free(tmp);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    for (int64_t b = 0; b < nb; b++) perm[b] = b;
    shuffle(perm, nb, &r);
    /* keep the short batch last so that every batch but the last has B examples */
    int64_t last = nb - 1;
    for (int64_t b = 0; b < nb; b++)
        if (perm[b] == last) {
            perm[b] = perm[nb - 1];
            perm[nb - 1] = last;
            break;
        }
    int64_t k = 0;
    for (int64_t b = 0; b < nb; b++)
        for (int64_t i = perm[b] * B; i < SA_MIN((perm[b] + 1) * B, n); i++) tmp[k++] = order[i];
    memcpy(order, tmp, (size_t)n * sizeof *order);
    free(perm);
    free(tmp);
    return SA_STATUS_OK;
}

int64_t sa_tr_batch_fill(const struct tr_dataset *d, const int64_t *idx, int32_t nb, int32_t B, int32_t pad,
                         int32_t *tokens, int32_t *targets, int64_t *T_out) {
    int64_t T = 1, n_tgt = 0;
    for (int32_t b = 0; b < nb; b++) T = SA_MAX(T, d->ex[idx[b]].n - 1);
    for (int32_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            tokens[b * T + t] = pad;
            targets[b * T + t] = -100;
        }
    for (int32_t b = 0; b < nb; b++) {
        const struct tr_example *e = &d->ex[idx[b]];
        for (int32_t t = 0; t + 1 < e->n; t++) {
            tokens[b * T + t] = e->ids[t];
            if (t + 1 >= e->n_prompt) {
                targets[b * T + t] = e->ids[t + 1];
                n_tgt++;
            }
        }
    }
    *T_out = T;
    return n_tgt;
}

void sa_tr_edit_span(const int32_t *t, int32_t nt, const int32_t *o, int32_t no, int32_t *lo, int32_t *hi) {
    int32_t p = 0, q = 0;
    while (p < nt && p < no && t[p] == o[p]) p++;
    if (p == nt && p == no) {
        *lo = *hi = 0; /* a copy (or no token) */
        return;
    }
    while (q < nt - p && q < no - p && t[nt - 1 - q] == o[no - 1 - q]) q++;
    *lo = p;
    *hi = nt - q;
    if (*hi > *lo) return;
    /* only deletions: the token where the original's extra tokens were left out */
    *lo = p < nt ? p : nt - 1;
    *hi = *lo + 1;
}

double sa_tr_batch_weights(const struct tr_dataset *d, const int64_t *idx, int32_t nb, int32_t B, int64_t T,
                           float edit_weight, float *w) {
    double sum = 0;
    for (int64_t i = 0; i < (int64_t)B * T; i++) w[i] = 0;
    for (int32_t b = 0; b < nb; b++) {
        const struct tr_example *e = &d->ex[idx[b]];
        /* row t predicts ids[t + 1], target token j = t + 1 - n_prompt */
        for (int32_t t = SA_MAX(e->n_prompt - 1, 0); t + 1 < e->n; t++) {
            int32_t j = t + 1 - e->n_prompt;
            float v = j >= e->edit_lo && j < e->edit_hi ? edit_weight : 1.0f;
            w[b * T + t] = v;
            sum += v;
        }
    }
    return sum;
}

int64_t sa_tr_pair_fill(const struct tr_dataset *d, const int64_t *idx, int32_t nb, int32_t pad, int32_t *tokens,
                        int32_t *targets, int64_t *T_out) {
    int64_t T = 1, n_tgt = 0;
    for (int32_t b = 0; b < nb; b++) T = SA_MAX(T, SA_MAX(d->ex[idx[b]].n, d->ex[idx[b]].n2) - 1);
    for (int64_t i = 0; i < 2 * nb * T; i++) {
        tokens[i] = pad;
        targets[i] = -100;
    }
    for (int32_t b = 0; b < 2 * nb; b++) {
        const struct tr_example *e = &d->ex[idx[b / 2]];
        const int32_t *ids = b % 2 ? e->ids2 : e->ids;
        int32_t n = b % 2 ? e->n2 : e->n;
        for (int32_t t = 0; t + 1 < n; t++) {
            tokens[b * T + t] = ids[t];
            if (t + 1 >= e->n_prompt) {
                targets[b * T + t] = ids[t + 1];
                n_tgt++;
            }
        }
    }
    *T_out = T;
    return n_tgt;
}
