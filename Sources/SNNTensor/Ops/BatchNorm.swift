/// Batch normalisation over every axis but 1 of `[N, C, ...]`.
///
/// For tdBN, call it on `[T·N, C, H, W]`: statistics over time and batch together.
///
/// - Training (`training: true`): normalises with the batch mean and biased variance and
///   updates the running statistics in place: `running = (1 - momentum)·running + momentum·stat`,
///   with the unbiased variance, as PyTorch. Gradients flow to `x`, `gamma` and `beta`.
/// - Eval: normalises with `runningMean`/`runningVar`; gradients flow through the affine map.
public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                      training: Bool, momentum: Double = 0.1, epsilon: Double = 1e-5) -> Tensor {
    precondition(x.rank >= 2, "[batchNorm] expected a [N, C, ...] input, got \(ShapeUtil.describe(x.shape))")
    let c = x.shape[1]
    for (name, t) in [("gamma", gamma), ("beta", beta), ("runningMean", runningMean), ("runningVar", runningVar)] {
        precondition(t.shape == [c], "[batchNorm] expected \(name) of shape [\(c)], got \(ShapeUtil.describe(t.shape))")
    }
    let cx = x.contiguousData()
    let (out, mean, variance) = x.backend.batchNorm(cx, gamma: gamma.contiguousData(), beta: beta.contiguousData(),
                                                    runningMean: runningMean, runningVar: runningVar,
                                                    epsilon: epsilon, training: training)
    if training {
        let n = Double(x.count / c)
        withoutGradients {
            runningMean.assign(runningMean * (1 - momentum) + mean * momentum)
            runningVar.assign(runningVar * (1 - momentum) + variance * (momentum * n / Swift.max(n - 1, 1)))
        }
        return record("batchNorm", out, [x, gamma, beta]) { g in
            let r = x.backend.batchNormBackward(g.contiguousData(), input: cx, gamma: gamma.contiguousData(),
                                                mean: mean, variance: variance, epsilon: epsilon)
            return [r.input, r.gamma, r.beta]
        }
    }
    // Eval mode is an affine map per channel: y = x·a + b with a = γ/√(var+ε).
    let bshape = [1, c] + [Int](repeating: 1, count: x.rank - 2)
    return record("batchNormEval", out, [x, gamma, beta]) { g in
        let std = (runningVar + epsilon).sqrt().reshaped(bshape)
        let axes = [0] + Array(2..<x.rank)
        let xhat = (cx - runningMean.reshaped(bshape)) / std
        return [g * gamma.reshaped(bshape) / std, (g * xhat).sum(axes: axes), g.sum(axes: axes)]
    }
}
