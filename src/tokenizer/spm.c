/* spm.c: SentencePiece-style BPE (Gemma, Llama 2), matching llama.cpp's SPM tokenizer:
 * the text is cut into UTF-8 characters, then the adjacent pair whose concatenation is a
 * vocabulary entry with the highest score is merged, again and again (ties: leftmost);
 * what is left is looked up, and a piece that is not in the vocabulary falls back to its
 * bytes (<0xXX> tokens). Also the SPM normalisation (' ' -> U+2581, dummy prefix).
 * O(n log n): a doubly linked list of symbols and a binary heap of candidate pairs. */
#include "core/core_impl.h"
#include "tokenizer/tokenizer_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SPM_SPACE "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */

enum sa_status sa_spm_normalize(const char *text, size_t len, bool add_space_prefix, struct sa_buf *out) {
    sa_buf_clear(out);
    enum sa_status s = SA_STATUS_OK;
    if (add_space_prefix) s = sa_buf_append(out, SPM_SPACE, 3);
    size_t start = 0; /* copy runs between spaces in one append each */
    for (size_t i = 0; i < len && s == SA_STATUS_OK; i++) {
        if (text[i] != ' ') continue;
        s = sa_buf_append(out, text + start, i - start);
        if (s == SA_STATUS_OK) s = sa_buf_append(out, SPM_SPACE, 3);
        start = i + 1;
    }
    if (s == SA_STATUS_OK && len > start) s = sa_buf_append(out, text + start, len - start);
    if (s != SA_STATUS_OK) return sa_error_wrap(s, "spm: normalising %zu bytes of text", len);
    return SA_STATUS_OK;
}

/* A piece of the text: text[off, off + n). n == 0 once merged into its left neighbour. */
struct spm_sym {
    int32_t prev, next; /* neighbours in the list, -1 at the ends */
    uint32_t off, n;
};

/* A candidate merge of the adjacent symbols left and right into a piece of `size` bytes. */
struct spm_pair {
    float score;
    int32_t left, right;
    uint32_t size;
};

struct spm_heap {
    struct spm_pair *data;
    size_t len, cap;
};

/* Priority: higher score first, then the leftmost pair (llama.cpp llm_bigram_spm). */
static bool pair_before(const struct spm_pair *a, const struct spm_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static enum sa_status heap_push(struct spm_heap *h, struct spm_pair p) {
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct spm_pair *d = realloc(h->data, cap * sizeof *d);
        if (!d) return sa_error(SA_STATUS_NO_MEMORY, "spm: out of memory (%zu merge candidates)", cap);
        h->data = d;
        h->cap = cap;
    }
    size_t i = h->len++;
    while (i > 0) { /* sift up */
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->data[parent])) break;
        h->data[i] = h->data[parent];
        i = parent;
    }
    h->data[i] = p;
    return SA_STATUS_OK;
}

static struct spm_pair heap_pop(struct spm_heap *h) {
    SA_ASSERT(h->len > 0);
    struct spm_pair top = h->data[0], last = h->data[--h->len];
    size_t i = 0, n = h->len;
    for (;;) { /* sift `last` down from the root */
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&h->data[c + 1], &h->data[c])) c++;
        if (!pair_before(&h->data[c], &last)) break;
        h->data[i] = h->data[c];
        i = c;
    }
    if (n > 0) h->data[i] = last;
    return top;
}

struct spm_session {
    const struct sa_tokenizer *t;
    const char *text;
    struct spm_sym *sym;
    struct spm_heap heap;
};

/* Queues the merge of symbols left and right if their concatenation is in the vocabulary. */
static enum sa_status try_add_pair(struct spm_session *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return SA_STATUS_OK;
    const struct spm_sym *l = &s->sym[left], *r = &s->sym[right];
    uint32_t size = l->n + r->n; /* the two are adjacent in the text */
    int32_t id = sa_tok_lookup(s->t, s->text + l->off, size);
    if (id < 0) return SA_STATUS_OK;
    struct spm_pair p = {sa_tok_score(s->t, id), left, right, size};
    return heap_push(&s->heap, p);
}

/* Token for one byte of a piece that is not in the vocabulary: <0xXX>, else the byte as a
 * one-byte piece (llama.cpp byte_to_token), else -1. */
