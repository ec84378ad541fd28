/* cli_opts.c: the table-driven option parser and help printer of cli_opts.h. */
#define _GNU_SOURCE
#include "cli_opts.h"
#include "cli.h"
#include "sa/dtype.h"
#include "sa/pipeline.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool cli_accepts(const struct cli_cmd *cmd, const struct cli_opt *o) {
    return !o->mask || !cmd->mask || (o->mask & cmd->mask);
}

const char *const cli_kv_type_names[] = {"f32", "f16", NULL};
const char *const cli_unit_names[] = {"sentence", "line", NULL};
const int cli_kv_type_values[] = {SA_DTYPE_F32, SA_DTYPE_F16};

/* ---- values ---- */

/* An unsigned decimal (or 0x hex) integer with nothing after it; no sign. */
static bool parse_u64(const char *s, uint64_t *out) {
    if (!*s || *s == '-' || *s == '+' || *s == ' ' || *s == '\t') return false;
    int base = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static bool parse_i64(const char *s, int64_t *out) {
    bool neg = *s == '-';
    uint64_t u;
    if (!parse_u64(neg ? s + 1 : s, &u)) return false;
    if (neg ? u > (uint64_t)INT64_MAX + 1 : u > (uint64_t)INT64_MAX) return false;
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return true;
}

bool cli_value_bytes(const char *s, void *field) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-') return false;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm') mul = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g') mul = 1ull << 30, end++;
    if (*end || v > UINT64_MAX / mul) return false;
    uint64_t bytes = v * mul;
    memcpy(field, &bytes, sizeof bytes);
    return true;
}

static void store_int(void *field, size_t size, uint64_t bits) {
    if (size == 8) {
        memcpy(field, &bits, 8);
    } else if (size == 4) {
        uint32_t v = (uint32_t)bits;
        memcpy(field, &v, 4);
    } else {
        int v = (int)bits; /* an enum */
        memcpy(field, &v, sizeof v);
    }
}

/* What a good value of o is, for the error message. */
static void expect_text(const struct cli_opt *o, char *buf, size_t cap) {
    switch (o->kind) {
    case CLI_OPT_INT:
        if (o->imax == INT64_MAX) snprintf(buf, cap, "an integer >= %" PRId64, o->imin);
        else snprintf(buf, cap, "an integer in [%" PRId64 ", %" PRId64 "]", o->imin, o->imax);
        break;
    case CLI_OPT_UINT:
        if (o->umax == UINT64_MAX) snprintf(buf, cap, "an integer >= %" PRIu64, o->umin);
        else snprintf(buf, cap, "an integer in [%" PRIu64 ", %" PRIu64 "]", o->umin, o->umax);
        break;
    case CLI_OPT_FLOAT:
        if (isinf(o->lo) && isinf(o->hi)) snprintf(buf, cap, "a number");
        else if (isinf(o->hi)) snprintf(buf, cap, "a number %s %g", o->open & CLI_LO_OPEN ? ">" : ">=", o->lo);
        else if (isinf(o->lo)) snprintf(buf, cap, "a number %s %g", o->open & CLI_HI_OPEN ? "<" : "<=", o->hi);
        else
            snprintf(buf, cap, "a number in %c%g, %g%c", o->open & CLI_LO_OPEN ? '(' : '[', o->lo, o->hi,
                     o->open & CLI_HI_OPEN ? ')' : ']');
        break;
    case CLI_OPT_ENUM: {
        size_t n = (size_t)snprintf(buf, cap, "one of");
        for (size_t i = 0; o->names[i] && n < cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s %s", i ? "," : "", o->names[i]);
        break;
    }
    default: snprintf(buf, cap, "%s", o->expect ? o->expect : "a valid value"); break;
    }
}

/* Stores value v of option o in its field. Returns false for a bad value. */
static bool set_value(const struct cli_opt *o, const char *v, void *field) {
    switch (o->kind) {
    case CLI_OPT_STR: memcpy(field, &v, sizeof v); return true;
    case CLI_OPT_INT: {
        int64_t x;
        if (!parse_i64(v, &x) || x < o->imin || x > o->imax) return false;
        store_int(field, o->size, (uint64_t)x);
        return true;
    }
    case CLI_OPT_UINT: {
        uint64_t x;
        if (!parse_u64(v, &x) || x < o->umin || x > o->umax) return false;
        store_int(field, o->size, x);
        return true;
    }
    case CLI_OPT_FLOAT: {
        char *end;
        errno = 0;
        double x = o->size == sizeof(float) ? (double)strtof(v, &end) : strtod(v, &end);
        if (errno || end == v || *end || isnan(x)) return false;
        if ((o->open & CLI_LO_OPEN) ? !(x > o->lo) : !(x >= o->lo)) return false;
        if ((o->open & CLI_HI_OPEN) ? !(x < o->hi) : !(x <= o->hi)) return false;
        if (o->size == sizeof(float)) {
            float f = (float)x;
            memcpy(field, &f, sizeof f);
        } else {
            memcpy(field, &x, sizeof x);
        }
        return true;
    }
    case CLI_OPT_ENUM:
        for (size_t i = 0; o->names[i]; i++)
            if (!strcmp(v, o->names[i])) {
                store_int(field, o->size, (uint64_t)(int64_t)(o->values ? o->values[i] : (int)i));
                return true;
            }
        return false;
    case CLI_OPT_CUSTOM: return o->parse(v, field);
    default: return false;
    }
}

static bool takes_value(const struct cli_opt *o) {
    return o->kind != CLI_OPT_HELP && o->kind != CLI_OPT_FLAG && o->kind != CLI_OPT_UNSET;
}

/* ---- parsing ---- */

static const struct cli_opt *find_long(const struct cli_cmd *cmd, const char *name, size_t len) {
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const struct cli_opt *o = &cmd->opts[i];
        if (o->name && strlen(o->name) == len && !strncmp(o->name, name, len) && cli_accepts(cmd, o)) return o;
    }
    return NULL;
}

