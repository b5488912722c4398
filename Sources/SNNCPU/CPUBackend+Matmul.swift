import SNNTensor

// STUB: delegates to the reference backend until OpenBLAS lands.
extension CPUBackend {
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) -> Tensor {
        reference.matmul(a, b, transposeA: transposeA, transposeB: transposeB)
    }
}
