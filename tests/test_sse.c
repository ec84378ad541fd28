/* test_sse.c: the server-sent events parser (src/upstream/sse.c) on a table of streams, each
 * fed whole, byte by byte, in every split into two and three pieces, and in random pieces:
 * the events must always be the same. Also the caps, errors, reset and split invariance on
 * random streams. */
#include "harness.h"
#include "upstream/upstream_impl.h"

#include <stdlib.h>

/* Events rendered as "type:id:data|" with '\n' '\r' NUL and bytes >= 0x80 escaped. */
struct acc {
    char s[4096];
    size_t n;
    int stop_after; /* > 0: the callback fails on that event */
    int seen;
};

static void put(struct acc *a, const char *p, size_t n) {
    for (size_t i = 0; i < n && a->n + 6 < sizeof a->s; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') a->n += (size_t)snprintf(a->s + a->n, sizeof a->s - a->n, "\\n");
        else if (c == '\r') a->n += (size_t)snprintf(a->s + a->n, sizeof a->s - a->n, "\\r");
        else if (c == 0 || c >= 0x80) a->n += (size_t)snprintf(a->s + a->n, sizeof a->s - a->n, "\\x%02x", c);
        else a->s[a->n++] = (char)c;
    }
    a->s[a->n] = 0;
}

static enum sa_status on_ev(void *user, const struct sa_sse_event *ev) {
    struct acc *a = user;
    a->seen++;
    if (a->stop_after && a->seen == a->stop_after) return sa_error(SA_STATUS_CANCELLED, "stop from the callback");
    CHECK(ev->data[ev->data_len] == 0);
    CHECK(ev->id[ev->id_len] == 0);
    put(a, ev->type, ev->type_len);
    put(a, ":", 1);
    put(a, ev->id, ev->id_len);
    put(a, ":", 1);
    put(a, ev->data, ev->data_len);
    put(a, "|", 1);
    return SA_STATUS_OK;
}

struct sse_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    const char *want;
};

#define C(s, w) {s, sizeof(s) - 1, w}
static const struct sse_case k_cases[] = {
    C("data: hello\n\n", "message::hello|"),
    C("data:hello\n\n", "message::hello|"),
    C("data:  two spaces\n\n", "message:: two spaces|"),
    C("data: a\ndata: b\n\n", "message::a\\nb|"),
    C("data: a\r\ndata: b\r\n\r\n", "message::a\\nb|"),
    C("data: a\rdata: b\r\r", "message::a\\nb|"),
    C("data: a\r\n\ndata: b\n\r\n", "message::a|message::b|"),
    C("data: x\r\r\ndata: y\n\n", "message::x|message::y|"),
    C("data: x\n\r\n", "message::x|"),
    C(": ping\n\ndata: x\n\n", "message::x|"),
    C(":\n: keep-alive\r\ndata: x\n: mid-event comment\ndata: y\n\n", "message::x\\ny|"),
    C("event: error\ndata: e\n\n", "error::e|"),
    C("event: foo\n\ndata: x\n\n", "message::x|"),
    C("event:\ndata: x\n\n", "message::x|"),
    C("event: a\nevent: b\ndata: x\n\ndata: y\n\n", "b::x|message::y|"),
    C("id: 7\ndata: x\n\ndata: y\n\n", "message:7:x|message:7:y|"),
    C("id: 7\ndata: x\n\nid\ndata: y\n\n", "message:7:x|message::y|"),
    C("id: a\0b\ndata: x\n\n", "message::x|"),
    C("data: x\n", ""),
    C("data: x", ""),
    C("data: x\r", ""),
    C("\xEF\xBB\xBF" "data: x\n\n", "message::x|"),
    C("\xEF\xBB" "data: x\n\n", ""),
    C("\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n", ""),
    C("\xEF\n\ndata: x\n\n", "message::x|"),
    C("data\n\n", "message::|"),
    C("data:\n\ndata\n\n", "message::|message::|"),
    C("data\ndata\n\n", "message::\\n|"),
    C("foo: bar\ndata: x\n\n", "message::x|"),
    C("retry: 1000\ndata: x\n\n", "message::x|"),
    C("data: [DONE]\n\n", "message::[DONE]|"),
    C("data: {\"choices\":[{\"text\":\"Hi\"}]}\n\ndata: [DONE]\n\n",
      "message::{\"choices\":[{\"text\":\"Hi\"}]}|message::[DONE]|"),
    C("data: a:b: c\n\n", "message::a:b: c|"),
    C("\n\n\ndata: x\n\n", "message::x|"),
    C("data: x\n\n\n\n", "message::x|"),
    C("Data: x\n\n", ""),
    C("data : x\n\n", ""),
    C("data: caf\xC3\xA9 \xFF\n\n", "message::caf\\xc3\\xa9 \\xff|"),
    C("data: a\0b\n\n", "message::a\\x00b|"),
    C("\r\n", ""),
    C("", ""),
    C("data: 1\n\ndata: 2\n\ndata: 3\n\n", "message::1|message::2|message::3|"),
    C("event: ping\n\n: c\n\nevent: x\ndata: {}\nid: 9\n\n", "x:9:{}|"),
    C("data:\tx\n\n", "message::\tx|"),
    C("data: \n\n", "message::|"),
    C("data: x\n\ndata: y", "message::x|"),
};
#undef C

