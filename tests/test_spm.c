/* test_spm.c: the SentencePiece-style BPE of spm.c against hand-made vocabularies. This
 * binary links spm.o with test doubles of the tokenizer core's sa_tok_* functions (a tiny
 * vocabulary defined here; see the test_spm rule in the Makefile), not the whole library.
 * The parity check against llama.cpp on Gemma 3 is tests/py/test_spm_ref.py. */
#include "core/core_impl.h"
#include "harness.h"
#include "tokenizer/tokenizer_impl.h"

#include <stdlib.h>

/* ---- test doubles: struct sa_tokenizer filled by hand (only the fields the sa_tok_*
 * accessors read), at most MAX_VOCAB pieces, hash lookup ---- */
#define MAX_VOCAB 600

#define HASH_SLOTS 2048 /* power of two, > 2 * MAX_VOCAB */

struct vocab {
    struct sa_tokenizer t; /* first: a struct vocab * is a struct sa_tokenizer * */
    const char *text[MAX_VOCAB];
    uint32_t len[MAX_VOCAB];
    float score[MAX_VOCAB];
    int32_t slot[HASH_SLOTS]; /* open addressing: ids, -1 empty */
};

static uint32_t hash_bytes(const char *s, size_t n) { /* FNV-1a */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* Appends a piece (the caller makes sure it is new). */
static int32_t vocab_push(struct sa_tokenizer *t, const char *piece, size_t len, float score) {
    struct vocab *v = (struct vocab *)t;
    SA_ASSERT(t->n_vocab < MAX_VOCAB);
    int32_t id = t->n_vocab++;
    v->text[id] = piece;
    v->len[id] = (uint32_t)len;
    v->score[id] = score;
    uint32_t i = hash_bytes(piece, len) & (HASH_SLOTS - 1);
    while (v->slot[i] >= 0) i = (i + 1) & (HASH_SLOTS - 1);
    v->slot[i] = id;
    return id;
}

static struct sa_tokenizer *vocab_new(bool with_bytes, bool with_unk) {
    struct vocab *v = calloc(1, sizeof *v);
    SA_ASSERT(v);
    struct sa_tokenizer *t = &v->t;
    t->kind = SA_TOKENIZER_SPM;
    t->text = v->text;
    t->text_len = v->len;
    t->scores = v->score;
    for (int i = 0; i < HASH_SLOTS; i++) v->slot[i] = -1;
    t->unk = with_unk ? vocab_push(t, "<unk>", 5, 0) : -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    if (with_bytes) {
        static char names[256][7];
        for (int b = 0; b < 256; b++) {
            snprintf(names[b], sizeof names[b], "<0x%02X>", b);
            t->byte_id[b] = vocab_push(t, names[b], 6, 0);
        }
    }
    return t;
}

static int32_t vocab_add(struct sa_tokenizer *t, const char *piece, float score) {
    return vocab_push(t, piece, strlen(piece), score);
}

int32_t sa_tok_lookup(const struct sa_tokenizer *t, const char *s, size_t len) {
    const struct vocab *v = (const struct vocab *)t;
    for (uint32_t i = hash_bytes(s, len) & (HASH_SLOTS - 1);; i = (i + 1) & (HASH_SLOTS - 1)) {
        int32_t id = v->slot[i];
        if (id < 0) return -1;
        if (v->len[id] == len && !memcmp(v->text[id], s, len)) return id;
    }
}
float sa_tok_score(const struct sa_tokenizer *t, int32_t id) { return t->scores[id]; }
int32_t sa_tok_byte_id(const struct sa_tokenizer *t, uint8_t b) { return t->byte_id[b]; }
int32_t sa_tok_unk(const struct sa_tokenizer *t) { return t->unk; }

enum sa_status sa_ivec_push(struct sa_ivec *v, int32_t x) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 16;
        int32_t *d = realloc(v->data, cap * sizeof *d);
        if (!d) return sa_error(SA_STATUS_NO_MEMORY, "ivec");
        v->data = d;
        v->cap = cap;
    }
    v->data[v->len++] = x;
    return SA_STATUS_OK;
}
void sa_ivec_free(struct sa_ivec *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}

