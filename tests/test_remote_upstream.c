/* test_remote_upstream.c: the remote upstream (src/upstream/remote.c) and the upstream
 * wrapper (src/upstream/upstream.c) against a fake OpenAI-compatible server in this file: a
 * thread per connection on 127.0.0.1 that plays a script (normal streams, slow streams, hangs,
 * garbage, malformed events, over-long lines, errors then success, dropped connections) and
 * records what it saw (requests, bodies, headers, when the client closed the connection).
 * The real third-party server (llama-cpp-python) is tests/py/test_remote_upstream.py. */
#define _GNU_SOURCE
#include "harness.h"
#include "upstream/upstream_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the fake server ---- */

enum mode {
    M_STREAM,       /* head + chunks (+ the chunked terminator) */
    M_NOTHING,      /* close the connection at once, no response */
    M_GARBAGE,      /* a reply that is not HTTP */
    M_HANG_HEAD,    /* read the request, answer nothing until the client goes */
};

struct script {
    enum mode mode;
    int n_fail;                /* answer the first n completion requests with fail_status */
    int fail_status;
    const char *fail_headers;  /* extra header lines ("Retry-After: 1\r\n") */
    const char *fail_body;
    int status;                /* of the stream response (0: 200) */
    const char *ctype;         /* NULL: text/event-stream */
    const char *chunks[80];    /* body pieces, each written on its own */
    int n_chunks;
    int delay_ms;              /* before each piece */
    bool hang_after;           /* after the pieces, wait for the client to go */
    bool drop_after;           /* after the pieces, close without the chunked terminator */
    int models_status;         /* 0: 200 */
    const char *models_body;   /* NULL: one model, "fake-model" */
};

struct record {
    int n_conn, n_completions, n_models;
    char body[8192];          /* last completion request body */
    char head[8192];          /* last completion request head */
    int sent;                 /* pieces sent in the last stream */
    bool peer_closed;         /* the client closed the connection during the last stream */
    double t_closed;
};

static struct {
    pthread_mutex_t mu;
    struct script sc;
    struct record rec;
    char *pool[256]; /* strings made for the current script */
    int n_pool;
    int lfd, port;
    volatile bool stop;
    pthread_t th;
    char base[64];
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *keep(char *s) {
    SA_ASSERT(g.n_pool < 256);
    g.pool[g.n_pool++] = s;
    return s;
}

/* A completion chunk event; text_json is the JSON-escaped text, finish NULL for null. */
static const char *ev(const char *text_json, const char *finish) {
    char *s;
    char fr[64];
    if (finish) snprintf(fr, sizeof fr, "\"%s\"", finish);
    else snprintf(fr, sizeof fr, "null");
    SA_ASSERT(asprintf(&s, "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"text\":\"%s\","
                           "\"index\":0,\"logprobs\":null,\"finish_reason\":%s}]}\r\n\r\n",
                       text_json, fr) > 0);
    return keep(s);
}

/* Strings of finished scripts: never freed during the run (still reachable, so no leak report),
 * because a connection thread of an earlier test may still be sending its copy of the script
 * (a client that gave up early) when the next test resets it. */
static char **retired;
static size_t n_retired;

static void script_reset(void) {
    pthread_mutex_lock(&g.mu);
    char **r = realloc(retired, (n_retired + (size_t)g.n_pool + 1) * sizeof *r);
    SA_ASSERT(r);
    retired = r;
    for (int i = 0; i < g.n_pool; i++) retired[n_retired++] = g.pool[i];
    g.n_pool = 0;
    memset(&g.sc, 0, sizeof g.sc);
    memset(&g.rec, 0, sizeof g.rec);
    pthread_mutex_unlock(&g.mu);
}

static void add(const char *piece) {
    SA_ASSERT(g.sc.n_chunks < 80);
    g.sc.chunks[g.sc.n_chunks++] = piece;
}

static bool send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Waits up to ms; true if the client closed the connection meanwhile. */
static bool peer_gone(int fd, int ms) {
    double end = sa_time_now() + ms / 1000.0;
    for (;;) {
        double left = end - sa_time_now();
        if (left <= 0) return false;
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0) {
            char c;
            ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
            if (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) return true;
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
        }
    }
}

static void mark_closed(void) {
    pthread_mutex_lock(&g.mu);
    g.rec.peer_closed = true;
    g.rec.t_closed = sa_time_now();
    pthread_mutex_unlock(&g.mu);
}

static bool send_chunk(int fd, const char *p, size_t n) {
    char h[32];
    int hl = snprintf(h, sizeof h, "%zx\r\n", n);
    return send_all(fd, h, (size_t)hl) && send_all(fd, p, n) && send_all(fd, "\r\n", 2);
}

