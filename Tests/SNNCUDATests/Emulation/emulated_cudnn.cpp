// A cuDNN 9 (libcudnn.so.9) for tests on machines without a GPU, beside the emulated driver:
// handles and descriptors, the three convolutions computed on the host from cuDNN's documented
// definition (float, half or bfloat16 operands, summed in double, the result rounded to the type), and an algorithm search with made-up timings. It is strict where a mistake would
// pass silently on a GPU too:
// - the output descriptor must have the dimensions cuDNN derives from the input, filter and
//   convolution descriptors (a wrong output shape is CUDNN_STATUS_BAD_PARAM);
// - CUDNN_CONVOLUTION (mode 0) flips the filter, as on a GPU, so the wrong mode gives wrong numbers;
// - each algorithm needs its own workspace: less than that is CUDNN_STATUS_BAD_PARAM, and the
//   workspace is written over, so one shared with live data corrupts it;
// - the search reports the fastest algorithm as non-deterministic and the second as needing a
//   workspace, so choosing among them is tested;
// - a convolution whose math type allows tensor cores (anything but CUDNN_FMA_MATH) rounds its
//   float operands to TF32 (10-bit mantissas, to nearest even) before multiplying, as Ampere and
//   later GPUs do, so that a run that must be float32 and is not shows in the numbers.
#include <cmath>
#include <cstddef>
#include <cstring>

#include "device_addresses.h"

