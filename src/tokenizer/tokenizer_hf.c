/* tokenizer_hf.c: loading a Hugging Face tokenizer.json (+ tokenizer_config.json).
 * Supported: model BPE (vocab, merges as "a b" or ["a","b"], byte_fallback, ignore_merges,
 * unk_token); normalizers NFC, Replace(' ' -> U+2581), Prepend(U+2581), Sequence;
 * pre-tokenizers ByteLevel (use_regex, add_prefix_space), Split (Regex/String pattern,
 * behavior, invert), Digits (individual_digits), Metaspace, Sequence; post-processor
 * TemplateProcessing (BOS/EOS); added tokens (special, lstrip, rstrip).
 * Format: huggingface/tokenizers (tokenizers/src/tokenizer/serialization.rs). */
#include "tokenizer/tokenizer_impl.h"

#include "core/core_impl.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum sa_status bad(const char *what) {
    return sa_error(SA_STATUS_BAD_JSON, "tokenizer.json: %s", what);
}

static bool jbool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A token given as "text" or {"content": "text"} (tokenizer_config.json). */
static const char *token_name(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return jstr(v, "content");
    return NULL;
}

static const char GPT2_RE[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char SPM_SPACE[] = "\xE2\x96\x81";

static enum sa_status add_normalizer(struct sa_tokenizer *t, const cJSON *n, int depth) {
    if (!n || cJSON_IsNull(n)) return SA_STATUS_OK;
    const char *type = jstr(n, "type");
    if (!type || depth > 8) return bad("normalizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *x;
        cJSON_ArrayForEach(x, a) {
            enum sa_status st = add_normalizer(t, x, depth + 1);
            if (st) return st;
        }
        return SA_STATUS_OK;
    }
    if (!strcmp(type, "NFC")) {
        t->nfc = true;
        return SA_STATUS_OK;
    }
    if (!strcmp(type, "Replace")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *from = jstr(p, "String"), *to = jstr(n, "content");
        if (from && to && !strcmp(from, " ") && !strcmp(to, SPM_SPACE)) {
            t->escape_spaces = true;
            return SA_STATUS_OK;
        }
    }
    if (!strcmp(type, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (p && !strcmp(p, SPM_SPACE)) {
            t->add_space_prefix = true;
            return SA_STATUS_OK;
        }
    }
    return sa_error(SA_STATUS_UNSUPPORTED, "tokenizer.json: normalizer '%s' (with these options) is not supported",
                    type);
}

static enum sa_status add_pretok(struct sa_tokenizer *t, const cJSON *p, int depth) {
    if (!p || cJSON_IsNull(p)) return SA_STATUS_OK;
    const char *type = jstr(p, "type");
    if (!type || depth > 8) return bad("pre_tokenizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *x;
        cJSON_ArrayForEach(x, a) {
            enum sa_status st = add_pretok(t, x, depth + 1);
            if (st) return st;
        }
        return SA_STATUS_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        t->byte_level = true;
        if (jbool(p, "add_prefix_space", false)) t->add_prefix_space = true;
        if (jbool(p, "use_regex", true)) return sa_bpe_pretok_add(t, GPT2_RE, false, SA_SPLIT_ISOLATED, false);
        return SA_STATUS_OK;
    }
    if (!strcmp(type, "Digits")) {
        bool each = jbool(p, "individual_digits", false);
        return sa_bpe_pretok_add(t, each ? "\\p{N}" : "\\p{N}+", false, SA_SPLIT_ISOLATED, false);
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
        if (!re && !lit) return bad("Split without a pattern");
        const char *b = jstr(p, "behavior");
        enum sa_split_behavior beh;
        if (!b || !strcmp(b, "Isolated")) beh = SA_SPLIT_ISOLATED;
        else if (!strcmp(b, "Removed")) beh = SA_SPLIT_REMOVED;
        else if (!strcmp(b, "MergedWithPrevious")) beh = SA_SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) beh = SA_SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) beh = SA_SPLIT_CONTIGUOUS;
        else return sa_error(SA_STATUS_UNSUPPORTED, "tokenizer.json: Split behavior '%s'", b);
        return sa_bpe_pretok_add(t, re ? re : lit, re == NULL, beh, jbool(p, "invert", false));
    }
    if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(p, "replacement");
        if (r && strcmp(r, SPM_SPACE)) return sa_error(SA_STATUS_UNSUPPORTED, "tokenizer.json: Metaspace replacement");
        t->escape_spaces = true;
        const char *scheme = jstr(p, "prepend_scheme");
        if ((scheme && strcmp(scheme, "never")) || (!scheme && jbool(p, "add_prefix_space", true)))
            t->add_space_prefix = true;
        if (jbool(p, "split", true)) return sa_bpe_pretok_add(t, SPM_SPACE, true, SA_SPLIT_MERGED_NEXT, false);
        return SA_STATUS_OK;
    }
    return sa_error(SA_STATUS_UNSUPPORTED, "tokenizer.json: pre_tokenizer '%s' is not supported", type);
}

