// The emulation's own test: a kernel that needs shared memory and barriers (a tree sum per
// block), one whose threads return early past the end, as reductions in SwiftSNN's kernels
// do, one whose result depends on the order its threads run in, and blocks of a cooperative launch that wait for each other (reductions.cu's
// snn_grid_sync, from the part files the test writes beside this one).
#include "cuda_emulation.h"
#include "part_prelude.cu"
#include "part_reductions.cu"

#include <chrono>

// `synchronised` 0 leaves out the barriers inside the tree: a thread may then add a partial sum
// another has not finished, which the test expects to give wrong sums.
extern "C" __global__ void block_sums(const float *x, float *sums, int n, int synchronised) {
    SNN_SHARED(float, partial, [256]);
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    partial[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        if (synchronised) __syncthreads();
    }
    if (threadIdx.x == 0) sums[blockIdx.x] = partial[0];
}

// Threads past the end return before a barrier the others still reach.
extern "C" __global__ void early_exit(const float *x, float *y, int n) {
    SNN_SHARED(float, staged, [256]);
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    staged[threadIdx.x] = x[i];
    __syncthreads();
    int last = (blockIdx.x + 1) * blockDim.x <= (unsigned)n ? blockDim.x - 1 : (n - 1) % blockDim.x;
    y[i] = staged[last - threadIdx.x];   // reversed within the block: reads other threads' stores
}

extern "C" void emulate_block_sums(unsigned grid, unsigned block, const float *x, float *sums, int n, int synchronised) {
    snn_emulate_launch(dim3(grid), dim3(block), block_sums, x, sums, n, synchronised);
}

extern "C" void emulate_early_exit(unsigned grid, unsigned block, const float *x, float *y, int n) {
    snn_emulate_launch(dim3(grid), dim3(block), early_exit, x, y, n);
}

// Each element takes its left neighbour's value, in place: the result depends on the order the
// threads run in (index order copies x[0] everywhere, reversed order shifts by one), which a
// kernel must not do; the test expects the emulation to give neither.
extern "C" __global__ void shift_in_place(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i > 0 && i < n) x[i] = x[i - 1];
}

extern "C" void emulate_shift_in_place(unsigned grid, unsigned block, float *x, int n, int sequential) {
    if (sequential) snn_emulate_launch_sequential(dim3(grid), dim3(block), shift_in_place, x, n);
    else snn_emulate_launch(dim3(grid), dim3(block), shift_in_place, x, n);
}

// Blocks that wait for each other: in each round every block but 0 sleeps (so that block 0
// would run ahead without a barrier), writes its slot, and after a grid-wide barrier every
// block adds up all the slots; a second barrier keeps the next round's writes after the reads.
// `synchronised` 0 leaves the barriers out, which the test expects to give wrong sums.
extern "C" __global__ void grid_rounds(float *slots, float *sums, unsigned *arrived, int rounds, int synchronised) {
    for (int r = 0; r < rounds; r++) {
        if (threadIdx.x == 0) {
            if (blockIdx.x > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            slots[blockIdx.x] = (float)(r * 100 + blockIdx.x);
        }
        if (synchronised) snn_grid_sync(arrived);
        if (threadIdx.x == 0) {
            float total = 0.0f;
            for (unsigned b = 0; b < gridDim.x; b++) total += slots[b];
            sums[r * gridDim.x + blockIdx.x] = total;
        }
        if (synchronised) snn_grid_sync(arrived);
    }
}

extern "C" void emulate_grid_rounds(unsigned grid, unsigned block, float *slots, float *sums, unsigned *arrived, int rounds,
                                    int synchronised) {
    snn_emulate_launch_cooperative(dim3(grid), dim3(block), grid_rounds, slots, sums, arrived, rounds, synchronised);
}
