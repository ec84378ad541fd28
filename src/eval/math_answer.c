/* math_answer.c: answers of math problems: GSM8K gold ("#### N"), the answer of a model's
 * text (GSM8K: "####", \boxed or the last number; MATH: the last \boxed), normalisation
 * of LaTeX answers and their equivalence. Our own rules, in the spirit of the MATH
 * benchmark's is_equiv (Hendrycks et al. 2021) and Minerva's normalize_final_answer
 * (Lewkowycz et al. 2022); docs/EVAL.md lists them. */
#define _GNU_SOURCE
#include "sa/math_answer.h"

#include "core/core_impl.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small string helpers (all on malloc'd NUL-terminated strings) ---------------- */

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Trims s in place (spaces at both ends). */
static void trim(char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && is_space(s[a])) a++;
    while (n > a && is_space(s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
}

/* Replaces every `from` by `to` in *s (reallocating). false when out of memory. When
 * `need_delim`, an occurrence counts only when followed by a delimiter ("\left(" but not
 * "\leftarrow"). */
static bool replace_all(char **s, const char *from, const char *to, bool need_delim) {
    size_t fl = strlen(from);
    if (!strstr(*s, from)) return true;
    struct sa_buf b;
    sa_buf_init(&b, 0);
    const char *p = *s;
    for (;;) {
        const char *q = strstr(p, from);
        while (q && need_delim && !strchr("([{|.\\)]}<>/", q[fl] ? q[fl] : 'x')) q = strstr(q + 1, from);
        if (!q) break;
        if (sa_buf_append(&b, p, (size_t)(q - p)) || sa_buf_puts(&b, to)) goto oom;
        p = q + fl;
    }
    if (sa_buf_puts(&b, p)) goto oom;
    free(*s);
    *s = sa_buf_take(&b, NULL);
    return *s != NULL;
oom:
    sa_buf_free(&b);
    return false;
}

/* Index of the brace that closes the '{' at s[open], or -1. */
static long match_brace(const char *s, size_t open) {
    int depth = 0;
    for (size_t i = open; s[i]; i++) {
        if (s[i] == '\\' && (s[i + 1] == '{' || s[i + 1] == '}')) {
            i++;
            continue;
        }
        if (s[i] == '{') depth++;
        else if (s[i] == '}' && --depth == 0) return (long)i;
    }
    return -1;
}

/* Canonical text of a number: integers without ".0", others with up to 15 digits. */
static void fmt_num(double v, char out[64]) {
    if (v == 0) v = 0; /* -0 -> 0 */
    if (v == floor(v) && fabs(v) < 1e15) snprintf(out, 64, "%.0f", v);
    else snprintf(out, 64, "%.15g", v);
}

/* ---- numbers in running text ---------------------------------------------------------- */

struct num_tok {
    size_t start, end; /* bytes [start, end) of the token, sign included */
    char canon[64];    /* "1234.5", "-3", "1/2" */
};

/* Reads the number token whose first digit (or '.') is at s[i]. */
static size_t scan_number(const char *s, size_t i, struct num_tok *t) {
    size_t j = i;
    char digits[64];
    size_t nd = 0;
    bool dec = false, commas = false;
#define PUSH(c)                                                                          \
    do {                                                                                 \
        if (nd < sizeof digits - 1) digits[nd++] = (c);                                  \
    } while (0)
    while (is_digit(s[j])) {
        PUSH(s[j]);
        j++;
    }
    /* thousands groups: ",ddd" not followed by another digit */
    while (nd > 0 && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) && is_digit(s[j + 3]) &&
           !is_digit(s[j + 4])) {
        PUSH(s[j + 1]);
        PUSH(s[j + 2]);
        PUSH(s[j + 3]);
        j += 4;
        commas = true;
    }
    if (s[j] == '.' && is_digit(s[j + 1])) {
        if (nd == 0) PUSH('0');
        PUSH('.');
        j++;
        while (is_digit(s[j])) {
            PUSH(s[j]);
            j++;
        }
        dec = true;
    }
    digits[nd] = 0;
#undef PUSH
    /* the sign: a '-' (or U+2212) right before, whose previous non-space character does
     * not end an operand ("is -3" is negative, "5 - 3" is a subtraction) */
    size_t start = i;
    bool neg = false;
    size_t k = i;
    if (k > 0 && s[k - 1] == '$') k--; /* "-$5" */
    size_t mlen = 0;
    if (k > 0 && s[k - 1] == '-') mlen = 1;
    else if (k >= 3 && (unsigned char)s[k - 3] == 0xE2 && (unsigned char)s[k - 2] == 0x88 &&
             (unsigned char)s[k - 1] == 0x92)
        mlen = 3;
    if (mlen) {
        size_t p = k - mlen;
        while (p > 0 && is_space(s[p - 1])) p--;
        char prev = p > 0 ? s[p - 1] : ' ';
        if (!is_digit(prev) && prev != ')' && prev != ']' && prev != '}') {
            neg = true;
            start = k - mlen;
        }
    }
    double v = strtod(digits, NULL);
    if (!dec && !commas && s[j] == '/' && is_digit(s[j + 1])) {
        size_t e = j + 1;
        while (is_digit(s[e])) e++;
        if (s[e] != '.' || !is_digit(s[e + 1])) {
            snprintf(t->canon, sizeof t->canon, "%s%.*s/%.*s", neg ? "-" : "", (int)SA_MIN(nd, 30), digits,
                     (int)SA_MIN(e - j - 1, 30), s + j + 1);
            t->start = start;
            t->end = e;
            return e;
        }
    }
    fmt_num(neg ? -v : v, t->canon);
    t->start = start;
    t->end = j;
    return j;
}

