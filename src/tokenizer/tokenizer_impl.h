/* tokenizer_impl.h: the internal interface between the tokenizer core (tokenizer.c:
 * vocabulary, loading, special tokens, decode) and the encoding algorithms
 * (bpe.c: byte-level BPE and merge-rank BPE; spm.c: SentencePiece-style BPE by scores).
 * Not public. spm.c uses only the sa_tok_* accessors; bpe.c also reads struct
 * sa_tokenizer (defined here so that both halves of the byte-level path share it). */
#ifndef SA_TOKENIZER_IMPL_H
#define SA_TOKENIZER_IMPL_H

#include "sa/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Growable vector of token ids. */
struct sa_ivec {
    int32_t *data;
    size_t len, cap;
};
SA_NODISCARD enum sa_status sa_ivec_push(struct sa_ivec *v, int32_t x);
void sa_ivec_free(struct sa_ivec *v);

/* ---- provided by tokenizer.c ---- */
/* Id of the vocabulary entry whose stored text is exactly s[0..len), or -1. O(1) average. */
int32_t sa_tok_lookup(const struct sa_tokenizer *t, const char *s, size_t len);
/* Score of a token (SPM merge priority: higher merges first); 0 when the model has none. */
float sa_tok_score(const struct sa_tokenizer *t, int32_t id);
/* Id of the byte-fallback token <0xXX> for byte b, or -1. */
int32_t sa_tok_byte_id(const struct sa_tokenizer *t, uint8_t b);
/* Unknown-token id, or -1. */
int32_t sa_tok_unk(const struct sa_tokenizer *t);
/* Rank of the merge (left, right) for byte-level BPE (lower merges first), or -1. */
int32_t sa_tok_merge_rank(const struct sa_tokenizer *t, int32_t left, int32_t right);

/* ---- the algorithms: encode one fragment of plain text (no special tokens inside) ---- */
/* SPM: `text` is already normalised (spaces replaced by U+2581, dummy prefix added by the
 * caller when the model asks for it). Appends ids to `out`. */
SA_NODISCARD enum sa_status sa_spm_encode_fragment(const struct sa_tokenizer *t, const char *text, size_t len,
                                                   struct sa_ivec *out);
/* spm.c: SPM normalisation (llama.cpp llama_escape_whitespace): replaces the contents of
 * `out` with `text` in which every ' ' is U+2581 (bytes E2 96 81), preceded by one U+2581
 * when `add_space_prefix` (the dummy prefix: pass the model's add_space_prefix && the
 * fragment is the first or follows a special token). Other bytes, invalid UTF-8 included,
 * are copied. */
struct sa_buf;
SA_NODISCARD enum sa_status sa_spm_normalize(const char *text, size_t len, bool add_space_prefix, struct sa_buf *out);
/* Byte-level BPE: pre-tokenizes `text` with the model's regexes, maps bytes to the GPT-2
 * unicode alphabet and merges by rank. Appends ids to `out`. */
SA_NODISCARD enum sa_status sa_bpe_encode_fragment(const struct sa_tokenizer *t, const char *text, size_t len,
                                                   struct sa_ivec *out);

/* ---- shared between tokenizer.c and bpe.c ---- */

/* Internal token attribute bits, above the public SA_TOKEN_* flags. */
enum {
    SA_TOKEN_LSTRIP = 1 << 8, /* an added token that swallows whitespace on its left */
    SA_TOKEN_RSTRIP = 1 << 9, /* ... and on its right */
    SA_TOKEN_EOG = 1 << 10,   /* ends generation */
};

/* One step of a pre-tokenizer pipeline (tokenizers' Split/Digits/ByteLevel regex): each
 * step splits every piece that the previous step produced; a later step never sees across
 * the boundaries of an earlier one (llama.cpp applies its regex list the same way). */
enum sa_split_behavior {
    SA_SPLIT_ISOLATED = 0,     /* matches and the gaps between them become pieces */
    SA_SPLIT_REMOVED,          /* gaps become pieces, matches are dropped */
    SA_SPLIT_MERGED_PREV,      /* each match is glued to the gap before it */
    SA_SPLIT_MERGED_NEXT,      /* each match is glued to the gap after it */
    SA_SPLIT_CONTIGUOUS,       /* runs of adjacent matches become one piece */
};
struct sa_pretok_step {
    void *code; /* pcre2_code_8 * (JIT-compiled when the platform allows) */
    char *pattern; /* the source text (malloc'd), for writing tokenizer.json back */
    enum sa_split_behavior behavior;
    bool invert;  /* the pattern describes the pieces' complement */
    bool literal; /* `pattern` is a plain string, not a regex */
};

/* An edge of the special-token trie: (node, byte) -> child node. */
struct sa_trie_slot {
    uint32_t node; /* UINT32_MAX: empty */
    uint32_t child;
    uint8_t byte;
};

/* Open-addressing map (left id, right id) -> (rank, merged id) of the BPE merges. */
struct sa_merge_slot {
    uint64_t key; /* (uint64_t)left << 32 | (uint32_t)right; UINT64_MAX: empty */
    int32_t rank;
    int32_t merged;
};

