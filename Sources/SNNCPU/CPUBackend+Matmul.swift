import COpenBLAS
import SNNTensor

/// GEMM through OpenBLAS (OpenMP flavour: it shares libgomp's thread pool with oneDNN).
extension CPUBackend {
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        guard a.dtype == .float32 else { return reference.matmul(a, b, transposeA: transposeA, transposeB: transposeB) }
        let m = transposeA ? a.shape[1] : a.shape[0], k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        let c = Tensor.empty([m, n], device: .cpu)
        if m == 0 || n == 0 { return c }
        if k == 0 { return Tensor.zeros([m, n], device: .cpu) }
        // Row-major: leading dimensions are the stored row lengths.
        DNNL.lock.withLock {
            cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), 1, a.pointer(as: Float.self), Int32(a.shape[1]),
                        b.pointer(as: Float.self), Int32(b.shape[1]), 0, c.pointer(as: Float.self), Int32(n))
        }
        return c
    }
}
