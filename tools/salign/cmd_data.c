/* cmd_data.c: `salign data`: build and handle the aligner's training records.
 *   from-gsm8k  sentence records (copy + rule-based rewrites) from GSM8K solutions
 *   split       train/dev split by question
 *   check       validate a record file and count its records
 *   build       sentence records from an upstream and an annotator model (resumable) */
#define _GNU_SOURCE
#include "cli.h"
#include "generate.h"
#include "sa/data_build.h"
#include "sa/eval.h"
#include "sa/records.h"
#include "sa/sa.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "Usage: salign data COMMAND [OPTIONS]\n\n"
            "Builds and checks the aligner's training records (docs/EVAL.md).\n\n"
            "Commands:\n"
            "  from-gsm8k --input FILE --out FILE [OPTIONS]\n"
            "      one sentence record per step of each GSM8K solution: a copy (last = correction)\n"
            "      or a rewrite (last = the step corrupted by a rule, correction = the true step)\n"
            "      --seed S              corruption seed (default 0)\n"
            "      --rewrite-ratio R     fraction of rewrite records, 0..1 (default 0.5)\n"
            "      --keep-calc           keep the <<a*b=c>> calculator annotations (default: stripped)\n"
            "      --no-answer-step      drop the '#### N' line instead of the step \"The answer is N.\"\n"
            "      --solution            add the whole reference solution to each record\n"
            "      --whole-answer        one whole-answer record {question, answer, correction} per\n"
            "                            problem (the Aligner baseline's data): the steps the same\n"
            "                            seed would corrupt shown corrupted, the true solution as\n"
            "                            the correction\n"
            "      --json-array          write a JSON array instead of JSONL\n"
            "  split --input FILE --dev-fraction F --train OUT --dev OUT [--seed S]\n"
            "      split records by question (no question in both files); seed default 0\n"
            "  check --input FILE [--kind sentence|answer]\n"
            "      validate a record file (JSONL or JSON array) and count its records\n"
            "  build --prompts FILE --upstream M|URL --annotator M|URL --out FILE [OPTIONS]\n"
            "      the upstream answers each prompt ({\"question\"} JSONL) sentence by sentence; the\n"
            "      annotator corrects each sentence (CORRECTION: [[...]], EOS: [[TRUE|FALSE]]); one\n"
            "      record {question, prefix, last, correction, eos, source} per sentence, the prefix\n"
            "      following the corrected sentences. Appends to FILE with a checkpoint FILE.ckpt:\n"
            "      run the same command again to resume an interrupted build\n"
            "      --reference-field F   the prompts' reference solution field (GSM8K: answer),\n"
            "                            shown to the annotator as {reference}\n"
            "      --max-rounds R        most sentences per prompt (default 8)\n"
            "      --retries N           retries of a malformed annotation (default 2), then skipped\n"
            "      --prompt FILE         annotator prompt (default docs/prompts/annotator.txt)\n"
            "      --max-tokens N        most tokens of an annotator answer (default 256)\n"
            "      --max-sentence-tokens N  most upstream tokens for one sentence (default 256)\n"
            "      --upstream-template T, --annotator-template T  chat format of a server model\n"
            "                            (chatml, gemma, llama3); required for a URL\n"
            "      --upstream-model NAME, --annotator-model NAME  a server's model (default: its only one)\n"
            "      --seed S              annotator retry seed, upstream sampling seed (default 0)\n"
            "      --temp T              upstream temperature (default 0: greedy)\n"
            "      --stop-after N        stop after N prompts completed by this run\n"
            "      -t, --threads T       compute threads (default: all cores)\n\n"
            "Options:\n"
            "  -h, --help            show this help\n"
            "Output '-' is standard output.\n");
}

static bool parse_u64(const char *s, uint64_t *v) {
    if (!s || !*s || *s == '-') return false;
    errno = 0;
    char *e;
    unsigned long long x = strtoull(s, &e, 0);
    if (errno || *e) return false;
    *v = x;
    return true;
}

static bool parse_fraction(const char *s, double *v) {
    if (!s || !*s) return false;
    char *e;
    errno = 0;
    double x = strtod(s, &e);
    if (errno || *e || !(x >= 0 && x <= 1)) return false;
    *v = x;
    return true;
}

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

enum {
    OPT_INPUT = 256, OPT_OUT, OPT_SEED, OPT_RATIO, OPT_KEEP_CALC, OPT_NO_ANSWER_STEP, OPT_SOLUTION, OPT_WHOLE,
    OPT_JSON_ARRAY, OPT_DEV_FRACTION, OPT_TRAIN, OPT_DEV, OPT_KIND,
    OPT_PROMPTS, OPT_UPSTREAM, OPT_ANNOTATOR, OPT_REF_FIELD, OPT_MAX_ROUNDS, OPT_RETRIES, OPT_PROMPT,
    OPT_MAX_TOKENS, OPT_MAX_SENT_TOKENS, OPT_UP_TMPL, OPT_AN_TMPL, OPT_UP_MODEL, OPT_AN_MODEL, OPT_TEMP,
    OPT_STOP_AFTER, OPT_THREADS = 't',
};

