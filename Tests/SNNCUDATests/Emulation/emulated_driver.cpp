// A CUDA driver (libcuda.so.1) for tests on machines without a GPU: one device whose memory is
// host memory behind addresses the host cannot dereference (device_addresses.h), and whose "CUBIN" modules, once checked to be ELF files, run SwiftSNN's kernels
// through the launch-grid emulation. SNNCUDA's host side (memory, copies, module loading,
// argument packing, launches) runs against it end to end. The kernel sources are written
// beside this file by the test (part_*.cu, each once).
#include "cuda_emulation.h"
#include "device_addresses.h"
#include "part_prelude.cu"
#include "part_neuron_scan.cu"
#include "part_reductions.cu"
#include "part_half_floats.cu"
#include "part_batch_norm_neuron.cu"
#include "part_trt_regularizer.cu"
#include "part_optimizer.cu"
#include "part_elementwise.cu"
#include "part_dense.cu"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <tuple>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// Calls a kernel with its parameters read from the driver's array of pointers, each as the
// kernel declares it (a device pointer is the 8-byte address, which is a host pointer here).
// How the grid runs: kernels that synchronise a block run with a fiber per CUDA thread
// (`synchronised`), a block at a time; the others on the calling thread, which stops the
// process if one calls __syncthreads(); cuLaunchCooperativeKernel runs all blocks at once.
enum class Grid { sequential, synchronised, cooperative };
// A parameter as the kernel declares it; device pointers become host pointers again.
template <class T> static T parameter(void *slot) {
    T value = *static_cast<T *>(slot);
    if constexpr (std::is_pointer_v<T>) return snn_host_pointer(value);
    else return value;
}
// A launch's work, with its arguments copied when it is queued (as cuLaunchKernel copies them),
// to run when the stream reaches it.
template <class... A, std::size_t... I>
static std::function<void()> deferred(void (*kernel)(A...), Grid how, dim3 grid, dim3 block, void **params,
                                      std::index_sequence<I...>) {
    auto arguments = std::make_tuple(parameter<std::remove_cv_t<std::remove_reference_t<A>>>(params[I])...);
    return [=] {
        std::apply([&](auto... a) {
            switch (how) {
            case Grid::cooperative: snn_emulate_launch_cooperative(grid, block, kernel, a...); break;
            case Grid::synchronised: snn_emulate_launch(grid, block, kernel, a...); break;
            case Grid::sequential: snn_emulate_launch_sequential(grid, block, kernel, a...);
            }
        }, arguments);
    };
}
using Entry = std::function<std::function<void()>(dim3, dim3, void **, bool cooperative)>;
template <class... A>
static Entry entry(void (*kernel)(A...), bool synchronised = false) {
    return [kernel, synchronised](dim3 g, dim3 b, void **p, bool cooperative) {
        Grid how = cooperative ? Grid::cooperative : synchronised ? Grid::synchronised : Grid::sequential;
        return deferred(kernel, how, g, b, p, std::index_sequence_for<A...>{});
    };
}
static constexpr bool synchronised = true;
// A table entry: the kernel's name and how it runs.
#define SNN_KERNEL(name) {#name, entry(name)}
#define SNN_SYNCHRONISED(name) {#name, entry(name, synchronised)}

