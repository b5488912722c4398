// Device addresses of the emulated GPU: its memory is host memory, but the addresses it hands
// out have bit 62 flipped, which makes them non-canonical on x86-64, so host code that reads a
// device tensor's memory directly (a bug that would read garbage or crash on a real GPU) stops
// with a fault in the tests too. The driver and cuBLAS stand-ins translate them back.
// Also what all the emulated libraries share: the no-work switch and the wait for the driver's
// stream (below).
#pragma once

#include <cstdint>
#include <dlfcn.h>
#include <cstdlib>
#include <cstring>

static constexpr unsigned long long snn_device_bit = 1ULL << 62;

inline void *snn_host_address(unsigned long long device) { return (void *)(std::uintptr_t)(device ^ snn_device_bit); }
inline unsigned long long snn_device_address(const void *host) { return (unsigned long long)(std::uintptr_t)host ^ snn_device_bit; }

// A pointer a kernel or library was given: translated back to host memory (null stays null).
template <class T> inline T *snn_host_pointer(T *device) {
    return device ? (T *)snn_host_address((unsigned long long)(std::uintptr_t)device) : device;
}

// SNN_EMULATED_NO_WORK=1: every call is still checked and counted, but kernels, GEMMs,
// convolutions, device-to-device copies and fills do nothing and reads from the device give zeros, so that `snn bench` against the
// emulated GPU times SwiftSNN's host side alone: what issuing a step costs the host, which a real
// GPU that computes the step faster cannot hide.
inline bool snn_emulated_no_work() {
    static const bool on = [] {
        const char *v = std::getenv("SNN_EMULATED_NO_WORK");
        return v && *v && std::strcmp(v, "0") != 0;
    }();
    return on;
}

// The emulated cuBLAS, cuDNN and NCCL compute when called, so what the driver's stream holds
// before them (snn_emulated_run_queue) runs first, as on the GPU's one stream.
inline void snn_emulated_wait_for_stream() {
    static void (*run)(void) = nullptr;
    if (!run) run = (void (*)(void))dlsym(RTLD_DEFAULT, "snn_emulated_run_queue");
    if (run) run();
}
