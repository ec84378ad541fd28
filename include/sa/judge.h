/* judge.h: the pairwise judge: prompt files, the engine behind a judge (a model, a server or a
 * test double behind struct sa_judge_ops), and a run over pairs in both orders with retries
 * and an answer cache (docs/EVAL.md). Implemented in src/eval/judge.c. */
#ifndef SA_JUDGE_H
#define SA_JUDGE_H

#include "sa/status.h"
#include "sa/verdict.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Which judge prompt (docs/prompts/judge_<aspect>.txt). Add values only at the end. */
enum sa_judge_aspect {
    SA_JUDGE_HELPFUL = 0,
    SA_JUDGE_HARMLESS = 1,
    SA_JUDGE_MATH = 2,
};
/* "helpful", "harmless", "math". */
const char *sa_judge_aspect_name(enum sa_judge_aspect a);
/* The aspect named `name` (one of the names above) into *out. Errors:
 * SA_STATUS_BAD_ARGUMENT (NULL or unknown name; *out unchanged). */
SA_NODISCARD enum sa_status sa_judge_aspect_from_name(const char *name, enum sa_judge_aspect *out);

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

#ifdef __cplusplus
}
#endif
#endif
