/* cmd_tokenize.c: `salign tokenize` (being written). */
#include "cli.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_usage_error("tokenize", "not available yet");
}
