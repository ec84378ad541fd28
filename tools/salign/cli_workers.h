/* cli_workers.h: P workers, each with its own pipeline, decoding through one batched scheduler
 * (P > 1), taking jobs in turn: what `data rollout --parallel` and `data continue --parallel`
 * share. */
#ifndef SA_CLI_WORKERS_H
#define SA_CLI_WORKERS_H

#include "sa/sa.h"

#include <stdbool.h>
#include <stddef.h>

struct cli_workers {
    size_t n_jobs;
    /* runs job i on this worker's pipeline (any thread; the command locks its own outputs) */
    void (*run)(void *user, struct sa_pipeline *pl, size_t i);
    /* true: take no more jobs (a fatal failure, an interrupt); polled before each job */
    bool (*stopped)(void *user);
    void *user;
};

/* Runs the jobs on `parallel` workers (1: on this thread) with pipelines made from *pp (its sched
 * is set here for parallel > 1). `cmd` names the command in messages. Returns CLI_OK, or
 * CLI_FAIL when a scheduler, a pipeline or a thread could not be made (said on stderr); the
 * jobs' own failures are the command's to report. */
int cli_run_workers(const char *cmd, const struct sa_pipeline_params *pp, int parallel, const struct cli_workers *w);

#endif