/* Answers one request; false: close the connection. */
static bool respond(int fd, const char *method, const char *path, const char *head, const char *body, size_t blen) {
    char buf[1024];
    if (!strcmp(method, "GET") && !strcmp(path, "/v1/models")) {
        pthread_mutex_lock(&g.mu);
        g.rec.n_models++;
        int st = g.sc.models_status ? g.sc.models_status : 200;
        const char *mb = g.sc.models_body ? g.sc.models_body
                                          : "{\"object\":\"list\",\"data\":[{\"id\":\"fake-model\",\"object\":\"model\"}]}";
        pthread_mutex_unlock(&g.mu);
        int n = snprintf(buf, sizeof buf, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                         st, strlen(mb));
        return send_all(fd, buf, (size_t)n) && send_all(fd, mb, strlen(mb));
    }
    if (strcmp(method, "POST") || strcmp(path, "/v1/completions")) {
        const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        return send_all(fd, r, strlen(r));
    }
    pthread_mutex_lock(&g.mu);
    int k = g.rec.n_completions++;
    snprintf(g.rec.body, sizeof g.rec.body, "%.*s", (int)blen, body);
    snprintf(g.rec.head, sizeof g.rec.head, "%s", head);
    g.rec.sent = 0;
    g.rec.peer_closed = false;
    struct script sc = g.sc;
    pthread_mutex_unlock(&g.mu);
    if (k < sc.n_fail) {
        const char *fb = sc.fail_body ? sc.fail_body : "";
        int n = snprintf(buf, sizeof buf, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
                         sc.fail_status, sc.fail_headers ? sc.fail_headers : "", strlen(fb));
        return send_all(fd, buf, (size_t)n) && send_all(fd, fb, strlen(fb));
    }
    switch (sc.mode) {
    case M_NOTHING: return false;
    case M_GARBAGE: send_all(fd, "garbage\r\n\r\n", 11); return false;
    case M_HANG_HEAD:
        for (int i = 0; i < 400 && !g.stop; i++)
            if (peer_gone(fd, 25)) {
                mark_closed();
                break;
            }
        return false;
    case M_STREAM: break;
    }
    int n = snprintf(buf, sizeof buf, "HTTP/1.1 %d OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n",
                     sc.status ? sc.status : 200, sc.ctype ? sc.ctype : "text/event-stream; charset=utf-8");
    if (!send_all(fd, buf, (size_t)n)) return false;
    for (int i = 0; i < sc.n_chunks; i++) {
        if (sc.delay_ms && peer_gone(fd, sc.delay_ms)) {
            mark_closed();
            return false;
        }
        if (!send_chunk(fd, sc.chunks[i], strlen(sc.chunks[i]))) {
            mark_closed();
            return false;
        }
        pthread_mutex_lock(&g.mu);
        g.rec.sent++;
        pthread_mutex_unlock(&g.mu);
    }
    if (sc.hang_after) {
        for (int i = 0; i < 400 && !g.stop; i++)
            if (peer_gone(fd, 25)) {
                mark_closed();
                break;
            }
        return false;
    }
    if (sc.drop_after) return false;
    if (!send_all(fd, "0\r\n\r\n", 5)) return false;
    /* keep-alive: notice when the client closes it */
    return true;
}

static void *conn_main(void *arg) {
    int fd = (int)(intptr_t)arg;
    static _Thread_local char buf[1 << 16];
    size_t have = 0;
    for (;;) {
        char *eoh;
        while (!(eoh = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof buf) goto done;
            ssize_t r = recv(fd, buf + have, sizeof buf - have, 0);
            if (r <= 0) goto done;
            have += (size_t)r;
        }
        size_t hl = (size_t)(eoh + 4 - buf);
        char head[8192];
        snprintf(head, sizeof head, "%.*s", (int)hl, buf);
        char method[16] = "", path[256] = "";
        sscanf(head, "%15s %255s", method, path);
        size_t clen = 0;
        const char *cl = strcasestr(head, "\r\ncontent-length:");
        if (cl) clen = strtoul(cl + 17, NULL, 10);
        if (hl + clen > sizeof buf) goto done;
        while (have < hl + clen) {
            ssize_t r = recv(fd, buf + have, sizeof buf - have, 0);
            if (r <= 0) goto done;
            have += (size_t)r;
        }
        bool keep_open = respond(fd, method, path, head, buf + hl, clen);
        memmove(buf, buf + hl + clen, have - hl - clen);
        have -= hl + clen;
        if (!keep_open) break;
    }
done:
    close(fd);
    return NULL;
}

