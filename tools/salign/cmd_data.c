/* cmd_data.c: `salign data`: build and handle the aligner's training records.
 *   from-gsm8k  sentence records (copy + rule-based rewrites) from GSM8K solutions
 *   split       train/dev split by question
 *   check       validate a record file and count its records */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/records.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
            "      --json-array          write a JSON array instead of JSONL\n"
            "  split --input FILE --dev-fraction F --train OUT --dev OUT [--seed S]\n"
            "      split records by question (no question in both files); seed default 0\n"
            "  check --input FILE [--kind sentence|answer]\n"
            "      validate a record file (JSONL or JSON array) and count its records\n\n"
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
    OPT_INPUT = 256, OPT_OUT, OPT_SEED, OPT_RATIO, OPT_KEEP_CALC, OPT_NO_ANSWER_STEP, OPT_SOLUTION,
    OPT_JSON_ARRAY, OPT_DEV_FRACTION, OPT_TRAIN, OPT_DEV, OPT_KIND,
};

static const struct option opts[] = {
    {"input", required_argument, NULL, OPT_INPUT},
    {"out", required_argument, NULL, OPT_OUT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"rewrite-ratio", required_argument, NULL, OPT_RATIO},
    {"keep-calc", no_argument, NULL, OPT_KEEP_CALC},
    {"no-answer-step", no_argument, NULL, OPT_NO_ANSWER_STEP},
    {"solution", no_argument, NULL, OPT_SOLUTION},
    {"json-array", no_argument, NULL, OPT_JSON_ARRAY},
    {"dev-fraction", required_argument, NULL, OPT_DEV_FRACTION},
    {"train", required_argument, NULL, OPT_TRAIN},
    {"dev", required_argument, NULL, OPT_DEV},
    {"kind", required_argument, NULL, OPT_KIND},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Options each command accepts (others are usage errors). */
static bool allowed(const char *cmd, int opt) {
    if (opt == OPT_INPUT) return true;
    if (!strcmp(cmd, "from-gsm8k"))
        return opt == OPT_OUT || opt == OPT_SEED || opt == OPT_RATIO || opt == OPT_KEEP_CALC ||
               opt == OPT_NO_ANSWER_STEP || opt == OPT_SOLUTION || opt == OPT_JSON_ARRAY;
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
        fprintf(stderr, "salign data: %zu records from %zu problems:", r.n, st.n_problems);
        for (int k = 0; k < SA_GSM8K_N_RULES; k++)
            fprintf(stderr, " %s %zu%s", sa_gsm8k_rule_str((enum sa_gsm8k_rule)k), st.n_by_rule[k],
                    k + 1 < SA_GSM8K_N_RULES ? "," : "\n");
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
    if (strcmp(cmd, "from-gsm8k") && strcmp(cmd, "split") && strcmp(cmd, "check"))
        return cli_usage_error("data", "unknown command '%s'", cmd);
    struct sa_gsm8k_params p = sa_gsm8k_default_params();
    const char *input = NULL, *out = NULL, *train = NULL, *dev = NULL;
    double frac = -1;
    uint64_t seed = 0;
    enum sa_records_format fmt = SA_RECORDS_JSONL;
    enum sa_record_kind kind = SA_RECORD_ANY;
    int c;
    optind = 1;
    opterr = 0;
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
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
        default: return cli_usage_error("data", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("data", "unexpected argument '%s'", argv[optind]);
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
