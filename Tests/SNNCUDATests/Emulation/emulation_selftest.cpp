// The emulation's own test: a kernel that needs shared memory and barriers (a tree sum per
// block) and whose threads return early past the end, as reductions in SwiftSNN's kernels will.
#include "cuda_emulation.h"

extern "C" __global__ void block_sums(const float *x, float *sums, int n) {
    __shared__ float partial[256];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    partial[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) sums[blockIdx.x] = partial[0];
}

// Threads past the end return before a barrier the others still reach.
extern "C" __global__ void early_exit(const float *x, float *y, int n) {
    __shared__ float staged[256];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    staged[threadIdx.x] = x[i];
    __syncthreads();
    int last = (blockIdx.x + 1) * blockDim.x <= (unsigned)n ? blockDim.x - 1 : (n - 1) % blockDim.x;
    y[i] = staged[last - threadIdx.x];   // reversed within the block: reads other threads' stores
}

extern "C" void emulate_block_sums(unsigned grid, unsigned block, const float *x, float *sums, int n) {
    snn_emulate_launch(dim3(grid), dim3(block), block_sums, x, sums, n);
}

extern "C" void emulate_early_exit(unsigned grid, unsigned block, const float *x, float *y, int n) {
    snn_emulate_launch(dim3(grid), dim3(block), early_exit, x, y, n);
}
