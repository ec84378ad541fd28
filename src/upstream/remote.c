/* remote.c: the remote upstream: an OpenAI-compatible server (vLLM, llama.cpp server, TGI,
 * llama-cpp-python) asked with POST {base}/completions, "stream": true, read as server-sent
 * events with libcurl's multi interface so that we pull one event at a time and stop reading
 * whenever the caller is done: cancel removes the transfer, which closes the connection, and
 * the server stops generating. Retries (with backoff) only before any text arrived, so text is
 * never duplicated; connect, idle and total timeouts of our own; every server failure becomes
 * a status with a message that quotes the server. Behaviour: docs/internals/upstream.md. */
#define _GNU_SOURCE
#include "upstream/upstream_impl.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ERR_BODY_MAX (64 * 1024) /* bytes of an error response we keep for its message */
#define DONE_GRACE_S 0.2         /* after [DONE], how long we wait for the response to end */
#define BACKOFF_MAX_MS 8000
#define RETRY_AFTER_MAX_MS 30000

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* What a client needs to reach the server (shared by the upstream and the /models call). */
struct endpoint {
    char *base; /* API root without a trailing '/' */
    char *auth; /* "Authorization: Bearer <key>", or NULL */
    struct sa_upstream_remote_params p; /* with defaults filled in; its strings are not ours */
};

struct remote {
    struct endpoint ep;
    char *url;   /* {base}/completions */
    char *model; /* NULL: not sent */
    cJSON *extra; /* members added to each request (params.extra_body), or NULL */
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];

    /* the generation */
    char *body;          /* request JSON (kept for retries) */
    double deadline;     /* sa_time_now() after which we give up */
    int failures;        /* failed attempts so far */
    bool received_text;  /* an event with text arrived: no more retries */
    bool complete;       /* the stream ended properly: the final chunk is due once the queue drains */
    enum sa_status err;  /* the generation failed: returned once the queue drains */
    char err_msg[1024];
    enum sa_upstream_finish finish; /* from the events' finish_reason */
    bool got_finish, got_done;
    double t_done;       /* when [DONE] came */

    /* the attempt (one HTTP request) */
    bool in_multi;       /* the easy handle is in the multi handle */
    bool xfer_done;
    CURLcode xfer_rc;
    long status;         /* HTTP status of the latest response head */
    bool head_done;      /* the final response head is complete */
    bool is_sse;         /* Content-Type text/event-stream (or none at all) */
    char ctype[96];
    long retry_after_s;  /* Retry-After in seconds (-1: none) */
    double t_last;       /* when the last byte came (or the attempt began) */
    enum sa_status cb_err; /* the write callback refused the stream */
    char cb_msg[1024];
    bool errbody_full;
    struct sa_buf errbody; /* body of a non-stream response (an error), capped */
    struct sa_sse sse;
    uint64_t n_events;

    /* text received and not yet returned: one entry per event, in order */
    struct sa_buf q;
    size_t *q_len;
    size_t q_n, q_cap, q_head, q_off;
    struct sa_buf out; /* the chunk returned last */
};

/* ---- small helpers ---- */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Up to ~100 bytes of s for a message: non-printable bytes as \xNN. */
static void snippet(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0, i = 0;
    for (; i < n && o + 8 < cap && i < 100; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (i < n && o + 4 < cap) memcpy(out + o, "...", 3), o += 3;
    out[o] = 0;
}

/* The human message in an error body: {"error":{"message":..}} (OpenAI, vLLM), {"error":".."}
 * (TGI), {"message":..}, {"detail":".."} or {"detail":[{"msg":..}]} (FastAPI); otherwise a
 * snippet of the body. */
static void server_message(const char *body, size_t n, char *out, size_t cap) {
    if (n == 0) {
        snprintf(out, cap, "(empty body)");
        return;
    }
    cJSON *j = cJSON_ParseWithLength(body, n);
    const char *m = NULL;
    if (cJSON_IsObject(j)) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "detail");
        if (cJSON_IsObject(e)) e = cJSON_GetObjectItemCaseSensitive(e, "message");
        if (cJSON_IsString(e)) m = e->valuestring;
        if (!m && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "message")))
            m = cJSON_GetObjectItemCaseSensitive(j, "message")->valuestring;
        if (!m && cJSON_IsString(d)) m = d->valuestring;
        if (!m && cJSON_IsArray(d) && cJSON_IsObject(cJSON_GetArrayItem(d, 0))) {
            cJSON *msg = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, 0), "msg");
            if (cJSON_IsString(msg)) m = msg->valuestring;
        }
    }
    if (m)
        snippet(m, strlen(m), out, cap);
    else
        snippet(body, n, out, cap);
    cJSON_Delete(j);
}

