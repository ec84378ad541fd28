/* gguf.h: reader (over mmap) and writer of GGUF v2/v3 files.
 * Spec: ggml docs/gguf.md. The reader validates everything on open (magic, version,
 * counts, string lengths, array sizes, tensor dims, types, offsets, alignment, data
 * inside the file) so that every accessor below is safe on any input. */
#ifndef SA_GGUF_H
#define SA_GGUF_H

#include "sa/dtype.h"
#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types, numbered as in the spec. */
enum sa_gguf_type {
    SA_GGUF_TYPE_UINT8 = 0,
    SA_GGUF_TYPE_INT8 = 1,
    SA_GGUF_TYPE_UINT16 = 2,
    SA_GGUF_TYPE_INT16 = 3,
    SA_GGUF_TYPE_UINT32 = 4,
    SA_GGUF_TYPE_INT32 = 5,
    SA_GGUF_TYPE_FLOAT32 = 6,
    SA_GGUF_TYPE_BOOL = 7,
    SA_GGUF_TYPE_STRING = 8,
    SA_GGUF_TYPE_ARRAY = 9,
    SA_GGUF_TYPE_UINT64 = 10,
    SA_GGUF_TYPE_INT64 = 11,
    SA_GGUF_TYPE_FLOAT64 = 12,
};

/* A string inside the mapped file: NOT NUL-terminated. */
struct sa_gguf_str {
    const char *ptr;
    uint64_t len;
};

struct sa_gguf_tensor {
    const char *name;       /* NUL-terminated copy owned by the sa_gguf */
    enum sa_dtype type;
    uint32_t n_dims;        /* 1..4 */
    int64_t ne[4];          /* elements per dim, ne[0] fastest (GGML order); unused dims are 1 */
    uint64_t offset;        /* relative to the start of the data section */
    uint64_t n_bytes;       /* size of the data */
    const void *data;       /* into the mapping (reader), valid while the sa_gguf lives */
};

struct sa_gguf; /* opaque */

/* Opens and validates `path` (mmapped read-only). On error *out is NULL and
 * sa_last_error() names the problem ("truncated", "bad magic", "tensor 'x' data outside
 * file", ...). Free with sa_gguf_free. */
SA_NODISCARD enum sa_status sa_gguf_open(const char *path, struct sa_gguf **out);
/* Same over a caller-owned buffer that must outlive the handle (used by tests/fuzzers). */
SA_NODISCARD enum sa_status sa_gguf_open_memory(const void *data, size_t size, struct sa_gguf **out);
void sa_gguf_free(struct sa_gguf *g);

uint32_t sa_gguf_version(const struct sa_gguf *g);
uint64_t sa_gguf_alignment(const struct sa_gguf *g);
uint64_t sa_gguf_data_offset(const struct sa_gguf *g); /* file offset of the data section */

/* ---- metadata ----
 * Keys are indexed 0..n_kv-1 in file order. An index out of range gives NULL / 0 / an
 * empty string from the accessors below, except sa_gguf_kv_type and sa_gguf_arr_type,
 * for which it is a programming error (SA_ASSERT). */
int64_t sa_gguf_n_kv(const struct sa_gguf *g);
/* Index of a key, or -1 (also for a NULL key). Hashed: O(1). */
int64_t sa_gguf_find_key(const struct sa_gguf *g, const char *key);
const char *sa_gguf_key(const struct sa_gguf *g, int64_t i); /* NUL-terminated copy */
enum sa_gguf_type sa_gguf_kv_type(const struct sa_gguf *g, int64_t i);
/* For arrays: the element type (for a non-array: its own type) and count (0 for a
 * non-array). Nested arrays are rejected on open (UNSUPPORTED). */
enum sa_gguf_type sa_gguf_arr_type(const struct sa_gguf *g, int64_t i);
uint64_t sa_gguf_arr_n(const struct sa_gguf *g, int64_t i);
/* Raw pointer to the elements of a non-string array (little-endian, packed), NULL for
 * anything else. NOT necessarily aligned: read elements with memcpy. */
const void *sa_gguf_arr_data(const struct sa_gguf *g, int64_t i);
/* Element j of an array of strings; {NULL, 0} if not one or j >= sa_gguf_arr_n. */
struct sa_gguf_str sa_gguf_arr_str(const struct sa_gguf *g, int64_t i, uint64_t j);
/* A string value; {NULL, 0} if not a string. */
struct sa_gguf_str sa_gguf_get_str(const struct sa_gguf *g, int64_t i);

