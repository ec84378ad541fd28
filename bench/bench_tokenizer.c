/* bench_tokenizer.c: encode throughput (MB/s, one thread) on English prose: the GSM8K
 * train questions and answers, with a GGUF model's tokenizer (default smollm2).
 * Build: cc -O2 -Iinclude -Isrc -I/usr/include/cjson bench/bench_tokenizer.c build/libsalign.a \
 *           -lcurl -lpcre2-8 -lcjson -lutf8proc -lopenblas -lz -lm -lpthread -o build/bench_tokenizer
 * Run:   build/bench_tokenizer [MODEL.gguf] [gsm8k/train.jsonl] */
#define _GNU_SOURCE
#include "sa/gguf.h"
#include "sa/tokenizer.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    char def_model[1024];
    snprintf(def_model, sizeof def_model, "%s/.cache/salign/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
             getenv("HOME") ? getenv("HOME") : ".");
    const char *model = argc > 1 ? argv[1] : def_model;
    const char *data = argc > 2 ? argv[2] : "../shared/data/gsm8k/train.jsonl";
    FILE *f = fopen(data, "rb");
    if (!f) {
        perror(data);
        return 1;
    }
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap), *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)ll);
        const char *keys[] = {"question", "answer"};
        for (int k = 0; k < 2 && j; k++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
            if (!cJSON_IsString(v)) continue;
            size_t l = strlen(v->valuestring);
            while (n + l + 2 > cap) text = realloc(text, cap *= 2);
            memcpy(text + n, v->valuestring, l);
            n += l;
            text[n++] = '\n';
        }
        cJSON_Delete(j);
    }
    fclose(f);
    free(line);

    struct sa_gguf *g = NULL;
    struct sa_tokenizer *t = NULL;
    if (sa_gguf_open(model, &g) || sa_tokenizer_load_gguf(g, &t)) {
        fprintf(stderr, "%s: %s\n", model, sa_last_error());
        return 1;
    }
    /* encode in 4 KiB documents (like prompts), then as one block */
    double best = 0, best_doc = 0;
    size_t n_tok = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        int32_t *ids;
        size_t m;
        if (sa_tokenize(t, text, n, (struct sa_tokenize_opts){false, false}, &ids, &m)) return 1;
        double dt = now() - t0;
        n_tok = m;
        free(ids);
        if (n / dt / 1e6 > best) best = n / dt / 1e6;
        t0 = now();
        for (size_t off = 0; off < n; off += 4096) {
            size_t l = n - off < 4096 ? n - off : 4096;
            if (sa_tokenize(t, text + off, l, (struct sa_tokenize_opts){false, false}, &ids, &m)) return 1;
            free(ids);
        }
        dt = now() - t0;
        if (n / dt / 1e6 > best_doc) best_doc = n / dt / 1e6;
    }
    printf("tokenizer %s: %.1f MB of English prose, %zu tokens (%.2f bytes/token)\n", sa_tokenizer_pre(t), n / 1e6,
           n_tok, (double)n / n_tok);
    printf("encode: %.1f MB/s as one text, %.1f MB/s in 4 KiB documents (best of 3, one thread)\n", best, best_doc);
    sa_tokenizer_free(t);
    sa_gguf_free(g);
    free(text);
    return 0;
}
