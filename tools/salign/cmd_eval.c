/* cmd_eval.c: `salign eval`: scores answers.
 *   math     accuracy (95% Wilson interval) of GSM8K / MATH answers against the gold,
 *            overall and per round of a pipeline trace
 *   winrate  win rate of judged pairs (both orders) with a bootstrap interval
 *   judge    asks a judge model (local or a server) to compare two answer files pair by
 *            pair in both orders, with a resumable cache, and reports the win rate
 *   report   a Markdown report with SVG plots from the JSON results and traces
 *   aligner  kept / changed / fixed rates of an aligner on held-out records (cmd_eval_aligner.c)
 * File formats: docs/EVAL.md. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"
#include "sa/eval.h"
#include "sa/jsonl.h"
#include "sa/pipeline.h"

#include <cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- JSONL helper ------------------------------------------------------------------------ */

/* Calls fn for each object of a JSONL file (read by sa_jsonl_load: blank lines skipped, one
 * object a line, errors naming the file and line; a file without any object is an error, not
 * "0/0"); stops at the first error (returns it). */
typedef int (*line_fn)(const cJSON *o, const char *where, void *ud);
struct each_ctx {
    line_fn fn;
    void *ud;
    int rc;
};
static enum sa_status each_line(void *user, const struct sa_jsonl_item *it) {
    struct each_ctx *c = user;
    c->rc = c->fn(it->object, it->where, c->ud);
    return c->rc == CLI_OK ? SA_STATUS_OK : SA_STATUS_CANCELLED;
}
static int each_jsonl(const char *path, line_fn fn, void *ud) {
    struct each_ctx c = {fn, ud, CLI_OK};
    enum sa_status st = sa_jsonl_load(path, SA_JSONL_NOT_EMPTY, each_line, &c, NULL);
    if (st == SA_STATUS_CANCELLED && c.rc != CLI_OK) return c.rc; /* fn printed why */
    return st ? cli_fail("eval") : CLI_OK;
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
    char **solution;                 /* (n) the whole reference solution (eval judge's {reference}) */
    bool any_id;
    size_t n, cap;
};

static void gold_free(struct gold *g) {
    for (size_t i = 0; i < g->n; i++) {
        free(g->answer[i]);
        free(g->question[i]);
        free(g->id[i]);
        free(g->solution[i]);
    }
    free(g->solution);
    free(g->answer);
    free(g->question);
    free(g->id);
}

static int gold_line(const cJSON *o, const char *where, void *ud) {
    struct gold *g = ud;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 1024;
        char **a = realloc(g->answer, cap * sizeof *a);
        if (a) g->answer = a;
        char **q = realloc(g->question, cap * sizeof *q);
        if (q) g->question = q;
        char **d = realloc(g->id, cap * sizeof *d);
        if (d) g->id = d;
        char **so = realloc(g->solution, cap * sizeof *so);
        if (so) g->solution = so;
        if (!a || !q || !d || !so) return field_error(where, "out of memory");
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
    const char *full = str_field(o, g->ds == SA_MATH_GSM8K ? "answer" : "solution");
    if (!full) full = str_field(o, "answer");
    g->answer[g->n] = ans;
    g->question[g->n] = strdup(q);
    g->id[g->n] = has_id ? strdup(idb) : NULL;
    g->solution[g->n] = strdup(full ? full : "");
    g->any_id |= has_id;
    g->n++;
    if (!ans || !g->question[g->n - 1] || (has_id && !g->id[g->n - 1]) || !g->solution[g->n - 1])
        return field_error(where, "out of memory");
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
    size_t n_errors;    /* error records (salign align could not answer): counted wrong */
};

static void print_json_str(FILE *f, const char *s) {
    cJSON *j = cJSON_CreateString(s ? s : "");
    char *p = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(p ? p : "\"\"", f);
    free(p);
    cJSON_Delete(j);
}

