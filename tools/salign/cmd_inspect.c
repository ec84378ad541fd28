/* cmd_inspect.c: `salign inspect MODEL`: architecture, parameter count, tensor types and
 * sizes, context length, RoPE settings, tokenizer, special tokens and chat template of a
 * GGUF file or a safetensors checkpoint directory (config.json + tokenizer.json); for a GGUF
 * LoRA adapter its architecture, rank, alpha and adapted modules. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Per-type totals of a model's tensors. */
struct type_stats {
    uint64_t n_tensors[SA_DTYPE_COUNT];
    uint64_t n_params[SA_DTYPE_COUNT];
    uint64_t n_bytes[SA_DTYPE_COUNT];
};

static void add_tensor(struct type_stats *s, enum sa_dtype t, uint64_t n_params, uint64_t n_bytes) {
    if ((int)t < 0 || t >= SA_DTYPE_COUNT) return;
    s->n_tensors[t]++;
    s->n_params[t] += n_params;
    s->n_bytes[t] += n_bytes;
}

static void print_stats(const struct type_stats *s) {
    uint64_t params = 0, bytes = 0;
    for (int t = 0; t < SA_DTYPE_COUNT; t++) {
        params += s->n_params[t];
        bytes += s->n_bytes[t];
    }
    printf("parameters:     %.2f M (%llu)\n", (double)params / 1e6, (unsigned long long)params);
    printf("tensor data:    %.1f MiB\n", (double)bytes / (1024.0 * 1024.0));
    printf("tensor types:\n");
    for (int t = 0; t < SA_DTYPE_COUNT; t++) {
        if (!s->n_tensors[t]) continue;
        const char *name = sa_dtype_name((enum sa_dtype)t);
        printf("  %-6s %4llu tensors  %10.2f M params  %8.1f MiB\n", name ? name : "?",
               (unsigned long long)s->n_tensors[t], (double)s->n_params[t] / 1e6,
               (double)s->n_bytes[t] / (1024.0 * 1024.0));
    }
}

static void print_config(const struct sa_model_config *c) {
    printf("architecture:   %s\n", c->arch_name);
    if (c->name[0]) printf("name:           %s\n", c->name);
    printf("layers:         %d\n", c->n_layer);
    printf("hidden size:    %d\n", c->n_embd);
    printf("heads:          %d (kv %d, head dim %d)\n", c->n_head, c->n_head_kv, c->head_dim);
    printf("ffn size:       %d\n", c->n_ff);
    printf("vocab size:     %d\n", c->n_vocab);
    printf("context length: %d\n", c->n_ctx_train);
    printf("rms eps:        %g\n", (double)c->rms_eps);
    printf("rope:           theta %g", (double)c->rope_theta);
    if (c->rope_theta_local > 0) printf(", local theta %g", (double)c->rope_theta_local);
    if (c->rope_scaling == SA_ROPE_SCALING_LINEAR) printf(", linear scaling x%g", (double)c->rope_scale_factor);
    if (c->rope_scaling == SA_ROPE_SCALING_LLAMA3)
        printf(", llama3 scaling x%g (low %g, high %g, original ctx %d)", (double)c->rope_scale_factor,
               (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_orig_ctx);
    printf("\n");
    if (c->sliding_window)
        printf("sliding window: %d tokens (every %d-th layer global)\n", c->sliding_window, c->sliding_window_pattern);
    printf("tied output:    %s\n", c->tie_embeddings ? "yes" : "no");
}

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') fputs("\\n", stdout);
        else if (ch == '\t') fputs("\\t", stdout);
        else if (ch < 0x20 || ch == 0x7f) printf("\\x%02x", ch);
        else putchar(ch);
    }
}

static void print_special(const struct sa_tokenizer *tok, const char *label, int32_t id) {
    if (id < 0) return;
    const char *s = sa_tokenizer_vocab_str(tok, id);
    printf("  %-4s %6d  ", label, id);
    if (s) print_escaped(s, strlen(s));
    printf("\n");
}

