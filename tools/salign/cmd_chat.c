/* cmd_chat.c: `salign chat`: an interactive conversation for a person at a terminal. The
 * whole history is rendered with the model's chat template each turn and evaluated with
 * sa_ctx_eval_prompt, so only the new turn is computed (the cached prefix is reused).
 * Commands: /reset (forget the history), /exit; Ctrl-D ends too. */
#define _GNU_SOURCE
#include "cli.h"
#include "generate.h"

#include <stdlib.h>
#include <string.h>

struct history {
    struct sa_chat_msg *msgs;
    size_t n, cap;
};

static int history_push(struct history *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct sa_chat_msg *p = realloc(h->msgs, cap * sizeof *p);
        if (!p) return -1;
        h->msgs = p;
        h->cap = cap;
    }
    char *c = strdup(content);
    if (!c) return -1;
    h->msgs[h->n++] = (struct sa_chat_msg){role, c};
    return 0;
}

static void history_clear(struct history *h, size_t keep) {
    while (h->n > keep) free((char *)h->msgs[--h->n].content);
}

int cmd_chat(int argc, char **argv) {
    struct gen_opts o;
    gen_opts_init(&o);
    o.n_predict = 1024;
    int prc = cli_parse(&cli_cmd_chat, argc, argv, &o, NULL);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    if (!o.model) return cli_usage_error("chat", "no model (-m MODEL)");

    struct sa_model *m = NULL;
    int rc = gen_load_model(o.model, o.n_threads, &m);
    if (rc) return rc;
    const struct sa_tokenizer *tok = sa_model_tokenizer(m);
    const char *tmpl = sa_model_chat_template(m);
    enum sa_chat_format fmt = sa_chat_template_detect(tmpl, sa_model_config(m)->arch_name);
    struct sa_ctx *ctx = NULL;
    struct sa_sampler *smp = NULL;
    struct history h = {0};
    char *line = NULL;
    size_t line_cap = 0;
    if (fmt == SA_CHAT_FORMAT_UNKNOWN) {
        fprintf(stderr, "salign: the model's chat template is not one salign knows (chatml, gemma, llama3)\n");
        rc = CLI_FAIL;
        goto done;
    }
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_threads = o.n_threads;
    cp.n_ctx = o.n_ctx;
    cp.batch_invariant = o.batch_invariant;
    cp.kv_type = o.kv_type;
    if (sa_ctx_init(m, &cp, &ctx) || sa_sampler_init(&o.sp, sa_model_n_vocab(m), &smp)) {
        rc = cli_fail("context");
        goto done;
    }
    const size_t base = o.system ? 1 : 0;
    if (o.system && history_push(&h, "system", o.system)) {
        rc = cli_fail("out of memory");
        goto done;
    }
    fprintf(stderr, "salign chat: %s (%s format, %d-token context). /reset, /exit or Ctrl-D.\n",
            sa_model_config(m)->name[0] ? sa_model_config(m)->name : o.model, sa_chat_format_name(fmt), sa_ctx_n_ctx(ctx));
    for (;;) {
        fputs("> ", stdout);
        fflush(stdout);
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) { /* Ctrl-D */
            fputs("\n", stdout);
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            history_clear(&h, base);
            sa_sampler_reset(smp);
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        if (history_push(&h, "user", line)) {
            rc = cli_fail("out of memory");
            break;
        }
        char *text = NULL;
        size_t len = 0;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        struct sa_tokenize_opts to = {.add_special = !sa_chat_format_bos_in_text(fmt), .parse_special = true};
        if (sa_chat_render(fmt, tmpl, h.msgs, h.n, true, NULL, &text, &len) || sa_tokenize(tok, text, len, to, &ids, &n_ids)) {
            free(text);
            history_clear(&h, h.n - 1);
            cli_fail("chat template");
            continue;
        }
        free(text);
        if ((int64_t)n_ids + 1 >= sa_ctx_n_ctx(ctx)) {
            fprintf(stderr, "(the conversation no longer fits the %d-token context: /reset to start over)\n",
                    sa_ctx_n_ctx(ctx));
            free(ids);
            history_clear(&h, h.n - 1);
            continue;
        }
        int32_t reused = 0;
        if (sa_ctx_eval_prompt(ctx, ids, (int32_t)n_ids, NULL, &reused)) {
            free(ids);
            rc = cli_fail("prompt");
            break;
        }
        free(ids);
        struct gen_result res;
        int32_t room = sa_ctx_n_ctx(ctx) - sa_ctx_len(ctx);
        if ((rc = gen_run(ctx, smp, tok, o.n_predict < room ? o.n_predict : room, true, &res))) {
            free(res.text);
            break;
        }
        fputs("\n", stdout);
        int e = history_push(&h, "assistant", res.text);
        free(res.text);
        if (e) {
            rc = cli_fail("out of memory");
            break;
        }
    }
done:
    free(line);
    history_clear(&h, 0);
    free(h.msgs);
    sa_sampler_free(smp);
    sa_ctx_free(ctx);
    sa_model_free(m);
    return rc;
}
