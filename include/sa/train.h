/* train.h: fine-tuning a Llama-family model (llama, qwen2, qwen3, gemma3) in f32 on the CPU:
 * full fine-tuning or LoRA, masked next-token cross-entropy, AdamW, checkpoints that resume
 * exactly, and export as a Hugging Face directory plus a GGUF (issue 4). Two levels:
 *   - the model (sa_train_model_*): load, forward + backward over a batch, optimizer step,
 *     state save/restore, export. Used by the loop and by the PyTorch reference tests.
 *   - the run (sa_train_run): records -> batches -> steps -> checkpoints -> export, what
 *     `salign train` does.
 * Layout, invariants and the checkpoint format: docs/TRAINING.md. */
#ifndef SA_TRAIN_H
#define SA_TRAIN_H

#include "sa/dtype.h"
#include "sa/model_config.h"
#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* LoRA target modules (bit flags). */
enum {
    SA_LORA_Q = 1 << 0,
    SA_LORA_K = 1 << 1,
    SA_LORA_V = 1 << 2,
    SA_LORA_O = 1 << 3,
    SA_LORA_GATE = 1 << 4,
    SA_LORA_UP = 1 << 5,
    SA_LORA_DOWN = 1 << 6,
    SA_LORA_ALL = (1 << 7) - 1,
};
/* Parses a comma-separated list of "q", "k", "v", "o", "gate", "up", "down" (also "q_proj",
 * ..., and "all") into SA_LORA_* flags in *out. Errors: SA_STATUS_BAD_ARGUMENT (NULL, empty,
 * an empty or unknown name; *out unchanged). */
SA_NODISCARD enum sa_status sa_lora_targets_parse(const char *s, uint32_t *out);

/* Precision of the matrix products (issue 4, docs/TRAINING.md "Mixed precision"). FP32: f32
 * everywhere. BF16: the forward and backward GEMMs of every linear layer, of the LM head and
 * of attention round their inputs to bf16 and sum in f32 (AVX512-BF16 where the CPU has it),
 * as PyTorch's CPU autocast to bfloat16 does; master weights, gradients, AdamW, norms,
 * softmax and the loss stay f32. */
enum sa_train_precision { SA_TRAIN_FP32 = 0, SA_TRAIN_BF16 = 1 };
/* The precision named "fp32" or "bf16" (also "f32", "float32", "bfloat16") into *out.
 * Errors: SA_STATUS_BAD_ARGUMENT (NULL or unknown name; *out unchanged). */
SA_NODISCARD enum sa_status sa_train_precision_from_name(const char *name, enum sa_train_precision *out);
const char *sa_train_precision_name(enum sa_train_precision p); /* "fp32", "bf16" */

/* OpenBLAS (the products of training) picks its kernels once, when it loads, from the CPU's model
 * number. On a CPU it does not know (a virtual machine that hides the model, a newer part) a
 * DYNAMIC_ARCH build falls back to generic SSE3 kernels ("Prescott"). Returns the
 * OPENBLAS_CORETYPE that suits this CPU ("SkylakeX" with AVX-512, "Haswell" with AVX2 and FMA)
 * when the loaded OpenBLAS runs such a fallback and OPENBLAS_CORETYPE is not set; NULL otherwise.
 * OpenBLAS reads the variable only when it loads, so a program sets it and starts itself again
 * (`salign` does: docs/TRAINING.md "Speed and memory"). */
const char *sa_train_blas_coretype_advice(void);
/* The core whose kernels the loaded OpenBLAS runs ("Haswell", "SkylakeX", "Prescott", ...). */
const char *sa_train_blas_core(void);

struct sa_train_model_params {
    int32_t lora_rank;     /* 0: full fine-tuning; > 0: LoRA of this rank (base weights frozen) */
    float lora_alpha;      /* scale alpha / rank; 0: alpha = 2 * rank */
    float lora_dropout;    /* dropout on the adapter input, in [0, 1) */
    uint32_t lora_targets; /* SA_LORA_* flags; 0: SA_LORA_ALL */
    uint64_t seed;         /* LoRA initialisation and dropout masks */
    int32_t n_threads;     /* threads for BLAS and the row-parallel ops; 0: 1 */
    enum sa_train_precision precision; /* SA_TRAIN_FP32 (default) or SA_TRAIN_BF16 */
};
struct sa_train_model_params sa_train_model_default_params(void);

