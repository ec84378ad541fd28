/* judge.c: the pairwise judge of `salign eval judge`: judge prompt files, the engine
 * interface (a local or remote model through sa/upstream.h, or a test double), the answer
 * cache (append-only JSONL keyed by a hash of what the judge saw) and the run that asks
 * each pair in both orders, retries unparsable answers and aggregates the win rate.
 * Cache invariants and failure behaviour: docs/EVAL.md ("Judge cache"). */
#define _GNU_SOURCE
#include "sa/chat.h"
#include "sa/eval.h"
#include "sa/upstream.h"

#include "core/core_impl.h"
#include "core/prompt_impl.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* ---- aspects ------------------------------------------------------------------------- */

static const char *const aspect_names[] = {"helpful", "harmless", "math"};

const char *sa_judge_aspect_name(enum sa_judge_aspect a) {
    return (unsigned)a < SA_ARRAY_LEN(aspect_names) ? aspect_names[a] : "unknown";
}

enum sa_status sa_judge_aspect_from_name(const char *name, enum sa_judge_aspect *out) {
    for (size_t i = 0; name && i < SA_ARRAY_LEN(aspect_names); i++)
        if (!strcmp(name, aspect_names[i])) {
            *out = (enum sa_judge_aspect)i;
            return SA_STATUS_OK;
        }
    return sa_error(SA_STATUS_BAD_ARGUMENT, "unknown judge aspect '%s' (helpful, harmless, math)", name ? name : "(null)");
}

/* ---- prompt files ------------------------------------------------------------------- */

/* The judge's prompt is a prompt template (src/core/prompt_file.c) with its placeholders. */
struct sa_judge_prompt {
    struct sa_prompt_template t;
};

static const char *const judge_required[] = {"{question}", "{answer_a}", "{answer_b}"};

void sa_judge_prompt_free(struct sa_judge_prompt *p) {
    if (!p) return;
    sa_prompt_template_free(&p->t);
    free(p);
}

/* Parses (text != NULL) or loads (path) a judge prompt. */
static enum sa_status judge_prompt_new(const char *text, size_t len, const char *name, const char *path,
                                       struct sa_judge_prompt **out) {
    *out = NULL;
    struct sa_judge_prompt *p = calloc(1, sizeof *p);
    if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    const size_t n_req = SA_ARRAY_LEN(judge_required);
    enum sa_status s = text ? sa_prompt_template_parse(text, len, name, judge_required, n_req, &p->t)
                            : sa_prompt_template_load(path, "judge prompt", judge_required, n_req, &p->t);
    if (s) {
        sa_judge_prompt_free(p);
        return s;
    }
    *out = p;
    return SA_STATUS_OK;
}

enum sa_status sa_judge_prompt_parse(const char *text, size_t len, const char *name, struct sa_judge_prompt **out) {
    *out = NULL;
    if (!text) return sa_error(SA_STATUS_BAD_ARGUMENT, "judge prompt: NULL text");
    return judge_prompt_new(text, len, name ? name : "judge prompt", NULL, out);
}

enum sa_status sa_judge_prompt_load(const char *path, struct sa_judge_prompt **out) {
    return judge_prompt_new(NULL, 0, NULL, path, out);
}

const char *sa_judge_prompt_system(const struct sa_judge_prompt *p) {
    return p->t.system;
}

bool sa_judge_prompt_needs_reference(const struct sa_judge_prompt *p) {
    return p->t.needs_reference;
}

enum sa_status sa_judge_prompt_render(const struct sa_judge_prompt *p, const char *question, const char *answer_a,
                                      const char *answer_b, const char *reference, char **out) {
    *out = NULL;
    if (!p || !question || !answer_a || !answer_b)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "judge prompt: a NULL question or answer");
    if (p->t.needs_reference && !reference)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "the judge prompt uses {reference}: give a reference solution for every pair");
    const char *const names[] = {"{question}", "{answer_a}", "{answer_b}", "{reference}"};
    const char *const values[] = {question, answer_a, answer_b, reference ? reference : ""};
    return sa_prompt_fill(p->t.user, names, values, SA_ARRAY_LEN(names), out);
}

/* ---- the engine wrapper ----------------------------------------------------------- */

