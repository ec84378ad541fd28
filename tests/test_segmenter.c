/* test_segmenter.c: the sentence/line segmenter (sa/segment.h). The case table
 * tests/data/segmenter_cases.jsonl gives, per case, the expected units (the input is their
 * concatenation); each case is checked one shot and streamed in 1-byte and random chunks.
 * Then the API contract (lookahead, several boundaries per push, errors, reset) and a
 * property test over random mixtures of the tricky tokens and over random bytes. */
#include "harness.h"
#include "sa/segment.h"
#include "sa/status.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>

#define CASES_PATH "tests/data/segmenter_cases.jsonl"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static size_t rnd_below(size_t n) {
    return (size_t)(rnd() % n);
}

/* ---- helpers ---- */

/* Boundaries (unit ends) from the one-shot API. Returns the count (or SIZE_MAX on error). */
static size_t one_shot(const char *t, size_t len, const struct sa_segment_params *p, size_t *ends, size_t cap) {
    struct sa_segment_span *sp;
    size_t n;
    if (sa_segment_text(t, len, p, &sp, &n) != SA_STATUS_OK) return SIZE_MAX;
    size_t prev = 0;
    for (size_t k = 0; k < n; k++) {
        if (sp[k].start != prev || sp[k].end <= sp[k].start) {
            free(sp);
            return SIZE_MAX - 1; /* not contiguous or empty */
        }
        prev = sp[k].end;
        if (k < cap) ends[k] = sp[k].end;
    }
    free(sp);
    if (n && prev != len) return SIZE_MAX - 1;
    return n;
}

/* Boundaries from streaming: chunk sizes from chunk(), 0 meaning random 1..max_chunk. Checks
 * that every boundary is within the bytes pushed so far and increases. */
static size_t streamed(const char *t, size_t len, const struct sa_segment_params *p, size_t fixed_chunk,
                       size_t max_chunk, size_t *ends, size_t cap) {
    struct sa_segmenter *g;
    if (sa_segmenter_init(p, &g) != SA_STATUS_OK) return SIZE_MAX;
    size_t n = 0, off = 0, b, last = 0;
    bool bad = false;
    while (off < len) {
        size_t k = fixed_chunk ? fixed_chunk : 1 + rnd_below(max_chunk);
        if (k > len - off) k = len - off;
        if (sa_segmenter_push(g, t + off, k, &b) != SA_STATUS_OK) bad = true;
        off += k;
        while (b != SA_SEGMENT_NONE) {
            if (b <= last || b > off) bad = true;
            last = b;
            if (n < cap) ends[n] = b;
            n++;
            if (sa_segmenter_push(g, NULL, 0, &b) != SA_STATUS_OK) bad = true;
        }
    }
    if (sa_segmenter_finish(g, &b) != SA_STATUS_OK) bad = true;
    while (b != SA_SEGMENT_NONE) {
        if (b <= last || b > len) bad = true;
        last = b;
        if (n < cap) ends[n] = b;
        n++;
        if (sa_segmenter_finish(g, &b) != SA_STATUS_OK) bad = true;
    }
    if (n && last != len) bad = true;
    size_t tl;
    const char *tt = sa_segmenter_text(g, &tl);
    if (tl != len || (len && memcmp(tt, t, len))) bad = true;
    sa_segmenter_free(g);
    return bad ? SIZE_MAX - 1 : n;
}

/* Prints s[0..n) with C escapes into out (cap bytes). */
static const char *esc(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (c == '\r') o += (size_t)snprintf(out + o, cap - o, "\\r");
        else if (c == '\t') o += (size_t)snprintf(out + o, cap - o, "\\t");
        else if (c == '"') o += (size_t)snprintf(out + o, cap - o, "\\\"");
        else if (c == '\\') o += (size_t)snprintf(out + o, cap - o, "\\\\");
        else if (c < 0x20) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    out[o] = 0;
    return out;
}

static void print_units(const char *label, const char *t, const size_t *ends, size_t n) {
    char buf[1024];
    printf("      %s:", label);
    size_t prev = 0;
    for (size_t k = 0; k < n; k++) {
        printf(" \"%s\"", esc(t + prev, ends[k] - prev, buf, sizeof buf));
        prev = ends[k];
    }
    printf("\n");
}

static bool same(const size_t *a, size_t na, const size_t *b, size_t nb) {
    return na == nb && (na == 0 || !memcmp(a, b, na * sizeof *a));
}

/* ---- the case table ---- */

#define MAX_UNITS 64

static int n_cases_run;

