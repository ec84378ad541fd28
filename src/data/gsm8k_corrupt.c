/* gsm8k_corrupt.c: sentence-level aligner records from GSM8K solutions. Each solution line
 * is a step; a step becomes a copy record (last = correction = the step) or a rewrite
 * record whose `last` is the step corrupted by a rule: an operand changed or an operator
 * swapped with the result recomputed (self-consistent, wrong), the result off by one, or
 * the step skipped (last = the next step). The corruption edits the calculator annotation
 * "<<a*b=c>>" and the visible text around it together, so the two always agree; the
 * annotations are stripped afterwards unless asked to keep them. Rules: docs/EVAL.md. */
#define _GNU_SOURCE
#include "sa/records.h"

#include "sa/jsonl.h"

#include "core/core_impl.h"
#include "core/rng_impl.h"

#include <cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sa_gsm8k_rule_str(enum sa_gsm8k_rule r) {
    static const char *names[SA_GSM8K_N_RULES] = {"copy", "number", "operation", "off_by_one", "dropped"};
    return (unsigned)r < SA_GSM8K_N_RULES ? names[r] : "unknown";
}

struct sa_gsm8k_params sa_gsm8k_default_params(void) {
    return (struct sa_gsm8k_params){
        .seed = 0, .rewrite_ratio = 0.5, .keep_calc = false, .answer_step = true, .with_solution = false};
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static size_t rng_below(struct sa_rng *r, size_t n) { return (size_t)(((unsigned __int128)sa_rng_next(r) * n) >> 64); }

char *sa_gsm8k_strip_calc(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '<' && s[i + 1] == '<') {
            const char *e = strstr(s + i + 2, ">>");
            if (e) {
                i = (size_t)(e - s) + 2;
                continue;
            }
        }
        o[w++] = s[i++];
    }
    o[w] = 0;
    return o;
}

/* ---- arithmetic of the annotations ------------------------------------------------------ */

struct eval_ctx {
    const char *s;
    size_t i, n;
    bool ok;
};

static double ev_expr(struct eval_ctx *c);

static double ev_factor(struct eval_ctx *c) {
    if (c->i < c->n && c->s[c->i] == '-') {
        c->i++;
        return -ev_factor(c);
    }
    if (c->i < c->n && c->s[c->i] == '(') {
        c->i++;
        double v = ev_expr(c);
        if (c->i >= c->n || c->s[c->i] != ')') c->ok = false;
        else c->i++;
        return v;
    }
    size_t a = c->i;
    while (c->i < c->n && (is_digit(c->s[c->i]) || c->s[c->i] == '.')) c->i++;
    if (c->i == a || c->i - a > 40) {
        c->ok = false;
        return 0;
    }
    char buf[48];
    memcpy(buf, c->s + a, c->i - a);
    buf[c->i - a] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end) c->ok = false;
    return v;
}

static double ev_term(struct eval_ctx *c) {
    double v = ev_factor(c);
    while (c->ok && c->i < c->n && (c->s[c->i] == '*' || c->s[c->i] == '/')) {
        char op = c->s[c->i++];
        double w = ev_factor(c);
        v = op == '*' ? v * w : v / w;
    }
    return v;
}

static double ev_expr(struct eval_ctx *c) {
    double v = ev_term(c);
    while (c->ok && c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-')) {
        char op = c->s[c->i++];
        double w = ev_term(c);
        v = op == '+' ? v + w : v - w;
    }
    return v;
}

/* Value of the arithmetic expression s[0..n) ("16-3-4", "2*(3+4)"); false if malformed. */
static bool eval_arith(const char *s, size_t n, double *v) {
    struct eval_ctx c = {s, 0, n, true};
    *v = ev_expr(&c);
    return c.ok && c.i == n && isfinite(*v);
}

static bool same_value(double a, double b) { return fabs(a - b) <= 1e-9 * SA_MAX(1.0, fabs(b)); }

/* A result we accept in a corrupted step: finite, at most 2 decimals, not huge. */
static bool clean_value(double v) {
    return isfinite(v) && fabs(v) < 1e12 && fabs(v * 100 - round(v * 100)) < 1e-6;
}

/* Formats v with `decimals` digits after the point (0: an integer; -1: as few as needed,
 * at most 2) and thousands commas when `commas`. */
