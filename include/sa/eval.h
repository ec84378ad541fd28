/* eval.h: the evaluation of Stream Aligner: math answer
 * extraction and equivalence (GSM8K, MATH), accuracy with a 95% Wilson interval, a seeded
 * bootstrap, judge verdict parsing with both-order aggregation and the win rate, a
 * reader of the pipeline's per-round traces; the pairwise judge (a model, or any engine
 * behind struct sa_judge_ops) with its answer cache, and the Markdown/SVG report. The
 * rules are in docs/EVAL.md. */
#ifndef SA_EVAL_H
#define SA_EVAL_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- math answers (src/eval/math_answer.c) ---------------------------------------- */

enum sa_math_dataset {
    SA_MATH_GSM8K = 0, /* answers are numbers */
    SA_MATH_MATH = 1,  /* answers are LaTeX (Hendrycks et al. 2021, MATH) */
};

/* Two numbers are equal when both are integers and equal, or when
 * |a - b| <= SA_MATH_REL_TOL * max(|a|, |b|) (or both are 0). */
#define SA_MATH_REL_TOL 1e-6

/* The gold answer of a GSM8K solution: the number after its last "#### " ("1,234" ->
 * "1234", "-3" -> "-3", "3.50" -> "3.5"). *out is malloc'd (caller frees). Errors:
 * SA_STATUS_NOT_FOUND (no "####" or no number after it), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_math_gsm8k_gold(const char *solution, char **out);

/* The answer of a model's text, as a string for sa_math_equiv. GSM8K: the first number
 * after the last "####" if any, else the last \boxed{} holding a number, else the last
 * number of the text (canonical form: "$1,234.50" -> "1234.5", "3.0" -> "3", "1/2" ->
 * "1/2" (kept), "50%" -> "50"). MATH: the content of the last \boxed{...} / \boxed X /
 * \fbox{...}, else what follows the last "answer is", else the last number. *out is
 * malloc'd. Errors: SA_STATUS_NOT_FOUND (no answer in the text), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_math_extract(enum sa_math_dataset ds, const char *text, char **out);

/* The content of the last \boxed{...} (balanced braces), "\boxed X" (up to '$' or the end
 * of the line) or \fbox{...} of text. SA_STATUS_NOT_FOUND if none (or unbalanced). */
SA_NODISCARD enum sa_status sa_math_last_boxed(const char *text, char **out);

/* The normalised form of an answer (see docs/EVAL.md: fractions, \left/\right, units,
 * degrees, percent, "x =", spaces, trailing '.', thousands commas, \sqrt2, \frac12).
 * *out is malloc'd. Errors: SA_STATUS_NO_MEMORY only. */
SA_NODISCARD enum sa_status sa_math_normalize(const char *answer, char **out);

/* The value of a normalised answer that is a plain number ("-1.5", ".5"), a fraction of
 * plain numbers ("\frac{1}{2}", "-\frac{3}{4}", "3/4"). false if it is something else. */
bool sa_math_number(const char *normalized, double *value);

/* Whether two answers (extracted, not yet normalised) are equivalent: equal numbers
 * (SA_MATH_REL_TOL), equal normalised strings, or tuples/intervals/sets with the same
 * brackets whose elements are pairwise equivalent. false on allocation failure. */
bool sa_math_equiv(const char *a, const char *b);

/* sa_math_extract(ds, model_text) then sa_math_equiv with `gold` (an extracted answer).
 * false if the text has no answer. */
bool sa_math_is_correct(enum sa_math_dataset ds, const char *model_text, const char *gold);

/* ---- statistics (src/eval/stats.c) ------------------------------------------------- */

struct sa_eval_accuracy {
    size_t n, n_correct;
    double acc;    /* n_correct / n in [0, 1]; 0 when n == 0 */
    double lo, hi; /* 95% Wilson score interval; [0, 1] when n == 0 */
};

/* Accuracy of correct[0..n) with its 95% Wilson interval (Wilson 1927). correct may be
 * NULL when n == 0. */
