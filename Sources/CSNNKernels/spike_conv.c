#include "snn_kernels.h"

#include <string.h>

// The packing, defined twice below (AVX2 and the base instruction set): per word of 64
// channels and chunk of `SPIKE_PACK_CHUNK` pixels, each channel's plane is read in order and
// ORs its bit into the chunk's masks, without branching on the values, so the loop over pixels
// vectorises. A value neither 0 nor 1 (NaN included) marks the chunk, and the call returns -1
// at the end of that chunk. (A loop over channels then pixels that branched on each value and
// set bits scattered `words` apart took 4.5 % of a ResNet-19 step's CPU time, `perf record`.)
enum { SPIKE_PACK_CHUNK = 64 };
#define SPIKE_PACK(NAME, ATTRIBUTES)                                                                  \
    ATTRIBUTES static long NAME(const float *input, int channels, int height, int width, uint64_t *bits) { \
        const int words = (channels + 63) / 64;                                                        \
        const size_t plane = (size_t)height * width;                                                   \
        long ones = 0;                                                                                 \
        for (int w = 0; w < words; w++) {                                                              \
            const int count = channels - 64 * w < 64 ? channels - 64 * w : 64;                         \
            for (size_t i0 = 0; i0 < plane; i0 += SPIKE_PACK_CHUNK) {                                  \
                const int n = plane - i0 < SPIKE_PACK_CHUNK ? (int)(plane - i0) : SPIKE_PACK_CHUNK;    \
                uint64_t masks[SPIKE_PACK_CHUNK] = {0};                                                \
                int bad = 0;                                                                           \
                for (int c = 0; c < count; c++) {                                                      \
                    const float *p = input + (size_t)(64 * w + c) * plane + i0;                        \
                    for (int j = 0; j < n; j++) {                                                      \
                        const float v = p[j];                                                          \
                        masks[j] |= (uint64_t)(v == 1.0f) << c;                                        \
                        bad |= (v != 0.0f) & (v != 1.0f);                                              \
                    }                                                                                  \
                }                                                                                      \
                if (bad) return -1;                                                                    \
                for (int j = 0; j < n; j++) {                                                          \
                    bits[(i0 + j) * words + w] = masks[j];                                             \
                    ones += __builtin_popcountll(masks[j]);                                            \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
        return ones;                                                                                   \
    }

SPIKE_PACK(spike_pack_base, )
#if defined(__x86_64__)
SPIKE_PACK(spike_pack_avx2, __attribute__((target("avx2,popcnt"))))
SPIKE_PACK(spike_pack_avx512, __attribute__((target("avx512f,avx512bw,avx512dq,popcnt"))))
#endif

long snn_pack_spikes(const float *input, int channels, int height, int width, uint64_t *bits) {
#if defined(__x86_64__)
    if (snn_kernel_isa() >= SNN_ISA_AVX512) return spike_pack_avx512(input, channels, height, width, bits);
    if (snn_kernel_isa() >= SNN_ISA_AVX2) return spike_pack_avx2(input, channels, height, width, bits);
#endif
    return spike_pack_base(input, channels, height, width, bits);
}

typedef float v8 __attribute__((vector_size(32), aligned(32)));
typedef float v16 __attribute__((vector_size(64), aligned(64)));

/// The rows kernel, defined three times below: for AVX-512, AVX2 and the base instruction set.
/// For each block of 64 output channels, word of 64 input channels and kernel tap, every output
/// pixel of the rows adds the weight row of each set bit (walked with count-trailing-zeros) to
/// 64 channels of accumulators (eight 8-wide vectors, four 16-wide with AVX-512), kept in
/// `scratch` between taps. The weights one block, word and tap read
/// are 64 contiguous rows of 64 floats (16 KB, the layout `[O / 64][kh][kw][C][64]`), which stay
/// in the core's L1 cache while the rows' pixels use them. Two layouts this replaced were 1.4–1.6×
/// slower on VGGSNN's layers (`snn bench ops --conv-channels`): rows `outPadded` floats apart
/// (`[kh][kw][C][O]`), whose 2 KB stride at 512 outputs mapped a block's rows onto a few L1 sets
/// that evicted each other, and a pixel-by-pixel walk over every block and tap.
#define SPIKE_CONV_ROWS(NAME, ATTRIBUTES, VEC)                                                        \
    ATTRIBUTES static void NAME(const uint64_t *bits, size_t sampleWords, int channels, int height,    \
                                int width, const float *weights, const float *bias, int outChannels,   \
                                int outPadded, int kh, int kw, int strideH, int strideW, int padH,     \
                                int padW, int outHeight, int outWidth, long firstRow, int rowCount,    \
                                float *scratch, float *y) {                                            \
        enum { vectors = 64 / (int)(sizeof(VEC) / sizeof(float)) };                                    \
        const int words = (channels + 63) / 64;                                                        \
        const size_t outPlane = (size_t)outHeight * outWidth;                                          \
        for (int ob = 0; ob < outPadded; ob += 64) {                                                   \
            for (int k = 0; k < words; k++) {                                                          \
                for (int ky = 0; ky < kh; ky++) {                                                      \
                    for (int kx = 0; kx < kw; kx++) {                                                  \
                        const int first = k == 0 && ky == 0 && kx == 0;                                \
                        const float *wk = weights + ((size_t)(ob / 64) * kh * kw * channels + (size_t)(ky * kw + kx) * channels + (size_t)k * 64) * 64; \
                        for (int r = 0; r < rowCount; r++) {                                           \
                            const long row = firstRow + r;                                             \
                            const long s = row / outHeight;                                            \
                            const int oy = (int)(row - s * outHeight);                                 \
                            const int iy = oy * strideH - padH + ky;                                   \
                            const int rowInside = iy >= 0 && iy < height;                              \
                            const uint64_t *sample = bits + (size_t)s * sampleWords + k + (size_t)(rowInside ? iy : 0) * width * words; \
                            for (int ox = 0; ox < outWidth; ox++) {                                    \
                                VEC *d = (VEC *)(scratch + ((size_t)r * outWidth + ox) * 64);          \
                                VEC a[vectors];                                                        \
                                for (int v = 0; v < vectors; v++) a[v] = first ? (VEC){0} : d[v];      \
                                const int ix = ox * strideW - padW + kx;                               \
                                uint64_t m = rowInside && ix >= 0 && ix < width ? sample[(size_t)ix * words] : 0; \
                                while (m) {                                                            \
                                    const int c = __builtin_ctzll(m);                                  \
                                    m &= m - 1;                                                        \
                                    const VEC *w = (const VEC *)(wk + (size_t)c * 64);                  \
                                    for (int v = 0; v < vectors; v++) a[v] += w[v];                    \
                                }                                                                      \
                                for (int v = 0; v < vectors; v++) d[v] = a[v];                         \
                            }                                                                          \
                        }                                                                              \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
            const int oEnd = ob + 64 < outChannels ? ob + 64 : outChannels;                            \
            for (int r = 0; r < rowCount; r++) {                                                       \
                const long row = firstRow + r;                                                         \
                const long s = row / outHeight;                                                        \
                const int oy = (int)(row - s * outHeight);                                             \
                const float *src = scratch + (size_t)r * outWidth * 64;                                \
                for (int o = ob; o < oEnd; o++) {                                                      \
                    const float add = bias ? bias[o] : 0.0f;                                           \
                    float *out = y + ((size_t)s * outChannels + o) * outPlane + (size_t)oy * outWidth; \
                    for (int ox = 0; ox < outWidth; ox++) out[ox] = src[(size_t)ox * 64 + (o - ob)] + add; \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    }

#if defined(__x86_64__)
SPIKE_CONV_ROWS(spike_conv_rows_avx512, __attribute__((target("avx512f"))), v16)
SPIKE_CONV_ROWS(spike_conv_rows_avx2, __attribute__((target("avx2"))), v8)
#endif
SPIKE_CONV_ROWS(spike_conv_rows_base, , v8)

void snn_spike_conv_rows(const uint64_t *bits, size_t sampleWords, int channels, int height, int width,
                         const float *weights, const float *bias, int outChannels, int outPadded, int kh, int kw,
                         int strideH, int strideW, int padH, int padW, int outHeight, int outWidth, long firstRow,
                         int rowCount, float *scratch, float *y) {
#if defined(__x86_64__)
    if (snn_kernel_isa() >= SNN_ISA_AVX512) {
        spike_conv_rows_avx512(bits, sampleWords, channels, height, width, weights, bias, outChannels, outPadded, kh, kw,
                               strideH, strideW, padH, padW, outHeight, outWidth, firstRow, rowCount, scratch, y);
        return;
    }
    if (snn_kernel_isa() >= SNN_ISA_AVX2) {
        spike_conv_rows_avx2(bits, sampleWords, channels, height, width, weights, bias, outChannels, outPadded, kh, kw,
                             strideH, strideW, padH, padW, outHeight, outWidth, firstRow, rowCount, scratch, y);
        return;
    }
#endif
    spike_conv_rows_base(bits, sampleWords, channels, height, width, weights, bias, outChannels, outPadded, kh, kw, strideH,
                         strideW, padH, padW, outHeight, outWidth, firstRow, rowCount, scratch, y);
}

void snn_channel_blocks(const float *src, int channels, int height, int width, int padded, int top, int left,
                        int paddedHeight, int paddedWidth, float *dst) {
    const size_t plane = (size_t)height * width, block = (size_t)paddedHeight * paddedWidth * 64;
    for (int cb = 0; cb < padded; cb += 64) {
        float *blockDst = dst + (size_t)(cb / 64) * block;
        const int cEnd = cb + 64 < channels ? cb + 64 : channels;
        for (int y = 0; y < paddedHeight; y++) {
            float *row = blockDst + (size_t)y * paddedWidth * 64;
            const int iy = y - top;
            if (iy < 0 || iy >= height) {
                memset(row, 0, (size_t)paddedWidth * 64 * sizeof(float));
                continue;
            }
            memset(row, 0, (size_t)left * 64 * sizeof(float));
            const int right = paddedWidth - left - width;
            if (right > 0) memset(row + (size_t)(left + width) * 64, 0, (size_t)right * 64 * sizeof(float));
            // Blocks of 16 columns: the reads are runs of 16, the writes stay within 16 rows of dst.
            for (int x0 = 0; x0 < width; x0 += 16) {
                const int x1 = x0 + 16 < width ? x0 + 16 : width;
                for (int c = cb; c < cEnd; c++) {
                    const float *s = src + (size_t)c * plane + (size_t)iy * width;
                    for (int x = x0; x < x1; x++) row[(size_t)(left + x) * 64 + (c - cb)] = s[x];
                }
                if (cEnd < cb + 64) {
                    for (int x = x0; x < x1; x++) {
                        for (int c = cEnd; c < cb + 64; c++) row[(size_t)(left + x) * 64 + (c - cb)] = 0.0f;
                    }
                }
            }
        }
    }
}

#define ADD_ROW(VEC, R)                                                                                \
    do {                                                                                               \
        const VEC *r_ = (const VEC *)(R);                                                              \
        for (int v_ = 0; v_ < vectors; v_++) a[v_] += r_[v_];                                          \
    } while (0)

/// The weight-gradient kernel, defined three times below like the row kernel. Each input channel's
/// ones are first listed (without branches on the values, which are unpredictable): as their
/// positions in the bordered gradient for stride 1, where every tap of every one then reads a
/// gradient row (zero in the border) at a fixed offset, so the inner loop has no branch; as
/// columns per row for other strides, which check each tap. Each tap keeps 64 output channels of
/// its sums in eight 8-wide accumulators (four 16-wide with AVX-512) and adds one gradient row
/// per one, in row-major order.
/// The gradient comes in blocks of 64 channels (``snn_channel_blocks``), its rows 256 bytes
/// apart, and blocks are the outer loop, so one block's sample (50–640 KB for VGGSNN's layers)
/// serves every input channel from the caches; rows `outPadded` floats apart, 2 KB at 512
/// outputs, had mapped onto a few L1 sets.
#define SPIKE_CONV_WEIGHT_GRAD(NAME, ATTRIBUTES, VEC)                                                  \
    ATTRIBUTES static long NAME(const float *input, int height, int width, const float *grad,          \
                                int outPadded, int outHeight, int outWidth, int top, int left,         \
                                int paddedHeight, int paddedWidth, int kh, int kw, int strideH,        \
                                int strideW, int padH, int padW, int cBegin, int cEnd, int *lists,     \
                                float *acc) {                                                          \
        enum { vectors = 64 / (int)(sizeof(VEC) / sizeof(float)) };                                    \
        const size_t plane = (size_t)height * width, listInts = plane + height + 1;                    \
        const size_t block = (size_t)paddedHeight * paddedWidth * 64;                                  \
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
        for (int ob = 0; ob < outPadded; ob += 64) {                                                   \
            const float *gb = grad + (size_t)(ob / 64) * block;                                        \
            for (int c = cBegin; c < cEnd; c++) {                                                      \
                const int *rowStart = lists + (size_t)(c - cBegin) * listInts;                         \
                const int *entries = rowStart + height + 1;                                            \
                const int count = rowStart[height];                                                    \
                if (count == 0) continue;                                                              \
                for (int ky = 0; ky < kh; ky++) {                                                      \
                    for (int kx = 0; kx < kw; kx++) {                                                  \
                        VEC *d = (VEC *)(acc + ((size_t)(c * kh + ky) * kw + kx) * outPadded + ob);    \
                        VEC a[vectors];                                                                \
                        for (int v = 0; v < vectors; v++) a[v] = d[v];                                 \
                        if (unit) {                                                                    \
                            const float *g = gb - ((ptrdiff_t)ky * paddedWidth + kx) * 64;             \
                            for (int j = 0; j < count; j++) ADD_ROW(VEC, g + (size_t)entries[j] * 64); \
                        } else {                                                                       \
                            for (int oy = 0; oy < outHeight; oy++) {                                   \
                                const int iy = oy * strideH - padH + ky;                               \
                                if (iy < 0 || iy >= height) continue;                                  \
                                const float *g = gb + ((size_t)(oy + top) * paddedWidth + left) * 64;  \
                                for (int j = rowStart[iy]; j < rowStart[iy + 1]; j++) {                \
                                    const int u = entries[j] + padW - kx;                              \
                                    if (u < 0 || u % strideW != 0 || u / strideW >= outWidth) continue; \
                                    ADD_ROW(VEC, g + (size_t)(u / strideW) * 64);                      \
                                }                                                                      \
                            }                                                                          \
                        }                                                                              \
                        for (int v = 0; v < vectors; v++) d[v] = a[v];                                 \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
        return ones;                                                                                   \
    }

#if defined(__x86_64__)
SPIKE_CONV_WEIGHT_GRAD(spike_conv_weight_grad_avx512, __attribute__((target("avx512f"))), v16)
SPIKE_CONV_WEIGHT_GRAD(spike_conv_weight_grad_avx2, __attribute__((target("avx2"))), v8)
#endif
SPIKE_CONV_WEIGHT_GRAD(spike_conv_weight_grad_base, , v8)

long snn_spike_conv_weight_grad(const float *input, int height, int width, const float *grad, int outPadded,
                                int outHeight, int outWidth, int top, int left, int paddedHeight, int paddedWidth,
                                int kh, int kw, int strideH, int strideW, int padH, int padW, int cBegin, int cEnd,
                                int *lists, float *acc) {
#if defined(__x86_64__)
    if (snn_kernel_isa() >= SNN_ISA_AVX512) {
        return spike_conv_weight_grad_avx512(input, height, width, grad, outPadded, outHeight, outWidth, top, left,
                                             paddedHeight, paddedWidth, kh, kw, strideH, strideW, padH, padW, cBegin, cEnd,
                                             lists, acc);
    }
    if (snn_kernel_isa() >= SNN_ISA_AVX2) {
        return spike_conv_weight_grad_avx2(input, height, width, grad, outPadded, outHeight, outWidth, top, left,
                                           paddedHeight, paddedWidth, kh, kw, strideH, strideW, padH, padW, cBegin, cEnd, lists, acc);
    }
#endif
    return spike_conv_weight_grad_base(input, height, width, grad, outPadded, outHeight, outWidth, top, left, paddedHeight,
                                       paddedWidth, kh, kw, strideH, strideW, padH, padW, cBegin, cEnd, lists, acc);
}
