/* cmd_train.c: `salign train --base MODEL --data FILE --out DIR [options]`, a thin main over
 * sa_train_run (sa/train.h): fine-tunes a model into an aligner on correction records. The
 * progress lines are drawn here from the run's progress reports; Ctrl-C stops the run after
 * a checkpoint (its cancel hook). */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"
#include "sa/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool parse_precision(const char *v, void *field) {
    return sa_train_precision_from_name(v, field) == SA_STATUS_OK;
}
static bool parse_objective(const char *v, void *field) {
    return sa_train_objective_from_name(v, field) == SA_STATUS_OK;
}
static bool parse_targets(const char *v, void *field) {
    return sa_lora_targets_parse(v, field) == SA_STATUS_OK;
}
static bool parse_st_type(const char *v, void *field) {
    enum sa_dtype t;
    if (sa_dtype_from_name(v, &t) != SA_STATUS_OK || (t != SA_DTYPE_F32 && t != SA_DTYPE_F16 && t != SA_DTYPE_BF16)) return false;
    *(enum sa_dtype *)field = t;
    return true;
}
static bool parse_gguf_type(const char *v, void *field) {
    enum sa_dtype t = SA_DTYPE_COUNT; /* none */
    if (strcmp(v, "none") && (sa_dtype_from_name(v, &t) != SA_STATUS_OK ||
                              (t != SA_DTYPE_F32 && t != SA_DTYPE_F16 && t != SA_DTYPE_BF16 && t != SA_DTYPE_Q8_0)))
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
    {"objective", 0, CLI_OPT_CUSTOM, P(objective), .parse = parse_objective, .expect = "sft, dpo or sft-upstream",
     .arg = "O",
     .help = "sft (default): the aligner on its input; dpo: DPO of the upstream\n(prompt = question + prefix, chosen = "
             "correction, rejected\n= the original); sft-upstream: SFT of the upstream on the\ncorrections "
             "(docs/TRAINING.md, \"Objectives\")"},
    {"beta", 0, CLI_OPT_FLOAT, P(dpo_beta), .lo = 0, .hi = 1e4, .open = CLI_LO_OPEN, .arg = "B",
     .help = "DPO's beta (default 0.1)"},
    {"edit-weight", 0, CLI_OPT_FLOAT, P(edit_weight), .lo = 0, .hi = 1e4, .open = CLI_LO_OPEN, .arg = "W",
     .help = "sft: weigh the loss of a correction's edited tokens (from where\nit leaves the original sentence to where "
             "it rejoins it) by W,\nthe rest by 1 (default 1: plain SFT; docs/TRAINING.md)"},
    {"ref", 0, CLI_OPT_STR, P(dpo_ref), .arg = "MODEL",
     .help = "DPO's frozen reference model (same vocabulary); default: the\nbase before training (with --lora: the base "
             "without the adapter)"},
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
    {"init-from", 0, CLI_OPT_STR, P(init_from), .arg = "RUN",
     .help = "start from the trained weights of another run (its --out\ndirectory, or a checkpoint directory in it) "
             "or of a\nGGUF LoRA adapter file (models/NAME/adapter.gguf), with the\nsame base and LoRA shape; fresh "
             "optimizer and schedule"},
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
    {"adapter-only", 0, CLI_OPT_FLAG, P(adapter_only),
     .help = "LoRA: write only DIR/model/adapter.gguf (llama.cpp's\nGGUF LoRA format), not the merged model"},
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
             "config.json, tokenizer files, model-<type>.gguf; with --lora also adapter.gguf, the\n"
             "adapter alone in llama.cpp's GGUF LoRA format: salign generate --lora, salign align\n"
             "--aligner-lora, llama.cpp --lora). Defaults: the official recipe.\n"
             "--objective dpo / sft-upstream train the UPSTREAM on the same records instead (the\n"
             "paper's DPO and SFT baselines): the prompt is the question in MODEL's chat template\n"
             "with the prefix written into the answer.\n\n",
    .epilog = "Example:\n"
              "  salign train --base smollm2-135m-instruct --data records.jsonl --out run1 --lora 16 --lr 2e-4\n"
              "  salign train --base qwen2.5-coder-0.5b-instruct --data records.jsonl --out dpo1 --objective dpo \\\n"
              "      --beta 0.1 --lora 16 --lr 5e-5\n",
};