static const struct cli_opt *find_short(const struct cli_cmd *cmd, char c) {
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const struct cli_opt *o = &cmd->opts[i];
        if (o->short_name == c && cli_accepts(cmd, o)) return o;
    }
    return NULL;
}

/* Applies option o, named `as` on the command line, with value v (NULL for flags). */
static int apply(const struct cli_cmd *cmd, const struct cli_opt *o, const char *as, const char *v, void *opts) {
    char *field = (char *)opts + o->offset;
    switch (o->kind) {
    case CLI_OPT_HELP: cli_help(stdout, cmd); return CLI_PARSE_HELP;
    case CLI_OPT_FLAG: *(bool *)field = true; return CLI_OK;
    case CLI_OPT_UNSET: *(bool *)field = false; return CLI_OK;
    default: break;
    }
    if (set_value(o, v, field)) return CLI_OK;
    char want[256];
    expect_text(o, want, sizeof want);
    return cli_usage_error(cmd->name, "bad value for %s: '%s' (expected %s)", as, v, want);
}

static int unknown(const struct cli_cmd *cmd, const char *arg) {
    if (!cmd->operands || arg[0] != '-') return cli_usage_error(cmd->name, "unknown argument '%s'", arg);
    return cli_usage_error(cmd->name, "unknown option '%s'", arg);
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, void *opts, int *n_operands) {
    char **operands = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *operands);
    if (!operands) return cli_usage_error(cmd->name, "out of memory");
    int n_ops = 0, n_kept = 1, rc = CLI_OK;
    int i = 1;
    for (; rc == CLI_OK && i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1]) { /* an operand ("-" included) */
            if (!cmd->operands) rc = unknown(cmd, a);
            else if (cmd->stop_at_operand) break;
            else operands[n_ops++] = a;
            continue;
        }
        argv[n_kept++] = a;
        if (a[1] == '-') { /* --name or --name=value */
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            const struct cli_opt *o = find_long(cmd, a + 2, len);
            char as[128];
            snprintf(as, sizeof as, "--%.*s", (int)(len < 100 ? len : 100), a + 2);
            if (!o) {
                rc = unknown(cmd, eq ? as : a);
            } else if (!takes_value(o)) {
                if (eq) rc = cli_usage_error(cmd->name, "option '%s' takes no value", as);
                else rc = apply(cmd, o, as, NULL, opts);
            } else if (eq) {
                rc = apply(cmd, o, as, eq + 1, opts);
            } else if (i + 1 >= argc) {
                rc = cli_usage_error(cmd->name, "option '%s' needs a value", as);
            } else {
                argv[n_kept++] = argv[++i];
                rc = apply(cmd, o, as, argv[i], opts);
            }
            continue;
        }
        /* -abc: short flags, the last (or one followed by its value) may take a value */
        for (const char *p = a + 1; rc == CLI_OK && *p; p++) {
            const struct cli_opt *o = find_short(cmd, *p);
            char as[3] = {'-', *p, 0};
            if (!o) {
                rc = unknown(cmd, p == a + 1 && !p[1] ? a : as);
            } else if (!takes_value(o)) {
                rc = apply(cmd, o, as, NULL, opts);
            } else {
                if (p[1]) {
                    rc = apply(cmd, o, as, p + 1, opts);
                } else if (i + 1 >= argc) {
                    rc = cli_usage_error(cmd->name, "option '%s' needs a value", as);
                } else {
                    argv[n_kept++] = argv[++i];
                    rc = apply(cmd, o, as, argv[i], opts);
                }
                break;
            }
        }
    }
    if (rc == CLI_OK) {
        /* operands in order: those met between options, then the rest after `--` or the
         * first operand of a stop_at_operand command */
        for (; i < argc; i++) {
            if (!cmd->operands) {
                rc = unknown(cmd, argv[i]);
                break;
            }
            operands[n_ops++] = argv[i];
        }
    }
    if (rc == CLI_OK) {
        memcpy(argv + argc - n_ops, operands, (size_t)n_ops * sizeof *operands);
        if (n_operands) *n_operands = n_ops;
    }
    free(operands);
    return rc;
}

