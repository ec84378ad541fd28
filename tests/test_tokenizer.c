/* test_tokenizer.c: the tokenizer on a tiny hand-written tokenizer.json (merges, added
 * tokens, lstrip/rstrip, decode, streaming, errors) and on the cached GGUF models (ids
 * checked against llama.cpp, special ids, EOG, streaming over every prefix, long inputs). */
#define _GNU_SOURCE
#include "harness.h"
#include "sa/gguf.h"
#include "sa/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *models_dir(void) {
    const char *d = getenv("SALIGN_MODELS");
    static char buf[1024];
    if (d && *d) return d;
    snprintf(buf, sizeof buf, "%s/.cache/salign", getenv("HOME") ? getenv("HOME") : ".");
    return buf;
}

static struct sa_tokenizer *load_model(const char *name, const char *file, struct sa_gguf **g) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s", models_dir(), name, file);
    *g = NULL;
    if (sa_gguf_open(path, g)) {
        harness_fail(__FILE__, __LINE__, "cannot open %s: %s (run scripts/setup.sh)", path, sa_last_error());
        return NULL;
    }
    struct sa_tokenizer *t = NULL;
    CHECK_OK(sa_tokenizer_load_gguf(*g, &t));
    return t;
}

static bool ids_eq(const struct sa_tokenizer *t, const char *s, bool add, bool special, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t m = 0;
    struct sa_tokenize_opts o = {add, special};
    if (sa_tokenize(t, s, strlen(s), o, &ids, &m)) return false;
    bool ok = m == n && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "  \"%s\" ->", s);
        for (size_t i = 0; i < m; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

/* Streams ids[0..n) and checks: concatenation == whole decode, chunks end on characters. */
static bool stream_ok(const struct sa_tokenizer *t, const int32_t *ids, size_t n) {
    struct sa_detokenize_opts o = {false, false};
    char *whole = NULL;
    size_t wl = 0;
    if (sa_detokenize(t, ids, n, o, &whole, &wl)) return false;
    struct sa_detok_stream *s = NULL;
    if (sa_detok_stream_init(t, o, &s)) return false;
    char *acc = malloc(wl + 64);
    size_t al = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        const char *p;
        size_t pl;
        ok = !sa_detok_stream_push(s, ids[i], &p, &pl) && al + pl <= wl;
        if (ok && pl) {
            unsigned char last = (unsigned char)p[pl - 1];
            ok = last < 0x80 || (last & 0xC0) == 0x80; /* never ends on a lead byte */
            memcpy(acc + al, p, pl);
            al += pl;
        }
    }
    const char *p;
    size_t pl;
    if (ok) ok = !sa_detok_stream_flush(s, &p, &pl) && al + pl == wl;
    if (ok) ok = !memcmp(acc, whole, al) && !memcmp(p, whole + al, pl);
    sa_detok_stream_free(s);
    free(acc);
    free(whole);
    return ok;
}

