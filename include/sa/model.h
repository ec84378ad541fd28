/* model.h: a loaded transformer (weights, hyper-parameters, tokenizer, chat template) of the
 * Llama family: llama (Llama 2/3, SmolLM2), qwen2, qwen3, gemma3. From a GGUF file or a
 * Hugging Face model directory (config.json + *.safetensors, optional tokenizer.json).
 * A model is immutable after load and may be shared by any number of contexts
 * (sa/context.h) on any threads. Precedent: llama.h llama_model_load_from_file. */
#ifndef SA_MODEL_H
#define SA_MODEL_H

#include "sa/model_config.h"
#include "sa/status.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_tokenizer;
struct sa_model; /* opaque */

struct sa_model_params {
    bool use_mmap;       /* true: weights stay in the read-only file mapping (pages shared,
                          * loaded on first touch); false: copied into memory at load and
                          * the file is closed */
    int n_threads;       /* threads for load-time work (weight conversions); 0: all cores */
    bool load_tokenizer; /* true: load the GGUF's tokenizer (an error if it cannot be
                          * loaded), or a directory's tokenizer.json when present;
                          * false: no tokenizer (sa_model_tokenizer returns NULL) */
};

/* use_mmap true, n_threads 0, load_tokenizer true. */
struct sa_model_params sa_model_default_params(void);

/* Loads `path`: a .gguf file, or a directory with config.json and model.safetensors (or a
 * sharded model.safetensors.index.json); tokenizer.json (+ tokenizer_config.json) there
 * is optional. `params` may be NULL (defaults). On success *out owns everything; free it
 * with sa_model_free after every context using it is freed. On error *out is NULL and
 * sa_last_error() names the problem (missing tensor, wrong shape, unknown architecture,
 * unsupported dtype, ...). */
SA_NODISCARD enum sa_status sa_model_load(const char *path, const struct sa_model_params *params,
                                          struct sa_model **out);
/* Frees the model; NULL does nothing. No context may use it afterwards. */
void sa_model_free(struct sa_model *m);

/* The hyper-parameters (owned by the model, valid while it lives). */
const struct sa_model_config *sa_model_config(const struct sa_model *m);
/* The tokenizer, or NULL for a safetensors directory without tokenizer.json. Owned by the
 * model. */
const struct sa_tokenizer *sa_model_tokenizer(const struct sa_model *m);
/* The chat template (Jinja source from GGUF tokenizer.chat_template, tokenizer_config.json
 * chat_template or chat_template.jinja), or NULL when the model has none. Owned by the
 * model. */
const char *sa_model_chat_template(const struct sa_model *m);
int32_t sa_model_n_vocab(const struct sa_model *m);
int32_t sa_model_n_embd(const struct sa_model *m);
/* Bytes of weights the model references (mapped or owned). */
uint64_t sa_model_n_bytes(const struct sa_model *m);
/* Number of parameters (elements of all weight tensors bound). */
uint64_t sa_model_n_params(const struct sa_model *m);

#ifdef __cplusplus
}
#endif
#endif
