/* pipeline.h: the Stream Aligner pipeline (Algorithm 1 of the paper, issue 5). An upstream
 * model writes the answer one sentence at a time (y1, cut at the sentence boundary); an
 * aligner rewrites each sentence given the question and the answer so far (y2); y2 is
 * appended to the answer and handed to the caller at once. Also the comparison modes:
 * "continue" (N corrected rounds, then one model finishes the answer), "aligner" (the
 * Aligner baseline: whole answer, rewritten once) and "upstream" (no correction).
 * Data flow, joining and boundary rules: docs/internals/pipeline.md; usage: docs/PIPELINE.md.
 * A pipeline holds contexts (KV caches) that it reuses across rounds and questions: one
 * pipeline per thread; a run keeps no state between questions other than caches. */
#ifndef SA_PIPELINE_H
#define SA_PIPELINE_H

#include "sa/chat.h"
#include "sa/dtype.h"
#include "sa/segment.h"
#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_model;
struct sa_tokenizer;
struct sa_upstream;
struct sa_lora;
struct sa_sched;
struct sa_pipeline; /* opaque */

/* Add values only at the end. */
enum sa_pipeline_mode {
    SA_PIPELINE_STREAM = 0,   /* the loop: every sentence corrected as it comes */
    SA_PIPELINE_CONTINUE = 1, /* continue_rounds corrected sentences, then continue_with finishes */
    SA_PIPELINE_ALIGNER = 2,  /* the Aligner baseline: the whole answer, rewritten once */
    SA_PIPELINE_UPSTREAM = 3, /* the upstream alone, streamed sentence by sentence */
};
/* "stream", "continue", "aligner", "upstream" ("unknown" for another value). */
const char *sa_pipeline_mode_name(enum sa_pipeline_mode m);
/* The mode named `name` (one of the names above) into *out. Errors: SA_STATUS_BAD_ARGUMENT
 * (NULL or unknown name; *out unchanged). */
SA_NODISCARD enum sa_status sa_pipeline_mode_from_name(const char *name, enum sa_pipeline_mode *out);

enum sa_pipeline_continue_with {
    SA_PIPELINE_CONTINUE_ALIGNER = 0,  /* the aligner model writes the rest (its own chat template,
                                          question as the user turn, the answer so far pre-filled) */
    SA_PIPELINE_CONTINUE_UPSTREAM = 1, /* the upstream writes the rest, uncorrected */
};

/* Why a run ended. Add values only at the end. */
enum sa_pipeline_stop {
    SA_PIPELINE_STOP_NONE = 0,
    SA_PIPELINE_STOP_UPSTREAM_END = 1, /* the upstream ended its turn; its last sentence was corrected */
    SA_PIPELINE_STOP_ALIGNER_EMPTY = 2, /* the aligner returned an empty (or all-whitespace) revision */
    SA_PIPELINE_STOP_MAX_LENGTH = 3,   /* the answer reached max_length tokens (its last piece may be
                                          cut there: sa_pipeline_sentence.cut) */
    SA_PIPELINE_STOP_MAX_ROUNDS = 4,   /* max_rounds sentences were corrected */
    SA_PIPELINE_STOP_CANCELLED = 5,    /* the cancel hook or the sentence callback asked to stop */
    SA_PIPELINE_STOP_DONE = 6,         /* a one-shot mode finished (aligner baseline, continue's end) */
};
/* "none", "upstream_end", "aligner_empty", "max_length", "max_rounds", "cancelled", "done". */
const char *sa_pipeline_stop_name(enum sa_pipeline_stop s);

/* The aligner's input text, byte for byte (Stream Aligner):
 *   "##Question: {q} | ##Answer_Prefix: {prefix} | ##Answer_Last_Sentence: {last} | ##Your_Revision: "
 * (a trailing space): what the pipeline asks the aligner, and what its training records are
 * rendered as (sa_record_input). *out is malloc'd. Errors: SA_STATUS_BAD_ARGUMENT (NULL),
 * NO_MEMORY. */
SA_NODISCARD enum sa_status sa_aligner_input(const char *question, const char *prefix, const char *last, char **out);
/* The Aligner baseline's input: "##Question: {q}\n##Answer: {answer}\n##Correction: ". */
SA_NODISCARD enum sa_status sa_aligner_baseline_input(const char *question, const char *answer, char **out);

/* How the gated revision (sa_pipeline_params.edit_gate) compares a revision y2 with copying y1.
 * Add values only at the end. */
