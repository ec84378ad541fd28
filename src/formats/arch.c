/* arch.c: the architecture table (arch_impl.h) and the rules that turn a config into what
 * each layer does: local or global attention, attention scale, RoPE frequencies. Loading,
 * conversion and training all read these, so a config means the same to each of them.
 * refs: llama.cpp src/llama-arch.cpp (LLM_TENSOR_NAMES), convert_hf_to_gguf.py (names, Q/K
 * permutation, Gemma's norms), transformers modeling_{llama,qwen2,qwen3,gemma3}.py (4.51). */
#define _GNU_SOURCE
#include "formats/arch_impl.h"

#include "core/core_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GGUF names are the same for every architecture (llama.cpp's). */
static const char *const gguf_names[SA_TENSOR_COUNT] = {
    [SA_TENSOR_TOKEN_EMBD] = "token_embd",
    [SA_TENSOR_OUTPUT_NORM] = "output_norm",
    [SA_TENSOR_OUTPUT] = "output",
    [SA_TENSOR_ATTN_NORM] = "attn_norm",
    [SA_TENSOR_ATTN_Q] = "attn_q",
    [SA_TENSOR_ATTN_K] = "attn_k",
    [SA_TENSOR_ATTN_V] = "attn_v",
    [SA_TENSOR_ATTN_OUT] = "attn_output",
    [SA_TENSOR_ATTN_Q_NORM] = "attn_q_norm",
    [SA_TENSOR_ATTN_K_NORM] = "attn_k_norm",
    [SA_TENSOR_ATTN_POST_NORM] = "post_attention_norm",
    [SA_TENSOR_FFN_NORM] = "ffn_norm",
    [SA_TENSOR_FFN_GATE] = "ffn_gate",
    [SA_TENSOR_FFN_UP] = "ffn_up",
    [SA_TENSOR_FFN_DOWN] = "ffn_down",
    [SA_TENSOR_FFN_POST_NORM] = "post_ffw_norm",
};

/* The HF names shared by every architecture. Note the trap: in Llama/Qwen the HF
 * "post_attention_layernorm" is the pre-FFN norm; in Gemma 3 it is the norm of the attention
 * output and the pre-FFN norm is "pre_feedforward_layernorm". */
#define HF_COMMON                                                                              \
    [SA_TENSOR_TOKEN_EMBD] = "model.embed_tokens", [SA_TENSOR_OUTPUT_NORM] = "model.norm",      \
    [SA_TENSOR_OUTPUT] = "lm_head", [SA_TENSOR_ATTN_NORM] = "input_layernorm",                  \
    [SA_TENSOR_ATTN_Q] = "self_attn.q_proj", [SA_TENSOR_ATTN_K] = "self_attn.k_proj",           \
    [SA_TENSOR_ATTN_V] = "self_attn.v_proj", [SA_TENSOR_ATTN_OUT] = "self_attn.o_proj",         \
    [SA_TENSOR_ATTN_Q_NORM] = "self_attn.q_norm", [SA_TENSOR_ATTN_K_NORM] = "self_attn.k_norm", \
    [SA_TENSOR_FFN_GATE] = "mlp.gate_proj", [SA_TENSOR_FFN_UP] = "mlp.up_proj",                 \
    [SA_TENSOR_FFN_DOWN] = "mlp.down_proj"
#define HF_LLAMA_NORMS [SA_TENSOR_FFN_NORM] = "post_attention_layernorm"
#define HF_GEMMA_NORMS                                                                         \
    [SA_TENSOR_ATTN_POST_NORM] = "post_attention_layernorm", [SA_TENSOR_FFN_NORM] = "pre_feedforward_layernorm", \
    [SA_TENSOR_FFN_POST_NORM] = "post_feedforward_layernorm"

/* One entry per enum sa_arch value after SA_ARCH_UNKNOWN, in enum order. The q/k norm names
 * are listed for every architecture (a converter maps them wherever they occur); the flags
 * say which tensors a model uses. */
