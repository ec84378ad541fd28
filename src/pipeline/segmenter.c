/* segmenter.c: the sentence/line segmenter (sa/segment.h). A resumable left-to-right scanner
 * over the accumulated text: each step decides at its position (advancing, maybe recording a
 * boundary) or reports that it needs more text. Every look past the scan position goes
 * through at(), which answers NEED beyond the received bytes until finish, and no decision
 * reads the text length otherwise, so the boundaries do not depend on how the text was cut
 * into pushes. Rules, decisions and failure modes: docs/internals/segmenter.md. */
#include "sa/segment.h"

#include "core/core_impl.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

/* at() results besides a byte value */
#define EOT (-1)  /* end of the text (after finish) or of the lookahead limit */
#define NEED (-2) /* past the bytes received so far */

/* step and helper results besides 0 (done, or progressed); negative: enum sa_status */
#define R_NEED 1
#define R_DONE 2
#define TRY(x)                                                                           \
    do {                                                                                 \
        int r_ = (x);                                                                    \
        if (r_) return r_;                                                               \
    } while (0)

#define LIMIT_SLACK 512     /* lookahead past 2 * max_bytes from the unit start */
#define INDENT_MAX 32       /* indentation looked through to classify a line */
#define OPENERS_MAX 8       /* opening quotes/brackets skipped to find the next letter */
#define WORD_MAX 64         /* longest word checked against the abbreviation lists */
#define MATH_INLINE_MAX 256 /* longest $...$ span looked for */
#define RULE_LINE_MAX 64    /* longest "- - -" line recognized as a rule */
#define TERM_RUN_MAX 32     /* terminators and closers taken as one run */

enum mode {
    MODE_TEXT,
    MODE_FENCE,           /* ``` or ~~~ code block, until the closing fence line */
    MODE_DISPLAY_DOLLAR,  /* $$ ... $$ */
    MODE_DISPLAY_BRACKET, /* \[ ... \] */
    MODE_INLINE_PAREN,    /* \( ... \) */
    MODE_INLINE_CODE,     /* `...`, until the same number of backticks or the newline */
};

enum line_kind {
    LINE_TEXT,
    LINE_LIST,        /* "- ", "* ", "1. ", "1) ", "a. ", "iv) ", "(a) " */
    LINE_QUOTE,       /* "> " */
    LINE_HEADING,     /* "# " .. "###### " */
    LINE_TABLE,       /* "|" */
    LINE_RULE,        /* "---", "* * *", "___" */
    LINE_FENCE_OPEN,  /* ``` or ~~~ */
    LINE_FENCE_CLOSE, /* the closing fence line of a code block */
};

struct sa_segmenter {
    struct sa_segment_params p;
    char *text; /* (cap) accumulated bytes, first len valid */
    size_t len, cap;
    bool finished;   /* finish was called: at() answers EOT past len */
    bool final_done; /* the last unit was recorded */

    /* scanner state: bytes before pos are decided */
    size_t pos;
    size_t start;       /* start of the current unit (the last boundary) */
    size_t content_end; /* end of the last non-whitespace byte scanned */
    enum mode mode;
    enum line_kind line; /* kind of the line pos is on */
    size_t line_at;      /* the line start classified last (SIZE_MAX: none) */
    int fence_ch;        /* '`' or '~' */
    size_t fence_len, ticks;

    size_t *bounds; /* (cap_bounds) boundaries recorded, n_given of them returned */
    size_t n_bounds, cap_bounds, n_given;
};

struct sa_segment_params sa_segment_default_params(void) {
    struct sa_segment_params p = {.unit = SA_SEGMENT_SENTENCE, .max_bytes = 1024};
    return p;
}

/* ---- reading the text ---- */

