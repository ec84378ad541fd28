/* arith_check.c: the arithmetic check of an edit (issue 13; not in the paper).
 *
 * Finds the equations a sentence writes out ("17 + 17 + 17 + 17 = 68", "\$5 \times 365 = \$1825")
 * and evaluates them. The rules are those of the calculator that labels correction records
 * (bench/arith_records.py, `equations()`, which this file mirrors function by function), so
 * that what the aligner was trained to fix and what the pipeline refuses to write are one
 * definition; tests/py/test_arith_check.py compares the two over every text of the shipped
 * records.
 *
 * Units first: a \text{...} (\mbox, \mathrm) that follows a number, spaces aside, is blanked
 * out ("75000 \text{ calories} - 1800" is "75000 - 1800"); one that does not is a label
 * ("\text{Total} = 60 + 180") and stays.
 *
 * A chain is  SIDE (= SIDE)+  matched left to right without overlap, the first side
 * NUM (OP NUM)+ and the others RES (OP NUM)*, where
 *   NUM = \\?\$?\s*\d[\d,]*(\.\d+)?   OP = \s*(\times|\div|\cdot|×|÷|*|/|+|-|x)\s*
 *   RES = \\?\$?\s*-?\d[\d,]*(\.\d+)?
 * Every link L = R of it is checked where L or R has an operator and both evaluate (* and /
 * before + and -; not evaluable: a stray backslash, a literal Python would refuse such as 05,
 * a division by zero, two divisions in a row "25 / 1/3", which people write for a / (b/c)).
 * The first link is not checked when the chain is cut out of something longer (bad_before:
 * after an operator, a bracket, a number, "=" after a number, ...), the last one when the
 * expression goes on after it on the same line (bad_after: a digit, an operator, "5A", "and
 * 2/3", cents, ...); both functions list their rules.
 *
 * A variable: `x = EXPR` (a single letter, or a \text{} name, not after a number or an
 * operator; EXPR = NUM (OP NUM)+ standing alone: followed by the end, a point, comma, ; or :
 * not before a digit, $, \] \) or \\) defines x; a later `x = RES` standing alone (across
 * blocks and lines) is checked against the nearest earlier definition; any other `x = ...`
 * forgets it.
 *
 * A result R (a number) is wrong when it is a whole number and the value is another whole
 * number, or it is more than 1% (and 1e-6) away from the value and is not the value rounded to
 * R's decimals. A right side that is an expression is wrong when it is more than that from the
 * left side's value and so is its first number (a running chain "2 + 3 = 5 + 1 = 6" is true). */
#include "pipeline/pipeline_impl.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static bool starts(const char *s, size_t n, size_t i, const char *lit) {
    const size_t l = strlen(lit);
    return i + l <= n && !memcmp(s + i, lit, l);
}

/* NUM (or RES when `sign`) at i: its end, or 0 when none. The digits may carry commas; a
 * NUM gives back trailing commas (the regex backtracks to reach the operator or '='), a RES
 * keeps them (nothing follows it in the pattern). */
static size_t match_num(const char *s, size_t n, size_t i, bool sign) {
    size_t j = i;
    if (j < n && s[j] == '\\') j++;
    if (j < n && s[j] == '$') j++;
    while (j < n && is_space(s[j])) j++;
    if (sign && j < n && s[j] == '-') j++;
    if (j >= n || !is_digit(s[j])) return 0;
    while (j < n && (is_digit(s[j]) || s[j] == ',')) j++;
    if (!sign)
        while (s[j - 1] == ',') j--;
    if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1])) {
        j++;
        while (j < n && is_digit(s[j])) j++;
    }
    return j;
}

static const char *const OPS[] = {"\\times", "\\div", "\\cdot", "\xc3\x97", "\xc3\xb7", "*", "/", "+", "-", "x"};
static const char OP_CHAR[] = {'*', '/', '*', '*', '/', '*', '/', '+', '-', '*'};