static bool has_ctl(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

static void endpoint_free(struct endpoint *ep) {
    free(ep->base);
    free(ep->auth);
    ep->base = ep->auth = NULL;
}

/* Checks the params, fills in the defaults and builds the base URL and the auth header. */
static enum sa_status endpoint_init(struct endpoint *ep, const struct sa_upstream_remote_params *params) {
    memset(ep, 0, sizeof *ep);
    if (!params) return sa_error(SA_STATUS_BAD_ARGUMENT, "remote upstream: NULL params");
    struct sa_upstream_remote_params p = *params;
    const char *u = p.base_url;
    if (!u || !*u)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "remote upstream: no base URL (e.g. http://127.0.0.1:8000/v1)");
    size_t scheme = !strncasecmp(u, "http://", 7) ? 7 : !strncasecmp(u, "https://", 8) ? 8 : 0;
    if (!scheme || !u[scheme] || u[scheme] == '/')
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "remote upstream: '%s' is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)", u);
    for (const char *c = u; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "remote upstream: the URL contains a space or control character");
    if (p.connect_timeout_ms < 0 || p.idle_timeout_ms < 0 || p.total_timeout_ms < 0 || p.max_retries < 0 ||
        p.backoff_ms < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "remote upstream: negative timeout, retry count or backoff");
    if (!p.connect_timeout_ms) p.connect_timeout_ms = 10000;
    if (!p.idle_timeout_ms) p.idle_timeout_ms = 60000;
    if (!p.total_timeout_ms) p.total_timeout_ms = 600000;
    if (!p.backoff_ms) p.backoff_ms = 250;
    if (!p.max_event_bytes) p.max_event_bytes = (size_t)1 << 20;
    const char *key = p.api_key;
    if (!key) {
        key = getenv("SALIGN_API_KEY");
        if (!key || !*key) key = getenv("OPENAI_API_KEY");
    }
    if (key && has_ctl(key))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "remote upstream: the API key contains a control character");
    size_t bl = strlen(u);
    while (bl > scheme + 1 && u[bl - 1] == '/') bl--;
    ep->base = strndup(u, bl);
    if (key && *key && asprintf(&ep->auth, "Authorization: Bearer %s", key) < 0) ep->auth = NULL;
    if (!ep->base || (key && *key && !ep->auth)) {
        endpoint_free(ep);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    ep->p = p;
    pthread_once(&curl_once, curl_init_once);
    return SA_STATUS_OK;
}

static bool aborted(const struct endpoint *ep) { return ep->p.abort_cb && ep->p.abort_cb(ep->p.abort_user); }

/* Waits ms, polling the abort hook; false when it asked to stop. */
static bool wait_ms(const struct endpoint *ep, long ms) {
    while (ms > 0) {
        if (aborted(ep)) return false;
        long step = SA_MIN(ms, 50L);
        sleep_ms(step);
        ms -= step;
    }
    return !aborted(ep);
}

/* Delay before retry number `failures` (1-based): backoff doubled, or the server's Retry-After. */
static long retry_delay_ms(const struct endpoint *ep, int failures, long retry_after_s) {
    long ms = (long)ep->p.backoff_ms << SA_MIN(failures - 1, 10);
    if (ms > BACKOFF_MAX_MS) ms = BACKOFF_MAX_MS;
    if (retry_after_s > 0) ms = SA_MAX(ms, SA_MIN(retry_after_s * 1000, (long)RETRY_AFTER_MAX_MS));
    return ms;
}

/* The message for a failed transfer (connection level). *retry: worth another attempt. */
static enum sa_status curl_failure(const char *what, const char *url, CURLcode rc, const char *errbuf,
                                   const struct endpoint *ep, bool got_head, bool *retry) {
    const char *eb = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
    *retry = false;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        *retry = true;
        return sa_error(SA_STATUS_NETWORK, "%s %s: cannot connect (%s): is the upstream server running?", what, url,
                        eb);
    case CURLE_COULDNT_RESOLVE_HOST:
        return sa_error(SA_STATUS_NETWORK, "%s %s: cannot resolve the host name (%s)", what, url, eb);
    case CURLE_OPERATION_TIMEDOUT:
        if (!got_head) *retry = true;
        return sa_error(SA_STATUS_TIMEOUT, "%s %s: cannot connect within %d ms (connect_timeout_ms; %s)", what, url,
                        (int)ep->p.connect_timeout_ms, eb);
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
        *retry = true;
        return sa_error(SA_STATUS_NETWORK, "%s %s: the connection failed or was dropped (%s)", what, url, eb);
    default:
        return sa_error(SA_STATUS_NETWORK, "%s %s: %s", what, url, eb);
    }
}

/* ---- GET {base}/models ---- */

/* Which of our own limits stopped a GET (issue 14: the message must name it). */
enum limit_fired { FIRED_NONE = 0, FIRED_IDLE, FIRED_TOTAL };

struct models_dl {
    struct sa_buf body;
    bool over;
    const struct endpoint *ep;
    CURL *c;
    double deadline;         /* of the whole call, retries included (total_timeout_ms) */
    double t_connected;      /* when the attempt's connection was up (0: not yet) */
    double t_last;           /* when the last byte came (or the connection was made) */
    curl_off_t last_dl;      /* bytes of the attempt so far */
    enum limit_fired fired;
};

static size_t models_body(char *b, size_t size, size_t nmemb, void *user) {
    struct models_dl *d = user;
    size_t n = size * nmemb;
    if (d->body.len + n > d->ep->p.max_event_bytes || sa_buf_append(&d->body, b, n)) {
        d->over = true;
        return 0;
    }
    return n;
}

/* Polled by libcurl (about once a second when nothing moves): the abort hook, the idle
 * timeout once connected (connect_timeout_ms covers the connection itself) and the deadline. */
static int models_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    struct models_dl *d = user;
    (void)dltotal, (void)ultotal, (void)ulnow;
    if (aborted(d->ep)) return 1;
    const double now = sa_time_now();
    if (!d->t_connected) {
        curl_off_t ct = 0;
        if (curl_easy_getinfo(d->c, CURLINFO_CONNECT_TIME_T, &ct) == CURLE_OK && ct > 0) d->t_connected = d->t_last = now;
    }
    if (dlnow != d->last_dl) {
        d->last_dl = dlnow;
        d->t_last = now;
    }
    if (now >= d->deadline) {
        d->fired = FIRED_TOTAL;
        return 1;
    }
    if (d->t_connected && now - d->t_last >= (double)d->ep->p.idle_timeout_ms / 1000) {
        d->fired = FIRED_IDLE;
        return 1;
    }
    return 0;
}

