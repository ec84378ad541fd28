/* pipeline.c: the Stream Aligner loop (Algorithm 1) and its comparison modes. Each round the
 * upstream continues q + p (p pre-filled as the start of its assistant turn) and is cut at the
 * end of one sentence y1 (the segmenter decides, primed with p so that it sees the context);
 * the aligner rewrites y1 given q and p (copy-speculation with y1 as the draft); the upstream's
 * separator + y2 is appended to p and emitted at once. Joining and boundary rules, caches and
 * failure behaviour: docs/internals/pipeline.md. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/pipeline_impl.h"
#include "sa/batch.h"
#include "pipeline/speculative_impl.h"
#include "sa/model.h"
#include "sa/model_config.h"
#include "sa/proxy.h"
#include "sa/sampler.h"
#include "sa/tokenizer.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sa_pipeline {
    struct sa_pipeline_params p;
    char *system, *aligner_system;
    /* upstream */
    struct sa_upstream *up;        /* the one in use (borrowed or own_up) */
    struct sa_upstream *own_up;    /* a local upstream made here */
    struct sa_local_upstream *up_local;
    enum sa_chat_format up_fmt;
    const char *up_tmpl;
    const struct sa_tokenizer *len_tok; /* counts the answer's tokens; NULL: words */
    /* aligner */
    const struct sa_tokenizer *al_tok;
    struct sa_ctx *al_ctx;
    struct sa_sampler *al_smp;     /* aligner_temp > 0 */
    enum sa_chat_format al_fmt;
    const char *al_tmpl;
    struct sa_upstream *al_up;     /* the aligner as a writer (CONTINUE with the aligner) */
    struct sa_local_upstream *al_local;
    struct sa_segmenter *seg;
    /* the edit judge (edit_judge_model) */
    struct sa_edit_judge *judge;
    enum sa_chat_format jg_fmt;
    const char *jg_tmpl;
    /* the run in progress */
    const struct sa_pipeline_callbacks *cb;
    const char *question;
    struct sa_buf answer;          /* p: always NUL-terminated */
    bool keep_brk;                 /* keep_line_break applies: the upstream is not healed */
    struct sa_buf brk;             /* the line break the upstream wrote after p's last sentence,
                                      kept at the end of its next prompt (keep_brk; may be empty) */
    struct sa_pipeline_result *res;
    double t0;
    bool cb_stop;                  /* on_sentence returned false */
    bool len_stop;                 /* the answer reached max_length (a piece was cut there) */
};

/* ---- names and defaults ---- */

static const char *const mode_names[] = {"stream", "continue", "aligner", "upstream"};

const char *sa_pipeline_mode_name(enum sa_pipeline_mode m) {
    return (unsigned)m < SA_ARRAY_LEN(mode_names) ? mode_names[m] : "unknown";
}

enum sa_status sa_pipeline_mode_from_name(const char *name, enum sa_pipeline_mode *out) {
    for (size_t i = 0; name && i < SA_ARRAY_LEN(mode_names); i++)
        if (!strcmp(name, mode_names[i])) {
            *out = (enum sa_pipeline_mode)i;
            return SA_STATUS_OK;
        }
    return sa_error(SA_STATUS_BAD_ARGUMENT, "unknown pipeline mode '%s' (stream, continue, aligner, upstream)",
                    name ? name : "(null)");
}

const char *sa_pipeline_stop_name(enum sa_pipeline_stop s) {
    static const char *const names[] = {"none",       "upstream_end", "aligner_empty", "max_length",
                                        "max_rounds", "cancelled",    "done"};
    return (unsigned)s < SA_ARRAY_LEN(names) ? names[s] : "unknown";
}

const char *sa_pipeline_edit_score_name(enum sa_pipeline_edit_score e) {
    return e == SA_PIPELINE_EDIT_SCORE_SUM ? "sum" : e == SA_PIPELINE_EDIT_SCORE_MEAN ? "mean" : "unknown";
}

const char *sa_pipeline_edit_check_name(unsigned check) {
    return check == SA_PIPELINE_EDIT_CHECK_NONE    ? "none"
           : check == SA_PIPELINE_EDIT_CHECK_ARITH  ? "arith"
           : check == SA_PIPELINE_EDIT_CHECK_FORMAT ? "format"
           : check == SA_PIPELINE_EDIT_CHECK_CUT    ? "cut"
           : check == SA_PIPELINE_EDIT_CHECK_JUDGE  ? "judge"
                                                    : "unknown";
}

/* The cut check: y2 only deletes from y1. Spaces are skipped on both sides, so that a change of
 * spacing alone is not a cut; y2 must keep fewer of y1's other characters, in y1's order, and at
 * least one: an empty revision keeps its meaning in the loop (stop), it is not a cut. */
static bool edit_only_deletes(const char *y1, const char *y2) {
    size_t n1 = 0, n2 = 0;
    const char *a = y1;
    for (const char *b = y2; *b; b++) {
        if (isspace((unsigned char)*b)) continue;
        n2++;
        while (*a && *a != *b) a++;
        if (!*a) return false; /* a character y1 does not have here: more than a deletion */
        a++;
    }
    for (const char *c = y1; *c; c++) n1 += !isspace((unsigned char)*c);
    return n2 > 0 && n2 < n1;
}

/* The order the checks are tested in is the one rule of which check refuses an edit that
 * several would: format, cut, arith (docs/PIPELINE.md "Edit checks"). */
unsigned sa_pipeline_edit_refused_by(unsigned checks, const char *y1, const char *y2) {
    if (!y1 || !y2) return 0;
    if ((checks & SA_PIPELINE_EDIT_CHECK_FORMAT) && sa_aligner_input_marker_added(y1, y2))
        return SA_PIPELINE_EDIT_CHECK_FORMAT;
    if ((checks & SA_PIPELINE_EDIT_CHECK_CUT) && edit_only_deletes(y1, y2)) return SA_PIPELINE_EDIT_CHECK_CUT;
    if ((checks & SA_PIPELINE_EDIT_CHECK_ARITH) && sa_arith_edit_adds_error(y1, y2))
        return SA_PIPELINE_EDIT_CHECK_ARITH;
    return 0;
}

bool sa_pipeline_edit_refused(unsigned checks, const char *y1, const char *y2) {
    return sa_pipeline_edit_refused_by(checks, y1, y2) != 0;
}

struct sa_pipeline_params sa_pipeline_default_params(void) {
    return (struct sa_pipeline_params){
        .mode = SA_PIPELINE_STREAM,
        .upstream_format = SA_CHAT_FORMAT_UNKNOWN,
        .max_length = 1024,
        .max_sentence_tokens = 256,
        .continue_rounds = 1,
        .continue_with = SA_PIPELINE_CONTINUE_ALIGNER,
        .unit = SA_SEGMENT_SENTENCE,
        .upstream_top_p = 1.0f,
        .use_spec = true,
        .kv_reuse = true,
        .token_healing = true,
        .edit_gate = false,
        .edit_threshold = 0.0f,
        .edit_score = SA_PIPELINE_EDIT_SCORE_SUM,
        .keep_line_break = true,
        .proxy_alpha = 1.0f,
        .aligner_cvec_scale = 1.0f,
    };
}

void sa_pipeline_result_free(struct sa_pipeline_result *r) {
    if (!r) return;
    free(r->answer);
    free(r->upstream_answer);
    memset(r, 0, sizeof *r);
}

/* ---- init / free ---- */

static bool pl_abort(void *user) {
    const struct sa_pipeline *pl = user;
    return pl->cb && pl->cb->cancel && pl->cb->cancel(pl->cb->user);
}

/* The params of the pipeline's local contexts (upstream and aligner). */
static struct sa_ctx_params local_ctx_params(struct sa_pipeline *pl) {
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_ctx = pl->p.n_ctx;
    cp.n_threads = pl->p.n_threads;
    cp.abort_cb = pl_abort;
    cp.abort_user = pl;
    cp.batch_invariant = pl->p.batch_invariant;
    cp.kv_type = pl->p.kv_type;
    cp.sched = pl->p.sched;
    return cp;
}

/* A thread waiting on a remote upstream leaves the scheduler meanwhile, so that the local
 * decodes of the other threads do not wait for it (sa_sched_enter). */
static enum sa_status remote_start(struct sa_pipeline *pl, struct sa_upstream *up, const char *prompt, size_t len,
                                   const struct sa_upstream_gen_params *gp, bool remote) {
    if (remote && pl->p.sched) sa_sched_leave(pl->p.sched);
    enum sa_status s = sa_upstream_start(up, prompt, len, gp);
    if (remote && pl->p.sched) sa_sched_enter(pl->p.sched);
    return s;
}

