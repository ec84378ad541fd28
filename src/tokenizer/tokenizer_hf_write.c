/* tokenizer_hf_write.c: writes a tokenizer as Hugging Face tokenizer.json +
 * tokenizer_config.json, the inverse of tokenizer_hf.c. Byte-level BPE: the vocabulary,
 * the merges in rank order, the pre-tokenizer steps (Digits / Split / ByteLevel) and a
 * ByteLevel decoder. SentencePiece-style BPE (Gemma, Llama 2 GGUFs carry scores, not
 * merges): a BPE model with byte fallback whose merges are every split of a vocabulary
 * piece into two pieces, ranked by the piece's score (transformers' SpmConverter does the
 * same), with the U+2581 normalizer and decoder. Format: huggingface/tokenizers
 * (tokenizers/src/tokenizer/serialization.rs). */
#include "tokenizer/tokenizer_impl.h"

#include "core/core_impl.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char GPT2_RE[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- a JSON text writer that keeps the first error ---- */
struct jw {
    struct sa_buf b;
    enum sa_status st;
};

static void raw(struct jw *w, const char *s) {
    if (!w->st) w->st = sa_buf_puts(&w->b, s);
}

static void rawf(struct jw *w, const char *fmt, ...) SA_PRINTF(2, 3);
static void rawf(struct jw *w, const char *fmt, ...) {
    if (w->st) return;
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    SA_ASSERT(n >= 0 && (size_t)n < sizeof tmp); /* only short fixed formats are used */
    w->st = sa_buf_append(&w->b, tmp, (size_t)n);
}

/* A JSON string of n bytes of valid UTF-8 (checked by the caller); non-ASCII stays raw. */
static void jstr(struct jw *w, const char *s, size_t n) {
    if (w->st) return;
    w->st = sa_buf_append(&w->b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n && !w->st; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (i > run) w->st = sa_buf_append(&w->b, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        default: snprintf(esc, sizeof esc, "\\u%04x", c); break;
        }
        if (!w->st) w->st = sa_buf_puts(&w->b, esc);
    }
    if (!w->st && n > run) w->st = sa_buf_append(&w->b, s + run, n - run);
    if (!w->st) w->st = sa_buf_append(&w->b, "\"", 1);
}

static void jcstr(struct jw *w, const char *s) { jstr(w, s, strlen(s)); }

static void jtok(struct jw *w, const struct sa_tokenizer *t, int32_t id) {
    jstr(w, t->text[id], t->text_len[id]);
}

/* ---- what is written ---- */

/* The token is written under its own id: it has text (or is not a hole) and is the first
 * id with that text (tokenizer.json maps each string to one id; a later duplicate cannot be
 * represented and becomes a hole). */
static bool written(const struct sa_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return false;
    if (!t->text_len[id] && (t->attr[id] & SA_TOKEN_UNUSED)) return false;
    return sa_tok_lookup(t, t->text[id], t->text_len[id]) == id;
}

static bool is_added(const struct sa_tokenizer *t, int32_t id) {
    return (t->attr[id] & (SA_TOKEN_CONTROL | SA_TOKEN_USER_DEFINED | SA_TOKEN_UNKNOWN)) && t->text_len[id] &&
           written(t, id);
}

static enum sa_status check_utf8(const struct sa_tokenizer *t) {
    int32_t dups = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!written(t, id)) {
            dups += t->text_len[id] > 0;
            continue;
        }
        if (sa_utf8_valid_prefix(t->text[id], t->text_len[id]) != t->text_len[id])
            return sa_error(SA_STATUS_UNSUPPORTED,
                            "tokenizer.json: token %d is not valid UTF-8, which JSON cannot hold", (int)id);
    }
    if (dups)
        sa_log(SA_LOG_WARN, "tokenizer.json: %d token(s) repeat an earlier token's text and are left out", (int)dups);
    return SA_STATUS_OK;
}

