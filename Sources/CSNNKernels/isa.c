// Which instruction-set variant of each kernel runs: the best the CPU has, capped by
// `SNN_MAX_CPU_ISA` (read once), so that the AVX2 and base variants can be tested and timed on
// an AVX-512 host.

#include "snn_kernels.h"

#include <stdlib.h>
#include <string.h>

static int kernel_isa = -1;

static int detect(void) {
    int best = SNN_ISA_BASE;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = SNN_ISA_AVX2;
    if (best == SNN_ISA_AVX2 && __builtin_cpu_supports("avx512f")) best = SNN_ISA_AVX512;
#endif
    const char *cap = getenv("SNN_MAX_CPU_ISA");
    if (cap != NULL) {
        int limit = best;
        if (strcmp(cap, "base") == 0) limit = SNN_ISA_BASE;
        else if (strcmp(cap, "avx2") == 0) limit = SNN_ISA_AVX2;
        else if (strcmp(cap, "avx512") == 0) limit = SNN_ISA_AVX512;
        if (limit < best) best = limit;
    }
    return best;
}

int snn_kernel_isa(void) {
    int isa = __atomic_load_n(&kernel_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = detect();
        __atomic_store_n(&kernel_isa, isa, __ATOMIC_RELAXED);
    }
    return isa;
}