struct sa_judge {
    const struct sa_judge_ops *ops;
    void *impl;
    char *id;
};

enum sa_status sa_judge_init_ops(const struct sa_judge_ops *ops, void *impl, const char *id, struct sa_judge **out) {
    *out = NULL;
    if (!ops || !ops->generate || !id || !*id) {
        if (ops && ops->free) ops->free(impl);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "judge: NULL generate hook or empty id");
    }
    struct sa_judge *j = calloc(1, sizeof *j);
    char *idc = strdup(id);
    if (!j || !idc) {
        free(j);
        free(idc);
        if (ops->free) ops->free(impl);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    j->ops = ops;
    j->impl = impl;
    j->id = idc;
    *out = j;
    return SA_STATUS_OK;
}

void sa_judge_free(struct sa_judge *j) {
    if (!j) return;
    if (j->ops->free) j->ops->free(j->impl);
    free(j->id);
    free(j);
}

const char *sa_judge_id(const struct sa_judge *j) {
    return j->id;
}

enum sa_status sa_judge_generate(struct sa_judge *j, const struct sa_judge_request *req, char **out) {
    *out = NULL;
    if (!j || !req || !req->system || !req->user) return sa_error(SA_STATUS_BAD_ARGUMENT, "judge: NULL request");
    enum sa_status s = j->ops->generate(j->impl, req, out);
    if (!s && !*out) return sa_error(SA_STATUS_ERROR, "judge %s: the engine returned no text", j->ops->name);
    if (s) {
        free(*out);
        *out = NULL;
    }
    return s;
}

/* ---- the upstream engine (a local model or a remote server) ---------------------------- */

struct upstream_judge {
    struct sa_upstream *up;
    enum sa_chat_format fmt;
    char *tmpl;
    struct sa_judge_upstream_params p;
};

struct sa_judge_upstream_params sa_judge_upstream_default_params(void) {
    return (struct sa_judge_upstream_params){
        .format = SA_CHAT_FORMAT_UNKNOWN,
        .max_tokens = 512,
        .retry_temperature = 0.7f,
        .retry_top_p = 0.95f,
    };
}

struct collect {
    struct sa_buf *b;
    const struct sa_judge_request *req;
    enum sa_status s;
    bool cancelled;
};

static bool collect_text(void *user, const char *text, size_t len, int32_t n_tokens) {
    (void)n_tokens;
    struct collect *c = user;
    if ((c->s = sa_buf_append(c->b, text, len))) return false;
    if (c->req->cancel && c->req->cancel(c->req->cancel_user)) {
        c->cancelled = true;
        return false;
    }
    return true;
}

static enum sa_status uj_generate(void *impl, const struct sa_judge_request *req, char **out) {
    struct upstream_judge *uj = impl;
    struct sa_chat_msg msgs[2];
    size_t n = 0;
    if (*req->system) msgs[n++] = (struct sa_chat_msg){"system", req->system};
    msgs[n++] = (struct sa_chat_msg){"user", req->user};
    char *prompt = NULL;
    size_t plen = 0;
    enum sa_status s = sa_chat_render(uj->fmt, uj->tmpl, msgs, n, true, NULL, &prompt, &plen);
    if (s) return sa_error_wrap(s, "judge: rendering the prompt");
    struct sa_upstream_gen_params gp = sa_upstream_gen_default_params();
    gp.max_tokens = uj->p.max_tokens;
    if (req->attempt == 0) { /* greedy: the same answer on every run */
        gp.temperature = 0;
        gp.top_p = 1;
        gp.seed = uj->p.seed;
    } else { /* a retry must differ from the greedy answer: sample, seeded by the attempt */
        gp.temperature = uj->p.retry_temperature;
        gp.top_p = uj->p.retry_top_p;
        gp.seed = uj->p.seed + req->attempt;
    }
    const char *stop[1] = {sa_chat_format_eot(uj->fmt)};
    if (uj->p.stop_at_eot && *stop[0]) {
        gp.stop = stop;
        gp.n_stop = 1;
    }
    struct sa_buf b;
    sa_buf_init(&b, 0);
    struct collect c = {.b = &b, .req = req};
    enum sa_upstream_finish fin = SA_UPSTREAM_FINISH_NONE;
    s = sa_buf_append(&b, "", 0);
    if (!s) s = sa_upstream_generate(uj->up, prompt, plen, &gp, collect_text, &c, &fin);
    free(prompt);
    if (!s && c.s) s = c.s;
    if (!s && c.cancelled) s = sa_error(SA_STATUS_CANCELLED, "judge: cancelled");
    if (s) {
        sa_buf_free(&b);
        return s;
    }
    *out = sa_buf_take(&b, NULL);
    return SA_STATUS_OK;
}

