/* model_config.h: the hyper-parameters of a Llama-family transformer, read from GGUF
 * metadata or a Hugging Face config.json. One struct for every architecture; fields an
 * architecture does not use keep their defaults. */
#ifndef SA_MODEL_CONFIG_H
#define SA_MODEL_CONFIG_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_gguf;

enum sa_arch {
    SA_ARCH_UNKNOWN = 0,
    SA_ARCH_LLAMA = 1,   /* Llama 2/3, SmolLM2 */
    SA_ARCH_QWEN2 = 2,   /* q/k/v biases */
    SA_ARCH_QWEN3 = 3,   /* q/k RMSNorm */
    SA_ARCH_GEMMA3 = 4,  /* embd scale, GeGLU, pre+post norms, q/k norm, local/global layers */
};

enum sa_rope_scaling {
    SA_ROPE_SCALING_NONE = 0,
    SA_ROPE_SCALING_LINEAR = 1,
    SA_ROPE_SCALING_LLAMA3 = 2,
};

struct sa_model_config {
    enum sa_arch arch;
    char arch_name[32];        /* "llama", "qwen2", "qwen3", "gemma3" */
    char name[128];            /* general.name or "" */
    int32_t n_vocab;
    int32_t n_embd;            /* hidden size */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;         /* grouped-query attention: n_head % n_head_kv == 0 */
    int32_t head_dim;          /* n_embd / n_head unless set (Gemma 3, Qwen3) */
    int32_t n_ff;              /* MLP intermediate size */
    int32_t n_ctx_train;       /* trained context length */
    float rms_eps;
    float rope_theta;          /* RoPE base of global layers */
    float rope_theta_local;    /* Gemma 3 sliding-window layers (10000); 0: same as global */
    enum sa_rope_scaling rope_scaling;
    float rope_scale_factor;   /* linear/llama3 factor; 1 for none */
    float rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int32_t rope_orig_ctx;     /* llama3 original_max_position_embeddings */
    bool tie_embeddings;       /* output = token embedding (no separate lm_head) */
    bool qkv_bias;             /* Qwen2 */
    bool qk_norm;              /* Qwen3, Gemma 3 */
    int32_t sliding_window;    /* Gemma 3 local window in tokens; 0: none */
    int32_t sliding_window_pattern; /* Gemma 3: every Nth layer is global (6); 0: none */
    float query_pre_attn_scalar;    /* Gemma 3: attention scale is 1/sqrt(this); 0: head_dim */
    float final_logit_softcap;      /* 0: none */
    float attn_logit_softcap;       /* 0: none */
    bool embd_scale;           /* Gemma: multiply embeddings by sqrt(n_embd) */
    bool gelu_mlp;             /* Gemma: GeGLU (tanh gelu) instead of SwiGLU */
    bool norm_plus_one;        /* Gemma (HF weights): RMSNorm multiplies by (1 + w); GGUF stores w+1 */
};

/* Defaults for an architecture (eps 1e-5, theta 10000, ...). */
void sa_model_config_defaults(struct sa_model_config *c, enum sa_arch arch);
/* From GGUF metadata (general.architecture, <arch>.block_count, ...). */
SA_NODISCARD enum sa_status sa_model_config_from_gguf(const struct sa_gguf *g, struct sa_model_config *c);
/* From the text of a Hugging Face config.json (architectures/model_type, hidden_size, ...). */
SA_NODISCARD enum sa_status sa_model_config_from_hf_json(const char *json, size_t len, struct sa_model_config *c);
/* Checks ranges and consistency (positive sizes, divisibility); message names the field. */
SA_NODISCARD enum sa_status sa_model_config_validate(const struct sa_model_config *c);
/* The architecture named "llama", "qwen2", "qwen3" or "gemma3" into *out. Errors:
 * SA_STATUS_BAD_ARGUMENT (NULL or another name; *out unchanged). */
SA_NODISCARD enum sa_status sa_arch_from_name(const char *name, enum sa_arch *out);
/* "llama", "qwen2", "qwen3", "gemma3"; "unknown" for SA_ARCH_UNKNOWN or another value. */
const char *sa_arch_name(enum sa_arch a);

#ifdef __cplusplus
}
#endif
#endif