static void fmt_value(double v, int decimals, bool commas, char out[64]) {
    char raw[64];
    if (decimals < 0) {
        snprintf(raw, sizeof raw, "%.2f", v);
        char *dot = strchr(raw, '.');
        if (dot) {
            char *e = raw + strlen(raw);
            while (e > dot + 1 && e[-1] == '0') *--e = 0;
            if (e == dot + 1) *dot = 0;
        }
    } else {
        snprintf(raw, sizeof raw, "%.*f", decimals, v);
    }
    if (!strcmp(raw, "-0")) strcpy(raw, "0");
    if (!commas) {
        strcpy(out, raw);
        return;
    }
    const char *p = raw;
    size_t w = 0;
    if (*p == '-') out[w++] = *p++;
    size_t nint = strcspn(p, ".");
    for (size_t i = 0; i < nint; i++) {
        out[w++] = p[i];
        size_t left = nint - i - 1;
        if (left > 0 && left % 3 == 0) out[w++] = ',';
    }
    strcpy(out + w, p + nint);
}

/* Number of decimals written in s[0..n) (digits after '.'), 0 if none. */
static int n_decimals(const char *s, size_t n) {
    const char *dot = memchr(s, '.', n);
    return dot ? (int)(n - (size_t)(dot - s) - 1) : 0;
}

/* ---- the calculations of a step ----------------------------------------------------------- */

enum { TOK_NUM, TOK_OP, TOK_PAREN };

struct calc_tok {
    int kind;
    size_t as, ae; /* span in the annotation expression (absolute offsets in the step) */
    size_t vs, ve; /* span of its twin in the visible text (when lhs_ok) */
    double value;  /* TOK_NUM */
};

#define MAX_TOK 48

struct calc {
    size_t ann_s, ann_e;   /* "<<" .. ">>" */
    size_t expr_s, expr_e; /* the expression inside */
    size_t res_s, res_e;   /* the result inside (after '=') */
    size_t vis_s, vis_e;   /* the visible result right after ">>" (digits, commas, '.') */
    double result;
    bool usable;       /* consistent: eval(expr) == result == visible result */
    bool lhs_ok;       /* the visible text before "<<" shows the same expression */
    bool result_reused; /* the result is stated elsewhere in the step too */
    struct calc_tok tok[MAX_TOK];
    size_t n_tok;
};

/* Parses the number token in s ending right before `end` (digits, commas, one '.');
 * returns its start, or `end` if none. */
static size_t number_before(const char *s, size_t end, size_t lo, double *v) {
    size_t a = end;
    while (a > lo && (is_digit(s[a - 1]) || s[a - 1] == ',' || s[a - 1] == '.')) a--;
    while (a < end && !is_digit(s[a]) && s[a] != '.') a++; /* a leading ',' is punctuation */
    if (a == end) return end;
    char buf[64];
    size_t w = 0;
    for (size_t i = a; i < end && w < sizeof buf - 1; i++)
        if (s[i] != ',') buf[w++] = s[i];
    buf[w] = 0;
    char *e;
    *v = strtod(buf, &e);
    if (*e || w == 0) return end;
    return a;
}

/* Does the visible operator at s[..end) match annotation operator op? Returns its length. */
static size_t op_before(const char *s, size_t end, size_t lo, char op) {
    if (end <= lo) return 0;
    char c = s[end - 1];
    if (c == op) return 1;
    if (op == '*' && (c == 'x' || c == 'X')) return 1;
    if (end - lo >= 2 && (unsigned char)s[end - 2] == 0xC3) {
        if (op == '*' && (unsigned char)c == 0x97) return 2; /* U+00D7 multiplication sign */
        if (op == '/' && (unsigned char)c == 0xB7) return 2; /* U+00F7 division sign */
    }
    if (op == '-' && end - lo >= 3 && (unsigned char)s[end - 3] == 0xE2 && (unsigned char)s[end - 2] == 0x88 &&
        (unsigned char)c == 0x92)
        return 3; /* U+2212 minus sign */
    return 0;
}

/* Matches the annotation's tokens, last to first, against the visible text before the
 * "=" that precedes the annotation. */
