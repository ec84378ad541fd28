/* server.c: the HTTP side of the server (include/sa/server.h) over libmicrohttpd, one thread
 * per connection: routing, the API key, body limits, JSON responses in OpenAI's shapes, and
 * the bridge to the slots (slots.c): a stream's connection thread blocks in the content
 * reader until the slot has written the next SSE event, and watches its socket meanwhile so
 * that a client that goes away cancels its run at once (also while it waits in the queue or
 * for a non-streamed answer). Wire format and limits: docs/SERVER.md. */
#define _GNU_SOURCE
#include "server/server_impl.h"

#include "core/core_impl.h"
#include "sa/batch.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

void srv_log(const struct sa_server *srv, enum sa_log_level level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (srv->p.log) srv->p.log(level, buf, srv->p.log_user);
    else sa_log_default(level, buf, NULL);
}

struct sa_server_params sa_server_default_params(void) {
    struct sa_server_params p;
    memset(&p, 0, sizeof p);
    p.pipeline = sa_pipeline_default_params();
    p.n_slots = 1;
    return p;
}

/* ---- per request ---- */

/* libmicrohttpd's idle timeout of a connection between requests, in whole seconds */
static unsigned idle_s(const struct sa_server *srv) { return (unsigned)((srv->p.idle_timeout_ms + 999) / 1000); }

enum route { R_NONE = 0, R_PAGE, R_HEALTH, R_METRICS, R_MODELS, R_MODEL, R_CHAT, R_COMPLETIONS };

struct conn {
    enum route route;
    char *body;
    size_t len, cap;
    bool too_large;
    double t0;
};

/* The peer has closed its end (or the socket failed). */
static bool client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd pfd = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&pfd, 1, 0) <= 0) return false;
    if (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
    if (pfd.revents & POLLIN) {
        char b;
        const ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }
    return false;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                                 size_t len, int retry_after_s) {
    struct MHD_Response *r =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after_s);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    const enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return MHD_NO;
    return send_text(c, status, "application/json", s, strlen(s), 0);
}

static enum MHD_Result send_error(struct sa_server *srv, struct MHD_Connection *c, const struct srv_err *e) {
    char *s = srv_err_json(e);
    if (!s) return MHD_NO;
    int64_t *ctr = NULL;
    switch (e->http) {
    case 400: ctr = &srv->m.rejected_bad; break;
    case 401: ctr = &srv->m.rejected_auth; break;
    case 404: ctr = &srv->m.rejected_not_found; break;
    case 413: ctr = &srv->m.rejected_too_large; break;
    case 429: ctr = &srv->m.rejected_queue; break;
    default: break;
    }
    if (ctr) {
        pthread_mutex_lock(&srv->m.mu);
        (*ctr)++;
        pthread_mutex_unlock(&srv->m.mu);
    }
    return send_text(c, (unsigned)e->http, "application/json", s, strlen(s), e->http == 429 || e->http == 503 ? 1 : 0);
}

/* "Authorization: Bearer <key>" matches, compared in constant time (for the key's length). */
static bool authorized(const struct sa_server *srv, struct MHD_Connection *c) {
    if (!srv->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    const size_t hl = strlen(h), kl = strlen(srv->api_key);
    unsigned char diff = hl != kl;
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)(srv->api_key[i] ^ (i < hl ? h[i] : 0));
    return diff == 0;
}

/* ---- the routes ---- */

static cJSON *model_obj(const struct sa_server *srv, const char *suffix) {
    cJSON *m = cJSON_CreateObject();
    char id[512];
    snprintf(id, sizeof id, "%s%s", srv->name, suffix);
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(long long)srv->t_start);
    cJSON_AddStringToObject(m, "owned_by", "salign");
    cJSON_AddStringToObject(m, "x_stream_aligner_mode", !*suffix ? "stream" : suffix + 1);
    return m;
}

static bool has_aligner(const struct sa_server *srv) {
    return srv->p.pipeline.aligner_model || srv->p.pipeline.aligner_fn;
}

static enum MHD_Result route_models(struct sa_server *srv, struct MHD_Connection *c) {
    cJSON *j = cJSON_CreateObject(), *data;
    cJSON_AddStringToObject(j, "object", "list");
    data = cJSON_AddArrayToObject(j, "data");
    if (has_aligner(srv)) cJSON_AddItemToArray(data, model_obj(srv, ""));
    cJSON_AddItemToArray(data, model_obj(srv, ":upstream"));
    if (has_aligner(srv)) cJSON_AddItemToArray(data, model_obj(srv, ":aligner"));
    return send_json(c, 200, j);
}

