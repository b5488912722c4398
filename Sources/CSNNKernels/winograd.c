// Winograd F(4×4, 3×3) transforms for 3×3 convolutions of stride 1 and padding 1 (Lavin and
// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). The output is cut into 4×4
// tiles; each tile's 6×6 input patch d and each 3×3 filter g become 6×6 matrices
// V = Bᵀ d B and U = G g Gᵀ, the products U ⊙ V summed over input channels become M
// (36 matrix products, one per element, which the caller runs as GEMMs), and the tile is
// Aᵀ M A. The transforms below are those matrices written out:
//
//   Bᵀ = [4  0 -5  0 1 0]    G = [ 1/4     0    0 ]    Aᵀ = [1 1  1 1  1 0]
//        [0 -4 -4  1 1 0]        [-1/6  -1/6 -1/6 ]         [0 1 -1 2 -2 0]
//        [0  4 -4 -1 1 0]        [-1/6   1/6 -1/6 ]         [0 1  1 4  4 0]
//        [0 -2 -1  2 1 0]        [1/24  1/12  1/6 ]         [0 1 -1 8 -8 1]
//        [0  2 -1 -2 1 0]        [1/24 -1/12  1/6 ]
//        [0  4  0 -5 0 1]        [ 0     0     1  ]
//
// The tile transforms work on `count` tiles at once, each loop running over the tiles, so the
// compiler vectorises them; tiles are numbered across images (`n·tilesH·tilesW + ty·tilesW + tx`).

#include "snn_kernels.h"

#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { WG_ALPHA = 6, WG_TILE = 4, WG_ELEMENTS = 36, WG_MAX_COUNT = SNN_WINOGRAD_MAX_TILES };

// Where a tile lies: the offset of its image's first plane and its top-left output pixel.
typedef struct {
    size_t image;
    int y, x;
} WgTile;

// Locates tiles `first ..< first + count` of images of `channels` planes of `height × width`,
// once per call rather than once per channel and tile.
static inline void wg_locate(long first, int count, int channels, int height, int width, WgTile *at) {
    const int tilesW = (width + WG_TILE - 1) / WG_TILE, tilesH = (height + WG_TILE - 1) / WG_TILE;
    for (int p = 0; p < count; p++) {
        long tile = first + p;
        long n = tile / ((long)tilesH * tilesW);
        int rest = (int)(tile - n * tilesH * tilesW);
        at[p] = (WgTile){(size_t)n * channels * height * width, (rest / tilesW) * WG_TILE, (rest % tilesW) * WG_TILE};
    }
}

// Bᵀ applied to the six values d0 … d5 (lanes of stride `s`), written to o0 … o5 (stride `t`);
// floats or vectors of them.
#define WG_INPUT_1D(d, s, o, t, p)                                                                 \
    do {                                                                                          \
        __auto_type d0 = d[0 * (s) + (p)], d1 = d[1 * (s) + (p)], d2 = d[2 * (s) + (p)];          \
        __auto_type d3 = d[3 * (s) + (p)], d4 = d[4 * (s) + (p)], d5 = d[5 * (s) + (p)];          \
        o[0 * (t) + (p)] = 4.0f * d0 - 5.0f * d2 + d4;                                            \
        o[1 * (t) + (p)] = -4.0f * (d1 + d2) + d3 + d4;                                           \
        o[2 * (t) + (p)] = 4.0f * (d1 - d2) - d3 + d4;                                            \
        o[3 * (t) + (p)] = 2.0f * (d3 - d1) - d2 + d4;                                            \
        o[4 * (t) + (p)] = 2.0f * (d1 - d3) - d2 + d4;                                            \
        o[5 * (t) + (p)] = 4.0f * d1 - 5.0f * d3 + d5;                                            \
    } while (0)

// Aᵀ applied to m0 … m5 (stride `s`), written to o0 … o3 (stride `t`); floats or vectors.
#define WG_OUTPUT_1D(m, s, o, t, p)                                                                \
    do {                                                                                          \
        __auto_type m0 = m[0 * (s) + (p)], m1 = m[1 * (s) + (p)], m2 = m[2 * (s) + (p)];          \
        __auto_type m3 = m[3 * (s) + (p)], m4 = m[4 * (s) + (p)], m5 = m[5 * (s) + (p)];          \
        __auto_type a = m1 + m2, b = m1 - m2, c = m3 + m4, e = m3 - m4;                           \
        o[0 * (t) + (p)] = m0 + a + c;                                                            \
        o[1 * (t) + (p)] = b + 2.0f * e;                                                          \
        o[2 * (t) + (p)] = a + 4.0f * c;                                                          \
        o[3 * (t) + (p)] = b + 8.0f * e + m5;                                                     \
    } while (0)

// G applied to lanes of g0 … g2 (stride `s`), in double, written to o (stride `t`).
#define WG_FILTER_1D(g, s, o, t, q)                                                                \
    do {                                                                                          \
        double g0 = g[0 * (s) + (q)], g1 = g[1 * (s) + (q)], g2 = g[2 * (s) + (q)];               \
        double sum = g0 + g2;                                                                     \
        o[0 * (t) + (q)] = g0 * 0.25;                                                             \
        o[1 * (t) + (q)] = -(sum + g1) * (1.0 / 6);                                               \
        o[2 * (t) + (q)] = -(sum - g1) * (1.0 / 6);                                               \
        o[3 * (t) + (q)] = g0 * (1.0 / 24) + g1 * (1.0 / 12) + g2 * (1.0 / 6);                    \
        o[4 * (t) + (q)] = g0 * (1.0 / 24) - g1 * (1.0 / 12) + g2 * (1.0 / 6);                    \
        o[5 * (t) + (q)] = g2;                                                                    \
    } while (0)

enum { WG_FILTER_LANES = 32 };

// The products' register block: `WG_MR` output channels by `WG_NR` tiles (12 of AVX2's 16
// vector registers hold the sums). Filter transforms are packed in blocks of `WG_MR` output
// channels, each block `[inChannels][WG_MR]`, so that the product reads them in order.
enum { WG_MR = 6, WG_NR = 16 };
#define WG_ROUND_UP(n, m) (((n) + (m) - 1) / (m) * (m))
#define WG_PACKED(k, c, inChannels) ((size_t)((k) / WG_MR) * WG_MR * (inChannels) + (size_t)(c) * WG_MR + (k) % WG_MR)