static enum sa_status remote_next(struct sa_pipeline *pl, struct sa_upstream *up, struct sa_upstream_chunk *c,
                                  bool remote) {
    if (remote && pl->p.sched) sa_sched_leave(pl->p.sched);
    enum sa_status s = sa_upstream_next(up, c);
    if (remote && pl->p.sched) sa_sched_enter(pl->p.sched);
    return s;
}

static enum sa_chat_format model_format(const struct sa_model *m) {
    return sa_chat_template_detect(sa_model_chat_template(m), sa_model_config(m)->arch_name);
}

void sa_pipeline_free(struct sa_pipeline *pl) {
    if (!pl) return;
    sa_segmenter_free(pl->seg);
    sa_edit_judge_free(pl->judge);
    sa_upstream_free(pl->al_up);
    sa_sampler_free(pl->al_smp);
    sa_ctx_free(pl->al_ctx);
    sa_upstream_free(pl->own_up);
    sa_buf_free(&pl->answer);
    sa_buf_free(&pl->brk);
    free(pl->system);
    free(pl->aligner_system);
    free(pl);
}

/* Proxy-tuning of the local upstream (sa/proxy.h): its side contexts as the upstream's, outside
 * the scheduler (they follow the upstream's tokens; only its own decodes are batched). */
static enum sa_status attach_proxy(struct sa_pipeline *pl, const struct sa_ctx_params *cp) {
    struct sa_proxy_params xp = sa_proxy_default_params();
    xp.alpha = pl->p.proxy_alpha;
    xp.expert_lora = pl->p.proxy_expert_lora;
    xp.ctx = *cp;
    xp.ctx.sched = NULL;
    struct sa_proxy *px = NULL;
    enum sa_status s = sa_proxy_init(pl->p.upstream_model, pl->p.proxy_expert, pl->p.proxy_anti, &xp, &px);
    if (!s) sa_local_upstream_set_proxy(pl->up_local, px); /* owns px from now on */
    return s;
}

static bool needs_aligner(const struct sa_pipeline_params *p) {
    if (p->mode == SA_PIPELINE_UPSTREAM) return false;
    if (p->mode == SA_PIPELINE_CONTINUE)
        return p->continue_rounds > 0 || p->continue_with == SA_PIPELINE_CONTINUE_ALIGNER;
    return true;
}

enum sa_status sa_pipeline_init(const struct sa_pipeline_params *params, struct sa_pipeline **out) {
    if (out) *out = NULL;
    if (!params || !out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_init: NULL params or out");
    const struct sa_pipeline_params *p = params;
    if ((unsigned)p->mode > SA_PIPELINE_UPSTREAM)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: unknown mode %d", (int)p->mode);
    if (p->upstream_model && p->upstream)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: give exactly one of upstream_model and upstream");
    if ((p->proxy_expert || p->proxy_anti) && !(p->proxy_expert && p->proxy_anti && p->upstream_model))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: proxy-tuning needs proxy_expert, proxy_anti and a local "
                                                "upstream_model");
    if (!p->upstream_model && !p->upstream && p->mode != SA_PIPELINE_ALIGNER)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: mode '%s' needs an upstream (upstream_model or upstream)",
                        sa_pipeline_mode_name(p->mode));
    if (needs_aligner(p) && !p->aligner_model && !p->aligner_fn)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: mode '%s' needs an aligner (aligner_model or aligner_fn)",
                        sa_pipeline_mode_name(p->mode));
    if (p->max_rounds < 0 || p->max_length < 0 || p->max_sentence_tokens < 0 || p->max_aligner_tokens < 0 ||
        p->continue_rounds < 0 || p->n_ctx < 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: negative limit (max_rounds, max_length, "
                                                "max_sentence_tokens, max_aligner_tokens, continue_rounds or n_ctx)");
    if (!(p->upstream_top_p >= 0.0f && p->upstream_top_p <= 1.0f))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: upstream_top_p must be in (0, 1]");
    if (p->edit_gate && (isnan(p->edit_threshold) || (unsigned)p->edit_score > SA_PIPELINE_EDIT_SCORE_MEAN))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: edit_threshold is NaN or edit_score unknown");
    if (p->edit_check & ~(unsigned)SA_PIPELINE_EDIT_CHECK_KNOWN)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: edit_check has an unknown bit");
    if (p->edit_judge_model && (p->mode == SA_PIPELINE_ALIGNER || p->mode == SA_PIPELINE_UPSTREAM))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: the edit judge judges sentences: modes stream and "
                                                "continue");
    if (p->edit_judge_lora && !p->edit_judge_model)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: edit_judge_lora needs edit_judge_model");
    if (p->edit_judge_model && isnan(p->edit_judge_threshold))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: edit_judge_threshold is NaN");
    if (p->edit_gate && needs_aligner(p) && (p->aligner_fn || !p->aligner_model))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: edit_gate needs aligner_model (an aligner_fn gives no "
                                                "log-probabilities to compare)");
    struct sa_pipeline *pl = calloc(1, sizeof *pl);
    if (!pl) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    pl->p = *p;
    if (pl->p.max_length == 0) pl->p.max_length = 1024;
    if (pl->p.max_sentence_tokens == 0) pl->p.max_sentence_tokens = 256;
    if (pl->p.upstream_top_p == 0.0f) pl->p.upstream_top_p = 1.0f;
    pl->p.system = pl->p.aligner_system = NULL;
    sa_buf_init(&pl->answer, 0);
    sa_buf_init(&pl->brk, 0);
    enum sa_status s = SA_STATUS_OK;
    if ((p->system && !(pl->system = strdup(p->system))) ||
        (p->aligner_system && !(pl->aligner_system = strdup(p->aligner_system))))
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");

    /* the upstream and its chat format */
    pl->up_fmt = p->upstream_format;
    pl->up_tmpl = p->upstream_template;
    if (!s && p->upstream_model) {
        if (!pl->up_tmpl) pl->up_tmpl = sa_model_chat_template(p->upstream_model);
        if (pl->up_fmt == SA_CHAT_FORMAT_UNKNOWN) pl->up_fmt = model_format(p->upstream_model);
        struct sa_ctx_params cp = local_ctx_params(pl);
        cp.lora = p->upstream_lora;
        s = sa_local_upstream_init(p->upstream_model, NULL, &cp, p->kv_reuse, &pl->own_up, &pl->up_local);
        pl->up = pl->own_up;
        if (!s && (p->proxy_expert || p->proxy_anti)) s = attach_proxy(pl, &cp);
        pl->len_tok = sa_model_tokenizer(p->upstream_model);
    } else if (!s && p->upstream) {
        pl->up = p->upstream;
        if (pl->up_fmt == SA_CHAT_FORMAT_UNKNOWN && pl->up_tmpl) pl->up_fmt = sa_chat_template_detect(pl->up_tmpl, NULL);
    }
    if (!s && pl->up && pl->up_fmt == SA_CHAT_FORMAT_UNKNOWN)
        s = sa_error(SA_STATUS_UNSUPPORTED, "pipeline: the upstream's chat format is unknown: name it "
                                            "(chatml, gemma, llama3) or give its template");
    if (p->upstream_tokenizer) pl->len_tok = p->upstream_tokenizer;
    /* a healed local upstream writes its own line break from the prefix's last token */
    pl->keep_brk = p->keep_line_break && !(pl->up_local && p->token_healing);

    /* the aligner */
    if (!s && p->aligner_model && !p->aligner_fn && needs_aligner(p)) {
        const struct sa_model *am = p->aligner_model;
        pl->al_tok = sa_model_tokenizer(am);
        pl->al_tmpl = sa_model_chat_template(am);
        pl->al_fmt = model_format(am);
        if (!pl->al_tok) s = sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: the aligner model has no tokenizer");
        else if (pl->al_fmt == SA_CHAT_FORMAT_UNKNOWN)
            s = sa_error(SA_STATUS_UNSUPPORTED, "pipeline: the aligner's chat template is not one salign knows "
                                                "(chatml, gemma, llama3)");
        if (!s) {
            struct sa_ctx_params cp = local_ctx_params(pl);
            cp.lora = p->aligner_lora;
            cp.cvec = p->aligner_cvec; /* steering (issue 15): NULL, or the vector times the scale */
            cp.cvec_scale = p->aligner_cvec_scale;
            s = sa_ctx_init(am, &cp, &pl->al_ctx);
        }
        if (!s && p->aligner_temp > 0) {
            struct sa_sampler_params sp = sa_sampler_default_params();
            sp.temp = p->aligner_temp;
            sp.seed = p->seed;
            s = sa_sampler_init(&sp, sa_model_n_vocab(am), &pl->al_smp);
        }
        if (!s && p->mode == SA_PIPELINE_CONTINUE && p->continue_with == SA_PIPELINE_CONTINUE_ALIGNER)
            s = sa_local_upstream_init(am, pl->al_ctx, NULL, p->kv_reuse, &pl->al_up, &pl->al_local);
        if (!pl->len_tok) pl->len_tok = pl->al_tok;
    }
    /* the edit judge: its own context, made as the aligner's */
    if (!s && p->edit_judge_model) {
        pl->jg_tmpl = sa_model_chat_template(p->edit_judge_model);
        pl->jg_fmt = model_format(p->edit_judge_model);
        if (pl->jg_fmt == SA_CHAT_FORMAT_UNKNOWN)
            s = sa_error(SA_STATUS_UNSUPPORTED, "pipeline: the edit judge's chat template is not one salign knows "
                                                "(chatml, gemma, llama3)");
        struct sa_ctx_params cp = local_ctx_params(pl);
        cp.lora = p->edit_judge_lora;
        if (!s) s = sa_edit_judge_init(p->edit_judge_model, &cp, &pl->judge);
    }
    if (!s) {
        struct sa_segment_params sp = sa_segment_default_params();
        sp.unit = p->unit;
        s = sa_segmenter_init(&sp, &pl->seg);
    }
    if (s) {
        sa_pipeline_free(pl);
        return s;
    }
    *out = pl;
    return SA_STATUS_OK;
}

