/* local_upstream.c: the local engine as an upstream (struct sa_upstream_ops over a context).
 * The KV cache is kept across generations: each start evaluates only what the new prompt
 * does not share with the cache (sa_ctx_eval_prompt), and nothing when the prompt is what the
 * cache holds. A sampled token enters the cache only when the next token is asked for, so the
 * lookahead token that let the segmenter decide a sentence boundary is never evaluated: after
 * a copied sentence the cache is exactly the next prompt. docs/internals/pipeline.md. */
#include "pipeline/pipeline_impl.h"
#include "sa/model.h"
#include "sa/proxy.h"
#include "sa/sampler.h"
#include "sa/tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sa_local_upstream {
    const struct sa_model *model;
    const struct sa_tokenizer *tok;
    struct sa_ctx *ctx;
    bool own_ctx;
    bool kv_reuse;
    struct sa_sampler *smp;
    struct sa_sampler_params sp; /* the sampler's params (re-made when they change) */
    struct sa_detok_stream *ds;
    struct sa_buf chunk;         /* text of the chunk returned last */
    int32_t pending;             /* sampled, returned, not yet in the cache; -1: none */
    int32_t max_tokens;
    /* token healing (sa_upstream_gen_params.heal_bytes) */
    char heal[64];               /* the text of the prompt token taken back: the new tokens
                                    must spell it out first (lu_heal_mask) */
    size_t heal_len;             /* 0: no healing this generation */
    size_t heal_pos;             /* bytes of heal the sampled tokens have spelled so far */
    size_t skip;                 /* output bytes still to drop (the healed text, given already) */
    bool heal_credit;            /* the token taken back is not yet uncounted from n_tokens */
    float *masked;               /* (n_vocab) logits with the disallowed tokens at -inf */
    char *pieces;                /* every token's text, concatenated (built on first use) */
    uint32_t *piece_off;         /* (n_vocab + 1) offsets into pieces */
    struct sa_local_upstream_stats st;
    struct sa_proxy *proxy;      /* NULL, or proxy-tuning of the sampled logits (owned) */
};

static void lu_free(void *impl) {
    struct sa_local_upstream *lu = impl;
    if (!lu) return;
    sa_buf_free(&lu->chunk);
    free(lu->masked);
    free(lu->pieces);
    free(lu->piece_off);
    sa_detok_stream_free(lu->ds);
    sa_sampler_free(lu->smp);
    sa_proxy_free(lu->proxy);
    if (lu->own_ctx) sa_ctx_free(lu->ctx);
    free(lu);
}

/* Makes the sampler match the generation's settings. A given seed re-seeds it at every start
 * (so a round is reproducible on its own); without one the stream goes on. */
static enum sa_status lu_sampler(struct sa_local_upstream *lu, const struct sa_upstream_gen_params *p) {
    struct sa_sampler_params sp = sa_sampler_default_params();
    sp.temp = p->temperature > 0 ? p->temperature : 0.0f;
    sp.top_p = p->top_p;
    sp.seed = p->seed;
    bool same = lu->smp && sp.temp == lu->sp.temp && sp.top_p == lu->sp.top_p &&
                (p->seed == SA_UPSTREAM_SEED_NONE || sp.seed == lu->sp.seed);
    if (!same) {
        sa_sampler_free(lu->smp);
        lu->smp = NULL;
        enum sa_status s = sa_sampler_init(&sp, sa_model_n_vocab(lu->model), &lu->smp);
        if (s) return s;
        lu->sp = sp;
    } else if (p->seed != SA_UPSTREAM_SEED_NONE) {
        sa_sampler_reset(lu->smp);
    }
    return SA_STATUS_OK;
}

