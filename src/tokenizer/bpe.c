/* bpe.c: byte-level BPE (GPT-2 family: SmolLM2, Llama 3, Qwen2) and merge-rank BPE over
 * characters (tokenizer.json BPE models without ByteLevel). Three parts: the pre-tokenizer
 * (a pipeline of PCRE2 regex splits, JIT-compiled, UTF + UCP), the GPT-2 byte<->unicode
 * map, and the merge loop (a binary heap of candidate pairs ordered by (rank, position):
 * O(n log n) per word, the order llama.cpp and HF tokenizers both use).
 * Invalid UTF-8 follows llama.cpp (unicode_cpts_from_utf8): bytes are decoded leniently
 * and every byte that does not decode becomes U+FFFD before splitting and byte mapping. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/core_impl.h"
#include "tokenizer/tokenizer_impl.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- GPT-2 byte <-> unicode ---- */
/* Bytes that stand for themselves; the other 68 map to U+0100.. in byte order
 * (ref: openai/gpt-2 encoder.py bytes_to_unicode). */
static bool byte_is_printable(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
}

uint32_t sa_bpe_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    uint32_t n = 0;
    for (unsigned i = 0; i < b; i++) n += !byte_is_printable(i);
    return 256 + n;
}

int sa_bpe_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t n = cp - 256;
    for (unsigned i = 0; i < 256; i++)
        if (!byte_is_printable(i) && n-- == 0) return (int)i;
    return -1;
}

static size_t utf8_put(uint32_t cp, char *o) {
    unsigned char *u = (unsigned char *)o;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (unsigned char)(0xF0 | (cp >> 18));
    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- pre-tokenizer pipeline ---- */
static const char RE_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
                                "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
                               "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum sa_status sa_bpe_pretok_add(struct sa_tokenizer *t, const char *pattern, bool literal,
                                 enum sa_split_behavior behavior, bool invert) {
    int err = 0;
    PCRE2_SIZE off = 0;
    uint32_t flags = literal ? PCRE2_LITERAL | PCRE2_UTF : PCRE2_UTF | PCRE2_UCP;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, flags, &err, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return sa_error(SA_STATUS_UNSUPPORTED, "pre-tokenizer regex /%.200s/: %s at offset %zu", pattern,
                        (const char *)msg, (size_t)off);
    }
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* without JIT, pcre2_match interprets */
    size_t plen = strlen(pattern);
    char *text = malloc(plen + 1);
    if (text) memcpy(text, pattern, plen + 1);
    struct sa_pretok_step *s = text ? realloc(t->steps, sizeof *s * (size_t)(t->n_steps + 1)) : NULL;
    if (!s) {
        free(text);
        pcre2_code_free(code);
        return sa_error(SA_STATUS_NO_MEMORY, "pre-tokenizer: out of memory");
    }
    t->steps = s;
    s[t->n_steps++] = (struct sa_pretok_step){
        .code = code, .pattern = text, .behavior = behavior, .invert = invert, .literal = literal};
    return SA_STATUS_OK;
}

void sa_bpe_pretok_free(struct sa_tokenizer *t) {
    for (int i = 0; i < t->n_steps; i++) {
        pcre2_code_free(t->steps[i].code);
        free(t->steps[i].pattern);
    }
    free(t->steps);
    t->steps = NULL;
    t->n_steps = 0;
}

static bool name_in(const char *s, const char *const *names) {
    for (; *names; names++)
        if (!strcmp(s, *names)) return true;
    return false;
}

/* The pre-tokenizer table of llama.cpp (llama-vocab.cpp, llm_tokenizer_bpe) for the
 * names we meet; Llama 3 also takes a word whole when it is in the vocabulary. */
