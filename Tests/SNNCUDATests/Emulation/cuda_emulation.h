// Runs CUDA kernels on the host, for tests: the CUDA C++ source of a kernel compiles with the
// host C++ compiler (C++20) after this header, and snn_emulate_launch runs its grid.
//
// - snn_emulate_launch runs blocks one after another (in a scrambled order, not by index), each CUDA thread of a block a fiber
//   (ucontext) on the calling host thread: each runs until it reaches __syncthreads() or
//   returns, and the barrier opens when every thread that has not returned is waiting at it (a
//   thread that returns early leaves it, as on the GPU). Between barriers the threads run one
//   after another in an order shuffled afresh each time (the same every run), so that a read of
//   another thread's store without a barrier between them sees the wrong value, as it may on a
//   GPU. Fibers switch in well under a microsecond, where host threads meeting at a
//   std::barrier took milliseconds a block.
// - snn_emulate_launch_cooperative runs every block of the grid at once, a host thread per CUDA
//   thread of the grid, as cuLaunchCooperativeKernel does on a GPU: blocks may then wait for
//   each other (snn_grid_sync), through the same atomics and fences the GPU code uses.
// - Shared memory is declared with SNN_SHARED(type, name, [dims]) (kernels' prelude.cu): each
//   block gets its own, filled with 0xff bytes (NaN for floats) when the block starts, so that a
//   kernel that reads shared memory before writing it reads garbage here too. `__shared__`
//   itself is not defined: a kernel that uses it does not compile here.
// - Dynamic shared memory (extern __shared__) and warp intrinsics are not emulated; kernels that
//   need them need more here first.
// - threadIdx and blockIdx are per host thread; blockDim and gridDim are the launch's.
// - snn_emulate_launch_sequential runs a grid that never synchronises on the calling thread,
//   blocks and each block's threads in a scrambled order.
// - Launches run one at a time, whichever host threads start them (as on one stream): the
//   launch's dimensions are process-wide. (Tests running side by side call launches
//   concurrently; unserialised, two grids raced on those and produced NaNs.)
#pragma once

#include <barrier>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <math.h>  // expf, fabsf, ...: what CUDA's device math gives kernels
#include <thread>
#include <ucontext.h>
#include <vector>

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x = 1, unsigned y = 1, unsigned z = 1) : x(x), y(y), z(z) {}
};

#define SNN_EMULATION 1

namespace snn_emulation {
// One block's shared memory: each SNN_SHARED variable, found by the address of its tag.
class SharedMemory {
  public:
    void *variable(const void *tag, std::size_t bytes) {
        std::lock_guard<std::mutex> guard(lock);
        auto &storage = variables[tag];
        if (!storage) {
            storage = std::make_unique<std::max_align_t[]>((bytes + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t));
            std::memset(storage.get(), 0xff, bytes);
        }
        return storage.get();
    }

