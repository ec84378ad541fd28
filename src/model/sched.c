/* sched.c: the decode calls of several threads gathered into batched passes
 * (include/sa/batch.h, sa_sched). A call of a context made with a scheduler queues a request
 * and waits; when every entered thread has a request queued (or the oldest has waited
 * max_wait_us), the thread that sees it runs all queued requests, one sa_batch_decode per
 * model, and wakes their threads. One batch runs at a time. docs/internals/batching.md. */
#define _GNU_SOURCE
#include "model/context_impl.h"
#include "model/model_impl.h"

#include "core/core_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHED_MAX_MODELS 8
#define SCHED_MSG 512

struct sched_req {
    struct sa_batch_seq seq;
    bool inv;            /* this call asks for the batch-invariant kernels */
    bool done;
    char msg[SCHED_MSG]; /* the error message, set by the thread that ran the batch */
    struct sched_req *next;
};

struct sa_sched {
    struct sa_sched_params params;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_entered;
    int n_pending;             /* requests queued and not yet taken by a batch */
    bool running;              /* a batch is running (on some thread) */
    struct sched_req *head, *tail;
    const struct sa_model *models[SCHED_MAX_MODELS];
    struct sa_batch *batches[SCHED_MAX_MODELS];
    int n_models;
    struct sa_sched_stats stats;
};

struct sa_sched_params sa_sched_default_params(void) {
    struct sa_sched_params p = {.n_tokens = 0, .n_ctx = 0, .n_threads = 0, .batch_invariant = false, .max_wait_us = 0};
    return p;
}

enum sa_status sa_sched_init(const struct sa_sched_params *params, struct sa_sched **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_sched_init: out is NULL");
    *out = NULL;
    struct sa_sched_params p = params ? *params : sa_sched_default_params();
    if (p.n_tokens < 0 || p.n_ctx < 0 || p.max_wait_us < 0 || p.n_threads < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_sched_init: negative parameter");
    if (p.max_wait_us == 0) p.max_wait_us = 20000;
    struct sa_sched *s = calloc(1, sizeof *s);
    if (!s) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    s->params = p;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = s;
    return SA_STATUS_OK;
}

void sa_sched_free(struct sa_sched *s) {
    if (!s) return;
    for (int i = 0; i < s->n_models; i++) sa_batch_free(s->batches[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

void sa_sched_enter(struct sa_sched *s) {
    pthread_mutex_lock(&s->mu);
    s->n_entered++;
    pthread_mutex_unlock(&s->mu);
}

void sa_sched_leave(struct sa_sched *s) {
    pthread_mutex_lock(&s->mu);
    if (s->n_entered > 0) s->n_entered--;
    /* the threads still waiting may now be all there is */
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sa_sched_get_stats(const struct sa_sched *s, struct sa_sched_stats *out) {
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    *out = s->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}

/* The batch of `model` (made on first use), with s->mu held. */
static enum sa_status batch_for(struct sa_sched *s, const struct sa_model *model, struct sa_batch **out) {
    for (int i = 0; i < s->n_models; i++)
        if (s->models[i] == model) {
            *out = s->batches[i];
            return SA_STATUS_OK;
        }
    if (s->n_models == SCHED_MAX_MODELS)
        return sa_error(SA_STATUS_UNSUPPORTED, "sa_sched: more than %d models in one scheduler", SCHED_MAX_MODELS);
    struct sa_batch_params bp = sa_batch_default_params();
    bp.n_tokens = s->params.n_tokens;
    bp.n_ctx = s->params.n_ctx;
    bp.n_threads = s->params.n_threads;
    bp.batch_invariant = s->params.batch_invariant;
    bp.n_seq_max = 64;
    enum sa_status st = sa_batch_init(model, &bp, out);
    if (st) return st;
    s->models[s->n_models] = model;
    s->batches[s->n_models++] = *out;
    return SA_STATUS_OK;
}

/* Runs the requests of list `reqs` (taken off the queue), s->mu NOT held, and marks them
 * done under the lock. Requests of one model and one kernel mode go in calls of at most 64
 * sequences (a call that asks for the batch-invariant kernels, as copy-speculation's
 * verification does, does not impose them on the others). */
static void run_batch(struct sa_sched *s, struct sched_req *reqs) {
    struct sched_req *rest = reqs; /* not yet run */
    int64_t n_calls = 0, n_rows = 0, n_passes = 0;
    while (rest) {
        const struct sa_model *model = sa_ctx_model(rest->seq.ctx);
        const bool inv = rest->inv;
        struct sa_batch_seq seqs[64];
        struct sched_req *mine[64];
        int n = 0;
        struct sched_req **pp = &rest;
        while (*pp && n < 64) {
            struct sched_req *r = *pp;
            if (sa_ctx_model(r->seq.ctx) == model && r->inv == inv) {
                *pp = r->next;
                mine[n] = r;
                seqs[n++] = r->seq;
            } else {
                pp = &r->next;
            }
        }
        pthread_mutex_lock(&s->mu);
        struct sa_batch *b = NULL;
        enum sa_status st = batch_for(s, model, &b);
        pthread_mutex_unlock(&s->mu);
        if (!st) st = sa_batch_decode_mode(b, seqs, n, inv);
        for (int i = 0; i < n; i++) {
            mine[i]->seq.status = b ? seqs[i].status : st;
            if (mine[i]->seq.status) snprintf(mine[i]->msg, SCHED_MSG, "%s", sa_last_error());
            n_rows += seqs[i].n;
        }
        n_calls += n;
        n_passes++;
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < n; i++) mine[i]->done = true;
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&s->mu);
    s->stats.n_passes += n_passes;
    s->stats.n_rows += n_rows;
    s->stats.n_calls += n_calls;
    pthread_mutex_unlock(&s->mu);
}

enum sa_status sa_sched_submit(struct sa_sched *s, struct sa_ctx *ctx, const int32_t *tokens, int32_t n,
                               float *logits_all, float *logits_out, bool batch_invariant) {
    struct sched_req req = {
        .seq = {.ctx = ctx, .tokens = tokens, .n = n, .logits_all = logits_all, .logits = logits_out},
        .inv = batch_invariant || ctx->params.batch_invariant,
    };
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    const int64_t ns = deadline.tv_nsec + (int64_t)s->params.max_wait_us * 1000;
    deadline.tv_sec += ns / 1000000000;
    deadline.tv_nsec = ns % 1000000000;

    pthread_mutex_lock(&s->mu);
    if (s->tail) s->tail->next = &req;
    else s->head = &req;
    s->tail = &req;
    s->n_pending++;
    bool timed_out = false;
    while (!req.done) {
        if (!s->running && s->head && (s->n_pending >= s->n_entered || timed_out)) {
            struct sched_req *reqs = s->head;
            s->head = s->tail = NULL;
            s->n_pending = 0;
            s->running = true;
            pthread_mutex_unlock(&s->mu);
            run_batch(s, reqs);
            pthread_mutex_lock(&s->mu);
            s->running = false;
            pthread_cond_broadcast(&s->cv);
            continue;
        }
        if (timed_out) pthread_cond_wait(&s->cv, &s->mu);
        else if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT) timed_out = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (req.seq.status) return sa_error(req.seq.status, "%s", req.msg);
    return SA_STATUS_OK;
}
