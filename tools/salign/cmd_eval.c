/* cmd_eval.c: `salign eval`: scores answers without a model.
 *   math     accuracy (95% Wilson interval) of GSM8K / MATH answers against the gold,
 *            overall and per round of a pipeline trace
 *   winrate  win rate of judged pairs (both orders) with a bootstrap interval
 * File formats: docs/EVAL.md. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/eval.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "Usage: salign eval COMMAND [OPTIONS]\n\n"
            "Scores answers without a model (docs/EVAL.md).\n\n"
            "Commands:\n"
            "  math --data gsm8k|math (--answers FILE | --per-round TRACE) [OPTIONS]\n"
            "      accuracy with a 95%% Wilson interval\n"
            "      --answers FILE     JSONL {\"id\" or \"question\", \"answer\": model text}\n"
            "      --gold FILE        gold JSONL (gsm8k default: GSM8K test.jsonl in the shared data;\n"
            "                         math: required, {\"problem\", \"solution\" and/or \"answer\"})\n"
            "      --per-round TRACE  accuracy after each round of a pipeline trace\n"
            "                         (JSONL {\"id\", \"round\", \"answer_so_far\"})\n"
            "      --details FILE     write one JSONL line per answer: key, pred, gold, correct\n"
            "  winrate --judgments FILE [--boot N] [--seed S]\n"
            "      win rate (W - L) / (W + L + E) x 100 of pairs judged in both orders, with a\n"
            "      bootstrap 95%% interval; FILE is JSONL {\"ab\": judge text (ours shown as A),\n"
            "      \"ba\": judge text (ours shown as B)}; --boot default 1000, --seed default 0\n\n"
            "Options:\n"
            "  --json                print one JSON object instead of text\n"
            "  -h, --help            show this help\n");
}

/* ---- JSONL helper ------------------------------------------------------------------------ */

/* Calls fn for each non-blank line's JSON object; stops at the first error (returns it). */
typedef int (*line_fn)(cJSON *o, const char *where, void *ud);
static int each_jsonl(const char *path, line_fn fn, void *ud) {
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(path, &text, &len)) return cli_fail("eval");
    int rc = CLI_OK;
    size_t pos = 0, line = 0;
    while (rc == CLI_OK && pos < len) {
        size_t e = pos;
        while (e < len && text[e] != '\n') e++;
        line++;
        size_t a = pos, b = e;
        pos = e + 1;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        if (a == b) continue;
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", path, line);
        cJSON *o = cJSON_ParseWithLength(text + a, b - a);
        if (!o || !cJSON_IsObject(o)) {
            fprintf(stderr, "salign eval: %s: not a JSON object\n", where);
            rc = CLI_FAIL;
        } else {
            rc = fn(o, where, ud);
        }
        cJSON_Delete(o);
    }
    free(text);
    return rc;
}

static const char *str_field(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static int field_error(const char *where, const char *msg) {
    fprintf(stderr, "salign eval: %s: %s\n", where, msg);
    return CLI_FAIL;
}

/* An "id" as text: a string, or an integer >= 0 in decimal. false if absent/ill-typed. */
static bool id_text(const cJSON *o, char buf[64], bool *present) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "id");
    *present = j && !cJSON_IsNull(j);
    if (!*present) return true;
    if (cJSON_IsString(j)) {
        snprintf(buf, 64, "%s", j->valuestring);
        return true;
    }
    if (cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble == floor(j->valuedouble) && j->valuedouble < 9e15) {
        snprintf(buf, 64, "%.0f", j->valuedouble);
        return true;
    }
    return false;
}

/* ---- gold ------------------------------------------------------------------------------- */

struct gold {
    enum sa_math_dataset ds;
    char **answer, **question, **id; /* (n); id[i] may be NULL */
    bool any_id;
    size_t n, cap;
};

static void gold_free(struct gold *g) {
    for (size_t i = 0; i < g->n; i++) {
        free(g->answer[i]);
        free(g->question[i]);
        free(g->id[i]);
    }
    free(g->answer);
    free(g->question);
    free(g->id);
}