static const struct option opts[] = {
    {"input", required_argument, NULL, OPT_INPUT},
    {"out", required_argument, NULL, OPT_OUT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"rewrite-ratio", required_argument, NULL, OPT_RATIO},
    {"keep-calc", no_argument, NULL, OPT_KEEP_CALC},
    {"no-answer-step", no_argument, NULL, OPT_NO_ANSWER_STEP},
    {"solution", no_argument, NULL, OPT_SOLUTION},
    {"whole-answer", no_argument, NULL, OPT_WHOLE},
    {"json-array", no_argument, NULL, OPT_JSON_ARRAY},
    {"dev-fraction", required_argument, NULL, OPT_DEV_FRACTION},
    {"train", required_argument, NULL, OPT_TRAIN},
    {"dev", required_argument, NULL, OPT_DEV},
    {"kind", required_argument, NULL, OPT_KIND},
    {"prompts", required_argument, NULL, OPT_PROMPTS},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"annotator", required_argument, NULL, OPT_ANNOTATOR},
    {"reference-field", required_argument, NULL, OPT_REF_FIELD},
    {"max-rounds", required_argument, NULL, OPT_MAX_ROUNDS},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"prompt", required_argument, NULL, OPT_PROMPT},
    {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
    {"max-sentence-tokens", required_argument, NULL, OPT_MAX_SENT_TOKENS},
    {"upstream-template", required_argument, NULL, OPT_UP_TMPL},
    {"annotator-template", required_argument, NULL, OPT_AN_TMPL},
    {"upstream-model", required_argument, NULL, OPT_UP_MODEL},
    {"annotator-model", required_argument, NULL, OPT_AN_MODEL},
    {"temp", required_argument, NULL, OPT_TEMP},
    {"stop-after", required_argument, NULL, OPT_STOP_AFTER},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Options each command accepts (others are usage errors). */
static bool allowed(const char *cmd, int opt) {
    if (!strcmp(cmd, "build"))
        return opt == OPT_OUT || opt == OPT_SEED || (opt >= OPT_PROMPTS && opt <= OPT_STOP_AFTER) ||
               opt == OPT_THREADS;
    if (opt == OPT_INPUT) return true;
    if (!strcmp(cmd, "from-gsm8k"))
        return opt == OPT_OUT || opt == OPT_SEED || opt == OPT_RATIO || opt == OPT_KEEP_CALC ||
               opt == OPT_NO_ANSWER_STEP || opt == OPT_SOLUTION || opt == OPT_WHOLE || opt == OPT_JSON_ARRAY;
    if (!strcmp(cmd, "split"))
        return opt == OPT_SEED || opt == OPT_DEV_FRACTION || opt == OPT_TRAIN || opt == OPT_DEV || opt == OPT_JSON_ARRAY;
    if (!strcmp(cmd, "check")) return opt == OPT_KIND;
    return false;
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

static bool parse_i32(const char *s, int32_t lo, int32_t *v) {
    uint64_t x;
    if (!parse_u64(s, &x) || x > INT32_MAX || (int64_t)x < lo) return false;
    *v = (int32_t)x;
    return true;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(cmd, "from-gsm8k") && strcmp(cmd, "split") && strcmp(cmd, "check") && strcmp(cmd, "build"))
        return cli_usage_error("data", "unknown command '%s'", cmd);
    struct sa_gsm8k_params p = sa_gsm8k_default_params();
    const char *input = NULL, *out = NULL, *train = NULL, *dev = NULL;
    double frac = -1;
    uint64_t seed = 0;
    enum sa_records_format fmt = SA_RECORDS_JSONL;
    enum sa_record_kind kind = SA_RECORD_ANY;
    struct build_opts bo = {.max_rounds = 8, .max_tokens = 256, .retries = 2};
    int32_t i32 = 0;
    int c;
    optind = 1;
    opterr = 0;
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "+:ht:", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return CLI_OK;
        }
        if (c == ':') return cli_usage_error("data", "option '%s' needs a value", argv[optind - 1]);
        if (c == '?' || !allowed(cmd, c))
            return cli_usage_error("data", "%s: unknown option '%s'", cmd, argv[optind - 1]);
        switch (c) {
        case OPT_INPUT: input = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_SEED:
            if (!parse_u64(optarg, &seed)) return cli_usage_error("data", "--seed: '%s' is not an integer >= 0", optarg);
            break;
        case OPT_RATIO:
            if (!parse_fraction(optarg, &p.rewrite_ratio))
                return cli_usage_error("data", "--rewrite-ratio: '%s' is not a number in [0, 1]", optarg);
            break;
        case OPT_KEEP_CALC: p.keep_calc = true; break;
        case OPT_NO_ANSWER_STEP: p.answer_step = false; break;
        case OPT_SOLUTION: p.with_solution = true; break;
        case OPT_WHOLE: p.whole_answer = true; break;
        case OPT_JSON_ARRAY: fmt = SA_RECORDS_JSON_ARRAY; break;
        case OPT_DEV_FRACTION:
            if (!parse_fraction(optarg, &frac))
                return cli_usage_error("data", "--dev-fraction: '%s' is not a number in [0, 1]", optarg);
            break;
        case OPT_TRAIN: train = optarg; break;
        case OPT_DEV: dev = optarg; break;
        case OPT_KIND:
            if (!strcmp(optarg, "sentence")) kind = SA_RECORD_SENTENCE;
            else if (!strcmp(optarg, "answer")) kind = SA_RECORD_ANSWER;
            else return cli_usage_error("data", "--kind: '%s' is not 'sentence' or 'answer'", optarg);
            break;
        case OPT_PROMPTS: bo.prompts = optarg; break;
        case OPT_UPSTREAM: bo.upstream = optarg; break;
        case OPT_ANNOTATOR: bo.annotator = optarg; break;
        case OPT_REF_FIELD: bo.ref_field = optarg; break;
        case OPT_PROMPT: bo.prompt = optarg; break;
        case OPT_UP_TMPL: bo.up_tmpl = optarg; break;
        case OPT_AN_TMPL: bo.an_tmpl = optarg; break;
        case OPT_UP_MODEL: bo.up_model = optarg; break;
        case OPT_AN_MODEL: bo.an_model = optarg; break;
        case OPT_MAX_ROUNDS:
            if (!parse_i32(optarg, 1, &bo.max_rounds))
                return cli_usage_error("data", "--max-rounds: '%s' is not an integer >= 1", optarg);
            break;
        case OPT_MAX_TOKENS:
            if (!parse_i32(optarg, 1, &bo.max_tokens))
                return cli_usage_error("data", "--max-tokens: '%s' is not an integer >= 1", optarg);
            break;
        case OPT_MAX_SENT_TOKENS:
            if (!parse_i32(optarg, 1, &bo.max_sentence_tokens))
                return cli_usage_error("data", "--max-sentence-tokens: '%s' is not an integer >= 1", optarg);
            break;
        case OPT_RETRIES:
            if (!parse_i32(optarg, 0, &i32) || i32 > 100)
                return cli_usage_error("data", "--retries: '%s' is not an integer in [0, 100]", optarg);
            bo.retries = (uint32_t)i32;
            break;
        case OPT_STOP_AFTER:
            if (!parse_i32(optarg, 1, &i32))
                return cli_usage_error("data", "--stop-after: '%s' is not an integer >= 1", optarg);
            bo.stop_after = (size_t)i32;
            break;
        case OPT_THREADS:
            if (!parse_i32(optarg, 0, &i32) || i32 > 1024)
                return cli_usage_error("data", "--threads: '%s' is not an integer in [0, 1024]", optarg);
            bo.n_threads = i32;
            break;
        case OPT_TEMP: {
            char *e;
            errno = 0;
            bo.temp = strtof(optarg, &e);
            if (errno || *e || !(bo.temp >= 0 && bo.temp <= 10))
                return cli_usage_error("data", "--temp: '%s' is not a number in [0, 10]", optarg);
            break;
        }
        default: return cli_usage_error("data", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("data", "unexpected argument '%s'", argv[optind]);
    if (!strcmp(cmd, "build")) {
        if (!bo.prompts) return cli_usage_error("data", "build: missing --prompts FILE");
        if (!bo.upstream) return cli_usage_error("data", "build: missing --upstream MODEL|URL");
        if (!bo.annotator) return cli_usage_error("data", "build: missing --annotator MODEL|URL");
        if (!out || !strcmp(out, "-")) return cli_usage_error("data", "build: missing --out FILE (a file: it is appended to)");
        bo.out = out;
        bo.seed = seed;
        return build(&bo);
    }
    if (!input) return cli_usage_error("data", "%s: missing --input FILE", cmd);
    if (!strcmp(cmd, "from-gsm8k")) {
        if (!out) return cli_usage_error("data", "from-gsm8k: missing --out FILE");
        p.seed = seed;
        return from_gsm8k(input, out, &p, fmt);
    }
    if (!strcmp(cmd, "split")) {
        if (frac < 0) return cli_usage_error("data", "split: missing --dev-fraction F");
        if (!train || !dev) return cli_usage_error("data", "split: missing --train OUT or --dev OUT");
        return split(input, frac, seed, train, dev, fmt);
    }
    return check(input, kind);
}