/* Typed getters by key. They return false when the key is missing or of another type;
 * integer getters accept any integer type whose value fits. */
bool sa_gguf_get_u32(const struct sa_gguf *g, const char *key, uint32_t *out);
bool sa_gguf_get_i64(const struct sa_gguf *g, const char *key, int64_t *out);
bool sa_gguf_get_f32(const struct sa_gguf *g, const char *key, float *out); /* f32 or f64 */
bool sa_gguf_get_bool(const struct sa_gguf *g, const char *key, bool *out);
/* Returns a malloc'd NUL-terminated copy (caller frees), or NULL if missing/not a string. */
char *sa_gguf_get_string(const struct sa_gguf *g, const char *key);

/* ---- tensors ---- (in file order; names unique, data non-overlapping and inside the file) */
int64_t sa_gguf_n_tensors(const struct sa_gguf *g);
/* NULL if i is out of range. */
const struct sa_gguf_tensor *sa_gguf_tensor(const struct sa_gguf *g, int64_t i);
/* NULL if absent. Hashed: O(1). */
const struct sa_gguf_tensor *sa_gguf_find_tensor(const struct sa_gguf *g, const char *name);

/* ---- writer ---- */
struct sa_gguf_writer; /* opaque: collects metadata and tensors, then writes in one go */

SA_NODISCARD enum sa_status sa_gguf_writer_init(struct sa_gguf_writer **out);
void sa_gguf_writer_free(struct sa_gguf_writer *w);
SA_NODISCARD enum sa_status sa_gguf_writer_set_u32(struct sa_gguf_writer *w, const char *key, uint32_t v);
SA_NODISCARD enum sa_status sa_gguf_writer_set_i32(struct sa_gguf_writer *w, const char *key, int32_t v);
SA_NODISCARD enum sa_status sa_gguf_writer_set_u64(struct sa_gguf_writer *w, const char *key, uint64_t v);
SA_NODISCARD enum sa_status sa_gguf_writer_set_f32(struct sa_gguf_writer *w, const char *key, float v);
SA_NODISCARD enum sa_status sa_gguf_writer_set_bool(struct sa_gguf_writer *w, const char *key, bool v);
SA_NODISCARD enum sa_status sa_gguf_writer_set_str(struct sa_gguf_writer *w, const char *key, const char *v);
/* Any scalar type (UINT8..FLOAT64 except STRING/ARRAY); `v` points to the C value of that
 * type (uint8_t, int8_t, ..., float, bool, ..., double). Setting a key that is already set
 * (by any setter) replaces its value in place. */
SA_NODISCARD enum sa_status sa_gguf_writer_set_scalar(struct sa_gguf_writer *w, const char *key,
                                                       enum sa_gguf_type type, const void *v);
/* Arrays of plain values (type: UINT8..FLOAT64 except STRING/ARRAY), copied. */
SA_NODISCARD enum sa_status sa_gguf_writer_set_arr(struct sa_gguf_writer *w, const char *key,
                                                    enum sa_gguf_type type, const void *data, uint64_t n);
SA_NODISCARD enum sa_status sa_gguf_writer_set_arr_str(struct sa_gguf_writer *w, const char *key,
                                                        const struct sa_gguf_str *strs, uint64_t n);
/* Copies every key/value of `src` (except general.alignment) into the writer. */
SA_NODISCARD enum sa_status sa_gguf_writer_copy_kv(struct sa_gguf_writer *w, const struct sa_gguf *src);
/* Adds a tensor. `data` (already in `type`, n_bytes as sa_dtype_row_bytes(ne...)) must stay
 * valid until sa_gguf_writer_write returns. ne in GGML order (entries from n_dims on are
 * ignored). Names: 1 to 63 bytes (llama.cpp's limit), unique (BAD_ARGUMENT otherwise). */
SA_NODISCARD enum sa_status sa_gguf_writer_add_tensor(struct sa_gguf_writer *w, const char *name,
                                                       enum sa_dtype type, uint32_t n_dims,
                                                       const int64_t ne[4], const void *data);
/* Writes a GGUF v3 file (alignment 32, or general.alignment if set), atomically. */
SA_NODISCARD enum sa_status sa_gguf_writer_write(struct sa_gguf_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
