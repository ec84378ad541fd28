/* tokenizer.c: the tokenizer core: vocabulary (hash lookup), BPE merges map, loading
 * from GGUF (tokenizer.ggml.*), special/added tokens (a byte trie; llama.cpp's longest-
 * token-first partition for GGUF, tokenizers' leftmost-longest for tokenizer.json),
 * BOS/EOS/EOT/EOG, encode dispatch to bpe.c/spm.c, decode and the streaming decoder.
 * Loading from tokenizer.json lives in tokenizer_hf.c. */
#define _GNU_SOURCE /* qsort_r */
#include "tokenizer/tokenizer_impl.h"

#include "core/core_impl.h"
#include "sa/gguf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */
enum sa_status sa_ivec_push(struct sa_ivec *v, int32_t x) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int32_t *p = realloc(v->data, cap * sizeof *p);
        if (!p) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
        v->data = p;
        v->cap = cap;
    }
    v->data[v->len++] = x;
    return SA_STATUS_OK;
}

void sa_ivec_free(struct sa_ivec *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- vocabulary ---- */
int32_t sa_tok_lookup(const struct sa_tokenizer *t, const char *s, size_t len) {
    if (!t->vocab_hash) return -1;
    for (uint64_t i = hash_bytes(s, len) & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
        int32_t id = t->vocab_hash[i];
        if (id < 0) return -1;
        if (t->text_len[id] == len && !memcmp(t->text[id], s, len)) return id;
    }
}

float sa_tok_score(const struct sa_tokenizer *t, int32_t id) {
    return t->scores && id >= 0 && id < t->n_vocab ? t->scores[id] : 0.0f;
}

int32_t sa_tok_byte_id(const struct sa_tokenizer *t, uint8_t b) {
    return t->byte_id[b];
}

int32_t sa_tok_unk(const struct sa_tokenizer *t) {
    return t->unk;
}

enum sa_status sa_tok_add_merge(struct sa_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        struct sa_merge_slot *s = &t->merges[i];
        if (s->key == UINT64_MAX) {
            *s = (struct sa_merge_slot){key, rank, merged};
            t->n_merges++;
            return SA_STATUS_OK;
        }
        if (s->key == key) return SA_STATUS_OK;
    }
}

int32_t sa_tok_merge(const struct sa_tokenizer *t, int32_t left, int32_t right, int32_t *rank) {
    if (!t->merges) return -1;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const struct sa_merge_slot *s = &t->merges[i];
        if (s->key == UINT64_MAX) return -1;
        if (s->key == key) {
            *rank = s->rank;
            return s->merged;
        }
    }
}

int32_t sa_tok_merge_rank(const struct sa_tokenizer *t, int32_t left, int32_t right) {
    int32_t rank;
    return sa_tok_merge(t, left, right, &rank) >= 0 ? rank : -1;
}

/* Internal constructor: n_vocab empty tokens; the loaders fill them in. */
enum sa_status sa_tok_alloc(int32_t n_vocab, struct sa_tokenizer **out) {
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > (1 << 26))
        return sa_error(SA_STATUS_BAD_FILE, "tokenizer: vocabulary size %d out of range", (int)n_vocab);
    struct sa_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    t->n_vocab = n_vocab;
    t->text = calloc((size_t)n_vocab, sizeof *t->text);
    t->text_len = calloc((size_t)n_vocab, sizeof *t->text_len);
    t->attr = calloc((size_t)n_vocab, sizeof *t->attr);
    t->bos = t->eos = t->eot = t->pad = t->unk = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    if (!t->text || !t->text_len || !t->attr) {
        sa_tokenizer_free(t);
        return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    *out = t;
    return SA_STATUS_OK;
}

/* Copies the token strings (ptr/len pairs, NULL ptr: empty) into one block. */
enum sa_status sa_tok_set_strings(struct sa_tokenizer *t, const char *const *ptr, const uint32_t *len) {
    uint64_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) total += (uint64_t)len[i] + 1;
    if (total > ((uint64_t)1 << 32)) return sa_error(SA_STATUS_BAD_FILE, "tokenizer: token strings too large");
    free(t->strings);
    t->strings = malloc((size_t)total);
    if (!t->strings) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    char *p = t->strings;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (len[i]) memcpy(p, ptr[i], len[i]);
        p[len[i]] = 0;
        t->text[i] = p;
        t->text_len[i] = len[i];
        p += len[i] + 1;
    }
    return SA_STATUS_OK;
}