static bool match_lhs(const char *s, size_t lo, struct calc *c) {
    size_t p = c->ann_s;
    while (p > lo && (s[p - 1] == ' ' || s[p - 1] == '$')) p--;
    if (p == lo || s[p - 1] != '=') return false;
    p--;
    for (size_t k = c->n_tok; k-- > 0;) {
        struct calc_tok *t = &c->tok[k];
        while (p > lo && (s[p - 1] == ' ' || s[p - 1] == '$')) p--;
        if (t->kind == TOK_NUM) {
            double v;
            size_t a = number_before(s, p, lo, &v);
            if (a == p || !same_value(v, t->value)) return false;
            t->vs = a;
            t->ve = p;
            p = a;
        } else {
            char op = s[t->as];
            size_t l = t->kind == TOK_OP ? op_before(s, p, lo, op) : (p > lo && s[p - 1] == op);
            if (!l) return false;
            t->vs = p - l;
            t->ve = p;
            p -= l;
        }
    }
    /* the expression must start at a word boundary ("12 x 2" is not "2 x 2") */
    return p == lo || !(is_digit(s[p - 1]) || s[p - 1] == '.');
}

/* How many number tokens of the step (visible text and annotations) have value v. */
static size_t count_value(const char *s, double v) {
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len;) {
        bool at = is_digit(s[i]) || (s[i] == '.' && is_digit(s[i + 1]));
        if (!at || (i > 0 && (is_digit(s[i - 1]) || s[i - 1] == '.'))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && (is_digit(s[j]) || s[j] == ',' || s[j] == '.')) j++;
        while (j > i && (s[j - 1] == ',' || s[j - 1] == '.')) j--;
        double x;
        if (number_before(s, j, i, &x) == i && same_value(x, v)) n++;
        i = j > i ? j : i + 1;
    }
    return n;
}

/* Finds the calculations of a step (at most max). */
static size_t parse_calcs(const char *s, struct calc *calcs, size_t max) {
    size_t n = 0, from = 0, len = strlen(s);
    while (n < max) {
        const char *a = strstr(s + from, "<<");
        if (!a) break;
        const char *b = strstr(a + 2, ">>");
        if (!b) break;
        struct calc *c = &calcs[n];
        memset(c, 0, sizeof *c);
        c->ann_s = (size_t)(a - s);
        c->ann_e = (size_t)(b - s) + 2;
        const char *eq = memchr(a + 2, '=', (size_t)(b - a - 2));
        size_t lo = from;
        from = c->ann_e;
        n++;
        if (!eq) continue;
        c->expr_s = c->ann_s + 2;
        c->expr_e = (size_t)(eq - s);
        c->res_s = c->expr_e + 1;
        c->res_e = c->ann_e - 2;
        /* tokens of the expression */
        bool ok = true;
        for (size_t i = c->expr_s; ok && i < c->expr_e;) {
            if (c->n_tok == MAX_TOK) {
                ok = false;
                break;
            }
            struct calc_tok *t = &c->tok[c->n_tok];
            if (is_digit(s[i]) || s[i] == '.') {
                size_t j = i;
                while (j < c->expr_e && (is_digit(s[j]) || s[j] == '.')) j++;
                t->kind = TOK_NUM;
                ok = eval_arith(s + i, j - i, &t->value);
                t->as = i;
                t->ae = j;
                i = j;
            } else if (strchr("+-*/", s[i])) {
                *t = (struct calc_tok){.kind = TOK_OP, .as = i, .ae = i + 1};
                i++;
            } else if (s[i] == '(' || s[i] == ')') {
                *t = (struct calc_tok){.kind = TOK_PAREN, .as = i, .ae = i + 1};
                i++;
            } else {
                ok = false;
            }
            c->n_tok++;
        }
        double ve, vr;
        if (!ok || !eval_arith(s + c->expr_s, c->expr_e - c->expr_s, &ve) ||
            !eval_arith(s + c->res_s, c->res_e - c->res_s, &vr) || !same_value(ve, vr))
            continue;
        c->result = vr;
        /* the visible result right after ">>" */
        size_t v = c->ann_e;
        while (v < len && (is_digit(s[v]) || s[v] == ',' || s[v] == '.')) v++;
        while (v > c->ann_e && (s[v - 1] == ',' || s[v - 1] == '.')) v--; /* "18." ends a sentence */
        double vv;
        if (v == c->ann_e || number_before(s, v, c->ann_e, &vv) != c->ann_e || !same_value(vv, vr)) continue;
        c->vis_s = c->ann_e;
        c->vis_e = v;
        from = v; /* the next expression starts after this visible result, never inside it */
        c->usable = true;
        c->lhs_ok = match_lhs(s, lo, c);
    }
    /* is a result stated elsewhere in the step (besides the annotation and the visible
     * result)? then changing it would contradict the step itself */
    for (size_t k = 0; k < n; k++)
        if (calcs[k].usable) calcs[k].result_reused = count_value(s, calcs[k].result) > 2;
    return n;
}