enum sa_pipeline_edit_score {
    SA_PIPELINE_EDIT_SCORE_SUM = 0,  /* margin = log p(y2) - log p(y1), in nats (each a sum over its
                                        tokens and the end token) */
    SA_PIPELINE_EDIT_SCORE_MEAN = 1, /* margin = log p(y2) / n(y2) - log p(y1) / n(y1): nats per token
                                        (n counts the end token), so that a revision is not favoured
                                        merely for being shorter (fewer tokens, fewer negative terms) */
};
/* "sum", "mean" ("unknown" for another value). */
const char *sa_pipeline_edit_score_name(enum sa_pipeline_edit_score e);

/* The edit checks (issue 13; not in the paper): rules that refuse an edit whatever the
 * aligner's score, so that the upstream's y1 is emitted instead. Bits of
 * sa_pipeline_params.edit_check; the rules: src/pipeline/arith_check.c, docs/PIPELINE.md. */
enum sa_pipeline_edit_check {
    SA_PIPELINE_EDIT_CHECK_NONE = 0,        /* every edit may stand (default) */
    SA_PIPELINE_EDIT_CHECK_ARITH = 1u << 0, /* an edit that writes out a false equation y1 did not
                                               write ("17 + 17 + 17 + 17 = 59") is refused; one that
                                               corrects y1's arithmetic passes */
    SA_PIPELINE_EDIT_CHECK_FORMAT = 1u << 1, /* an edit that writes a marker of the aligner's input
                                                ("##Your_Revision:", ...) y1 did not write is refused:
                                                the aligner lost track of its task */
    SA_PIPELINE_EDIT_CHECK_CUT = 1u << 2,   /* an edit that only deletes is refused: y2's characters,
                                               spaces aside, are fewer than y1's and appear in y1 in
                                               order ("Over the week: 1 + 2 = 3 hours." -> "1 + 2 =
                                               3 hours."); opt-in, not in ALL until it is measured */
    SA_PIPELINE_EDIT_CHECK_ALL = SA_PIPELINE_EDIT_CHECK_ARITH | SA_PIPELINE_EDIT_CHECK_FORMAT,
    SA_PIPELINE_EDIT_CHECK_KNOWN = SA_PIPELINE_EDIT_CHECK_ALL | SA_PIPELINE_EDIT_CHECK_CUT,
    /* Not a rule, and not a bit of edit_check: refused_by's value when the edit judge
     * (sa_pipeline_params.edit_judge_model) refused the edit. */
    SA_PIPELINE_EDIT_CHECK_JUDGE = 1u << 3,
};
/* "arith", "format", "cut", "judge" for one bit ("none" for 0, "unknown" for anything else). */
const char *sa_pipeline_edit_check_name(unsigned check);
/* The check of `checks` (bits) that refuses replacing y1 with y2 (both NUL-terminated): one
 * SA_PIPELINE_EDIT_CHECK_* bit, or 0 when none does (or y1 or y2 is NULL). When several would,
 * the first in the order they are tested: FORMAT, CUT, ARITH. */
unsigned sa_pipeline_edit_refused_by(unsigned checks, const char *y1, const char *y2);
/* True when the checks (bits) refuse replacing y1 with y2: sa_pipeline_edit_refused_by() != 0. */
bool sa_pipeline_edit_refused(unsigned checks, const char *y1, const char *y2);

/* What the aligner is asked (for a test double or a custom aligner: aligner_fn). */
enum sa_pipeline_request_kind {
    SA_PIPELINE_REQ_SENTENCE = 0, /* revise `last` given question and prefix (Stream Aligner input) */
    SA_PIPELINE_REQ_ANSWER = 1,   /* revise the whole `last` answer (Aligner baseline input) */
    SA_PIPELINE_REQ_CONTINUE = 2, /* write the rest of the answer after `prefix` */
};
struct sa_pipeline_request {
    enum sa_pipeline_request_kind kind;
    const char *question, *prefix, *last; /* NUL-terminated, valid during the call; last is ""
                                             for CONTINUE */
};
/* A custom aligner: sets *out to a malloc'd NUL-terminated text (the pipeline frees it) and
 * *n_tokens to the tokens it stands for (0 if unknown). A non-OK status (with sa_error) ends
 * the run with that status. */
typedef enum sa_status (*sa_pipeline_aligner_fn)(void *user, const struct sa_pipeline_request *req, char **out,
                                                 int32_t *n_tokens);

struct sa_pipeline_params {
    enum sa_pipeline_mode mode;

