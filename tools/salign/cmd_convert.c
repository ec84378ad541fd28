/* cmd_convert.c: `salign convert MODEL --to gguf|safetensors [--type T] -o OUT`, a thin
 * main over sa_convert (sa/convert.h). */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "Usage: salign convert MODEL [--to gguf|safetensors] [--type TYPE] -o OUT\n\n"
            "Re-encodes a model. MODEL is a .gguf file or a Hugging Face safetensors directory\n"
            "(config.json + model.safetensors or model.safetensors.index.json).\n\n"
            "  -t, --to FORMAT         gguf (OUT is a file) or safetensors (OUT is a directory);\n"
            "                          default: gguf when OUT ends in .gguf\n"
            "  -T, --type TYPE         f32, f16, bf16 or q8_0 (GGUF only); default f16 for GGUF,\n"
            "                          bf16 for safetensors. GGUF keeps 1-D tensors in f32; q8_0\n"
            "                          falls back to f16 for rows that are not a multiple of 32\n"
            "  -o, --output OUT        output file or directory\n"
            "      --shard-size SIZE   safetensors: shard above SIZE bytes (suffix K, M, G)\n"
            "      --tokenizer-from G  safetensors -> GGUF: copy the tokenizer of GGUF file G\n"
            "  -q, --quiet             no progress notes\n"
            "  -h, --help              this help\n\n"
            "Examples:\n"
            "  salign convert model.Q4_1.gguf --type q8_0 -o model.q8_0.gguf\n"
            "  salign convert model.gguf --to safetensors --type f32 -o model-hf/\n"
            "  salign convert model-hf/ --to gguf --tokenizer-from model.gguf -o model.f16.gguf\n");
}

static void log_line(void *user, const char *msg) {
    if (!*(const bool *)user) fprintf(stderr, "salign convert: %s\n", msg);
}

static bool parse_size(const char *s, uint64_t *out) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || s[0] == '-') return false;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm') mul = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g') mul = 1ull << 30, end++;
    if (*end || v > UINT64_MAX / mul) return false;
    *out = v * mul;
    return true;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

int cmd_convert(int argc, char **argv) {
    enum { OPT_SHARD = 256, OPT_TOKENIZER };
    static const struct option opts[] = {
        {"to", required_argument, NULL, 't'},         {"type", required_argument, NULL, 'T'},
        {"output", required_argument, NULL, 'o'},     {"shard-size", required_argument, NULL, OPT_SHARD},
        {"tokenizer-from", required_argument, NULL, OPT_TOKENIZER},
        {"quiet", no_argument, NULL, 'q'},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sa_convert_params p = sa_convert_default_params();
    const char *to = NULL, *type = NULL, *out = NULL;
    bool quiet = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:T:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 'T': type = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return CLI_OK;
        case OPT_SHARD:
            if (!parse_size(optarg, &p.max_shard_bytes)) return cli_usage_error("convert", "bad --shard-size '%s'", optarg);
            break;
        case OPT_TOKENIZER: p.tokenizer_gguf = optarg; break;
        case ':':
        default: {
            /* a long option is named as typed; a short one (maybe in a group like -qx) by optopt */
            const char *arg = argv[optind - 1];
            char shorts[3] = {'-', (char)optopt, 0};
            const char *what = !strncmp(arg, "--", 2) || !optopt ? arg : shorts;
            return c == ':' ? cli_usage_error("convert", "option '%s' needs a value", what)
                            : cli_usage_error("convert", "unknown option '%s'", what);
        }
        }
    }
    if (optind >= argc) return cli_usage_error("convert", "missing MODEL");
    if (optind + 1 < argc) return cli_usage_error("convert", "unexpected argument '%s'", argv[optind + 1]);
    const char *in = argv[optind];
    if (!out) return cli_usage_error("convert", "missing -o OUT");
    if (!to) {
        if (!has_suffix(out, ".gguf")) return cli_usage_error("convert", "say --to gguf or --to safetensors");
        to = "gguf";
    }
    if (!strcmp(to, "gguf")) p.to = SA_CONVERT_GGUF;
    else if (!strcmp(to, "safetensors")) p.to = SA_CONVERT_SAFETENSORS;
    else return cli_usage_error("convert", "unknown format '%s' (gguf, safetensors)", to);
    p.type = p.to == SA_CONVERT_GGUF ? SA_DTYPE_F16 : SA_DTYPE_BF16;
    if (type) {
        enum sa_dtype t;
        if (sa_dtype_from_name(type, &t) != SA_STATUS_OK || (t != SA_DTYPE_F32 && t != SA_DTYPE_F16 && t != SA_DTYPE_BF16 && t != SA_DTYPE_Q8_0))
            return cli_usage_error("convert", "unknown type '%s' (f32, f16, bf16, q8_0)", type);
        if (t == SA_DTYPE_Q8_0 && p.to == SA_CONVERT_SAFETENSORS)
            return cli_usage_error("convert", "safetensors holds f32, f16 or bf16, not q8_0");
        p.type = t;
    }
    p.log = log_line;
    p.log_user = &quiet;
    char *in_path = NULL; /* a known name resolves to its cached file */
    if (sa_hub_resolve(in, NULL, &in_path)) return cli_fail(NULL);
    enum sa_status st = sa_convert(in_path, out, &p);
    free(in_path);
    if (st) return cli_fail("convert");
    if (!quiet) fprintf(stderr, "salign convert: wrote %s (%s, %s)\n", out, to, sa_dtype_name(p.type));
    return CLI_OK;
}