/* ---- rewriting a step --------------------------------------------------------------------- */

struct edit {
    size_t s, e;
    char text[64];
};

static int cmp_edit_desc(const void *a, const void *b) {
    size_t x = ((const struct edit *)a)->s, y = ((const struct edit *)b)->s;
    return (x < y) - (x > y);
}

/* Applies non-overlapping edits to step; *out is malloc'd. */
static enum sa_status apply_edits(const char *step, struct edit *ed, size_t n, char **out) {
    qsort(ed, n, sizeof *ed, cmp_edit_desc);
    struct sa_buf b;
    sa_buf_init(&b, 0);
    size_t len = strlen(step), pos = 0;
    /* edits are sorted from the end: walk them backwards for a forward copy */
    for (size_t k = n; k-- > 0;) {
        if (ed[k].s < pos) continue;
        if (sa_buf_append(&b, step + pos, ed[k].s - pos) || sa_buf_puts(&b, ed[k].text)) goto oom;
        pos = ed[k].e;
    }
    if (sa_buf_append(&b, step + pos, len - pos)) goto oom;
    *out = sa_buf_take(&b, NULL);
    if (!*out) goto oom;
    return SA_STATUS_OK;
oom:
    sa_buf_free(&b);
    return sa_error(SA_STATUS_NO_MEMORY, "gsm8k: out of memory");
}

/* The text of the expression with token k replaced by `rep` (or the operator swapped). */
static bool expr_with(const char *s, const struct calc *c, size_t k, const char *rep, char *out, size_t cap) {
    size_t w = 0;
    for (size_t t = 0; t < c->n_tok; t++) {
        const char *p = t == k ? rep : s + c->tok[t].as;
        size_t l = t == k ? strlen(rep) : c->tok[t].ae - c->tok[t].as;
        if (w + l + 1 > cap) return false;
        memcpy(out + w, p, l);
        w += l;
    }
    out[w] = 0;
    return true;
}

/* Edits for the new result r of calc c (inside the annotation and in the visible text). */
static void result_edits(const char *s, const struct calc *c, double r, struct edit *ed, size_t *ne) {
    int dres = n_decimals(s + c->res_s, c->res_e - c->res_s);
    int dvis = n_decimals(s + c->vis_s, c->vis_e - c->vis_s);
    bool commas = memchr(s + c->vis_s, ',', c->vis_e - c->vis_s) != NULL;
    bool integral = r == floor(r);
    ed[*ne].s = c->res_s;
    ed[*ne].e = c->res_e;
    fmt_value(r, integral && dres == 0 ? 0 : dres >= 2 ? dres : -1, false, ed[*ne].text);
    (*ne)++;
    ed[*ne].s = c->vis_s;
    ed[*ne].e = c->vis_e;
    fmt_value(r, integral && dvis == 0 ? 0 : dvis >= 2 ? dvis : -1, commas && fabs(r) >= 1000, ed[*ne].text);
    (*ne)++;
}

/* A different value for the operand v written with `dec` decimals. */
static double new_operand(struct sa_rng *rng, double v, int dec) {
    double unit = pow(10.0, -dec);
    double span = dec > 0 ? 9 : SA_MAX(2.0, SA_MIN(10.0, fabs(v)));
    double d = (double)(1 + rng_below(rng, (size_t)span)) * unit;
    double w = (sa_rng_next(rng) & 1) ? v + d : v - d;
    if (w <= 0 && v > 0) w = v + d;
    return w;
}

