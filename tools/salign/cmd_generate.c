/* cmd_generate.c: `salign generate`: one completion (or one chat turn with --chat) streamed
 * to stdout as it is sampled; --json prints the text and timings instead. --samples N: N
 * completions of one prompt, forked from one prefill (sa_ctx_copy_prefix) and decoded
 * together (sa_batch_decode), each with its own sampler seeded seed+i. Also the option
 * table it shares with `salign chat` (cli_cmd_generate, cli_cmd_chat), and the model loading
 * and token loop of generate.h. */
#define _GNU_SOURCE
#include "cli.h"
#include "generate.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void gen_opts_init(struct gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    o->sp = sa_sampler_default_params();
    o->lora_scale = 1.0f;
    o->proxy_alpha = NAN;
    o->cvec_scale = 1.0f;
}

#define O(f) CLI_AT(struct gen_opts, f)
enum { GEN_ONLY = 1, GEN_CHAT = 2 };
static const struct cli_opt gen_opt_table[] = {
    {"prompt", 'p', CLI_OPT_STR, O(prompt), .mask = GEN_ONLY, .arg = "TEXT", .help = "the prompt"},
    {"chat", 0, CLI_OPT_FLAG, O(chat), .mask = GEN_ONLY,
     .help = "format TEXT as a user message with the model's chat template"},
    {"json", 0, CLI_OPT_FLAG, O(json), .mask = GEN_ONLY,
     .help = "print {text, prompt_tokens, prompt_tok_s, generated_tokens,\ndecode_tok_s, ttft_ms} instead of "
             "streaming; with --samples,\none line per sample: {index, seed, text, n_tokens, stop}"},
    {"samples", 0, CLI_OPT_INT, O(n_samples), .mask = GEN_ONLY, .imin = 1, .imax = 256, .arg = "N",
     .help = "N samples of the prompt from one prefill, decoded together\n(batched); sample i (from 0) is "
             "seeded S+i, S = --seed\n(random if not given; printed), and equals a run of its own\nwith --seed S+i "
             "under --batch-invariant. Printed when all\nare done, numbered. --temp 0 (greedy): all samples are "
             "the same"},
    {"model", 'm', CLI_OPT_STR, O(model), .arg = "MODEL",
     .help = "GGUF file, model directory, or cached model name (salign pull)"},
    {"lora", 0, CLI_OPT_STR, O(lora), .mask = GEN_ONLY, .arg = "FILE",
     .help = "apply a LoRA adapter (llama.cpp's GGUF LoRA format, e.g.\nsalign train's model/adapter.gguf)"},
    {"lora-scale", 0, CLI_OPT_FLOAT, O(lora_scale), .mask = GEN_ONLY, .lo = -1e6, .hi = 1e6, .arg = "S",
     .help = "scale of the adapter (default 1: as trained; 0: off)"},
    {"proxy-expert", 0, CLI_OPT_STR, O(proxy_expert), .mask = GEN_ONLY, .arg = "M",
     .help = "proxy-tuning (Liu et al. 2024): sample from\nmodel + A x (expert - anti); M: the expert (a path or\n"
             "cached name, as -m); it must share the model's vocabulary"},
    {"proxy-anti", 0, CLI_OPT_STR, O(proxy_anti), .mask = GEN_ONLY, .arg = "M",
     .help = "the anti-expert (the expert's untuned base)"},
    {"proxy-alpha", 0, CLI_OPT_FLOAT, O(proxy_alpha), .mask = GEN_ONLY, .lo = -1e6, .hi = 1e6, .arg = "A",
     .help = "weight of (expert - anti) (default 1; 0: the model alone)"},
    {"proxy-expert-lora", 0, CLI_OPT_STR, O(proxy_expert_lora), .mask = GEN_ONLY, .arg = "FILE",
     .help = "a LoRA adapter over the expert (then the expert may be\nthe anti-expert's file: base + adapter)"},
    {"control-vector", 0, CLI_OPT_STR, O(cvec), .mask = GEN_ONLY, .arg = "FILE",
     .help = "steer with a control vector (llama.cpp's GGUF format:\ndirection.K added after block K; docs/STEER.md)"},
    {"control-scale", 0, CLI_OPT_FLOAT, O(cvec_scale), .mask = GEN_ONLY, .lo = -1e6, .hi = 1e6, .arg = "C",
     .help = "scale of the control vector (default 1; 0: off)"},
    {"system", 0, CLI_OPT_STR, O(system), .arg = "TEXT", .help = "system message (chat formats)"},
    {"n-predict", 'n', CLI_OPT_INT, O(n_predict), .imin = 0, .imax = 1 << 24, .arg = "N",
     .help = "most tokens to generate (default 256; chat: 1024)"},
    {"threads", 't', CLI_OPT_INT, O(n_threads), .imin = 0, .imax = 1024, .arg = "N",
     .help = "compute threads (default: all cores)"},
    {"ctx-size", 'c', CLI_OPT_INT, O(n_ctx), .imin = 0, .imax = 1 << 24, .arg = "N",
     .help = "context size in tokens (default: what the prompt needs)"},
    {"batch-invariant", 0, CLI_OPT_FLAG, O(batch_invariant),
     .help = "bitwise batch-invariant kernels (slower one-token decoding)"},
    CLI_KV_TYPE_ENTRY(O(kv_type)),
    {"temp", 0, CLI_OPT_FLOAT, O(sp.temp), .lo = -INFINITY, .hi = INFINITY, .arg = "T",
     .help = "temperature, 0 = greedy (default 0.8)"},
    {"top-k", 0, CLI_OPT_INT, O(sp.top_k), .imin = 0, .imax = 1 << 30, .arg = "K",
     .help = "keep the K most likely tokens, 0 = off (default 40)"},
    {"top-p", 0, CLI_OPT_FLOAT, O(sp.top_p), .lo = 0, .hi = INFINITY, .arg = "P",
     .help = "nucleus sampling, 1 = off (default 0.95)"},
    {"min-p", 0, CLI_OPT_FLOAT, O(sp.min_p), .lo = 0, .hi = INFINITY, .arg = "P",
     .help = "drop tokens below P x the top probability, 0 = off (default 0.05)"},
    {"seed", 0, CLI_OPT_UINT, O(sp.seed), .umin = 0, .umax = UINT64_MAX, .arg = "S",
     .help = "sampling seed (default: random)"},
    CLI_HELP_ENTRY,
};
#undef O
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

