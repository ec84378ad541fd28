/* fuzz_server_request.c: libFuzzer target for the server's request parser (src/server/request.c):
 * the input is a /v1/chat/completions body (first byte odd) or a /v1/completions body; it is
 * parsed with the server's limits, and an accepted request's fields are checked and freed, a
 * refused one's error rendered as JSON (OpenAI's shape). Build: make fuzz; run:
 * build-fuzz/fuzz_server_request [corpus]. */
#include "server/server_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile size_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const enum srv_kind kind = (data[0] & 1) ? SRV_CHAT : SRV_COMPLETION;
    struct srv_req r;
    struct srv_err e;
    if (srv_req_parse((const char *)data + 1, size - 1, kind, "stream-aligner", 16, &r, &e)) {
        if (!r.question || !r.model || r.n_stop < 0 || r.n_stop > SRV_MAX_STOP) abort();
        sink += strlen(r.question) + strlen(r.model) + (r.system ? strlen(r.system) : 0);
        for (int i = 0; i < r.n_stop; i++) sink += strlen(r.stop[i]);
        srv_req_clear(&r);
    } else {
        if (e.http < 400 || e.http > 599 || !e.message[0]) abort();
        char *j = srv_err_json(&e);
        if (j) sink += strlen(j);
        free(j);
    }
    return 0;
}