/* Changes one number of a step without calculations (and without '='). */
static enum sa_status corrupt_text_number(const char *step, struct sa_rng *rng, bool off_by_one, char **out) {
    if (strchr(step, '=') || strstr(step, "<<")) return SA_STATUS_NOT_FOUND;
    size_t len = strlen(step);
    struct edit cand[32];
    size_t nc = 0;
    for (size_t i = 0; i < len && nc < 32;) {
        if (!is_digit(step[i]) || (i > 0 && (isalpha((unsigned char)step[i - 1]) || step[i - 1] == '.'))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && (is_digit(step[j]) || step[j] == ',' || step[j] == '.')) j++;
        while (j > i && (step[j - 1] == ',' || step[j - 1] == '.')) j--;
        if (j < len && (isalpha((unsigned char)step[j]) || step[j] == '/')) { /* "2nd", "1/2" */
            i = j + 1;
            continue;
        }
        cand[nc].s = i;
        cand[nc].e = j;
        nc++;
        i = j;
    }
    if (nc == 0) return SA_STATUS_NOT_FOUND;
    struct edit e = cand[rng_below(rng, nc)];
    double v;
    if (number_before(step, e.e, e.s, &v) != e.s) return SA_STATUS_NOT_FOUND;
    int dec = n_decimals(step + e.s, e.e - e.s);
    bool commas = memchr(step + e.s, ',', e.e - e.s) != NULL;
    double w = off_by_one ? ((sa_rng_next(rng) & 1) || v < 1 ? v + 1 : v - 1) : new_operand(rng, v, dec);
    if (same_value(w, v)) return SA_STATUS_NOT_FOUND;
    fmt_value(w, dec, commas && fabs(w) >= 1000, e.text);
    return apply_edits(step, &e, 1, out);
}

enum sa_status sa_gsm8k_corrupt_step(const char *step, enum sa_gsm8k_rule rule, uint64_t seed, char **out) {
    *out = NULL;
    if (!step) return sa_error(SA_STATUS_BAD_ARGUMENT, "gsm8k: NULL step");
    if (rule != SA_GSM8K_NUMBER && rule != SA_GSM8K_OPERATION && rule != SA_GSM8K_OFF_BY_ONE)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gsm8k: rule %s does not rewrite a single step", sa_gsm8k_rule_str(rule));
    struct sa_rng rng;
    sa_rng_seed(&rng, seed);
    struct calc *calcs = malloc(16 * sizeof *calcs);
    if (!calcs) return sa_error(SA_STATUS_NO_MEMORY, "gsm8k: out of memory");
    size_t n = parse_calcs(step, calcs, 16);
    enum sa_status st = SA_STATUS_NOT_FOUND;
    if (n == 0) {
        if (rule != SA_GSM8K_OPERATION) st = corrupt_text_number(step, &rng, rule == SA_GSM8K_OFF_BY_ONE, out);
        free(calcs);
        return st == SA_STATUS_NOT_FOUND ? sa_error(st, "gsm8k: no number to change") : st;
    }
    /* candidate calculations: consistent, result not reused later, and for NUMBER and
     * OPERATION an expression visible in the text */
    size_t cand[16], nc = 0;
    for (size_t k = 0; k < n; k++) {
        const struct calc *c = &calcs[k];
        if (c->usable && !c->result_reused && (rule == SA_GSM8K_OFF_BY_ONE || c->lhs_ok)) cand[nc++] = k;
    }
    struct edit ed[MAX_TOK + 4];
    for (size_t tries = 0; nc > 0 && tries < 12 && st == SA_STATUS_NOT_FOUND; tries++) {
        const struct calc *c = &calcs[cand[rng_below(&rng, nc)]];
        size_t ne = 0;
        double r;
        if (rule == SA_GSM8K_OFF_BY_ONE) {
            r = ((sa_rng_next(&rng) & 1) || c->result < 1) ? c->result + 1 : c->result - 1;
        } else {
            /* pick a token to change */
            size_t idx[MAX_TOK], ni = 0;
            for (size_t t = 0; t < c->n_tok; t++) {
                bool binop = c->tok[t].kind == TOK_OP && t > 0 &&
                             (c->tok[t - 1].kind == TOK_NUM || step[c->tok[t - 1].as] == ')');
                /* an operand also stated elsewhere in the step ("she paid $32,500 ... 32,500-30,000")
                 * stays: changing it in one place would contradict the step itself */
                bool num = c->tok[t].kind == TOK_NUM && count_value(step, c->tok[t].value) <= 2;
                if ((rule == SA_GSM8K_NUMBER && num) || (rule == SA_GSM8K_OPERATION && binop))
                    idx[ni++] = t;
            }
            if (ni == 0) break;
            size_t k = idx[rng_below(&rng, ni)];
            const struct calc_tok *t = &c->tok[k];
            char rep[64], vis[64], expr[512];
            if (rule == SA_GSM8K_NUMBER) {
                int dec = n_decimals(step + t->as, t->ae - t->as);
                double w = new_operand(&rng, t->value, dec);
                fmt_value(w, dec, false, rep);
                bool commas = memchr(step + t->vs, ',', t->ve - t->vs) != NULL;
                fmt_value(w, dec, commas && fabs(w) >= 1000, vis);
            } else {
                static const char swap[] = {['+'] = '-', ['-'] = '+', ['*'] = '/', ['/'] = '*'};
                char op = swap[(unsigned char)step[t->as]];
                rep[0] = op;
                rep[1] = 0;
                snprintf(vis, sizeof vis, "%s", rep); /* the visible operator in ASCII */
            }
            if (!expr_with(step, c, k, rep, expr, sizeof expr) || !eval_arith(expr, strlen(expr), &r)) continue;
            ed[ne].s = t->as;
            ed[ne].e = t->ae;
            snprintf(ed[ne].text, sizeof ed[ne].text, "%s", rep);
            ne++;
            ed[ne].s = t->vs;
            ed[ne].e = t->ve;
            snprintf(ed[ne].text, sizeof ed[ne].text, "%s", vis);
            ne++;
        }
        if (!clean_value(r) || same_value(r, c->result) || (r < 0 && c->result >= 0)) continue;
        result_edits(step, c, r, ed, &ne);
        st = apply_edits(step, ed, ne, out);
    }
    free(calcs);
    if (st == SA_STATUS_NOT_FOUND) return sa_error(st, "gsm8k: rule %s does not apply to the step", sa_gsm8k_rule_str(rule));
    return st;
}

