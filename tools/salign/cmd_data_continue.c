/* cmd_data_continue.c: `salign data continue`: teacher-forced continuations (issue 13). For
 * each correction record {question, prefix, last, correction}, the corrected sentence takes
 * the wrong one's place and the upstream goes on greedily from the corrected prefix, one
 * sentence at a time with the pipeline's exact conventions (sa_pipeline_sample), to the end
 * of its answer. The states after a correction, which drafts made without an aligner never
 * show, can then be labelled (bench/gold_step_records.py --continuations): their next error
 * gets its own correction record.
 *
 * Output: one answer line per continued record (--out, append-only: a record is done when its
 * line is), and the rounds as a trace in `salign align --trace`'s format (--trace): the given
 * prefix and the correction are marked "forced": true, the upstream's sentences follow. A run
 * resumes where it stopped: run the same command again. */
#define _GNU_SOURCE
#include "cli.h"
#include "cli_resume.h"
#include "cli_workers.h"
#include "generate.h"
#include "sa/records.h"
#include "sa/sa.h"

#include <cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct continue_opts {
    const char *upstream, *up_tmpl, *input, *out, *trace;
    size_t limit;
    int parallel;
    bool all;
    struct sa_pipeline_params pp; /* max_length, batch_invariant, n_threads, kv_type, n_ctx */
};

#define O(f) CLI_AT(struct continue_opts, f)
static const struct cli_opt continue_opts[] = {
    {"upstream", 0, CLI_OPT_STR, O(upstream), .arg = "M", .help = "the upstream: a model (path or cached name)"},
    {"upstream-template", 0, CLI_OPT_STR, O(up_tmpl), .arg = "T",
     .help = "the upstream's chat format (chatml, gemma, llama3; default:\nthe model's template)"},
    {"input", 0, CLI_OPT_STR, O(input), .arg = "FILE",
     .help = "sentence records {question, prefix, last, correction} (JSONL\nor a JSON array)"},
    {"out", 0, CLI_OPT_STR, O(out), .arg = "FILE",
     .help = "one answer a continued record (appended): {record,\nquestion, answer, ...}; record: its 0-based "
             "index in\n--input"},
    {"trace", 0, CLI_OPT_STR, O(trace), .arg = "FILE",
     .help = "the rounds, as `salign align --trace` writes them (appended);\nthe prefix and the correction are "
             "\"forced\": true"},
    {"all", 0, CLI_OPT_FLAG, O(all),
     .help = "continue every record (default: only those whose correction\ndiffers from its last sentence)"},
    {"limit", 0, CLI_OPT_UINT, O(limit), .umin = 1, .umax = SIZE_MAX, .arg = "N",
     .help = "only the first N records to continue"},
    {"max-length", 0, CLI_OPT_INT, O(pp.max_length), .imin = 1, .imax = 1 << 24, .arg = "N",
     .help = "most tokens of an answer, prefix included (default 1024)"},
    {"parallel", 0, CLI_OPT_INT, O(parallel), .imin = 1, .imax = 64, .arg = "P", .section = "Compute",
     .help = "records continued at once, batched (default 1)"},
    {"batch-invariant", 0, CLI_OPT_FLAG, O(pp.batch_invariant),
     .help = "batch-invariant kernels (the bits of `salign align\n--batch-invariant`)"},
    CLI_LOCAL_MODEL_ENTRIES(struct continue_opts),
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_data_continue = {
    .name = "data continue",
    .opts = continue_opts,
    .n_opts = sizeof continue_opts / sizeof continue_opts[0],
    .usage = "Usage: salign data continue --upstream M --input RECORDS --out FILE [--trace FILE] [OPTIONS]\n\n"
             "Teacher-forced continuations: for each correction record, the correction takes the\n"
             "place of its last sentence (after the separator the upstream writes there) and the\n"
             "upstream continues greedily from the corrected prefix, one sentence at a time, as\n"
             "the pipeline does after a kept revision, to the end of its answer.\n"
             "--out gets {record, question, answer, rounds, tokens, done, cut, same_last}, which\n"
             "`salign eval math` grades by question (no \"id\" is written); --trace gets the\n"
             "rounds, which bench/gold_step_records.py --continuations labels for the next error.\n"
             "same_last: the upstream's own greedy sentence after the prefix is the record's last\n"
             "sentence (the record is this upstream's). Append-only and resumable: run the same\n"
             "command again. --parallel P: P records at a time through one batched scheduler\n"
             "(with --batch-invariant the same lines, in another order). A local upstream only.\n\n",
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A growing string. */
struct str {
    char *s;
    size_t n;
};
static int str_cat(struct str *b, const char *t) {
    size_t m = strlen(t);
    char *p = realloc(b->s, b->n + m + 1);
    if (!p) return -1;
    memcpy(p + b->n, t, m + 1);
    b->s = p;
    b->n += m;
    return 0;
}

/* t without its outer whitespace (malloc'd). */
static char *trimmed(const char *t) {
    const char *ws = " \t\r\n\f\v";
    t += strspn(t, ws);
    size_t n = strlen(t);
    while (n && strchr(ws, t[n - 1])) n--;
    return strndup(t, n);
}

/* Appends one trace line to *lines. */
static int trace_line(struct str *lines, size_t id, const char *question, int round, const char *answer_so_far,
                      const char *y1, const char *y2, const char *text, bool forced, bool eos, int32_t n_tokens,
                      int32_t n_prefill) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "record", (double)id);
    cJSON_AddStringToObject(j, "question", question);
    cJSON_AddNumberToObject(j, "round", round);
    cJSON_AddStringToObject(j, "answer_so_far", answer_so_far);
    cJSON_AddStringToObject(j, "y1", y1);
    cJSON_AddStringToObject(j, "y2", y2);
    cJSON_AddStringToObject(j, "text", text);
    cJSON_AddBoolToObject(j, "forced", forced);
    cJSON_AddBoolToObject(j, "eos", eos);
    cJSON_AddNumberToObject(j, "upstream_tokens", n_tokens);
    cJSON_AddNumberToObject(j, "upstream_prefill", n_prefill);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int rc = !s || str_cat(lines, s) || str_cat(lines, "\n") ? -1 : 0;
    free(s);
    return rc;
}

