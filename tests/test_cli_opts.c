/* test_cli_opts.c: the CLI's table-driven option parser (tools/salign/cli_opts.c): each kind
 * of value and its range, the forms of an option (--name VALUE, --name=VALUE, -sVALUE, -qv),
 * missing values, unknown options, repeats, operands, shared tables with masks, and --help;
 * then every command's table: unique names, and --help listing each entry it accepts. */
#define _GNU_SOURCE
#include "harness.h"

#include "cli.h" /* tools/salign */
#include "sa/pipeline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- a test table ---- */

struct topts {
    bool flag, on;
    const char *str;
    int32_t i32;
    int64_t i64;
    uint64_t u64;
    uint32_t u32;
    float f;
    double d;
    int color;
    int custom;
};

static bool parse_even(const char *v, void *field) {
    int x = atoi(v);
    if (x % 2) return false;
    *(int *)field = x;
    return true;
}

static const char *const color_names[] = {"red", "green", "blue", NULL};
static const int color_values[] = {10, 20, 30};

enum { M_ONE = 1, M_TWO = 2 };

#define O(f) CLI_AT(struct topts, f)
static const struct cli_opt topts_table[] = {
    {"flag", 'q', CLI_OPT_FLAG, O(flag), .help = "a flag"},
    {"no-on", 0, CLI_OPT_UNSET, O(on), .help = "clears on"},
    {"str", 's', CLI_OPT_STR, O(str), .arg = "TEXT", .help = "a string\nsecond line"},
    {"i32", 'n', CLI_OPT_INT, O(i32), .imin = -5, .imax = 100, .arg = "N", .help = "an int32 in [-5, 100]"},
    {"i64", 0, CLI_OPT_INT, O(i64), .imin = 1, .imax = INT64_MAX, .arg = "N", .help = "an int64 >= 1"},
    {"u64", 0, CLI_OPT_UINT, O(u64), .umax = UINT64_MAX, .arg = "S", .help = "a seed"},
    {"u32", 0, CLI_OPT_UINT, O(u32), .umin = 2, .umax = 10, .mask = M_TWO, .arg = "N", .help = "two's own"},
    {"float", 'f', CLI_OPT_FLOAT, O(f), .lo = 0, .hi = 1, .open = CLI_LO_OPEN, .arg = "P", .help = "(0, 1]"},
    {"double", 0, CLI_OPT_FLOAT, O(d), .lo = -INFINITY, .hi = INFINITY, .arg = "X", .help = "any number",
     .mask = M_ONE},
    {"color", 0, CLI_OPT_ENUM, O(color), .names = color_names, .values = color_values, .arg = "C",
     .help = "a color"},
    {"even", 0, CLI_OPT_CUSTOM, O(custom), .parse = parse_even, .expect = "an even number", .arg = "E",
     .help = "custom"},
    {"verbose", 'v', CLI_OPT_FLAG, O(on), .help = "sets on"},
    CLI_HELP_ENTRY,
};
#undef O

static const struct cli_cmd tcmd = {
    .name = "test", .opts = topts_table, .n_opts = sizeof topts_table / sizeof topts_table[0], .operands = true,
    .usage = "Usage: salign test [OPTIONS] FILE...\n\n"};
static const struct cli_cmd tcmd_none = {
    .name = "none", .opts = topts_table, .n_opts = sizeof topts_table / sizeof topts_table[0], .mask = M_ONE};
static const struct cli_cmd tcmd_two = {
    .name = "two", .opts = topts_table, .n_opts = sizeof topts_table / sizeof topts_table[0], .mask = M_TWO};
static const struct cli_cmd tcmd_stop = {
    .name = "stop", .opts = topts_table, .n_opts = sizeof topts_table / sizeof topts_table[0], .operands = true,
    .stop_at_operand = true};

/* ---- running the parser with stdout and stderr captured ---- */

static char g_err[4096], g_out[16384];
static int g_nops;
static char *g_argv[32];

static void read_back(FILE *f, char *buf, size_t cap) {
    fflush(f);
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
}

/* Parses the NULL-terminated words after the command name into *o (defaults: zero, on). */
static int parse_words(const struct cli_cmd *cmd, struct topts *o, const char *const *words) {
    memset(o, 0, sizeof *o);
    o->on = true;
    int argc = 0;
    g_argv[argc++] = (char *)"cmd";
    for (; words[argc - 1]; argc++) g_argv[argc] = (char *)words[argc - 1];
    g_argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    FILE *err = tmpfile(), *out = tmpfile();
    int saved_err = dup(2), saved_out = dup(1);
    dup2(fileno(err), 2);
    dup2(fileno(out), 1);
    g_nops = -1;
    int rc = cli_parse(cmd, argc, g_argv, o, &g_nops);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_err, 2);
    dup2(saved_out, 1);
    close(saved_err);
    close(saved_out);
    read_back(err, g_err, sizeof g_err);
    read_back(out, g_out, sizeof g_out);
    fclose(err);
    fclose(out);
    return rc;
}