static void print_tokenizer(const struct sa_tokenizer *tok) {
    printf("tokenizer:      %s", sa_tokenizer_kind(tok) == SA_TOKENIZER_BPE ? "byte-level BPE" : "SentencePiece-style BPE");
    const char *pre = sa_tokenizer_pre(tok);
    if (pre && pre[0]) printf(" (pre-tokenizer %s)", pre);
    printf(", %d tokens, add BOS %s\n", sa_tokenizer_n_vocab(tok), sa_tokenizer_add_bos(tok) ? "yes" : "no");
    printf("special tokens:\n");
    print_special(tok, "bos", sa_tokenizer_bos(tok));
    print_special(tok, "eos", sa_tokenizer_eos(tok));
    if (sa_tokenizer_eot(tok) != sa_tokenizer_eos(tok)) print_special(tok, "eot", sa_tokenizer_eot(tok));
    print_special(tok, "pad", sa_tokenizer_pad(tok));
}

static void print_template(const char *tmpl, const char *arch) {
    enum sa_chat_format fmt = sa_chat_template_detect(tmpl, arch);
    printf("chat format:    %s%s\n", fmt == SA_CHAT_FORMAT_UNKNOWN ? "unknown" : sa_chat_format_name(fmt),
           tmpl ? " (detected from the template)" : " (built in, chosen by architecture)");
    if (!tmpl) {
        printf("chat template:  (none in the file)\n");
        return;
    }
    printf("chat template:  %zu bytes\n", strlen(tmpl));
    printf("----\n%s\n----\n", tmpl);
}

/* A GGUF LoRA adapter (general.type "adapter"): what sa_lora_file_info reads and checks. */
static void print_adapter(const char *path) {
    struct sa_lora_info li;
    if (sa_lora_file_info(path, &li)) {
        printf("adapter:        (not one salign can load: %s)\n", sa_last_error());
        return;
    }
    static const char *const mods[] = {"q", "k", "v", "o", "gate", "up", "down"};
    char m[64] = "";
    for (int j = 0; j < 7; j++)
        if (li.modules & (1u << j)) snprintf(m + strlen(m), sizeof m - strlen(m), "%s%s", m[0] ? "," : "", mods[j]);
    printf("adapter:        LoRA for architecture %s, rank %d, alpha %g (scale %g)\n", li.arch, li.rank,
           (double)li.alpha, li.alpha > 0 ? (double)li.alpha / li.rank : 1.0);
    if (li.name[0]) printf("name:           %s\n", li.name);
    printf("adapted:        %d matrices in %d layers (%s), %s\n", li.n_matrices, li.n_layers, m, li.type);
}

static int inspect_gguf(const char *path, bool list_tensors) {
    struct sa_gguf *g = NULL;
    if (sa_gguf_open(path, &g)) return cli_fail(NULL);
    printf("file:           %s\n", path);
    printf("format:         GGUF v%u, %lld tensors, %lld metadata keys\n", sa_gguf_version(g),
           (long long)sa_gguf_n_tensors(g), (long long)sa_gguf_n_kv(g));
    struct sa_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char *gtype = sa_gguf_get_string(g, "general.type");
    const bool adapter = gtype && !strcmp(gtype, "adapter");
    free(gtype);
    if (adapter) print_adapter(path);
    else if (sa_model_config_from_gguf(g, &cfg) == SA_STATUS_OK) print_config(&cfg);
    else printf("architecture:   (not a supported model: %s)\n", sa_last_error());
    struct type_stats st;
    memset(&st, 0, sizeof st);
    for (int64_t i = 0; i < sa_gguf_n_tensors(g); i++) {
        const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= (uint64_t)t->ne[d];
        add_tensor(&st, t->type, n, t->n_bytes);
    }
    print_stats(&st);
    struct sa_tokenizer *tok = NULL;
    if (adapter) {
        /* no tokenizer nor template in an adapter */
    } else if (sa_tokenizer_load_gguf(g, &tok) == SA_STATUS_OK) {
        print_tokenizer(tok);
        sa_tokenizer_free(tok);
    } else {
        printf("tokenizer:      (none: %s)\n", sa_last_error());
    }
    char *tmpl = adapter ? NULL : sa_gguf_get_string(g, "tokenizer.chat_template");
    if (!adapter) print_template(tmpl, cfg.arch_name);
    free(tmpl);
    if (list_tensors) {
        printf("tensors:\n");
        for (int64_t i = 0; i < sa_gguf_n_tensors(g); i++) {
            const struct sa_gguf_tensor *t = sa_gguf_tensor(g, i);
            printf("  %-40s %-5s [", t->name, sa_dtype_name(t->type));
            for (uint32_t d = 0; d < t->n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t->ne[d]);
            printf("] %llu bytes\n", (unsigned long long)t->n_bytes);
        }
    }
    sa_gguf_free(g);
    return CLI_OK;
}