enum sa_status sa_local_tokenize_prompt(const struct sa_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                                       size_t *n) {
    *ids = NULL;
    *n = 0;
    struct sa_tokenize_opts to = {.add_special = false, .parse_special = true};
    int32_t *raw = NULL;
    size_t n_raw = 0;
    enum sa_status s = sa_tokenize(tok, text, len, to, &raw, &n_raw);
    if (s) return s;
    /* BOS as a server adds it (llama.cpp, vLLM): when the model asks for one; the pipeline
     * leaves a template's written BOS out of the text, so remote and local see the same ids */
    const int32_t bos = sa_tokenizer_bos(tok);
    const bool add_bos = sa_tokenizer_add_bos(tok) && bos >= 0 && !(n_raw > 0 && raw[0] == bos);
    const size_t total = n_raw + (add_bos ? 1 : 0);
    int32_t *all = malloc(sizeof(int32_t) * (total ? total : 1));
    if (!all) {
        free(raw);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    if (add_bos) all[0] = bos;
    if (n_raw) memcpy(all + (add_bos ? 1 : 0), raw, sizeof(int32_t) * n_raw);
    free(raw);
    *ids = all;
    *n = total;
    return SA_STATUS_OK;
}

/* The text of every token (control tokens: none), once per upstream: what the healing mask
 * compares against. */
static enum sa_status lu_pieces(struct sa_local_upstream *lu) {
    if (lu->pieces) return SA_STATUS_OK;
    const int32_t nv = sa_model_n_vocab(lu->model);
    struct sa_buf b;
    sa_buf_init(&b, 0);
    uint32_t *off = malloc(sizeof(uint32_t) * ((size_t)nv + 1));
    if (!off) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    char buf[256];
    enum sa_status s = SA_STATUS_OK;
    for (int32_t id = 0; id < nv && !s; id++) {
        off[id] = (uint32_t)b.len;
        size_t n = id < sa_tokenizer_n_vocab(lu->tok) ? sa_token_to_piece(lu->tok, id, false, buf, sizeof buf) : 0;
        if (n > sizeof buf) n = 0; /* longer than any healed text can match: never allowed */
        s = sa_buf_append(&b, buf, n);
    }
    off[nv] = (uint32_t)b.len;
    if (!s && !b.data) s = sa_buf_append(&b, "", 0);
    if (s || b.len > UINT32_MAX) {
        free(off);
        sa_buf_free(&b);
        return s ? s : sa_error(SA_STATUS_ERROR, "local upstream: vocabulary text too large");
    }
    lu->pieces = sa_buf_take(&b, NULL);
    lu->piece_off = off;
    return SA_STATUS_OK;
}

/* Token healing: takes the prompt's last token back when its text is the end of the answer
 * being continued (the last heal_bytes of the prompt), is whole UTF-8 and is not a control
 * token. Sets lu->heal and returns the new token count. */
static size_t lu_heal(struct sa_local_upstream *lu, const int32_t *ids, size_t n, const char *prompt, size_t prompt_len,
                      size_t heal_bytes) {
    lu->heal_len = lu->skip = lu->heal_pos = 0;
    if (heal_bytes == 0 || n < 2) return n;
    const int32_t last = ids[n - 1];
    if (sa_tokenizer_attr(lu->tok, last) & (SA_TOKEN_CONTROL | SA_TOKEN_USER_DEFINED | SA_TOKEN_UNKNOWN)) return n;
    size_t len = sa_token_to_piece(lu->tok, last, false, lu->heal, sizeof lu->heal);
    if (len == 0 || len > sizeof lu->heal || len > heal_bytes || len > prompt_len ||
        memcmp(prompt + prompt_len - len, lu->heal, len) || sa_utf8_valid_prefix(lu->heal, len) != len)
        return n;
    if (lu_pieces(lu)) return n; /* out of memory: generate without healing */
    lu->heal_len = lu->skip = len;
    return n - 1;
}

/* The logits of a token while the healed text is not yet spelled out: allowed are the
 * tokens whose text begins with the rest of it (the taken-back token itself, at first) and
 * those whose text is a shorter, non-empty start of the rest (the model may write "```" as
 * "``" + "`\n", as Qwen does after ")\n": one token of a fixed length would force "````").
 * The others are set to -inf. Should no token spell the rest (not seen: byte-level
 * vocabularies have every byte), healing ends there: the logits as they are, and only the
 * bytes spelled so far are dropped from the output. */
static const float *lu_heal_mask(struct sa_local_upstream *lu, const float *logits, int32_t n_vocab) {
    if (!lu->masked && !(lu->masked = malloc(sizeof(float) * (size_t)n_vocab))) return NULL;
    const char *rest = lu->heal + lu->heal_pos;
    const size_t n_rest = lu->heal_len - lu->heal_pos;
    int32_t n_ok = 0;
    for (int32_t id = 0; id < n_vocab; id++) {
        uint32_t a = lu->piece_off[id], b = lu->piece_off[id + 1];
        size_t k = SA_MIN((size_t)(b - a), n_rest);
        bool ok = k > 0 && !memcmp(lu->pieces + a, rest, k);
        lu->masked[id] = ok ? logits[id] : -INFINITY;
        n_ok += ok;
    }
    if (n_ok == 0) {
        lu->skip -= SA_MIN(lu->skip, n_rest);
        lu->heal_pos = lu->heal_len;
        return logits;
    }
    return lu->masked;
}

static enum sa_status lu_start(void *impl, const char *prompt, size_t prompt_len, const struct sa_upstream_gen_params *p) {
    struct sa_local_upstream *lu = impl;
    if (p->n_stop)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "local upstream: stop strings are not supported (the pipeline stops at sentence boundaries)");
    int32_t *all = NULL;
    size_t n = 0;
    enum sa_status s = sa_local_tokenize_prompt(lu->tok, prompt, prompt_len, &all, &n);
    if (s) return sa_error_wrap(s, "local upstream: tokenizing the prompt");
    if (n == 0) {
        free(all);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "local upstream: the prompt gives no tokens");
    }
    if ((int64_t)n >= sa_ctx_n_ctx(lu->ctx)) {
        free(all);
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "local upstream: the prompt has %zu tokens; the context holds %d (raise n_ctx or lower max_length)",
                        n, (int)sa_ctx_n_ctx(lu->ctx));
    }
    n = lu_heal(lu, all, n, prompt, prompt_len, p->heal_bytes);
    lu->pending = -1;
    memset(&lu->st, 0, sizeof lu->st);
    lu->st.n_prompt = (int32_t)n;
    if (!lu->kv_reuse) sa_proxy_reset(lu->proxy);
    if (!lu->kv_reuse && (s = sa_ctx_truncate(lu->ctx, 0))) {
        free(all);
        return s;
    }
    const int32_t len = sa_ctx_len(lu->ctx);
    if (len == (int32_t)n && sa_ctx_logits(lu->ctx) && !memcmp(sa_ctx_tokens(lu->ctx), all, sizeof(int32_t) * n)) {
        lu->st.n_reused = (int32_t)n; /* the cache is the prompt: keep it as it is */
    } else {
        int32_t reused = 0;
        s = sa_ctx_eval_prompt(lu->ctx, all, (int32_t)n, NULL, &reused);
        if (s) {
            free(all);
            return s;
        }
        lu->st.n_reused = reused;
    }
    free(all);
    lu->st.n_prefill = lu->st.n_prompt - lu->st.n_reused;
    /* the token taken back is written again (its text re-spelled by the first new token or
     * tokens): it is the prompt's, not one of the max_tokens new ones, so that an answer cut at
     * max_tokens over several prompts has as many tokens as one generated in one go */
    lu->heal_credit = lu->heal_len > 0 && p->max_tokens < INT32_MAX;
    lu->max_tokens = lu->heal_credit ? p->max_tokens + 1 : p->max_tokens;
    const char *rest;
    size_t rest_len;
    if ((s = sa_detok_stream_flush(lu->ds, &rest, &rest_len))) return s; /* resets the stream */
    return lu_sampler(lu, p);
}

