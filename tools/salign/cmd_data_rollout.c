/* cmd_data_rollout.c: `salign data rollout`: correction records from an upstream's own
 * answers, labelled by sampled completions (sa/rollout.h, docs/DATA_ROLLOUT.md). Reads GSM8K
 * problems, appends sentence records to --out (and whole-answer records to --answers-out) and
 * one status line per question to OUT.done, so that a run resumes where it stopped (a
 * question is done when its status line is; records of an unfinished one are dropped first).
 * --parallel P: P threads, each with its own pipeline, decoding through one scheduler. */
#define _GNU_SOURCE
#include "cli.h"
#include "cli_resume.h"
#include "cli_workers.h"
#include "generate.h"
#include "sa/rollout.h"
#include "sa/sa.h"

#include <cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct rollout_opts {
    const char *upstream, *up_tmpl, *up_model, *input, *out, *answers_out, *drafts;
    int32_t n_rollouts, n_alternatives, max_tokens, max_length, n_ctx, n_verify;
    float temp, top_p;
    double min_value;
    uint64_t seed;
    int parallel, n_threads;
    size_t limit;
    bool no_copy, batch_invariant;
    int locate; /* enum sa_rollout_locate */
};

static const char *const locate_names[] = {"value", "gold-path", NULL}; /* enum sa_rollout_locate */