static void *accept_main(void *arg) {
    (void)arg;
    for (;;) {
        int fd = accept(g.lfd, NULL, NULL);
        if (g.stop) {
            if (fd >= 0) close(fd);
            return NULL;
        }
        if (fd < 0) continue;
        pthread_mutex_lock(&g.mu);
        g.rec.n_conn++;
        pthread_mutex_unlock(&g.mu);
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static int listen_any(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 64)) return -1;
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void server_start(void) {
    g.lfd = listen_any(&g.port);
    SA_ASSERT(g.lfd >= 0);
    snprintf(g.base, sizeof g.base, "http://127.0.0.1:%d/v1/", g.port);
    SA_ASSERT(pthread_create(&g.th, NULL, accept_main, NULL) == 0);
}

static void server_stop(void) {
    g.stop = true;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect(fd, (struct sockaddr *)&a, sizeof a);
    close(fd);
    pthread_join(g.th, NULL);
    close(g.lfd);
    script_reset();
}

static struct record rec(void) {
    pthread_mutex_lock(&g.mu);
    struct record r = g.rec;
    pthread_mutex_unlock(&g.mu);
    return r;
}

/* Waits until the server saw the client close the stream (true) or ms pass. */
static bool wait_closed(int ms) {
    double end = sa_time_now() + ms / 1000.0;
    while (sa_time_now() < end) {
        if (rec().peer_closed) return true;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* ---- client helpers ---- */

static struct sa_upstream_remote_params params(void) {
    struct sa_upstream_remote_params p = sa_upstream_remote_default_params();
    p.base_url = g.base;
    p.model = "fake-model";
    p.api_key = "";
    p.connect_timeout_ms = 2000;
    p.idle_timeout_ms = 3000;
    p.total_timeout_ms = 20000;
    p.max_retries = 2;
    p.backoff_ms = 10;
    p.check_model = false;
    return p;
}

static struct sa_upstream *open_up(const struct sa_upstream_remote_params *p) {
    struct sa_upstream *up = NULL;
    CHECK_OK(sa_upstream_remote_init(p, &up));
    return up;
}

struct result {
    enum sa_status s;
    char text[8192];
    size_t len;
    int n_chunks;
    enum sa_upstream_finish finish;
    char msg[2048];
};

/* Runs a whole generation with start/next. */
static struct result run(struct sa_upstream *up, const char *prompt) {
    struct result r;
    memset(&r, 0, sizeof r);
    struct sa_upstream_gen_params gp = sa_upstream_gen_default_params();
    gp.max_tokens = 16;
    r.s = sa_upstream_start(up, prompt, strlen(prompt), &gp);
    while (!r.s) {
        struct sa_upstream_chunk c;
        r.s = sa_upstream_next(up, &c);
        if (r.s) break;
        CHECK(c.text != NULL && c.text[c.len] == 0);
        if (c.len) {
            CHECK_EQ_INT(c.n_tokens, 1);
            CHECK(c.finish == SA_UPSTREAM_FINISH_NONE);
            if (r.len + c.len < sizeof r.text) memcpy(r.text + r.len, c.text, c.len), r.len += c.len;
            r.n_chunks++;
        }
        if (c.finish) {
            r.finish = c.finish;
            break;
        }
    }
    r.text[r.len] = 0;
    if (r.s) snprintf(r.msg, sizeof r.msg, "%s", sa_last_error());
    return r;
}

static void normal_stream(void) {
    add(ev("Hello", NULL));
    add(ev(" world", NULL));
    add(ev(".", "stop"));
    add("data: [DONE]\r\n\r\n");
}

/* ---- tests ---- */

static void test_normal_stream_and_request(void) {
    script_reset();
    normal_stream();
    struct sa_upstream_remote_params p = params();
    p.api_key = "sekret-1";
    struct sa_upstream *up = open_up(&p);
    CHECK_EQ_STR(sa_upstream_kind(up), "remote");
    struct sa_upstream_gen_params gp = sa_upstream_gen_default_params();
    gp.max_tokens = 33;
    gp.temperature = 0.7f;
    gp.top_p = 0.9f;
    gp.seed = 12345678901234567890ull;
    const char *stops[] = {"<|im_end|>", "\n\n"};
    gp.stop = stops;
    gp.n_stop = 2;
    char prompt[3000];
    memset(prompt, 'a', sizeof prompt);
    const char *head = "<|im_start|>user\n\"q\" \xC3\xA9\\";
    memcpy(prompt, head, strlen(head));
    CHECK_OK(sa_upstream_start(up, prompt, sizeof prompt, &gp));
    const char *want[] = {"Hello", " world", "."};
    for (int i = 0; i < 3; i++) {
        struct sa_upstream_chunk c;
        CHECK_OK(sa_upstream_next(up, &c));
        CHECK_EQ_STR(c.text, want[i]);
        CHECK(c.finish == SA_UPSTREAM_FINISH_NONE);
    }
    struct sa_upstream_chunk c;
    CHECK_OK(sa_upstream_next(up, &c));
    CHECK_EQ_INT(c.len, 0);
    CHECK(c.finish == SA_UPSTREAM_FINISH_STOP);
    CHECK_OK(sa_upstream_next(up, &c)); /* after the end: the same empty final chunk */
    CHECK_EQ_INT(c.len, 0);
    CHECK(c.finish == SA_UPSTREAM_FINISH_STOP);
    struct record r = rec();
    CHECK(strstr(r.body, "\"model\":\"fake-model\"") != NULL);
    CHECK(strstr(r.body, "\"prompt\":\"<|im_start|>user\\n\\\"q\\\" \xC3\xA9\\\\aaaa") != NULL);
    CHECK(strstr(r.body, "\"max_tokens\":33") != NULL);
    CHECK(strstr(r.body, "\"temperature\":0.7,") != NULL);
    CHECK(strstr(r.body, "\"top_p\":0.9,") != NULL);
    CHECK(strstr(r.body, "\"seed\":12345678901234567890") != NULL);
    CHECK(strstr(r.body, "\"stop\":[\"<|im_end|>\",\"\\n\\n\"]") != NULL);
    CHECK(strstr(r.body, "\"stream\":true") != NULL);
    CHECK(strcasestr(r.head, "\r\nAuthorization: Bearer sekret-1\r\n") != NULL);
    CHECK(strcasestr(r.head, "\r\nContent-Type: application/json\r\n") != NULL);
    CHECK(strcasestr(r.head, "\r\nExpect:") == NULL);
    /* a second generation reuses the connection */
    struct result res = run(up, "again");
    CHECK_OK(res.s);
    CHECK_EQ_STR(res.text, "Hello world.");
    CHECK_EQ_INT(rec().n_conn, 1);
    CHECK_EQ_INT(rec().n_completions, 2);
    CHECK(strstr(rec().body, "\"temperature\":0,") != NULL); /* greedy by default */
    CHECK(strstr(rec().body, "seed") == NULL);
    sa_upstream_free(up);
}

static void test_api_key_from_env(void) {
    script_reset();
    normal_stream();
    struct sa_upstream_remote_params p = params();
    p.api_key = NULL;
    setenv("SALIGN_API_KEY", "from-env", 1);
    struct sa_upstream *up = open_up(&p);
    unsetenv("SALIGN_API_KEY");
    CHECK_OK(run(up, "x").s);
    CHECK(strcasestr(rec().head, "\r\nAuthorization: Bearer from-env\r\n") != NULL);
    sa_upstream_free(up);
    setenv("OPENAI_API_KEY", "openai-env", 1);
    up = open_up(&p);
    unsetenv("OPENAI_API_KEY");
    CHECK_OK(run(up, "x").s);
    CHECK(strcasestr(rec().head, "\r\nAuthorization: Bearer openai-env\r\n") != NULL);
    sa_upstream_free(up);
    up = open_up(&p); /* no key anywhere: no header */
    CHECK_OK(run(up, "x").s);
    CHECK(strcasestr(rec().head, "Authorization") == NULL);
    sa_upstream_free(up);
    p.api_key = "bad\r\nX-Injected: 1";
    struct sa_upstream *bad = NULL;
    CHECK(sa_upstream_remote_init(&p, &bad) == SA_STATUS_BAD_ARGUMENT);
    CHECK(bad == NULL);
}

/* Events split at odd bytes across writes (with pauses so that they arrive apart), CRLF, LF
 * and CR line ends, comments, an empty-choices usage chunk, escapes and raw non-UTF-8. */
static void test_split_events_and_bytes(void) {
    script_reset();
    g.sc.delay_ms = 5;
    add(": ping\n\nda");
    add("ta: {\"choices\":[{\"te");
    add("xt\":\"caf\\u00e9 \",\"finish_reason\":null}]}\r");
    add("\n\r\n");
    add("data: {\"choices\":[{\"text\":\"\xff\xfe raw\",\"finish_reason\":null}]}\r\rdata: {\"choices\":[]}\n\n");
    add("data: {\"choices\":[{\"text\":\"\",\"finish_reason\":null}]}\n\n"); /* empty text: skipped */
    add("data: {\"choices\":[{\"text\":\"multi\\nline\"}]}\n\ndata: {\"choices\":[{\"text\":null,\"finish_reason\":\"length\"}]}\n\n");
    add("data: [DONE]\n\n");
    struct sa_upstream_remote_params p = params();
    struct sa_upstream *up = open_up(&p);
    struct result r = run(up, "x");
    CHECK_OK(r.s);
    CHECK_EQ_STR(r.text, "caf\xC3\xA9 \xff\xfe rawmulti\nline");
    CHECK_EQ_INT(r.n_chunks, 3);
    CHECK(r.finish == SA_UPSTREAM_FINISH_LENGTH);
    sa_upstream_free(up);
}

/* The caller stops after two chunks of a slow stream: the connection is closed at once and the
 * server sends nothing more; the next generation opens a new connection. */
static void test_stop_closes_connection(void) {
    script_reset();
    g.sc.delay_ms = 40;
    for (int i = 0; i < 40; i++) add(ev(i == 1 ? "two." : "w ", NULL));
    add("data: [DONE]\n\n");
    struct sa_upstream_remote_params p = params();
    struct sa_upstream *up = open_up(&p);
    CHECK_OK(sa_upstream_start(up, "x", 1, NULL));
    struct sa_upstream_chunk c;
    CHECK_OK(sa_upstream_next(up, &c));
    CHECK_OK(sa_upstream_next(up, &c));
    CHECK_EQ_STR(c.text, "two.");
    double t0 = sa_time_now();
    sa_upstream_cancel(up);
    CHECK(sa_time_now() - t0 < 0.05);
    CHECK(wait_closed(1000));
    struct record r = rec();
    CHECK_MSG(r.t_closed - t0 < 0.3, "the server saw the close %.3f s after cancel", r.t_closed - t0);
    CHECK_MSG(r.sent <= 4, "the server sent %d events", r.sent);
    CHECK(sa_upstream_next(up, &c) == SA_STATUS_BAD_ARGUMENT); /* cancelled: nothing in progress */
    sa_upstream_cancel(up); /* idempotent */
    int conns = r.n_conn;
    script_reset();
    normal_stream();
    struct result res = run(up, "again");
    CHECK_OK(res.s);
    CHECK_EQ_STR(res.text, "Hello world.");
    CHECK_EQ_INT(rec().n_conn, 1); /* a new connection (the counters were reset) */
    (void)conns;
    sa_upstream_free(up);
}

static bool stop_at_period(void *user, const char *text, size_t len, int32_t n_tokens) {
    (void)n_tokens;
    struct sa_buf *b = user;
    CHECK_OK(sa_buf_append(b, text, len));
    return memchr(text, '.', len) == NULL;
}

static void test_generate_callback_stop(void) {
    script_reset();
    g.sc.delay_ms = 30;
    add(ev("One", NULL));
    add(ev(" sentence.", NULL));
    for (int i = 0; i < 30; i++) add(ev(" more", NULL));
    add(ev("", "stop"));
    add("data: [DONE]\n\n");
    struct sa_upstream_remote_params p = params();
    struct sa_upstream *up = open_up(&p);
    struct sa_buf b;
    sa_buf_init(&b, 0);
    enum sa_upstream_finish fin = SA_UPSTREAM_FINISH_STOP;
    CHECK_OK(sa_upstream_generate(up, "q", 1, NULL, stop_at_period, &b, &fin));
    CHECK(fin == SA_UPSTREAM_FINISH_NONE);
    CHECK_EQ_STR(b.data, "One sentence.");
    CHECK(wait_closed(1000));
    CHECK(rec().sent <= 4);
    /* to the end */
    script_reset();
    normal_stream();
    sa_buf_clear(&b);
    CHECK_OK(sa_upstream_generate(up, "q", 1, NULL, stop_at_period, &b, &fin)); /* stops at "." = last */
    CHECK_EQ_STR(b.data, "Hello world.");
    sa_buf_free(&b);
    sa_upstream_free(up);
}

static void test_idle_timeout(void) {
    struct sa_upstream_remote_params p = params();
    p.idle_timeout_ms = 300;
    struct sa_upstream *up = open_up(&p);
    /* no answer at all */
    script_reset();
    g.sc.mode = M_HANG_HEAD;
    double t0 = sa_time_now();
    struct result r = run(up, "x");
    double dt = sa_time_now() - t0;
    CHECK_EQ_INT(r.s, SA_STATUS_TIMEOUT);
    CHECK_MSG(strstr(r.msg, "no data from the server for 300 ms") != NULL, "%s", r.msg);
    CHECK_MSG(dt >= 0.29 && dt < 1.5, "idle timeout after %.3f s", dt);
    CHECK(wait_closed(1000));
    CHECK_EQ_INT(rec().n_completions, 1); /* not retried */
    /* a stream that stops in the middle: the text before the hang is delivered, then the error */
    script_reset();
    add(ev("Partial", NULL));
    g.sc.hang_after = true;
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_TIMEOUT);
    CHECK_EQ_STR(r.text, "Partial");
    CHECK(strstr(r.msg, "in the middle of the stream") != NULL);
    CHECK(wait_closed(1000));
    /* finish_reason came, [DONE] never does: that is a complete answer */
    script_reset();
    add(ev("Done", "stop"));
    g.sc.hang_after = true;
    r = run(up, "x");
    CHECK_OK(r.s);
    CHECK_EQ_STR(r.text, "Done");
    CHECK(r.finish == SA_UPSTREAM_FINISH_STOP);
    sa_upstream_free(up);
}

static void test_total_deadline_and_abort(void) {
    script_reset();
    g.sc.delay_ms = 60;
    for (int i = 0; i < 50; i++) add(ev("w", NULL));
    struct sa_upstream_remote_params p = params();
    p.total_timeout_ms = 400;
    struct sa_upstream *up = open_up(&p);
    double t0 = sa_time_now();
    struct result r = run(up, "x");
    double dt = sa_time_now() - t0;
    CHECK_EQ_INT(r.s, SA_STATUS_TIMEOUT);
    CHECK(strstr(r.msg, "deadline of 400 ms") != NULL);
    CHECK(r.n_chunks >= 2 && r.n_chunks <= 8);
    CHECK_MSG(dt >= 0.39 && dt < 1.0, "deadline after %.3f s", dt);
    sa_upstream_free(up);
}

static double g_abort_at;
static bool abort_later(void *user) {
    (void)user;
    return sa_time_now() >= g_abort_at;
}

static void test_abort_hook(void) {
    script_reset();
    g.sc.mode = M_HANG_HEAD;
    struct sa_upstream_remote_params p = params();
    p.abort_cb = abort_later;
    struct sa_upstream *up = open_up(&p);
    g_abort_at = sa_time_now() + 0.2;
    double t0 = sa_time_now();
    struct result r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_CANCELLED);
    CHECK_MSG(sa_time_now() - t0 < 0.6, "abort took %.3f s", sa_time_now() - t0);
    CHECK(wait_closed(1000));
    sa_upstream_free(up);
}

struct bad_case {
    const char *piece;
    enum sa_status want;
    const char *msg;
};

static void test_malformed_events(void) {
    const struct bad_case cases[] = {
        {"data: not json\n\n", SA_STATUS_BAD_JSON, "is not JSON"},
        {"data: {\"choices\":[{\"text\":\"a\"}]} trailing\n\n", SA_STATUS_BAD_JSON, "bytes after its JSON"},
        {"data: [1,2]\n\n", SA_STATUS_BAD_JSON, "not a JSON object"},
        {"data: {\"id\":\"x\"}\n\n", SA_STATUS_BAD_JSON, "no \"choices\" array"},
        {"data: {\"choices\":{\"text\":\"a\"}}\n\n", SA_STATUS_BAD_JSON, "no \"choices\" array"},
        {"data: {\"choices\":[5]}\n\n", SA_STATUS_BAD_JSON, "choice that is not an object"},
        {"data: {\"choices\":[{\"text\":5}]}\n\n", SA_STATUS_BAD_JSON, "\"text\" that is not a string"},
        {"data: {\"choices\":[{\"text\":\"a\",\"finish_reason\":7}]}\n\n", SA_STATUS_BAD_JSON,
         "\"finish_reason\" that is not a string"},
        {"data: {\"choices\":[{\"text\":\"a\"\n\n", SA_STATUS_BAD_JSON, "is not JSON"},
        {"data: {\"error\":{\"message\":\"CUDA out of memory\",\"code\":500}}\n\n", SA_STATUS_NETWORK,
         "error in the stream: CUDA out of memory"},
        {"event: error\ndata: {\"error\":\"overloaded\"}\n\n", SA_STATUS_NETWORK, "error in the stream: overloaded"},
    };
    struct sa_upstream_remote_params p = params();
    struct sa_upstream *up = open_up(&p);
    for (size_t i = 0; i < SA_ARRAY_LEN(cases); i++) {
        script_reset();
        add(ev("ok ", NULL));
        add(cases[i].piece);
        add(ev("never", "stop"));
        add("data: [DONE]\n\n");
        struct result r = run(up, "x");
        CHECK_MSG(r.s == cases[i].want, "case %zu: status %d (%s)", i, (int)r.s, r.msg);
        CHECK_MSG(strstr(r.msg, cases[i].msg) != NULL, "case %zu: %s", i, r.msg);
        CHECK_EQ_STR(r.text, "ok ");
        CHECK_EQ_INT(rec().n_completions, 1); /* text came first: no retry */
    }
    /* malformed before any text: not retried either (it is not a transient failure) */
    script_reset();
    add("data: not json\n\n");
    struct result r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_BAD_JSON);
    CHECK_EQ_INT(rec().n_completions, 1);
    sa_upstream_free(up);
}

