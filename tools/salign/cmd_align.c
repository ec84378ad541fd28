/* cmd_align.c: `salign align`: the Stream Aligner pipeline over a local or remote upstream and
 * a local aligner. One question (-p): the aligned answer is printed sentence by sentence as it
 * is accepted (--show-edits: each sentence and its correction; --json: one final object).
 * Batch (--input/--output): one JSONL answer per question, appended and flushed as each one
 * ends, resumable (ids already in the output are skipped; a cut last line is dropped first);
 * a question that cannot be answered gets an error record and the batch goes on (issue 12,
 * docs/PIPELINE.md "Batch"). --trace: JSONL per emitted
 * sentence, in the format `salign eval math --per-round` reads (docs/EVAL.md). */
#define _GNU_SOURCE
#include "cli.h"
#include "cli_resume.h"
#include "generate.h"
#include "sa/batch.h"
#include "sa/pipeline.h"
#include "sa/jsonl.h"
#include "sa/pipeline_trace.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


struct align_opts {
    const char *upstream_extra;
    const char *upstream, *upstream_model, *upstream_template, *upstream_tokenizer, *aligner, *system, *aligner_system;
    const char *prompt, *trace, *input, *output, *answers;
    const char *aligner_lora, *upstream_lora;
    bool show_edits, json, verbose;
    bool copy_aligner;
    int32_t timeout_ms, total_timeout_ms;
    int32_t parallel;
    struct sa_pipeline_params pp;
    const char *proxy_expert, *proxy_anti, *proxy_expert_lora; /* proxy-tuning (docs/PROXY.md) */
    const char *aligner_steer; /* --aligner-steer: a control vector for the aligner (docs/STEER.md) */
    const char *edit_judge, *edit_judge_lora; /* --edit-judge: a second model's opinion of each edit */
};

/* --copy-aligner: every revision is the sentence (or answer) unchanged. */
static enum sa_status copy_align(void *user, const struct sa_pipeline_request *req, char **out, int32_t *n_tokens) {
    (void)user;
    *n_tokens = 0;
    *out = strdup(req->last);
    return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
}

static bool parse_mode(const char *v, void *field) {
    return sa_pipeline_mode_from_name(v, (enum sa_pipeline_mode *)field) == SA_STATUS_OK;
}

/* in the order of enum sa_pipeline_continue_with */
static const char *const continue_names[] = {"aligner", "upstream", NULL};
/* in the order of enum sa_pipeline_edit_score */
static const char *const edit_score_names[] = {"sum", "mean", NULL};