#define O(f) CLI_AT(struct rollout_opts, f)
static const struct cli_opt rollout_opts[] = {
    {"upstream", 0, CLI_OPT_STR, O(upstream), .arg = "M|URL", .help = "the upstream: a model (path or cached name) or a server"},
    {"upstream-template", 0, CLI_OPT_STR, O(up_tmpl), .arg = "T",
     .help = "chat format of a server upstream (chatml, gemma, llama3)"},
    {"upstream-model", 0, CLI_OPT_STR, O(up_model), .arg = "NAME", .help = "a server upstream's model (default: its only one)"},
    {"input", 0, CLI_OPT_STR, O(input), .arg = "FILE",
     .help = "GSM8K problems: JSONL {\"question\", \"answer\" (solution with\n'#### N'), optional \"id\"}; never "
             "test questions"},
    {"out", 0, CLI_OPT_STR, O(out), .arg = "FILE", .help = "sentence records (appended; status lines in FILE.done)"},
    {"answers-out", 0, CLI_OPT_STR, O(answers_out), .arg = "FILE",
     .help = "whole-answer records for the Aligner baseline (appended)"},
    {"drafts", 0, CLI_OPT_STR, O(drafts), .arg = "TRACE",
     .help = "the greedy drafts: a trace of `salign align --mode upstream\n--trace` over the same input (else made here)"},
    {"locate", 0, CLI_OPT_ENUM, O(locate), .names = locate_names, .arg = "value|gold-path", .section = "Labelling",
     .help = "how the first wrong sentence is found (default value):\nvalue: binary search over prefix values; "
             "gold-path: the\nfirst sentence with an equation whose value is not in the\nreference solution "
             "(<<expr=v>>, #### N) nor the question, or\nthat writes a false result; only alternatives with\n"
             "equations all on that path qualify"},
    {"rollouts", 'N', CLI_OPT_INT, O(n_rollouts), .imin = 0, .imax = 1024, .arg = "N",
     .help = "completions per valued prefix (default 4; 0 only with\n--locate gold-path: the first qualifying "
             "alternative is\nkept unvalued)"},
    {"alternatives", 'K', CLI_OPT_INT, O(n_alternatives), .imin = 1, .imax = 1024, .arg = "K",
     .help = "sentences sampled in place of the first wrong one (default 4)"},
    {"temp", 0, CLI_OPT_FLOAT, O(temp), .lo = 0, .hi = 10, .open = CLI_LO_OPEN, .arg = "T",
     .help = "temperature of the samples (default 0.7; the draft is greedy)"},
    {"top-p", 0, CLI_OPT_FLOAT, O(top_p), .lo = 0, .hi = 1, .open = CLI_LO_OPEN, .arg = "P",
     .help = "nucleus mass of the samples (default 1)"},
    {"min-value", 0, CLI_OPT_FLOAT, O(min_value), .lo = 0, .hi = 1, .arg = "V",
     .help = "an alternative is kept only with a value >= V (default 0.5)"},
    {"max-tokens", 0, CLI_OPT_INT, O(max_tokens), .imin = 1, .imax = INT32_MAX, .arg = "N",
     .help = "most tokens of one completion (default 384)"},
    {"max-length", 0, CLI_OPT_INT, O(max_length), .imin = 1, .imax = INT32_MAX, .arg = "N",
     .help = "most tokens of an answer, draft included (default 1024)"},
    {"seed", 0, CLI_OPT_UINT, O(seed), .umax = UINT64_MAX, .arg = "S",
     .help = "seed (default 0): sample i of prefix k of question ID\nis seeded by (S, ID, k, i)"},
    {"verify", 0, CLI_OPT_INT, O(n_verify), .imin = 0, .imax = 1024, .arg = "M",
     .help = "check each fix with M fresh completions through the wrong\nsentence and through the correction "
             "(default 0: off)"},
    {"no-copy", 0, CLI_OPT_FLAG, O(no_copy), .help = "no copy records (only corrections)"},
    {"limit", 0, CLI_OPT_UINT, O(limit), .umin = 1, .umax = SIZE_MAX, .arg = "N",
     .help = "only the first N questions of the input"},
    {"parallel", 0, CLI_OPT_INT, O(parallel), .imin = 1, .imax = 64, .arg = "P",
     .help = "questions labelled at once, batched (default 1)", .section = "Compute"},
    {"threads", 't', CLI_OPT_INT, O(n_threads), .imin = 0, .imax = 1024, .arg = "T",
     .help = "compute threads (default: all cores)"},
    {"ctx", 'c', CLI_OPT_INT, O(n_ctx), .imin = 0, .imax = INT32_MAX, .arg = "N",
     .help = "context size (default min(4096, trained))"},
    {"batch-invariant", 0, CLI_OPT_FLAG, O(batch_invariant),
     .help = "batch-invariant kernels: the same bits whatever --parallel"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_data_rollout = {
    .name = "data rollout",
    .opts = rollout_opts,
    .n_opts = sizeof rollout_opts / sizeof rollout_opts[0],
    .usage = "Usage: salign data rollout --upstream M --input FILE --out FILE [OPTIONS]\n\n"
             "Labels the upstream's own greedy answers by what happens after each sentence, with\n"
             "no annotator (Math-Shepherd, OmegaPRM): a prefix's value is the share of N sampled\n"
             "completions reaching the gold answer; the first wrong sentence of a wrong answer is\n"
             "found by binary search (or, --locate gold-path, as the first sentence whose\n"
             "equations leave the reference solution's values: no rollout); its correction is\n"
             "the best of K sentences the upstream samples in its place (value >= --min-value).\n"
             "FILE.done gets one status line per question (outcome: correct, fixed,\n"
             "no_alternative, too_hard, empty, on_path, error). Sentence records {question, prefix,\n"
             "last, correction, ...} go to --out (read by `salign train --data`), whole-answer\n"
             "records to --answers-out. Append-only and resumable: run the same command again.\n"
             "docs/DATA_ROLLOUT.md has the cost per question.\n\n",
};

/* ---- drafts from a trace ---- */

struct draft_piece {
    char *id; /* the trace's id as text */
    int32_t round;
    char *text, *y1;
};
struct drafts {
    struct draft_piece *p;
    size_t n, cap;
};

static enum sa_status draft_line(void *user, const struct sa_trace_round *r, const char *where) {
    struct drafts *d = user;
    const uint32_t need = SA_TRACE_ID | SA_TRACE_ROUND | SA_TRACE_TEXT | SA_TRACE_Y1;
    if ((r->has & need) != need)
        return sa_error(SA_STATUS_BAD_JSON, "%s: a draft line needs id, round, text and y1 (a trace of `salign "
                                            "align --mode upstream --trace`)", where);
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        struct draft_piece *p = realloc(d->p, cap * sizeof *p);
        if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        d->p = p;
        d->cap = cap;
    }
    struct draft_piece *p = &d->p[d->n];
    p->id = strdup(r->id);
    p->round = r->round;
    p->text = strdup(r->text);
    p->y1 = strdup(r->y1);
    d->n++;
    if (!p->id || !p->text || !p->y1) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    return SA_STATUS_OK;
}

static void drafts_free(struct drafts *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->p[i].id);
        free(d->p[i].text);
        free(d->p[i].y1);
    }
    free(d->p);
}