static size_t sat_add(size_t a, size_t b) {
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t lookahead_limit(const struct sa_segmenter *g) {
    if (!g->p.max_bytes) return SIZE_MAX;
    return sat_add(g->start, sat_add(sat_add(g->p.max_bytes, g->p.max_bytes), LIMIT_SLACK));
}

/* The byte at i, EOT or NEED. */
static int at(const struct sa_segmenter *g, size_t i) {
    if (i >= lookahead_limit(g)) return EOT;
    if (i < g->len) return (unsigned char)g->text[i];
    return g->finished ? EOT : NEED;
}

static bool is_ws(int b) {
    return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v';
}
static bool is_digit(int b) {
    return b >= '0' && b <= '9';
}
static bool is_upper(int b) {
    return b >= 'A' && b <= 'Z';
}
static bool is_alpha(int b) {
    return (b >= 'a' && b <= 'z') || is_upper(b);
}

/* The character at i: *cp (-1 for a byte that does not start a valid UTF-8 character; it
 * then counts as one byte) and its length *n. Returns 0, EOT or NEED. */
static int char_at(const struct sa_segmenter *g, size_t i, int32_t *cp, size_t *n) {
    int b = at(g, i);
    if (b < 0) return b;
    *n = 1;
    *cp = b;
    if (b < 0x80) return 0;
    *cp = -1;
    size_t len;
    int32_t c, min;
    if (b >= 0xC2 && b <= 0xDF) len = 2, c = b & 0x1F, min = 0x80;
    else if (b >= 0xE0 && b <= 0xEF) len = 3, c = b & 0x0F, min = 0x800;
    else if (b >= 0xF0 && b <= 0xF4) len = 4, c = b & 0x07, min = 0x10000;
    else return 0;
    for (size_t k = 1; k < len; k++) {
        int x = at(g, i + k);
        if (x == NEED) return NEED;
        if (x == EOT || (x & 0xC0) != 0x80) return 0;
        c = (c << 6) | (x & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    *n = len;
    return 0;
}

static bool is_cjk_term(int32_t c) {
    return c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0xFF61; /* 。！？｡ */
}
static bool is_term(int32_t c) {
    return c == '.' || c == '!' || c == '?' || c == 0x2026 /* … */ || is_cjk_term(c);
}
/* closing quotes, brackets and markdown emphasis that stay with the sentence before them */
static bool is_closer(int32_t c) {
    switch (c) {
    case '"': case '\'': case ')': case ']': case '}': case '*': case '_':
    case 0x2019: case 0x201D: case 0x00BB: case 0x300D: case 0x300F: case 0x3011: case 0x300B: case 0xFF09:
        return true;
    default:
        return false;
    }
}
/* opening quotes and brackets looked through to find the first letter of what follows */
static bool is_opener(int32_t c) {
    switch (c) {
    case '"': case '\'': case '(': case '[': case '{': case '*': case '_':
    case 0x2018: case 0x201C: case 0x00AB: case 0x300C: case 0x300E: case 0x3010: case 0x300A: case 0xFF08:
    case 0x00BF: case 0x00A1:
        return true;
    default:
        return false;
    }
}

enum next {
    NEXT_END,    /* the text (or the lookahead) ends */
    NEXT_LOWER,  /* lowercase letter: a continuation */
    NEXT_UPPER,  /* uppercase or titlecase letter */
    NEXT_DIGIT,
    NEXT_LETTER, /* a letter without case (CJK, ...) */
    NEXT_CONT,   /* , ; : */
    NEXT_OTHER,
};

static enum next class_of(int32_t c) {
    if (c < 0) return NEXT_OTHER;
    if (c < 0x80) {
        if (c >= 'a' && c <= 'z') return NEXT_LOWER;
        if (is_upper(c)) return NEXT_UPPER;
        if (is_digit(c)) return NEXT_DIGIT;
        if (c == ',' || c == ';' || c == ':') return NEXT_CONT;
        return NEXT_OTHER;
    }
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LL: return NEXT_LOWER;
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LT: return NEXT_UPPER;
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_LM: return NEXT_LETTER;
    case UTF8PROC_CATEGORY_ND: return NEXT_DIGIT;
    default: return NEXT_OTHER;
    }
}

/* Class of the first character at i after up to OPENERS_MAX opening quotes/brackets. */
static int next_class(const struct sa_segmenter *g, size_t i, enum next *out) {
    for (int k = 0;; k++) {
        int32_t c;
        size_t n;
        int r = char_at(g, i, &c, &n);
        if (r == NEED) return R_NEED;
        if (r == EOT) {
            *out = NEXT_END;
            return 0;
        }
        if (k < OPENERS_MAX && is_opener(c)) {
            i += n;
            continue;
        }
        *out = class_of(c);
        return 0;
    }
}

/* The whitespace run from i: *end where it stops (at(*end) is EOT or a non-space byte), *nl
 * the '\n' in it, *after_nl the position after the last '\n' (i if none). */
static int ws_run(const struct sa_segmenter *g, size_t i, size_t *end, size_t *nl, size_t *after_nl) {
    *nl = 0;
    *after_nl = i;
    for (;; i++) {
        int b = at(g, i);
        if (b == NEED) return R_NEED;
        if (b == EOT || !is_ws(b)) break;
        if (b == '\n') (*nl)++, *after_nl = i + 1;
    }
    *end = i;
    return 0;
}

/* ---- line classification ---- */

struct line_info {
    enum line_kind kind;
    size_t body; /* where scanning resumes: after an ordered list marker or a fence run */
    int fence_ch;
    size_t fence_len;
};

static bool is_block_start(enum line_kind k) {
    return k != LINE_TEXT && k != LINE_FENCE_CLOSE;
}

/* "N" "x" "iv" "IV" (one to nine digits, one letter, or up to six roman digits i/v/x of one
 * case) followed at j by '.' or ')' (close: ')' only) and a space or tab. */
static int ordinal_marker(const struct sa_segmenter *g, size_t i, bool paren_only, size_t *after) {
    *after = 0;
    size_t j = i;
    int b = at(g, j);
    if (b == NEED) return R_NEED;
    if (is_digit(b)) {
        while (is_digit(b = at(g, j)) && j - i < 10) j++;
        if (b == NEED) return R_NEED;
        if (j - i > 9) return 0;
    } else if (is_alpha(b)) {
        bool lower_roman = true, upper_roman = true;
        while (is_alpha(b = at(g, j)) && j - i < 7) {
            lower_roman &= b == 'i' || b == 'v' || b == 'x';
            upper_roman &= b == 'I' || b == 'V' || b == 'X';
            j++;
            if (j - i >= 2 && !lower_roman && !upper_roman) return 0; /* a word, decided early */
        }
        if (b == NEED) return R_NEED;
        if (j - i > 6) return 0;
    } else {
        return 0;
    }
    if (!(b == ')' || (b == '.' && !paren_only))) return 0;
    int s = at(g, j + 1);
    if (s == NEED) return R_NEED;
    if (s == ' ' || s == '\t') *after = j + 1;
    return 0;
}

/* Classifies the line that starts at ls (markdown block starts). */
static int classify_line(const struct sa_segmenter *g, size_t ls, struct line_info *li) {
    li->kind = LINE_TEXT;
    li->body = ls;
    size_t i = ls;
    int b;
    for (;; i++) {
        b = at(g, i);
        if (b == NEED) return R_NEED;
        if (b != ' ' && b != '\t') break;
        if (i - ls >= INDENT_MAX) return 0;
    }
    if (b == EOT) return 0;
    size_t j = i, after;
    switch (b) {
    case '#': {
        int x;
        while ((x = at(g, j)) == '#' && j - i < 7) j++;
        if (x == NEED) return R_NEED;
        if (j - i <= 6 && (x == ' ' || x == '\t' || x == '\n' || x == '\r' || x == EOT)) li->kind = LINE_HEADING;
        return 0;
    }
    case '`':
    case '~': {
        int x;
        while ((x = at(g, j)) == b) j++;
        if (x == NEED) return R_NEED;
        if (j - i >= 3) {
            li->kind = LINE_FENCE_OPEN;
            li->body = j;
            li->fence_ch = b;
            li->fence_len = j - i;
        }
        return 0;
    }
    case '|':
        li->kind = LINE_TABLE;
        return 0;
    case '>':
        li->kind = LINE_QUOTE;
        return 0;
    case '-':
    case '*':
    case '_': {
        size_t count = 0;
        int x;
        for (;; j++) {
            x = at(g, j);
            if (x == NEED) return R_NEED;
            if (j - i > RULE_LINE_MAX) break;
            if (x == b) count++;
            else if (x != ' ' && x != '\t') break;
        }
        if (count >= 3 && (x == '\n' || x == '\r' || x == EOT)) {
            li->kind = LINE_RULE;
            return 0;
        }
        if (b == '_') return 0;
        x = at(g, i + 1);
        if (x == NEED) return R_NEED;
        if (x == ' ' || x == '\t') li->kind = LINE_LIST;
        return 0;
    }
    case '(':
        TRY(ordinal_marker(g, i + 1, true, &after));
        if (after) li->kind = LINE_LIST, li->body = after;
        return 0;
    default:
        TRY(ordinal_marker(g, i, false, &after));
        if (after) li->kind = LINE_LIST, li->body = after;
        return 0;
    }
}

/* Whether the line at ls closes the open fence: indentation, >= fence_len fence characters,
 * then only spaces until the newline. *end: after the fence characters. */
static int fence_close(const struct sa_segmenter *g, size_t ls, bool *close, size_t *end) {
    *close = false;
    size_t i = ls;
    int b;
    for (;; i++) {
        b = at(g, i);
        if (b == NEED) return R_NEED;
        if (b != ' ' && b != '\t') break;
        if (i - ls >= INDENT_MAX) return 0;
    }
    size_t j = i;
    while ((b = at(g, j)) == g->fence_ch) j++;
    if (b == NEED) return R_NEED;
    if (j - i < g->fence_len) return 0;
    for (size_t k = j;; k++) {
        b = at(g, k);
        if (b == NEED) return R_NEED;
        if (b == '\n' || b == EOT) break;
        if (b != ' ' && b != '\t' && b != '\r') return 0;
    }
    *close = true;
    *end = j;
    return 0;
}

/* ---- words before a terminator ---- */

/* Titles: never end a sentence (case-sensitive). */
static const char *const abbr_title[] = {
    "Mr", "Mrs", "Ms", "Mx", "Dr", "Prof", "St", "Rev", "Fr", "Gen", "Sen", "Rep", "Gov", "Pres",
    "Capt", "Lt", "Col", "Sgt", "Maj", "Cpl", "Adm", "Hon", "Mt", "Ft", "Messrs", "Mme", "Mlle",
};
/* Never end a sentence (any case). */
static const char *const abbr_always[] = {
    "e.g", "i.e", "vs", "cf", "viz", "approx", "incl", "esp", "w.r.t", "a.k.a", "resp",
};
/* Do not end a sentence before a number ("Fig. 3", "No. 5", "Jan. 12"; any case). */
static const char *const abbr_numeric[] = {
    "no", "nos", "fig", "figs", "eq", "eqs", "sec", "secs", "ch", "chap", "vol", "vols", "pp",
    "p", "art", "tab", "ref", "refs", "thm", "lem", "def", "ex", "pt", "pts", "para", "ca", "op",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
};

static bool in_list(const char *const *list, size_t n, const char *w, size_t wn, bool any_case) {
    for (size_t k = 0; k < n; k++) {
        if (strlen(list[k]) != wn) continue;
        if (any_case ? !strncasecmp(list[k], w, wn) : !memcmp(list[k], w, wn)) return true;
    }
    return false;
}

/* Start of the non-space word that ends at e (bounded by WORD_MAX; *too_long if longer). */
static size_t word_start(const struct sa_segmenter *g, size_t e, bool *too_long) {
    size_t w = e;
    while (w > 0 && !is_ws((unsigned char)g->text[w - 1]) && e - w < WORD_MAX) w--;
    *too_long = w > 0 && !is_ws((unsigned char)g->text[w - 1]);
    return w;
}

/* Skips opening quotes/brackets at the start of text[w..e). */
static size_t skip_openers(const struct sa_segmenter *g, size_t w, size_t e) {
    while (w < e) {
        const unsigned char *s = (const unsigned char *)g->text + w;
        if (strchr("\"'([{*_", s[0]) && s[0]) w++;
        else if (e - w >= 3 && s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0x9C || s[2] == 0x98)) w += 3; /* “ ‘ */
        else if (e - w >= 2 && s[0] == 0xC2 && (s[1] == 0xAB || s[1] == 0xBF || s[1] == 0xA1)) w += 2; /* « ¿ ¡ */
        else break;
    }
    return w;
}

/* "1" .. "999", one letter, or a roman number (i/v/x, one case, up to 4): a list marker when
 * it starts a unit mid-line ("... done. 2. Next"). */
static bool is_marker_word(const char *w, size_t n) {
    if (n == 0) return false;
    if (n == 1 && is_alpha((unsigned char)w[0])) return true;
    bool digits = n <= 3, lower = n <= 4, upper = n <= 4;
    for (size_t k = 0; k < n; k++) {
        digits &= is_digit((unsigned char)w[k]);
        lower &= w[k] == 'i' || w[k] == 'v' || w[k] == 'x';
        upper &= w[k] == 'I' || w[k] == 'V' || w[k] == 'X';
    }
    return digits || lower || upper;
}

/* Whether the token before position w on the same line is an initial ("J." in "J. K."). */
static bool prev_is_initial(const struct sa_segmenter *g, size_t w) {
    size_t e = w;
    while (e > 0 && (g->text[e - 1] == ' ' || g->text[e - 1] == '\t')) e--;
    if (e == w || e < 2) return false;
    bool too_long;
    size_t s = word_start(g, e, &too_long);
    s = skip_openers(g, s, e);
    return e - s == 2 && is_upper((unsigned char)g->text[s]) && g->text[s + 1] == '.';
}

/* ---- recording boundaries ---- */

/* Records a boundary at b if it is past the unit start and (unless forced) the unit has
 * non-space content. Returns 1 if recorded, 0 if not, SA_STATUS_NO_MEMORY. */
static int emit(struct sa_segmenter *g, size_t b, bool force) {
    if (b <= g->start) return 0;
    if (!force && g->content_end <= g->start) return 0;
    if (g->n_bounds == g->cap_bounds) {
        size_t cap = g->cap_bounds ? 2 * g->cap_bounds : 16;
        size_t *nb = realloc(g->bounds, cap * sizeof *nb);
        if (!nb) return sa_error(SA_STATUS_NO_MEMORY, "segmenter: out of memory for %zu boundaries", cap);
        g->bounds = nb;
        g->cap_bounds = cap;
    }
    g->bounds[g->n_bounds++] = b;
    g->start = b;
    return 1;
}

static void advance(struct sa_segmenter *g, size_t to, bool content) {
    g->pos = to;
    if (content) g->content_end = to;
}

/* ---- scanner steps ---- */

/* The run-on guard (max_bytes): may record a boundary; the step at pos goes on. */
static int forced(struct sa_segmenter *g) {
    size_t max = g->p.max_bytes, pos = g->pos;
    if (!max || pos < g->start) return 0;
    size_t n = pos - g->start;
    int b = (unsigned char)g->text[pos];
    if (n >= sat_add(max, max)) {
        /* hard cut: at a character start (a lone continuation byte of bad input: 3 at most) */
        if ((b & 0xC0) != 0x80 || n >= sat_add(sat_add(max, max), 3)) {
            int r = emit(g, pos, true);
            if (r < 0) return r;
        }
        return 0;
    }
    if (n >= max && g->content_end > g->start && is_ws(b)) {
        size_t e, nl, after;
        TRY(ws_run(g, pos, &e, &nl, &after));
        if (at(g, e) == EOT) return 0;
        int r = emit(g, nl ? after : e, false);
        if (r < 0) return r;
    }
    return 0;
}

/* Whether a run of . ! ? … ends the sentence. pos: the run's start, e: the first byte after
 * the whitespace that follows the run and its closers, nl: newlines in that whitespace. */
static int decide(const struct sa_segmenter *g, size_t pos, size_t e, size_t nl, bool single_period, bool ellipsis,
                  bool *cut) {
    *cut = false;
    enum next nx;
    TRY(next_class(g, e, &nx));
    if (nx == NEXT_END || nx == NEXT_LOWER || nx == NEXT_CONT) return 0;
    if (ellipsis) {
        *cut = nx == NEXT_UPPER || nx == NEXT_LETTER;
        return 0;
    }
    *cut = true;
    if (!single_period) return 0;
    bool too_long;
    size_t w0 = word_start(g, pos, &too_long);
    if (too_long) return 0;
    size_t w = skip_openers(g, w0, pos);
    const char *word = g->text + w;
    size_t wn = pos - w;
    if (w0 == g->start && nl == 0 && w == w0 && is_marker_word(word, wn)) goto no_cut;
    if (in_list(abbr_title, SA_ARRAY_LEN(abbr_title), word, wn, false)) goto no_cut;
    if (in_list(abbr_always, SA_ARRAY_LEN(abbr_always), word, wn, true)) goto no_cut;
    if (nx == NEXT_DIGIT && in_list(abbr_numeric, SA_ARRAY_LEN(abbr_numeric), word, wn, true)) goto no_cut;
    if (wn == 1 && is_upper((unsigned char)word[0]) && nx == NEXT_UPPER) {
        /* initials: "J. K. Rowling" (not "George W. Bush": "Farm B. He" is more common here) */
        if (prev_is_initial(g, w0)) goto no_cut;
        int x0 = at(g, e), x1 = at(g, e + 1), x2 = at(g, e + 2);
        if (x0 == NEED || (is_upper(x0) && (x1 == NEED || (x1 == '.' && x2 == NEED)))) return R_NEED;
        if (is_upper(x0) && x1 == '.' && x2 >= 0 && is_ws(x2)) goto no_cut;
    }
    return 0;
no_cut:
    *cut = false;
    return 0;
}

/* A run of terminators at pos, in a sentence-mode text line. */
static int step_terminator(struct sa_segmenter *g) {
    size_t pos = g->pos, q = pos;
    size_t n_dot = 0, n_bang = 0, n_ell = 0, n_cjk = 0, n_first = 0;
    bool closer = false;
    for (int k = 0; k < TERM_RUN_MAX; k++) {
        int32_t c;
        size_t n;
        int r = char_at(g, q, &c, &n);
        if (r == NEED) return R_NEED;
        if (r == EOT) break;
        if (is_term(c)) {
            n_dot += c == '.';
            n_bang += c == '!' || c == '?';
            n_ell += c == 0x2026;
            n_cjk += is_cjk_term(c);
            if (!closer) n_first++;
        } else if (is_closer(c)) {
            closer = true;
        } else {
            break;
        }
        q += n;
    }
    int b = at(g, q);
    if (b == NEED) return R_NEED;
    if (b == EOT || (!n_cjk && !is_ws(b))) {
        advance(g, q, true); /* "3.14", "e.g.,", "a.b@c.de", or the end */
        return 0;
    }
    size_t e, nl, after;
    TRY(ws_run(g, q, &e, &nl, &after));
    if (at(g, e) == EOT) {
        advance(g, q, true);
        return 0;
    }
    bool cut = true;
    if (!n_cjk) {
        bool single = n_first == 1 && n_dot == 1 && !n_bang && !n_ell;
        bool ellipsis = (n_dot >= 3 || n_ell) && !n_bang;
        TRY(decide(g, pos, e, nl, single, ellipsis, &cut));
    }
    g->content_end = q;
    if (cut) {
        size_t bnd = nl ? after : e;
        int r = emit(g, bnd, false);
        if (r < 0) return r;
        if (r) {
            g->pos = bnd;
            return 0;
        }
    }
    advance(g, q, true);
    return 0;
}

/* The last non-space byte of the line that ends at the '\n' at pos (0: none). */
static int line_last(const struct sa_segmenter *g, size_t pos) {
    while (pos > 0) {
        int b = (unsigned char)g->text[pos - 1];
        if (b == '\n') return 0;
        if (b != ' ' && b != '\t' && b != '\r') return b;
        pos--;
    }
    return 0;
}

/* A line ending with these goes on on the next line: no boundary at the newline. */
static bool is_cont_char(int b) {
    return b && strchr(",([{=+-/\\&^<", b);
}

/* A '\n' in text mode. */
static int step_newline(struct sa_segmenter *g) {
    size_t pos = g->pos, e, nl, after;
    TRY(ws_run(g, pos, &e, &nl, &after));
    bool cut = false;
    if (at(g, e) == EOT) {
        cut = false;
    } else if (g->p.unit == SA_SEGMENT_LINE || nl >= 2) {
        cut = true;
    } else if (g->line == LINE_HEADING || g->line == LINE_RULE || g->line == LINE_FENCE_CLOSE) {
        cut = true;
    } else {
        struct line_info li;
        TRY(classify_line(g, after, &li));
        if (g->line == LINE_TABLE) {
            cut = li.kind != LINE_TABLE;
        } else if (is_block_start(li.kind)) {
            cut = true;
        } else {
            enum next nx;
            TRY(next_class(g, e, &nx));
            cut = (nx == NEXT_UPPER || nx == NEXT_DIGIT || nx == NEXT_LETTER) && !is_cont_char(line_last(g, pos));
        }
    }
    if (cut) {
        int r = emit(g, after, false);
        if (r < 0) return r;
        if (r) {
            g->pos = after;
            return 0;
        }
    }
    advance(g, pos + 1, false);
    return 0;
}

/* "$" at pos, not "$$": the position of the closing "$" if it opens inline math, else
 * SIZE_MAX. Pandoc's rule: the opener has a non-space after it, the closer a non-space
 * before it and no digit after it, on the same line, within MATH_INLINE_MAX bytes. "$5 ",
 * "$2.50," and the like are amounts, not openers. */
static int inline_dollar(const struct sa_segmenter *g, size_t pos, size_t *close) {
    *close = SIZE_MAX;
    int c = at(g, pos + 1);
    if (c == NEED) return R_NEED;
    if (c == EOT || is_ws(c)) return 0;
    if (is_digit(c)) {
        size_t j = pos + 1;
        int x;
        while (is_digit(x = at(g, j)) || x == '.' || x == ',') j++;
        if (x == NEED) return R_NEED;
        if (x == EOT || is_ws(x) || strchr(")]};:!?'\"", x)) return 0;
    }
    for (size_t j = pos + 1; j - pos <= MATH_INLINE_MAX;) {
        int x = at(g, j);
        if (x == NEED) return R_NEED;
        if (x == EOT || x == '\n') return 0;
        if (x == '\\') {
            int y = at(g, j + 1);
            if (y == NEED) return R_NEED;
            if (y == EOT || y == '\n') return 0;
            j += 2;
            continue;
        }
        if (x == '$' && !is_ws((unsigned char)g->text[j - 1])) {
            int y = at(g, j + 1);
            if (y == NEED) return R_NEED;
            if (!is_digit(y)) {
                *close = j;
                return 0;
            }
        }
        j++;
    }
    return 0;
}

static int step_text(struct sa_segmenter *g) {
    size_t pos = g->pos;
    if ((pos == 0 || g->text[pos - 1] == '\n') && g->line_at != pos) {
        struct line_info li;
        TRY(classify_line(g, pos, &li));
        g->line_at = pos;
        g->line = li.kind;
        if (li.kind == LINE_FENCE_OPEN) {
            g->mode = MODE_FENCE;
            g->fence_ch = li.fence_ch;
            g->fence_len = li.fence_len;
        }
        if (li.body > pos) advance(g, li.body, true);
        return 0;
    }
    int b = (unsigned char)g->text[pos];
    if (b == '\n') return step_newline(g);
    if (is_ws(b)) {
        advance(g, pos + 1, false);
        return 0;
    }
    bool sentence = g->p.unit == SA_SEGMENT_SENTENCE &&
                    (g->line == LINE_TEXT || g->line == LINE_LIST || g->line == LINE_QUOTE);
    if (b == '$') {
        int x = at(g, pos + 1);
        if (x == NEED) return R_NEED;
        if (x == '$') {
            g->mode = MODE_DISPLAY_DOLLAR;
            advance(g, pos + 2, true);
            return 0;
        }
        if (sentence) {
            size_t close;
            TRY(inline_dollar(g, pos, &close));
            if (close != SIZE_MAX) {
                advance(g, close + 1, true);
                return 0;
            }
        }
        advance(g, pos + 1, true);
        return 0;
    }
    if (b == '\\') {
        int x = at(g, pos + 1);
        if (x == NEED) return R_NEED;
        if (x == '(') g->mode = MODE_INLINE_PAREN;
        if (x == '[') g->mode = MODE_DISPLAY_BRACKET;
        advance(g, pos + (x > ' ' && x < 0x7F ? 2 : 1), true); /* \( \[ or an escape: "\$", "\." */
        return 0;
    }
    if (b == '`') {
        size_t j = pos;
        int x;
        while ((x = at(g, j)) == '`') j++;
        if (x == NEED) return R_NEED;
        g->mode = MODE_INLINE_CODE;
        g->ticks = j - pos;
        advance(g, j, true);
        return 0;
    }
    int32_t c;
    size_t n;
    int r = char_at(g, pos, &c, &n);
    if (r == NEED) return R_NEED;
    if (r == EOT) c = -1, n = 1;
    if (sentence && is_term(c)) return step_terminator(g);
    advance(g, pos + n, true);
    return 0;
}

/* Steps over the character at pos (content unless whitespace). */
static int step_char(struct sa_segmenter *g) {
    int32_t c;
    size_t n = 1;
    if (char_at(g, g->pos, &c, &n) == NEED) return R_NEED;
    advance(g, g->pos + n, !is_ws((unsigned char)g->text[g->pos]));
    return 0;
}

/* A newline inside math: a blank line ends the math (LaTeX does not allow one there), so
 * an unclosed $$ or \[ cannot swallow the rest of the answer. */
static int math_newline(struct sa_segmenter *g) {
    size_t e, nl, after;
    TRY(ws_run(g, g->pos, &e, &nl, &after));
    if (nl >= 2) g->mode = MODE_TEXT; /* the text step makes it a paragraph break */
    else advance(g, g->pos + 1, false);
    return 0;
}

static int step_math(struct sa_segmenter *g) {
    size_t pos = g->pos;
    if ((pos == 0 || g->text[pos - 1] == '\n') && g->line_at != pos) g->line_at = pos, g->line = LINE_TEXT;
    int b = (unsigned char)g->text[pos];
    if (b == '\n') return math_newline(g);
    if (b == '\\' || (b == '$' && g->mode == MODE_DISPLAY_DOLLAR)) {
        int x = at(g, pos + 1);
        if (x == NEED) return R_NEED;
        bool end = (g->mode == MODE_DISPLAY_DOLLAR && b == '$' && x == '$') ||
                   (g->mode == MODE_DISPLAY_BRACKET && b == '\\' && x == ']') ||
                   (g->mode == MODE_INLINE_PAREN && b == '\\' && x == ')');
        if (end) g->mode = MODE_TEXT;
        advance(g, pos + (end || (b == '\\' && x > ' ' && x < 0x7F) ? 2 : 1), true);
        return 0;
    }
    return step_char(g);
}

static int step_code(struct sa_segmenter *g) {
    size_t pos = g->pos;
    int b = (unsigned char)g->text[pos];
    if (b == '\n') {
        g->mode = MODE_TEXT; /* an unclosed ` ends with its line */
        return 0;
    }
    if (b == '`') {
        size_t j = pos;
        int x;
        while ((x = at(g, j)) == '`') j++;
        if (x == NEED) return R_NEED;
        if (j - pos == g->ticks) g->mode = MODE_TEXT;
        advance(g, j, true);
        return 0;
    }
    return step_char(g);
}

static int step_fence(struct sa_segmenter *g) {
    size_t pos = g->pos;
    if ((pos == 0 || g->text[pos - 1] == '\n') && g->line_at != pos) {
        bool close;
        size_t end = pos;
        TRY(fence_close(g, pos, &close, &end));
        g->line_at = pos;
        g->line = LINE_TEXT;
        if (close) {
            g->mode = MODE_TEXT;
            g->line = LINE_FENCE_CLOSE;
            advance(g, end, true);
        }
        return 0;
    }
    return step_char(g);
}

/* One step at pos: 0 (progress), R_NEED, R_DONE or a negative status. */
static int step(struct sa_segmenter *g) {
    if (g->pos >= g->len) return g->finished ? R_DONE : R_NEED;
    TRY(forced(g));
    switch (g->mode) {
    case MODE_TEXT: return step_text(g);
    case MODE_FENCE: return step_fence(g);
    case MODE_INLINE_CODE: return step_code(g);
    default: return step_math(g);
    }
}

static enum sa_status scan(struct sa_segmenter *g) {
    for (;;) {
        size_t pos0 = g->pos, line_at0 = g->line_at, start0 = g->start;
        enum mode mode0 = g->mode;
        int r = step(g);
        if (r == R_NEED || r == R_DONE) return SA_STATUS_OK;
        if (r < 0) return (enum sa_status)r;
        SA_ASSERT(g->pos != pos0 || g->mode != mode0 || g->line_at != line_at0 || g->start != start0);
    }
}

/* ---- public API ---- */

enum sa_status sa_segmenter_init(const struct sa_segment_params *params, struct sa_segmenter **out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_segmenter_init: out is NULL");
    *out = NULL;
    struct sa_segment_params p = params ? *params : sa_segment_default_params();
    if (p.unit != SA_SEGMENT_SENTENCE && p.unit != SA_SEGMENT_LINE)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_segmenter_init: unknown unit %d (SA_SEGMENT_SENTENCE or SA_SEGMENT_LINE)",
                        (int)p.unit);
    struct sa_segmenter *g = calloc(1, sizeof *g);
    if (!g) return sa_error(SA_STATUS_NO_MEMORY, "sa_segmenter_init: out of memory");
    g->p = p;
    sa_segmenter_reset(g);
    *out = g;
    return SA_STATUS_OK;
}

