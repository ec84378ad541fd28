/* tokenizer_impl.h: the internal interface between the tokenizer core (tokenizer.c:
 * vocabulary, loading, special tokens, decode) and the encoding algorithms
 * (bpe.c: byte-level BPE; spm.c: SentencePiece-style BPE). Not public. */
#ifndef SA_TOKENIZER_IMPL_H
#define SA_TOKENIZER_IMPL_H

#include "sa/tokenizer.h"

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
/* Byte-level BPE: pre-tokenizes `text` with the model's regexes, maps bytes to the GPT-2
 * unicode alphabet and merges by rank. Appends ids to `out`. */
SA_NODISCARD enum sa_status sa_bpe_encode_fragment(const struct sa_tokenizer *t, const char *text, size_t len,
                                                   struct sa_ivec *out);

#endif
