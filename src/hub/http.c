/* http.c: resumable downloads with libcurl. The bytes go to a `.part` file; a later attempt
 * (a retry here, or the next run after a kill) asks for the rest with `Range: bytes=N-` and
 * appends if the server answers 206 from exactly N, or starts over if it answers 200. The
 * size the server announced (Content-Length, or the total of Content-Range) is checked;
 * 5xx, 408, 429 and dropped or stalled connections are retried with exponential backoff.
 * The caller (hub.c) checks the sha256 and renames the part into place. */
#define _GNU_SOURCE
#include "hub/hub_impl.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* State of one attempt (one curl_easy_perform). */
struct dl {
    int fd;
    const char *part_path;
    uint64_t offset;   /* bytes already in the part file when the attempt began */
    uint64_t written;  /* bytes written by this attempt */
    uint64_t total;    /* size of the whole file as announced (0: unknown) */
    bool started;      /* the first body byte was seen */
    long status;       /* status of the latest response */
    int64_t clen;      /* Content-Length of the latest response (-1: none) */
    int64_t cr_start;  /* Content-Range start (-1: none) */
    uint64_t cr_total; /* Content-Range total (0: none or '*') */
    char *etag;        /* out: sha256 from X-Linked-Etag */
    enum sa_status err; /* our own reason to abort (write error, bad range) */
    const struct sa_hub_pull_params *p;
    const char *what;
    bool cancelled;
};

static bool hdr_is(const char *line, size_t n, const char *name, const char **val) {
    size_t l = strlen(name);
    if (n <= l || strncasecmp(line, name, l) || line[l] != ':') return false;
    *val = line + l + 1;
    while (**val == ' ' || **val == '\t') (*val)++;
    return true;
}

static size_t on_header(char *b, size_t size, size_t nitems, void *user) {
    struct dl *d = user;
    size_t n = size * nitems;
    char line[512];
    size_t l = SA_MIN(n, sizeof line - 1);
    memcpy(line, b, l);
    line[l] = 0;
    while (l && (line[l - 1] == '\r' || line[l - 1] == '\n')) line[--l] = 0;
    const char *v;
    if (!strncmp(line, "HTTP/", 5)) {
        const char *sp = strchr(line, ' ');
        d->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        d->clen = -1;
        d->cr_start = -1;
        d->cr_total = 0;
    } else if (hdr_is(line, l, "content-length", &v)) {
        char *end;
        unsigned long long x = strtoull(v, &end, 10);
        if (end != v) d->clen = (int64_t)x;
    } else if (hdr_is(line, l, "content-range", &v)) {
        unsigned long long a, e, t;
        if (sscanf(v, "bytes %llu-%llu/%llu", &a, &e, &t) == 3) {
            d->cr_start = (int64_t)a;
            d->cr_total = t;
        } else if (sscanf(v, "bytes %llu-%llu/*", &a, &e) == 2) {
            d->cr_start = (int64_t)a;
        }
    } else if (hdr_is(line, l, "x-linked-etag", &v)) {
        /* Hugging Face puts the sha256 of LFS files there, quoted */
        if (*v == '"') v++;
        size_t k = 0;
        while (k < 64 && ((v[k] >= '0' && v[k] <= '9') || (v[k] >= 'a' && v[k] <= 'f'))) k++;
        if (k == 64 && (v[64] == '"' || v[64] == 0)) {
            memcpy(d->etag, v, 64);
            d->etag[64] = 0;
        }
    }
    return n;
}