struct sa_eval_accuracy sa_eval_accuracy(const bool *correct, size_t n);

/* The Wilson score interval of k successes in n trials at normal quantile z
 * (1.959963984540054 for 95%). n == 0: [0, 1]. */
void sa_eval_wilson(size_t k, size_t n, double z, double *lo, double *hi);

/* Percentile bootstrap of the mean of x[0..n): n_boot resamples with replacement drawn by
 * the library's xoshiro256** seeded with `seed` (same seed, same interval on every
 * machine); *lo, *hi are the (1-level)/2 and (1+level)/2 quantiles (linear
 * interpolation) of the resampled means. Errors: SA_STATUS_BAD_ARGUMENT (n == 0,
 * n_boot < 2, level not in (0, 1), NULL), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_eval_bootstrap_mean(const double *x, size_t n, uint32_t n_boot, uint64_t seed,
                                                   double level, double *lo, double *hi);

/* ---- judge verdicts and win rate (src/eval/verdict.c) ------------------------------ */

enum sa_verdict {
    SA_VERDICT_INVALID = 0, /* no verdict, or two different verdicts */
    SA_VERDICT_A = 1,       /* [[A]]: the first response is better */
    SA_VERDICT_B = 2,       /* [[B]]: the second response is better */
    SA_VERDICT_TIE = 3,     /* [[C]], [[TIE]] or [[EQUAL]] */
};

/* The verdict of a judge's text: every well-formed "[[X]]" (X one of A, B, C, TIE, EQUAL,
 * any case, nothing else inside the brackets, not inside "[[[...]]]") is read; the
 * verdict is theirs if they all agree, SA_VERDICT_INVALID if there is none or they
 * disagree. NULL: SA_VERDICT_INVALID. */
enum sa_verdict sa_eval_parse_verdict(const char *text);
/* "A", "B", "tie", "invalid". */
const char *sa_verdict_str(enum sa_verdict v);

enum sa_pair_outcome {
    SA_PAIR_INVALID = 0, /* a verdict of the pair is invalid: not counted */
    SA_PAIR_WIN = 1,     /* both orders favour ours */
    SA_PAIR_LOSS = 2,    /* both orders favour the other */
    SA_PAIR_EQUAL = 3,   /* anything else: a tie in either order, or the orders disagree */
};

/* Aggregates a pair judged in both orders: `ab` with ours shown as A, `ba` with ours
 * shown as B. Win if ab == A and ba == B; loss if ab == B and ba == A; invalid if either
 * is invalid; equal otherwise. */
enum sa_pair_outcome sa_eval_pair_outcome(enum sa_verdict ab, enum sa_verdict ba);

struct sa_eval_winrate {
    size_t n_win, n_loss, n_equal, n_invalid;
    double rate;   /* (W - L) / (W + L + E) x 100, in [-100, 100]; 0 when W + L + E == 0 */
    double lo, hi; /* bootstrap 95% interval of rate (pairs resampled); [0, 0] when empty */
};

/* Win rate of outcomes[0..n) (invalid ones are counted apart) with a percentile bootstrap
 * 95% interval over n_boot (>= 2; 0: 1000) resamples seeded by `seed`. Errors:
 * SA_STATUS_BAD_ARGUMENT (NULL with n > 0, n_boot == 1), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_eval_winrate(const enum sa_pair_outcome *outcomes, size_t n, uint32_t n_boot,
                                            uint64_t seed, struct sa_eval_winrate *out);

/* ---- pipeline traces (src/eval/stats.c) -------------------------------------------- */

/* A trace: JSONL, one line per round of the pipeline and question:
 *   {"id": 12 | "q12", "question": "...", "round": 3, "answer_so_far": "..."}
 * "id" (integer >= 0 or string) or "question" is required (both allowed), "round" is an
 * integer >= 0, "answer_so_far" a string: the whole answer after that round. Other
 * fields are ignored. A (key, round) pair may appear once. */
struct sa_trace; /* opaque */