/* Appends decoded text to the chunk, less the healed bytes not yet dropped (the answer has
 * them already): on every path, the final flush included. */
static enum sa_status lu_append(struct sa_local_upstream *lu, const char *piece, size_t plen) {
    size_t k = SA_MIN(lu->skip, plen);
    lu->skip -= k;
    return plen > k ? sa_buf_append(&lu->chunk, piece + k, plen - k) : SA_STATUS_OK;
}

/* The new tokens among n sampled: the token taken back by healing is written again, and it is
 * the prompt's, so it is counted neither against max_tokens (lu_start gives one more) nor in
 * n_tokens. */
static int32_t lu_counted(struct sa_local_upstream *lu, int32_t n) {
    if (lu->heal_credit && n > 0) {
        lu->heal_credit = false;
        return n - 1;
    }
    return n;
}

static enum sa_status lu_next(void *impl, struct sa_upstream_chunk *out) {
    struct sa_local_upstream *lu = impl;
    const int32_t n_vocab = sa_model_n_vocab(lu->model);
    int32_t n_tok = 0;
    enum sa_status s;
    sa_buf_clear(&lu->chunk);
    for (;;) {
        if (lu->pending >= 0) {
            int32_t id = lu->pending;
            lu->pending = -1;
            if ((s = sa_ctx_decode(lu->ctx, &id, 1, NULL))) return s;
        }
        enum sa_upstream_finish fin = SA_UPSTREAM_FINISH_NONE;
        int32_t id = -1;
        if (lu->st.n_generated >= lu->max_tokens || sa_ctx_len(lu->ctx) >= sa_ctx_n_ctx(lu->ctx)) {
            fin = SA_UPSTREAM_FINISH_LENGTH;
        } else {
            const float *logits = sa_ctx_logits(lu->ctx);
            if (!logits) return sa_error(SA_STATUS_ERROR, "local upstream: no logits to sample from");
            if (lu->proxy && (s = sa_proxy_logits(lu->proxy, lu->ctx, &logits))) return s;
            const bool healing = lu->heal_pos < lu->heal_len;
            if (healing && !(logits = lu_heal_mask(lu, logits, n_vocab)))
                return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            if ((s = sa_sampler_sample(lu->smp, logits, n_vocab, &id))) return s;
            if (healing && lu->heal_pos < lu->heal_len) { /* the allowed tokens spell the next bytes of the healed text */
                size_t plen = id >= 0 && id < n_vocab ? lu->piece_off[id + 1] - lu->piece_off[id] : 0;
                lu->heal_pos += plen ? SA_MIN(plen, lu->heal_len - lu->heal_pos) : lu->heal_len - lu->heal_pos;
            }
            lu->st.n_generated++;
            n_tok++;
            if (sa_tokenizer_is_eog(lu->tok, id)) fin = SA_UPSTREAM_FINISH_STOP;
        }
        const char *piece;
        size_t plen;
        if (fin != SA_UPSTREAM_FINISH_NONE) {
            if ((s = sa_detok_stream_flush(lu->ds, &piece, &plen))) return s;
            if ((s = lu_append(lu, piece, plen))) return s;
            if ((s = sa_buf_append(&lu->chunk, "", 0))) return s;
            out->text = lu->chunk.data;
            out->len = lu->chunk.len;
            out->n_tokens = lu_counted(lu, n_tok);
            out->finish = fin;
            return SA_STATUS_OK;
        }
        sa_sampler_accept(lu->smp, id);
        lu->pending = id;
        if ((s = sa_detok_stream_push(lu->ds, id, &piece, &plen))) return s;
        const size_t before = lu->chunk.len;
        if ((s = lu_append(lu, piece, plen))) return s;
        if (lu->chunk.len > before) {
            out->text = lu->chunk.data;
            out->len = lu->chunk.len;
            out->n_tokens = lu_counted(lu, n_tok);
            out->finish = SA_UPSTREAM_FINISH_NONE;
            return SA_STATUS_OK;
        }
        /* an incomplete UTF-8 character: take the next token into the same chunk */
    }
}