namespace {
constexpr unsigned success = 0, bad_param = 2000, not_supported = 3000;

// The operand types: CUDNN_DATA_FLOAT 0, CUDNN_DATA_HALF 2, CUDNN_DATA_BFLOAT16 9.
bool known_type(unsigned type) { return type == 0 || type == 2 || type == 9; }

struct Tensor4d {
    int n = 0, c = 0, h = 0, w = 0;
    unsigned type = 0;
    bool set = false;
};
struct Filter4d {
    int k = 0, c = 0, h = 0, w = 0;
    unsigned type = 0;
    bool set = false;
};
struct Convolution {
    int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1, groups = 1;
    unsigned mode = 1, math = 0;
    bool set = false;
};
struct Perf {
    unsigned algo, status;
    float time;
    std::size_t memory;
    unsigned determinism, math;
    int reserved[3];
};

// The algorithms every direction offers here: (time, deterministic, workspace per output element).
struct Algorithm {
    float time;
    bool deterministic;
    std::size_t workspace_per_element;
};
constexpr Algorithm algorithms[] = {{3.0f, true, 0}, {1.0f, false, 0}, {2.0f, true, 4}};
constexpr int algorithm_count = 3;

std::size_t elements(const Tensor4d &t) { return (std::size_t)t.n * t.c * t.h * t.w; }
std::size_t workspace(int algo, const Tensor4d &y) { return algorithms[algo].workspace_per_element * elements(y); }

// Whether the four descriptors describe one float convolution, y's dimensions derived from the rest.
bool consistent(const Tensor4d &x, const Filter4d &w, const Convolution &c, const Tensor4d &y) {
    if (!x.set || !w.set || !c.set || !y.set || c.groups < 1) return false;
    if (x.type != w.type || x.type != y.type) return false;   // one type for the three operands
    if (w.c * c.groups != x.c || w.k % c.groups != 0) return false;
    auto out = [](int in, int pad, int kernel, int stride, int dilation) { return (in + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1; };
    return y.n == x.n && y.c == w.k && y.h == out(x.h, c.pad_h, w.h, c.u, c.dil_h) && y.w == out(x.w, c.pad_w, w.w, c.v, c.dil_w);
}

enum class Direction { forward, data, filter };

// Element i of a buffer of `type`, as a float; and a float stored there, rounded to nearest even.
float load(const void *p, unsigned type, std::size_t i) {
    if (type == 0) return static_cast<const float *>(p)[i];
    unsigned short h = static_cast<const unsigned short *>(p)[i];
    unsigned bits;
    if (type == 9) {
        bits = (unsigned)h << 16;
    } else {
        unsigned sign = (unsigned)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        if (e == 31) bits = sign | 0x7f800000u | (m << 13);
        else if (e == 0) { float v = std::ldexp((float)m, -24); return sign ? -v : v; }
        else bits = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
void store(void *p, unsigned type, std::size_t i, float v) {
    if (type == 0) { static_cast<float *>(p)[i] = v; return; }
    unsigned short *out = static_cast<unsigned short *>(p);
    if (type == 9) {
        unsigned bits;
        std::memcpy(&bits, &v, sizeof bits);
        if ((bits & 0x7fffffffu) > 0x7f800000u) { out[i] = (unsigned short)((bits >> 16) | 0x40u); return; }
        bits += 0x7fffu + ((bits >> 16) & 1u);
        out[i] = (unsigned short)(bits >> 16);
        return;
    }
    // IEEE half, to nearest even: NaN stays NaN, 65520 and up overflow, subnormals below 2^-14.
    unsigned x;
    std::memcpy(&x, &v, sizeof x);
    unsigned sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu, q, rem, half;
    if (ax > 0x7f800000u) { out[i] = (unsigned short)(sign | 0x7e00u); return; }
    if (ax >= 0x477ff000u) { out[i] = (unsigned short)(sign | 0x7c00u); return; }
    if (ax < 0x38800000u) {
        if (ax < 0x33000000u) { out[i] = (unsigned short)sign; return; }
        unsigned shift = 126u - (ax >> 23), m = (ax & 0x7fffffu) | 0x800000u;
        q = m >> shift;
        rem = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
    } else {
        unsigned r = ax - 0x38000000u;
        q = r >> 13;
        rem = r & 0x1fffu;
        half = 0x1000u;
    }
    if (rem > half || (rem == half && (q & 1u))) q++;
    out[i] = (unsigned short)(sign | q);
}

// x rounded to TF32's 10-bit mantissa, to nearest even (infinities and NaN kept).
float tf32(float x) {
    unsigned bits;
    std::memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7f800000u) == 0x7f800000u) return x;
    bits = (bits + 0xfffu + ((bits >> 13) & 1u)) & ~0x1fffu;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}

// out = α·op + β·out for the direction, over all taps; the operand written is the direction's.
void convolve(Direction d, const Tensor4d &xd, void *xp, const Filter4d &wd, void *wp, const Convolution &c, const Tensor4d &yd,
              void *yp, float alpha, float beta) {
    const int cg = wd.c, kg = wd.k / c.groups;
    const unsigned type = xd.type;
    auto operand = [&c](float v) { return c.math == 3 ? v : tf32(v); };   // CUDNN_FMA_MATH keeps float32
    auto x = [&](std::size_t i) { return load(xp, type, i); };
    auto w = [&](std::size_t i) { return load(wp, type, i); };
    auto y = [&](std::size_t i) { return load(yp, type, i); };
    std::size_t count = d == Direction::forward ? elements(yd) : d == Direction::data ? elements(xd) : (std::size_t)wd.k * wd.c * wd.h * wd.w;
    void *out = d == Direction::forward ? yp : d == Direction::data ? xp : wp;
    double *sum = new double[count]();
    for (int n = 0; n < yd.n; n++)
        for (int o = 0; o < yd.c; o++) {
            int g = o / kg;
            for (int i = 0; i < yd.h; i++)
                for (int j = 0; j < yd.w; j++)
                    for (int ci = 0; ci < cg; ci++)
                        for (int r = 0; r < wd.h; r++)
                            for (int s = 0; s < wd.w; s++) {
                                int ih = i * c.u - c.pad_h + r * c.dil_h, iw = j * c.v - c.pad_w + s * c.dil_w;
                                if (ih < 0 || ih >= xd.h || iw < 0 || iw >= xd.w) continue;
                                // CUDNN_CONVOLUTION flips the filter; cross-correlation does not.
                                int fr = c.mode == 0 ? wd.h - 1 - r : r, fs = c.mode == 0 ? wd.w - 1 - s : s;
                                std::size_t xi = (((std::size_t)n * xd.c + g * cg + ci) * xd.h + ih) * xd.w + iw;
                                std::size_t wi = (((std::size_t)o * wd.c + ci) * wd.h + fr) * wd.w + fs;
                                std::size_t yi = (((std::size_t)n * yd.c + o) * yd.h + i) * yd.w + j;
                                switch (d) {
                                case Direction::forward: sum[yi] += (double)operand(x(xi)) * operand(w(wi)); break;
                                case Direction::data: sum[xi] += (double)operand(y(yi)) * operand(w(wi)); break;
                                case Direction::filter: sum[wi] += (double)operand(y(yi)) * operand(x(xi)); break;
                                }
                            }
        }
    for (std::size_t e = 0; e < count; e++)
        store(out, type, e, (float)(alpha * sum[e] + (beta == 0.0f ? 0.0 : beta * load(out, type, e))));
    delete[] sum;
}

unsigned run(Direction d, const Tensor4d *xd, void *x, const Filter4d *wd, void *w, const Convolution *c, const Tensor4d *yd, void *y,
             unsigned algo, void *space, std::size_t space_bytes, const void *alpha, const void *beta) {
    if (!xd || !wd || !c || !yd || !consistent(*xd, *wd, *c, *yd) || algo >= algorithm_count) return bad_param;
    if (space_bytes < workspace(algo, *yd) || (workspace(algo, *yd) > 0 && !space)) return bad_param;
    if (snn_emulated_no_work()) return success;
    snn_emulated_wait_for_stream();
    if (std::size_t need = workspace(algo, *yd)) std::memset(snn_host_pointer(space), 0x7f, need);   // scribbles over the workspace
    convolve(d, *xd, snn_host_pointer(x), *wd, snn_host_pointer(w), *c, *yd, snn_host_pointer(y), *(const float *)alpha,
             *(const float *)beta);
    return success;
}

// The search: every algorithm run once (writing the output), reported fastest first.
unsigned find(Direction d, const Tensor4d *xd, void *x, const Filter4d *wd, void *w, const Convolution *c, const Tensor4d *yd, void *y,
              int requested, int *returned, void *results, void *space, std::size_t space_bytes) {
    if (!results || !returned || requested < 1) return bad_param;
    if (!xd || !wd || !c || !yd || !consistent(*xd, *wd, *c, *yd)) return bad_param;
    const int order[] = {1, 2, 0};   // by time
    Perf *perf = static_cast<Perf *>(results);
    int n = 0;
    for (int k = 0; k < algorithm_count && n < requested; k++) {
        int a = order[k];
        float one = 1, zero = 0;
        std::size_t need = workspace(a, *yd);
        unsigned status = need > space_bytes ? not_supported : run(d, xd, x, wd, w, c, yd, y, a, space, space_bytes, &one, &zero);
        perf[n++] = Perf{(unsigned)a, status, algorithms[a].time, need, algorithms[a].deterministic ? 1u : 0u, c->math, {0, 0, 0}};
    }
    *returned = n;
    return success;
}
}   // namespace

extern "C" {
struct cudnnContext {
    void *stream;
};

std::size_t cudnnGetVersion(void) { return 92801; }
const char *cudnnGetErrorString(unsigned status) {
    switch (status) {
    case success: return "CUDNN_STATUS_SUCCESS";
    case bad_param: return "CUDNN_STATUS_BAD_PARAM";
    case not_supported: return "CUDNN_STATUS_NOT_SUPPORTED";
    default: return "CUDNN_STATUS_UNKNOWN";
    }
}
unsigned cudnnCreate(cudnnContext **handle) {
    *handle = new cudnnContext{nullptr};
    return success;
}
unsigned cudnnDestroy(cudnnContext *handle) {
    delete handle;
    return success;
}
unsigned cudnnSetStream(cudnnContext *handle, void *stream) {
    if (!handle) return bad_param;
    handle->stream = stream;
    return success;
}

unsigned cudnnCreateTensorDescriptor(Tensor4d **d) {
    *d = new Tensor4d;
    return success;
}
unsigned cudnnSetTensor4dDescriptor(Tensor4d *d, unsigned format, unsigned type, int n, int c, int h, int w) {
    if (!d || format != 0 || !known_type(type) || n < 1 || c < 1 || h < 1 || w < 1)
        return format != 0 || !known_type(type) ? not_supported : bad_param;
    *d = Tensor4d{n, c, h, w, type, true};
    return success;
}
unsigned cudnnDestroyTensorDescriptor(Tensor4d *d) {
    delete d;
    return success;
}
unsigned cudnnCreateFilterDescriptor(Filter4d **d) {
    *d = new Filter4d;
    return success;
}
unsigned cudnnSetFilter4dDescriptor(Filter4d *d, unsigned type, unsigned format, int k, int c, int h, int w) {
    if (!d || format != 0 || !known_type(type) || k < 1 || c < 1 || h < 1 || w < 1)
        return format != 0 || !known_type(type) ? not_supported : bad_param;
    *d = Filter4d{k, c, h, w, type, true};
    return success;
}
unsigned cudnnDestroyFilterDescriptor(Filter4d *d) {
    delete d;
    return success;
}
unsigned cudnnCreateConvolutionDescriptor(Convolution **d) {
    *d = new Convolution;
    return success;
}
unsigned cudnnSetConvolution2dDescriptor(Convolution *d, int pad_h, int pad_w, int u, int v, int dil_h, int dil_w, unsigned mode,
                                         unsigned compute) {
    if (!d || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1 || mode > 1) return bad_param;
    if (compute != 0) return not_supported;
    d->pad_h = pad_h, d->pad_w = pad_w, d->u = u, d->v = v, d->dil_h = dil_h, d->dil_w = dil_w, d->mode = mode, d->set = true;
    return success;
}
unsigned cudnnSetConvolutionGroupCount(Convolution *d, int groups) {
    if (!d || groups < 1) return bad_param;
    d->groups = groups;
    return success;
}
unsigned cudnnSetConvolutionMathType(Convolution *d, unsigned math) {
    if (!d || math > 3) return bad_param;
    d->math = math;
    return success;
}
unsigned cudnnDestroyConvolutionDescriptor(Convolution *d) {
    delete d;
    return success;
}

unsigned cudnnFindConvolutionForwardAlgorithmEx(cudnnContext *, const Tensor4d *xd, const void *x, const Filter4d *wd, const void *w,
                                                const Convolution *c, const Tensor4d *yd, void *y, int requested, int *returned,
                                                void *results, void *space, std::size_t bytes) {
    return find(Direction::forward, xd, (void *)x, wd, (void *)w, c, yd, y, requested, returned, results, space, bytes);
}
unsigned cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnContext *, const Filter4d *wd, const void *w, const Tensor4d *dyd,
                                                     const void *dy, const Convolution *c, const Tensor4d *dxd, void *dx, int requested,
                                                     int *returned, void *results, void *space, std::size_t bytes) {
    return find(Direction::data, dxd, dx, wd, (void *)w, c, dyd, (void *)dy, requested, returned, results, space, bytes);
}
unsigned cudnnFindConvolutionBackwardFilterAlgorithmEx(cudnnContext *, const Tensor4d *xd, const void *x, const Tensor4d *dyd,
                                                       const void *dy, const Convolution *c, const Filter4d *dwd, void *dw,
                                                       int requested, int *returned, void *results, void *space, std::size_t bytes) {
    return find(Direction::filter, xd, (void *)x, dwd, dw, c, dyd, (void *)dy, requested, returned, results, space, bytes);
}
unsigned cudnnConvolutionForward(cudnnContext *, const void *alpha, const Tensor4d *xd, const void *x, const Filter4d *wd,
                                 const void *w, const Convolution *c, unsigned algo, void *space, std::size_t bytes, const void *beta,
                                 const Tensor4d *yd, void *y) {
    return run(Direction::forward, xd, (void *)x, wd, (void *)w, c, yd, y, algo, space, bytes, alpha, beta);
}
unsigned cudnnConvolutionBackwardData(cudnnContext *, const void *alpha, const Filter4d *wd, const void *w, const Tensor4d *dyd,
                                      const void *dy, const Convolution *c, unsigned algo, void *space, std::size_t bytes,
                                      const void *beta, const Tensor4d *dxd, void *dx) {
    return run(Direction::data, dxd, dx, wd, (void *)w, c, dyd, (void *)dy, algo, space, bytes, alpha, beta);
}
unsigned cudnnConvolutionBackwardFilter(cudnnContext *, const void *alpha, const Tensor4d *xd, const void *x, const Tensor4d *dyd,
                                        const void *dy, const Convolution *c, unsigned algo, void *space, std::size_t bytes,
                                        const void *beta, const Filter4d *dwd, void *dw) {
    return run(Direction::filter, xd, (void *)x, dwd, dw, c, dyd, (void *)dy, algo, space, bytes, alpha, beta);
}
}