static int answer_line(const cJSON *o, const char *where, void *ud) {
    struct answers *A = ud;
    long i = gold_index(A->g, o, where);
    if (i < 0) return CLI_FAIL;
    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(o, "answer");
    /* an error record of salign align ({"id", "error"}: the question could not be answered)
     * counts as a wrong answer */
    const bool is_error = !cJSON_IsString(ja) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "error"));
    if (!cJSON_IsString(ja) && !is_error)
        return field_error(where, "missing string field \"answer\" (the model's answer text) or \"error\"");
    if (A->state[i] >= 0) return field_error(where, "a second answer for the same question");
    char *pred = NULL;
    bool ok = !is_error && sa_math_extract(A->g->ds, ja->valuestring, &pred) == SA_STATUS_OK &&
              sa_math_equiv(pred, A->g->answer[i]);
    A->n_errors += is_error;
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
                printf(", \"unanswered\": %zu, \"errors\": %zu", g.n - A.n_answered, A.n_errors);
            } else {
                print_acc(false, data, a);
                if (A.n_errors)
                    printf("%zu of the %zu answers are error records (the question could not be answered): counted "
                           "wrong\n", A.n_errors, A.n_answered);
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

static int judgment_line(const cJSON *obj, const char *where, void *ud) {
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

/* ---- judge -------------------------------------------------------------------------------- */

/* One answers file of `eval judge`: JSONL {"id" or "question", "answer"}. */
struct answer_set {
    const char *path;
    char **key, **question, **answer; /* (n); question[i] may be NULL */
    bool *by_id;                      /* (n) key is the "id" (else the question) */
    size_t n, cap;
};

static void answer_set_free(struct answer_set *a) {
    for (size_t i = 0; i < a->n; i++) {
        free(a->key[i]);
        free(a->question[i]);
        free(a->answer[i]);
    }
    free(a->key);
    free(a->question);
    free(a->answer);
    free(a->by_id);
}

static int answer_set_line(const cJSON *o, const char *where, void *ud) {
    struct answer_set *A = ud;
    if (A->n == A->cap) {
        size_t cap = A->cap ? 2 * A->cap : 256;
        char **k = realloc(A->key, cap * sizeof *k);
        if (k) A->key = k;
        char **q = realloc(A->question, cap * sizeof *q);
        if (q) A->question = q;
        char **an = realloc(A->answer, cap * sizeof *an);
        if (an) A->answer = an;
        bool *b = realloc(A->by_id, cap * sizeof *b);
        if (b) A->by_id = b;
        if (!k || !q || !an || !b) return field_error(where, "out of memory");
        A->cap = cap;
    }
    char idb[64];
    bool has_id;
    if (!id_text(o, idb, &has_id)) return field_error(where, "field \"id\" must be a string or an integer >= 0");
    const char *q = str_field(o, "question");
    if (!has_id && !q) return field_error(where, "missing field \"id\" (or \"question\")");
    const char *ans = str_field(o, "answer");
    if (!ans) return field_error(where, "missing string field \"answer\" (the model's answer text)");
    const char *key = has_id ? idb : q;
    for (size_t i = 0; i < A->n; i++)
        if (A->by_id[i] == has_id && !strcmp(A->key[i], key)) {
            fprintf(stderr, "salign eval: %s: a second answer for %s \"%.60s\"\n", where, has_id ? "id" : "question", key);
            return CLI_FAIL;
        }
    size_t i = A->n;
    A->key[i] = strdup(key);
    A->question[i] = q ? strdup(q) : NULL;
    A->answer[i] = strdup(ans);
    A->by_id[i] = has_id;
    A->n++;
    if (!A->key[i] || (q && !A->question[i]) || !A->answer[i]) return field_error(where, "out of memory");
    return CLI_OK;
}

static long answer_find(const struct answer_set *A, const char *key, bool by_id) {
    for (size_t i = 0; i < A->n; i++)
        if (A->by_id[i] == by_id && !strcmp(A->key[i], key)) return (long)i;
    return -1;
}

/* Reports the keys of `x` missing from `y` (at most 5 named); returns how many. */
static size_t report_missing(const struct answer_set *x, const struct answer_set *y) {
    size_t n = 0;
    for (size_t i = 0; i < x->n; i++) {
        if (answer_find(y, x->key[i], x->by_id[i]) >= 0) continue;
        if (n < 5)
            fprintf(stderr, "salign eval: %s has %s \"%.60s\", which %s lacks\n", x->path, x->by_id[i] ? "id" : "question",
                    x->key[i], y->path);
        n++;
    }
    if (n > 5) fprintf(stderr, "salign eval: ... and %zu more in %s that %s lacks\n", n - 5, x->path, y->path);
    return n;
}

static char *default_prompt(const char *aspect) {
    char name[64];
    snprintf(name, sizeof name, "judge_%s.txt", aspect);
    return cli_default_prompt("eval", name);
}


struct judge_ui {
    FILE *out;   /* --out: one JSONL line per pair, or NULL */
    bool quiet;
    size_t n;
    double t0;
    bool failed_write;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const outcome_names[] = {"invalid", "win", "loss", "equal"};

static bool judge_on_pair(void *user, size_t i, const struct sa_judge_pair *pair, const struct sa_judge_pair_result *r) {
    struct judge_ui *ui = user;
    if (ui->out) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "key", pair->key);
        cJSON_AddStringToObject(j, "ab", sa_verdict_str(r->ab));
        cJSON_AddStringToObject(j, "ba", sa_verdict_str(r->ba));
        cJSON_AddStringToObject(j, "outcome", outcome_names[r->outcome]);
        cJSON_AddNumberToObject(j, "attempts_ab", r->attempts_ab);
        cJSON_AddNumberToObject(j, "attempts_ba", r->attempts_ba);
        cJSON_AddStringToObject(j, "judge_ab", r->text_ab);
        cJSON_AddStringToObject(j, "judge_ba", r->text_ba);
        char *line = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (!line || fprintf(ui->out, "%s\n", line) < 0) ui->failed_write = true;
        free(line);
    }
    if (!ui->quiet) {
        double el = now_s() - ui->t0, eta = el / (double)(i + 1) * (double)(ui->n - i - 1);
        fprintf(stderr, "[%zu/%zu] %.40s: A first %s, B first %s -> %s (ETA %.0f s)\n", i + 1, ui->n, pair->key,
                sa_verdict_str(r->ab), sa_verdict_str(r->ba), outcome_names[r->outcome], eta);
    }
    return true;
}

struct judge_opts {
    const char *a, *b, *judge, *aspect, *prompt, *cache, *out, *gold, *data, *tmpl, *judge_model, *label;
    int32_t max_tokens, n_ctx;
    int n_threads;
    uint32_t retries, n_boot;
    uint64_t seed;
    float retry_temp;
    bool json, quiet;
};

/* The chat template text of a GGUF file (tokenizer.chat_template), for a remote judge. */
static int template_from_gguf(const char *ref, char **tmpl, char **arch) {
    char *path = NULL;
    if (sa_hub_resolve(ref, NULL, &path) != SA_STATUS_OK) return cli_fail(NULL);
    struct sa_gguf *g = NULL;
    enum sa_status s = sa_gguf_open(path, &g);
    free(path);
    if (s) return cli_fail("--judge-template");
    *tmpl = sa_gguf_get_string(g, "tokenizer.chat_template");
    *arch = sa_gguf_get_string(g, "general.architecture");
    sa_gguf_free(g);
    return CLI_OK;
}

/* Builds the judge: a local model (kept in *model, freed after the judge) or a server. */
static int make_judge(const struct judge_opts *o, struct sa_model **model, struct sa_judge **out) {
    struct sa_judge_upstream_params jp = sa_judge_upstream_default_params();
    jp.max_tokens = o->max_tokens;
    jp.retry_temperature = o->retry_temp;
    jp.seed = o->seed;
    struct sa_upstream *up = NULL;
    char *model_id = NULL, *tmpl = NULL, *arch = NULL;
    int rc = CLI_OK;
    enum sa_chat_format named = SA_CHAT_FORMAT_UNKNOWN; /* stays UNKNOWN when o->tmpl is a file, not a name */
    if (o->tmpl && sa_chat_format_from_name(o->tmpl, &named) != SA_STATUS_OK) named = SA_CHAT_FORMAT_UNKNOWN;
    bool remote = !strncmp(o->judge, "http://", 7) || !strncmp(o->judge, "https://", 8);
    if (remote) {
        if (!o->tmpl)
            return cli_usage_error("eval", "judge: a server judge needs --judge-template chatml|gemma|llama3 (or the "
                                           "model's GGUF): prompts are rendered here");
        if (named == SA_CHAT_FORMAT_UNKNOWN) {
            if ((rc = template_from_gguf(o->tmpl, &tmpl, &arch))) return rc;
            named = sa_chat_template_detect(tmpl, arch);
            if (named == SA_CHAT_FORMAT_UNKNOWN) {
                fprintf(stderr, "salign eval: %s: its chat template is not one salign knows (chatml, gemma, llama3)\n",
                        o->tmpl);
                rc = CLI_FAIL;
            }
        }
        struct sa_upstream_remote_params rp = sa_upstream_remote_default_params();
        rp.base_url = o->judge;
        rp.model = o->judge_model;
        if (!rc && sa_upstream_remote_init(&rp, &up)) rc = cli_fail("judge server");
        if (!rc && asprintf(&model_id, "remote:%s:%s", o->judge, o->judge_model ? o->judge_model : "(only model)") < 0)
            rc = cli_fail("out of memory");
        jp.stop_at_eot = true;
    } else {
        char *path = NULL;
        struct stat st;
        if (sa_hub_resolve(o->judge, NULL, &path) != SA_STATUS_OK) return cli_fail(NULL);
        struct sa_model_params mp = sa_model_default_params();
        mp.n_threads = o->n_threads;
        if (sa_model_load(path, &mp, model)) rc = cli_fail("loading the judge model");
        if (!rc && !sa_model_tokenizer(*model)) {
            fprintf(stderr, "salign eval: %s: the judge model has no tokenizer\n", o->judge);
            rc = CLI_FAIL;
        }
        if (!rc) {
            const char *t = sa_model_chat_template(*model);
            if (t && !(tmpl = strdup(t))) rc = cli_fail("out of memory");
            if (named == SA_CHAT_FORMAT_UNKNOWN && o->tmpl) {
                fprintf(stderr, "salign eval: --judge-template '%s' is not chatml, gemma or llama3\n", o->tmpl);
                rc = CLI_FAIL;
            }
            if (!o->tmpl) named = sa_chat_template_detect(tmpl, sa_model_config(*model)->arch_name);
            if (!rc && named == SA_CHAT_FORMAT_UNKNOWN) {
                fprintf(stderr, "salign eval: %s: the model's chat template is not one salign knows; give "
                                "--judge-template chatml|gemma|llama3\n", o->judge);
                rc = CLI_FAIL;
            }
        }
        /* the file's name and size name the model in the cache keys */
        const char *base = strrchr(path, '/');
        if (!rc && (stat(path, &st) ||
                    asprintf(&model_id, "local:%s:%lld", base ? base + 1 : path, (long long)st.st_size) < 0))
            rc = cli_fail("judge model");
        free(path);
        if (!rc && sa_upstream_local_init(*model, o->n_ctx, o->n_threads, true, &up)) rc = cli_fail("judge context");
    }
    jp.format = named;
    jp.chat_template = tmpl;
    jp.model_id = model_id;
    if (!rc) {
        if (sa_judge_init_upstream(up, &jp, out)) rc = cli_fail("judge");
        up = NULL; /* owned by the judge now, even on failure */
    }
    sa_upstream_free(up);
    free(model_id);
    free(tmpl);
    free(arch);
    return rc;
}

static int eval_judge(const struct judge_opts *o) {
    enum sa_judge_aspect aspect;
    if (sa_judge_aspect_from_name(o->aspect, &aspect) != SA_STATUS_OK)
        return cli_usage_error("eval", "--aspect: '%s' is not helpful, harmless or math", o->aspect);
    struct answer_set A = {.path = o->a}, B = {.path = o->b};
    struct gold g = {0};
    struct sa_judge_prompt *prompt = NULL;
    struct sa_judge_pair *pairs = NULL;
    struct sa_model *model = NULL;
    struct sa_judge *judge = NULL;
    char *prompt_path = NULL, *gold_path = NULL;
    struct judge_ui ui = {.quiet = o->quiet};
    int rc = each_jsonl(o->a, answer_set_line, &A);
    if (!rc) rc = each_jsonl(o->b, answer_set_line, &B);
    if (!rc && (!A.n || !B.n)) rc = field_error(A.n ? o->b : o->a, "no answers");
    if (!rc) {
        size_t m = report_missing(&A, &B) + report_missing(&B, &A);
        if (m) {
            fprintf(stderr, "salign eval: the answer files do not pair up (%zu unmatched); both must answer the same "
                            "questions, keyed by the same \"id\" or \"question\"\n", m);
            rc = CLI_FAIL;
        }
    }
    /* the prompt */
    if (!rc && !o->prompt && !(prompt_path = default_prompt(o->aspect))) rc = CLI_FAIL;
    if (!rc && sa_judge_prompt_load(o->prompt ? o->prompt : prompt_path, &prompt)) rc = cli_fail("eval");
    /* gold: for {reference}, and for questions known only by id */
    bool need_gold = o->gold || (prompt && sa_judge_prompt_needs_reference(prompt));
    for (size_t i = 0; !rc && !need_gold && i < A.n; i++) {
        long j = answer_find(&B, A.key[i], A.by_id[i]);
        need_gold = !A.question[i] && !B.question[j];
    }
    if (!rc && need_gold) {
        const char *data = o->data ? o->data : "gsm8k";
        if (!strcmp(data, "gsm8k")) g.ds = SA_MATH_GSM8K;
        else if (!strcmp(data, "math")) g.ds = SA_MATH_MATH;
        else rc = cli_usage_error("eval", "--data: '%s' is not 'gsm8k' or 'math'", data);
        if (!rc && !o->gold && g.ds == SA_MATH_MATH)
            rc = cli_usage_error("eval", "judge: the prompt needs reference solutions or questions: give --gold FILE");
        if (!rc && !o->gold && !(gold_path = default_gsm8k_gold())) rc = cli_fail("eval");
        if (!rc) rc = each_jsonl(o->gold ? o->gold : gold_path, gold_line, &g);
    }
    if (!rc && !(pairs = calloc(A.n, sizeof *pairs))) rc = field_error("eval", "out of memory");
    for (size_t i = 0; !rc && i < A.n; i++) {
        long j = answer_find(&B, A.key[i], A.by_id[i]);
        struct sa_judge_pair *p = &pairs[i];
        p->key = A.key[i];
        p->answer_a = A.answer[i];
        p->answer_b = B.answer[j];
        p->question = A.question[i] ? A.question[i] : B.question[j];
        if (A.question[i] && B.question[j] && strcmp(A.question[i], B.question[j])) {
            fprintf(stderr, "salign eval: %s \"%s\": the two files give different questions\n",
                    A.by_id[i] ? "id" : "question", A.key[i]);
            rc = CLI_FAIL;
            break;
        }
        if (g.n) {
            cJSON *obj = cJSON_CreateObject();
            if (obj) cJSON_AddStringToObject(obj, A.by_id[i] ? "id" : "question", A.key[i]);
            char where[600];
            snprintf(where, sizeof where, "%s: %s \"%.60s\"", o->a, A.by_id[i] ? "id" : "question", A.key[i]);
            long k = obj ? gold_index(&g, obj, where) : -1;
            cJSON_Delete(obj);
            if (k < 0) {
                rc = CLI_FAIL;
                break;
            }
            if (!p->question) p->question = g.question[k];
            p->reference = g.solution[k];
        }
        if (!p->question) {
            fprintf(stderr, "salign eval: id \"%s\" has no question text: add \"question\" to the answer files or give "
                            "--gold FILE\n", A.key[i]);
            rc = CLI_FAIL;
        }
    }
    if (!rc && o->out && !(ui.out = fopen(o->out, "w"))) {
        fprintf(stderr, "salign eval: %s: cannot write: %s\n", o->out, strerror(errno));
        rc = CLI_FAIL;
    }
    if (!rc) rc = make_judge(o, &model, &judge);
    struct sa_judge_run_stats st = {0};
    enum sa_status s = SA_STATUS_OK;
    if (!rc) {
        struct sa_judge_run_params rp = sa_judge_run_default_params();
        rp.retries = o->retries;
        rp.cache_path = o->cache;
        rp.n_boot = o->n_boot;
        rp.boot_seed = o->seed;
        rp.cancel = cli_interrupted;
        rp.on_pair = judge_on_pair;
        rp.user = &ui;
        ui.n = A.n;
        ui.t0 = now_s();
        cli_sigint_catch();
        s = sa_judge_run(judge, prompt, pairs, A.n, &rp, &st);
        cli_sigint_restore();
        if (s == SA_STATUS_CANCELLED) {
            fprintf(stderr, "salign eval: interrupted after %zu of %zu pairs%s\n", st.n_pairs, A.n,
                    o->cache ? "; run the same command again to resume from the cache" : "");
            rc = CLI_FAIL;
        } else if (s) {
            rc = cli_fail("eval judge");
        }
    }
    if (ui.out && (fclose(ui.out) || ui.failed_write) && !rc) {
        fprintf(stderr, "salign eval: %s: write error\n", o->out);
        rc = CLI_FAIL;
    }
    if (!rc) {
        const struct sa_eval_winrate *w = &st.wr;
        if (o->json) {
            cJSON *j = cJSON_CreateObject();
            if (o->label) cJSON_AddStringToObject(j, "label", o->label);
            cJSON_AddStringToObject(j, "aspect", o->aspect);
            cJSON_AddStringToObject(j, "judge", sa_judge_id(judge));
            cJSON_AddStringToObject(j, "a", o->a);
            cJSON_AddStringToObject(j, "b", o->b);
            cJSON_AddNumberToObject(j, "pairs", (double)st.n_pairs);
            cJSON_AddNumberToObject(j, "win", (double)w->n_win);
            cJSON_AddNumberToObject(j, "loss", (double)w->n_loss);
            cJSON_AddNumberToObject(j, "equal", (double)w->n_equal);
            cJSON_AddNumberToObject(j, "invalid", (double)w->n_invalid);
            cJSON_AddNumberToObject(j, "win_rate", w->rate);
            cJSON *ci = cJSON_AddArrayToObject(j, "ci95");
            cJSON_AddItemToArray(ci, cJSON_CreateNumber(w->lo));
            cJSON_AddItemToArray(ci, cJSON_CreateNumber(w->hi));
            cJSON_AddNumberToObject(j, "boot", o->n_boot);
            cJSON_AddNumberToObject(j, "seed", (double)o->seed);
            cJSON_AddNumberToObject(j, "requests", (double)st.n_requests);
            cJSON_AddNumberToObject(j, "cached", (double)st.n_cached);
            cJSON_AddNumberToObject(j, "retries", (double)st.n_retries);
            cJSON_AddNumberToObject(j, "invalid_orders", (double)st.n_invalid_orders);
            char *txt = cJSON_PrintUnformatted(j);
            cJSON_Delete(j);
            if (txt) printf("%s\n", txt);
            free(txt);
        } else {
            printf("judge %s, aspect %s, %zu pairs (%s vs %s)\n", sa_judge_id(judge), o->aspect, st.n_pairs, o->a, o->b);
            printf("win rate %.2f, 95%% CI [%.2f, %.2f] (W %zu, L %zu, E %zu; %zu invalid pairs not counted)\n", w->rate,
                   w->lo, w->hi, w->n_win, w->n_loss, w->n_equal, w->n_invalid);
            printf("judge requests %zu, from the cache %zu, retries %zu, orders left unparsable %zu\n", st.n_requests,
                   st.n_cached, st.n_retries, st.n_invalid_orders);
        }
    }
    sa_judge_free(judge);
    sa_model_free(model);
    sa_judge_prompt_free(prompt);
    free(pairs);
    gold_free(&g);
    answer_set_free(&A);
    answer_set_free(&B);
    free(prompt_path);
    free(gold_path);
    return rc;
}

/* ---- options ------------------------------------------------------------------------------ */

/* The subcommands, as masks of the table entries (`eval aligner` has its own table). */
enum { EVAL_MATH = 1, EVAL_WINRATE = 2, EVAL_JUDGE = 4, EVAL_REPORT = 8 };

struct str_list {
    const char **v; /* room for argc entries */
    size_t n;
};

static bool add_result(const char *v, void *field) {
    struct str_list *l = field;
    l->v[l->n++] = v;
    return true;
}

/* The options of every subcommand: those judge shares with the others (--data, --gold,
 * --json, --boot, --seed, --out) are read from j. */
struct eval_opts {
    struct judge_opts j;
    const char *answers, *per_round, *details, *judgments;
    struct str_list results;
    struct sa_report_params rp;
};

#define O(f) CLI_AT(struct eval_opts, f)
static const struct cli_opt eval_opts[] = {
    {"data", 0, CLI_OPT_STR, O(j.data), .mask = EVAL_MATH | EVAL_JUDGE, .arg = "gsm8k|math",
     .help = "the data set of the answers (judge: of --gold)"},
    {"answers", 0, CLI_OPT_STR, O(answers), .mask = EVAL_MATH, .arg = "FILE",
     .help = "JSONL {\"id\" or \"question\", \"answer\": model text}"},
    {"gold", 0, CLI_OPT_STR, O(j.gold), .mask = EVAL_MATH | EVAL_JUDGE, .arg = "FILE",
     .help = "gold JSONL (gsm8k default: GSM8K test.jsonl in the shared data;\nmath: required, {\"problem\", "
             "\"solution\" and/or \"answer\"}); judge:\nreference solutions / questions by id ({reference} of the "
             "math\nprompt; default for --aspect math: GSM8K test)"},
    {"per-round", 0, CLI_OPT_STR, O(per_round), .mask = EVAL_MATH, .arg = "TRACE",
     .help = "accuracy after each round of a pipeline trace\n(JSONL {\"id\", \"round\", \"answer_so_far\"})"},
    {"details", 0, CLI_OPT_STR, O(details), .mask = EVAL_MATH, .arg = "FILE",
     .help = "write one JSONL line per answer: key, pred, gold, correct"},
    {"judgments", 0, CLI_OPT_STR, O(judgments), .mask = EVAL_WINRATE, .arg = "FILE",
     .help = "JSONL {\"ab\": judge text (ours shown as A), \"ba\": judge text\n(ours shown as B)}"},
    {"a", 0, CLI_OPT_STR, O(j.a), .mask = EVAL_JUDGE, .arg = "FILE", .help = "the answers A (JSONL {\"id\" or "
     "\"question\", \"answer\"})"},
    {"b", 0, CLI_OPT_STR, O(j.b), .mask = EVAL_JUDGE, .arg = "FILE", .help = "the answers B, paired with A by "
     "id/question"},
    {"judge", 0, CLI_OPT_STR, O(j.judge), .mask = EVAL_JUDGE, .arg = "MODEL|URL",
     .help = "a GGUF / cached model name (greedy, local), or an OpenAI-compatible\nserver http://host:port/v1 "
             "(then --judge-template is required)"},
    {"aspect", 0, CLI_OPT_STR, O(j.aspect), .mask = EVAL_JUDGE, .arg = "helpful|harmless|math",
     .help = "what the judge compares"},
    {"prompt", 0, CLI_OPT_STR, O(j.prompt), .mask = EVAL_JUDGE, .arg = "FILE",
     .help = "judge prompt (default docs/prompts/judge_<aspect>.txt)"},
    {"cache", 0, CLI_OPT_STR, O(j.cache), .mask = EVAL_JUDGE, .arg = "FILE",
     .help = "JSONL cache of the judge's answers: re-runs are free, an\ninterrupted run resumes"},
    {"results", 0, CLI_OPT_CUSTOM, O(results), .mask = EVAL_REPORT, .parse = add_result, .arg = "DIR|FILE...",
     .help = "eval math/judge/winrate --json outputs and pipeline traces\n(salign align --trace); the files after "
             "it count too"},
    {"out", 0, CLI_OPT_STR, O(j.out), .mask = EVAL_JUDGE | EVAL_REPORT, .arg = "FILE",
     .help = "judge: one JSONL line per pair: verdicts, outcome, the judge's\ntexts; report: the Markdown report "
             "(SVG plots next to it)"},
    {"title", 0, CLI_OPT_STR, O(rp.title), .mask = EVAL_REPORT, .arg = "TEXT", .help = "the report's heading"},
    {"max-round", 0, CLI_OPT_UINT, O(rp.max_round), .mask = EVAL_REPORT, .umax = 1000000, .arg = "N",
     .help = "rounds shown in the per-round plots (default: all)"},
    {"retries", 0, CLI_OPT_UINT, O(j.retries), .mask = EVAL_JUDGE, .umax = 100, .arg = "N",
     .help = "re-asks of an unparsable answer, sampled (default 2)"},
    {"max-tokens", 0, CLI_OPT_UINT, O(j.max_tokens), .mask = EVAL_JUDGE, .umin = 1, .umax = 1 << 20, .arg = "N",
     .help = "most tokens of a judge answer (default 512)"},
    {"judge-template", 0, CLI_OPT_STR, O(j.tmpl), .mask = EVAL_JUDGE, .arg = "NAME|MODEL",
     .help = "chat format (chatml, gemma, llama3) or a GGUF whose\ntemplate to use; for a server judge, or to "
             "override a model's"},
    {"judge-model", 0, CLI_OPT_STR, O(j.judge_model), .mask = EVAL_JUDGE, .arg = "NAME",
     .help = "the server's model (default: its only one)"},
    {"retry-temp", 0, CLI_OPT_FLOAT, O(j.retry_temp), .mask = EVAL_JUDGE, .lo = 0, .hi = 10, .open = CLI_LO_OPEN,
     .arg = "T", .help = "temperature of retries (default 0.7)"},
    {"threads", 0, CLI_OPT_UINT, O(j.n_threads), .mask = EVAL_JUDGE, .umax = 1024, .arg = "N",
     .help = "compute threads (default: all cores)"},
    {"ctx-size", 0, CLI_OPT_UINT, O(j.n_ctx), .mask = EVAL_JUDGE, .umax = 1 << 24, .arg = "N",
     .help = "context size in tokens"},
    {"label", 0, CLI_OPT_STR, O(j.label), .mask = EVAL_JUDGE, .arg = "TEXT", .help = "a label for the report"},
    {"quiet", 0, CLI_OPT_FLAG, O(j.quiet), .mask = EVAL_JUDGE, .help = "no progress lines"},
    {"boot", 0, CLI_OPT_UINT, O(j.n_boot), .mask = EVAL_WINRATE | EVAL_JUDGE, .umin = 2, .umax = 10000000,
     .arg = "N", .help = "bootstrap resamples of the 95% interval (default 1000)"},
    {"seed", 0, CLI_OPT_UINT, O(j.seed), .mask = EVAL_WINRATE | EVAL_JUDGE, .umax = UINT64_MAX, .arg = "S",
     .help = "bootstrap (and judge retry) seed (default 0)"},
    {"json", 0, CLI_OPT_FLAG, O(j.json), .mask = EVAL_MATH | EVAL_WINRATE | EVAL_JUDGE,
     .help = "print one JSON object instead of text"},
    CLI_HELP_ENTRY,
};
#undef O

#define EVAL_CMD(NAME, MASK, OPERANDS, USAGE)                                                                     \
    {.name = "eval " NAME, .opts = eval_opts, .n_opts = sizeof eval_opts / sizeof eval_opts[0], .mask = MASK,    \
     .operands = OPERANDS, .stop_at_operand = true, .usage = USAGE}
static const struct cli_cmd eval_cmds[] = {
    EVAL_CMD("math", EVAL_MATH, false,
             "Usage: salign eval math --data gsm8k|math (--answers FILE | --per-round TRACE) [OPTIONS]\n\n"
             "Accuracy with a 95% Wilson interval.\n\n"),
    EVAL_CMD("winrate", EVAL_WINRATE, false,
             "Usage: salign eval winrate --judgments FILE [--boot N] [--seed S]\n\n"
             "Win rate (W - L) / (W + L + E) x 100 of pairs judged in both orders, with a\n"
             "bootstrap 95% interval.\n\n"),
    EVAL_CMD("judge", EVAL_JUDGE, false,
             "Usage: salign eval judge --a FILE --b FILE --judge MODEL|URL --aspect helpful|harmless|math [OPTIONS]\n\n"
             "Pairwise verdicts of a judge model on two answer files (JSONL {\"id\" or \"question\",\n"
             "\"answer\"}, paired by id/question), each pair asked in both orders; win rate of A\n"
             "against B with a bootstrap 95% interval.\n\n"),
    EVAL_CMD("report", EVAL_REPORT, true,
             "Usage: salign eval report --results DIR|FILE... --out report.md [--title TEXT] [--max-round N]\n\n"
             "Markdown report with SVG plots (next to it) from eval math/judge/winrate --json\n"
             "outputs and pipeline traces (salign align --trace).\n\n"),
};
#undef EVAL_CMD
const struct cli_cmd *const cli_cmds_eval[] = {&eval_cmds[0], &eval_cmds[1], &eval_cmds[2], &eval_cmds[3],
                                               &cli_cmd_eval_aligner, NULL};

static void usage(FILE *f) {
    fprintf(f, "Usage: salign eval COMMAND [OPTIONS]\n\n"
               "Scores answers (docs/EVAL.md). Commands: math, winrate, judge, report, aligner.\n");
    for (size_t i = 0; cli_cmds_eval[i]; i++) {
        fputs("\n", f);
        cli_help(f, cli_cmds_eval[i]);
    }
}

/* `eval report`: the result files are those of --results and the operands (argv[argc - n_ops..]). */
static int eval_report(struct eval_opts *o, int argc, char **argv, int n_ops) {
    int rc = -1;
    const char **inputs = o->results.v;
    size_t n = o->results.n;
    const char *out = o->j.out;
    struct sa_report_params rp = o->rp;
    /* --results DIR|FILES: the files after the option (until the next option) count too */
    for (int i = argc - n_ops; rc < 0 && i < argc; i++) {
        if (argv[i][0] == '-') rc = cli_usage_error("eval", "report: put options before the result files ('%s')", argv[i]);
        else inputs[n++] = argv[i];
    }
    if (rc < 0 && !n) rc = cli_usage_error("eval", "report: missing --results DIR|FILES");
    if (rc < 0 && !out) rc = cli_usage_error("eval", "report: missing --out report.md");
    if (rc < 0) {
        struct sa_report_summary sum;
        if (sa_eval_report(inputs, n, out, &rp, &sum)) rc = cli_fail("eval report");
        else {
            printf("wrote %s: %zu accuracy results (%zu by round), %zu win rates, %zu traces, %zu plots", out,
                   sum.n_accuracy, sum.n_rounds, sum.n_winrate, sum.n_traces, sum.n_plots);
            if (sum.n_skipped) printf("; %zu files skipped (listed in the report)", sum.n_skipped);
            printf("\n");
            rc = CLI_OK;
        }
    }
    return rc;
}

int cmd_eval(int argc, char **argv) {
    int rc;
    const struct cli_cmd *sub = cli_subcommand("eval", cli_cmds_eval, argc, argv, usage, &rc);
    if (!sub) return rc;
    if (sub == &cli_cmd_eval_aligner) return cmd_eval_aligner(argc - 1, argv + 1);
    struct eval_opts o = {.j = {.max_tokens = 512, .retries = 2, .n_boot = 1000, .retry_temp = 0.7f},
                          .rp = sa_report_default_params()};
    o.results.v = calloc((size_t)argc + 1, sizeof *o.results.v);
    if (!o.results.v) return cli_fail("out of memory");
    int n_ops = 0;
    rc = cli_parse(sub, argc - 1, argv + 1, &o, &n_ops);
    if (rc) {
        if (rc == CLI_PARSE_HELP) rc = CLI_OK;
    } else if (sub->mask == EVAL_REPORT) rc = eval_report(&o, argc - 1, argv + 1, n_ops);
    else if (sub->mask == EVAL_JUDGE) {
        if (!o.j.a || !o.j.b) rc = cli_usage_error("eval", "judge: give both --a FILE and --b FILE");
        else if (!o.j.judge) rc = cli_usage_error("eval", "judge: missing --judge MODEL|URL");
        else if (!o.j.aspect) rc = cli_usage_error("eval", "judge: missing --aspect helpful|harmless|math");
        else rc = eval_judge(&o.j);
    } else if (sub->mask == EVAL_MATH) {
        if (!o.j.data) rc = cli_usage_error("eval", "math: missing --data gsm8k|math");
        else rc = eval_math(o.j.data, o.answers, o.j.gold, o.per_round, o.details, o.j.json);
    } else {
        if (!o.judgments) rc = cli_usage_error("eval", "winrate: missing --judgments FILE");
        else rc = eval_winrate(o.judgments, o.j.n_boot, o.j.seed, o.j.json);
    }
    free(o.results.v);
    return rc;
}
