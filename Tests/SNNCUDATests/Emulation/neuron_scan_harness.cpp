// The neuron-scan kernels (neuron_scan.cu, written out by the test from CUDAKernels) on the
// host, behind C entry points the test calls with dlopen.
#include "cuda_emulation.h"
#include "neuron_scan.cu"

extern "C" void emulate_neuron_scan_forward(unsigned grid, unsigned block, const float *x, float *spikes, float *potentials,
                                            long long n, int steps, float decay, float threshold, int softReset,
                                            float vReset) {
    snn_emulate_launch(dim3(grid), dim3(block), snn_neuron_scan_forward, x, spikes, potentials, n, steps, decay, threshold,
                       softReset, vReset);
}

extern "C" void emulate_neuron_scan_backward(unsigned grid, unsigned block, const float *gradSpikes, const float *potentials,
                                             float *gradInput, long long n, int steps, float decay, float threshold,
                                             int softReset, float vReset, int surrogate, float parameter) {
    snn_emulate_launch(dim3(grid), dim3(block), snn_neuron_scan_backward, gradSpikes, potentials, gradInput, n, steps, decay,
                       threshold, softReset, vReset, surrogate, parameter);
}
