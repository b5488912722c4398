// Device addresses of the emulated GPU: its memory is host memory, but the addresses it hands
// out have bit 62 flipped, which makes them non-canonical on x86-64, so host code that reads a
// device tensor's memory directly (a bug that would read garbage or crash on a real GPU) stops
// with a fault in the tests too. The driver and cuBLAS stand-ins translate them back.
#pragma once

#include <cstdint>

static constexpr unsigned long long snn_device_bit = 1ULL << 62;

inline void *snn_host_address(unsigned long long device) { return (void *)(std::uintptr_t)(device ^ snn_device_bit); }
inline unsigned long long snn_device_address(const void *host) { return (unsigned long long)(std::uintptr_t)host ^ snn_device_bit; }

// A pointer a kernel or library was given: translated back to host memory (null stays null).
template <class T> inline T *snn_host_pointer(T *device) {
    return device ? (T *)snn_host_address((unsigned long long)(std::uintptr_t)device) : device;
}