/* ---- problems -> records ------------------------------------------------------------------ */

struct problem {
    char **steps; /* (n) with annotations */
    size_t n;
};

static void problem_free(struct problem *p) {
    for (size_t i = 0; i < p->n; i++) free(p->steps[i]);
    free(p->steps);
    memset(p, 0, sizeof *p);
}

/* Splits a GSM8K answer into steps (lines before "#### N"), plus "The answer is N." */
static enum sa_status split_steps(const char *answer, bool answer_step, const char *where, struct problem *p) {
    memset(p, 0, sizeof *p);
    const char *gold = NULL;
    size_t cap = 8;
    p->steps = malloc(cap * sizeof *p->steps);
    if (!p->steps) goto oom;
    for (const char *l = answer; *l;) {
        size_t n = strcspn(l, "\n");
        size_t a = 0, b = n;
        while (a < b && (l[a] == ' ' || l[a] == '\t' || l[a] == '\r')) a++;
        while (b > a && (l[b - 1] == ' ' || l[b - 1] == '\t' || l[b - 1] == '\r')) b--;
        if (b - a >= 4 && !strncmp(l + a, "####", 4)) {
            gold = l + a + 4;
            break;
        }
        if (b > a) {
            if (p->n == cap) {
                cap *= 2;
                char **s = realloc(p->steps, cap * sizeof *s);
                if (!s) goto oom;
                p->steps = s;
            }
            if (!(p->steps[p->n] = strndup(l + a, b - a))) goto oom;
            p->n++;
        }
        l += n;
        if (*l == '\n') l++;
    }
    if (!gold) {
        problem_free(p);
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"answer\" has no \"#### N\" line", where);
    }
    while (*gold == ' ') gold++;
    size_t gl = strcspn(gold, "\n");
    while (gl > 0 && (gold[gl - 1] == ' ' || gold[gl - 1] == '\r')) gl--;
    if (gl == 0) {
        problem_free(p);
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"answer\": empty \"####\" line", where);
    }
    if (answer_step) {
        if (p->n == cap) {
            char **s = realloc(p->steps, (cap + 1) * sizeof *s);
            if (!s) goto oom;
            p->steps = s;
        }
        if (asprintf(&p->steps[p->n], "The answer is %.*s.", (int)gl, gold) < 0) goto oom;
        p->n++;
    }
    if (p->n == 0) {
        problem_free(p);
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"answer\" has no step", where);
    }
    return SA_STATUS_OK;