static enum sa_status models_parse(const char *url, const char *body, size_t n, char ***ids, size_t *n_ids) {
    char snip[160];
    cJSON *j = cJSON_ParseWithLength(body, n);
    cJSON *data = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "data") : NULL;
    if (!cJSON_IsArray(data)) {
        snippet(body, n, snip, sizeof snip);
        cJSON_Delete(j);
        return sa_error(SA_STATUS_BAD_JSON, "GET %s: not a model list (expected {\"data\": [{\"id\": ...}]}): %s", url,
                        snip);
    }
    size_t cnt = (size_t)cJSON_GetArraySize(data), k = 0;
    char **out = calloc(cnt ? cnt : 1, sizeof *out);
    if (!out) {
        cJSON_Delete(j);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    cJSON *m;
    cJSON_ArrayForEach(m, data) {
        cJSON *id = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "id") : NULL;
        if (!cJSON_IsString(id)) {
            sa_upstream_models_free(out, k);
            cJSON_Delete(j);
            return sa_error(SA_STATUS_BAD_JSON, "GET %s: model entry %zu has no string \"id\"", url, k);
        }
        if (!(out[k] = strdup(id->valuestring))) {
            sa_upstream_models_free(out, k);
            cJSON_Delete(j);
            return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        }
        k++;
    }
    cJSON_Delete(j);
    *ids = out;
    *n_ids = k;
    return SA_STATUS_OK;
}

static enum sa_status models_get(const struct endpoint *ep, char ***ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    char *url = NULL;
    if (asprintf(&url, "%s/models", ep->base) < 0) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    if (hdrs && ep->auth) {
        struct curl_slist *h2 = curl_slist_append(hdrs, ep->auth);
        if (!h2) curl_slist_free_all(hdrs);
        hdrs = h2;
    }
    if (!c || !hdrs) {
        curl_easy_cleanup(c);
        curl_slist_free_all(hdrs);
        free(url);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory (curl)");
    }
    char errbuf[CURL_ERROR_SIZE];
    struct models_dl d = {.ep = ep, .c = c, .deadline = sa_time_now() + (double)ep->p.total_timeout_ms / 1000};
    sa_buf_init(&d.body, 0);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "salign/0.1");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, models_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, models_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);

    enum sa_status s = SA_STATUS_OK;
    for (int failures = 0;; failures++) {
        sa_buf_clear(&d.body);
        d.over = false;
        d.fired = FIRED_NONE;
        d.t_connected = d.t_last = 0;
        d.last_dl = 0;
        errbuf[0] = 0;
        /* our limits: connect_timeout_ms per connection, idle_timeout_ms between bytes once
           connected (models_progress), and the deadline over every attempt; libcurl's own
           timeout is only a backstop a little past the deadline */
        const long left_ms = (long)ceil((d.deadline - sa_time_now()) * 1000);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, SA_MAX(1L, SA_MIN((long)ep->p.connect_timeout_ms, left_ms)));
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, SA_MAX(1L, left_ms) + 2000L);
        CURLcode rc = curl_easy_perform(c);
        long code = 0, ra = -1;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_off_t ra_off = -1;
        if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra_off) == CURLE_OK && ra_off > 0) ra = (long)ra_off;
        bool retry = false;
        const bool past_deadline = sa_time_now() >= d.deadline;
        if (d.fired == FIRED_TOTAL || (rc == CURLE_OPERATION_TIMEDOUT && past_deadline)) {
            s = sa_error(SA_STATUS_TIMEOUT, "GET %s: no complete answer before the deadline of %d ms (total_timeout_ms, "
                                            "retries included)%s",
                         url, (int)ep->p.total_timeout_ms,
                         d.t_connected ? ": the server accepted the connection but is stuck or too slow" : "");
        } else if (d.fired == FIRED_IDLE) {
            s = sa_error(SA_STATUS_TIMEOUT, "GET %s: connected, but no data from the server for %d ms (idle_timeout_ms)%s",
                         url, (int)ep->p.idle_timeout_ms, d.last_dl ? " in the middle of its answer" : "");
            /* not retried: a hung server would cost a full idle timeout a try (as a hang of
               the stream, docs/internals/upstream.md) */
        } else if (rc == CURLE_OPERATION_TIMEDOUT && !d.t_connected) {
            s = sa_error(SA_STATUS_TIMEOUT, "GET %s: cannot connect within %d ms (connect_timeout_ms): is the host "
                                            "reachable?",
                         url, (int)ep->p.connect_timeout_ms);
            retry = true;
        } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
            s = sa_error(SA_STATUS_CANCELLED, "GET %s: cancelled", url);
        } else if (d.over) {
            s = sa_error(SA_STATUS_NETWORK, "GET %s: the model list is over %zu bytes: refusing it", url,
                         ep->p.max_event_bytes);
        } else if (rc != CURLE_OK) {
            s = curl_failure("GET", url, rc, errbuf, ep, code != 0, &retry);
        } else if (code < 200 || code > 299) {
            char msg[300];
            server_message(d.body.data ? d.body.data : "", d.body.len, msg, sizeof msg);
            if (code == 404)
                s = sa_error(SA_STATUS_NOT_FOUND,
                             "GET %s: HTTP 404 (%s): no model list there (does the URL end in /v1?)", url, msg);
            else if (code == 401 || code == 403)
                s = sa_error(SA_STATUS_NETWORK, "GET %s: HTTP %ld: %s (set $SALIGN_API_KEY or $OPENAI_API_KEY)", url,
                             code, msg);
            else
                s = sa_error(SA_STATUS_NETWORK, "GET %s: HTTP %ld: %s", url, code, msg);
            retry = code == 408 || code == 429 || code >= 500;
        } else {
            s = models_parse(url, d.body.data ? d.body.data : "", d.body.len, ids, n_ids);
        }
        if (!s || !retry || failures >= ep->p.max_retries) {
            if (s && retry && failures) sa_error_wrap(s, "after %d attempts", failures + 1);
            break;
        }
        long ms = retry_delay_ms(ep, failures + 1, ra);
        if (sa_time_now() + (double)ms / 1000 >= d.deadline) {
            sa_error_wrap(s, "no time left before the deadline of %d ms (total_timeout_ms) to retry after %d "
                             "attempt(s)", (int)ep->p.total_timeout_ms, failures + 1);
            break;
        }
        sa_log(SA_LOG_WARN, "%s; retrying in %.2f s", sa_last_error(), (double)ms / 1000);
        if (!wait_ms(ep, ms)) {
            s = sa_error(SA_STATUS_CANCELLED, "GET %s: cancelled", url);
            break;
        }
    }
    sa_buf_free(&d.body);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    free(url);
    return s;
}