static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, file);
    return p;
}

static int inspect_dir(const char *dir, bool list_tensors) {
    char *cfg_path = join(dir, "config.json");
    char *json = NULL;
    size_t len = 0;
    int rc = CLI_OK;
    if (!cfg_path || cli_read_file(cfg_path, &json, &len)) {
        rc = cli_fail(cfg_path ? NULL : dir); /* cli_read_file names cfg_path */
        free(cfg_path);
        return rc;
    }
    printf("directory:      %s\n", dir);
    struct sa_model_config cfg;
    if (sa_model_config_from_hf_json(json, len, &cfg) == SA_STATUS_OK) print_config(&cfg);
    else printf("architecture:   (not a supported model: %s)\n", sa_last_error());
    free(json);
    free(cfg_path);
    struct sa_safetensors *st = NULL;
    if (sa_safetensors_open(dir, &st)) return cli_fail(NULL);
    printf("format:         safetensors, %lld tensors\n", (long long)sa_safetensors_n_tensors(st));
    struct type_stats stats;
    memset(&stats, 0, sizeof stats);
    for (int64_t i = 0; i < sa_safetensors_n_tensors(st); i++) {
        const struct sa_st_tensor *t = sa_safetensors_tensor(st, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
        add_tensor(&stats, t->type, n, t->n_bytes);
    }
    print_stats(&stats);
    char *tok_path = join(dir, "tokenizer.json");
    char *tcfg_path = join(dir, "tokenizer_config.json");
    struct sa_tokenizer *tok = NULL;
    if (tok_path && tcfg_path && cli_file_exists(tok_path)) {
        if (sa_tokenizer_load_hf(tok_path, cli_file_exists(tcfg_path) ? tcfg_path : NULL, &tok) == SA_STATUS_OK) {
            print_tokenizer(tok);
            sa_tokenizer_free(tok);
        } else {
            printf("tokenizer:      (unreadable: %s)\n", sa_last_error());
        }
    } else {
        printf("tokenizer:      (no tokenizer.json)\n");
    }
    free(tok_path);
    free(tcfg_path);
    if (list_tensors) {
        printf("tensors:\n");
        for (int64_t i = 0; i < sa_safetensors_n_tensors(st); i++) {
            const struct sa_st_tensor *t = sa_safetensors_tensor(st, i);
            printf("  %-48s %-5s [", t->name, sa_dtype_name(t->type));
            for (uint32_t d = 0; d < t->n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
            printf("] %llu bytes\n", (unsigned long long)t->n_bytes);
        }
    }
    sa_safetensors_free(st);
    return rc;
}

struct inspect_opts {
    bool tensors;
};

static const struct cli_opt inspect_opts[] = {
    {"tensors", 't', CLI_OPT_FLAG, CLI_AT(struct inspect_opts, tensors),
     .help = "list every tensor (name, type, shape, bytes)"},
    CLI_HELP_ENTRY,
};

const struct cli_cmd cli_cmd_inspect = {
    .name = "inspect",
    .opts = inspect_opts,
    .n_opts = sizeof inspect_opts / sizeof inspect_opts[0],
    .operands = true,
    .usage = "Usage: salign inspect [OPTIONS] MODEL\n\n"
             "Show what a model is: architecture, parameters, tensor types and sizes, context\n"
             "length, RoPE, tokenizer, special tokens and chat template.\n"
             "MODEL is a known name (see 'salign pull --list'), a GGUF file, or a directory with\n"
             "config.json + *.safetensors (+ tokenizer.json).\n\n",
};

int cmd_inspect(int argc, char **argv) {
    struct inspect_opts o = {0};
    int n_ops = 0;
    int prc = cli_parse(&cli_cmd_inspect, argc, argv, &o, &n_ops);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    if (n_ops != 1) return cli_usage_error("inspect", "expected one MODEL argument");
    const bool list_tensors = o.tensors;
    const int first = argc - 1;
    char *path = NULL;
    if (sa_hub_resolve(argv[first], NULL, &path)) return cli_fail(NULL);
    struct stat sb;
    int rc;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) rc = inspect_dir(path, list_tensors);
    else rc = inspect_gguf(path, list_tensors);
    free(path);
    return rc;
}
