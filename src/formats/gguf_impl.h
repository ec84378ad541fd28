/* gguf_impl.h: library-internal access to a GGUF reader's raw key/value bytes, shared by
 * the reader (gguf.c) and the writer (gguf_writer.c, for sa_gguf_writer_copy_kv). */
#ifndef SA_GGUF_IMPL_H
#define SA_GGUF_IMPL_H

#include "sa/gguf.h"

/* The serialized value of key/value i as it follows the u32 value type in the file
 * (for an array: element type, count, elements). False if i is out of range. */
bool sa_gguf_kv_raw(const struct sa_gguf *g, int64_t i, const uint8_t **raw, uint64_t *size);

/* Bytes of one scalar of a metadata value type; 0 for STRING, ARRAY and unknown types. */
uint64_t sa_gguf_type_size(uint32_t type);
/* Static name of a metadata value type ("uint32", ...), "?" if unknown. */
const char *sa_gguf_type_name(uint32_t type);

#endif