/* OP at i: its end (surrounding spaces included), the operation in *op; 0 when none. */
static size_t match_op(const char *s, size_t n, size_t i, char *op) {
    size_t j = i;
    while (j < n && is_space(s[j])) j++;
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
        if (starts(s, n, j, OPS[k])) {
            j += strlen(OPS[k]);
            while (j < n && is_space(s[j])) j++;
            *op = OP_CHAR[k];
            return j;
        }
    return 0;
}

/* The value of a NUM or RES s[a, b): NAN when it is not one Python would read (a backslash not
 * before '$', an integer with a leading zero such as 05). *decimals: digits after the point. */
static double num_value(const char *s, size_t a, size_t b, bool allow_bare_backslash, int *decimals) {
    char buf[64];
    size_t k = 0;
    bool neg = false;
    *decimals = 0;
    for (size_t i = a; i < b; i++) {
        const char c = s[i];
        if (c == '\\') {
            if (!allow_bare_backslash && !(i + 1 < b && s[i + 1] == '$')) return NAN;
            continue;
        }
        if (c == '$' || c == ',' || is_space(c)) continue;
        if (c == '-') {
            neg = true;
            continue;
        }
        if (k + 1 >= sizeof buf) return NAN;
        buf[k++] = c;
    }
    buf[k] = 0;
    const char *dot = strchr(buf, '.');
    if (dot) *decimals = (int)strlen(dot + 1);
    else if (buf[0] == '0' && buf[1] && strspn(buf, "0") != k) return NAN; /* 05: Python refuses it */
    const double v = strtod(buf, NULL);
    return neg ? -v : v;
}

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }

/* An operator this check does not evaluate: an en dash or a minus sign (UTF-8). */
static bool dash_at(const char *s, size_t n, size_t i) {
    return starts(s, n, i, "\xe2\x80\x93") || starts(s, n, i, "\xe2\x88\x92");
}

/* The chain at s[start] is cut out of something longer, and its first link is not checked:
 * the text before it (trailing spaces dropped) ends in an operator or a bracket, in '=' after
 * a number (a chain; after a label such as "\text{Total} =" it stands on its own), in a number
 * ("1 1/2", "100 000"), in "NUMBER and" ("1 and 1/4"), in x as a word ("60 minutes x 2/3"); or
 * a point or a colon is right before it (".50", "6:00"). */
static bool bad_before(const char *s, size_t n, size_t start) {
    size_t k = start;
    while (k < n && is_space(s[k])) k++;
    if (k > 0 && (s[k - 1] == '.' || s[k - 1] == ':')) return true;
    size_t e = start;
    while (e > 0 && is_space(s[e - 1])) e--;
    if (e == 0) return false;
    if (e >= 2 && s[e - 2] == '\\' && (s[e - 1] == '(' || s[e - 1] == '[' || s[e - 1] == '{')) return false;
    if (s[e - 1] == '=') {
        size_t k2 = e - 1;
        while (k2 > 0 && is_space(s[k2 - 1])) k2--;
        return k2 > 0 && is_digit(s[k2 - 1]);
    }
    if (strchr("()^{}/*+-_", s[e - 1]) || is_digit(s[e - 1])) return true;
    if (s[e - 1] == ',' && e >= 2 && is_digit(s[e - 2])) return true; /* "14, 400" */
    if (s[e - 1] == 'x' && !(e >= 2 && is_alnum(s[e - 2]))) return true;
    if (e >= 2 && (!memcmp(s + e - 2, "\xc3\x97", 2) || !memcmp(s + e - 2, "\xc3\xb7", 2))) return true;
    if (e >= 3 && dash_at(s, n, e - 3)) return true;
    static const char *const tails[] = {"\\times", "\\div", "\\cdot"};
    for (size_t t = 0; t < 3; t++) {
        const size_t l = strlen(tails[t]);
        if (e >= l && !memcmp(s + e - l, tails[t], l)) return true;
    }
    if (e >= 3 && !memcmp(s + e - 3, "and", 3) && !(e >= 4 && is_alnum(s[e - 4]))) {
        size_t k2 = e - 3;
        while (k2 > 0 && is_space(s[k2 - 1])) k2--;
        return k2 > 0 && is_digit(s[k2 - 1]);
    }
    return false;
}

