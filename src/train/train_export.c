/* train_export.c: writes a trained model as a Hugging Face directory (model.safetensors in
 * f32/f16/bf16 + the base's config.json and tokenizer side files) and a GGUF made from it by
 * sa_convert (Q/K rows permuted for llama.cpp, Gemma norms stored as 1 + w, the tokenizer of
 * the base GGUF embedded). LoRA adapters are merged into copies of their weights
 * (W + alpha/r B A); the model in memory is left as it was. A LoRA model's adapters are also
 * written alone as a GGUF LoRA adapter in llama.cpp's format (sa_train_model_export_lora;
 * read back by src/model/lora_adapter.c and by llama.cpp's llama-adapter.cpp), and such an
 * adapter read into a LoRA model's trainable weights (sa_train_model_import_lora: a warm start). */
#define _GNU_SOURCE
#include "train/train_impl.h"

#include "core/core_impl.h"
#include "formats/arch_impl.h"
#include "sa/convert.h"
#include "sa/gguf.h"
#include "sa/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sa_train_export_params sa_train_export_default_params(void) {
    struct sa_train_export_params p = {SA_DTYPE_F32, SA_DTYPE_F16, NULL, NULL, NULL, false};
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

/* The tensor (GGUF names) of each training module, in TR_LIN order (= the SA_LORA_* flags). */
static const enum sa_tensor lin_gguf[TR_N_LIN] = {SA_TENSOR_ATTN_Q,   SA_TENSOR_ATTN_K,  SA_TENSOR_ATTN_V,
                                                  SA_TENSOR_ATTN_OUT, SA_TENSOR_FFN_GATE, SA_TENSOR_FFN_UP,
                                                  SA_TENSOR_FFN_DOWN};

enum sa_status sa_train_model_export_lora(const struct sa_train_model *m, const char *path, enum sa_dtype type) {
    if (!m || !path) return sa_error(SA_STATUS_BAD_ARGUMENT, "export adapter: NULL argument");
    if (m->p.lora_rank <= 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "export adapter: the model has no LoRA adapters");
    if (type != SA_DTYPE_F32 && type != SA_DTYPE_F16)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "export adapter: type must be f32 or f16");
    const struct sa_model_config *c = &m->cfg;
    const int64_t r = m->p.lora_rank;
    const size_t esz = type == SA_DTYPE_F32 ? 4 : 2;
    struct sa_gguf_writer *w = NULL;
    enum sa_status s = sa_gguf_writer_init(&w);
    if (s) return s;
    char name[160];
    snprintf(name, sizeof name, "%s LoRA", c->name[0] ? c->name : sa_arch_name(c->arch));
    if (!s) s = sa_gguf_writer_set_str(w, "general.architecture", sa_arch_name(c->arch));
    if (!s) s = sa_gguf_writer_set_str(w, "general.type", "adapter");
    if (!s) s = sa_gguf_writer_set_str(w, "general.name", name);
    if (!s) s = sa_gguf_writer_set_str(w, "adapter.type", "lora");
    if (!s) s = sa_gguf_writer_set_f32(w, "adapter.lora.alpha", m->p.lora_alpha);
    /* one block for every converted matrix (the writer keeps pointers until it writes) */
    int64_t total = 0, max_oc = 0;
    for (int l = 0; l < c->n_layer; l++)
        for (int j = 0; j < TR_N_LIN; j++) {
            const struct tr_lin *ln = &m->layers[l].lin[j];
            if (ln->A < 0) continue;
            total += r * (ln->C + ln->OC);
            if (ln->OC > max_oc) max_oc = ln->OC;
        }
    uint8_t *block = s ? NULL : malloc((size_t)total * esz + 1);
    float *tmp = NULL; /* (max OC, r): B with the Q/K rows in llama.cpp's order */
    if (!s && (!block || !(tmp = malloc((size_t)(max_oc * r + 1) * sizeof *tmp))))
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    uint8_t *dst = block;
    for (int l = 0; l < c->n_layer && !s; l++)
        for (int j = 0; j < TR_N_LIN && !s; j++) {
            const struct tr_lin *ln = &m->layers[l].lin[j];
            if (ln->A < 0) continue;
            /* A (r, C) row-major is GGUF ne [C, r] as it is */
            const float *A = m->t[ln->A].data, *B = m->t[ln->B].data;
            /* B (OC, r): llama.cpp permutes the Q/K rows of the architectures it runs with
             * NORMAL RoPE (LlamaModel.permute, applied to lora_b by convert_lora_to_gguf.py):
             * HF rows (head, half, i) become (head, i, half) */
            if ((j == TR_LIN_Q || j == TR_LIN_K) && sa_arch_permute_qk(c->arch)) {
                const int64_t heads = j == TR_LIN_Q ? c->n_head : c->n_head_kv;
                const int64_t hd = ln->OC / heads, half = hd / 2;
                for (int64_t row = 0; row < ln->OC; row++) {
                    const int64_t h = row / hd, rem = row % hd;
                    memcpy(tmp + row * r, B + (h * hd + (rem % 2) * half + rem / 2) * r, (size_t)r * sizeof *tmp);
                }
                B = tmp;
            }
            const struct {
                const char *sfx;
                const float *src;
                int64_t ne0, ne1;
            } part[2] = {{".weight.lora_a", A, ln->C, r}, {".weight.lora_b", B, r, ln->OC}};
            for (int h = 0; h < 2 && !s; h++) {
                char tn[96];
                SA_ASSERT(sa_arch_tensor_name(c->arch, SA_NAMES_GGUF, lin_gguf[j], l, part[h].sfx, tn, sizeof tn));
                const int64_t n = part[h].ne0 * part[h].ne1, ne[4] = {part[h].ne0, part[h].ne1, 1, 1};
                if (type == SA_DTYPE_F32) memcpy(dst, part[h].src, (size_t)n * 4);
                else s = sa_quantize(SA_DTYPE_F16, part[h].src, dst, n);
                if (!s) s = sa_gguf_writer_add_tensor(w, tn, type, 2, ne, dst);
                dst += (size_t)n * esz;
            }
        }
    if (!s) s = sa_gguf_writer_write(w, path);
    free(tmp);
    sa_gguf_writer_free(w);
    free(block);
    return s ? sa_error_wrap(s, "export adapter %s", path) : s;
}