static enum sa_status build_vocab_hash(struct sa_tokenizer *t) {
    uint32_t cap = 1024;
    while (cap < (uint32_t)t->n_vocab * 2u) cap *= 2;
    free(t->vocab_hash);
    t->vocab_hash = malloc(cap * sizeof *t->vocab_hash);
    if (!t->vocab_hash) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    memset(t->vocab_hash, 0xff, cap * sizeof *t->vocab_hash);
    t->vocab_mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->text_len[id] && (t->attr[id] & SA_TOKEN_UNUSED)) continue;
        uint64_t i = hash_bytes(t->text[id], t->text_len[id]) & t->vocab_mask;
        bool dup = false;
        for (; t->vocab_hash[i] >= 0; i = (i + 1) & t->vocab_mask) {
            int32_t o = t->vocab_hash[i];
            if (t->text_len[o] == t->text_len[id] && !memcmp(t->text[o], t->text[id], t->text_len[id])) {
                dup = true; /* the first id keeps the string (llama.cpp overwrites; duplicates are rare) */
                break;
            }
        }
        if (!dup) t->vocab_hash[i] = id;
    }
    return SA_STATUS_OK;
}

enum sa_status sa_tok_merges_init(struct sa_tokenizer *t, uint64_t n) {
    uint64_t cap = 1024;
    while (cap < n * 2) cap *= 2;
    t->merges = malloc(cap * sizeof *t->merges);
    if (!t->merges) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    for (uint64_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;
    return SA_STATUS_OK;
}

/* ---- special tokens: a byte trie over their texts ---- */
static uint64_t trie_hash(uint32_t node, uint8_t byte) {
    return hash_u64((uint64_t)node << 8 | byte);
}

static uint32_t trie_child(const struct sa_tokenizer *t, uint32_t node, uint8_t byte) {
    for (uint64_t i = trie_hash(node, byte) & t->trie_mask;; i = (i + 1) & t->trie_mask) {
        const struct sa_trie_slot *s = &t->trie[i];
        if (s->node == UINT32_MAX) return 0;
        if (s->node == node && s->byte == byte) return s->child;
    }
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const struct sa_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->text_len[x] != t->text_len[y]) return t->text_len[x] > t->text_len[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static enum sa_status build_specials(struct sa_tokenizer *t) {
    int32_t n = 0;
    uint64_t n_bytes = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->attr[id] & (SA_TOKEN_CONTROL | SA_TOKEN_USER_DEFINED | SA_TOKEN_UNKNOWN)) && t->text_len[id]) {
            n++;
            n_bytes += t->text_len[id];
        }
    free(t->special);
    free(t->trie);
    free(t->trie_token);
    t->trie = NULL;
    t->trie_token = NULL;
    t->special = malloc(sizeof *t->special * (size_t)(n ? n : 1));
    if (!t->special) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    t->n_special = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->attr[id] & (SA_TOKEN_CONTROL | SA_TOKEN_USER_DEFINED | SA_TOKEN_UNKNOWN)) && t->text_len[id])
            t->special[t->n_special++] = id;
    qsort_r(t->special, (size_t)n, sizeof *t->special, cmp_special, t);

    uint64_t cap = 64;
    while (cap < n_bytes * 2) cap *= 2;
    t->trie = malloc(cap * sizeof *t->trie);
    t->trie_token = malloc(sizeof *t->trie_token * (size_t)(n_bytes + 1));
    if (!t->trie || !t->trie_token) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    for (uint64_t i = 0; i < cap; i++) t->trie[i].node = UINT32_MAX;
    t->trie_mask = (uint32_t)(cap - 1);
    t->trie_token[0] = -1;
    t->n_trie_nodes = 1;
    memset(t->special_first, 0, sizeof t->special_first);
    for (int32_t k = 0; k < n; k++) {
        int32_t id = t->special[k];
        uint32_t node = 0;
        t->special_first[(uint8_t)t->text[id][0]] = true;
        for (uint32_t j = 0; j < t->text_len[id]; j++) {
            uint8_t b = (uint8_t)t->text[id][j];
            uint32_t c = trie_child(t, node, b);
            if (!c) {
                c = t->n_trie_nodes++;
                t->trie_token[c] = -1;
                uint64_t i = trie_hash(node, b) & t->trie_mask;
                while (t->trie[i].node != UINT32_MAX) i = (i + 1) & t->trie_mask;
                t->trie[i] = (struct sa_trie_slot){node, c, b};
            }
            node = c;
        }
        if (t->trie_token[node] < 0) t->trie_token[node] = id; /* same text twice: the first in order */
    }
    return SA_STATUS_OK;
}

static int32_t find_cstr(const struct sa_tokenizer *t, const char *s) {
    return sa_tok_lookup(t, s, strlen(s));
}

/* End of turn and end of generation. GGUF follows llama.cpp (llama_vocab::impl::load,
 * "auto-detect special tokens by text"): tokens spelled like EOT/EOG/FIM tokens are
 * forced to CONTROL, which changes how text containing them is split. The EOT pick is
 * in a fixed order (llama.cpp takes the first in hash-map order) so that <|im_end|>
 * beats <|endoftext|>. */
