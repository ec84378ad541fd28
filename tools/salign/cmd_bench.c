/* cmd_bench.c: `salign bench -m MODEL`: the engine's speed the way llama-bench measures it:
 * prompt processing (pp: P tokens in batches of n_batch from an empty cache) and text
 * generation (tg: N tokens decoded one at a time after one token of context), in tokens
 * per second, for each thread count. bench/engine_vs_llama_cpp.sh runs it next to
 * llama.cpp (bench/peer_llama_cpp.py) on the same GGUF. With --batch B1,B2,..: aggregate
 * decode of B sequences forked from one prefill and stepped together (sa_batch_decode), like
 * llama.cpp's llama-batched-bench S_TG; bench/batched_vs_llama_cpp.sh runs it next to
 * bench/llama_cpp_batched.py. `salign bench pipeline` is cmd_bench_pipeline.c. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define MAX_THREAD_SETTINGS 16
#define MAX_BATCH_SETTINGS 16
#define MAX_BATCH_SEQS 256

/* --batch: the batch sizes (sequences) to measure, in the order given. */
struct batch_list {
    int n;
    int v[MAX_BATCH_SETTINGS];
};

static bool parse_batch_list(const char *s, void *field) {
    struct batch_list *bl = field;
    bl->n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > MAX_BATCH_SEQS || (*end && *end != ',') || bl->n == MAX_BATCH_SETTINGS)
            return false;
        bl->v[bl->n++] = (int)v;
        s = *end ? end + 1 : end;
        if (*end && !*s) return false;
    }
    return bl->n > 0;
}

struct result {
    double pp_best, pp_mean, pp_sd, tg_best, tg_mean, tg_sd;
};

static void stats(const double *v, int n, double *best, double *mean, double *sd) {
    double b = 0, s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        b = v[i] > b ? v[i] : b;
        s += v[i];
    }
    const double m = s / n;
    for (int i = 0; i < n; i++) s2 += (v[i] - m) * (v[i] - m);
    *best = b;
    *mean = m;
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0.0;
}

/* One thread setting: warm-up, then reps of pp and tg. Returns 0 or CLI_FAIL. */
static int run_setting(const struct sa_model *model, const int32_t *toks, int P, int N, int B, int threads, int reps,
                       bool batch_invariant, enum sa_dtype kv_type, struct result *r) {
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.batch_invariant = batch_invariant;
    cp.kv_type = kv_type;
    cp.n_ctx = P + N + 8;
    cp.n_batch = B > 0 ? B : 1;
    cp.n_threads = threads;
    struct sa_ctx *ctx = NULL;
    if (sa_ctx_init(model, &cp, &ctx)) return cli_fail("bench");
    double *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
    int rc = CLI_OK;
    if (!pp || !tg) {
        rc = CLI_FAIL;
        fprintf(stderr, "salign bench: out of memory\n");
        goto done;
    }
    for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up (page faults, pool start) */
        if (P > 0) {
            if (sa_ctx_truncate(ctx, 0)) goto fail;
            const double t0 = now_s();
            if (sa_ctx_decode(ctx, toks, P, NULL)) goto fail;
            if (rep >= 0) pp[rep] = P / (now_s() - t0);
        }
        if (N > 0) {
            if (sa_ctx_truncate(ctx, 0) || sa_ctx_decode(ctx, toks, 1, NULL)) goto fail;
            const double t0 = now_s();
            for (int i = 0; i < N; i++)
                if (sa_ctx_decode(ctx, toks + (i + 1) % (P > 1 ? P : 2), 1, NULL)) goto fail;
            if (rep >= 0) tg[rep] = N / (now_s() - t0);
        }
    }
    if (P > 0) stats(pp, reps, &r->pp_best, &r->pp_mean, &r->pp_sd);
    if (N > 0) stats(tg, reps, &r->tg_best, &r->tg_mean, &r->tg_sd);
    goto done;