static enum MHD_Result route_model(struct sa_server *srv, struct MHD_Connection *c, const char *id) {
    const size_t nl = strlen(srv->name);
    const char *suffixes[] = {"", ":upstream", ":aligner"};
    for (int i = 0; i < 3; i++)
        if (!strncmp(id, srv->name, nl) && !strcmp(id + nl, suffixes[i]) && (i == 1 || has_aligner(srv)))
            return send_json(c, 200, model_obj(srv, suffixes[i]));
    struct srv_err e;
    srv_fail(&e, 404, "invalid_request_error", "model", "model_not_found", "The model '%.200s' does not exist", id);
    return send_error(srv, c, &e);
}

static enum MHD_Result route_health(struct sa_server *srv, struct MHD_Connection *c) {
    cJSON *j = cJSON_CreateObject();
    const bool stopping = atomic_load(&srv->stopping);
    pthread_mutex_lock(&srv->m.mu);
    const int64_t busy = srv->m.busy, queued = srv->m.queue_len;
    pthread_mutex_unlock(&srv->m.mu);
    cJSON_AddStringToObject(j, "status", stopping ? "stopping" : "ok");
    cJSON_AddNumberToObject(j, "slots", srv->p.n_slots);
    cJSON_AddNumberToObject(j, "slots_busy", (double)busy);
    cJSON_AddNumberToObject(j, "queue", (double)queued);
    return send_json(c, stopping ? 503 : 200, j);
}

/* The non-streamed answer of a finished job. */
static cJSON *answer_json(const struct srv_job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", j->req.kind == SRV_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->req.model);
    cJSON_AddNullToObject(o, "system_fingerprint");
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    if (j->req.kind == SRV_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", j->text ? j->text : "");
        cJSON_AddNullToObject(m, "refusal");
    } else {
        cJSON_AddStringToObject(ch, "text", j->text ? j->text : "");
    }
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddStringToObject(ch, "finish_reason", j->finish);
    cJSON_AddItemToObject(o, "usage", srv_job_usage(j));
    cJSON *x = srv_job_summary(j);
    cJSON_AddItemToObject(x, "sentences_detail", cJSON_Duplicate(j->edits, 1));
    cJSON_AddItemToObject(o, "x_stream_aligner", x);
    return o;
}

#define STREAM_SNDBUF (64 * 1024) /* bytes of a stream's socket send buffer (Linux doubles it) */

/* A streamed answer in flight. While it is listed in srv->streams (from route_completion to
 * stream_free), its connection and socket are open, and the watchdog may close it. */
struct stream {
    struct srv_job *job;
    struct MHD_Connection *c;
    /* the watchdog's view (under srv->streams_mu) */
    struct stream *next;
    int fd;            /* the connection's socket */
    double t_progress; /* when the connection last asked for bytes (it had sent the ones before) */
    bool in_read;      /* waiting in stream_read for the slot: a delay of the server, not of the client */
    bool stalled;      /* closed by the watchdog */
};

static void stream_mark(struct stream *st, bool in_read) {
    struct sa_server *srv = st->job->srv;
    pthread_mutex_lock(&srv->streams_mu);
    st->in_read = in_read;
    st->t_progress = sa_time_now();
    pthread_mutex_unlock(&srv->streams_mu);
}

/* The write-stall watchdog: a stream whose client has taken no bytes for idle_timeout_ms is
 * cancelled and its socket shut down, which makes libmicrohttpd's blocked write fail and close
 * the connection (stream_free then unlists it). libmicrohttpd's own timeout cannot do this: it
 * is off while a request runs, as a run may be silent for longer than the idle timeout. */
static void *watchdog_main(void *arg) {
    struct sa_server *srv = arg;
    const double idle = (double)srv->p.idle_timeout_ms / 1000;
    const long tick_ms = srv->p.idle_timeout_ms < 1000 ? 50 : 250;
    pthread_mutex_lock(&srv->streams_mu);
    while (!srv->watchdog_stop) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += tick_ms * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->streams_cv, &srv->streams_mu, &t);
        const double now = sa_time_now();
        for (struct stream *st = srv->streams; st; st = st->next) {
            if (st->in_read || st->stalled || now - st->t_progress <= idle) continue;
            st->stalled = true;
            pthread_mutex_lock(&srv->m.mu);
            srv->m.stalled++;
            pthread_mutex_unlock(&srv->m.mu);
            struct srv_job *j = st->job;
            pthread_mutex_lock(&j->mu);
            if (!j->done) {
                int none = SRV_CANCEL_NONE;
                atomic_compare_exchange_strong(&j->cancel, &none, SRV_CANCEL_CLIENT);
            }
            pthread_mutex_unlock(&j->mu);
            shutdown(st->fd, SHUT_RDWR);
            srv_log(srv, SA_LOG_INFO, "%s: the client took no bytes for %.1f s: connection closed", j->id, idle);
        }
    }
    pthread_mutex_unlock(&srv->streams_mu);
    return NULL;
}

