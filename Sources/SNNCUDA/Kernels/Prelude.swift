extension CUDAKernels {
    /// What every program starts with: the few definitions that differ between a GPU and the
    /// tests' launch-grid emulation on the host (`Tests/SNNCUDATests/Emulation/cuda_emulation.h`,
    /// which defines `SNN_EMULATION` and gives its own versions).
    ///
    /// - `SNN_SHARED(type, name, [dims])` declares shared memory: one array per block, which
    ///   the emulation keeps apart for blocks that run at once.
    /// - `snn_volatile_load` and `snn_spin_pause`: what a block waiting for the others in
    ///   ``reductions``' `snn_grid_sync` reads and how it waits.
    public static let prelude = #"""
    // prelude.cu: what every program starts with.

    #ifndef SNN_EMULATION
    // `SNN_SHARED(float, tile, [16][17]);` declares the block's shared `float tile[16][17]`.
    #define SNN_SHARED(type, name, dims) __shared__ type name dims

    // A load that goes to memory every time: it sees stores of other blocks (a plain load may be
    // kept in a register).
    __device__ __forceinline__ unsigned snn_volatile_load(const unsigned *address) {
        return *(const volatile unsigned *)address;
    }

    // A pause between two loads of a thread that waits for other blocks (GPUs before Volta have
    // no sleep: they just load again).
    __device__ __forceinline__ void snn_spin_pause() {
    #if __CUDA_ARCH__ >= 700
        __nanosleep(32);
    #endif
    }
    #endif
    """#
}
