extension CUDAKernels {
    /// Training-mode batch norm fused with the LIF scan (the op `batchNormNeuronScan`; the CPU
    /// backend's `CPUBackend+BatchNormNeuronScan.swift` computes the same), on `x` laid out
    /// `[T·N, C, plane]` time-major: neuron `i` of a step (`[N, C, plane]` flattened, `n` of
    /// them) is element `t·n + i` at step `t`, in channel `(i / plane) % C`.
    ///
    /// - `snn_bn_partial_statistics` and `snn_bn_statistics`: each channel's batch mean and
    ///   biased variance, from parts of a few frames each spread over the whole GPU, then
    ///   combined per channel (sums in `double` in a fixed order: the results do not depend on
    ///   timing).
    /// - `snn_bn_neuron_forward`: `y = x·a_c + b_c (+ residual)` with `a = γ/√(σ²+ε)`,
    ///   `b = β − μa`, then the scan; writes only the spikes.
    /// - `snn_bn_neuron_backward`: recomputes `y` and the potentials (kept in the output buffer,
    ///   which each thread then overwrites with its gradient), runs the scan backwards and
    ///   writes `dL/dy` (and the residual's gradient, the same) with each neuron's sums over
    ///   time of `dL/dy` and `dL/dy · x̂`. It reads the residual as float32, or (`residualQuantum`
    ///   above 0) as the one-byte codes spikes are saved in, element `k` being `code · quantum`:
    ///   the values the forward pass added, without restoring them to float32 first.
    /// - `snn_bn_channel_sums`: those sums per channel: `dL/dβ` and `dL/dγ` (one block per
    ///   channel, fixed order).
    /// - `snn_bn_input_gradient`: batch norm's input gradient in place,
    ///   `γ/σ · (g − mean g − x̂ · mean g·x̂)`.
    /// - `snn_bn_neuron_backward_fused`: the backward pass's three kernels in one cooperative
    ///   launch, with grid-wide barriers between them (where the GPU runs cooperative launches).
    ///
    /// Reductions use ``reductions``' block sum: blocks of 256 threads.
    public static let batchNormNeuron = #"""
    // batch_norm_neuron.cu: batch norm fused with the LIF scan. Needs neuron_scan.cu's LIF steps,
    // reductions.cu's snn_block_sum and the 16-bit conversions (snn_round_to).

    // Each channel's statistics in two launches over the whole GPU. snn_bn_partial_statistics:
    // block b takes channel b / splits and its frames [s·span, (s + 1)·span) for s = b % splits
    // (one plane of the channel per frame), and writes their count's mean and sum of squared
    // deviations from it, both exact in double for float inputs, to partials[2b] and [2b + 1].
    // snn_bn_statistics then combines each channel's partials in order (Chan et al.:
    // M2 = Σ M2ₖ + nₖ(μₖ − μ)²), a thread per channel. The span is the host's choice, not the
    // GPU's, so the results do not depend on timing or on the GPU.
    extern "C" __global__ void snn_bn_partial_statistics(const float *__restrict__ x, double *__restrict__ partials, int frames,
                                                         int channels, long long plane, int span, int splits) {
        int c = blockIdx.x / splits, first = (blockIdx.x % splits) * span;
        int last = first + snn_part_frames(blockIdx.x % splits, span, frames);
        long long count = (long long)(last - first) * plane, f, p;
        double sum = 0.0;
        if (plane > 0) {
            for (snn_channel_first(first, plane, f, p); f < last; snn_channel_next(plane, f, p)) sum += x[(f * channels + c) * plane + p];
        }
        double mean = snn_block_sum(sum) / (double)count;
        double squares = 0.0;
        if (plane > 0) {
            for (snn_channel_first(first, plane, f, p); f < last; snn_channel_next(plane, f, p)) {
                double d = (double)x[(f * channels + c) * plane + p] - mean;
                squares += d * d;
            }
        }
        double total = snn_block_sum(squares);
        if (threadIdx.x == 0) {
            partials[2 * (long long)blockIdx.x] = mean;
            partials[2 * (long long)blockIdx.x + 1] = total;
        }
    }

