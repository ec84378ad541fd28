/* upstream.c: the upstream wrapper over an implementation's hooks (struct sa_upstream_ops):
 * checks the arguments once for every kind, keeps the idle/running/finished state so that
 * the hooks are only called when they make sense, and offers the callback style
 * (sa_upstream_generate) on top of start/next/cancel. */
#include "upstream/upstream_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum up_state {
    UP_IDLE,     /* no generation: start is the only useful call */
    UP_RUNNING,  /* started, last chunk not returned yet */
    UP_FINISHED, /* the last chunk was returned: next repeats an empty final chunk */
};

struct sa_upstream {
    const struct sa_upstream_ops *ops;
    void *impl;
    enum up_state state;
    enum sa_upstream_finish finish; /* UP_FINISHED: why */
};

struct sa_upstream_gen_params sa_upstream_gen_default_params(void) {
    return (struct sa_upstream_gen_params){
        .max_tokens = 256, .temperature = 0.0f, .top_p = 1.0f, .seed = SA_UPSTREAM_SEED_NONE};
}

const char *sa_upstream_finish_name(enum sa_upstream_finish f) {
    switch (f) {
    case SA_UPSTREAM_FINISH_NONE: return "none";
    case SA_UPSTREAM_FINISH_STOP: return "stop";
    case SA_UPSTREAM_FINISH_LENGTH: return "length";
    case SA_UPSTREAM_FINISH_OTHER: return "other";
    }
    return "unknown";
}

enum sa_status sa_upstream_init_ops(const struct sa_upstream_ops *ops, void *impl, struct sa_upstream **out) {
    if (out) *out = NULL;
    if (!ops || !ops->start || !ops->next || !ops->cancel || !ops->free || !out) {
        if (ops && ops->free && impl) ops->free(impl);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_upstream_init_ops: NULL ops, hook or out");
    }
    struct sa_upstream *up = calloc(1, sizeof *up);
    if (!up) {
        ops->free(impl);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    up->ops = ops;
    up->impl = impl;
    *out = up;
    return SA_STATUS_OK;
}

void sa_upstream_free(struct sa_upstream *up) {
    if (!up) return;
    sa_upstream_cancel(up);
    up->ops->free(up->impl);
    free(up);
}

const char *sa_upstream_kind(const struct sa_upstream *up) {
    return up && up->ops->name ? up->ops->name : "unknown";
}

static enum sa_status check_gen_params(const struct sa_upstream_gen_params *p) {
    if (p->max_tokens <= 0)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "upstream: max_tokens must be > 0 (got %d)", (int)p->max_tokens);
    if (!isfinite(p->temperature))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "upstream: temperature must be a finite number");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "upstream: top_p must be in (0, 1] (got %g)", (double)p->top_p);
    if (p->n_stop && !p->stop) return sa_error(SA_STATUS_BAD_ARGUMENT, "upstream: n_stop > 0 but stop is NULL");
    for (size_t i = 0; i < p->n_stop; i++) {
        const char *s = p->stop[i];
        if (!s || !*s) return sa_error(SA_STATUS_BAD_ARGUMENT, "upstream: stop string %zu is NULL or empty", i);
        size_t l = strlen(s);
        if (sa_utf8_valid_prefix(s, l) != l)
            return sa_error(SA_STATUS_BAD_ARGUMENT, "upstream: stop string %zu is not valid UTF-8", i);
    }
    return SA_STATUS_OK;
}

enum sa_status sa_upstream_start(struct sa_upstream *up, const char *prompt, size_t prompt_len,
                                 const struct sa_upstream_gen_params *params) {
    if (!up) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_upstream_start: NULL upstream");
    sa_upstream_cancel(up);
    if (!prompt) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_upstream_start: NULL prompt");
    if (memchr(prompt, 0, prompt_len))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "upstream: the prompt contains a NUL byte at offset %zu",
                        (size_t)((const char *)memchr(prompt, 0, prompt_len) - prompt));
    size_t ok = sa_utf8_valid_prefix(prompt, prompt_len);
    if (ok != prompt_len)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "upstream: the prompt is not valid UTF-8 (at byte %zu of %zu)", ok,
                        prompt_len);
    struct sa_upstream_gen_params p = params ? *params : sa_upstream_gen_default_params();
    enum sa_status s = check_gen_params(&p);
    if (s) return s;
    s = up->ops->start(up->impl, prompt, prompt_len, &p);
    if (s) return s;
    up->state = UP_RUNNING;
    return SA_STATUS_OK;
}

enum sa_status sa_upstream_next(struct sa_upstream *up, struct sa_upstream_chunk *out) {
    if (!up || !out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_upstream_next: NULL argument");
    memset(out, 0, sizeof *out);
    out->text = "";
    if (up->state == UP_IDLE)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "sa_upstream_next: no generation in progress (not started, cancelled, or it failed)");
    if (up->state == UP_FINISHED) {
        out->finish = up->finish;
        return SA_STATUS_OK;
    }
    enum sa_status s = up->ops->next(up->impl, out);
    if (s) {
        up->state = UP_IDLE;
        memset(out, 0, sizeof *out);
        out->text = "";
        return s;
    }
    if (!out->text) out->text = "";
    if (out->finish != SA_UPSTREAM_FINISH_NONE) {
        up->state = UP_FINISHED;
        up->finish = out->finish;
    }
    return SA_STATUS_OK;
}

void sa_upstream_cancel(struct sa_upstream *up) {
    if (!up) return;
    if (up->state == UP_RUNNING) up->ops->cancel(up->impl);
    up->state = UP_IDLE;
}

enum sa_status sa_upstream_generate(struct sa_upstream *up, const char *prompt, size_t prompt_len,
                                    const struct sa_upstream_gen_params *params, sa_upstream_text_fn on_text,
                                    void *user, enum sa_upstream_finish *finish) {
    if (finish) *finish = SA_UPSTREAM_FINISH_NONE;
    if (!on_text) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_upstream_generate: NULL callback");
    enum sa_status s = sa_upstream_start(up, prompt, prompt_len, params);
    if (s) return s;
    for (;;) {
        struct sa_upstream_chunk c;
        if ((s = sa_upstream_next(up, &c))) return s;
        if (c.len && !on_text(user, c.text, c.len, c.n_tokens)) {
            sa_upstream_cancel(up);
            return SA_STATUS_OK;
        }
        if (c.finish != SA_UPSTREAM_FINISH_NONE) {
            if (finish) *finish = c.finish;
            sa_upstream_cancel(up); /* back to idle */
            return SA_STATUS_OK;
        }
    }
}