enum sa_status sa_bpe_pretok_from_name(struct sa_tokenizer *t, const char *pre) {
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", NULL};
    static const char *const llama3_like[] = {"dbrx", "smaug-bpe", "chatglm-bpe", NULL};
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen", "stablelm2", NULL};
    static const char *const smollm[] = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone",
                                         "minerva-7b", NULL};
    static const char *const gpt2[] = {"gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "mpt", "olmo", "jais", NULL};
    enum sa_status st = SA_STATUS_OK;
    if (name_in(pre, llama3) || name_in(pre, llama3_like)) {
        st = sa_bpe_pretok_add(t, RE_LLAMA3, false, SA_SPLIT_ISOLATED, false);
        t->ignore_merges = name_in(pre, llama3);
    } else if (name_in(pre, qwen2)) {
        st = sa_bpe_pretok_add(t, RE_QWEN2, false, SA_SPLIT_ISOLATED, false);
    } else if (name_in(pre, smollm)) {
        st = sa_bpe_pretok_add(t, "\\p{N}", false, SA_SPLIT_ISOLATED, false);
        if (!st) st = sa_bpe_pretok_add(t, RE_GPT2, false, SA_SPLIT_ISOLATED, false);
    } else if (name_in(pre, gpt2)) {
        st = sa_bpe_pretok_add(t, RE_GPT2, false, SA_SPLIT_ISOLATED, false);
    } else if (!strcmp(pre, "default") || !pre[0]) {
        st = sa_bpe_pretok_add(t, "[\\p{P}\\$\\+<=>\\^~\\|]+", false, SA_SPLIT_ISOLATED, false);
        if (!st) st = sa_bpe_pretok_add(t, RE_GPT2, false, SA_SPLIT_ISOLATED, false);
        if (!st) st = sa_bpe_pretok_add(t, "\\p{N}+", false, SA_SPLIT_ISOLATED, false);
        if (!st) st = sa_bpe_pretok_add(t, "[0-9][0-9][0-9]", false, SA_SPLIT_ISOLATED, false);
    } else {
        return sa_error(SA_STATUS_UNSUPPORTED,
                        "unknown BPE pre-tokenizer '%s' (known: smollm, llama-bpe, qwen2, gpt2, default and aliases)",
                        pre);
    }
    if (st) return st;
    snprintf(t->pre, sizeof t->pre, "%s", pre[0] ? pre : "default");
    return SA_STATUS_OK;
}

/* ---- per-call state ---- */
struct node {
    int32_t id;
    int32_t prev, next;
};
struct cand {
    int32_t rank, left, right, lid, rid;
};

struct bpe_ctx {
    const struct sa_tokenizer *t;
    const char *rx;  /* (len) regex subject: valid UTF-8 */
    const char *by;  /* (len) the bytes the pieces stand for (same offsets as rx) */
    size_t len;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    struct sa_ivec *out;
    struct node *nodes;
    size_t nodes_cap;
    struct cand *heap;
    size_t heap_len, heap_cap;
    char *tmp;
    size_t tmp_cap;
    /* per-call cache of short words: (hash, where the word is in `by`) -> its ids */
    struct word_slot *cache;
    int32_t *cache_ids;
    size_t cache_n, cache_slots, cache_ids_len, cache_ids_cap;
};

#define CACHE_SLOTS_MAX 16384 /* power of two; filled to half at most; fewer for short texts */
#define CACHE_MAX_WORD 48
struct word_slot {
    uint64_t h; /* 0: empty */
    uint32_t pos, ids_off;
    uint8_t len, n_ids;
};

static void ctx_free(struct bpe_ctx *c) {
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    pcre2_jit_stack_free(c->jit_stack);
    free(c->nodes);
    free(c->heap);
    free(c->tmp);
    free(c->cache);
    free(c->cache_ids);
}

static uint64_t word_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h | 1;
}

/* The cached ids of by[a..a+n), or NULL; *slot receives the slot to fill on a miss. */
static const struct word_slot *cache_find(struct bpe_ctx *c, size_t a, size_t n, uint64_t h, struct word_slot **slot) {
    *slot = NULL;
    if (!c->cache) {
        c->cache_slots = 256;
        while (c->cache_slots < CACHE_SLOTS_MAX && c->cache_slots * 8 < c->len) c->cache_slots *= 2;
        c->cache = calloc(c->cache_slots, sizeof *c->cache);
        if (!c->cache) return NULL;
    }
    for (size_t i = h & (c->cache_slots - 1);; i = (i + 1) & (c->cache_slots - 1)) {
        struct word_slot *s = &c->cache[i];
        if (!s->h) {
            *slot = s;
            return NULL;
        }
        if (s->h == h && s->len == n && !memcmp(c->by + s->pos, c->by + a, n)) return s;
    }
}

