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

/// Output rows `firstRow ..< firstRow + rowCount` (row `r` being sample `r / outHeight`, output
/// row `r % outHeight`) of a convolution whose input is binary (spikes), from packed bits: for
/// every output column `ox` and output channel `o`,
/// `y[((s·outChannels + o)·outHeight + oy)·outWidth + ox] = bias[o] + Σ weights[(((o / 64)·kh·kw + ky·kw + kx)·channels + c)·64 + o % 64]`
/// over the ones `input(s, c, iy, ix) = 1` with `iy = oy·strideH − padH + ky`,
/// `ix = ox·strideW − padW + kx`, added per word of 64 channels (`c / 64`), then tap `(ky, kx)`,
/// then channel, so a pixel's result does not depend on which rows share a call (nor on threads).
/// `bits` holds each sample's `[height][width][⌈channels / 64⌉]` words, `sampleWords` apart.
/// `weights` is `[outPadded / 64][kh][kw][C][64]`, `outPadded` a multiple of 64, 32-byte aligned,
/// zero beyond `outChannels`; `bias` may be NULL. `scratch` holds `rowCount · outWidth · 64` floats,
/// 32-byte aligned.
void snn_spike_conv_rows(const uint64_t *bits, size_t sampleWords, int channels, int height, int width,
                         const float *weights, const float *bias, int outChannels, int outPadded, int kh, int kw,
                         int strideH, int strideW, int padH, int padW, int outHeight, int outWidth, long firstRow,
                         int rowCount, float *scratch, float *y);

/// Copies `channels` planes of `height × width` floats (`src[(c·height + y)·width + x]`) to blocks
/// of 64 channels, each channels-last inside a zero border:
/// `dst[(((c / 64)·paddedHeight + top + y)·paddedWidth + left + x)·64 + c % 64]`, `padded / 64`
/// blocks of `paddedHeight × paddedWidth` pixels, zero outside the copy and for
/// `channels ≤ c < padded` (`padded` a multiple of 64).
void snn_channel_blocks(const float *src, int channels, int height, int width, int padded, int top, int left,
                        int paddedHeight, int paddedWidth, float *dst);

/// The weight gradient of a convolution whose input is binary (spikes), one sample, input
/// channels `cBegin ..< cEnd`: for every tap `(ky, kx)` and output channel `o`,
/// `acc[((c·kh + ky)·kw + kx)·outPadded + o] += Σ dY(o, oy, ox)` over the input's ones
/// `(c, iy, ix)` with `iy + padH − ky = oy·strideH` and `ix + padW − kx = ox·strideW` inside the
/// `outHeight × outWidth` output, the terms added in row-major order of `(iy, ix)` (so the result
/// does not depend on threads).
///
/// `input` is the sample's `[C][height][width]`. `grad` is its output gradient from
/// ``snn_channel_blocks``:
/// `dY(o, oy, ox) = grad[(((o / 64)·paddedHeight + top + oy)·paddedWidth + left + ox)·64 + o % 64]`,
/// `outPadded` a multiple of 64, 32-byte aligned as is `acc`. For stride 1 the border must hold
/// every position a tap reaches, `top ≥ kh − 1 − padH`, `left ≥ kw − 1 − padW`, and rows and
/// columns up to `height + padH` and `width + padW`: the kernel then reads without checks.
/// `lists` holds `(cEnd − cBegin)·(height·width + height + 1)` ints of scratch. Returns the number
/// of ones, or -1 when a value is neither 0 nor 1 (then `acc` holds nothing of use).
long snn_spike_conv_weight_grad(const float *input, int height, int width, const float *grad, int outPadded,
                                int outHeight, int outWidth, int top, int left, int paddedHeight, int paddedWidth,
                                int kh, int kw, int strideH, int strideW, int padH, int padW, int cBegin, int cEnd,
                                int *lists, float *acc);

/// Average pooling over non-overlapping `kh × kw` windows (stride = kernel, no padding) of
/// `planes` planes of `height × width` floats: `y` holds `planes` planes of
/// `(height / kh) × (width / kw)`, each the window's sum in row-major order divided by `kh·kw`;
/// rows and columns past the last whole window are not read.
void snn_window_avg_pool(const float *x, size_t planes, int height, int width, int kh, int kw, float *y);