/* ---- helpers ---- */

/* Encodes `text` and renders the pieces as "a|bc|<0xE2>" for readable comparisons. */
static const char *enc_str(const struct sa_tokenizer *t, const char *text, size_t len) {
    static char buf[4096];
    struct sa_ivec v = {0};
    buf[0] = 0;
    if (sa_spm_encode_fragment(t, text, len, &v) != SA_STATUS_OK) {
        snprintf(buf, sizeof buf, "ERROR: %s", sa_last_error());
    } else {
        size_t o = 0;
        for (size_t i = 0; i < v.len; i++)
            o += snprintf(buf + o, sizeof buf - o, "%s%s", i ? "|" : "", t->text[v.data[i]]);
    }
    sa_ivec_free(&v);
    return buf;
}
#define ENC(t, s) enc_str((t), (s), strlen(s))

/* The definition of the algorithm, quadratic: repeatedly merge the adjacent pair whose
 * concatenation is in the vocabulary with the highest score (ties: leftmost). Writes the
 * final pieces' [start, end) byte offsets to cut[] (n + 1 entries); returns n. */
static int naive_segment(const struct sa_tokenizer *t, const char *s, size_t len, size_t *cut) {
    int n = 0;
    static const int nib[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    for (size_t o = 0; o < len;) {
        cut[n++] = o;
        size_t k = (size_t)nib[(uint8_t)s[o] >> 4];
        o += k < len - o ? k : len - o;
    }
    cut[n] = len;
    for (;;) {
        int best = -1;
        float best_score = 0;
        for (int i = 0; i + 1 < n; i++) {
            int32_t id = sa_tok_lookup(t, s + cut[i], cut[i + 2] - cut[i]);
            if (id >= 0 && (best < 0 || t->scores[id] > best_score)) best = i, best_score = t->scores[id];
        }
        if (best < 0) return n;
        memmove(cut + best + 1, cut + best + 2, (size_t)(n - best - 1) * sizeof *cut);
        n--;
    }
}

/* ---- tests ---- */

static void test_merge_by_score(void) {
    struct sa_tokenizer *t = vocab_new(true, true);
    vocab_add(t, "a", 0), vocab_add(t, "b", 0), vocab_add(t, "c", 0);
    vocab_add(t, "ab", 1), vocab_add(t, "bc", 2);
    CHECK_EQ_STR(ENC(t, "abc"), "a|bc");
    t->scores[sa_tok_lookup(t, "ab", 2)] = 3;
    CHECK_EQ_STR(ENC(t, "abc"), "ab|c");
    /* merges chain: pieces grow through vocabulary entries only */
    vocab_add(t, "abc", -5);
    CHECK_EQ_STR(ENC(t, "abc"), "abc");
    CHECK_EQ_STR(ENC(t, "abcabc"), "abc|abc");
    CHECK_EQ_STR(ENC(t, "cab"), "c|ab");
    free(t);
}

static void test_ties_leftmost(void) {
    struct sa_tokenizer *t = vocab_new(true, true);
    vocab_add(t, "a", 0), vocab_add(t, "aa", 1);
    CHECK_EQ_STR(ENC(t, "aaa"), "aa|a");
    CHECK_EQ_STR(ENC(t, "aaaaa"), "aa|aa|a");
    vocab_add(t, "b", 0), vocab_add(t, "ab", 1), vocab_add(t, "ba", 1);
    CHECK_EQ_STR(ENC(t, "aba"), "ab|a");
    CHECK_EQ_STR(ENC(t, "bab"), "ba|b");
    free(t);
}

static void test_space_marker_words(void) {
    struct sa_tokenizer *t = vocab_new(true, true);
    const char *p[] = {"\xe2\x96\x81", "t", "h", "e", "\xe2\x96\x81t", "he", "\xe2\x96\x81the", "c", "a", "at"};
    float sc[] = {-1, -2, -2, -2, -3, -4, -5, -2, -2, -6};
    for (size_t i = 0; i < SA_ARRAY_LEN(p); i++) vocab_add(t, p[i], sc[i]);
    struct sa_buf b;
    sa_buf_init(&b, 0);
    CHECK_OK(sa_spm_normalize("the cat", 7, true, &b));
    CHECK_EQ_STR(enc_str(t, b.data, b.len), "\xe2\x96\x81the|\xe2\x96\x81|c|at");
    sa_buf_free(&b);
    free(t);
}

static void test_byte_fallback(void) {
    struct sa_tokenizer *t = vocab_new(true, true);
    vocab_add(t, "a", 0), vocab_add(t, "b", 0);
    CHECK_EQ_STR(ENC(t, "a\xc3\xa9"
                        "b"),
                 "a|<0xC3>|<0xA9>|b");
    /* emoji not in the vocabulary: its four bytes */
    CHECK_EQ_STR(ENC(t, "\xf0\x9f\x98\x80"), "<0xF0>|<0x9F>|<0x98>|<0x80>");
    /* the byte tokens' own text typed in the input is ordinary text (no "<0" piece here) */
    CHECK_EQ_STR(ENC(t, "<0x41>"), "<0x3C>|<0x30>|<0x78>|<0x34>|<0x31>|<0x3E>");
    free(t);
}

static void test_unknown(void) {
    /* no byte tokens: an unknown character becomes one <unk> */
    struct sa_tokenizer *t = vocab_new(false, true);
    vocab_add(t, "a", 0);
    CHECK_EQ_STR(ENC(t, "a\xc3\xa9"
                        "a"),
                 "a|<unk>|a");
    CHECK_EQ_STR(ENC(t, "\xe6\x97\xa5\xe6\x9c\xac"), "<unk>|<unk>");
    /* llama.cpp byte_to_token falls back to the byte as a one-byte piece */
    vocab_add(t, "\xc3", 0), vocab_add(t, "\xa9", 0);
    CHECK_EQ_STR(ENC(t, "\xc3\xa9"), "\xc3|\xa9");
    free(t);
    /* nothing to fall back on: an error, not a crash */
    t = vocab_new(false, false);
    vocab_add(t, "a", 0);
    CHECK_EQ_STR(ENC(t, "a"), "a");
    struct sa_ivec v = {0};
    CHECK(sa_spm_encode_fragment(t, "ab", 2, &v) == SA_STATUS_UNSUPPORTED);
    CHECK(strstr(sa_last_error(), "0x62") != NULL);
    sa_ivec_free(&v);
    free(t);
}

static void test_empty(void) {
    struct sa_tokenizer *t = vocab_new(true, true);
    struct sa_ivec v = {0};
    CHECK_OK(sa_spm_encode_fragment(t, NULL, 0, &v));
    CHECK_OK(sa_spm_encode_fragment(t, "", 0, &v));
    CHECK_EQ_INT(v.len, 0);
    struct sa_buf b;
    sa_buf_init(&b, 0);
    CHECK_OK(sa_spm_normalize("", 0, false, &b));
    CHECK_EQ_INT(b.len, 0);
    CHECK_OK(sa_spm_normalize("", 0, true, &b));
    CHECK_EQ_STR(b.data, "\xe2\x96\x81");
    sa_buf_free(&b);
    free(t);
}

/* Invalid UTF-8 is split like llama.cpp (unicode_len_utf8): by the lead byte's high nibble,
 * without checking continuation bytes; unknown characters go out byte by byte. */
static void test_invalid_utf8(void) {
    struct sa_tokenizer *t = vocab_new(true, true);
    vocab_add(t, "a", 0), vocab_add(t, "b", 0), vocab_add(t, "ab", 5);
    /* E2 swallows "ab" into one 3-byte character: "ab" is NOT merged */
    CHECK_EQ_STR(ENC(t, "\xe2"
                        "ab"),
                 "<0xE2>|<0x61>|<0x62>");
    CHECK_EQ_STR(ENC(t, "\xe2"
                        "abab"),
                 "<0xE2>|<0x61>|<0x62>|ab");
    CHECK_EQ_STR(ENC(t, "\x80"
                        "ab"),
                 "<0x80>|ab"); /* a lone continuation byte is a character */
    CHECK_EQ_STR(ENC(t, "ab\xf0"), "ab|<0xF0>"); /* truncated at the end */
    CHECK_EQ_STR(ENC(t, "ab\xf0"
                        "a"),
                 "ab|<0xF0>|<0x61>");
    CHECK_EQ_STR(ENC(t, "\xff\xfe"), "<0xFF>|<0xFE>");
    /* a "character" made of a lead byte and ASCII can still be a vocabulary piece */
    vocab_add(t, "\xc3"
                 "a",
              0);
    CHECK_EQ_STR(ENC(t, "\xc3"
                        "ab"),
                 "\xc3"
                 "a|b");
    free(t);
}

static void test_cjk_emoji(void) {
    struct sa_tokenizer *t = vocab_new(true, true);
    const char *p[] = {"\xe6\x97\xa5", "\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac", "\xe8\xaa\x9e",
                       "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80"};
    float sc[] = {-1, -1, -2, -1, -1, -3};
    for (size_t i = 0; i < SA_ARRAY_LEN(p); i++) vocab_add(t, p[i], sc[i]);
    CHECK_EQ_STR(ENC(t, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"), "\xe6\x97\xa5\xe6\x9c\xac|\xe8\xaa\x9e");
    CHECK_EQ_STR(ENC(t, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80"),
                 "\xf0\x9f\x98\x80\xf0\x9f\x98\x80|\xf0\x9f\x98\x80");
    /* a CJK character outside the vocabulary: its 3 bytes */
    CHECK_EQ_STR(ENC(t, "\xe6\x97\xa5\xe4\xb8\xad"), "\xe6\x97\xa5|<0xE4>|<0xB8>|<0xAD>");
    free(t);
}

static void test_normalize(void) {
    struct sa_buf b;
    sa_buf_init(&b, 0);
    CHECK_OK(sa_spm_normalize(" a  b ", 6, false, &b));
    CHECK_EQ_STR(b.data, "\xe2\x96\x81"
                         "a\xe2\x96\x81\xe2\x96\x81"
                         "b\xe2\x96\x81");
    CHECK_OK(sa_spm_normalize("hi", 2, true, &b)); /* replaces the previous contents */
    CHECK_EQ_STR(b.data, "\xe2\x96\x81"
                         "hi");
    CHECK_OK(sa_spm_normalize("x\ny\t\xff", 5, false, &b)); /* only ' ' changes */
    CHECK_EQ_INT(b.len, 5);
    CHECK(!memcmp(b.data, "x\ny\t\xff", 5));
    sa_buf_free(&b);
}

/* Differential test against naive_segment on random texts and random vocabularies. */
static void test_random_vs_naive(void) {
    static const char *alpha[] = {"a", "b", "c", "\xe2\x96\x81", "\xc3\xa9", "\xe2", "\x80"};
    static char pieces[400][16];
    uint64_t rng = 0x9e3779b97f4a7c15ull;
#define RND() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    int n_bad = 0;
    for (int round = 0; round < 20; round++) {
        struct sa_tokenizer *t = vocab_new(true, true);
        for (int i = 0; i < 5; i++) vocab_add(t, alpha[i], 0);
        for (int i = 0; i < 200; i++) { /* random pieces of 2..4 symbols, few distinct scores: ties */
            char *p = pieces[round % 2 * 200 + i];
            p[0] = 0;
            int k = 2 + (int)(RND() % 3);
            for (int j = 0; j < k; j++) strcat(p, alpha[RND() % 5]);
            if (sa_tok_lookup(t, p, strlen(p)) < 0) vocab_add(t, p, (float)(RND() % 4));
        }
        for (int iter = 0; iter < 50; iter++) {
            char s[200] = "";
            int k = (int)(RND() % 30);
            for (int j = 0; j < k; j++) strcat(s, alpha[RND() % SA_ARRAY_LEN(alpha)]);
            size_t len = strlen(s), cut[210];
            int n = naive_segment(t, s, len, cut);
            struct sa_ivec v = {0}, want = {0};
            CHECK_OK(sa_spm_encode_fragment(t, s, len, &v));
            for (int i = 0; i < n; i++) {
                int32_t id = sa_tok_lookup(t, s + cut[i], cut[i + 1] - cut[i]);
                if (id >= 0) {
                    CHECK_OK(sa_ivec_push(&want, id));
                } else {
                    for (size_t j = cut[i]; j < cut[i + 1]; j++) CHECK_OK(sa_ivec_push(&want, t->byte_id[(uint8_t)s[j]]));
                }
            }
            bool same = v.len == want.len && (v.len == 0 || !memcmp(v.data, want.data, v.len * sizeof *v.data));
            if (!same && n_bad++ < 3) CHECK_MSG(same, "round %d text \"%s\": %zu vs %zu ids", round, s, v.len, want.len);
            sa_ivec_free(&v);
            sa_ivec_free(&want);
        }
        free(t);
    }
    CHECK_EQ_INT(n_bad, 0);
#undef RND
}

/* 100 KB in well under a second: the merge loop must be O(n log n), also on runs of one
 * character that merge into long pieces. */
static void test_long_input_speed(void) {
    struct sa_tokenizer *t = vocab_new(true, true);
    static char runs[8][9];
    for (int k = 1; k <= 8; k++) { /* "a" .. "aaaaaaaa" */
        memset(runs[k - 1], 'a', (size_t)k);
        vocab_add(t, runs[k - 1], (float)k);
    }
    const char *words[] = {"\xe2\x96\x81the", "\xe2\x96\x81", "t", "h", "e", "he", "\xe2\x96\x81t", "b", "ab"};
    for (size_t i = 0; i < SA_ARRAY_LEN(words); i++) vocab_add(t, words[i], -(float)i);
    size_t len = 100000;
    char *s = malloc(len);
    SA_ASSERT(s);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            memset(s, 'a', len); /* one run: 100000 / 8 pieces of 8 */
        } else {
            const char *unit = "\xe2\x96\x81the\xe2\x96\x81" "abab\xc3\xa9";
            size_t ul = strlen(unit);
            for (size_t i = 0; i < len; i++) s[i] = unit[i % ul];
        }
        struct sa_ivec v = {0};
        double t0 = sa_time_now();
        CHECK_OK(sa_spm_encode_fragment(t, s, len, &v));
        double dt = sa_time_now() - t0;
        printf("    pass %d: 100000 bytes -> %zu tokens in %.1f ms\n", pass, v.len, dt * 1e3);
        CHECK_MSG(dt < 1.0, "100 KB took %.2f s", dt);
        if (pass == 0) CHECK_EQ_INT(v.len, 12500);
        sa_ivec_free(&v);
    }
    free(s);
    free(t);
}

int main(void) {
    RUN(test_merge_by_score);
    RUN(test_ties_leftmost);
    RUN(test_space_marker_words);
    RUN(test_byte_fallback);
    RUN(test_unknown);
    RUN(test_empty);
    RUN(test_invalid_utf8);
    RUN(test_cjk_emoji);
    RUN(test_normalize);
    RUN(test_random_vs_naive);
    RUN(test_long_input_speed);
    return harness_summary();
}
