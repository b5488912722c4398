// The elementwise kernels (elementwise.cu, written out by the test from CUDAKernels) on the host.
// Layouts come as arrays: the output's shape, then each operand's strides and offset.
#include "cuda_emulation.h"
#include "elementwise.cu"

static SnnLayout layout(int rank, const long long *shape, const long long *strides, const long long *offsets) {
    SnnLayout l = {};
    l.rank = rank;
    for (int d = 0; d < rank; d++) {
        l.shape[d] = shape[d];
        for (int k = 0; k < 3; k++) l.strides[k][d] = strides[k * rank + d];
    }
    for (int k = 0; k < 3; k++) l.offsets[k] = offsets[k];
    return l;
}

static unsigned blocks(long long n) { return (unsigned)((n + 127) / 128); }

extern "C" void emulate_unary(int op, const float *x, float *y, long long n, int rank, const long long *shape,
                              const long long *strides, const long long *offsets) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_unary, op, x, y, n, layout(rank, shape, strides, offsets));
}

extern "C" void emulate_binary(int op, const float *a, const float *b, float *y, long long n, int rank, const long long *shape,
                               const long long *strides, const long long *offsets) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_binary, op, a, b, y, n, layout(rank, shape, strides, offsets));
}

extern "C" void emulate_binary_scalar(int op, const float *x, float s, int scalarFirst, float *y, long long n, int rank,
                                      const long long *shape, const long long *strides, const long long *offsets) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_binary_scalar, op, x, s, scalarFirst, y, n,
                       layout(rank, shape, strides, offsets));
}

extern "C" void emulate_select(const float *condition, const float *a, const float *b, float *y, long long n, int rank,
                               const long long *shape, const long long *strides, const long long *offsets) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_select, condition, a, b, y, n, layout(rank, shape, strides, offsets));
}

extern "C" void emulate_reduce(int op, const float *x, float *y, long long outputs, long long inner, int outerRank,
                               const long long *outerShape, const long long *outerStrides, int reducedRank,
                               const long long *reducedShape, const long long *reducedStrides) {
    long long none[3] = {0, 0, 0};
    long long outer[3 * SNN_MAX_RANK] = {}, reduced[3 * SNN_MAX_RANK] = {};
    for (int d = 0; d < outerRank; d++) outer[outerRank + d] = outerStrides[d];
    for (int d = 0; d < reducedRank; d++) reduced[reducedRank + d] = reducedStrides[d];
    snn_emulate_launch(dim3(blocks(outputs)), dim3(128), snn_reduce, op, x, y, outputs, inner,
                       layout(outerRank, outerShape, outer, none), layout(reducedRank, reducedShape, reduced, none));
}

extern "C" void emulate_clamp(const float *x, float low, float high, float *y, long long n, int rank, const long long *shape,
                              const long long *strides, const long long *offsets) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_clamp, x, low, high, y, n, layout(rank, shape, strides, offsets));
}

extern "C" void emulate_copy(const float *x, float *y, long long n, int rank, const long long *shape, const long long *strides,
                             const long long *offsets) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_copy, x, y, n, layout(rank, shape, strides, offsets));
}

extern "C" void emulate_cast_f32_u8(const float *x, unsigned char *y, long long n, int rank, const long long *shape,
                                    const long long *strides, const long long *offsets) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_cast_f32_u8, x, y, n, layout(rank, shape, strides, offsets));
}

extern "C" void emulate_cast_u8_f32(const unsigned char *x, float *y, long long n, int rank, const long long *shape,
                                    const long long *strides, const long long *offsets) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_cast_u8_f32, x, y, n, layout(rank, shape, strides, offsets));
}

extern "C" void emulate_one_hot(const void *labels, int wide, float *y, long long rows, int classes, long long *bad) {
    snn_emulate_launch(dim3(blocks(rows * classes)), dim3(128), snn_one_hot, labels, wide, y, rows, classes, bad);
}

extern "C" void emulate_add_i64(const long long *x, long long s, long long *y, long long n) {
    snn_emulate_launch(dim3(blocks(n)), dim3(128), snn_add_i64, x, s, y, n);
}

// A draw of n elements from Philox block `block0` (a thread per block of 4 words).
extern "C" void emulate_random(int distribution, double a, double b, unsigned long long seed, unsigned long long block0, void *y,
                               int dtype, long long n) {
    long long per = distribution == 2 ? 2 : 4;
    snn_emulate_launch(dim3(blocks((n + per - 1) / per)), dim3(128), snn_random, distribution, a, b, seed, block0, y, dtype, n);
}
