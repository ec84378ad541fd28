/* status.h: status codes and the per-thread error message of the salign library.
 * Every fallible function returns enum sa_status; on error, sa_last_error() holds a
 * human-readable message that names the problem (and, where useful, what to do). */
#ifndef SA_STATUS_H
#define SA_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SA_NODISCARD __attribute__((warn_unused_result))
#define SA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SA_NODISCARD
#define SA_PRINTF(a, b)
#endif

/* 0 ok, negative: error. Add new values only at the end. */
enum sa_status {
    SA_STATUS_OK = 0,
    SA_STATUS_ERROR = -1,         /* unspecified failure */
    SA_STATUS_NO_MEMORY = -2,     /* allocation failed */
    SA_STATUS_IO = -3,            /* open/read/write/mmap failed */
    SA_STATUS_BAD_FILE = -4,      /* a file is malformed, truncated or hostile */
    SA_STATUS_UNSUPPORTED = -5,   /* valid input we do not handle (type, architecture, version) */
    SA_STATUS_BAD_ARGUMENT = -6,  /* caller passed an invalid value */
    SA_STATUS_NOT_FOUND = -7,     /* key, tensor, model or file not present */
    SA_STATUS_NETWORK = -8,       /* download or connection failure */
    SA_STATUS_CHECKSUM = -9,      /* size or sha256 mismatch */
    SA_STATUS_CANCELLED = -10,    /* a cancel callback asked to stop */
    SA_STATUS_BAD_JSON = -11,     /* malformed JSON or a missing/ill-typed field */
    SA_STATUS_TIMEOUT = -12,      /* an operation ran past its deadline */
};

/* Static English name of a status ("bad file", ...). Never NULL. */
const char *sa_status_str(enum sa_status s);

/* The message of the last error set on this thread ("" if none). Valid until the next
 * library call on this thread that fails. */
const char *sa_last_error(void);

/* Sets this thread's error message (printf-style) and returns `s`, so that error paths
 * read `return sa_error(SA_STATUS_BAD_FILE, "%s: bad magic", path);`. */
enum sa_status sa_error(enum sa_status s, const char *fmt, ...) SA_PRINTF(2, 3);

/* Prefixes the current error message with "<prefix>: " (context as an error travels up). */
enum sa_status sa_error_wrap(enum sa_status s, const char *fmt, ...) SA_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif
#endif