static void uj_free(void *impl) {
    struct upstream_judge *uj = impl;
    if (!uj) return;
    sa_upstream_free(uj->up);
    free(uj->tmpl);
    free(uj);
}

static const struct sa_judge_ops upstream_judge_ops = {"upstream", uj_generate, uj_free};

enum sa_status sa_judge_init_upstream(struct sa_upstream *up, const struct sa_judge_upstream_params *p,
                                      struct sa_judge **out) {
    *out = NULL;
    if (!up || !p) {
        sa_upstream_free(up);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "judge: NULL upstream or params");
    }
    struct sa_judge_upstream_params q = *p;
    if (q.max_tokens == 0) q.max_tokens = 512;
    if (q.retry_temperature <= 0) q.retry_temperature = 0.7f;
    if (q.retry_top_p == 0) q.retry_top_p = 0.95f;
    const char *bad = NULL;
    if (q.format == SA_CHAT_FORMAT_UNKNOWN || !*sa_chat_format_eot((enum sa_chat_format)q.format))
        bad = "no known chat format (chatml, gemma, llama3)";
    else if (!q.model_id || !*q.model_id) bad = "no model id";
    else if (q.max_tokens < 0) bad = "max_tokens < 0";
    else if (!(q.retry_top_p > 0 && q.retry_top_p <= 1)) bad = "retry_top_p outside (0, 1]";
    else if (q.retry_temperature != q.retry_temperature) bad = "retry_temperature is NaN";
    if (bad) {
        sa_upstream_free(up);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "judge: %s", bad);
    }
    struct upstream_judge *uj = calloc(1, sizeof *uj);
    if (!uj) {
        sa_upstream_free(up);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    uj->up = up;
    uj->fmt = (enum sa_chat_format)q.format;
    uj->p = q;
    uj->p.model_id = NULL; /* only the id keeps it */
    uj->p.chat_template = NULL;
    if (q.chat_template && !(uj->tmpl = strdup(q.chat_template))) {
        uj_free(uj);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    /* everything that changes the answers goes into the id, hence into the cache keys; the
     * template text counts through its default system prompt, so hash it in */
    char th[65] = "none";
    if (uj->tmpl) {
        struct sa_sha256 h;
        uint8_t d[32];
        sa_sha256_init(&h);
        sa_sha256_update(&h, uj->tmpl, strlen(uj->tmpl));
        sa_sha256_final(&h, d);
        sa_sha256_hex(d, th);
        th[16] = 0;
    }
    char *id = NULL;
    if (asprintf(&id, "%s|%s|tmpl=%s|max_tokens=%d|retry_temp=%g|retry_top_p=%g|seed=%llu|stop=%d", q.model_id,
                 sa_chat_format_name(uj->fmt), th, (int)q.max_tokens, (double)q.retry_temperature,
                 (double)q.retry_top_p, (unsigned long long)q.seed, (int)q.stop_at_eot) < 0) {
        uj_free(uj);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    enum sa_status s = sa_judge_init_ops(&upstream_judge_ops, uj, id, out);
    free(id);
    return s;
}

/* ---- the cache ------------------------------------------------------------------------ */

/* Entries live in an open-addressing table keyed by the SHA-256 of what the judge saw. */
struct centry {
    uint8_t key[32];
    char *text; /* NULL: empty slot */
};

struct jcache {
    const char *path;
    FILE *f; /* append stream; NULL when there is no cache */
    struct centry *tab;
    size_t cap, n;
};

static uint64_t key_hash(const uint8_t k[32]) {
    uint64_t h;
    memcpy(&h, k, sizeof h);
    return h;
}

static struct centry *cache_slot(struct jcache *c, const uint8_t key[32]) {
    size_t i = (size_t)(key_hash(key) & (c->cap - 1));
    while (c->tab[i].text && memcmp(c->tab[i].key, key, 32)) i = (i + 1) & (c->cap - 1);
    return &c->tab[i];
}

static const char *cache_get(struct jcache *c, const uint8_t key[32]) {
    if (!c->cap) return NULL;
    return cache_slot(c, key)->text;
}

/* Takes ownership of text (also on failure); *dup: the key was there already (text freed). */
static enum sa_status cache_put(struct jcache *c, const uint8_t key[32], char *text, bool *dup) {
    *dup = false;
    if (2 * (c->n + 1) > c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        struct centry *t = calloc(cap, sizeof *t);
        if (!t) {
            free(text);
            return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        }
        struct centry *old = c->tab;
        size_t old_cap = c->cap;
        c->tab = t;
        c->cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].text) *cache_slot(c, old[i].key) = old[i];
        free(old);
    }
    struct centry *e = cache_slot(c, key);
    if (e->text) {
        *dup = true;
        free(text);
        return SA_STATUS_OK;
    }
    memcpy(e->key, key, 32);
    e->text = text;
    c->n++;
    return SA_STATUS_OK;
}

