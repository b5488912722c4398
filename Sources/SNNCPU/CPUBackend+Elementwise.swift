import SNNTensor

// STUB: delegates to the reference backend until the fast kernels land.
extension CPUBackend {
    public func contiguous(_ x: Tensor) -> Tensor { reference.contiguous(x) }
    public func cast(_ x: Tensor, to dtype: DType) -> Tensor { reference.cast(x, to: dtype) }
    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor { reference.unary(op, x) }
    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor { reference.binary(op, a, b) }
    public func clamp(_ x: Tensor, low: Double, high: Double) -> Tensor { reference.clamp(x, low: low, high: high) }
    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor { reference.select(condition, a, b) }
    public func reduce(_ op: ReduceOp, _ x: Tensor, axes: [Int]) -> Tensor { reference.reduce(op, x, axes: axes) }
    public func oneHot(_ labels: Tensor, classes: Int, dtype: DType) -> Tensor { reference.oneHot(labels, classes: classes, dtype: dtype) }
}
