/* train_impl.h: library-internal structures of the training engine shared by train_model.c
 * (model, forward, backward, optimizer state), train_export.c (writing the model),
 * train_data.c (records -> token batches) and train_loop.c (the run). */
#ifndef SA_TRAIN_IMPL_H
#define SA_TRAIN_IMPL_H

#include "sa/chat.h"
#include "sa/records.h"
#include "sa/tokenizer.h"
#include "sa/train.h"
#include "train/ops_train_impl.h"

enum { TR_LIN_Q, TR_LIN_K, TR_LIN_V, TR_LIN_O, TR_LIN_GATE, TR_LIN_UP, TR_LIN_DOWN, TR_N_LIN };

struct tr_tensor {
    char name[112];
    int32_t n_dims;
    int64_t shape[2];
    int64_t n;
    float *data;   // (n) into the model's weight or adapter block
    float *grad;   // (n) into the gradient block, NULL when frozen
    bool decay;
    bool lora;     /* an adapter (lora_A / lora_B) */
};

/* A linear module: tensor indices (-1: absent) and its LoRA adapter. */
struct tr_lin {
    int32_t W, b, A, B;
    int64_t C, OC;
};

struct tr_layer {
    int32_t attn_norm, q_norm, k_norm, post_attn_norm, ffn_norm, post_ffw_norm; /* tensor index or -1 */
    struct tr_lin lin[TR_N_LIN];
    bool sliding;
    /* saved activations, pointers into the arena; N = B*T rows */
    float *x_mid;            // (N, C) residual after attention
    float *rstd1, *xn1;      // (N), (N, C) attention-norm
    float *q_pre, *q_rstd;   // (N, H*D), (N*H) before q-norm (qk_norm only)
    float *k_pre, *k_rstd;   // (N, KV*D), (N*KV)
    float *q, *k, *v;        // (N, H*D), (N, KV*D) x2: after norm and RoPE
    float *att, *lse;        // (N, H*D), (B, H, T)
    float *o_raw, *o_rstd;   // (N, C), (N) Gemma: attention output before its post-norm
    float *rstd2, *xn2;      // (N), (N, C) MLP norm
    float *gate, *up;        // (N, F) x2
    float *d_raw, *d_rstd;   // (N, C), (N) Gemma: MLP output before its post-norm
    float *lora_h[TR_N_LIN];  // (N, r)
    float *lora_xd[TR_N_LIN]; // (N, C_in) dropout input, when dropout > 0
};

struct tr_side_file {
    char name[64];
    char *data;
    size_t len;
};

struct sa_train_model {
    struct sa_model_config cfg;
    struct sa_train_model_params p;
    struct tr_tensor *t;
    int32_t n_t, n_base; /* tensors; the first n_base are the base model's */
    float *weights, *adapters, *grads;
    int64_t n_weights, n_adapters, n_grads;
    int32_t embd, out_norm, lm_head; /* lm_head = embd when tied */
    struct tr_layer *layers;
    float *inv_freq_global, *inv_freq_local; // (head_dim / 2) each
    float lora_scale;
    float attn_scale, embd_scale;
    /* activation arena */
    int64_t B_max, T_max;
    float *arena;
    size_t arena_bytes;
    float **x;            // (n_layer + 1) x (N, C): residual stream into each layer, x[L] final
    float *rstd_f, *xn_f; // (N), (N, C)
    int32_t *pos;         // (N)
    int32_t *rows, *tg;   // (N) rows with a target, their targets
    float *dres, *dxn, *dtmp, *tmp;   // (N, C)
    float *dq, *dq2, *datt;           // (N, H*D)
    float *dk, *dk2, *dv;             // (N, KV*D)
    float *act, *dgate, *dup, *dact;  // (N, F)
    float *attn_scratch;              // (2 T T)
    float *lora_dh, *lora_dxd;        // (N, r), (N, max C_in)
    float *logits, *losses, *xc, *dxc; // (R, V), (R), (R, C) x2: LM head chunk of R rows
    float *row_w, *row_loss;           // (N) x2: weight and loss of each target row (DPO)
    int64_t chunk_rows;
    /* mixed precision with AVX512-BF16: the LM head's weights packed for the bf16 GEMM once
     * per batch (forward: op(B) = W^T; backward dX: op(B) = W), reused by every row chunk */
    void *head_pk_fwd, *head_pk_bwd;
    size_t head_pk_bytes[2];
    /* threads and optimizer */
    struct sa_threadpool *tp;
    int n_threads;
    struct sa_adamw opt;
    bool opt_ready;
    bool adapters_off;    /* sa_train_model_set_adapters(false): LoRA bypassed (the DPO reference) */
    bool no_dropout;      /* LoRA dropout off (DPO's held-out evaluation) */
    /* what export and the data need from the base */
    char *base_path;
    bool base_gguf;
    struct tr_side_file side[8];
    int n_side;
    struct sa_tokenizer *tok; /* NULL when the base has no tokenizer */
    char *chat_template;      /* NULL when none */
};