/* The text after the chain's end i goes on with the expression, and its last link is not
 * checked: right after it a letter ("5A", "20cm") or a colon and a digit ("6:48"); then, on the
 * same line (a line break ends it: "= $528\n3 * 10 = $30" is two lines), a digit, % ( ^ / * ×
 * ÷ _ {, a point and a digit, \times \div \cdot \frac, an en dash or minus sign, a sign or x and
 * a digit, a sign and a one-letter variable ("= 30 + M"), "and" and a digit or ( ("5 and
 * 2/3"), or cents ("$1 / 2 = 50 cents"). */
static bool bad_after(const char *s, size_t n, size_t i) {
    if (i < n && is_alpha(s[i])) return true;
    if (i + 1 < n && s[i] == ':' && is_digit(s[i + 1])) return true;
    while (i < n && is_space(s[i])) {
        if (s[i] == '\n') return false;
        i++;
    }
    if (i >= n) return false;
    if (is_digit(s[i]) || strchr("%(^/*_{", s[i])) return true;
    if (s[i] == '.' && i + 1 < n && is_digit(s[i + 1])) return true; /* a full stop ends a sentence */
    if (starts(s, n, i, "\xc3\x97") || starts(s, n, i, "\xc3\xb7") || dash_at(s, n, i)) return true;
    if (starts(s, n, i, "\\times") || starts(s, n, i, "\\div") || starts(s, n, i, "\\cdot") || starts(s, n, i, "\\frac"))
        return true;
    if (s[i] == '+' || s[i] == '-' || s[i] == 'x') {
        size_t j = i + 1;
        while (j < n && is_space(s[j])) j++;
        if (j < n && is_digit(s[j])) return true;
        return s[i] != 'x' && j < n && is_alpha(s[j]) && !(j + 1 < n && is_alnum(s[j + 1]));
    }
    if (starts(s, n, i, "and") && i + 3 < n && is_space(s[i + 3])) {
        size_t j = i + 3;
        while (j < n && is_space(s[j])) j++;
        return j < n && (is_digit(s[j]) || s[j] == '(');
    }
    return starts(s, n, i, "cent");
}

#define ARITH_MAX_TERMS 64

static size_t skip_space(const char *s, size_t n, size_t i) {
    while (i < n && is_space(s[i])) i++;
    return i;
}

/* One side of a chain, NUM (OP NUM)*: its bounds, value (NAN when not evaluable), number of
 * operators, and first number (value, decimals: for a running chain and a result). */
struct side {
    size_t start, end;
    double value, lead;
    int nops, lead_dec;
};

/* * and / first, then + and - from the left; NAN on a division by zero or a NAN term. */
static double evaluate(const double *terms, const char *ops, int nt) {
    double sum = 0, prod = terms[0];
    char add = '+';
    for (int t = 0; t < nt; t++)
        if (isnan(terms[t]) || (t > 0 && ops[t] == '/' && t + 1 < nt && ops[t + 1] == '/'))
            return NAN; /* "25 / 1/3": a / (b/c) or (a/b)/c, not checked */
    for (int t = 1; t <= nt; t++) {
        if (t < nt && (ops[t] == '*' || ops[t] == '/')) {
            if (ops[t] == '*') prod *= terms[t];
            else if (terms[t] == 0) return NAN;
            else prod /= terms[t];
            continue;
        }
        sum = add == '+' ? sum + prod : sum - prod;
        if (t < nt) {
            add = ops[t];
            prod = terms[t];
        }
    }
    return sum;
}

/* A side at i: the first of a chain is NUM (OP NUM)+ (no sign), a later one RES (OP NUM)*
 * (a bare number keeps RES's rules: a sign, trailing commas, a backslash). */