#define O(f) CLI_AT(struct align_opts, f)
static const struct cli_opt align_opts[] = {
    CLI_UPSTREAM_ENTRIES(struct align_opts),
    {"aligner", 0, CLI_OPT_STR, O(aligner), .arg = "M",
     .help = "the aligner (path, cached name, or a shipped adapter's\nname: models/NAME, its base + LoRA adapter)"},
    {"aligner-lora", 0, CLI_OPT_STR, O(aligner_lora), .arg = "FILE",
     .help = "a LoRA adapter (GGUF, llama.cpp's format) over the\naligner; with --aligner = --upstream one loaded "
             "base\nserves both"},
    {"upstream-lora", 0, CLI_OPT_STR, O(upstream_lora), .arg = "FILE", .help = "a LoRA adapter over a local upstream"},
    {"proxy-expert", 0, CLI_OPT_STR, O(proxy_expert), .arg = "M",
     .help = "proxy-tune a local upstream (Liu et al. 2024): its tokens\nare drawn from upstream + A x (expert - anti); "
             "M: the\nexpert, sharing the upstream's vocabulary"},
    {"proxy-anti", 0, CLI_OPT_STR, O(proxy_anti), .arg = "M", .help = "the anti-expert (the expert's untuned base)"},
    {"proxy-alpha", 0, CLI_OPT_FLOAT, O(pp.proxy_alpha), .lo = -1e6, .hi = 1e6, .arg = "A",
     .help = "weight of (expert - anti) (default 1)"},
    {"proxy-expert-lora", 0, CLI_OPT_STR, O(proxy_expert_lora), .arg = "FILE", .help = "a LoRA adapter over the expert"},
    {"aligner-steer", 0, CLI_OPT_STR, O(aligner_steer), .arg = "FILE",
     .help = "steer the aligner with a control vector (salign steer\nextract; llama.cpp's format; docs/STEER.md)"},
    {"steer-coef", 0, CLI_OPT_FLOAT, O(pp.aligner_cvec_scale), .lo = -1e6, .hi = 1e6, .arg = "C",
     .help = "the vector's coefficient (default 1; 0: unsteered)"},
    {"copy-aligner", 0, CLI_OPT_FLAG, O(copy_aligner),
     .help = "no aligner model: every sentence is kept as it is (the\nanswer is then the upstream's own; for "
             "measurements)"},
    {"system", 0, CLI_OPT_STR, O(system), .arg = "TEXT", .help = "a system message for the upstream"},
    {"aligner-system", 0, CLI_OPT_STR, O(aligner_system), .arg = "TEXT",
     .help = "a system message for the aligner (an untrained stand-in\nmay need an instruction; a trained aligner "
             "none)"},
    {"mode", 0, CLI_OPT_CUSTOM, O(pp.mode), .parse = parse_mode, .expect = "stream, continue, aligner or upstream",
     .section = "Loop", .arg = "MODE",
     .help = "stream (default), continue, aligner (the Aligner\nbaseline), upstream (no correction)"},
    {"rounds", 0, CLI_OPT_INT, O(pp.continue_rounds), .imin = 0, .imax = 1 << 20, .arg = "N",
     .help = "continue: corrected sentences before the rest (default 1)"},
    {"continue-with", 0, CLI_OPT_ENUM, O(pp.continue_with), .names = continue_names, .arg = "WHO",
     .help = "continue: aligner (default) or upstream writes the rest"},
    {"max-rounds", 0, CLI_OPT_INT, O(pp.max_rounds), .imin = 0, .imax = 1 << 20, .arg = "N",
     .help = "most corrected sentences (default: no limit)"},
    {"max-length", 0, CLI_OPT_INT, O(pp.max_length), .imin = 1, .imax = 1 << 24, .arg = "N",
     .help = "most tokens of the answer (default 1024): a hard cap,\nthe last sentence is cut there (stop max_length)"},
    CLI_SENTENCE_ENTRIES(struct align_opts),
    {"edit-threshold", 0, CLI_OPT_FLOAT, O(pp.edit_threshold), .lo = -INFINITY, .hi = INFINITY, .arg = "X",
     .help = "gated revision: keep an edit only when the aligner scores\nit X nats above copying y1 (log p(y2) - "
             "log p(y1));\nelse emit y1 (default: every edit kept; -inf: scored,\nnone gated). Choose X with "
             "`salign eval aligner\n--edit-threshold` on dev records (docs/PIPELINE.md)"},
    {"edit-score", 0, CLI_OPT_ENUM, O(pp.edit_score), .names = edit_score_names, .arg = "sum|mean",
     .help = "the margin: sum (default) of log-probabilities, or mean\nper token (X in nats per token)"},
    CLI_EDIT_CHECK_ENTRY(struct align_opts, pp.edit_check),
    {"edit-judge", 0, CLI_OPT_STR, O(edit_judge), .arg = "M",
     .help = "the edit judge: a second model (path or cached name),\nprompted as a solver, scores each edit that stands:\n"
             "log p(y2) - log p(y1) after the question and the answer\nso far; below --edit-judge-threshold y1 is "
             "emitted\n(refused: judge). M may be the upstream or the aligner\n(docs/PIPELINE.md \"The edit judge\")"},
    {"edit-judge-lora", 0, CLI_OPT_STR, O(edit_judge_lora), .arg = "FILE", .help = "a LoRA adapter over the edit judge"},
    {"edit-judge-threshold", 0, CLI_OPT_FLOAT, O(pp.edit_judge_threshold), .lo = -INFINITY, .hi = INFINITY,
     .arg = "X", .help = "keep an edit the judge scores >= X nats (default 0;\n-inf: every edit judged, none refused)"},
    CLI_CALCULATOR_ENTRY(struct align_opts, pp.calculator),
    {"temp", 0, CLI_OPT_FLOAT, O(pp.upstream_temp), .lo = -INFINITY, .hi = INFINITY, .section = "Decoding",
     .arg = "T", .help = "upstream temperature (default 0: greedy)"},
    {"top-p", 0, CLI_OPT_FLOAT, O(pp.upstream_top_p), .lo = 0, .hi = 1, .open = CLI_LO_OPEN, .arg = "P",
     .help = "upstream nucleus mass (default 1: off)"},
    {"aligner-temp", 0, CLI_OPT_FLOAT, O(pp.aligner_temp), .lo = -INFINITY, .hi = INFINITY, .arg = "T",
     .help = "aligner temperature (default 0: greedy)"},
    {"seed", 0, CLI_OPT_UINT, O(pp.seed), .umax = UINT64_MAX, .arg = "S", .help = "sampling seed (default 0)"},
    {"no-spec", 0, CLI_OPT_UNSET, O(pp.use_spec), .help = "no copy-speculation in the aligner"},
    {"no-kv-reuse", 0, CLI_OPT_UNSET, O(pp.kv_reuse), .help = "evaluate every prompt from scratch (benchmarks)"},
    {"no-token-healing", 0, CLI_OPT_UNSET, O(pp.token_healing),
     .help = "continue the answer from its re-tokenized text as it is\n(default: a local model rewrites the "
             "prompt's last token)"},
    {"no-keep-break", 0, CLI_OPT_UNSET, O(pp.keep_line_break),
     .help = "an upstream that is not healed (remote) continues the\nanswer without the line break it wrote after "
             "the\nlast sentence (default: kept at the end of its prompt)"},
    {"batch-invariant", 0, CLI_OPT_FLAG, O(pp.batch_invariant),
     .help = "bitwise batch-invariant kernels in the local models\n(slower one-token decoding; --no-kv-reuse then "
             "changes\nthe speed only)"},
    CLI_LOCAL_MODEL_ENTRIES(struct align_opts),
    {"timeout-ms", 0, CLI_OPT_INT, O(timeout_ms), .imin = 1, .imax = 1 << 30, .arg = "N",
     .help = "remote: idle timeout (default 60000)"},
    {"total-timeout-ms", 0, CLI_OPT_INT, O(total_timeout_ms), .imin = 1, .imax = 1 << 30, .arg = "N",
     .help = "remote: deadline of one generation (and of the model\nlist at start), retries included (default 600000)"},
    {"prompt", 'p', CLI_OPT_STR, O(prompt), .section = "Output", .arg = "QUESTION", .help = "the question"},
    {"show-edits", 0, CLI_OPT_FLAG, O(show_edits), .help = "show each original sentence and its correction"},
    {"json", 0, CLI_OPT_FLAG, O(json), .help = "print one JSON object (answer and metrics) at the end"},
    {"trace", 0, CLI_OPT_STR, O(trace), .arg = "FILE",
     .help = "JSONL: one line per emitted sentence (y1, y2, copied,\nedit ratio, tokens and ms per model, "
             "answer_so_far)"},
    {"input", 0, CLI_OPT_STR, O(input), .arg = "FILE",
     .help = "JSONL questions: {\"id\", \"question\"} (or \"prompt\",\n\"problem\"); id defaults to the 0-based "
             "line index"},
    {"output", 0, CLI_OPT_STR, O(output), .arg = "FILE",
     .help = "JSONL answers (appended; ids already there are skipped;\na cut last line is dropped first). A question that\n"
             "cannot be answered gets {\"id\", \"line\", \"error\"} and the\nbatch goes on"},
    {"answers", 0, CLI_OPT_STR, O(answers), .arg = "FILE",
     .help = "aligner mode without an upstream: revise the answers of\nFILE (JSONL {\"id\", \"answer\"}, e.g. an "
             "--output of\n--mode upstream), matched to --input by id"},
    {"parallel", 0, CLI_OPT_INT, O(parallel), .imin = 1, .imax = 64, .arg = "N",
     .help = "--input: answer N questions at once, their decoding steps\nbatched (one forward pass per model for "
             "all); answers\nare written as they finish; with --batch-invariant the\nsame answers as --parallel 1 "
             "(default 1)"},
    {"verbose", 'v', CLI_OPT_FLAG, O(verbose), .help = "metrics on stderr"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_align = {
    .name = "align",
    .opts = align_opts,
    .n_opts = sizeof align_opts / sizeof align_opts[0],
    .usage = "Usage: salign align --upstream MODEL|URL --aligner MODEL -p QUESTION [OPTIONS]\n"
             "       salign align --upstream MODEL|URL --aligner MODEL --input Q.jsonl --output A.jsonl [OPTIONS]\n\n"
             "Stream Aligner: the upstream writes the answer one sentence at a time, the aligner\n"
             "corrects each sentence, and the corrected answer is printed as it is accepted.\n\n",
    .epilog = "Exit status: 0 ok, 1 runtime failure (model, server, file), 2 usage, 130 interrupted.\n",
};

/* Parses the options and checks how they combine. Returns 0, CLI_PARSE_HELP or CLI_USAGE. */
static int parse_args(int argc, char **argv, struct align_opts *o) {
    int prc = cli_parse(&cli_cmd_align, argc, argv, o, NULL);
    if (prc) return prc;
    if (o->answers && o->pp.mode != SA_PIPELINE_ALIGNER)
        return cli_usage_error("align", "--answers is for --mode aligner");
    if (o->answers && !o->input) return cli_usage_error("align", "--answers needs --input FILE");
    if (o->answers && o->upstream)
        return cli_usage_error("align", "--answers replaces the upstream: give one of --upstream and --answers");
    if (!o->upstream && !o->answers) return cli_usage_error("align", "no upstream (--upstream MODEL|URL)");
    const bool need_aligner = o->pp.mode != SA_PIPELINE_UPSTREAM &&
                              !(o->pp.mode == SA_PIPELINE_CONTINUE && o->pp.continue_rounds == 0 &&
                                o->pp.continue_with == SA_PIPELINE_CONTINUE_UPSTREAM);
    if (o->copy_aligner && o->aligner) return cli_usage_error("align", "give one of --aligner and --copy-aligner");
    if (need_aligner && !o->aligner && !o->copy_aligner)
        return cli_usage_error("align", "no aligner (--aligner MODEL or --copy-aligner)");
    if (!o->prompt == !o->input) return cli_usage_error("align", "give one of -p QUESTION and --input FILE");
    if (o->input && !o->output) return cli_usage_error("align", "--input needs --output FILE");
    if (o->output && !o->input) return cli_usage_error("align", "--output needs --input FILE");
    if (o->parallel > 1 && !o->input) return cli_usage_error("align", "--parallel needs --input FILE");
    if (!o->proxy_expert != !o->proxy_anti || (o->proxy_expert_lora && !o->proxy_expert))
        return cli_usage_error("align", "proxy-tuning needs both --proxy-expert and --proxy-anti");
    o->pp.edit_gate = !isnan(o->pp.edit_threshold);
    if ((int)o->pp.edit_score >= 0 && !o->pp.edit_gate)
        return cli_usage_error("align", "--edit-score needs --edit-threshold X");
    if ((int)o->pp.edit_score < 0) o->pp.edit_score = SA_PIPELINE_EDIT_SCORE_SUM;
    if (o->pp.edit_gate && !need_aligner) return cli_usage_error("align", "--edit-threshold needs an aligner round");
    if (o->pp.edit_check && !need_aligner) return cli_usage_error("align", "--edit-check needs an aligner round");
    if (o->pp.calculator && !need_aligner)
        return cli_usage_error("align", "--calculator needs an aligner round (--aligner M or --copy-aligner)");
    if (!o->pp.edit_gate) o->pp.edit_threshold = 0.0f;
    if (!o->edit_judge && (o->edit_judge_lora || !isnan(o->pp.edit_judge_threshold)))
        return cli_usage_error("align", "%s needs --edit-judge M",
                               o->edit_judge_lora ? "--edit-judge-lora" : "--edit-judge-threshold");
    if (o->edit_judge && o->pp.mode != SA_PIPELINE_STREAM && o->pp.mode != SA_PIPELINE_CONTINUE)
        return cli_usage_error("align", "--edit-judge judges sentences: --mode stream or continue");
    if (o->edit_judge && o->copy_aligner)
        return cli_usage_error("align", "--edit-judge needs an aligner that edits (--aligner M)");
    if (isnan(o->pp.edit_judge_threshold)) o->pp.edit_judge_threshold = 0.0f;
    return 0;
}

static bool is_url(const char *s) {
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* ---- printing ---- */

struct run_ctx {
    const struct align_opts *o;
    FILE *trace;
    cJSON *id;          /* the question's id (batch) or NULL */
    const char *question;
    bool color;
    bool stream_text;   /* print each piece to stdout as it comes */
    bool failed_write;
    pthread_mutex_t *mu; /* NULL, or held while writing the trace (--parallel) */
};

static void print_edit(const struct run_ctx *rc, const struct sa_pipeline_sentence *s) {
    const char *red = rc->color ? "\033[31m" : "", *green = rc->color ? "\033[32m" : "",
               *dim = rc->color ? "\033[2m" : "", *off = rc->color ? "\033[0m" : "";
    if (!s->aligned) {
        printf("[%d]   %s%s%s\n", s->index, dim, s->original, off);
    } else if (s->copied) {
        printf("[%d] = %s\n", s->index, s->original);
    } else if (s->gated) { /* the gate kept y1: the aligner's edit, struck out */
        printf("[%d] = %s\n", s->index, s->original);
        printf("%*s %sx %s%s (gated: margin %.2f)\n", s->index >= 10 ? 4 : 3, "", dim, s->proposed ? s->proposed : "",
               off, s->margin);
    } else if (s->refused) { /* the edit check or the edit judge kept y1: which one */
        printf("[%d] = %s\n", s->index, s->original);
        if (s->judged)
            printf("%*s %sx %s%s (refused: judge margin %.2f)\n", s->index >= 10 ? 4 : 3, "", dim,
                   s->proposed ? s->proposed : "", off, s->judge_margin);
        else
            printf("%*s %sx %s%s (refused: %s)\n", s->index >= 10 ? 4 : 3, "", dim, s->proposed ? s->proposed : "",
                   off, sa_pipeline_edit_check_name(s->refused_by));
    } else {
        const char *y2 = s->text;
        while (*y2 == ' ' || *y2 == '\n' || *y2 == '\t' || *y2 == '\r') y2++;
        printf("[%d] %s- %s%s\n", s->index, red, s->original, off);
        char why[64] = "";
        if (s->scored && s->judged) snprintf(why, sizeof why, " (margin %.2f, judge %.2f)", s->margin, s->judge_margin);
        else if (s->scored) snprintf(why, sizeof why, " (margin %.2f)", s->margin);
        else if (s->judged) snprintf(why, sizeof why, " (judge %.2f)", s->judge_margin);
        printf("%*s %s+ %s%s%s\n", s->index >= 10 ? 4 : 3, "", green, y2, off, why);
    }
    if (s->n_repaired > 0) { /* the calculator rewrote what the lines above emitted */
        const char *y2 = s->text;
        while (*y2 == ' ' || *y2 == '\n' || *y2 == '\t' || *y2 == '\r') y2++;
        printf("%*s %s~ %s%s (calculator: %d result(s))\n", s->index >= 10 ? 4 : 3, "", green, y2, off, s->n_repaired);
    }
}

static bool on_sentence(void *user, const struct sa_pipeline_sentence *s) {
    struct run_ctx *rc = user;
    if (rc->o->show_edits) print_edit(rc, s);
    else if (rc->stream_text) fwrite(s->text, 1, s->len, stdout);
    fflush(stdout);
    if (rc->trace) { /* the trace line (sa/pipeline_trace.h) */
        char *id_json = rc->id ? cJSON_PrintUnformatted(rc->id) : NULL;
        struct sa_trace_round r = sa_trace_round_of_sentence(s, id_json, rc->question);
        char *line = NULL;
        size_t n = 0;
        if (rc->mu) pthread_mutex_lock(rc->mu);
        if ((rc->id && !id_json) || sa_trace_round_format(&r, &line, &n) || fwrite(line, 1, n, rc->trace) != n ||
            fflush(rc->trace))
            rc->failed_write = true;
        if (rc->mu) pthread_mutex_unlock(rc->mu);
        free(line);
        free(id_json);
    }
    return true;
}

static cJSON *result_json(const struct sa_pipeline_result *r, const struct align_opts *o, cJSON *id,
                          const char *question) {
    cJSON *j = cJSON_CreateObject();
    if (id) cJSON_AddItemToObject(j, "id", cJSON_Duplicate(id, 1));
    cJSON_AddStringToObject(j, "question", question);
    cJSON_AddStringToObject(j, "answer", r->answer ? r->answer : "");
    if (r->upstream_answer) cJSON_AddStringToObject(j, "upstream_answer", r->upstream_answer);
    cJSON_AddStringToObject(j, "mode", sa_pipeline_mode_name(o->pp.mode));
    cJSON_AddStringToObject(j, "stop", sa_pipeline_stop_name(r->stop));
    cJSON_AddNumberToObject(j, "sentences", r->n_sentences);
    cJSON_AddNumberToObject(j, "rounds", r->n_rounds);
    cJSON_AddNumberToObject(j, "copied", r->n_copied);
    cJSON_AddNumberToObject(j, "copy_rate", r->copy_rate);
    cJSON_AddNumberToObject(j, "tokens", r->n_tokens);
    cJSON_AddNumberToObject(j, "first_sentence_ms", r->first_sentence_ms);
    cJSON_AddNumberToObject(j, "total_ms", r->total_ms);
    cJSON_AddNumberToObject(j, "tokens_per_s", r->tokens_per_s);
    cJSON_AddNumberToObject(j, "ms_per_token", r->ms_per_token);
    cJSON_AddNumberToObject(j, "upstream_tokens", r->upstream_tokens);
    cJSON_AddNumberToObject(j, "upstream_prefill", r->upstream_prefill);
    cJSON_AddNumberToObject(j, "upstream_ms", r->upstream_ms);
    cJSON_AddNumberToObject(j, "aligner_tokens", r->aligner_tokens);
    cJSON_AddNumberToObject(j, "aligner_draft", r->aligner_draft);
    cJSON_AddNumberToObject(j, "aligner_accepted", r->aligner_accepted);
    cJSON_AddNumberToObject(j, "aligner_prefill", r->aligner_prefill);
    cJSON_AddNumberToObject(j, "aligner_ms", r->aligner_ms);
    cJSON_AddBoolToObject(j, "speculation", o->pp.use_spec);
    cJSON_AddBoolToObject(j, "kv_reuse", o->pp.kv_reuse);
    cJSON_AddBoolToObject(j, "token_healing", o->pp.token_healing);
    if (o->pp.edit_gate) { /* the gated revision */
        if (isfinite(o->pp.edit_threshold)) cJSON_AddNumberToObject(j, "edit_threshold", o->pp.edit_threshold);
        else cJSON_AddStringToObject(j, "edit_threshold", o->pp.edit_threshold > 0 ? "inf" : "-inf");
        cJSON_AddStringToObject(j, "edit_score", sa_pipeline_edit_score_name(o->pp.edit_score));
        cJSON_AddNumberToObject(j, "scored", r->n_scored);
        cJSON_AddNumberToObject(j, "gated", r->n_gated);
        cJSON_AddNumberToObject(j, "score_ms", r->score_ms);
        if (o->pp.mode == SA_PIPELINE_ALIGNER && isfinite(r->margin)) cJSON_AddNumberToObject(j, "margin", r->margin);
    }
    if (o->pp.edit_check) { /* the edit checks */
        char chk[32];
        cJSON_AddStringToObject(j, "edit_check", cli_edit_check_str(o->pp.edit_check, chk, sizeof chk));
        cJSON_AddNumberToObject(j, "refused", r->n_refused);
    }
    if (o->pp.calculator) cJSON_AddNumberToObject(j, "repaired", r->n_repaired); /* results the calculator rewrote */
    if (o->edit_judge) { /* the edit judge */
        if (isfinite(o->pp.edit_judge_threshold))
            cJSON_AddNumberToObject(j, "edit_judge_threshold", o->pp.edit_judge_threshold);
        else cJSON_AddStringToObject(j, "edit_judge_threshold", o->pp.edit_judge_threshold > 0 ? "inf" : "-inf");
        cJSON_AddNumberToObject(j, "judged", r->n_judged);
        cJSON_AddNumberToObject(j, "judge_refused", r->n_judge_refused);
        cJSON_AddNumberToObject(j, "judge_ms", r->judge_ms);
    }
    cJSON_AddBoolToObject(j, "keep_line_break", o->pp.keep_line_break);
    if (o->proxy_expert) cJSON_AddNumberToObject(j, "proxy_alpha", o->pp.proxy_alpha); /* a proxy-tuned upstream */
    return j;
}

static void print_metrics(const struct sa_pipeline_result *r, const struct align_opts *o) {
    fprintf(stderr,
            "salign align: %s after %d sentence(s), %d round(s), %d copied (%.0f%%); first sentence %.0f ms; "
            "%d tokens in %.0f ms (%.1f ms/token, %.2f tokens/s); speculation accepted %d of %d draft tokens\n",
            sa_pipeline_stop_name(r->stop), r->n_sentences, r->n_rounds, r->n_copied, 100.0 * r->copy_rate,
            r->first_sentence_ms, r->n_tokens, r->total_ms, r->ms_per_token, r->tokens_per_s, r->aligner_accepted,
            r->aligner_draft);
    if (o->pp.edit_gate)
        fprintf(stderr, "salign align: gate (%s, threshold %g): %d of %d scored revision(s) gated; scoring y1 took %.0f ms\n",
                sa_pipeline_edit_score_name(o->pp.edit_score), o->pp.edit_threshold, r->n_gated, r->n_scored,
                r->score_ms);
    char chk[32];
    if (o->pp.edit_check)
        fprintf(stderr, "salign align: edit check (%s): %d revision(s) refused\n",
                cli_edit_check_str(o->pp.edit_check, chk, sizeof chk), r->n_refused);
    if (o->pp.calculator) fprintf(stderr, "salign align: calculator: %d result(s) rewritten\n", r->n_repaired);
    if (o->edit_judge)
        fprintf(stderr, "salign align: edit judge (threshold %g): %d of %d judged edit(s) refused; judging took %.0f ms\n",
                o->pp.edit_judge_threshold, r->n_judge_refused, r->n_judged, r->judge_ms);
}

/* ---- batch ---- */

/* The question of an input line, or NULL. */
static const char *input_question(const cJSON *j) {
    static const char *const keys[] = {"question", "prompt", "problem"};
    for (size_t k = 0; k < 3; k++) {
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (cJSON_IsString(q)) return q->valuestring;
    }
    return NULL;
}

/* A canonical key of an id: its JSON text. */
static char *id_key(const cJSON *id) {
    return cJSON_PrintUnformatted(id);
}

/* Adds the id of an output line (an answer or an error record) to the done set. */
static enum sa_status done_line(void *user, const struct sa_jsonl_item *item) {
    struct cli_keyset *done = user;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item->object, "id");
    if (!id) return SA_STATUS_OK;
    char *k = id_key(id);
    if (!k || cli_keyset_take(done, k)) {
        free(k);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    return SA_STATUS_OK;
}

/* The ids already in the output file, if it exists (answers and error records: both are done).
 * A cut last line is dropped first: the file is truncated to the end of its last complete line
 * (said on stderr), so that the next answer starts a line of its own and that question runs
 * again. Any other malformed line is an error naming its line (salign align never writes one:
 * the file was edited, or is not an output of salign align). */
static int read_done(const char *path, struct cli_keyset *done) {
    if (!cli_file_exists(path)) return 0;
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(path, &text, &len)) return cli_fail(NULL);
    const char *why = NULL;
    size_t keep = cli_complete_prefix(text, len, &why);
    int rc = 0;
    if (keep < len) {
        if (truncate(path, (off_t)keep)) {
            fprintf(stderr, "salign align: %s: cannot drop its cut last line: %s\n", path, strerror(errno));
            rc = CLI_FAIL;
        } else {
            fprintf(stderr, "salign align: %s: the last line was cut (%s): dropped it (%zu bytes); its question "
                            "runs again\n", path, why, len - keep);
        }
    }
    if (!rc && sa_jsonl_parse(text, keep, path, 0, done_line, done, NULL)) {
        fprintf(stderr, "salign: %s (the output file must hold only lines that salign align wrote: fix or remove "
                        "that line)\n", sa_last_error());
        rc = CLI_FAIL;
    }
    free(text);
    return rc;
}

/* --answers: the answers to revise, by id key (parallel to ids.k). An error record of the
 * answers file (a question its run could not answer) is kept as ANSWER_ERROR + its reason. */
#define ANSWER_ERROR '\x01'

struct answer_map {
    struct cli_keyset ids;
    char **text;
};
static const char *answer_map_get(const struct answer_map *m, const char *k) {
    for (size_t i = 0; i < m->ids.n; i++)
        if (!strcmp(m->ids.k[i], k)) return m->text[i];
    return NULL;
}
static void answer_map_free(struct answer_map *m) {
    for (size_t i = 0; i < m->ids.n; i++) free(m->text[i]);
    free(m->text);
    cli_keyset_free(&m->ids);
}
/* Every non-blank line must be an object with an "id" and an "answer" string; an id may
 * appear once. */
/* The input files follow the one JSONL rule (sa/jsonl.h: one object a line, valid UTF-8, no
 * \u0000, which would cut a question silently) before any line of them is used. */
static enum sa_status jsonl_accept(void *user, const struct sa_jsonl_item *item) {
    (void)user;
    (void)item;
    return SA_STATUS_OK;
}
static int check_jsonl(const char *text, size_t len, const char *path) {
    return sa_jsonl_parse(text, len, path, 0, jsonl_accept, NULL, NULL) ? cli_fail(NULL) : 0;
}

static int read_answers(const char *path, struct answer_map *m) {
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(path, &text, &len)) return cli_fail(NULL);
    if (check_jsonl(text, len, path)) {
        free(text);
        return CLI_FAIL;
    }
    int rc = 0;
    size_t lineno = 0;
    for (char *line = text; !rc && line && *line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *cur = line;
        line = nl ? nl + 1 : NULL;
        if (strspn(cur, " \t\r") == strlen(cur)) continue;
        cJSON *j = cJSON_Parse(cur);
        const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
        const cJSON *a = j ? cJSON_GetObjectItemCaseSensitive(j, "answer") : NULL;
        const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
        char *k = id ? id_key(id) : NULL;
        char *t = NULL;
        if (cJSON_IsString(a)) t = strdup(a->valuestring);
        else if (cJSON_IsString(e)) { /* an error record: that question gets one too */
            if (asprintf(&t, "%c%s", ANSWER_ERROR, e->valuestring) < 0) t = NULL;
            a = e;
        }
        char **grown = NULL;
        if (!id || !cJSON_IsString(a)) {
            fprintf(stderr, "salign align: %s:%zu: not a JSON object with an \"id\" and an \"answer\" (or \"error\") string\n", path,
                    lineno + 1);
            rc = CLI_FAIL;
        } else if (!k || !t || !(grown = realloc(m->text, (m->ids.n + 1) * sizeof *grown))) {
            fprintf(stderr, "salign align: out of memory\n");
            rc = CLI_FAIL;
        } else if (m->text = grown, answer_map_get(m, k)) {
            fprintf(stderr, "salign align: %s:%zu: a second answer for id %s\n", path, lineno + 1, k);
            rc = CLI_FAIL;
        } else if (cli_keyset_take(&m->ids, k)) {
            fprintf(stderr, "salign align: out of memory\n");
            rc = CLI_FAIL;
        } else {
            m->text[m->ids.n - 1] = t;
            k = t = NULL;
        }
        free(k);
        free(t);
        cJSON_Delete(j);
    }
    free(text);
    return rc;
}

/* Keeps only the trace lines of finished questions, so that a resumed run does not write a
 * (question, round) twice. */
static int prune_trace(const char *path, const struct cli_keyset *done) {
    if (!cli_file_exists(path)) return 0;
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(path, &text, &len)) return cli_fail(NULL);
    const char *why = NULL;
    size_t keep = cli_complete_prefix(text, len, &why);
    if (keep < len)
        fprintf(stderr, "salign align: %s: the last line was cut (%s): dropped it (%zu bytes)\n", path, why,
                len - keep);
    text[keep] = 0;
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0) {
        free(text);
        return cli_fail("out of memory");
    }
    FILE *f = fopen(tmp, "w");
    int rc = f ? 0 : CLI_FAIL;
    for (char *line = text; f && line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
        char *k = id ? id_key(id) : NULL;
        if (k && cli_keyset_has(done, k)) fprintf(f, "%s\n", line);
        free(k);
        cJSON_Delete(j);
        line = nl ? nl + 1 : NULL;
    }
    if (f && (fclose(f) || rename(tmp, path))) rc = CLI_FAIL;
    if (rc) fprintf(stderr, "salign align: cannot rewrite the trace %s: %s\n", path, strerror(errno));
    free(tmp);
    free(text);
    return rc;
}