static ssize_t stream_wait(struct stream *st, char *buf, size_t max) {
    struct srv_job *j = st->job;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->overflow) { /* the reader fell more than max_stream_buffer behind: drop it */
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (j->sse_sent < j->sse_len) {
            size_t n = j->sse_len - j->sse_sent;
            if (n > max) n = max;
            memcpy(buf, j->sse + j->sse_sent, n);
            j->sse_sent += n;
            if (j->sse_sent == j->sse_len) j->sse_sent = j->sse_len = 0; /* the buffer holds only unsent bytes */
            pthread_mutex_unlock(&j->mu);
            return (ssize_t)n;
        }
        if (j->done) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 100 * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &t);
        if (!j->done && j->sse_sent == j->sse_len && client_gone(st->c)) {
            int none = SRV_CANCEL_NONE;
            atomic_compare_exchange_strong(&j->cancel, &none, SRV_CANCEL_CLIENT);
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* libmicrohttpd asks for more only once it has sent what it had: the client is progressing */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    struct stream *st = cls;
    (void)pos;
    stream_mark(st, true);
    const ssize_t n = stream_wait(st, buf, max);
    stream_mark(st, false);
    return n;
}

static void stream_free(void *cls) {
    struct stream *st = cls;
    struct srv_job *j = st->job;
    struct sa_server *srv = j->srv;
    pthread_mutex_lock(&srv->streams_mu);
    for (struct stream **p = &srv->streams; *p; p = &(*p)->next)
        if (*p == st) {
            *p = st->next;
            break;
        }
    pthread_mutex_unlock(&srv->streams_mu);
    pthread_mutex_lock(&j->mu);
    const bool done = j->done;
    pthread_mutex_unlock(&j->mu);
    if (!done) { /* the connection ended first: a failed write, or the client went away */
        int none = SRV_CANCEL_NONE;
        atomic_compare_exchange_strong(&j->cancel, &none, SRV_CANCEL_CLIENT);
    }
    atomic_fetch_sub(&j->srv->n_streams, 1);
    srv_job_unref(j);
    free(st);
}