fail:
    rc = cli_fail("bench");
done:
    free(pp);
    free(tg);
    sa_ctx_free(ctx);
    return rc;
}

/* One thread setting of --batch, for every batch size: one context prefilled with P tokens,
 * copied (sa_ctx_copy_prefix) into the other B-1, then N batched decode steps of one token per
 * sequence (sa_batch_decode; every sequence gets its logits, as a sampler needs). Only the
 * decode steps are timed: tg = B * N / time (aggregate). Each batch size runs once to warm up
 * (N capped at 8), then reps times. tg[b], pp[b]: best and mean per batch size. */
static int run_batched(const struct sa_model *model, const int32_t *toks, int P, int N, const struct batch_list *bl,
                       int threads, int reps, bool batch_invariant, enum sa_dtype kv_type, struct result *res) {
    int max_b = 1;
    for (int i = 0; i < bl->n; i++) max_b = bl->v[i] > max_b ? bl->v[i] : max_b;
    struct sa_ctx_params cp = sa_ctx_default_params();
    cp.batch_invariant = batch_invariant;
    cp.n_ctx = P + N + 8;
    cp.n_batch = P;
    cp.n_threads = threads;
    cp.kv_type = kv_type;
    struct sa_batch_params bp = sa_batch_default_params();
    bp.n_seq_max = max_b;
    bp.n_tokens = max_b;
    bp.n_ctx = cp.n_ctx;
    bp.n_threads = threads;
    bp.batch_invariant = batch_invariant;
    struct sa_ctx **ctx = calloc((size_t)max_b, sizeof *ctx);
    struct sa_batch_seq *seqs = calloc((size_t)max_b, sizeof *seqs);
    int32_t *step = calloc((size_t)max_b, sizeof *step);
    double *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
    struct sa_batch *batch = NULL;
    int rc = CLI_OK;
    if (!ctx || !seqs || !step || !pp || !tg) {
        fprintf(stderr, "salign bench: out of memory\n");
        rc = CLI_FAIL;
        goto done;
    }
    if (sa_batch_init(model, &bp, &batch)) goto fail;
    for (int s = 0; s < max_b; s++) {
        if (s == 1) cp.n_threads = 1; /* the forks never compute alone: the batch's pool does */
        if (sa_ctx_init(model, &cp, &ctx[s])) goto fail;
    }
    for (int bi = 0; bi < bl->n; bi++) {
        const int B = bl->v[bi];
        for (int rep = -1; rep < reps; rep++) { /* rep -1: warm-up */
            const int n_gen = rep < 0 && N > 8 ? 8 : N;
            if (sa_ctx_truncate(ctx[0], 0)) goto fail;
            double t0 = now_s();
            if (sa_ctx_decode(ctx[0], toks, P, NULL)) goto fail;
            if (rep >= 0) pp[rep] = P / (now_s() - t0);
            for (int s = 1; s < B; s++)
                if (sa_ctx_copy_prefix(ctx[s], ctx[0], P)) goto fail;
            t0 = now_s();
            for (int g = 0; g < n_gen; g++) {
                for (int s = 0; s < B; s++) {
                    /* the peer's token stream, shifted per sequence so they differ */
                    step[s] = toks[(g + 1 + 3 * s) % P];
                    seqs[s] = (struct sa_batch_seq){.ctx = ctx[s], .tokens = &step[s], .n = 1};
                }
                if (sa_batch_decode(batch, seqs, B)) goto fail;
            }
            if (rep >= 0) tg[rep] = (double)B * n_gen / (now_s() - t0);
        }
        struct result *r = &res[bi];
        stats(pp, reps, &r->pp_best, &r->pp_mean, &r->pp_sd);
        stats(tg, reps, &r->tg_best, &r->tg_mean, &r->tg_sd);
    }
    goto done;
fail:
    rc = cli_fail("bench");
done:
    if (ctx)
        for (int s = 0; s < max_b; s++) sa_ctx_free(ctx[s]);
    sa_batch_free(batch);
    free(ctx);
    free(seqs);
    free(step);
    free(pp);
    free(tg);
    return rc;
}

