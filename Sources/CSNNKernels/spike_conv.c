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

void snn_channels_last(const float *src, int channels, int height, int width, int padded, int top, int left,
                       int paddedHeight, int paddedWidth, float *dst) {
    const size_t plane = (size_t)height * width;
    for (int y = 0; y < paddedHeight; y++) {
        float *row = dst + (size_t)y * paddedWidth * padded;
        const int iy = y - top;
        if (iy < 0 || iy >= height) {
            memset(row, 0, (size_t)paddedWidth * padded * sizeof(float));
            continue;
        }
        memset(row, 0, (size_t)left * padded * sizeof(float));
        const int right = paddedWidth - left - width;
        if (right > 0) memset(row + (size_t)(left + width) * padded, 0, (size_t)right * padded * sizeof(float));
        // Blocks of 16 columns: the reads are runs of 16, the writes stay within 16 rows of dst.
        for (int x0 = 0; x0 < width; x0 += 16) {
            const int x1 = x0 + 16 < width ? x0 + 16 : width;
            for (int c = 0; c < channels; c++) {
                const float *s = src + (size_t)c * plane + (size_t)iy * width;
                for (int x = x0; x < x1; x++) row[(size_t)(left + x) * padded + c] = s[x];
            }
            for (int x = x0; x < x1; x++) {
                for (int c = channels; c < padded; c++) row[(size_t)(left + x) * padded + c] = 0.0f;
            }
        }
    }
}

#define ADD_ROW(R)                                                                                     \
    do {                                                                                               \
        const v8 *r_ = (const v8 *)(R);                                                                \
        a0 += r_[0]; a1 += r_[1]; a2 += r_[2]; a3 += r_[3];                                            \
        a4 += r_[4]; a5 += r_[5]; a6 += r_[6]; a7 += r_[7];                                            \
    } while (0)

/// The weight-gradient kernel, defined twice below like the row kernel. Each input channel's
/// ones are first listed (without branches on the values, which are unpredictable): as their
/// positions in the bordered gradient for stride 1, where every tap of every one then reads a
/// gradient row (zero in the border) at a fixed offset, so the inner loop has no branch; as
/// columns per row for other strides, which check each tap. Each tap keeps 64 output channels of
/// its sums in eight 8-wide accumulators and adds one gradient row per one, in row-major order.
#define SPIKE_CONV_WEIGHT_GRAD(NAME, ATTRIBUTES)                                                       \
    ATTRIBUTES static long NAME(const float *input, int height, int width, const float *grad,          \
                                int outPadded, int outHeight, int outWidth, int top, int left,         \
                                int paddedWidth, int kh, int kw, int strideH, int strideW, int padH,   \
                                int padW, int cBegin, int cEnd, int *lists, float *acc) {              \
        const size_t plane = (size_t)height * width, listInts = plane + height + 1;                    \
        const int unit = strideH == 1 && strideW == 1;                                                 \
        long ones = 0;                                                                                 \
        int malformed = 0;                                                                             \
        for (int c = cBegin; c < cEnd; c++) {                                                          \
            const float *x = input + (size_t)c * plane;                                                \
            int *rowStart = lists + (size_t)(c - cBegin) * listInts, *entries = rowStart + height + 1; \
            int count = 0;                                                                             \
            for (int iy = 0; iy < height; iy++) {                                                      \
                rowStart[iy] = count;                                                                  \
                const float *r = x + (size_t)iy * width;                                               \
                /* For stride 1, the position of output (iy + padH, ix + padW) in the bordered grid. */ \
                const int base = unit ? (iy + padH + top) * paddedWidth + padW + left : 0;             \
                for (int ix = 0; ix < width; ix++) {                                                   \
                    const float v = r[ix];                                                             \
                    entries[count] = base + ix;                                                        \
                    count += v == 1.0f;                                                                \
                    malformed |= (v != 0.0f) & (v != 1.0f);                                            \
                }                                                                                      \
            }                                                                                          \
            rowStart[height] = count;                                                                  \
            ones += count;                                                                             \
        }                                                                                              \
        if (malformed) return -1;                                                                      \
        for (int c = cBegin; c < cEnd; c++) {                                                          \
            const int *rowStart = lists + (size_t)(c - cBegin) * listInts;                             \
            const int *entries = rowStart + height + 1;                                                \
            const int count = rowStart[height];                                                        \
            if (count == 0) continue;                                                                  \
            for (int ky = 0; ky < kh; ky++) {                                                          \
                for (int kx = 0; kx < kw; kx++) {                                                      \
                    float *accRow = acc + ((size_t)(c * kh + ky) * kw + kx) * outPadded;               \
                    for (int ob = 0; ob < outPadded; ob += 64) {                                       \
                        v8 *d = (v8 *)(accRow + ob);                                                   \
                        v8 a0 = d[0], a1 = d[1], a2 = d[2], a3 = d[3], a4 = d[4], a5 = d[5], a6 = d[6], a7 = d[7]; \
                        if (unit) {                                                                    \
                            const float *g = grad + ob - ((ptrdiff_t)ky * paddedWidth + kx) * outPadded; \
                            for (int j = 0; j < count; j++) ADD_ROW(g + (size_t)entries[j] * outPadded); \
                        } else {                                                                       \
                            for (int oy = 0; oy < outHeight; oy++) {                                   \
                                const int iy = oy * strideH - padH + ky;                               \
                                if (iy < 0 || iy >= height) continue;                                  \
                                const float *g = grad + ((size_t)(oy + top) * paddedWidth + left) * outPadded + ob; \
                                for (int j = rowStart[iy]; j < rowStart[iy + 1]; j++) {                \
                                    const int u = entries[j] + padW - kx;                              \
                                    if (u < 0 || u % strideW != 0 || u / strideW >= outWidth) continue; \
                                    ADD_ROW(g + (size_t)(u / strideW) * outPadded);                    \
                                }                                                                      \
                            }                                                                          \
                        }                                                                              \
                        d[0] = a0; d[1] = a1; d[2] = a2; d[3] = a3; d[4] = a4; d[5] = a5; d[6] = a6; d[7] = a7; \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
        return ones;                                                                                   \
    }

#if defined(__x86_64__)
SPIKE_CONV_WEIGHT_GRAD(spike_conv_weight_grad_avx2, __attribute__((target("avx2"))))
#endif
SPIKE_CONV_WEIGHT_GRAD(spike_conv_weight_grad_base, )

long snn_spike_conv_weight_grad(const float *input, int height, int width, const float *grad, int outPadded,
                                int outHeight, int outWidth, int top, int left, int paddedWidth, int kh, int kw,
                                int strideH, int strideW, int padH, int padW, int cBegin, int cEnd, int *lists,
                                float *acc) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        return spike_conv_weight_grad_avx2(input, height, width, grad, outPadded, outHeight, outWidth, top, left,
                                           paddedWidth, kh, kw, strideH, strideW, padH, padW, cBegin, cEnd, lists, acc);
    }
#endif
    return spike_conv_weight_grad_base(input, height, width, grad, outPadded, outHeight, outWidth, top, left, paddedWidth,
                                       kh, kw, strideH, strideW, padH, padW, cBegin, cEnd, lists, acc);
}
