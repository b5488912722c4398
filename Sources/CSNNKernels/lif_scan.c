// The LIF scan fused with batch norm's affine map, forward and backward, for one block of
// neurons (see CPUBackend+BatchNormNeuronScan.swift, which splits the neurons into blocks and
// prepares each block's per-neuron constants). The same arithmetic as the reference backend's
// scan, operation for operation and without fused multiply-adds, in vectors as wide as the CPU
// has: AVX-512, AVX2 or SSE2.

#include "snn_kernels.h"

#include <string.h>

#pragma clang fp contract(off)

typedef float lif_vec4 __attribute__((vector_size(16), aligned(4)));
typedef int lif_ivec4 __attribute__((vector_size(16), aligned(4)));
typedef float lif_vec8 __attribute__((vector_size(32), aligned(4)));
typedef int lif_ivec8 __attribute__((vector_size(32), aligned(4)));
typedef float lif_vec16 __attribute__((vector_size(64), aligned(4)));
typedef int lif_ivec16 __attribute__((vector_size(64), aligned(4)));

// `rest` floats of `p` into a vector, zeros after (a block's last, partial vector), and back.
#define LIF_LOAD(vec, p, rest)                                                                     \
    ({                                                                                            \
        vec v_ = {0};                                                                             \
        if ((rest) == (int)(sizeof(vec) / sizeof(float))) v_ = *(const vec *)(p);                 \
        else memcpy(&v_, (p), (size_t)(rest) * sizeof(float));                                    \
        v_;                                                                                       \
    })
#define LIF_STORE(vec, p, value, rest)                                                             \
    do {                                                                                          \
        vec v_ = (value);                                                                         \
        if ((rest) == (int)(sizeof(vec) / sizeof(float))) *(vec *)(p) = v_;                      \
        else memcpy((p), &v_, (size_t)(rest) * sizeof(float));                                    \
    } while (0)

// 1 where `mask` is set (all bits), 0 elsewhere; `|u|`; `max(d, 0)` with NaN passing through.
#define LIF_ONES(vec, ivec, mask) ((vec)((ivec)(mask) & 0x3f800000))
#define LIF_MAGNITUDE(vec, ivec, u) ((vec)((ivec)(u) & 0x7fffffff))
#define LIF_NOT_BELOW_ZERO(vec, ivec, d) ((vec)((ivec)(d) & ~(ivec)((d) < 0)))

// e^x for x <= 0: the steps of SNNCPU's expNonPositive (Cody-Waite reduction, degree-5
// polynomial, 2^k in the exponent bits), so the sigmoid surrogate gives the same bits.
#define LIF_EXP_NON_POSITIVE(vec, ivec, x)                                                         \
    ({                                                                                            \
        const float magic_ = 12582912.0f;                                                         \
        vec x_ = (x);                                                                             \
        vec y_ = (vec)(((ivec)(x_ < -87.0f) & (ivec)((vec){0} + -87.0f)) | (~(ivec)(x_ < -87.0f) & (ivec)x_)); \
        vec t_ = y_ * 1.44269504f + magic_;                                                       \
        vec k_ = t_ - magic_;                                                                     \
        vec r_ = (y_ - k_ * 0.693145752f) - k_ * 1.42860677e-6f;                                  \
        vec p_ = (vec){0} + 0.0082615325f;                                                        \
        p_ = p_ * r_ + 0.041898753f;                                                              \
        p_ = p_ * r_ + 0.16668114f;                                                               \
        p_ = p_ * r_ + 0.49999142f;                                                               \
        p_ = p_ * r_ + 0.99999952f;                                                               \
        p_ = p_ * r_ + 1.0f;                                                                      \
        ivec bits_ = (((ivec)t_ - (ivec)((vec){0} + magic_)) + 127) << 23;                        \
        p_ * (vec)bits_;                                                                          \
    })