static void cache_close(struct jcache *c) {
    if (c->f) fclose(c->f); /* also releases the lock */
    for (size_t i = 0; i < c->cap; i++) free(c->tab[i].text);
    free(c->tab);
    memset(c, 0, sizeof *c);
}

static bool hex_key(const char *s, uint8_t key[32]) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++) {
        char ch = s[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (v < 0) return false;
        if (i % 2 == 0) key[i / 2] = (uint8_t)(v << 4);
        else key[i / 2] |= (uint8_t)v;
    }
    return true;
}

/* Opens (creating) the cache, locks it, drops an incomplete last line, loads the entries. */
static enum sa_status cache_open(struct jcache *c, const char *path) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->f = fopen(path, "a+");
    if (!c->f) return sa_error(SA_STATUS_IO, "judge cache %s: cannot open: %s", path, strerror(errno));
    int fd = fileno(c->f);
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        cache_close(c);
        if (e == EWOULDBLOCK)
            return sa_error(SA_STATUS_IO, "judge cache %s: in use by another run (wait for it, or use another --cache)",
                            path);
        return sa_error(SA_STATUS_IO, "judge cache %s: cannot lock: %s", path, strerror(e));
    }
    char *text = NULL;
    size_t len = 0;
    enum sa_status s = sa_read_file(path, 0, &text, &len);
    if (s) {
        cache_close(c);
        return sa_error_wrap(s, "judge cache");
    }
    /* a run killed in the middle of a write leaves a line without its '\n': drop it, so
     * that the next entry starts on a line of its own (it was never used: an answer is
     * used only after its line is written) */
    size_t keep = len;
    while (keep > 0 && text[keep - 1] != '\n') keep--;
    if (keep < len) {
        sa_log(SA_LOG_WARN, "judge cache %s: dropping an incomplete last line (%zu bytes) left by an interrupted run",
               path, len - keep);
        if (fflush(c->f) || ftruncate(fd, (off_t)keep)) {
            free(text);
            cache_close(c);
            return sa_error(SA_STATUS_IO, "judge cache %s: cannot drop the incomplete last line: %s", path,
                            strerror(errno));
        }
    }
    size_t line = 0, n_dup = 0;
    for (size_t pos = 0; pos < keep && !s;) {
        char *nl = memchr(text + pos, '\n', keep - pos);
        size_t end = (size_t)(nl - text);
        line++;
        size_t a = pos;
        pos = end + 1;
        while (a < end && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        if (a == end) continue;
        cJSON *o = cJSON_ParseWithLength(text + a, end - a);
        const cJSON *jk = o ? cJSON_GetObjectItemCaseSensitive(o, "key") : NULL;
        const cJSON *jt = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
        uint8_t key[32];
        if (!cJSON_IsObject(o) || !cJSON_IsString(jk) || !hex_key(jk->valuestring, key) || !cJSON_IsString(jt)) {
            s = sa_error(SA_STATUS_BAD_FILE,
                         "judge cache %s:%zu: not a cache entry ({\"key\": 64 hex digits, \"text\": ...}); "
                         "HINT: give --cache a file of its own",
                         path, line);
        } else {
            char *t = strdup(jt->valuestring);
            bool dup;
            s = t ? cache_put(c, key, t, &dup) : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            n_dup += !s && dup;
        }
        cJSON_Delete(o);
    }
    free(text);
    if (n_dup) sa_log(SA_LOG_WARN, "judge cache %s: %zu repeated keys (the first of each is used)", path, n_dup);
    if (s) cache_close(c);
    return s;
}