/* TemplateProcessing "single": a SpecialToken first means BOS, last means EOS. */
static void post_processor(struct sa_tokenizer *t, const cJSON *p, int depth) {
    const char *type = jstr(p, "type");
    if (!type || depth > 8) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "processors"), *x;
        cJSON_ArrayForEach(x, a) post_processor(t, x, depth + 1);
        return;
    }
    if (strcmp(type, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    int n = cJSON_GetArraySize(single);
    for (int end = 0; end < 2 && n > 0; end++) {
        const cJSON *item = cJSON_GetArrayItem(single, end ? n - 1 : 0);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const char *name = jstr(st, "id");
        if (!name) continue;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, name), "ids");
        const cJSON *id0 = cJSON_GetArrayItem(ids, 0);
        int32_t id = cJSON_IsNumber(id0) ? (int32_t)id0->valuedouble : sa_tok_lookup(t, name, strlen(name));
        if (id < 0 || id >= t->n_vocab) continue;
        if (end) {
            t->eos = t->eos >= 0 ? t->eos : id;
            t->add_eos = true;
        } else {
            t->bos = id;
            t->add_bos = true;
        }
    }
}

static int32_t config_id(struct sa_tokenizer *t, const cJSON *cfg, const char *key) {
    const char *name = token_name(cJSON_GetObjectItemCaseSensitive(cfg, key));
    return name ? sa_tok_lookup(t, name, strlen(name)) : -1;
}

static enum sa_status load(struct sa_tokenizer **out, const cJSON *j, const cJSON *cfg) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const char *mtype = jstr(model, "type");
    if (!model) return bad("no \"model\"");
    if (mtype && strcmp(mtype, "BPE"))
        return sa_error(SA_STATUS_UNSUPPORTED, "tokenizer.json: model type '%s' is not supported (BPE is)", mtype);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    if (!cJSON_IsObject(vocab)) return bad("model.vocab is not an object");

    /* n_vocab: one past the largest id of the vocabulary and the added tokens */
    double max_id = -1;
    const cJSON *x;
    cJSON_ArrayForEach(x, vocab) {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= (1 << 26)) return bad("bad vocab id");
        if (x->valuedouble > max_id) max_id = x->valuedouble;
    }
    cJSON_ArrayForEach(x, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 26) || !jstr(x, "content"))
            return bad("bad added token");
        if (id->valuedouble > max_id) max_id = id->valuedouble;
    }
    if (max_id < 0) return bad("empty vocabulary");
    int32_t n = (int32_t)max_id + 1;
    struct sa_tokenizer *t;
    enum sa_status st = sa_tok_alloc(n, &t);
    if (st) return st;
    *out = t;
    const char **ptr = calloc((size_t)n, sizeof *ptr);
    uint32_t *len = calloc((size_t)n, sizeof *len);
    if (!ptr || !len) {
        free(ptr);
        free(len);
        return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
    }
    for (int32_t i = 0; i < n; i++) t->attr[i] = SA_TOKEN_UNUSED;
    cJSON_ArrayForEach(x, vocab) {
        int32_t id = (int32_t)x->valuedouble;
        ptr[id] = x->string;
        len[id] = (uint32_t)strlen(x->string);
        t->attr[id] = SA_TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(x, added) {
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(x, "id")->valuedouble;
        ptr[id] = jstr(x, "content");
        len[id] = (uint32_t)strlen(ptr[id]);
        int a = jbool(x, "special", false) ? SA_TOKEN_CONTROL : SA_TOKEN_USER_DEFINED;
        if (jbool(x, "lstrip", false)) a |= SA_TOKEN_LSTRIP;
        if (jbool(x, "rstrip", false)) a |= SA_TOKEN_RSTRIP;
        t->attr[id] = a;
    }
    st = sa_tok_set_strings(t, ptr, len);
    free(ptr);
    free(len);
    if (st) return st;

    t->hf_rules = true;
    t->byte_fallback = jbool(model, "byte_fallback", false);
    t->ignore_merges = jbool(model, "ignore_merges", false);
    if ((st = add_normalizer(t, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), 0))) return st;
    if ((st = add_pretok(t, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), 0))) return st;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(j, "decoder");
    if (!t->byte_level && dec) {
        /* a ByteLevel decoder without a ByteLevel pre-tokenizer still means byte-level pieces */
        char *s = cJSON_PrintUnformatted(dec);
        if (s && strstr(s, "\"ByteLevel\"")) t->byte_level = true;
        free(s);
    }
    t->kind = t->byte_level ? SA_TOKENIZER_BPE : SA_TOKENIZER_SPM;
    snprintf(t->pre, sizeof t->pre, "%s", t->byte_level ? "tokenizer.json" : "");
    if (t->byte_level && (t->escape_spaces || t->add_space_prefix))
        return sa_error(SA_STATUS_UNSUPPORTED, "tokenizer.json: ByteLevel mixed with Metaspace/U+2581 normalizers");

    /* merges need the vocabulary hash: sa_tok_finish builds it; build early by finishing twice */
    if ((st = sa_tok_finish(t))) return st;
    int nm = cJSON_GetArraySize(merges);
    if ((st = sa_tok_merges_init(t, (uint64_t)(nm > 0 ? nm : 1)))) return st;
    int r = 0;
    cJSON_ArrayForEach(x, merges) {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if (cJSON_IsString(x)) {
            const char *s = x->valuestring, *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (!sp) return bad("merge without a space");
            a = s;
            la = (size_t)(sp - s);
            b = sp + 1;
            lb = strlen(b);
        } else if (cJSON_GetArraySize(x) == 2 && cJSON_IsString(cJSON_GetArrayItem(x, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(x, 1))) {
            a = cJSON_GetArrayItem(x, 0)->valuestring;
            b = cJSON_GetArrayItem(x, 1)->valuestring;
            la = strlen(a);
            lb = strlen(b);
        } else {
            return bad("merge is neither \"a b\" nor [\"a\", \"b\"]");
        }
        int32_t ia = sa_tok_lookup(t, a, la), ib = sa_tok_lookup(t, b, lb);
        char *cat = malloc(la + lb + 1);
        if (!cat) return sa_error(SA_STATUS_NO_MEMORY, "tokenizer: out of memory");
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb);
        int32_t m = sa_tok_lookup(t, cat, la + lb);
        free(cat);
        if (ia < 0 || ib < 0 || m < 0)
            return sa_error(SA_STATUS_BAD_JSON, "tokenizer.json: merge %d refers to a piece outside the vocabulary", r);
        if ((st = sa_tok_add_merge(t, ia, ib, r, m))) return st;
        r++;
    }

    const char *unk = jstr(model, "unk_token");
    if (unk) t->unk = sa_tok_lookup(t, unk, strlen(unk));
    post_processor(t, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), 0);
    if (cfg) {
        int32_t id;
        if ((id = config_id(t, cfg, "bos_token")) >= 0) t->bos = id;
        if ((id = config_id(t, cfg, "eos_token")) >= 0) t->eos = id;
        if ((id = config_id(t, cfg, "pad_token")) >= 0) t->pad = id;
        if ((id = config_id(t, cfg, "unk_token")) >= 0) t->unk = id;
        t->add_bos = jbool(cfg, "add_bos_token", t->add_bos);
        t->add_eos = jbool(cfg, "add_eos_token", t->add_eos);
    } else if (t->eos < 0) {
        static const char *const eos_names[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>"};
        for (size_t i = 0; i < SA_ARRAY_LEN(eos_names) && t->eos < 0; i++)
            t->eos = sa_tok_lookup(t, eos_names[i], strlen(eos_names[i]));
    }
    return sa_tok_finish(t); /* again: EOT/EOG with the final ids, byte attributes */
}