/* ---- merges ---- */
struct merge {
    int32_t left, right, merged;
    float score;   /* SPM: the merged piece's score */
    int32_t rank;  /* BPE: rank; SPM: byte length of the left piece */
};

static int cmp_rank(const void *a, const void *b) {
    const struct merge *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* SPM order: higher score first (SentencePiece merges the best-scoring pair), then by the
 * merged id, then the longer left piece (transformers' generate_merges tie order). */
static int cmp_score(const void *a, const void *b) {
    const struct merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->merged != y->merged) return x->merged < y->merged ? -1 : 1;
    return (x->rank < y->rank) - (x->rank > y->rank);
}

/* The merges of a BPE model, in rank order (holes and duplicates dropped). */
static enum sa_status merges_from_map(const struct sa_tokenizer *t, struct merge **out, size_t *n_out) {
    struct merge *v = malloc(sizeof *v * (size_t)(t->n_merges > 0 ? t->n_merges : 1));
    if (!v) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer.json: out of memory");
    size_t n = 0;
    for (uint64_t i = 0; i <= t->merge_mask && (int32_t)n < t->n_merges; i++) {
        const struct sa_merge_slot *s = &t->merges[i];
        if (s->key == UINT64_MAX) continue;
        int32_t l = (int32_t)(uint32_t)(s->key >> 32), r = (int32_t)(uint32_t)s->key;
        if (!written(t, l) || !written(t, r) || !written(t, s->merged)) continue;
        v[n++] = (struct merge){l, r, s->merged, 0.0f, s->rank};
    }
    qsort(v, n, sizeof *v, cmp_rank);
    *out = v;
    *n_out = n;
    return SA_STATUS_OK;
}

/* SPM scores -> merges: every split of a piece into two vocabulary pieces at a character
 * boundary is a merge. Merging by these ranks reproduces the SPM algorithm (best score
 * first, leftmost on ties) whenever no two pieces share a score. */
static enum sa_status merges_from_scores(const struct sa_tokenizer *t, struct merge **out, size_t *n_out) {
    size_t n = 0, cap = 1024;
    struct merge *v = malloc(cap * sizeof *v);
    if (!v) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer.json: out of memory");
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint32_t len = t->text_len[id];
        if (len < 2 || !written(t, id)) continue;
        const char *s = t->text[id];
        for (uint32_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* inside a character */
            int32_t l = sa_tok_lookup(t, s, k);
            if (l < 0) continue;
            int32_t r = sa_tok_lookup(t, s + k, len - k);
            if (r < 0) continue;
            if (n == cap) {
                struct merge *p = realloc(v, 2 * cap * sizeof *v);
                if (!p) {
                    free(v);
                    return sa_error(SA_STATUS_NO_MEMORY, "tokenizer.json: out of memory");
                }
                v = p;
                cap *= 2;
            }
            v[n++] = (struct merge){l, r, id, t->scores[id], (int32_t)k};
        }
    }
    qsort(v, n, sizeof *v, cmp_score);
    *out = v;
    *n_out = n;
    return SA_STATUS_OK;
}

/* ---- the parts of tokenizer.json ---- */

static void write_added(struct jw *w, const struct sa_tokenizer *t) {
    raw(w, "\"added_tokens\":[");
    bool first = true;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!is_added(t, id)) continue;
        int a = t->attr[id];
        rawf(w, "%s\n{\"id\":%d,\"content\":", first ? "" : ",", (int)id);
        jtok(w, t, id);
        /* normalized false: matched in the raw text before normalisation, as llama.cpp does */
        rawf(w, ",\"single_word\":false,\"lstrip\":%s,\"rstrip\":%s,\"normalized\":false,\"special\":%s}",
             a & SA_TOKEN_LSTRIP ? "true" : "false", a & SA_TOKEN_RSTRIP ? "true" : "false",
             a & (SA_TOKEN_CONTROL | SA_TOKEN_UNKNOWN) ? "true" : "false");
        first = false;
    }
    raw(w, "],\n");
}

