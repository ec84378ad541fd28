/* cmd_bench_pipeline.c: `salign bench pipeline`: the pipeline's speed on one model pair, in
 * five configurations run on the same questions (issue 5, "Speed"): stream (speculation and
 * KV reuse on), stream without speculation, stream without KV reuse, the Aligner baseline
 * (mode aligner) and the upstream alone. Per configuration: time to the first emitted piece,
 * ms per token of the final answer, prompt tokens each model evaluated, speculation
 * acceptance, rounds; and the stream/aligner ratios the paper reports (per-token time 0.80x,
 * first-token latency 10x lower). Greedy, so answers differ only through float rounding. */
#define _GNU_SOURCE
#include "cli.h"
#include "generate.h"
#include "sa/pipeline.h"

#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_QUESTIONS "/work/shared/data/gsm8k/test.jsonl"

/* ---- configurations ---- */

enum { CFG_STREAM, CFG_NO_SPEC, CFG_NO_KV, CFG_ALIGNER, CFG_UPSTREAM, CFG_COUNT };
static const char *const cfg_names[CFG_COUNT] = {"stream", "stream-no-spec", "stream-no-kv", "aligner", "upstream"};

struct cfg_stats {
    bool on;
    struct sa_pipeline *pl;
    int n;                       /* answers measured */
    double first_ms, ms_per_token, total_ms; /* sums over answers (means at the end) */
    long tokens, rounds, copied, sentences;
    long up_prefill, up_tokens, al_prefill, al_tokens, al_draft, al_accepted;
    char **answers;              /* per question (malloc'd) */
};

struct bench_opts {
    const char *upstream, *aligner, *aligner_system, *questions, *configs;
    int32_t n, max_rounds, max_length, n_ctx;
    int n_threads;
    enum sa_segment_unit unit;
    bool json, batch_invariant, warmup;
};

static const char *const unit_names[] = {"sentence", "line", NULL}; /* enum sa_segment_unit */