    /* ---- the upstream: exactly one of upstream_model and upstream (ALIGNER mode: also none,
       to revise given answers with sa_pipeline_revise_answer) ---- */
    const struct sa_model *upstream_model; /* a local model (borrowed; must outlive the pipeline):
                                              the pipeline makes a context and a local upstream */
    const struct sa_lora *upstream_lora;   /* NULL, or a LoRA adapter loaded over upstream_model
                                              (sa/lora.h) for its context. Borrowed. */
    struct sa_upstream *upstream;          /* any other upstream, e.g. sa_upstream_remote_init or a
                                              test double (borrowed; the pipeline cancels, never frees) */
    /* The upstream's chat format, to render the prompt q + p. UNKNOWN: detected from
     * upstream_model (or from upstream_template / upstream_tokenizer's model); it must be known. */
    enum sa_chat_format upstream_format;
    const char *upstream_template; /* the Jinja source, for the default system prompt it injects
                                      (NULL: from upstream_model; none for a bare remote) */
    /* Counts the answer's tokens (max_length, metrics). NULL: upstream_model's tokenizer, else
     * the aligner's, else whitespace-separated words. Borrowed. */
    const struct sa_tokenizer *upstream_tokenizer;
    const char *system; /* a system message for the upstream (NULL: none; the template's default
                           applies where it has one). Copied. */

    /* ---- the aligner: aligner_model, or aligner_fn (tests, custom aligners) ---- */
    const struct sa_model *aligner_model; /* borrowed; not needed in UPSTREAM mode, nor in CONTINUE
                                             mode with continue_rounds 0 and continue_with UPSTREAM */
    const struct sa_lora *aligner_lora;   /* NULL, or a LoRA adapter loaded over aligner_model
                                             (sa/lora.h) for the aligner's context: one loaded base
                                             can serve as upstream (plain) and aligner (adapted).
                                             Borrowed. */
    sa_pipeline_aligner_fn aligner_fn;
    void *aligner_user;
    const char *aligner_system; /* a system message for the aligner's revisions (NULL: none, as a
                                   trained aligner expects; an untrained stand-in may need an
                                   instruction). Copied. */

    /* ---- the loop ---- */
    int32_t max_rounds;          /* most corrected sentences (STREAM); 0: no limit */
    int32_t max_length;          /* most tokens of the answer, counted by the counting tokenizer
                                    (upstream_tokenizer below) on the whole answer; 0: 1024. A hard
                                    cap in every mode: the piece that would pass it is cut at the
                                    cap (the first max_length tokens, at a character boundary)
                                    and the run ends with SA_PIPELINE_STOP_MAX_LENGTH */
    int32_t max_sentence_tokens; /* most upstream tokens for one sentence; 0: 256 */
    int32_t max_aligner_tokens;  /* most aligner tokens per revision; 0: 2 x the draft's tokens + 32
                                    (REQ_ANSWER: + 64) */
    int32_t continue_rounds;     /* CONTINUE: corrected sentences before continue_with takes over */
    enum sa_pipeline_continue_with continue_with;
    enum sa_segment_unit unit;   /* sentence (default) or line */

    /* ---- decoding ---- */
    float upstream_temp;  /* <= 0: greedy (default 0) */
    float upstream_top_p; /* (0, 1]; 0: 1 (off) */
    float aligner_temp;   /* <= 0: greedy (default 0) */
    uint64_t seed;        /* round r of a run uses seed + r for the upstream; the aligner's
                             sampler is seeded with seed at each run */
    bool use_spec;        /* copy-speculation in the aligner (default true) */
    bool kv_reuse;        /* keep KV caches across rounds (default true); false: every prompt
                             is evaluated from scratch (for the benchmark) */
    int n_threads;        /* compute threads of the local contexts; 0: all cores */
    int32_t n_ctx;        /* tokens of each local context; 0: min(4096, trained context) */
    bool token_healing;   /* a local model continuing the answer gets its prompt's last token
                             back to rewrite (sa_upstream_gen_params.heal_bytes; default true):
                             without it, a prefix cut at ":" before a line break ends in a
                             token the model never wrote there (docs/internals/pipeline.md) */
    bool batch_invariant; /* the local contexts' sa_ctx_params.batch_invariant (default false):
                             true makes a prompt evaluated from scratch and one extended from a
                             kept cache give the same bits, so kv_reuse and use_spec change the
                             speed only, at the cost of slower one-token decoding (avx512).
                             Copy-speculation verifies with the batch-invariant kernels either
                             way (docs/internals/speculation.md). */
    struct sa_sched *sched; /* NULL (default), or a scheduler (sa/batch.h) the local contexts decode
                               through: several threads, each with its own pipeline over the
                               same models, are then batched (`salign align --parallel N`). The
                               calling thread must have entered it (sa_sched_enter); it leaves
                               it while it waits on a remote upstream. Borrowed. */
    enum sa_dtype kv_type; /* the local contexts' sa_ctx_params.kv_type: SA_DTYPE_F32 (0, the
                              default) or SA_DTYPE_F16 */

