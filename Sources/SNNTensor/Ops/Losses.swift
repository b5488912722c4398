/// Softmax, cross-entropy, MSE and one-hot, composed from primitives (no gradient code of
/// their own but for the max shift, which is a constant).

/// `log softmax` along `axis`, computed stably as `x - max - log Σ exp(x - max)`.
public func logSoftmax(_ x: Tensor, axis: Int = -1) -> Tensor {
    let a = ShapeUtil.axis(axis, rank: x.rank, op: "logSoftmax")
    let shift = withoutGradients { x.max(axes: [a], keepDims: true) }.detached()
    let z = x - shift
    return z - z.exp().sum(axes: [a], keepDims: true).log()
}

/// `[N]` integer labels to `[N, classes]` one-hot rows (no gradient).
public func oneHot(_ labels: Tensor, classes: Int, dtype: DType = .float32) -> Tensor {
    precondition(labels.rank == 1, "[oneHot] expected [N] labels, got \(ShapeUtil.describe(labels.shape))")
    precondition(!labels.dtype.isFloatingPoint, "[oneHot] expected integer labels, got \(labels.dtype)")
    precondition(classes > 0, "[oneHot] expected a positive class count, got \(classes)")
    return labels.backend.oneHot(labels.contiguousData(), classes: classes, dtype: dtype)
}

/// Mean over the batch of `-log softmax(logits)[label]`.
///
/// - Parameters:
///   - logits: `[N, K]`.
///   - labels: `[N]` integers in `0..<K` (int32 or int64).
public func crossEntropy(logits: Tensor, labels: Tensor) -> Tensor {
    precondition(logits.rank == 2, "[crossEntropy] expected [N, K] logits, got \(ShapeUtil.describe(logits.shape))")
    precondition(labels.shape == [logits.shape[0]], "[crossEntropy] expected labels of shape [\(logits.shape[0])], got \(ShapeUtil.describe(labels.shape))")
    let target = oneHot(labels.to(logits.device), classes: logits.shape[1], dtype: logits.dtype)
    return -(logSoftmax(logits) * target).sum() / Double(logits.shape[0])
}

/// Mean squared error over all elements; `target` broadcasts to `prediction`.
public func mse(_ prediction: Tensor, _ target: Tensor) -> Tensor {
    (prediction - target).square().mean()
}

/// Inverted dropout: zeroes each element with probability `p` and scales the rest by
/// `1/(1-p)`; the identity when `training` is false or `p == 0`.
public func dropout(_ x: Tensor, p: Double, training: Bool, generator: RandomGenerator) -> Tensor {
    precondition(p >= 0 && p < 1, "[dropout] expected 0 <= p < 1, got \(p)")
    guard training && p > 0 else { return x }
    let keep = Tensor.bernoulli(x.shape, probability: 1 - p, generator: generator, dtype: x.dtype, device: x.device)
    return x * (keep / (1 - p))
}