// g(h − v_th) of the chosen surrogate.
#define LIF_SURROGATE(vec, ivec, lif, u)                                                           \
    ({                                                                                            \
        vec g_;                                                                                   \
        vec m_ = LIF_MAGNITUDE(vec, ivec, (u));                                                   \
        if ((lif)->surrogate == SNN_SURROGATE_TRIANGLE) {                                         \
            vec d_ = (lif)->surrogateA - m_;                                                      \
            g_ = LIF_NOT_BELOW_ZERO(vec, ivec, d_) * (lif)->surrogateB;                            \
        } else if ((lif)->surrogate == SNN_SURROGATE_SIGMOID) {                                   \
            vec e_ = LIF_EXP_NON_POSITIVE(vec, ivec, m_ * -(lif)->surrogateA);                    \
            vec d_ = 1.0f + e_;                                                                   \
            g_ = (lif)->surrogateA * e_ / (d_ * d_);                                              \
        } else {                                                                                  \
            g_ = (vec)((ivec)(m_ < (lif)->surrogateA) & (ivec)((vec){0} + (lif)->surrogateB));     \
        }                                                                                         \
        g_;                                                                                       \
    })

// v after the spike: hard, (1 − s) h + s v_reset; soft, h − s v_th.
#define LIF_RESET(lif, h, s) ((lif)->softReset ? (h) - (s) * (lif)->threshold : (1.0f - (s)) * (h) + (s) * (lif)->vReset)

#define LIF_FORWARD(name, attributes, vec, ivec)                                                                  \
    static attributes void name(const snn_lif *lif, int steps, long stride, int count, const float *scale,        \
                                const float *shift, float *state, const float *y, const float *residual,          \
                                float *spikes) {                                                                  \
        enum { lanes = (int)(sizeof(vec) / sizeof(float)) };                                                      \
        for (int t = 0; t < steps; t++) {                                                                         \
            const float *yt = y + t * stride, *rt = residual ? residual + t * stride : NULL;                      \
            float *st = spikes + t * stride;                                                                      \
            for (int i = 0; i < count; i += lanes) {                                                              \
                const int rest = count - i < lanes ? count - i : lanes;                                           \
                vec input = LIF_LOAD(vec, yt + i, rest) * *(const vec *)(scale + i) + *(const vec *)(shift + i);  \
                if (rt) input = input + LIF_LOAD(vec, rt + i, rest);                                              \
                vec h = *(vec *)(state + i) * lif->decay + input;                                                 \
                vec s = LIF_ONES(vec, ivec, h > lif->bound);                                                      \
                LIF_STORE(vec, st + i, s, rest);                                                                  \
                *(vec *)(state + i) = LIF_RESET(lif, h, s);                                                       \
            }                                                                                                     \
        }                                                                                                         \
    }

#define LIF_BACKWARD(name, attributes, vec, ivec)                                                                 \
    static attributes void name(const snn_lif *lif, int steps, long stride, int count, const float *scale,        \
                                const float *shift, const float *mean, const float *invstd, float *state,         \
                                float *scratch, const float *y, const float *residual, const float *gradSpikes,   \
                                float *gradInput, float *gradResidual, float *sumGrad, float *sumGradNormalized) {\
        enum { lanes = (int)(sizeof(vec) / sizeof(float)) };                                                      \
        const int width = (count + lanes - 1) / lanes * lanes;                                                    \
        /* Forward again: the potentials h_t into scratch (lanes past count hold zeros' h). */                    \
        for (int t = 0; t < steps; t++) {                                                                         \
            const float *yt = y + t * stride, *rt = residual ? residual + t * stride : NULL;                      \
            float *ht = scratch + (size_t)t * width;                                                              \
            for (int i = 0; i < count; i += lanes) {                                                              \
                const int rest = count - i < lanes ? count - i : lanes;                                           \
                vec input = LIF_LOAD(vec, yt + i, rest) * *(const vec *)(scale + i) + *(const vec *)(shift + i);  \
                if (rt) input = input + LIF_LOAD(vec, rt + i, rest);                                              \
                vec h = *(vec *)(state + i) * lif->decay + input;                                                 \
                *(vec *)(ht + i) = h;                                                                             \
                *(vec *)(state + i) = LIF_RESET(lif, h, LIF_ONES(vec, ivec, h > lif->bound));                     \
            }                                                                                                     \
        }                                                                                                         \
        /* Backward through time; state now holds dL/dv. */                                                       \
        memset(state, 0, (size_t)width * sizeof(float));                                                          \
        memset(sumGrad, 0, (size_t)width * sizeof(float));                                                        \
        memset(sumGradNormalized, 0, (size_t)width * sizeof(float));                                              \
        for (int t = steps - 1; t >= 0; t--) {                                                                    \
            const float *yt = y + t * stride, *gst = gradSpikes + t * stride, *ht = scratch + (size_t)t * width;  \
            float *gxt = gradInput + t * stride, *grt = gradResidual ? gradResidual + t * stride : NULL;          \
            for (int i = 0; i < count; i += lanes) {                                                              \
                const int rest = count - i < lanes ? count - i : lanes;                                           \
                const vec h = *(const vec *)(ht + i);                                                             \
                const vec g = LIF_SURROGATE(vec, ivec, lif, h - lif->threshold);                                  \
                const vec s = LIF_ONES(vec, ivec, h > lif->bound);                                                \
                const vec derivative = lif->softReset ? 1.0f - g * lif->threshold                                 \
                                                      : (1.0f - s) + (lif->vReset - h) * g;                       \
                const vec gradH = LIF_LOAD(vec, gst + i, rest) * g + *(vec *)(state + i) * derivative;            \
                *(vec *)(state + i) = gradH * lif->decay;                                                         \
                *(vec *)(sumGrad + i) += gradH;                                                                   \
                const vec xhat = (LIF_LOAD(vec, yt + i, rest) - *(const vec *)(mean + i)) * *(const vec *)(invstd + i); \
                *(vec *)(sumGradNormalized + i) += gradH * xhat;                                                  \
                LIF_STORE(vec, gxt + i, gradH, rest);                                                             \
                if (grt) LIF_STORE(vec, grt + i, gradH, rest);                                                    \
            }                                                                                                     \
        }                                                                                                         \
    }

