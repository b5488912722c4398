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
    if training, CrossProcessBatchNorm.group != nil {
        // Over every process (--sync-bn): the union's statistics, then an affine map with them.
        let (mean, variance, union) = trainingStatistics(cx, runningMean: runningMean, runningVar: runningVar, momentum: momentum)
        let gammaData = gamma.contiguousData()
        let out = x.backend.batchNorm(cx, gamma: gammaData, beta: beta.contiguousData(), runningMean: mean, runningVar: variance,
                                      epsilon: epsilon, training: false).output
        return record("batchNorm", out, [x, gamma, beta]) { g in
            let r = x.backend.batchNormBackward(g.contiguousData(), input: cx, gamma: gammaData, mean: mean, variance: variance,
                                                epsilon: epsilon)
            let input = union?.gradientInput(r.input, x: cx, gamma: gammaData, mean: mean, variance: variance, epsilon: epsilon,
                                             gammaSum: r.gamma, betaSum: r.beta) ?? r.input
            return [input, r.gamma, r.beta]
        }
    }
    let (out, mean, variance) = x.backend.batchNorm(cx, gamma: gamma.contiguousData(), beta: beta.contiguousData(),
                                                    runningMean: runningMean, runningVar: runningVar,
                                                    epsilon: epsilon, training: training)
    if training {
        updateRunning(runningMean, runningVar, mean: mean, variance: variance, momentum: momentum, unbiasing: unbiasingFactor(x.count / c))
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

/// The batch mean and biased variance `[C]` that normalise `x` (`[N, C, ...]`, contiguous) in
/// training: this process's, or while ``CrossProcessBatchNorm/group`` is set every process's (then
/// with the union that the backward pass needs); the running statistics are updated with them.
func trainingStatistics(_ x: Tensor, runningMean: Tensor, runningVar: Tensor, momentum: Double)
    -> (mean: Tensor, variance: Tensor, union: CrossProcessBatchNorm.Union?) {
    let local = x.backend.batchNormStatistics(x)
    let n = x.count / x.shape[1]
    guard var union = CrossProcessBatchNorm.Union.current else {
        updateRunning(runningMean, runningVar, mean: local.mean, variance: local.variance, momentum: momentum, unbiasing: unbiasingFactor(n))
        return (local.mean, local.variance, nil)
    }
    let (mean, variance) = union.statistics(mean: local.mean, variance: local.variance, localCount: n)
    updateRunning(runningMean, runningVar, mean: mean, variance: union.unbiased(variance), momentum: momentum, unbiasing: 1)
    return (mean, variance, union)
}

/// `running = (1 − momentum)·running + momentum·stat`, the variance times `unbiasing` (`n/(n − 1)`
/// over `n` elements per channel, as PyTorch).
func updateRunning(_ runningMean: Tensor, _ runningVar: Tensor, mean: Tensor, variance: Tensor, momentum: Double, unbiasing: Double) {
    withoutGradients {
        runningMean.assign(runningMean * (1 - momentum) + mean * momentum)
        runningVar.assign(runningVar * (1 - momentum) + variance * (momentum * unbiasing))
    }
}

/// The factor that unbiases a variance over `n` elements: `n / max(n − 1, 1)`.
private func unbiasingFactor(_ n: Int) -> Double { Double(n) / Double(Swift.max(n - 1, 1)) }