static void cache_store(struct bpe_ctx *c, struct word_slot *slot, size_t a, size_t n, uint64_t h, size_t from) {
    size_t k = c->out->len - from;
    if (!slot || c->cache_n >= c->cache_slots / 2 || k > 255 || a > UINT32_MAX) return;
    if (c->cache_ids_len + k > c->cache_ids_cap) {
        size_t cap = SA_MAX(4096, 2 * (c->cache_ids_len + k));
        int32_t *p = realloc(c->cache_ids, cap * sizeof *p);
        if (!p) return; /* the cache is only an optimisation */
        c->cache_ids = p;
        c->cache_ids_cap = cap;
    }
    /* k == 0 (no byte of the word is in the vocabulary): both pointers may still be NULL */
    if (k) memcpy(c->cache_ids + c->cache_ids_len, c->out->data + from, k * sizeof *c->cache_ids);
    *slot = (struct word_slot){h, (uint32_t)a, (uint32_t)c->cache_ids_len, (uint8_t)n, (uint8_t)k};
    c->cache_ids_len += k;
    c->cache_n++;
}

static bool cand_less(const struct cand *a, const struct cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static enum sa_status heap_push(struct bpe_ctx *c, struct cand x) {
    if (c->heap_len == c->heap_cap) {
        size_t cap = c->heap_cap ? 2 * c->heap_cap : 64;
        struct cand *h = realloc(c->heap, cap * sizeof *h);
        if (!h) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
        c->heap = h;
        c->heap_cap = cap;
    }
    size_t i = c->heap_len++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&x, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = x;
    return SA_STATUS_OK;
}

static struct cand heap_pop(struct bpe_ctx *c) {
    struct cand top = c->heap[0];
    struct cand x = c->heap[--c->heap_len];
    size_t n = c->heap_len, i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l >= n) break;
        if (cand_less(&c->heap[l], &x)) m = l;
        if (l + 1 < n && cand_less(&c->heap[l + 1], m == i ? &x : &c->heap[l])) m = l + 1;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = x;
    return top;
}

static enum sa_status try_pair(struct bpe_ctx *c, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return SA_STATUS_OK;
    int32_t lid = c->nodes[left].id, rid = c->nodes[right].id;
    if (lid < 0 || rid < 0) return SA_STATUS_OK;
    int32_t rank;
    if (sa_tok_merge(c->t, lid, rid, &rank) < 0) return SA_STATUS_OK;
    return heap_push(c, (struct cand){rank, left, right, lid, rid});
}

static enum sa_status nodes_reserve(struct bpe_ctx *c, size_t n) {
    if (n <= c->nodes_cap) return SA_STATUS_OK;
    size_t cap = SA_MAX(n, 2 * c->nodes_cap);
    struct node *p = realloc(c->nodes, cap * sizeof *p);
    if (!p) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    c->nodes = p;
    c->nodes_cap = cap;
    return SA_STATUS_OK;
}

/* Merges the n symbols in c->nodes[0..n) by rank and appends the result. */
static enum sa_status merge_and_emit(struct bpe_ctx *c, int32_t n) {
    enum sa_status st;
    for (int32_t i = 0; i < n; i++) {
        c->nodes[i].prev = i - 1;
        c->nodes[i].next = i + 1 < n ? i + 1 : -1;
    }
    c->heap_len = 0;
    for (int32_t i = 0; i + 1 < n; i++)
        if ((st = try_pair(c, i, i + 1))) return st;
    while (c->heap_len) {
        struct cand b = heap_pop(c);
        struct node *l = &c->nodes[b.left], *r = &c->nodes[b.right];
        if (l->id != b.lid || r->id != b.rid || l->next != b.right) continue; /* stale */
        int32_t rank;
        l->id = sa_tok_merge(c->t, b.lid, b.rid, &rank);
        r->id = -2; /* dead */
        l->next = r->next;
        if (r->next >= 0) c->nodes[r->next].prev = b.left;
        if ((st = try_pair(c, l->prev, b.left))) return st;
        if ((st = try_pair(c, b.left, l->next))) return st;
    }
    for (int32_t i = 0; i >= 0; i = c->nodes[i].next)
        if (c->nodes[i].id >= 0 && (st = sa_ivec_push(c->out, c->nodes[i].id))) return st;
    return SA_STATUS_OK;
}