int gen_load_lora(const struct sa_model *m, const char *path, struct sa_lora **out) {
    if (sa_lora_load(m, path, NULL, out)) return cli_fail("loading the LoRA adapter");
    return CLI_OK;
}

char *gen_adapters_dir(void) {
    const char *env = getenv("SALIGN_ADAPTERS");
    if (env && *env) return strdup(env);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0; /* the binary's folder */
    const char *tries[] = {"%s/../models", "%s/../share/salign/models"};
    for (size_t i = 0; i < 2; i++) {
        char d[4200];
        snprintf(d, sizeof d, tries[i], exe);
        struct stat st;
        if (stat(d, &st) == 0 && S_ISDIR(st.st_mode)) return strdup(d);
    }
    return NULL;
}

int gen_resolve_adapter_name(const char *ref, char **base, char **adapter) {
    *base = *adapter = NULL;
    char *dir = gen_adapters_dir();
    struct sa_hub_adapter ha;
    enum sa_status s = dir ? sa_hub_adapter_resolve(ref, dir, &ha) : SA_STATUS_NOT_FOUND;
    free(dir);
    if (s == SA_STATUS_NOT_FOUND) {
        if (!(*base = strdup(ref))) return cli_fail("out of memory");
        return CLI_OK;
    }
    if (s) return cli_fail(NULL);
    *base = ha.base;
    *adapter = ha.adapter;
    ha.base = ha.adapter = NULL;
    sa_hub_adapter_free(&ha);
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
    return gen_run_proxy(ctx, NULL, smp, tok, n_predict, stream, res);
}

