/* cmd_train.c: `salign train --base MODEL --data FILE --out DIR [options]`, a thin main over
 * sa_train_run (sa/train.h): fine-tunes a model into an aligner on correction records. The
 * progress lines are drawn here from the run's progress reports; Ctrl-C stops the run after
 * a checkpoint (its cancel hook). */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"
#include "sa/train.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "Usage: salign train --base MODEL --data FILE --out DIR [OPTIONS]\n\n"
            "Fine-tunes MODEL (a cached name, a .gguf file or a Hugging Face directory) on aligner\n"
            "records (JSONL or a JSON array; sentence records {question, prefix, last, correction}\n"
            "or whole-answer records {question, answer, correction}). The loss is the cross-entropy\n"
            "of the correction and the end-of-turn token; the prompt is masked. Writes DIR/log.csv,\n"
            "DIR/loss.svg, DIR/checkpoint/ and the model in DIR/model/ (model.safetensors,\n"
            "config.json, tokenizer files, model-<type>.gguf). Defaults: the official recipe.\n\n"
            "  -b, --base MODEL        base model\n"
            "  -d, --data FILE         training records\n"
            "  -o, --out DIR           output directory\n"
            "      --lora R            LoRA of rank R (base weights frozen); default 0: full fine-tuning\n"
            "      --lora-alpha A      LoRA scale A/R (default 2R)\n"
            "      --lora-dropout P    dropout on the adapter input (default 0)\n"
            "      --lora-targets L    modules, e.g. q,k,v,o,gate,up,down (the default) or all\n"
            "      --epochs E          passes over the data (default 3)\n"
            "      --max-steps N       stop after N steps in total (overrides --epochs)\n"
            "      --lr LR             peak learning rate (default 2e-5), cosine schedule to 0\n"
            "      --warmup-ratio R    share of the steps with linear warmup (default 0.03)\n"
            "      --beta1 B, --beta2 B  AdamW betas (default 0.9, 0.95)\n"
            "      --eps E             AdamW epsilon (default 1e-8)\n"
            "      --weight-decay W    decoupled weight decay on matrices (default 0)\n"
            "      --clip N            clip the gradient's global norm to N (default 1; 0: off)\n"
            "      --batch B           sequences per micro-batch (default 4)\n"
            "      --grad-accum G      micro-batches per optimizer step (default 1)\n"
            "      --max-length L      tokens per sequence (default 512); longer records lose\n"
            "                          sentences from the start of the prefix, or are dropped\n"
            "      --max-records N     use the first N records only\n"
            "      --eval-fraction F   share of the questions held out for the eval loss (default 0.05)\n"
            "      --eval-every N      evaluate every N steps (default: at the end)\n"
            "      --save-every N      checkpoint every N steps (default: at the end)\n"
            "      --resume            continue from DIR/checkpoint (same options)\n"
            "      --seed S            shuffling, LoRA init and dropout (default 0)\n"
            "  -t, --threads N         threads (default 1)\n"
            "      --precision P       fp32 (default) or bf16: mixed precision, matrix products in\n"
            "                          bf16 (AVX512-BF16), f32 weights, gradients and AdamW\n"
            "      --save-type T       safetensors type: f32 (default), f16, bf16\n"
            "      --gguf-type T       GGUF type: f32, f16 (default), bf16, q8_0, or none\n"
            "      --no-export         do not write DIR/model\n"
            "      --log-every N       progress line every N steps when not on a terminal (default 10)\n"
            "      --stop-after-steps N  debug: checkpoint and stop after N steps of this process\n"
            "  -q, --quiet             no progress output\n"
            "  -h, --help              this help\n\n"
            "Example:\n"
            "  salign train --base smollm2-135m-instruct --data records.jsonl --out run1 --lora 16 --lr 2e-4\n");
}

static bool parse_i64(const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < lo) return false;
    *out = v;
    return true;
}

