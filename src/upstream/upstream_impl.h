/* upstream_impl.h: internals of the upstreams: the server-sent events parser (sse.c) that
 * the remote upstream (remote.c) reads its stream with. Library-internal; tests/test_sse.c
 * drives the parser directly. */
#ifndef SA_UPSTREAM_IMPL_H
#define SA_UPSTREAM_IMPL_H

#include "core/core_impl.h"
#include "sa/upstream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- server-sent events (WHATWG HTML, "Server-sent events", 9.2.6 "Interpreting an event
 * stream"): lines end with CRLF, LF or CR; a blank line dispatches the event being built;
 * "data:" lines are joined with LF; lines starting with ':' are comments; one leading BOM and
 * one space after the colon are dropped; "event", "id", "retry" are kept; other fields are
 * ignored; an event not closed by a blank line when the stream ends is discarded. Bytes are
 * passed through as they are (no UTF-8 decoding or replacement: the JSON parser that reads
 * the data checks it). Split anywhere: feeding a stream in any pieces gives the same events. */

struct sa_sse_event {
    const char *type; /* "message" when the event had no (or an empty) event field */
    size_t type_len;
    const char *data; /* the data lines joined with '\n' (no trailing '\n'); NUL-terminated */
    size_t data_len;
    const char *id;   /* the last event id set so far ("" if none); NUL-terminated */
    size_t id_len;
};

/* Called for each dispatched event; `ev` is valid during the call. Return SA_STATUS_OK to go
 * on; any other status stops sa_sse_feed, which returns it (the parser is then failed). */
typedef enum sa_status (*sa_sse_event_fn)(void *user, const struct sa_sse_event *ev);

struct sa_sse {
    struct sa_buf line; /* the current line, without its terminator */
    struct sa_buf data; /* data of the event being built: each data line followed by '\n' */
    struct sa_buf type; /* event type of the event being built */
    struct sa_buf id;   /* last event id (kept across events, as the spec says) */
    size_t max_bytes;   /* cap on one line and on one event's data */
    int64_t retry_ms;   /* last valid "retry" field; -1: none */
    uint8_t bom[3];     /* leading bytes held while they could still be a BOM */
    int n_bom;
    bool bom_done;      /* past the stream's first bytes */
    bool after_cr;      /* the last byte was a CR: an LF right after it ends nothing more */
    bool failed;        /* a feed failed: only reset or free are allowed */
    uint64_t n_events;  /* events dispatched */
};

/* max_bytes 0: 1 MiB. */
void sa_sse_init(struct sa_sse *s, size_t max_bytes);
void sa_sse_free(struct sa_sse *s);
/* Back to the state of a new stream (keeps max_bytes and the memory). */
void sa_sse_reset(struct sa_sse *s);
/* Parses n more bytes of the stream (bytes may be NULL when n is 0), calling cb (may be NULL)
 * for each event they complete. Errors: SA_STATUS_NETWORK (a line or an event's data over
 * max_bytes: the message says so), the callback's status, SA_STATUS_NO_MEMORY,
 * SA_STATUS_BAD_ARGUMENT (the parser failed before). */
SA_NODISCARD enum sa_status sa_sse_feed(struct sa_sse *s, const char *bytes, size_t n, sa_sse_event_fn cb,
                                        void *user);
/* True when bytes of an event that was not dispatched yet are held (a partial line, or data
 * lines without their closing blank line): what a stream that ends now would lose. */
bool sa_sse_partial(const struct sa_sse *s);

#endif
