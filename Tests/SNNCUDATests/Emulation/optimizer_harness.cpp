// The fused optimiser kernel (optimizer.cu, written out by the test from CUDAKernels) on the host.
#include "cuda_emulation.h"
#include "optimizer.cu"

extern "C" void emulate_optimizer_step(unsigned grid, unsigned block, float *p, const float *g, float *state1, float *state2,
                                       long long n, int kind, float lr, float weightDecay, float beta1, float beta2,
                                       float mix1, float mix2, float epsilon, float momentum, float c1, float sqrtC2) {
    snn_emulate_launch(dim3(grid), dim3(block), snn_optimizer_step, p, g, state1, state2, n, kind, lr, weightDecay, beta1, beta2,
                       mix1, mix2, epsilon, momentum, c1, sqrtC2);
}
