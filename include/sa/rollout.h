/* rollout.h: aligner training records from an upstream's own answers, labelled by what
 * happens after each sentence, with no annotator model (issue 13; Math-Shepherd, Wang et al.
 * ACL 2024; OmegaPRM, Luo et al. 2024). A prefix's value is the fraction of N sampled
 * completions from it that reach the gold answer; the first wrong sentence of a wrong greedy
 * draft is the first after which the value drops to 0 (binary search); its correction is the
 * best-valued of K sentences the upstream itself samples in its place. Or (locate gold-path)
 * the first error is the first sentence whose equations leave the values of the reference
 * solution, with no rollout, and only alternatives that stay on them qualify. Algorithm, parameters,
 * cost and files: docs/DATA_ROLLOUT.md. Implemented in src/data/rollout.c. */
#ifndef SA_ROLLOUT_H
#define SA_ROLLOUT_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_pipeline;

/* Add values only at the end. */
enum sa_rollout_kind {
    SA_ROLLOUT_COPY = 0, /* correction = the upstream's own text (a right sentence or answer) */
    SA_ROLLOUT_FIX = 1,  /* correction = the best alternative of the first wrong sentence */
};
/* "copy", "fix". */
const char *sa_rollout_kind_name(enum sa_rollout_kind k);

/* What labelling one question came to. Add values only at the end. */
enum sa_rollout_outcome {
    SA_ROLLOUT_CORRECT = 0,        /* the draft reaches the gold answer: copy records only */
    SA_ROLLOUT_FIXED = 1,          /* first error found and an alternative kept */
    SA_ROLLOUT_NO_ALTERNATIVE = 2, /* first error found; no alternative reached min_alt_value (gold
                                      path: or none qualified) */
    SA_ROLLOUT_TOO_HARD = 3,       /* the draft is wrong and value(0) = 0: no records */
    SA_ROLLOUT_EMPTY = 4,          /* the draft has no sentence: no records */
    SA_ROLLOUT_ON_PATH = 5,        /* SA_ROLLOUT_LOCATE_GOLD_PATH: the draft is wrong and no sentence
                                      of it leaves the gold path: no records (no fix is known) */
};
/* "correct", "fixed", "no_alternative", "too_hard", "empty", "on_path". */
const char *sa_rollout_outcome_name(enum sa_rollout_outcome o);

/* How the first wrong sentence of a wrong draft is found. Add values only at the end. */
enum sa_rollout_locate {
    SA_ROLLOUT_LOCATE_VALUE = 0,     /* binary search over prefix values (value(0) first) */
    SA_ROLLOUT_LOCATE_GOLD_PATH = 1, /* the first sentence with an equation whose value is off the
                                        gold path of gold_solution (no rollouts); an alternative
                                        qualifies only with >= 1 equation, all on the path */
};
/* "value", "gold-path". */
const char *sa_rollout_locate_name(enum sa_rollout_locate l);

struct sa_rollout_params {
    int32_t n_rollouts;     /* N: sampled completions per valued prefix (> 0; default 4; 0 is allowed
                               with SA_ROLLOUT_LOCATE_GOLD_PATH only: the first qualifying
                               alternative is kept unvalued, and no whole-answer fix record) */
    int32_t n_alternatives; /* K: sentences sampled in place of the first wrong one (> 0; default 4) */
    float temperature;      /* of every sample (> 0; default 0.7); the draft is the pipeline's
                               (greedy with sa_pipeline_default_params) */
    float top_p;            /* (0, 1]; default 1 */
    int32_t max_tokens;     /* most tokens of one completion or alternative (> 0; default 384) */
    double min_alt_value;   /* an alternative is kept only with a value >= this (default 0.5) */
    uint64_t seed;          /* every sample's seed derives from (seed, id, what, k, i):
                               sa_rollout_seed; the same seed gives the same records whatever
                               the order questions are labelled in */
    int32_t n_verify;       /* label check (issue 13): after a fix, value the draft's prefix
                               through the wrong sentence and the prefix through the correction
                               again with this many fresh completions (other seeds); 0: off
                               (default). Costs 2 x n_verify generations per fix */
    bool copy_records;      /* emit copy records (default true) */
    bool answer_records;    /* emit whole-answer records for the Aligner baseline (default true) */
    /* Polled between samples and inside them (may be NULL): true stops with SA_STATUS_CANCELLED. */
    bool (*cancel)(void *user);
    /* Called after each generation (may be NULL): progress inside one question. */
    void (*on_generation)(void *user, int32_t n_generations, int64_t n_tokens);
    void *user; /* for both hooks */
    enum sa_rollout_locate locate; /* how the first error is found (default SA_ROLLOUT_LOCATE_VALUE) */
    const char *gold_solution;     /* SA_ROLLOUT_LOCATE_GOLD_PATH: the question's full reference
                                      solution (GSM8K's "answer": <<expr=v>> steps, "#### N"),
                                      NUL-terminated, borrowed for the call; required there
                                      (NULL: BAD_ARGUMENT), unused otherwise (default NULL) */
};
/* N 4, K 4, temperature 0.7, top_p 1, max_tokens 384, min_alt_value 0.5, seed 0, n_verify 0,
 * copy and answer records on, no hooks, locate by value, no gold solution. */
struct sa_rollout_params sa_rollout_default_params(void);

