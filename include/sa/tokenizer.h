/* tokenizer.h: byte-level BPE (GPT-2 style: SmolLM2, Llama 3, Qwen2) and SentencePiece-
 * style BPE (Gemma, Llama 2: byte fallback, the U+2581 space marker, merges by score),
 * loaded from GGUF (tokenizer.ggml.*) or a Hugging Face tokenizer.json. Encode, decode,
 * special/added tokens, and a streaming decoder that only emits whole UTF-8 characters. */
#ifndef SA_TOKENIZER_H
#define SA_TOKENIZER_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_gguf;
struct sa_tokenizer; /* opaque, immutable after load: safe to share between threads */

enum sa_tokenizer_kind {
    SA_TOKENIZER_BPE = 1, /* byte-level BPE (GGUF "gpt2") */
    SA_TOKENIZER_SPM = 2, /* SentencePiece-style BPE (GGUF "llama", Gemma) */
};

/* Token attributes (bit flags). */
enum {
    SA_TOKEN_NORMAL = 1 << 0,
    SA_TOKEN_CONTROL = 1 << 1,      /* <s>, <|im_end|>, <end_of_turn>: special, never split from text unless parse_special */
    SA_TOKEN_USER_DEFINED = 1 << 2, /* added tokens matched in raw text */
    SA_TOKEN_BYTE = 1 << 3,         /* <0xAB> byte-fallback pieces */
    SA_TOKEN_UNKNOWN = 1 << 4,
    SA_TOKEN_UNUSED = 1 << 5,
};

SA_NODISCARD enum sa_status sa_tokenizer_load_gguf(const struct sa_gguf *g, struct sa_tokenizer **out);
/* `tokenizer_json`: path of tokenizer.json. `tokenizer_config_json` (may be NULL): path of
 * tokenizer_config.json, read for add_bos_token/add_eos_token and bos/eos names. */
SA_NODISCARD enum sa_status sa_tokenizer_load_hf(const char *tokenizer_json, const char *tokenizer_config_json,
                                                  struct sa_tokenizer **out);
/* The same from memory (tests, fuzzing): `config_json` may be NULL. */
SA_NODISCARD enum sa_status sa_tokenizer_load_hf_memory(const char *json, size_t json_len, const char *config_json,
                                                         size_t config_len, struct sa_tokenizer **out);
void sa_tokenizer_free(struct sa_tokenizer *t);

/* Writes `t` as a Hugging Face tokenizer: dir/tokenizer.json (a BPE model that `tokenizers`
 * and sa_tokenizer_load_hf read back to the same ids; SPM vocabularies get merges derived
 * from their scores) and dir/tokenizer_config.json (special tokens, add_bos/eos, the chat
 * template when `chat_template` is not NULL, model_max_length from dir/config.json's
 * max_position_embeddings when that file exists). `dir` must exist; each file is replaced
 * atomically. SA_STATUS_UNSUPPORTED when a token is not valid UTF-8 (JSON cannot hold it). */
SA_NODISCARD enum sa_status sa_tokenizer_save_hf(const struct sa_tokenizer *t, const char *dir,
                                                  const char *chat_template);

enum sa_tokenizer_kind sa_tokenizer_kind(const struct sa_tokenizer *t);
int32_t sa_tokenizer_n_vocab(const struct sa_tokenizer *t);
/* Pre-tokenizer name ("smollm", "llama-bpe", "qwen2", "gpt2", "default") or "" for SPM. */
const char *sa_tokenizer_pre(const struct sa_tokenizer *t);
/* Special ids, -1 if the model has none. eot: end of turn (<|im_end|>, <end_of_turn>,
 * <|eot_id|>), falling back to eos. */
int32_t sa_tokenizer_bos(const struct sa_tokenizer *t);
int32_t sa_tokenizer_eos(const struct sa_tokenizer *t);
int32_t sa_tokenizer_eot(const struct sa_tokenizer *t);
int32_t sa_tokenizer_pad(const struct sa_tokenizer *t);
bool sa_tokenizer_add_bos(const struct sa_tokenizer *t); /* model asks for BOS at the start */
bool sa_tokenizer_add_eos(const struct sa_tokenizer *t);
/* True for tokens that end generation (eos, eot and other end-of-generation tokens). */
bool sa_tokenizer_is_eog(const struct sa_tokenizer *t, int32_t id);
int sa_tokenizer_attr(const struct sa_tokenizer *t, int32_t id);
/* The vocabulary string of a token as stored (e.g. "Ġthe", "▁the", "<0x0A>"); NULL if out of range. */
const char *sa_tokenizer_vocab_str(const struct sa_tokenizer *t, int32_t id);
/* Token id of an exact vocabulary string, or -1. */
int32_t sa_tokenizer_find(const struct sa_tokenizer *t, const char *vocab_str);

struct sa_tokenize_opts {
    bool add_special;   /* prepend BOS (and append EOS) when the model asks for them */
    bool parse_special; /* recognise control tokens like <|im_start|> written in the text */
};

/* Encodes `len` bytes of `text` (any bytes: invalid UTF-8 is handled the way the reference
 * tokenizer does). On success *ids is malloc'd (caller frees) and *n_ids its length. */
SA_NODISCARD enum sa_status sa_tokenize(const struct sa_tokenizer *t, const char *text, size_t len,
                                         struct sa_tokenize_opts opts, int32_t **ids, size_t *n_ids);

/* The bytes a token stands for in decoded text (byte-level BPE: mapped back to bytes;
 * SPM: "▁" -> " ", "<0x0A>" -> "\n"). Control tokens give their text only when
 * `special` is true, else "". Returns bytes written (may exceed cap: then nothing is
 * written and the needed size is returned). */
size_t sa_token_to_piece(const struct sa_tokenizer *t, int32_t id, bool special, char *buf, size_t cap);

struct sa_detokenize_opts {
    bool special;              /* render control tokens */
    bool strip_leading_space;  /* SPM add_dummy_prefix: drop the space the encoder added */
};
/* Decodes ids to a malloc'd NUL-terminated string (caller frees); *len excludes the NUL. */
SA_NODISCARD enum sa_status sa_detokenize(const struct sa_tokenizer *t, const int32_t *ids, size_t n_ids,
                                           struct sa_detokenize_opts opts, char **text, size_t *len);

/* Streaming decoder: feed tokens one at a time; it returns only complete UTF-8 characters,
 * holding back an incomplete tail; concatenating every output plus flush equals
 * sa_detokenize of the whole sequence. */
struct sa_detok_stream;
SA_NODISCARD enum sa_status sa_detok_stream_init(const struct sa_tokenizer *t, struct sa_detokenize_opts opts,
                                                  struct sa_detok_stream **out);
void sa_detok_stream_free(struct sa_detok_stream *s);
/* Appends the token's text; *out points to the newly completed bytes (valid until the
 * next call), *out_len their count (may be 0). */
SA_NODISCARD enum sa_status sa_detok_stream_push(struct sa_detok_stream *s, int32_t id, const char **out, size_t *out_len);
/* Returns what is held back (incomplete bytes, as they are) and resets the stream. */
SA_NODISCARD enum sa_status sa_detok_stream_flush(struct sa_detok_stream *s, const char **out, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
