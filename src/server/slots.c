/* slots.c: the server's workers. n_slots threads, each with its own pipeline (made again only
 * when a request's settings differ from the last one's) and, for a remote upstream, its own
 * connection to it; the local models are shared and, with several slots, decode together
 * through one scheduler (sa/batch.h, as `salign align --parallel`). Requests wait in a bounded
 * FIFO queue. A job's output is written under its mutex as the pipeline's on_sentence gives
 * each sentence: SSE events for a stream, the answer text for both; the connection's thread
 * reads it (server.c). Cancellation (client gone, timeout, shutdown) is a flag the pipeline's
 * cancel hook and the remote upstream's abort hook poll. */
#define _GNU_SOURCE
#include "server/server_impl.h"

#include "core/core_impl.h"
#include "sa/batch.h"
#include "sa/model.h"
#include "sa/tokenizer.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    struct srv_slots *sl;
    int index;
    pthread_t th;
    bool th_ok;
    struct sa_upstream *remote; /* the slot's own upstream (remote or make_upstream), or NULL */
    struct sa_pipeline *pl;
    struct sa_pipeline_params pl_key; /* the settings pl was made with */
    char *pl_system;
    struct srv_job *job; /* running now (under sl->mu) */
};

struct srv_slots {
    struct sa_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a job queued, a slot freed, or stopping */
    struct srv_job *head, *tail;
    int n_queued, n_busy;
    bool stopping;
    int n;
    struct slot *slots;
    struct sa_sched *sched;
};

/* ---- jobs ---- */

void srv_job_ref(struct srv_job *j) {
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

void srv_job_unref(struct srv_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    const int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    srv_req_clear(&j->req);
    free(j->sse);
    free(j->text);
    cJSON_Delete(j->edits);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static bool grow(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n + 1) c *= 2;
        char *t = realloc(*buf, c);
        if (!t) return false;
        *buf = t;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return true;
}

/* Appends n bytes of s to the stream (j->mu held). Past max_stream_buffer unsent bytes the
 * reader is too slow: the run is cancelled, the buffer freed and the stream dropped. */
static void sse_put(struct srv_job *j, const char *s, size_t n) {
    if (j->overflow) return;
    if (j->sse_len - j->sse_sent + n > j->srv->p.max_stream_buffer) {
        j->overflow = true;
        free(j->sse);
        j->sse = NULL;
        j->sse_len = j->sse_cap = j->sse_sent = 0;
        int none = SRV_CANCEL_NONE;
        atomic_compare_exchange_strong(&j->cancel, &none, SRV_CANCEL_CLIENT);
        pthread_cond_broadcast(&j->cv);
        return;
    }
    if (!grow(&j->sse, &j->sse_len, &j->sse_cap, s, n))
        atomic_store(&j->cancel, SRV_CANCEL_CLIENT); /* out of memory: nothing sane to send */
}

/* Appends "data: <json>\n\n" (j->mu held). */
static void sse_event(struct srv_job *j, const char *json) {
    sse_put(j, "data: ", 6);
    sse_put(j, json, strlen(json));
    sse_put(j, "\n\n", 2);
}

/* The common head of a chunk: {"id", "object", "created", "model", "choices": [...]}. */
static cJSON *chunk_head(const struct srv_job *j) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", j->id);
    cJSON_AddStringToObject(c, "object", j->req.kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(c, "created", (double)j->created);
    cJSON_AddStringToObject(c, "model", j->req.model);
    cJSON_AddNullToObject(c, "system_fingerprint");
    return c;
}

/* A chunk with one choice: content `text` (NULL: an empty delta), finish_reason (NULL: null). */
static cJSON *chunk(const struct srv_job *j, const char *text, size_t len, bool role, const char *finish) {
    cJSON *c = chunk_head(j), *choices = cJSON_AddArrayToObject(c, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    char *t = text ? strndup(text, len) : NULL;
    if (j->req.kind == SRV_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (t || role) cJSON_AddStringToObject(d, "content", t ? t : "");
    } else {
        cJSON_AddStringToObject(ch, "text", t ? t : "");
    }
    free(t);
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    return c;
}

static void emit(struct srv_job *j, cJSON *c) {
    char *s = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    if (s) sse_event(j, s);
    else atomic_store(&j->cancel, SRV_CANCEL_CLIENT);
    free(s);
}

cJSON *srv_job_summary(const struct srv_job *j) {
    const struct sa_pipeline_result *r = &j->res;
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "mode", sa_pipeline_mode_name(j->req.mode));
    cJSON_AddStringToObject(x, "stop", j->stop_hit ? "stop_string" : sa_pipeline_stop_name(r->stop));
    cJSON_AddNumberToObject(x, "sentences", r->n_sentences);
    cJSON_AddNumberToObject(x, "rounds", r->n_rounds);
    cJSON_AddNumberToObject(x, "copied", r->n_copied);
    cJSON_AddNumberToObject(x, "copy_rate", r->copy_rate);
    cJSON_AddNumberToObject(x, "first_sentence_ms", r->first_sentence_ms);
    cJSON_AddNumberToObject(x, "total_ms", r->total_ms);
    cJSON_AddNumberToObject(x, "queue_ms", j->queue_ms);
    cJSON_AddNumberToObject(x, "upstream_ms", r->upstream_ms);
    cJSON_AddNumberToObject(x, "aligner_ms", r->aligner_ms);
    return x;
}

cJSON *srv_job_usage(const struct srv_job *j) {
    const struct sa_pipeline_result *r = &j->res;
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", j->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", j->prompt_tokens + r->n_tokens);
    cJSON *x = cJSON_AddObjectToObject(u, "x_stream_aligner");
    cJSON_AddNumberToObject(x, "upstream_tokens", r->upstream_tokens);
    cJSON_AddNumberToObject(x, "upstream_prefill", r->upstream_prefill);
    cJSON_AddNumberToObject(x, "aligner_tokens", r->aligner_tokens);
    cJSON_AddNumberToObject(x, "aligner_prefill", r->aligner_prefill);
    cJSON_AddNumberToObject(x, "aligner_draft", r->aligner_draft);
    cJSON_AddNumberToObject(x, "aligner_accepted", r->aligner_accepted);
    return u;
}

