/* core_impl.h: library-internal helpers shared by every module: assertions, logging,
 * checked arithmetic, a growable byte buffer, whole-file reads, read-only file mapping,
 * SHA-256. Not part of the public API. */
#ifndef SA_CORE_IMPL_H
#define SA_CORE_IMPL_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Always-on assertion for programming errors (never for bad input: that gets a status). */
#define SA_ASSERT(x)                                                                     \
    do {                                                                                 \
        if (!(x)) sa_assert_fail(__FILE__, __LINE__, #x);                                \
    } while (0)
_Noreturn void sa_assert_fail(const char *file, int line, const char *expr);

#define SA_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SA_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SA_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Logs a printf-style message (no trailing newline) through the callback of sa_log_set
 * (sa/status.h); the default writes "salign: <level>: <message>" to stderr up to $SALIGN_LOG
 * (error|warn|info|debug, default warn). The library's one way to tell the user something
 * that is not a status. */
void sa_log(enum sa_log_level level, const char *fmt, ...) SA_PRINTF(2, 3);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool sa_mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool sa_add_ok(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Growable byte buffer (curl dynbuf). Always NUL-terminated when len > 0 or after any
 * append. `cap_max` (0: unlimited) bounds growth, e.g. for untrusted HTTP bodies. */
struct sa_buf {
    char *data;
    size_t len, cap, cap_max;
};
void sa_buf_init(struct sa_buf *b, size_t cap_max);
void sa_buf_free(struct sa_buf *b);
void sa_buf_clear(struct sa_buf *b);
SA_NODISCARD enum sa_status sa_buf_append(struct sa_buf *b, const void *p, size_t n);
SA_NODISCARD enum sa_status sa_buf_puts(struct sa_buf *b, const char *s);
SA_NODISCARD enum sa_status sa_buf_printf(struct sa_buf *b, const char *fmt, ...) SA_PRINTF(2, 3);
/* Hands the data over to the caller (free() it); the buffer is left empty. */
char *sa_buf_take(struct sa_buf *b, size_t *len);

/* Reads a whole file into a NUL-terminated malloc'd buffer (max_size 0: no limit). */
SA_NODISCARD enum sa_status sa_read_file(const char *path, size_t max_size, char **out, size_t *len);
/* Writes atomically: to path.tmp, fsync, rename. */
SA_NODISCARD enum sa_status sa_write_file_atomic(const char *path, const void *data, size_t len);

/* n bytes for weights: blocks of 2 MiB or more are 2 MiB-aligned and advised to use
 * transparent huge pages (madvise), so that streaming them (decode) walks few TLB entries;
 * smaller ones are plain malloc. Released with free(). NULL when out of memory. */
void *sa_alloc_weights(size_t n);
/* Reads a whole file into sa_alloc_weights memory (plus a NUL after the last byte; caller
 * frees with free()). */
SA_NODISCARD enum sa_status sa_read_file_weights(const char *path, char **out, size_t *len);

/* After a model file was written and fsync'd: drops its pages from the page cache, so that
 * the first reader brings them back from disk. Pages that a write left in the cache keep
 * whatever folio sizes the writes made, often small, for as long as they stay cached; pages
 * read from disk come as large folios (up to 2 MiB on ext4 and xfs of recent kernels), which
 * a mapping of the file reaches through one TLB entry each, so that decode streams them
 * faster (docs/BENCHMARKS.md, "Page-cache folios"). Advice only: errors are ignored. */
void sa_file_drop_cache(int fd);

/* Read-only mapping of a whole file: at a 2 MiB-aligned address advised for transparent
 * huge pages (files of 2 MiB or more), so that large page-cache folios are mapped whole. */
struct sa_file_map {
    const uint8_t *data; /* (size) bytes; NULL when size == 0 */
    size_t size;
};
SA_NODISCARD enum sa_status sa_file_map_open(const char *path, struct sa_file_map *m);
void sa_file_map_close(struct sa_file_map *m);

/* SHA-256 (FIPS 180-4). */
struct sa_sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t block[64];
    size_t block_len;
};
void sa_sha256_init(struct sa_sha256 *s);
void sa_sha256_update(struct sa_sha256 *s, const void *data, size_t n);
void sa_sha256_final(struct sa_sha256 *s, uint8_t out[32]);
/* Hex digest (65 bytes with NUL) of a file. */
SA_NODISCARD enum sa_status sa_sha256_file(const char *path, char hex[65]);
void sa_sha256_hex(const uint8_t digest[32], char hex[65]);

/* Creates a directory and its parents (mkdir -p). */
SA_NODISCARD enum sa_status sa_mkdir_p(const char *path, int mode);
bool sa_file_exists(const char *path);
/* Monotonic time in seconds. */
double sa_time_now(void);

/* UTF-8: length of the valid prefix of s (stops at the first invalid or truncated sequence). */
size_t sa_utf8_valid_prefix(const char *s, size_t n);
/* Length in bytes of a UTF-8 sequence from its lead byte (0 for a continuation/invalid byte). */
int sa_utf8_seq_len(unsigned char lead);

/* Parses a prompt file (the files in docs/prompts/: '#' comment lines, then optional "[system]"
 * and "[user]" sections; text with no marker is the user message). On success *system and
 * *user are malloc'd, trimmed, the user message non-empty; `name` labels error messages. */
SA_NODISCARD enum sa_status sa_prompt_file_parse(const char *text, size_t len, const char *name, char **system,
                                                 char **user, bool *has_system);
/* sa_prompt_file_parse, then an error (SA_STATUS_BAD_FILE, naming it) for each of the
 * n_required placeholders ("{question}", ...) missing from the user message. */
SA_NODISCARD enum sa_status sa_prompt_file_parse_with(const char *text, size_t len, const char *name,
                                                      const char *const *required, size_t n_required, char **system,
                                                      char **user);
/* The placeholders names[k] of tmpl replaced by values[k], in one pass: text inside a value is
 * never read as a placeholder; other "{...}" (LaTeX) stays as written. *out is malloc'd. */
SA_NODISCARD enum sa_status sa_prompt_fill(const char *tmpl, const char *const *names, const char *const *values,
                                           size_t n, char **out);

#endif