static size_t on_body(char *b, size_t size, size_t nmemb, void *user) {
    struct dl *d = user;
    size_t n = size * nmemb;
    if (!d->started) {
        d->started = true;
        if (d->status == 206) {
            if (d->cr_start != (int64_t)d->offset) {
                d->err = sa_error(SA_STATUS_NETWORK, "the server resumed at byte %lld, not at %llu as asked",
                                  (long long)d->cr_start, (unsigned long long)d->offset);
                return 0;
            }
            d->total = d->cr_total;
        } else {
            if (d->offset > 0) { /* the server ignored Range: start over */
                if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0) {
                    d->err = sa_error(SA_STATUS_IO, "%s: cannot truncate: %s", d->part_path, strerror(errno));
                    return 0;
                }
                d->offset = 0;
            }
            d->total = d->clen >= 0 ? (uint64_t)d->clen : 0;
        }
    }
    if (d->total && d->offset + d->written + n > d->total) {
        d->err = sa_error(SA_STATUS_NETWORK, "the server sent more than the %llu bytes it announced",
                          (unsigned long long)d->total);
        return 0;
    }
    size_t left = n;
    while (left) {
        ssize_t w = write(d->fd, b + (n - left), left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            d->err = sa_error(SA_STATUS_IO, "%s: write failed: %s", d->part_path, strerror(errno));
            return 0;
        }
        left -= (size_t)w;
    }
    d->written += n;
    return n;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)ultotal;
    (void)ulnow;
    struct dl *d = user;
    uint64_t total = d->total ? d->total : dltotal > 0 ? d->offset + (uint64_t)dltotal : 0;
    if (!sa_hub_report(d->p, d->what, d->offset + (uint64_t)(dlnow > 0 ? dlnow : 0), total)) {
        d->cancelled = true;
        return 1;
    }
    return 0;
}