#define PARSE(cmd, o, ...) parse_words(cmd, o, (const char *const[]){__VA_ARGS__, NULL})
#define HAS(hay, needle) CHECK_MSG(strstr(hay, needle), "'%s' not in: %s", needle, hay)

static void test_values_and_ranges(void) {
    struct topts o;
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--i32", "-5", "--i64", "9223372036854775807", "--u64", "18446744073709551615",
                       "-f", "1", "--double", "-1e300", "--color", "blue", "--even", "4", "--str", "x y"),
                 CLI_OK);
    CHECK_EQ_INT(o.i32, -5);
    CHECK(o.i64 == INT64_MAX);
    CHECK(o.u64 == UINT64_MAX);
    CHECK(o.f == 1.0f);
    CHECK(o.d == -1e300);
    CHECK_EQ_INT(o.color, 30);
    CHECK_EQ_INT(o.custom, 4);
    CHECK_EQ_STR(o.str, "x y");
    CHECK_EQ_INT(g_nops, 0);
    CHECK_EQ_STR(g_err, "");
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--u64", "0x10"), CLI_OK);
    CHECK(o.u64 == 16);

    /* each bad value: exit 2, the option as typed, the value and what it expects */
    static const struct {
        const char *opt, *val, *want;
    } bad[] = {
        {"--i32", "101", "bad value for --i32: '101' (expected an integer in [-5, 100])"},
        {"-n", "-6", "bad value for -n: '-6' (expected an integer in [-5, 100])"},
        {"--i32", "1x", "bad value for --i32: '1x'"},
        {"--i32", "", "bad value for --i32: ''"},
        {"--i32", "99999999999999999999", "expected an integer in [-5, 100]"},
        {"--i64", "0", "bad value for --i64: '0' (expected an integer >= 1)"},
        {"--u64", "-1", "bad value for --u64: '-1' (expected an integer >= 0)"},
        {"--u64", "18446744073709551616", "bad value for --u64"},
        {"--float", "0", "bad value for --float: '0' (expected a number in (0, 1])"},
        {"--float", "1.01", "(expected a number in (0, 1])"},
        {"--float", "nan", "bad value for --float: 'nan'"},
        {"--double", "nan", "(expected a number)"},
        {"--color", "pink", "bad value for --color: 'pink' (expected one of red, green, blue)"},
        {"--even", "3", "bad value for --even: '3' (expected an even number)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(PARSE(&tcmd, &o, bad[i].opt, bad[i].val), CLI_USAGE);
        HAS(g_err, bad[i].want);
        HAS(g_err, "salign test: ");
        HAS(g_err, "Try 'salign test --help'.");
    }
}

static void test_forms(void) {
    struct topts o;
    /* --name=value, -sVALUE, -s VALUE, grouped short flags, a value starting with '-' */
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--i32=7", "-sabc", "-qv", "--no-on"), CLI_OK);
    CHECK_EQ_INT(o.i32, 7);
    CHECK_EQ_STR(o.str, "abc");
    CHECK(o.flag && !o.on); /* -v set on, --no-on cleared it after */
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-qn", "3", "--str", "-x"), CLI_OK);
    CHECK(o.flag);
    CHECK_EQ_INT(o.i32, 3);
    CHECK_EQ_STR(o.str, "-x");
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-qn4"), CLI_OK);
    CHECK_EQ_INT(o.i32, 4);
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--str="), CLI_OK);
    CHECK_EQ_STR(o.str, "");
    /* repeated: the last one wins */
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-n", "1", "--i32", "2", "--i32=3"), CLI_OK);
    CHECK_EQ_INT(o.i32, 3);
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--color", "red", "--color", "green"), CLI_OK);
    CHECK_EQ_INT(o.color, 20);
    /* a flag given a value */
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--flag=1"), CLI_USAGE);
    HAS(g_err, "option '--flag' takes no value");
}

