/* cmd_data.c: `salign data`: build and handle the aligner's training records.
 *   from-gsm8k  sentence records (copy + rule-based rewrites) from GSM8K solutions
 *   split       train/dev split by question
 *   check       validate a record file and count its records
 *   build       sentence records from an upstream and an annotator model (resumable)
 *   rollout     records from an upstream's own answers, labelled by rollouts (cmd_data_rollout.c)
 *   continue    the upstream's continuations after each correction (cmd_data_continue.c) */
#define _GNU_SOURCE
#include "cli.h"
#include "generate.h"
#include "sa/data_build.h"
#include "sa/eval.h"
#include "sa/records.h"
#include "sa/sa.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_records(const char *path, const struct sa_records *r, enum sa_records_format f) {
    if (strcmp(path, "-")) return sa_records_save(path, r, f) ? cli_fail("data") : CLI_OK;
    char *s = NULL;
    size_t n = 0;
    if (sa_records_serialize(r, f, &s, &n)) return cli_fail("data");
    bool ok = fwrite(s, 1, n, stdout) == n && fflush(stdout) == 0;
    free(s);
    if (!ok) {
        fprintf(stderr, "salign data: write error on standard output\n");
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int from_gsm8k(const char *input, const char *out, const struct sa_gsm8k_params *p, enum sa_records_format f) {
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(input, &text, &len)) return cli_fail("data");
    struct sa_records r;
    sa_records_init(&r);
    struct sa_gsm8k_stats st;
    int rc = CLI_OK;
    if (sa_gsm8k_to_records(text, len, input, p, &r, &st)) rc = cli_fail("from-gsm8k");
    if (rc == CLI_OK) rc = write_records(out, &r, f);
    if (rc == CLI_OK) {
        fprintf(stderr, "salign data: %zu %srecords from %zu problems (steps:", r.n,
                p->whole_answer ? "whole-answer " : "", st.n_problems);
        for (int k = 0; k < SA_GSM8K_N_RULES; k++)
            fprintf(stderr, " %s %zu%s", sa_gsm8k_rule_str((enum sa_gsm8k_rule)k), st.n_by_rule[k],
                    k + 1 < SA_GSM8K_N_RULES ? "," : ")\n");
    }
    sa_records_free(&r);
    free(text);
    return rc;
}

static int split(const char *input, double frac, uint64_t seed, const char *train, const char *dev,
                 enum sa_records_format f) {
    struct sa_records r, tr, dv;
    sa_records_init(&r);
    sa_records_init(&tr);
    sa_records_init(&dv);
    int rc = CLI_OK;
    bool *is_dev = NULL;
    if (sa_records_load(input, SA_RECORD_ANY, &r)) rc = cli_fail("data");
    if (rc == CLI_OK && !(is_dev = calloc(r.n ? r.n : 1, sizeof *is_dev))) {
        fprintf(stderr, "salign data: out of memory\n");
        rc = CLI_FAIL;
    }
    if (rc == CLI_OK && sa_records_split(&r, frac, seed, is_dev)) rc = cli_fail("split");
    for (size_t i = 0; rc == CLI_OK && i < r.n; i++)
        if (sa_records_push(is_dev[i] ? &dv : &tr, &r.items[i])) rc = cli_fail("split");
    if (rc == CLI_OK) rc = write_records(train, &tr, f);
    if (rc == CLI_OK) rc = write_records(dev, &dv, f);
    if (rc == CLI_OK) fprintf(stderr, "salign data: %zu train records, %zu dev records\n", tr.n, dv.n);
    free(is_dev);
    sa_records_free(&r);
    sa_records_free(&tr);
    sa_records_free(&dv);
    return rc;
}

static int check(const char *input, enum sa_record_kind kind) {
    struct sa_records r;
    sa_records_init(&r);
    if (sa_records_load(input, kind, &r)) return cli_fail("data");
    size_t ns = 0, na = 0;
    for (size_t i = 0; i < r.n; i++) *(r.items[i].kind == SA_RECORD_SENTENCE ? &ns : &na) += 1;
    printf("%s: %zu records (%zu sentence, %zu answer)\n", input, r.n, ns, na);
    sa_records_free(&r);
    return CLI_OK;
}

/* ---- build ------------------------------------------------------------------------------ */