    /* ---- the gated revision (issue 13; not in the paper) ---- */
    /* false (default): every revision is kept, as in the paper. true: a revision y2 that differs
     * from y1 (STREAM and CONTINUE rounds, the ALIGNER rewrite) is scored against copying: from
     * the same aligner input, log p(y2) (accumulated while it was generated) and log p(y1)
     * (teacher-forced over y1's tokens, the draft of copy-speculation, reusing the cached
     * prompt), each with the end-of-turn token that ends it; y2 is kept only when the margin
     * (edit_score) is >= edit_threshold, else y1 is emitted as the revision. Costs one aligner
     * pass over the part of y1 after its first token that differs, per edited sentence. Needs
     * aligner_model (aligner_fn gives no scores). docs/PIPELINE.md "Gated revision". */
    bool edit_gate;
    float edit_threshold; /* nats (SUM) or nats per token (MEAN); -INFINITY scores every edit and
                             gates none (to choose a threshold: salign eval aligner); not NaN */
    enum sa_pipeline_edit_score edit_score; /* SUM (default) or MEAN */
    bool keep_line_break; /* an upstream that is not healed (remote, custom, or local with
                             token_healing off) gets back the line break it wrote after the
                             accepted sentence at the end of its prompt, so that ":" + "\n\n"
                             stays its own ":\n\n" token (default true). The answer, the
                             pieces and the aligner's prefix are unchanged: the break is the
                             next piece's separator (docs/internals/pipeline.md) */

    /* ---- proxy-tuning of a local upstream (issue 15; sa/proxy.h, docs/PROXY.md) ---- */
    /* Both set (with upstream_model): every upstream token is drawn from upstream + proxy_alpha
     * * (expert - anti) instead of the upstream's own logits, in every mode and in
     * sa_pipeline_sample; the expert and the anti-expert each get a context that follows the
     * upstream's (same n_ctx, threads, kv_type; not through `sched`). They must share the
     * upstream's vocabulary (else init fails with SA_STATUS_UNSUPPORTED). Borrowed. NULL
     * (default): no proxy-tuning. */
    const struct sa_model *proxy_expert, *proxy_anti;
    const struct sa_lora *proxy_expert_lora; /* NULL, or a LoRA adapter over proxy_expert for its
                                                context (sa_proxy_params.expert_lora). Borrowed. */
    float proxy_alpha;                       /* finite; default 1 */

    /* ---- the edit checks (issue 13; not in the paper) ---- */
    /* SA_PIPELINE_EDIT_CHECK_* bits (default NONE): rules applied to every revision y2 that
     * differs from y1 (STREAM rounds, the ALIGNER rewrite; after the gate, with or without it):
     * a refused edit is replaced by y1, as a gated one is (`refused` in its event, n_refused in
     * the result). Work with aligner_fn too (they read the text only). */
    unsigned edit_check;
    /* The calculator (issue 13; not in the paper, and not an aligner: a tool): in every sentence
     * emitted after an aligner round (STREAM rounds, the ALIGNER rewrite; a copy, y1 kept by the
     * gate or the edit check, or the revision), the written result of each false equation whose
     * right side is one number ("\\$204 + \\$160 + \\$330 = \\$794") is rewritten with the true
     * value ("\\$694"), by the edit check's own equation finder and evaluator, so that the
     * upstream continues from true arithmetic. `n_repaired` and `unrepaired` in the event. Works
     * with aligner_fn too (the copy aligner: the calculator alone). Default false. */
    bool calculator;

    /* ---- steering the aligner (issue 15; docs/STEER.md) ---- */
    const struct sa_cvec *aligner_cvec; /* NULL (default), or a control vector (sa/steer.h) added,
                                           times aligner_cvec_scale, to the aligner context's
                                           residual stream (its sa_ctx_params.cvec): every
                                           revision is steered. Borrowed. */
    float aligner_cvec_scale;           /* finite; default 1; 0 gives the unsteered aligner */

