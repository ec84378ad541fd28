/* cmd_eval_aligner.c: `salign eval aligner`: how an aligner treats held-out records, run
 * through the pipeline's own revision code (the input text, chat template and decoding of a
 * Stream Aligner round, or of the Aligner baseline for whole-answer records).
 *   copy records (last == correction):     kept rate = revision == last
 *   rewrite records (last != correction):  changed rate = revision != last,
 *                                          improved rate = revision closer to the correction
 *                                          than last (character edit distance),
 *                                          fixed rate = revision == correction
 * each with a 95% Wilson interval, overall and per record source label (the text after the
 * last ':' of "source", e.g. the corruption rule of `salign data from-gsm8k`).
 * --edit-threshold LIST: the gated revision (docs/PIPELINE.md): each revision is scored once
 * (log p(y2) - log p(y1)), and the rates are given again for each threshold, the revisions
 * whose margin is below it replaced by the draft: a threshold chosen on dev records. */
#define _GNU_SOURCE
#include "cli.h"
#include "generate.h"
#include "sa/sa.h"
#include "sa/eval.h"
#include "sa/pipeline.h"
#include "sa/records.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The label of a record: the text after the last ':' of its source, "" without one. */
static const char *label_of(const struct sa_record *r) {
    if (!r->source) return "";
    const char *c = strrchr(r->source, ':');
    return c ? c + 1 : r->source;
}

#define MAX_LABELS 32
struct tally {
    char *label; /* NULL: overall */
    size_t n_copy, n_kept, n_rewrite, n_changed, n_improved, n_fixed;
};

static void tally_add(struct tally *t, bool is_copy, bool kept, bool improved, bool fixed) {
    if (is_copy) {
        t->n_copy++;
        t->n_kept += kept;
    } else {
        t->n_rewrite++;
        t->n_changed += !kept;
        t->n_improved += improved;
        t->n_fixed += fixed;
    }
}

/* k of n with the 95% Wilson interval (as sa_eval_accuracy). */
static struct sa_eval_accuracy rate(size_t k, size_t n) {
    struct sa_eval_accuracy a = {.n = n, .n_correct = k, .acc = n ? (double)k / (double)n : 0.0};
    sa_eval_wilson(k, n, 1.959963984540054, &a.lo, &a.hi);
    return a;
}

static cJSON *rate_json(size_t k, size_t n) {
    struct sa_eval_accuracy a = rate(k, n);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "n", (double)n);
    cJSON_AddNumberToObject(j, "count", (double)k);
    cJSON_AddNumberToObject(j, "rate", a.acc);
    cJSON *ci = cJSON_AddArrayToObject(j, "ci95");
    cJSON_AddItemToArray(ci, cJSON_CreateNumber(a.lo));
    cJSON_AddItemToArray(ci, cJSON_CreateNumber(a.hi));
    return j;
}

static cJSON *tally_json(const struct tally *t) {
    cJSON *j = cJSON_CreateObject();
    if (t->label) cJSON_AddStringToObject(j, "label", t->label);
    cJSON_AddItemToObject(j, "kept", rate_json(t->n_kept, t->n_copy));
    cJSON_AddItemToObject(j, "changed", rate_json(t->n_changed, t->n_rewrite));
    cJSON_AddItemToObject(j, "improved", rate_json(t->n_improved, t->n_rewrite));
    cJSON_AddItemToObject(j, "fixed", rate_json(t->n_fixed, t->n_rewrite));
    return j;
}

static void print_rate(const char *what, size_t k, size_t n) {
    if (!n) return;
    struct sa_eval_accuracy a = rate(k, n);
    printf("  %-8s %5.1f%% (%zu/%zu) [%.1f, %.1f]", what, 100 * a.acc, k, n, 100 * a.lo, 100 * a.hi);
}

static void print_tally(const struct tally *t) {
    printf("%-12s", t->label ? t->label : "all");
    print_rate("kept", t->n_kept, t->n_copy);
    print_rate("changed", t->n_changed, t->n_rewrite);
    print_rate("improved", t->n_improved, t->n_rewrite);
    print_rate("fixed", t->n_fixed, t->n_rewrite);
    printf("\n");
}

#define MAX_THRESHOLDS 64

