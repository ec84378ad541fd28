/* convert.h: re-encoding a model between GGUF files and Hugging Face safetensors
 * directories (config.json + model.safetensors), with a change of tensor type:
 *   GGUF -> GGUF         every tensor dequantized and re-encoded; metadata kept
 *   GGUF -> safetensors  HF tensor names and shapes, llama.cpp's Q/K row permutation
 *                        undone, Gemma norms back to HF form (w, not 1 + w), config.json,
 *                        generation_config.json and tokenizer_config.json (chat template)
 *   safetensors -> GGUF  the reverse mapping (tokenizer metadata from another GGUF)
 *   safetensors -> safetensors  the same names with another type
 * Architectures: llama, qwen2, qwen3, gemma3. */
#ifndef SA_CONVERT_H
#define SA_CONVERT_H

#include "sa/dtype.h"
#include "sa/status.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sa_convert_format {
    SA_CONVERT_GGUF = 0,
    SA_CONVERT_SAFETENSORS = 1,
};

struct sa_convert_params {
    enum sa_convert_format to;
    /* Type of the weight matrices: F32, F16, BF16, or Q8_0 (GGUF only). For GGUF output,
     * 1-D tensors (norms, biases) stay F32 as in llama.cpp, and Q8_0 falls back to F16 for
     * a tensor whose rows are not a multiple of 32 long. Integer tensors are copied. */
    enum sa_dtype type;
    /* safetensors output: shard above this many bytes (0: one model.safetensors). */
    uint64_t max_shard_bytes;
    /* safetensors -> GGUF: a GGUF whose tokenizer.* metadata to copy (the vocabulary that
     * llama.cpp needs); NULL: the output has no tokenizer. Not owned. */
    const char *tokenizer_gguf;
    /* Progress and notes (fallback types, skipped tensors), one line each without "\n";
     * NULL: logged at info level. */
    void (*log)(void *user, const char *msg);
    void *log_user;
};

/* to GGUF, F16, no sharding, no tokenizer source, no log callback. */
struct sa_convert_params sa_convert_default_params(void);

/* Converts the model at `in` (a .gguf file; or a safetensors directory with config.json,
 * its model.safetensors or its index) to `out`: a file for GGUF, a directory (created if
 * needed) for safetensors. Files are written atomically (path.tmp, then rename); a scratch
 * file `out`.scratch holds the converted tensors while writing and is removed. */
SA_NODISCARD enum sa_status sa_convert(const char *in, const char *out, const struct sa_convert_params *p);

#ifdef __cplusplus
}
#endif
#endif