static const std::map<std::string, Entry> &kernels() {
    static const std::map<std::string, Entry> table = {
        SNN_KERNEL(snn_neuron_scan_forward),
        SNN_KERNEL(snn_neuron_scan_backward),
        SNN_SYNCHRONISED(snn_sum_partials),
        SNN_KERNEL(snn_channel_pair_sums),
        SNN_SYNCHRONISED(snn_bn_partial_statistics),
        SNN_KERNEL(snn_bn_statistics),
        SNN_KERNEL(snn_bn_neuron_forward),
        SNN_KERNEL(snn_bn_neuron_backward),
        SNN_SYNCHRONISED(snn_bn_channel_sums),
        SNN_SYNCHRONISED(snn_bn_neuron_backward_fused),
        SNN_KERNEL(snn_bn_input_gradient),
        SNN_SYNCHRONISED(snn_trt_regularizer),
        SNN_KERNEL(snn_optimizer_step),
        SNN_KERNEL(snn_unary),
        SNN_KERNEL(snn_binary),
        SNN_KERNEL(snn_binary_scalar),
        SNN_KERNEL(snn_clamp),
        SNN_KERNEL(snn_select),
        SNN_KERNEL(snn_reduce),
        SNN_SYNCHRONISED(snn_reduce_blocks),
        SNN_SYNCHRONISED(snn_reduce_partials),
        SNN_KERNEL(snn_copy),
        SNN_KERNEL(snn_cast_f32_u8),
        SNN_KERNEL(snn_cast_u8_f32),
        SNN_KERNEL(snn_cast_f32_bf16),
        SNN_KERNEL(snn_cast_f32_f16),
        SNN_KERNEL(snn_cast_bf16_f32),
        SNN_KERNEL(snn_cast_f16_f32),
        SNN_KERNEL(snn_one_hot),
        SNN_KERNEL(snn_add_i64),
        SNN_KERNEL(snn_random),
        SNN_KERNEL(snn_copy_to),
        SNN_KERNEL(snn_fill),
        SNN_KERNEL(snn_surrogate_gradient),
        SNN_SYNCHRONISED(snn_matmul),
        SNN_KERNEL(snn_conv2d_forward),
        SNN_KERNEL(snn_conv2d_backward_data),
        SNN_SYNCHRONISED(snn_conv2d_backward_weight),
        SNN_SYNCHRONISED(snn_conv2d_backward_bias),
        SNN_KERNEL(snn_pool2d_forward),
        SNN_KERNEL(snn_pool2d_backward),
        SNN_KERNEL(snn_bn_apply),
        SNN_KERNEL(snn_im2col),
        SNN_KERNEL(snn_col2im),
        SNN_SYNCHRONISED(snn_bn_backward_sums),
    };
    return table;
}

static std::mutex state_lock;   // host threads may call the driver at once
// The context current on each host thread: as with the real driver, calls that act on the
// current context fail with CUDA_ERROR_INVALID_CONTEXT (201) on a thread that has none.
static thread_local void *current_context = nullptr;
#define SNN_NEEDS_CONTEXT if (!current_context) return 201
static std::map<void *, std::size_t> live;   // allocations not yet freed, with their sizes
static int the_stream;   // cuStreamCreate's one stream is this int's address
static std::set<std::pair<const char *, std::size_t>> pinned;   // page-locked host blocks
static int pinned_copies = 0;   // host-to-device copies from them
static std::map<const void *, int> launches_by_kernel;   // by the kernel's table entry
static int cooperative_launch_count = 0;
static int occupancy_queries = 0;   // cuOccupancyMaxActiveBlocksPerMultiprocessor calls
// Calls after which the host has waited for the stream on a real GPU: stream and event
// synchronisations, copies to the host, and copies from pageable host memory (which CUDA may
// stage after synchronising the stream). A training step should make none.
static int host_waits = 0;
static int pageable_uploads = 0;   // of them, the copies from pageable memory
static bool cooperative_launches = true;
// The blocks of 256 threads one multiprocessor holds at once, for every kernel: the emulation
// runs a cooperative grid's threads all at once, so it is kept small. Three, so that a grid
// strides over work of more blocks than it has.
static constexpr int resident_blocks = 3;

// The stream: work is queued as a GPU queues it and runs when the host waits for it (a
// synchronisation, an event's, a copy to pageable host memory) or a library call needs what came
// before, in order. So a host that reuses a page-locked buffer an upload still reads, or reads
// results before waiting for them, gets wrong data here as on a GPU, not the right data by luck.
// One queue, as the backend uses one stream; whichever host thread waits runs what is queued.
static std::mutex queue_lock, run_lock;
static std::deque<std::function<void()>> queued;
static void enqueue(std::function<void()> work) {
    std::lock_guard<std::mutex> g(queue_lock);
    queued.push_back(std::move(work));
}
// Runs queued work in order until `done()` holds (every queued item when null).
static void run_queue(const std::function<bool()> &done = nullptr) {
    std::lock_guard<std::mutex> running(run_lock);
    for (;;) {
        if (done && done()) return;
        std::function<void()> work;
        {
            std::lock_guard<std::mutex> g(queue_lock);
            if (queued.empty()) return;
            work = std::move(queued.front());
            queued.pop_front();
        }
        work();
    }
}

// cuMemsetD16Async and cuMemsetD32Async: `n` words of `v` from device address `dst`.
template <class T> static void fill_words(unsigned long long dst, T v, std::size_t n) {
    if (snn_emulated_no_work()) return;
    enqueue([=] { for (std::size_t i = 0; i < n; i++) ((T *)snn_host_address(dst))[i] = v; });
}