void sa_segmenter_free(struct sa_segmenter *g) {
    if (!g) return;
    free(g->bounds);
    free(g->text);
    free(g);
}

void sa_segmenter_reset(struct sa_segmenter *g) {
    if (!g) return;
    g->len = 0;
    g->finished = g->final_done = false;
    g->pos = g->start = g->content_end = 0;
    g->mode = MODE_TEXT;
    g->line = LINE_TEXT;
    g->line_at = SIZE_MAX;
    g->fence_ch = 0;
    g->fence_len = g->ticks = 0;
    g->n_bounds = g->n_given = 0;
}

const char *sa_segmenter_text(const struct sa_segmenter *g, size_t *len) {
    if (len) *len = g ? g->len : 0;
    return g && g->text ? g->text : "";
}

static void give(struct sa_segmenter *g, size_t *boundary) {
    *boundary = g->n_given < g->n_bounds ? g->bounds[g->n_given++] : SA_SEGMENT_NONE;
}

enum sa_status sa_segmenter_push(struct sa_segmenter *g, const char *bytes, size_t n, size_t *boundary) {
    if (boundary) *boundary = SA_SEGMENT_NONE;
    if (!g || !boundary || (!bytes && n))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_segmenter_push: NULL argument");
    if (g->finished && n)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_segmenter_push: text pushed after finish (call sa_segmenter_reset first)");
    if (n) {
        if (n > SIZE_MAX - g->len - 1) return sa_error(SA_STATUS_NO_MEMORY, "sa_segmenter_push: text too long");
        if (g->len + n > g->cap) {
            size_t cap = g->cap ? g->cap : 256;
            while (cap < g->len + n) cap = cap > SIZE_MAX / 2 ? g->len + n : 2 * cap;
            char *t = realloc(g->text, cap);
            if (!t) return sa_error(SA_STATUS_NO_MEMORY, "sa_segmenter_push: out of memory for %zu bytes", cap);
            g->text = t;
            g->cap = cap;
        }
        memcpy(g->text + g->len, bytes, n);
        g->len += n;
    }
    enum sa_status s = scan(g);
    if (s) return s;
    give(g, boundary);
    return SA_STATUS_OK;
}

