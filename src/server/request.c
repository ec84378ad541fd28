/* request.c: the request bodies of the server: size, UTF-8 and nesting checked before cJSON
 * sees them, then the fields of /v1/chat/completions and /v1/completions that we honour
 * (messages, prompt, model, stream, stream_options.include_usage, max_tokens,
 * max_completion_tokens, temperature, top_p, seed, stop, n = 1, user), each type-checked,
 * with OpenAI's error shape for everything refused. Unknown fields are ignored, as OpenAI's
 * API does. */
#define _GNU_SOURCE
#include "server/server_impl.h"

#include "core/core_impl.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void srv_req_clear(struct srv_req *r) {
    free(r->model);
    free(r->question);
    free(r->system);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

bool srv_fail(struct srv_err *e, int http, const char *type, const char *param, const char *code, const char *fmt,
              ...) {
    e->http = http;
    e->type = type;
    e->param = param;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

char *srv_err_json(const struct srv_err *e) {
    cJSON *root = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(root, "error");
    if (o) {
        cJSON_AddStringToObject(o, "message", e->message);
        cJSON_AddStringToObject(o, "type", e->type ? e->type : "invalid_request_error");
        if (e->param) cJSON_AddStringToObject(o, "param", e->param);
        else cJSON_AddNullToObject(o, "param");
        if (e->code) cJSON_AddStringToObject(o, "code", e->code);
        else cJSON_AddNullToObject(o, "code");
    }
    char *s = o ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

static bool bad(struct srv_err *e, const char *param, const char *fmt, const char *a) {
    return srv_fail(e, 400, "invalid_request_error", param, NULL, fmt, a);
}

bool srv_check_body(const char *body, size_t len, int max_depth, struct srv_err *e) {
    if (!len) return bad(e, NULL, "%sthe request has no body: send a JSON object", "");
    size_t ok = sa_utf8_valid_prefix(body, len);
    if (ok != len) {
        char at[32];
        snprintf(at, sizeof at, "%zu", ok);
        return bad(e, NULL, "the body is not valid UTF-8 (first bad byte at offset %s)", at);
    }
    if (memchr(body, 0, len)) return bad(e, NULL, "%sthe body holds a NUL byte", "");
    /* nesting depth, counted outside strings: cJSON recurses once per level */
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        const char c = body[i];
        if (in_str) {
            if (c == '\\' && i + 5 < len && !memcmp(body + i + 1, "u0000", 5))
                return bad(e, NULL, "%sa string holds \\u0000 (NUL), which is not supported", "");
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                char d[16];
                snprintf(d, sizeof d, "%d", max_depth);
                return bad(e, NULL, "the JSON body is nested deeper than %s levels", d);
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

/* Every string under v is valid UTF-8 (a "\ud800" escape gives invalid bytes) and none holds
 * \u0000 (cJSON would cut it silently: the valuestring is shorter than the escape says). */
static bool strings_ok(const cJSON *v) {
    for (const cJSON *c = v->child; c; c = c->next) {
        if (c->string && sa_utf8_valid_prefix(c->string, strlen(c->string)) != strlen(c->string)) return false;
        if (cJSON_IsString(c) && c->valuestring &&
            sa_utf8_valid_prefix(c->valuestring, strlen(c->valuestring)) != strlen(c->valuestring))
            return false;
        if (c->child && !strings_ok(c)) return false;
    }
    return true;
}

static const char *type_name(const cJSON *j) {
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

static bool wrong_type(struct srv_err *e, const char *param, const char *want, const cJSON *got) {
    return srv_fail(e, 400, "invalid_request_error", param, NULL, "'%s' must be %s, got %s", param, want,
                    type_name(got));
}

/* A field that may be absent or null (then *out is NULL). */
static const cJSON *field(const cJSON *root, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsNull(v) ? NULL : v;
}

static bool get_number(const cJSON *root, const char *name, double lo, double hi, bool integer, bool *has,
                       double *out, struct srv_err *e) {
    const cJSON *v = field(root, name);
    *has = false;
    if (!v) return true;
    if (!cJSON_IsNumber(v)) return wrong_type(e, name, integer ? "an integer" : "a number", v);
    const double x = v->valuedouble;
    if (!isfinite(x) || (integer && x != floor(x)))
        return srv_fail(e, 400, "invalid_request_error", name, NULL, "'%s' must be %s", name,
                        integer ? "an integer" : "a finite number");
    if (x < lo || x > hi)
        return srv_fail(e, 400, "invalid_request_error", name, NULL, "'%s' is %g; it must be between %g and %g", name,
                        x, lo, hi);
    *has = true;
    *out = x;
    return true;
}

/* The text of a message's content: a string, or an array of {"type": "text", "text"} parts. */
static bool content_text(const cJSON *c, const char *param, char **out, struct srv_err *e) {
    if (cJSON_IsString(c)) {
        *out = strdup(c->valuestring);
    } else if (cJSON_IsArray(c)) {
        size_t n = 0;
        const cJSON *part;
        cJSON_ArrayForEach(part, c) {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsObject(part) || !cJSON_IsString(t) || strcmp(t->valuestring, "text") || !cJSON_IsString(x))
                return srv_fail(e, 400, "invalid_request_error", param, NULL,
                                "'%s': only text parts ({\"type\": \"text\", \"text\": ...}) are supported", param);
            n += strlen(x->valuestring);
        }
        char *s = malloc(n + 1);
        if (!s) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        size_t k = 0;
        cJSON_ArrayForEach(part, c) {
            const char *x = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
            memcpy(s + k, x, strlen(x));
            k += strlen(x);
        }
        s[k] = 0;
        *out = s;
    } else {
        return wrong_type(e, param, "a string or an array of text parts", c);
    }
    if (!*out) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

static bool parse_messages(const cJSON *root, struct srv_req *r, struct srv_err *e) {
    const cJSON *msgs = field(root, "messages");
    if (!msgs) return srv_fail(e, 400, "invalid_request_error", "messages", NULL, "'messages' is required");
    if (!cJSON_IsArray(msgs)) return wrong_type(e, "messages", "an array", msgs);
    const int n = cJSON_GetArraySize(msgs);
    if (n == 0) return srv_fail(e, 400, "invalid_request_error", "messages", NULL, "'messages' is empty");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        if (!cJSON_IsObject(m)) return wrong_type(e, "messages", "an array of objects", m);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role)) return wrong_type(e, "messages.role", "a string", role);
        if (!content) return srv_fail(e, 400, "invalid_request_error", "messages.content", NULL,
                                      "message %d has no 'content'", i);
        const char *rn = role->valuestring;
        const bool sys = !strcmp(rn, "system") || !strcmp(rn, "developer");
        if (sys && i == 0 && n > 1) {
            if (!content_text(content, "messages.content", &r->system, e)) return false;
        } else if (!strcmp(rn, "user") && i == n - 1) {
            if (!content_text(content, "messages.content", &r->question, e)) return false;
        } else {
            /* The pipeline answers one question (the aligner sees the question and the answer
             * so far): a conversation's earlier turns would be dropped silently. */
            return srv_fail(e, 400, "invalid_request_error", "messages", NULL,
                            "unsupported conversation: give one 'user' message, optionally after one 'system' "
                            "message (message %d has role '%s'; earlier turns are not supported)",
                            i, rn);
        }
        i++;
    }
    return true;
}

static bool parse_prompt(const cJSON *root, struct srv_req *r, struct srv_err *e) {
    const cJSON *p = field(root, "prompt");
    if (!p) return srv_fail(e, 400, "invalid_request_error", "prompt", NULL, "'prompt' is required");
    if (cJSON_IsArray(p)) {
        if (cJSON_GetArraySize(p) != 1 || !cJSON_IsString(cJSON_GetArrayItem(p, 0)))
            return srv_fail(e, 400, "invalid_request_error", "prompt", NULL,
                            "'prompt' must be a string (or an array of exactly one string)");
        p = cJSON_GetArrayItem(p, 0);
    }
    if (!cJSON_IsString(p)) return wrong_type(e, "prompt", "a string", p);
    if (!(r->question = strdup(p->valuestring))) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

static bool parse_stop(const cJSON *root, struct srv_req *r, struct srv_err *e) {
    const cJSON *s = field(root, "stop");
    if (!s) return true;
    if (cJSON_IsString(s)) {
        if (*s->valuestring && !(r->stop[r->n_stop++] = strdup(s->valuestring)))
            return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return true;
    }
    if (!cJSON_IsArray(s)) return wrong_type(e, "stop", "a string or an array of strings", s);
    if (cJSON_GetArraySize(s) > SRV_MAX_STOP)
        return srv_fail(e, 400, "invalid_request_error", "stop", NULL, "'stop' holds at most %d strings",
                        SRV_MAX_STOP);
    const cJSON *x;
    cJSON_ArrayForEach(x, s) {
        if (!cJSON_IsString(x)) return wrong_type(e, "stop", "a string or an array of strings", x);
        if (*x->valuestring && !(r->stop[r->n_stop++] = strdup(x->valuestring)))
            return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return true;
}

static bool parse_model(const cJSON *root, const char *name, struct srv_req *r, struct srv_err *e) {
    const cJSON *m = field(root, "model");
    const char *id = name;
    if (m && !cJSON_IsString(m)) return wrong_type(e, "model", "a string", m);
    if (m) id = m->valuestring;
    const size_t nl = strlen(name);
    if (!strcmp(id, name)) r->mode = SA_PIPELINE_STREAM;
    else if (!strncmp(id, name, nl) && !strcmp(id + nl, ":upstream")) r->mode = SA_PIPELINE_UPSTREAM;
    else if (!strncmp(id, name, nl) && !strcmp(id + nl, ":aligner")) r->mode = SA_PIPELINE_ALIGNER;
    else
        return srv_fail(e, 404, "invalid_request_error", "model", "model_not_found",
                        "The model '%.200s' does not exist: this server serves '%s', '%s:upstream' and '%s:aligner' "
                        "(GET /v1/models)",
                        id, name, name, name);
    if (!(r->model = strdup(id))) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

bool srv_req_parse(const char *body, size_t len, enum srv_kind kind, const char *name, int max_depth,
                   struct srv_req *r, struct srv_err *e) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    if (!srv_check_body(body, len, max_depth, e)) return false;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        const size_t at = end && end >= body ? (size_t)(end - body) : 0;
        return srv_fail(e, 400, "invalid_request_error", NULL, NULL,
                        "We could not parse the JSON body of your request: malformed JSON near byte %zu", at);
    }
    bool ok = false;
    double x = 0;
    bool has = false;
    if (!cJSON_IsObject(root)) {
        srv_fail(e, 400, "invalid_request_error", NULL, NULL, "the body must be a JSON object, got %s",
                 type_name(root));
        goto done;
    }
    if (!strings_ok(root)) {
        srv_fail(e, 400, "invalid_request_error", NULL, NULL, "a string of the body is not valid UTF-8");
        goto done;
    }
    if (!parse_model(root, name, r, e)) goto done;
    if (kind == SRV_CHAT ? !parse_messages(root, r, e) : !parse_prompt(root, r, e)) goto done;
    if (strspn(r->question, " \t\r\n") == strlen(r->question)) {
        srv_fail(e, 400, "invalid_request_error", kind == SRV_CHAT ? "messages" : "prompt", NULL,
                 "the question is empty");
        goto done;
    }
    const cJSON *v = field(root, "stream");
    if (v && !cJSON_IsBool(v)) {
        wrong_type(e, "stream", "a boolean", v);
        goto done;
    }
    r->stream = cJSON_IsTrue(v);
    const cJSON *so = field(root, "stream_options");
    if (so && !cJSON_IsObject(so)) {
        wrong_type(e, "stream_options", "an object", so);
        goto done;
    }
    const cJSON *iu = so ? field(so, "include_usage") : NULL;
    if (iu && !cJSON_IsBool(iu)) {
        wrong_type(e, "stream_options.include_usage", "a boolean", iu);
        goto done;
    }
    r->include_usage = cJSON_IsTrue(iu);
    /* max_completion_tokens is the chat API's newer name; max_tokens wins when both come */
    if (!get_number(root, "max_completion_tokens", 1, 1 << 24, true, &has, &x, e)) goto done;
    if (has) r->max_tokens = (int32_t)x;
    if (!get_number(root, "max_tokens", 1, 1 << 24, true, &has, &x, e)) goto done;
    if (has) r->max_tokens = (int32_t)x;
    if (!get_number(root, "temperature", 0, 2, false, &r->has_temp, &x, e)) goto done;
    if (r->has_temp) r->temperature = (float)x;
    if (!get_number(root, "top_p", 0, 1, false, &r->has_top_p, &x, e)) goto done;
    if (r->has_top_p) r->top_p = x > 0 ? (float)x : 1e-6f; /* 0: the most likely token alone */
    if (!get_number(root, "seed", -9007199254740992.0, 9007199254740992.0, true, &r->has_seed, &x, e)) goto done;
    if (r->has_seed) r->seed = (uint64_t)(int64_t)x;
    if (!get_number(root, "n", 1, 128, true, &has, &x, e)) goto done;
    if (has && x != 1) {
        srv_fail(e, 400, "invalid_request_error", "n", NULL, "'n' must be 1: this server writes one answer a request");
        goto done;
    }
    v = field(root, "user");
    if (v && !cJSON_IsString(v)) {
        wrong_type(e, "user", "a string", v);
        goto done;
    }
    if (!parse_stop(root, r, e)) goto done;
    /* Refused rather than ignored: a client asking for these would read a wrong answer. */
    v = field(root, "logprobs");
    if (v && !cJSON_IsFalse(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0)) {
        srv_fail(e, 400, "invalid_request_error", "logprobs", NULL, "'logprobs' is not supported");
        goto done;
    }
    v = field(root, "tools");
    if (v && !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0)) {
        srv_fail(e, 400, "invalid_request_error", "tools", NULL, "'tools' (function calling) is not supported");
        goto done;
    }
    v = field(root, "echo");
    if (v && cJSON_IsTrue(v)) {
        srv_fail(e, 400, "invalid_request_error", "echo", NULL, "'echo' is not supported");
        goto done;
    }
    ok = true;
done:
    cJSON_Delete(root);
    if (!ok) srv_req_clear(r);
    return ok;
}