enum sa_status sa_upstream_remote_models(const struct sa_upstream_remote_params *params, char ***ids, size_t *n) {
    if (!ids || !n) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_upstream_remote_models: NULL output");
    *ids = NULL;
    *n = 0;
    struct endpoint ep;
    enum sa_status s = endpoint_init(&ep, params);
    if (s) return s;
    s = models_get(&ep, ids, n);
    endpoint_free(&ep);
    return s;
}

void sa_upstream_models_free(char **ids, size_t n) {
    if (!ids) return;
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
}

/* "a, b, c" (at most ~400 bytes) */
static void join_ids(char **ids, size_t n, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        int w = snprintf(out + o, cap - o, "%s'%s'", i ? ", " : "", ids[i]);
        if (w < 0 || (size_t)w >= cap - o) {
            snprintf(out + (cap > 5 ? cap - 5 : 0), 5, "...");
            return;
        }
        o += (size_t)w;
    }
    if (n == 0) snprintf(out, cap, "(none)");
}

/* ---- the stream ---- */

static enum sa_status keep_err(struct remote *r, enum sa_status s) {
    r->err = s;
    snprintf(r->err_msg, sizeof r->err_msg, "%s", sa_last_error());
    return s;
}

static void q_clear(struct remote *r) {
    sa_buf_clear(&r->q);
    r->q_n = r->q_head = r->q_off = 0;
}

static enum sa_status q_push(struct remote *r, const char *t, size_t n) {
    if (r->q_n == r->q_cap) {
        size_t cap = r->q_cap ? r->q_cap * 2 : 64;
        size_t *p = realloc(r->q_len, cap * sizeof *p);
        if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        r->q_len = p;
        r->q_cap = cap;
    }
    enum sa_status s = sa_buf_append(&r->q, t, n);
    if (s) return s;
    r->q_len[r->q_n++] = n;
    return SA_STATUS_OK;
}

static enum sa_status bad_event(struct remote *r, const struct sa_sse_event *ev, const char *what) {
    char snip[160];
    snippet(ev->data, ev->data_len, snip, sizeof snip);
    return sa_error(SA_STATUS_BAD_JSON, "POST %s: stream event %llu %s: %s", r->url, (unsigned long long)r->n_events,
                    what, snip);
}

static enum sa_upstream_finish finish_from(const char *s) {
    if (!strcmp(s, "stop") || !strcmp(s, "eos_token") || !strcmp(s, "stop_sequence")) return SA_UPSTREAM_FINISH_STOP;
    if (!strcmp(s, "length")) return SA_UPSTREAM_FINISH_LENGTH;
    return SA_UPSTREAM_FINISH_OTHER;
}

/* One event of the stream: "[DONE]", or a completion chunk
 * {"choices": [{"text": "...", "finish_reason": null | "stop" | "length" | ...}], ...}. */