    /* ---- the edit judge (issue 13; not in the paper): a second model's opinion of each edit ---- */
    /* NULL (default): none. Else, in STREAM and CONTINUE rounds, each revision y2 that differs
     * from y1 and that the gate and the edit checks let stand is scored by this model prompted as
     * a solver: its own chat template (and that template's default system prompt), the question
     * as the user turn, and the answer so far followed by the separator the upstream wrote before
     * y1 as the start of its reply. judge margin = log p(y2) - log p(y1) after that context, each
     * a sum over the sentence's tokens (no end token: the answer goes on). y2 stands only when the
     * margin is >= edit_judge_threshold; else y1 is emitted, as for a refused edit (`refused`,
     * refused_by SA_PIPELINE_EDIT_CHECK_JUDGE). The calculator then applies as to any sentence.
     * The judge gets its own context, made like the aligner's (n_ctx, n_threads, kv_type,
     * batch_invariant, sched); it may be the same model as the upstream or the aligner. A pair
     * that does not fit in its context is not judged (the edit stands). Borrowed.
     * docs/PIPELINE.md "The edit judge". */
    const struct sa_model *edit_judge_model;
    const struct sa_lora *edit_judge_lora; /* NULL, or a LoRA adapter over edit_judge_model. Borrowed. */
    float edit_judge_threshold;            /* nats; default 0; -INFINITY judges every edit and refuses
                                              none (to choose a threshold); not NaN */
};

/* mode STREAM, no models, format UNKNOWN, max_rounds 0, max_length 1024, max_sentence_tokens
 * 256, max_aligner_tokens 0 (auto), continue_rounds 1, continue_with ALIGNER, unit SENTENCE,
 * temperatures 0 (greedy), top_p 1, seed 0, use_spec true, kv_reuse true, n_threads 0, n_ctx 0,
 * token healing on, batch_invariant false, kv_type SA_DTYPE_F32, edit_gate false (edit_threshold
 * 0, edit_score SUM), keep_line_break on, no proxy-tuning (proxy_alpha 1), edit_check NONE, calculator off,
 * no edit judge (edit_judge_threshold 0). */
struct sa_pipeline_params sa_pipeline_default_params(void);

/* One emitted piece of the answer (a sentence, or a unit of an uncorrected continuation). */
struct sa_pipeline_sentence {
    int32_t index;          /* 1, 2, ...: the emitted piece (the trace's round) */
    bool aligned;           /* true: the aligner revised it (y2); false: model text emitted as is */
    const char *original;   /* y1 without its surrounding whitespace (aligned: what the aligner
                               saw; else the text itself); NUL-terminated */
    const char *text;       /* what was appended to the answer: the separator the upstream wrote
                               before y1, then the revision (NUL-terminated, len bytes) */
    size_t len;
    bool copied;            /* aligned and the aligner's revision equals y1 (a gated revision is
                               not a copy: see `gated`; y1 was emitted unchanged when either) */
    double edit_ratio;      /* Levenshtein distance (Unicode characters) between y1 and y2 over the
                               longer length: 0 copied, 1 all different; 0 when not aligned */
    const char *answer;     /* the whole answer so far (NUL-terminated) */
    bool upstream_done;     /* the upstream had ended its turn with this sentence */
    int32_t upstream_tokens;  /* tokens the upstream generated for it (remote: stream events) */
    int32_t upstream_prefill; /* prompt tokens the local upstream evaluated for it (0: reused all
                                 or remote) */
    double upstream_ms;
    int32_t aligner_tokens;   /* tokens the aligner generated */
    int32_t aligner_draft;    /* draft tokens offered to copy-speculation */
    int32_t aligner_accepted; /* draft tokens accepted */
    int32_t aligner_prefill;  /* prompt tokens the aligner evaluated (its cache kept the rest) */
    double aligner_ms;
    double t_ms;              /* time since the run started, when it was emitted */
    bool cut;                 /* the piece was cut at max_length (the answer's last piece; the
                                 run ends with SA_PIPELINE_STOP_MAX_LENGTH) */
    /* the gated revision (sa_pipeline_params.edit_gate) */
    bool scored;              /* the gate compared this revision with y1: margin is set (false
                                 when the gate is off, or y1 did not fit in the aligner's context) */
    double margin;            /* scored: the margin (edit_score); 0 when copied; else NAN */
    double logp_revision;     /* scored and not copied: log p(y2), nats, end token included; else NAN */
    double logp_draft;        /* scored and not copied: log p(y1), nats, end token included; else NAN */
    int32_t n_revision_tokens, n_draft_tokens; /* the tokens of those sums (end token included) */
    bool gated;               /* margin < edit_threshold: the revision was replaced by y1 (`text` is
                                 the separator + y1, edit_ratio 0; copied stays false: the aligner
                                 did edit) */
    const char *proposed;     /* gated: the aligner's revision that was replaced (without its outer
                                 whitespace); else NULL */
    double score_ms;          /* of aligner_ms: the gate's teacher-forced pass over y1 (0: none) */
    bool refused;             /* the edit check (sa_pipeline_params.edit_check) or the edit judge
                                 (edit_judge_model) refused the revision:
                                 `text` is the separator + y1 and `proposed` the refused revision,
                                 as for a gated one (gated stays false) */
    unsigned refused_by;      /* refused: the check that refused it, one SA_PIPELINE_EDIT_CHECK_* bit
                                 (sa_pipeline_edit_refused_by; its name: sa_pipeline_edit_check_name);
                                 else 0 */
    int32_t n_repaired;       /* results the calculator (sa_pipeline_params.calculator) rewrote in
                                 `text`; 0 when none (copied and edit_ratio describe the aligner's
                                 revision, before the calculator) */
    const char *unrepaired;   /* n_repaired > 0: the emitted sentence before the calculator; else NULL */
    /* the edit judge (sa_pipeline_params.edit_judge_model) */
    bool judged;              /* the judge scored this edit: judge_margin is set */
    double judge_margin;      /* judged: log p(y2) - log p(y1) under the judge, nats; else NAN
                                 (refused_by JUDGE when below edit_judge_threshold) */
    double judge_ms;          /* the judge's time on this sentence (0: not judged); not in aligner_ms */
};