/* Parses a trace text (`name` for messages). Errors: SA_STATUS_BAD_JSON naming the line
 * and field, SA_STATUS_NO_MEMORY. Free with sa_trace_free. */
SA_NODISCARD enum sa_status sa_trace_parse(const char *text, size_t len, const char *name, struct sa_trace **out);
SA_NODISCARD enum sa_status sa_trace_load(const char *path, struct sa_trace **out);
void sa_trace_free(struct sa_trace *t);

/* Number of questions (distinct keys), in order of first appearance. */
size_t sa_trace_n_questions(const struct sa_trace *t);
/* Question i's "id" as text (an integer id in decimal), or NULL if the lines had none. */
const char *sa_trace_id(const struct sa_trace *t, size_t i);
/* Question i's "question", or NULL if the lines had none. */
const char *sa_trace_question(const struct sa_trace *t, size_t i);
/* The smallest and largest round in the trace (0, 0 when empty). */
int32_t sa_trace_min_round(const struct sa_trace *t);
int32_t sa_trace_max_round(const struct sa_trace *t);
/* Question i's answer after round r: the answer_so_far of its line with the largest round
 * <= r (a question that stopped early keeps its final answer); NULL if it has none yet.
 * Owned by the trace. */
const char *sa_trace_answer(const struct sa_trace *t, size_t i, int32_t round);


/* ---- pairwise judge (src/eval/judge.c) --------------------------------------------- */

/* Which judge prompt (docs/prompts/judge_<aspect>.txt). Add values only at the end. */
enum sa_judge_aspect {
    SA_JUDGE_HELPFUL = 0,
    SA_JUDGE_HARMLESS = 1,
    SA_JUDGE_MATH = 2,
};
/* "helpful", "harmless", "math". */
const char *sa_judge_aspect_name(enum sa_judge_aspect a);
/* false when `name` is none of the names above. */
bool sa_judge_aspect_from_name(const char *name, enum sa_judge_aspect *out);

/* A judge prompt: an optional system message and a user message with the placeholders
 * {question}, {answer_a}, {answer_b} (required) and {reference} (optional). File format
 * (docs/EVAL.md): '#' comment lines at the top, then "[system]" and "[user]" section lines;
 * a file without sections is all user message. */
struct sa_judge_prompt; /* opaque */

/* Parses a prompt text (`name` for messages). Errors: SA_STATUS_BAD_FILE (no user message,
 * a required placeholder missing, an empty section, invalid UTF-8), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_judge_prompt_parse(const char *text, size_t len, const char *name,
                                                  struct sa_judge_prompt **out);
SA_NODISCARD enum sa_status sa_judge_prompt_load(const char *path, struct sa_judge_prompt **out);
void sa_judge_prompt_free(struct sa_judge_prompt *p);
/* The system message ("" when none). Owned by the prompt. */
const char *sa_judge_prompt_system(const struct sa_judge_prompt *p);
/* Whether the user message uses {reference}. */
bool sa_judge_prompt_needs_reference(const struct sa_judge_prompt *p);
/* The user message with the placeholders replaced in one pass (inserted texts are not
 * scanned again; other {...} stay as they are). reference may be NULL unless the prompt
 * needs it. *out malloc'd. Errors: BAD_ARGUMENT (a NULL text, reference missing), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_judge_prompt_render(const struct sa_judge_prompt *p, const char *question,
                                                   const char *answer_a, const char *answer_b, const char *reference,
                                                   char **out);

/* One request to a judge engine. */
struct sa_judge_request {
    const char *system;  /* system message; "" when none */
    const char *user;    /* the rendered user message */
    uint32_t attempt;    /* 0: the first ask; k > 0: the k-th retry after an unparsable answer,
                            which must be sampled differently (see sa_judge_init_upstream) */
    bool (*cancel)(void *user); /* may be NULL: polled while generating; true: stop with
                                   SA_STATUS_CANCELLED */
    void *cancel_user;
};

/* The engine behind a judge (ggml-backend style hooks over void *impl): a local model, a
 * remote server, or a test double. */