#define O(f) CLI_AT(struct bench_opts, f)
static const struct cli_opt bench_pipeline_opts[] = {
    {"upstream", 0, CLI_OPT_STR, O(upstream), .arg = "M", .help = "the upstream (path or cached name)"},
    {"aligner", 0, CLI_OPT_STR, O(aligner), .arg = "M",
     .help = "the aligner (path or cached name; may equal --upstream)"},
    {"aligner-system", 0, CLI_OPT_STR, O(aligner_system), .arg = "TEXT",
     .help = "a system message for the aligner (an untrained stand-in)"},
    {"questions", 0, CLI_OPT_STR, O(questions), .arg = "FILE",
     .help = "JSONL with \"question\" (or \"prompt\", \"problem\"); default the\nGSM8K test set, " DEFAULT_QUESTIONS
             "\n($SA_SHARED_DATA/gsm8k/test.jsonl when set)"},
    {NULL, 'n', CLI_OPT_INT, O(n), .imin = 1, .imax = 100000, .arg = "N",
     .help = "the first N questions (default 5)"},
    {"configs", 0, CLI_OPT_STR, O(configs), .arg = "LIST",
     .help = "comma-separated subset of the five (default all)"},
    {"max-rounds", 0, CLI_OPT_INT, O(max_rounds), .imin = 0, .imax = 1 << 20, .arg = "R",
     .help = "most corrected sentences per answer (default 6)"},
    {"max-length", 0, CLI_OPT_INT, O(max_length), .imin = 1, .imax = 1 << 24, .arg = "L",
     .help = "most tokens of an answer (default 256)"},
    {"unit", 0, CLI_OPT_ENUM, O(unit), .names = unit_names, .arg = "sentence|line",
     .help = "what the upstream is cut at (default sentence)"},
    {"batch-invariant", 0, CLI_OPT_FLAG, O(batch_invariant),
     .help = "bitwise batch-invariant kernels in every local context\n(sa_pipeline_params.batch_invariant): the "
             "stream answers must\nthen be identical with and without speculation and KV reuse"},
    {"no-warmup", 0, CLI_OPT_UNSET, O(warmup), .help = "skip the untimed warm-up round"},
    {"threads", 't', CLI_OPT_INT, O(n_threads), .imin = 0, .imax = 1024, .arg = "T",
     .help = "compute threads (default: all cores)"},
    {"ctx-size", 'c', CLI_OPT_INT, O(n_ctx), .imin = 0, .imax = 1 << 24, .arg = "N",
     .help = "context size of each local model (default 2048)"},
    {"json", 0, CLI_OPT_FLAG, O(json), .help = "one JSON object instead of the table"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_bench_pipeline = {
    .name = "bench pipeline",
    .opts = bench_pipeline_opts,
    .n_opts = sizeof bench_pipeline_opts / sizeof bench_pipeline_opts[0],
    .usage = "Usage: salign bench pipeline --upstream MODEL --aligner MODEL [OPTIONS]\n\n"
             "Runs the same questions through the pipeline in five configurations and compares them:\n"
             "  stream          the Stream Aligner loop, copy-speculation and KV reuse on\n"
             "  stream-no-spec  the loop, the aligner decoding one token per forward pass\n"
             "  stream-no-kv    the loop, every prompt evaluated from scratch\n"
             "  aligner         the Aligner baseline: whole answer, rewritten once\n"
             "  upstream        the upstream alone (no correction)\n"
             "Greedy decoding. Questions run in turn through every configuration (so that a change\n"
             "of machine load hits them alike), after one untimed warm-up round.\n\n",
    .epilog = "Example:\n"
              "  salign bench pipeline --upstream qwen2.5-coder-0.5b-instruct \\\n"
              "      --aligner smollm2-135m-instruct -n 5 --max-rounds 6 -t 2\n",
};

/* Parses the options and checks them. Returns 0, CLI_PARSE_HELP or CLI_USAGE. */
static int parse_args(int argc, char **argv, struct bench_opts *o) {
    int prc = cli_parse(&cli_cmd_bench_pipeline, argc, argv, o, NULL);
    if (prc) return prc;
    if (!o->upstream) return cli_usage_error("bench pipeline", "no upstream (--upstream MODEL)");
    if (!o->aligner) return cli_usage_error("bench pipeline", "no aligner (--aligner MODEL)");
    if (!strncmp(o->upstream, "http://", 7) || !strncmp(o->upstream, "https://", 8))
        return cli_usage_error("bench pipeline", "the benchmark needs a local upstream (prompt tokens, KV reuse)");
    return 0;
}

/* Marks the configurations named in `list` (NULL: all). Returns 0 or a usage error. */
static int select_configs(const char *list, struct cfg_stats *cs) {
    for (int c = 0; c < CFG_COUNT; c++) cs[c].on = list == NULL;
    for (const char *s = list; s && *s;) {
        size_t n = strcspn(s, ",");
        int found = -1;
        for (int c = 0; c < CFG_COUNT; c++)
            if (strlen(cfg_names[c]) == n && !strncmp(s, cfg_names[c], n)) found = c;
        if (found < 0)
            return cli_usage_error("bench pipeline", "unknown configuration '%.*s' in --configs (stream, stream-no-spec, "
                                                     "stream-no-kv, aligner, upstream)", (int)n, s);
        cs[found].on = true;
        s += n + (s[n] == ',');
    }
    for (int c = 0; c < CFG_COUNT; c++)
        if (cs[c].on) return 0;
    return cli_usage_error("bench pipeline", "--configs names no configuration");
}

/* ---- questions ---- */

/* Reads the first `n` questions of a JSONL file into q[] (malloc'd strings). Returns how many
 * (fewer when the file is shorter), or -1 with the error printed. */
static int read_questions(const char *path, int n, char **q) {
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(path, &text, &len)) {
        cli_fail(NULL);
        return -1;
    }
    int got = 0, lineno = 0;
    for (char *line = text; line && *line && got < n; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *cur = line;
        line = nl ? nl + 1 : NULL;
        if (strspn(cur, " \t\r") == strlen(cur)) continue;
        cJSON *j = cJSON_Parse(cur);
        const cJSON *v = NULL;
        static const char *const keys[] = {"question", "prompt", "problem"};
        for (size_t k = 0; j && !v && k < 3; k++) {
            v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
            if (!cJSON_IsString(v)) v = NULL;
        }
        if (!v) {
            fprintf(stderr, "salign bench pipeline: %s:%d: not a JSON object with a \"question\" (or \"prompt\", "
                            "\"problem\") string\n", path, lineno + 1);
            cJSON_Delete(j);
            free(text);
            return -1;
        }
        q[got] = strdup(v->valuestring);
        cJSON_Delete(j);
        if (!q[got]) {
            free(text);
            fprintf(stderr, "salign bench pipeline: out of memory\n");
            return -1;
        }
        got++;
    }
    free(text);
    if (got == 0) fprintf(stderr, "salign bench pipeline: %s has no question\n", path);
    return got ? got : -1;
}

/* ---- measuring ---- */

static void add_result(struct cfg_stats *c, const struct sa_pipeline_result *r) {
    c->n++;
    c->first_ms += r->first_sentence_ms;
    c->ms_per_token += r->ms_per_token;
    c->total_ms += r->total_ms;
    c->tokens += r->n_tokens;
    c->rounds += r->n_rounds;
    c->copied += r->n_copied;
    c->sentences += r->n_sentences;
    c->up_prefill += r->upstream_prefill;
    c->up_tokens += r->upstream_tokens;
    c->al_prefill += r->aligner_prefill;
    c->al_tokens += r->aligner_tokens;
    c->al_draft += r->aligner_draft;
    c->al_accepted += r->aligner_accepted;
}

static double mean(double sum, int n) { return n ? sum / n : 0.0; }
static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

/* Questions where configuration c's answer equals stream's; -1 when either did not run. */
static int n_same(const struct cfg_stats *cs, int c, int n_q) {
    if (!cs[CFG_STREAM].on || !cs[c].on) return -1;
    int same = 0;
    for (int i = 0; i < n_q; i++)
        same += cs[CFG_STREAM].answers[i] && cs[c].answers[i] && !strcmp(cs[CFG_STREAM].answers[i], cs[c].answers[i]);
    return same;
}

static cJSON *report_json(const struct bench_opts *o, const char *questions, struct cfg_stats *cs, int n_q) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "upstream", o->upstream);
    cJSON_AddStringToObject(j, "aligner", o->aligner);
    cJSON_AddStringToObject(j, "questions_file", questions);
    cJSON_AddNumberToObject(j, "questions", n_q);
    cJSON_AddNumberToObject(j, "max_rounds", o->max_rounds);
    cJSON_AddNumberToObject(j, "max_length", o->max_length);
    cJSON_AddNumberToObject(j, "threads", o->n_threads);
    cJSON_AddBoolToObject(j, "batch_invariant", o->batch_invariant);
    cJSON *cfgs = cJSON_AddObjectToObject(j, "configs");
    for (int c = 0; c < CFG_COUNT; c++) {
        if (!cs[c].on) continue;
        const struct cfg_stats *s = &cs[c];
        cJSON *k = cJSON_AddObjectToObject(cfgs, cfg_names[c]);
        cJSON_AddNumberToObject(k, "answers", s->n);
        cJSON_AddNumberToObject(k, "first_sentence_ms", mean(s->first_ms, s->n));
        cJSON_AddNumberToObject(k, "ms_per_token", mean(s->ms_per_token, s->n));
        cJSON_AddNumberToObject(k, "ms_per_token_pooled", ratio(s->total_ms, (double)s->tokens));
        cJSON_AddNumberToObject(k, "total_ms", mean(s->total_ms, s->n));
        cJSON_AddNumberToObject(k, "tokens", mean((double)s->tokens, s->n));
        cJSON_AddNumberToObject(k, "tokens_per_s", ratio((double)s->tokens, s->total_ms / 1000.0));
        cJSON_AddNumberToObject(k, "rounds", mean((double)s->rounds, s->n));
        cJSON_AddNumberToObject(k, "copy_rate", ratio((double)s->copied, (double)s->rounds));
        cJSON_AddNumberToObject(k, "upstream_prefill", (double)s->up_prefill);
        cJSON_AddNumberToObject(k, "upstream_tokens", (double)s->up_tokens);
        cJSON_AddNumberToObject(k, "aligner_prefill", (double)s->al_prefill);
        cJSON_AddNumberToObject(k, "aligner_tokens", (double)s->al_tokens);
        cJSON_AddNumberToObject(k, "aligner_draft", (double)s->al_draft);
        cJSON_AddNumberToObject(k, "aligner_accepted", (double)s->al_accepted);
        cJSON_AddNumberToObject(k, "acceptance", ratio((double)s->al_accepted, (double)s->al_draft));
        cJSON *ans = cJSON_AddArrayToObject(k, "answers_text");
        for (int i = 0; i < n_q; i++) cJSON_AddItemToArray(ans, cJSON_CreateString(s->answers[i] ? s->answers[i] : ""));
    }
    if (cs[CFG_STREAM].on && cs[CFG_ALIGNER].on) {
        const struct cfg_stats *st = &cs[CFG_STREAM], *al = &cs[CFG_ALIGNER];
        cJSON *r = cJSON_AddObjectToObject(j, "stream_vs_aligner");
        cJSON_AddNumberToObject(r, "ms_per_token_ratio", ratio(mean(st->ms_per_token, st->n), mean(al->ms_per_token, al->n)));
        cJSON_AddNumberToObject(r, "ms_per_token_pooled_ratio",
                                ratio(ratio(st->total_ms, (double)st->tokens), ratio(al->total_ms, (double)al->tokens)));
        cJSON_AddNumberToObject(r, "first_sentence_ratio", ratio(mean(st->first_ms, st->n), mean(al->first_ms, al->n)));
        cJSON_AddNumberToObject(r, "first_sentence_speedup", ratio(mean(al->first_ms, al->n), mean(st->first_ms, st->n)));
    }
    cJSON *same = cJSON_AddObjectToObject(j, "identical_to_stream");
    for (int c = CFG_NO_SPEC; c <= CFG_NO_KV; c++) {
        int k = n_same(cs, c, n_q);
        if (k >= 0) cJSON_AddNumberToObject(same, cfg_names[c], k);
    }
    return j;
}

