/* cmd_pull.c: `salign pull` (being written). */
#include "cli.h"

int cmd_pull(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_usage_error("pull", "not available yet");
}