struct continuation {
    struct str answer, trace;
    int rounds;        /* the upstream's sentences after the correction */
    int64_t n_tokens;
    bool done, cut, same_last;
};

static void continuation_free(struct continuation *c) {
    free(c->answer.s);
    free(c->trace.s);
}

/* One record's continuation into *c. Returns SA_STATUS_OK or the pipeline's error. */
static enum sa_status continue_one(struct sa_pipeline *pl, size_t id, const struct sa_record *rec,
                                   struct continuation *c) {
    struct sa_pipeline_sample_params sp = sa_pipeline_sample_default_params();
    sp.whole = false;
    sp.temperature = 0;
    sp.cancel = cli_interrupted;
    struct sa_pipeline_sample_result r = {0};
    /* the separator the upstream writes after the prefix, and its own sentence there */
    enum sa_status s = sa_pipeline_sample(pl, rec->question, rec->prefix, &sp, &r);
    if (s) return s;
    c->n_tokens += r.n_tokens;
    char *last = trimmed(rec->last), *corr = trimmed(rec->correction);
    size_t lead = r.text ? strspn(r.text, " \t\r\n\f\v") : 0;
    char *sep = r.text && r.text[lead] ? strndup(r.text, lead) : strdup(rec->prefix[0] ? " " : "");
    c->same_last = r.sentence && last && !strcmp(r.sentence, last);
    sa_pipeline_sample_result_free(&r);
    int round = 0;
    bool oom = !last || !corr || !sep || str_cat(&c->answer, rec->prefix);
    if (!oom && rec->prefix[0])
        oom = trace_line(&c->trace, id, rec->question, ++round, c->answer.s, rec->prefix, rec->prefix, rec->prefix,
                         true, false, 0, 0);
    char *piece = NULL;
    if (!oom && asprintf(&piece, "%s%s", sep, corr) < 0) piece = NULL; /* its content is undefined then */
    if (!oom) oom = !piece || str_cat(&c->answer, piece);
    if (!oom)
        oom = trace_line(&c->trace, id, rec->question, ++round, c->answer.s, last, corr, piece, true, false, 0, 0);
    free(piece);
    free(last);
    free(corr);
    free(sep);
    while (!oom && !s) {
        s = sa_pipeline_sample(pl, rec->question, c->answer.s, &sp, &r);
        if (s) break;
        c->n_tokens += r.n_tokens;
        c->done = r.done;
        c->cut = r.cut;
        if (r.text[0]) {
            c->rounds++;
            oom = str_cat(&c->answer, r.text) ||
                  trace_line(&c->trace, id, rec->question, ++round, c->answer.s, r.sentence, r.sentence, r.text,
                             false, r.done, r.n_tokens, r.n_prefill);
        } else {
            c->done = !r.cut; /* the upstream wrote nothing more */
        }
        bool end = !r.text[0] || r.done || r.cut;
        sa_pipeline_sample_result_free(&r);
        if (end) break;
    }
    if (oom && !s) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    return s;
}