static void test_overlong_line(void) {
    struct sa_upstream_remote_params p = params();
    p.max_event_bytes = 1024;
    struct sa_upstream *up = open_up(&p);
    script_reset();
    char *big = malloc(8000);
    memset(big, 'x', 7999);
    big[7999] = 0;
    memcpy(big, "data: {\"choices\":[{\"text\":\"", 27);
    add(ev("fine", NULL));
    add(big);
    add("\"}]}\n\n");
    struct result r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "over 1024 bytes") != NULL, "%s", r.msg);
    CHECK_EQ_STR(r.text, "fine");
    /* a line that never ends: refused as soon as it passes the cap */
    script_reset();
    g.sc.delay_ms = 1;
    add("data: ");
    for (int i = 0; i < 20; i++) add(big + 27);
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK(wait_closed(1000));
    CHECK_MSG(rec().sent < 20, "sent %d", rec().sent);
    free(big);
    sa_upstream_free(up);
}

static void test_truncated_and_finish_kinds(void) {
    struct sa_upstream_remote_params p = params();
    struct sa_upstream *up = open_up(&p);
    /* the stream ends cleanly without [DONE] or finish_reason, after text: truncated, no retry */
    script_reset();
    add(ev("Half an ans", NULL));
    add("data: {\"choices\":[{\"text\":\"wer");
    struct result r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "truncated") != NULL && strstr(r.msg, "partial event") != NULL, "%s", r.msg);
    CHECK_EQ_STR(r.text, "Half an ans");
    CHECK_EQ_INT(rec().n_completions, 1);
    /* the connection drops in the middle (no chunked terminator) */
    script_reset();
    add(ev("Half", NULL));
    g.sc.drop_after = true;
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "truncated") != NULL, "%s", r.msg);
    CHECK_EQ_STR(r.text, "Half");
    CHECK_EQ_INT(rec().n_completions, 1);
    /* finish_reason and a clean end without [DONE]: complete */
    script_reset();
    add(ev("A", "length"));
    r = run(up, "x");
    CHECK_OK(r.s);
    CHECK(r.finish == SA_UPSTREAM_FINISH_LENGTH);
    /* [DONE] without any finish_reason: OTHER */
    script_reset();
    add(ev("A", NULL));
    add("data: [DONE]\n\n");
    r = run(up, "x");
    CHECK_OK(r.s);
    CHECK(r.finish == SA_UPSTREAM_FINISH_OTHER);
    /* an unknown reason: OTHER; events after [DONE] are ignored */
    script_reset();
    add(ev("A", "content_filter"));
    add("data: [DONE]\n\n");
    add("data: garbage after done\n\n");
    r = run(up, "x");
    CHECK_OK(r.s);
    CHECK(r.finish == SA_UPSTREAM_FINISH_OTHER);
    CHECK_EQ_STR(r.text, "A");
    /* an empty stream (head, no events) is retried, then reported as truncated */
    script_reset();
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "truncated") && strstr(r.msg, "after 3 attempts"), "%s", r.msg);
    CHECK_EQ_INT(rec().n_completions, 3);
    sa_upstream_free(up);
}