static enum MHD_Result route_completion(struct sa_server *srv, struct MHD_Connection *c, struct conn *cn) {
    struct srv_err e;
    struct srv_req req;
    pthread_mutex_lock(&srv->m.mu);
    srv->m.requests++;
    pthread_mutex_unlock(&srv->m.mu);
    if (cn->too_large) {
        srv_fail(&e, 413, "invalid_request_error", NULL, "request_too_large",
                 "the request body is larger than the server's limit of %zu bytes", srv->p.max_body_bytes);
        return send_error(srv, c, &e);
    }
    if (!srv_req_parse(cn->body ? cn->body : "", cn->len, cn->route == R_CHAT ? SRV_CHAT : SRV_COMPLETION, srv->name,
                       srv->p.max_json_depth, &req, &e))
        return send_error(srv, c, &e);
    if (req.mode != SA_PIPELINE_UPSTREAM && !has_aligner(srv)) {
        srv_req_clear(&req);
        srv_fail(&e, 404, "invalid_request_error", "model", "model_not_found",
                 "this server has no aligner: only '%s:upstream' is served", srv->name);
        return send_error(srv, c, &e);
    }
    /* an answer may take longer than the idle timeout of the connection (idle_timeout_ms), which
       libmicrohttpd counts from the request's last byte: none while it runs (on_completed
       restores it for the keep-alive wait); --request-timeout-ms is the limit, and the
       watchdog closes a stream whose client stops reading */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    struct srv_job *j = srv_job_new(srv, &req);
    if (!j) {
        srv_req_clear(&req);
        return MHD_NO;
    }
    /* the role event goes first, before a slot can write a sentence (or, for a fast run, its end) */
    srv_job_open_stream(j);
    bool stopping = false;
    if (!srv_slots_submit(srv->slots, j, &stopping)) {
        if (stopping) srv_fail(&e, 503, "server_error", NULL, "server_shutting_down", "the server is shutting down");
        else
            srv_fail(&e, 429, "rate_limit_error", NULL, "queue_full",
                     "the server is busy: all %d slot(s) are in use and %d request(s) wait; retry later",
                     (int)srv->p.n_slots, (int)srv->p.max_queue);
        srv_job_unref(j);
        return send_error(srv, c, &e);
    }
    if (j->req.stream) {
        struct stream *st = malloc(sizeof *st);
        if (!st) {
            atomic_store(&j->cancel, SRV_CANCEL_CLIENT);
            srv_job_unref(j);
            return MHD_NO;
        }
        atomic_fetch_add(&srv->n_streams, 1);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        *st = (struct stream){.job = j, .c = c, .fd = ci ? ci->connect_fd : -1}; /* our reference moves to it */
        st->t_progress = sa_time_now();
        if (st->fd >= 0) {
            /* a stream is a trickle of sentences: a small kernel buffer (rather than one that
               grows to megabytes) bounds what a client that stops reading holds there, and lets
               the watchdog see the stall at once */
            const int sndbuf = STREAM_SNDBUF;
            setsockopt(st->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
            pthread_mutex_lock(&srv->streams_mu);
            st->next = srv->streams;
            srv->streams = st;
            pthread_mutex_unlock(&srv->streams_mu);
        }
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
        if (!r) {
            stream_free(st);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        const enum MHD_Result ok = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ok;
    }
    /* not streamed: wait here (this is the connection's own thread), watching the socket */
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 100 * 1000000L;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&j->cv, &j->mu, &t);
        if (!j->done && client_gone(c)) {
            int none = SRV_CANCEL_NONE;
            atomic_compare_exchange_strong(&j->cancel, &none, SRV_CANCEL_CLIENT);
        }
    }
    pthread_mutex_unlock(&j->mu);
    enum MHD_Result ok;
    if (j->status) {
        ok = send_error(srv, c, &j->err);
    } else {
        ok = send_json(c, 200, answer_json(j));
    }
    srv_job_unref(j);
    return ok;
}

static enum route find_route(const char *method, const char *url, bool *bad_method) {
    static const struct { const char *url, *method; enum route r; } routes[] = {
        {"/", "GET", R_PAGE},
        {"/health", "GET", R_HEALTH},
        {"/metrics", "GET", R_METRICS},
        {"/v1/models", "GET", R_MODELS},
        {"/v1/chat/completions", "POST", R_CHAT},
        {"/v1/completions", "POST", R_COMPLETIONS},
    };
    *bad_method = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(url, routes[i].url)) continue;
        if (!strcmp(method, routes[i].method) || (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET")))
            return routes[i].r;
        *bad_method = true;
        return R_NONE;
    }
    if (!strncmp(url, "/v1/models/", 11) && url[11]) {
        if (!strcmp(method, "GET")) return R_MODEL;
        *bad_method = true;
    }
    return R_NONE;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    struct sa_server *srv = cls;
    struct conn *cn = *con_cls;
    (void)version;
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        cn->t0 = sa_time_now();
        bool bad_method = false;
        cn->route = find_route(method, url, &bad_method);
        struct srv_err e;
        if (bad_method) {
            srv_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "%s is not allowed on %.200s",
                     method, url);
            return send_error(srv, c, &e);
        }
        if (cn->route == R_NONE) {
            srv_fail(&e, 404, "invalid_request_error", NULL, "not_found",
                     "no route %.200s (see GET /v1/models; the API is under /v1)", url);
            return send_error(srv, c, &e);
        }
        if (cn->route != R_PAGE && cn->route != R_HEALTH && !authorized(srv, c)) {
            srv_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                     "Incorrect API key provided: send 'Authorization: Bearer <key>' with the server's --api-key");
            return send_error(srv, c, &e);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > srv->p.max_body_bytes) {
            srv_fail(&e, 413, "invalid_request_error", NULL, "request_too_large",
                     "the request body (%s bytes) is larger than the server's limit of %zu bytes", cl,
                     srv->p.max_body_bytes);
            pthread_mutex_lock(&srv->m.mu);
            srv->m.requests++;
            pthread_mutex_unlock(&srv->m.mu);
            return send_error(srv, c, &e);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cn->too_large && cn->len + *upload_size > srv->p.max_body_bytes) {
            cn->too_large = true;
        } else if (!cn->too_large) {
            if (cn->len + *upload_size + 1 > cn->cap) {
                size_t cap = cn->cap ? cn->cap : 4096;
                while (cap < cn->len + *upload_size + 1) cap *= 2;
                char *b = realloc(cn->body, cap);
                if (!b) return MHD_NO;
                cn->body = b;
                cn->cap = cap;
            }
            memcpy(cn->body + cn->len, upload, *upload_size);
            cn->len += *upload_size;
            cn->body[cn->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    switch (cn->route) {
    case R_PAGE: {
        char *page = strdup(srv_page_html);
        return page ? send_text(c, 200, "text/html; charset=utf-8", page, strlen(page), 0) : MHD_NO;
    }
    case R_HEALTH: return route_health(srv, c);
    case R_METRICS: {
        struct sa_sched_stats ss;
        const bool has = srv_slots_sched_stats(srv->slots, &ss);
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        char *t = srv_metrics_text(&srv->m, srv->p.n_slots, has ? &ss : NULL, di ? (int64_t)di->num_connections : -1,
                                   atomic_load(&srv->n_streams));
        return t ? send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t), 0) : MHD_NO;
    }
    case R_MODELS: return route_models(srv, c);
    case R_MODEL: return route_model(srv, c, url + 11);
    case R_CHAT:
    case R_COMPLETIONS: return route_completion(srv, c, cn);
    default: return MHD_NO;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    struct conn *cn = *con_cls;
    const struct sa_server *srv = cls;
    if (!cn) return;
    if ((cn->route == R_CHAT || cn->route == R_COMPLETIONS) && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, idle_s(srv));
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    const struct sa_server *srv = cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    srv_log(srv, SA_LOG_DEBUG, "http: %s", buf);
}