static bool match_side(const char *s, size_t n, size_t i, bool first, struct side *out) {
    size_t st[ARITH_MAX_TERMS], en[ARITH_MAX_TERMS];
    char ops[ARITH_MAX_TERMS];
    int nt = 0;
    bool overflow = false;
    size_t j = match_num(s, n, i, !first);
    if (!j) return false;
    st[nt] = i;
    en[nt] = j;
    ops[nt++] = 0;
    for (;;) {
        char op;
        const size_t o = match_op(s, n, j, &op);
        if (!o) break;
        const size_t e = match_num(s, n, o, false);
        if (!e) break;
        if (nt < ARITH_MAX_TERMS) {
            st[nt] = o;
            en[nt] = e;
            ops[nt++] = op;
        } else {
            overflow = true;
        }
        j = e;
    }
    if (first && nt < 2) return false;
    double terms[ARITH_MAX_TERMS];
    int dec;
    for (int t = 0; t < nt; t++) {
        terms[t] = num_value(s, st[t], en[t], nt == 1, &dec);
        if (t == 0) out->lead_dec = dec;
    }
    out->start = i;
    out->end = j;
    out->lead = terms[0];
    out->nops = nt - 1;
    out->value = overflow ? NAN : evaluate(terms, ops, nt);
    return true;
}

#define ARITH_MAX_SIDES 32

/* SIDE (= SIDE)+ at i, the first side with an operator: the number of sides (0 when none). */
static int match_chain(const char *s, size_t n, size_t i, struct side *sides) {
    if (!match_side(s, n, i, true, &sides[0])) return 0;
    int ns = 1;
    for (;;) {
        const size_t k = skip_space(s, n, sides[ns - 1].end);
        struct side next;
        if (k >= n || s[k] != '=' || !match_side(s, n, skip_space(s, n, k + 1), false, &next)) break;
        if (ns < ARITH_MAX_SIDES) sides[ns++] = next;
        else sides[ns - 1] = next; /* (never on real text) */
    }
    return ns >= 2 ? ns : 0;
}

static bool whole(double v) { return fabs(v - nearbyint(v)) <= 1e-9 * fmax(1.0, fabs(v)); }

/* c is not v: a whole number that is not the whole value, or more than 1% (and 1e-6) away
 * and, when dec >= 0, not v rounded to dec decimals. */
static bool mismatch(double v, double c, int dec) {
    if (fabs(v - c) <= 1e-6 * fmax(1.0, fabs(v))) return false;
    if (whole(v) && whole(c)) return true;
    if (fabs(v - c) <= fmax(1e-6, 0.01 * fabs(v))) return false;
    if (dec < 0) return true;
    const double scale = pow(10.0, dec);
    return nearbyint(v * scale) / scale != c;
}

/* The verdict on L = R: R a number: not vl (rounding allowed); R an expression: neither its
 * value nor its first number (a running chain). */
static bool link_wrong(double vl, const struct side *r) {
    if (r->nops == 0) return mismatch(vl, r->value, r->lead_dec);
    return mismatch(vl, r->value, -1) && mismatch(vl, r->lead, r->lead_dec);
}

static const char *const TEXT_CMDS[] = {"\\text{", "\\mbox{", "\\mathrm{"};

/* The \text{} command at i: its length (0 when none); *close: its '}' (none inside: 0 too). */
static size_t text_cmd_at(const char *s, size_t n, size_t i, size_t *close) {
    for (size_t c = 0; c < sizeof TEXT_CMDS / sizeof TEXT_CMDS[0]; c++)
        if (starts(s, n, i, TEXT_CMDS[c])) {
            const size_t l = strlen(TEXT_CMDS[c]);
            size_t k = i + l;
            while (k < n && s[k] != '}' && s[k] != '{') k++;
            if (k >= n || s[k] != '}') return 0;
            *close = k;
            return l;
        }
    return 0;
}