/* Statuses of sa_pipeline_run that concern one question only: the batch writes an error
 * record for it and goes on. BAD_ARGUMENT is what a question that cannot be answered gives
 * (a prompt longer than the context, a decode past n_ctx, a question the tokenizer or the chat
 * template refuses); every other status is a fault of the system (a model, memory, a server,
 * a file, Ctrl-C) and stops the run (docs/PIPELINE.md, "Batch"). */
static bool per_question_error(enum sa_status s) {
    return s == SA_STATUS_BAD_ARGUMENT;
}

/* The reason of a failed JSONL check of one line, without its "<file>:1: " prefix. */
static const char *line_reason(const char *name) {
    const char *m = sa_last_error();
    size_t n = strlen(name);
    if (!strncmp(m, name, n) && !strncmp(m + n, ":1: ", 4)) return m + n + 4;
    return m;
}

/* Writes the error record of a question that cannot be answered: {"id", "line", "mode",
 * "stop": "error", "error"}. */
static int write_error(FILE *out, const struct align_opts *o, const cJSON *id, size_t line, const char *reason) {
    cJSON *j = cJSON_CreateObject();
    if (j) {
        cJSON_AddItemToObject(j, "id", cJSON_Duplicate(id, 1));
        cJSON_AddNumberToObject(j, "line", (double)line);
        cJSON_AddStringToObject(j, "mode", sa_pipeline_mode_name(o->pp.mode));
        cJSON_AddStringToObject(j, "stop", "error");
        cJSON_AddStringToObject(j, "error", reason);
    }
    char *str = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    int rc = 0;
    if (!str || fprintf(out, "%s\n", str) < 0 || fflush(out)) {
        fprintf(stderr, "salign align: cannot write %s: %s\n", o->output, str ? strerror(errno) : "out of memory");
        rc = CLI_FAIL;
    }
    free(str);
    return rc;
}

