/* verdict.c: judge verdicts ("[[A]]", "[[B]]", "[[C]]"/"[[TIE]]"/"[[EQUAL]]"), the
 * both-order aggregation of a judged pair and the win rate with a bootstrap interval.
 * The judge prompts of Aligner / Stream Aligner ask for one final verdict in double
 * brackets; a judge that repeats the prompt's options ("[[A]] if ..., [[B]] if ...")
 * must not be read as a verdict, so different verdicts in one text make it invalid. */
#include "sa/eval_stats.h"
#include "sa/verdict.h"

#include "core/core_impl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum sa_verdict token_verdict(const char *s, size_t n) {
    if (n == 1) {
        char c = (char)(s[0] | 0x20);
        if (c == 'a') return SA_VERDICT_A;
        if (c == 'b') return SA_VERDICT_B;
        if (c == 'c') return SA_VERDICT_TIE;
        return SA_VERDICT_INVALID;
    }
    if ((n == 3 && !strncasecmp(s, "tie", 3)) || (n == 5 && !strncasecmp(s, "equal", 5))) return SA_VERDICT_TIE;
    return SA_VERDICT_INVALID;
}

enum sa_verdict sa_eval_parse_verdict(const char *text) {
    if (!text) return SA_VERDICT_INVALID;
    enum sa_verdict found = SA_VERDICT_INVALID;
    for (const char *p = text; (p = strstr(p, "[[")); p++) {
        if (p > text && p[-1] == '[') continue; /* "[[[A]]]" */
        const char *in = p + 2;
        size_t n = 0;
        while (n < 6 && in[n] && in[n] != ']') n++;
        if (in[n] != ']' || in[n + 1] != ']' || in[n + 2] == ']') continue;
        enum sa_verdict v = token_verdict(in, n);
        if (v == SA_VERDICT_INVALID) continue;
        if (found != SA_VERDICT_INVALID && found != v) return SA_VERDICT_INVALID;
        found = v;
    }
    return found;
}

const char *sa_verdict_str(enum sa_verdict v) {
    switch (v) {
    case SA_VERDICT_A: return "A";
    case SA_VERDICT_B: return "B";
    case SA_VERDICT_TIE: return "tie";
    default: return "invalid";
    }
}

enum sa_pair_outcome sa_eval_pair_outcome(enum sa_verdict ab, enum sa_verdict ba) {
    bool ok_ab = ab == SA_VERDICT_A || ab == SA_VERDICT_B || ab == SA_VERDICT_TIE;
    bool ok_ba = ba == SA_VERDICT_A || ba == SA_VERDICT_B || ba == SA_VERDICT_TIE;
    if (!ok_ab || !ok_ba) return SA_PAIR_INVALID;
    if (ab == SA_VERDICT_A && ba == SA_VERDICT_B) return SA_PAIR_WIN;
    if (ab == SA_VERDICT_B && ba == SA_VERDICT_A) return SA_PAIR_LOSS;
    return SA_PAIR_EQUAL;
}

enum sa_status sa_eval_winrate(const enum sa_pair_outcome *o, size_t n, uint32_t n_boot, uint64_t seed,
                               struct sa_eval_winrate *out) {
    if (!out || (!o && n > 0)) return sa_error(SA_STATUS_BAD_ARGUMENT, "win rate: NULL argument");
    if (n_boot == 1) return sa_error(SA_STATUS_BAD_ARGUMENT, "win rate: n_boot must be 0 (1000) or >= 2");
    if (n_boot == 0) n_boot = 1000;
    *out = (struct sa_eval_winrate){0};
    for (size_t i = 0; i < n; i++) {
        switch (o[i]) {
        case SA_PAIR_WIN: out->n_win++; break;
        case SA_PAIR_LOSS: out->n_loss++; break;
        case SA_PAIR_EQUAL: out->n_equal++; break;
        default: out->n_invalid++; break;
        }
    }
    size_t m = out->n_win + out->n_loss + out->n_equal;
    if (m == 0) return SA_STATUS_OK;
    out->rate = 100.0 * ((double)out->n_win - (double)out->n_loss) / (double)m;
    /* the win rate is the mean of per-pair scores +100 (win), -100 (loss), 0 (equal) */
    double *x = malloc(m * sizeof *x);
    if (!x) return sa_error(SA_STATUS_NO_MEMORY, "win rate: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (o[i] == SA_PAIR_WIN) x[k++] = 100.0;
        else if (o[i] == SA_PAIR_LOSS) x[k++] = -100.0;
        else if (o[i] == SA_PAIR_EQUAL) x[k++] = 0.0;
    }
    enum sa_status st = sa_eval_bootstrap_mean(x, m, n_boot, seed, 0.95, &out->lo, &out->hi);
    free(x);
    return st;
}
