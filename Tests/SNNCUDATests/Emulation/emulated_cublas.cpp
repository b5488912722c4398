// A cuBLAS (libcublas.so.13) for tests on machines without a GPU, beside the emulated driver:
// the handle calls, and cublasSgemm_v2 computed on the host from cuBLAS's documented
// column-major definition, C = α·op(A)·op(B) + β·C with op(X)[i][j] = X[i + j·ld] (X[j + i·ld]
// when transposed), so the CUDA backend's row-major mapping onto it is what the tests check.
#include <cstdlib>
#include <cstring>

#include "device_addresses.h"

extern "C" {
struct cublasContext {
    void *stream;
    unsigned math;
};

int cublasGetProperty(int type, int *value) {
    static const int version[] = {13, 10, 0};
    if (type < 0 || type > 2) return 7;   // CUBLAS_STATUS_INVALID_VALUE
    *value = version[type];
    return 0;
}
int cublasCreate_v2(cublasContext **handle) {
    *handle = new cublasContext{nullptr, 0};
    return 0;
}
int cublasDestroy_v2(cublasContext *handle) {
    delete handle;
    return 0;
}
int cublasSetStream_v2(cublasContext *handle, void *stream) {
    handle->stream = stream;
    return 0;
}
int cublasSetMathMode(cublasContext *handle, unsigned mode) {
    handle->math = mode;
    return 0;
}
static float element(const float *x, int ld, unsigned op, int i, int j) { return op == 0 ? x[i + j * ld] : x[j + i * ld]; }
int cublasSgemm_v2(cublasContext *handle, unsigned transa, unsigned transb, int m, int n, int k, const float *alpha,
                   const float *a, int lda, const float *b, int ldb, const float *beta, float *c, int ldc) {
    if (!handle || transa > 1 || transb > 1 || m < 0 || n < 0 || k < 0) return 7;
    // The matrices are device memory; α and β, in the default pointer mode, host memory.
    a = snn_host_pointer(a);
    b = snn_host_pointer(b);
    c = snn_host_pointer(c);
    // Leading dimensions at least the stored rows, as cuBLAS checks.
    if (lda < (transa == 0 ? m : k) || ldb < (transb == 0 ? k : n) || ldc < m || lda < 1 || ldb < 1 || ldc < 1) return 7;
    if (snn_emulated_no_work()) return 0;
    snn_emulated_wait_for_stream();
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double sum = 0;
            for (int l = 0; l < k; l++) sum += (double)element(a, lda, transa, i, l) * element(b, ldb, transb, l, j);
            float previous = *beta == 0.0f ? 0.0f : c[i + j * ldc];   // β = 0: C is not read
            c[i + j * ldc] = (float)(*alpha * sum + *beta * previous);
        }
    return 0;
}

// cublasGemmEx for the types --amp uses: A and B float32, half (2) or bfloat16 (14), C float32,
// compute CUBLAS_COMPUTE_32F (68), the default algorithm (-1).
static float widen(const void *x, unsigned type, long long i) {
    if (type == 0) return ((const float *)x)[i];
    unsigned short h = ((const unsigned short *)x)[i];
    unsigned int bits;
    if (type == 14) {
        bits = (unsigned int)h << 16;
    } else {
        unsigned int sign = (unsigned int)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        if (e == 31) bits = sign | 0x7f800000u | (m << 13);
        else if (e == 0) { float v = (float)m * 5.9604644775390625e-8f; return sign ? -v : v; }
        else bits = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
int cublasGemmEx(cublasContext *handle, unsigned transa, unsigned transb, int m, int n, int k, const void *alpha, const void *a,
                 unsigned atype, int lda, const void *b, unsigned btype, int ldb, const void *beta, void *c, unsigned ctype,
                 int ldc, unsigned compute, int algo) {
    auto known = [](unsigned t) { return t == 0 || t == 2 || t == 14; };
    if (!handle || !known(atype) || !known(btype) || ctype != 0 || compute != 68 || algo != -1) return 7;
    if (transa > 1 || transb > 1 || m < 0 || n < 0 || k < 0) return 7;
    if (lda < (transa == 0 ? m : k) || ldb < (transb == 0 ? k : n) || ldc < m || lda < 1 || ldb < 1 || ldc < 1) return 7;
    a = snn_host_pointer(a);
    b = snn_host_pointer(b);
    float *out = snn_host_pointer((float *)c);
    float al = *(const float *)alpha, be = *(const float *)beta;
    if (snn_emulated_no_work()) return 0;
    snn_emulated_wait_for_stream();
    snn_emulated_wait_for_stream();
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double sum = 0;
            for (int l = 0; l < k; l++) {
                long long ia = transa == 0 ? i + (long long)l * lda : l + (long long)i * lda;
                long long ib = transb == 0 ? l + (long long)j * ldb : j + (long long)l * ldb;
                sum += (double)widen(a, atype, ia) * widen(b, btype, ib);
            }
            float previous = be == 0.0f ? 0.0f : out[i + j * ldc];
            out[i + j * ldc] = (float)(al * sum + be * previous);
        }
    return 0;
}
}
