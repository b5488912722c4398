// The fused batch norm + LIF kernels (batch_norm_neuron.cu, written out by the test from
// CUDAKernels with neuron_scan.cu before it) on the host, behind C entry points.
#include "cuda_emulation.h"
#include "batch_norm_neuron.cu"

#include <cmath>
#include <vector>

// Both launches of the statistics, the frames in parts of `span` (the host's choice).
extern "C" void emulate_bn_statistics(int channels, const float *x, float *mean, float *variance, int frames, long long plane,
                                      int span) {
    int splits = (frames + span - 1) / span;
    std::vector<double> partials(2 * (std::size_t)channels * splits, std::nan(""));
    snn_emulate_launch(dim3(channels * splits), dim3(SNN_REDUCE_THREADS), snn_bn_partial_statistics, x, partials.data(), frames,
                       channels, plane, span, splits);
    snn_emulate_launch(dim3((channels + 127) / 128), dim3(128), snn_bn_statistics, (const double *)partials.data(), mean, variance,
                       frames, channels, plane, span, splits);
}

extern "C" void emulate_bn_neuron_forward(unsigned grid, unsigned block, const void *x, int form, const float *residual,
                                          const float *gamma, const float *beta, const float *mean, const float *variance,
                                          float epsilon, float *spikes, long long n, int steps, int channels, long long plane,
                                          float decay, float threshold, int softReset, float vReset) {
    snn_emulate_launch(dim3(grid), dim3(block), snn_bn_neuron_forward, x, form, residual, gamma, beta, mean, variance, epsilon,
                       spikes, n, steps, channels, plane, decay, threshold, softReset, vReset);
}

extern "C" void emulate_bn_neuron_backward(unsigned grid, unsigned block, const float *gradSpikes, const void *x, int form,
                                           const void *residual, float residualQuantum, const float *gamma, const float *beta,
                                           const float *mean,
                                           const float *variance, float epsilon, float *gradInput, float *gradResidual,
                                           float *sumGrad, float *sumGradNormalized, long long n, int steps, int channels,
                                           long long plane, float decay, float threshold, int softReset, float vReset,
                                           int surrogate, float parameter) {
    snn_emulate_launch(dim3(grid), dim3(block), snn_bn_neuron_backward, gradSpikes, x, form, residual, residualQuantum, gamma, beta,
                       mean, variance, epsilon, gradInput, gradResidual, sumGrad, sumGradNormalized, n, steps, channels, plane, decay,
                       threshold, softReset, vReset, surrogate, parameter);
}

extern "C" void emulate_bn_channel_sums(int channels, const float *sumGrad, const float *sumGradNormalized, float *gradBeta,
                                        float *gradGamma, int samples, long long plane) {
    snn_emulate_launch(dim3(channels), dim3(SNN_REDUCE_THREADS), snn_bn_channel_sums, sumGrad, sumGradNormalized, gradBeta,
                       gradGamma, samples, channels, plane);
}

extern "C" void emulate_bn_input_gradient(unsigned grid, unsigned block, const void *x, int form, float *grad, const float *gamma,
                                          const float *mean, const float *variance, float epsilon, const float *gradGamma,
                                          const float *gradBeta, float count, long long total, int channels, long long plane) {
    snn_emulate_launch(dim3(grid), dim3(block), snn_bn_input_gradient, x, form, grad, gamma, mean, variance, epsilon, gradGamma,
                       gradBeta, count, total, channels, plane);
}

extern "C" void emulate_bn_neuron_backward_fused(unsigned grid, const float *gradSpikes, const void *x, int form,
                                                 const void *residual, float residualQuantum, const float *gamma, const float *beta,
                                                 const float *mean,
                                                 const float *variance, float epsilon, float *gradInput, float *gradResidual,
                                                 float *sumGrad, float *sumGradNormalized, float *gradBeta, float *gradGamma,
                                                 unsigned *arrived, long long n, int steps, int channels, long long plane,
                                                 float decay, float threshold, int softReset, float vReset, int surrogate,
                                                 float parameter) {
    snn_emulate_launch_cooperative(dim3(grid), dim3(SNN_REDUCE_THREADS), snn_bn_neuron_backward_fused, gradSpikes, x, form,
                                   residual, residualQuantum, gamma, beta, mean, variance, epsilon, gradInput, gradResidual, sumGrad,
                                   sumGradNormalized, gradBeta, gradGamma, arrived, n, steps, channels, plane, decay, threshold,
                                   softReset, vReset, surrogate, parameter);
}