static int gold_line(cJSON *o, const char *where, void *ud) {
    struct gold *g = ud;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 1024;
        char **a = realloc(g->answer, cap * sizeof *a);
        if (a) g->answer = a;
        char **q = realloc(g->question, cap * sizeof *q);
        if (q) g->question = q;
        char **d = realloc(g->id, cap * sizeof *d);
        if (d) g->id = d;
        if (!a || !q || !d) return field_error(where, "out of memory");
        g->cap = cap;
    }
    const char *q = str_field(o, "question");
    if (!q) q = str_field(o, "problem");
    if (!q) return field_error(where, "missing string field \"question\" (or \"problem\")");
    char *ans = NULL;
    if (g->ds == SA_MATH_GSM8K) {
        const char *sol = str_field(o, "answer");
        if (!sol) return field_error(where, "missing string field \"answer\" (a GSM8K solution ending in \"#### N\")");
        if (sa_math_gsm8k_gold(sol, &ans)) return field_error(where, "field \"answer\": no number after \"####\"");
    } else {
        const char *a = str_field(o, "answer");
        const char *sol = str_field(o, "solution");
        if (a) ans = strdup(a);
        else if (!sol) return field_error(where, "missing string field \"answer\" or \"solution\"");
        else if (sa_math_last_boxed(sol, &ans)) return field_error(where, "field \"solution\" has no \\boxed{} answer");
    }
    char idb[64];
    bool has_id;
    if (!id_text(o, idb, &has_id)) {
        free(ans);
        return field_error(where, "field \"id\" must be a string or an integer >= 0");
    }
    if (!has_id) {
        const char *u = str_field(o, "unique_id");
        if (u) {
            snprintf(idb, sizeof idb, "%s", u);
            has_id = true;
        }
    }
    g->answer[g->n] = ans;
    g->question[g->n] = strdup(q);
    g->id[g->n] = has_id ? strdup(idb) : NULL;
    g->any_id |= has_id;
    g->n++;
    if (!ans || !g->question[g->n - 1] || (has_id && !g->id[g->n - 1])) return field_error(where, "out of memory");
    return CLI_OK;
}

/* The shared data folder: $SA_SHARED_DATA, ../shared/data, or next to the repository of
 * the executable (<repo>/build/salign -> <repo>/../shared/data). */
static char *default_gsm8k_gold(void) {
    char *p = NULL;
    const char *env = getenv("SA_SHARED_DATA");
    if (env && *env) {
        if (asprintf(&p, "%s/gsm8k/test.jsonl", env) < 0) return NULL;
        return p;
    }
    if (cli_file_exists("../shared/data/gsm8k/test.jsonl")) return strdup("../shared/data/gsm8k/test.jsonl");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *dir = dirname(dirname(exe)); /* <repo> */
        if (asprintf(&p, "%s/../shared/data/gsm8k/test.jsonl", dir) < 0) return NULL;
        if (cli_file_exists(p)) return p;
        free(p);
    }
    return strdup("../shared/data/gsm8k/test.jsonl");
}

/* Index of the gold question an answer line refers to; -1 with a message on failure. */
static long gold_index(const struct gold *g, const cJSON *o, const char *where) {
    char idb[64];
    bool has_id;
    if (!id_text(o, idb, &has_id)) {
        field_error(where, "field \"id\" must be a string or an integer >= 0");
        return -1;
    }
    if (has_id) {
        if (g->any_id) {
            for (size_t i = 0; i < g->n; i++)
                if (g->id[i] && !strcmp(g->id[i], idb)) return (long)i;
        } else {
            char *e;
            errno = 0;
            unsigned long long k = strtoull(idb, &e, 10);
            if (!errno && !*e && *idb && k < g->n) return (long)k;
        }
        fprintf(stderr, "salign eval: %s: id \"%s\" is not in the gold file (ids are 0-based line indexes unless the gold has ids)\n",
                where, idb);
        return -1;
    }
    const char *q = str_field(o, "question");
    if (!q) {
        field_error(where, "missing field \"id\" (or \"question\")");
        return -1;
    }
    for (size_t i = 0; i < g->n; i++)
        if (!strcmp(g->question[i], q)) return (long)i;
    field_error(where, "\"question\" is not in the gold file");
    return -1;
}