/* splitmix64 finaliser: seeds derived from (seed, counters). */
uint64_t sa_tr_mix(uint64_t x);

/* ---- data (train_data.c) ---- */

/* One encoded example: prompt then target tokens (the target is the correction + eot). DPO:
 * ids = prompt + chosen, ids2 = the same prompt + rejected. */
struct tr_example {
    int32_t *ids;     // (n) prompt + target
    int32_t n, n_prompt;
    bool truncated;   /* the prefix was shortened from the left */
    int32_t *ids2;    // (n2) DPO: prompt + rejected; NULL otherwise
    int32_t n2;
    /* SFT: the target tokens where the correction leaves the original, [edit_lo, edit_hi)
     * counted from n_prompt (sa_tr_edit_span); edit_lo == edit_hi: a copy, or DPO */
    int32_t edit_lo, edit_hi;
};

struct tr_dataset {
    struct tr_example *ex;
    int64_t n;
    int64_t n_truncated, n_dropped;
    int64_t n_skipped; /* DPO: records without a preference (correction == original) */
    int64_t n_edits;   /* SFT: examples with an edit span (the others copy their original) */
    double *ref;       // (2n) DPO: the reference's log-probabilities, chosen then rejected per pair
};

/* The text of the prompt for a record: the aligner input (sa_record_input) as the user turn
 * of the chat format, ending with the opening of the assistant turn. *out malloc'd. */
SA_NODISCARD enum sa_status sa_tr_prompt_text(enum sa_chat_format fmt, const char *tmpl, const struct sa_record *rec,
                                              char **out);
/* Encodes records (those with use[i], or all when use is NULL) with the model's tokenizer and
 * chat template; records longer than max_len tokens get their prefix cut from the left (whole
 * sentences); records that still do not fit are dropped (counted). */
SA_NODISCARD enum sa_status sa_tr_dataset_build(const struct sa_train_model *m, const struct sa_records *r,
                                                const bool *use, bool use_value, int32_t max_len,
                                                struct tr_dataset *out);
void sa_tr_dataset_free(struct tr_dataset *d);
/* sa_tr_dataset_build for an objective (docs/TRAINING.md, "Objectives"): SFT as above;
 * SFT_UPSTREAM and DPO prompt with sa_tr_upstream_prompt_text; SFT_UPSTREAM's target is the
 * correction, DPO's pair is (correction, original) and records whose correction equals the
 * original are skipped (n_skipped). Their responses end with the end-of-turn token when they
 * end the answer (whole-answer records; sentence records with eos == 1). */
SA_NODISCARD enum sa_status sa_tr_dataset_build_obj(const struct sa_train_model *m, const struct sa_records *r,
                                                    const bool *use, bool use_value, int32_t max_len,
                                                    enum sa_train_objective obj, struct tr_dataset *out);