struct sa_tokenizer {
    enum sa_tokenizer_kind kind;
    int32_t n_vocab;
    const char **text;  /* (n_vocab) token strings as stored, NUL-terminated, into `strings` */
    uint32_t *text_len; /* (n_vocab) */
    float *scores;      /* (n_vocab) or NULL */
    int *attr;          /* (n_vocab) SA_TOKEN_* bits */
    char *strings;      /* one block holding every token string */

    int32_t *vocab_hash; /* (vocab_mask + 1) ids, -1 empty */
    uint32_t vocab_mask;

    struct sa_merge_slot *merges; /* (merge_mask + 1) or NULL */
    uint64_t merge_mask;
    int32_t n_merges;

    int32_t byte_id[256];   /* SPM: <0xXX> tokens; byte-level BPE: the token of byte b's GPT-2 char */
    bool byte_level;        /* GPT-2 byte<->unicode mapping of pieces (SA_TOKENIZER_BPE) */
    bool byte_fallback;     /* merge-rank BPE over characters falls back to <0xXX> (HF Gemma/Llama 2 json) */
    bool ignore_merges;     /* a pre-token that is itself in the vocabulary is taken whole (Llama 3) */
    bool add_space_prefix;  /* SPM: prepend U+2581 to text that follows BOS/special tokens */
    bool escape_spaces;     /* SPM: ' ' -> U+2581 before encoding */
    bool hf_rules;          /* tokenizer.json semantics: added tokens leftmost-longest, NFC when asked */
    bool nfc;               /* normalise fragments to NFC (tokenizer.json "NFC" normalizer) */
    bool add_prefix_space;  /* ByteLevel(add_prefix_space): a space before text not starting with one */
    bool add_bos, add_eos;
    int32_t bos, eos, eot, pad, unk;
    char pre[32];

    struct sa_pretok_step *steps; /* (n_steps) */
    int n_steps;

    /* Special/added tokens (control, user-defined, unknown) in a byte trie for matching. */
    int32_t *special;   /* (n_special) ids, longest text first, then by id */
    int32_t n_special;
    struct sa_trie_slot *trie; /* (trie_mask + 1) edges (node, byte) -> node */
    uint32_t trie_mask;
    int32_t *trie_token; /* (n_trie_nodes) token ending at a node, or -1 */
    uint32_t n_trie_nodes;
    bool special_first[256]; /* some special token starts with this byte */
};

/* bpe.c: builds the pipeline for a llama.cpp pre-tokenizer name ("smollm", "llama-bpe",
 * "qwen2", "gpt2", "default", ...). SA_STATUS_UNSUPPORTED for an unknown name. */
SA_NODISCARD enum sa_status sa_bpe_pretok_from_name(struct sa_tokenizer *t, const char *pre);
/* bpe.c: appends one step; `pattern` is a regex (or a literal when `literal`). */
SA_NODISCARD enum sa_status sa_bpe_pretok_add(struct sa_tokenizer *t, const char *pattern, bool literal,
                                              enum sa_split_behavior behavior, bool invert);
void sa_bpe_pretok_free(struct sa_tokenizer *t);
/* bpe.c: merge-rank BPE over the UTF-8 characters of `text` (no byte-level mapping), for
 * tokenizer.json BPE models without ByteLevel (Gemma, Llama 2): unknown characters fall
 * back to <0xXX> tokens or unk. Appends ids to `out`. */
SA_NODISCARD enum sa_status sa_bpe_encode_chars(const struct sa_tokenizer *t, const char *text, size_t len,
                                                struct sa_ivec *out);
/* bpe.c: GPT-2 byte -> code point, and code point -> byte (-1 if none). */
uint32_t sa_bpe_byte_to_cp(uint8_t b);
int sa_bpe_cp_to_byte(uint32_t cp);

/* tokenizer.c, for the loaders (tokenizer.c: GGUF, tokenizer_hf.c: tokenizer.json): */
/* A tokenizer of n_vocab empty NORMAL-less tokens (attr 0), ids -1. */
SA_NODISCARD enum sa_status sa_tok_alloc(int32_t n_vocab, struct sa_tokenizer **out);
/* Copies the token strings (n_vocab pointers and lengths) into one block. */
SA_NODISCARD enum sa_status sa_tok_set_strings(struct sa_tokenizer *t, const char *const *ptr, const uint32_t *len);
/* Sizes the merge map for n merges. */
SA_NODISCARD enum sa_status sa_tok_merges_init(struct sa_tokenizer *t, uint64_t n);
/* Builds the lookup structures once texts, attributes, kind and ids are set: vocabulary
 * hash, byte ids, special-token trie, EOT and the end-of-generation set. */
SA_NODISCARD enum sa_status sa_tok_finish(struct sa_tokenizer *t);
/* tokenizer.c: adds a merge (a duplicate pair keeps its first rank). */
SA_NODISCARD enum sa_status sa_tok_add_merge(struct sa_tokenizer *t, int32_t left, int32_t right, int32_t rank,
                                             int32_t merged);
/* tokenizer.c: the merged id of (left, right) with its rank in *rank, or -1. */
int32_t sa_tok_merge(const struct sa_tokenizer *t, int32_t left, int32_t right, int32_t *rank);

#endif
