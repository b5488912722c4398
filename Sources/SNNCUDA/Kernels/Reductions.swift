extension CUDAKernels {
    /// Helpers for kernels that reduce: a block-wide sum in a fixed order, so that results do not
    /// depend on timing (no atomics), and the sum of per-block partials by one block. Also the
    /// grid-wide barrier of kernels launched cooperatively (`snn_grid_sync`), which needs
    /// ``prelude``.
    public static let reductions = #"""
    // reductions.cu: deterministic block sums.

    #define SNN_REDUCE_THREADS 256

    // The block's sum of each thread's `value`, in a fixed order (a tree over shared memory);
    // every thread of the block must call it. Returns the sum in thread 0.
    __device__ double snn_block_sum(double value) {
        SNN_SHARED(double, partial, [SNN_REDUCE_THREADS]);
        partial[threadIdx.x] = value;
        __syncthreads();
        for (unsigned stride = SNN_REDUCE_THREADS / 2; stride > 0; stride /= 2) {
            if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
            __syncthreads();
        }
        double total = partial[0];
        __syncthreads();
        return total;
    }

    // How many of `frames` frames part s of a channel holds, the parts being `span` frames each
    // but the last.
    __device__ __forceinline__ int snn_part_frames(int s, int span, int frames) {
        return (s + 1) * span < frames ? span : frames - s * span;
    }

    // A block's walk over one channel of a [frames, channels, plane] tensor: thread threadIdx.x
    // takes every SNN_REDUCE_THREADS-th element of the channel from frame `first` on, as frame f
    // and position p (its element is (f·channels + c)·plane + p). snn_channel_next steps to the
    // thread's next element without the divisions a flat index would cost. plane > 0.
    __device__ __forceinline__ void snn_channel_first(int first, long long plane, long long &f, long long &p) {
        f = first + (long long)threadIdx.x / plane;
        p = (long long)threadIdx.x % plane;
    }
    __device__ __forceinline__ void snn_channel_next(long long plane, long long &f, long long &p) {
        for (p += SNN_REDUCE_THREADS; p >= plane; p -= plane) f++;
    }

    // The block's maximum of each thread's `value` (NaN wins), in a fixed tree; every thread of
    // the block must call it, and every thread gets the result.
    __device__ float snn_block_max(float value) {
        SNN_SHARED(float, best, [SNN_REDUCE_THREADS]);
        best[threadIdx.x] = value;
        __syncthreads();
        for (unsigned stride = SNN_REDUCE_THREADS / 2; stride > 0; stride /= 2) {
            if (threadIdx.x < stride) {
                float a = best[threadIdx.x], b = best[threadIdx.x + stride];
                best[threadIdx.x] = a != a ? a : (b != b || b > a ? b : a);
            }
            __syncthreads();
        }
        float result = best[0];
        __syncthreads();
        return result;
    }

    // Every thread of the grid waits here until all have arrived, and then sees the global
    // memory stores made before the barrier by any thread. Only for kernels launched with
    // cuLaunchCooperativeKernel, whose blocks are all resident at once; every thread must call it.
    //
    // `arrived` is a word of device memory, zero when first used, that only such barriers use
    // (one launch at a time). Block 0 adds 2^31 − (blocks − 1) to it and every other block adds
    // 1: 2^31 in all, whatever the order, so the low 31 bits are zero again after each barrier
    // and the top bit flips exactly when the last block arrives. The fences publish this
    // block's stores before its arrival, and (acquiring) make the others' visible after.
    // Data written before the barrier and read after it must not be read through the read-only
    // cache: no `const __restrict__` on those pointers.
    __device__ void snn_grid_sync(unsigned *arrived) {
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
            unsigned add = blockIdx.x + blockIdx.y + blockIdx.z == 0 ? 0x80000000u - (blocks - 1) : 1u;
            __threadfence();
            unsigned before = atomicAdd(arrived, add);
            while (((before ^ snn_volatile_load(arrived)) & 0x80000000u) == 0) snn_spin_pause();
            __threadfence();
        }
        __syncthreads();
    }

    // Each channel's two sums from its `splits` parts' (partials[2(c·splits + s)] and the word
    // after), added in order by a thread per channel: first into `a`, second into `b`.
    extern "C" __global__ void snn_channel_pair_sums(const double *__restrict__ partials, float *__restrict__ a,
                                                     float *__restrict__ b, int channels, int splits) {
        int c = blockIdx.x * blockDim.x + threadIdx.x;
        if (c >= channels) return;
        const double *row = partials + 2 * (long long)c * splits;
        double sa = 0.0, sb = 0.0;
        for (int s = 0; s < splits; s++) {
            sa += row[2 * s];
            sb += row[2 * s + 1];
        }
        a[c] = (float)sa;
        b[c] = (float)sb;
    }

    // out[0] = the sum of count partials, in a fixed order, by one block of SNN_REDUCE_THREADS.
    extern "C" __global__ void snn_sum_partials(const double *__restrict__ partials, float *__restrict__ out, int count) {
        double sum = 0.0;
        for (int j = threadIdx.x; j < count; j += SNN_REDUCE_THREADS) sum += partials[j];
        double total = snn_block_sum(sum);
        if (threadIdx.x == 0) out[0] = (float)total;
    }
    """#

    /// The TRT weight penalty with its closed-form gradient (TRT-SPEC.md §3), over one weight
    /// tensor: `Σ_t λ w²/d_t` with `d_t = 1 + c_t(|w| + ε)`, one thread per element, all
    /// timesteps in registers; each block writes its part of the value to `partials`
    /// (``reductions``' `snn_sum_partials` adds them). Blocks of 256 threads.
    public static let trtRegularizer = #"""
    // trt_regularizer.cu: the TRT penalty and its gradient. Needs reductions.cu.

    extern "C" __global__ void snn_trt_regularizer(const float *__restrict__ w, float *__restrict__ grad,
                                                   double *__restrict__ partials, long long n,
                                                   const float *__restrict__ coefficients, int steps, float lambda,
                                                   float epsilon) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        double value = 0.0;
        if (i < n) {
            float x = w[i];
            float sign = x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
            float g = 0.0f;
            for (int t = 0; t < steps; t++) {
                float c = coefficients[t];
                float d = 1.0f + c * (fabsf(x) + epsilon);
                value += (double)(lambda * x * x / d);
                g += lambda * (2.0f * x * d - x * x * c * sign) / (d * d);
            }
            grad[i] = g;
        }
        double total = snn_block_sum(value);   // every thread takes part, past the end too
        if (threadIdx.x == 0) partials[blockIdx.x] = total;
    }
    """#
}
