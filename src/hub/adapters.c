/* adapters.c: shipped LoRA adapters (sa/hub.h): models/NAME/manifest.json names a base model
 * and a GGUF LoRA adapter file with its sha256; the resolver checks the manifest and the file
 * before anything is loaded. Layout: models/README.md. */
#define _GNU_SOURCE
#include "core/core_impl.h"
#include "sa/hub.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool plain_name(const char *s) {
    if (!s || !*s || *s == '.' || strlen(s) > 128) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-') return false;
    return true;
}

void sa_hub_adapter_free(struct sa_hub_adapter *a) {
    if (!a) return;
    free(a->name);
    free(a->base);
    free(a->adapter);
    free(a->sha256);
    memset(a, 0, sizeof *a);
}

static const char *str_field(const cJSON *root, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

enum sa_status sa_hub_adapter_resolve(const char *name, const char *models_dir, struct sa_hub_adapter *out) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_hub_adapter_resolve: NULL out");
    memset(out, 0, sizeof *out);
    if (!models_dir) models_dir = getenv("SALIGN_ADAPTERS");
    if (!models_dir || !*models_dir) return sa_error(SA_STATUS_NOT_FOUND, "no models directory ($SALIGN_ADAPTERS)");
    if (!plain_name(name)) return sa_error(SA_STATUS_NOT_FOUND, "'%s' is not a shipped adapter name", name ? name : "");
    char dir[4096], path[4400];
    snprintf(dir, sizeof dir, "%s/%s", models_dir, name);
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (!sa_file_exists(path)) return sa_error(SA_STATUS_NOT_FOUND, "no shipped adapter '%s' (%s)", name, path);
    char *txt = NULL;
    size_t len = 0;
    enum sa_status s = sa_read_file(path, 1 << 20, &txt, &len);
    if (s) return s;
    cJSON *root = cJSON_ParseWithLength(txt, len);
    free(txt);
    const char *base = root ? str_field(root, "base") : NULL, *file = root ? str_field(root, "adapter") : NULL;
    const char *sha = root ? str_field(root, "sha256") : NULL;
    const cJSON *size = root ? cJSON_GetObjectItemCaseSensitive(root, "size") : NULL;
    if (!cJSON_IsObject(root)) s = sa_error(SA_STATUS_BAD_JSON, "%s: not a JSON object", path);
    else if (!base || !file || !sha)
        s = sa_error(SA_STATUS_BAD_JSON, "%s: \"base\", \"adapter\" and \"sha256\" must be non-empty strings", path);
    else if (!plain_name(file))
        s = sa_error(SA_STATUS_BAD_JSON, "%s: \"adapter\" must be a file name in %s, not '%s'", path, dir, file);
    else if (strlen(sha) != 64 || strspn(sha, "0123456789abcdefABCDEF") != 64)
        s = sa_error(SA_STATUS_BAD_JSON, "%s: \"sha256\" must be 64 hex digits", path);
    else if (size && !cJSON_IsNumber(size))
        s = sa_error(SA_STATUS_BAD_JSON, "%s: \"size\" must be a number of bytes", path);
    char apath[4400];
    if (!s) {
        snprintf(apath, sizeof apath, "%s/%s", dir, file);
        struct stat st;
        char hex[65];
        if (stat(apath, &st) != 0 || !S_ISREG(st.st_mode))
            s = sa_error(SA_STATUS_BAD_FILE, "shipped adapter '%s': %s is missing (the manifest names it)", name, apath);
        else if (size && (double)st.st_size != size->valuedouble)
            s = sa_error(SA_STATUS_CHECKSUM, "shipped adapter '%s': %s has %lld bytes, the manifest says %.0f", name,
                         apath, (long long)st.st_size, size->valuedouble);
        else if (!(s = sa_sha256_file(apath, hex)) && strcasecmp(hex, sha))
            s = sa_error(SA_STATUS_CHECKSUM, "shipped adapter '%s': %s has sha256 %s, the manifest says %s (a changed "
                                             "or partial file: restore it with git)", name, apath, hex, sha);
    }
    if (!s) {
        /* a base that is a path is relative to the folder (a known name is kept as it is) */
        char bpath[4400];
        snprintf(bpath, sizeof bpath, "%s/%s", dir, base);
        const bool rel = base[0] != '/' && sa_file_exists(bpath);
        out->name = strdup(name);
        out->base = strdup(rel ? bpath : base);
        out->adapter = strdup(apath);
        out->sha256 = strdup(sha);
        for (char *c = out->sha256; c && *c; c++) *c = (char)tolower((unsigned char)*c);
        if (!out->name || !out->base || !out->adapter || !out->sha256) {
            sa_hub_adapter_free(out);
            s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        }
    }
    cJSON_Delete(root);
    return s;
}
