/* model_config.c: the hyper-parameters of Llama, Qwen2, Qwen3 and Gemma 3 models, from GGUF
 * metadata (llama.cpp's key names, ref: gguf-py constants.py Keys) or from a Hugging Face
 * config.json (ref: transformers' LlamaConfig, Qwen2Config, Qwen3Config, Gemma3TextConfig,
 * whose defaults are used for fields a file leaves out). */
#define _GNU_SOURCE
#include "sa/model_config.h"

#include "core/core_impl.h"
#include "formats/arch_impl.h"
#include "formats/model_config_impl.h"
#include "sa/gguf.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sa_arch_name and sa_arch_from_name: src/formats/arch.c, from the architecture table. */

void sa_model_config_defaults(struct sa_model_config *c, enum sa_arch arch) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", sa_arch_name(arch));
    c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_scaling = SA_ROPE_SCALING_NONE;
    c->rope_scale_factor = 1.0f;
    c->rope_low_freq_factor = 1.0f;
    c->rope_high_freq_factor = 4.0f;
    c->rope_orig_ctx = 8192;
    const struct sa_arch_info *ai = sa_arch_info(arch);
    if (!ai) return;
    c->rms_eps = ai->rms_eps;
    c->rope_theta = ai->rope_theta;
    c->rope_theta_local = ai->rope_theta_local;
    c->sliding_window_pattern = ai->sliding_window_pattern;
    c->qkv_bias = ai->flags & SA_ARCH_F_QKV_BIAS;
    c->qk_norm = ai->flags & SA_ARCH_F_QK_NORM;
    c->tie_embeddings = ai->flags & SA_ARCH_F_TIED;
    c->embd_scale = ai->flags & SA_ARCH_F_EMBD_SCALE;
    c->gelu_mlp = ai->flags & SA_ARCH_F_GELU_MLP;
    /* norm_plus_one stays false: it describes HF weights (sa_model_config_from_hf_json) */
}

/* ---- validation ---- */

#define RANGE_I(field, lo, hi)                                                                       \
    do {                                                                                             \
        if (c->field < (lo) || c->field > (hi))                                                      \
            return sa_error(SA_STATUS_BAD_FILE, "model config: %s = %lld is out of range [%lld, %lld]", #field, \
                            (long long)c->field, (long long)(lo), (long long)(hi));                  \
    } while (0)
#define RANGE_F(field, lo, hi)                                                                       \
    do {                                                                                             \
        if (!isfinite(c->field) || c->field < (lo) || c->field > (hi))                               \
            return sa_error(SA_STATUS_BAD_FILE, "model config: %s = %g is out of range [%g, %g]", #field, \
                            (double)c->field, (double)(lo), (double)(hi));                           \
    } while (0)

enum sa_status sa_model_config_validate(const struct sa_model_config *c) {
    if (!sa_arch_info(c->arch))
        return sa_error(SA_STATUS_UNSUPPORTED, "model config: architecture '%s' is not supported (llama, qwen2, qwen3, gemma3)",
                        c->arch_name[0] ? c->arch_name : "?");
    RANGE_I(n_vocab, 1, 1 << 24);
    RANGE_I(n_embd, 1, 1 << 16);
    RANGE_I(n_layer, 1, 1024);
    RANGE_I(n_head, 1, 1024);
    RANGE_I(n_head_kv, 1, c->n_head);
    if (c->n_head % c->n_head_kv)
        return sa_error(SA_STATUS_BAD_FILE, "model config: n_head (%d) is not a multiple of n_head_kv (%d)", c->n_head, c->n_head_kv);
    RANGE_I(head_dim, 2, 4096);
    if (c->head_dim % 2) return sa_error(SA_STATUS_BAD_FILE, "model config: head_dim = %d must be even (RoPE rotates pairs)", c->head_dim);
    RANGE_I(n_ff, 1, 1 << 20);
    RANGE_I(n_ctx_train, 1, 1 << 26);
    RANGE_F(rms_eps, 1e-12, 0.1);
    RANGE_F(rope_theta, 1e-3, 1e12);
    RANGE_F(rope_theta_local, 0, 1e12);
    if (c->rope_scaling < SA_ROPE_SCALING_NONE || c->rope_scaling > SA_ROPE_SCALING_LLAMA3)
        return sa_error(SA_STATUS_BAD_FILE, "model config: rope_scaling = %d is unknown", (int)c->rope_scaling);
    if (c->rope_scaling != SA_ROPE_SCALING_NONE) RANGE_F(rope_scale_factor, 1e-3, 1e6);
    if (c->rope_scaling == SA_ROPE_SCALING_LLAMA3) {
        RANGE_F(rope_low_freq_factor, 1e-6, 1e6);
        RANGE_F(rope_high_freq_factor, 1e-6, 1e6);
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
            return sa_error(SA_STATUS_BAD_FILE, "model config: rope_high_freq_factor (%g) must exceed rope_low_freq_factor (%g)",
                            (double)c->rope_high_freq_factor, (double)c->rope_low_freq_factor);
        RANGE_I(rope_orig_ctx, 1, 1 << 26);
    }
    RANGE_I(sliding_window, 0, 1 << 26);
    RANGE_I(sliding_window_pattern, 0, 1025);
    RANGE_F(query_pre_attn_scalar, 0, 1e9);
    RANGE_F(final_logit_softcap, 0, 1e9);
    RANGE_F(attn_logit_softcap, 0, 1e9);
    return SA_STATUS_OK;
}

