/// Batch statistics and batch norm's affine map fused with the LIF scan, on the reference
/// backend: the textbook composition (normalise every element, then the scan).
extension ReferenceBackend {
    public func batchNormStatistics(_ x: Tensor) -> (mean: Tensor, variance: Tensor) {
        let v = read(x), (frames, channels) = (x.shape[0], x.shape[1])
        let plane = x.count / Swift.max(frames * channels, 1), count = Double(frames * plane)
        var mean = [Double](repeating: 0, count: channels), variance = mean
        for c in 0..<channels {
            var sum = 0.0
            for f in 0..<frames { for i in 0..<plane { sum += v[(f * channels + c) * plane + i] } }
            mean[c] = sum / count
            var squares = 0.0
            for f in 0..<frames { for i in 0..<plane { let d = v[(f * channels + c) * plane + i] - mean[c]; squares += d * d } }
            variance[c] = squares / count
        }
        return (make(mean, [channels], x.dtype, x.device), make(variance, [channels], x.dtype, x.device))
    }

    /// `x·a_c + b_c (+ r)` as a `[T, rest]` sequence (rounded to `x`'s dtype), with `a = γ/√(σ²+ε)`,
    /// `b = β − μa`.
    private func normalizedSequence(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor,
                                    epsilon: Double, residual: Tensor?, steps: Int) -> Tensor {
        let v = read(x), (g, b, m, s) = (read(gamma), read(beta), read(mean), read(variance)), channels = x.shape[1]
        let r = residual.map(read) ?? [Double](repeating: 0, count: v.count)
        let plane = x.count / Swift.max(x.shape[0] * channels, 1)
        let scale = (0..<channels).map { g[$0] / (s[$0] + epsilon).squareRoot() }
        let shift = (0..<channels).map { b[$0] - m[$0] * scale[$0] }
        let out = v.indices.map { i -> Double in
            let c = (i / plane) % channels
            return v[i] * scale[c] + shift[c] + r[i]
        }
        return make(out, [steps, x.count / steps], x.dtype, x.device)
    }

    public func batchNormNeuronScan(_ x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, epsilon: Double,
                                    residual: Tensor?, steps: Int, _ neuron: NeuronParameters)
        -> (spikes: Tensor, saved: any SavedState) {
        let input = normalizedSequence(x, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon,
                                       residual: residual, steps: steps)
        let spikes = make(read(scan(input, neuron).spikes), x.shape, x.dtype, x.device)
        return (spikes, SavedBatchNormNeuron(input: x, gamma: gamma, beta: beta, mean: mean, variance: variance, epsilon: epsilon,
                                             residual: residual, steps: steps, neuron: neuron))
    }

    public func batchNormNeuronScanBackward(_ gradSpikes: Tensor, saved: any SavedState)
        -> (input: Tensor, gamma: Tensor, beta: Tensor, residual: Tensor?) {
        let s = SavedBatchNormNeuron.from(saved, op: "batchNormNeuronScan"), x = s.input
        let residual = s.residual?.value
        let input = normalizedSequence(x, gamma: s.gamma, beta: s.beta, mean: s.mean, variance: s.variance, epsilon: s.epsilon,
                                       residual: residual, steps: s.steps)
        let potentials = scan(input, s.neuron).potentials
        let g = make(read(gradSpikes), potentials.shape, gradSpikes.dtype, gradSpikes.device)
        let gradNormalized = make(read(scanBackward(g, potentials: potentials, s.neuron)), x.shape, x.dtype, x.device)
        let r = batchNormBackward(gradNormalized, input: x, gamma: s.gamma, mean: s.mean, variance: s.variance, epsilon: s.epsilon)
        return (r.input, r.gamma, r.beta, residual == nil ? nil : gradNormalized)
    }
}