struct srv_job *srv_job_new(struct sa_server *srv, struct srv_req *req) {
    struct srv_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->req = *req;
    memset(req, 0, sizeof *req);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->srv = srv;
    atomic_init(&j->cancel, SRV_CANCEL_NONE);
    static atomic_ullong seq;
    const unsigned long long n = atomic_fetch_add(&seq, 1);
    j->created = (long long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-sa%llx%06llx", j->req.kind == SRV_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)j->created, n & 0xffffff);
    j->t_queued = sa_time_now();
    j->deadline = j->t_queued + (double)srv->p.request_timeout_ms / 1000;
    if (!(j->edits = cJSON_CreateArray())) {
        srv_job_unref(j);
        return NULL;
    }
    return j;
}

/* The request's first event (role, or an empty text), before any sentence. */
void srv_job_open_stream(struct srv_job *j) {
    if (!j->req.stream) return;
    pthread_mutex_lock(&j->mu);
    if (j->req.kind == SRV_CHAT) emit(j, chunk(j, NULL, 0, true, NULL));
    pthread_mutex_unlock(&j->mu);
}

/* ---- running a job ---- */

static bool job_cancelled(void *user) {
    struct srv_job *j = user;
    if (atomic_load(&j->cancel) != SRV_CANCEL_NONE) return true;
    if (sa_time_now() > j->deadline) {
        int none = SRV_CANCEL_NONE;
        atomic_compare_exchange_strong(&j->cancel, &none, SRV_CANCEL_TIMEOUT);
        return true;
    }
    return false;
}

/* The remote upstream's abort hook: the job the slot runs now. */
static bool slot_abort(void *user) {
    struct slot *s = user;
    struct srv_job *j = s->job;
    return j && job_cancelled(j);
}

static bool on_sentence(void *user, const struct sa_pipeline_sentence *s) {
    struct srv_job *j = user;
    struct sa_server *srv = j->srv;
    pthread_mutex_lock(&j->mu);
    const size_t old = j->text_len;
    bool ok = grow(&j->text, &j->text_len, &j->text_cap, s->text, s->len);
    /* a stop string ends the answer before it (one that spans two sentences: at the boundary,
       since the first part has been sent) */
    size_t cut = j->text_len;
    for (int i = 0; ok && i < j->req.n_stop; i++) {
        const size_t sl = strlen(j->req.stop[i]);
        const size_t from = old >= sl ? old - sl + 1 : 0;
        const char *p = memmem(j->text + from, j->text_len - from, j->req.stop[i], sl);
        if (p && (size_t)(p - j->text) < cut) cut = (size_t)(p - j->text);
    }
    if (cut < j->text_len) {
        if (cut < old) cut = old;
        j->text_len = cut;
        j->text[cut] = 0;
        j->stop_hit = true;
    }
    const char *y2 = s->text;
    while (*y2 == ' ' || *y2 == '\n' || *y2 == '\t' || *y2 == '\r') y2++;
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "index", s->index);
    cJSON_AddBoolToObject(x, "aligned", s->aligned);
    cJSON_AddStringToObject(x, "original", s->original);
    cJSON_AddStringToObject(x, "revised", y2);
    cJSON_AddBoolToObject(x, "copied", s->copied);
    cJSON_AddNumberToObject(x, "edit_ratio", s->edit_ratio);
    cJSON_AddNumberToObject(x, "upstream_ms", s->upstream_ms);
    cJSON_AddNumberToObject(x, "aligner_ms", s->aligner_ms);
    cJSON_AddNumberToObject(x, "t_ms", s->t_ms);
    if (ok && j->req.stream) {
        cJSON *c = chunk(j, j->text + old, j->text_len - old, false, NULL);
        cJSON_AddItemToObject(c, "x_stream_aligner", cJSON_Duplicate(x, 1));
        emit(j, c);
    }
    cJSON_AddItemToArray(j->edits, x);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_lock(&srv->m.mu);
    srv->m.sentences++;
    if (s->aligned) srv->m.revisions++;
    if (s->aligned && s->copied) srv->m.copied++;
    pthread_mutex_unlock(&srv->m.mu);
    if (!ok) atomic_store(&j->cancel, SRV_CANCEL_CLIENT);
    return ok && !j->stop_hit;
}