/// The gradient of ``snn_window_avg_pool``: `gx` (`planes` planes of `height × width`) gets
/// `gy / (kh·kw)` over each window, zero in rows and columns past the last whole window.
void snn_window_avg_pool_backward(const float *gy, size_t planes, int height, int width, int kh, int kw, float *gx);

/// The instruction-set variants of SwiftSNN's kernels.
enum { SNN_ISA_BASE = 0, SNN_ISA_AVX2 = 1, SNN_ISA_AVX512 = 2 };

/// The variant every kernel runs: the best this CPU has (AVX2 needs FMA too), capped by the
/// environment variable `SNN_MAX_CPU_ISA` (`avx512`, `avx2` or `base`; anything else is ignored),
/// read on the first call.
int snn_kernel_isa(void);

/// Winograd F(4×4, 3×3) for 3×3 convolutions of stride 1 and padding 1 (output the input's size).
/// The output is cut into 4×4 tiles, numbered across images `n·tilesH·tilesW + ty·tilesW + tx`
/// (`tilesH = ceil(height / 4)`, `tilesW = ceil(width / 4)`); a call takes at most
/// `SNN_WINOGRAD_MAX_TILES` of them (`count`). The caller transforms the filters
/// once, each run of `count` tiles' inputs, multiplies (36 GEMMs `M[e] = U[e] · V[e]`, `[K × C]`
/// by `[C × count]`) and transforms the products back.
#define SNN_WINOGRAD_MAX_TILES 256

/// The filters' transforms `u[e][k][c]` (36 elements by `outChannels` by `inChannels`) for output
/// channels `kBegin ..< kEnd`, rounded once from double, packed for ``snn_winograd_multiply``: per
/// element, blocks of 6 output channels (the last one padded with zeros), each block
/// `[inChannels][6]`; 36 · `roundUp(outChannels, 6)` · `inChannels` floats in all. `weights` is
/// `[outChannels][inChannels][3][3]`, or with `transposeFlip` (the data gradient, a convolution of
/// the output gradient by the transposed, turned filters) `[inChannels][outChannels][3][3]` read
/// as `g(k, c)[i][j] = weights[c][k][2 − i][2 − j]`.
void snn_winograd_filter(const float *weights, int outChannels, int inChannels, int transposeFlip, int kBegin,
                         int kEnd, float *u);

/// The floats ``snn_winograd_filter`` writes for all output channels: 36 · `roundUp(outChannels, 6)` ·
/// `inChannels`.
size_t snn_winograd_filter_floats(int outChannels, int inChannels);

/// The input transforms `v[e][c][p]` (36 × `channels` planes, rows of `ld ≥ count` floats) of
/// tiles `first ..< first + count` of `x` (images of `[channels][height][width]`, zero outside),
/// for channels `cBegin ..< cEnd`. `scratch` holds `72·count` floats.
void snn_winograd_input(const float *x, int channels, int cBegin, int cEnd, int height, int width, long first,
                        int count, int ld, float *v, float *scratch);

/// The products `m[e] = u[e] · v[e]` (`[outChannels × inChannels]` by `[inChannels × count]`) of
/// one run, `u` packed by ``snn_winograd_filter``, `v` and `m` rows of `ld` floats, `ld` at
/// least `count` rounded up to 32 (the AVX-512 variant's block; 16 elsewhere): columns `count ..<`
/// that of `v` are zeroed first (and those of `m` get zeros). Each sum runs over input channels
/// in order, one multiply-add per term.
void snn_winograd_multiply(const float *u, float *v, int outChannels, int inChannels, int count, int ld, float *m);

/// For the weight gradient: the transforms `g[e][k][p] = (A dY Aᵀ)[e]` (36 × `channels` ×
/// `count`) of the output gradient's 4×4 tiles `first ..< first + count` (images of
/// `[channels][height][width]`, zero past the image), for channels `kBegin ..< kEnd`, `A` being
/// `Aᵀ` transposed. `scratch` holds `40·count` floats. With `m[e] = Σ_tiles g[e] · v[e]ᵀ`
/// (`[K × C]`), ``snn_winograd_filter_gradient`` gives the weight gradient.
void snn_winograd_gradient(const float *gy, int channels, int kBegin, int kEnd, int height, int width, long first,
                           int count, float *g, float *scratch);

