/* cmd_steer.c: `salign steer extract|scan|apply|sweep`: the aligner's correction representation
 * read by representation engineering (Zou et al. 2023, LAT), scanned over an input (the paper's
 * Figure 9), and used to steer the aligner (its Figure 8). The maths is in the library
 * (sa_steer_lat, sa_steer_pc1, sa_levenshtein_ratio: src/steer/lat.c); the aligner's inputs are
 * the pipeline's own (sa_pipeline_aligner_prompt), its revisions the pipeline's
 * (sa_pipeline_revise_sentence / _answer). Definitions: docs/STEER.md. */
#define _GNU_SOURCE
#include "cli.h"
#include "cmd_steer_svg.h"
#include "generate.h"
#include "sa/sa.h"
#include "sa/eval_stats.h"
#include "sa/pipeline.h"
#include "sa/records.h"
#include "sa/steer.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { STEER_EXTRACT = 1, STEER_SCAN = 2, STEER_APPLY = 4, STEER_SWEEP = 8 };
#define MAX_COEFS 64

struct steer_opts {
    const char *model, *lora, *records, *out, *csv, *svg, *vec, *coefs, *aligner_system, *dump, *details;
    size_t max_pairs, max_records, index;
    double coef;
    int n_threads;
    int32_t n_ctx;
    bool json;
    double cv[MAX_COEFS]; /* --coefs, parsed */
    size_t n_cv;
};

#define O(f) CLI_AT(struct steer_opts, f)
static const struct cli_opt steer_opts_table[] = {
    {"model", 'm', CLI_OPT_STR, O(model), .arg = "M",
     .help = "the aligner (path, cached name, or a shipped adapter's\nname: models/NAME, its base + adapter)"},
    {"lora", 0, CLI_OPT_STR, O(lora), .arg = "FILE", .help = "a LoRA adapter over the aligner (GGUF)"},
    {"records", 0, CLI_OPT_STR, O(records), .arg = "FILE", .help = "correction records (JSONL; docs/EVAL.md)"},
    {"vec", 0, CLI_OPT_STR, O(vec), .mask = STEER_SCAN | STEER_APPLY | STEER_SWEEP, .arg = "FILE",
     .help = "the control vector (steer extract's, llama.cpp's format)"},
    {"out", 'o', CLI_OPT_STR, O(out), .mask = STEER_EXTRACT, .arg = "FILE",
     .help = "the control vector to write (GGUF, llama.cpp's format)"},
    {"max-pairs", 0, CLI_OPT_UINT, O(max_pairs), .mask = STEER_EXTRACT, .umin = 1, .umax = 1 << 20, .arg = "N",
     .help = "most stimulus pairs (default: all)"},
    {"dump", 0, CLI_OPT_STR, O(dump), .mask = STEER_EXTRACT, .arg = "FILE",
     .help = "write the stimuli's hidden states as a .npy array\n(2, pairs, n_layer + 1, n_embd): [0] rewrite, [1] copy"},
    {"index", 0, CLI_OPT_UINT, O(index), .mask = STEER_SCAN | STEER_APPLY, .umax = 1 << 24, .arg = "I",
     .help = "the record (0-based; default 0)"},
    {"coef", 0, CLI_OPT_FLOAT, O(coef), .mask = STEER_APPLY, .lo = -1e6, .hi = 1e6, .arg = "C",
     .help = "the steering coefficient (the vector times C; 0: none)"},
    {"coefs", 0, CLI_OPT_STR, O(coefs), .mask = STEER_SWEEP, .arg = "LIST",
     .help = "comma list of coefficients (default -4,-2,0,2,4)"},
    {"max-records", 0, CLI_OPT_UINT, O(max_records), .mask = STEER_SWEEP, .umin = 1, .umax = 1 << 24, .arg = "N",
     .help = "the first N records only (default: all)"},
    {"details", 0, CLI_OPT_STR, O(details), .mask = STEER_SWEEP, .arg = "FILE",
     .help = "one JSONL line per coefficient and record: coef, index,\noriginal, revision, ratio"},
    {"csv", 0, CLI_OPT_STR, O(csv), .arg = "FILE", .help = "the table (extract: per layer; scan: per layer and\ntoken; sweep: per coefficient)"},
    {"svg", 0, CLI_OPT_STR, O(svg), .mask = STEER_SCAN | STEER_SWEEP, .arg = "FILE", .help = "the figure"},
    {"json", 0, CLI_OPT_FLAG, O(json), .mask = STEER_APPLY, .help = "print one JSON object"},
    {"aligner-system", 0, CLI_OPT_STR, O(aligner_system), .arg = "TEXT",
     .help = "a system message for the aligner (default none, as the\npipeline)"},
    {"threads", 't', CLI_OPT_INT, O(n_threads), .imin = 0, .imax = 1024, .arg = "N",
     .help = "compute threads (default: all cores)"},
    {"ctx-size", 'c', CLI_OPT_INT, O(n_ctx), .imin = 0, .imax = 1 << 24, .arg = "N",
     .help = "context size (default 4096)"},
    CLI_HELP_ENTRY,
};
#undef O