static bool run_pieces(const char *in, size_t len, const size_t *cuts, size_t n_cuts, struct acc *a, size_t max) {
    struct sa_sse s;
    sa_sse_init(&s, max);
    memset(a, 0, sizeof *a);
    size_t prev = 0;
    bool ok = true;
    for (size_t i = 0; i <= n_cuts && ok; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        ok = sa_sse_feed(&s, in + prev, end - prev, on_ev, a) == SA_STATUS_OK;
        prev = end;
    }
    sa_sse_free(&s);
    return ok;
}

static void check_case(const struct sse_case *c, size_t idx) {
    struct acc a;
    size_t len = c->len;
    /* whole */
    CHECK_MSG(run_pieces(c->in, len, NULL, 0, &a, 0), "case %zu: %s", idx, sa_last_error());
    CHECK_MSG(!strcmp(a.s, c->want), "case %zu whole: got \"%s\", want \"%s\"", idx, a.s, c->want);
    /* byte by byte */
    size_t cuts[4096];
    for (size_t i = 0; i < len; i++) cuts[i] = i + 1;
    CHECK(run_pieces(c->in, len, cuts, len ? len - 1 : 0, &a, 0));
    CHECK_MSG(!strcmp(a.s, c->want), "case %zu bytewise: got \"%s\"", idx, a.s);
    /* every split into two and three pieces (empty pieces included) */
    for (size_t i = 0; i <= len; i++) {
        cuts[0] = i;
        CHECK(run_pieces(c->in, len, cuts, 1, &a, 0));
        if (strcmp(a.s, c->want)) {
            CHECK_MSG(0, "case %zu split at %zu: got \"%s\"", idx, i, a.s);
            return;
        }
        for (size_t j = i; j <= len; j++) {
            cuts[1] = j;
            CHECK(run_pieces(c->in, len, cuts, 2, &a, 0));
            if (strcmp(a.s, c->want)) {
                CHECK_MSG(0, "case %zu split at %zu,%zu: got \"%s\"", idx, i, j, a.s);
                return;
            }
        }
    }
    /* random pieces */
    unsigned seed = (unsigned)idx * 2654435761u + 1;
    for (int t = 0; t < 100; t++) {
        size_t n = 0, pos = 0;
        while (pos < len && n < 4000) {
            seed = seed * 1103515245u + 12345u;
            pos += 1 + (seed >> 16) % 7;
            if (pos < len) cuts[n++] = pos;
        }
        CHECK(run_pieces(c->in, len, cuts, n, &a, 0));
        if (strcmp(a.s, c->want)) {
            CHECK_MSG(0, "case %zu random chunking %d: got \"%s\"", idx, t, a.s);
            return;
        }
    }
}

static void test_table(void) {
    for (size_t i = 0; i < SA_ARRAY_LEN(k_cases); i++) check_case(&k_cases[i], i);
}

static void test_retry_and_id(void) {
    struct sa_sse s;
    sa_sse_init(&s, 0);
    CHECK_EQ_INT(s.retry_ms, -1);
    CHECK_OK(sa_sse_feed(&s, "retry: 1500\n", 12, NULL, NULL));
    CHECK_EQ_INT(s.retry_ms, 1500);
    CHECK_OK(sa_sse_feed(&s, "retry: 10a\nretry:\nretry: -5\n", 28, NULL, NULL));
    CHECK_EQ_INT(s.retry_ms, 1500);
    CHECK_OK(sa_sse_feed(&s, "retry:99999999999999999999999\n", 30, NULL, NULL));
    CHECK_EQ_INT(s.retry_ms, 1500); /* overflow: ignored */
    CHECK_OK(sa_sse_feed(&s, "id: abc\ndata: x\n\n", 17, NULL, NULL));
    CHECK_EQ_INT(s.n_events, 1);
    CHECK_EQ_STR(s.id.data, "abc");
    sa_sse_free(&s);
}

static void test_partial(void) {
    struct sa_sse s;
    sa_sse_init(&s, 0);
    CHECK(!sa_sse_partial(&s));
    CHECK_OK(sa_sse_feed(&s, "data: x", 7, NULL, NULL));
    CHECK(sa_sse_partial(&s));
    CHECK_OK(sa_sse_feed(&s, "\n", 1, NULL, NULL));
    CHECK(sa_sse_partial(&s)); /* data without its blank line */
    CHECK_OK(sa_sse_feed(&s, "\n", 1, NULL, NULL));
    CHECK(!sa_sse_partial(&s));
    CHECK_OK(sa_sse_feed(&s, ": comment\n", 10, NULL, NULL));
    CHECK(!sa_sse_partial(&s));
    sa_sse_free(&s);
}