struct sa_train_model; /* opaque */

/* Loads `path`: a .gguf file (every tensor dequantized into f32 master weights; the tokenizer
 * and chat template come from the file) or a Hugging Face directory (config.json,
 * model.safetensors or its index, tokenizer.json + tokenizer_config.json when present).
 * Weights are kept in Hugging Face form (names, Q/K row order, Gemma norms as w). Errors:
 * NOT_FOUND, BAD_FILE, UNSUPPORTED (architecture, logit soft-capping), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_train_model_load(const char *path, const struct sa_train_model_params *p,
                                                struct sa_train_model **out);
void sa_train_model_free(struct sa_train_model *m); /* NULL: nothing */

const struct sa_model_config *sa_train_model_config(const struct sa_train_model *m);
/* Number of parameters: all (trainable false) or those the optimizer updates. */
int64_t sa_train_model_n_params(const struct sa_train_model *m, bool trainable);
/* Threads for the next forward/backward (BLAS is process-wide). */
SA_NODISCARD enum sa_status sa_train_model_set_threads(struct sa_train_model *m, int n_threads);

/* Allocates the activation arena for batches of up to B sequences of up to T tokens. Calls
 * with a smaller (B, T) do nothing; a larger one reallocates. Bytes used: *bytes (may be NULL). */
SA_NODISCARD enum sa_status sa_train_model_reserve(struct sa_train_model *m, int64_t B, int64_t T, size_t *bytes);

/* Sets every gradient to 0 (once per optimizer step). */
void sa_train_model_zero_grad(struct sa_train_model *m);

/* Forward over tokens (B, T) (row-major; position of token t is t) and the loss over the
 * rows with targets[b, t] >= 0 (the next token; -100 masks a row): sum of their
 * cross-entropies / denom (denom <= 0: their count, the mean). With `grad`, the backward
 * then ACCUMULATES gradients (call zero_grad first; several calls with a shared denom give
 * the gradient of the mean over all of them: gradient accumulation). `dropout_seed` varies
 * the LoRA dropout masks (change it per micro-batch). Right padding needs no mask: causal
 * attention keeps padded rows from reaching earlier ones. Errors: BAD_ARGUMENT (a token or
 * target outside the vocabulary, (B, T) above the reservation, no target with denom <= 0). */
SA_NODISCARD enum sa_status sa_train_model_step_batch(struct sa_train_model *m, const int32_t *tokens,
                                                      const int32_t *targets, int64_t B, int64_t T, float denom,
                                                      bool grad, uint64_t dropout_seed, float *loss);
/* sa_train_model_step_batch with a weight per row: weights (B, T) (NULL: 1 everywhere) scales
 * each target row's cross-entropy, so the loss is sum of w * cross-entropy / denom (denom <= 0:
 * the sum of the target rows' weights, the weighted mean). `salign train --edit-weight` weighs
 * the edited tokens of a correction this way. Errors as above, and BAD_ARGUMENT for a weight
 * of a target row that is negative or not finite. */
SA_NODISCARD enum sa_status sa_train_model_step_batch_weighted(struct sa_train_model *m, const int32_t *tokens,
                                                               const int32_t *targets, const float *weights,
                                                               int64_t B, int64_t T, float denom, bool grad,
                                                               uint64_t dropout_seed, float *loss);

/* ---- DPO (Rafailov et al. 2023, "Direct Preference Optimization"; issue 15) ---- */

/* LoRA models: false bypasses the adapters in the forward (the base alone: DPO's frozen
 * reference), true (the default) uses them. A forward with the adapters off cannot be
 * differentiated: sa_train_model_step_batch with grad and sa_train_model_dpo_step with grad
 * refuse it (BAD_ARGUMENT). A full fine-tuning model ignores the switch. */
void sa_train_model_set_adapters(struct sa_train_model *m, bool on);