/* The last (want_last) or first number token of s[0..n); false if none. */
static bool find_number(const char *s, size_t n, bool want_last, struct num_tok *out) {
    bool found = false;
    size_t i = 0;
    while (i < n && s[i]) {
        bool at = is_digit(s[i]) || (s[i] == '.' && is_digit(s[i + 1]));
        if (at && i > 0 && (is_digit(s[i - 1]) || is_alpha(s[i - 1]))) at = false; /* inside a word */
        if (!at) {
            i++;
            continue;
        }
        struct num_tok t;
        size_t e = scan_number(s, i, &t);
        if (e > n) break;
        *out = t;
        found = true;
        if (!want_last) return true;
        i = e > i ? e : i + 1;
    }
    return found;
}

/* ---- GSM8K ------------------------------------------------------------------------------ */

enum sa_status sa_math_gsm8k_gold(const char *solution, char **out) {
    *out = NULL;
    if (!solution) return sa_error(SA_STATUS_BAD_ARGUMENT, "GSM8K gold: no solution text");
    const char *h = NULL;
    for (const char *p = strstr(solution, "####"); p; p = strstr(p + 4, "####")) h = p;
    if (!h) return sa_error(SA_STATUS_NOT_FOUND, "GSM8K gold: no \"####\" line in the solution");
    h += 4;
    size_t n = strcspn(h, "\n");
    struct num_tok t;
    if (!find_number(h, n, false, &t))
        return sa_error(SA_STATUS_NOT_FOUND, "GSM8K gold: no number after \"####\"");
    *out = strdup(t.canon);
    return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "GSM8K gold: out of memory");
}

/* ---- \boxed ----------------------------------------------------------------------------- */

enum sa_status sa_math_last_boxed(const char *text, char **out) {
    *out = NULL;
    if (!text) return sa_error(SA_STATUS_BAD_ARGUMENT, "no text");
    size_t n = strlen(text);
    /* walk the occurrences of \boxed and \fbox from the end */
    for (size_t i = n; i-- > 0;) {
        if (text[i] != '\\') continue;
        size_t cl;
        if (!strncmp(text + i, "\\boxed", 6)) cl = 6;
        else if (!strncmp(text + i, "\\fbox", 5)) cl = 5;
        else continue;
        size_t j = i + cl;
        if (text[j] == '{') {
            long e = match_brace(text, j);
            if (e < 0) continue;
            *out = dupn(text + j + 1, (size_t)e - j - 1);
        } else if (text[j] == ' ') {
            while (text[j] == ' ') j++;
            size_t e = j;
            while (text[e] && text[e] != '$' && text[e] != '\n') e++;
            if (e == j) continue;
            *out = dupn(text + j, e - j);
        } else {
            continue;
        }
        if (!*out) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        trim(*out);
        return SA_STATUS_OK;
    }
    return sa_error(SA_STATUS_NOT_FOUND, "no \\boxed{} answer");
}

/* ---- extraction ------------------------------------------------------------------------- */

/* What follows the last "answer is" (case-insensitive): a $...$ span or the rest of the
 * line, cut at the first ". ". NULL when absent. */