struct sa_pipeline_callbacks {
    /* Called for each piece as soon as it is accepted (may be NULL). Return false to stop the
     * run (it then ends with SA_PIPELINE_STOP_CANCELLED, status OK). */
    bool (*on_sentence)(void *user, const struct sa_pipeline_sentence *s);
    /* Polled between tokens, chunks and layers (may be NULL); true stops the run: status
     * SA_STATUS_CANCELLED, the result keeps the answer so far. */
    bool (*cancel)(void *user);
    void *user;
};

struct sa_pipeline_result {
    char *answer;      /* malloc'd, NUL-terminated: the final answer (free with
                          sa_pipeline_result_free) */
    size_t len;
    char *upstream_answer; /* ALIGNER mode: the upstream's whole answer; else NULL */
    enum sa_pipeline_stop stop;
    int32_t n_sentences;   /* pieces emitted */
    int32_t n_rounds;      /* aligner revisions (sentences, or the one ALIGNER rewrite) */
    int32_t n_copied;      /* revisions equal to their y1 (gated ones not counted: n_gated) */
    double copy_rate;      /* n_copied / n_rounds (0 when no round) */
    int32_t n_tokens;      /* tokens of the answer (see upstream_tokenizer) */
    int32_t upstream_tokens, upstream_prefill;
    int32_t aligner_tokens, aligner_draft, aligner_accepted, aligner_prefill;
    double upstream_ms, aligner_ms;
    double first_sentence_ms; /* from the call to the first emitted piece; 0: none */
    double total_ms;
    double tokens_per_s;      /* n_tokens / total time */
    double ms_per_token;      /* total time / n_tokens */
    /* the gated revision (sa_pipeline_params.edit_gate) */
    int32_t n_scored;         /* revisions the gate scored (copies included) */
    int32_t n_gated;          /* of them, revisions replaced by their y1 */
    double margin;            /* the last scored revision's margin (sa_pipeline_revise_sentence and
                                 ALIGNER mode: of the one revision); NAN when none */
    double logp_revision, logp_draft; /* the last scored revision's sums (NAN: none, or copied) */
    double score_ms;          /* of aligner_ms: the gate's passes over y1 */
    int32_t n_refused;        /* revisions the edit check or the edit judge replaced by their y1
                                 (not in n_gated) */
    unsigned refused_by;      /* the last refused revision's check (sa_pipeline_revise_sentence and
                                 ALIGNER mode: of the one revision): an SA_PIPELINE_EDIT_CHECK_* bit;
                                 0 when none was refused */
    int32_t n_repaired;       /* results the calculator rewrote (sa_pipeline_params.calculator) */
    int32_t n_judged;         /* edits the edit judge scored */
    int32_t n_judge_refused;  /* of them, those it refused (also counted in n_refused) */
    double judge_ms;          /* the edit judge's time */
};
void sa_pipeline_result_free(struct sa_pipeline_result *r);