static void set_eog(struct sa_tokenizer *t) {
    static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<EOT>",
                                            "_<EOT>", "[EOT]", "<end_of_utterance>", "<|end_of_text|>",
                                            "<|endoftext|>"};
    static const char *const eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                            "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                                            "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
                                            "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>"};
    /* FIM groups: the first present name of each group is forced to CONTROL; pad/repo/sep end generation */
    static const char *const fim[6][7] = {
        {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "<|code_prefix|>", "<|prefix|>", NULL},
        {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "<|code_suffix|>", "<|suffix|>", NULL},
        {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "<|code_middle|>", "<|middle|>", NULL},
        {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL, NULL},
        {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL, NULL},
        {"<|file_sep|>", NULL, NULL, NULL, NULL, NULL, NULL},
    };
    bool gguf = !t->hf_rules;
    if (t->eot < 0)
        for (size_t i = 0; i < SA_ARRAY_LEN(eot_names) && t->eot < 0; i++) {
            int32_t id = find_cstr(t, eot_names[i]);
            if (id >= 0 && (gguf || !(t->attr[id] & SA_TOKEN_NORMAL))) t->eot = id;
        }
    if (gguf) {
        if (t->eot >= 0) t->attr[t->eot] |= SA_TOKEN_CONTROL;
        int32_t eom = find_cstr(t, "<|eom_id|>");
        if (eom >= 0) t->attr[eom] |= SA_TOKEN_CONTROL;
        for (int g = 0; g < 6; g++)
            for (int k = 0; k < 7 && fim[g][k]; k++) {
                int32_t id = find_cstr(t, fim[g][k]);
                if (id < 0) continue;
                t->attr[id] |= SA_TOKEN_CONTROL | (g >= 3 ? SA_TOKEN_EOG : 0);
                break;
            }
    }
    for (size_t i = 0; i < SA_ARRAY_LEN(eog_names); i++) {
        int32_t id = find_cstr(t, eog_names[i]);
        if (id < 0) continue;
        if (gguf) t->attr[id] |= SA_TOKEN_CONTROL | SA_TOKEN_EOG;
        else if (!(t->attr[id] & SA_TOKEN_NORMAL)) t->attr[id] |= SA_TOKEN_EOG;
    }
    if (gguf) {
        static const char *const user[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
        for (size_t i = 0; i < SA_ARRAY_LEN(user); i++) {
            int32_t id = find_cstr(t, user[i]);
            if (id >= 0) t->attr[id] = SA_TOKEN_USER_DEFINED;
        }
        int32_t end = find_cstr(t, "<|end|>"), ret = find_cstr(t, "<|return|>"), call = find_cstr(t, "<|call|>");
        int32_t calls = find_cstr(t, "<|calls|>"), flush = find_cstr(t, "<|flush|>");
        if (end >= 0 && ((ret >= 0 && (call >= 0 || calls >= 0)) || ((call >= 0 || calls >= 0) && flush >= 0)))
            t->attr[end] = SA_TOKEN_USER_DEFINED;
        int32_t s = find_cstr(t, "</s>");
        if (s >= 0 && find_cstr(t, "<|tool_response>") >= 0) t->attr[s] = SA_TOKEN_NORMAL;
    }
    if (t->eot < 0) t->eot = t->eos;
    if (t->eos >= 0) t->attr[t->eos] |= SA_TOKEN_EOG;
    if (t->eot >= 0) t->attr[t->eot] |= SA_TOKEN_EOG;
}

