/* steer.c: the residual-stream hooks of a forward pass (forward.c): each sequence's control
 * vector row added after a block (sa_ctx_params.cvec, as llama.cpp's build_cvec after the
 * block's residual add) and its hidden states handed to its callback (sa_ctx_params.hidden_cb).
 * Per row and per sequence, so that a batch of contexts with different vectors (or none) runs
 * in one pass. docs/STEER.md. */
#include "model/model_impl.h"

#include "core/core_impl.h"

#include <math.h>

bool sa_steer_active(const struct sa_fwd_seq *seqs, int32_t n_seqs) {
    for (int32_t i = 0; i < n_seqs; i++) {
        const struct sa_ctx_params *p = &seqs[i].ctx->params;
        if (p->cvec || p->hidden_cb) return true;
    }
    return false;
}

void sa_steer_layer(const struct sa_fwd_ws *ws, const struct sa_fwd_seq *seqs, int32_t n_seqs, int32_t layer, float *x,
                    int64_t E) {
    int64_t r0 = 0;
    for (int32_t i = 0; i < n_seqs; r0 += seqs[i].T, i++) {
        const struct sa_fwd_seq *sq = &seqs[i];
        const struct sa_ctx_params *p = &sq->ctx->params;
        if (sq->cancelled) continue;
        /* layer >= 1: the output of block layer - 1, steered by its row */
        const float *v = layer >= 1 && p->cvec ? sa_cvec_layer_const(p->cvec, layer - 1) : NULL;
        if (v) {
            const float c = p->cvec_scale;
            for (int64_t t = 0; t < sq->T; t++) {
                float *xr = x + (r0 + t) * E; /* (E) */
                for (int64_t e = 0; e < E; e++) xr[e] += c * v[e];
            }
        }
        if (p->hidden_cb) {
            /* hidden_last_only: the row whose logits the decode call returns (its last pass) */
            const int64_t t0 = p->hidden_last_only ? (sq->logits_last ? sq->T - 1 : sq->T) : 0;
            for (int64_t t = t0; t < sq->T; t++)
                p->hidden_cb(p->hidden_user, layer, ws->pos[r0 + t], x + (r0 + t) * E, (int32_t)E);
        }
    }
}

enum sa_status sa_steer_check_params(const struct sa_model *model, const struct sa_ctx_params *p) {
    if (!p->cvec) return SA_STATUS_OK;
    if (sa_cvec_n_embd(p->cvec) != model->cfg.n_embd || sa_cvec_n_layer(p->cvec) > model->cfg.n_layer)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "sa_ctx_init: the control vector has %d layers of %d floats, the model %d layers of %d "
                        "(HINT: it was made for another model)",
                        sa_cvec_n_layer(p->cvec), sa_cvec_n_embd(p->cvec), model->cfg.n_layer, model->cfg.n_embd);
    if (!isfinite(p->cvec_scale)) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_ctx_init: cvec_scale must be finite");
    return SA_STATUS_OK;
}