static const struct sa_arch_info arch_table[] = {
    {
        .arch = SA_ARCH_LLAMA, .name = "llama", .hf_model_type = "llama", .hf_class = "LlamaForCausalLM",
        .flags = 0,
        .rope_mode_gguf = SA_ROPE_NORMAL,
        .rms_eps = 1e-5f, .rope_theta = 10000.0f,
        .hf_names = {HF_COMMON, HF_LLAMA_NORMS},
    },
    {
        .arch = SA_ARCH_QWEN2, .name = "qwen2", .hf_model_type = "qwen2", .hf_class = "Qwen2ForCausalLM",
        .flags = SA_ARCH_F_QKV_BIAS,
        .rope_mode_gguf = SA_ROPE_NEOX,
        .rms_eps = 1e-6f, .rope_theta = 10000.0f,
        .hf_names = {HF_COMMON, HF_LLAMA_NORMS},
    },
    {
        .arch = SA_ARCH_QWEN3, .name = "qwen3", .hf_model_type = "qwen3", .hf_class = "Qwen3ForCausalLM",
        .flags = SA_ARCH_F_QK_NORM,
        .rope_mode_gguf = SA_ROPE_NEOX,
        .rms_eps = 1e-6f, .rope_theta = 10000.0f,
        .hf_names = {HF_COMMON, HF_LLAMA_NORMS},
    },
    {
        .arch = SA_ARCH_GEMMA3, .name = "gemma3", .hf_model_type = "gemma3_text", .hf_class = "Gemma3ForCausalLM",
        .hf_model_type_mm = "gemma3", .hf_class_mm = "Gemma3ForConditionalGeneration",
        .flags = SA_ARCH_F_QK_NORM | SA_ARCH_F_POST_NORMS | SA_ARCH_F_SLIDING | SA_ARCH_F_EMBD_SCALE |
                 SA_ARCH_F_GELU_MLP | SA_ARCH_F_NORM_PLUS_ONE | SA_ARCH_F_TIED | SA_ARCH_F_QUERY_SCALAR,
        .rope_mode_gguf = SA_ROPE_NEOX,
        /* llama.cpp (src/llama-model.cpp, LLM_ARCH_GEMMA3): every 6th layer is global and
         * local layers use base 10000; GGUF files do not carry the pattern */
        .rms_eps = 1e-6f, .rope_theta = 1000000.0f, .rope_theta_local = 10000.0f, .sliding_window_pattern = 6,
        .hf_names = {HF_COMMON, HF_GEMMA_NORMS},
    },
};

const struct sa_arch_info *sa_arch_info(enum sa_arch a) {
    for (size_t i = 0; i < SA_ARRAY_LEN(arch_table); i++)
        if (arch_table[i].arch == a) return &arch_table[i];
    return NULL;
}

int sa_arch_count(void) { return (int)SA_ARRAY_LEN(arch_table); }

const struct sa_arch_info *sa_arch_at(int i) {
    return i >= 0 && i < sa_arch_count() ? &arch_table[i] : NULL;
}

bool sa_arch_has(enum sa_arch a, enum sa_arch_flag f) {
    const struct sa_arch_info *ai = sa_arch_info(a);
    return ai && (ai->flags & (uint32_t)f);
}

const char *sa_arch_name(enum sa_arch a) {
    const struct sa_arch_info *ai = sa_arch_info(a);
    return ai ? ai->name : "unknown";
}