/* Called by both loaders once texts, attributes and kind are set. */
enum sa_status sa_tok_finish(struct sa_tokenizer *t) {
    enum sa_status st;
    if ((st = build_vocab_hash(t))) return st;
    for (int b = 0; b < 256; b++) {
        char s[8];
        int n;
        if (t->byte_level) {
            uint32_t cp = sa_bpe_byte_to_cp((uint8_t)b);
            n = cp < 0x80 ? snprintf(s, sizeof s, "%c", (char)cp)
                          : snprintf(s, sizeof s, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
        } else {
            n = snprintf(s, sizeof s, "<0x%02X>", b);
        }
        t->byte_id[b] = sa_tok_lookup(t, s, (size_t)n);
        if (!t->byte_level && t->byte_id[b] >= 0 && (t->attr[t->byte_id[b]] & SA_TOKEN_NORMAL) && t->byte_fallback)
            t->attr[t->byte_id[b]] = (t->attr[t->byte_id[b]] & ~SA_TOKEN_NORMAL) | SA_TOKEN_BYTE;
    }
    if (t->unk >= 0 && !(t->attr[t->unk] & SA_TOKEN_UNKNOWN) && (t->attr[t->unk] & SA_TOKEN_NORMAL) &&
        t->kind == SA_TOKENIZER_SPM)
        t->attr[t->unk] = SA_TOKEN_UNKNOWN;
    set_eog(t);
    return build_specials(t);
}

void sa_tokenizer_free(struct sa_tokenizer *t) {
    if (!t) return;
    sa_bpe_pretok_free(t);
    free(t->trie_token);
    free(t->trie);
    free(t->special);
    free(t->merges);
    free(t->vocab_hash);
    free(t->strings);
    free(t->scores);
    free(t->attr);
    free(t->text_len);
    free(t->text);
    free(t);
}

/* ---- GGUF ---- */
static int32_t gguf_id(const struct sa_gguf *g, const char *key, int32_t n_vocab) {
    int64_t v;
    if (!sa_gguf_get_i64(g, key, &v)) return -1;
    if (v < 0 || v >= n_vocab) {
        sa_log(SA_LOG_WARN, "tokenizer: %s = %lld is outside the vocabulary; ignored", key, (long long)v);
        return -1;
    }
    return (int32_t)v;
}

static enum sa_status gguf_array(const struct sa_gguf *g, const char *key, enum sa_gguf_type type, uint64_t n,
                                 bool required, int64_t *idx) {
    *idx = sa_gguf_find_key(g, key);
    if (*idx < 0) return required ? sa_error(SA_STATUS_BAD_FILE, "GGUF: missing %s", key) : SA_STATUS_OK;
    if (sa_gguf_kv_type(g, *idx) != SA_GGUF_TYPE_ARRAY || sa_gguf_arr_type(g, *idx) != type)
        return sa_error(SA_STATUS_BAD_FILE, "GGUF: %s has the wrong type", key);
    if (n && sa_gguf_arr_n(g, *idx) != n)
        return sa_error(SA_STATUS_BAD_FILE, "GGUF: %s has %llu entries, expected %llu", key,
                        (unsigned long long)sa_gguf_arr_n(g, *idx), (unsigned long long)n);
    return SA_STATUS_OK;
}

static enum sa_status load_gguf(const struct sa_gguf *g, struct sa_tokenizer *t, const char *model) {
    enum sa_status st;
    int64_t ki, ks, kt, km;
    uint64_t n = (uint64_t)t->n_vocab;
    if ((st = gguf_array(g, "tokenizer.ggml.tokens", SA_GGUF_TYPE_STRING, n, true, &ki))) return st;
    if ((st = gguf_array(g, "tokenizer.ggml.scores", SA_GGUF_TYPE_FLOAT32, n, false, &ks))) return st;
    if ((st = gguf_array(g, "tokenizer.ggml.token_type", SA_GGUF_TYPE_INT32, n, false, &kt))) return st;
    if ((st = gguf_array(g, "tokenizer.ggml.merges", SA_GGUF_TYPE_STRING, 0, false, &km))) return st;

    const char **ptr = malloc(n * sizeof *ptr);
    uint32_t *len = malloc(n * sizeof *len);
    if (!ptr || !len) {
        free(ptr);
        free(len);
        return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    for (uint64_t i = 0; i < n; i++) {
        struct sa_gguf_str s = sa_gguf_arr_str(g, ki, i);
        ptr[i] = s.ptr;
        len[i] = s.len > UINT32_MAX ? 0 : (uint32_t)s.len;
    }
    st = sa_tok_set_strings(t, ptr, len);
    free(ptr);
    free(len);
    if (st) return st;

    if (ks >= 0) {
        t->scores = malloc(n * sizeof *t->scores);
        if (!t->scores) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
        memcpy(t->scores, sa_gguf_arr_data(g, ks), n * sizeof *t->scores);
    }
    const int32_t *types = kt >= 0 ? sa_gguf_arr_data(g, kt) : NULL;
    for (uint64_t i = 0; i < n; i++) {
        int32_t ty;
        if (types) memcpy(&ty, types + i, sizeof ty);
        else ty = 1;
        switch (ty) { /* llama.cpp LLAMA_TOKEN_TYPE_* */
        case 2: t->attr[i] = SA_TOKEN_UNKNOWN; break;
        case 3: t->attr[i] = SA_TOKEN_CONTROL; break;
        case 4: t->attr[i] = SA_TOKEN_USER_DEFINED; break;
        case 5: t->attr[i] = SA_TOKEN_UNUSED; break;
        case 6: t->attr[i] = SA_TOKEN_BYTE; break;
        default: t->attr[i] = SA_TOKEN_NORMAL; break;
        }
    }

    if (!strcmp(model, "gpt2")) {
        t->kind = SA_TOKENIZER_BPE;
        t->byte_level = true;
        char *pre = sa_gguf_get_string(g, "tokenizer.ggml.pre");
        st = sa_bpe_pretok_from_name(t, pre ? pre : "default");
        bool llama3 = t->ignore_merges;
        free(pre);
        if (st) return st;
        t->add_bos = llama3; /* llama.cpp's defaults when the keys are absent */
    } else {
        t->kind = SA_TOKENIZER_SPM;
        t->escape_spaces = true;
        t->add_space_prefix = true;
        t->add_bos = true;
        t->pre[0] = 0;
    }
    (void)sa_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    (void)sa_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
    (void)sa_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);
    int32_t nv = t->n_vocab;
    t->bos = gguf_id(g, "tokenizer.ggml.bos_token_id", nv);
    t->eos = gguf_id(g, "tokenizer.ggml.eos_token_id", nv);
    t->eot = gguf_id(g, "tokenizer.ggml.eot_token_id", nv);
    t->pad = gguf_id(g, "tokenizer.ggml.padding_token_id", nv);
    t->unk = gguf_id(g, "tokenizer.ggml.unknown_token_id", nv);
    int32_t eom = gguf_id(g, "tokenizer.ggml.eom_token_id", nv);