static void write_normalizer(struct jw *w, const struct sa_tokenizer *t) {
    const char *parts[3];
    int n = 0;
    if (t->nfc) parts[n++] = "{\"type\":\"NFC\"}";
    if (t->add_space_prefix) parts[n++] = "{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"}";
    if (t->escape_spaces)
        parts[n++] = "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}";
    raw(w, "\"normalizer\":");
    if (!n) raw(w, "null");
    if (n > 1) raw(w, "{\"type\":\"Sequence\",\"normalizers\":[");
    for (int i = 0; i < n; i++) {
        if (i) raw(w, ",");
        raw(w, parts[i]);
    }
    if (n > 1) raw(w, "]}");
    raw(w, ",\n");
}

static const char *behavior_name(enum sa_split_behavior b) {
    switch (b) {
    case SA_SPLIT_REMOVED: return "Removed";
    case SA_SPLIT_MERGED_PREV: return "MergedWithPrevious";
    case SA_SPLIT_MERGED_NEXT: return "MergedWithNext";
    case SA_SPLIT_CONTIGUOUS: return "Contiguous";
    case SA_SPLIT_ISOLATED: break;
    }
    return "Isolated";
}

static bool plain_regex(const struct sa_pretok_step *s, const char *re) {
    return !s->literal && !s->invert && s->behavior == SA_SPLIT_ISOLATED && !strcmp(s->pattern, re);
}

static void write_step(struct jw *w, const struct sa_pretok_step *s) {
    /* Digits: tokenizers splits on char::is_numeric, the Unicode N categories = \p{N} */
    if (plain_regex(s, "\\p{N}") || plain_regex(s, "\\p{N}+")) {
        rawf(w, "{\"type\":\"Digits\",\"individual_digits\":%s}", plain_regex(s, "\\p{N}") ? "true" : "false");
        return;
    }
    raw(w, s->literal ? "{\"type\":\"Split\",\"pattern\":{\"String\":" : "{\"type\":\"Split\",\"pattern\":{\"Regex\":");
    jcstr(w, s->pattern);
    rawf(w, "},\"behavior\":\"%s\",\"invert\":%s}", behavior_name(s->behavior), s->invert ? "true" : "false");
}

static void write_pretok(struct jw *w, const struct sa_tokenizer *t) {
    raw(w, "\"pre_tokenizer\":");
    int n = t->n_steps;
    /* ByteLevel's own regex is GPT-2's, split Isolated: a last step like that is ByteLevel */
    bool bl_regex = t->byte_level && n > 0 && plain_regex(&t->steps[n - 1], GPT2_RE);
    int n_split = bl_regex ? n - 1 : n;
    int items = n_split + (t->byte_level ? 1 : 0);
    if (!items) {
        raw(w, "null,\n");
        return;
    }
    if (items > 1) raw(w, "{\"type\":\"Sequence\",\"pretokenizers\":[");
    for (int i = 0; i < n_split; i++) {
        if (i) raw(w, ",");
        write_step(w, &t->steps[i]);
    }
    if (t->byte_level)
        rawf(w, "%s{\"type\":\"ByteLevel\",\"add_prefix_space\":%s,\"trim_offsets\":true,\"use_regex\":%s}",
             n_split ? "," : "", t->add_prefix_space ? "true" : "false", bl_regex ? "true" : "false");
    if (items > 1) raw(w, "]}");
    raw(w, ",\n");
}

static void special_item(struct jw *w, const struct sa_tokenizer *t, int32_t id, int type_id) {
    raw(w, "{\"SpecialToken\":{\"id\":");
    jtok(w, t, id);
    rawf(w, ",\"type_id\":%d}}", type_id);
}

