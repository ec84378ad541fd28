/* fuzz_hf_config.c: libFuzzer target for sa_model_config_from_hf_json: any text either fails
 * with a message or yields a configuration that passes validation. */
#include "sa/model_config.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct sa_model_config c;
    if (sa_model_config_from_hf_json((const char *)data, size, &c) != SA_STATUS_OK) {
        if (!sa_last_error()[0]) abort();
        return 0;
    }
    if (sa_model_config_validate(&c) != SA_STATUS_OK) abort();
    return 0;
}