/* One line of --input still to answer (or to write the error record of). */
struct job {
    size_t lineno;       /* 0-based */
    cJSON *j;            /* the parsed line (owns q), or NULL */
    const char *q;
    cJSON *id;           /* into j, or own_id */
    cJSON *own_id;       /* the line index when the line has no id */
    char *key;           /* id_key(id) */
    const char *ans;     /* --answers: the answer to revise */
    char *reason;        /* why this question cannot be answered (its error record), or NULL */
};

/* A batch run: the jobs, taken in order by one or more workers, each with its own pipeline;
 * answers, error records and trace lines are written under `mu` as they finish. */
struct batch_run {
    const struct align_opts *o;
    const struct sa_pipeline_params *pp;
    struct job *jobs;
    size_t n_jobs, n_lines, n_done;
    atomic_size_t next;
    pthread_mutex_t mu;
    FILE *out, *trace;
    size_t n_run, n_failed; /* under mu */
    int rc;                 /* under mu: the first fatal failure stops the others */
    bool parallel;
};

static bool batch_stopped(struct batch_run *br) {
    pthread_mutex_lock(&br->mu);
    bool stop = br->rc != 0;
    pthread_mutex_unlock(&br->mu);
    return stop;
}

/* Answers one job with pipeline `pl` and writes its line (answer or error record). */
static void answer_job(struct batch_run *br, struct sa_pipeline *pl, const struct job *jb) {
    const struct align_opts *o = br->o;
    struct sa_pipeline_result r = {0};
    char *why = NULL; /* a per-question failure's reason (owned) */
    int fatal = 0;
    bool ran = false, failed_write = false;
    if (!jb->reason) {
        struct run_ctx rcx = {.o = o, .trace = br->trace, .id = jb->id, .question = jb->q,
                              .mu = br->parallel ? &br->mu : NULL};
        struct sa_pipeline_callbacks cb = {.on_sentence = on_sentence, .cancel = cli_interrupted, .user = &rcx};
        enum sa_status s =
            jb->ans ? sa_pipeline_revise_answer(pl, jb->q, jb->ans, &cb, &r) : sa_pipeline_run(pl, jb->q, &cb, &r);
        ran = true;
        failed_write = rcx.failed_write;
        if (s == SA_STATUS_CANCELLED || (s && cli_interrupted(NULL))) {
            fatal = 130;
        } else if (s && per_question_error(s)) {
            if (!(why = strdup(sa_last_error()))) fatal = cli_fail("out of memory"); /* copied: the next call resets it */
        } else if (s) {
            fprintf(stderr, "salign: align: %s:%zu (id %s): %s\n", o->input, jb->lineno + 1, jb->key, sa_last_error());
            fatal = CLI_FAIL;
        }
    }
    const char *reason = jb->reason ? jb->reason : why;
    pthread_mutex_lock(&br->mu);
    if (fatal == 130 && !br->rc)
        fprintf(stderr, "salign align: interrupted; %zu answer(s) written to %s (run again to resume)\n", br->n_run,
                o->output);
    if (failed_write) {
        fprintf(stderr, "salign align: cannot write the trace %s\n", o->trace);
        if (!fatal) fatal = CLI_FAIL;
    }
    if (!fatal && reason) {
        fatal = write_error(br->out, o, jb->id, jb->lineno + 1, reason);
        br->n_failed++;
        fprintf(stderr, "[%zu/%zu] error: %s:%zu (id %s): %s\n", br->n_done + br->n_run + br->n_failed, br->n_lines,
                o->input, jb->lineno + 1, jb->key, reason);
    } else if (!fatal && ran) {
        cJSON *res = result_json(&r, o, jb->id, jb->q);
        char *s_out = cJSON_PrintUnformatted(res);
        cJSON_Delete(res);
        if (!s_out || fprintf(br->out, "%s\n", s_out) < 0 || fflush(br->out)) {
            fprintf(stderr, "salign align: cannot write %s: %s\n", o->output, strerror(errno));
            fatal = CLI_FAIL;
        }
        free(s_out);
        br->n_run++;
        fprintf(stderr, "[%zu/%zu] %s: %d sentence(s), %d round(s), %.0f ms\n", br->n_done + br->n_run + br->n_failed,
                br->n_lines, sa_pipeline_stop_name(r.stop), r.n_sentences, r.n_rounds, r.total_ms);
        if (o->verbose) print_metrics(&r, o);
    }
    if (fatal && !br->rc) br->rc = fatal;
    pthread_mutex_unlock(&br->mu);
    free(why);
    sa_pipeline_result_free(&r);
}

