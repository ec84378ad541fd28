/* gold_path.c: the gold path of a GSM8K question and the off-path test of a sentence (issue
 * 13; gold_path_impl.h). Values are compared rounded to 6 decimals, as the probe
 * bench/gsm8k_gold_path.py does. */
#include "data/gold_path_impl.h"
#include "core/core_impl.h"
#include "pipeline/pipeline_impl.h" /* sa_arith_equations */

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double round6(double v) {
    return round(v * 1e6) / 1e6;
}

struct values {
    double *v;
    size_t n, cap;
};

static enum sa_status add(struct values *vs, double v) {
    if (vs->n == vs->cap) {
        size_t cap = vs->cap ? 2 * vs->cap : 16;
        double *p = realloc(vs->v, cap * sizeof *p);
        if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        vs->v = p;
        vs->cap = cap;
    }
    vs->v[vs->n++] = round6(v);
    return SA_STATUS_OK;
}

static bool digit(char c) {
    return c >= '0' && c <= '9';
}

/* The numbers of s[0..n): \d[\d,]*(\.\d+)?, commas dropped. */
static enum sa_status numbers(const char *s, size_t n, struct values *vs) {
    char buf[64];
    for (size_t i = 0; i < n;) {
        if (!digit(s[i])) {
            i++;
            continue;
        }
        size_t len = 0;
        while (i < n && (digit(s[i]) || s[i] == ',')) {
            if (s[i] != ',' && len < sizeof buf - 1) buf[len++] = s[i];
            i++;
        }
        if (i + 1 < n && s[i] == '.' && digit(s[i + 1])) {
            if (len < sizeof buf - 1) buf[len++] = '.';
            for (i++; i < n && digit(s[i]); i++)
                if (len < sizeof buf - 1) buf[len++] = s[i];
        }
        buf[len] = 0;
        enum sa_status st = add(vs, strtod(buf, NULL));
        if (st) return st;
    }
    return SA_STATUS_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum sa_status sa_gold_path_init(const char *question, const char *solution, struct sa_gold_path *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!question || !solution || !out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_gold_path_init: NULL argument");
    struct values vs = {0};
    enum sa_status s = numbers(question, strlen(question), &vs);
    /* <<expr=v>>: [^>]* up to the last '=' before ">>" */
    for (const char *p = strstr(solution, "<<"); !s && p; p = strstr(p, "<<")) {
        const char *q = p + 2, *eq = NULL;
        while (*q && *q != '>') {
            if (*q == '=') eq = q;
            q++;
        }
        if (q[0] == '>' && q[1] == '>' && eq) s = numbers(eq + 1, (size_t)(q - eq - 1), &vs);
        p += 2;
    }
    const char *fin = solution;
    for (const char *p = strstr(solution, "####"); p; p = strstr(p + 1, "####")) fin = p + 4;
    if (!s) s = numbers(fin, strlen(fin), &vs);
    if (s) {
        free(vs.v);
        return s;
    }
    if (vs.n) qsort(vs.v, vs.n, sizeof *vs.v, cmp_double);
    size_t m = 0;
    for (size_t i = 0; i < vs.n; i++)
        if (!m || vs.v[i] != vs.v[m - 1]) vs.v[m++] = vs.v[i];
    out->v = vs.v;
    out->n = m;
    return SA_STATUS_OK;
}

void sa_gold_path_free(struct sa_gold_path *gp) {
    if (!gp) return;
    free(gp->v);
    memset(gp, 0, sizeof *gp);
}

bool sa_gold_path_has(const struct sa_gold_path *gp, double v) {
    if (!gp || !gp->n || !isfinite(v)) return false;
    const double key = round6(v);
    return bsearch(&key, gp->v, gp->n, sizeof *gp->v, cmp_double) != NULL;
}

int32_t sa_gold_path_off(const struct sa_gold_path *gp, const char *s, int32_t *n_eq) {
    enum { MAX_EQ = 64 };
    struct sa_arith_eq eq[MAX_EQ];
    int32_t n = s ? sa_arith_equations(s, strlen(s), eq, MAX_EQ) : 0;
    if (n_eq) *n_eq = n;
    int32_t off = 0;
    /* off: a value the reference never reaches, or a false result written for a true one ("48 / 2 = 16") */
    for (int32_t i = 0; i < n && i < MAX_EQ; i++) off += eq[i].wrong || !sa_gold_path_has(gp, eq[i].value);
    return off;
}
