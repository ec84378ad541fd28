/* pipeline_impl.h: internals of the Stream Aligner pipeline shared by pipeline.c,
 * local_upstream.c and join.c: the local upstream's handle and statistics, and the text
 * helpers that decide how sentences are joined (docs/internals/pipeline.md). */
#ifndef SA_PIPELINE_IMPL_H
#define SA_PIPELINE_IMPL_H

#include "core/core_impl.h"
#include "sa/context.h"
#include "sa/pipeline.h"
#include "sa/upstream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- local upstream (local_upstream.c) ---- */

struct sa_local_upstream; /* the impl behind the sa_upstream wrapper */

struct sa_local_upstream_stats {
    int32_t n_prompt;    /* tokens of the last prompt */
    int32_t n_reused;    /* of them, kept from the cache */
    int32_t n_prefill;   /* of them, evaluated (n_prompt - n_reused) */
    int32_t n_generated; /* tokens sampled since the last start (EOG included) */
};

/* Creates a local upstream. ctx: an existing context to use (borrowed; NULL: the upstream
 * makes and owns one over `model` with the params `cp`, NULL: defaults). *impl (may be NULL)
 * receives the impl for sa_local_upstream_stats; it lives as long as the wrapper. */
SA_NODISCARD enum sa_status sa_local_upstream_init(const struct sa_model *model, struct sa_ctx *ctx,
                                                   const struct sa_ctx_params *cp, bool kv_reuse,
                                                   struct sa_upstream **out, struct sa_local_upstream **impl);
void sa_local_upstream_stats(const struct sa_local_upstream *lu, struct sa_local_upstream_stats *st);
void sa_local_upstream_set_kv_reuse(struct sa_local_upstream *lu, bool on);
/* Samples from proxy-tuned logits (sa/proxy.h) over the upstream's context from now on: the
 * upstream takes ownership of px (freed with it, or at once when lu is NULL); NULL: plain. */
struct sa_proxy;
void sa_local_upstream_set_proxy(struct sa_local_upstream *lu, struct sa_proxy *px);
/* Token ids of a rendered prompt as an OpenAI-compatible server makes them: special tokens
 * parsed, the model's BOS prepended when it asks for one (and the text does not start with
 * it). *ids malloc'd (caller frees). */
SA_NODISCARD enum sa_status sa_local_tokenize_prompt(const struct sa_tokenizer *tok, const char *text, size_t len,
                                                     int32_t **ids, size_t *n);

/* ---- the edit judge (edit_judge.c) ---- */

struct sa_edit_judge; /* a judge model's context */
/* A judge over `model` with its own context made with `cp`. Errors: the context's. */
SA_NODISCARD enum sa_status sa_edit_judge_init(const struct sa_model *model, const struct sa_ctx_params *cp,
                                               struct sa_edit_judge **out);
void sa_edit_judge_free(struct sa_edit_judge *j);
/* *margin = log p(y2 | prompt) - log p(y1 | prompt) under the judge, nats: prompt[0..plen) is
 * the judge's rendered prompt (its reply pre-filled up to where the sentence starts), each sum
 * over the sentence's tokens in the tokenization of prompt + sentence (no end token). NAN when
 * prompt + either sentence does not fit in the context (not judged). *n_prefill (may be NULL):
 * the prompt tokens evaluated (the cache kept the rest). Errors: BAD_ARGUMENT (an empty
 * prompt), CANCELLED, NO_MEMORY, the tokenizer's. */
SA_NODISCARD enum sa_status sa_edit_judge_margin(struct sa_edit_judge *j, const char *prompt, size_t plen,
                                                 const char *y1, const char *y2, double *margin,
                                                 int32_t *n_prefill);

/* ---- joining (join.c) ---- */

/* ASCII whitespace as the segmenter counts it: space, \t, \n, \r, \f, \v. */
bool sa_join_is_space(unsigned char c);
/* Length of the leading whitespace of s[0..n). */
size_t sa_join_lead(const char *s, size_t n);
/* Length of s[0..n) without its trailing whitespace. */
size_t sa_join_trim_end(const char *s, size_t n);
/* A malloc'd copy of s[0..n) without leading and trailing whitespace (NULL: no memory). */
char *sa_join_strip(const char *s, size_t n);
/* The line break to keep after a sentence: the length of s[0..n)'s leading whitespace up to
 * and including its last '\n' (0: none). Spaces and tabs after that newline are the next
 * line's indentation, which the upstream writes again (they merge with what follows). */
size_t sa_join_kept_break(const char *s, size_t n);
/* True when s[0..n) is empty or only whitespace. */
bool sa_join_blank(const char *s, size_t n);
/* Levenshtein distance over Unicode characters (invalid bytes count one each) divided by the
 * longer length; 0 when both are empty. Texts over 4096 characters are compared on their
 * first 4096 characters. */
double sa_join_edit_ratio(const char *a, size_t na, const char *b, size_t nb);
/* Whitespace-separated words (the token count when no tokenizer is known). */
int32_t sa_join_count_words(const char *s, size_t n);

/* ---- the aligner's input (aligner_input.c) ---- */

/* True when y2 contains a marker of the aligner's input ("##Your_Revision:", ...) or a piece of
 * one (" | ##", "##Your_Revision" without its colon) that y1 does not, or ends in " |" (a
 * field separator's start, trailing spaces aside) where y1 does not (the format edit check). */
bool sa_aligner_input_marker_added(const char *y1, const char *y2);

/* ---- the arithmetic check of an edit (arith_check.c) ---- */

/* One equation a text writes out (a link of a chain, or a variable's use "x = 3640"): its bytes
 * [start, end) (leading spaces excluded), the value of its left side (of the variable's
 * definition), the value of its right side, and whether that is wrong; its right side's bytes
 * [rs, re), and `bare` when that is one number (a result the calculator can rewrite). */
struct sa_arith_eq {
    size_t start, end;
    double value, result;
    bool wrong;
    size_t rs, re;
    bool bare;
};
/* The well-delimited equations of s[0..n) whose sides evaluate (the rules at the top of
 * arith_check.c, those of bench/arith_records.py): the count; the first `max` go to out.
 * 0 when a copy of s cannot be allocated. */
int32_t sa_arith_equations(const char *s, size_t n, struct sa_arith_eq *out, int32_t max);
/* True when y2 writes a wrong equation that y1 does not write (the same text, spaces aside,
 * with the same left value). */
bool sa_arith_edit_adds_error(const char *y1, const char *y2);
/* The calculator (sa_pipeline_params.calculator): s with the written result of each false
 * equation whose right side is one number replaced by the true value, written as the result was
 * (its decimals, or 2 for a fractional value where it had none; its thousands commas; its \$ or
 * $), pass after pass (a fixed result can make a later step that used it false) until none is
 * left, at most 8 passes: a new string in *out (malloc'd) and the results rewritten in *n_fixed,
 * or *out NULL and 0 when there was nothing to rewrite. bench/arith_records.py `repair()`. */
enum sa_status sa_arith_repair(const char *s, char **out, int32_t *n_fixed);

/* ---- sampling from a prefix (the end of pipeline.c, for prefix_sample.c) ---- */

/* sa_pipeline_sample after its argument checks (params complete, strings valid UTF-8). */
SA_NODISCARD enum sa_status sa_pipeline_sample_run(struct sa_pipeline *pl, const char *question, const char *prefix,
                                                   const struct sa_pipeline_sample_params *sp,
                                                   struct sa_pipeline_sample_result *out);

#endif