#define STEER_CMD(NAME, MASK, USAGE)                                                                              \
    {.name = "steer " NAME, .opts = steer_opts_table,                                                             \
     .n_opts = sizeof steer_opts_table / sizeof steer_opts_table[0], .mask = MASK, .usage = USAGE}
static const struct cli_cmd steer_cmds[] = {
    STEER_CMD("extract", STEER_EXTRACT,
              "Usage: salign steer extract --model M [--lora F] --records R.jsonl --out VEC.gguf [OPTIONS]\n\n"
              "The aligner's correction direction per layer (LAT): the hidden state at the last\n"
              "prompt token of the aligner's input on a record it must rewrite minus one it must\n"
              "copy, paired in file order; the first principal component of the differences,\n"
              "signed so that + means \"correct more\", scaled by the mean projection of the\n"
              "differences. Written as a control vector (block K's output steered by direction.K).\n"
              "The last fifth of the pairs is held out for the accuracies of --csv. docs/STEER.md.\n\n"),
    STEER_CMD("scan", STEER_SCAN,
              "Usage: salign steer scan --model M [--lora F] --vec VEC.gguf --records R.jsonl --svg OUT.svg\n"
              "                         [--csv OUT.csv] [--index I]\n\n"
              "The LAT scan of one aligner input: each layer's hidden state at each token projected\n"
              "on that layer's direction, as a heat map (per layer z-scores) and a CSV.\n\n"),
    STEER_CMD("apply", STEER_APPLY,
              "Usage: salign steer apply --model M [--lora F] --vec VEC.gguf --coef C --records R.jsonl [--index I]\n\n"
              "The aligner's greedy revision of one record with the vector times C added to its\n"
              "residual stream (the pipeline's aligner, as `salign align --aligner-steer`).\n\n"),
    STEER_CMD("sweep", STEER_SWEEP,
              "Usage: salign steer sweep --model M [--lora F] --vec VEC.gguf --records R.jsonl --svg OUT.svg\n"
              "                          --csv OUT.csv [--coefs LIST] [--max-records N]\n\n"
              "Per coefficient, the mean Levenshtein ratio (python-Levenshtein's ratio, over\n"
              "characters) between each record's sentence and the aligner's greedy revision,\n"
              "with a 95% bootstrap interval: 1 = copied, lower = more edited.\n\n"),
};
const struct cli_cmd *const cli_cmds_steer[] = {&steer_cmds[0], &steer_cmds[1], &steer_cmds[2], &steer_cmds[3], NULL};

/* A comma list of finite numbers. */
static bool parse_coefs(const char *list, double *out, size_t *n) {
    *n = 0;
    const char *p = list;
    for (;;) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(x) || fabs(x) > 1e6 || (*end && *end != ',') || *n == MAX_COEFS)
            return false;
        out[(*n)++] = x;
        if (!*end) return true;
        p = end + 1;
    }
}

/* ---- the aligner: model, adapter, pipeline ---- */

struct aligner {
    struct sa_model *model;
    struct sa_lora *lora;
    char *base, *adapter;
    struct sa_records recs;
    struct sa_cvec *vec;
};

static void aligner_free(struct aligner *a) {
    sa_cvec_free(a->vec);
    sa_lora_free(a->lora);
    sa_model_free(a->model);
    free(a->base);
    free(a->adapter);
    sa_records_free(&a->recs);
}

static int aligner_load(const struct steer_opts *o, struct aligner *a) {
    memset(a, 0, sizeof *a);
    sa_records_init(&a->recs);
    if (sa_records_load(o->records, SA_RECORD_ANY, &a->recs)) return cli_fail(NULL);
    if (!a->recs.n) {
        fprintf(stderr, "salign steer: %s: no records\n", o->records);
        return CLI_FAIL;
    }
    int rc;
    if ((rc = gen_resolve_adapter_name(o->model, &a->base, &a->adapter))) return rc;
    if ((rc = gen_load_model(a->base, o->n_threads, &a->model))) return rc;
    const char *lf = o->lora ? o->lora : a->adapter;
    if (lf && (rc = gen_load_lora(a->model, lf, &a->lora))) return rc;
    if (o->vec) {
        if (sa_cvec_load(o->vec, &a->vec)) return cli_fail("loading the control vector");
        if (sa_cvec_n_embd(a->vec) != sa_model_n_embd(a->model) ||
            sa_cvec_n_layer(a->vec) > sa_model_config(a->model)->n_layer) {
            fprintf(stderr,
                    "salign steer: %s: a vector of %d rows of %d floats; the model has %d blocks of %d (made for "
                    "another model?)\n",
                    o->vec, (int)sa_cvec_n_layer(a->vec), (int)sa_cvec_n_embd(a->vec),
                    (int)sa_model_config(a->model)->n_layer, (int)sa_model_n_embd(a->model));
            return CLI_FAIL;
        }
    }
    return CLI_OK;
}