/* One pre-token of byte-level BPE: bytes c->by[a..e). */
static enum sa_status encode_word_bytes(struct bpe_ctx *c, size_t a, size_t e) {
    const struct sa_tokenizer *t = c->t;
    const unsigned char *w = (const unsigned char *)c->by + a;
    size_t n = e - a;
    enum sa_status st;
    if (n == 1) return t->byte_id[w[0]] >= 0 ? sa_ivec_push(c->out, t->byte_id[w[0]]) : SA_STATUS_OK;
    struct word_slot *slot = NULL;
    uint64_t h = 0;
    size_t from = c->out->len;
    if (n <= CACHE_MAX_WORD) {
        h = word_hash(c->by + a, n);
        const struct word_slot *hit = cache_find(c, a, n, h, &slot);
        if (hit) {
            for (uint32_t i = 0; i < hit->n_ids; i++)
                if ((st = sa_ivec_push(c->out, c->cache_ids[hit->ids_off + i]))) return st;
            return SA_STATUS_OK;
        }
    }
    if (t->ignore_merges) {
        if (n * 2 > c->tmp_cap) {
            char *p = realloc(c->tmp, n * 2);
            if (!p) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
            c->tmp = p;
            c->tmp_cap = n * 2;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += utf8_put(sa_bpe_byte_to_cp(w[i]), c->tmp + k);
        int32_t id = sa_tok_lookup(t, c->tmp, k);
        if (id >= 0) return sa_ivec_push(c->out, id);
    }
    if (n > INT32_MAX / 2) return sa_error(SA_STATUS_BAD_ARGUMENT, "tokenizer: pre-token too long");
    if ((st = nodes_reserve(c, n))) return st;
    for (size_t i = 0; i < n; i++) c->nodes[i].id = t->byte_id[w[i]];
    if ((st = merge_and_emit(c, (int32_t)n))) return st;
    if (n <= CACHE_MAX_WORD) cache_store(c, slot, a, n, h, from);
    return SA_STATUS_OK;
}

/* One word of character-level BPE (no byte mapping): UTF-8 characters looked up in the
 * vocabulary, with <0xXX> fallback or unk (consecutive unks fused). */
static enum sa_status encode_word_chars(struct bpe_ctx *c, size_t a, size_t e) {
    const struct sa_tokenizer *t = c->t;
    const char *w = c->by + a;
    size_t n = e - a;
    enum sa_status st;
    if (n > INT32_MAX / 2) return sa_error(SA_STATUS_BAD_ARGUMENT, "tokenizer: pre-token too long");
    if ((st = nodes_reserve(c, n))) return st;
    int32_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t l = (size_t)sa_utf8_seq_len((unsigned char)w[i]);
        if (!l || l > n - i) l = 1;
        int32_t id = sa_tok_lookup(t, w + i, l);
        if (id >= 0) {
            c->nodes[k++].id = id;
        } else {
            bool all = t->byte_fallback;
            for (size_t j = 0; all && j < l; j++) all = t->byte_id[(unsigned char)w[i + j]] >= 0;
            if (all) {
                for (size_t j = 0; j < l; j++) c->nodes[k++].id = t->byte_id[(unsigned char)w[i + j]];
            } else if (t->unk >= 0 && !(k > 0 && c->nodes[k - 1].id == t->unk)) {
                c->nodes[k++].id = t->unk;
            }
        }
        i += l;
    }
    if (k == 0) return SA_STATUS_OK;
    return merge_and_emit(c, k);
}

static enum sa_status split(struct bpe_ctx *c, int step, size_t a, size_t e);

/* Applies a step's behaviour to the alternating sequence of gaps and matches. */
struct emitter {
    struct bpe_ctx *c;
    int next_step;
    enum sa_split_behavior behavior;
    size_t pa, pe; /* pending piece, pa == SIZE_MAX: none */
    enum sa_status st;
};

