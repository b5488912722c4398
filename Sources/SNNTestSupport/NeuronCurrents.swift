import SNNTensor

/// Float32 currents `[T, ...]` for which every charged potential `h_t` (simulated in
/// float32 like the CPU kernel) stays more than 1e-3 from the threshold and from the
/// surrogate's kinks, so spikes and surrogate values cannot flip between backends.
public func neuronCurrents(_ shape: [Int], _ neuron: NeuronParameters, seed: UInt64) -> Tensor {
    let margin: Float = 2e-3
    let th = Float(neuron.threshold)
    let kinks: [Float]
    switch neuron.surrogate {
    case .triangle(let g): kinks = [th - Float(g), th, th + Float(g)]
    case .sigmoid: kinks = [th]
    case .rectangle(let a): kinks = [th - Float(a / 2), th, th + Float(a / 2)]
    }
    var x = RandomInputs(seed: seed).normalValues(ShapeUtil.count(shape), mean: 0.7, std: 0.6).map { Float($0) }
    let steps = shape[0]
    let n = x.count / steps
    let decay = Float(neuron.decay)
    for i in 0..<n {
        var v: Float = 0
        for t in 0..<steps {
            let k = t * n + i
            var h = v * decay + x[k]
            // Shift the input until h clears every kink (each shift moves h by 2·margin).
            while let near = kinks.first(where: { Swift.abs(h - $0) < margin }) {
                x[k] += h >= near ? margin : -margin
                h = v * decay + x[k]
            }
            let s: Float = h > th ? 1 : 0
            switch neuron.reset {
            case .hard(let vr): v = (1 - s) * h + s * Float(vr)
            case .soft: v = h - s * th
            }
        }
    }
    return Tensor(x, shape: shape, device: .reference)
}