/* ---- help ---- */

/* The left column of an entry: "-t, --threads N", "    --temp T" or "-n N". */
static void left_text(const struct cli_opt *o, char *buf, size_t cap) {
    const char *arg = takes_value(o) && o->arg ? o->arg : NULL;
    if (o->short_name && o->name)
        snprintf(buf, cap, "-%c, --%s%s%s", o->short_name, o->name, arg ? " " : "", arg ? arg : "");
    else if (o->name) snprintf(buf, cap, "    --%s%s%s", o->name, arg ? " " : "", arg ? arg : "");
    else snprintf(buf, cap, "-%c%s%s", o->short_name, arg ? " " : "", arg ? arg : "");
}

enum { HELP_COL_MAX = 26 };

void cli_help_options(FILE *f, const struct cli_cmd *cmd, int indent) {
    int col = 0;
    char left[160];
    for (size_t i = 0; i < cmd->n_opts; i++) {
        if (!cli_accepts(cmd, &cmd->opts[i])) continue;
        left_text(&cmd->opts[i], left, sizeof left);
        int w = (int)strlen(left);
        if (w > col && w <= HELP_COL_MAX) col = w;
    }
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const struct cli_opt *o = &cmd->opts[i];
        if (!cli_accepts(cmd, o)) continue;
        if (o->section) fprintf(f, "%*s%s:\n", indent > 2 ? indent - 2 : 0, "", o->section);
        left_text(o, left, sizeof left);
        fprintf(f, "%*s%s", indent, "", left);
        const char *h = o->help ? o->help : "";
        if ((int)strlen(left) > col) fprintf(f, "\n%*s", indent + col, "");
        else fprintf(f, "%*s", col - (int)strlen(left), "");
        for (;;) {
            size_t n = strcspn(h, "\n");
            fprintf(f, "  %.*s\n", (int)n, h);
            if (!h[n] || !h[n + 1]) break;
            h += n + 1;
            fprintf(f, "%*s", indent + col, "");
        }
    }
}

void cli_help(FILE *f, const struct cli_cmd *cmd) {
    if (cmd->usage) fputs(cmd->usage, f);
    if (!cmd->n_opts || !cmd->opts[0].section) fputs("Options:\n", f);
    cli_help_options(f, cmd, 2);
    if (cmd->epilog) fprintf(f, "\n%s", cmd->epilog);
}

bool cli_parse_edit_check(const char *value, void *field) {
    static const struct {
        const char *name;
        unsigned bits;
    } names[] = {{"none", SA_PIPELINE_EDIT_CHECK_NONE},
                 {"arith", SA_PIPELINE_EDIT_CHECK_ARITH},
                 {"format", SA_PIPELINE_EDIT_CHECK_FORMAT},
                 {"cut", SA_PIPELINE_EDIT_CHECK_CUT},
                 {"all", SA_PIPELINE_EDIT_CHECK_ALL}};
    unsigned bits = 0;
    const char *p = value;
    for (;;) {
        const size_t n = strcspn(p, ",");
        size_t k = 0;
        while (k < sizeof names / sizeof names[0] && (strlen(names[k].name) != n || strncmp(p, names[k].name, n))) k++;
        if (k == sizeof names / sizeof names[0]) return false;
        bits |= names[k].bits;
        if (!p[n]) break;
        p += n + 1;
    }
    *(unsigned *)field = bits;
    return true;
}

const char *cli_edit_check_str(unsigned checks, char *buf, size_t size) {
    static const unsigned bits[] = {SA_PIPELINE_EDIT_CHECK_ARITH, SA_PIPELINE_EDIT_CHECK_FORMAT,
                                    SA_PIPELINE_EDIT_CHECK_CUT};
    size_t len = 0;
    if (size) buf[0] = 0;
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (checks & bits[i])
            len += (size_t)snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0, "%s%s",
                                    len ? "," : "", sa_pipeline_edit_check_name(bits[i]));
    if (!len) snprintf(buf, size, "none");
    return buf;
}
