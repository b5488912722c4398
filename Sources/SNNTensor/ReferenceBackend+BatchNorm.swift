/// Batch normalisation on the reference backend, with the textbook backward pass.
extension ReferenceBackend {
    /// Channel of flat element i of a contiguous `[N, C, ...]` tensor.
    private func channels(_ shape: [Int]) -> (c: Int, inner: Int) { (shape[1], shape[2...].reduce(1, *)) }

    public func batchNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor,
                          epsilon: Double, training: Bool) -> (output: Tensor, mean: Tensor, variance: Tensor) {
        let v = read(x), g = read(gamma), b = read(beta)
        let (c, inner) = channels(x.shape)
        var mean = read(runningMean), variance = read(runningVar)
        if training {
            let m = Double(v.count / c)
            mean = [Double](repeating: 0, count: c)
            variance = [Double](repeating: 0, count: c)
            for i in 0..<v.count { mean[(i / inner) % c] += v[i] / m }
            for i in 0..<v.count {
                let d = v[i] - mean[(i / inner) % c]
                variance[(i / inner) % c] += d * d / m
            }
        }
        let out = (0..<v.count).map { i -> Double in
            let ch = (i / inner) % c
            return (v[i] - mean[ch]) / (variance[ch] + epsilon).squareRoot() * g[ch] + b[ch]
        }
        return (make(out, x.shape, x.dtype, x.device), make(mean, [c], x.dtype, x.device), make(variance, [c], x.dtype, x.device))
    }

    public func batchNormBackward(_ gradOutput: Tensor, input: Tensor, gamma: Tensor, mean: Tensor, variance: Tensor,
                                  epsilon: Double) -> (input: Tensor, gamma: Tensor, beta: Tensor) {
        let gy = read(gradOutput), v = read(input), g = read(gamma), mu = read(mean), va = read(variance)
        let (c, inner) = channels(input.shape)
        let m = Double(v.count / c)
        var dGamma = [Double](repeating: 0, count: c), dBeta = [Double](repeating: 0, count: c)
        let invstd = va.map { 1 / ($0 + epsilon).squareRoot() }
        for i in 0..<v.count {
            let ch = (i / inner) % c
            dBeta[ch] += gy[i]
            dGamma[ch] += gy[i] * (v[i] - mu[ch]) * invstd[ch]
        }
        // dx = γ·invstd/m · (m·dy - Σdy - x̂·Σ(dy·x̂))
        let dx = (0..<v.count).map { i -> Double in
            let ch = (i / inner) % c
            let xhat = (v[i] - mu[ch]) * invstd[ch]
            return g[ch] * invstd[ch] / m * (m * gy[i] - dBeta[ch] - xhat * dGamma[ch])
        }
        let (dt, dev) = (gradOutput.dtype, gradOutput.device)
        return (make(dx, input.shape, dt, dev), make(dGamma, [c], dt, dev), make(dBeta, [c], dt, dev))
    }
}