  private:
    std::mutex lock;
    std::map<const void *, std::unique_ptr<std::max_align_t[]>> variables;
};

inline thread_local dim3 thread_index, block_index;
inline dim3 block_dim, grid_dim;
inline thread_local std::barrier<> *block_barrier = nullptr;
// The block's threads as fibers (snn_emulate_launch): the one running, and where it returns to.
struct Fiber {
    ucontext_t context;
    dim3 index;
    bool waiting = false, done = false;
};
inline thread_local Fiber *running_fiber = nullptr;
inline thread_local ucontext_t *scheduler = nullptr;
inline thread_local void (*fiber_body)(void *) = nullptr;
inline thread_local void *fiber_argument = nullptr;
inline void fiber_entry() {
    fiber_body(fiber_argument);
    running_fiber->done = true;   // uc_link returns to the scheduler
}
inline thread_local SharedMemory *shared_memory = nullptr;
inline std::mutex launch_lock;

template <class T> T &block_shared(const void *tag) {
    if (!shared_memory) {
        std::fprintf(stderr, "cuda_emulation.h: a kernel run by snn_emulate_launch_sequential uses shared memory; "
                             "launch it with snn_emulate_launch\n");
        std::abort();
    }
    return *static_cast<T *>(shared_memory->variable(tag, sizeof(T)));
}

// A launch in progress: launches run one at a time (the lock), with their dimensions set.
struct Launch {
    std::lock_guard<std::mutex> serial;
    const unsigned threads;          // of a block
    const unsigned long long blocks;
    Launch(dim3 grid, dim3 block)
        : serial(launch_lock), threads(block.x * block.y * block.z), blocks((unsigned long long)grid.x * grid.y * grid.z) {
        grid_dim = grid;
        block_dim = block;
    }
};

// The position of the i-th of a block's threads (or of a grid's blocks), x fastest.
inline dim3 position(unsigned long long i, dim3 extent) {
    return dim3(i % extent.x, (i / extent.x) % extent.y, i / ((unsigned long long)extent.x * extent.y));
}

// Every index below n once, in a scrambled order (start, start + step, ... modulo n, the step
// prime to n and near 0.618 n), the same every run: blocks, and a block's threads where they run
// one after another, are visited in it, so that a kernel whose result depends on the order its
// blocks or threads run in (one that reads, without a barrier, an element another writes) gets
// a result here that index order would not give, as it may on a GPU.
class Scrambled {
  public:
    explicit Scrambled(unsigned long long n) : n(n), step(n > 2 ? n * 0.6180339887 : 1), current(n / 3) {
        while (gcd(step, n) != 1) step++;
    }
    // The next index, after `current` (the first call gives n / 3).
    unsigned long long next() {
        unsigned long long i = current;
        current += step;
        if (current >= n) current -= n;
        return i;
    }

  private:
    static unsigned long long gcd(unsigned long long a, unsigned long long b) {
        while (b) a %= b, std::swap(a, b);
        return a;
    }
    unsigned long long n, step, current;
};
}  // namespace snn_emulation

// `SNN_SHARED(float, tile, [16][17]);` declares the block's `float tile[16][17]`.
#define SNN_SHARED(type, name, dims)                                                                                         \
    static const char name##_snn_shared_tag = 0;                                                                             \
    type(&name) dims = snn_emulation::block_shared<type dims>(&name##_snn_shared_tag)

#define threadIdx (snn_emulation::thread_index)
#define blockIdx (snn_emulation::block_index)
#define blockDim (snn_emulation::block_dim)
#define gridDim (snn_emulation::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)

inline void __syncthreads() {
    if (snn_emulation::Fiber *fiber = snn_emulation::running_fiber) {
        fiber->waiting = true;
        swapcontext(&fiber->context, snn_emulation::scheduler);
        return;
    }
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

// Double arithmetic rounded once (on a GPU: never fused into a multiply-add). The host compiler
// in ISO C++ mode does not fuse either.
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }

// What snn_grid_sync needs: device-wide atomics and fences, a load that sees other blocks'
// stores, and a pause while spinning (host threads: a yield, so that the blocks being waited
// for get the CPU).
inline unsigned atomicAdd(unsigned *address, unsigned value) { return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST); }
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline unsigned snn_volatile_load(const unsigned *address) { return __atomic_load_n(address, __ATOMIC_SEQ_CST); }
inline void snn_spin_pause() { std::this_thread::yield(); }

