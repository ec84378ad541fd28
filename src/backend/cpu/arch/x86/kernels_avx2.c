/* kernels_avx2.c: the x86 dot kernels (kernels_x86_body.h) for AVX2 + FMA + F16C, selected
 * at run time when the CPU has them (matmul.c). The build stays generic (no -march): only
 * the functions of this file are compiled for these instructions. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c")
#define SA_X86_VNNI 0
#define SA_X86_SUFFIX avx2
#define SA_X86_NAME "avx2"
#include "kernels_x86_body.h"
#else
#include "backend/cpu/kernels_impl.h"
void sa_cpu_kernels_avx2(struct sa_cpu_kernels *k) { (void)k; }
#endif
