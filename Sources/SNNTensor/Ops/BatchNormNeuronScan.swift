/// Training-mode batch norm and the multi-step neuron as one op, whose backward pass keeps
/// only the pre-normalisation activations and the batch statistics.
///
/// `batchNorm` followed by `neuronScan` would keep the normalised activations (the neuron's
/// input) and the potentials `h_t` for their rules: two float32 tensors per spiking layer on
/// top of the convolution output that batch norm's own rule keeps anyway. This op keeps that
/// convolution output and `[C]` statistics only; its backward pass recomputes the normalised
/// activations and the potentials from them with the same code as the forward pass, so the
/// spikes it differentiates are bit for bit the ones the forward pass emitted.
///
/// - Parameters:
///   - x: `[T·N, C, ...]`, time-major (frame `t·N + n`), typically a convolution's output.
///   - steps: T; must divide `x.shape[0]`.
///   - gamma, beta: `[C]` affine parameters.
///   - runningMean, runningVar: `[C]` running statistics, updated in place as by
///     ``batchNorm(_:gamma:beta:runningMean:runningVar:training:momentum:epsilon:)``.
///   - residual: added to the normalised activations before the neuron (a residual block's
///     shortcut, `[T·N, C, ...]` like `x`); kept as bytes for the backward pass when it holds
///     spikes.
///   - neuron: the neuron of ``neuronScan(_:_:)``.
/// - Returns: spikes `[T·N, C, ...]` (0 or 1), marked as spikes (``Tensor/spikeQuantum``).
///
/// The neuron's input is `x·a + b` per channel with `a = γ/√(σ²+ε)` and `b = β − μ·a` (the
/// batch mean μ and biased variance σ²), the same function as batch norm's output up to float
/// rounding.
public func batchNormNeuronScan(_ x: Tensor, steps: Int, gamma: Tensor, beta: Tensor, runningMean: Tensor,
                                runningVar: Tensor, momentum: Double = 0.1, epsilon: Double = 1e-5,
                                residual: Tensor? = nil, neuron: NeuronParameters) -> Tensor {
    precondition(x.rank >= 2, "[batchNormNeuronScan] expected a [T·N, C, ...] input, got \(ShapeUtil.describe(x.shape))")
    precondition(steps >= 1 && x.shape[0] % steps == 0,
                 "[batchNormNeuronScan] expected T = \(steps) to divide the leading dimension, got \(ShapeUtil.describe(x.shape))")
    let c = x.shape[1]
    for (name, t) in [("gamma", gamma), ("beta", beta), ("runningMean", runningMean), ("runningVar", runningVar)] {
        precondition(t.shape == [c], "[batchNormNeuronScan] expected \(name) of shape [\(c)], got \(ShapeUtil.describe(t.shape))")
    }
    let cx = x.contiguousData().detached()
    let backend = x.backend
    let (gammaData, betaData) = (gamma.contiguousData().detached(), beta.contiguousData().detached())
    let (mean, variance, union) = trainingStatistics(cx, runningMean: runningMean, runningVar: runningVar, momentum: momentum)
    if let residual {
        precondition(residual.shape == x.shape && residual.dtype == x.dtype && residual.device == x.device,
                     "[batchNormNeuronScan] expected a residual like the input \(ShapeUtil.describe(x.shape)), got \(ShapeUtil.describe(residual.shape))")
    }
    let cr = residual.map { r in
        let c = r.contiguousData().detached()
        c.spikeQuantum = r.spikeQuantum
        return c
    }
    // Saved: what the backend chose to keep (on host backends x, γ, β, the [C] statistics and
    // the residual, as bytes when it holds spikes); it recomputes the rest.
    let (spikes, saved) = backend.batchNormNeuronScan(cx, gamma: gammaData, beta: betaData, mean: mean, variance: variance,
                                                      epsilon: epsilon, residual: cr, steps: steps, neuron)
    spikes.spikeQuantum = 1
    let inputs = [x, gamma, beta] + (residual.map { [$0] } ?? []), hasResidual = residual != nil
    // The input itself is kept only by `saved` (which may keep it in a smaller form), and here
    // only for --sync-bn's correction.
    let unionInput = union == nil ? nil : cx
    return record("batchNormNeuronScan", spikes, inputs) { g in
        let r = backend.batchNormNeuronScanBackward(g.contiguousData(), saved: saved)
        let input = unionInput.flatMap { cx in
            union?.gradientInput(r.input, x: cx, gamma: gammaData, mean: mean, variance: variance, epsilon: epsilon,
                                 gammaSum: r.gamma, betaSum: r.beta)
        } ?? r.input
        return [input, r.gamma, r.beta] + (hasResidual ? [r.residual] : [])
    }
}