/* An ALIGNER-mode pipeline over the aligner, steered by vec times coef (vec NULL: not steered). */
static int aligner_pipeline(const struct steer_opts *o, const struct aligner *a, const struct sa_cvec *vec, double coef,
                            struct sa_pipeline **pl) {
    struct sa_pipeline_params pp = sa_pipeline_default_params();
    pp.mode = SA_PIPELINE_ALIGNER;
    pp.aligner_model = a->model;
    pp.aligner_lora = a->lora;
    pp.aligner_system = o->aligner_system;
    pp.n_threads = o->n_threads;
    pp.n_ctx = o->n_ctx;
    pp.aligner_cvec = vec;
    pp.aligner_cvec_scale = (float)coef;
    if (sa_pipeline_init(&pp, pl)) return cli_fail("pipeline");
    return CLI_OK;
}

/* The text without its outer whitespace (malloc'd; NULL: out of memory), as the pipeline compares. */
static char *strip(const char *s) {
    s += strspn(s, " \t\r\n");
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", s[n - 1])) n--;
    return strndup(s, n);
}

/* Whether the record is one the aligner must rewrite (correction != its sentence or answer). */
static int is_rewrite(const struct sa_record *r) {
    char *d = strip(r->kind == SA_RECORD_SENTENCE ? r->last : r->answer), *c = strip(r->correction);
    int v = d && c ? strcmp(d, c) != 0 : -1;
    free(d);
    free(c);
    return v;
}

static struct sa_pipeline_request request_of(const struct sa_record *r) {
    const bool sentence = r->kind == SA_RECORD_SENTENCE;
    return (struct sa_pipeline_request){.kind = sentence ? SA_PIPELINE_REQ_SENTENCE : SA_PIPELINE_REQ_ANSWER,
                                        .question = r->question,
                                        .prefix = sentence ? r->prefix : "",
                                        .last = sentence ? r->last : r->answer};
}

/* ---- hidden states ---- */

/* What the callback keeps: positions [0, n_pos) of every layer, (n_layer + 1, n_pos, d); or, with
 * last_only, the one position the context reports, (n_layer + 1, d). */
struct hid {
    float *buf;
    int32_t n_pos, d, n_l1;
    bool last_only;
};

static void on_hidden(void *user, int32_t layer, int32_t pos, const float *h, int32_t n_embd) {
    struct hid *hs = user;
    if (layer < 0 || layer >= hs->n_l1 || n_embd != hs->d) return;
    if (hs->last_only) {
        memcpy(hs->buf + (size_t)layer * (size_t)hs->d, h, sizeof(float) * (size_t)n_embd);
    } else if (pos >= 0 && pos < hs->n_pos) {
        memcpy(hs->buf + ((size_t)layer * (size_t)hs->n_pos + (size_t)pos) * (size_t)hs->d, h,
               sizeof(float) * (size_t)n_embd);
    }
}

/* A context over the aligner (its adapter, no steering) reporting hidden states into hs. */
static int hidden_ctx(const struct steer_opts *o, const struct aligner *a, struct hid *hs, bool last_only,
                      struct sa_ctx **ctx) {
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = o->n_ctx ? o->n_ctx : 4096;
    cp.n_threads = o->n_threads;
    cp.lora = a->lora;
    cp.hidden_cb = on_hidden;
    cp.hidden_user = hs;
    cp.hidden_last_only = last_only;
    if (sa_ctx_init(a->model, &cp, ctx)) return cli_fail("context");
    return CLI_OK;
}

/* Writes a float32 array of `nd` dims as a .npy file (version 1.0, C order). */
static bool write_npy(const char *path, const float *data, const size_t *shape, int nd) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    char hdr[256];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        k += snprintf(hdr + k, sizeof hdr - (size_t)k, "%zu, ", shape[i]);
        total *= shape[i];
    }
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, "), }");
    /* pad with spaces to a multiple of 64 bytes, ending in '\n' */
    size_t len = 10 + (size_t)k + 1;
    size_t pad = (64 - len % 64) % 64;
    const unsigned short hl = (unsigned short)((size_t)k + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xFF), (unsigned char)(hl >> 8)};
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)k, f) == (size_t)k;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, sizeof(float), total, f) == total;
    return fclose(f) == 0 && ok;
}

static void csv_num(FILE *f, double v) {
    if (isnan(v)) fputs("nan", f);
    else fprintf(f, "%.9g", v);
}

/* ---- extract ---- */