/* Creates a pipeline: checks the params (one upstream; an aligner where the mode needs one;
 * a known chat format for each side), makes the local contexts and the segmenter. `params`
 * is copied (the models and the upstream stay borrowed). Errors: SA_STATUS_BAD_ARGUMENT (the
 * message names the field), UNSUPPORTED (a model whose chat format is unknown: pass
 * upstream_format), NO_MEMORY, and the context's errors. */
SA_NODISCARD enum sa_status sa_pipeline_init(const struct sa_pipeline_params *params, struct sa_pipeline **out);
void sa_pipeline_free(struct sa_pipeline *pl);

/* Answers `question` (UTF-8, NUL-terminated). `cb` may be NULL. *result is always filled
 * (free it with sa_pipeline_result_free, also after an error: it holds the answer so far).
 * Returns SA_STATUS_OK when the run ended by one of its stop conditions (result->stop),
 * SA_STATUS_CANCELLED when the cancel hook fired, or the error of a model or of the upstream
 * (remote: NETWORK, TIMEOUT, BAD_JSON with the server's message). SA_STATUS_BAD_ARGUMENT means
 * that this question cannot be answered (a prompt longer than a local context, a decode past
 * it, a question the tokenizer or chat template refuses, invalid UTF-8): the pipeline stays
 * usable for the next question (a batch records the error and goes on, docs/PIPELINE.md);
 * the other errors are faults of the system. */
SA_NODISCARD enum sa_status sa_pipeline_run(struct sa_pipeline *pl, const char *question,
                                            const struct sa_pipeline_callbacks *cb, struct sa_pipeline_result *result);

/* The Aligner baseline on an answer written before (by any model, at any time): the aligner
 * rewrites `answer` once, as in ALIGNER mode, without running an upstream. Only for a pipeline
 * made with mode ALIGNER; such a pipeline may have no upstream at all (then sa_pipeline_run
 * refuses). The result is filled as by sa_pipeline_run (upstream_answer: `answer` stripped;
 * upstream counters 0); the callback sees one piece. Errors: BAD_ARGUMENT (NULL argument,
 * another mode, invalid UTF-8), and the aligner's. */
SA_NODISCARD enum sa_status sa_pipeline_revise_answer(struct sa_pipeline *pl, const char *question,
                                                      const char *answer, const struct sa_pipeline_callbacks *cb,
                                                      struct sa_pipeline_result *result);

/* One Stream Aligner revision, outside the loop: the aligner revises `last` given the question
 * and the answer so far (`prefix`, as the loop would pass it: the corrected sentences with
 * their separators), exactly as in a STREAM round (same input text, same decoding). For
 * measuring an aligner on records (salign eval aligner). Any pipeline with an aligner (an
 * ALIGNER-mode pipeline needs no upstream). result->answer: the revision without its outer
 * whitespace (y1 when gated or refused); n_rounds 1; n_copied 1 when the aligner's revision
 * equals `last` stripped; n_scored, n_gated and margin as for a round (edit_gate); n_refused
 * and refused_by as for a round (edit_check); stop DONE (or
 * ALIGNER_EMPTY for an empty revision); aligner counters and total_ms. Errors: BAD_ARGUMENT
 * (NULL argument, no aligner, invalid UTF-8), and the aligner's. */
SA_NODISCARD enum sa_status sa_pipeline_revise_sentence(struct sa_pipeline *pl, const char *question,
                                                        const char *prefix, const char *last,
                                                        struct sa_pipeline_result *result);

/* Levenshtein distance between a[0..na) and b[0..nb) in Unicode characters (an invalid byte
 * counts as one character; texts are cut at 4,096 characters): the numerator of the
 * pipeline's edit_ratio. SIZE_MAX when out of memory. */
size_t sa_edit_distance(const char *a, size_t na, const char *b, size_t nb);

/* ---- the local upstream (src/pipeline/local_upstream.c) ---- */

