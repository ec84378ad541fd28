/* cmd_train.c: `salign train --base MODEL --data FILE --out DIR [options]`, a thin main over
 * sa_train_run (sa/train.h): fine-tunes a model into an aligner on correction records. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"
#include "sa/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool parse_precision(const char *v, void *field) {
    return sa_train_precision_parse(v, field);
}
static bool parse_targets(const char *v, void *field) {
    return sa_lora_targets_parse(v, field);
}
static bool parse_st_type(const char *v, void *field) {
    enum sa_dtype t;
    if (!sa_dtype_from_name(v, &t) || (t != SA_DTYPE_F32 && t != SA_DTYPE_F16 && t != SA_DTYPE_BF16)) return false;
    *(enum sa_dtype *)field = t;
    return true;
}
static bool parse_gguf_type(const char *v, void *field) {
    enum sa_dtype t = SA_DTYPE_COUNT; /* none */
    if (strcmp(v, "none") && (!sa_dtype_from_name(v, &t) || (t != SA_DTYPE_F32 && t != SA_DTYPE_F16 &&
                                                              t != SA_DTYPE_BF16 && t != SA_DTYPE_Q8_0)))
        return false;
    *(enum sa_dtype *)field = t;
    return true;
}

struct train_opts {
    const char *base;
    struct sa_train_params p;
};

#define O(f) CLI_AT(struct train_opts, f)
#define P(f) CLI_AT(struct train_opts, p.f)
static const struct cli_opt train_opts[] = {
    {"base", 'b', CLI_OPT_STR, O(base), .arg = "MODEL", .help = "base model"},
    {"data", 'd', CLI_OPT_STR, P(data), .arg = "FILE", .help = "training records"},
    {"out", 'o', CLI_OPT_STR, P(out), .arg = "DIR", .help = "output directory"},
    {"lora", 0, CLI_OPT_INT, P(model.lora_rank), .imin = 0, .imax = 4096, .arg = "R",
     .help = "LoRA of rank R (base weights frozen); default 0: full fine-tuning"},
    {"lora-alpha", 0, CLI_OPT_FLOAT, P(model.lora_alpha), .lo = 1e-6, .hi = 1e6, .arg = "A",
     .help = "LoRA scale A/R (default 2R)"},
    {"lora-dropout", 0, CLI_OPT_FLOAT, P(model.lora_dropout), .lo = 0, .hi = 0.99, .arg = "P",
     .help = "dropout on the adapter input (default 0)"},
    {"lora-targets", 0, CLI_OPT_CUSTOM, P(model.lora_targets), .parse = parse_targets,
     .expect = "a comma-separated list of q, k, v, o, gate, up, down, or all", .arg = "L",
     .help = "modules, e.g. q,k,v,o,gate,up,down (the default) or all"},
    {"epochs", 0, CLI_OPT_INT, P(epochs), .imin = 1, .imax = 100000, .arg = "E",
     .help = "passes over the data (default 3)"},
    {"max-steps", 0, CLI_OPT_INT, P(max_steps), .imin = 1, .imax = INT64_MAX, .arg = "N",
     .help = "stop after N steps in total (overrides --epochs)"},
    {"lr", 0, CLI_OPT_FLOAT, P(lr), .lo = 1e-12, .hi = 10, .arg = "LR",
     .help = "peak learning rate (default 2e-5), cosine schedule to 0"},
    {"warmup-ratio", 0, CLI_OPT_FLOAT, P(warmup_ratio), .lo = 0, .hi = 1, .arg = "R",
     .help = "share of the steps with linear warmup (default 0.03)"},
    {"beta1", 0, CLI_OPT_FLOAT, P(optim.beta1), .lo = 0, .hi = 0.999999, .arg = "B",
     .help = "AdamW beta1 (default 0.9)"},
    {"beta2", 0, CLI_OPT_FLOAT, P(optim.beta2), .lo = 0, .hi = 0.999999, .arg = "B",
     .help = "AdamW beta2 (default 0.95)"},
    {"eps", 0, CLI_OPT_FLOAT, P(optim.eps), .lo = 0, .hi = 1, .arg = "E", .help = "AdamW epsilon (default 1e-8)"},
    {"weight-decay", 0, CLI_OPT_FLOAT, P(optim.weight_decay), .lo = 0, .hi = 10, .arg = "W",
     .help = "decoupled weight decay on matrices (default 0)"},
    {"clip", 0, CLI_OPT_FLOAT, P(optim.max_grad_norm), .lo = 0, .hi = 1e9, .arg = "N",
     .help = "clip the gradient's global norm to N (default 1; 0: off)"},
    {"batch", 0, CLI_OPT_INT, P(batch), .imin = 1, .imax = 4096, .arg = "B",
     .help = "sequences per micro-batch (default 4)"},
    {"grad-accum", 0, CLI_OPT_INT, P(grad_accum), .imin = 1, .imax = 65536, .arg = "G",
     .help = "micro-batches per optimizer step (default 1)"},
    {"max-length", 0, CLI_OPT_INT, P(max_length), .imin = 8, .imax = 1 << 20, .arg = "L",
     .help = "tokens per sequence (default 512); longer records lose\nsentences from the start of the prefix, or "
             "are dropped"},
    {"max-records", 0, CLI_OPT_INT, P(max_records), .imin = 1, .imax = INT64_MAX, .arg = "N",
     .help = "use the first N records only"},
    {"eval-fraction", 0, CLI_OPT_FLOAT, P(eval_fraction), .lo = 0, .hi = 0.9, .arg = "F",
     .help = "share of the questions held out for the eval loss (default 0.05)"},
    {"eval-every", 0, CLI_OPT_INT, P(eval_every), .imin = 0, .imax = INT32_MAX, .arg = "N",
     .help = "evaluate every N steps (default: at the end)"},
    {"save-every", 0, CLI_OPT_INT, P(save_every), .imin = 0, .imax = INT32_MAX, .arg = "N",
     .help = "checkpoint every N steps (default: at the end)"},
    {"resume", 0, CLI_OPT_FLAG, P(resume), .help = "continue from DIR/checkpoint (same options)"},
    {"seed", 0, CLI_OPT_UINT, P(model.seed), .umax = UINT64_MAX, .arg = "S",
     .help = "shuffling, LoRA init and dropout (default 0)"},
    {"threads", 't', CLI_OPT_INT, P(model.n_threads), .imin = 1, .imax = 256, .arg = "N",
     .help = "threads (default 1)"},
    {"precision", 0, CLI_OPT_CUSTOM, P(model.precision), .parse = parse_precision, .expect = "fp32 or bf16",
     .arg = "P",
     .help = "fp32 (default) or bf16: mixed precision, matrix products in\nbf16 (AVX512-BF16), f32 weights, "
             "gradients and AdamW"},
    {"save-type", 0, CLI_OPT_CUSTOM, P(st_type), .parse = parse_st_type, .expect = "f32, f16 or bf16", .arg = "T",
     .help = "safetensors type: f32 (default), f16, bf16"},
    {"gguf-type", 0, CLI_OPT_CUSTOM, P(gguf_type), .parse = parse_gguf_type,
     .expect = "f32, f16, bf16, q8_0 or none", .arg = "T", .help = "GGUF type: f32, f16 (default), bf16, q8_0, or none"},
    {"no-export", 0, CLI_OPT_FLAG, P(no_export), .help = "do not write DIR/model"},
    {"log-every", 0, CLI_OPT_INT, P(log_every), .imin = 0, .imax = INT32_MAX, .arg = "N",
     .help = "progress line every N steps when not on a terminal (default 10)"},
    {"stop-after-steps", 0, CLI_OPT_INT, P(stop_after_steps), .imin = 1, .imax = INT64_MAX, .arg = "N",
     .help = "debug: checkpoint and stop after N steps of this process"},
    {"quiet", 'q', CLI_OPT_FLAG, P(quiet), .help = "no progress output"},
    CLI_HELP_ENTRY,
};
#undef P
#undef O