/* ---- helpers ---- */

static bool cancelled(const struct sa_pipeline *pl) {
    return pl_abort((void *)pl);
}

/* Tokens of text[0..n): the counting tokenizer's, else words. */
static int32_t count_tokens(const struct sa_pipeline *pl, const char *text, size_t n) {
    if (n == 0) return 0;
    if (!pl->len_tok) return sa_join_count_words(text, n);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct sa_tokenize_opts to = {.add_special = false, .parse_special = false};
    if (sa_tokenize(pl->len_tok, text, n, to, &ids, &n_ids)) return sa_join_count_words(text, n);
    free(ids);
    return (int32_t)n_ids;
}

/* The BOS text a format writes at the start (left out: servers add BOS themselves). */
static const char *format_bos_text(enum sa_chat_format f) {
    switch (f) {
    case SA_CHAT_FORMAT_GEMMA: return "<bos>";
    case SA_CHAT_FORMAT_LLAMA3: return "<|begin_of_text|>";
    default: return "";
    }
}

/* Renders [system] + user `user` with `prefix` pre-filled as the assistant's answer, without
 * the written BOS. *out malloc'd. */
static enum sa_status render(enum sa_chat_format fmt, const char *tmpl, const char *system, const char *user,
                             const char *prefix, char **out, size_t *len) {
    struct sa_chat_msg msgs[2];
    size_t k = 0;
    if (system) msgs[k++] = (struct sa_chat_msg){"system", system};
    msgs[k++] = (struct sa_chat_msg){"user", user};
    enum sa_status s = sa_chat_render(fmt, tmpl, msgs, k, true, prefix && *prefix ? prefix : NULL, out, len);
    if (s) return s;
    const char *bos = format_bos_text(fmt);
    size_t bl = strlen(bos);
    if (bl && *len >= bl && !memcmp(*out, bos, bl)) {
        memmove(*out, *out + bl, *len - bl + 1);
        *len -= bl;
    }
    return SA_STATUS_OK;
}

static double ms_since(double t) {
    return (sa_time_now() - t) * 1000.0;
}

/* The largest k <= body_len (at a character boundary) such that answer + lead + body[0..k)
 * counts at most max_length tokens; SIZE_MAX when even answer + lead does not fit. The cap is
 * a hard one (issue 12): the budget each model is given is only a hint, since an aligner's
 * revision, a remote upstream's events and re-tokenizing text all may give more tokens. The
 * token-boundary cut (the first max_length tokens, detokenized) is tried first, then a
 * binary search over characters; the result is always checked by counting it. */
static enum sa_status fit_prefix(struct sa_pipeline *pl, const char *lead, size_t lead_len, const char *body,
                                 size_t body_len, size_t *k_out) {
    const int32_t max = pl->p.max_length;
    const size_t a = pl->answer.len, base = a + lead_len;
    char *buf = malloc(base + body_len + 1);
    if (!buf) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    memcpy(buf, pl->answer.data, a);
    memcpy(buf + a, lead, lead_len);
    memcpy(buf + base, body, body_len);
    buf[base + body_len] = 0;
    size_t k = body_len;
    if (count_tokens(pl, buf, base + body_len) <= max) goto done;
    if (count_tokens(pl, buf, base) > max) {
        k = SIZE_MAX;
        goto done;
    }
    size_t lo = 0, hi = body_len; /* fits(lo), !fits(hi) */
    if (pl->len_tok) {             /* the first max tokens, when they are a prefix of the text */
        int32_t *ids = NULL;
        size_t n_ids = 0;
        char *text = NULL;
        size_t tlen = 0;
        struct sa_tokenize_opts to = {.add_special = false, .parse_special = false};
        struct sa_detokenize_opts dopts = {.special = false, .strip_leading_space = false};
        if (!sa_tokenize(pl->len_tok, buf, base + body_len, to, &ids, &n_ids) && n_ids > (size_t)max &&
            !sa_detokenize(pl->len_tok, ids, (size_t)max, dopts, &text, &tlen) && tlen > base &&
            tlen < base + body_len && !memcmp(text, buf, tlen)) {
            size_t c = sa_utf8_valid_prefix(body, tlen - base);
            if (count_tokens(pl, buf, base + c) <= max) lo = c;
        }
        free(text);
        free(ids);
    }
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        mid = sa_utf8_valid_prefix(body, mid); /* back to a character boundary */
        if (mid <= lo) {                       /* no boundary in (lo, mid]: try past it */
            mid = lo + 1;
            while (mid < hi && sa_utf8_valid_prefix(body, mid) != mid) mid++;
            if (mid >= hi) break;
        }
        if (count_tokens(pl, buf, base + mid) <= max) lo = mid;
        else hi = mid;
    }
    k = lo;
done:
    free(buf);
    *k_out = k;
    return SA_STATUS_OK;
}

/* Appends lead + body to the answer and hands the piece to the caller. A piece that would
 * take the answer past max_length tokens is cut there (its trailing whitespace dropped; none
 * of it emitted when nothing fits) and the run stops with SA_PIPELINE_STOP_MAX_LENGTH. */
static enum sa_status emit(struct sa_pipeline *pl, const char *lead, size_t lead_len, const char *body,
                           size_t body_len, struct sa_pipeline_sentence *ev) {
    struct sa_pipeline_result *r = pl->res;
    const size_t before = pl->answer.len;
    size_t fit = body_len;
    enum sa_status fs = fit_prefix(pl, lead, lead_len, body, body_len, &fit);
    if (fs) return fs;
    if (fit != body_len) {
        pl->len_stop = true;
        if (fit != SIZE_MAX) fit = sa_join_trim_end(body, fit);
        if (fit == SIZE_MAX || fit == 0) return SA_STATUS_OK; /* nothing of it fits */
        body_len = fit;
        ev->cut = true;
    }
    enum sa_status s = sa_buf_append(&pl->answer, lead, lead_len);
    if (!s) s = sa_buf_append(&pl->answer, body, body_len);
    if (!s) s = sa_buf_append(&pl->answer, "", 0);
    if (s) return s;
    char *piece = malloc(lead_len + body_len + 1);
    if (!piece) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    memcpy(piece, pl->answer.data + before, lead_len + body_len);
    piece[lead_len + body_len] = 0;
    ev->index = ++r->n_sentences;
    ev->text = piece;
    ev->len = lead_len + body_len;
    ev->answer = pl->answer.data;
    ev->t_ms = ms_since(pl->t0);
    if (r->n_sentences == 1) r->first_sentence_ms = ev->t_ms;
    if (pl->cb && pl->cb->on_sentence && !pl->cb->on_sentence(pl->cb->user, ev)) pl->cb_stop = true;
    free(piece);
    return SA_STATUS_OK;
}

/* ---- reading the upstream ---- */

enum read_mode {
    READ_ONE,     /* stop at the end of the first unit after p (cancel the upstream there) */
    READ_EMIT,    /* emit every unit as it completes, up to the end of the generation */
    READ_COLLECT, /* keep the whole text, no segmentation */
};