oom:
    problem_free(p);
    return sa_error(SA_STATUS_NO_MEMORY, "gsm8k: out of memory");
}

/* s, stripped of its annotations unless keep. */
static char *maybe_strip(const char *s, bool keep) { return keep ? strdup(s) : sa_gsm8k_strip_calc(s); }

/* steps[0..n) joined by '\n', each maybe stripped. */
static char *join_steps(char **steps, size_t n, bool keep) {
    struct sa_buf b;
    sa_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        char *s = maybe_strip(steps[i], keep);
        bool ok = s && !(i && sa_buf_puts(&b, "\n")) && !sa_buf_puts(&b, s);
        free(s);
        if (!ok) {
            sa_buf_free(&b);
            return NULL;
        }
    }
    return sa_buf_take(&b, NULL);
}

static const unsigned rule_weight[SA_GSM8K_N_RULES] = {0, 3, 3, 2, 2};

struct gsm8k_ctx {
    const struct sa_gsm8k_params *p;
    struct sa_gsm8k_stats *S;
    struct sa_rng rng;
    size_t debt; /* steps drawn for a rewrite that no rule applied to, still owed */
    struct sa_records *out;
};

/* One problem: its sentence records (or its whole-answer record). */
static enum sa_status problem_records(void *user, const struct sa_jsonl_item *it) {
    struct gsm8k_ctx *c = user;
    const struct sa_gsm8k_params p = *c->p;
    struct sa_gsm8k_stats *S = c->S;
    struct sa_records *out = c->out;
    const char *where = it->where;
    const size_t line_no = it->line;
    const cJSON *o = it->object;
    const cJSON *jq = cJSON_GetObjectItemCaseSensitive(o, "question");
    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(o, "answer");
    if (!cJSON_IsString(jq))
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"question\" missing or not a string", where);
    if (!cJSON_IsString(ja))
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"answer\" missing or not a string", where);
    struct problem pr = {0};
    enum sa_status st = split_steps(ja->valuestring, p.answer_step, where, &pr);
    char *solution = NULL;
    if (!st && p.with_solution && !(solution = join_steps(pr.steps, pr.n, p.keep_calc)))
        st = sa_error(SA_STATUS_NO_MEMORY, "gsm8k: out of memory");
    if (!st) S->n_problems++;
    /* whole-answer records: the answer shows each step as its sentence record's `last`
     * would (a dropped step is left out), the correction is the true solution */
    struct sa_buf shown;
    sa_buf_init(&shown, 0);
    size_t n_bad = 0;
    for (size_t i = 0; !st && i < pr.n; i++) {
        S->n_steps++;
        /* a step drawn for a rewrite that no rule applies to is owed: the next step
         * that a rule applies to is rewritten even if drawn as a copy */
        bool want = sa_rng_uniform(&c->rng) < p.rewrite_ratio, paying = false;
        if (!want && c->debt > 0) want = paying = true;
        enum sa_gsm8k_rule rule = SA_GSM8K_COPY;
        char *corrupted = NULL;
        if (want) {
            unsigned w[SA_GSM8K_N_RULES];
            memcpy(w, rule_weight, sizeof w);
            if (i + 1 >= pr.n) w[SA_GSM8K_DROPPED] = 0;
            for (;;) {
                unsigned tot = 0;
                for (int r = 0; r < SA_GSM8K_N_RULES; r++) tot += w[r];
                if (tot == 0) break;
                size_t x = rng_below(&c->rng, tot);
                int r = 1;
                while (x >= w[r]) x -= w[r++];
                uint64_t seed = sa_rng_next(&c->rng);
                if (r == SA_GSM8K_DROPPED) {
                    rule = SA_GSM8K_DROPPED;
                    break;
                }
                enum sa_status cs = sa_gsm8k_corrupt_step(pr.steps[i], (enum sa_gsm8k_rule)r, seed, &corrupted);
                if (cs == SA_STATUS_OK) {
                    rule = (enum sa_gsm8k_rule)r;
                    break;
                }
                if (cs != SA_STATUS_NOT_FOUND) {
                    st = cs;
                    break;
                }
                w[r] = 0;
            }
            if (rule == SA_GSM8K_COPY && !paying) {
                c->debt++;
                S->n_fallback++;
            } else if (rule != SA_GSM8K_COPY && paying) {
                c->debt--;
            }
        }
        if (st) {
            free(corrupted);
            break;
        }
        if (p.whole_answer) {
            char *piece = rule == SA_GSM8K_DROPPED ? NULL : maybe_strip(corrupted ? corrupted : pr.steps[i],
                                                                            p.keep_calc);
            if (rule != SA_GSM8K_DROPPED &&
                (!piece || (shown.len && sa_buf_puts(&shown, "\n")) || sa_buf_puts(&shown, piece)))
                st = sa_error(SA_STATUS_NO_MEMORY, "gsm8k: out of memory");
            free(piece);
            free(corrupted);
            if (!st) S->n_by_rule[rule]++;
            n_bad += rule != SA_GSM8K_COPY;
            continue;
        }
        char *prefix = join_steps(pr.steps, i, p.keep_calc);
        char *correction = maybe_strip(pr.steps[i], p.keep_calc);
        const char *last_src = rule == SA_GSM8K_DROPPED ? pr.steps[i + 1] : corrupted ? corrupted : pr.steps[i];
        char *last = maybe_strip(last_src, p.keep_calc);
        char source[96];
        snprintf(source, sizeof source, "gsm8k:%zu:%zu:%s", line_no, i, sa_gsm8k_rule_str(rule));
        if (!prefix || !correction || !last) st = sa_error(SA_STATUS_NO_MEMORY, "gsm8k: out of memory");
        if (!st) {
            struct sa_record rec = {.kind = SA_RECORD_SENTENCE,
                                    .question = jq->valuestring,
                                    .prefix = prefix,
                                    .last = last,
                                    .correction = correction,
                                    .solution = solution,
                                    .source = source,
                                    .eos = i + 1 == pr.n};
            st = sa_records_push(out, &rec);
        }
        if (!st) S->n_by_rule[rule]++;
        free(prefix);
        free(correction);
        free(last);
        free(corrupted);
    }
    if (!st && p.whole_answer) {
        char *truth = join_steps(pr.steps, pr.n, p.keep_calc);
        char source[96];
        snprintf(source, sizeof source, "gsm8k:%zu:answer:%zu_of_%zu_rewritten", line_no, n_bad, pr.n);
        if (!truth || sa_buf_puts(&shown, "")) st = sa_error(SA_STATUS_NO_MEMORY, "gsm8k: out of memory");
        if (!st) {
            struct sa_record rec = {.kind = SA_RECORD_ANSWER,
                                    .question = jq->valuestring,
                                    .answer = shown.data,
                                    .correction = truth,
                                    .solution = solution,
                                    .source = source,
                                    .eos = -1};
            st = sa_records_push(out, &rec);
        }
        if (!st) S->n_answers++;
        free(truth);
    }
    sa_buf_free(&shown);
    free(solution);
    problem_free(&pr);
    return st;
}