static void em_out(struct emitter *m, size_t a, size_t e) {
    if (!m->st && e > a) m->st = split(m->c, m->next_step, a, e);
}
static void em_flush(struct emitter *m) {
    if (m->pa != SIZE_MAX) em_out(m, m->pa, m->pe);
    m->pa = SIZE_MAX;
}
static void em_piece(struct emitter *m, size_t a, size_t e, bool is_match) {
    if (e <= a) return;
    switch (m->behavior) {
    case SA_SPLIT_ISOLATED:
        em_out(m, a, e);
        break;
    case SA_SPLIT_REMOVED:
        if (!is_match) em_out(m, a, e);
        break;
    case SA_SPLIT_MERGED_PREV: /* a match joins the gap before it */
        if (is_match) {
            if (m->pa != SIZE_MAX && m->pe == a) {
                em_out(m, m->pa, e);
                m->pa = SIZE_MAX;
            } else {
                em_flush(m);
                em_out(m, a, e);
            }
        } else {
            em_flush(m);
            m->pa = a;
            m->pe = e;
        }
        break;
    case SA_SPLIT_MERGED_NEXT: /* a match joins the gap after it */
        if (is_match) {
            em_flush(m);
            m->pa = a;
            m->pe = e;
        } else if (m->pa != SIZE_MAX && m->pe == a) {
            em_out(m, m->pa, e);
            m->pa = SIZE_MAX;
        } else {
            em_flush(m);
            em_out(m, a, e);
        }
        break;
    case SA_SPLIT_CONTIGUOUS: /* adjacent matches become one piece */
        if (is_match) {
            if (m->pa != SIZE_MAX && m->pe == a) {
                m->pe = e;
            } else {
                em_flush(m);
                m->pa = a;
                m->pe = e;
            }
        } else {
            em_flush(m);
            em_out(m, a, e);
        }
        break;
    }
}

static int run_match(struct bpe_ctx *c, const struct sa_pretok_step *s, size_t e, size_t pos) {
    int rc = pcre2_match(s->code, (PCRE2_SPTR)c->rx, e, pos, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !c->jit_stack) {
        /* long runs of one class can outgrow the default 32 KiB JIT stack */
        c->mctx = pcre2_match_context_create(NULL);
        c->jit_stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, NULL);
        if (!c->mctx || !c->jit_stack) return PCRE2_ERROR_NOMEMORY;
        pcre2_jit_stack_assign(c->mctx, NULL, c->jit_stack);
        rc = pcre2_match(s->code, (PCRE2_SPTR)c->rx, e, pos, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
    }
    return rc;
}

/* Splits rx[a..e) with step `step` and hands every piece to the next step; past the last
 * step a piece is a word to merge. A step never looks past e (lookahead included). */