/* Appends one entry as a single line and flushes it to the kernel (a killed process loses
 * nothing written; a torn line is dropped on the next open). */
static enum sa_status cache_append(struct jcache *c, const uint8_t key[32], const char *order, uint32_t attempt,
                                   const char *pair_key, enum sa_verdict v, const char *text) {
    char hex[65];
    sa_sha256_hex(key, hex);
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "key", hex);
        cJSON_AddStringToObject(o, "pair", pair_key ? pair_key : "");
        cJSON_AddStringToObject(o, "order", order);
        cJSON_AddNumberToObject(o, "attempt", attempt);
        cJSON_AddStringToObject(o, "verdict", sa_verdict_str(v));
        cJSON_AddStringToObject(o, "text", text);
    }
    char *line = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!line) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    size_t n = strlen(line);
    line[n] = '\n'; /* replaces the NUL: write n + 1 bytes at once */
    bool ok = fwrite(line, 1, n + 1, c->f) == n + 1 && fflush(c->f) == 0;
    free(line);
    if (!ok) return sa_error(SA_STATUS_IO, "judge cache %s: write failed: %s", c->path, strerror(errno));
    return SA_STATUS_OK;
}

/* The cache key of one ask: SHA-256 over the judge id, both messages, the order and the
 * attempt, each NUL-terminated, after a version tag. */
static void ask_key(const char *judge_id, const char *system, const char *user, const char *order, uint32_t attempt,
                    uint8_t key[32]) {
    struct sa_sha256 h;
    char att[16];
    snprintf(att, sizeof att, "%u", attempt);
    const char *parts[] = {"salign-judge-cache-v1", judge_id, system, user, order, att};
    sa_sha256_init(&h);
    for (size_t i = 0; i < SA_ARRAY_LEN(parts); i++) sa_sha256_update(&h, parts[i], strlen(parts[i]) + 1);
    sa_sha256_final(&h, key);
}

/* ---- the run ------------------------------------------------------------------------- */

struct sa_judge_run_params sa_judge_run_default_params(void) {
    return (struct sa_judge_run_params){.retries = 2, .n_boot = 1000};
}

struct run {
    struct sa_judge *j;
    const struct sa_judge_prompt *p;
    const struct sa_judge_run_params *rp;
    struct jcache cache;
    bool use_cache;
    struct sa_judge_run_stats st;
};

/* Asks one order until its answer parses or the retries are spent. *text: the last answer
 * (malloc'd). */
