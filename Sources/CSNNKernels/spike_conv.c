#include "snn_kernels.h"

#include <string.h>

long snn_pack_spikes(const float *input, int channels, int height, int width, uint64_t *bits) {
    const int words = (channels + 63) / 64;
    const size_t plane = (size_t)height * width;
    memset(bits, 0, plane * words * sizeof(uint64_t));
    long ones = 0;
    for (int c = 0; c < channels; c++) {
        const float *p = input + (size_t)c * plane;
        const uint64_t bit = 1ull << (c & 63);
        uint64_t *b = bits + c / 64;
        for (size_t i = 0; i < plane; i++) {
            const float v = p[i];
            if (v == 1.0f) {
                b[i * words] |= bit;
                ones++;
            } else if (v != 0.0f) {
                return -1;
            }
        }
    }
    return ones;
}

typedef float v8 __attribute__((vector_size(32), aligned(32)));

/// The row kernel, defined twice below: for AVX2 and for the base instruction set. Each output
/// pixel keeps 64 output channels in eight 8-wide accumulators and adds one weight row of 64 per
/// input spike; the bits are walked with count-trailing-zeros.
#define SPIKE_CONV_ROW(NAME, ATTRIBUTES)                                                              \
    ATTRIBUTES static void NAME(const uint64_t *bits, int channels, int height, int width,             \
                                const float *weights, const float *bias, int outChannels, int outPadded, \
                                int kh, int kw, int strideH, int strideW, int padH, int padW,           \
                                int oy, int outWidth, float *scratch, float *row, size_t rowStride) {   \
        const int words = (channels + 63) / 64;                                                        \
        for (int ox = 0; ox < outWidth; ox++) {                                                        \
            for (int ob = 0; ob < outPadded; ob += 64) {                                               \
                v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};     \
                for (int ky = 0; ky < kh; ky++) {                                                      \
                    const int iy = oy * strideH - padH + ky;                                           \
                    if (iy < 0 || iy >= height) continue;                                              \
                    for (int kx = 0; kx < kw; kx++) {                                                  \
                        const int ix = ox * strideW - padW + kx;                                       \
                        if (ix < 0 || ix >= width) continue;                                           \
                        const uint64_t *b = bits + ((size_t)iy * width + ix) * words;                  \
                        const float *wk = weights + (size_t)(ky * kw + kx) * channels * outPadded + ob; \
                        for (int k = 0; k < words; k++) {                                              \
                            uint64_t m = b[k];                                                         \
                            while (m) {                                                                \
                                const int c = k * 64 + __builtin_ctzll(m);                             \
                                m &= m - 1;                                                            \
                                const v8 *r = (const v8 *)(wk + (size_t)c * outPadded);                \
                                a0 += r[0]; a1 += r[1]; a2 += r[2]; a3 += r[3];                        \
                                a4 += r[4]; a5 += r[5]; a6 += r[6]; a7 += r[7];                        \
                            }                                                                          \
                        }                                                                              \
                    }                                                                                  \
                }                                                                                      \
                v8 *d = (v8 *)(scratch + (size_t)ox * outPadded + ob);                                 \
                d[0] = a0; d[1] = a1; d[2] = a2; d[3] = a3; d[4] = a4; d[5] = a5; d[6] = a6; d[7] = a7; \
            }                                                                                          \
        }                                                                                              \
        for (int o = 0; o < outChannels; o++) {                                                        \
            const float add = bias ? bias[o] : 0.0f;                                                   \
            float *out = row + (size_t)o * rowStride;                                                  \
            for (int ox = 0; ox < outWidth; ox++) out[ox] = scratch[(size_t)ox * outPadded + o] + add; \
        }                                                                                              \
    }

#if defined(__x86_64__)
SPIKE_CONV_ROW(spike_conv_row_avx2, __attribute__((target("avx2"))))
#endif
SPIKE_CONV_ROW(spike_conv_row_base, )

void snn_spike_conv_row(const uint64_t *bits, int channels, int height, int width,
                        const float *weights, const float *bias, int outChannels, int outPadded,
                        int kh, int kw, int strideH, int strideW, int padH, int padW,
                        int oy, int outWidth, float *scratch, float *row, size_t rowStride) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        spike_conv_row_avx2(bits, channels, height, width, weights, bias, outChannels, outPadded, kh, kw, strideH, strideW,
                            padH, padW, oy, outWidth, scratch, row, rowStride);
        return;
    }
#endif
    spike_conv_row_base(bits, channels, height, width, weights, bias, outChannels, outPadded, kh, kw, strideH, strideW, padH,
                        padW, oy, outWidth, scratch, row, rowStride);
}
