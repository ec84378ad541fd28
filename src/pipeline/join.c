/* join.c: the text rules of the pipeline: where whitespace between sentences goes (the
 * separator comes from the upstream, the revision's own outer whitespace is dropped), the
 * edit ratio between a sentence and its revision, and a fallback word count; and the line
 * break a remote upstream keeps at the end of its prompt. The rules are in
 * docs/internals/pipeline.md ("Joining", "Line breaks kept for a remote upstream"). */
#include "pipeline/pipeline_impl.h"

#include <stdlib.h>
#include <stdint.h>
#include <string.h>

bool sa_join_is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t sa_join_lead(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && sa_join_is_space((unsigned char)s[i])) i++;
    return i;
}

size_t sa_join_trim_end(const char *s, size_t n) {
    while (n > 0 && sa_join_is_space((unsigned char)s[n - 1])) n--;
    return n;
}

size_t sa_join_kept_break(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && sa_join_is_space((unsigned char)s[i]); i++)
        if (s[i] == '\n') k = i + 1;
    return k;
}

bool sa_join_blank(const char *s, size_t n) {
    return sa_join_lead(s, n) == n;
}

char *sa_join_strip(const char *s, size_t n) {
    size_t a = sa_join_lead(s, n);
    size_t b = a < n ? sa_join_trim_end(s, n) : a;
    char *out = malloc(b - a + 1);
    if (!out) return NULL;
    memcpy(out, s + a, b - a);
    out[b - a] = 0;
    return out;
}

int32_t sa_join_count_words(const char *s, size_t n) {
    int32_t w = 0;
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        bool sp = sa_join_is_space((unsigned char)s[i]);
        if (!sp && !in) w++;
        in = !sp;
    }
    return w;
}

#define EDIT_MAX_CHARS 4096

/* Decodes up to `cap` characters of s into cps (a code point per valid UTF-8 sequence, the
 * byte value + 0x110000 per invalid byte, so that invalid bytes compare unequal to any
 * character). Returns the count. */
static size_t to_chars(const char *s, size_t n, uint32_t *cps, size_t cap) {
    size_t k = 0, i = 0;
    while (i < n && k < cap) {
        unsigned char c = (unsigned char)s[i];
        int len = sa_utf8_seq_len(c);
        if (len > 0 && (size_t)len <= n - i && sa_utf8_valid_prefix(s + i, (size_t)len) == (size_t)len) {
            uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7F >> len));
            for (int j = 1; j < len; j++) cp = (cp << 6) | ((unsigned char)s[i + j] & 0x3F);
            cps[k++] = cp;
            i += (size_t)len;
        } else {
            cps[k++] = 0x110000u + c;
            i++;
        }
    }
    return k;
}

/* Levenshtein distance in characters; *longer gets the longer length. SIZE_MAX when out of
 * memory. */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb, size_t *longer) {
    uint32_t *ca = malloc(sizeof(uint32_t) * EDIT_MAX_CHARS), *cb = malloc(sizeof(uint32_t) * EDIT_MAX_CHARS);
    size_t *row = malloc(sizeof(size_t) * (EDIT_MAX_CHARS + 1));
    size_t r = SIZE_MAX;
    *longer = 0;
    if (!ca || !cb || !row) goto done;
    size_t la = to_chars(a, na, ca, EDIT_MAX_CHARS), lb = to_chars(b, nb, cb, EDIT_MAX_CHARS);
    *longer = la > lb ? la : lb;
    /* one row of the dynamic programme: row[j] = distance(a[0..i), b[0..j)) */
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (ca[i - 1] != cb[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    r = row[lb];
done:
    free(ca);
    free(cb);
    free(row);
    return r;
}

size_t sa_edit_distance(const char *a, size_t na, const char *b, size_t nb) {
    size_t longer;
    return edit_distance(a, na, b, nb, &longer);
}

double sa_join_edit_ratio(const char *a, size_t na, const char *b, size_t nb) {
    size_t longer, d = edit_distance(a, na, b, nb, &longer);
    if (d == SIZE_MAX) /* out of memory: report "all different" unless equal */
        return (na == nb && (na == 0 || !memcmp(a, b, na))) ? 0.0 : 1.0;
    return longer ? (double)d / (double)longer : 0.0;
}