struct bench_opts {
    const char *model, *threads;
    int64_t P, N, B, reps;
    struct batch_list batch;
    bool json, use_mmap, batch_invariant;
    enum sa_dtype kv_type;
};

#define O(f) CLI_AT(struct bench_opts, f)
static const struct cli_opt bench_opts[] = {
    {"model", 'm', CLI_OPT_STR, O(model), .arg = "MODEL",
     .help = "a .gguf file, a Hugging Face directory or a cached model name"},
    {"n-prompt", 'p', CLI_OPT_INT, O(P), .imin = 0, .imax = 1 << 20, .arg = "P",
     .help = "prompt tokens (default 512; 0 skips pp)"},
    {"n-gen", 'n', CLI_OPT_INT, O(N), .imin = 0, .imax = 1 << 20, .arg = "N",
     .help = "generated tokens (default 128; 0 skips tg)"},
    {"batch-size", 'b', CLI_OPT_INT, O(B), .imin = 1, .imax = 1 << 20, .arg = "B",
     .help = "tokens per forward pass for pp (default: P)"},
    {"threads", 't', CLI_OPT_STR, O(threads), .arg = "LIST", .help = "comma-separated thread counts (default 1,2)"},
    {"batch", 0, CLI_OPT_CUSTOM, O(batch), .parse = parse_batch_list,
     .expect = "a comma-separated list of sequence counts in 1..256, like 1,2,4,8", .arg = "LIST",
     .help = "batched decoding instead: for each count B, B sequences forked\nfrom one P-token prefill decode N "
             "tokens each together;\ntg = B * N / time (aggregate, llama-batched-bench S_TG)"},
    {"reps", 'r', CLI_OPT_INT, O(reps), .imin = 1, .imax = 1000, .arg = "R",
     .help = "measured repetitions (default 3)"},
    {"no-mmap", 0, CLI_OPT_UNSET, O(use_mmap),
     .help = "copy the weights into memory at load instead of mapping the file\n(llama-bench -mmp 0; also "
             "SALIGN_NO_MMAP=1 for every command)"},
    {"batch-invariant", 0, CLI_OPT_FLAG, O(batch_invariant),
     .help = "bitwise batch-invariant kernels (sa_ctx_params.batch_invariant)"},
    CLI_KV_TYPE_ENTRY(O(kv_type)),
    {"json", 0, CLI_OPT_FLAG, O(json),
     .help = "one JSON object per thread count (and batch size) instead of\nthe table"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_bench = {
    .name = "bench",
    .opts = bench_opts,
    .n_opts = sizeof bench_opts / sizeof bench_opts[0],
    .operands = true,
    .usage = "Usage: salign bench -m MODEL [OPTIONS]\n"
             "       salign bench pipeline --upstream MODEL --aligner MODEL [OPTIONS]  (see its --help)\n\n"
             "Measures prompt processing (pp) and decode (tg) speed in tokens/s, like llama-bench:\n"
             "pp evaluates P tokens from an empty cache in batches of n_batch; tg decodes N tokens\n"
             "one at a time after one token of context. The tokens are a fixed pseudo-random\n"
             "sequence (the same as bench/peer_llama_cpp.py). Each test runs once to warm up,\n"
             "then --reps times; the best and the mean are reported.\n"
             "With --batch, tg is batched decoding instead (llama-batched-bench's S_TG): one P-token\n"
             "prefill copied into B sequences, then N decode steps of B tokens, one per sequence,\n"
             "in one forward pass each; t/s = B * N / time of the decode steps.\n\n",
    .epilog = "'salign bench pipeline --help': the Stream Aligner pipeline's speed (stream vs Aligner, speculation, KV "
              "reuse).\n\n"
              "Examples:\n"
              "  salign bench -m smollm2-135m-instruct -t 1,2 --reps 5\n"
              "  salign bench -m qwen2.5-coder-0.5b-instruct --batch 1,2,4,8,16 -p 128 -n 64\n",
};

/* --batch: every thread count, every batch size; a table or one JSON object per pair. */
static int bench_batched(const struct sa_model *model, const char *base, const int32_t *toks, long P, long N,
                         const struct batch_list *bl, const int *thr, int n_thr, long reps, bool use_mmap,
                         bool batch_invariant, enum sa_dtype kv_type, bool json) {
    if (!json) {
        printf("model: %s (%.1f MiB, %.1f M params), batched decoding: prompt %ld, %ld tokens per sequence\n", base,
               sa_model_n_bytes(model) / 1048576.0, sa_model_n_params(model) / 1e6, P, N);
        printf("| threads | batch | test   | t/s aggregate (best) | t/s (mean +- sd) | per sequence |\n");
        printf("|--------:|------:|--------|---------------------:|-----------------:|-------------:|\n");
        fflush(stdout);
    }
    for (int i = 0; i < n_thr; i++) {
        struct result r[MAX_BATCH_SETTINGS] = {{0}};
        int rc = run_batched(model, toks, (int)P, (int)N, bl, thr[i], (int)reps, batch_invariant, kv_type, r);
        if (rc) return rc;
        for (int b = 0; b < bl->n; b++) {
            const int B = bl->v[b];
            if (json)
                printf("{\"engine\": \"salign\", \"model\": \"%s\", \"threads\": %d, \"batch\": %d, \"mmap\": %s, "
                       "\"batch_invariant\": %s, \"kv_type\": \"%s\", \"pp\": %ld, \"tg\": %ld, \"reps\": %ld, \"pp_tok_s\": %.1f, "
                       "\"tg_tok_s\": %.1f, \"tg_mean\": %.1f, \"tg_seq_tok_s\": %.1f}\n",
                       base, thr[i], B, use_mmap ? "true" : "false", batch_invariant ? "true" : "false", sa_dtype_name(kv_type), P, N, reps,
                       r[b].pp_best, r[b].tg_best, r[b].tg_mean, r[b].tg_best / B);
            else
                printf("| %7d | %5d | tg%-4ld | %20.1f | %7.1f +- %5.1f | %12.1f |\n", thr[i], B, N, r[b].tg_best,
                       r[b].tg_mean, r[b].tg_sd, r[b].tg_best / B);
        }
        fflush(stdout);
    }
    return CLI_OK;
}

int cmd_bench(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "pipeline")) /* the pipeline's speed: cmd_bench_pipeline.c */
        return cmd_bench_pipeline(argc - 1, argv + 1);
    struct bench_opts o = {.threads = "1,2", .P = 512, .N = 128, .reps = 3, .use_mmap = !cli_no_mmap()};
    int n_ops = 0;
    int prc = cli_parse(&cli_cmd_bench, argc, argv, &o, &n_ops);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    const char *model_arg = o.model, *threads_arg = o.threads;
    long P = o.P, N = o.N, B = o.B, reps = o.reps;
    const bool json = o.json, use_mmap = o.use_mmap, batch_invariant = o.batch_invariant;
    if (n_ops) {
        if (model_arg || n_ops > 1) return cli_usage_error("bench", "unexpected argument '%s'", argv[argc - n_ops]);
        model_arg = argv[argc - n_ops]; /* `salign bench MODEL` works too */
    }
    if (!model_arg) return cli_usage_error("bench", "missing -m MODEL");
    if (P == 0 && N == 0) return cli_usage_error("bench", "nothing to measure: -p and -n are both 0");
    int thr[MAX_THREAD_SETTINGS], n_thr = 0;
    for (const char *s = threads_arg; *s;) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024 || (*end && *end != ',') || n_thr == MAX_THREAD_SETTINGS)
            return cli_usage_error("bench", "bad --threads '%s' (a list like 1,2)", threads_arg);
        thr[n_thr++] = (int)v;
        s = *end ? end + 1 : end;
        if (*end && !*s) return cli_usage_error("bench", "bad --threads '%s' (a list like 1,2)", threads_arg);
    }
    if (n_thr == 0) return cli_usage_error("bench", "bad --threads '%s' (a list like 1,2)", threads_arg);
    if (B == 0) B = P > 0 ? P : 1;
    const bool batched = o.batch.n > 0;
    if (batched && (P < 1 || N < 1))
        return cli_usage_error("bench", "--batch needs a prompt and generated tokens (-p and -n at least 1)");

    char *path = NULL;
    if (sa_hub_resolve(model_arg, NULL, &path)) return cli_fail(NULL);
    struct sa_model_params mp = sa_model_default_params();
    mp.load_tokenizer = false;
    mp.use_mmap = use_mmap;
    struct sa_model *model = NULL;
    if (sa_model_load(path, &mp, &model)) {
        int rc = cli_fail("loading the model"); /* as generate: the file's errors name it */
        free(path);
        return rc;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const int32_t V = sa_model_n_vocab(model);
    const int32_t n_tok = P > 2 ? (int32_t)P : 2;
    int32_t *toks = malloc((size_t)n_tok * sizeof *toks);
    int rc = CLI_OK;
    if (!toks) {
        fprintf(stderr, "salign bench: out of memory\n");
        rc = CLI_FAIL;
        goto out;
    }
    /* the peer's prompt: ordinary tokens away from the special ones at both ends */
    for (int32_t i = 0; i < n_tok; i++)
        toks[i] = V > 1500 ? (int32_t)(((int64_t)i * 7919 + 13) % (V - 1000) + 500) : (int32_t)(((int64_t)i * 7919 + 13) % V);
    if (batched) {
        rc = bench_batched(model, base, toks, P, N, &o.batch, thr, n_thr, reps, use_mmap, batch_invariant, o.kv_type, json);
        goto out;
    }
    if (!json) {
        printf("model: %s (%.1f MiB, %.1f M params)\n", base, sa_model_n_bytes(model) / 1048576.0,
               sa_model_n_params(model) / 1e6);
        printf("| threads | test   |   t/s (best) |   t/s (mean +- sd) |\n");
        printf("|--------:|--------|-------------:|-------------------:|\n");
        fflush(stdout);
    }
    for (int i = 0; i < n_thr; i++) {
        struct result r = {0};
        if ((rc = run_setting(model, toks, (int)P, (int)N, (int)B, thr[i], (int)reps, batch_invariant, o.kv_type, &r))) break;
        if (json) {
            printf("{\"engine\": \"salign\", \"model\": \"%s\", \"threads\": %d, \"mmap\": %s, \"pp\": %ld, \"tg\": %ld, "
                   "\"n_batch\": %ld, \"reps\": %ld, \"pp_tok_s\": %.1f, \"tg_tok_s\": %.1f, \"pp_mean\": %.1f, "
                   "\"tg_mean\": %.1f}\n",
                   base, thr[i], use_mmap ? "true" : "false", P, N, B, reps, r.pp_best, r.tg_best, r.pp_mean, r.tg_mean);
        } else {
            if (P > 0)
                printf("| %7d | pp%-4ld | %12.1f | %9.1f +- %5.1f |\n", thr[i], P, r.pp_best, r.pp_mean, r.pp_sd);
            if (N > 0)
                printf("| %7d | tg%-4ld | %12.1f | %9.1f +- %5.1f |\n", thr[i], N, r.tg_best, r.tg_mean, r.tg_sd);
        }
        fflush(stdout);
    }
out:
    free(toks);
    sa_model_free(model);
    free(path);
    return rc;
}