struct opts {
    const char *aligner, *aligner_lora, *records, *details, *aligner_system, *thresholds;
    size_t max;
    bool json, spec, batch_invariant;
    int n_threads;
    int32_t n_ctx;
    int edit_score; /* enum sa_pipeline_edit_score; -1: not given */
    unsigned edit_check; /* SA_PIPELINE_EDIT_CHECK_* bits */
    double thr[MAX_THRESHOLDS]; /* --edit-threshold, parsed */
    size_t n_thr;
};

/* in the order of enum sa_pipeline_edit_score */
static const char *const edit_score_names[] = {"sum", "mean", NULL};

/* What the gate needs of a record's outcome to replay it at any threshold. */
struct outcome {
    bool is_copy, kept, improved, fixed, edited; /* edited: the aligner's revision != the draft */
    double margin;                               /* NAN: not scored */
};

/* The outcome at threshold t: an edit whose margin is below t is replaced by the draft (kept,
 * not improved, fixed only when the draft was the correction: a copy record). */
static void gate_outcome(const struct outcome *o, double t, bool *kept, bool *improved, bool *fixed, bool *gated) {
    *gated = o->edited && !isnan(o->margin) && !(o->margin >= t);
    *kept = *gated ? true : o->kept;
    *improved = *gated ? false : o->improved;
    *fixed = *gated ? o->is_copy : o->fixed;
}

/* The overall tally at threshold t (gate_outcome); *n_gated: the edits it replaced. */
static struct tally sweep(const struct outcome *outs, size_t n, double t, size_t *n_gated) {
    struct tally tl = {0};
    *n_gated = 0;
    for (size_t i = 0; i < n; i++) {
        bool kept, improved, fixed, gated;
        gate_outcome(&outs[i], t, &kept, &improved, &fixed, &gated);
        tally_add(&tl, outs[i].is_copy, kept, improved, fixed);
        *n_gated += gated;
    }
    return tl;
}

static void print_tally_gated(const struct tally *t, size_t n_gated) {
    printf("%-12s", t->label);
    print_rate("kept", t->n_kept, t->n_copy);
    print_rate("changed", t->n_changed, t->n_rewrite);
    print_rate("improved", t->n_improved, t->n_rewrite);
    print_rate("fixed", t->n_fixed, t->n_rewrite);
    printf("  gated %zu\n", n_gated);
}

#define O(f) CLI_AT(struct opts, f)
static const struct cli_opt eval_aligner_opts[] = {
    {"aligner", 0, CLI_OPT_STR, O(aligner), .arg = "MODEL",
     .help = "the aligner (path, cached name, or a shipped adapter's\nname: models/NAME, its base + adapter)"},
    {"aligner-lora", 0, CLI_OPT_STR, O(aligner_lora), .arg = "FILE",
     .help = "a LoRA adapter over the aligner (GGUF, salign train --lora)"},
    {"records", 0, CLI_OPT_STR, O(records), .arg = "FILE", .help = "records (JSONL or a JSON array; docs/EVAL.md)"},
    {"max", 0, CLI_OPT_UINT, O(max), .umin = 1, .umax = 1 << 24, .arg = "N", .help = "the first N records only"},
    {"details", 0, CLI_OPT_STR, O(details), .arg = "FILE",
     .help = "one JSONL line per record: index, source, kind, revision,\nkept/changed, improved, fixed, distances, "
             "tokens, ms"},
    {"aligner-system", 0, CLI_OPT_STR, O(aligner_system), .arg = "TEXT",
     .help = "a system message for the aligner (default none)"},
    {"edit-threshold", 0, CLI_OPT_STR, O(thresholds), .arg = "LIST",
     .help = "gated revision: the rates again for each threshold of\nthe comma list (nats, e.g. -2,0,2,inf), edits "
             "scored\nbelow it replaced by the draft; choose on dev records,\nnever test (docs/PIPELINE.md)"},
    {"edit-score", 0, CLI_OPT_ENUM, O(edit_score), .names = edit_score_names, .arg = "sum|mean",
     .help = "the gate's margin: sum (default) or mean per token"},
    CLI_EDIT_CHECK_ENTRY(struct opts, edit_check),
    {"no-spec", 0, CLI_OPT_UNSET, O(spec), .help = "no copy-speculation (same output, slower)"},
    {"batch-invariant", 0, CLI_OPT_FLAG, O(batch_invariant),
     .help = "bitwise batch-invariant kernels (slower one-token decoding)"},
    {"threads", 't', CLI_OPT_INT, O(n_threads), .imin = 0, .imax = 1 << 24, .arg = "N",
     .help = "compute threads (default: all cores)"},
    {"ctx-size", 'c', CLI_OPT_INT, O(n_ctx), .imin = 0, .imax = 1 << 24, .arg = "N",
     .help = "context size (default 4096)"},
    {"json", 0, CLI_OPT_FLAG, O(json), .help = "print one JSON object"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_eval_aligner = {
    .name = "eval aligner",
    .opts = eval_aligner_opts,
    .n_opts = sizeof eval_aligner_opts / sizeof eval_aligner_opts[0],
    .usage = "Usage: salign eval aligner --aligner MODEL --records FILE [OPTIONS]\n\n"
             "Asks the aligner to revise each record's sentence (sentence records, as in a Stream\n"
             "Aligner round) or answer (whole-answer records, as the Aligner baseline), greedy, and\n"
             "reports: on copy records (last == correction) the kept rate (revision == last); on\n"
             "rewrite records the changed rate (revision != last), the improved rate (revision\n"
             "closer to the correction than last, in characters) and the fixed rate (revision ==\n"
             "correction), with 95% Wilson intervals, overall and per source label.\n\n",
};

/* Parses a comma list of thresholds (numbers, inf and -inf allowed; no NaN, no empty item). */
static bool parse_thresholds(const char *list, double *out, size_t *n) {
    *n = 0;
    const char *p = list;
    for (;;) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno == ERANGE || isnan(x) || (*end && *end != ',') || *n == MAX_THRESHOLDS) return false;
        out[(*n)++] = x;
        if (!*end) return true;
        p = end + 1;
    }
}

