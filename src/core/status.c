/* status.c: status names, the per-thread error message buffer, the log callback (sa_log_set)
 * and the assertion failure path. The library's only writes to stderr are here, in the
 * default log callback. */
#define _POSIX_C_SOURCE 200809L
#include "core/core_impl.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_msg[2048];

const char *sa_status_str(enum sa_status s) {
    switch (s) {
    case SA_STATUS_OK: return "ok";
    case SA_STATUS_ERROR: return "error";
    case SA_STATUS_NO_MEMORY: return "out of memory";
    case SA_STATUS_IO: return "i/o error";
    case SA_STATUS_BAD_FILE: return "bad file";
    case SA_STATUS_UNSUPPORTED: return "unsupported";
    case SA_STATUS_BAD_ARGUMENT: return "bad argument";
    case SA_STATUS_NOT_FOUND: return "not found";
    case SA_STATUS_NETWORK: return "network error";
    case SA_STATUS_CHECKSUM: return "checksum mismatch";
    case SA_STATUS_CANCELLED: return "cancelled";
    case SA_STATUS_BAD_JSON: return "bad json";
    case SA_STATUS_TIMEOUT: return "timeout";
    }
    return "unknown status";
}

const char *sa_last_error(void) { return g_msg; }

enum sa_status sa_error(enum sa_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return s;
}

enum sa_status sa_error_wrap(enum sa_status s, const char *fmt, ...) {
    char prefix[512], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    size_t pl = strlen(prefix);
    if (pl + 2 >= sizeof g_msg) pl = sizeof g_msg - 3;
    memcpy(g_msg, prefix, pl);
    memcpy(g_msg + pl, ": ", 2);
    size_t room = sizeof g_msg - pl - 3;
    size_t ol = strnlen(old, room);
    memcpy(g_msg + pl + 2, old, ol);
    g_msg[pl + 2 + ol] = 0;
    return s;
}

/* ---- logging ---- */

/* The callback and its user data change together under the lock; sa_log copies them out and
 * calls without holding it (a slow callback does not serialise other threads' setters). */
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static sa_log_callback g_log_cb = sa_log_default;
static void *g_log_user;

static pthread_once_t g_threshold_once = PTHREAD_ONCE_INIT;
static int g_threshold = SA_LOG_WARN;

static void read_threshold(void) {
    const char *e = getenv("SALIGN_LOG");
    if (!e) return;
    if (!strcmp(e, "error")) g_threshold = SA_LOG_ERROR;
    else if (!strcmp(e, "info")) g_threshold = SA_LOG_INFO;
    else if (!strcmp(e, "debug")) g_threshold = SA_LOG_DEBUG;
}

static int log_threshold(void) {
    pthread_once(&g_threshold_once, read_threshold);
    return g_threshold;
}

const char *sa_log_level_name(enum sa_log_level level) {
    switch (level) {
    case SA_LOG_ERROR: return "error";
    case SA_LOG_WARN: return "warning";
    case SA_LOG_INFO: return "info";
    case SA_LOG_DEBUG: return "debug";
    }
    return "unknown";
}

void sa_log_default(enum sa_log_level level, const char *text, void *user_data) {
    (void)user_data;
    if ((int)level > log_threshold()) return;
    fprintf(stderr, "salign: %s: %s\n", sa_log_level_name(level), text);
}

void sa_log_set(sa_log_callback callback, void *user_data) {
    pthread_mutex_lock(&g_log_lock);
    g_log_cb = callback ? callback : sa_log_default;
    g_log_user = callback ? user_data : NULL;
    pthread_mutex_unlock(&g_log_lock);
}

static void log_get(sa_log_callback *cb, void **user) {
    pthread_mutex_lock(&g_log_lock);
    *cb = g_log_cb;
    *user = g_log_user;
    pthread_mutex_unlock(&g_log_lock);
}

void sa_log(enum sa_log_level level, const char *fmt, ...) {
    sa_log_callback cb;
    void *user;
    log_get(&cb, &user);
    if (cb == sa_log_default && (int)level > log_threshold()) return; /* not even formatted */
    char small[1024], *text = small, *big = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof small && (big = malloc((size_t)n + 1))) {
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        text = big;
    } /* else (out of memory): the message cut to the buffer */
    cb(level, text, user);
    free(big);
}

/* A bug: the message goes to the log callback when one was set (a server keeps it in its own
 * log), else to stderr exactly as before the callback existed; then abort(). */
_Noreturn void sa_assert_fail(const char *file, int line, const char *expr) {
    sa_log_callback cb;
    void *user;
    log_get(&cb, &user);
    if (cb != sa_log_default) {
        char text[1024];
        snprintf(text, sizeof text, "%s:%d: assertion failed: %s", file, line, expr);
        cb(SA_LOG_ERROR, text, user);
    } else {
        fprintf(stderr, "salign: %s:%d: assertion failed: %s\n", file, line, expr);
        fflush(stderr);
    }
    abort();
}
