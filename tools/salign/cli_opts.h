/* cli_opts.h: the one option parser of the salign CLI, table-driven (curl's tool_getparam.c).
 * Each command lists its options once, in a table of struct cli_opt: long and short name,
 * the kind of value (flag, integer or number with its range, string, name from a list, or a
 * custom parser), where the value goes (an offset into the command's options struct), and
 * the help text. cli_parse reads argv with it; cli_help prints `--help` from the same table.
 *
 * Accepted forms: --name VALUE, --name=VALUE, -s VALUE, -sVALUE, grouped short flags (-qh),
 * `--` (the rest are operands), `-` (an operand). A later option overrides an earlier one.
 * Long names must be given in full (no abbreviations). docs/internals/cli.md: how to add an
 * option, and the error messages. */
#ifndef SA_CLI_OPTS_H
#define SA_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cli_opt_kind {
    CLI_OPT_HELP,   /* -h, --help: prints the help, cli_parse returns CLI_PARSE_HELP */
    CLI_OPT_FLAG,   /* no value: stores true in a bool */
    CLI_OPT_UNSET,  /* no value: stores false in a bool (--no-...) */
    CLI_OPT_STR,    /* const char *: the argument itself (it lives as long as argv) */
    CLI_OPT_INT,    /* a signed integer field (4 or 8 bytes), decimal (or 0x hex), in [imin, imax] */
    CLI_OPT_UINT,   /* an unsigned integer field (4 or 8 bytes), decimal (or 0x hex), in [umin, umax] */
    CLI_OPT_FLOAT,  /* a float or double field, finite unless a bound is infinite, in lo..hi */
    CLI_OPT_ENUM,   /* an int-sized field: values[i] (i when values is NULL) for the name names[i] */
    CLI_OPT_CUSTOM, /* parse(value, field) decides; expect says what it accepts */
};

/* Open ends of a CLI_OPT_FLOAT range. */
enum { CLI_LO_OPEN = 1, CLI_HI_OPEN = 2 };

struct cli_opt {
    const char *name;       /* long name without "--"; NULL: short only */
    char short_name;        /* 0: long only */
    enum cli_opt_kind kind;
    size_t offset;          /* of the field in the command's options struct (CLI_AT) */
    size_t size;            /* of that field */
    const char *arg;        /* the value's name in the help ("N", "FILE"); NULL for flags */
    const char *help;       /* help text; '\n' starts a new line in the same column */
    unsigned mask;          /* the commands of a shared table that accept it (cli_cmd.mask); 0: all */
    int64_t imin, imax;     /* CLI_OPT_INT range, inclusive */
    uint64_t umin, umax;    /* CLI_OPT_UINT range, inclusive */
    double lo, hi;          /* CLI_OPT_FLOAT range; inclusive unless `open` says otherwise */
    unsigned open;          /* CLI_LO_OPEN | CLI_HI_OPEN */
    const char *const *names; /* CLI_OPT_ENUM: NULL-terminated */
    const int *values;      /* CLI_OPT_ENUM: NULL: the index */
    bool (*parse)(const char *value, void *field); /* CLI_OPT_CUSTOM: false for a bad value */
    const char *expect;     /* CLI_OPT_CUSTOM: what a good value is, for the error message */
    const char *section;    /* a heading printed above this entry in the help ("Decoding") */
};

/* The offset and size of field F of struct type T, for a table entry. */
#define CLI_AT(T, F) offsetof(T, F), sizeof(((T *)0)->F)
/* The -h, --help entry. */
#define CLI_HELP_ENTRY {"help", 'h', CLI_OPT_HELP, 0, 0, .help = "this help"}

/* A command: its name for messages ("data build": "salign data build: ..."), its table and
 * help text. */
struct cli_cmd {
    const char *name;
    const struct cli_opt *opts; /* the table */
    size_t n_opts;
    unsigned mask;              /* accepts the entries whose mask is 0 or has a bit of this; 0: all */
    bool operands;              /* takes operands (MODEL, FILE...); else any other word is an error */
    bool stop_at_operand;       /* options end at the first operand (the rest are operands) */
    const char *usage;          /* printed before the options: "Usage: ...\n\ndescription\n" */
    const char *epilog;         /* printed after them (examples, exit status); may be NULL */
};

/* What cli_parse returns besides CLI_OK (0) and CLI_USAGE (2, the message printed). */
enum { CLI_PARSE_HELP = -1 };

/* Parses argv[1..argc) with cmd's table into the struct at `opts` (fields not given keep
 * their values: set the defaults before). Operands are moved, in their order, to the end
 * of argv; *n_operands (may be NULL when cmd takes none) says how many. Returns 0,
 * CLI_PARSE_HELP (the help is printed on stdout: the command returns CLI_OK) or CLI_USAGE
 * (a message naming the option and what it expects is printed on stderr). */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, void *opts, int *n_operands);

/* Prints cmd's usage, its options (the entries cmd accepts) and its epilog. */
void cli_help(FILE *f, const struct cli_cmd *cmd);
/* Prints only the option lines of cmd, each indented by `indent` spaces. */
void cli_help_options(FILE *f, const struct cli_cmd *cmd, int indent);

/* A CLI_OPT_CUSTOM parser for a uint64_t byte count: N, or N with a suffix K, M or G
 * (binary multiples, either case). */
bool cli_value_bytes(const char *s, void *field);

/* The values of --kv-type (sa_ctx_params.kv_type), for a CLI_OPT_ENUM entry over an
 * enum sa_dtype field: CLI_KV_TYPE_ENTRY(field offset, help). */