/* The id as the trace writes it as text: a string's value, an integer in decimal. */
static char *id_text(const cJSON *id) {
    if (cJSON_IsString(id)) return strdup(id->valuestring);
    return cJSON_PrintUnformatted(id);
}

/* ---- the jobs ---- */

struct job {
    size_t lineno;
    cJSON *j;
    const char *question;
    const char *solution; /* the "answer": the full reference solution (into j) */
    char *id;     /* JSON text */
    char *gold;
    char *reason; /* why it cannot be labelled (its status line), or NULL */
    const char **text, **orig; /* --drafts: the pieces (into struct drafts) */
    size_t n_draft;
};

struct totals {
    size_t n_done, n_correct, n_first_error, n_fixed, n_no_alt, n_too_hard, n_empty, n_on_path, n_errors;
    size_t n_copy, n_fix, n_answer;
    size_t n_verified, n_holds, n_changes; /* --verify: fixes checked, wrong sentence's fresh value 0,
                                             correction's fresh value above it */
    int64_t n_generations, n_tokens;
};

struct run {
    const struct rollout_opts *o;
    const struct sa_pipeline_params *pp;
    struct sa_rollout_params rp;
    struct job *jobs;
    size_t n_jobs, n_before;
    pthread_mutex_t mu;
    FILE *out, *answers, *done;
    struct totals t; /* under mu */
    double t0;
    int rc;          /* under mu: the first fatal failure stops the others */
};

static bool run_stopped(struct run *r) {
    pthread_mutex_lock(&r->mu);
    bool stop = r->rc != 0;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* The status line of a question (its "done" mark). */
static char *status_line(const struct job *jb, const struct sa_rollout_result *res, const char *error) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "id", cJSON_Parse(jb->id));
    cJSON_AddStringToObject(j, "outcome", error ? "error" : sa_rollout_outcome_name(res->outcome));
    if (error) {
        cJSON_AddStringToObject(j, "error", error);
    } else {
        cJSON_AddNumberToObject(j, "sentences", res->n_sentences);
        cJSON_AddNumberToObject(j, "first_error", res->first_error);
        if (res->value0 >= 0) cJSON_AddNumberToObject(j, "value0", res->value0);
        if (res->best_alt_value >= 0) cJSON_AddNumberToObject(j, "best_alt_value", res->best_alt_value);
        cJSON_AddNumberToObject(j, "alternatives", res->n_alternatives);
        if (res->verify_after >= 0) cJSON_AddNumberToObject(j, "verify_after", res->verify_after);
        if (res->verify_alt >= 0) cJSON_AddNumberToObject(j, "verify_alt", res->verify_alt);
        cJSON_AddNumberToObject(j, "records", (double)res->n_records);
    }
    cJSON_AddNumberToObject(j, "generations", res ? res->n_generations : 0);
    cJSON_AddNumberToObject(j, "tokens", res ? (double)res->n_tokens : 0);
    cJSON_AddNumberToObject(j, "seconds", res ? res->seconds : 0);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *line = NULL;
    if (s && asprintf(&line, "%s\n", s) < 0) line = NULL;
    free(s);
    return line;
}