static void special_entry(struct jw *w, const struct sa_tokenizer *t, int32_t id) {
    jtok(w, t, id);
    raw(w, ":{\"id\":");
    jtok(w, t, id);
    rawf(w, ",\"ids\":[%d],\"tokens\":[", (int)id);
    jtok(w, t, id);
    raw(w, "]}");
}

/* TemplateProcessing with BOS/EOS (transformers' LlamaTokenizerFast.update_post_processor
 * layout); byte-level models also get the ByteLevel processor (offsets only). */
static void write_post(struct jw *w, const struct sa_tokenizer *t) {
    bool bos = t->add_bos && written(t, t->bos), eos = t->add_eos && written(t, t->eos);
    static const char byte_level[] = "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,"
                                     "\"use_regex\":true}";
    raw(w, "\"post_processor\":");
    if (!bos && !eos) {
        raw(w, t->byte_level ? byte_level : "null");
        raw(w, ",\n");
        return;
    }
    if (t->byte_level) {
        raw(w, "{\"type\":\"Sequence\",\"processors\":[");
        raw(w, byte_level);
        raw(w, ",");
    }
    raw(w, "{\"type\":\"TemplateProcessing\",\"single\":[");
    if (bos) {
        special_item(w, t, t->bos, 0);
        raw(w, ",");
    }
    raw(w, "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}");
    if (eos) {
        raw(w, ",");
        special_item(w, t, t->eos, 0);
    }
    raw(w, "],\"pair\":[");
    if (bos) {
        special_item(w, t, t->bos, 0);
        raw(w, ",");
    }
    raw(w, "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},");
    if (eos) {
        special_item(w, t, t->eos, 0);
        raw(w, ",");
    }
    if (bos) {
        special_item(w, t, t->bos, 1);
        raw(w, ",");
    }
    raw(w, "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}");
    if (eos) {
        raw(w, ",");
        special_item(w, t, t->eos, 1);
    }
    raw(w, "],\"special_tokens\":{");
    if (bos) special_entry(w, t, t->bos);
    if (eos && !(bos && t->eos == t->bos)) {
        if (bos) raw(w, ",");
        special_entry(w, t, t->eos);
    }
    raw(w, "}}");
    if (t->byte_level) raw(w, "]}");
    raw(w, ",\n");
}

static void write_decoder(struct jw *w, const struct sa_tokenizer *t) {
    raw(w, "\"decoder\":");
    if (t->byte_level) {
        raw(w, "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},\n");
        return;
    }
    raw(w, "{\"type\":\"Sequence\",\"decoders\":[");
    if (t->escape_spaces)
        raw(w, "{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},\"content\":\" \"},");
    raw(w, "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}");
    if (t->add_space_prefix) raw(w, ",{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}");
    raw(w, "]},\n");
}

static enum sa_status write_model(struct jw *w, const struct sa_tokenizer *t) {
    bool spm = !t->byte_level;
    bool has_bytes = false;
    for (int b = 0; b < 256 && spm && !has_bytes; b++) has_bytes = t->byte_id[b] >= 0;
    raw(w, "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":");
    if (spm && written(t, t->unk)) jtok(w, t, t->unk);
    else raw(w, "null");
    /* fuse_unk false: one unknown token per unknown character, as the SPM encoder emits */
    rawf(w, ",\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
            "\"byte_fallback\":%s,\"ignore_merges\":%s,\n\"vocab\":{",
         spm && (has_bytes || t->byte_fallback) ? "true" : "false", t->ignore_merges ? "true" : "false");
    bool first = true;
    for (int32_t id = 0; id < t->n_vocab && !w->st; id++) {
        if (!written(t, id)) continue;
        if (!first) raw(w, ",");
        raw(w, "\n");
        jtok(w, t, id);
        rawf(w, ":%d", (int)id);
        first = false;
    }
    raw(w, "},\n\"merges\":[");
    struct merge *m = NULL;
    size_t n = 0;
    enum sa_status st = SA_STATUS_OK;
    if (t->merges && t->n_merges > 0) st = merges_from_map(t, &m, &n);
    else if (spm && t->scores) st = merges_from_scores(t, &m, &n);
    if (st) return st;
    for (size_t i = 0; i < n && !w->st; i++) {
        raw(w, i ? ",\n[" : "\n[");
        jtok(w, t, m[i].left);
        raw(w, ",");
        jtok(w, t, m[i].right);
        raw(w, "]");
    }
    free(m);
    raw(w, "]}}\n");
    return SA_STATUS_OK;
}

/* ---- tokenizer_config.json ---- */

/* max_position_embeddings of dir/config.json, or -1. */
static double max_positions(const char *dir) {
    char path[4096], *text = NULL;
    size_t len = 0;
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path || !sa_file_exists(path)) return -1;
    if (sa_read_file(path, 16u << 20, &text, &len)) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "max_position_embeddings");
    double r = cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : -1;
    cJSON_Delete(j);
    return r;
}

