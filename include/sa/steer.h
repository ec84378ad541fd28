/* steer.h: the residual stream of the forward pass, read and steered. A control vector holds one
 * additive vector per transformer block (n_embd floats each): attached to a context
 * (sa_ctx_params.cvec, .cvec_scale), block il's row is added to the residual stream right after
 * block il, at every position, prompt included (llama.cpp's control vectors: build_cvec after
 * the block's last residual add). Control vectors are read and written in llama.cpp's GGUF
 * control-vector format (what its cvector-generator and repeng write and `llama-cli
 * --control-vector` reads). The hidden states (the residual stream after each block, at the
 * positions a callback picks) reach the caller through sa_ctx_params.hidden_cb. Semantics,
 * format and checks: docs/STEER.md. */
#ifndef SA_STEER_H
#define SA_STEER_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Receives one hidden state during a forward pass: the residual stream of the token at
 * position `pos` of the context's sequence after `layer` blocks: layer 0 is the token's
 * embedding (Gemma: scaled by sqrt(n_embd)), layer i (1..n_layer) the output of block i - 1
 * after its residual add and after the control vector's row i - 1 (what block i reads), as
 * Hugging Face transformers' output_hidden_states[i] except the last one (transformers gives
 * hidden_states[n_layer] after the final norm; here it is the stream before the final norm).
 * h: n_embd floats, owned by the forward pass, valid only during the call (copy what you
 * keep). Called on the thread that runs the pass (the decode call's, or for a context with a
 * scheduler the thread that runs its batch), layer by layer, then position by position; must
 * not call into the same context. */
typedef void (*sa_hidden_fn)(void *user, int32_t layer, int32_t pos, const float *h, int32_t n_embd);

struct sa_cvec; /* opaque: a control vector, (n_layer, n_embd) floats */

/* A zero control vector of n_layer rows of n_embd floats (both >= 1). Free with sa_cvec_free.
 * Errors: SA_STATUS_BAD_ARGUMENT, SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_cvec_init(int32_t n_layer, int32_t n_embd, struct sa_cvec **out);
/* NULL does nothing. No context may use it afterwards. */
void sa_cvec_free(struct sa_cvec *cv);

int32_t sa_cvec_n_layer(const struct sa_cvec *cv);
int32_t sa_cvec_n_embd(const struct sa_cvec *cv);
/* Row il (n_embd floats, added after block il), owned by the vector and writable; NULL when il
 * is outside [0, n_layer). Contexts read the rows at each forward pass: changing them between
 * decode calls changes the steering of the next call (the K/V rows already cached keep the old). */
float *sa_cvec_layer(struct sa_cvec *cv, int32_t il);
const float *sa_cvec_layer_const(const struct sa_cvec *cv, int32_t il);
/* controlvector.model_hint: the architecture the vector was made for ("llama", "qwen2", ...;
 * "" when unknown), owned by the vector. */
const char *sa_cvec_model_hint(const struct sa_cvec *cv);
/* Copies hint (at most 63 bytes; NULL: ""). Errors: SA_STATUS_BAD_ARGUMENT (too long). */
SA_NODISCARD enum sa_status sa_cvec_set_model_hint(struct sa_cvec *cv, const char *hint);

/* Reads a control vector in llama.cpp's GGUF format, checked hard: general.architecture
 * "controlvector" when present; only 1-D F32 tensors named "direction.K" (K a decimal in
 * [1, SA_CVEC_MAX_LAYER) without sign or leading zeros, as llama.cpp never steers block 0), all
 * of one length n_embd in [1, SA_CVEC_MAX_EMBD], every value finite. Row K of *out is
 * direction.K (the GGUF reader refuses a name twice); rows without a tensor are zero; n_layer is the largest K + 1 (the metadata
 * controlvector.* is read but not trusted for sizes, as llama.cpp). On success *out owns
 * the vector. Errors (*out NULL, sa_last_error() names the tensor or key): SA_STATUS_NOT_FOUND,
 * SA_STATUS_IO, SA_STATUS_BAD_FILE (not a GGUF, truncated, another architecture, a bad name,
 * index, type, shape or value, no direction tensor), SA_STATUS_NO_MEMORY. */
