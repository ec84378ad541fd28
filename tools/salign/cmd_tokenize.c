/* cmd_tokenize.c: `salign tokenize MODEL [TEXT]`: the token ids and pieces of a text
 * (TEXT or stdin), with a GGUF file, a folder with tokenizer.json, or a cached model name. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Prints bytes with C-style escapes for control characters, backslash and invalid UTF-8. */
static void print_escaped(FILE *f, const char *s, size_t n, bool json) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') fputs("\\\\", f);
        else if (c == '"' && json) fputs("\\\"", f);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, json ? "\\u%04x" : "\\x%02x", c);
        else if (c >= 0x80) {
            /* whole valid UTF-8 characters as they are, stray bytes escaped */
            int l = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
            bool ok = l > 0 && i + (size_t)l <= n;
            for (int k = 1; ok && k < l; k++) ok = ((unsigned char)s[i + (size_t)k] & 0xC0) == 0x80;
            if (ok) {
                fwrite(s + i, 1, (size_t)l, f);
                i += (size_t)l - 1;
            } else {
                fprintf(f, json ? "\\ufffd" : "\\x%02x", c);
            }
        } else {
            fputc(c, f);
        }
    }
}

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += r;
        if (n == cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

/* Loads the tokenizer of a GGUF file or of a folder with tokenizer.json / one .gguf. */
static int load(const char *ref, struct sa_tokenizer **t, struct sa_gguf **g) {
    char *path = NULL;
    if (sa_hub_resolve(ref, NULL, &path)) return cli_fail(NULL);
    struct stat st;
    int rc = CLI_OK;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        char js[4096], cfg[4096];
        snprintf(js, sizeof js, "%s/tokenizer.json", path);
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", path);
        if (stat(js, &st) == 0) {
            if (sa_tokenizer_load_hf(js, stat(cfg, &st) == 0 ? cfg : NULL, t)) rc = cli_fail(js);
        } else {
            DIR *d = opendir(path);
            char *gguf = NULL;
            struct dirent *e;
            while (d && (e = readdir(d))) {
                size_t l = strlen(e->d_name);
                if (l > 5 && !strcmp(e->d_name + l - 5, ".gguf") && !gguf && asprintf(&gguf, "%s/%s", path, e->d_name) < 0)
                    gguf = NULL;
            }
            if (d) closedir(d);
            if (!gguf) {
                fprintf(stderr, "salign: %s: no tokenizer.json or .gguf file in this folder\n", path);
                rc = CLI_FAIL;
            } else {
                free(path);
                path = gguf;
            }
        }
    }
    if (rc == CLI_OK && !*t) {
        if (sa_gguf_open(path, g)) rc = cli_fail(path);
        else if (sa_tokenizer_load_gguf(*g, t)) rc = cli_fail(path);
    }
    free(path);
    return rc;
}

struct tokenize_opts {
    bool ids, json, no_special, parse_special;
};

#define O(f) CLI_AT(struct tokenize_opts, f)
static const struct cli_opt tokenize_opts[] = {
    {"ids", 0, CLI_OPT_FLAG, O(ids), .help = "print only the ids, one line, separated by spaces"},
    {"json", 0, CLI_OPT_FLAG, O(json), .help = "print a JSON object {\"ids\": [...], \"pieces\": [...]}"},
    {"no-special", 0, CLI_OPT_FLAG, O(no_special), .help = "do not add BOS/EOS even if the model asks for them"},
    {"parse-special", 0, CLI_OPT_FLAG, O(parse_special),
     .help = "recognise control tokens such as <|im_start|> written in the text"},
    CLI_HELP_ENTRY,
};
#undef O

const struct cli_cmd cli_cmd_tokenize = {
    .name = "tokenize",
    .opts = tokenize_opts,
    .n_opts = sizeof tokenize_opts / sizeof tokenize_opts[0],
    .operands = true,
    .stop_at_operand = true, /* TEXT may start with '-' */
    .usage = "Usage: salign tokenize [OPTIONS] MODEL [TEXT]\n\n"
             "Prints the tokens of TEXT (or of standard input) as 'id<TAB>piece' lines.\n"
             "MODEL: a .gguf file, a folder holding tokenizer.json (and tokenizer_config.json),\n"
             "or a model name in the cache ($SALIGN_MODELS, default ~/.cache/salign).\n\n",
};

int cmd_tokenize(int argc, char **argv) {
    struct tokenize_opts o = {0};
    int n_ops = 0;
    int prc = cli_parse(&cli_cmd_tokenize, argc, argv, &o, &n_ops);
    if (prc) return prc == CLI_PARSE_HELP ? CLI_OK : prc;
    const bool ids_only = o.ids, json = o.json;
    struct sa_tokenize_opts to = {.add_special = !o.no_special, .parse_special = o.parse_special};
    if (ids_only && json) return cli_usage_error("tokenize", "--ids and --json exclude each other");
    const int first = argc - n_ops;
    if (first >= argc) return cli_usage_error("tokenize", "missing MODEL");
    if (argc - first > 2) return cli_usage_error("tokenize", "too many arguments (quote the TEXT)");
    const char *model = argv[first];

    char *text = NULL;
    size_t len = 0;
    if (first + 1 < argc) {
        text = strdup(argv[first + 1]);
        len = text ? strlen(text) : 0;
    } else {
        text = read_stdin(&len);
    }
    if (!text) {
        fprintf(stderr, "salign: tokenize: cannot read the text\n");
        return CLI_FAIL;
    }
    struct sa_tokenizer *t = NULL;
    struct sa_gguf *g = NULL;
    int rc = load(model, &t, &g);
    int32_t *ids = NULL;
    size_t n = 0;
    if (rc == CLI_OK && sa_tokenize(t, text, len, to, &ids, &n)) rc = cli_fail("tokenize");
    if (rc == CLI_OK) {
        if (json) fputs("{\"ids\": [", stdout);
        for (size_t i = 0; ids_only || json ? i < n : false; i++) printf(i ? (json ? ", %d" : " %d") : "%d", ids[i]);
        if (ids_only) putchar('\n');
        if (json) fputs("], \"pieces\": [", stdout);
        char buf[1024];
        for (size_t i = 0; !ids_only && i < n; i++) {
            size_t pl = sa_token_to_piece(t, ids[i], true, buf, sizeof buf);
            if (pl > sizeof buf) pl = 0;
            if (json) {
                fputs(i ? ", \"" : "\"", stdout);
                print_escaped(stdout, buf, pl, true);
                putchar('"');
            } else {
                printf("%d\t", ids[i]);
                print_escaped(stdout, buf, pl, false);
                putchar('\n');
            }
        }
        if (json) fputs("]}\n", stdout);
    }
    free(ids);
    free(text);
    sa_tokenizer_free(t);
    sa_gguf_free(g);
    return rc;
}