struct sa_judge_ops {
    const char *name; /* static: "upstream", "fake", ... */
    /* The judge's answer to one request: *out malloc'd NUL-terminated text (caller frees).
     * Errors are the engine's (CANCELLED when req->cancel fired). */
    enum sa_status (*generate)(void *impl, const struct sa_judge_request *req, char **out);
    /* Releases impl (called once, by sa_judge_free). May be NULL. */
    void (*free)(void *impl);
};

struct sa_judge; /* opaque */

/* Wraps an engine. `ops` borrowed (normally static); `impl` owned from now on (released by
 * ops->free, also when this call fails). `id` (copied, non-empty) names the engine and its
 * generation settings: it is part of every cache key, so a different judge or setting
 * never reuses another's answers. Errors: BAD_ARGUMENT (NULL hook or id), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_judge_init_ops(const struct sa_judge_ops *ops, void *impl, const char *id,
                                              struct sa_judge **out);
void sa_judge_free(struct sa_judge *j);
const char *sa_judge_id(const struct sa_judge *j);
/* One request through the engine (what sa_judge_run calls, without cache or retries). */
SA_NODISCARD enum sa_status sa_judge_generate(struct sa_judge *j, const struct sa_judge_request *req, char **out);

struct sa_upstream;

struct sa_judge_upstream_params {
    int format;                /* enum sa_chat_format of the judge model (sa/chat.h), not UNKNOWN */
    const char *chat_template; /* the model's template text for sa_chat_render (may be NULL) */
    const char *model_id;      /* names the model in the judge id (required: a file name and size,
                                  or a server URL and model name) */
    int32_t max_tokens;        /* most tokens of one answer; 0: 512 */
    float retry_temperature;   /* temperature of retries (attempt >= 1); <= 0: 0.7. The first
                                  ask is always greedy */
    float retry_top_p;         /* top_p of retries, in (0, 1]; 0: 0.95 */
    uint64_t seed;             /* retry k is sampled with seed + k */
    bool stop_at_eot;          /* send the format's end-of-turn text as a stop string (a remote
                                  server; the local engine stops at end-of-generation tokens) */
};
/* max_tokens 512, retry_temperature 0.7, retry_top_p 0.95, seed 0, no stop string. */
struct sa_judge_upstream_params sa_judge_upstream_default_params(void);

/* A judge over an upstream (sa/upstream.h: a local model or a remote OpenAI-compatible
 * server): each request is rendered with the chat format (system + user, generation
 * prompt) and generated with the settings above. `up` is owned from now on (freed with the
 * judge, also when this call fails). The judge id is model_id plus the format and settings.
 * Errors: BAD_ARGUMENT (NULL up, UNKNOWN format, no model_id, bad settings), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_judge_init_upstream(struct sa_upstream *up, const struct sa_judge_upstream_params *p,
                                                   struct sa_judge **out);

/* One pair to judge: ours (`answer_a`, from the --a file) against the other (`answer_b`). */
struct sa_judge_pair {
    const char *key;       /* names the pair (its id or question) in the cache and results */
    const char *question;
    const char *answer_a, *answer_b;
    const char *reference; /* reference solution, or NULL (required when the prompt needs it) */
};

/* What became of one pair. */
struct sa_judge_pair_result {
    enum sa_verdict ab;           /* verdict with answer_a shown first (as A) */
    enum sa_verdict ba;           /* verdict with answer_b shown first (answer_a as B) */
    enum sa_pair_outcome outcome; /* sa_eval_pair_outcome(ab, ba): ours is answer_a */
    uint32_t attempts_ab, attempts_ba; /* asks made for each order (cached or new), >= 1 */
    const char *text_ab, *text_ba;     /* the judge's last answer of each order (valid during
                                          the on_pair call) */
};

