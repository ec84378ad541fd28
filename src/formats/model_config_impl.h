/* model_config_impl.h: library-internal helpers around struct sa_model_config. The
 * per-architecture table and the rules derived from a config (sa_llama3_rope_factors among
 * them) are in formats/arch_impl.h. */
#ifndef SA_MODEL_CONFIG_IMPL_H
#define SA_MODEL_CONFIG_IMPL_H

#include "formats/arch_impl.h"
#include "sa/model_config.h"

#endif