static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* The slot's pipeline for job j's settings (made again when they changed). */
static enum sa_status slot_pipeline(struct slot *s, const struct srv_job *j) {
    const struct sa_server *srv = s->sl->srv;
    struct sa_pipeline_params pp = srv->p.pipeline;
    pp.mode = j->req.mode;
    if (j->req.has_temp) pp.upstream_temp = j->req.temperature;
    if (j->req.has_top_p) pp.upstream_top_p = j->req.top_p;
    if (j->req.has_seed) pp.seed = j->req.seed;
    if (j->req.max_tokens) pp.max_length = j->req.max_tokens;
    pp.system = j->req.system ? j->req.system : srv->system;
    pp.sched = s->sl->sched;
    if (s->remote) pp.upstream = s->remote;
    if (s->pl && s->pl_key.mode == pp.mode && s->pl_key.upstream_temp == pp.upstream_temp &&
        s->pl_key.upstream_top_p == pp.upstream_top_p && s->pl_key.seed == pp.seed &&
        s->pl_key.max_length == pp.max_length && same_str(s->pl_system, pp.system))
        return SA_STATUS_OK;
    sa_pipeline_free(s->pl);
    s->pl = NULL;
    free(s->pl_system);
    s->pl_system = NULL;
    if (pp.system && !(s->pl_system = strdup(pp.system))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    enum sa_status st = sa_pipeline_init(&pp, &s->pl);
    if (!st) s->pl_key = pp;
    return st;
}

static int32_t count_tokens(const struct sa_server *srv, const char *text) {
    const struct sa_pipeline_params *pp = &srv->p.pipeline;
    const struct sa_tokenizer *t = pp->upstream_tokenizer;
    if (!t && pp->upstream_model) t = sa_model_tokenizer(pp->upstream_model);
    if (!t && pp->aligner_model) t = sa_model_tokenizer(pp->aligner_model);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!t || sa_tokenize(t, text, strlen(text), (struct sa_tokenize_opts){0}, &ids, &n)) return 0;
    free(ids);
    return (int32_t)n;
}