static void check_case(const cJSON *c, int line) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
    const cJSON *seg = cJSON_GetObjectItemCaseSensitive(c, "seg");
    const cJSON *unit = cJSON_GetObjectItemCaseSensitive(c, "unit");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(c, "max");
    if (!cJSON_IsString(id) || !cJSON_IsArray(seg)) {
        CHECK_MSG(0, "%s:%d: a case needs \"id\" and \"seg\"", CASES_PATH, line);
        return;
    }
    struct sa_segment_params p = sa_segment_default_params();
    if (cJSON_IsString(unit)) p.unit = !strcmp(unit->valuestring, "line") ? SA_SEGMENT_LINE : (enum sa_segment_unit)99;
    if (cJSON_IsNumber(max)) p.max_bytes = (size_t)max->valuedouble;

    /* the input is the concatenation of the expected units (JSON strings: no NUL inside) */
    size_t want[MAX_UNITS], nw = 0, len = 0;
    char text[4096];
    const cJSON *s;
    cJSON_ArrayForEach(s, seg) {
        size_t k = strlen(s->valuestring);
        if (!k || nw == MAX_UNITS || len + k >= sizeof text) {
            CHECK_MSG(0, "case %s: empty unit, or too many/long units", id->valuestring);
            return;
        }
        memcpy(text + len, s->valuestring, k);
        len += k;
        want[nw++] = len;
    }
    text[len] = 0;
    n_cases_run++;

    size_t got[MAX_UNITS];
    size_t ng = one_shot(text, len, &p, got, MAX_UNITS);
    if (!same(want, nw, got, ng)) {
        char buf[4096];
        CHECK_MSG(0, "case %s (line %d): one-shot differs for \"%s\"", id->valuestring, line,
                  esc(text, len, buf, sizeof buf));
        print_units("want", text, want, nw);
        if (ng <= MAX_UNITS) print_units("got ", text, got, ng);
        return;
    }
    /* streamed: 1-byte chunks (splits every UTF-8 character), then random chunkings */
    for (int run = 0; run < 5; run++) {
        size_t fixed = run == 0 ? 1 : run == 1 ? 2 : 0;
        size_t ns = streamed(text, len, &p, fixed, run == 4 ? 16 : 5, got, MAX_UNITS);
        if (!same(want, nw, got, ns)) {
            CHECK_MSG(0, "case %s: streamed (run %d) differs from one-shot", id->valuestring, run);
            if (ns <= MAX_UNITS) print_units("got ", text, got, ns);
            return;
        }
    }
}

