/* model_config_impl.h: library-internal helpers around struct sa_model_config. */
#ifndef SA_MODEL_CONFIG_IMPL_H
#define SA_MODEL_CONFIG_IMPL_H

#include "sa/model_config.h"

/* Llama 3 RoPE frequency factors (head_dim / 2 values), as llama.cpp stores them in the
 * rope_freqs.weight tensor. ref: Meta's apply_scaling in llama3 and llama.cpp's
 * convert_hf_to_gguf.py LlamaModel.generate_extra_tensors. */
void sa_llama3_rope_factors(const struct sa_model_config *c, float *out);

#endif