/* Ends job j: its status, final events, counters; wakes the connection. */
static void finish_job(struct sa_server *srv, struct srv_job *j, enum sa_status st, const char *msg) {
    const int why = atomic_load(&j->cancel);
    pthread_mutex_lock(&j->mu);
    j->status = st;
    if (st) {
        if (why == SRV_CANCEL_TIMEOUT)
            srv_fail(&j->err, 504, "timeout_error", NULL, "timeout", "the request ran past its time limit of %d ms",
                     (int)srv->p.request_timeout_ms);
        else if (why == SRV_CANCEL_SHUTDOWN)
            srv_fail(&j->err, 503, "server_error", NULL, "server_shutting_down", "the server is shutting down");
        else if (why == SRV_CANCEL_CLIENT)
            srv_fail(&j->err, 499, "server_error", NULL, "client_closed", "the client closed the connection");
        else if (st == SA_STATUS_BAD_ARGUMENT)
            srv_fail(&j->err, 400, "invalid_request_error", NULL, NULL, "%s", msg);
        else if (st == SA_STATUS_NETWORK || st == SA_STATUS_TIMEOUT || st == SA_STATUS_BAD_JSON ||
                 st == SA_STATUS_NOT_FOUND)
            srv_fail(&j->err, 502, "upstream_error", NULL, NULL, "the upstream failed: %s", msg);
        else
            srv_fail(&j->err, 500, "server_error", NULL, NULL, "%s", msg);
    }
    const struct sa_pipeline_result *r = &j->res;
    j->finish = j->stop_hit ? "stop" : r->stop == SA_PIPELINE_STOP_MAX_LENGTH ? "length" : "stop";
    if (j->req.stream) {
        if (st) {
            char *e = srv_err_json(&j->err);
            if (e) sse_event(j, e);
            free(e);
        } else {
            cJSON *c = chunk(j, NULL, 0, false, j->finish);
            cJSON_AddItemToObject(c, "x_stream_aligner", srv_job_summary(j));
            emit(j, c);
            if (j->req.include_usage) {
                cJSON *u = chunk_head(j);
                cJSON_AddArrayToObject(u, "choices");
                cJSON_AddItemToObject(u, "usage", srv_job_usage(j));
                emit(j, u);
            }
        }
        const char *done = "data: [DONE]\n\n";
        sse_put(j, done, strlen(done));
    }
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);

    struct srv_metrics *m = &srv->m;
    pthread_mutex_lock(&m->mu);
    if (!st) m->completed++;
    else if (why == SRV_CANCEL_CLIENT) m->cancelled_client++;
    else if (why == SRV_CANCEL_TIMEOUT) m->cancelled_timeout++;
    else if (why == SRV_CANCEL_SHUTDOWN) m->cancelled_shutdown++;
    else m->failed++;
    m->completion_tokens += r->n_tokens;
    m->upstream_tokens += r->upstream_tokens;
    m->aligner_tokens += r->aligner_tokens;
    pthread_mutex_unlock(&m->mu);
    srv_metrics_latency(m, r->first_sentence_ms / 1000 + (r->first_sentence_ms > 0 ? j->queue_ms / 1000 : 0),
                        sa_time_now() - j->t_queued);
    srv_log(srv, SA_LOG_INFO, "%s %s: %s, %d sentence(s), %d token(s), %.0f ms%s%s", j->id, j->req.model,
            st ? "failed" : j->finish, r->n_sentences, r->n_tokens, (sa_time_now() - j->t_queued) * 1000,
            st ? ": " : "", st ? j->err.message : "");
}