static void test_http_errors_and_retries(void) {
    struct sa_upstream_remote_params p = params();
    struct sa_upstream *up = open_up(&p);
    /* 500 twice, then a stream: retried, the text comes once */
    script_reset();
    normal_stream();
    g.sc.n_fail = 2;
    g.sc.fail_status = 500;
    g.sc.fail_body = "{\"error\":{\"message\":\"warming up\"}}";
    struct result r = run(up, "x");
    CHECK_OK(r.s);
    CHECK_EQ_STR(r.text, "Hello world.");
    CHECK_EQ_INT(rec().n_completions, 3);
    /* 503 every time: the server's message, the number of attempts */
    script_reset();
    g.sc.n_fail = 100;
    g.sc.fail_status = 503;
    g.sc.fail_body = "{\"error\":{\"message\":\"Service is overloaded\"}}";
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "HTTP 503: Service is overloaded") && strstr(r.msg, "after 3 attempts"), "%s", r.msg);
    CHECK_EQ_INT(rec().n_completions, 3);
    /* 429 with Retry-After: 1 is honoured */
    script_reset();
    normal_stream();
    g.sc.n_fail = 1;
    g.sc.fail_status = 429;
    g.sc.fail_headers = "Retry-After: 1\r\n";
    g.sc.fail_body = "{\"detail\":\"rate limited\"}";
    double t0 = sa_time_now();
    r = run(up, "x");
    CHECK_OK(r.s);
    CHECK_MSG(sa_time_now() - t0 >= 0.95, "retried after %.3f s", sa_time_now() - t0);
    CHECK_EQ_INT(rec().n_completions, 2);
    /* 400: not retried, message quoted (FastAPI detail list) */
    script_reset();
    g.sc.n_fail = 1;
    g.sc.fail_status = 400;
    g.sc.fail_body = "{\"detail\":[{\"loc\":[\"body\",\"max_tokens\"],\"msg\":\"Input should be a valid integer\"}]}";
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "HTTP 400: Input should be a valid integer"), "%s", r.msg);
    CHECK_EQ_INT(rec().n_completions, 1);
    /* 401: a hint about the key; a non-JSON body is quoted */
    script_reset();
    g.sc.n_fail = 1;
    g.sc.fail_status = 401;
    g.sc.fail_body = "Unauthorized\n";
    r = run(up, "x");
    CHECK_MSG(strstr(r.msg, "HTTP 401: Unauthorized\\x0a") && strstr(r.msg, "SALIGN_API_KEY"), "%s", r.msg);
    /* 404 for a model the server does not serve: the message lists what it serves */
    script_reset();
    g.sc.n_fail = 1;
    g.sc.fail_status = 404;
    g.sc.fail_body = "{\"error\":{\"message\":\"The model `fake-model` does not exist.\"}}";
    g.sc.models_body = "{\"data\":[{\"id\":\"other-model\"},{\"id\":\"third\"}]}";
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NOT_FOUND);
    CHECK_MSG(strstr(r.msg, "does not exist") && strstr(r.msg, "it serves: 'other-model', 'third'"), "%s", r.msg);
    /* 200 but JSON, not a stream */
    script_reset();
    g.sc.ctype = "application/json";
    add("{\"choices\":[{\"text\":\"whole answer\"}]}");
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "not an event stream") && strstr(r.msg, "whole answer"), "%s", r.msg);
    /* the connection closes with no response: retried, then reported */
    script_reset();
    g.sc.mode = M_NOTHING;
    r = run(up, "x");
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "after 3 attempts"), "%s", r.msg);
    /* 3 attempts; curl itself re-sends once when a reused keep-alive connection turns out dead */
    CHECK(rec().n_completions >= 3 && rec().n_completions <= 4);
    /* not HTTP at all */
    script_reset();
    g.sc.mode = M_GARBAGE;
    r = run(up, "x");
    CHECK(r.s == SA_STATUS_NETWORK);
    CHECK(r.msg[0] != 0);
    sa_upstream_free(up);
}

