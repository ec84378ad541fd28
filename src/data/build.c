/* build.c: `salign data build`: sentence records from an upstream and an annotator (issue 6).
 * The annotator prompt file and its strict answer parser; the prompts reader; the build
 * loop (the pipeline with the annotator as its aligner_fn) and its append-only output with
 * a checkpoint sidecar (its invariants: "the checkpoint" below). */
#define _GNU_SOURCE
#include "sa/data_build.h"
#include "sa/eval.h"
#include "sa/jsonl.h"
#include "sa/records.h"

#include "core/core_impl.h"
#include "core/prompt_impl.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the annotator prompt --------------------------------------------------------- */

/* The annotator's prompt is a prompt template (src/core/prompt_file.c) with its placeholders. */
struct sa_annot_prompt {
    struct sa_prompt_template t;
};

static const char *const annot_required[] = {"{question}", "{prefix}", "{sentence}"};

void sa_annot_prompt_free(struct sa_annot_prompt *p) {
    if (!p) return;
    sa_prompt_template_free(&p->t);
    free(p);
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parses (text != NULL) or loads (path) an annotator prompt. */
static enum sa_status annot_prompt_new(const char *text, size_t len, const char *name, const char *path,
                                       struct sa_annot_prompt **out) {
    *out = NULL;
    struct sa_annot_prompt *p = calloc(1, sizeof *p);
    if (!p) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    const size_t n_req = SA_ARRAY_LEN(annot_required);
    enum sa_status s = text ? sa_prompt_template_parse(text, len, name, annot_required, n_req, &p->t)
                            : sa_prompt_template_load(path, "annotator prompt", annot_required, n_req, &p->t);
    if (s) {
        sa_annot_prompt_free(p);
        return s;
    }
    *out = p;
    return SA_STATUS_OK;
}

enum sa_status sa_annot_prompt_parse(const char *text, size_t len, const char *name, struct sa_annot_prompt **out) {
    *out = NULL;
    if (!text) return sa_error(SA_STATUS_BAD_ARGUMENT, "annotator prompt: NULL text");
    return annot_prompt_new(text, len, name ? name : "annotator prompt", NULL, out);
}

enum sa_status sa_annot_prompt_load(const char *path, struct sa_annot_prompt **out) {
    return annot_prompt_new(NULL, 0, NULL, path, out);
}

const char *sa_annot_prompt_system(const struct sa_annot_prompt *p) {
    return p->t.system;
}

bool sa_annot_prompt_needs_reference(const struct sa_annot_prompt *p) {
    return p->t.needs_reference;
}

enum sa_status sa_annot_prompt_render(const struct sa_annot_prompt *p, const char *question, const char *prefix,
                                      const char *sentence, const char *reference, char **out) {
    *out = NULL;
    if (!p || !question || !prefix || !sentence)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "annotator prompt: a NULL question, prefix or sentence");
    const char *const names[] = {"{question}", "{prefix}", "{sentence}", "{reference}"};
    const char *const values[] = {question, prefix, sentence, reference ? reference : SA_ANNOT_NO_REFERENCE};
    return sa_prompt_fill(p->t.user, names, values, SA_ARRAY_LEN(names), out);
}

/* ---- the annotator's answer ------------------------------------------------------- */

/* The only occurrence of `key` in text; NULL (with *why) if none or several. */
static const char *find_once(const char *text, const char *key, const char **why, const char *none,
                             const char *many) {
    const char *a = strstr(text, key);
    if (!a) {
        *why = none;
        return NULL;
    }
    if (strstr(a + 1, key)) {
        *why = many;
        return NULL;
    }
    return a;
}