struct read_out {
    char *piece;      /* READ_ONE: separator + sentence (malloc'd); READ_COLLECT: the text */
    size_t len, lead; /* bytes, and of them the separator's */
    enum sa_upstream_finish finish; /* NONE: cut at a boundary */
    int32_t n_tokens;
    int32_t n_prefill;
    double ms;
};

/* Emits the unit text[*emit_pos .. end of its sentence) for READ_EMIT. */
static enum sa_status emit_unit(struct sa_pipeline *pl, const char *text, size_t *emit_pos, size_t b, bool done,
                                struct read_out *ro, double t_up) {
    size_t core_end = sa_join_trim_end(text, b);
    if (core_end <= *emit_pos) return SA_STATUS_OK;
    const char *piece = text + *emit_pos;
    size_t len = core_end - *emit_pos, lead = sa_join_lead(piece, len);
    char *orig = sa_join_strip(piece, len);
    if (!orig) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct sa_pipeline_sentence ev = {0};
    ev.original = orig;
    ev.upstream_done = done;
    ev.upstream_tokens = ro->n_tokens;
    ev.upstream_prefill = ro->n_prefill;
    ev.upstream_ms = ms_since(t_up);
    pl->res->upstream_tokens += ro->n_tokens;
    pl->res->upstream_prefill += ro->n_prefill;
    pl->res->upstream_ms += ev.upstream_ms;
    ro->n_tokens = 0;
    ro->n_prefill = 0;
    enum sa_status s = emit(pl, piece, lead, piece + lead, len - lead, &ev);
    free(orig);
    *emit_pos = core_end;
    return s;
}

/* Runs `up` on `prompt` for at most max_tokens tokens, reading as `mode` says. The segmenter
 * is primed with the answer so far, so that it sees the context of the new text; units that
 * end inside the answer or hold only whitespace are skipped (the whitespace stays with the
 * next unit as its separator). For the upstream, the kept line break (pl->brk, the end of
 * its prompt) is primed after the answer: it becomes the start of the next piece's separator,
 * and READ_ONE keeps the new one. */