/* An upstream (sa/upstream.h) over a local model: each start tokenizes the rendered prompt
 * (BOS added when the model asks for one; special tokens parsed) and evaluates it reusing the
 * longest cached prefix (all of it, with no forward pass, when the prompt equals the cache);
 * next samples one token at a time and returns whole UTF-8 characters; a token is added to the
 * cache only when the next one is asked for, so the lookahead token that completed a sentence
 * boundary never enters it. `model` is borrowed. `n_ctx`, `n_threads` as in sa_ctx_params;
 * kv_reuse false: every start evaluates the prompt from scratch. */
SA_NODISCARD enum sa_status sa_upstream_local_init(const struct sa_model *model, int32_t n_ctx, int n_threads,
                                                   bool kv_reuse, struct sa_upstream **out);

/* ---- sampling from a prefix (src/pipeline/prefix_sample.c; issue 13: rollouts) ---- */

/* One sample of the upstream continuing a given answer prefix. */
struct sa_pipeline_sample_params {
    bool whole;        /* true: to the end of the answer (as UPSTREAM mode writes the rest);
                          false: one sentence (as a STREAM round cuts y1) */
    float temperature; /* <= 0: greedy */
    float top_p;       /* (0, 1]; 0: 1 (off) */
    uint64_t seed;     /* the sampler's seed (the same seed, prefix and model give the same text) */
    int32_t max_tokens; /* most upstream tokens of this sample; 0: the pipeline's
                           max_sentence_tokens (one sentence) or what max_length leaves (whole).
                           The pipeline's max_length stays a hard cap on prefix + text */
    bool (*cancel)(void *user); /* may be NULL: polled between tokens; true stops the sample
                                   (SA_STATUS_CANCELLED) */
    void *cancel_user;
};
/* whole false, temperature 0.7, top_p 1, seed 0, max_tokens 0, no cancel hook. */
struct sa_pipeline_sample_params sa_pipeline_sample_default_params(void);

struct sa_pipeline_sample_result {
    char *text;       /* malloc'd: exactly what the pipeline would append to the prefix: the
                         separator the upstream wrote and the sentence (one sentence), or the
                         whole rest of the answer without trailing whitespace; "" when the
                         upstream wrote nothing more */
    char *sentence;   /* malloc'd: one sentence: y1 without its outer whitespace (as the aligner
                         would see it); whole: NULL */
    bool done;        /* the upstream ended its turn within this text (no more would follow) */
    bool cut;         /* max_length (or max_tokens) ended it before the turn's end */
    int32_t n_tokens; /* tokens the upstream generated for it */
    int32_t n_prefill; /* prompt tokens the local upstream evaluated (0: all reused, or remote) */
};
/* Frees the strings; NULL does nothing. */
void sa_pipeline_sample_result_free(struct sa_pipeline_sample_result *r);

/* The upstream continues `prefix` (an answer so far, as the pipeline joins it: sentences
 * with their separators; "" for the start) of `question`, with the pipeline's exact
 * conventions: the prompt q + p rendered with the upstream's chat template (system message
 * included), token healing, the segmenter primed with p and the first sentence boundary
 * after p (one-sentence mode), max_length. Any pipeline with an upstream (mode is not
 * looked at). A local upstream keeps its KV cache across calls, so N samples of one prefix
 * cost one prefill; with sa_pipeline_params.sched several threads' samples are batched.
 * *out is always filled (free with sa_pipeline_sample_result_free; on error its strings are
 * NULL). Errors: BAD_ARGUMENT
 * (NULL, no upstream, invalid UTF-8, a prompt too long for the context: the pipeline stays
 * usable), CANCELLED, and the upstream's errors. */
SA_NODISCARD enum sa_status sa_pipeline_sample(struct sa_pipeline *pl, const char *question, const char *prefix,
                                               const struct sa_pipeline_sample_params *params,
                                               struct sa_pipeline_sample_result *out);

/* The aligner's prompt token ids for one request (SENTENCE: sa_aligner_input; ANSWER:
 * sa_aligner_baseline_input), exactly as the pipeline's aligner context is given them: the
 * input rendered with the aligner's chat template (aligner_system included), the template's
 * written BOS left out and the model's BOS prepended when it asks for one. For reading the
 * aligner's representations on its real inputs (salign steer). *ids malloc'd (caller frees).
 * Errors: BAD_ARGUMENT (NULL, no aligner model, another kind), NO_MEMORY, the tokenizer's. */
SA_NODISCARD enum sa_status sa_pipeline_aligner_prompt(const struct sa_pipeline *pl,
                                                       const struct sa_pipeline_request *req, int32_t **ids,
                                                       size_t *n);

#ifdef __cplusplus
}
#endif
#endif