/* ---- GGUF ---- */

static bool gg_i32(const struct sa_gguf *g, const char *arch, const char *suffix, int32_t *out) {
    char key[160];
    int64_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!sa_gguf_get_i64(g, key, &v) || v < INT32_MIN || v > INT32_MAX) return false;
    *out = (int32_t)v;
    return true;
}

static bool gg_f32(const struct sa_gguf *g, const char *arch, const char *suffix, float *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return sa_gguf_get_f32(g, key, out);
}

/* Llama 3 scaling is stored by llama.cpp as the rope_freqs.weight tensor of factors; we
 * recognize Meta's parameters (low 1, high 4, original 8192) from it. */
static void infer_llama3(const struct sa_gguf *g, struct sa_model_config *c) {
    const struct sa_gguf_tensor *t = sa_gguf_find_tensor(g, SA_GGUF_ROPE_FREQS);
    if (!t || t->type != SA_DTYPE_F32 || t->n_dims != 1 || t->ne[0] != c->head_dim / 2 || c->head_dim > 4096) return;
    const float *f = t->data;
    struct sa_model_config k = *c;
    k.rope_scale_factor = 1.0f;
    for (int i = 0; i < c->head_dim / 2; i++) k.rope_scale_factor = fmaxf(k.rope_scale_factor, f[i]);
    k.rope_low_freq_factor = 1.0f;
    k.rope_high_freq_factor = 4.0f;
    k.rope_orig_ctx = 8192;
    float ref[2048];
    sa_llama3_rope_factors(&k, ref);
    for (int i = 0; i < c->head_dim / 2; i++)
        if (fabsf(ref[i] - f[i]) > 1e-3f * fabsf(ref[i])) {
            sa_log(SA_LOG_WARN, "rope_freqs.weight does not match Llama 3 scaling with low 1, high 4, original 8192");
            return;
        }
    k.rope_scaling = SA_ROPE_SCALING_LLAMA3;
    *c = k;
}

enum sa_status sa_model_config_from_gguf(const struct sa_gguf *g, struct sa_model_config *c) {
    char *arch = sa_gguf_get_string(g, "general.architecture");
    if (!arch) return sa_error(SA_STATUS_BAD_FILE, "GGUF: missing general.architecture");
    enum sa_arch a = SA_ARCH_UNKNOWN;
    if (sa_arch_from_name(arch, &a)) a = SA_ARCH_UNKNOWN; /* reported below, with the supported ones */
    sa_model_config_defaults(c, a);
    snprintf(c->arch_name, sizeof c->arch_name, "%s", arch);
    if (a == SA_ARCH_UNKNOWN) {
        enum sa_status s = sa_error(SA_STATUS_UNSUPPORTED, "GGUF: architecture '%.64s' is not supported (llama, qwen2, qwen3, gemma3)", arch);
        free(arch);
        return s;
    }
    char *name = sa_gguf_get_string(g, "general.name");
    if (name) snprintf(c->name, sizeof c->name, "%s", name);
    free(name);