#define WINOGRAD_FILTER(name, attributes)                                                                         \
    static attributes void name(const float *weights, int outChannels, int inChannels, int transposeFlip,          \
                                int kBegin, int kEnd, float *u) {                                                 \
        const size_t plane = (size_t)WG_ROUND_UP(outChannels, WG_MR) * inChannels;                               \
        double g[9 * WG_FILTER_LANES], gg[18 * WG_FILTER_LANES], r[36 * WG_FILTER_LANES];                         \
        for (int k = kBegin; k < kEnd; k++) {                                                                     \
            for (int c0 = 0; c0 < inChannels; c0 += WG_FILTER_LANES) {                                            \
                const int lanes = inChannels - c0 < WG_FILTER_LANES ? inChannels - c0 : WG_FILTER_LANES;          \
                /* g[i·3 + j][q]: the filter from output channel k's view; for the data gradient, */             \
                /* weights [inChannels][outChannels][3][3] read transposed and turned by 180°. */                \
                for (int q = 0; q < lanes; q++) {                                                                 \
                    const int c = c0 + q;                                                                         \
                    const float *w = transposeFlip ? weights + ((size_t)c * outChannels + k) * 9                  \
                                                   : weights + ((size_t)k * inChannels + c) * 9;                  \
                    for (int t = 0; t < 9; t++) g[t * WG_FILTER_LANES + q] = w[transposeFlip ? 8 - t : t];        \
                }                                                                                                 \
                /* Columns: gg[i][j] = (G g)[i][j] (6×3); rows: r[i][j] = (gg Gᵀ)[i][j] (6×6). */                 \
                for (int j = 0; j < 3; j++) {                                                                     \
                    const double *gj = g + j * WG_FILTER_LANES;                                                   \
                    double *ggj = gg + j * WG_FILTER_LANES;                                                       \
                    for (int q = 0; q < lanes; q++) WG_FILTER_1D(gj, 3 * WG_FILTER_LANES, ggj, 3 * WG_FILTER_LANES, q); \
                }                                                                                                 \
                for (int i = 0; i < 6; i++) {                                                                     \
                    const double *ggi = gg + i * 3 * WG_FILTER_LANES;                                             \
                    double *ri = r + i * 6 * WG_FILTER_LANES;                                                     \
                    for (int q = 0; q < lanes; q++) WG_FILTER_1D(ggi, WG_FILTER_LANES, ri, WG_FILTER_LANES, q);   \
                }                                                                                                 \
                for (int e = 0; e < WG_ELEMENTS; e++) {                                                           \
                    float *ue = u + e * plane + WG_PACKED(k, c0, inChannels);                                     \
                    for (int q = 0; q < lanes; q++) ue[q * WG_MR] = (float)r[e * WG_FILTER_LANES + q];            \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
        /* The last block's rows past outChannels are zero. */                                                    \
        if (kEnd == outChannels) {                                                                                \
            for (int e = 0; e < WG_ELEMENTS; e++) {                                                               \
                for (int k = outChannels; k < WG_ROUND_UP(outChannels, WG_MR); k++) {                             \
                    for (int c = 0; c < inChannels; c++) u[e * plane + WG_PACKED(k, c, inChannels)] = 0.0f;       \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    }

// The last two steps of the input and gradient transforms: `OP_1D` (n inputs to 6 outputs)
// along each of the `n` rows of the tiles' `n × n` patches `src` (`src[(i·n + j)·count + p]`)
// into `t` (`n × 6`), then down each of t's 6 columns into the element planes, rows of `ld`
// floats: `planes[((a·6 + b)·channels + c)·ld + p]`.
#define WG_TO_PLANES(OP_1D, src, n, t, planes, channels, c, count, ld)                             \
    do {                                                                                          \
        for (int i_ = 0; i_ < (n); i_++) {                                                        \
            const float *si_ = (src) + i_ * (n) * (count);                                        \
            float *ti_ = (t) + i_ * WG_ALPHA * (count);                                           \
            for (int p_ = 0; p_ < (count); p_++) OP_1D(si_, (count), ti_, (count), p_);           \
        }                                                                                         \
        const size_t stride_ = (size_t)WG_ALPHA * (channels) * (ld);                              \
        for (int b_ = 0; b_ < WG_ALPHA; b_++) {                                                   \
            const float *tb_ = (t) + b_ * (count);                                                \
            float *out_ = (planes) + ((size_t)b_ * (channels) + (c)) * (ld);                      \
            for (int p_ = 0; p_ < (count); p_++) OP_1D(tb_, WG_ALPHA * (count), out_, stride_, p_); \
        }                                                                                         \
    } while (0)

// Where a border tile's 6×6 patch reads, computed once per call for all channels: per row and
// column of the patch an index clamped into the plane and a weight, 1 inside the plane and 0
// outside (the zero padding), so that the gather is a multiply instead of a branch per value.
typedef struct {
    int row[WG_ALPHA], col[WG_ALPHA];
    float rowIn[WG_ALPHA], colIn[WG_ALPHA];
} WgBorder;

static inline int wg_clamp(int i, int n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

#define WINOGRAD_INPUT(name, attributes)                                                                          \
    static attributes void name(const float *x, int channels, int cBegin, int cEnd, int height, int width,       \
                                long first, int count, int ld, float *v, float *scratch) {                       \
        const size_t planeSize = (size_t)height * width;                                                        \
        float *d = scratch, *t = scratch + WG_ELEMENTS * count;                                                  \
        WgTile at[WG_MAX_COUNT];                                                                                 \
        WgBorder border[WG_MAX_COUNT];                                                                           \
        unsigned char inside[WG_MAX_COUNT];                                                                      \
        wg_locate(first, count, channels, height, width, at);                                                    \
        for (int p = 0; p < count; p++) {                                                                        \
            int y0 = at[p].y - 1, x0 = at[p].x - 1;                                                              \
            inside[p] = y0 >= 0 && x0 >= 0 && y0 + WG_ALPHA <= height && x0 + WG_ALPHA <= width;                \
            for (int i = 0; i < WG_ALPHA; i++) {                                                                 \
                border[p].row[i] = wg_clamp(y0 + i, height) * width;                                             \
                border[p].rowIn[i] = (y0 + i >= 0 && y0 + i < height) ? 1.0f : 0.0f;                             \
                border[p].col[i] = wg_clamp(x0 + i, width);                                                      \
                border[p].colIn[i] = (x0 + i >= 0 && x0 + i < width) ? 1.0f : 0.0f;                              \
            }                                                                                                    \
        }                                                                                                        \
        for (int c = cBegin; c < cEnd; c++) {                                                                    \
            /* Gather every tile's 6×6 patch, zero outside the plane. */                                         \
            for (int p = 0; p < count; p++) {                                                                    \
                const float *plane = x + at[p].image + c * planeSize;                                            \
                if (inside[p]) {                                                                                 \
                    const float *row = plane + (size_t)(at[p].y - 1) * width + at[p].x - 1;                      \
                    for (int i = 0; i < WG_ALPHA; i++, row += width) {                                           \
                        for (int j = 0; j < WG_ALPHA; j++) d[(i * WG_ALPHA + j) * count + p] = row[j];           \
                    }                                                                                            \
                } else {                                                                                         \
                    const WgBorder *b = &border[p];                                                              \
                    for (int i = 0; i < WG_ALPHA; i++) {                                                         \
                        const float *row = plane + b->row[i];                                                    \
                        for (int j = 0; j < WG_ALPHA; j++) {                                                     \
                            d[(i * WG_ALPHA + j) * count + p] = row[b->col[j]] * (b->rowIn[i] * b->colIn[j]);    \
                        }                                                                                        \
                    }                                                                                            \
                }                                                                                                \
            }                                                                                                    \
            /* Rows: t[i][b] = (d Bᵀᵀ)[i][b]; columns: v[a][b] = (Bᵀ t)[a][b]. */                                 \
            WG_TO_PLANES(WG_INPUT_1D, d, WG_ALPHA, t, v, channels, c, count, ld);                                    \
        }                                                                                                        \
    }

#define WINOGRAD_OUTPUT(name, attributes)                                                                          \
    static attributes void name(const float *m, int channels, int height, int width, long first, int count,       \
                                int ld, const float *bias, float *y, float *scratch) {                           \
        const size_t planeSize = (size_t)height * width;                                                        \
        float *s = scratch, *o = scratch + WG_TILE * WG_ALPHA * count;                                           \
        WgTile at[WG_MAX_COUNT];                                                                                 \
        wg_locate(first, count, channels, height, width, at);                                                    \
        for (int k = 0; k < channels; k++) {                                                                     \
            /* Columns: s[a][b] = (Aᵀ m)[a][b]; rows: o[a][j] = (s A)[a][j]. */                                   \
            for (int b = 0; b < WG_ALPHA; b++) {                                                                 \
                const float *mb = m + ((size_t)b * channels + k) * ld;                                           \
                size_t stride = (size_t)WG_ALPHA * channels * ld;                                                \
                float *sb = s + b * count;                                                                       \
                for (int p = 0; p < count; p++) WG_OUTPUT_1D(mb, stride, sb, WG_ALPHA * count, p);               \
            }                                                                                                    \
            for (int a = 0; a < WG_TILE; a++) {                                                                  \
                const float *sa = s + a * WG_ALPHA * count;                                                      \
                float *oa = o + a * WG_TILE * count;                                                             \
                for (int p = 0; p < count; p++) WG_OUTPUT_1D(sa, count, oa, count, p);                           \
            }                                                                                                    \
            const float add = bias ? bias[k] : 0.0f;                                                             \
            for (int p = 0; p < count; p++) {                                                                    \
                int y0 = at[p].y, x0 = at[p].x;                                                                  \
                float *plane = y + at[p].image + k * planeSize;                                                  \
                int rows = height - y0 < WG_TILE ? height - y0 : WG_TILE;                                        \
                int cols = width - x0 < WG_TILE ? width - x0 : WG_TILE;                                          \
                for (int i = 0; i < rows; i++) {                                                                 \
                    float *row = plane + (size_t)(y0 + i) * width + x0;                                          \
                    for (int j = 0; j < cols; j++) row[j] = o[(i * WG_TILE + j) * count + p] + add;              \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
    }

// A applied to q0 … q3 (stride `s`), written to o0 … o5 (stride `t`), floats or vectors: the
// adjoint of Aᵀ, for the weight gradient, `Σ_tiles Gᵀ [(A dY Aᵀ) ⊙ (Bᵀ d B)] G`.
#define WG_GRADIENT_1D(q, s, o, t, p)                                                              \
    do {                                                                                          \
        __auto_type q0 = q[0 * (s) + (p)], q1 = q[1 * (s) + (p)], q2 = q[2 * (s) + (p)];          \
        __auto_type q3 = q[3 * (s) + (p)];                                                        \
        __auto_type even = q0 + q2, odd = q1 + q3, even4 = q0 + 4.0f * q2, odd2 = 2.0f * q1 + 8.0f * q3; \
        o[0 * (t) + (p)] = q0;                                                                    \
        o[1 * (t) + (p)] = even + odd;                                                            \
        o[2 * (t) + (p)] = even - odd;                                                            \
        o[3 * (t) + (p)] = even4 + odd2;                                                          \
        o[4 * (t) + (p)] = even4 - odd2;                                                          \
        o[5 * (t) + (p)] = q3;                                                                    \
    } while (0)

// Gᵀ applied to m0 … m5 (stride `s`), in double, written to o0 … o2 (stride `t`).
#define WG_FILTER_GRADIENT_1D(m, s, o, t, q)                                                       \
    do {                                                                                          \
        double m0 = m[0 * (s) + (q)], m1 = m[1 * (s) + (q)], m2 = m[2 * (s) + (q)];               \
        double m3 = m[3 * (s) + (q)], m4 = m[4 * (s) + (q)], m5 = m[5 * (s) + (q)];               \
        o[0 * (t) + (q)] = m0 * 0.25 - (m1 + m2) * (1.0 / 6) + (m3 + m4) * (1.0 / 24);            \
        o[1 * (t) + (q)] = (m2 - m1) * (1.0 / 6) + (m3 - m4) * (1.0 / 12);                        \
        o[2 * (t) + (q)] = ((m3 + m4) - (m1 + m2)) * (1.0 / 6) + m5;                              \
    } while (0)

#define WINOGRAD_GRADIENT(name, attributes)                                                                        \
    static attributes void name(const float *gy, int channels, int kBegin, int kEnd, int height, int width,       \
                                long first, int count, float *g, float *scratch) {                               \
        const size_t planeSize = (size_t)height * width;                                                        \
        float *q = scratch, *t = scratch + WG_TILE * WG_TILE * count;                                            \
        WgTile at[WG_MAX_COUNT];                                                                                 \
        wg_locate(first, count, channels, height, width, at);                                                    \
        for (int k = kBegin; k < kEnd; k++) {                                                                    \
            /* Gather every tile's 4×4 output gradient, zero past the plane. */                                  \
            for (int p = 0; p < count; p++) {                                                                    \
                int y0 = at[p].y, x0 = at[p].x;                                                                  \
                const float *plane = gy + at[p].image + k * planeSize;                                           \
                int rows = height - y0 < WG_TILE ? height - y0 : WG_TILE;                                        \
                int cols = width - x0 < WG_TILE ? width - x0 : WG_TILE;                                          \
                for (int i = 0; i < WG_TILE; i++) {                                                              \
                    float *qi = q + i * WG_TILE * count + p;                                                     \
                    if (i < rows) {                                                                              \
                        const float *row = plane + (size_t)(y0 + i) * width + x0;                                \
                        for (int j = 0; j < WG_TILE; j++) qi[j * count] = j < cols ? row[j] : 0.0f;              \
                    } else {                                                                                     \
                        for (int j = 0; j < WG_TILE; j++) qi[j * count] = 0.0f;                                  \
                    }                                                                                            \
                }                                                                                                \
            }                                                                                                    \
            /* Rows: t[i][b] = (q Aᵀ)[i][b] (4×6); columns: g[a][b] = (A t)[a][b] (6×6). */                       \
            WG_TO_PLANES(WG_GRADIENT_1D, q, WG_TILE, t, g, channels, k, count, count);                                  \
        }                                                                                                        \
    }

enum { WG_CAP = WG_ROUND_UP(WG_MAX_COUNT, 16) };

// Where the vector transforms read or write: for each tile p of a run (`at`, `count` tiles, then
// zeros up to `padded`) and each row and column i of an `n × n` patch that starts `shift` rows
// and columns before the tile, `rowAt[i·WG_CAP + p]` (the row's offset from the run's first
// image, clamped into the plane) and `colAt[i·WG_CAP + p]` (the column, clamped), and `rowIn`,
// `colIn`: -1 (all bits) inside the plane, 0 outside. Returns 0, writing nothing, when the
// offsets of `channels` planes would not fit in 32 bits (the caller then takes the scalar code).
static inline int wg_patch_tables(const WgTile *at, int count, int padded, int channels, int height, int width, int n,
                                  int shift, int32_t *rowAt, int32_t *colAt, int32_t *rowIn, int32_t *colIn) {
    if (at[count - 1].image - at[0].image + (size_t)channels * height * width > (size_t)INT32_MAX) return 0;
    for (int p = 0; p < padded; p++) {
        const int real = p < count;
        const int y0 = real ? at[p].y - shift : 0, x0 = real ? at[p].x - shift : 0;
        const int32_t image = real ? (int32_t)(at[p].image - at[0].image) : 0;
        for (int i = 0; i < n; i++) {
            rowAt[i * WG_CAP + p] = image + wg_clamp(y0 + i, height) * width;
            rowIn[i * WG_CAP + p] = (real && y0 + i >= 0 && y0 + i < height) ? -1 : 0;
            colAt[i * WG_CAP + p] = wg_clamp(x0 + i, width);
            colIn[i * WG_CAP + p] = (real && x0 + i >= 0 && x0 + i < width) ? -1 : 0;
        }
    }
    return 1;
}

// The input and gradient transforms with vector gathers (AVX2 and AVX-512), for patches of `n × n`
// values starting `shift` rows and columns before each tile (6 and 1 for the input, 4 and 0 for
// the output gradient) and the 1-D transform `OP_1D`: per group of `lanes` tiles, each patch
// value comes in with one gather, masked to zero outside the plane; the row pass runs on those
// registers, the column pass on the group's 6·n vectors, which stay in L1, and writes the
// element planes (rows of `ld` floats). The scalar code above stores each value on its own (36
// stores per tile and channel for the input, their addresses spilled from registers); this does
// n² gathers per group and ran the input transform 2–2.5× faster (README). Offsets are 32-bit,
// from the run's first image: a run whose offsets would not fit takes the scalar code. Each
// value is summed in the same order as there, so both give the same bits.
#define WINOGRAD_GATHERED(name, attributes, vec, ivec, lanes, GATHER, STORE, fallback, n, shift, OP_1D)           \
    static attributes void name(const float *x, int channels, int cBegin, int cEnd, int height, int width,       \
                                long first, int count, int ld, float *v, float *scratch) {                       \
        const size_t planeSize = (size_t)height * width;                                                        \
        WgTile at[WG_MAX_COUNT];                                                                                 \
        wg_locate(first, count, channels, height, width, at);                                                    \
        /* Per tile, row i of its patch starts at rowAt[i] (clamped into the plane) and column j */             \
        /* is colAt[j]; rowIn and colIn are -1 (all bits: gather) inside the plane, 0 outside. */               \
        int32_t rowAt[n][WG_CAP], colAt[n][WG_CAP], rowIn[n][WG_CAP], colIn[n][WG_CAP];                          \
        if (!wg_patch_tables(at, count, WG_ROUND_UP(count, lanes), channels, height, width, (n), (shift),         \
                             rowAt[0], colAt[0], rowIn[0], colIn[0])) {                                          \
            fallback(x, channels, cBegin, cEnd, height, width, first, count, ld, v, scratch);                    \
            return;                                                                                              \
        }                                                                                                        \
        const size_t stride = (size_t)WG_ALPHA * channels * ld;                                                  \
        for (int c = cBegin; c < cEnd; c++) {                                                                    \
            const float *base = x + at[0].image + c * planeSize;                                                 \
            for (int p0 = 0; p0 < count; p0 += lanes) {                                                          \
                const int rest = count - p0 < lanes ? count - p0 : lanes;                                        \
                vec t[(n) * WG_ALPHA];                                                                           \
                for (int i = 0; i < (n); i++) {                                                                  \
                    const ivec row = *(const ivec *)&rowAt[i][p0], inRow = *(const ivec *)&rowIn[i][p0];         \
                    vec d[(n)];                                                                                  \
                    for (int j = 0; j < (n); j++) {                                                              \
                        const ivec at_ = row + *(const ivec *)&colAt[j][p0];                                     \
                        const ivec in_ = inRow & *(const ivec *)&colIn[j][p0];                                   \
                        d[j] = GATHER(base, at_, in_);                                                           \
                    }                                                                                            \
                    OP_1D(d, 1, (t + i * WG_ALPHA), 1, 0);                                                       \
                }                                                                                                \
                for (int b = 0; b < WG_ALPHA; b++) {                                                             \
                    vec o[WG_ALPHA];                                                                             \
                    OP_1D((t + b), WG_ALPHA, o, 1, 0);                                                           \
                    float *out = v + ((size_t)b * channels + c) * ld + p0;                                       \
                    for (int a = 0; a < WG_ALPHA; a++) STORE(out + a * stride, o[a], rest);                      \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
    }

#define WINOGRAD_FILTER_GRADIENT(name, attributes)                                                                 \
    static attributes void name(const float *m, int outChannels, int inChannels, int kBegin, int kEnd,           \
                                float *gw) {                                                                     \
        const size_t plane = (size_t)outChannels * inChannels;                                                    \
        double mm[36 * WG_FILTER_LANES], s[18 * WG_FILTER_LANES], r[9 * WG_FILTER_LANES];                         \
        for (int k = kBegin; k < kEnd; k++) {                                                                     \
            for (int c0 = 0; c0 < inChannels; c0 += WG_FILTER_LANES) {                                            \
                const int lanes = inChannels - c0 < WG_FILTER_LANES ? inChannels - c0 : WG_FILTER_LANES;          \
                for (int e = 0; e < WG_ELEMENTS; e++) {                                                           \
                    const float *me = m + e * plane + (size_t)k * inChannels + c0;                                \
                    for (int q = 0; q < lanes; q++) mm[e * WG_FILTER_LANES + q] = me[q];                          \
                }                                                                                                 \
                /* Columns: s[i][b] = (Gᵀ m)[i][b] (3×6); rows: r[i][j] = (s G)[i][j] (3×3). */                   \
                for (int b = 0; b < 6; b++) {                                                                     \
                    const double *mb = mm + b * WG_FILTER_LANES;                                                  \
                    double *sb = s + b * WG_FILTER_LANES;                                                         \
                    for (int q = 0; q < lanes; q++) WG_FILTER_GRADIENT_1D(mb, 6 * WG_FILTER_LANES, sb, 6 * WG_FILTER_LANES, q); \
                }                                                                                                 \
                for (int i = 0; i < 3; i++) {                                                                     \
                    const double *si = s + i * 6 * WG_FILTER_LANES;                                               \
                    double *ri = r + i * 3 * WG_FILTER_LANES;                                                     \
                    for (int q = 0; q < lanes; q++) WG_FILTER_GRADIENT_1D(si, WG_FILTER_LANES, ri, WG_FILTER_LANES, q); \
                }                                                                                                 \
                for (int q = 0; q < lanes; q++) {                                                                 \
                    float *out = gw + ((size_t)k * inChannels + c0 + q) * 9;                                      \
                    for (int t = 0; t < 9; t++) out[t] = (float)r[t * WG_FILTER_LANES + q];                       \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    }

// The products `m[e] = u[e] · v[e]` of one run: `u` packed by ``snn_winograd_filter``, `v[e][c][p]`
// and `m[e][k][p]` rows of `ld` floats, `columns` tiles (a multiple of two `vec`s: `WG_NR` with
// AVX2's 8 floats, 32 with AVX-512's 16). Each register block, `WG_MR` output channels by two
// vectors of tiles, sums over input channels in order with one multiply-add per term, so a
// product does not depend on the blocking, the vector width, the run or the thread. Per element,
// the loop over blocks of output channels is the outer one: a block's filters (`WG_MR·inChannels`
// floats) stay in L1 while they meet every tile, and `v[e]` stays in L2.
typedef float wg_vec __attribute__((vector_size(32), aligned(4)));
typedef float wg_vec16 __attribute__((vector_size(64), aligned(4)));

#define WINOGRAD_MULTIPLY(name, attributes, vec)                                                                     \
    static attributes void name(const float *u, const float *v, int outChannels, int inChannels, int ld,             \
                                int columns, float *m) {                                                             \
        const int blocks = (outChannels + WG_MR - 1) / WG_MR, lanes = (int)(sizeof(vec) / sizeof(float));            \
        const size_t uPlane = (size_t)blocks * WG_MR * inChannels;                                                   \
        for (int e = 0; e < WG_ELEMENTS; e++) {                                                                      \
            const float *ve = v + (size_t)e * inChannels * ld;                                                       \
            float *me = m + (size_t)e * outChannels * ld;                                                            \
            for (int block = 0; block < blocks; block++) {                                                           \
                const float *panel = u + e * uPlane + (size_t)block * WG_MR * inChannels;                            \
                const int rows = outChannels - block * WG_MR < WG_MR ? outChannels - block * WG_MR : WG_MR;          \
                for (int p = 0; p < columns; p += 2 * lanes) {                                                       \
                    vec s00 = {0}, s01 = {0}, s10 = {0}, s11 = {0}, s20 = {0}, s21 = {0};                            \
                    vec s30 = {0}, s31 = {0}, s40 = {0}, s41 = {0}, s50 = {0}, s51 = {0};                            \
                    const float *a = panel, *b = ve + p;                                                             \
                    for (int c = 0; c < inChannels; c++, a += WG_MR, b += ld) {                                      \
                        const vec b0 = *(const vec *)b, b1 = *(const vec *)(b + lanes);                              \
                        s00 += a[0] * b0; s01 += a[0] * b1;                                                          \
                        s10 += a[1] * b0; s11 += a[1] * b1;                                                          \
                        s20 += a[2] * b0; s21 += a[2] * b1;                                                          \
                        s30 += a[3] * b0; s31 += a[3] * b1;                                                          \
                        s40 += a[4] * b0; s41 += a[4] * b1;                                                          \
                        s50 += a[5] * b0; s51 += a[5] * b1;                                                          \
                    }                                                                                                \
                    float *out = me + (size_t)block * WG_MR * ld + p;                                                \
                    const vec sums[WG_MR][2]      = {{s00, s01}, {s10, s11}, {s20, s21},                             \
                                                   {s30, s31}, {s40, s41}, {s50, s51}};                              \
                    for (int r = 0; r < rows; r++) {                                                                 \
                        *(vec *)(out + (size_t)r * ld) = sums[r][0];                                                 \
                        *(vec *)(out + (size_t)r * ld + lanes) = sums[r][1];                                         \
                    }                                                                                                \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }

// The weight gradient's products of one element: `m[k][c] (+)= Σ_p g[k][p] · v[c][p]` over a
// step of `count` tiles, `g` `[outChannels][count]`, `v` `[inChannels][count]`, `m`
// `[outChannels][inChannels]`. `v` is first packed into blocks of two `vec`s of channels, each
// `[count][2·lanes]` (zeros past the last channel), into `pack`; then per block of channels
// (its pack stays in L1) every block of `WG_MR` output channels sums over the step's tiles in
// order in registers and adds the sums to `m` once (or stores them, on a step without
// `accumulate`), so each sum's order does not depend on the blocking or the thread.
// The weight gradient's packing: rows `0 ..< columns` of `v` (`count` floats each) into
// `pack[p][width]`, zeros past `columns`. Plain loops, or with AVX-512 16×16 transposes in
// registers (three rounds of shuffles) for whole blocks of 16 channels and 16 tiles; the
// scalar loop spent about 15 % of the products' time here (perf annotate over a ResNet-19 step).
static inline void wg_pack_rows(const float *v, int columns, int count, int width, int jBegin, int pBegin,
                                float *pack) {
    for (int p = pBegin; p < count; p++) {
        float *row = pack + (size_t)p * width;
        for (int j = jBegin; j < columns; j++) row[j] = v[(size_t)j * count + p];
        for (int j = columns > jBegin ? columns : jBegin; j < width; j++) row[j] = 0;
    }
}
#define WG_PACK_SCALAR(v, columns, count, width, pack) wg_pack_rows((v), (columns), (count), (width), 0, 0, (pack))

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void wg_pack_avx512(const float *v, int columns, int count, int width,
                                                              float *pack) {
    const int whole = columns / 16 * 16, tiles = count / 16 * 16;
    for (int j0 = 0; j0 < whole; j0 += 16) {
        for (int p0 = 0; p0 < tiles; p0 += 16) {
            __m512 r[16], a[16], b[16], c[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(v + (size_t)(j0 + i) * count + p0);
            for (int i = 0; i < 8; i++) {
                a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
                a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
            }
            for (int i = 0; i < 4; i++) {
                const __m512d x0 = _mm512_castps_pd(a[4 * i]), x1 = _mm512_castps_pd(a[4 * i + 1]);
                const __m512d x2 = _mm512_castps_pd(a[4 * i + 2]), x3 = _mm512_castps_pd(a[4 * i + 3]);
                b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, x2));
                b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x2));
                b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, x3));
                b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, x3));
            }
            for (int i = 0; i < 4; i++) {
                c[i] = _mm512_shuffle_f32x4(b[i], b[i + 4], 0x88);
                c[i + 4] = _mm512_shuffle_f32x4(b[i], b[i + 4], 0xdd);
                c[i + 8] = _mm512_shuffle_f32x4(b[i + 8], b[i + 12], 0x88);
                c[i + 12] = _mm512_shuffle_f32x4(b[i + 8], b[i + 12], 0xdd);
            }
            // Tile p0 + k's 16 channels: rows 0 … 7 from c[k], 8 … 15 from c[k + 8] (k < 8), or the
            // upper halves of the same pairs (k ≥ 8).
            for (int k = 0; k < 8; k++) {
                _mm512_storeu_ps(pack + (size_t)(p0 + k) * width + j0, _mm512_shuffle_f32x4(c[k], c[k + 8], 0x88));
                _mm512_storeu_ps(pack + (size_t)(p0 + k + 8) * width + j0, _mm512_shuffle_f32x4(c[k], c[k + 8], 0xdd));
            }
        }
        // Tiles past the last whole block of 16, for these 16 channels.
        for (int p = tiles; p < count; p++) {
            for (int j = j0; j < j0 + 16; j++) pack[(size_t)p * width + j] = v[(size_t)j * count + p];
        }
    }
    // Channels past the last whole block of 16, and the zeros after them.
    wg_pack_rows(v, columns, count, width, whole, 0, pack);
}
#define WG_PACK_AVX512(v, columns, count, width, pack) wg_pack_avx512((v), (columns), (count), (width), (pack))
#endif

#define WINOGRAD_MULTIPLY_GRADIENT(name, attributes, vec, PACK)                                                      \
    static attributes void name(const float *g, const float *v, int outChannels, int inChannels, int count,          \
                                int accumulate, float *m, float *pack) {                                             \
        enum { lanes = (int)(sizeof(vec) / sizeof(float)), width = 2 * lanes };                                      \
        for (int c0 = 0; c0 < inChannels; c0 += width) {                                                             \
            const int columns = inChannels - c0 < width ? inChannels - c0 : width;                                   \
            PACK(v + (size_t)c0 * count, columns, count, width, pack);                                               \
            for (int k0 = 0; k0 < outChannels; k0 += WG_MR) {                                                        \
                const int rows = outChannels - k0 < WG_MR ? outChannels - k0 : WG_MR;                                \
                const float *a[WG_MR];                                                                               \
                for (int r = 0; r < WG_MR; r++) a[r] = g + (size_t)(k0 + (r < rows ? r : 0)) * count;                \
                vec s00 = {0}, s01 = {0}, s10 = {0}, s11 = {0}, s20 = {0}, s21 = {0};                                \
                vec s30 = {0}, s31 = {0}, s40 = {0}, s41 = {0}, s50 = {0}, s51 = {0};                                \
                const float *b = pack;                                                                               \
                for (int p = 0; p < count; p++, b += width) {                                                        \
                    const vec b0 = *(const vec *)b, b1 = *(const vec *)(b + lanes);                                  \
                    s00 += a[0][p] * b0; s01 += a[0][p] * b1;                                                        \
                    s10 += a[1][p] * b0; s11 += a[1][p] * b1;                                                        \
                    s20 += a[2][p] * b0; s21 += a[2][p] * b1;                                                        \
                    s30 += a[3][p] * b0; s31 += a[3][p] * b1;                                                        \
                    s40 += a[4][p] * b0; s41 += a[4][p] * b1;                                                        \
                    s50 += a[5][p] * b0; s51 += a[5][p] * b1;                                                        \
                }                                                                                                    \
                const vec sums[WG_MR][2] = {{s00, s01}, {s10, s11}, {s20, s21},                                      \
                                            {s30, s31}, {s40, s41}, {s50, s51}};                                     \
                for (int r = 0; r < rows; r++) {                                                                     \
                    float *out = m + (size_t)(k0 + r) * inChannels + c0;                                             \
                    const float *sum = (const float *)&sums[r][0];                                                   \
                    if (columns == width && accumulate) {                                                            \
                        *(vec *)out += sums[r][0];                                                                   \
                        *(vec *)(out + lanes) += sums[r][1];                                                         \
                    } else if (columns == width) {                                                                   \
                        *(vec *)out = sums[r][0];                                                                    \
                        *(vec *)(out + lanes) = sums[r][1];                                                          \
                    } else {                                                                                         \
                        for (int j = 0; j < columns; j++) out[j] = (accumulate ? out[j] : 0.0f) + sum[j];            \
                    }                                                                                                \
                }                                                                                                    \
            }                                                                                                        \
        }                                                                                                            \
    }

// The AVX2 + FMA variants, chosen at run time on x86-64 (elsewhere both names are the base code).
#if defined(__x86_64__)
#define WG_AVX2_TARGET __attribute__((target("avx2,fma")))
#define WG_HAS_AVX2() (snn_kernel_isa() >= SNN_ISA_AVX2)
#define WG_AVX512_TARGET __attribute__((target("avx512f,fma")))
#define WG_HAS_AVX512() (snn_kernel_isa() >= SNN_ISA_AVX512)
#else
#define WG_AVX512_TARGET
#define WG_HAS_AVX512() 0
#define WG_AVX2_TARGET
#define WG_HAS_AVX2() 0
#endif

WINOGRAD_FILTER(winograd_filter_base, )
WINOGRAD_FILTER(winograd_filter_avx2, WG_AVX2_TARGET)
WINOGRAD_INPUT(winograd_input_base, )
WINOGRAD_INPUT(winograd_input_scalar_avx2, WG_AVX2_TARGET)
WINOGRAD_INPUT(winograd_input_scalar_avx512, WG_AVX512_TARGET)
WINOGRAD_GRADIENT(winograd_gradient_base, )
WINOGRAD_GRADIENT(winograd_gradient_scalar_avx2, WG_AVX2_TARGET)
WINOGRAD_GRADIENT(winograd_gradient_scalar_avx512, WG_AVX512_TARGET)
#if defined(__x86_64__)
typedef int32_t wg_ivec __attribute__((vector_size(32), aligned(4)));
typedef int32_t wg_ivec16 __attribute__((vector_size(64), aligned(4)));
#define WG_GATHER_AVX2(base, at, in)                                                                                 \
    ((wg_vec)_mm256_mask_i32gather_ps(_mm256_setzero_ps(), (base), (__m256i)(at), (__m256)(in), 4))
#define WG_STORE_AVX2(out, value, rest)                                                                              \
    do {                                                                                                             \
        if ((rest) == 8) *(wg_vec *)(out) = (value);                                                                 \
        else _mm256_maskstore_ps((out), (__m256i)(wg_lanes_below8(rest)), (__m256)(value));                          \
    } while (0)
#define WG_GATHER_AVX512(base, at, in)                                                                               \
    ((wg_vec16)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), _mm512_test_epi32_mask((__m512i)(in), (__m512i)(in)),   \
                                         (__m512i)(at), (base), 4))
#define WG_STORE_AVX512(out, value, rest)                                                                            \
    _mm512_mask_storeu_ps((out), (__mmask16)((1u << (rest)) - 1), (__m512)(value))
// Lanes `0 ..< rest` of all ones, the rest zero: the mask of a group's last, partial tiles.
static inline WG_AVX2_TARGET wg_ivec wg_lanes_below8(int rest) {
    wg_ivec lanes = {0, 1, 2, 3, 4, 5, 6, 7};
    return lanes < rest;
}
WINOGRAD_GATHERED(winograd_input_avx2, WG_AVX2_TARGET, wg_vec, wg_ivec, 8, WG_GATHER_AVX2, WG_STORE_AVX2,
                  winograd_input_scalar_avx2, WG_ALPHA, 1, WG_INPUT_1D)
WINOGRAD_GATHERED(winograd_input_avx512, WG_AVX512_TARGET, wg_vec16, wg_ivec16, 16, WG_GATHER_AVX512,
                  WG_STORE_AVX512, winograd_input_scalar_avx512, WG_ALPHA, 1, WG_INPUT_1D)
// The gradient transforms' planes are rows of `count` floats; the scalar fallback's signature has no `ld`.
#define WG_GRADIENT_SCALAR_AVX2(gy, channels, kBegin, kEnd, height, width, first, count, ld, g, scratch) \
    winograd_gradient_scalar_avx2(gy, channels, kBegin, kEnd, height, width, first, count, g, scratch)
#define WG_GRADIENT_SCALAR_AVX512(gy, channels, kBegin, kEnd, height, width, first, count, ld, g, scratch) \
    winograd_gradient_scalar_avx512(gy, channels, kBegin, kEnd, height, width, first, count, g, scratch)
WINOGRAD_GATHERED(winograd_gradient_ld_avx2, WG_AVX2_TARGET, wg_vec, wg_ivec, 8, WG_GATHER_AVX2, WG_STORE_AVX2,
                  WG_GRADIENT_SCALAR_AVX2, WG_TILE, 0, WG_GRADIENT_1D)
WINOGRAD_GATHERED(winograd_gradient_ld_avx512, WG_AVX512_TARGET, wg_vec16, wg_ivec16, 16, WG_GATHER_AVX512,
                  WG_STORE_AVX512, WG_GRADIENT_SCALAR_AVX512, WG_TILE, 0, WG_GRADIENT_1D)
#define winograd_gradient_avx2(gy, channels, kBegin, kEnd, height, width, first, count, g, scratch) \
    winograd_gradient_ld_avx2(gy, channels, kBegin, kEnd, height, width, first, count, count, g, scratch)
#define winograd_gradient_avx512(gy, channels, kBegin, kEnd, height, width, first, count, g, scratch) \
    winograd_gradient_ld_avx512(gy, channels, kBegin, kEnd, height, width, first, count, count, g, scratch)
#else
#define winograd_input_avx2 winograd_input_scalar_avx2
#define winograd_input_avx512 winograd_input_scalar_avx512
#define winograd_gradient_avx2 winograd_gradient_scalar_avx2
#define winograd_gradient_avx512 winograd_gradient_scalar_avx512
#endif
WINOGRAD_OUTPUT(winograd_output_base, )
WINOGRAD_OUTPUT(winograd_output_avx2, WG_AVX2_TARGET)
WINOGRAD_OUTPUT(winograd_output_scalar_avx512, WG_AVX512_TARGET)
#if defined(__x86_64__)
// The output transform with AVX-512 scatters: per output channel and group of 16 tiles the 36
// products come in as vectors, both passes run in registers (in the scalar code's order, so the
// bits are the same) and each of the 16 outputs of a tile goes out with one scatter, masked where
// the tile runs past the image. The scalar code stores every value on its own after two passes
// through scratch; AVX2 has no scatter and keeps it.
static WG_AVX512_TARGET void winograd_output_avx512(const float *m, int channels, int height, int width, long first,
                                                    int count, int ld, const float *bias, float *y, float *scratch) {
    const size_t planeSize = (size_t)height * width;
    WgTile at[WG_MAX_COUNT];
    wg_locate(first, count, channels, height, width, at);
    // Per tile and row r (column j) of its 4×4 outputs: where it goes and whether it is inside;
    // per group of 16 tiles and output (r, j), the mask of tiles that write it.
    int32_t rowAt[WG_TILE][WG_CAP], colAt[WG_TILE][WG_CAP], rowIn[WG_TILE][WG_CAP], colIn[WG_TILE][WG_CAP];
    if (!wg_patch_tables(at, count, WG_ROUND_UP(count, 16), channels, height, width, WG_TILE, 0, rowAt[0], colAt[0],
                         rowIn[0], colIn[0])) {
        winograd_output_scalar_avx512(m, channels, height, width, first, count, ld, bias, y, scratch);
        return;
    }
    __mmask16 inside[WG_TILE][WG_TILE][WG_CAP / 16];
    for (int p0 = 0; p0 < count; p0 += 16) {
        for (int r = 0; r < WG_TILE; r++) {
            for (int j = 0; j < WG_TILE; j++) {
                const __m512i in = _mm512_and_si512(_mm512_loadu_si512(&rowIn[r][p0]), _mm512_loadu_si512(&colIn[j][p0]));
                inside[r][j][p0 / 16] = _mm512_test_epi32_mask(in, in);
            }
        }
    }
    const size_t stride = (size_t)WG_ALPHA * channels * ld;
    for (int k = 0; k < channels; k++) {
        float *base = y + at[0].image + k * planeSize;
        const wg_vec16 add = (wg_vec16){0} + (bias ? bias[k] : 0.0f);
        for (int p0 = 0; p0 < count; p0 += 16) {
            const int group = p0 / 16, rest = count - p0 < 16 ? count - p0 : 16;
            const __mmask16 live = (__mmask16)((1u << rest) - 1);
            wg_vec16 s[WG_TILE * WG_ALPHA];
            /* Columns: s[r][q] = (Aᵀ m)[r][q]; rows: o[r][j] = (s A)[r][j]. */
            for (int q = 0; q < WG_ALPHA; q++) {
                wg_vec16 mq[WG_ALPHA];
                for (int r = 0; r < WG_ALPHA; r++) {
                    mq[r] = (wg_vec16)_mm512_maskz_loadu_ps(live, m + ((size_t)q * channels + k) * ld + r * stride + p0);
                }
                WG_OUTPUT_1D(mq, 1, (s + q), WG_ALPHA, 0);
            }
            for (int r = 0; r < WG_TILE; r++) {
                wg_vec16 o[WG_TILE];
                WG_OUTPUT_1D((s + r * WG_ALPHA), 1, o, 1, 0);
                const __m512i row = _mm512_loadu_si512(&rowAt[r][p0]);
                for (int j = 0; j < WG_TILE; j++) {
                    const __m512i to = _mm512_add_epi32(row, _mm512_loadu_si512(&colAt[j][p0]));
                    _mm512_mask_i32scatter_ps(base, inside[r][j][group], to, (__m512)(o[j] + add), 4);
                }
            }
        }
    }
}
#else
#define winograd_output_avx512 winograd_output_scalar_avx512
#endif
WINOGRAD_FILTER_GRADIENT(winograd_filter_gradient_base, )
WINOGRAD_FILTER_GRADIENT(winograd_filter_gradient_avx2, WG_AVX2_TARGET)
WINOGRAD_MULTIPLY(winograd_multiply_base, , wg_vec)
WINOGRAD_MULTIPLY(winograd_multiply_avx2, WG_AVX2_TARGET, wg_vec)
WINOGRAD_MULTIPLY(winograd_multiply_avx512, WG_AVX512_TARGET, wg_vec16)
WINOGRAD_MULTIPLY_GRADIENT(winograd_multiply_gradient_base, , wg_vec, WG_PACK_SCALAR)
WINOGRAD_MULTIPLY_GRADIENT(winograd_multiply_gradient_avx2, WG_AVX2_TARGET, wg_vec, WG_PACK_SCALAR)
WINOGRAD_MULTIPLY_GRADIENT(winograd_multiply_gradient_avx512, WG_AVX512_TARGET, wg_vec16, WG_PACK_AVX512)

size_t snn_winograd_filter_floats(int outChannels, int inChannels) {
    return (size_t)WG_ELEMENTS * WG_ROUND_UP(outChannels, WG_MR) * inChannels;
}

void snn_winograd_filter(const float *weights, int outChannels, int inChannels, int transposeFlip, int kBegin,
                         int kEnd, float *u) {
    if (WG_HAS_AVX2()) {
        winograd_filter_avx2(weights, outChannels, inChannels, transposeFlip, kBegin, kEnd, u);
    } else {
        winograd_filter_base(weights, outChannels, inChannels, transposeFlip, kBegin, kEnd, u);
    }
}

void snn_winograd_input(const float *x, int channels, int cBegin, int cEnd, int height, int width, long first,
                        int count, int ld, float *v, float *scratch) {
    if (WG_HAS_AVX512()) {
        winograd_input_avx512(x, channels, cBegin, cEnd, height, width, first, count, ld, v, scratch);
    } else if (WG_HAS_AVX2()) {
        winograd_input_avx2(x, channels, cBegin, cEnd, height, width, first, count, ld, v, scratch);
    } else {
        winograd_input_base(x, channels, cBegin, cEnd, height, width, first, count, ld, v, scratch);
    }
}

void snn_winograd_gradient(const float *gy, int channels, int kBegin, int kEnd, int height, int width, long first,
                           int count, float *g, float *scratch) {
    if (WG_HAS_AVX512()) {
        winograd_gradient_avx512(gy, channels, kBegin, kEnd, height, width, first, count, g, scratch);
    } else if (WG_HAS_AVX2()) {
        winograd_gradient_avx2(gy, channels, kBegin, kEnd, height, width, first, count, g, scratch);
    } else {
        winograd_gradient_base(gy, channels, kBegin, kEnd, height, width, first, count, g, scratch);
    }
}

void snn_winograd_filter_gradient(const float *m, int outChannels, int inChannels, int kBegin, int kEnd, float *gw) {
    if (WG_HAS_AVX2()) {
        winograd_filter_gradient_avx2(m, outChannels, inChannels, kBegin, kEnd, gw);
    } else {
        winograd_filter_gradient_base(m, outChannels, inChannels, kBegin, kEnd, gw);
    }
}

void snn_winograd_output(const float *m, int channels, int height, int width, long first, int count, int ld,
                         const float *bias, float *y, float *scratch) {
    if (WG_HAS_AVX512()) {
        winograd_output_avx512(m, channels, height, width, first, count, ld, bias, y, scratch);
    } else if (WG_HAS_AVX2()) {
        winograd_output_avx2(m, channels, height, width, first, count, ld, bias, y, scratch);
    } else {
        winograd_output_base(m, channels, height, width, first, count, ld, bias, y, scratch);
    }
}

void snn_winograd_multiply(const float *u, float *v, int outChannels, int inChannels, int count, int ld, float *m) {
    const int avx512 = WG_HAS_AVX512(), avx2 = WG_HAS_AVX2();
    // The last register block's tiles past `count` multiply zeros, not whatever an earlier run left.
    const int columns = WG_ROUND_UP(count, avx512 ? 2 * WG_NR : WG_NR);
    if (columns > count) {
        for (size_t row = 0; row < (size_t)WG_ELEMENTS * inChannels; row++) {
            memset(v + row * ld + count, 0, (size_t)(columns - count) * sizeof(float));
        }
    }
    if (avx512) {
        winograd_multiply_avx512(u, v, outChannels, inChannels, ld, columns, m);
    } else if (avx2) {
        winograd_multiply_avx2(u, v, outChannels, inChannels, ld, columns, m);
    } else {
        winograd_multiply_base(u, v, outChannels, inChannels, ld, columns, m);
    }
}

size_t snn_winograd_gradient_pack_floats(int count) { return (size_t)2 * 16 * count; }

void snn_winograd_multiply_gradient(const float *g, const float *v, int outChannels, int inChannels, int count,
                                    int accumulate, float *m, float *pack) {
    if (WG_HAS_AVX512()) {
        winograd_multiply_gradient_avx512(g, v, outChannels, inChannels, count, accumulate, m, pack);
    } else if (WG_HAS_AVX2()) {
        winograd_multiply_gradient_avx2(g, v, outChannels, inChannels, count, accumulate, m, pack);
    } else {
        winograd_multiply_gradient_base(g, v, outChannels, inChannels, count, accumulate, m, pack);
    }
}
