/* arch_impl.h: the architecture table: for each supported architecture its tensors and
 * their names in GGUF (llama.cpp) and Hugging Face files, its flags (biases, q/k norm,
 * sandwich norms, sliding-window layers, embedding scale, GeGLU, RMSNorm (1 + w)), its
 * RoPE pairing and its config defaults; plus the rules derived from a config (which layers
 * are local, the attention scale, the RoPE frequencies). The one home of per-architecture
 * knowledge: loading (src/model), conversion (src/formats/convert.c) and training
 * (src/train) read it. docs/internals/architectures.md. */
#ifndef SA_ARCH_IMPL_H
#define SA_ARCH_IMPL_H

#include "sa/model_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How RoPE pairs the dimensions of a head. */
enum sa_rope_mode {
    SA_ROPE_NORMAL = 0, /* adjacent pairs (x[2i], x[2i+1]): llama.cpp's mode 0, used with the
                         * GGUF llama weights whose Q/K rows were permuted */
    SA_ROPE_NEOX = 2,   /* halves (x[i], x[i + n_rot/2]): HF rotate_half */
};

/* The tensors of a model (llama.cpp's LLM_TENSOR_*). The first three are global, the rest
 * exist once per layer. Biases share the name of their weight with ".bias" for ".weight". */
enum sa_tensor {
    SA_TENSOR_TOKEN_EMBD,
    SA_TENSOR_OUTPUT_NORM,
    SA_TENSOR_OUTPUT,          /* absent when tied to the token embedding */
    SA_TENSOR_ATTN_NORM,       /* pre-attention norm */
    SA_TENSOR_ATTN_Q,
    SA_TENSOR_ATTN_K,
    SA_TENSOR_ATTN_V,
    SA_TENSOR_ATTN_OUT,
    SA_TENSOR_ATTN_Q_NORM,     /* per-head RMSNorm of q (flag QK_NORM) */
    SA_TENSOR_ATTN_K_NORM,
    SA_TENSOR_ATTN_POST_NORM,  /* norm of the attention output (flag POST_NORMS) */
    SA_TENSOR_FFN_NORM,        /* pre-FFN norm */
    SA_TENSOR_FFN_GATE,
    SA_TENSOR_FFN_UP,
    SA_TENSOR_FFN_DOWN,
    SA_TENSOR_FFN_POST_NORM,   /* norm of the FFN output (flag POST_NORMS) */
    SA_TENSOR_COUNT
};
#define SA_TENSOR_FIRST_LAYER SA_TENSOR_ATTN_NORM

/* llama.cpp's Llama 3.1 RoPE factors (GGUF only, global: head_dim/2 f32 divisors). */
#define SA_GGUF_ROPE_FREQS "rope_freqs.weight"

/* Which file's names. */
enum sa_names {
    SA_NAMES_GGUF, /* llama.cpp: "token_embd", "blk.N.attn_q" */
    SA_NAMES_HF,   /* transformers: "model.embed_tokens", "model.layers.N.self_attn.q_proj" */
};

/* Per-architecture behaviour. The config fields of the same name (qkv_bias, qk_norm,
 * embd_scale, gelu_mlp, tie_embeddings) take their defaults from these flags. */
enum sa_arch_flag {
    SA_ARCH_F_QKV_BIAS = 1u << 0,      /* q/k/v biases always present (Qwen2) */
    SA_ARCH_F_QK_NORM = 1u << 1,       /* RMSNorm of each q and k head before RoPE */
    SA_ARCH_F_POST_NORMS = 1u << 2,    /* norms on the attention and FFN outputs (sandwich) */
    SA_ARCH_F_SLIDING = 1u << 3,       /* local (sliding-window) and global layers */
    SA_ARCH_F_EMBD_SCALE = 1u << 4,    /* embeddings times sqrt(n_embd) */
    SA_ARCH_F_GELU_MLP = 1u << 5,      /* GeGLU (tanh GELU) instead of SwiGLU */
    SA_ARCH_F_NORM_PLUS_ONE = 1u << 6, /* HF RMSNorm computes x * (1 + w); llama.cpp's GGUF stores 1 + w */
    SA_ARCH_F_TIED = 1u << 7,          /* tie_word_embeddings defaults to true */
    SA_ARCH_F_QUERY_SCALAR = 1u << 8,  /* attention scale 1/sqrt(query_pre_attn_scalar) */
};

struct sa_arch_info {
    enum sa_arch arch;
    const char *name;          /* general.architecture, sa_model_config.arch_name */
    const char *hf_model_type; /* config.json model_type */
    const char *hf_class;      /* config.json architectures[0] */
    const char *hf_model_type_mm, *hf_class_mm; /* multimodal checkpoint whose text_config is this (or NULL) */
    uint32_t flags;            /* enum sa_arch_flag */
    /* The pairing of the GGUF Q/K rows. The HF layout is always NEOX: an architecture whose
     * GGUF mode is NORMAL has its Q/K rows permuted by llama.cpp's converter (permute_qk). */
    enum sa_rope_mode rope_mode_gguf;
    /* config defaults */
    float rms_eps, rope_theta, rope_theta_local;
    int32_t sliding_window_pattern;
    /* HF tensor names (global: full name without suffix; per layer: after
     * "model.layers.N."); NULL: the architecture has no such tensor. */
    const char *hf_names[SA_TENSOR_COUNT];
};