/* A byte-level BPE vocabulary: the 256 byte characters are ids 0..255, then merges. */
static char *tiny_json(void) {
    static char buf[65536];
    size_t k = 0;
    k += (size_t)snprintf(buf + k, sizeof buf - k,
                          "{\"added_tokens\":[{\"id\":300,\"content\":\"<|end|>\",\"special\":true},"
                          "{\"id\":301,\"content\":\"<tag>\",\"special\":false,\"lstrip\":true,\"rstrip\":true}],"
                          "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
                          "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        /* GPT-2 byte alphabet */
        unsigned cp = b;
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
            unsigned n = 0;
            for (int i = 0; i < b; i++) n += !((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174);
            cp = 256 + n;
        }
        char u[8];
        if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", (char)cp);
        else if (cp < 0x80) snprintf(u, sizeof u, "%c", (char)cp);
        else snprintf(u, sizeof u, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
        k += (size_t)snprintf(buf + k, sizeof buf - k, "\"%s\":%d,", u, b);
    }
    k += (size_t)snprintf(buf + k, sizeof buf - k,
                          "\"he\":256,\"ll\":257,\"hell\":258,\"hello\":259,\"\xC4\xA0w\":260,\"\xC4\xA0wo\":261,"
                          "\"aa\":262,\"aaaa\":263},\"merges\":[\"h e\",\"l l\",\"he ll\",\"hell o\",\"\xC4\xA0 w\","
                          "[\"\xC4\xA0w\",\"o\"],\"a a\",\"aa aa\"]}}");
    return buf;
}

static void test_hf_tiny(void) {
    const char *j = tiny_json();
    struct sa_tokenizer *t = NULL;
    CHECK_OK(sa_tokenizer_load_hf_memory(j, strlen(j), NULL, 0, &t));
    if (!t) return;
    CHECK_EQ_INT(sa_tokenizer_kind(t), SA_TOKENIZER_BPE);
    CHECK_EQ_INT(sa_tokenizer_n_vocab(t), 302);
    CHECK_EQ_INT(sa_tokenizer_find(t, "hello"), 259);
    CHECK_EQ_INT(sa_tokenizer_attr(t, 300), SA_TOKEN_CONTROL);
    CHECK(sa_tokenizer_is_eog(t, 300)); /* <|end|> */
    int32_t w1[] = {259, 261, 'r', 'l', 'd'};
    CHECK(ids_eq(t, "hello world", false, false, w1, 5));
    int32_t w2[] = {263, 262, 'a'}; /* aaaaaaa: ranks merge left to right */
    CHECK(ids_eq(t, "aaaaaaa", false, false, w2, 3));
    int32_t w3[] = {'<', '|', 'e', 'n', 'd', '|', '>'}; /* control: only with parse_special */
    CHECK(ids_eq(t, "<|end|>", false, false, w3, 7));
    int32_t w4[] = {259, 300};
    CHECK(ids_eq(t, "hello<|end|>", false, true, w4, 2));
    int32_t w5[] = {'x', 301, 'y'}; /* lstrip/rstrip swallow the spaces around <tag> */
    CHECK(ids_eq(t, "x  <tag>  y", false, false, w5, 3));

    char *s = NULL;
    size_t n = 0;
    int32_t d[] = {259, 261, 'r', 300};
    CHECK_OK(sa_detokenize(t, d, 4, (struct sa_detokenize_opts){false, false}, &s, &n));
    CHECK_EQ_STR(s, "hello wor");
    free(s);
    CHECK_OK(sa_detokenize(t, d, 4, (struct sa_detokenize_opts){true, false}, &s, &n));
    CHECK_EQ_STR(s, "hello wor<|end|>");
    free(s);
    int32_t d2[] = {260, 259};
    CHECK_OK(sa_detokenize(t, d2, 2, (struct sa_detokenize_opts){false, true}, &s, &n));
    CHECK_EQ_STR(s, "whello");
    free(s);
    char small[2];
    CHECK_EQ_INT(sa_token_to_piece(t, 259, false, small, sizeof small), 5); /* needed size, nothing written */

    /* an emoji (4 byte tokens) and a 3-byte CJK char: held back until complete */
    const char *u = "a\xF0\x9F\x91\x8D\xE6\x97\xA5" "b";
    int32_t *ids = NULL;
    size_t m = 0;
    CHECK_OK(sa_tokenize(t, u, strlen(u), (struct sa_tokenize_opts){false, false}, &ids, &m));
    CHECK_EQ_INT(m, 9);
    for (size_t k = 0; k <= m; k++) CHECK(stream_ok(t, ids, k));
    struct sa_detok_stream *st = NULL;
    CHECK_OK(sa_detok_stream_init(t, (struct sa_detokenize_opts){false, false}, &st));
    const char *p;
    size_t pl;
    CHECK_OK(sa_detok_stream_push(st, ids[0], &p, &pl));
    CHECK_EQ_INT(pl, 1);
    for (int k = 1; k < 4; k++) {
        CHECK_OK(sa_detok_stream_push(st, ids[k], &p, &pl));
        CHECK_EQ_INT(pl, 0);
    }
    CHECK_OK(sa_detok_stream_push(st, ids[4], &p, &pl));
    CHECK_EQ_INT(pl, 4);
    CHECK(!memcmp(p, "\xF0\x9F\x91\x8D", 4));
    CHECK_OK(sa_detok_stream_push(st, ids[5], &p, &pl));
    CHECK_EQ_INT(pl, 0);
    CHECK_OK(sa_detok_stream_flush(st, &p, &pl)); /* an incomplete tail comes out as it is */
    CHECK_EQ_INT(pl, 1);
    CHECK_EQ_INT((unsigned char)p[0], 0xE6);
    sa_detok_stream_free(st);
    free(ids);
    sa_tokenizer_free(t);
}

static void test_hf_errors(void) {
    struct sa_tokenizer *t = (struct sa_tokenizer *)1;
    CHECK_EQ_INT(sa_tokenizer_load_hf_memory("{", 1, NULL, 0, &t), SA_STATUS_BAD_JSON);
    CHECK(t == NULL);
    const char *uni = "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}";
    CHECK_EQ_INT(sa_tokenizer_load_hf_memory(uni, strlen(uni), NULL, 0, &t), SA_STATUS_UNSUPPORTED);
    CHECK(strstr(sa_last_error(), "Unigram") != NULL);
    const char *badmerge = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}";
    CHECK_EQ_INT(sa_tokenizer_load_hf_memory(badmerge, strlen(badmerge), NULL, 0, &t), SA_STATUS_BAD_JSON);
    const char *badre = "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"}},"
                        "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    CHECK_EQ_INT(sa_tokenizer_load_hf_memory(badre, strlen(badre), NULL, 0, &t), SA_STATUS_UNSUPPORTED);
    CHECK_EQ_INT(sa_tokenizer_load_hf("/nonexistent/tokenizer.json", NULL, &t), SA_STATUS_IO);
}

