#include "snn_kernels.h"

#include <string.h>

// Average pooling over non-overlapping windows (stride = kernel, no padding), the pooling of
// VGG-style SNNs. Both passes are one sweep over memory; the 2×2 case, by far the commonest,
// has its own loop so that the compiler vectorises it (stride-2 loads become shuffles).

#define WINDOW_POOL_FORWARD(NAME, TARGET)                                                                   \
    TARGET static void NAME(const float *x, size_t planes, int height, int width, int kh, int kw, float *y) { \
        const int outHeight = height / kh, outWidth = width / kw;                                            \
        const float divisor = (float)(kh * kw);                                                              \
        for (size_t p = 0; p < planes; p++) {                                                                \
            const float *plane = x + p * (size_t)height * width;                                             \
            float *out = y + p * (size_t)outHeight * outWidth;                                               \
            for (int oy = 0; oy < outHeight; oy++) {                                                         \
                const float *r0 = plane + (size_t)oy * kh * width;                                           \
                float *o = out + (size_t)oy * outWidth;                                                      \
                if (kh == 2 && kw == 2) {                                                                    \
                    const float *r1 = r0 + width;                                                            \
                    for (int ox = 0; ox < outWidth; ox++) {                                                  \
                        o[ox] = (((r0[2 * ox] + r0[2 * ox + 1]) + r1[2 * ox]) + r1[2 * ox + 1]) / 4.0f;      \
                    }                                                                                        \
                    continue;                                                                                \
                }                                                                                            \
                for (int ox = 0; ox < outWidth; ox++) {                                                      \
                    float sum = 0.0f;                                                                        \
                    for (int i = 0; i < kh; i++) {                                                           \
                        const float *r = r0 + (size_t)i * width + (size_t)ox * kw;                           \
                        for (int j = 0; j < kw; j++) sum += r[j];                                            \
                    }                                                                                        \
                    o[ox] = sum / divisor;                                                                   \
                }                                                                                            \
            }                                                                                                \
        }                                                                                                    \
    }

#define WINDOW_POOL_BACKWARD(NAME, TARGET)                                                                        \
    TARGET static void NAME(const float *gy, size_t planes, int height, int width, int kh, int kw, float *gx) {  \
        const int outHeight = height / kh, outWidth = width / kw;                                                 \
        const float divisor = (float)(kh * kw);                                                                   \
        for (size_t p = 0; p < planes; p++) {                                                                     \
            const float *g = gy + p * (size_t)outHeight * outWidth;                                               \
            float *plane = gx + p * (size_t)height * width;                                                       \
            for (int y = 0; y < outHeight * kh; y++) {                                                            \
                const float *gr = g + (size_t)(y / kh) * outWidth;                                                \
                float *r = plane + (size_t)y * width;                                                             \
                if (kw == 2) {                                                                                    \
                    for (int ox = 0; ox < outWidth; ox++) {                                                       \
                        const float v = gr[ox] / divisor;                                                         \
                        r[2 * ox] = v;                                                                            \
                        r[2 * ox + 1] = v;                                                                        \
                    }                                                                                             \
                } else {                                                                                          \
                    for (int ox = 0; ox < outWidth; ox++) {                                                       \
                        const float v = gr[ox] / divisor;                                                         \
                        for (int j = 0; j < kw; j++) r[ox * kw + j] = v;                                          \
                    }                                                                                             \
                }                                                                                                 \
                /* Columns past the last whole window get no gradient (the floor output size). */                 \
                for (int x = outWidth * kw; x < width; x++) r[x] = 0.0f;                                          \
            }                                                                                                     \
            /* Rows past the last whole window likewise. */                                                       \
            memset(plane + (size_t)outHeight * kh * width, 0, (size_t)(height - outHeight * kh) * width * sizeof(float)); \
        }                                                                                                         \
    }

#if defined(__x86_64__)
WINDOW_POOL_FORWARD(window_pool_forward_avx2, __attribute__((target("avx2"))))
WINDOW_POOL_BACKWARD(window_pool_backward_avx2, __attribute__((target("avx2"))))
#endif
WINDOW_POOL_FORWARD(window_pool_forward_base, )
WINDOW_POOL_BACKWARD(window_pool_backward_base, )

void snn_window_avg_pool(const float *x, size_t planes, int height, int width, int kh, int kw, float *y) {
#if defined(__x86_64__)
    if (snn_kernel_isa() >= SNN_ISA_AVX2) {
        window_pool_forward_avx2(x, planes, height, width, kh, kw, y);
        return;
    }
#endif
    window_pool_forward_base(x, planes, height, width, kh, kw, y);
}

void snn_window_avg_pool_backward(const float *gy, size_t planes, int height, int width, int kh, int kw, float *gx) {
#if defined(__x86_64__)
    if (snn_kernel_isa() >= SNN_ISA_AVX2) {
        window_pool_backward_avx2(gy, planes, height, width, kh, kw, gx);
        return;
    }
#endif
    window_pool_backward_base(gy, planes, height, width, kh, kw, gx);
}