/* A line or an event's data over the cap fails the feed (in any split) with NETWORK. */
static void test_caps(void) {
    struct acc a;
    const char *ok16 = "data: 0123456789\n\n"; /* a 16-byte line: at the cap */
    CHECK(run_pieces(ok16, strlen(ok16), NULL, 0, &a, 16));
    CHECK_EQ_STR(a.s, "message::0123456789|");
    const char *cases[] = {
        "data: 0123456789A\n\n",              /* a 17-byte line */
        ": a comment that is long\n\n",       /* comments count too */
        "data: 0123456789\ndata: 01234\n\n",  /* 11 + 6 bytes of data */
        "data: 0123456789AB",                 /* no newline at all */
    };
    for (size_t c = 0; c < SA_ARRAY_LEN(cases); c++) {
        const char *in = cases[c];
        size_t len = strlen(in);
        for (size_t i = 0; i <= len; i++) {
            struct sa_sse s;
            sa_sse_init(&s, 16);
            memset(&a, 0, sizeof a);
            enum sa_status s1 = sa_sse_feed(&s, in, i, on_ev, &a);
            enum sa_status s2 = s1 ? s1 : sa_sse_feed(&s, in + i, len - i, on_ev, &a);
            CHECK_MSG(s2 == SA_STATUS_NETWORK, "cap case %zu split %zu: status %d", c, i, (int)s2);
            CHECK(strstr(sa_last_error(), "over 16 bytes") != NULL);
            CHECK_EQ_INT(a.seen, 0);
            CHECK(sa_sse_feed(&s, "x", 1, on_ev, &a) == SA_STATUS_BAD_ARGUMENT); /* failed: stays failed */
            sa_sse_free(&s);
        }
    }
    /* the default cap is 1 MiB */
    struct sa_sse s;
    sa_sse_init(&s, 0);
    CHECK_EQ_INT(s.max_bytes, 1 << 20);
    char *big = malloc((1 << 20) + 16);
    memset(big, 'x', (1 << 20) + 16);
    memcpy(big, "data: ", 6);
    CHECK(sa_sse_feed(&s, big, (1 << 20) + 16, NULL, NULL) == SA_STATUS_NETWORK);
    free(big);
    sa_sse_free(&s);
}

static void test_callback_stop_and_reset(void) {
    struct sa_sse s;
    sa_sse_init(&s, 0);
    struct acc a;
    memset(&a, 0, sizeof a);
    a.stop_after = 2;
    const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    CHECK(sa_sse_feed(&s, in, strlen(in), on_ev, &a) == SA_STATUS_CANCELLED);
    CHECK_EQ_INT(a.seen, 2);
    CHECK(sa_sse_feed(&s, "data: 4\n\n", 9, on_ev, &a) == SA_STATUS_BAD_ARGUMENT);
    sa_sse_reset(&s);
    memset(&a, 0, sizeof a);
    CHECK_OK(sa_sse_feed(&s, "\xEF\xBB\xBF" "data: 5\n\n", 12, on_ev, &a)); /* a new stream: BOM again */
    CHECK_EQ_STR(a.s, "message::5|");
    CHECK(sa_sse_feed(&s, NULL, 3, on_ev, &a) == SA_STATUS_BAD_ARGUMENT);
    sa_sse_reset(&s);
    CHECK_OK(sa_sse_feed(&s, NULL, 0, on_ev, &a));
    sa_sse_free(&s);
    sa_sse_free(NULL);
}

/* Random streams over an alphabet of SSE pieces: any chunking gives the events of one shot. */
static void test_random_split_invariance(void) {
    static const char *alpha[] = {"data", "event", "id", "retry", ":", " ", "\r", "\n", "\r\n", "x", "yz",
                                  "\xEF\xBB\xBF", "\xEF", "1", "[DONE]", "\0"};
    unsigned seed = 12345;
    char in[512];
    size_t cuts[512];
    for (int t = 0; t < 400; t++) {
        size_t len = 0;
        int n_tok = 1 + t % 60;
        for (int k = 0; k < n_tok; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = alpha[(seed >> 16) % SA_ARRAY_LEN(alpha)];
            size_t pl = p[0] ? strlen(p) : 1;
            if (len + pl >= sizeof in) break;
            memcpy(in + len, p, pl);
            len += pl;
        }
        struct acc whole, part;
        bool ok1 = run_pieces(in, len, NULL, 0, &whole, 0);
        for (int r = 0; r < 20; r++) {
            size_t n = 0, pos = 0;
            while (pos < len) {
                seed = seed * 1103515245u + 12345u;
                pos += 1 + (seed >> 16) % 5;
                if (pos < len) cuts[n++] = pos;
            }
            bool ok2 = run_pieces(in, len, cuts, n, &part, 0);
            CHECK(ok1 && ok2);
            if (strcmp(whole.s, part.s)) {
                CHECK_MSG(0, "random stream %d: \"%s\" vs \"%s\"", t, whole.s, part.s);
                return;
            }
        }
    }
}

int main(void) {
    RUN(test_table);
    RUN(test_retry_and_id);
    RUN(test_partial);
    RUN(test_caps);
    RUN(test_callback_stop_and_reset);
    RUN(test_random_split_invariance);
    return harness_summary();
}