enum sa_status sa_tokenizer_load_hf_memory(const char *json, size_t json_len, const char *config_json,
                                           size_t config_len, struct sa_tokenizer **out) {
    *out = NULL;
    if (!json) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_tokenizer_load_hf_memory: NULL json");
    cJSON *j = cJSON_ParseWithLength(json, json_len);
    if (!j) return sa_error(SA_STATUS_BAD_JSON, "tokenizer.json: not valid JSON");
    cJSON *cfg = config_json ? cJSON_ParseWithLength(config_json, config_len) : NULL;
    enum sa_status st;
    if (config_json && !cfg) {
        st = sa_error(SA_STATUS_BAD_JSON, "tokenizer_config.json: not valid JSON");
    } else {
        struct sa_tokenizer *t = NULL;
        st = load(&t, j, cfg);
        if (st) sa_tokenizer_free(t);
        else *out = t;
    }
    cJSON_Delete(cfg);
    cJSON_Delete(j);
    return st;
}

enum sa_status sa_tokenizer_load_hf(const char *tokenizer_json, const char *tokenizer_config_json,
                                    struct sa_tokenizer **out) {
    *out = NULL;
    if (!tokenizer_json) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_tokenizer_load_hf: NULL path");
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    /* sa_read_file's messages name the file; only the parser's need the name added */
    enum sa_status st = sa_read_file(tokenizer_json, (size_t)1 << 30, &a, &la);
    if (!st && tokenizer_config_json) st = sa_read_file(tokenizer_config_json, (size_t)1 << 26, &b, &lb);
    if (!st && (st = sa_tokenizer_load_hf_memory(a, la, b, lb, out))) st = sa_error_wrap(st, "%s", tokenizer_json);
    free(a);
    free(b);
    return st;
}