/* A greedy draft written before (e.g. read from `salign align --mode upstream --trace`):
 * its pieces in order, as the pipeline emitted them. Borrowed. */
struct sa_rollout_draft {
    const char *const *text;     /* (n): what each piece appended to the answer (separator + sentence) */
    const char *const *original; /* (n): each sentence without its outer whitespace */
    size_t n;
};

/* One record. Strings malloc'd, NUL-terminated; NULL where the kind does not use them. */
struct sa_rollout_record {
    enum sa_rollout_kind kind;
    bool whole;           /* a whole-answer record (answer, correction); else a sentence record
                             (prefix, last, correction) */
    int32_t round;        /* sentence records: the sentence, 1-based; whole-answer: the first
                             wrong sentence (0 for a copy) */
    char *prefix, *last;  /* sentence records: the answer before it, and the draft's sentence */
    char *answer;         /* whole-answer records: the draft */
    char *correction;
    double value_before;  /* the value of the prefix before the sentence (< 0: not measured; never
                             measured with SA_ROLLOUT_LOCATE_GOLD_PATH, nor value_after) */
    double value_after;   /* the value of the prefix through the draft's sentence (< 0: not measured) */
    double alt_value;     /* fix: the value of the prefix through the correction; else < 0 (and
                             for a gold-path fix kept with n_rollouts 0) */
    int32_t n_rollouts;   /* completions behind each value */
};

struct sa_rollout_result {
    enum sa_rollout_outcome outcome;
    char *draft;              /* the draft answer (malloc'd) */
    int32_t n_sentences;      /* S: the draft's sentences */
    bool draft_correct;
    int32_t first_error;      /* h, 1-based: the first wrong sentence (gold path: the first off the
                                 path); 0: none found */
    double value0;            /* value(0) (< 0: not measured) */
    int32_t n_alternatives;   /* distinct alternatives valued (not equal to the draft's sentence;
                                 gold path: those that qualify, valued or, with N 0, looked at) */
    double best_alt_value;    /* < 0: none valued */
    double verify_after;      /* n_verify: the fresh value of the prefix through the wrong sentence
                                 (the label holds when it is 0); < 0: not checked */
    double verify_alt;        /* n_verify: the fresh value of the prefix through the correction
                                 (the replacement changes the answer when it is > verify_after) */
    struct sa_rollout_record *records; /* (n_records): sentence records by round, then whole-answer */
    size_t n_records;
    int32_t n_generations;    /* upstream generations (the draft, when made here, counts one) */
    int64_t n_tokens;         /* tokens they generated */
    double seconds;
};
/* Frees everything; NULL does nothing. */
void sa_rollout_result_free(struct sa_rollout_result *r);

/* Labels one question. `pl`: a pipeline in UPSTREAM mode (a local model or any sa_upstream;
 * its decoding params write the draft: greedy by default); `id` (NUL-terminated, e.g. the
 * question's id as JSON text) seeds the samples; `gold`: the gold answer (extracted, as
 * sa_math_gsm8k_gold gives it) compared with sa_math_is_correct(SA_MATH_GSM8K, ...);
 * `draft`: the greedy draft's pieces, or NULL to make it here (sa_pipeline_run). *out is
 * always filled (free with sa_rollout_result_free; after an error it holds the counters so
 * far and no records). Errors: BAD_ARGUMENT (NULL, bad params; or from the pipeline: this
 * question cannot be answered, e.g. too long for the context: the pipeline stays usable),
 * CANCELLED, NO_MEMORY, and the upstream's errors. */
SA_NODISCARD enum sa_status sa_rollout_label(struct sa_pipeline *pl, const char *id, const char *question,
                                             const char *gold, const struct sa_rollout_draft *draft,
                                             const struct sa_rollout_params *params, struct sa_rollout_result *out);

/* What a sample is for, in sa_rollout_seed. */
enum sa_rollout_what {
    SA_ROLLOUT_SEED_VALUE = 1,     /* completion i from the prefix of k draft sentences */
    SA_ROLLOUT_SEED_ALT = 2,       /* alternative i for sentence k */
    SA_ROLLOUT_SEED_ALT_VALUE = 3, /* completion i after alternative k */
    SA_ROLLOUT_SEED_VERIFY = 4,    /* n_verify: completion i through wrong sentence k */
    SA_ROLLOUT_SEED_VERIFY_ALT = 5, /* n_verify: completion i through the correction of sentence k */
};
/* The seed of one sample: a hash of (seed, id, what, k, i). */
uint64_t sa_rollout_seed(uint64_t seed, const char *id, enum sa_rollout_what what, uint32_t k, uint32_t i);

/* The JSON line of a record (a '\n' at the end), in the format of sa/records.h (sentence:
 * question, prefix, last, correction, source; whole-answer: question, answer, correction,
 * source) with the metadata after it: id (id_json copied as JSON), kind, round, value_before,
 * value_after, alt_value (those measured), n_rollouts. `salign train --data` and `salign data
 * check` read it (unknown fields are ignored). *line malloc'd. Errors: BAD_ARGUMENT (NULL,
 * id_json not JSON), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_rollout_record_json(const char *id_json, const char *question,
                                                   const struct sa_rollout_record *rec, char **line);

#ifdef __cplusplus
}
#endif
#endif
