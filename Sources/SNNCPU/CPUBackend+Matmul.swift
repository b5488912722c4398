import COpenBLAS
import SNNTensor

/// GEMM through OpenBLAS (the OpenMP flavour, so it shares libgomp's thread pool with
/// oneDNN). On the 2-core Zen 4 development machine OpenBLAS 0.3.21 runs its Cooperlake
/// kernels: about 205 GFLOP/s at 1024³, within 7% of oneDNN's own `dnnl_sgemm`.
extension CPUBackend {
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        guard computesNatively("matmul", a, b) else { return reference.matmul(a, b, transposeA: transposeA, transposeB: transposeB) }
        let (a, b) = (a.contiguousData(), b.contiguousData())
        precondition(a.rank == 2 && b.rank == 2, "[matmul] expected 2-D operands, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0], k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == (transposeB ? b.shape[1] : b.shape[0]),
                     "[matmul] expected matching inner dimensions, got \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        // Empty operands give zeros without calling BLAS, which rejects leading dimensions
        // below 1.
        if k == 0 || m == 0 || n == 0 { return Tensor.zeros([m, n], device: .cpu) }
        let c = Tensor.empty([m, n], device: .cpu)
        // Row-major: each leading dimension is the stored row length of the operand.
        // The lock keeps a second caller from starting an OpenMP team beside oneDNN's.
        DNNL.locked {
            cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), 1, a.pointer(as: Float.self), Int32(a.shape[1]),
                        b.pointer(as: Float.self), Int32(b.shape[1]), 0, c.pointer(as: Float.self), Int32(n))
        }
        return c
    }
}