static void label_job(struct run *r, struct sa_pipeline *pl, const struct job *jb) {
    const struct rollout_opts *o = r->o;
    struct sa_rollout_result res = {0};
    char *why = NULL;
    int fatal = 0;
    enum sa_status s = SA_STATUS_OK;
    if (!jb->reason) {
        struct sa_rollout_draft d = {jb->text, jb->orig, jb->n_draft};
        struct sa_rollout_params rp = r->rp;
        rp.gold_solution = jb->solution;
        s = sa_rollout_label(pl, jb->id, jb->question, jb->gold, jb->text ? &d : NULL, &rp, &res);
        if (s == SA_STATUS_CANCELLED || (s && cli_interrupted(NULL))) fatal = 130;
        else if (s == SA_STATUS_BAD_ARGUMENT && !(why = strdup(sa_last_error()))) fatal = cli_fail("out of memory");
        else if (s && s != SA_STATUS_BAD_ARGUMENT) {
            fprintf(stderr, "salign: data rollout: %s:%zu (id %s): %s\n", o->input, jb->lineno + 1, jb->id,
                    sa_last_error());
            fatal = CLI_FAIL;
        }
    }
    const char *reason = jb->reason ? jb->reason : why;
    /* the lines, made before taking the lock */
    struct {
        char *rec, *ans;
    } lines = {calloc(1, 1), calloc(1, 1)};
    size_t n_copy = 0, n_fix = 0, n_ans = 0;
    for (size_t i = 0; !fatal && !reason && i < res.n_records && lines.rec && lines.ans; i++) {
        const struct sa_rollout_record *rec = &res.records[i];
        char *l = NULL;
        if (sa_rollout_record_json(jb->id, jb->question, rec, &l)) {
            fatal = cli_fail("data rollout");
            break;
        }
        char **dst = rec->whole ? &lines.ans : &lines.rec;
        char *cat = NULL;
        if (asprintf(&cat, "%s%s", *dst, l) < 0) cat = NULL;
        free(l);
        if (!cat) {
            fatal = cli_fail("out of memory");
            break;
        }
        free(*dst);
        *dst = cat;
        if (rec->whole) n_ans++;
        else if (rec->kind == SA_ROLLOUT_FIX) n_fix++;
        else n_copy++;
    }
    char *st = fatal ? NULL : status_line(jb, reason ? NULL : &res, reason);
    if (!fatal && (!st || !lines.rec || !lines.ans)) fatal = cli_fail("out of memory");
    pthread_mutex_lock(&r->mu);
    if (fatal == 130 && !r->rc)
        fprintf(stderr, "salign data: interrupted; %zu question(s) done in %s (run again to resume)\n",
                r->t.n_done, o->out);
    if (!fatal && (!cli_append("data", r->out, lines.rec, o->out) ||
                   (r->answers && !cli_append("data", r->answers, lines.ans, o->answers_out)) ||
                   !cli_append("data", r->done, st, "the .done file")))
        fatal = CLI_FAIL;
    if (!fatal) {
        struct totals *t = &r->t;
        t->n_done++;
        t->n_generations += res.n_generations;
        t->n_tokens += res.n_tokens;
        t->n_copy += n_copy;
        t->n_fix += n_fix;
        t->n_answer += n_ans;
        if (reason) t->n_errors++;
        else {
            t->n_correct += res.outcome == SA_ROLLOUT_CORRECT;
            t->n_first_error += res.first_error > 0;
            t->n_fixed += res.outcome == SA_ROLLOUT_FIXED;
            t->n_no_alt += res.outcome == SA_ROLLOUT_NO_ALTERNATIVE;
            t->n_too_hard += res.outcome == SA_ROLLOUT_TOO_HARD;
            t->n_empty += res.outcome == SA_ROLLOUT_EMPTY;
            t->n_on_path += res.outcome == SA_ROLLOUT_ON_PATH;
            if (res.verify_after >= 0 && res.verify_alt >= 0) {
                t->n_verified++;
                t->n_holds += res.verify_after == 0;
                t->n_changes += res.verify_alt > res.verify_after;
            }
        }
        double el = now_s() - r->t0;
        double eta = el / (double)t->n_done * (double)(r->n_jobs - t->n_done);
        if (reason)
            fprintf(stderr, "[%zu/%zu] id %s: error: %s\n", r->n_before + t->n_done, r->n_before + r->n_jobs, jb->id,
                    reason);
        else
            fprintf(stderr,
                    "[%zu/%zu] id %s: %s (%d sentences, first error %d), %zu records, %d generations, %lld tokens, "
                    "%.1f s; total %lld generations, %.0f s, ETA %.0f s\n",
                    r->n_before + t->n_done, r->n_before + r->n_jobs, jb->id, sa_rollout_outcome_name(res.outcome),
                    res.n_sentences, res.first_error, res.n_records, res.n_generations, (long long)res.n_tokens,
                    res.seconds, (long long)t->n_generations, el, eta);
    }
    if (fatal && !r->rc) r->rc = fatal;
    pthread_mutex_unlock(&r->mu);
    free(st);
    free(lines.rec);
    free(lines.ans);
    free(why);
    sa_rollout_result_free(&res);
}