struct worker {
    struct batch_run *br;
    struct sa_pipeline *pl;
    struct sa_sched *sched;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct batch_run *br = w->br;
    if (w->sched) sa_sched_enter(w->sched);
    for (;;) {
        const size_t i = atomic_fetch_add(&br->next, 1);
        if (i >= br->n_jobs || batch_stopped(br)) break;
        answer_job(br, w->pl, &br->jobs[i]);
    }
    if (w->sched) sa_sched_leave(w->sched);
    return NULL;
}

/* Runs the jobs: on this thread with one pipeline (--parallel 1), or on --parallel N threads,
 * each with its own pipeline, all decoding through one scheduler (sa/batch.h). */
static int run_jobs(struct batch_run *br) {
    const struct align_opts *o = br->o;
    const int n = o->parallel > 1 ? o->parallel : 1;
    struct sa_sched *sched = NULL;
    struct sa_pipeline_params pp = *br->pp;
    if (n > 1) {
        struct sa_sched_params sp = sa_sched_default_params();
        sp.n_threads = pp.n_threads;
        sp.n_ctx = pp.n_ctx;
        sp.batch_invariant = pp.batch_invariant;
        if (sa_sched_init(&sp, &sched)) return cli_fail("align");
        pp.sched = sched;
    }
    struct worker w[64] = {{0}};
    pthread_t th[64];
    int rc = 0, n_started = 0;
    for (int i = 0; i < n && !rc; i++) {
        w[i].br = br;
        w[i].sched = sched;
        if (sa_pipeline_init(&pp, &w[i].pl)) rc = cli_fail("pipeline");
    }
    br->parallel = n > 1;
    if (!rc && n == 1) {
        worker_main(&w[0]);
    } else if (!rc) {
        for (int i = 0; i < n; i++) {
            if (pthread_create(&th[i], NULL, worker_main, &w[i])) {
                fprintf(stderr, "salign align: cannot start thread %d of --parallel %d\n", i + 1, n);
                pthread_mutex_lock(&br->mu);
                if (!br->rc) br->rc = CLI_FAIL;
                pthread_mutex_unlock(&br->mu);
                break;
            }
            n_started++;
        }
        for (int i = 0; i < n_started; i++) pthread_join(th[i], NULL);
    }
    if (!rc) rc = br->rc;
    if (sched && o->verbose) {
        struct sa_sched_stats st;
        sa_sched_get_stats(sched, &st);
        fprintf(stderr, "salign align: %lld decode calls in %lld batched passes (%.1f per pass)\n", (long long)st.n_calls,
                (long long)st.n_passes, st.n_passes ? (double)st.n_calls / (double)st.n_passes : 0.0);
    }
    for (int i = 0; i < n; i++) sa_pipeline_free(w[i].pl);
    sa_sched_free(sched);
    return rc;
}

