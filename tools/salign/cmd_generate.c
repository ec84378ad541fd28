/* cmd_generate.c: `salign generate`: one completion (or one chat turn with --chat) streamed
 * to stdout as it is sampled; --json prints the text and timings instead. Also the shared
 * option parsing, model loading and token loop of generate.h (used by `salign chat`). */
#define _GNU_SOURCE
#include "cli.h"
#include "generate.h"

#include <cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void gen_opts_init(struct gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    o->sp = sa_sampler_default_params();
}

const char gen_opts_help[] =
    "  -m, --model MODEL   GGUF file, model directory, or cached model name (salign pull)\n"
    "      --system TEXT   system message (chat formats)\n"
    "  -n, --n-predict N   most tokens to generate (default 256)\n"
    "  -t, --threads N     compute threads (default: all cores)\n"
    "  -c, --ctx-size N    context size in tokens (default: what the prompt needs)\n"
    "      --batch-invariant  bitwise batch-invariant kernels (slower one-token decoding)\n"
    "      --temp T        temperature, 0 = greedy (default 0.8)\n"
    "      --top-k K       keep the K most likely tokens, 0 = off (default 40)\n"
    "      --top-p P       nucleus sampling, 1 = off (default 0.95)\n"
    "      --min-p P       drop tokens below P x the top probability, 0 = off (default 0.05)\n"
    "      --seed S        sampling seed (default: random)\n";

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || v != v) return false;
    *out = v;
    return true;
}

int gen_parse_opt(const char *cmd, int argc, char **argv, int *i, struct gen_opts *o) {
    const char *a = argv[*i];
    if (!strcmp(a, "--batch-invariant")) {
        o->batch_invariant = true;
        return 1;
    }
    static const char *const with_value[] = {"-m", "--model", "--system", "-n", "--n-predict", "-t", "--threads",
                                             "-c", "--ctx-size", "--temp", "--top-k", "--top-p", "--min-p", "--seed"};
    bool known = false;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= !strcmp(a, with_value[k]);
    if (!known) return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option %s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    long n;
    bool ok = true;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
    else if (!strcmp(a, "--system")) o->system = v;
    else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) ok = parse_long(v, 0, 1 << 24, &n) && ((o->n_predict = (int32_t)n), 1);
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) ok = parse_long(v, 0, 1024, &n) && ((o->n_threads = (int)n), 1);
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) ok = parse_long(v, 0, 1 << 24, &n) && ((o->n_ctx = (int32_t)n), 1);
    else if (!strcmp(a, "--temp")) ok = parse_float(v, &o->sp.temp);
    else if (!strcmp(a, "--top-k")) ok = parse_long(v, 0, 1 << 30, &n) && ((o->sp.top_k = (int32_t)n), 1);
    else if (!strcmp(a, "--top-p")) ok = parse_float(v, &o->sp.top_p) && o->sp.top_p >= 0;
    else if (!strcmp(a, "--min-p")) ok = parse_float(v, &o->sp.min_p) && o->sp.min_p >= 0;
    else if (!strcmp(a, "--seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        ok = !errno && end != v && !*end && v[0] != '-';
        o->sp.seed = (uint64_t)s;
    }
    if (!ok) {
        cli_usage_error(cmd, "bad value for %s: '%s'", a, v);
        return -1;
    }
    return 1;
}