/* ---- math ------------------------------------------------------------------------------- */

struct answers {
    const struct gold *g;
    signed char *state; /* (g->n): -1 unanswered, 0 wrong, 1 right */
    FILE *details;
    size_t n_answered;
};

static void print_json_str(FILE *f, const char *s) {
    cJSON *j = cJSON_CreateString(s ? s : "");
    char *p = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(p ? p : "\"\"", f);
    free(p);
    cJSON_Delete(j);
}

static int answer_line(cJSON *o, const char *where, void *ud) {
    struct answers *A = ud;
    long i = gold_index(A->g, o, where);
    if (i < 0) return CLI_FAIL;
    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(o, "answer");
    if (!cJSON_IsString(ja)) return field_error(where, "missing string field \"answer\" (the model's answer text)");
    if (A->state[i] >= 0) return field_error(where, "a second answer for the same question");
    char *pred = NULL;
    bool ok = sa_math_extract(A->g->ds, ja->valuestring, &pred) == SA_STATUS_OK && sa_math_equiv(pred, A->g->answer[i]);
    A->state[i] = ok;
    A->n_answered++;
    if (A->details) {
        fprintf(A->details, "{\"index\": %ld, \"pred\": ", i);
        if (pred) print_json_str(A->details, pred);
        else fputs("null", A->details);
        fputs(", \"gold\": ", A->details);
        print_json_str(A->details, A->g->answer[i]);
        fprintf(A->details, ", \"correct\": %s}\n", ok ? "true" : "false");
    }
    free(pred);
    return CLI_OK;
}

static void print_acc(bool json, const char *label, struct sa_eval_accuracy a) {
    if (json) printf("\"n\": %zu, \"correct\": %zu, \"accuracy\": %.6f, \"ci95\": [%.6f, %.6f]", a.n, a.n_correct, a.acc, a.lo, a.hi);
    else
        printf("%s: accuracy %.2f%% (%zu/%zu), 95%% CI [%.2f%%, %.2f%%]\n", label, 100 * a.acc, a.n_correct, a.n,
               100 * a.lo, 100 * a.hi);
}