enum sa_status sa_annot_parse(const char *text, char **correction, int *eos, const char **why) {
    *correction = NULL;
    *eos = -1;
    const char *dummy;
    if (!why) why = &dummy;
    *why = NULL;
    if (!text) {
        *why = "no text";
        return SA_STATUS_BAD_FILE;
    }
    const char *c = find_once(text, "CORRECTION:", why, "no CORRECTION:", "CORRECTION: more than once");
    if (!c) return SA_STATUS_BAD_FILE;
    const char *e = find_once(text, "EOS:", why, "no EOS:", "EOS: more than once");
    if (!e) return SA_STATUS_BAD_FILE;
    /* the correction */
    const char *p = c + strlen("CORRECTION:");
    while (is_ws(*p)) p++;
    if (strncmp(p, "[[", 2)) {
        *why = "CORRECTION: not followed by [[";
        return SA_STATUS_BAD_FILE;
    }
    p += 2;
    const char *close = strstr(p, "]]");
    if (!close) {
        *why = "CORRECTION: [[ without ]]";
        return SA_STATUS_BAD_FILE;
    }
    const char *inner_open = strstr(p, "[[");
    if (inner_open && inner_open < close) {
        *why = "[[ inside the correction";
        return SA_STATUS_BAD_FILE;
    }
    if (e > c && e < close) {
        *why = "EOS: inside the correction";
        return SA_STATUS_BAD_FILE;
    }
    const char *a = p, *b = close;
    while (a < b && is_ws(*a)) a++;
    while (b > a && is_ws(b[-1])) b--;
    if (a == b) {
        *why = "empty correction";
        return SA_STATUS_BAD_FILE;
    }
    /* EOS */
    const char *q = e + strlen("EOS:");
    while (is_ws(*q)) q++;
    if (strncmp(q, "[[", 2)) {
        *why = "EOS: not followed by [[";
        return SA_STATUS_BAD_FILE;
    }
    q += 2;
    while (*q == ' ' || *q == '\t') q++;
    int v = -1;
    if (!strncasecmp(q, "TRUE", 4)) {
        v = 1;
        q += 4;
    } else if (!strncasecmp(q, "FALSE", 5)) {
        v = 0;
        q += 5;
    }
    while (*q == ' ' || *q == '\t') q++;
    if (v < 0 || strncmp(q, "]]", 2)) {
        *why = "EOS: not [[TRUE]] or [[FALSE]]";
        return SA_STATUS_BAD_FILE;
    }
    if (!(*correction = strndup(a, (size_t)(b - a)))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    *eos = v;
    return SA_STATUS_OK;
}

/* ---- prompts ---------------------------------------------------------------------- */

void sa_data_prompts_free(struct sa_data_prompt *prompts, size_t n) {
    for (size_t i = 0; prompts && i < n; i++) {
        free(prompts[i].question);
        free(prompts[i].reference);
    }
    free(prompts);
}

struct prompts_ctx {
    const char *reference_field;
    struct sa_data_prompt *v; /* (n, cap) */
    size_t n, cap;
};

static enum sa_status prompt_line(void *user, const struct sa_jsonl_item *it) {
    struct prompts_ctx *c = user;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(it->object, "question");
    const cJSON *r = c->reference_field ? cJSON_GetObjectItemCaseSensitive(it->object, c->reference_field) : NULL;
    if (!cJSON_IsString(q) || !*q->valuestring)
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"question\" is missing or not a non-empty string", it->where);
    if (c->reference_field && !cJSON_IsString(r))
        return sa_error(SA_STATUS_BAD_JSON, "%s: field \"%s\" (--reference-field) is missing or not a string",
                        it->where, c->reference_field);
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 64;
        struct sa_data_prompt *nvp = realloc(c->v, nc * sizeof *nvp);
        if (!nvp) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        c->v = nvp;
        c->cap = nc;
    }
    struct sa_data_prompt *p = &c->v[c->n++];
    p->question = strdup(q->valuestring);
    p->reference = r ? sa_gsm8k_strip_calc(r->valuestring) : NULL;
    if (!p->question || (r && !p->reference)) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    return SA_STATUS_OK;
}