static enum sa_status read_upstream(struct sa_pipeline *pl, struct sa_upstream *up, const char *prompt,
                                    size_t prompt_len, int32_t max_tokens, float temp, uint64_t seed,
                                    enum read_mode mode, struct read_out *ro) {
    memset(ro, 0, sizeof *ro);
    struct sa_local_upstream *lu = up == pl->up ? pl->up_local : up == pl->al_up ? pl->al_local : NULL;
    struct sa_buf collect;
    sa_buf_init(&collect, 0);
    const size_t base = pl->answer.len;
    size_t cur = base, emit_pos = base, b;
    enum sa_status s = SA_STATUS_OK;
    const bool own_up = up == pl->up;
    sa_segmenter_reset(pl->seg);
    if (mode != READ_COLLECT) {
        s = sa_segmenter_push(pl->seg, pl->answer.data, base, &b);
        if (!s && own_up && pl->brk.len) s = sa_segmenter_push(pl->seg, pl->brk.data, pl->brk.len, &b);
        while (!s && b != SA_SEGMENT_NONE) s = sa_segmenter_push(pl->seg, NULL, 0, &b);
        if (s) return s;
    }
    sa_buf_clear(&pl->brk); /* in the segmenter's text now (or dropped: another writer) */
    struct sa_upstream_gen_params gp = sa_upstream_gen_default_params();
    gp.max_tokens = max_tokens;
    gp.temperature = temp;
    gp.top_p = pl->p.upstream_top_p;
    gp.seed = temp > 0 ? seed : SA_UPSTREAM_SEED_NONE;
    /* token healing when the prompt ends with the answer being continued */
    if (pl->p.token_healing && base && prompt_len >= base && !memcmp(prompt + prompt_len - base, pl->answer.data, base))
        gp.heal_bytes = base;
    double t_up = sa_time_now();
    const double t_start = t_up;
    if ((s = remote_start(pl, up, prompt, prompt_len, &gp, !lu))) return s;
    if (lu) {
        struct sa_local_upstream_stats st;
        sa_local_upstream_stats(lu, &st);
        ro->n_prefill = st.n_prefill;
    }
    bool found = false;
    for (;;) {
        if (cancelled(pl)) {
            s = sa_error(SA_STATUS_CANCELLED, "pipeline: cancelled");
            break;
        }
        struct sa_upstream_chunk c;
        if ((s = remote_next(pl, up, &c, !lu))) break;
        ro->n_tokens += c.n_tokens;
        if (mode == READ_COLLECT) {
            if ((s = sa_buf_append(&collect, c.text, c.len))) break;
            if (c.finish) {
                ro->finish = c.finish;
                break;
            }
            continue;
        }
        b = SA_SEGMENT_NONE;
        s = c.len ? sa_segmenter_push(pl->seg, c.text, c.len, &b) : SA_STATUS_OK;
        if (c.finish) ro->finish = c.finish;
        /* every boundary this chunk made known; at the end of the generation, then the ones
         * that finishing the text decides */
        bool fin_called = false;
        while (!s) {
            if (b == SA_SEGMENT_NONE) {
                if (c.finish && !fin_called) {
                    fin_called = true;
                    s = sa_segmenter_finish(pl->seg, &b);
                    continue;
                }
                break;
            }
            size_t tlen;
            const char *text = sa_segmenter_text(pl->seg, &tlen);
            if (b > cur && !sa_join_blank(text + cur, b - cur)) {
                if (mode == READ_ONE) {
                    size_t core_end = sa_join_trim_end(text, b);
                    ro->len = core_end - base;
                    ro->lead = sa_join_lead(text + base, ro->len);
                    if (!(ro->piece = malloc(ro->len + 1))) {
                        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                        break;
                    }
                    memcpy(ro->piece, text + base, ro->len);
                    ro->piece[ro->len] = 0;
                    /* the line break after the sentence, for the next prompt (the segmenter's
                     * unit owns its whitespace up to the last newline) */
                    size_t kb = own_up && pl->keep_brk ? sa_join_kept_break(text + core_end, b - core_end) : 0;
                    if (kb && (s = sa_buf_append(&pl->brk, text + core_end, kb))) break;
                    /* cut before the end of the text: the turn did not end with this unit
                     * (a remote event may carry more text and the finish reason at once) */
                    if (!sa_join_blank(text + b, tlen - b)) ro->finish = SA_UPSTREAM_FINISH_NONE;
                    found = true;
                    break;
                }
                /* READ_EMIT: the last unit is the upstream's last words when the turn ended */
                bool last = fin_called && sa_join_blank(text + b, tlen - b);
                if ((s = emit_unit(pl, text, &emit_pos, b, last && c.finish == SA_UPSTREAM_FINISH_STOP, ro, t_up)))
                    break;
                t_up = sa_time_now();
                cur = b;
                if (pl->cb_stop || pl->len_stop) break;
            }
            s = fin_called ? sa_segmenter_finish(pl->seg, &b) : sa_segmenter_push(pl->seg, NULL, 0, &b);
        }
        if (s || found || pl->cb_stop || pl->len_stop || c.finish) break;
    }
    sa_upstream_cancel(up); /* cut at a boundary: closes a remote stream; else back to idle */
    ro->ms = ms_since(t_start);
    if (mode == READ_COLLECT && !s) {
        ro->len = collect.len;
        ro->piece = sa_buf_take(&collect, NULL);
        if (!ro->piece && !(ro->piece = calloc(1, 1))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    if (mode == READ_EMIT) { /* tokens of a trailing, unemitted piece (whitespace, or cut short) */
        pl->res->upstream_tokens += ro->n_tokens;
        pl->res->upstream_prefill += ro->n_prefill;
        pl->res->upstream_ms += ms_since(t_up);
    }
    sa_buf_free(&collect);
    if (s) {
        free(ro->piece);
        ro->piece = NULL;
    }
    return s;
}

/* ---- the aligner ---- */

struct revision {
    char *text;   /* stripped of outer whitespace (malloc'd); y1 when gated */
    char *raw;    /* as the aligner wrote it (malloc'd) */
    int32_t n_tokens, n_draft, n_accepted, n_prefill;
    double ms;
    bool copied;  /* the aligner's revision equals y1 */
    /* the gate (edit_gate): scored when the margin was computed */
    bool scored, gated;
    unsigned refused_by; /* the edit check that refused it (edit_check; an SA_PIPELINE_EDIT_CHECK_*
                            bit, 0: not refused): text is y1, proposed the revision */
    double margin, logp_rev, logp_draft; /* nats; NAN when not computed */
    int32_t n_rev_tok, n_draft_tok;      /* tokens of the sums, end token included */
    double score_ms;                     /* of ms: scoring y1 (the gate's extra pass) */
    char *proposed; /* gated or refused: the aligner's revision (stripped, malloc'd) */
    int32_t n_repaired; /* the calculator rewrote this many results of text */
    char *unrepaired;   /* n_repaired > 0: text before the calculator (malloc'd) */
    bool judged;        /* the edit judge scored it: judge_margin */
    double judge_margin, judge_ms;
};

/* The gate's scores of a revision (docs/PIPELINE.md "Gated revision"). The aligner generated
 * gen[0..n_gen) (+ st->eog when it stopped on one) after the prompt ids[0..n_ids), with logp[i]
 * the log-probability of each (sa_spec_params.logp); y1's tokens are draft[0..n_draft). log p(y1)
 * is teacher-forced from the same cached prompt: the tokens y1 shares with the start of y2 have
 * the same log-probabilities (same context, same batch-invariant kernels), so only the rest of
 * y1 is decoded, rolling the cache back to where they part. The cache then holds the prompt and
 * y1: the next round's prompt differs from this one before its end (the answer so far grew),
 * so what it reuses is unchanged. y1 ends with the token y2 ended with, or the end-of-turn token
 * when y2 was cut at max tokens (then y2 has no end token). */
static enum sa_status score_revision(struct sa_pipeline *pl, const char *y1, const char *raw, const int32_t *ids,
                                     int32_t n_ids, const int32_t *draft, int32_t n_draft, const struct sa_ivec *gen,
                                     const float *logp, const struct sa_spec_stats *st, struct revision *rv) {
    char *y2 = sa_join_strip(raw, strlen(raw));
    if (!y2) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    const bool same = !strcmp(y2, y1);
    free(y2);
    if (same) { /* a copy: margin 0 by definition, nothing to score */
        rv->scored = true;
        rv->margin = 0;
        return SA_STATUS_OK;
    }
    if ((int64_t)n_ids + n_draft > sa_ctx_n_ctx(pl->al_ctx)) return SA_STATUS_OK; /* y1 does not fit: kept */
    const int32_t n_gen = (int32_t)gen->len, end = st->hit_eog ? st->eog : sa_tokenizer_eot(pl->al_tok);
    double lp2 = 0, lp1 = 0;
    for (int32_t i = 0; i < n_gen + (st->hit_eog ? 1 : 0); i++) lp2 += logp[i];
    int32_t c = 0; /* tokens y1 and y2 share at their start */
    while (c < n_gen && c < n_draft && gen->data[c] == draft[c]) c++;
    for (int32_t i = 0; i < c; i++) lp1 += logp[i];
    enum sa_status s = sa_spec_score(pl->al_ctx, n_ids - 1 + c, c ? draft[c - 1] : ids[n_ids - 1], draft + c,
                                     n_draft - c, end, &lp1);
    if (s) return s;
    rv->scored = true;
    rv->logp_rev = lp2;
    rv->logp_draft = lp1;
    rv->n_rev_tok = n_gen + (st->hit_eog ? 1 : 0);
    rv->n_draft_tok = n_draft + (end >= 0 ? 1 : 0);
    rv->margin = pl->p.edit_score == SA_PIPELINE_EDIT_SCORE_MEAN
                     ? lp2 / SA_MAX(rv->n_rev_tok, 1) - lp1 / SA_MAX(rv->n_draft_tok, 1)
                     : lp2 - lp1;
    return SA_STATUS_OK;
}

static enum sa_status aligner_model_run(struct sa_pipeline *pl, const struct sa_pipeline_request *req,
                                        struct revision *rv, char **raw) {
    char *input = NULL, *prompt = NULL;
    int32_t *ids = NULL, *draft = NULL;
    size_t n_ids = 0, n_draft = 0, plen = 0;
    struct sa_ivec gen = {0};
    float *logp = NULL; /* (max_tokens + 1): the gate's log-probabilities of y2's tokens */
    enum sa_status s = req->kind == SA_PIPELINE_REQ_ANSWER
                           ? sa_aligner_baseline_input(req->question, req->last, &input)
                           : sa_aligner_input(req->question, req->prefix, req->last, &input);
    if (!s) s = render(pl->al_fmt, pl->al_tmpl, pl->aligner_system, input, NULL, &prompt, &plen);
    if (!s) s = sa_local_tokenize_prompt(pl->al_tok, prompt, plen, &ids, &n_ids);
    struct sa_tokenize_opts to = {.add_special = false, .parse_special = false};
    if (!s) s = sa_tokenize(pl->al_tok, req->last, strlen(req->last), to, &draft, &n_draft);
    if (s) goto done;
    const int32_t n_ctx = sa_ctx_n_ctx(pl->al_ctx);
    int32_t max_tokens = pl->p.max_aligner_tokens
                             ? pl->p.max_aligner_tokens
                             : 2 * (int32_t)n_draft + (req->kind == SA_PIPELINE_REQ_ANSWER ? 64 : 32);
    if ((int64_t)n_ids + 1 >= n_ctx) {
        s = sa_error(SA_STATUS_BAD_ARGUMENT,
                     "aligner: the prompt has %zu tokens; the context holds %d (raise n_ctx or lower max_length)", n_ids,
                     (int)n_ctx);
        goto done;
    }
    if ((int64_t)n_ids + max_tokens >= n_ctx) max_tokens = n_ctx - (int32_t)n_ids - 1;
    if (!pl->p.kv_reuse && (s = sa_ctx_truncate(pl->al_ctx, 0))) goto done;
    int32_t reused = 0;
    if ((s = sa_ctx_eval_prompt(pl->al_ctx, ids, (int32_t)n_ids, NULL, &reused))) goto done;
    rv->n_prefill = (int32_t)n_ids - reused;
    struct sa_spec_params sp = sa_spec_default_params();
    sp.max_tokens = max_tokens;
    sp.use_draft = pl->p.use_spec;
    sp.sampler = pl->al_smp;
    if (pl->p.edit_gate && !(sp.logp = logp = malloc(((size_t)max_tokens + 1) * sizeof(float)))) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    struct sa_spec_stats st = {0};
    if ((s = sa_spec_generate(pl->al_ctx, draft, (int32_t)n_draft, &sp, &gen, &st))) goto done;
    rv->n_tokens = st.n_generated;
    rv->n_draft = st.n_draft;
    rv->n_accepted = st.n_accepted;
    struct sa_detokenize_opts dopts = {.special = false, .strip_leading_space = false};
    size_t tlen;
    s = sa_detokenize(pl->al_tok, gen.data, gen.len, dopts, raw, &tlen);
    if (!s && logp) {
        const double t = sa_time_now();
        s = score_revision(pl, req->last, *raw, ids, (int32_t)n_ids, draft, (int32_t)n_draft, &gen, logp, &st, rv);
        rv->score_ms = ms_since(t);
        if (s) {
            free(*raw);
            *raw = NULL;
        }
    }
done:
    free(logp);
    sa_ivec_free(&gen);
    free(draft);
    free(ids);
    free(prompt);
    free(input);
    return s;
}

static void revision_free(struct revision *rv) {
    free(rv->text);
    free(rv->raw);
    free(rv->proposed);
    free(rv->unrepaired);
    rv->text = rv->raw = rv->proposed = rv->unrepaired = NULL;
}

/* The edit judge's margin for replacing y1 by y2 after the answer so far and `lead` (the
 * separator the upstream wrote before y1): rv->judged and rv->judge_margin (not judged when
 * the texts do not fit in its context). */
static enum sa_status judge_edit(struct sa_pipeline *pl, const char *lead, size_t lead_len, const char *y1,
                                 const char *y2, struct revision *rv) {
    const double t = sa_time_now();
    char *context = malloc(pl->answer.len + lead_len + 1), *prompt = NULL;
    size_t plen = 0;
    if (!context) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    memcpy(context, pl->answer.data, pl->answer.len);
    memcpy(context + pl->answer.len, lead, lead_len);
    context[pl->answer.len + lead_len] = 0;
    enum sa_status s = render(pl->jg_fmt, pl->jg_tmpl, NULL, pl->question, context, &prompt, &plen);
    double m = NAN;
    if (!s) s = sa_edit_judge_margin(pl->judge, prompt, plen, y1, y2, &m, NULL);
    free(prompt);
    free(context);
    rv->judged = !s && !isnan(m);
    rv->judge_margin = m;
    rv->judge_ms = ms_since(t);
    return s;
}

/* Asks the aligner (model or aligner_fn); rv->text gets the revision without its outer
 * whitespace (the separator is the upstream's: docs/internals/pipeline.md). A loop's round
 * passes the separator before y1 (`lead`, lead_len bytes) for the edit judge; NULL: no judge. */
static enum sa_status revise(struct sa_pipeline *pl, enum sa_pipeline_request_kind kind, const char *last,
                             const char *lead, size_t lead_len, struct revision *rv) {
    memset(rv, 0, sizeof *rv);
    rv->margin = rv->logp_rev = rv->logp_draft = rv->judge_margin = NAN;
    struct sa_pipeline_request req = {.kind = kind, .question = pl->question, .prefix = pl->answer.data, .last = last};
    char *raw = NULL;
    const double t = sa_time_now();
    enum sa_status s;
    if (pl->p.aligner_fn) {
        int32_t n = 0;
        s = pl->p.aligner_fn(pl->p.aligner_user, &req, &raw, &n);
        if (!s && !raw) s = sa_error(SA_STATUS_ERROR, "aligner: the aligner function returned no text");
        rv->n_tokens = n;
    } else {
        s = aligner_model_run(pl, &req, rv, &raw);
    }
    rv->ms = ms_since(t);
    if (!s && !(rv->text = sa_join_strip(raw, strlen(raw)))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (s) free(raw);
    else rv->raw = raw;
    if (!s && kind != SA_PIPELINE_REQ_CONTINUE) {
        rv->copied = !strcmp(rv->text, last);
        /* the gate: below the threshold, y1 is the revision; then the edit check */
        if (!rv->copied && rv->scored && pl->p.edit_gate && !(rv->margin >= (double)pl->p.edit_threshold))
            rv->gated = true;
        else if (!rv->copied)
            rv->refused_by = sa_pipeline_edit_refused_by(pl->p.edit_check, last, rv->text);
        /* the edit judge, on an edit that still stands */
        if (pl->judge && lead && !rv->copied && !rv->gated && !rv->refused_by && rv->text[0]) {
            s = judge_edit(pl, lead, lead_len, last, rv->text, rv);
            if (!s && rv->judged && !(rv->judge_margin >= (double)pl->p.edit_judge_threshold))
                rv->refused_by = SA_PIPELINE_EDIT_CHECK_JUDGE;
        }
        if (!s && (rv->gated || rv->refused_by)) {
            char *y1 = strdup(last);
            if (!y1) {
                s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                revision_free(rv);
            } else {
                rv->proposed = rv->text;
                rv->text = y1;
            }
        }
        /* the calculator, on whatever is emitted: a copy, y1 kept, or the revision */
        char *fixed = NULL;
        if (!s && pl->p.calculator && !(s = sa_arith_repair(rv->text, &fixed, &rv->n_repaired)) && fixed) {
            rv->unrepaired = rv->text;
            rv->text = fixed;
        }
        if (s) revision_free(rv);
    }
    if (!s) {
        struct sa_pipeline_result *r = pl->res;
        if (rv->scored) {
            r->n_scored++;
            r->n_gated += rv->gated;
            r->margin = rv->margin;
            r->score_ms += rv->score_ms;
            r->logp_revision = rv->logp_rev;
            r->logp_draft = rv->logp_draft;
        }
        if (rv->refused_by) {
            r->n_refused++;
            r->refused_by = rv->refused_by;
        }
        r->n_repaired += rv->n_repaired;
        r->n_judged += rv->judged;
        r->n_judge_refused += rv->refused_by == SA_PIPELINE_EDIT_CHECK_JUDGE;
        r->judge_ms += rv->judge_ms;
        r->aligner_tokens += rv->n_tokens;
        r->aligner_draft += rv->n_draft;
        r->aligner_accepted += rv->n_accepted;
        r->aligner_prefill += rv->n_prefill;
        r->aligner_ms += rv->ms;
    }
    return s;
}

/* The event of an aligned piece: y1 (what the aligner saw), the upstream's read and the
 * revision's counters (text fields are filled by emit). */
static struct sa_pipeline_sentence aligned_event(const char *y1, const struct read_out *ro,
                                                 const struct revision *rv) {
    struct sa_pipeline_sentence ev = {0};
    ev.aligned = true;
    ev.original = y1;
    ev.copied = rv->copied;
    ev.edit_ratio = ev.copied || rv->gated || rv->refused_by ? 0.0 : sa_join_edit_ratio(y1, strlen(y1), rv->text, strlen(rv->text));
    ev.scored = rv->scored;
    ev.margin = rv->margin;
    ev.logp_revision = rv->logp_rev;
    ev.logp_draft = rv->logp_draft;
    ev.n_revision_tokens = rv->n_rev_tok;
    ev.n_draft_tokens = rv->n_draft_tok;
    ev.gated = rv->gated;
    ev.refused = rv->refused_by != 0;
    ev.refused_by = rv->refused_by;
    ev.proposed = rv->proposed;
    ev.n_repaired = rv->n_repaired;
    ev.unrepaired = rv->unrepaired;
    ev.score_ms = rv->score_ms;
    ev.judged = rv->judged;
    ev.judge_margin = rv->judge_margin;
    ev.judge_ms = rv->judge_ms;
    ev.upstream_done = ro->finish == SA_UPSTREAM_FINISH_STOP;
    ev.upstream_tokens = ro->n_tokens;
    ev.upstream_prefill = ro->n_prefill;
    ev.upstream_ms = ro->ms;
    ev.aligner_tokens = rv->n_tokens;
    ev.aligner_draft = rv->n_draft;
    ev.aligner_accepted = rv->n_accepted;
    ev.aligner_prefill = rv->n_prefill;
    ev.aligner_ms = rv->ms;
    return ev;
}

/* ---- the modes ---- */

static int32_t budget(const struct sa_pipeline *pl) {
    return pl->p.max_length - count_tokens(pl, pl->answer.data, pl->answer.len);
}

/* The upstream's prompt: q, and p pre-filled, followed by the line break kept after p's last
 * sentence (keep_line_break). */
static enum sa_status upstream_prompt(struct sa_pipeline *pl, char **prompt, size_t *len) {
    if (!pl->brk.len) return render(pl->up_fmt, pl->up_tmpl, pl->system, pl->question, pl->answer.data, prompt, len);
    char *prefix = malloc(pl->answer.len + pl->brk.len + 1);
    if (!prefix) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    memcpy(prefix, pl->answer.data, pl->answer.len);
    memcpy(prefix + pl->answer.len, pl->brk.data, pl->brk.len);
    prefix[pl->answer.len + pl->brk.len] = 0;
    enum sa_status s = render(pl->up_fmt, pl->up_tmpl, pl->system, pl->question, prefix, prompt, len);
    free(prefix);
    return s;
}

/* One model writes the rest of the answer, emitted unit by unit (UPSTREAM mode, the end of
 * CONTINUE). */
static enum sa_status write_rest(struct sa_pipeline *pl, bool with_aligner) {
    struct sa_pipeline_result *r = pl->res;
    const int32_t left = budget(pl);
    if (left <= 0) {
        r->stop = SA_PIPELINE_STOP_MAX_LENGTH;
        return SA_STATUS_OK;
    }
    char *prompt = NULL;
    size_t plen = 0;
    enum sa_status s;
    if (with_aligner && pl->p.aligner_fn) { /* a custom aligner writes the rest in one piece */
        struct revision rv;
        if ((s = revise(pl, SA_PIPELINE_REQ_CONTINUE, "", NULL, 0, &rv))) return s;
        /* emitted unit by unit with the same rule as a streamed continuation: each piece is
         * the whitespace before it and the unit without its trailing whitespace */
        struct sa_segment_params sp = sa_segment_default_params();
        sp.unit = pl->p.unit;
        struct sa_segment_span *spans = NULL;
        size_t n = 0;
        const char *t = rv.raw;
        if ((s = sa_segment_text(t, strlen(t), &sp, &spans, &n))) {
            revision_free(&rv);
            return s;
        }
        size_t pos = 0;
        for (size_t i = 0; i < n && !s && !pl->cb_stop && !pl->len_stop; i++) {
            size_t end = sa_join_trim_end(t, spans[i].end);
            if (end <= pos) continue;
            size_t lead = sa_join_lead(t + pos, end - pos);
            char *orig = sa_join_strip(t + pos, end - pos);
            if (!orig) {
                s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                break;
            }
            struct sa_pipeline_sentence ev = {.original = orig, .upstream_done = i + 1 == n};
            if (pos == 0) {
                ev.aligner_tokens = rv.n_tokens;
                ev.aligner_ms = rv.ms;
            }
            s = emit(pl, t + pos, lead, t + pos + lead, end - pos - lead, &ev);
            free(orig);
            pos = end;
        }
        free(spans);
        revision_free(&rv);
        if (!s)
            r->stop = pl->cb_stop    ? SA_PIPELINE_STOP_CANCELLED
                      : pl->len_stop ? SA_PIPELINE_STOP_MAX_LENGTH
                                     : SA_PIPELINE_STOP_DONE;
        return s;
    }
    struct sa_upstream *up = pl->up;
    if (with_aligner) {
        s = render(pl->al_fmt, pl->al_tmpl, NULL, pl->question, pl->answer.data, &prompt, &plen);
        up = pl->al_up;
    } else {
        s = upstream_prompt(pl, &prompt, &plen);
    }
    struct read_out ro;
    if (!s)
        s = read_upstream(pl, up, prompt, plen, left, with_aligner ? pl->p.aligner_temp : pl->p.upstream_temp,
                          pl->p.seed + (uint64_t)r->n_sentences, READ_EMIT, &ro);
    free(prompt);
    if (s) return s;
    free(ro.piece);
    if (pl->cb_stop) r->stop = SA_PIPELINE_STOP_CANCELLED;
    else if (pl->len_stop || ro.finish == SA_UPSTREAM_FINISH_LENGTH) r->stop = SA_PIPELINE_STOP_MAX_LENGTH;
    else if (pl->p.mode == SA_PIPELINE_UPSTREAM) r->stop = SA_PIPELINE_STOP_UPSTREAM_END;
    else r->stop = SA_PIPELINE_STOP_DONE;
    return SA_STATUS_OK;
}

/* The loop (STREAM, and the first rounds of CONTINUE). */
static enum sa_status run_stream(struct sa_pipeline *pl) {
    struct sa_pipeline_result *r = pl->res;
    const bool cont = pl->p.mode == SA_PIPELINE_CONTINUE;
    for (;;) {
        if (pl->cb_stop) {
            r->stop = SA_PIPELINE_STOP_CANCELLED;
            return SA_STATUS_OK;
        }
        if (cont && r->n_rounds >= pl->p.continue_rounds)
            return write_rest(pl, pl->p.continue_with == SA_PIPELINE_CONTINUE_ALIGNER);
        if (!cont && pl->p.max_rounds && r->n_rounds >= pl->p.max_rounds) {
            r->stop = SA_PIPELINE_STOP_MAX_ROUNDS;
            return SA_STATUS_OK;
        }
        const int32_t left = budget(pl);
        if (left <= 0) {
            r->stop = SA_PIPELINE_STOP_MAX_LENGTH;
            return SA_STATUS_OK;
        }
        char *prompt = NULL;
        size_t plen = 0;
        enum sa_status s = upstream_prompt(pl, &prompt, &plen);
        struct read_out ro;
        if (!s)
            s = read_upstream(pl, pl->up, prompt, plen, SA_MIN(pl->p.max_sentence_tokens, left),
                              pl->p.upstream_temp, pl->p.seed + (uint64_t)r->n_rounds, READ_ONE, &ro);
        free(prompt);
        if (s) return s;
        r->upstream_tokens += ro.n_tokens;
        r->upstream_prefill += ro.n_prefill;
        r->upstream_ms += ro.ms;
        if (!ro.piece) { /* the upstream wrote nothing more */
            r->stop = ro.finish == SA_UPSTREAM_FINISH_LENGTH ? SA_PIPELINE_STOP_MAX_LENGTH
                                                               : SA_PIPELINE_STOP_UPSTREAM_END;
            return SA_STATUS_OK;
        }
        char *y1 = sa_join_strip(ro.piece, ro.len);
        if (!y1) {
            free(ro.piece);
            return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        }
        struct revision rv;
        if ((s = revise(pl, SA_PIPELINE_REQ_SENTENCE, y1, ro.piece, ro.lead, &rv))) {
            free(y1);
            free(ro.piece);
            return s;
        }
        r->n_rounds++;
        if (!rv.text[0]) { /* the aligner ends the answer */
            revision_free(&rv);
            free(y1);
            free(ro.piece);
            r->stop = SA_PIPELINE_STOP_ALIGNER_EMPTY;
            return SA_STATUS_OK;
        }
        struct sa_pipeline_sentence ev = aligned_event(y1, &ro, &rv);
        r->n_copied += ev.copied;
        s = emit(pl, ro.piece, ro.lead, rv.text, strlen(rv.text), &ev);
        revision_free(&rv);
        free(y1);
        free(ro.piece);
        if (s) return s;
        if (pl->len_stop) {
            r->stop = SA_PIPELINE_STOP_MAX_LENGTH;
            return SA_STATUS_OK;
        }
        if (ev.upstream_done) {
            r->stop = SA_PIPELINE_STOP_UPSTREAM_END;
            return SA_STATUS_OK;
        }
    }
}

/* The Aligner baseline: the whole upstream answer (or `given`, an answer written before),
 * rewritten once, emitted as one piece. */
static enum sa_status run_aligner(struct sa_pipeline *pl, const char *given) {
    struct sa_pipeline_result *r = pl->res;
    struct read_out ro = {0};
    enum sa_status s = SA_STATUS_OK;
    if (given) {
        r->upstream_answer = sa_join_strip(given, strlen(given));
        ro.finish = SA_UPSTREAM_FINISH_STOP;
    } else {
        char *prompt = NULL;
        size_t plen = 0;
        s = upstream_prompt(pl, &prompt, &plen);
        if (!s)
            s = read_upstream(pl, pl->up, prompt, plen, pl->p.max_length, pl->p.upstream_temp, pl->p.seed,
                              READ_COLLECT, &ro);
        free(prompt);
        if (s) return s;
        r->upstream_tokens += ro.n_tokens;
        r->upstream_prefill += ro.n_prefill;
        r->upstream_ms += ro.ms;
        r->upstream_answer = sa_join_strip(ro.piece, ro.len);
        free(ro.piece);
    }
    if (!r->upstream_answer) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct revision rv;
    if ((s = revise(pl, SA_PIPELINE_REQ_ANSWER, r->upstream_answer, NULL, 0, &rv))) return s;
    r->n_rounds = 1;
    if (!rv.text[0]) {
        revision_free(&rv);
        r->stop = SA_PIPELINE_STOP_ALIGNER_EMPTY;
        return SA_STATUS_OK;
    }
    struct sa_pipeline_sentence ev = aligned_event(r->upstream_answer, &ro, &rv);
    r->n_copied = ev.copied;
    s = emit(pl, "", 0, rv.text, strlen(rv.text), &ev);
    revision_free(&rv);
    if (!s)
        r->stop = pl->cb_stop    ? SA_PIPELINE_STOP_CANCELLED
                  : pl->len_stop ? SA_PIPELINE_STOP_MAX_LENGTH
                                 : SA_PIPELINE_STOP_DONE;
    return s;
}

static enum sa_status pipeline_run(struct sa_pipeline *pl, const char *question, const char *given,
                                   const struct sa_pipeline_callbacks *cb, struct sa_pipeline_result *result) {
    pl->cb = cb;
    pl->question = question;
    pl->res = result;
    pl->cb_stop = false;
    pl->len_stop = false;
    pl->t0 = sa_time_now();
    result->margin = result->logp_revision = result->logp_draft = NAN;
    sa_buf_clear(&pl->answer);
    sa_buf_clear(&pl->brk);
    enum sa_status s = sa_buf_append(&pl->answer, "", 0);
    if (!s && pl->al_smp) sa_sampler_reset(pl->al_smp);
    if (!s) {
        switch (pl->p.mode) {
        case SA_PIPELINE_STREAM:
        case SA_PIPELINE_CONTINUE: s = run_stream(pl); break;
        case SA_PIPELINE_ALIGNER: s = run_aligner(pl, given); break;
        case SA_PIPELINE_UPSTREAM: s = write_rest(pl, false); break;
        }
    }
    if (s == SA_STATUS_CANCELLED) result->stop = SA_PIPELINE_STOP_CANCELLED;
    result->total_ms = ms_since(pl->t0);
    result->answer = malloc(pl->answer.len + 1);
    if (result->answer) {
        memcpy(result->answer, pl->answer.data ? pl->answer.data : "", pl->answer.len);
        result->answer[pl->answer.len] = 0;
        result->len = pl->answer.len;
    } else if (!s) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    result->copy_rate = result->n_rounds ? (double)result->n_copied / result->n_rounds : 0.0;
    result->n_tokens = count_tokens(pl, pl->answer.data, pl->answer.len);
    if (result->n_tokens > 0 && result->total_ms > 0) {
        result->tokens_per_s = result->n_tokens / (result->total_ms / 1000.0);
        result->ms_per_token = result->total_ms / result->n_tokens;
    }
    pl->cb = NULL;
    pl->res = NULL;
    pl->question = NULL;
    return s;
}

static enum sa_status check_text(const char *what, const char *text) {
    if (sa_utf8_valid_prefix(text, strlen(text)) != strlen(text))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: the %s is not valid UTF-8", what);
    return SA_STATUS_OK;
}

enum sa_status sa_pipeline_run(struct sa_pipeline *pl, const char *question, const struct sa_pipeline_callbacks *cb,
                               struct sa_pipeline_result *result) {
    if (result) memset(result, 0, sizeof *result);
    if (!pl || !question || !result) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_run: NULL argument");
    if (!pl->up)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_run: the pipeline has no upstream "
                                                "(sa_pipeline_revise_answer revises a given answer)");
    enum sa_status s = check_text("question", question);
    return s ? s : pipeline_run(pl, question, NULL, cb, result);
}

enum sa_status sa_pipeline_revise_answer(struct sa_pipeline *pl, const char *question, const char *answer,
                                         const struct sa_pipeline_callbacks *cb, struct sa_pipeline_result *result) {
    if (result) memset(result, 0, sizeof *result);
    if (!pl || !question || !answer || !result)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_revise_answer: NULL argument");
    if (pl->p.mode != SA_PIPELINE_ALIGNER)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_revise_answer: the pipeline's mode is '%s', not 'aligner'",
                        sa_pipeline_mode_name(pl->p.mode));
    enum sa_status s = check_text("question", question);
    if (!s) s = check_text("answer", answer);
    return s ? s : pipeline_run(pl, question, answer, cb, result);
}

enum sa_status sa_pipeline_revise_sentence(struct sa_pipeline *pl, const char *question, const char *prefix,
                                           const char *last, struct sa_pipeline_result *result) {
    if (result) memset(result, 0, sizeof *result);
    if (!pl || !question || !prefix || !last || !result)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_revise_sentence: NULL argument");
    if (!pl->p.aligner_fn && !pl->al_ctx)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_revise_sentence: the pipeline has no aligner (mode '%s')",
                        sa_pipeline_mode_name(pl->p.mode));
    enum sa_status s = check_text("question", question);
    if (!s) s = check_text("prefix", prefix);
    if (!s) s = check_text("sentence", last);
    if (s) return s;
    pl->cb = NULL;
    pl->question = question;
    pl->res = result;
    pl->t0 = sa_time_now();
    result->margin = result->logp_revision = result->logp_draft = NAN;
    sa_buf_clear(&pl->answer);
    s = sa_buf_append(&pl->answer, prefix, strlen(prefix));
    if (!s && pl->al_smp) sa_sampler_reset(pl->al_smp);
    char *y1 = s ? NULL : sa_join_strip(last, strlen(last));
    if (!s && !y1) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct revision rv = {0};
    if (!s) s = revise(pl, SA_PIPELINE_REQ_SENTENCE, y1, NULL, 0, &rv);
    if (!s) {
        result->answer = rv.text;
        result->len = strlen(rv.text);
        rv.text = NULL;
        result->n_rounds = 1;
        result->n_copied = rv.copied;
        result->copy_rate = result->n_copied;
        result->stop = result->len ? SA_PIPELINE_STOP_DONE : SA_PIPELINE_STOP_ALIGNER_EMPTY;
        result->n_tokens = count_tokens(pl, result->answer, result->len);
    }
    revision_free(&rv);
    free(y1);
    result->total_ms = ms_since(pl->t0);
    pl->res = NULL;
    pl->question = NULL;
    return s;
}