extern "C" {
// Test hooks.
int snn_emulated_live_allocations(void) { std::lock_guard<std::mutex> g(state_lock); return (int)live.size(); }
// For the emulated NCCL, which checks what SwiftSNN hands it as a real NCCL would need it: a
// context current on the calling thread, the stream cuStreamCreate made, and device memory
// inside one live allocation.
int snn_emulated_has_context(void) { return current_context != nullptr; }
int snn_emulated_is_stream(const void *stream) { return stream == &the_stream; }
int snn_emulated_is_device_range(unsigned long long address, std::size_t bytes) {
    const char *p = (const char *)snn_host_address(address);
    std::lock_guard<std::mutex> g(state_lock);
    auto after = live.upper_bound((void *)p);
    if (after == live.begin()) return 0;
    auto block = std::prev(after);
    const char *start = (const char *)block->first;
    return p >= start && p + bytes <= start + block->second;
}
int snn_emulated_launches(void) {
    std::lock_guard<std::mutex> g(state_lock);
    int all = 0;
    for (auto &counted : launches_by_kernel) all += counted.second;
    return all;
}
// The launches of the kernel named `name` so far (0 for a name the table does not have).
int snn_emulated_launches_of(const char *name) {
    auto found = kernels().find(name);
    if (found == kernels().end()) return 0;
    std::lock_guard<std::mutex> g(state_lock);
    auto count = launches_by_kernel.find(&found->second);
    return count == launches_by_kernel.end() ? 0 : count->second;
}
int snn_emulated_cooperative_launches(void) { std::lock_guard<std::mutex> g(state_lock); return cooperative_launch_count; }
int snn_emulated_occupancy_queries(void) { std::lock_guard<std::mutex> g(state_lock); return occupancy_queries; }
int snn_emulated_host_waits(void) { std::lock_guard<std::mutex> g(state_lock); return host_waits; }
int snn_emulated_pageable_uploads(void) { std::lock_guard<std::mutex> g(state_lock); return pageable_uploads; }
static void count_host_wait() { std::lock_guard<std::mutex> g(state_lock); host_waits++; }

int cuInit(unsigned flags) { return flags == 0 ? 0 : 1; }
int cuDriverGetVersion(int *v) { *v = 13000; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int ordinal) { *d = ordinal; return ordinal == 0 ? 0 : 101; }
int cuDeviceGetName(char *name, int len, int) { std::snprintf(name, len, "SwiftSNN emulated GPU"); return 0; }
int cuDeviceTotalMem_v2(std::size_t *bytes, int) { *bytes = (std::size_t)1 << 30; return 0; }
int cuDeviceGetAttribute(int *v, int attribute, int) {
    // sm_90, one multiprocessor, cooperative launches (95) unless a test turns them off.
    *v = attribute == 75 ? 9 : attribute == 76 ? 0 : attribute == 16 ? 1 : attribute == 95 ? (cooperative_launches ? 1 : 0) : 0;
    return 0;
}
// Test hook: whether the device says it runs cooperative launches.
void snn_emulated_set_cooperative_launches(int on) { cooperative_launches = on != 0; }
int cuGetErrorName(int e, const char **s) {
    *s = e == 1 ? "CUDA_ERROR_INVALID_VALUE" : e == 500 ? "CUDA_ERROR_NOT_FOUND" : e == 201 ? "CUDA_ERROR_INVALID_CONTEXT"
       : e == 720 ? "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE" : e == 801 ? "CUDA_ERROR_NOT_SUPPORTED"
       : e == 719 ? "CUDA_ERROR_LAUNCH_FAILED" : "CUDA_ERROR_UNKNOWN";
    return 0;
}
int cuGetErrorString(int e, const char **s) {
    *s = e == 500 ? "named symbol not found" : e == 719 ? "unspecified launch failure" : "emulated error";
    return 0;
}

int cuDevicePrimaryCtxRetain(void **ctx, int) { static int context; *ctx = &context; return 0; }
int cuCtxSetCurrent(void *ctx) { current_context = ctx; return 0; }
int cuStreamCreate(void **stream, unsigned) {
    SNN_NEEDS_CONTEXT;
    *stream = &the_stream;
    return 0;
}
int cuStreamSynchronize(void *) {
    SNN_NEEDS_CONTEXT;
    count_host_wait();
    run_queue();
    return 0;
}
// For the emulated cuBLAS, cuDNN and NCCL, which compute when called: what was queued before
// them runs first.
void snn_emulated_run_queue(void) { run_queue(); }
int cuMemAllocAsync(unsigned long long *address, std::size_t bytes, void *) {
    SNN_NEEDS_CONTEXT;
    void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!p) return 2;
    std::lock_guard<std::mutex> g(state_lock);
    live[p] = bytes;
    *address = snn_device_address(p);
    return 0;
}
int cuMemFreeAsync(unsigned long long address, void *) {
    SNN_NEEDS_CONTEXT;
    void *p = snn_host_address(address);
    {
        std::lock_guard<std::mutex> g(state_lock);
        if (!live.erase(p)) return 1;   // not allocated here, or freed twice
    }
    enqueue([p] { std::free(p); });   // when the stream gets there: work queued before may still use it
    return 0;
}
int cuMemcpyHtoDAsync_v2(unsigned long long dst, const void *src, std::size_t n, void *) {
    SNN_NEEDS_CONTEXT;
    {
        std::lock_guard<std::mutex> g(state_lock);
        bool from_pinned = false;
        for (auto &block : pinned)
            if ((const char *)src >= block.first && (const char *)src + n <= block.first + block.second) from_pinned = true;
        if (from_pinned) pinned_copies++; else host_waits++, pageable_uploads++;
        if (!from_pinned) {
            // From pageable memory the driver stages the bytes before returning.
            auto staged = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + n);
            enqueue([dst, staged] { std::memcpy(snn_host_address(dst), staged->data(), staged->size()); });
            return 0;
        }
    }
    // From page-locked memory the GPU reads the bytes when it gets there.
    enqueue([dst, src, n] { std::memcpy(snn_host_address(dst), src, n); });
    return 0;
}
int cuMemcpyDtoHAsync_v2(void *dst, unsigned long long src, std::size_t n, void *) {
    SNN_NEEDS_CONTEXT;
    count_host_wait();
    // Into pageable memory (all SwiftSNN reads): the copy waits for the stream.
    run_queue();
    if (snn_emulated_no_work()) std::memset(dst, 0, n);   // what was never computed reads as zeros
    else std::memcpy(dst, snn_host_address(src), n);
    return 0;
}
// The device's pool: the release threshold the backend sets (kept for the tests to read).
static unsigned long long release_threshold = 0;
int cuDeviceGetDefaultMemPool(void **pool, int device) {
    static int the_pool;
    if (device != 0) return 101;   // CUDA_ERROR_INVALID_DEVICE
    *pool = &the_pool;
    return 0;
}
int cuMemPoolSetAttribute(void *pool, unsigned attribute, void *value) {
    if (!pool || attribute != 4) return 1;   // only CU_MEMPOOL_ATTR_RELEASE_THRESHOLD is emulated
    release_threshold = *(unsigned long long *)value;
    return 0;
}
unsigned long long snn_emulated_release_threshold(void) { return release_threshold; }
// Page-locked host memory and events. Copies are synchronous here, so an event is complete as
// soon as it is recorded; the tests read how many host-to-device copies came from pinned memory.
int cuMemAllocHost_v2(void **p, std::size_t bytes) {
    SNN_NEEDS_CONTEXT;
    *p = std::malloc(bytes ? bytes : 1);
    if (!*p) return 2;
    std::lock_guard<std::mutex> g(state_lock);
    pinned.insert({(const char *)*p, bytes});
    return 0;
}
int cuMemFreeHost(void *p) {
    SNN_NEEDS_CONTEXT;
    std::lock_guard<std::mutex> g(state_lock);
    for (auto it = pinned.begin(); it != pinned.end(); ++it)
        if (it->first == p) {
            pinned.erase(it);
            std::free(p);
            return 0;
        }
    return 1;
}
// An event: how many times it was recorded, and up to which record the stream has reached.
struct Event {
    std::atomic<long long> recorded{0}, reached{0};
};
int cuEventCreate(void **event, unsigned) {
    SNN_NEEDS_CONTEXT;
    *event = new Event;
    return 0;
}
int cuEventRecord(void *event, void *) {
    SNN_NEEDS_CONTEXT;
    if (!event) return 400;   // CUDA_ERROR_INVALID_HANDLE
    Event *e = (Event *)event;
    long long record = ++e->recorded;
    enqueue([e, record] { e->reached = record; });
    return 0;
}
int cuEventSynchronize(void *event) {
    if (!event) return 400;
    count_host_wait();
    Event *e = (Event *)event;
    long long record = e->recorded;
    run_queue([e, record] { return e->reached >= record; });   // the work before its last record, no more
    return 0;
}
int cuEventDestroy_v2(void *event) {
    delete (Event *)event;
    return 0;
}
int snn_emulated_pinned_copies(void) { std::lock_guard<std::mutex> g(state_lock); return pinned_copies; }
int snn_emulated_pinned_allocations(void) { std::lock_guard<std::mutex> g(state_lock); return (int)pinned.size(); }