#define SA_CVEC_MAX_LAYER 4096
#define SA_CVEC_MAX_EMBD (1 << 20)
SA_NODISCARD enum sa_status sa_cvec_load(const char *path, struct sa_cvec **out);
/* Same over a caller-owned buffer (tests, fuzzers). */
SA_NODISCARD enum sa_status sa_cvec_load_memory(const void *data, size_t size, struct sa_cvec **out);
/* Writes `cv` in llama.cpp's format (atomically): general.architecture "controlvector",
 * controlvector.model_hint, controlvector.layer_count (int32: n_layer - 1, the rows llama.cpp
 * reads), and one F32 tensor "direction.K" per row K in [1, n_layer) (zero rows included, as
 * llama.cpp's cvector-generator writes them). Errors: SA_STATUS_UNSUPPORTED (row 0 is not
 * zero: llama.cpp's format cannot steer block 0; n_layer 1), SA_STATUS_BAD_ARGUMENT (a value
 * is NaN or infinite), SA_STATUS_IO. */
SA_NODISCARD enum sa_status sa_cvec_save(const struct sa_cvec *cv, const char *path);

/* ---- representation reading: LAT (Zou et al. 2023), src/steer/lat.c ---- */

/* The first principal component of the rows of x (n, d): the unit vector dir (d floats)
 * maximising sum_i (x_i . dir)^2 over the rows (mean-centred first when `center`). Power
 * iteration in double on the n x n Gram matrix from a fixed start (deterministic), until the
 * iterate moves less than 1e-12 (at most 20000 steps). *explained (may be NULL): the component's
 * share of the total sum of squares, lambda_1 / trace, in [0, 1] (0 when x is all zero, dir
 * then e_0). The sign of dir is unspecified. Errors: SA_STATUS_BAD_ARGUMENT (NULL, n < 1, d < 1),
 * SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_steer_pc1(const float *x, int32_t n, int32_t d, bool center, float *dir,
                                         double *explained);

/* What sa_steer_lat reports for one layer. */
struct sa_steer_lat_stats {
    double explained; /* the direction's share of the training differences' sum of squares */
    double gap;       /* mean over training pairs of (rew_i - cop_i) . dir (>= 0 by the sign rule) */
    double mid;       /* mean over training stimuli (both kinds) of h . dir: the threshold below */
    int32_t n_test;   /* held-out pairs */
    double acc_stim;  /* held-out stimuli (2 n_test) classified by sign(h . dir - mid), + = rewrite:
                         the share right; NAN when n_test is 0 */
    double acc_pair;  /* held-out pairs with (rew_i - cop_i) . dir > 0; NAN when n_test is 0 */
};

/* LAT's direction of one layer. rew, cop: (n_pairs, d) hidden states, pair i = (a stimulus the
 * aligner must rewrite, one it must copy). Pairs [0, n_train) make it: the first principal
 * component of the differences rew_i - cop_i, NOT mean-centred (their mean is the signal; repe
 * randomises the order within a pair, so its differences have mean ~0 and its centred PCA sees
 * this same second moment), signed so that + is "rewrite" (gap >= 0). dir: d floats, unit norm.
 * Pairs [n_train, n_pairs) are held out for the accuracies. Errors: SA_STATUS_BAD_ARGUMENT (NULL,
 * d < 1, n_train < 1, n_train > n_pairs), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_steer_lat(const float *rew, const float *cop, int32_t n_pairs, int32_t n_train,
                                         int32_t d, float *dir, struct sa_steer_lat_stats *st);

/* x . y over n floats, accumulated in double. */
double sa_steer_dot(const float *x, const float *y, int32_t n);

/* python-Levenshtein's ratio of two UTF-8 strings over Unicode code points (an invalid byte
 * counts as one unit): 1 - indel / (la + lb), indel the insertion/deletion distance, i.e.
 * 2 LCS / (la + lb) (Levenshtein.ratio and rapidfuzz's ratio / 100); 1 for two empty strings.
 * Errors: SA_STATUS_BAD_ARGUMENT (NULL with a nonzero length), SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_levenshtein_ratio(const char *a, size_t na, const char *b, size_t nb, double *out);

#ifdef __cplusplus
}
#endif
#endif