/* ---- lifecycle ---- */

static char *dup_or_null(const char *s, bool *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = true;
    return d;
}

enum sa_status sa_server_init(const struct sa_server_params *params, struct sa_server **out) {
    if (!params || !out) return sa_error(SA_STATUS_BAD_ARGUMENT, "server: NULL argument");
    *out = NULL;
    const struct sa_server_params *p = params;
    if (p->pipeline.upstream)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "server: pipeline.upstream must be NULL (give params.remote: each "
                                                "slot needs its own upstream)");
    const int n_up = (p->remote != NULL) + (p->pipeline.upstream_model != NULL) + (p->make_upstream != NULL);
    if (n_up != 1)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "server: %s upstream: give exactly one of pipeline.upstream_model, "
                                                "remote and make_upstream", n_up ? "more than one" : "no");
    if (p->n_slots < 0 || p->n_slots > 256)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "server: n_slots %d is outside 0..256", (int)p->n_slots);
    if (p->max_queue < 0 || p->max_json_depth < 0 || p->request_timeout_ms < 0 || p->shutdown_grace_ms < 0 ||
        p->max_connections < 0 || p->idle_timeout_ms < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "server: a negative limit");
    if (p->name && (!*p->name || strchr(p->name, ':') || strlen(p->name) > 200))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "server: name '%s' must be 1 to 200 characters without ':'", p->name);
    struct sa_server *srv = calloc(1, sizeof *srv);
    if (!srv) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    srv->p = *p;
    bool oom = false;
    srv->host = dup_or_null(p->host ? p->host : "127.0.0.1", &oom);
    srv->api_key = p->api_key && *p->api_key ? dup_or_null(p->api_key, &oom) : NULL;
    srv->name = dup_or_null(p->name ? p->name : "stream-aligner", &oom);
    srv->system = dup_or_null(p->pipeline.system, &oom);
    if (p->remote) {
        srv->has_remote = true;
        srv->remote = *p->remote;
        srv->remote.base_url = srv->remote_url = dup_or_null(p->remote->base_url, &oom);
        srv->remote.model = srv->remote_model = dup_or_null(p->remote->model, &oom);
        srv->remote.api_key = srv->remote_key = dup_or_null(p->remote->api_key, &oom);
        srv->remote.extra_body = srv->remote_extra = dup_or_null(p->remote->extra_body, &oom);
    }
    srv->p.host = srv->host;
    srv->p.api_key = srv->api_key;
    srv->p.name = srv->name;
    srv->p.pipeline.system = srv->system;
    srv->p.remote = NULL;
    if (!srv->p.n_slots) srv->p.n_slots = 1;
    if (!srv->p.max_queue) srv->p.max_queue = 16;
    if (!srv->p.max_body_bytes) srv->p.max_body_bytes = 1u << 20;
    if (!srv->p.max_json_depth) srv->p.max_json_depth = 16;
    if (!srv->p.request_timeout_ms) srv->p.request_timeout_ms = 300000;
    if (!srv->p.shutdown_grace_ms) srv->p.shutdown_grace_ms = 10000;
    if (!srv->p.max_connections) srv->p.max_connections = 64;
    if (!srv->p.max_stream_buffer) srv->p.max_stream_buffer = (size_t)16 << 20;
    if (!srv->p.idle_timeout_ms) srv->p.idle_timeout_ms = 120000;
    srv_metrics_init(&srv->m);
    pthread_mutex_init(&srv->streams_mu, NULL);
    pthread_cond_init(&srv->streams_cv, NULL);
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->n_streams, 0);
    if (oom) {
        sa_server_free(srv);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    *out = srv;
    return SA_STATUS_OK;
}