static void add_token(cJSON *o, const char *key, const struct sa_tokenizer *t, int32_t id) {
    if (!written(t, id)) return;
    char *s = malloc(t->text_len[id] + 1);
    if (!s) return; /* the caller's print fails on the same shortage */
    memcpy(s, t->text[id], t->text_len[id] + 1);
    cJSON_AddStringToObject(o, key, s);
    free(s);
}

static enum sa_status write_config(const struct sa_tokenizer *t, const char *dir, const char *path,
                                   const char *chat_template) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer_config.json: out of memory");
    cJSON_AddBoolToObject(o, "add_bos_token", t->add_bos && written(t, t->bos));
    cJSON_AddBoolToObject(o, "add_eos_token", t->add_eos && written(t, t->eos));
    add_token(o, "bos_token", t, t->bos);
    add_token(o, "eos_token", t, t->eos);
    add_token(o, "pad_token", t, t->pad);
    add_token(o, "unk_token", t, t->unk);
    if (chat_template) cJSON_AddStringToObject(o, "chat_template", chat_template);
    double mp = max_positions(dir);
    if (mp > 0) cJSON_AddNumberToObject(o, "model_max_length", mp);
    cJSON_AddBoolToObject(o, "clean_up_tokenization_spaces", false);
    cJSON_AddStringToObject(o, "tokenizer_class", "PreTrainedTokenizerFast");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer_config.json: out of memory");
    struct sa_buf b;
    sa_buf_init(&b, 0);
    enum sa_status st = sa_buf_puts(&b, text);
    free(text);
    if (!st) st = sa_buf_append(&b, "\n", 1);
    if (!st) st = sa_write_file_atomic(path, b.data, b.len);
    sa_buf_free(&b);
    return st;
}

enum sa_status sa_tokenizer_save_hf(const struct sa_tokenizer *t, const char *dir, const char *chat_template) {
    if (!t || !dir) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_tokenizer_save_hf: NULL argument");
    size_t dl = strlen(dir);
    char *path = malloc(dl + 32);
    if (!path) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    enum sa_status st = check_utf8(t);
    struct jw w = {.st = SA_STATUS_OK};
    sa_buf_init(&w.b, 0);
    if (!st) {
        raw(&w, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\n");
        write_added(&w, t);
        write_normalizer(&w, t);
        write_pretok(&w, t);
        write_post(&w, t);
        write_decoder(&w, t);
        st = write_model(&w, t);
        if (!st) st = w.st;
    }
    if (!st) {
        snprintf(path, dl + 32, "%s/tokenizer.json", dir);
        st = sa_write_file_atomic(path, w.b.data, w.b.len);
    }
    sa_buf_free(&w.b);
    if (!st) {
        snprintf(path, dl + 32, "%s/tokenizer_config.json", dir);
        st = write_config(t, dir, path, chat_template);
    }
    if (st) st = sa_error_wrap(st, "writing the tokenizer to %s", dir);
    free(path);
    return st;
}