static char *after_answer_is(const char *text) {
    const char *last = NULL;
    for (const char *p = text; (p = strcasestr(p, "answer is")); p += 9) last = p;
    if (!last) return NULL;
    const char *s = last + 9;
    while (*s == ' ' || *s == ':') s++;
    size_t n;
    if (*s == '$') {
        while (*s == '$') s++;
        n = strcspn(s, "$\n");
    } else {
        n = strcspn(s, "\n");
        const char *dot = strstr(s, ". ");
        if (dot && (size_t)(dot - s) < n) n = (size_t)(dot - s);
    }
    char *r = dupn(s, n);
    if (r) trim(r);
    if (r && !*r) {
        free(r);
        return NULL;
    }
    return r;
}

enum sa_status sa_math_extract(enum sa_math_dataset ds, const char *text, char **out) {
    *out = NULL;
    if (!text) return sa_error(SA_STATUS_BAD_ARGUMENT, "no text");
    struct num_tok t;
    if (ds == SA_MATH_GSM8K) {
        const char *h = NULL;
        for (const char *p = strstr(text, "####"); p; p = strstr(p + 4, "####")) h = p;
        if (h && find_number(h + 4, strcspn(h + 4, "\n"), false, &t)) goto number;
        char *box = NULL;
        if (sa_math_last_boxed(text, &box) == SA_STATUS_OK) {
            bool ok = find_number(box, strlen(box), true, &t);
            free(box);
            if (ok) goto number;
        }
        if (find_number(text, strlen(text), true, &t)) goto number;
        return sa_error(SA_STATUS_NOT_FOUND, "no number in the answer");
    }
    if (ds != SA_MATH_MATH) return sa_error(SA_STATUS_BAD_ARGUMENT, "unknown math dataset %d", (int)ds);
    enum sa_status st = sa_math_last_boxed(text, out);
    if (st != SA_STATUS_NOT_FOUND) return st;
    if ((*out = after_answer_is(text))) return SA_STATUS_OK;
    if (find_number(text, strlen(text), true, &t)) goto number;
    return sa_error(SA_STATUS_NOT_FOUND, "no \\boxed{} answer, \"answer is\" or number in the text");
number:
    *out = strdup(t.canon);
    return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
}

/* ---- normalisation ---------------------------------------------------------------------- */

/* Removes a trailing "\text{...}" (a unit: "5\text{ cm}") when something precedes it,
 * with a "^2"/"^3" after it; then unwraps the remaining \text{X} into X. */
static bool strip_text_groups(char **ps) {
    char *s = *ps;
    for (int guard = 0; guard < 8; guard++) {
        trim(s);
        size_t n = strlen(s);
        size_t end = n;
        if (n >= 2 && s[n - 2] == '^' && (s[n - 1] == '2' || s[n - 1] == '3')) end = n - 2;
        else if (n >= 4 && !strcmp(s + n - 4, "^{2}")) end = n - 4;
        else if (n >= 4 && !strcmp(s + n - 4, "^{3}")) end = n - 4;
        if (end == 0 || s[end - 1] != '}') break;
        /* find the '{' that the final '}' closes */
        int depth = 0;
        long open = -1;
        for (size_t i = end; i-- > 0;) {
            if (s[i] == '}') depth++;
            else if (s[i] == '{' && --depth == 0) {
                open = (long)i;
                break;
            }
        }
        if (open < 5 || strncmp(s + open - 5, "\\text", 5)) break;
        size_t g = (size_t)open - 5;
        bool before = false;
        for (size_t i = 0; i < g; i++) before |= !is_space(s[i]);
        if (!before) break;
        /* a unit is words: letters, spaces, '.', '/', '^' and digits after '^' */
        bool unit = false;
        for (size_t i = (size_t)open + 1; i < end - 1; i++) {
            char c = s[i];
            if (is_alpha(c)) unit = true;
            else if (!(c == ' ' || c == '.' || c == '/' || c == '^' || c == '\\' || c == '{' || c == '}' ||
                       (is_digit(c) && i > 0 && s[i - 1] == '^')))
                unit = false, i = end;
        }
        if (!unit) break;
        s[g] = 0;
    }
    /* unwrap \text{X} */
    for (;;) {
        char *p = strstr(s, "\\text{");
        if (!p) break;
        long e = match_brace(s, (size_t)(p - s) + 5);
        if (e < 0) break;
        size_t a = (size_t)(p - s);
        memmove(s + (size_t)e, s + (size_t)e + 1, strlen(s + e + 1) + 1); /* drop '}' */
        memmove(s + a, s + a + 6, strlen(s + a + 6) + 1);                  /* drop "\text{" */
    }
    *ps = s;
    return true;
}