static int eval_math(const char *data, const char *answers, const char *gold_path, const char *trace_path,
                     const char *details_path, bool json) {
    struct gold g = {0};
    if (!strcmp(data, "gsm8k")) g.ds = SA_MATH_GSM8K;
    else if (!strcmp(data, "math")) g.ds = SA_MATH_MATH;
    else return cli_usage_error("eval", "--data: '%s' is not 'gsm8k' or 'math'", data);
    if (!answers && !trace_path) return cli_usage_error("eval", "math: give --answers FILE and/or --per-round TRACE");
    char *gp = NULL;
    if (!gold_path) {
        if (g.ds == SA_MATH_MATH) return cli_usage_error("eval", "math: --data math needs --gold FILE");
        gold_path = gp = default_gsm8k_gold();
        if (!gp) return cli_fail("eval");
    }
    int rc = each_jsonl(gold_path, gold_line, &g);
    struct answers A = {.g = &g};
    struct sa_trace *tr = NULL;
    bool *correct = NULL;
    if (rc == CLI_OK && g.n == 0) rc = field_error(gold_path, "no gold questions");
    if (rc == CLI_OK && (!(A.state = malloc(g.n)) || !(correct = calloc(g.n, sizeof *correct))))
        rc = field_error("eval", "out of memory");
    if (rc == CLI_OK) memset(A.state, -1, g.n);
    if (rc == CLI_OK && details_path && !(A.details = fopen(details_path, "w"))) {
        fprintf(stderr, "salign eval: %s: cannot write: %s\n", details_path, strerror(errno));
        rc = CLI_FAIL;
    }
    if (rc == CLI_OK && answers) rc = each_jsonl(answers, answer_line, &A);
    if (rc == CLI_OK && trace_path && sa_trace_load(trace_path, &tr)) rc = cli_fail("eval");
    /* the trace's questions, resolved to gold indexes */
    long *tidx = NULL;
    size_t nt = tr ? sa_trace_n_questions(tr) : 0;
    if (rc == CLI_OK && tr && !(tidx = malloc((nt ? nt : 1) * sizeof *tidx))) rc = field_error("eval", "out of memory");
    for (size_t i = 0; rc == CLI_OK && i < nt; i++) {
        cJSON *o = cJSON_CreateObject();
        const char *id = sa_trace_id(tr, i), *q = sa_trace_question(tr, i);
        if (o && id) cJSON_AddStringToObject(o, "id", id);
        if (o && q) cJSON_AddStringToObject(o, "question", q);
        char where[600];
        snprintf(where, sizeof where, "%s: question %s", trace_path, id ? id : "(by text)");
        tidx[i] = o ? gold_index(&g, o, where) : -1;
        cJSON_Delete(o);
        if (tidx[i] < 0) rc = CLI_FAIL;
    }
    if (rc == CLI_OK) {
        if (json) printf("{\"dataset\": \"%s\", \"gold\": ", data), print_json_str(stdout, gold_path);
        if (answers) {
            size_t k = 0;
            for (size_t i = 0; i < g.n; i++)
                if (A.state[i] >= 0) correct[k++] = A.state[i] == 1;
            struct sa_eval_accuracy a = sa_eval_accuracy(correct, k);
            if (json) {
                printf(", ");
                print_acc(true, NULL, a);
                printf(", \"unanswered\": %zu", g.n - A.n_answered);
            } else {
                print_acc(false, data, a);
                if (A.n_answered < g.n) printf("%zu of %zu gold questions have no answer (not counted)\n", g.n - A.n_answered, g.n);
            }
        }
        if (tr) {
            int32_t r0 = sa_trace_min_round(tr), r1 = sa_trace_max_round(tr);
            if (json) printf(", \"rounds\": [");
            for (int32_t r = r0; r <= r1; r++) {
                for (size_t i = 0; i < nt; i++) {
                    const char *ans = sa_trace_answer(tr, i, r);
                    correct[i] = ans && sa_math_is_correct(g.ds, ans, g.answer[tidx[i]]);
                }
                struct sa_eval_accuracy a = sa_eval_accuracy(correct, nt);
                char label[64];
                snprintf(label, sizeof label, "round %d", (int)r);
                if (json) {
                    printf("%s{\"round\": %d, ", r > r0 ? ", " : "", (int)r);
                    print_acc(true, NULL, a);
                    printf("}");
                } else {
                    print_acc(false, label, a);
                }
            }
            if (json) printf("]");
        }
        if (json) printf("}\n");
    }
    if (A.details && fclose(A.details) && rc == CLI_OK) {
        fprintf(stderr, "salign eval: %s: write error\n", details_path);
        rc = CLI_FAIL;
    }
    free(tidx);
    sa_trace_free(tr);
    free(correct);
    free(A.state);
    gold_free(&g);
    free(gp);
    return rc;
}

/* ---- win rate ----------------------------------------------------------------------------- */

struct judgments {
    enum sa_pair_outcome *o;
    size_t n, cap;
};

static int judgment_line(cJSON *obj, const char *where, void *ud) {
    struct judgments *J = ud;
    const char *ab = str_field(obj, "ab"), *ba = str_field(obj, "ba");
    if (!ab) return field_error(where, "missing string field \"ab\" (the judge's text, ours shown as A)");
    if (!ba) return field_error(where, "missing string field \"ba\" (the judge's text, ours shown as B)");
    if (J->n == J->cap) {
        size_t cap = J->cap ? 2 * J->cap : 256;
        enum sa_pair_outcome *o = realloc(J->o, cap * sizeof *o);
        if (!o) return field_error(where, "out of memory");
        J->o = o;
        J->cap = cap;
    }
    J->o[J->n++] = sa_eval_pair_outcome(sa_eval_parse_verdict(ab), sa_eval_parse_verdict(ba));
    return CLI_OK;
}

