/* status.c: status names and the per-thread error message buffer. */
#define _POSIX_C_SOURCE 200809L
#include "sa/status.h"

#include <stdarg.h>
#include <stdio.h>
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
