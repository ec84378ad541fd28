/* test_server.c: the server library (include/sa/server.h) on loopback with no model: a
 * scripted upstream (struct sa_upstream_ops, one per slot through make_upstream) and a
 * scripted aligner (aligner_fn). Checks the wire format (non-streamed and SSE answers, equal
 * texts, the x_stream_aligner edits, usage), the errors in OpenAI's shape, a client that
 * disconnects mid-stream (its run is cancelled: /metrics), the 429 of a full queue, and a
 * stop with a stream in flight (a final error event and [DONE]), and the idle timeout (a client
 * that reads nothing is closed: /metrics). Fast, and run under ASan by
 * `make asan` for the threads' sake. */
#define _GNU_SOURCE
#include "harness.h"
#include "sa/server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- a scripted upstream: TEXT, one character a chunk, g_delay_us between chunks ---- */

static const char *const SENTS[] = {"One is one.", " Two is three.", " Three is three.", " Four is four."};
static atomic_int g_delay_us;
static atomic_int g_starts;
/* 0: SENTS; else g_big sentences of BIG_SENT bytes from each start, BIG_CHUNK bytes a chunk: an
 * answer that goes on until max_length */
static atomic_int g_big;
#define BIG_SENT (256 * 1024)
#define BIG_CHUNK 4096

struct up {
    char *text;
    size_t pos, len;
    char buf[BIG_CHUNK + 1];
};

static enum sa_status up_start(void *impl, const char *prompt, size_t len, const struct sa_upstream_gen_params *p) {
    struct up *u = impl;
    (void)p;
    atomic_fetch_add(&g_starts, 1);
    /* continue after the sentences of the answer so far (the prompt ends with it: chatml) */
    const char *a = strstr(prompt, "<|im_start|>assistant\n");
    int k = 0;
    for (const char *q = a ? a : prompt + len; q < prompt + len; q++) k += *q == '.';
    free(u->text);
    const int big = atomic_load(&g_big);
    if (big) { /* " abc...xyzabc... abc...xyzabc..." per sentence: words of 4 KiB, as max_length counts
                  words here (no tokenizer) */
        const size_t n = (size_t)big;
        u->text = malloc(n * BIG_SENT + 1);
        if (!u->text) return SA_STATUS_NO_MEMORY;
        for (size_t i = 0; i < n * BIG_SENT; i++) u->text[i] = i % 4096 == 0 ? ' ' : (char)('a' + i % 26);
        for (size_t i = 1; i <= n; i++) u->text[i * BIG_SENT - 1] = '.';
        u->text[n * BIG_SENT] = 0;
        u->len = n * BIG_SENT;
        u->pos = 0;
        return SA_STATUS_OK;
    }
    u->text = calloc(1, 128);
    for (int i = k; i < 4; i++) strcat(u->text, SENTS[i]);
    u->len = strlen(u->text);
    u->pos = 0;
    return SA_STATUS_OK;
}

static enum sa_status up_next(void *impl, struct sa_upstream_chunk *out) {
    struct up *u = impl;
    if (atomic_load(&g_delay_us)) usleep((useconds_t)atomic_load(&g_delay_us));
    size_t n = u->pos < u->len ? 1 : 0;
    if (n && atomic_load(&g_big)) n = u->len - u->pos < BIG_CHUNK ? u->len - u->pos : BIG_CHUNK;
    memcpy(u->buf, u->text + u->pos, n);
    u->buf[n] = 0;
    u->pos += n;
    out->text = u->buf;
    out->len = n;
    out->n_tokens = 1;
    out->finish = u->pos >= u->len ? SA_UPSTREAM_FINISH_STOP : SA_UPSTREAM_FINISH_NONE;
    return SA_STATUS_OK;
}

static void up_cancel(void *impl) { (void)impl; }

static void up_free(void *impl) {
    struct up *u = impl;
    free(u->text);
    free(u);
}

static const struct sa_upstream_ops up_ops = {"scripted", up_start, up_next, up_cancel, up_free};

static enum sa_status make_up(void *user, struct sa_upstream **out) {
    (void)user;
    struct up *u = calloc(1, sizeof *u);
    if (!u) return SA_STATUS_NO_MEMORY;
    return sa_upstream_init_ops(&up_ops, u, out);
}

/* the aligner: "three" after "Two is" becomes "two"; anything else is copied */
static enum sa_status fix(void *user, const struct sa_pipeline_request *req, char **out, int32_t *n_tokens) {
    (void)user;
    *out = strdup(!strcmp(req->last, "Two is three.") ? "Two is two." : req->last);
    *n_tokens = 3;
    return SA_STATUS_OK;
}