    static const struct { const char *suffix; size_t off; } req[] = {
        {"block_count", offsetof(struct sa_model_config, n_layer)},
        {"embedding_length", offsetof(struct sa_model_config, n_embd)},
        {"feed_forward_length", offsetof(struct sa_model_config, n_ff)},
        {"attention.head_count", offsetof(struct sa_model_config, n_head)},
        {"context_length", offsetof(struct sa_model_config, n_ctx_train)},
    };
    for (size_t i = 0; i < SA_ARRAY_LEN(req); i++)
        if (!gg_i32(g, arch, req[i].suffix, (int32_t *)((char *)c + req[i].off))) {
            enum sa_status s = sa_error(SA_STATUS_BAD_FILE, "GGUF: missing or invalid %s.%s", arch, req[i].suffix);
            free(arch);
            return s;
        }
    if (!gg_i32(g, arch, "attention.head_count_kv", &c->n_head_kv)) c->n_head_kv = c->n_head;
    if (!gg_i32(g, arch, "attention.key_length", &c->head_dim)) c->head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
    gg_f32(g, arch, "attention.layer_norm_rms_epsilon", &c->rms_eps);
    gg_f32(g, arch, "rope.freq_base", &c->rope_theta);
    gg_i32(g, arch, "attention.sliding_window", &c->sliding_window);
    gg_f32(g, arch, "final_logit_softcapping", &c->final_logit_softcap);
    gg_f32(g, arch, "attn_logit_softcapping", &c->attn_logit_softcap);

    if (!gg_i32(g, arch, "vocab_size", &c->n_vocab)) {
        int64_t k = sa_gguf_find_key(g, "tokenizer.ggml.tokens");
        const struct sa_gguf_tensor *te = sa_gguf_find_tensor(g, "token_embd.weight");
        if (k >= 0 && sa_gguf_kv_type(g, k) == SA_GGUF_TYPE_ARRAY && sa_gguf_arr_n(g, k) <= INT32_MAX)
            c->n_vocab = (int32_t)sa_gguf_arr_n(g, k);
        else if (te && te->n_dims == 2 && te->ne[1] <= INT32_MAX)
            c->n_vocab = (int32_t)te->ne[1];
    }

    /* RoPE scaling: rope.scaling.type/factor (linear), the older rope.scale_linear, or the
     * rope_freqs tensor (Llama 3) */
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    char *st = sa_gguf_get_string(g, key);
    float lin = 0;
    enum sa_status s = SA_STATUS_OK;
    if (st && !strcmp(st, "linear")) {
        c->rope_scaling = SA_ROPE_SCALING_LINEAR;
        if (!gg_f32(g, arch, "rope.scaling.factor", &c->rope_scale_factor))
            s = sa_error(SA_STATUS_BAD_FILE, "GGUF: %s.rope.scaling.type is linear but %s.rope.scaling.factor is missing", arch, arch);
    } else if (st && strcmp(st, "none")) {
        s = sa_error(SA_STATUS_UNSUPPORTED, "GGUF: RoPE scaling type '%.32s' is not supported (none, linear, llama3)", st);
    } else if (!st && gg_f32(g, arch, "rope.scale_linear", &lin) && lin != 1.0f) {
        c->rope_scaling = SA_ROPE_SCALING_LINEAR;
        c->rope_scale_factor = lin;
    }
    free(st);
    if (!s && c->rope_scaling == SA_ROPE_SCALING_NONE && a == SA_ARCH_LLAMA) infer_llama3(g, c);
    if (!s && c->rope_scaling == SA_ROPE_SCALING_LINEAR && c->rope_scale_factor == 1.0f) c->rope_scaling = SA_ROPE_SCALING_NONE;

    c->tie_embeddings = sa_gguf_find_tensor(g, "output.weight") == NULL;
    if (a == SA_ARCH_GEMMA3) {
        /* llama.cpp (src/llama-model.cpp, LLM_ARCH_GEMMA3): every 6th layer is global,
         * local layers use base 10000, and the attention scale is 1/sqrt(head_dim) except
         * for the 27B model (62 layers), which uses hidden_size / n_head. */
        int32_t pat;
        if (gg_i32(g, arch, "attention.sliding_window_pattern", &pat)) c->sliding_window_pattern = pat;
        c->query_pre_attn_scalar = c->n_layer == 62 && c->n_head > 0 ? (float)(c->n_embd / c->n_head) : (float)c->head_dim;
        /* norm_plus_one stays false: llama.cpp's converter already added 1 to the norm weights */
    }
    free(arch);
    if (s) return s;
    return sa_model_config_validate(c);
}

/* ---- config.json ---- */

static const char *json_kind(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "null";
}

