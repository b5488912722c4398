// The TRT penalty kernels (trt_regularizer.cu, written out by the test from CUDAKernels) on the host.
#include "cuda_emulation.h"
#include "trt_regularizer.cu"

extern "C" void emulate_trt_regularizer(unsigned grid, const float *w, float *grad, double *partials, long long n,
                                        const float *coefficients, int steps, float lambda, float epsilon, float *value) {
    snn_emulate_launch(dim3(grid), dim3(SNN_REDUCE_THREADS), snn_trt_regularizer, w, grad, partials, n, coefficients, steps,
                       lambda, epsilon);
    snn_emulate_launch(dim3(1), dim3(SNN_REDUCE_THREADS), snn_sum_partials, (const double *)partials, value, (int)grid);
}