static enum sa_status judge_order(struct run *r, const struct sa_judge_pair *pair, const char *order, const char *user,
                                  enum sa_verdict *v, uint32_t *attempts, char **text) {
    *v = SA_VERDICT_INVALID;
    *text = NULL;
    *attempts = 0;
    const char *system = sa_judge_prompt_system(r->p);
    for (uint32_t att = 0; att <= r->rp->retries; att++) {
        if (r->rp->cancel && r->rp->cancel(r->rp->cancel_user)) return sa_error(SA_STATUS_CANCELLED, "judge: cancelled");
        uint8_t key[32];
        ask_key(sa_judge_id(r->j), system, user, order, att, key);
        const char *hit = r->use_cache ? cache_get(&r->cache, key) : NULL;
        char *t = NULL;
        if (hit) {
            if (!(t = strdup(hit))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            r->st.n_cached++;
        } else {
            struct sa_judge_request req = {.system = system,
                                           .user = user,
                                           .attempt = att,
                                           .cancel = r->rp->cancel,
                                           .cancel_user = r->rp->cancel_user};
            enum sa_status s = sa_judge_generate(r->j, &req, &t);
            if (s) return sa_error_wrap(s, "judging pair %s (%s)", pair->key ? pair->key : "?", order);
            r->st.n_requests++;
            if (r->use_cache) {
                char *copy = strdup(t);
                bool dup;
                s = copy ? cache_append(&r->cache, key, order, att, pair->key, sa_eval_parse_verdict(t), t)
                         : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
                if (!s) s = cache_put(&r->cache, key, copy, &dup);
                else free(copy);
                if (s) {
                    free(t);
                    return s;
                }
            }
        }
        if (att > 0) r->st.n_retries++;
        free(*text);
        *text = t;
        *attempts = att + 1;
        *v = sa_eval_parse_verdict(t);
        if (*v != SA_VERDICT_INVALID) break;
    }
    if (*v == SA_VERDICT_INVALID) r->st.n_invalid_orders++;
    return SA_STATUS_OK;
}

enum sa_status sa_judge_run(struct sa_judge *j, const struct sa_judge_prompt *p, const struct sa_judge_pair *pairs,
                            size_t n, const struct sa_judge_run_params *params, struct sa_judge_run_stats *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!j || !p || (!pairs && n)) return sa_error(SA_STATUS_BAD_ARGUMENT, "judge run: NULL judge, prompt or pairs");
    struct sa_judge_run_params defaults = sa_judge_run_default_params();
    if (!params) params = &defaults;
    for (size_t i = 0; i < n; i++) {
        const struct sa_judge_pair *q = &pairs[i];
        if (!q->question || !q->answer_a || !q->answer_b)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "judge run: pair %zu (%s) lacks its question or an answer", i,
                            q->key ? q->key : "?");
        if (sa_judge_prompt_needs_reference(p) && !q->reference)
            return sa_error(SA_STATUS_BAD_ARGUMENT,
                            "judge run: pair %zu (%s) has no reference solution, which the prompt needs ({reference})",
                            i, q->key ? q->key : "?");
    }
    struct run r = {.j = j, .p = p, .rp = params};
    enum sa_pair_outcome *oc = malloc((n ? n : 1) * sizeof *oc);
    if (!oc) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    enum sa_status s = SA_STATUS_OK;
    if (params->cache_path) {
        s = cache_open(&r.cache, params->cache_path);
        r.use_cache = !s;
    }
    size_t done = 0;
    for (size_t i = 0; i < n && !s; i++) {
        const struct sa_judge_pair *q = &pairs[i];
        char *u_ab = NULL, *u_ba = NULL, *t_ab = NULL, *t_ba = NULL;
        struct sa_judge_pair_result res = {0};
        s = sa_judge_prompt_render(p, q->question, q->answer_a, q->answer_b, q->reference, &u_ab);
        if (!s) s = sa_judge_prompt_render(p, q->question, q->answer_b, q->answer_a, q->reference, &u_ba);
        if (!s) s = judge_order(&r, q, "ab", u_ab, &res.ab, &res.attempts_ab, &t_ab);
        if (!s) s = judge_order(&r, q, "ba", u_ba, &res.ba, &res.attempts_ba, &t_ba);
        if (!s) {
            res.outcome = sa_eval_pair_outcome(res.ab, res.ba);
            res.text_ab = t_ab;
            res.text_ba = t_ba;
            oc[done++] = res.outcome;
            if (params->on_pair && !params->on_pair(params->user, i, q, &res))
                s = sa_error(SA_STATUS_CANCELLED, "judge: stopped after pair %zu", i);
        }
        free(u_ab);
        free(u_ba);
        free(t_ab);
        free(t_ba);
    }
    if (r.use_cache) {
        /* the lines are already with the kernel; make them durable before reporting */
        if (fflush(r.cache.f) || fdatasync(fileno(r.cache.f)))
            sa_log(SA_LOG_WARN, "judge cache %s: fdatasync: %s", params->cache_path, strerror(errno));
        cache_close(&r.cache);
    }
    r.st.n_pairs = done;
    enum sa_status ws = sa_eval_winrate(oc, done, params->n_boot ? params->n_boot : 1000, params->boot_seed, &r.st.wr);
    free(oc);
    if (!s && ws) s = ws;
    if (out) *out = r.st;
    return s;
}
