/* chat.h: chat templates. Renders a conversation in the chat format of a model, chosen by
 * recognising the model's own Jinja template (GGUF tokenizer.chat_template, or the
 * chat_template of tokenizer_config.json) the way llama.cpp's llm_chat_detect_template
 * does, or by name. No Jinja interpreter: each format is written out in C and checked
 * byte for byte against Hugging Face apply_chat_template (tests/py/test_chat_template_ref.py).
 * Precedent: llama.h llama_chat_apply_template. */
#ifndef SA_CHAT_H
#define SA_CHAT_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Add new values only at the end. */
enum sa_chat_format {
    SA_CHAT_FORMAT_UNKNOWN = 0,
    /* "<|im_start|>role\n...<|im_end|>\n", generation prompt "<|im_start|>assistant\n".
     * SmolLM2, Qwen2/2.5, Qwen3 (see sa_chat_render for thinking). No BOS in the text. */
    SA_CHAT_FORMAT_CHATML = 1,
    /* Gemma 2/3: "<bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n";
     * a leading system message is prepended to the first user turn (+ "\n\n"), contents
     * are whitespace-trimmed, user/assistant must alternate starting with user. */
    SA_CHAT_FORMAT_GEMMA = 2,
    /* Llama 3: "<|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>",
     * contents trimmed (the Llama 3 Instruct template; 3.1+ add a dated system header that
     * this format does not write). */
    SA_CHAT_FORMAT_LLAMA3 = 3,
};

/* One message. role: "system", "user" or "assistant". content: NUL-terminated UTF-8.
 * Both borrowed for the duration of the call. */
struct sa_chat_msg {
    const char *role;
    const char *content;
};

/* Recognises a template string by its markers: "<|im_start|>" -> CHATML,
 * "<start_of_turn>" -> GEMMA, "<|start_header_id|>" + "<|end_header_id|>" -> LLAMA3.
 * When tmpl is NULL or empty (the Gemma 3 270M GGUF has none) falls back on the GGUF
 * architecture `arch` (may be NULL): gemma* -> GEMMA, qwen* -> CHATML. Returns
 * SA_CHAT_FORMAT_UNKNOWN when neither says (e.g. arch "llama" alone is ambiguous). */
enum sa_chat_format sa_chat_template_detect(const char *tmpl, const char *arch);

/* The format named "chatml", "gemma" (also "gemma2", "gemma3") or "llama3" into *out.
 * Errors: SA_STATUS_BAD_ARGUMENT (NULL or any other name; *out unchanged). */
SA_NODISCARD enum sa_status sa_chat_format_from_name(const char *name, enum sa_chat_format *out);
/* Static name of a format ("chatml", ...; "unknown"). Never NULL. */
const char *sa_chat_format_name(enum sa_chat_format fmt);
/* Static end-of-turn marker: "<|im_end|>", "<end_of_turn>", "<|eot_id|>"; "" for UNKNOWN.
 * Generation stops there (the tokenizer's eot token has this text). */
const char *sa_chat_format_eot(enum sa_chat_format fmt);
/* True when the rendered text already starts with the BOS token's text ("<bos>",
 * "<|begin_of_text|>"), as the Hugging Face templates write it: tokenize the rendered text
 * with add_special = false (and parse_special = true) so that no second BOS is added.
 * False for CHATML: add BOS only if the model asks for it (sa_tokenizer_add_bos). */
bool sa_chat_format_bos_in_text(enum sa_chat_format fmt);

/* Renders `msgs[0..n)` in format `fmt` into a malloc'd NUL-terminated string (*out, caller
 * frees; *len its length without the NUL; len may be NULL).
 *   tmpl: the model's template string, or NULL. Used for CHATML only, to find a default
 *     system prompt the template injects when the conversation has none (SmolLM2:
 *     "You are a helpful AI assistant named SmolLM, trained by Hugging Face"; Qwen2.5:
 *     "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."): a string
 *     literal "<|im_start|>system\n<text><|im_end|>" in the template. With NULL, or a
 *     template without such a literal (Qwen3), nothing is injected.
 *   add_generation_prompt: end with the opening of an assistant turn.
 *   assistant_prefix (may be NULL): a partial assistant answer to continue; written as is
 *     right after the generation prompt with NO end-of-turn, so that the model continues
 *     it. Requires add_generation_prompt. (Qwen3 without thinking: pass
 *     "<think>\n\n</think>\n\n", as its template writes for enable_thinking = false.)
 * The output equals apply_chat_template(msgs, tokenize=False, add_generation_prompt=...)
 * of the model's template, plus the prefix. Contents are not escaped: markers written
 * inside a content come out as they are, as with Hugging Face.
 * Errors (SA_STATUS_BAD_ARGUMENT, message in sa_last_error()): fmt UNKNOWN, n == 0, a NULL
 * role or content, a role other than system/user/assistant, a prefix without the
 * generation prompt; GEMMA: a system message other than the first, or user/assistant not
 * alternating from user (its template raises the same). SA_STATUS_NO_MEMORY. On error
 * *out is NULL. */
SA_NODISCARD enum sa_status sa_chat_render(enum sa_chat_format fmt, const char *tmpl, const struct sa_chat_msg *msgs,
                                           size_t n, bool add_generation_prompt, const char *assistant_prefix,
                                           char **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