/* The upstream's prompt for a record (DPO, SFT of the upstream): the question as the only user
 * turn of the chat template, the assistant turn opened, and the prefix from byte `cut` on
 * written into it (sentence records; followed by "\n" unless empty or ending in whitespace:
 * the line break the pipeline keeps at the end of the upstream's prompt). *out malloc'd. */
SA_NODISCARD enum sa_status sa_tr_upstream_prompt_text(enum sa_chat_format fmt, const char *tmpl,
                                                       const struct sa_record *rec, size_t cut, char **out);
/* DPO: fills tokens/targets (2 nb, T) for the pairs idx[0..nb): row 2k = prompt + chosen,
 * 2k + 1 = prompt + rejected, right-padded; targets on the response tokens. Returns the number
 * of target tokens; *T_out the width. tokens/targets must hold 2 nb x (the longest - 1). */
int64_t sa_tr_pair_fill(const struct tr_dataset *d, const int64_t *idx, int32_t nb, int32_t pad, int32_t *tokens,
                        int32_t *targets, int64_t *T_out);

/* Batches of one epoch: seeded shuffle, then length bucketing (sorting within windows of
 * 50 batches), then a shuffle of the batch order. order receives n_ex indices; batch b is
 * order[b*B .. min((b+1)*B, n)). Pure function of (seed, epoch). */
SA_NODISCARD enum sa_status sa_tr_epoch_order(const struct tr_dataset *d, int32_t B, uint64_t seed, int64_t epoch,
                                              int64_t *order);
/* Fills tokens/targets (B, T) for examples idx[0..nb), right-padded (pad token, target -100);
 * T = the longest example. Returns the number of target tokens; *T_out the width. */
int64_t sa_tr_batch_fill(const struct tr_dataset *d, const int64_t *idx, int32_t nb, int32_t B, int32_t pad,
                         int32_t *tokens, int32_t *targets, int64_t *T_out);

/* The edit of a response t (nt tokens) over the original o (no tokens), as target tokens
 * [*lo, *hi) of t: from the end of their common prefix to the start of their common suffix
 * (the suffix not reaching into the prefix). When t equals o, or t has no token, the span
 * is empty (0, 0); when t only drops tokens of o (an empty middle), it is the one token of t
 * after the common prefix (the last token when the prefix is all of t). */
void sa_tr_edit_span(const int32_t *t, int32_t nt, const int32_t *o, int32_t no, int32_t *lo, int32_t *hi);
/* Per-row loss weights (B, T) for the batch sa_tr_batch_fill made of examples idx[0..nb) with
 * width T: 0 on rows without a target (padding, prompt), edit_weight on the targets inside an
 * example's edit span, 1 on the other targets. Returns the sum of the weights (the weighted
 * mean's denominator). */
double sa_tr_batch_weights(const struct tr_dataset *d, const int64_t *idx, int32_t nb, int32_t B, int64_t T,
                           float edit_weight, float *w);

/* ---- DPO (train_dpo.c) ---- */

/* The reference log-probabilities of every pair of the datasets ds[0..n_ds) into their ref:
 * with p->dpo_ref NULL from `m` as it is (before the first step; LoRA: adapters off), else
 * from that model (loaded, used and freed here; its vocabulary must be m's). Batches of
 * p->batch pairs; `cancel` polled before each (CANCELLED). */
SA_NODISCARD enum sa_status sa_tr_dpo_reference(const struct sa_train_params *p, struct sa_train_model *m,
                                                struct tr_dataset *const *ds, int n_ds, int32_t pad);
/* Held-out DPO loss (mean over pairs) and reward accuracy of `m` on d (adapters on, no
 * dropout); tokens/targets hold 2 batch x the longest sequence. */
SA_NODISCARD enum sa_status sa_tr_dpo_evaluate(struct sa_train_model *m, const struct tr_dataset *d, int32_t batch,
                                               int32_t pad, float beta, int32_t *tokens, int32_t *targets,
                                               double *loss, double *accuracy);

#endif