static enum sa_status on_event(void *user, const struct sa_sse_event *ev) {
    struct remote *r = user;
    r->n_events++;
    if (r->got_done) return SA_STATUS_OK; /* nothing counts after [DONE] */
    if (ev->type_len == 5 && !memcmp(ev->type, "error", 5)) {
        char msg[300];
        server_message(ev->data, ev->data_len, msg, sizeof msg);
        return sa_error(SA_STATUS_NETWORK, "POST %s: the server reported an error in the stream: %s", r->url, msg);
    }
    if (ev->type_len != 7 || memcmp(ev->type, "message", 7)) return SA_STATUS_OK; /* not ours */
    const char *d = ev->data;
    size_t n = ev->data_len;
    while (n && (d[n - 1] == ' ' || d[n - 1] == '\t' || d[n - 1] == '\n')) n--;
    while (n && (*d == ' ' || *d == '\t' || *d == '\n')) d++, n--;
    if (n == 6 && !memcmp(d, "[DONE]", 6)) {
        r->got_done = true;
        r->t_done = sa_time_now();
        return SA_STATUS_OK;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(d, n, &end, false);
    if (!j) return bad_event(r, ev, "is not JSON");
    enum sa_status s = SA_STATUS_OK;
    if (end && end < d + n) {
        s = bad_event(r, ev, "has bytes after its JSON value");
        goto out;
    }
    if (!cJSON_IsObject(j)) {
        s = bad_event(r, ev, "is not a JSON object");
        goto out;
    }
    cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (err && !cJSON_IsNull(err)) { /* vLLM reports failures inside a stream this way */
        char msg[300];
        server_message(d, n, msg, sizeof msg);
        s = sa_error(SA_STATUS_NETWORK, "POST %s: the server reported an error in the stream: %s", r->url, msg);
        goto out;
    }
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    if (!cJSON_IsArray(choices)) {
        s = bad_event(r, ev, "has no \"choices\" array");
        goto out;
    }
    cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    if (!c0) goto out; /* e.g. a final usage-only chunk */
    if (!cJSON_IsObject(c0)) {
        s = bad_event(r, ev, "has a choice that is not an object");
        goto out;
    }
    cJSON *text = cJSON_GetObjectItemCaseSensitive(c0, "text");
    cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    if (text && !cJSON_IsNull(text) && !cJSON_IsString(text)) {
        s = bad_event(r, ev, "has a \"text\" that is not a string");
        goto out;
    }
    if (fr && !cJSON_IsNull(fr) && !cJSON_IsString(fr)) {
        s = bad_event(r, ev, "has a \"finish_reason\" that is not a string");
        goto out;
    }
    if (cJSON_IsString(text) && text->valuestring[0]) {
        if ((s = q_push(r, text->valuestring, strlen(text->valuestring)))) goto out;
        r->received_text = true;
    }
    if (cJSON_IsString(fr)) {
        r->got_finish = true;
        r->finish = finish_from(fr->valuestring);
    }
out:
    cJSON_Delete(j);
    return s;
}

static size_t on_header(char *b, size_t size, size_t nitems, void *user) {
    struct remote *r = user;
    size_t n = size * nitems;
    r->t_last = sa_time_now();
    char line[256];
    size_t l = SA_MIN(n, sizeof line - 1);
    memcpy(line, b, l);
    line[l] = 0;
    while (l && (line[l - 1] == '\r' || line[l - 1] == '\n')) line[--l] = 0;
    if (!strncmp(line, "HTTP/", 5)) {
        const char *sp = strchr(line, ' ');
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->ctype[0] = 0;
        r->retry_after_s = -1;
        r->head_done = false;
    } else if (l == 0) {
        if (r->status >= 200) {
            r->head_done = true;
            r->is_sse = !r->ctype[0] || !strncasecmp(r->ctype, "text/event-stream", 17);
        }
    } else if (!strncasecmp(line, "content-type:", 13)) {
        const char *v = line + 13;
        while (*v == ' ' || *v == '\t') v++;
        size_t vl = SA_MIN(strlen(v), sizeof r->ctype - 1);
        memcpy(r->ctype, v, vl);
        r->ctype[vl] = 0;
    } else if (!strncasecmp(line, "retry-after:", 12)) {
        char *e;
        long v = strtol(line + 12, &e, 10);
        if (e != line + 12 && v >= 0) r->retry_after_s = v;
    }
    return n;
}

static size_t on_body(char *b, size_t size, size_t nmemb, void *user) {
    struct remote *r = user;
    size_t n = size * nmemb;
    r->t_last = sa_time_now();
    if (r->status < 200 || r->status > 299 || !r->is_sse) { /* an error body: keep its start */
        size_t room = ERR_BODY_MAX - r->errbody.len;
        if (sa_buf_append(&r->errbody, b, SA_MIN(n, room)) || n >= room) {
            r->errbody_full = true;
            return 0;
        }
        return n;
    }
    enum sa_status s = sa_sse_feed(&r->sse, b, n, on_event, r);
    if (s) {
        r->cb_err = s;
        snprintf(r->cb_msg, sizeof r->cb_msg, "%s", sa_last_error());
        return 0; /* aborts the transfer */
    }
    return n;
}

static void attempt_stop(struct remote *r) {
    if (r->in_multi) curl_multi_remove_handle(r->multi, r->easy); /* mid-response: closes the connection */
    r->in_multi = false;
}

static enum sa_status attempt_begin(struct remote *r) {
    r->xfer_done = false;
    r->xfer_rc = CURLE_OK;
    r->status = 0;
    r->head_done = false;
    r->is_sse = false;
    r->ctype[0] = 0;
    r->retry_after_s = -1;
    r->t_last = sa_time_now();
    r->cb_err = SA_STATUS_OK;
    r->errbody_full = false;
    r->errbuf[0] = 0;
    sa_buf_clear(&r->errbody);
    sa_sse_reset(&r->sse);
    CURLMcode mc = curl_multi_add_handle(r->multi, r->easy);
    if (mc != CURLM_OK) return sa_error(SA_STATUS_NETWORK, "curl: %s", curl_multi_strerror(mc));
    r->in_multi = true;
    return SA_STATUS_OK;
}

/* The HTTP error of a completion request, with the server's message and a hint. */
static enum sa_status http_failure(struct remote *r) {
    char msg[400], hint[600] = "";
    server_message(r->errbody.data ? r->errbody.data : "", r->errbody.len, msg, sizeof msg);
    long code = r->status;
    if (code == 401 || code == 403) snprintf(hint, sizeof hint, " (set $SALIGN_API_KEY or $OPENAI_API_KEY)");
    if (code == 404 || code == 400) { /* a wrong model name is the usual cause: say what is served */
        char **ids = NULL;
        size_t n = 0;
        struct endpoint quick = r->ep;
        quick.p.max_retries = 0;
        bool listed = false;
        if (models_get(&quick, &ids, &n) == SA_STATUS_OK) {
            for (size_t i = 0; i < n && r->model; i++) listed |= !strcmp(ids[i], r->model);
            if (r->model && !listed) {
                char list[420];
                join_ids(ids, n, list, sizeof list);
                snprintf(hint, sizeof hint, " (the server does not list model '%s'; it serves: %s)", r->model, list);
            }
        } else if (code == 404) {
            snprintf(hint, sizeof hint, " (does the URL end in /v1?)");
        }
        sa_upstream_models_free(ids, n);
    }
    return sa_error(code == 404 ? SA_STATUS_NOT_FOUND : SA_STATUS_NETWORK, "POST %s: HTTP %ld: %s%s", r->url, code,
                    msg, hint);
}

/* The transfer ended: decide between done, a retry (true: a new attempt is under way) and an
 * error (kept in r->err). */
static bool attempt_ended(struct remote *r) {
    attempt_stop(r);
    CURLcode rc = r->xfer_rc;
    bool ok2xx = r->status >= 200 && r->status <= 299;
    bool retry = false;
    enum sa_status s;
    if (r->cb_err) {
        s = sa_error(r->cb_err, "%s", r->cb_msg);
    } else if ((rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r->errbody_full)) && r->head_done && !ok2xx) {
        s = http_failure(r);
        retry = r->status == 408 || r->status == 429 || r->status >= 500;
    } else if ((rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r->errbody_full)) && r->head_done && !r->is_sse) {
        char snip[160];
        snippet(r->errbody.data ? r->errbody.data : "", r->errbody.len, snip, sizeof snip);
        s = sa_error(SA_STATUS_NETWORK,
                     "POST %s: the server answered with Content-Type '%s', not an event stream (does it support "
                     "\"stream\": true?): %s",
                     r->url, r->ctype, snip);
    } else if (r->got_done || r->got_finish) {
        r->complete = true; /* whatever happened to the connection after the end */
        return false;
    } else if (rc == CURLE_OK) {
        s = sa_error(SA_STATUS_NETWORK,
                     "POST %s: the stream ended without [DONE] or a finish_reason after %llu events%s: the answer "
                     "is truncated (the server closed the stream early)",
                     r->url, (unsigned long long)r->n_events,
                     sa_sse_partial(&r->sse) ? " and a partial event" : "");
        retry = true;
    } else {
        s = curl_failure("POST", r->url, rc, r->errbuf, &r->ep, r->head_done, &retry);
        if (r->received_text)
            sa_error_wrap(s, "the answer is truncated after %llu events", (unsigned long long)r->n_events);
    }
    if (retry && !r->received_text && r->failures < r->ep.p.max_retries) {
        long ms = retry_delay_ms(&r->ep, r->failures + 1, r->retry_after_s);
        if (sa_time_now() + (double)ms / 1000 < r->deadline) {
            r->failures++;
            sa_log(SA_LOG_WARN, "%s; retrying in %.2f s", sa_last_error(), (double)ms / 1000);
            if (!wait_ms(&r->ep, ms)) {
                keep_err(r, sa_error(SA_STATUS_CANCELLED, "POST %s: cancelled", r->url));
                return false;
            }
            r->n_events = 0;
            enum sa_status b = attempt_begin(r);
            if (b) {
                keep_err(r, b);
                return false;
            }
            return true;
        }
        sa_error_wrap(s, "no time left before the deadline to retry");
    }
    if (retry && r->failures) sa_error_wrap(s, "after %d attempts", r->failures + 1);
    keep_err(r, s);
    return false;
}

