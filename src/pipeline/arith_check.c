/* arith_check.c: the arithmetic check of an edit (issue 13; not in the paper).
 *
 * Finds the equations a sentence writes out ("17 + 17 + 17 + 17 = 68", "\$5 \times 365 = \$1825")
 * and evaluates their left side. The rules are those of the calculator that labels correction
 * records (bench/arith_records.py, `equations()`), so that what the aligner was trained to fix
 * and what the pipeline refuses to write are one definition; tests/py/test_arith_check.py
 * compares the two over every sentence of the shipped records.
 *
 * An equation is  NUM (OP NUM)+ \s* = \s* RES  matched left to right without overlap, where
 *   NUM = \\?\$?\s*\d[\d,]*(\.\d+)?   OP = \s*(\times|\div|\cdot|×|÷|*|/|+|-|x)\s*
 *   RES = \\?\$?\s*-?\d[\d,]*(\.\d+)?
 * and it is kept only when well delimited: the text before it (trailing spaces dropped) does
 * not end in one of ( ) ^ { } / * + - × ÷ _ or \times \div \cdot (unless it ends in \( \[ \{,
 * the opening of a LaTeX block), nor in '=' after a number (a chain; after a label such as
 * "\text{Total} =" the equation stands on its own), and the text after it does not go on with a digit, % ( ^ / *
 * × ÷ _ {, a point and a digit, \times \div \cdot \frac, a sign and a digit, or x and a digit (a chain, a fraction or
 * a longer expression that was cut). Its left side is evaluated with * and / before + and -;
 * an expression with anything else (a stray backslash, a literal Python would refuse such as
 * 05, a division by zero) is not checked. A result is wrong when it is more than 1% (and 1e-6)
 * away from the value and is not the value rounded to the result's decimals. */
#include "pipeline/pipeline_impl.h"

#include <ctype.h>
#include <math.h>
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

/* The text before s[start] ends in an operator, a bracket or '=' (a chain or part of a longer
 * expression): the match is not an equation of its own. */
static bool bad_before(const char *s, size_t start) {
    size_t e = start;
    while (e > 0 && is_space(s[e - 1])) e--;
    if (e == 0) return false;
    if (e >= 2 && s[e - 2] == '\\' && (s[e - 1] == '(' || s[e - 1] == '[' || s[e - 1] == '{')) return false;
    if (s[e - 1] == '=') { /* a chain ("2 + 3 = 5 + 1 = 6") after a number; after a label, not */
        size_t k = e - 1;
        while (k > 0 && is_space(s[k - 1])) k--;
        return k > 0 && is_digit(s[k - 1]);
    }
    if (strchr("()^{}/*+-_", s[e - 1])) return true;
    if (e >= 2 && (!memcmp(s + e - 2, "\xc3\x97", 2) || !memcmp(s + e - 2, "\xc3\xb7", 2))) return true;
    static const char *const tails[] = {"\\times", "\\div", "\\cdot"};
    for (size_t k = 0; k < 3; k++) {
        const size_t l = strlen(tails[k]);
        if (e >= l && !memcmp(s + e - l, tails[k], l)) return true;
    }
    return false;
}

/* The text after the match goes on with the expression. */
static bool bad_after(const char *s, size_t n, size_t i) {
    while (i < n && is_space(s[i])) i++;
    if (i >= n) return false;
    if (is_digit(s[i]) || strchr("%(^/*_{", s[i])) return true;
    if (s[i] == '.' && i + 1 < n && is_digit(s[i + 1])) return true; /* a full stop ends a sentence */
    if (starts(s, n, i, "\xc3\x97") || starts(s, n, i, "\xc3\xb7")) return true;
    if (starts(s, n, i, "\\times") || starts(s, n, i, "\\div") || starts(s, n, i, "\\cdot") || starts(s, n, i, "\\frac"))
        return true;
    if (s[i] == '+' || s[i] == '-' || s[i] == 'x') {
        size_t j = i + 1;
        while (j < n && is_space(s[j])) j++;
        return j < n && is_digit(s[j]);
    }
    return false;
}

#define ARITH_MAX_TERMS 64

/* Tries the equation pattern at i. On a match: *end, the value of the left side in *value
 * (NAN when not evaluable) and the result's bounds. */
static bool match_equation(const char *s, size_t n, size_t i, size_t *end, double *value, size_t *ra, size_t *rb) {
    double terms[ARITH_MAX_TERMS];
    char ops[ARITH_MAX_TERMS];
    int nt = 0, dec;
    bool ok = true;
    size_t j = match_num(s, n, i, false);
    if (!j) return false;
    terms[nt++] = num_value(s, i, j, false, &dec);
    for (;;) {
        char op;
        const size_t o = match_op(s, n, j, &op);
        if (!o) break;
        const size_t e = match_num(s, n, o, false);
        if (!e) break;
        if (nt < ARITH_MAX_TERMS) {
            ops[nt] = op;
            terms[nt++] = num_value(s, o, e, false, &dec);
        } else {
            ok = false;
        }
        j = e;
    }
    if (nt < 2) return false;
    size_t k = j;
    while (k < n && is_space(s[k])) k++;
    if (k >= n || s[k] != '=') return false;
    k++;
    while (k < n && is_space(s[k])) k++;
    const size_t r_end = match_num(s, n, k, true);
    if (!r_end) return false;
    *end = r_end;
    *ra = k;
    *rb = r_end;
    /* * and / first, then + and - from the left */
    double sum = 0, prod = terms[0];
    char add = '+';
    for (int t = 1; t <= nt && ok; t++) {
        if (t < nt && (ops[t] == '*' || ops[t] == '/')) {
            if (ops[t] == '*') prod *= terms[t];
            else if (terms[t] == 0) ok = false;
            else prod /= terms[t];
            continue;
        }
        sum = add == '+' ? sum + prod : sum - prod;
        if (t < nt) {
            add = ops[t];
            prod = terms[t];
        }
    }
    *value = ok ? sum : NAN;
    return true;
}

int32_t sa_arith_equations(const char *s, size_t n, struct sa_arith_eq *out, int32_t max) {
    int32_t count = 0;
    size_t i = 0;
    while (i < n) {
        size_t end, ra, rb;
        double v;
        if (!match_equation(s, n, i, &end, &v, &ra, &rb)) {
            i++;
            continue;
        }
        /* finditer semantics: the match is consumed even when the filters drop it */
        const size_t start = i;
        i = end > start ? end : start + 1;
        if (bad_before(s, start) || bad_after(s, n, end) || isnan(v)) continue;
        int dec;
        const double c = num_value(s, ra, rb, true, &dec);
        if (isnan(c)) continue;
        bool wrong = false;
        if (!(fabs(v - c) <= fmax(1e-6, 0.01 * fabs(v)))) {
            const double scale = pow(10.0, dec);
            wrong = nearbyint(v * scale) / scale != c;
        }
        if (count < max) {
            /* the match starts after its leading spaces (the pattern may take them in) */
            size_t a = start;
            while (a < end && is_space(s[a])) a++;
            out[count] = (struct sa_arith_eq){.start = a, .end = end, .value = v, .result = c, .wrong = wrong};
        }
        count++;
    }
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
            in_draft = e1[k].wrong && same_equation(y2, e2[i].start, e2[i].end, y1, e1[k].start, e1[k].end);
        if (!in_draft) return true;
    }
    return false;
}
