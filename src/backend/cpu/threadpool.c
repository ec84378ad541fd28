/* threadpool.c: persistent worker threads for the CPU backend. A run publishes (fn, ctx) and
 * bumps a generation counter; workers wait for the counter to change by spinning a bounded
 * time (SPIN_NS, with `pause`) and then sleeping on a futex, so that a busy neighbour process
 * on a shared machine costs a wake-up, not a spinning time slice (llama.cpp's spin barriers
 * collapse there). The caller runs share 0, then runs itself every share that no worker has
 * claimed yet (a worker that is descheduled or still waking up), and waits only for shares
 * that workers are running.
 * Invariants: docs/internals/cpu_backend.md. */
#define _GNU_SOURCE
#include "backend/cpu/cpu_impl.h"
#include "core/core_impl.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ~ the time between two matrix products of a decode step: long enough that a worker is
 * still awake for the next one, short enough that an idle pool gives its cores back fast. */
#define SPIN_NS 80000
#define MAX_THREADS 256

struct sa_threadpool {
    int n_threads;
    pthread_t *threads;          /* (n_threads - 1) workers; share 0 is the caller */
    pthread_mutex_t run_lock;    /* one run at a time */
    sa_task_fn fn;               /* the current run: written before gen is bumped */
    void *ctx;
    _Atomic uint32_t gen;        /* futex word: +1 per run (and at shutdown) */
    _Atomic uint32_t *claim;     /* (n_threads): generation of the last run whose share i was
                                    claimed; share i of run g is free while claim[i] == g - 1 */
    _Atomic uint32_t n_done;     /* futex word: shares 1.. finished in the current run */
    _Atomic int n_sleeping;      /* workers in futex_wait on gen */
    _Atomic int caller_sleeping; /* the caller is in futex_wait on n_done */
    _Atomic int stop;
};

struct worker_arg {
    struct sa_threadpool *tp;
    int ith;
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t expected) {
    /* returns on a wake, a signal, or at once if *addr != expected (EAGAIN) */
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr, int n) {
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until (*word == v) == equal, for at most SPIN_NS; true if that happened. */
static bool spin_until(_Atomic uint32_t *word, uint32_t v, bool equal) {
    int64_t t0 = 0;
    for (int i = 0;; i++) {
        if ((atomic_load_explicit(word, memory_order_acquire) == v) == equal) return true;
        cpu_relax();
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return false;
        }
    }
}

static void *worker_main(void *p) {
    struct worker_arg *arg = p;
    struct sa_threadpool *tp = arg->tp;
    const int ith = arg->ith, nth = tp->n_threads;
    free(arg);
    uint32_t seen = 0;
    for (;;) {
        if (!spin_until(&tp->gen, seen, false)) {
            /* Dekker with sa_threadpool_run: we publish n_sleeping before re-reading gen
             * (in the kernel), it publishes gen before reading n_sleeping (both seq_cst). */
            atomic_fetch_add(&tp->n_sleeping, 1);
            while (atomic_load(&tp->gen) == seen) futex_wait(&tp->gen, seen);
            atomic_fetch_sub(&tp->n_sleeping, 1);
        }
        seen = atomic_load_explicit(&tp->gen, memory_order_acquire);
        if (atomic_load(&tp->stop)) break;
        /* A stale `seen` (this thread slept through a run whose share the caller took) makes
         * the claim fail: claim[ith] is then already seen or later. A successful claim means
         * run `seen` is still waiting for this share, so fn and ctx are that run's. */
        uint32_t expect = seen - 1;
        if (!atomic_compare_exchange_strong(&tp->claim[ith], &expect, seen)) continue;
        tp->fn(tp->ctx, ith, nth);
        uint32_t done = atomic_fetch_add(&tp->n_done, 1) + 1;
        if (done == (uint32_t)(nth - 1) && atomic_load(&tp->caller_sleeping)) futex_wake(&tp->n_done, 1);
    }
    return NULL;
}