static int steer_extract(const struct steer_opts *o) {
    if (!o->out) return cli_usage_error("steer", "extract: missing --out VEC.gguf");
    struct aligner a;
    int rc = aligner_load(o, &a);
    struct sa_pipeline *pl = NULL;
    struct sa_ctx *ctx = NULL;
    struct sa_cvec *cv = NULL;
    size_t *rew_i = NULL, *cop_i = NULL;
    float *states = NULL, *dir = NULL;
    struct sa_steer_lat_stats *st = NULL;
    FILE *csv = NULL;
    if (rc) goto done;
    const int32_t L = sa_model_config(a.model)->n_layer, d = sa_model_n_embd(a.model), L1 = L + 1;
    /* the stimuli: rewrite and copy records, each in file order; pair i = (rewrite i, copy i) */
    rew_i = malloc(sizeof(size_t) * a.recs.n);
    cop_i = malloc(sizeof(size_t) * a.recs.n);
    if (!rew_i || !cop_i) {
        rc = cli_fail("out of memory");
        goto done;
    }
    size_t n_rew = 0, n_cop = 0;
    for (size_t i = 0; i < a.recs.n; i++) {
        const int v = is_rewrite(&a.recs.items[i]);
        if (v < 0) {
            rc = cli_fail("out of memory");
            goto done;
        }
        if (v) rew_i[n_rew++] = i;
        else cop_i[n_cop++] = i;
    }
    if (!n_rew || !n_cop) {
        fprintf(stderr, "salign steer extract: %s has %zu rewrite records (correction != last) and %zu copy records "
                        "(correction == last); LAT needs at least one of each\n", o->records, n_rew, n_cop);
        rc = CLI_FAIL;
        goto done;
    }
    size_t n_pairs = n_rew < n_cop ? n_rew : n_cop;
    if (o->max_pairs && o->max_pairs < n_pairs) n_pairs = o->max_pairs;
    const size_t n_test = n_pairs / 5, n_train = n_pairs - n_test; /* the last fifth held out */
    /* states: (2, n_pairs, L1, d): [0] rewrite stimuli, [1] copy stimuli */
    const size_t per = (size_t)L1 * (size_t)d;
    states = malloc(sizeof(float) * 2 * n_pairs * per);
    dir = malloc(sizeof(float) * (size_t)d);
    st = calloc((size_t)L1, sizeof *st);
    if (!states || !dir || !st) {
        rc = cli_fail("out of memory");
        goto done;
    }
    if ((rc = aligner_pipeline(o, &a, NULL, 0, &pl))) goto done;
    struct hid hs = {.d = d, .n_l1 = L1, .last_only = true};
    if ((rc = hidden_ctx(o, &a, &hs, true, &ctx))) goto done;
    /* evaluate in file order (records of one question share their prompt's start: the cache
     * keeps it) */
    size_t done_n = 0;
    for (size_t i = 0; i < a.recs.n && !rc; i++) {
        float *slot = NULL;
        for (size_t k = 0; k < n_pairs && !slot; k++) {
            if (rew_i[k] == i) slot = states + k * per;
            else if (cop_i[k] == i) slot = states + (n_pairs + k) * per;
        }
        if (!slot) continue;
        const struct sa_pipeline_request req = request_of(&a.recs.items[i]);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        hs.buf = slot;
        if (sa_pipeline_aligner_prompt(pl, &req, &ids, &n_ids) ||
            sa_ctx_eval_prompt(ctx, ids, (int32_t)n_ids, NULL, NULL)) {
            fprintf(stderr, "salign steer extract: record %zu: ", i);
            rc = cli_fail(NULL);
        }
        free(ids);
        done_n++;
        if (isatty(2)) fprintf(stderr, "\r[%zu/%zu]", done_n, 2 * n_pairs);
    }
    if (isatty(2)) fprintf(stderr, "\n");
    if (rc) goto done;
    if (o->dump) {
        const size_t shape[4] = {2, n_pairs, (size_t)L1, (size_t)d};
        if (!write_npy(o->dump, states, shape, 4)) {
            fprintf(stderr, "salign steer extract: cannot write %s\n", o->dump);
            rc = CLI_FAIL;
            goto done;
        }
    }
    /* per layer: (n_pairs, d) slices of the stimuli */
    if (sa_cvec_init(L, d, &cv) || sa_cvec_set_model_hint(cv, sa_model_config(a.model)->arch_name)) {
        rc = cli_fail("control vector");
        goto done;
    }
    float *rew = malloc(sizeof(float) * n_pairs * (size_t)d), *cop = malloc(sizeof(float) * n_pairs * (size_t)d);
    if (!rew || !cop) {
        free(rew);
        free(cop);
        rc = cli_fail("out of memory");
        goto done;
    }
    for (int32_t l = 0; l < L1 && !rc; l++) {
        for (size_t k = 0; k < n_pairs; k++) {
            memcpy(rew + k * (size_t)d, states + k * per + (size_t)l * (size_t)d, sizeof(float) * (size_t)d);
            memcpy(cop + k * (size_t)d, states + (n_pairs + k) * per + (size_t)l * (size_t)d, sizeof(float) * (size_t)d);
        }
        if (sa_steer_lat(rew, cop, (int32_t)n_pairs, (int32_t)n_train, d, dir, &st[l])) {
            rc = cli_fail("LAT");
            break;
        }
        /* stream l (the output of block l - 1) is steered by row l - 1; row 0 cannot be stored */
        if (l >= 2) {
            float *row = sa_cvec_layer(cv, l - 1);
            for (int32_t k = 0; k < d; k++) row[k] = (float)(st[l].gap * dir[k]);
        }
    }
    free(rew);
    free(cop);
    if (rc) goto done;
    if (sa_cvec_save(cv, o->out)) {
        rc = cli_fail("writing the control vector");
        goto done;
    }
    if (o->csv) {
        if (!(csv = fopen(o->csv, "w"))) {
            fprintf(stderr, "salign steer extract: cannot open %s: %s\n", o->csv, strerror(errno));
            rc = CLI_FAIL;
            goto done;
        }
        fprintf(csv, "layer,row,written,explained,gap,mid,n_train,n_test,acc_stimulus,acc_pair\n");
        for (int32_t l = 0; l < L1; l++) {
            fprintf(csv, "%d,%d,%d,", (int)l, (int)l - 1, l >= 2);
            csv_num(csv, st[l].explained);
            fputc(',', csv);
            csv_num(csv, st[l].gap);
            fputc(',', csv);
            csv_num(csv, st[l].mid);
            fprintf(csv, ",%zu,%zu,", n_train, n_test);
            csv_num(csv, st[l].acc_stim);
            fputc(',', csv);
            csv_num(csv, st[l].acc_pair);
            fputc('\n', csv);
        }
        const bool bad = ferror(csv) != 0;
        if (fclose(csv) || bad) {
            fprintf(stderr, "salign steer extract: cannot write %s\n", o->csv);
            rc = CLI_FAIL;
        }
        csv = NULL;
    }
    if (!rc) {
        printf("%zu pairs (%zu rewrite, %zu copy records): %zu for the direction, %zu held out\n", n_pairs, n_rew,
               n_cop, n_train, n_test);
        printf("layer  explained  gap        acc_stim  acc_pair\n");
        for (int32_t l = 0; l < L1; l++)
            printf("%5d  %9.3f  %9.4g  %8.3f  %8.3f%s\n", (int)l, st[l].explained, st[l].gap, st[l].acc_stim,
                   st[l].acc_pair, l >= 2 ? "" : "  (not written)");
        printf("wrote %s (direction.1..%d)\n", o->out, (int)L - 1);
    }
done:
    if (csv) fclose(csv);
    sa_cvec_free(cv);
    sa_ctx_free(ctx);
    sa_pipeline_free(pl);
    free(rew_i);
    free(cop_i);
    free(states);
    free(dir);
    free(st);
    aligner_free(&a);
    return rc;
}