static char *answer_line(size_t id, const struct sa_record *rec, const struct continuation *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "record", (double)id);
    cJSON_AddStringToObject(j, "question", rec->question);
    cJSON_AddStringToObject(j, "answer", c->answer.s);
    if (rec->source) cJSON_AddStringToObject(j, "source", rec->source);
    cJSON_AddNumberToObject(j, "rounds", c->rounds);
    cJSON_AddNumberToObject(j, "tokens", (double)c->n_tokens);
    cJSON_AddBoolToObject(j, "done", c->done);
    cJSON_AddBoolToObject(j, "cut", c->cut);
    cJSON_AddBoolToObject(j, "same_last", c->same_last);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *line = NULL;
    if (s && asprintf(&line, "%s\n", s) < 0) line = NULL;
    free(s);
    return line;
}

static bool wanted(const struct continue_opts *o, const struct sa_record *rec) {
    if (o->all) return true;
    char *a = trimmed(rec->last), *b = trimmed(rec->correction);
    bool differ = !a || !b || strcmp(a, b) != 0;
    free(a);
    free(b);
    return differ;
}

/* ---- the run: workers take records in turn; lines are written under the lock ---- */

struct run {
    const struct continue_opts *o;
    const struct sa_records *recs;
    const size_t *queue;
    size_t n_queue, n_before;
    pthread_mutex_t mu;
    FILE *out, *trace;
    /* under mu */
    size_t n_done, n_ended, n_cut, n_same;
    int64_t n_tokens;
    int rc; /* the first fatal failure stops the others */
    double t0;
};

static void run_one(struct run *r, struct sa_pipeline *pl, size_t id) {
    const struct continue_opts *o = r->o;
    const struct sa_record *rec = &r->recs->items[id];
    struct continuation c = {0};
    const double t1 = now_s();
    enum sa_status s = continue_one(pl, id, rec, &c);
    char *line = s ? NULL : answer_line(id, rec, &c);
    char *err = s ? strdup(sa_last_error()) : NULL;
    pthread_mutex_lock(&r->mu);
    int fatal = 0;
    if (s == SA_STATUS_CANCELLED || (s && cli_interrupted(NULL))) {
        if (!r->rc)
            fprintf(stderr, "salign data continue: interrupted; %zu record(s) continued in %s (run again to resume)\n",
                    r->n_before + r->n_done, o->out);
        fatal = 130;
    } else if (s == SA_STATUS_BAD_ARGUMENT) {
        /* this record cannot be continued (a prompt too long for the context, ...): said, skipped */
        fprintf(stderr, "salign data continue: %s: record %zu: %s (skipped)\n", o->input, id, err ? err : "?");
    } else if (s) {
        fprintf(stderr, "salign data continue: %s: record %zu: %s\n", o->input, id, err ? err : "?");
        fatal = CLI_FAIL;
    } else if (!line) {
        fatal = cli_fail("out of memory");
    } else if (!r->rc && ((r->trace && c.trace.s && !cli_append("data continue", r->trace, c.trace.s, o->trace)) ||
                          !cli_append("data continue", r->out, line, o->out))) {
        fatal = CLI_FAIL;
    } else if (!r->rc) {
        r->n_done++;
        r->n_ended += c.done;
        r->n_cut += c.cut;
        r->n_same += c.same_last;
        r->n_tokens += c.n_tokens;
        const double el = now_s() - r->t0;
        fprintf(stderr, "[%zu/%zu] record %zu: %d sentence(s) after the correction, %s, %lld tokens, %.1f s; "
                        "ETA %.0f s\n",
                r->n_before + r->n_done, r->n_before + r->n_queue, id, c.rounds,
                c.cut ? "cut" : c.done ? "ended" : "stopped", (long long)c.n_tokens, now_s() - t1,
                el / (double)r->n_done * (double)(r->n_queue - r->n_done));
    }
    if (fatal && !r->rc) r->rc = fatal;
    pthread_mutex_unlock(&r->mu);
    free(err);
    free(line);
    continuation_free(&c);
}