static void report_table(const struct bench_opts *o, struct cfg_stats *cs, int n_q) {
    char thr[32] = "all cores";
    if (o->n_threads > 0) snprintf(thr, sizeof thr, "%d thread(s)", o->n_threads);
    printf("upstream %s, aligner %s: %d question(s), max %d rounds, max %d tokens, %s%s\n", o->upstream, o->aligner,
           n_q, o->max_rounds, o->max_length, thr, o->batch_invariant ? ", batch-invariant kernels" : "");
    printf("| config         | first sentence ms | ms/token | pooled | tokens | rounds | copy | upstream prefill | "
           "aligner prefill | spec accepted      |\n");
    printf("|----------------|------------------:|---------:|-------:|-------:|-------:|-----:|-----------------:|"
           "----------------:|-------------------:|\n");
    for (int c = 0; c < CFG_COUNT; c++) {
        if (!cs[c].on) continue;
        const struct cfg_stats *s = &cs[c];
        char spec[48] = "-";
        if (s->al_draft) snprintf(spec, sizeof spec, "%ld/%ld (%.0f%%)", s->al_accepted, s->al_draft,
                                  100.0 * ratio((double)s->al_accepted, (double)s->al_draft));
        printf("| %-14s | %17.0f | %8.1f | %6.1f | %6.1f | %6.1f | %3.0f%% | %16ld | %15ld | %18s |\n", cfg_names[c],
               mean(s->first_ms, s->n), mean(s->ms_per_token, s->n), ratio(s->total_ms, (double)s->tokens),
               mean((double)s->tokens, s->n),
               mean((double)s->rounds, s->n), 100.0 * ratio((double)s->copied, (double)s->rounds), s->up_prefill,
               s->al_prefill, spec);
    }
    printf("(means per answer; pooled: all answers' time over all their tokens; prefill: prompt tokens\n"
           " evaluated, totals over the %d question(s))\n", n_q);
    if (cs[CFG_STREAM].on && cs[CFG_ALIGNER].on) {
        const struct cfg_stats *st = &cs[CFG_STREAM], *al = &cs[CFG_ALIGNER];
        const double fs = mean(st->first_ms, st->n), fa = mean(al->first_ms, al->n);
        printf("stream / aligner: per-token time %.2fx (pooled %.2fx; paper: 0.80x); first-sentence latency %.3fx, "
               "%.1fx lower (paper: 10x)\n",
               ratio(mean(st->ms_per_token, st->n), mean(al->ms_per_token, al->n)),
               ratio(ratio(st->total_ms, (double)st->tokens), ratio(al->total_ms, (double)al->tokens)), ratio(fs, fa),
               ratio(fa, fs));
    }
    for (int c = CFG_NO_SPEC; c <= CFG_NO_KV; c++) {
        int k = n_same(cs, c, n_q);
        if (k >= 0) printf("%s: %d of %d answer(s) identical to stream\n", cfg_names[c], k, n_q);
    }
}