/* "5 cm", "10 dollars", "3 apples each" -> the number. */
static void strip_word_units(char *s) {
    size_t i = 0;
    if (s[i] == '-' || s[i] == '+') i++;
    size_t d = i;
    while (is_digit(s[i]) || s[i] == ',' || s[i] == '.') i++;
    if (i == d || !is_space(s[i])) return;
    size_t cut = i;
    while (s[i]) {
        if (!is_alpha(s[i]) && !is_space(s[i]) && s[i] != '.') return;
        i++;
    }
    s[cut] = 0;
}

/* "x = 5" -> "5": one '=' whose left side is a short variable. */
static void strip_lhs(char *s) {
    char *eq = strchr(s, '=');
    if (!eq || strchr(eq + 1, '=')) return;
    if (eq > s && strchr("<>!", eq[-1])) return;
    size_t a = 0, b = (size_t)(eq - s);
    while (a < b && is_space(s[a])) a++;
    while (b > a && is_space(s[b - 1])) b--;
    size_t l = b - a;
    bool var = l >= 1 && l <= 2 && is_alpha(s[a]);
    if (!var && l >= 2 && l <= 8 && s[a] == '\\') {
        var = true;
        for (size_t i = a + 1; i < b; i++) var &= is_alpha(s[i]);
    }
    if (!var) return;
    memmove(s, eq + 1, strlen(eq + 1) + 1);
    trim(s);
}

static void remove_spaces(char *s) {
    char *w = s;
    for (char *r = s; *r; r++)
        if (!is_space(*r)) *w++ = *r;
    *w = 0;
}

/* One argument of \frac or \sqrt at s[i]: "{...}" or a single character (not '\'). */
static bool tex_arg(const char *s, size_t i, size_t *a, size_t *len, size_t *next) {
    if (s[i] == '{') {
        long e = match_brace(s, i);
        if (e < 0) return false;
        *a = i + 1;
        *len = (size_t)e - i - 1;
        *next = (size_t)e + 1;
        return true;
    }
    if (!s[i] || s[i] == '\\' || s[i] == '}') return false;
    *a = i;
    *len = 1;
    *next = i + 1;
    return true;
}

/* \frac12 -> \frac{1}{2}, \frac1{22} -> \frac{1}{22}, \sqrt2 -> \sqrt{2}. */
static bool fix_frac_sqrt(char **ps) {
    const char *s = *ps;
    if (!strstr(s, "\\frac") && !strstr(s, "\\sqrt")) return true;
    struct sa_buf b;
    sa_buf_init(&b, 0);
    size_t i = 0;
    while (s[i]) {
        size_t a1, l1, a2, l2, nx, nx2;
        if (!strncmp(s + i, "\\frac", 5) && tex_arg(s, i + 5, &a1, &l1, &nx) && tex_arg(s, nx, &a2, &l2, &nx2) &&
            (s[i + 5] != '{' || s[nx] != '{')) { /* braced args are left to the scan (nested fixes) */
            if (sa_buf_printf(&b, "\\frac{%.*s}{%.*s}", (int)l1, s + a1, (int)l2, s + a2)) goto oom;
            i = nx2;
        } else if (!strncmp(s + i, "\\sqrt", 5) && s[i + 5] != '[' && tex_arg(s, i + 5, &a1, &l1, &nx)) {
            if (sa_buf_printf(&b, "\\sqrt{%.*s}", (int)l1, s + a1)) goto oom;
            i = nx;
        } else {
            if (sa_buf_append(&b, s + i, 1)) goto oom;
            i++;
        }
    }
    free(*ps);
    *ps = sa_buf_take(&b, NULL);
    return *ps != NULL;
oom:
    sa_buf_free(&b);
    return false;
}

/* "^{2}" -> "^2", "_{1}" -> "_1" (one character in braces). */
static void fix_scripts(char *s) {
    for (char *p = s; *p; p++) {
        if ((*p == '^' || *p == '_') && p[1] == '{' && p[2] && p[2] != '\\' && p[2] != '{' && p[3] == '}') {
            p[1] = p[2];
            memmove(p + 2, p + 4, strlen(p + 4) + 1);
        }
    }
}

