/* cmd_convert.c: `salign convert` (being written). */
#include "cli.h"

int cmd_convert(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_usage_error("convert", "not available yet");
}
