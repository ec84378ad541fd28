/* lora.h: LoRA adapters at inference, in llama.cpp's GGUF LoRA adapter format (what its
 * convert_lora_to_gguf.py writes and llama-adapter.cpp reads), over any base of the same
 * architecture and shapes, quantized bases included. The adapted products become
 * y = W x + scale * B (A x), computed in f32 for each row on its own (the result of a row does
 * not depend on how many rows are computed with it), with scale = user scale * alpha / rank.
 * An adapter is loaded once over a model and attached to contexts (sa_ctx_params.lora), so
 * that one loaded base serves adapted and plain contexts at the same time. The file format
 * and the checks: docs/TRAINING.md "The LoRA adapter alone"; in the forward pass:
 * docs/internals/model.md. */
#ifndef SA_LORA_H
#define SA_LORA_H

#include "sa/status.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_model;
struct sa_lora; /* opaque: an adapter loaded over one model */

/* Most rank an adapter matrix may have (the forward pass keeps one row of A x on its stack). */
#define SA_LORA_MAX_RANK 1024

struct sa_lora_params {
    float alpha; /* overrides the file's adapter.lora.alpha; 0: the file's (a file without it, or
                  * with 0, gets scale 1 per matrix, as llama.cpp) */
};
/* alpha 0. */
struct sa_lora_params sa_lora_default_params(void);

/* What an adapter holds (sa_lora_get_info, sa_lora_file_info). */
struct sa_lora_info {
    char arch[32];       /* general.architecture */
    char name[128];      /* general.name, "" when absent */
    float alpha;         /* adapter.lora.alpha (after params.alpha), 0 when absent */
    int32_t rank;        /* the rank of the adapted matrices (the largest when they differ) */
    int32_t n_matrices;  /* adapted matrices (pairs lora_a / lora_b) */
    int32_t n_layers;    /* layers with at least one adapted matrix */
    uint32_t modules;    /* the adapted modules: SA_LORA_* flags of sa/train.h (Q 1, K 2, V 4,
                          * O 8, GATE 16, UP 32, DOWN 64) */
    uint64_t n_params;   /* elements of all A and B */
    char type[8];        /* element type of the file's matrices ("f32", "f16", ...) or "mixed" */
};

/* Loads the adapter `path` over `model` (borrowed: it must outlive the adapter and every
 * context using it). `params` may be NULL (defaults). Checked hard: a GGUF with
 * general.type "adapter", adapter.type "lora", general.architecture = the model's; only
 * tensors "blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a"
 * and ".lora_b", in pairs (f32, f16, bf16, or any type salign dequantizes: Q8_0 ...), with
 * lora_a ne = [n_in, r], lora_b ne = [r, n_out] of the model's matrix (1 <= r <=
 * SA_LORA_MAX_RANK; r may differ between matrices), every value finite. On success *out owns
 * the adapter's matrices (converted to f32); free it with sa_lora_free after the contexts
 * using it. Errors (*out NULL, sa_last_error() names the tensor or key): SA_STATUS_NOT_FOUND,
 * SA_STATUS_BAD_FILE (not a GGUF, truncated, not a LoRA adapter, a wrong shape, an unpaired or
 * unknown tensor, NaN/Inf), SA_STATUS_BAD_ARGUMENT (another architecture, NULL arguments),
 * SA_STATUS_UNSUPPORTED (a matrix type salign cannot read), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_lora_load(const struct sa_model *model, const char *path,
                                         const struct sa_lora_params *params, struct sa_lora **out);
/* NULL does nothing. No context may use it afterwards. */
void sa_lora_free(struct sa_lora *l);

/* The model the adapter was loaded over. */
const struct sa_model *sa_lora_model(const struct sa_lora *l);
void sa_lora_get_info(const struct sa_lora *l, struct sa_lora_info *out);

/* Reads an adapter file's metadata and checks its tensors' names and pairing without a model
 * (salign inspect). Errors as sa_lora_load, less the checks against a model. */
SA_NODISCARD enum sa_status sa_lora_file_info(const char *path, struct sa_lora_info *out);

#ifdef __cplusplus
}
#endif
#endif