/* Blanks every \text{...} that follows a number (spaces aside) in t[0..n). */
static void blank_units(char *t, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t close;
        const size_t l = t[i] == '\\' ? text_cmd_at(t, n, i, &close) : 0;
        size_t k = i;
        while (k > 0 && is_space(t[k - 1])) k--;
        if (!l || !(k > 0 && is_digit(t[k - 1]))) {
            i++;
            continue;
        }
        memset(t + i, ' ', close + 1 - i);
        i = close + 1;
    }
}

/* A variable set at i ("x =", "\text{Total} ="): its name [*na, *nb) and where its value
 * starts (*p); false when none. */
static bool var_at(const char *t, size_t n, size_t i, size_t *na, size_t *nb, size_t *p) {
    size_t j, close;
    const size_t l = t[i] == '\\' ? text_cmd_at(t, n, i, &close) : 0;
    if (l) {
        *na = i + l;
        *nb = close;
        while (*na < *nb && is_space(t[*na])) (*na)++;
        while (*nb > *na && is_space(t[*nb - 1])) (*nb)--;
        j = close + 1;
    } else if (is_alpha(t[i]) && !(i + 1 < n && is_alnum(t[i + 1])) &&
               !(i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '\\' || t[i - 1] == '_'))) {
        *na = i;
        *nb = i + 1;
        j = i + 1;
    } else {
        return false;
    }
    if (*na == *nb) return false;
    size_t e = i;
    while (e > 0 && is_space(t[e - 1])) e--;
    if (e > 0) {
        if (is_digit(t[e - 1]) || strchr("+-*/^_=)}|", t[e - 1])) return false;
        if (e >= 2 && (!memcmp(t + e - 2, "\xc3\x97", 2) || !memcmp(t + e - 2, "\xc3\xb7", 2))) return false;
        static const char *const tails[] = {"\\times", "\\div", "\\cdot"};
        for (size_t k = 0; k < 3; k++) {
            const size_t tl = strlen(tails[k]);
            if (e >= tl && !memcmp(t + e - tl, tails[k], tl)) return false;
        }
    }
    j = skip_space(t, n, j);
    if (j >= n || t[j] != '=' || (j + 1 < n && t[j + 1] == '=')) return false;
    *p = skip_space(t, n, j + 1);
    return true;
}

/* What follows a variable's value ends it: the end, a point or comma (not before a digit),
 * ; : $ \] \) or \\ (spaces aside). */
static bool stands_alone(const char *t, size_t n, size_t j) {
    j = skip_space(t, n, j);
    if (j >= n) return true;
    if (strchr(".,;:", t[j])) return !(j + 1 < n && is_digit(t[j + 1]));
    return t[j] == '$' || starts(t, n, j, "\\]") || starts(t, n, j, "\\)") || starts(t, n, j, "\\\\");
}

#define ARITH_MAX_VARS 64

struct var {
    size_t a, b; /* the name in t */
    double value;
};

static int find_var(const char *t, const struct var *vars, int nv, size_t a, size_t b) {
    for (int k = 0; k < nv; k++)
        if (vars[k].b - vars[k].a == b - a && !memcmp(t + vars[k].a, t + a, b - a)) return k;
    return -1;
}

static void add_eq(struct sa_arith_eq *out, int32_t max, int32_t *count, struct sa_arith_eq e) {
    if (*count < max) out[*count] = e;
    (*count)++;
}