enum sa_status sa_arch_from_name(const char *name, enum sa_arch *out) {
    for (size_t i = 0; name && i < SA_ARRAY_LEN(arch_table); i++)
        if (!strcmp(name, arch_table[i].name)) {
            *out = arch_table[i].arch;
            return SA_STATUS_OK;
        }
    char names[128] = "";
    for (size_t i = 0; i < SA_ARRAY_LEN(arch_table); i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", arch_table[i].name);
    return sa_error(SA_STATUS_BAD_ARGUMENT, "unknown architecture '%s' (%s)", name ? name : "(null)", names);
}

/* ---- tensor names ---- */

static const char *base_name(const struct sa_arch_info *ai, enum sa_names names, enum sa_tensor t) {
    if (!ai || (unsigned)t >= SA_TENSOR_COUNT || !ai->hf_names[t]) return NULL; /* absent from the arch */
    return names == SA_NAMES_GGUF ? gguf_names[t] : ai->hf_names[t];
}

bool sa_arch_has_tensor(enum sa_arch a, enum sa_tensor t) { return base_name(sa_arch_info(a), SA_NAMES_HF, t) != NULL; }

bool sa_arch_tensor_name(enum sa_arch a, enum sa_names names, enum sa_tensor t, int il, const char *suffix,
                         char *buf, size_t cap) {
    const char *b = base_name(sa_arch_info(a), names, t);
    if (!b || !cap) return false;
    int n;
    if (t < SA_TENSOR_FIRST_LAYER) n = snprintf(buf, cap, "%s%s", b, suffix ? suffix : "");
    else n = snprintf(buf, cap, names == SA_NAMES_GGUF ? "blk.%d.%s%s" : "model.layers.%d.%s%s", il, b, suffix ? suffix : "");
    return n >= 0 && (size_t)n < cap;
}

bool sa_arch_tensor_parse(enum sa_arch a, enum sa_names names, const char *name, enum sa_tensor *t, int *il,
                          const char **suffix) {
    const struct sa_arch_info *ai = sa_arch_info(a);
    const char *dot = name ? strrchr(name, '.') : NULL;
    if (!ai || !dot || (strcmp(dot, ".weight") && strcmp(dot, ".bias"))) return false;
    size_t base_len = (size_t)(dot - name);
    for (int k = 0; k < SA_TENSOR_FIRST_LAYER; k++) {
        const char *b = base_name(ai, names, (enum sa_tensor)k);
        if (b && strlen(b) == base_len && !strncmp(name, b, base_len)) {
            *t = (enum sa_tensor)k;
            *il = -1;
            *suffix = dot;
            return true;
        }
    }
    const char *prefix = names == SA_NAMES_GGUF ? "blk." : "model.layers.";
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl)) return false;
    char *end;
    errno = 0;
    long layer = strtol(name + pl, &end, 10);
    if (end == name + pl || *end != '.' || layer < 0 || layer > 100000 || errno) return false;
    const char *part = end + 1;
    size_t part_len = (size_t)(dot - part);
    for (int k = SA_TENSOR_FIRST_LAYER; k < SA_TENSOR_COUNT; k++) {
        const char *b = base_name(ai, names, (enum sa_tensor)k);
        if (b && strlen(b) == part_len && !strncmp(part, b, part_len)) {
            *t = (enum sa_tensor)k;
            *il = (int)layer;
            *suffix = dot;
            return true;
        }
    }
    return false;
}

bool sa_tensor_is_norm(enum sa_tensor t) {
    switch (t) {
    case SA_TENSOR_OUTPUT_NORM: case SA_TENSOR_ATTN_NORM: case SA_TENSOR_ATTN_Q_NORM: case SA_TENSOR_ATTN_K_NORM:
    case SA_TENSOR_ATTN_POST_NORM: case SA_TENSOR_FFN_NORM: case SA_TENSOR_FFN_POST_NORM:
        return true;
    default:
        return false;
    }
}

enum sa_rope_mode sa_arch_rope_mode(enum sa_arch a, enum sa_names layout) {
    const struct sa_arch_info *ai = sa_arch_info(a);
    return layout == SA_NAMES_GGUF && ai ? ai->rope_mode_gguf : SA_ROPE_NEOX;
}

bool sa_arch_permute_qk(enum sa_arch a) { return sa_arch_rope_mode(a, SA_NAMES_GGUF) != SA_ROPE_NEOX; }

