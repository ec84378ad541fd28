/* cli_workers.c: P pipelines over one scheduler, taking jobs in turn (cli_workers.h). */
#include "cli_workers.h"
#include "cli.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

struct pool {
    const struct cli_workers *w;
    atomic_size_t next;
    atomic_bool abort; /* a thread could not start: the others stop taking jobs */
};

struct worker {
    struct pool *pool;
    struct sa_pipeline *pl;
    struct sa_sched *sched;
};

static void *worker_main(void *arg) {
    struct worker *wk = arg;
    const struct cli_workers *w = wk->pool->w;
    if (wk->sched) sa_sched_enter(wk->sched);
    for (;;) {
        const size_t i = atomic_fetch_add(&wk->pool->next, 1);
        if (i >= w->n_jobs || atomic_load(&wk->pool->abort) || (w->stopped && w->stopped(w->user))) break;
        w->run(w->user, wk->pl, i);
    }
    if (wk->sched) sa_sched_leave(wk->sched);
    return NULL;
}

int cli_run_workers(const char *cmd, const struct sa_pipeline_params *pp0, int parallel, const struct cli_workers *w) {
    enum { MAX_WORKERS = 64 };
    const int n = parallel > 1 ? (parallel < MAX_WORKERS ? parallel : MAX_WORKERS) : 1;
    struct sa_pipeline_params pp = *pp0;
    struct sa_sched *sched = NULL;
    if (n > 1) {
        struct sa_sched_params sp = sa_sched_default_params();
        sp.n_threads = pp.n_threads;
        sp.n_ctx = pp.n_ctx;
        sp.batch_invariant = pp.batch_invariant;
        if (sa_sched_init(&sp, &sched)) return cli_fail(cmd);
        pp.sched = sched;
    }
    struct pool pool = {.w = w};
    atomic_init(&pool.next, 0);
    atomic_init(&pool.abort, false);
    struct worker wk[MAX_WORKERS] = {{0}};
    pthread_t th[MAX_WORKERS];
    int rc = CLI_OK, n_started = 0;
    for (int i = 0; i < n && !rc; i++) {
        wk[i] = (struct worker){.pool = &pool, .sched = sched};
        if (sa_pipeline_init(&pp, &wk[i].pl)) rc = cli_fail("pipeline");
    }
    if (!rc && n == 1) {
        worker_main(&wk[0]);
    } else if (!rc) {
        for (int i = 0; i < n; i++) {
            if (pthread_create(&th[i], NULL, worker_main, &wk[i])) {
                fprintf(stderr, "salign %s: cannot start thread %d of --parallel %d\n", cmd, i + 1, n);
                atomic_store(&pool.abort, true);
                rc = CLI_FAIL;
                break;
            }
            n_started++;
        }
        for (int i = 0; i < n_started; i++) pthread_join(th[i], NULL);
    }
    for (int i = 0; i < n; i++) sa_pipeline_free(wk[i].pl);
    sa_sched_free(sched);
    return rc;
}