static long env_long(const char *name, long dflt) {
    const char *e = getenv(name);
    if (!e || !*e) return dflt;
    char *end;
    long v = strtol(e, &end, 10);
    return *end == 0 && v >= 0 ? v : dflt;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

enum sa_status sa_http_download(const char *url, const char *part_path, const struct sa_http_params *hp,
                                const struct sa_hub_pull_params *p, char etag_sha[65]) {
    etag_sha[0] = 0;
    pthread_once(&curl_once, curl_init_once);
    long timeout = hp && hp->timeout_s > 0 ? hp->timeout_s : env_long("SALIGN_HTTP_TIMEOUT", 60);
    if (timeout <= 0) timeout = 60;
    int max_retries = hp && hp->max_retries >= 0 ? hp->max_retries : (int)env_long("SALIGN_HTTP_RETRIES", 4);
    long backoff = hp && hp->backoff_ms > 0 ? hp->backoff_ms : 500;

    const char *base = strrchr(part_path, '/');
    base = base ? base + 1 : part_path;
    char what[300];
    snprintf(what, sizeof what, "download %.*s", (int)(strlen(base) > 5 ? strlen(base) - 5 : strlen(base)), base);

    int fd = open(part_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return sa_error(SA_STATUS_IO, "%s: cannot create: %s", part_path, strerror(errno));
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char *auth = NULL;
    if (!c) {
        close(fd);
        return sa_error(SA_STATUS_NO_MEMORY, "curl_easy_init failed");
    }
    if (hp && hp->bearer) {
        if (asprintf(&auth, "Authorization: Bearer %s", hp->bearer) < 0) auth = NULL;
        if (auth) hdrs = curl_slist_append(hdrs, auth);
    }
    char errbuf[CURL_ERROR_SIZE];
    struct dl d;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "salign/0.1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, timeout);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &d);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
    if (hdrs) curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

    enum sa_status s = SA_STATUS_OK;
    int failures = 0;
    bool restarted = false;
    for (int attempt = 0;; attempt++) {
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0) {
            s = sa_error(SA_STATUS_IO, "%s: seek failed: %s", part_path, strerror(errno));
            break;
        }
        memset(&d, 0, sizeof d);
        d.fd = fd;
        d.part_path = part_path;
        d.offset = (uint64_t)end;
        d.clen = d.cr_start = -1;
        d.etag = etag_sha;
        d.p = p;
        d.what = what;
        errbuf[0] = 0;
        char range[48];
        snprintf(range, sizeof range, "%llu-", (unsigned long long)d.offset);
        curl_easy_setopt(c, CURLOPT_RANGE, d.offset ? range : NULL);
        if (d.offset) sa_log(SA_LOG_INFO, "%s: resuming at byte %llu", url, (unsigned long long)d.offset);

        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        bool retry = false;
        if (rc == CURLE_OK) {
            uint64_t got = d.offset + d.written;
            if (!d.started && code == 206 && d.cr_total && d.cr_start == (int64_t)d.offset) d.total = d.cr_total;
            if (!d.started && code != 206) d.total = d.clen >= 0 ? (uint64_t)d.clen : 0;
            if (!d.started && code == 200 && d.offset > 0 && d.total == 0) { /* empty 200 to a Range request */
                if (ftruncate(fd, 0) != 0) {
                    s = sa_error(SA_STATUS_IO, "%s: cannot truncate: %s", part_path, strerror(errno));
                    break;
                }
                got = 0;
            }
            if (d.total && got != d.total) {
                s = sa_error(SA_STATUS_NETWORK, "%s: got %llu of %llu bytes", url, (unsigned long long)got,
                             (unsigned long long)d.total);
                retry = true;
            } else {
                s = SA_STATUS_OK;
                break;
            }
        } else if (d.cancelled || rc == CURLE_ABORTED_BY_CALLBACK) {
            s = sa_error(SA_STATUS_CANCELLED, "%s: cancelled", url);
            break;
        } else if (d.err) {
            s = d.err; /* message already set by on_body */
            retry = d.err == SA_STATUS_NETWORK; /* a bad resume or overlong body: start over */
            if (retry && ftruncate(fd, 0) != 0) {
                s = sa_error(SA_STATUS_IO, "%s: cannot truncate: %s", part_path, strerror(errno));
                break;
            }
        } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
            if (code == 416 && d.offset > 0 && !restarted) {
                /* our part is at or past the end: the file changed or we had it all; start over */
                restarted = true;
                if (ftruncate(fd, 0) != 0) {
                    s = sa_error(SA_STATUS_IO, "%s: cannot truncate: %s", part_path, strerror(errno));
                    break;
                }
                continue;
            }
            if (code == 404 || code == 410)
                s = sa_error(SA_STATUS_NOT_FOUND, "%s: HTTP %ld: no such file on the server (check the URL)", url,
                             code);
            else if (code == 401 || code == 403)
                s = sa_error(SA_STATUS_NETWORK,
                             "%s: HTTP %ld: access denied (for a gated Hugging Face repository set $HF_TOKEN)", url,
                             code);
            else
                s = sa_error(SA_STATUS_NETWORK, "%s: HTTP %ld", url, code);
            retry = code >= 500 || code == 408 || code == 429;
        } else if (rc == CURLE_OPERATION_TIMEDOUT) {
            s = sa_error(SA_STATUS_TIMEOUT, "%s: no data for %ld s (set $SALIGN_HTTP_TIMEOUT or --timeout)", url,
                         timeout);
            retry = true;
        } else {
            s = sa_error(SA_STATUS_NETWORK, "%s: %s%s%s", url, curl_easy_strerror(rc), errbuf[0] ? ": " : "", errbuf);
            retry = rc == CURLE_COULDNT_CONNECT || rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR ||
                    rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_SSL_CONNECT_ERROR;
        }
        /* an attempt that moved the download forward does not use up a retry */
        if (!retry || attempt >= 100) break;
        if (d.written == 0 && ++failures > max_retries) break;
        long ms = backoff << SA_MIN(failures > 0 ? failures - 1 : 0, 6);
        sa_log(SA_LOG_WARN, "%s; retrying in %.1f s", sa_last_error(), (double)SA_MIN(ms, 30000) / 1000);
        sleep_ms(SA_MIN(ms, 30000L));
    }
    if (close(fd) != 0 && !s) s = sa_error(SA_STATUS_IO, "%s: close failed: %s", part_path, strerror(errno));
    curl_slist_free_all(hdrs);
    free(auth);
    curl_easy_cleanup(c);
    return s;
}
