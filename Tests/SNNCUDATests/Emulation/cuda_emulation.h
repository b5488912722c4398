// Runs CUDA kernels on the host, for tests: the CUDA C++ source of a kernel compiles with the
// host C++ compiler (C++20) after this header, and snn_emulate_launch runs its grid.
//
// - Blocks run one after another on one host thread per CUDA thread of a block, so
//   __syncthreads() is a real barrier (std::barrier) and a thread that returns early leaves it,
//   as on the GPU.
// - __shared__ variables become function-local statics: shared by the threads of the block
//   that is running, and by one block at a time. Dynamic shared memory (extern __shared__) and
//   warp intrinsics are not emulated; kernels that need them need more here first.
// - threadIdx and blockIdx are per host thread; blockDim and gridDim are the launch's.
// - snn_emulate_launch_sequential runs a grid that never synchronises on the calling thread.
// - Launches run one at a time, whichever host threads start them (as on one stream): shared
//   memory and the launch's dimensions are process-wide. (Tests running side by side call
//   launches concurrently; unserialised, two grids raced on those and produced NaNs.)
#pragma once

#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
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

inline void __syncthreads() {
    if (!snn_emulation::block_barrier) {
        std::fprintf(stderr, "cuda_emulation.h: a kernel run by snn_emulate_launch_sequential called __syncthreads(); "
                             "launch it with snn_emulate_launch\n");
        std::abort();
    }
    snn_emulation::block_barrier->arrive_and_wait();
}

inline unsigned int __float_as_uint(float value) {
    unsigned int bits;
    __builtin_memcpy(&bits, &value, sizeof bits);
    return bits;
}

inline float __uint_as_float(unsigned int bits) {
    float value;
    __builtin_memcpy(&value, &bits, sizeof value);
    return value;
}

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
    const unsigned long long blocks = (unsigned long long)grid.x * grid.y * grid.z;
    // One host thread per CUDA thread for the whole grid, block after block: `start` and
    // `end` (never dropped) fence the blocks; each block gets a fresh barrier for
    // __syncthreads(), which a thread leaves when it returns.
    std::barrier<> start(threads), end(threads);
    std::optional<std::barrier<>> current;
    current.emplace(threads);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; t++) {
        pool.emplace_back([&, t] {
            snn_emulation::thread_index = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            for (unsigned long long b = 0; b < blocks; b++) {
                start.arrive_and_wait();
                snn_emulation::block_index = dim3(b % grid.x, (b / grid.x) % grid.y, b / ((unsigned long long)grid.x * grid.y));
                snn_emulation::block_barrier = &*current;
                kernel(args...);
                current->arrive_and_drop();
                end.arrive_and_wait();
                if (t == 0) current.emplace(threads);   // before anyone passes the next start
            }
        });
    }
    for (auto &thread : pool) thread.join();
}

// Runs a grid whose kernel never calls __syncthreads() (one that does stops the process with a
// message) on the calling thread: every thread of every block in turn, in index order. Much
// faster than snn_emulate_launch for the per-element kernels, which do not synchronise.
template <class Kernel, class... Args>
void snn_emulate_launch_sequential(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    std::lock_guard<std::mutex> serial(snn_emulation::launch_lock);
    snn_emulation::grid_dim = grid;
    snn_emulation::block_dim = block;
    snn_emulation::block_barrier = nullptr;
    const unsigned threads = block.x * block.y * block.z;
    const unsigned long long blocks = (unsigned long long)grid.x * grid.y * grid.z;
    for (unsigned long long b = 0; b < blocks; b++) {
        snn_emulation::block_index = dim3(b % grid.x, (b / grid.x) % grid.y, b / ((unsigned long long)grid.x * grid.y));
        for (unsigned t = 0; t < threads; t++) {
            snn_emulation::thread_index = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            kernel(args...);
        }
    }
}