int cmd_bench_pipeline(int argc, char **argv) {
    struct bench_opts o = {.n = 5, .max_rounds = 6, .max_length = 256, .n_ctx = 2048, .warmup = true};
    int prc = parse_args(argc, argv, &o);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    struct cfg_stats cs[CFG_COUNT] = {0};
    if ((prc = select_configs(o.configs, cs))) return prc;

    char *default_q = NULL;
    const char *qpath = o.questions;
    if (!qpath) {
        const char *sd = getenv("SA_SHARED_DATA");
        if (sd && *sd && asprintf(&default_q, "%s/gsm8k/test.jsonl", sd) < 0) default_q = NULL;
        qpath = default_q ? default_q : DEFAULT_QUESTIONS;
    }
    int rc = CLI_OK, n_q = 0;
    char **q = calloc((size_t)o.n, sizeof *q);
    struct sa_model *up = NULL, *al = NULL;
    if (!q) {
        fprintf(stderr, "salign bench pipeline: out of memory\n");
        rc = CLI_FAIL;
        goto done;
    }
    if ((n_q = read_questions(qpath, o.n, q)) < 0) {
        n_q = 0;
        rc = CLI_FAIL;
        goto done;
    }
    if ((rc = gen_load_model(o.upstream, o.n_threads, &up))) goto done;
    if (strcmp(o.aligner, o.upstream) && (rc = gen_load_model(o.aligner, o.n_threads, &al))) goto done;

    struct sa_pipeline_params base = sa_pipeline_default_params();
    base.upstream_model = up;
    base.aligner_model = al ? al : up;
    base.aligner_system = o.aligner_system;
    base.max_rounds = o.max_rounds;
    base.max_length = o.max_length;
    base.unit = o.unit;
    base.n_threads = o.n_threads;
    base.n_ctx = o.n_ctx;
    base.batch_invariant = o.batch_invariant;
    for (int c = 0; c < CFG_COUNT; c++) {
        if (!cs[c].on) continue;
        struct sa_pipeline_params p = base;
        p.mode = c == CFG_ALIGNER ? SA_PIPELINE_ALIGNER : c == CFG_UPSTREAM ? SA_PIPELINE_UPSTREAM : SA_PIPELINE_STREAM;
        p.use_spec = c != CFG_NO_SPEC;
        p.kv_reuse = c != CFG_NO_KV;
        if (c == CFG_UPSTREAM) p.aligner_model = NULL;
        cs[c].answers = calloc((size_t)n_q, sizeof *cs[c].answers);
        if (!cs[c].answers) {
            fprintf(stderr, "salign bench pipeline: out of memory\n");
            rc = CLI_FAIL;
            goto done;
        }
        if (sa_pipeline_init(&p, &cs[c].pl)) {
            rc = cli_fail(cfg_names[c]);
            goto done;
        }
    }
    if (o.warmup) { /* page in both models' weights and start the thread pools, untimed */
        struct sa_pipeline_params p = base;
        p.max_rounds = 1;
        p.max_length = 16;
        struct sa_pipeline *pl = NULL;
        struct sa_pipeline_result r;
        if (sa_pipeline_init(&p, &pl)) {
            rc = cli_fail("warm-up");
            goto done;
        }
        enum sa_status s = sa_pipeline_run(pl, q[0], NULL, &r);
        sa_pipeline_result_free(&r);
        sa_pipeline_free(pl);
        if (s) {
            rc = cli_fail("warm-up");
            goto done;
        }
    }
    for (int i = 0; i < n_q; i++) {
        for (int c = 0; c < CFG_COUNT; c++) {
            if (!cs[c].on) continue;
            struct sa_pipeline_result r;
            if (sa_pipeline_run(cs[c].pl, q[i], NULL, &r)) {
                sa_pipeline_result_free(&r);
                rc = cli_fail(cfg_names[c]);
                goto done;
            }
            add_result(&cs[c], &r);
            cs[c].answers[i] = r.answer;
            r.answer = NULL; /* kept */
            fprintf(stderr, "[%d/%d] %-14s %s: %d round(s), %d tokens, first %.0f ms, %.1f ms/token\n", i + 1, n_q,
                    cfg_names[c], sa_pipeline_stop_name(r.stop), r.n_rounds, r.n_tokens, r.first_sentence_ms,
                    r.ms_per_token);
            sa_pipeline_result_free(&r);
        }
    }
    if (o.json) {
        cJSON *j = report_json(&o, qpath, cs, n_q);
        char *s = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (!s) {
            fprintf(stderr, "salign bench pipeline: out of memory\n");
            rc = CLI_FAIL;
            goto done;
        }
        printf("%s\n", s);
        free(s);
    } else {
        report_table(&o, cs, n_q);
    }
    fflush(stdout);
done:
    for (int c = CFG_COUNT - 1; c >= 0; c--) {
        sa_pipeline_free(cs[c].pl);
        for (int i = 0; cs[c].answers && i < n_q; i++) free(cs[c].answers[i]);
        free(cs[c].answers);
    }
    sa_model_free(al);
    sa_model_free(up);
    for (int i = 0; q && i < n_q; i++) free(q[i]);
    free(q);
    free(default_q);
    return rc;
}
