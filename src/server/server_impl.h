/* server_impl.h: the parts of the server (include/sa/server.h) that its files share: the
 * parsed request (request.c), the job a slot runs and a connection reads (slots.c), the
 * counters behind /metrics (metrics.c) and the page at / (page.c). */
#ifndef SA_SERVER_IMPL_H
#define SA_SERVER_IMPL_H

#include "sa/server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- requests (request.c) ---- */

#define SRV_MAX_STOP 4

enum srv_kind { SRV_CHAT = 0, SRV_COMPLETION = 1 };

/* One parsed /v1/chat/completions or /v1/completions body. Strings are malloc'd (free with
 * srv_req_clear). */
struct srv_req {
    enum srv_kind kind;
    char *model;    /* as the client named it (echoed back) */
    enum sa_pipeline_mode mode;
    char *question; /* the user's message (chat) or the prompt (completions) */
    char *system;   /* the system message, or NULL */
    bool stream, include_usage;
    int32_t max_tokens;  /* 0: the server's default */
    bool has_temp, has_top_p, has_seed;
    float temperature, top_p;
    uint64_t seed;
    char *stop[SRV_MAX_STOP];
    int n_stop;
};
void srv_req_clear(struct srv_req *r);

/* An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. */
struct srv_err {
    int http;           /* 400, 401, 404, 413, 429, 500, 503 */
    const char *type;   /* "invalid_request_error", ... (static) */
    const char *param;  /* the field, or NULL (static or from the request: copied on format) */
    const char *code;   /* "model_not_found", ... or NULL (static) */
    char message[512];
};
/* Sets *e and returns false (for `return srv_fail(...)`). */
bool srv_fail(struct srv_err *e, int http, const char *type, const char *param, const char *code, const char *fmt, ...)
    SA_PRINTF(6, 7);
/* The error body (malloc'd JSON text), or NULL when out of memory. */
char *srv_err_json(const struct srv_err *e);

/* Checks that body[0..len) is UTF-8 JSON nested at most max_depth deep. */
bool srv_check_body(const char *body, size_t len, int max_depth, struct srv_err *e);
/* Parses a checked body of `kind` against the served `name`. False: *e says why. */
bool srv_req_parse(const char *body, size_t len, enum srv_kind kind, const char *name, int max_depth,
                   struct srv_req *out, struct srv_err *e);

/* ---- metrics (metrics.c) ---- */

#define SRV_N_LAT 10 /* latency histogram buckets (seconds): see metrics.c */

struct srv_metrics {
    pthread_mutex_t mu;
    int64_t requests, completed, failed, cancelled_client, cancelled_timeout, cancelled_shutdown;
    int64_t rejected_queue, rejected_bad, rejected_auth, rejected_not_found, rejected_too_large;
    int64_t sentences, revisions, copied, completion_tokens, upstream_tokens, aligner_tokens;
    int64_t first_n, total_n;
    double first_sum, total_sum;
    int64_t first_b[SRV_N_LAT], total_b[SRV_N_LAT];
    int64_t queue_len, busy;
    int64_t stalled; /* streams closed by the watchdog (server.c): their clients stopped reading */
};
void srv_metrics_init(struct srv_metrics *m);
void srv_metrics_destroy(struct srv_metrics *m);
void srv_metrics_latency(struct srv_metrics *m, double first_s, double total_s);
/* The Prometheus text exposition (malloc'd), or NULL. */
struct sa_sched_stats;
/* `sched` may be NULL (one slot, or a remote upstream alone). */
/* n_connections, n_streams: the gauges of open connections and of streams not yet fully sent. */
char *srv_metrics_text(struct srv_metrics *m, int32_t n_slots, const struct sa_sched_stats *sched, int64_t n_connections,
                       int64_t n_streams);

/* ---- jobs and slots (slots.c) ---- */

