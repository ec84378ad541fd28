/* sse.c: an incremental parser of server-sent event streams (text/event-stream), as the
 * WHATWG HTML standard's "Interpreting an event stream" describes it, for the streamed
 * responses of OpenAI-compatible servers. Input may be split at any byte (inside a CRLF, a
 * BOM, a field name); the events come out the same. Lines and events are capped so that a
 * hostile server cannot make us buffer without bound. */
#include "upstream/upstream_impl.h"

#include <string.h>

static const uint8_t k_bom[3] = {0xEF, 0xBB, 0xBF};

void sa_sse_init(struct sa_sse *s, size_t max_bytes) {
    memset(s, 0, sizeof *s);
    s->max_bytes = max_bytes ? max_bytes : (size_t)1 << 20;
    sa_buf_init(&s->line, 0);
    sa_buf_init(&s->data, 0);
    sa_buf_init(&s->type, 0);
    sa_buf_init(&s->id, 0);
    s->retry_ms = -1;
}

void sa_sse_free(struct sa_sse *s) {
    if (!s) return;
    sa_buf_free(&s->line);
    sa_buf_free(&s->data);
    sa_buf_free(&s->type);
    sa_buf_free(&s->id);
}

void sa_sse_reset(struct sa_sse *s) {
    sa_buf_clear(&s->line);
    sa_buf_clear(&s->data);
    sa_buf_clear(&s->type);
    sa_buf_clear(&s->id);
    s->retry_ms = -1;
    s->n_bom = 0;
    s->bom_done = false;
    s->after_cr = false;
    s->failed = false;
    s->n_events = 0;
}

bool sa_sse_partial(const struct sa_sse *s) { return s->line.len > 0 || s->data.len > 0 || s->n_bom > 0; }

static bool field_is(const char *f, size_t n, const char *name) { return n == strlen(name) && !memcmp(f, name, n); }

/* A blank line: dispatch the event being built (if it has data), then start a new one. */
static enum sa_status dispatch(struct sa_sse *s, sa_sse_event_fn cb, void *user) {
    if (s->data.len == 0) { /* no data field: nothing is dispatched, the type is forgotten */
        sa_buf_clear(&s->type);
        return SA_STATUS_OK;
    }
    s->data.len--; /* the '\n' after the last data line */
    s->data.data[s->data.len] = 0;
    struct sa_sse_event ev = {
        .type = s->type.len ? s->type.data : "message",
        .type_len = s->type.len ? s->type.len : 7,
        .data = s->data.data,
        .data_len = s->data.len,
        .id = s->id.len ? s->id.data : "",
        .id_len = s->id.len,
    };
    s->n_events++;
    enum sa_status st = cb ? cb(user, &ev) : SA_STATUS_OK;
    sa_buf_clear(&s->data);
    sa_buf_clear(&s->type);
    return st;
}

static enum sa_status process_line(struct sa_sse *s, sa_sse_event_fn cb, void *user) {
    const char *l = s->line.data;
    size_t n = s->line.len;
    if (n == 0) return dispatch(s, cb, user);
    if (l[0] == ':') return SA_STATUS_OK; /* comment (keep-alive pings) */
    const char *colon = memchr(l, ':', n);
    size_t fn = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vn = (size_t)(l + n - v);
    if (vn && *v == ' ') v++, vn--;
    enum sa_status st = SA_STATUS_OK;
    if (field_is(l, fn, "data")) {
        if (s->data.len + vn + 1 > s->max_bytes)
            return sa_error(SA_STATUS_NETWORK,
                            "an event of the stream has over %zu bytes of data: refusing it (a broken or "
                            "hostile server; raise max_event_bytes if events are really this long)",
                            s->max_bytes);
        if (!(st = sa_buf_append(&s->data, v, vn))) st = sa_buf_append(&s->data, "\n", 1);
    } else if (field_is(l, fn, "event")) {
        sa_buf_clear(&s->type);
        st = sa_buf_append(&s->type, v, vn);
    } else if (field_is(l, fn, "id")) {
        if (!memchr(v, 0, vn)) { /* an id with a NUL is ignored */
            sa_buf_clear(&s->id);
            st = sa_buf_append(&s->id, v, vn);
        }
    } else if (field_is(l, fn, "retry")) {
        int64_t ms = 0;
        size_t i = 0;
        for (; i < vn && v[i] >= '0' && v[i] <= '9'; i++) {
            if (ms > (INT64_MAX - 9) / 10) break;
            ms = ms * 10 + (v[i] - '0');
        }
        if (vn && i == vn) s->retry_ms = ms;
    }
    return st;
}

/* The bytes after the BOM check: split into lines at CR, LF and CRLF. */
static enum sa_status feed_lines(struct sa_sse *s, const char *b, size_t n, sa_sse_event_fn cb, void *user) {
    size_t i = 0;
    while (i < n) {
        char c = b[i];
        if (s->after_cr) {
            s->after_cr = false;
            if (c == '\n') { /* the LF of a CRLF whose CR ended the line already */
                i++;
                continue;
            }
        }
        if (c == '\r' || c == '\n') {
            enum sa_status st = process_line(s, cb, user);
            sa_buf_clear(&s->line);
            if (st) return st;
            s->after_cr = c == '\r';
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && b[j] != '\r' && b[j] != '\n') j++;
        if (s->line.len + (j - i) > s->max_bytes)
            return sa_error(SA_STATUS_NETWORK,
                            "a line of the event stream is over %zu bytes: refusing it (a broken or hostile "
                            "server; raise max_event_bytes if events are really this long)",
                            s->max_bytes);
        enum sa_status st = sa_buf_append(&s->line, b + i, j - i);
        if (st) return st;
        i = j;
    }
    return SA_STATUS_OK;
}

enum sa_status sa_sse_feed(struct sa_sse *s, const char *bytes, size_t n, sa_sse_event_fn cb, void *user) {
    if (s->failed) return sa_error(SA_STATUS_BAD_ARGUMENT, "event stream parser used after a failure (reset it)");
    if (n && !bytes) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_sse_feed: NULL bytes");
    enum sa_status st = SA_STATUS_OK;
    /* The stream's UTF-8 decoding drops one leading BOM: hold the first bytes while they
     * still match it, then either drop them (a full BOM) or pass them on. */
    while (!s->bom_done && n) {
        if ((uint8_t)*bytes == k_bom[s->n_bom]) {
            s->bom[s->n_bom++] = (uint8_t)*bytes;
            bytes++, n--;
            if (s->n_bom == 3) s->bom_done = true, s->n_bom = 0;
            continue;
        }
        s->bom_done = true;
        int held = s->n_bom;
        s->n_bom = 0;
        if (held && (st = feed_lines(s, (const char *)s->bom, (size_t)held, cb, user))) break;
    }
    if (!st && n) st = feed_lines(s, bytes, n, cb, user);
    if (st) s->failed = true;
    return st;
}