static void run_job(struct slot *s, struct srv_job *j) {
    struct sa_server *srv = s->sl->srv;
    j->queue_ms = (sa_time_now() - j->t_queued) * 1000;
    if (job_cancelled(j)) {
        finish_job(srv, j, SA_STATUS_CANCELLED, "cancelled before it started");
        return;
    }
    j->prompt_tokens = count_tokens(srv, j->req.question);
    if (s->sl->sched) sa_sched_enter(s->sl->sched);
    enum sa_status st = slot_pipeline(s, j);
    struct sa_pipeline_result r = {0};
    char msg[512] = "";
    if (!st) {
        struct sa_pipeline_callbacks cb = {.on_sentence = on_sentence, .cancel = job_cancelled, .user = j};
        st = sa_pipeline_run(s->pl, j->req.question, &cb, &r);
    }
    if (s->sl->sched) sa_sched_leave(s->sl->sched);
    if (st) snprintf(msg, sizeof msg, "%s", sa_last_error());
    if (st && atomic_load(&j->cancel) == SRV_CANCEL_NONE && st == SA_STATUS_CANCELLED) st = SA_STATUS_ERROR;
    pthread_mutex_lock(&j->mu);
    j->res = r;
    j->res.answer = NULL;
    j->res.upstream_answer = NULL;
    pthread_mutex_unlock(&j->mu);
    sa_pipeline_result_free(&r);
    finish_job(srv, j, st, msg);
}

static void *worker_main(void *arg) {
    struct slot *s = arg;
    struct srv_slots *sl = s->sl;
    struct sa_server *srv = sl->srv;
    for (;;) {
        pthread_mutex_lock(&sl->mu);
        while (!sl->head && !sl->stopping) pthread_cond_wait(&sl->cv, &sl->mu);
        if (!sl->head) {
            pthread_mutex_unlock(&sl->mu);
            break;
        }
        struct srv_job *j = sl->head;
        sl->head = j->next;
        if (!sl->head) sl->tail = NULL;
        sl->n_queued--;
        sl->n_busy++;
        s->job = j;
        pthread_mutex_unlock(&sl->mu);
        pthread_mutex_lock(&srv->m.mu);
        srv->m.queue_len--;
        srv->m.busy++;
        pthread_mutex_unlock(&srv->m.mu);

        run_job(s, j);

        pthread_mutex_lock(&srv->m.mu);
        srv->m.busy--;
        pthread_mutex_unlock(&srv->m.mu);
        pthread_mutex_lock(&sl->mu);
        s->job = NULL;
        sl->n_busy--;
        pthread_cond_broadcast(&sl->cv);
        pthread_mutex_unlock(&sl->mu);
        srv_job_unref(j);
    }
    return NULL;
}

/* ---- the slots ---- */

