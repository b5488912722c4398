#ifndef SNN_KERNELS_H
#define SNN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Kernels of SwiftSNN's CPU backend written in C, compiled with optimisation in every build
/// (debug included) and with an AVX2 variant chosen at run time.

/// Packs `channels` planes of `height × width` binary values (0 or 1, float32, NCHW order for
/// one sample) into one bit mask per pixel: `bits[(y·width + x)·words + k]` holds channels
/// 64k … 64k+63, `words = ceil(channels / 64)`. Returns the number of ones, or -1 when a value
/// is neither 0 nor 1 (then `bits` holds nothing of use).
long snn_pack_spikes(const float *input, int channels, int height, int width, uint64_t *bits);

/// One output row of a convolution whose input is binary (spikes), from packed bits: for every
/// output column `ox` and output channel `o`,
/// `row[o·outWidth + ox] = bias[o] + Σ_{ky, kx, c : input(c, iy, ix) = 1} weights[((ky·kw + kx)·channels + c)·outPadded + o]`
/// with `iy = oy·strideH − padH + ky`, `ix = ox·strideW − padW + kx`, the terms added in the
/// order ky, kx, c (so the result does not depend on threads). `weights` is `[kh][kw][C][outPadded]`,
/// `outPadded` a multiple of 64, 32-byte aligned, zero beyond `outChannels`; `bias` may be NULL.
/// `scratch` holds `outWidth · outPadded` floats, 32-byte aligned.
void snn_spike_conv_row(const uint64_t *bits, int channels, int height, int width,
                        const float *weights, const float *bias, int outChannels, int outPadded,
                        int kh, int kw, int strideH, int strideW, int padH, int padW,
                        int oy, int outWidth, float *scratch, float *row, size_t rowStride);

#endif