static void test_case_table(void) {
    char *data = NULL;
    FILE *f = fopen(CASES_PATH, "rb");
    CHECK_MSG(f, "cannot open %s (run from the repository root)", CASES_PATH);
    if (!f) return;
    size_t cap = 1 << 16, n = 0;
    data = malloc(cap);
    for (size_t r; (r = fread(data + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (n + 1 == cap) data = realloc(data, cap *= 2);
    }
    fclose(f);
    data[n] = 0;
    int line = 0;
    for (char *l = data, *nl; l && *l; l = nl) {
        nl = strchr(l, '\n');
        if (nl) *nl++ = 0;
        line++;
        if (!*l) continue;
        cJSON *c = cJSON_Parse(l);
        CHECK_MSG(c, "%s:%d: bad JSON", CASES_PATH, line);
        if (c) check_case(c, line);
        cJSON_Delete(c);
    }
    free(data);
    printf("    %d cases\n", n_cases_run);
    CHECK(n_cases_run >= 200);
}

/* ---- API contract ---- */

static size_t push_str(struct sa_segmenter *g, const char *s) {
    size_t b = 0;
    CHECK_OK(sa_segmenter_push(g, s, strlen(s), &b));
    return b;
}

static void test_lookahead(void) {
    struct sa_segmenter *g;
    CHECK_OK(sa_segmenter_init(NULL, &g));
    /* ". " is decided by the next letter */
    CHECK(push_str(g, "Hello.") == SA_SEGMENT_NONE);
    CHECK(push_str(g, " ") == SA_SEGMENT_NONE);
    CHECK_EQ_INT(push_str(g, "W"), 7);
    CHECK(push_str(g, "orld.") == SA_SEGMENT_NONE);
    size_t b;
    CHECK_OK(sa_segmenter_finish(g, &b));
    CHECK_EQ_INT(b, 13);
    CHECK_OK(sa_segmenter_finish(g, &b));
    CHECK(b == SA_SEGMENT_NONE);
    /* no text after finish; n = 0 is fine */
    CHECK(sa_segmenter_push(g, "x", 1, &b) == SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "after finish") != NULL);
    CHECK_OK(sa_segmenter_push(g, NULL, 0, &b));
    CHECK(b == SA_SEGMENT_NONE);

    /* CJK: no space needed, but the next character must be complete */
    sa_segmenter_reset(g);
    CHECK(push_str(g, "你好。") == SA_SEGMENT_NONE);
    CHECK(push_str(g, "\xe4") == SA_SEGMENT_NONE);
    CHECK_EQ_INT(push_str(g, "\xb8\x96"), 9);

    /* a newline is decided by the next line's first character */
    sa_segmenter_reset(g);
    CHECK(push_str(g, "Line one\n") == SA_SEGMENT_NONE);
    CHECK(push_str(g, "L") == SA_SEGMENT_NONE); /* "L. " would be a list item */
    CHECK_EQ_INT(push_str(g, "i"), 9);

    /* a "$" that may open inline math waits for its closer or the end of the line */
    sa_segmenter_reset(g);
    CHECK(push_str(g, "Costs $x. Then") == SA_SEGMENT_NONE);
    CHECK_EQ_INT(push_str(g, " more\n"), 10);

    /* an amount does not wait */
    sa_segmenter_reset(g);
    CHECK_EQ_INT(push_str(g, "Costs $5. Then"), 10);

    /* several boundaries in one push come one call at a time */
    sa_segmenter_reset(g);
    CHECK_EQ_INT(push_str(g, "A cat. A dog. A bird. A"), 7);
    CHECK_OK(sa_segmenter_push(g, NULL, 0, &b));
    CHECK_EQ_INT(b, 14);
    CHECK_OK(sa_segmenter_push(g, NULL, 0, &b));
    CHECK_EQ_INT(b, 22);
    CHECK_OK(sa_segmenter_push(g, NULL, 0, &b));
    CHECK(b == SA_SEGMENT_NONE);
    CHECK_OK(sa_segmenter_finish(g, &b));
    CHECK_EQ_INT(b, 23);

    /* the accumulated text */
    size_t len;
    const char *t = sa_segmenter_text(g, &len);
    CHECK_EQ_INT(len, 23);
    CHECK(!memcmp(t, "A cat. A dog. A bird. A", 23));

    /* after reset: empty, and finish gives nothing */
    sa_segmenter_reset(g);
    CHECK_OK(sa_segmenter_finish(g, &b));
    CHECK(b == SA_SEGMENT_NONE);
    sa_segmenter_free(g);
}

static void test_errors(void) {
    struct sa_segmenter *g = (struct sa_segmenter *)1;
    struct sa_segment_params p = sa_segment_default_params();
    CHECK_EQ_INT(p.unit, SA_SEGMENT_SENTENCE);
    CHECK_EQ_INT(p.max_bytes, 1024);
    p.unit = (enum sa_segment_unit)7;
    CHECK(sa_segmenter_init(&p, &g) == SA_STATUS_BAD_ARGUMENT);
    CHECK(g == NULL);
    CHECK(strstr(sa_last_error(), "unit") != NULL);
    CHECK(sa_segmenter_init(NULL, NULL) == SA_STATUS_BAD_ARGUMENT);
    size_t b = 0;
    CHECK(sa_segmenter_push(NULL, "a", 1, &b) == SA_STATUS_BAD_ARGUMENT);
    CHECK(b == SA_SEGMENT_NONE);
    CHECK(sa_segmenter_finish(NULL, &b) == SA_STATUS_BAD_ARGUMENT);
    CHECK_OK(sa_segmenter_init(NULL, &g));
    CHECK(sa_segmenter_push(g, NULL, 3, &b) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_segmenter_push(g, "a", 1, NULL) == SA_STATUS_BAD_ARGUMENT);
    sa_segmenter_free(g);
    sa_segmenter_free(NULL);
    sa_segmenter_reset(NULL);

    struct sa_segment_span *sp = (struct sa_segment_span *)1;
    size_t n = 5;
    CHECK_OK(sa_segment_text(NULL, 0, NULL, &sp, &n));
    CHECK(sp == NULL);
    CHECK_EQ_INT(n, 0);
    CHECK(sa_segment_text(NULL, 4, NULL, &sp, &n) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_segment_text("abc", 3, &p, &sp, &n) == SA_STATUS_BAD_ARGUMENT);

    /* text with NUL bytes is just bytes */
    CHECK_OK(sa_segment_text("Hi.\0 Yo. Ok", 11, NULL, &sp, &n));
    CHECK_EQ_INT(n, 2);
    if (n == 2) CHECK_EQ_INT(sp[0].end, 9);
    free(sp);
}

/* The same stream through one segmenter twice, with reset in between. */
static void test_reset_reuse(void) {
    const char *t = "Dr. Smith came. He sat down.\n\n```\ncode. X\n```\nDone! Bye.";
    size_t want[16], got[16];
    size_t nw = one_shot(t, strlen(t), NULL, want, 16);
    CHECK_EQ_INT(nw, 5);
    struct sa_segmenter *g;
    CHECK_OK(sa_segmenter_init(NULL, &g));
    for (int round = 0; round < 2; round++) {
        size_t n = 0, b;
        for (size_t i = 0; t[i]; i++) {
            CHECK_OK(sa_segmenter_push(g, t + i, 1, &b));
            while (b != SA_SEGMENT_NONE) {
                if (n < 16) got[n++] = b;
                CHECK_OK(sa_segmenter_push(g, NULL, 0, &b));
            }
        }
        CHECK_OK(sa_segmenter_finish(g, &b));
        while (b != SA_SEGMENT_NONE) {
            if (n < 16) got[n++] = b;
            CHECK_OK(sa_segmenter_finish(g, &b));
        }
        CHECK(same(want, nw, got, n));
        sa_segmenter_reset(g);
    }
    sa_segmenter_free(g);
}

/* ---- properties over random texts ---- */

static const char *const tokens[] = {
    "Hello", "world", "the", "The", "Dr.", "Mr.", "e.g.", "etc.", "U.S.", "No.", "Fig.", "p.m.",
    "3.14", "$1,000.50", "5", "12", "A", "B.", "J.", "x", "$", "$$", "\\(", "\\)", "\\[", "\\]",
    "\\", "`", "``", "```", "~~~", ".", ". ", "!", "?", "...", "\xe2\x80\xa6", "\xe3\x80\x82",
    "\xef\xbc\x81", "\xef\xbc\x9f", "\"", "\xe2\x80\x9d", "\xe2\x80\x9c", "'", "(", ")", "*", "**",
    "_", " ", " ", " ", "  ", "\n", "\n", "\n\n", "\r\n", "\t", "1. ", "a) ", "- ", "* ", "# ",
    "####", "| ", "> ", "---", "http://x.y/z.html", "a.b@c.de", "v1.2.3", "main.c", "\xe4\xb8\xad\xe6\x96\x87",
    "\xc3\xa9", "\xc3\x9c", "\xf0\x9f\x98\x80", "<<3*4=12>>", "=", "+", ",", ":", "i.", "(a) ",
    "\xff", "\xe4\xb8", "\x80", "\xc3",
};

/* Positions strictly inside a valid UTF-8 character get 1 in inside[]. */
static void mark_inside(const unsigned char *s, size_t n, char *inside) {
    memset(inside, 0, n + 1);
    for (size_t i = 0; i < n;) {
        size_t l = 1;
        unsigned char c = s[i];
        if (c >= 0xC2 && c <= 0xDF) l = 2;
        else if (c >= 0xE0 && c <= 0xEF) l = 3;
        else if (c >= 0xF0 && c <= 0xF4) l = 4;
        bool ok = l > 1 && i + l <= n;
        for (size_t k = 1; ok && k < l; k++) ok = (s[i + k] & 0xC0) == 0x80;
        if (ok && l == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F))) ok = false;
        if (ok && l == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))) ok = false;
        if (!ok) l = 1;
        for (size_t k = 1; k < l; k++) inside[i + k] = 1;
        i += l;
    }
}

