/* cmd_inspect.c: `salign inspect` (being written). */
#include "cli.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_usage_error("inspect", "not available yet");
}
