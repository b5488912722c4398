/// Spiking neurons: the fused multi-step LIF scan and the single-step Heaviside it fuses.

/// The fused multi-step LIF neuron over a time-major sequence.
///
/// - Parameters:
///   - x: the input currents `[T, ...]`.
///   - neuron: τ, threshold, reset and surrogate.
/// - Returns: spikes `[T, ...]` (0 or 1). The backward pass runs through time in one kernel
///   from the state the backend saved (the potentials `h_t` on host backends); no neuron state
///   survives the call.
public func neuronScan(_ x: Tensor, _ neuron: NeuronParameters) -> Tensor {
    precondition(x.rank >= 1 && x.shape[0] > 0, "[neuronScan] expected a [T, ...] input with T >= 1, got \(ShapeUtil.describe(x.shape))")
    precondition(x.dtype.isFloatingPoint, "[neuronScan] expected a floating-point input, got \(x.dtype)")
    let backend = x.backend
    // Saved: whatever the backend chose to keep (the CPU keeps the potentials h_t).
    let (spikes, saved) = backend.neuronScan(x.contiguousData(), neuron)
    spikes.spikeQuantum = 1
    return record("neuronScan", spikes, [x]) { g in [backend.neuronScanBackward(g.contiguousData(), saved: saved)] }
}

/// `H(u)` (1 where `u > 0`, else 0) with the surrogate derivative in the backward pass.
public func heaviside(_ u: Tensor, surrogate: Surrogate) -> Tensor {
    let spikes = u > 0
    return record("heaviside", spikes, [u]) { g in [g * u.backend.surrogateGradient(u, surrogate)] }
}

/// The same neuron as ``neuronScan(_:_:)`` written as a loop of single-step ops: the
/// composite reference the fused kernels are tested against.
public func neuronLoop(_ x: Tensor, _ neuron: NeuronParameters) -> Tensor {
    var v: Tensor? = nil
    var spikes: [Tensor] = []
    for t in 0..<x.shape[0] {
        let xt = x.selected(axis: 0, t)
        let h = v.map { $0 * neuron.decay + xt } ?? xt
        let s = heaviside(h - neuron.threshold, surrogate: neuron.surrogate)
        switch neuron.reset {
        case .hard(let vReset): v = (1 - s) * h + s * vReset
        case .soft: v = h - s * neuron.threshold
        }
        spikes.append(s)
    }
    return stack(spikes)
}