/* ---- layer rules ---- */

bool sa_layer_is_local(const struct sa_model_config *c, int il) {
    return sa_arch_has(c->arch, SA_ARCH_F_SLIDING) && c->sliding_window > 0 && c->sliding_window_pattern > 0 &&
           (il + 1) % c->sliding_window_pattern != 0;
}

int32_t sa_layer_window(const struct sa_model_config *c, int il) {
    return sa_layer_is_local(c, il) ? c->sliding_window : 0;
}

float sa_attn_scale(const struct sa_model_config *c) {
    const double q = sa_arch_has(c->arch, SA_ARCH_F_QUERY_SCALAR) && c->query_pre_attn_scalar > 0
                         ? c->query_pre_attn_scalar : c->head_dim;
    return (float)pow(q, -0.5); /* HF: query_pre_attn_scalar**-0.5 (or head_dim**-0.5), rounded once */
}

/* ---- RoPE ---- */

struct sa_rope_params sa_rope_params_of(const struct sa_model_config *c, bool local) {
    struct sa_rope_params p = {.n_rot = c->head_dim, .base = c->rope_theta, .scaling = c->rope_scaling,
                               .factor = c->rope_scale_factor, .low_freq_factor = c->rope_low_freq_factor,
                               .high_freq_factor = c->rope_high_freq_factor, .orig_ctx = c->rope_orig_ctx};
    if (local) { /* HF Gemma 3 rotary_emb_local: its own base, default RoPE */
        p.base = c->rope_theta_local > 0 ? c->rope_theta_local : c->rope_theta;
        p.scaling = SA_ROPE_SCALING_NONE;
    }
    return p;
}

static double base_inv_freq(const struct sa_rope_params *p, int64_t i) {
    return pow(p->base, -(double)(2 * i) / (double)p->n_rot);
}

/* Llama 3 bands of a frequency by its wavelength: long ones (band 0) are divided by the
 * factor, short ones (band 2) kept, the ones between (band 1) blended with weight *smooth
 * on the unscaled value. */
static int llama3_band(const struct sa_rope_params *p, double inv, double *smooth) {
    const double lo_wavelen = p->orig_ctx / p->low_freq_factor, hi_wavelen = p->orig_ctx / p->high_freq_factor;
    const double wavelen = 2.0 * M_PI / inv;
    *smooth = 0;
    if (wavelen > lo_wavelen) return 0;
    if (wavelen < hi_wavelen) return 2;
    *smooth = (p->orig_ctx / wavelen - p->low_freq_factor) / (p->high_freq_factor - p->low_freq_factor);
    return 1;
}

void sa_rope_inv_freq(const struct sa_rope_params *p, float *inv_freq) {
    for (int64_t i = 0; i < p->n_rot / 2; i++) {
        double inv = base_inv_freq(p, i), smooth;
        if (p->factors) {
            inv /= (double)p->factors[i];
        } else if (p->scaling == SA_ROPE_SCALING_LLAMA3) {
            switch (llama3_band(p, inv, &smooth)) {
            case 0: inv /= p->factor; break;
            case 1: inv = (1.0 - smooth) * inv / p->factor + smooth * inv; break;
            default: break;
            }
        }
        if (p->scaling == SA_ROPE_SCALING_LINEAR && p->factor > 0) inv /= p->factor;
        inv_freq[i] = (float)inv;
    }
}

void sa_llama3_rope_factors(const struct sa_model_config *c, float *out) {
    struct sa_rope_params p = sa_rope_params_of(c, false);
    for (int64_t i = 0; i < p.n_rot / 2; i++) {
        double smooth;
        switch (llama3_band(&p, base_inv_freq(&p, i), &smooth)) {
        case 0: out[i] = (float)p.factor; break;
        case 1: out[i] = (float)(1.0 / ((1 - smooth) / p.factor + smooth)); break;
        default: out[i] = 1.0f; break;
        }
    }
}