    if ((st = build_vocab_hash(t))) return st;
    if (km >= 0 && t->kind == SA_TOKENIZER_BPE) {
        uint64_t nm = sa_gguf_arr_n(g, km);
        if (nm > (uint64_t)INT32_MAX) return sa_error(SA_STATUS_BAD_FILE, "GGUF: too many merges");
        if ((st = sa_tok_merges_init(t, nm))) return st;
        for (uint64_t r = 0; r < nm; r++) {
            struct sa_gguf_str s = sa_gguf_arr_str(g, km, r);
            /* "left right": split at the first space after the first byte (llama.cpp) */
            const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
            if (!sp) return sa_error(SA_STATUS_BAD_FILE, "GGUF: merge %llu has no space", (unsigned long long)r);
            size_t ll = (size_t)(sp - s.ptr), rl = s.len - ll - 1;
            int32_t a = sa_tok_lookup(t, s.ptr, ll), b = sa_tok_lookup(t, sp + 1, rl);
            if (a < 0 || b < 0) continue; /* pieces outside the vocabulary can never be formed */
            char buf[512];
            int32_t m;
            if (ll + rl <= sizeof buf) {
                memcpy(buf, s.ptr, ll);
                memcpy(buf + ll, sp + 1, rl);
                m = sa_tok_lookup(t, buf, ll + rl);
            } else {
                char *big = malloc(ll + rl);
                if (!big) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
                memcpy(big, s.ptr, ll);
                memcpy(big + ll, sp + 1, rl);
                m = sa_tok_lookup(t, big, ll + rl);
                free(big);
            }
            if (m < 0) continue; /* the merged piece is not a token: never usable */
            if ((st = sa_tok_add_merge(t, a, b, (int32_t)r, m))) return st;
        }
    }
    if ((st = sa_tok_finish(t))) return st;
    if (eom >= 0) t->attr[eom] |= SA_TOKEN_EOG;
    return SA_STATUS_OK;
}

enum sa_status sa_tokenizer_load_gguf(const struct sa_gguf *g, struct sa_tokenizer **out) {
    *out = NULL;
    if (!g) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_tokenizer_load_gguf: NULL gguf");
    char *model = sa_gguf_get_string(g, "tokenizer.ggml.model");
    if (!model) return sa_error(SA_STATUS_NOT_FOUND, "GGUF: no tokenizer (tokenizer.ggml.model missing)");
    if (strcmp(model, "gpt2") && strcmp(model, "llama")) {
        enum sa_status st = sa_error(SA_STATUS_UNSUPPORTED,
                                     "GGUF: tokenizer model '%s' is not supported (gpt2 and llama are)", model);
        free(model);
        return st;
    }
    int64_t ki = sa_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (ki < 0 || sa_gguf_kv_type(g, ki) != SA_GGUF_TYPE_ARRAY) {
        free(model);
        return sa_error(SA_STATUS_BAD_FILE, "GGUF: missing tokenizer.ggml.tokens");
    }
    uint64_t n = sa_gguf_arr_n(g, ki);
    if (n == 0 || n > (1u << 26)) {
        free(model);
        return sa_error(SA_STATUS_BAD_FILE, "GGUF: %llu tokens", (unsigned long long)n);
    }
    struct sa_tokenizer *t;
    enum sa_status st = sa_tok_alloc((int32_t)n, &t);
    if (!st) st = load_gguf(g, t, model);
    free(model);
    if (st) {
        sa_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SA_STATUS_OK;
}

/* ---- accessors ---- */
enum sa_tokenizer_kind sa_tokenizer_kind(const struct sa_tokenizer *t) { return t->kind; }
int32_t sa_tokenizer_n_vocab(const struct sa_tokenizer *t) { return t->n_vocab; }
const char *sa_tokenizer_pre(const struct sa_tokenizer *t) { return t->pre; }
int32_t sa_tokenizer_bos(const struct sa_tokenizer *t) { return t->bos; }
int32_t sa_tokenizer_eos(const struct sa_tokenizer *t) { return t->eos; }
int32_t sa_tokenizer_eot(const struct sa_tokenizer *t) { return t->eot; }
int32_t sa_tokenizer_pad(const struct sa_tokenizer *t) { return t->pad; }
bool sa_tokenizer_add_bos(const struct sa_tokenizer *t) { return t->add_bos && t->bos >= 0; }
bool sa_tokenizer_add_eos(const struct sa_tokenizer *t) { return t->add_eos && t->eos >= 0; }

bool sa_tokenizer_is_eog(const struct sa_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->attr[id] & SA_TOKEN_EOG);
}

int sa_tokenizer_attr(const struct sa_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->attr[id] & 0xff : 0;
}

const char *sa_tokenizer_vocab_str(const struct sa_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->text[id] : NULL;
}

int32_t sa_tokenizer_find(const struct sa_tokenizer *t, const char *s) {
    return s ? sa_tok_lookup(t, s, strlen(s)) : -1;
}

/* ---- encode ---- */
struct span {
    size_t a, e;  /* bytes consumed (token text plus stripped whitespace) */
    int32_t id;
};

static bool allowed(const struct sa_tokenizer *t, int32_t id, bool parse_special) {
    return parse_special || !(t->attr[id] & (SA_TOKEN_CONTROL | SA_TOKEN_UNKNOWN));
}

static int cmp_cand(const void *a, const void *b, void *ctx) {
    const struct span *x = a, *y = b;
    const int32_t *order = ctx;
    size_t lx = x->e - x->a, ly = y->e - y->a;
    if (lx != ly) return lx > ly ? -1 : 1;
    if (order[x->id] != order[y->id]) return order[x->id] < order[y->id] ? -1 : 1;
    return (x->a > y->a) - (x->a < y->a);
}

static int cmp_pos(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    return (x->a > y->a) - (x->a < y->a);
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Finds the special tokens in text, as spans sorted by position. GGUF: llama.cpp's
 * tokenizer_st_partition (each token, longest first, takes its leftmost occurrences in
 * what is left); tokenizer.json: leftmost-longest (tokenizers' AddedVocabulary). */
static enum sa_status find_specials(const struct sa_tokenizer *t, const char *text, size_t len, bool parse_special,
                                    struct span **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!t->n_special || !len) return SA_STATUS_OK;
    struct span *v = NULL;
    size_t n = 0, cap = 0;
    enum sa_status st = SA_STATUS_OK;
#define PUSH_SPAN(A, E, ID)                                                              \
    do {                                                                                 \
        if (n == cap) {                                                                  \
            size_t c2 = cap ? 2 * cap : 16;                                              \
            struct span *p2 = realloc(v, c2 * sizeof *p2);                               \
            if (!p2) {                                                                   \
                st = sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");          \
                goto fail;                                                               \
            }                                                                            \
            v = p2;                                                                      \
            cap = c2;                                                                    \
        }                                                                                \
        v[n++] = (struct span){(A), (E), (ID)};                                          \
    } while (0)

    if (t->hf_rules) {
        size_t p = 0, prev_end = 0;
        while (p < len) {
            if (!t->special_first[(uint8_t)text[p]]) {
                p++;
                continue;
            }
            uint32_t node = 0;
            int32_t best = -1;
            size_t best_len = 0;
            for (size_t q = p; q < len; q++) {
                node = trie_child(t, node, (uint8_t)text[q]);
                if (!node) break;
                int32_t id = t->trie_token[node];
                if (id >= 0 && allowed(t, id, parse_special)) {
                    best = id;
                    best_len = q + 1 - p;
                }
            }
            if (best < 0) {
                p++;
                continue;
            }
            size_t a = p, e = p + best_len;
            if (t->attr[best] & SA_TOKEN_LSTRIP)
                while (a > prev_end && is_ws(text[a - 1])) a--;
            if (t->attr[best] & SA_TOKEN_RSTRIP)
                while (e < len && is_ws(text[e])) e++;
            PUSH_SPAN(a, e, best);
            p = prev_end = e;
        }
        *out = v;
        *n_out = n;
        return SA_STATUS_OK;
    }

    /* llama.cpp order: all candidates, then accept by (length desc, token order, position) */
    for (size_t p = 0; p < len; p++) {
        if (!t->special_first[(uint8_t)text[p]]) continue;
        uint32_t node = 0;
        for (size_t q = p; q < len; q++) {
            node = trie_child(t, node, (uint8_t)text[q]);
            if (!node) break;
            int32_t id = t->trie_token[node];
            if (id >= 0 && allowed(t, id, parse_special)) PUSH_SPAN(p, q + 1, id);
        }
    }
    if (!n) goto done;
    {
        int32_t *order = malloc(sizeof *order * (size_t)t->n_vocab);
        uint8_t *used = calloc(len, 1);
        if (!order || !used) {
            free(order);
            free(used);
            st = sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
            goto fail;
        }
        for (int32_t k = 0; k < t->n_special; k++) order[t->special[k]] = k;
        qsort_r(v, n, sizeof *v, cmp_cand, order);
        size_t m = 0;
        for (size_t k = 0; k < n; k++) {
            size_t a = v[k].a, e = v[k].e;
            bool free_ = true;
            for (size_t i = a; i < e && free_; i++) free_ = !used[i];
            if (!free_) continue;
            int32_t id = v[k].id;
            if (t->attr[id] & SA_TOKEN_LSTRIP)
                while (a > 0 && !used[a - 1] && isspace((unsigned char)text[a - 1])) a--;
            if (t->attr[id] & SA_TOKEN_RSTRIP)
                while (e < len && !used[e] && isspace((unsigned char)text[e])) e++;
            memset(used + a, 1, e - a);
            v[m++] = (struct span){a, e, id};
        }
        n = m;
        free(order);
        free(used);
        qsort(v, n, sizeof *v, cmp_pos);
    }
done:
    *out = v;
    *n_out = n;
    return SA_STATUS_OK;
fail:
    free(v);
    return st;
#undef PUSH_SPAN
}

/* Encodes a fragment of plain text with the model's algorithm. */
static enum sa_status encode_fragment(const struct sa_tokenizer *t, const char *s, size_t n, bool prev_special,
                                      struct sa_ivec *out) {
    if (t->kind == SA_TOKENIZER_BPE) return sa_bpe_encode_fragment(t, s, n, out);
    /* SPM: dummy prefix and ' ' -> U+2581 (llama.cpp llama_escape_whitespace) */
    bool prefix = t->add_space_prefix && (prev_special || t->hf_rules);
    size_t cap = 3 * n + 4;
    char *buf = malloc(cap);
    if (!buf) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    size_t k = 0;
    static const char marker[] = "\xE2\x96\x81";
    if (prefix) {
        if (t->escape_spaces) {
            memcpy(buf, marker, 3);
            k = 3;
        } else {
            buf[k++] = ' ';
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' && t->escape_spaces) {
            memcpy(buf + k, marker, 3);
            k += 3;
        } else {
            buf[k++] = s[i];
        }
    }
    enum sa_status st;
    if (t->merges && !t->scores)
        st = sa_bpe_encode_chars(t, buf, k, out);
    else
        st = sa_spm_encode_fragment(t, buf, k, out);
    free(buf);
    return st;
}

enum sa_status sa_tokenize(const struct sa_tokenizer *t, const char *text, size_t len, struct sa_tokenize_opts opts,
                           int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!t) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_tokenize: NULL tokenizer");
    if (!text && len) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_tokenize: NULL text");
    struct sa_ivec out = {0};
    struct span *sp = NULL;
    size_t n_sp = 0;
    enum sa_status st = SA_STATUS_OK;
    if (opts.add_special && sa_tokenizer_add_bos(t) && (st = sa_ivec_push(&out, t->bos))) goto fail;
    if ((st = find_specials(t, text, len, opts.parse_special, &sp, &n_sp))) goto fail;
    size_t pos = 0;
    bool prev_special = true;
    for (size_t k = 0; k <= n_sp; k++) {
        size_t end = k < n_sp ? sp[k].a : len;
        if (end > pos) {
            if ((st = encode_fragment(t, text + pos, end - pos, prev_special, &out))) goto fail;
            prev_special = false;
        }
        if (k < n_sp) {
            if ((st = sa_ivec_push(&out, sp[k].id))) goto fail;
            prev_special = true;
            pos = sp[k].e;
        }
    }
    if (opts.add_special && sa_tokenizer_add_eos(t) && (st = sa_ivec_push(&out, t->eos))) goto fail;
    free(sp);
    if (!out.data) { /* never hand back NULL on success */
        out.data = malloc(sizeof *out.data);
        if (!out.data) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    *ids = out.data;
    *n_ids = out.len;
    return SA_STATUS_OK;
fail:
    free(sp);
    sa_ivec_free(&out);
    return st;
}

/* ---- decode ---- */
static size_t put(char *buf, size_t cap, size_t k, const char *s, size_t n) {
    if (k + n <= cap) memcpy(buf + k, s, n);
    return k + n;
}

size_t sa_token_to_piece(const struct sa_tokenizer *t, int32_t id, bool special, char *buf, size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    int a = t->attr[id];
    const char *s = t->text[id];
    size_t n = t->text_len[id], k = 0;
    /* llama.cpp token_to_piece order: user-defined (and, with special, control) text as
     * stored; then normal pieces; a NORMAL token forced to CONTROL still decodes as text */
    if ((a & SA_TOKEN_USER_DEFINED) || (special && (a & (SA_TOKEN_CONTROL | SA_TOKEN_UNKNOWN)))) {
        k = put(buf, cap, 0, s, n);
    } else if (a & SA_TOKEN_BYTE) {
        unsigned v = 0;
        if (n == 6 && sscanf(s, "<0x%2X>", &v) == 1) {
            char c = (char)v;
            k = put(buf, cap, 0, &c, 1);
        } else {
            k = put(buf, cap, 0, s, n);
        }
    } else if (a & SA_TOKEN_NORMAL) {
        if (t->byte_level) {
            for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char)s[i];
                uint32_t cp = c;
                size_t l = 1;
                if (c >= 0xC0 && c < 0xE0 && i + 1 < n) {
                    cp = ((uint32_t)(c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
                    l = 2;
                }
                int b = sa_bpe_cp_to_byte(cp);
                if (b >= 0) {
                    char ch = (char)b;
                    k = put(buf, cap, k, &ch, 1);
                } else { /* not from the byte alphabet: as stored */
                    size_t sl = (size_t)sa_utf8_seq_len(c);
                    if (!sl || sl > n - i) sl = 1;
                    k = put(buf, cap, k, s + i, sl);
                    l = sl;
                }
                i += l;
            }
        } else {
            for (size_t i = 0; i < n;) {
                if (n - i >= 3 && !memcmp(s + i, "\xE2\x96\x81", 3)) {
                    k = put(buf, cap, k, " ", 1);
                    i += 3;
                } else {
                    k = put(buf, cap, k, s + i, 1);
                    i++;
                }
            }
        }
    }
    return k; /* UNUSED tokens decode to nothing */
}

static enum sa_status piece_into(const struct sa_tokenizer *t, int32_t id, bool special, struct sa_buf *b) {
    char small[64];
    size_t n = sa_token_to_piece(t, id, special, small, sizeof small);
    if (n <= sizeof small) return sa_buf_append(b, small, n);
    char *big = malloc(n);
    if (!big) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    sa_token_to_piece(t, id, special, big, n);
    enum sa_status st = sa_buf_append(b, big, n);
    free(big);
    return st;
}

enum sa_status sa_detokenize(const struct sa_tokenizer *t, const int32_t *ids, size_t n_ids,
                             struct sa_detokenize_opts opts, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    if (!t || (!ids && n_ids)) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_detokenize: NULL argument");
    struct sa_buf b;
    sa_buf_init(&b, 0);
    bool strip = opts.strip_leading_space;
    enum sa_status st = sa_buf_append(&b, "", 0);
    for (size_t i = 0; i < n_ids && !st; i++) {
        size_t before = b.len;
        st = piece_into(t, ids[i], opts.special, &b);
        if (!st && strip && b.len > before) {
            /* the first piece with text: drop the one space the encoder's dummy prefix added */
            if (b.data[before] == ' ') {
                memmove(b.data + before, b.data + before + 1, b.len - before - 1);
                b.len--;
                b.data[b.len] = 0;
            }
            strip = false;
        }
    }
    if (st) {
        sa_buf_free(&b);
        return st;
    }
    *text = sa_buf_take(&b, len);
    return SA_STATUS_OK;
}

/* ---- streaming decode ---- */
struct sa_detok_stream {
    const struct sa_tokenizer *t;
    struct sa_detokenize_opts opts;
    bool strip; /* still to strip the leading space */
    struct sa_buf pending; /* held-back bytes of an incomplete UTF-8 character */
    struct sa_buf out;     /* the bytes returned by the last call */
};

enum sa_status sa_detok_stream_init(const struct sa_tokenizer *t, struct sa_detokenize_opts opts,
                                    struct sa_detok_stream **out) {
    *out = NULL;
    if (!t) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_detok_stream_init: NULL tokenizer");
    struct sa_detok_stream *s = calloc(1, sizeof *s);
    if (!s) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    s->t = t;
    s->opts = opts;
    s->strip = opts.strip_leading_space;
    sa_buf_init(&s->pending, 0);
    sa_buf_init(&s->out, 0);
    *out = s;
    return SA_STATUS_OK;
}

void sa_detok_stream_free(struct sa_detok_stream *s) {
    if (!s) return;
    sa_buf_free(&s->pending);
    sa_buf_free(&s->out);
    free(s);
}

/* Length of the prefix of s that ends on a character boundary: an incomplete multi-byte
 * sequence at the very end is held back; invalid bytes pass through as they are. */
static size_t complete_prefix(const unsigned char *s, size_t n) {
    size_t lo = n > 3 ? n - 3 : 0;
    for (size_t i = n; i > lo; i--) {
        unsigned char c = s[i - 1];
        if ((c & 0xC0) == 0x80) continue;
        size_t need = c >= 0xF0 && c <= 0xF7 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (c >= 0xF8) need = 1;
        return need > n - (i - 1) ? i - 1 : n;
    }
    return n;
}

enum sa_status sa_detok_stream_push(struct sa_detok_stream *s, int32_t id, const char **out, size_t *out_len) {
    *out = "";
    *out_len = 0;
    size_t before = s->pending.len;
    enum sa_status st = piece_into(s->t, id, s->opts.special, &s->pending);
    if (st) return st;
    if (s->strip && s->pending.len > before) {
        if (s->pending.data[before] == ' ') {
            memmove(s->pending.data + before, s->pending.data + before + 1, s->pending.len - before - 1);
            s->pending.len--;
        }
        s->strip = false;
    }
    size_t k = complete_prefix((const unsigned char *)s->pending.data, s->pending.len);
    sa_buf_clear(&s->out);
    if ((st = sa_buf_append(&s->out, s->pending.data, k))) return st;
    memmove(s->pending.data, s->pending.data + k, s->pending.len - k);
    s->pending.len -= k;
    *out = s->out.data ? s->out.data : "";
    *out_len = k;
    return SA_STATUS_OK;
}

enum sa_status sa_detok_stream_flush(struct sa_detok_stream *s, const char **out, size_t *out_len) {
    sa_buf_clear(&s->out);
    enum sa_status st = sa_buf_append(&s->out, s->pending.data ? s->pending.data : "", s->pending.len);
    if (st) return st;
    sa_buf_clear(&s->pending);
    s->strip = s->opts.strip_leading_space;
    *out = s->out.data ? s->out.data : "";
    *out_len = s->out.len;
    return SA_STATUS_OK;
}
