/* metrics.c: the server's counters and their Prometheus text exposition (GET /metrics,
 * https://prometheus.io/docs/instrumenting/exposition_formats/): requests by outcome, tokens
 * of each model, sentences, revisions and copies (the copy rate), the queue and the busy
 * slots, and histograms of the time to the first sentence and of the whole request. */
#define _GNU_SOURCE
#include "server/server_impl.h"

#include "sa/batch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* upper bounds (seconds) of the latency buckets; the last one is +Inf */
static const double lat_le[SRV_N_LAT - 1] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

void srv_metrics_init(struct srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(struct srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

static void bucket(int64_t *b, double x) {
    int i = 0;
    while (i < SRV_N_LAT - 1 && x > lat_le[i]) i++;
    b[i]++;
}

void srv_metrics_latency(struct srv_metrics *m, double first_s, double total_s) {
    pthread_mutex_lock(&m->mu);
    if (first_s > 0) {
        m->first_n++;
        m->first_sum += first_s;
        bucket(m->first_b, first_s);
    }
    m->total_n++;
    m->total_sum += total_s;
    bucket(m->total_b, total_s);
    pthread_mutex_unlock(&m->mu);
}

struct out {
    char *s;
    size_t len, cap;
    bool oom;
};

static void put(struct out *o, const char *fmt, ...) SA_PRINTF(2, 3);
static void put(struct out *o, const char *fmt, ...) {
    if (o->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        char *t = realloc(o->s, o->cap * 2 + (size_t)n);
        if (!t) {
            o->oom = true;
            return;
        }
        o->s = t;
        o->cap = o->cap * 2 + (size_t)n;
    }
}

static void counter(struct out *o, const char *name, const char *help, int64_t v) {
    put(o, "# HELP %s %s\n# TYPE %s counter\n%s %lld\n", name, help, name, name, (long long)v);
}

static void gauge(struct out *o, const char *name, const char *help, double v) {
    put(o, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

static void histogram(struct out *o, const char *name, const char *help, const int64_t *b, int64_t n, double sum) {
    put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    int64_t cum = 0;
    for (int i = 0; i < SRV_N_LAT - 1; i++) {
        cum += b[i];
        put(o, "%s_bucket{le=\"%g\"} %lld\n", name, lat_le[i], (long long)cum);
    }
    put(o, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.17g\n%s_count %lld\n", name, (long long)n, name, sum, name,
        (long long)n);
}

/* The resident set of this process in bytes (Linux /proc/self/statm), or -1. */
static double resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long long size = 0, resident = -1;
    const int n = fscanf(f, "%lld %lld", &size, &resident);
    fclose(f);
    const long page = sysconf(_SC_PAGESIZE);
    return n == 2 && resident >= 0 && page > 0 ? (double)resident * (double)page : -1;
}

char *srv_metrics_text(struct srv_metrics *m, int32_t n_slots, const struct sa_sched_stats *sched, int64_t n_connections,
                       int64_t n_streams) {
    struct out o = {.s = malloc(4096), .cap = 4096};
    if (!o.s) return NULL;
    o.s[0] = 0;
    pthread_mutex_lock(&m->mu);
    const struct srv_metrics c = *m; /* a consistent snapshot */
    pthread_mutex_unlock(&m->mu);
    counter(&o, "salign_requests_total", "completion requests received (chat and completions)", c.requests);
    put(&o, "# HELP salign_requests_finished_total completion requests by outcome\n"
            "# TYPE salign_requests_finished_total counter\n");
    const struct { const char *k; int64_t v; } outcomes[] = {
        {"ok", c.completed},
        {"error", c.failed},
        {"client_disconnect", c.cancelled_client},
        {"timeout", c.cancelled_timeout},
        {"shutdown", c.cancelled_shutdown},
        {"queue_full", c.rejected_queue},
        {"bad_request", c.rejected_bad},
        {"unauthorized", c.rejected_auth},
        {"not_found", c.rejected_not_found},
        {"too_large", c.rejected_too_large},
    };
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
        put(&o, "salign_requests_finished_total{outcome=\"%s\"} %lld\n", outcomes[i].k, (long long)outcomes[i].v);
    counter(&o, "salign_requests_cancelled_total", "runs cancelled before their end (client gone, timeout, shutdown)",
            c.cancelled_client + c.cancelled_timeout + c.cancelled_shutdown);
    counter(&o, "salign_sentences_total", "sentences served", c.sentences);
    counter(&o, "salign_revisions_total", "sentences (or answers) the aligner revised", c.revisions);
    counter(&o, "salign_revisions_copied_total", "revisions equal to the upstream's sentence", c.copied);
    gauge(&o, "salign_copy_rate", "copied / revisions since start (0 before any)",
          c.revisions ? (double)c.copied / (double)c.revisions : 0.0);
    counter(&o, "salign_completion_tokens_total", "tokens of the answers served", c.completion_tokens);
    counter(&o, "salign_upstream_tokens_total", "tokens the upstream generated", c.upstream_tokens);
    counter(&o, "salign_aligner_tokens_total", "tokens the aligner generated", c.aligner_tokens);
    gauge(&o, "salign_queue_length", "requests waiting for a slot", (double)c.queue_len);
    gauge(&o, "salign_slots_busy", "slots running a request", (double)c.busy);
    gauge(&o, "salign_slots", "slots (--parallel)", (double)n_slots);
    gauge(&o, "salign_connections_open", "open HTTP connections (this one included)", (double)n_connections);
    gauge(&o, "salign_streams_open", "streamed answers not yet fully sent", (double)n_streams);
    counter(&o, "salign_streams_stalled_total", "streams closed because their client took no bytes for the idle timeout",
            c.stalled);
    if (sched) {
        counter(&o, "salign_sched_passes_total", "batched forward passes of the slots' local models", sched->n_passes);
        counter(&o, "salign_sched_calls_total", "decode calls served by them (calls / passes: the batching)",
                sched->n_calls);
        counter(&o, "salign_sched_rows_total", "token rows computed in them", sched->n_rows);
    }
    const double rss = resident_bytes();
    if (rss >= 0) gauge(&o, "process_resident_memory_bytes", "resident memory size in bytes", rss);
    histogram(&o, "salign_first_sentence_seconds", "time from the request to its first sentence", c.first_b,
              c.first_n, c.first_sum);
    histogram(&o, "salign_request_seconds", "time from the request to its end", c.total_b, c.total_n, c.total_sum);
    if (o.oom) {
        free(o.s);
        return NULL;
    }
    return o.s;
}