static void check_random(const char *t, size_t len, const struct sa_segment_params *p, const char *what) {
    enum { CAP = 4096 };
    static size_t a[CAP], b[CAP];
    static char inside[8192];
    char buf[2048];
    size_t na = one_shot(t, len, p, a, CAP);
    if (na >= CAP) {
        CHECK_MSG(0, "%s: one-shot failed or not contiguous (%zu) on \"%s\"", what, na, esc(t, len, buf, sizeof buf));
        return;
    }
    for (int run = 0; run < 2; run++) {
        size_t nb = streamed(t, len, p, run == 0 ? 1 : 0, 1 + rnd_below(12), b, CAP);
        if (!same(a, na, b, nb)) {
            CHECK_MSG(0, "%s: streamed (run %d) != one-shot (unit %d, max %zu) on \"%s\"", what, run, (int)p->unit,
                      p->max_bytes, esc(t, len, buf, sizeof buf));
            print_units("one-shot", t, a, na);
            if (nb < CAP) print_units("streamed", t, b, nb);
            return;
        }
    }
    mark_inside((const unsigned char *)t, len, inside);
    bool all_ws = true;
    for (size_t i = 0; i < len; i++) all_ws &= strchr(" \t\n\r\f\v", t[i]) && t[i];
    size_t prev = 0;
    for (size_t k = 0; k < na; k++) {
        CHECK_MSG(!inside[a[k]], "%s: boundary %zu inside a UTF-8 character of \"%s\"", what, a[k],
                  esc(t, len, buf, sizeof buf));
        if (p->max_bytes) {
            CHECK_MSG(a[k] - prev <= 2 * p->max_bytes + 512 + 4, "%s: unit of %zu bytes with max_bytes %zu", what,
                      a[k] - prev, p->max_bytes);
        } else if (!all_ws) {
            bool content = false;
            for (size_t i = prev; i < a[k]; i++) content |= !(strchr(" \t\n\r\f\v", t[i]) && t[i]);
            CHECK_MSG(content, "%s: whitespace-only unit [%zu, %zu) in \"%s\"", what, prev, a[k],
                      esc(t, len, buf, sizeof buf));
        }
        prev = a[k];
    }
}