/* Field getters: a missing or null field leaves *out alone (an error if `required`). */
static enum sa_status js_int(const cJSON *o, const char *key, bool required, int32_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return required ? sa_error(SA_STATUS_BAD_JSON, "config.json: missing \"%s\"", key) : SA_STATUS_OK;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || !isfinite(d) || floor(d) != d)
        return sa_error(SA_STATUS_BAD_JSON, "config.json: \"%s\" must be an integer, not %s", key,
                        cJSON_IsNumber(v) ? "a fraction" : json_kind(v));
    if (d < INT32_MIN || d > INT32_MAX) return sa_error(SA_STATUS_BAD_JSON, "config.json: \"%s\" = %g is out of range", key, d);
    *out = (int32_t)d;
    return SA_STATUS_OK;
}

static enum sa_status js_float(const cJSON *o, const char *key, bool required, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v))
        return required ? sa_error(SA_STATUS_BAD_JSON, "config.json: missing \"%s\"", key) : SA_STATUS_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3e38)
        return sa_error(SA_STATUS_BAD_JSON, "config.json: \"%s\" must be a number, not %s", key, json_kind(v));
    *out = (float)v->valuedouble;
    return SA_STATUS_OK;
}

static enum sa_status js_bool(const cJSON *o, const char *key, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return SA_STATUS_OK;
    if (!cJSON_IsBool(v)) return sa_error(SA_STATUS_BAD_JSON, "config.json: \"%s\" must be true or false, not %s", key, json_kind(v));
    *out = cJSON_IsTrue(v);
    return SA_STATUS_OK;
}

/* A rope_scaling (or transformers 5 rope_parameters) object. */
static enum sa_status parse_rope(const cJSON *r, const char *field, struct sa_model_config *c) {
    if (!r || cJSON_IsNull(r)) return SA_STATUS_OK;
    if (!cJSON_IsObject(r)) return sa_error(SA_STATUS_BAD_JSON, "config.json: \"%s\" must be an object or null", field);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(r, "type");
    if (t && !cJSON_IsString(t)) return sa_error(SA_STATUS_BAD_JSON, "config.json: %s.rope_type must be a string", field);
    enum sa_status s = js_float(r, "rope_theta", false, &c->rope_theta);
    if (s) return s;
    const char *type = t ? t->valuestring : "default";
    if (!strcmp(type, "default")) return SA_STATUS_OK;
    if (!strcmp(type, "linear")) {
        c->rope_scaling = SA_ROPE_SCALING_LINEAR;
        return js_float(r, "factor", true, &c->rope_scale_factor);
    }
    if (!strcmp(type, "llama3")) {
        c->rope_scaling = SA_ROPE_SCALING_LLAMA3;
        if ((s = js_float(r, "factor", true, &c->rope_scale_factor)) ||
            (s = js_float(r, "low_freq_factor", true, &c->rope_low_freq_factor)) ||
            (s = js_float(r, "high_freq_factor", true, &c->rope_high_freq_factor)) ||
            (s = js_int(r, "original_max_position_embeddings", true, &c->rope_orig_ctx)))
            return sa_error_wrap(s, "%s (llama3)", field);
        return SA_STATUS_OK;
    }
    return sa_error(SA_STATUS_UNSUPPORTED, "config.json: %s type \"%.32s\" is not supported (default, linear, llama3)", field, type);
}

/* Gemma 3 layer_types: ["sliding_attention", ..., "full_attention", ...] must repeat with a
 * period that ends in the global layer (what our one pattern number can express). */
static enum sa_status parse_layer_types(const cJSON *lt, struct sa_model_config *c) {
    if (!lt || cJSON_IsNull(lt)) return SA_STATUS_OK;
    if (!cJSON_IsArray(lt)) return sa_error(SA_STATUS_BAD_JSON, "config.json: \"layer_types\" must be an array");
    int n = cJSON_GetArraySize(lt), first_full = -1, i = 0;
    if (n != c->n_layer)
        return sa_error(SA_STATUS_BAD_JSON, "config.json: \"layer_types\" has %d entries for %d layers", n, c->n_layer);
    for (const cJSON *e = lt->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || (strcmp(e->valuestring, "full_attention") && strcmp(e->valuestring, "sliding_attention")))
            return sa_error(SA_STATUS_BAD_JSON, "config.json: layer_types[%d] must be \"full_attention\" or \"sliding_attention\"", i);
        if (first_full < 0 && !strcmp(e->valuestring, "full_attention")) first_full = i;
    }
    if (first_full < 0) { /* all local, as HF writes for fewer layers than the pattern */
        if (c->sliding_window_pattern <= c->n_layer) c->sliding_window_pattern = c->n_layer + 1;
        return SA_STATUS_OK;
    }
    int pat = first_full + 1;
    i = 0;
    for (const cJSON *e = lt->child; e; e = e->next, i++)
        if (((i + 1) % pat == 0) != !strcmp(e->valuestring, "full_attention"))
            return sa_error(SA_STATUS_UNSUPPORTED, "config.json: layer_types is not a repeating pattern of %d layers ending in a global one", pat);
    c->sliding_window_pattern = pat;
    return SA_STATUS_OK;
}