int32_t sa_arith_equations(const char *s, size_t n, struct sa_arith_eq *out, int32_t max) {
    char *t = malloc(n ? n : 1); /* s with its units blanked out */
    if (!t) return 0;
    memcpy(t, s, n);
    blank_units(t, n);
    struct side sides[ARITH_MAX_SIDES];
    struct var vars[ARITH_MAX_VARS];
    int nv = 0;
    int32_t count = 0;
    size_t i = 0;
    while (i < n) {
        const int ns = match_chain(t, n, i, sides);
        if (!ns) {
            size_t na, nb, p;
            if (var_at(t, n, i, &na, &nb, &p)) {
                struct side def;
                const size_t r_end = match_num(t, n, p, true);
                const int k = find_var(t, vars, nv, na, nb);
                if (match_side(t, n, p, true, &def) && stands_alone(t, n, def.end)) {
                    if (k >= 0) vars[k].value = def.value;
                    else if (nv < ARITH_MAX_VARS) vars[nv++] = (struct var){na, nb, def.value};
                } else if (r_end && stands_alone(t, n, r_end) && k >= 0 && !isnan(vars[k].value)) {
                    int dec;
                    const double c = num_value(t, p, r_end, true, &dec);
                    if (!isnan(c))
                        add_eq(out, max, &count,
                               (struct sa_arith_eq){.start = i, .end = r_end, .value = vars[k].value, .result = c,
                                                    .wrong = mismatch(vars[k].value, c, dec), .rs = p,
                                                    .re = r_end, .bare = true});
                } else if ((!r_end || !stands_alone(t, n, r_end)) && k >= 0) {
                    vars[k] = vars[--nv]; /* forgotten */
                }
            }
            i++;
            continue;
        }
        /* finditer semantics: the chain is consumed even when the filters drop its links */
        const size_t start = i;
        i = sides[ns - 1].end;
        for (int k = 0; k + 1 < ns; k++) {
            const struct side *l = &sides[k], *r = &sides[k + 1];
            if (k == 0 && bad_before(t, n, start)) continue;
            if (k == ns - 2 && bad_after(t, n, r->end)) continue;
            if ((l->nops == 0 && r->nops == 0) || isnan(l->value) || isnan(r->value)) continue;
            add_eq(out, max, &count,
                   (struct sa_arith_eq){.start = skip_space(t, n, l->start), .end = r->end, .value = l->value,
                                        .result = r->value, .wrong = link_wrong(l->value, r), .rs = r->start,
                                        .re = r->end, .bare = r->nops == 0});
        }
    }
    free(t);
    return count;
}
/* The equation s[a, b) without its spaces, for comparing two texts' equations. */
static bool same_equation(const char *s, size_t a, size_t b, const char *t, size_t c, size_t d) {
    for (;;) {
        while (a < b && is_space(s[a])) a++;
        while (c < d && is_space(t[c])) c++;
        if (a == b || c == d) return a == b && c == d;
        if (s[a++] != t[c++]) return false;
    }
}

#define ARITH_MAX_EQ 64

bool sa_arith_edit_adds_error(const char *y1, const char *y2) {
    struct sa_arith_eq e1[ARITH_MAX_EQ], e2[ARITH_MAX_EQ];
    const size_t n1 = strlen(y1), n2 = strlen(y2);
    int32_t c1 = sa_arith_equations(y1, n1, e1, ARITH_MAX_EQ);
    int32_t c2 = sa_arith_equations(y2, n2, e2, ARITH_MAX_EQ);
    if (c1 > ARITH_MAX_EQ) c1 = ARITH_MAX_EQ;
    if (c2 > ARITH_MAX_EQ) c2 = ARITH_MAX_EQ;
    for (int32_t i = 0; i < c2; i++) {
        if (!e2[i].wrong) continue;
        bool in_draft = false;
        for (int32_t k = 0; k < c1 && !in_draft; k++)
            in_draft = e1[k].wrong && e1[k].value == e2[i].value &&
                       same_equation(y2, e2[i].start, e2[i].end, y1, e1[k].start, e1[k].end);
        if (!in_draft) return true;
    }
    return false;
}

/* ---- the calculator: false results rewritten (bench/arith_records.py fmt() and repair()) ---- */

/* Digits after the point of a written number (\, $, commas and spaces aside). */
static int written_decimals(const char *s, size_t a, size_t b) {
    for (size_t i = a; i < b; i++)
        if (s[i] == '.') {
            int d = 0;
            for (size_t k = i + 1; k < b; k++) d += is_digit(s[k]);
            return d;
        }
    return 0;
}