static bool run_stopped(struct run *r) {
    pthread_mutex_lock(&r->mu);
    bool stop = r->rc != 0;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

static void run_job(void *user, struct sa_pipeline *pl, size_t i) {
    struct run *r = user;
    run_one(r, pl, r->queue[i]);
}

static bool jobs_stopped(void *user) {
    return run_stopped(user);
}

int cmd_data_continue(int argc, char **argv) {
    struct continue_opts o = {.pp = sa_pipeline_default_params()};
    int prc = cli_parse(&cli_cmd_data_continue, argc, argv, &o, NULL);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    const char *cmd = "data continue";
    if (!o.upstream) return cli_usage_error(cmd, "missing --upstream MODEL");
    if (!strncmp(o.upstream, "http://", 7) || !strncmp(o.upstream, "https://", 8))
        return cli_usage_error(cmd, "--upstream must be a local model: a server upstream is not supported here");
    if (!o.input) return cli_usage_error(cmd, "missing --input RECORDS");
    if (!o.out || !strcmp(o.out, "-")) return cli_usage_error(cmd, "missing --out FILE (a file: it is appended to)");
    if (o.trace && !strcmp(o.trace, o.out)) return cli_usage_error(cmd, "--trace and --out are the same file");

    struct sa_records recs;
    sa_records_init(&recs);
    if (sa_records_load(o.input, SA_RECORD_SENTENCE, &recs)) {
        fprintf(stderr, "salign data continue: %s\n", sa_last_error());
        return CLI_FAIL;
    }
    /* resume: the records with an answer line are done; trace lines of others are dropped */
    struct cli_keyset done = {0};
    int rc = cli_resume_tidy(cmd, o.out, "record", NULL, &done);
    if (!rc) rc = cli_resume_tidy(cmd, o.trace, "record", &done, NULL);
    size_t *queue = rc ? NULL : calloc(recs.n + 1, sizeof *queue), n_queue = 0, n_before = 0, n_wanted = 0;
    if (!rc && !queue) rc = cli_fail("out of memory");
    for (size_t i = 0; !rc && i < recs.n; i++) {
        if (!wanted(&o, &recs.items[i])) continue;
        if (o.limit && n_wanted >= o.limit) break;
        n_wanted++;
        char key[32];
        snprintf(key, sizeof key, "%zu", i);
        if (cli_keyset_has(&done, key)) n_before++;
        else queue[n_queue++] = i;
    }
    struct sa_pipeline_params pp = o.pp;
    pp.mode = SA_PIPELINE_UPSTREAM;
    struct sa_model *model = NULL;
    FILE *out = NULL, *trace = NULL;
    if (!rc && n_queue) {
        rc = gen_load_model(o.upstream, pp.n_threads, &model);
        pp.upstream_model = model;
        if (!rc && o.up_tmpl && sa_chat_format_from_name(o.up_tmpl, &pp.upstream_format) != SA_STATUS_OK)
            rc = cli_usage_error(cmd, "--upstream-template '%s' is not chatml, gemma or llama3", o.up_tmpl);
        const char *bad = NULL;
        if (!rc && !(out = fopen(o.out, "a"))) bad = o.out;
        else if (!rc && o.trace && !(trace = fopen(o.trace, "a"))) bad = o.trace;
        if (bad) {
            fprintf(stderr, "salign data continue: cannot open %s: %s\n", bad, strerror(errno));
            rc = CLI_FAIL;
        }
    }
    if (!rc && n_before)
        fprintf(stderr, "salign data continue: %zu record(s) already continued in %s\n", n_before, o.out);
    struct run r = {.o = &o, .recs = &recs, .queue = queue, .n_queue = n_queue, .n_before = n_before, .out = out,
                    .trace = trace};
    pthread_mutex_init(&r.mu, NULL);
    r.t0 = now_s();
    cli_sigint_catch();
    if (!rc && n_queue) {
        const struct cli_workers w = {.n_jobs = n_queue, .run = run_job, .stopped = jobs_stopped, .user = &r};
        rc = cli_run_workers(cmd, &pp, o.parallel, &w);
        if (!rc) rc = r.rc;
    }
    cli_sigint_restore();
    pthread_mutex_destroy(&r.mu);
    if (!rc || rc == 130)
        fprintf(stderr,
                "salign data continue: %zu record(s) continued (%zu before): %zu ended, %zu cut by --max-length, "
                "%zu whose last sentence is the upstream's own; %lld tokens, %.1f s\n",
                r.n_done, n_before, r.n_ended, r.n_cut, r.n_same, (long long)r.n_tokens, now_s() - r.t0);
    if (out) fclose(out);
    if (trace) fclose(trace);
    sa_model_free(model);
    free(queue);
    cli_keyset_free(&done);
    sa_records_free(&recs);
    return rc;
}