enum sa_status sa_data_prompts_load(const char *path, const char *reference_field, struct sa_data_prompt **prompts,
                                    size_t *n) {
    *prompts = NULL;
    *n = 0;
    struct prompts_ctx c = {.reference_field = reference_field};
    enum sa_status s = sa_jsonl_load(path, SA_JSONL_NOT_EMPTY, prompt_line, &c, NULL);
    if (s == SA_STATUS_IO) s = sa_error_wrap(s, "prompts");
    if (s) {
        sa_data_prompts_free(c.v, c.n);
        return s;
    }
    *prompts = c.v;
    *n = c.n;
    return SA_STATUS_OK;
}

/* ---- the checkpoint ---------------------------------------------------------------- */
/* <out>.ckpt is JSONL: a header {"salign_data_build": 1, "fingerprint": hex} and then one
 * {"prompt": i, "size": bytes} per committed prompt, where size is the output's length
 * once that prompt's records were fsync'd. A torn last line (a crash while writing it) is
 * ignored and cut; the output is cut to the last committed size. */

struct ckpt {
    int fd_out, fd_ck;
    bool *done;       /* (n_prompts) */
    size_t n_done;
    off_t committed;  /* the output's committed length */
};

static enum sa_status write_all(int fd, const char *s, size_t n, const char *path) {
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return sa_error(SA_STATUS_IO, "%s: write failed: %s", path, strerror(errno));
        s += w;
        n -= (size_t)w;
    }
    return SA_STATUS_OK;
}

static enum sa_status sync_fd(int fd, const char *path) {
    if (fsync(fd)) return sa_error(SA_STATUS_IO, "%s: fsync failed: %s", path, strerror(errno));
    return SA_STATUS_OK;
}