struct sa_judge_run_params {
    uint32_t retries;       /* re-asks of an unparsable answer (each order), with attempt 1..retries */
    const char *cache_path; /* JSONL cache of the judge's answers (docs/EVAL.md); NULL: none */
    uint32_t n_boot;        /* bootstrap resamples of the win-rate interval; 0: 1000 */
    uint64_t boot_seed;
    bool (*cancel)(void *user); /* may be NULL: polled before and during each request */
    void *cancel_user;
    /* may be NULL: called after each pair in order; return false to stop the run (it then
     * returns SA_STATUS_CANCELLED; what was judged stays in the cache) */
    bool (*on_pair)(void *user, size_t i, const struct sa_judge_pair *pair, const struct sa_judge_pair_result *r);
    void *user;
};
/* retries 2, no cache, n_boot 1000, boot_seed 0, no callbacks. */
struct sa_judge_run_params sa_judge_run_default_params(void);

struct sa_judge_run_stats {
    struct sa_eval_winrate wr; /* over the pairs judged, ours = answer_a */
    size_t n_pairs;            /* pairs judged (n unless stopped) */
    size_t n_requests;         /* judge generations made by this run */
    size_t n_cached;           /* answers taken from the cache instead */
    size_t n_retries;          /* asks with attempt >= 1 (cached or new) */
    size_t n_invalid_orders;   /* orders whose last answer was still unparsable */
};

/* Judges pairs[0..n) in both orders with prompt `p`: each order is asked (attempt 0), and
 * while its answer has no valid verdict (sa_eval_parse_verdict) asked again up to
 * `retries` times; an order still unparsable makes the pair invalid. With a cache, each
 * answer is looked up first by the hash of (judge id, system, user message, order,
 * attempt) and each new answer is appended (one line, flushed) before it is used, so a
 * re-run is free and an interrupted run resumes where it stopped; an incomplete last line
 * (a run killed while writing) is dropped when the cache is opened. The cache is locked
 * (flock) while the run holds it. *out (may be NULL) receives the counts and the win rate.
 * Errors: BAD_ARGUMENT (NULL, a pair without texts, no reference for a prompt that needs
 * one), IO (the cache cannot be opened, locked or written), BAD_FILE (a cache line that is
 * not an entry), CANCELLED (cancel or on_pair stopped it), the engine's errors. */
SA_NODISCARD enum sa_status sa_judge_run(struct sa_judge *j, const struct sa_judge_prompt *p,
                                         const struct sa_judge_pair *pairs, size_t n,
                                         const struct sa_judge_run_params *params, struct sa_judge_run_stats *out);

/* ---- report (src/eval/report.c) ---------------------------------------------------- */

struct sa_report_params {
    const char *title; /* first heading; NULL: "Stream Aligner evaluation" */
    int32_t max_round; /* rounds shown in the per-round plots; 0: all */
};
struct sa_report_params sa_report_default_params(void);

/* What a report was made of. */
struct sa_report_summary {
    size_t n_accuracy;  /* `eval math --json` results (with or without rounds) */
    size_t n_rounds;    /* of which with per-round accuracy */
    size_t n_winrate;   /* `eval judge --json` / `eval winrate --json` results */
    size_t n_traces;    /* pipeline traces (`salign align --trace`) */
    size_t n_skipped;   /* files of a directory that are none of these (listed in the report) */
    size_t n_plots;     /* SVG files written */
};

/* Writes a Markdown report to `out_md` and its SVG plots next to it (<stem>-<plot>.svg):
 * accuracy with 95% intervals, accuracy by round, win rates with 95% intervals, the
 * edit-ratio distribution and the latency by round, each from the inputs that have it.
 * inputs[0..n): result files, or directories whose *.json and *.jsonl files are read
 * (sorted by name). The kind of each file is recognised from its content (docs/EVAL.md);
 * a named file that is none of them is an error, a directory's is skipped. Errors:
 * BAD_ARGUMENT (no inputs), IO, BAD_JSON (naming the file and line), BAD_FILE (nothing to
 * report), NO_MEMORY. summary may be NULL. */
SA_NODISCARD enum sa_status sa_eval_report(const char *const *inputs, size_t n, const char *out_md,
                                           const struct sa_report_params *params, struct sa_report_summary *summary);

#ifdef __cplusplus
}
#endif
#endif