enum want { WANT_HEAD, WANT_CHUNK };

/* Runs the transfer until there is something for the caller: queued text, the end, an error
 * (r->err), or (WANT_HEAD) a streaming response head. */
static void drive(struct remote *r, enum want w) {
    const struct sa_upstream_remote_params *p = &r->ep.p;
    for (;;) {
        if (r->q_head < r->q_n || r->err || r->complete) return;
        SA_ASSERT(r->in_multi); /* every way out of a transfer sets complete or err */
        int running = 0;
        CURLMcode mc = curl_multi_perform(r->multi, &running);
        if (mc != CURLM_OK) {
            attempt_stop(r);
            keep_err(r, sa_error(SA_STATUS_NETWORK, "POST %s: curl: %s", r->url, curl_multi_strerror(mc)));
            return;
        }
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(r->multi, &left)))
            if (m->msg == CURLMSG_DONE && m->easy_handle == r->easy) {
                r->xfer_done = true;
                r->xfer_rc = m->data.result;
            }
        if (r->xfer_done) {
            if (attempt_ended(r)) continue; /* retrying */
            return;
        }
        if (r->q_head < r->q_n) return;
        if (w == WANT_HEAD && r->head_done && r->status >= 200 && r->status <= 299 && r->is_sse) return;
        double now = sa_time_now();
        if (r->got_done && now - r->t_done >= DONE_GRACE_S) { /* [DONE] is the end, whatever follows */
            attempt_stop(r);
            r->complete = true;
            return;
        }
        if (aborted(&r->ep)) {
            attempt_stop(r);
            keep_err(r, sa_error(SA_STATUS_CANCELLED, "POST %s: cancelled", r->url));
            return;
        }
        if (now >= r->deadline) {
            attempt_stop(r);
            keep_err(r, sa_error(SA_STATUS_TIMEOUT,
                                 "POST %s: the generation ran past its deadline of %d ms (total_timeout_ms)", r->url,
                                 (int)p->total_timeout_ms));
            return;
        }
        double idle = (double)p->idle_timeout_ms / 1000;
        if (now - r->t_last >= idle) {
            attempt_stop(r);
            if (r->got_finish) { /* the end came, only [DONE] is missing */
                r->complete = true;
                return;
            }
            keep_err(r, sa_error(SA_STATUS_TIMEOUT,
                                 "POST %s: no data from the server for %d ms (idle_timeout_ms) %s: it is stuck or "
                                 "overloaded",
                                 r->url, (int)p->idle_timeout_ms,
                                 r->head_done ? "in the middle of the stream" : "while waiting for its answer"));
            return;
        }
        double wait = SA_MIN(idle - (now - r->t_last), r->deadline - now);
        if (p->abort_cb) wait = SA_MIN(wait, 0.05);
        if (r->got_done) wait = SA_MIN(wait, DONE_GRACE_S - (now - r->t_done));
        int wait_ms_i = (int)ceil(SA_MAX(wait, 0.001) * 1000);
        mc = curl_multi_poll(r->multi, NULL, 0, SA_MIN(wait_ms_i, 1000), NULL);
        if (mc != CURLM_OK) {
            attempt_stop(r);
            keep_err(r, sa_error(SA_STATUS_NETWORK, "POST %s: curl: %s", r->url, curl_multi_strerror(mc)));
            return;
        }
    }
}