/* The entry of `a`, or NULL when it is not a supported architecture. */
const struct sa_arch_info *sa_arch_info(enum sa_arch a);
/* Every supported architecture, in enum order: for (i = 0; i < sa_arch_count(); i++). */
int sa_arch_count(void);
const struct sa_arch_info *sa_arch_at(int i);
bool sa_arch_has(enum sa_arch a, enum sa_arch_flag f);

/* Whether architecture `a` can hold tensor `t` at all (its flags and the config decide
 * whether a given model must). */
bool sa_arch_has_tensor(enum sa_arch a, enum sa_tensor t);
/* Writes the name of tensor `t` (layer `il` when per layer) with `suffix` (".weight",
 * ".bias") into buf: "blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight".
 * false when `a` has no such tensor or buf is too small. */
bool sa_arch_tensor_name(enum sa_arch a, enum sa_names names, enum sa_tensor t, int il, const char *suffix,
                         char *buf, size_t cap);
/* The inverse: parses `name` ("<base>.weight" or "<base>.bias"); sets *t, *il (-1 for a
 * global tensor) and *suffix (points into name). false when `a` has no tensor of that name. */
bool sa_arch_tensor_parse(enum sa_arch a, enum sa_names names, const char *name, enum sa_tensor *t, int *il,
                          const char **suffix);

/* Whether t is an RMSNorm weight (of the model, a layer or a q/k head). */
bool sa_tensor_is_norm(enum sa_tensor t);

/* RoPE pairing for weights in the given layout (HF: NEOX; GGUF: the architecture's). */
enum sa_rope_mode sa_arch_rope_mode(enum sa_arch a, enum sa_names layout);
/* Whether llama.cpp's converter permutes the Q/K rows (and biases) of `a`. */
bool sa_arch_permute_qk(enum sa_arch a);

/* ---- what a config means, layer by layer: the rules inference and training share ---- */

/* Whether layer il is a local (sliding-window) layer: the architecture has them, the window
 * is positive and the pattern is positive, and il is not every pattern-th layer
 * ((il + 1) % pattern != 0: HF Gemma3TextConfig). sliding_window_pattern 0 means no local
 * layers, as model_config.h documents. */
bool sa_layer_is_local(const struct sa_model_config *c, int il);
/* The attention window of layer il in tokens; 0: full attention. */
int32_t sa_layer_window(const struct sa_model_config *c, int il);
/* Scores are scale * q.k: 1/sqrt(query_pre_attn_scalar) where the architecture has it and
 * it is positive, else 1/sqrt(head_dim); computed in double and rounded once to f32, as HF's
 * `x ** -0.5` (llama.cpp's 1.0f/sqrtf differs by 1 ulp for some values, e.g. 24 or 96). */
float sa_attn_scale(const struct sa_model_config *c);

/* RoPE frequencies. Global layers use rope_theta and the config's scaling; local layers
 * rope_theta_local (0: rope_theta) unscaled (HF Gemma 3 rotary_emb_local). */
struct sa_rope_params {
    int64_t n_rot;                 /* rotated dims per head (even) */
    double base;                   /* theta */
    enum sa_rope_scaling scaling;
    double factor;                 /* linear and llama3 */
    double low_freq_factor, high_freq_factor, orig_ctx; /* llama3 */
    const float *factors;          /* (n_rot/2) divisors (llama.cpp's rope_freqs.weight), or NULL;
                                    * when set they replace the llama3 rule, whatever `scaling` */
};
struct sa_rope_params sa_rope_params_of(const struct sa_model_config *c, bool local);
/* inv_freq[i] = base^(-2i/n_rot) in double, then divided by factors[i] when given, else by
 * the llama3 rule (ref: HF modeling_rope_utils._compute_llama3_parameters); then by the
 * linear factor; stored as f32. */
void sa_rope_inv_freq(const struct sa_rope_params *p, float *inv_freq /* (n_rot / 2) */);
/* Llama 3 RoPE frequency factors (head_dim/2 divisors) of config c, as llama.cpp stores
 * them in the rope_freqs.weight tensor: the rule of sa_rope_inv_freq in divisor form.
 * ref: Meta's apply_scaling in llama3, llama.cpp's convert_hf_to_gguf.py
 * LlamaModel.generate_extra_tensors. */
void sa_llama3_rope_factors(const struct sa_model_config *c, float *out /* (head_dim / 2) */);

#endif