/* Plain number "[-+]digits[.digits]" or "[-+].digits" (whole string). */
static bool plain_number(const char *s, size_t n, double *v) {
    size_t i = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    size_t d0 = i;
    while (i < n && is_digit(s[i])) i++;
    size_t nint = i - d0;
    size_t nfrac = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t f0 = i;
        while (i < n && is_digit(s[i])) i++;
        nfrac = i - f0;
    }
    if (i != n || nint + nfrac == 0 || n >= 64) return false;
    char buf[64];
    memcpy(buf, s, n);
    buf[n] = 0;
    *v = strtod(buf, NULL);
    return isfinite(*v);
}

bool sa_math_number(const char *s, double *value) {
    if (!s) return false;
    size_t n = strlen(s);
    if (plain_number(s, n, value)) return true;
    double sign = 1;
    const char *p = s;
    if (*p == '-') {
        sign = -1;
        p++;
    }
    double a, b;
    if (!strncmp(p, "\\frac{", 6)) {
        long e1 = match_brace(p, 5);
        if (e1 < 0 || p[e1 + 1] != '{') return false;
        long e2 = match_brace(p, (size_t)e1 + 1);
        if (e2 < 0 || p[e2 + 1] != 0) return false;
        if (!plain_number(p + 6, (size_t)e1 - 6, &a) || !plain_number(p + e1 + 2, (size_t)(e2 - e1 - 2), &b) ||
            b == 0)
            return false;
        *value = sign * a / b;
        return true;
    }
    const char *slash = strchr(p, '/');
    if (slash && !strchr(slash + 1, '/') && plain_number(p, (size_t)(slash - p), &a) &&
        plain_number(slash + 1, strlen(slash + 1), &b) && b != 0 && p[0] != '+' && p[0] != '-' && slash[1] != '-' &&
        slash[1] != '+') {
        *value = sign * a / b;
        return true;
    }
    return false;
}

enum sa_status sa_math_normalize(const char *answer, char **out) {
    *out = NULL;
    if (!answer) return sa_error(SA_STATUS_BAD_ARGUMENT, "no answer");
    char *s = strdup(answer);
    if (!s) goto oom;
    trim(s);
    if (!strncmp(s, "\\boxed", 6) || !strncmp(s, "\\fbox", 5)) {
        char *in = NULL;
        if (sa_math_last_boxed(s, &in) == SA_STATUS_OK) {
            free(s);
            s = in;
        }
    }
    static const struct {
        const char *from, *to;
        bool delim;
    } subs[] = {
        {"\\!", "", false},       {"\\,", "", false},          {"\\;", "", false},
        {"\\:", "", false},       {"\\qquad", " ", false},     {"\\quad", " ", false},
        {"\\ ", " ", false},      {"~", " ", false},           {"\\displaystyle", "", false},
        {"\\dfrac", "\\frac", false}, {"\\tfrac", "\\frac", false}, {"\\left", "", true},
        {"\\right", "", true},    {"^{\\circ}", "", false},    {"^\\circ", "", false},
        {"\\degree", "", false},  {"\\%", "", false},          {"%", "", false},
        {"\\$", "", false},       {"$", "", false},            {"\\mbox", "\\text", false},
        {"\\textbf", "\\text", false}, {"\\textrm", "\\text", false}, {"\\mathrm", "\\text", false},
        {"\\mathbf", "\\text", false}, {"{,}", "", false},     {",\\text{and}", ",", false},
        {"\\text{and}", ",", false},
    };
    for (size_t i = 0; i < SA_ARRAY_LEN(subs); i++)
        if (!replace_all(&s, subs[i].from, subs[i].to, subs[i].delim)) goto oom;
    if (!strip_text_groups(&s)) goto oom;
    trim(s);
    strip_lhs(s);
    /* trailing '.' (end of a sentence) */
    for (size_t n = strlen(s); n > 0 && (s[n - 1] == '.' || is_space(s[n - 1])); n--) s[n - 1] = 0;
    strip_word_units(s);
    remove_spaces(s);
    for (int pass = 0; pass < 4; pass++) { /* nested: \frac{\sqrt3}{2}, \frac{\frac12}{3} */
        size_t before = strlen(s);
        if (!fix_frac_sqrt(&s)) goto oom;
        if (strlen(s) == before) break;
    }
    fix_scripts(s);
    if (s[0] == '+') memmove(s, s + 1, strlen(s));
    /* "1,234,567.5" -> plain number */
    {
        size_t i = s[0] == '-' ? 1 : 0, g = 0;
        bool ok = true, commas = false;
        while (is_digit(s[i + g])) g++;
        ok = g >= 1 && g <= 3;
        size_t j = i + g;
        while (ok && s[j] == ',') {
            ok = is_digit(s[j + 1]) && is_digit(s[j + 2]) && is_digit(s[j + 3]);
            j += 4;
            commas = true;
        }
        if (ok && s[j] == '.') {
            j++;
            while (is_digit(s[j])) j++;
        }
        if (ok && commas && s[j] == 0) {
            char *w = s;
            for (char *r = s; *r; r++)
                if (*r != ',') *w++ = *r;
            *w = 0;
        }
    }
    /* plain numbers in canonical form ("3.0" -> "3", ".5" -> "0.5") */
    double v;
    if (plain_number(s, strlen(s), &v)) {
        char num[64];
        fmt_num(v, num);
        free(s);
        s = strdup(num);
        if (!s) goto oom;
    }
    *out = s;
    return SA_STATUS_OK;
oom:
    free(s);
    return sa_error(SA_STATUS_NO_MEMORY, "normalising an answer: out of memory");
}