static int online_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void stop_workers(struct sa_threadpool *tp, int n_started) {
    atomic_store(&tp->stop, 1);
    atomic_fetch_add(&tp->gen, 1);
    futex_wake(&tp->gen, INT_MAX);
    for (int i = 0; i < n_started; i++) pthread_join(tp->threads[i], NULL);
}

enum sa_status sa_threadpool_init(int n_threads, struct sa_threadpool **out) {
    *out = NULL;
    if (n_threads <= 0) n_threads = online_cpus();
    if (n_threads > MAX_THREADS) return sa_error(SA_STATUS_BAD_ARGUMENT, "thread pool: %d threads (max %d)", n_threads, MAX_THREADS);
    struct sa_threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return sa_error(SA_STATUS_NO_MEMORY, "thread pool: out of memory");
    tp->n_threads = n_threads;
    pthread_mutex_init(&tp->run_lock, NULL);
    if (n_threads > 1) {
        tp->threads = calloc((size_t)n_threads - 1, sizeof *tp->threads);
        tp->claim = calloc((size_t)n_threads, sizeof *tp->claim);
        if (!tp->threads || !tp->claim) {
            sa_threadpool_free(tp);
            return sa_error(SA_STATUS_NO_MEMORY, "thread pool: out of memory");
        }
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *arg = malloc(sizeof *arg);
        if (arg) *arg = (struct worker_arg){tp, i};
        int rc = arg ? pthread_create(&tp->threads[i - 1], NULL, worker_main, arg) : ENOMEM;
        if (rc != 0) {
            free(arg);
            stop_workers(tp, i - 1);
            tp->n_threads = 1; /* nothing left to stop in free */
            sa_threadpool_free(tp);
            return sa_error(SA_STATUS_ERROR, "thread pool: cannot start thread %d of %d (error %d)", i, n_threads, rc);
        }
    }
    *out = tp;
    return SA_STATUS_OK;
}

void sa_threadpool_free(struct sa_threadpool *tp) {
    if (!tp) return;
    if (tp->n_threads > 1 && tp->threads) stop_workers(tp, tp->n_threads - 1);
    pthread_mutex_destroy(&tp->run_lock);
    free(tp->threads);
    free((void *)tp->claim);
    free(tp);
}

int sa_threadpool_n_threads(const struct sa_threadpool *tp) { return tp ? tp->n_threads : 1; }

void sa_threadpool_run(struct sa_threadpool *tp, sa_task_fn fn, void *ctx) {
    if (!tp || tp->n_threads <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    const uint32_t n_workers = (uint32_t)tp->n_threads - 1;
    pthread_mutex_lock(&tp->run_lock);
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store(&tp->n_done, 0);
    uint32_t g = atomic_fetch_add(&tp->gen, 1) + 1; /* seq_cst: publishes fn, ctx, n_done */
    if (atomic_load(&tp->n_sleeping) > 0) futex_wake(&tp->gen, INT_MAX);

    fn(ctx, 0, tp->n_threads);
    /* shares no worker has started: run them here rather than wait for a wake-up */
    for (int i = 1; i < tp->n_threads; i++) {
        uint32_t expect = g - 1;
        if (atomic_compare_exchange_strong(&tp->claim[i], &expect, g)) {
            fn(ctx, i, tp->n_threads);
            atomic_fetch_add(&tp->n_done, 1);
        }
    }

    uint32_t done = atomic_load_explicit(&tp->n_done, memory_order_acquire);
    if (done != n_workers && !spin_until(&tp->n_done, n_workers, true)) {
        atomic_store(&tp->caller_sleeping, 1);
        while ((done = atomic_load(&tp->n_done)) != n_workers) futex_wait(&tp->n_done, done);
        atomic_store(&tp->caller_sleeping, 0);
    }
    pthread_mutex_unlock(&tp->run_lock);
}