/* ---- scan ---- */

/* A token's text for a label: its piece with special tokens rendered (malloc'd; "?" on error). */
static char *token_text(const struct sa_tokenizer *tok, int32_t id) {
    struct sa_detokenize_opts dopts = {.special = true, .strip_leading_space = false};
    char *t = NULL;
    size_t n = 0;
    if (sa_detokenize(tok, &id, 1, dopts, &t, &n)) return strdup("?");
    return t;
}

static void csv_text(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int steer_scan(const struct steer_opts *o) {
    if (!o->vec) return cli_usage_error("steer", "scan: missing --vec VEC.gguf");
    if (!o->svg && !o->csv) return cli_usage_error("steer", "scan: give --svg FILE and/or --csv FILE");
    struct aligner a;
    int rc = aligner_load(o, &a);
    struct sa_pipeline *pl = NULL;
    struct sa_ctx *ctx = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    float *buf = NULL;
    double *proj = NULL, *z = NULL;
    char **labels = NULL, **rlabels = NULL;
    int32_t *rows = NULL;
    int32_t n_rows = 0;
    FILE *f = NULL;
    if (rc) goto done;
    if (o->index >= a.recs.n) {
        fprintf(stderr, "salign steer scan: --index %zu: %s has %zu records\n", o->index, o->records, a.recs.n);
        rc = CLI_FAIL;
        goto done;
    }
    const int32_t L = sa_model_config(a.model)->n_layer, d = sa_model_n_embd(a.model), L1 = L + 1;
    if ((rc = aligner_pipeline(o, &a, NULL, 0, &pl))) goto done;
    const struct sa_pipeline_request req = request_of(&a.recs.items[o->index]);
    if (sa_pipeline_aligner_prompt(pl, &req, &ids, &n_ids)) {
        rc = cli_fail("aligner prompt");
        goto done;
    }
    const int32_t T = (int32_t)n_ids;
    struct hid hs = {.n_pos = T, .d = d, .n_l1 = L1};
    buf = malloc(sizeof(float) * (size_t)L1 * (size_t)T * (size_t)d); /* (L1, T, d) */
    /* the rows of the map: the vector's nonzero rows K, scanning stream K + 1 (block K's output) */
    rows = malloc(sizeof(int32_t) * (size_t)L1);
    if (!buf || !rows) {
        rc = cli_fail("out of memory");
        goto done;
    }
    hs.buf = buf;
    if ((rc = hidden_ctx(o, &a, &hs, false, &ctx))) goto done;
    if (sa_ctx_decode(ctx, ids, T, NULL)) {
        rc = cli_fail("aligner");
        goto done;
    }
    for (int32_t K = sa_cvec_n_layer(a.vec) - 1; K >= 0; K--) { /* top of the map: the last block */
        const float *row = sa_cvec_layer_const(a.vec, K);
        if (sa_steer_dot(row, row, d) > 0) rows[n_rows++] = K;
    }
    if (!n_rows) {
        fprintf(stderr, "salign steer scan: %s: every direction is zero\n", o->vec);
        rc = CLI_FAIL;
        goto done;
    }
    proj = malloc(sizeof(double) * (size_t)n_rows * (size_t)T);
    z = malloc(sizeof(double) * (size_t)n_rows * (size_t)T);
    labels = calloc((size_t)T, sizeof(char *));
    rlabels = calloc((size_t)n_rows, sizeof(char *));
    if (!proj || !z || !labels || !rlabels) {
        rc = cli_fail("out of memory");
        goto done;
    }
    const struct sa_tokenizer *tok = sa_model_tokenizer(a.model);
    for (int32_t t = 0; t < T; t++)
        if (!(labels[t] = token_text(tok, ids[t]))) {
            rc = cli_fail("out of memory");
            goto done;
        }
    for (int32_t r = 0; r < n_rows; r++) {
        const int32_t K = rows[r];
        const float *row = sa_cvec_layer_const(a.vec, K);
        const double nrm = sqrt(sa_steer_dot(row, row, d));
        if (asprintf(&rlabels[r], "block %d", (int)K) < 0) {
            rlabels[r] = NULL;
            rc = cli_fail("out of memory");
            goto done;
        }
        for (int32_t t = 0; t < T; t++)
            proj[(size_t)r * T + t] = sa_steer_dot(buf + ((size_t)(K + 1) * T + t) * d, row, d) / nrm;
        /* colour: z-score over positions 1.. (position 0, the attention sink, is an outlier) */
        double m = 0, v = 0;
        const int32_t t0 = T > 1 ? 1 : 0;
        for (int32_t t = t0; t < T; t++) m += proj[(size_t)r * T + t];
        m /= (T - t0);
        for (int32_t t = t0; t < T; t++) v += (proj[(size_t)r * T + t] - m) * (proj[(size_t)r * T + t] - m);
        const double sd = sqrt(v / (T - t0));
        for (int32_t t = 0; t < T; t++) z[(size_t)r * T + t] = sd > 0 ? (proj[(size_t)r * T + t] - m) / sd : 0;
    }
    if (o->csv) {
        if (!(f = fopen(o->csv, "w"))) {
            fprintf(stderr, "salign steer scan: cannot open %s: %s\n", o->csv, strerror(errno));
            rc = CLI_FAIL;
            goto done;
        }
        fprintf(f, "block,layer,pos,token_id,token,projection,z\n");
        for (int32_t r = 0; r < n_rows; r++)
            for (int32_t t = 0; t < T; t++) {
                fprintf(f, "%d,%d,%d,%d,", (int)rows[r], (int)rows[r] + 1, (int)t, (int)ids[t]);
                csv_text(f, labels[t]);
                fputc(',', f);
                csv_num(f, proj[(size_t)r * T + t]);
                fputc(',', f);
                csv_num(f, z[(size_t)r * T + t]);
                fputc('\n', f);
            }
        const bool bad = ferror(f) != 0;
        if (fclose(f) || bad) {
            fprintf(stderr, "salign steer scan: cannot write %s\n", o->csv);
            rc = CLI_FAIL;
        }
        f = NULL;
        if (rc) goto done;
    }
    if (o->svg) {
        if (!(f = fopen(o->svg, "w"))) {
            fprintf(stderr, "salign steer scan: cannot open %s: %s\n", o->svg, strerror(errno));
            rc = CLI_FAIL;
            goto done;
        }
        char title[256];
        snprintf(title, sizeof title, "LAT scan: record %zu of %s (%d tokens)", o->index, o->records, (int)T);
        bool ok = steer_svg_heatmap(f, title, "token of the aligner's input (chat template included)",
                                    "block output (stream)", (const char *const *)rlabels, n_rows,
                                    (const char *const *)labels, T, z, 2.5, "z per block");
        if (fclose(f) || !ok) {
            fprintf(stderr, "salign steer scan: cannot write %s\n", o->svg);
            rc = CLI_FAIL;
        }
        f = NULL;
    }
    if (!rc) printf("scanned record %zu: %d tokens x %d blocks\n", o->index, (int)T, (int)n_rows);
done:
    if (f) fclose(f);
    if (labels)
        for (int32_t t = 0; t < (int32_t)n_ids; t++) free(labels[t]);
    if (rlabels)
        for (int32_t r = 0; r < n_rows; r++) free(rlabels[r]);
    free(labels);
    free(rlabels);
    free(rows);
    free(proj);
    free(z);
    free(buf);
    free(ids);
    sa_ctx_free(ctx);
    sa_pipeline_free(pl);
    aligner_free(&a);
    return rc;
}

/* ---- apply and sweep ---- */

/* The aligner's revision of record r (res->answer), as `salign eval aligner` asks it. */
static enum sa_status revise(struct sa_pipeline *pl, const struct sa_record *r, struct sa_pipeline_result *res) {
    return r->kind == SA_RECORD_SENTENCE ? sa_pipeline_revise_sentence(pl, r->question, r->prefix, r->last, res)
                                         : sa_pipeline_revise_answer(pl, r->question, r->answer, NULL, res);
}

static int steer_apply(const struct steer_opts *o) {
    if (!o->vec) return cli_usage_error("steer", "apply: missing --vec VEC.gguf");
    if (isnan(o->coef)) return cli_usage_error("steer", "apply: missing --coef C");
    struct aligner a;
    int rc = aligner_load(o, &a);
    struct sa_pipeline *pl = NULL;
    if (rc) goto done;
    if (o->index >= a.recs.n) {
        fprintf(stderr, "salign steer apply: --index %zu: %s has %zu records\n", o->index, o->records, a.recs.n);
        rc = CLI_FAIL;
        goto done;
    }
    if ((rc = aligner_pipeline(o, &a, a.vec, o->coef, &pl))) goto done;
    const struct sa_record *r = &a.recs.items[o->index];
    struct sa_pipeline_result res;
    if (revise(pl, r, &res)) {
        rc = cli_fail("aligner");
    } else {
        char *orig = strip(r->kind == SA_RECORD_SENTENCE ? r->last : r->answer);
        double ratio = NAN;
        if (!orig || sa_levenshtein_ratio(orig, strlen(orig), res.answer, res.len, &ratio)) rc = cli_fail("ratio");
        else if (o->json) {
            printf("{\"index\":%zu,\"coef\":%.9g,\"original\":", o->index, o->coef);
            cJSON *js = cJSON_CreateString(orig), *jr = cJSON_CreateString(res.answer);
            char *s1 = js ? cJSON_PrintUnformatted(js) : NULL, *s2 = jr ? cJSON_PrintUnformatted(jr) : NULL;
            printf("%s,\"revision\":%s,\"ratio\":%.9g}\n", s1 ? s1 : "null", s2 ? s2 : "null", ratio);
            free(s1);
            free(s2);
            cJSON_Delete(js);
            cJSON_Delete(jr);
        } else {
            printf("%s\n", res.answer);
            if (isatty(1)) fprintf(stderr, "(coef %g; Levenshtein ratio to the original %.4f)\n", o->coef, ratio);
        }
        free(orig);
    }
    sa_pipeline_result_free(&res);
done:
    sa_pipeline_free(pl);
    aligner_free(&a);
    return rc;
}

static int steer_sweep(const struct steer_opts *o) {
    if (!o->vec) return cli_usage_error("steer", "sweep: missing --vec VEC.gguf");
    if (!o->svg && !o->csv) return cli_usage_error("steer", "sweep: give --svg FILE and/or --csv FILE");
    struct aligner a;
    int rc = aligner_load(o, &a);
    struct sa_pipeline *pl = NULL;
    double *ratios = NULL, mean[MAX_COEFS], lo[MAX_COEFS], hi[MAX_COEFS];
    size_t changed[MAX_COEFS] = {0};
    FILE *f = NULL, *det = NULL;
    if (rc) goto done;
    const size_t n = o->max_records && o->max_records < a.recs.n ? o->max_records : a.recs.n;
    if (!(ratios = malloc(sizeof(double) * n))) {
        rc = cli_fail("out of memory");
        goto done;
    }
    if (o->details && !(det = fopen(o->details, "w"))) {
        fprintf(stderr, "salign steer sweep: cannot open %s: %s\n", o->details, strerror(errno));
        rc = CLI_FAIL;
        goto done;
    }
    for (size_t c = 0; c < o->n_cv && !rc; c++) {
        /* a pipeline per coefficient: the cached K/V rows keep the steering they were made with */
        if ((rc = aligner_pipeline(o, &a, a.vec, o->cv[c], &pl))) break;
        for (size_t i = 0; i < n && !rc; i++) {
            const struct sa_record *r = &a.recs.items[i];
            struct sa_pipeline_result res;
            if (revise(pl, r, &res)) {
                fprintf(stderr, "salign steer sweep: record %zu: ", i);
                rc = cli_fail(NULL);
                sa_pipeline_result_free(&res);
                break;
            }
            char *orig = strip(r->kind == SA_RECORD_SENTENCE ? r->last : r->answer);
            if (!orig || sa_levenshtein_ratio(orig, strlen(orig), res.answer, res.len, &ratios[i])) rc = cli_fail("ratio");
            else changed[c] += strcmp(orig, res.answer) != 0;
            if (!rc && det) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddNumberToObject(j, "coef", o->cv[c]);
                cJSON_AddNumberToObject(j, "index", (double)i);
                cJSON_AddStringToObject(j, "original", orig);
                cJSON_AddStringToObject(j, "revision", res.answer);
                cJSON_AddNumberToObject(j, "ratio", ratios[i]);
                char *line = cJSON_PrintUnformatted(j);
                if (!line || fprintf(det, "%s\n", line) < 0) rc = CLI_FAIL;
                free(line);
                cJSON_Delete(j);
            }
            free(orig);
            sa_pipeline_result_free(&res);
            if (isatty(2)) fprintf(stderr, "\r[coef %g: %zu/%zu]", o->cv[c], i + 1, n);
        }
        sa_pipeline_free(pl);
        pl = NULL;
        if (rc) break;
        double s = 0;
        for (size_t i = 0; i < n; i++) s += ratios[i];
        mean[c] = s / (double)n;
        if (n >= 2) {
            if (sa_eval_bootstrap_mean(ratios, n, 2000, 0, 0.95, &lo[c], &hi[c])) rc = cli_fail("bootstrap");
        } else {
            lo[c] = hi[c] = NAN;
        }
        if (isatty(2)) fprintf(stderr, "\n");
    }
    if (det && fclose(det) && !rc) rc = CLI_FAIL;
    det = NULL;
    if (rc == CLI_FAIL && o->details) fprintf(stderr, "salign steer sweep: (details %s)\n", o->details);
    if (rc) goto done;
    if (o->csv) {
        if (!(f = fopen(o->csv, "w"))) {
            fprintf(stderr, "salign steer sweep: cannot open %s: %s\n", o->csv, strerror(errno));
            rc = CLI_FAIL;
            goto done;
        }
        fprintf(f, "coef,n,mean_ratio,ci95_lo,ci95_hi,changed\n");
        for (size_t c = 0; c < o->n_cv; c++) {
            fprintf(f, "%.9g,%zu,", o->cv[c], n);
            csv_num(f, mean[c]);
            fputc(',', f);
            csv_num(f, lo[c]);
            fputc(',', f);
            csv_num(f, hi[c]);
            fprintf(f, ",%zu\n", changed[c]);
        }
        const bool bad = ferror(f) != 0;
        if (fclose(f) || bad) {
            fprintf(stderr, "salign steer sweep: cannot write %s\n", o->csv);
            rc = CLI_FAIL;
        }
        f = NULL;
        if (rc) goto done;
    }
    if (o->svg) {
        if (!(f = fopen(o->svg, "w"))) {
            fprintf(stderr, "salign steer sweep: cannot open %s: %s\n", o->svg, strerror(errno));
            rc = CLI_FAIL;
            goto done;
        }
        char title[256];
        snprintf(title, sizeof title, "Steering the aligner: %zu records of %s", n, o->records);
        bool ok = steer_svg_lines(f, title, "steering coefficient", "mean Levenshtein ratio (original, revision)",
                                  o->cv, mean, lo, hi, (int32_t)o->n_cv);
        if (fclose(f) || !ok) {
            fprintf(stderr, "salign steer sweep: cannot write %s\n", o->svg);
            rc = CLI_FAIL;
        }
        f = NULL;
    }
    if (!rc) {
        printf("%zu records; mean Levenshtein ratio (original, revision) with a 95%% bootstrap interval\n", n);
        for (size_t c = 0; c < o->n_cv; c++)
            printf("coef %8g  ratio %.4f [%.4f, %.4f]  changed %zu/%zu\n", o->cv[c], mean[c], lo[c], hi[c], changed[c], n);
    }
done:
    if (f) fclose(f);
    if (det) fclose(det);
    sa_pipeline_free(pl);
    free(ratios);
    aligner_free(&a);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "Usage: salign steer COMMAND [OPTIONS]\n\n"
               "The aligner's correction representation (Zou et al. 2023, LAT; docs/STEER.md).\n\nCommands:\n"
               "  extract   the direction per layer from correction records, as a control vector\n"
               "  scan      the LAT scan of one aligner input: SVG heat map and CSV\n"
               "  apply     the aligner's revision of one record, steered by the vector times C\n"
               "  sweep     mean Levenshtein ratio of the revisions per coefficient: SVG and CSV\n\n"
               "Run 'salign steer COMMAND --help' for a command's options.\n");
}

