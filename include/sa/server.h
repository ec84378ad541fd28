/* server.h: an OpenAI-compatible HTTP server over the Stream Aligner pipeline (issue 14):
 * POST /v1/chat/completions and /v1/completions (JSON, or server-sent events where each event
 * is one sentence as soon as the pipeline accepts it), GET /v1/models, /health, /metrics
 * (Prometheus text) and a live page at /. A fixed number of slots, each with its own
 * pipelines over the shared models, decode together through one scheduler (sa/batch.h);
 * requests beyond the slots wait in a bounded queue, and get 429 when it is full. A client
 * that disconnects cancels its run at once. Usage and the wire format: docs/SERVER.md.
 * The library never exits and never prints: messages go to the log callback. */
#ifndef SA_SERVER_H
#define SA_SERVER_H

#include "sa/pipeline.h"
#include "sa/status.h"
#include "sa/upstream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_server; /* opaque */

struct sa_server_params {
    const char *host;     /* the address to listen on (numeric IPv4 or IPv6); NULL: "127.0.0.1".
                             Copied */
    uint16_t port;        /* 0: a free port the OS picks (sa_server_port tells which) */
    const char *api_key;  /* NULL or "": no authentication; else every route but / and /health
                             needs "Authorization: Bearer <key>" (compared in constant time). Copied */
    const char *name;     /* the served model name: "<name>" (aligned, stream mode),
                             "<name>:upstream" (the upstream alone), "<name>:aligner" (the Aligner
                             baseline); NULL: "stream-aligner". Copied */
    /* The template of every slot's pipelines: the models (borrowed: they must outlive the
     * server), the chat formats, the loop and decoding settings. `mode`, `upstream_temp`,
     * `upstream_top_p`, `seed`, `max_length` and `system` are the defaults a request may
     * change; `upstream` must be NULL (give `remote` instead); `sched` is set by the server. */
    struct sa_pipeline_params pipeline;
    /* NULL: pipeline.upstream_model is the upstream. Else a remote upstream: each slot makes
     * its own from these params (copied at init; abort_cb/abort_user are the server's). */
    const struct sa_upstream_remote_params *remote;
    /* Or any other upstream (a test double, a custom client): called once per slot at
     * sa_server_start to make that slot's own upstream (the server frees it with
     * sa_upstream_free). NULL: not used. Exactly one of upstream_model, remote and
     * make_upstream. pipeline.upstream_format must then be known. */
    enum sa_status (*make_upstream)(void *user, struct sa_upstream **out);
    void *make_upstream_user;
    int32_t n_slots;            /* requests answered at once; 0: 1 */
    int32_t max_queue;          /* requests that may wait for a slot; more get 429; 0: 16 */
    size_t max_body_bytes;      /* largest request body; larger: 413; 0: 1 MiB */
    int32_t max_json_depth;     /* deepest nesting of arrays and objects in a body; 0: 16 */
    int32_t request_timeout_ms; /* a run (queue wait included) is cancelled after this; 0: 300000 */
    int32_t shutdown_grace_ms;  /* sa_server_stop lets runs in progress finish this long, then
                                   cancels them (their streams end with an error event); 0: 10000 */
    int32_t max_connections;    /* open connections at most; 0: 64 */
    size_t max_stream_buffer;   /* bytes of a stream's events written by its slot and not yet
                                   taken by its connection (a reader too slow, or stalled); more:
                                   the run is cancelled (outcome client_disconnect), its buffer
                                   freed and its connection closed; 0: 16 MiB */
    sa_log_callback log;        /* request lines and server messages; NULL: sa_log_default */
    void *log_user;
    /* A connection is closed after this long without traffic while no request is in progress
     * on it (a keep-alive wait, a request sent slowly), and a stream whose client takes no
     * block of it (up to 4 KiB) for this long (it stopped reading, or never began) is closed
     * and its run cancelled (outcome client_disconnect), whether the run goes on or has ended:
     * such a client holds no connection, slot or buffer longer than this. The time a stream waits
     * for its slot's next sentence does not count (request_timeout_ms bounds that). Applied in
     * whole seconds (rounded up); 0: 120000. */
    int32_t idle_timeout_ms;
};

/* host NULL (127.0.0.1), port 0, no api_key, name NULL, pipeline sa_pipeline_default_params(),
 * remote NULL, make_upstream NULL, n_slots 1, the limits 0 (their defaults above), log NULL. */
struct sa_server_params sa_server_default_params(void);

/* Checks `params` and makes the server (nothing is bound yet): the slots and their pipelines'
 * settings. Errors: SA_STATUS_BAD_ARGUMENT (the message names the field), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_server_init(const struct sa_server_params *params, struct sa_server **out);
/* Binds host:port and starts serving on threads of its own (one per connection, one per slot).
 * Errors: SA_STATUS_NETWORK (the address is taken or cannot be bound: the message says which),
 * and the pipelines' (a model whose context cannot be made). */
SA_NODISCARD enum sa_status sa_server_start(struct sa_server *srv);
/* The port listened on (after sa_server_start; 0 before). */
uint16_t sa_server_port(const struct sa_server *srv);
/* Graceful stop: refuses new requests (503), lets the runs in progress finish for up to
 * shutdown_grace_ms, then cancels those left (their SSE streams get a final error event and
 * [DONE]), and closes the listening socket and every connection. Safe to call from any
 * thread but a server's own, and twice. */
void sa_server_stop(struct sa_server *srv);
/* Stops (if needed) and frees. NULL does nothing. */
void sa_server_free(struct sa_server *srv);

#ifdef __cplusplus
}
#endif
#endif