static void run_job(void *user, struct sa_pipeline *pl, size_t i) {
    struct run *r = user;
    label_job(r, pl, &r->jobs[i]);
}

static bool jobs_stopped(void *user) {
    return run_stopped(user);
}

static int run_jobs(struct run *r) {
    const struct cli_workers w = {.n_jobs = r->n_jobs, .run = run_job, .stopped = jobs_stopped, .user = r};
    int rc = cli_run_workers("data rollout", r->pp, r->o->parallel, &w);
    return rc ? rc : r->rc;
}

/* Reads the input into jobs (skipping questions already done). */
static int read_jobs(const struct rollout_opts *o, char *text, const struct cli_keyset *done, const struct drafts *dr,
                     struct job **jobs_out, size_t *n_jobs, size_t *n_before) {
    size_t cap = 1;
    for (const char *p = text; *p; p++) cap += *p == '\n';
    struct job *jobs = calloc(cap, sizeof *jobs);
    if (!jobs) return cli_fail("out of memory");
    *jobs_out = jobs;
    size_t lineno = 0, n_q = 0;
    for (char *line = text; line && *line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *cur = line;
        line = nl ? nl + 1 : NULL;
        if (strspn(cur, " \t\r") == strlen(cur)) continue;
        if (o->limit && n_q >= o->limit) break;
        n_q++;
        struct job jb = {.lineno = lineno};
        jb.j = cJSON_Parse(cur);
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(jb.j, "question");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(jb.j, "answer");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(jb.j, "id");
        cJSON *own = id ? NULL : cJSON_CreateNumber((double)lineno);
        jb.id = cJSON_PrintUnformatted(id ? id : own);
        char *idt = id_text(id ? id : own);
        cJSON_Delete(own);
        if (!jb.id || !idt) {
            free(idt);
            cJSON_Delete(jb.j);
            free(jb.id);
            return cli_fail("out of memory");
        }
        if (cli_keyset_has(done, jb.id)) {
            (*n_before)++;
            free(idt);
            cJSON_Delete(jb.j);
            free(jb.id);
            continue;
        }
        const char *reason = NULL;
        if (!cJSON_IsObject(jb.j)) reason = "not a JSON object";
        else if (!cJSON_IsString(q) || !q->valuestring[0]) reason = "no \"question\" string";
        else if (!cJSON_IsString(a)) reason = "no \"answer\" string (the GSM8K solution, with '#### N')";
        else if (sa_math_gsm8k_gold(a->valuestring, &jb.gold)) reason = "the answer has no '#### N' gold answer";
        if (!reason) {
            jb.question = q->valuestring;
            jb.solution = a->valuestring;
        }
        if (!reason && dr) {
            size_t n = 0;
            for (size_t i = 0; i < dr->n; i++) n += !strcmp(dr->p[i].id, idt);
            jb.text = calloc(n + 1, sizeof *jb.text);
            jb.orig = calloc(n + 1, sizeof *jb.orig);
            if (!jb.text || !jb.orig) return cli_fail("out of memory");
            int32_t last = -1;
            for (size_t i = 0, k = 0; i < dr->n; i++) /* a trace has each question's rounds in order */
                if (!strcmp(dr->p[i].id, idt)) {
                    if (dr->p[i].round <= last) reason = "its rounds in the --drafts trace are not in order";
                    last = dr->p[i].round;
                    jb.text[k] = dr->p[i].text;
                    jb.orig[k++] = dr->p[i].y1;
                }
            jb.n_draft = n;
            if (!n) reason = "no draft for this id in the --drafts trace";
        }
        if (reason && !(jb.reason = strdup(reason))) return cli_fail("out of memory");
        free(idt);
        jobs[(*n_jobs)++] = jb;
    }
    return CLI_OK;
}