enum sa_status sa_gsm8k_to_records(const char *jsonl, size_t len, const char *name, const struct sa_gsm8k_params *prm,
                                   struct sa_records *out, struct sa_gsm8k_stats *stats) {
    struct sa_gsm8k_params p = prm ? *prm : sa_gsm8k_default_params();
    if (!(p.rewrite_ratio >= 0 && p.rewrite_ratio <= 1))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "gsm8k: rewrite ratio %g is not in [0, 1]", p.rewrite_ratio);
    if (!out || (!jsonl && len)) return sa_error(SA_STATUS_BAD_ARGUMENT, "gsm8k: NULL argument");
    struct sa_gsm8k_stats st_local = {0};
    struct gsm8k_ctx c = {.p = &p, .S = stats ? stats : &st_local, .out = out};
    memset(c.S, 0, sizeof *c.S);
    sa_rng_seed(&c.rng, p.seed);
    size_t n0 = out->n;
    enum sa_status st = sa_jsonl_parse(jsonl, len, name ? name : "gsm8k", 0, problem_records, &c, NULL);
    if (st) {
        /* leave *out as it was: drop what this call appended */
        for (size_t i = n0; i < out->n; i++) {
            struct sa_record *x = &out->items[i];
            free(x->question), free(x->prefix), free(x->last), free(x->correction), free(x->answer);
            free(x->solution), free(x->source);
        }
        out->n = n0;
    }
    return st;
}