/* Sequence log-probabilities, forward only: logp[b] (B entries) = sum over the rows t of
 * sequence b with targets[b, t] >= 0 of log p(targets[b, t] | tokens[b, 0..t]), in double (0
 * for a sequence without a target). Arguments as sa_train_model_step_batch. */
SA_NODISCARD enum sa_status sa_train_model_seq_logp(struct sa_train_model *m, const int32_t *tokens,
                                                    const int32_t *targets, int64_t B, int64_t T,
                                                    uint64_t dropout_seed, double *logp);

/* What one DPO batch gives (sums over its pairs, so that micro-batches add up). */
struct sa_train_dpo_stats {
    double loss;            /* sum of the pairs' losses / denom */
    double chosen_reward;   /* sum of beta (logp(chosen) - ref(chosen)) */
    double rejected_reward; /* sum of beta (logp(rejected) - ref(rejected)) */
    int64_t n_correct;      /* pairs whose chosen reward exceeds the rejected one */
    int64_t n_pairs;
};

/* The DPO loss over P pairs laid out as 2P sequences (B = 2P) of tokens (B, T): row 2i the
 * prompt + chosen response of pair i, row 2i + 1 the prompt + rejected response; targets
 * (B, T) mark the response tokens (>= 0) and mask the prompt and padding (-100). ref_logp
 * (2P) holds the reference model's sequence log-probabilities (sa_train_model_seq_logp of
 * the frozen model, in the same layout). Pair i's loss is
 *   -log sigmoid(beta ((logp(c_i) - ref(c_i)) - (logp(r_i) - ref(r_i))))
 * with logp the sum of the response tokens' log-probabilities under m; the batch's loss is
 * the sum over pairs / denom (denom <= 0: P, the mean). With `grad` the gradient of that
 * loss is ACCUMULATED (zero_grad first; micro-batches with a shared denom give the mean over
 * all of them). st (may be NULL) receives the batch's sums. Errors: BAD_ARGUMENT (B odd or
 * above the reservation, beta <= 0, a pair with a response without target, adapters off
 * with grad), the model's. */
SA_NODISCARD enum sa_status sa_train_model_dpo_step(struct sa_train_model *m, const int32_t *tokens,
                                                    const int32_t *targets, int64_t B, int64_t T,
                                                    const double *ref_logp, float beta, float denom, bool grad,
                                                    uint64_t dropout_seed, struct sa_train_dpo_stats *st);

/* One tensor (base weight, or LoRA adapter "<module>.lora_A.weight" / ".lora_B.weight"). */
struct sa_train_tensor {
    const char *name;   /* Hugging Face name, owned by the model */
    int32_t n_dims;     /* 1 or 2 */
    int64_t shape[2];   /* PyTorch order */
    int64_t n;          /* elements */
    float *data;        /* (n) */
    float *grad;        /* (n), NULL for a frozen tensor */
    bool decay;         /* weight decay applies (matrices, not norms or biases) */
};
int32_t sa_train_model_n_tensors(const struct sa_train_model *m);
/* i in [0, n_tensors); false when out of range. Pointers stay valid while the model lives. */
bool sa_train_model_tensor(const struct sa_train_model *m, int32_t i, struct sa_train_tensor *out);
/* Index of a tensor by name, or -1. */
int32_t sa_train_model_find(const struct sa_train_model *m, const char *name);

struct sa_train_optim {
    float beta1, beta2, eps; /* 0.9, 0.95, 1e-8 (the official recipe) */
    float weight_decay;      /* decoupled, on matrices only; 0 */
    float max_grad_norm;     /* clip the global norm to this; 0: no clipping */
};
struct sa_train_optim sa_train_optim_default(void);
/* Clips (when max_grad_norm > 0) and takes one AdamW step with learning rate lr over the
 * trainable tensors; *grad_norm (may be NULL) receives the norm before clipping. */
SA_NODISCARD enum sa_status sa_train_model_adamw_step(struct sa_train_model *m, const struct sa_train_optim *o,
                                                      float lr, double *grad_norm);

/* Trainable weights and optimizer moments into `dir`/params.bin and `dir`/adamw.bin (atomic
 * writes); the load refuses files of another model shape. */
