/* cmd_convert.c: `salign convert MODEL --to gguf|safetensors [--type T] -o OUT`, a thin
 * main over sa_convert (sa/convert.h). */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"

#include <stdlib.h>
#include <string.h>

static void log_line(void *user, const char *msg) {
    if (!*(const bool *)user) fprintf(stderr, "salign convert: %s\n", msg);
}

static bool has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

struct convert_opts {
    const char *to, *type, *out;
    bool quiet;
    struct sa_convert_params p;
};

#define O(f) CLI_AT(struct convert_opts, f)
static const struct cli_opt convert_opts[] = {
    {"to", 't', CLI_OPT_STR, O(to), .arg = "FORMAT",
     .help = "gguf (OUT is a file) or safetensors (OUT is a directory);\ndefault: gguf when OUT ends in .gguf"},
    {"type", 'T', CLI_OPT_STR, O(type), .arg = "TYPE",
     .help = "f32, f16, bf16 or q8_0 (GGUF only); default f16 for GGUF,\nbf16 for safetensors. GGUF keeps 1-D "
             "tensors in f32; q8_0\nfalls back to f16 for rows that are not a multiple of 32"},
    {"output", 'o', CLI_OPT_STR, O(out), .arg = "OUT", .help = "output file or directory"},
    {"shard-size", 0, CLI_OPT_CUSTOM, O(p.max_shard_bytes), .parse = cli_value_bytes,
     .expect = "a byte count, with an optional suffix K, M or G", .arg = "SIZE",
     .help = "safetensors: shard above SIZE bytes (suffix K, M, G)"},
    {"tokenizer-from", 0, CLI_OPT_STR, O(p.tokenizer_gguf), .arg = "G",
     .help = "safetensors -> GGUF: copy the tokenizer of GGUF file G"},
    {"quiet", 'q', CLI_OPT_FLAG, O(quiet), .help = "no progress notes"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_convert = {
    .name = "convert",
    .opts = convert_opts,
    .n_opts = sizeof convert_opts / sizeof convert_opts[0],
    .operands = true,
    .usage = "Usage: salign convert MODEL [--to gguf|safetensors] [--type TYPE] -o OUT\n\n"
             "Re-encodes a model. MODEL is a .gguf file or a Hugging Face safetensors directory\n"
             "(config.json + model.safetensors or model.safetensors.index.json).\n\n",
    .epilog = "Examples:\n"
              "  salign convert model.Q4_1.gguf --type q8_0 -o model.q8_0.gguf\n"
              "  salign convert model.gguf --to safetensors --type f32 -o model-hf/\n"
              "  salign convert model-hf/ --to gguf --tokenizer-from model.gguf -o model.f16.gguf\n",
};

int cmd_convert(int argc, char **argv) {
    struct convert_opts o = {.p = sa_convert_default_params()};
    int n_ops = 0;
    int prc = cli_parse(&cli_cmd_convert, argc, argv, &o, &n_ops);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    struct sa_convert_params p = o.p;
    const char *to = o.to, *type = o.type, *out = o.out;
    bool quiet = o.quiet;
    if (n_ops == 0) return cli_usage_error("convert", "missing MODEL");
    if (n_ops > 1) return cli_usage_error("convert", "unexpected argument '%s'", argv[argc - n_ops + 1]);
    const char *in = argv[argc - n_ops];
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