/* Forgets the generation (closing its connection if it is still open). */
static void generation_reset(struct remote *r) {
    attempt_stop(r);
    q_clear(r);
    r->err = SA_STATUS_OK;
    r->err_msg[0] = 0;
    r->complete = r->got_done = r->got_finish = r->received_text = false;
    r->finish = SA_UPSTREAM_FINISH_NONE;
    r->failures = 0;
    r->n_events = 0;
}

static enum sa_status build_body(struct remote *r, const char *prompt, size_t len,
                                 const struct sa_upstream_gen_params *p) {
    char *pz = strndup(prompt, len);
    cJSON *o = cJSON_CreateObject();
    char num[32];
    bool ok = pz && o;
    if (ok && r->model) ok = cJSON_AddStringToObject(o, "model", r->model) != NULL;
    if (ok) ok = cJSON_AddStringToObject(o, "prompt", pz) != NULL;
    if (ok) ok = cJSON_AddNumberToObject(o, "max_tokens", p->max_tokens) != NULL;
    /* floats as their shortest decimal form: 0.7f goes out as 0.7, not 0.69999998807907104 */
    snprintf(num, sizeof num, "%.6g", p->temperature > 0 ? (double)p->temperature : 0.0);
    if (ok) ok = cJSON_AddNumberToObject(o, "temperature", strtod(num, NULL)) != NULL;
    snprintf(num, sizeof num, "%.6g", (double)p->top_p);
    if (ok) ok = cJSON_AddNumberToObject(o, "top_p", strtod(num, NULL)) != NULL;
    if (ok && p->seed != SA_UPSTREAM_SEED_NONE) { /* exact: a double would round seeds over 2^53 */
        snprintf(num, sizeof num, "%llu", (unsigned long long)p->seed);
        ok = cJSON_AddRawToObject(o, "seed", num) != NULL;
    }
    if (ok && p->n_stop) {
        cJSON *a = cJSON_AddArrayToObject(o, "stop");
        ok = a != NULL;
        for (size_t i = 0; ok && i < p->n_stop; i++) {
            cJSON *st = cJSON_CreateString(p->stop[i]);
            ok = st && cJSON_AddItemToArray(a, st);
        }
    }
    if (ok) ok = cJSON_AddTrueToObject(o, "stream") != NULL;
    for (const cJSON *e = r->extra ? r->extra->child : NULL; ok && e; e = e->next) {
        if (cJSON_GetObjectItemCaseSensitive(o, e->string)) continue;
        cJSON *d = cJSON_Duplicate(e, 1);
        ok = d && cJSON_AddItemToObject(o, e->string, d);
    }
    free(r->body);
    r->body = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    free(pz);
    return r->body ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory (request body)");
}

static enum sa_status remote_start(void *impl, const char *prompt, size_t len, const struct sa_upstream_gen_params *p) {
    struct remote *r = impl;
    generation_reset(r);
    enum sa_status s = build_body(r, prompt, len, p);
    if (s) return s;
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
    r->deadline = sa_time_now() + (double)r->ep.p.total_timeout_ms / 1000;
    if ((s = attempt_begin(r))) return s;
    drive(r, WANT_HEAD);
    if (r->err && r->q_head == r->q_n) {
        s = sa_error(r->err, "%s", r->err_msg);
        generation_reset(r);
        return s;
    }
    return SA_STATUS_OK;
}