int gen_run_proxy(struct sa_ctx *ctx, struct sa_proxy *px, struct sa_sampler *smp, const struct sa_tokenizer *tok,
                  int32_t n_predict, bool stream, struct gen_result *res) {
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
        if (px && sa_proxy_logits(px, ctx, &logits)) {
            rc = cli_fail("proxy-tuning");
            break;
        }
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

const struct cli_cmd cli_cmd_generate = {
    .name = "generate",
    .opts = gen_opt_table,
    .n_opts = sizeof gen_opt_table / sizeof gen_opt_table[0],
    .usage = "Usage: salign generate -m MODEL -p TEXT [OPTIONS]\n\n"
             "Generates a continuation of TEXT (or, with --chat, the model's answer to it as a user\n"
             "message), streamed to stdout as it comes. Stops at end-of-generation tokens.\n"
             "With --samples N, N completions decoded together from one prefill of the prompt.\n"
             "With --proxy-expert E --proxy-anti A, proxy-tuning: each token is drawn from\n"
             "MODEL + alpha x (E - A), the three models reading the same tokens (docs/PROXY.md).\n\n",
};

/* --samples N: N completions of one prompt. The prompt is evaluated once in ctx[0] and copied
 * into the other contexts (sa_ctx_copy_prefix: KV rows and last logits); then each step draws
 * one token per live sample from its own sampler (seed S+i) and decodes them all in one
 * sa_batch_decode. A sample stops on its own: an end-of-generation token, n_predict tokens, or
 * a full context. Output once all are done: text blocks headed by their number, or one JSON
 * object per line. */
struct sample {
    struct sa_ctx *ctx;
    struct sa_sampler *smp;
    struct sa_detok_stream *ds;
    struct gen_result res;
    size_t cap;
    uint64_t seed;
    const char *stop; /* "eog", "length" (n_predict), "context" (full); NULL: running */
};

static int gen_samples(struct sa_model *m, const struct gen_opts *o, const struct sa_ctx_params *cp,
                       const int32_t *ids, int32_t n_ids) {
    const int32_t N = o->n_samples, V = sa_model_n_vocab(m);
    const struct sa_tokenizer *tok = sa_model_tokenizer(m);
    struct sample *sm = calloc((size_t)N, sizeof *sm);
    struct sa_batch_seq *seqs = calloc((size_t)N, sizeof *seqs);
    int32_t *next = calloc((size_t)N, sizeof *next);
    struct sa_batch *batch = NULL;
    int rc = CLI_OK;
    if (!sm || !seqs || !next) {
        rc = cli_fail("out of memory");
        goto done;
    }
    struct sa_batch_params bp = sa_batch_default_params();
    bp.n_tokens = N; /* one pass per step */
    bp.n_seq_max = N;
    bp.n_ctx = cp->n_ctx;
    bp.n_threads = o->n_threads;
    bp.batch_invariant = o->batch_invariant;
    if (sa_batch_init(m, &bp, &batch)) {
        rc = cli_fail("batch");
        goto done;
    }
    struct sa_sampler_params sp = o->sp;
    struct sa_detokenize_opts dopts = {.special = false, .strip_leading_space = false};
    for (int32_t i = 0; i < N; i++) {
        struct sa_ctx_params c = *cp;
        if (i > 0) { /* a fork never computes alone (the batch does): no scratch for a prefill */
            c.n_batch = 1;
            c.n_threads = 1;
        }
        if (sa_ctx_init(m, &c, &sm[i].ctx)) {
            rc = cli_fail("context");
            goto done;
        }
        if (sa_sampler_init(&sp, V, &sm[i].smp)) {
            rc = cli_fail("sampler");
            goto done;
        }
        /* S: --seed, or the first sampler's drawn seed; sample i gets S + i (mod 2^64) */
        sm[i].seed = sa_sampler_seed(sm[i].smp);
        sp.seed = sm[0].seed + (uint64_t)(i + 1);
        for (int32_t k = 0; k < n_ids; k++) sa_sampler_accept(sm[i].smp, ids[k]);
        if (sa_detok_stream_init(tok, dopts, &sm[i].ds) || append(&sm[i].res, &sm[i].cap, "", 0)) {
            rc = cli_fail("detokenizer");
            goto done;
        }
    }
    if (sa_ctx_decode(sm[0].ctx, ids, n_ids, NULL)) {
        rc = cli_fail("prompt");
        goto done;
    }
    for (int32_t i = 1; i < N; i++)
        if (sa_ctx_copy_prefix(sm[i].ctx, sm[0].ctx, n_ids)) {
            rc = cli_fail("fork");
            goto done;
        }
    if (o->n_predict == 0)
        for (int32_t i = 0; i < N; i++) sm[i].stop = "length";
    for (int32_t step = 0;; step++) {
        int32_t nb = 0;
        for (int32_t i = 0; i < N; i++) {
            struct sample *s = &sm[i];
            if (s->stop) continue;
            const float *logits = sa_ctx_logits(s->ctx);
            int32_t id;
            if (!logits || sa_sampler_sample(s->smp, logits, V, &id)) {
                rc = cli_fail("sampling");
                goto done;
            }
            if (sa_tokenizer_is_eog(tok, id)) {
                s->res.hit_eog = true;
                s->stop = "eog";
                continue;
            }
            sa_sampler_accept(s->smp, id);
            s->res.n_tokens++;
            const char *piece;
            size_t n;
            if (sa_detok_stream_push(s->ds, id, &piece, &n) || append(&s->res, &s->cap, piece, n)) {
                rc = cli_fail("detokenizer");
                goto done;
            }
            if (step + 1 == o->n_predict) s->stop = "length";
            else if (sa_ctx_len(s->ctx) >= sa_ctx_n_ctx(s->ctx)) s->stop = "context";
            if (s->stop) continue;
            next[i] = id;
            seqs[nb++] = (struct sa_batch_seq){.ctx = s->ctx, .tokens = &next[i], .n = 1};
        }
        if (nb == 0) break;
        if (sa_batch_decode(batch, seqs, nb)) {
            rc = cli_fail("decode");
            goto done;
        }
    }
    for (int32_t i = 0; i < N; i++) {
        struct sample *s = &sm[i];
        const char *piece;
        size_t n;
        if (sa_detok_stream_flush(s->ds, &piece, &n) == SA_STATUS_OK && n && append(&s->res, &s->cap, piece, n)) {
            rc = cli_fail("out of memory");
            goto done;
        }
        if (o->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "index", i);
            char seed[24]; /* a uint64 exactly: a JSON number may not hold it as a double */
            snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
            cJSON_AddRawToObject(j, "seed", seed);
            cJSON_AddStringToObject(j, "text", s->res.text);
            cJSON_AddNumberToObject(j, "n_tokens", s->res.n_tokens);
            cJSON_AddStringToObject(j, "stop", s->stop);
            char *txt = cJSON_PrintUnformatted(j);
            if (txt) printf("%s\n", txt);
            free(txt);
            cJSON_Delete(j);
        } else {
            printf("%s--- sample %d of %d (seed %llu, %d tokens, stop: %s) ---\n%s\n", i ? "\n" : "", i, N,
                   (unsigned long long)s->seed, s->res.n_tokens, s->stop, s->res.text);
        }
    }
    fflush(stdout);
done:
    if (sm)
        for (int32_t i = N - 1; i >= 0; i--) {
            free(sm[i].res.text);
            sa_detok_stream_free(sm[i].ds);
            sa_sampler_free(sm[i].smp);
            sa_ctx_free(sm[i].ctx);
        }
    sa_batch_free(batch);
    free(next);
    free(seqs);
    free(sm);
    return rc;
}