/* ---- sampling from a prefix (issue 13: rollouts; the public side is prefix_sample.c) ---- */

/* The upstream continues `prefix` as a STREAM round (one sentence: READ_ONE, then appended by
 * emit as a copied revision would be) or as UPSTREAM mode writes the rest (READ_EMIT), so that
 * the text is exactly what the pipeline would append. */
enum sa_status sa_pipeline_sample_run(struct sa_pipeline *pl, const char *question, const char *prefix,
                                      const struct sa_pipeline_sample_params *sp,
                                      struct sa_pipeline_sample_result *out) {
    if (!pl->up) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_sample: the pipeline has no upstream");
    struct sa_pipeline_result res = {0};
    struct sa_pipeline_callbacks cb = {.cancel = sp->cancel, .user = sp->cancel_user};
    const float top_p = pl->p.upstream_top_p;
    pl->p.upstream_top_p = sp->top_p > 0 ? sp->top_p : 1.0f;
    pl->cb = &cb;
    pl->question = question;
    pl->res = &res;
    pl->cb_stop = pl->len_stop = false;
    pl->t0 = sa_time_now();
    sa_buf_clear(&pl->answer);
    enum sa_status s = sa_buf_append(&pl->answer, prefix, strlen(prefix));
    if (!s) s = sa_buf_append(&pl->answer, "", 0);
    const size_t base = pl->answer.len;
    int32_t left = s ? 0 : budget(pl);
    const int32_t cap = sp->max_tokens > 0 ? sp->max_tokens : sp->whole ? left : pl->p.max_sentence_tokens;
    if (left > cap) left = cap;
    struct read_out ro = {0};
    char *prompt = NULL;
    size_t plen = 0;
    if (!s && left > 0) {
        s = upstream_prompt(pl, &prompt, &plen);
        if (!s)
            s = read_upstream(pl, pl->up, prompt, plen, left, sp->temperature, sp->seed,
                              sp->whole ? READ_EMIT : READ_ONE, &ro);
        free(prompt);
    }
    if (!s && !sp->whole && ro.piece) {
        if (!(out->sentence = sa_join_strip(ro.piece, ro.len))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        struct sa_pipeline_sentence ev = {.aligned = true, .original = out->sentence};
        if (!s) s = emit(pl, ro.piece, ro.lead, out->sentence, strlen(out->sentence), &ev);
    }
    free(ro.piece);
    if (!s) { /* the text as appended, its separator kept */
        const size_t n = pl->answer.len - base;
        if (!(out->text = malloc(n + 1))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        else {
            memcpy(out->text, pl->answer.data + base, n);
            out->text[n] = 0;
        }
    }
    out->done = !pl->len_stop && ro.finish == SA_UPSTREAM_FINISH_STOP;
    out->cut = pl->len_stop || ro.finish == SA_UPSTREAM_FINISH_LENGTH || (!s && left <= 0);
    out->n_tokens = res.upstream_tokens + (sp->whole ? 0 : ro.n_tokens);
    out->n_prefill = res.upstream_prefill + (sp->whole ? 0 : ro.n_prefill);
    pl->p.upstream_top_p = top_p;
    pl->cb = NULL;
    pl->res = NULL;
    pl->question = NULL;
    return s;
}

/* ---- the aligner's prompt, for salign steer (issue 15) ---- */

enum sa_status sa_pipeline_aligner_prompt(const struct sa_pipeline *pl, const struct sa_pipeline_request *req,
                                          int32_t **ids, size_t *n) {
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!pl || !req || !ids || !n || !req->question || !req->last || (req->kind == SA_PIPELINE_REQ_SENTENCE && !req->prefix))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner prompt: NULL argument");
    if (!pl->al_ctx || !pl->al_tok) return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner prompt: the pipeline has no aligner model");
    if (req->kind != SA_PIPELINE_REQ_SENTENCE && req->kind != SA_PIPELINE_REQ_ANSWER)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner prompt: a sentence or answer request only");
    char *input = NULL, *prompt = NULL;
    size_t plen = 0;
    /* the same three steps as aligner_model_run */
    enum sa_status s = req->kind == SA_PIPELINE_REQ_ANSWER ? sa_aligner_baseline_input(req->question, req->last, &input)
                                                           : sa_aligner_input(req->question, req->prefix, req->last, &input);
    if (!s) s = render(pl->al_fmt, pl->al_tmpl, pl->aligner_system, input, NULL, &prompt, &plen);
    if (!s) s = sa_local_tokenize_prompt(pl->al_tok, prompt, plen, ids, n);
    free(input);
    free(prompt);
    return s;
}