enum sa_status sa_segmenter_finish(struct sa_segmenter *g, size_t *boundary) {
    if (boundary) *boundary = SA_SEGMENT_NONE;
    if (!g || !boundary) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_segmenter_finish: NULL argument");
    g->finished = true;
    if (!g->final_done) {
        enum sa_status s = scan(g);
        if (s) return s;
        if (g->len > g->start) {
            int r = emit(g, g->len, true);
            if (r < 0) return (enum sa_status)r;
        }
        g->final_done = true;
    }
    give(g, boundary);
    return SA_STATUS_OK;
}

enum sa_status sa_segment_text(const char *text, size_t len, const struct sa_segment_params *params,
                               struct sa_segment_span **spans, size_t *n) {
    if (spans) *spans = NULL;
    if (n) *n = 0;
    if (!spans || !n || (!text && len)) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_segment_text: NULL argument");
    struct sa_segmenter *g;
    enum sa_status s = sa_segmenter_init(params, &g);
    if (s) return s;
    size_t b;
    s = sa_segmenter_push(g, text, len, &b);
    if (!s) s = sa_segmenter_finish(g, &b);
    if (!s && g->n_bounds) {
        struct sa_segment_span *sp = malloc(g->n_bounds * sizeof *sp);
        if (!sp) {
            s = sa_error(SA_STATUS_NO_MEMORY, "sa_segment_text: out of memory for %zu spans", g->n_bounds);
        } else {
            for (size_t k = 0; k < g->n_bounds; k++) {
                sp[k].start = k ? g->bounds[k - 1] : 0;
                sp[k].end = g->bounds[k];
            }
            *spans = sp;
            *n = g->n_bounds;
        }
    }
    sa_segmenter_free(g);
    return s;
}