/* salign chat (cmd_chat.c) shares the table. */
const struct cli_cmd cli_cmd_chat = {
    .name = "chat",
    .opts = gen_opt_table,
    .n_opts = sizeof gen_opt_table / sizeof gen_opt_table[0],
    .mask = GEN_CHAT,
    .usage = "Usage: salign chat -m MODEL [OPTIONS]\n\n"
             "Talk with a model. Type a message and press Enter; /reset forgets the conversation,\n"
             "/exit (or Ctrl-D) quits.\n\n",
};

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
    int prc = cli_parse(&cli_cmd_generate, argc, argv, &o, NULL);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    const char *prompt = o.prompt;
    const bool chat = o.chat, json = o.json;
    if (!o.model) return cli_usage_error("generate", "no model (-m MODEL)");
    if (!prompt) return cli_usage_error("generate", "no prompt (-p TEXT)");
    if (o.system && !chat) return cli_usage_error("generate", "--system needs --chat");
    const bool proxy = o.proxy_expert || o.proxy_anti;
    if (proxy && !(o.proxy_expert && o.proxy_anti))
        return cli_usage_error("generate", "proxy-tuning needs both --proxy-expert and --proxy-anti");
    if (!proxy && (!isnan(o.proxy_alpha) || o.proxy_expert_lora))
        return cli_usage_error("generate", "--proxy-alpha and --proxy-expert-lora need --proxy-expert and --proxy-anti");
    if (proxy && o.n_samples > 0) return cli_usage_error("generate", "--samples does not take --proxy-* (yet)");

    struct sa_model *m = NULL;
    int rc = gen_load_model(o.model, o.n_threads, &m);
    if (rc) return rc;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    struct sa_ctx *ctx = NULL;
    struct sa_sampler *smp = NULL;
    struct sa_lora *lora = NULL;
    struct sa_cvec *cvec = NULL;
    struct gen_result res = {0};
    struct sa_model *pm[2] = {NULL, NULL}; /* proxy-tuning: expert, anti-expert */
    struct sa_lora *plora = NULL;
    struct sa_proxy *px = NULL;
    if (o.lora && (rc = gen_load_lora(m, o.lora, &lora))) goto done;
    if (proxy && ((rc = gen_load_model(o.proxy_expert, o.n_threads, &pm[0])) ||
                  (rc = gen_load_model(o.proxy_anti, o.n_threads, &pm[1])) ||
                  (o.proxy_expert_lora && (rc = gen_load_lora(pm[0], o.proxy_expert_lora, &plora)))))
        goto done;
    if (o.cvec && sa_cvec_load(o.cvec, &cvec)) {
        rc = cli_fail("loading the control vector");
        goto done;
    }
    if ((rc = prompt_tokens(m, prompt, chat, o.system, &ids, &n_ids))) goto done;
    if (n_ids == 0) {
        rc = cli_usage_error("generate", "the prompt gives no tokens");
        goto done;
    }
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.n_threads = o.n_threads;
    cp.batch_invariant = o.batch_invariant;
    cp.kv_type = o.kv_type;
    cp.lora = lora;
    cp.lora_scale = o.lora_scale;
    cp.cvec = cvec;
    cp.cvec_scale = o.cvec_scale;
    const int32_t n_train = sa_model_config(m)->n_ctx_train;
    cp.n_ctx = o.n_ctx > 0 ? o.n_ctx : (int32_t)n_ids + (o.n_predict > 0 ? o.n_predict : 1);
    if (o.n_ctx == 0 && n_train > 0 && cp.n_ctx > n_train) cp.n_ctx = n_train;
    if ((int64_t)n_ids >= cp.n_ctx) {
        fprintf(stderr, "salign: the prompt has %zu tokens; the context holds %d\n", n_ids, cp.n_ctx);
        rc = CLI_FAIL;
        goto done;
    }
    if (o.n_samples > 0) {
        rc = gen_samples(m, &o, &cp, ids, (int32_t)n_ids);
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
    if (proxy) {
        struct sa_proxy_params xp = sa_proxy_default_params();
        xp.alpha = isnan(o.proxy_alpha) ? 1.0f : o.proxy_alpha;
        xp.upstream_name = o.model;
        xp.expert_name = o.proxy_expert;
        xp.anti_name = o.proxy_anti;
        xp.ctx = cp;
        xp.ctx.lora = NULL;
        xp.expert_lora = plora;
        if (sa_proxy_init(m, pm[0], pm[1], &xp, &px)) {
            rc = cli_fail(NULL); /* the message says proxy-tuning */
            goto done;
        }
    }
    for (size_t i = 0; i < n_ids; i++) sa_sampler_accept(smp, ids[i]);
    const double t0 = now_s();
    if (sa_ctx_decode(ctx, ids, (int32_t)n_ids, NULL)) {
        rc = cli_fail("prompt");
        goto done;
    }
    const double t_prompt = now_s() - t0;
    if ((rc = gen_run_proxy(ctx, px, smp, sa_model_tokenizer(m), o.n_predict, !json, &res))) goto done;
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
    sa_proxy_free(px);
    sa_sampler_free(smp);
    sa_ctx_free(ctx);
    free(ids);
    sa_lora_free(plora);
    sa_model_free(pm[1]);
    sa_model_free(pm[0]);
    sa_lora_free(lora);
    sa_cvec_free(cvec);
    sa_model_free(m);
    return rc;
}