#if defined(__x86_64__)
#define LIF_AVX2_TARGET __attribute__((target("avx2")))
#define LIF_AVX512_TARGET __attribute__((target("avx512f")))
LIF_FORWARD(lif_forward_avx512, LIF_AVX512_TARGET, lif_vec16, lif_ivec16)
LIF_FORWARD(lif_forward_avx2, LIF_AVX2_TARGET, lif_vec8, lif_ivec8)
LIF_BACKWARD(lif_backward_avx512, LIF_AVX512_TARGET, lif_vec16, lif_ivec16)
LIF_BACKWARD(lif_backward_avx2, LIF_AVX2_TARGET, lif_vec8, lif_ivec8)
#endif
LIF_FORWARD(lif_forward_base, , lif_vec4, lif_ivec4)
LIF_BACKWARD(lif_backward_base, , lif_vec4, lif_ivec4)

void snn_affine_lif_forward(const snn_lif *lif, int steps, long stride, int count, const float *scale,
                            const float *shift, float *state, const float *y, const float *residual, float *spikes) {
#if defined(__x86_64__)
    const int isa = snn_kernel_isa();
    if (isa >= SNN_ISA_AVX512) {
        lif_forward_avx512(lif, steps, stride, count, scale, shift, state, y, residual, spikes);
        return;
    }
    if (isa >= SNN_ISA_AVX2) {
        lif_forward_avx2(lif, steps, stride, count, scale, shift, state, y, residual, spikes);
        return;
    }
#endif
    lif_forward_base(lif, steps, stride, count, scale, shift, state, y, residual, spikes);
}

void snn_affine_lif_backward(const snn_lif *lif, int steps, long stride, int count, const float *scale,
                             const float *shift, const float *mean, const float *invstd, float *state, float *scratch,
                             const float *y, const float *residual, const float *gradSpikes, float *gradInput,
                             float *gradResidual, float *sumGrad, float *sumGradNormalized) {
#if defined(__x86_64__)
    const int isa = snn_kernel_isa();
    if (isa >= SNN_ISA_AVX512) {
        lif_backward_avx512(lif, steps, stride, count, scale, shift, mean, invstd, state, scratch, y, residual,
                            gradSpikes, gradInput, gradResidual, sumGrad, sumGradNormalized);
        return;
    }
    if (isa >= SNN_ISA_AVX2) {
        lif_backward_avx2(lif, steps, stride, count, scale, shift, mean, invstd, state, scratch, y, residual,
                          gradSpikes, gradInput, gradResidual, sumGrad, sumGradNormalized);
        return;
    }
#endif
    lif_backward_base(lif, steps, stride, count, scale, shift, mean, invstd, state, scratch, y, residual, gradSpikes,
                      gradInput, gradResidual, sumGrad, sumGradNormalized);
}