/* ---- progress on stderr: on a terminal, one line per step redrawn in place ("\r" and erase
 * to the end of the line) and kept when an evaluation ran and at the end; elsewhere a line
 * every --log-every steps and at the end ---- */

struct train_ui {
    const struct sa_train_params *p;
    bool tty, quiet;
    bool open_line; /* a step line without its newline is on the terminal */
    bool catching;  /* Ctrl-C is caught (from the first step to the export) */
};

static void fmt_eta(double sec, char *buf, size_t n) {
    if (!(sec >= 0) || sec > 1e7) snprintf(buf, n, "?");
    else if (sec >= 3600) snprintf(buf, n, "%dh%02dm", (int)(sec / 3600), (int)fmod(sec / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(sec / 60), (int)fmod(sec, 60));
}

static void train_progress(void *user, const struct sa_train_progress *pr) {
    struct train_ui *ui = user;
    const struct sa_train_params *p = ui->p;
    if (pr->event == SA_TRAIN_EVENT_START) {
        cli_sigint_catch(); /* from the first step (or held-out batch) on, Ctrl-C stops cleanly */
        ui->catching = true;
    } else if (pr->event == SA_TRAIN_EVENT_EXPORT && ui->catching) {
        cli_sigint_restore(); /* the export cannot be cancelled: Ctrl-C ends the process, as before */
        ui->catching = false;
    }
    if (ui->quiet) return;
    switch (pr->event) {
    case SA_TRAIN_EVENT_START:
        fprintf(stderr,
                "salign train: %lld records: %lld train, %lld held out; %lld truncated, %lld dropped (max length %d)\n"
                "salign train: %s, %lld parameters, %lld trainable (%s, %s); %lld steps of %d x %d %s, warmup "
                "%lld; activations %.0f MiB\n",
                (long long)pr->n_records, (long long)pr->n_train, (long long)pr->n_eval, (long long)pr->n_truncated,
                (long long)pr->n_dropped, p->max_length, pr->arch, (long long)pr->n_params, (long long)pr->n_trainable,
                p->model.lora_rank ? "LoRA" : "full fine-tuning", sa_train_precision_name(p->model.precision),
                (long long)pr->total_steps, p->batch, p->grad_accum,
                p->objective == SA_TRAIN_OBJ_DPO ? "pairs" : "sequences", (long long)pr->warmup_steps,
                (double)pr->activation_bytes / (1 << 20));
        if (p->init_from && !p->resume)
            fprintf(stderr, "salign train: starting from the trained weights of %s\n", p->init_from);
        if (p->objective == SA_TRAIN_OBJ_SFT_UPSTREAM) fprintf(stderr, "salign train: objective sft-upstream\n");
        if (p->edit_weight != 1.0f)
            fprintf(stderr, "salign train: edit weight %g on the edited tokens of %lld examples (the others copy)\n",
                    (double)p->edit_weight, (long long)pr->n_edits);
        if (p->objective == SA_TRAIN_OBJ_DPO)
            fprintf(stderr,
                    "salign train: objective dpo, beta %g, reference %s; %lld records without a preference skipped; "
                    "computing the reference's log-probabilities\n",
                    (double)p->dpo_beta,
                    p->dpo_ref ? p->dpo_ref : p->model.lora_rank ? "the base without the adapter" : "the base",
                    (long long)pr->n_skipped);
        break;
    case SA_TRAIN_EVENT_RESUMED:
        fprintf(stderr, "salign train: resumed at step %lld of %lld\n", (long long)pr->step,
                (long long)pr->total_steps);
        break;
    case SA_TRAIN_EVENT_EVAL:
        fprintf(stderr, "salign train: held-out loss before training %.4f", pr->eval_loss);
        if (!isnan(pr->eval_accuracy)) fprintf(stderr, " (reward accuracy %.3f)", pr->eval_accuracy);
        fprintf(stderr, "\n");
        break;
    case SA_TRAIN_EVENT_STEP: {
        if (!ui->tty && !pr->log_step) break;
        char eta[32];
        fmt_eta(pr->eta_s, eta, sizeof eta);
        fprintf(stderr, "%sstep %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s", ui->tty ? "\r\033[K" : "",
                (long long)pr->step, (long long)pr->total_steps, pr->loss, pr->lr, pr->tokens_per_s, eta);
        if (!isnan(pr->reward_margin))
            fprintf(stderr, " | margin %.4f acc %.2f", pr->reward_margin, pr->reward_accuracy);
        if (!isnan(pr->eval_loss)) fprintf(stderr, " | eval %.4f", pr->eval_loss);
        if (!isnan(pr->eval_accuracy)) fprintf(stderr, " acc %.2f", pr->eval_accuracy);
        ui->open_line = ui->tty && !pr->last && isnan(pr->eval_loss);
        fprintf(stderr, ui->open_line ? "" : "\n");
        break;
    }
    case SA_TRAIN_EVENT_EXPORT:
        fprintf(stderr, "salign train: writing %s\n", pr->path);
        break;
    }
}

int cmd_train(int argc, char **argv) {
    struct train_opts o = {.p = sa_train_default_params()};
    int prc = cli_parse(&cli_cmd_train, argc, argv, &o, NULL);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    struct sa_train_params p = o.p;
    const char *base = o.base;
    if (!base || !p.data || !p.out) return cli_usage_error("train", "--base, --data and --out are required");
    if (p.dpo_ref && p.objective != SA_TRAIN_OBJ_DPO) return cli_usage_error("train", "--ref needs --objective dpo");
    char *path = NULL, *ref = NULL;
    if (sa_hub_resolve(base, NULL, &path) != SA_STATUS_OK) return cli_fail(NULL);
    if (p.dpo_ref && sa_hub_resolve(p.dpo_ref, NULL, &ref) != SA_STATUS_OK) {
        free(path);
        return cli_fail(NULL);
    }
    p.base = path;
    if (ref) p.dpo_ref = ref;
    struct train_ui ui = {.p = &p, .tty = isatty(2) != 0, .quiet = p.quiet};
    p.quiet = false; /* the reports still come (Ctrl-C is caught from START on); ui.quiet prints none */
    p.on_progress = train_progress;
    p.progress_user = &ui;
    p.cancel = cli_interrupted;
    struct sa_train_result r;
    enum sa_status s = sa_train_run(&p, &r);
    if (ui.catching) cli_sigint_restore();
    free(path);
    free(ref);
    if (s == SA_STATUS_CANCELLED) {
        if (ui.open_line) fprintf(stderr, "\n");
        fprintf(stderr, "salign train: interrupted: %s\n", sa_last_error());
        return 130;
    }
    if (s) return cli_fail("train");
    if (!ui.quiet) {
        fprintf(stderr, "salign train: %lld/%lld steps, loss %.4f -> %.4f", (long long)r.steps, (long long)r.total_steps,
                r.first_loss, r.last_loss);
        if (!isnan(r.eval_loss_before) || !isnan(r.eval_loss_after))
            fprintf(stderr, ", held-out loss %.4f -> %.4f", r.eval_loss_before, r.eval_loss_after);
        if (!isnan(r.eval_accuracy_before) || !isnan(r.eval_accuracy_after))
            fprintf(stderr, " (reward accuracy %.3f -> %.3f)", r.eval_accuracy_before, r.eval_accuracy_after);
        fprintf(stderr, "; %lld tokens in %.1f s (%.1f tok/s); peak memory %.0f MiB%s\n", (long long)r.tokens, r.seconds,
                r.seconds > 0 ? (double)r.tokens / r.seconds : 0.0, (double)r.peak_rss_kb / 1024,
                r.stopped_early ? " (stopped early: --stop-after-steps)" : "");
    }
    return CLI_OK;
}