struct build_opts {
    const char *prompts, *upstream, *annotator, *out, *ref_field, *prompt, *up_tmpl, *an_tmpl, *up_model, *an_model;
    int32_t max_rounds, max_tokens, max_sentence_tokens;
    uint32_t retries;
    uint64_t seed;
    float temp;
    size_t stop_after;
    int n_threads;
};

static bool is_url(const char *s) {
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* The default annotator prompt: $SALIGN_PROMPTS/, <repo of the executable>/docs/prompts/,
 * <prefix>/share/salign/prompts/, ./docs/prompts/. NULL (with a message) if none exists. */


struct build_ui {
    bool tty;
    size_t total; /* prompts left at the start of the run */
};

static void build_progress(void *user, const struct sa_data_build_stats *st) {
    const struct build_ui *ui = user;
    double eta = st->n_done ? st->elapsed_s / (double)st->n_done * (double)(ui->total - st->n_done) : 0;
    fprintf(stderr, "%s[%zu/%zu] %zu records, %zu malformed answers, %zu skipped, %.0f s, ETA %.0f s%s",
            ui->tty ? "\r" : "", st->n_skipped_done + st->n_done, st->n_prompts, st->n_records, st->n_malformed,
            st->n_skipped, st->elapsed_s, eta, ui->tty ? "\033[K" : "\n");
    fflush(stderr);
}

/* A local model id for the annotator (file name and size: part of the checkpoint fingerprint). */
static int local_model_id(const char *ref, char **id) {
    char *path = NULL;
    struct stat st;
    if (sa_hub_resolve(ref, NULL, &path) != SA_STATUS_OK) return cli_fail(NULL);
    const char *base = strrchr(path, '/');
    int rc = CLI_OK;
    if (stat(path, &st) || asprintf(id, "local:%s:%lld", base ? base + 1 : path, (long long)st.st_size) < 0)
        rc = cli_fail(ref);
    free(path);
    return rc;
}

/* The annotator: a judge engine over a local model (sharing the upstream's weights when they
 * are the same model) or a server. */
static int make_annotator(const struct build_opts *o, struct sa_model *shared, struct sa_model **own,
                          struct sa_judge **out) {
    struct sa_judge_upstream_params jp = sa_judge_upstream_default_params();
    jp.max_tokens = o->max_tokens;
    jp.seed = o->seed;
    struct sa_upstream *up = NULL;
    char *id = NULL;
    int rc = CLI_OK;
    const char *tmpl = NULL;
    enum sa_chat_format fmt = SA_CHAT_FORMAT_UNKNOWN;
    if (o->an_tmpl && sa_chat_format_from_name(o->an_tmpl, &fmt) != SA_STATUS_OK)
        return cli_usage_error("data", "build: --annotator-template '%s' is not chatml, gemma or llama3", o->an_tmpl);
    if (is_url(o->annotator)) {
        if (!o->an_tmpl) return cli_usage_error("data", "build: a server annotator needs --annotator-template NAME");
        struct sa_upstream_remote_params rp = sa_upstream_remote_default_params();
        rp.base_url = o->annotator;
        rp.model = o->an_model;
        rp.abort_cb = cli_interrupted;
        if (sa_upstream_remote_init(&rp, &up)) return cli_fail("annotator server");
        if (asprintf(&id, "remote:%s:%s", o->annotator, o->an_model ? o->an_model : "(only model)") < 0)
            rc = cli_fail("out of memory");
        jp.stop_at_eot = true;
    } else {
        struct sa_model *m = shared;
        if (!m && (rc = gen_load_model(o->annotator, o->n_threads, own))) return rc;
        if (!m) m = *own;
        tmpl = sa_model_chat_template(m);
        if (fmt == SA_CHAT_FORMAT_UNKNOWN) fmt = sa_chat_template_detect(tmpl, sa_model_config(m)->arch_name);
        if (fmt == SA_CHAT_FORMAT_UNKNOWN) {
            fprintf(stderr, "salign data: %s: the annotator's chat template is not one salign knows; give "
                            "--annotator-template chatml|gemma|llama3\n", o->annotator);
            return CLI_FAIL;
        }
        if ((rc = local_model_id(o->annotator, &id))) return rc;
        if (sa_upstream_local_init(m, 0, o->n_threads, true, &up)) rc = cli_fail("annotator context");
    }
    jp.format = fmt;
    jp.chat_template = tmpl;
    jp.model_id = id;
    if (!rc) {
        if (sa_judge_init_upstream(up, &jp, out)) rc = cli_fail("annotator");
        up = NULL; /* owned by the judge, even on failure */
    }
    sa_upstream_free(up);
    free(id);
    return rc;
}

static int build(const struct build_opts *o) {
    struct sa_data_prompt *prompts = NULL;
    size_t n = 0;
    struct sa_model *up_model = NULL, *an_model = NULL;
    struct sa_upstream *remote = NULL;
    struct sa_judge *annot = NULL;
    struct sa_annot_prompt *prompt = NULL;
    char *prompt_path = NULL;
    int rc = CLI_OK;
    if (sa_data_prompts_load(o->prompts, o->ref_field, &prompts, &n)) return cli_fail("data build");
    if (!o->prompt && !(prompt_path = cli_default_prompt("data", "annotator.txt"))) rc = CLI_FAIL;
    if (!rc && sa_annot_prompt_load(o->prompt ? o->prompt : prompt_path, &prompt)) rc = cli_fail("data build");

    struct sa_data_build_params bp = sa_data_build_default_params();
    bp.pipeline.max_rounds = o->max_rounds;
    if (o->max_sentence_tokens) bp.pipeline.max_sentence_tokens = o->max_sentence_tokens;
    bp.pipeline.upstream_temp = o->temp;
    bp.pipeline.seed = o->seed;
    bp.pipeline.n_threads = o->n_threads;
    if (!rc && is_url(o->upstream)) {
        enum sa_chat_format f = SA_CHAT_FORMAT_UNKNOWN;
        if (!o->up_tmpl || sa_chat_format_from_name(o->up_tmpl, &f) != SA_STATUS_OK) {
            rc = cli_usage_error("data", "build: a server upstream needs --upstream-template chatml|gemma|llama3");
        } else {
            struct sa_upstream_remote_params rp = sa_upstream_remote_default_params();
            rp.base_url = o->upstream;
            rp.model = o->up_model;
            rp.abort_cb = cli_interrupted;
            if (sa_upstream_remote_init(&rp, &remote)) rc = cli_fail("upstream");
            bp.pipeline.upstream = remote;
            bp.pipeline.upstream_format = f;
        }
    } else if (!rc) {
        rc = gen_load_model(o->upstream, o->n_threads, &up_model);
        bp.pipeline.upstream_model = up_model;
        if (!rc && o->up_tmpl) {
            if (sa_chat_format_from_name(o->up_tmpl, &bp.pipeline.upstream_format) != SA_STATUS_OK)
                rc = cli_usage_error("data", "build: --upstream-template '%s' is not chatml, gemma or llama3",
                                     o->up_tmpl);
        }
    }
    bool share = up_model && !is_url(o->annotator) && !strcmp(o->annotator, o->upstream);
    if (!rc) rc = make_annotator(o, share ? up_model : NULL, &an_model, &annot);

    struct build_ui ui = {.tty = isatty(2) != 0, .total = n};
    struct sa_data_build_stats st = {0};
    if (!rc) {
        bp.annotator = annot;
        bp.prompt = prompt;
        bp.retries = o->retries;
        bp.out_path = o->out;
        bp.stop_after = o->stop_after;
        bp.cancel = cli_interrupted;
        bp.on_progress = build_progress;
        bp.progress_user = &ui;
        cli_sigint_catch();
        enum sa_status s = sa_data_build_run(prompts, n, &bp, &st);
        cli_sigint_restore();
        if (ui.tty && st.n_done) fprintf(stderr, "\n");
        if (s == SA_STATUS_CANCELLED) {
            fprintf(stderr, "salign data: interrupted; run the same command again to resume\n");
            rc = 130;
        } else if (s) {
            rc = cli_fail("data build");
        }
        if (st.n_dropped_bytes)
            fprintf(stderr, "salign data: dropped %zu bytes of an unfinished prompt's records (redone)\n",
                    st.n_dropped_bytes);
        fprintf(stderr,
                "salign data: %zu prompts (%zu already done, %zu done now), %zu records written, %zu sentences, "
                "%zu annotator requests (%zu retries), %zu malformed answers, %zu sentences skipped; "
                "prompts ended by eos %zu, upstream end %zu, max rounds %zu, other %zu; %.1f s\n",
                st.n_prompts, st.n_skipped_done, st.n_done, st.n_records, st.n_sentences, st.n_requests,
                st.n_retries, st.n_malformed, st.n_skipped, st.n_stop_eos, st.n_stop_upstream, st.n_stop_rounds,
                st.n_stop_other, st.elapsed_s);
    }
    sa_judge_free(annot);
    sa_upstream_free(remote);
    sa_model_free(an_model);
    sa_model_free(up_model);
    sa_annot_prompt_free(prompt);
    free(prompt_path);
    sa_data_prompts_free(prompts, n);
    return rc;
}

/* ---- options ---------------------------------------------------------------------------- */

struct data_opts {
    const char *input, *out, *train, *dev;
    uint64_t seed;
    double dev_fraction; /* < 0: not given */
    bool json_array;
    enum sa_record_kind kind;
    struct sa_gsm8k_params gsm8k;
    struct build_opts build;
};

/* The subcommands, as masks of the table entries. */
enum { DATA_GSM8K = 1, DATA_SPLIT = 2, DATA_CHECK = 4, DATA_BUILD = 8 };

static const char *const kind_names[] = {"sentence", "answer", NULL};
static const int kind_values[] = {SA_RECORD_SENTENCE, SA_RECORD_ANSWER};

#define O(f) CLI_AT(struct data_opts, f)
static const struct cli_opt data_opts[] = {
    {"input", 0, CLI_OPT_STR, O(input), .mask = DATA_GSM8K | DATA_SPLIT | DATA_CHECK, .arg = "FILE",
     .help = "the input file"},
    {"prompts", 0, CLI_OPT_STR, O(build.prompts), .mask = DATA_BUILD, .arg = "FILE",
     .help = "the prompts: JSONL {\"question\"}"},
    {"upstream", 0, CLI_OPT_STR, O(build.upstream), .mask = DATA_BUILD, .arg = "M|URL",
     .help = "the upstream model or server"},
    {"annotator", 0, CLI_OPT_STR, O(build.annotator), .mask = DATA_BUILD, .arg = "M|URL",
     .help = "the annotator model or server"},
    {"out", 0, CLI_OPT_STR, O(out), .mask = DATA_GSM8K | DATA_BUILD, .arg = "FILE", .help = "the output file"},
    {"seed", 0, CLI_OPT_UINT, O(seed), .mask = DATA_GSM8K | DATA_SPLIT | DATA_BUILD, .umax = UINT64_MAX,
     .arg = "S",
     .help = "seed (default 0) of the corruptions (from-gsm8k), the split,\nor the annotator's retries and the "
             "upstream's sampling (build)"},
    {"rewrite-ratio", 0, CLI_OPT_FLOAT, O(gsm8k.rewrite_ratio), .mask = DATA_GSM8K, .lo = 0, .hi = 1, .arg = "R",
     .help = "fraction of rewrite records, 0..1 (default 0.5)"},
    {"keep-calc", 0, CLI_OPT_FLAG, O(gsm8k.keep_calc), .mask = DATA_GSM8K,
     .help = "keep the <<a*b=c>> calculator annotations (default: stripped)"},
    {"no-answer-step", 0, CLI_OPT_UNSET, O(gsm8k.answer_step), .mask = DATA_GSM8K,
     .help = "drop the '#### N' line instead of the step \"The answer is N.\""},
    {"solution", 0, CLI_OPT_FLAG, O(gsm8k.with_solution), .mask = DATA_GSM8K,
     .help = "add the whole reference solution to each record"},
    {"whole-answer", 0, CLI_OPT_FLAG, O(gsm8k.whole_answer), .mask = DATA_GSM8K,
     .help = "one whole-answer record {question, answer, correction} per\nproblem (the Aligner baseline's data): "
             "the steps the same\nseed would corrupt shown corrupted, the true solution as\nthe correction"},
    {"json-array", 0, CLI_OPT_FLAG, O(json_array), .mask = DATA_GSM8K | DATA_SPLIT,
     .help = "write a JSON array instead of JSONL"},
    {"dev-fraction", 0, CLI_OPT_FLOAT, O(dev_fraction), .mask = DATA_SPLIT, .lo = 0, .hi = 1, .arg = "F",
     .help = "share of the questions in the dev file, 0..1"},
    {"train", 0, CLI_OPT_STR, O(train), .mask = DATA_SPLIT, .arg = "OUT", .help = "the train records"},
    {"dev", 0, CLI_OPT_STR, O(dev), .mask = DATA_SPLIT, .arg = "OUT", .help = "the dev records"},
    {"kind", 0, CLI_OPT_ENUM, O(kind), .mask = DATA_CHECK, .names = kind_names, .values = kind_values,
     .arg = "sentence|answer", .help = "the kind every record must have (default: either)"},
    {"reference-field", 0, CLI_OPT_STR, O(build.ref_field), .mask = DATA_BUILD, .arg = "F",
     .help = "the prompts' reference solution field (GSM8K: answer),\nshown to the annotator as {reference}"},
    {"max-rounds", 0, CLI_OPT_INT, O(build.max_rounds), .mask = DATA_BUILD, .imin = 1, .imax = INT32_MAX,
     .arg = "R", .help = "most sentences per prompt (default 8)"},
    {"retries", 0, CLI_OPT_UINT, O(build.retries), .mask = DATA_BUILD, .umax = 100, .arg = "N",
     .help = "retries of a malformed annotation (default 2), then skipped"},
    {"prompt", 0, CLI_OPT_STR, O(build.prompt), .mask = DATA_BUILD, .arg = "FILE",
     .help = "annotator prompt (default docs/prompts/annotator.txt)"},
    {"max-tokens", 0, CLI_OPT_INT, O(build.max_tokens), .mask = DATA_BUILD, .imin = 1, .imax = INT32_MAX,
     .arg = "N", .help = "most tokens of an annotator answer (default 256)"},
    {"max-sentence-tokens", 0, CLI_OPT_INT, O(build.max_sentence_tokens), .mask = DATA_BUILD, .imin = 1,
     .imax = INT32_MAX, .arg = "N", .help = "most upstream tokens for one sentence (default 256)"},
    {"upstream-template", 0, CLI_OPT_STR, O(build.up_tmpl), .mask = DATA_BUILD, .arg = "T",
     .help = "chat format of a server upstream (chatml, gemma, llama3);\nrequired for a URL"},
    {"annotator-template", 0, CLI_OPT_STR, O(build.an_tmpl), .mask = DATA_BUILD, .arg = "T",
     .help = "chat format of a server annotator, the same way"},
    {"upstream-model", 0, CLI_OPT_STR, O(build.up_model), .mask = DATA_BUILD, .arg = "NAME",
     .help = "a server upstream's model (default: its only one)"},
    {"annotator-model", 0, CLI_OPT_STR, O(build.an_model), .mask = DATA_BUILD, .arg = "NAME",
     .help = "a server annotator's model (default: its only one)"},
    {"temp", 0, CLI_OPT_FLOAT, O(build.temp), .mask = DATA_BUILD, .lo = 0, .hi = 10, .arg = "T",
     .help = "upstream temperature (default 0: greedy)"},
    {"stop-after", 0, CLI_OPT_UINT, O(build.stop_after), .mask = DATA_BUILD, .umin = 1, .umax = INT32_MAX,
     .arg = "N", .help = "stop after N prompts completed by this run"},
    {"threads", 't', CLI_OPT_INT, O(build.n_threads), .mask = DATA_BUILD, .imin = 0, .imax = 1024, .arg = "T",
     .help = "compute threads (default: all cores)"},
    CLI_HELP_ENTRY,
};
#undef O

#define DATA_CMD(NAME, MASK, USAGE)                                                                              \
    {.name = "data " NAME, .opts = data_opts, .n_opts = sizeof data_opts / sizeof data_opts[0], .mask = MASK,  \
     .usage = USAGE}
static const struct cli_cmd data_cmds[] = {
    DATA_CMD("from-gsm8k", DATA_GSM8K,
             "Usage: salign data from-gsm8k --input FILE --out FILE [OPTIONS]\n\n"
             "One sentence record per step of each GSM8K solution: a copy (last = correction)\n"
             "or a rewrite (last = the step corrupted by a rule, correction = the true step).\n\n"),
    DATA_CMD("split", DATA_SPLIT,
             "Usage: salign data split --input FILE --dev-fraction F --train OUT --dev OUT [--seed S]\n\n"
             "Splits records by question (no question in both files); seed default 0.\n\n"),
    DATA_CMD("check", DATA_CHECK,
             "Usage: salign data check --input FILE [--kind sentence|answer]\n\n"
             "Validates a record file (JSONL or JSON array) and counts its records.\n\n"),
    DATA_CMD("build", DATA_BUILD,
             "Usage: salign data build --prompts FILE --upstream M|URL --annotator M|URL --out FILE [OPTIONS]\n\n"
             "The upstream answers each prompt ({\"question\"} JSONL) sentence by sentence; the\n"
             "annotator corrects each sentence (CORRECTION: [[...]], EOS: [[TRUE|FALSE]]); one\n"
             "record {question, prefix, last, correction, eos, source} per sentence, the prefix\n"
             "following the corrected sentences. Appends to FILE with a checkpoint FILE.ckpt:\n"
             "run the same command again to resume an interrupted build.\n\n"),
};
#undef DATA_CMD
const struct cli_cmd *const cli_cmds_data[] = {&data_cmds[0], &data_cmds[1], &data_cmds[2], &data_cmds[3],
                                               &cli_cmd_data_rollout, &cli_cmd_data_continue, NULL};

static void usage(FILE *f) {
    fprintf(f, "Usage: salign data COMMAND [OPTIONS]\n\n"
               "Builds and checks the aligner's training records (docs/EVAL.md). Commands: from-gsm8k,\n"
               "split, check, build, rollout, continue. Output '-' is standard output.\n");
    for (size_t i = 0; cli_cmds_data[i]; i++) {
        fputs("\n", f);
        cli_help(f, cli_cmds_data[i]);
    }
}

int cmd_data(int argc, char **argv) {
    int rc;
    const struct cli_cmd *sub = cli_subcommand("data", cli_cmds_data, argc, argv, usage, &rc);
    if (!sub) return rc;
    if (sub == &cli_cmd_data_rollout) return cmd_data_rollout(argc - 1, argv + 1);
    if (sub == &cli_cmd_data_continue) return cmd_data_continue(argc - 1, argv + 1);
    const char *cmd = argv[1];
    struct data_opts o = {.dev_fraction = -1, .gsm8k = sa_gsm8k_default_params(),
                          .build = {.max_rounds = 8, .max_tokens = 256, .retries = 2}};
    rc = cli_parse(sub, argc - 1, argv + 1, &o, NULL);
    if (rc) return rc == CLI_PARSE_HELP ? CLI_OK : rc;
    const char *input = o.input, *out = o.out;
    const enum sa_records_format fmt = o.json_array ? SA_RECORDS_JSON_ARRAY : SA_RECORDS_JSONL;
    if (sub->mask == DATA_BUILD) {
        struct build_opts bo = o.build;
        if (!bo.prompts) return cli_usage_error("data", "build: missing --prompts FILE");
        if (!bo.upstream) return cli_usage_error("data", "build: missing --upstream MODEL|URL");
        if (!bo.annotator) return cli_usage_error("data", "build: missing --annotator MODEL|URL");
        if (!out || !strcmp(out, "-")) return cli_usage_error("data", "build: missing --out FILE (a file: it is appended to)");
        bo.out = out;
        bo.seed = o.seed;
        return build(&bo);
    }
    if (!input) return cli_usage_error("data", "%s: missing --input FILE", cmd);
    if (sub->mask == DATA_GSM8K) {
        if (!out) return cli_usage_error("data", "from-gsm8k: missing --out FILE");
        struct sa_gsm8k_params p = o.gsm8k;
        p.seed = o.seed;
        return from_gsm8k(input, out, &p, fmt);
    }
    if (sub->mask == DATA_SPLIT) {
        if (o.dev_fraction < 0) return cli_usage_error("data", "split: missing --dev-fraction F");
        if (!o.train || !o.dev) return cli_usage_error("data", "split: missing --train OUT or --dev OUT");
        return split(input, o.dev_fraction, o.seed, o.train, o.dev, fmt);
    }
    return check(input, o.kind);
}