int gen_load_model(const char *ref, int n_threads, struct sa_model **out) {
    *out = NULL;
    char *path = NULL;
    if (sa_hub_resolve(ref, NULL, &path) != SA_STATUS_OK) return cli_fail(NULL);
    struct sa_model_params mp = sa_model_default_params();
    mp.n_threads = n_threads;
    mp.use_mmap = !cli_no_mmap();
    enum sa_status s = sa_model_load(path, &mp, out);
    free(path);
    if (s) return cli_fail("loading the model");
    if (!sa_model_tokenizer(*out)) {
        sa_model_free(*out);
        *out = NULL;
        fprintf(stderr, "salign: %s: the model has no tokenizer (tokenizer.json)\n", ref);
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int append(struct gen_result *r, size_t *cap, const char *s, size_t n) {
    if (r->len + n + 1 > *cap) {
        size_t c = (*cap ? *cap : 256);
        while (c < r->len + n + 1) c *= 2;
        char *p = realloc(r->text, c);
        if (!p) return -1;
        r->text = p;
        *cap = c;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;
    return 0;
}

int gen_run(struct sa_ctx *ctx, struct sa_sampler *smp, const struct sa_tokenizer *tok, int32_t n_predict, bool stream,
            struct gen_result *res) {
    memset(res, 0, sizeof *res);
    size_t cap = 0;
    if (append(res, &cap, "", 0)) return cli_fail("out of memory");
    struct sa_detokenize_opts dopts = {.special = false, .strip_leading_space = false};
    struct sa_detok_stream *ds = NULL;
    if (sa_detok_stream_init(tok, dopts, &ds)) return cli_fail("detokenizer");
    const int32_t n_vocab = sa_model_n_vocab(sa_ctx_model(ctx));
    const double t0 = now_s();
    double t_first = 0;
    int rc = CLI_OK;
    for (int32_t i = 0; i < n_predict; i++) {
        const float *logits = sa_ctx_logits(ctx);
        int32_t id;
        if (!logits || sa_sampler_sample(smp, logits, n_vocab, &id)) {
            rc = cli_fail("sampling");
            break;
        }
        if (i == 0) {
            t_first = now_s();
            res->first_token_s = t_first - t0;
        }
        if (sa_tokenizer_is_eog(tok, id)) {
            res->hit_eog = true;
            break;
        }
        sa_sampler_accept(smp, id);
        res->n_tokens++;
        const char *piece;
        size_t n;
        if (sa_detok_stream_push(ds, id, &piece, &n)) {
            rc = cli_fail("detokenizer");
            break;
        }
        if (append(res, &cap, piece, n)) {
            rc = cli_fail("out of memory");
            break;
        }
        if (stream && n) {
            fwrite(piece, 1, n, stdout);
            fflush(stdout);
        }
        if (i + 1 == n_predict || sa_ctx_len(ctx) >= sa_ctx_n_ctx(ctx)) break;
        if (sa_ctx_decode(ctx, &id, 1, NULL)) {
            rc = cli_fail("decode");
            break;
        }
    }
    const char *piece;
    size_t n;
    if (rc == CLI_OK && sa_detok_stream_flush(ds, &piece, &n) == SA_STATUS_OK && n) {
        if (append(res, &cap, piece, n)) rc = cli_fail("out of memory");
        else if (stream) fwrite(piece, 1, n, stdout);
    }
    if (t_first > 0) res->decode_s = now_s() - t_first;
    sa_detok_stream_free(ds);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f, "Usage: salign generate -m MODEL -p TEXT [OPTIONS]\n\n"
               "Generates a continuation of TEXT (or, with --chat, the model's answer to it as a user\n"
               "message), streamed to stdout as it comes. Stops at end-of-generation tokens.\n\n"
               "Options:\n"
               "  -p, --prompt TEXT   the prompt\n"
               "      --chat          format TEXT as a user message with the model's chat template\n"
               "      --json          print {text, prompt_tokens, prompt_tok_s, generated_tokens,\n"
               "                      decode_tok_s, ttft_ms} instead of streaming\n"
               "%s"
               "  -h, --help          this help\n",
            gen_opts_help);
}

/* Tokens of the prompt: raw text, or one chat turn rendered with the model's template. */
static int prompt_tokens(const struct sa_model *m, const char *text, bool chat, const char *system, int32_t **ids,
                         size_t *n) {
    const struct sa_tokenizer *tok = sa_model_tokenizer(m);
    if (!chat) {
        struct sa_tokenize_opts to = {.add_special = true, .parse_special = false};
        if (sa_tokenize(tok, text, strlen(text), to, ids, n)) return cli_fail("tokenizing the prompt");
        return CLI_OK;
    }
    const char *tmpl = sa_model_chat_template(m);
    enum sa_chat_format fmt = sa_chat_template_detect(tmpl, sa_model_config(m)->arch_name);
    if (fmt == SA_CHAT_FORMAT_UNKNOWN) {
        fprintf(stderr, "salign: the model's chat template is not one salign knows (chatml, gemma, llama3)\n");
        return CLI_FAIL;
    }
    struct sa_chat_msg msgs[2];
    size_t k = 0;
    if (system) msgs[k++] = (struct sa_chat_msg){"system", system};
    msgs[k++] = (struct sa_chat_msg){"user", text};
    char *rendered = NULL;
    size_t len = 0;
    if (sa_chat_render(fmt, tmpl, msgs, k, true, NULL, &rendered, &len)) return cli_fail("chat template");
    struct sa_tokenize_opts to = {.add_special = !sa_chat_format_bos_in_text(fmt), .parse_special = true};
    enum sa_status s = sa_tokenize(tok, rendered, len, to, ids, n);
    free(rendered);
    if (s) return cli_fail("tokenizing the prompt");
    return CLI_OK;
}

int cmd_generate(int argc, char **argv) {
    struct gen_opts o;
    gen_opts_init(&o);
    const char *prompt = NULL;
    bool chat = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = gen_parse_opt("generate", argc, argv, &i, &o);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (i + 1 >= argc) return cli_usage_error("generate", "option %s needs a value", a);
            prompt = argv[++i];
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            return cli_usage_error("generate", "unknown argument '%s'", a);
        }
    }
    if (!o.model) return cli_usage_error("generate", "no model (-m MODEL)");
    if (!prompt) return cli_usage_error("generate", "no prompt (-p TEXT)");
    if (o.system && !chat) return cli_usage_error("generate", "--system needs --chat");

    struct sa_model *m = NULL;
    int rc = gen_load_model(o.model, o.n_threads, &m);
    if (rc) return rc;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct sa_ctx *ctx = NULL;
    struct sa_sampler *smp = NULL;
    struct gen_result res = {0};
    if ((rc = prompt_tokens(m, prompt, chat, o.system, &ids, &n_ids))) goto done;
    if (n_ids == 0) {
        rc = cli_usage_error("generate", "the prompt gives no tokens");
        goto done;
    }
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_threads = o.n_threads;
    cp.batch_invariant = o.batch_invariant;
    const int32_t n_train = sa_model_config(m)->n_ctx_train;
    cp.n_ctx = o.n_ctx > 0 ? o.n_ctx : (int32_t)n_ids + (o.n_predict > 0 ? o.n_predict : 1);
    if (o.n_ctx == 0 && n_train > 0 && cp.n_ctx > n_train) cp.n_ctx = n_train;
    if ((int64_t)n_ids >= cp.n_ctx) {
        fprintf(stderr, "salign: the prompt has %zu tokens; the context holds %d\n", n_ids, cp.n_ctx);
        rc = CLI_FAIL;
        goto done;
    }
    if (sa_ctx_init(m, &cp, &ctx)) {
        rc = cli_fail("context");
        goto done;
    }
    if (sa_sampler_init(&o.sp, sa_model_n_vocab(m), &smp)) {
        rc = cli_fail("sampler");
        goto done;
    }
    for (size_t i = 0; i < n_ids; i++) sa_sampler_accept(smp, ids[i]);
    const double t0 = now_s();
    if (sa_ctx_decode(ctx, ids, (int32_t)n_ids, NULL)) {
        rc = cli_fail("prompt");
        goto done;
    }
    const double t_prompt = now_s() - t0;
    if ((rc = gen_run(ctx, smp, sa_model_tokenizer(m), o.n_predict, !json, &res))) goto done;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "text", res.text);
        cJSON_AddNumberToObject(j, "prompt_tokens", (double)n_ids);
        cJSON_AddNumberToObject(j, "prompt_tok_s", t_prompt > 0 ? (double)n_ids / t_prompt : 0);
        cJSON_AddNumberToObject(j, "generated_tokens", res.n_tokens);
        /* decode speed: tokens decoded after the first sampled one */
        const int32_t n_dec = res.hit_eog ? res.n_tokens : res.n_tokens - 1;
        cJSON_AddNumberToObject(j, "decode_tok_s", res.decode_s > 0 && n_dec > 0 ? n_dec / res.decode_s : 0);
        cJSON_AddNumberToObject(j, "ttft_ms", (t_prompt + res.first_token_s) * 1000.0);
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("\n");
    }
done:
    free(res.text);
    sa_sampler_free(smp);
    sa_ctx_free(ctx);
    free(ids);
    sa_model_free(m);
    return rc;
}