SA_NODISCARD enum sa_status sa_train_model_save_state(const struct sa_train_model *m, const char *dir);
SA_NODISCARD enum sa_status sa_train_model_load_state(struct sa_train_model *m, const char *dir);
/* The trainable weights only (`dir`/params.bin), not the optimizer moments: a warm start. */
SA_NODISCARD enum sa_status sa_train_model_load_params(struct sa_train_model *m, const char *dir);

struct sa_train_export_params {
    enum sa_dtype st_type;   /* safetensors weights: F32, F16 or BF16 */
    enum sa_dtype gguf_type; /* GGUF weights: F32, F16, BF16, Q8_0; SA_DTYPE_COUNT: no GGUF */
    const char *gguf_name;   /* file name inside the directory; NULL: "model-<type>.gguf" */
    const char *tokenizer_gguf; /* GGUF whose tokenizer to embed; NULL: the base's if it was a GGUF */
    /* LoRA models only: */
    const char *adapter_name; /* the GGUF LoRA adapter written next to the merged model (f32 when
                               * gguf_type is F32, else f16); NULL: "adapter.gguf" */
    bool adapter_only;        /* write only the adapter (no merged weights, config or tokenizer) */
};
/* F32 safetensors + F16 GGUF, adapter.gguf next to them for a LoRA model. */
struct sa_train_export_params sa_train_export_default_params(void);
/* Writes `dir` (created): model.safetensors + config.json + tokenizer files of the base
 * (tokenizer.json etc. for a Hugging Face base; tokenizer_config.json, generation_config.json
 * for a GGUF base), and the GGUF with the tokenizer. LoRA adapters are merged into the written
 * weights (the model in memory is unchanged). */
SA_NODISCARD enum sa_status sa_train_model_export(const struct sa_train_model *m, const char *dir,
                                                  const struct sa_train_export_params *p);
/* Writes the adapters of a LoRA model (sa_train_model_params.lora_rank > 0) to `path` as a GGUF
 * LoRA adapter in llama.cpp's format (what its convert_lora_to_gguf.py writes: general.type
 * "adapter", adapter.type "lora", adapter.lora.alpha, the base's general.architecture;
 * "blk.N.attn_q.weight.lora_a" ne [n_in, r] and ".lora_b" ne [r, n_out], Q/K rows of B in
 * llama.cpp's order), loadable over the base by sa_lora_load (sa/lora.h) and by llama.cpp
 * (--lora FILE). type: SA_DTYPE_F32 or SA_DTYPE_F16. Errors: BAD_ARGUMENT (not a LoRA model,
 * another type), IO, NO_MEMORY. */
SA_NODISCARD enum sa_status sa_train_model_export_lora(const struct sa_train_model *m, const char *path,
                                                       enum sa_dtype type);
/* The inverse: the adapters of a GGUF LoRA adapter file (as sa_train_model_export_lora writes
 * it; f32, f16 or bf16) into the LoRA model's trainable A and B (Q/K rows of B back in HF's
 * order); the base weights are untouched. The file must fit the model exactly: its
 * architecture, adapter.lora.alpha equal to the model's lora_alpha, and one lora_a/lora_b pair of
 * this rank for each adapted module, no other. An f16 file gives the f16 rounding of the weights
 * it was written from. Errors: BAD_ARGUMENT (no LoRA in the model, a file that does not fit;
 * the message names the tensor or key), BAD_FILE (not a GGUF LoRA adapter), UNSUPPORTED
 * (another tensor type), IO, NO_MEMORY. On error the adapters may be partly overwritten. */
SA_NODISCARD enum sa_status sa_train_model_import_lora(struct sa_train_model *m, const char *path);

/* ---- the run ---- */

/* What a progress report tells (sa_train_params.on_progress). */
enum sa_train_event {
    SA_TRAIN_EVENT_START = 0,   /* the data and the model are ready: the setup fields below (DPO: the
                                   reference's log-probabilities are computed next) */
    SA_TRAIN_EVENT_RESUMED = 1, /* a checkpoint was loaded: step = its step */
    SA_TRAIN_EVENT_EVAL = 2,    /* the held-out loss before the first step: eval_loss */
    SA_TRAIN_EVENT_STEP = 3,    /* an optimizer step is done, logged to log.csv (and checkpointed
                                   when `checkpoint`) */
    SA_TRAIN_EVENT_EXPORT = 4,  /* the model is about to be written to `path` */
};

