/* status.h: status codes, the per-thread error message and the log callback of the salign
 * library. Every fallible function returns enum sa_status; on error, sa_last_error() holds a
 * human-readable message that names the problem (and, where useful, what to do). The library
 * never writes to the terminal itself: warnings go to the log callback (sa_log_set), whose
 * default writes them to stderr. Contract: docs/internals/logging.md. */
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

/* ---- logging (llama.h's llama_log_set) ---- */

/* Severity of a log message, most severe first. Add new values only at the end. */
enum sa_log_level {
    SA_LOG_ERROR = 0, /* something failed (and an assertion's message before abort()) */
    SA_LOG_WARN = 1,  /* the run goes on, but the user should know (retries, ignored values) */
    SA_LOG_INFO = 2,  /* progress worth a line (resumed downloads, conversion notes) */
    SA_LOG_DEBUG = 3, /* details for developers */
};

/* Receives one message: `text` is the message without prefix and without a trailing newline
 * ("tokenizer: eos_token_id = 70000 is outside the vocabulary; ignored"), valid only during
 * the call. Called on the thread that logs (any thread that calls into the library, possibly
 * several at once): it must be thread-safe, should return quickly, and must not call back
 * into the library except sa_log_level_name and sa_log_default. */
typedef void (*sa_log_callback)(enum sa_log_level level, const char *text, void *user_data);

/* Sends the library's log messages to `callback` (every level: the callback filters), with
 * `user_data` passed through (borrowed: it must stay valid until another sa_log_set call
 * returns and the library calls that may still be logging on other threads have returned).
 * NULL restores the default, sa_log_default. Thread-safe; takes effect for the messages logged
 * after it returns. */
void sa_log_set(sa_log_callback callback, void *user_data);

/* The default callback: writes "salign: <level name>: <text>\n" to stderr for the levels up
 * to $SALIGN_LOG (error, warn, info or debug; read once; default warn).
 * user_data is unused. A callback may call it to keep the default output. */
void sa_log_default(enum sa_log_level level, const char *text, void *user_data);

/* "error", "warning", "info", "debug" (static); "unknown" for another value. */
const char *sa_log_level_name(enum sa_log_level level);

#ifdef __cplusplus
}
#endif
#endif