static int run_batch(const struct sa_pipeline_params *pp, const struct align_opts *o, FILE *trace) {
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(o->input, &text, &len)) return cli_fail(NULL);
    struct cli_keyset done = {0};
    struct answer_map given = {0};
    int rc = o->answers ? read_answers(o->answers, &given) : 0;
    if (!rc) rc = read_done(o->output, &done);
    if (!rc && o->trace) {
        fclose(trace);
        trace = NULL;
        rc = prune_trace(o->trace, &done);
        if (!rc && !(trace = fopen(o->trace, "a"))) {
            fprintf(stderr, "salign align: cannot open the trace %s: %s\n", o->trace, strerror(errno));
            rc = CLI_FAIL;
        }
    }
    FILE *out = rc ? NULL : fopen(o->output, "a");
    if (!rc && !out) {
        fprintf(stderr, "salign align: cannot open %s: %s\n", o->output, strerror(errno));
        rc = CLI_FAIL;
    }
    size_t n_lines = 0, n_done = 0, n_jobs = 0;
    for (char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) n_lines++;
    struct job *jobs = calloc(n_lines ? n_lines : 1, sizeof *jobs);
    if (!rc && !jobs) rc = cli_fail("out of memory");
    size_t lineno = 0;
    for (char *line = text; !rc && line && *line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *cur = line;
        line = nl ? nl + 1 : NULL;
        if (!*cur || strspn(cur, " \t\r") == strlen(cur)) continue;
        /* a line that breaks the JSONL rules (sa/jsonl.h) or has no question is that question's
         * error, not the batch's */
        const char *reason = NULL;
        cJSON *j = NULL;
        if (lineno == 0 && !strncmp(cur, "\xEF\xBB\xBF", 3)) cur += 3; /* a UTF-8 BOM */
        if (sa_jsonl_parse(cur, strlen(cur), o->input, 0, jsonl_accept, NULL, NULL)) reason = line_reason(o->input);
        else j = cJSON_Parse(cur);
        const char *q = j ? input_question(j) : NULL;
        if (!reason && !q) reason = "not a JSON object with a \"question\" (or \"prompt\", \"problem\") string";
        else if (!reason && strspn(q, " \t\r\n") == strlen(q)) reason = "the question is empty";
        cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
        cJSON *own_id = NULL;
        if (!id) id = own_id = cJSON_CreateNumber((double)lineno);
        char *k = id_key(id);
        char *why = NULL;
        const char *ans = NULL;
        if (!k) {
            rc = cli_fail("out of memory");
        } else if (cli_keyset_has(&done, k)) {
            n_done++;
        } else {
            ans = o->answers && !reason ? answer_map_get(&given, k) : NULL;
            if (o->answers && !reason && !ans) {
                fprintf(stderr, "salign align: %s:%zu: no answer with id %s in %s\n", o->input, lineno + 1, k,
                        o->answers);
                rc = CLI_FAIL;
            } else if (ans && ans[0] == ANSWER_ERROR) {
                if (asprintf(&why, "%s has an error record for it: %s", o->answers, ans + 1) < 0) why = NULL;
                if (!why) rc = cli_fail("out of memory");
            } else if (reason && !(why = strdup(reason))) {
                rc = cli_fail("out of memory");
            }
            if (!rc) {
                jobs[n_jobs++] = (struct job){.lineno = lineno, .j = j, .q = q, .id = id, .own_id = own_id, .key = k,
                                              .ans = why ? NULL : ans, .reason = why};
                continue; /* the job owns j, own_id, k, why */
            }
        }
        free(why);
        free(k);
        cJSON_Delete(own_id);
        cJSON_Delete(j);
    }
    if (!rc) {
        struct batch_run br = {.o = o, .pp = pp, .jobs = jobs, .n_jobs = n_jobs, .n_lines = n_lines, .n_done = n_done,
                               .out = out, .trace = trace};
        atomic_init(&br.next, 0);
        pthread_mutex_init(&br.mu, NULL);
        rc = run_jobs(&br);
        pthread_mutex_destroy(&br.mu);
        if (!rc)
            fprintf(stderr, "salign align: %zu answered, %zu failed (error records in %s), %zu already in it "
                            "(answers or error records)\n", br.n_run, br.n_failed, o->output, n_done);
    }
    for (size_t i = 0; i < n_jobs; i++) {
        free(jobs[i].reason);
        free(jobs[i].key);
        cJSON_Delete(jobs[i].own_id);
        cJSON_Delete(jobs[i].j);
    }
    free(jobs);
    if (out) fclose(out);
    if (trace) fclose(trace);
    cli_keyset_free(&done);
    answer_map_free(&given);
    free(text);
    return rc;
}