/* ---- HTTP with libcurl ---- */

struct resp {
    long status;
    char *body;
    size_t len;
    int abort_after_events; /* the write callback fails after this many "data: " events (0: never) */
    char retry_after[16];
};

static size_t on_body(char *p, size_t size, size_t n, void *user) {
    struct resp *r = user;
    size_t k = size * n;
    char *b = realloc(r->body, r->len + k + 1);
    if (!b) return 0;
    r->body = b;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = 0;
    if (r->abort_after_events) {
        int ev = 0;
        for (const char *s = r->body; (s = strstr(s, "data: ")); s += 6) ev++;
        if (ev >= r->abort_after_events) return 0; /* curl closes the connection */
    }
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *user) {
    struct resp *r = user;
    size_t k = size * n;
    if (k > 13 && !strncasecmp(p, "Retry-After: ", 13)) snprintf(r->retry_after, sizeof r->retry_after, "%.*s",
                                                                 (int)(k - 13 > 8 ? 8 : k - 13 - 2), p + 13);
    return k;
}

static void http(uint16_t port, const char *method, const char *path, const char *body, const char *key,
                 struct resp *r) {
    CURL *c = curl_easy_init();
    char url[256], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r->body) r->body = strdup("");
}

/* The value of metric line `name` (exact, with labels) in a /metrics text; -1 if absent. */
static double metric(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *s = text; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL)
        if (!strncmp(s, name, n) && s[n] == ' ') return atof(s + n + 1);
    return -1;
}

static double metric_now(uint16_t port, const char *name) {
    struct resp r = {0};
    http(port, "GET", "/metrics", NULL, "k", &r);
    double v = metric(r.body, name);
    free(r.body);
    return v;
}

static struct sa_server *start(int n_slots, int queue) {
    struct sa_server_params p = sa_server_default_params();
    p.make_upstream = make_up;
    p.pipeline.upstream_format = SA_CHAT_FORMAT_CHATML;
    p.pipeline.aligner_fn = fix;
    p.pipeline.token_healing = false;
    p.api_key = "k";
    p.n_slots = n_slots;
    p.max_queue = queue;
    p.max_body_bytes = 4096;
    p.shutdown_grace_ms = 100;
    struct sa_server *s = NULL;
    if (sa_server_init(&p, &s) || sa_server_start(s)) {
        harness_fail(__FILE__, __LINE__, "server: %s", sa_last_error());
        sa_server_free(s);
        return NULL;
    }
    return s;
}

static const char *CHAT = "{\"model\": \"stream-aligner\", \"messages\": [{\"role\": \"user\", \"content\": \"Count.\"}]}";
static const char *CHAT_STREAM =
    "{\"model\": \"stream-aligner\", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"Count.\"}]}";

static void test_answers(void) {
    atomic_store(&g_delay_us, 0);
    struct sa_server *s = start(1, 4);
    if (!s) return;
    const uint16_t port = sa_server_port(s);
    CHECK(port > 0);
    struct resp a = {0}, b = {0};
    http(port, "POST", "/v1/chat/completions", CHAT, "k", &a);
    CHECK_EQ_INT(a.status, 200);
    CHECK_MSG(strstr(a.body, "\"content\":\"One is one. Two is two. Three is three. Four is four.\"") != NULL, "%s", a.body);
    CHECK(strstr(a.body, "\"original\":\"Two is three.\",\"revised\":\"Two is two.\",\"copied\":false") != NULL);
    CHECK(strstr(a.body, "\"finish_reason\":\"stop\"") && strstr(a.body, "\"aligner_tokens\":12"));
    http(port, "POST", "/v1/chat/completions", CHAT_STREAM, "k", &b);
    CHECK_EQ_INT(b.status, 200);
    /* role, 4 sentences, the finish chunk, [DONE] */
    int ev = 0;
    for (const char *p = b.body; (p = strstr(p, "data: ")); p += 6) ev++;
    CHECK_EQ_INT(ev, 7);
    CHECK(strstr(b.body, "\"delta\":{\"content\":\" Two is two.\"}") != NULL);
    CHECK(strstr(b.body, "\"x_stream_aligner\":{\"index\":2,\"aligned\":true,\"original\":\"Two is three.\"") != NULL);
    const size_t bl = strlen(b.body);
    CHECK(bl > 14 && !strcmp(b.body + bl - 14, "data: [DONE]\n\n"));
    CHECK_EQ_INT(metric_now(port, "salign_revisions_total"), 8);
    CHECK_EQ_INT(metric_now(port, "salign_revisions_copied_total"), 6);
    /* a stop string ends the served text before it; max_tokens cuts with finish_reason length
       (no tokenizer here: words) */
    struct resp c = {0}, d = {0};
    http(port, "POST", "/v1/completions",
         "{\"model\": \"stream-aligner\", \"prompt\": \"Count.\", \"stop\": [\"is three\", \"zzz\"]}", "k", &c);
    CHECK_MSG(c.status == 200 && strstr(c.body, "\"text\":\"One is one. Two is two. Three \"") &&
                  strstr(c.body, "\"finish_reason\":\"stop\"") && strstr(c.body, "\"stop\":\"stop_string\""),
              "%s", c.body);
    http(port, "POST", "/v1/completions", "{\"prompt\": \"Count.\", \"max_tokens\": 5}", "k", &d);
    CHECK_MSG(d.status == 200 && strstr(d.body, "\"text\":\"One is one. Two is\"") &&
                  strstr(d.body, "\"finish_reason\":\"length\""),
              "%s", d.body);
    free(a.body);
    free(b.body);
    free(c.body);
    free(d.body);
    sa_server_free(s);
}

