/* safetensors_impl.h: helpers shared by the safetensors reader, writer and converter:
 * the mapping between safetensors dtype names and sa_dtype. Not part of the public API. */
#ifndef SA_SAFETENSORS_IMPL_H
#define SA_SAFETENSORS_IMPL_H

#include "sa/dtype.h"

#include <stdbool.h>
#include <stddef.h>

/* The safetensors name of a type ("F32", "BF16", ...), or NULL if safetensors cannot
 * hold it (quantized types). */
const char *sa_st_dtype_name(enum sa_dtype t);
/* Bytes per element of a plain type (F32..I64), 0 for block-quantized or unknown ones. */
size_t sa_st_elem_size(enum sa_dtype t);

#endif
