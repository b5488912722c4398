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

    /// `y·scale_c + shift_c` as a `[T, rest]` sequence, rounded to `y`'s dtype.
    private func normalizedSequence(_ y: Tensor, scale: Tensor, shift: Tensor, steps: Int) -> Tensor {
        let v = read(y), (a, b) = (read(scale), read(shift)), channels = y.shape[1]
        let plane = y.count / Swift.max(y.shape[0] * channels, 1)
        let out = v.indices.map { i -> Double in
            let c = (i / plane) % channels
            return v[i] * a[c] + b[c]
        }
        return make(out, [steps, y.count / steps], y.dtype, y.device)
    }

    public func batchNormNeuronScan(_ x: Tensor, scale: Tensor, shift: Tensor, steps: Int,
                                    _ neuron: NeuronParameters) -> Tensor {
        let spikes = neuronScan(normalizedSequence(x, scale: scale, shift: shift, steps: steps), neuron).spikes
        return make(read(spikes), x.shape, x.dtype, x.device)
    }

    public func batchNormNeuronScanBackward(_ gradSpikes: Tensor, input x: Tensor, scale: Tensor, shift: Tensor, steps: Int,
                                            _ neuron: NeuronParameters) -> Tensor {
        let potentials = neuronScan(normalizedSequence(x, scale: scale, shift: shift, steps: steps), neuron).potentials
        let g = make(read(gradSpikes), potentials.shape, gradSpikes.dtype, gradSpikes.device)
        let gx = neuronScanBackward(g, potentials: potentials, neuron)
        return make(read(gx), x.shape, gradSpikes.dtype, gradSpikes.device)
    }
}
