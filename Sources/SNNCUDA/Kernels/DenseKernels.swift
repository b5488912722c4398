extension CUDAKernels {
    /// Matrix product, convolution, pooling and batch norm over contiguous float32 NCHW tensors:
    /// the backend's own kernels, used where cuBLAS or cuDNN is not found (and always under the
    /// tests' emulated driver, which checks them against the reference backend). Each output
    /// element is computed by one thread, or by one block of 256 with a fixed-order sum where
    /// it reduces over a batch, so results never depend on timing (no atomics).
    ///
    /// - `snn_matmul`: `C[m×n] = A[m×k] · B[k×n]` with each operand read through a row and a
    ///   column stride (a transposed operand is its strides swapped), in 16×16 tiles staged in
    ///   shared memory; one block per tile of C (blocks of 256 threads, the grid flattened).
    /// - `snn_conv2d_forward`, `snn_conv2d_backward_data`: one thread per output (input)
    ///   element, summing over its receptive field (the outputs its value reached).
    /// - `snn_conv2d_backward_weight`, `snn_conv2d_backward_bias`: one block per weight (bias)
    ///   element, summing over the batch and the output plane.
    /// - `snn_im2col`, `snn_col2im`: with cuBLAS, convolutions are matrix products over the
    ///   unfolded input of a chunk of images, `col[(c, ky, kx)][(b, oy, ox)]` (zero where the
    ///   window leaves the input); `snn_col2im` gathers such a matrix back onto the input, one
    ///   thread per input element summing its taps in order.
    /// - `snn_pool2d_forward`, `snn_pool2d_backward`: max pooling (padded positions skipped; the
    ///   first maximum in row-major window order takes the gradient) and average pooling (the
    ///   divisor counts padding up to the padded border), one thread per output (input) element.
    /// - `snn_bn_apply`: `(x − μ_c)/√(σ²_c + ε)·γ_c + β_c`; `snn_bn_backward_sums`: per channel
    ///   `Σ g` and `Σ g·x̂` (`dL/dβ`, `dL/dγ`), over parts of a channel's frames in blocks of their own, then
    ///   added per channel (`snn_channel_pair_sums`); `snn_bn_input_gradient`
    ///   (``batchNormNeuron``) then gives the input's gradient.
    public static let dense = #"""
    // dense.cu: matmul, convolution, pooling and batch norm. Needs reductions.cu.

    #define SNN_TILE 16

    extern "C" __global__ void snn_matmul(const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ c,
                                          int m, int n, int k, long long aRow, long long aCol, long long bRow,
                                          long long bCol, int tilesN) {
        SNN_SHARED(float, as, [SNN_TILE][SNN_TILE + 1]);
        SNN_SHARED(float, bs, [SNN_TILE][SNN_TILE + 1]);
        int r = threadIdx.x / SNN_TILE, q = threadIdx.x % SNN_TILE;
        int row = (int)(blockIdx.x / tilesN) * SNN_TILE + r, col = (int)(blockIdx.x % tilesN) * SNN_TILE + q;
        float sum = 0.0f;
        for (int k0 = 0; k0 < k; k0 += SNN_TILE) {
            as[r][q] = row < m && k0 + q < k ? a[row * aRow + (k0 + q) * aCol] : 0.0f;
            bs[r][q] = k0 + r < k && col < n ? b[(k0 + r) * bRow + col * bCol] : 0.0f;
            __syncthreads();
            for (int j = 0; j < SNN_TILE; j++) sum += as[r][j] * bs[j][q];
            __syncthreads();
        }
        if (row < m && col < n) c[(long long)row * n + col] = sum;
    }

    // A convolution's geometry: input [n, c, h, w], weight [o, c/groups, kh, kw], output [n, o, oh, ow].
    struct SnnConv {
        int n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups;
    };

    // Along one axis: the output position whose tap k reads input position i, or -1 when no output's does.
    __device__ __forceinline__ int snn_tap_output(int i, int pad, int k, int dilation, int stride, int outputs) {
        int t = i + pad - k * dilation;
        return t < 0 || t % stride != 0 || t / stride >= outputs ? -1 : t / stride;
    }

    extern "C" __global__ void snn_conv2d_forward(const float *__restrict__ x, const float *__restrict__ weight,
                                                  const float *__restrict__ bias, float *__restrict__ y, SnnConv g) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= (long long)g.n * g.o * g.oh * g.ow) return;
        int ox = (int)(i % g.ow), oy = (int)((i / g.ow) % g.oh), oc = (int)((i / ((long long)g.ow * g.oh)) % g.o);
        long long b = i / ((long long)g.ow * g.oh * g.o);
        int cg = g.c / g.groups, first = oc / (g.o / g.groups) * cg;
        float sum = 0.0f;
        for (int ci = 0; ci < cg; ci++) {
            const float *plane = x + ((b * g.c + first + ci) * g.h) * g.w;
            const float *kernel = weight + ((long long)oc * cg + ci) * g.kh * g.kw;
            for (int ky = 0; ky < g.kh; ky++) {
                int iy = oy * g.sh - g.ph + ky * g.dh;
                if (iy < 0 || iy >= g.h) continue;
                for (int kx = 0; kx < g.kw; kx++) {
                    int ix = ox * g.sw - g.pw + kx * g.dw;
                    if (ix < 0 || ix >= g.w) continue;
                    sum += plane[(long long)iy * g.w + ix] * kernel[ky * g.kw + kx];
                }
            }
        }
        y[i] = bias ? sum + bias[oc] : sum;
    }

    extern "C" __global__ void snn_conv2d_backward_data(const float *__restrict__ gy, const float *__restrict__ weight,
                                                        float *__restrict__ gx, SnnConv g) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= (long long)g.n * g.c * g.h * g.w) return;
        int ix = (int)(i % g.w), iy = (int)((i / g.w) % g.h), ci = (int)((i / ((long long)g.w * g.h)) % g.c);
        long long b = i / ((long long)g.w * g.h * g.c);
        int cg = g.c / g.groups, og = g.o / g.groups, group = ci / cg;
        float sum = 0.0f;
        for (int oc = group * og; oc < (group + 1) * og; oc++) {
            const float *plane = gy + ((b * g.o + oc) * g.oh) * g.ow;
            const float *kernel = weight + ((long long)oc * cg + ci % cg) * g.kh * g.kw;
            for (int ky = 0; ky < g.kh; ky++) {
                int oy = snn_tap_output(iy, g.ph, ky, g.dh, g.sh, g.oh);
                if (oy < 0) continue;
                for (int kx = 0; kx < g.kw; kx++) {
                    int ox = snn_tap_output(ix, g.pw, kx, g.dw, g.sw, g.ow);
                    if (ox >= 0) sum += plane[(long long)oy * g.ow + ox] * kernel[ky * g.kw + kx];
                }
            }
        }
        gx[i] = sum;
    }

    extern "C" __global__ void snn_conv2d_backward_weight(const float *__restrict__ gy, const float *__restrict__ x,
                                                          float *__restrict__ gw, SnnConv g) {
        int cg = g.c / g.groups, og = g.o / g.groups;
        long long e = blockIdx.x;   // weight element (oc, ci, ky, kx)
        int kx = (int)(e % g.kw), ky = (int)((e / g.kw) % g.kh), ci = (int)((e / ((long long)g.kw * g.kh)) % cg);
        int oc = (int)(e / ((long long)g.kw * g.kh * cg));
        int channel = oc / og * cg + ci;
        long long plane = (long long)g.oh * g.ow, count = (long long)g.n * plane;
        double sum = 0.0;
        for (long long j = threadIdx.x; j < count; j += SNN_REDUCE_THREADS) {
            long long b = j / plane;
            int oy = (int)((j % plane) / g.ow), ox = (int)(j % g.ow);
            int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            sum += (double)gy[(b * g.o + oc) * plane + (j % plane)] * x[((b * g.c + channel) * g.h + iy) * g.w + ix];
        }
        double total = snn_block_sum(sum);
        if (threadIdx.x == 0) gw[e] = (float)total;
    }

    extern "C" __global__ void snn_conv2d_backward_bias(const float *__restrict__ gy, float *__restrict__ gb, SnnConv g) {
        int oc = blockIdx.x;
        long long plane = (long long)g.oh * g.ow, count = (long long)g.n * plane;
        double sum = 0.0;
        for (long long j = threadIdx.x; j < count; j += SNN_REDUCE_THREADS) sum += gy[(j / plane * g.o + oc) * plane + j % plane];
        double total = snn_block_sum(sum);
        if (threadIdx.x == 0) gb[oc] = (float)total;
    }

    // col[(c·kh + ky)·kw + kx][b·oh·ow + oy·ow + ox] = x[first + b][c][oy·sh − ph + ky·dh][ox·sw − pw + kx·dw].
    extern "C" __global__ void snn_im2col(const float *__restrict__ x, float *__restrict__ col, SnnConv g, int first,
                                          int images) {
        long long columns = (long long)images * g.oh * g.ow;
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= columns * g.c * g.kh * g.kw) return;
        long long column = i % columns;
        int row = (int)(i / columns);
        int kx = row % g.kw, ky = (row / g.kw) % g.kh, c = row / (g.kw * g.kh);
        int ox = (int)(column % g.ow), oy = (int)((column / g.ow) % g.oh);
        long long b = first + column / ((long long)g.ow * g.oh);
        int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
        col[i] = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w ? x[((b * g.c + c) * g.h + iy) * g.w + ix] : 0.0f;
    }

    // gx[first + b][c][iy][ix] = Σ over the taps (ky, kx) that read it of col[(c, ky, kx)][(b, oy, ox)].
    extern "C" __global__ void snn_col2im(const float *__restrict__ col, float *__restrict__ gx, SnnConv g, int first,
                                          int images) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= (long long)images * g.c * g.h * g.w) return;
        int ix = (int)(i % g.w), iy = (int)((i / g.w) % g.h), c = (int)((i / ((long long)g.w * g.h)) % g.c);
        long long b = i / ((long long)g.w * g.h * g.c);
        long long columns = (long long)images * g.oh * g.ow;
        float sum = 0.0f;
        for (int ky = 0; ky < g.kh; ky++) {
            int oy = snn_tap_output(iy, g.ph, ky, g.dh, g.sh, g.oh);
            if (oy < 0) continue;
            for (int kx = 0; kx < g.kw; kx++) {
                int ox = snn_tap_output(ix, g.pw, kx, g.dw, g.sw, g.ow);
                if (ox >= 0) sum += col[((long long)(c * g.kh + ky) * g.kw + kx) * columns + (b * g.oh + oy) * g.ow + ox];
            }
        }
        gx[((first + b) * g.c + c) * (long long)g.h * g.w + (long long)iy * g.w + ix] = sum;
    }

    // A pooling's geometry: input [n·c planes, h, w], output [n·c, oh, ow]; kind 0 max, 1 average.
    struct SnnPool {
        int planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw, kind;
    };

    // The window of output (oy, ox) clipped to the input: rows [y0, y1), columns [x0, x1).
    __device__ __forceinline__ void snn_pool_window(const SnnPool &p, int oy, int ox, int &y0, int &y1, int &x0, int &x1) {
        y0 = oy * p.sh - p.ph;
        x0 = ox * p.sw - p.pw;
        y1 = y0 + p.kh < p.h ? y0 + p.kh : p.h;
        x1 = x0 + p.kw < p.w ? x0 + p.kw : p.w;
        if (y0 < 0) y0 = 0;
        if (x0 < 0) x0 = 0;
    }

    // Average pooling's divisor: the window clipped at the padded border, padding counted.
    __device__ __forceinline__ float snn_pool_divisor(const SnnPool &p, int oy, int ox) {
        int ys = oy * p.sh - p.ph, xs = ox * p.sw - p.pw;
        int ye = ys + p.kh < p.h + p.ph ? ys + p.kh : p.h + p.ph, xe = xs + p.kw < p.w + p.pw ? xs + p.kw : p.w + p.pw;
        return (float)((ye - ys) * (xe - xs));
    }

    // Where the first maximum of output (oy, ox)'s window sits in the plane (row-major window order).
    __device__ __forceinline__ int snn_pool_argmax(const float *plane, const SnnPool &p, int oy, int ox) {
        int y0, y1, x0, x1;
        snn_pool_window(p, oy, ox, y0, y1, x0, x1);
        int best = y0 * p.w + x0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                if (plane[y * p.w + x] > plane[best]) best = y * p.w + x;
        return best;
    }

    extern "C" __global__ void snn_pool2d_forward(const float *__restrict__ x, float *__restrict__ y, SnnPool p) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= (long long)p.planes * p.oh * p.ow) return;
        int ox = (int)(i % p.ow), oy = (int)((i / p.ow) % p.oh);
        const float *plane = x + (i / ((long long)p.ow * p.oh)) * p.h * p.w;
        if (p.kind == 0) {
            y[i] = plane[snn_pool_argmax(plane, p, oy, ox)];
            return;
        }
        int y0, y1, x0, x1;
        snn_pool_window(p, oy, ox, y0, y1, x0, x1);
        float sum = 0.0f;
        for (int r = y0; r < y1; r++)
            for (int q = x0; q < x1; q++) sum += plane[r * p.w + q];
        y[i] = sum / snn_pool_divisor(p, oy, ox);
    }

    // One thread per input element: the outputs whose windows hold it, in order.
    extern "C" __global__ void snn_pool2d_backward(const float *__restrict__ gy, const float *__restrict__ x,
                                                   float *__restrict__ gx, SnnPool p) {
        long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= (long long)p.planes * p.h * p.w) return;
        int ix = (int)(i % p.w), iy = (int)((i / p.w) % p.h);
        long long planeIndex = i / ((long long)p.w * p.h);
        const float *g = gy + planeIndex * p.oh * p.ow;
        const float *plane = x ? x + planeIndex * p.h * p.w : 0;
        // Outputs oy with oy·sh − ph ≤ iy < oy·sh − ph + kh.
        int oyFirst = iy + p.ph - p.kh + 1 > 0 ? (iy + p.ph - p.kh + 1 + p.sh - 1) / p.sh : 0;
        int oxFirst = ix + p.pw - p.kw + 1 > 0 ? (ix + p.pw - p.kw + 1 + p.sw - 1) / p.sw : 0;
        int oyLast = (iy + p.ph) / p.sh < p.oh - 1 ? (iy + p.ph) / p.sh : p.oh - 1;
        int oxLast = (ix + p.pw) / p.sw < p.ow - 1 ? (ix + p.pw) / p.sw : p.ow - 1;
        float sum = 0.0f;
        for (int oy = oyFirst; oy <= oyLast; oy++)
            for (int ox = oxFirst; ox <= oxLast; ox++) {
                if (p.kind == 0) {
                    if (snn_pool_argmax(plane, p, oy, ox) == iy * p.w + ix) sum += g[oy * p.ow + ox];
                } else {
                    sum += g[oy * p.ow + ox] / snn_pool_divisor(p, oy, ox);
                }
            }
        gx[i] = sum;
    }

    extern "C" __global__ void snn_bn_apply(const float *__restrict__ x, const float *__restrict__ gamma,
                                            const float *__restrict__ beta, const float *__restrict__ mean,
                                            const float *__restrict__ variance, float epsilon, float *__restrict__ y,
                                            long long total, int channels, long long plane) {
        long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
        if (k >= total) return;
        int c = (int)((k / plane) % channels);
        y[k] = (x[k] - mean[c]) / sqrtf(variance[c] + epsilon) * gamma[c] + beta[c];
    }

    // Per channel Σ g and Σ g·x̂ over frames [s·span, (s + 1)·span) for block b (channel
    // b / splits, s = b % splits): with one split the block writes dL/dβ and dL/dγ; with more, its
    // two sums go to partials[2b] and [2b + 1] for snn_channel_pair_sums.
    extern "C" __global__ void snn_bn_backward_sums(const float *__restrict__ g, const float *__restrict__ x,
                                                    const float *__restrict__ mean, const float *__restrict__ variance,
                                                    float epsilon, float *__restrict__ gradBeta,
                                                    float *__restrict__ gradGamma, double *__restrict__ partials, int frames,
                                                    int channels, long long plane, int span, int splits) {
        int c = blockIdx.x / splits, first = (blockIdx.x % splits) * span;
        int last = first + snn_part_frames(blockIdx.x % splits, span, frames);
        float mu = mean[c], invstd = 1.0f / sqrtf(variance[c] + epsilon);
        double a = 0.0, b = 0.0;
        long long f, p;
        if (plane > 0) {
            for (snn_channel_first(first, plane, f, p); f < last; snn_channel_next(plane, f, p)) {
                long long at = (f * channels + c) * plane + p;
                a += g[at];
                b += (double)g[at] * ((x[at] - mu) * invstd);
            }
        }
        double totalA = snn_block_sum(a);
        double totalB = snn_block_sum(b);
        if (threadIdx.x == 0) {
            if (splits == 1) {
                gradBeta[c] = (float)totalA;
                gradGamma[c] = (float)totalB;
            } else {
                partials[2 * (long long)blockIdx.x] = totalA;
                partials[2 * (long long)blockIdx.x + 1] = totalB;
            }
        }
    }
    """#
}