static void test_server_down(void) {
    int port;
    int fd = listen_any(&port);
    close(fd); /* nothing listens there now */
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/v1", port);
    struct sa_upstream_remote_params p = params();
    p.base_url = base;
    p.backoff_ms = 20;
    struct sa_upstream *up = open_up(&p); /* check_model off: no request yet */
    double t0 = sa_time_now();
    struct result r = run(up, "x");
    double dt = sa_time_now() - t0;
    CHECK_EQ_INT(r.s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(r.msg, "cannot connect") && strstr(r.msg, "is the upstream server running?") &&
                  strstr(r.msg, "after 3 attempts"),
              "%s", r.msg);
    CHECK_MSG(dt >= 0.055 && dt < 1.0, "%.3f s", dt); /* backoff 20 + 40 ms */
    sa_upstream_free(up);
    /* with the model check, init fails at once */
    p.check_model = true;
    p.max_retries = 0;
    struct sa_upstream *u2 = NULL;
    CHECK_EQ_INT(sa_upstream_remote_init(&p, &u2), SA_STATUS_NETWORK);
    CHECK(strstr(sa_last_error(), "is the upstream server running?") != NULL);
    CHECK(u2 == NULL);
}

static void test_models(void) {
    struct sa_upstream_remote_params p = params();
    script_reset();
    char **ids = NULL;
    size_t n = 0;
    CHECK_OK(sa_upstream_remote_models(&p, &ids, &n));
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK_EQ_STR(ids[0], "fake-model");
    sa_upstream_models_free(ids, n);
    /* the model check at init */
    p.check_model = true;
    struct sa_upstream *up = NULL;
    CHECK_OK(sa_upstream_remote_init(&p, &up));
    sa_upstream_free(up);
    p.model = "wrong-model";
    CHECK_EQ_INT(sa_upstream_remote_init(&p, &up), SA_STATUS_NOT_FOUND);
    CHECK_MSG(strstr(sa_last_error(), "does not serve model 'wrong-model'; it serves: 'fake-model'"), "%s",
              sa_last_error());
    /* no model named: the only one served is used */
    p.model = NULL;
    CHECK_OK(sa_upstream_remote_init(&p, &up));
    normal_stream();
    CHECK_OK(run(up, "x").s);
    CHECK(strstr(rec().body, "\"model\":\"fake-model\"") != NULL);
    sa_upstream_free(up);
    /* several served and none named */
    script_reset();
    g.sc.models_body = "{\"data\":[{\"id\":\"a\"},{\"id\":\"b\"}]}";
    CHECK_EQ_INT(sa_upstream_remote_init(&p, &up), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "several models") && strstr(sa_last_error(), "'a', 'b'"));
    /* a malformed list */
    g.sc.models_body = "{\"data\":[{\"name\":\"a\"}]}";
    CHECK_EQ_INT(sa_upstream_remote_models(&p, &ids, &n), SA_STATUS_BAD_JSON);
    g.sc.models_body = "[]";
    CHECK_EQ_INT(sa_upstream_remote_models(&p, &ids, &n), SA_STATUS_BAD_JSON);
    /* no /models route: a named model is accepted, an unnamed one is an error */
    g.sc.models_status = 404;
    g.sc.models_body = "{\"detail\":\"Not Found\"}";
    CHECK_EQ_INT(sa_upstream_remote_models(&p, &ids, &n), SA_STATUS_NOT_FOUND);
    CHECK_EQ_INT(sa_upstream_remote_init(&p, &up), SA_STATUS_NOT_FOUND);
    p.model = "fake-model";
    CHECK_OK(sa_upstream_remote_init(&p, &up));
    sa_upstream_free(up);
    /* 500s on /models are retried */
    script_reset();
    g.sc.models_status = 500;
    p.max_retries = 1;
    CHECK_EQ_INT(sa_upstream_remote_models(&p, &ids, &n), SA_STATUS_NETWORK);
    CHECK_EQ_INT(rec().n_models, 2);
}