enum sa_status sa_train_model_import_lora(struct sa_train_model *m, const char *path) {
    if (!m || !path) return sa_error(SA_STATUS_BAD_ARGUMENT, "import adapter: NULL argument");
    if (m->p.lora_rank <= 0) return sa_error(SA_STATUS_BAD_ARGUMENT, "import adapter: the model has no LoRA adapters");
    const struct sa_model_config *c = &m->cfg;
    const int64_t r = m->p.lora_rank;
    struct sa_gguf *g = NULL;
    enum sa_status s = sa_gguf_open(path, &g);
    if (s) return sa_error_wrap(s, "import adapter %s", path);
    const int64_t ka = sa_gguf_find_key(g, "adapter.type"), kr = sa_gguf_find_key(g, "general.architecture");
    const struct sa_gguf_str at = ka >= 0 ? sa_gguf_get_str(g, ka) : (struct sa_gguf_str){NULL, 0};
    const struct sa_gguf_str ar = kr >= 0 ? sa_gguf_get_str(g, kr) : (struct sa_gguf_str){NULL, 0};
    const char *arch = sa_arch_name(c->arch);
    float alpha = 0;
    if (!at.ptr || at.len != 4 || memcmp(at.ptr, "lora", 4))
        s = sa_error(SA_STATUS_BAD_FILE, "%s: not a LoRA adapter (adapter.type is not \"lora\")", path);
    else if (!ar.ptr || ar.len != strlen(arch) || memcmp(ar.ptr, arch, ar.len))
        s = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: an adapter for architecture '%.*s', the model is '%s'", path,
                     (int)(ar.ptr ? ar.len : 4), ar.ptr ? ar.ptr : "none", arch);
    float *buf = NULL; /* (max OC, r): B as stored, before its Q/K rows go back to HF's order */
    int64_t max_oc = 0, n_found = 0, n_lora = 0;
    for (int l = 0; l < c->n_layer; l++)
        for (int j = 0; j < TR_N_LIN; j++)
            if (m->layers[l].lin[j].A >= 0 && m->layers[l].lin[j].OC > max_oc) max_oc = m->layers[l].lin[j].OC;
    if (!s && !(buf = malloc((size_t)(max_oc * r + 1) * sizeof *buf))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    for (int l = 0; l < c->n_layer && !s; l++)
        for (int j = 0; j < TR_N_LIN && !s; j++) {
            const struct tr_lin *ln = &m->layers[l].lin[j];
            if (ln->A < 0) continue;
            const struct {
                const char *sfx;
                int64_t ne0, ne1;
            } part[2] = {{".weight.lora_a", ln->C, r}, {".weight.lora_b", r, ln->OC}};
            for (int h = 0; h < 2 && !s; h++) {
                char tn[96];
                SA_ASSERT(sa_arch_tensor_name(c->arch, SA_NAMES_GGUF, lin_gguf[j], l, part[h].sfx, tn, sizeof tn));
                const struct sa_gguf_tensor *t = sa_gguf_find_tensor(g, tn);
                if (!t) {
                    s = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: no tensor '%s' (the run trains it: another --lora-targets?)",
                                 path, tn);
                    break;
                }
                if (t->n_dims != 2 || t->ne[0] != part[h].ne0 || t->ne[1] != part[h].ne1) {
                    s = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: tensor '%s' is [%lld, %lld], this run's is [%lld, %lld] "
                                 "(another --lora rank?)", path, tn, (long long)t->ne[0], (long long)t->ne[1],
                                 (long long)part[h].ne0, (long long)part[h].ne1);
                    break;
                }
                if (t->type != SA_DTYPE_F32 && t->type != SA_DTYPE_F16 && t->type != SA_DTYPE_BF16) {
                    s = sa_error(SA_STATUS_UNSUPPORTED, "%s: tensor '%s' is %s (f32, f16 or bf16 read)", path, tn,
                                 sa_dtype_name(t->type));
                    break;
                }
                const int64_t n = part[h].ne0 * part[h].ne1;
                float *dst = h == 0 ? m->t[ln->A].data : buf;
                if ((s = sa_dequantize(t->type, t->data, dst, n))) break;
                n_found++;
                if (h == 0) continue;
                /* B's Q/K rows back from llama.cpp's order (the inverse of the export's permutation) */
                float *B = m->t[ln->B].data;
                if ((j == TR_LIN_Q || j == TR_LIN_K) && sa_arch_permute_qk(c->arch)) {
                    const int64_t heads = j == TR_LIN_Q ? c->n_head : c->n_head_kv;
                    const int64_t hd = ln->OC / heads, half = hd / 2;
                    for (int64_t row = 0; row < ln->OC; row++) {
                        const int64_t hh = row / hd, rem = row % hd;
                        memcpy(B + (hh * hd + (rem % 2) * half + rem / 2) * r, buf + row * r, (size_t)r * sizeof *B);
                    }
                } else {
                    memcpy(B, buf, (size_t)n * sizeof *B);
                }
            }
        }
    /* every adapter tensor of the file must have been read: one the run does not train is refused */
    for (int64_t i = 0; !s && i < sa_gguf_n_tensors(g); i++) {
        const char *tn = sa_gguf_tensor(g, i)->name;
        const size_t len = strlen(tn);
        n_lora += (len > 7 && !strcmp(tn + len - 7, ".lora_a")) || (len > 7 && !strcmp(tn + len - 7, ".lora_b"));
    }
    if (!s && n_lora != n_found)
        s = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: %lld LoRA tensors, this run trains %lld (another --lora-targets?)",
                     path, (long long)n_lora, (long long)n_found);
    /* the scale alpha / r goes with the weights: an adapter trained at another alpha is another model */
    if (!s && (!sa_gguf_get_f32(g, "adapter.lora.alpha", &alpha) || alpha != m->p.lora_alpha))
        s = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: adapter.lora.alpha is %g, this run's alpha is %g (--lora-alpha)", path,
                     (double)alpha, (double)m->p.lora_alpha);
    free(buf);
    sa_gguf_free(g);
    return s;
}

enum sa_status sa_train_model_export(const struct sa_train_model *m, const char *dir,
                                     const struct sa_train_export_params *params) {
    struct sa_train_export_params p = params ? *params : sa_train_export_default_params();
    if (p.st_type != SA_DTYPE_F32 && p.st_type != SA_DTYPE_F16 && p.st_type != SA_DTYPE_BF16)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "export: safetensors type must be f32, f16 or bf16");
    if (p.adapter_only && m->p.lora_rank <= 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "export: adapter only, but the model has no LoRA adapters (--lora R)");
    enum sa_status s = sa_mkdir_p(dir, 0755);
    char path[4096];
    if (!s && m->p.lora_rank > 0) {
        snprintf(path, sizeof path, "%s/%s", dir, p.adapter_name ? p.adapter_name : "adapter.gguf");
        s = sa_train_model_export_lora(m, path, p.gguf_type == SA_DTYPE_F32 ? SA_DTYPE_F32 : SA_DTYPE_F16);
    }
    if (s || p.adapter_only) return s;
    s = write_st(m, dir, p.st_type);
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