static bool parse_f(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

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
                "salign train: %s, %lld parameters, %lld trainable (%s, %s); %lld steps of %d x %d sequences, warmup "
                "%lld; activations %.0f MiB\n",
                (long long)pr->n_records, (long long)pr->n_train, (long long)pr->n_eval, (long long)pr->n_truncated,
                (long long)pr->n_dropped, p->max_length, pr->arch, (long long)pr->n_params, (long long)pr->n_trainable,
                p->model.lora_rank ? "LoRA" : "full fine-tuning", sa_train_precision_name(p->model.precision),
                (long long)pr->total_steps, p->batch, p->grad_accum, (long long)pr->warmup_steps,
                (double)pr->activation_bytes / (1 << 20));
        break;
    case SA_TRAIN_EVENT_RESUMED:
        fprintf(stderr, "salign train: resumed at step %lld of %lld\n", (long long)pr->step,
                (long long)pr->total_steps);
        break;
    case SA_TRAIN_EVENT_EVAL:
        fprintf(stderr, "salign train: held-out loss before training %.4f\n", pr->eval_loss);
        break;
    case SA_TRAIN_EVENT_STEP: {
        if (!ui->tty && !pr->log_step) break;
        char eta[32];
        fmt_eta(pr->eta_s, eta, sizeof eta);
        fprintf(stderr, "%sstep %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | ETA %s", ui->tty ? "\r\033[K" : "",
                (long long)pr->step, (long long)pr->total_steps, pr->loss, pr->lr, pr->tokens_per_s, eta);
        if (!isnan(pr->eval_loss)) fprintf(stderr, " | eval %.4f", pr->eval_loss);
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
    enum {
        O_LORA = 256, O_ALPHA, O_DROP, O_TARGETS, O_EPOCHS, O_MAXSTEPS, O_LR, O_WARM, O_B1, O_B2, O_EPS, O_WD, O_CLIP,
        O_BATCH, O_GA, O_MAXLEN, O_MAXREC, O_EVFR, O_EVEV, O_SAVE, O_RESUME, O_SEED, O_STYPE, O_GTYPE, O_NOEXP, O_LOGEV,
        O_STOP, O_PREC,
    };
    static const struct option opts[] = {
        {"base", required_argument, NULL, 'b'},          {"data", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},           {"lora", required_argument, NULL, O_LORA},
        {"lora-alpha", required_argument, NULL, O_ALPHA}, {"lora-dropout", required_argument, NULL, O_DROP},
        {"lora-targets", required_argument, NULL, O_TARGETS}, {"epochs", required_argument, NULL, O_EPOCHS},
        {"max-steps", required_argument, NULL, O_MAXSTEPS}, {"lr", required_argument, NULL, O_LR},
        {"warmup-ratio", required_argument, NULL, O_WARM}, {"beta1", required_argument, NULL, O_B1},
        {"beta2", required_argument, NULL, O_B2},        {"eps", required_argument, NULL, O_EPS},
        {"weight-decay", required_argument, NULL, O_WD}, {"clip", required_argument, NULL, O_CLIP},
        {"batch", required_argument, NULL, O_BATCH},     {"grad-accum", required_argument, NULL, O_GA},
        {"max-length", required_argument, NULL, O_MAXLEN}, {"max-records", required_argument, NULL, O_MAXREC},
        {"eval-fraction", required_argument, NULL, O_EVFR}, {"eval-every", required_argument, NULL, O_EVEV},
        {"save-every", required_argument, NULL, O_SAVE}, {"resume", no_argument, NULL, O_RESUME},
        {"seed", required_argument, NULL, O_SEED},       {"threads", required_argument, NULL, 't'},
        {"save-type", required_argument, NULL, O_STYPE}, {"gguf-type", required_argument, NULL, O_GTYPE},
        {"no-export", no_argument, NULL, O_NOEXP},       {"log-every", required_argument, NULL, O_LOGEV},
        {"stop-after-steps", required_argument, NULL, O_STOP}, {"quiet", no_argument, NULL, 'q'},
        {"precision", required_argument, NULL, O_PREC},
        {"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0},
    };
    struct sa_train_params p = sa_train_default_params();
    const char *base = NULL;
    int c;
    int64_t iv;
    double fv;
    optind = 1;
    opterr = 0;
    int li = -1;
    while ((c = getopt_long(argc, argv, ":b:d:o:t:qh", opts, &li)) != -1) {
        const char *a = optarg;
        bool ok = true;
        switch (c) {
        case 'b': base = a; break;
        case 'd': p.data = a; break;
        case 'o': p.out = a; break;
        case 'q': p.quiet = true; break;
        case 'h': usage(stdout); return CLI_OK;
        case 't': ok = parse_i64(a, 1, &iv) && iv <= 256, p.model.n_threads = (int32_t)iv; break;
        case O_PREC: ok = sa_train_precision_from_name(a, &p.model.precision) == SA_STATUS_OK; break;
        case O_LORA: ok = parse_i64(a, 0, &iv) && iv <= 4096, p.model.lora_rank = (int32_t)iv; break;
        case O_ALPHA: ok = parse_f(a, 1e-6, 1e6, &fv), p.model.lora_alpha = (float)fv; break;
        case O_DROP: ok = parse_f(a, 0, 0.99, &fv), p.model.lora_dropout = (float)fv; break;
        case O_TARGETS: ok = sa_lora_targets_parse(a, &p.model.lora_targets) == SA_STATUS_OK; break;
        case O_EPOCHS: ok = parse_i64(a, 1, &iv) && iv <= 100000, p.epochs = (int32_t)iv; break;
        case O_MAXSTEPS: ok = parse_i64(a, 1, &p.max_steps); break;
        case O_LR: ok = parse_f(a, 1e-12, 10, &fv), p.lr = (float)fv; break;
        case O_WARM: ok = parse_f(a, 0, 1, &fv), p.warmup_ratio = (float)fv; break;
        case O_B1: ok = parse_f(a, 0, 0.999999, &fv), p.optim.beta1 = (float)fv; break;
        case O_B2: ok = parse_f(a, 0, 0.999999, &fv), p.optim.beta2 = (float)fv; break;
        case O_EPS: ok = parse_f(a, 0, 1, &fv), p.optim.eps = (float)fv; break;
        case O_WD: ok = parse_f(a, 0, 10, &fv), p.optim.weight_decay = (float)fv; break;
        case O_CLIP: ok = parse_f(a, 0, 1e9, &fv), p.optim.max_grad_norm = (float)fv; break;
        case O_BATCH: ok = parse_i64(a, 1, &iv) && iv <= 4096, p.batch = (int32_t)iv; break;
        case O_GA: ok = parse_i64(a, 1, &iv) && iv <= 65536, p.grad_accum = (int32_t)iv; break;
        case O_MAXLEN: ok = parse_i64(a, 8, &iv) && iv <= 1 << 20, p.max_length = (int32_t)iv; break;
        case O_MAXREC: ok = parse_i64(a, 1, &p.max_records); break;
        case O_EVFR: ok = parse_f(a, 0, 0.9, &p.eval_fraction); break;
        case O_EVEV: ok = parse_i64(a, 0, &iv) && iv <= INT32_MAX, p.eval_every = (int32_t)iv; break;
        case O_SAVE: ok = parse_i64(a, 0, &iv) && iv <= INT32_MAX, p.save_every = (int32_t)iv; break;
        case O_LOGEV: ok = parse_i64(a, 0, &iv) && iv <= INT32_MAX, p.log_every = (int32_t)iv; break;
        case O_STOP: ok = parse_i64(a, 1, &p.stop_after_steps); break;
        case O_RESUME: p.resume = true; break;
        case O_SEED: ok = parse_i64(a, 0, &iv), p.model.seed = (uint64_t)iv; break;
        case O_NOEXP: p.no_export = true; break;
        case O_STYPE:
            ok = sa_dtype_from_name(a, &p.st_type) == SA_STATUS_OK &&
                 (p.st_type == SA_DTYPE_F32 || p.st_type == SA_DTYPE_F16 || p.st_type == SA_DTYPE_BF16);
            break;
        case O_GTYPE:
            if (!strcmp(a, "none")) p.gguf_type = SA_DTYPE_COUNT;
            else
                ok = sa_dtype_from_name(a, &p.gguf_type) == SA_STATUS_OK &&
                     (p.gguf_type == SA_DTYPE_F32 || p.gguf_type == SA_DTYPE_F16 || p.gguf_type == SA_DTYPE_BF16 ||
                      p.gguf_type == SA_DTYPE_Q8_0);
            break;
        case ':': return cli_usage_error("train", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("train", "unknown option '%s'", argv[optind - 1]);
        }
        if (!ok) {
            if (li >= 0) return cli_usage_error("train", "bad value for --%s: '%s'", opts[li].name, a);
            return cli_usage_error("train", "bad value for -%c: '%s'", c, a);
        }
        li = -1;
    }
    if (optind < argc) return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!base || !p.data || !p.out) return cli_usage_error("train", "--base, --data and --out are required");
    char *path = NULL;
    if (sa_hub_resolve(base, NULL, &path) != SA_STATUS_OK) return cli_fail(NULL);
    p.base = path;
    struct train_ui ui = {.p = &p, .tty = isatty(2) != 0, .quiet = p.quiet};
    p.quiet = false; /* the reports still come (Ctrl-C is caught from START on); ui.quiet prints none */
    p.on_progress = train_progress;
    p.progress_user = &ui;
    p.cancel = cli_interrupted;
    struct sa_train_result r;
    enum sa_status s = sa_train_run(&p, &r);
    if (ui.catching) cli_sigint_restore();
    free(path);
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
        fprintf(stderr, "; %lld tokens in %.1f s (%.1f tok/s); peak memory %.0f MiB%s\n", (long long)r.tokens, r.seconds,
                r.seconds > 0 ? (double)r.tokens / r.seconds : 0.0, (double)r.peak_rss_kb / 1024,
                r.stopped_early ? " (stopped early: --stop-after-steps)" : "");
    }
    return CLI_OK;
}