int cmd_steer(int argc, char **argv) {
    int rc;
    const struct cli_cmd *sub = cli_subcommand("steer", cli_cmds_steer, argc, argv, usage, &rc);
    if (!sub) return rc;
    struct steer_opts o = {.coef = NAN};
    rc = cli_parse(sub, argc - 1, argv + 1, &o, NULL);
    if (rc) return rc == CLI_PARSE_HELP ? CLI_OK : rc;
    const char *name = sub->name + strlen("steer ");
    if (!o.model) return cli_usage_error("steer", "%s: missing --model M", name);
    if (!o.records) return cli_usage_error("steer", "%s: missing --records FILE", name);
    if (sub->mask == STEER_SWEEP) {
        if (!parse_coefs(o.coefs ? o.coefs : "-4,-2,0,2,4", o.cv, &o.n_cv))
            return cli_usage_error("steer", "sweep: bad --coefs '%s': expected a comma list of at most %d finite "
                                            "numbers, e.g. -4,-2,0,2,4", o.coefs, MAX_COEFS);
    }
    switch (sub->mask) {
    case STEER_EXTRACT: return steer_extract(&o);
    case STEER_SCAN: return steer_scan(&o);
    case STEER_APPLY: return steer_apply(&o);
    default: return steer_sweep(&o);
    }
}
