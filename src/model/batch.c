/* batch.c: batched decoding over several contexts of one model (include/sa/batch.h): a
 * workspace of n_tokens rows (its own arena and thread pool), and sa_batch_decode, which cuts
 * the sequences' tokens into passes of at most n_tokens rows and runs sa_forward_batch on
 * each. docs/internals/batching.md. */
#include "model/context_impl.h"
#include "model/model_impl.h"

#include "core/core_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_SEQ_LIMIT 256 /* sa_forward_batch's most sequences per pass */

struct sa_batch {
    const struct sa_model *model;
    struct sa_batch_params params;
    struct sa_fwd_ws ws;
    void *arena;
    struct sa_fwd_seq *fs;  /* (n_seq_max) sequences of one pass */
    int32_t *done;          /* (n_seq_max) tokens of each sequence already computed */
    int32_t *len0;          /* (n_seq_max) each context's length before the call */
};

struct sa_batch_params sa_batch_default_params(void) {
    struct sa_batch_params p = {.n_tokens = 0, .n_seq_max = 0, .n_ctx = 0, .n_threads = 0, .batch_invariant = false};
    return p;
}

enum sa_status sa_batch_init(const struct sa_model *model, const struct sa_batch_params *params, struct sa_batch **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_init: out is NULL");
    *out = NULL;
    if (!model) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_init: model is NULL");
    struct sa_batch_params p = params ? *params : sa_batch_default_params();
    if (p.n_tokens < 0 || p.n_seq_max < 0 || p.n_ctx < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_init: n_tokens (%d), n_seq_max (%d) and n_ctx (%d) must be >= 0",
                        p.n_tokens, p.n_seq_max, p.n_ctx);
    const struct sa_model_config *c = &model->cfg;
    if (p.n_tokens == 0) p.n_tokens = 256;
    if (p.n_seq_max == 0) p.n_seq_max = 64;
    if (p.n_seq_max > BATCH_SEQ_LIMIT)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_init: n_seq_max %d is more than %d", p.n_seq_max, BATCH_SEQ_LIMIT);
    if (p.n_ctx == 0) p.n_ctx = c->n_ctx_train > 0 && c->n_ctx_train < 4096 ? c->n_ctx_train : 4096;
    struct sa_batch *b = calloc(1, sizeof *b);
    if (!b) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    b->model = model;
    b->params = p;
    b->fs = calloc((size_t)p.n_seq_max, sizeof *b->fs);
    b->done = calloc((size_t)p.n_seq_max, sizeof *b->done);
    b->len0 = calloc((size_t)p.n_seq_max, sizeof *b->len0);
    enum sa_status s = b->fs && b->done && b->len0 ? sa_threadpool_init(p.n_threads, &b->ws.tp)
                                                   : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (s) {
        sa_batch_free(b);
        return s;
    }
    struct sa_fwd_ws *ws = &b->ws;
    ws->n_threads = sa_threadpool_n_threads(ws->tp);
    ws->n_rows = p.n_tokens;
    ws->att_stride = p.n_ctx;
    ws->n_logit_rows = SA_MIN(p.n_tokens, p.n_seq_max);
    ws->mm_scratch_bytes = sa_fwd_scratch_bytes(model, p.n_tokens);
    struct sa_carve cv = {0};
    sa_fwd_ws_layout(model, ws, &cv);
    if (cv.overflow || cv.off > SIZE_MAX - 64) {
        sa_batch_free(b);
        return sa_error(SA_STATUS_NO_MEMORY, "sa_batch_init: n_tokens %d is too large", p.n_tokens);
    }
    const size_t bytes = (size_t)cv.off + 64;
    b->arena = calloc(1, bytes);
    if (!b->arena) {
        sa_batch_free(b);
        return sa_error(SA_STATUS_NO_MEMORY, "sa_batch_init: cannot allocate %zu MiB (HINT: a smaller n_tokens)", bytes >> 20);
    }
    struct sa_carve cv2 = {.base = (uint8_t *)(((uintptr_t)b->arena + 63) & ~(uintptr_t)63)};
    sa_fwd_ws_layout(model, ws, &cv2);
    *out = b;
    return SA_STATUS_OK;
}

void sa_batch_free(struct sa_batch *b) {
    if (!b) return;
    free(b->arena);
    sa_threadpool_free(b->ws.tp);
    free(b->fs);
    free(b->done);
    free(b->len0);
    free(b);
}