template <class Kernel, class... Args>
void snn_emulate_launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    const snn_emulation::Launch launch(grid, block);
    const unsigned threads = launch.threads;
    constexpr std::size_t stack_bytes = 256 * 1024;   // untouched pages cost nothing
    std::vector<snn_emulation::Fiber> fibers(threads);
    std::unique_ptr<char[]> stacks(new char[stack_bytes * threads]);
    auto body = [&] { kernel(args...); };
    ucontext_t scheduler;
    snn_emulation::scheduler = &scheduler;
    snn_emulation::fiber_body = [](void *f) { (*static_cast<decltype(body) *>(f))(); };
    snn_emulation::fiber_argument = &body;
    snn_emulation::block_barrier = nullptr;
    snn_emulation::Scrambled blocks(launch.blocks);
    for (unsigned long long visited = 0; visited < launch.blocks; visited++) {
        const unsigned long long b = blocks.next();
        snn_emulation::block_index = snn_emulation::position(b, grid);
        snn_emulation::SharedMemory shared;
        snn_emulation::shared_memory = &shared;
        for (unsigned t = 0; t < threads; t++) {
            snn_emulation::Fiber &f = fibers[t];
            f.index = snn_emulation::position(t, block);
            f.waiting = f.done = false;
            getcontext(&f.context);
            f.context.uc_stack.ss_sp = stacks.get() + stack_bytes * t;
            f.context.uc_stack.ss_size = stack_bytes;
            f.context.uc_link = &scheduler;
            makecontext(&f.context, snn_emulation::fiber_entry, 0);
        }
        // Each pass runs every thread to its next barrier (or its end), in a shuffled order; the
        // barrier opens when none is left running.
        std::vector<unsigned> order(threads);
        unsigned long long random = 0x9e3779b97f4a7c15ULL ^ b;
        for (;;) {
            for (unsigned i = 0; i < threads; i++) order[i] = i;
            for (unsigned i = threads; i > 1; i--) {   // Fisher–Yates, xorshift64
                random ^= random << 13, random ^= random >> 7, random ^= random << 17;
                std::swap(order[i - 1], order[random % i]);
            }
            bool anyWaiting = false;
            for (unsigned i = 0; i < threads; i++) {
                snn_emulation::Fiber &f = fibers[order[i]];
                if (f.done) continue;
                f.waiting = false;
                snn_emulation::thread_index = f.index;
                snn_emulation::running_fiber = &f;
                swapcontext(&scheduler, &f.context);
                anyWaiting = anyWaiting || f.waiting;
            }
            if (!anyWaiting) break;
        }
        snn_emulation::running_fiber = nullptr;
        snn_emulation::shared_memory = nullptr;
    }
    snn_emulation::scheduler = nullptr;
}

// Runs every block of the grid at once (cuLaunchCooperativeKernel): one host thread per CUDA
// thread of the grid, each block with its own barrier and shared memory. Grids are kept small
// (as a GPU keeps them to the blocks it holds at once): at most 4,096 threads.
template <class Kernel, class... Args>
void snn_emulate_launch_cooperative(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    const snn_emulation::Launch launch(grid, block);
    const unsigned threads = launch.threads;
    const unsigned long long blocks = launch.blocks;
    if (blocks * threads > 4096) {
        std::fprintf(stderr, "cuda_emulation.h: a cooperative grid of %llu blocks of %u threads is more than the emulation runs at once\n",
                     blocks, threads);
        std::abort();
    }
    std::vector<std::unique_ptr<std::barrier<>>> barriers;
    std::vector<snn_emulation::SharedMemory> shared(blocks);
    for (unsigned long long b = 0; b < blocks; b++) barriers.push_back(std::make_unique<std::barrier<>>(threads));
    std::vector<std::thread> pool;
    pool.reserve(blocks * threads);
    for (unsigned long long b = 0; b < blocks; b++) {
        for (unsigned t = 0; t < threads; t++) {
            pool.emplace_back([&, b, t] {
                snn_emulation::thread_index = snn_emulation::position(t, block);
                snn_emulation::block_index = snn_emulation::position(b, grid);
                snn_emulation::block_barrier = barriers[b].get();
                snn_emulation::shared_memory = &shared[b];
                kernel(args...);
                barriers[b]->arrive_and_drop();
            });
        }
    }
    for (auto &thread : pool) thread.join();
}

// Runs a grid whose kernel never calls __syncthreads() (one that does stops the process with a
// message) on the calling thread: every thread of every block in turn, blocks and each block's
// threads in a scrambled order (Scrambled). Much
// faster than snn_emulate_launch for the per-element kernels, which do not synchronise.
template <class Kernel, class... Args>
void snn_emulate_launch_sequential(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    const snn_emulation::Launch launch(grid, block);
    snn_emulation::block_barrier = nullptr;
    snn_emulation::shared_memory = nullptr;
    snn_emulation::Scrambled blocks(launch.blocks);
    for (unsigned long long visited = 0; visited < launch.blocks; visited++) {
        snn_emulation::block_index = snn_emulation::position(blocks.next(), grid);
        snn_emulation::Scrambled threads(launch.threads);
        for (unsigned t = 0; t < launch.threads; t++) {
            snn_emulation::thread_index = snn_emulation::position(threads.next(), block);
            kernel(args...);
        }
    }
}