static void test_bad_arguments(void) {
    struct sa_upstream_remote_params p = params();
    struct sa_upstream *up = NULL;
    const char *bad_urls[] = {NULL, "", "ftp://x/v1", "http://", "http:///v1", "127.0.0.1:8000/v1", "http://a b/v1"};
    for (size_t i = 0; i < SA_ARRAY_LEN(bad_urls); i++) {
        p.base_url = bad_urls[i];
        CHECK_EQ_INT(sa_upstream_remote_init(&p, &up), SA_STATUS_BAD_ARGUMENT);
        CHECK(up == NULL);
    }
    p = params();
    p.idle_timeout_ms = -1;
    CHECK_EQ_INT(sa_upstream_remote_init(&p, &up), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_upstream_remote_init(NULL, &up), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_upstream_remote_init(&p, NULL), SA_STATUS_BAD_ARGUMENT);
    p = params();
    up = open_up(&p);
    struct sa_upstream_chunk c;
    CHECK_EQ_INT(sa_upstream_next(up, &c), SA_STATUS_BAD_ARGUMENT); /* nothing started */
    CHECK_EQ_INT(sa_upstream_start(up, "a\0b", 3, NULL), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "NUL byte at offset 1") != NULL);
    CHECK_EQ_INT(sa_upstream_start(up, "ab\xC3", 3, NULL), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "not valid UTF-8 (at byte 2 of 3)") != NULL);
    CHECK_EQ_INT(sa_upstream_start(up, NULL, 0, NULL), SA_STATUS_BAD_ARGUMENT);
    struct sa_upstream_gen_params gp = sa_upstream_gen_default_params();
    gp.max_tokens = 0;
    CHECK_EQ_INT(sa_upstream_start(up, "a", 1, &gp), SA_STATUS_BAD_ARGUMENT);
    gp = sa_upstream_gen_default_params();
    gp.top_p = 0;
    CHECK_EQ_INT(sa_upstream_start(up, "a", 1, &gp), SA_STATUS_BAD_ARGUMENT);
    gp = sa_upstream_gen_default_params();
    gp.temperature = NAN;
    CHECK_EQ_INT(sa_upstream_start(up, "a", 1, &gp), SA_STATUS_BAD_ARGUMENT);
    gp = sa_upstream_gen_default_params();
    const char *st[] = {""};
    gp.stop = st;
    gp.n_stop = 1;
    CHECK_EQ_INT(sa_upstream_start(up, "a", 1, &gp), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(rec().n_completions, 0); /* none of these reached the server */
    CHECK_EQ_INT(sa_upstream_generate(up, "a", 1, NULL, NULL, NULL, NULL), SA_STATUS_BAD_ARGUMENT);
    sa_upstream_free(up);
    sa_upstream_free(NULL);
    CHECK_EQ_STR(sa_upstream_finish_name(SA_UPSTREAM_FINISH_LENGTH), "length");
}