static enum sa_status split(struct bpe_ctx *c, int step, size_t a, size_t e) {
    const struct sa_tokenizer *t = c->t;
    if (step >= t->n_steps) return t->byte_level ? encode_word_bytes(c, a, e) : encode_word_chars(c, a, e);
    const struct sa_pretok_step *s = &t->steps[step];
    struct emitter m = {.c = c, .next_step = step + 1, .behavior = s->behavior, .pa = SIZE_MAX};
    size_t pos = a, prev = a;
    while (pos < e && !m.st) {
        int rc = run_match(c, s, e, pos);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return sa_error(SA_STATUS_ERROR, "pre-tokenizer regex: %s", (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* empty match: step over one character */
            size_t l = (size_t)sa_utf8_seq_len((unsigned char)c->rx[ms < e ? ms : e - 1]);
            pos = ms + (l ? l : 1);
            continue;
        }
        em_piece(&m, prev, ms, s->invert);
        em_piece(&m, ms, me, !s->invert);
        prev = pos = me;
    }
    em_piece(&m, prev, e, s->invert);
    em_flush(&m);
    return m.st;
}

/* Lenient UTF-8 decoding as llama.cpp's unicode_cpt_from_utf8 + re-encoding: returns
 * rx (valid UTF-8 for PCRE2) and by (what llama.cpp's rebuilt words contain), both of
 * the same length: U+FFFD for undecodable bytes, surrogates kept in `by` only. */
static enum sa_status sanitize(const char *text, size_t len, char **rx, char **by, size_t *out_len) {
    if (len > SIZE_MAX / 3 - 4) return sa_error(SA_STATUS_BAD_ARGUMENT, "tokenizer: text too long");
    char *r = malloc(3 * len + 4), *b = malloc(3 * len + 4);
    if (!r || !b) {
        free(r);
        free(b);
        return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, k = 0;
    while (i < len) {
        unsigned char c0 = s[i];
        uint32_t cp = 0xFFFD;
        size_t need = 0;
        if (c0 < 0x80) {
            cp = c0;
            need = 1;
        } else if (!(c0 & 0x40)) {
            need = 0;
        } else if (!(c0 & 0x20)) {
            need = 2;
        } else if (!(c0 & 0x10)) {
            need = 3;
        } else if (!(c0 & 0x08)) {
            need = 4;
        }
        if (need > 1) {
            bool ok = i + need <= len;
            for (size_t j = 1; ok && j < need; j++) ok = (s[i + j] & 0xC0) == 0x80;
            if (ok) {
                cp = c0 & (0x7F >> need);
                for (size_t j = 1; j < need; j++) cp = (cp << 6) | (s[i + j] & 0x3F);
            } else {
                need = 0;
            }
        }
        if (need == 0) {
            cp = 0xFFFD;
            need = 1;
        }
        i += need;
        if (cp > 0x10FFFF) cp = 0xFFFD; /* llama.cpp throws here; we keep going */
        size_t n = utf8_put(cp, b + k);
        if (cp >= 0xD800 && cp <= 0xDFFF)
            utf8_put(0xFFFD, r + k);
        else
            memcpy(r + k, b + k, n);
        k += n;
    }
    *rx = r;
    *by = b;
    *out_len = k;
    return SA_STATUS_OK;
}

static enum sa_status encode(const struct sa_tokenizer *t, const char *text, size_t len, struct sa_ivec *out) {
    enum sa_status st = SA_STATUS_OK;
    char *rx = NULL, *by = NULL, *nfc = NULL, *pref = NULL;
    const char *r = text, *b = text;
    if (sa_utf8_valid_prefix(text, len) != len) {
        if ((st = sanitize(text, len, &rx, &by, &len))) return st;
        r = rx;
        b = by;
    }
    if (t->nfc) {
        bool ascii = true;
        for (size_t i = 0; i < len && ascii; i++) ascii = (unsigned char)r[i] < 0x80;
        if (!ascii) {
            utf8proc_uint8_t *o = NULL;
            utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)r, (utf8proc_ssize_t)len, &o,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (n < 0) {
                st = sa_error(SA_STATUS_ERROR, "tokenizer: NFC: %s", utf8proc_errmsg(n));
                goto done;
            }
            nfc = (char *)o;
            r = b = nfc;
            len = (size_t)n;
        }
    }
    if (t->add_prefix_space && len > 0 && r[0] != ' ') {
        pref = malloc(len + 1);
        if (!pref) {
            st = sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
            goto done;
        }
        pref[0] = ' ';
        memcpy(pref + 1, r, len);
        r = b = pref;
        len++;
    }
    if (len == 0) goto done;
    struct bpe_ctx c = {.t = t, .rx = r, .by = b, .len = len, .out = out};
    c.md = pcre2_match_data_create(1, NULL);
    if (!c.md) {
        st = sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
        goto done;
    }
    st = split(&c, 0, 0, len);
    ctx_free(&c);
done:
    free(rx);
    free(by);
    free(nfc);
    free(pref);
    return st;
}

enum sa_status sa_bpe_encode_fragment(const struct sa_tokenizer *t, const char *text, size_t len, struct sa_ivec *out) {
    SA_ASSERT(t->byte_level);
    return encode(t, text, len, out);
}

enum sa_status sa_bpe_encode_chars(const struct sa_tokenizer *t, const char *text, size_t len, struct sa_ivec *out) {
    SA_ASSERT(!t->byte_level);
    return encode(t, text, len, out);
}