static enum sa_status parse_hf(const cJSON *root, struct sa_model_config *c) {
    if (!cJSON_IsObject(root)) return sa_error(SA_STATUS_BAD_JSON, "config.json: not a JSON object");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *arch0 = NULL;
    if (archs && !cJSON_IsNull(archs)) {
        if (!cJSON_IsArray(archs) || (archs->child && !cJSON_IsString(archs->child)))
            return sa_error(SA_STATUS_BAD_JSON, "config.json: \"architectures\" must be an array of strings");
        if (archs->child) arch0 = archs->child->valuestring;
    }
    if (mt && !cJSON_IsString(mt)) return sa_error(SA_STATUS_BAD_JSON, "config.json: \"model_type\" must be a string");
    const char *type = mt ? mt->valuestring : NULL;
    enum sa_arch a = SA_ARCH_UNKNOWN;
    bool multimodal = false;
    for (int i = 0; i < sa_arch_count() && !a; i++) {
        const struct sa_arch_info *ai = sa_arch_at(i);
        if (type ? !strcmp(type, ai->hf_model_type) : arch0 && !strcmp(arch0, ai->hf_class)) {
            a = ai->arch;
        } else if (ai->hf_model_type_mm &&
                   (type ? !strcmp(type, ai->hf_model_type_mm) : arch0 && !strcmp(arch0, ai->hf_class_mm))) {
            a = ai->arch;
            multimodal = true;
        }
    }
    if (!a)
        return sa_error(SA_STATUS_UNSUPPORTED, "config.json: model type \"%.64s\" is not supported (llama, qwen2, qwen3, gemma3_text)",
                        type ? type : arch0 ? arch0 : "(none)");
    /* a multimodal Gemma 3 keeps the language model's settings in text_config */
    const cJSON *o = root;
    if (multimodal && type) {
        o = cJSON_GetObjectItemCaseSensitive(root, "text_config");
        if (!cJSON_IsObject(o)) return sa_error(SA_STATUS_BAD_JSON, "config.json: a \"gemma3\" config needs a \"text_config\" object");
    }
    sa_model_config_defaults(c, a);
    c->norm_plus_one = sa_arch_has(a, SA_ARCH_F_NORM_PLUS_ONE); /* HF Gemma RMSNorm computes x * (1 + w) */
    bool req = a != SA_ARCH_GEMMA3; /* Gemma3TextConfig has defaults for everything */
    if (a == SA_ARCH_GEMMA3) {
        c->n_vocab = 262208;
        c->n_embd = 2304;
        c->n_ff = 9216;
        c->n_layer = 26;
        c->n_head = 8;
        c->n_head_kv = 4;
        c->head_dim = 256;
        c->n_ctx_train = 131072;
        c->sliding_window = 4096;
        c->query_pre_attn_scalar = 256;
    } else {
        c->rms_eps = 1e-6f;
        c->n_ctx_train = 2048;
    }
    enum sa_status s;
    c->n_head_kv = 0;
    if ((s = js_int(o, "vocab_size", req, &c->n_vocab)) || (s = js_int(o, "hidden_size", req, &c->n_embd)) ||
        (s = js_int(o, "intermediate_size", req, &c->n_ff)) || (s = js_int(o, "num_hidden_layers", req, &c->n_layer)) ||
        (s = js_int(o, "num_attention_heads", req, &c->n_head)) || (s = js_int(o, "num_key_value_heads", false, &c->n_head_kv)) ||
        (s = js_int(o, "max_position_embeddings", false, &c->n_ctx_train)) || (s = js_float(o, "rms_norm_eps", false, &c->rms_eps)) ||
        (s = js_float(o, "rope_theta", false, &c->rope_theta)))
        return s;
    if (!c->n_head_kv) c->n_head_kv = a == SA_ARCH_GEMMA3 ? 4 : c->n_head;
    if (a == SA_ARCH_LLAMA) c->head_dim = 0;
    if (a == SA_ARCH_QWEN3) c->head_dim = 128;
    if ((s = js_int(o, "head_dim", false, &c->head_dim))) return s;
    if (!c->head_dim && c->n_head > 0) c->head_dim = c->n_embd / c->n_head;
    if (a == SA_ARCH_QWEN2) c->head_dim = c->n_head > 0 ? c->n_embd / c->n_head : 0;
    if ((s = js_bool(o, "tie_word_embeddings", &c->tie_embeddings))) return s;
    if ((s = parse_rope(cJSON_GetObjectItemCaseSensitive(o, "rope_scaling"), "rope_scaling", c))) return s;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(o, "rope_parameters");
    if (rp && cJSON_IsObject(rp) && cJSON_GetObjectItemCaseSensitive(rp, "full_attention")) {
        /* transformers 5 Gemma 3: one RoPE setting per layer type */
        if ((s = parse_rope(cJSON_GetObjectItemCaseSensitive(rp, "full_attention"), "rope_parameters.full_attention", c))) return s;
        const cJSON *sl = cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention");
        if (sl && (s = js_float(sl, "rope_theta", false, &c->rope_theta_local))) return s;
    } else if ((s = parse_rope(rp, "rope_parameters", c))) {
        return s;
    }
    if (a == SA_ARCH_LLAMA || a == SA_ARCH_QWEN3) {
        bool bias = false;
        if ((s = js_bool(o, "attention_bias", &bias))) return s;
        c->qkv_bias = bias;
    }
    if (a == SA_ARCH_QWEN2) {
        bool swa = false;
        if ((s = js_bool(o, "use_sliding_window", &swa))) return s;
        if (swa) return sa_error(SA_STATUS_UNSUPPORTED, "config.json: Qwen2 use_sliding_window = true is not supported");
    }
    if (a == SA_ARCH_GEMMA3) {
        bool bias = false;
        if ((s = js_bool(o, "attention_bias", &bias))) return s;
        if (bias) return sa_error(SA_STATUS_UNSUPPORTED, "config.json: Gemma 3 with attention_bias = true is not supported");
        if ((s = js_int(o, "sliding_window", false, &c->sliding_window)) ||
            (s = js_float(o, "query_pre_attn_scalar", false, &c->query_pre_attn_scalar)) ||
            (s = js_float(o, "final_logit_softcapping", false, &c->final_logit_softcap)) ||
            (s = js_float(o, "attn_logit_softcapping", false, &c->attn_logit_softcap)) ||
            (s = js_float(o, "rope_local_base_freq", false, &c->rope_theta_local)) ||
            (s = js_int(o, "sliding_window_pattern", false, &c->sliding_window_pattern)) ||
            (s = js_int(o, "_sliding_window_pattern", false, &c->sliding_window_pattern)) ||
            (s = parse_layer_types(cJSON_GetObjectItemCaseSensitive(o, "layer_types"), c)))
            return s;
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_activation");
        if (act && !cJSON_IsNull(act) &&
            (!cJSON_IsString(act) || (strcmp(act->valuestring, "gelu_pytorch_tanh") && strcmp(act->valuestring, "gelu"))))
            return sa_error(SA_STATUS_UNSUPPORTED, "config.json: Gemma 3 hidden_activation must be \"gelu_pytorch_tanh\"");
    } else {
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
        if (act && !cJSON_IsNull(act) && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
            return sa_error(SA_STATUS_UNSUPPORTED, "config.json: hidden_act must be \"silu\" for %s", sa_arch_name(a));
    }
    if (c->rope_scaling == SA_ROPE_SCALING_LINEAR && c->rope_scale_factor == 1.0f) c->rope_scaling = SA_ROPE_SCALING_NONE;
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
    if (cJSON_IsString(nm)) snprintf(c->name, sizeof c->name, "%s", nm->valuestring);
    return SA_STATUS_OK;
}

enum sa_status sa_model_config_from_hf_json(const char *json, size_t len, struct sa_model_config *c) {
    sa_model_config_defaults(c, SA_ARCH_UNKNOWN);
    if (!json) return sa_error(SA_STATUS_BAD_ARGUMENT, "config.json: NULL text");
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return sa_error(SA_STATUS_BAD_JSON, "config.json: not valid JSON");
    enum sa_status s = parse_hf(root, c);
    cJSON_Delete(root);
    if (s) return s;
    s = sa_model_config_validate(c);
    return s ? sa_error_wrap(SA_STATUS_BAD_JSON, "config.json") : SA_STATUS_OK;
}