static void test_smollm2(void) {
    struct sa_gguf *g;
    struct sa_tokenizer *t = load_model("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf", &g);
    if (!t) return;
    CHECK_EQ_STR(sa_tokenizer_pre(t), "smollm");
    CHECK_EQ_INT(sa_tokenizer_kind(t), SA_TOKENIZER_BPE);
    CHECK_EQ_INT(sa_tokenizer_n_vocab(t), 49152);
    CHECK_EQ_INT(sa_tokenizer_bos(t), 1);
    CHECK_EQ_INT(sa_tokenizer_eos(t), 2);
    CHECK_EQ_INT(sa_tokenizer_eot(t), 2); /* <|im_end|> */
    CHECK(!sa_tokenizer_add_bos(t));
    CHECK(sa_tokenizer_is_eog(t, 2));
    CHECK(sa_tokenizer_is_eog(t, 0)); /* <|endoftext|> */
    CHECK(!sa_tokenizer_is_eog(t, 1));
    int32_t a[] = {19556, 905};
    CHECK(ids_eq(t, "Hello world", true, true, a, 2));
    int32_t b[] = {1, 4093, 198, 26843, 216, 33, 34, 35, 17, 2}; /* from llama.cpp */
    CHECK(ids_eq(t, "<|im_start|>user\nHi 123!<|im_end|>", true, true, b, 10));
    int32_t c[] = {23274, 115, 40993, 179, 120, 248, 15107, 235, 231, 10813, 233, 138};
    CHECK(ids_eq(t, "日本語 👍🏽", false, false, c, 12));

    /* streaming over every prefix of real sequences with CJK and emoji split across tokens */
    const char *texts[] = {"日本語 👍🏽 👨‍👩‍👧 ok", "Ünïcödé — “quotes” 東京", "bad \xff byte"};
    for (size_t k = 0; k < 3; k++) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(sa_tokenize(t, texts[k], strlen(texts[k]), (struct sa_tokenize_opts){false, false}, &ids, &n));
        for (size_t i = 0; i <= n; i++) CHECK_MSG(stream_ok(t, ids, i), "stream text %zu prefix %zu", k, i);
        free(ids);
    }

    /* long inputs: one 2 MB word and 1 MB of spaces must stay fast (n log n merges) */
    size_t big = 2u << 20;
    char *s = malloc(big + 1);
    for (size_t i = 0; i < big; i++) s[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
    clock_t t0 = clock();
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(sa_tokenize(t, s, big, (struct sa_tokenize_opts){false, false}, &ids, &n));
    CHECK(n > 0 && n < big);
    char *back = NULL;
    size_t bl = 0;
    CHECK_OK(sa_detokenize(t, ids, n, (struct sa_detokenize_opts){false, false}, &back, &bl));
    CHECK(bl == big && !memcmp(back, s, big));
    free(back);
    free(ids);
    memset(s, ' ', big / 2);
    CHECK_OK(sa_tokenize(t, s, big / 2, (struct sa_tokenize_opts){false, false}, &ids, &n));
    free(ids);
    double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK_MSG(dt < 10.0, "long inputs took %.1f s", dt);
    free(s);

    int32_t *e = NULL;
    CHECK_OK(sa_tokenize(t, "", 0, (struct sa_tokenize_opts){true, true}, &e, &n));
    CHECK_EQ_INT(n, 0);
    free(e);
    sa_tokenizer_free(t);
    sa_gguf_free(g);
}