static void stop_watchdog(struct sa_server *srv) {
    if (!srv->watchdog_ok) return;
    pthread_mutex_lock(&srv->streams_mu);
    srv->watchdog_stop = true;
    pthread_cond_signal(&srv->streams_cv);
    pthread_mutex_unlock(&srv->streams_mu);
    pthread_join(srv->watchdog, NULL);
    srv->watchdog_ok = false;
}

enum sa_status sa_server_start(struct sa_server *srv) {
    if (!srv || srv->started) return sa_error(SA_STATUS_BAD_ARGUMENT, "server: NULL or already started");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, srv->host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(srv->p.port);
    } else if (inet_pton(AF_INET6, srv->host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(srv->p.port);
        flags |= MHD_USE_IPv6;
    } else {
        return sa_error(SA_STATUS_BAD_ARGUMENT, "server: host '%s' is not a numeric IPv4 or IPv6 address", srv->host);
    }
    enum sa_status st = srv_slots_start(srv, &srv->slots);
    if (st) return st;
    srv->t_start = (double)time(NULL);
    srv->watchdog_stop = false;
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv)) {
        srv_slots_stop(srv->slots, 0);
        srv_slots_free(srv->slots);
        srv->slots = NULL;
        return sa_error(SA_STATUS_NO_MEMORY, "server: cannot start a thread");
    }
    srv->watchdog_ok = true;
    srv->d = MHD_start_daemon(flags, srv->p.port, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
                              (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)srv->p.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, idle_s(srv),
                              MHD_OPTION_END);
    if (!srv->d) {
        const int err = errno;
        stop_watchdog(srv);
        srv_slots_stop(srv->slots, 0);
        srv_slots_free(srv->slots);
        srv->slots = NULL;
        return sa_error(SA_STATUS_NETWORK, "server: cannot listen on %s:%u: %s (is another server using the port?)",
                        srv->host, (unsigned)srv->p.port, strerror(err));
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : srv->p.port;
    srv->started = true;
    srv_log(srv, SA_LOG_INFO, "listening on http://%s%s%s:%u (%d slot(s), queue %d)",
            strchr(srv->host, ':') ? "[" : "", srv->host, strchr(srv->host, ':') ? "]" : "", (unsigned)srv->port,
            (int)srv->p.n_slots, (int)srv->p.max_queue);
    return SA_STATUS_OK;
}

uint16_t sa_server_port(const struct sa_server *srv) { return srv && srv->started ? srv->port : 0; }

void sa_server_stop(struct sa_server *srv) {
    if (!srv || !srv->started || srv->stopped) return;
    atomic_store(&srv->stopping, true);
    srv_slots_stop(srv->slots, srv->p.shutdown_grace_ms);
    /* every job has ended and written its last event: let the connections send them (a
       client that does not read gets 5 s) before the daemon closes every socket */
    const double until = sa_time_now() + 5;
    while (atomic_load(&srv->n_streams) > 0 && sa_time_now() < until) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(srv->d);
    srv->d = NULL;
    stop_watchdog(srv); /* every stream has been freed */
    srv->stopped = true;
    srv_log(srv, SA_LOG_INFO, "stopped");
}

void sa_server_free(struct sa_server *srv) {
    if (!srv) return;
    sa_server_stop(srv);
    srv_slots_free(srv->slots);
    srv_metrics_destroy(&srv->m);
    pthread_mutex_destroy(&srv->streams_mu);
    pthread_cond_destroy(&srv->streams_cv);
    free(srv->host);
    free(srv->api_key);
    free(srv->name);
    free(srv->system);
    free(srv->remote_url);
    free(srv->remote_model);
    free(srv->remote_key);
    free(srv->remote_extra);
    free(srv);
}