int cuMemcpyDtoDAsync_v2(unsigned long long dst, unsigned long long src, std::size_t n, void *) {
    SNN_NEEDS_CONTEXT;
    if (!snn_emulated_no_work()) enqueue([=] { std::memmove(snn_host_address(dst), snn_host_address(src), n); });
    return 0;
}
int cuMemsetD8Async(unsigned long long dst, unsigned char v, std::size_t n, void *) {
    SNN_NEEDS_CONTEXT;
    if (!snn_emulated_no_work()) enqueue([=] { std::memset(snn_host_address(dst), v, n); });
    return 0;
}
int cuMemsetD16Async(unsigned long long dst, unsigned short v, std::size_t n, void *) {
    SNN_NEEDS_CONTEXT;
    fill_words(dst, v, n);
    return 0;
}
int cuMemsetD32Async(unsigned long long dst, unsigned int v, std::size_t n, void *) {
    SNN_NEEDS_CONTEXT;
    fill_words(dst, v, n);
    return 0;
}
int cuModuleLoadData(void **module, const void *image) {
    SNN_NEEDS_CONTEXT;
    static int m;
    if (!image || std::memcmp(image, "\x7f" "ELF", 4) != 0) return 200;   // CUDA_ERROR_INVALID_IMAGE
    *module = &m;
    return 0;
}
int cuModuleGetFunction(const void **function, void *, const char *name) {
    auto found = kernels().find(name);
    if (found == kernels().end()) return 500;   // CUDA_ERROR_NOT_FOUND
    *function = &found->second;
    return 0;
}
// Test hook: SNN_EMULATED_FAIL_KERNEL=name makes every launch of that kernel fail as a faulting
// kernel does on a GPU (CUDA_ERROR_LAUNCH_FAILED), to see what a run keeps when one does.
static bool fails(const void *function) {
    static const void *failing = [] () -> const void * {
        const char *name = std::getenv("SNN_EMULATED_FAIL_KERNEL");
        auto found = name ? kernels().find(name) : kernels().end();
        return found == kernels().end() ? nullptr : &found->second;
    }();
    return failing != nullptr && function == failing;
}
int cuLaunchKernel(const void *function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shared, void *, void **params, void **extra) {
    SNN_NEEDS_CONTEXT;
    if (shared != 0 || extra != nullptr) return 1;
    if (fails(function)) return 719;   // CUDA_ERROR_LAUNCH_FAILED
    {
        std::lock_guard<std::mutex> g(state_lock);
        launches_by_kernel[function]++;
    }
    if (snn_emulated_no_work()) return 0;
    enqueue((*static_cast<const Entry *>(function))(dim3(gx, gy, gz), dim3(bx, by, bz), params, false));
    return 0;
}
int cuOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, const void *function, int blockSize, std::size_t dynamicShared) {
    if (!function || blockSize <= 0 || blockSize > 1024 || dynamicShared != 0) return 1;
    {
        std::lock_guard<std::mutex> g(state_lock);
        occupancy_queries++;
    }
    *blocks = resident_blocks * 256 / blockSize;
    return 0;
}
int cuLaunchCooperativeKernel(const void *function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                              unsigned shared, void *, void **params) {
    SNN_NEEDS_CONTEXT;
    if (!cooperative_launches) return 801;   // CUDA_ERROR_NOT_SUPPORTED
    if (shared != 0) return 1;
    if ((unsigned long long)gx * gy * gz * bx * by * bz > resident_blocks * 256ULL) return 720;   // ..._COOPERATIVE_LAUNCH_TOO_LARGE
    if (fails(function)) return 719;
    {
        std::lock_guard<std::mutex> g(state_lock);
        launches_by_kernel[function]++;
        cooperative_launch_count++;
    }
    if (snn_emulated_no_work()) return 0;
    enqueue((*static_cast<const Entry *>(function))(dim3(gx, gy, gz), dim3(bx, by, bz), params, true));
    return 0;
}
}