static void test_gemma3(void) {
    struct sa_gguf *g;
    struct sa_tokenizer *t = load_model("gemma3-270m", "gemma-3-270m-q4_k_m.gguf", &g);
    if (!t) return;
    CHECK_EQ_INT(sa_tokenizer_kind(t), SA_TOKENIZER_SPM);
    CHECK_EQ_STR(sa_tokenizer_pre(t), "");
    CHECK_EQ_INT(sa_tokenizer_bos(t), 2);
    CHECK_EQ_INT(sa_tokenizer_eos(t), 1);
    CHECK(sa_tokenizer_add_bos(t));
    CHECK_EQ_STR(sa_tokenizer_vocab_str(t, sa_tokenizer_eot(t)), "<end_of_turn>");
    CHECK(sa_tokenizer_is_eog(t, 1) && sa_tokenizer_is_eog(t, sa_tokenizer_eot(t)));
    CHECK_EQ_INT(sa_tokenizer_attr(t, sa_tokenizer_find(t, "<0x0A>")), SA_TOKEN_BYTE);
    int32_t a[] = {2, 9259, 1902};
    CHECK(ids_eq(t, "Hello world", true, true, a, 3));
    int32_t b[] = {2, 105, 2364, 107, 10979, 106};
    CHECK(ids_eq(t, "<start_of_turn>user\nHi<end_of_turn>", true, true, b, 6));
    int32_t c[] = {94951, 103712, 242713};
    CHECK(ids_eq(t, "日本語 👍🏽", false, false, c, 3));
    char *s = NULL;
    size_t n = 0;
    CHECK_OK(sa_detokenize(t, a, 3, (struct sa_detokenize_opts){false, false}, &s, &n));
    CHECK_EQ_STR(s, "Hello world");
    free(s);
    const char *txt = "emoji 👨‍👩‍👧 and  CJK 東京 \x01 <0x41>";
    int32_t *ids = NULL;
    CHECK_OK(sa_tokenize(t, txt, strlen(txt), (struct sa_tokenize_opts){false, false}, &ids, &n));
    for (size_t i = 0; i <= n; i++) CHECK_MSG(stream_ok(t, ids, i), "prefix %zu", i);
    CHECK_OK(sa_detokenize(t, ids, n, (struct sa_detokenize_opts){false, false}, &s, &n));
    CHECK_EQ_STR(s, txt);
    free(s);
    free(ids);
    sa_tokenizer_free(t);
    sa_gguf_free(g);
}

int main(void) {
    RUN(test_hf_tiny);
    RUN(test_hf_errors);
    RUN(test_smollm2);
    RUN(test_gemma3);
    return harness_summary();
}