/* fsync of the directory holding path (a newly created file's name survives a crash). */
static void sync_dir(const char *path) {
    char *d = strdup(path);
    if (!d) return;
    char *slash = strrchr(d, '/');
    const char *dir = ".";
    if (slash) {
        if (slash == d) slash[1] = 0;
        else *slash = 0;
        dir = d;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(d);
}

static enum sa_status ckpt_open(struct ckpt *ck, const char *out_path, const char *fp, size_t n_prompts,
                                size_t *dropped) {
    memset(ck, 0, sizeof *ck);
    ck->fd_out = ck->fd_ck = -1;
    *dropped = 0;
    char *ck_path = NULL;
    char *text = NULL;
    enum sa_status s = SA_STATUS_OK;
    if (asprintf(&ck_path, "%s.ckpt", out_path) < 0) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (!(ck->done = calloc(n_prompts ? n_prompts : 1, sizeof *ck->done))) {
        free(ck_path);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    ck->fd_out = open(out_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (ck->fd_out < 0) {
        s = sa_error(SA_STATUS_IO, "%s: cannot open: %s", out_path, strerror(errno));
        goto done;
    }
    struct stat st;
    if (fstat(ck->fd_out, &st)) {
        s = sa_error(SA_STATUS_IO, "%s: %s", out_path, strerror(errno));
        goto done;
    }
    bool have_ck = access(ck_path, F_OK) == 0;
    if (!have_ck) {
        if (st.st_size > 0) {
            s = sa_error(SA_STATUS_BAD_ARGUMENT,
                         "%s exists and has no checkpoint %s: it was not written by an unfinished `data build`; "
                         "remove it or choose another --out",
                         out_path, ck_path);
            goto done;
        }
        ck->fd_ck = open(ck_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (ck->fd_ck < 0) {
            s = sa_error(SA_STATUS_IO, "%s: cannot create: %s", ck_path, strerror(errno));
            goto done;
        }
        char *hdr = NULL;
        if (asprintf(&hdr, "{\"salign_data_build\":1,\"fingerprint\":\"%s\"}\n", fp) < 0) {
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            goto done;
        }
        s = write_all(ck->fd_ck, hdr, strlen(hdr), ck_path);
        free(hdr);
        if (!s) s = sync_fd(ck->fd_ck, ck_path);
        if (!s) s = sync_fd(ck->fd_out, out_path);
        if (!s) sync_dir(out_path);
        goto done;
    }
    size_t len = 0;
    if ((s = sa_read_file(ck_path, (size_t)1 << 32, &text, &len))) goto done;
    size_t good = 0, line = 0; /* bytes of whole valid lines */
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        line++;
        if (!nl) break; /* torn last line: ignored */
        size_t e = (size_t)(nl - text);
        cJSON *j = cJSON_ParseWithLength(text + pos, e - pos);
        if (line == 1) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "fingerprint");
            if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "salign_data_build")) || !cJSON_IsString(f))
                s = sa_error(SA_STATUS_BAD_FILE, "%s:1: not a data build checkpoint", ck_path);
            else if (strcmp(f->valuestring, fp))
                s = sa_error(SA_STATUS_BAD_ARGUMENT,
                             "%s was built from other prompts, another annotator or another annotator prompt "
                             "(fingerprint %s, now %s): use another --out, or the same inputs to resume",
                             out_path, f->valuestring, fp);
        } else {
            const cJSON *pi = cJSON_GetObjectItemCaseSensitive(j, "prompt");
            const cJSON *sz = cJSON_GetObjectItemCaseSensitive(j, "size");
            if (!cJSON_IsNumber(pi) || !cJSON_IsNumber(sz) || pi->valuedouble < 0 || sz->valuedouble < 0 ||
                pi->valuedouble >= (double)n_prompts || sz->valuedouble > (double)st.st_size)
                s = sa_error(SA_STATUS_BAD_FILE,
                             "%s:%zu: a bad checkpoint line (or %s is shorter than it records): remove both files "
                             "to start over",
                             ck_path, line, out_path);
            else {
                size_t i = (size_t)pi->valuedouble;
                if (!ck->done[i]) ck->n_done++;
                ck->done[i] = true;
                if ((off_t)sz->valuedouble > ck->committed) ck->committed = (off_t)sz->valuedouble;
            }
        }
        cJSON_Delete(j);
        if (s) goto done;
        pos = e + 1;
        good = pos;
    }
    if (line == 0 || good == 0) {
        s = sa_error(SA_STATUS_BAD_FILE, "%s: empty or torn header: remove it and %s to start over", ck_path,
                     out_path);
        goto done;
    }
    ck->fd_ck = open(ck_path, O_RDWR | O_CLOEXEC);
    if (ck->fd_ck < 0) {
        s = sa_error(SA_STATUS_IO, "%s: cannot open: %s", ck_path, strerror(errno));
        goto done;
    }
    if ((good < len && ftruncate(ck->fd_ck, (off_t)good)) ||
        (st.st_size > ck->committed && ftruncate(ck->fd_out, ck->committed))) {
        s = sa_error(SA_STATUS_IO, "%s: cannot cut the unfinished part: %s", out_path, strerror(errno));
        goto done;
    }
    *dropped = st.st_size > ck->committed ? (size_t)(st.st_size - ck->committed) : 0;
    if (lseek(ck->fd_ck, 0, SEEK_END) < 0) s = sa_error(SA_STATUS_IO, "%s: %s", ck_path, strerror(errno));
done:
    if (!s && lseek(ck->fd_out, 0, SEEK_END) < 0) s = sa_error(SA_STATUS_IO, "%s: %s", out_path, strerror(errno));
    free(text);
    free(ck_path);
    return s;
}

static void ckpt_close(struct ckpt *ck) {
    if (ck->fd_out >= 0) close(ck->fd_out);
    if (ck->fd_ck >= 0) close(ck->fd_ck);
    free(ck->done);
    ck->fd_out = ck->fd_ck = -1;
    ck->done = NULL;
}

/* Appends one prompt's records to the output (fsync), then the prompt to the checkpoint (fsync). */
static enum sa_status ckpt_commit(struct ckpt *ck, const char *out_path, size_t prompt, const struct sa_records *r) {
    enum sa_status s = SA_STATUS_OK;
    if (r->n) {
        char *text = NULL;
        size_t len = 0;
        if ((s = sa_records_serialize(r, SA_RECORDS_JSONL, &text, &len))) return s;
        s = write_all(ck->fd_out, text, len, out_path);
        free(text);
        if (!s) ck->committed += (off_t)len;
    }
    if (!s) s = sync_fd(ck->fd_out, out_path);
    char line[96];
    int n = snprintf(line, sizeof line, "{\"prompt\":%zu,\"size\":%lld}\n", prompt, (long long)ck->committed);
    if (!s) s = write_all(ck->fd_ck, line, (size_t)n, "checkpoint");
    if (!s) s = sync_fd(ck->fd_ck, "checkpoint");
    if (!s) {
        ck->done[prompt] = true;
        ck->n_done++;
    }
    return s;
}