/* ---- the wrapper over a test double: the hooks see only sensible calls ---- */

struct fake {
    int starts, nexts, cancels, frees;
    int left;  /* chunks before the end */
    bool fail; /* next fails */
    bool running;
};

static enum sa_status f_start(void *impl, const char *prompt, size_t len, const struct sa_upstream_gen_params *p) {
    struct fake *f = impl;
    CHECK(!f->running);
    CHECK(p->max_tokens > 0 && len > 0 && prompt);
    f->starts++;
    f->running = true;
    f->left = 3;
    return SA_STATUS_OK;
}
static enum sa_status f_next(void *impl, struct sa_upstream_chunk *out) {
    struct fake *f = impl;
    CHECK(f->running);
    f->nexts++;
    if (f->fail) {
        f->running = false;
        return sa_error(SA_STATUS_NETWORK, "fake failure");
    }
    out->text = "tok";
    out->len = 3;
    out->n_tokens = 1;
    if (--f->left == 0) {
        out->finish = SA_UPSTREAM_FINISH_STOP;
        f->running = false;
    }
    return SA_STATUS_OK;
}
static void f_cancel(void *impl) {
    struct fake *f = impl;
    CHECK(f->running);
    f->cancels++;
    f->running = false;
}
static void f_free(void *impl) { ((struct fake *)impl)->frees++; }

static const struct sa_upstream_ops k_fake_ops = {"fake", f_start, f_next, f_cancel, f_free};

static void test_wrapper_state_machine(void) {
    struct fake f = {0};
    struct sa_upstream *up = NULL;
    CHECK_OK(sa_upstream_init_ops(&k_fake_ops, &f, &up));
    CHECK_EQ_STR(sa_upstream_kind(up), "fake");
    struct sa_upstream_chunk c;
    CHECK_OK(sa_upstream_start(up, "p", 1, NULL));
    CHECK_OK(sa_upstream_start(up, "p", 1, NULL)); /* restart: the first one is cancelled */
    CHECK_EQ_INT(f.cancels, 1);
    for (int i = 0; i < 3; i++) CHECK_OK(sa_upstream_next(up, &c));
    CHECK(c.finish == SA_UPSTREAM_FINISH_STOP);
    CHECK_OK(sa_upstream_next(up, &c)); /* after the end: not passed to the hook */
    CHECK_EQ_INT(c.len, 0);
    CHECK_EQ_INT(f.nexts, 3);
    sa_upstream_cancel(up); /* finished: no cancel hook */
    CHECK_EQ_INT(f.cancels, 1);
    CHECK_OK(sa_upstream_start(up, "p", 1, NULL));
    f.fail = true;
    CHECK_EQ_INT(sa_upstream_next(up, &c), SA_STATUS_NETWORK);
    CHECK_EQ_INT(sa_upstream_next(up, &c), SA_STATUS_BAD_ARGUMENT); /* failed: nothing in progress */
    sa_upstream_cancel(up);
    CHECK_EQ_INT(f.cancels, 1);
    f.fail = false;
    CHECK_OK(sa_upstream_start(up, "p", 1, NULL));
    sa_upstream_free(up); /* running: cancelled, then freed */
    CHECK_EQ_INT(f.cancels, 2);
    CHECK_EQ_INT(f.frees, 1);
    /* a missing hook: refused, and impl is released */
    struct sa_upstream_ops bad = k_fake_ops;
    bad.next = NULL;
    struct fake f2 = {0};
    CHECK_EQ_INT(sa_upstream_init_ops(&bad, &f2, &up), SA_STATUS_BAD_ARGUMENT);
    CHECK(up == NULL);
    CHECK_EQ_INT(f2.frees, 1);
}

int main(void) {
    server_start();
    RUN(test_normal_stream_and_request);
    RUN(test_api_key_from_env);
    RUN(test_split_events_and_bytes);
    RUN(test_stop_closes_connection);
    RUN(test_generate_callback_stop);
    RUN(test_idle_timeout);
    RUN(test_total_deadline_and_abort);
    RUN(test_abort_hook);
    RUN(test_malformed_events);
    RUN(test_overlong_line);
    RUN(test_truncated_and_finish_kinds);
    RUN(test_http_errors_and_retries);
    RUN(test_server_down);
    RUN(test_models);
    RUN(test_bad_arguments);
    RUN(test_wrapper_state_machine);
    server_stop();
    return harness_summary();
}
