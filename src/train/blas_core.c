/* blas_core.c: the loaded OpenBLAS's kernels, and whether they are a generic fallback on a CPU
 * that has better ones (include/sa/train.h: sa_train_blas_core, sa_train_blas_coretype_advice). */
#include "sa/train.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* OpenBLAS's names for cores older than AVX2: what a DYNAMIC_ARCH build falls back to when it
 * does not recognize the CPU's model number. */
static const char *const generic_cores[] = {"Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Core2",
                                            "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge"};

const char *sa_train_blas_core(void) {
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

const char *sa_train_blas_coretype_advice(void) {
    if (getenv("OPENBLAS_CORETYPE")) return NULL; /* chosen by the user (or by a previous start) */
#if defined(__x86_64__) || defined(__i386__)
    const char *core = openblas_get_corename();
    if (!core) return NULL;
    bool generic = false;
    for (size_t i = 0; i < sizeof generic_cores / sizeof generic_cores[0]; i++)
        if (!strcasecmp(core, generic_cores[i])) generic = true;
    if (!generic) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}
