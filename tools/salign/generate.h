/* generate.h: what `salign generate` and `salign chat` share: the model and sampling
 * options, loading a model by path or cached name, and the token loop that samples,
 * streams text and stops at end-of-generation tokens. */
#ifndef SA_CLI_GENERATE_H
#define SA_CLI_GENERATE_H

#include "sa/sa.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gen_opts {
    const char *model;    /* -m: a path or a cached model name */
    const char *system;   /* --system: system message (chat) */
    int32_t n_predict;    /* -n: most tokens to generate */
    int n_threads;        /* -t: 0 = all cores */
    int32_t n_ctx;        /* -c: context size, 0 = fit (generate) or the model's (chat) */
    bool batch_invariant; /* --batch-invariant: sa_ctx_params.batch_invariant */
    enum sa_dtype kv_type; /* --kv-type: sa_ctx_params.kv_type */
    struct sa_sampler_params sp;
    const char *prompt;   /* generate -p */
    int32_t n_samples;    /* generate --samples: 0 = one streamed completion */
    bool chat, json;      /* generate --chat, --json */
    const char *lora;     /* generate --lora: a GGUF LoRA adapter over the model, or NULL */
    float lora_scale;     /* generate --lora-scale: sa_ctx_params.lora_scale (default 1) */
    /* generate --proxy-*: proxy-tuning (sa/proxy.h); expert and anti NULL: off */
    const char *proxy_expert, *proxy_anti, *proxy_expert_lora;
    float proxy_alpha;    /* NAN: not given (1) */
    const char *cvec;     /* generate --control-vector: a GGUF control vector, or NULL */
    float cvec_scale;     /* generate --control-scale: sa_ctx_params.cvec_scale (default 1) */
};
void gen_opts_init(struct gen_opts *o);

/* The option table of generate and chat is in cmd_generate.c (cli_cmd_generate and
 * cli_cmd_chat of cli.h); entries with mask GEN_ONLY are generate's alone. */

/* Resolves `ref` (sa_hub_resolve) and loads it; prints the error and returns CLI_FAIL. */
int gen_load_model(const char *ref, int n_threads, struct sa_model **out);

/* Loads the LoRA adapter `path` over m (sa_lora_load); prints the error and returns CLI_FAIL. */
int gen_load_lora(const struct sa_model *m, const char *path, struct sa_lora **out);

/* The folder of shipped adapters (models/NAME/manifest.json, models/README.md):
 * $SALIGN_ADAPTERS, else the models/ folder above the salign binary's folder when it exists
 * (build/salign in a checkout: the repository's models/), else <prefix>/share/salign/models.
 * malloc'd, or NULL when none exists. */
char *gen_adapters_dir(void);
/* `ref` as a model that may be a shipped adapter's name: NAME with a manifest gives its base
 * (*base) and its adapter file (*adapter, sha256 checked); anything else gives *base = ref and
 * *adapter = NULL. Both malloc'd. Prints the error and returns CLI_FAIL (a bad manifest, a
 * changed adapter file). */
int gen_resolve_adapter_name(const char *ref, char **base, char **adapter);

struct gen_result {
    char *text;           /* malloc'd generated text (NUL-terminated), caller frees */
    size_t len;
    int32_t n_tokens;     /* tokens sampled (the end-of-generation token not counted) */
    double first_token_s; /* time of the first sample, from the call */
    double decode_s;      /* time of the decode steps after the first token */
    bool hit_eog;
};

/* Samples from the context's current logits, streams each token's text to stdout when
 * `stream`, appends the token and repeats, up to n_predict tokens, an end-of-generation
 * token, or a full context. Returns CLI_OK or CLI_FAIL (error printed). */
int gen_run(struct sa_ctx *ctx, struct sa_sampler *smp, const struct sa_tokenizer *tok, int32_t n_predict, bool stream,
            struct gen_result *res);
/* The same, sampling from the proxy-tuned logits of px over ctx (sa_proxy_logits); px NULL:
 * gen_run. */
int gen_run_proxy(struct sa_ctx *ctx, struct sa_proxy *px, struct sa_sampler *smp, const struct sa_tokenizer *tok,
                  int32_t n_predict, bool stream, struct gen_result *res);

#endif