/* Parses the options and checks them. Returns 0, CLI_PARSE_HELP or CLI_USAGE. */
static int parse(int argc, char **argv, struct opts *o) {
    o->spec = true;
    o->edit_score = -1;
    int prc = cli_parse(&cli_cmd_eval_aligner, argc, argv, o, NULL);
    if (prc) return prc;
    if (!o->aligner) return cli_usage_error("eval", "aligner: missing --aligner MODEL");
    if (!o->records) return cli_usage_error("eval", "aligner: missing --records FILE");
    if (o->thresholds && !parse_thresholds(o->thresholds, o->thr, &o->n_thr))
        return cli_usage_error("eval", "aligner: bad --edit-threshold '%s': expected a comma list of at most %d "
                                       "numbers (nats; inf and -inf allowed), e.g. -2,0,2", o->thresholds, MAX_THRESHOLDS);
    if (o->edit_score >= 0 && !o->thresholds)
        return cli_usage_error("eval", "aligner: --edit-score needs --edit-threshold LIST");
    if (o->edit_score < 0) o->edit_score = SA_PIPELINE_EDIT_SCORE_SUM;
    return 0;
}

int cmd_eval_aligner(int argc, char **argv) {
    struct opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc == CLI_PARSE_HELP ? CLI_OK : rc;
    struct sa_records recs;
    sa_records_init(&recs);
    if (sa_records_load(o.records, SA_RECORD_ANY, &recs)) return cli_fail(NULL);
    struct sa_model *model = NULL;
    struct sa_lora *lora = NULL;
    char *base = NULL, *adapter = NULL;
    struct sa_pipeline *pl = NULL;
    FILE *details = NULL;
    struct tally all = {0}, by[MAX_LABELS] = {{0}};
    size_t n_labels = 0, n = o.max && o.max < recs.n ? o.max : recs.n;
    struct outcome *outs = calloc(n ? n : 1, sizeof *outs); /* (n): for the threshold sweep */
    if (!outs) {
        sa_records_free(&recs);
        return cli_fail("out of memory");
    }
    if ((rc = gen_resolve_adapter_name(o.aligner, &base, &adapter))) goto done;
    if ((rc = gen_load_model(base, o.n_threads, &model))) goto done;
    const char *lora_file = o.aligner_lora ? o.aligner_lora : adapter;
    if (lora_file && (rc = gen_load_lora(model, lora_file, &lora))) goto done;
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.mode = SA_PIPELINE_ALIGNER;
    pp.aligner_model = model;
    pp.aligner_lora = lora;
    pp.aligner_system = o.aligner_system;
    pp.use_spec = o.spec;
    pp.n_threads = o.n_threads;
    pp.n_ctx = o.n_ctx;
    pp.batch_invariant = o.batch_invariant;
    pp.edit_check = o.edit_check; /* refused edits count as the draft */
    if (o.thresholds) { /* every edit scored, none gated: the sweep replays the gate below */
        pp.edit_gate = true;
        pp.edit_threshold = -INFINITY;
        pp.edit_score = (enum sa_pipeline_edit_score)o.edit_score;
    }
    if (sa_pipeline_init(&pp, &pl)) {
        rc = cli_fail("pipeline");
        goto done;
    }
    if (o.details && !(details = fopen(o.details, "w"))) {
        fprintf(stderr, "salign eval: cannot open %s: %s\n", o.details, strerror(errno));
        rc = CLI_FAIL;
        goto done;
    }
    size_t n_refused = 0; /* edits the edit check replaced by the draft */
    for (size_t i = 0; i < n && !rc; i++) {
        const struct sa_record *r = &recs.items[i];
        const bool sentence = r->kind == SA_RECORD_SENTENCE;
        const char *draft = sentence ? r->last : r->answer;
        struct sa_pipeline_result res;
        enum sa_status s = sentence ? sa_pipeline_revise_sentence(pl, r->question, r->prefix, r->last, &res)
                                    : sa_pipeline_revise_answer(pl, r->question, r->answer, NULL, &res);
        if (s) {
            fprintf(stderr, "salign eval: record %zu: ", i + 1);
            rc = cli_fail("aligner");
            sa_pipeline_result_free(&res);
            break;
        }
        /* compare as the pipeline does: without outer whitespace */
        char *d = strndup(draft + strspn(draft, " \t\r\n"), strlen(draft));
        char *c = strndup(r->correction + strspn(r->correction, " \t\r\n"), strlen(r->correction));
        for (char *x = d ? d + strlen(d) : NULL; x && x > d && strchr(" \t\r\n", x[-1]);) *--x = 0;
        for (char *x = c ? c + strlen(c) : NULL; x && x > c && strchr(" \t\r\n", x[-1]);) *--x = 0;
        if (!d || !c) {
            free(d);
            free(c);
            sa_pipeline_result_free(&res);
            fprintf(stderr, "salign eval: out of memory\n");
            rc = CLI_FAIL;
            break;
        }
        const bool is_copy = !strcmp(d, c), kept = !strcmp(res.answer, d), fixed = !strcmp(res.answer, c);
        const size_t dist_draft = is_copy ? 0 : sa_edit_distance(d, strlen(d), c, strlen(c));
        const size_t dist_rev = is_copy ? 0 : sa_edit_distance(res.answer, res.len, c, strlen(c));
        const bool improved = !is_copy && dist_rev < dist_draft;
        tally_add(&all, is_copy, kept, improved, fixed);
        n_refused += (size_t)res.n_refused;
        outs[i] = (struct outcome){.is_copy = is_copy, .kept = kept, .improved = improved, .fixed = fixed,
                                   .edited = !kept, .margin = res.n_scored ? res.margin : NAN};
        const char *lab = label_of(r);
        size_t k = 0;
        while (k < n_labels && strcmp(by[k].label, lab)) k++;
        if (k == n_labels && n_labels < MAX_LABELS && (by[k].label = strdup(lab))) n_labels++;
        if (k < n_labels) tally_add(&by[k], is_copy, kept, improved, fixed);
        if (details) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "index", (double)i);
            if (r->source) cJSON_AddStringToObject(j, "source", r->source);
            cJSON_AddStringToObject(j, "kind", is_copy ? "copy" : "rewrite");
            cJSON_AddStringToObject(j, "revision", res.answer);
            cJSON_AddBoolToObject(j, is_copy ? "kept" : "changed", is_copy ? kept : !kept);
            if (!is_copy) {
                cJSON_AddBoolToObject(j, "improved", improved);
                cJSON_AddBoolToObject(j, "fixed", fixed);
                cJSON_AddNumberToObject(j, "distance_before", (double)dist_draft);
                cJSON_AddNumberToObject(j, "distance_after", (double)dist_rev);
            }
            if (res.n_refused) { /* and the check that refused the edit */
                cJSON_AddBoolToObject(j, "refused", true);
                cJSON_AddStringToObject(j, "refused_by", sa_pipeline_edit_check_name(res.refused_by));
            }
            if (res.n_scored && isfinite(res.margin)) cJSON_AddNumberToObject(j, "margin", res.margin);
            if (res.n_scored && isfinite(res.logp_revision)) {
                cJSON_AddNumberToObject(j, "logp_revision", res.logp_revision);
                cJSON_AddNumberToObject(j, "logp_draft", res.logp_draft);
            }
            cJSON_AddNumberToObject(j, "tokens", res.aligner_tokens);
            cJSON_AddNumberToObject(j, "ms", res.total_ms);
            char *line = cJSON_PrintUnformatted(j);
            if (!line || fprintf(details, "%s\n", line) < 0) rc = CLI_FAIL;
            free(line);
            cJSON_Delete(j);
        }
        if (!o.json && isatty(2)) fprintf(stderr, "\r[%zu/%zu]", i + 1, n);
        free(d);
        free(c);
        sa_pipeline_result_free(&res);
    }
    if (!o.json && isatty(2)) fprintf(stderr, "\n");
    if (details && fclose(details) && !rc) rc = CLI_FAIL;
    details = NULL;
    if (rc == CLI_FAIL && o.details) fprintf(stderr, "salign eval: cannot write %s\n", o.details);
    if (!rc) {
        if (o.json) {
            cJSON *j = tally_json(&all);
            cJSON_AddStringToObject(j, "aligner", o.aligner);
            if (o.aligner_lora) cJSON_AddStringToObject(j, "aligner_lora", o.aligner_lora);
            cJSON_AddStringToObject(j, "records", o.records);
            cJSON_AddNumberToObject(j, "evaluated", (double)n);
            if (o.edit_check) {
                char chk[32];
                cJSON_AddStringToObject(j, "edit_check", cli_edit_check_str(o.edit_check, chk, sizeof chk));
                cJSON_AddNumberToObject(j, "refused", (double)n_refused);
            }
            cJSON *arr = cJSON_AddArrayToObject(j, "by_label");
            for (size_t k = 0; k < n_labels; k++) cJSON_AddItemToArray(arr, tally_json(&by[k]));
            if (o.thresholds) {
                cJSON *g = cJSON_AddObjectToObject(j, "gate");
                cJSON_AddStringToObject(g, "edit_score", edit_score_names[o.edit_score]);
                cJSON *rows = cJSON_AddArrayToObject(g, "thresholds");
                for (size_t k = 0; k < o.n_thr; k++) {
                    size_t n_gated = 0;
                    struct tally t = sweep(outs, n, o.thr[k], &n_gated);
                    cJSON *row = tally_json(&t);
                    if (isfinite(o.thr[k])) cJSON_AddNumberToObject(row, "threshold", o.thr[k]);
                    else cJSON_AddStringToObject(row, "threshold", o.thr[k] > 0 ? "inf" : "-inf");
                    cJSON_AddNumberToObject(row, "gated", (double)n_gated);
                    cJSON_AddItemToArray(rows, row);
                }
            }
            char *s = cJSON_PrintUnformatted(j);
            if (s) printf("%s\n", s);
            free(s);
            cJSON_Delete(j);
        } else {
            printf("%zu records (%zu copy, %zu rewrite); 95%% Wilson intervals\n", n, all.n_copy, all.n_rewrite);
            print_tally(&all);
            char chk[32];
            if (o.edit_check)
                printf("edit check %s: %zu edit(s) refused (counted as the draft)\n",
                       cli_edit_check_str(o.edit_check, chk, sizeof chk), n_refused);
            for (size_t k = 0; k < n_labels; k++) print_tally(&by[k]);
            if (o.thresholds) {
                printf("gated revision (margin %s; edits below the threshold replaced by the draft)\n",
                       edit_score_names[o.edit_score]);
                for (size_t k = 0; k < o.n_thr; k++) {
                    size_t n_gated = 0;
                    struct tally t = sweep(outs, n, o.thr[k], &n_gated);
                    char name[32];
                    snprintf(name, sizeof name, ">= %g", o.thr[k]);
                    t.label = name;
                    print_tally_gated(&t, n_gated);
                }
            }
        }
    }
done:
    if (details) fclose(details);
    for (size_t k = 0; k < n_labels; k++) free(by[k].label);
    sa_pipeline_free(pl);
    sa_lora_free(lora);
    sa_model_free(model);
    free(base);
    free(adapter);
    sa_records_free(&recs);
    free(outs);
    return rc;
}