/* One progress report. Fields that do not belong to the event are 0 (NaN for the losses). */
struct sa_train_progress {
    enum sa_train_event event;
    int64_t step;          /* steps done in total (after a resume: including the earlier ones) */
    int64_t total_steps;
    double epoch;          /* STEP: epochs done (a fraction), as in log.csv */
    double loss;           /* STEP: train loss of the step (mean over its target tokens) */
    double lr;             /* STEP: learning rate of the step */
    double grad_norm;      /* STEP: global gradient norm before clipping */
    int64_t tokens;        /* STEP: tokens processed in total, as in log.csv */
    double tokens_per_s;   /* STEP: tokens of this process per second of its steps */
    double eta_s;          /* STEP: seconds left at this process' mean step time */
    double eval_loss;      /* EVAL, STEP: held-out loss (NaN: not evaluated at this step) */
    bool log_step;         /* STEP: every log_every steps and the last: a line when not on a terminal */
    bool last;             /* STEP: the last step of the run */
    bool checkpoint;       /* STEP: a checkpoint of this step was written */
    const char *path;      /* EXPORT: the model directory (valid during the call) */
    /* START: the setup */
    int64_t n_records, n_train, n_eval, n_truncated, n_dropped;
    const char *arch;      /* architecture name (valid during the call) */
    int64_t n_params, n_trainable;
    int64_t warmup_steps;
    uint64_t activation_bytes; /* the activation arena */
    /* DPO (objective SA_TRAIN_OBJ_DPO); NaN otherwise */
    int64_t n_skipped;     /* START: records without a preference (correction == original), skipped */
    int64_t n_edits;       /* START: SFT examples (train and held out) whose correction edits the original */
    double reward_margin;  /* STEP: mean of chosen - rejected reward over the step's pairs */
    double reward_accuracy; /* STEP: share of the step's pairs with chosen reward > rejected */
    double eval_accuracy;  /* EVAL, STEP: held-out reward accuracy (NaN: not evaluated) */
};

/* What `salign train` optimizes (docs/TRAINING.md, "Objectives"). */
enum sa_train_objective {
    SA_TRAIN_OBJ_SFT = 0,          /* the aligner: cross-entropy of the correction given the aligner's input */
    SA_TRAIN_OBJ_DPO = 1,          /* DPO of the upstream: prompt = the question in the chat template + the
                                      prefix, chosen = the correction, rejected = the original (last /
                                      answer); records with correction == original are skipped */
    SA_TRAIN_OBJ_SFT_UPSTREAM = 2, /* SFT of the upstream: cross-entropy of the correction given the DPO
                                      prompt (the upstream's view of question + prefix) */
};
/* "sft", "dpo", "sft-upstream" into *out. Errors: BAD_ARGUMENT (NULL or unknown). */
SA_NODISCARD enum sa_status sa_train_objective_from_name(const char *name, enum sa_train_objective *out);
const char *sa_train_objective_name(enum sa_train_objective o);