static int eval_winrate(const char *path, uint32_t n_boot, uint64_t seed, bool json) {
    struct judgments J = {0};
    int rc = each_jsonl(path, judgment_line, &J);
    struct sa_eval_winrate w;
    if (rc == CLI_OK && sa_eval_winrate(J.o, J.n, n_boot, seed, &w)) rc = cli_fail("winrate");
    if (rc == CLI_OK) {
        if (json)
            printf("{\"win\": %zu, \"loss\": %zu, \"equal\": %zu, \"invalid\": %zu, \"win_rate\": %.4f, \"ci95\": [%.4f, %.4f], "
                   "\"boot\": %u, \"seed\": %llu}\n",
                   w.n_win, w.n_loss, w.n_equal, w.n_invalid, w.rate, w.lo, w.hi, n_boot, (unsigned long long)seed);
        else
            printf("win rate %.2f, 95%% CI [%.2f, %.2f] (W %zu, L %zu, E %zu; %zu invalid pairs not counted)\n", w.rate,
                   w.lo, w.hi, w.n_win, w.n_loss, w.n_equal, w.n_invalid);
    }
    free(J.o);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return CLI_OK;
    }
    bool is_math = !strcmp(cmd, "math"), is_win = !strcmp(cmd, "winrate");
    if (!is_math && !is_win) return cli_usage_error("eval", "unknown command '%s'", cmd);
    enum { OPT_DATA = 256, OPT_ANSWERS, OPT_GOLD, OPT_PER_ROUND, OPT_DETAILS, OPT_JSON, OPT_JUDG, OPT_BOOT, OPT_SEED };
    static const struct option opts[] = {
        {"data", required_argument, NULL, OPT_DATA},         {"answers", required_argument, NULL, OPT_ANSWERS},
        {"gold", required_argument, NULL, OPT_GOLD},         {"per-round", required_argument, NULL, OPT_PER_ROUND},
        {"details", required_argument, NULL, OPT_DETAILS},   {"json", no_argument, NULL, OPT_JSON},
        {"judgments", required_argument, NULL, OPT_JUDG},    {"boot", required_argument, NULL, OPT_BOOT},
        {"seed", required_argument, NULL, OPT_SEED},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *data = NULL, *answers = NULL, *gold = NULL, *trace = NULL, *details = NULL, *judg = NULL;
    bool json = false;
    unsigned long long boot = 1000, seed = 0;
    argc--;
    argv++;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        bool math_opt = c == OPT_DATA || c == OPT_ANSWERS || c == OPT_GOLD || c == OPT_PER_ROUND || c == OPT_DETAILS;
        bool win_opt = c == OPT_JUDG || c == OPT_BOOT || c == OPT_SEED;
        if (c == 'h') {
            usage(stdout);
            return CLI_OK;
        }
        if (c == ':') return cli_usage_error("eval", "option '%s' needs a value", argv[optind - 1]);
        if (c == '?' || (math_opt && !is_math) || (win_opt && !is_win))
            return cli_usage_error("eval", "%s: unknown option '%s'", cmd, argv[optind - 1]);
        char *e;
        switch (c) {
        case OPT_DATA: data = optarg; break;
        case OPT_ANSWERS: answers = optarg; break;
        case OPT_GOLD: gold = optarg; break;
        case OPT_PER_ROUND: trace = optarg; break;
        case OPT_DETAILS: details = optarg; break;
        case OPT_JSON: json = true; break;
        case OPT_JUDG: judg = optarg; break;
        case OPT_BOOT:
            errno = 0;
            boot = strtoull(optarg, &e, 10);
            if (errno || *e || !*optarg || *optarg == '-' || boot < 2 || boot > 10000000)
                return cli_usage_error("eval", "--boot: '%s' is not an integer in [2, 10000000]", optarg);
            break;
        case OPT_SEED:
            errno = 0;
            seed = strtoull(optarg, &e, 0);
            if (errno || *e || !*optarg || *optarg == '-')
                return cli_usage_error("eval", "--seed: '%s' is not an integer >= 0", optarg);
            break;
        }
    }
    if (optind < argc) return cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (is_math) {
        if (!data) return cli_usage_error("eval", "math: missing --data gsm8k|math");
        return eval_math(data, answers, gold, trace, details, json);
    }
    if (!judg) return cli_usage_error("eval", "winrate: missing --judgments FILE");
    return eval_winrate(judg, (uint32_t)boot, seed, json);
}