/// The weight gradient's products of one element over a step of `count` tiles:
/// `m[k][c] = Σ_p g[k][p] · v[c][p]`, added to `m` with `accumulate` (`g` `[outChannels][count]`
/// from ``snn_winograd_gradient``, `v` `[inChannels][count]` from ``snn_winograd_input``, `m`
/// `[outChannels][inChannels]`). Each sum runs over the tiles in order, one multiply-add per term,
/// then is added to `m` once. `pack` holds ``snn_winograd_gradient_pack_floats``(`count`) floats,
/// 64-byte aligned.
void snn_winograd_multiply_gradient(const float *g, const float *v, int outChannels, int inChannels, int count,
                                    int accumulate, float *m, float *pack);

/// The scratch floats ``snn_winograd_multiply_gradient`` packs a step of `count` tiles into.
size_t snn_winograd_gradient_pack_floats(int count);

/// The weight gradient `gw[k][c][3][3] = Gᵀ m[·][k][c] G` (in double, rounded once) for output
/// channels `kBegin ..< kEnd`, from the summed products `m[e][k][c]` (36 × `outChannels` ×
/// `inChannels`).
void snn_winograd_filter_gradient(const float *m, int outChannels, int inChannels, int kBegin, int kEnd, float *gw);

/// Writes tiles `first ..< first + count` of `y` (images of `[channels][height][width]`) from the
/// products `m[e][k][p]` (36 × `channels` planes, rows of `ld` floats), adding `bias[k]` (may be
/// NULL); tiles' rows and columns past the image are dropped. `scratch` holds `40·count` floats.
void snn_winograd_output(const float *m, int channels, int height, int width, long first, int count, int ld,
                         const float *bias, float *y, float *scratch);

/// `y[i] = x[i]` as uint8: truncated toward zero and saturated to 0 … 255, NaN giving 0.
void snn_saturate_f32_u8(const float *x, uint8_t *y, size_t count);

/// The surrogate derivatives of the LIF scan's backward pass.
enum { SNN_SURROGATE_TRIANGLE = 0, SNN_SURROGATE_SIGMOID = 1, SNN_SURROGATE_RECTANGLE = 2 };

/// The LIF neuron's float32 constants: `decay`; `bound`, the largest float ≤ v_th (a spike is
/// `h > bound`); `threshold`, v_th rounded (the surrogate's argument `h − threshold`, and what a
/// soft reset subtracts); `vReset` for a hard reset; the surrogate and its constants (triangle:
/// γ and 1/γ²; sigmoid: α; rectangle: half the width and 1/width).
typedef struct {
    float decay, bound, threshold, vReset;
    int softReset, surrogate;
    float surrogateA, surrogateB;
} snn_lif;

/// Batch norm's affine map and the LIF scan over `steps` time steps for one block of `count`
/// neurons (at most 512): the input at step t is `y[t·stride + i]·scale[i] + shift[i]` (plus
/// `residual[t·stride + i]` when not NULL), the spikes (0 or 1) go to `spikes[t·stride + i]`.
/// `scale`, `shift` and `state` hold `count` floats rounded up to 16, zero past `count`; `state`
/// starts at zero and ends as the membrane potential.
void snn_affine_lif_forward(const snn_lif *lif, int steps, long stride, int count, const float *scale,
                            const float *shift, float *state, const float *y, const float *residual, float *spikes);

/// The backward pass of ``snn_affine_lif_forward`` for the same block: recomputes the potentials
/// into `scratch` (`steps` × `count` rounded up to 16 floats), then runs the time loop backwards,
/// writing dL/d(input) to `gradInput` (and `gradResidual` when not NULL) from the spikes'
/// gradient `gradSpikes`, and per neuron Σ_t dL/d(input) into `sumGrad` and Σ_t dL/d(input)·x̂
/// (x̂ = (y − mean)·invstd) into `sumGradNormalized`. `mean`, `invstd`, `state` and the sums hold
/// `count` floats rounded up to 16, as the forward pass's buffers.
void snn_affine_lif_backward(const snn_lif *lif, int steps, long stride, int count, const float *scale,
                             const float *shift, const float *mean, const float *invstd, float *state, float *scratch,
                             const float *y, const float *residual, const float *gradSpikes, float *gradInput,
                             float *gradResidual, float *sumGrad, float *sumGradNormalized);

#endif