struct sa_train_params {
    const char *base;        /* model path (.gguf or HF directory) */
    const char *data;        /* records: JSONL or a JSON array (sentence or whole-answer) */
    const char *out;         /* output directory: checkpoints, log.csv, loss.svg, the model */
    struct sa_train_model_params model;
    struct sa_train_optim optim;
    float lr;                /* peak learning rate: 2e-5 */
    float warmup_ratio;      /* 0.03 */
    int32_t epochs;          /* 3 */
    int32_t batch;           /* sequences per micro-batch: 4 */
    int32_t grad_accum;      /* micro-batches per step: 1 */
    int32_t max_length;      /* tokens per sequence: 512 (prefix truncated from the left) */
    int64_t max_records;     /* use only the first N records of the file; 0: all */
    double eval_fraction;    /* held-out share of the questions: 0.05 (0: no evaluation) */
    int32_t eval_every;      /* steps between evaluations; 0: only at the end */
    int32_t save_every;      /* steps between checkpoints; 0: only at the end */
    int32_t log_every;       /* steps between progress reports with log_step set (and the
                                last step): 10; 0: none */
    int64_t max_steps;       /* stop after this many steps in total; 0: epochs decide */
    int64_t stop_after_steps; /* debug: exit the run (after checkpointing) once this many steps
                                were taken in this process; 0: off */
    bool resume;             /* continue from `out`/checkpoint */
    const char *init_from;   /* NULL, or start from the trainable weights of another run: its
                                directory (the checkpoint named by its checkpoint/latest), a
                                checkpoint directory (params.bin), or a GGUF LoRA adapter file
                                (sa_train_model_import_lora: e.g. a shipped models/NAME/adapter.gguf).
                                The model must have the same trainable tensors (base, LoRA rank,
                                alpha and targets); the optimizer,
                                the schedule and the step count start afresh. Ignored with
                                `resume` (the checkpoint holds the weights). */
    bool quiet;              /* on_progress is not called */
    enum sa_dtype st_type, gguf_type; /* export types (sa_train_export_params) */
    bool no_export;
    bool adapter_only;       /* LoRA: export only model/adapter.gguf (sa_train_export_params) */
    /* Called on the calling thread for each event (may be NULL). The library prints nothing:
     * `salign train` draws its progress lines from these reports. The report is valid during
     * the call only. */
    void (*on_progress)(void *user, const struct sa_train_progress *pr);
    void *progress_user;
    /* Polled on the calling thread before each micro-batch and each held-out batch (may be
     * NULL): true stops the run with SA_STATUS_CANCELLED after writing a checkpoint of the
     * last finished step (unless one exists: a run cancelled before its first step keeps the
     * checkpoint it resumed from, or has none), so that --resume continues it exactly. */
    bool (*cancel)(void *user);
    void *cancel_user;
    /* objectives (issue 15) */
    enum sa_train_objective objective; /* SA_TRAIN_OBJ_SFT */
    float dpo_beta;          /* DPO's beta: 0.1 */
    float edit_weight;       /* SFT: the loss weight of a correction's edited tokens (those
                                between its common prefix and suffix with the original
                                sentence; sa_train_model_step_batch_weighted), the others 1;
                                the loss is the weighted mean. 1 (the default): plain SFT */
    const char *dpo_ref;     /* DPO's reference model (path, same vocabulary); NULL: the base
                                itself before training (LoRA: the base without the adapters) */
};
struct sa_train_params sa_train_default_params(void);

struct sa_train_result {
    int64_t steps;            /* steps taken in total (after resume: including the earlier ones) */
    int64_t total_steps;
    double first_loss, last_loss; /* train loss of the first and last step of this process */
    double eval_loss_before, eval_loss_after; /* NaN when no evaluation ran */
    int64_t n_records, n_train, n_eval, n_truncated, n_dropped;
    int64_t tokens;           /* tokens processed by this process */
    double seconds;           /* wall time of the steps of this process */
    bool stopped_early;       /* stop_after_steps hit (status OK) or cancelled (status CANCELLED) */
    int64_t peak_rss_kb;      /* peak resident memory of the process */
    int64_t n_skipped;        /* DPO: records without a preference */
    int64_t n_edits;          /* SFT: examples whose correction edits the original (the rest copy it) */
    double eval_accuracy_before, eval_accuracy_after; /* DPO: held-out reward accuracy (NaN: none) */
};

/* Trains as described by p: reports progress through p->on_progress, writes log.csv, loss.svg
 * and the checkpoints under p->out, exports the model to p->out/model (unless no_export or
 * stopped early). res is filled also on errors (the steps taken so far). Errors: BAD_ARGUMENT
 * (parameters, a checkpoint of other options), CANCELLED (p->cancel: the checkpoint of the
 * last finished step is written), the model's, data's and files' errors. */
SA_NODISCARD enum sa_status sa_train_run(const struct sa_train_params *p, struct sa_train_result *res);

#ifdef __cplusplus
}
#endif
#endif