/* ---- the build ---------------------------------------------------------------------- */

struct sa_data_build_params sa_data_build_default_params(void) {
    struct sa_data_build_params p = {0};
    p.pipeline = sa_pipeline_default_params();
    p.pipeline.max_rounds = 8;
    p.retries = 2;
    return p;
}

struct build_ctx {
    const struct sa_data_build_params *p;
    const struct sa_data_prompt *prompt;
    size_t index;
    struct sa_records recs;     /* this prompt's records */
    struct sa_data_build_stats *st;
    int32_t round;
    bool stop_eos;              /* the annotator said EOS TRUE for the last sentence */
};

static enum sa_status annotate(void *user, const struct sa_pipeline_request *req, char **out, int32_t *n_tokens) {
    struct build_ctx *b = user;
    *n_tokens = 0;
    *out = NULL;
    if (req->kind != SA_PIPELINE_REQ_SENTENCE)
        return sa_error(SA_STATUS_ERROR, "data build: the pipeline asked for a non-sentence revision");
    b->round++;
    b->st->n_sentences++;
    char *user_msg = NULL;
    enum sa_status s = sa_annot_prompt_render(b->p->prompt, req->question, req->prefix, req->last,
                                              b->prompt->reference, &user_msg);
    if (s) return s;
    char *correction = NULL;
    int eos = -1;
    for (uint32_t attempt = 0; attempt <= b->p->retries && !correction; attempt++) {
        struct sa_judge_request jr = {.system = sa_annot_prompt_system(b->p->prompt),
                                      .user = user_msg,
                                      .attempt = attempt,
                                      .cancel = b->p->cancel,
                                      .cancel_user = b->p->cancel_user};
        char *text = NULL;
        b->st->n_requests++;
        if (attempt) b->st->n_retries++;
        if ((s = sa_judge_generate(b->p->annotator, &jr, &text))) break;
        s = sa_annot_parse(text, &correction, &eos, NULL);
        free(text);
        if (s == SA_STATUS_BAD_FILE) {
            b->st->n_malformed++;
            s = SA_STATUS_OK;
        } else if (s) {
            break;
        }
    }
    free(user_msg);
    if (s) {
        free(correction);
        return s;
    }
    if (!correction) { /* skipped: the upstream's sentence stays in the answer, no record */
        b->st->n_skipped++;
        if (!(*out = strdup(req->last))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        return SA_STATUS_OK;
    }
    char source[64];
    snprintf(source, sizeof source, "build:%zu:%d", b->index, (int)b->round);
    struct sa_record rec = {.kind = SA_RECORD_SENTENCE,
                            .question = (char *)req->question,
                            .prefix = (char *)req->prefix,
                            .last = (char *)req->last,
                            .correction = correction,
                            .source = source,
                            .eos = eos};
    s = sa_records_push(&b->recs, &rec);
    if (s) {
        free(correction);
        return s;
    }
    b->stop_eos = eos == 1;
    *out = correction;
    return SA_STATUS_OK;
}

static bool on_sentence(void *user, const struct sa_pipeline_sentence *sen) {
    (void)sen;
    return !((struct build_ctx *)user)->stop_eos;
}

static bool cancel_hook(void *user) {
    const struct build_ctx *b = user;
    return b->p->cancel && b->p->cancel(b->p->cancel_user);
}

/* A hex SHA-256 (first 32 digits) of what the records depend on besides the models' weights:
 * the prompts, the annotator id and the annotator prompt. */
static void fingerprint(const struct sa_data_prompt *prompts, size_t n, const struct sa_data_build_params *p,
                        char hex[65]) {
    struct sa_sha256 h;
    uint8_t d[32];
    sa_sha256_init(&h);
    for (size_t i = 0; i < n; i++) {
        sa_sha256_update(&h, prompts[i].question, strlen(prompts[i].question) + 1);
        const char *r = prompts[i].reference ? prompts[i].reference : "";
        sa_sha256_update(&h, r, strlen(r) + 1);
    }
    const char *id = sa_judge_id(p->annotator);
    sa_sha256_update(&h, id, strlen(id) + 1);
    sa_sha256_update(&h, p->prompt->t.system, strlen(p->prompt->t.system) + 1);
    sa_sha256_update(&h, p->prompt->t.user, strlen(p->prompt->t.user) + 1);
    sa_sha256_final(&h, d);
    sa_sha256_hex(d, hex);
    hex[32] = 0;
}

enum sa_status sa_data_build_run(const struct sa_data_prompt *prompts, size_t n, const struct sa_data_build_params *p,
                                 struct sa_data_build_stats *st_out) {
    struct sa_data_build_stats st = {0};
    if (st_out) *st_out = st;
    if (!p || (!prompts && n) || !p->annotator || !p->prompt || !p->out_path || !*p->out_path)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "data build: NULL prompts, annotator, prompt or out_path");
    if (p->pipeline.aligner_model)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "data build: the annotator is the aligner: aligner_model must be NULL");
    for (size_t i = 0; i < n; i++)
        if (!prompts[i].question)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "data build: prompt %zu has no question", i);
    const double t0 = sa_time_now();
    st.n_prompts = n;
    char fp[65];
    fingerprint(prompts, n, p, fp);
    struct ckpt ck;
    enum sa_status s = ckpt_open(&ck, p->out_path, fp, n, &st.n_dropped_bytes);
    if (s) {
        ckpt_close(&ck);
        return s;
    }
    st.n_skipped_done = ck.n_done;
    struct build_ctx b = {.p = p, .st = &st};
    sa_records_init(&b.recs);
    struct sa_pipeline_params pp = p->pipeline;
    pp.mode = SA_PIPELINE_STREAM;
    pp.aligner_fn = annotate;
    pp.aligner_user = &b;
    struct sa_pipeline *pl = NULL;
    if (ck.n_done < n) s = sa_pipeline_init(&pp, &pl);
    for (size_t i = 0; !s && i < n; i++) {
        if (ck.done[i]) continue;
        if (p->stop_after && st.n_done >= p->stop_after) break;
        b.prompt = &prompts[i];
        b.index = i;
        b.round = 0;
        b.stop_eos = false;
        sa_records_free(&b.recs);
        struct sa_pipeline_callbacks cb = {.on_sentence = on_sentence, .cancel = cancel_hook, .user = &b};
        struct sa_pipeline_result r;
        s = sa_pipeline_run(pl, prompts[i].question, &cb, &r);
        if (!s) {
            if (b.stop_eos) st.n_stop_eos++;
            else if (r.stop == SA_PIPELINE_STOP_UPSTREAM_END) st.n_stop_upstream++;
            else if (r.stop == SA_PIPELINE_STOP_MAX_ROUNDS) st.n_stop_rounds++;
            else st.n_stop_other++;
        }
        sa_pipeline_result_free(&r);
        if (!s && p->cancel && p->cancel(p->cancel_user)) s = sa_error(SA_STATUS_CANCELLED, "data build: cancelled");
        if (!s) s = ckpt_commit(&ck, p->out_path, i, &b.recs);
        if (!s) {
            st.n_records += b.recs.n;
            st.n_done++;
            st.elapsed_s = sa_time_now() - t0;
            if (p->on_progress) p->on_progress(p->progress_user, &st);
        }
    }
    sa_records_free(&b.recs);
    sa_pipeline_free(pl);
    ckpt_close(&ck);
    st.elapsed_s = sa_time_now() - t0;
    if (st_out) *st_out = st;
    return s;
}
