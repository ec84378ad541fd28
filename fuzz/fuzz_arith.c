/* fuzz_arith.c: libFuzzer target for the arithmetic rules of the pipeline (src/pipeline/
 * arith_check.c): the equation finder, the edit check and the calculator on any bytes (model
 * text is untrusted). Checks: every equation's spans lie in the text (rs <= re within
 * [start, end] for a chain's link); the calculator returns a NUL-terminated new text exactly when
 * it says it rewrote results, never the same text, and a second run on its output is well
 * formed too. The input is split at its first NUL into y1 and y2 for the edit check. */
#include "pipeline/pipeline_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s) {
    const size_t n = strlen(s);
    struct sa_arith_eq eq[64];
    int32_t ne = sa_arith_equations(s, n, eq, 64);
    if (ne < 0) abort();
    if (ne > 64) ne = 64;
    for (int32_t i = 0; i < ne; i++)
        if (eq[i].start > eq[i].end || eq[i].end > n || eq[i].rs > eq[i].re || eq[i].re > n) abort();
    char *out = NULL;
    int32_t fixed = -1;
    if (sa_arith_repair(s, &out, &fixed)) return; /* out of memory */
    if ((out != NULL) != (fixed > 0) || fixed < 0) abort();
    if (out) {
        if (!strcmp(out, s)) abort();
        char *again = NULL;
        int32_t k = -1;
        if (!sa_arith_repair(out, &again, &k) && ((again != NULL) != (k > 0))) abort();
        free(again);
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *y1 = buf, *y2 = buf + strlen(buf) + (strlen(buf) < size);
    check_text(y1);
    check_text(y2);
    (void)sa_arith_edit_adds_error(y1, y2);
    free(buf);
    return 0;
}