static void test_missing_and_unknown(void) {
    struct topts o;
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--i32"), CLI_USAGE);
    HAS(g_err, "option '--i32' needs a value");
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-q", "-n"), CLI_USAGE);
    HAS(g_err, "option '-n' needs a value");
    /* a command with operands: unknown options are options */
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--bogus"), CLI_USAGE);
    HAS(g_err, "unknown option '--bogus'");
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--bogus=3"), CLI_USAGE);
    HAS(g_err, "unknown option '--bogus'");
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-x"), CLI_USAGE);
    HAS(g_err, "unknown option '-x'");
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-qx"), CLI_USAGE);
    HAS(g_err, "unknown option '-x'");
    /* no abbreviations */
    CHECK_EQ_INT(PARSE(&tcmd, &o, "--fla"), CLI_USAGE);
    HAS(g_err, "unknown option '--fla'");
    /* a command without operands: any other word is an unknown argument */
    CHECK_EQ_INT(PARSE(&tcmd_none, &o, "--bogus"), CLI_USAGE);
    HAS(g_err, "salign none: unknown argument '--bogus'");
    CHECK_EQ_INT(PARSE(&tcmd_none, &o, "extra"), CLI_USAGE);
    HAS(g_err, "unknown argument 'extra'");
    /* the entries of another command of a shared table are unknown */
    CHECK_EQ_INT(PARSE(&tcmd_none, &o, "--u32", "3"), CLI_USAGE);
    HAS(g_err, "unknown argument '--u32'");
    CHECK_EQ_INT(PARSE(&tcmd_two, &o, "--u32", "3"), CLI_OK);
    CHECK_EQ_INT(o.u32, 3);
    CHECK_EQ_INT(PARSE(&tcmd_two, &o, "--double", "3"), CLI_USAGE);
    CHECK_EQ_INT(PARSE(&tcmd_none, &o, "--double", "3", "--flag"), CLI_OK);
    CHECK(o.d == 3 && o.flag);
}

static void test_operands(void) {
    struct topts o;
    /* moved to the end of argv in their order; options around them parsed */
    CHECK_EQ_INT(PARSE(&tcmd, &o, "a", "-n", "5", "b", "-", "--flag", "c"), CLI_OK);
    CHECK_EQ_INT(g_nops, 4);
    CHECK_EQ_STR(g_argv[8 - 4], "a");
    CHECK_EQ_STR(g_argv[8 - 3], "b");
    CHECK_EQ_STR(g_argv[8 - 2], "-");
    CHECK_EQ_STR(g_argv[8 - 1], "c");
    CHECK(o.flag && o.i32 == 5);
    /* `--` ends the options */
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-q", "--", "-n", "x"), CLI_OK);
    CHECK_EQ_INT(g_nops, 2);
    CHECK_EQ_STR(g_argv[3], "-n");
    CHECK_EQ_STR(g_argv[4], "x");
    CHECK_EQ_INT(o.i32, 0);
    /* stop_at_operand: everything from the first operand on is an operand */
    CHECK_EQ_INT(PARSE(&tcmd_stop, &o, "-q", "model", "-n", "3"), CLI_OK);
    CHECK_EQ_INT(g_nops, 3);
    CHECK_EQ_STR(g_argv[2], "model");
    CHECK_EQ_STR(g_argv[3], "-n");
    CHECK_EQ_INT(o.i32, 0);
    CHECK(o.flag);
}

/* Whether help text h lists `name` as an option: followed by a space, comma or newline. */
static bool lists(const char *h, const char *name) {
    size_t n = strlen(name);
    for (const char *p = strstr(h, name); p; p = strstr(p + 1, name))
        if ((p == h || p[-1] == ' ' || p[-1] == '\n') && (p[n] == ' ' || p[n] == ',' || p[n] == '\n')) return true;
    return false;
}

static void test_help(void) {
    struct topts o;
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-q", "--help", "--bogus"), CLI_PARSE_HELP);
    CHECK_EQ_STR(g_err, "");
    HAS(g_out, "Usage: salign test [OPTIONS] FILE...\n\nOptions:\n");
    HAS(g_out, "  -s, --str TEXT  a string\n                  second line\n");
    HAS(g_out, "\n      --no-on     clears on\n");
    HAS(g_out, "\n  -h, --help      this help\n");
    CHECK_EQ_INT(PARSE(&tcmd, &o, "-h"), CLI_PARSE_HELP);
    HAS(g_out, "Usage: salign test");
    /* masks: a command's help shows the entries it accepts, only those */
    CHECK_EQ_INT(PARSE(&tcmd_two, &o, "-h"), CLI_PARSE_HELP);
    CHECK(lists(g_out, "--u32") && !lists(g_out, "--double") && lists(g_out, "--flag"));
    CHECK_EQ_INT(PARSE(&tcmd_none, &o, "--help"), CLI_PARSE_HELP);
    CHECK(!lists(g_out, "--u32") && lists(g_out, "--double"));
}

/* Every command: no name twice among the entries it accepts, and its --help (as printed by
 * `salign CMD --help`) lists each of them. */