/* ---- equivalence ------------------------------------------------------------------------ */

static bool num_equal(double x, double y) {
    if (x == floor(x) && y == floor(y)) return x == y;
    double m = SA_MAX(fabs(x), fabs(y));
    return fabs(x - y) <= SA_MATH_REL_TOL * m;
}

/* Opening and closing bracket of a tuple/interval/set: lengths, or 0. */
static size_t open_len(const char *s) {
    if (s[0] == '(' || s[0] == '[') return 1;
    if (!strncmp(s, "\\{", 2)) return 2;
    return 0;
}
static size_t close_len(const char *s, size_t n) {
    if (n >= 2 && !strcmp(s + n - 2, "\\}")) return 2;
    if (n >= 1 && (s[n - 1] == ')' || s[n - 1] == ']')) return 1;
    return 0;
}

static bool equiv_norm(const char *a, const char *b, int depth);

/* Elements of two bracketed lists, compared pairwise. */
static bool equiv_tuple(const char *a, const char *b, int depth) {
    size_t na = strlen(a), nb = strlen(b);
    size_t oa = open_len(a), ob = open_len(b), ca = close_len(a, na), cb = close_len(b, nb);
    if (!oa || !ca || oa != ob || ca != cb || a[0] != b[0] || a[na - 1] != b[nb - 1]) return false;
    if (na < oa + ca || nb < ob + cb) return false;
    const char *pa = a + oa, *pb = b + ob;
    const char *ea = a + na - ca, *eb = b + nb - cb;
    int n_el = 0;
    for (;;) {
        /* next top-level element of each */
        const char *qa = pa, *qb = pb;
        int d = 0;
        while (qa < ea && !(d == 0 && *qa == ',')) {
            if (strchr("([{", *qa)) d++;
            else if (strchr(")]}", *qa)) d--;
            qa++;
        }
        d = 0;
        while (qb < eb && !(d == 0 && *qb == ',')) {
            if (strchr("([{", *qb)) d++;
            else if (strchr(")]}", *qb)) d--;
            qb++;
        }
        char *xa = dupn(pa, (size_t)(qa - pa)), *xb = dupn(pb, (size_t)(qb - pb));
        bool ok = xa && xb && equiv_norm(xa, xb, depth + 1);
        free(xa);
        free(xb);
        if (!ok) return false;
        n_el++;
        bool enda = qa >= ea, endb = qb >= eb;
        if (enda != endb) return false;
        if (enda) break;
        pa = qa + 1;
        pb = qb + 1;
    }
    return n_el >= 2;
}

static bool equiv_norm(const char *a, const char *b, int depth) {
    double x, y;
    bool nx = sa_math_number(a, &x), ny = sa_math_number(b, &y);
    if (nx && ny) return num_equal(x, y);
    if (!strcmp(a, b)) return true;
    if (depth < 8) return equiv_tuple(a, b, depth);
    return false;
}

bool sa_math_equiv(const char *a, const char *b) {
    if (!a || !b) return false;
    char *na = NULL, *nb = NULL;
    bool r = false;
    if (sa_math_normalize(a, &na) == SA_STATUS_OK && sa_math_normalize(b, &nb) == SA_STATUS_OK)
        r = equiv_norm(na, nb, 0);
    free(na);
    free(nb);
    return r;
}

bool sa_math_is_correct(enum sa_math_dataset ds, const char *model_text, const char *gold) {
    char *pred = NULL;
    if (sa_math_extract(ds, model_text, &pred) != SA_STATUS_OK) return false;
    bool r = sa_math_equiv(pred, gold);
    free(pred);
    return r;
}