/* v written as the result like[a, b) was: its leading \, $ and spaces, its decimals (2 for a
 * fractional v where it had none), thousands commas when it had any. 0 when it does not fit. */
static size_t format_like(double v, const char *like, size_t a, size_t b, char *buf, size_t cap) {
    int d = written_decimals(like, a, b);
    if (d == 0 && fabs(v - nearbyint(v)) > 1e-9) d = 2;
    bool commas = memchr(like + a, ',', b - a) != NULL;
    size_t lead = a;
    if (lead < b && like[lead] == '\\') lead++;
    if (lead < b && like[lead] == '$') lead++;
    while (lead < b && is_space(like[lead])) lead++;
    if (lead > a && like[lead - 1] != '$' && !is_space(like[lead - 1])) lead = a; /* a lone \ */
    char num[352];
    const int nn = snprintf(num, sizeof num, "%.*f", d, v);
    if (nn <= 0 || (size_t)nn >= sizeof num) return 0;
    size_t k = 0;
    if (lead - a >= cap) return 0;
    memcpy(buf, like + a, lead - a);
    k = lead - a;
    const char *p = num;
    if (*p == '-') {
        if (k + 1 >= cap) return 0;
        buf[k++] = *p++;
    }
    const size_t int_len = strcspn(p, ".");
    for (size_t i = 0; p[i]; i++) {
        if (commas && i > 0 && i < int_len && (int_len - i) % 3 == 0) {
            if (k + 1 >= cap) return 0;
            buf[k++] = ',';
        }
        if (k + 1 >= cap) return 0;
        buf[k++] = p[i];
    }
    buf[k] = 0;
    return k;
}

enum sa_status sa_arith_repair(const char *s, char **out, int32_t *n_fixed) {
    *out = NULL;
    *n_fixed = 0;
    char *cur = NULL; /* the text after the passes so far (NULL: s) */
    for (int pass = 0; pass < 8; pass++) {
        const char *t = cur ? cur : s;
        const size_t n = strlen(t);
        struct sa_arith_eq eq[ARITH_MAX_EQ];
        int32_t ne = sa_arith_equations(t, n, eq, ARITH_MAX_EQ);
        if (ne > ARITH_MAX_EQ) ne = ARITH_MAX_EQ;
        /* the new text: the false bare results replaced, left to right (they do not overlap) */
        size_t cap = n + 1, len = 0, from = 0;
        int32_t fixed = 0;
        char *next = NULL;
        for (int32_t i = 0; i <= ne; i++) {
            char val[400];
            size_t vl = 0;
            if (i < ne) {
                if (!eq[i].wrong || !eq[i].bare || eq[i].rs < from) continue;
                while (eq[i].re > eq[i].rs && t[eq[i].re - 1] == ',') eq[i].re--; /* "= 38, so" */
                vl = format_like(eq[i].value, t, eq[i].rs, eq[i].re, val, sizeof val);
                if (!vl || (vl == eq[i].re - eq[i].rs && !memcmp(val, t + eq[i].rs, vl))) continue;
            } else if (!fixed) {
                break;
            }
            const size_t a = i < ne ? eq[i].rs : n, b = i < ne ? eq[i].re : n;
            const size_t need = len + (a - from) + vl + 1;
            if (need > cap || !next) {
                cap = need > 2 * cap ? need : 2 * cap;
                char *grown = realloc(next, cap);
                if (!grown) {
                    free(next);
                    free(cur);
                    return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                }
                next = grown;
            }
            memcpy(next + len, t + from, a - from);
            len += a - from;
            memcpy(next + len, val, vl);
            len += vl;
            next[len] = 0;
            from = b;
            fixed += i < ne;
        }
        if (!fixed) break;
        free(cur);
        cur = next;
        *n_fixed += fixed;
    }
    *out = cur;
    if (!cur) *n_fixed = 0;
    return SA_STATUS_OK;
}