static int32_t byte_token(const struct sa_tokenizer *t, uint8_t b) {
    int32_t id = sa_tok_byte_id(t, b);
    if (id < 0) id = sa_tok_lookup(t, (const char *)&b, 1);
    return id;
}

/* Emits a final symbol: its vocabulary id, else its bytes, else one unknown token (what
 * SentencePiece does for an unknown piece when the model has no byte fallback). */
static enum sa_status emit_piece(const struct sa_tokenizer *t, const char *p, uint32_t n, struct sa_ivec *out) {
    int32_t id = sa_tok_lookup(t, p, n);
    if (id >= 0) return sa_ivec_push(out, id);
    bool bytes_ok = true;
    for (uint32_t i = 0; i < n && bytes_ok; i++) bytes_ok = byte_token(t, (uint8_t)p[i]) >= 0;
    if (bytes_ok) {
        for (uint32_t i = 0; i < n; i++) {
            enum sa_status s = sa_ivec_push(out, byte_token(t, (uint8_t)p[i]));
            if (s != SA_STATUS_OK) return s;
        }
        return SA_STATUS_OK;
    }
    int32_t unk = sa_tok_unk(t);
    if (unk < 0)
        return sa_error(SA_STATUS_UNSUPPORTED,
                        "spm: the %u-byte piece starting with byte 0x%02X is not in the vocabulary and the "
                        "model has neither byte-fallback tokens nor an unknown token",
                        n, (unsigned)(uint8_t)p[0]);
    return sa_ivec_push(out, unk);
}

/* Byte length of the character starting with `lead`, from its high nibble only, without
 * checking the continuation bytes (llama.cpp unicode_len_utf8): a continuation or invalid
 * byte stands alone, a lead byte takes the next bytes whatever they are. */
static uint32_t char_len(uint8_t lead) {
    static const uint8_t len_by_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len_by_nibble[lead >> 4];
}

enum sa_status sa_spm_encode_fragment(const struct sa_tokenizer *t, const char *text, size_t len,
                                      struct sa_ivec *out) {
    if (len == 0) return SA_STATUS_OK;
    if (len > (size_t)INT32_MAX)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "spm: text fragment of %zu bytes is too long (max %d)", len,
                        INT32_MAX);
    struct spm_session s = {.t = t, .text = text};
    s.sym = malloc(len * sizeof *s.sym); /* at most one symbol per byte */
    if (!s.sym) return sa_error(SA_STATUS_NO_MEMORY, "spm: out of memory for a %zu-byte text", len);

    /* split into characters */
    int32_t n_sym = 0;
    for (size_t off = 0; off < len;) {
        uint32_t n = char_len((uint8_t)text[off]);
        if (n > len - off) n = (uint32_t)(len - off); /* a truncated character at the end */
        s.sym[n_sym] = (struct spm_sym){n_sym - 1, -1, (uint32_t)off, n};
        if (n_sym > 0) s.sym[n_sym - 1].next = n_sym;
        n_sym++;
        off += n;
    }

    enum sa_status st = SA_STATUS_OK;
    for (int32_t i = 1; i < n_sym && st == SA_STATUS_OK; i++) st = try_add_pair(&s, i - 1, i);

    /* merge the best pair until none is left */
    while (st == SA_STATUS_OK && s.heap.len > 0) {
        struct spm_pair p = heap_pop(&s.heap);
        struct spm_sym *l = &s.sym[p.left], *r = &s.sym[p.right];
        /* Stale candidate: one side was merged away, or the right side grew. While both
         * sides are alive they are still adjacent and the left one is unchanged, so the
         * size test is exact. */
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s.sym[r->next].prev = p.left;
        st = try_add_pair(&s, l->prev, p.left);
        if (st == SA_STATUS_OK) st = try_add_pair(&s, p.left, l->next);
    }

    /* Every merged symbol is a vocabulary entry, so only single characters can be unknown
     * (llama.cpp's rev_merge resegmentation never applies). */
    for (int32_t i = 0; i >= 0 && st == SA_STATUS_OK; i = s.sym[i].next)
        st = emit_piece(t, text + s.sym[i].off, s.sym[i].n, out);

    free(s.heap.data);
    free(s.sym);
    return st;
}