    extern "C" __global__ void snn_bn_statistics(const double *__restrict__ partials, float *__restrict__ mean,
                                                 float *__restrict__ variance, int frames, int channels, long long plane,
                                                 int span, int splits) {
        int c = blockIdx.x * blockDim.x + threadIdx.x;
        if (c >= channels) return;
        const double *row = partials + 2 * (long long)c * splits;
        double weighted = 0.0;
        for (int s = 0; s < splits; s++) weighted += row[2 * s] * snn_part_frames(s, span, frames);
        double mu = weighted / frames;   // each part's mean weighted by its frames (planes alike)
        double m2 = 0.0;
        for (int s = 0; s < splits; s++) {
            double d = row[2 * s] - mu;
            m2 += row[2 * s + 1] + d * d * (double)snn_part_frames(s, span, frames) * plane;
        }
        mean[c] = (float)mu;
        variance[c] = (float)(m2 / ((double)frames * plane));
    }

    struct SnnChannelMap {
        float scale, shift, mean, invstd;
    };

    __device__ __forceinline__ SnnChannelMap snn_channel_map(const float *gamma, const float *beta, const float *mean,
                                                             const float *variance, float epsilon, int c) {
        SnnChannelMap m;
        m.invstd = 1.0f / sqrtf(variance[c] + epsilon);
        m.scale = gamma[c] * m.invstd;
        m.shift = beta[c] - mean[c] * m.scale;
        m.mean = mean[c];
        return m;
    }

    // Batch norm's input x[k] as the neuron reads it. `form` 0: float32; 1, 2: float32 read as
    // bfloat16 or half would hold it (the forward pass under --amp); 3, 4: bfloat16 or half
    // storage (the copy --amp keeps for the backward pass, which so recomputes the same spikes).
    __device__ __forceinline__ float snn_bn_load(const void *x, int form, long long k) {
        if (form >= 3) {
            unsigned short h = ((const unsigned short *)x)[k];
            return form == 3 ? __uint_as_float((unsigned int)h << 16) : snn_half_to_float(h);
        }
        return snn_round_to(((const float *)x)[k], form);
    }

    // The neuron's input at element k: batch norm's output (plus the residual: float32 where
    // residualQuantum is 0, else bytes, each code · residualQuantum, which is exact).
    __device__ __forceinline__ float snn_bn_input(const SnnChannelMap &m, const void *x, int form, const void *residual,
                                                  float residualQuantum, long long k) {
        float y = snn_bn_load(x, form, k) * m.scale + m.shift;
        if (!residual) return y;
        return y + (residualQuantum > 0.0f ? (float)((const unsigned char *)residual)[k] * residualQuantum
                                           : ((const float *)residual)[k]);
    }

    // Neuron i's forward pass, its input's form FORM a compile-time constant: the loop over time
    // holds no branch on it, so the compiler issues several steps' loads at once (one load in
    // flight a thread leaves most of a GPU's memory bandwidth unused). The backward pass's loops
    // already load three values a step; unrolled they needed 64 registers instead of 38.
    template <int FORM>
    __device__ __forceinline__ void snn_bn_neuron_forward_at(long long i, const void *__restrict__ x,
                                                             const float *__restrict__ residual, const SnnChannelMap &m,
                                                             float *__restrict__ spikes, long long n, int steps, float decay,
                                                             float threshold, int softReset, float vReset) {
        float v = 0.0f;
        for (int t = 0; t < steps; t++) {
            long long k = (long long)t * n + i;
            snn_lif_step(v, snn_bn_input(m, x, FORM, residual, 0.0f, k), decay, threshold, softReset, vReset, &spikes[k]);
        }
    }