extern const char *const cli_kv_type_names[];
extern const int cli_kv_type_values[];
#define CLI_KV_TYPE_ENTRY(off)                                                                          \
    {"kv-type", 0, CLI_OPT_ENUM, off, .names = cli_kv_type_names, .values = cli_kv_type_values,         \
     .arg = "f32|f16", .help = "KV cache element type (default f32; f16: half the memory and\nattention reads)"}

/* ---- entries shared by the pipeline commands (`salign align`, `salign serve`) ----
 * T is the command's options struct: it has the const char * fields upstream, upstream_model,
 * upstream_template, upstream_tokenizer and upstream_extra, and `struct sa_pipeline_params pp`. */

/* The upstream, local or remote, and the remote one's settings (section "Models"). */
#define CLI_UPSTREAM_ENTRIES(T)                                                                                \
    {"upstream", 0, CLI_OPT_STR, CLI_AT(T, upstream), .section = "Models", .arg = "M|URL",                     \
     .help = "local model (path or cached name) or an OpenAI-compatible\nserver, http://host:port/v1 (key: "   \
             "$SALIGN_API_KEY or\n$OPENAI_API_KEY)"},                                                          \
    {"upstream-model", 0, CLI_OPT_STR, CLI_AT(T, upstream_model), .arg = "NAME",                               \
     .help = "the server's model name (default: its only model)"},                                             \
    {"upstream-template", 0, CLI_OPT_STR, CLI_AT(T, upstream_template), .arg = "T",                            \
     .help = "remote: chat format (chatml, gemma, llama3) or a Jinja\ntemplate file of the upstream model"},   \
    {"upstream-tokenizer", 0, CLI_OPT_STR, CLI_AT(T, upstream_tokenizer), .arg = "M",                          \
     .help = "remote: a local copy of the upstream model (GGUF): its\nchat template and tokenizer (token "     \
             "counts)"},                                                                                       \
    {"upstream-extra", 0, CLI_OPT_STR, CLI_AT(T, upstream_extra), .arg = "JSON",                               \
     .help = "remote: fields added to each request, e.g.\n'{\"repeat_penalty\": 1}' (llama.cpp servers "      \
             "penalise\nrepeats by default, even when greedy)"}

/* The loop's limits on one sentence and one revision, and the unit of a sentence. */
extern const char *const cli_unit_names[]; /* enum sa_segment_unit */
#define CLI_SENTENCE_ENTRIES(T)                                                                                \
    {"max-sentence-tokens", 0, CLI_OPT_INT, CLI_AT(T, pp.max_sentence_tokens), .imin = 1, .imax = 1 << 24,     \
     .arg = "N", .help = "most upstream tokens for one sentence (default 256)"},                                \
    {"max-aligner-tokens", 0, CLI_OPT_INT, CLI_AT(T, pp.max_aligner_tokens), .imin = 0, .imax = 1 << 24,       \
     .arg = "N", .help = "most aligner tokens per revision (default: 2 x y1 + 32)"},                            \
    {"unit", 0, CLI_OPT_ENUM, CLI_AT(T, pp.unit), .names = cli_unit_names, .arg = "sentence|line",             \
     .help = "what the upstream is cut at (default sentence)"}

/* The local models' threads, KV cache type and context size. */
#define CLI_LOCAL_MODEL_ENTRIES(T)                                                                             \
    {"threads", 't', CLI_OPT_INT, CLI_AT(T, pp.n_threads), .imin = 0, .imax = 1024, .arg = "N",                \
     .help = "compute threads (default: all cores)"},                                                          \
    CLI_KV_TYPE_ENTRY(CLI_AT(T, pp.kv_type)),                                                                  \
    {"ctx-size", 'c', CLI_OPT_INT, CLI_AT(T, pp.n_ctx), .imin = 0, .imax = 1 << 24, .arg = "N",                \
     .help = "context size of each local model (default 4096)"}

/* The edit checks (sa_pipeline_params.edit_check, an unsigned of SA_PIPELINE_EDIT_CHECK_* bits):
 * a comma list of arith, format, cut, all (arith and format), none. align, serve and eval aligner. */
bool cli_parse_edit_check(const char *value, void *field);
/* The bits as that list ("arith,format"; "none" for 0) in buf. */
const char *cli_edit_check_str(unsigned checks, char *buf, size_t size);
#define CLI_EDIT_CHECK_ENTRY(T, F)                                                                             \
    {"edit-check", 0, CLI_OPT_CUSTOM, CLI_AT(T, F), .parse = cli_parse_edit_check,                             \
     .expect = "a comma list of arith, format, cut, all, none", .arg = "LIST",                                 \
     .help = "refuse edits by rules, whatever their margin (y1 is\nemitted): arith, an edit that writes a "     \
             "false equation\ny1 did not (\"17 + 17 = 43\"); format, one that writes\nthe aligner's input "    \
             "markers (\"##Your_Revision:\"); cut,\none that only deletes (y2 = y1 less some of its\n"         \
             "text; not measured yet); all (arith and format);\nnone (default)"}
/* --calculator (sa_pipeline_params.calculator), for the commands that run aligner rounds. */
#define CLI_CALCULATOR_ENTRY(T, F)                                                                             \
    {"calculator", 0, CLI_OPT_FLAG, CLI_AT(T, F),                                                             \
     .help = "rewrite the written result of every false equation in\nthe emitted sentence with the true value "   \
             "(\"= 794\"\n-> \"= 694\"; a tool, not in the paper; docs/PIPELINE.md)"}

/* Whether cmd accepts the entry o. */
bool cli_accepts(const struct cli_cmd *cmd, const struct cli_opt *o);

#endif
