/* cli_util.c: small helpers shared by the subcommands. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/chat.h"
#include "sa/model.h"
#include "sa/pipeline.h"
#include "sa/status.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_fail(const char *what) {
    const char *msg = sa_last_error()[0] ? sa_last_error() : "failed";
    if (what) fprintf(stderr, "salign: %s: %s\n", what, msg);
    else fprintf(stderr, "salign: %s\n", msg);
    return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "salign %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'salign %s --help'.\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

bool cli_no_mmap(void) {
    const char *e = getenv("SALIGN_NO_MMAP");
    return e && *e && strcmp(e, "0");
}

int cli_read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sa_error(SA_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *p = realloc(buf, cap * 2 + 1);
            if (!p) {
                free(buf);
                fclose(f);
                return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            }
            buf = p;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return sa_error(SA_STATUS_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

bool cli_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *cli_default_prompt(const char *cmd, const char *name) {
    char *p = NULL;
    const char *env = getenv("SALIGN_PROMPTS");
    if (env && *env) {
        if (asprintf(&p, "%s/%s", env, name) >= 0 && cli_file_exists(p)) return p;
        free(p);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *dir = dirname(dirname(exe)); /* <repo> for <repo>/build/salign, <prefix> for <prefix>/bin/salign */
        const char *subs[] = {"docs/prompts", "share/salign/prompts"};
        for (size_t i = 0; i < 2; i++) {
            if (asprintf(&p, "%s/%s/%s", dir, subs[i], name) >= 0 && cli_file_exists(p)) return p;
            free(p);
        }
    }
    if (asprintf(&p, "docs/prompts/%s", name) >= 0 && cli_file_exists(p)) return p;
    free(p);
    fprintf(stderr, "salign %s: cannot find the default prompt %s (docs/prompts/ of the repository, or "
                    "$SALIGN_PROMPTS): give --prompt FILE\n", cmd, name);
    return NULL;
}

static volatile sig_atomic_t g_sigint;
static struct sigaction g_old_sigint;

static void on_sigint(int sig) {
    (void)sig;
    g_sigint = 1;
}

void cli_sigint_catch(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    g_sigint = 0;
    sigaction(SIGINT, &sa, &g_old_sigint);
}

void cli_sigint_restore(void) {
    sigaction(SIGINT, &g_old_sigint, NULL);
}

bool cli_interrupted(void *user) {
    (void)user;
    return g_sigint != 0;
}

int cli_remote_upstream_format(const char *cmd, const char *tmpl, const struct sa_model *tok_model,
                               struct sa_pipeline_params *pp, char **tmpl_text) {
    if (tmpl) {
        enum sa_chat_format f = SA_CHAT_FORMAT_UNKNOWN;
        if (sa_chat_format_from_name(tmpl, &f) != SA_STATUS_OK) {
            size_t tl = 0;
            if (cli_read_file(tmpl, tmpl_text, &tl)) {
                fprintf(stderr, "salign %s: --upstream-template '%s' is neither a chat format (chatml, gemma, "
                                "llama3) nor a readable template file\n", cmd, tmpl);
                return CLI_USAGE;
            }
            f = sa_chat_template_detect(*tmpl_text, NULL);
            pp->upstream_template = *tmpl_text;
        }
        pp->upstream_format = f;
    } else if (tok_model) {
        pp->upstream_template = sa_model_chat_template(tok_model);
        pp->upstream_format = sa_chat_template_detect(pp->upstream_template, sa_model_config(tok_model)->arch_name);
    } else {
        return cli_usage_error(cmd, "a remote upstream needs its chat template: --upstream-template "
                                    "chatml|gemma|llama3|FILE or --upstream-tokenizer MODEL");
    }
    if (pp->upstream_format == SA_CHAT_FORMAT_UNKNOWN) {
        fprintf(stderr, "salign %s: the upstream's chat template is not one salign knows (chatml, gemma, llama3)\n", cmd);
        return CLI_FAIL;
    }
    return CLI_OK;
}

const struct cli_cmd *cli_subcommand(const char *group, const struct cli_cmd *const *cmds, int argc, char **argv,
                                     void (*usage)(FILE *f), int *rc) {
    *rc = CLI_USAGE;
    if (argc < 2) {
        usage(stderr);
        return NULL;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        usage(stdout);
        *rc = CLI_OK;
        return NULL;
    }
    const size_t glen = strlen(group);
    for (size_t i = 0; cmds[i]; i++) {
        const char *n = cmds[i]->name;
        if (!strncmp(n, group, glen) && n[glen] == ' ' && !strcmp(n + glen + 1, name)) return cmds[i];
    }
    cli_usage_error(group, "unknown command '%s'", name);
    return NULL;
}
