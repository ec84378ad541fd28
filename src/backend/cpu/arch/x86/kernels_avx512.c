/* kernels_avx512.c: the x86 dot kernels (kernels_x86_body.h) with AVX512-VNNI (vpdpbusd on
 * 256-bit vectors through AVX512VL) for the 8-bit products, selected at run time when the
 * CPU has avx512f/bw/vl/vnni (matmul.c). Only this file is compiled for these instructions. */
#if defined(__x86_64__)
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")
#define SA_X86_VNNI 1
#define SA_X86_SUFFIX avx512
#define SA_X86_NAME "avx512vnni"
#include "kernels_x86_body.h"
#else
#include "backend/cpu/kernels_impl.h"
void sa_cpu_kernels_avx512(struct sa_cpu_kernels *k) { (void)k; }
#endif
