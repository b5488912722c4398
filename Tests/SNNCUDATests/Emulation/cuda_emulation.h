// Runs CUDA kernels on the host, for tests: the CUDA C++ source of a kernel compiles with the
// host C++ compiler (C++20) after this header, and snn_emulate_launch runs its grid.
//
// - Blocks run one after another; the threads of a block run as host threads, so
//   __syncthreads() is a real barrier (std::barrier) and a thread that returns early leaves it,
//   as on the GPU.
// - __shared__ variables become function-local statics: shared by the threads of the block
//   that is running, and by one block at a time. Dynamic shared memory (extern __shared__) and
//   warp intrinsics are not emulated; kernels that need them need more here first.
// - threadIdx and blockIdx are per host thread; blockDim and gridDim are the launch's.
// - Launches run one at a time, whichever host threads start them (as on one stream): shared
//   memory and the launch's dimensions are process-wide. (Tests running side by side call
//   launches concurrently; unserialised, two grids raced on those and produced NaNs.)
#pragma once

#include <barrier>
#include <mutex>
#include <math.h>  // expf, fabsf, ...: what CUDA's device math gives kernels
#include <thread>
#include <vector>

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x = 1, unsigned y = 1, unsigned z = 1) : x(x), y(y), z(z) {}
};

namespace snn_emulation {
inline thread_local dim3 thread_index, block_index;
inline dim3 block_dim, grid_dim;
inline thread_local std::barrier<> *block_barrier = nullptr;
inline std::mutex launch_lock;
}  // namespace snn_emulation

#define threadIdx (snn_emulation::thread_index)
#define blockIdx (snn_emulation::block_index)
#define blockDim (snn_emulation::block_dim)
#define gridDim (snn_emulation::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __launch_bounds__(...)

inline void __syncthreads() { snn_emulation::block_barrier->arrive_and_wait(); }

inline float __int_as_float(int bits) {
    float value;
    __builtin_memcpy(&value, &bits, sizeof value);
    return value;
}

template <class Kernel, class... Args>
void snn_emulate_launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    std::lock_guard<std::mutex> serial(snn_emulation::launch_lock);
    snn_emulation::grid_dim = grid;
    snn_emulation::block_dim = block;
    const unsigned threads = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                std::barrier<> barrier(threads);
                std::vector<std::thread> pool;
                pool.reserve(threads);
                for (unsigned t = 0; t < threads; t++) {
                    pool.emplace_back([&, t] {
                        snn_emulation::block_index = dim3(bx, by, bz);
                        snn_emulation::thread_index = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                        snn_emulation::block_barrier = &barrier;
                        kernel(args...);
                        barrier.arrive_and_drop();
                    });
                }
                for (auto &thread : pool) thread.join();
            }
}
