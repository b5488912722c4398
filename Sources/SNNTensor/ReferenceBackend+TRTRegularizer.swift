/// The TRT weight penalty on the reference backend, written straight from TRT-SPEC.md §3: for
/// every weight, every element and every timestep, the penalty term and its derivative.
extension ReferenceBackend {
    public func trtRegularizer(_ weights: [Tensor], lambda: Double, coefficients: [Double], epsilon: Double)
        -> (value: Tensor, gradients: [Tensor])
    {
        var total = 0.0
        var gradients: [Tensor] = []
        for w in weights {
            let values = read(w)
            var grad = [Double](repeating: 0, count: values.count)
            for (i, x) in values.enumerated() {
                let sign: Double = x > 0 ? 1 : (x < 0 ? -1 : 0)
                for c in coefficients {
                    let d = 1 + c * (Swift.abs(x) + epsilon)
                    total += lambda * x * x / d
                    grad[i] += lambda * (2 * x * d - x * x * c * sign) / (d * d)
                }
            }
            gradients.append(make(grad, w.shape, w.dtype, w.device))
        }
        // Callers pass at least one weight; the CPU backend falls back here with `.cpu` tensors.
        let first = weights.first
        return (make([total], [], first?.dtype ?? .float64, first?.device ?? device), gradients)
    }
}