static enum sa_status remote_next(void *impl, struct sa_upstream_chunk *out) {
    struct remote *r = impl;
    drive(r, WANT_CHUNK);
    if (r->q_head < r->q_n) {
        size_t n = r->q_len[r->q_head++];
        sa_buf_clear(&r->out);
        enum sa_status s = sa_buf_append(&r->out, r->q.data + r->q_off, n);
        r->q_off += n;
        if (r->q_head == r->q_n) q_clear(r);
        if (s) {
            generation_reset(r);
            return s;
        }
        out->text = r->out.data;
        out->len = n;
        out->n_tokens = 1;
        out->finish = SA_UPSTREAM_FINISH_NONE;
        return SA_STATUS_OK;
    }
    if (r->err) {
        enum sa_status s = sa_error(r->err, "%s", r->err_msg);
        generation_reset(r);
        return s;
    }
    SA_ASSERT(r->complete);
    out->text = "";
    out->len = 0;
    out->n_tokens = 0;
    out->finish = r->got_finish ? r->finish : SA_UPSTREAM_FINISH_OTHER;
    if (out->finish == SA_UPSTREAM_FINISH_NONE) out->finish = SA_UPSTREAM_FINISH_OTHER;
    generation_reset(r);
    return SA_STATUS_OK;
}

static void remote_cancel(void *impl) { generation_reset(impl); }

static void remote_free(void *impl) {
    struct remote *r = impl;
    if (!r) return;
    generation_reset(r);
    if (r->multi) curl_multi_cleanup(r->multi);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    endpoint_free(&r->ep);
    free(r->url);
    free(r->model);
    cJSON_Delete(r->extra);
    free(r->body);
    free(r->q_len);
    sa_buf_free(&r->q);
    sa_buf_free(&r->out);
    sa_buf_free(&r->errbody);
    sa_sse_free(&r->sse);
    free(r);
}

static const struct sa_upstream_ops remote_ops = {
    .name = "remote",
    .start = remote_start,
    .next = remote_next,
    .cancel = remote_cancel,
    .free = remote_free,
};

struct sa_upstream_remote_params sa_upstream_remote_default_params(void) {
    return (struct sa_upstream_remote_params){
        .connect_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .total_timeout_ms = 600000,
        .max_retries = 3,
        .backoff_ms = 250,
        .max_event_bytes = (size_t)1 << 20,
        .check_model = true,
    };
}

/* The model to use: the one given (checked against the list with check_model), or the only
 * one the server lists. */
static enum sa_status resolve_model(struct remote *r, const struct sa_upstream_remote_params *params) {
    const char *want = params->model && *params->model ? params->model : NULL;
    if (want && !params->check_model)
        return (r->model = strdup(want)) ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    char **ids = NULL;
    size_t n = 0;
    enum sa_status s = models_get(&r->ep, &ids, &n);
    if (s == SA_STATUS_NOT_FOUND && want) { /* no /models route: nothing to check against */
        sa_log(SA_LOG_WARN, "%s; not checking the model name", sa_last_error());
        return (r->model = strdup(want)) ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    if (s) return s;
    char list[420];
    join_ids(ids, n, list, sizeof list);
    if (want) {
        bool found = false;
        for (size_t i = 0; i < n; i++) found |= !strcmp(ids[i], want);
        if (!found)
            s = sa_error(SA_STATUS_NOT_FOUND,
                         "the server at %s does not serve model '%s'; it serves: %s (pass one of them as the "
                         "upstream model)",
                         r->ep.base, want, list);
        else if (!(r->model = strdup(want)))
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    } else if (n == 1) {
        if (!(r->model = strdup(ids[0]))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    } else {
        s = sa_error(n ? SA_STATUS_BAD_ARGUMENT : SA_STATUS_NOT_FOUND,
                     "the server at %s serves %s: name the upstream model (it serves: %s)", r->ep.base,
                     n ? "several models" : "no model", list);
    }
    sa_upstream_models_free(ids, n);
    return s;
}

enum sa_status sa_upstream_remote_init(const struct sa_upstream_remote_params *params, struct sa_upstream **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_upstream_remote_init: NULL out");
    *out = NULL;
    struct remote *r = calloc(1, sizeof *r);
    if (!r) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    enum sa_status s = endpoint_init(&r->ep, params);
    if (s) {
        free(r);
        return s;
    }
    sa_buf_init(&r->q, 0);
    sa_buf_init(&r->out, 0);
    sa_buf_init(&r->errbody, 0);
    sa_sse_init(&r->sse, r->ep.p.max_event_bytes);
    r->multi = curl_multi_init();
    r->easy = curl_easy_init();
    if (asprintf(&r->url, "%s/completions", r->ep.base) < 0) r->url = NULL;
    struct curl_slist *h = NULL;
    const char *hdrs[] = {"Content-Type: application/json", "Accept: text/event-stream", "Expect:", r->ep.auth};
    bool ok = r->multi && r->easy && r->url;
    for (size_t i = 0; ok && i < SA_ARRAY_LEN(hdrs); i++) {
        if (!hdrs[i]) continue;
        struct curl_slist *h2 = curl_slist_append(h, hdrs[i]);
        if (!h2) ok = false;
        else h = h2;
    }
    r->hdrs = h;
    if (!ok) {
        remote_free(r);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory (curl)");
    }
    CURL *c = r->easy;
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "salign/0.1");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)r->ep.p.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);

    if (params->extra_body) {
        r->extra = cJSON_Parse(params->extra_body);
        if (!cJSON_IsObject(r->extra)) {
            remote_free(r);
            return sa_error(SA_STATUS_BAD_ARGUMENT, "remote upstream: extra_body is not a JSON object: %.80s",
                            params->extra_body);
        }
    }
    if ((s = resolve_model(r, params))) {
        remote_free(r);
        return s;
    }
    return sa_upstream_init_ops(&remote_ops, r, out);
}
