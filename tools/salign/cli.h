/* cli.h: the subcommands of the salign CLI (thin mains over the library) and shared helpers. */
#ifndef SA_CLI_H
#define SA_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli_opts.h"

/* Exit codes: 0 ok, 1 runtime failure, 2 usage error (GNU convention). */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

int cmd_pull(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_eval_aligner(int argc, char **argv); /* `salign eval aligner`, dispatched by cmd_eval */
int cmd_data(int argc, char **argv);
int cmd_data_rollout(int argc, char **argv); /* `salign data rollout`, dispatched by cmd_data */
int cmd_data_continue(int argc, char **argv); /* `salign data continue`, dispatched by cmd_data */
int cmd_train(int argc, char **argv);
int cmd_align(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_pipeline(int argc, char **argv); /* `salign bench pipeline`, dispatched by cmd_bench */
int cmd_steer(int argc, char **argv); /* `salign steer extract|scan|apply|sweep` (cmd_steer.c) */

/* The option tables of the commands (cli_opts.h), for their parsing, their --help and
 * tests/test_cli_opts.c. */
extern const struct cli_cmd cli_cmd_pull, cli_cmd_inspect, cli_cmd_tokenize, cli_cmd_convert, cli_cmd_generate,
    cli_cmd_chat, cli_cmd_align, cli_cmd_train, cli_cmd_bench, cli_cmd_bench_pipeline, cli_cmd_eval_aligner,
    cli_cmd_data_rollout, cli_cmd_data_continue, cli_cmd_serve;
/* `salign data SUB`, `salign eval SUB`, `salign steer SUB`: one command per subcommand
 * (NULL-terminated), each named "GROUP SUB". */
extern const struct cli_cmd *const cli_cmds_data[], *const cli_cmds_eval[], *const cli_cmds_steer[];
/* The subcommand argv[1] of `salign GROUP` among cmds (as above). NULL when there is none to
 * run, with *rc the exit code: no argv[1] (usage to stderr, CLI_USAGE), -h/--help/help (usage
 * to stdout, CLI_OK), an unknown name (CLI_USAGE, error printed). */
const struct cli_cmd *cli_subcommand(const char *group, const struct cli_cmd *const *cmds, int argc, char **argv,
                                     void (*usage)(FILE *f), int *rc);

/* Prints "salign: <what>: <sa_last_error()>" to stderr and returns CLI_FAIL. what NULL:
 * "salign: <sa_last_error()>", for errors whose message already names the file or model
 * (sa_read_file, sa_hub_resolve, sa_gguf_open, ...: naming it again printed it twice). */
int cli_fail(const char *what);
/* Prints "salign CMD: msg" and "Try 'salign CMD --help'." to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct sa_model;
struct sa_pipeline_params;
/* The chat format of a remote upstream into pp->upstream_format (and pp->upstream_template):
 * `tmpl` (--upstream-template: a format name, or a template file read into *tmpl_text, which
 * the caller frees), else tok_model's template (--upstream-tokenizer). Prints the error,
 * naming `cmd`, and returns CLI_USAGE or CLI_FAIL; CLI_OK when the format is known. */
int cli_remote_upstream_format(const char *cmd, const char *tmpl, const struct sa_model *tok_model,
                               struct sa_pipeline_params *pp, char **tmpl_text);

/* Reads a whole file (malloc'd, NUL-terminated; caller frees). Returns 0 or a status
 * with sa_last_error() set. */
int cli_read_file(const char *path, char **out, size_t *len);
bool cli_file_exists(const char *path);

/* The default prompt file `name` (docs/prompts/): $SALIGN_PROMPTS/, <repository of the
 * executable>/docs/prompts/, <prefix>/share/salign/prompts/, ./docs/prompts/. malloc'd; NULL
 * (with a message naming `cmd`) if none exists. */
char *cli_default_prompt(const char *cmd, const char *name);

/* $SALIGN_NO_MMAP set and not "0": every command loads weights into memory instead of
 * mapping the model file (sa_model_params.use_mmap = false). Decode of a 16-bit model
 * streams its weights; a private copy streams ~20% faster than the file mapping here. */
bool cli_no_mmap(void);

/* Ctrl-C as a request to stop cleanly: cli_sigint_catch clears the flag and installs the
 * handler (until cli_sigint_restore); cli_interrupted (a cancel hook: user unused) tells
 * whether Ctrl-C came since. */
void cli_sigint_catch(void);
void cli_sigint_restore(void);
bool cli_interrupted(void *user);

#endif