/* ---- main ---- */

static int load_cached(const char *ref, int n_threads, struct sa_model **out) {
    return gen_load_model(ref, n_threads, out);
}

int cmd_align(int argc, char **argv) {
    struct align_opts o = {0};
    o.pp = sa_pipeline_default_params();
    o.pp.edit_threshold = NAN;                       /* set: the gate is on */
    o.pp.edit_score = (enum sa_pipeline_edit_score)-1; /* set: --edit-score was given */
    o.pp.aligner_cvec_scale = NAN; /* set: --steer-coef was given */
    o.pp.edit_judge_threshold = NAN; /* set: --edit-judge-threshold was given */
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    if (!isnan(o.pp.aligner_cvec_scale) && !o.aligner_steer)
        return cli_usage_error("align", "--steer-coef needs --aligner-steer FILE");
    if (isnan(o.pp.aligner_cvec_scale)) o.pp.aligner_cvec_scale = 1.0f;
    struct sa_cvec *al_cvec = NULL; /* --aligner-steer */

    struct sa_model *up_model = NULL, *al_model = NULL, *tok_model = NULL;
    struct sa_lora *up_lora = NULL, *al_lora = NULL;
    struct sa_model *px_model[2] = {NULL, NULL}; /* proxy-tuning: expert, anti-expert */
    struct sa_model *jg_model = NULL;              /* --edit-judge, unless it is the upstream or the aligner */
    struct sa_lora *jg_lora = NULL;
    struct sa_lora *px_lora = NULL;
    char *al_base = NULL, *al_adapter = NULL;
    struct sa_upstream *remote = NULL;
    struct sa_pipeline *pl = NULL;
    char *tmpl_text = NULL;
    FILE *trace = NULL;
    int rc = CLI_OK;
    cli_sigint_catch();

    struct sa_pipeline_params pp = o.pp;
    pp.system = o.system;
    pp.aligner_system = o.aligner_system;
    if (o.copy_aligner) pp.aligner_fn = copy_align;
    if (o.answers) {
        /* no upstream: the answers are given */
    } else if (is_url(o.upstream)) {
        if (o.upstream_lora || o.proxy_expert) {
            rc = cli_usage_error("align", "%s needs a local upstream", o.upstream_lora ? "--upstream-lora" : "--proxy-expert");
            goto done;
        }
        if (o.upstream_tokenizer && (rc = load_cached(o.upstream_tokenizer, o.pp.n_threads, &tok_model))) goto done;
        if ((rc = cli_remote_upstream_format("align", o.upstream_template, tok_model, &pp, &tmpl_text))) goto done;
        if (tok_model) pp.upstream_tokenizer = sa_model_tokenizer(tok_model);
        struct sa_upstream_remote_params rp = sa_upstream_remote_default_params();
        rp.base_url = o.upstream;
        rp.model = o.upstream_model;
        rp.abort_cb = cli_interrupted;
        rp.extra_body = o.upstream_extra;
        if (o.timeout_ms) rp.idle_timeout_ms = o.timeout_ms;
        if (o.total_timeout_ms) rp.total_timeout_ms = o.total_timeout_ms;
        if (sa_upstream_remote_init(&rp, &remote)) {
            rc = cli_interrupted(NULL) ? 130 : cli_fail("upstream");
            goto done;
        }
        pp.upstream = remote;
    } else {
        if ((rc = load_cached(o.upstream, o.pp.n_threads, &up_model))) goto done;
        if (o.upstream_lora && (rc = gen_load_lora(up_model, o.upstream_lora, &up_lora))) goto done;
        pp.upstream_model = up_model;
        pp.upstream_lora = up_lora;
        if (o.proxy_expert) { /* the vocabularies checked here too, for a message with the models' names */
            if ((rc = load_cached(o.proxy_expert, o.pp.n_threads, &px_model[0])) ||
                (rc = load_cached(o.proxy_anti, o.pp.n_threads, &px_model[1])) ||
                (o.proxy_expert_lora && (rc = gen_load_lora(px_model[0], o.proxy_expert_lora, &px_lora))))
                goto done;
            if (sa_proxy_check_vocab(up_model, o.upstream, px_model[0], o.proxy_expert) ||
                sa_proxy_check_vocab(up_model, o.upstream, px_model[1], o.proxy_anti)) {
                rc = cli_fail(NULL);
                goto done;
            }
            pp.proxy_expert = px_model[0];
            pp.proxy_anti = px_model[1];
            pp.proxy_expert_lora = px_lora;
        }
    }
    if (o.aligner && o.pp.mode != SA_PIPELINE_UPSTREAM) {
        /* a shipped adapter's name is its base + adapter */
        if ((rc = gen_resolve_adapter_name(o.aligner, &al_base, &al_adapter))) goto done;
        if (o.upstream && !is_url(o.upstream) && !strcmp(al_base, o.upstream)) al_model = NULL; /* share the weights */
        else if ((rc = load_cached(al_base, o.pp.n_threads, &al_model))) goto done;
        pp.aligner_model = al_model ? al_model : up_model;
        const char *lf = o.aligner_lora ? o.aligner_lora : al_adapter;
        if (lf && (rc = gen_load_lora(pp.aligner_model, lf, &al_lora))) goto done;
        pp.aligner_lora = al_lora;
        if (o.aligner_steer && sa_cvec_load(o.aligner_steer, &al_cvec)) {
            rc = cli_fail("loading the aligner's control vector");
            goto done;
        }
        pp.aligner_cvec = al_cvec;
    }
    if (o.edit_judge) { /* one loaded model serves as judge too when it is the upstream or the aligner's base */
        if (o.upstream && !is_url(o.upstream) && !strcmp(o.edit_judge, o.upstream)) pp.edit_judge_model = up_model;
        else if (al_base && !strcmp(o.edit_judge, al_base)) pp.edit_judge_model = pp.aligner_model;
        else if ((rc = load_cached(o.edit_judge, o.pp.n_threads, &jg_model))) goto done;
        else pp.edit_judge_model = jg_model;
        if (o.edit_judge_lora && (rc = gen_load_lora(pp.edit_judge_model, o.edit_judge_lora, &jg_lora))) goto done;
        pp.edit_judge_lora = jg_lora;
    }
    if (o.trace && !(trace = fopen(o.trace, o.input ? "a" : "w"))) {
        fprintf(stderr, "salign align: cannot open the trace %s: %s\n", o.trace, strerror(errno));
        rc = CLI_FAIL;
        goto done;
    }
    if (o.input) {
        rc = run_batch(&pp, &o, trace);
        trace = NULL; /* closed there */
        goto done;
    }
    if (sa_pipeline_init(&pp, &pl)) {
        rc = cli_fail("pipeline");
        goto done;
    }
    struct run_ctx rcx = {.o = &o, .trace = trace, .question = o.prompt, .color = isatty(1) != 0,
                          .stream_text = !o.json};
    struct sa_pipeline_callbacks cb = {.on_sentence = on_sentence, .cancel = cli_interrupted, .user = &rcx};
    struct sa_pipeline_result r;
    enum sa_status s = sa_pipeline_run(pl, o.prompt, &cb, &r);
    if (o.show_edits && !o.json && r.answer) printf("\n%s", r.answer);
    if (!o.json && r.n_sentences) printf("\n");
    fflush(stdout);
    if (s == SA_STATUS_CANCELLED) {
        fprintf(stderr, "salign align: interrupted\n");
        rc = 130;
    } else if (s) {
        rc = cli_fail("align");
    } else if (o.json) {
        cJSON *j = result_json(&r, &o, NULL, o.prompt);
        char *str = cJSON_PrintUnformatted(j);
        if (str) printf("%s\n", str);
        free(str);
        cJSON_Delete(j);
    }
    if (!s && (o.verbose || isatty(2))) print_metrics(&r, &o);
    if (rcx.failed_write) {
        fprintf(stderr, "salign align: cannot write the trace %s\n", o.trace);
        rc = CLI_FAIL;
    }
    sa_pipeline_result_free(&r);
done:
    if (trace) fclose(trace);
    sa_pipeline_free(pl);
    sa_upstream_free(remote);
    sa_lora_free(al_lora);
    sa_cvec_free(al_cvec);
    sa_lora_free(up_lora);
    sa_lora_free(px_lora);
    sa_lora_free(jg_lora);
    sa_model_free(jg_model);
    sa_model_free(px_model[1]);
    sa_model_free(px_model[0]);
    free(al_base);
    free(al_adapter);
    sa_model_free(al_model);
    sa_model_free(up_model);
    sa_model_free(tok_model);
    free(tmpl_text);
    cli_sigint_restore();
    return rc;
}