/* A sequence's input, checked as sa_ctx_decode does, plus the batch's own limits. */
static enum sa_status check_seq(const struct sa_batch *b, const struct sa_batch_seq *sq) {
    if (!sq->ctx) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_decode: a sequence has no context");
    if (sa_ctx_model(sq->ctx) != b->model)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_decode: a context is over another model than the batch");
    enum sa_status s = sa_ctx_check_append(sq->ctx, sq->tokens, sq->n);
    if (s) return s;
    if (sa_ctx_len(sq->ctx) + sq->n > b->params.n_ctx)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "sa_batch_decode: %d cached + %d new tokens exceed the batch's n_ctx %d (HINT: a larger "
                        "sa_batch_params.n_ctx)",
                        sa_ctx_len(sq->ctx), sq->n, b->params.n_ctx);
    return SA_STATUS_OK;
}

enum sa_status sa_batch_decode(struct sa_batch *b, struct sa_batch_seq *seqs, int32_t n_seqs) {
    return sa_batch_decode_mode(b, seqs, n_seqs, false);
}

enum sa_status sa_batch_decode_mode(struct sa_batch *b, struct sa_batch_seq *seqs, int32_t n_seqs, bool batch_invariant) {
    if (!b || !seqs || n_seqs <= 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_decode: no sequences");
    if (n_seqs > b->params.n_seq_max)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_decode: %d sequences, more than n_seq_max %d", n_seqs,
                        b->params.n_seq_max);
    for (int32_t i = 0; i < n_seqs; i++)
        for (int32_t j = 0; j < i; j++)
            if (seqs[i].ctx && seqs[i].ctx == seqs[j].ctx)
                return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_batch_decode: sequences %d and %d are the same context", j, i);
    const int32_t V = b->model->cfg.n_vocab;
    bool inv = b->params.batch_invariant || batch_invariant;
    char first_msg[512] = "";
    enum sa_status first = SA_STATUS_OK;
    for (int32_t i = 0; i < n_seqs; i++) {
        seqs[i].status = check_seq(b, &seqs[i]);
        if (seqs[i].status && !first) {
            first = seqs[i].status;
            snprintf(first_msg, sizeof first_msg, "%s", sa_last_error());
        }
        b->done[i] = 0;
        if (!seqs[i].status) {
            b->len0[i] = seqs[i].ctx->len;
            seqs[i].ctx->have_logits = false;
            inv = inv || seqs[i].ctx->params.batch_invariant;
        }
    }
    /* passes: each live sequence's next tokens, as many as fit in n_tokens rows */
    for (;;) {
        int32_t n_fs = 0, rows = 0;
        int32_t idx[BATCH_SEQ_LIMIT];
        for (int32_t i = 0; i < n_seqs && rows < b->params.n_tokens; i++) {
            struct sa_batch_seq *sq = &seqs[i];
            if (sq->status || b->done[i] == sq->n) continue;
            const int32_t T = SA_MIN(sq->n - b->done[i], b->params.n_tokens - rows);
            const bool last = b->done[i] + T == sq->n;
            b->fs[n_fs] = (struct sa_fwd_seq){
                .ctx = sq->ctx, .tokens = sq->tokens + b->done[i], .T = T,
                .logits_all = sq->logits_all ? sq->logits_all + (int64_t)b->done[i] * V : NULL,
                .logits_last = last ? sq->ctx->logits : NULL,
            };
            idx[n_fs++] = i;
            rows += T;
        }
        if (n_fs == 0) break;
        enum sa_status s = sa_forward_batch(b->model, &b->ws, b->fs, n_fs, inv);
        for (int32_t k = 0; k < n_fs; k++) {
            struct sa_batch_seq *sq = &seqs[idx[k]];
            enum sa_status e = s;
            if (!e && b->fs[k].cancelled) e = sa_error(SA_STATUS_CANCELLED, "decode cancelled");
            if (!e && b->fs[k].logits_last) e = sa_ctx_check_first_logits(sq->ctx, sq->ctx->logits);
            if (e) {
                sq->status = e;
                sq->ctx->len = b->len0[idx[k]];
                if (!first) {
                    first = e;
                    snprintf(first_msg, sizeof first_msg, "%s", sa_last_error());
                }
                continue;
            }
            sa_ctx_commit(sq->ctx, b->fs[k].tokens, b->fs[k].T);
            b->done[idx[k]] += b->fs[k].T;
        }
    }
    for (int32_t i = 0; i < n_seqs; i++) {
        if (seqs[i].status) continue;
        seqs[i].ctx->have_logits = true;
        if (seqs[i].logits) memcpy(seqs[i].logits, seqs[i].ctx->logits, (size_t)V * sizeof(float));
    }
    if (first) return sa_error(first, "%s", first_msg);
    return SA_STATUS_OK;
}
