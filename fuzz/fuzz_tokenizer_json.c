/* fuzz_tokenizer_json.c: libFuzzer target: load a tokenizer.json from memory, then encode
 * and decode a short text. Input: JSON, a NUL byte, then the text (or no text).
 * Run: make fuzz && build-fuzz/fuzz_tokenizer_json -max_total_time=30 fuzz/corpus_tokenizer_json */
#include "sa/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "hello world 123 <|end|>";
    size_t text_len = nul ? size - json_len - 1 : strlen(text);
    if (text_len > 256) text_len = 256;
    struct sa_tokenizer *t = NULL;
    if (sa_tokenizer_load_hf_memory((const char *)data, json_len, NULL, 0, &t)) return 0;
    for (int ps = 0; ps < 2; ps++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (sa_tokenize(t, text, text_len, (struct sa_tokenize_opts){true, ps}, &ids, &n) == SA_STATUS_OK) {
            char *s = NULL;
            size_t l = 0;
            if (sa_detokenize(t, ids, n, (struct sa_detokenize_opts){ps, ps}, &s, &l) == SA_STATUS_OK) free(s);
            free(ids);
        }
    }
    sa_tokenizer_free(t);
    return 0;
}