    extern "C" __global__ void snn_bn_neuron_forward(const void *__restrict__ x, int form, const float *__restrict__ residual,
                                                     const float *__restrict__ gamma, const float *__restrict__ beta,
                                                     const float *__restrict__ mean, const float *__restrict__ variance,
                                                     float epsilon, float *__restrict__ spikes, long long n, int steps,
                                                     int channels, long long plane, float decay, float threshold,
                                                     int softReset, float vReset) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        SnnChannelMap m = snn_channel_map(gamma, beta, mean, variance, epsilon, (int)((i / plane) % channels));
        switch (form) {
        case 1: snn_bn_neuron_forward_at<1>(i, x, residual, m, spikes, n, steps, decay, threshold, softReset, vReset); break;
        case 2: snn_bn_neuron_forward_at<2>(i, x, residual, m, spikes, n, steps, decay, threshold, softReset, vReset); break;
        case 3: snn_bn_neuron_forward_at<3>(i, x, residual, m, spikes, n, steps, decay, threshold, softReset, vReset); break;
        case 4: snn_bn_neuron_forward_at<4>(i, x, residual, m, spikes, n, steps, decay, threshold, softReset, vReset); break;
        default: snn_bn_neuron_forward_at<0>(i, x, residual, m, spikes, n, steps, decay, threshold, softReset, vReset);
        }
    }

    // Neuron i's backward pass (snn_bn_neuron_backward's, for one thread). gradInput and the
    // sums are written here and read by later phases of the cooperative kernel: not restrict.
    __device__ __forceinline__ void snn_bn_neuron_backward_at(long long i, const float *__restrict__ gradSpikes,
                                                              const void *__restrict__ x, int form,
                                                              const void *__restrict__ residual, float residualQuantum,
                                                              const SnnChannelMap &m,
                                                              float *gradInput, float *__restrict__ gradResidual,
                                                              float *sumGrad, float *sumGradNormalized, long long n,
                                                              int steps, float decay, float threshold, int softReset,
                                                              float vReset, int surrogate, float parameter) {
        // The forward pass again, its potentials kept where the gradient will go.
        float v = 0.0f, spike;
        for (int t = 0; t < steps; t++) {
            long long k = (long long)t * n + i;
            gradInput[k] = snn_lif_step(v, snn_bn_input(m, x, form, residual, residualQuantum, k), decay, threshold, softReset,
                                        vReset, &spike);
        }
        float gradV = 0.0f, sumG = 0.0f, sumGX = 0.0f;
        for (int t = steps - 1; t >= 0; t--) {
            long long k = (long long)t * n + i;
            float gradH = snn_lif_backward_step(gradV, gradSpikes[k], gradInput[k], decay, threshold, softReset, vReset,
                                                surrogate, parameter);
            gradInput[k] = gradH;
            if (gradResidual) gradResidual[k] = gradH;
            sumG += gradH;
            sumGX += gradH * ((snn_bn_load(x, form, k) - m.mean) * m.invstd);
        }
        sumGrad[i] = sumG;
        sumGradNormalized[i] = sumGX;
    }

    // Channel c's dL/dβ and dL/dγ from the neurons' sums, by the whole block (fixed order).
    __device__ void snn_bn_channel_sum(int c, const float *sumGrad, const float *sumGradNormalized, float *gradBeta,
                                       float *gradGamma, int samples, int channels, long long plane) {
        double a = 0.0, b = 0.0;
        long long s, p;
        if (plane > 0) {
            for (snn_channel_first(0, plane, s, p); s < samples; snn_channel_next(plane, s, p)) {
                long long at = (s * channels + c) * plane + p;
                a += sumGrad[at];
                b += sumGradNormalized[at];
            }
        }
        double totalA = snn_block_sum(a);
        double totalB = snn_block_sum(b);
        if (threadIdx.x == 0) {
            gradBeta[c] = (float)totalA;
            gradGamma[c] = (float)totalB;
        }
    }

    // Batch norm's input gradient at element k, in place in grad.
    __device__ __forceinline__ void snn_bn_input_gradient_at(long long k, const void *__restrict__ x, int form, float *grad,
                                                             const float *__restrict__ gamma, const float *__restrict__ mean,
                                                             const float *__restrict__ variance, float epsilon,
                                                             const float *gradGamma, const float *gradBeta, float count,
                                                             int channels, long long plane) {
        int c = (int)((k / plane) % channels);
        float invstd = 1.0f / sqrtf(variance[c] + epsilon);
        float xhat = (snn_bn_load(x, form, k) - mean[c]) * invstd;
        grad[k] = gamma[c] * invstd * (grad[k] - gradBeta[c] / count - xhat * (gradGamma[c] / count));
    }

    extern "C" __global__ void snn_bn_neuron_backward(const float *__restrict__ gradSpikes, const void *__restrict__ x, int form,
                                                      const void *__restrict__ residual, float residualQuantum,
                                                      const float *__restrict__ gamma,
                                                      const float *__restrict__ beta, const float *__restrict__ mean,
                                                      const float *__restrict__ variance, float epsilon,
                                                      float *__restrict__ gradInput, float *__restrict__ gradResidual,
                                                      float *__restrict__ sumGrad, float *__restrict__ sumGradNormalized,
                                                      long long n, int steps, int channels, long long plane, float decay,
                                                      float threshold, int softReset, float vReset, int surrogate,
                                                      float parameter) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        SnnChannelMap m = snn_channel_map(gamma, beta, mean, variance, epsilon, (int)((i / plane) % channels));
        snn_bn_neuron_backward_at(i, gradSpikes, x, form, residual, residualQuantum, m, gradInput, gradResidual, sumGrad,
                                  sumGradNormalized, n, steps, decay, threshold, softReset, vReset, surrogate, parameter);
    }

    extern "C" __global__ void snn_bn_channel_sums(const float *__restrict__ sumGrad,
                                                   const float *__restrict__ sumGradNormalized,
                                                   float *__restrict__ gradBeta, float *__restrict__ gradGamma, int samples,
                                                   int channels, long long plane) {
        snn_bn_channel_sum(blockIdx.x, sumGrad, sumGradNormalized, gradBeta, gradGamma, samples, channels, plane);
    }

    extern "C" __global__ void snn_bn_input_gradient(const void *__restrict__ x, int form, float *__restrict__ grad,
                                                     const float *__restrict__ gamma, const float *__restrict__ mean,
                                                     const float *__restrict__ variance, float epsilon,
                                                     const float *__restrict__ gradGamma, const float *__restrict__ gradBeta,
                                                     float count, long long total, int channels, long long plane) {
        long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (k >= total) return;
        snn_bn_input_gradient_at(k, x, form, grad, gamma, mean, variance, epsilon, gradGamma, gradBeta, count, channels, plane);
    }

    // The three kernels above in one launch, separated by grid-wide barriers: launched with
    // cuLaunchCooperativeKernel over as many blocks of SNN_REDUCE_THREADS as the GPU holds at
    // once (or fewer), each thread taking every (blocks · threads)-th neuron, then channel, then
    // element. `arrived` is the barrier's word (snn_grid_sync). The buffers written in one phase
    // and read in the next (gradInput, the sums, gradBeta, gradGamma) are deliberately not
    // `__restrict__`: the read-only cache would not see the other blocks' stores.
    extern "C" __global__ void snn_bn_neuron_backward_fused(const float *__restrict__ gradSpikes, const void *__restrict__ x,
                                                            int form, const void *__restrict__ residual, float residualQuantum,
                                                            const float *__restrict__ gamma, const float *__restrict__ beta,
                                                            const float *__restrict__ mean, const float *__restrict__ variance,
                                                            float epsilon, float *gradInput, float *__restrict__ gradResidual,
                                                            float *sumGrad, float *sumGradNormalized, float *gradBeta,
                                                            float *gradGamma, unsigned *arrived, long long n, int steps,
                                                            int channels, long long plane, float decay, float threshold,
                                                            int softReset, float vReset, int surrogate, float parameter) {
        long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x, stride = (long long)gridDim.x * blockDim.x;
        for (long long i = first; i < n; i += stride) {
            SnnChannelMap m = snn_channel_map(gamma, beta, mean, variance, epsilon, (int)((i / plane) % channels));
            snn_bn_neuron_backward_at(i, gradSpikes, x, form, residual, residualQuantum, m, gradInput, gradResidual, sumGrad,
                                      sumGradNormalized, n, steps, decay, threshold, softReset, vReset, surrogate, parameter);
        }
        snn_grid_sync(arrived);
        int samples = (int)(n / ((long long)channels * plane));
        for (int c = blockIdx.x; c < channels; c += gridDim.x)
            snn_bn_channel_sum(c, sumGrad, sumGradNormalized, gradBeta, gradGamma, samples, channels, plane);
        snn_grid_sync(arrived);
        long long total = n * steps;
        float count = (float)(total / channels);
        for (long long k = first; k < total; k += stride)
            snn_bn_input_gradient_at(k, x, form, gradInput, gamma, mean, variance, epsilon, gradGamma, gradBeta, count, channels,
                                     plane);
    }
    """#
}
