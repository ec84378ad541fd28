/* train_export.c: writes a trained model as a Hugging Face directory (model.safetensors in
 * f32/f16/bf16 + the base's config.json and tokenizer side files) and a GGUF made from it by
 * sa_convert (Q/K rows permuted for llama.cpp, Gemma norms stored as 1 + w, the tokenizer of
 * the base GGUF embedded). LoRA adapters are merged into copies of their weights
 * (W + alpha/r B A); the model in memory is left as it was. */
#define _GNU_SOURCE
#include "train/train_impl.h"

#include "core/core_impl.h"
#include "sa/convert.h"
#include "sa/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sa_train_export_params sa_train_export_default_params(void) {
    struct sa_train_export_params p = {SA_DTYPE_F32, SA_DTYPE_F16, NULL, NULL};
    return p;
}

/* The LoRA module whose base weight is tensor i, or NULL. */
static const struct tr_lin *adapted(const struct sa_train_model *m, int32_t i) {
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int j = 0; j < TR_N_LIN; j++)
            if (m->layers[l].lin[j].W == i && m->layers[l].lin[j].A >= 0) return &m->layers[l].lin[j];
    return NULL;
}

static void quiet_log(void *user, const char *msg) { (void)user, (void)msg; }

static enum sa_status write_st(const struct sa_train_model *m, const char *dir, enum sa_dtype type) {
    struct sa_st_writer *w;
    enum sa_status s = sa_st_writer_init(&w);
    if (s) return s;
    void **bufs = calloc((size_t)m->n_base, sizeof *bufs);
    if (!bufs) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (!s) s = sa_st_writer_set_metadata(w, "format", "pt");
    for (int32_t i = 0; i < m->n_base && !s; i++) {
        const struct tr_tensor *t = &m->t[i];
        const float *src = t->data;
        const struct tr_lin *ln = adapted(m, i);
        float *merged = NULL;
        if (ln) {
            if (!(merged = malloc((size_t)t->n * sizeof *merged))) {
                s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                break;
            }
            memcpy(merged, t->data, (size_t)t->n * sizeof *merged);
            sa_tr_lora_merge(merged, m->t[ln->A].data, m->t[ln->B].data, ln->C, ln->OC, m->p.lora_rank, m->lora_scale);
            src = merged;
            bufs[i] = merged;
        }
        if (type != SA_DTYPE_F32) {
            void *dst = malloc((size_t)t->n * 2);
            if (!dst) {
                s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                break;
            }
            s = sa_quantize(type, src, dst, t->n);
            free(merged);
            bufs[i] = dst;
            src = dst;
            if (s) break;
        }
        s = sa_st_writer_add(w, t->name, type, (uint32_t)t->n_dims, t->shape, src);
    }
    if (!s) s = sa_st_writer_write_dir(w, dir, 0);
    for (int32_t i = 0; bufs && i < m->n_base; i++) free(bufs[i]);
    free(bufs);
    sa_st_writer_free(w);
    return s;
}

enum sa_status sa_train_model_export(const struct sa_train_model *m, const char *dir,
                                     const struct sa_train_export_params *params) {
    struct sa_train_export_params p = params ? *params : sa_train_export_default_params();
    if (p.st_type != SA_DTYPE_F32 && p.st_type != SA_DTYPE_F16 && p.st_type != SA_DTYPE_BF16)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "export: safetensors type must be f32, f16 or bf16");
    enum sa_status s = sa_mkdir_p(dir, 0755);
    if (!s) s = write_st(m, dir, p.st_type);
    char path[4096];
    for (int i = 0; i < m->n_side && !s; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, m->side[i].name);
        s = sa_write_file_atomic(path, m->side[i].data, m->side[i].len);
    }
    if (s || p.gguf_type == SA_DTYPE_COUNT) return s;
    if (p.gguf_name) snprintf(path, sizeof path, "%s/%s", dir, p.gguf_name);
    else snprintf(path, sizeof path, "%s/model-%s.gguf", dir, sa_dtype_name(p.gguf_type) ? sa_dtype_name(p.gguf_type) : "x");
    struct sa_convert_params cp = sa_convert_default_params();
    cp.to = SA_CONVERT_GGUF;
    cp.type = p.gguf_type;
    cp.tokenizer_gguf = p.tokenizer_gguf ? p.tokenizer_gguf : m->base_gguf ? m->base_path : NULL;
    cp.log = quiet_log;
    s = sa_convert(dir, path, &cp);
    return s ? sa_error_wrap(s, "export %s", path) : s;
}
