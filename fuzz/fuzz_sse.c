/* fuzz_sse.c: libFuzzer target for the server-sent events parser (src/upstream/sse.c): any
 * bytes, fed whole and in pieces cut where the input's first byte says, give the same events
 * (or the same failure); a failed parser stays failed. */
#include "upstream/upstream_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct digest {
    uint64_t h;
    size_t n;
};

static enum sa_status on_ev(void *user, const struct sa_sse_event *ev) {
    struct digest *d = user;
    const struct {
        const char *p;
        size_t n;
    } parts[3] = {{ev->type, ev->type_len}, {ev->id, ev->id_len}, {ev->data, ev->data_len}};
    for (int k = 0; k < 3; k++) {
        if (parts[k].p[parts[k].n] != 0) abort(); /* NUL-terminated */
        for (size_t i = 0; i < parts[k].n; i++) d->h = (d->h ^ (uint8_t)parts[k].p[i]) * 1099511628211ull;
        d->h = (d->h ^ 0x100u) * 1099511628211ull;
    }
    d->n++;
    return SA_STATUS_OK;
}

static enum sa_status run(const uint8_t *in, size_t n, unsigned step, struct digest *d) {
    struct sa_sse s;
    sa_sse_init(&s, 64);
    memset(d, 0, sizeof *d);
    enum sa_status st = SA_STATUS_OK;
    size_t pos = 0;
    while (pos < n && !st) {
        size_t k = step ? step : n;
        if (k > n - pos) k = n - pos;
        st = sa_sse_feed(&s, (const char *)in + pos, k, on_ev, d);
        pos += k;
    }
    if (st && sa_sse_feed(&s, "x", 1, on_ev, d) != SA_STATUS_BAD_ARGUMENT) abort();
    sa_sse_free(&s);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    unsigned step = 1 + data[0] % 13;
    struct digest a, b;
    enum sa_status sa = run(data + 1, size - 1, 0, &a);
    enum sa_status sb = run(data + 1, size - 1, step, &b);
    if (sa != sb) abort();
    if (!sa && (a.h != b.h || a.n != b.n)) abort();
    return 0;
}