enum sa_status srv_slots_start(struct sa_server *srv, struct srv_slots **out) {
    *out = NULL;
    struct srv_slots *sl = calloc(1, sizeof *sl);
    if (!sl) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    sl->srv = srv;
    sl->n = srv->p.n_slots;
    pthread_mutex_init(&sl->mu, NULL);
    pthread_cond_init(&sl->cv, NULL);
    enum sa_status st = SA_STATUS_OK;
    if (!(sl->slots = calloc((size_t)sl->n, sizeof *sl->slots))) st = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    const struct sa_pipeline_params *pp = &srv->p.pipeline;
    if (!st && sl->n > 1 && (pp->upstream_model || pp->aligner_model)) {
        struct sa_sched_params sp = sa_sched_default_params();
        sp.n_threads = pp->n_threads;
        sp.n_ctx = pp->n_ctx;
        sp.batch_invariant = pp->batch_invariant;
        st = sa_sched_init(&sp, &sl->sched);
    }
    for (int i = 0; !st && i < sl->n; i++) {
        struct slot *s = &sl->slots[i];
        s->sl = sl;
        s->index = i;
        if (srv->has_remote) {
            struct sa_upstream_remote_params rp = srv->remote;
            rp.abort_cb = slot_abort;
            rp.abort_user = s;
            if (i > 0) rp.check_model = false;
            st = sa_upstream_remote_init(&rp, &s->remote);
        } else if (srv->p.make_upstream) {
            st = srv->p.make_upstream(srv->p.make_upstream_user, &s->remote);
            if (!st && !s->remote) st = sa_error(SA_STATUS_BAD_ARGUMENT, "server: make_upstream gave no upstream");
        }
    }
    for (int i = 0; !st && i < sl->n; i++) {
        if (pthread_create(&sl->slots[i].th, NULL, worker_main, &sl->slots[i])) {
            st = sa_error(SA_STATUS_ERROR, "server: cannot start the thread of slot %d", i);
            break;
        }
        sl->slots[i].th_ok = true;
    }
    if (st) {
        srv_slots_stop(sl, 0);
        srv_slots_free(sl);
        return st;
    }
    *out = sl;
    return SA_STATUS_OK;
}

bool srv_slots_submit(struct srv_slots *sl, struct srv_job *j, bool *stopping) {
    struct sa_server *srv = sl->srv;
    pthread_mutex_lock(&sl->mu);
    *stopping = sl->stopping;
    /* waiting jobs beyond the free slots count against the queue */
    const int free_slots = sl->n - sl->n_busy;
    const bool ok = !sl->stopping && sl->n_queued - free_slots < srv->p.max_queue;
    if (ok) {
        srv_job_ref(j);
        j->next = NULL;
        if (sl->tail) sl->tail->next = j;
        else sl->head = j;
        sl->tail = j;
        sl->n_queued++;
        pthread_cond_broadcast(&sl->cv);
    }
    pthread_mutex_unlock(&sl->mu);
    if (ok) {
        pthread_mutex_lock(&srv->m.mu);
        srv->m.queue_len++;
        pthread_mutex_unlock(&srv->m.mu);
    }
    return ok;
}

void srv_slots_stop(struct srv_slots *sl, int32_t grace_ms) {
    if (!sl) return;
    struct sa_server *srv = sl->srv;
    pthread_mutex_lock(&sl->mu);
    sl->stopping = true;
    /* the queued jobs never start: they end with 503 */
    for (struct srv_job *j = sl->head; j; j = j->next) atomic_store(&j->cancel, SRV_CANCEL_SHUTDOWN);
    pthread_cond_broadcast(&sl->cv);
    /* the running ones may finish */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += grace_ms / 1000;
    until.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while ((sl->n_busy || sl->head) && pthread_cond_timedwait(&sl->cv, &sl->mu, &until) != ETIMEDOUT) {
    }
    for (int i = 0; i < sl->n; i++)
        if (sl->slots && sl->slots[i].job) atomic_store(&sl->slots[i].job->cancel, SRV_CANCEL_SHUTDOWN);
    pthread_mutex_unlock(&sl->mu);
    for (int i = 0; i < sl->n; i++)
        if (sl->slots && sl->slots[i].th_ok) {
            pthread_join(sl->slots[i].th, NULL);
            sl->slots[i].th_ok = false;
        }
    (void)srv;
}

bool srv_slots_sched_stats(const struct srv_slots *sl, struct sa_sched_stats *out) {
    if (!sl || !sl->sched) return false;
    sa_sched_get_stats(sl->sched, out);
    return true;
}

void srv_slots_free(struct srv_slots *sl) {
    if (!sl) return;
    for (int i = 0; sl->slots && i < sl->n; i++) {
        sa_pipeline_free(sl->slots[i].pl);
        free(sl->slots[i].pl_system);
        sa_upstream_free(sl->slots[i].remote);
    }
    free(sl->slots);
    sa_sched_free(sl->sched);
    pthread_cond_destroy(&sl->cv);
    pthread_mutex_destroy(&sl->mu);
    free(sl);
}