static void test_errors(void) {
    struct sa_server *s = start(1, 4);
    if (!s) return;
    const uint16_t port = sa_server_port(s);
    struct {
        const char *method, *path, *body, *key;
        long status;
        const char *needle;
    } cases[] = {
        {"POST", "/v1/chat/completions", "{\"messages\": [", "k", 400, "malformed JSON"},
        {"POST", "/v1/chat/completions", "{\"messages\": 3}", "k", 400, "\"param\":\"messages\""},
        {"POST", "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"\xC3\x28\"}]}", "k", 400,
         "UTF-8"},
        {"POST", "/v1/chat/completions", CHAT, "bad", 401, "invalid_api_key"},
        {"POST", "/v1/chat/completions", CHAT, NULL, 401, "invalid_api_key"},
        {"POST", "/v1/chat/completions", "{\"model\": \"x\", \"messages\": []}", "k", 404, "model_not_found"},
        {"GET", "/v1/chat/completions", NULL, "k", 405, "method_not_allowed"},
        {"GET", "/health", NULL, NULL, 200, "\"status\":\"ok\""},
        {"GET", "/v1/models", NULL, "k", 200, "stream-aligner:aligner"},
        {"GET", "/", NULL, NULL, 200, "<script>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct resp r = {0};
        http(port, cases[i].method, cases[i].path, cases[i].body, cases[i].key, &r);
        CHECK_MSG(r.status == cases[i].status && strstr(r.body, cases[i].needle), "case %zu: %ld %s", i, r.status,
                  r.body);
        free(r.body);
    }
    char *big = malloc(8192);
    memset(big, ' ', 8191);
    big[8191] = 0;
    big[0] = '{';
    big[8190] = '}';
    struct resp r = {0};
    http(port, "POST", "/v1/chat/completions", big, "k", &r);
    CHECK_MSG(r.status == 413 && strstr(r.body, "request_too_large"), "%ld %s", r.status, r.body);
    free(r.body);
    free(big);
    sa_server_free(s);
}

struct bg {
    uint16_t port;
    struct resp r;
    pthread_t th;
};

static void *bg_main(void *arg) {
    struct bg *b = arg;
    http(b->port, "POST", "/v1/chat/completions", CHAT_STREAM, "k", &b->r);
    return NULL;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bool wait_metric(uint16_t port, const char *name, double want, int ms) {
    for (int t = 0; t < ms; t += 20) {
        if (metric_now(port, name) == want) return true;
        usleep(20000);
    }
    return false;
}

static void test_disconnect_and_queue(void) {
    atomic_store(&g_delay_us, 20000); /* 20 ms a character: about a second a sentence */
    struct sa_server *s = start(1, 1);
    if (!s) return;
    const uint16_t port = sa_server_port(s);
    /* a client that reads the first sentence and goes away */
    struct bg a = {.port = port, .r = {.abort_after_events = 2}};
    pthread_create(&a.th, NULL, bg_main, &a);
    /* the slot is busy, one request waits, the next one is refused */
    CHECK(wait_metric(port, "salign_slots_busy", 1, 5000));
    struct bg b = {.port = port};
    pthread_create(&b.th, NULL, bg_main, &b);
    CHECK(wait_metric(port, "salign_queue_length", 1, 5000));
    struct resp r = {0};
    http(port, "POST", "/v1/chat/completions", CHAT, "k", &r);
    CHECK_MSG(r.status == 429 && strstr(r.body, "queue_full") && !strcmp(r.retry_after, "1"), "%ld %s [%s]", r.status,
              r.body, r.retry_after);
    free(r.body);
    pthread_join(a.th, NULL);
    /* a's run is cancelled at once (it had 3 sentences, ~3 s, to go); b then runs to its end */
    CHECK(wait_metric(port, "salign_requests_finished_total{outcome=\"client_disconnect\"}", 1, 1500));
    pthread_join(b.th, NULL);
    CHECK(strstr(b.r.body, "data: [DONE]") != NULL);
    /* counted just after the slot wrote [DONE]: the client may read it first */
    CHECK(wait_metric(port, "salign_requests_finished_total{outcome=\"ok\"}", 1, 2000));
    free(a.r.body);
    free(b.r.body);
    sa_server_free(s);
}

static void test_stop_with_stream_in_flight(void) {
    atomic_store(&g_delay_us, 20000);
    struct sa_server *s = start(2, 4);
    if (!s) return;
    struct bg a = {.port = sa_server_port(s)};
    pthread_create(&a.th, NULL, bg_main, &a);
    CHECK(wait_metric(a.port, "salign_slots_busy", 1, 5000));
    sa_server_stop(s); /* grace 100 ms: the run is cancelled, the stream ends cleanly */
    pthread_join(a.th, NULL);
    CHECK_EQ_INT(a.r.status, 200);
    CHECK_MSG(strstr(a.r.body, "server_shutting_down") && strstr(a.r.body, "data: [DONE]"), "%s", a.r.body);
    free(a.r.body);
    sa_server_free(s);
    atomic_store(&g_delay_us, 0);
}

/* A streaming client that sends its request and reads nothing, with an answer far larger than
 * the socket buffers: once max_stream_buffer bytes wait for it, its run is cancelled (the slot
 * freed, outcome client_disconnect) though it is still connected, and when it reads at last the
 * stream is cut short. Without the cap the slot would buffer the whole answer (about 3 x 32 MiB
 * here, and its run would take minutes). */
static void test_stalled_reader_is_dropped(void) {
    atomic_store(&g_delay_us, 0);
    atomic_store(&g_big, 1); /* 256 KiB sentences; 32 MiB of text at max_length */
    struct sa_server_params p = sa_server_default_params();
    p.make_upstream = make_up;
    p.pipeline.upstream_format = SA_CHAT_FORMAT_CHATML;
    p.pipeline.aligner_fn = fix;
    p.pipeline.token_healing = false;
    p.pipeline.max_length = 8192; /* chunks of 4 KiB */
    p.max_stream_buffer = 256u << 10;
    struct sa_server *s = NULL;
    if (sa_server_init(&p, &s) || sa_server_start(s)) {
        harness_fail(__FILE__, __LINE__, "server: %s", sa_last_error());
        sa_server_free(s);
        atomic_store(&g_big, 0);
        return;
    }
    const uint16_t port = sa_server_port(s);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rcv = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    char req[512];
    const int n = snprintf(req, sizeof req,
                           "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: %zu\r\n\r\n%s", strlen(CHAT_STREAM), CHAT_STREAM);
    CHECK(write(fd, req, (size_t)n) == n);
    /* it reads nothing: the run is cancelled and the slot freed while it is still connected */
    CHECK(wait_metric(port, "salign_requests_finished_total{outcome=\"client_disconnect\"}", 1, 30000));
    CHECK(wait_metric(port, "salign_slots_busy", 0, 5000));
    CHECK_EQ_INT(metric_now(port, "salign_requests_finished_total{outcome=\"ok\"}"), 0);
    /* it reads now: what was in the socket buffers, then the connection ends, well short of the answer */
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t total = 0;
    char buf[65536], tail[8] = {0};
    for (;;) {
        const ssize_t k = read(fd, buf, sizeof buf);
        if (k <= 0) break;
        total += (size_t)k;
        memcpy(tail, buf + (k >= 7 ? k - 7 : 0), (size_t)(k >= 7 ? 7 : k));
    }
    CHECK_MSG(total > 0 && total < (size_t)12 << 20, "%zu bytes", total);
    CHECK_MSG(strcmp(tail, "\r\n0\r\n\r\n") != 0, "the stream ended normally"); /* no last chunk */
    close(fd);
    sa_server_free(s);
    atomic_store(&g_big, 0);
}

/* A raw HTTP/1.1 client (keep-alive) with a small receive buffer that sends a streaming
 * request and reads nothing; the socket, or -1. */
static int silent_client(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rcv = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[512];
    const int n = snprintf(req, sizeof req,
                           "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                           "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                           strlen(CHAT_STREAM), CHAT_STREAM);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* idle_timeout_ms: a client that stops reading holds nothing for longer. (1) Its answer is far
 * larger than the socket buffers and it never reads: once no byte has gone for the timeout, the
 * watchdog cancels the run and closes the connection (without it, the slot would buffer up to
 * max_stream_buffer, cancel the run, and the connection would stay open for as long as the
 * client does). (2) Its answer fits in the socket buffers, so the response is complete, and it
 * neither reads nor closes: the keep-alive connection is closed after the timeout (before, a
 * fixed 120 s). The server's /metrics shows both: only the connection asking stays open. */
static void test_idle_timeout_closes_silent_clients(void) {
    atomic_store(&g_delay_us, 0);
    atomic_store(&g_big, 1); /* 256 KiB sentences; 32 MiB of text at max_length */
    struct sa_server_params p = sa_server_default_params();
    p.make_upstream = make_up;
    p.pipeline.upstream_format = SA_CHAT_FORMAT_CHATML;
    p.pipeline.aligner_fn = fix;
    p.pipeline.token_healing = false;
    p.pipeline.max_length = 8192; /* chunks of 4 KiB */
    p.api_key = "k";
    p.idle_timeout_ms = 1000;
    struct sa_server *s = NULL;
    if (sa_server_init(&p, &s) || sa_server_start(s)) {
        harness_fail(__FILE__, __LINE__, "server: %s", sa_last_error());
        sa_server_free(s);
        atomic_store(&g_big, 0);
        return;
    }
    const uint16_t port = sa_server_port(s);
    const double t0 = now_s();
    int fd = silent_client(port);
    CHECK(fd >= 0);
    CHECK(wait_metric(port, "salign_streams_stalled_total", 1, 8000));
    CHECK(wait_metric(port, "salign_streams_open", 0, 2000));
    CHECK(wait_metric(port, "salign_connections_open", 1, 2000)); /* the /metrics request's own */
    CHECK(wait_metric(port, "salign_slots_busy", 0, 2000));
    CHECK_EQ_INT(metric_now(port, "salign_requests_finished_total{outcome=\"client_disconnect\"}"), 1);
    CHECK_MSG(now_s() - t0 < 8, "%.1f s", now_s() - t0);
    close(fd);
    /* (2) a short answer, complete in the socket buffers; the client sits on the open connection */
    atomic_store(&g_big, 0);
    fd = silent_client(port);
    CHECK(fd >= 0);
    CHECK(wait_metric(port, "salign_requests_finished_total{outcome=\"ok\"}", 1, 5000));
    CHECK(wait_metric(port, "salign_connections_open", 1, 4000));
    /* all of the answer is there, then the end of the connection */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[8192];
    size_t total = 0;
    ssize_t k;
    while (total < sizeof buf - 1 && (k = read(fd, buf + total, sizeof buf - 1 - total)) > 0) total += (size_t)k;
    buf[total] = 0;
    CHECK_MSG(k == 0 && strstr(buf, "data: [DONE]"), "read %zd, %zu bytes", k, total);
    close(fd);
    sa_server_free(s);
}

static void test_params(void) {
    struct sa_server_params p = sa_server_default_params();
    struct sa_server *s = NULL;
    CHECK(sa_server_init(&p, &s) == SA_STATUS_BAD_ARGUMENT && !s); /* no upstream */
    p.make_upstream = make_up;
    p.name = "a:b";
    CHECK(sa_server_init(&p, &s) == SA_STATUS_BAD_ARGUMENT && !s);
    p.name = NULL;
    p.host = "localhost"; /* not numeric */
    CHECK(sa_server_init(&p, &s) == SA_STATUS_OK);
    CHECK(sa_server_start(s) == SA_STATUS_BAD_ARGUMENT);
    sa_server_free(s);
    sa_server_free(NULL);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sa_log_set(NULL, NULL);
    RUN(test_params);
    RUN(test_answers);
    RUN(test_errors);
    RUN(test_disconnect_and_queue);
    RUN(test_stop_with_stream_in_flight);
    RUN(test_stalled_reader_is_dropped);
    RUN(test_idle_timeout_closes_silent_clients);
    curl_global_cleanup();
    return harness_summary();
}