static bool is_url(const char *s) {
    return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

int cmd_data_rollout(int argc, char **argv) {
    struct rollout_opts o = {.n_rollouts = 4, .n_alternatives = 4, .temp = 0.7f, .top_p = 1.0f, .min_value = 0.5,
                             .max_tokens = 384, .parallel = 1};
    int prc = cli_parse(&cli_cmd_data_rollout, argc, argv, &o, NULL);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    if (!o.upstream) return cli_usage_error("data rollout", "missing --upstream MODEL|URL");
    if (!o.input) return cli_usage_error("data rollout", "missing --input FILE");
    if (!o.out || !strcmp(o.out, "-")) return cli_usage_error("data rollout", "missing --out FILE (a file: it is appended to)");
    if (o.n_rollouts == 0 && o.locate != SA_ROLLOUT_LOCATE_GOLD_PATH)
        return cli_usage_error("data rollout", "--rollouts 0 needs --locate gold-path");
    char *done_path = NULL;
    if (asprintf(&done_path, "%s.done", o.out) < 0) return cli_fail("out of memory");

    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.mode = SA_PIPELINE_UPSTREAM;
    pp.n_threads = o.n_threads;
    pp.n_ctx = o.n_ctx;
    pp.batch_invariant = o.batch_invariant;
    if (o.max_length) pp.max_length = o.max_length;
    struct sa_model *model = NULL;
    struct sa_upstream *remote = NULL;
    char *text = NULL;
    size_t len = 0;
    struct cli_keyset done = {0};
    struct drafts dr = {0};
    struct job *jobs = NULL;
    size_t n_jobs = 0, n_before = 0;
    FILE *out = NULL, *answers = NULL, *donef = NULL;
    int rc = CLI_OK;
    if (cli_read_file(o.input, &text, &len)) rc = cli_fail(NULL);
    /* resume: the questions with a status line are done; records of others are dropped */
    if (!rc) rc = cli_resume_tidy("data", done_path, "id", NULL, &done);
    if (!rc) rc = cli_resume_tidy("data", o.out, "id", &done, NULL);
    if (!rc) rc = cli_resume_tidy("data", o.answers_out, "id", &done, NULL);
    if (!rc && o.drafts) {
        char *tt = NULL;
        size_t tl = 0;
        if (cli_read_file(o.drafts, &tt, &tl) || sa_trace_read(tt, tl, o.drafts, draft_line, &dr, NULL))
            rc = cli_fail(NULL);
        free(tt);
    }
    if (!rc) rc = read_jobs(&o, text, &done, o.drafts ? &dr : NULL, &jobs, &n_jobs, &n_before);
    if (!rc && is_url(o.upstream)) {
        enum sa_chat_format f = SA_CHAT_FORMAT_UNKNOWN;
        if (!o.up_tmpl || sa_chat_format_from_name(o.up_tmpl, &f) != SA_STATUS_OK) {
            rc = cli_usage_error("data rollout", "a server upstream needs --upstream-template chatml|gemma|llama3");
        } else {
            struct sa_upstream_remote_params rp = sa_upstream_remote_default_params();
            rp.base_url = o.upstream;
            rp.model = o.up_model;
            rp.abort_cb = cli_interrupted;
            if (sa_upstream_remote_init(&rp, &remote)) rc = cli_fail("upstream");
            pp.upstream = remote;
            pp.upstream_format = f;
            if (o.parallel > 1) rc = cli_usage_error("data rollout", "--parallel needs a local upstream");
        }
    } else if (!rc && n_jobs) {
        rc = gen_load_model(o.upstream, o.n_threads, &model);
        pp.upstream_model = model;
        if (!rc && o.up_tmpl && sa_chat_format_from_name(o.up_tmpl, &pp.upstream_format) != SA_STATUS_OK)
            rc = cli_usage_error("data rollout", "--upstream-template '%s' is not chatml, gemma or llama3", o.up_tmpl);
    }
    const char *bad = NULL;
    if (!rc && !(out = fopen(o.out, "a"))) bad = o.out;
    else if (!rc && o.answers_out && !(answers = fopen(o.answers_out, "a"))) bad = o.answers_out;
    else if (!rc && !(donef = fopen(done_path, "a"))) bad = done_path;
    if (bad) {
        fprintf(stderr, "salign data: cannot open %s: %s\n", bad, strerror(errno));
        rc = CLI_FAIL;
    }
    struct run r = {.o = &o, .pp = &pp, .jobs = jobs, .n_jobs = n_jobs, .n_before = n_before, .out = out,
                    .answers = answers, .done = donef};
    if (!rc) {
        r.rp = sa_rollout_default_params();
        r.rp.n_rollouts = o.n_rollouts;
        r.rp.n_alternatives = o.n_alternatives;
        r.rp.temperature = o.temp;
        r.rp.top_p = o.top_p;
        r.rp.max_tokens = o.max_tokens;
        r.rp.min_alt_value = o.min_value;
        r.rp.seed = o.seed;
        r.rp.copy_records = !o.no_copy;
        r.rp.n_verify = o.n_verify;
        r.rp.locate = (enum sa_rollout_locate)o.locate;
        r.rp.answer_records = o.answers_out != NULL;
        r.rp.cancel = cli_interrupted;
        if (n_before) fprintf(stderr, "salign data: %zu question(s) already done in %s\n", n_before, done_path);
        pthread_mutex_init(&r.mu, NULL);
        r.t0 = now_s();
        cli_sigint_catch();
        rc = n_jobs ? run_jobs(&r) : CLI_OK;
        cli_sigint_restore();
        pthread_mutex_destroy(&r.mu);
        const struct totals *t = &r.t;
        fprintf(stderr,
                "salign data: %zu questions labelled (%zu done before): %zu correct drafts, %zu first errors found, "
                "%zu corrections kept, %zu without a good alternative, %zu too hard, %zu empty, %zu on the gold path, "
                "%zu errors; records: "
                "%zu copy, %zu fix, %zu whole-answer; %lld generations, %lld tokens, %.1f s\n",
                t->n_done, n_before, t->n_correct, t->n_first_error, t->n_fixed, t->n_no_alt, t->n_too_hard,
                t->n_empty, t->n_on_path, t->n_errors, t->n_copy, t->n_fix, t->n_answer, (long long)t->n_generations,
                (long long)t->n_tokens, now_s() - r.t0);
        if (o.n_verify)
            fprintf(stderr,
                    "salign data: label check (%d fresh completions): of %zu fixes, %zu keep value 0 through the "
                    "wrong sentence, %zu have a higher value through the correction\n",
                    o.n_verify, t->n_verified, t->n_holds, t->n_changes);
    }
    if (out) fclose(out);
    if (answers) fclose(answers);
    if (donef) fclose(donef);
    for (size_t i = 0; i < n_jobs; i++) {
        cJSON_Delete(jobs[i].j);
        free(jobs[i].id);
        free(jobs[i].gold);
        free(jobs[i].reason);
        free(jobs[i].text);
        free(jobs[i].orig);
    }
    free(jobs);
    drafts_free(&dr);
    cli_keyset_free(&done);
    sa_upstream_free(remote);
    sa_model_free(model);
    free(text);
    free(done_path);
    return rc;
}