const struct cli_cmd cli_cmd_train = {
    .name = "train",
    .opts = train_opts,
    .n_opts = sizeof train_opts / sizeof train_opts[0],
    .usage = "Usage: salign train --base MODEL --data FILE --out DIR [OPTIONS]\n\n"
             "Fine-tunes MODEL (a cached name, a .gguf file or a Hugging Face directory) on aligner\n"
             "records (JSONL or a JSON array; sentence records {question, prefix, last, correction}\n"
             "or whole-answer records {question, answer, correction}). The loss is the cross-entropy\n"
             "of the correction and the end-of-turn token; the prompt is masked. Writes DIR/log.csv,\n"
             "DIR/loss.svg, DIR/checkpoint/ and the model in DIR/model/ (model.safetensors,\n"
             "config.json, tokenizer files, model-<type>.gguf). Defaults: the official recipe.\n\n",
    .epilog = "Example:\n"
              "  salign train --base smollm2-135m-instruct --data records.jsonl --out run1 --lora 16 --lr 2e-4\n",
};

int cmd_train(int argc, char **argv) {
    struct train_opts o = {.p = sa_train_default_params()};
    int prc = cli_parse(&cli_cmd_train, argc, argv, &o, NULL);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    struct sa_train_params p = o.p;
    const char *base = o.base;
    if (!base || !p.data || !p.out) return cli_usage_error("train", "--base, --data and --out are required");
    char *path = NULL;
    if (sa_hub_resolve(base, NULL, &path) != SA_STATUS_OK) return cli_fail(base);
    p.base = path;
    struct sa_train_result r;
    enum sa_status s = sa_train_run(&p, &r);
    free(path);
    if (s) return cli_fail("train");
    if (!p.quiet) {
        fprintf(stderr, "salign train: %lld/%lld steps, loss %.4f -> %.4f", (long long)r.steps, (long long)r.total_steps,
                r.first_loss, r.last_loss);
        if (!isnan(r.eval_loss_before) || !isnan(r.eval_loss_after))
            fprintf(stderr, ", held-out loss %.4f -> %.4f", r.eval_loss_before, r.eval_loss_after);
        fprintf(stderr, "; %lld tokens in %.1f s (%.1f tok/s); peak memory %.0f MiB%s\n", (long long)r.tokens, r.seconds,
                r.seconds > 0 ? (double)r.tokens / r.seconds : 0.0, (double)r.peak_rss_kb / 1024,
                r.stopped_early ? " (stopped early: --stop-after-steps)" : "");
    }
    return CLI_OK;
}