static void test_random_tokens(void) {
    static char t[8192];
    const size_t maxes[] = {0, 0, 8, 24, 64, 1024};
    int fails_before = harness_check_failed;
    for (int it = 0; it < 3000 && harness_check_failed - fails_before < 5; it++) {
        size_t len = 0, nt = rnd_below(it < 2500 ? 40 : 400);
        for (size_t k = 0; k < nt; k++) {
            const char *s = tokens[rnd_below(sizeof tokens / sizeof tokens[0])];
            size_t l = strlen(s);
            if (len + l >= sizeof t) break;
            memcpy(t + len, s, l);
            len += l;
        }
        struct sa_segment_params p = sa_segment_default_params();
        p.unit = rnd_below(4) == 0 ? SA_SEGMENT_LINE : SA_SEGMENT_SENTENCE;
        p.max_bytes = maxes[rnd_below(sizeof maxes / sizeof maxes[0])];
        check_random(t, len, &p, "random tokens");
    }
}

static void test_random_bytes(void) {
    static char t[2048];
    const char alphabet[] = " .!?\n\r\t$\\`~#|>-*_()\"'aAzZ019,:;";
    int fails_before = harness_check_failed;
    for (int it = 0; it < 1500 && harness_check_failed - fails_before < 5; it++) {
        size_t len = rnd_below(sizeof t);
        for (size_t i = 0; i < len; i++)
            t[i] = rnd_below(3) ? alphabet[rnd_below(sizeof alphabet - 1)] : (char)rnd_below(256);
        struct sa_segment_params p = sa_segment_default_params();
        p.unit = rnd_below(2) ? SA_SEGMENT_LINE : SA_SEGMENT_SENTENCE;
        p.max_bytes = rnd_below(3) ? rnd_below(100) : 0;
        check_random(t, len, &p, "random bytes");
    }
}

/* A run-on without any whitespace never blocks: it is cut at 2 * max_bytes. */
static void test_run_on(void) {
    static char t[20000];
    for (size_t i = 0; i < sizeof t; i++) t[i] = "ab\xc3\xa9-"[i % 5] ; /* letters and é, no spaces */
    struct sa_segment_params p = sa_segment_default_params();
    p.max_bytes = 100;
    struct sa_segmenter *g;
    CHECK_OK(sa_segmenter_init(&p, &g));
    size_t b, n = 0, last = 0;
    for (size_t off = 0; off < sizeof t; off += 7) {
        size_t k = sizeof t - off < 7 ? sizeof t - off : 7;
        CHECK_OK(sa_segmenter_push(g, t + off, k, &b));
        while (b != SA_SEGMENT_NONE) {
            CHECK(b - last >= 200 && b - last <= 203);
            CHECK(((unsigned char)t[b] & 0xC0) != 0x80);
            CHECK(off + k - b <= 512 + 8); /* decided without waiting for the end */
            last = b;
            n++;
            CHECK_OK(sa_segmenter_push(g, NULL, 0, &b));
        }
    }
    CHECK(n >= 90);
    sa_segmenter_free(g);
}

int main(void) {
    RUN(test_case_table);
    RUN(test_lookahead);
    RUN(test_errors);
    RUN(test_reset_reuse);
    RUN(test_run_on);
    RUN(test_random_tokens);
    RUN(test_random_bytes);
    return harness_summary();
}