enum srv_cancel { SRV_CANCEL_NONE = 0, SRV_CANCEL_CLIENT, SRV_CANCEL_TIMEOUT, SRV_CANCEL_SHUTDOWN };

/* One request's run: made by the connection, run by a slot. Shared by both (refs). */
struct srv_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    struct sa_server *srv;
    struct srv_job *next; /* in the queue */
    struct srv_req req;
    char id[48];
    long long created;
    double t_queued, deadline;
    atomic_int cancel;    /* enum srv_cancel */
    bool started, done;
    /* the output (under mu) */
    char *sse;            /* SSE bytes written by the slot (stream) */
    size_t sse_len, sse_cap, sse_sent; /* sse[sse_sent..sse_len) not yet sent */
    bool overflow;        /* more than max_stream_buffer unsent: sse freed, the stream dropped */
    char *text;           /* the answer served so far */
    size_t text_len, text_cap;
    bool stop_hit;        /* a stop string ended the answer */
    const char *finish;   /* "stop" or "length" (static) once done */
    int status;           /* enum sa_status of the run */
    struct srv_err err;   /* when status != OK */
    struct sa_pipeline_result res; /* counters (answer fields NULL) */
    int32_t prompt_tokens;
    double queue_ms;      /* waited for a slot */
    struct cJSON *edits;  /* [{index, aligned, original, revised, copied, ...}] per sentence */
};
/* A job for `req` (moved in: *req is cleared), one reference; NULL when out of memory. */
struct srv_job *srv_job_new(struct sa_server *srv, struct srv_req *req);
/* Writes a stream's first event (the assistant role of a chat). */
void srv_job_open_stream(struct srv_job *j);
/* The x_stream_aligner summary and the usage object of a finished job (cJSON, caller owns). */
struct cJSON *srv_job_summary(const struct srv_job *j);
struct cJSON *srv_job_usage(const struct srv_job *j);
/* Takes a reference. */
void srv_job_ref(struct srv_job *j);
/* Drops one; the last frees. */
void srv_job_unref(struct srv_job *j);

struct srv_slots; /* the workers and the queue */
SA_NODISCARD enum sa_status srv_slots_start(struct sa_server *srv, struct srv_slots **out);
/* Queues a job (the queue takes a reference). False: the queue is full or the server stops. */
bool srv_slots_submit(struct srv_slots *sl, struct srv_job *j, bool *stopping);
/* Cancels every queued job and waits at most grace_ms for the running ones, then cancels
 * them, and joins the workers. */
void srv_slots_stop(struct srv_slots *sl, int32_t grace_ms);
void srv_slots_free(struct srv_slots *sl);
/* The scheduler's counters; false when there is no scheduler. */
bool srv_slots_sched_stats(const struct srv_slots *sl, struct sa_sched_stats *out);

/* ---- the server (server.c) ---- */

struct stream; /* a streamed answer in flight (server.c) */

struct sa_server {
    struct sa_server_params p; /* strings below are our copies */
    char *host, *api_key, *name, *system;
    struct sa_upstream_remote_params remote;
    char *remote_url, *remote_model, *remote_key, *remote_extra;
    bool has_remote;
    struct srv_metrics m;
    struct srv_slots *slots;
    struct MHD_Daemon *d;
    uint16_t port;
    atomic_bool stopping;
    atomic_int n_streams; /* SSE responses not yet fully sent (stream_free not yet called) */
    /* the write-stall watchdog (server.c): the streams in flight, checked every tick */
    pthread_mutex_t streams_mu;
    pthread_cond_t streams_cv; /* signalled at stop */
    struct stream *streams;    /* a list through stream.next (under streams_mu) */
    pthread_t watchdog;
    bool watchdog_ok, watchdog_stop;
    bool started, stopped;
    double t_start;
};
void srv_log(const struct sa_server *srv, enum sa_log_level level, const char *fmt, ...) SA_PRINTF(3, 4);

/* ---- the page at / (page.c) ---- */
extern const char srv_page_html[];

#endif
