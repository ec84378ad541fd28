/* cmd_serve.c: `salign serve`: the Stream Aligner pipeline as an OpenAI-compatible HTTP server
 * (include/sa/server.h, docs/SERVER.md) over a local or remote upstream and a local aligner,
 * serving until SIGTERM or Ctrl-C (then a graceful stop: runs in progress may finish). */
#define _GNU_SOURCE
#include "cli.h"
#include "generate.h"
#include "sa/server.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct serve_opts {
    const char *upstream, *upstream_model, *upstream_template, *upstream_tokenizer, *upstream_extra;
    const char *aligner, *aligner_lora, *system, *aligner_system;
    const char *host, *api_key, *name;
    int32_t port, parallel, queue, max_body_kb, max_stream_mb, request_timeout_ms, idle_timeout_ms, grace_ms;
    int32_t timeout_ms, total_timeout_ms, connect_timeout_ms, retries;
    bool verbose;
    struct sa_pipeline_params pp;
};

#define O(f) CLI_AT(struct serve_opts, f)
static const struct cli_opt serve_opts[] = {
    CLI_UPSTREAM_ENTRIES(struct serve_opts),
    {"aligner", 0, CLI_OPT_STR, O(aligner), .arg = "M",
     .help = "the aligner (path, cached name, or a shipped adapter's\nname: models/NAME, its base + LoRA adapter)"},
    {"aligner-lora", 0, CLI_OPT_STR, O(aligner_lora), .arg = "FILE",
     .help = "a LoRA adapter (GGUF, llama.cpp's format) over the\naligner"},
    {"system", 0, CLI_OPT_STR, O(system), .arg = "TEXT",
     .help = "the upstream's system message when a request has none"},
    {"aligner-system", 0, CLI_OPT_STR, O(aligner_system), .arg = "TEXT",
     .help = "a system message for the aligner (an untrained stand-in\nmay need an instruction)"},
    {"host", 0, CLI_OPT_STR, O(host), .section = "Server", .arg = "ADDR",
     .help = "the address to listen on (default 127.0.0.1: this machine\nonly; 0.0.0.0: every interface)"},
    {"port", 0, CLI_OPT_INT, O(port), .imin = 0, .imax = 65535, .arg = "N",
     .help = "the port (default 8080; 0: a free one, printed at start)"},
    {"api-key", 0, CLI_OPT_STR, O(api_key), .arg = "KEY",
     .help = "require 'Authorization: Bearer KEY' (default:\n$SALIGN_SERVE_API_KEY, else none)"},
    {"name", 0, CLI_OPT_STR, O(name), .arg = "NAME",
     .help = "the served model: NAME (aligned), NAME:upstream,\nNAME:aligner (default stream-aligner)"},
    {"parallel", 0, CLI_OPT_INT, O(parallel), .imin = 1, .imax = 64, .arg = "N",
     .help = "requests answered at once, their decoding batched\n(default 1)"},
    {"queue", 0, CLI_OPT_INT, O(queue), .imin = 1, .imax = 1 << 20, .arg = "N",
     .help = "requests that may wait for a slot; more get 429\n(default 16)"},
    {"max-body-kb", 0, CLI_OPT_INT, O(max_body_kb), .imin = 1, .imax = 1 << 20, .arg = "N",
     .help = "largest request body in KiB (default 1024)"},
    {"max-stream-mb", 0, CLI_OPT_INT, O(max_stream_mb), .imin = 1, .imax = 1 << 12, .arg = "N",
     .help = "a stream whose client falls this many MiB of events\nbehind is cancelled and dropped (default 16)"},
    {"request-timeout-ms", 0, CLI_OPT_INT, O(request_timeout_ms), .imin = 1, .imax = 1 << 30, .arg = "N",
     .help = "a request (queue wait included) is cancelled after this\n(default 300000)"},
    {"idle-timeout-ms", 0, CLI_OPT_INT, O(idle_timeout_ms), .imin = 1, .imax = 1 << 30, .arg = "N",
     .help = "a connection with no traffic this long is closed: between\nrequests, and a stream whose client "
             "reads none of it\n(its run cancelled) (default 120000; whole seconds)"},
    {"shutdown-grace-ms", 0, CLI_OPT_INT, O(grace_ms), .imin = 1, .imax = 1 << 30, .arg = "N",
     .help = "at SIGTERM, runs in progress may finish this long\n(default 10000)"},
    {"max-rounds", 0, CLI_OPT_INT, O(pp.max_rounds), .imin = 0, .imax = 1 << 20, .section = "Loop", .arg = "N",
     .help = "most corrected sentences (default: no limit)"},
    {"max-length", 0, CLI_OPT_INT, O(pp.max_length), .imin = 1, .imax = 1 << 24, .arg = "N",
     .help = "most tokens of an answer when the request gives no\nmax_tokens (default 1024)"},
    CLI_SENTENCE_ENTRIES(struct serve_opts),
    CLI_EDIT_CHECK_ENTRY(struct serve_opts, pp.edit_check),
    CLI_CALCULATOR_ENTRY(struct serve_opts, pp.calculator),
    {"temp", 0, CLI_OPT_FLOAT, O(pp.upstream_temp), .lo = -INFINITY, .hi = INFINITY, .section = "Decoding",
     .arg = "T", .help = "upstream temperature when the request gives none\n(default 0: greedy)"},
    {"top-p", 0, CLI_OPT_FLOAT, O(pp.upstream_top_p), .lo = 0, .hi = 1, .open = CLI_LO_OPEN, .arg = "P",
     .help = "upstream nucleus mass when the request gives none\n(default 1: off)"},
    {"aligner-temp", 0, CLI_OPT_FLOAT, O(pp.aligner_temp), .lo = -INFINITY, .hi = INFINITY, .arg = "T",
     .help = "aligner temperature (default 0: greedy)"},
    {"seed", 0, CLI_OPT_UINT, O(pp.seed), .umax = UINT64_MAX, .arg = "S",
     .help = "sampling seed when the request gives none (default 0)"},
    {"no-spec", 0, CLI_OPT_UNSET, O(pp.use_spec), .help = "no copy-speculation in the aligner"},
    {"no-token-healing", 0, CLI_OPT_UNSET, O(pp.token_healing),
     .help = "continue the answer from its re-tokenized text as it is"},
    {"batch-invariant", 0, CLI_OPT_FLAG, O(pp.batch_invariant),
     .help = "bitwise batch-invariant kernels: with --parallel N the\nsame answers as --parallel 1"},
    CLI_LOCAL_MODEL_ENTRIES(struct serve_opts),
    {"timeout-ms", 0, CLI_OPT_INT, O(timeout_ms), .imin = 1, .imax = 1 << 30, .section = "Remote upstream",
     .arg = "N", .help = "remote: idle timeout (default 60000)"},
    {"connect-timeout-ms", 0, CLI_OPT_INT, O(connect_timeout_ms), .imin = 1, .imax = 1 << 30, .arg = "N",
     .help = "remote: connect timeout per attempt (default 10000)"},
    {"total-timeout-ms", 0, CLI_OPT_INT, O(total_timeout_ms), .imin = 1, .imax = 1 << 30, .arg = "N",
     .help = "remote: deadline of one generation, retries included\n(default 600000)"},
    {"retries", 0, CLI_OPT_INT, O(retries), .imin = 0, .imax = 100, .arg = "N",
     .help = "remote: retries of a request that failed before any\ntext (default 3)"},
    {"verbose", 'v', CLI_OPT_FLAG, O(verbose), .section = "Output", .help = "debug messages (HTTP layer) on stderr"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_serve = {
    .name = "serve",
    .opts = serve_opts,
    .n_opts = sizeof serve_opts / sizeof serve_opts[0],
    .usage = "Usage: salign serve --upstream MODEL|URL --aligner MODEL [--port N] [--parallel N] [OPTIONS]\n\n"
             "Serves the Stream Aligner pipeline as an OpenAI-compatible API (chat and completions,\n"
             "streamed sentence by sentence with server-sent events) and a live page at /.\n"
             "Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, /health,\n"
             "/metrics. Stops cleanly on SIGTERM or Ctrl-C. docs/SERVER.md.\n\n",
    .epilog = "Example:\n  salign serve --upstream qwen2.5-coder-0.5b-instruct --aligner smollm2-135m-instruct --port 8080\n"
              "  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
              "       -d '{\"model\": \"stream-aligner\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}'\n\n"
              "Exit status: 0 stopped by a signal, 1 runtime failure (model, port), 2 usage.\n",
};

static bool g_verbose;

static void serve_log(enum sa_log_level level, const char *text, void *user) {
    (void)user;
    if (level == SA_LOG_DEBUG && !g_verbose) return;
    fprintf(stderr, "salign serve: %s%s%s\n", level <= SA_LOG_WARN ? sa_log_level_name(level) : "",
            level <= SA_LOG_WARN ? ": " : "", text);
    fflush(stderr);
}

static bool is_url(const char *s) { return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8); }

int cmd_serve(int argc, char **argv) {
    struct serve_opts o = {0};
    o.pp = sa_pipeline_default_params();
    o.port = 8080;
    int prc = cli_parse(&cli_cmd_serve, argc, argv, &o, NULL);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    if (!o.upstream) return cli_usage_error("serve", "no upstream (--upstream MODEL|URL)");
    if (o.aligner_lora && !o.aligner) return cli_usage_error("serve", "--aligner-lora needs --aligner");
    if (o.pp.edit_check && !o.aligner) return cli_usage_error("serve", "--edit-check needs --aligner");
    if (o.pp.calculator && !o.aligner) return cli_usage_error("serve", "--calculator needs --aligner");
    g_verbose = o.verbose;

    /* SIGTERM and SIGINT are taken by sigwait below: blocked in every thread from now on (the
       model loaders' and the server's threads inherit the mask) */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    sa_log_set(serve_log, NULL);

    struct sa_model *up_model = NULL, *al_model = NULL, *tok_model = NULL;
    struct sa_lora *al_lora = NULL;
    char *al_base = NULL, *al_adapter = NULL;
    struct sa_server *srv = NULL;
    char *tmpl_text = NULL;
    int rc = CLI_OK;
    struct sa_server_params sp = sa_server_default_params();
    struct sa_upstream_remote_params rp = sa_upstream_remote_default_params();
    struct sa_pipeline_params pp = o.pp;
    pp.system = o.system;
    pp.aligner_system = o.aligner_system;
    if (is_url(o.upstream)) {
        if (o.upstream_tokenizer && (rc = gen_load_model(o.upstream_tokenizer, o.pp.n_threads, &tok_model))) goto done;
        if ((rc = cli_remote_upstream_format("serve", o.upstream_template, tok_model, &pp, &tmpl_text))) goto done;
        if (tok_model) pp.upstream_tokenizer = sa_model_tokenizer(tok_model);
        rp.base_url = o.upstream;
        rp.model = o.upstream_model;
        rp.extra_body = o.upstream_extra;
        if (o.timeout_ms) rp.idle_timeout_ms = o.timeout_ms;
        if (o.connect_timeout_ms) rp.connect_timeout_ms = o.connect_timeout_ms;
        if (o.total_timeout_ms) rp.total_timeout_ms = o.total_timeout_ms;
        if (o.retries) rp.max_retries = o.retries;
        sp.remote = &rp;
    } else {
        if ((rc = gen_load_model(o.upstream, o.pp.n_threads, &up_model))) goto done;
        pp.upstream_model = up_model;
    }
    if (o.aligner) {
        /* a shipped adapter's name is its base + adapter */
        if ((rc = gen_resolve_adapter_name(o.aligner, &al_base, &al_adapter))) goto done;
        if (!is_url(o.upstream) && !strcmp(al_base, o.upstream)) al_model = NULL; /* share the weights */
        else if ((rc = gen_load_model(al_base, o.pp.n_threads, &al_model))) goto done;
        pp.aligner_model = al_model ? al_model : up_model;
        const char *lf = o.aligner_lora ? o.aligner_lora : al_adapter;
        if (lf && (rc = gen_load_lora(pp.aligner_model, lf, &al_lora))) goto done;
        pp.aligner_lora = al_lora;
    }
    sp.pipeline = pp;
    sp.host = o.host;
    sp.port = (uint16_t)o.port;
    sp.api_key = o.api_key ? o.api_key : getenv("SALIGN_SERVE_API_KEY");
    sp.name = o.name;
    sp.n_slots = o.parallel;
    sp.max_queue = o.queue;
    sp.max_body_bytes = (size_t)o.max_body_kb * 1024;
    sp.max_stream_buffer = (size_t)o.max_stream_mb << 20;
    sp.request_timeout_ms = o.request_timeout_ms;
    sp.idle_timeout_ms = o.idle_timeout_ms;
    sp.shutdown_grace_ms = o.grace_ms;
    sp.log = serve_log;
    if (sa_server_init(&sp, &srv) || sa_server_start(srv)) {
        rc = cli_fail("serve");
        goto done;
    }
    if (!o.aligner) fprintf(stderr, "salign serve: no --aligner: only '%s:upstream' is served\n",
                            o.name ? o.name : "stream-aligner");
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "salign serve: %s: stopping (runs in progress may finish)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sa_server_stop(srv);
done:
    sa_server_free(srv);
    sa_lora_free(al_lora);
    sa_model_free(al_model);
    sa_model_free(up_model);
    sa_model_free(tok_model);
    free(tmpl_text);
    free(al_base);
    free(al_adapter);
    sa_log_set(NULL, NULL);
    return rc;
}