static void lu_cancel(void *impl) {
    struct sa_local_upstream *lu = impl;
    lu->pending = -1; /* the lookahead token stays out of the cache */
}

static const struct sa_upstream_ops lu_ops = {
    .name = "local", .start = lu_start, .next = lu_next, .cancel = lu_cancel, .free = lu_free};

enum sa_status sa_local_upstream_init(const struct sa_model *model, struct sa_ctx *ctx, const struct sa_ctx_params *cp,
                                      bool kv_reuse, struct sa_upstream **out, struct sa_local_upstream **impl) {
    if (out) *out = NULL;
    if (impl) *impl = NULL;
    if (!model || !out) return sa_error(SA_STATUS_BAD_ARGUMENT, "local upstream: NULL model or out");
    const struct sa_tokenizer *tok = sa_model_tokenizer(model);
    if (!tok) return sa_error(SA_STATUS_BAD_ARGUMENT, "local upstream: the model has no tokenizer");
    struct sa_local_upstream *lu = calloc(1, sizeof *lu);
    if (!lu) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    lu->model = model;
    lu->tok = tok;
    lu->kv_reuse = kv_reuse;
    lu->pending = -1;
    sa_buf_init(&lu->chunk, 0);
    enum sa_status s = SA_STATUS_OK;
    if (ctx) {
        lu->ctx = ctx;
    } else {
        s = sa_ctx_init(model, cp, &lu->ctx);
        lu->own_ctx = true;
    }
    struct sa_detokenize_opts dopts = {.special = false, .strip_leading_space = false};
    if (!s) s = sa_detok_stream_init(tok, dopts, &lu->ds);
    if (s) {
        lu_free(lu);
        return s;
    }
    if ((s = sa_upstream_init_ops(&lu_ops, lu, out))) return s; /* frees lu on failure */
    if (impl) *impl = lu;
    return SA_STATUS_OK;
}

enum sa_status sa_upstream_local_init(const struct sa_model *model, int32_t n_ctx, int n_threads, bool kv_reuse,
                                      struct sa_upstream **out) {
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = n_threads;
    return sa_local_upstream_init(model, NULL, &cp, kv_reuse, out, NULL);
}

void sa_local_upstream_stats(const struct sa_local_upstream *lu, struct sa_local_upstream_stats *st) {
    if (lu && st) *st = lu->st;
}

void sa_local_upstream_set_proxy(struct sa_local_upstream *lu, struct sa_proxy *px) {
    if (!lu) {
        sa_proxy_free(px);
        return;
    }
    sa_proxy_free(lu->proxy);
    lu->proxy = px;
}

void sa_local_upstream_set_kv_reuse(struct sa_local_upstream *lu, bool on) {
    if (lu) lu->kv_reuse = on;
}
