/* safetensors.h: reader (mmap) and writer of Hugging Face safetensors checkpoints,
 * single-file and sharded (model.safetensors.index.json). Spec: the safetensors README
 * (8-byte little-endian header size, JSON header, packed data). The reader validates the
 * header (size bounds, JSON, dtypes, shapes, offsets inside the data, no overlap) on open. */
#ifndef SA_SAFETENSORS_H
#define SA_SAFETENSORS_H

#include "sa/dtype.h"
#include "sa/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SA_ST_MAX_DIMS 8

struct sa_st_tensor {
    const char *name;                /* NUL-terminated, owned by the handle */
    enum sa_dtype type;              /* F32, F16, BF16, F64, I8, I16, I32, I64 */
    uint32_t n_dims;                 /* 0 (scalar) .. SA_ST_MAX_DIMS */
    int64_t shape[SA_ST_MAX_DIMS];   /* row-major as in PyTorch: shape[0] is the slowest */
    uint64_t n_bytes;
    const void *data;                /* into the mapping; valid while the handle lives */
};

struct sa_safetensors; /* opaque: one file or all the shards of a checkpoint */

/* `path`: a .safetensors file, a model.safetensors.index.json, or a directory holding
 * model.safetensors or model.safetensors.index.json. Tensor names are unique across shards. */
SA_NODISCARD enum sa_status sa_safetensors_open(const char *path, struct sa_safetensors **out);
/* One file's bytes, caller-owned, must outlive the handle (tests, fuzzers). */
SA_NODISCARD enum sa_status sa_safetensors_open_memory(const void *data, size_t size, struct sa_safetensors **out);
void sa_safetensors_free(struct sa_safetensors *st);

int64_t sa_safetensors_n_tensors(const struct sa_safetensors *st);
const struct sa_st_tensor *sa_safetensors_tensor(const struct sa_safetensors *st, int64_t i);
const struct sa_st_tensor *sa_safetensors_find(const struct sa_safetensors *st, const char *name);
/* The "__metadata__" string map of the (first) file: value for key, or NULL. */
const char *sa_safetensors_metadata(const struct sa_safetensors *st, const char *key);

/* ---- writer ---- */
struct sa_st_writer;
SA_NODISCARD enum sa_status sa_st_writer_init(struct sa_st_writer **out);
void sa_st_writer_free(struct sa_st_writer *w);
SA_NODISCARD enum sa_status sa_st_writer_set_metadata(struct sa_st_writer *w, const char *key, const char *value);
/* `data` (packed, row-major, in `type`) must stay valid until the write returns. */
SA_NODISCARD enum sa_status sa_st_writer_add(struct sa_st_writer *w, const char *name, enum sa_dtype type,
                                              uint32_t n_dims, const int64_t *shape, const void *data);
/* Writes `dir`/model.safetensors, or, when the total exceeds max_shard_bytes (0: never
 * shard), model-0000i-of-0000n.safetensors plus model.safetensors.index.json. */
SA_NODISCARD enum sa_status sa_st_writer_write_dir(struct sa_st_writer *w, const char *dir, uint64_t max_shard_bytes);
/* Writes a single file at `path`. */
SA_NODISCARD enum sa_status sa_st_writer_write_file(struct sa_st_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