static void check_command(const struct cli_cmd *cmd) {
    char *h = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&h, &len);
    cli_help(f, cmd);
    fclose(f);
    CHECK_MSG(strstr(h, "Usage: salign "), "%s: no usage line", cmd->name);
    bool has_help = false;
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const struct cli_opt *o = &cmd->opts[i];
        if (!cli_accepts(cmd, o)) continue;
        CHECK_MSG(o->name || o->short_name, "%s: entry %zu has no name", cmd->name, i);
        CHECK_MSG(o->help && *o->help, "%s: entry %zu has no help", cmd->name, i);
        has_help |= o->kind == CLI_OPT_HELP;
        char nm[80];
        if (o->name) {
            snprintf(nm, sizeof nm, "--%s", o->name);
            CHECK_MSG(lists(h, nm), "salign %s --help does not list %s", cmd->name, nm);
        }
        if (o->short_name) {
            snprintf(nm, sizeof nm, "-%c", o->short_name);
            CHECK_MSG(lists(h, nm), "salign %s --help does not list %s", cmd->name, nm);
        }
        for (size_t k = i + 1; k < cmd->n_opts; k++) {
            const struct cli_opt *q = &cmd->opts[k];
            if (!cli_accepts(cmd, q)) continue;
            CHECK_MSG(!o->name || !q->name || strcmp(o->name, q->name), "%s: --%s twice", cmd->name, o->name);
            CHECK_MSG(!o->short_name || o->short_name != q->short_name, "%s: -%c twice", cmd->name, o->short_name);
        }
        if (o->kind == CLI_OPT_INT) CHECK_MSG(o->imin <= o->imax && (o->size == 8 || o->imax <= INT32_MAX),
                                              "%s: --%s: bad range", cmd->name, o->name);
        if (o->kind == CLI_OPT_UINT) CHECK_MSG(o->umin <= o->umax && (o->size == 8 || o->umax <= UINT32_MAX),
                                               "%s: --%s: bad range", cmd->name, o->name);
        if (o->kind == CLI_OPT_FLAG || o->kind == CLI_OPT_UNSET) CHECK(o->size == sizeof(bool));
        if (o->kind == CLI_OPT_STR) CHECK(o->size == sizeof(const char *));
    }
    CHECK_MSG(has_help, "%s: no --help entry", cmd->name);
    free(h);
}

static void test_every_command(void) {
    const struct cli_cmd *cmds[] = {&cli_cmd_pull,  &cli_cmd_inspect, &cli_cmd_tokenize, &cli_cmd_convert,
                                    &cli_cmd_generate, &cli_cmd_chat, &cli_cmd_align,    &cli_cmd_train,
                                    &cli_cmd_bench, &cli_cmd_bench_pipeline, &cli_cmd_serve};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) check_command(cmds[i]);
    size_t n = 0;
    for (size_t i = 0; cli_cmds_data[i]; i++, n++) check_command(cli_cmds_data[i]);
    for (size_t i = 0; cli_cmds_eval[i]; i++, n++) check_command(cli_cmds_eval[i]);
    for (size_t i = 0; cli_cmds_steer[i]; i++, n++) check_command(cli_cmds_steer[i]);
    /* data: from-gsm8k split check build rollout continue; eval: math winrate judge report
     * aligner; steer: extract scan apply sweep */
    CHECK_EQ_INT(n, 6 + 5 + 4);
    /* generate's own options are not chat's */
    for (size_t i = 0; i < cli_cmd_chat.n_opts; i++)
        if (cli_cmd_chat.opts[i].name && !strcmp(cli_cmd_chat.opts[i].name, "prompt"))
            CHECK(!cli_accepts(&cli_cmd_chat, &cli_cmd_chat.opts[i]));
}

/* --edit-check's list: names to bits and back; all is arith and format, cut is opt-in */
static void test_edit_check_list(void) {
    unsigned bits = 99;
    char buf[64];
    CHECK(cli_parse_edit_check("arith,cut", &bits));
    CHECK_EQ_INT(bits, SA_PIPELINE_EDIT_CHECK_ARITH | SA_PIPELINE_EDIT_CHECK_CUT);
    CHECK_EQ_STR(cli_edit_check_str(bits, buf, sizeof buf), "arith,cut");
    CHECK(cli_parse_edit_check("all", &bits));
    CHECK_EQ_STR(cli_edit_check_str(bits, buf, sizeof buf), "arith,format");
    CHECK(cli_parse_edit_check("all,cut", &bits));
    CHECK_EQ_STR(cli_edit_check_str(bits, buf, sizeof buf), "arith,format,cut");
    CHECK(cli_parse_edit_check("none", &bits) && bits == 0);
    CHECK_EQ_STR(cli_edit_check_str(bits, buf, sizeof buf), "none");
    bits = 5;
    CHECK(!cli_parse_edit_check("arith,cuts", &bits) && bits == 5);
    CHECK(!cli_parse_edit_check("arith,", &bits) && bits == 5);
}

int main(void) {
    RUN(test_edit_check_list);
    RUN(test_values_and_ranges);
    RUN(test_forms);
    RUN(test_missing_and_unknown);
    RUN(test_operands);
    RUN(test_help);
    RUN(test_every_command);
    return harness_summary();
}
